#!/bin/bash
# bench/run.sh BUILD - correio's performance on loopback, beside Postfix's.
#
#   make bench            (or: bash bench/run.sh build)
#
# 1. starts `correio -c DIR run` on 127.0.0.1 (DIR under $WORK, on disk, not
#    tmpfs, so the fsyncs cost what they cost), mydestination local.example,
#    one user b@local.example;
# 2. loads it with Postfix's smtp-source (20 parallel sessions):
#      accept_1KB_20s, accept_100KB_20s, accept_1KB_20s_reused (-d)
#        accept msg/s   = N / time until smtp-source exits (last 250)
#        e2e msg/s      = N / time until N files are in the Maildir's new/
#      latency_1s_new_conn, latency_1s_reused (-d): one session, N_LAT msgs,
#        ms per message until its 250
#    and per stage: CPU ms per message (utime+stime from /proc/PID/stat,
#    before/after each scenario) and, at the end, peak memory (VmHWM);
# 3. stops correio and runs ../shared/bench/postfix-bench.sh (relative to
#    the repo) with small RUNS/N so the whole bench stays under ~10 min;
# 4. prints a comparison table with ratios correio/postfix;
# 5. runs bench/outbound.sh: correio and Postfix relaying N_OUT messages
#    to an smtp-sink (relayhost), with their own comparison;
# 6. runs bench/policy.sh: policy round trips/s and the latency
#    greylisting adds to a RCPT (p50/p99, SESSIONS parallel sessions).
# Nothing is asserted.
#
# Knobs: N_1K [4000] N_100K [800] N_LAT [500] SESSIONS [20] PORT [free]
#        WORK [/var/tmp/correio-bench] POSTFIX [1] (0 skips Postfix)
#        PF_RUNS [1] PF_N_1K [$N_1K] PF_N_100K [$N_100K] PF_N_LAT [$N_LAT]
#        OUTBOUND [1] (0 skips bench/outbound.sh) N_OUT [2000]
#        FETCH [1] (0 skips bench/fetch.sh: fetcher vs fetchmail) N_FETCH [500]
#        POLICY [1] (0 skips bench/policy.sh)
#        SPAM [1] (0 skips bench/spam_accuracy.sh: classifier vs SpamAssassin)
#        SCALING [1] (0 skips bench/classifier_scaling.sh: 1, 2, 4 classifiers)
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # make bench runs it with sh
set -uo pipefail
export LC_ALL=C

BUILD=${1:-build}
REPO=$(cd "$(dirname "$0")/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD=$REPO/$BUILD ;; esac
BIN=$BUILD/bin/correio
N_1K=${N_1K:-4000}
N_100K=${N_100K:-800}
N_LAT=${N_LAT:-500}
SESSIONS=${SESSIONS:-20}
WORK=${WORK:-/var/tmp/correio-bench}
POSTFIX=${POSTFIX:-1}
PF_SCRIPT=${PF_SCRIPT:-$(dirname "$REPO")/shared/bench/postfix-bench.sh}
SMTP_SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
STAGES="ingress classifier router delivery"
HZ=$(getconf CLK_TCK)

[ -x "$BIN" ] || { echo "bench: no $BIN (run make first)" >&2; exit 1; }
[ -x "$SMTP_SOURCE" ] || { echo "bench: smtp-source missing (apt-get install postfix)" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PORT=${PORT:-$(free_port)}

rm -rf "$WORK"
mkdir -p "$WORK"/{mail,data,run,dns}
DIR=$WORK

# The ingress looks every client's name up (PTR, then A), as Postfix does:
# give it a resolver on loopback (the test suite's DNS lab), as a host's
# local caching resolver would be.
DNS_PORT=
for _ in $(seq 1 30); do
    p=$((20000 + RANDOM % 10000))
    sh "$REPO/tests/dns/lab.sh" start "$DIR/dns" "$p" >/dev/null 2>&1
    case $? in 0) DNS_PORT=$p; break ;; 2) continue ;; *) break ;; esac
done
[ -n "$DNS_PORT" ] || { echo "bench: cannot start the DNS lab (tests/dns/lab.sh)" >&2; exit 1; }
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
EOF
echo "b@local.example:{PLAIN}bench" >"$DIR/users"
NEW=$DIR/mail/local.example/b/new
RESULTS=$DIR/results
: >"$RESULTS"

SUP=
cleanup() {
    if [ -n "$SUP" ] && kill -0 "$SUP" 2>/dev/null; then
        kill -TERM "$SUP" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$SUP" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SUP" 2>/dev/null
    fi
    for p in $(all_pids); do kill -KILL "$p" 2>/dev/null; done
    SUP=
    sh "$REPO/tests/dns/lab.sh" stop "$DIR/dns" >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# pids of this instance's processes: correio* with our DIR in argv
all_pids() {
    local d argv
    for d in /proc/[0-9]*; do
        argv=$( { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null) || continue
        case "$argv" in *correio*" -c $DIR "*|*correio*" -c $DIR") echo "${d#/proc/}" ;; esac
    done
}
stage_pid() {            # stage_pid NAME
    local d argv
    for d in /proc/[0-9]*; do
        argv=$( { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null) || continue
        case "$argv" in *correio-$1" -c $DIR "*|*correio-$1" -c $DIR") echo "${d#/proc/}"; return ;; esac
    done
}
cpu_ticks() {            # cpu_ticks PID: utime+stime
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || { echo 0; return; }
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
now() { date +%s.%N; }
count_new() { find "$NEW" -maxdepth 1 -type f 2>/dev/null | wc -l; }
wait_count() {           # wait_count N LIMIT_S: until new/ holds N files
    local n=$1 limit=$2 t0
    t0=$(date +%s)
    while [ "$(count_new)" -lt "$n" ]; do
        if [ $(( $(date +%s) - t0 )) -gt "$limit" ]; then
            echo "bench: timeout: $(count_new) of $n messages delivered" >&2
            return 1
        fi
        sleep 0.05
    done
}
result() { echo "$*" | tee -a "$RESULTS"; }

# ---------------------------------------------------------------- start
"$BIN" -c "$DIR" run >"$DIR/log" 2>&1 &
SUP=$!
up=0
for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        ok=1
        for s in $STAGES; do [ -n "$(stage_pid "$s")" ] || ok=0; done
        [ "$ok" = 1 ] && { up=1; break; }
    fi
    kill -0 "$SUP" 2>/dev/null || break
    sleep 0.1
done
if [ "$up" != 1 ]; then
    echo "bench: correio did not come up on 127.0.0.1:$PORT; log:" >&2
    tail -n 30 "$DIR/log" >&2
    exit 1
fi
echo "# correio bench on $(nproc) CPUs, $(uname -r); port $PORT; dir $DIR; load $(cut -d' ' -f1-3 /proc/loadavg)"

# scenario NAME N SIZE SESSIONS [smtp-source options]
scenario() {
    local name=$1 n=$2 size=$3 s=$4 t0 t1 t2 s0 s1 e2e s_ accept
    shift 4
    find "$NEW" -maxdepth 1 -type f -delete 2>/dev/null   # files only: delivery owns the dirs
    declare -A pid0 c0
    for s_ in $STAGES; do pid0[$s_]=$(stage_pid "$s_"); c0[$s_]=$(cpu_ticks "${pid0[$s_]}"); done
    t0=$(now)
    "$SMTP_SOURCE" "$@" -s "$s" -l "$size" -m "$n" -f a@example.com -t b@local.example \
        "127.0.0.1:$PORT" >/dev/null 2>"$DIR/smtp-source.err"
    t1=$(now)
    if wait_count "$n" 600; then
        t2=$(now)
        e2e=$(awk -v n="$n" -v a="$t0" -v b="$t2" 'BEGIN { printf "%.1f", n / (b - a) }')
    else
        e2e=NA
    fi
    accept=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')
    result "correio ${name} msgs/s=$accept e2e_msgs/s=$e2e n=$n size=$size sessions=$s $*"
    local line="correio cpu_ms_per_msg_${name}" tot=0 c1 p1 ms
    for s_ in $STAGES; do
        p1=$(stage_pid "$s_")
        c1=$(cpu_ticks "$p1")
        if [ "$p1" != "${pid0[$s_]}" ]; then line="$line $s_=restarted"; continue; fi
        ms=$(awk -v a="${c0[$s_]}" -v b="$c1" -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.3f", (b - a) * 1000 / hz / n }')
        tot=$(awk -v t="$tot" -v m="$ms" 'BEGIN { printf "%.3f", t + m }')
        line="$line $s_=$ms"
    done
    result "$line total=$tot"
    [ -s "$DIR/smtp-source.err" ] && { echo "# smtp-source said:"; head -n 5 "$DIR/smtp-source.err"; }
    sync
}

# latency NAME N [options]: one session, ms per message until its 250
latency() {
    local name=$1 n=$2 t0 t1
    shift 2
    find "$NEW" -maxdepth 1 -type f -delete 2>/dev/null
    t0=$(now)
    "$SMTP_SOURCE" "$@" -s 1 -l 1024 -m "$n" -f a@example.com -t b@local.example \
        "127.0.0.1:$PORT" >/dev/null 2>"$DIR/smtp-source.err"
    t1=$(now)
    wait_count "$n" 300 || true
    result "correio ${name} ms/msg=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }') n=$n $*"
    sync
}

scenario warmup 200 1024 "$SESSIONS" >/dev/null
scenario accept_1KB_20s "$N_1K" 1024 "$SESSIONS"
scenario accept_100KB_20s "$N_100K" 102400 "$SESSIONS"
scenario accept_1KB_20s_reused "$N_1K" 1024 "$SESSIONS" -d
latency latency_1s_new_conn "$N_LAT"
latency latency_1s_reused "$N_LAT" -d

line="correio peak_memory_kB"
for s in $STAGES; do
    p=$(stage_pid "$s")
    hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$p/status" 2>/dev/null)
    line="$line $s=${hwm:-NA}"
done
hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$SUP/status" 2>/dev/null)
result "$line supervisor=${hwm:-NA}"
restarts=$(grep -ciE 'restart|exited|signal' "$DIR/log" || true)
echo "# correio log lines mentioning restarts/exits: $restarts"
cleanup
rm -rf "$DIR/mail" "$DIR/data"

# ---------------------------------------------------------------- postfix
PF_OUT=$WORK/postfix.out
: >"$PF_OUT"
if [ "$POSTFIX" = 1 ] && [ -f "$PF_SCRIPT" ]; then
    echo "# running $PF_SCRIPT (RUNS=${PF_RUNS:-1}, N_1K=${PF_N_1K:-$N_1K}, N_100K=${PF_N_100K:-$N_100K}, N_LAT=${PF_N_LAT:-$N_LAT})"
    RUNS=${PF_RUNS:-1} N_1K=${PF_N_1K:-$N_1K} N_100K=${PF_N_100K:-$N_100K} \
        N_LAT=${PF_N_LAT:-$N_LAT} SESSIONS=$SESSIONS \
        SECTIONS=${PF_SECTIONS:-throughput latency cpu disk} \
        timeout 900 bash "$PF_SCRIPT" 2>&1 | tee "$PF_OUT"
elif [ "$POSTFIX" = 1 ]; then
    echo "# $PF_SCRIPT not found: no Postfix comparison"
fi

# ---------------------------------------------------------------- compare
pf() {      # pf FIGURE: Postfix's median
    awk -v f="$1" '$1 == f { for (i = 2; i <= NF; i++) if ($i ~ /^median=/) { sub(/median=/, "", $i); print $i; exit } }' "$PF_OUT"
}
co() {      # co NAME KEY: correio's figure
    awk -v n="$1" -v k="$2=" '$1 == "correio" && $2 == n { for (i = 3; i <= NF; i++) if (index($i, k) == 1) { print substr($i, length(k) + 1); exit } }' "$RESULTS"
}
row() {     # row LABEL CORREIO POSTFIX UNIT NOTE
    awk -v l="$1" -v c="$2" -v p="$3" -v u="$4" -v b="$5" 'BEGIN {
        r = "NA"
        if (c != "" && p != "" && c != "NA" && p + 0 > 0) r = sprintf("%.2f", c / p)
        printf "%-28s %12s %12s %8s  %-7s %s\n", l, (c == "" ? "NA" : c), (p == "" ? "NA" : p), r, u, b }'
}
echo
echo "# comparison (Postfix: maildir scenarios of postfix-bench.sh, median of its runs)"
printf "%-28s %12s %12s %8s  %-7s %s\n" figure correio postfix ratio unit note
row accept_1KB_20s        "$(co accept_1KB_20s msgs/s)"        "$(pf maildir_1KB_accept)"       msg/s "higher is better"
row e2e_1KB_20s           "$(co accept_1KB_20s e2e_msgs/s)"    "$(pf maildir_1KB_end_to_end)"   msg/s "higher is better"
row accept_100KB_20s      "$(co accept_100KB_20s msgs/s)"      "$(pf maildir_100KB_accept)"     msg/s "higher is better"
row e2e_100KB_20s         "$(co accept_100KB_20s e2e_msgs/s)"  "$(pf maildir_100KB_end_to_end)" msg/s "higher is better"
row accept_1KB_20s_reused "$(co accept_1KB_20s_reused msgs/s)" "$(pf relay_1KB_conn_reused_accept)" msg/s "higher is better; postfix: relay_1KB_conn_reused"
row latency_1s_new_conn   "$(co latency_1s_new_conn ms/msg)"   "$(pf latency_new_conn_per_msg)" ms/msg "lower is better; postfix: relay mode"
row latency_1s_reused     "$(co latency_1s_reused ms/msg)"     "$(pf latency_one_conn_reused)"  ms/msg "lower is better; postfix: relay mode"
pf_cpu=$(awk '$1 == "cpu_ms_per_msg_maildir_1KB" { for (i = 2; i <= NF; i++) if ($i ~ /^postfix_total=/) { sub(/postfix_total=/, "", $i); print $i } }' "$PF_OUT")
row cpu_ms_per_msg_1KB    "$(co cpu_ms_per_msg_accept_1KB_20s total)"         "$pf_cpu"                        ms/msg "lower is better; postfix: cpu_ms_per_msg_maildir_1KB total"

# ---------------------------------------------------------------- outbound
if [ "${OUTBOUND:-1}" = 1 ]; then
    echo
    POSTFIX=$POSTFIX SESSIONS=$SESSIONS timeout 900 bash "$REPO/bench/outbound.sh" "$BUILD"
fi

# ---------------------------------------------------------------- fetcher
if [ "${FETCH:-1}" = 1 ]; then
    echo
    timeout 900 bash "$REPO/bench/fetch.sh" "$BUILD"
fi

# ---------------------------------------------------------------- policy
if [ "${POLICY:-1}" = 1 ]; then
    echo
    SESSIONS=$SESSIONS timeout 300 bash "$REPO/bench/policy.sh" "$BUILD"
fi

# ---------------------------------------------------------------- spam
if [ "${SPAM:-1}" = 1 ]; then
    echo
    timeout 600 bash "$REPO/bench/spam_accuracy.sh" "$BUILD"
fi

# ---------------------------------------------------------------- scaling
if [ "${SCALING:-1}" = 1 ]; then
    echo
    timeout 900 bash "$REPO/bench/classifier_scaling.sh" "$BUILD"
fi
exit 0
