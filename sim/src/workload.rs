//! The workload: prompt and response lengths for each prompt group, from a named distribution or a trace.
//!
//! Lengths are a pure function of (seed, group serial number): the n-th group of a run gets the same lengths
//! whatever the pipeline, the order of requests or the backend, so pipelines are compared on the same samples.

use crate::rng::RngStreams;
use crate::trace::Trace;
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

/// How a trace is turned into groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceMode {
    /// Group n is the trace's step (n / prompts_per_step) mod steps, group (n mod prompts_per_step) mod groups;
    /// samples cycle through the group's responses.
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
}

/// Lengths of one prompt group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupLengths {
    pub prompt_tokens: u32,
    pub responses: Vec<u32>,
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

    /// The lengths of the group with serial number `serial` (0, 1, 2, … across the whole run).
    pub fn group(&self, serial: u64) -> GroupLengths {
        let s = &self.spec;
        let g = s.samples_per_prompt as usize;
        match &s.lengths {
            LengthSource::Distributions { prompt, response } => {
                let mut rng = self.streams.indexed("workload/lengths", serial);
                let prompt_tokens = prompt.sample(&mut rng, s.max_prompt_tokens);
                let responses = (0..g).map(|_| response.sample(&mut rng, s.max_response_tokens)).collect();
                GroupLengths { prompt_tokens, responses }
            }
            LengthSource::Trace { trace, mode } => {
                let (step, group) = match mode {
                    TraceMode::Replay => {
                        let step = (serial / s.prompts_per_step as u64) as usize % trace.steps.len();
                        let group = (serial % s.prompts_per_step as u64) as usize % trace.steps[step].len();
                        (step, group)
                    }
                    TraceMode::Sample => {
                        let mut rng = self.streams.indexed("workload/trace", serial);
                        let step = rng.random_range(0..trace.steps.len());
                        (step, rng.random_range(0..trace.steps[step].len()))
                    }
                };
                let tg = &trace.steps[step][group];
                GroupLengths {
                    prompt_tokens: tg.prompt_tokens.min(s.max_prompt_tokens),
                    responses: (0..g)
                        .map(|i| tg.responses[i % tg.responses.len()].min(s.max_response_tokens))
                        .collect(),
                }
            }
        }
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
        }
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
        let a = w.group(5);
        assert_eq!(a, w.group(5));
        assert_ne!(a, w.group(6));
        assert_eq!(a.prompt_tokens, 50);
        assert!((0..200).flat_map(|s| w.group(s).responses).all(|r| (1..=100).contains(&r)));
        assert!((0..200).flat_map(|s| w.group(s).responses).any(|r| r == 100), "the cap binds for a long tail");
    }

    #[test]
    fn replay_walks_steps_and_groups_in_order_and_cycles_samples() {
        let trace = Trace {
            path: "t.csv".into(),
            steps: vec![
                vec![
                    TraceGroup { prompt_tokens: 1, responses: vec![10, 11] },
                    TraceGroup { prompt_tokens: 2, responses: vec![20] },
                ],
                vec![TraceGroup { prompt_tokens: 3, responses: vec![30, 31, 32, 300] }],
            ],
        };
        let w = Workload::new(spec(LengthSource::Trace { trace: Arc::new(trace), mode: TraceMode::Replay }), 0);
        assert_eq!(w.group(0), GroupLengths { prompt_tokens: 1, responses: vec![10, 11, 10] });
        assert_eq!(w.group(1).prompt_tokens, 2);
        assert_eq!(w.group(2), GroupLengths { prompt_tokens: 3, responses: vec![30, 31, 32] });
        assert_eq!(w.group(3).prompt_tokens, 3);
        assert_eq!(w.group(4).prompt_tokens, 1);
    }
}
