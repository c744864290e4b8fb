#!/usr/bin/env bash
# CI smoke of the load tooling: a small generated site (scale 0.05), served by servy
# (redirects fetched from servy-stub, so aliases are real) and by nginx, each loaded for
# a few seconds by the k6 blog scenario with 10 virtual users. Fails on any failed
# request or check; prints a short table. Then REDbot checks one URL of each kind
# (tests/bench/redbot.py) and fails on any BAD or WARN note; tests/tls/lone_h2.py checks
# that one HTTP/2 request on an idle connection is answered at once; testssl.sh checks servy's
# HTTPS (tests/tls/testssl.sh), and pebble + lego renew a certificate servy serves
# (tests/tls/renewal.sh).
#
# usage: tests/bench/smoke.sh [OUT_DIR]      (default tests/out/smoke)
# env:   SMOKE_DURATION (seconds, default 3), SMOKE_LOADS (default blog)
#
# It builds servy (with the site embedded) and servy-stub first; the timed part after
# the build is bounded to 120 s.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/tests/out/smoke}
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)

python3 "$repo/tests/sitegen/sitegen.py" --out "$out/site" --scale 0.05 >/dev/null

start=$SECONDS
(cd "$repo/server" && SERVY_ASSETS_DIR="$out/site/site" cargo build --release --locked -p servy -p servy-stub)
echo "smoke: build took $((SECONDS - start))s"
target=${CARGO_TARGET_DIR:-$repo/server/target}/release
mkdir -p "$out/bin"
cp "$target/servy" "$target/servy-stub" "$out/bin/"

start=$SECONDS
status=0
timeout 120 python3 "$here/bench.py" --out "$out" --scale 0.05 --rounds 1 \
  --duration "${SMOKE_DURATION:-3}" --loads "${SMOKE_LOADS:-blog}" --servers servy,nginx \
  --servy "$out/bin/servy" --stub "$out/bin/servy-stub" >"$out/bench.out" 2>"$out/bench.err" || status=$?
echo "smoke: load runs took $((SECONDS - start))s"
if [[ $status -ne 0 ]]; then
  cat "$out/bench.err" >&2
  echo "smoke: FAILED (exit $status); summaries under $out/runs" >&2
  exit 1
fi
# The table only: the report's header and notes are in $out/report.md.
grep '^|' "$out/bench.out"
# REDbot over one URL of each kind, shipped defaults: no BAD, no WARN.
timeout 180 python3 "$here/redbot.py" --servy "$out/bin/servy" --stub "$out/bin/servy-stub" \
  --site "$out/site" --out "$out/redbot" || { echo "smoke: REDbot found problems" >&2; exit 1; }
# A lone HTTP/2 response (h2c and over TLS) arrives whole without the client sending more
# (about 1 s).
timeout 60 python3 "$repo/tests/tls/lone_h2.py" --servy "$out/bin/servy" --site "$out/site/site" ||
  { echo "smoke: a lone HTTP/2 response was held back" >&2; exit 1; }
# The same release servy over HTTPS, as testssl.sh sees it (about 40 s).
bash "$repo/tests/tls/testssl.sh" "$out/bin/servy" "$out/testssl"
# Renewal with pebble and lego, reloaded by SIGHUP (about 10 s).
bash "$repo/tests/tls/renewal.sh" "$out/bin/servy" "$out/renewal"
echo "smoke: ok, no failed request or check ($out)"
