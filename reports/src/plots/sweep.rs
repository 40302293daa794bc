//! Sweep plots: throughput against each varied key, on a numeric axis (lines) when every value is a number, else
//! as grouped bars per value; one series per combination of the other keys, each in its own colour.

use super::{
    err, finite, legend_column, legend_column_width, places, render, style_mesh, titled, txt, unit_of, Area, Figure,
    Key, PlotError, PlotOptions, TickAxis, Ticks, PALETTE,
};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One sweep point for plotting: its values of the varied keys and its throughput.
pub struct SweepPoint {
    pub values: Vec<String>,
    pub tokens_per_s: f64,
}

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

/// Draws `sweep-<key>.png/.svg` for each varied key: throughput against that key's values, one series per
/// combination of the other keys (at most [`PALETTE`]'s length; the title says how many more there were).
pub fn plot_sweep(
    dir: &Path,
    keys: &[String],
    values: &[Vec<String>],
    points: &[SweepPoint],
    o: &PlotOptions,
) -> Result<Vec<PathBuf>, PlotError> {
    let mut out = Vec::new();
    for (axis, key) in keys.iter().enumerate() {
        let stem = format!("sweep-{}", key.replace(['.', '[', ']', '/'], "_"));
        let fig = Curve::new(keys, axis, &values[axis], points, *o);
        let legend_w =
            if fig.series.len() > 1 { legend_column_width(&fig.legend(), &PlotOptions::default()) } else { 0 };
        out.extend(render(dir, &stem, (1100 + legend_w as u32, 560), o, &fig)?);
    }
    Ok(out)
}

/// One series: its label (the other keys' values) and its points as (index of the axis value, tokens/s).
type Series = (String, Vec<(usize, f64)>);

struct Curve<'a> {
    key: &'a str,
    values: &'a [String],
    /// The values as numbers, when every one is.
    numbers: Option<Vec<f64>>,
    series: Vec<Series>,
    /// Series left out for want of distinct colours.
    hidden: usize,
    top: f64,
    o: PlotOptions,
}

impl<'a> Curve<'a> {
    fn new(keys: &'a [String], axis: usize, values: &'a [String], points: &[SweepPoint], o: PlotOptions) -> Self {
        // One series per combination of the other keys' values, in the order the sweep first reached it.
        let mut series: Vec<Series> = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        for p in points {
            let x = values.iter().position(|v| *v == p.values[axis]).unwrap_or(0);
            let others: Vec<String> = p
                .values
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != axis)
                .map(|(i, v)| format!("{}={v}", keys[i]))
                .collect();
            let label = if others.is_empty() { "all".to_string() } else { others.join(", ") };
            let i = *index.entry(label.clone()).or_insert_with(|| {
                series.push((label, Vec::new()));
                series.len() - 1
            });
            series[i].1.push((x, p.tokens_per_s));
        }
        let hidden = series.len().saturating_sub(PALETTE.len());
        series.truncate(PALETTE.len());
        let numbers: Option<Vec<f64>> =
            values.iter().map(|v| v.trim().parse::<f64>().ok().filter(|x| x.is_finite())).collect();
        let top = points.iter().map(|p| p.tokens_per_s).fold(0.0, f64::max).max(1e-9);
        Curve { key: &keys[axis], values, numbers, series, hidden, top, o }
    }

    fn legend(&self) -> Vec<(String, Key)> {
        let numeric = self.numbers.is_some();
        self.series
            .iter()
            .enumerate()
            .map(|(i, s)| (s.0.clone(), if numeric { Key::Line(PALETTE[i]) } else { Key::Box(PALETTE[i]) }))
            .collect()
    }
}

impl Figure for Curve<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> Result<(), String> {
        let o = &self.o;
        let mut title = format!("Trained tokens/s against {}", self.key);
        if self.hidden > 0 {
            title += &format!(" (first {} series of {})", self.series.len(), self.series.len() + self.hidden);
        }
        let area = titled(root, &title, o)?;
        let items = self.legend();
        let (w, _) = area.dim_in_pixel();
        let legend_w = if items.len() > 1 { legend_column_width(&items, o) } else { 0 };
        let (main, legend) = area.split_horizontally(w as i32 - legend_w);
        let top = self.top * 1.12;
        let y = Ticks::linear(0.0, top, 6);
        let builder = |x_axis: TickAxis| {
            ChartBuilder::on(&main)
                .margin(o.px(12.0))
                .margin_right(o.px(24.0))
                .x_label_area_size(o.px(44.0))
                .y_label_area_size(o.px(70.0))
                .build_cartesian_2d(x_axis, TickAxis::linear(0.0..top, &y))
                .map_err(txt)
        };
        if let Some(nums) = &self.numbers {
            let (lo, hi) = nums.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            let pad = if hi > lo { (hi - lo) * 0.06 } else { lo.abs().max(1.0) * 0.5 };
            let (x0, x1) = (lo - pad, hi + pad);
            // Ticks at the swept values when they are few and far enough apart to label, else round ones.
            let mut sorted = nums.clone();
            sorted.sort_by(f64::total_cmp);
            let min_gap = sorted.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, f64::min);
            let x = if nums.len() <= 12 && (nums.len() == 1 || min_gap >= 0.07 * (x1 - x0)) {
                let unit = unit_of(hi.abs().max(lo.abs()), 1e4);
                let decimals = nums.iter().map(|v| places(v / unit)).max().unwrap_or(0);
                Ticks { values: sorted, unit: Some(unit), decimals }
            } else {
                Ticks::linear(x0, x1, 8)
            };
            let mut chart = builder(TickAxis::linear(x0..x1, &x))?;
            style_mesh(&mut chart.configure_mesh(), o)
                .x_desc(self.key)
                .y_desc("trained tokens/s")
                .x_label_formatter(&x.format())
                .y_label_formatter(&y.format())
                .draw()
                .map_err(txt)?;
            for (i, (_, pts)) in self.series.iter().enumerate() {
                let color = PALETTE[i];
                let mut xy: Vec<(f64, f64)> = pts.iter().map(|&(k, t)| (nums[k], t)).collect();
                xy.sort_by(|a, b| a.0.total_cmp(&b.0));
                chart.draw_series(LineSeries::new(xy.clone(), color.stroke_width(o.stroke(2.0)))).map_err(txt)?;
                chart.draw_series(xy.iter().map(|&p| Circle::new(p, o.px(4.0) as u32, color.filled()))).map_err(txt)?;
            }
        } else {
            // Categories: a group of bars per value, one bar per series.
            let n = self.values.len().max(1);
            let mut chart = builder(TickAxis::categories(n))?;
            let names = self.values;
            style_mesh(&mut chart.configure_mesh(), o)
                .disable_x_mesh()
                .x_desc(self.key)
                .y_desc("trained tokens/s")
                .x_label_formatter(&|v| names.get(v.round() as usize).cloned().unwrap_or_default())
                .y_label_formatter(&y.format())
                .draw()
                .map_err(txt)?;
            let s = self.series.len().max(1) as f64;
            let bar = 0.8 / s;
            for (i, (_, pts)) in self.series.iter().enumerate() {
                let color = PALETTE[i];
                let dx = -0.4 + bar * i as f64;
                chart
                    .draw_series(pts.iter().map(|&(k, t)| {
                        let c = k as f64 + dx;
                        Rectangle::new([(c + bar * 0.08, 0.0), (c + bar * 0.92, t)], color.filled())
                    }))
                    .map_err(txt)?;
            }
        }
        if items.len() > 1 {
            legend_column(&legend, None, &items, o.px(30.0), o)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_keep_the_sweeps_order_and_numbers_are_detected() {
        let keys = vec!["a".to_string(), "b".to_string()];
        let points: Vec<SweepPoint> = [("16", "x"), ("16", "y"), ("128", "x"), ("128", "y")]
            .iter()
            .map(|(a, b)| SweepPoint { values: vec![a.to_string(), b.to_string()], tokens_per_s: 1.0 })
            .collect();
        let a_values = vec!["16".to_string(), "128".to_string()];
        let c = Curve::new(&keys, 0, &a_values, &points, PlotOptions::default());
        assert_eq!(c.numbers, Some(vec![16.0, 128.0]));
        assert_eq!(c.series.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), ["b=x", "b=y"]);
        let b_values = vec!["x".to_string(), "y".to_string()];
        let c = Curve::new(&keys, 1, &b_values, &points, PlotOptions::default());
        assert_eq!(c.numbers, None);
        assert_eq!(c.series.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), ["a=16", "a=128"]);
    }
}
