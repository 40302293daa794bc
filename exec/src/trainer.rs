//! GRPO on the real model, data-parallel: group-normalised advantages, mini-batches (one optimizer step each),
//! backward per micro-batch, a gradient all-reduce across the train group's ranks, decoupled PPO (a clipped ratio
//! against the proximal policy, weighted by proximal / behaviour), an optional KL penalty to a frozen reference,
//! and Adam.
//!
//! Decoupled PPO as AReaL uses it (Fu et al. 2025, "AReaL", eq. 5): with the `old` log-prob pass the trainer
//! recomputes the proximal policy π_prox on its current weights; the clipped ratio is π_θ / π_prox and each token is
//! weighted by π_prox / π_behav, the behaviour policy being the weights the rollout engine sampled with. Stale async
//! samples are thus corrected, and tokens whose weight exceeds `BEHAVIOUR_WEIGHT_CAP` are masked out. Without the
//! `old` pass the ratio is taken against the behaviour log-probs directly (standard PPO on off-policy data).

use crate::collective::{GradReduce, SingleRank};
use crate::model::Gpt;
use candle_core::{Tensor, Var, D};
use rlsim_sim::scenario::{ExecSpec, LogProbPass};
use std::collections::BTreeMap;

/// Tokens whose importance weight π_prox / π_behav exceeds this are left out of the loss (AReaL's
/// `behav_imp_weight_cap`, which its example configurations set to 5).
pub const BEHAVIOUR_WEIGHT_CAP: f64 = 5.0;

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

/// One trajectory to train on.
#[derive(Clone, Debug)]
pub struct TrainSample {
    pub group: u64,
    pub prompt: Vec<u32>,
    pub response: Vec<u32>,
    /// Log-probs the rollout engine sampled with (the behaviour policy).
    pub behaviour_logprobs: Vec<f32>,
    pub reward: f32,
}

/// What a train step measured on this rank: (start, end) in ns since the run started, per log-prob pass and for
/// the update, and what the loss saw (summed over every rank of the group).
#[derive(Clone, Debug, Default)]
pub struct TrainTimings {
    pub logprob_ns: Vec<(u64, u64)>,
    pub update_ns: (u64, u64),
    /// Mean over the step's optimizer steps of the mini-batch loss.
    pub loss: f32,
    pub mean_reward: f32,
    /// Tokens (prompt + response) this rank computed on.
    pub tokens: u64,
    /// Optimizer steps taken (the scenario's `training.mini_batches`, at most one per sample).
    pub optimizer_steps: u32,
    pub stats: RatioStats,
}

/// The importance ratios the update saw, over every response token of the step (all ranks).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RatioStats {
    /// Share of tokens whose ratio π_θ / π_prox left [1 − ε, 1 + ε] (the clip acted).
    pub clip_fraction: f32,
    /// Mean |π_θ / π_prox − 1|.
    pub mean_abs_ratio_dev: f32,
    /// Mean |π_prox / π_behav − 1|: how far the samples' behaviour policy is from the trainer's (0 when fresh).
    pub mean_abs_behaviour_weight_dev: f32,
    /// Share of tokens left out because π_prox / π_behav exceeded `BEHAVIOUR_WEIGHT_CAP`.
    pub capped_fraction: f32,
}

/// Entries of the statistics tensor appended to each rank's gradients, so one reduction sums both.
const STATS: usize = 6;

/// Adam with its state as plain tensors, so a killed step can put it back (candle's AdamW keeps it private).
/// Same update as candle-nn's AdamW with no weight decay.
#[derive(Clone)]
struct Adam {
    lr: f64,
    steps: i32,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    fn new(vars: &[Var], lr: f64) -> candle_core::Result<Adam> {
        let zeros = || vars.iter().map(|v| v.as_tensor().zeros_like()).collect::<candle_core::Result<Vec<_>>>();
        Ok(Adam { lr, steps: 0, m: zeros()?, v: zeros()? })
    }

    fn step(&mut self, vars: &[Var], grads: &[Tensor]) -> candle_core::Result<()> {
        self.steps += 1;
        let scale_m = 1.0 / (1.0 - Self::BETA1.powi(self.steps));
        let scale_v = 1.0 / (1.0 - Self::BETA2.powi(self.steps));
        for (i, (var, g)) in vars.iter().zip(grads).enumerate() {
            let g = g.to_device(var.device())?;
            let m = ((&self.m[i] * Self::BETA1)? + (&g * (1.0 - Self::BETA1))?)?;
            let v = ((&self.v[i] * Self::BETA2)? + (g.sqr()? * (1.0 - Self::BETA2))?)?;
            let adjusted = ((&m * scale_m)? / ((&v * scale_v)?.sqrt()? + Self::EPS)?)?;
            var.set(&(var.as_tensor() - (adjusted * self.lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }
}

/// The training state a time-sliced worker moves to host memory while it holds a rollout engine
/// (`framework.offload`): the weights, the reference model's weights and Adam's moments. The device keeps none of it
/// meanwhile (its variables hold empty placeholders until [`Trainer::onload`]).
struct Parked {
    weights: Vec<Tensor>,
    reference: Option<Vec<Tensor>>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

pub struct Trainer {
    pub model: Gpt,
    reference: Option<Gpt>,
    opt: Adam,
    /// The state while offloaded (see [`Trainer::offload`]).
    parked: Option<Parked>,
    spec: ExecSpec,
    passes: Vec<LogProbPass>,
    /// Most padded tokens per micro-batch (`training.micro_batch_tokens`).
    micro_batch_tokens: usize,
    /// Optimizer steps per train step (`training.mini_batches`).
    mini_batches: usize,
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

/// Which samples each optimizer step of a train step uses, and which of its micro-batches this rank runs.
#[derive(Debug, PartialEq)]
struct Plan {
    /// Per mini-batch: the response tokens of all of its samples (the loss's denominator on every rank) and this
    /// rank's micro-batches (sample indices).
    minis: Vec<(f64, Vec<Vec<usize>>)>,
}

impl Trainer {
    pub fn new(
        model: Gpt,
        reference: Option<Gpt>,
        spec: ExecSpec,
        passes: Vec<LogProbPass>,
        micro_batch_tokens: u32,
        mini_batches: u32,
    ) -> candle_core::Result<Self> {
        let opt = Adam::new(&model.vars, spec.learning_rate)?;
        Ok(Trainer {
            model,
            reference,
            opt,
            parked: None,
            spec,
            passes,
            micro_batch_tokens: micro_batch_tokens as usize,
            mini_batches: mini_batches.max(1) as usize,
        })
    }

    /// Whether the training state is on the host (see [`Trainer::offload`]).
    pub fn is_offloaded(&self) -> bool {
        self.parked.is_some()
    }

    /// Moves the training state (weights, reference weights, Adam's moments) to host memory and frees it on the
    /// device, as a colocated framework does when the worker turns into a rollout engine. Real copies on every
    /// device (a CPU tensor is copied too, so the switch costs what moving the state costs).
    pub fn offload(&mut self) -> candle_core::Result<()> {
        if self.parked.is_some() {
            return Ok(());
        }
        let device = self.model.device().clone();
        let to_host = |t: &Tensor| if device.is_cpu() { t.copy() } else { t.to_device(&candle_core::Device::Cpu) };
        let vars_to_host =
            |vars: &[Var]| vars.iter().map(|v| to_host(v.as_tensor())).collect::<candle_core::Result<Vec<_>>>();
        let parked = Parked {
            weights: vars_to_host(&self.model.vars)?,
            reference: self.reference.as_ref().map(|r| vars_to_host(&r.vars)).transpose()?,
            m: self.opt.m.iter().map(to_host).collect::<candle_core::Result<_>>()?,
            v: self.opt.v.iter().map(to_host).collect::<candle_core::Result<_>>()?,
        };
        let empty = Tensor::zeros(0, candle_core::DType::F32, &device)?;
        let placeholders = |n: usize| (0..n).map(|_| Var::from_tensor(&empty)).collect::<candle_core::Result<Vec<_>>>();
        self.model.vars = placeholders(self.model.vars.len())?;
        if let Some(r) = self.reference.as_mut() {
            r.vars = placeholders(r.vars.len())?;
        }
        self.opt.m = vec![empty.clone(); self.opt.m.len()];
        self.opt.v = vec![empty; self.opt.v.len()];
        self.parked = Some(parked);
        Ok(())
    }

    /// Brings the offloaded training state back onto the device (the worker turns back into a trainer).
    pub fn onload(&mut self) -> candle_core::Result<()> {
        let Some(parked) = self.parked.take() else { return Ok(()) };
        let device = self.model.device().clone();
        // `Var::from_tensor` copies into the variable's own storage, so one device buffer per tensor; the moments
        // are copied once (a real copy on the CPU too, as the offload made one).
        let to_vars = |host: &[Tensor]| {
            host.iter().map(|t| Var::from_tensor(&t.to_device(&device)?)).collect::<candle_core::Result<Vec<_>>>()
        };
        self.model.vars = to_vars(&parked.weights)?;
        if let (Some(r), Some(host)) = (self.reference.as_mut(), parked.reference.as_deref()) {
            r.vars = to_vars(host)?;
        }
        let to_device = |host: &[Tensor]| {
            host.iter()
                .map(|t| if device.is_cpu() { t.copy() } else { t.to_device(&device) })
                .collect::<candle_core::Result<Vec<_>>>()
        };
        self.opt.m = to_device(&parked.m)?;
        self.opt.v = to_device(&parked.v)?;
        Ok(())
    }

    /// Deep copies of the current weights, wherever they are (what a weight sync sends).
    pub fn weights(&self) -> candle_core::Result<Vec<Tensor>> {
        match &self.parked {
            Some(p) => p.weights.iter().map(Tensor::copy).collect(),
            None => self.model.snapshot(),
        }
    }

    /// Splits samples `idx` into micro-batches of similar lengths (sorted, so padding stays small), each holding at
    /// most `micro_batch_tokens` padded tokens (at least one sequence): the function the analytic model prices a
    /// padding framework with.
    fn micro_batches(&self, samples: &[TrainSample], idx: &[usize]) -> Vec<Vec<usize>> {
        let lengths: Vec<u64> = samples.iter().map(|s| (s.prompt.len() + s.response.len()) as u64).collect();
        rlsim_sim::costs::train::padded_micro_batches(&lengths, idx, self.micro_batch_tokens as u64)
    }

    /// The step's plan as verl runs it (and the analytic model prices it, `rlsim_sim::costs::train`): whole samples
    /// balanced over the ranks by length, equal counts; each rank walks its share in `mini_batches` consecutive
    /// slices, one optimizer step each, all ranks in lockstep. Every rank computes the same plan.
    fn plan(&self, samples: &[TrainSample], rank: usize, ranks: usize) -> Plan {
        use rlsim_sim::costs::train::{balanced_ranks, mini_batch_slice};
        let lengths: Vec<u64> = samples.iter().map(|s| (s.prompt.len() + s.response.len()) as u64).collect();
        let rank_of = balanced_ranks(&lengths, ranks);
        let mut shares: Vec<Vec<usize>> = vec![Vec::new(); ranks.max(1)];
        for (i, &r) in rank_of.iter().enumerate() {
            shares[r].push(i);
        }
        let per_rank = samples.len().div_ceil(ranks.max(1));
        let m = self.mini_batches.min(per_rank).max(1);
        let minis = (0..m)
            .map(|k| {
                let denom = shares
                    .iter()
                    .flat_map(|share| &share[mini_batch_slice(share.len(), k, m)])
                    .map(|&i| samples[i].behaviour_logprobs.len())
                    .sum::<usize>()
                    .max(1) as f64;
                let mine = &shares[rank][mini_batch_slice(shares[rank].len(), k, m)];
                (denom, self.micro_batches(samples, mine))
            })
            .collect();
        Plan { minis }
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

    /// Log-probs of each response token of `sample` under `model` (what an engine with these weights would record).
    pub fn response_logprobs(model: &Gpt, sample: &TrainSample) -> candle_core::Result<Vec<f32>> {
        let one = TrainSample { behaviour_logprobs: vec![0.0; sample.response.len()], ..sample.clone() };
        let seq: Vec<u32> = one.prompt.iter().chain(&one.response).copied().collect();
        let t = seq.len().max(2);
        let tokens = Tensor::from_vec(seq.clone(), (1, seq.len()), model.device())?;
        let targets = Tensor::from_vec(seq[1..].to_vec(), (1, t - 1), model.device())?;
        let (logits, _) = model.forward(&tokens, false)?;
        let lp = candle_nn::ops::log_softmax(&logits.narrow(1, 0, t - 1)?, D::Minus1)?;
        let all = lp.gather(&targets.unsqueeze(2)?, 2)?.squeeze(2)?.squeeze(0)?.to_vec1::<f32>()?;
        Ok(all[one.prompt.len() - 1..].to_vec())
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

    /// A train step on one rank, alone (profiling, tests).
    pub fn step(
        &mut self,
        samples: &[TrainSample],
        now_ns: &dyn Fn() -> u64,
        abort: &dyn AbortFlag,
    ) -> candle_core::Result<Result<TrainTimings, TrainTimings>> {
        self.step_ranked(samples, 0, 1, &SingleRank, now_ns, abort)
    }

    /// One GRPO step as rank `rank` of a data-parallel group of `ranks` (every rank gets the whole batch and works
    /// on its share); `now_ns` reads the run's clock for the timings. `abort` is checked between micro-batches
    /// and decided collectively at each all-reduce: a killed step returns `Ok(Err(partial timings))` on every rank
    /// with the weights and optimizer state as they were before the step (as a restart from the last checkpoint
    /// would find them).
    pub fn step_ranked(
        &mut self,
        samples: &[TrainSample],
        rank: usize,
        ranks: usize,
        reduce: &dyn GradReduce,
        now_ns: &dyn Fn() -> u64,
        abort: &dyn AbortFlag,
    ) -> candle_core::Result<Result<TrainTimings, TrainTimings>> {
        let out = self.step_ranked_inner(samples, rank, ranks, reduce, now_ns, abort);
        // A rank that fails will not reach its next reduction: release the ranks waiting for it.
        if out.is_err() {
            reduce.abandon();
        }
        out
    }

    fn step_ranked_inner(
        &mut self,
        samples: &[TrainSample],
        rank: usize,
        ranks: usize,
        reduce: &dyn GradReduce,
        now_ns: &dyn Fn() -> u64,
        abort: &dyn AbortFlag,
    ) -> candle_core::Result<Result<TrainTimings, TrainTimings>> {
        if self.parked.is_some() {
            candle_core::bail!(
                "the training state is offloaded (the worker holds a rollout engine): switch it to train first"
            );
        }
        let aborted = || abort.is_set();
        let advantages = Self::advantages(samples);
        let plan = self.plan(samples, rank, ranks);
        let batches: Vec<Vec<Batch>> = plan
            .minis
            .iter()
            .map(|(_, micro)| micro.iter().map(|mb| self.batch(samples, mb, &advantages)).collect())
            .collect::<candle_core::Result<_>>()?;
        let mut timings =
            TrainTimings { tokens: batches.iter().flatten().map(|b| b.tokens_total).sum(), ..Default::default() };
        // π_prox: the recomputed old log-probs, or the behaviour log-probs when the `old` pass is off.
        let mut prox: Vec<Vec<Tensor>> =
            batches.iter().map(|m| m.iter().map(|b| b.behaviour.clone()).collect()).collect();
        let mut reference: Vec<Vec<Option<Tensor>>> = batches.iter().map(|m| vec![None; m.len()]).collect();
        for pass in self.passes.clone() {
            let start = now_ns();
            for (k, mini) in batches.iter().enumerate() {
                for (i, b) in mini.iter().enumerate() {
                    if aborted() {
                        timings.logprob_ns.push((start, now_ns()));
                        // Meet the other ranks at their first reduction and give the step up there.
                        reduce.all_reduce(rank, None, &aborted)?;
                        return Ok(Err(timings));
                    }
                    let lp = match pass {
                        LogProbPass::Old => Self::token_logprobs(&self.model, b)?.detach(),
                        LogProbPass::Reference => {
                            Self::token_logprobs(self.reference.as_ref().unwrap_or(&self.model), b)?.detach()
                        }
                    };
                    // Force the computation before taking the time (lazy devices).
                    crate::device::wait_for(&lp)?;
                    match pass {
                        LogProbPass::Old => prox[k][i] = lp,
                        LogProbPass::Reference => reference[k][i] = Some(lp),
                    }
                }
            }
            timings.logprob_ns.push((start, now_ns()));
        }
        let decoupled = self.passes.contains(&LogProbPass::Old);
        let start = now_ns();
        // Mini-batch k's optimizer step changes the weights for k+1: keep what a killed step must put back.
        let before = if batches.len() > 1 { Some((self.model.snapshot()?, self.opt.clone())) } else { None };
        let eps = self.spec.clip_ratio;
        let mut stats_total = [0f64; STATS];
        let mut loss_total = 0f64;
        for (k, mini) in batches.iter().enumerate() {
            let denom = plan.minis[k].0;
            let mut grads: Option<Vec<Tensor>> = None;
            let mut stats: Option<Tensor> = None;
            let mut gave_up = false;
            for (i, b) in mini.iter().enumerate() {
                if aborted() {
                    gave_up = true;
                    break;
                }
                let new = Self::token_logprobs(&self.model, b)?;
                let ratio = (&new - &prox[k][i])?.exp()?;
                let adv = b.advantages.broadcast_as(ratio.shape())?;
                let surrogate = (&ratio * &adv)?.minimum(&(ratio.clamp(1.0 - eps, 1.0 + eps)? * &adv)?)?;
                // Both log-probs are constants here: the weight carries no gradient. Capped tokens get weight 0
                // (a select, not a product: an overflowing weight would turn 0 · inf into NaN).
                let weight = (&prox[k][i] - &b.behaviour)?.exp()?;
                let (kept, token_weight) = if decoupled {
                    let keep = weight.le(BEHAVIOUR_WEIGHT_CAP)?;
                    (keep.to_dtype(candle_core::DType::F32)?, keep.where_cond(&weight, &weight.zeros_like()?)?)
                } else {
                    (weight.ones_like()?, weight.ones_like()?)
                };
                let mut loss = ((surrogate * &token_weight)? * &b.mask)?.sum_all()?.affine(-1.0 / denom, 0.0)?;
                if let (Some(r), true) = (&reference[k][i], self.spec.kl_coef > 0.0) {
                    // k3 estimator of KL(new ‖ ref): exp(ref − new) − (ref − new) − 1.
                    let d = (r - &new)?;
                    let kl = ((d.exp()? - &d)? - 1.0)?;
                    loss = (loss + ((kl * &b.mask)?.sum_all()? * (self.spec.kl_coef / denom))?)?;
                }
                let store = loss.backward()?;
                let mine: Vec<Tensor> = self
                    .model
                    .vars
                    .iter()
                    .map(|v| match store.get(v.as_tensor()) {
                        Some(g) => Ok(g.detach()),
                        None => v.as_tensor().zeros_like(),
                    })
                    .collect::<candle_core::Result<_>>()?;
                grads = Some(match grads {
                    None => mine,
                    Some(acc) => acc.iter().zip(&mine).map(|(a, g)| a + g).collect::<candle_core::Result<_>>()?,
                });
                let ratio = ratio.detach();
                let dev = ((&ratio - 1.0)?.abs()? * &b.mask)?;
                let clipped = (dev.gt(eps)?.to_dtype(candle_core::DType::F32)? * &b.mask)?;
                let wdev = (((weight.clamp(0.0, 1e6)? - 1.0)?.abs()? * &b.mask)?).sum_all()?;
                let capped = (((kept.ones_like()? - &kept)? * &b.mask)?).sum_all()?;
                let row = Tensor::stack(
                    &[loss.detach(), clipped.sum_all()?, dev.sum_all()?, wdev, capped, b.mask.sum_all()?],
                    0,
                )?;
                stats = Some(match stats {
                    None => row,
                    Some(s) => (s + row)?,
                });
            }
            let contribution = if gave_up {
                None
            } else {
                let mut all = match grads {
                    Some(g) => g,
                    None => self
                        .model
                        .vars
                        .iter()
                        .map(|v| v.as_tensor().zeros_like())
                        .collect::<candle_core::Result<_>>()?,
                };
                all.push(match stats {
                    Some(s) => s,
                    None => Tensor::zeros(STATS, candle_core::DType::F32, self.model.device())?,
                });
                Some(all)
            };
            let Some(sum) = reduce.all_reduce(rank, contribution, &aborted)? else {
                if let Some((weights, opt)) = &before {
                    self.model.load(weights)?;
                    self.opt = opt.clone();
                }
                timings.update_ns = (start, now_ns());
                return Ok(Err(timings));
            };
            let (grads, stats) = sum.split_at(sum.len() - 1);
            self.opt.step(&self.model.vars, grads)?;
            // Read back on this thread's stream after the optimizer step: on a GPU the shared sum is no longer being
            // read when this rank drops it (the last holder frees it on its own stream).
            let stats = stats[0].to_vec1::<f32>()?;
            loss_total += stats[0] as f64;
            for (t, s) in stats_total.iter_mut().zip(&stats) {
                *t += *s as f64;
            }
            timings.optimizer_steps += 1;
        }
        // The weights are ready when the last parameter is (lazy devices).
        if let Some(v) = self.model.vars.last() {
            crate::device::wait_for(v.as_tensor())?;
        }
        timings.update_ns = (start, now_ns());
        let tokens = stats_total[5].max(1.0);
        timings.stats = RatioStats {
            clip_fraction: (stats_total[1] / tokens) as f32,
            mean_abs_ratio_dev: (stats_total[2] / tokens) as f32,
            mean_abs_behaviour_weight_dev: (stats_total[3] / tokens) as f32,
            capped_fraction: (stats_total[4] / tokens) as f32,
        };
        timings.loss = (loss_total / timings.optimizer_steps.max(1) as f64) as f32;
        timings.mean_reward = samples.iter().map(|s| s.reward).sum::<f32>() / samples.len().max(1) as f32;
        Ok(Ok(timings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::AllReduce;
    use crate::model::GptConfig;
    use candle_core::Device;
    use rlsim_sim::rng::RngStreams;
    use rlsim_sim::scenario::ExecLengths;

    const CFG: GptConfig = GptConfig { vocab: 16, d_model: 32, layers: 1, heads: 2, ffn: 128, context: 24 };

    fn model() -> Gpt {
        Gpt::new(CFG, &mut RngStreams::new(5).stream("init"), &Device::Cpu).unwrap()
    }

    fn spec(lr: f64) -> ExecSpec {
        ExecSpec {
            learning_rate: lr,
            lengths: ExecLengths::Trace,
            eos_token: 0,
            kl_coef: 0.0,
            clip_ratio: 0.2,
            task: "even".into(),
        }
    }

    fn trainer(lr: f64, mini_batches: u32) -> Trainer {
        Trainer::new(model(), None, spec(lr), vec![LogProbPass::Old], 96, mini_batches).unwrap()
    }

    /// 4 groups of 4 samples of varied lengths, rewards varying within each group, behaviour log-probs of `m`.
    fn batch(m: &Gpt) -> Vec<TrainSample> {
        (0..16u32)
            .map(|i| {
                let prompt: Vec<u32> = (0..4).map(|j| (i * 3 + j) % 16).collect();
                let response: Vec<u32> = (0..(3 + i % 7)).map(|j| (i * 5 + j * 7) % 16).collect();
                let mut s = TrainSample {
                    group: (i / 4) as u64,
                    prompt,
                    response,
                    behaviour_logprobs: Vec::new(),
                    reward: (i % 4) as f32 / 3.0,
                };
                s.behaviour_logprobs = Trainer::response_logprobs(m, &s).unwrap();
                s
            })
            .collect()
    }

    fn step(t: &mut Trainer, samples: &[TrainSample]) -> TrainTimings {
        t.step(samples, &|| 0, &NeverAbort).unwrap().unwrap()
    }

    #[test]
    fn fresh_samples_weigh_one_and_stale_samples_are_corrected() {
        let mut t = trainer(0.01, 1);
        let fresh = batch(&t.model);
        let first = step(&mut t, &fresh);
        assert!(first.stats.mean_abs_behaviour_weight_dev < 1e-4, "{:?}", first.stats);
        // The same samples are now one version old: π_prox (current weights) differs from π_behav.
        let stale = step(&mut t, &fresh);
        assert!(stale.stats.mean_abs_behaviour_weight_dev > 1e-3, "{:?}", stale.stats);
        // Behaviour log-probs far from the trainer's are capped out of the loss, not trusted.
        let mut wild = fresh.clone();
        wild.iter_mut().for_each(|s| s.behaviour_logprobs.iter_mut().for_each(|lp| *lp -= 3.0));
        let capped = step(&mut t, &wild);
        assert!(capped.stats.capped_fraction > 0.9, "{:?}", capped.stats);
        assert!(capped.loss.is_finite());
    }

    #[test]
    fn the_clip_acts_from_the_second_optimizer_step_of_a_step_on() {
        let mut one = trainer(0.05, 1);
        let samples = batch(&one.model);
        let s1 = step(&mut one, &samples);
        assert_eq!(s1.optimizer_steps, 1);
        // One optimizer step: the update sees exactly the weights π_prox was computed with.
        assert_eq!((s1.stats.clip_fraction, s1.stats.mean_abs_ratio_dev), (0.0, 0.0));
        let mut four = trainer(0.05, 4);
        let s4 = step(&mut four, &samples);
        assert_eq!(s4.optimizer_steps, 4);
        assert!(s4.stats.mean_abs_ratio_dev > 1e-3 && s4.stats.clip_fraction > 0.0, "{:?}", s4.stats);
    }

    #[test]
    fn two_ranks_train_like_one_and_stay_identical() {
        // One optimizer step: then one rank and two see the same samples in it (with several, each rank walks
        // its own share in slices, as verl does, and the slices differ from one rank's).
        let mut alone = trainer(0.01, 1);
        let samples = batch(&alone.model);
        let a = step(&mut alone, &samples);
        let reduce = AllReduce::new(2);
        let ranks: Vec<(Trainer, TrainTimings)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|rank| {
                    let (reduce, samples) = (reduce.clone(), samples.clone());
                    s.spawn(move || {
                        let mut t = trainer(0.01, 1);
                        let timings = t.step_ranked(&samples, rank, 2, &*reduce, &|| 0, &NeverAbort).unwrap().unwrap();
                        (t, timings)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // Each rank computed on its own share: the shares add up to the batch, neither is empty.
        let (t0, t1) = (&ranks[0].1, &ranks[1].1);
        assert_eq!(t0.tokens + t1.tokens, a.tokens);
        assert!(t0.tokens > 0 && t1.tokens > 0);
        assert_eq!((t0.stats, t0.loss), (t1.stats, t1.loss), "both ranks see the reduced statistics");
        let flat = |t: &Trainer| -> Vec<f32> {
            t.model
                .snapshot()
                .unwrap()
                .iter()
                .flat_map(|w| w.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                .collect()
        };
        let (w0, w1, wa) = (flat(&ranks[0].0), flat(&ranks[1].0), flat(&alone));
        assert_eq!(w0, w1, "the replicas stay bit-identical");
        let before = flat(&trainer(0.01, 1));
        let mean_abs =
            |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| (a - b).abs() as f64).sum::<f64>() / x.len() as f64;
        let (moved, diff) = (mean_abs(&wa, &before), mean_abs(&w0, &wa));
        // Summation order differs (per rank, then across ranks), so not bit-equal: Adam's first step is about
        // lr·sign(g), and a gradient near 0 may flip sign; on average far within one update.
        assert!(moved > 1e-3 && diff < moved * 0.05, "moved {moved}, differs by {diff}");
    }

    #[test]
    fn a_killed_step_leaves_weights_and_optimizer_as_they_were() {
        struct AfterFirstCheck(std::cell::Cell<u32>, u32);
        impl AbortFlag for AfterFirstCheck {
            fn is_set(&self) -> bool {
                self.0.set(self.0.get() + 1);
                self.0.get() > self.1
            }
        }
        let mut t = trainer(0.05, 4);
        let samples = batch(&t.model);
        let before = t.model.snapshot().unwrap();
        // Let the first optimizer step happen, then kill the step in the second mini-batch: checks come once per
        // micro-batch of the log-prob pass, once per micro-batch of the update and once at each reduction.
        let minis = t.plan(&samples, 0, 1).minis;
        let checks = minis.iter().map(|m| m.1.len()).sum::<usize>() + minis[0].1.len() + 1;
        let killed = t.step(&samples, &|| 0, &AfterFirstCheck(Default::default(), checks as u32)).unwrap();
        assert_eq!(killed.as_ref().map_err(|t| t.optimizer_steps).unwrap_err(), 1, "killed after one optimizer step");
        for (a, b) in t.model.snapshot().unwrap().iter().zip(&before) {
            assert_eq!(
                a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            );
        }
        // And the rerun gives exactly what an undisturbed step gives.
        let mut clean = trainer(0.05, 4);
        let (x, y) = (step(&mut t, &samples), step(&mut clean, &samples));
        assert_eq!(x.loss, y.loss);
        assert_eq!(
            t.model.snapshot().unwrap()[0].to_vec2::<f32>().unwrap(),
            clean.model.snapshot().unwrap()[0].to_vec2::<f32>().unwrap()
        );
    }

    #[test]
    fn offloaded_training_state_comes_back_bit_identical_and_trains_the_same() {
        let with_reference = || {
            let passes = vec![LogProbPass::Old, LogProbPass::Reference];
            Trainer::new(model(), Some(model()), spec(0.05), passes, 96, 2).unwrap()
        };
        let samples = batch(&trainer(0.05, 2).model);
        let (mut moved, mut stayed) = (with_reference(), with_reference());
        step(&mut moved, &samples);
        step(&mut stayed, &samples);
        let flat = |w: Vec<Tensor>| -> Vec<f32> {
            w.iter().flat_map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
        };
        moved.offload().unwrap();
        assert!(moved.is_offloaded());
        assert!(moved.model.vars.iter().all(|v| v.as_tensor().elem_count() == 0), "the device holds nothing");
        assert_eq!(flat(moved.weights().unwrap()), flat(stayed.weights().unwrap()), "a sync still sends them");
        let refused = moved.step(&samples, &|| 0, &NeverAbort).unwrap_err().to_string();
        assert!(refused.contains("offloaded"), "{refused}");
        moved.onload().unwrap();
        assert!(!moved.is_offloaded());
        // Weights and Adam's moments came back exactly: the next step is bit-identical to one that never moved.
        let (a, b) = (step(&mut moved, &samples), step(&mut stayed, &samples));
        assert_eq!(a.loss, b.loss);
        assert_eq!(flat(moved.model.snapshot().unwrap()), flat(stayed.model.snapshot().unwrap()));
    }
}
