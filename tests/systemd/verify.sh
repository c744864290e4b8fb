#!/usr/bin/env bash
# Checks every shipped unit file: `systemd-analyze verify`, then the sandbox exposure
# score of servy.service (`systemd-analyze security --offline=yes`), failing above
#   1.2  as shipped (redirects may be fetched from a URL, so the network stays), and
#   0.6  with servy.service.d/private-network.conf (no network beyond the passed sockets).
# Also checks the example servy.toml with `servy --check`. Fast; needs no root.
# SERVY_BINDIR names the directory holding the servy binary that @bindir@ stands for;
# default: the workspace's release or debug build.
set -euo pipefail
cd "$(dirname "$0")/../.."
units=server/systemd

bindir=${SERVY_BINDIR:-}
if [ -z "$bindir" ]; then
  for d in server/target/release server/target/debug; do
    [ -x "$d/servy" ] && { bindir=$PWD/$d; break; }
  done
fi
if [ -z "$bindir" ]; then
  (cd server && cargo build --release --locked -p servy)
  bindir=$PWD/server/target/release
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# A copy of the shipped units with @bindir@ replaced, as an installer would write them.
stage() {
  local dir=$1
  mkdir -p "$dir"
  cp "$units"/*.service "$units"/*.socket "$dir"/
  sed -i "s|@bindir@|$bindir|g" "$dir"/*.service
}

stage "$tmp/plain"
stage "$tmp/private"
cp -r "$units/servy.service.d" "$tmp/private/"

pass() { echo "PASS $1"; passed=$((passed + 1)); }
# fail WHAT [DETAILS]: the details indented under the line.
fail() {
  echo "FAIL $1"
  [ -z "${2-}" ] || printf '%s\n' "$2" | sed 's/^/    /'
  failed=$((failed + 1))
}

# Any output (an unknown key, a missing binary) is a failure, not only the exit status.
for unit in "$tmp"/plain/*.service "$tmp"/plain/*.socket "$tmp"/private/servy.service; do
  name=${unit#"$tmp"/}
  if out=$(systemd-analyze verify "$unit" 2>&1) && [ -z "$out" ]; then
    pass "verify $name"
  else
    fail "verify $name" "${out:-exit status non-zero}"
  fi
done

# The overall score, e.g. "1.1", from the last line of the report.
exposure() {
  (cd "$1" && systemd-analyze security --offline=yes --no-pager servy.service) |
    sed -n 's/.*Overall exposure level for servy.service: \([0-9.]*\).*/\1/p'
}

for variant in plain:1.2 private:0.6; do
  name=${variant%:*} limit=${variant#*:}
  score=$(exposure "$tmp/$name") || score= # an error is a FAIL below, not the end of the run
  if [ -n "$score" ] && awk -v s="$score" -v m="$limit" 'BEGIN { exit !(s <= m) }'; then
    pass "security servy.service ($name): exposure $score (limit $limit)"
  else
    fail "security servy.service ($name): exposure ${score:-unknown} (limit $limit)"
  fi
done
# The example configuration install.sh ships must stay valid for the servy it ships with.
if out=$("$bindir/servy" --check --config "$units/servy.toml" 2>&1); then
  pass "servy --check servy.toml"
else
  fail "servy --check servy.toml" "$out"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
