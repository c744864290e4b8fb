#!/usr/bin/env bash
# Certificate renewal the way NixOS's security.acme does it, with the real tools: pebble
# (Let's Encrypt's test CA) and lego (the ACME client security.acme runs). lego orders a
# certificate for servy.test into files (HTTP-01, really validated: pebble resolves the
# name through pebble-challtestsrv's DNS to 127.0.0.1 and fetches the challenge from
# lego), servy serves those files, lego renews, its renew hook sends servy SIGHUP, and the
# renewed certificate is served on a connection opened after that, while a connection
# opened before stays up. Everything listens on free loopback ports; about 20 s.
#
#   tests/tls/renewal.sh [SERVY_BINARY] [OUT_DIR]   (default: the release build; tests/out/renewal)
#
# Needs pebble, pebble-challtestsrv, lego, openssl, curl, python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
servy=${1:-$repo/server/target/release/servy}
out=${2:-$repo/tests/out/renewal}
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
domain=servy.test

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
acme_port=$(free_port) acme_mgmt=$(free_port) dns_port=$(free_port) dns_mgmt=$(free_port)
http01_port=$(free_port) https_port=$(free_port) metrics_port=$(free_port) http_port=$(free_port)

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
fail() {
  echo "renewal.sh: FAILED: $*" >&2
  for log in "$out"/*.log; do echo "--- $log" >&2; tail -n 15 "$log" >&2; done
  exit 1
}
# wait_for SECONDS COMMAND...
wait_for() {
  local end=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.1
  done
}

# --- the CA: pebble, with its API on a certificate from a throwaway CA lego trusts ------
bash "$here/mkcert.sh" "$out/pebble-api" localhost 127.0.0.1
cat >"$out/pebble.json" <<JSON
{"pebble": {
  "listenAddress": "127.0.0.1:$acme_port",
  "managementListenAddress": "127.0.0.1:$acme_mgmt",
  "certificate": "$out/pebble-api/fullchain.pem",
  "privateKey": "$out/pebble-api/key.pem",
  "httpPort": $http01_port,
  "tlsPort": $(free_port),
  "ocspResponderURL": "",
  "externalAccountBindingRequired": false
}}
JSON
# Every name resolves to 127.0.0.1 (A) and nothing else (no AAAA).
pebble-challtestsrv -dns01 "127.0.0.1:$dns_port" -management "127.0.0.1:$dns_mgmt" \
  -defaultIPv4 127.0.0.1 -defaultIPv6 "" -http01 "" -https01 "" -tlsalpn01 "" >"$out/challtestsrv.log" 2>&1 &
pids+=($!)
# No random validation sleeps and no deliberately rejected nonces: a quick, deterministic CA.
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 pebble -config "$out/pebble.json" -dnsserver "127.0.0.1:$dns_port" >"$out/pebble.log" 2>&1 &
pids+=($!)
wait_for 20 curl -sf --cacert "$out/pebble-api/ca.pem" "https://localhost:$acme_port/dir" || fail "pebble did not start"

export LEGO_CA_CERTIFICATES=$out/pebble-api/ca.pem
lego_args=(--server "https://localhost:$acme_port/dir" --email hostmaster@servy.test --accept-tos
  --domains "$domain" --http --http.port "127.0.0.1:$http01_port" --path "$out/lego")
lego "${lego_args[@]}" run >"$out/lego-run.log" 2>&1 || fail "lego run"
cert=$out/lego/certificates/$domain.crt
key=$out/lego/certificates/$domain.key
[ -s "$cert" ] && [ -s "$key" ] || fail "lego wrote no certificate"
# pebble's root changes every run; the management API hands it out.
curl -sf --cacert "$out/pebble-api/ca.pem" "https://localhost:$acme_mgmt/roots/0" -o "$out/pebble-root.pem" ||
  fail "no pebble root"

# --- servy serving lego's files ------------------------------------------------------------
cat >"$out/servy.toml" <<TOML
[http]
listen = ["127.0.0.1:$http_port"]
[metrics]
listen = ["127.0.0.1:$metrics_port"]
[https]
listen = ["127.0.0.1:$https_port"]
[[https.certificates]]
cert = "$cert"
key = "$key"
TOML
"$servy" --config "$out/servy.toml" >"$out/servy.log" 2>&1 &
servy_pid=$!
pids+=("$servy_pid")
wait_for 10 curl -sf "http://127.0.0.1:$metrics_port/readyz" || fail "servy did not start"

fingerprint_file() { openssl x509 -in "$cert" -noout -fingerprint -sha256; }
fingerprint_served() {
  openssl s_client -connect "127.0.0.1:$https_port" -servername "$domain" </dev/null 2>/dev/null |
    openssl x509 -noout -fingerprint -sha256
}
https_get() { curl -sf --cacert "$out/pebble-root.pem" --resolve "$domain:$https_port:127.0.0.1" -o /dev/null "https://$domain:$https_port/"; }

issued=$(fingerprint_file)
[ "$(fingerprint_served)" = "$issued" ] || fail "servy does not serve lego's certificate"
https_get || fail "a client trusting only pebble's root cannot fetch the site"
echo "renewal.sh: lego issued $(openssl x509 -in "$cert" -noout -serial), servy serves it; curl trusts it through pebble's root"

# A connection opened before the renewal, held open until servy has reloaded: it must
# survive the reload.
python3 - "$https_port" "$domain" "$out/pebble-root.pem" "$out/reloaded" >"$out/held.log" 2>&1 <<'PY' &
import os, socket, ssl, sys, time
port, name, root, reloaded = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=root)
with socket.create_connection(("127.0.0.1", port)) as raw, ctx.wrap_socket(raw, server_hostname=name) as s:
    def get():
        s.sendall(f"GET /robots.txt HTTP/1.1\r\nhost: {name}\r\n\r\n".encode())
        head = s.recv(65536).decode("latin-1")
        return head.split(" ")[1]
    print("before", get(), flush=True)
    deadline = time.time() + 60
    while not os.path.exists(reloaded) and time.time() < deadline:
        time.sleep(0.1)
    print("after", get(), flush=True)
PY
held_pid=$!
wait_for 5 grep -q "before 200" "$out/held.log" || fail "the held connection got no answer"

# --- renewal: lego renews (forced: the certificate is new), the hook reloads servy -----------
metric() { curl -sf "http://127.0.0.1:$metrics_port/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
# --no-random-sleep as NixOS passes it: lego otherwise waits up to 8 minutes.
lego "${lego_args[@]}" renew --days 100000 --no-random-sleep --renew-hook "kill -HUP $servy_pid" >"$out/lego-renew.log" 2>&1 ||
  fail "lego renew"
renewed=$(fingerprint_file)
[ "$renewed" != "$issued" ] || fail "lego did not renew"
reloaded() { [ "$(metric 'servy_tls_reloads_total{result="ok"}')" = 1 ]; }
wait_for 10 reloaded || fail "servy counted no reload"
touch "$out/reloaded"
[ "$(fingerprint_served)" = "$renewed" ] || fail "servy still serves the old certificate after the reload"
https_get || fail "the renewed certificate is not trusted"
wait "$held_pid" || fail "the held connection broke"
grep -q "after 200" "$out/held.log" || fail "the connection opened before the renewal did not survive it"
echo "renewal.sh: lego renewed ($(openssl x509 -in "$cert" -noout -serial)), its hook sent SIGHUP, servy serves the new one;" \
  "the connection opened before still answers"
echo "renewal.sh: ok"
