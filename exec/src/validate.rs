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

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
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
