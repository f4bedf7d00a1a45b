#!/usr/bin/env bash
# Makes a throwaway CA and two certificates it issues, for trying TLS and mutual TLS on one machine
# (tools/test-all.sh uses them for the clients' TLS tests):
#   DIR/ca.pem                   the CA certificate: the server's MaskFormer:Security:ClientCaPath and the clients' MASKFORMER_CA_CERT
#   DIR/server.pem, server.key   for 127.0.0.1 and localhost: MaskFormer:Security:CertificatePath and :KeyPath
#   DIR/client.pem, client.key   a client certificate: MASKFORMER_CLIENT_CERT and MASKFORMER_CLIENT_KEY
#   DIR/other-ca.pem             a CA that issued neither (a client trusting only it must refuse the server)
# P-256 keys, valid for DAYS days (default 2). Never use these for anything real.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 DIR [DAYS]" >&2
  exit 2
fi
dir="$1"
days="${2:-2}"
mkdir -p "$dir"
cd "$dir"
umask 077
# The CAs' keys never stay, whatever step fails.
trap 'rm -f ca.key other-ca.key ./*.csr ./*.ext' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# ca NAME SUBJECT
ca() {
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -out "$1.pem" -days "$days" -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}

ca ca "/CN=MaskFormer Serve test CA"
ca other-ca "/CN=MaskFormer Serve other test CA"

# issue NAME SUBJECT EXTENSIONS
issue() {
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "$2"
  printf '%b' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
    -days "$days" -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

issue server "/CN=127.0.0.1" "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
issue client "/CN=maskformer-test-client" "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n"
chmod 644 ca.pem other-ca.pem server.pem client.pem
echo "wrote $(pwd)/{ca.pem,server.pem,server.key,client.pem,client.key,other-ca.pem} (valid $days days)"
