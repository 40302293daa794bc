//! One test body, two backends: the same scenario and the same policy code run in the simulator and on the real
//! backend (candle on CPU); both must keep the invariants, and their Timelines must show the same decisions.

use rlsim_exec::device::DeviceSpec;
use rlsim_exec::runtime::{execute, execute_with};
use rlsim_exec::validate::{compare_reports, compare_structure};
use rlsim_sim::cluster::WorkerId;
use rlsim_sim::policy::{ClusterView, Command, Event, Policy};
use rlsim_sim::scenario::Scenario;
use rlsim_sim::simulator::{simulate, simulate_with};
use rlsim_sim::timeline::{CounterKind, CounterSample, SpanKind, Timeline};
use rlsim_sim::trajectory::TrajId;
use std::path::Path;

mod common;
use common::{check_run, exec_tiny};

#[test]
fn both_backends_run_the_same_policies_with_the_same_decisions() {
    for (pipeline, bound) in [("colocated", 0), ("disaggregated", 1)] {
        let s = exec_tiny(&[&format!("pipeline.type={pipeline}"), "workload.steps=3"]);
        let sim = simulate(&s).unwrap();
        let real = execute(&s, DeviceSpec::Cpu).unwrap();
        assert_eq!(real.report.summary.backend, "exec");
        check_run(&format!("sim {pipeline}"), &s, &sim.timeline, &sim.report, &sim.trajectories, bound);
        check_run(&format!("exec {pipeline}"), &s, &real.timeline, &real.report, &real.trajectories, bound);
        compare_structure(&sim.timeline, &real.timeline).unwrap_or_else(|e| panic!("{pipeline}: {e}"));
        check_counters(&format!("sim {pipeline}"), &sim.timeline, 3);
        check_counters(&format!("exec {pipeline}"), &real.timeline, 3);
        // The engines made the same batching decisions: the same number of decode iterations.
        assert_eq!(
            sim.timeline.counters["decode_iterations"], real.timeline.counters["decode_iterations"],
            "{pipeline}"
        );
        // Validation compares like with like; with a generous bound (the strict figures are in docs/validation.md:
        // this shared 2-vCPU machine's speed swings by tens of percent between runs).
        for row in compare_reports(pipeline, &sim.report, &real.report) {
            if row.metric == "median step time (s)" {
                assert!(row.error.abs() < 2.0, "{pipeline}: simulated {} vs measured {}", row.simulated, row.measured);
            }
            if row.metric == "mean staleness" {
                assert_eq!(row.error, 0.0, "{pipeline}: staleness is decided by the policy, not by timing");
            }
        }
    }
}

/// Both backends record the trace's counters: every worker that generated ran a batch (running > 0, with KV-cache
/// tokens in use) and ended empty; the policy version counts the train steps; each counter's samples are in time
/// order and change value at every sample.
fn check_counters(what: &str, t: &Timeline, steps: u64) {
    let of = |w: u32, k: CounterKind| t.counter_samples.iter().filter(move |c| c.worker == w && c.kind == k);
    for w in 0..t.workers.len() as u32 {
        if !t.spans.iter().any(|s| s.worker == w && s.kind == SpanKind::Generate) {
            continue;
        }
        assert!(of(w, CounterKind::Running).any(|c| c.value > 0), "{what}: worker {w} never ran a batch");
        assert!(of(w, CounterKind::KvTokens).any(|c| c.value > 0), "{what}: worker {w} never held KV cache");
        assert_eq!(of(w, CounterKind::Running).next_back().map(|c| c.value), Some(0), "{what}: worker {w} ends busy");
    }
    let versions: Vec<u64> = of(CounterSample::RUN, CounterKind::PolicyVersion).map(|c| c.value).collect();
    assert_eq!(versions, (0..=steps).collect::<Vec<_>>(), "{what}");
    for w in (0..t.workers.len() as u32).chain([CounterSample::RUN]) {
        for k in CounterKind::ALL {
            let v: Vec<&CounterSample> = of(w, k).collect();
            assert!(v.windows(2).all(|p| p[0].at < p[1].at && p[0].value != p[1].value), "{what}: {w} {k:?}");
        }
    }
}

/// The pipelines whose decisions depend on timing (which sample finishes first across workers) keep the same
/// promises on both backends: conservation, every sample trained, no double booking, the staleness bound.
#[test]
fn both_backends_run_async_partial_and_seamless_within_their_promises() {
    let cases: [(&str, &[&str], u32); 4] = [
        ("async", &["pipeline.async.max_staleness=1"], 1),
        ("async", &["pipeline.async.max_staleness=0", "pipeline.async.interruptible=false"], 0),
        ("partial", &["pipeline.partial.over_provision=2.0"], u32::MAX),
        ("seamless", &["pipeline.seamless.lend=always"], 1),
    ];
    for (pipeline, extra, bound) in cases {
        let mut sets = vec![format!("pipeline.type={pipeline}"), "workload.steps=3".to_string()];
        sets.extend(extra.iter().map(|s| s.to_string()));
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/exec-tiny.toml");
        let s = Scenario::load(&path, &sets).unwrap();
        let sim = simulate(&s).unwrap();
        let real = execute(&s, DeviceSpec::Cpu).unwrap();
        assert_eq!(real.report.summary.pipeline, pipeline);
        let what = format!("{pipeline} {extra:?}");
        check_run(&format!("sim {what}"), &s, &sim.timeline, &sim.report, &sim.trajectories, bound);
        check_run(&format!("exec {what}"), &s, &real.timeline, &real.report, &real.trajectories, bound);
        assert_eq!(sim.report.summary.discarded_tokens + real.report.summary.discarded_tokens, 0, "{what}");
    }
}

#[test]
fn the_real_trainer_learns_the_task() {
    let s = exec_tiny(&["workload.steps=24"]);
    let run = execute(&s, DeviceSpec::Cpu).unwrap();
    let r = &run.step_rewards;
    assert_eq!(r.len(), 24);
    let first = r[..4].iter().sum::<f32>() / 4.0;
    let last = r[r.len() - 4..].iter().sum::<f32>() / 4.0;
    // A fresh model emits even ids about half the time; GRPO pushes it clearly up (and the new weights must
    // reach the rollout engines for the rewards to move at all).
    assert!((0.35..0.65).contains(&first), "rewards {r:?}");
    assert!(last > first + 0.15, "rewards {r:?}");
}

/// GRPO with decoupled PPO under async with η = 4: samples up to four versions stale are corrected (their
/// behaviour weights differ from 1) and the model still learns.
#[test]
fn the_real_trainer_learns_under_async_with_stale_samples() {
    let s = exec_tiny(&["workload.steps=24", "pipeline.type=async", "pipeline.async.max_staleness=4"]);
    let run = execute(&s, DeviceSpec::Cpu).unwrap();
    let r = &run.step_rewards;
    assert_eq!(r.len(), 24);
    assert!(run.report.summary.max_staleness >= 1, "some samples must be stale");
    let stale_steps = run.step_ratios.iter().filter(|x| x.mean_abs_behaviour_weight_dev > 1e-3).count();
    assert!(stale_steps > 0, "ratios {:?}", run.step_ratios);
    let first = r[..4].iter().sum::<f32>() / 4.0;
    let last = r[r.len() - 4..].iter().sum::<f32>() / 4.0;
    assert!(last > first + 0.1, "rewards {r:?}");
}

/// Every LogProb and Train span on an exec timeline is work its worker's thread did: the colocated group trains
/// data-parallel, so each of its workers ran each step, computed on its own share of tokens and spent about its
/// spans' time busy on the CPU.
#[test]
fn each_train_span_is_work_its_worker_did() {
    for pipeline in ["colocated", "disaggregated"] {
        let s = exec_tiny(&["workload.steps=4", &format!("pipeline.type={pipeline}")]);
        let run = execute(&s, DeviceSpec::Cpu).unwrap();
        assert_eq!(run.report.summary.devices, vec!["cpu"; s.cluster.workers.len()]);
        assert!(!run.report.summary.shared_devices, "CPU threads are not a shared GPU");
        for w in &s.cluster.workers {
            let work = run.worker_work[w.id.index()];
            let spans: Vec<_> = run
                .timeline
                .spans
                .iter()
                .filter(|x| x.worker == w.id.0 && x.kind == rlsim_sim::timeline::SpanKind::Train)
                .collect();
            let what = format!("{pipeline} {}", w.name);
            assert_eq!(spans.len() as u32, work.train_steps, "{what}: one Train span per step its thread ran");
            assert_eq!(spans.iter().map(|x| x.tokens).sum::<u64>(), work.train_tokens, "{what}: its own tokens");
            assert_eq!(w.has_tag("train"), work.train_steps == 4, "{what}: every train worker trains every step");
            let span_ns: u64 = run
                .timeline
                .spans
                .iter()
                .filter(|x| x.worker == w.id.0)
                .filter(|x| {
                    matches!(x.kind, rlsim_sim::timeline::SpanKind::Train | rlsim_sim::timeline::SpanKind::LogProb)
                })
                .map(|x| x.end.since(x.start))
                .sum();
            assert_eq!(span_ns, work.train_ns, "{what}: the spans are the thread's own timings");
            // The thread was on the CPU during its steps (an idle thread shows next to none — the bug this guards
            // against), and never more than the steps' wall time (one thread). Load-independent bounds.
            if work.train_steps > 0 && work.cpu_ns > 0 {
                assert!(work.train_cpu_ns > 0, "{what}: no CPU time in {span_ns} ns of train spans");
                assert!(
                    work.train_cpu_ns as f64 <= 1.05 * span_ns as f64 + 2e6,
                    "{what}: cpu {} ns > {span_ns} ns of spans",
                    work.train_cpu_ns
                );
            }
        }
    }
}

/// Admits everything to worker 0, pauses everything left there when the first trajectory finishes (the others are
/// mid-generation then), resumes them on worker 1, trains when all have finished, syncs: the same policy on both
/// backends.
struct Migrator {
    all: Vec<TrajId>,
    finished: usize,
    paused: usize,
}

impl Policy for Migrator {
    fn name(&self) -> &'static str {
        "migrator"
    }

    fn on_event(&mut self, event: &Event, view: &ClusterView) -> Vec<Command> {
        match event {
            Event::Started => {
                let first = view.trajectories.next_id().0;
                let n = (view.workload.prompts_per_step * view.workload.samples_per_prompt) as u64;
                self.all = (first..first + n).map(TrajId).collect();
                vec![
                    Command::CreateGroups { step: 0, groups: view.workload.prompts_per_step },
                    Command::Admit { worker: WorkerId(0), trajectories: self.all.clone() },
                ]
            }
            Event::Paused { trajectories, .. } => {
                self.paused += trajectories.len();
                vec![Command::Admit { worker: WorkerId(1), trajectories: trajectories.clone() }]
            }
            Event::TrajectoryFinished { worker, .. } => {
                self.finished += 1;
                if self.finished == 1 && *worker == WorkerId(0) {
                    return vec![Command::Pause { worker: WorkerId(0), trajectories: None }];
                }
                if self.finished < self.all.len() {
                    return vec![];
                }
                vec![Command::Train { step: 0, workers: vec![WorkerId(2)], trajectories: self.all.clone() }]
            }
            Event::TrainDone { .. } => {
                vec![Command::SyncWeights { step: 0, from: vec![WorkerId(2)], to: vec![WorkerId(0), WorkerId(1)] }]
            }
            _ => vec![],
        }
    }
}

#[test]
fn pause_and_resume_elsewhere_lose_nothing_on_either_backend() {
    let layout = [
        "cluster.gpus_per_node=3",
        "workload.steps=1",
        "pipeline.type=disaggregated",
        "pipeline.disaggregated.rollout_gpus=2",
    ];
    let s = exec_tiny(&layout);
    // Response lengths vary (lognormal), so the first to finish leaves the rest mid-generation.
    let sim = simulate_with(&s, Box::new(Migrator { all: vec![], finished: 0, paused: 0 })).unwrap();
    let real = execute_with(&s, DeviceSpec::Cpu, Box::new(Migrator { all: vec![], finished: 0, paused: 0 })).unwrap();
    for (what, tm) in [("sim", &sim.trajectories), ("exec", &real.trajectories)] {
        tm.check_conservation().unwrap_or_else(|e| panic!("{what}: {e}"));
        let c = tm.counters();
        assert!(c.paused > 0, "{what}: the pause caught trajectories mid-generation");
        // Every paused one resumed; those that had generated tokens on worker 0 count as migrated.
        let on = |t: &rlsim_sim::trajectory::Trajectory, w: u32| t.segments.iter().any(|g| g.worker == WorkerId(w));
        let moved = tm.all().iter().filter(|t| on(t, 0) && on(t, 1)).count() as u64;
        assert_eq!((c.resumed, c.migrated), (c.paused, moved), "{what}");
        assert!(moved > 0, "{what}");
        let targets: u64 = tm.all().iter().map(|t| t.target_tokens as u64).sum();
        assert_eq!(c.trained_tokens, targets, "{what}: every token trained");
        for t in tm.all() {
            assert_eq!(t.generated, t.target_tokens, "{what}");
            let on_first: u32 = t.segments.iter().filter(|g| g.worker == WorkerId(0)).map(|g| g.tokens).sum();
            let on_second: u32 = t.segments.iter().filter(|g| g.worker == WorkerId(1)).map(|g| g.tokens).sum();
            assert_eq!(on_first + on_second, t.generated, "{what}");
        }
    }
}

/// Rolls out on a worker that only trains: both backends must refuse the command, naming the policy and worker.
struct AdmitToTrainer;
impl Policy for AdmitToTrainer {
    fn name(&self) -> &'static str {
        "admit-to-trainer"
    }
    fn on_event(&mut self, event: &Event, view: &ClusterView) -> Vec<Command> {
        match event {
            Event::Started => vec![
                Command::CreateGroups { step: 0, groups: 1 },
                Command::Admit { worker: WorkerId(1), trajectories: vec![view.trajectories.next_id()] },
            ],
            _ => vec![],
        }
    }
}

#[test]
fn an_invalid_command_is_an_error_on_both_backends() {
    let s = exec_tiny(&["pipeline.type=disaggregated", "workload.steps=1"]);
    let sim = simulate_with(&s, Box::new(AdmitToTrainer)).err().expect("refused").to_string();
    let real = execute_with(&s, DeviceSpec::Cpu, Box::new(AdmitToTrainer)).err().expect("refused").to_string();
    for e in [sim, real] {
        assert!(
            e.contains("policy `admit-to-trainer`") && e.contains("worker `train0` is not holding a rollout engine"),
            "{e}"
        );
    }
}

/// Two trains, or (on the real backend) two weight syncs, at once.
struct TwoAtOnce {
    syncs: bool,
    finished: usize,
}
impl Policy for TwoAtOnce {
    fn name(&self) -> &'static str {
        "two-at-once"
    }
    fn on_event(&mut self, event: &Event, view: &ClusterView) -> Vec<Command> {
        let (rollout, train) = (view.with_tag("rollout"), view.with_tag("train"));
        let ids = |r: std::ops::Range<u64>| r.map(TrajId).collect::<Vec<_>>();
        match event {
            Event::Started => vec![
                Command::CreateGroups { step: 0, groups: 1 },
                Command::Admit { worker: rollout[0], trajectories: ids(0..4) },
            ],
            Event::TrajectoryFinished { .. } => {
                self.finished += 1;
                match (self.finished, self.syncs) {
                    (4, false) => vec![
                        Command::Train { step: 0, workers: vec![train[0]], trajectories: ids(0..2) },
                        Command::Train { step: 0, workers: vec![train[1]], trajectories: ids(2..4) },
                    ],
                    (4, true) => vec![Command::Train { step: 0, workers: train.clone(), trajectories: ids(0..4) }],
                    _ => vec![],
                }
            }
            Event::TrainDone { .. } => vec![
                Command::SyncWeights { step: 0, from: vec![train[0]], to: vec![rollout[0]] },
                Command::SyncWeights { step: 0, from: vec![train[1]], to: vec![rollout[1]] },
            ],
            _ => vec![],
        }
    }
}

#[test]
fn one_train_step_at_a_time_on_both_backends_and_one_sync_at_a_time_on_the_real_one() {
    // Two rollout engines and two single-GPU trainers (replicas), written out as workers.
    let s = exec_tiny(&[
        "pipeline.type=disaggregated",
        "cluster.gpus_per_node=4",
        "cluster.workers=[{name=\"gen\",count=2,tp=1,tags=[\"rollout\"]},{name=\"trainer\",count=2,tp=1,tags=[\"train\"]}]",
        "workload.steps=1",
        "workload.prompts_per_step=1",
    ]);
    let two_trains = || Box::new(TwoAtOnce { syncs: false, finished: 0 });
    let sim = simulate_with(&s, two_trains()).err().expect("refused").to_string();
    let real = execute_with(&s, DeviceSpec::Cpu, two_trains()).err().expect("refused").to_string();
    for e in [sim, real] {
        assert!(e.contains("policy `two-at-once`") && e.contains("a train step is already running"), "{e}");
    }
    // Two syncs from two replicas to two engines: the simulator copies both at once, the real backend one at a time.
    let two_syncs = || Box::new(TwoAtOnce { syncs: true, finished: 0 });
    simulate_with(&s, two_syncs()).unwrap();
    let e = execute_with(&s, DeviceSpec::Cpu, two_syncs()).err().expect("refused").to_string();
    assert!(e.contains("a weight sync is already running"), "{e}");
}

/// What only the simulator models is refused by the real backend with a message that names the file and field,
/// never silently ignored.
#[test]
fn the_real_backend_refuses_what_it_cannot_run() {
    let failures = exec_tiny(&["failures={mtbf_gpu_hours=1000}"]);
    let e = execute(&failures, DeviceSpec::Cpu).err().expect("refused").to_string();
    assert!(e.contains("exec-tiny.toml: field `failures.mtbf_gpu_hours`") && e.contains("[[failures.events]]"), "{e}");
    let agents = exec_tiny(&[
        "workload.multi_turn={turns={kind=\"constant\",tokens=2},tool_latency_s={kind=\"constant\",seconds=0.01},tool_tokens={kind=\"constant\",tokens=2}}",
    ]);
    let e = execute(&agents, DeviceSpec::Cpu).err().expect("refused").to_string();
    assert!(e.contains("exec-tiny.toml: field `workload`") && e.contains("multi-turn"), "{e}");
    // The simulator runs both.
    simulate(&failures).unwrap();
    simulate(&agents).unwrap();
}
