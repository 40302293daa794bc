//! `[framework]`: a preset of the framework's constants, with the scenario's overrides.

use crate::framework::{Elementwise, FrameworkSpec};
use crate::scenario::check::{Check, BANDWIDTH};
use crate::scenario::{RawFramework, RawScenario, ScenarioError};

pub(super) fn validate_framework(
    fw_raw: &RawFramework,
    c: &Check,
    resolved: &mut RawScenario,
) -> Result<FrameworkSpec, ScenarioError> {
    let fw_name = fw_raw.preset.clone().unwrap_or_else(|| crate::framework::DEFAULT_FRAMEWORK.to_string());
    let mut framework = crate::framework::framework_preset(&fw_name).ok_or_else(|| {
        c.src.error(
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
    if let Some(o) = fw_raw.decode_overlap {
        framework.decode_overlap = o;
    }
    if let Some(o) = fw_raw.offload {
        framework.offload = o;
    }
    if let Some(r) = fw_raw.remove_padding {
        framework.remove_padding = r;
    }
    if let Some(m) = fw_raw.switch_moves_training_state {
        framework.switch_moves_training_state = m;
    }
    // Host costs: at most a second per token slot, sequence or layer, and MAX_SECONDS per step.
    let fw_num = |v: Option<f64>, field: &str, default: f64, what: &str| {
        c.number(v, &format!("framework.{field}"), default, 0.0, 1e6, what)
    };
    framework.step_overhead_s =
        c.seconds(fw_raw.step_overhead_s, "framework.step_overhead_s", framework.step_overhead_s, "seconds per step")?;
    framework.controller_ns_per_padded_token = fw_num(
        fw_raw.controller_ns_per_padded_token,
        "controller_ns_per_padded_token",
        framework.controller_ns_per_padded_token,
        "nanoseconds per padded token slot",
    )?;
    framework.assembly_ns_per_padded_token = fw_num(
        fw_raw.assembly_ns_per_padded_token,
        "assembly_ns_per_padded_token",
        framework.assembly_ns_per_padded_token,
        "nanoseconds per padded token slot",
    )?;
    framework.seq_overhead_us =
        fw_num(fw_raw.seq_overhead_us, "seq_overhead_us", framework.seq_overhead_us, "microseconds")?;
    framework.graph_layer_us =
        fw_num(fw_raw.graph_layer_us, "graph_layer_us", framework.graph_layer_us, "microseconds")?;
    framework.eager_layer_us =
        fw_num(fw_raw.eager_layer_us, "eager_layer_us", framework.eager_layer_us, "microseconds")?;
    framework.offload_gbytes_per_s = c.range(
        fw_raw.offload_gbytes_per_s,
        "framework.offload_gbytes_per_s",
        Some(framework.offload_gbytes_per_s),
        BANDWIDTH.0,
        BANDWIDTH.1,
        "GB/s",
    )?;
    framework.moe_mfu_scale = c.fraction(
        fw_raw.moe_mfu_scale,
        "framework.moe_mfu_scale",
        framework.moe_mfu_scale,
        "an MoE trainer's utilisation as a share of the dense one's",
    )?;
    framework.attention_efficiency = c.fraction(
        fw_raw.attention_efficiency,
        "framework.attention_efficiency",
        framework.attention_efficiency,
        "a training pass's attention FLOP rate as a share of its matmuls'",
    )?;
    let groups = fw_raw.stream_groups_per_engine.unwrap_or(framework.stream_groups_per_engine);
    if groups > 1_048_576 {
        return Err(c.src.error(
            "framework.stream_groups_per_engine",
            format!("must be at most 1048576 (prompt groups in flight per rollout engine; 0: no cap), got {groups}"),
        ));
    }
    framework.stream_groups_per_engine = groups;
    framework.activation_traffic = c.number(
        fw_raw.activation_traffic,
        "framework.activation_traffic",
        framework.activation_traffic,
        0.0,
        4.0,
        "a multiple of the model's activation bytes per token (1: unfused, 0: none)",
    )?;
    let elementwise =
        |v: &Option<Elementwise>, field: &str, default: Elementwise| -> Result<Elementwise, ScenarioError> {
            let Some(v) = v else { return Ok(default) };
            for (name, x) in v.fields() {
                c.number(Some(x), &format!("framework.{field}.{name}"), 0.0, 0.0, 1e9, "nanoseconds")?;
            }
            Ok(*v)
        };
    framework.logprob_elementwise =
        elementwise(&fw_raw.logprob_elementwise, "logprob_elementwise", framework.logprob_elementwise)?;
    framework.update_elementwise =
        elementwise(&fw_raw.update_elementwise, "update_elementwise", framework.update_elementwise)?;
    framework.decode_elementwise =
        elementwise(&fw_raw.decode_elementwise, "decode_elementwise", framework.decode_elementwise)?;
    resolved.framework = RawFramework {
        logprob_elementwise: Some(framework.logprob_elementwise),
        update_elementwise: Some(framework.update_elementwise),
        decode_elementwise: Some(framework.decode_elementwise),
        moe_mfu_scale: Some(framework.moe_mfu_scale),
        attention_efficiency: Some(framework.attention_efficiency),
        activation_traffic: Some(framework.activation_traffic),
        stream_groups_per_engine: Some(framework.stream_groups_per_engine),
        preset: Some(framework.name.clone()),
        cuda_graphs: Some(framework.cuda_graphs),
        decode_overlap: Some(framework.decode_overlap),
        offload: Some(framework.offload),
        switch_moves_training_state: Some(framework.switch_moves_training_state),
        remove_padding: Some(framework.remove_padding),
        step_overhead_s: Some(framework.step_overhead_s),
        controller_ns_per_padded_token: Some(framework.controller_ns_per_padded_token),
        assembly_ns_per_padded_token: Some(framework.assembly_ns_per_padded_token),
        seq_overhead_us: Some(framework.seq_overhead_us),
        graph_layer_us: Some(framework.graph_layer_us),
        eager_layer_us: Some(framework.eager_layer_us),
        offload_gbytes_per_s: Some(framework.offload_gbytes_per_s),
    };
    Ok(framework)
}
