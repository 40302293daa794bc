//! The Policy contract: a policy sees Events and a read-only ClusterView and returns Commands as data. It never
//! touches time (other than `view.now`), devices or randomness, so the same code drives every backend.

use crate::cluster::{Cluster, WorkerId};
use crate::cost::{Estimates, Role};
use crate::policies::{colocated::Colocated, disaggregated::Disaggregated, streaming::Streaming};
use crate::scenario::{Layout, PipelineKind, PipelineSpec, Scenario};
use crate::time::SimTime;
use crate::trajectory::{TrajId, TrajectoryManager};
use crate::workload::WorkloadSpec;

/// Something that happened; delivered to the policy in time order (ties in the order they were scheduled).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The run begins.
    Started,
    /// A trajectory reached its response length on `worker`.
    TrajectoryFinished {
        trajectory: TrajId,
        worker: WorkerId,
    },
    /// A rollout worker has nothing left to run or wait for.
    WorkerDrained {
        worker: WorkerId,
    },
    /// A `Retag` finished: `worker` now holds `role`.
    Retagged {
        worker: WorkerId,
        role: Role,
    },
    /// Train step `step` finished; the trainer now holds policy `version`.
    TrainDone {
        step: u32,
        version: u32,
    },
    /// The `SyncWeights` for `step` finished: its target workers now hold policy `version`.
    WeightsSynced {
        step: u32,
        version: u32,
    },
    /// A timer set with `SetTimer` fired.
    TimerFired {
        id: u64,
    },
    /// `Pause` took effect: these trajectories left `worker` with their tokens kept (status Paused).
    Paused {
        worker: WorkerId,
        trajectories: Vec<TrajId>,
    },
    /// `worker` failed: it is down until `WorkerRecovered`; these trajectories were generating on it and are now
    /// paused with their tokens kept (resume them elsewhere: `readmit_elsewhere`). Commands naming a down worker
    /// wait for its recovery; a train step it was part of restarts by itself when it recovers.
    WorkerFailed {
        worker: WorkerId,
        trajectories: Vec<TrajId>,
    },
    WorkerRecovered {
        worker: WorkerId,
    },
}

/// A decision; the driver validates it (an invalid command is an error, never ignored) and the backend carries it
/// out. Events reach the policy one at a time: the events a command causes (a pause's `Paused`) come after the rest
/// of the command list it was in has been carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Create `groups` prompt groups of `samples_per_prompt` trajectories each, for the batch of `step`. Their ids
    /// follow on from `view.trajectories.next_id()`, group by group.
    CreateGroups { step: u32, groups: u32 },
    /// Hand queued or paused trajectories to a rollout worker's engine (they join its batch at the next boundary).
    Admit { worker: WorkerId, trajectories: Vec<TrajId> },
    /// Train step `step` on `workers` with these finished trajectories.
    ///
    /// Step labels (of Train, SyncWeights and Retag) count train steps from 0, and a step's work must be done by
    /// the time the next train step completes: once train step k + 1 is done (and nothing labelled k is under way
    /// or waiting for a down worker), step k is closed and a command labelled k or earlier is refused. That lets the
    /// report close a step's window and fold its time as the run goes.
    Train { step: u32, workers: Vec<WorkerId>, trajectories: Vec<TrajId> },
    /// Copy the trainer's current weights from `from` to `to`; `step` labels the spans.
    SyncWeights { step: u32, from: Vec<WorkerId>, to: Vec<WorkerId> },
    /// Retag: make `worker` hold `to`, one of the tags it carries (offload one state, onload the other, load the
    /// trainer's current weights when it becomes a rollout engine); its engine must be empty. Costs
    /// `Estimates::switch_ns`; `step` labels the span.
    Retag { step: u32, worker: WorkerId, to: Role },
    /// Deliver `TimerFired { id }` at `at`.
    SetTimer { at: SimTime, id: u64 },
    /// Stop generating these trajectories on `worker` (all of its resident ones when `None`) at the end of the
    /// decode iteration in progress; they keep their tokens and can be admitted again anywhere (re-prefilled).
    Pause { worker: WorkerId, trajectories: Option<Vec<TrajId>> },
    /// Drop finished trajectories that will never be trained (dynamic sampling); their tokens count as discarded.
    Discard { trajectories: Vec<TrajId> },
}

impl Command {
    /// Whether carrying this command out needs a worker for which `down` holds: both backends then hold it back
    /// until that worker recovers (the job stalls on it, as a real one would).
    pub fn needs_any(&self, down: impl Fn(WorkerId) -> bool) -> bool {
        match self {
            Command::Admit { worker, .. } | Command::Retag { worker, .. } => down(*worker),
            Command::Train { workers, .. } => workers.iter().any(|w| down(*w)),
            Command::SyncWeights { from, to, .. } => from.iter().chain(to).any(|w| down(*w)),
            Command::CreateGroups { .. }
            | Command::SetTimer { .. }
            | Command::Pause { .. }
            | Command::Discard { .. } => false,
        }
    }

    /// The command as error messages show it (long lists cut short).
    pub fn describe(&self) -> String {
        let mut text = format!("{self:?}");
        if text.chars().count() > 200 {
            text = text.chars().take(200).collect::<String>() + "…";
        }
        text
    }
}

/// What a worker is doing.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Activity {
    Idle,
    RollingOut,
    Training,
    Syncing,
    Switching,
    /// Failed, waiting to recover.
    Down,
}

/// A worker's state as policies see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerState {
    pub id: WorkerId,
    pub role: Role,
    pub activity: Activity,
    /// Policy version of the weights it holds for rollout.
    pub weights_version: u32,
    /// Trajectories in its engine (running + waiting).
    pub resident: usize,
}

impl WorkerState {
    /// Every worker of `cluster` at the start of a run: idle in its start role, holding version 0, empty.
    pub fn initial(cluster: &Cluster) -> Vec<WorkerState> {
        cluster
            .workers
            .iter()
            .map(|w| WorkerState { id: w.id, role: w.start, activity: Activity::Idle, weights_version: 0, resident: 0 })
            .collect()
    }
}

/// The read-only view a policy decides from.
pub struct ClusterView<'a> {
    pub now: SimTime,
    pub cluster: &'a Cluster,
    pub workers: &'a [WorkerState],
    pub trajectories: &'a TrajectoryManager,
    /// Policy version the trainer holds (number of train steps done).
    pub trainer_version: u32,
    pub workload: &'a WorkloadSpec,
    pub estimates: &'a dyn Estimates,
}

impl<'a> ClusterView<'a> {
    /// The view of a run of `scenario` at `now` (what the driver, and a test's fake view, hand a policy).
    pub fn of(
        now: SimTime,
        scenario: &'a Scenario,
        workers: &'a [WorkerState],
        trajectories: &'a TrajectoryManager,
        trainer_version: u32,
        estimates: &'a dyn Estimates,
    ) -> Self {
        ClusterView {
            now,
            cluster: &scenario.cluster,
            workers,
            trajectories,
            trainer_version,
            workload: &scenario.workload,
            estimates,
        }
    }

    /// Ids of workers carrying `tag`, in id order.
    pub fn with_tag(&self, tag: &str) -> Vec<WorkerId> {
        self.with_tag_iter(tag).collect()
    }

    /// `with_tag` without collecting (per-event callers need not allocate).
    pub fn with_tag_iter<'s>(&'s self, tag: &'s str) -> impl Iterator<Item = WorkerId> + 's {
        self.cluster.with_tag(tag).map(|w| w.id)
    }

    pub fn worker(&self, id: WorkerId) -> &WorkerState {
        &self.workers[id.index()]
    }

    /// Idle workers carrying `tag` and holding it now (a free worker to give work of that kind), in id order.
    pub fn free_with_tag(&self, tag: &str) -> Vec<WorkerId> {
        self.free_with_tag_iter(tag).collect()
    }

    /// `free_with_tag` without collecting (per-event callers need not allocate).
    pub fn free_with_tag_iter<'s>(&'s self, tag: &'s str) -> impl Iterator<Item = WorkerId> + 's {
        self.cluster
            .with_tag(tag)
            .map(|w| &self.workers[w.id.index()])
            .filter(move |s| s.activity == Activity::Idle && s.role.name() == tag)
            .map(|s| s.id)
    }
}

/// A scheduling policy (one per pipeline type). `Send`, so a paused simulation can move between threads (`search`
/// screens on one and carries on on another).
pub trait Policy: Send {
    fn name(&self) -> &'static str;
    fn on_event(&mut self, event: &Event, view: &ClusterView) -> Vec<Command>;
}

/// The policy for a pipeline spec.
pub fn build_policy(spec: &PipelineSpec, workload: &WorkloadSpec) -> Box<dyn Policy> {
    match spec.kind {
        PipelineKind::Colocated => Box::new(Colocated::new(workload)),
        PipelineKind::Disaggregated => Box::new(Disaggregated::new(workload)),
        PipelineKind::Partial if spec.layout == Layout::TimeSliced => {
            Box::new(Colocated::partial(workload, spec.over_provision))
        }
        PipelineKind::Partial => Box::new(Disaggregated::partial(workload, spec.over_provision)),
        PipelineKind::Async => Box::new(Streaming::new_async(workload, spec)),
        PipelineKind::Seamless => Box::new(Streaming::new_seamless(workload, spec)),
    }
}

/// Checks a command against the cluster and the workers' states, the same way in every backend (a backend adds
/// only what is its own, e.g. the real backend's single trainer). `Err` is the reason, for the backend's error.
pub fn check_command(c: &Command, cluster: &Cluster, workers: &[WorkerState], now: SimTime) -> Result<(), String> {
    let state = |w: WorkerId| workers.get(w.index()).ok_or_else(|| format!("no worker {}", w.0));
    let name = |w: WorkerId| &cluster.worker(w).name;
    let idle = |w: WorkerId| -> Result<(), String> {
        let st = state(w)?;
        if st.activity != Activity::Idle {
            return Err(format!("worker `{}` is busy ({:?})", name(w), st.activity));
        }
        Ok(())
    };
    match c {
        Command::CreateGroups { .. } => {}
        Command::Admit { worker, .. } => {
            let st = state(*worker)?;
            if !cluster.worker(*worker).has_tag("rollout") || st.role != Role::Rollout {
                return Err(format!("worker `{}` is not holding a rollout engine", name(*worker)));
            }
            if !matches!(st.activity, Activity::Idle | Activity::RollingOut) {
                return Err(format!("worker `{}` is busy ({:?})", name(*worker), st.activity));
            }
        }
        Command::Train { workers: on, .. } => {
            if on.is_empty() {
                return Err("no workers".into());
            }
            for &w in on {
                idle(w)?;
                if !cluster.worker(w).has_tag("train") || workers[w.index()].role != Role::Train {
                    return Err(format!("worker `{}` is not holding the training state", name(w)));
                }
            }
        }
        Command::SyncWeights { from, to, .. } => {
            if from.is_empty() || to.is_empty() {
                return Err("needs at least one source and one target".into());
            }
            for &w in from.iter().chain(to) {
                idle(w)?;
            }
            if let Some(&w) = to.iter().find(|w| !cluster.worker(**w).has_tag("rollout")) {
                return Err(format!("target `{}` has no rollout tag", name(w)));
            }
        }
        Command::Retag { worker, to, .. } => {
            idle(*worker)?;
            let st = &workers[worker.index()];
            if !cluster.worker(*worker).has_tag(to.name()) {
                return Err(format!("worker `{}` has no `{}` tag", name(*worker), to.name()));
            }
            if st.role == *to {
                return Err(format!("worker `{}` already holds {}", name(*worker), to.name()));
            }
            if st.resident > 0 {
                return Err(format!("worker `{}` still has trajectories in its engine", name(*worker)));
            }
        }
        Command::Pause { worker, .. } => {
            state(*worker)?;
            if !cluster.worker(*worker).has_tag("rollout") {
                return Err(format!("worker `{}` has no rollout engine", name(*worker)));
            }
        }
        Command::SetTimer { at, .. } => {
            if *at < now {
                return Err("the time is in the past".into());
            }
        }
        Command::Discard { .. } => {}
    }
    Ok(())
}

/// Spreads trajectories of a failed worker round-robin over the rollout workers that are up and holding rollout
/// (or back to the failed one, which then waits for its recovery, when no other can take them).
pub fn readmit_elsewhere(view: &ClusterView, failed: WorkerId, trajectories: &[TrajId]) -> Vec<Command> {
    if trajectories.is_empty() {
        return Vec::new();
    }
    let mut up: Vec<WorkerId> = view
        .workers
        .iter()
        .filter(|w| {
            w.id != failed && w.role == Role::Rollout && matches!(w.activity, Activity::Idle | Activity::RollingOut)
        })
        .map(|w| w.id)
        .collect();
    if up.is_empty() {
        up.push(failed);
    }
    let mut lists = vec![Vec::new(); up.len()];
    for (i, t) in trajectories.iter().enumerate() {
        lists[i % up.len()].push(*t);
    }
    up.into_iter()
        .zip(lists)
        .filter(|(_, l)| !l.is_empty())
        .map(|(worker, trajectories)| Command::Admit { worker, trajectories })
        .collect()
}

/// Splits `groups` prompt groups, whose trajectories are numbered from `first`, evenly over `workers` in contiguous
/// chunks of whole groups (as verl chunks a batch over data-parallel engines); one Admit per worker that gets any.
pub fn admit_groups_evenly(first: TrajId, groups: u32, samples_per_prompt: u32, workers: &[WorkerId]) -> Vec<Command> {
    let n = workers.len() as u64;
    let mut out = Vec::new();
    for (i, w) in workers.iter().enumerate() {
        let (lo, hi) = (groups as u64 * i as u64 / n, groups as u64 * (i as u64 + 1) / n);
        if hi > lo {
            let s = samples_per_prompt as u64;
            out.push(Command::Admit {
                worker: *w,
                trajectories: (first.0 + lo * s..first.0 + hi * s).map(TrajId).collect(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::WorkerGroupSpec;
    use crate::hardware::gpu_preset;

    /// Worker 0 rolls out, worker 1 trains (and may be lent: it carries `rollout` too).
    fn setup() -> (Cluster, Vec<WorkerState>) {
        let group = |name: &str, tags: &[&str], start| WorkerGroupSpec {
            name: name.into(),
            count: 1,
            tp: 1,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            start,
            gpu: None,
        };
        let groups = [group("r", &["rollout"], Role::Rollout), group("t", &["train", "rollout"], Role::Train)];
        let cluster = Cluster::build(gpu_preset("H100-SXM").unwrap(), 1, 2, &groups).unwrap();
        let states = WorkerState::initial(&cluster);
        (cluster, states)
    }

    #[test]
    fn commands_are_checked_the_same_way_for_every_backend() {
        let (cluster, mut st) = setup();
        let (r, t) = (WorkerId(0), WorkerId(1));
        let check = |c: Command, st: &[WorkerState]| check_command(&c, &cluster, st, SimTime(10)).err();
        let admit = |w| Command::Admit { worker: w, trajectories: vec![] };
        assert_eq!(check(admit(r), &st), None);
        assert_eq!(check(admit(t), &st).unwrap(), "worker `t` is not holding a rollout engine");
        assert_eq!(check(admit(WorkerId(7)), &st).unwrap(), "no worker 7");
        let train = |w: Vec<WorkerId>| Command::Train { step: 0, workers: w, trajectories: vec![] };
        assert_eq!(check(train(vec![]), &st).unwrap(), "no workers");
        assert_eq!(check(train(vec![r]), &st).unwrap(), "worker `r` is not holding the training state");
        assert_eq!(check(train(vec![t]), &st), None);
        let sync = |from: Vec<WorkerId>, to: Vec<WorkerId>| Command::SyncWeights { step: 0, from, to };
        assert_eq!(check(sync(vec![t], vec![]), &st).unwrap(), "needs at least one source and one target");
        assert_eq!(check(sync(vec![t], vec![r]), &st), None);
        let retag = |to| Command::Retag { step: 0, worker: r, to };
        assert_eq!(check(retag(Role::Train), &st).unwrap(), "worker `r` has no `train` tag");
        assert_eq!(check(retag(Role::Rollout), &st).unwrap(), "worker `r` already holds rollout");
        assert_eq!(check(Command::Retag { step: 0, worker: t, to: Role::Rollout }, &st), None);
        assert_eq!(check(Command::SetTimer { at: SimTime(9), id: 0 }, &st).unwrap(), "the time is in the past");
        // Busy workers and non-empty engines.
        st[0].activity = Activity::RollingOut;
        st[0].resident = 3;
        assert_eq!(check(admit(r), &st), None, "a rolling-out engine takes more");
        assert_eq!(check(sync(vec![t], vec![r]), &st).unwrap(), "worker `r` is busy (RollingOut)");
        st[1].role = Role::Rollout;
        st[1].resident = 2;
        let back = Command::Retag { step: 0, worker: t, to: Role::Train };
        assert_eq!(check(back, &st).unwrap(), "worker `t` still has trajectories in its engine");
    }

    #[test]
    fn groups_split_evenly_and_stay_whole() {
        let cmds = admit_groups_evenly(TrajId(10), 5, 2, &[WorkerId(0), WorkerId(1)]);
        assert_eq!(
            cmds,
            vec![
                Command::Admit { worker: WorkerId(0), trajectories: (10..14).map(TrajId).collect() },
                Command::Admit { worker: WorkerId(1), trajectories: (14..20).map(TrajId).collect() },
            ]
        );
        assert_eq!(admit_groups_evenly(TrajId(0), 1, 4, &[WorkerId(0), WorkerId(1)]).len(), 1);
    }
}
