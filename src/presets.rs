//! `rlsim presets`: the built-in models, GPUs and frameworks a scenario can name, with their figures.

use rlsim_sim::framework::{framework_preset, FrameworkSpec, FRAMEWORK_PRESETS};
use rlsim_sim::hardware::{gpu_preset, GpuSpec, GPU_ALIASES, GPU_PRESETS};
use rlsim_sim::model::{model_preset, ModelSpec, MODEL_ALIASES, MODEL_PRESETS};
use serde::Serialize;

/// Which presets to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Models,
    Gpus,
    Frameworks,
}

/// Every preset of the chosen kinds (the `--json` shape).
#[derive(Serialize, Default)]
pub struct Presets {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelSpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub model_aliases: Vec<Alias>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuSpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpu_aliases: Vec<Alias>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub frameworks: Vec<FrameworkSpec>,
}

/// Another name for a preset.
#[derive(Serialize)]
pub struct Alias {
    pub alias: &'static str,
    pub preset: &'static str,
}

/// The presets of `kinds` (all three when empty).
pub fn collect(kinds: &[Kind]) -> Presets {
    let want = |k| kinds.is_empty() || kinds.contains(&k);
    let aliases =
        |list: &[(&'static str, &'static str)]| list.iter().map(|&(alias, preset)| Alias { alias, preset }).collect();
    let mut p = Presets::default();
    if want(Kind::Models) {
        p.models = MODEL_PRESETS.iter().filter_map(|n| model_preset(n)).collect();
        p.model_aliases = aliases(MODEL_ALIASES);
    }
    if want(Kind::Gpus) {
        p.gpus = GPU_PRESETS.iter().filter_map(|n| gpu_preset(n)).collect();
        p.gpu_aliases = aliases(GPU_ALIASES);
    }
    if want(Kind::Frameworks) {
        p.frameworks = FRAMEWORK_PRESETS.iter().filter_map(|n| framework_preset(n)).collect();
    }
    p
}

/// Aligned columns: the header, then one line per row.
fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&width).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out += &line(width.iter().map(|w| "-".repeat(*w)).collect());
    for r in rows {
        out += &line(r.clone());
    }
    out
}

/// The tables `rlsim presets` prints.
pub fn text(p: &Presets) -> String {
    let mut out = String::new();
    // A blank line between tables, none after the last.
    let gap = |out: &mut String| {
        if !out.is_empty() {
            out.push('\n');
        }
    };
    if !p.models.is_empty() {
        out += "models (from each config.json; [model] preset = \"NAME\")\n";
        let rows: Vec<Vec<String>> = p
            .models
            .iter()
            .map(|m| {
                vec![
                    m.name.clone(),
                    format!("{:.2}", m.params_b),
                    format!("{:.2}", m.active_params_b),
                    m.layers.to_string(),
                    m.hidden.to_string(),
                    if m.is_mla() {
                        format!("{}/MLA {}+{}", m.heads, m.kv_lora_rank, m.qk_rope_head_dim)
                    } else {
                        format!("{}/{}", m.heads, m.kv_heads)
                    },
                    m.head_dim.to_string(),
                    m.vocab.to_string(),
                    if m.experts > 0 { format!("{}/{}", m.experts_per_token, m.experts) } else { "-".into() },
                    if m.tied_embeddings { "tied" } else { "untied" }.into(),
                ]
            })
            .collect();
        let header = [
            "name",
            "params B",
            "active B",
            "layers",
            "hidden",
            "heads/kv",
            "head dim",
            "vocab",
            "experts k/E",
            "LM head",
        ];
        out += &columns(&header, &rows);
        let aliases: Vec<String> = p.model_aliases.iter().map(|a| format!("{} = {}", a.alias, a.preset)).collect();
        out += &format!("aliases (same architecture, shown under the alias): {}\n", aliases.join(", "));
    }
    if !p.gpus.is_empty() {
        gap(&mut out);
        out += "GPUs (datasheet figures; [cluster] gpu = \"NAME\")\n";
        let rows: Vec<Vec<String>> = p
            .gpus
            .iter()
            .map(|g| {
                vec![
                    g.name.clone(),
                    format!("{:.0}", g.bf16_tflops),
                    format!("{:.3}", g.matmul_efficiency),
                    format!("{:.0}", g.hbm_gbytes_per_s),
                    format!("{}", g.hbm_efficiency_vs_h100),
                    format!("{}", g.layer_floor_vs_h100),
                    format!("{}", g.train_efficiency_vs_h100),
                    format!("{:.0}", g.memory_gb),
                    format!("{:.0}", g.nvlink_gbytes_per_s),
                    format!("{:.0}", g.pcie_gbytes_per_s),
                    format!("{:.0}", g.network_gbits_per_s),
                    format!("{:.2}", g.price_per_gpu_hour),
                ]
            })
            .collect();
        let header = [
            "name",
            "bf16 TFLOP/s",
            "matmul eff",
            "HBM GB/s",
            "HBM vs H100",
            "layer floor vs H100",
            "train vs H100",
            "memory GB",
            "NVLink GB/s",
            "PCIe GB/s",
            "NIC Gbit/s",
            "$/GPU-h",
        ];
        out += &columns(&header, &rows);
        let aliases: Vec<String> = p.gpu_aliases.iter().map(|a| format!("{} = {}", a.alias, a.preset)).collect();
        out += &format!("aliases: {}\n", aliases.join(", "));
    }
    if !p.frameworks.is_empty() {
        gap(&mut out);
        out += "frameworks (constants and their sources: sim/src/framework.rs, docs/fidelity.md; [framework] preset = \"NAME\")\n";
        let rows: Vec<Vec<String>> = p
            .frameworks
            .iter()
            .map(|f| {
                vec![
                    f.name.clone(),
                    if f.cuda_graphs { "yes" } else { "no" }.into(),
                    format!("{}", f.iteration_overhead_ms),
                    format!("{}", f.tp_allreduce_us),
                    format!("{}", f.tp_allreduce_internode_us),
                    format!("{}", f.kv_read_efficiency),
                    format!("{}", f.mfu),
                    format!("{}", f.moe_mfu_scale),
                    if f.offload { "yes" } else { "no" }.into(),
                    format!("{}", f.switch_fixed_s),
                    format!("{}", f.weight_sync_fixed_s),
                    if f.weight_sync_per_tensor { "yes" } else { "no" }.into(),
                    format!("{}", f.step_overhead_s),
                    f.stream_groups_per_engine.to_string(),
                ]
            })
            .collect();
        let header = [
            "name",
            "CUDA graphs",
            "iteration ms",
            "tp all-reduce us",
            "across nodes us",
            "KV read",
            "mfu",
            "MoE mfu scale",
            "offload",
            "switch s",
            "sync s",
            "sync per tensor",
            "step overhead s",
            "groups/engine",
        ];
        out += &columns(&header, &rows);
        out += "every constant: `rlsim presets frameworks --json`; the scenario fields that override them: docs/scenario-reference.md\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_listed_once_and_kinds_filter() {
        let all = collect(&[]);
        let mut names: Vec<&str> = all.models.iter().map(|m| m.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), MODEL_PRESETS.len());
        assert_eq!(all.models.len(), MODEL_PRESETS.len());
        assert_eq!(all.gpus.len(), GPU_PRESETS.len());
        assert_eq!(all.frameworks.len(), FRAMEWORK_PRESETS.len());
        let gpus = collect(&[Kind::Gpus]);
        assert!(gpus.models.is_empty() && gpus.frameworks.is_empty() && !gpus.gpus.is_empty());
        let t = text(&all);
        for name in MODEL_PRESETS.iter().chain(GPU_PRESETS).chain(FRAMEWORK_PRESETS) {
            assert!(t.contains(name), "{name} missing");
        }
        assert!(t.contains("Qwen2.5-Math-7B = Qwen2.5-7B") && t.contains("H100 = H100-SXM"));
        assert!(!t.ends_with("\n\n"));
        let models = text(&collect(&[Kind::Models]));
        assert!(models.contains("Qwen3-4B") && !models.contains("H100-SXM") && !models.contains("verl-fsdp2"));
    }
}
