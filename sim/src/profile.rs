//! Hardware profiles: cost-model parameters measured on a real device by `rlsim profile`, which a scenario can name
//! (`[hardware] profile = "..."`) so the simulator predicts that device instead of using datasheet formulas.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a profile's train lines count (`HardwareProfile::train_unit`).
pub const TRAIN_UNIT: &str = "padded slot";

/// Fitted linear costs (seconds) of the real backend's operations on one device with one model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareProfile {
    /// The device measured, e.g. "cpu (2 threads)" or "cuda:0 NVIDIA H100 80GB HBM3".
    pub device: String,
    /// The machine measured: host name, CPU model and CPU count (`validate` warns when it runs elsewhere).
    pub host: String,
    /// The model measured, e.g. "layers=2 d_model=64 heads=4 vocab=32 context=192".
    pub model: String,
    /// Decode iteration: overhead + per_seq·B + per_context_token·(total context of the batch).
    pub decode_overhead_s: f64,
    pub decode_s_per_seq: f64,
    pub decode_s_per_context_token: f64,
    /// Prefill: per_seq·(sequences prefilled) + per_token·(tokens prefilled).
    pub prefill_s_per_seq: f64,
    pub prefill_s_per_token: f64,
    /// One forward-only log-prob pass: overhead + per_token·T, T the padded token slots of the slowest rank's share
    /// (the real trainer computes each micro-batch at its longest sample: `costs::train::padded_slowest_rank_tokens`).
    pub logprob_overhead_s: f64,
    pub logprob_s_per_token: f64,
    /// One update (forward, backward, optimizer, all-reduces) with the scenario's mini-batches: overhead +
    /// per_token·T, T the padded token slots of the slowest rank summed over the optimizer steps.
    pub update_overhead_s: f64,
    pub update_s_per_token: f64,
    /// One weight sync (snapshot the trainer's weights, load them into an engine).
    pub sync_s: f64,
    /// One role switch, half a round trip (the engine's weights and KV cache, and the training state where the
    /// framework offloads it), timed after the caches were evicted, as a run switches.
    pub switch_s: f64,
    /// Ranks the train passes were timed with, all at once (the layout's train workers).
    pub train_ranks: u32,
    /// One gradient all-reduce between two data-parallel ranks (once per optimizer step when a group has more
    /// than one rank).
    pub allreduce_s: f64,
    /// What the train lines count: "padded slot" (each micro-batch at its longest sample, as the real trainer
    /// computes it). Profiles measured before 2026-11-29 counted real tokens and lack this field; `load` refuses them.
    #[serde(default)]
    pub train_unit: String,
    /// The raw measurements behind the fit: (what, x1, x2, seconds).
    #[serde(default)]
    pub samples: Vec<ProfileSample>,
}

/// One timed measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSample {
    pub what: String,
    pub x1: f64,
    pub x2: f64,
    pub seconds: f64,
}

impl HardwareProfile {
    /// This machine as `host` names it: host name, CPU model, CPU count.
    pub fn this_host() -> String {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown host".into());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        format!("{name} / {cpu} / {cpus} CPUs")
    }

    /// Reads a profile file; errors carry the file and the TOML error's line and column.
    pub fn load(path: &Path) -> Result<HardwareProfile, String> {
        // A profile is a few kilobytes of TOML; 16 MiB bounds a wrong path (a device, a huge file).
        let text = crate::textfile::read_regular_text(path, 16 << 20)
            .map_err(|e| format!("{}: cannot read profile: {e}", path.display()))?;
        let p: HardwareProfile = toml::from_str(&text).map_err(|e| {
            let (line, col) = e.span().map_or((0, 0), |s| {
                let before = &text[..s.start.min(text.len())];
                (before.matches('\n').count() + 1, before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1)
            });
            format!("{}:{line}:{col}: {}", path.display(), e.message().trim())
        })?;
        if p.train_unit != TRAIN_UNIT {
            return Err(format!(
                "{}: field `train_unit`: expected \"{TRAIN_UNIT}\", got {:?}: this profile's log-prob and update lines \
                 count real tokens (measured before 2026-11-29); measure it again with `rlsim profile`",
                path.display(),
                p.train_unit
            ));
        }
        let values = [
            ("decode_overhead_s", p.decode_overhead_s),
            ("decode_s_per_seq", p.decode_s_per_seq),
            ("decode_s_per_context_token", p.decode_s_per_context_token),
            ("prefill_s_per_seq", p.prefill_s_per_seq),
            ("prefill_s_per_token", p.prefill_s_per_token),
            ("logprob_overhead_s", p.logprob_overhead_s),
            ("logprob_s_per_token", p.logprob_s_per_token),
            ("update_overhead_s", p.update_overhead_s),
            ("update_s_per_token", p.update_s_per_token),
            ("sync_s", p.sync_s),
            ("switch_s", p.switch_s),
            ("allreduce_s", p.allreduce_s),
        ];
        if let Some((name, v)) = values.iter().find(|(_, v)| !v.is_finite() || *v < 0.0) {
            return Err(format!(
                "{}: field `{name}`: expected a non-negative number of seconds, got {v}",
                path.display()
            ));
        }
        Ok(p)
    }

    /// Writes the profile as TOML with a header comment.
    pub fn to_toml(&self, header: &str) -> String {
        let body = toml::to_string_pretty(self).expect("a profile always serialises");
        let comment: String = header.lines().map(|l| format!("# {l}\n")).collect();
        format!("{comment}{body}")
    }
}

/// Least-squares fit of y = c0 + c1·x1 + c2·x2 (columns given by `xs`), solved by normal equations; coefficients
/// below zero are clamped to zero and the rest refitted (a cost never shrinks with more work).
pub fn fit_linear(xs: &[Vec<f64>], y: &[f64]) -> Vec<f64> {
    let k = xs.first().map_or(0, |r| r.len());
    let mut active: Vec<bool> = vec![true; k];
    loop {
        let idx: Vec<usize> = (0..k).filter(|&j| active[j]).collect();
        let m = idx.len();
        let mut a = vec![vec![0.0; m + 1]; m];
        for (row, &yi) in xs.iter().zip(y) {
            for (p, &i) in idx.iter().enumerate() {
                for (q, &j) in idx.iter().enumerate() {
                    a[p][q] += row[i] * row[j];
                }
                a[p][m] += row[i] * yi;
            }
        }
        let sol = solve(a);
        let mut coef = vec![0.0; k];
        for (p, &i) in idx.iter().enumerate() {
            coef[i] = sol[p];
        }
        if let Some(j) = idx.iter().copied().find(|&j| coef[j] < 0.0) {
            active[j] = false;
            continue;
        }
        return coef;
    }
}

/// Gaussian elimination with partial pivoting on an augmented matrix; singular columns get 0.
fn solve(mut a: Vec<Vec<f64>>) -> Vec<f64> {
    let n = a.len();
    for c in 0..n {
        let pivot = (c..n).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs())).unwrap_or(c);
        a.swap(c, pivot);
        if a[c][c].abs() < 1e-300 {
            continue;
        }
        let pivot_row = a[c].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != c {
                let f = row[c] / pivot_row[c];
                for (x, p) in row.iter_mut().zip(&pivot_row).skip(c) {
                    *x -= f * p;
                }
            }
        }
    }
    (0..n).map(|i| if a[i][i].abs() < 1e-300 { 0.0 } else { a[i][n] / a[i][i] }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_recovers_exact_coefficients_and_clamps_negatives() {
        let xs: Vec<Vec<f64>> = (0..6).map(|i| vec![1.0, i as f64, (i * i) as f64]).collect();
        let y: Vec<f64> = xs.iter().map(|r| 2.0 + 3.0 * r[1] + 0.5 * r[2]).collect();
        let c = fit_linear(&xs, &y);
        assert!((c[0] - 2.0).abs() < 1e-9 && (c[1] - 3.0).abs() < 1e-9 && (c[2] - 0.5).abs() < 1e-9, "{c:?}");
        // y = 5·x: an intercept would come out negative with noise; it is clamped and the slope refitted.
        let xs: Vec<Vec<f64>> = [1.0, 2.0, 3.0].iter().map(|&x| vec![1.0, x]).collect();
        let c = fit_linear(&xs, &[4.0, 10.5, 15.0]);
        assert_eq!(c[0], 0.0);
        assert!((c[1] - (4.0 + 21.0 + 45.0) / 14.0).abs() < 1e-9);
    }
}
