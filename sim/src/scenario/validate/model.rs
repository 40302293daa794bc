//! `[model]`.

use crate::model::{model_preset, ModelSpec, MODEL_ALIASES, MODEL_PRESETS};
use crate::scenario::check::{num, Check};

/// Most billions of parameters (100 trillion).
const MAX_PARAMS_B: f64 = 100_000.0;
/// Most routed experts per MoE layer.
const MAX_EXPERTS: u32 = 100_000;
use crate::scenario::{RawModel, ScenarioError};

pub(super) fn validate_model(m: &RawModel, c: &Check) -> Result<ModelSpec, ScenarioError> {
    let base = match &m.preset {
        Some(p) => Some(model_preset(p).ok_or_else(|| {
            c.src.error(
                "model.preset",
                format!(
                    "unknown model preset {p:?}; expected one of {}, or an alias: {} (or give explicit fields)",
                    MODEL_PRESETS.join(", "),
                    MODEL_ALIASES.iter().map(|a| a.0).collect::<Vec<_>>().join(", ")
                ),
            )
        })?),
        None => None,
    };
    let explicit = "a preset (model.preset) or this field";
    let b = base.as_ref();
    // A dimension from the file or the preset, at most `max`.
    let dim = |v: Option<u32>, field: &str, max: u32, what: &str| {
        let v = c.require(v, field, &format!("a positive integer ({explicit})"))?;
        c.count_max(Some(v), field, None, max, what)
    };
    let params_b = c.require(
        m.params_b.or(b.map(|b| b.params_b)),
        "model.params_b",
        "a positive number (a preset (model.preset) or this field)",
    )?;
    let params_b = c.positive(Some(params_b), "model.params_b", None, MAX_PARAMS_B, "billions of parameters")?;
    let layers = dim(m.layers.or(b.map(|b| b.layers)), "model.layers", 10_000, "transformer layers")?;
    let hidden = dim(m.hidden.or(b.map(|b| b.hidden)), "model.hidden", 1 << 20, "hidden size")?;
    let heads = dim(m.heads.or(b.map(|b| b.heads)), "model.heads", 1 << 16, "attention heads")?;
    let kv_heads = c.count(m.kv_heads.or(b.map(|b| b.kv_heads)), "model.kv_heads", Some(heads), "key/value heads")?;
    let head_dim = c.count_max(
        m.head_dim.or(b.map(|b| b.head_dim)),
        "model.head_dim",
        Some(hidden / heads.max(1)),
        1 << 16,
        "dimension per head",
    )?;
    let vocab = dim(m.vocab.or(b.map(|b| b.vocab)), "model.vocab", 100_000_000, "vocabulary size")?;
    let active_params_b = c.positive(
        m.active_params_b.or(b.map(|b| b.active_params_b)),
        "model.active_params_b",
        Some(params_b),
        MAX_PARAMS_B,
        "billions of parameters active per token",
    )?;
    if active_params_b > params_b {
        return Err(c
            .src
            .error("model.active_params_b", format!("{} exceeds params_b {}", num(active_params_b), num(params_b))));
    }
    if kv_heads > heads || heads % kv_heads != 0 {
        return Err(c.src.error("model.kv_heads", format!("{kv_heads} must divide heads ({heads})")));
    }
    let experts = m.experts.or(base.as_ref().map(|b| b.experts)).unwrap_or(0);
    if experts > MAX_EXPERTS {
        return Err(c.src.error(
            "model.experts",
            format!("must be at most {MAX_EXPERTS} (routed experts per MoE layer), got {experts}"),
        ));
    }
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
            format!(
                "an MoE model ({experts} experts) activates fewer parameters than it has; got {} of {}",
                num(active_params_b),
                num(params_b)
            ),
        ));
    }
    let tied_embeddings = m.tied_embeddings.or(base.as_ref().map(|b| b.tied_embeddings)).unwrap_or(false);
    // Multi-head latent attention: absent fields keep the preset's (0 without one: standard attention).
    let latent = |v: Option<u32>, preset: fn(&ModelSpec) -> u32, field: &str, max: u32, what: &str| {
        let v = v.or(b.map(preset)).unwrap_or(0);
        if v > max {
            return Err(c.src.error(field, format!("must be at most {max} ({what}), got {v}")));
        }
        Ok(v)
    };
    let kv_lora_rank =
        latent(m.kv_lora_rank, |b| b.kv_lora_rank, "model.kv_lora_rank", 1 << 16, "MLA's key/value latent width")?;
    let q_lora_rank =
        latent(m.q_lora_rank, |b| b.q_lora_rank, "model.q_lora_rank", 1 << 16, "MLA's query latent width")?;
    let qk_rope_head_dim = latent(
        m.qk_rope_head_dim,
        |b| b.qk_rope_head_dim,
        "model.qk_rope_head_dim",
        1 << 16,
        "MLA's rotary key width per head",
    )?;
    if kv_lora_rank == 0 && (q_lora_rank > 0 || qk_rope_head_dim > 0) {
        // Name the field the user set: a latent turned off on an MLA preset, or an MLA width given without one.
        if m.kv_lora_rank.is_some() {
            return Err(c.src.error(
                "model.kv_lora_rank",
                format!(
                    "0 turns multi-head latent attention off, but q_lora_rank {q_lora_rank} and qk_rope_head_dim \
                     {qk_rope_head_dim} are latent widths; expected them 0 too"
                ),
            ));
        }
        return Err(c.src.error(
            if q_lora_rank > 0 { "model.q_lora_rank" } else { "model.qk_rope_head_dim" },
            "is a multi-head latent attention width; expected model.kv_lora_rank (the key/value latent) with it",
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
        tied_embeddings,
        kv_lora_rank,
        q_lora_rank,
        qk_rope_head_dim,
    };
    // The untied input embedding is looked up: it must leave dense (always-active) parameters for the matmuls.
    let probe = spec(String::new());
    let dense_b = (probe.params_b - probe.expert_params_b()).min(probe.active_params_b);
    if probe.lookup_params_b() >= dense_b {
        return Err(c.src.error(
            "model.vocab",
            format!(
                "an untied input embedding of {vocab} × {hidden} = {} B parameters leaves none of the {} B dense \
                 parameters for the matmuls; expected fewer (or `tied_embeddings = true`)",
                num(probe.lookup_params_b()),
                num(dense_b)
            ),
        ));
    }
    // "(modified)" only when an explicit field changes the preset (a resolved file repeats the preset's values).
    let name = match &base {
        Some(b) if *b == spec(b.name.clone()) => b.name.clone(),
        Some(b) => format!("{} (modified)", b.name),
        None => "custom".to_string(),
    };
    Ok(spec(name))
}

/// The `[model]` table with every figure filled in, so that loading it gives the same model: a modified preset keeps
/// the preset's own name (its label "NAME (modified)" names no preset), and the MoE and MLA figures are written
/// whenever the model or its preset has them (an explicit 0 that turns a preset's experts or latent off stays 0).
pub(super) fn resolved_model(raw: &RawModel, model: &ModelSpec) -> RawModel {
    let base = raw.preset.as_deref().and_then(model_preset);
    let moe = model.experts > 0 || base.as_ref().is_some_and(|b| b.experts > 0);
    let mla = model.is_mla() || base.as_ref().is_some_and(|b| b.is_mla());
    RawModel {
        preset: raw.preset.as_ref().map(|p| {
            if model.name.ends_with(" (modified)") {
                p.clone()
            } else {
                model.name.clone()
            }
        }),
        params_b: Some(model.params_b),
        active_params_b: Some(model.active_params_b),
        layers: Some(model.layers),
        hidden: Some(model.hidden),
        heads: Some(model.heads),
        kv_heads: Some(model.kv_heads),
        head_dim: Some(model.head_dim),
        vocab: Some(model.vocab),
        experts: moe.then_some(model.experts),
        experts_per_token: moe.then_some(model.experts_per_token),
        tied_embeddings: Some(model.tied_embeddings),
        kv_lora_rank: mla.then_some(model.kv_lora_rank),
        q_lora_rank: mla.then_some(model.q_lora_rank),
        qk_rope_head_dim: mla.then_some(model.qk_rope_head_dim),
    }
}
