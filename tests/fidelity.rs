//! The fidelity suite (scenarios/fidelity/): every published measurement is simulated and must stay within the
//! tolerance its file documents, so a change to the cost model cannot silently make rlsim worse. Also checks that
//! the cases carry no per-scenario fudge factor and that the runs of one recipe share one workload.

mod scratch;
use scratch::scratch;

use rlsim_sim::fidelity::{case_files, compare, run_case};
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fidelity")
}

#[test]
fn every_published_measurement_within_its_documented_tolerance() {
    let files = case_files(&dir()).unwrap();
    assert!(files.len() >= 12, "the suite lost cases: {files:?}");
    let cases: Vec<_> = files.iter().map(|f| run_case(f, &[]).unwrap()).collect();
    let rows = compare(&cases).unwrap();
    let outside: Vec<String> = rows
        .iter()
        .filter(|r| !r.within())
        .map(|r| {
            format!(
                "{} {}: published {:.2}, simulated {:.2} ({:+.1} %, tolerance ±{:.0} %)",
                r.case,
                r.quantity,
                r.published,
                r.simulated,
                100.0 * r.error(),
                100.0 * r.tolerance
            )
        })
        .collect();
    assert!(outside.is_empty(), "outside tolerance:\n{}", outside.join("\n"));
    // The error quoted under every ranking is the suite's own.
    let mean_abs = rows.iter().map(|r| r.error().abs()).sum::<f64>() / rows.len() as f64;
    assert_eq!(rows.len(), rlsim_sim::fidelity::COMPARISONS, "update fidelity::COMPARISONS");
    assert!(
        (mean_abs - rlsim_sim::fidelity::MEAN_ABS_ERROR).abs() <= 0.005,
        "the suite's mean |error| is {:.3}: update fidelity::MEAN_ABS_ERROR (quoted by compare and search)",
        mean_abs
    );
    // The bar of the main table (verl fully_async 7B) is never loosened silently: only the rows docs/fidelity.md
    // lists as unexplained carry a wider tolerance.
    let widened: Vec<String> = rows
        .iter()
        .filter(|r| r.case.starts_with("verl-7b-"))
        .filter(|r| {
            let bar = if r.quantity == "step" { 0.10 } else { 0.15 };
            r.tolerance > bar + 1e-9
        })
        .map(|r| format!("{} {}", r.case, r.quantity))
        .collect();
    let documented = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/fidelity.md")).unwrap();
    for w in &widened {
        assert!(documented.contains(w.as_str()), "{w} has a widened tolerance that docs/fidelity.md does not list");
    }
}

#[test]
fn fidelity_cases_carry_no_fudge_factor() {
    // Efficiency constants come from the GPU and framework presets; a case may only set what the published setup
    // configured (parallelism, batch, lengths, engine knobs such as eager mode).
    let forbidden = [
        "mfu",
        "hbm_efficiency",
        "kv_read_efficiency",
        "decode_compute_efficiency",
        "prefill_mfu",
        "iteration_overhead_ms",
        "tp_allreduce_us",
        "tp_allreduce_internode_us",
        "micro_batch_overhead_ms",
        "weight_sync_fixed_s",
        "switch_fixed_s",
        "switch_to_train_s",
        "switch_to_rollout_s",
        "step_overhead_s",
        "controller_ns_per_padded_token",
        "assembly_ns_per_padded_token",
        "seq_overhead_us",
        "graph_layer_us",
        "eager_layer_us",
        "offload_gbytes_per_s",
        "moe_mfu_scale",
        "attention_efficiency",
        "activation_traffic",
        "stream_groups_per_engine",
        "bf16_tflops",
        "matmul_efficiency",
        "hbm_efficiency_vs_h100",
        "layer_floor_vs_h100",
        "train_efficiency_vs_h100",
        "hbm_gbytes_per_s",
        "kv_capacity_tokens",
        "profile",
    ];
    for f in case_files(&dir()).unwrap() {
        let text = std::fs::read_to_string(&f).unwrap();
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            let key = line.split('=').next().unwrap_or("").trim();
            assert!(!forbidden.contains(&key), "{}: sets {key}, a preset constant", f.display());
        }
    }
}

#[test]
fn one_recipe_one_workload() {
    // The verl runs on dapo-math-17k share one length distribution (docs/fidelity.md states it once; the
    // one-step-off and MoE runs cut it at their own caps).
    let lengths = |f: &PathBuf| -> (String, String) {
        let v: toml::Value = toml::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let w = &v["workload"];
        (w["response_tokens"].to_string(), w["prompt_tokens"].to_string())
    };
    let files: Vec<PathBuf> = case_files(&dir())
        .unwrap()
        .into_iter()
        .filter(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            // verl's GSM8K baseline run is another recipe and dataset.
            name.starts_with("verl-") && !name.starts_with("verl-gsm8k-")
        })
        .collect();
    let first = lengths(&files[0]);
    for f in &files[1..] {
        assert_eq!(lengths(f), first, "{} has its own length distribution", f.display());
    }
}

/// The suite's own errors name the file and say what is wrong: no `[published]`, a speed-up over a case that is
/// not in the folder, a run no longer than its warm-up.
#[test]
fn fidelity_errors_name_the_file() {
    use rlsim_sim::fidelity::FidelityError;
    let dir = scratch("fidelity", "errors", true);
    let quick =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml")).unwrap();
    let plain = dir.join("plain.toml");
    std::fs::write(&plain, &quick).unwrap();
    let e = run_case(&plain, &[]).unwrap_err();
    assert!(matches!(e, FidelityError::NotPublished { .. }) && e.to_string().contains("plain.toml"), "{e}");

    let short = dir.join("short.toml");
    std::fs::write(&short, format!("{quick}\n[published]\nstep_s = 10.0\nwarmup_steps = 40\n")).unwrap();
    let e = run_case(&short, &[]).unwrap_err();
    assert!(matches!(e, FidelityError::TooShort { .. }) && e.to_string().contains("short.toml"), "{e}");

    let orphan = dir.join("orphan.toml");
    std::fs::write(
        &orphan,
        format!("{quick}\n[published]\nstep_s = 10.0\nspeedup_over = \"nowhere\"\nspeedup = 2.0\n"),
    )
    .unwrap();
    let case = run_case(&orphan, &[]).unwrap();
    let e = compare(&[case]).unwrap_err();
    assert!(e.to_string().contains("\"nowhere\"") && e.to_string().contains("orphan.toml"), "{e}");
}

/// NeMo-RL v0.3's blog publishes the average *generated* tokens per sample, and rlsim's trained tokens are the
/// generated ones (prompts are not counted): each case's lengths must give the published figure. (A first version
/// added a prompt to it and drew the Llama responses 16–33 % too long.)
#[test]
fn nemo_rl_v03_lengths_give_the_published_generated_tokens() {
    for (case, published) in [
        ("nemo-rl-v03-llama8b-colocated-8", 795.0),
        ("nemo-rl-v03-llama70b-colocated-64", 398.0),
        ("nemo-rl-v03-qwen3-32b-colocated-64", 3283.0),
        ("nemo-rl-v03-qwen3-30b-a3b-colocated-64", 3251.0),
    ] {
        let file = dir().join(format!("{case}.toml"));
        let s = rlsim_sim::scenario::Scenario::load(&file, &["workload.steps=2".into()]).unwrap();
        let m = rlsim_sim::simulator::simulate(&s).unwrap().report.summary;
        let mean = m.trained_tokens as f64 / m.trained_samples as f64;
        assert!((mean / published - 1.0).abs() < 0.03, "{case}: {mean:.0} generated tokens per sample, {published}");
    }
}
