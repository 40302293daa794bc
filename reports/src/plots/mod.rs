//! Plots of runs, comparisons, sweeps and the fidelity suite (PNG and SVG, plotters with a bundled font so no
//! system fonts are needed), drawn from the files a command wrote so `rlsim plot DIR` re-renders exactly what it
//! drew. What each plot shows: `docs/plots.md`.

mod compare;
mod fidelity;
mod run;
mod sweep;
mod text;

pub use compare::{plot_compare, read_compare_csv};
pub use fidelity::{plot_fidelity, FidelityPoint};
pub use run::{critical_path, plot_run, read_run, CriticalPath, RunData};
pub use sweep::{plot_sweep, read_sweep_csv, SweepPoint, SweepTable};

use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;
use text::GlyphBackend;

/// A plot that could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct PlotError {
    pub path: PathBuf,
    pub message: String,
}

/// How plots are drawn: `scale` multiplies every pixel size (the image, fonts, lines, margins), so a plot at 2 is
/// the same figure at twice the resolution (for slides and print), and 1 is the screen default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlotOptions {
    pub scale: f64,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions { scale: 1.0 }
    }
}

impl PlotOptions {
    /// Smallest and largest scale: below 0.5 the labels are unreadable, above 4 a timeline is tens of megapixels.
    pub const MIN_SCALE: f64 = 0.5;
    pub const MAX_SCALE: f64 = 4.0;

    /// Options at `scale`, refused outside [`Self::MIN_SCALE`, `Self::MAX_SCALE`].
    pub fn with_scale(scale: f64) -> Result<Self, String> {
        if (Self::MIN_SCALE..=Self::MAX_SCALE).contains(&scale) {
            Ok(PlotOptions { scale })
        } else {
            Err(format!("expected a plot scale from {} to {}, got {scale}", Self::MIN_SCALE, Self::MAX_SCALE))
        }
    }

    /// A length of `v` pixels at scale 1, at this scale.
    fn px(&self, v: f64) -> i32 {
        (v * self.scale).round() as i32
    }

    /// An image or area size of `v` pixels at scale 1, at this scale.
    fn size(&self, v: u32) -> u32 {
        (f64::from(v) * self.scale).round() as u32
    }

    /// A line width of `w` pixels at scale 1, at this scale (at least one pixel).
    fn stroke(&self, w: f64) -> u32 {
        ((w * self.scale).round() as u32).max(1)
    }

    /// The width of gridlines and axes: one pixel until the scale doubles it (a 1.5-pixel line would round to 2
    /// and read as heavy).
    fn hairline(&self) -> u32 {
        (self.scale.floor() as u32).max(1)
    }

    /// The plots' font at `size` pixels (scale 1).
    fn font(&self, size: f64) -> TextStyle<'static> {
        ("sans-serif", size * self.scale).into_font().color(&INK)
    }

    /// Width of `text` drawn with [`Self::font`]`(size)`, in pixels at this scale.
    fn text_width(&self, text: &str, size: f64) -> i32 {
        text::text_size(text, size * self.scale).0 as i32
    }
}

static FONT: Once = Once::new();

/// Registers the bundled DejaVu Sans as "sans-serif" (plotters finds no font otherwise on a bare machine).
fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

/// Text and axes.
const INK: RGBColor = RGBColor(40, 40, 40);
/// Gridlines: one light line per labelled tick, nothing in between.
pub const GRID: RGBColor = RGBColor(225, 225, 225);
/// A worker's idle time in the timeline (rows are this colour where nothing runs).
pub const IDLE: RGBColor = RGBColor(240, 240, 240);

/// Colours of the worker activities, shared by every plot.
pub fn activity_color(kind: &str) -> RGBColor {
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

/// Activities in the order they are drawn and listed.
const ACTIVITIES: [&str; 7] = ["rollout", "logprob", "train", "sync", "switch", "reward", "down"];

/// Series colours, all distinct: Tableau's ten, then six more far from them. A figure never draws more series than
/// this (it says how many it left out), so no two series share a colour.
pub const PALETTE: [RGBColor; 16] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(0, 0, 128),
    RGBColor(128, 0, 0),
    RGBColor(0, 128, 128),
    RGBColor(255, 215, 0),
    RGBColor(0, 255, 127),
];

type Area<DB> = DrawingArea<DB, Shift>;

/// `Display` errors as text (plotters' errors are generic over the backend).
fn txt(e: impl std::fmt::Display) -> String {
    e.to_string()
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

/// Tick positions of an axis and how to write them: values are divided by `unit` (1, 1,000 or 1,000,000, written
/// as no suffix, "k" or "M") and written with at most `decimals` places, so "45000" reads "45k" and "100.0" reads
/// "100". A log axis picks the unit of each tick on its own (100, 1k, 10k).
#[derive(Clone, Debug)]
struct Ticks {
    values: Vec<f64>,
    /// `None`: each tick's own unit (log axes).
    unit: Option<f64>,
    decimals: usize,
}

/// The unit a number of this size is written in: k from `k_from` on, M from a million.
fn unit_of(v: f64, k_from: f64) -> f64 {
    match v.abs() {
        a if a >= 1e6 => 1e6,
        a if a >= k_from => 1e3,
        _ => 1.0,
    }
}

/// Places needed to write `v` exactly (up to 6).
fn places(v: f64) -> usize {
    (0..=6)
        .find(|d| {
            let x = v.abs() * 10f64.powi(*d as i32);
            (x - x.round()).abs() < 1e-6 * x.max(1.0)
        })
        .unwrap_or(6)
}

impl Ticks {
    /// About `target` ticks at 1, 2, 2.5 or 5 × 10^k covering `lo..=hi`.
    fn linear(lo: f64, hi: f64, target: usize) -> Ticks {
        let span = (hi - lo).abs().max(1e-12);
        let raw = span / target.max(1) as f64;
        let mag = 10f64.powf(raw.log10().floor());
        // The round step whose tick count comes closest to `target` + 1 (the larger step on a tie).
        let count = |step: f64| ((hi / step + 1e-9).floor() - (lo / step - 1e-9).ceil() + 1.0).max(0.0);
        let step = [10.0, 5.0, 2.5, 2.0, 1.0, 0.5]
            .iter()
            .map(|m| m * mag)
            .min_by(|a, b| {
                let d = |s: f64| (count(s) - (target + 1) as f64).abs();
                d(*a).total_cmp(&d(*b))
            })
            .unwrap_or(mag);
        let first = (lo / step - 1e-9).ceil() as i64;
        let last = (hi / step + 1e-9).floor() as i64;
        let values: Vec<f64> =
            (first..=last).map(|k| k as f64 * step).map(|v| if v == 0.0 { 0.0 } else { v }).collect();
        let top = values.iter().fold(0f64, |m, v| m.max(v.abs()));
        let unit = unit_of(top, 1e4);
        Ticks { values, unit: Some(unit), decimals: places(step / unit) }
    }

    /// Integer ticks (steps, policy versions): as [`Self::linear`] but never closer than 1.
    fn integers(lo: f64, hi: f64, target: usize) -> Ticks {
        let t = Self::linear(lo, hi, target);
        if t.values.len() >= 2 && t.values[1] - t.values[0] < 1.0 {
            let values = ((lo.ceil() as i64)..=(hi.floor() as i64)).map(|v| v as f64).collect();
            return Ticks { values, unit: Some(1.0), decimals: 0 };
        }
        t
    }

    /// Ticks of a log axis over `lo..=hi` (positive): 1, 2 and 5 per decade when it spans at most two decades, else
    /// decades.
    fn log(lo: f64, hi: f64) -> Ticks {
        let (d0, d1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        let mantissas: &[f64] = if (hi / lo).log10() <= 2.0 { &[1.0, 2.0, 5.0] } else { &[1.0] };
        let mut values = Vec::new();
        for d in d0..=d1 {
            for m in mantissas {
                let v = m * 10f64.powi(d);
                if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                    values.push(v);
                }
            }
        }
        Ticks { values, unit: None, decimals: 6 }
    }

    /// One tick's label.
    fn label(&self, v: f64) -> String {
        if v == 0.0 {
            return "0".into();
        }
        let unit = self.unit.unwrap_or_else(|| unit_of(v, 1e3));
        let suffix = match unit {
            u if u >= 1e6 => "M",
            u if u >= 1e3 => "k",
            _ => "",
        };
        format!("{}{suffix}", number(v / unit, self.decimals))
    }

    fn format(&self) -> impl Fn(&f64) -> String + '_ {
        move |v| self.label(*v)
    }
}

/// A float axis, linear or log, whose ticks (and gridlines) are exactly the given ones: no minor ticks.
#[derive(Clone)]
struct TickAxis {
    lo: f64,
    hi: f64,
    log: bool,
    ticks: Vec<f64>,
}

impl TickAxis {
    fn linear(range: std::ops::Range<f64>, ticks: &Ticks) -> Self {
        TickAxis { lo: range.start, hi: range.end, log: false, ticks: ticks.values.clone() }
    }

    fn log(range: std::ops::Range<f64>, ticks: &Ticks) -> Self {
        TickAxis { lo: range.start, hi: range.end, log: true, ticks: ticks.values.clone() }
    }

    fn categories(n: usize) -> Self {
        TickAxis { lo: -0.5, hi: n as f64 - 0.5, log: false, ticks: (0..n).map(|i| i as f64).collect() }
    }
}

impl plotters::coord::ranged1d::Ranged for TickAxis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = |x: f64| if self.log { x.max(f64::MIN_POSITIVE).ln() } else { x };
        let (a, b) = (t(self.lo), t(self.hi));
        if b == a {
            return (limit.0 + limit.1) / 2;
        }
        let f = (t(*v) - a) / (b - a);
        limit.0 + (f * f64::from(limit.1 - limit.0) + 1e-3).floor() as i32
    }

    fn key_points<H: plotters::coord::ranged1d::KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// `v` with `decimals` places (fewer when they are trailing zeros of a log tick), thousands separated by commas,
/// never "-0".
fn number(v: f64, decimals: usize) -> String {
    let mut s = format!("{:.*}", decimals, v.abs());
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if let Some(f) = frac {
        grouped.push('.');
        grouped.push_str(f);
    }
    let zero = grouped.chars().all(|c| c == '0' || c == '.' || c == ',');
    if v < 0.0 && !zero {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// A quantity for a label: three significant figures, "k"/"M" from 10,000 on (16,519 → "16.5k").
fn short(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let decimals = match x.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        _ => 2,
    };
    format!("{}{suffix}", number(x, decimals))
}

/// A label to compose with `EmptyElement::at(point)`: centred above the point, a few pixels clear of it (a bar's
/// top, a whisker's cap).
fn label_above(text: String, o: &PlotOptions) -> Text<'static, (i32, i32), String> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    Text::new(text, (0, -o.px(3.0)), o.font(13.0).pos(Pos::new(HPos::Center, VPos::Bottom)))
}

/// Dollars: cents below $100, whole dollars above.
fn dollars(v: f64) -> String {
    if v.abs() < 100.0 {
        format!("${v:.2}")
    } else {
        format!("${}", short(v))
    }
}

/// The mesh every chart uses: one light gridline per labelled tick (no minor lines), dark axes, the plots' fonts.
fn style_mesh<'a, 'b, X, Y, DB>(
    m: &'b mut plotters::chart::MeshStyle<'a, 'b, X, Y, DB>,
    o: &PlotOptions,
) -> &'b mut plotters::chart::MeshStyle<'a, 'b, X, Y, DB>
where
    X: plotters::coord::ranged1d::Ranged,
    Y: plotters::coord::ranged1d::Ranged,
    DB: DrawingBackend,
{
    m.bold_line_style(GRID.stroke_width(o.hairline()))
        .light_line_style(TRANSPARENT)
        .axis_style(INK.stroke_width(o.hairline()))
        .label_style(o.font(13.0))
        .axis_desc_style(o.font(14.0))
        .set_all_tick_mark_size(o.px(4.0))
}

/// One entry of a legend: a label and how its key is drawn.
#[derive(Clone)]
enum Key {
    /// A filled box (bars, spans).
    Box(RGBColor),
    /// A line (curves, markers).
    Line(RGBColor),
    /// A dot (scatter points).
    Dot(RGBColor),
}

fn draw_key<DB: DrawingBackend>(area: &Area<DB>, key: &Key, x: i32, y: i32, o: &PlotOptions) -> Result<(), String> {
    let (w, h) = (o.px(16.0), o.px(12.0));
    match key {
        Key::Box(c) => area.draw(&Rectangle::new([(x, y - h / 2), (x + w, y + h / 2)], c.filled())).map_err(txt),
        Key::Line(c) => {
            area.draw(&PathElement::new(vec![(x, y), (x + w, y)], c.stroke_width(o.stroke(2.5)))).map_err(txt)
        }
        Key::Dot(c) => area.draw(&Circle::new((x + w / 2, y), o.px(5.0) as u32, c.filled())).map_err(txt),
    }
}

/// A legend in one row, left to right from `x`, centred on `y`, each label measured (never overlapping).
fn legend_row<DB: DrawingBackend>(
    area: &Area<DB>,
    items: &[(String, Key)],
    x: i32,
    y: i32,
    o: &PlotOptions,
) -> Result<(), String> {
    let mut x = x;
    for (name, key) in items {
        draw_key(area, key, x, y, o)?;
        let style = o.font(13.0).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Left,
            plotters::style::text_anchor::VPos::Center,
        ));
        area.draw(&Text::new(name.clone(), (x + o.px(22.0), y), style)).map_err(txt)?;
        x += o.px(22.0) + o.text_width(name, 13.0) + o.px(18.0);
    }
    Ok(())
}

/// Width a [`legend_column`] of these labels needs.
fn legend_column_width(items: &[(String, Key)], o: &PlotOptions) -> i32 {
    items.iter().map(|(n, _)| o.text_width(n, 13.0)).max().unwrap_or(0) + o.px(22.0 + 20.0)
}

/// A legend as a column of entries from the top of `area` (a strip beside a chart, so it never hides data).
fn legend_column<DB: DrawingBackend>(
    area: &Area<DB>,
    title: Option<&str>,
    items: &[(String, Key)],
    top: i32,
    o: &PlotOptions,
) -> Result<(), String> {
    let mut y = top;
    if let Some(t) = title {
        area.draw(&Text::new(t.to_string(), (o.px(4.0), y), o.font(13.0))).map_err(txt)?;
        y += o.px(24.0);
    }
    for (name, key) in items {
        draw_key(area, key, o.px(4.0), y + o.px(7.0), o)?;
        area.draw(&Text::new(name.clone(), (o.px(26.0), y), o.font(13.0))).map_err(txt)?;
        y += o.px(21.0);
    }
    Ok(())
}

/// Something drawn onto a drawing area of any backend (so the same code makes the PNG and the SVG).
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> Result<(), String>;
}

/// Draws one plot as `<stem>.png` and `<stem>.svg` in `dir`, `size` pixels at scale 1.
fn render(
    dir: &Path,
    stem: &str,
    size: (u32, u32),
    o: &PlotOptions,
    fig: &impl Figure,
) -> Result<Vec<PathBuf>, PlotError> {
    register_font();
    let size = (o.size(size.0).max(1), o.size(size.1).max(1));
    // Drawn to a temporary file (with the real extension: plotters picks the format from it), then renamed into
    // place, so a redraw never leaves half an image and never writes through a link.
    let pid = std::process::id();
    let png = dir.join(format!("{stem}.png"));
    let png_tmp = dir.join(format!(".{stem}.rlsim-tmp-{pid}.png"));
    let drawn = (|| {
        let root = GlyphBackend { inner: BitMapBackend::new(&png_tmp, size) }.into_drawing_area();
        fig.draw(&root).map_err(|e| err(&png, e))?;
        root.present().map_err(|e| err(&png, e))
    })();
    finish(drawn, &png_tmp, &png)?;
    let svg = dir.join(format!("{stem}.svg"));
    let svg_tmp = dir.join(format!(".{stem}.rlsim-tmp-{pid}.svg"));
    let drawn = (|| {
        let root = SVGBackend::new(&svg_tmp, size).into_drawing_area();
        fig.draw(&root).map_err(|e| err(&svg, e))?;
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

/// A figure's title across the top of `root`; returns the area below it.
fn titled<DB: DrawingBackend>(root: &Area<DB>, title: &str, o: &PlotOptions) -> Result<Area<DB>, String> {
    root.fill(&WHITE).map_err(txt)?;
    let w = root.dim_in_pixel().0 as i32;
    let style = o.font(20.0).pos(plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Top,
    ));
    root.draw(&Text::new(title.to_string(), (w / 2, o.px(10.0)), style)).map_err(txt)?;
    Ok(root.split_vertically(o.px(40.0)).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(t: &Ticks) -> Vec<String> {
        t.values.iter().map(|v| t.label(*v)).collect()
    }

    #[test]
    fn ticks_are_round_and_written_without_noise() {
        assert_eq!(labels(&Ticks::linear(0.0, 100.0, 5)), ["0", "20", "40", "60", "80", "100"]);
        assert_eq!(labels(&Ticks::linear(0.0, 27.8, 5)), ["0", "5", "10", "15", "20", "25"]);
        assert_eq!(labels(&Ticks::linear(0.0, 19_800.0, 4)), ["0", "5k", "10k", "15k"]);
        assert_eq!(labels(&Ticks::linear(0.0, 45_000.0, 4)), ["0", "10k", "20k", "30k", "40k"]);
        assert_eq!(labels(&Ticks::linear(0.0, 9_000.0, 4)), ["0", "2,000", "4,000", "6,000", "8,000"]);
        assert_eq!(labels(&Ticks::linear(0.0, 1.0, 4)), ["0", "0.25", "0.5", "0.75", "1"]);
        assert_eq!(labels(&Ticks::linear(0.0, 3.2e6, 4)), ["0", "1M", "2M", "3M"]);
        assert_eq!(
            labels(&Ticks::linear(0.0, 208.0, 10)),
            ["0", "20", "40", "60", "80", "100", "120", "140", "160", "180", "200"]
        );
        assert_eq!(labels(&Ticks::integers(-0.5, 3.5, 8)), ["0", "1", "2", "3"]);
        assert_eq!(labels(&Ticks::log(30.0, 1200.0)), ["50", "100", "200", "500", "1k"]);
        assert_eq!(labels(&Ticks::log(20.0, 40_000.0)), ["100", "1k", "10k"]);
    }

    #[test]
    fn numbers_group_thousands_and_never_read_minus_zero() {
        assert_eq!(number(1234567.0, 0), "1,234,567");
        assert_eq!(number(-0.0001, 2), "0");
        assert_eq!(number(-12.5, 1), "-12.5");
        assert_eq!(short(16519.0), "16.5k");
        assert_eq!(short(5636.0), "5,636");
        assert_eq!(short(0.4), "0.4");
    }

    #[test]
    fn the_scale_is_bounded() {
        assert!(PlotOptions::with_scale(2.0).is_ok());
        assert!(PlotOptions::with_scale(0.1).unwrap_err().contains("from 0.5 to 4"));
        assert!(PlotOptions::with_scale(f64::NAN).is_err());
    }
}
