//! `--seeds N`: a scenario on its own seed and the N − 1 seeds after it (seed + 1, + 2, …), and the spread of a
//! figure over those runs. `compare`, `run` and `sweep` share it so that "3 seeds" means the same runs everywhere.

use rlsim_sim::report::Summary;
use rlsim_sim::scenario::Scenario;

/// The scenario on seeds seed + 1, …, seed + (seeds − 1): the runs besides the scenario's own (none for one seed).
/// The resolved scenario carries the seed too, so a run's `scenario.resolved.toml` would reproduce it.
pub fn others(s: &Scenario, seeds: usize) -> Vec<Scenario> {
    (1..seeds as u64)
        .map(|k| {
            let mut other = s.clone();
            other.seed = s.seed.wrapping_add(k);
            other.resolved.seed = Some(other.seed);
            other
        })
        .collect()
}

/// A figure's mean and range over the seeds.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Spread {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// Over the values (0 for none).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return Spread { mean: 0.0, min: 0.0, max: 0.0 };
        }
        Spread {
            mean: v.iter().sum::<f64>() / v.len() as f64,
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// What `--seeds N` reports for one configuration: trained tokens/s and mean step time over its runs.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SeedStats {
    /// The seeds run, the scenario's own first.
    pub seeds: Vec<u64>,
    pub tokens_per_s: Spread,
    pub mean_step_s: Spread,
}

impl SeedStats {
    /// From the runs' summaries, the scenario's own seed first.
    pub fn of(runs: &[Summary]) -> SeedStats {
        SeedStats {
            seeds: runs.iter().map(|s| s.seed).collect(),
            tokens_per_s: Spread::of(runs.iter().map(|s| s.tokens_per_s)),
            mean_step_s: Spread::of(runs.iter().map(|s| s.mean_step_s)),
        }
    }

    /// The table `run --seeds N` prints under the summary of the scenario's own seed.
    pub fn table(&self) -> String {
        let seeds: Vec<String> = self.seeds.iter().map(u64::to_string).collect();
        let rows = vec![
            vec![
                "trained tokens/s".to_string(),
                format!("{:.0}", self.tokens_per_s.mean),
                format!("{:.0}", self.tokens_per_s.min),
                format!("{:.0}", self.tokens_per_s.max),
            ],
            vec![
                "mean step time s".to_string(),
                format!("{:.2}", self.mean_step_s.mean),
                format!("{:.2}", self.mean_step_s.min),
                format!("{:.2}", self.mean_step_s.max),
            ],
        ];
        let head = format!("over {} seeds ({})", seeds.len(), seeds.join(", "));
        rlsim_reports::text_table(&[&head, "mean", "min", "max"], &rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_mean_and_the_extremes() {
        assert_eq!(Spread::of([3.0, 1.0, 2.0]), Spread { mean: 2.0, min: 1.0, max: 3.0 });
        assert_eq!(Spread::of([]), Spread { mean: 0.0, min: 0.0, max: 0.0 });
    }

    #[test]
    fn other_seeds_follow_the_scenarios_own() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
        let s = Scenario::load(&path, &["seed=7".to_string()]).unwrap();
        let o = others(&s, 3);
        assert_eq!(o.iter().map(|x| x.seed).collect::<Vec<_>>(), [8, 9]);
        assert_eq!(o[1].resolved.seed, Some(9));
        assert!(others(&s, 1).is_empty());
    }
}
