//! Coarse-grained runs (`workload.coarsen`): exact when every group of a step is identical, close on long-tailed
//! lengths, every trajectory and token counted, and bad values rejected by field.

use rlsim_sim::scenario::Scenario;
use rlsim_sim::simulator::{simulate, SimRun};
use std::path::Path;

/// 8 H100s, a 7B model; `{lengths}` is filled in per test.
const BASE: &str = r#"
name = "coarse"
seed = 7
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
max_response_tokens = 8192
prompt_tokens = { kind = "constant", tokens = 256 }
[rollout]
max_num_seqs = 64
[pipeline]
type = "colocated"
"#;

const PIPELINES: [&str; 5] = ["colocated", "disaggregated", "async", "partial", "seamless"];

fn scenario(response: &str, sets: &[String]) -> Scenario {
    let text = BASE.replace("[rollout]", &format!("response_tokens = {response}\n[rollout]"));
    Scenario::from_text(&text, Path::new("coarse.toml"), sets).unwrap_or_else(|e| panic!("{sets:?}: {e}"))
}

fn run(response: &str, pipeline: &str, coarsen: u32) -> SimRun {
    let mut sets = vec![format!("pipeline.type={pipeline}"), format!("workload.coarsen={coarsen}")];
    if pipeline == "partial" {
        // 2 × the step's groups in flight: a multiple of the 8 engines at k = 1, 2 and 4 alike, so the groups
        // spread over the engines as the exact run's do (1.5 would leave 12 groups for 8 engines at k = 2).
        sets.push("pipeline.partial.over_provision=2".into());
    }
    let s = scenario(response, &sets);
    let r = simulate(&s).unwrap_or_else(|e| panic!("{sets:?}: {e}"));
    r.trajectories.check_conservation().unwrap();
    assert!(r.timeline.find_double_booking().is_none(), "{sets:?}");
    r
}

#[test]
fn identical_groups_give_the_exact_run() {
    // Every sample 1,000 tokens: the k copies a coarse group stands for are the groups the exact run has, so every
    // figure of the report must agree — step times to the nanosecond, tokens and samples counted k times.
    for pipeline in PIPELINES {
        let exact = run("{ kind = \"constant\", tokens = 1000 }", pipeline, 1).report;
        for k in [2, 4] {
            let coarse = run("{ kind = \"constant\", tokens = 1000 }", pipeline, k).report;
            let (e, c) = (&exact.summary, &coarse.summary);
            assert_eq!(c.coarsen, k);
            assert_eq!(
                (c.trained_samples, c.trained_tokens, c.generated_tokens, c.discarded_tokens, c.in_flight_tokens),
                (e.trained_samples, e.trained_tokens, e.generated_tokens, e.discarded_tokens, e.in_flight_tokens),
                "{pipeline} k={k}: every trajectory and token counted"
            );
            assert_eq!(c.trained_samples, 5 * 32 * 8, "{pipeline} k={k}");
            assert_eq!(c.staleness_histogram, e.staleness_histogram, "{pipeline} k={k}");
            let steps = |r: &rlsim_sim::report::Report| {
                r.steps.iter().map(|s| (s.end_s, s.trained_samples)).collect::<Vec<_>>()
            };
            assert_eq!(steps(&coarse), steps(&exact), "{pipeline} k={k}: the same steps at the same instants");
            assert_eq!(c.sim_time_s, e.sim_time_s, "{pipeline} k={k}");
            assert_eq!(c.counters.get("prefill_tokens"), e.counters.get("prefill_tokens"), "{pipeline} k={k}");
        }
    }
}

#[test]
fn long_tailed_lengths_stay_close_and_lose_nothing() {
    // A coarse run draws 1/k of the lengths, so it is not exact; on this long-tailed workload (σ = 1, 8 groups per
    // step on 8 engines at k = 4) the mean step stays within 15 % of the exact run's for every pipeline (measured:
    // colocated −10.1 %, disaggregated −11.3 %, async +0.3 %, partial +2.5 %, seamless −5.1 %;
    // docs/performance.md has the bundled scenarios'), and every simulated trajectory is counted k times.
    let response = "{ kind = \"lognormal\", median = 800, sigma = 1.0 }";
    for pipeline in PIPELINES {
        let exact = run(response, pipeline, 1).report.summary;
        let coarse = run(response, pipeline, 4);
        let c = &coarse.report.summary;
        assert_eq!(c.trained_samples, 5 * 32 * 8, "{pipeline}");
        let all = coarse.trajectories.all();
        let trained = all.iter().filter(|t| t.trained.is_some()).count() as u64;
        assert_eq!(trained * 4, c.trained_samples, "{pipeline}: each simulated sample counted 4 times");
        let generated: u64 = all.iter().map(|t| t.generated as u64).sum();
        assert_eq!(generated * 4, c.generated_tokens, "{pipeline}");
        let err = (c.mean_step_s - exact.mean_step_s).abs() / exact.mean_step_s;
        assert!(
            err < 0.15,
            "{pipeline}: mean step {} against exact {} ({:.1} %)",
            c.mean_step_s,
            exact.mean_step_s,
            100.0 * err
        );
    }
}

#[test]
fn bad_coarsening_is_rejected_by_field() {
    let constant = "{ kind = \"constant\", tokens = 1000 }";
    let err = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let text = BASE.replace("[rollout]", &format!("response_tokens = {constant}\n[rollout]"));
        Scenario::from_text(&text, Path::new("coarse.toml"), &sets).expect_err("rejected").to_string()
    };
    let e = err(&["workload.coarsen=3"]);
    assert!(e.contains("workload.coarsen") && e.contains("does not divide workload.prompts_per_step (32)"), "{e}");
    let e = err(&["workload.coarsen=0"]);
    assert!(e.contains("workload.coarsen") && e.contains("at least 1"), "{e}");
    let e = err(&["workload.coarsen=16", "rollout.max_num_seqs=24", "workload.prompts_per_step=256"]);
    assert!(e.contains("workload.coarsen") && e.contains("rollout.max_num_seqs (24)"), "{e}");
    // Every engine must get a simulated group: 32 / 8 = 4 groups for 8 engines is too few.
    let e = err(&["workload.coarsen=8"]);
    assert!(
        e.contains("workload.coarsen") && e.contains("4 simulated groups per step") && e.contains("coarsen at most 4"),
        "{e}"
    );
    // A dynamic-sampling round must be a whole number of simulated groups too.
    let e = err(&[
        "workload.coarsen=4",
        "workload.dynamic_sampling.keep_fraction=0.5",
        "workload.dynamic_sampling.prompts_per_round=34",
    ]);
    assert!(
        e.contains("workload.coarsen")
            && e.contains("does not divide workload.dynamic_sampling.prompts_per_round (34)"),
        "{e}"
    );
    // The trajectory limits guard what the run simulates: 256 a step is over a limit of 100, 64 at coarsen 4 is not.
    let e = err(&["limits.max_trajectories_per_step=100"]);
    assert!(e.contains("256 trajectories per step, above limits.max_trajectories_per_step = 100"), "{e}");
    let text = BASE.replace("[rollout]", &format!("response_tokens = {constant}\n[rollout]"));
    let sets = ["limits.max_trajectories_per_step=100".to_string(), "workload.coarsen=4".to_string()];
    Scenario::from_text(&text, Path::new("coarse.toml"), &sets).unwrap_or_else(|e| panic!("{e}"));
    // An engine must hold k copies of the longest sequence.
    let e = err(&["workload.coarsen=32", "rollout.kv_capacity_tokens=100000", "workload.prompts_per_step=512"]);
    assert!(e.contains("workload.coarsen") && e.contains("expected coarsen at most 8"), "{e}");
}

#[test]
fn a_coarse_iteration_costs_what_k_copies_of_its_batch_cost() {
    // An MoE model (the experts a batch touches depend on its real token count) on tp 2, so every decode term
    // and the tensor-parallel all-reduce are non-zero.
    let text = BASE
        .replace("Qwen2.5-7B", "Qwen3-30B-A3B")
        .replace("[rollout]", "response_tokens = { kind = \"constant\", tokens = 1000 }\n[rollout]\ntp = 2");
    let exact = Scenario::from_text(&text, Path::new("moe.toml"), &[]).unwrap();
    let coarse = Scenario::from_text(&text, Path::new("moe.toml"), &["workload.coarsen=4".to_string()]).unwrap();
    let (e, c) = (rlsim_sim::cost::cost_model(&exact), rlsim_sim::cost::cost_model(&coarse));
    let w = &exact.cluster.workers[0];
    let (de, dc) = (e.decode_coeffs(w), c.decode_coeffs(w));
    for (batch, context) in [(1, 0), (3, 5_000), (16, 40_000), (64, 1_000_000)] {
        assert_eq!(dc.iteration_fs(batch, context), de.iteration_fs(4 * batch, 4 * context), "B={batch} C={context}");
        assert_eq!(dc.interval_fs(batch, context, 37), de.interval_fs(4 * batch, 4 * context, 37));
        assert_eq!(c.decode_iteration_ns(w.id, batch, context), e.decode_iteration_ns(w.id, 4 * batch, 4 * context));
    }
    let (pe, pc) = (e.prefill_coeffs(w), c.prefill_coeffs(w));
    assert_eq!(pc.prefill_fs(3_000, 5), pe.prefill_fs(12_000, 20));
    assert_eq!(c.kv_capacity_tokens(w), e.kv_capacity_tokens(w) / 4);
    assert_eq!(c.controller_ns(64), e.controller_ns(256));
    // The trainer: 8 ranks in groups of 4 alike, each training the batch's samples once — for equal samples the
    // exact batch's balance.
    let train: Vec<_> = exact.cluster.with_tag("train").map(|w| w.id).collect();
    assert_eq!(c.train(&[2_000; 16], &train), e.train(&[2_000; 64], &train));
}
