#!/usr/bin/env bash
# servy's TLS as testssl.sh sees it: starts servy with HTTPS (a throwaway certificate,
# HSTS on) on a free loopback port, runs testssl.sh's protocol, cipher, forward-secrecy,
# vulnerability and header checks, and passes when
#   - only TLS 1.2 and 1.3 are offered,
#   - every cipher suite offered has forward secrecy (ECDHE, or TLS 1.3),
#   - no vulnerability check reports worse than LOW, except BREACH (see below),
#   - HSTS is sent with the configured max-age.
# BREACH is reported as "potentially VULNERABLE" for any compressed HTTPS response. It
# needs a secret and attacker-chosen input reflected in the same compressed body; servy
# serves only files fixed at build time (no cookies, no reflected input), so it cannot
# apply. testssl.sh says the same: it can be ignored for static pages.
#
#   tests/tls/testssl.sh [SERVY_BINARY] [OUT_DIR]     (default: the release build; tests/out/testssl)
#
# Needs testssl (Debian's testssl.sh), openssl, curl, python3. About 40 s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
servy=${1:-$repo/server/target/release/servy}
out=${2:-$repo/tests/out/testssl}
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
https_port=$(free_port)
metrics_port=$(free_port)
http_port=$(free_port)
hsts="max-age=31536000"

bash "$here/mkcert.sh" "$out/tls" localhost 127.0.0.1
cat >"$out/servy.toml" <<TOML
[http]
listen = ["127.0.0.1:$http_port"]
[metrics]
listen = ["127.0.0.1:$metrics_port"]
[https]
listen = ["127.0.0.1:$https_port"]
hsts = "$hsts"
[[https.certificates]]
cert = "$out/tls/fullchain.pem"
key = "$out/tls/key.pem"
[log]
requests = false
TOML
"$servy" --config "$out/servy.toml" >"$out/servy.log" 2>&1 &
servy_pid=$!
trap 'kill "$servy_pid" 2>/dev/null || true; wait "$servy_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$metrics_port/readyz" && break
  kill -0 "$servy_pid" 2>/dev/null || { cat "$out/servy.log" >&2; echo "testssl.sh: servy exited" >&2; exit 1; }
  sleep 0.1
done
curl -sf --cacert "$out/tls/ca.pem" -o /dev/null "https://localhost:$https_port/" ||
  { echo "testssl.sh: servy does not answer over HTTPS" >&2; exit 1; }

start=$SECONDS
# -p protocols, -s cipher categories, -f forward secrecy, -E every suite per protocol,
# -U vulnerabilities, -h HTTP headers. No --warnings prompt, no colour, JSON for the checks.
timeout 300 testssl --quiet --color 0 --warnings off -p -s -f -E -U -h \
  --jsonfile "$out/testssl.json" "https://localhost:$https_port/" >"$out/testssl.txt" 2>&1 || true
echo "testssl.sh: testssl ran for $((SECONDS - start)) s ($(testssl --version 2>/dev/null | grep -o 'testssl *[0-9][0-9.a-z-]*' | head -n1))"

python3 - "$out/testssl.json" "$hsts" <<'PY'
import json, re, sys

findings = json.load(open(sys.argv[1]))
hsts_seconds = sys.argv[2].split("=")[1]
by_id = {f["id"]: f for f in findings}
problems = []

def finding(key):
    return by_id.get(key, {}).get("finding", "(missing)")

for proto in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
    if not finding(proto).startswith("not offered"):
        problems.append(f"{proto}: {finding(proto)}")
for proto in ("TLS1_2", "TLS1_3"):
    if not finding(proto).startswith("offered"):
        problems.append(f"{proto}: {finding(proto)}")

# -E lists each offered suite as cipher-<protocol>_<hex>: its key exchange is a column.
suites = [f for f in findings if f["id"].startswith("cipher-")]
if not suites:
    problems.append("no cipher suites listed (-E)")
def name(suite):
    """`TLS 1.2   xc02c   ECDHE-ECDSA-AES256-GCM-SHA384   ECDH 253 ...`: the OpenSSL name."""
    words = suite["finding"].split()
    hexes = [i for i, w in enumerate(words) if re.fullmatch(r"x[0-9a-f]+", w)]
    return words[hexes[0] + 1] if hexes and hexes[0] + 1 < len(words) else suite["finding"]

for s in suites:
    # The key exchange column: ECDH (or DH) is ephemeral in every suite testssl lists as such.
    if not re.search(r"\s(ECDH|DH)\s", s["finding"]):
        problems.append(f"no forward secrecy: {s['finding']}")
if finding("PFS").split(",")[0] != "offered":
    problems.append(f"PFS: {finding('PFS')}")

vulnerabilities = ["heartbleed", "CCS", "ticketbleed", "ROBOT", "secure_renego", "secure_client_renego",
                   "CRIME_TLS", "BREACH", "POODLE_SSL", "fallback_SCSV", "SWEET32", "FREAK", "DROWN",
                   "LOGJAM", "BEAST", "LUCKY13", "RC4"]
for v in vulnerabilities:
    f = by_id.get(v)
    if f is None:
        problems.append(f"{v}: not checked")
    elif v != "BREACH" and f["severity"] not in ("OK", "INFO", "LOW"):
        problems.append(f"{v}: {f['severity']} {f['finding']}")

if not finding("HSTS_time").endswith(f"({hsts_seconds} seconds)") and f"={hsts_seconds} seconds" not in finding("HSTS_time"):
    problems.append(f"HSTS: {finding('HSTS_time')}")

offered = [p for p in ("TLS1_2", "TLS1_3") if finding(p).startswith("offered")]
print(f"testssl.sh: protocols {' '.join(offered)}; {len(suites)} suites, all ECDHE/TLS 1.3: "
      + ", ".join(name(s) for s in suites))
print(f"testssl.sh: vulnerabilities: {sum(by_id[v]['severity'] in ('OK', 'INFO') for v in vulnerabilities if v in by_id)} of "
      f"{len(vulnerabilities)} not vulnerable; BREACH: {finding('BREACH')} (static files only, see above)")
print(f"testssl.sh: HSTS {finding('HSTS_time')}")
for p in problems:
    print(f"FAIL {p}")
sys.exit(1 if problems else 0)
PY
echo "testssl.sh: ok ($out/testssl.txt)"
