#!/usr/bin/env bash
# Benchmarks the pipeline on a 10,000-event batch and prints the numbers docs/benchmarks.md records:
#   1. criterion (benches/pipeline.rs): raw gunzip vs decode + parse + diagnose, MB/s and events/s;
#   2. peak RSS of `eks-auth invoke <batch> --offline` (GNU time; the Debian `time` package);
#   3. the plain-Python handler (scripts/py_pipeline.py) on the same batch, checked against Rust.
#
# Usage: scripts/bench.sh [--quick]     (--quick: criterion's shortest run, 3 Python runs)
# Env:   PY_RUNS (default 7), BATCH (default: a temp file), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
quick=0
[ "${1:-}" = "--quick" ] && quick=1
py_runs="${PY_RUNS:-7}"
[ "$quick" = 1 ] && py_runs=3
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
batch="${BATCH:-$work/batch.json}"

echo "== machine"
echo "cores: $(nproc); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "$(rustc --version); $(python3 --version 2>&1)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== criterion (cargo bench --bench pipeline)"
bench_args=(--bench pipeline --)
[ "$quick" = 1 ] && bench_args+=(--warm-up-time 1 --measurement-time 2)
if ! cargo bench "${bench_args[@]}" >"$work/criterion.log" 2>&1; then
  cat "$work/criterion.log"
  exit 1
fi
grep -E '^(pipeline|stages)|time:|thrpt:|^batch:' "$work/criterion.log" || true

echo "== builds"
cargo build --quiet --release --bin eks-auth --example batch
"$target/release/examples/batch" "$batch" 10000

if [ ! -x /usr/bin/time ]; then
  echo "installing GNU time (Debian package 'time')"
  apt-get update -qq && apt-get install -y -qq time >/dev/null
fi

echo "== peak memory (eks-auth invoke --offline, response JSON to /dev/null)"
rss() { # max RSS in KiB of one run of "$@"
  /usr/bin/time -v "$@" 2>"$work/time.txt" >/dev/null
  awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/time.txt"
}
rss_batch=$(for _ in 1 2 3; do rss "$target/release/eks-auth" invoke "$batch" --offline; done | sort -n | tail -1)
rss_small=$(rss "$target/release/eks-auth" invoke events/not-mapped.json --offline)
echo "10,000-event batch: ${rss_batch} KiB; one-line event: ${rss_small} KiB"

echo "== python (scripts/py_pipeline.py, $py_runs runs)"
python3 scripts/py_pipeline.py "$batch" --runs "$py_runs" --compare "$target/release/eks-auth" --json \
  | tee "$work/python.log"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== summary"
python3 - "$target/criterion" "$work/python.log" "$rss_batch" "$rss_small" <<'PY'
import json, sys
crit, pylog, rss_batch, rss_small = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def estimate(group, name):
    with open(f"{crit}/{group}/{name}/new/estimates.json") as f:
        e = json.load(f)
    point = (e.get("slope") or e["mean"])["point_estimate"]  # what criterion prints, ns
    with open(f"{crit}/{group}/{name}/new/benchmark.json") as f:
        tp = json.load(f).get("throughput") or {}
    return point / 1e9, tp

pipe_s, tp = estimate("pipeline_bytes", "decode_parse_diagnose")
gz_s, _ = estimate("pipeline_bytes", "gunzip")
pipe_ev_s, tpe = estimate("pipeline_events", "decode_parse_diagnose")
size = tp["Bytes"]
events = tpe["Elements"]
py = json.loads(open(pylog).read().strip().splitlines()[-1])
ratio = pipe_s / gz_s
speed_best = py["best_s"] / pipe_s
speed_mean = py["mean_s"] / pipe_s
rows = [
    ("batch", f"{events} events, {size / 1e6:.2f} MB decompressed"),
    ("raw gunzip", f"{gz_s * 1e3:.2f} ms = {size / gz_s / 1e6:.0f} MB/s"),
    ("pipeline (decode+parse+diagnose)", f"{pipe_s * 1e3:.2f} ms = {size / pipe_s / 1e6:.0f} MB/s, {events / pipe_s / 1e3:.0f}k events/s"
     f" (events group: {pipe_ev_s * 1e3:.2f} ms)"),
    ("pipeline / gunzip", f"{ratio:.2f}x  (target <= 2x: {'met' if ratio <= 2 else 'NOT met'})"),
    ("python best / mean", f"{py['best_s'] * 1e3:.0f} / {py['mean_s'] * 1e3:.0f} ms = {py['events_per_s']:.0f} events/s, {py['mb_per_s']:.1f} MB/s (best)"),
    ("speedup vs python", f"{speed_best:.1f}x vs best, {speed_mean:.1f}x vs mean  (target >= 20x: {'met' if speed_best >= 20 else 'NOT met'} vs best)"),
    ("same work as Rust", "yes" if py["same_as_rust"] else "NO"),
    ("peak RSS, eks-auth invoke", f"{rss_batch / 1024:.1f} MiB for the batch ({rss_small / 1024:.1f} MiB for a one-line event)"
     f"  (target < 50 MB: {'met' if rss_batch * 1024 < 50e6 else 'NOT met'})"),
]
w = max(len(k) for k, _ in rows)
print(f"| {'what':<{w}} | result |\n|{'-' * (w + 2)}|--------|")
for k, v in rows:
    print(f"| {k:<{w}} | {v} |")
PY
