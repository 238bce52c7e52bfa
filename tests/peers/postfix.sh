#!/bin/sh
# postfix.sh - a test-owned Postfix as the receiving server of correio's
# SMTP client (after shared/peers/postfix.md), on one loopback address:
#
#   ADDR:MXPORT   MX: STARTTLS offered, no AUTH, takes mail for postfix.test
#                 only (no relaying: nothing is in mynetworks)
#   ADDR:SUBPORT  submission: STARTTLS required, then AUTH PLAIN/LOGIN
#                 through Dovecot's auth socket, then anything is taken
#
# Mail for postfix.test lands in Maildirs DIR/mail/USER/ (users: alice,
# bob, relayuser @postfix.test); anything else that got in is bounced by
# the error transport, never sent on.  The log is DIR/maillog.
#
#   sh tests/peers/postfix.sh start DIR ADDR MXPORT SUBPORT CERT KEY [AUTHSOCK]
#        AUTHSOCK: Dovecot's auth socket (tests/peers/dovecot.sh makes
#        DIR/run/auth-postfix); without it the submission port offers no
#        AUTH.  Exit 0 once both ports answer; 1 otherwise; 3 when Postfix
#        is not installed.
#   sh tests/peers/postfix.sh stop DIR
#
# Needs root and the Debian package postfix.  /etc/postfix is neither
# changed nor started: the instance has its own config directory.
set -u
START_TIMEOUT=20

usage() {
    echo "usage: postfix.sh start DIR ADDR MXPORT SUBPORT CERT KEY [AUTHSOCK] | stop DIR" >&2
    exit 1
}

pf_stop() {
    dir=$1
    [ -f "$dir/etc/main.cf" ] || return 0
    postfix -c "$dir/etc" stop >/dev/null 2>&1
    # master may take a moment; make sure it is gone (by its pid file)
    pid=
    [ -f "$dir/spool/pid/master.pid" ] && pid=$(tr -d ' ' <"$dir/spool/pid/master.pid")
    i=0
    while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1; i=$((i + 1))
    done
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    return 0
}

answers() {     # answers ADDR PORT: a 220 greeting comes
    /usr/bin/python3 - "$1" "$2" <<'EOF' 2>/dev/null
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
s.settimeout(3)
ok = s.recv(512).startswith(b"220")
s.sendall(b"QUIT\r\n")
s.close()
sys.exit(0 if ok else 1)
EOF
}

pf_start() {
    dir=$1 addr=$2 mxport=$3 subport=$4 cert=$5 key=$6 authsock=${7:-}
    command -v postfix >/dev/null 2>&1 && [ -x /usr/lib/postfix/sbin/smtpd ] || exit 3
    case "$addr" in 127.*) ;; *) echo "postfix.sh: loopback addresses only" >&2; exit 1 ;; esac
    mkdir -p "$dir" && dir=$(cd "$dir" && pwd) || exit 1
    pf_stop "$dir"
    mkdir -p "$dir/etc" "$dir/spool" "$dir/data" "$dir/mail"
    chmod 755 "$dir"
    if [ -n "$authsock" ]; then sasl=yes; else sasl=no; authsock=$dir/no-auth; fi
    cat >"$dir/etc/main.cf" <<EOF
# written by tests/peers/postfix.sh
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
myhostname = mx.postfix.test
mydomain = postfix.test
myorigin = \$mydomain
mydestination =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 203.0.113.0/24
virtual_mailbox_domains = postfix.test
virtual_mailbox_maps = texthash:$dir/etc/vmailbox
virtual_mailbox_base = $dir/mail
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
default_transport = error:off-host delivery disabled in the test Postfix
relay_transport = error:off-host delivery disabled in the test Postfix
smtp_dns_support_level = disabled
smtpd_banner = \$myhostname ESMTP (test Postfix)
smtpd_helo_required = yes
disable_vrfy_command = yes
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = reject_unlisted_recipient
smtpd_tls_cert_file = $cert
smtpd_tls_key_file = $key
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_tls_loglevel = 1
smtpd_sasl_type = dovecot
smtpd_sasl_path = $authsock
smtpd_sasl_auth_enable = no
smtpd_sasl_authenticated_header = yes
EOF
    cat >"$dir/etc/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command + args
$addr:$mxport inet n  -  n  -  -  smtpd
$addr:$subport inet n  -  n  -  -  smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=$sasl
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
cleanup   unix  n  -  n  -   0  cleanup
qmgr      unix  n  -  n  300 1  qmgr
tlsmgr    unix  -  -  n  1000? 1  tlsmgr
rewrite   unix  -  -  n  -   -  trivial-rewrite
bounce    unix  -  -  n  -   0  bounce
defer     unix  -  -  n  -   0  bounce
trace     unix  -  -  n  -   0  bounce
verify    unix  -  -  n  -   1  verify
proxymap  unix  -  -  n  -   -  proxymap
smtp      unix  -  -  n  -   -  smtp
error     unix  -  -  n  -   -  error
retry     unix  -  -  n  -   -  error
discard   unix  -  -  n  -   -  discard
virtual   unix  -  n  n  -   -  virtual
anvil     unix  -  -  n  -   1  anvil
scache    unix  -  -  n  -   1  scache
postlog   unix-dgram n - n - 1  postlogd
EOF
    cat >"$dir/etc/vmailbox" <<EOF
alice@postfix.test      alice/
bob@postfix.test        bob/
relayuser@postfix.test  relayuser/
EOF
    chown postfix "$dir/data"
    chown nobody:nogroup "$dir/mail"
    if ! out=$(postfix -c "$dir/etc" check 2>&1); then
        echo "postfix.sh: postfix check: $out" >&2
        exit 1
    fi
    # start-up errors go to syslog only (none here): keep what stderr says
    postfix -c "$dir/etc" start >"$dir/start.out" 2>&1
    deadline=$(( $(date +%s) + START_TIMEOUT ))
    while ! { answers "$addr" "$mxport" && answers "$addr" "$subport"; }; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "postfix.sh: Postfix on $addr:$mxport/$subport does not answer:" >&2
            cat "$dir/start.out" >&2 2>/dev/null
            tail -n 20 "$dir/maillog" >&2 2>/dev/null
            pf_stop "$dir"
            exit 1
        fi
        sleep 0.1
    done
    exit 0
}

case "${1:-}" in
    start) [ $# -ge 7 ] || usage; pf_start "$2" "$3" "$4" "$5" "$6" "$7" "${8:-}" ;;
    stop)  [ $# = 2 ] || usage; pf_stop "$2" ;;
    *)     usage ;;
esac
