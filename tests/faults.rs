//! Faults on the real backend: workers killed mid-generation and mid-step (`[[failures.events]]`). In a test
//! binary of its own, so no other real run competes for the cores and moves the kill times off their target.

mod common;
use common::{check_run, exec_tiny};
use rlsim_exec::device::DeviceSpec;
use rlsim_exec::runtime::execute;
use rlsim_sim::timeline::{SpanKind, Timeline};

/// The first span of `kind` on `worker` in step `step`, in seconds.
fn span_of(t: &Timeline, worker: &str, kind: SpanKind, step: u32) -> Option<(f64, f64)> {
    let w = t.workers.iter().position(|x| x.name == worker)? as u32;
    t.spans
        .iter()
        .find(|s| s.worker == w && s.kind == kind && s.step == Some(step))
        .map(|s| (s.start.as_secs_f64(), s.end.as_secs_f64()))
}

/// Runs exec-tiny (colocated, 2 steps) with `worker` killed at `at_s` and down for 1.5 s, checks it kept every
/// invariant and trained the same samples as `clean`, and returns the run.
fn killed(worker: &str, at_s: f64, clean: &rlsim_exec::runtime::ExecRun, attempt: u32) -> rlsim_exec::runtime::ExecRun {
    let faults = format!("failures={{recovery_s=1.5,events=[{{worker=\"{worker}\",at_s={at_s:.4}}}]}}");
    let s = exec_tiny(&[SETS[0], SETS[1], &faults]);
    let run = execute(&s, DeviceSpec::Cpu).unwrap_or_else(|e| panic!("{worker} killed at {at_s} s: {e}"));
    let what = format!("exec with {worker} killed at {at_s:.3} s (attempt {attempt})");
    check_run(&what, &s, &run.timeline, &run.report, &run.trajectories, 0);
    assert_eq!(run.report.summary.failures, 1, "{what}");
    assert_eq!(run.report.summary.trained_samples, clean.report.summary.trained_samples, "{what}");
    // The worker was down for its recovery time (a Down span of ~1.5 s on its row).
    let w = run.timeline.workers.iter().position(|x| x.name == worker).unwrap() as u32;
    let down: f64 = run
        .timeline
        .spans
        .iter()
        .filter(|x| x.worker == w && x.kind == SpanKind::Down)
        .map(|x| x.end.as_secs_f64() - x.start.as_secs_f64())
        .sum();
    assert!(down > 1.0, "{what}: down {down} s");
    // The down time is added to the run: far more than two real runs differ by.
    let (with, without) = (run.report.summary.sim_time_s, clean.report.summary.sim_time_s);
    assert!(with > without, "{what}: {with} s vs {without} s without faults");
    run
}

const SETS: [&str; 2] = ["pipeline.type=colocated", "workload.steps=2"];

/// Real workers killed mid-generation and mid-step: the runtime takes the killed engine's sequences back (tokens
/// kept) and the policy resumes them on the other worker; the lost train step restarts after the recovery; the
/// run ends with the same trained samples as without faults, later. The kill times come from a fault-free run's
/// timeline; a kill that missed its activity (this machine's speed varies) is retried with a fresh timeline.
#[test]
fn real_workers_killed_mid_generation_and_mid_step_lose_nothing() {
    let mut landed = (false, false);
    for attempt in 0..3 {
        let s0 = exec_tiny(&SETS);
        let clean = execute(&s0, DeviceSpec::Cpu).unwrap();
        check_run("exec fault-free", &s0, &clean.timeline, &clean.report, &clean.trajectories, 0);
        let reference = &clean.timeline;
        if !landed.0 {
            // hybrid1 dies halfway through its first rollout: the sequences in its engine come back and resume on
            // hybrid0. (On CPU the first engine iteration, with its warm-up, is most of a first rollout, so they
            // often come back before their first token; the tokens of those that have some are kept.)
            let (r0, r1) = span_of(reference, "hybrid1", SpanKind::Rollout, 0).expect("a rollout span");
            let at = (r0 + r1) / 2.0;
            let run = killed("hybrid1", at, &clean, attempt);
            let c = run.trajectories.counters();
            landed.0 = c.paused > 0 && c.resumed >= c.paused;
            if !landed.0 {
                eprintln!("attempt {attempt}: the rollout kill at {at:.3} s of [{r0:.3}, {r1:.3}] took no sequence");
            }
        }
        if !landed.1 {
            // hybrid0 (the trainer) dies halfway through step 0's log-prob passes: the step is thrown away (once
            // its optimizer step has run, a step is done) and runs again after the recovery.
            let (l0, _) = span_of(reference, "hybrid0", SpanKind::LogProb, 0).expect("a log-prob span");
            let (t0, _) = span_of(reference, "hybrid0", SpanKind::Train, 0).expect("a train span");
            let run = killed("hybrid0", (l0 + t0) / 2.0, &clean, attempt);
            landed.1 = run.timeline.counters["lost_work_gpu_ms"] > 0;
        }
        if landed == (true, true) {
            return;
        }
    }
    panic!("after 3 attempts a kill still missed its activity (rollout, train): {landed:?}");
}
