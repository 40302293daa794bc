//! `rlsim sweep` and `rlsim merge`: the cartesian product of `--vary KEY=V1,V2,...` run in parallel (rayon), sliced
//! with `--shard I/N` for array jobs, each point optionally on several seeds, and shards joined back into the same
//! `sweep.csv` an unsharded run writes; the points table both print.

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use rlsim_sim::report::Summary;
use rlsim_sim::scenario::Scenario;
use rlsim_sim::simulator::{simulate_recording, Recording};
use std::path::{Path, PathBuf};

/// One `--vary` axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

/// Simulates scenarios in parallel on `jobs` threads, with a progress bar on a terminal (none otherwise, or with
/// `--quiet`); results come back in input order.
pub fn simulate_all(scenarios: &[Scenario], jobs: usize) -> Result<Vec<Result<Summary>>> {
    let bar = crate::ui::progress(scenarios.len(), "runs");
    let results = simulate_all_with(scenarios, jobs, &bar);
    bar.finish_and_clear();
    results
}

/// `simulate_all` advancing a bar the caller owns (one bar over runs done in several batches).
pub fn simulate_all_with(
    scenarios: &[Scenario],
    jobs: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<Result<Summary>>> {
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
    /// Seeds each point ran on (`--seeds`); a manifest written before the option reads as 1.
    #[serde(default = "one_seed")]
    pub seeds: usize,
}

fn one_seed() -> usize {
    1
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

/// Appended after `SUMMARY_COLUMNS` (so an older reader keeps its positions, and an older file lacks only these):
/// the seeds each point ran on and the range of its tokens/s and mean step time over them; `tokens_per_s` and
/// `mean_step_s` are then means, every other column the scenario's own seed's.
const SEED_COLUMNS: &[&str] = &["seeds", "tokens_per_s_min", "tokens_per_s_max", "mean_step_s_min", "mean_step_s_max"];

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

/// Runs the sweep (or one shard of it), each point on `seeds` seeds, and writes `out/sweep.csv`, and with `plots` a
/// plot per varied key. Returns the rows written.
#[allow(clippy::too_many_arguments)]
pub fn sweep(
    path: &Path,
    axes: &[Axis],
    base: &[String],
    jobs: usize,
    shard: Option<(usize, usize)>,
    seeds: usize,
    out: &Path,
    plots: Option<&rlsim_reports::plots::PlotOptions>,
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
        seeds,
    };
    let staged = rlsim_reports::output::Staged::new(out, "sweep")?;
    // Each point's own seed, then its other seeds, all in one parallel batch.
    let runs: Vec<Scenario> =
        scenarios.iter().flat_map(|s| std::iter::once(s.clone()).chain(crate::seeds::others(s, seeds))).collect();
    let mut results = simulate_all(&runs, jobs)?.into_iter();
    let file = staged.path().join("sweep.csv");
    let mut w = csv::Writer::from_path(&file).with_context(|| format!("writing {}", file.display()))?;
    let mut header = vec!["point".to_string()];
    header.extend(axes.iter().map(|a| a.key.clone()));
    header.extend(SUMMARY_COLUMNS.iter().chain(SEED_COLUMNS).map(|c| c.to_string()));
    w.write_record(&header)?;
    let mut plotted = Vec::new();
    for (i, values) in &mine {
        let mut all = Vec::with_capacity(seeds);
        for _ in 0..seeds {
            all.push(results.next().context("one result per run")??);
        }
        let stats = crate::seeds::SeedStats::of(&all);
        let mut s = all.swap_remove(0);
        s.tokens_per_s = stats.tokens_per_s.mean;
        s.mean_step_s = stats.mean_step_s.mean;
        let mut row = vec![i.to_string()];
        row.extend(values.iter().cloned());
        row.extend(summary_cells(&s));
        row.extend([
            seeds.to_string(),
            stats.tokens_per_s.min.to_string(),
            stats.tokens_per_s.max.to_string(),
            stats.mean_step_s.min.to_string(),
            stats.mean_step_s.max.to_string(),
        ]);
        w.write_record(&row)?;
        plotted.push(rlsim_reports::plots::SweepPoint { values: values.clone(), tokens_per_s: s.tokens_per_s });
    }
    w.flush()?;
    drop(w);
    std::fs::write(staged.path().join("sweep.json"), serde_json::to_string_pretty(&manifest)? + "\n")?;
    if let Some(o) = plots {
        let keys: Vec<String> = axes.iter().map(|a| a.key.clone()).collect();
        let values: Vec<Vec<String>> = axes.iter().map(|a| a.values.clone()).collect();
        rlsim_reports::plots::plot_sweep(staged.path(), &keys, &values, &plotted, o)?;
    }
    staged.commit()?;
    Ok(mine.len())
}

/// The points table `sweep` and `merge` print, from a `sweep.csv` (older files without the bottleneck or seed
/// columns too): the varied values, tokens/s (with its seed range when there are several seeds), the speedup over
/// the first row, the mean step time and the bottleneck.
pub fn table(file: &Path) -> Result<String> {
    let mut r = csv::Reader::from_path(file).with_context(|| format!("reading {}", file.display()))?;
    let header = r.headers().with_context(|| format!("reading {}", file.display()))?.clone();
    let col = |name: &str| header.iter().position(|h| h == name);
    let need = |name: &str| col(name).with_context(|| format!("{}: line 1: no `{name}` column", file.display()));
    let (end, tps, step) = (need("scenario")?, need("tokens_per_s")?, need("mean_step_s")?);
    let (bottleneck, seeds, lo, hi) =
        (col("bottleneck"), col("seeds"), col("tokens_per_s_min"), col("tokens_per_s_max"));
    let mut rows = Vec::new();
    let mut first: Option<f64> = None;
    let mut seeded = false;
    for (line, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}:{}", file.display(), line + 2))?;
        let cell = |i: Option<usize>| i.and_then(|i| rec.get(i)).unwrap_or("");
        let number = |i: usize, name: &str| {
            cell(Some(i))
                .parse::<f64>()
                .with_context(|| format!("{}:{}: field `{name}`: expected a number", file.display(), line + 2))
        };
        let tokens_per_s = number(tps, "tokens_per_s")?;
        let base = *first.get_or_insert(tokens_per_s);
        let n: u32 = cell(seeds).parse().unwrap_or(1);
        seeded |= n > 1;
        let mut row: Vec<String> = (0..end).map(|i| cell(Some(i)).to_string()).collect();
        row.push(format!("{tokens_per_s:.0}"));
        row.push(if n > 1 { format!("{}–{}", round(cell(lo)), round(cell(hi))) } else { "-".into() });
        row.push(if base > 0.0 { format!("{:.2}x", tokens_per_s / base) } else { "-".into() });
        row.push(format!("{:.2}", number(step, "mean_step_s")?));
        row.push(match cell(bottleneck) {
            "" => "-".to_string(),
            b => b.to_string(),
        });
        rows.push(row);
    }
    let mut head: Vec<&str> = header.iter().take(end).collect();
    head.extend(["tokens/s", "seed range", "speedup", "step s", "bottleneck"]);
    if !seeded {
        let range = end + 1;
        head.remove(range);
        rows.iter_mut().for_each(|r| drop(r.remove(range)));
    }
    let mut text = rlsim_reports::text_table(&head, &rows);
    text += "speedup: trained tokens/s relative to the first row";
    if seeded {
        text += "; tokens/s and step s: means over each point's seeds (seed range: lowest–highest tokens/s)";
    }
    text.push('\n');
    Ok(text)
}

/// A number cell rounded to a whole number for the table ("-" when it is not a number).
fn round(cell: &str) -> String {
    cell.parse::<f64>().map_or_else(|_| "-".to_string(), |x| format!("{x:.0}"))
}

/// One `sweep.csv` row as JSON: `point`, `values` (the varied keys and their values, in `--vary` order), then the
/// other columns, numbers and booleans typed.
#[derive(serde::Serialize)]
pub struct PointJson {
    pub point: serde_json::Value,
    pub values: crate::ui::Object,
    #[serde(flatten)]
    pub columns: crate::ui::Object,
}

/// `sweep.csv`'s rows as `PointJson`s.
pub fn points_json(file: &Path) -> Result<Vec<PointJson>> {
    let mut r = csv::Reader::from_path(file).with_context(|| format!("reading {}", file.display()))?;
    let end = r.headers()?.iter().position(|h| h == "scenario").unwrap_or(1).max(1);
    Ok(crate::ui::csv_rows(file)?
        .into_iter()
        .map(|crate::ui::Object(mut cells)| {
            let columns = cells.split_off(end.min(cells.len()));
            let values = cells.split_off(1.min(cells.len()));
            let point = cells.pop().map_or(serde_json::Value::Null, |(_, v)| v);
            PointJson { point, values: crate::ui::Object(values), columns: crate::ui::Object(columns) }
        })
        .collect())
}

/// Draws the curves of a sweep folder from its `sweep.csv` (the varied keys are the columns between `point` and
/// `scenario`). Returns the files drawn.
pub fn plot_from_csv(dir: &Path, o: &rlsim_reports::plots::PlotOptions) -> Result<usize> {
    let t = rlsim_reports::plots::read_sweep_csv(&dir.join("sweep.csv"))?;
    Ok(rlsim_reports::plots::plot_sweep(dir, &t.keys, &t.values, &t.points, o)?.len())
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
            if m.seeds != f.seeds {
                return Err(differs("--seeds count"));
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
