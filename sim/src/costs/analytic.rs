//! The analytic cost model: the GPUs' rooflines (datasheet bandwidths, measured matmul rates) with the framework's
//! constants (framework presets), the batch's real sample lengths for training, and the cluster graph for weight
//! syncs. docs/cost-model.md.

use crate::cluster::{Cluster, Worker, WorkerId};
use crate::cost::{CostModel, Estimates, Role, TrainCost};
use crate::costs::decode::{DecodeCoeffs, PrefillCoeffs};
use crate::costs::memory;
use crate::costs::train::TrainShape;
use crate::framework::FrameworkSpec;
use crate::hardware::GpuSpec;
use crate::model::ModelSpec;
use crate::scenario::{Layout, PipelineKind, PipelineSpec, RolloutSpec, Scenario, TrainingSpec};
use crate::time::{secs_to_fs, secs_to_ns};

#[derive(Debug)]
pub struct AnalyticCosts {
    model: ModelSpec,
    cluster: Cluster,
    rollout: RolloutSpec,
    training: TrainingSpec,
    pipeline: PipelineSpec,
    framework: FrameworkSpec,
    /// Token slots of one sample once padded to the caps (what a single controller moves per sample per pass).
    padded_tokens_per_sample: u64,
    /// Training state (bytes per GPU) a switch moves besides the engine's weights: the sharded training state of
    /// the `train` workers unless the framework offloads it inside the passes or keeps it in place
    /// (`switch_moves_training_state = false`). Fixed by the scenario, so computed once rather than from every
    /// worker's tags at each switch (O(workers) per switch, O(workers²) per step).
    switch_train_bytes_per_gpu: f64,
}

/// NCCL's latency model of a ring collective in its Simple protocol (NVIDIA/nccl `src/graph/tuning.cc`, the tables
/// of its 2.7-era releases: `baseLat` 8.4 µs for Ring/Simple, `hwLat` 3.4 µs per NVLink hop and 9.6 µs per network
/// hop). An all-gather over p GPUs on n nodes takes p − 1 steps, n − 1 of them between nodes.
const NCCL_RING_BASE_US: f64 = 8.4;
const NCCL_RING_NVLINK_HOP_US: f64 = 3.4;
const NCCL_RING_NETWORK_HOP_US: f64 = 9.6;

impl AnalyticCosts {
    pub fn new(s: &Scenario) -> Self {
        let mut costs = AnalyticCosts {
            model: s.model.clone(),
            cluster: s.cluster.clone(),
            rollout: s.rollout.clone(),
            training: s.training.clone(),
            pipeline: s.pipeline.clone(),
            framework: s.framework.clone(),
            padded_tokens_per_sample: s.workload.max_context_tokens as u64,
            switch_train_bytes_per_gpu: 0.0,
        };
        let train: Vec<WorkerId> = costs.cluster.with_tag("train").map(|w| w.id).collect();
        costs.switch_train_bytes_per_gpu = if costs.offloads(&train) || !costs.framework.switch_moves_training_state {
            0.0
        } else {
            let m = &costs.model;
            m.params_b * 1e9 * (2.0 + costs.training.optimizer_bytes_per_param) / costs.shard_gpus(&train)
        };
        costs
    }

    /// Effective HBM bandwidth of one GPU of `worker` (each worker has its own GPU type): the framework's share,
    /// measured on an H100, scaled by the GPU's own relative to it.
    fn hbm_bytes_per_s(&self, worker: &Worker) -> f64 {
        worker.gpu.hbm_gbytes_per_s * 1e9 * self.rollout.hbm_efficiency * worker.gpu.hbm_efficiency_vs_h100
    }

    /// Effective HBM bandwidth of one GPU of `worker` when decode attention reads the paged KV cache.
    fn kv_read_bytes_per_s(&self, worker: &Worker) -> f64 {
        worker.gpu.hbm_gbytes_per_s * 1e9 * self.rollout.kv_read_efficiency * worker.gpu.hbm_efficiency_vs_h100
    }

    /// The largest matmul rate one GPU of `worker` reaches (its datasheet peak × its measured achievable share):
    /// what the framework's utilisations (`mfu`, `prefill_mfu`, `decode_compute_efficiency`) are shares of.
    fn matmul_flops(&self, worker: &Worker) -> f64 {
        worker.gpu.bf16_tflops * 1e12 * worker.gpu.matmul_efficiency
    }

    /// Fixed time per engine iteration of `worker`: the host's engine loop, the kernel launches of every layer (an
    /// MoE layer launches about twice a dense layer's kernels; under CUDA graphs the floor scales with the GPU's
    /// `layer_floor_vs_h100`, eager launches are the host's), and the latency of two all-reduces per layer under
    /// tensor parallelism (NCCL's over the NICs when the engine spans nodes).
    fn iteration_overhead_s(&self, worker: &Worker) -> f64 {
        let (tp, layers) = (worker.tp, self.model.layers as f64);
        let latency_s =
            if self.spans_nodes(tp) { self.rollout.tp_allreduce_internode_s } else { self.rollout.tp_allreduce_s };
        let allreduce = if tp > 1 { 2.0 * layers * latency_s } else { 0.0 };
        let moe = if self.model.is_moe() { 2.0 } else { 1.0 };
        let floor = if self.framework.cuda_graphs { worker.gpu.layer_floor_vs_h100 } else { 1.0 };
        self.rollout.iteration_overhead_s + layers * self.rollout.layer_launch_s * moe * floor + allreduce
    }

    /// Seconds to move one token's activations through a rollout engine's tensor-parallel all-reduces: two per
    /// layer (after attention's output projection and after the MLP's down projection, Megatron-style row-parallel
    /// layers as vLLM shards them), 2·hidden bytes each, of which a ring (or vLLM's two-shot all-reduce) moves
    /// 2·(t − 1)/t per GPU, over NVLink inside a node and over the GPU's NIC when the engine spans nodes (tp a
    /// multiple of `gpus_per_node`; the trainer's collectives take the same links). 0 at tp 1. Inside a node this
    /// is ~2 % of a 7B decode token on H20; across nodes ~58 µs per token for Qwen3-235B-A22B at tp 16 over
    /// 400 Gbit/s NICs, against ~7 µs of matmuls on H100. One NIC's rate across nodes is an assumption for
    /// decode-sized messages (one all-reduce is batch × 2·hidden bytes, a few MB), where NCCL's inter-node bus
    /// bandwidth stays far below its large-message figure; a large message spreads over every NIC of the node (up
    /// to `gpus_per_node` NICs' worth), so at very large batches this term is an upper bound. The latency of each
    /// all-reduce is in the iteration overhead (`tp_allreduce_internode_us` across nodes).
    fn tp_allreduce_s_per_token(&self, worker: &Worker) -> f64 {
        let t = worker.tp as f64;
        if worker.tp <= 1 {
            return 0.0;
        }
        let link_gbytes_per_s = self.group_link_gbytes_per_s(&worker.gpu, worker.tp);
        let bytes = self.model.layers as f64 * 2.0 * 2.0 * self.model.hidden as f64 * 2.0 * (t - 1.0) / t;
        bytes / (link_gbytes_per_s * 1e9)
    }

    /// Whether a group of `gpus` GPUs working together (an engine, a trainer's parallel group) spans nodes.
    fn spans_nodes(&self, gpus: u32) -> bool {
        gpus > self.cluster.gpus_per_node
    }

    /// The per-GPU link a collective among `group` GPUs of type `gpu` runs over: NVLink when the group fits in a
    /// node, the GPU's NIC otherwise.
    fn group_link_gbytes_per_s(&self, gpu: &GpuSpec, group: u32) -> f64 {
        if self.spans_nodes(group) {
            gpu.network_gbits_per_s / 8.0
        } else {
            gpu.nvlink_gbytes_per_s
        }
    }

    /// Latency of one ring all-gather over the GPUs of `workers`, seconds, in NCCL's own cost model (the Simple
    /// protocol a tensor-sized message uses): a base plus one hop per GPU after the first, over NVLink inside a node
    /// and over the network between nodes (`NCCL_RING_*`).
    fn ring_allgather_latency_s(&self, workers: &[WorkerId]) -> f64 {
        let per_node = self.cluster.gpus_per_node.max(1);
        let mut nodes = std::collections::BTreeSet::new();
        let mut gpus = 0u64;
        for w in workers {
            for &g in &self.cluster.worker(*w).gpus {
                nodes.insert(g / per_node);
                gpus += 1;
            }
        }
        if gpus <= 1 {
            return 0.0;
        }
        let (p, n) = (gpus as f64, nodes.len().max(1) as f64);
        (NCCL_RING_BASE_US + (p - n) * NCCL_RING_NVLINK_HOP_US + (n - 1.0) * NCCL_RING_NETWORK_HOP_US) * 1e-6
    }

    /// The per-GPU link a collective among `group` GPUs of the train workers runs at; the slowest GPU type's.
    fn link_gbytes_per_s(&self, workers: &[WorkerId], group: u32) -> f64 {
        workers
            .iter()
            .map(|w| self.group_link_gbytes_per_s(&self.cluster.worker(*w).gpu, group))
            .fold(f64::INFINITY, f64::min)
    }

    /// How many GPUs split the parameters among `gpus` train GPUs: tensor × pipeline parallel for the dense part,
    /// expert × pipeline parallel for an MoE model's experts (expert tensor parallelism 1); 1 and 1 when neither is
    /// set, where the trainer shards its state over all its GPUs instead (FSDP, ZeRO-3). Context and Ulysses
    /// sequence parallelism replicate the parameters.
    fn parameter_split(&self, gpus: f64) -> (f64, f64) {
        let t = &self.training;
        let pp = t.pipeline_parallel.max(1) as f64;
        let dense = (t.tensor_parallel.max(1) as f64 * pp).min(gpus);
        let experts = if self.model.is_moe() { (t.expert_parallel.max(1) as f64 * pp).min(gpus) } else { 1.0 };
        (dense, experts)
    }

    fn train_gpus(&self, workers: &[WorkerId]) -> u32 {
        workers.iter().map(|w| self.cluster.worker(*w).gpu_count()).sum::<u32>().max(1)
    }

    /// A single controller moving `samples` padded samples to the workers and back (one pass of a synchronous
    /// pipeline; a streaming trainer assembles its batch from samples queued while it computed).
    fn transfer_s(&self, samples: u64) -> f64 {
        if matches!(self.pipeline.kind, PipelineKind::Async | PipelineKind::Seamless) {
            return 0.0;
        }
        samples as f64 * self.padded_tokens_per_sample as f64 * self.framework.controller_ns_per_padded_token * 1e-9
    }

    /// GPUs one copy of the training state is sharded over (`TrainingSpec::shard_gpus`).
    fn shard_gpus(&self, workers: &[WorkerId]) -> f64 {
        self.training.shard_gpus(self.train_gpus(workers).max(1)) as f64
    }

    /// A time-sliced layout (colocated, or partial on it) whose train workers also carry `rollout`, under a
    /// framework that offloads the training state between phases. (Seamless's lendable workers move their state in
    /// the lend and reclaim switches instead.)
    fn offloads(&self, workers: &[WorkerId]) -> bool {
        self.framework.offload
            && self.pipeline.layout == Layout::TimeSliced
            && workers.iter().any(|w| self.cluster.worker(*w).has_tag("rollout"))
    }

    /// How one train step's passes divide over the train workers.
    pub fn train_shape(&self, workers: &[WorkerId]) -> TrainShape {
        let gpus = self.train_gpus(workers);
        let per_rank = self.training.model_parallel_gpus.clamp(1, gpus);
        // Data-parallel training moves at the pace of its slowest GPU type: its achievable matmul rate at the share a
        // trainer reaches on it relative to an H100 (`GpuSpec::train_efficiency_vs_h100`).
        let slowest = workers
            .iter()
            .map(|w| {
                let worker = self.cluster.worker(*w);
                self.matmul_flops(worker) * worker.gpu.train_efficiency_vs_h100
            })
            .fold(f64::INFINITY, f64::min);
        let m = &self.model;
        let layers = m.layers as f64;
        let logprob = self.framework.logprob_elementwise.at(m.hidden, m.heads);
        let update = self.framework.update_elementwise.at(m.hidden, m.heads);
        // Activations streamed through HBM outside the matmuls, per token of a forward pass on one GPU (the rank's
        // GPUs split them, as `passes` divides the elementwise time); the update moves them as many times as its
        // FLOPs (backward twice, recomputation once more).
        let traffic_s = if self.framework.activation_traffic > 0.0 {
            let hbm =
                workers.iter().map(|w| self.hbm_bytes_per_s(self.cluster.worker(*w))).fold(f64::INFINITY, f64::min);
            self.framework.activation_traffic * m.activation_bytes_per_token() / hbm
        } else {
            0.0
        };
        let update_passes = TrainShape::update_passes(self.training.gradient_checkpointing);
        // Tensor parallelism: each layer's activations (2·hidden bytes per token) are all-reduced among the t GPUs
        // twice per forward and twice per backward (Megatron's row-parallel outputs; with sequence parallelism a
        // reduce-scatter and an all-gather, the same bytes), not overlapped with compute; a ring sends 2·(t − 1)/t
        // of them per GPU. The rank's pipeline stages run their layers side by side, so per token of a forward one
        // GPU's share of the rank's time is layers · 2 · 2·(t − 1) · 2·hidden / link (÷ rank GPUs in `passes`).
        let tp_token_s = {
            let t = self.training.tensor_parallel.clamp(1, per_rank) as f64;
            if t > 1.0 {
                let link_gbytes_per_s = self.link_gbytes_per_s(workers, t as u32);
                layers * 2.0 * 2.0 * (t - 1.0) * 2.0 * m.hidden as f64 / (link_gbytes_per_s * 1e9)
            } else {
                0.0
            }
        };
        // Expert parallelism: each token's hidden state goes to the GPUs of its k experts and comes back (Megatron's
        // all-to-all dispatcher sends one copy per routed expert), once per forward and once per backward, the
        // (e − 1)/e of the copies bound for other GPUs over the slowest link, not overlapped with compute. Per
        // token of a forward, on the GPU that holds it: layers · 2 · k · 2·hidden · (e − 1)/e / link.
        let ep_token_s = {
            let e = self.training.expert_parallel.max(1) as f64;
            if e > 1.0 && m.is_moe() {
                let link_gbytes_per_s = self.link_gbytes_per_s(workers, self.training.expert_parallel);
                let copies = 2.0 * m.experts_per_token as f64 * 2.0 * m.hidden as f64 * (e - 1.0) / e;
                layers * copies / (link_gbytes_per_s * 1e9)
            } else {
                0.0
            }
        };
        // The update's rounds of those collectives: its forward, the recomputed forward and the backward (whose two
        // all-reduces per layer carry the activations' gradients): one fewer than its forward-equivalent passes.
        let update_tp_rounds = update_passes - 1.0;
        TrainShape {
            ranks: (gpus / per_rank).max(1) as usize,
            gpus_per_rank: per_rank,
            rank_flops: per_rank as f64
                * slowest
                * self.training.mfu
                * if m.is_moe() { self.framework.moe_mfu_scale } else { 1.0 },
            flops_per_token: m.forward_flops_per_token(),
            // Attention runs at its own share of the matmuls' rate: its FLOPs count that much more at `rank_flops`.
            attention_flops_per_token_sq: m.attention_flops_per_token_sq() / self.framework.attention_efficiency,
            mini_batches: self.training.mini_batches,
            micro_batch_tokens: self.training.micro_batch_tokens,
            logprob_micro_batch_tokens: self.training.logprob_micro_batch_tokens,
            micro_batch_overhead_s: self.training.micro_batch_overhead_s,
            pipeline_stages: self.training.pipeline_parallel.clamp(1, per_rank),
            recompute: self.training.gradient_checkpointing,
            logprob_token_s: layers * logprob.token_s + logprob.outside_token_s + traffic_s + tp_token_s + ep_token_s,
            logprob_token_sq_s: layers * logprob.token_context_s,
            update_token_s: layers * update.token_s
                + update.outside_token_s
                + update_passes * traffic_s
                + update_tp_rounds * (tp_token_s + ep_token_s),
            update_token_sq_s: layers * update.token_context_s,
            logprob_sample_s: layers * logprob.sequence_s,
            update_sample_s: layers * update.sequence_s,
            padded: !self.framework.remove_padding,
        }
    }
}

impl Estimates for AnalyticCosts {
    /// Each pass over the batch's samples balanced on data-parallel ranks (costs::train); the update adds one
    /// ring all-reduce of bf16 gradients per optimizer step, 2·(n−1)/n · 2·N/s bytes per GPU, where s = tensor ×
    /// pipeline parallel GPUs split the parameters and n = G/s GPUs hold each shard (an MoE model's experts split
    /// by expert × pipeline parallel GPUs instead); a time-sliced trainer
    /// that offloads loads its parameters (fp32, 4·N/f, f = `fsdp_size` or G) for a log-prob pass and its optimizer state with the fp32
    /// master parameters (optimizer bytes per parameter) for the update, and puts them back after, at the
    /// framework's pageable-copy bandwidth.
    fn train(&self, sample_tokens: &[u64], workers: &[WorkerId]) -> TrainCost {
        self.train_copies(sample_tokens, 1, workers)
    }

    /// `copies` identical copies of each sample (a coarse-grained run) without repeating them all: the ranks go in
    /// g = gcd(ranks, copies) groups of identical ranks, each rank of a group training its group's share with every
    /// sample repeated copies / g times. (A rank's load is then that of an exact batch in which the copies of a
    /// sample go to g ranks alike; the greedy balance of the whole expanded batch may pair them otherwise.)
    fn train_copies(&self, sample_tokens: &[u64], copies: u32, workers: &[WorkerId]) -> TrainCost {
        let copies = copies.max(1) as usize;
        let gpus = self.train_gpus(workers) as f64;
        let mut shape = self.train_shape(workers);
        let alike = gcd(shape.ranks.max(1), copies);
        shape.ranks = shape.ranks.max(1) / alike;
        let repeat = copies / alike;
        let passes = if repeat == 1 {
            shape.passes(sample_tokens)
        } else {
            let expanded: Vec<u64> = sample_tokens.iter().flat_map(|&t| std::iter::repeat_n(t, repeat)).collect();
            shape.passes(&expanded)
        };
        let samples = sample_tokens.len() as u64 * copies as u64;
        let allreduce = if gpus > 1.0 {
            let bw = self.cluster.ring_gbytes_per_s(workers) * 1e9;
            // A GPU reduces only its shard's gradients, among the GPUs that hold the same shard.
            let (split, expert_split) = self.parameter_split(gpus);
            let expert_bytes = self.model.expert_params_b() * 1e9 * 2.0;
            let ring = |copies: f64, bytes: f64| {
                if copies > 1.0 {
                    2.0 * (copies - 1.0) / copies * bytes / bw
                } else {
                    0.0
                }
            };
            ring(gpus / split, (self.model.weight_bytes() - expert_bytes) / split)
                + ring(gpus / expert_split, expert_bytes / expert_split)
        } else {
            0.0
        };
        let transfer = self.transfer_s(samples);
        let (offload_logprob, offload_update) = if self.offloads(workers) {
            let bw = self.framework.offload_gbytes_per_s * 1e9;
            let params = 4.0 * self.model.params_b * 1e9 / self.shard_gpus(workers);
            let state = self.training.optimizer_bytes_per_param * self.model.params_b * 1e9 / self.shard_gpus(workers);
            (2.0 * params / bw, 2.0 * state.max(params) / bw)
        } else {
            (0.0, 0.0)
        };
        TrainCost {
            logprob_ns: self
                .training
                .logprob_passes
                .iter()
                .map(|_| secs_to_ns(passes.logprob_s + offload_logprob + transfer))
                .collect(),
            update_ns: secs_to_ns(
                passes.update_s + self.training.mini_batches as f64 * allreduce + offload_update + transfer,
            ),
        }
    }

    /// The trainer first gathers each full bf16 tensor from its shards (what verl's fully_async README calls the
    /// parameter generation, "the main time consumption"): a Megatron trainer inside the tensor-, pipeline- and
    /// expert-parallel groups of one data-parallel replica (the shard's share of 2N · (1 − 1/group) over the group's
    /// link), an FSDP trainer, which shards over all its G GPUs, 2N · (1 − 1/G) over the slowest link of its ring
    /// (`full_tensor`). Then every receiving GPU that is not a sender gets the full tensors over its widest path
    /// from the senders (an engine's update-weights call hands each of its tp ranks the whole tensor, which the rank
    /// slices), while one that is (time-sliced) keeps its 1/tp slice of what it gathered, a local copy; the slowest
    /// receiver sets the pace; plus a fixed cost (NCCL set-up, the engine's reload).
    fn sync_ns(&self, from: &[WorkerId], to: &[WorkerId]) -> u64 {
        let per_tensor = if self.pipeline.weight_sync_per_tensor {
            self.model.weight_tensors() as f64 * self.ring_allgather_latency_s(from)
        } else {
            0.0
        };
        if to.is_empty() {
            return secs_to_ns(self.pipeline.weight_sync_fixed_s);
        }
        let bytes = self.model.weight_bytes();
        let senders = from.iter().map(|w| self.cluster.worker(*w).gpu_count()).sum::<u32>() as f64;
        let (split, expert_split) = self.parameter_split(senders.max(1.0));
        let gather = if senders <= 1.0 {
            0.0
        } else if split > 1.0 || expert_split > 1.0 {
            let expert_bytes = self.model.expert_params_b() * 1e9 * 2.0;
            let within =
                |group: f64, part: f64| part * (1.0 - 1.0 / group) / (self.link_gbytes_per_s(from, group as u32) * 1e9);
            within(split, bytes - expert_bytes) + within(expert_split, expert_bytes)
        } else {
            bytes * (1.0 - 1.0 / senders) / (self.cluster.ring_gbytes_per_s(from) * 1e9)
        };
        let mut sends = vec![false; self.cluster.workers.len()];
        for w in from {
            sends[w.index()] = true;
        }
        let sources = self.cluster.copy_sources(from);
        let mut slowest: f64 = 0.0;
        for &w in to {
            let received = if sends[w.index()] { bytes / self.cluster.worker(w).tp as f64 } else { bytes };
            slowest = slowest.max(received / (sources.gbytes_per_s_into(&[w]) * 1e9));
        }
        secs_to_ns(gather + slowest + per_tensor + self.pipeline.weight_sync_fixed_s)
    }

    /// Time-slicing: the engine's weights (2·N/tp bytes per GPU) cross PCIe, and so does the sharded training
    /// state ((2 + optimizer bytes)·N/f per GPU, f = `fsdp_size` or the G train GPUs) unless the framework offloads it inside the passes or keeps it in
    /// place; plus a fixed cost (engine sleep/wake, KV-cache re-allocation); or the scenario's override.
    fn switch_ns(&self, worker: WorkerId, to: Role) -> u64 {
        let over = match to {
            Role::Train => self.pipeline.switch_to_train_s,
            Role::Rollout => self.pipeline.switch_to_rollout_s,
        };
        if let Some(s) = over {
            return secs_to_ns(s);
        }
        let w = self.cluster.worker(worker);
        let rollout_bytes = memory::rollout_weight_bytes_per_gpu(&self.model, w.tp);
        let pcie = w.gpu.pcie_gbytes_per_s * 1e9;
        secs_to_ns((rollout_bytes + self.switch_train_bytes_per_gpu) / pcie + self.pipeline.switch_fixed_s)
    }

    fn decode_iteration_ns(&self, worker: WorkerId, batch: u64, context_tokens: u64) -> u64 {
        self.decode_coeffs(self.cluster.worker(worker)).iteration_ns(batch, context_tokens)
    }

    fn rollout_slots(&self, _worker: WorkerId) -> u64 {
        self.rollout.max_num_seqs as u64
    }
}

impl CostModel for AnalyticCosts {
    /// Decode's per-iteration coefficients (docs/cost-model.md). With speculative decoding
    /// (`rollout.speculative_tokens` k > 0, acceptance a) each engine step runs k draft tokens through a one-layer
    /// draft head (DeepSeek's MTP module, EAGLE: one decoder layer and the LM head: its kernels, weights, KV, FLOPs
    /// and per-position work) and verifies the k + 1 positions in one target pass, which reads the weights and each
    /// sequence's KV once, routes (k + 1)·B tokens to the experts and computes k + 1 positions; a sequence gains
    /// E = 1 + a + … + a^k tokens a step on average. The engine's iterations stay one token per sequence, so every
    /// per-step cost is divided by E: fixed costs and reads (1 + k·d) of a plain step plus k LM-head reads, FLOPs,
    /// all-reduce bytes and per-position work (k + 1 + k·d) plus k LM-head products, where d is one layer's share
    /// of the model (1/layers); the host loop and each sequence's scheduling once a step. Without speculation every
    /// factor is 1.
    fn decode_coeffs(&self, worker: &Worker) -> DecodeCoeffs {
        let tp = worker.tp as f64;
        let hbm = self.hbm_bytes_per_s(worker);
        let flops = tp * self.matmul_flops(worker) * self.rollout.decode_compute_efficiency;
        let kv_split = self.model.kv_shards(worker.tp) as f64;
        let expert_bytes = self.model.expert_params_b() * 1e9 * 2.0;
        // An eager engine's elementwise work per sequence per layer (width, per-head calls) and outside the layers,
        // added to the host time per sequence, and per context token (attention scores, KV): the latter adds to
        // both lines of the max, since it is spent whichever bound the matmuls hit (to one of them when the engine
        // adds the lines). Tensor parallelism splits it like the rest of the layer.
        let layers = self.model.layers as f64;
        let elementwise = self.framework.decode_elementwise.at(self.model.hidden, self.model.heads);
        // Speculation's factors (1, 1, 1 and no head terms without it).
        let k = self.rollout.speculative_tokens as f64;
        let e = self.rollout.tokens_per_step();
        let d = 1.0 / layers.max(1.0);
        let (reads, work) = (1.0 + k * d, k + 1.0 + k * d);
        let head = self.model.vocab as f64 * self.model.hidden as f64;
        let context_fs = secs_to_fs(layers * elementwise.token_context_s / tp * work / e);
        let host_loop_s = self.rollout.iteration_overhead_s;
        DecodeCoeffs {
            overhead_fs: secs_to_fs(if k == 0.0 {
                self.iteration_overhead_s(worker)
            } else {
                (host_loop_s + (self.iteration_overhead_s(worker) - host_loop_s) * reads) / e
            }),
            host_fs_per_seq: secs_to_fs(
                (self.rollout.seq_overhead_s
                    + (layers * (elementwise.token_s + elementwise.sequence_s) + elementwise.outside_token_s) / tp
                        * work)
                    / e,
            ),
            allreduce_fs_per_seq: secs_to_fs(self.tp_allreduce_s_per_token(worker) * work / e),
            weights_fs: secs_to_fs(
                ((self.model.decode_weight_bytes() - expert_bytes) * reads + k * head * 2.0) / tp / hbm / e,
            ),
            expert_weights_fs: secs_to_fs(expert_bytes * reads / tp / hbm / e),
            experts: self.model.experts,
            experts_per_token: self.model.experts_per_token,
            kv_fs_per_token: secs_to_fs(
                self.model.kv_bytes_per_token() / kv_split / self.kv_read_bytes_per_s(worker) * reads / e,
            ) + context_fs,
            compute_fs_per_seq: secs_to_fs((self.model.forward_flops_per_token() * work + k * 2.0 * head) / flops / e),
            attention_fs_per_token: secs_to_fs(self.model.attention_flops_per_context_token() / flops * work / e)
                + if self.framework.decode_overlap { context_fs } else { 0 },
            serial: !self.framework.decode_overlap,
            copies_per_seq: 1,
            positions_per_seq: self.rollout.speculative_tokens + 1,
        }
    }

    fn prefill_coeffs(&self, worker: &Worker) -> PrefillCoeffs {
        let tp = worker.tp as f64;
        PrefillCoeffs {
            overhead_fs: secs_to_fs(self.iteration_overhead_s(worker)),
            per_seq_fs: 0,
            weights_fs: secs_to_fs(self.model.decode_weight_bytes() / tp / self.hbm_bytes_per_s(worker)),
            compute_fs_per_token: secs_to_fs(
                self.model.forward_flops_per_token() / (tp * self.matmul_flops(worker) * self.rollout.prefill_mfu),
            ),
            allreduce_fs_per_token: secs_to_fs(self.tp_allreduce_s_per_token(worker)),
        }
    }

    fn kv_capacity_tokens(&self, worker: &Worker) -> u64 {
        crate::cost::kv_capacity(&self.rollout, &self.model, worker)
    }

    /// Synchronous pipelines wait for the controller's per-step work (no padded transfer here: verl's step minus
    /// its phases is ~11 s on 64 and 128 GPUs, which leaves no room for one outside the passes). Streaming ones
    /// (async, seamless) score each sample as it finishes, off the trainer's path, but their trainer assembles
    /// each step's batch from the queued samples, padded to the caps, before it computes.
    fn controller_ns(&self, samples: u64) -> u64 {
        if matches!(self.pipeline.kind, PipelineKind::Async | PipelineKind::Seamless) {
            let slots = samples as f64 * self.padded_tokens_per_sample as f64;
            return secs_to_ns(slots * self.framework.assembly_ns_per_padded_token * 1e-9);
        }
        secs_to_ns(self.framework.step_overhead_s)
    }
}

/// Greatest common divisor (Euclid).
fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
