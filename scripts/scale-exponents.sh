#!/usr/bin/env bash
# Issue #11's scaling claims, measured: the simulator's wall time and peak memory should grow linearly with the
# number of trajectories and stay flat in cluster size (at fixed trajectories) and in tokens per trajectory.
# Three series from one generated scenario (Qwen2.5-7B on H100, tp 1, GRPO 16 samples per prompt, lognormal
# lengths), each run as `rlsim bench --repeat 2` (best wall time) under /usr/bin/time (peak RSS):
#   gpus:         64 → 256 → 1,024 GPUs, 512 prompts per step
#   trajectories: 128 → 512 → 2,048 prompts per step, 64 GPUs
#   tokens:       median response 500 → 2,000 → 8,000 tokens (cap 8× the median), 64 GPUs, 256 prompts
# and prints each point and the exponent (log-log slope from the first to the last point) of wall time and memory.
# Usage: cargo build --release && bash scripts/scale-exponents.sh   (a few minutes on 2 cores; PIPELINES, STEPS)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${RLSIM:-./target/release/rlsim}
[ -x "$B" ] || { echo "error: $B missing: run cargo build --release first (or set RLSIM)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time is needed for peak memory (apt-get install time)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "error: python3 is needed to compute the exponents" >&2; exit 1; }
STEPS=${STEPS:-20}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

scenario() { # nodes prompts median cap
  cat <<EOF
name = "scale"
seed = 5
[model]
preset = "Qwen2.5-7B"
[cluster]
gpu = "H100-SXM"
nodes = $1
gpus_per_node = 8
[workload]
prompts_per_step = $2
samples_per_prompt = 16
steps = $STEPS
max_response_tokens = $4
response_tokens = { kind = "lognormal", median = $3, sigma = 0.9 }
prompt_tokens = { kind = "constant", tokens = 256 }
[rollout]
tp = 1
max_num_seqs = 256
[pipeline]
type = "colocated"
[pipeline.disaggregated]
rollout_gpus = $(($1 * 4))
EOF
}

point() { # series x pipeline nodes prompts median cap
  local f=$WORK/$1-$2-$3.toml
  scenario "$4" "$5" "$6" "$7" >"$f"
  local out
  out=$(/usr/bin/time -f "peak_kib %M" "$B" bench "$f" --pipeline "$3" --steps "$STEPS" --repeat 2 --json 2>"$WORK/err") ||
    { cat "$WORK/err" >&2; echo "error: bench failed on $f" >&2; exit 1; }
  local peak
  peak=$(awk '/peak_kib/ {print $2}' "$WORK/err")
  python3 -c 'import json,sys
d=json.loads(sys.argv[1]); r=d["rows"][0] if "rows" in d else d[0]
print(sys.argv[2], sys.argv[3], sys.argv[4], r["events"], r["best_wall_s"], int(sys.argv[5])/1024)' \
    "$out" "$1" "$2" "$3" "$peak"
}

printf '%-13s %8s %-10s %10s %10s %10s\n' series x pipeline events wall_s peak_MiB
{
  for p in ${PIPELINES:-colocated seamless}; do
    for n in 8 32 128; do point gpus $((n * 8)) "$p" "$n" 512 500 4000; done
    for q in 128 512 2048; do point trajectories $((q * 16)) "$p" 8 "$q" 500 4000; done
    for m in 500 2000 8000; do point tokens "$m" "$p" 8 256 "$m" $((m * 8)); done
  done
} | tee "$WORK/points" | awk '{printf "%-13s %8s %-10s %10s %10.3f %10.1f\n", $1, $2, $3, $4, $5, $6}'

echo
python3 - "$WORK/points" <<'PY'
import math, sys
from collections import defaultdict
pts = defaultdict(list)
for line in open(sys.argv[1]):
    s, x, p, ev, wall, mem = line.split()
    pts[(s, p)].append((float(x), float(wall), float(mem), int(ev)))
print(f"{'series':13} {'pipeline':10} {'x range':>14} {'wall exp':>9} {'memory exp':>11} {'events exp':>11}")
for (s, p), v in pts.items():
    (x0, w0, m0, e0), (x1, w1, m1, e1) = v[0], v[-1]
    slope = lambda a, b: math.log(b / a) / math.log(x1 / x0)
    print(f"{s:13} {p:10} {x0:>6.0f}→{x1:<7.0f} {slope(w0, w1):9.2f} {slope(m0, m1):11.2f} {slope(e0, e1):11.2f}")
PY
