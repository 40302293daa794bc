//! `[workload]`: counts, caps, length and seconds distributions, multi-turn agents, dynamic sampling.

use crate::scenario::check::{num, Check, MAX_SIGMA, MAX_TOKENS};
use crate::scenario::{RawDist, RawDynamicSampling, RawSeconds, RawTrace, RawWorkload, ScenarioError};
use crate::trace::{read_csv_trace, TraceError};
use crate::workload::{LengthDist, LengthSource, MultiTurnSpec, SecondsDist, TraceMode, WorkloadSpec, MAX_TURNS};
use std::path::Path;
use std::sync::Arc;

pub(super) fn validate_workload(
    w: &RawWorkload,
    c: &Check,
    resolved: &mut RawWorkload,
) -> Result<WorkloadSpec, ScenarioError> {
    let prompts_per_step =
        c.count(w.prompts_per_step, "workload.prompts_per_step", None, "prompts (GRPO groups) per RL step")?;
    let samples_per_prompt =
        c.count(w.samples_per_prompt, "workload.samples_per_prompt", None, "responses per prompt (GRPO group size)")?;
    let steps = c.count(w.steps, "workload.steps", None, "RL steps to simulate")?;
    let max_response_tokens =
        c.count_max(w.max_response_tokens, "workload.max_response_tokens", None, MAX_TOKENS, "cap on response length")?;
    let max_prompt_tokens =
        c.count_max(w.max_prompt_tokens, "workload.max_prompt_tokens", Some(4096), MAX_TOKENS, "cap on prompt length")?;
    resolved.max_prompt_tokens = Some(max_prompt_tokens);
    let lengths = match (&w.trace, &w.response_tokens, &w.prompt_tokens) {
        (Some(t), None, None) => {
            let path = c.require(t.path.clone(), "workload.trace.path", "a CSV trace path relative to the scenario file")?;
            let mode = match t.mode.as_deref().unwrap_or("replay") {
                "replay" => TraceMode::Replay,
                "sample" => TraceMode::Sample,
                other => return Err(c.src.error("workload.trace.mode", format!("unknown mode {other:?}; expected \"replay\" or \"sample\""))),
            };
            let base = c.src.file.parent().unwrap_or(Path::new("."));
            let full = base.join(&path);
            let trace = read_csv_trace(&full).map_err(|e: TraceError| c.src.error("workload.trace.path", e.to_string()))?;
            let abs = std::fs::canonicalize(&full).unwrap_or(full);
            resolved.trace = Some(RawTrace {
                path: Some(abs.to_string_lossy().into_owned()),
                mode: Some(if mode == TraceMode::Replay { "replay" } else { "sample" }.into()),
            });
            LengthSource::Trace { trace: Arc::new(trace), mode }
        }
        (Some(_), _, _) => {
            return Err(c.src.error("workload.trace", "give either a trace or response_tokens/prompt_tokens distributions, not both"))
        }
        (None, Some(r), Some(p)) => LengthSource::Distributions {
            response: validate_dist(r, "workload.response_tokens", TOKENS, c)?,
            prompt: validate_dist(p, "workload.prompt_tokens", TOKENS, c)?,
        },
        (None, None, _) => {
            return Err(c.src.error("workload.response_tokens", "missing; expected a length distribution (kind = \"lognormal\" | \"quantiles\" | \"constant\") or a [workload.trace]"))
        }
        (None, Some(_), None) => {
            return Err(c.src.error("workload.prompt_tokens", "missing; expected a length distribution (kind = \"lognormal\" | \"quantiles\" | \"constant\")"))
        }
    };
    let response_growth_per_step = c.number(
        w.response_growth_per_step,
        "workload.response_growth_per_step",
        0.0,
        -0.99,
        10.0,
        "a fractional growth of response lengths per step",
    )?;
    let reward_s = w.reward_s.as_ref().map(|r| validate_seconds(r, "workload.reward_s", c)).transpose()?;
    let reward_batch_s =
        c.number(w.reward_batch_s, "workload.reward_batch_s", 0.0, 0.0, 86400.0, "seconds per batch")?;
    let multi_turn = match &w.multi_turn {
        None => None,
        Some(m) => {
            if matches!(&lengths, LengthSource::Trace { trace, .. } if trace.is_multi_turn()) {
                return Err(c.src.error(
                    "workload.multi_turn",
                    "the trace already has turns; give either a multi-turn trace or [workload.multi_turn]",
                ));
            }
            Some(MultiTurnSpec {
                turns: validate_dist(&m.turns, "workload.multi_turn.turns", TURNS, c)?,
                tool_latency_s: validate_seconds(&m.tool_latency_s, "workload.multi_turn.tool_latency_s", c)?,
                tool_tokens: validate_dist(&m.tool_tokens, "workload.multi_turn.tool_tokens", TOKENS, c)?,
            })
        }
    };
    let max_context_tokens = c.count_max(
        w.max_context_tokens,
        "workload.max_context_tokens",
        Some(max_prompt_tokens + max_response_tokens),
        10 * MAX_TOKENS,
        "tokens of context a sequence may reach",
    )?;
    if max_context_tokens < max_prompt_tokens + max_response_tokens {
        return Err(c.src.error(
            "workload.max_context_tokens",
            format!(
                "{max_context_tokens} is below max_prompt_tokens + max_response_tokens ({})",
                max_prompt_tokens + max_response_tokens
            ),
        ));
    }
    let dynamic_sampling = match &w.dynamic_sampling {
        None => None,
        Some(d) => {
            let keep = c.require(d.keep_fraction, "workload.dynamic_sampling.keep_fraction", "a share in [0.01, 1]")?;
            // Below 1 % a step would need over a hundred rounds: no real run filters that hard, and the run would
            // create groups without end.
            if !(0.01..=1.0).contains(&keep) {
                return Err(c.src.error(
                    "workload.dynamic_sampling.keep_fraction",
                    format!("expected a share of groups in [0.01, 1], got {}", num(keep)),
                ));
            }
            let spec = crate::workload::DynamicSampling {
                keep_fraction: keep,
                prompts_per_round: {
                    let n = c.count(
                        d.prompts_per_round,
                        "workload.dynamic_sampling.prompts_per_round",
                        Some(prompts_per_step),
                        "groups generated per round",
                    )?;
                    if n as u64 > 64 * prompts_per_step as u64 {
                        return Err(c.src.error(
                            "workload.dynamic_sampling.prompts_per_round",
                            format!("{n} groups per round is over 64 × prompts_per_step ({prompts_per_step}); verl's gen_batch_size is a small multiple of the train batch"),
                        ));
                    }
                    n
                },
                max_rounds: c.count_max(
                    d.max_rounds,
                    "workload.dynamic_sampling.max_rounds",
                    Some(10),
                    1000,
                    "rounds per step at most",
                )?,
            };
            resolved.dynamic_sampling = Some(RawDynamicSampling {
                keep_fraction: Some(spec.keep_fraction),
                prompts_per_round: Some(spec.prompts_per_round),
                max_rounds: Some(spec.max_rounds),
            });
            Some(spec)
        }
    };
    let coarsen = validate_coarsen(w.coarsen, prompts_per_step, dynamic_sampling.as_ref(), c)?;
    resolved.coarsen = (coarsen > 1).then_some(coarsen);
    resolved.max_context_tokens = Some(max_context_tokens);
    resolved.response_growth_per_step = Some(response_growth_per_step);
    resolved.reward_batch_s = Some(reward_batch_s);
    Ok(WorkloadSpec {
        prompts_per_step,
        samples_per_prompt,
        steps,
        max_response_tokens,
        max_prompt_tokens,
        lengths,
        response_growth_per_step,
        reward_s,
        reward_batch_s,
        multi_turn,
        max_context_tokens,
        dynamic_sampling,
        coarsen,
    })
}

/// `workload.coarsen`: a whole number of simulated groups per step (and per dynamic-sampling round).
fn validate_coarsen(
    coarsen: Option<u32>,
    prompts_per_step: u32,
    dynamic: Option<&crate::workload::DynamicSampling>,
    c: &Check,
) -> Result<u32, ScenarioError> {
    let k = c.count_max(
        coarsen,
        "workload.coarsen",
        Some(1),
        crate::coarsen::MAX_COARSEN,
        "identical prompt groups each simulated group stands for (1 = exact)",
    )?;
    if !prompts_per_step.is_multiple_of(k) {
        return Err(c.src.error(
            "workload.coarsen",
            format!("{k} does not divide workload.prompts_per_step ({prompts_per_step}); expected a divisor, so that every step simulates a whole number of groups"),
        ));
    }
    if let Some(d) = dynamic {
        if !d.prompts_per_round.is_multiple_of(k) {
            return Err(c.src.error(
                "workload.coarsen",
                format!("{k} does not divide workload.dynamic_sampling.prompts_per_round ({}); expected a divisor of both group counts", d.prompts_per_round),
            ));
        }
    }
    Ok(k)
}

/// What a length distribution counts, and the most it may give.
#[derive(Clone, Copy)]
struct Counts {
    what: &'static str,
    max: u32,
}

/// Token lengths: at most MAX_TOKENS (the caps clip every sample anyway).
const TOKENS: Counts = Counts { what: "tokens", max: MAX_TOKENS };
/// Turns of a synthetic multi-turn trajectory: at most MAX_TURNS (the simulator cannot give more).
const TURNS: Counts = Counts { what: "turns per trajectory", max: MAX_TURNS };

fn validate_dist(d: &RawDist, field: &str, counts: Counts, c: &Check) -> Result<LengthDist, ScenarioError> {
    let Counts { what, max } = counts;
    match d {
        RawDist::Constant { tokens } => {
            c.count_max(Some(*tokens), &format!("{field}.tokens"), None, max, what)?;
            Ok(LengthDist::Constant(*tokens))
        }
        RawDist::Lognormal { median, sigma } => {
            let median =
                c.positive(Some(*median), &format!("{field}.median"), None, max as f64, &format!("median {what}"))?;
            let sigma = c.positive(
                Some(*sigma),
                &format!("{field}.sigma"),
                None,
                MAX_SIGMA,
                &format!("standard deviation of ln({what})"),
            )?;
            Ok(LengthDist::LogNormal { median, sigma })
        }
        RawDist::Quantiles { points } => {
            let f = format!("{field}.points");
            if points.len() < 2 {
                return Err(c.src.error(&f, "expected at least two [quantile, tokens] points, from quantile 0 to 1"));
            }
            let first = points[0][0];
            let last = points[points.len() - 1][0];
            if first != 0.0 || last != 1.0 {
                return Err(c.src.error(&f, format!("quantiles must start at 0 and end at 1, got {first} … {last}")));
            }
            for (i, w) in points.windows(2).enumerate() {
                if w[1][0] <= w[0][0] || w[1][1] < w[0][1] {
                    return Err(c.src.error(
                        &format!("{f}[{}]", i + 1),
                        format!(
                            "points must increase in quantile and not decrease in tokens: {:?} after {:?}",
                            w[1], w[0]
                        ),
                    ));
                }
            }
            if let Some((i, p)) = points.iter().enumerate().find(|(_, p)| p[1] < 1.0 || !p[1].is_finite()) {
                return Err(c.src.error(&format!("{f}[{i}]"), format!("{what} must be at least 1, got {}", num(p[1]))));
            }
            if let Some((i, p)) = points.iter().enumerate().find(|(_, p)| p[1] > max as f64) {
                return Err(c
                    .src
                    .error(&format!("{f}[{i}]"), format!("{what} must be at most {max}, got {}", num(p[1]))));
            }
            Ok(LengthDist::Quantiles(points.iter().map(|p| (p[0], p[1])).collect()))
        }
    }
}

fn validate_seconds(r: &RawSeconds, field: &str, c: &Check) -> Result<SecondsDist, ScenarioError> {
    Ok(match r {
        RawSeconds::Constant { seconds } => SecondsDist::Constant(c.number(
            Some(*seconds),
            &format!("{field}.seconds"),
            0.0,
            0.0,
            86400.0,
            "seconds",
        )?),
        RawSeconds::Lognormal { median, sigma } => SecondsDist::LogNormal {
            median: c.positive(Some(*median), &format!("{field}.median"), None, 86400.0, "median seconds")?,
            sigma: c.positive(
                Some(*sigma),
                &format!("{field}.sigma"),
                None,
                MAX_SIGMA,
                "log-space standard deviation",
            )?,
        },
    })
}
