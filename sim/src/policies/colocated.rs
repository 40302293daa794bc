//! `colocated` (verl / HybridFlow): every GPU rolls out, waits for the longest sample, switches to training,
//! trains, switches back and reloads the new weights. Strictly on-policy. With a `PartialRollout` it is `partial`
//! on the time-sliced layout: the rollout ends when P groups are complete and the rest continue next step.

use crate::cost::Role;
use crate::policies::partial::PartialRollout;
use crate::policies::rounds::{BatchRounds, RoundEnd};
use crate::policy::{readmit_elsewhere, ClusterView, Command, Event, Policy};
use crate::trajectory::TrajId;
use crate::workload::WorkloadSpec;

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Rollout,
    SwitchingToTrain,
    Training,
    SwitchingToRollout,
    Syncing,
    Done,
}

pub struct Colocated {
    steps: u32,
    prompts_per_step: u32,
    step: u32,
    phase: Phase,
    batch: Vec<TrajId>,
    /// The step's rollout rounds (one, or several under dynamic sampling).
    rounds: BatchRounds,
    switches_left: usize,
    partial: Option<PartialRollout>,
}

impl Colocated {
    pub fn new(w: &WorkloadSpec) -> Self {
        Colocated {
            steps: w.steps,
            prompts_per_step: w.prompts_per_step,
            step: 0,
            phase: Phase::Rollout,
            batch: Vec::new(),
            rounds: BatchRounds::new(w),
            switches_left: 0,
            partial: None,
        }
    }

    /// `partial` on the time-sliced layout.
    pub fn partial(w: &WorkloadSpec, over_provision: f64) -> Self {
        let mut c = Self::new(w);
        c.partial = Some(PartialRollout::new(over_provision, w.prompts_per_step, w.samples_per_prompt));
        c
    }

    /// After the partial cut: the batch, then the switch to training.
    fn end_partial_rollout(&mut self, view: &ClusterView) -> Vec<Command> {
        self.batch = self.partial.as_mut().expect("partial").take_batch();
        self.phase = Phase::SwitchingToTrain;
        self.switch_all(view, Role::Train)
    }

    fn start_step(&mut self, view: &ClusterView) -> Vec<Command> {
        self.phase = Phase::Rollout;
        if let Some(p) = self.partial.as_mut() {
            if p.batch_complete() {
                return self.end_partial_rollout(view);
            }
            let left = (self.steps - self.step) as u64 * self.prompts_per_step as u64;
            return p.start(self.step, left, &view.with_tag("rollout"), view);
        }
        self.rounds.start(self.step, view, &view.with_tag("rollout"))
    }

    fn switch_all(&mut self, view: &ClusterView, to: Role) -> Vec<Command> {
        let mut workers = view.with_tag("rollout");
        workers.extend(view.with_tag("train"));
        workers.sort();
        workers.dedup();
        self.switches_left = workers.len();
        workers.into_iter().map(|worker| Command::Retag { step: self.step, worker, to }).collect()
    }
}

impl Policy for Colocated {
    fn name(&self) -> &'static str {
        if self.partial.is_some() {
            "partial"
        } else {
            "colocated"
        }
    }

    fn on_event(&mut self, event: &Event, view: &ClusterView) -> Vec<Command> {
        match event {
            Event::Started => self.start_step(view),
            Event::WorkerFailed { worker, trajectories } => {
                if let Some(p) = self.partial.as_mut() {
                    if self.phase != Phase::Rollout || p.is_cutting() {
                        p.carry(trajectories);
                        return vec![];
                    }
                }
                readmit_elsewhere(view, *worker, trajectories)
            }
            Event::TrajectoryFinished { trajectory, .. } if self.partial.is_some() => {
                let p = self.partial.as_mut().expect("checked");
                if !p.on_finished(*trajectory) || self.phase != Phase::Rollout {
                    return vec![];
                }
                let pauses = p.cut(view);
                if p.cut_done() {
                    return self.end_partial_rollout(view);
                }
                pauses
            }
            Event::Paused { worker, trajectories } if self.partial.is_some() => {
                let p = self.partial.as_mut().expect("checked");
                if p.on_paused(*worker, trajectories) && self.phase == Phase::Rollout {
                    return self.end_partial_rollout(view);
                }
                vec![]
            }
            Event::TrajectoryFinished { .. } if self.phase == Phase::Rollout => {
                if !self.rounds.on_finished() {
                    return vec![];
                }
                match self.rounds.end_round(view, &view.with_tag("rollout")) {
                    RoundEnd::More(cmds) => cmds,
                    RoundEnd::Batch { batch, mut commands } => {
                        self.batch = batch;
                        self.phase = Phase::SwitchingToTrain;
                        commands.extend(self.switch_all(view, Role::Train));
                        commands
                    }
                }
            }
            Event::Retagged { role: Role::Train, .. } if self.phase == Phase::SwitchingToTrain => {
                self.switches_left -= 1;
                if self.switches_left > 0 {
                    return vec![];
                }
                self.phase = Phase::Training;
                vec![Command::Train {
                    step: self.step,
                    workers: view.with_tag("train"),
                    trajectories: std::mem::take(&mut self.batch),
                }]
            }
            Event::TrainDone { .. } if self.phase == Phase::Training => {
                self.phase = Phase::SwitchingToRollout;
                self.switch_all(view, Role::Rollout)
            }
            Event::Retagged { role: Role::Rollout, .. } if self.phase == Phase::SwitchingToRollout => {
                self.switches_left -= 1;
                if self.switches_left > 0 {
                    return vec![];
                }
                self.phase = Phase::Syncing;
                vec![Command::SyncWeights {
                    step: self.step,
                    from: view.with_tag("train"),
                    to: view.with_tag("rollout"),
                }]
            }
            Event::WeightsSynced { .. } if self.phase == Phase::Syncing => {
                self.step += 1;
                if self.step < self.steps {
                    self.start_step(view)
                } else {
                    self.phase = Phase::Done;
                    vec![]
                }
            }
            _ => vec![],
        }
    }
}
