#!/usr/bin/env bash
# The test command: every layer that can run on a plain Linux machine, in order of cost.
#
#   tests/run.sh              all stages
#   tests/run.sh rust units   only the named stages
#
# Stages: docs (every internal link in the Markdown resolves), rust (no import circle,
# fmt, clippy, unit + integration tests, the config reference names every key), nix (parse, format, lint, lock,
# module evaluation), units (systemd-analyze verify + security), deploy (the Kubernetes
# manifests: schemas, agreement with servy, a pod-like run), smoke (k6 against servy
# and nginx, hostile clients (tests/attack/), curl over HTTP/3 and a QUIC Initial flood
# (tests/http3/), then the MDN HTTP Observatory against the
# demo site), systemd (the shipped
# units under a real systemd in a container).
# Run tests/install-deps.sh first on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

stage_rust() {
  # Imports flow one way: no file imports one that imports it back.
  python3 tests/layout/imports.py server/servy/src server/rules/src server/stub/src &&
  (cd server &&
    cargo fmt --all -- --check &&
    cargo clippy --workspace --all-targets --locked -- -D warnings &&
    # The integration tests start servy-stub next to servy, so build the whole workspace first.
    cargo build --workspace --locked &&
    cargo nextest run --workspace --locked --no-fail-fast &&
    # The integration suite again with the other [http] zero_copy mode (sendfile vs writes).
    SERVY_TEST_ZERO_COPY=auto cargo nextest run -p servy --test it --locked --no-fail-fast)
}
stage_docs() { python3 tests/docs/check_links.py; }
stage_nix() { bash tests/nix/check.sh; }
stage_units() { bash tests/systemd/verify.sh; }
stage_deploy() {
  (cd server && cargo build --locked -p servy) &&
    python3 tests/deploy/kubernetes.py "${CARGO_TARGET_DIR:-server/target}/debug/servy"
}
# The hostile clients run against the release build smoke.sh leaves in tests/out/smoke/bin.
stage_smoke() {
  bash tests/bench/smoke.sh && timeout 300 python3 tests/attack/run.py tests/out/smoke/bin/servy &&
    timeout 120 python3 tests/http3/check.py --servy tests/out/smoke/bin/servy &&
    bash tests/observatory/scan.sh
}
stage_systemd() { bash tests/systemd/run.sh; }

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(docs rust nix units deploy smoke systemd)
failed=()
for s in "${stages[@]}"; do
  declare -F "stage_$s" >/dev/null || { echo "run.sh: unknown stage '$s'" >&2; exit 2; }
  echo "=== $s"
  start=$SECONDS
  if (cd "$root" && "stage_$s"); then
    echo "=== $s: ok ($((SECONDS - start)) s)"
  else
    echo "=== $s: FAILED ($((SECONDS - start)) s)"
    failed+=("$s")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "run.sh: failed stages: ${failed[*]}"
else
  echo "run.sh: all stages passed: ${stages[*]}"
fi
# The closing line counts stages (each stage prints its own checks above).
echo "stages: $((${#stages[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
