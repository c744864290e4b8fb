#!/bin/sh
# Installs servy and its systemd units on a distribution other than NixOS:
#   sudo server/systemd/install.sh [path/to/servy]
# The binary goes to /usr/local/bin, the units to /etc/systemd/system (with @bindir@
# replaced), and an example /etc/servy/servy.toml unless one exists. DESTDIR installs
# into another root (a container or image) without reloading systemd.
set -eu
here=$(dirname "$0")
bin=${1:-$here/../target/release/servy}
root=${DESTDIR:-}
bindir=/usr/local/bin
unitdir=/etc/systemd/system

[ -x "$bin" ] || { echo "install.sh: no servy binary at $bin (cargo build --release)" >&2; exit 1; }
install -D -m 0755 "$bin" "$root$bindir/servy"
mkdir -p "$root$unitdir"
for unit in servy.service servy.socket servy-metrics.socket servy-https.socket servy-quic.socket; do
  sed "s|@bindir@|$bindir|g" "$here/$unit" >"$root$unitdir/$unit.tmp"
  chmod 0644 "$root$unitdir/$unit.tmp"
  mv "$root$unitdir/$unit.tmp" "$root$unitdir/$unit"
done
# World-readable: the dynamic user servy runs as owns nothing on disk.
[ -e "$root/etc/servy/servy.toml" ] || install -D -m 0644 "$here/servy.toml" "$root/etc/servy/servy.toml"

if [ -z "$root" ]; then
  systemctl daemon-reload
  echo "installed; start listening with: systemctl enable --now servy.socket servy-metrics.socket"
  echo "(HTTPS: list certificates in /etc/servy/servy.toml, then enable servy-https.socket;
  HTTP/3: set [https] http3 = true, then enable servy-quic.socket too)"
fi
