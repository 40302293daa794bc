//! Coarse-grained simulation (`workload.coarsen = k`, opt-in): each simulated prompt group stands for k identical
//! ones, so a run follows 1/k of the trajectories at the cost of their lengths' diversity.
//!
//! Exact for k identical copies: a copy runs on the same engine in the same iterations as its original, so an
//! engine's decode and prefill iterations cost what they would with k× the batch and k× the context (the
//! per-sequence and per-token coefficients scale by k, the weight read does not, and an MoE batch touches the experts
//! of k× the tokens); its slots and KV cache hold 1/k as many simulated sequences; the trainer's ranks come in
//! groups of gcd(ranks, k) that train the same samples; the report counts every simulated trajectory and token k
//! times. What is approximate is only the premise: a real step has k× as many independent lengths (its longest
//! sample, and each engine's mix, come from a larger draw). docs/performance.md measures the error on the bundled
//! scenarios.

use crate::cluster::{Worker, WorkerId};
use crate::cost::{CostModel, Estimates, Role, TrainCost};
use crate::costs::decode::{DecodeCoeffs, PrefillCoeffs};

/// The largest `workload.coarsen` accepted.
pub const MAX_COARSEN: u32 = 4096;

/// Summary counters that count trajectories or their tokens (scaled by k in a coarse-grained report); the others
/// (decode iterations, failures, lost GPU time) count what the simulated run did once.
pub const PER_TRAJECTORY_COUNTERS: &[&str] =
    &["kv_preemptions", "prefill_tokens", "tool_calls", "paused", "resumed", "migrated"];

/// Turns the validated scenario's counts into the simulated run's: groups per step and per dynamic-sampling round,
/// an engine's sequences (its KV cache is divided by the cost model, [`Coarsened`]), the policies' per-engine group
/// caps (rounded up: a cap never reaches zero). Validation has checked that `workload.coarsen` divides the group
/// counts; `rollout.max_num_seqs` and the groups per engine are checked here.
pub(crate) fn apply(s: &mut crate::scenario::Scenario) -> Result<(), String> {
    let k = s.workload.coarsen.max(1);
    if k == 1 {
        return Ok(());
    }
    if !s.rollout.max_num_seqs.is_multiple_of(k) {
        return Err(format!(
            "{k} does not divide rollout.max_num_seqs ({}); expected a divisor, so that an engine holds a whole number of simulated sequences",
            s.rollout.max_num_seqs
        ));
    }
    // The policies place whole groups on engines: with fewer simulated groups than engines some engines would
    // idle where the exact run keeps them all busy (measured: +289 % on a step of 16 groups over 16 engines).
    // Engines that start rolling out (seamless's lendable train workers get one only while lent).
    let engines =
        s.cluster.workers.iter().filter(|w| w.has_tag("rollout") && w.start == crate::cost::Role::Rollout).count()
            as u32;
    let groups = s.workload.prompts_per_step / k;
    if groups < engines {
        return Err(format!(
            "{k} leaves {groups} simulated groups per step (workload.prompts_per_step {} / {k}) for {engines} rollout engines; expected at least one group per engine, so coarsen at most {} by this check",
            s.workload.prompts_per_step,
            largest_divisor_at_most(s.workload.prompts_per_step, s.workload.prompts_per_step / engines.max(1)),
        ));
    }
    s.workload.prompts_per_step /= k;
    if let Some(d) = &mut s.workload.dynamic_sampling {
        d.prompts_per_round /= k;
    }
    s.rollout.max_num_seqs /= k;
    s.framework.stream_groups_per_engine = s.framework.stream_groups_per_engine.div_ceil(k);
    s.pipeline.open_groups_per_engine = s.pipeline.open_groups_per_engine.div_ceil(k);
    Ok(())
}

/// The largest divisor of `n` that is at most `max` (1 if none above it).
fn largest_divisor_at_most(n: u32, max: u32) -> u32 {
    (1..=max.min(n)).rev().find(|d| n.is_multiple_of(*d)).unwrap_or(1)
}

/// A cost model whose every sequence and sample stands for `copies` identical ones (see the module doc).
#[derive(Debug)]
pub struct Coarsened {
    inner: Box<dyn CostModel>,
    copies: u32,
}

impl Coarsened {
    pub fn new(inner: Box<dyn CostModel>, copies: u32) -> Self {
        Coarsened { inner, copies: copies.max(1) }
    }

    fn k(&self) -> u64 {
        self.copies as u64
    }
}

impl Estimates for Coarsened {
    fn train(&self, sample_tokens: &[u64], workers: &[WorkerId]) -> TrainCost {
        self.inner.train_copies(sample_tokens, self.copies, workers)
    }
    fn train_copies(&self, sample_tokens: &[u64], copies: u32, workers: &[WorkerId]) -> TrainCost {
        self.inner.train_copies(sample_tokens, copies.saturating_mul(self.copies), workers)
    }
    fn sync_ns(&self, from: &[WorkerId], to: &[WorkerId]) -> u64 {
        self.inner.sync_ns(from, to)
    }
    fn switch_ns(&self, worker: WorkerId, to: Role) -> u64 {
        self.inner.switch_ns(worker, to)
    }
    fn decode_iteration_ns(&self, worker: WorkerId, batch: u64, context_tokens: u64) -> u64 {
        self.inner.decode_iteration_ns(worker, batch.saturating_mul(self.k()), context_tokens.saturating_mul(self.k()))
    }
    fn rollout_slots(&self, worker: WorkerId) -> u64 {
        // The scenario's max_num_seqs is already the simulated one (`apply`).
        self.inner.rollout_slots(worker)
    }
}

impl CostModel for Coarsened {
    fn decode_coeffs(&self, worker: &Worker) -> DecodeCoeffs {
        let c = self.inner.decode_coeffs(worker);
        let k = self.k();
        DecodeCoeffs {
            host_fs_per_seq: c.host_fs_per_seq.saturating_mul(k),
            allreduce_fs_per_seq: c.allreduce_fs_per_seq.saturating_mul(k),
            kv_fs_per_token: c.kv_fs_per_token.saturating_mul(k),
            compute_fs_per_seq: c.compute_fs_per_seq.saturating_mul(k),
            attention_fs_per_token: c.attention_fs_per_token.saturating_mul(k),
            copies_per_seq: c.copies_per_seq.max(1).saturating_mul(self.copies),
            ..c
        }
    }
    fn prefill_coeffs(&self, worker: &Worker) -> PrefillCoeffs {
        let c = self.inner.prefill_coeffs(worker);
        let k = self.k();
        PrefillCoeffs {
            per_seq_fs: c.per_seq_fs.saturating_mul(k),
            compute_fs_per_token: c.compute_fs_per_token.saturating_mul(k),
            allreduce_fs_per_token: c.allreduce_fs_per_token.saturating_mul(k),
            ..c
        }
    }
    fn kv_capacity_tokens(&self, worker: &Worker) -> u64 {
        // Validation has checked that the longest sequence's k copies fit.
        self.inner.kv_capacity_tokens(worker) / self.k()
    }
    fn controller_ns(&self, samples: u64) -> u64 {
        self.inner.controller_ns(samples.saturating_mul(self.k()))
    }
}
