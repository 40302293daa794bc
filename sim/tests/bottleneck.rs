//! The bottleneck named on small scenarios with a known answer: a split layout with a tiny rollout pool is
//! rollout-bound and with a tiny train pool train-bound; colocated with a long tail is tail-bound.

use rlsim_sim::report::Summary;
use rlsim_sim::scenario::Scenario;
use rlsim_sim::simulator::simulate;
use std::path::Path;

/// 8 H100s, a 7B model.
const BASE: &str = r#"
name = "bottleneck"
seed = 3
[model]
preset = "Qwen2.5-7B"
[cluster]
gpu = "H100-SXM"
nodes = 1
gpus_per_node = 8
[workload]
prompts_per_step = 32
samples_per_prompt = 8
steps = 5
max_response_tokens = 16384
response_tokens = { kind = "lognormal", median = 800, sigma = 0.3 }
prompt_tokens = { kind = "constant", tokens = 256 }
[rollout]
tp = 1
[pipeline]
type = "colocated"
"#;

fn summary(sets: &[&str]) -> Summary {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let s = Scenario::from_text(BASE, Path::new("bottleneck.toml"), &sets).unwrap_or_else(|e| panic!("{e}"));
    let m = simulate(&s).unwrap_or_else(|e| panic!("{sets:?}: {e}")).report.summary;
    for f in [m.rollout_pool_busy_fraction, m.train_pool_busy_fraction, m.step_rollout_wait_fraction] {
        assert!((0.0..=1.0).contains(&f), "{sets:?}: {m:?}");
    }
    assert!(m.step_rollout_tail_fraction <= m.step_rollout_wait_fraction, "{sets:?}");
    m
}

#[test]
fn a_tiny_rollout_pool_is_rollout_bound() {
    let m = summary(&[
        "pipeline.type=disaggregated",
        "pipeline.disaggregated.rollout_gpus=1",
        "workload.response_tokens.median=3000",
        "workload.response_tokens.sigma=0.02",
    ]);
    assert_eq!(m.bottleneck, "rollout", "{}", m.verdict);
    assert!(m.rollout_pool_busy_fraction > m.train_pool_busy_fraction, "{}", m.verdict);
    assert!(m.verdict.contains("rollout_gpus higher"), "{}", m.verdict);
}

#[test]
fn a_tiny_train_pool_is_train_bound() {
    let m = summary(&["pipeline.type=disaggregated", "pipeline.disaggregated.rollout_gpus=6"]);
    assert_eq!(m.bottleneck, "train", "{}", m.verdict);
    assert!(m.train_pool_busy_fraction > m.rollout_pool_busy_fraction, "{}", m.verdict);
    assert!(m.verdict.contains("rollout_gpus lower"), "{}", m.verdict);
}

#[test]
fn a_long_tail_holds_colocated_rollout() {
    let m = summary(&["workload.response_tokens.sigma=1.6"]);
    assert_eq!(m.bottleneck, "rollout-tail", "{}", m.verdict);
    assert!(m.verdict.contains("try partial"), "{}", m.verdict);
    // Partial rollout cuts that tail.
    let p = summary(&["workload.response_tokens.sigma=1.6", "pipeline.type=partial"]);
    assert!(p.step_rollout_tail_fraction < m.step_rollout_tail_fraction, "{} vs {}", p.verdict, m.verdict);
}
