//! A run folder's plots: the per-worker timeline, where each step's time went (its critical path and the pools'
//! busy shares), the staleness histogram and the response-length CDF.

use super::{
    activity_color, err, finite, label_above, legend_column, legend_column_width, legend_row, render, style_mesh,
    titled, txt, Area, Figure, Key, PlotError, PlotOptions, TickAxis, Ticks, ACTIVITIES, IDLE, INK,
};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
            // Text columns (`critical_phase`) are skipped; a number must be finite.
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

/// Draws a run folder's plots from its files: `timeline.png/.svg` (Gantt), `steps.png/.svg`,
/// `staleness.png/.svg`, `lengths.png/.svg`. Returns the files written.
pub fn plot_run(dir: &Path, o: &PlotOptions) -> Result<Vec<PathBuf>, PlotError> {
    let d = read_run(dir)?;
    let rows = d.workers.len().max(1) as u32;
    let mut out = Vec::new();
    // The timeline and the steps' critical path are drawn from worker spans (not written with `--timeline none` or
    // `steps`); the lengths from per-trajectory rows (`--timeline trajectories`).
    if !d.spans.is_empty() {
        out.extend(render(dir, "timeline", (1400, 130 + 26 * rows), o, &Gantt { d: &d, o: *o })?);
        let steps_height = if d.steps.iter().any(|s| s.contains_key("rollout_pool_busy_fraction")) { 760 } else { 520 };
        out.extend(render(dir, "steps", (1300, steps_height), o, &Steps { d: &d, o: *o })?);
    }
    out.extend(render(dir, "staleness", (900, 520), o, &Staleness { d: &d, o: *o })?);
    if !d.lengths.is_empty() {
        out.extend(render(dir, "lengths", (1000, 560), o, &Lengths { d: &d, o: *o })?);
    }
    Ok(out)
}

/// The thin line at each step's end in the timeline.
const STEP_LINE: RGBColor = RGBColor(70, 70, 70);

/// The per-worker timeline: one row per worker, first at the top, its idle time grey, a white gap between rows.
struct Gantt<'a> {
    d: &'a RunData,
    o: PlotOptions,
}

impl Figure for Gantt<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> Result<(), String> {
        let (d, o) = (self.d, &self.o);
        let area = titled(root, &format!("Worker timeline — {}", d.title), o)?;
        let (_, h) = area.dim_in_pixel();
        let (top, bottom) = area.split_vertically(h as i32 - o.px(40.0));
        let ends: Vec<f64> = d.steps.iter().filter_map(|s| s.get("end_s").copied()).collect();
        let t_end = d.spans.iter().map(|s| s.end).chain(ends.iter().copied()).fold(0.0, f64::max).max(1e-9);
        let n = d.workers.len().max(1);
        // Row i spans [n-1-i, n-i] on the y axis, so the first worker is at the top and no band is empty.
        let rows: BTreeMap<&str, usize> = d.workers.iter().enumerate().map(|(i, w)| (w.as_str(), i)).collect();
        let row_top = |i: usize| (n - i) as f64;
        let centres: Vec<f64> = (0..d.workers.len()).map(|i| row_top(i) - 0.5).collect();
        let x = Ticks::linear(0.0, t_end, 10);
        let name_w = d.workers.iter().map(|w| o.text_width(w, 13.0)).max().unwrap_or(0);
        let mut chart = ChartBuilder::on(&top)
            .margin_left(o.px(12.0))
            .margin_right(o.px(24.0))
            .margin_top(o.px(4.0))
            .x_label_area_size(o.px(44.0))
            .y_label_area_size(name_w + o.px(16.0))
            .build_cartesian_2d(
                TickAxis::linear(0.0..t_end, &x),
                TickAxis { lo: 0.0, hi: n as f64, log: false, ticks: centres },
            )
            .map_err(txt)?;
        let names = d.workers.clone();
        style_mesh(&mut chart.configure_mesh(), o)
            .disable_y_mesh()
            .x_desc("time (s)")
            .x_label_formatter(&x.format())
            .y_label_formatter(&|y| {
                let i = n as i64 - 1 - y.floor() as i64;
                usize::try_from(i).ok().and_then(|i| names.get(i)).cloned().unwrap_or_default()
            })
            .draw()
            .map_err(txt)?;
        // Rows: a gap of at least two pixels (12 % of the row) stays white between neighbours.
        let row_px = chart.plotting_area().dim_in_pixel().1 as f64 / n as f64;
        let gap = (2.0 * o.scale / row_px).clamp(0.12, 0.3);
        chart
            .draw_series(
                (0..d.workers.len())
                    .map(|i| Rectangle::new([(0.0, row_top(i) - 1.0 + gap), (t_end, row_top(i) - gap)], IDLE.filled())),
            )
            .map_err(txt)?;
        let min_w = t_end / chart.plotting_area().dim_in_pixel().0.max(1) as f64;
        for kind in ACTIVITIES {
            let color = activity_color(kind);
            let boxes: Vec<Rectangle<(f64, f64)>> = d
                .spans
                .iter()
                .filter(|s| s.kind == kind)
                .filter_map(|s| {
                    let i = *rows.get(s.worker.as_str())?;
                    let end = s.end.max(s.start + min_w);
                    Some(Rectangle::new([(s.start, row_top(i) - 1.0 + gap), (end, row_top(i) - gap)], color.filled()))
                })
                .collect();
            chart.draw_series(boxes).map_err(txt)?;
        }
        chart
            .draw_series(
                ends.iter()
                    .map(|&x| PathElement::new(vec![(x, 0.0), (x, n as f64)], STEP_LINE.stroke_width(o.stroke(1.0)))),
            )
            .map_err(txt)?;
        // The legend lists only what the picture shows.
        let mut items: Vec<(String, Key)> = ACTIVITIES
            .iter()
            .filter(|k| d.spans.iter().any(|s| s.kind == **k))
            .map(|k| (k.to_string(), Key::Box(activity_color(k))))
            .collect();
        items.push(("idle".into(), Key::Box(IDLE)));
        if !ends.is_empty() {
            items.push(("step end".into(), Key::Line(STEP_LINE)));
        }
        legend_row(&bottom, &items, o.px(12.0) + name_w + o.px(16.0), o.px(20.0), o)
    }
}

/// One step's window (the previous step's end to its own) split by what the trainer was doing, the partition of
/// `docs/bottleneck.md`: instant by instant the first phase active on any worker in the order train, log-prob,
/// reward, sync, switch; the rest is time the trainer waited for rollout, of which `rollout_tail_s` (from
/// steps.csv) was the tail. The parts add up to `window_s`, unlike per-phase durations, which overlap when rollout
/// runs during training.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CriticalPath {
    pub step: u32,
    pub window_s: f64,
    pub train_s: f64,
    pub logprob_s: f64,
    pub reward_s: f64,
    pub sync_s: f64,
    pub switch_s: f64,
    pub rollout_wait_s: f64,
    pub rollout_tail_s: f64,
}

/// Phases of the critical path, first wins.
const PATH_PHASES: [&str; 5] = ["train", "logprob", "reward", "sync", "switch"];

/// The critical path of every step of a run, from its timeline spans and step windows.
pub fn critical_path(d: &RunData) -> Vec<CriticalPath> {
    let get = |s: &BTreeMap<String, f64>, k: &str| s.get(k).copied().unwrap_or(0.0);
    let windows: Vec<(f64, f64)> =
        d.steps.iter().map(|s| (get(s, "start_s"), get(s, "end_s").max(get(s, "start_s")))).collect();
    let mut events: Vec<(f64, usize, i64)> = Vec::new();
    for s in &d.spans {
        if let Some(k) = PATH_PHASES.iter().position(|p| *p == s.kind) {
            if s.end > s.start {
                events.push((s.start, k, 1));
                events.push((s.end, k, -1));
            }
        }
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut cuts: Vec<f64> = events.iter().map(|e| e.0).chain(windows.iter().flat_map(|w| [w.0, w.1])).collect();
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let mut parts = vec![[0.0f64; 5]; windows.len()];
    let (mut active, mut ei, mut wi) = ([0i64; 5], 0usize, 0usize);
    for pair in cuts.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        while ei < events.len() && events[ei].0 <= a {
            active[events[ei].1] += events[ei].2;
            ei += 1;
        }
        while wi < windows.len() && windows[wi].1 <= a {
            wi += 1;
        }
        let Some(&(ws, we)) = windows.get(wi) else { break };
        if a >= ws && b <= we {
            if let Some(k) = active.iter().position(|&c| c > 0) {
                parts[wi][k] += b - a;
            }
        }
    }
    d.steps
        .iter()
        .zip(windows)
        .zip(parts)
        .map(|((s, (ws, we)), p)| {
            let window_s = we - ws;
            let wait = (window_s - p.iter().sum::<f64>()).max(0.0);
            CriticalPath {
                step: get(s, "step") as u32,
                window_s,
                train_s: p[0],
                logprob_s: p[1],
                reward_s: p[2],
                sync_s: p[3],
                switch_s: p[4],
                rollout_wait_s: wait,
                rollout_tail_s: get(s, "rollout_tail_s").clamp(0.0, wait),
            }
        })
        .collect()
}

/// The lighter blue of the rollout tail (the last few sequences holding the step).
const TAIL: RGBColor = RGBColor(160, 196, 250);

/// Where each step's time went: its critical path stacked (the parts add up to the step), and below it each pool's
/// busy share of the step.
struct Steps<'a> {
    d: &'a RunData,
    o: PlotOptions,
}

impl Figure for Steps<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> Result<(), String> {
        let (d, o) = (self.d, &self.o);
        let area = titled(root, &format!("Where each step's time went — {}", d.title), o)?;
        let path = critical_path(d);
        if path.is_empty() {
            return area.draw(&Text::new("no completed steps", (o.px(40.0), o.px(40.0)), o.font(16.0))).map_err(txt);
        }
        // Stacked bottom to top: the trainer's work, then its wait for rollout (the tail on top).
        type Part = (&'static str, fn(&CriticalPath) -> f64, RGBColor);
        let parts: [Part; 7] = [
            ("train", |c| c.train_s, activity_color("train")),
            ("log-prob", |c| c.logprob_s, activity_color("logprob")),
            ("reward", |c| c.reward_s, activity_color("reward")),
            ("sync", |c| c.sync_s, activity_color("sync")),
            ("switch", |c| c.switch_s, activity_color("switch")),
            ("waiting for rollout", |c| c.rollout_wait_s - c.rollout_tail_s, activity_color("rollout")),
            ("waiting for the tail", |c| c.rollout_tail_s, TAIL),
        ];
        let shown: Vec<&Part> = parts.iter().filter(|p| path.iter().any(|c| (p.1)(c) > 0.0)).collect();
        let pools = d.steps.iter().any(|s| s.contains_key("rollout_pool_busy_fraction"));
        let path_items: Vec<(String, Key)> = shown.iter().map(|p| (p.0.to_string(), Key::Box(p.2))).collect();
        let pool_items: Vec<(String, Key)> = vec![
            ("rollout pool".into(), Key::Box(activity_color("rollout"))),
            ("train pool".into(), Key::Box(activity_color("train"))),
        ];
        let legend_w = legend_column_width(&path_items, o)
            .max(legend_column_width(&pool_items, o))
            .max(o.text_width("critical path", 13.0) + o.px(12.0));
        let (w, h) = area.dim_in_pixel();
        let (main, legend) = area.split_horizontally(w as i32 - legend_w);
        let (top, bottom) =
            if pools { main.split_vertically((h as f64 * 0.62) as i32) } else { main.split_vertically(h as i32) };
        let n = path.len();
        let top_s = path.iter().map(|c| c.window_s).fold(0.0, f64::max).max(1e-9) * 1.08;
        let x = Ticks::integers(-0.5, n as f64 - 0.5, 12);
        let y = Ticks::linear(0.0, top_s, 6);
        let steps: Vec<u32> = path.iter().map(|c| c.step).collect();
        let step_label = |v: &f64| {
            let i = v.round() as usize;
            steps.get(i).map(|s| s.to_string()).unwrap_or_default()
        };
        let mut chart = ChartBuilder::on(&top)
            .caption("Critical path: what the trainer was doing (the parts add up to the step)", o.font(15.0))
            .margin(o.px(10.0))
            .x_label_area_size(o.px(40.0))
            .y_label_area_size(o.px(64.0))
            .build_cartesian_2d(TickAxis::linear(-0.5..n as f64 - 0.5, &x), TickAxis::linear(0.0..top_s, &y))
            .map_err(txt)?;
        style_mesh(&mut chart.configure_mesh(), o)
            .disable_x_mesh()
            .x_desc("RL step")
            .y_desc("seconds")
            .x_label_formatter(&step_label)
            .y_label_formatter(&y.format())
            .draw()
            .map_err(txt)?;
        let half = if n > 60 { 0.45 } else { 0.35 };
        for (k, part) in shown.iter().enumerate() {
            let bars: Vec<Rectangle<(f64, f64)>> = path
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let below: f64 = shown[..k].iter().map(|p| (p.1)(c)).sum();
                    let v = (part.1)(c);
                    Rectangle::new([(i as f64 - half, below), (i as f64 + half, below + v)], part.2.filled())
                })
                .collect();
            chart.draw_series(bars).map_err(txt)?;
        }
        legend_column(&legend, Some("critical path"), &path_items, o.px(50.0), o)?;
        if !pools {
            return Ok(());
        }
        let pct = Ticks::linear(0.0, 100.0, 4);
        let mut chart = ChartBuilder::on(&bottom)
            .caption("Pool busy: share of each pool's GPU-time computing in the step", o.font(15.0))
            .margin(o.px(10.0))
            .x_label_area_size(o.px(40.0))
            .y_label_area_size(o.px(64.0))
            .build_cartesian_2d(TickAxis::linear(-0.5..n as f64 - 0.5, &x), TickAxis::linear(0.0..105.0, &pct))
            .map_err(txt)?;
        style_mesh(&mut chart.configure_mesh(), o)
            .disable_x_mesh()
            .x_desc("RL step")
            .y_desc("busy (%)")
            .x_label_formatter(&step_label)
            .y_label_formatter(&pct.format())
            .draw()
            .map_err(txt)?;
        for (k, (key, color)) in [
            ("rollout_pool_busy_fraction", activity_color("rollout")),
            ("train_pool_busy_fraction", activity_color("train")),
        ]
        .into_iter()
        .enumerate()
        {
            let (a, b) = if k == 0 { (-half, -0.01) } else { (0.01, half) };
            chart
                .draw_series(d.steps.iter().enumerate().map(|(i, s)| {
                    let v = 100.0 * s.get(key).copied().unwrap_or(0.0);
                    Rectangle::new([(i as f64 + a, 0.0), (i as f64 + b, v)], color.filled())
                }))
                .map_err(txt)?;
        }
        let (_, top_h) = top.dim_in_pixel();
        legend_column(&legend, Some("pool busy"), &pool_items, top_h as i32 + o.px(50.0), o)
    }
}

/// The staleness histogram: the share of trained tokens at each policy lag.
struct Staleness<'a> {
    d: &'a RunData,
    o: PlotOptions,
}

impl Figure for Staleness<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> Result<(), String> {
        let (d, o) = (self.d, &self.o);
        let area = titled(root, &format!("Staleness of trained tokens — {}", d.title), o)?;
        let total: u64 = d.staleness.iter().map(|(_, n)| n).sum::<u64>().max(1);
        let max_lag = d.staleness.iter().map(|(l, _)| *l).max().unwrap_or(0);
        let pct = |n: u64| 100.0 * n as f64 / total as f64;
        let top = d.staleness.iter().map(|&(_, n)| pct(n)).fold(0.0, f64::max).max(1.0) * 1.15;
        let x = Ticks::integers(-0.5, max_lag as f64 + 0.5, 12);
        let y = Ticks::linear(0.0, top.min(115.0), 5);
        let mut chart = ChartBuilder::on(&area)
            .margin(o.px(12.0))
            .x_label_area_size(o.px(44.0))
            .y_label_area_size(o.px(60.0))
            .build_cartesian_2d(
                TickAxis::linear(-0.5..max_lag as f64 + 0.5, &x),
                TickAxis::linear(0.0..top.min(115.0), &y),
            )
            .map_err(txt)?;
        style_mesh(&mut chart.configure_mesh(), o)
            .disable_x_mesh()
            .x_desc("policy versions between generating a token and training on it")
            .y_desc("share of trained tokens (%)")
            .x_label_formatter(&x.format())
            .y_label_formatter(&y.format())
            .draw()
            .map_err(txt)?;
        let blue = activity_color("rollout");
        chart
            .draw_series(
                d.staleness.iter().map(|&(lag, n)| {
                    Rectangle::new([(lag as f64 - 0.3, 0.0), (lag as f64 + 0.3, pct(n))], blue.filled())
                }),
            )
            .map_err(txt)?;
        chart
            .draw_series(
                d.staleness.iter().map(|&(lag, n)| {
                    EmptyElement::at((lag as f64, pct(n))) + label_above(format!("{:.1} %", pct(n)), o)
                }),
            )
            .map_err(txt)?;
        Ok(())
    }
}

/// The response-length CDF with its median, p99 and the length cap.
struct Lengths<'a> {
    d: &'a RunData,
    o: PlotOptions,
}

impl Figure for Lengths<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> Result<(), String> {
        let (d, o) = (self.d, &self.o);
        let area = titled(root, &format!("Response lengths — {}", d.title), o)?;
        let mut v: Vec<f64> = d.lengths.iter().copied().filter(|x| *x > 0.0).collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return area.draw(&Text::new("no responses", (o.px(40.0), o.px(40.0)), o.font(16.0))).map_err(txt);
        }
        let q = |p: f64| v[((p * v.len() as f64) as usize).min(v.len() - 1)];
        let longest = v[v.len() - 1];
        let x_max = d.max_response_tokens.unwrap_or(longest).max(longest) * 1.3;
        let x_min = 10f64.powf(v[0].log10().floor()).min(x_max / 10.0);
        let x = Ticks::log(x_min, x_max);
        let y = Ticks::linear(0.0, 100.0, 5);
        let mut chart = ChartBuilder::on(&area)
            .margin(o.px(12.0))
            .margin_right(o.px(24.0))
            .x_label_area_size(o.px(44.0))
            .y_label_area_size(o.px(60.0))
            .build_cartesian_2d(TickAxis::log(x_min..x_max, &x), TickAxis::linear(0.0..100.0, &y))
            .map_err(txt)?;
        style_mesh(&mut chart.configure_mesh(), o)
            .x_desc("response tokens (log scale)")
            .y_desc("samples at or below (%)")
            .x_label_formatter(&x.format())
            .y_label_formatter(&y.format())
            .draw()
            .map_err(txt)?;
        let n = v.len() as f64;
        let blue = activity_color("rollout");
        chart
            .draw_series(LineSeries::new(
                v.iter().enumerate().map(|(i, &x)| (x, 100.0 * (i + 1) as f64 / n)),
                blue.stroke_width(o.stroke(2.0)),
            ))
            .map_err(txt)?;
        let mut marks = vec![
            (format!("median {}", super::number(q(0.5), 0)), q(0.5), activity_color("sync")),
            (format!("p99 {}", super::number(q(0.99), 0)), q(0.99), activity_color("train")),
        ];
        if let Some(cap) = d.max_response_tokens {
            marks.push((format!("cap {}", super::number(cap, 0)), cap, INK));
        }
        for (_, x, color) in &marks {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(*x, 0.0), (*x, 100.0)],
                    color.stroke_width(o.stroke(2.0)),
                )))
                .map_err(txt)?;
        }
        let mut items = vec![(format!("{} samples", super::number(n, 0)), Key::Line(blue))];
        items.extend(marks.into_iter().map(|(l, _, c)| (l, Key::Line(c))));
        // Top left: the CDF is near 0 there.
        let plot = chart.plotting_area();
        let (px, py) = plot.get_base_pixel();
        let inner =
            area.margin(py - area.get_base_pixel().1 + o.px(8.0), 0, px - area.get_base_pixel().0 + o.px(10.0), 0);
        legend_column(&inner, None, &items, 0, o)
    }
}
