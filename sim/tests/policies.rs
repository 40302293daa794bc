//! Policies on their own: a fake view (no backend, no time) and the decisions a policy takes event by event,
//! checked by hand against what its pipeline promises.

use rlsim_sim::cluster::WorkerId;
use rlsim_sim::cost::Role;
use rlsim_sim::fake_view::FakeView;
use rlsim_sim::policy::{build_policy, Command, Event, Policy};
use rlsim_sim::scenario::Scenario;
use rlsim_sim::trajectory::TrajId;
use std::path::Path;

/// Two GPUs (one worker each), 2 prompts × 2 samples per step, `steps` steps, under `pipeline`.
fn scenario(pipeline: &str, steps: u32) -> Scenario {
    let text = format!(
        r#"
name = "policy-unit"
seed = 3
[model]
preset = "Qwen2.5-7B"
[cluster]
gpu = "H200"
nodes = 1
gpus_per_node = 2
[workload]
prompts_per_step = 2
samples_per_prompt = 2
steps = {steps}
max_response_tokens = 64
response_tokens = {{ kind = "constant", tokens = 64 }}
prompt_tokens = {{ kind = "constant", tokens = 16 }}
[pipeline]
type = "{pipeline}"
[pipeline.disaggregated]
rollout_gpus = 1
"#
    );
    Scenario::from_text(&text, Path::new("policy-unit.toml"), &[]).unwrap()
}

fn ids(range: std::ops::Range<u64>) -> Vec<TrajId> {
    range.map(TrajId).collect()
}

/// Delivers `event`, books what the driver would, and returns the commands.
fn step(policy: &mut dyn Policy, fake: &mut FakeView, event: Event) -> Vec<Command> {
    let commands = policy.on_event(&event, &fake.view());
    fake.book(&commands).unwrap();
    commands
}

#[test]
fn colocated_rolls_out_on_every_worker_then_switches_trains_switches_back_and_syncs() {
    let s = scenario("colocated", 1);
    let mut policy = build_policy(&s.pipeline, &s.workload);
    let mut fake = FakeView::new(s);
    let (w0, w1) = (WorkerId(0), WorkerId(1));
    // The batch of step 0: two groups, one per worker, whole.
    let started = step(&mut *policy, &mut fake, Event::Started);
    assert_eq!(
        started,
        vec![
            Command::CreateGroups { step: 0, groups: 2 },
            Command::Admit { worker: w0, trajectories: ids(0..2) },
            Command::Admit { worker: w1, trajectories: ids(2..4) },
        ]
    );
    // Nothing happens until the longest sample is done: then every worker switches to training.
    for t in 0..3 {
        let worker = fake.finish(TrajId(t)).unwrap();
        assert_eq!(step(&mut *policy, &mut fake, Event::TrajectoryFinished { trajectory: TrajId(t), worker }), vec![]);
    }
    let worker = fake.finish(TrajId(3)).unwrap();
    let cmds = step(&mut *policy, &mut fake, Event::TrajectoryFinished { trajectory: TrajId(3), worker });
    let retag = |worker, to| Command::Retag { step: 0, worker, to };
    assert_eq!(cmds, vec![retag(w0, Role::Train), retag(w1, Role::Train)]);
    // Both must hold the training state before the step trains, on both, with the whole batch.
    fake.set_role(w0, Role::Train);
    assert_eq!(step(&mut *policy, &mut fake, Event::Retagged { worker: w0, role: Role::Train }), vec![]);
    fake.set_role(w1, Role::Train);
    let cmds = step(&mut *policy, &mut fake, Event::Retagged { worker: w1, role: Role::Train });
    assert_eq!(cmds, vec![Command::Train { step: 0, workers: vec![w0, w1], trajectories: ids(0..4) }]);
    // Then back to rollout, and the new weights go to every engine (the driver frees the trainers first).
    fake.trainer_version = 1;
    fake.set_role(w0, Role::Train);
    fake.set_role(w1, Role::Train);
    let cmds = step(&mut *policy, &mut fake, Event::TrainDone { step: 0, version: 1 });
    assert_eq!(cmds, vec![retag(w0, Role::Rollout), retag(w1, Role::Rollout)]);
    fake.set_role(w0, Role::Rollout);
    fake.set_role(w1, Role::Rollout);
    assert_eq!(step(&mut *policy, &mut fake, Event::Retagged { worker: w1, role: Role::Rollout }), vec![]);
    let cmds = step(&mut *policy, &mut fake, Event::Retagged { worker: w0, role: Role::Rollout });
    assert_eq!(cmds, vec![Command::SyncWeights { step: 0, from: vec![w0, w1], to: vec![w0, w1] }]);
    // The last step done: nothing more.
    assert_eq!(step(&mut *policy, &mut fake, Event::WeightsSynced { step: 0, version: 1 }), vec![]);
}

#[test]
fn a_failed_workers_trajectories_are_resumed_on_the_others() {
    let s = scenario("colocated", 1);
    let mut policy = build_policy(&s.pipeline, &s.workload);
    let mut fake = FakeView::new(s);
    step(&mut *policy, &mut fake, Event::Started);
    // Worker 1 fails with both of its samples (down, the samples paused): they go to worker 0, the only rollout
    // engine up, which takes them beside its own.
    let paused = fake.fail(WorkerId(1)).unwrap();
    assert_eq!(paused, ids(2..4));
    let cmds = step(&mut *policy, &mut fake, Event::WorkerFailed { worker: WorkerId(1), trajectories: paused });
    assert_eq!(cmds, vec![Command::Admit { worker: WorkerId(0), trajectories: ids(2..4) }]);
    assert_eq!(fake.states[0].resident, 4);
}

/// One step off-policy: the rollout worker generates step 1's batch with the old weights while the trainer trains
/// step 0; the new weights reach the engine only once it has drained, before step 2's batch would start.
#[test]
fn disaggregated_trains_one_step_behind_the_rollout() {
    let s = scenario("disaggregated", 2);
    let mut policy = build_policy(&s.pipeline, &s.workload);
    let mut fake = FakeView::new(s);
    let (rollout, trainer) = (WorkerId(0), WorkerId(1));
    let cmds = step(&mut *policy, &mut fake, Event::Started);
    assert_eq!(
        cmds,
        vec![Command::CreateGroups { step: 0, groups: 2 }, Command::Admit { worker: rollout, trajectories: ids(0..4) }]
    );
    let finish = |fake: &mut FakeView, policy: &mut dyn Policy, t: u64| {
        let worker = fake.finish(TrajId(t)).unwrap();
        step(policy, fake, Event::TrajectoryFinished { trajectory: TrajId(t), worker })
    };
    for t in 0..3 {
        assert_eq!(finish(&mut fake, &mut *policy, t), vec![]);
    }
    // Step 0's batch is complete: step 1's rollout starts at once, beside step 0's training.
    assert_eq!(
        finish(&mut fake, &mut *policy, 3),
        vec![
            Command::CreateGroups { step: 1, groups: 2 },
            Command::Admit { worker: rollout, trajectories: ids(4..8) },
            Command::Train { step: 0, workers: vec![trainer], trajectories: ids(0..4) },
        ]
    );
    // The trained weights wait: the engine is busy with step 1's batch (generated by version 0, one step behind).
    fake.trainer_version = 1;
    fake.states[trainer.index()].activity = rlsim_sim::policy::Activity::Idle;
    assert_eq!(step(&mut *policy, &mut fake, Event::TrainDone { step: 0, version: 1 }), vec![]);
    for t in 4..7 {
        assert_eq!(finish(&mut fake, &mut *policy, t), vec![]);
    }
    // The engine is drained: the sync goes out before anything else.
    assert_eq!(
        finish(&mut fake, &mut *policy, 7),
        vec![Command::SyncWeights { step: 0, from: vec![trainer], to: vec![rollout] }]
    );
    // The last step: train it; no rollout follows.
    assert_eq!(
        step(&mut *policy, &mut fake, Event::WeightsSynced { step: 0, version: 1 }),
        vec![Command::Train { step: 1, workers: vec![trainer], trajectories: ids(4..8) }]
    );
}

/// verl's fully_async rollouter keeps at most `stream_groups_per_engine` prompt groups in flight per engine: with 1
/// and one engine, the next group starts only when every sample of the one in flight has finished, though the engine
/// has free slots and the staleness bound would admit more.
#[test]
fn async_keeps_at_most_the_frameworks_groups_in_flight_per_engine() {
    let mut s = scenario("async", 3);
    assert_eq!(s.pipeline.open_groups_per_engine, 16, "the verl preset's cap, taken for async");
    s.pipeline.open_groups_per_engine = 1;
    let mut policy = build_policy(&s.pipeline, &s.workload);
    let mut fake = FakeView::new(s);
    let rollout = WorkerId(0);
    assert_eq!(
        step(&mut *policy, &mut fake, Event::Started),
        vec![Command::CreateGroups { step: 0, groups: 1 }, Command::Admit { worker: rollout, trajectories: ids(0..2) }]
    );
    let finish = |fake: &mut FakeView, policy: &mut dyn Policy, t: u64| {
        let worker = fake.finish(TrajId(t)).unwrap();
        step(policy, fake, Event::TrajectoryFinished { trajectory: TrajId(t), worker })
    };
    // Half the group done: still in flight, nothing new.
    assert_eq!(finish(&mut fake, &mut *policy, 0), vec![]);
    // The group completes: the next one starts.
    assert_eq!(
        finish(&mut fake, &mut *policy, 1),
        vec![Command::CreateGroups { step: 0, groups: 1 }, Command::Admit { worker: rollout, trajectories: ids(2..4) }]
    );
    // Without the cap the staleness bound alone decides: more than one group at the start.
    let mut s = scenario("async", 3);
    s.pipeline.open_groups_per_engine = 0;
    let mut policy = build_policy(&s.pipeline, &s.workload);
    let mut fake = FakeView::new(s);
    let started = step(&mut *policy, &mut fake, Event::Started);
    let groups = started.iter().filter(|c| matches!(c, Command::CreateGroups { .. })).count();
    assert!(groups > 1, "{started:?}");
}

/// The driver delivers a command's own events after the rest of its command list: when `Paused` arrives, the
/// `Admit` that followed the `Pause` in the same list has been carried out (both backends deliver this way).
#[test]
fn the_policy_is_never_called_while_a_command_list_is_half_carried_out() {
    use rlsim_sim::policy::{Activity, ClusterView};
    use std::sync::{Arc, Mutex};
    struct PauseThenAdmit {
        /// Activity of worker 1 when `Paused` arrived.
        seen: Arc<Mutex<Option<Activity>>>,
        finished: usize,
    }
    impl Policy for PauseThenAdmit {
        fn name(&self) -> &'static str {
            "pause-then-admit"
        }
        fn on_event(&mut self, event: &Event, view: &ClusterView) -> Vec<Command> {
            let (w0, w1, trainer) = (WorkerId(0), WorkerId(1), WorkerId(2));
            match event {
                Event::Started => vec![
                    Command::CreateGroups { step: 0, groups: 2 },
                    Command::Admit { worker: w0, trajectories: ids(0..2) },
                    Command::SetTimer { at: rlsim_sim::time::SimTime(1), id: 1 },
                ],
                Event::TimerFired { .. } => vec![
                    Command::Pause { worker: w0, trajectories: None },
                    Command::Admit { worker: w1, trajectories: ids(2..4) },
                ],
                Event::Paused { trajectories, .. } => {
                    *self.seen.lock().unwrap() = Some(view.worker(w1).activity);
                    vec![Command::Admit { worker: w1, trajectories: trajectories.clone() }]
                }
                Event::TrajectoryFinished { .. } => {
                    self.finished += 1;
                    if self.finished < 4 {
                        return vec![];
                    }
                    vec![Command::Train { step: 0, workers: vec![trainer], trajectories: ids(0..4) }]
                }
                _ => vec![],
            }
        }
    }
    let s = Scenario::from_text(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/quickstart.toml")).unwrap(),
        Path::new("quickstart.toml"),
        &[
            "cluster.gpus_per_node=3".into(),
            "cluster.gpu=\"H200\"".into(),
            "pipeline.type=\"disaggregated\"".into(),
            "pipeline.disaggregated.rollout_gpus=2".into(),
            "workload.steps=1".into(),
            "workload.prompts_per_step=2".into(),
            "workload.samples_per_prompt=2".into(),
        ],
    )
    .unwrap();
    let seen = Arc::new(Mutex::new(None));
    let policy = PauseThenAdmit { seen: seen.clone(), finished: 0 };
    let run = rlsim_sim::simulator::simulate_with(&s, Box::new(policy)).unwrap();
    assert_eq!(run.report.summary.trained_samples, 4);
    assert_eq!(*seen.lock().unwrap(), Some(Activity::RollingOut), "Paused came before the Admit after the Pause");
}
