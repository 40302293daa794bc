#!/usr/bin/env bash
# rlsim's rollout engine side by side with a peer simulator, inference-lab (crates.io, Doubleword's vLLM-like
# serving simulator), on the same requests: issue #11, "A peer, side by side". docs/performance.md has the table.
#
# Usage:  bash scripts/peer-inference-lab.sh
#   SIZES="256 1024 4096"   request counts (default)
#   CASES="fixed mixed"     which request lists (default both):
#     fixed: every request has PROMPT_TOKENS=512 prompt and RESPONSE_TOKENS=1024 response tokens (defaults)
#     mixed: seeded lengths (SEED=1): prompts uniform in 128..1024, responses lognormal (median 600, sigma 0.8,
#            cut at 4096), written once as a list that both tools read (a trace for rlsim, a batch file for the peer)
#   MAX_NUM_SEQS=256        both engines' batch limit (default)
#   REPEAT=3                wall times are the best of REPEAT runs of each tool (default 3)
#   RLSIM=path              rlsim binary (default target/release/rlsim, built with `cargo build --release` if absent)
#   KEEP=dir                keep the generated inputs and outputs there (default: a temporary folder, removed)
#
# What it does: installs inference-lab 0.6.2 with `cargo install --locked` into .peer/inference-lab (git-ignored;
# once, a few minutes), writes for each case and size one peer config and one rlsim scenario of the same requests,
# runs each tool REPEAT times and prints: requests, both makespans (simulated s), their ratio (rlsim / peer), both
# wall times per request (µs) and the speed ratio (peer µs / rlsim µs). Exits non-zero, with a message, when the
# install or a run fails or when a tool does not finish every request.
#
# The setup: Llama-3-8B (8.03 B parameters, 32 layers, hidden 4096, 32 heads, 8 KV heads, bf16) on one H100 SXM
# (989 TFLOP/s dense bf16, 3.35 TB/s HBM, 80 GB), N requests all arriving at t = 0 (an RL rollout batch), one
# engine, max_num_seqs 256, no prefix sharing.
#
# Why 0.6.2: it is the newest version whose config is one file of explicit constants (GPU FLOP/s, HBM bandwidth,
# memory, bytes per parameter; model dimensions; scheduler limits) driving a pure roofline step cost, and it has the
# `batched` arrival pattern (every request at t = 0) with `fixed` prompt/response lengths. 1.0.0 (2026-10) takes
# hardware and models from a catalog with collective fabrics, time corrections and layer classes, which makes
# "equal constants" much harder to state. 0.6.2 takes a list of requests with individual lengths only in its
# dataset mode (OpenAI batch JSONL, prompts as text, max_tokens as the response length), which tokenizes the text
# with a Hugging Face tokenizer file: the mixed case writes a word-level tokenizer (one token per word) and prompts
# of that many words, the first word unique to the request so that no two prompts share a cached block (1.0.0's
# session files would take the lengths directly). The peer tokenizes in background threads, inside both its wall
# and its own simulation time: in the mixed case that is most of its time (docs/performance.md), so compare speed
# on the fixed case, and makespans on both.
# The crate's binary needs its `cli` feature (clap, tokenizers, minijinja), its only default feature, so
# --no-default-features would cut nothing. It builds with the crate's own release profile (opt-level "s", debug
# info): that is how `cargo install` ships it.
#
# Constants matched (peer field = rlsim field):
#   compute_flops 989e12            = cluster.gpu H100-SXM (989 TFLOP/s), decode_compute_efficiency = prefill_mfu = 1
#   memory_bandwidth 3.35e12        = H100-SXM 3,350 GB/s, rollout.hbm_efficiency = 1
#   memory_capacity 80e9, gpu_memory_utilization 0.9 = H100-SXM 80 GB, rollout.gpu_memory_utilization 0.9
#     (KV capacity: peer 26,672 blocks of 16 = 426,752 tokens; rlsim 426,788 tokens)
#   bytes_per_param 2, num_parameters 8.03e9, 32 layers, 4096 hidden, 32/8 heads = model preset Llama-3-8B
#   max_num_seqs                    = rollout.max_num_seqs
#   no per-iteration overhead       = rollout.iteration_overhead_ms 0, framework.seq_overhead_us 0,
#                                     framework.graph_layer_us 0 (0.6.2 has no host overhead term)
#   no prefix sharing               = samples_per_prompt 1 and rollout.prefix_caching false
# What differs, and why it is left so:
#   - Prefill budget. rlsim has no max_num_batched_tokens: it prefills every admitted sequence in one pass. The
#     peer's budget is set to max_num_seqs × the longest prompt so that a full batch is prefilled in one iteration
#     too (with vLLM's 8,192 the peer would stagger the first prefills over many iterations). Chunked prefill is on
#     in the peer but never cuts a prompt at that budget.
#   - Prefill beside decode (the mixed case's gap). When a sequence finishes mid-batch, both admit the next one at
#     once, but the peer prefills it inside the next decode iteration (vLLM's mixed batch: one weight read, the
#     step is max(compute of all its tokens, weights + KV read)), while rlsim runs a separate prefill pass before
#     the next decode iteration, max(weights read, prefill FLOPs / peak). So rlsim charges each mid-batch admission
#     up to that pass more. With equal lengths every admission happens at a wave boundary, where both prefill alone.
#   - Prefill cost. The peer adds causal attention FLOPs to a prefill (4·layers·hidden·prompt² per sequence) and
#     reads the prompt's KV; rlsim's prefill is max(weights read, 2·N·tokens / peak). At 512-token prompts the
#     attention is +1.7 % of a prefill, +0.2 % of the fixed case's makespan.
#   - Decode attention. The peer counts attention over context + 1 tokens, rlsim over the context; both engines
#     are memory-bound here, where the two agree exactly (weights + every context token's KV read once).
#   - KV cache granularity: the peer allocates 16-token blocks, rlsim counts tokens; and the peer admits a request
#     when its prompt's blocks are free, rlsim when its context plus one token per running sequence fits. Only
#     matters when the cache binds, which it does not at these lengths (no preemptions in either).
#   - Wall time: both are the whole process (start, reading the input, simulation, writing the summary), best of
#     REPEAT. rlsim also simulates the rest of its RL step (a 7-GPU trainer on the same node, a weight sync): a
#     handful of events; its rollout makespan is read from steps.csv (`rollout_s` of the one step).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PEER_VERSION=0.6.2
PEER_ROOT=$ROOT/.peer/inference-lab
PEER=$PEER_ROOT/bin/inference-lab
RLSIM=${RLSIM:-$ROOT/target/release/rlsim}
SIZES=${SIZES:-"256 1024 4096"}
CASES=${CASES:-"fixed mixed"}
SEED=${SEED:-1}
PROMPT_TOKENS=${PROMPT_TOKENS:-512}
RESPONSE_TOKENS=${RESPONSE_TOKENS:-1024}
MAX_NUM_SEQS=${MAX_NUM_SEQS:-256}
REPEAT=${REPEAT:-3}

die() { echo "peer-inference-lab: $*" >&2; exit 1; }
for n in $SIZES $PROMPT_TOKENS $RESPONSE_TOKENS $MAX_NUM_SEQS $REPEAT $SEED; do
  [[ $n =~ ^[0-9]+$ && $((10#$n)) -gt 0 ]] \
    || die "not a positive integer: '$n' (SIZES, PROMPT_TOKENS, RESPONSE_TOKENS, MAX_NUM_SEQS, REPEAT, SEED)"
done
for c in $CASES; do [[ $c == fixed || $c == mixed ]] || die "unknown case '$c' in CASES (fixed, mixed)"; done
command -v jq >/dev/null || die "jq is needed to read the tools' JSON output"

# ---- the peer: installed once, pinned, into .peer/ (git-ignored) ----
if ! [ -x "$PEER" ] || ! grep -q "inference-lab $PEER_VERSION " "$PEER_ROOT/.crates.toml" 2>/dev/null; then
  echo "installing inference-lab $PEER_VERSION into $PEER_ROOT (cargo install --locked; a few minutes) ..." >&2
  cargo install inference-lab --version "$PEER_VERSION" --locked --root "$PEER_ROOT" >&2 \
    || die "cargo install inference-lab $PEER_VERSION failed (network? see cargo's message above)"
  [ -x "$PEER" ] || die "cargo install finished but $PEER is missing"
fi
# ---- rlsim ----
if ! [ -x "$RLSIM" ]; then
  echo "building rlsim (cargo build --release --bin rlsim) ..." >&2
  cargo build --release --bin rlsim >&2 || die "cargo build --release --bin rlsim failed"
  [ -x "$RLSIM" ] || die "rlsim binary $RLSIM is missing after the build (set RLSIM=path)"
fi

if [ -n "${KEEP:-}" ]; then WORK=$KEEP; mkdir -p "$WORK"; else WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT; fi

# The mixed case's request list: $1 seeded (prompt, response) pairs written into folder $2 as trace.csv (rlsim),
# batch.jsonl + tokenizer.json (the peer) and caps.txt (longest prompt and response).
mixed_lists() {
  command -v python3 >/dev/null || die "python3 is needed to write the mixed case's request list"
  python3 - "$1" "$2" "$SEED" <<'PY' || die "writing the mixed request list failed"
import json, math, random, sys
n, out, seed = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
rng = random.Random(seed)
reqs = [(rng.randint(128, 1024), min(4096, max(1, round(math.exp(rng.gauss(math.log(600), 0.8))))))
        for _ in range(n)]
with open(f"{out}/trace.csv", "w") as f:
    f.write("step,group,prompt_tokens,response_tokens\n")
    for i, (p, r) in enumerate(reqs):
        f.write(f"0,{i},{p},{r}\n")
vocab = {"x": 0}
vocab.update({f"w{i}": i + 1 for i in range(n)})
tokenizer = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
             "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": None, "decoder": None,
             "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "x"}}
with open(f"{out}/tokenizer.json", "w") as f:
    json.dump(tokenizer, f)
with open(f"{out}/batch.jsonl", "w") as f:
    for i, (p, r) in enumerate(reqs):
        body = {"model": "Llama-3-8B", "max_tokens": r, "prompt": " ".join([f"w{i}"] + ["x"] * (p - 1))}
        f.write(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions", "body": body}) + "\n")
with open(f"{out}/caps.txt", "w") as f:
    f.write(f"{max(p for p, _ in reqs)} {max(r for _, r in reqs)}\n")
PY
}

peer_config() { # $1 = requests, $2 = case, $3 = longest prompt, $4 = longest response
  local workload
  if [ "$2" = fixed ]; then
    workload="input_len_dist = { type = \"fixed\", value = $PROMPT_TOKENS }
output_len_dist = { type = \"fixed\", value = $RESPONSE_TOKENS }"
  else # dataset mode: the prompt's tokens and max_tokens give the lengths (the output length here is only a cap)
    workload="dataset_path = \"batch.jsonl\"
input_len_dist = { type = \"fixed\", value = 1 }
output_len_dist = { type = \"fixed\", value = 100000000 }"
  fi
  cat <<EOF
# generated by scripts/peer-inference-lab.sh
[hardware]
name = "H100-SXM"
compute_flops = 989.0e12
memory_bandwidth = 3.35e12
memory_capacity = 80000000000
gpu_memory_utilization = 0.9
bytes_per_param = 2

[model]
name = "Llama-3-8B"
num_parameters = 8030000000
num_layers = 32
hidden_dim = 4096
num_heads = 32
num_kv_heads = 8
max_seq_len = $(($3 + $4))

[scheduler]
max_num_batched_tokens = $((MAX_NUM_SEQS * $3))
max_num_seqs = $MAX_NUM_SEQS
policy = "fcfs"
enable_chunked_prefill = true
block_size = 16

[workload]
arrival_pattern = "batched"
num_requests = $1
seed = $SEED
$workload
EOF
}

rlsim_scenario() { # $1 = requests, $2 = case, $3 = longest prompt, $4 = longest response
  local lengths
  if [ "$2" = fixed ]; then
    lengths="prompt_tokens = { kind = \"constant\", tokens = $PROMPT_TOKENS }
response_tokens = { kind = \"constant\", tokens = $RESPONSE_TOKENS }"
  else
    lengths="trace = { path = \"trace.csv\", mode = \"replay\" }"
  fi
  cat <<EOF
# generated by scripts/peer-inference-lab.sh: one rollout engine (one H100) generating $1 requests in one RL step
name = "peer-engine-$2-$1"
seed = $SEED
[model]
preset = "Llama-3-8B"
[cluster]
gpu = "H100-SXM"
nodes = 1
gpus_per_node = 8
[[cluster.workers]]
name = "engine"
tp = 1
tags = ["rollout"]
[[cluster.workers]]
name = "trainer"
tp = 7
tags = ["train"]
[framework]
preset = "ideal"
seq_overhead_us = 0
graph_layer_us = 0
[workload]
prompts_per_step = $1
samples_per_prompt = 1
steps = 1
max_prompt_tokens = $3
max_response_tokens = $4
$lengths
[rollout]
tp = 1
max_num_seqs = $MAX_NUM_SEQS
gpu_memory_utilization = 0.9
hbm_efficiency = 1.0
decode_compute_efficiency = 1.0
prefill_mfu = 1.0
iteration_overhead_ms = 0
prefix_caching = false
[pipeline]
type = "disaggregated"
EOF
}

now_us() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }

# Runs "$@" REPEAT times (output to $LOG; on a failure prints it and stops) and sets WALL_US, the best wall time of
# the whole process, and SIM_US, the best simulation-only time the tool reports itself (`inner_us` reads it).
timed_runs() {
  local t0 t1 dt s i
  WALL_US=0 SIM_US=0
  for ((i = 0; i < REPEAT; i++)); do
    t0=$(now_us)
    "$@" >"$LOG" 2>&1 || { cat "$LOG" >&2; die "run failed: $*"; }
    t1=$(now_us); dt=$((t1 - t0))
    s=$(inner_us) || die "no simulation time in the output of: $*"
    if ((WALL_US == 0 || dt < WALL_US)); then WALL_US=$dt; fi
    if ((SIM_US == 0 || s < SIM_US)); then SIM_US=$s; fi
  done
}
# the peer prints "Simulation Complete (77.8s simulated, 0.61s real)": the run loop's time, to 10 ms
peer_inner_us() { awk '/Simulation Complete/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "real)") {
                    sub(/s$/, "", $i); printf "%d\n", $i * 1e6; found = 1 } } END { exit !found }' "$LOG"; }
# rlsim's summary.json wall_s: the simulation alone (not loading the scenario, the report or writing files)
rlsim_inner_us() { jq -er '.wall_s * 1e6 | floor' "$RLSIM_OUT/summary.json"; }

echo "inference-lab $PEER_VERSION vs $("$RLSIM" --version): Llama-3-8B, one H100, max_num_seqs $MAX_NUM_SEQS, all requests at t = 0"
echo "fixed: prompt $PROMPT_TOKENS + response $RESPONSE_TOKENS tokens; mixed: seeded lengths (seed $SEED); best of $REPEAT runs"
echo "wall µs per request: the whole process; sim-only: the simulation loop as each tool times it (the peer to 10 ms)"
printf '%-6s %8s  %11s  %12s  %10s  %11s  %12s  %10s  %10s  %11s  %10s\n' "" "" "makespan s" "" "" \
  "wall µs/req" "" "" "sim-only" "µs/req" ""
printf '%-6s %8s  %11s  %12s  %10s  %11s  %12s  %10s  %10s  %11s  %10s\n' case requests peer rlsim rlsim/peer \
  peer rlsim peer/rlsim peer rlsim peer/rlsim
for c in $CASES; do
  for n in $SIZES; do
    d=$WORK/$c-$n; mkdir -p "$d"; RLSIM_OUT=$d/rlsim
    peer_args=()
    if [ "$c" = fixed ]; then
      maxp=$PROMPT_TOKENS; maxr=$RESPONSE_TOKENS
    else
      mixed_lists "$n" "$d"; read -r maxp maxr <"$d/caps.txt"
      peer_args=(--tokenizer tokenizer.json --chat-template None)
    fi
    peer_config "$n" "$c" "$maxp" "$maxr" >"$d/peer.toml"
    rlsim_scenario "$n" "$c" "$maxp" "$maxr" >"$d/rlsim.toml"

    # the peer reads dataset_path relative to its working directory
    LOG=$d/peer.log
    (cd "$d" && inner_us() { peer_inner_us; } &&
      timed_runs "$PEER" --config peer.toml "${peer_args[@]}" --quiet --no-color --output peer.json &&
      echo "$WALL_US $SIM_US" >"$d/peer.times")
    read -r peer_us peer_sim_us <"$d/peer.times"
    done_peer=$(jq -r '.requests.completed' "$d/peer.json")
    [ "$done_peer" = "$n" ] || die "the peer completed $done_peer of $n requests ($d/peer.json)"
    peer_s=$(jq -r '.requests.completed / .throughput_metrics.requests_per_sec' "$d/peer.json")

    LOG=$d/rlsim.log
    inner_us() { rlsim_inner_us; }
    timed_runs "$RLSIM" run "$d/rlsim.toml" --out "$RLSIM_OUT" --no-plots --timeline none --quiet
    rlsim_us=$WALL_US rlsim_sim_us=$SIM_US
    done_rlsim=$(jq -r '.trained_samples' "$d/rlsim/summary.json")
    [ "$done_rlsim" = "$n" ] || die "rlsim trained $done_rlsim of $n samples ($d/rlsim/summary.json)"
    rlsim_s=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "rollout_s") c = i }
                       NR == 2 { print $c }' "$d/rlsim/steps.csv")
    [ -n "$rlsim_s" ] || die "no rollout_s in $d/rlsim/steps.csv"

    awk -v c="$c" -v n="$n" -v ps="$peer_s" -v rs="$rlsim_s" -v pu="$peer_us" -v ru="$rlsim_us" \
        -v pi="$peer_sim_us" -v ri="$rlsim_sim_us" 'BEGIN {
      printf "%-6s %8d  %11.3f  %12.3f  %10.4f  %11.1f  %12.1f  %10.1f  %10.1f  %11.2f  %10.0f\n",
        c, n, ps, rs, rs / ps, pu / n, ru / n, pu / ru, pi / n, ri / n, pi / (ri > 0 ? ri : 1) }'
  done
done
