#!/usr/bin/env bash
# Prints the path of a minimal Debian root with systemd, building it first if it is missing.
#
# The root is cached outside the repository (SERVY_TEST_CACHE, default
# /var/cache/servy-test), keyed by a hash of the suite and package list, so a change of
# either builds a new one. Runs copy it and never write to it. The mirror is the one this
# machine's apt already uses, read at run time. Needs root, debootstrap.
set -euo pipefail

suite=bookworm
# systemd-sysv makes systemd PID 1; dbus lets systemctl talk to it as on a real machine;
# servy's TLS client for redirects loads the system's CA roots, as on any real server.
packages=systemd,systemd-sysv,dbus,ca-certificates
cache=${SERVY_TEST_CACHE:-/var/cache/servy-test}

# The first archive URI of the host's apt sources that serves $suite (deb822 or one-line).
host_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk -v s="$suite" '
      /^URIs:/    { u = $2 }
      /^Suites:/  { for (i = 2; i <= NF; i++) if ($i == s) found = u }
      /^$/        { if (found) { print found; exit } u = "" }
      END         { if (found) print found }' "$f" | head -n1)
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk -v s="$suite" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i == s) { print $(i - 1); exit } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  echo "root.sh: no apt source for $suite on this machine" >&2
  return 1
}

key=$(printf '%s %s\n' "$suite" "$packages" | sha256sum | cut -c1-12)
root=$cache/$suite-$key
if [ ! -x "$root/lib/systemd/systemd" ]; then
  mirror=$(host_mirror)
  echo "root.sh: building $root from $mirror (a few minutes, once)" >&2
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.build.XXXXXX")
  # --one-file-system: an interrupted debootstrap may leave /proc mounted inside.
  trap 'rm -rf --one-file-system "$tmp"' EXIT
  # A few minutes normally; a stalled mirror must not hold CI for its whole budget.
  timeout 1200 debootstrap --variant=minbase --include="$packages" "$suite" "$tmp/root" "$mirror" >"$tmp/log" 2>&1 ||
    { tail -n 20 "$tmp/log" >&2; exit 1; }
  # Small and quiet boots: no apt caches, no getty on the console nspawn gives us.
  rm -rf "$tmp/root/var/cache/apt/archives/"*.deb "$tmp/root/var/lib/apt/lists/"*
  ln -sf /dev/null "$tmp/root/etc/systemd/system/getty.target"
  echo servy-test >"$tmp/root/etc/hostname"
  rm -rf "$root"
  mv "$tmp/root" "$root"
  # Roots of older package lists are never used again.
  find "$cache" -maxdepth 1 -name "$suite-*" ! -path "$root" -exec rm -rf {} +
fi
echo "$root"
