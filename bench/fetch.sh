#!/bin/bash
# bench/fetch.sh BUILD - correio-fetcher's speed against a real Dovecot on
# loopback, next to fetchmail fetching the same kind of mailbox into the
# same correio over SMTP.  Nothing is asserted; the numbers are printed.
#
#   1. starts a private Dovecot (tests/peers/dovecot_mailbox.sh) with four
#      mailboxes, each seeded with N_FETCH messages of SIZE_KB KB;
#   2. starts `correio run` (mydestination example.test, users b1..b4);
#   3. correio-fetcher takes mailbox 1 over IMAP, then mailbox 2 over
#      POP3 (delete mode): msgs/s until the session ends (every message
#      durable in the ingress) and until all are in the Maildir;
#   4. fetchmail (uidl, flush) takes mailbox 3 over POP3 and mailbox 4
#      over IMAP, handing each message to correio's SMTP listener: msgs/s
#      until fetchmail exits and until all are in the Maildir.
#
# Knobs: N_FETCH [500] SIZE_KB [10] WORK [/var/tmp/correio-bench-fetch]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -uo pipefail
export LC_ALL=C

BUILD=${1:-build}
REPO=$(cd "$(dirname "$0")/.." && pwd)
case "$BUILD" in /*) ;; *) BUILD=$REPO/$BUILD ;; esac
BIN=$BUILD/bin/correio
N=${N_FETCH:-500}
SIZE_KB=${SIZE_KB:-10}
WORK=${WORK:-/var/tmp/correio-bench-fetch}
ADDR=127.0.0.62
OWNER=$(getent passwd correio >/dev/null && echo correio || echo root)

[ -x "$BIN" ] || { echo "bench fetch: no $BIN (run make first)" >&2; exit 1; }
if [ "$(id -u)" != 0 ] || [ ! -x /usr/lib/dovecot/imap ] || [ ! -x /usr/lib/dovecot/pop3 ]; then
    echo "# fetch bench skipped: needs root and dovecot-pop3d/dovecot-imapd"; exit 0
fi

free_port() {
    python3 -c 'import socket, sys
for _ in range(200):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    ok = True
    for a, q in (("127.0.0.62", p), ("127.0.0.62", p + 1), ("127.0.0.62", p + 2), ("127.0.0.62", p + 3)):
        t = socket.socket()
        try: t.bind((a, q))
        except OSError: ok = False
        t.close()
    if ok: print(p); sys.exit(0)
sys.exit(1)'
}
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { d = b - a; printf "%.1f", (d > 0 ? n / d : 0) }'; }
count() { find "$WORK/mail/example.test/$1/new" -type f 2>/dev/null | wc -l; }
wait_count() {      # wait_count USER N SECONDS
    local deadline=$(( $(date +%s) + $3 ))
    while [ "$(count "$1")" -lt "$2" ]; do
        [ "$(date +%s)" -ge "$deadline" ] && return 1
        sleep 0.05
    done
}

rm -rf "$WORK"
mkdir -p "$WORK"/{mail,data,run,dc,tls}
cleanup() {
    [ -n "${CPID:-}" ] && kill "$CPID" 2>/dev/null && wait "$CPID" 2>/dev/null
    sh "$REPO/tests/peers/dovecot_mailbox.sh" stop "$WORK/dc" >/dev/null 2>&1
}
trap cleanup EXIT

# ---------------------------------------------------------------- Dovecot
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench -addext "subjectAltName=IP:$ADDR" \
    -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" >/dev/null 2>&1
chmod 644 "$WORK/tls/cert.pem"
for i in 1 2 3 4; do echo "r$i@mbx.test:{PLAIN}pw-$i"; done >"$WORK/users.dc"
DPORT=$(free_port) || { echo "bench fetch: no free ports" >&2; exit 1; }
sh "$REPO/tests/peers/dovecot_mailbox.sh" start "$WORK/dc" "$ADDR" "$DPORT" \
    "$WORK/tls/cert.pem" "$WORK/tls/key.pem" "$WORK/users.dc" || { echo "bench fetch: dovecot did not start" >&2; exit 1; }
python3 - "$WORK/dc/mail/mbx.test" "$N" "$SIZE_KB" <<'EOF'
import os, pwd, sys
root, n, kb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pw = pwd.getpwnam("mailtest")
line = ("x" * 76 + "\r\n").encode()
for u in range(1, 5):
    md = os.path.join(root, "r%d" % u)
    for sub in ("", "tmp", "new", "cur"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
        os.chown(os.path.join(md, sub), pw.pw_uid, pw.pw_gid)
    for i in range(n):
        data = (b"From: bench@remote.example\r\nTo: r%d@mbx.test\r\nSubject: bench %d\r\n"
                b"Message-ID: <bench-%d-%d@mbx.test>\r\n\r\n" % (u, i, u, i)) + line * (kb * 1024 // 78)
        name = "%d.M%dP%d.bench,S=%d" % (1700000000 + i, i, u, len(data))
        p = os.path.join(md, "new", name)
        with open(p, "wb") as f:
            f.write(data)
        os.chown(p, pw.pw_uid, pw.pw_gid)
EOF

# ---------------------------------------------------------------- correio
SPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$WORK/correio.conf" <<EOF
myhostname = mx.example.test
mydestination = example.test
mynetworks = 127.0.0.0/8
smtpd_listen = 127.0.0.1:$SPORT
mail_root = $WORK/mail
data_directory = $WORK/data
run_directory = $WORK/run
mail_owner = $OWNER
dns_servers = 127.0.0.1:1
smtpd_peername_lookup = no
fetch_interval = 1d
message_size_limit = 50m
EOF
for i in 1 2 3 4; do echo "b$i@example.test:{PLAIN}x"; done >"$WORK/users"
chown -R "$OWNER" "$WORK/mail" "$WORK/data" "$WORK/run"
chmod 755 "$WORK"
"$BIN" -c "$WORK" run >"$WORK/log" 2>&1 &
CPID=$!
for _ in $(seq 1 200); do "$BIN" -c "$WORK" fetch list >/dev/null 2>&1 && break; sleep 0.1; done

# fetcher_run NAME PROTO PORT USER LOCAL - one account, timed
fetcher_run() {
    local name=$1 proto=$2 port=$3 u=$4 local=$5 t0 t1 t2
    cat >"$WORK/fetch_accounts" <<EOF
account $name
  server $ADDR
  port $port
  protocol $proto
  tls none
  user r$u@mbx.test
  password pw-$u
  forward_to $local@example.test
  keep no
EOF
    chmod 600 "$WORK/fetch_accounts"; chown "$OWNER" "$WORK/fetch_accounts"
    t0=$(now)
    kill -HUP "$CPID"        # the supervisor passes it on: the fetcher reads the file again
    # the session's end: fetch list shows a run and the account not active
    python3 - "$BIN" "$WORK" "$name" <<'PYEOF'
import json, subprocess, sys, time
prog, work, name = sys.argv[1:]
deadline = time.time() + 600
while time.time() < deadline:
    p = subprocess.run([prog, "-c", work, "fetch", "list", "--json"], capture_output=True, text=True)
    for l in p.stdout.splitlines():
        d = json.loads(l)
        if d["account"] == name and d["runs"] >= 1 and d["state"] != "active":
            sys.exit(0)
    time.sleep(0.05)
sys.exit(1)
PYEOF
    t1=$(now)
    wait_count "$local" "$N" 300 || echo "# $name: only $(count "$local") of $N in the Maildir"
    t2=$(now)
    echo "correio_fetcher_$proto n=$N size=${SIZE_KB}KB fetched_msgs/s=$(rate "$N" "$t0" "$t1") e2e_msgs/s=$(rate "$N" "$t0" "$t2")"
}

# fetchmail_run PROTO PORT USER LOCAL
fetchmail_run() {
    local proto=$1 port=$2 u=$3 local=$4 rc t0 t1 t2
    cat >"$WORK/fetchmailrc" <<EOF
set no bouncemail
set no syslog
set idfile "$WORK/fetchids-$proto"
poll $ADDR service $port protocol $proto uidl timeout 60
  user "r$u@mbx.test" there with password "pw-$u" is "root" here
  flush
  smtphost "127.0.0.1/$SPORT" smtpname "$local@example.test"
EOF
    chmod 600 "$WORK/fetchmailrc"
    t0=$(now)
    fetchmail -f "$WORK/fetchmailrc" --nosslcertck --sslproto '' -s >"$WORK/fetchmail-$proto.log" 2>&1
    rc=$?
    t1=$(now)
    wait_count "$local" "$N" 300 || echo "# fetchmail $proto: only $(count "$local") of $N in the Maildir (exit $rc)"
    t2=$(now)
    echo "fetchmail_$proto n=$N size=${SIZE_KB}KB fetched_msgs/s=$(rate "$N" "$t0" "$t1") e2e_msgs/s=$(rate "$N" "$t0" "$t2") exit=$rc"
}

echo "# fetch: $N messages of ${SIZE_KB} KB per mailbox, Dovecot $(dovecot --version 2>/dev/null | cut -d' ' -f1) on $ADDR, plain (no TLS)"
R=$WORK/results
{
    fetcher_run bimap imap $((DPORT + 2)) 1 b1
    fetcher_run bpop3 pop3 "$DPORT" 2 b2
    if command -v fetchmail >/dev/null; then
        fetchmail_run pop3 "$DPORT" 3 b3
        fetchmail_run imap $((DPORT + 2)) 4 b4
    else
        echo "# fetchmail not installed (apt-get install fetchmail)"
    fi
} | tee "$R"

fig() { awk -v s="$1" -v k="$2=" '$1 == s { for (i = 2; i <= NF; i++) if (index($i, k) == 1) { print substr($i, length(k) + 1); exit } }' "$R"; }
echo
echo "# fetch comparison (msg/s, higher is better)"
printf "%-24s %12s %12s %8s\n" figure correio fetchmail ratio
for p in imap pop3; do
    for k in fetched_msgs/s e2e_msgs/s; do
        c=$(fig "correio_fetcher_$p" "$k"); f=$(fig "fetchmail_$p" "$k")
        awk -v l="${p}_${k%/s}" -v c="${c:-NA}" -v f="${f:-NA}" 'BEGIN {
            r = (c != "NA" && f != "NA" && f + 0 > 0) ? sprintf("%.2f", c / f) : "NA"
            printf "%-24s %12s %12s %8s\n", l, c, f, r }'
    done
done
exit 0
