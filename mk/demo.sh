#!/bin/sh
# demo.sh - `make run`: a demo correio on loopback, in the foreground.
#
#   sh mk/demo.sh BUILD_DIR
#
# Creates ./demo/ once (kept afterwards, so mail and users survive
# restarts): demo/etc/correio.conf for the domain example.test, the user
# demo@example.test with a random password (also kept in
# demo/etc/demo-password), and demo/mail, demo/data, demo/run.  Prints how
# to send a message, then runs `correio -c demo/etc run` until Ctrl-C.
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

  it lands in demo/mail/example.test/demo/new/
  what is queued:  $BUILD/bin/correio -c demo/etc queue list
  stages up?       $BUILD/bin/correio -c demo/etc status

  Ctrl-C stops everything.

EOF
exec "$BIN/correio" -c "$ETC" run
