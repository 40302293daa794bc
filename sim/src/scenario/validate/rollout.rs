//! `[rollout]`: the rollout engines' settings.

use crate::framework::FrameworkSpec;
use crate::scenario::check::Check;

/// Most KV-cache tokens one engine may be given (10¹²: terabytes of cache for the smallest models).
const MAX_KV_TOKENS: u64 = 1_000_000_000_000;
/// Most draft tokens per sequence per decode step (speculative decoding proposes a handful).
const MAX_SPECULATIVE_TOKENS: u32 = 16;
use crate::scenario::{RawRollout, RawScenario, RolloutSpec, ScenarioError};

pub(super) fn validate_rollout(
    r: &RawRollout,
    fw: &FrameworkSpec,
    c: &Check,
    resolved: &mut RawScenario,
) -> Result<RolloutSpec, ScenarioError> {
    let layer_launch_s = if fw.cuda_graphs { fw.graph_layer_us } else { fw.eager_layer_us } / 1e6;
    let speculative_tokens = match r.speculative_tokens.unwrap_or(0) {
        v if v > MAX_SPECULATIVE_TOKENS => {
            return Err(c.src.error(
                "rollout.speculative_tokens",
                format!("must be at most {MAX_SPECULATIVE_TOKENS} (draft tokens per sequence per step), got {v}"),
            ))
        }
        v => v,
    };
    let speculative_acceptance = match (speculative_tokens, r.speculative_acceptance) {
        (0, None) => 0.0,
        // An explicit 0 says "no speculation" (a sweep's point of --vary rollout.speculative_tokens=0,1,2): the
        // acceptance has nothing to apply to and is dropped from the resolved file.
        (0, Some(_)) if r.speculative_tokens == Some(0) => 0.0,
        (0, Some(_)) => {
            return Err(c.src.error(
                "rollout.speculative_acceptance",
                "is the acceptance of draft tokens; expected rollout.speculative_tokens (at least 1) with it",
            ))
        }
        (_, None) => {
            return Err(c.src.error(
                "rollout.speculative_acceptance",
                "missing; expected the chance the target accepts each draft token, in [0, 1], with \
                 rollout.speculative_tokens (it depends on the model, the draft head and the sampling: no default)",
            ))
        }
        (_, Some(a)) if !(0.0..=1.0).contains(&a) => {
            return Err(c.src.error(
                "rollout.speculative_acceptance",
                format!("expected a chance in [0, 1] (each draft token's acceptance), got {a}"),
            ))
        }
        (_, Some(a)) => a,
    };
    let rollout = RolloutSpec {
        tp: c.count_max(r.tp, "rollout.tp", Some(1), 1 << 16, "tensor-parallel degree of each rollout engine")?,
        gpu_memory_utilization: c.fraction(
            r.gpu_memory_utilization,
            "rollout.gpu_memory_utilization",
            0.9,
            "share of GPU memory for weights and KV cache",
        )?,
        max_num_seqs: c.count_max(
            r.max_num_seqs,
            "rollout.max_num_seqs",
            Some(256),
            1 << 20,
            "most sequences decoded at once per engine",
        )?,
        hbm_efficiency: c.fraction(
            r.hbm_efficiency,
            "rollout.hbm_efficiency",
            fw.hbm_efficiency,
            "achieved share of HBM bandwidth",
        )?,
        kv_read_efficiency: c.fraction(
            r.kv_read_efficiency,
            "rollout.kv_read_efficiency",
            fw.kv_read_efficiency,
            "achieved share of peak HBM bandwidth reading the KV cache",
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
            10_000.0,
            "milliseconds",
        )? / 1e3,
        tp_allreduce_s: c.number(
            r.tp_allreduce_us,
            "rollout.tp_allreduce_us",
            fw.tp_allreduce_us,
            0.0,
            1e6,
            "microseconds",
        )? / 1e6,
        tp_allreduce_internode_s: c.number(
            r.tp_allreduce_internode_us,
            "rollout.tp_allreduce_internode_us",
            fw.tp_allreduce_internode_us,
            0.0,
            1e6,
            "microseconds",
        )? / 1e6,
        seq_overhead_s: fw.seq_overhead_us / 1e6,
        layer_launch_s,
        prefix_caching: r.prefix_caching.unwrap_or(true),
        kv_capacity_tokens: match r.kv_capacity_tokens {
            Some(0) => return Err(c.src.error("rollout.kv_capacity_tokens", "must be at least 1 token, got 0")),
            Some(v) if v > MAX_KV_TOKENS => {
                return Err(c.src.error(
                    "rollout.kv_capacity_tokens",
                    format!("must be at most {MAX_KV_TOKENS} tokens (KV-cache capacity of one engine), got {v}"),
                ))
            }
            v => v,
        },
        speculative_tokens,
        speculative_acceptance,
    };
    resolved.rollout = RawRollout {
        tp: Some(rollout.tp),
        gpu_memory_utilization: Some(rollout.gpu_memory_utilization),
        max_num_seqs: Some(rollout.max_num_seqs),
        hbm_efficiency: Some(rollout.hbm_efficiency),
        kv_read_efficiency: Some(rollout.kv_read_efficiency),
        decode_compute_efficiency: Some(rollout.decode_compute_efficiency),
        prefill_mfu: Some(rollout.prefill_mfu),
        iteration_overhead_ms: Some(rollout.iteration_overhead_s * 1e3),
        tp_allreduce_us: Some(rollout.tp_allreduce_s * 1e6),
        tp_allreduce_internode_us: Some(rollout.tp_allreduce_internode_s * 1e6),
        prefix_caching: Some(rollout.prefix_caching),
        kv_capacity_tokens: rollout.kv_capacity_tokens,
        speculative_tokens: (rollout.speculative_tokens > 0).then_some(rollout.speculative_tokens),
        speculative_acceptance: (rollout.speculative_tokens > 0).then_some(rollout.speculative_acceptance),
    };
    Ok(rollout)
}
