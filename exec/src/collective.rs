//! The gradient all-reduce of a data-parallel train group: every rank hands in its gradients, all get the sum.
//!
//! One `AllReduce` serves one train attempt; its reductions happen in lockstep (one per optimizer step), so the
//! k-th call of every rank meets the k-th call of the others. The sum is taken in rank order by the last rank to
//! arrive, so it is bit-identical run to run whatever order the threads arrive in. The last arrival also decides
//! whether the step goes on: if any rank gave up (its worker was killed) or the kill landed before the optimizer
//! step, every rank is told so at the same reduction and all restore the same state.

use candle_core::Tensor;
use std::sync::{Arc, Condvar, Mutex};

/// What a rank contributes to one reduction: its gradients (one tensor per parameter, in the model's order; an
/// empty list when it had no samples in this mini-batch), or `None` when it gave the step up.
pub type Contribution = Option<Vec<Tensor>>;

/// A gradient reduction across the ranks of one train step.
pub trait GradReduce: Sync {
    /// Sums the ranks' gradients. `Ok(None)`: the step is given up (a rank gave up, or `killed()` was true when the
    /// last rank arrived); every rank of the reduction gets the same answer.
    fn all_reduce(
        &self,
        rank: usize,
        grads: Contribution,
        killed: &dyn Fn() -> bool,
    ) -> candle_core::Result<Option<Arc<Vec<Tensor>>>>;

    /// A rank failed (an error, not a kill) and will not arrive again: every reduction of this train attempt, the
    /// ones already waiting and any later one, gives the step up, so the other ranks do not wait for it forever.
    fn abandon(&self) {}
}

/// A train group of one: nothing to exchange.
pub struct SingleRank;

impl GradReduce for SingleRank {
    fn all_reduce(
        &self,
        _rank: usize,
        grads: Contribution,
        killed: &dyn Fn() -> bool,
    ) -> candle_core::Result<Option<Arc<Vec<Tensor>>>> {
        Ok(grads.filter(|_| !killed()).map(Arc::new))
    }
}

struct Round {
    /// Completed reductions so far; a waiter waits for this to pass the round it joined.
    done: u64,
    slots: Vec<Option<Contribution>>,
    result: Option<Arc<Vec<Tensor>>>,
    /// A rank failed: no reduction of this attempt can complete.
    abandoned: bool,
}

/// The all-reduce of `ranks` worker threads (shared memory: the tensors of one device, or moved to rank 0's).
pub struct AllReduce {
    ranks: usize,
    round: Mutex<Round>,
    turned: Condvar,
}

impl AllReduce {
    pub fn new(ranks: usize) -> Arc<AllReduce> {
        Arc::new(AllReduce {
            ranks: ranks.max(1),
            round: Mutex::new(Round { done: 0, slots: vec![None; ranks.max(1)], result: None, abandoned: false }),
            turned: Condvar::new(),
        })
    }

    /// The sum of the contributions in rank order; `None` if any rank gave up.
    fn sum(slots: &mut [Option<Contribution>]) -> candle_core::Result<Option<Vec<Tensor>>> {
        let mut total: Option<Vec<Tensor>> = None;
        for slot in slots.iter_mut() {
            let Some(grads) = slot.take().expect("every rank arrived") else { return Ok(None) };
            if grads.is_empty() {
                continue;
            }
            total = Some(match total {
                None => grads,
                Some(t) => {
                    if t.len() != grads.len() {
                        candle_core::bail!("all-reduce: ranks disagree on the parameter count");
                    }
                    let device = t[0].device().clone();
                    t.iter().zip(&grads).map(|(a, b)| a + b.to_device(&device)?).collect::<candle_core::Result<_>>()?
                }
            });
        }
        // Every rank without samples: a zero contribution is still a contribution (nothing to apply).
        Ok(Some(total.unwrap_or_default()))
    }
}

impl GradReduce for AllReduce {
    fn all_reduce(
        &self,
        rank: usize,
        grads: Contribution,
        killed: &dyn Fn() -> bool,
    ) -> candle_core::Result<Option<Arc<Vec<Tensor>>>> {
        // On a GPU the other ranks read these on their own streams: this rank's backward must be done first. A rank
        // whose device fails here gives the step up, so the others are not left waiting, and reports its error.
        let settled = grads.as_deref().map_or(Ok(()), crate::device::settle);
        let grads = if settled.is_ok() { grads } else { None };
        let result = self.reduce(rank, grads, killed);
        settled?;
        result
    }

    fn abandon(&self) {
        // A poisoned lock means a rank panicked: the waiters already get an error.
        if let Ok(mut r) = self.round.lock() {
            r.abandoned = true;
            self.turned.notify_all();
        }
    }
}

impl AllReduce {
    fn reduce(
        &self,
        rank: usize,
        grads: Contribution,
        killed: &dyn Fn() -> bool,
    ) -> candle_core::Result<Option<Arc<Vec<Tensor>>>> {
        let mut r = self.round.lock().map_err(|_| candle_core::Error::Msg("all-reduce: a rank panicked".into()))?;
        if r.abandoned {
            return Ok(None);
        }
        if rank >= self.ranks || r.slots[rank].is_some() {
            candle_core::bail!("all-reduce: rank {rank} of {} arrived twice or out of range", self.ranks);
        }
        r.slots[rank] = Some(grads);
        let joined = r.done;
        if r.slots.iter().all(Option::is_some) {
            let sum = Self::sum(&mut r.slots).and_then(|s| {
                // The sum was computed on this thread's stream; every rank applies it on its own.
                if let Some(g) = &s {
                    crate::device::settle(g)?;
                }
                Ok(s)
            });
            r.result = match sum {
                Ok(Some(g)) if !killed() => Some(Arc::new(g)),
                Ok(_) => None,
                Err(e) => {
                    r.done += 1;
                    r.result = None;
                    self.turned.notify_all();
                    return Err(e);
                }
            };
            r.done += 1;
            self.turned.notify_all();
            return Ok(r.result.clone());
        }
        while r.done == joined && !r.abandoned {
            r = self.turned.wait(r).map_err(|_| candle_core::Error::Msg("all-reduce: a rank panicked".into()))?;
        }
        // Woken by a failed rank before this round completed: the step is given up.
        if r.done == joined {
            return Ok(None);
        }
        Ok(r.result.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    /// A rank that fails leaves no other rank waiting: the one already waiting and a later arrival both give the
    /// step up.
    #[test]
    fn a_failed_rank_releases_the_others() {
        let reduce = AllReduce::new(3);
        std::thread::scope(|s| {
            let waiting = s.spawn(|| reduce.all_reduce(0, Some(vec![t(&[1.0])]), &|| false).unwrap());
            // Rank 2 fails once rank 0 is waiting (or before: either way rank 0 must come back).
            std::thread::sleep(std::time::Duration::from_millis(20));
            reduce.abandon();
            assert!(waiting.join().unwrap().is_none());
        });
        assert!(reduce.all_reduce(1, Some(vec![t(&[2.0])]), &|| false).unwrap().is_none());
    }

    #[test]
    fn three_ranks_sum_in_rank_order_over_several_rounds() {
        let reduce = AllReduce::new(3);
        let results: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|rank| {
                    let reduce = reduce.clone();
                    s.spawn(move || {
                        (0..4)
                            .map(|round| {
                                let mine = vec![t(&[rank as f32 + round as f32, 1.0])];
                                // Rank 2 sits out round 1 (no samples in that mini-batch).
                                let mine = if rank == 2 && round == 1 { Vec::new() } else { mine };
                                let sum = reduce.all_reduce(rank, Some(mine), &|| false).unwrap().unwrap();
                                sum[0].to_vec1::<f32>().unwrap()
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in &results {
            assert_eq!(r, &vec![vec![3.0, 3.0], vec![1.0 + 2.0, 2.0], vec![9.0, 3.0], vec![12.0, 3.0]]);
        }
    }

    #[test]
    fn one_rank_giving_up_or_a_kill_stops_every_rank_at_the_same_round() {
        for kill in [false, true] {
            let reduce = AllReduce::new(2);
            let answers: Vec<Vec<bool>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..2)
                    .map(|rank| {
                        let reduce = reduce.clone();
                        s.spawn(move || {
                            let mut got = Vec::new();
                            for round in 0..3 {
                                let give_up = !kill && rank == 1 && round == 1;
                                let c = if give_up { None } else { Some(vec![t(&[1.0])]) };
                                let killed = move || kill && round == 1;
                                let ok = reduce.all_reduce(rank, c, &killed).unwrap().is_some();
                                got.push(ok);
                                if !ok {
                                    break;
                                }
                            }
                            got
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(answers, vec![vec![true, false], vec![true, false]], "kill {kill}");
        }
    }
}
