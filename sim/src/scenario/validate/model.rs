//! `[model]`.

use crate::model::{model_preset, ModelSpec, MODEL_PRESETS};
use crate::scenario::check::Check;
use crate::scenario::{RawModel, ScenarioError};

pub(super) fn validate_model(m: &RawModel, c: &Check) -> Result<ModelSpec, ScenarioError> {
    let base = match &m.preset {
        Some(p) => Some(model_preset(p).ok_or_else(|| {
            c.src.error(
                "model.preset",
                format!(
                    "unknown model preset {p:?}; expected one of {} (or give explicit fields)",
                    MODEL_PRESETS.join(", ")
                ),
            )
        })?),
        None => None,
    };
    let explicit = "a preset (model.preset) or this field";
    let params_b = c.positive(m.params_b.or(base.as_ref().map(|b| b.params_b)), "model.params_b", None, explicit)?;
    let layers = c.count(m.layers.or(base.as_ref().map(|b| b.layers)), "model.layers", None, explicit)?;
    let hidden = c.count(m.hidden.or(base.as_ref().map(|b| b.hidden)), "model.hidden", None, explicit)?;
    let heads = c.count(m.heads.or(base.as_ref().map(|b| b.heads)), "model.heads", None, explicit)?;
    let kv_heads =
        c.count(m.kv_heads.or(base.as_ref().map(|b| b.kv_heads)), "model.kv_heads", Some(heads), "key/value heads")?;
    let head_dim = c.count(
        m.head_dim.or(base.as_ref().map(|b| b.head_dim)),
        "model.head_dim",
        Some(hidden / heads.max(1)),
        "dimension per head",
    )?;
    let vocab = c.count(m.vocab.or(base.as_ref().map(|b| b.vocab)), "model.vocab", None, explicit)?;
    let active_params_b = c.positive(
        m.active_params_b.or(base.as_ref().map(|b| b.active_params_b)),
        "model.active_params_b",
        Some(params_b),
        "billions of parameters active per token",
    )?;
    if active_params_b > params_b {
        return Err(c.src.error("model.active_params_b", format!("{active_params_b} exceeds params_b {params_b}")));
    }
    if kv_heads > heads || heads % kv_heads != 0 {
        return Err(c.src.error("model.kv_heads", format!("{kv_heads} must divide heads ({heads})")));
    }
    let experts = m.experts.or(base.as_ref().map(|b| b.experts)).unwrap_or(0);
    let experts_per_token = m.experts_per_token.or(base.as_ref().map(|b| b.experts_per_token)).unwrap_or(0);
    if (experts == 0) != (experts_per_token == 0) || experts_per_token > experts {
        return Err(c.src.error(
            if m.experts_per_token.is_some() { "model.experts_per_token" } else { "model.experts" },
            format!("expected both experts and experts_per_token (k ≤ E) or neither, got E = {experts}, k = {experts_per_token}"),
        ));
    }
    if experts > 0 && active_params_b >= params_b {
        return Err(c.src.error(
            "model.active_params_b",
            format!("an MoE model ({experts} experts) activates fewer parameters than it has; got {active_params_b} of {params_b}"),
        ));
    }
    let spec = |name: String| ModelSpec {
        name,
        params_b,
        active_params_b,
        layers,
        hidden,
        heads,
        kv_heads,
        head_dim,
        vocab,
        experts,
        experts_per_token,
    };
    // "(modified)" only when an explicit field changes the preset (a resolved file repeats the preset's values).
    let name = match &base {
        Some(b) if *b == spec(b.name.clone()) => b.name.clone(),
        Some(b) => format!("{} (modified)", b.name),
        None => "custom".to_string(),
    };
    Ok(spec(name))
}

/// The `[model]` table with every figure filled in.
pub(super) fn resolved_model(raw: &RawModel, model: &ModelSpec) -> RawModel {
    RawModel {
        preset: raw.preset.as_ref().map(|_| model.name.clone()),
        params_b: Some(model.params_b),
        active_params_b: Some(model.active_params_b),
        layers: Some(model.layers),
        hidden: Some(model.hidden),
        heads: Some(model.heads),
        kv_heads: Some(model.kv_heads),
        head_dim: Some(model.head_dim),
        vocab: Some(model.vocab),
        experts: (model.experts > 0).then_some(model.experts),
        experts_per_token: (model.experts > 0).then_some(model.experts_per_token),
    }
}
