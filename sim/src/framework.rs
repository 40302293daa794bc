//! RL framework presets: the constants of a training stack (rollout engine loop, trainer, switch, controller)
//! shared by every scenario that names it, each with its source (docs/cost-model.md, docs/fidelity.md).

use serde::{Deserialize, Serialize};

/// The constants one RL framework contributes to the cost model. A scenario picks a preset with
/// `[framework] preset = "..."`; fields of `[rollout]`, `[training]` and `[pipeline]` that it also sets override
/// the preset's values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameworkSpec {
    pub name: String,
    // ----- rollout engine (vLLM / SGLang) -----
    /// Decode iterations replay captured CUDA graphs (vLLM `enforce_eager = false`); otherwise every layer's
    /// kernels are launched from Python each iteration.
    pub cuda_graphs: bool,
    /// Host time of one engine iteration that does not depend on the batch: scheduler, input preparation,
    /// sampler, output processing, and the broadcast to tensor-parallel workers, milliseconds.
    pub iteration_overhead_ms: f64,
    /// Host time per running sequence per iteration (scheduling, sampling metadata, detokenisation), µs.
    pub seq_overhead_us: f64,
    /// Fixed GPU time per transformer layer per decode iteration with CUDA graphs (the floor of the layer's
    /// kernels, beyond its bytes and FLOPs), µs; fitted on standalone vLLM's batch-1 decode (see `framework_preset`).
    pub graph_layer_us: f64,
    /// The same in eager mode, µs: the graph floor plus Python's dispatch of each kernel (set both when
    /// overriding). An MoE layer counts twice in either mode (about twice the kernels: router, top-k, permute,
    /// grouped GEMMs; measured for launches, not for the graph floor).
    pub eager_layer_us: f64,
    /// Latency of one tensor-parallel all-reduce (two per layer per decode iteration when tp > 1), µs.
    pub tp_allreduce_us: f64,
    /// The same for an engine spanning nodes (NCCL over the NICs; vLLM's custom all-reduce stays inside a node), µs.
    pub tp_allreduce_internode_us: f64,
    /// Achieved share of HBM bandwidth in decode, and for the trainer's activation traffic.
    pub hbm_efficiency: f64,
    /// Achieved share of the GPU's peak HBM bandwidth when a decode iteration's attention reads the paged KV cache
    /// (the weights stream at `hbm_efficiency`): decode attention kernels at grouped-query shapes fall further below
    /// peak than the weight GEMMs.
    pub kv_read_efficiency: f64,
    /// Achieved share of the GPU's achievable matmul rate in decode (the compute-bound line).
    pub decode_compute_efficiency: f64,
    /// A decode iteration overlaps reading the weights and KV with its FLOPs (a GPU's kernels: the time is the larger
    /// of the two); false where they run one after the other (a CPU's GEMM packs each weight matrix, then
    /// multiplies: their sum).
    pub decode_overlap: bool,
    /// Achieved share of the GPU's achievable matmul rate in prefill.
    pub prefill_mfu: f64,
    // ----- trainer -----
    /// Utilisation of the FLOPs the trainer executes (6·N·T per update, 8·N·T with recomputation, plus attention;
    /// N without an untied input embedding, which is looked up), as a share of the GPU's achievable matmul rate
    /// (`GpuSpec::matmul_efficiency` × its peak, × `GpuSpec::train_efficiency_vs_h100` on Blackwell); 0.590 on an
    /// H20 is 0.567 of its peak, and with recomputation 0.43 model-FLOPs utilisation.
    pub mfu: f64,
    /// An MoE trainer's utilisation relative to a dense one's (`mfu` × this): token-dropless routing leaves experts
    /// unevenly loaded and small experts make small grouped GEMMs (expert parallelism's all-to-alls are priced on
    /// their own, `training.expert_parallel`).
    pub moe_mfu_scale: f64,
    /// Rate of causal attention's FLOPs (the L² term of a training pass, FlashAttention's kernels) as a share of
    /// the rate the rest of the pass runs at (`mfu`; for an MoE model `mfu` × `moe_mfu_scale`, which was fitted on
    /// whole passes): on an H200 FlashAttention 2 runs at 0.42–0.54 of a layer's matmul rate from 16k tokens up
    /// (docs/gpu-measurements.md §3). 1 in every preset: `mfu` and `moe_mfu_scale` were fitted with attention at
    /// that rate, and 0.45 with both refitted left the suite's mean where it was while moving three verl 7B
    /// colocated rows past their tolerances (docs/fidelity.md, "Unexplained").
    pub attention_efficiency: f64,
    /// Share of the model's activation traffic (`ModelSpec::activation_bytes_per_token`: the bytes the ops between
    /// the matmuls stream through HBM, counted once per op) a training pass moves, at `hbm_efficiency` of the slowest
    /// GPU's bandwidth, on top of the matmuls at `mfu`: 1 where each such op reads its inputs and writes its output
    /// once (FlashAttention keeping the scores on chip, as verl, slime and AReaL run), below 1 as more ops fuse, 0
    /// where the work is priced otherwise (rlsim-exec's measured `*_elementwise`, the `ideal` roofline). It is why a
    /// trainer fitted on a compute-poor GPU (H20: 148 TFLOP/s for 4 TB/s) runs below the same `mfu` on a GPU with
    /// 6–8× its FLOP/s per byte (H100, B200).
    pub activation_traffic: f64,
    /// Activation recomputation: the backward pass reruns the forward (8·N·T instead of 6·N·T).
    pub gradient_checkpointing: bool,
    /// Fixed cost per micro-batch per pass, milliseconds.
    pub micro_batch_overhead_ms: f64,
    /// The trainer packs samples without padding (verl `use_remove_padding`); false: each micro-batch is padded to
    /// its longest sample and computed at that length (micro-batches formed from the samples sorted by length).
    pub remove_padding: bool,
    /// A time-sliced (colocated) trainer offloads parameters and optimizer state to host memory between phases
    /// and loads them back for each pass.
    pub offload: bool,
    /// Achieved host↔device bandwidth of those offload copies per GPU (pageable memory), GB/s.
    pub offload_gbytes_per_s: f64,
    /// Without `offload`, a rollout↔train switch of a time-sliced worker moves the training state (weights,
    /// gradients, optimizer) off the GPU and back, to make room for the engine's KV cache; false where the trainer
    /// keeps its state in place and only the engine's weights and KV cache come and go (rlsim's real backend).
    pub switch_moves_training_state: bool,
    // ----- switching, sync, controller -----
    /// Fixed cost of a rollout↔train switch besides bytes over PCIe (engine sleep/wake, KV-cache re-allocation,
    /// allocator), seconds.
    pub switch_fixed_s: f64,
    /// Fixed cost of a weight sync besides bytes over links (NCCL set-up, the engine's reload), seconds.
    pub weight_sync_fixed_s: f64,
    /// The trainer hands its weights over one tensor at a time, each gathered by collectives across its GPUs (an
    /// FSDP trainer's `full_tensor()` per parameter; a Megatron trainer's per-parameter broadcasts and all-gathers
    /// over its model-parallel groups), priced as one ring all-gather's latency over the whole trainer per weight
    /// tensor (`AnalyticCosts::sync_ns`; a proxy, docs/cost-model.md).
    pub weight_sync_per_tensor: bool,
    /// Controller work per RL step while the GPUs wait (reward manager, advantages, batch balancing, amortised
    /// validation), seconds.
    pub step_overhead_s: f64,
    /// A single controller moves each pass's batch, padded to the prompt + response caps, to the workers and back:
    /// nanoseconds per padded token slot per pass (serialisation and object-store copies of ~60 bytes of tensors
    /// per slot). 0: the framework moves only real tokens, off the critical path.
    pub controller_ns_per_padded_token: f64,
    /// A streaming trainer (async, seamless) assembles each step's batch from queued samples padded to the caps
    /// (prompt and response) before it computes, its GPUs waiting (verl fully_async: each group fetched from the
    /// message queue, unpickled, concatenated, the batch balanced): nanoseconds per padded token slot. 0: the
    /// framework hands the trainer real tokens only, or overlaps this with compute.
    pub assembly_ns_per_padded_token: f64,
    /// The `async` pipeline's rollouter keeps at most this many prompt groups per rollout engine in flight across
    /// its pool (this × the engines it starts with; admitted with a sample still unfinished, paused ones included),
    /// on top of the staleness bound: verl's fully_async rollouter caps its concurrent samples at
    /// `len(server_handles) * 16`, each sample one prompt with its n responses, spread over the servers by load.
    /// 0: no cap besides the engines' `max_num_seqs`.
    pub stream_groups_per_engine: u32,
    // ----- work outside the matmuls of an eager (unfused) implementation -----
    /// Per layer of a log-prob (forward-only) pass: see [`Elementwise`]. Zero for the GPU presets: their kernels
    /// are fused; the activations they still stream through HBM are `activation_traffic`, the rest is inside `mfu`.
    pub logprob_elementwise: Elementwise,
    /// The same for the update (forward, backward and the optimizer's share).
    pub update_elementwise: Elementwise,
    /// The same per running sequence (its one new token) of a decode iteration, whose context is its own.
    pub decode_elementwise: Elementwise,
}

/// What an eager implementation spends outside its matmuls per layer, nanoseconds: each op between the matmuls
/// (norms, residuals, the activation function, layout copies, the attention scores' scale, mask and softmax) is
/// its own kernel over the activations, so the time grows with the width, with the heads times the sequence (the
/// scores) and with the width times the sequence (the keys and values they read), and each small per-head
/// attention matmul is a call of its own. A token of a layer of width `hidden` with `heads` heads in a sequence of
/// `context` tokens costs `token + hidden·hidden_ns + (heads·head_context + hidden·hidden_context)·context`, and
/// each sequence `heads·sequence_head` more; besides the layers, each token costs `outside_token` once per pass.
/// Fields left out are 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Elementwise {
    /// Per token.
    #[serde(default)]
    pub token_ns: f64,
    /// Per token per hidden unit.
    #[serde(default)]
    pub hidden_ns: f64,
    /// Per token per head per context token.
    #[serde(default)]
    pub head_context_ns: f64,
    /// Per token per hidden unit per context token.
    #[serde(default)]
    pub hidden_context_ns: f64,
    /// Per sequence per head.
    #[serde(default)]
    pub sequence_head_ns: f64,
    /// Per token outside the layers, once per pass (embedding, final norm, the log-softmax over the vocabulary and
    /// the loss). Decode's is in `seq_overhead_us`.
    #[serde(default)]
    pub outside_token_ns: f64,
}

/// An [`Elementwise`] at one model's width and heads, per layer, seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ElementwiseRates {
    /// Per token.
    pub token_s: f64,
    /// Per token per token of its context.
    pub token_context_s: f64,
    /// Per sequence.
    pub sequence_s: f64,
    /// Per token outside the layers (once, not per layer).
    pub outside_token_s: f64,
}

impl Elementwise {
    pub const ZERO: Elementwise = Elementwise {
        token_ns: 0.0,
        hidden_ns: 0.0,
        head_context_ns: 0.0,
        hidden_context_ns: 0.0,
        sequence_head_ns: 0.0,
        outside_token_ns: 0.0,
    };

    /// The fields by name, in order (for validation and display).
    pub fn fields(&self) -> [(&'static str, f64); 6] {
        [
            ("token_ns", self.token_ns),
            ("hidden_ns", self.hidden_ns),
            ("head_context_ns", self.head_context_ns),
            ("hidden_context_ns", self.hidden_context_ns),
            ("sequence_head_ns", self.sequence_head_ns),
            ("outside_token_ns", self.outside_token_ns),
        ]
    }

    /// The rates per layer at width `hidden` with `heads` heads.
    pub fn at(&self, hidden: u32, heads: u32) -> ElementwiseRates {
        let (hidden, heads) = (hidden as f64, heads as f64);
        ElementwiseRates {
            token_s: (self.token_ns + self.hidden_ns * hidden) * 1e-9,
            token_context_s: (self.head_context_ns * heads + self.hidden_context_ns * hidden) * 1e-9,
            sequence_s: self.sequence_head_ns * heads * 1e-9,
            outside_token_s: self.outside_token_ns * 1e-9,
        }
    }
}

/// Names of the built-in framework presets.
pub const FRAMEWORK_PRESETS: &[&str] =
    &["verl-fsdp2", "verl-megatron", "nemo-rl", "nemo-rl-v0.3", "slime", "areal", "ideal", "rlsim-exec"];

/// The preset a scenario without `[framework]` gets.
pub const DEFAULT_FRAMEWORK: &str = "verl-fsdp2";

/// The rlsim-exec preset's costs outside the matmuls (see [`Elementwise`]): what `exec/src/figures.rs` measured
/// on the project's 2-vCPU development VM (AMD EPYC), two workers' threads at once, in the first repetition of the
/// final five-repetition validation of 2026-11-29 (docs/validation.md). Single measurements vary by tens of per
/// cent between runs on that VM; `validate --model analytic` measures its own.
pub const EXEC_LOGPROB_ELEMENTWISE: Elementwise =
    Elementwise { head_context_ns: 3.23, hidden_context_ns: 0.117, ..Elementwise::ZERO };
pub const EXEC_UPDATE_ELEMENTWISE: Elementwise = Elementwise {
    token_ns: 0.0,
    hidden_ns: 120.5,
    head_context_ns: 5.37,
    hidden_context_ns: 0.0,
    sequence_head_ns: 1654.0,
    outside_token_ns: 432.0,
};
pub const EXEC_DECODE_ELEMENTWISE: Elementwise = Elementwise {
    token_ns: 448.0,
    hidden_ns: 8.8,
    head_context_ns: 8.78,
    hidden_context_ns: 0.0,
    sequence_head_ns: 86.5,
    outside_token_ns: 0.0,
};

/// A built-in framework by name (case-insensitive).
///
/// Sources (details and the measurements each was checked against: docs/fidelity.md):
/// - Decode iteration with CUDA graphs, from standalone vLLM's published batch-1 decode on H100 SXM (Lambda's vLLM
///   benchmark, LambdaLabsML/vllm-benchmark results/prompt_10 at a4f9f437, vLLM ~0.6 with multi-step scheduling, so
///   little host time per token: Llama-3-8B at tp 1/2/4/8 7.05/4.9/3.5/2.9 ms a token, Llama-3-70B at tp 2/4/8
///   28.4/17.0/11.2 ms). Priced as rlsim reads them (every weight but the untied input embedding, which is looked
///   up), one set of figures gives all seven within 2 % (RMS 1.1 %), with ~0.3 ms a token of host time left: the
///   weights at `hbm_efficiency` 0.885 of the datasheet bandwidth (the copy rate measured on an H200, 4,249 of 4,800
///   GB/s, its read rate 0.90; docs/gpu-measurements.md §1), a floor of 50 µs per layer (`graph_layer_us`: a decode
///   layer's dozen kernels' fixed costs) and 6 µs per tensor-parallel all-reduce (`tp_allreduce_us`; vLLM's custom
///   all-reduce at 16 KB on H100 takes 8.5–9.3 µs timed from the host with its launch, sgl-project/sglang PR #2904).
///   The data fix the floor plus two all-reduces (62 µs a layer at tp > 1) better than the split (4.5 µs and 54 µs
///   fit as well). An MoE layer counts twice, as for launches; under graphs that factor is not measured
///   (Mixtral-8x7B at tp 2/4/8 in the same benchmark gives 1.3–2.0× a dense layer's 62 µs). The floor and the
///   weights' share are measured on H100 with vLLM V0's full CUDA graphs; a GPU scales them by its own
///   `hbm_efficiency_vs_h100` and `layer_floor_vs_h100` (A100: 0.904 and 1.22 from the same benchmark, `hardware`; 1
///   and 1 for every GPU not measured). Until the twelfth session: 0.8, 5 µs and 10 µs,
///   which left 0.5–2.7 ms of those tokens to a host loop that a multi-step standalone engine barely has
///   (docs/fidelity.md).
/// - Eager launch cost 340 µs per layer: the graph floor plus 290 µs, DeepSpeed PR #8352's measurement of verl's
///   vLLM rollout at batch 1 on H200 (4.8 ms per token eager against 1.3 ms with CUDA graphs, GPT-2, 12 layers:
///   0.29 ms more per layer). Older engines were leaner (vLLM PR #1440, V0 in 2023: 47 µs/layer more for
///   Llama-2-7B; xLLM PR #713: 53 µs/layer); the verl-era figure is the one that matches verl's eager generations
///   (one-step-off and MoE cases, docs/fidelity.md).
/// - tp all-reduce across nodes 50 µs: vLLM disables its custom all-reduce for a group spanning nodes
///   (`custom_all_reduce.py`), leaving NCCL, whose small-message all-reduce over 2 × 8 GPUs and InfiniBand takes
///   46–48 µs on H20 with NVLS tree (NVIDIA/nccl issue #1244, 4–512 B) and ~62 µs at 8 B on H100 (nccl-tests
///   tables); inside a node NCCL takes ~2–6 µs (issues #1940, #1259). With one NIC's rate for the bytes
///   (`AnalyticCosts::tp_allreduce_s_per_token`) this gives 88 / 125 µs at 1 / 2 MB against 122 / 130 µs measured
///   on that H20 cluster, and overprices 8 MB (350 against 146–215 µs).
/// - KV reads in decode attention at 0.45 of peak HBM (vLLM, whose FlashAttention backend runs FlashAttention-3 on
///   Hopper in its V1 engine), 0.8 (SGLang's FlashInfer: slime, AReaL). Published FA3 paged-decode measurements:
///   54–55 % of an H100's bandwidth with 32 KV heads at 2–4k tokens of context, the gap growing with context; on H20
///   with 16 KV heads at 16k, 27 % with its default 128-row tile and 46 % with the 64-row tile that vLLM's fork took
///   in April 2025, against 84 % for FlashInfer's tensor-core decode (Dao-AILab/flash-attention issue #1572); SGLang
///   measured FA3's decode 2.2× (end to end, QwQ-32B, sgl-project/sglang #5630) and 2.8× (kernel, #6151) slower
///   than FlashInfer's on H20. FlashAttention-2's split-KV kernel in vLLM 0.6's V0 engine reached ~87 % on H100
///   (vllm-project/vllm #9471: ~403 MB of bf16 KV per layer-step in 138.8 µs), so older vLLM engines read KV at
///   about `hbm_efficiency`. 0.45 is the 64-row-tile FA3 figure, chosen after seeing how the NeMo-RL generations
///   respond to this term (docs/fidelity.md), so those rows do not test its exact value independently.
/// - Host overhead per iteration (vLLM V1 engine loop in verl's SPMD/agent-loop rollout, tp workers fed by a
///   shared-memory broadcast): 2.57 ms, fitted on the tail-bound generations of verl's 7B runs on 64 and 128 H20
///   (one ~25k-token sequence decoding nearly alone takes ~150–178 s there; 3.5 ms until the graph floor, the
///   all-reduce and the weights' rate above were measured, 2.57 ms keeping that iteration's 5.31 ms at tp 4);
///   SGLang's overlap scheduler hides most of it (slime, AReaL: 1.0 ms, an estimate, not refitted: their
///   iterations gained the measured floor).
/// - Per-sequence host cost 2 µs: vLLM V1's scheduler and sampler bookkeeping.
/// - `mfu` 0.590 of the GPU's achievable matmul rate for the executed FLOPs with recomputation (on H20, whose
///   achievable share is 0.961, 0.567 of its peak and 0.43 model-FLOPs utilisation, typical of bf16 dense
///   training): fitted on verl's fully_async 7B dedicated trainer on 16 and 32 H20 (314 s and 157 s per 512×16
///   batch). It was 0.6 of the peak while the FLOPs counted the untied input embedding (7.2 % of Qwen2.5-7B), which
///   is a lookup (the same fit without it gave 0.56), 0.56 until the activation traffic below was priced on its own
///   (1.3 % of those H20 updates: 0.56 × 1.013 = 0.567 keeps them), and 0.567 of the peak until the GPUs' achievable
///   matmul shares joined the model (0.567 / 0.838 = 0.677 kept the H20 fits), 0.677 until H20's own measured share
///   (0.961) replaced GH200's assumed 0.838 (0.567 / 0.961 = 0.590 keeps them). verl-megatron, slime and AReaL
///   share it: no separate measurement distinguishes them yet.
/// - `prefill_mfu` and `decode_compute_efficiency` 0.5 of the achievable rate: estimates (no fit); prefill is a
///   small share of RL generation and decode is memory- or launch-bound at the batch sizes RL runs.
/// - Activation traffic 1 (unfused PyTorch/Megatron ops between the matmuls: norms, rotary, residuals, the gated
///   activation, the logits' log-softmax; `ModelSpec::activation_bytes_per_token`) at `hbm_efficiency` of HBM: 1.3 %
///   of a 7B update on H20 but ~10 % on H100 or GB200, whose FLOP/s per byte of HBM is 6–8× the H20's. Without it a
///   utilisation fitted on H20 made every H100 and GB200 trainer too fast (NeMo-RL's one-step-off steps,
///   train-bound, −15 % and −39 %).
/// - MoE training at 0.322 of the dense utilisation: fitted on verl's dedicated Qwen3-30B-A3B trainer (fully_async
///   96:32 on H20, update 206.6 s per published step), as `mfu` is fitted on the dedicated 7B trainers; the colocated
///   128-GPU MoE run and NeMo-RL's H100 MoE run are the checks. It was 0.336 while each GPU's gradient all-reduce
///   moved all the parameters' gradients rather than its tensor- and expert-parallel shard's, 0.33 until the
///   expert-parallel all-to-alls were priced on their own (`training.expert_parallel`, 2 % of that update), and
///   0.42, from verl's DeepSeek-V3 (671B MoE)
///   benchmark on 96 H20 (MFU 0.19, docs/perf/dpsk.md, against the ~0.45 of a dense model), whose experts are 2,048
///   wide; Qwen3-30B-A3B's are 768, so its grouped GEMMs are smaller and run further below peak.
/// - Gradient checkpointing on: verl's recipes set `enable_gradient_checkpointing=True`; slime and AReaL
///   recompute activations by default for long contexts.
/// - Offload on for verl colocated: verl's colocated long-context scripts set `param_offload` and
///   `optimizer_offload` to True (one_step_off_policy/shell/dapo_7b_math_fsdp2_colocate.sh); pageable copies at
///   8 GB/s per GPU.
/// - Switch fixed cost 3 s (verl) / 2 s (slime, AReaL): vLLM sleep level 2 + wake (KV re-allocation, weights
///   pushed afterwards), vLLM's sleep-mode blog (0.85–2.6 s wake for small models, 3–6 s for large ones).
/// - Weight sync fixed 1 s: verl's NCCL trainer→rollout broadcast "under 300 ms" (PR #2231) plus the engine's
///   reload. With the bytes priced as the trainer's gather of full tensors and a full copy into each rollout GPU
///   (`AnalyticCosts::sync_ns`), verl's checkpoint-engine syncs of Megatron trainers came out 47–52 % short
///   (Qwen3-30B-A3B 16 + 16 H20: 2.3 s against 4.38 s; Qwen3-235B-A22B 64 + 64: 11.3 s against 23.70 s; fully_async
///   README) until the per-tensor latency below joined them.
/// - Weight sync tensor by tensor (verl): verl's FSDP trainers gather each parameter with `full_tensor()` and its
///   Megatron trainers export through a per-tensor generator, so each tensor pays one collective's latency over the
///   trainer's GPUs, priced with NCCL's own latency model (`AnalyticCosts::sync_ns`; no fitted constant). It brought
///   verl's checkpoint-engine syncs from 47–52 % short to −19 / −11 %. The collective is priced over the whole trainer,
///   which fits those syncs and NeMo-RL v0.3's refit. Off for NeMo-RL from v0.4 (`nemo-rl`, below), slime, AReaL and
///   `ideal`, which pack or bucket their updates, and for rlsim-exec (a plain copy).
/// - `nemo-rl`: verl-megatron's constants (the same stack: vLLM, Megatron, one Ray controller) except the
///   controller's time per step, 3 s: NeMo-RL v0.3's per-phase table (release blog, 2025-07-21) leaves 3, 3, 2 and
///   4 s of each step outside its generation, log-prob, training and refit timers (Llama-3.1-8B, Llama-3.1-70B,
///   Qwen3-32B, Qwen3-30B-A3B), against verl's 10 s; and without the two costs of verl's fully_async recipe that
///   NeMo-RL's async GRPO has no code for (the rollouter's 16 groups per engine, the trainer's batch assembly from
///   padded samples); and without the per-tensor sync latency, because from v0.4 NeMo-RL streams its refit without
///   a controller round trip per group of tensors: a colocated trainer worker streams buffers of exported tensors
///   to the engine on its own GPUs over CUDA IPC in one call (`stream_weights_via_ipc_zmq`, NVIDIA-NeMo/RL PR
///   #1267), a separate engine receives NCCL broadcasts of packed buffers overlapped with the export
///   (`packed_broadcast_producer`, PRs #1313 and #1379: Qwen3-235B-A22B's non-colocated refit 13 s → 5.5 s; 4.6–4.9 s
///   with the later reshard path of PR #2971, merged after v0.7.0).
///   What is left per tensor, Megatron-Bridge's export collectives inside the model-parallel groups, is ~0.1 s for
///   Qwen3-235B-A22B (~1,500 expert all-gathers of ~66 µs over EP 16), so it is not priced. The whole-trainer
///   latency had put 20 s (128 GPUs) and 39 s (256) into each of NeMo-RL v0.7's Qwen3-235B-A22B steps, whose
///   published difference (367 → 285 s) it made 60 s against 82 s (79 s without it). NeMo-RL's other constants are
///   not published.
/// - `nemo-rl-v0.3`: `nemo-rl` with the per-tensor sync latency, for the v0.3 release: its colocated refit looped
///   over groups of tensors through the single controller, every trainer worker gathering each tensor of a group
///   (inside its model-parallel groups), packing the group into IPC buffers (PR #589) and handing the handles to
///   the controller, which passed them to every engine (`refit_policy_generation`,
///   nemo_rl/algorithms/grpo.py at v0.3.0; NVIDIA-NeMo/RL issue #945: the controller's serial job submission and
///   (de)serialisation grow with the workers). The whole-trainer latency is the proxy that fits its measured refits
///   (Qwen3-30B-A3B on 64 H100: −62.9 % without it, −21.3 % with it).
/// - Controller overhead per step 10 s (verl): step minus its phases in verl's fully_async 7B colocated runs on 64
///   and 128 H20 (10.9 s and 10.7 s: reward, advantages, balancing, amortised validation every 20 steps).
///
/// - 16 prompt groups in flight per rollout engine for `async` (verl): fully_async's rollouter caps its concurrent
///   samples at `len(server_handles) * 16` (`FullyAsyncRollouter.set_max_required_samples`, recipe/fully_async_policy
///   at b25bb7d4f), each sample one prompt whose n responses it awaits together; 0 (no cap) elsewhere.
/// - Streaming trainer's batch assembly 80 ns per padded token slot (verl): verl's fully_async trainer takes each
///   local step's 128 groups from its message queue one blocking fetch at a time, every sample padded to the caps
///   (`postprocess_agent_loop_outputs`, `padding="max_length"`), unpickles, concatenates and balances them before it
///   computes (`_get_samples_from_queue`, timed as `gen`; recipe/fully_async_policy at b25bb7d4f). In the
///   trainer-bound 16:16 7B run that `gen` is 21.26 s per published step of 8,192 samples × 30,720 slots, of which
///   ~1 s is real waiting: (21.3 − 1) s / 251.7 M slots ≈ 80 ns. Same order as verl PR #3495's `ray.put` of a padded
///   batch (152–220 ns per slot, one copy plus serialisation).
///
/// `ideal` is the roofline (the GPU's bandwidths and achievable matmul rate) with the simplest overheads: CUDA graphs
/// without launch or per-sequence costs, a 1.5 ms iteration overhead, verl's measured weight rate and all-reduce
/// latency, no recomputation, no offload, no controller work or padded transfers, 1 s switches and syncs, and verl's
/// trainer utilisation (`mfu`); it is for micro-scenarios worked out by hand, not for predictions.
///
/// `rlsim-exec` is rlsim's own real backend (candle, exec/): eager (every layer's ops dispatched each iteration,
/// each op between the matmuls a pass over the activations: the `*_elementwise` costs), no controller, no offload,
/// no recomputation, no fixed switch or sync cost (a switch parks the engine's weights in host memory and the
/// trainer keeps its state in place; a sync copies the weights), micro-batches padded to their longest sample, decode
/// reads and FLOPs one after the other (a CPU's packing GEMM), and the trainer runs its matmuls at the device's
/// measured rate (`mfu` 1 of the measured peak). Its per-iteration, per-layer, per-sequence and elementwise costs are
/// the device's: `rlsim validate --model analytic` measures them with microbenchmarks (exec/src/figures.rs) and sets
/// them; the values here are those figures on the project's 2-vCPU development VM (2026-11-29, two workers' threads
/// measuring at once), for a scenario that names the preset alone.
pub fn framework_preset(name: &str) -> Option<FrameworkSpec> {
    let verl = FrameworkSpec {
        name: "verl-fsdp2".into(),
        cuda_graphs: true,
        iteration_overhead_ms: 2.57,
        seq_overhead_us: 2.0,
        graph_layer_us: 50.0,
        eager_layer_us: 340.0,
        tp_allreduce_us: 6.0,
        tp_allreduce_internode_us: 50.0,
        hbm_efficiency: 0.885,
        kv_read_efficiency: 0.45,
        decode_compute_efficiency: 0.5,
        decode_overlap: true,
        prefill_mfu: 0.5,
        mfu: 0.590,
        moe_mfu_scale: 0.322,
        attention_efficiency: 1.0,
        activation_traffic: 1.0,
        gradient_checkpointing: true,
        micro_batch_overhead_ms: 5.0,
        remove_padding: true,
        offload: true,
        offload_gbytes_per_s: 8.0,
        switch_moves_training_state: true,
        switch_fixed_s: 3.0,
        weight_sync_fixed_s: 1.0,
        weight_sync_per_tensor: true,
        step_overhead_s: 10.0,
        controller_ns_per_padded_token: 140.0,
        assembly_ns_per_padded_token: 80.0,
        stream_groups_per_engine: 16,
        logprob_elementwise: Elementwise::ZERO,
        update_elementwise: Elementwise::ZERO,
        decode_elementwise: Elementwise::ZERO,
    };
    // NeMo-RL runs the same stack (vLLM engines, a Megatron trainer, a Ray controller); what a measurement or its code
    // gives of its own is the controller's time per step and, since v0.4, a streamed refit.
    let nemo_rl = FrameworkSpec {
        name: "nemo-rl".into(),
        step_overhead_s: 3.0,
        weight_sync_per_tensor: false,
        // verl's fully_async recipe's own code paths, which NeMo-RL's async GRPO does not have.
        assembly_ns_per_padded_token: 0.0,
        stream_groups_per_engine: 0,
        ..verl.clone()
    };
    let spec = match name.to_ascii_lowercase().as_str() {
        "verl-fsdp2" => verl,
        "verl-megatron" => FrameworkSpec { name: "verl-megatron".into(), ..verl },
        "nemo-rl" => nemo_rl,
        // v0.3's refit went through the controller one group of tensors at a time (see the list above).
        "nemo-rl-v0.3" => FrameworkSpec { name: "nemo-rl-v0.3".into(), weight_sync_per_tensor: true, ..nemo_rl },
        "slime" => FrameworkSpec {
            name: "slime".into(),
            weight_sync_per_tensor: false,
            iteration_overhead_ms: 1.0,
            kv_read_efficiency: 0.8,
            offload: true,
            switch_fixed_s: 2.0,
            step_overhead_s: 3.0,
            controller_ns_per_padded_token: 0.0,
            assembly_ns_per_padded_token: 0.0,
            stream_groups_per_engine: 0,
            ..verl
        },
        "areal" => FrameworkSpec {
            name: "areal".into(),
            weight_sync_per_tensor: false,
            iteration_overhead_ms: 1.0,
            kv_read_efficiency: 0.8,
            offload: false,
            switch_fixed_s: 2.0,
            step_overhead_s: 3.0,
            controller_ns_per_padded_token: 0.0,
            assembly_ns_per_padded_token: 0.0,
            stream_groups_per_engine: 0,
            ..verl
        },
        "ideal" => FrameworkSpec {
            name: "ideal".into(),
            weight_sync_per_tensor: false,
            cuda_graphs: true,
            kv_read_efficiency: 0.8,
            iteration_overhead_ms: 1.5,
            seq_overhead_us: 0.0,
            graph_layer_us: 0.0,
            eager_layer_us: 0.0,
            activation_traffic: 0.0,
            gradient_checkpointing: false,
            offload: false,
            switch_fixed_s: 1.0,
            step_overhead_s: 0.0,
            controller_ns_per_padded_token: 0.0,
            assembly_ns_per_padded_token: 0.0,
            stream_groups_per_engine: 0,
            ..verl
        },
        "rlsim-exec" => FrameworkSpec {
            name: "rlsim-exec".into(),
            cuda_graphs: false,
            iteration_overhead_ms: 0.1,
            seq_overhead_us: 1.2,
            graph_layer_us: 0.0,
            eager_layer_us: 60.0,
            tp_allreduce_us: 0.0,
            tp_allreduce_internode_us: 0.0,
            hbm_efficiency: 1.0,
            kv_read_efficiency: 1.0,
            decode_compute_efficiency: 1.0,
            decode_overlap: false,
            prefill_mfu: 1.0,
            mfu: 1.0,
            moe_mfu_scale: 1.0,
            attention_efficiency: 1.0,
            activation_traffic: 0.0,
            gradient_checkpointing: false,
            micro_batch_overhead_ms: 1.0,
            remove_padding: false,
            offload: false,
            offload_gbytes_per_s: 5.0,
            switch_moves_training_state: false,
            switch_fixed_s: 0.0,
            weight_sync_fixed_s: 0.0,
            weight_sync_per_tensor: false,
            step_overhead_s: 0.0,
            controller_ns_per_padded_token: 0.0,
            assembly_ns_per_padded_token: 0.0,
            stream_groups_per_engine: 0,
            logprob_elementwise: EXEC_LOGPROB_ELEMENTWISE,
            update_elementwise: EXEC_UPDATE_ELEMENTWISE,
            decode_elementwise: EXEC_DECODE_ELEMENTWISE,
        },
        _ => return None,
    };
    Some(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_preset_resolves() {
        for name in FRAMEWORK_PRESETS {
            assert_eq!(&framework_preset(name).unwrap().name, name);
        }
        assert!(framework_preset("VERL-FSDP2").is_some());
        assert!(framework_preset("deepspeed-chat").is_none());
        assert!(FRAMEWORK_PRESETS.contains(&DEFAULT_FRAMEWORK));
    }
}
