#!/bin/sh
# run-unit.sh BUILD - run every BUILD/tests/*_test (cmocka) and count.
# Each cmocka case is one result (TAP output); a program that crashes or
# exits non-zero without naming a failed case counts as one failure.
# Prints "PASS/FAIL unit.PROG.case" lines and, at the end,
# "N passed, N failed[, N skipped]".  With COUNTS_FILE set (run-all.sh),
# appends "passed failed skipped" to it and prefixes the summary line.
BUILD=${1:-build}
TIMEOUT=${UNIT_TIMEOUT:-120}
export CMOCKA_MESSAGE_OUTPUT=TAP
pass=0 fail=0 skip=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

found=0
for t in "$BUILD"/tests/*_test; do
    [ -x "$t" ] || continue
    found=1
    prog=$(basename "$t")
    timeout -k 5 "$TIMEOUT" "$t" >"$out" 2>&1
    rc=$?
    # TAP: "ok N - name", "not ok N - name", "[not ]ok N # SKIP name"
    s=$(grep -cE '^(not )?ok [0-9]+ # *SKIP' "$out" | tr -d ' ')
    p=$(grep -cE '^ok [0-9]+ - ' "$out" | tr -d ' ')
    f=$(grep -cE '^not ok [0-9]+ - ' "$out" | tr -d ' ')
    grep -E '^(not )?ok [0-9]+' "$out" | sed -E \
        -e "s/^(not )?ok [0-9]+ # *SKIP *(.*)/SKIP unit.$prog.\\2/" \
        -e "s/^not ok [0-9]+ - (.*)/FAIL unit.$prog.\\1/" \
        -e "s/^ok [0-9]+ - (.*)/PASS unit.$prog.\\1/"
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        if [ "$rc" = 124 ]; then why="timed out after ${TIMEOUT}s"; else why="exit status $rc"; fi
        echo "FAIL unit.$prog: $why"
        f=1
    fi
    if [ "$rc" = 0 ] && [ "$p" = 0 ] && [ "$f" = 0 ] && [ "$s" = 0 ]; then
        echo "PASS unit.$prog"
        p=1
    fi
    if [ "$f" != 0 ]; then
        echo "--- output of $t:" >&2
        tail -n 60 "$out" >&2
    fi
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
done
[ "$found" = 1 ] || echo "# run-unit: no unit tests in $BUILD/tests" >&2

summary="$pass passed, $fail failed"
[ "$skip" != 0 ] && summary="$summary, $skip skipped"
if [ -n "${COUNTS_FILE:-}" ]; then
    echo "$pass $fail $skip" >>"$COUNTS_FILE"
    echo "# unit ($BUILD): $summary"
else
    echo "$summary"
fi
[ "$fail" = 0 ]
