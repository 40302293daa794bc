//! rlsim-reports: renders a Report — the summary table, `summary.json`, `steps.csv`, `timeline.csv`, the trace
//! (`timeline.json.gz`), `compare.csv`.

pub mod fuzzing;
pub mod output;
pub mod perfetto;
pub mod plots;

pub use perfetto::{write_trace, TimelineDetail};

use rlsim_sim::report::{Report, StepRow, Summary};
use rlsim_sim::timeline::Timeline;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

/// A file that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    pub source: io::Error,
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> WriteError + '_ {
    move |source| WriteError { path: path.to_path_buf(), source }
}

fn csv_at(path: &Path) -> impl Fn(csv::Error) -> WriteError + '_ {
    move |e| WriteError { path: path.to_path_buf(), source: io::Error::other(e) }
}

/// Nanoseconds as exact decimal seconds ("12.000000345").
pub fn ns_to_secs_text(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// Writes a run's files into `dir` at the default timeline detail ([`write_run_detail`]).
pub fn write_run(
    dir: &Path,
    report: &Report,
    timeline: &Timeline,
    resolved_toml: Option<&str>,
) -> Result<Vec<PathBuf>, WriteError> {
    write_run_detail(dir, report, timeline, resolved_toml, TimelineDetail::default())
}

/// Writes a run's files into `dir` (created if needed): `summary.json`, `steps.csv`, and, as `detail` asks,
/// `timeline.csv` (`workers`: without the `generate` rows; `trajectories`: every span) and `timeline.json.gz` (the
/// trace for ui.perfetto.dev, see [`perfetto`]; from `steps` on), and, when given, `scenario.resolved.toml`.
/// Returns the paths written.
pub fn write_run_detail(
    dir: &Path,
    report: &Report,
    timeline: &Timeline,
    resolved_toml: Option<&str>,
    detail: TimelineDetail,
) -> Result<Vec<PathBuf>, WriteError> {
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    let mut written = Vec::new();

    let path = dir.join("summary.json");
    let json = serde_json::to_string_pretty(&report.summary)
        .map_err(|e| WriteError { path: path.clone(), source: e.into() })?;
    std::fs::write(&path, json + "\n").map_err(io_at(&path))?;
    written.push(path);

    let path = dir.join("steps.csv");
    write_steps_csv(&path, &report.steps)?;
    written.push(path);

    if detail >= TimelineDetail::Workers {
        let path = dir.join("timeline.csv");
        write_timeline_csv(&path, timeline, detail >= TimelineDetail::Trajectories)?;
        written.push(path);
    }

    if detail >= TimelineDetail::Steps {
        let path = dir.join("timeline.json.gz");
        write_trace(&path, timeline, &report.steps, detail)?;
        written.push(path);
    }

    if let Some(text) = resolved_toml {
        let path = dir.join("scenario.resolved.toml");
        std::fs::write(&path, text).map_err(io_at(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// `steps.csv`: one row per RL step.
pub fn write_steps_csv(path: &Path, steps: &[StepRow]) -> Result<(), WriteError> {
    let mut w = csv::Writer::from_path(path).map_err(csv_at(path))?;
    if steps.is_empty() {
        w.write_record([
            "step",
            "start_s",
            "end_s",
            "duration_s",
            "rollout_s",
            "logprob_s",
            "train_s",
            "sync_s",
            "switch_s",
            "switch_to_rollout_s",
            "switch_to_train_s",
            "reward_s",
            "trained_samples",
            "trained_tokens",
            "mean_staleness",
            "rollout_wait_s",
            "rollout_tail_s",
            "rollout_pool_busy_fraction",
            "train_pool_busy_fraction",
            "critical_phase",
        ])
        .map_err(csv_at(path))?;
    }
    for row in steps {
        w.serialize(row).map_err(csv_at(path))?;
    }
    w.flush().map_err(io_at(path))
}

/// `timeline.csv`: one row per span (worker, kind, start_s, end_s, step, trajectory, tokens, version), in the order
/// the backend recorded them; the per-trajectory `generate` rows only with `generate`. Times are exact decimal
/// seconds.
pub fn write_timeline_csv(path: &Path, t: &Timeline, generate: bool) -> Result<(), WriteError> {
    let file = std::fs::File::create(path).map_err(io_at(path))?;
    let mut w = csv::Writer::from_writer(io::BufWriter::with_capacity(1 << 20, file));
    w.write_record(["worker", "kind", "start_s", "end_s", "step", "trajectory", "tokens", "version"])
        .map_err(csv_at(path))?;
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    for s in t.spans.iter().filter(|s| generate || s.kind.is_activity()) {
        let worker = t.workers.get(s.worker as usize).map_or_else(|| s.worker.to_string(), |w| w.name.clone());
        w.write_record([
            worker,
            s.kind.name().to_string(),
            ns_to_secs_text(s.start.as_ns()),
            ns_to_secs_text(s.end.as_ns()),
            opt(s.step.map(u64::from)),
            opt(s.trajectory),
            s.tokens.to_string(),
            opt(s.version.map(u64::from)),
        ])
        .map_err(csv_at(path))?;
    }
    w.flush().map_err(io_at(path))
}

/// A plain-text table: a header row, then rows; columns padded to fit. A column whose cells all start like a number
/// (digit, sign) is right-aligned; any other column is left-aligned.
pub fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..cols)
        .map(|i| {
            rows.iter().all(|r| {
                r.get(i).is_none_or(|c| {
                    c.is_empty() || c.chars().next().is_some_and(|ch| ch.is_ascii_digit() || ch == '-' || ch == '+')
                })
            })
        })
        .collect();
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String], header: bool| {
        let mut text = String::new();
        for (i, c) in cells.iter().enumerate().take(cols) {
            let pad = widths[i] - c.chars().count();
            if i > 0 {
                text.push_str("  ");
            }
            if numeric[i] && !header {
                text.push_str(&" ".repeat(pad));
                text.push_str(c);
            } else {
                text.push_str(c);
                text.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut out, &header.iter().map(|h| h.to_string()).collect::<Vec<_>>(), true);
    line(&mut out, &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(), true);
    for r in rows {
        line(&mut out, r, false);
    }
    out
}

/// The summary of one run, as printed by `rlsim run`.
pub fn summary_table(s: &Summary) -> String {
    let mut rows: Vec<Vec<String>> = vec![
        vec!["scenario".into(), s.scenario.clone()],
        vec!["pipeline / backend".into(), format!("{} / {}", s.pipeline, s.backend)],
        vec!["GPUs / seed".into(), format!("{} / {}", s.gpus, s.seed)],
        vec!["train steps".into(), s.steps.to_string()],
        // sim_time_s is the simulated clock for the simulator, the measured one for the real backend.
        vec![
            if s.backend == "sim" { "simulated time" } else { "measured time" }.into(),
            format!("{:.1} s", s.sim_time_s),
        ],
        vec!["mean step time".into(), format!("{:.2} s", s.mean_step_s)],
        vec!["trained tokens/s".into(), format!("{:.0}", s.tokens_per_s)],
        vec!["trained samples/s".into(), format!("{:.2}", s.samples_per_s)],
        vec!["GPU utilisation".into(), format!("{:.1} %", 100.0 * s.gpu_util)],
        vec!["bubble (idle GPU-time)".into(), format!("{:.1} %", 100.0 * s.bubble_fraction)],
        vec!["sync + switch GPU-time".into(), format!("{:.1} %", 100.0 * s.overhead_fraction)],
        vec![
            "utilisation by tag".into(),
            s.utilization_by_tag.iter().map(|(t, u)| format!("{t} {:.1} %", 100.0 * u)).collect::<Vec<_>>().join(", "),
        ],
        vec![
            "pool busy: rollout / train".into(),
            format!("{:.1} % / {:.1} %", 100.0 * s.rollout_pool_busy_fraction, 100.0 * s.train_pool_busy_fraction),
        ],
        vec![
            format!("steady step (from step {}): wait / tail / train / sync+switch", s.steady_from_step),
            format!(
                "{:.1} % / {:.1} % / {:.1} % / {:.1} %",
                100.0 * s.step_rollout_wait_fraction,
                100.0 * s.step_rollout_tail_fraction,
                100.0 * s.step_train_fraction,
                100.0 * s.step_sync_switch_fraction
            ),
        ],
        vec!["bottleneck".into(), s.bottleneck.clone()],
        vec!["staleness mean / max".into(), format!("{:.3} / {}", s.mean_staleness, s.max_staleness)],
        vec!["off-policy trained tokens".into(), format!("{:.1} %", 100.0 * s.off_policy_token_fraction)],
        vec![
            "paused / resumed / migrated".into(),
            ["paused", "resumed", "migrated"]
                .iter()
                .map(|k| s.counters.get(*k).copied().unwrap_or(0).to_string())
                .collect::<Vec<_>>()
                .join(" / "),
        ],
        vec!["switches / GPU-time switching".into(), format!("{} / {:.1} GPU-s", s.switches, s.switch_gpu_s)],
        vec![
            "cost per step / per M trained tokens".into(),
            format!("${:.2} / ${:.2}", s.usd_per_step, s.usd_per_million_trained_tokens),
        ],
        vec![
            "tokens gen / trained / in flight / discarded".into(),
            format!("{} / {} / {} / {}", s.generated_tokens, s.trained_tokens, s.in_flight_tokens, s.discarded_tokens),
        ],
        vec!["events / wall time".into(), format!("{} / {:.3} s", s.events, s.wall_s)],
    ];
    if s.coarsen > 1 {
        rows.insert(
            2,
            vec![
                "coarse-grained (approximate)".into(),
                format!("each simulated group stands for {} identical ones (workload.coarsen)", s.coarsen),
            ],
        );
    }
    let mut out = text_table(&["metric", "value"], &rows);
    let _ = writeln!(out, "verdict: {}", s.verdict);
    out
}

/// One row of `compare.csv` / the comparison table.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct CompareRow {
    pub scenario: String,
    pub pipeline: String,
    pub gpus: u32,
    pub steps: u32,
    pub sim_time_s: f64,
    pub mean_step_s: f64,
    pub tokens_per_s: f64,
    /// Throughput relative to the first row.
    pub speedup: f64,
    pub gpu_util: f64,
    pub bubble_fraction: f64,
    pub mean_staleness: f64,
    pub max_staleness: u32,
    pub off_policy_token_fraction: f64,
    pub trained_tokens: u64,
    /// Trajectories paused / migrated to another worker, retags and GPU-seconds spent on them.
    pub paused: u64,
    pub migrated: u64,
    pub switches: u64,
    pub switch_gpu_s: f64,
    pub failures: u64,
    pub lost_gpu_s: f64,
    pub usd_per_step: f64,
    pub usd_per_million_trained_tokens: f64,
    /// Appended after the columns above, so a `compare.csv` written before them still reads (as 0 / empty).
    #[serde(default)]
    pub rollout_pool_busy_fraction: f64,
    #[serde(default)]
    pub train_pool_busy_fraction: f64,
    #[serde(default)]
    pub bottleneck: String,
    #[serde(default)]
    pub verdict: String,
    /// Seeds the row was run on (`compare --seeds N`); `tokens_per_s` and `speedup` are then means over them and
    /// these the lowest and highest throughput seen. Older files read as one seed with an empty range.
    #[serde(default = "one_seed")]
    pub seeds: u32,
    #[serde(default)]
    pub tokens_per_s_min: f64,
    #[serde(default)]
    pub tokens_per_s_max: f64,
}

fn one_seed() -> u32 {
    1
}

/// Comparison rows from summaries (one seed each); speedups are against the first.
pub fn compare_rows(summaries: &[Summary]) -> Vec<CompareRow> {
    compare_rows_seeded(&summaries.iter().map(|s| vec![s.clone()]).collect::<Vec<_>>())
}

/// Comparison rows from each configuration's runs on several seeds (the first is the scenario's own seed and gives
/// every column but throughput): tokens/s is the mean over the seeds, with its range; speedups compare means,
/// against the first row.
pub fn compare_rows_seeded(runs: &[Vec<Summary>]) -> Vec<CompareRow> {
    let mean = |r: &[Summary]| r.iter().map(|s| s.tokens_per_s).sum::<f64>() / r.len().max(1) as f64;
    let base = runs.first().map_or(0.0, |r| mean(r));
    runs.iter()
        .filter(|r| !r.is_empty())
        .map(|r| (&r[0], r, mean(r)))
        .map(|(s, r, tokens_per_s)| CompareRow {
            scenario: s.scenario.clone(),
            pipeline: s.pipeline.clone(),
            gpus: s.gpus,
            steps: s.steps,
            sim_time_s: s.sim_time_s,
            mean_step_s: s.mean_step_s,
            tokens_per_s,
            speedup: if base > 0.0 { tokens_per_s / base } else { 0.0 },
            gpu_util: s.gpu_util,
            bubble_fraction: s.bubble_fraction,
            mean_staleness: s.mean_staleness,
            max_staleness: s.max_staleness,
            off_policy_token_fraction: s.off_policy_token_fraction,
            trained_tokens: s.trained_tokens,
            paused: s.counters.get("paused").copied().unwrap_or(0),
            migrated: s.counters.get("migrated").copied().unwrap_or(0),
            switches: s.switches,
            switch_gpu_s: s.switch_gpu_s,
            failures: s.failures,
            lost_gpu_s: s.lost_gpu_s,
            usd_per_step: s.usd_per_step,
            usd_per_million_trained_tokens: s.usd_per_million_trained_tokens,
            rollout_pool_busy_fraction: s.rollout_pool_busy_fraction,
            train_pool_busy_fraction: s.train_pool_busy_fraction,
            bottleneck: s.bottleneck.clone(),
            verdict: s.verdict.clone(),
            seeds: r.len() as u32,
            tokens_per_s_min: r.iter().map(|s| s.tokens_per_s).fold(f64::INFINITY, f64::min),
            tokens_per_s_max: r.iter().map(|s| s.tokens_per_s).fold(0.0, f64::max),
        })
        .collect()
}

/// When rows ran on several seeds: a note if the two fastest are within seed-to-seed noise (their ranges overlap),
/// so a user does not read a ranking into a difference the seeds alone produce.
pub fn noise_note(rows: &[CompareRow]) -> Option<String> {
    if rows.iter().all(|r| r.seeds < 2) || rows.len() < 2 {
        return None;
    }
    let mut order: Vec<&CompareRow> = rows.iter().collect();
    order.sort_by(|a, b| b.tokens_per_s.total_cmp(&a.tokens_per_s));
    let (a, b) = (order[0], order[1]);
    (b.tokens_per_s_max >= a.tokens_per_s_min).then(|| {
        format!(
            "note: the two fastest, {} / {} ({:.0} tokens/s, seeds {:.0}–{:.0}) and {} / {} ({:.0}, {:.0}–{:.0}), are within seed-to-seed noise",
            a.scenario,
            a.pipeline,
            a.tokens_per_s,
            a.tokens_per_s_min,
            a.tokens_per_s_max,
            b.scenario,
            b.pipeline,
            b.tokens_per_s,
            b.tokens_per_s_min,
            b.tokens_per_s_max
        )
    })
}

/// The comparison table printed by `rlsim compare`: the rows, a legend, each row's verdict and the model's error.
pub fn compare_table(rows: &[CompareRow]) -> String {
    let seeded = rows.iter().any(|r| r.seeds > 1);
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.scenario.clone(),
                r.pipeline.clone(),
                r.gpus.to_string(),
                r.steps.to_string(),
                format!("{:.2}", r.mean_step_s),
                format!("{:.0}", r.tokens_per_s),
                format!("{:.2}x", r.speedup),
                format!("{:.1}", 100.0 * r.gpu_util),
                format!("{:.1}", 100.0 * r.bubble_fraction),
                format!("{:.2}", r.mean_staleness),
                format!("{:.2}", r.usd_per_million_trained_tokens),
                r.max_staleness.to_string(),
                format!("{:.1}", 100.0 * r.off_policy_token_fraction),
                format!("{:.1}", 100.0 * r.rollout_pool_busy_fraction),
                format!("{:.1}", 100.0 * r.train_pool_busy_fraction),
                r.bottleneck.clone(),
            ];
            if seeded {
                row.insert(6, format!("{:.0}–{:.0}", r.tokens_per_s_min, r.tokens_per_s_max));
            }
            row
        })
        .collect();
    let mut header = vec![
        "scenario",
        "pipeline",
        "GPUs",
        "steps",
        "step s",
        "tokens/s",
        "speedup",
        "util %",
        "bubble %",
        "staleness",
        "$/M tok",
        "max stale",
        "off-policy %",
        "rollout busy %",
        "train busy %",
        "bottleneck",
    ];
    if seeded {
        header.insert(6, "seed range");
    }
    let mut out = text_table(&header, &body);
    let _ = writeln!(
        out,
        "speedup: trained tokens/s relative to the first row; staleness: mean policy versions between generating \
         and training a token; off-policy %: trained tokens from an older policy; busy %: share of each pool's \
         GPU-time computing"
    );
    if seeded {
        let _ = writeln!(out, "tokens/s and speedup: means over each row's seeds (seed range: lowest–highest)");
    }
    for r in rows {
        let _ = writeln!(out, "{} / {}: {}", r.scenario, r.pipeline, r.verdict);
    }
    // `noise_note` is not part of the table: `rlsim compare` prints it on stderr with its other notes.
    if rows.len() > 1 {
        let _ = writeln!(out, "{}", rlsim_sim::fidelity::model_error_note());
    }
    out
}

/// Writes `compare.csv`.
pub fn write_compare_csv(path: &Path, rows: &[CompareRow]) -> Result<(), WriteError> {
    let mut w = csv::Writer::from_path(path).map_err(csv_at(path))?;
    for r in rows {
        w.serialize(r).map_err(csv_at(path))?;
    }
    w.flush().map_err(io_at(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `compare.csv` as written before the bottleneck and seed columns existed.
    const OLD_COMPARE_CSV: &str =
        "scenario,pipeline,gpus,steps,sim_time_s,mean_step_s,tokens_per_s,speedup,gpu_util,bubble_fraction,\
         mean_staleness,max_staleness,off_policy_token_fraction,trained_tokens,paused,migrated,switches,\
         switch_gpu_s,failures,lost_gpu_s,usd_per_step,usd_per_million_trained_tokens\n\
         s,async,8,5,10.0,2.0,100.0,1.0,0.5,0.4,0.9,2,0.95,1000,0,0,0,0.0,0,0.0,0.1,3.0\n";

    /// An empty steps.csv names the same columns, in the same order, as one with rows (its header is written by
    /// hand; a row's comes from `StepRow`'s fields).
    #[test]
    fn an_empty_steps_csv_has_the_full_header() {
        let dir = std::env::temp_dir().join(format!("rlsim-steps-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (empty, full) = (dir.join("empty.csv"), dir.join("full.csv"));
        write_steps_csv(&empty, &[]).unwrap();
        let row = StepRow { end_s: 1.0, duration_s: 1.0, ..StepRow::default() };
        write_steps_csv(&full, &[row]).unwrap();
        let header = |p: &Path| std::fs::read_to_string(p).unwrap().lines().next().unwrap().to_string();
        assert_eq!(header(&empty), header(&full));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn seconds_text_is_exact() {
        assert_eq!(ns_to_secs_text(0), "0.000000000");
        assert_eq!(ns_to_secs_text(12_000_000_345), "12.000000345");
    }

    #[test]
    fn compare_csv_round_trips_and_one_without_the_bottleneck_columns_still_reads() {
        let dir = std::env::temp_dir().join(format!("rlsim-compare-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("compare.csv");
        std::fs::write(&path, OLD_COMPARE_CSV).unwrap();
        let rows = plots::read_compare_csv(&path).unwrap();
        assert_eq!((rows[0].max_staleness, rows[0].off_policy_token_fraction), (2, 0.95));
        assert_eq!((rows[0].bottleneck.as_str(), rows[0].rollout_pool_busy_fraction), ("", 0.0));
        let mut row = rows[0].clone();
        row.bottleneck = "train".into();
        row.verdict = "train-bound: train pool busy 97 %, rollout pool 41 % — give training more GPUs".into();
        row.train_pool_busy_fraction = 0.97;
        write_compare_csv(&path, std::slice::from_ref(&row)).unwrap();
        assert_eq!(plots::read_compare_csv(&path).unwrap(), vec![row.clone()]);
        let table = compare_table(&[row]);
        assert!(table.contains("off-policy %") && table.contains("95.0") && table.contains("train"), "{table}");
        assert!(table
            .ends_with("s / async: train-bound: train pool busy 97 %, rollout pool 41 % — give training more GPUs\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn seeded_rows_show_their_range_and_a_note_when_the_leaders_overlap() {
        let dir = std::env::temp_dir().join(format!("rlsim-compare-seeds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("compare.csv");
        std::fs::write(&path, OLD_COMPARE_CSV).unwrap();
        let one = plots::read_compare_csv(&path).unwrap().remove(0);
        assert_eq!(one.seeds, 1, "an older file reads as one seed");
        assert!(noise_note(&[one.clone(), one.clone()]).is_none(), "one seed: no range, no note");
        let row = |pipeline: &str, mean: f64, lo: f64, hi: f64| CompareRow {
            pipeline: pipeline.into(),
            tokens_per_s: mean,
            tokens_per_s_min: lo,
            tokens_per_s_max: hi,
            seeds: 3,
            ..one.clone()
        };
        let close = [row("a", 100.0, 98.0, 102.0), row("b", 101.0, 99.5, 103.0), row("c", 50.0, 49.0, 51.0)];
        let note = noise_note(&close).expect("b and a overlap");
        assert!(note.starts_with("note: the two fastest, s / b (101 tokens/s, seeds 100–103) and s / a"), "{note}");
        let apart = [row("a", 100.0, 98.0, 102.0), row("b", 120.0, 118.0, 121.0)];
        assert!(noise_note(&apart).is_none());
        let table = compare_table(&close);
        assert!(table.contains("seed range") && table.contains("98–102"), "{table}");
        assert!(!table.contains("note: the two fastest"), "the note goes to stderr, not in the table: {table}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn table_pads_columns() {
        let t = text_table(&["a", "bb"], &[vec!["xyz".into(), "1".into()], vec!["q".into(), "22".into()]]);
        assert_eq!(t, "a    bb\n---  --\nxyz   1\nq    22\n");
    }
}
