#!/bin/sh
# run-all.sh BUILD SANBUILD - the whole suite (make test): unit and
# black-box tests on BUILD, then again on SANBUILD (ASan+UBSan).  Prints
# every test's result and, as the very last line,
# "N passed, N failed[, N skipped]"; exits non-zero if any failed.
#
# The DNS lab (tests/dns/lab.sh: unbound with the test zones) runs once
# for the whole suite on a free port; CORREIO_TEST_DNS=127.0.0.1:PORT
# tells unit and black-box tests where it is.
BUILD=${1:-build}
SANBUILD=${2:-build-address-undefined}
HERE=$(cd "$(dirname "$0")" && pwd)
COUNTS_FILE=$(mktemp)
DNS_LAB=$(mktemp -d /tmp/correio-dnslab.XXXXXX)
export COUNTS_FILE
cleanup() {
    sh "$HERE/dns/lab.sh" stop "$DNS_LAB"
    rm -rf "$DNS_LAB"
    rm -f "$COUNTS_FILE"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
start=$(date +%s)

# start_dns_lab - on a random port in 20000-29999 (below the kernel's
# ephemeral range, where the tests' own free ports come from); unbound
# itself says whether the port was free (lab.sh exits 2 when it was not,
# and unbound runs without SO_REUSEPORT), so two concurrent suites
# cannot share one.
start_dns_lab() {
    tries=0
    while [ $tries -lt 30 ]; do
        tries=$((tries + 1))
        port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 10000 ))
        sh "$HERE/dns/lab.sh" start "$DNS_LAB" "$port"
        case $? in
            0) CORREIO_TEST_DNS=127.0.0.1:$port; export CORREIO_TEST_DNS; return 0 ;;
            2) continue ;;
            *) return 1 ;;
        esac
    done
    return 1
}

prefix() { sed -u "s#^\(PASS\|FAIL\|SKIP\) #\1 [$1] #"; }

echo "# correio test suite: $BUILD, then $SANBUILD"
if start_dns_lab; then
    echo "# DNS lab: $CORREIO_TEST_DNS ($DNS_LAB)"
else
    echo "FAIL dns-lab: unbound did not start (tests/dns/lab.sh, log in $DNS_LAB)"
    echo "0 1 0" >>"$COUNTS_FILE"
fi
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
