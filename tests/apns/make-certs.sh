#!/usr/bin/env bash
# make-certs.sh DIR: the certificates for push tests against apns-standin, made with the openssl
# CLI (RSA 2048, SHA-256, PEM unless noted). Existing files in DIR are replaced.
#
#   ca.pem ca.key           test CA of the stand-in's server certificate  -> vouchd's apns_ca
#   server.pem server.key   server certificate for localhost, 127.0.0.1 and ::1, signed by ca
#                           -> apns-standin --cert / --key
#   push-ca.pem push-ca.key another CA, in the place of Apple's push CA    -> apns-standin --client-ca
#   push.pem push.key       MDM-push-like client certificate signed by push-ca; subject
#                           UID=com.apple.mgmt.External.<uuid>, CN=APSP:<uuid>, C=US; clientAuth
#                           -> vouchd's apns_cert / apns_key
#   push.p12                push.pem + push.key as PKCS#12 (AES-256-CBC, PBKDF2, SHA-256 MAC)
#   push.p12.pass           its password (one line, no newline at the end)
#   topic                   the topic, com.apple.mgmt.External.<uuid> (no newline)
#   rogue.pem rogue.key     same shape as push.pem, signed by a CA apns-standin does not trust
#                           (a client certificate the handshake must refuse)
#
# Environment: PUSH_UUID fixes the <uuid> (default: random, uppercase like Apple's);
# PUSH_DAYS sets the push certificate's validity in days (default 365; 0 makes one that expires
# the moment it is made, for expiry tests).
set -euo pipefail

if [ $# -ne 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    [ $# -eq 1 ] && exit 0
    exit 2
fi
dir=$1
mkdir -p "$dir"
cd "$dir"
umask 077

uuid=${PUSH_UUID:-$(openssl rand -hex 16 | tr 'a-f' 'A-F' |
    sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12})/\1-\2-\3-\4-\5/')}
days=${PUSH_DAYS:-365}
topic="com.apple.mgmt.External.$uuid"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/ext.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no

[dn]
CN = unused

[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[push]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

new_key() {
    openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1"
}

# new_ca NAME SUBJECT
new_ca() {
    new_key "$1.key"
    openssl req -new -x509 -sha256 -key "$1.key" -subj "$2" -days 3650 \
        -config "$tmp/ext.cnf" -extensions ca -out "$1.pem"
}

# new_leaf NAME SUBJECT CA SECTION DAYS
new_leaf() {
    new_key "$1.key"
    openssl req -new -sha256 -key "$1.key" -subj "$2" -config "$tmp/ext.cnf" \
        -out "$tmp/$(basename "$1").csr"
    openssl x509 -req -sha256 -in "$tmp/$(basename "$1").csr" -CA "$3.pem" -CAkey "$3.key" \
        -set_serial "0x$(openssl rand -hex 12)" -days "$5" \
        -extfile "$tmp/ext.cnf" -extensions "$4" -out "$1.pem" 2>"$tmp/x509.err" ||
        { cat "$tmp/x509.err" >&2; exit 1; }
}

new_ca ca "/CN=Vouch Test APNs Server CA/O=Vouch Tests"
new_leaf server "/CN=localhost/O=Vouch Tests" ca server 825

new_ca push-ca "/CN=Vouch Test Apple Push CA/OU=Stand-in Apple Worldwide Developer Relations/O=Vouch Tests"
new_leaf push "/UID=$topic/CN=APSP:$uuid/C=US" push-ca push "$days"

pass=$(openssl rand -hex 16)
printf '%s' "$pass" >push.p12.pass
openssl pkcs12 -export -in push.pem -inkey push.key -name "APSP:$uuid" \
    -passout "file:push.p12.pass" -out push.p12
printf '%s' "$topic" >topic

new_ca "$tmp/rogue-ca" "/CN=Vouch Test Rogue CA/O=Vouch Tests"
new_leaf rogue "/UID=$topic/CN=APSP:$uuid/C=US" "$tmp/rogue-ca" push 365

# Certificates are public; keys and the password stay 0600.
chmod 644 ca.pem server.pem push-ca.pem push.pem rogue.pem topic
openssl verify -CAfile ca.pem server.pem >/dev/null
openssl verify -CAfile push-ca.pem -purpose sslclient push.pem >/dev/null 2>&1 || [ "$days" = 0 ]
echo "make-certs: $dir: topic $topic"
