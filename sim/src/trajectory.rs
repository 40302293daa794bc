//! The trajectory manager: every trajectory's prompt, tokens, per-segment policy versions, worker and status, with
//! counters that prove conservation (generated = trained + in flight + discarded).

use crate::cluster::WorkerId;
use crate::time::SimTime;
use smallvec::SmallVec;

/// A trajectory's id: its index in creation order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrajId(pub u64);

/// Where a trajectory is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TrajStatus {
    /// Created, never admitted to an engine.
    Queued,
    /// Admitted to a worker's engine (waiting for a slot or decoding).
    Running(WorkerId),
    /// Stopped mid-generation; its tokens are kept and it can resume on any worker (after re-prefill).
    Paused,
    /// Generation complete; waiting to be trained on.
    Finished,
    /// Consumed by a train step.
    Trained,
    /// Dropped; its tokens are counted as discarded.
    Discarded,
}

/// A stretch of tokens generated on one worker under one policy version.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub version: u32,
    pub worker: WorkerId,
    pub tokens: u32,
}

#[derive(Clone, Debug)]
pub struct Trajectory {
    pub id: TrajId,
    /// Serial number of its prompt group (GRPO group), across the whole run.
    pub group: u64,
    /// The step whose batch it was created for.
    pub batch_step: u32,
    /// Its reward (verifier) time: its TrajectoryFinished is delivered that much later (0 without `reward_s`).
    pub reward_ns: u64,
    pub prompt_tokens: u32,
    /// Response length this sample will reach (from the workload; the backend stops it there).
    pub target_tokens: u32,
    /// Tokens generated so far (sum of `segments`).
    pub generated: u32,
    /// Almost always one (a sample generated under one version on one worker): kept inline.
    pub segments: SmallVec<[Segment; 1]>,
    pub status: TrajStatus,
    pub created_at: SimTime,
    pub finished_at: Option<SimTime>,
    /// The train step that consumed it and the trainer's policy version at that step.
    pub trained: Option<(u32, u32)>,
}

impl Trajectory {
    /// Context length (prompt + generated), i.e. the tokens a resume must re-prefill.
    pub fn context_tokens(&self) -> u64 {
        self.prompt_tokens as u64 + self.generated as u64
    }

    pub fn remaining_tokens(&self) -> u32 {
        self.target_tokens - self.generated
    }
}

/// Why the trajectory manager refused an operation (a policy or backend bug: never silently ignored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrajError {
    #[error("trajectory {0} does not exist")]
    Unknown(u64),
    #[error(
        "trajectory {0} was trained or discarded and is retired (a summary-only run keeps no finished trajectories)"
    )]
    Retired(u64),
    #[error("trajectory {id} is {status:?}; {op} needs it {needs}")]
    WrongStatus { id: u64, status: TrajStatus, op: &'static str, needs: &'static str },
    #[error("trajectory {id} would exceed its target of {target} tokens ({generated} + {adding})")]
    Overrun { id: u64, target: u32, generated: u32, adding: u32 },
}

/// Conservation counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrajCounters {
    pub created: u64,
    pub generated_tokens: u64,
    pub trained_tokens: u64,
    pub discarded_tokens: u64,
    pub trained: u64,
    pub discarded: u64,
    pub paused: u64,
    pub resumed: u64,
    pub migrated: u64,
}

/// Totals of the trajectories retired so far (what the conservation check needs of them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct RetiredTotals {
    count: u64,
    generated_tokens: u64,
    trained_tokens: u64,
    discarded_tokens: u64,
}

/// Owns every live trajectory; pause, resume, migrate, finish, train and discard go through it. Trained and
/// discarded ones may be retired from the front (oldest first) once nothing needs them, leaving their totals.
#[derive(Clone, Debug, Default)]
pub struct TrajectoryManager {
    /// Live trajectories, by id from `base`.
    trajs: Vec<Trajectory>,
    /// The id of `trajs[0]`: every trajectory before it is retired.
    base: u64,
    retired: RetiredTotals,
    counters: TrajCounters,
    /// Groups (by group number) that dynamic sampling drops: their rewards turned out all equal.
    dropped_groups: std::collections::BTreeSet<u64>,
}

impl TrajectoryManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id the next created trajectory will get (policies use it to name what `CreateGroups` makes).
    pub fn next_id(&self) -> TrajId {
        TrajId(self.base + self.trajs.len() as u64)
    }

    /// The oldest live trajectory's id (every earlier one is retired).
    pub fn first_live(&self) -> TrajId {
        TrajId(self.base)
    }

    /// Trajectories created (live and retired).
    pub fn len(&self) -> usize {
        (self.base as usize) + self.trajs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, id: TrajId) -> Result<&Trajectory, TrajError> {
        match id.0.checked_sub(self.base) {
            Some(i) => self.trajs.get(i as usize).ok_or(TrajError::Unknown(id.0)),
            None => Err(TrajError::Retired(id.0)),
        }
    }

    fn get_mut(&mut self, id: TrajId) -> Result<&mut Trajectory, TrajError> {
        match id.0.checked_sub(self.base) {
            Some(i) => self.trajs.get_mut(i as usize).ok_or(TrajError::Unknown(id.0)),
            None => Err(TrajError::Retired(id.0)),
        }
    }

    /// The live trajectories, in id order (every one, unless some were retired).
    pub fn all(&self) -> &[Trajectory] {
        &self.trajs
    }

    /// Retires the trained and discarded trajectories at the front (oldest first, up to the first live one),
    /// handing each to `fold` first; their totals stay for the conservation check. Returns how many.
    pub fn retire_front(&mut self, mut fold: impl FnMut(&Trajectory)) -> Result<usize, String> {
        let n =
            self.trajs.iter().take_while(|t| matches!(t.status, TrajStatus::Trained | TrajStatus::Discarded)).count();
        for t in &self.trajs[..n] {
            let segments: u64 = t.segments.iter().map(|s| s.tokens as u64).sum();
            if segments != t.generated as u64 {
                return Err(format!(
                    "conservation broken: trajectory {}: generated {} != sum of segments {segments}",
                    t.id.0, t.generated
                ));
            }
            self.retired.count += 1;
            self.retired.generated_tokens += t.generated as u64;
            match t.status {
                TrajStatus::Trained => self.retired.trained_tokens += t.generated as u64,
                _ => self.retired.discarded_tokens += t.generated as u64,
            }
            fold(t);
        }
        if n > 0 {
            self.base += n as u64;
            self.trajs.drain(..n);
            // Groups wholly retired are never asked about again.
            if let Some(front) = self.trajs.first() {
                self.dropped_groups = self.dropped_groups.split_off(&front.group);
            }
        }
        Ok(n)
    }

    pub fn counters(&self) -> &TrajCounters {
        &self.counters
    }

    /// Marks a group as one dynamic sampling drops (all its rewards equal); the backend knows it when it scores the
    /// group, and a policy learns it only once every sample of the group has finished (`group_kept`).
    pub fn mark_dropped_group(&mut self, group: u64) {
        self.dropped_groups.insert(group);
    }

    /// Whether the group of trajectories `ids` (all of one group) survives dynamic sampling; `None` until every one
    /// of them has finished (the rewards are not known before).
    pub fn group_kept(&self, ids: std::ops::Range<u64>) -> Option<bool> {
        let first = self.get(TrajId(ids.start)).ok()?;
        if ids.clone().any(|i| self.get(TrajId(i)).map_or(true, |t| t.finished_at.is_none())) {
            return None;
        }
        Some(!self.dropped_groups.contains(&first.group))
    }

    /// Creates one trajectory per response length, all sharing a prompt group, for the batch of `batch_step`;
    /// `rewards_ns` are their reward times (empty: none).
    pub fn create_group(
        &mut self,
        group: u64,
        batch_step: u32,
        prompt_tokens: u32,
        responses: &[u32],
        rewards_ns: &[u64],
        now: SimTime,
    ) -> std::ops::Range<u64> {
        let first = self.next_id().0;
        for (k, &target) in responses.iter().enumerate() {
            let id = self.next_id();
            self.trajs.push(Trajectory {
                id,
                group,
                batch_step,
                reward_ns: rewards_ns.get(k).copied().unwrap_or(0),
                prompt_tokens,
                target_tokens: target,
                generated: 0,
                segments: SmallVec::new(),
                status: TrajStatus::Queued,
                created_at: now,
                finished_at: None,
                trained: None,
            });
        }
        self.counters.created += responses.len() as u64;
        first..self.next_id().0
    }

    /// Admits a queued or paused trajectory to `worker`. Resuming a paused one counts as a resume, and as a
    /// migration when it lands on a different worker than its last segment.
    pub fn admit(&mut self, id: TrajId, worker: WorkerId) -> Result<(), TrajError> {
        let t = self.get_mut(id)?;
        match t.status {
            TrajStatus::Queued => {}
            TrajStatus::Paused => {
                let last = t.segments.last().map(|s| s.worker);
                self.counters.resumed += 1;
                if last.is_some_and(|w| w != worker) {
                    self.counters.migrated += 1;
                }
            }
            status => return Err(TrajError::WrongStatus { id: id.0, status, op: "admit", needs: "queued or paused" }),
        }
        self.get_mut(id)?.status = TrajStatus::Running(worker);
        Ok(())
    }

    /// Records `tokens` generated on `worker` under policy `version` (appends to the last segment when it matches).
    pub fn add_tokens(&mut self, id: TrajId, worker: WorkerId, version: u32, tokens: u32) -> Result<(), TrajError> {
        if tokens == 0 {
            return Ok(());
        }
        let t = self.get_mut(id)?;
        if t.status != TrajStatus::Running(worker) {
            return Err(TrajError::WrongStatus {
                id: id.0,
                status: t.status,
                op: "add tokens",
                needs: "running there",
            });
        }
        if t.generated + tokens > t.target_tokens {
            return Err(TrajError::Overrun {
                id: id.0,
                target: t.target_tokens,
                generated: t.generated,
                adding: tokens,
            });
        }
        t.generated += tokens;
        match t.segments.last_mut() {
            Some(s) if s.version == version && s.worker == worker => s.tokens += tokens,
            _ => t.segments.push(Segment { version, worker, tokens }),
        }
        self.counters.generated_tokens += tokens as u64;
        Ok(())
    }

    /// Stops a running trajectory; it keeps its tokens.
    pub fn pause(&mut self, id: TrajId) -> Result<(), TrajError> {
        let t = self.get_mut(id)?;
        if !matches!(t.status, TrajStatus::Running(_)) {
            return Err(TrajError::WrongStatus { id: id.0, status: t.status, op: "pause", needs: "running" });
        }
        t.status = TrajStatus::Paused;
        self.counters.paused += 1;
        Ok(())
    }

    /// Marks a running trajectory complete; it must have reached its target length.
    pub fn finish(&mut self, id: TrajId, now: SimTime) -> Result<(), TrajError> {
        let t = self.get_mut(id)?;
        if !matches!(t.status, TrajStatus::Running(_)) || t.generated != t.target_tokens {
            return Err(TrajError::WrongStatus {
                id: id.0,
                status: t.status,
                op: "finish",
                needs: "running at its target",
            });
        }
        t.status = TrajStatus::Finished;
        t.finished_at = Some(now);
        Ok(())
    }

    /// Marks a running trajectory complete before its target length (it generated its end-of-sequence token):
    /// its target becomes what it generated.
    pub fn finish_early(&mut self, id: TrajId, now: SimTime) -> Result<(), TrajError> {
        let t = self.get_mut(id)?;
        if !matches!(t.status, TrajStatus::Running(_)) {
            return Err(TrajError::WrongStatus { id: id.0, status: t.status, op: "finish early", needs: "running" });
        }
        t.target_tokens = t.generated;
        self.finish(id, now)
    }

    /// Consumes a finished trajectory in train step `step` whose trainer holds policy `version`.
    pub fn train(&mut self, id: TrajId, step: u32, version: u32) -> Result<(), TrajError> {
        let t = self.get_mut(id)?;
        if t.status != TrajStatus::Finished {
            return Err(TrajError::WrongStatus { id: id.0, status: t.status, op: "train", needs: "finished" });
        }
        t.status = TrajStatus::Trained;
        t.trained = Some((step, version));
        let tokens = t.generated as u64;
        self.counters.trained += 1;
        self.counters.trained_tokens += tokens;
        Ok(())
    }

    /// Drops a trajectory that is not running; its tokens count as discarded.
    pub fn discard(&mut self, id: TrajId) -> Result<(), TrajError> {
        let t = self.get_mut(id)?;
        if matches!(t.status, TrajStatus::Running(_) | TrajStatus::Trained | TrajStatus::Discarded) {
            return Err(TrajError::WrongStatus {
                id: id.0,
                status: t.status,
                op: "discard",
                needs: "not running, trained or discarded",
            });
        }
        t.status = TrajStatus::Discarded;
        let tokens = t.generated as u64;
        self.counters.discarded += 1;
        self.counters.discarded_tokens += tokens;
        Ok(())
    }

    /// Tokens generated but neither trained nor discarded.
    pub fn in_flight_tokens(&self) -> u64 {
        self.trajs
            .iter()
            .filter(|t| !matches!(t.status, TrajStatus::Trained | TrajStatus::Discarded))
            .map(|t| t.generated as u64)
            .sum()
    }

    /// Checks that the counters agree with the trajectories and that tokens and trajectories are conserved.
    pub fn check_conservation(&self) -> Result<(), String> {
        let (c, r) = (&self.counters, &self.retired);
        let generated: u64 = r.generated_tokens + self.trajs.iter().map(|t| t.generated as u64).sum::<u64>();
        let segments: u64 = r.generated_tokens
            + self.trajs.iter().flat_map(|t| t.segments.iter()).map(|s| s.tokens as u64).sum::<u64>();
        let trained: u64 = r.trained_tokens
            + self.trajs.iter().filter(|t| t.status == TrajStatus::Trained).map(|t| t.generated as u64).sum::<u64>();
        let discarded: u64 = r.discarded_tokens
            + self.trajs.iter().filter(|t| t.status == TrajStatus::Discarded).map(|t| t.generated as u64).sum::<u64>();
        let in_flight = self.in_flight_tokens();
        let checks = [
            ("created == trajectories", c.created, r.count + self.trajs.len() as u64),
            ("generated counter == sum of trajectories", c.generated_tokens, generated),
            ("generated == sum of segments", generated, segments),
            ("trained counter == trained trajectories' tokens", c.trained_tokens, trained),
            ("discarded counter == discarded trajectories' tokens", c.discarded_tokens, discarded),
            ("generated == trained + in flight + discarded", c.generated_tokens, trained + in_flight + discarded),
        ];
        for (what, a, b) in checks {
            if a != b {
                return Err(format!("conservation broken: {what}: {a} != {b}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_keeps_every_token_accounted() {
        let mut tm = TrajectoryManager::new();
        let ids = tm.create_group(0, 0, 10, &[5, 3], &[], SimTime(0));
        assert_eq!(ids, 0..2);
        let (a, b) = (TrajId(0), TrajId(1));
        tm.admit(a, WorkerId(0)).unwrap();
        tm.add_tokens(a, WorkerId(0), 0, 2).unwrap();
        tm.pause(a).unwrap();
        tm.admit(a, WorkerId(1)).unwrap();
        tm.add_tokens(a, WorkerId(1), 1, 3).unwrap();
        tm.finish(a, SimTime(9)).unwrap();
        tm.train(a, 0, 1).unwrap();
        tm.admit(b, WorkerId(0)).unwrap();
        tm.add_tokens(b, WorkerId(0), 0, 1).unwrap();
        tm.pause(b).unwrap();
        tm.discard(b).unwrap();
        tm.check_conservation().unwrap();
        let c = tm.counters();
        assert_eq!((c.generated_tokens, c.trained_tokens, c.discarded_tokens), (6, 5, 1));
        assert_eq!((c.paused, c.resumed, c.migrated), (2, 1, 1));
        assert_eq!(tm.get(a).unwrap().segments.len(), 2);
    }

    #[test]
    fn illegal_transitions_are_errors() {
        let mut tm = TrajectoryManager::new();
        tm.create_group(0, 0, 10, &[2], &[], SimTime(0));
        let a = TrajId(0);
        assert!(tm.train(a, 0, 0).is_err());
        assert!(tm.add_tokens(a, WorkerId(0), 0, 1).is_err());
        tm.admit(a, WorkerId(0)).unwrap();
        assert!(tm.add_tokens(a, WorkerId(0), 0, 3).is_err());
        assert!(tm.finish(a, SimTime(1)).is_err());
        assert!(tm.admit(a, WorkerId(0)).is_err());
        assert_eq!(tm.get(TrajId(7)).unwrap_err(), TrajError::Unknown(7));
    }
}
