#!/bin/sh
# demo.sh - `make run`: a demo correio on loopback, in the foreground.
#
#   sh mk/demo.sh BUILD_DIR
#
# Creates ./demo/ once (kept afterwards, so mail and users survive
# restarts): demo/etc/correio.conf for the domain example.test with the
# smtp (10025), submission (10587) and submissions (10465) listeners, a
# self-signed certificate in demo/etc/tls/, the user demo@example.test with
# a random password (also kept in demo/etc/demo-password), and demo/mail,
# demo/data, demo/run.  Prints how to send a message, then runs
# `correio -c demo/etc run` until Ctrl-C.
set -eu

BUILD=${1:-build}
BIN=$(cd "$BUILD/bin" && pwd)
DEMO=$(pwd)/demo
ETC=$DEMO/etc

mkdir -p "$ETC"
if [ ! -f "$ETC/correio.conf" ]; then
    cat > "$ETC/correio.conf" <<EOF
# correio demo configuration, made by mk/demo.sh (\`correio -c $ETC config -d\`
# lists every parameter).
myhostname = mail.example.test
mydestination = example.test, \$myhostname, localhost
mynetworks = 127.0.0.0/8, [::1]/128
smtpd_listen = 127.0.0.1:10025
mail_root = $DEMO/mail
data_directory = $DEMO/data
run_directory = $DEMO/run
EOF
fi

# TLS for STARTTLS and the submissions listener: a self-signed certificate
if [ ! -s "$ETC/tls/cert.pem" ]; then
    mkdir -p "$ETC/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj /CN=mail.example.test \
        -addext "subjectAltName=DNS:mail.example.test,DNS:localhost,IP:127.0.0.1" \
        -keyout "$ETC/tls/key.pem" -out "$ETC/tls/cert.pem" 2>/dev/null
    chmod 644 "$ETC/tls/cert.pem"
    chmod 640 "$ETC/tls/key.pem"
    # mail_owner reads it again when SIGHUP reloads the configuration
    if [ "$(id -u)" = 0 ] && getent group correio >/dev/null; then
        chgrp correio "$ETC/tls/key.pem"
    fi
fi
# the shipped spam rules (classifier/rules.h), read in place
if ! grep -q '^spam_rules_files' "$ETC/correio.conf"; then
    echo "spam_rules_files = $(pwd)/classifier/rules/default.cf" >> "$ETC/correio.conf"
fi
if ! grep -q '^smtpd_tls_cert_file' "$ETC/correio.conf"; then
    cat >> "$ETC/correio.conf" <<EOF
submission_listen = 127.0.0.1:10587
submissions_listen = 127.0.0.1:10465
smtpd_tls_cert_file = tls/cert.pem
smtpd_tls_key_file = tls/key.pem
# the demo talks to loopback clients only: no client name lookups
smtpd_peername_lookup = no
EOF
fi

if [ ! -s "$ETC/demo-password" ]; then
    password=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
    printf '%s\n' "$password" | "$BIN/correio" -c "$ETC" user add demo@example.test >/dev/null
    (umask 077 && printf '%s\n' "$password" > "$ETC/demo-password")
fi
password=$(cat "$ETC/demo-password")

# As root the stages run as mail_owner; whatever an earlier run made must
# be theirs (the supervisor creates and chowns the directories themselves).
if [ "$(id -u)" = 0 ] && getent passwd correio >/dev/null; then
    for d in mail data run; do
        if [ -d "$DEMO/$d" ]; then chown -R correio: "$DEMO/$d"; fi
    done
fi

cat <<EOF

  correio demo -- configuration in demo/etc/ (correio.conf, users)

  user      demo@example.test
  password  $password

  send a message (from another terminal):
    swaks --server 127.0.0.1:10025 --from someone@example.org --to demo@example.test

  submit one as demo, over TLS with AUTH (the 587 and 465 roles):
    swaks --server 127.0.0.1:10587 --tls --auth PLAIN \\
          --auth-user demo@example.test --auth-password '$password' \\
          --from demo@example.test --to demo@example.test
    swaks --server 127.0.0.1:10465 --tls-on-connect --auth LOGIN \\
          --auth-user demo@example.test --auth-password '$password' \\
          --from demo@example.test --to demo@example.test

  it lands in demo/mail/example.test/demo/new/
  what is queued:  $BUILD/bin/correio -c demo/etc queue list
  stages up?       $BUILD/bin/correio -c demo/etc status

  Ctrl-C stops everything.

EOF
exec "$BIN/correio" -c "$ETC" run
