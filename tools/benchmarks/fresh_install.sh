#!/usr/bin/env bash
# Time the set-up a new user gets: a fresh clone of this repository with an EMPTY pip cache, then
# `make install` (default: mmcv-lite) and `make demo`; with --full also `make install-full`.
# Usage: bash tools/benchmarks/fresh_install.sh [--full]     (prints one line per step: "<step>: <seconds> s")
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/clone"
export PIP_CACHE_DIR="$work/pip-cache"          # empty: nothing downloaded or built before is reused
cd "$work/clone"
step() {
  local name=$1; shift
  local t0=$SECONDS
  "$@" > "$work/$name.log" 2>&1 || { echo "$name failed; last lines:"; tail -20 "$work/$name.log"; exit 1; }
  echo "$name: $((SECONDS - t0)) s"
}
step 'make install' make install
step 'make demo' make demo
grep -E 'Dice|hemorrhage' "$work/make demo.log" | tail -3
if [[ "${1:-}" == "--full" ]]; then
  step 'make install-full' make install-full
fi
