//! The simulator's cost model: turns work (decode, prefill, train, weight sync, switch) into durations.
//! Formulas, assumptions and sources: docs/cost-model.md. The backend-neutral `Estimates` trait is what policies see.

use crate::cluster::{Cluster, Worker, WorkerId};
use crate::costs::decode::{DecodeCoeffs, PrefillCoeffs};
use crate::costs::memory;
use crate::model::ModelSpec;
use crate::profile::HardwareProfile;
use crate::scenario::{PipelineSpec, RolloutSpec, Scenario, TrainingSpec};
use crate::time::{secs_to_fs, secs_to_ns};
use std::cell::RefCell;
use std::collections::BTreeMap;

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
    /// Forward + backward + gradient all-reduce + optimizer.
    pub update_ns: u64,
}

impl TrainCost {
    pub fn total_ns(&self) -> u64 {
        self.logprob_ns.iter().sum::<u64>() + self.update_ns
    }
}

/// Duration estimates a policy may ask for; answered by the cost model in `sim` (a calibrated profile elsewhere).
pub trait Estimates {
    /// A train step over `tokens` (prompt + response) on `workers`.
    fn train(&self, tokens: u64, workers: &[WorkerId]) -> TrainCost;
    /// Copying the current weights from `from` to `to`.
    fn sync_ns(&self, from: &[WorkerId], to: &[WorkerId]) -> u64;
    /// Switching `worker` to hold `to`.
    fn switch_ns(&self, worker: WorkerId, to: Role) -> u64;
    /// One decode iteration of `worker`'s engine with `batch` sequences holding `context_tokens` of KV in total.
    fn decode_iteration_ns(&self, worker: WorkerId, batch: u64, context_tokens: u64) -> u64;
    /// Sequences `worker`'s engine decodes at once at most (its scheduler's limit).
    fn rollout_slots(&self, worker: WorkerId) -> u64;
}

/// Cost model of one scenario.
#[derive(Debug)]
pub struct CostModel {
    model: ModelSpec,
    cluster: Cluster,
    rollout: RolloutSpec,
    training: TrainingSpec,
    pipeline: PipelineSpec,
    profile: Option<HardwareProfile>,
    /// Bandwidth (GB/s) for a weight copy from a set of workers into one worker; widest paths are not free.
    copy_bw_cache: RefCell<BTreeMap<(Vec<WorkerId>, WorkerId), f64>>,
}

impl CostModel {
    pub fn new(s: &Scenario) -> Self {
        CostModel {
            model: s.model.clone(),
            cluster: s.cluster.clone(),
            rollout: s.rollout.clone(),
            training: s.training.clone(),
            pipeline: s.pipeline.clone(),
            profile: s.profile.clone(),
            copy_bw_cache: RefCell::new(BTreeMap::new()),
        }
    }

    /// Effective HBM bandwidth of one GPU of `worker` (each worker has its own GPU type).
    fn hbm_bytes_per_s(&self, worker: &Worker) -> f64 {
        worker.gpu.hbm_gbytes_per_s * 1e9 * self.rollout.hbm_efficiency
    }

    fn peak_flops(&self, worker: &Worker) -> f64 {
        worker.gpu.bf16_tflops * 1e12
    }

    /// Fixed time per engine iteration: scheduling overhead plus two all-reduces per layer under tensor parallelism.
    fn iteration_overhead_s(&self, tp: u32) -> f64 {
        let allreduce = if tp > 1 { 2.0 * self.model.layers as f64 * self.rollout.tp_allreduce_s } else { 0.0 };
        self.rollout.iteration_overhead_s + allreduce
    }

    /// Decode coefficients of a rollout engine on `worker`.
    pub fn decode_coeffs(&self, worker: &Worker) -> DecodeCoeffs {
        if let Some(p) = &self.profile {
            // Measured: overhead + per_seq·B + per_context_token·C (no separate memory-bound line).
            return DecodeCoeffs {
                overhead_fs: secs_to_fs(p.decode_overhead_s),
                weights_fs: 0,
                kv_fs_per_token: 0,
                compute_fs_per_seq: secs_to_fs(p.decode_s_per_seq),
                attention_fs_per_token: secs_to_fs(p.decode_s_per_context_token),
            };
        }
        let tp = worker.tp as f64;
        let hbm = self.hbm_bytes_per_s(worker);
        let flops = tp * self.peak_flops(worker) * self.rollout.decode_compute_efficiency;
        let kv_split = worker.tp.min(self.model.kv_heads).max(1) as f64;
        DecodeCoeffs {
            overhead_fs: secs_to_fs(self.iteration_overhead_s(worker.tp)),
            weights_fs: secs_to_fs(self.model.weight_bytes() / tp / hbm),
            kv_fs_per_token: secs_to_fs(self.model.kv_bytes_per_token() / kv_split / hbm),
            compute_fs_per_seq: secs_to_fs(self.model.forward_flops_per_token() / flops),
            attention_fs_per_token: secs_to_fs(self.model.attention_flops_per_context_token() / flops),
        }
    }

    /// Prefill coefficients of a rollout engine on `worker`.
    pub fn prefill_coeffs(&self, worker: &Worker) -> PrefillCoeffs {
        if let Some(p) = &self.profile {
            return PrefillCoeffs {
                overhead_fs: 0,
                per_seq_fs: secs_to_fs(p.prefill_s_per_seq),
                weights_fs: 0,
                compute_fs_per_token: secs_to_fs(p.prefill_s_per_token),
            };
        }
        let tp = worker.tp as f64;
        PrefillCoeffs {
            overhead_fs: secs_to_fs(self.iteration_overhead_s(worker.tp)),
            per_seq_fs: 0,
            weights_fs: secs_to_fs(self.model.weight_bytes() / tp / self.hbm_bytes_per_s(worker)),
            compute_fs_per_token: secs_to_fs(
                self.model.forward_flops_per_token() / (tp * self.peak_flops(worker) * self.rollout.prefill_mfu),
            ),
        }
    }

    /// KV-cache tokens of a rollout engine on `worker` (validation guarantees it is positive).
    pub fn kv_capacity_tokens(&self, worker: &Worker) -> u64 {
        if let Some(v) = self.rollout.kv_capacity_tokens {
            return v;
        }
        memory::kv_capacity_tokens(&self.model, &worker.gpu, worker.tp, self.rollout.gpu_memory_utilization).max(0)
            as u64
    }

    fn train_gpus(&self, workers: &[WorkerId]) -> u32 {
        workers.iter().map(|w| self.cluster.worker(*w).gpu_count()).sum::<u32>().max(1)
    }

    fn copy_gbytes_per_s(&self, from: &[WorkerId], to: WorkerId) -> f64 {
        let key = (from.to_vec(), to);
        if let Some(bw) = self.copy_bw_cache.borrow().get(&key) {
            return *bw;
        }
        let bw = self.cluster.copy_gbytes_per_s(from, &[to]);
        self.copy_bw_cache.borrow_mut().insert(key, bw);
        bw
    }
}

impl Estimates for CostModel {
    /// Forward-only pass: 2·N_active·tokens FLOPs; update: 6·N_active·tokens; both over (GPUs · peak · MFU), plus a
    /// fixed overhead per micro-batch; then a ring all-reduce of bf16 gradients, 2·(G−1)/G · 2·N bytes per GPU.
    fn train(&self, tokens: u64, workers: &[WorkerId]) -> TrainCost {
        if let Some(p) = &self.profile {
            let t = tokens as f64;
            return TrainCost {
                logprob_ns: self
                    .training
                    .logprob_passes
                    .iter()
                    .map(|_| secs_to_ns(p.logprob_overhead_s + p.logprob_s_per_token * t))
                    .collect(),
                update_ns: secs_to_ns(p.update_overhead_s + p.update_s_per_token * t),
            };
        }
        let gpus = self.train_gpus(workers) as f64;
        // Data-parallel training moves at the pace of its slowest GPU type.
        let slowest = workers.iter().map(|w| self.peak_flops(self.cluster.worker(*w))).fold(f64::INFINITY, f64::min);
        let rate = gpus * slowest * self.training.mfu;
        let micro_batches = (tokens as f64 / (gpus * self.training.micro_batch_tokens as f64)).ceil();
        let overhead = micro_batches * self.training.micro_batch_overhead_s;
        let per_token = self.model.forward_flops_per_token(); // 2·N_active
        let forward = per_token * tokens as f64 / rate + overhead;
        let backward_too = 3.0 * per_token * tokens as f64 / rate + overhead;
        let allreduce = if gpus > 1.0 {
            let bw = self.cluster.ring_gbytes_per_s(workers) * 1e9;
            2.0 * (gpus - 1.0) / gpus * self.model.weight_bytes() / bw
        } else {
            0.0
        };
        TrainCost {
            logprob_ns: self.training.logprob_passes.iter().map(|_| secs_to_ns(forward)).collect(),
            update_ns: secs_to_ns(backward_too + allreduce),
        }
    }

    /// Each receiving GPU pulls its 1/tp shard of the bf16 weights over its widest path from the senders; the
    /// slowest receiver sets the pace; plus a fixed cost (gathering shards, NCCL set-up, engine weight reload).
    fn sync_ns(&self, from: &[WorkerId], to: &[WorkerId]) -> u64 {
        if let Some(p) = &self.profile {
            return secs_to_ns(p.sync_s);
        }
        let mut slowest: f64 = 0.0;
        for &w in to {
            let shard = self.model.weight_bytes() / self.cluster.worker(w).tp as f64;
            slowest = slowest.max(shard / (self.copy_gbytes_per_s(from, w) * 1e9));
        }
        secs_to_ns(slowest + self.pipeline.weight_sync_fixed_s)
    }

    /// Colocated time-slicing: move the rollout weights (2·N/tp bytes per GPU) and the sharded training state
    /// (gradients + optimizer, (2 + optimizer bytes)·N/G per GPU) across PCIe — one goes out, the other comes in —
    /// plus a fixed cost (allocator, CUDA graphs, engine wake/sleep); or the scenario's override.
    fn switch_ns(&self, worker: WorkerId, to: Role) -> u64 {
        if let Some(p) = &self.profile {
            return secs_to_ns(p.switch_s);
        }
        let over = match to {
            Role::Train => self.pipeline.switch_to_train_s,
            Role::Rollout => self.pipeline.switch_to_rollout_s,
        };
        if let Some(s) = over {
            return secs_to_ns(s);
        }
        let w = self.cluster.worker(worker);
        let train_gpus: u32 = self.cluster.with_tag("train").map(|w| w.gpu_count()).sum::<u32>().max(1);
        let rollout_bytes = memory::rollout_weight_bytes_per_gpu(&self.model, w.tp);
        let train_bytes =
            self.model.params_b * 1e9 * (2.0 + self.training.optimizer_bytes_per_param) / train_gpus as f64;
        let pcie = w.gpu.pcie_gbytes_per_s * 1e9;
        secs_to_ns((rollout_bytes + train_bytes) / pcie + self.pipeline.switch_fixed_s)
    }

    fn rollout_slots(&self, _worker: WorkerId) -> u64 {
        self.rollout.max_num_seqs as u64
    }

    fn decode_iteration_ns(&self, worker: WorkerId, batch: u64, context_tokens: u64) -> u64 {
        let fs = self.decode_coeffs(self.cluster.worker(worker)).iteration_fs(batch, context_tokens);
        fs.div_ceil(crate::time::FS_PER_NS) as u64
    }
}
