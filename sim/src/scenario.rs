//! Scenario files: the raw TOML shape (serde, `deny_unknown_fields`), `--set` overrides, and validation into a
//! `Scenario` whose errors name the file, line, column and field.

use crate::cluster::{Cluster, PlacementError, WorkerGroupSpec};
use crate::cost::Role;
use crate::costs::memory;
use crate::hardware::{gpu_preset, GpuSpec, GPU_PRESETS};
use crate::model::{model_preset, ModelSpec, MODEL_PRESETS};
use crate::trace::{read_csv_trace, TraceError};
use crate::workload::{LengthDist, LengthSource, MultiTurnSpec, SecondsDist, TraceMode, WorkloadSpec};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

// ---------------------------------------------------------------------------------------------------------------
// Raw file shape. Every field is optional here so that a missing one gets a located, explained error (and so the
// resolved copy can be written back with every default filled in).

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
}

/// `[framework]`: the RL framework whose constants the cost model uses (crate::framework).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFramework {
    /// A preset: verl-fsdp2 (default), verl-megatron, slime, areal, ideal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Decode with CUDA graphs (false: eager, vLLM `enforce_eager = true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuda_graphs: Option<bool>,
    /// A time-sliced trainer offloads parameters and optimizer state between phases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offload: Option<bool>,
    /// Controller work per RL step while the GPUs wait, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_overhead_s: Option<f64>,
    /// Nanoseconds per padded token slot per pass for a single controller moving batches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller_ns_per_padded_token: Option<f64>,
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
}

/// `[published]`: what a paper or recipe measured for this setup, for `rlsim fidelity`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPublished {
    /// Where the figures come from (repository + path + commit, or paper + table).
    pub source: Option<String>,
    /// Published seconds per RL step.
    pub step_s: Option<f64>,
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
    /// steps.csv columns whose per-step sum is this phase: rollout, logprob, train, sync, switch, reward.
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

/// Validated `[failures]`.
#[derive(Clone, Debug, PartialEq)]
pub struct FailureSpec {
    pub recovery_s: f64,
    pub mtbf_gpu_hours: Option<f64>,
    /// (worker, seconds after the start), in time order.
    pub events: Vec<(crate::cluster::WorkerId, f64)>,
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
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bf16_tflops: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hbm_gbytes_per_s: Option<f64>,
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
    /// Tokens per micro-batch per GPU of the forward-only log-prob passes (default: micro_batch_tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprob_micro_batch_tokens: Option<u32>,
    /// Recompute activations in the backward pass (default: the framework's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gradient_checkpointing: Option<bool>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_compute_efficiency: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_mfu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iteration_overhead_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tp_allreduce_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_caching: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_capacity_tokens: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_sync_fixed_s: Option<f64>,
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

// ---------------------------------------------------------------------------------------------------------------
// Validated shape.

/// Which forward-only log-prob passes run before the update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogProbPass {
    /// Old-policy log-probs for the importance ratio (recomputed by the trainer, as verl does).
    Old,
    /// Reference-policy log-probs for a KL penalty.
    Reference,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrainingSpec {
    pub mfu: f64,
    pub micro_batch_tokens: u32,
    pub micro_batch_overhead_s: f64,
    pub logprob_passes: Vec<LogProbPass>,
    /// Optimizer name and state bytes per parameter (AdamW: fp32 master + m + v = 12; SGD with momentum: 8).
    pub optimizer: String,
    pub optimizer_bytes_per_param: f64,
    pub activation_reserve_gb: f64,
    /// Optimizer steps per RL step.
    pub mini_batches: u32,
    /// GPUs sharing one sequence (data-parallel ranks = train GPUs / this).
    pub model_parallel_gpus: u32,
    pub logprob_micro_batch_tokens: u32,
    pub gradient_checkpointing: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RolloutSpec {
    pub tp: u32,
    pub gpu_memory_utilization: f64,
    pub max_num_seqs: u32,
    pub hbm_efficiency: f64,
    pub decode_compute_efficiency: f64,
    pub prefill_mfu: f64,
    pub iteration_overhead_s: f64,
    pub tp_allreduce_s: f64,
    /// Host time per running sequence per iteration, seconds.
    pub seq_overhead_s: f64,
    /// Launch cost per layer per iteration (eager or CUDA-graph figure of the framework), seconds.
    pub layer_launch_s: f64,
    pub prefix_caching: bool,
    /// Overrides the KV-cache capacity the memory formula gives each engine (tokens).
    pub kv_capacity_tokens: Option<u64>,
}

/// How the real backend decides where a response ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecLengths {
    /// Ignore EOS and stop exactly at the workload's length (strict replay: both backends see the same lengths).
    Trace,
    /// Stop at `eos_token` or at the workload's length, whichever comes first.
    Natural,
}

/// Validated `[exec]` settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecSpec {
    pub learning_rate: f64,
    pub lengths: ExecLengths,
    pub eos_token: u32,
    pub kl_coef: f64,
    pub clip_ratio: f64,
    /// The synthetic verifiable task: "even" (reward = share of response tokens that are even ids).
    pub task: String,
}

/// The pipeline types rlsim knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PipelineKind {
    Colocated,
    Disaggregated,
    Async,
    Partial,
    Seamless,
}

pub const PIPELINE_TYPES: &[&str] = &["colocated", "disaggregated", "async", "partial", "seamless"];

impl PipelineKind {
    pub const ALL: [PipelineKind; 5] = [
        PipelineKind::Colocated,
        PipelineKind::Disaggregated,
        PipelineKind::Async,
        PipelineKind::Partial,
        PipelineKind::Seamless,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PipelineKind::Colocated => "colocated",
            PipelineKind::Disaggregated => "disaggregated",
            PipelineKind::Async => "async",
            PipelineKind::Partial => "partial",
            PipelineKind::Seamless => "seamless",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// How workers are laid out: data (tags and start states), not code paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Every worker carries `rollout` and `train` and is time-sliced between them.
    TimeSliced,
    /// Disjoint pools: workers carry `rollout` or `train`, never both.
    Split,
    /// A rollout pool, and a train pool whose workers also carry `rollout` (start as `train`) so they can be lent.
    Lendable,
}

/// When `seamless` lends idle train workers to rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LendRule {
    /// Only when the expected wait for the next batch exceeds twice the round trip (lend + reclaim): the lent
    /// worker then generates for longer than it spends switching (PEARL's gain-vs-cost test).
    Gain,
    Always,
    Never,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PipelineSpec {
    pub kind: PipelineKind,
    pub weight_sync_fixed_s: f64,
    pub switch_fixed_s: f64,
    pub switch_to_train_s: Option<f64>,
    pub switch_to_rollout_s: Option<f64>,
    /// GPUs given to rollout by the automatic split layouts.
    pub rollout_gpus: Option<u32>,
    /// The layout the pipeline runs on (checked against the workers' tags).
    pub layout: Layout,
    /// η for `async` and `seamless`, in weight syncs (may be fractional).
    pub max_staleness: f64,
    /// Train steps per weight sync (`async`).
    pub steps_per_sync: u32,
    /// Which complete groups form a batch (`async`).
    pub batch_order: BatchOrder,
    /// `async`: interrupt generation for weight updates.
    pub interruptible: bool,
    /// `partial`: groups in flight per step / groups trained per step.
    pub over_provision: f64,
    /// `seamless`: the lending rule.
    pub lend: LendRule,
}

impl PipelineSpec {
    /// The most versions a trained token may lag for `async`/`seamless` taking batches in version order:
    /// ⌈S·(1 + η)⌉ − 1 (η for S = 1 and a whole η); `None` when batches follow completion order (no bound).
    pub fn staleness_bound(&self) -> Option<u32> {
        match self.batch_order {
            BatchOrder::Completion => None,
            BatchOrder::Version => {
                let x = self.steps_per_sync as f64 * (1.0 + self.max_staleness);
                Some(((x - 1e-9).ceil() as u32).saturating_sub(1))
            }
        }
    }
}

/// Which complete groups the streaming trainer takes for a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchOrder {
    /// Oldest start version first, never past a version with an incomplete group (a strict staleness bound).
    Version,
    /// In the order the groups complete (a long sample is trained later, more stale).
    Completion,
}

/// A validated scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub seed: u64,
    pub file: PathBuf,
    pub model: ModelSpec,
    pub cluster: Cluster,
    pub workload: WorkloadSpec,
    pub training: TrainingSpec,
    pub rollout: RolloutSpec,
    pub pipeline: PipelineSpec,
    /// Measured cost parameters replacing the datasheet formulas, when `[hardware] profile` names a file.
    pub profile: Option<crate::profile::HardwareProfile>,
    pub exec: ExecSpec,
    /// Injected failures, if any.
    pub failures: Option<FailureSpec>,
    /// The framework's constants (with the scenario's `[framework]` overrides).
    pub framework: crate::framework::FrameworkSpec,
    /// The raw scenario with every default filled in (written as `scenario.resolved.toml`).
    pub resolved: RawScenario,
}

// ---------------------------------------------------------------------------------------------------------------
// Errors.

/// A scenario that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{}: cannot read scenario: {source}", file.display())]
    Io { file: PathBuf, source: std::io::Error },
    #[error("{}", format_field_error(file, *location, field, message))]
    Field { file: PathBuf, location: Option<(usize, usize)>, field: String, message: String },
    #[error("--set {assignment}: {message}")]
    Override { assignment: String, message: String },
}

/// The field name syntax errors carry (they are about the text, not a field).
pub const SYNTAX: &str = "(syntax)";

fn format_field_error(file: &Path, location: Option<(usize, usize)>, field: &str, message: &str) -> String {
    let place = match location {
        Some((line, col)) => format!("{}:{line}:{col}", file.display()),
        None => file.display().to_string(),
    };
    if field == SYNTAX {
        format!("{place}: TOML syntax error: {message}")
    } else {
        format!("{place}: field `{field}`: {message}")
    }
}

/// The text a scenario was read from, for locating fields.
struct Source<'a> {
    /// The scenario file (relative paths inside it resolve against its folder).
    file: &'a Path,
    /// How errors name it: the file, marked when `--set` overrides changed its text.
    label: PathBuf,
    text: &'a str,
    doc: Option<toml_edit::Document<&'a str>>,
}

impl<'a> Source<'a> {
    fn new(file: &'a Path, text: &'a str, overridden: bool) -> Self {
        let label = if overridden {
            PathBuf::from(format!("{} (with --set overrides)", file.display()))
        } else {
            file.to_path_buf()
        };
        Source { file, label, text, doc: toml_edit::Document::parse(text).ok() }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
        (line, col)
    }

    /// The line and column of a dotted field (`a.b[0].c`), or of its nearest ancestor present in the file.
    fn locate(&self, field: &str) -> Option<(usize, usize)> {
        let doc = self.doc.as_ref()?;
        let mut node = Node::Table(doc.as_table());
        let mut span = None;
        for seg in split_path(field) {
            let Some((child, child_span)) = node.child(&seg) else { break };
            span = child_span.or(span);
            node = child;
        }
        span.map(|s| self.line_col(s.start))
    }

    fn error(&self, field: &str, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Field {
            file: self.label.clone(),
            location: self.locate(field),
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// A place in a parsed TOML document, for walking dotted paths.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a toml_edit::Item),
    Table(&'a toml_edit::Table),
    Value(&'a toml_edit::Value),
}

impl<'a> Node<'a> {
    fn child(self, seg: &PathSeg) -> Option<(Node<'a>, Option<std::ops::Range<usize>>)> {
        use toml_edit::{Item, Value};
        match (self, seg) {
            (Node::Item(Item::Table(t)), _) => Node::Table(t).child(seg),
            (Node::Item(Item::Value(v)), _) => Node::Value(v).child(seg),
            (Node::Item(Item::ArrayOfTables(a)), PathSeg::Index(i)) => a.get(*i).map(|t| (Node::Table(t), t.span())),
            (Node::Table(t), PathSeg::Key(k)) => {
                let item = t.get(k)?;
                Some((Node::Item(item), t.key(k).and_then(|k| k.span()).or_else(|| item.span())))
            }
            (Node::Value(Value::InlineTable(t)), PathSeg::Key(k)) => {
                let v = t.get(k)?;
                Some((Node::Value(v), t.key(k).and_then(|k| k.span()).or_else(|| v.span())))
            }
            (Node::Value(Value::Array(a)), PathSeg::Index(i)) => a.get(*i).map(|v| (Node::Value(v), v.span())),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum PathSeg {
    Key(String),
    Index(usize),
}

/// Splits `a.b[0].c` or `a.b.0.c` into segments.
fn split_path(path: &str) -> Vec<PathSeg> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            if open > 0 {
                out.push(PathSeg::Key(rest[..open].to_string()));
            }
            rest = &rest[open..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let close = stripped.find(']').unwrap_or(stripped.len());
                if let Ok(i) = stripped[..close].parse() {
                    out.push(PathSeg::Index(i));
                }
                rest = stripped.get(close + 1..).unwrap_or("");
            }
        } else if let Ok(i) = rest.parse::<usize>() {
            out.push(PathSeg::Index(i));
        } else {
            out.push(PathSeg::Key(rest.to_string()));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Loading.

/// Applies `key=value` overrides (dotted paths, `name[0]` or `name.0` for an entry of an array of tables) to the
/// scenario text. The value is read as a TOML value (`64`, `0.5`, `true`, `"x"`, `[1, 2]`), or else as a bare
/// string (`colocated`). The file's layout is kept, so later errors still point at its lines.
pub fn apply_overrides(text: &str, file: &Path, overrides: &[String]) -> Result<String, ScenarioError> {
    if overrides.is_empty() {
        return Ok(text.to_string());
    }
    let mut doc: toml_edit::DocumentMut =
        text.parse().map_err(|e: toml_edit::TomlError| syntax_error(file, text, &e))?;
    for assignment in overrides {
        let bad = |message: String| ScenarioError::Override { assignment: assignment.clone(), message };
        let (key, raw_value) =
            assignment.split_once('=').ok_or_else(|| bad("expected KEY=VALUE, e.g. pipeline.type=colocated".into()))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(bad("the key is empty; expected a dotted path such as workload.prompts_per_step".into()));
        }
        let raw_value = raw_value.trim();
        let value: toml_edit::Value = raw_value.parse().unwrap_or_else(|_| toml_edit::Value::from(raw_value));
        let segs = split_path(key);
        set_in(doc.as_table_mut(), &segs, value).map_err(bad)?;
    }
    Ok(doc.to_string())
}

fn set_in(table: &mut dyn toml_edit::TableLike, segs: &[PathSeg], value: toml_edit::Value) -> Result<(), String> {
    use toml_edit::{Item, Table};
    let PathSeg::Key(k) = &segs[0] else { return Err("each part of the path before an index must be a key".into()) };
    if segs.len() == 1 {
        table.insert(k, Item::Value(value));
        return Ok(());
    }
    if table.get(k).is_none() {
        let mut t = Table::new();
        t.set_implicit(true);
        table.insert(k, Item::Table(t));
    }
    let child = table.get_mut(k).expect("inserted above");
    match (&segs[1], child) {
        (PathSeg::Index(i), Item::ArrayOfTables(a)) => {
            let n = a.len();
            let t = a.get_mut(*i).ok_or_else(|| format!("`{k}` has {n} entries; index {i} is out of range"))?;
            if segs.len() == 2 {
                return Err(format!("`{k}[{i}]` is a table; name one of its fields"));
            }
            set_in(t, &segs[2..], value)
        }
        (PathSeg::Index(_), _) => Err(format!("`{k}` is not an array of tables")),
        (PathSeg::Key(_), item) => match item.as_table_like_mut() {
            Some(t) => set_in(t, &segs[1..], value),
            None => Err(format!("`{k}` is a value, not a table")),
        },
    }
}

fn syntax_error(file: &Path, text: &str, e: &toml_edit::TomlError) -> ScenarioError {
    let src = Source::new(file, text, false);
    ScenarioError::Field {
        file: file.to_path_buf(),
        location: e.span().map(|s| src.line_col(s.start)),
        field: SYNTAX.into(),
        message: e.message().trim().to_string(),
    }
}

/// The JSON Schema of the scenario format (for editors: completion and checking of scenario files).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RawScenario)).expect("a schema always serialises")
}

impl Scenario {
    /// Reads, overrides and validates a scenario file.
    pub fn load(file: &Path, overrides: &[String]) -> Result<Scenario, ScenarioError> {
        let text =
            std::fs::read_to_string(file).map_err(|source| ScenarioError::Io { file: file.to_path_buf(), source })?;
        Scenario::from_text(&text, file, overrides)
    }

    /// Validates scenario text; `file` names it in errors and anchors relative paths.
    pub fn from_text(text: &str, file: &Path, overrides: &[String]) -> Result<Scenario, ScenarioError> {
        let text = apply_overrides(text, file, overrides)?;
        let src = Source::new(file, &text, !overrides.is_empty());
        let raw = parse_raw(&src)?;
        validate(raw, &src)
    }

    /// `scenario.resolved.toml`: this scenario with every default filled in; loading it gives the same run.
    pub fn resolved_toml(&self) -> String {
        let body = toml::to_string_pretty(&self.resolved).expect("a RawScenario always serialises");
        format!("# {} — resolved by rlsim: every default filled in; paths are absolute.\n{body}", self.name)
    }

    pub fn total_gpus(&self) -> u32 {
        self.cluster.total_gpus()
    }
}

fn parse_raw(src: &Source) -> Result<RawScenario, ScenarioError> {
    let de = toml::de::Deserializer::parse(src.text).map_err(|e| ScenarioError::Field {
        file: src.label.clone(),
        location: e.span().map(|s| src.line_col(s.start)),
        field: SYNTAX.into(),
        message: e.message().trim().to_string(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.inner();
        ScenarioError::Field {
            file: src.label.clone(),
            location: inner.span().map(|s| src.line_col(s.start)).or_else(|| src.locate(&field)),
            field,
            message: inner.message().trim().to_string(),
        }
    })
}

/// Small checkers that turn a raw field into a value or a located error.
struct Check<'a, 'b> {
    src: &'a Source<'b>,
}

impl Check<'_, '_> {
    fn require<T>(&self, v: Option<T>, field: &str, expected: &str) -> Result<T, ScenarioError> {
        v.ok_or_else(|| self.src.error(field, format!("missing; expected {expected}")))
    }

    fn count(&self, v: Option<u32>, field: &str, default: Option<u32>, what: &str) -> Result<u32, ScenarioError> {
        let v = match (v, default) {
            (Some(v), _) => v,
            (None, Some(d)) => d,
            (None, None) => {
                return Err(self.src.error(field, format!("missing; expected a positive integer ({what})")))
            }
        };
        if v == 0 {
            return Err(self.src.error(field, format!("must be at least 1 ({what}), got 0")));
        }
        Ok(v)
    }

    fn number(
        &self,
        v: Option<f64>,
        field: &str,
        default: f64,
        lo: f64,
        hi: f64,
        what: &str,
    ) -> Result<f64, ScenarioError> {
        let v = v.unwrap_or(default);
        if !v.is_finite() || v < lo || v > hi {
            let range = if hi.is_infinite() { format!("≥ {lo}") } else { format!("in [{lo}, {hi}]") };
            return Err(self.src.error(field, format!("expected {what} {range}, got {v}")));
        }
        Ok(v)
    }

    fn positive(&self, v: Option<f64>, field: &str, default: Option<f64>, what: &str) -> Result<f64, ScenarioError> {
        let v = match (v, default) {
            (Some(v), _) => v,
            (None, Some(d)) => d,
            (None, None) => return Err(self.src.error(field, format!("missing; expected a positive number ({what})"))),
        };
        if !v.is_finite() || v <= 0.0 {
            return Err(self.src.error(field, format!("expected a positive number ({what}), got {v}")));
        }
        Ok(v)
    }

    fn fraction(&self, v: Option<f64>, field: &str, default: f64, what: &str) -> Result<f64, ScenarioError> {
        let v = v.unwrap_or(default);
        if !v.is_finite() || v <= 0.0 || v > 1.0 {
            return Err(self.src.error(field, format!("expected a fraction in (0, 1] ({what}), got {v}")));
        }
        Ok(v)
    }
}

fn validate(raw: RawScenario, src: &Source) -> Result<Scenario, ScenarioError> {
    let c = Check { src };
    let mut resolved = raw.clone();
    let name = raw
        .name
        .clone()
        .unwrap_or_else(|| src.file.file_stem().and_then(|s| s.to_str()).unwrap_or("scenario").to_string());
    if name.is_empty() || name.contains(['/', '\\']) {
        return Err(src.error(
            "name",
            format!("expected a non-empty name without slashes (it names the run folder), got {name:?}"),
        ));
    }
    let seed = raw.seed.unwrap_or(0);
    resolved.name = Some(name.clone());
    resolved.seed = Some(seed);

    let model = validate_model(&raw.model, &c)?;
    resolved.model = RawModel {
        preset: raw.model.preset.as_ref().map(|_| model.name.clone()),
        params_b: Some(model.params_b),
        active_params_b: Some(model.active_params_b),
        layers: Some(model.layers),
        hidden: Some(model.hidden),
        heads: Some(model.heads),
        kv_heads: Some(model.kv_heads),
        head_dim: Some(model.head_dim),
        vocab: Some(model.vocab),
        experts: (model.experts > 0).then_some(model.experts),
        experts_per_token: (model.experts > 0).then_some(model.experts_per_token),
    };

    let gpu = validate_gpu(&raw.cluster, &c)?;
    let nodes = c.count(raw.cluster.nodes, "cluster.nodes", None, "number of nodes")?;
    let gpus_per_node = c.count(raw.cluster.gpus_per_node, "cluster.gpus_per_node", Some(8), "GPUs per node")?;
    resolved.cluster = RawCluster {
        gpu: raw.cluster.gpu.as_ref().map(|_| gpu.name.clone()),
        bf16_tflops: Some(gpu.bf16_tflops),
        hbm_gbytes_per_s: Some(gpu.hbm_gbytes_per_s),
        memory_gb: Some(gpu.memory_gb),
        nvlink_gbytes_per_s: Some(gpu.nvlink_gbytes_per_s),
        pcie_gbytes_per_s: Some(gpu.pcie_gbytes_per_s),
        network_gbits_per_s: Some(gpu.network_gbits_per_s),
        price_per_gpu_hour: Some(gpu.price_per_gpu_hour),
        nodes: Some(nodes),
        gpus_per_node: Some(gpus_per_node),
        workers: raw.cluster.workers.clone(),
    };

    let fw_raw = &raw.framework;
    let fw_name = fw_raw.preset.clone().unwrap_or_else(|| crate::framework::DEFAULT_FRAMEWORK.to_string());
    let mut framework = crate::framework::framework_preset(&fw_name).ok_or_else(|| {
        src.error(
            "framework.preset",
            format!(
                "unknown framework preset {fw_name:?}; expected one of {}",
                crate::framework::FRAMEWORK_PRESETS.join(", ")
            ),
        )
    })?;
    if let Some(g) = fw_raw.cuda_graphs {
        framework.cuda_graphs = g;
    }
    if let Some(o) = fw_raw.offload {
        framework.offload = o;
    }
    let fw_num = |v: Option<f64>, field: &str, default: f64, what: &str| {
        c.number(v, &format!("framework.{field}"), default, 0.0, 1e9, what)
    };
    framework.step_overhead_s =
        fw_num(fw_raw.step_overhead_s, "step_overhead_s", framework.step_overhead_s, "seconds per step")?;
    framework.controller_ns_per_padded_token = fw_num(
        fw_raw.controller_ns_per_padded_token,
        "controller_ns_per_padded_token",
        framework.controller_ns_per_padded_token,
        "nanoseconds per padded token slot",
    )?;
    framework.seq_overhead_us =
        fw_num(fw_raw.seq_overhead_us, "seq_overhead_us", framework.seq_overhead_us, "microseconds")?;
    framework.graph_layer_us =
        fw_num(fw_raw.graph_layer_us, "graph_layer_us", framework.graph_layer_us, "microseconds")?;
    framework.eager_layer_us =
        fw_num(fw_raw.eager_layer_us, "eager_layer_us", framework.eager_layer_us, "microseconds")?;
    framework.offload_gbytes_per_s = c.positive(
        fw_raw.offload_gbytes_per_s,
        "framework.offload_gbytes_per_s",
        Some(framework.offload_gbytes_per_s),
        "GB/s",
    )?;
    framework.moe_mfu_scale = c.fraction(
        fw_raw.moe_mfu_scale,
        "framework.moe_mfu_scale",
        framework.moe_mfu_scale,
        "an MoE trainer's utilisation as a share of the dense one's",
    )?;
    resolved.framework = RawFramework {
        moe_mfu_scale: Some(framework.moe_mfu_scale),
        preset: Some(framework.name.clone()),
        cuda_graphs: Some(framework.cuda_graphs),
        offload: Some(framework.offload),
        step_overhead_s: Some(framework.step_overhead_s),
        controller_ns_per_padded_token: Some(framework.controller_ns_per_padded_token),
        seq_overhead_us: Some(framework.seq_overhead_us),
        graph_layer_us: Some(framework.graph_layer_us),
        eager_layer_us: Some(framework.eager_layer_us),
        offload_gbytes_per_s: Some(framework.offload_gbytes_per_s),
    };
    let fw = framework.clone();
    let layer_launch_s = if fw.cuda_graphs { fw.graph_layer_us } else { fw.eager_layer_us } / 1e6;

    let r = &raw.rollout;
    let rollout = RolloutSpec {
        tp: c.count(r.tp, "rollout.tp", Some(1), "tensor-parallel degree of each rollout engine")?,
        gpu_memory_utilization: c.fraction(
            r.gpu_memory_utilization,
            "rollout.gpu_memory_utilization",
            0.9,
            "share of GPU memory for weights and KV cache",
        )?,
        max_num_seqs: c.count(
            r.max_num_seqs,
            "rollout.max_num_seqs",
            Some(256),
            "most sequences decoded at once per engine",
        )?,
        hbm_efficiency: c.fraction(
            r.hbm_efficiency,
            "rollout.hbm_efficiency",
            fw.hbm_efficiency,
            "achieved share of HBM bandwidth",
        )?,
        decode_compute_efficiency: c.fraction(
            r.decode_compute_efficiency,
            "rollout.decode_compute_efficiency",
            fw.decode_compute_efficiency,
            "achieved share of peak FLOP/s in decode",
        )?,
        prefill_mfu: c.fraction(
            r.prefill_mfu,
            "rollout.prefill_mfu",
            fw.prefill_mfu,
            "achieved share of peak FLOP/s in prefill",
        )?,
        iteration_overhead_s: c.number(
            r.iteration_overhead_ms,
            "rollout.iteration_overhead_ms",
            fw.iteration_overhead_ms,
            0.0,
            f64::INFINITY,
            "milliseconds",
        )? / 1e3,
        tp_allreduce_s: c.number(
            r.tp_allreduce_us,
            "rollout.tp_allreduce_us",
            fw.tp_allreduce_us,
            0.0,
            f64::INFINITY,
            "microseconds",
        )? / 1e6,
        seq_overhead_s: fw.seq_overhead_us / 1e6,
        layer_launch_s,
        prefix_caching: r.prefix_caching.unwrap_or(true),
        kv_capacity_tokens: match r.kv_capacity_tokens {
            Some(0) => return Err(src.error("rollout.kv_capacity_tokens", "must be at least 1 token, got 0")),
            v => v,
        },
    };
    resolved.rollout = RawRollout {
        tp: Some(rollout.tp),
        gpu_memory_utilization: Some(rollout.gpu_memory_utilization),
        max_num_seqs: Some(rollout.max_num_seqs),
        hbm_efficiency: Some(rollout.hbm_efficiency),
        decode_compute_efficiency: Some(rollout.decode_compute_efficiency),
        prefill_mfu: Some(rollout.prefill_mfu),
        iteration_overhead_ms: Some(rollout.iteration_overhead_s * 1e3),
        tp_allreduce_us: Some(rollout.tp_allreduce_s * 1e6),
        prefix_caching: Some(rollout.prefix_caching),
        kv_capacity_tokens: rollout.kv_capacity_tokens,
    };

    let t = &raw.training;
    let optimizer = t.optimizer.clone().unwrap_or_else(|| "adamw".into());
    let optimizer_bytes_per_param = match optimizer.as_str() {
        "adamw" => 12.0,
        "sgd" => 8.0,
        other => {
            return Err(
                src.error("training.optimizer", format!("unknown optimizer {other:?}; expected \"adamw\" or \"sgd\""))
            )
        }
    };
    let passes_raw = t.logprob_passes.clone().unwrap_or_else(|| vec!["old".into(), "reference".into()]);
    let mut logprob_passes = Vec::new();
    for (i, p) in passes_raw.iter().enumerate() {
        logprob_passes.push(match p.as_str() {
            "old" => LogProbPass::Old,
            "reference" => LogProbPass::Reference,
            other => {
                return Err(src.error(
                    &format!("training.logprob_passes[{i}]"),
                    format!("unknown pass {other:?}; expected \"old\" or \"reference\""),
                ))
            }
        });
    }
    let training = TrainingSpec {
        mfu: c.fraction(t.mfu, "training.mfu", fw.mfu, "model FLOPs utilisation of training")?,
        micro_batch_tokens: c.count(
            t.micro_batch_tokens,
            "training.micro_batch_tokens",
            Some(16_384),
            "tokens per micro-batch per GPU",
        )?,
        micro_batch_overhead_s: c.number(
            t.micro_batch_overhead_ms,
            "training.micro_batch_overhead_ms",
            fw.micro_batch_overhead_ms,
            0.0,
            f64::INFINITY,
            "milliseconds",
        )? / 1e3,
        logprob_passes,
        optimizer,
        optimizer_bytes_per_param,
        activation_reserve_gb: c.number(
            t.activation_reserve_gb,
            "training.activation_reserve_gb",
            8.0,
            0.0,
            f64::INFINITY,
            "GB",
        )?,
        mini_batches: c.count(t.mini_batches, "training.mini_batches", Some(1), "optimizer steps per RL step")?,
        model_parallel_gpus: c.count(
            t.model_parallel_gpus,
            "training.model_parallel_gpus",
            Some(1),
            "GPUs that process one sequence together",
        )?,
        logprob_micro_batch_tokens: 0,
        gradient_checkpointing: t.gradient_checkpointing.unwrap_or(fw.gradient_checkpointing),
    };
    let mut training = training;
    training.logprob_micro_batch_tokens = c.count(
        t.logprob_micro_batch_tokens,
        "training.logprob_micro_batch_tokens",
        Some(training.micro_batch_tokens),
        "tokens per micro-batch per GPU of the log-prob passes",
    )?;
    resolved.training = RawTraining {
        mfu: Some(training.mfu),
        micro_batch_tokens: Some(training.micro_batch_tokens),
        micro_batch_overhead_ms: Some(training.micro_batch_overhead_s * 1e3),
        logprob_passes: Some(passes_raw),
        optimizer: Some(training.optimizer.clone()),
        activation_reserve_gb: Some(training.activation_reserve_gb),
        mini_batches: Some(training.mini_batches),
        model_parallel_gpus: Some(training.model_parallel_gpus),
        logprob_micro_batch_tokens: Some(training.logprob_micro_batch_tokens),
        gradient_checkpointing: Some(training.gradient_checkpointing),
    };

    // Pipeline and layout.
    let kind_name =
        c.require(raw.pipeline.kind.clone(), "pipeline.type", &format!("one of {}", PIPELINE_TYPES.join(", ")))?;
    let kind = PipelineKind::parse(&kind_name).ok_or_else(|| {
        src.error(
            "pipeline.type",
            format!("unknown pipeline {kind_name:?}; expected one of {}", PIPELINE_TYPES.join(", ")),
        )
    })?;
    let col = raw.pipeline.colocated.clone().unwrap_or_default();
    let dis = raw.pipeline.disaggregated.clone().unwrap_or_default();
    let asy = raw.pipeline.async_.clone().unwrap_or_default();
    let par = raw.pipeline.partial.clone().unwrap_or_default();
    let sea = raw.pipeline.seamless.clone().unwrap_or_default();
    let total = nodes * gpus_per_node;
    let layout = match kind {
        PipelineKind::Colocated => Layout::TimeSliced,
        PipelineKind::Disaggregated | PipelineKind::Async => Layout::Split,
        PipelineKind::Seamless => Layout::Lendable,
        PipelineKind::Partial => match par.layout.as_deref().unwrap_or_else(|| {
            // Explicit workers say which layout they are: disjoint pools are the split layout.
            let both = |g: &RawWorkerGroup| {
                g.tags.as_ref().is_some_and(|t| t.iter().any(|x| x == "rollout") && t.iter().any(|x| x == "train"))
            };
            match &raw.cluster.workers {
                Some(list) if !list.iter().any(both) => "disaggregated",
                _ => "colocated",
            }
        }) {
            "colocated" => Layout::TimeSliced,
            "disaggregated" => Layout::Split,
            other => {
                return Err(src.error(
                    "pipeline.partial.layout",
                    format!("unknown layout {other:?}; expected \"colocated\" or \"disaggregated\""),
                ))
            }
        },
    };
    let (staleness_field, staleness_raw, staleness_default) = match kind {
        PipelineKind::Seamless => ("pipeline.seamless.max_staleness", sea.max_staleness, 1.0),
        _ => ("pipeline.async.max_staleness", asy.max_staleness, 4.0),
    };
    let max_staleness =
        c.number(staleness_raw, staleness_field, staleness_default, 0.0, 1000.0, "weight syncs (at most 1000)")?;
    let steps_per_sync = match kind {
        PipelineKind::Async => {
            c.count(asy.steps_per_sync, "pipeline.async.steps_per_sync", Some(1), "train steps per weight sync")?
        }
        _ => 1,
    };
    let batch_order = match asy.batch_order.as_deref().unwrap_or("version") {
        "version" => BatchOrder::Version,
        "completion" => BatchOrder::Completion,
        other => {
            return Err(src.error(
                "pipeline.async.batch_order",
                format!("unknown order {other:?}; expected \"version\" or \"completion\""),
            ))
        }
    };
    // Only `async` reads its table's batch order (checked whatever the type, so `--set pipeline.type=async` works);
    // seamless keeps the strict version order.
    let batch_order = if kind == PipelineKind::Async { batch_order } else { BatchOrder::Version };
    let lend = match sea.lend.as_deref().unwrap_or("gain") {
        "gain" => LendRule::Gain,
        "always" => LendRule::Always,
        "never" => LendRule::Never,
        other => {
            return Err(src.error(
                "pipeline.seamless.lend",
                format!("unknown rule {other:?}; expected \"gain\", \"always\" or \"never\""),
            ))
        }
    };
    let seconds = |v: Option<f64>, field: &str| {
        v.map(|v| c.number(Some(v), field, 0.0, 0.0, f64::INFINITY, "seconds")).transpose()
    };
    let (to_train, to_rollout) = if kind == PipelineKind::Seamless {
        (seconds(sea.reclaim_s, "pipeline.seamless.reclaim_s")?, seconds(sea.lend_s, "pipeline.seamless.lend_s")?)
    } else {
        (
            seconds(col.switch_to_train_s, "pipeline.colocated.switch_to_train_s")?,
            seconds(col.switch_to_rollout_s, "pipeline.colocated.switch_to_rollout_s")?,
        )
    };
    let mut pipeline = PipelineSpec {
        kind,
        weight_sync_fixed_s: c.number(
            raw.pipeline.weight_sync_fixed_s,
            "pipeline.weight_sync_fixed_s",
            fw.weight_sync_fixed_s,
            0.0,
            f64::INFINITY,
            "seconds",
        )?,
        switch_fixed_s: c.number(
            col.switch_fixed_s,
            "pipeline.colocated.switch_fixed_s",
            fw.switch_fixed_s,
            0.0,
            f64::INFINITY,
            "seconds",
        )?,
        switch_to_train_s: to_train,
        switch_to_rollout_s: to_rollout,
        rollout_gpus: None,
        layout,
        max_staleness,
        steps_per_sync,
        batch_order,
        interruptible: asy.interruptible.unwrap_or(true),
        over_provision: c.number(
            par.over_provision,
            "pipeline.partial.over_provision",
            1.5,
            1.0,
            16.0,
            "a multiple of the groups trained per step",
        )?,
        lend,
    };
    let groups = match &raw.cluster.workers {
        Some(list) => {
            let mut groups = Vec::new();
            for (i, g) in list.iter().enumerate() {
                let f = |k: &str| format!("cluster.workers[{i}].{k}");
                let name = c.require(g.name.clone(), &f("name"), "a worker name")?;
                let tags = c.require(g.tags.clone(), &f("tags"), "a list of tags such as [\"rollout\"]")?;
                if tags.is_empty() {
                    return Err(src.error(&f("tags"), "empty; give at least one tag (rollout, train, or your own)"));
                }
                let start = match g.start.as_deref() {
                    None if tags.iter().any(|t| t == "rollout") => Role::Rollout,
                    None => Role::Train,
                    Some(name @ ("rollout" | "train")) => {
                        if !tags.iter().any(|t| t == name) {
                            return Err(src.error(
                                &f("start"),
                                format!("{name:?} is not one of the group's tags {tags:?}; a worker can only hold a state it is tagged for"),
                            ));
                        }
                        if name == "rollout" {
                            Role::Rollout
                        } else {
                            Role::Train
                        }
                    }
                    Some(other) => {
                        return Err(src
                            .error(&f("start"), format!("unknown state {other:?}; expected \"rollout\" or \"train\"")))
                    }
                };
                let group_gpu = match &g.gpu {
                    None => None,
                    Some(p) => Some(gpu_preset(p).ok_or_else(|| {
                        src.error(
                            &f("gpu"),
                            format!("unknown GPU preset {p:?}; expected one of {}", GPU_PRESETS.join(", ")),
                        )
                    })?),
                };
                groups.push(WorkerGroupSpec {
                    name,
                    count: c.count(g.count, &f("count"), Some(1), "workers in this group")?,
                    tp: c.count(g.tp, &f("tp"), Some(rollout.tp), "GPUs per worker")?,
                    tags,
                    start,
                    gpu: group_gpu,
                });
            }
            groups
        }
        None => auto_layout(layout, total, gpus_per_node, rollout.tp, dis.rollout_gpus, &c, &mut pipeline)?,
    };
    if layout != Layout::TimeSliced && raw.cluster.workers.is_none() {
        resolved.pipeline.disaggregated = Some(RawDisaggregated { rollout_gpus: pipeline.rollout_gpus });
    }
    resolved.pipeline.kind = Some(kind_name);
    resolved.pipeline.weight_sync_fixed_s = Some(pipeline.weight_sync_fixed_s);
    if layout == Layout::TimeSliced {
        resolved.pipeline.colocated = Some(RawColocated {
            switch_fixed_s: Some(pipeline.switch_fixed_s),
            switch_to_train_s: pipeline.switch_to_train_s,
            switch_to_rollout_s: pipeline.switch_to_rollout_s,
        });
    }
    match kind {
        PipelineKind::Async => {
            resolved.pipeline.async_ = Some(RawAsync {
                max_staleness: Some(max_staleness),
                steps_per_sync: Some(steps_per_sync),
                batch_order: Some(
                    if batch_order == BatchOrder::Version { "version" } else { "completion" }.to_string(),
                ),
                interruptible: Some(pipeline.interruptible),
            })
        }
        PipelineKind::Partial => {
            resolved.pipeline.partial = Some(RawPartial {
                over_provision: Some(pipeline.over_provision),
                layout: Some(if layout == Layout::TimeSliced { "colocated" } else { "disaggregated" }.into()),
            })
        }
        PipelineKind::Seamless => {
            resolved.pipeline.seamless = Some(RawSeamless {
                max_staleness: Some(max_staleness),
                lend: Some(sea.lend.clone().unwrap_or_else(|| "gain".into())),
                lend_s: pipeline.switch_to_rollout_s,
                reclaim_s: pipeline.switch_to_train_s,
            })
        }
        PipelineKind::Colocated | PipelineKind::Disaggregated => {}
    }
    let cluster = Cluster::build(gpu.clone(), nodes, gpus_per_node, &groups).map_err(|e| {
        let field = if raw.cluster.workers.is_some() { "cluster.workers" } else { "cluster.nodes" };
        match e {
            PlacementError::TooManyGpus { needed, available } => src.error(
                field,
                format!("the workers need {needed} GPUs but the cluster has {available} ({nodes} nodes × {gpus_per_node})"),
            ),
            PlacementError::StraddlesNodes { worker, tp, gpus_per_node } => src.error(
                field,
                format!("worker `{worker}` has tp={tp}, which must be a multiple of gpus_per_node ({gpus_per_node}) to span whole nodes"),
            ),
        }
    })?;
    check_tags(kind, layout, &cluster, &c, raw.cluster.workers.is_some())?;
    let train_gpus: u32 = cluster.with_tag("train").map(|w| w.gpu_count()).sum();
    let per_rank = training.model_parallel_gpus;
    if train_gpus > 0 && (per_rank > train_gpus || !train_gpus.is_multiple_of(per_rank)) {
        return Err(src.error(
            "training.model_parallel_gpus",
            format!(
                "{per_rank} GPUs per sequence must divide the {train_gpus} train GPUs (data-parallel ranks = train GPUs / this)"
            ),
        ));
    }
    check_memory(&model, &gpu, &cluster, &rollout, &training, &c, raw.cluster.workers.is_some())?;

    let workload = validate_workload(&raw.workload, &c, &mut resolved.workload)?;
    let samples_per_step = workload.prompts_per_step as u64 * workload.samples_per_prompt as u64;
    if training.mini_batches as u64 > samples_per_step {
        return Err(src.error(
            "training.mini_batches",
            format!(
                "{} optimizer steps per RL step is more than the {samples_per_step} samples a step trains on",
                training.mini_batches
            ),
        ));
    }
    if workload.dynamic_sampling.is_some() && !matches!(kind, PipelineKind::Colocated | PipelineKind::Disaggregated) {
        return Err(src.error(
            "workload.dynamic_sampling",
            format!(
                "dynamic sampling is modelled for the synchronous pipelines (colocated, disaggregated), whose steps generate rounds until enough groups are kept; {kind} streams groups instead — remove it or pick one of those"
            ),
        ));
    }
    for w in cluster.with_tag("rollout") {
        let cap = rollout.kv_capacity_tokens.map_or_else(
            || memory::kv_capacity_tokens(&model, &w.gpu, w.tp, rollout.gpu_memory_utilization),
            |v| v as i64,
        );
        let longest = workload.max_context_tokens as i64 + 1;
        if cap < longest {
            return Err(src.error(
                "workload.max_response_tokens",
                format!(
                    "one sequence can reach {longest} tokens (max_prompt_tokens {} + max_response_tokens {}{} + 1) but worker `{}` (tp={}) has KV cache for only {cap}; raise rollout.tp or lower the caps",
                    workload.max_prompt_tokens,
                    workload.max_response_tokens,
                    if workload.is_multi_turn() { " + tool outputs, up to max_context_tokens" } else { "" },
                    w.name,
                    w.tp
                ),
            ));
        }
    }

    let profile = match &raw.hardware.profile {
        Some(p) => {
            let full = src.file.parent().unwrap_or(Path::new(".")).join(p);
            let profile = crate::profile::HardwareProfile::load(&full).map_err(|e| src.error("hardware.profile", e))?;
            let abs = std::fs::canonicalize(&full).unwrap_or(full);
            resolved.hardware.profile = Some(abs.to_string_lossy().into_owned());
            Some(profile)
        }
        None => None,
    };
    let e = &raw.exec;
    let exec = ExecSpec {
        learning_rate: c.positive(e.learning_rate, "exec.learning_rate", Some(3e-3), "AdamW learning rate")?,
        lengths: match e.lengths.as_deref().unwrap_or("trace") {
            "trace" => ExecLengths::Trace,
            "natural" => ExecLengths::Natural,
            other => {
                return Err(
                    src.error("exec.lengths", format!("unknown mode {other:?}; expected \"trace\" or \"natural\""))
                )
            }
        },
        eos_token: e.eos_token.unwrap_or(0),
        kl_coef: c.number(e.kl_coef, "exec.kl_coef", 0.0, 0.0, f64::INFINITY, "KL penalty coefficient")?,
        clip_ratio: c.number(e.clip_ratio, "exec.clip_ratio", 0.2, 0.0, 1.0, "PPO clip range")?,
        task: match e.task.as_deref().unwrap_or("even") {
            "even" => "even".to_string(),
            other => return Err(src.error("exec.task", format!("unknown task {other:?}; expected \"even\""))),
        },
    };
    if exec.eos_token >= model.vocab {
        return Err(
            src.error("exec.eos_token", format!("{} is outside the vocabulary of {}", exec.eos_token, model.vocab))
        );
    }
    resolved.exec = RawExec {
        learning_rate: Some(exec.learning_rate),
        lengths: Some(if exec.lengths == ExecLengths::Trace { "trace" } else { "natural" }.into()),
        eos_token: Some(exec.eos_token),
        kl_coef: Some(exec.kl_coef),
        clip_ratio: Some(exec.clip_ratio),
        task: Some(exec.task.clone()),
    };

    let failures = match &raw.failures {
        None => None,
        Some(f) => {
            let recovery_s =
                c.number(f.recovery_s, "failures.recovery_s", 600.0, 0.0, 1e7, "seconds a failed worker is down")?;
            let mtbf_gpu_hours = f
                .mtbf_gpu_hours
                .map(|v| c.positive(Some(v), "failures.mtbf_gpu_hours", None, "mean hours between failures of one GPU"))
                .transpose()?;
            let mut events = Vec::new();
            for (i, e) in f.events.iter().enumerate() {
                let field = format!("failures.events[{i}]");
                let name = c.require(e.worker.clone(), &format!("{field}.worker"), "a worker name")?;
                let w = cluster.workers.iter().find(|w| w.name == name).ok_or_else(|| {
                    let names: Vec<&str> = cluster.workers.iter().map(|w| w.name.as_str()).collect();
                    src.error(
                        &format!("{field}.worker"),
                        format!("no worker named {name:?}; the workers are {}", names.join(", ")),
                    )
                })?;
                let at = c.require(e.at_s, &format!("{field}.at_s"), "seconds after the start")?;
                let at = c.number(Some(at), &format!("{field}.at_s"), 0.0, 0.0, 1e9, "seconds after the start")?;
                events.push((w.id, at));
            }
            events.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            if let Some(r) = resolved.failures.as_mut() {
                r.recovery_s = Some(recovery_s);
            }
            Some(FailureSpec { recovery_s, mtbf_gpu_hours, events })
        }
    };

    if let Some(p) = &raw.published {
        validate_published(p, &c)?;
    }

    Ok(Scenario {
        framework,
        failures,
        name,
        seed,
        file: src.file.to_path_buf(),
        model,
        cluster,
        workload,
        training,
        rollout,
        pipeline,
        profile,
        exec,
        resolved,
    })
}

/// The `[published]` table is data for `rlsim fidelity`; it is checked here so a typo fails `check`, not the suite.
fn validate_published(p: &RawPublished, c: &Check) -> Result<(), ScenarioError> {
    let secs = |v: Option<f64>, field: &str| -> Result<(), ScenarioError> {
        if let Some(v) = v {
            c.positive(Some(v), field, None, "published seconds")?;
        }
        Ok(())
    };
    secs(p.step_s, "published.step_s")?;
    for (i, ph) in p.phases.iter().enumerate() {
        let f = |k: &str| format!("published.phases[{i}].{k}");
        c.require(ph.name.clone(), &f("name"), "the phase's published name")?;
        let s = c.require(ph.seconds, &f("seconds"), "published seconds")?;
        secs(Some(s), &f("seconds"))?;
        let cols = c.require(ph.sim.clone(), &f("sim"), "a list of steps.csv columns")?;
        for col in &cols {
            if !crate::report::PHASE_COLUMNS.contains(&col.as_str()) {
                return Err(c.src.error(
                    &f("sim"),
                    format!("unknown column {col:?}; expected some of {}", crate::report::PHASE_COLUMNS.join(", ")),
                ));
            }
        }
        if let Some(t) = ph.tolerance {
            c.number(Some(t), &f("tolerance"), 0.0, 0.0, 10.0, "a relative error")?;
        }
    }
    if p.speedup.is_some() != p.speedup_over.is_some() {
        return Err(c.src.error("published.speedup", "give `speedup` and `speedup_over` together"));
    }
    if let Some(v) = p.speedup {
        c.positive(Some(v), "published.speedup", None, "a step-time ratio")?;
    }
    if let Some(n) = p.steps_per_published_step {
        c.count(Some(n), "published.steps_per_published_step", None, "train steps per published step")?;
    }
    for (v, f) in [
        (p.step_tolerance, "published.step_tolerance"),
        (p.phase_tolerance, "published.phase_tolerance"),
        (p.speedup_tolerance, "published.speedup_tolerance"),
    ] {
        if let Some(v) = v {
            c.number(Some(v), f, 0.0, 0.0, 10.0, "a relative error")?;
        }
    }
    Ok(())
}

fn validate_model(m: &RawModel, c: &Check) -> Result<ModelSpec, ScenarioError> {
    let base = match &m.preset {
        Some(p) => Some(model_preset(p).ok_or_else(|| {
            c.src.error(
                "model.preset",
                format!(
                    "unknown model preset {p:?}; expected one of {} (or give explicit fields)",
                    MODEL_PRESETS.join(", ")
                ),
            )
        })?),
        None => None,
    };
    let explicit = "a preset (model.preset) or this field";
    let params_b = c.positive(m.params_b.or(base.as_ref().map(|b| b.params_b)), "model.params_b", None, explicit)?;
    let layers = c.count(m.layers.or(base.as_ref().map(|b| b.layers)), "model.layers", None, explicit)?;
    let hidden = c.count(m.hidden.or(base.as_ref().map(|b| b.hidden)), "model.hidden", None, explicit)?;
    let heads = c.count(m.heads.or(base.as_ref().map(|b| b.heads)), "model.heads", None, explicit)?;
    let kv_heads =
        c.count(m.kv_heads.or(base.as_ref().map(|b| b.kv_heads)), "model.kv_heads", Some(heads), "key/value heads")?;
    let head_dim = c.count(
        m.head_dim.or(base.as_ref().map(|b| b.head_dim)),
        "model.head_dim",
        Some(hidden / heads.max(1)),
        "dimension per head",
    )?;
    let vocab = c.count(m.vocab.or(base.as_ref().map(|b| b.vocab)), "model.vocab", None, explicit)?;
    let active_params_b = c.positive(
        m.active_params_b.or(base.as_ref().map(|b| b.active_params_b)),
        "model.active_params_b",
        Some(params_b),
        "billions of parameters active per token",
    )?;
    if active_params_b > params_b {
        return Err(c.src.error("model.active_params_b", format!("{active_params_b} exceeds params_b {params_b}")));
    }
    if kv_heads > heads || heads % kv_heads != 0 {
        return Err(c.src.error("model.kv_heads", format!("{kv_heads} must divide heads ({heads})")));
    }
    let experts = m.experts.or(base.as_ref().map(|b| b.experts)).unwrap_or(0);
    let experts_per_token = m.experts_per_token.or(base.as_ref().map(|b| b.experts_per_token)).unwrap_or(0);
    if (experts == 0) != (experts_per_token == 0) || experts_per_token > experts {
        return Err(c.src.error(
            if m.experts_per_token.is_some() { "model.experts_per_token" } else { "model.experts" },
            format!("expected both experts and experts_per_token (k ≤ E) or neither, got E = {experts}, k = {experts_per_token}"),
        ));
    }
    if experts > 0 && active_params_b >= params_b {
        return Err(c.src.error(
            "model.active_params_b",
            format!("an MoE model ({experts} experts) activates fewer parameters than it has; got {active_params_b} of {params_b}"),
        ));
    }
    let spec = |name: String| ModelSpec {
        name,
        params_b,
        active_params_b,
        layers,
        hidden,
        heads,
        kv_heads,
        head_dim,
        vocab,
        experts,
        experts_per_token,
    };
    // "(modified)" only when an explicit field changes the preset (a resolved file repeats the preset's values).
    let name = match &base {
        Some(b) if *b == spec(b.name.clone()) => b.name.clone(),
        Some(b) => format!("{} (modified)", b.name),
        None => "custom".to_string(),
    };
    Ok(spec(name))
}

fn validate_gpu(cl: &RawCluster, c: &Check) -> Result<GpuSpec, ScenarioError> {
    let base = match &cl.gpu {
        Some(g) => Some(gpu_preset(g).ok_or_else(|| {
            c.src.error(
                "cluster.gpu",
                format!(
                    "unknown GPU preset {g:?}; expected one of {} (or give explicit fields)",
                    GPU_PRESETS.join(", ")
                ),
            )
        })?),
        None => None,
    };
    let explicit = "a preset (cluster.gpu) or this field";
    let b = base.as_ref();
    Ok(GpuSpec {
        name: b.map(|b| b.name.clone()).unwrap_or_else(|| "custom".into()),
        bf16_tflops: c.positive(cl.bf16_tflops.or(b.map(|b| b.bf16_tflops)), "cluster.bf16_tflops", None, explicit)?,
        hbm_gbytes_per_s: c.positive(
            cl.hbm_gbytes_per_s.or(b.map(|b| b.hbm_gbytes_per_s)),
            "cluster.hbm_gbytes_per_s",
            None,
            explicit,
        )?,
        memory_gb: c.positive(cl.memory_gb.or(b.map(|b| b.memory_gb)), "cluster.memory_gb", None, explicit)?,
        nvlink_gbytes_per_s: c.positive(
            cl.nvlink_gbytes_per_s.or(b.map(|b| b.nvlink_gbytes_per_s)),
            "cluster.nvlink_gbytes_per_s",
            None,
            explicit,
        )?,
        pcie_gbytes_per_s: c.positive(
            cl.pcie_gbytes_per_s.or(b.map(|b| b.pcie_gbytes_per_s)),
            "cluster.pcie_gbytes_per_s",
            None,
            explicit,
        )?,
        network_gbits_per_s: c.positive(
            cl.network_gbits_per_s.or(b.map(|b| b.network_gbits_per_s)),
            "cluster.network_gbits_per_s",
            None,
            explicit,
        )?,
        price_per_gpu_hour: c.number(
            cl.price_per_gpu_hour.or(b.map(|b| b.price_per_gpu_hour)),
            "cluster.price_per_gpu_hour",
            0.0,
            0.0,
            f64::INFINITY,
            "US dollars per GPU-hour",
        )?,
    })
}

/// The layout a pipeline uses when the scenario lists no workers.
fn auto_layout(
    layout: Layout,
    total: u32,
    gpus_per_node: u32,
    tp: u32,
    rollout_gpus: Option<u32>,
    c: &Check,
    pipeline: &mut PipelineSpec,
) -> Result<Vec<WorkerGroupSpec>, ScenarioError> {
    let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    if tp > gpus_per_node || !gpus_per_node.is_multiple_of(tp) {
        return Err(c.src.error(
            "rollout.tp",
            format!("{tp} must divide gpus_per_node ({gpus_per_node}) for the automatic layout"),
        ));
    }
    match layout {
        Layout::TimeSliced => Ok(vec![WorkerGroupSpec {
            name: "hybrid".into(),
            count: total / tp,
            tp,
            tags: tags(&["rollout", "train"]),
            start: Role::Rollout,
            gpu: None,
        }]),
        Layout::Split | Layout::Lendable => {
            // Lendable train workers also carry `rollout` (so they can be lent) but start holding `train`.
            let train_tags = if layout == Layout::Lendable { tags(&["train", "rollout"]) } else { tags(&["train"]) };
            let field = "pipeline.disaggregated.rollout_gpus";
            // Default: half the GPUs (whole engines) generate, the rest train.
            let rollout = rollout_gpus.unwrap_or(((total / 2) / tp).max(1) * tp);
            if rollout == 0 || rollout >= total {
                return Err(c.src.error(
                    field,
                    format!("expected between 1 and {} GPUs (the rest train), got {rollout}", total.saturating_sub(1)),
                ));
            }
            if !rollout.is_multiple_of(tp) {
                return Err(c.src.error(field, format!("{rollout} is not a multiple of rollout.tp ({tp})")));
            }
            pipeline.rollout_gpus = Some(rollout);
            let train = total - rollout;
            if layout == Layout::Lendable {
                // Lent train workers run rollout engines of rollout.tp GPUs each, so the train pool is cut the same
                // way (training still uses all of them together).
                return Ok(vec![
                    WorkerGroupSpec {
                        name: "rollout".into(),
                        count: rollout / tp,
                        tp,
                        tags: tags(&["rollout"]),
                        start: Role::Rollout,
                        gpu: None,
                    },
                    WorkerGroupSpec {
                        name: "train".into(),
                        count: train / tp,
                        tp,
                        tags: train_tags,
                        start: Role::Train,
                        gpu: None,
                    },
                ]);
            }
            // Training shards: whole nodes where possible, then the remainder as one smaller group.
            let mut groups = vec![WorkerGroupSpec {
                name: "rollout".into(),
                count: rollout / tp,
                tp,
                tags: tags(&["rollout"]),
                start: Role::Rollout,
                gpu: None,
            }];
            let first_free_in_node = rollout % gpus_per_node;
            let mut left = train;
            let mut i = 0;
            if first_free_in_node != 0 {
                let n = (gpus_per_node - first_free_in_node).min(left);
                groups.push(WorkerGroupSpec {
                    name: format!("train{i}"),
                    count: 1,
                    tp: n,
                    tags: train_tags.clone(),
                    start: Role::Train,
                    gpu: None,
                });
                left -= n;
                i += 1;
            }
            while left > 0 {
                let n = left.min(gpus_per_node);
                groups.push(WorkerGroupSpec {
                    name: format!("train{i}"),
                    count: 1,
                    tp: n,
                    tags: train_tags.clone(),
                    start: Role::Train,
                    gpu: None,
                });
                left -= n;
                i += 1;
            }
            Ok(groups)
        }
    }
}

fn check_tags(
    kind: PipelineKind,
    layout: Layout,
    cluster: &Cluster,
    c: &Check,
    explicit: bool,
) -> Result<(), ScenarioError> {
    let field = if explicit { "cluster.workers" } else { "pipeline.type" };
    for tag in ["rollout", "train"] {
        if cluster.with_tag(tag).next().is_none() {
            return Err(c
                .src
                .error(field, format!("no worker has the tag `{tag}`, which the {} pipeline needs", kind.name())));
        }
    }
    let both = |w: &&crate::cluster::Worker| w.has_tag("rollout") && w.has_tag("train");
    match layout {
        Layout::TimeSliced => {
            if let Some(w) = cluster.workers.iter().find(|w| w.has_tag("rollout") != w.has_tag("train")) {
                let (has, lacks) = if w.has_tag("rollout") { ("rollout", "train") } else { ("train", "rollout") };
                return Err(c.src.error(
                    field,
                    format!("worker `{}` has `{has}` but not `{lacks}`; the {} pipeline on this layout time-slices every worker between rollout and training", w.name, kind.name()),
                ));
            }
            if let Some(w) = cluster.workers.iter().find(|w| w.start != Role::Rollout) {
                return Err(c.src.error(
                    field,
                    format!("worker `{}` starts as `train`; time-sliced workers start as `rollout`", w.name),
                ));
            }
        }
        Layout::Split => {
            if let Some(w) = cluster.workers.iter().find(both) {
                return Err(c.src.error(
                    field,
                    format!(
                        "worker `{}` has both `rollout` and `train`; the {} pipeline needs separate pools",
                        w.name,
                        kind.name()
                    ),
                ));
            }
        }
        Layout::Lendable => {
            if !cluster.workers.iter().any(|w| w.start == Role::Rollout) {
                return Err(c.src.error(field, "no worker starts as `rollout`; seamless needs a rollout pool"));
            }
            if let Some(w) = cluster.workers.iter().find(|w| w.start == Role::Train && !w.has_tag("rollout")) {
                return Err(c.src.error(
                    field,
                    format!("train worker `{}` lacks the `rollout` tag, so it could never be lent to rollout (tag it [\"train\", \"rollout\"] with start = \"train\", or use disaggregated)", w.name),
                ));
            }
            if let Some(w) = cluster.workers.iter().find(|w| w.start == Role::Rollout && w.has_tag("train")) {
                return Err(c.src.error(
                    field,
                    format!("worker `{}` starts as `rollout` but carries `train`; seamless trains on the workers that start as `train`", w.name),
                ));
            }
        }
    }
    Ok(())
}

fn check_memory(
    model: &ModelSpec,
    gpu: &GpuSpec,
    cluster: &Cluster,
    rollout: &RolloutSpec,
    training: &TrainingSpec,
    c: &Check,
    explicit: bool,
) -> Result<(), ScenarioError> {
    for w in cluster.with_tag("rollout") {
        let weights = memory::rollout_weight_bytes_per_gpu(model, w.tp);
        let gpu = &w.gpu;
        let usable = memory::rollout_usable_bytes_per_gpu(gpu, rollout.gpu_memory_utilization);
        if weights >= usable {
            let field = if explicit { format!("cluster.workers[{}].tp", w.group) } else { "rollout.tp".into() };
            return Err(c.src.error(
                &field,
                format!(
                    "{} needs {:.1} GB of weights per GPU on worker `{}` (tp={}) but a {} offers {:.1} GB ({} GB × gpu_memory_utilization {}): short by {:.1} GB before any KV cache; raise the tensor-parallel degree",
                    model.name, weights / 1e9, w.name, w.tp, gpu.name, usable / 1e9, gpu.memory_gb, rollout.gpu_memory_utilization, (weights - usable) / 1e9
                ),
            ));
        }
    }
    let train_gpus: u32 = cluster.with_tag("train").map(|w| w.gpu_count()).sum();
    let need = memory::train_bytes_per_gpu(
        model,
        train_gpus,
        training.optimizer_bytes_per_param,
        training.activation_reserve_gb,
    );
    // Fully sharded training: the smallest GPU of the train pool must hold its shard.
    let gpu =
        cluster.with_tag("train").map(|w| &w.gpu).min_by(|a, b| a.memory_gb.total_cmp(&b.memory_gb)).unwrap_or(gpu);
    let have = gpu.memory_gb * 1e9;
    if need > have {
        let field = if explicit { "cluster.workers" } else { "cluster.nodes" };
        return Err(c.src.error(
            field,
            format!(
                "training {} on {train_gpus} GPUs (fully sharded) needs {:.2} GB per GPU (weights+grads+{} state, plus {} GB activations) but a {} has {:.2} GB: short by {:.2} GB; add train GPUs",
                model.name, need / 1e9, training.optimizer, training.activation_reserve_gb, gpu.name, have / 1e9, (need - have) / 1e9
            ),
        ));
    }
    Ok(())
}

fn validate_dist(d: &RawDist, field: &str, c: &Check) -> Result<LengthDist, ScenarioError> {
    match d {
        RawDist::Constant { tokens } => {
            if *tokens == 0 {
                return Err(c.src.error(&format!("{field}.tokens"), "must be at least 1, got 0"));
            }
            Ok(LengthDist::Constant(*tokens))
        }
        RawDist::Lognormal { median, sigma } => {
            let median = c.positive(Some(*median), &format!("{field}.median"), None, "median tokens")?;
            let sigma =
                c.positive(Some(*sigma), &format!("{field}.sigma"), None, "standard deviation of ln(tokens)")?;
            Ok(LengthDist::LogNormal { median, sigma })
        }
        RawDist::Quantiles { points } => {
            let f = format!("{field}.points");
            if points.len() < 2 {
                return Err(c.src.error(&f, "expected at least two [quantile, tokens] points, from quantile 0 to 1"));
            }
            let first = points[0][0];
            let last = points[points.len() - 1][0];
            if first != 0.0 || last != 1.0 {
                return Err(c.src.error(&f, format!("quantiles must start at 0 and end at 1, got {first} … {last}")));
            }
            for (i, w) in points.windows(2).enumerate() {
                if w[1][0] <= w[0][0] || w[1][1] < w[0][1] {
                    return Err(c.src.error(
                        &format!("{f}[{}]", i + 1),
                        format!(
                            "points must increase in quantile and not decrease in tokens: {:?} after {:?}",
                            w[1], w[0]
                        ),
                    ));
                }
            }
            if let Some((i, p)) = points.iter().enumerate().find(|(_, p)| p[1] < 1.0 || !p[1].is_finite()) {
                return Err(c.src.error(&format!("{f}[{i}]"), format!("tokens must be at least 1, got {}", p[1])));
            }
            Ok(LengthDist::Quantiles(points.iter().map(|p| (p[0], p[1])).collect()))
        }
    }
}

fn validate_workload(w: &RawWorkload, c: &Check, resolved: &mut RawWorkload) -> Result<WorkloadSpec, ScenarioError> {
    let prompts_per_step =
        c.count(w.prompts_per_step, "workload.prompts_per_step", None, "prompts (GRPO groups) per RL step")?;
    let samples_per_prompt =
        c.count(w.samples_per_prompt, "workload.samples_per_prompt", None, "responses per prompt (GRPO group size)")?;
    let steps = c.count(w.steps, "workload.steps", None, "RL steps to simulate")?;
    let max_response_tokens =
        c.count(w.max_response_tokens, "workload.max_response_tokens", None, "cap on response length")?;
    let max_prompt_tokens =
        c.count(w.max_prompt_tokens, "workload.max_prompt_tokens", Some(4096), "cap on prompt length")?;
    resolved.max_prompt_tokens = Some(max_prompt_tokens);
    let lengths = match (&w.trace, &w.response_tokens, &w.prompt_tokens) {
        (Some(t), None, None) => {
            let path = c.require(t.path.clone(), "workload.trace.path", "a CSV trace path relative to the scenario file")?;
            let mode = match t.mode.as_deref().unwrap_or("replay") {
                "replay" => TraceMode::Replay,
                "sample" => TraceMode::Sample,
                other => return Err(c.src.error("workload.trace.mode", format!("unknown mode {other:?}; expected \"replay\" or \"sample\""))),
            };
            let base = c.src.file.parent().unwrap_or(Path::new("."));
            let full = base.join(&path);
            let trace = read_csv_trace(&full).map_err(|e: TraceError| c.src.error("workload.trace.path", e.to_string()))?;
            let abs = std::fs::canonicalize(&full).unwrap_or(full);
            resolved.trace = Some(RawTrace {
                path: Some(abs.to_string_lossy().into_owned()),
                mode: Some(if mode == TraceMode::Replay { "replay" } else { "sample" }.into()),
            });
            LengthSource::Trace { trace: Arc::new(trace), mode }
        }
        (Some(_), _, _) => {
            return Err(c.src.error("workload.trace", "give either a trace or response_tokens/prompt_tokens distributions, not both"))
        }
        (None, Some(r), Some(p)) => LengthSource::Distributions {
            response: validate_dist(r, "workload.response_tokens", c)?,
            prompt: validate_dist(p, "workload.prompt_tokens", c)?,
        },
        (None, None, _) => {
            return Err(c.src.error("workload.response_tokens", "missing; expected a length distribution (kind = \"lognormal\" | \"quantiles\" | \"constant\") or a [workload.trace]"))
        }
        (None, Some(_), None) => {
            return Err(c.src.error("workload.prompt_tokens", "missing; expected a length distribution (kind = \"lognormal\" | \"quantiles\" | \"constant\")"))
        }
    };
    let response_growth_per_step = c.number(
        w.response_growth_per_step,
        "workload.response_growth_per_step",
        0.0,
        -0.99,
        10.0,
        "a fractional growth of response lengths per step",
    )?;
    let reward_s = w.reward_s.as_ref().map(|r| validate_seconds(r, "workload.reward_s", c)).transpose()?;
    let reward_batch_s =
        c.number(w.reward_batch_s, "workload.reward_batch_s", 0.0, 0.0, 86400.0, "seconds per batch")?;
    let multi_turn = match &w.multi_turn {
        None => None,
        Some(m) => {
            if matches!(&lengths, LengthSource::Trace { trace, .. } if trace.is_multi_turn()) {
                return Err(c.src.error(
                    "workload.multi_turn",
                    "the trace already has turns; give either a multi-turn trace or [workload.multi_turn]",
                ));
            }
            Some(MultiTurnSpec {
                turns: validate_dist(&m.turns, "workload.multi_turn.turns", c)?,
                tool_latency_s: validate_seconds(&m.tool_latency_s, "workload.multi_turn.tool_latency_s", c)?,
                tool_tokens: validate_dist(&m.tool_tokens, "workload.multi_turn.tool_tokens", c)?,
            })
        }
    };
    let max_context_tokens = c.count(
        w.max_context_tokens,
        "workload.max_context_tokens",
        Some(max_prompt_tokens + max_response_tokens),
        "tokens of context a sequence may reach",
    )?;
    if max_context_tokens < max_prompt_tokens + max_response_tokens {
        return Err(c.src.error(
            "workload.max_context_tokens",
            format!(
                "{max_context_tokens} is below max_prompt_tokens + max_response_tokens ({})",
                max_prompt_tokens + max_response_tokens
            ),
        ));
    }
    let dynamic_sampling = match &w.dynamic_sampling {
        None => None,
        Some(d) => {
            let keep = c.require(d.keep_fraction, "workload.dynamic_sampling.keep_fraction", "a share in [0.01, 1]")?;
            // Below 1 % a step would need over a hundred rounds: no real run filters that hard, and the run would
            // create groups without end.
            if !(0.01..=1.0).contains(&keep) {
                return Err(c.src.error(
                    "workload.dynamic_sampling.keep_fraction",
                    format!("expected a share of groups in [0.01, 1], got {keep}"),
                ));
            }
            let spec = crate::workload::DynamicSampling {
                keep_fraction: keep,
                prompts_per_round: {
                    let n = c.count(
                        d.prompts_per_round,
                        "workload.dynamic_sampling.prompts_per_round",
                        Some(prompts_per_step),
                        "groups generated per round",
                    )?;
                    if n as u64 > 64 * prompts_per_step as u64 {
                        return Err(c.src.error(
                            "workload.dynamic_sampling.prompts_per_round",
                            format!("{n} groups per round is over 64 × prompts_per_step ({prompts_per_step}); verl's gen_batch_size is a small multiple of the train batch"),
                        ));
                    }
                    n
                },
                max_rounds: c.count(
                    d.max_rounds,
                    "workload.dynamic_sampling.max_rounds",
                    Some(10),
                    "rounds per step at most",
                )?,
            };
            resolved.dynamic_sampling = Some(RawDynamicSampling {
                keep_fraction: Some(spec.keep_fraction),
                prompts_per_round: Some(spec.prompts_per_round),
                max_rounds: Some(spec.max_rounds),
            });
            Some(spec)
        }
    };
    resolved.max_context_tokens = Some(max_context_tokens);
    resolved.response_growth_per_step = Some(response_growth_per_step);
    resolved.reward_batch_s = Some(reward_batch_s);
    Ok(WorkloadSpec {
        prompts_per_step,
        samples_per_prompt,
        steps,
        max_response_tokens,
        max_prompt_tokens,
        lengths,
        response_growth_per_step,
        reward_s,
        reward_batch_s,
        multi_turn,
        max_context_tokens,
        dynamic_sampling,
    })
}

fn validate_seconds(r: &RawSeconds, field: &str, c: &Check) -> Result<SecondsDist, ScenarioError> {
    Ok(match r {
        RawSeconds::Constant { seconds } => SecondsDist::Constant(c.number(
            Some(*seconds),
            &format!("{field}.seconds"),
            0.0,
            0.0,
            86400.0,
            "seconds",
        )?),
        RawSeconds::Lognormal { median, sigma } => SecondsDist::LogNormal {
            median: c.positive(Some(*median), &format!("{field}.median"), None, "median seconds")?,
            sigma: c.positive(Some(*sigma), &format!("{field}.sigma"), None, "log-space standard deviation")?,
        },
    })
}

impl fmt::Display for PipelineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name = \"t\"\n\n[cluster]\nnodes = 1\n\n[[cluster.workers]]\nname = \"a\"\ncount = 2\n\n[[cluster.workers]]\nname = \"b\"\ntags = [\"train\"]\n";

    #[test]
    fn overrides_set_nested_fields_array_entries_and_new_tables() {
        let file = Path::new("t.toml");
        let sets = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let out = apply_overrides(
            TEXT,
            file,
            &sets(&[
                "cluster.nodes=4",
                "cluster.workers[1].count=3",
                "cluster.workers.0.tp=2",
                "pipeline.type=colocated",
                "seed=9",
            ]),
        )
        .unwrap();
        let v: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(v["cluster"]["nodes"].as_integer(), Some(4));
        assert_eq!(v["cluster"]["workers"][1]["count"].as_integer(), Some(3));
        assert_eq!(v["cluster"]["workers"][0]["tp"].as_integer(), Some(2));
        assert_eq!(v["pipeline"]["type"].as_str(), Some("colocated"));
        assert_eq!(v["seed"].as_integer(), Some(9));
        // Replacing a value keeps the file's lines where they were, so errors still point at the user's lines.
        let replaced = apply_overrides(TEXT, file, &sets(&["cluster.nodes=4"])).unwrap();
        assert_eq!(replaced.lines().count(), TEXT.lines().count());
        assert_eq!(replaced.lines().nth(3), Some("nodes = 4"));
        let err = apply_overrides(TEXT, file, &sets(&["cluster.workers[5].count=1"])).unwrap_err().to_string();
        assert!(err.contains("`workers` has 2 entries; index 5 is out of range"), "{err}");
        let err = apply_overrides(TEXT, file, &sets(&["name.x=1"])).unwrap_err().to_string();
        assert!(err.contains("`name` is a value, not a table"), "{err}");
    }

    #[test]
    fn fields_are_located_through_tables_arrays_and_inline_tables() {
        let text = "[cluster]\nnodes = 1\n\n[[cluster.workers]]\nname = \"a\"\n\n[[cluster.workers]]\nname = \"b\"\ntp = 4\n\n[workload]\nresponse_tokens = { kind = \"lognormal\", median = 5 }\n";
        let src = Source::new(Path::new("t.toml"), text, false);
        assert_eq!(src.locate("cluster.nodes"), Some((2, 1)));
        assert_eq!(src.locate("cluster.workers[1].tp"), Some((9, 1)));
        assert_eq!(src.locate("workload.response_tokens.median"), Some((12, 41)));
        // A missing field points at its nearest ancestor in the file.
        assert_eq!(src.locate("workload.steps"), Some((11, 2)));
        assert_eq!(src.locate("training.mfu"), None);
        assert_eq!(
            split_path("a.b[2].c"),
            vec![PathSeg::Key("a".into()), PathSeg::Key("b".into()), PathSeg::Index(2), PathSeg::Key("c".into())]
        );
    }
}
