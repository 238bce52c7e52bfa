#!/bin/sh
# run-blackbox.sh BUILD - run tests/blackbox/test_*.py against BUILD with
# Debian's /usr/bin/python3 and count their "PASS/FAIL/SKIP name" lines.
# A test file that exits non-zero without a FAIL line (crash, timeout)
# counts as one failure.  Summary line as in run-unit.sh.
# Environment: BLACKBOX_TIMEOUT (per file, default 900 s), BLACKBOX_ONLY
# (space-separated file stems, e.g. "smtp"), and whatever the tests read
# (CRASH_MESSAGES, KEEP, ...).
BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
TIMEOUT=${BLACKBOX_TIMEOUT:-900}
case "$BUILD" in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
export CORREIO_BUILD="$BUILD"
if [ -z "${CORREIO_SANITIZER+x}" ]; then
    case "$(basename "$BUILD")" in build-*) CORREIO_SANITIZER=1 ;; *) CORREIO_SANITIZER= ;; esac
fi
export CORREIO_SANITIZER
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
pass=0 fail=0 skip=0
out=$(mktemp)
trap 'rm -f "$out" "$out.rc"' EXIT

for f in "$HERE"/blackbox/test_*.py; do
    [ -f "$f" ] || continue
    stem=$(basename "$f" .py); stem=${stem#test_}
    if [ -n "${BLACKBOX_ONLY:-}" ]; then
        case " $BLACKBOX_ONLY " in *" $stem "*) ;; *) continue ;; esac
    fi
    # stdout is counted; stderr (details of failures) goes straight through
    { timeout -k 10 "$TIMEOUT" "$PY" "$f"; echo "$?" >"$out.rc"; } | tee "$out"
    rc=$(cat "$out.rc" 2>/dev/null || echo 1)
    p=$(grep -c '^PASS ' "$out" | tr -d ' ')
    fl=$(grep -c '^FAIL ' "$out" | tr -d ' ')
    s=$(grep -c '^SKIP ' "$out" | tr -d ' ')
    if [ "$rc" != 0 ] && [ "$fl" = 0 ]; then
        if [ "$rc" = 124 ]; then why="timed out after ${TIMEOUT}s"; else why="exit status $rc"; fi
        echo "FAIL blackbox.$stem: $why"
        fl=1
    fi
    pass=$((pass + p)); fail=$((fail + fl)); skip=$((skip + s))
done

summary="$pass passed, $fail failed"
[ "$skip" != 0 ] && summary="$summary, $skip skipped"
if [ -n "${COUNTS_FILE:-}" ]; then
    echo "$pass $fail $skip" >>"$COUNTS_FILE"
    echo "# blackbox ($BUILD): $summary"
else
    echo "$summary"
fi
[ "$fail" = 0 ]
