//! GPU memory budgets: rollout weights and KV-cache capacity, and the training footprint.

use crate::hardware::GpuSpec;
use crate::model::ModelSpec;

/// Bytes of weights each GPU of a tensor-parallel rollout engine holds.
pub fn rollout_weight_bytes_per_gpu(model: &ModelSpec, tp: u32) -> f64 {
    model.weight_bytes() / tp as f64
}

/// Bytes a rollout GPU may use: memory × `gpu_memory_utilization` (vLLM's knob of the same name).
pub fn rollout_usable_bytes_per_gpu(gpu: &GpuSpec, gpu_memory_utilization: f64) -> f64 {
    gpu.memory_gb * 1e9 * gpu_memory_utilization
}

/// KV-cache tokens an engine of `tp` GPUs holds after its weights; negative when the weights alone do not fit.
/// KV heads are split across the tensor-parallel GPUs (replicated when there are fewer KV heads than GPUs; an MLA
/// latent is whole on every GPU, `ModelSpec::kv_shards`).
pub fn kv_capacity_tokens(model: &ModelSpec, gpu: &GpuSpec, tp: u32, gpu_memory_utilization: f64) -> i64 {
    let free = rollout_usable_bytes_per_gpu(gpu, gpu_memory_utilization) - rollout_weight_bytes_per_gpu(model, tp);
    let kv_per_gpu = model.kv_bytes_per_token() / model.kv_shards(tp) as f64;
    (free / kv_per_gpu).floor() as i64
}

/// Bytes per GPU to train with sharded data parallelism (FSDP / ZeRO-3) over `gpus` (all the train GPUs, or one
/// hybrid-sharding copy's `training.fsdp_size`): bf16 weights and
/// gradients (2 + 2 bytes per parameter) plus the optimizer state, all sharded, plus a fixed activation reserve.
pub fn train_bytes_per_gpu(
    model: &ModelSpec,
    gpus: u32,
    optimizer_bytes_per_param: f64,
    activation_reserve_gb: f64,
) -> f64 {
    model.params_b * 1e9 * (4.0 + optimizer_bytes_per_param) / gpus as f64 + activation_reserve_gb * 1e9
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::gpu_preset;
    use crate::model::model_preset;

    #[test]
    fn qwen32b_on_h800_tp4_hand_computed() {
        let m = model_preset("Qwen2.5-32B").unwrap();
        let g = gpu_preset("H800").unwrap();
        // 72e9 usable − 16.4e9 weights = 55.6e9; KV per GPU per token = 2·64·8·128·2 / 4 = 65,536 bytes
        assert_eq!(kv_capacity_tokens(&m, &g, 4, 0.9), (55.6e9f64 / 65_536.0).floor() as i64);
        assert!(kv_capacity_tokens(&m, &g, 1, 0.9) > 0);
        assert!(kv_capacity_tokens(&model_preset("Llama-3-70B").unwrap(), &g, 1, 0.9) < 0);
        // (4 + 12) · 32.8e9 / 64 + 8e9
        assert!((train_bytes_per_gpu(&m, 64, 12.0, 8.0) - (16.0 * 32.8e9 / 64.0 + 8e9)).abs() < 1.0);
    }
}
