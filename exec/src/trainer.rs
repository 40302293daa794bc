//! GRPO on the real model: group-normalised advantages, a clipped importance ratio against the old policy's
//! log-probs, an optional KL penalty to a frozen reference, backward and AdamW.

use crate::model::Gpt;
use candle_core::{Tensor, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rlsim_sim::scenario::{ExecSpec, LogProbPass};
use std::collections::BTreeMap;

/// One trajectory to train on.
/// Whether the step in progress has been killed (an injected failure of its worker).
pub trait AbortFlag {
    fn is_set(&self) -> bool;
}

/// A step nobody can kill.
pub struct NeverAbort;

impl AbortFlag for NeverAbort {
    fn is_set(&self) -> bool {
        false
    }
}

#[derive(Clone, Debug)]
pub struct TrainSample {
    pub group: u64,
    pub prompt: Vec<u32>,
    pub response: Vec<u32>,
    /// Log-probs the rollout engine sampled with (the behaviour policy).
    pub behaviour_logprobs: Vec<f32>,
    pub reward: f32,
}

/// What a train step measured: (start, end) in ns since the run started, per log-prob pass and for the update.
#[derive(Clone, Debug, Default)]
pub struct TrainTimings {
    pub logprob_ns: Vec<(u64, u64)>,
    pub update_ns: (u64, u64),
    pub loss: f32,
    pub mean_reward: f32,
    pub tokens: u64,
}

pub struct Trainer {
    pub model: Gpt,
    reference: Option<Gpt>,
    opt: AdamW,
    spec: ExecSpec,
    passes: Vec<LogProbPass>,
    /// Most padded tokens per micro-batch (`training.micro_batch_tokens`).
    micro_batch_tokens: usize,
}

/// Padded batch tensors: tokens [B, T], targets [B, T-1], response mask [B, T-1].
struct Batch {
    tokens: Tensor,
    targets: Tensor,
    mask: Tensor,
    behaviour: Tensor,
    advantages: Tensor,
    tokens_total: u64,
}

impl Trainer {
    pub fn new(
        model: Gpt,
        reference: Option<Gpt>,
        spec: ExecSpec,
        passes: Vec<LogProbPass>,
        micro_batch_tokens: u32,
    ) -> candle_core::Result<Self> {
        let opt = AdamW::new(
            model.vars.clone(),
            ParamsAdamW { lr: spec.learning_rate, weight_decay: 0.0, ..Default::default() },
        )?;
        Ok(Trainer { model, reference, opt, spec, passes, micro_batch_tokens: micro_batch_tokens as usize })
    }

    /// Splits a batch into micro-batches of similar lengths (sorted, so padding stays small), each holding at
    /// most `micro_batch_tokens` padded tokens (at least one sequence).
    fn micro_batches(&self, samples: &[TrainSample]) -> Vec<Vec<usize>> {
        let len = |i: &usize| samples[*i].prompt.len() + samples[*i].response.len();
        let mut sorted: Vec<usize> = (0..samples.len()).collect();
        sorted.sort_by_key(|i| (len(i), *i));
        let mut out: Vec<Vec<usize>> = Vec::new();
        let mut cur: Vec<usize> = Vec::new();
        for s in sorted {
            let len = len(&s);
            if !cur.is_empty() && (cur.len() + 1) * len > self.micro_batch_tokens {
                out.push(std::mem::take(&mut cur));
            }
            cur.push(s);
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    }

    /// Padded tensors for the samples `idx` of `all`.
    fn batch(&self, all: &[TrainSample], idx: &[usize], advantages: &[f32]) -> candle_core::Result<Batch> {
        let samples: Vec<&TrainSample> = idx.iter().map(|&i| &all[i]).collect();
        let dev = self.model.device();
        let t = samples.iter().map(|s| s.prompt.len() + s.response.len()).max().unwrap_or(2).max(2);
        let b = samples.len();
        let (mut tokens, mut targets, mut mask, mut behaviour) =
            (vec![0u32; b * t], vec![0u32; b * (t - 1)], vec![0f32; b * (t - 1)], vec![0f32; b * (t - 1)]);
        let mut tokens_total = 0;
        for (i, s) in samples.iter().enumerate() {
            let seq: Vec<u32> = s.prompt.iter().chain(&s.response).copied().collect();
            tokens_total += seq.len() as u64;
            tokens[i * t..i * t + seq.len()].copy_from_slice(&seq);
            for p in 0..seq.len() - 1 {
                targets[i * (t - 1) + p] = seq[p + 1];
            }
            // Position p predicts token p+1: the response tokens are predicted from prompt_len-1 on.
            for (j, lp) in s.behaviour_logprobs.iter().enumerate() {
                let p = s.prompt.len() - 1 + j;
                mask[i * (t - 1) + p] = 1.0;
                behaviour[i * (t - 1) + p] = *lp;
            }
        }
        let adv: Vec<f32> = idx.iter().map(|&i| advantages[i]).collect();
        Ok(Batch {
            tokens: Tensor::from_vec(tokens, (b, t), dev)?,
            targets: Tensor::from_vec(targets, (b, t - 1), dev)?,
            mask: Tensor::from_vec(mask, (b, t - 1), dev)?,
            behaviour: Tensor::from_vec(behaviour, (b, t - 1), dev)?,
            advantages: Tensor::from_vec(adv, (b, 1), dev)?,
            tokens_total,
        })
    }

    /// Log-probs [B, T-1] the model assigns to each next token.
    fn token_logprobs(model: &Gpt, batch: &Batch) -> candle_core::Result<Tensor> {
        let (logits, _) = model.forward(&batch.tokens, false)?;
        let t = logits.dim(1)?;
        let lp = candle_nn::ops::log_softmax(&logits.narrow(1, 0, t - 1)?, D::Minus1)?;
        lp.gather(&batch.targets.unsqueeze(2)?, 2)?.squeeze(2)
    }

    /// Group-normalised advantages (GRPO): (r − mean) / (std + ε) within each prompt group.
    fn advantages(samples: &[TrainSample]) -> Vec<f32> {
        let mut groups: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
        for s in samples {
            groups.entry(s.group).or_default().push(s.reward);
        }
        samples
            .iter()
            .map(|s| {
                let g = &groups[&s.group];
                let mean = g.iter().sum::<f32>() / g.len() as f32;
                let std = (g.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / g.len() as f32).sqrt();
                (s.reward - mean) / (std + 1e-4)
            })
            .collect()
    }

    /// One GRPO step over micro-batches (one optimizer step); `now_ns` reads the run's clock for the timings.
    /// One train step. `abort` is checked between micro-batches and before the optimizer step: a worker killed
    /// mid-step returns `Ok(Err(partial timings))` with the weights and optimizer state untouched, so the restarted
    /// step starts from the same state (as a restart from the last checkpoint would).
    pub fn step(
        &mut self,
        samples: &[TrainSample],
        now_ns: &dyn Fn() -> u64,
        abort: &dyn AbortFlag,
    ) -> candle_core::Result<Result<TrainTimings, TrainTimings>> {
        let aborted = || abort.is_set();
        let advantages = Self::advantages(samples);
        let batches: Vec<Batch> = self
            .micro_batches(samples)
            .iter()
            .map(|mb| self.batch(samples, mb, &advantages))
            .collect::<candle_core::Result<_>>()?;
        let tokens: u64 = batches.iter().map(|b| b.tokens_total).sum();
        let mut timings = TrainTimings { tokens, ..Default::default() };
        let mut old: Vec<Tensor> = batches.iter().map(|b| b.behaviour.clone()).collect();
        let mut reference: Vec<Option<Tensor>> = vec![None; batches.len()];
        for pass in self.passes.clone() {
            let start = now_ns();
            for (i, b) in batches.iter().enumerate() {
                if aborted() {
                    timings.logprob_ns.push((start, now_ns()));
                    return Ok(Err(timings));
                }
                match pass {
                    LogProbPass::Old => old[i] = Self::token_logprobs(&self.model, b)?.detach(),
                    LogProbPass::Reference => {
                        let m = self.reference.as_ref().unwrap_or(&self.model);
                        let r = Self::token_logprobs(m, b)?.detach();
                        // Force the computation before taking the time (lazy devices).
                        let _ = r.sum_all()?.to_scalar::<f32>()?;
                        reference[i] = Some(r);
                    }
                }
            }
            let _ = old.last().map(|t| t.sum_all().and_then(|x| x.to_scalar::<f32>())).transpose()?;
            timings.logprob_ns.push((start, now_ns()));
        }
        let start = now_ns();
        let denom = batches
            .iter()
            .map(|b| b.mask.sum_all().and_then(|x| x.to_scalar::<f32>()))
            .sum::<candle_core::Result<f32>>()?
            .max(1.0) as f64;
        let eps = self.spec.clip_ratio;
        let mut total: Option<Tensor> = None;
        for (i, b) in batches.iter().enumerate() {
            if aborted() {
                timings.update_ns = (start, now_ns());
                return Ok(Err(timings));
            }
            let new = Self::token_logprobs(&self.model, b)?;
            let ratio = (&new - &old[i])?.exp()?;
            let adv = b.advantages.broadcast_as(ratio.shape())?;
            let surrogate = (&ratio * &adv)?.minimum(&(ratio.clamp(1.0 - eps, 1.0 + eps)? * &adv)?)?;
            let mut loss = ((surrogate * &b.mask)?.sum_all()? / -denom)?;
            if let (Some(r), true) = (&reference[i], self.spec.kl_coef > 0.0) {
                // k3 estimator of KL(new ‖ ref): exp(ref − new) − (ref − new) − 1.
                let d = (r - &new)?;
                let kl = ((d.exp()? - &d)? - 1.0)?;
                loss = (loss + ((kl * &b.mask)?.sum_all()? * (self.spec.kl_coef / denom))?)?;
            }
            total = Some(match total {
                None => loss,
                Some(t) => (t + loss)?,
            });
        }
        let loss = total.ok_or_else(|| candle_core::Error::Msg("empty train batch".into()))?;
        if aborted() {
            timings.update_ns = (start, now_ns());
            return Ok(Err(timings));
        }
        self.opt.backward_step(&loss)?;
        timings.loss = loss.to_scalar::<f32>()?;
        timings.update_ns = (start, now_ns());
        timings.mean_reward = samples.iter().map(|s| s.reward).sum::<f32>() / samples.len().max(1) as f32;
        Ok(Ok(timings))
    }
}
