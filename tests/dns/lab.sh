#!/bin/sh
# lab.sh - the test suite's DNS lab: an unbound on 127.0.0.1@PORT (UDP and
# TCP) answering only from the zone data in unbound.conf.in.
#
#   sh tests/dns/lab.sh start DIR PORT   exit 0: up and answering;
#                                        exit 2: PORT is taken (pick another);
#                                        exit 1: anything else (see DIR/unbound.log)
#   sh tests/dns/lab.sh stop DIR         stop it (fine if it is not running)
#
# DIR holds unbound.conf, unbound.pid and unbound.log.  Needs the Debian
# packages unbound and bind9-dnsutils (dig).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
UNBOUND=/usr/sbin/unbound
START_TIMEOUT=10        # seconds until the lab must answer

usage() { echo "usage: lab.sh start DIR PORT | stop DIR" >&2; exit 1; }

# alive PID - is PID an unbound?
alive() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null &&
        grep -q unbound "/proc/$1/comm" 2>/dev/null
}

lab_stop() {
    dir=$1
    [ -f "$dir/unbound.pid" ] || return 0
    pid=$(cat "$dir/unbound.pid" 2>/dev/null)
    if alive "$pid"; then
        kill "$pid"
        i=0
        while alive "$pid" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        alive "$pid" && kill -9 "$pid"
    fi
    rm -f "$dir/unbound.pid"
    return 0
}

lab_start() {
    dir=$1 port=$2
    case "$port" in ''|*[!0-9]*) echo "lab.sh: bad port '$port'" >&2; exit 1 ;; esac
    mkdir -p "$dir" || exit 1
    dir=$(cd "$dir" && pwd)
    lab_stop "$dir"
    rm -f "$dir/unbound.log"
    sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" "$HERE/unbound.conf.in" >"$dir/unbound.conf" || exit 1
    if ! out=$(unbound-checkconf "$dir/unbound.conf" 2>&1); then
        echo "lab.sh: $out" >&2
        exit 1
    fi
    # unbound opens its ports before it daemonizes, so its exit status
    # says whether the port was free
    if ! "$UNBOUND" -c "$dir/unbound.conf" >"$dir/unbound.start" 2>&1; then
        if grep -qi "address already in use" "$dir/unbound.start" "$dir/unbound.log" 2>/dev/null; then
            exit 2
        fi
        echo "lab.sh: unbound did not start:" >&2
        cat "$dir/unbound.start" "$dir/unbound.log" >&2 2>/dev/null
        exit 1
    fi
    # wait until it answers, over UDP and TCP
    deadline=$(( $(date +%s) + START_TIMEOUT ))
    while :; do
        a=$(dig +short +tries=1 +time=1 -p "$port" @127.0.0.1 A ok.test 2>/dev/null)
        t=$(dig +tcp +short +tries=1 +time=1 -p "$port" @127.0.0.1 A ok.test 2>/dev/null)
        [ "$a" = 127.0.0.1 ] && [ "$t" = 127.0.0.1 ] && break
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "lab.sh: unbound on 127.0.0.1@$port does not answer ok.test" >&2
            cat "$dir/unbound.log" >&2 2>/dev/null
            lab_stop "$dir"
            exit 1
        fi
        sleep 0.1
    done
    exit 0
}

case "${1:-}" in
    start) [ $# = 3 ] || usage; lab_start "$2" "$3" ;;
    stop)  [ $# = 2 ] || usage; lab_stop "$2" ;;
    *)     usage ;;
esac
