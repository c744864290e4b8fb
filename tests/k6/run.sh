#!/usr/bin/env bash
# Run one k6 scenario against a running server and keep its summaries.
#
# usage: tests/k6/run.sh [options] [-- extra k6 arguments]
#   -s, --scenario NAME   blog (default) or browser
#   -u, --url URL         server base URL               (env BASE_URL, default http://127.0.0.1:8080)
#   -p, --paths FILE      one URL path per line         (env PATHS_FILE)
#   -l, --list-assets BIN take the paths from `BIN --list-assets` instead of --paths
#   -a, --aliases FILE    aliases, or a redirects file  (env ALIASES_FILE, optional)
#   -v, --vus N           virtual users                 (env VUS, default 10)
#   -d, --duration D      run length, k6 syntax         (env DURATION, default 30s)
#   -o, --out DIR         where summary.{json,txt,html} go (env SUMMARY_DIR, default .)
#   -h, --help
#
# Exit status is k6's: 0 when every threshold held (all checks passed, no failed
# request), 99 when a threshold failed, other values for usage or k6 errors.
# This interface is used by the Nix k6test package: keep it stable.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
scenario=blog
list_assets=
export BASE_URL=${BASE_URL:-http://127.0.0.1:8080}
export PATHS_FILE=${PATHS_FILE:-}
export ALIASES_FILE=${ALIASES_FILE:-}
export VUS=${VUS:-10}
export DURATION=${DURATION:-30s}
export SUMMARY_DIR=${SUMMARY_DIR:-.}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
need() { [[ $# -ge 2 && -n $2 ]] || { echo "run.sh: $1 needs a value" >&2; exit 2; }; }

while [[ $# -gt 0 ]]; do
  case $1 in
    -s|--scenario) need "$@"; scenario=$2; shift 2 ;;
    -u|--url) need "$@"; BASE_URL=$2; shift 2 ;;
    -p|--paths) need "$@"; PATHS_FILE=$2; shift 2 ;;
    -l|--list-assets) need "$@"; list_assets=$2; shift 2 ;;
    -a|--aliases) need "$@"; ALIASES_FILE=$2; shift 2 ;;
    -v|--vus) need "$@"; VUS=$2; shift 2 ;;
    -d|--duration) need "$@"; DURATION=$2; shift 2 ;;
    -o|--out) need "$@"; SUMMARY_DIR=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

case $scenario in
  blog|browser) ;;
  *) echo "run.sh: unknown scenario $scenario (blog or browser)" >&2; exit 2 ;;
esac

mkdir -p "$SUMMARY_DIR"
SUMMARY_DIR=$(cd "$SUMMARY_DIR" && pwd)
if [[ -n $list_assets ]]; then
  PATHS_FILE=$SUMMARY_DIR/paths.txt
  "$list_assets" --list-assets >"$PATHS_FILE"
fi
if [[ -z $PATHS_FILE ]]; then
  echo "run.sh: give the paths with --paths FILE or --list-assets BIN" >&2
  exit 2
fi
# k6 resolves open() against the script's directory: hand it absolute paths.
PATHS_FILE=$(realpath "$PATHS_FILE")
[[ -z $ALIASES_FILE ]] || ALIASES_FILE=$(realpath "$ALIASES_FILE")

exec k6 run --quiet --no-usage-report "$@" "$here/$scenario.js"
