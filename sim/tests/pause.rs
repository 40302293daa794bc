//! Pause, resume and migrate through the Policy contract: a custom policy pauses every trajectory on one worker
//! mid-generation and resumes them on another. No token is lost; the resumed ones are re-prefilled.

use rlsim_sim::cluster::WorkerId;
use rlsim_sim::policy::{ClusterView, Command, Event, Policy};
use rlsim_sim::scenario::Scenario;
use rlsim_sim::simulator::simulate_with;
use rlsim_sim::time::SimTime;
use rlsim_sim::trajectory::{TrajId, TrajStatus};
use std::path::Path;

const SCENARIO: &str = r#"
name = "pause"
seed = 4
[model]
preset = "Qwen2.5-7B"
[cluster]
gpu = "H100-SXM"
nodes = 1
gpus_per_node = 4
[[cluster.workers]]
name = "r"
count = 2
tags = ["rollout"]
[[cluster.workers]]
name = "t"
tp = 2
tags = ["train"]
[workload]
prompts_per_step = 4
samples_per_prompt = 4
steps = 1
max_response_tokens = 2000
response_tokens = { kind = "constant", tokens = 2000 }
prompt_tokens = { kind = "constant", tokens = 500 }
[pipeline]
type = "disaggregated"
"#;

/// Admits everything to r0, pauses it all after 5 s, resumes it on r1, trains when all have finished.
struct Migrator {
    all: Vec<TrajId>,
    finished: usize,
    paused: Vec<TrajId>,
}

impl Policy for Migrator {
    fn name(&self) -> &'static str {
        "migrator"
    }

    fn on_event(&mut self, event: &Event, view: &ClusterView) -> Vec<Command> {
        match event {
            Event::Started => {
                let first = view.trajectories.next_id().0;
                self.all = (first..first + 16).map(TrajId).collect();
                vec![
                    Command::CreateGroups { step: 0, groups: 4 },
                    Command::Admit { worker: WorkerId(0), trajectories: self.all.clone() },
                    Command::SetTimer { at: SimTime(5_000_000_000), id: 1 },
                ]
            }
            Event::TimerFired { .. } => vec![Command::Pause { worker: WorkerId(0), trajectories: None }],
            Event::Paused { worker, trajectories } => {
                assert_eq!(*worker, WorkerId(0));
                self.paused = trajectories.clone();
                for t in trajectories {
                    assert_eq!(view.trajectories.get(*t).unwrap().status, TrajStatus::Paused);
                }
                vec![Command::Admit { worker: WorkerId(1), trajectories: trajectories.clone() }]
            }
            Event::TrajectoryFinished { .. } => {
                self.finished += 1;
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
fn paused_trajectories_resume_elsewhere_with_every_token_kept() {
    let s = Scenario::from_text(SCENARIO, Path::new("pause.toml"), &[]).unwrap();
    let run = simulate_with(&s, Box::new(Migrator { all: vec![], finished: 0, paused: vec![] })).unwrap();
    run.trajectories.check_conservation().unwrap();
    let c = run.trajectories.counters();
    assert_eq!((c.paused, c.resumed, c.migrated), (16, 16, 16));
    assert_eq!(c.trained_tokens, 16 * 2000);
    for t in run.trajectories.all() {
        assert_eq!(t.generated, 2000);
        assert_eq!(t.segments.len(), 2, "one segment per worker");
        assert_eq!((t.segments[0].worker, t.segments[1].worker), (WorkerId(0), WorkerId(1)));
        assert!(t.segments[0].tokens > 0 && t.segments[1].tokens > 0);
    }
    // Prompts (500 tokens, once per group thanks to prefix caching) on r0, then on r1 each resumed sequence
    // re-prefills its generated tokens (its prompt is cached for all but the first of each group).
    let first: u64 = run.trajectories.all().iter().map(|t| t.segments[0].tokens as u64).sum();
    let prefill = run.timeline.counters["prefill_tokens"];
    assert_eq!(prefill, 4 * 500 + 4 * 500 + first, "prefill {prefill}");
    assert!(run.timeline.find_double_booking().is_none());
    // The pause happened at the end of the iteration running at 5 s.
    let cut = run
        .timeline
        .spans
        .iter()
        .filter(|s| s.worker == 0 && s.kind == rlsim_sim::timeline::SpanKind::Generate)
        .map(|s| s.end)
        .max()
        .unwrap();
    assert!(cut >= SimTime(5_000_000_000) && cut < SimTime(5_100_000_000), "{cut}");
}

/// A policy that does nothing after creating work, and one that asks a training-only worker to roll out.
struct Idle;
impl Policy for Idle {
    fn name(&self) -> &'static str {
        "idle"
    }
    fn on_event(&mut self, _: &Event, _: &ClusterView) -> Vec<Command> {
        vec![]
    }
}

struct Wrong;
impl Policy for Wrong {
    fn name(&self) -> &'static str {
        "wrong"
    }
    fn on_event(&mut self, event: &Event, view: &ClusterView) -> Vec<Command> {
        match event {
            Event::Started => vec![
                Command::CreateGroups { step: 0, groups: 1 },
                Command::Admit { worker: WorkerId(2), trajectories: vec![view.trajectories.next_id()] },
            ],
            _ => vec![],
        }
    }
}

#[test]
fn policy_bugs_are_errors_not_hangs_or_silence() {
    let s = Scenario::from_text(SCENARIO, Path::new("pause.toml"), &[]).unwrap();
    let e = simulate_with(&s, Box::new(Idle)).err().expect("a policy that never trains stalls").to_string();
    assert!(e.contains("policy `idle` stopped after 0 of 1 train steps"), "{e}");
    let e = simulate_with(&s, Box::new(Wrong)).err().expect("admitting to a train worker is refused").to_string();
    assert!(e.contains("policy `wrong`") && e.contains("worker `t` is not holding a rollout engine"), "{e}");
}

/// The bundled disaggregated policy, plus one late weight sync labelled step 0 once train step 1 is done.
struct LateLabel {
    inner: Box<dyn Policy>,
}
impl Policy for LateLabel {
    fn name(&self) -> &'static str {
        "late-label"
    }
    fn on_event(&mut self, event: &Event, view: &ClusterView) -> Vec<Command> {
        let mut cmds = self.inner.on_event(event, view);
        if let Event::TrainDone { step: 1, .. } = event {
            cmds.push(Command::SyncWeights { step: 0, from: vec![WorkerId(2)], to: vec![WorkerId(0)] });
        }
        cmds
    }
}

#[test]
fn a_command_labelled_with_a_closed_step_is_refused() {
    // Step 0 closes once train step 1 is done: the report has folded its window by then.
    let s = Scenario::from_text(SCENARIO, Path::new("pause.toml"), &["workload.steps=3".into()]).unwrap();
    let inner = rlsim_sim::policy::build_policy(&s.pipeline, &s.workload);
    let e = simulate_with(&s, Box::new(LateLabel { inner })).err().expect("refused").to_string();
    assert!(e.contains("policy `late-label`") && e.contains("step 0 is closed: train step 1 is done"), "{e}");
}
