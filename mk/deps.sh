#!/bin/sh
# deps.sh - install the Debian 12 packages correio needs to build, run and
# test, but only those that are missing (so `make test` is fast when all is
# there).  Needs root for the install; prints what it installs.
set -eu

PKGS="build-essential pkg-config libzmq3-dev libprotobuf-c-dev protobuf-c-compiler
liblmdb-dev lmdb-utils libssl-dev libc-ares-dev libcrypt-dev libcmocka-dev
swaks python3 python3-zmq openssl postfix procps iproute2 perl clang
libpcre2-dev unbound python3-dnslib bind9-dnsutils dovecot-core dovecot-lmtpd
dovecot-pop3d dovecot-imapd fetchmail python3-spf
libopendkim-dev python3-dkim libmicrohttpd-dev
docker-compose python3-yaml python3-jsonschema"
# `mk/deps.sh bench`: also what only the benchmarks use (SpamAssassin, to
# score the same corpus as correio's classifier: bench/spam_accuracy.sh)
[ "${1:-}" = bench ] && PKGS="$PKGS spamassassin spamc spamd"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done

if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    if [ "$(id -u)" != 0 ]; then
        echo "deps: missing packages and not root; run: apt-get install$missing" >&2
        exit 1
    fi
    # postfix is only a test peer and load generator (smtp-source); never
    # let its package configure a system instance.  Dovecot (LMTP, and
    # SASL for the test Postfix) is a test peer too: tests/peers/ start
    # private instances of both on loopback.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    # spamd is a bench peer started by the bench itself: no system service
    case "$missing" in *spamd*)
        command -v systemctl >/dev/null && systemctl disable --now spamd >/dev/null 2>&1 || true ;;
    esac
fi

# The unprivileged user the stages run as when started by root.
if [ "$(id -u)" = 0 ] && ! getent passwd correio >/dev/null; then
    useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin correio
    echo "deps: created system user correio"
fi
exit 0
