#!/bin/bash
# bench/outbound.sh BUILD - onward delivery throughput: correio relaying
# to an SMTP sink on loopback, beside Postfix relaying the same load to
# the same kind of sink.  bench/run.sh runs it at its end (make bench).
#
# For each system:
#   1. smtp-sink (Postfix's test server, -c: counts messages) on
#      127.0.0.1:SINK_PORT, a fresh one per system;
#   2. the system with relayhost = [127.0.0.1]:SINK_PORT (connection
#      reuse as each does by default; correio: smtp_connection_cache_*);
#   3. smtp-source injects N_OUT messages of SIZE bytes over SESSIONS
#      parallel sessions to b@remote.example;
#        accept msg/s   = N / time until smtp-source exits
#        relay msg/s    = N / time until the sink counted N messages
#      and, for correio, CPU ms per message of the delivery stage.
# Prints one line per figure, as bench/run.sh does, then a comparison
# with the ratio correio/postfix.  Nothing is asserted.
#
# Knobs: N_OUT [2000] SIZE [1024] SESSIONS [20] WORK [/var/tmp/correio-bench-outbound]
#        POSTFIX [1] (0: correio only)  LIMIT [300] (seconds to wait for the sink)
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -uo pipefail
export LC_ALL=C

BUILD=${1:-build}
REPO=$(cd "$(dirname "$0")/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD=$REPO/$BUILD ;; esac
BIN=$BUILD/bin/correio
N_OUT=${N_OUT:-2000}
SIZE=${SIZE:-1024}
SESSIONS=${SESSIONS:-20}
WORK=${WORK_OUT:-/var/tmp/correio-bench-outbound}
POSTFIX=${POSTFIX:-1}
LIMIT=${LIMIT:-300}
SMTP_SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
SMTP_SINK=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)
HZ=$(getconf CLK_TCK)

[ -x "$BIN" ] || { echo "bench-outbound: no $BIN (run make first)" >&2; exit 1; }
[ -x "$SMTP_SOURCE" ] && [ -x "$SMTP_SINK" ] ||
    { echo "bench-outbound: smtp-source/smtp-sink missing (apt-get install postfix)" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { if (b > a) printf "%.1f", n / (b - a); else print "NA" }'; }

rm -rf "$WORK"
mkdir -p "$WORK"
RESULTS=$WORK/results
: >"$RESULTS"
result() { echo "$*" | tee -a "$RESULTS"; }

SINK_PID= SUP= PF_ETC= DNS_DIR=
cleanup() {
    if [ -n "$SUP" ] && kill -0 "$SUP" 2>/dev/null; then
        kill -TERM "$SUP" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$SUP" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SUP" 2>/dev/null
    fi
    SUP=
    for p in $(correio_pids); do kill -KILL "$p" 2>/dev/null; done
    if [ -n "$PF_ETC" ]; then postfix -c "$PF_ETC" stop >/dev/null 2>&1; PF_ETC=; fi
    stop_sink
    [ -n "$DNS_DIR" ] && sh "$REPO/tests/dns/lab.sh" stop "$DNS_DIR" >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

correio_pids() {        # this instance's processes: correio* with -c $WORK/correio
    local d argv
    for d in /proc/[0-9]*; do
        argv=$( { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null) || continue
        case "$argv" in *correio*" -c $WORK/correio "*|*correio*" -c $WORK/correio") echo "${d#/proc/}" ;; esac
    done
}
stage_pid() {
    local d argv
    for d in /proc/[0-9]*; do
        argv=$( { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null) || continue
        case "$argv" in *correio-$1" -c $WORK/correio "*|*correio-$1" -c $WORK/correio") echo "${d#/proc/}"; return ;; esac
    done
}
cpu_ticks() {
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || { echo 0; return; }
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# the sink: smtp-sink -c writes running counts ("sess=N quit=N mesg=N\r")
start_sink() {          # start_sink NAME
    SINK_PORT=$(free_port)
    SINK_OUT=$WORK/sink-$1.out
    "$SMTP_SINK" -u nobody -c "127.0.0.1:$SINK_PORT" 1000 >"$SINK_OUT" 2>&1 &
    SINK_PID=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$SINK_PORT") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench-outbound: smtp-sink did not start on 127.0.0.1:$SINK_PORT" >&2
    return 1
}
stop_sink() {
    if [ -n "$SINK_PID" ]; then kill "$SINK_PID" 2>/dev/null; wait "$SINK_PID" 2>/dev/null; fi
    SINK_PID=
}
sink_count() {
    tr '\r' '\n' <"$SINK_OUT" 2>/dev/null |
        awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^mesg=/) { sub(/mesg=/, "", $i); n = $i } } END { print n + 0 }'
}
wait_sink() {           # wait_sink N: until the sink counted N messages
    local t0
    t0=$(date +%s)
    while [ "$(sink_count)" -lt "$1" ]; do
        if [ $(( $(date +%s) - t0 )) -gt "$LIMIT" ]; then
            echo "bench-outbound: timeout: the sink has $(sink_count) of $1 messages" >&2
            return 1
        fi
        sleep 0.05
    done
}

# measure SYSTEM PORT [N]: inject N (default N_OUT) messages, wait for
# the sink, print the figures (SYSTEM "warmup" prints nothing)
measure() {
    local sys=$1 port=$2 t0 t1 t2 relay base N_OUT=${3:-$N_OUT}
    base=$(sink_count)
    t0=$(now)
    "$SMTP_SOURCE" -s "$SESSIONS" -l "$SIZE" -m "$N_OUT" -f a@example.com -t b@remote.example \
        "127.0.0.1:$port" >/dev/null 2>"$WORK/smtp-source-$sys.err"
    t1=$(now)
    if wait_sink $((base + N_OUT)); then t2=$(now); relay=$(rate "$N_OUT" "$t0" "$t2"); else relay=NA; fi
    [ "$sys" = warmup ] && return 0
    result "$sys relay_out_1KB msgs/s=$(rate "$N_OUT" "$t0" "$t1") e2e_msgs/s=$relay n=$N_OUT size=$SIZE sessions=$SESSIONS"
    [ -s "$WORK/smtp-source-$sys.err" ] && { echo "# smtp-source said:"; head -n 5 "$WORK/smtp-source-$sys.err"; }
}

# ---------------------------------------------------------------- correio
DIR=$WORK/correio
mkdir -p "$DIR"/{mail,data,run} "$WORK/dns"
for _ in $(seq 1 30); do
    p=$((20000 + RANDOM % 10000))
    sh "$REPO/tests/dns/lab.sh" start "$WORK/dns" "$p" >/dev/null 2>&1
    case $? in 0) DNS_DIR=$WORK/dns; DNS_PORT=$p; break ;; 2) continue ;; *) break ;; esac
done
[ -n "$DNS_DIR" ] || { echo "bench-outbound: cannot start the DNS lab" >&2; exit 1; }
start_sink correio || exit 1
PORT=$(free_port)
cat >"$DIR/correio.conf" <<EOF
myhostname = mx.bench.example
mydestination = local.example
mynetworks = 127.0.0.0/8
smtpd_listen = 127.0.0.1:$PORT
mail_root = $DIR/mail
data_directory = $DIR/data
run_directory = $DIR/run
mail_owner = ${MAIL_OWNER:-correio}
smtpd_session_limit = 1000
dns_servers = 127.0.0.1:$DNS_PORT
relayhost = [127.0.0.1]:$SINK_PORT
EOF
echo "b@local.example:{PLAIN}bench" >"$DIR/users"
chmod 755 "$WORK" "$DIR"
"$BIN" -c "$DIR" run >"$DIR/log" 2>&1 &
SUP=$!
up=0
for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && [ -n "$(stage_pid delivery)" ]; then up=1; break; fi
    kill -0 "$SUP" 2>/dev/null || break
    sleep 0.1
done
if [ "$up" != 1 ]; then
    echo "bench-outbound: correio did not come up; log:" >&2
    tail -n 20 "$DIR/log" >&2
    exit 1
fi
echo "# outbound bench: $N_OUT msgs of $SIZE B, $SESSIONS sessions in, relayhost = smtp-sink; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
# warm-up, then the measured run
measure warmup "$PORT" 100
dpid=$(stage_pid delivery); c0=$(cpu_ticks "$dpid")
measure correio "$PORT"
c1=$(cpu_ticks "$(stage_pid delivery)")
if [ "$(stage_pid delivery)" = "$dpid" ]; then
    result "correio cpu_ms_per_msg_relay_out delivery=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" -v n="$N_OUT" 'BEGIN { printf "%.3f", (b - a) * 1000 / hz / n }')"
else
    result "correio cpu_ms_per_msg_relay_out delivery=restarted"
fi
deferred=$(grep -c 'status=deferred' "$DIR/log" || true)
echo "# correio: $deferred deferrals in the log; sink count $(sink_count)"
cleanup
rm -rf "$DIR/mail" "$DIR/data"

# ---------------------------------------------------------------- postfix
if [ "$POSTFIX" = 1 ] && command -v postfix >/dev/null 2>&1; then
    PFW=$WORK/postfix
    mkdir -p "$PFW"/{etc,spool,data,log}
    start_sink postfix || exit 1
    PF_PORT=$(free_port)
    cat >"$PFW/etc/main.cf" <<EOF
# private instance written by bench/outbound.sh (as shared/bench/postfix-bench.sh)
compatibility_level = 3.6
queue_directory = $PFW/spool
data_directory = $PFW/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-bench-out
maillog_file = $PFW/log/maillog
maillog_file_prefixes = $WORK
myhostname = mta.bench.example
mydomain = bench.example
myorigin = \$mydomain
mydestination =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [127.0.0.1]:$SINK_PORT
smtp_dns_support_level = disabled
EOF
    cat >"$PFW/etc/master.cf" <<EOF
127.0.0.1:$PF_PORT inet n  -  n  -  -  smtpd
pickup    unix  n  -  n  60  1  pickup
cleanup   unix  n  -  n  -   0  cleanup
qmgr      unix  n  -  n  300 1  qmgr
tlsmgr    unix  -  -  n  1000? 1  tlsmgr
rewrite   unix  -  -  n  -   -  trivial-rewrite
bounce    unix  -  -  n  -   0  bounce
defer     unix  -  -  n  -   0  bounce
trace     unix  -  -  n  -   0  bounce
verify    unix  -  -  n  -   1  verify
flush     unix  n  -  n  1000? 0  flush
proxymap  unix  -  -  n  -   -  proxymap
proxywrite unix -  -  n  -   1  proxymap
smtp      unix  -  -  n  -   -  smtp
relay     unix  -  -  n  -   -  smtp
showq     unix  n  -  n  -   -  showq
error     unix  -  -  n  -   -  error
retry     unix  -  -  n  -   -  error
discard   unix  -  -  n  -   -  discard
local     unix  -  n  n  -   -  local
virtual   unix  -  n  n  -   -  virtual
lmtp      unix  -  -  n  -   -  lmtp
anvil     unix  -  -  n  -   1  anvil
scache    unix  -  -  n  -   1  scache
postlog   unix-dgram n -  n  -   1  postlogd
EOF
    chown postfix "$PFW/data"
    if postfix -c "$PFW/etc" check >"$PFW/check.out" 2>&1 && postfix -c "$PFW/etc" start >/dev/null 2>&1; then
        PF_ETC=$PFW/etc
        for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PF_PORT") 2>/dev/null && break; sleep 0.1; done
        echo "# postfix $(postconf -c "$PFW/etc" -h mail_version), relayhost = smtp-sink"
        measure warmup "$PF_PORT" 100
        measure postfix "$PF_PORT"
    else
        echo "# postfix did not start:"; cat "$PFW/check.out"
    fi
    cleanup
    rm -rf "$PFW/spool"
fi

# ---------------------------------------------------------------- compare
fig() {     # fig SYSTEM KEY
    awk -v s="$1" -v k="$2=" '$1 == s && $2 == "relay_out_1KB" { for (i = 3; i <= NF; i++) if (index($i, k) == 1) { print substr($i, length(k) + 1); exit } }' "$RESULTS"
}
row() {
    awk -v l="$1" -v c="$2" -v p="$3" -v u="$4" -v b="$5" 'BEGIN {
        r = "NA"
        if (c != "" && p != "" && c != "NA" && p != "NA" && p + 0 > 0) r = sprintf("%.2f", c / p)
        printf "%-28s %12s %12s %8s  %-7s %s\n", l, (c == "" ? "NA" : c), (p == "" ? "NA" : p), r, u, b }'
}
echo
echo "# outbound comparison (both relaying to smtp-sink on loopback)"
printf "%-28s %12s %12s %8s  %-7s %s\n" figure correio postfix ratio unit note
row relay_out_1KB_accept "$(fig correio msgs/s)" "$(fig postfix msgs/s)" msg/s "higher is better"
row relay_out_1KB_e2e "$(fig correio e2e_msgs/s)" "$(fig postfix e2e_msgs/s)" msg/s "higher is better; until the sink has them all"
exit 0
