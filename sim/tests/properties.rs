//! Property tests: invariants that must hold for any small scenario, on both pipelines — conservation of tokens and
//! trajectories, no double-booked worker, staleness bounds, determinism — including tight KV caches that force
//! preemption and small `max_num_seqs` that force queueing.

use proptest::prelude::*;
use rlsim_sim::scenario::Scenario;
use rlsim_sim::simulator::{simulate, simulate_recording, Recording};
use rlsim_sim::timeline::{Outcome, SpanKind};
use std::path::Path;

#[derive(Debug, Clone)]
struct Params {
    pipeline: &'static str,
    nodes: u32,
    gpus_per_node: u32,
    prompts: u32,
    samples: u32,
    steps: u32,
    median: u32,
    sigma: f64,
    max_response: u32,
    prompt: u32,
    max_num_seqs: u32,
    kv_tokens: u32,
    seed: u64,
    /// async / seamless staleness bound η (whole part; `eta_half` adds 0.5).
    max_staleness: u32,
    eta_half: bool,
    /// async: train steps per weight sync, and completion-order batches.
    steps_per_sync: u32,
    completion: bool,
    /// Optimizer steps per RL step.
    mini_batches: u32,
    interruptible: bool,
    over_provision: f64,
    partial_layout: &'static str,
    lend: &'static str,
    /// Multi-turn agents (1–3 turns, short tool calls) and MTBF failures.
    multi_turn: bool,
    failures: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            pipeline: "colocated",
            nodes: 1,
            gpus_per_node: 2,
            prompts: 1,
            samples: 1,
            steps: 1,
            median: 10,
            sigma: 0.5,
            max_response: 100,
            prompt: 10,
            max_num_seqs: 4,
            kv_tokens: 1000,
            seed: 0,
            max_staleness: 1,
            eta_half: false,
            steps_per_sync: 1,
            completion: false,
            mini_batches: 1,
            interruptible: true,
            over_provision: 1.5,
            partial_layout: "colocated",
            lend: "gain",
            multi_turn: false,
            failures: false,
        }
    }
}

fn scenario_text(p: &Params) -> String {
    // 0.1M parameters (0.2 MB of weights, 1.6 MB to train on one GPU), 32,768 bytes of KV per token: memory sized
    // to hold `kv_tokens` of KV cache after the weights (always more than training needs). The embedding is tied
    // (an untied 1000 × 256 table would be more than the 0.1M parameters).
    let memory_gb = ((2e5 + p.kv_tokens as f64 * 32768.0 + 32768.0) / 0.9e9).max(0.002);
    format!(
        r#"
name = "prop"
seed = {seed}
[model]
params_b = 0.0001
layers = 32
hidden = 256
heads = 1
kv_heads = 1
head_dim = 256
vocab = 1000
tied_embeddings = true
[cluster]
bf16_tflops = 100.0
matmul_efficiency = 1.0
hbm_gbytes_per_s = 100.0
memory_gb = {memory_gb}
nvlink_gbytes_per_s = 10.0
pcie_gbytes_per_s = 1.0
network_gbits_per_s = 10.0
nodes = {nodes}
gpus_per_node = {gpn}
[workload]
prompts_per_step = {prompts}
samples_per_prompt = {samples}
steps = {steps}
max_response_tokens = {max_response}
max_prompt_tokens = 64
response_tokens = {{ kind = "lognormal", median = {median}, sigma = {sigma} }}
prompt_tokens = {{ kind = "constant", tokens = {prompt} }}
[training]
activation_reserve_gb = 0
mini_batches = {mini_batches}
[rollout]
max_num_seqs = {max_num_seqs}
[pipeline]
type = "{pipeline}"
[pipeline.async]
max_staleness = {eta}
interruptible = {interruptible}
steps_per_sync = {sync}
batch_order = "{order}"
[pipeline.partial]
over_provision = {over}
layout = "{layout}"
[pipeline.seamless]
max_staleness = {eta}
lend = "{lend}"
{extra}"#,
        extra = [
            if p.multi_turn {
                "[workload.multi_turn]\nturns = { kind = \"quantiles\", points = [[0.0, 1.0], [1.0, 3.0]] }\ntool_latency_s = { kind = \"lognormal\", median = 0.5, sigma = 1.0 }\ntool_tokens = { kind = \"constant\", tokens = 20 }\n"
            } else {
                ""
            },
            if p.failures { "[failures]\nrecovery_s = 2.0\nmtbf_gpu_hours = 0.01\n" } else { "" },
        ]
        .concat(),
        eta = p.max_staleness as f64 + if p.eta_half { 0.5 } else { 0.0 },
        sync = p.steps_per_sync,
        order = if p.completion { "completion" } else { "version" },
        mini_batches = p.mini_batches,
        interruptible = p.interruptible,
        over = p.over_provision,
        layout = p.partial_layout,
        lend = p.lend,
        seed = p.seed,
        nodes = p.nodes,
        gpn = p.gpus_per_node,
        prompts = p.prompts,
        samples = p.samples,
        steps = p.steps,
        max_response = p.max_response,
        median = p.median,
        sigma = p.sigma,
        prompt = p.prompt,
        max_num_seqs = p.max_num_seqs,
        pipeline = p.pipeline,
    )
}

fn params() -> impl Strategy<Value = Params> {
    (
        (
            prop_oneof![Just("colocated"), Just("disaggregated"), Just("async"), Just("partial"), Just("seamless")],
            (0u32..4, any::<bool>(), 1.0f64..2.5),
            (
                prop_oneof![Just("colocated"), Just("disaggregated")],
                prop_oneof![Just("gain"), Just("always"), Just("never")],
                any::<bool>(),
                any::<bool>(),
            ),
        ),
        (1u32..3, prop_oneof![Just(2u32), Just(4)]),
        (1u32..7, 1u32..5, 1u32..5),
        (5u32..300, 0.1f64..1.5, 20u32..1500),
        (1u32..64, 1u32..9, 1u32..6, any::<u64>()),
        (any::<bool>(), 1u32..4, any::<bool>(), 1u32..4),
    )
        .prop_map(
            |(
                (
                    pipeline,
                    (max_staleness, interruptible, over_provision),
                    (partial_layout, lend, multi_turn, failures),
                ),
                (nodes, gpn),
                (prompts, samples, steps),
                (median, sigma, max_response),
                (prompt, max_num_seqs, kv_mult, seed),
                (eta_half, steps_per_sync, completion, mini_batches),
            )| Params {
                pipeline,
                nodes,
                gpus_per_node: gpn,
                prompts,
                samples,
                steps,
                median,
                sigma,
                max_response,
                prompt,
                max_num_seqs,
                // From "one longest sequence barely fits" (heavy preemption) to roomy.
                kv_tokens: (64 + max_response + 2) * kv_mult,
                seed,
                max_staleness,
                eta_half,
                steps_per_sync,
                completion,
                // Never more optimizer steps than samples per step (the scenario rejects that).
                mini_batches: mini_batches.min(prompts * samples),
                interruptible,
                over_provision,
                partial_layout,
                lend,
                multi_turn,
                failures,
            },
        )
}

/// Cases of the invariant property: 96 in `cargo test`; more with `RLSIM_PROPTEST_CASES` (or proptest's own
/// `PROPTEST_CASES`), e.g. `RLSIM_PROPTEST_CASES=10000 cargo test --release -p rlsim-sim --test properties`
/// (docs/reliability.md, "Property tests"). `with_cases(96)` alone would ignore both variables.
fn cases() -> u32 {
    ["RLSIM_PROPTEST_CASES", "PROPTEST_CASES"].iter().find_map(|v| std::env::var(v).ok()?.parse().ok()).unwrap_or(96)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]
    #[test]
    fn invariants_hold_for_any_small_scenario(p in params()) {
        let s = Scenario::from_text(&scenario_text(&p), Path::new("prop.toml"), &[]).unwrap();
        let run = simulate(&s).unwrap();
        let m = &run.report.summary;
        // Conservation: every trajectory trained exactly once, every generated token accounted for.
        run.trajectories.check_conservation().unwrap();
        let expected = (p.steps * p.prompts * p.samples) as u64;
        prop_assert_eq!(m.trained_samples, expected);
        let all_trained = run.timeline.samples.iter().all(|s| matches!(s.outcome, Outcome::Trained { .. }));
        prop_assert!(all_trained, "every sample is trained");
        prop_assert_eq!(m.generated_tokens, m.trained_tokens + m.in_flight_tokens + m.discarded_tokens);
        prop_assert_eq!((m.in_flight_tokens, m.discarded_tokens), (0, 0));
        let span_tokens: u64 = run.timeline.spans.iter().filter(|s| s.kind == SpanKind::Generate).map(|s| s.tokens).sum();
        prop_assert_eq!(span_tokens, m.generated_tokens);
        // Each sample reached exactly its target length.
        for t in run.trajectories.all() {
            prop_assert_eq!(t.generated, t.target_tokens);
        }
        // No worker runs two activities at once.
        prop_assert!(run.timeline.find_double_booking().is_none(), "{:?}", run.timeline.find_double_booking());
        // Staleness bounds (partial has none: a carried sample may span versions; it discards nothing instead).
        // async/seamless: ⌈S·(1 + η)⌉ − 1 train steps with version-order batches (S = 1 for seamless); none for
        // async's completion order, which trains a straggler whenever it finishes.
        let bound = match p.pipeline {
            "colocated" => 0,
            "disaggregated" => 1,
            "async" | "seamless" => s.pipeline.staleness_bound().unwrap_or(u32::MAX),
            _ => u32::MAX,
        };
        if p.pipeline == "seamless" {
            prop_assert_eq!(s.pipeline.staleness_bound(), Some(p.max_staleness + u32::from(p.eta_half)));
        }
        prop_assert!(m.max_staleness <= bound, "staleness {} above {}", m.max_staleness, bound);
        if p.pipeline == "async" && !p.interruptible && !p.failures {
            // Non-interruptible updates: every sample is generated under one policy version (a failure moves
            // sequences to other workers, whose weights may be newer).
            for t in run.trajectories.all() {
                prop_assert!(t.segments.windows(2).all(|w| w[0].version == w[1].version));
            }
        }
        prop_assert_eq!(m.steps, p.steps);
        // Steps are ordered and contiguous.
        for w in run.report.steps.windows(2) {
            prop_assert_eq!(w[0].end_s, w[1].start_s);
            prop_assert!(w[1].end_s >= w[1].start_s);
        }
        // Determinism: the same scenario again gives the same timeline.
        let again = simulate(&s).unwrap();
        prop_assert_eq!(&run.timeline, &again.timeline);
        // The report computed as the run goes (finished trajectories retired) is the report of the whole Timeline.
        let mut streamed = simulate_recording(&s, Recording::SUMMARY).unwrap();
        streamed.report.summary.wall_s = run.report.summary.wall_s;
        prop_assert_eq!(&streamed.report, &run.report);
        streamed.trajectories.check_conservation().unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases() / 2))]
    /// A coarse-grained run (`workload.coarsen`) keeps every invariant, counted in real trajectories: the scenario
    /// above scaled so that k divides its counts, each engine gets a group and the KV cache holds k copies.
    #[test]
    fn coarse_runs_keep_the_invariants(p in params(), k in prop_oneof![Just(2u32), Just(3), Just(4)]) {
        let gpus = p.nodes * p.gpus_per_node;
        let p = Params {
            // `--set` goes through toml_edit, whose integers are i64.
            seed: p.seed & i64::MAX as u64,
            prompts: p.prompts.max(gpus) * k,
            max_num_seqs: p.max_num_seqs * k,
            kv_tokens: p.kv_tokens * k,
            ..p
        };
        let s = Scenario::from_text(&scenario_text(&p), Path::new("prop.toml"), &[format!("workload.coarsen={k}")])
            .unwrap_or_else(|e| panic!("{p:?}: {e}"));
        let run = simulate(&s).unwrap();
        let m = &run.report.summary;
        run.trajectories.check_conservation().unwrap();
        prop_assert_eq!(m.coarsen, k);
        prop_assert_eq!(m.trained_samples, (p.steps * p.prompts * p.samples) as u64);
        prop_assert_eq!(run.trajectories.all().len() as u64 * k as u64, m.trained_samples);
        prop_assert_eq!(m.generated_tokens, m.trained_tokens + m.in_flight_tokens + m.discarded_tokens);
        let span_tokens: u64 = run.timeline.spans.iter().filter(|s| s.kind == SpanKind::Generate).map(|s| s.tokens).sum();
        prop_assert_eq!(span_tokens * k as u64, m.generated_tokens);
        prop_assert!(run.timeline.find_double_booking().is_none(), "{:?}", run.timeline.find_double_booking());
        prop_assert_eq!(m.steps, p.steps);
        let again = simulate(&s).unwrap();
        prop_assert_eq!(&run.timeline, &again.timeline);
        let mut streamed = simulate_recording(&s, Recording::SUMMARY).unwrap();
        streamed.report.summary.wall_s = run.report.summary.wall_s;
        prop_assert_eq!(&streamed.report, &run.report);
    }
}

#[test]
fn memory_errors_are_located() {
    // The defaults (1 node × 2 GPUs, 100-token responses), with room for only 10 tokens of KV cache.
    let p = Params { kv_tokens: 10, ..Params::default() };
    let e = Scenario::from_text(&scenario_text(&p), Path::new("prop.toml"), &[]).unwrap_err().to_string();
    assert!(e.starts_with("prop.toml:"), "{e}");
}

#[test]
fn a_tight_kv_cache_preempts_and_still_conserves_every_token() {
    let p = Params {
        pipeline: "colocated",
        nodes: 1,
        gpus_per_node: 2,
        prompts: 4,
        samples: 4,
        steps: 2,
        median: 200,
        sigma: 1.0,
        max_response: 400,
        prompt: 32,
        max_num_seqs: 8,
        kv_tokens: 64 + 400 + 2,
        seed: 11,
        ..Params::default()
    };
    let s = Scenario::from_text(&scenario_text(&p), Path::new("prop.toml"), &[]).unwrap();
    let run = simulate(&s).unwrap();
    assert!(run.timeline.counters["kv_preemptions"] > 0, "{:?}", run.timeline.counters);
    run.trajectories.check_conservation().unwrap();
    assert_eq!(run.report.summary.trained_samples, 32);
    assert!(run.trajectories.all().iter().all(|t| t.generated == t.target_tokens));
}

/// Found by the property above at 100,000 cases: seamless with lending "always" and failures. A lent worker failed;
/// reclaiming it sent a pause whose `Paused` event (then delivered at once, before the driver queued events) made the
/// policy fill the rollout pool inside the fill it was already issuing, so two groups were given the same trajectory ids and one trajectory was admitted
/// twice ("trajectory 57 is Running(…); admit needs it queued or paused").
#[test]
fn reclaiming_a_failed_lent_worker_admits_no_trajectory_twice() {
    let p = Params {
        pipeline: "seamless",
        nodes: 1,
        gpus_per_node: 4,
        prompts: 6,
        samples: 3,
        steps: 4,
        median: 44,
        sigma: 1.4167246290363698,
        max_response: 736,
        prompt: 42,
        max_num_seqs: 1,
        kv_tokens: 802,
        seed: 12188942902351407983,
        max_staleness: 2,
        mini_batches: 2,
        interruptible: false,
        over_provision: 1.0,
        lend: "always",
        failures: true,
        ..Params::default()
    };
    let s = Scenario::from_text(&scenario_text(&p), Path::new("prop.toml"), &[]).unwrap();
    let run = simulate(&s).unwrap();
    run.trajectories.check_conservation().unwrap();
    assert_eq!(run.report.summary.trained_samples, (p.steps * p.prompts * p.samples) as u64);
    assert!(run.report.summary.failures > 0, "the scenario must exercise a failure");
}

/// Found by the property above at 1,000,000 cases (after 117,193 passing ones): seamless, multi-turn, failures. A
/// sequence finished at the very boundary where its worker failed; the policy heard of it before `WorkerFailed`, saw
/// the worker still rolling out and admitted more work there; on recovery that deferred admission ran ahead of a
/// weight sync deferred meanwhile, which found the worker busy ("worker `rollout` is busy (RollingOut)").
#[test]
fn work_admitted_to_a_worker_as_it_fails_does_not_block_the_next_sync() {
    let p = Params {
        pipeline: "seamless",
        nodes: 1,
        gpus_per_node: 2,
        prompts: 6,
        samples: 2,
        steps: 3,
        median: 104,
        sigma: 0.1,
        max_response: 45,
        prompt: 38,
        max_num_seqs: 7,
        kv_tokens: 222,
        seed: 16701666221865061312,
        max_staleness: 1,
        mini_batches: 2,
        interruptible: false,
        over_provision: 1.0,
        lend: "gain",
        multi_turn: true,
        failures: true,
        ..Params::default()
    };
    let s = Scenario::from_text(&scenario_text(&p), Path::new("prop.toml"), &[]).unwrap();
    let run = simulate(&s).unwrap();
    run.trajectories.check_conservation().unwrap();
    assert_eq!(run.report.summary.trained_samples, (p.steps * p.prompts * p.samples) as u64);
    assert!(run.report.summary.failures > 0, "the scenario must exercise a failure");
}

/// Found by the property above at 1,000,000 cases (after 113,950 passing ones): the partial pipeline (colocated
/// layout) with failures admitted a trajectory to a worker that was switching roles ("invalid command Admit
/// { worker: WorkerId(2), trajectories: [TrajId(8)] }: worker `hybrid2` is busy (Switching)" at t = 35.96 s). A
/// worker failed at the boundary where the cut ended the step's rollout; its trajectory was readmitted to itself (no
/// other rollout worker was up), queued behind its deferred switch. Now carried to the next step like the cut's.
#[test]
fn partial_with_failures_never_admits_to_a_switching_worker() {
    let p = Params {
        pipeline: "partial",
        nodes: 1,
        gpus_per_node: 4,
        prompts: 2,
        samples: 2,
        steps: 3,
        median: 212,
        sigma: 0.19193415490145638,
        max_response: 199,
        prompt: 47,
        max_num_seqs: 1,
        kv_tokens: 265,
        seed: 8484203562501005269,
        max_staleness: 0,
        interruptible: false,
        over_provision: 1.9436327103212039,
        partial_layout: "colocated",
        failures: true,
        ..Params::default()
    };
    let s = Scenario::from_text(&scenario_text(&p), Path::new("prop.toml"), &[]).unwrap();
    let run = simulate(&s).unwrap();
    run.trajectories.check_conservation().unwrap();
}
