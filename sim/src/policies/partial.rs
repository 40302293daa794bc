//! Partial rollout (APRIL, Kimi): keep `over_provision`·P groups in flight, end a step's rollout as soon as P groups
//! are complete, pause the rest and continue them first in the next step. Nothing is discarded. Used by `colocated`
//! and `disaggregated` to make the `partial` pipeline on either layout.

use crate::cluster::WorkerId;
use crate::cost::Role;
use crate::policy::{ClusterView, Command};
use crate::trajectory::TrajId;
use std::collections::{BTreeMap, BTreeSet};

pub struct PartialRollout {
    over_provision: f64,
    prompts_per_step: u32,
    samples_per_prompt: u32,
    /// Untrained groups by serial, with their unfinished trajectory count.
    groups: BTreeMap<u64, u32>,
    /// Trajectories paused at the last cut, continued first.
    carried: Vec<TrajId>,
    /// Workers whose pause (for the cut) is in flight.
    pausing: BTreeSet<WorkerId>,
    cutting: bool,
    /// Untrained groups whose every trajectory finished (kept as a count: checked on every finish).
    complete: usize,
}

impl PartialRollout {
    pub fn new(over_provision: f64, prompts_per_step: u32, samples_per_prompt: u32) -> Self {
        PartialRollout {
            over_provision,
            prompts_per_step,
            samples_per_prompt,
            groups: BTreeMap::new(),
            carried: Vec::new(),
            pausing: BTreeSet::new(),
            cutting: false,
            complete: 0,
        }
    }

    /// Enough complete groups are already carried over for a whole batch (the step needs no rollout).
    pub fn batch_complete(&self) -> bool {
        self.complete >= self.prompts_per_step as usize
    }

    /// Starts a step's rollout on `workers`: the carried trajectories first (spread evenly), then new groups up to
    /// ⌈over_provision·P⌉ untrained groups in all (never more than `groups_left`, the groups the run still needs).
    pub fn start(&mut self, step: u32, groups_left: u64, workers: &[WorkerId], view: &ClusterView) -> Vec<Command> {
        self.cutting = false;
        let target = (self.over_provision * self.prompts_per_step as f64).ceil() as u64;
        let have = self.groups.len() as u64;
        let new = target.saturating_sub(have).min(groups_left.saturating_sub(have));
        let mut per_worker: Vec<Vec<TrajId>> = vec![Vec::new(); workers.len()];
        for (i, t) in std::mem::take(&mut self.carried).into_iter().enumerate() {
            per_worker[i % workers.len()].push(t);
        }
        let first = view.trajectories.next_id().0;
        let g = self.samples_per_prompt as u64;
        let mut cmds = Vec::new();
        if new > 0 {
            cmds.push(Command::CreateGroups { step, groups: new as u32 });
        }
        let n = workers.len() as u64;
        for i in 0..new {
            let serial = first / g + i;
            self.groups.insert(serial, self.samples_per_prompt);
            // Contiguous chunks of whole groups, as `admit_groups_evenly` does: worker k gets [new·k/n, new·(k+1)/n).
            let w = (0..n).find(|&k| i < new * (k + 1) / n).expect("i < new") as usize;
            per_worker[w].extend((first + i * g..first + (i + 1) * g).map(TrajId));
        }
        for (w, list) in workers.iter().zip(per_worker) {
            if !list.is_empty() {
                cmds.push(Command::Admit { worker: *w, trajectories: list });
            }
        }
        cmds
    }

    /// Counts a finished trajectory; true when the cut should start now (P groups complete).
    pub fn on_finished(&mut self, t: TrajId) -> bool {
        if let Some(u) = self.groups.get_mut(&(t.0 / self.samples_per_prompt as u64)) {
            *u -= 1;
            if *u == 0 {
                self.complete += 1;
            }
        }
        !self.cutting && self.complete >= self.prompts_per_step as usize
    }

    /// Ends the step's rollout: pauses every worker still generating. Returns the Pauses (none: the cut is done).
    pub fn cut(&mut self, view: &ClusterView) -> Vec<Command> {
        self.cutting = true;
        let busy: Vec<WorkerId> =
            view.workers.iter().filter(|w| w.role == Role::Rollout && w.resident > 0).map(|w| w.id).collect();
        self.pausing.extend(busy.iter().copied());
        busy.into_iter().map(|worker| Command::Pause { worker, trajectories: None }).collect()
    }

    /// Keeps what a cut paused; true when the last pause of the cut has landed.
    pub fn on_paused(&mut self, worker: WorkerId, trajectories: &[TrajId]) -> bool {
        self.carried.extend_from_slice(trajectories);
        self.pausing.remove(&worker) && self.pausing.is_empty()
    }

    /// Trajectories a failed worker held once the step's rollout is over or ending: they are continued first in
    /// the next step, like those the cut paused (admitting them now would start rollout work during the switch, or
    /// queue it behind the switch on the failed worker).
    pub fn carry(&mut self, trajectories: &[TrajId]) {
        self.carried.extend_from_slice(trajectories);
    }

    /// A cut is under way or done (this step's rollout takes nothing more).
    pub fn is_cutting(&self) -> bool {
        self.cutting
    }

    pub fn cut_done(&self) -> bool {
        self.cutting && self.pausing.is_empty()
    }

    /// The P complete groups with the lowest serials (carried groups first), removed from the untrained set.
    pub fn take_batch(&mut self) -> Vec<TrajId> {
        let serials: Vec<u64> =
            self.groups.iter().filter(|(_, &u)| u == 0).map(|(&s, _)| s).take(self.prompts_per_step as usize).collect();
        let g = self.samples_per_prompt as u64;
        let mut batch = Vec::with_capacity(serials.len() * g as usize);
        self.complete -= serials.len();
        for s in serials {
            self.groups.remove(&s);
            batch.extend((s * g..(s + 1) * g).map(TrajId));
        }
        batch
    }

    /// Untrained groups the run has created (complete or not).
    pub fn untrained_groups(&self) -> u64 {
        self.groups.len() as u64
    }
}
