//! `disaggregated` (one-step off-policy: verl one_step_off, StreamRL, AsyncFlow): separate rollout and train pools;
//! the batch of step k+1 is generated while step k trains, so every sample is at most one version stale.
//!
//! Rules, checked in this order after every event:
//! 1. sync: the trainer holds newer weights than the rollout pool, and neither is busy → push them (both pools wait);
//! 2. rollout: no rollout running and the pool's weights are at least version k−1 → generate the batch of step k;
//! 3. train: the trainer is idle and the batch of its next step is complete → train it.
//!
//! With a `PartialRollout` it is `partial` on the split layout: a step's rollout ends when P groups are complete;
//! the rest are paused and continued first by the next step's rollout.

use crate::policies::partial::PartialRollout;
use crate::policies::rounds::{BatchRounds, RoundEnd};
use crate::policy::{readmit_elsewhere, ClusterView, Command, Event, Policy};
use crate::trajectory::TrajId;
use crate::workload::WorkloadSpec;
use std::collections::BTreeMap;

pub struct Disaggregated {
    steps: u32,
    prompts_per_step: u32,
    /// Step whose batch is being generated.
    generating: Option<u32>,
    next_rollout: u32,
    next_train: u32,
    ready: BTreeMap<u32, Vec<TrajId>>,
    /// The rounds of the batch being generated (one, or several under dynamic sampling).
    rounds: BatchRounds,
    training: bool,
    syncing: bool,
    rollout_version: u32,
    partial: Option<PartialRollout>,
}

impl Disaggregated {
    pub fn new(w: &WorkloadSpec) -> Self {
        Disaggregated {
            steps: w.steps,
            prompts_per_step: w.prompts_per_step,
            generating: None,
            next_rollout: 0,
            next_train: 0,
            ready: BTreeMap::new(),
            rounds: BatchRounds::new(w),
            training: false,
            syncing: false,
            rollout_version: 0,
            partial: None,
        }
    }

    /// `partial` on the split layout.
    pub fn partial(w: &WorkloadSpec, over_provision: f64) -> Self {
        let mut d = Self::new(w);
        d.partial = Some(PartialRollout::new(over_provision, w.prompts_per_step, w.samples_per_prompt));
        d
    }

    /// The partial cut landed: the step's batch is ready.
    fn end_partial_rollout(&mut self) {
        let step = self.generating.take().expect("a rollout is running");
        let batch = self.partial.as_mut().expect("partial").take_batch();
        self.ready.insert(step, batch);
    }

    fn advance(&mut self, view: &ClusterView) -> Vec<Command> {
        let mut cmds = Vec::new();
        if !self.syncing && !self.training && self.generating.is_none() && view.trainer_version > self.rollout_version {
            self.syncing = true;
            cmds.push(Command::SyncWeights {
                step: view.trainer_version - 1,
                from: view.with_tag("train"),
                to: view.with_tag("rollout"),
            });
            return cmds;
        }
        if self.syncing {
            return cmds;
        }
        if self.generating.is_none() && self.next_rollout < self.steps && self.rollout_version + 1 >= self.next_rollout
        {
            let step = self.next_rollout;
            if let Some(p) = self.partial.as_mut() {
                let left = (self.steps - step) as u64 * self.prompts_per_step as u64;
                self.next_rollout += 1;
                if p.batch_complete() {
                    let batch = p.take_batch();
                    self.ready.insert(step, batch);
                } else {
                    self.generating = Some(step);
                    cmds.extend(p.start(step, left, &view.with_tag("rollout"), view));
                }
                return self.train_if_ready(view, cmds);
            }
            self.generating = Some(step);
            self.next_rollout += 1;
            cmds.extend(self.rounds.start(step, view, &view.with_tag("rollout")));
        }
        self.train_if_ready(view, cmds)
    }

    fn train_if_ready(&mut self, view: &ClusterView, mut cmds: Vec<Command>) -> Vec<Command> {
        if !self.training {
            if let Some(batch) = self.ready.remove(&self.next_train) {
                self.training = true;
                cmds.push(Command::Train {
                    step: self.next_train,
                    workers: view.with_tag("train"),
                    trajectories: batch,
                });
                self.next_train += 1;
            }
        }
        cmds
    }
}

impl Policy for Disaggregated {
    fn name(&self) -> &'static str {
        if self.partial.is_some() {
            "partial"
        } else {
            "disaggregated"
        }
    }

    fn on_event(&mut self, event: &Event, view: &ClusterView) -> Vec<Command> {
        match event {
            Event::Started => {}
            Event::WorkerFailed { worker, trajectories } => {
                if let Some(p) = self.partial.as_mut() {
                    if self.generating.is_none() || p.is_cutting() {
                        p.carry(trajectories);
                        return vec![];
                    }
                }
                return readmit_elsewhere(view, *worker, trajectories);
            }
            Event::TrajectoryFinished { trajectory, .. } if self.partial.is_some() => {
                let p = self.partial.as_mut().expect("checked");
                if !p.on_finished(*trajectory) || self.generating.is_none() {
                    return vec![];
                }
                let pauses = p.cut(view);
                if !p.cut_done() {
                    return pauses;
                }
                self.end_partial_rollout();
            }
            Event::Paused { worker, trajectories } if self.partial.is_some() => {
                let p = self.partial.as_mut().expect("checked");
                if !(p.on_paused(*worker, trajectories) && self.generating.is_some()) {
                    return vec![];
                }
                self.end_partial_rollout();
            }
            Event::TrajectoryFinished { .. } => {
                let Some(step) = self.generating else { return vec![] };
                if !self.rounds.on_finished() {
                    return vec![];
                }
                match self.rounds.end_round(view, &view.with_tag("rollout")) {
                    RoundEnd::More(cmds) => return cmds,
                    RoundEnd::Batch { batch, commands } => {
                        self.generating = None;
                        self.ready.insert(step, batch);
                        let mut cmds = commands;
                        cmds.extend(self.advance(view));
                        return cmds;
                    }
                }
            }
            Event::TrainDone { .. } => self.training = false,
            Event::WeightsSynced { version, .. } => {
                self.syncing = false;
                self.rollout_version = *version;
            }
            _ => return vec![],
        }
        self.advance(view)
    }
}
