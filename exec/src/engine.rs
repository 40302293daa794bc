//! A real continuous-batching rollout engine over the candle model: sequences join and leave between decode
//! iterations, a KV-cache budget in tokens, recompute preemption, prefix reuse within a prompt group, and
//! pause/resume. Its batching rules are the simulator's (`rlsim_sim::rollout_engine`), so the two agree on who runs
//! when; only the durations are measured instead of modelled. Each running sequence owns a slot of one preallocated
//! KV cache (`KvCache`), allocated at the first admission and dropped by `release`.

use crate::model::{Gpt, KvCache};
use rand::RngExt;
use rlsim_sim::rng::StreamRng;
use rlsim_sim::scenario::ExecLengths;
use rlsim_sim::trajectory::TrajId;
use std::collections::VecDeque;

/// A trajectory handed to the engine, with what it generated before (a resumed one re-prefills it).
#[derive(Clone, Debug)]
pub struct SeqInput {
    pub traj: TrajId,
    pub group: u64,
    pub prompt: Vec<u32>,
    pub response: Vec<u32>,
    pub logprobs: Vec<f32>,
    /// Response length at which it stops (in natural mode it may stop earlier, at EOS).
    pub target: u32,
}

/// A trajectory leaving the engine (finished or paused) with all its tokens.
#[derive(Clone, Debug)]
pub struct SeqOutput {
    pub traj: TrajId,
    pub response: Vec<u32>,
    pub logprobs: Vec<f32>,
    /// Tokens generated here since it was enqueued.
    pub new_tokens: u32,
    /// When (ns since the run started) it first entered the running batch here.
    pub admitted_at_ns: Option<u64>,
    /// It reached EOS before its target (natural lengths only).
    pub stopped_at_eos: bool,
}

struct Running {
    seq: SeqInput,
    /// Its slot in the KV cache.
    slot: usize,
    reported: usize,
    admitted_at_ns: u64,
}

struct Waiting {
    seq: SeqInput,
    reported: usize,
    admitted_at_ns: Option<u64>,
}

/// Counters the timeline reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealEngineStats {
    pub preemptions: u64,
    pub prefill_tokens: u64,
    pub decode_iterations: u64,
    /// Sum over decode iterations of the batch size (÷ iterations = mean batch).
    pub decode_batch_sum: u64,
    /// Wall time inside `step`, ns.
    pub step_ns: u64,
    /// Batch size and total context (tokens read) of the last decode iteration.
    pub last_batch: u64,
    pub last_context: u64,
}

pub struct RealEngine {
    pub model: Gpt,
    max_seqs: usize,
    kv_capacity_tokens: u64,
    prefix_caching: bool,
    lengths: ExecLengths,
    eos: u32,
    running: Vec<Running>,
    waiting: VecDeque<Waiting>,
    /// Allocated when a sequence is first admitted; `None` after `release`.
    cache: Option<KvCache>,
    rng: StreamRng,
    pub stats: RealEngineStats,
}

fn context_len(s: &SeqInput) -> u64 {
    (s.prompt.len() + s.response.len()) as u64
}

impl RealEngine {
    pub fn new(
        model: Gpt,
        max_seqs: u32,
        kv_capacity_tokens: u64,
        prefix_caching: bool,
        lengths: ExecLengths,
        eos: u32,
        rng: StreamRng,
    ) -> Self {
        RealEngine {
            model,
            max_seqs: max_seqs as usize,
            kv_capacity_tokens,
            prefix_caching,
            lengths,
            eos,
            running: Vec::new(),
            waiting: VecDeque::new(),
            cache: None,
            rng,
            stats: RealEngineStats::default(),
        }
    }

    pub fn enqueue(&mut self, seq: SeqInput) {
        let reported = seq.response.len();
        self.waiting.push_back(Waiting { seq, reported, admitted_at_ns: None });
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty() && self.waiting.is_empty()
    }

    pub fn resident(&self) -> Vec<TrajId> {
        self.running.iter().map(|r| r.seq.traj).chain(self.waiting.iter().map(|w| w.seq.traj)).collect()
    }

    /// (running sequences, waiting sequences, KV-cache tokens the running ones hold): what the trace's counters show.
    pub fn load(&self) -> (usize, usize, u64) {
        (self.running.len(), self.waiting.len(), self.used())
    }

    /// Frees the KV cache's device memory (a colocated switch releases it; no sequence may be resident). The next
    /// admission allocates it again.
    pub fn release(&mut self) {
        debug_assert!(self.is_empty());
        self.running.clear();
        self.cache = None;
    }

    /// Allocates the KV cache's slots unless it holds them (the first admission after `new` or `release` does).
    pub fn allocate_cache(&mut self) -> candle_core::Result<()> {
        if self.cache.is_none() {
            self.cache = Some(KvCache::new(&self.model.cfg, self.slots(), self.model.device())?);
        }
        Ok(())
    }

    /// Bytes of KV cache held on the device now (0 until the first admission and after `release`).
    pub fn cache_bytes(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| KvCache::bytes(&self.model.cfg, c.slots()))
    }

    /// Slots the KV cache has: one per sequence the engine may run at once (never more than its token budget).
    fn slots(&self) -> usize {
        self.max_seqs.min(self.kv_capacity_tokens.min(usize::MAX as u64) as usize).max(1)
    }

    /// Gives `slot` back; the sequence the cache moves into it (its top slot's) is told its new slot.
    fn free_slot(&mut self, slot: usize) -> candle_core::Result<()> {
        let cache = self.cache.as_mut().expect("a running sequence implies a cache");
        if let Some(moved) = cache.free(slot)? {
            let r = self.running.iter_mut().find(|r| r.slot == moved).expect("the top slot has an owner");
            r.slot = slot;
        }
        Ok(())
    }

    fn used(&self) -> u64 {
        self.running.iter().map(|r| context_len(&r.seq)).sum()
    }

    fn output(seq: SeqInput, reported: usize, admitted_at_ns: Option<u64>, stopped_at_eos: bool) -> SeqOutput {
        SeqOutput {
            new_tokens: (seq.response.len() - reported) as u32,
            traj: seq.traj,
            response: seq.response,
            logprobs: seq.logprobs,
            admitted_at_ns,
            stopped_at_eos,
        }
    }

    /// Takes a trajectory out (pause); `None` if it is not here.
    pub fn remove(&mut self, traj: TrajId) -> candle_core::Result<Option<SeqOutput>> {
        if let Some(i) = self.waiting.iter().position(|w| w.seq.traj == traj) {
            let w = self.waiting.remove(i).expect("found");
            return Ok(Some(Self::output(w.seq, w.reported, w.admitted_at_ns, false)));
        }
        let Some(i) = self.running.iter().position(|r| r.seq.traj == traj) else { return Ok(None) };
        let r = self.running.remove(i);
        self.free_slot(r.slot)?;
        Ok(Some(Self::output(r.seq, r.reported, Some(r.admitted_at_ns), false)))
    }

    /// One boundary and one decode iteration: preempt while the cache cannot grow by one token per sequence
    /// (newest first), admit waiting sequences FIFO while they fit, prefill them, decode one token for every
    /// running sequence and return the ones that finished. `now_ns` reads the run's clock.
    pub fn step(&mut self, now_ns: &dyn Fn() -> u64) -> candle_core::Result<Vec<SeqOutput>> {
        let t0 = std::time::Instant::now();
        let out = self.step_inner(now_ns);
        self.stats.step_ns += t0.elapsed().as_nanos() as u64;
        out
    }

    fn step_inner(&mut self, now_ns: &dyn Fn() -> u64) -> candle_core::Result<Vec<SeqOutput>> {
        while !self.running.is_empty()
            && self.kv_capacity_tokens.saturating_sub(self.used()) < self.running.len() as u64
        {
            let r = self.running.pop().expect("non-empty");
            self.free_slot(r.slot)?;
            self.stats.preemptions += 1;
            self.waiting.push_front(Waiting {
                seq: r.seq,
                reported: r.reported,
                admitted_at_ns: Some(r.admitted_at_ns),
            });
        }
        while let Some(front) = self.waiting.front() {
            let batch = self.running.len() as u64 + 1;
            if batch > self.max_seqs as u64 || self.used() + context_len(&front.seq) + batch > self.kv_capacity_tokens {
                break;
            }
            let w = self.waiting.pop_front().expect("front exists");
            let mut context = w.seq.prompt.clone();
            context.extend_from_slice(&w.seq.response);
            let cached_len = context.len() - 1; // the last context token is read by the next decode iteration
            self.allocate_cache()?;
            let cache = self.cache.as_mut().expect("allocated above");
            let sibling = if self.prefix_caching && cached_len <= w.seq.prompt.len() {
                self.running.iter().find(|r| r.seq.group == w.seq.group && cache.len(r.slot) >= cached_len)
            } else {
                None
            };
            let slot = cache.claim()?;
            match sibling {
                Some(s) => cache.copy_prefix(s.slot, slot, cached_len)?,
                None => {
                    self.stats.prefill_tokens += cached_len as u64;
                    self.model.prefill(cache, slot, &context[..cached_len])?
                }
            }
            let at = w.admitted_at_ns.unwrap_or_else(now_ns);
            self.running.push(Running { seq: w.seq, slot, reported: w.reported, admitted_at_ns: at });
        }
        if self.running.is_empty() {
            if let Some(w) = self.waiting.front() {
                candle_core::bail!(
                    "trajectory {} needs {} tokens of KV cache but the engine holds {}",
                    w.seq.traj.0,
                    context_len(&w.seq) + 1,
                    self.kv_capacity_tokens
                );
            }
            return Ok(Vec::new());
        }
        // The decode runs in slot order (slots 0..n are the running sequences); sampling stays in running order.
        let mut last = vec![0u32; self.running.len()];
        for r in &self.running {
            last[r.slot] = *r.seq.response.last().unwrap_or(r.seq.prompt.last().expect("prompt ≥ 1 token"));
        }
        let cache = self.cache.as_mut().expect("running sequences hold slots");
        let logits = self.model.decode(&last, cache)?;
        self.stats.decode_iterations += 1;
        self.stats.decode_batch_sum += last.len() as u64;
        self.stats.last_batch = last.len() as u64;
        // Each sequence read its cache plus the token it fed: the simulator's context sum.
        self.stats.last_context = cache.lens().iter().map(|&l| l as u64).sum();
        let rows: Vec<Vec<f32>> = logits.to_vec2()?;
        let mut done = Vec::new();
        let mut freed = Vec::new();
        let mut keep = Vec::with_capacity(self.running.len());
        for mut r in std::mem::take(&mut self.running) {
            let (token, logprob) = sample(&rows[r.slot], &mut self.rng);
            r.seq.response.push(token);
            r.seq.logprobs.push(logprob);
            let at_eos = self.lengths == ExecLengths::Natural && token == self.eos;
            if r.seq.response.len() as u32 >= r.seq.target || at_eos {
                let stopped = at_eos && (r.seq.response.len() as u32) < r.seq.target;
                freed.push(r.slot);
                done.push(Self::output(r.seq, r.reported, Some(r.admitted_at_ns), stopped));
            } else {
                keep.push(r);
            }
        }
        self.running = keep;
        // Highest first: the top slot that moves into a freed one is then always a sequence that stays.
        freed.sort_unstable_by(|a, b| b.cmp(a));
        for slot in freed {
            self.free_slot(slot)?;
        }
        Ok(done)
    }
}

/// Samples a token from logits at temperature 1; returns it with its log-probability.
fn sample(logits: &[f32], rng: &mut StreamRng) -> (u32, f32) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| ((l - max) as f64).exp()).collect();
    let total: f64 = exps.iter().sum();
    let mut u: f64 = rng.random::<f64>() * total;
    let mut pick = exps.len() - 1;
    for (i, e) in exps.iter().enumerate() {
        if u < *e {
            pick = i;
            break;
        }
        u -= e;
    }
    (pick as u32, (exps[pick] / total).ln() as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GptConfig;
    use candle_core::Device;
    use rlsim_sim::rng::RngStreams;

    fn engine(kv: u64, max_seqs: u32) -> RealEngine {
        let cfg = GptConfig { vocab: 16, d_model: 32, layers: 1, heads: 2, ffn: 128, context: 64 };
        let s = RngStreams::new(5);
        let m = Gpt::new(cfg, &mut s.stream("init"), &Device::Cpu).unwrap();
        RealEngine::new(m, max_seqs, kv, true, ExecLengths::Trace, 0, s.stream("sample"))
    }

    fn input(id: u64, group: u64, target: u32) -> SeqInput {
        SeqInput { traj: TrajId(id), group, prompt: vec![3, 5, 7, 9], response: vec![], logprobs: vec![], target }
    }

    fn run_all(e: &mut RealEngine) -> Vec<SeqOutput> {
        let mut out = Vec::new();
        for _ in 0..10_000 {
            if e.is_empty() {
                break;
            }
            out.extend(e.step(&|| 0).unwrap());
        }
        out
    }

    #[test]
    fn every_sequence_reaches_its_target_with_a_logprob_per_token() {
        let mut e = engine(1000, 2);
        for (i, t) in [5u32, 1, 9, 3].iter().enumerate() {
            e.enqueue(input(i as u64, i as u64 / 2, *t));
        }
        let out = run_all(&mut e);
        assert_eq!(out.len(), 4);
        for o in &out {
            let target = [5u32, 1, 9, 3][o.traj.0 as usize];
            assert_eq!(o.response.len() as u32, target);
            assert_eq!(o.logprobs.len(), o.response.len());
            assert_eq!(o.new_tokens, target);
            assert!(o.logprobs.iter().all(|l| *l <= 0.0));
        }
        // The sibling of a running sequence reuses its prompt cache: 2 groups → 2 prompt prefills of 3 tokens.
        assert_eq!(e.stats.prefill_tokens, 6);
    }

    /// The running sequences own slots 0..n, each holding its context but the token the next decode feeds.
    fn check_slots(e: &RealEngine) {
        let mut slots: Vec<usize> = e.running.iter().map(|r| r.slot).collect();
        slots.sort_unstable();
        assert_eq!(slots, (0..e.running.len()).collect::<Vec<_>>());
        let occupied = e.cache.as_ref().map_or(0, |c| c.occupied());
        assert_eq!(occupied, e.running.len());
        for r in &e.running {
            assert_eq!(e.cache.as_ref().unwrap().len(r.slot) as u64, context_len(&r.seq) - 1);
        }
    }

    #[test]
    fn slots_are_returned_when_sequences_leave_and_release_frees_the_cache() {
        let mut e = engine(1000, 3);
        assert_eq!(e.cache_bytes(), 0, "nothing allocated before the first admission");
        for i in 0..6u64 {
            e.enqueue(input(i, i, [7u32, 2, 5, 9, 1, 4][i as usize]));
        }
        let (mut finished, mut paused) = (0, false);
        while !e.is_empty() {
            finished += e.step(&|| 0).unwrap().len();
            check_slots(&e);
            if finished >= 2 && !paused {
                paused = true;
                // A pause takes a running sequence out mid-flight: its slot is returned too.
                let t = e.running[0].seq.traj;
                let out = e.remove(t).unwrap().unwrap();
                check_slots(&e);
                let mut back = input(t.0, t.0, 20);
                back.response = out.response;
                back.logprobs = out.logprobs;
                e.enqueue(back);
            }
        }
        assert_eq!(e.cache.as_ref().unwrap().occupied(), 0);
        assert_eq!(e.cache_bytes(), KvCache::bytes(&e.model.cfg, 3));
        e.release();
        assert_eq!(e.cache_bytes(), 0, "release drops the slots");
        e.enqueue(input(9, 9, 3));
        assert_eq!(run_all(&mut e).len(), 1);
        assert_eq!(e.cache_bytes(), KvCache::bytes(&e.model.cfg, 3), "allocated again on admission");
    }

    #[test]
    fn a_tight_cache_preempts_and_pause_resume_keeps_tokens() {
        let mut e = engine(4 + 20 + 2, 4);
        e.enqueue(input(0, 0, 20));
        e.enqueue(input(1, 1, 20));
        let mut out = Vec::new();
        while !e.is_empty() {
            out.extend(e.step(&|| 0).unwrap());
            check_slots(&e);
        }
        assert_eq!(out.len(), 2);
        assert!(e.stats.preemptions > 0);
        assert!(out.iter().all(|o| o.response.len() == 20 && o.new_tokens == 20));

        let mut e = engine(1000, 4);
        e.enqueue(input(7, 0, 30));
        for _ in 0..5 {
            assert!(e.step(&|| 0).unwrap().is_empty());
        }
        let paused = e.remove(TrajId(7)).unwrap().unwrap();
        assert_eq!((paused.response.len(), paused.new_tokens), (5, 5));
        let mut resumed = input(7, 0, 30);
        resumed.response = paused.response.clone();
        resumed.logprobs = paused.logprobs.clone();
        e.enqueue(resumed);
        let out = run_all(&mut e);
        assert_eq!(out[0].response.len(), 30);
        assert_eq!(out[0].response[..5], paused.response[..]);
        assert_eq!(out[0].new_tokens, 25);
    }
}
