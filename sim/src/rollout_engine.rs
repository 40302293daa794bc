//! A simulated continuous-batching rollout engine (vLLM/SGLang-like), advanced in closed form between batch changes.
//!
//! Semantics (the per-iteration reference in the tests implements the same rules one iteration at a time):
//! - At every boundary (start, a completion, a preemption, an interruption) the engine first preempts while the
//!   KV cache cannot hold one more token for every running sequence — newest admitted first, back to the front of
//!   the waiting queue, keeping its tokens (recompute: it re-prefills its context when readmitted) — then admits
//!   waiting sequences in FIFO order while fewer than `max_seqs` run and the KV cache holds the new sequence's
//!   context plus one iteration's growth of the enlarged batch. Admitted sequences are prefilled in one pass
//!   (prefix caching: a prompt already resident for a sibling of the same group is not recomputed).
//! - Then every running sequence gains one token per decode iteration until the next sequence finishes or the
//!   cache fills. Nothing changes the batch in between, so that stretch is one closed-form interval.
//! - Time is exact in femtoseconds; the backend schedules the wake-up at the next whole nanosecond.
//!
//! Bookkeeping (issue #11: ordered maps were ~40 % of a 256-GPU run): running sequences live in a slab of slots; a
//! min-heap of (finishing iteration, admission order) and a stack in admission order find the next to finish and the
//! newest to preempt, their entries for sequences that left early dropped lazily. Both orders are the ones the
//! ordered maps gave (admission orders are unique), so every decision is the same.

use crate::costs::decode::{DecodeCoeffs, PrefillCoeffs};
use crate::trajectory::TrajId;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// A multiplicative hash for the group-id map (looked up, never iterated; SipHash's cost bought nothing here).
#[derive(Default, Clone, Copy)]
struct GroupHasher(u64);

impl Hasher for GroupHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

type GroupMap = HashMap<u64, u32, BuildHasherDefault<GroupHasher>>;

/// A sequence handed to an engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineSeq {
    pub traj: TrajId,
    pub group: u64,
    pub prompt_tokens: u32,
    /// Tokens generated before it entered this engine (kept across pause/resume).
    pub generated: u32,
    /// Response length at which it leaves the engine (its length, or the end of its current turn).
    pub target: u32,
    /// Tokens of its context already in this engine's prefix cache when it arrives (a multi-turn sequence back from
    /// a tool call: everything before the tool's output); a preemption loses them.
    pub cached_tokens: u32,
}

impl EngineSeq {
    fn context(&self) -> u64 {
        self.prompt_tokens as u64 + self.generated as u64
    }
}

#[derive(Clone, Copy, Debug)]
struct Running {
    seq: EngineSeq,
    /// Engine iteration count when `seq.generated` was last brought up to date.
    since_iter: u64,
    /// `generated` when the sequence entered this engine: what was already reported to the trajectory manager.
    reported: u32,
    /// Exact time of its admission into the running batch (the start of this stay's prefill).
    admitted_fs: u128,
    /// Admission order (unique over the engine's life): ties among finishers and the preemption victim go by it.
    order: u64,
}

/// A sequence waiting for a slot, with the progress already reported for it.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    seq: EngineSeq,
    reported: u32,
    /// When it first entered the batch on this engine (kept across preemptions), if it has.
    admitted_fs: Option<u128>,
}

/// The interval the engine is executing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    start_fs: u128,
    prefill_fs: u128,
    batch: u64,
    context: u64,
    iterations: u64,
}

/// A sequence that left the engine with its progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Departed {
    pub seq: EngineSeq,
    /// Tokens generated inside this engine since it was enqueued.
    pub new_tokens: u32,
    /// Exact time it first entered the running batch here (`None` if it never left the waiting queue).
    pub admitted_fs: Option<u128>,
}

/// Engine counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub preemptions: u64,
    pub prefill_tokens: u64,
    pub decode_iterations: u64,
    pub intervals: u64,
}

#[derive(Clone, Debug)]
pub struct RolloutEngine {
    decode: DecodeCoeffs,
    prefill: PrefillCoeffs,
    kv_capacity_tokens: u64,
    max_seqs: u64,
    prefix_caching: bool,
    /// Exact time of the last committed boundary.
    clock_fs: u128,
    iter: u64,
    next_order: u64,
    /// Running sequences by slot (`None`: a free slot, listed in `free_slots`).
    slots: Vec<Option<Running>>,
    free_slots: Vec<u32>,
    running_len: usize,
    /// (iteration at which it finishes, admission order, slot), smallest first; an entry is live while its slot
    /// holds that order.
    finishing: BinaryHeap<Reverse<(u64, u64, u32)>>,
    /// (admission order, slot) in admission order (live as above): the newest running sequence is the last live one.
    by_order: Vec<(u64, u32)>,
    waiting: VecDeque<Waiting>,
    /// Sum of running contexts at iteration `iter` = KV tokens in use.
    context_sum: u64,
    group_resident: GroupMap,
    plan: Option<Plan>,
    stats: EngineStats,
}

impl RolloutEngine {
    pub fn new(
        decode: DecodeCoeffs,
        prefill: PrefillCoeffs,
        kv_capacity_tokens: u64,
        max_seqs: u32,
        prefix_caching: bool,
    ) -> Self {
        RolloutEngine {
            decode,
            prefill,
            kv_capacity_tokens,
            max_seqs: max_seqs as u64,
            prefix_caching,
            clock_fs: 0,
            iter: 0,
            next_order: 0,
            slots: Vec::new(),
            free_slots: Vec::new(),
            running_len: 0,
            finishing: BinaryHeap::new(),
            by_order: Vec::new(),
            waiting: VecDeque::new(),
            context_sum: 0,
            group_resident: GroupMap::default(),
            plan: None,
            stats: EngineStats::default(),
        }
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// No sequence running or waiting.
    pub fn is_empty(&self) -> bool {
        self.running_len == 0 && self.waiting.is_empty()
    }

    pub fn running_len(&self) -> usize {
        self.running_len
    }

    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    /// KV-cache tokens held by the running sequences at the last boundary (their contexts).
    pub fn kv_tokens(&self) -> u64 {
        self.context_sum
    }

    /// True while an interval is planned and not yet completed or interrupted.
    pub fn is_busy(&self) -> bool {
        self.plan.is_some()
    }

    /// Adds a sequence to the back of the waiting queue; it joins the batch at the next boundary.
    pub fn enqueue(&mut self, seq: EngineSeq) {
        self.waiting.push_back(Waiting { seq, reported: seq.generated, admitted_fs: None });
    }

    fn current_generated(&self, r: &Running) -> u32 {
        r.seq.generated + (self.iter - r.since_iter) as u32
    }

    /// Whether `slot` still holds the sequence admitted as `order` (heap and stack entries of sequences that left
    /// are dropped when met).
    fn is_live(slots: &[Option<Running>], order: u64, slot: u32) -> bool {
        slots[slot as usize].is_some_and(|r| r.order == order)
    }

    /// The running sequence that finishes first (ties: the first admitted): its finishing iteration and slot.
    fn first_finishing(&mut self) -> Option<(u64, u32)> {
        while let Some(&Reverse((finish_iter, order, slot))) = self.finishing.peek() {
            if Self::is_live(&self.slots, order, slot) {
                return Some((finish_iter, slot));
            }
            self.finishing.pop();
        }
        None
    }

    /// The slot of the newest running sequence.
    fn newest(&mut self) -> Option<u32> {
        while let Some(&(order, slot)) = self.by_order.last() {
            if Self::is_live(&self.slots, order, slot) {
                return Some(slot);
            }
            self.by_order.pop();
        }
        None
    }

    fn remove_running(&mut self, slot: u32) -> Departed {
        let r = self.slots[slot as usize].take().expect("slot of a running sequence");
        self.free_slots.push(slot);
        self.running_len -= 1;
        if self.running_len == 0 {
            // Whatever the heap and the stack still hold is stale.
            self.finishing.clear();
            self.by_order.clear();
        }
        let generated = self.current_generated(&r);
        let mut seq = r.seq;
        seq.generated = generated;
        self.context_sum -= seq.context();
        if let Some(n) = self.group_resident.get_mut(&seq.group) {
            *n -= 1;
            if *n == 0 {
                self.group_resident.remove(&seq.group);
            }
        }
        Departed { seq, new_tokens: generated - r.reported, admitted_fs: Some(r.admitted_fs) }
    }

    fn admit(&mut self, w: Waiting) -> u64 {
        let seq = w.seq;
        let sibling = if self.prefix_caching && self.group_resident.contains_key(&seq.group) {
            seq.prompt_tokens as u64
        } else {
            0
        };
        let cached = sibling.max(seq.cached_tokens as u64).min(seq.context());
        let order = self.next_order;
        self.next_order += 1;
        *self.group_resident.entry(seq.group).or_insert(0) += 1;
        self.context_sum += seq.context();
        let admitted_fs = w.admitted_fs.unwrap_or(self.clock_fs);
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.slots.push(None);
            (self.slots.len() - 1) as u32
        });
        self.slots[slot as usize] =
            Some(Running { seq, since_iter: self.iter, reported: w.reported, admitted_fs, order });
        self.running_len += 1;
        self.finishing.push(Reverse((self.iter + (seq.target - seq.generated) as u64, order, slot)));
        self.by_order.push((order, slot));
        // Stale entries (preempted or removed sequences) are dropped once they outnumber the live ones.
        if self.finishing.len() > 2 * self.running_len + 64 {
            let slots = &self.slots;
            self.finishing.retain(|&Reverse((_, o, s))| Self::is_live(slots, o, s));
            self.by_order.retain(|&(o, s)| Self::is_live(slots, o, s));
        }
        seq.context() - cached
    }

    /// Plans the next interval starting at `now_fs` (or at the engine's last boundary if that is later).
    /// Returns the exact femtosecond at which it ends, or `None` when there is nothing to run. Errors when the
    /// front waiting sequence can never fit in an empty cache.
    pub fn plan(&mut self, now_fs: u128) -> Result<Option<u128>, EngineStuck> {
        assert!(self.plan.is_none(), "plan() while an interval is in flight");
        let start_fs = self.clock_fs.max(now_fs);
        self.clock_fs = start_fs;
        // 1. preempt newest while one more token per running sequence does not fit
        while self.running_len > 0 && self.kv_capacity_tokens - self.context_sum < self.running_len as u64 {
            let newest = self.newest().expect("non-empty");
            self.by_order.pop();
            let mut d = self.remove_running(newest);
            d.seq.cached_tokens = 0; // its KV is dropped: the whole context is recomputed
            self.waiting.push_front(Waiting {
                seq: d.seq,
                reported: d.seq.generated - d.new_tokens,
                admitted_fs: d.admitted_fs,
            });
            self.stats.preemptions += 1;
        }
        // 2. admit FIFO
        let (mut prefill_tokens, mut prefill_seqs) = (0, 0);
        while let Some(front) = self.waiting.front() {
            let batch = self.running_len as u64 + 1;
            if batch > self.max_seqs || self.context_sum + front.seq.context() + batch > self.kv_capacity_tokens {
                break;
            }
            let w = self.waiting.pop_front().expect("front exists");
            let tokens = self.admit(w);
            prefill_tokens += tokens;
            prefill_seqs += u64::from(tokens > 0);
        }
        if self.running_len == 0 {
            return match self.waiting.front() {
                None => Ok(None),
                Some(w) => Err(EngineStuck {
                    traj: w.seq.traj,
                    context_tokens: w.seq.context() + 1,
                    kv_capacity_tokens: self.kv_capacity_tokens,
                }),
            };
        }
        // 3. decode until the first finish or the cache fills
        let batch = self.running_len as u64;
        let until_finish = self.first_finishing().expect("running implies finishing").0 - self.iter;
        let until_full = (self.kv_capacity_tokens - self.context_sum) / batch;
        let iterations = until_finish.min(until_full).max(1);
        let prefill_fs = self.prefill.prefill_fs(prefill_tokens, prefill_seqs);
        self.stats.prefill_tokens += prefill_tokens;
        let plan = Plan { start_fs, prefill_fs, batch, context: self.context_sum, iterations };
        self.plan = Some(plan);
        self.stats.intervals += 1;
        Ok(Some(start_fs + prefill_fs + self.decode.interval_fs(batch, plan.context, iterations)))
    }

    fn commit(&mut self, iterations: u64, end_fs: u128, done: &mut Vec<Departed>) {
        let plan = self.plan.take().expect("commit needs a plan");
        self.iter += iterations;
        self.context_sum += iterations * plan.batch;
        self.clock_fs = end_fs;
        self.stats.decode_iterations += iterations;
        while let Some((finish_iter, slot)) = self.first_finishing() {
            if finish_iter > self.iter {
                break;
            }
            self.finishing.pop();
            done.push(self.remove_running(slot));
        }
    }

    /// Completes the planned interval at its end; appends the sequences that finished to `done`, in finishing
    /// order (ties by admission order). The caller's buffer is reused so the event loop does not allocate.
    pub fn complete_into(&mut self, done: &mut Vec<Departed>) {
        let p = self.plan.expect("complete() needs a plan");
        let end = p.start_fs + p.prefill_fs + self.decode.interval_fs(p.batch, p.context, p.iterations);
        self.commit(p.iterations, end, done)
    }

    /// `complete_into` with a fresh vector.
    pub fn complete(&mut self) -> Vec<Departed> {
        let mut done = Vec::new();
        self.complete_into(&mut done);
        done
    }

    /// Stops the planned interval at `now_fs`: the prefill and the decode iteration in progress finish first.
    /// Returns sequences that finished by then. Afterwards the engine is at a boundary (possibly after `now_fs`).
    pub fn interrupt(&mut self, now_fs: u128) -> Vec<Departed> {
        let Some(p) = self.plan else { return Vec::new() };
        let decode_start = p.start_fs + p.prefill_fs;
        let elapsed = now_fs.saturating_sub(decode_start);
        let n = if now_fs <= decode_start {
            0
        } else {
            self.decode.iterations_covering(p.batch, p.context, elapsed, p.iterations)
        };
        let end = decode_start + self.decode.interval_fs(p.batch, p.context, n);
        let mut done = Vec::new();
        self.commit(n, end, &mut done);
        done
    }

    /// Cuts the planned interval short at the first iteration boundary at or after `now_fs` (a running iteration
    /// is never cut), so that waiting sequences can join there. Returns the new end, or `None` without a plan.
    pub fn truncate(&mut self, now_fs: u128) -> Option<u128> {
        let p = self.plan.as_mut()?;
        let decode_start = p.start_fs + p.prefill_fs;
        let n = if now_fs <= decode_start {
            0
        } else {
            self.decode.iterations_covering(p.batch, p.context, now_fs - decode_start, p.iterations)
        };
        p.iterations = n;
        Some(decode_start + self.decode.interval_fs(p.batch, p.context, n))
    }

    /// The exact time of the last boundary.
    pub fn clock_fs(&self) -> u128 {
        self.clock_fs
    }

    /// Removes a sequence (running or waiting) at a boundary; returns it with its progress. Call `interrupt` first.
    pub fn remove(&mut self, traj: TrajId) -> Option<Departed> {
        assert!(self.plan.is_none(), "remove() while an interval is in flight");
        if let Some(pos) = self.waiting.iter().position(|w| w.seq.traj == traj) {
            let w = self.waiting.remove(pos).expect("position found");
            return Some(Departed { seq: w.seq, new_tokens: w.seq.generated - w.reported, admitted_fs: w.admitted_fs });
        }
        let slot = self.slots.iter().position(|r| r.is_some_and(|r| r.seq.traj == traj))?;
        Some(self.remove_running(slot as u32))
    }

    /// Sequences in the engine (running by admission order, then waiting), for views and tests.
    /// The earliest admission (fs) of a sequence still in the engine, running or preempted: no generation span
    /// that is still open starts before it.
    pub fn oldest_admitted_fs(&self) -> Option<u128> {
        let running = self.slots.iter().flatten().map(|r| r.admitted_fs);
        running.chain(self.waiting.iter().filter_map(|w| w.admitted_fs)).min()
    }

    pub fn resident(&self) -> impl Iterator<Item = TrajId> + '_ {
        self.by_order
            .iter()
            .filter(|&&(order, slot)| Self::is_live(&self.slots, order, slot))
            .map(|&(_, slot)| self.slots[slot as usize].expect("live").seq.traj)
            .chain(self.waiting.iter().map(|w| w.seq.traj))
    }
}

/// The front waiting sequence cannot fit in the engine's KV cache even alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("trajectory {} needs {context_tokens} tokens of KV cache but the engine holds {kv_capacity_tokens}", traj.0)]
pub struct EngineStuck {
    pub traj: TrajId,
    pub context_tokens: u64,
    pub kv_capacity_tokens: u64,
}

/// The slow reference: the same rules simulated one decode iteration at a time, with no closed forms and no lazy
/// bookkeeping. Returns each sequence's exact finishing time in femtoseconds, in finishing order.
pub fn reference_finish_times(
    decode: &DecodeCoeffs,
    prefill: &PrefillCoeffs,
    kv_capacity_tokens: u64,
    max_seqs: u32,
    prefix_caching: bool,
    seqs: &[EngineSeq],
) -> Vec<(TrajId, u128)> {
    #[derive(Clone, Copy)]
    struct R {
        seq: EngineSeq,
        order: u64,
    }
    let mut waiting: VecDeque<EngineSeq> = seqs.iter().copied().collect();
    let mut running: Vec<R> = Vec::new();
    let mut now: u128 = 0;
    let mut order = 0;
    let mut out = Vec::new();
    let ctx = |s: &EngineSeq| s.prompt_tokens as u64 + s.generated as u64;
    while !(waiting.is_empty() && running.is_empty()) {
        let used: u64 = running.iter().map(|r| ctx(&r.seq)).sum();
        if !running.is_empty() && kv_capacity_tokens - used < running.len() as u64 {
            let newest = running.iter().enumerate().max_by_key(|(_, r)| r.order).map(|(i, _)| i).unwrap();
            let r = running.remove(newest);
            waiting.push_front(r.seq);
            continue; // re-check before admitting, exactly like the boundary loop
        }
        let (mut prefill_tokens, mut prefill_seqs) = (0, 0);
        while let Some(front) = waiting.front().copied() {
            let used: u64 = running.iter().map(|r| ctx(&r.seq)).sum();
            let batch = running.len() as u64 + 1;
            if batch > max_seqs as u64 || used + ctx(&front) + batch > kv_capacity_tokens {
                break;
            }
            waiting.pop_front();
            let cached = prefix_caching && running.iter().any(|r| r.seq.group == front.group);
            let tokens = ctx(&front) - if cached { front.prompt_tokens as u64 } else { 0 };
            prefill_tokens += tokens;
            prefill_seqs += u64::from(tokens > 0);
            running.push(R { seq: front, order });
            order += 1;
        }
        if running.is_empty() {
            break; // stuck: the fast engine reports this as an error
        }
        now += prefill.prefill_fs(prefill_tokens, prefill_seqs);
        let used: u64 = running.iter().map(|r| ctx(&r.seq)).sum();
        now += decode.iteration_fs(running.len() as u64, used);
        for r in running.iter_mut() {
            r.seq.generated += 1;
        }
        running.sort_by_key(|r| (r.seq.target - r.seq.generated, r.order));
        while running.first().is_some_and(|r| r.seq.generated == r.seq.target) {
            out.push((running.remove(0).seq.traj, now));
        }
        running.sort_by_key(|r| r.order);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(o: u64, w: u64, kv: u64, c: u64) -> DecodeCoeffs {
        DecodeCoeffs {
            overhead_fs: o,
            weights_fs: w,
            kv_fs_per_token: kv,
            compute_fs_per_seq: c,
            attention_fs_per_token: 0,
            ..DecodeCoeffs::default()
        }
    }
    fn p(o: u64, c: u64) -> PrefillCoeffs {
        PrefillCoeffs {
            overhead_fs: o,
            per_seq_fs: 0,
            weights_fs: 0,
            compute_fs_per_token: c,
            allreduce_fs_per_token: 0,
        }
    }
    fn seq(id: u64, group: u64, prompt: u32, target: u32) -> EngineSeq {
        EngineSeq { traj: TrajId(id), group, prompt_tokens: prompt, generated: 0, target, cached_tokens: 0 }
    }

    fn run_fast(e: &mut RolloutEngine, seqs: &[EngineSeq]) -> Vec<(TrajId, u128)> {
        for s in seqs {
            e.enqueue(*s);
        }
        let mut out = Vec::new();
        while let Some(end) = e.plan(0).unwrap() {
            for dep in e.complete() {
                assert_eq!(dep.seq.generated, dep.seq.target);
                let original = seqs.iter().find(|s| s.traj == dep.seq.traj).unwrap();
                assert_eq!(dep.new_tokens, dep.seq.target - original.generated, "every token reported once");
                out.push((dep.seq.traj, end));
            }
        }
        out
    }

    #[test]
    fn one_sequence_hand_computed() {
        // prefill 10 tokens: 5 + 10·2 = 25; then 4 iterations, memory-bound: 100 + 1·ctx + overhead 7
        // contexts 10, 11, 12, 13 → (107+10) + (107+11) + (107+12) + (107+13) = 474; finish at 499
        let mut e = RolloutEngine::new(d(7, 100, 1, 0), p(5, 2), 1000, 8, true);
        assert_eq!(run_fast(&mut e, &[seq(0, 0, 10, 4)]), vec![(TrajId(0), 499)]);
    }

    #[test]
    fn two_sequences_of_one_group_share_the_prompt_prefill() {
        // prefill: 10 tokens once (prefix cached for the sibling) → 5 + 20 = 25
        // iterations with B=2: contexts 20, 22 → 100+20=120, 122 → first finishes (target 2) at 25+242 = 267
        // then B=1: contexts 12 (10 + 2 of the survivor): 112 → finishes at 379
        let mut e = RolloutEngine::new(d(0, 100, 1, 0), p(5, 2), 1000, 8, true);
        let got = run_fast(&mut e, &[seq(0, 0, 10, 2), seq(1, 0, 10, 3)]);
        assert_eq!(got, vec![(TrajId(0), 267), (TrajId(1), 379)]);
        assert_eq!(e.stats().prefill_tokens, 10);
    }

    #[test]
    fn full_cache_preempts_the_newest_and_recomputes_it() {
        // capacity 14: two sequences of prompt 4; both admitted (4+4+2 ≤ 14)
        let mut e = RolloutEngine::new(d(0, 10, 0, 0), p(0, 1), 14, 8, false);
        let got = run_fast(&mut e, &[seq(0, 0, 4, 6), seq(1, 1, 4, 6)]);
        let reference =
            reference_finish_times(&d(0, 10, 0, 0), &p(0, 1), 14, 8, false, &[seq(0, 0, 4, 6), seq(1, 1, 4, 6)]);
        assert_eq!(got, reference);
        assert!(e.stats().preemptions >= 1);
        assert!(e.is_empty());
    }

    #[test]
    fn interrupt_and_remove_keep_progress() {
        let mut e = RolloutEngine::new(d(0, 100, 0, 0), p(0, 0), 1000, 8, false);
        e.enqueue(seq(0, 0, 10, 50));
        let end = e.plan(0).unwrap().unwrap();
        assert_eq!(end, 5000);
        assert!(e.interrupt(250).is_empty()); // 2.5 iterations → the third completes at 300
        assert_eq!(e.clock_fs(), 300);
        let dep = e.remove(TrajId(0)).unwrap();
        assert_eq!((dep.seq.generated, dep.new_tokens, dep.admitted_fs), (3, 3, Some(0)));
        assert!(e.is_empty());
    }

    #[test]
    fn truncate_lets_a_newcomer_join_at_the_next_boundary() {
        let mut e = RolloutEngine::new(d(0, 100, 0, 0), p(0, 0), 1000, 8, false);
        e.enqueue(seq(0, 0, 10, 50));
        assert_eq!(e.plan(0).unwrap(), Some(5000));
        e.enqueue(seq(1, 1, 10, 1));
        assert_eq!(e.truncate(250), Some(300));
        assert!(e.complete().is_empty());
        assert_eq!(e.plan(250).unwrap(), Some(400)); // both decode; the newcomer finishes after one iteration
        let done = e.complete();
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].seq.traj, done[0].admitted_fs), (TrajId(1), Some(300)));
    }

    #[test]
    fn a_sequence_that_never_fits_is_an_error() {
        let mut e = RolloutEngine::new(d(0, 1, 0, 0), p(0, 0), 10, 8, false);
        e.enqueue(seq(0, 0, 10, 5));
        assert_eq!(e.plan(0).unwrap_err().context_tokens, 11);
    }

    #[test]
    fn many_preemptions_match_the_reference() {
        // A small cache and long sequences: hundreds of preemptions, each leaving a stale heap entry behind.
        let seqs: Vec<EngineSeq> =
            (0..200u64).map(|i| seq(i, i % 7, 1 + (i * 5 % 8) as u32, 20 + (i * 37 % 61) as u32)).collect();
        let (dc, pc) = (d(3, 50, 2, 7), p(1, 2));
        let mut e = RolloutEngine::new(dc, pc, 160, 24, true);
        let fast = run_fast(&mut e, &seqs);
        assert!(e.stats().preemptions > 200, "{} preemptions", e.stats().preemptions);
        assert_eq!(fast, reference_finish_times(&dc, &pc, 160, 24, true, &seqs));
    }

    #[test]
    fn removed_sequences_leave_stale_entries_that_are_dropped() {
        // 300 running, 200 of them removed: their heap and stack entries go stale and are compacted when the next
        // sequence is admitted; the rest still finish in (finishing iteration, admission order).
        let mut e = RolloutEngine::new(d(0, 10, 0, 0), p(0, 0), 1_000_000, 400, false);
        for i in 0..300 {
            e.enqueue(seq(i, i, 4, 50 + (i % 13) as u32));
        }
        e.plan(0).unwrap();
        assert!(e.interrupt(25).is_empty());
        for i in (0..300).filter(|i| i % 3 != 0) {
            assert!(e.remove(TrajId(i)).is_some());
        }
        assert_eq!(e.running_len(), 100);
        for i in 300..310 {
            e.enqueue(seq(i, i, 4, 5));
        }
        let kept: Vec<u64> = (0..300).filter(|i| i % 3 == 0).collect();
        let resident: Vec<u64> = e.resident().map(|t| t.0).collect();
        assert_eq!(resident, kept.iter().copied().chain(300..310).collect::<Vec<_>>());
        let mut order = Vec::new();
        while e.plan(0).unwrap().is_some() {
            order.extend(e.complete().into_iter().map(|dep| dep.seq.traj.0));
        }
        let mut expected: Vec<u64> = (300..310).collect();
        let mut old = kept;
        old.sort_by_key(|&i| (i % 13, i));
        expected.extend(old);
        assert_eq!(order, expected);
        assert!(e.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn fast_engine_equals_per_iteration_reference(
            lens in proptest::collection::vec((1u32..40, 1u32..60, 0u64..4), 1..40),
            cap in 120u64..600, max_seqs in 1u32..12, caching: bool,
            o in 0u64..50, w in 0u64..500, kv in 0u64..20, c in 0u64..200,
        ) {
            let seqs: Vec<EngineSeq> = lens.iter().enumerate().map(|(i, &(pr, t, g))| seq(i as u64, g, pr, t)).collect();
            let (dc, pc) = (d(o, w, kv, c), PrefillCoeffs { per_seq_fs: 5, ..p(3, 2) });
            let mut e = RolloutEngine::new(dc, pc, cap, max_seqs, caching);
            let fast = run_fast(&mut e, &seqs);
            let slow = reference_finish_times(&dc, &pc, cap, max_seqs, caching, &seqs);
            prop_assert_eq!(fast.len(), seqs.len());
            prop_assert_eq!(fast, slow);
        }
    }
}
