//! Memory: rollout weights and KV cache per engine, sharded training state per GPU.

use crate::cluster::Cluster;
use crate::costs::memory;
use crate::hardware::GpuSpec;
use crate::model::ModelSpec;
use crate::scenario::check::Check;
use crate::scenario::{RolloutSpec, ScenarioError, TrainingSpec};
use crate::workload::WorkloadSpec;

pub(super) fn check_memory(
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
    // A GPU holds its share of one copy of the training state (hybrid sharding: `fsdp_size` GPUs per copy).
    let shard_gpus = training.shard_gpus(train_gpus);
    let need = memory::train_bytes_per_gpu(
        model,
        shard_gpus,
        training.optimizer_bytes_per_param,
        training.activation_reserve_gb,
    );
    // Sharded training: the smallest GPU of the train pool must hold its shard.
    let gpu =
        cluster.with_tag("train").map(|w| &w.gpu).min_by(|a, b| a.memory_gb.total_cmp(&b.memory_gb)).unwrap_or(gpu);
    let have = gpu.memory_gb * 1e9;
    if need > have {
        // With hybrid sharding the shard no longer shrinks with the GPUs: the copy's width is what to raise.
        let hybrid = shard_gpus < train_gpus;
        let field = if hybrid {
            "training.fsdp_size"
        } else if explicit {
            "cluster.workers"
        } else {
            "cluster.nodes"
        };
        let fix = if hybrid {
            format!("raise training.fsdp_size (a divisor of the {train_gpus} train GPUs) or leave it out")
        } else {
            "add train GPUs".to_string()
        };
        return Err(c.src.error(
            field,
            format!(
                "training {} on {train_gpus} GPUs (sharded over {shard_gpus}) needs {:.2} GB per GPU (weights+grads+{} state, plus {} GB activations) but a {} has {:.2} GB: short by {:.2} GB; {fix}",
                model.name, need / 1e9, training.optimizer, training.activation_reserve_gb, gpu.name, have / 1e9, (need - have) / 1e9
            ),
        ));
    }
    Ok(())
}

/// The KV cache of every rollout worker must hold one sequence of the longest context.
pub(super) fn check_kv_capacity(
    model: &ModelSpec,
    cluster: &Cluster,
    rollout: &RolloutSpec,
    workload: &WorkloadSpec,
    c: &Check,
) -> Result<(), ScenarioError> {
    for w in cluster.with_tag("rollout") {
        let cap = rollout.kv_capacity_tokens.map_or_else(
            || memory::kv_capacity_tokens(model, &w.gpu, w.tp, rollout.gpu_memory_utilization),
            |v| v as i64,
        );
        let longest = workload.max_context_tokens as i64 + 1;
        if cap < longest {
            let reach = format!(
                "one sequence can reach {longest} tokens (max_prompt_tokens {} + max_response_tokens {}{} + 1)",
                workload.max_prompt_tokens,
                workload.max_response_tokens,
                if workload.is_multi_turn() { " + tool outputs, up to max_context_tokens" } else { "" },
            );
            // A capacity set by hand is the field too small; otherwise the memory formula's is.
            return Err(match rollout.kv_capacity_tokens {
                Some(set) => c.src.error(
                    "rollout.kv_capacity_tokens",
                    format!(
                        "{reach} but rollout.kv_capacity_tokens gives each engine KV cache for only {set} tokens; raise kv_capacity_tokens to at least {longest} or lower the caps"
                    ),
                ),
                None => c.src.error(
                    "workload.max_response_tokens",
                    format!(
                        "{reach} but worker `{}` (tp={}) has KV cache for only {cap}; raise rollout.tp or lower the caps",
                        w.name, w.tp
                    ),
                ),
            });
        }
        // A coarse-grained engine holds coarsen copies of every sequence in its cache.
        let k = workload.coarsen.max(1) as i64;
        if k > 1 && cap / k < longest {
            return Err(c.src.error(
                "workload.coarsen",
                format!(
                    "each simulated sequence stands for {k} sequences of up to {longest} tokens, but worker `{}` has KV cache for only {cap} tokens; expected coarsen at most {} (the copies of the longest it holds)",
                    w.name,
                    cap / longest
                ),
            ));
        }
    }
    Ok(())
}
