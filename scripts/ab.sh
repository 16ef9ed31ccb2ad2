#!/usr/bin/env bash
# Compares the pipeline at two revisions on this machine, alternating their builds so that both
# see the same load: scripts/ab.sh BASE [NEW] [RUNS]
#
#   BASE, NEW  git revisions (NEW defaults to the working tree, uncommitted changes included)
#   RUNS       alternations (default 10)
#
# Each side is `examples/abtime.rs` built in release at that revision (in a git worktree under a
# temporary directory), both into one target directory ($AB_TARGET, else $CARGO_TARGET_DIR, else
# ./target), so the dependencies are built once. Prints every run, then the means.
# Code layout alone moves a stage by up to 7% between two builds; a difference smaller than that
# needs more runs, or a second look with the roles swapped.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n '2,/^set /{/^#/p}' "$0" >&2; exit 2; }
base="$1"
new="${2:-}"
runs="${3:-10}"
target="${AB_TARGET:-${CARGO_TARGET_DIR:-$PWD/target}}"
work="$(mktemp -d)"
cleanup() {
  git worktree remove --force "$work/base" >/dev/null 2>&1 || true
  [ -z "$new" ] || git worktree remove --force "$work/new" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Builds the example in DIR into TARGET and copies the binary to OUT.
build() {
  local dir="$1" tgt="$2" out="$3"
  # The example may be newer than the revision: take this tree's copy.
  if [ "$dir" != "$PWD" ]; then
    mkdir -p "$dir/examples"
    cp examples/abtime.rs "$dir/examples/abtime.rs"
  fi
  # Cargo's fingerprints do not tell the two checkouts apart (the crate's artifacts are named
  # alike wherever it sits): without a clean, one side would silently reuse the other's build.
  (cd "$dir" && CARGO_TARGET_DIR="$tgt" cargo clean --quiet --release -p eks-auth-remediator &&
    CARGO_TARGET_DIR="$tgt" cargo build --quiet --release --example abtime)
  cp "$tgt/release/examples/abtime" "$out"
}

git worktree add --quiet --detach "$work/base" "$base"
build "$work/base" "$target" "$work/abtime-base"
if [ -n "$new" ]; then
  git worktree add --quiet --detach "$work/new" "$new"
  build "$work/new" "$target" "$work/abtime-new"
else
  build "$PWD" "$target" "$work/abtime-new"
fi

echo "base=$base new=${new:-working tree} runs=$runs load=$(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq 1 "$runs"); do
  echo "base $("$work/abtime-base")"
  echo "new  $("$work/abtime-new")"
done | tee "$work/runs.txt"
awk '
  { side = $1; for (i = 2; i <= NF; i++) { split($i, kv, "="); sum[side, kv[1]] += kv[2]; keys[kv[1]] = 1 } n[side]++ }
  END {
    for (k in keys) printf "mean %-10s base %.3f  new %.3f  (%+.1f%%)\n", k, sum["base", k] / n["base"], sum["new", k] / n["new"], 100 * (sum["new", k] / n["new"] / (sum["base", k] / n["base"]) - 1)
  }' "$work/runs.txt" | sort
