#!/usr/bin/env bash
# Grades the demo site with Mozilla's MDN HTTP Observatory, served by servy over plain
# HTTP, and fails unless every test that does not need HTTPS passes: CSP, X-Frame-Options
# (or frame-ancestors), X-Content-Type-Options, Referrer-Policy, cookies, CORS, SRI, CORP.
# Redirection to HTTPS and HSTS are reported, not required (they need the https listener).
#
# usage: tests/observatory/scan.sh [OUT_DIR]        (default tests/out/observatory)
# env:   OBSERVATORY_DIR  where tests/install-deps.sh installed the scanner
#                         (default /opt/servy-test/observatory)
#        SERVY_BIN        a servy embedding the demo site (default: cargo build, debug)
#
# How it reaches servy: the scanner's CLI takes a host name only and always fetches
# http://HOST/ and https://HOST/ on ports 80 and 443. So the scan runs in a network
# namespace of its own (unshare -rn), where servy binds port 80 on that namespace's
# loopback: no real port is needed and nothing else on the machine is touched. Port 443
# is closed there, so the HTTPS tests fail as they would for any plain-HTTP site.
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

cat >"$out/servy.toml" <<'TOML'
[http]
listen = ["127.0.0.1:80", "[::1]:80"]
[metrics]
listen = []
[log]
requests = false
TOML

# Inside the namespace: loopback up, servy in the background, wait for port 80, scan
# (src/scan.js is what the package's CLI wrapper runs), stop servy. Bounded by timeout.
timeout 60 unshare -rn sh -c '
  ip link set lo up
  "$1" --config "$2/servy.toml" 2>"$2/servy.err" &
  servy=$!
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/80) 2>/dev/null && break; sleep 0.1; done
  node "$3/src/scan.js" localhost >"$2/scan.json" 2>"$2/scan.err"
  status=$?
  kill "$servy"
  exit $status
' sh "$SERVY_BIN" "$out" "$pkg" || {
  echo "observatory: the scan failed" >&2
  cat "$out/scan.err" "$out/scan.json" "$out/servy.err" >&2 2>/dev/null || true
  exit 1
}

python3 - "$out/scan.json" <<'PY'
import json, sys

report = json.load(open(sys.argv[1]))
if report.get("error"):
    sys.exit(f"observatory: {report['error']}")
scan = report["scan"]
print(f"observatory: grade {scan['grade']}, score {scan['score']}/100 "
      f"({scan['testsPassed']} of {scan['testsQuantity']} tests passed)")
needs_https = {"redirection", "strict-transport-security"}
failed = []
for name, test in sorted(report["tests"].items()):
    verdict = "PASS" if test["pass"] else ("n/a " if name in needs_https else "FAIL")
    print(f"  {verdict} {name}: {test['result']} ({test['scoreModifier']:+d})")
    if not test["pass"] and name not in needs_https:
        failed.append(name)
# The Observatory passes a site with no Referrer-Policy (score 0); this site sets one.
if report["tests"]["referrer-policy"]["result"] == "referrer-policy-not-implemented":
    failed.append("referrer-policy (not set)")
if failed:
    sys.exit(f"observatory: FAILED: {', '.join(failed)}")
print("observatory: ok, every test that does not need HTTPS passes")
PY
