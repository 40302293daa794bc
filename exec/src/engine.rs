//! A real continuous-batching rollout engine over the candle model: sequences join and leave between decode
//! iterations, a KV-cache budget in tokens, recompute preemption, prefix reuse within a prompt group, and
//! pause/resume. Its batching rules are the simulator's (`rlsim_sim::rollout_engine`), so the two agree on who runs
//! when; only the durations are measured instead of modelled.

use crate::model::{Gpt, SeqCache};
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
    cache: SeqCache,
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

    /// Drops every KV cache (a colocated switch releases them; no sequence may be resident).
    pub fn release(&mut self) {
        debug_assert!(self.is_empty());
        self.running.clear();
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
    pub fn remove(&mut self, traj: TrajId) -> Option<SeqOutput> {
        if let Some(i) = self.waiting.iter().position(|w| w.seq.traj == traj) {
            let w = self.waiting.remove(i).expect("found");
            return Some(Self::output(w.seq, w.reported, w.admitted_at_ns, false));
        }
        let i = self.running.iter().position(|r| r.seq.traj == traj)?;
        let r = self.running.remove(i);
        Some(Self::output(r.seq, r.reported, Some(r.admitted_at_ns), false))
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
            let sibling = if self.prefix_caching && cached_len <= w.seq.prompt.len() {
                self.running.iter().find(|r| r.seq.group == w.seq.group && r.cache.len >= cached_len)
            } else {
                None
            };
            let cache = match sibling {
                Some(s) => s.cache.prefix(cached_len)?,
                None => {
                    self.stats.prefill_tokens += cached_len as u64;
                    self.model.prefill(&context[..cached_len])?
                }
            };
            let at = w.admitted_at_ns.unwrap_or_else(now_ns);
            self.running.push(Running { seq: w.seq, cache, reported: w.reported, admitted_at_ns: at });
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
        let last: Vec<u32> = self
            .running
            .iter()
            .map(|r| *r.seq.response.last().unwrap_or(r.seq.prompt.last().expect("prompt ≥ 1 token")))
            .collect();
        let mut caches: Vec<SeqCache> = self
            .running
            .iter_mut()
            .map(|r| std::mem::replace(&mut r.cache, SeqCache { k: vec![], v: vec![], len: 0 }))
            .collect();
        let logits = self.model.decode(&last, &mut caches)?;
        self.stats.decode_iterations += 1;
        self.stats.decode_batch_sum += last.len() as u64;
        self.stats.last_batch = last.len() as u64;
        // Each sequence read its cache plus the token it fed: the simulator's context sum.
        self.stats.last_context = caches.iter().map(|c| c.len as u64).sum();
        let rows: Vec<Vec<f32>> = logits.to_vec2()?;
        let mut done = Vec::new();
        let mut keep = Vec::with_capacity(self.running.len());
        for ((mut r, cache), row) in std::mem::take(&mut self.running).into_iter().zip(caches).zip(rows) {
            r.cache = cache;
            let (token, logprob) = sample(&row, &mut self.rng);
            r.seq.response.push(token);
            r.seq.logprobs.push(logprob);
            let at_eos = self.lengths == ExecLengths::Natural && token == self.eos;
            if r.seq.response.len() as u32 >= r.seq.target || at_eos {
                let stopped = at_eos && (r.seq.response.len() as u32) < r.seq.target;
                done.push(Self::output(r.seq, r.reported, Some(r.admitted_at_ns), stopped));
            } else {
                keep.push(r);
            }
        }
        self.running = keep;
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
        let cfg = GptConfig { vocab: 16, d_model: 32, layers: 1, heads: 2, context: 64 };
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

    #[test]
    fn a_tight_cache_preempts_and_pause_resume_keeps_tokens() {
        let mut e = engine(4 + 20 + 2, 4);
        e.enqueue(input(0, 0, 20));
        e.enqueue(input(1, 1, 20));
        let out = run_all(&mut e);
        assert_eq!(out.len(), 2);
        assert!(e.stats.preemptions > 0);
        assert!(out.iter().all(|o| o.response.len() == 20 && o.new_tokens == 20));

        let mut e = engine(1000, 4);
        e.enqueue(input(7, 0, 30));
        for _ in 0..5 {
            assert!(e.step(&|| 0).unwrap().is_empty());
        }
        let paused = e.remove(TrajId(7)).unwrap();
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
