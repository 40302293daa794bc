//! `async` (AReaL) and `seamless` (SeamlessFlow): rollout streams without a batch barrier under a staleness bound;
//! `seamless` also lends idle train workers to rollout and takes them back before each train step.
//!
//! Rules (both pipelines):
//! - Admission (AReaL's capacity rule): a group may start on a worker holding policy version v only while fewer than
//!   ⌊(v + S·(1 + η))·P⌋ groups have been admitted in total (P = prompts per step, η = `max_staleness` in weight syncs,
//!   S = train steps per sync; with S = 1 this is AReaL's (η + v + 1)·P, and a fractional η is verl's
//!   staleness_threshold), and never more than the run needs (steps·P). Each worker is kept at its engine's sequence
//!   limit; paused trajectories are re-admitted before new groups. `async` also keeps at most the framework's
//!   `stream_groups_per_engine` × (the engines it starts with) groups with an unfinished sample in flight (paused
//!   ones included) across its pool (verl's fully_async rollouter: 16 per server), so a group whose last sample
//!   straggles holds its place; one engine may hold more than its share, as verl's load balancing allows.
//! - Batches (`batch_order = "completion"`, verl fully_async): the first P groups to complete, whatever version they
//!   started under; a long sample is trained later and more stale, and the report shows how stale.
//! - Batches (`batch_order = "version"`, AReaL): the trainer takes P complete groups in order of the version they
//!   started under (any order within a version). With S = 1 and a whole η this bounds staleness: when batch V trains,
//!   the groups started at version ≤ V−η number at most (V+1)·P, the V·P already trained are all among the oldest, so
//!   the rest fit in this batch; every trained token is at most η versions old. (A paused sequence is only resumed on a
//!   worker whose weights are not older than its group's start version, so no token is older than that version.)
//! - Weight update after every S-th train step (the others are local updates: the trainer goes straight on):
//!   `interruptible` pauses every rollout engine, syncs, and re-admits the paused sequences (re-prefilled under the new
//!   weights); otherwise admission stops, in-flight sequences finish on the old weights, and the sync follows once
//!   every engine has drained.
//! - `seamless` lending: while the trainer waits for data, each idle train worker is retagged to rollout when the rule
//!   allows (`LendRule`); when a batch is ready the lent workers are paused (their sequences resume on the rollout
//!   pool) and retagged back, and the train step starts only when all of them hold `train` again.

//!
//! Cost per event (issue #11): the policy keeps its own indexes up to date from events instead of rescanning them:
//! worker flags in arrays, each worker's trajectories, untrained groups in (start version, serial) order with counts
//! per version (so "is a batch ready?" is O(versions), not a sort), and the lending donor is searched once per
//! event, not once per lent worker. Buffers are reused across events. Every decision is the same as a rescan's.

use crate::cluster::WorkerId;
use crate::cost::Role;
use crate::policy::{Activity, ClusterView, Command, Event, Policy, WorkerState};
use crate::scenario::{BatchOrder, LendRule, PipelineSpec};
use crate::trajectory::TrajId;
use crate::workload::WorkloadSpec;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Generating and training.
    Running,
    /// A weight update waits for its pauses to land.
    Pausing,
    /// Non-interruptible weight update: waiting for every engine to drain.
    Draining,
    Syncing,
    Done,
}

struct Group {
    first: TrajId,
    start_version: u32,
    unfinished: u32,
}

/// A set of workers as one flag per worker id: O(1) membership where a tree lookup sat in per-worker loops.
#[derive(Default)]
struct WorkerSet {
    member: Vec<bool>,
    len: usize,
}

impl WorkerSet {
    fn contains(&self, w: WorkerId) -> bool {
        self.member.get(w.index()).copied().unwrap_or(false)
    }

    fn insert(&mut self, w: WorkerId) {
        let i = w.index();
        if i >= self.member.len() {
            self.member.resize(i + 1, false);
        }
        if !self.member[i] {
            self.member[i] = true;
            self.len += 1;
        }
    }

    fn remove(&mut self, w: WorkerId) {
        if let Some(m) = self.member.get_mut(w.index()) {
            if *m {
                *m = false;
                self.len -= 1;
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Members in id order.
    fn iter(&self) -> impl Iterator<Item = WorkerId> + '_ {
        self.member.iter().enumerate().filter(|(_, m)| **m).map(|(i, _)| WorkerId(i as u32))
    }
}

/// Admitted, untrained groups by serial. Serials are handed out one after another, so a deque from the oldest
/// untrained serial finds a group in O(1) (a trained group leaves a hole until those before it are trained too).
#[derive(Default)]
struct Groups {
    base: u64,
    slots: VecDeque<Option<Group>>,
    live: usize,
}

impl Groups {
    fn get(&self, serial: u64) -> Option<&Group> {
        let i = usize::try_from(serial.checked_sub(self.base)?).ok()?;
        self.slots.get(i)?.as_ref()
    }

    fn get_mut(&mut self, serial: u64) -> Option<&mut Group> {
        let i = usize::try_from(serial.checked_sub(self.base)?).ok()?;
        self.slots.get_mut(i)?.as_mut()
    }

    /// Adds the group of the next serial (`serial` must be the one after the last pushed).
    fn push(&mut self, serial: u64, g: Group) {
        debug_assert_eq!(serial, self.base + self.slots.len() as u64, "serials are consecutive");
        self.slots.push_back(Some(g));
        self.live += 1;
    }

    fn remove(&mut self, serial: u64) -> Option<Group> {
        let i = usize::try_from(serial.checked_sub(self.base)?).ok()?;
        let g = self.slots.get_mut(i)?.take()?;
        self.live -= 1;
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(g)
    }

    fn len(&self) -> usize {
        self.live
    }
}

pub struct Streaming {
    name: &'static str,
    steps: u32,
    prompts_per_step: u32,
    samples_per_prompt: u32,
    max_staleness: f64,
    steps_per_sync: u32,
    batch_order: BatchOrder,
    /// Complete, untrained groups in the order they completed (`BatchOrder::Completion`).
    completed: VecDeque<u64>,
    interruptible: bool,
    /// `None`: never lend (`async`).
    lend: Option<LendRule>,
    /// Admitted, untrained groups by serial.
    groups: Groups,
    /// The same groups in the order `BatchOrder::Version` takes them: (start version, serial).
    by_version: BTreeSet<(u32, u64)>,
    /// Per start version: (complete, all) untrained groups.
    version_counts: BTreeMap<u32, (u32, u32)>,
    admitted_groups: u64,
    /// Admitted groups with a sample still unfinished (paused ones included).
    open_groups: u64,
    /// Groups in flight per rollout engine of the pool at most (0: no cap; verl fully_async's 16 per server).
    open_groups_per_engine: u64,
    /// [`MIN_MOVE`] in simulated sequences.
    min_move: usize,
    /// The cap over the rollout pool (engines that start holding `rollout` × the per-engine cap), once known.
    open_group_cap: Option<u64>,
    steps_started: u32,
    training: bool,
    phase: Phase,
    /// Trajectories paused (by a weight update or a reclaim) waiting to be admitted again, oldest first, with the
    /// worker they should go back to (a weight update's pause), if any.
    resume: VecDeque<(TrajId, Option<WorkerId>)>,
    /// Workers whose pause is in flight (nothing is admitted to them meanwhile).
    pausing: WorkerSet,
    /// Train workers lent to rollout (from the lend retag until they hold `train` again).
    lent: WorkerSet,
    /// Lent workers being taken back.
    reclaiming: WorkerSet,
    /// Workers with a retag in flight.
    switching: WorkerSet,
    /// Response lengths seen so far (for the lending rule's estimate; the policy never sees target lengths).
    finished_tokens: u64,
    finished_count: u64,
    /// When the lending rule may be evaluated next (it walks the oldest groups, so not on every event).
    next_lend_check: crate::time::SimTime,
    /// Trajectories on each worker's engine, by worker index (seamless only: lent workers take work over from the
    /// busiest).
    placed: Vec<BTreeSet<TrajId>>,
    /// Trajectories being paused to move to a lent worker, with their destination.
    moving: BTreeMap<TrajId, WorkerId>,
    /// A batch may have become ready since `batch_ready` last said no.
    batch_check: bool,
    /// Workers carrying both `train` and `rollout` (the lendable ones), in id order; the tags never change.
    lendable: Option<Vec<WorkerId>>,
    /// Buffers reused from event to event (a fill's open workers, admissions per worker index, the workers that
    /// got admissions, lending candidates, open workers' capacities, the paused trajectories not placed yet).
    open: Vec<(WorkerId, u64)>,
    admit_lists: Vec<Vec<TrajId>>,
    admitted: Vec<WorkerId>,
    candidates: Vec<WorkerId>,
    caps: Vec<u64>,
    resume_spare: VecDeque<(TrajId, Option<WorkerId>)>,
    /// Each worker's rollout slots (a run's estimates do not change): read on every fill, for every worker.
    slots: Vec<u64>,
}

/// A lent worker takes sequences over from a rollout worker only when it would take at least this many (each move
/// costs a re-prefill).
const MIN_MOVE: usize = 2;

impl Streaming {
    pub fn new_async(w: &WorkloadSpec, p: &PipelineSpec) -> Self {
        Self::new("async", w, p, None)
    }

    pub fn new_seamless(w: &WorkloadSpec, p: &PipelineSpec) -> Self {
        Self::new("seamless", w, p, Some(p.lend))
    }

    fn new(name: &'static str, w: &WorkloadSpec, p: &PipelineSpec, lend: Option<LendRule>) -> Self {
        Streaming {
            name,
            steps: w.steps,
            prompts_per_step: w.prompts_per_step,
            samples_per_prompt: w.samples_per_prompt,
            max_staleness: p.max_staleness,
            steps_per_sync: p.steps_per_sync.max(1),
            batch_order: p.batch_order,
            completed: VecDeque::new(),
            // Seamless always pauses generation for a weight update (its trajectory manager's design).
            interruptible: lend.is_some() || p.interruptible,
            lend,
            groups: Groups::default(),
            by_version: BTreeSet::new(),
            version_counts: BTreeMap::new(),
            admitted_groups: 0,
            open_groups: 0,
            // Validation sets it for `async` only (0 for seamless and the rest).
            open_groups_per_engine: p.open_groups_per_engine as u64,
            // In a coarse-grained run each simulated sequence stands for `coarsen`: the same real threshold.
            min_move: MIN_MOVE.div_ceil(w.coarsen.max(1) as usize),
            open_group_cap: None,
            steps_started: 0,
            training: false,
            phase: Phase::Running,
            resume: VecDeque::new(),
            pausing: WorkerSet::default(),
            lent: WorkerSet::default(),
            reclaiming: WorkerSet::default(),
            switching: WorkerSet::default(),
            finished_tokens: 0,
            finished_count: 0,
            next_lend_check: crate::time::SimTime::ZERO,
            placed: Vec::new(),
            moving: BTreeMap::new(),
            batch_check: true,
            lendable: None,
            open: Vec::new(),
            admit_lists: Vec::new(),
            admitted: Vec::new(),
            candidates: Vec::new(),
            caps: Vec::new(),
            slots: Vec::new(),
            resume_spare: VecDeque::new(),
        }
    }

    fn rollout_workers<'v>(view: &'v ClusterView) -> impl Iterator<Item = WorkerId> + 'v {
        view.workers.iter().filter(|w| w.role == Role::Rollout).map(|w| w.id)
    }

    /// The train pool: the workers that start holding `train` (lent ones included; they are back before a step).
    fn train_workers(view: &ClusterView) -> Vec<WorkerId> {
        view.cluster.workers.iter().filter(|w| w.start == Role::Train).map(|w| w.id).collect()
    }

    /// Trajectories placed on `w`'s engine.
    fn load(&self, w: WorkerId) -> usize {
        self.placed.get(w.index()).map_or(0, |s| s.len())
    }

    /// Groups that may have been admitted in total while the rollout weights are at `version`.
    fn capacity(&self, version: u64) -> u64 {
        let p = self.prompts_per_step as f64;
        let ahead = self.steps_per_sync as f64 * (1.0 + self.max_staleness);
        // The epsilon keeps ⌊x⌋ exact where x is a whole number that f64 lands just below (e.g. 2.01 · 100).
        ((version as f64 + ahead) * p + 1e-9).floor() as u64
    }

    /// Whether the in-flight cap leaves room for one more group.
    fn may_open_group(&self) -> bool {
        self.open_group_cap.is_none_or(|cap| self.open_groups < cap)
    }

    /// Whether P complete groups are ready: in completion order, or oldest start version first, never skipping past
    /// an incomplete version (the complete groups of the first version with an incomplete one still count).
    fn batch_ready(&self) -> bool {
        let p = self.prompts_per_step as u64;
        if self.batch_order == BatchOrder::Completion {
            return self.completed.len() as u64 >= p;
        }
        if p == 0 {
            return false; // as the walk it replaces: a batch was only found on taking a group
        }
        let mut complete = 0u64;
        for &(done, all) in self.version_counts.values() {
            complete += done as u64;
            if complete >= p {
                return true;
            }
            if done < all {
                return false;
            }
        }
        false
    }

    /// The next batch once `batch_ready`: the first P complete groups in its order.
    fn next_batch(&self) -> Vec<u64> {
        let p = self.prompts_per_step as usize;
        if self.batch_order == BatchOrder::Completion {
            return self.completed.iter().take(p).copied().collect();
        }
        self.by_version
            .iter()
            .map(|&(_, serial)| serial)
            .filter(|&serial| self.groups.get(serial).is_some_and(|g| g.unfinished == 0))
            .take(p)
            .collect()
    }

    /// A worker's free slots if it may take new work now. (Free slots first: on most events every engine is full,
    /// and this runs for every worker on each fill.)
    fn free_slots(&self, w: &WorkerState) -> Option<u64> {
        let free = self.slots[w.id.index()].saturating_sub(w.resident as u64);
        let open = free > 0
            && w.role == Role::Rollout
            && matches!(w.activity, Activity::Idle | Activity::RollingOut)
            && !self.pausing.contains(w.id)
            && !self.reclaiming.contains(w.id)
            && !self.switching.contains(w.id);
        open.then_some(free)
    }

    /// Workers that may take new work now, with their free slots, into `out` (in id order).
    fn open_workers(&self, view: &ClusterView, out: &mut Vec<(WorkerId, u64)>) {
        out.clear();
        out.extend(view.workers.iter().filter_map(|w| Some((w.id, self.free_slots(w)?))));
    }

    /// Queues `t` for admission to `w` (one Admit per worker at the end of the fill).
    fn admit_to(&mut self, w: WorkerId, t: impl IntoIterator<Item = TrajId>) {
        let i = w.index();
        if i >= self.admit_lists.len() {
            self.admit_lists.resize_with(i + 1, Vec::new);
        }
        if self.admit_lists[i].is_empty() {
            self.admitted.push(w);
        }
        self.admit_lists[i].extend(t);
    }

    /// Hands paused trajectories, then new groups (within the capacity rule), to the least-loaded open workers.
    fn fill(&mut self, view: &ClusterView, cmds: &mut Vec<Command>) {
        let mut open = std::mem::take(&mut self.open);
        // Most events come while the rollout is as far ahead as the capacity rule allows and nothing waits to resume:
        // then no group can start (every worker's weights come from the trainer, so none is newer than its version,
        // and capacity grows with the version) and only the lent workers matter (rebalancing), so the scan of every
        // worker is skipped. The decisions are those of the full fill.
        let total = self.steps as u64 * self.prompts_per_step as u64;
        let can_create = self.admitted_groups < total
            && self.admitted_groups < self.capacity(view.trainer_version as u64)
            && self.may_open_group();
        if self.resume.is_empty() && !can_create {
            if self.lend.is_some() && !self.lent.is_empty() && self.moving.is_empty() {
                open.clear();
                open.extend(self.lent.iter().filter_map(|w| Some((w, self.free_slots(view.worker(w))?))));
                if !open.is_empty() {
                    self.rebalance_onto_lent(view, &open, cmds);
                }
            }
        } else {
            self.open_workers(view, &mut open);
            if !open.is_empty() {
                self.fill_open(view, &mut open, cmds);
            }
        }
        self.open = open;
    }

    fn fill_open(&mut self, view: &ClusterView, open: &mut [(WorkerId, u64)], cmds: &mut Vec<Command>) {
        let g = self.samples_per_prompt as u64;
        let p = self.prompts_per_step as u64;
        // A paused sequence only goes to a worker whose weights are not older than the version its group started
        // under, so none of its tokens is older than that (the staleness bound rests on it). Those paused by a
        // weight update go back to their own worker (no migration); the others to the least-loaded one.
        let mut pending = std::mem::take(&mut self.resume);
        let mut rest = std::mem::take(&mut self.resume_spare);
        rest.clear();
        // Open workers with a free slot left. Once none has, a sequence whose home is not open stays queued without
        // looking up its group (a cache miss each): after a weight update thousands wait, and each finish frees one
        // slot, so this loop ran over all of them on every event for the one or two it placed.
        let mut with_room = open.iter().filter(|o| o.1 > 0).count();
        for (t, home) in pending.drain(..) {
            // `open` is in id order: its home's entry by binary search.
            let home_at = home.and_then(|h| open.binary_search_by_key(&h, |&(w, _)| w).ok());
            if home_at.is_none() && with_room == 0 {
                rest.push_back((t, None));
                continue;
            }
            let start = self.groups.get(t.0 / g).map_or(0, |gr| gr.start_version);
            let fits = |w: WorkerId| view.worker(w).weights_version >= start;
            let at_home = home_at.filter(|&i| fits(open[i].0));
            let pick = at_home.or_else(|| {
                (0..open.len())
                    .filter(|&i| open[i].1 > 0 && fits(open[i].0))
                    .max_by_key(|&i| (open[i].1, std::cmp::Reverse(open[i].0)))
            });
            match pick {
                Some(i) => {
                    self.admit_to(open[i].0, [t]);
                    if open[i].1 == 1 {
                        with_room -= 1;
                    }
                    open[i].1 = open[i].1.saturating_sub(1);
                }
                None => rest.push_back((t, None)),
            }
        }
        self.resume = rest;
        self.resume_spare = pending;
        let mut next_id = view.trajectories.next_id().0;
        let total = self.steps as u64 * p;
        // The capacity rule stops a worker whose weights are too old (others may go on). Each open worker's capacity
        // is computed once: the pick below skips the stopped ones, as zeroing their free slots and picking again did
        // (that cost O(open²) per event while the rollout ran ahead of the trainer).
        let mut caps = std::mem::take(&mut self.caps);
        caps.clear();
        caps.extend(open.iter().map(|&(w, _)| self.capacity(view.worker(w).weights_version as u64)));
        while self.admitted_groups < total && self.may_open_group() {
            // The worker with the most free slots (lowest id on ties) that the capacity rule lets admit.
            let admitted = self.admitted_groups;
            let most_free = (0..open.len())
                .filter(|&i| open[i].1 > 0 && admitted < caps[i])
                .max_by_key(|&i| (open[i].1, std::cmp::Reverse(open[i].0)));
            let Some(i) = most_free else { break };
            let (w, free) = open[i];
            let version = view.worker(w).weights_version as u64;
            let serial = self.admitted_groups;
            let step = (serial / p) as u32;
            cmds.push(Command::CreateGroups { step, groups: 1 });
            let first = TrajId(next_id);
            next_id += g;
            let start_version = version as u32;
            self.groups.push(serial, Group { first, start_version, unfinished: self.samples_per_prompt });
            self.by_version.insert((start_version, serial));
            self.version_counts.entry(start_version).or_insert((0, 0)).1 += 1;
            self.admitted_groups += 1;
            self.open_groups += 1;
            self.admit_to(w, (first.0..first.0 + g).map(TrajId));
            open[i].1 = free.saturating_sub(g);
        }
        self.caps = caps;
        if self.lend.is_some() {
            for &w in &self.admitted {
                let i = w.index();
                if i >= self.placed.len() {
                    self.placed.resize_with(i + 1, BTreeSet::new);
                }
                self.placed[i].extend(self.admit_lists[i].iter().copied());
            }
            self.rebalance_onto_lent(view, open, cmds);
        }
        // Creations come first (the Admits name their trajectories), then one Admit per worker, in id order.
        self.admitted.sort_unstable();
        for w in self.admitted.drain(..) {
            let trajectories = std::mem::take(&mut self.admit_lists[w.index()]);
            cmds.push(Command::Admit { worker: w, trajectories });
        }
    }

    /// The rollout worker a lent one takes sequences from: the busiest (lowest id on ties) of those holding
    /// rollout that are not lent, not pausing and got nothing in this fill.
    fn donor(&self, view: &ClusterView) -> Option<WorkerId> {
        view.workers
            .iter()
            .filter(|s| {
                s.role == Role::Rollout
                    && !self.lent.contains(s.id)
                    && !self.pausing.contains(s.id)
                    && self.admit_lists.get(s.id.index()).is_none_or(|l| l.is_empty())
            })
            .max_by_key(|s| (self.load(s.id), std::cmp::Reverse(s.id)))
            .map(|s| s.id)
    }

    /// A lent worker with free slots and nothing new to run takes the newest sequences of the busiest rollout
    /// worker, half the difference in load (they are paused there and re-prefilled on the lent worker).
    fn rebalance_onto_lent(&mut self, view: &ClusterView, open: &[(WorkerId, u64)], cmds: &mut Vec<Command>) {
        if !self.resume.is_empty() || !self.moving.is_empty() {
            return;
        }
        // Within this loop loads do not change and only a donor's pause changes the candidates, so the donor is
        // searched for once, and again after each move (it was a scan of every worker per lent worker).
        let mut donor = None;
        let mut search = true;
        for &(lent, _) in open.iter().filter(|(w, _)| self.lent.contains(*w)) {
            if search {
                donor = self.donor(view);
                search = false;
            }
            let Some(donor) = donor else { return };
            let take = self.load(donor).saturating_sub(self.load(lent)) / 2;
            if take < self.min_move {
                continue;
            }
            let list: Vec<TrajId> = self.placed[donor.index()].iter().rev().take(take).copied().collect();
            for &t in &list {
                self.moving.insert(t, lent);
            }
            self.pausing.insert(donor);
            search = true;
            cmds.push(Command::Pause { worker: donor, trajectories: Some(list) });
        }
    }

    fn start_weight_update(&mut self, view: &ClusterView, cmds: &mut Vec<Command>) {
        if self.interruptible {
            self.phase = Phase::Pausing;
            for w in Self::rollout_workers(view) {
                if view.worker(w).resident > 0 && !self.pausing.contains(w) {
                    self.pausing.insert(w);
                    cmds.push(Command::Pause { worker: w, trajectories: None });
                }
            }
        } else {
            self.phase = Phase::Draining;
        }
    }

    fn sync(&mut self, view: &ClusterView, cmds: &mut Vec<Command>) {
        self.phase = Phase::Syncing;
        // A down rollout worker misses this update (it keeps its old version, which the capacity rule accounts
        // for) rather than stall the trainer until it recovers.
        let mut to: Vec<WorkerId> =
            Self::rollout_workers(view).filter(|w| view.worker(*w).activity != Activity::Down).collect();
        if to.is_empty() {
            to = Self::rollout_workers(view).collect();
        }
        cmds.push(Command::SyncWeights {
            step: view.trainer_version - 1,
            from: view.with_tag_iter("train").filter(|w| view.worker(*w).role == Role::Train).collect(),
            to,
        });
    }

    /// Mean response length seen so far (the workload's cap halved before anything finished).
    fn mean_length(&self, view: &ClusterView) -> u64 {
        self.finished_tokens
            .checked_div(self.finished_count)
            .unwrap_or((view.workload.max_response_tokens / 2) as u64)
            .max(1)
    }

    /// Expected time until the oldest P groups are complete: the slowest unfinished sample among them, its remaining
    /// tokens estimated as max(L̄ − generated, L̄/2) (the policy does not know response lengths in advance).
    fn expected_wait_ns(&self, view: &ClusterView) -> u64 {
        let mean = self.mean_length(view);
        let first_rollout = Self::rollout_workers(view).next();
        let mut wait = 0u64;
        for &(_, serial) in self.by_version.iter().take(self.prompts_per_step as usize) {
            let Some(group) = self.groups.get(serial) else { continue };
            for t in (group.first.0..group.first.0 + self.samples_per_prompt as u64).map(TrajId) {
                let Ok(tr) = view.trajectories.get(t) else { continue };
                if tr.finished_at.is_some() {
                    continue;
                }
                let remaining = mean.saturating_sub(tr.generated as u64).max(mean / 2);
                let worker = match tr.status {
                    crate::trajectory::TrajStatus::Running(w) => w,
                    _ => match first_rollout {
                        Some(w) => w,
                        None => continue,
                    },
                };
                let batch = view.worker(worker).resident.max(1) as u64;
                let context = batch * (tr.context_tokens() + remaining / 2);
                let per_token = view.estimates.decode_iteration_ns(worker, batch, context);
                wait = wait.max(remaining * per_token);
            }
        }
        if self.groups.len() < self.prompts_per_step as usize {
            // Groups not even admitted yet: at least one mean-length generation more.
            if let Some(w) = first_rollout {
                wait = wait.max(mean * view.estimates.decode_iteration_ns(w, 1, mean));
            }
        }
        wait
    }

    /// Is there rollout work a lent worker could take (paused sequences, or room under the capacity rule)?
    fn rollout_work_waiting(&self, view: &ClusterView) -> bool {
        let p = self.prompts_per_step as u64;
        let capacity = self.capacity(view.trainer_version as u64);
        if !self.resume.is_empty() || self.admitted_groups < capacity.min(self.steps as u64 * p) {
            return true;
        }
        self.placed.iter().any(|s| s.len() >= 2 * self.min_move)
    }

    fn lend_idle_train_workers(&mut self, view: &ClusterView, cmds: &mut Vec<Command>) {
        let Some(rule) = self.lend else { return };
        if rule == LendRule::Never || !self.rollout_work_waiting(view) {
            return;
        }
        // Under `gain`, nothing is lent before the next check however many workers are free: skip the scan (it ran
        // on every event, over every train worker).
        if rule == LendRule::Gain && view.now < self.next_lend_check {
            return;
        }
        let lendable = self.lendable.get_or_insert_with(|| {
            view.cluster.workers.iter().filter(|w| w.has_tag("train") && w.has_tag("rollout")).map(|w| w.id).collect()
        });
        // Free train workers that are also tagged for rollout (so they can be lent), in id order.
        let mut candidates = std::mem::take(&mut self.candidates);
        candidates.clear();
        candidates.extend(lendable.iter().copied().filter(|&w| {
            let st = view.worker(w);
            st.activity == Activity::Idle
                && st.role == Role::Train
                && !self.switching.contains(w)
                && !self.lent.contains(w)
        }));
        self.lend_candidates(rule, &candidates, view, cmds);
        self.candidates = candidates;
    }

    fn lend_candidates(
        &mut self,
        rule: LendRule,
        candidates: &[WorkerId],
        view: &ClusterView,
        cmds: &mut Vec<Command>,
    ) {
        let Some(&w) = candidates.first() else { return };
        if rule == LendRule::Gain {
            if view.now < self.next_lend_check {
                return;
            }
            let round_trip = view.estimates.switch_ns(w, Role::Rollout) + view.estimates.switch_ns(w, Role::Train);
            if self.expected_wait_ns(view) <= 2 * round_trip {
                self.next_lend_check = view.now.after_ns((round_trip / 4).max(1));
                return;
            }
        }
        for &w in candidates {
            self.lent.insert(w);
            self.switching.insert(w);
            cmds.push(Command::Retag { step: view.trainer_version, worker: w, to: Role::Rollout });
        }
    }

    /// Takes lent workers back: pause the busy ones, retag the empty ones.
    fn reclaim(&mut self, view: &ClusterView, cmds: &mut Vec<Command>) {
        let lent: Vec<WorkerId> = self.lent.iter().collect();
        for w in lent {
            self.reclaiming.insert(w);
            if self.switching.contains(w) || self.pausing.contains(w) {
                continue; // its retag or pause will land first
            }
            let st = view.worker(w);
            if st.role != Role::Rollout {
                continue;
            }
            if st.resident == 0 && st.activity == Activity::Idle {
                self.switching.insert(w);
                cmds.push(Command::Retag { step: view.trainer_version, worker: w, to: Role::Train });
            } else {
                self.pausing.insert(w);
                cmds.push(Command::Pause { worker: w, trajectories: None });
            }
        }
    }

    fn advance(&mut self, view: &ClusterView) -> Vec<Command> {
        let mut cmds = Vec::new();
        match self.phase {
            Phase::Done | Phase::Syncing => return cmds,
            Phase::Pausing => {
                if self.pausing.is_empty() {
                    self.sync(view, &mut cmds);
                }
                return cmds;
            }
            Phase::Draining => {
                let busy = Self::rollout_workers(view)
                    .any(|w| !matches!(view.worker(w).activity, Activity::Idle | Activity::Down));
                if !busy {
                    self.sync(view, &mut cmds);
                }
                return cmds;
            }
            Phase::Running => {}
        }
        if !self.training && self.steps_started < self.steps && self.batch_check {
            if !self.batch_ready() {
                self.batch_check = false;
            } else if self.lent.is_empty() {
                let batch = self.next_batch();
                self.train(batch, view, &mut cmds);
            } else {
                self.reclaim(view, &mut cmds);
            }
        }
        // When pausing, the `Paused` events fill instead: by then the paused workers' trajectories are back and
        // one fill sees them all. (Before the driver queued events, `Paused` arrived in the middle of this command
        // list, and a fill here as well gave two groups the same trajectory ids: found by the property tests, a
        // lent worker that failed, then reclaimed.)
        if cmds.iter().any(|c| matches!(c, Command::Pause { .. })) {
            return cmds;
        }
        self.fill(view, &mut cmds);
        if !self.training && self.reclaiming.is_empty() && self.steps_started < self.steps {
            self.lend_idle_train_workers(view, &mut cmds);
        }
        cmds
    }

    fn train(&mut self, batch: Vec<u64>, view: &ClusterView, cmds: &mut Vec<Command>) {
        let mut trajectories = Vec::with_capacity(batch.len() * self.samples_per_prompt as usize);
        if self.batch_order == BatchOrder::Completion {
            self.completed.drain(..batch.len());
        }
        for serial in batch {
            let g = self.groups.remove(serial).expect("batch groups exist");
            self.by_version.remove(&(g.start_version, serial));
            if let Some(c) = self.version_counts.get_mut(&g.start_version) {
                c.0 -= u32::from(g.unfinished == 0);
                c.1 -= 1;
                if c.1 == 0 {
                    self.version_counts.remove(&g.start_version);
                }
            }
            trajectories.extend((g.first.0..g.first.0 + self.samples_per_prompt as u64).map(TrajId));
        }
        self.training = true;
        let step = self.steps_started;
        self.steps_started += 1;
        cmds.push(Command::Train { step, workers: Self::train_workers(view), trajectories });
    }
}

impl Policy for Streaming {
    fn name(&self) -> &'static str {
        self.name
    }

    fn on_event(&mut self, event: &Event, view: &ClusterView) -> Vec<Command> {
        if self.slots.len() != view.workers.len() {
            self.slots = view.workers.iter().map(|w| view.estimates.rollout_slots(w.id)).collect();
            if self.open_groups_per_engine > 0 {
                let engines = view.cluster.workers.iter().filter(|w| w.start == Role::Rollout).count() as u64;
                self.open_group_cap = Some(self.open_groups_per_engine * engines.max(1));
            }
        }
        if !matches!(event, Event::TrajectoryFinished { .. }) {
            self.batch_check = true;
        }
        match event {
            Event::Started | Event::WorkerDrained { .. } | Event::TimerFired { .. } => {}
            Event::TrajectoryFinished { trajectory, worker } => {
                if let Ok(t) = view.trajectories.get(*trajectory) {
                    self.finished_tokens += t.generated as u64;
                    self.finished_count += 1;
                    if let Some(set) = self.placed.get_mut(worker.index()) {
                        set.remove(trajectory);
                    }
                    // This policy creates every group, one at a time, so group serial = id / samples per prompt.
                    let serial = trajectory.0 / self.samples_per_prompt as u64;
                    if let Some(g) = self.groups.get_mut(serial) {
                        g.unfinished -= 1;
                        if g.unfinished == 0 {
                            self.batch_check = true;
                            self.open_groups -= 1;
                            let version = g.start_version;
                            if let Some(c) = self.version_counts.get_mut(&version) {
                                c.0 += 1;
                            }
                            if self.batch_order == BatchOrder::Completion {
                                self.completed.push_back(serial);
                            }
                        }
                    }
                }
            }
            Event::Paused { worker, trajectories } => {
                self.pausing.remove(*worker);
                let home = (!self.reclaiming.contains(*worker)).then_some(*worker);
                if let Some(set) = self.placed.get_mut(worker.index()) {
                    for t in trajectories {
                        set.remove(t);
                    }
                }
                // Every move in flight ends here; a move whose trajectory finished at the pause boundary is simply
                // over.
                let to = std::mem::take(&mut self.moving);
                self.resume.extend(trajectories.iter().map(|&t| (t, to.get(&t).copied().or(home))));
                if self.reclaiming.contains(*worker) {
                    self.switching.insert(*worker);
                    let mut cmds =
                        vec![Command::Retag { step: view.trainer_version, worker: *worker, to: Role::Train }];
                    cmds.extend(self.advance(view));
                    return cmds;
                }
            }
            Event::Retagged { worker, role } => {
                self.switching.remove(*worker);
                if *role == Role::Train {
                    self.lent.remove(*worker);
                    self.reclaiming.remove(*worker);
                } else if self.reclaiming.contains(*worker) {
                    // Taken back before it ever generated.
                    self.switching.insert(*worker);
                    let mut cmds =
                        vec![Command::Retag { step: view.trainer_version, worker: *worker, to: Role::Train }];
                    cmds.extend(self.advance(view));
                    return cmds;
                }
            }
            Event::TrainDone { version, .. } => {
                self.training = false;
                if *version >= self.steps {
                    self.phase = Phase::Done;
                    return vec![];
                }
                let mut cmds = Vec::new();
                if *version % self.steps_per_sync == 0 {
                    self.start_weight_update(view, &mut cmds);
                }
                cmds.extend(self.advance(view));
                return cmds;
            }
            Event::WeightsSynced { .. } => self.phase = Phase::Running,
            Event::WorkerFailed { worker, trajectories } => {
                if let Some(set) = self.placed.get_mut(worker.index()) {
                    set.clear();
                }
                self.pausing.remove(*worker);
                for t in trajectories {
                    self.moving.remove(t);
                }
                self.resume.extend(trajectories.iter().map(|&t| (t, None)));
                if self.phase == Phase::Pausing && self.pausing.is_empty() {
                    let mut cmds = Vec::new();
                    self.sync(view, &mut cmds);
                    return cmds;
                }
            }
            Event::WorkerRecovered { .. } => {}
        }
        self.advance(view)
    }
}
