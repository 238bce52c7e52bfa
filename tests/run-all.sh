#!/bin/sh
# run-all.sh BUILD SANBUILD - the whole suite (make test): unit and
# black-box tests on BUILD, then again on SANBUILD (ASan+UBSan).  Prints
# every test's result and, as the very last line,
# "N passed, N failed[, N skipped]"; exits non-zero if any failed.
BUILD=${1:-build}
SANBUILD=${2:-build-address-undefined}
HERE=$(cd "$(dirname "$0")" && pwd)
COUNTS_FILE=$(mktemp)
export COUNTS_FILE
trap 'rm -f "$COUNTS_FILE"' EXIT
start=$(date +%s)

prefix() { sed -u "s#^\(PASS\|FAIL\|SKIP\) #\1 [$1] #"; }

echo "# correio test suite: $BUILD, then $SANBUILD"
for b in "$BUILD" "$SANBUILD"; do
    if [ "$b" = "$SANBUILD" ]; then
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
        export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
        export CORREIO_SANITIZER=1
        # the kill -9 test, shorter under the sanitizers
        export CRASH_MESSAGES=${SAN_CRASH_MESSAGES:-400}
    else
        export CORREIO_SANITIZER=
    fi
    if [ ! -d "$b" ]; then
        echo "FAIL [$b] build: no directory $b"
        echo "0 1 0" >>"$COUNTS_FILE"
        continue
    fi
    sh "$HERE/run-unit.sh" "$b" 2>&1 | prefix "$b"
    sh "$HERE/run-blackbox.sh" "$b" 2>&1 | prefix "$b"
done

echo "# took $(( $(date +%s) - start ))s"
awk '{ p += $1; f += $2; s += $3 }
     END { line = p " passed, " f " failed"; if (s) line = line ", " s " skipped"
           print line; exit(f != 0) }' "$COUNTS_FILE"
