#!/bin/sh
# make-cert.sh DIR - the one-shot "certs" service: a self-signed TLS
# certificate for the ingress (smtpd_tls_cert_file) and Dovecot in DIR
# (cert.pem, key.pem), unless one is there already.  Replace both files
# with a real certificate (same names) and send SIGHUP to the ingress;
# restart Dovecot.  The key is readable by group correio (gid 10025).
set -eu
dir=${1:-/tls}
name=${CERT_NAME:-mail.example.test}
if [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ]; then
    echo "make-cert: $dir/cert.pem exists, left alone"
    exit 0
fi
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -days 825 -subj "/CN=$name" -addext "subjectAltName=DNS:$name" \
    -keyout "$dir/key.pem.tmp" -out "$dir/cert.pem.tmp"
chown 0:10025 "$dir/key.pem.tmp" "$dir/cert.pem.tmp"
chmod 0640 "$dir/key.pem.tmp"
chmod 0644 "$dir/cert.pem.tmp"
mv "$dir/key.pem.tmp" "$dir/key.pem"
mv "$dir/cert.pem.tmp" "$dir/cert.pem"
echo "make-cert: self-signed certificate for $name in $dir"
