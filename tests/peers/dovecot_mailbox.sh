#!/bin/sh
# dovecot_mailbox.sh - a test-owned Dovecot serving POP3 and IMAP, the
# remote mailboxes of the fetcher's tests: POP3 on PORT, POP3S (implicit
# TLS) on PORT+1, IMAP on PORT+2, IMAPS on PORT+3, each on every address
# of ADDRS (comma-separated loopback addresses), STLS/STARTTLS offered on
# the plain ports.  Maildirs under DIR/mail/DOMAIN/USER (Maildir++; the
# test drops messages into .../new, owned by mailtest).
#
#   sh tests/peers/dovecot_mailbox.sh start DIR ADDRS PORT CERT KEY [USERS]
#        CERT/KEY: PEM files (copied into DIR for the daemon to read).
#        USERS: a passwd-file (user@domain:{PLAIN}password lines); the
#        default has alice@mbx.test (alice-secret) and bob@mbx.test
#        (bob-secret).  Exit 0 once the POP3 and IMAP ports greet; 1
#        otherwise (see DIR/dovecot.log); 3 when Dovecot or its POP3 or
#        IMAP server is not installed or we are not root.
#   sh tests/peers/dovecot_mailbox.sh stop DIR
#
# Dovecot runs as the unprivileged user mailtest (made here when
# missing), as shared/peers/dovecot.md does.  Needs root (to make the
# user and start as it) and the Debian packages dovecot-core,
# dovecot-pop3d and dovecot-imapd (mk/deps.sh).
set -u
U=mailtest
START_TIMEOUT=15        # seconds until every port must greet

usage() {
    echo "usage: dovecot_mailbox.sh start DIR ADDRS PORT CERT KEY [USERS] | stop DIR" >&2
    exit 1
}

pid_of() { cat "$1/run/master.pid" 2>/dev/null; }

dc_stop() {
    dir=$1
    pid=$(pid_of "$dir")
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null && grep -q dovecot "/proc/$pid/comm" 2>/dev/null; then
        kill "$pid"
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$dir/run/master.pid"
    return 0
}

# greets ADDR PORT PREFIX - the port answers with a line starting PREFIX
greets() {
    /usr/bin/python3 - "$1" "$2" "$3" <<'EOF' 2>/dev/null
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
s.settimeout(3)
ok = s.recv(512).startswith(sys.argv[3].encode())
s.close()
sys.exit(0 if ok else 1)
EOF
}

dc_start() {
    dir=$1 addrs=$2 port=$3 cert=$4 key=$5 users=${6:-}
    [ "$(id -u)" = 0 ] || exit 3
    [ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/pop3 ] && [ -x /usr/lib/dovecot/imap ] ||
        exit 3
    for a in $(echo "$addrs" | tr ',' ' '); do
        case "$a" in 127.*) ;; *) echo "dovecot_mailbox.sh: loopback addresses only" >&2; exit 1 ;; esac
    done
    mkdir -p "$dir" && dir=$(cd "$dir" && pwd) || exit 1
    dc_stop "$dir"
    id $U >/dev/null 2>&1 ||
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin $U ||
        exit 1
    mkdir -p "$dir/run" "$dir/state" "$dir/mail" "$dir/tls"
    cp "$cert" "$dir/tls/cert.pem" && cp "$key" "$dir/tls/key.pem" || exit 1
    chmod 600 "$dir/tls/key.pem"
    if [ -n "$users" ]; then
        cp "$users" "$dir/users"
    else
        cat >"$dir/users" <<EOF
alice@mbx.test:{PLAIN}alice-secret
bob@mbx.test:{PLAIN}bob-secret
EOF
    fi
    listen=$(echo "$addrs" | sed 's/,/, /g')
    cat >"$dir/dovecot.conf" <<EOF
# written by tests/peers/dovecot_mailbox.sh: POP3 and IMAP only, as $U
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
protocols = pop3 imap
listen = $listen
default_internal_user = $U
default_internal_group = $U
default_login_user = $U
ssl = yes
ssl_cert = <$dir/tls/cert.pem
ssl_key = <$dir/tls/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/users
}
userdb {
  driver = static
  args = uid=$U gid=$U home=$dir/mail/%d/%n
}
mail_location = maildir:~
pop3_uidl_format = %08Xu%08Xv
service imap-login {
  chroot =
  inet_listener imap {
    port = $((port + 2))
  }
  inet_listener imaps {
    port = $((port + 3))
    ssl = yes
  }
}
service pop3-login {
  chroot =
  inet_listener pop3 {
    port = $port
  }
  inet_listener pop3s {
    port = $((port + 1))
    ssl = yes
  }
}
service anvil {
  chroot =
}
EOF
    chown -R $U:$U "$dir/run" "$dir/state" "$dir/mail" "$dir/users" "$dir/tls"
    touch "$dir/dovecot.log" && chown $U:$U "$dir/dovecot.log"
    chmod 755 "$dir"
    # stdio redirected: the daemon would keep the caller's pipes open
    if ! runuser -u $U -- /usr/sbin/dovecot -c "$dir/dovecot.conf" </dev/null >/dev/null 2>"$dir/dovecot.start"; then
        echo "dovecot_mailbox.sh: dovecot did not start:" >&2
        cat "$dir/dovecot.start" "$dir/dovecot.log" >&2 2>/dev/null
        exit 1
    fi
    first=$(echo "$addrs" | cut -d, -f1)
    deadline=$(( $(date +%s) + START_TIMEOUT ))
    while :; do
        greets "$first" "$port" "+OK" && greets "$first" $((port + 2)) "* OK" && exit 0
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "dovecot_mailbox.sh: POP3/IMAP on $first:$port does not answer" >&2
            cat "$dir/dovecot.log" >&2 2>/dev/null
            dc_stop "$dir"
            exit 1
        fi
        sleep 0.1
    done
}

case "${1:-}" in
    start) [ $# -ge 6 ] || usage; dc_start "$2" "$3" "$4" "$5" "$6" "${7:-}" ;;
    stop)  [ $# = 2 ] || usage; dc_stop "$2" ;;
    *)     usage ;;
esac
