//! Plots of a run (PNG and SVG, plotters with a bundled font so no system fonts are needed): the per-worker
//! timeline (Gantt), the step-time breakdown, the staleness histogram, the response-length CDF, and comparison
//! bars. They are drawn from a run folder's files, so `rlsim plot DIR` re-renders exactly what a run drew.

use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// A plot that could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct PlotError {
    pub path: PathBuf,
    pub message: String,
}

static FONT: Once = Once::new();

/// Registers the bundled DejaVu Sans as "sans-serif" (plotters finds no font otherwise on a bare machine).
fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

/// Tick labels for an axis of whole numbers drawn as floats: the integers, nothing in between.
fn integer_ticks(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else {
        String::new()
    }
}

/// Colours of the activities, shared by every plot.
fn activity_color(kind: &str) -> RGBColor {
    match kind {
        "rollout" => RGBColor(66, 133, 244),
        "logprob" => RGBColor(251, 188, 5),
        "train" => RGBColor(234, 67, 53),
        "sync" => RGBColor(52, 168, 83),
        "switch" => RGBColor(155, 89, 182),
        "reward" => RGBColor(120, 120, 120),
        "down" => RGBColor(30, 30, 30),
        _ => RGBColor(200, 200, 200),
    }
}

const ACTIVITIES: [&str; 7] = ["rollout", "logprob", "train", "sync", "switch", "reward", "down"];

/// A worker-activity span read back from timeline.csv.
#[derive(Clone, Debug)]
struct SpanRow {
    worker: String,
    kind: String,
    start: f64,
    end: f64,
}

/// What the run-level plots need, read from a run folder.
pub struct RunData {
    title: String,
    workers: Vec<String>,
    spans: Vec<SpanRow>,
    /// Response tokens per trajectory.
    lengths: Vec<f64>,
    steps: Vec<BTreeMap<String, f64>>,
    staleness: Vec<(u32, u64)>,
    max_response_tokens: Option<f64>,
}

fn err(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError { path: path.to_path_buf(), message: e.to_string() }
}

/// A number from a plot input file: finite, or a located error (an `inf` or `1e400` would make plotters' tick
/// search loop forever).
fn finite(path: &Path, line: u64, field: &str, text: &str) -> Result<f64, PlotError> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(err(path, format!("line {line}: field `{field}`: expected a finite number, got {v}"))),
        Err(e) => Err(err(path, format!("line {line}: field `{field}`: expected a number, got {text:?} ({e})"))),
    }
}

/// Reads what the run plots need from a run folder (`summary.json`, `timeline.csv`, `steps.csv`), refusing
/// anything a run would not have written: a missing column, a non-finite number, a span that ends before it starts.
/// A run written with `--timeline none` or `steps` has no `timeline.csv`: no spans then, and without its `generate`
/// rows (`workers`) no lengths.
pub fn read_run(dir: &Path) -> Result<RunData, PlotError> {
    let summary_path = dir.join("summary.json");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).map_err(|e| err(&summary_path, e))?)
            .map_err(|e| err(&summary_path, e))?;
    let title = format!(
        "{} — {} ({})",
        summary["scenario"].as_str().unwrap_or("?"),
        summary["pipeline"].as_str().unwrap_or("?"),
        summary["backend"].as_str().unwrap_or("?")
    );
    let staleness = summary["staleness_histogram"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| Some((p[0].as_u64()? as u32, p[1].as_u64()?))).collect())
        .unwrap_or_default();
    let tl = dir.join("timeline.csv");
    let source: Box<dyn std::io::Read> = match std::fs::File::open(&tl) {
        Ok(f) => Box::new(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Box::new(NO_TIMELINE_CSV.as_bytes()),
        Err(e) => return Err(err(&tl, e)),
    };
    let mut r = csv::Reader::from_reader(source);
    let (mut workers, mut spans): (Vec<String>, Vec<SpanRow>) = (Vec::new(), Vec::new());
    let mut per_traj: BTreeMap<u64, f64> = BTreeMap::new();
    let header = r.headers().map_err(|e| err(&tl, e))?.clone();
    let expect = ["worker", "kind", "start_s", "end_s"];
    if header.len() < 7 || header.iter().take(4).ne(expect) {
        return Err(err(&tl, format!("line 1: expected the columns {} … of a run's timeline.csv", expect.join(","))));
    }
    let names: Vec<String> = header.iter().map(String::from).collect();
    for rec in r.records() {
        let rec = rec.map_err(|e| err(&tl, e))?;
        let line = rec.position().map_or(0, |p| p.line());
        let f = |i: usize| rec.get(i).unwrap_or("");
        let num = |i: usize| finite(&tl, line, &names[i], f(i));
        let worker = f(0).to_string();
        if !workers.contains(&worker) {
            workers.push(worker.clone());
        }
        if f(1) == "generate" {
            if let Ok(t) = f(5).parse::<u64>() {
                *per_traj.entry(t).or_default() += num(6)?;
            }
        } else {
            let (start, end) = (num(2)?, num(3)?);
            if end < start {
                return Err(err(&tl, format!("line {line}: span ends at {end} s, before its start {start} s")));
            }
            spans.push(SpanRow { worker, kind: f(1).to_string(), start, end });
        }
    }
    // Finite numbers can still add up to infinity (two `1e308` tokens of one trajectory).
    if let Some((t, v)) = per_traj.iter().find(|(_, v)| !v.is_finite()) {
        return Err(err(&tl, format!("trajectory {t}: its generate spans add up to {v} tokens")));
    }
    workers.sort_by_key(|w| natural_key(w));
    let st = dir.join("steps.csv");
    let mut r = csv::Reader::from_path(&st).map_err(|e| err(&st, e))?;
    let headers = r.headers().map_err(|e| err(&st, e))?.clone();
    let mut steps = Vec::new();
    if headers.get(0) != Some("step") {
        return Err(err(&st, "line 1: expected a run's steps.csv, whose first column is `step`"));
    }
    for rec in r.records() {
        let rec = rec.map_err(|e| err(&st, e))?;
        let line = rec.position().map_or(0, |p| p.line());
        let mut row = BTreeMap::new();
        for (h, v) in headers.iter().zip(rec.iter()) {
            // Text columns (none today) are skipped; a number must be finite.
            if v.trim().parse::<f64>().is_ok() {
                row.insert(h.to_string(), finite(&st, line, h, v)?);
            }
        }
        steps.push(row);
    }
    let max_response_tokens = std::fs::read_to_string(dir.join("scenario.resolved.toml"))
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("workload")?.get("max_response_tokens")?.as_integer())
        .map(|v| v as f64);
    Ok(RunData {
        title,
        workers,
        spans,
        lengths: per_traj.into_values().collect(),
        steps,
        staleness,
        max_response_tokens,
    })
}

/// A `timeline.csv` without rows: what a run folder without one holds.
const NO_TIMELINE_CSV: &str = "worker,kind,start_s,end_s,step,trajectory,tokens,version\n";

/// Sort key that orders "w2" before "w10".
fn natural_key(s: &str) -> (String, u64) {
    let digits: String =
        s.chars().rev().take_while(|c| c.is_ascii_digit()).collect::<Vec<_>>().into_iter().rev().collect();
    (s[..s.len() - digits.len()].to_string(), digits.parse().unwrap_or(0))
}

type Area<'a, DB> = DrawingArea<DB, Shift>;

/// The series legend every chart uses, inside the plot at `position`.
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())
}

/// A legend strip: coloured boxes with names, left to right.
fn legend_strip<DB: DrawingBackend>(area: &Area<DB>, items: &[(&str, RGBColor)]) -> Result<(), String> {
    let mut x = 80;
    for (name, color) in items {
        area.draw(&Rectangle::new([(x, 10), (x + 16, 26)], color.filled())).map_err(|e| e.to_string())?;
        area.draw(&Text::new(name.to_string(), (x + 22, 10), ("sans-serif", 15))).map_err(|e| e.to_string())?;
        x += 40 + 9 * name.chars().count() as i32;
    }
    Ok(())
}

fn gantt<DB: DrawingBackend>(root: &Area<DB>, d: &RunData) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (h, _) = (root.dim_in_pixel().1, ());
    let (top, bottom) = root.split_vertically(h.saturating_sub(40));
    let t_end = d.spans.iter().map(|s| s.end).fold(0.0, f64::max).max(1e-9);
    let n = d.workers.len().max(1) as i32;
    let rows: BTreeMap<&str, i32> = d.workers.iter().enumerate().map(|(i, w)| (w.as_str(), i as i32)).collect();
    let mut chart = ChartBuilder::on(&top)
        .caption(format!("Worker timeline — {}", d.title), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(110)
        .build_cartesian_2d(0f64..t_end * 1.01, (0..n).into_segmented())
        .map_err(|e| e.to_string())?;
    let names = d.workers.clone();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("time (s)")
        .y_desc("worker")
        .y_labels(n as usize)
        .y_label_formatter(&|y| match y {
            SegmentValue::CenterOf(i) if *i >= 0 && (*i as usize) < names.len() => names[*i as usize].clone(),
            _ => String::new(),
        })
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    for kind in ACTIVITIES {
        let color = activity_color(kind);
        let boxes: Vec<Rectangle<(f64, SegmentValue<i32>)>> = d
            .spans
            .iter()
            .filter(|s| s.kind == kind)
            .filter_map(|s| {
                let row = *rows.get(s.worker.as_str())?;
                let end = s.end.max(s.start + t_end * 1e-4);
                Some(Rectangle::new(
                    [(s.start, SegmentValue::Exact(row)), (end, SegmentValue::Exact(row + 1))],
                    color.filled(),
                ))
            })
            .collect();
        chart.draw_series(boxes).map_err(|e| e.to_string())?;
    }
    // Step boundaries.
    let ends: Vec<f64> = d.steps.iter().filter_map(|s| s.get("end_s").copied()).collect();
    chart
        .draw_series(ends.iter().map(|&x| {
            PathElement::new(
                vec![(x, SegmentValue::Exact(0)), (x, SegmentValue::Exact(n))],
                BLACK.mix(0.6).stroke_width(1),
            )
        }))
        .map_err(|e| e.to_string())?;
    let mut items: Vec<(&str, RGBColor)> = ACTIVITIES.iter().map(|k| (*k, activity_color(k))).collect();
    items.push(("idle (white)", RGBColor(235, 235, 235)));
    items.push(("step end (black line)", BLACK));
    legend_strip(&bottom, &items)
}

fn step_breakdown<DB: DrawingBackend>(root: &Area<DB>, d: &RunData) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let parts = ["rollout_s", "logprob_s", "train_s", "sync_s", "switch_s", "reward_s"];
    let top = d
        .steps
        .iter()
        .map(|s| {
            parts
                .iter()
                .map(|p| s.get(*p).copied().unwrap_or(0.0))
                .sum::<f64>()
                .max(s.get("duration_s").copied().unwrap_or(0.0))
        })
        .fold(0.0, f64::max)
        .max(1e-9);
    let n = d.steps.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(format!("Time per step by phase — {}", d.title), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..top * 1.15)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("RL step")
        .y_desc("seconds (phases may overlap across steps)")
        .x_labels(n.min(20))
        .x_label_formatter(&integer_ticks)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    for (pi, part) in parts.iter().enumerate() {
        let kind = part.trim_end_matches("_s");
        let color = activity_color(kind);
        let bars: Vec<Rectangle<(f64, f64)>> = d
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let below: f64 = parts[..pi].iter().map(|p| s.get(*p).copied().unwrap_or(0.0)).sum();
                let h = s.get(*part).copied().unwrap_or(0.0);
                Rectangle::new([(i as f64 - 0.35, below), (i as f64 + 0.35, below + h)], color.filled())
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(|e| e.to_string())?
            .label(kind)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    chart
        .draw_series(d.steps.iter().enumerate().map(|(i, s)| {
            let y = s.get("duration_s").copied().unwrap_or(0.0);
            PathElement::new(vec![(i as f64 - 0.45, y), (i as f64 + 0.45, y)], BLACK.stroke_width(2))
        }))
        .map_err(|e| e.to_string())?
        .label("step duration")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BLACK.stroke_width(2)));
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

fn staleness<DB: DrawingBackend>(root: &Area<DB>, d: &RunData) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let total: u64 = d.staleness.iter().map(|(_, n)| n).sum::<u64>().max(1);
    let max_lag = d.staleness.iter().map(|(l, _)| *l).max().unwrap_or(0);
    let mut chart = ChartBuilder::on(root)
        .caption(format!("Staleness of trained tokens — {}", d.title), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..max_lag as f64 + 0.5, 0f64..100.0)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("policy versions between generating a token and training on it")
        .y_desc("share of trained tokens (%)")
        .x_labels(max_lag as usize + 1)
        .x_label_formatter(&integer_ticks)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(d.staleness.iter().map(|&(lag, n)| {
            let pct = 100.0 * n as f64 / total as f64;
            Rectangle::new([(lag as f64 - 0.3, 0.0), (lag as f64 + 0.3, pct)], RGBColor(66, 133, 244).filled())
        }))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(d.staleness.iter().map(|&(lag, n)| {
            let pct = 100.0 * n as f64 / total as f64;
            Text::new(format!("{pct:.1} %"), (lag as f64 - 0.12, (pct + 4.0).min(96.0)), ("sans-serif", 14))
        }))
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn length_cdf<DB: DrawingBackend>(root: &Area<DB>, d: &RunData) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut v: Vec<f64> = d.lengths.iter().copied().filter(|x| *x > 0.0).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return Ok(());
    }
    let q = |p: f64| v[((p * v.len() as f64) as usize).min(v.len() - 1)];
    let x_max = d.max_response_tokens.unwrap_or(v[v.len() - 1]).max(v[v.len() - 1]) * 1.3;
    let mut chart = ChartBuilder::on(root)
        .caption(format!("Response lengths — {}", d.title), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((1f64..x_max).log_scale(), 0f64..1.0)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("response tokens (log scale)")
        .y_desc("share of samples at or below")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    let n = v.len() as f64;
    chart
        .draw_series(LineSeries::new(
            v.iter().enumerate().map(|(i, &x)| (x, (i + 1) as f64 / n)),
            RGBColor(66, 133, 244).stroke_width(2),
        ))
        .map_err(|e| e.to_string())?
        .label(format!("{} samples", v.len()))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], RGBColor(66, 133, 244).stroke_width(2)));
    let mut marks = vec![
        (format!("median {:.0}", q(0.5)), q(0.5), RGBColor(52, 168, 83)),
        (format!("p99 {:.0}", q(0.99)), q(0.99), RGBColor(234, 67, 53)),
    ];
    if let Some(cap) = d.max_response_tokens {
        marks.push((format!("cap {cap:.0}"), cap, BLACK));
    }
    for (label, x, color) in marks {
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(x, 0.0), (x, 1.0)], color.stroke_width(2))))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(lx, ly)| PathElement::new(vec![(lx, ly), (lx + 14, ly)], color.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

/// Draws one plot as `<stem>.png` and `<stem>.svg` in `dir`.
fn render(
    dir: &Path,
    stem: &str,
    size: (u32, u32),
    draw: &dyn Fn(&Area<BitMapBackend>) -> Result<(), String>,
    draw_svg: &dyn Fn(&Area<SVGBackend>) -> Result<(), String>,
) -> Result<Vec<PathBuf>, PlotError> {
    register_font();
    // Drawn to a temporary file (with the real extension: plotters picks the format from it), then renamed into
    // place, so a redraw never leaves half an image and never writes through a link.
    let pid = std::process::id();
    let png = dir.join(format!("{stem}.png"));
    let png_tmp = dir.join(format!(".{stem}.rlsim-tmp-{pid}.png"));
    let drawn = (|| {
        let root = BitMapBackend::new(&png_tmp, size).into_drawing_area();
        draw(&root).map_err(|e| err(&png, e))?;
        root.present().map_err(|e| err(&png, e))
    })();
    finish(drawn, &png_tmp, &png)?;
    let svg = dir.join(format!("{stem}.svg"));
    let svg_tmp = dir.join(format!(".{stem}.rlsim-tmp-{pid}.svg"));
    let drawn = (|| {
        let root = SVGBackend::new(&svg_tmp, size).into_drawing_area();
        draw_svg(&root).map_err(|e| err(&svg, e))?;
        root.present().map_err(|e| err(&svg, e))
    })();
    finish(drawn, &svg_tmp, &svg)?;
    Ok(vec![png, svg])
}

/// Moves a drawn temporary file into place, or removes it when drawing failed.
fn finish(drawn: Result<(), PlotError>, tmp: &Path, path: &Path) -> Result<(), PlotError> {
    match drawn {
        Ok(()) => crate::output::rename_over(tmp, path).map_err(|e| err(path, e.message)),
        Err(e) => {
            let _ = std::fs::remove_file(tmp);
            Err(e)
        }
    }
}

/// Draws a run folder's plots from its files: `timeline.png/.svg` (Gantt; needs worker spans in `timeline.csv`),
/// `steps.png/.svg`, `staleness.png/.svg`, `lengths.png/.svg` (needs its `generate` rows). Returns the files
/// written.
pub fn plot_run(dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let d = read_run(dir)?;
    let rows = d.workers.len() as u32;
    let mut out = Vec::new();
    // No timeline without worker spans (`--timeline none`/`steps`), no lengths without per-trajectory rows (below
    // `trajectories`).
    if !d.spans.is_empty() {
        out.extend(render(dir, "timeline", (1400, (140 + 26 * rows).clamp(360, 1800)), &|a| gantt(a, &d), &|a| {
            gantt(a, &d)
        })?);
    }
    out.extend(render(dir, "steps", (1200, 560), &|a| step_breakdown(a, &d), &|a| step_breakdown(a, &d))?);
    out.extend(render(dir, "staleness", (900, 520), &|a| staleness(a, &d), &|a| staleness(a, &d))?);
    if !d.lengths.is_empty() {
        out.extend(render(dir, "lengths", (1000, 560), &|a| length_cdf(a, &d), &|a| length_cdf(a, &d))?);
    }
    Ok(out)
}

fn compare_bars<DB: DrawingBackend>(root: &Area<DB>, rows: &[crate::CompareRow]) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let top = rows.iter().map(|r| r.tokens_per_s).fold(0.0, f64::max).max(1e-9);
    let n = rows.len().max(1);
    let labels: Vec<String> = rows.iter().map(|r| format!("{}\n{}", r.scenario, r.pipeline)).collect();
    let mut chart = ChartBuilder::on(root)
        .caption("Trained tokens per second", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..top * 1.2)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("scenario / pipeline")
        .y_desc("trained tokens/s")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round() as usize;
            if (x - x.round()).abs() < 1e-9 && i < labels.len() {
                labels[i].replace('\n', " / ")
            } else {
                String::new()
            }
        })
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            Rectangle::new([(i as f64 - 0.3, 0.0), (i as f64 + 0.3, r.tokens_per_s)], RGBColor(66, 133, 244).filled())
        }))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            Text::new(
                format!("{:.0} ({:.2}×)", r.tokens_per_s, r.speedup),
                (i as f64 - 0.28, r.tokens_per_s + top * 0.06),
                ("sans-serif", 15),
            )
        }))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Reads a `compare.csv` back for plotting; every number must be finite and there must be at least one row.
pub fn read_compare_csv(file: &Path) -> Result<Vec<crate::CompareRow>, PlotError> {
    let mut r = csv::Reader::from_path(file).map_err(|e| err(file, e))?;
    let mut rows = Vec::new();
    for rec in r.deserialize::<crate::CompareRow>() {
        let row = rec.map_err(|e| err(file, e))?;
        let numbers = [
            ("sim_time_s", row.sim_time_s),
            ("mean_step_s", row.mean_step_s),
            ("tokens_per_s", row.tokens_per_s),
            ("speedup", row.speedup),
        ];
        if let Some((field, v)) = numbers.iter().find(|(_, v)| !v.is_finite()) {
            return Err(err(
                file,
                format!("row {}: field `{field}`: expected a finite number, got {v}", rows.len() + 1),
            ));
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(err(file, "no rows (only a header)"));
    }
    Ok(rows)
}

/// Draws `compare.png/.svg`: throughput per row with the speedup over the first written on each bar.
pub fn plot_compare(dir: &Path, rows: &[crate::CompareRow]) -> Result<Vec<PathBuf>, PlotError> {
    let width = (300 + 220 * rows.len() as u32).clamp(700, 2400);
    render(dir, "compare", (width, 560), &|a| compare_bars(a, rows), &|a| compare_bars(a, rows))
}

/// One sweep point for plotting: its values of the varied keys and its throughput.
pub struct SweepPoint {
    pub values: Vec<String>,
    pub tokens_per_s: f64,
}

fn sweep_curve<DB: DrawingBackend>(
    root: &Area<DB>,
    keys: &[String],
    axis: usize,
    values: &[String],
    points: &[SweepPoint],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    // One line per combination of the other keys' values.
    let mut lines: BTreeMap<Vec<String>, Vec<(usize, f64)>> = BTreeMap::new();
    for p in points {
        let x = values.iter().position(|v| *v == p.values[axis]).unwrap_or(0);
        let others: Vec<String> =
            p.values.iter().enumerate().filter(|(i, _)| *i != axis).map(|(i, v)| format!("{}={v}", keys[i])).collect();
        lines.entry(others).or_default().push((x, p.tokens_per_s));
    }
    let top = points.iter().map(|p| p.tokens_per_s).fold(0.0, f64::max).max(1e-9);
    let n = values.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(format!("Throughput against {}", keys[axis]), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.3f64..n as f64 - 0.7, 0f64..top * 1.15)
        .map_err(|e| e.to_string())?;
    let labels = values.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc(keys[axis].as_str())
        .y_desc("trained tokens/s")
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round() as usize;
            if (x - x.round()).abs() < 1e-9 && i < labels.len() {
                labels[i].clone()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (others, mut pts)) in lines.into_iter().take(10).enumerate() {
        pts.sort_by_key(|p| p.0);
        let color = Palette99::pick(i).to_rgba();
        let label = if others.is_empty() { "all".to_string() } else { others.join(", ") };
        chart
            .draw_series(LineSeries::new(pts.iter().map(|&(x, y)| (x as f64, y)), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&(x, y)| Circle::new((x as f64, y), 4, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

/// Draws `sweep-<key>.png/.svg` for each varied key: throughput against that key's values, one line per
/// combination of the other keys (at most 10 lines).
/// A `sweep.csv` read back for plotting: the varied keys, each key's values in first-seen order, and the points.
pub struct SweepTable {
    pub keys: Vec<String>,
    pub values: Vec<Vec<String>>,
    pub points: Vec<SweepPoint>,
}

/// Reads a `sweep.csv` (the varied keys are the columns between `point` and `scenario`); `tokens_per_s` must be a
/// finite number on every row (an `inf` would make the plot's tick search loop forever).
pub fn read_sweep_csv(file: &Path) -> Result<SweepTable, PlotError> {
    let mut r = csv::Reader::from_path(file).map_err(|e| err(file, e))?;
    let header = r.headers().map_err(|e| err(file, e))?.clone();
    if header.get(0) != Some("point") {
        return Err(err(file, "line 1: expected a sweep.csv, whose first column is `point`"));
    }
    let end = header.iter().position(|h| h == "scenario").ok_or_else(|| err(file, "line 1: no `scenario` column"))?;
    let tps =
        header.iter().position(|h| h == "tokens_per_s").ok_or_else(|| err(file, "line 1: no `tokens_per_s` column"))?;
    let keys: Vec<String> = header.iter().skip(1).take(end - 1).map(String::from).collect();
    let mut values: Vec<Vec<String>> = vec![Vec::new(); keys.len()];
    let mut points = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| err(file, e))?;
        let line = rec.position().map_or(0, |p| p.line());
        let vals: Vec<String> = (1..end).map(|i| rec.get(i).unwrap_or("").to_string()).collect();
        for (k, v) in vals.iter().enumerate() {
            if !values[k].contains(v) {
                values[k].push(v.clone());
            }
        }
        let tokens_per_s = finite(file, line, "tokens_per_s", rec.get(tps).unwrap_or(""))?;
        points.push(SweepPoint { values: vals, tokens_per_s });
    }
    if points.is_empty() {
        return Err(err(file, "no points (only a header)"));
    }
    Ok(SweepTable { keys, values, points })
}

pub fn plot_sweep(
    dir: &Path,
    keys: &[String],
    values: &[Vec<String>],
    points: &[SweepPoint],
) -> Result<Vec<PathBuf>, PlotError> {
    let mut out = Vec::new();
    for (axis, key) in keys.iter().enumerate() {
        let stem = format!("sweep-{}", key.replace(['.', '[', ']', '/'], "_"));
        let draw = |a: &Area<BitMapBackend>| sweep_curve(a, keys, axis, &values[axis], points);
        let draw_svg = |a: &Area<SVGBackend>| sweep_curve(a, keys, axis, &values[axis], points);
        out.extend(render(dir, &stem, (1100, 560), &draw, &draw_svg)?);
    }
    Ok(out)
}

/// One point of the fidelity plot: a published figure and the simulator's, whether it is a speed-up (not drawn:
/// the axes are seconds), and whether it is within ±15 %.
pub struct FidelityPoint {
    pub published: f64,
    pub simulated: f64,
    pub speedup: bool,
    pub within: bool,
}

fn fidelity_scatter<DB: DrawingBackend>(root: &Area<DB>, points: &[FidelityPoint]) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let secs: Vec<&FidelityPoint> = points.iter().filter(|p| !p.speedup).collect();
    let lo = secs.iter().map(|p| p.published.min(p.simulated)).fold(f64::INFINITY, f64::min).max(0.1);
    let hi = secs.iter().map(|p| p.published.max(p.simulated)).fold(1.0, f64::max);
    let (lo, hi) = ((lo / 1.5).max(0.05), hi * 1.5);
    let mut chart = ChartBuilder::on(root)
        .caption("Simulated against published, seconds (one point per step or phase)", ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((lo..hi).log_scale(), (lo..hi).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_y_mesh()
        .x_desc("published, s")
        .y_desc("rlsim, s")
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    let grey = RGBColor(120, 120, 120);
    chart
        .draw_series(LineSeries::new([(lo, lo), (hi, hi)], grey.stroke_width(2)))
        .map_err(|e| e.to_string())?
        .label("y = x")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], grey.stroke_width(2)));
    for (band, style) in [(1.15, grey.mix(0.5)), (1.0 / 1.15, grey.mix(0.5))] {
        chart
            .draw_series(LineSeries::new([(lo, lo * band), (hi, hi * band)], style.stroke_width(1)))
            .map_err(|e| e.to_string())?;
    }
    let ok = RGBColor(31, 119, 180);
    let miss = RGBColor(214, 39, 40);
    for (within, color, label) in [(true, ok, "within ±15 %"), (false, miss, "outside ±15 %")] {
        let pts: Vec<(f64, f64)> =
            secs.iter().filter(|p| p.within == within).map(|p| (p.published, p.simulated)).collect();
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(pts.iter().map(|&(x, y)| Circle::new((x, y), 5, color.filled())))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| Circle::new((x + 7, y), 5, color.filled()));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

/// Draws `fidelity.png/.svg`: simulated against published seconds on log axes, with y = x and ±15 % lines.
pub fn plot_fidelity(dir: &Path, points: &[FidelityPoint]) -> Result<Vec<PathBuf>, PlotError> {
    render(dir, "fidelity", (820, 760), &|a| fidelity_scatter(a, points), &|a| fidelity_scatter(a, points))
}
