#!/usr/bin/env bash
# Grades the demo site with Mozilla's MDN HTTP Observatory, served by servy, twice:
#
#   1. plain HTTP: every test that does not need HTTPS must pass (CSP, X-Frame-Options or
#      frame-ancestors, X-Content-Type-Options, Referrer-Policy, cookies, CORS, SRI,
#      CORP); redirection to HTTPS and HSTS are reported only;
#   2. HTTPS: the same site with [http] redirect_to_https and [https] hsts, behind a
#      certificate from a throwaway CA (tests/tls/mkcert.sh): the grade must be A+.
#
# usage: tests/observatory/scan.sh [OUT_DIR]        (default tests/out/observatory)
# env:   OBSERVATORY_DIR  where tests/install-deps.sh installed the scanner
#                         (default /opt/servy-test/observatory)
#        SERVY_BIN        a servy embedding the demo site (default: cargo build, debug)
#
# How it reaches servy: the scanner's CLI takes a host name only and always fetches
# http://HOST/ and https://HOST/ on ports 80 and 443. So each scan runs in a network
# namespace of its own (unshare -rn), where servy binds ports 80 and 443 on that
# namespace's loopback: no real port is needed and nothing else on the machine is
# touched. Node trusts the throwaway CA through NODE_EXTRA_CA_CERTS.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/tests/out/observatory}
obs=${OBSERVATORY_DIR:-/opt/servy-test/observatory}
pkg=$obs/node_modules/@mdn/mdn-http-observatory
mkdir -p "$out"
out=$(cd "$out" && pwd)

[ -f "$pkg/src/scan.js" ] || { echo "observatory: not installed in $obs (run tests/install-deps.sh)" >&2; exit 1; }
# Installed with --ignore-scripts, whose postinstall would download these two lists: an
# empty preload list (no host here is preloaded) and the few TLDs a local scan can meet.
[ -f "$pkg/conf/hsts-preload.json" ] || echo '{}' >"$pkg/conf/hsts-preload.json"
[ -f "$pkg/conf/tld-list.json" ] || echo '["com","net","org","localhost","test","example"]' >"$pkg/conf/tld-list.json"

if [ -z "${SERVY_BIN:-}" ]; then
  (cd "$repo/server" && env -u SERVY_ASSETS_DIR cargo build --locked -q -p servy)
  SERVY_BIN=${CARGO_TARGET_DIR:-$repo/server/target}/debug/servy
fi
bash "$repo/tests/tls/mkcert.sh" "$out/tls" localhost

cat >"$out/http.toml" <<'TOML'
[http]
listen = ["127.0.0.1:80", "[::1]:80"]
[metrics]
listen = []
[log]
requests = false
TOML
cat >"$out/https.toml" <<TOML
[http]
listen = ["127.0.0.1:80", "[::1]:80"]
redirect_to_https = true
[https]
listen = ["127.0.0.1:443", "[::1]:443"]
hsts = "max-age=63072000; includeSubDomains"
certificates = [{ cert = "$out/tls/fullchain.pem", key = "$out/tls/key.pem" }]
[metrics]
listen = []
[log]
requests = false
TOML

# scan NAME: servy with NAME.toml in a private network namespace, the scanner against
# it (src/scan.js is what the package's CLI wrapper runs), NAME.json out. Bounded.
scan() {
  timeout 60 env NODE_EXTRA_CA_CERTS="$out/tls/ca.pem" unshare -rn sh -c '
    ip link set lo up
    "$1" --config "$2/$4.toml" 2>"$2/$4.servy.err" &
    servy=$!
    for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/80) 2>/dev/null && break; sleep 0.1; done
    node "$3/src/scan.js" localhost >"$2/$4.json" 2>"$2/$4.err"
    status=$?
    kill "$servy"
    exit $status
  ' sh "$SERVY_BIN" "$out" "$pkg" "$1" || {
    echo "observatory: the $1 scan failed" >&2
    cat "$out/$1.err" "$out/$1.json" "$out/$1.servy.err" >&2 2>/dev/null || true
    return 1
  }
}

scan http
scan https
python3 - "$out/http.json" "$out/https.json" <<'PY'
import json, sys

def show(path, label):
    report = json.load(open(path))
    if report.get("error"):
        sys.exit(f"observatory ({label}): {report['error']}")
    scan = report["scan"]
    print(f"observatory ({label}): grade {scan['grade']}, score {scan['score']}/100 "
          f"({scan['testsPassed']} of {scan['testsQuantity']} tests passed)")
    return report

failed = []
plain = show(sys.argv[1], "plain HTTP")
needs_https = {"redirection", "strict-transport-security"}
for name, test in sorted(plain["tests"].items()):
    verdict = "PASS" if test["pass"] else ("n/a " if name in needs_https else "FAIL")
    print(f"  {verdict} {name}: {test['result']} ({test['scoreModifier']:+d})")
    if not test["pass"] and name not in needs_https:
        failed.append(f"plain HTTP: {name}")
# The Observatory passes a site with no Referrer-Policy (score 0); this site sets one.
if plain["tests"]["referrer-policy"]["result"] == "referrer-policy-not-implemented":
    failed.append("plain HTTP: referrer-policy (not set)")

tls = show(sys.argv[2], "HTTPS, redirect_to_https, HSTS")
for name, test in sorted(tls["tests"].items()):
    print(f"  {'PASS' if test['pass'] else 'FAIL'} {name}: {test['result']} ({test['scoreModifier']:+d})")
    if not test["pass"]:
        failed.append(f"HTTPS: {name}")
if tls["scan"]["grade"] != "A+":
    failed.append(f"HTTPS: grade {tls['scan']['grade']}, not A+")

if failed:
    sys.exit("observatory: FAILED: " + "; ".join(failed))
print("observatory: ok (plain HTTP: every test that does not need HTTPS; HTTPS: A+)")
PY
