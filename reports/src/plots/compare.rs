//! The comparison figure of `rlsim compare`: four panels over the compared rows — throughput (with the seed range),
//! the pools' busy shares, staleness and cost per trained token.

use super::{
    activity_color, dollars, err, label_above, legend_row, render, short, style_mesh, titled, txt, Area, Figure, Key,
    PlotError, PlotOptions, TickAxis, Ticks,
};
use crate::CompareRow;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// Reads a `compare.csv` back for plotting; every plotted number must be finite and there must be at least one row.
pub fn read_compare_csv(file: &Path) -> Result<Vec<CompareRow>, PlotError> {
    let mut r = csv::Reader::from_path(file).map_err(|e| err(file, e))?;
    let mut rows = Vec::new();
    for rec in r.deserialize::<CompareRow>() {
        let row = rec.map_err(|e| err(file, e))?;
        let numbers = [
            ("sim_time_s", row.sim_time_s),
            ("mean_step_s", row.mean_step_s),
            ("tokens_per_s", row.tokens_per_s),
            ("speedup", row.speedup),
            ("mean_staleness", row.mean_staleness),
            ("off_policy_token_fraction", row.off_policy_token_fraction),
            ("usd_per_million_trained_tokens", row.usd_per_million_trained_tokens),
            ("rollout_pool_busy_fraction", row.rollout_pool_busy_fraction),
            ("train_pool_busy_fraction", row.train_pool_busy_fraction),
            ("tokens_per_s_min", row.tokens_per_s_min),
            ("tokens_per_s_max", row.tokens_per_s_max),
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

/// Draws `compare.png/.svg`: (a) trained tokens/s with the speedup over the first row (and the seed range as an
/// error bar when rows ran on several seeds), (b) the rollout and train pools' busy shares, (c) the off-policy
/// token share with mean and max staleness, (d) dollars per million trained tokens.
pub fn plot_compare(dir: &Path, rows: &[CompareRow], o: &PlotOptions) -> Result<Vec<PathBuf>, PlotError> {
    let labels = row_labels(rows);
    // Each bar's slot is as wide as its label, so labels never overlap.
    let slot = labels.iter().map(|l| super::text::text_size(l, 13.0).0).max().unwrap_or(0).max(90) + 16;
    let width = (2 * (110 + slot * rows.len() as u32)).clamp(1000, 4000);
    let fig = Compare { rows, labels, o: *o };
    render(dir, "compare", (width, 860), o, &fig)
}

/// X labels: the pipeline alone when every row is of one scenario (the scenario is then in the title), the
/// scenario alone when every row has one pipeline, else both; made unique with " #2", " #3", ….
fn row_labels(rows: &[CompareRow]) -> Vec<String> {
    let one_scenario = rows.iter().all(|r| r.scenario == rows[0].scenario);
    let one_pipeline = rows.iter().all(|r| r.pipeline == rows[0].pipeline);
    let mut out: Vec<String> = Vec::new();
    for r in rows {
        let base = match (one_scenario, one_pipeline) {
            (true, _) => r.pipeline.clone(),
            (false, true) => r.scenario.clone(),
            _ => format!("{} / {}", r.scenario, r.pipeline),
        };
        let mut label = base.clone();
        let mut k = 2;
        while out.contains(&label) {
            label = format!("{base} #{k}");
            k += 1;
        }
        out.push(label);
    }
    out
}

struct Compare<'a> {
    rows: &'a [CompareRow],
    labels: Vec<String>,
    o: PlotOptions,
}

/// Bars of the single-series panels.
const BAR: RGBColor = RGBColor(76, 114, 176);

/// One bar of a row: its offset from the row's centre, half width, value and colour.
type Bar = (f64, f64, f64, RGBColor);

/// One panel: a caption, an optional legend row under it, and a bar chart over the rows with a label over each
/// row's bars (and an optional whisker).
struct Panel<'f> {
    caption: &'f str,
    legend: Vec<(String, Key)>,
    y_desc: &'f str,
    /// The largest value drawn (the axis leaves room above it for the labels).
    top: f64,
    bars: &'f dyn Fn(&CompareRow) -> Vec<Bar>,
    whiskers: &'f dyn Fn(&CompareRow) -> Option<(f64, f64)>,
    label: &'f dyn Fn(&CompareRow) -> String,
}

impl Compare<'_> {
    /// The figure's title: the scenario (and its GPUs) when every row shares it, and the seeds.
    fn title(&self) -> String {
        let r0 = &self.rows[0];
        let mut t = "Comparison".to_string();
        if self.rows.iter().all(|r| r.scenario == r0.scenario) {
            t += &format!(" — {}", r0.scenario);
            if self.rows.iter().all(|r| r.gpus == r0.gpus) {
                t += &format!(", {} GPUs", r0.gpus);
            }
        }
        let seeds = self.rows.iter().map(|r| r.seeds).max().unwrap_or(1);
        if seeds > 1 {
            t += &format!(" ({seeds} seeds)");
        }
        t
    }

    /// Draws one panel on `area`.
    fn panel<DB: DrawingBackend>(&self, area: &Area<DB>, p: Panel) -> Result<(), String> {
        let Panel { caption, legend, y_desc, top, bars, whiskers, label } = p;
        let o = &self.o;
        let n = self.rows.len();
        let w = area.dim_in_pixel().0 as i32;
        let centre = Pos::new(HPos::Center, VPos::Top);
        area.draw(&Text::new(caption.to_string(), (w / 2, o.px(6.0)), o.font(15.0).pos(centre))).map_err(txt)?;
        let mut head = o.px(30.0);
        if !legend.is_empty() {
            legend_row(area, &legend, o.px(80.0), head + o.px(8.0), o)?;
            head += o.px(22.0);
        }
        let body = area.margin(head, 0, 0, 0);
        let top = top.max(1e-9) * 1.18;
        let y = Ticks::linear(0.0, top, 5);
        let mut chart = ChartBuilder::on(&body)
            .margin(o.px(10.0))
            .margin_right(o.px(20.0))
            .x_label_area_size(o.px(34.0))
            .y_label_area_size(o.px(70.0))
            .build_cartesian_2d(TickAxis::categories(n), TickAxis::linear(0.0..top, &y))
            .map_err(txt)?;
        let labels = &self.labels;
        style_mesh(&mut chart.configure_mesh(), o)
            .disable_x_mesh()
            .y_desc(y_desc)
            .x_label_formatter(&|v| labels.get(v.round() as usize).cloned().unwrap_or_default())
            .y_label_formatter(&y.format())
            .draw()
            .map_err(txt)?;
        for (i, r) in self.rows.iter().enumerate() {
            let c = i as f64;
            chart
                .draw_series(bars(r).into_iter().map(|(dx, half, v, color)| {
                    Rectangle::new([(c + dx - half, 0.0), (c + dx + half, v)], color.filled())
                }))
                .map_err(txt)?;
            let mut label_at = bars(r).iter().map(|b| b.2).fold(0.0, f64::max);
            if let Some((lo, hi)) = whiskers(r) {
                // The seed range: a vertical line with caps.
                let ink = super::INK.stroke_width(o.stroke(1.5));
                let cap = 0.08;
                chart
                    .draw_series([
                        PathElement::new(vec![(c, lo), (c, hi)], ink),
                        PathElement::new(vec![(c - cap, lo), (c + cap, lo)], ink),
                        PathElement::new(vec![(c - cap, hi), (c + cap, hi)], ink),
                    ])
                    .map_err(txt)?;
                label_at = label_at.max(hi);
            }
            chart
                .draw_series(std::iter::once(EmptyElement::at((c, label_at)) + label_above(label(r), o)))
                .map_err(txt)?;
        }
        Ok(())
    }
}

impl Figure for Compare<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> Result<(), String> {
        let o = &self.o;
        let area = titled(root, &self.title(), o)?;
        let panels = area.split_evenly((2, 2));
        let rows = self.rows;
        let max = |f: &dyn Fn(&CompareRow) -> f64| rows.iter().map(f).fold(0.0, f64::max);

        let seeded = rows.iter().any(|r| r.seeds > 1);
        let caption = if seeded {
            "(a) Trained tokens/s, × over the first (mean over seeds; whisker: seed range)"
        } else {
            "(a) Trained tokens/s, × over the first"
        };
        let range = |r: &CompareRow| (r.seeds > 1).then_some((r.tokens_per_s_min, r.tokens_per_s_max));
        self.panel(
            &panels[0],
            Panel {
                caption,
                legend: Vec::new(),
                y_desc: "tokens/s",
                top: max(&|r| r.tokens_per_s.max(range(r).map_or(0.0, |x| x.1))),
                bars: &|r| vec![(0.0, 0.3, r.tokens_per_s, BAR)],
                whiskers: &range,
                label: &|r| format!("{} ({:.2}×)", short(r.tokens_per_s), r.speedup),
            },
        )?;

        let (blue, red) = (activity_color("rollout"), activity_color("train"));
        self.panel(
            &panels[1],
            Panel {
                caption: "(b) Pool busy: share of each pool's GPU-time computing; label: mean step",
                legend: vec![("rollout pool".into(), Key::Box(blue)), ("train pool".into(), Key::Box(red))],
                y_desc: "busy (%)",
                top: 100.0,
                bars: &|r| {
                    vec![
                        (-0.16, 0.15, 100.0 * r.rollout_pool_busy_fraction, blue),
                        (0.16, 0.15, 100.0 * r.train_pool_busy_fraction, red),
                    ]
                },
                whiskers: &|_| None,
                label: &|r| format!("step {} s", super::number(r.mean_step_s, 1)),
            },
        )?;

        self.panel(
            &panels[2],
            Panel {
                caption: "(c) Off-policy trained tokens; label: mean (max) staleness in versions",
                legend: Vec::new(),
                y_desc: "off-policy tokens (%)",
                top: max(&|r| 100.0 * r.off_policy_token_fraction).max(1.0),
                bars: &|r| vec![(0.0, 0.3, 100.0 * r.off_policy_token_fraction, BAR)],
                whiskers: &|_| None,
                label: &|r| format!("{:.2} ({})", r.mean_staleness, r.max_staleness),
            },
        )?;

        let priced = rows.iter().any(|r| r.usd_per_million_trained_tokens > 0.0);
        self.panel(
            &panels[3],
            Panel {
                caption: if priced {
                    "(d) Dollars per million trained tokens"
                } else {
                    "(d) Dollars per million trained tokens (no GPU price)"
                },
                legend: Vec::new(),
                y_desc: "$ / M trained tokens",
                top: max(&|r| r.usd_per_million_trained_tokens),
                bars: &|r| vec![(0.0, 0.3, r.usd_per_million_trained_tokens, BAR)],
                whiskers: &|_| None,
                label: &|r| dollars(r.usd_per_million_trained_tokens),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(scenario: &str, pipeline: &str) -> CompareRow {
        let mut v = serde_json::json!({"scenario": scenario, "pipeline": pipeline, "max_staleness": 0, "verdict": ""});
        for k in ["gpus", "steps", "trained_tokens", "paused", "migrated", "switches", "failures"] {
            v[k] = 0.into();
        }
        for k in ["sim_time_s", "mean_step_s", "tokens_per_s", "speedup", "gpu_util", "bubble_fraction"] {
            v[k] = 0.0.into();
        }
        for k in ["mean_staleness", "off_policy_token_fraction", "switch_gpu_s", "lost_gpu_s", "usd_per_step"] {
            v[k] = 0.0.into();
        }
        v["usd_per_million_trained_tokens"] = 0.0.into();
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn labels_name_the_scenario_once() {
        let one = [row("q", "colocated"), row("q", "async"), row("q", "async")];
        assert_eq!(row_labels(&one), ["colocated", "async", "async #2"]);
        let two = [row("a", "async"), row("b", "async")];
        assert_eq!(row_labels(&two), ["a", "b"]);
        let mixed = [row("a", "async"), row("b", "colocated")];
        assert_eq!(row_labels(&mixed), ["a / async", "b / colocated"]);
    }
}
