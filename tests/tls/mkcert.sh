#!/usr/bin/env bash
# Makes a throwaway CA and a certificate signed by it, with openssl:
#   tests/tls/mkcert.sh DIR NAME [NAME...]
# writes DIR/ca.pem, DIR/fullchain.pem (leaf, then CA), DIR/key.pem. The first NAME is
# the subject; every NAME is a subjectAltName (an IP address becomes an IP SAN). Valid
# for 2 days: a test certificate that outlives its test is a mistake. P-256 keys.
set -euo pipefail
dir=$1
shift
[ $# -gt 0 ] || { echo "usage: mkcert.sh DIR NAME [NAME...]" >&2; exit 2; }
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sans=
for n in "$@"; do
  if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then sans+=",IP:$n"; else sans+=",DNS:$n"; fi
done
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$tmp/ca.key" -out "$dir/ca.pem" -days 2 -subj "/CN=servy test CA" 2>/dev/null
openssl req "${ec[@]}" -keyout "$dir/key.pem" -out "$tmp/leaf.csr" -subj "/CN=$1" 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' \
  "${sans#,}" >"$tmp/ext"
openssl x509 -req -in "$tmp/leaf.csr" -CA "$dir/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
  -days 2 -extfile "$tmp/ext" -out "$tmp/leaf.pem" 2>/dev/null
cat "$tmp/leaf.pem" "$dir/ca.pem" >"$dir/fullchain.pem"
