#!/usr/bin/env bash
# Builds the CUDA backend here (no GPU needed) — run it before every change that touches exec/ — and leaves what a
# GPU machine needs in .gpu/ (git-ignored): the stripped `rlsim` binary and the GPU test binary. See docs/cuda.md.
#   bash scripts/check-cuda.sh            # build and copy
# On the GPU machine: `.gpu/gpu-tests --ignored` and `.gpu/rlsim validate ... --device cuda:0`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fetch --locked >/dev/null
cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* | head -n1)
eval "$(../shared/tools/mk-cuda-home.sh "$PWD/.cuda-sdk" "$cudarc")"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"   # sm_90: H100/H200
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target-cuda}"
cargo build --release --locked --features cuda
tests=$(cargo test --release --locked --features cuda --test gpu --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="gpu" and m.get("executable"): print(m["executable"])' | tail -n1)
mkdir -p .gpu
cp "$CARGO_TARGET_DIR/release/rlsim" .gpu/rlsim && strip .gpu/rlsim
cp "$tests" .gpu/gpu-tests && strip .gpu/gpu-tests
# The device tool carries at most 64 MiB per call: each binary alone is close to it, so both travel gzipped
# (`gunzip -k .gpu/*.gz` there).
gzip -kf .gpu/rlsim .gpu/gpu-tests
ls -l .gpu/
echo "CUDA build OK ($(date -u +%F)); carry .gpu/*.gz (together $(du -ch .gpu/*.gz | tail -n1 | cut -f1)) to the GPU machine"
