//! The cost-model interface: what work costs (decode, prefill, train, weight sync, switch), answered by one of two
//! implementations — the analytic roofline with framework presets (`costs::analytic`) or a profile measured on a
//! real device (`costs::profiled`). Formulas, assumptions and sources: docs/cost-model.md. Policies see only the
//! backend-neutral `Estimates`.

use crate::cluster::{Cluster, Worker, WorkerId};
use crate::costs::decode::{DecodeCoeffs, PrefillCoeffs};
use crate::scenario::Scenario;

/// What a worker's memory currently holds: the rollout engine (weights + KV cache) or the training state.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Rollout,
    Train,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Rollout => "rollout",
            Role::Train => "train",
        }
    }
}

/// Durations of one train step, nanoseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainCost {
    /// One entry per forward-only log-prob pass, in the scenario's order.
    pub logprob_ns: Vec<u64>,
    /// Forward + backward + gradient syncs + optimizer (+ the offload copies of a time-sliced trainer).
    pub update_ns: u64,
}

impl TrainCost {
    pub fn total_ns(&self) -> u64 {
        // Saturating: an absurd rate makes a pass last "forever", which the simulator's clock limit then reports.
        self.logprob_ns.iter().fold(self.update_ns, |a, &b| a.saturating_add(b))
    }
}

/// Duration estimates a policy may ask for; answered by the cost model in `sim` (a calibrated profile elsewhere).
pub trait Estimates {
    /// A train step over samples of `sample_tokens` (prompt + response) each, in batch order, on `workers`.
    fn train(&self, sample_tokens: &[u64], workers: &[WorkerId]) -> TrainCost;
    /// A train step over `copies` identical copies of each sample (a coarse-grained run, `crate::coarsen`). By
    /// default the batch with each sample repeated in place; a model may price it without the copies.
    fn train_copies(&self, sample_tokens: &[u64], copies: u32, workers: &[WorkerId]) -> TrainCost {
        if copies <= 1 {
            return self.train(sample_tokens, workers);
        }
        let expanded: Vec<u64> = sample_tokens.iter().flat_map(|&t| std::iter::repeat_n(t, copies as usize)).collect();
        self.train(&expanded, workers)
    }
    /// Copying the current weights from `from` to `to`.
    fn sync_ns(&self, from: &[WorkerId], to: &[WorkerId]) -> u64;
    /// Switching `worker` to hold `to`.
    fn switch_ns(&self, worker: WorkerId, to: Role) -> u64;
    /// One decode iteration of `worker`'s engine with `batch` sequences holding `context_tokens` of KV in total.
    fn decode_iteration_ns(&self, worker: WorkerId, batch: u64, context_tokens: u64) -> u64;
    /// Sequences `worker`'s engine decodes at once at most (its scheduler's limit).
    fn rollout_slots(&self, worker: WorkerId) -> u64;
}

/// A cost model: the estimates policies see, plus the coefficients the simulated rollout engines run on.
pub trait CostModel: Estimates + std::fmt::Debug + Send {
    /// Decode coefficients of a rollout engine on `worker`.
    fn decode_coeffs(&self, worker: &Worker) -> DecodeCoeffs;
    /// Prefill coefficients of a rollout engine on `worker`.
    fn prefill_coeffs(&self, worker: &Worker) -> PrefillCoeffs;
    /// KV-cache tokens of a rollout engine on `worker` (validation guarantees it is positive).
    fn kv_capacity_tokens(&self, worker: &Worker) -> u64;
    /// Controller work before a train step of `samples` samples while the train GPUs wait (the framework's; none
    /// in a measured profile, whose backend has no separate controller).
    fn controller_ns(&self, samples: u64) -> u64;
}

/// The scenario's cost model: measured when `[hardware] profile` names a profile, analytic otherwise.
/// Wrapped in [`crate::coarsen::Coarsened`] when `workload.coarsen` > 1.
pub fn cost_model(s: &Scenario) -> Box<dyn CostModel> {
    let model: Box<dyn CostModel> = match &s.profile {
        Some(p) => Box::new(crate::costs::profiled::ProfiledCosts::new(s, p.clone())),
        None => Box::new(crate::costs::analytic::AnalyticCosts::new(s)),
    };
    match s.workload.coarsen {
        0 | 1 => model,
        k => Box::new(crate::coarsen::Coarsened::new(model, k)),
    }
}

/// KV-cache tokens of an engine on `worker`: the scenario's figure, or what memory holds after the weights.
pub(crate) fn kv_capacity(
    s_rollout: &crate::scenario::RolloutSpec,
    model: &crate::model::ModelSpec,
    w: &Worker,
) -> u64 {
    if let Some(v) = s_rollout.kv_capacity_tokens {
        return v;
    }
    crate::costs::memory::kv_capacity_tokens(model, &w.gpu, w.tp, s_rollout.gpu_memory_utilization).max(0) as u64
}

/// The cluster-wide work a run does before its first step can end, apart from the scenario's load and validation:
/// every worker's engine coefficients (what the simulator builds its engines from), a switch of every worker each
/// way, a train step's gradient all-reduce over the train workers, and the weight sync from them to every rollout
/// worker. What `rlsim bench --setup-only` times; it is where cost that grows faster than the cluster would show
/// (issue #11: a widest-path search per GPU pair made the first sync of 1,024 GPUs take minutes). Returns the sum of
/// the durations (ns, saturating), so the work cannot be optimised away.
pub fn first_step_estimates_ns(cost: &dyn CostModel, cluster: &Cluster) -> u64 {
    let mut total = 0u64;
    for w in &cluster.workers {
        std::hint::black_box((cost.decode_coeffs(w), cost.prefill_coeffs(w), cost.kv_capacity_tokens(w)));
        total =
            total.saturating_add(cost.switch_ns(w.id, Role::Rollout)).saturating_add(cost.switch_ns(w.id, Role::Train));
    }
    let train: Vec<WorkerId> = cluster.with_tag("train").map(|w| w.id).collect();
    let rollout: Vec<WorkerId> = cluster.with_tag("rollout").map(|w| w.id).collect();
    total = total.saturating_add(cost.train(&[1], &train).total_ns());
    total.saturating_add(cost.sync_ns(&train, &rollout))
}
