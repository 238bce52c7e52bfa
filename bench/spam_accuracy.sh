#!/bin/bash
# bench/spam_accuracy.sh BUILD - correio's classifier next to SpamAssassin:
# accuracy on a labelled ham/spam set, and speed per worker.
#
#   bash bench/spam_accuracy.sh build      (bench/run.sh runs it; SPAM=0 skips)
#
# 1. bench/spam_corpus.py builds the set in $WORK/corpus: SpamAssassin's own
#    samples (Debian package) and GTUBE ("sa"), generated ham and spam from
#    the A templates and, held out, from different B templates;
# 2. starts `correio -c DIR run` on 127.0.0.1 with spam_rules_files =
#    classifier/rules/default.cf, sends every message over SMTP and reads
#    the verdict from the X-Spam-Status the classifier added in the Maildir;
# 3. starts spamd (the Debian package's rules in /usr/share/spamassassin, no
#    sa-update: it needs the network; -L: local tests only, no DNS; Bayes
#    and auto-learn off, so both sides run fixed rules) and scores the same
#    messages with spamc;
# 4. prints precision and recall per set, per template, and correio's rules
#    that fire on ham (bench/spam_eval.py report);
# 4b. a Bayes round (BAYES=0 skips it): `correio bayes train` and sa-learn
#    both learn set A (ham and spam), correio runs again with spam_bayes =
#    yes and spamd with use_bayes 1 (auto-learn off, both with
#    spam_bayes_min_learned / bayes_min_*_num = BAYES_MIN, as set A has
#    fewer than the defaults' 200), both score the whole set again; set B
#    is the held-out figure.  Also correio's 10 KB speed with Bayes on;
# 5. speed, messages/s per worker for ~10 KB and ~100 KB messages (half ham,
#    half spam, text+HTML):
#      correio: N messages through the one classifier process; CPU time
#        (utime+stime, /proc/PID/stat) of that process across the batch;
#      SpamAssassin: spamd with one child, spamc one message at a time; CPU
#        time of spamd and its child (utime+stime+cutime+cstime) across the
#        batch.  Both are CPU seconds of the scanning worker only (not the
#        SMTP side, not spamc), so msgs/s = N / CPU s is per core.
# Nothing is asserted.
#
# Knobs: WORK [/var/tmp/correio-spam-bench] N_CORPUS [150 per class per half]
#        BAYES [1] BAYES_MIN [50]
#        N_C10K [2000] N_C100K [400] (correio batch sizes)
#        N_S10K [100] N_S100K [20] (SpamAssassin batch sizes)
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -uo pipefail
export LC_ALL=C

BUILD=${1:-build}
REPO=$(cd "$(dirname "$0")/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD=$REPO/$BUILD ;; esac
BIN=$BUILD/bin/correio
WORK=${WORK:-/var/tmp/correio-spam-bench}
N_CORPUS=${N_CORPUS:-150}
N_C10K=${N_C10K:-2000}
N_C100K=${N_C100K:-400}
N_S10K=${N_S10K:-100}
N_S100K=${N_S100K:-20}
BAYES=${BAYES:-1}
BAYES_MIN=${BAYES_MIN:-50}
PY=/usr/bin/python3
EVAL="$PY $REPO/bench/spam_eval.py"
HZ=$(getconf CLK_TCK)

[ -x "$BIN" ] || { echo "spam bench: no $BIN (run make first)" >&2; exit 1; }
command -v spamd >/dev/null && command -v spamc >/dev/null ||
    { echo "spam bench: spamd/spamc missing (apt-get install spamassassin spamc; mk/deps.sh)" >&2; exit 1; }

free_port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
cpu_ticks() {            # cpu_ticks PID [children]: utime+stime(+cutime+cstime)
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || { echo 0; return; }
    sed 's/^.*) //' "/proc/$1/stat" | awk -v c="${2:-}" '{ print $12 + $13 + (c ? $14 + $15 : 0) }'
}
now() { date +%s.%N; }

rm -rf "$WORK"
mkdir -p "$WORK"/{mail,data,run,dns,sa-conf,sa-home}
DIR=$WORK
CORPUS=$WORK/corpus

echo "# spam bench on $(nproc) CPUs; dir $DIR"
$PY "$REPO/bench/spam_corpus.py" "$CORPUS" "$N_CORPUS" || exit 1

# ---------------------------------------------------------------- correio
PORT=$(free_port)
DNS_PORT=
for _ in $(seq 1 30); do
    p=$((20000 + RANDOM % 10000))
    sh "$REPO/tests/dns/lab.sh" start "$DIR/dns" "$p" >/dev/null 2>&1
    case $? in 0) DNS_PORT=$p; break ;; 2) continue ;; *) break ;; esac
done
[ -n "$DNS_PORT" ] || { echo "spam bench: cannot start the DNS lab (tests/dns/lab.sh)" >&2; exit 1; }
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
spam_rules_files = $REPO/classifier/rules/default.cf
EOF
echo "b@local.example:{PLAIN}bench" >"$DIR/users"
USERDIR=$DIR/mail/local.example/b

SUP= SPAMD=
stage_pid() {            # stage_pid NAME
    local d argv
    for d in /proc/[0-9]*; do
        argv=$( { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null) || continue
        case "$argv" in *correio-$1" -c $DIR "*|*correio-$1" -c $DIR") echo "${d#/proc/}"; return ;; esac
    done
}
stop_correio() {
    if [ -n "$SUP" ] && kill -0 "$SUP" 2>/dev/null; then
        kill -TERM "$SUP" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$SUP" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SUP" 2>/dev/null
    fi
    SUP=
}
stop_spamd() {
    if [ -n "$SPAMD" ] && kill -0 "$SPAMD" 2>/dev/null; then
        kill -TERM "$SPAMD" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$SPAMD" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SPAMD" 2>/dev/null
    fi
    SPAMD=
}
cleanup() {
    stop_correio
    stop_spamd
    sh "$REPO/tests/dns/lab.sh" stop "$DIR/dns" >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_correio() {
    local up=0
    "$BIN" -c "$DIR" run >>"$DIR/log" 2>&1 &
    SUP=$!
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            ok=1
            for s in ingress classifier router delivery; do [ -n "$(stage_pid "$s")" ] || ok=0; done
            [ "$ok" = 1 ] && { up=1; break; }
        fi
        kill -0 "$SUP" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$up" != 1 ]; then
        echo "spam bench: correio did not come up on 127.0.0.1:$PORT; log:" >&2
        tail -n 30 "$DIR/log" >&2
        exit 1
    fi
}
start_correio
rules=$(grep -o 'spam rules: [0-9]* rules' "$DIR/log" | head -n 1)
echo "# correio: classifier/rules/default.cf (${rules:-rule count not logged}), spam_required_score default"

t0=$(now)
$EVAL correio "$PORT" "$USERDIR" "$CORPUS" "$DIR/correio.tsv"
t1=$(now)
echo "# correio scored the set in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s (SMTP in, Maildir out)"

# speed: CPU of the one classifier process across a batch
declare -A SPEED
for spec in "10k $N_C10K" "100k $N_C100K"; do
    set -- $spec
    $EVAL correio-batch "$PORT" "$USERDIR" "$CORPUS" "$1" 10     # untimed warm-up
    cp=$(stage_pid classifier)
    c0=$(cpu_ticks "$cp")
    $EVAL correio-batch "$PORT" "$USERDIR" "$CORPUS" "$1" "$2"
    c1=$(cpu_ticks "$cp")
    [ "$(stage_pid classifier)" = "$cp" ] || echo "# classifier restarted during the $1 batch" >&2
    SPEED[correio_$1]=$(awk -v n="$2" -v a="$c0" -v b="$c1" -v hz="$HZ" \
        'BEGIN { s = (b - a) / hz; if (s > 0) printf "%.0f (n=%d, cpu %.2f s)", n / s, n, s; else print "NA" }')
done
stop_correio

# ---------------------------------------------------------------- correio + Bayes
if [ "$BAYES" = 1 ]; then
    printf 'spam_bayes = yes\nspam_bayes_min_learned = %s\n' "$BAYES_MIN" >>"$DIR/correio.conf"
    t0=$(now)
    "$BIN" -c "$DIR" bayes train ham "$CORPUS/A/ham" | sed 's/^/# correio bayes: /'
    "$BIN" -c "$DIR" bayes train spam "$CORPUS/A/spam" | sed 's/^/# correio bayes: /'
    t1=$(now)
    echo "# correio bayes train took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
    rm -rf "${USERDIR:?}"           # the first round's copies carry the same X-Bench-Id
    start_correio
    $EVAL correio "$PORT" "$USERDIR" "$CORPUS" "$DIR/correio-bayes.tsv"
    grep -q "bayes: using the database" "$DIR/log" ||
        echo "# correio: the classifier did not log that it uses the Bayes database" >&2
    $EVAL correio-batch "$PORT" "$USERDIR" "$CORPUS" 10k 10     # untimed warm-up
    cp=$(stage_pid classifier)
    c0=$(cpu_ticks "$cp")
    $EVAL correio-batch "$PORT" "$USERDIR" "$CORPUS" 10k "$N_C10K"
    c1=$(cpu_ticks "$cp")
    SPEED[correio_bayes_10k]=$(awk -v n="$N_C10K" -v a="$c0" -v b="$c1" -v hz="$HZ" \
        'BEGIN { s = (b - a) / hz; if (s > 0) printf "%.0f (n=%d, cpu %.2f s)", n / s, n, s; else print "NA" }')
    stop_correio
fi

# ---------------------------------------------------------------- SpamAssassin
SA_PORT=$(free_port)
cp -r /etc/spamassassin/. "$DIR/sa-conf/"
cat >"$DIR/sa-conf/zz_bench.cf" <<'EOF'
# bench: fixed rules only, as correio's side
use_bayes 0
bayes_auto_learn 0
EOF
SA_USER=()
if [ "$(id -u)" = 0 ]; then
    chown nobody "$DIR/sa-home" 2>/dev/null
    SA_USER=(-u nobody)
fi
SA_CONF=$DIR/sa-conf
start_spamd() {          # start_spamd CHILDREN
    spamd -L -x --siteconfigpath="$SA_CONF" --helper-home-dir="$DIR/sa-home" \
        "${SA_USER[@]}" -i 127.0.0.1 -A 127.0.0.1 -p "$SA_PORT" \
        --min-children="$1" --max-children="$1" --min-spare=0 --max-spare="$1" \
        --max-conn-per-child=1000000 -s "$DIR/spamd.log" >/dev/null 2>&1 &
    SPAMD=$!
    for _ in $(seq 1 600); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$SA_PORT") 2>/dev/null; then return 0; fi
        kill -0 "$SPAMD" 2>/dev/null || break
        sleep 0.1
    done
    echo "spam bench: spamd did not come up; log:" >&2
    tail -n 20 "$DIR/spamd.log" >&2
    return 1
}
sa_ticks() {             # spamd and its children, waited-for ones included
    local t p
    t=$(cpu_ticks "$SPAMD" c)
    for p in $(ps -o pid= --ppid "$SPAMD" 2>/dev/null); do t=$((t + $(cpu_ticks "$p"))); done
    echo "$t"
}
echo "# spamassassin: $(spamassassin -V | head -n 1), rules of the Debian package (/usr/share/spamassassin,"\
     "no sa-update), spamd -L (no network tests), Bayes off, required_score default"
SA_OK=0
if start_spamd "$(nproc)"; then
    t0=$(now)
    $EVAL sa "$SA_PORT" "$CORPUS" "$DIR/sa.tsv" "$(nproc)" && SA_OK=1
    t1=$(now)
    echo "# spamassassin scored the set in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s ($(nproc) spamd children)"
    stop_spamd
fi
[ "$SA_OK" = 1 ] || : >"$DIR/sa.tsv"
if [ "$SA_OK" = 1 ] && start_spamd 1; then
    # warm up the child (first messages compile and load lazily), untimed
    $EVAL sa-batch "$SA_PORT" "$CORPUS" 10k 2
    for spec in "10k $N_S10K" "100k $N_S100K"; do
        set -- $spec
        $EVAL sa-batch "$SA_PORT" "$CORPUS" "$1" 1     # untimed: this size's first
        c0=$(sa_ticks)
        t0=$(now)
        $EVAL sa-batch "$SA_PORT" "$CORPUS" "$1" "$2"
        t1=$(now)
        c1=$(sa_ticks)
        SPEED[sa_$1]=$(awk -v n="$2" -v a="$c0" -v b="$c1" -v hz="$HZ" -v w0="$t0" -v w1="$t1" \
            'BEGIN { s = (b - a) / hz; if (s > 0) printf "%.1f (n=%d, cpu %.2f s, wall %.1f msg/s)", n / s, n, s, n / (w1 - w0); else print "NA" }')
    done
    stop_spamd
fi

# ---------------------------------------------------------------- SpamAssassin + Bayes
SA_BAYES_OK=0
if [ "$BAYES" = 1 ] && [ "$SA_OK" = 1 ]; then
    mkdir -p "$DIR/sa-conf-bayes" "$DIR/sa-bayes"
    cp -r /etc/spamassassin/. "$DIR/sa-conf-bayes/"
    {
        echo "# bench, Bayes round: the same fixed rules plus Bayes learned from set A"
        echo "use_bayes 1"
        echo "bayes_auto_learn 0"
        echo "bayes_path $DIR/sa-bayes/bayes"
        echo "bayes_file_mode 0777"
        echo "bayes_min_ham_num $BAYES_MIN"
        echo "bayes_min_spam_num $BAYES_MIN"
    } >"$DIR/sa-conf-bayes/zz_bench.cf"
    t0=$(now)
    for l in ham spam; do
        sa-learn -L --siteconfigpath="$DIR/sa-conf-bayes" --dbpath "$DIR/sa-bayes/bayes" \
            --"$l" "$CORPUS/A/$l" 2>&1 | sed 's/^/# sa-learn: /'
    done
    t1=$(now)
    echo "# sa-learn took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
    [ "$(id -u)" = 0 ] && chown -R nobody "$DIR/sa-bayes" 2>/dev/null
    SA_CONF=$DIR/sa-conf-bayes
    if start_spamd "$(nproc)"; then
        $EVAL sa "$SA_PORT" "$CORPUS" "$DIR/sa-bayes.tsv" "$(nproc)" && SA_BAYES_OK=1
        stop_spamd
    fi
fi
[ "$SA_BAYES_OK" = 1 ] || : >"$DIR/sa-bayes.tsv"

# ---------------------------------------------------------------- report
echo
$EVAL report "$CORPUS" "$DIR/correio.tsv" "$DIR/sa.tsv"
if [ "$BAYES" = 1 ]; then
    echo
    echo "# with Bayes, both trained on set A (so set B is the held-out figure)"
    $EVAL report "$CORPUS" "$DIR/correio-bayes.tsv" "$DIR/sa-bayes.tsv" +bayes | sed -n '1,/^$/p'
    echo "# BAYES_ hits of correio on set B: $(awk -F'\t' '$1 ~ /^B\// { n = split($4, t, ","); for (i = 1; i <= n; i++) if (t[i] ~ /^BAYES_/) c[t[i]]++ }
        END { for (k in c) printf "%s=%d ", k, c[k] }' "$DIR/correio-bayes.tsv")"
fi
echo
echo "# speed: messages per CPU second of one scanning worker (higher is better)"
printf "%-8s %-40s %-40s %s\n" size correio spamassassin ratio
for s in 10k 100k; do
    c=${SPEED[correio_$s]:-NA} a=${SPEED[sa_$s]:-NA}
    r=$(awk -v c="${c%% *}" -v a="${a%% *}" 'BEGIN { if (c + 0 > 0 && a + 0 > 0) printf "%.0fx", c / a; else print "NA" }')
    printf "%-8s %-40s %-40s %s\n" "$s" "$c" "$a" "$r"
done
[ "$BAYES" = 1 ] && printf "%-8s %-40s %s\n" "10k" "${SPEED[correio_bayes_10k]:-NA}" "(correio with spam_bayes = yes)"
echo "# correio's figure includes the classifier's ZeroMQ receive/send and protobuf work per message."
exit 0
