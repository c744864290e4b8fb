#!/usr/bin/env bash
# The Nix checks that run where Nix cannot build (no binary cache; Debian's nix-bin):
#
#   1. every .nix file parses            nix-instantiate --parse
#   2. formatted as `nix fmt` would      nixfmt-check (the alejandra 3.1 library, server/nixfmt)
#   3. no dead code                      deadnix --fail
#   4. flake.lock pins exactly the inputs flake.nix names, each fully locked
#   5. the NixOS module, the package recipes, the flake's outputs and benchvm evaluate right
#      (tests/eval), with the real nixpkgs lib, when NIXPKGS_LIB names a checkout of nixpkgs.lib;
#      the scripts they write pass pyflakes and shellcheck (where installed); benchvm.py's tests
#
# usage: NIXPKGS_LIB=/path/to/nixpkgs.lib tests/nix/check.sh
# Needs nix-instantiate, jq, cargo and deadnix (`cargo install deadnix --locked`).
# Everything a Nix machine builds (packages, crane checks, VM tests) is `nix flake check`.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$SECONDS

step() { echo "--- nix: $*"; }
fail() {
  echo "nix check FAILED: $*" >&2
  exit 1
}

mapfile -t files < <(git ls-files --cached --others --exclude-standard -- '*.nix')
[ ${#files[@]} -gt 0 ] || fail "no .nix files found"

step "parse ${#files[@]} files (nix-instantiate --parse)"
for f in "${files[@]}"; do
  nix-instantiate --parse "$f" >/dev/null || fail "$f does not parse"
done

step "format (alejandra 3.1, as nix fmt)"
# The debug build: the rust stage's `cargo build --workspace` has made it already.
(cd server && cargo run -q --locked -p nixfmt-check -- "${files[@]/#/../}") ||
  fail "not formatted; fix with: (cd server && cargo run -p nixfmt-check -- --write ../FILE.nix)"

step "dead code (deadnix $(deadnix --version 2>/dev/null | awk '{print $2}'))"
deadnix --fail "${files[@]}" || fail "deadnix found unused bindings"

step "flake.lock: version 7, pins exactly the inputs of flake.nix, original = flake.nix URL"
inputs=$(nix-instantiate --eval --strict --json -E '{ flake }: (import flake).inputs' --arg flake ./flake.nix)
problems=$(jq -r --argjson inputs "$inputs" '
  def url($o): "\($o.type):\($o.owner)/\($o.repo)" + (if $o.ref then "/\($o.ref)" else "" end);
  . as $lock
  | [
      (if .version != 7 then "version is \(.version), expected 7" else empty end),
      (if .root != "root" or (.nodes.root | type) != "object" then "no root node" else empty end),
      (if (.nodes.root.inputs // {} | keys) != ($inputs | keys)
       then "root inputs \(.nodes.root.inputs // {} | keys) differ from flake.nix inputs \($inputs | keys)"
       else empty end),
      (.nodes | keys[] | select(. != "root") as $n
       | select([$lock.nodes.root.inputs[]] | index($n) | not)
       | "node \($n) is locked but not an input of flake.nix"),
      ($inputs | to_entries[] | .key as $name | .value.url as $want
       | ($lock.nodes[$lock.nodes.root.inputs[$name] // ""]) as $node
       | if $node == null then "input \($name) has no node"
         else
           (["type", "owner", "repo", "rev", "narHash", "lastModified"][]
            | select($node.locked[.] == null) | "\($name): locked.\(.) is missing"),
           (if ($node.locked.rev // "" | test("^[0-9a-f]{40}$") | not) then "\($name): locked.rev is not a full commit" else empty end),
           (if ($node.locked.narHash // "" | test("^sha256-[A-Za-z0-9+/]{43}=$") | not) then "\($name): locked.narHash is not an SRI sha256" else empty end),
           (if ($node.locked.lastModified | type) != "number" then "\($name): locked.lastModified is not a number" else empty end),
           (if $node.locked.owner != $node.original.owner or $node.locked.repo != $node.original.repo
            then "\($name): locked \($node.locked.owner)/\($node.locked.repo) is not original \($node.original.owner)/\($node.original.repo)" else empty end),
           (if url($node.original) != $want then "\($name): original is \(url($node.original)), flake.nix says \($want)" else empty end),
           (($node.inputs // {}) | keys[] | "\($name): has input \(.) (unexpected: both inputs have none)")
         end)
    ]
  | .[]' flake.lock) || fail "flake.lock is not valid JSON"
[ -z "$problems" ] || fail "flake.lock:"$'\n'"$problems"
jq -r '.nodes as $n | $n.root.inputs | to_entries[] | $n[.value] as $node
  | "  \(.key): \($node.original.owner)/\($node.original.repo)/\($node.original.ref // "") locked at \($node.locked.rev)"' flake.lock

if [ -n "${NIXPKGS_LIB:-}" ]; then
  lib=$NIXPKGS_LIB
  [ -f "$lib/lib/default.nix" ] && lib=$lib/lib
  [ -f "$lib/default.nix" ] || fail "NIXPKGS_LIB=$NIXPKGS_LIB holds no lib/default.nix"
  version=$(nix-instantiate --eval --expr '{ lib }: (import lib).version' --argstr lib "$lib" | tr -d '"')
  for test in tests/eval/default.nix tests/eval/packages.nix tests/eval/flake.nix tests/eval/benchvm.nix; do
    step "evaluation with the nixpkgs lib $version: $test"
    out=$(nix-instantiate --eval --strict --json "$test" --argstr nixpkgsLib "$lib") ||
      fail "evaluation: $test"
    jq -r '.[]' <<<"$out" | sed 's/^/  /'
    echo "  $(jq length <<<"$out") cases passed"
  done

  step "VM test scripts compile (python3)$(python3 -m pyflakes --version >/dev/null 2>&1 && echo " and pass pyflakes, as the test driver lints them")"
  scripts=$(mktemp -d)
  trap 'rm -rf "$scripts"' EXIT
  rendered=$(nix-instantiate --eval --strict --json tests/eval/vm-scripts.nix --argstr nixpkgsLib "$lib") ||
    fail "evaluation: tests/eval/vm-scripts.nix"
  for test in $(jq -r 'keys[]' <<<"$rendered"); do
    jq -r --arg t "$test" '.[$t].testScript' <<<"$rendered" >"$scripts/$test.py"
    python3 -m py_compile "$scripts/$test.py" || fail "tests/nixos/$test.nix: the test script does not compile"
    if python3 -m pyflakes --version >/dev/null 2>&1; then
      # The driver's globals, and one per node.
      PYFLAKES_BUILTINS="start_all,subtest,$(jq -r --arg t "$test" '.[$t].nodes | join(",")' <<<"$rendered")" \
        python3 -m pyflakes "$scripts/$test.py" || fail "tests/nixos/$test.nix: pyflakes"
    fi
    echo "  $test: $(jq -r --arg t "$test" '.[$t].nodes | join(", ")' <<<"$rendered")"
  done

  step "benchvm's shell scripts pass $(command -v shellcheck >/dev/null && echo shellcheck, as writeShellApplication checks them || echo "bash -n (shellcheck not installed)")"
  rendered=$(nix-instantiate --eval --strict --json tests/eval/shell-scripts.nix --argstr nixpkgsLib "$lib") ||
    fail "evaluation: tests/eval/shell-scripts.nix"
  for script in $(jq -r 'keys[]' <<<"$rendered"); do
    # The prologue writeShellApplication puts before the text.
    { printf '#!/usr/bin/env bash\nset -o errexit\nset -o nounset\nset -o pipefail\n\n'
      jq -r --arg s "$script" '.[$s]' <<<"$rendered"; } >"$scripts/$script.sh"
    if command -v shellcheck >/dev/null; then
      shellcheck "$scripts/$script.sh" || fail "$script: shellcheck"
    else
      bash -n "$scripts/$script.sh" || fail "$script: bash -n"
    fi
    echo "  $script"
  done

else
  echo "SKIPPED: module evaluation (set NIXPKGS_LIB=<checkout of nixpkgs.lib> to run it)"
fi

step "benchvm-test's Python (tests/bench/benchvm.py): its unit tests$(python3 -m pyflakes --version >/dev/null 2>&1 && echo " and pyflakes")"
if python3 -m pyflakes --version >/dev/null 2>&1; then
  python3 -m pyflakes tests/bench/benchvm.py tests/bench/configs.py tests/bench/test_benchvm.py || fail "pyflakes: tests/bench"
fi
(cd tests/bench && python3 -m unittest -q test_benchvm 2>&1 | tail -n 3) || fail "tests/bench/test_benchvm.py"

echo "nix checks passed in $((SECONDS - started)) s"
