#!/usr/bin/env bash
# The analytic model against the real backend: three model sizes x two batch regimes, every pipeline.
# Usage: cargo build --release && bash scripts/validate-sizes.sh   (about 12 minutes on 2 cores for the five
# pipelines; PIPELINES="colocated disaggregated" to run fewer, MODELS=analytic for one cost model, REPEAT=5 for
# the median of five repetitions (each re-measures the device figures or the profile), OUT=dir to move the output)
# Prints one line per (size, regime, cost model, pipeline, metric); docs/validation.md holds the table it gave.
cd "$(dirname "$0")/.."
B=./target/release/rlsim
mkdir -p "${OUT:-runs/validate-sizes}"
pipeline_args=""
for p in ${PIPELINES:-colocated disaggregated async partial seamless}; do pipeline_args="$pipeline_args --pipeline $p"; done
sizes=(
 "tiny|"
 "d128L4|--set model.hidden=128 --set model.layers=4 --set model.params_b=0.000806656"
 "d256L4|--set model.hidden=256 --set model.layers=4 --set model.params_b=0.003186176"
)
regimes=(
 "batch32|"
 "batch8|--set workload.prompts_per_step=2"
)
for sz in "${sizes[@]}"; do for rg in "${regimes[@]}"; do
  sn=${sz%%|*}; sa=${sz#*|}; rn=${rg%%|*}; ra=${rg#*|}
  for model in ${MODELS:-analytic profiled}; do
    extra=""; [ $model = profiled ] && extra="--reprofile"
    echo "=== $sn $rn $model"
    $B validate scenarios/exec-tiny.toml --model $model $extra $pipeline_args --steps 12 --repeat ${REPEAT:-1} $sa $ra --out ${OUT:-runs/validate-sizes}/$sn-$rn-$model -q --json > ${OUT:-runs/validate-sizes}/$sn-$rn-$model.json 2>${OUT:-runs/validate-sizes}/$sn-$rn-$model.err
    python3 - "$sn" "$rn" "$model" "${OUT:-runs/validate-sizes}" <<'PY'
import json,sys
d=json.load(open(f"{sys.argv[4]}/{sys.argv[1]}-{sys.argv[2]}-{sys.argv[3]}.json"))
for r in d["rows"]:
    if r["metric"] in ("median step time (s)","median rollout per step (s)","median train per step (s)"):
        print(f'{sys.argv[1]:7} {sys.argv[2]:7} {sys.argv[3]:9} {r["pipeline"]:13} {r["metric"]:28} sim {r["simulated"]:.4f} real {r["measured"]:.4f} err {100*r["error"]:+.1f}%')
PY
  done
done; done
