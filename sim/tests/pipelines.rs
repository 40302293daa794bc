//! The pipeline zoo's promises, scenario by scenario: partial rollout discards nothing and reduces to its layout's
//! synchronous pipeline at over_provision = 1; async keeps its staleness bound and interrupts generation for weight
//! updates; seamless lends idle train workers, takes every one back before a train step, and loses no token.

use rlsim_sim::cost::Role;
use rlsim_sim::scenario::Scenario;
use rlsim_sim::simulator::{simulate, SimRun};
use rlsim_sim::timeline::SpanKind;
use std::collections::BTreeSet;
use std::path::Path;

/// 8 H100s, a 7B model, long-tailed responses: rollout-heavy, so the pipelines differ.
const BASE: &str = r#"
name = "zoo"
seed = 5
[model]
preset = "Qwen2.5-7B"
[cluster]
gpu = "H100-SXM"
nodes = 1
gpus_per_node = 8
[workload]
prompts_per_step = 16
samples_per_prompt = 8
steps = 4
max_response_tokens = 8192
response_tokens = { kind = "lognormal", median = 800, sigma = 1.0 }
prompt_tokens = { kind = "constant", tokens = 256 }
[pipeline]
type = "colocated"
"#;

fn run(sets: &[&str]) -> (Scenario, SimRun) {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let s = Scenario::from_text(BASE, Path::new("zoo.toml"), &sets).unwrap_or_else(|e| panic!("{e}"));
    let r = simulate(&s).unwrap_or_else(|e| panic!("{sets:?}: {e}"));
    r.trajectories.check_conservation().unwrap();
    assert!(r.timeline.find_double_booking().is_none(), "{sets:?}");
    let m = &r.report.summary;
    assert_eq!(m.trained_samples, 4 * 16 * 8, "{sets:?}");
    assert_eq!(m.discarded_tokens, 0, "{sets:?}");
    for t in r.trajectories.all() {
        assert_eq!(t.generated, t.target_tokens, "{sets:?}: every trajectory reaches its length, no token lost");
    }
    (s, r)
}

#[test]
fn partial_at_over_provision_one_is_its_layouts_synchronous_pipeline() {
    for (layout, plain) in [("colocated", "colocated"), ("disaggregated", "disaggregated")] {
        let (_, p) = run(&[
            "pipeline.type=partial",
            "pipeline.partial.over_provision=1.0",
            &format!("pipeline.partial.layout={layout}"),
        ]);
        let (_, q) = run(&[&format!("pipeline.type={plain}")]);
        assert_eq!(p.report.summary.pipeline, "partial");
        assert_eq!(p.timeline.spans, q.timeline.spans, "{layout}: same decisions, same spans");
        assert_eq!(p.report.summary.counters["paused"], 0);
    }
}

#[test]
fn partial_rollout_cuts_the_tail_and_carries_the_rest() {
    let (_, colocated) = run(&["pipeline.type=colocated"]);
    let (_, p) = run(&["pipeline.type=partial", "pipeline.partial.over_provision=2.0"]);
    let m = &p.report.summary;
    assert!(m.counters["paused"] > 0 && m.counters["resumed"] > 0, "{:?}", m.counters);
    assert!(m.off_policy_token_fraction > 0.0, "carried samples mix policy versions");
    assert_eq!(m.in_flight_tokens, 0, "the run never creates more groups than it trains");
    assert!(
        m.mean_step_s < colocated.report.summary.mean_step_s,
        "partial {} s vs colocated {} s",
        m.mean_step_s,
        colocated.report.summary.mean_step_s
    );
    // Carried trajectories were created for an earlier step than the one that trained them.
    assert!(p.trajectories.all().iter().any(|t| t.trained.is_some_and(|(step, _)| step > t.group as u32 / 16)));
}

#[test]
fn async_keeps_its_staleness_bound_and_interrupts_generation_for_updates() {
    for eta in [0u32, 1, 3] {
        let (_, r) = run(&["pipeline.type=async", &format!("pipeline.async.max_staleness={eta}")]);
        let m = &r.report.summary;
        assert!(m.max_staleness <= eta, "η={eta}: {}", m.max_staleness);
        if eta == 0 {
            assert_eq!(m.off_policy_token_fraction, 0.0);
        }
    }
    let (_, on) = run(&["pipeline.type=async", "pipeline.async.max_staleness=2"]);
    let (_, off) =
        run(&["pipeline.type=async", "pipeline.async.max_staleness=2", "pipeline.async.interruptible=false"]);
    // Interruptible: sequences paused for the update resume under the new weights (several versions per sample).
    assert!(on.report.summary.counters["paused"] > 0);
    assert!(on.trajectories.all().iter().any(|t| t.segments.windows(2).any(|w| w[0].version != w[1].version)));
    // Not interruptible: nothing is paused, each sample is generated under one version.
    assert_eq!(off.report.summary.counters["paused"], 0);
    assert!(off.trajectories.all().iter().all(|t| t.segments.windows(2).all(|w| w[0].version == w[1].version)));
    // A staleness bound of 2 lets rollout run ahead of a colocated step's barrier.
    let (_, colocated) = run(&["pipeline.type=colocated"]);
    assert!(on.report.summary.tokens_per_s > colocated.report.summary.tokens_per_s);
}

#[test]
fn seamless_lends_idle_train_workers_and_takes_every_one_back_before_training() {
    let (s, r) = run(&["pipeline.type=seamless", "pipeline.seamless.lend=always"]);
    let m = &r.report.summary;
    assert!(m.switches > 0 && m.switch_gpu_s > 0.0, "lent at least once");
    assert!(m.counters["migrated"] > 0, "sequences moved onto lent workers or off reclaimed ones");
    assert!(m.max_staleness <= s.pipeline.staleness_bound().unwrap());
    let train_pool: BTreeSet<u32> =
        s.cluster.workers.iter().filter(|w| w.start == Role::Train).map(|w| w.id.0).collect();
    assert!(!train_pool.is_empty());
    // Every train step runs on the whole train pool: each lent worker was back in time.
    for step in 0..s.workload.steps {
        let on: BTreeSet<u32> = r
            .timeline
            .spans
            .iter()
            .filter(|x| x.kind == SpanKind::Train && x.step == Some(step))
            .map(|x| x.worker)
            .collect();
        assert_eq!(on, train_pool, "step {step}");
    }
    // A lent worker's rollout always ends (reclaimed, paused) before its next train span starts.
    for &w in &train_pool {
        let mut spans: Vec<_> = r
            .timeline
            .spans
            .iter()
            .filter(|x| x.worker == w && matches!(x.kind, SpanKind::Rollout | SpanKind::Train | SpanKind::Switch))
            .collect();
        spans.sort_by_key(|x| x.start);
        for pair in spans.windows(2) {
            if pair[0].kind == SpanKind::Rollout {
                assert_eq!(pair[1].kind, SpanKind::Switch, "worker {w}: rollout is followed by the switch back");
            }
        }
    }
    // Never lending is async on the same layout: no switch at all.
    let (_, never) = run(&["pipeline.type=seamless", "pipeline.seamless.lend=never"]);
    assert_eq!(never.report.summary.switches, 0);
}

#[test]
fn every_pipeline_is_deterministic() {
    for p in ["colocated", "disaggregated", "async", "partial", "seamless"] {
        let a = run(&[&format!("pipeline.type={p}"), "pipeline.seamless.lend=always"]).1;
        let b = run(&[&format!("pipeline.type={p}"), "pipeline.seamless.lend=always"]).1;
        assert_eq!(a.timeline, b.timeline, "{p}");
        assert_eq!(a.report.steps, b.report.steps, "{p}");
    }
}

/// Heterogeneous GPUs: each worker's costs come from its own GPU type, and the rental price adds up per GPU.
#[test]
fn each_worker_runs_at_the_speed_and_price_of_its_own_gpu_type() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/hetero-7b-h800-h20.toml");
    let s = Scenario::load(&path, &[]).unwrap();
    assert!(s.cluster.is_heterogeneous());
    let (train, gen) = (&s.cluster.workers[0], &s.cluster.workers[1]);
    assert_eq!((train.gpu.name.as_str(), gen.gpu.name.as_str()), ("H800", "H20"));
    // 8 × H800 at $3.00 + 8 × H20 at $1.30 per GPU-hour.
    assert!((s.cluster.usd_per_hour() - (8.0 * 3.00 + 8.0 * 1.30)).abs() < 1e-9);
    let cost = rlsim_sim::cost::cost_model(&s);
    let on_h20 = cost.decode_coeffs(gen);
    let mut as_h800 = gen.clone();
    as_h800.gpu = train.gpu.clone();
    let on_h800 = cost.decode_coeffs(&as_h800);
    // Decode reads the weights from HBM: 4.0 TB/s on an H20 against 3.35 TB/s on an H800.
    let ratio = on_h800.weights_fs as f64 / on_h20.weights_fs as f64;
    assert!((ratio - 4000.0 / 3350.0).abs() < 1e-6, "{ratio}");
    // Compute terms go the other way (148 against 989 TFLOP/s).
    assert!(on_h20.compute_fs_per_seq > on_h800.compute_fs_per_seq);
    let run = simulate(&s).unwrap();
    run.trajectories.check_conservation().unwrap();
    let m = &run.report.summary;
    let expect = s.cluster.usd_per_hour() * m.sim_time_s / 3600.0 / m.steps as f64;
    assert!((m.usd_per_step - expect).abs() < 1e-9);
}

#[test]
fn reward_time_delays_the_batch_and_drift_lengthens_later_steps() {
    let (_, plain) = run(&["pipeline.type=colocated"]);
    let (_, rewarded) = run(&[
        "pipeline.type=colocated",
        "workload.reward_batch_s=10",
        "workload.reward_s={kind=\"constant\",seconds=4}",
    ]);
    let (a, b) = (&plain.report.steps, &rewarded.report.steps);
    // Each synchronous step waits 4 s for the last sample's verifier, then 10 s for the batch's reward (on top of
    // the framework's controller work, which both runs pay).
    for (x, y) in a.iter().zip(b) {
        assert!((y.duration_s - x.duration_s - 14.0).abs() < 1e-6, "{} vs {}", x.duration_s, y.duration_s);
        assert!((y.reward_s - x.reward_s - 10.0).abs() < 1e-9);
    }
    let (_, grown) = run(&["pipeline.type=colocated", "workload.response_growth_per_step=0.2"]);
    let tokens = |r: &SimRun, step: usize| r.report.steps[step].trained_tokens;
    assert_eq!(tokens(&grown, 0), tokens(&plain, 0));
    assert!(tokens(&grown, 3) > tokens(&plain, 3));
}

/// Failures: a rollout worker's sequences resume elsewhere from their saved tokens, a train step hit by a failure
/// restarts after the recovery, and every trajectory is still trained exactly once, on every pipeline.
#[test]
fn every_pipeline_survives_injected_failures_without_losing_a_trajectory() {
    for p in ["colocated", "disaggregated", "async", "partial", "seamless"] {
        let (gen, train) =
            if matches!(p, "colocated" | "partial") { ("hybrid1", "hybrid0") } else { ("rollout1", "train0") };
        let failures = format!(
            "failures={{recovery_s=60.0,events=[{{worker=\"{gen}\",at_s=10.0}},{{worker=\"{train}\",at_s=45.0}}]}}"
        );
        let (s, r) = run(&[&format!("pipeline.type={p}"), &failures]);
        let m = &r.report.summary;
        assert_eq!(m.failures, 2, "{p}");
        let gpus = |name: &str| s.cluster.workers.iter().find(|w| w.name == name).unwrap().gpu_count() as f64;
        assert!(m.lost_gpu_s >= 60.0 * (gpus(gen) + gpus(train)) - 1e-6, "{p}: {}", m.lost_gpu_s);
        assert!(m.counters["paused"] > 0 && m.counters["paused"] == m.counters["resumed"], "{p}: {:?}", m.counters);
        let down: Vec<_> = r.timeline.spans.iter().filter(|x| x.kind == SpanKind::Down).collect();
        assert_eq!(down.len(), 2, "{p}");
        assert!(down.iter().all(|x| x.end.since(x.start) == 60_000_000_000), "{p}");
        let (_, clean) = run(&[&format!("pipeline.type={p}")]);
        assert!(m.sim_time_s > clean.report.summary.sim_time_s, "{p}: failures cost time");
    }
}

#[test]
fn mtbf_failures_are_seeded_and_deterministic() {
    let sets = ["pipeline.type=async", "failures={recovery_s=30.0,mtbf_gpu_hours=0.5}"];
    let (_, a) = run(&sets);
    let (_, b) = run(&sets);
    assert!(a.report.summary.failures > 0);
    assert_eq!(a.timeline, b.timeline);
    let mut other = sets.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    other.push("seed=6".into());
    let other: Vec<&str> = other.iter().map(|s| s.as_str()).collect();
    let (_, c) = run(&other);
    assert_ne!(a.timeline.spans, c.timeline.spans, "another seed, other failures");
}

/// A failure in the middle of a train step throws the step's work away and runs it again after the recovery.
#[test]
fn a_train_failure_restarts_the_step_after_recovery() {
    let (_, clean) = run(&["pipeline.type=disaggregated"]);
    let first = |r: &SimRun| {
        let mut v: Vec<_> = r
            .timeline
            .spans
            .iter()
            .filter(|x| {
                x.step == Some(0)
                    && matches!(x.kind, SpanKind::Reward | SpanKind::LogProb | SpanKind::Train)
                    && x.worker == 4
            })
            .map(|x| (x.start.as_ns(), x.end.as_ns()))
            .collect();
        v.sort();
        v
    };
    let spans = first(&clean);
    let (start, end) = (spans[0].0, spans.last().unwrap().1);
    let mid_s = (start + (end - start) / 2) as f64 / 1e9;
    let failure = format!("failures={{recovery_s=30.0,events=[{{worker=\"train0\",at_s={mid_s}}}]}}");
    let (_, hit) = run(&["pipeline.type=disaggregated", &failure]);
    let mid = (mid_s * 1e9).round() as u64;
    // 4 GPUs lost their work from the step's start to the failure.
    let lost_ms = hit.report.summary.counters["lost_work_gpu_ms"];
    assert_eq!(lost_ms, 4 * (mid - start) / 1_000_000);
    // The restarted step takes its full time again, from the recovery on.
    let again = first(&hit);
    let restarted = again.iter().find(|(a, _)| *a >= mid).expect("restarted spans");
    assert_eq!(restarted.0, mid + 30_000_000_000);
    assert_eq!(again.last().unwrap().1 - restarted.0, end - start);
    assert!(again.iter().all(|(a, b)| a < b));
}

/// Multi-turn agents: between turns a trajectory holds no decode slot while its tool runs; every pipeline still
/// trains every sample whole.
#[test]
fn multi_turn_trajectories_wait_for_their_tools_and_lose_nothing() {
    let two_turns = "workload.multi_turn={turns={kind=\"constant\",tokens=2},tool_latency_s={kind=\"constant\",seconds=10.0},tool_tokens={kind=\"constant\",tokens=300}}";
    let (_, single) = run(&["pipeline.type=colocated"]);
    let (_, multi) = run(&["pipeline.type=colocated", two_turns]);
    assert_eq!(multi.report.summary.counters["tool_calls"], 4 * 16 * 8, "one tool call per trajectory");
    for (a, b) in single.report.steps.iter().zip(&multi.report.steps) {
        // Each step's longest trajectory now waits 10 s for its tool (plus the tool output's prefill).
        let extra = b.duration_s - a.duration_s;
        assert!((10.0..12.0).contains(&extra), "step {}: {extra} s", a.step);
    }
    for p in ["disaggregated", "async", "partial", "seamless"] {
        let (_, r) = run(&[&format!("pipeline.type={p}"), two_turns, "pipeline.seamless.lend=always"]);
        assert!(r.report.summary.counters["tool_calls"] >= 4 * 16 * 8, "{p}");
    }
}

/// verl fully_async's knobs: weights are synced after every `steps_per_sync`-th train step only, and with
/// completion-order batches a long sample is trained later (more stale) instead of holding the batch.
#[test]
fn async_syncs_every_few_steps_and_completion_order_takes_finished_groups_first() {
    let syncs = |sets: &[&str]| {
        let (_, r) = run(sets);
        let mut starts: Vec<u64> =
            r.timeline.spans.iter().filter(|x| x.kind == SpanKind::Sync).map(|x| x.start.as_ns()).collect();
        starts.dedup();
        (starts.len(), r)
    };
    let (every, _) = syncs(&["pipeline.type=async", "pipeline.async.max_staleness=1"]);
    let (pairs, r) =
        syncs(&["pipeline.type=async", "pipeline.async.max_staleness=1", "pipeline.async.steps_per_sync=2"]);
    // 4 steps: a sync after steps 1, 2, 3 (none after the last), against one after step 2.
    assert_eq!((every, pairs), (3, 1));
    assert_eq!(r.report.summary.steps, 4);
    let (_, by_version) = run(&["pipeline.type=async", "pipeline.async.max_staleness=0.5"]);
    let (_, by_completion) =
        run(&["pipeline.type=async", "pipeline.async.max_staleness=0.5", "pipeline.async.batch_order=completion"]);
    // The strict order never trains a token more than ⌈1.5⌉ − 1 = 1 step stale; completion order promises no
    // bound, but trains every sample exactly once.
    assert!(by_version.report.summary.max_staleness <= 1);
    by_completion.trajectories.check_conservation().unwrap();
    assert_eq!(by_completion.report.summary.trained_samples, 4 * 16 * 8);
    assert_eq!(by_completion.report.summary.discarded_tokens, 0);
}

/// DAPO dynamic sampling: rounds until P groups are kept; dropped groups' tokens are discarded, never lost, and
/// every step still trains P groups.
#[test]
fn dynamic_sampling_generates_rounds_until_enough_groups_are_kept() {
    let filtered = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let s = Scenario::from_text(BASE, Path::new("zoo.toml"), &sets).unwrap();
        let r = simulate(&s).unwrap();
        assert!(r.timeline.find_double_booking().is_none());
        (s, r)
    };
    for kind in ["colocated", "disaggregated"] {
        let pipeline = format!("pipeline.type={kind}");
        let (_, plain) = run(&[&pipeline]);
        let (s, ds) = filtered(&[&pipeline, "workload.dynamic_sampling={keep_fraction=0.5,prompts_per_round=16}"]);
        let m = &ds.report.summary;
        assert_eq!(m.trained_samples, (s.workload.steps * 16 * 8) as u64, "{kind}");
        assert!(m.discarded_tokens > 0, "{kind}: dropped groups are discarded");
        assert_eq!(m.generated_tokens, m.trained_tokens + m.in_flight_tokens + m.discarded_tokens, "{kind}");
        ds.trajectories.check_conservation().unwrap();
        // Half the groups kept: about two rounds a step, so the run takes longer than without filtering.
        assert!(m.sim_time_s > plain.report.summary.sim_time_s, "{kind}");
    }
    // keep_fraction = 1 changes nothing.
    let (_, plain) = run(&["pipeline.type=colocated"]);
    let (_, all) = run(&["pipeline.type=colocated", "workload.dynamic_sampling={keep_fraction=1.0}"]);
    assert_eq!(all.report.summary.sim_time_s, plain.report.summary.sim_time_s);
}
