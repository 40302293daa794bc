//! Generating one step's batch: one round of P groups, or — with DAPO's dynamic sampling — rounds of
//! `prompts_per_round` groups until P groups have rewards that are not all equal; the dropped groups and any surplus
//! are discarded. Shared by the synchronous pipelines (`colocated`, `disaggregated`).

use crate::cluster::WorkerId;
use crate::policy::{admit_groups_evenly, ClusterView, Command};
use crate::trajectory::TrajId;
use crate::workload::{DynamicSampling, WorkloadSpec};

pub struct BatchRounds {
    prompts_per_step: u32,
    samples_per_prompt: u32,
    dynamic: Option<DynamicSampling>,
    step: u32,
    rounds: u32,
    round_first: TrajId,
    round_groups: u32,
    unfinished: usize,
    /// First trajectory of each kept group, in creation order.
    kept: Vec<TrajId>,
    /// Trajectories of dropped groups.
    dropped: Vec<TrajId>,
}

/// What a completed round leads to.
pub enum RoundEnd {
    /// The step's batch, and the commands that discard what it leaves out.
    Batch { batch: Vec<TrajId>, commands: Vec<Command> },
    /// Too few groups kept: the next round's commands.
    More(Vec<Command>),
}

impl BatchRounds {
    pub fn new(w: &WorkloadSpec) -> Self {
        BatchRounds {
            prompts_per_step: w.prompts_per_step,
            samples_per_prompt: w.samples_per_prompt,
            dynamic: w.dynamic_sampling.clone(),
            step: 0,
            rounds: 0,
            round_first: TrajId(0),
            round_groups: 0,
            unfinished: 0,
            kept: Vec::new(),
            dropped: Vec::new(),
        }
    }

    /// Starts the first round of `step`'s batch on `workers`.
    pub fn start(&mut self, step: u32, view: &ClusterView, workers: &[WorkerId]) -> Vec<Command> {
        self.step = step;
        self.rounds = 0;
        self.kept.clear();
        self.dropped.clear();
        self.round(view, workers)
    }

    fn round(&mut self, view: &ClusterView, workers: &[WorkerId]) -> Vec<Command> {
        let groups = self.dynamic.as_ref().map_or(self.prompts_per_step, |d| d.prompts_per_round);
        let first = view.trajectories.next_id();
        self.round_first = first;
        self.round_groups = groups;
        self.unfinished = (groups * self.samples_per_prompt) as usize;
        self.rounds += 1;
        let mut cmds = vec![Command::CreateGroups { step: self.step, groups }];
        cmds.extend(admit_groups_evenly(first, groups, self.samples_per_prompt, workers));
        cmds
    }

    /// A trajectory of the round finished; true when the whole round has.
    pub fn on_finished(&mut self) -> bool {
        self.unfinished = self.unfinished.saturating_sub(1);
        self.unfinished == 0
    }

    /// The round is complete: sort its groups into kept and dropped (the rewards are known now), then either the
    /// batch — the first P kept groups — or another round. After `max_rounds` the step trains on what it kept
    /// (at least one group).
    pub fn end_round(&mut self, view: &ClusterView, workers: &[WorkerId]) -> RoundEnd {
        let g = self.samples_per_prompt as u64;
        for k in 0..self.round_groups as u64 {
            let start = self.round_first.0 + k * g;
            if view.trajectories.group_kept(start..start + g).unwrap_or(true) {
                self.kept.push(TrajId(start));
            } else {
                self.dropped.extend((start..start + g).map(TrajId));
            }
        }
        let enough = self.kept.len() >= self.prompts_per_step as usize;
        let out_of_rounds = self.dynamic.as_ref().is_none_or(|d| self.rounds >= d.max_rounds);
        // Never an empty train step: without a single kept group the rounds go on past max_rounds (verl raises an
        // error there; a simulation keeps going and trains what it gets).
        if !enough && (!out_of_rounds || self.kept.is_empty()) {
            return RoundEnd::More(self.round(view, workers));
        }
        let take = self.kept.len().min(self.prompts_per_step as usize);
        let mut batch = Vec::with_capacity(take * g as usize);
        for (i, first) in self.kept.iter().enumerate() {
            let ids = (first.0..first.0 + g).map(TrajId);
            if i < take {
                batch.extend(ids);
            } else {
                self.dropped.extend(ids);
            }
        }
        let mut commands = Vec::new();
        if !self.dropped.is_empty() {
            commands.push(Command::Discard { trajectories: std::mem::take(&mut self.dropped) });
        }
        RoundEnd::Batch { batch, commands }
    }
}
