#!/usr/bin/env bash
# Makes a throwaway CA and two certificates it issues, for trying TLS and mutual TLS on one machine
# (tools/test-all.sh uses them for the clients' TLS tests):
#   DIR/ca.pem                   the CA certificate: the server's MaskFormer:Security:ClientCaPath and the clients' MASKFORMER_CA_CERT
#   DIR/server.pem, server.key   for 127.0.0.1 and localhost: MaskFormer:Security:CertificatePath and :KeyPath
#   DIR/client.pem, client.key   a client certificate: MASKFORMER_CLIENT_CERT and MASKFORMER_CLIENT_KEY
#   DIR/other-ca.pem             a CA that issued neither (a client trusting only it must refuse the server)
#   DIR/client-expired.pem, .key        a client certificate from the same CA that expired a day ago
#   DIR/client-not-yet-valid.pem, .key  one that is valid only from a day from now
# P-256 keys, valid for DAYS days (default 2; the last two excepted). Never use these for anything real.
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
trap 'rm -rf ca.key other-ca.key ./*.csr ./*.ext ca-db' EXIT

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

# issue_dated NAME SUBJECT EXTENSIONS START END: as issue, valid from START to END (YYYYMMDDHHMMSSZ). `openssl ca`
# is OpenSSL 3.0's one command that takes both dates (x509 -req takes only -days, from now).
issue_dated() {
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "$2"
  printf '%b' "$3" >"$1.ext"
  rm -rf ca-db && mkdir ca-db && touch ca-db/index && openssl rand -hex 16 >ca-db/serial
  printf '[ca]\ndefault_ca = test\n[test]\ndatabase = ca-db/index\nnew_certs_dir = ca-db\nserial = ca-db/serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n[any]\ncommonName = supplied\n' >ca-db/ca.cnf
  openssl ca -batch -notext -config ca-db/ca.cnf -cert ca.pem -keyfile ca.key -in "$1.csr" -out "$1.pem" \
    -startdate "$4" -enddate "$5" -extfile "$1.ext" 2>/dev/null
  rm -rf "$1.csr" "$1.ext" ca-db
}

issue server "/CN=127.0.0.1" "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
issue client "/CN=maskformer-test-client" "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n"
at() { date -u -d "$1" +%Y%m%d%H%M%SZ; }
client_extensions="basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n"
issue_dated client-expired "/CN=maskformer-test-client" "$client_extensions" "$(at '-3 days')" "$(at '-1 day')"
issue_dated client-not-yet-valid "/CN=maskformer-test-client" "$client_extensions" "$(at '+1 day')" "$(at '+3 days')"
chmod 644 ca.pem other-ca.pem server.pem client.pem client-expired.pem client-not-yet-valid.pem
echo "wrote $(pwd)/{ca.pem,server.pem,server.key,client.pem,client.key,other-ca.pem} (valid $days days)" \
  "and {client-expired,client-not-yet-valid}.{pem,key}"
