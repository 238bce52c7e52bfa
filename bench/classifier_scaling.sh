#!/bin/bash
# bench/classifier_scaling.sh BUILD - does throughput grow with classifier
# workers?  1, then 2, then 4 classifiers on one host, with a deliberately
# expensive rule set so that the classifier is the bottleneck.
#
#   bash bench/classifier_scaling.sh build   (bench/run.sh runs it; SCALING=0 skips)
#
# 1. bench/classifier_scaling.py writes the rules ($RULES body and rawbody
#    regexes that backtrack over the whole text and never match: ~0.1 ms
#    of CPU per rule and 5 KB message, so one classifier does about
#    50-100 msg/s on an idle 2-core machine) and a ham-like
#    message of $SIZE bytes (smtp-source -F sends that one file N times);
# 2. per round (W = 1, 2, 4), fresh directories: ingress, router and
#    delivery run standalone (`correio-STAGE -c MAIN`, what `correio run`
#    starts, minus the supervisor, which would start its own classifier);
#    classifier i runs as `correio-classifier -c W_i` with its own
#    directory: own admin socket, own metrics port, bound to
#    tcp://127.0.0.i:PORT.  The ingress's classifier_endpoint is
#    tcp://classifiers.bench.test:PORT, answered by tests/dns/zone_server.py
#    with 127.0.0.1 .. 127.0.0.W, so the ingress connects to every worker
#    (lib/discovery.h) and ZeroMQ's PUSH spreads the envelopes;
# 3. a warm-up of $WARMUP messages, then smtp-source sends N messages over
#    $SESSIONS parallel sessions; msgs/s = N / (time until N files are in
#    the Maildir's new/ - time smtp-source started), end to end;
#    per worker: messages it classified in the timed batch (its
#    correio_classifier_messages_total on /metrics; the count of
#    "classified" log lines when that cannot be read) and its CPU seconds
#    (utime+stime, /proc/PID/stat);
# 4. prints a table: workers, msgs/s, speed-up vs 1 worker, accept/s
#    (SMTP side only), each worker's share, their CPU seconds, classifier
#    CPU ms per message, the other stages' CPU ms per message, the load
#    average at the round's start, CPU count.
#    Nothing is asserted.  On a shared machine msgs/s moves with the load;
#    ms/msg does not, and CPUs x 1000 / ms/msg bounds msgs/s from above.
# CurveZMQ: the name is not loopback to curve_decide, so the bench sets
# curve_allow_plaintext = yes (every hop is on 127.0.0.0/8 anyway).
#
# Knobs: N_SCALE [2000] SIZE [5120] SESSIONS_SCALE [40] RULES [200]
#        WORKERS ["1 2 4"] WARMUP [40] SCALE_WORK [/var/tmp/correio-scaling]
#        TIMEOUT_SCALE [600] (seconds per round before it is reported NA)
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -uo pipefail
export LC_ALL=C

BUILD=${1:-build}
REPO=$(cd "$(dirname "$0")/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD=$REPO/$BUILD ;; esac
N=${N_SCALE:-2000}
SIZE=${SIZE:-5120}
SESSIONS=${SESSIONS_SCALE:-40}
RULES=${RULES:-200}
WORKERS=${WORKERS:-1 2 4}
WARMUP=${WARMUP:-40}
WORK=${SCALE_WORK:-/var/tmp/correio-scaling}
TIMEOUT=${TIMEOUT_SCALE:-600}
MAIL_OWNER=${MAIL_OWNER:-correio}
PY=/usr/bin/python3
HELPER="$PY $REPO/bench/classifier_scaling.py"
SMTP_SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
NAME=classifiers.bench.test
HZ=$(getconf CLK_TCK)
CPUS=$(nproc)

for s in ingress classifier router delivery; do
    [ -x "$BUILD/bin/correio-$s" ] || { echo "scaling bench: no $BUILD/bin/correio-$s (run make first)" >&2; exit 1; }
done
[ -x "$SMTP_SOURCE" ] || { echo "scaling bench: smtp-source missing (apt-get install postfix)" >&2; exit 1; }

rm -rf "$WORK"
mkdir -p "$WORK"
chmod 755 "$WORK"
$HELPER rules "$WORK/expensive.cf" "$RULES" || exit 1
$HELPER message "$WORK/message.eml" "$SIZE" || exit 1
chmod 644 "$WORK/expensive.cf" "$WORK/message.eml"

# the DNS server: NAME -> 127.0.0.1 .. 127.0.0.W, rewritten per round
ZONE=$WORK/zone
: >"$ZONE"
"$PY" "$REPO/tests/dns/zone_server.py" "$ZONE" "$WORK/dnsport" </dev/null >"$WORK/dns.log" 2>&1 &
DNS=$!
PIDS=()
LABELS=()

now() { date +%s.%N; }
cpu_ticks() {            # cpu_ticks PID: utime+stime
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || { echo 0; return; }
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
stop_all() {
    local p i
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    PIDS=()
    LABELS=()
}
cleanup() {
    stop_all
    kill -TERM "$DNS" 2>/dev/null
    wait "$DNS" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 100); do [ -s "$WORK/dnsport" ] && break; sleep 0.1; done
[ -s "$WORK/dnsport" ] || { echo "scaling bench: the zone server did not start" >&2; cat "$WORK/dns.log" >&2; exit 1; }
DNS_SERVER=127.0.0.1:$(cat "$WORK/dnsport")

# own_dir DIR - a config directory whose run/ data/ mail/ mail_owner can
# fill once the stages drop root, as `correio run` would have made it
own_dir() {
    mkdir -p "$1"/{run,data,mail}
    chmod 755 "$1"
    if [ "$(id -u)" = 0 ]; then chown "$MAIL_OWNER:" "$1"/{run,data,mail} || exit 1; fi
    echo "b@local.example:{PLAIN}bench" >"$1/users"
    chmod 644 "$1/users"
}
common_conf() {
    cat <<EOF
myhostname = mx.bench.example
mydestination = local.example
mynetworks = 127.0.0.0/8
mail_owner = $MAIL_OWNER
dns_servers = $DNS_SERVER
dns_timeout = 1s
dns_tries = 1
discovery_interval = 1s
smtpd_peername_lookup = no
curve_allow_plaintext = yes
EOF
}
# start LABEL STAGE DIR READY - start a stage in the foreground, wait for
# READY in its log
start() {
    local label=$1 stage=$2 dir=$3 ready=$4 log=$WORK/$1.log p
    "$BUILD/bin/correio-$stage" -c "$dir" </dev/null >>"$log" 2>&1 &
    p=$!
    PIDS+=("$p")
    LABELS+=("$label")
    for _ in $(seq 1 300); do
        grep -q "$ready" "$log" 2>/dev/null && return 0
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    echo "scaling bench: $label did not start; its log:" >&2
    tail -n 20 "$log" >&2
    exit 1
}
count_new() { find "$NEW" -maxdepth 1 -type f 2>/dev/null | wc -l; }
wait_count() {           # wait_count N LIMIT_S
    local n=$1 limit=$2 t0
    t0=$(date +%s)
    while [ "$(count_new)" -lt "$n" ]; do
        if [ $(( $(date +%s) - t0 )) -gt "$limit" ]; then
            echo "scaling bench: timeout: $(count_new) of $n messages delivered" >&2
            return 1
        fi
        sleep 0.05
    done
}
classified() {           # classified I: messages worker I classified so far
    local v
    v=$($HELPER metric "http://127.0.0.$1:$MPORT/metrics" correio_classifier_messages_total)
    if [ "$v" = NA ]; then v=$(grep -c ': classified ' "$WORK/r$ROUND-classifier-$1.log"); fi
    echo "$v"
}

ADDRS="127.0.0.1 127.0.0.2 127.0.0.3 127.0.0.4"
CPORT=$($HELPER port $ADDRS) || { echo "scaling bench: no port free on $ADDRS" >&2; exit 1; }
MPORT=$($HELPER port $ADDRS) || exit 1
echo "# classifier scaling bench on $CPUS CPUs, $(uname -r); $RULES expensive rules" \
     "($WORK/expensive.cf), $N x $(stat -c %s "$WORK/message.eml") B messages," \
     "$SESSIONS sessions; load $(cut -d' ' -f1-3 /proc/loadavg)"

declare -A RATE SHARE CPUMS ACCEPT MSCPU LOAD MSPIPE
for W in $WORKERS; do
    ROUND=$W
    TOP=$WORK/r$W
    MAIN=$TOP/main
    own_dir "$MAIN"
    PORT=$($HELPER port 127.0.0.1) || exit 1
    { common_conf; cat <<EOF
smtpd_listen = 127.0.0.1:$PORT
smtpd_session_limit = 1000
mail_root = $MAIN/mail
data_directory = $MAIN/data
run_directory = $MAIN/run
classifier_endpoint = tcp://$NAME:$CPORT
router_endpoint = ipc://$MAIN/run/router
ingress_events_endpoint = ipc://$MAIN/run/ingress-events
pipeline_ack_timeout = 10m
EOF
    } >"$MAIN/correio.conf"
    NEW=$MAIN/mail/local.example/b/new
    : >"$ZONE.tmp"
    for i in $(seq 1 "$W"); do echo "$NAME A 127.0.0.$i" >>"$ZONE.tmp"; done
    mv "$ZONE.tmp" "$ZONE"

    start "r$W-delivery" delivery "$MAIN" started
    start "r$W-router" router "$MAIN" started
    OPIDS=("${PIDS[@]}")
    CPIDS=()
    for i in $(seq 1 "$W"); do
        d=$TOP/classifier-$i
        own_dir "$d"
        { common_conf; cat <<EOF
run_directory = $d/run
data_directory = $d/data
mail_root = $d/mail
classifier_endpoint = tcp://127.0.0.$i:$CPORT
classifier_metrics_listen = 127.0.0.$i:$MPORT
router_endpoint = ipc://$MAIN/run/router
spam_rules_files = $WORK/expensive.cf
spam_outbound_scan = scan
EOF
        } >"$d/correio.conf"
        start "r$W-classifier-$i" classifier "$d" started
        CPIDS+=("${PIDS[-1]}")
    done
    start "r$W-ingress" ingress "$MAIN" "listening on"
    OPIDS+=("${PIDS[-1]}")
    # every worker joined the ingress's PUSH socket
    for _ in $(seq 1 100); do
        j=$(grep -c ":$CPORT joined" "$WORK/r$W-ingress.log")
        [ "$j" -ge "$W" ] && break
        sleep 0.1
    done
    [ "$j" -ge "$W" ] || echo "# warning: only $j of $W classifiers joined the ingress" >&2

    # warm-up (untimed): connections, page cache, JIT
    "$SMTP_SOURCE" -s 4 -m "$WARMUP" -F "$WORK/message.eml" -f a@example.com -t b@local.example \
        "127.0.0.1:$PORT" >/dev/null 2>"$WORK/r$W-smtp-source.err"
    wait_count "$WARMUP" 120 || { RATE[$W]=NA; stop_all; continue; }
    find "$NEW" -maxdepth 1 -type f -delete

    declare -a n0 c0
    LOAD[$W]=$(cut -d' ' -f1 /proc/loadavg)
    p0=0
    for p in "${OPIDS[@]}"; do p0=$((p0 + $(cpu_ticks "$p"))); done
    for i in $(seq 1 "$W"); do n0[$i]=$(classified "$i"); c0[$i]=$(cpu_ticks "${CPIDS[$((i - 1))]}"); done
    t0=$(now)
    "$SMTP_SOURCE" -s "$SESSIONS" -m "$N" -F "$WORK/message.eml" -f a@example.com -t b@local.example \
        "127.0.0.1:$PORT" >/dev/null 2>>"$WORK/r$W-smtp-source.err"
    t1=$(now)
    if wait_count "$N" "$TIMEOUT"; then
        t2=$(now)
        RATE[$W]=$(awk -v n="$N" -v a="$t0" -v b="$t2" 'BEGIN { printf "%.1f", n / (b - a) }')
    else
        RATE[$W]=NA
    fi
    ACCEPT[$W]=$(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')
    share='' cpu=''
    tot=0 ctot=0
    for i in $(seq 1 "$W"); do
        d=$(( $(classified "$i") - n0[i] ))
        tot=$((tot + d))
        share="$share${share:+/}$d"
        c=$(( $(cpu_ticks "${CPIDS[$((i - 1))]}") - c0[i] ))
        ctot=$((ctot + c))
        cpu="$cpu${cpu:+/}$(awk -v c="$c" -v hz="$HZ" 'BEGIN { printf "%.1f", c / hz }')"
    done
    SHARE[$W]=$(awk -v s="$share" -v t="$tot" 'BEGIN {
        n = split(s, a, "/"); out = ""
        for (i = 1; i <= n; i++) out = out (i > 1 ? "/" : "") (t > 0 ? sprintf("%.0f%%", 100 * a[i] / t) : "NA")
        print out }')" ($share)"
    CPUMS[$W]=$cpu
    p1=0
    for p in "${OPIDS[@]}"; do p1=$((p1 + $(cpu_ticks "$p"))); done
    MSPIPE[$W]=$(awk -v c="$((p1 - p0))" -v hz="$HZ" -v n="$N" 'BEGIN { printf "%.1f", c * 1000 / hz / n }')
    MSCPU[$W]=$(awk -v c="$ctot" -v hz="$HZ" -v n="$tot" 'BEGIN { if (n > 0) printf "%.1f", c * 1000 / hz / n; else print "NA" }')
    delivered=$(count_new)
    echo "# $W worker(s): $delivered delivered (of $N), e2e ${RATE[$W]} msg/s, accept ${ACCEPT[$W]} msg/s," \
         "classified $tot, worker CPU s $cpu"
    [ "$delivered" -gt "$N" ] && echo "# $W worker(s): $((delivered - N)) duplicates delivered"
    [ -s "$WORK/r$W-smtp-source.err" ] && { echo "# smtp-source said:"; head -n 3 "$WORK/r$W-smtp-source.err"; }
    lim=$(cat "$WORK/r$W"-classifier-*.log | grep -c 'taken as no match')
    [ "$lim" -gt 0 ] && echo "# $W worker(s): $lim rule(s) hit PCRE2's match limit (see $WORK/r$W-classifier-*.log)"
    stop_all
    rm -rf "$MAIN/mail" "$MAIN/data"
done

# ---------------------------------------------------------------- report
echo
echo "# classifier scaling: end-to-end msg/s (SMTP accepted -> Maildir), $N x $SIZE B, $RULES expensive rules, $CPUS CPUs"
printf "%-8s %8s %8s %9s  %-36s %-20s %7s %7s %5s %s\n" workers "msgs/s" speed-up "accept/s" \
    "per-worker share (count)" "worker CPU s" "ms/msg" "others" load cpus
base=${RATE[1]:-NA}
for W in $WORKERS; do
    r=${RATE[$W]:-NA}
    up=$(awk -v r="$r" -v b="$base" 'BEGIN { if (r + 0 > 0 && b + 0 > 0) printf "%.2fx", r / b; else print "NA" }')
    printf "%-8s %8s %8s %9s  %-36s %-20s %7s %7s %5s %s\n" "$W" "$r" "$up" "${ACCEPT[$W]:-NA}" \
        "${SHARE[$W]:-NA}" "${CPUMS[$W]:-NA}" "${MSCPU[$W]:-NA}" "${MSPIPE[$W]:-NA}" "${LOAD[$W]:-NA}" "$CPUS"
done
echo "# ms/msg: classifier CPU per message (all workers' utime+stime / messages they classified);"
echo "# others: ingress + router + delivery CPU ms per message (smtp-source not counted);"
echo "# load: 1-min load average when the round started (other work on the machine skews msgs/s)."
for W in $WORKERS; do
    if [ "$W" -gt "$CPUS" ]; then
        echo "# note: $W workers on $CPUS CPUs: workers beyond the core count cannot add throughput" \
             "(they share the same cores with each other and with ingress, router, delivery and" \
             "smtp-source); expect no gain past $CPUS, and less than ${CPUS}x at $CPUS."
        awk -v c="$CPUS" '{ for (i = 1; i <= NF; i++) if ($i + 0 > c) { exit 0 } exit 1 }' <<<"${LOAD[*]}" &&
            echo "# note: the load average exceeded $CPUS during the run: other processes compete for the" \
                 "cores, msgs/s is indicative only, and extra workers may win a larger share of the CPU" \
                 "from those processes (not added capacity)."
        break
    fi
done
exit 0
