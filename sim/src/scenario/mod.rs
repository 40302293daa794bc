//! Scenario files: the raw TOML shape (serde, `deny_unknown_fields`), `--set` overrides, and validation into a
//! `Scenario` whose errors name the file, line, column and field.
//!
//! One module per concern: `raw` (the file's serde types), `overrides` (`--set`), `locate` (where a field is in the
//! text, and the error type), `check` (the small field checkers), `validate` (one file per section), `schema`.

mod check;
mod locate;
mod overrides;
mod raw;
mod schema;
#[cfg(test)]
mod tests;
mod validate;

pub use locate::{ScenarioError, SYNTAX};
pub use overrides::apply_overrides;
pub use raw::*;
pub use schema::json_schema;
pub use validate::{DEFAULT_MAX_TRAJECTORIES, DEFAULT_MAX_TRAJECTORIES_PER_STEP};

use crate::cluster::Cluster;
use crate::model::ModelSpec;
use crate::workload::WorkloadSpec;
use locate::Source;
use std::fmt;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------------------------
// Validated shape.

/// Validated `[failures]`.
#[derive(Clone, Debug, PartialEq)]
pub struct FailureSpec {
    pub recovery_s: f64,
    pub mtbf_gpu_hours: Option<f64>,
    /// (worker, seconds after the start), in time order.
    pub events: Vec<(crate::cluster::WorkerId, f64)>,
}

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
    /// Of those, the GPUs that split each layer's matmuls (Megatron tensor parallelism), all-reducing its
    /// activations; divides `model_parallel_gpus`.
    pub tensor_parallel: u32,
    /// GPUs an MoE layer's experts are spread over (Megatron expert parallelism), exchanging each token's routed
    /// copies by all-to-all; 1 for a dense model.
    pub expert_parallel: u32,
    /// Of `model_parallel_gpus`, the pipeline stages (Megatron pipeline parallelism): with `tensor_parallel` they
    /// split the parameters (and so the gradients a GPU all-reduces); `tensor_parallel` × this divides
    /// `model_parallel_gpus` (the rest is context or Ulysses sequence parallelism, which replicates them).
    pub pipeline_parallel: u32,
    pub logprob_micro_batch_tokens: u32,
    pub gradient_checkpointing: bool,
    /// GPUs one copy of the training state is sharded over (verl's `fsdp_size`, hybrid sharding); 0: all train GPUs.
    /// A GPU holds, and an offloading trainer moves, 1/this of it.
    pub fsdp_size: u32,
}

impl TrainingSpec {
    /// GPUs one copy of the training state is sharded over, of `train_gpus`: `fsdp_size` (hybrid sharding) or all
    /// of them. A GPU holds, and an offloading trainer moves, 1/this of the state.
    pub fn shard_gpus(&self, train_gpus: u32) -> u32 {
        match self.fsdp_size {
            0 => train_gpus,
            s => s.min(train_gpus.max(1)),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RolloutSpec {
    pub tp: u32,
    pub gpu_memory_utilization: f64,
    pub max_num_seqs: u32,
    pub hbm_efficiency: f64,
    /// Achieved share of peak HBM bandwidth reading the KV cache in decode attention.
    pub kv_read_efficiency: f64,
    pub decode_compute_efficiency: f64,
    pub prefill_mfu: f64,
    pub iteration_overhead_s: f64,
    pub tp_allreduce_s: f64,
    /// Latency of one all-reduce of an engine spanning nodes, seconds.
    pub tp_allreduce_internode_s: f64,
    /// Host time per running sequence per iteration, seconds.
    pub seq_overhead_s: f64,
    /// Launch cost per layer per iteration (eager or CUDA-graph figure of the framework), seconds.
    pub layer_launch_s: f64,
    pub prefix_caching: bool,
    /// Overrides the KV-cache capacity the memory formula gives each engine (tokens).
    pub kv_capacity_tokens: Option<u64>,
    /// Speculative decoding: draft tokens a one-layer draft head (DeepSeek's MTP, EAGLE) proposes per sequence per
    /// decode step, which the target verifies in the same step (0: none; vLLM's `num_speculative_tokens`).
    pub speculative_tokens: u32,
    /// The chance the target accepts each draft token, given it accepted the ones before (0 without speculation).
    pub speculative_acceptance: f64,
}

impl RolloutSpec {
    /// Tokens a sequence gains per decode step on average: 1 + a + a² + … + a^k for k draft tokens accepted one
    /// after another with chance a (the first rejection ends the step, whose verification still yields one token).
    pub fn tokens_per_step(&self) -> f64 {
        (0..=self.speculative_tokens).map(|i| self.speculative_acceptance.powi(i as i32)).sum()
    }
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
    /// The trainer hands over its weights one tensor at a time, each a collective over its GPUs (see
    /// `FrameworkSpec::weight_sync_per_tensor`).
    pub weight_sync_per_tensor: bool,
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
    /// `async`: prompt groups in flight per rollout engine at most (the framework's `stream_groups_per_engine`;
    /// 0: no cap, and 0 for every other pipeline).
    pub open_groups_per_engine: u32,
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
// Loading.

impl Scenario {
    /// Reads, overrides and validates a scenario file.
    pub fn load(file: &Path, overrides: &[String]) -> Result<Scenario, ScenarioError> {
        // A scenario is a few kilobytes of TOML; 16 MiB bounds a wrong path (a device, a huge file).
        let text = crate::textfile::read_regular_text(file, 16 << 20).map_err(|e| match e {
            crate::textfile::ReadError::Io(source) => ScenarioError::Io { file: file.to_path_buf(), source },
            other => ScenarioError::Io { file: file.to_path_buf(), source: std::io::Error::other(other.to_string()) },
        })?;
        Scenario::from_text(&text, file, overrides)
    }

    /// Validates scenario text; `file` names it in errors and anchors relative paths.
    /// Loads a scenario without reading the profile its `[hardware] profile` names: what `rlsim profile` measures
    /// with, so an old or broken profile can be measured anew. The scenario predicts with the datasheet formulas.
    pub fn load_unprofiled(file: &Path, overrides: &[String]) -> Result<Scenario, ScenarioError> {
        let text = crate::textfile::read_regular_text(file, 16 << 20).map_err(|e| ScenarioError::Io {
            file: file.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let text = apply_overrides(&text, file, overrides)?;
        let src = Source::new(file, &text, !overrides.is_empty());
        let mut raw = parse_raw(&src)?;
        raw.hardware.profile = None;
        validate::validate(raw, &src)
    }

    pub fn from_text(text: &str, file: &Path, overrides: &[String]) -> Result<Scenario, ScenarioError> {
        let text = apply_overrides(text, file, overrides)?;
        let src = Source::new(file, &text, !overrides.is_empty());
        let raw = parse_raw(&src)?;
        validate::validate(raw, &src)
    }

    /// `scenario.resolved.toml`: this scenario with every default filled in; loading it gives the same run.
    pub fn resolved_toml(&self) -> String {
        let body = toml::to_string_pretty(&self.resolved).expect("a RawScenario always serialises");
        format!("# {} — resolved by rlsim: every default filled in; paths are absolute.\n{body}", self.name)
    }

    pub fn total_gpus(&self) -> u32 {
        self.cluster.total_gpus()
    }

    /// Settings that are valid but probably not what the user meant, one sentence each (`check` and `run` print
    /// them as notes).
    pub fn advisories(&self) -> Vec<String> {
        let t = &self.training;
        let mut notes = Vec::new();
        // Megatron packs a rank's micro-batches to a few sequences (NeMo-RL: max_total_sequence_length ×
        // train_micro_batch_size); a per-GPU budget left at its FSDP-sized default makes each micro-batch hold
        // tens of samples, so a pipeline runs few micro-batches per optimizer step and idles through its fill
        // and drain (the bubble grows as (p − 1)/m).
        const LARGEST_PIPELINED_MICRO_BATCH: u64 = 65_536;
        let rank_tokens = t.micro_batch_tokens as u64 * t.model_parallel_gpus as u64;
        if t.pipeline_parallel > 1 && rank_tokens > LARGEST_PIPELINED_MICRO_BATCH {
            notes.push(format!(
                "training.micro_batch_tokens = {} per GPU makes a pipelined rank's micro-batch {} tokens \
                 ({} GPUs); with {} stages few micro-batches fill each optimizer step and the pipeline idles \
                 (the bubble is (p − 1)/m): set it to the recipe's micro-batch tokens per rank ÷ \
                 model_parallel_gpus (docs/scenario-reference.md)",
                t.micro_batch_tokens, rank_tokens, t.model_parallel_gpus, t.pipeline_parallel
            ));
        }
        notes.extend(self.coarsen_advisories());
        notes
    }

    /// A coarse-grained run is an approximation: say so, and where its rounding departs from the exact run's counts.
    fn coarsen_advisories(&self) -> Vec<String> {
        let k = self.workload.coarsen;
        if k <= 1 {
            return Vec::new();
        }
        let (sim, real) = (self.workload.prompts_per_step, self.workload.prompts_per_step * k);
        let mut notes = vec![format!(
            "workload.coarsen = {k}: an approximation that simulates {sim} of the {real} groups per step, each standing for {k} identical ones; busy fractions read low and long-tailed steps may drift, so measure its error on a short run (bash scripts/coarsen-error.sh; docs/performance.md)"
        )];
        if self.pipeline.kind == PipelineKind::Partial {
            let exact = (self.pipeline.over_provision * real as f64).ceil() as u64;
            let coarse = (self.pipeline.over_provision * sim as f64).ceil() as u64 * k as u64;
            if coarse != exact {
                notes.push(format!(
                    "pipeline.partial.over_provision × prompts_per_step is {exact} groups in flight, but {} simulated groups stand for {coarse}: choose coarsen so that over_provision × {real} / coarsen is whole",
                    coarse / k as u64
                ));
            }
        }
        let groups = self.resolved.framework.stream_groups_per_engine.unwrap_or(0);
        if self.pipeline.kind == PipelineKind::Async && groups > 0 && !groups.is_multiple_of(k) {
            notes.push(format!(
                "framework.stream_groups_per_engine = {groups} is not a multiple of coarsen {k}: each engine keeps {} simulated groups in flight, {} real ones instead of {groups}",
                groups.div_ceil(k),
                groups.div_ceil(k) * k
            ));
        }
        notes
    }

    /// The tensor-parallel degrees of the workers tagged `rollout`, as `check` should print them: "2" when they all
    /// agree, "1–4" (smallest–largest) when explicit workers differ. `rollout.tp` is only the default of
    /// `cluster.workers[].tp`, so explicit workers may not use it at all.
    pub fn rollout_tp_summary(&self) -> String {
        let tps: Vec<u32> = self.cluster.with_tag("rollout").map(|w| w.tp).collect();
        match (tps.iter().min(), tps.iter().max()) {
            (Some(lo), Some(hi)) if lo != hi => format!("{lo}–{hi}"),
            (Some(tp), _) => tp.to_string(),
            _ => self.rollout.tp.to_string(),
        }
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
            message: user_words(inner.message().trim()),
        }
    })
}

/// Serde's names for the file's types (`struct RawPipeline`, `internally tagged enum RawDist`) replaced by what the
/// user writes (serde's `u32`, `f64` are kept: they say the range).
fn user_words(message: &str) -> String {
    let mut out = message.to_string();
    for prefix in ["internally tagged enum ", "struct ", "enum "] {
        while let Some(at) = out.find(&format!("{prefix}Raw")) {
            let name_at = at + prefix.len();
            let end = out[name_at..].find(|ch: char| !ch.is_alphanumeric()).map_or(out.len(), |e| name_at + e);
            let words = match &out[name_at..end] {
                "RawPipeline" => "a table with `type = \"colocated\"` (or another pipeline type) and the pipelines' own tables; with --set, give `pipeline.type=colocated`",
                "RawDist" => "a length distribution, an inline table `{ kind = \"lognormal\", median = …, sigma = … }`, `{ kind = \"quantiles\", points = [[q, tokens], …] }` or `{ kind = \"constant\", tokens = n }`",
                "RawSeconds" => "a seconds distribution, an inline table `{ kind = \"constant\", seconds = s }` or `{ kind = \"lognormal\", median = s, sigma = σ }`",
                "RawWorkerGroup" => "a worker group table (`[[cluster.workers]]` with `name`, `tags`, `count`, `tp`)",
                "RawFailureEvent" => "a failure event `{ worker = \"name\", at_s = t }`",
                "RawPublishedPhase" => "a phase `{ name = \"…\", seconds = s, sim = [\"rollout\", …] }`",
                "RawMultiTurn" => "a table with `turns`, `tool_latency_s` and `tool_tokens`",
                "RawTrace" => "a table `{ path = \"file.csv\", mode = \"replay\" }`",
                _ => "a table of settings",
            };
            out.replace_range(at..end, words);
        }
    }
    out
}

impl fmt::Display for PipelineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
