//! The Policy contract: a policy sees Events and a read-only ClusterView and returns Commands as data. It never
//! touches time (other than `view.now`), devices or randomness, so the same code drives every backend.

use crate::cluster::{Cluster, WorkerId};
use crate::cost::{Estimates, Role};
use crate::policies::{colocated::Colocated, disaggregated::Disaggregated, streaming::Streaming};
use crate::scenario::{Layout, PipelineKind, PipelineSpec};
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

/// A decision; the backend validates it (an invalid command is an error, never ignored) and carries it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Create `groups` prompt groups of `samples_per_prompt` trajectories each, for the batch of `step`. Their ids
    /// follow on from `view.trajectories.next_id()`, group by group.
    CreateGroups { step: u32, groups: u32 },
    /// Hand queued or paused trajectories to a rollout worker's engine (they join its batch at the next boundary).
    Admit { worker: WorkerId, trajectories: Vec<TrajId> },
    /// Train step `step` on `workers` with these finished trajectories.
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
}

impl Command {
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

impl ClusterView<'_> {
    /// Ids of workers carrying `tag`, in id order.
    pub fn with_tag(&self, tag: &str) -> Vec<WorkerId> {
        self.cluster.with_tag(tag).map(|w| w.id).collect()
    }

    pub fn worker(&self, id: WorkerId) -> &WorkerState {
        &self.workers[id.index()]
    }

    /// Idle workers carrying `tag` and holding it now (a free worker to give work of that kind), in id order.
    pub fn free_with_tag(&self, tag: &str) -> Vec<WorkerId> {
        self.cluster
            .with_tag(tag)
            .map(|w| &self.workers[w.id.index()])
            .filter(|s| s.activity == Activity::Idle && s.role.name() == tag)
            .map(|s| s.id)
            .collect()
    }
}

/// A scheduling policy (one per pipeline type).
pub trait Policy {
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
