//! Costs measured on a real device by `rlsim profile`: the same structure as the analytic model, with fitted lines
//! in place of the datasheet terms (docs/cost-model.md, "Measured profiles").

use crate::cluster::{Cluster, Worker, WorkerId};
use crate::cost::{CostModel, Estimates, Role, TrainCost};
use crate::costs::decode::{DecodeCoeffs, PrefillCoeffs};
use crate::model::ModelSpec;
use crate::profile::HardwareProfile;
use crate::scenario::{RolloutSpec, Scenario, TrainingSpec};
use crate::time::{secs_to_fs, secs_to_ns};

#[derive(Debug)]
pub struct ProfiledCosts {
    profile: HardwareProfile,
    model: ModelSpec,
    cluster: Cluster,
    rollout: RolloutSpec,
    training: TrainingSpec,
}

impl ProfiledCosts {
    pub fn new(s: &Scenario, profile: HardwareProfile) -> Self {
        ProfiledCosts {
            profile,
            model: s.model.clone(),
            cluster: s.cluster.clone(),
            rollout: s.rollout.clone(),
            training: s.training.clone(),
        }
    }
}

impl Estimates for ProfiledCosts {
    /// Fitted lines of one rank, applied as the real backend trains: whole samples balanced over the group's
    /// workers (one rank each), each rank's share walked in `mini_batches` slices that wait for the slowest rank,
    /// every micro-batch computed at its longest sample (the lines are per padded token slot, as the profile fits
    /// them). The profile timed its train passes with `train_ranks` ranks at once (all-reduces included); a group of
    /// another size adds one measured all-reduce per optimizer step when it has more than one rank.
    fn train(&self, sample_tokens: &[u64], workers: &[WorkerId]) -> TrainCost {
        let p = &self.profile;
        let ranks = workers.len().max(1);
        let (share, update_tokens, m) = crate::costs::train::padded_slowest_rank_tokens(
            sample_tokens,
            ranks,
            self.training.mini_batches as usize,
            self.training.micro_batch_tokens as u64,
        );
        let allreduce = if ranks > 1 && ranks != p.train_ranks as usize { p.allreduce_s * m as f64 } else { 0.0 };
        TrainCost {
            logprob_ns: self
                .training
                .logprob_passes
                .iter()
                .map(|_| secs_to_ns(p.logprob_overhead_s + p.logprob_s_per_token * share as f64))
                .collect(),
            update_ns: secs_to_ns(p.update_overhead_s + p.update_s_per_token * update_tokens as f64 + allreduce),
        }
    }

    fn sync_ns(&self, _from: &[WorkerId], _to: &[WorkerId]) -> u64 {
        secs_to_ns(self.profile.sync_s)
    }

    fn switch_ns(&self, _worker: WorkerId, _to: Role) -> u64 {
        secs_to_ns(self.profile.switch_s)
    }

    fn decode_iteration_ns(&self, worker: WorkerId, batch: u64, context_tokens: u64) -> u64 {
        self.decode_coeffs(self.cluster.worker(worker)).iteration_ns(batch, context_tokens)
    }

    fn rollout_slots(&self, _worker: WorkerId) -> u64 {
        self.rollout.max_num_seqs as u64
    }
}

impl CostModel for ProfiledCosts {
    /// Measured: overhead + per_seq·B + per_context_token·C (no separate memory-bound line).
    fn decode_coeffs(&self, _worker: &Worker) -> DecodeCoeffs {
        let p = &self.profile;
        DecodeCoeffs {
            overhead_fs: secs_to_fs(p.decode_overhead_s),
            compute_fs_per_seq: secs_to_fs(p.decode_s_per_seq),
            attention_fs_per_token: secs_to_fs(p.decode_s_per_context_token),
            ..DecodeCoeffs::default()
        }
    }

    fn prefill_coeffs(&self, _worker: &Worker) -> PrefillCoeffs {
        PrefillCoeffs {
            overhead_fs: 0,
            per_seq_fs: secs_to_fs(self.profile.prefill_s_per_seq),
            weights_fs: 0,
            compute_fs_per_token: secs_to_fs(self.profile.prefill_s_per_token),
            allreduce_fs_per_token: 0,
        }
    }

    fn kv_capacity_tokens(&self, worker: &Worker) -> u64 {
        crate::cost::kv_capacity(&self.rollout, &self.model, worker)
    }

    fn controller_ns(&self, _samples: u64) -> u64 {
        0
    }
}
