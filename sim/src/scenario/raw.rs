//! The raw file shape. Every field is optional here so that a missing one gets a located, explained error (and so
//! the resolved copy can be written back with every default filled in).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default)]
    pub model: RawModel,
    #[serde(default)]
    pub cluster: RawCluster,
    #[serde(default)]
    pub workload: RawWorkload,
    #[serde(default)]
    pub training: RawTraining,
    #[serde(default)]
    pub rollout: RawRollout,
    #[serde(default)]
    pub pipeline: RawPipeline,
    #[serde(default, skip_serializing_if = "RawHardware::is_empty")]
    pub hardware: RawHardware,
    #[serde(default)]
    pub exec: RawExec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<RawFailures>,
    #[serde(default)]
    pub framework: RawFramework,
    /// Published measurements this scenario reproduces (read by `rlsim fidelity`; ignored by `run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<RawPublished>,
    /// How big a run `check` accepts (the simulator keeps every trajectory until the end of the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<RawLimits>,
}

/// `[limits]`: the largest run the simulator accepts; raise them on a machine with the memory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Most trajectories in a run (steps × trajectories per step); default 50,000,000.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_trajectories: Option<u64>,
    /// Most trajectories generated for one step (groups per step × samples_per_prompt); default 1,048,576.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_trajectories_per_step: Option<u64>,
}

/// `[framework]`: the RL framework whose constants the cost model uses (crate::framework).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFramework {
    /// A preset: verl-fsdp2 (default), verl-megatron, nemo-rl (v0.4 and later), nemo-rl-v0.3, slime, areal, ideal,
    /// rlsim-exec (the real backend).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Decode with CUDA graphs (false: eager, vLLM `enforce_eager = true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuda_graphs: Option<bool>,
    /// A decode iteration overlaps its weight and KV reads with its FLOPs (true: the larger of the two; false: the
    /// sum, as a CPU's packing GEMM runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_overlap: Option<bool>,
    /// A time-sliced trainer offloads parameters and optimizer state between phases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offload: Option<bool>,
    /// The trainer packs samples without padding (false: micro-batches padded to their longest sample).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_padding: Option<bool>,
    /// Without offload, a switch moves the training state off the GPU and back (false: it stays in place).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_moves_training_state: Option<bool>,
    /// Controller work per RL step while the GPUs wait, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_overhead_s: Option<f64>,
    /// Nanoseconds per padded token slot per pass for a single controller moving batches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller_ns_per_padded_token: Option<f64>,
    /// Nanoseconds per padded token slot for a streaming trainer assembling each step's batch from queued samples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assembly_ns_per_padded_token: Option<f64>,
    /// Host time per running sequence per engine iteration, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq_overhead_us: Option<f64>,
    /// Launch floor per layer per iteration with CUDA graphs, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_layer_us: Option<f64>,
    /// Launch cost per layer per iteration in eager mode, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eager_layer_us: Option<f64>,
    /// Host↔device bandwidth of the offload copies per GPU, GB/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offload_gbytes_per_s: Option<f64>,
    /// An MoE trainer's utilisation as a share of `training.mfu`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moe_mfu_scale: Option<f64>,
    /// A training pass's attention FLOP rate as a share of the rest of the pass's (`training.mfu`, × the MoE scale).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention_efficiency: Option<f64>,
    /// Prompt groups the `async` rollouter keeps in flight per rollout engine (0: no cap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_groups_per_engine: Option<u32>,
    /// Share of the model's activation traffic a training pass moves through HBM besides its matmuls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation_traffic: Option<f64>,
    /// Work outside the matmuls per layer of a log-prob pass (an eager implementation's), ns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprob_elementwise: Option<crate::framework::Elementwise>,
    /// The same for the update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_elementwise: Option<crate::framework::Elementwise>,
    /// The same per running sequence of a decode iteration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_elementwise: Option<crate::framework::Elementwise>,
}

/// `[published]`: what a paper or recipe measured for this setup, for `rlsim fidelity`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPublished {
    /// Where the figures come from (repository + path + commit, or paper + table).
    pub source: Option<String>,
    /// Published seconds per RL step.
    pub step_s: Option<f64>,
    /// steps.csv columns whose time the published step leaves out (verl fully_async times its step before the
    /// weight sync: `["sync"]`); the simulated step is compared less them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_excludes: Vec<String>,
    /// Simulated train steps per published step (verl fully_async: local updates per parameter sync).
    pub steps_per_published_step: Option<u32>,
    /// Steps at the start of the run left out of the means (warm-up).
    pub warmup_steps: Option<u32>,
    /// Published phases, each mapped to the steps.csv columns whose sum it corresponds to.
    #[serde(default)]
    pub phases: Vec<RawPublishedPhase>,
    /// Another fidelity scenario (file stem) this one's published speed-up is measured against.
    pub speedup_over: Option<String>,
    /// Published step-time ratio baseline / this.
    pub speedup: Option<f64>,
    /// Largest relative errors the test accepts (defaults 0.25 for steps, 0.25 for phases, 0.15 for speed-ups).
    pub step_tolerance: Option<f64>,
    pub phase_tolerance: Option<f64>,
    pub speedup_tolerance: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPublishedPhase {
    /// The paper's name for the phase (e.g. `gen`, `old_log_prob`, `update_actor`).
    pub name: Option<String>,
    pub seconds: Option<f64>,
    /// steps.csv columns whose per-step sum is this phase: rollout, logprob, train, sync, switch, reward, or
    /// switch_to_rollout / switch_to_train (the two directions of switch; not together with it).
    pub sim: Option<Vec<String>>,
    /// Largest relative error the test accepts for this phase (default: `phase_tolerance`).
    pub tolerance: Option<f64>,
}

/// `[failures]`: injected worker failures (simulator only).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFailures {
    /// Seconds a failed worker stays down before it can work again (default 600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_s: Option<f64>,
    /// Mean time between failures of one GPU, hours; a worker fails when any of its GPUs does (exponential, seeded
    /// stream `failures/<worker>`). Absent: only the listed events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtbf_gpu_hours: Option<f64>,
    /// Failures at given times.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<RawFailureEvent>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFailureEvent {
    /// Worker name (as `rlsim check` lists them, e.g. "rollout3").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Seconds after the start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_s: Option<f64>,
}
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHardware {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl RawHardware {
    fn is_empty(&self) -> bool {
        self.profile.is_none()
    }
}

/// Settings only the real backend (`rlsim exec`) uses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lengths: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eos_token: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kl_coef: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params_b: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_params_b: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heads: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_heads: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vocab: Option<u32>,
    /// Routed experts per MoE layer (0 or absent: dense).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experts: Option<u32>,
    /// Experts each token is routed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experts_per_token: Option<u32>,
    /// The LM head shares the input embedding's matrix (`tie_word_embeddings`; default false, as every preset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tied_embeddings: Option<bool>,
    /// Multi-head latent attention's KV latent width (DeepSeek-V3, Kimi K2: 512; 0 or absent: standard attention).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_lora_rank: Option<u32>,
    /// MLA's query latent width (1,536 in DeepSeek-V3; 0: queries projected directly).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q_lora_rank: Option<u32>,
    /// MLA's decoupled rotary key width per head (64 in DeepSeek-V3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qk_rope_head_dim: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bf16_tflops: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matmul_efficiency: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hbm_gbytes_per_s: Option<f64>,
    /// The share of HBM bandwidth this GPU's kernels reach relative to an H100's (1 for a GPU without a preset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hbm_efficiency_vs_h100: Option<f64>,
    /// A decode layer's fixed cost under CUDA graphs relative to the H100's (1 for a GPU without a preset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_floor_vs_h100: Option<f64>,
    /// The share of its achievable matmul rate a trainer reaches on this GPU relative to an H100's (1 for a GPU
    /// without a preset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_efficiency_vs_h100: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_gb: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvlink_gbytes_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcie_gbytes_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_gbits_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_per_gpu_hour: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpus_per_node: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<Vec<RawWorkerGroup>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWorkerGroup {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tp: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// The state its workers hold when the run starts: "rollout" or "train" (default: rollout when tagged so).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// A GPU preset for this group's workers when it differs from `cluster.gpu` (heterogeneous clusters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompts_per_step: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples_per_prompt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_response_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_prompt_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_tokens: Option<RawDist>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<RawDist>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<RawTrace>,
    /// Response lengths of step k are scaled by (1 + this)^k (per-step drift; may be negative, > −1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_growth_per_step: Option<f64>,
    /// Verifier/sandbox seconds per sample after its generation ends (a distribution over seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reward_s: Option<RawSeconds>,
    /// Reward seconds per batch, paid on the train workers before each train step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reward_batch_s: Option<f64>,
    /// Synthetic multi-turn agents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multi_turn: Option<RawMultiTurn>,
    /// Longest context (prompt + tool outputs + generated) a sequence may reach; tool outputs are truncated to fit,
    /// as agent frameworks do at the model's max length. Default: max_prompt_tokens + max_response_tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_context_tokens: Option<u32>,
    /// DAPO dynamic sampling: drop groups whose rewards are all equal and generate more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic_sampling: Option<RawDynamicSampling>,
    /// Coarse-grained simulation (an approximation, opt-in): each simulated prompt group stands for this many
    /// identical ones (same lengths, same engine, same trainer ranks), so a run follows prompts_per_step / coarsen
    /// groups per step. 1 = exact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coarsen: Option<u32>,
}

/// `[workload.dynamic_sampling]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDynamicSampling {
    /// Share of groups whose rewards are not all equal (kept), in (0, 1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_fraction: Option<f64>,
    /// Groups generated per round (verl's gen_batch_size); default prompts_per_step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompts_per_round: Option<u32>,
    /// Rounds per step at most (verl's max_num_gen_batches); default 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rounds: Option<u32>,
}

/// `[workload.multi_turn]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMultiTurn {
    /// Turns per trajectory (a token-count distribution used as a count; at most 64).
    pub turns: RawDist,
    /// Tool/environment latency after each turn but the last.
    pub tool_latency_s: RawSeconds,
    /// Tokens each tool call adds to the context.
    pub tool_tokens: RawDist,
}

/// A distribution of durations in seconds, chosen by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawSeconds {
    Constant { seconds: f64 },
    Lognormal { median: f64, sigma: f64 },
}

/// A length distribution, chosen by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawDist {
    Constant { tokens: u32 },
    Lognormal { median: f64, sigma: f64 },
    Quantiles { points: Vec<[f64; 2]> },
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTrace {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTraining {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfu: Option<f64>,
    /// Tokens per micro-batch per GPU of the update: a data-parallel rank's micro-batch ÷ its
    /// `model_parallel_gpus` (verl FSDP: `ppo_max_token_len_per_gpu`; NeMo-RL: `train_mb_tokens` ÷
    /// `model_parallel_gpus`). Under pipeline parallelism it sets the micro-batches per schedule, so the bubble.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub micro_batch_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub micro_batch_overhead_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprob_passes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation_reserve_gb: Option<f64>,
    /// Optimizer steps per RL step (the batch is split into this many mini-batches; verl's
    /// train_batch_size / ppo_mini_batch_size).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mini_batches: Option<u32>,
    /// GPUs that process one sequence together (Ulysses sequence parallel, Megatron tp·cp); data-parallel
    /// ranks = train GPUs / this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_parallel_gpus: Option<u32>,
    /// GPUs of a model-parallel group that split each layer's matmuls (Megatron tensor parallelism; default 1): each
    /// layer's activations are all-reduced among them, twice per forward and twice per backward.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensor_parallel: Option<u32>,
    /// GPUs an MoE layer's experts are spread over (Megatron expert parallelism; default 1): each token's hidden
    /// state goes to the GPUs of its experts and comes back, once per forward and once per backward.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expert_parallel: Option<u32>,
    /// Pipeline stages of a model-parallel group (Megatron pipeline parallelism; default 1): each holds its share of
    /// the layers, so its gradients are that share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_parallel: Option<u32>,
    /// Tokens per micro-batch per GPU of the forward-only log-prob passes (default: micro_batch_tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprob_micro_batch_tokens: Option<u32>,
    /// Recompute activations in the backward pass (default: the framework's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gradient_checkpointing: Option<bool>,
    /// GPUs one copy of the sharded training state is spread over (verl's `fsdp_size`; hybrid sharding replicates
    /// it over the rest); default: all train GPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsdp_size: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRollout {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tp: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_memory_utilization: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_num_seqs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hbm_efficiency: Option<f64>,
    /// Achieved share of the GPU's peak HBM bandwidth when decode attention reads the KV cache (default: the
    /// framework preset's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_read_efficiency: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_compute_efficiency: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_mfu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iteration_overhead_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tp_allreduce_us: Option<f64>,
    /// Latency of one all-reduce of an engine spanning nodes, µs (default: the framework's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tp_allreduce_internode_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_caching: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_capacity_tokens: Option<u64>,
    /// Speculative decoding: draft tokens a one-layer draft head proposes per sequence per step (default 0: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speculative_tokens: Option<u32>,
    /// The chance the target accepts each draft token (required with `speculative_tokens`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speculative_acceptance: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_sync_fixed_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_sync_per_tensor: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colocated: Option<RawColocated>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disaggregated: Option<RawDisaggregated>,
    #[serde(rename = "async", skip_serializing_if = "Option::is_none")]
    pub async_: Option<RawAsync>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<RawPartial>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seamless: Option<RawSeamless>,
}

/// `[pipeline.async]` (AReaL-style fully asynchronous RL).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAsync {
    /// η: a sample may be trained at most this many weight syncs after the one it started under (fractions allowed,
    /// as verl's staleness_threshold).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_staleness: Option<f64>,
    /// Train steps (local updates) per weight sync (verl's trigger_parameter_sync_step).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps_per_sync: Option<u32>,
    /// Which complete groups a batch takes: "version" (oldest start version first, never past an incomplete
    /// version: AReaL's strict bound) or "completion" (in the order they complete: verl fully_async).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_order: Option<String>,
    /// Interrupt generation for each weight update (re-prefill in-flight sequences under the new weights); false:
    /// stop admitting, let in-flight sequences finish on the old weights, then sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interruptible: Option<bool>,
}

/// `[pipeline.partial]` (APRIL-style partial rollout).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPartial {
    /// Groups in flight per step as a multiple of `workload.prompts_per_step` (≥ 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub over_provision: Option<f64>,
    /// Automatic layout when `cluster.workers` is not given: "colocated" (time-sliced) or "disaggregated".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
}

/// `[pipeline.seamless]` (SeamlessFlow-style spatiotemporal multiplexing).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSeamless {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_staleness: Option<f64>,
    /// When to lend idle train workers to rollout: "gain" (expected idle time exceeds twice the round-trip switch
    /// cost), "always" (whenever there is rollout work) or "never".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lend: Option<String>,
    /// Seconds to turn a train worker into a rollout engine (default: the cost model's offload/onload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lend_s: Option<f64>,
    /// Seconds to take a lent worker back to training (default: the cost model's offload/onload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reclaim_s: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawColocated {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_fixed_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_to_train_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_to_rollout_s: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDisaggregated {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_gpus: Option<u32>,
}
