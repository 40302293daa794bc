#!/usr/bin/env bash
# Every GPU check of the project in one bounded run, for a lent GPU machine (docs/cuda.md, docs/gpu-measurements.md).
# Build first, here: `bash scripts/check-cuda.sh` (leaves .gpu/rlsim.gz and .gpu/gpu-tests.gz). Then, through the
# device tool, from the checkout's root with `.gpu/rlsim.gz` and `.gpu/gpu-tests.gz` carried:
#   bash scripts/gpu/device-checks.sh            # writes its logs and results to $OUT (or runs/device-checks/)
# Each step has its own time limit (then 10 s more before a kill), so one that hangs costs only its share. Needs
# bash >= 4.4 (the log's tee is waited for by its pid). Variables (all optional):
#   STEPS         steps to run, in this order whatever the order given: smoke tests torch tiny d768 single qwen
#                 (default "smoke tests torch tiny d768": at most ~515 s of limits; with "single" ~635 s, over the
#                 device tool's 600 s per call, so split such a run over two calls; qwen, exec-qwen0.5b's profile
#                 and runs, did not finish in 100 s on an H200 and needs a longer lease)
#   TESTS_FILTER  a test-name filter for tests/gpu.rs (e.g. "decode")
#   TORCH_PARTS   comma-separated parts of scripts/gpu/torch_phases.py (default: ceilings,train,head,decode; also
#                 copies, attention_curve, attention_packed); TORCH_S its limit (110 s)
#   PIPELINES     pipelines of the "tiny" step (default all five), TINY_S each one's limit (30 s)
#   D768_PIPELINES pipelines of the "d768" step (colocated disaggregated async), D768_S each one's limit (45 s)
#   SINGLE_S      each "single" run's limit (40 s)
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-runs/device-checks}
mkdir -p "$OUT/runs"
LOG="$OUT/device.log"
exec > >(tee -a "$LOG") 2>&1
tee_pid=$!
# tee writes the log's last lines after the script's output ends: wait for it, or they can be lost.
trap 'exec >&- 2>&-; wait "$tee_pid" 2>/dev/null' EXIT
STEPS=${STEPS:-smoke tests torch tiny d768}
step() { echo; echo "=== $1 ($(date -u +%T))"; }
want() { [[ " $STEPS " == *" $1 "* ]]; }

step setup
# Always from the carried archives: a warm machine keeps the binaries an earlier call unpacked.
for f in .gpu/rlsim .gpu/gpu-tests; do
  [ -f "$f.gz" ] || { echo "$f.gz was not carried: build with scripts/check-cuda.sh and name it in carry"; exit 1; }
  gunzip -kf "$f.gz" && chmod +x "$f"
done
sha256sum .gpu/rlsim .gpu/gpu-tests
SP=$(python3 -c 'import site;print(site.getsitepackages()[0])')
export LD_LIBRARY_PATH=$SP/nvidia/cu13/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv
missing=$(ldd .gpu/rlsim | grep 'not found')
if [ -n "$missing" ]; then
  echo "missing libraries: $missing"
  # Look for them anywhere on the machine before giving up on the Rust steps.
  for lib in $(echo "$missing" | awk '{print $1}'); do find / -name "$lib*" -not -path '/proc/*' 2>/dev/null | head -3; done
fi

if want smoke; then
  step "smoke: exec exec-tiny on cuda:0"
  timeout -k 10 40 .gpu/rlsim exec scenarios/exec-tiny.toml --device cuda:0 --steps 2 --out "$OUT/runs/smoke" -q
  echo "rc=$?"
fi

if want tests; then
  step "tests/gpu.rs (ignored tests)"
  timeout -k 10 80 .gpu/gpu-tests --ignored --nocapture --test-threads=1 ${TESTS_FILTER:-} 2>&1 | tee "$OUT/gpu-tests.log"
  echo "rc=${PIPESTATUS[0]}"
fi

if want torch; then
  step "PyTorch: Qwen2.5-7B-shaped passes against the cost model's terms"
  PYTHONUNBUFFERED=1 timeout -k 10 "${TORCH_S:-110}" python3 scripts/gpu/torch_phases.py "$OUT" ${TORCH_PARTS:-}
  echo "rc=$?"
fi

# One validate per pipeline, each with its own limit, so a slow one leaves the others' tables (validate prints its
# table only at the end).
PIPELINES=${PIPELINES:-colocated disaggregated async partial seamless}
if want tiny; then
  for p in $PIPELINES; do
    step "validate exec-tiny, $p, cuda:0"
    timeout -k 10 "${TINY_S:-30}" .gpu/rlsim validate scenarios/exec-tiny.toml --device cuda:0 --pipeline "$p" --reprofile \
      --out "$OUT/runs/tiny-$p" -q
    echo "rc=$?"
  done
fi

if want d768; then
  # A model that gives the GPU some work: 12 layers of width 768 (97.6 M parameters), 128 sequences a step.
  for p in ${D768_PIPELINES:-colocated disaggregated async}; do
    step "validate d768 x 12 layers, $p, cuda:0"
    timeout -k 10 "${D768_S:-45}" .gpu/rlsim validate scenarios/exec-tiny.toml --device cuda:0 --pipeline "$p" --reprofile \
      --out "$OUT/runs/d768-$p" -q \
      --set model.hidden=768 --set model.layers=12 --set model.heads=12 --set model.kv_heads=12 \
      --set model.vocab=8192 --set model.params_b=0.097645056 --set workload.prompts_per_step=32 \
      --set rollout.max_num_seqs=64 --set rollout.kv_capacity_tokens=8192 --set training.micro_batch_tokens=4096
    echo "rc=$?"
  done
fi

if want single; then
  # One worker on the one GPU (colocated): no two workers' kernels queue on one device, which the simulator, which
  # gives each worker a GPU of its own, cannot model. Three sizes: exec-tiny, d 256 x 4 layers, d 768 x 12 layers.
  sizes=(
    "tiny|"
    "d256|--set model.hidden=256 --set model.layers=4 --set model.params_b=0.003186176"
    "d768|--set model.hidden=768 --set model.layers=12 --set model.heads=12 --set model.kv_heads=12 --set model.vocab=8192 --set model.params_b=0.097645056"
  )
  for sz in "${sizes[@]}"; do
    name=${sz%%|*}; args=${sz#*|}
    step "validate $name, colocated, one worker on cuda:0"
    # shellcheck disable=SC2086
    timeout -k 10 "${SINGLE_S:-40}" .gpu/rlsim validate scenarios/exec-tiny.toml --device cuda:0 --pipeline colocated \
      --reprofile --set cluster.gpus_per_node=1 $args --out "$OUT/runs/single-$name" -q
    echo "rc=$?"
  done
fi

if want qwen; then
  step "validate exec-qwen0.5b (Qwen2.5-0.5B dimensions), colocated and disaggregated, cuda:0"
  timeout -k 10 100 .gpu/rlsim validate scenarios/exec-qwen0.5b.toml --device cuda:0 --pipeline colocated \
    --pipeline disaggregated --reprofile --out "$OUT/runs/qwen" -q
  echo "rc=$?"
fi

step "pack"
# The device tool brings back at most 8 files, two folders deep: pack the run folders' small files into one archive.
(cd "$OUT" && find runs -name '*.csv' -o -name '*.json' -o -name '*.toml' | grep -v timeline | tar czf runs.tgz -T - && rm -rf runs)
ls -l "$OUT"
