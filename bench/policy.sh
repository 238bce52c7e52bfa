#!/bin/bash
# bench/policy.sh BUILD - the policy service (greylisting, intrusion
# prevention, sending limits: the router answers the ingress's questions)
# on loopback.  bench/run.sh runs it at its end (make bench); alone it
# takes about 40 s.
#
# 1. starts `correio -c DIR run` with greylisting = yes (mynetworks does
#    not hold 127.0.0.1, so loopback clients are greylisted);
# 2. policy round trips per second against its one router: bench/policy_load.c
#    (compiled here against BUILD/libcorreio.a) talks to router_policy_endpoint
#    with CONNS DEALER sockets, WINDOW requests in flight on each:
#      policy_rtt_greylist_known   POLICY_GREYLIST on 1000 passed triplets
#      policy_rtt_greylist_new     POLICY_GREYLIST on a new triplet each time
#      policy_rtt_limit_check      POLICY_LIMIT_CHECK on 1000 users
#      policy_rtt_single           one DEALER, one request at a time (latency)
#    each: rps, and round trip p50/p99 in µs;
# 3. the RCPT round trip under SESSIONS parallel SMTP sessions
#    (bench/policy_rcpt.py: MAIL, RCPT timed, RSET, for RCPT_SECONDS):
#    with greylisting = yes and every triplet passed beforehand (each
#    session's first RCPT gets its 450, then `correio greylist pass` for
#    each triplet `correio greylist list --json` shows), then after a
#    restart with greylisting = no; prints p50/p99 of both and the
#    difference: the latency the policy round trip adds to a RCPT.
# Nothing is asserted.
#
# Knobs: CONNS [20] WINDOW [8] LOAD_SECONDS [3] SESSIONS [20] RCPT_SECONDS [5]
#        WORK_POLICY [/var/tmp/correio-bench-policy]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -uo pipefail
export LC_ALL=C

BUILD=${1:-build}
REPO=$(cd "$(dirname "$0")/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD=$REPO/$BUILD ;; esac
BIN=$BUILD/bin/correio
CONNS=${CONNS:-20}
WINDOW=${WINDOW:-8}
LOAD_SECONDS=${LOAD_SECONDS:-3}
SESSIONS=${SESSIONS:-20}
RCPT_SECONDS=${RCPT_SECONDS:-5}
WORK=${WORK_POLICY:-/var/tmp/correio-bench-policy}
PKGS="libzmq libprotobuf-c lmdb libcares openssl libxcrypt libpcre2-8"

[ -x "$BIN" ] && [ -f "$BUILD/libcorreio.a" ] ||
    { echo "bench-policy: no $BIN or $BUILD/libcorreio.a (run make first)" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

rm -rf "$WORK"
mkdir -p "$WORK"
DIR=$WORK/correio
mkdir -p "$DIR"/{mail,data,run}
chmod 755 "$WORK" "$DIR"
RESULTS=$WORK/results
: >"$RESULTS"
result() { echo "$*" | tee -a "$RESULTS"; }

# the load generator: a bench program, not part of the product
LOAD=$WORK/policy_load
# shellcheck disable=SC2046,SC2086
if ! cc -O2 -std=gnu11 -Wall -Wextra -D_GNU_SOURCE -I"$REPO/lib" -I"$BUILD/gen" \
        $(pkg-config --cflags $PKGS) -o "$LOAD" "$REPO/bench/policy_load.c" \
        "$BUILD/libcorreio.a" $(pkg-config --libs $PKGS) -lpthread 2>"$WORK/cc.err"; then
    echo "bench-policy: cannot compile bench/policy_load.c:" >&2
    cat "$WORK/cc.err" >&2
    exit 1
fi

SUP=
cleanup() {
    if [ -n "$SUP" ] && kill -0 "$SUP" 2>/dev/null; then
        kill -TERM "$SUP" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$SUP" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SUP" 2>/dev/null
    fi
    SUP=
    for p in $(correio_pids); do kill -KILL "$p" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

correio_pids() {        # this instance's processes: correio* with -c $DIR
    local d argv
    for d in /proc/[0-9]*; do
        argv=$( { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null) || continue
        case "$argv" in *correio*" -c $DIR "*|*correio*" -c $DIR") echo "${d#/proc/}" ;; esac
    done
}
stage_pid() {
    local d argv
    for d in /proc/[0-9]*; do
        argv=$( { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null) || continue
        case "$argv" in *correio-$1" -c $DIR "*|*correio-$1" -c $DIR") echo "${d#/proc/}"; return ;; esac
    done
}

PORT=$(free_port)
# start GREYLISTING: correio with that setting, up when it answers on
# PORT and every stage runs
start() {
    cat >"$DIR/correio.conf" <<EOF
myhostname = mx.bench.example
mydestination = local.example
mynetworks = 192.0.2.0/24
smtpd_listen = 127.0.0.1:$PORT
mail_root = $DIR/mail
data_directory = $DIR/data
run_directory = $DIR/run
mail_owner = ${MAIL_OWNER:-correio}
smtpd_session_limit = 1000
smtpd_peername_lookup = no
dns_servers = 127.0.0.1:1
greylisting = $1
EOF
    : >"$DIR/users"
    for i in $(seq 0 $((SESSIONS - 1))); do echo "r$i@local.example:{PLAIN}bench" >>"$DIR/users"; done
    "$BIN" -c "$DIR" run >>"$DIR/log" 2>&1 &
    SUP=$!
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            ok=1
            for s in ingress classifier router delivery; do [ -n "$(stage_pid "$s")" ] || ok=0; done
            [ "$ok" = 1 ] && [ -S "$DIR/run/router-policy" ] && return 0
        fi
        kill -0 "$SUP" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench-policy: correio did not come up on 127.0.0.1:$PORT; log:" >&2
    tail -n 20 "$DIR/log" >&2
    exit 1
}
field() {   # field KEY LINE
    echo "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'
}

start yes
echo "# policy bench: $(nproc) CPUs, $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- (a) round trips
EP=ipc://$DIR/run/router-policy
load() {    # load NAME [policy_load options]
    local name=$1 out rtr c0 c1
    shift
    rtr=$(stage_pid router)
    c0=$(sed 's/^.*) //' "/proc/$rtr/stat" 2>/dev/null | awk '{ print $12 + $13 }')
    if out=$("$LOAD" -e "$EP" "$@" 2>"$WORK/load.err"); then
        c1=$(sed 's/^.*) //' "/proc/$rtr/stat" 2>/dev/null | awk '{ print $12 + $13 }')
        result "correio $name rps=$(field rps "$out") p50_us=$(field p50_us "$out")" \
               "p99_us=$(field p99_us "$out") router_cpu_us_per_req=$(awk -v a="${c0:-0}" -v b="${c1:-0}" \
               -v hz="$(getconf CLK_TCK)" -v n="$(field requests "$out")" \
               'BEGIN { if (n > 0) printf "%.2f", (b - a) * 1e6 / hz / n; else print "NA" }')" \
               "requests=$(field requests "$out") errors=$(field errors "$out") $*"
    else
        result "correio $name rps=NA ($(head -n 1 "$WORK/load.err"))"
    fi
}
load policy_rtt_greylist_known -k known -c "$CONNS" -w "$WINDOW" -d "$LOAD_SECONDS"
load policy_rtt_greylist_new -k new -c "$CONNS" -w "$WINDOW" -d "$LOAD_SECONDS"
load policy_rtt_limit_check -k limit -c "$CONNS" -w "$WINDOW" -d "$LOAD_SECONDS"
load policy_rtt_single -k known -c 1 -w 1 -d 2

# ---------------------------------------------------------------- (b) RCPT latency
rcpt() {    # rcpt SECONDS: the one-line summary of policy_rcpt.py
    python3 "$REPO/bench/policy_rcpt.py" "$PORT" "$SESSIONS" "$1" 2>>"$WORK/rcpt.err"
}
probe=$(rcpt 0)                  # every triplet seen once: 450 each
passed=0
for key in $("$BIN" -c "$DIR" greylist list --json 'bench@client.example/*' 2>>"$WORK/ctl.err" |
             python3 -c 'import json, sys; [print(json.loads(l)["key"]) for l in sys.stdin if l.strip()]'); do
    "$BIN" -c "$DIR" greylist pass "$key" >/dev/null 2>>"$WORK/ctl.err" && passed=$((passed + 1))
done
echo "# greylisting = yes: first round $(field codes "$probe"); $passed triplets passed with \`correio greylist pass\`"
on=$(rcpt "$RCPT_SECONDS")
result "correio policy_rcpt_greylisting_on p50_ms=$(field p50_ms "$on") p99_ms=$(field p99_ms "$on")" \
       "rcpts=$(field rcpts "$on") codes=$(field codes "$on") sessions=$SESSIONS"
cleanup
start no
off=$(rcpt "$RCPT_SECONDS")
result "correio policy_rcpt_greylisting_off p50_ms=$(field p50_ms "$off") p99_ms=$(field p99_ms "$off")" \
       "rcpts=$(field rcpts "$off") codes=$(field codes "$off") sessions=$SESSIONS"
cleanup
[ -s "$WORK/rcpt.err" ] && { echo "# policy_rcpt.py said:"; head -n 5 "$WORK/rcpt.err"; }
[ -s "$WORK/ctl.err" ] && { echo "# correio greylist said:"; head -n 5 "$WORK/ctl.err"; }

echo
echo "# added latency per RCPT ($SESSIONS parallel sessions, greylisting on with passed triplets vs off)"
printf "%-10s %12s %12s %12s\n" figure on_ms off_ms added_ms
for f in p50_ms p99_ms; do
    awk -v f="$f" -v a="$(field "$f" "$on")" -v b="$(field "$f" "$off")" 'BEGIN {
        d = "NA"
        if (a != "" && b != "" && a != "NA" && b != "NA") d = sprintf("%.3f", a - b)
        printf "%-10s %12s %12s %12s\n", f, (a == "" ? "NA" : a), (b == "" ? "NA" : b), d }'
done
rm -rf "$DIR/mail" "$DIR/data"
exit 0
