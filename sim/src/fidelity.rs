//! The fidelity suite: scenarios of published measurements (`[published]`), simulated and compared per step, per
//! phase and per speed-up, so a change to the cost model shows at once what it does to every known case.

use crate::driver::RunError;
use crate::report::{StepRow, PHASE_COLUMNS};
use crate::scenario::{RawPublished, Scenario, ScenarioError};
use crate::simulator::{simulate_recording, Recording};
use std::path::{Path, PathBuf};

/// The model's own error, quoted wherever rlsim prints a ranking (`compare`, `search`): the mean |relative error|
/// of every comparison in `scenarios/fidelity/` (steps, phases and speed-ups of published runs). `tests/fidelity.rs`
/// recomputes it from the suite and fails when this figure is more than half a point off, so the quote stays true.
pub const MEAN_ABS_ERROR: f64 = 0.151;
/// How many published comparisons `MEAN_ABS_ERROR` averages (checked by the same test).
pub const COMPARISONS: usize = 143;

/// The line `compare` and `search` print under a ranking.
pub fn model_error_note() -> String {
    format!(
        "model error: rlsim's step, phase and speed-up figures differ from {COMPARISONS} published measurements by {:.0} % on average (docs/fidelity.md); a ranking between configurations closer than that rests on the model",
        100.0 * MEAN_ABS_ERROR
    )
}

/// One compared quantity.
#[derive(Clone, Debug, PartialEq)]
pub struct FidelityRow {
    /// The scenario's file stem.
    pub case: String,
    /// `step`, a published phase name, or `speedup over <case>`.
    pub quantity: String,
    pub published: f64,
    pub simulated: f64,
    /// The largest relative error the suite accepts for it.
    pub tolerance: f64,
}

impl FidelityRow {
    /// simulated / published − 1.
    pub fn error(&self) -> f64 {
        self.simulated / self.published - 1.0
    }

    pub fn within(&self) -> bool {
        self.error().abs() <= self.tolerance
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FidelityError {
    #[error("{}: cannot list the fidelity scenarios: {source}", dir.display())]
    Dir { dir: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("{}: {source}", file.display())]
    Simulation { file: PathBuf, source: RunError },
    #[error("{}: no [published] table: a fidelity scenario states what was measured", file.display())]
    NotPublished { file: PathBuf },
    #[error("{}: published.speedup_over names {other:?}, which is not a scenario of this folder", file.display())]
    UnknownBaseline { file: PathBuf, other: String },
    #[error("{}: the run has {steps} steps, not more than the {warmup} warm-up steps (raise workload.steps)", file.display())]
    TooShort { file: PathBuf, steps: usize, warmup: u32 },
}

/// Default tolerances: step ±25 %, phase ±25 %, speed-up ±15 % (the bar for cases beyond the verl 7B table, whose
/// files state ±10 % / ±15 % / ±15 %).
const STEP_TOLERANCE: f64 = 0.25;
const PHASE_TOLERANCE: f64 = 0.25;
const SPEEDUP_TOLERANCE: f64 = 0.15;

/// One simulated case: its published figures and what the simulator says per published step.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub file: PathBuf,
    pub published: RawPublished,
    /// Seconds per published step (steady state: warm-up steps left out), less the phases the published step leaves
    /// out (`step_excludes`).
    pub step_s: f64,
    /// Mean seconds per published step of each steps.csv phase column.
    pub phases: Vec<(String, f64)>,
}

/// Steady-state seconds per published step, and the mean of each phase column, from a run's steps.
fn steady(steps: &[StepRow], warmup: usize, per_published: f64) -> (f64, Vec<(String, f64)>) {
    let kept = &steps[warmup..];
    let n = kept.len() as f64;
    // Period between step ends (the first kept step's own duration when there is only one): robust for pipelines
    // whose steps overlap.
    let period = if kept.len() >= 2 && warmup > 0 {
        (kept[kept.len() - 1].end_s - steps[warmup - 1].end_s) / n
    } else if kept.len() >= 2 {
        (kept[kept.len() - 1].end_s - kept[0].end_s) / (n - 1.0)
    } else {
        kept[0].duration_s
    };
    let mean = |f: fn(&StepRow) -> f64| kept.iter().map(f).sum::<f64>() / n * per_published;
    let columns: [fn(&StepRow) -> f64; 8] = [
        |r| r.rollout_s,
        |r| r.logprob_s,
        |r| r.train_s,
        |r| r.sync_s,
        |r| r.switch_s,
        |r| r.reward_s,
        |r| r.switch_to_rollout_s,
        |r| r.switch_to_train_s,
    ];
    let phases = PHASE_COLUMNS.iter().zip(columns).map(|(name, f)| (name.to_string(), mean(f))).collect();
    (period * per_published, phases)
}

/// The simulated step as the published one counts it: less the phases it leaves out (`step_excludes`).
fn comparable_step(step_s: f64, phases: &[(String, f64)], excludes: &[String]) -> f64 {
    step_s - phases.iter().filter(|(k, _)| excludes.iter().any(|x| x == k)).map(|(_, v)| v).sum::<f64>()
}

/// Simulates one fidelity scenario (with `--set` overrides, for what-if questions).
pub fn run_case(file: &Path, overrides: &[String]) -> Result<Case, FidelityError> {
    let s = Scenario::load(file, overrides)?;
    let published =
        s.resolved.published.clone().ok_or_else(|| FidelityError::NotPublished { file: file.to_path_buf() })?;
    let run = simulate_recording(&s, Recording::SUMMARY)
        .map_err(|source| FidelityError::Simulation { file: file.to_path_buf(), source })?;
    let warmup = published.warmup_steps.unwrap_or(1);
    if run.report.steps.len() <= warmup as usize {
        return Err(FidelityError::TooShort { file: file.to_path_buf(), steps: run.report.steps.len(), warmup });
    }
    let per = published.steps_per_published_step.unwrap_or(1) as f64;
    let (step_s, phases) = steady(&run.report.steps, warmup as usize, per);
    let step_s = comparable_step(step_s, &phases, &published.step_excludes);
    let name = file.file_stem().and_then(|x| x.to_str()).unwrap_or("case").to_string();
    Ok(Case { name, file: file.to_path_buf(), published, step_s, phases })
}

/// The fidelity scenarios of a folder, by file name.
pub fn case_files(dir: &Path) -> Result<Vec<PathBuf>, FidelityError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| FidelityError::Dir { dir: dir.to_path_buf(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Published against simulated, for every case: step, each published phase, and speed-ups over a named baseline.
pub fn compare(cases: &[Case]) -> Result<Vec<FidelityRow>, FidelityError> {
    let mut rows = Vec::new();
    for c in cases {
        let p = &c.published;
        if let Some(step) = p.step_s {
            rows.push(FidelityRow {
                case: c.name.clone(),
                quantity: "step".into(),
                published: step,
                simulated: c.step_s,
                tolerance: p.step_tolerance.unwrap_or(STEP_TOLERANCE),
            });
        }
        for ph in &p.phases {
            let cols = ph.sim.clone().unwrap_or_default();
            let simulated: f64 = c.phases.iter().filter(|(k, _)| cols.contains(k)).map(|(_, v)| v).sum();
            rows.push(FidelityRow {
                case: c.name.clone(),
                quantity: ph.name.clone().unwrap_or_default(),
                published: ph.seconds.unwrap_or(0.0),
                simulated,
                tolerance: ph.tolerance.or(p.phase_tolerance).unwrap_or(PHASE_TOLERANCE),
            });
        }
        if let (Some(base), Some(speedup)) = (&p.speedup_over, p.speedup) {
            let b = cases
                .iter()
                .find(|x| &x.name == base)
                .ok_or_else(|| FidelityError::UnknownBaseline { file: c.file.clone(), other: base.clone() })?;
            rows.push(FidelityRow {
                case: c.name.clone(),
                quantity: format!("speedup over {base}"),
                published: speedup,
                simulated: b.step_s / c.step_s,
                tolerance: p.speedup_tolerance.unwrap_or(SPEEDUP_TOLERANCE),
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: u32, end: f64, rollout: f64) -> StepRow {
        StepRow {
            step,
            start_s: end - 10.0,
            end_s: end,
            duration_s: 10.0,
            rollout_s: rollout,
            train_s: 1.0,
            trained_samples: 1,
            trained_tokens: 1,
            ..StepRow::default()
        }
    }

    #[test]
    fn steady_state_period_and_phase_means() {
        // ends at 20, 30, 42, 50: warm-up 1 → period (50 − 20) / 3 = 10; rollout mean of 4, 5, 6 = 5
        let steps = [row(0, 20.0, 9.0), row(1, 30.0, 4.0), row(2, 42.0, 5.0), row(3, 50.0, 6.0)];
        let (period, phases) = steady(&steps, 1, 1.0);
        assert!((period - 10.0).abs() < 1e-12);
        assert_eq!(phases[0], ("rollout".to_string(), 5.0));
        // four train steps per published step
        let (period4, phases4) = steady(&steps, 1, 4.0);
        assert!((period4 - 40.0).abs() < 1e-12);
        assert_eq!(phases4[2], ("train".to_string(), 4.0));
    }

    #[test]
    fn a_published_step_without_its_sync_is_compared_without_the_simulated_sync() {
        let phases = vec![("train".to_string(), 30.0), ("sync".to_string(), 2.5), ("reward".to_string(), 4.0)];
        assert_eq!(comparable_step(40.0, &phases, &[]), 40.0);
        assert_eq!(comparable_step(40.0, &phases, &["sync".to_string()]), 37.5);
        assert_eq!(comparable_step(40.0, &phases, &["sync".to_string(), "reward".to_string()]), 33.5);
    }

    #[test]
    fn errors_and_tolerance() {
        let r = FidelityRow {
            case: "c".into(),
            quantity: "step".into(),
            published: 100.0,
            simulated: 89.0,
            tolerance: 0.1,
        };
        assert!((r.error() + 0.11).abs() < 1e-12);
        assert!(!r.within());
    }
}
