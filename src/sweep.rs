//! `rlsim sweep` and `rlsim merge`: the cartesian product of `--vary KEY=V1,V2,...` run in parallel (rayon), sliced
//! with `--shard I/N` for array jobs, and shards joined back into the same `sweep.csv` an unsharded run writes.

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use rlsim_sim::report::Summary;
use rlsim_sim::scenario::Scenario;
use rlsim_sim::simulator::simulate;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// One `--vary` axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

/// Simulates scenarios in parallel on `jobs` threads, with a progress bar on a terminal (none otherwise); results
/// come back in input order.
pub fn simulate_all(scenarios: &[Scenario], jobs: usize) -> Result<Vec<Result<Summary>>> {
    let bar = indicatif::ProgressBar::new(scenarios.len() as u64);
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {elapsed} elapsed, ~{eta} left")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs.max(1)).build()?;
    let results = pool.install(|| {
        scenarios
            .par_iter()
            .map(|s| {
                let r = simulate(s).map(|run| run.report.summary).with_context(|| format!("simulating {}", s.name));
                bar.inc(1);
                r
            })
            .collect()
    });
    bar.finish_and_clear();
    Ok(results)
}

/// Parses `KEY=V1,V2,...`.
pub fn parse_axis(text: &str) -> Result<Axis> {
    let (key, values) = text.split_once('=').with_context(|| format!("--vary {text}: expected KEY=V1,V2,..."))?;
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
    if key.trim().is_empty() || values.is_empty() {
        bail!("--vary {text}: expected KEY=V1,V2,... with at least one value");
    }
    Ok(Axis { key: key.trim().to_string(), values })
}

/// Every point of the product, in order: the last axis varies fastest.
pub fn points(axes: &[Axis]) -> Vec<Vec<String>> {
    axes.iter().fold(vec![Vec::new()], |acc, axis| {
        acc.iter().flat_map(|p| axis.values.iter().map(move |v| [p.clone(), vec![v.clone()]].concat())).collect()
    })
}

/// `I/N` → (I, N), with 0 ≤ I < N (Slurm's SLURM_ARRAY_TASK_ID and Kubernetes' JOB_COMPLETION_INDEX count from 0).
pub fn parse_shard(text: &str) -> Result<(usize, usize)> {
    let (i, n) = text.split_once('/').with_context(|| format!("--shard {text}: expected I/N, e.g. 0/4"))?;
    let (i, n): (usize, usize) = (i.trim().parse()?, n.trim().parse()?);
    if n == 0 || i >= n {
        bail!("--shard {text}: expected 0 ≤ I < N");
    }
    Ok((i, n))
}

/// The summary columns of `sweep.csv`, after `point` and the varied keys. `wall_s` is the only one that differs
/// between identical runs.
const SUMMARY_COLUMNS: &[&str] = &[
    "scenario",
    "pipeline",
    "gpus",
    "steps",
    "sim_time_s",
    "generated_tokens",
    "trained_tokens",
    "discarded_tokens",
    "in_flight_tokens",
    "tokens_per_s",
    "samples_per_s",
    "mean_step_s",
    "gpu_util",
    "bubble_fraction",
    "overhead_fraction",
    "mean_staleness",
    "max_staleness",
    "off_policy_token_fraction",
    "usd_per_step",
    "usd_per_million_trained_tokens",
    "events",
    "wall_s",
];

fn summary_cells(s: &Summary) -> Vec<String> {
    vec![
        s.scenario.clone(),
        s.pipeline.clone(),
        s.gpus.to_string(),
        s.steps.to_string(),
        s.sim_time_s.to_string(),
        s.generated_tokens.to_string(),
        s.trained_tokens.to_string(),
        s.discarded_tokens.to_string(),
        s.in_flight_tokens.to_string(),
        s.tokens_per_s.to_string(),
        s.samples_per_s.to_string(),
        s.mean_step_s.to_string(),
        s.gpu_util.to_string(),
        s.bubble_fraction.to_string(),
        s.overhead_fraction.to_string(),
        s.mean_staleness.to_string(),
        s.max_staleness.to_string(),
        s.off_policy_token_fraction.to_string(),
        s.usd_per_step.to_string(),
        s.usd_per_million_trained_tokens.to_string(),
        s.events.to_string(),
        s.wall_s.to_string(),
    ]
}

/// Runs the sweep (or one shard of it) and writes `out/sweep.csv`, and with `plots` a curve per varied key.
/// Returns the rows written.
pub fn sweep(
    path: &Path,
    axes: &[Axis],
    base: &[String],
    jobs: usize,
    shard: Option<(usize, usize)>,
    out: &Path,
    plots: bool,
) -> Result<usize> {
    let all = points(axes);
    let (index, count) = shard.unwrap_or((0, 1));
    let mine: Vec<(usize, Vec<String>)> = all.into_iter().enumerate().filter(|(i, _)| i % count == index).collect();
    // Validate every point before running any, so a typo fails fast with the file and field named.
    let mut scenarios = Vec::with_capacity(mine.len());
    for (i, values) in &mine {
        let mut sets = base.to_vec();
        sets.extend(axes.iter().zip(values).map(|(a, v)| format!("{}={v}", a.key)));
        let s = Scenario::load(path, &sets).with_context(|| format!("sweep point {i} ({})", values.join(", ")))?;
        scenarios.push(s);
    }
    let results = simulate_all(&scenarios, jobs)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let file = out.join("sweep.csv");
    let mut w = csv::Writer::from_path(&file).with_context(|| format!("writing {}", file.display()))?;
    let mut header = vec!["point".to_string()];
    header.extend(axes.iter().map(|a| a.key.clone()));
    header.extend(SUMMARY_COLUMNS.iter().map(|c| c.to_string()));
    w.write_record(&header)?;
    let mut plotted = Vec::new();
    for ((i, values), r) in mine.iter().zip(results) {
        let s = r?;
        let mut row = vec![i.to_string()];
        row.extend(values.iter().cloned());
        row.extend(summary_cells(&s));
        w.write_record(&row)?;
        plotted.push(rlsim_reports::plots::SweepPoint { values: values.clone(), tokens_per_s: s.tokens_per_s });
    }
    w.flush()?;
    if plots {
        let keys: Vec<String> = axes.iter().map(|a| a.key.clone()).collect();
        let values: Vec<Vec<String>> = axes.iter().map(|a| a.values.clone()).collect();
        rlsim_reports::plots::plot_sweep(out, &keys, &values, &plotted)?;
    }
    Ok(mine.len())
}

/// Draws the curves of a sweep folder from its `sweep.csv` (the varied keys are the columns between `point` and
/// `scenario`). Returns the files drawn.
pub fn plot_from_csv(dir: &Path) -> Result<usize> {
    let t = rlsim_reports::plots::read_sweep_csv(&dir.join("sweep.csv"))?;
    Ok(rlsim_reports::plots::plot_sweep(dir, &t.keys, &t.values, &t.points)?.len())
}

/// Joins shard folders' `sweep.csv` into `out/sweep.csv`, ordered by point, checking they belong to one sweep.
pub fn merge(shards: &[PathBuf], out: &Path) -> Result<usize> {
    let mut header: Option<csv::StringRecord> = None;
    let mut rows: Vec<(usize, csv::StringRecord)> = Vec::new();
    for dir in shards {
        let file = if dir.is_dir() { dir.join("sweep.csv") } else { dir.clone() };
        let mut r = csv::Reader::from_path(&file).with_context(|| format!("reading {}", file.display()))?;
        let h = r.headers()?.clone();
        match &header {
            None => header = Some(h),
            Some(prev) if *prev != h => {
                bail!("{}: its columns differ from the first shard's; not the same sweep", file.display())
            }
            Some(_) => {}
        }
        for (line, rec) in r.records().enumerate() {
            let rec = rec.with_context(|| format!("{}:{}", file.display(), line + 2))?;
            let point: usize = rec
                .get(0)
                .unwrap_or("")
                .parse()
                .with_context(|| format!("{}:{}: field `point`", file.display(), line + 2))?;
            rows.push((point, rec));
        }
    }
    let header = header.context("no shard given")?;
    rows.sort_by_key(|(p, _)| *p);
    if let Some(w) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
        bail!("point {} appears in two shards", w[0].0);
    }
    std::fs::create_dir_all(out)?;
    let file = out.join("sweep.csv");
    let mut w = csv::Writer::from_path(&file)?;
    w.write_record(&header)?;
    for (_, rec) in &rows {
        w.write_record(rec)?;
    }
    w.flush()?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_order_and_shards() {
        let axes = vec![parse_axis("a=1,2").unwrap(), parse_axis("b=x,y,z").unwrap()];
        let p = points(&axes);
        assert_eq!(p.len(), 6);
        assert_eq!(p[0], vec!["1", "x"]);
        assert_eq!(p[1], vec!["1", "y"]);
        assert_eq!(p[5], vec!["2", "z"]);
        assert_eq!(parse_shard("1/3").unwrap(), (1, 3));
        assert!(parse_shard("3/3").is_err() && parse_shard("x").is_err());
        assert!(parse_axis("k=").is_err() && parse_axis("noequals").is_err());
    }
}
