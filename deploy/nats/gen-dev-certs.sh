#!/usr/bin/env bash
# Makes DEVELOPMENT TLS material for tls.conf in the directory DIR:
#   ca.pem / ca-key.pem          a throwaway certificate authority
#   server.pem / server-key.pem  the server, valid for localhost and 127.0.0.1
#   client.pem / client-key.pem  a client certificate (CN=kairos-client) that
#                                the server's `verify: true` asks for
# Usage: deploy/nats/gen-dev-certs.sh DIR   (DIR is created; existing files
# are overwritten). Needs only openssl. Not for production: the CA key lies
# next to the certificates and nothing is revoked or rotated.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
days=825
mkdir -p "$dir"
cd "$dir"
umask 077

# EC P-256 keys: small and fast, accepted by nats-server and rustls.
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

newkey ca-key.pem
openssl req -x509 -new -key ca-key.pem -sha256 -days "$days" \
    -subj "/O=kairos dev/CN=kairos dev CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.pem

# sign NAME SUBJECT EXTENSIONS: a key and a certificate signed by the CA.
sign() {
    local name=$1 subject=$2 extensions=$3
    newkey "$name-key.pem"
    openssl req -new -key "$name-key.pem" -subj "$subject" -out "$name.csr"
    printf '%s\n' "$extensions" > "$name.ext"
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
        -days "$days" -sha256 -extfile "$name.ext" -out "$name.pem" 2>/dev/null
    rm -f "$name.csr" "$name.ext"
}

sign server "/O=kairos dev/CN=localhost" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"

sign client "/O=kairos dev/CN=kairos-client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

rm -f ca.srl
# Certificates are public; keys stay readable by their owner only.
chmod 644 ca.pem server.pem client.pem
echo "dev TLS material in $(pwd): ca.pem server.pem server-key.pem client.pem client-key.pem"
