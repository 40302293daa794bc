//! The workload: prompt and response lengths for each prompt group, from a named distribution or a trace.
//!
//! Lengths are a pure function of (seed, group serial number): the n-th group of a run gets the same lengths
//! whatever the pipeline, the order of requests or the backend, so pipelines are compared on the same samples.

use crate::rng::RngStreams;
use crate::trace::{Trace, Turn};
use rand::RngExt;
use statrs::distribution::{ContinuousCDF, LogNormal};
use std::sync::Arc;

/// A distribution of token counts.
#[derive(Clone, Debug, PartialEq)]
pub enum LengthDist {
    /// Every sample has this many tokens.
    Constant(u32),
    /// ln(tokens) ~ Normal(ln median, sigma).
    LogNormal { median: f64, sigma: f64 },
    /// Piecewise inverse CDF through (quantile, tokens) points, from q = 0 to q = 1, interpolated linearly in
    /// log(tokens) (long tails are closer to log-linear than linear between published quantiles).
    Quantiles(Vec<(f64, f64)>),
}

impl LengthDist {
    /// The token count at cumulative probability `u` ∈ [0, 1) (before capping).
    pub fn quantile(&self, u: f64) -> f64 {
        match self {
            LengthDist::Constant(n) => *n as f64,
            LengthDist::LogNormal { median, sigma } => {
                let d = LogNormal::new(median.ln(), *sigma).expect("validated: sigma > 0, median > 0");
                d.inverse_cdf(u.clamp(1e-12, 1.0 - 1e-12))
            }
            LengthDist::Quantiles(points) => {
                let i = points.partition_point(|(q, _)| *q <= u).clamp(1, points.len() - 1);
                let (q0, t0) = points[i - 1];
                let (q1, t1) = points[i];
                let f = if q1 > q0 { ((u - q0) / (q1 - q0)).clamp(0.0, 1.0) } else { 1.0 };
                (t0.ln() + f * (t1.ln() - t0.ln())).exp()
            }
        }
    }

    /// A sample rounded to whole tokens and clamped to [1, cap].
    pub fn sample(&self, rng: &mut impl rand::Rng, cap: u32) -> u32 {
        let u: f64 = rng.random();
        (self.quantile(u).round() as u64).clamp(1, cap as u64) as u32
    }
}

impl WorkloadSpec {
    /// Whether samples have several turns (synthetic, or from a multi-turn trace).
    pub fn is_multi_turn(&self) -> bool {
        self.multi_turn.is_some() || matches!(&self.lengths, LengthSource::Trace { trace, .. } if trace.is_multi_turn())
    }
}

/// A distribution of durations, seconds.
#[derive(Clone, Debug, PartialEq)]
pub enum SecondsDist {
    Constant(f64),
    /// ln(seconds) ~ Normal(ln median, sigma).
    LogNormal {
        median: f64,
        sigma: f64,
    },
}

impl SecondsDist {
    pub fn quantile(&self, u: f64) -> f64 {
        match self {
            SecondsDist::Constant(s) => *s,
            SecondsDist::LogNormal { median, sigma } => {
                LengthDist::LogNormal { median: *median, sigma: *sigma }.quantile(u)
            }
        }
    }
}

/// How a trace is turned into groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceMode {
    /// Group n is the trace's step (n / prompts_per_step) mod steps, group (n mod prompts_per_step) mod groups;
    /// samples cycle through the group's responses. (A coarse-grained run spreads its fewer groups over the same
    /// trace groups: `replay_group`.)
    Replay,
    /// Group n is a uniformly drawn group of a uniformly drawn step (stream `workload/trace`).
    Sample,
}

/// Where lengths come from.
#[derive(Clone, Debug)]
pub enum LengthSource {
    Distributions { prompt: LengthDist, response: LengthDist },
    Trace { trace: Arc<Trace>, mode: TraceMode },
}

/// The validated workload.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    pub prompts_per_step: u32,
    pub samples_per_prompt: u32,
    pub steps: u32,
    pub max_response_tokens: u32,
    pub max_prompt_tokens: u32,
    pub lengths: LengthSource,
    /// Per-step drift: the responses of step k's groups are scaled by (1 + growth)^k before the cap (RL often makes
    /// responses longer as training goes on). 0 = none.
    pub response_growth_per_step: f64,
    /// Verifier / sandbox time of each sample after its generation ends (seconds; off the GPU, unlimited
    /// concurrency). `None` = instantaneous.
    pub reward_s: Option<SecondsDist>,
    /// Reward time of a whole batch, paid on the train workers before the step's first pass (seconds).
    pub reward_batch_s: f64,
    /// Synthetic multi-turn agents (a multi-turn trace brings its own turns instead).
    pub multi_turn: Option<MultiTurnSpec>,
    /// Longest context a sequence may reach: tool outputs are truncated to keep prompt + tools + response under it.
    pub max_context_tokens: u32,
    /// DAPO dynamic sampling: groups whose rewards are all equal are dropped and more are generated.
    pub dynamic_sampling: Option<DynamicSampling>,
    /// Coarse-grained simulation: each simulated group stands for this many identical ones (1 = exact). The
    /// counts above (`prompts_per_step`, a round's `prompts_per_round`) are then the simulated groups, the
    /// scenario's divided by it (`crate::coarsen`).
    pub coarsen: u32,
}

/// DAPO's dynamic sampling (verl `algorithm.filter_groups`): a step generates rounds of `prompts_per_round` groups
/// until `prompts_per_step` of them have rewards that are not all equal; the other groups and any surplus are
/// dropped (their tokens count as discarded). Whether a group is kept is drawn per group (seeded stream
/// `workload/dynamic_sampling`) with probability `keep_fraction`, the share of prompts the policy neither always
/// solves nor always fails.
#[derive(Clone, Debug, PartialEq)]
pub struct DynamicSampling {
    pub keep_fraction: f64,
    pub prompts_per_round: u32,
    /// Rounds per step at most (verl's max_num_gen_batches); the step then trains on the groups it kept.
    pub max_rounds: u32,
}

/// Multi-turn agent trajectories drawn from distributions: each response is split evenly into `turns` turns; every
/// turn but the last ends in a tool call that takes `tool_latency_s` and adds `tool_tokens` to the context.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiTurnSpec {
    pub turns: LengthDist,
    pub tool_latency_s: SecondsDist,
    pub tool_tokens: LengthDist,
}

/// Most turns a synthetic trajectory gets.
pub const MAX_TURNS: u32 = 64;

/// Fits turns to a (capped or drifted) response length: cut at `total` tokens, or add the surplus to the last turn.
pub fn fit_turns(turns: &[Turn], total: u32) -> Vec<Turn> {
    let mut out = Vec::with_capacity(turns.len());
    let mut left = total;
    for t in turns {
        if left == 0 {
            break;
        }
        let tokens = t.tokens.min(left);
        left -= tokens;
        out.push(Turn { tokens, ..*t });
    }
    if let Some(last) = out.last_mut() {
        last.tokens += left;
        last.tool_ns = 0;
        last.tool_tokens = 0;
    }
    // A turn that generates nothing only forwards to another tool call: fold its call into the previous turn's (one
    // longer wait, one larger output), so every turn the engine runs generates; a trailing empty turn is dropped.
    let mut merged: Vec<Turn> = Vec::with_capacity(out.len());
    for t in out {
        match merged.last_mut() {
            Some(prev) if t.tokens == 0 => {
                // Saturating: an imported trace may carry absurd latencies or token counts (found while writing the fuzz
                // targets: an overflow panic).
                prev.tool_ns = prev.tool_ns.saturating_add(t.tool_ns);
                prev.tool_tokens = prev.tool_tokens.saturating_add(t.tool_tokens);
            }
            _ => merged.push(t),
        }
    }
    if let Some(last) = merged.last_mut() {
        last.tool_ns = 0;
        last.tool_tokens = 0;
    }
    merged
}

/// Lengths of one prompt group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupLengths {
    pub prompt_tokens: u32,
    pub responses: Vec<u32>,
    /// Whether the group survives dynamic sampling (its rewards are not all equal); always true without it.
    pub kept: bool,
    /// Reward time of each sample, nanoseconds (all 0 without `reward_s`).
    pub reward_ns: Vec<u64>,
    /// Turns of each sample (empty when every sample is single-turn).
    pub turns: Vec<Vec<Turn>>,
}

/// The trace group (of `groups` in the step) that replays simulated group `j` of its step. Exact runs take group
/// j mod groups. A coarse-grained run (`coarsen` k, P/k simulated groups standing for the exact run's P) takes the
/// same spread of the trace as the exact run: every k-th of the first P groups when the step has that many; each
/// group equally often when P/k simulated groups cover them all; else P/k groups evenly spaced over the step.
fn replay_group(j: u64, s: &WorkloadSpec, groups: usize) -> usize {
    let (k, sim) = (s.coarsen.max(1) as u64, s.prompts_per_step.max(1) as u64);
    let t = groups.max(1) as u64;
    let real = sim * k;
    let g = if k == 1 || t >= real {
        j * k
    } else if sim >= t {
        j
    } else {
        j * t / sim
    };
    (g % t) as usize
}

/// Generates groups from a workload spec and the run's seed.
#[derive(Clone, Debug)]
pub struct Workload {
    spec: WorkloadSpec,
    streams: RngStreams,
}

impl Workload {
    pub fn new(spec: WorkloadSpec, seed: u64) -> Self {
        Workload { spec, streams: RngStreams::new(seed) }
    }

    /// The lengths of the group with serial number `serial` (0, 1, 2, … across the whole run), generated for RL step
    /// `step` (drift and trace replay follow the step; under dynamic sampling or partial rollout serials run ahead
    /// of steps).
    pub fn group(&self, serial: u64, step: u32) -> GroupLengths {
        let s = &self.spec;
        let g = s.samples_per_prompt as usize;
        match &s.lengths {
            LengthSource::Distributions { prompt, response } => {
                let mut rng = self.streams.indexed("workload/lengths", serial);
                let prompt_tokens = prompt.sample(&mut rng, s.max_prompt_tokens);
                let responses = (0..g).map(|_| response.sample(&mut rng, s.max_response_tokens)).collect();
                self.finish(
                    serial,
                    step,
                    GroupLengths { prompt_tokens, responses, kept: true, reward_ns: Vec::new(), turns: Vec::new() },
                )
            }
            LengthSource::Trace { trace, mode } => {
                let (trace_step, group) = match mode {
                    TraceMode::Replay => {
                        let at = step as usize % trace.steps.len();
                        let group = replay_group(serial % s.prompts_per_step as u64, s, trace.steps[at].len());
                        (at, group)
                    }
                    TraceMode::Sample => {
                        let mut rng = self.streams.indexed("workload/trace", serial);
                        let at = rng.random_range(0..trace.steps.len());
                        (at, rng.random_range(0..trace.steps[at].len()))
                    }
                };
                let tg = &trace.steps[trace_step][group];
                let lengths = GroupLengths {
                    prompt_tokens: tg.prompt_tokens.min(s.max_prompt_tokens),
                    responses: (0..g)
                        .map(|i| tg.responses[i % tg.responses.len()].min(s.max_response_tokens))
                        .collect(),
                    kept: true,
                    reward_ns: Vec::new(),
                    turns: if tg.turns.is_empty() {
                        Vec::new()
                    } else {
                        (0..g).map(|i| tg.turns[i % tg.turns.len()].clone()).collect()
                    },
                };
                self.finish(serial, step, lengths)
            }
        }
    }

    /// Applies the per-step drift and draws the reward times (own streams: neither changes the base lengths).
    fn finish(&self, serial: u64, step: u32, mut g: GroupLengths) -> GroupLengths {
        let s = &self.spec;
        if let Some(d) = &s.dynamic_sampling {
            let mut rng = self.streams.indexed("workload/dynamic_sampling", serial);
            g.kept = rng.random::<f64>() < d.keep_fraction;
        }
        if s.response_growth_per_step != 0.0 {
            let factor = (1.0 + s.response_growth_per_step).powi(step.min(i32::MAX as u32) as i32);
            for r in &mut g.responses {
                *r = ((*r as f64 * factor).round() as u64).clamp(1, s.max_response_tokens as u64) as u32;
            }
        }
        if let Some(m) = &s.multi_turn {
            let mut rng = self.streams.indexed("workload/turns", serial);
            g.turns = g
                .responses
                .iter()
                .map(|&r| {
                    let n = m.turns.sample(&mut rng, MAX_TURNS).min(r).max(1);
                    (0..n)
                        .map(|k| {
                            let last = k + 1 == n;
                            Turn {
                                tokens: if last { r - (r / n) * (n - 1) } else { r / n },
                                tool_ns: if last {
                                    0
                                } else {
                                    crate::time::secs_to_ns(m.tool_latency_s.quantile(rng.random()).max(0.0))
                                },
                                tool_tokens: if last { 0 } else { m.tool_tokens.sample(&mut rng, u32::MAX / 1024) },
                            }
                        })
                        .collect()
                })
                .collect();
        } else if !g.turns.is_empty() {
            let fitted: Vec<Vec<Turn>> = g.turns.iter().zip(&g.responses).map(|(t, &r)| fit_turns(t, r)).collect();
            g.turns = fitted;
        }
        // Truncate tool outputs so that no context outgrows max_context_tokens.
        for (turns, &r) in g.turns.iter_mut().zip(&g.responses) {
            let mut budget = s.max_context_tokens.saturating_sub(g.prompt_tokens + r);
            for t in turns.iter_mut() {
                t.tool_tokens = t.tool_tokens.min(budget);
                budget -= t.tool_tokens;
            }
        }
        if g.turns.iter().all(|t| t.len() <= 1) {
            g.turns.clear();
        }
        g.reward_ns = match &s.reward_s {
            Some(d) => {
                let mut rng = self.streams.indexed("workload/reward", serial);
                g.responses.iter().map(|_| crate::time::secs_to_ns(d.quantile(rng.random()).max(0.0))).collect()
            }
            None => vec![0; g.responses.len()],
        };
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceGroup;

    fn spec(lengths: LengthSource) -> WorkloadSpec {
        WorkloadSpec {
            prompts_per_step: 2,
            samples_per_prompt: 3,
            steps: 1,
            max_response_tokens: 100,
            max_prompt_tokens: 50,
            lengths,
            response_growth_per_step: 0.0,
            reward_s: None,
            reward_batch_s: 0.0,
            multi_turn: None,
            max_context_tokens: 150,
            dynamic_sampling: None,
            coarsen: 1,
        }
    }

    #[test]
    fn a_coarse_replay_takes_every_kth_group_of_the_step() {
        // 4 groups per step in the trace; coarsen 2 simulates 2 of them per step: groups 0 and 2.
        let group = |p| TraceGroup { prompt_tokens: p, responses: vec![p * 10], turns: vec![] };
        let trace = Trace { path: "t.csv".into(), steps: vec![vec![group(1), group(2), group(3), group(4)]] };
        let mut s = spec(LengthSource::Trace { trace: Arc::new(trace), mode: TraceMode::Replay });
        (s.prompts_per_step, s.coarsen) = (2, 2);
        let w = Workload::new(s, 0);
        let prompts: Vec<u32> = (0..4).map(|serial| w.group(serial, 0).prompt_tokens).collect();
        assert_eq!(prompts, vec![1, 3, 1, 3]);
        // Fewer trace groups (4) than the exact run's prompts per step (16): the exact run replays each 4 times.
        // At coarsen 2 (8 simulated) each twice; at coarsen 8 (2 simulated) two evenly spaced ones.
        let mut s =
            spec(LengthSource::Distributions { prompt: LengthDist::Constant(1), response: LengthDist::Constant(1) });
        let picks =
            |s: &WorkloadSpec| (0..s.prompts_per_step as u64).map(|j| replay_group(j, s, 4)).collect::<Vec<_>>();
        (s.prompts_per_step, s.coarsen) = (16, 1);
        assert_eq!(picks(&s), [0, 1, 2, 3].repeat(4));
        (s.prompts_per_step, s.coarsen) = (8, 2);
        assert_eq!(picks(&s), [0, 1, 2, 3].repeat(2));
        (s.prompts_per_step, s.coarsen) = (2, 8);
        assert_eq!(picks(&s), vec![0, 2]);
        // More trace groups (64) than prompts (16): the exact run takes the first 16; coarsen 4 every 4th of them.
        (s.prompts_per_step, s.coarsen) = (4, 4);
        assert_eq!((0..4).map(|j| replay_group(j, &s, 64)).collect::<Vec<_>>(), vec![0, 4, 8, 12]);
    }

    #[test]
    fn quantile_points_interpolate_log_linearly() {
        let d = LengthDist::Quantiles(vec![(0.0, 10.0), (0.5, 100.0), (1.0, 1000.0)]);
        assert!((d.quantile(0.25) - 31.6227766).abs() < 1e-6);
        assert!((d.quantile(0.5) - 100.0).abs() < 1e-9);
        assert!((d.quantile(0.999_999) - 1000.0).abs() < 0.1);
        let ln = LengthDist::LogNormal { median: 465.0, sigma: 1.0 };
        assert!((ln.quantile(0.5) - 465.0).abs() < 1e-6);
    }

    #[test]
    fn groups_are_a_pure_function_of_seed_and_serial_and_respect_caps() {
        let w = Workload::new(
            spec(LengthSource::Distributions {
                prompt: LengthDist::Constant(80),
                response: LengthDist::LogNormal { median: 60.0, sigma: 1.5 },
            }),
            3,
        );
        let a = w.group(5, 2);
        assert_eq!(a, w.group(5, 2));
        assert_ne!(a, w.group(6, 3));
        assert_eq!(a.prompt_tokens, 50);
        assert!((0..200).flat_map(|s| w.group(s, (s / 2) as u32).responses).all(|r| (1..=100).contains(&r)));
        assert!(
            (0..200).flat_map(|s| w.group(s, (s / 2) as u32).responses).any(|r| r == 100),
            "the cap binds for a long tail"
        );
    }

    #[test]
    fn drift_scales_later_steps_and_reward_times_are_drawn_per_sample() {
        let mut sp =
            spec(LengthSource::Distributions { prompt: LengthDist::Constant(10), response: LengthDist::Constant(20) });
        sp.response_growth_per_step = 0.5;
        sp.reward_s = Some(SecondsDist::Constant(1.5));
        let w = Workload::new(sp, 0);
        // prompts_per_step = 2: groups 0-1 are step 0, 2-3 step 1 (×1.5), 4-5 step 2 (×2.25).
        assert_eq!(w.group(0, 0).responses, vec![20, 20, 20]);
        assert_eq!(w.group(3, 1).responses, vec![30, 30, 30]);
        assert_eq!(w.group(5, 2).responses, vec![45, 45, 45]);
        assert_eq!(w.group(40, 20).responses, vec![100, 100, 100], "capped");
        // The step a group is generated for sets its drift, not its serial (partial rollout and dynamic sampling
        // create groups ahead of ⌊serial / prompts_per_step⌋).
        assert_eq!(w.group(40, 0).responses, vec![20, 20, 20]);
        assert_eq!(w.group(1, 0).reward_ns, vec![1_500_000_000; 3]);
    }

    #[test]
    fn turns_fit_their_length_and_empty_turns_fold_into_the_previous_call() {
        let t = |tokens, tool_ns, tool_tokens| Turn { tokens, tool_ns, tool_tokens };
        let turns = [t(4, 10, 7), t(0, 5, 3), t(6, 0, 0)];
        assert_eq!(fit_turns(&turns, 10), vec![t(4, 15, 10), t(6, 0, 0)]);
        // Cut by a cap: the turn that reaches it ends the trajectory, with no tool call after it.
        assert_eq!(fit_turns(&turns, 4), vec![t(4, 0, 0)]);
        // Lengthened by drift: the surplus goes to the last turn.
        assert_eq!(fit_turns(&turns, 12), vec![t(4, 15, 10), t(8, 0, 0)]);
    }

    #[test]
    fn replay_walks_steps_and_groups_in_order_and_cycles_samples() {
        let trace = Trace {
            path: "t.csv".into(),
            steps: vec![
                vec![
                    TraceGroup { prompt_tokens: 1, responses: vec![10, 11], turns: vec![] },
                    TraceGroup { prompt_tokens: 2, responses: vec![20], turns: vec![] },
                ],
                vec![TraceGroup { prompt_tokens: 3, responses: vec![30, 31, 32, 300], turns: vec![] }],
            ],
        };
        let w = Workload::new(spec(LengthSource::Trace { trace: Arc::new(trace), mode: TraceMode::Replay }), 0);
        assert_eq!(
            w.group(0, 0),
            GroupLengths {
                prompt_tokens: 1,
                responses: vec![10, 11, 10],
                kept: true,
                reward_ns: vec![0; 3],
                turns: vec![]
            }
        );
        assert_eq!(w.group(1, 0).prompt_tokens, 2);
        assert_eq!(
            w.group(2, 1),
            GroupLengths {
                prompt_tokens: 3,
                responses: vec![30, 31, 32],
                kept: true,
                reward_ns: vec![0; 3],
                turns: vec![]
            }
        );
        assert_eq!(w.group(3, 1).prompt_tokens, 3);
        assert_eq!(w.group(4, 2).prompt_tokens, 1);
    }
}
