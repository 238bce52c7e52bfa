#!/bin/sh
# dovecot.sh - a test-owned Dovecot for the black-box tests: an LMTP
# server (TCP on ADDR:PORT and a UNIX socket DIR/run/lmtp) that delivers
# into Maildirs under DIR/mail/DOMAIN/USER, and an auth socket
# (DIR/run/auth-postfix) that gives the test Postfix AUTH PLAIN/LOGIN.
#
#   sh tests/peers/dovecot.sh start DIR ADDR PORT [USERS]
#        USERS: a passwd-file (user@domain:{PLAIN}password lines); the
#        default has alice@lmtp.test, bob@lmtp.test, demo@example.test and
#        relayuser@postfix.test (password "secret").  Exit 0 once the LMTP
#        port answers; 1 otherwise (see DIR/dovecot.log); 3 when Dovecot
#        or its LMTP server is not installed.
#   sh tests/peers/dovecot.sh stop DIR
#
# Dovecot runs as the unprivileged user mailtest (made here when missing),
# as the recipe in shared/peers/dovecot.md does; only the LMTP and auth
# services run.  Needs root (to make the user and start as it) and the
# Debian packages dovecot-core and dovecot-lmtpd.
set -u
U=mailtest
START_TIMEOUT=15        # seconds until LMTP must answer

usage() { echo "usage: dovecot.sh start DIR ADDR PORT [USERS] | stop DIR" >&2; exit 1; }

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

dc_start() {
    dir=$1 addr=$2 port=$3 users=${4:-}
    [ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/lmtp ] || exit 3
    case "$addr" in 127.*) ;; *) echo "dovecot.sh: loopback addresses only" >&2; exit 1 ;; esac
    mkdir -p "$dir" && dir=$(cd "$dir" && pwd) || exit 1
    dc_stop "$dir"
    id $U >/dev/null 2>&1 ||
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin $U ||
        exit 1
    mkdir -p "$dir/run" "$dir/state" "$dir/mail"
    if [ -n "$users" ]; then
        cp "$users" "$dir/users"
    else
        cat >"$dir/users" <<EOF
alice@lmtp.test:{PLAIN}secret
bob@lmtp.test:{PLAIN}secret
demo@example.test:{PLAIN}secret
alice@example.test:{PLAIN}secret
relayuser@postfix.test:{PLAIN}secret
EOF
    fi
    cat >"$dir/dovecot.conf" <<EOF
# written by tests/peers/dovecot.sh: LMTP and auth only, as $U
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
protocols = lmtp
listen = $addr
default_internal_user = $U
default_internal_group = $U
default_login_user = $U
ssl = no
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
service lmtp {
  inet_listener lmtp {
    address = $addr
    port = $port
  }
  unix_listener lmtp {
    mode = 0666
  }
}
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
}
service anvil {
  chroot =
}
EOF
    chown -R $U:$U "$dir/run" "$dir/state" "$dir/mail" "$dir/users"
    touch "$dir/dovecot.log" && chown $U:$U "$dir/dovecot.log"
    chmod 755 "$dir"
    # stdio redirected: the daemon would keep the caller's pipes open
    if ! runuser -u $U -- /usr/sbin/dovecot -c "$dir/dovecot.conf" </dev/null >/dev/null 2>"$dir/dovecot.start"; then
        echo "dovecot.sh: dovecot did not start:" >&2
        cat "$dir/dovecot.start" "$dir/dovecot.log" >&2 2>/dev/null
        exit 1
    fi
    deadline=$(( $(date +%s) + START_TIMEOUT ))
    while :; do
        if /usr/bin/python3 - "$addr" "$port" <<'EOF' 2>/dev/null
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
s.settimeout(3)
ok = s.recv(512).startswith(b"220")
s.sendall(b"QUIT\r\n")
s.close()
sys.exit(0 if ok else 1)
EOF
        then
            [ -S "$dir/run/auth-postfix" ] && [ -S "$dir/run/lmtp" ] && exit 0
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "dovecot.sh: LMTP on $addr:$port does not answer" >&2
            cat "$dir/dovecot.log" >&2 2>/dev/null
            dc_stop "$dir"
            exit 1
        fi
        sleep 0.1
    done
}

case "${1:-}" in
    start) [ $# -ge 4 ] || usage; dc_start "$2" "$3" "$4" "${5:-}" ;;
    stop)  [ $# = 2 ] || usage; dc_stop "$2" ;;
    *)     usage ;;
esac
