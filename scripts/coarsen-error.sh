#!/usr/bin/env bash
# How far a coarse-grained run (`workload.coarsen = K`, docs/performance.md) lands from the exact one: for each
# bundled scenario and pipeline, runs both and prints mean step time, trained tokens/s, the errors and the wall
# times. A scenario whose counts K does not divide (or whose KV cache cannot hold K copies) is skipped with the
# reason rlsim gives.
#   bash scripts/coarsen-error.sh                          # K = 4 and 16, the bundled scenarios, their own steps
#   STEPS=20 SCENARIOS=scenarios/bench/seamless-1024.toml bash scripts/coarsen-error.sh   # the 1,024-GPU one (exact
#                                                          # runs take ~0.15 s a step there)
#   K="8" STEPS=10 SCENARIOS="scenarios/quickstart.toml" bash scripts/coarsen-error.sh
#   RLSIM=path/to/rlsim                                    # another binary (default: target/release/rlsim, built)
set -euo pipefail
cd "$(dirname "$0")/.."
RLSIM=${RLSIM:-target/release/rlsim}
if [[ ! -x $RLSIM || ${RLSIM} == target/release/rlsim ]]; then
  cargo build --release --quiet
fi
KS=${K:-"4 16"}
SCENARIOS=${SCENARIOS:-"scenarios/quickstart.toml scenarios/dapo-32b-h800x64.toml scenarios/longtail-7b-h100x16.toml scenarios/hetero-7b-h800-h20.toml scenarios/moe-30b-h20-explicit.toml scenarios/search-r1-7b-h100x8.toml scenarios/rllm-code-14b-h200x8.toml scenarios/nemo-rl-qwen3-235b-h100x128.toml"}
PIPELINES=${PIPELINES:-"colocated disaggregated async partial seamless"}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# One run's "mean_step_s tokens_per_s wall_s", or "error: …".
summary() {
  local scenario=$1 pipeline=$2 k=$3
  local args=(run "$scenario" --timeline none --no-plots --json --quiet --out "$out/run" --set "pipeline.type=$pipeline" --set "workload.coarsen=$k")
  [[ -n ${STEPS:-} ]] && args+=(--steps "$STEPS")
  if ! "$RLSIM" "${args[@]}" >"$out/json" 2>"$out/err"; then
    echo "error: $(head -c 300 "$out/err" | tr '\n' ' ' | sed 's/^error: //')"
    return
  fi
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["mean_step_s"], d["tokens_per_s"], d["wall_s"])' "$out/json"
}

printf '%-28s %-13s %4s %12s %12s %8s %8s %8s %8s\n' scenario pipeline K "step s" "exact s" "step err" "tok/s err" "wall s" "exact s"
for scenario in $SCENARIOS; do
  for pipeline in $PIPELINES; do
    exact=$(summary "$scenario" "$pipeline" 1)
    if [[ $exact == error:* ]]; then
      printf '%-28s %-13s %4s %s\n' "$(basename "$scenario" .toml)" "$pipeline" 1 "$exact"
      continue
    fi
    for k in $KS; do
      coarse=$(summary "$scenario" "$pipeline" "$k")
      if [[ $coarse == error:* ]]; then
        printf '%-28s %-13s %4s %s\n' "$(basename "$scenario" .toml)" "$pipeline" "$k" "${coarse:0:160}"
        continue
      fi
      python3 - "$scenario" "$pipeline" "$k" $exact $coarse <<'EOF'
import os, sys
scenario, pipeline, k = sys.argv[1:4]
e_step, e_tok, e_wall, c_step, c_tok, c_wall = map(float, sys.argv[4:10])
err = lambda c, e: 100.0 * (c - e) / e if e else 0.0
print(f"{os.path.basename(scenario)[:-5]:28s} {pipeline:13s} {k:>4s} {c_step:12.2f} {e_step:12.2f} "
      f"{err(c_step, e_step):+7.2f}% {err(c_tok, e_tok):+7.2f}% {c_wall:8.3f} {e_wall:8.3f}")
EOF
    done
  done
done
