//! `rlsim sweep` and `rlsim merge`: the cartesian product of `--vary KEY=V1,V2,...` run in parallel (rayon), sliced
//! with `--shard I/N` for array jobs, and shards joined back into the same `sweep.csv` an unsharded run writes.

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use rlsim_sim::report::Summary;
use rlsim_sim::scenario::Scenario;
use rlsim_sim::simulator::{simulate_recording, Recording};
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
                // Only the summary is kept: no counters over time.
                let r = simulate_recording(s, Recording::SUMMARY)
                    .map(|run| run.report.summary)
                    .with_context(|| format!("simulating {}", s.name));
                bar.inc(1);
                r
            })
            .collect()
    });
    bar.finish_and_clear();
    Ok(results)
}

/// Parses `KEY=V1,V2,...`; an empty or repeated value is refused (it would silently change the point count).
pub fn parse_axis(text: &str) -> Result<Axis> {
    let (key, values) = text.split_once('=').with_context(|| format!("--vary {text}: expected KEY=V1,V2,..."))?;
    let key = key.trim();
    if key.is_empty() || values.trim().is_empty() {
        bail!("--vary {text}: expected KEY=V1,V2,... with at least one value");
    }
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
    if let Some(i) = values.iter().position(String::is_empty) {
        bail!("--vary {text}: value {} is empty (two commas in a row, or a comma at an end)", i + 1);
    }
    if let Some((i, v)) = values.iter().enumerate().find(|(i, v)| values[..*i].contains(v)) {
        bail!("--vary {text}: value {} ({v:?}) repeats an earlier one", i + 1);
    }
    Ok(Axis { key: key.to_string(), values })
}

/// Parses every `--vary`, refusing a key given twice (`--vary k=1,2 --vary k=3,4` would make two columns for one
/// field, and the later value would silently win).
pub fn parse_axes(texts: &[String]) -> Result<Vec<Axis>> {
    let axes = texts.iter().map(|t| parse_axis(t)).collect::<Result<Vec<_>>>()?;
    for (i, a) in axes.iter().enumerate() {
        if axes[..i].iter().any(|b| b.key == a.key) {
            bail!("--vary {}: the key is varied twice; give all its values in one --vary {}=V1,V2,...", a.key, a.key);
        }
    }
    Ok(axes)
}

/// Every point of the product, in order: the last axis varies fastest.
pub fn points(axes: &[Axis]) -> Vec<Vec<String>> {
    axes.iter().fold(vec![Vec::new()], |acc, axis| {
        acc.iter().flat_map(|p| axis.values.iter().map(move |v| [p.clone(), vec![v.clone()]].concat())).collect()
    })
}

/// `I/N` → (I, N), with 0 ≤ I < N (Slurm's SLURM_ARRAY_TASK_ID and Kubernetes' JOB_COMPLETION_INDEX count from 0).
pub fn parse_shard(text: &str) -> Result<(usize, usize)> {
    let expected = || format!("--shard {text}: expected I/N with whole numbers 0 ≤ I < N, e.g. 0/4");
    let (i, n) = text.split_once('/').with_context(expected)?;
    let (Ok(i), Ok(n)) = (i.trim().parse::<usize>(), n.trim().parse::<usize>()) else { bail!(expected()) };
    if n == 0 || i >= n {
        bail!(expected());
    }
    Ok((i, n))
}

/// What a sweep folder is a part of, written as `sweep.json` beside `sweep.csv` so that `merge` can check its
/// shards belong together and that none is missing.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepManifest {
    /// SHA-256 of the scenario file's text and the `--set`/`--seed` overrides every point shares.
    pub scenario_sha256: String,
    pub scenario: String,
    pub seed: u64,
    pub axes: Vec<(String, Vec<String>)>,
    /// Points in the whole sweep.
    pub points: usize,
    /// This folder's slice: `[I, N]` (`[0, 1]` for an unsharded sweep).
    pub shard: (usize, usize),
}

fn scenario_sha256(path: &Path, base: &[String]) -> Result<String> {
    use sha2::Digest;
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    h.update(&text);
    for o in base {
        h.update(b"\n--set ");
        h.update(o.as_bytes());
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The summary columns of `sweep.csv`, after `point` and the varied keys. `wall_s` is the only one that differs
/// between identical runs. The bottleneck columns come last (added after `wall_s`, so older readers keep their
/// column positions).
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
    "rollout_pool_busy_fraction",
    "train_pool_busy_fraction",
    "bottleneck",
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
        s.rollout_pool_busy_fraction.to_string(),
        s.train_pool_busy_fraction.to_string(),
        s.bottleneck.clone(),
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
    let manifest = SweepManifest {
        scenario_sha256: scenario_sha256(path, base)?,
        scenario: path.display().to_string(),
        seed: scenarios.first().map_or(0, |s| s.seed),
        axes: axes.iter().map(|a| (a.key.clone(), a.values.clone())).collect(),
        points: points(axes).len(),
        shard: (index, count),
    };
    let staged = rlsim_reports::output::Staged::new(out, "sweep")?;
    let results = simulate_all(&scenarios, jobs)?;
    let file = staged.path().join("sweep.csv");
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
    drop(w);
    std::fs::write(staged.path().join("sweep.json"), serde_json::to_string_pretty(&manifest)? + "\n")?;
    if plots {
        let keys: Vec<String> = axes.iter().map(|a| a.key.clone()).collect();
        let values: Vec<Vec<String>> = axes.iter().map(|a| a.values.clone()).collect();
        rlsim_reports::plots::plot_sweep(staged.path(), &keys, &values, &plotted)?;
    }
    staged.commit()?;
    Ok(mine.len())
}

/// Draws the curves of a sweep folder from its `sweep.csv` (the varied keys are the columns between `point` and
/// `scenario`). Returns the files drawn.
pub fn plot_from_csv(dir: &Path) -> Result<usize> {
    let t = rlsim_reports::plots::read_sweep_csv(&dir.join("sweep.csv"))?;
    Ok(rlsim_reports::plots::plot_sweep(dir, &t.keys, &t.values, &t.points)?.len())
}

/// Joins shard folders' `sweep.csv` into `out/sweep.csv`, ordered by point. Each shard's `sweep.json` must name the
/// same scenario (by hash), seed, axes and shard count, every shard index must be present once, and every point of
/// the sweep must be there: a partial or mixed merge is an error, not a smaller file.
pub fn merge(shards: &[PathBuf], out: &Path) -> Result<usize> {
    let mut header: Option<csv::StringRecord> = None;
    let mut first: Option<(PathBuf, SweepManifest)> = None;
    let mut seen_shards = std::collections::BTreeMap::new();
    let mut rows: Vec<(usize, csv::StringRecord)> = Vec::new();
    for dir in shards {
        let dir = if dir.is_dir() { dir.clone() } else { dir.parent().map(Path::to_path_buf).unwrap_or_default() };
        let manifest_file = dir.join("sweep.json");
        let text = std::fs::read_to_string(&manifest_file).with_context(|| {
            format!("reading {} (every shard folder written by `rlsim sweep --shard` has one)", manifest_file.display())
        })?;
        let m: SweepManifest = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a sweep manifest", manifest_file.display()))?;
        if let Some((first_dir, f)) = &first {
            let differs = |what: &str| {
                anyhow::anyhow!(
                    "{}: the {what} is not the same as in {}; these shards are not one sweep",
                    manifest_file.display(),
                    first_dir.join("sweep.json").display()
                )
            };
            if m.scenario_sha256 != f.scenario_sha256 {
                return Err(differs("scenario (file text or --set overrides)"));
            }
            if m.seed != f.seed {
                return Err(differs("seed"));
            }
            if m.axes != f.axes {
                return Err(differs("--vary axes"));
            }
            if m.shard.1 != f.shard.1 {
                return Err(differs("shard count N"));
            }
        } else {
            first = Some((dir.clone(), m.clone()));
        }
        if let Some(prev) = seen_shards.insert(m.shard.0, dir.clone()) {
            bail!("shard {}/{} given twice: {} and {}", m.shard.0, m.shard.1, prev.display(), dir.display());
        }
        let file = dir.join("sweep.csv");
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
            if point % m.shard.1 != m.shard.0 || point >= m.points {
                bail!(
                    "{}:{}: point {point} does not belong to shard {}/{}",
                    file.display(),
                    line + 2,
                    m.shard.0,
                    m.shard.1
                );
            }
            rows.push((point, rec));
        }
    }
    let (header, (_, manifest)) = (header.context("no shard given")?, first.context("no shard given")?);
    let missing_shards: Vec<String> =
        (0..manifest.shard.1).filter(|i| !seen_shards.contains_key(i)).map(|i| i.to_string()).collect();
    if !missing_shards.is_empty() {
        bail!(
            "shard(s) {} of {} missing: merge needs every shard of the sweep ({} of {} given)",
            missing_shards.join(", "),
            manifest.shard.1,
            seen_shards.len(),
            manifest.shard.1
        );
    }
    rows.sort_by_key(|(p, _)| *p);
    if let Some(w) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
        bail!("point {} appears twice", w[0].0);
    }
    if rows.len() != manifest.points {
        let have: std::collections::BTreeSet<usize> = rows.iter().map(|(p, _)| *p).collect();
        let missing: Vec<String> =
            (0..manifest.points).filter(|p| !have.contains(p)).take(10).map(|p| p.to_string()).collect();
        bail!(
            "{} of the sweep's {} points are missing (points {} …): a shard is incomplete",
            manifest.points - rows.len(),
            manifest.points,
            missing.join(", ")
        );
    }
    let staged = rlsim_reports::output::Staged::new(out, "merge")?;
    let file = staged.path().join("sweep.csv");
    let mut w = csv::Writer::from_path(&file)?;
    w.write_record(&header)?;
    for (_, rec) in &rows {
        w.write_record(rec)?;
    }
    w.flush()?;
    drop(w);
    let merged = SweepManifest { shard: (0, 1), ..manifest };
    std::fs::write(staged.path().join("sweep.json"), serde_json::to_string_pretty(&merged)? + "\n")?;
    staged.commit()?;
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
        assert!(parse_axis("k=1,,2").unwrap_err().to_string().contains("value 2 is empty"));
        assert!(parse_axis("k=1,2,1").unwrap_err().to_string().contains("repeats"));
        let twice = parse_axes(&["k=1,2".into(), "k=3,4".into()]).unwrap_err().to_string();
        assert!(twice.contains("varied twice"), "{twice}");
        assert!(parse_shard("1/2/3").unwrap_err().to_string().contains("expected I/N with whole numbers"));
    }
}
