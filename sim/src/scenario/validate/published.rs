//! `[published]`: data for `rlsim fidelity`, checked here so a typo fails `check`, not the suite.

use crate::scenario::check::{Check, MAX_SECONDS};
use crate::scenario::{RawPublished, ScenarioError};

/// The `[published]` table is data for `rlsim fidelity`; it is checked here so a typo fails `check`, not the suite.
pub(super) fn validate_published(p: &RawPublished, c: &Check) -> Result<(), ScenarioError> {
    let secs = |v: Option<f64>, field: &str| -> Result<(), ScenarioError> {
        if let Some(v) = v {
            c.positive(Some(v), field, None, MAX_SECONDS, "published seconds")?;
        }
        Ok(())
    };
    secs(p.step_s, "published.step_s")?;
    let known = |cols: &[String], field: &str| -> Result<(), ScenarioError> {
        for col in cols {
            if !crate::report::PHASE_COLUMNS.contains(&col.as_str()) {
                return Err(c.src.error(
                    field,
                    format!("unknown column {col:?}; expected some of {}", crate::report::PHASE_COLUMNS.join(", ")),
                ));
            }
        }
        Ok(())
    };
    known(&p.step_excludes, "published.step_excludes")?;
    for (i, ph) in p.phases.iter().enumerate() {
        let f = |k: &str| format!("published.phases[{i}].{k}");
        c.require(ph.name.clone(), &f("name"), "the phase's published name")?;
        let s = c.require(ph.seconds, &f("seconds"), "published seconds")?;
        secs(Some(s), &f("seconds"))?;
        let cols = c.require(ph.sim.clone(), &f("sim"), "a list of steps.csv columns")?;
        known(&cols, &f("sim"))?;
        let has = |name: &str| cols.iter().any(|col| col == name);
        if has("switch") && (has("switch_to_rollout") || has("switch_to_train")) {
            return Err(c.src.error(
                &f("sim"),
                "`switch` already holds `switch_to_rollout` and `switch_to_train`: give it or its directions",
            ));
        }
        if let Some(t) = ph.tolerance {
            c.number(Some(t), &f("tolerance"), 0.0, 0.0, 10.0, "a relative error")?;
        }
    }
    if p.speedup.is_some() != p.speedup_over.is_some() {
        return Err(c.src.error("published.speedup", "give `speedup` and `speedup_over` together"));
    }
    if let Some(v) = p.speedup {
        c.positive(Some(v), "published.speedup", None, 1000.0, "a step-time ratio")?;
    }
    if let Some(n) = p.steps_per_published_step {
        c.count(Some(n), "published.steps_per_published_step", None, "train steps per published step")?;
    }
    for (v, f) in [
        (p.step_tolerance, "published.step_tolerance"),
        (p.phase_tolerance, "published.phase_tolerance"),
        (p.speedup_tolerance, "published.speedup_tolerance"),
    ] {
        if let Some(v) = v {
            c.number(Some(v), f, 0.0, 0.0, 10.0, "a relative error")?;
        }
    }
    Ok(())
}
