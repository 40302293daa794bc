//! The fidelity plot of `rlsim fidelity`: simulated against published seconds on log axes, with y = x and the
//! ±15 % band.

use super::{
    legend_column, render, style_mesh, titled, txt, Area, Figure, Key, PlotError, PlotOptions, TickAxis, Ticks,
};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// One point of the fidelity plot: a published figure and the simulator's, whether it is a speed-up (not drawn:
/// the axes are seconds), and whether it is within ±15 %.
pub struct FidelityPoint {
    pub published: f64,
    pub simulated: f64,
    pub speedup: bool,
    pub within: bool,
}

/// Draws `fidelity.png/.svg`: simulated against published seconds on log axes, with y = x and the ±15 % band.
pub fn plot_fidelity(dir: &Path, points: &[FidelityPoint], o: &PlotOptions) -> Result<Vec<PathBuf>, PlotError> {
    render(dir, "fidelity", (820, 780), o, &Scatter { points, o: *o })
}

struct Scatter<'a> {
    points: &'a [FidelityPoint],
    o: PlotOptions,
}

const WITHIN: RGBColor = RGBColor(31, 119, 180);
const OUTSIDE: RGBColor = RGBColor(214, 39, 40);
const DIAGONAL: RGBColor = RGBColor(90, 90, 90);
const BAND: RGBColor = RGBColor(228, 234, 242);

impl Figure for Scatter<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> Result<(), String> {
        let o = &self.o;
        let secs: Vec<&FidelityPoint> =
            self.points.iter().filter(|p| !p.speedup && p.published > 0.0 && p.simulated > 0.0).collect();
        let area = titled(root, "Simulated against published seconds (one point per step or phase)", o)?;
        let lo = secs.iter().map(|p| p.published.min(p.simulated)).fold(f64::INFINITY, f64::min);
        let hi = secs.iter().map(|p| p.published.max(p.simulated)).fold(0.0, f64::max);
        let (lo, hi) = if secs.is_empty() { (1.0, 10.0) } else { (lo / 1.3, hi * 1.3) };
        let ticks = Ticks::log(lo, hi);
        let mut chart = ChartBuilder::on(&area)
            .margin(o.px(14.0))
            .margin_right(o.px(24.0))
            .x_label_area_size(o.px(44.0))
            .y_label_area_size(o.px(60.0))
            .build_cartesian_2d(TickAxis::log(lo..hi, &ticks), TickAxis::log(lo..hi, &ticks))
            .map_err(txt)?;
        style_mesh(&mut chart.configure_mesh(), o)
            .x_desc("published (s)")
            .y_desc("rlsim (s)")
            .x_label_formatter(&ticks.format())
            .y_label_formatter(&ticks.format())
            .draw()
            .map_err(txt)?;
        let band = 1.15;
        chart
            .draw_series(std::iter::once(Polygon::new(
                vec![(lo, lo * band), (hi / band, hi), (hi, hi), (hi, hi / band), (lo * band, lo), (lo, lo)],
                BAND.filled(),
            )))
            .map_err(txt)?;
        chart.draw_series(LineSeries::new([(lo, lo), (hi, hi)], DIAGONAL.stroke_width(o.stroke(1.5)))).map_err(txt)?;
        for (within, color) in [(true, WITHIN), (false, OUTSIDE)] {
            chart
                .draw_series(
                    secs.iter()
                        .filter(|p| p.within == within)
                        .map(|p| Circle::new((p.published, p.simulated), o.px(5.0) as u32, color.filled())),
                )
                .map_err(txt)?;
        }
        let count = |w: bool| secs.iter().filter(|p| p.within == w).count();
        let mut items = vec![
            ("y = x".to_string(), Key::Line(DIAGONAL)),
            ("±15 %".to_string(), Key::Box(BAND)),
            (format!("within ±15 % ({})", count(true)), Key::Dot(WITHIN)),
            (format!("outside ±15 % ({})", count(false)), Key::Dot(OUTSIDE)),
        ];
        let speedups = self.points.iter().filter(|p| p.speedup).count();
        if speedups > 0 {
            let s = if speedups == 1 { "" } else { "s" };
            items.push((format!("{speedups} speed-up ratio{s}: in the table only"), Key::Box(WHITE)));
        }
        let (px, py) = chart.plotting_area().get_base_pixel();
        let (ax, ay) = area.get_base_pixel();
        let inner = area.margin(py - ay + o.px(10.0), 0, px - ax + o.px(10.0), 0);
        legend_column(&inner, None, &items, 0, o)
    }
}
