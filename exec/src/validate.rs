//! `rlsim validate`: the simulator (with a measured profile) against the real backend on the same scenario —
//! step time, throughput, rollout and train time per step, bubble fraction, staleness — and the structure check
//! that both ran the same policy decisions.

use rlsim_sim::report::Report;
use rlsim_sim::timeline::{Outcome, Timeline};
use std::collections::BTreeMap;

/// One compared metric.
#[derive(Clone, Debug, serde::Serialize, PartialEq)]
pub struct ValidateRow {
    pub pipeline: String,
    pub metric: String,
    pub simulated: f64,
    pub measured: f64,
    /// (simulated − measured) / measured; for staleness, the absolute difference.
    pub error: f64,
}

/// The median (the mean of the middle two for an even count; 0 for none).
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The compared metrics of one pipeline.
pub fn compare_reports(pipeline: &str, sim: &Report, exec: &Report) -> Vec<ValidateRow> {
    let per_step = |r: &Report, f: &dyn Fn(&rlsim_sim::report::StepRow) -> f64| median(r.steps.iter().map(f).collect());
    let metrics: Vec<(&str, f64, f64, bool)> = vec![
        ("median step time (s)", per_step(sim, &|s| s.duration_s), per_step(exec, &|s| s.duration_s), true),
        ("trained tokens/s", sim.summary.tokens_per_s, exec.summary.tokens_per_s, true),
        ("median rollout per step (s)", per_step(sim, &|s| s.rollout_s), per_step(exec, &|s| s.rollout_s), true),
        (
            "median train per step (s)",
            per_step(sim, &|s| s.logprob_s + s.train_s),
            per_step(exec, &|s| s.logprob_s + s.train_s),
            true,
        ),
        ("bubble fraction", sim.summary.bubble_fraction, exec.summary.bubble_fraction, true),
        ("mean staleness", sim.summary.mean_staleness, exec.summary.mean_staleness, false),
    ];
    metrics
        .into_iter()
        .map(|(name, s, m, relative)| ValidateRow {
            pipeline: pipeline.to_string(),
            metric: name.to_string(),
            simulated: s,
            measured: m,
            error: if relative {
                if m != 0.0 {
                    (s - m) / m
                } else {
                    s - m
                }
            } else {
                s - m
            },
        })
        .collect()
}

/// One metric over several repetitions of the same comparison (`rlsim validate --repeat N`).
#[derive(Clone, Debug, serde::Serialize, PartialEq)]
pub struct RepeatedRow {
    pub pipeline: String,
    pub metric: String,
    /// Medians over the repetitions.
    pub simulated: f64,
    pub measured: f64,
    pub error: f64,
    /// The smallest and largest error seen.
    pub error_min: f64,
    pub error_max: f64,
    pub runs: usize,
}

/// Medians, per (pipeline, metric) in first-seen order, of the rows of several repetitions.
pub fn aggregate(runs: &[Vec<ValidateRow>]) -> Vec<RepeatedRow> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut by: BTreeMap<(String, String), Vec<&ValidateRow>> = BTreeMap::new();
    for r in runs.iter().flatten() {
        let key = (r.pipeline.clone(), r.metric.clone());
        if !by.contains_key(&key) {
            order.push(key.clone());
        }
        by.entry(key).or_default().push(r);
    }
    order
        .into_iter()
        .map(|key| {
            let rows = &by[&key];
            let errors: Vec<f64> = rows.iter().map(|r| r.error).collect();
            RepeatedRow {
                simulated: median(rows.iter().map(|r| r.simulated).collect()),
                measured: median(rows.iter().map(|r| r.measured).collect()),
                error: median(errors.clone()),
                error_min: errors.iter().copied().fold(f64::INFINITY, f64::min),
                error_max: errors.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                runs: rows.len(),
                pipeline: key.0,
                metric: key.1,
            }
        })
        .collect()
}

/// Timing metrics a `--tolerance` applies to (bubble fraction and staleness are compared, not bounded: a small
/// fraction's relative error says little, and the staleness promise is checked on its own).
pub const TOLERANCE_METRICS: [&str; 4] =
    ["median step time (s)", "trained tokens/s", "median rollout per step (s)", "median train per step (s)"];

/// One line per row whose median |error| exceeds `tolerance` (a fraction), for the timing metrics.
pub fn out_of_tolerance(rows: &[RepeatedRow], tolerance: f64) -> Vec<String> {
    rows.iter()
        .filter(|r| TOLERANCE_METRICS.contains(&r.metric.as_str()) && r.error.abs() > tolerance)
        .map(|r| {
            format!(
                "{} {}: error {:+.1} % exceeds the tolerance of {:.1} %",
                r.pipeline,
                r.metric,
                100.0 * r.error,
                100.0 * tolerance
            )
        })
        .collect()
}

/// Checks that two timelines come from the same policy decisions: the same steps, the same trajectories trained in
/// each step, with the same lengths and the same staleness per sample.
pub fn compare_structure(a: &Timeline, b: &Timeline) -> Result<(), String> {
    let key = |t: &Timeline| -> BTreeMap<u64, (Option<u32>, u32, u32)> {
        t.samples
            .iter()
            .map(|s| {
                let (step, lag) = match s.outcome {
                    Outcome::Trained { step, version } => {
                        (Some(step), s.segments.iter().map(|(v, _)| version.saturating_sub(*v)).max().unwrap_or(0))
                    }
                    _ => (None, 0),
                };
                (s.trajectory, (step, s.generated_tokens, lag))
            })
            .collect()
    };
    let (ka, kb) = (key(a), key(b));
    if ka.len() != kb.len() {
        return Err(format!("{} trajectories vs {}", ka.len(), kb.len()));
    }
    for (id, va) in &ka {
        let vb = kb.get(id).ok_or_else(|| format!("trajectory {id} only in one run"))?;
        if va != vb {
            return Err(format!("trajectory {id}: (step, tokens, staleness) {va:?} vs {vb:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(metric: &str, s: f64, m: f64) -> ValidateRow {
        ValidateRow { pipeline: "p".into(), metric: metric.into(), simulated: s, measured: m, error: (s - m) / m }
    }

    #[test]
    fn only_timing_metrics_beyond_the_tolerance_are_reported() {
        let runs = vec![vec![
            row("median step time (s)", 1.2, 1.0),
            row("trained tokens/s", 0.95, 1.0),
            row("bubble fraction", 0.5, 0.1),
        ]];
        let rows = aggregate(&runs);
        let out = out_of_tolerance(&rows, 0.10);
        assert_eq!(out, vec!["p median step time (s): error +20.0 % exceeds the tolerance of 10.0 %".to_string()]);
        assert!(out_of_tolerance(&rows, 0.25).is_empty());
    }

    #[test]
    fn repetitions_are_summarised_by_their_median_and_range() {
        let runs = vec![
            vec![row("a", 1.0, 1.0), row("b", 2.0, 1.0)],
            vec![row("a", 1.2, 1.0), row("b", 2.0, 2.0)],
            vec![row("a", 0.9, 1.0), row("b", 3.0, 2.0)],
        ];
        let agg = aggregate(&runs);
        assert_eq!(agg.len(), 2);
        assert_eq!((agg[0].metric.as_str(), agg[0].runs), ("a", 3));
        assert!((agg[0].error - 0.0).abs() < 1e-12);
        assert!((agg[0].error_min + 0.1).abs() < 1e-12 && (agg[0].error_max - 0.2).abs() < 1e-12);
        assert!((agg[1].error - 0.5).abs() < 1e-12, "{:?}", agg[1]);
    }
}
