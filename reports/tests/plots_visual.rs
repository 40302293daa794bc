//! Visual regression tests of the plots: every kind is drawn from small real runs (or fixture tables) and the
//! images are checked for the defects they once had — an empty top row and touching rows in the timeline, legend
//! entries for kinds that never occur, gridlines dense enough to read as hatching, "100.0" and "45000" ticks,
//! stacked phases taller than their step, sweep values spaced as categories, reused series colours, a size that
//! ignores the scale option — and for being byte-identical when drawn twice.

use rlsim_reports::plots::{
    activity_color, critical_path, plot_compare, plot_fidelity, plot_run, plot_sweep, read_run, FidelityPoint,
    PlotOptions, SweepPoint, GRID, IDLE, PALETTE,
};
use rlsim_sim::scenario::Scenario;
use rlsim_sim::simulator::simulate;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A fresh folder for one test, under the target folder (so reruns replace it rather than pile up).
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plots-visual").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small quickstart run (4 steps of 16 prompts) under `pipeline`, seed `seed`.
fn simulated(pipeline: &str, seed: u64) -> rlsim_sim::simulator::SimRun {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/quickstart.toml");
    let sets = [
        format!("pipeline.type={pipeline}"),
        "workload.steps=4".to_string(),
        "workload.prompts_per_step=16".to_string(),
        format!("seed={seed}"),
    ];
    simulate(&Scenario::load(&path, &sets).unwrap()).unwrap()
}

/// Run folders of the small async (overlapping) and colocated runs, written once and shared by the tests.
fn run_dir(pipeline: &str) -> PathBuf {
    static DIRS: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    DIRS.get_or_init(|| {
        let mut m = BTreeMap::new();
        for p in ["async", "colocated"] {
            let dir = scratch(&format!("run-{p}"));
            let run = simulated(p, 1);
            // Every detail, so that every run plot (the lengths plot reads per-trajectory rows) is drawn.
            let all = rlsim_reports::TimelineDetail::Trajectories;
            rlsim_reports::write_run_detail(&dir, &run.report, &run.timeline, None, all).unwrap();
            m.insert(p.to_string(), dir);
        }
        m
    })[pipeline]
        .clone()
}

/// The async run's plots at scale 1, drawn once.
fn async_plots() -> &'static PathBuf {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = run_dir("async");
        plot_run(&dir, &PlotOptions::default()).unwrap();
        dir
    })
}

/// A decoded PNG: width, height and RGB pixels.
struct Image {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

impl Image {
    fn read(path: &Path) -> Image {
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
        buf.truncate(info.buffer_size());
        Image { w: info.width as usize, h: info.height as usize, rgb: buf }
    }

    fn at(&self, x: usize, y: usize) -> (u8, u8, u8) {
        let i = (y * self.w + x) * 3;
        (self.rgb[i], self.rgb[i + 1], self.rgb[i + 2])
    }

    /// Pixels of exactly this colour in rows `y0..y1`.
    fn count(&self, c: (u8, u8, u8), y0: usize, y1: usize) -> usize {
        (y0..y1).flat_map(|y| (0..self.w).map(move |x| (x, y))).filter(|&(x, y)| self.at(x, y) == c).count()
    }

    /// Rows of `y0..y1` holding at least `len` pixels of exactly this colour side by side: a filled swatch or bar
    /// (anti-aliased text hits a grey exactly now and then, never ten times in a row).
    fn swatch_rows(&self, c: (u8, u8, u8), len: usize, y0: usize, y1: usize) -> usize {
        (y0..y1)
            .filter(|&y| {
                let mut run = 0;
                (0..self.w).any(|x| {
                    run = if self.at(x, y) == c { run + 1 } else { 0 };
                    run >= len
                })
            })
            .count()
    }
}

fn rgb(c: plotters::style::RGBColor) -> (u8, u8, u8) {
    (c.0, c.1, c.2)
}

/// Share of the image in light-grey gridline tones (not white, not the idle grey, not saturated): hatching of
/// minor gridlines every few pixels covers 10 % and more of a chart; one line per tick stays far below.
fn grid_share(img: &Image) -> f64 {
    let idle = rgb(IDLE);
    let n = (0..img.h)
        .flat_map(|y| (0..img.w).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let (r, g, b) = img.at(x, y);
            r == g && g == b && (200..=236).contains(&r) && (r, g, b) != idle
        })
        .count();
    n as f64 / (img.w * img.h) as f64
}

/// An SVG element's attributes, by name.
type Element = BTreeMap<String, String>;

/// Every `<tag …/>` or `<tag …>` element of an SVG file, with its attributes (and its text, under "#text").
fn elements(svg: &str, tag: &str) -> Vec<Element> {
    let open = format!("<{tag} ");
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let end = rest.find('>').unwrap();
        let attrs = &rest[..end];
        let mut e = Element::new();
        let mut a = attrs;
        while let Some(eq) = a.find("=\"") {
            let name = a[..eq].trim().to_string();
            let v = &a[eq + 2..];
            let close = v.find('"').unwrap();
            e.insert(name, v[..close].to_string());
            a = &v[close + 1..];
        }
        if !attrs.ends_with('/') {
            let body = &rest[end + 1..];
            let stop = body.find(&format!("</{tag}>")).unwrap();
            e.insert("#text".into(), body[..stop].trim().to_string());
        }
        out.push(e);
    }
    out
}

fn num(e: &Element, k: &str) -> f64 {
    e[k].parse().unwrap()
}

fn hex(c: plotters::style::RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// The texts of an SVG that look wrong as numbers: a float with a useless ".0" ("100.0"), or a whole number of five
/// digits or more without a separator or unit ("45000").
fn noisy_numbers(svg: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for t in elements(svg, "text") {
        let text = &t["#text"];
        // Percentages over bars keep one decimal on purpose ("13.7 %", "24.0 %"), so they line up.
        if text.ends_with(" %") {
            continue;
        }
        for token in text.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ',')) {
            let token = token.trim_matches(|c| c == '.' || c == ',');
            if token.is_empty() {
                continue;
            }
            let long_integer = token.len() >= 5 && token.chars().all(|c| c.is_ascii_digit());
            if token.ends_with(".0") || long_integer {
                bad.push(text.clone());
            }
        }
    }
    bad
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_timeline_has_no_empty_row_a_gap_between_rows_and_a_legend_of_present_kinds() {
    let dir = async_plots();
    let svg = read(dir.join("timeline.svg"));
    let timeline = read(dir.join("timeline.csv"));
    let mut names: BTreeSet<&str> = BTreeSet::new();
    let mut kinds: BTreeSet<&str> = BTreeSet::new();
    for line in timeline.lines().skip(1) {
        let mut f = line.split(',');
        names.insert(f.next().unwrap());
        kinds.insert(f.next().unwrap());
    }
    // One idle band per worker, top down, none empty above the first, a white gap between neighbours.
    let mut bands: Vec<(f64, f64)> = elements(&svg, "rect")
        .iter()
        .filter(|r| r["fill"] == hex(IDLE) && num(r, "width") > 100.0)
        .map(|r| (num(r, "y"), num(r, "y") + num(r, "height")))
        .collect();
    bands.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(bands.len(), names.len(), "one row band per worker");
    // The y axis runs from the plot's top to its bottom; the first band starts within its gap of the top.
    let axis = elements(&svg, "polyline")
        .into_iter()
        .map(|p| p["points"].clone())
        .find_map(|pts| {
            let v: Vec<(f64, f64)> = pts
                .split_whitespace()
                .map(|p| p.split_once(',').unwrap())
                .map(|(x, y)| (x.parse().unwrap(), y.parse().unwrap()))
                .collect();
            (v.len() == 2 && v[0].0 == v[1].0 && (v[1].1 - v[0].1) > 50.0).then_some(v[0].1)
        })
        .expect("a vertical y axis");
    let pitch = bands[1].0 - bands[0].0;
    assert!(bands[0].0 - axis < pitch / 2.0, "empty space above the first row: axis top {axis}, first row {bands:?}");
    for w in bands.windows(2) {
        assert!(w[1].0 - w[0].1 >= 2.0, "rows touch: {w:?}");
    }
    // The legend strip (the bottom 40 pixels) shows the present kinds' colours and none of the absent ones.
    let png = Image::read(&dir.join("timeline.png"));
    let legend = png.h - 40;
    for kind in ["rollout", "logprob", "train", "sync", "switch", "reward", "down"] {
        let n = png.swatch_rows(rgb(activity_color(kind)), 10, legend, png.h);
        if kinds.contains(kind) {
            assert!(n >= 8, "{kind} occurs but has no legend entry");
        } else {
            assert_eq!(n, 0, "{kind} never occurs but is in the legend");
        }
    }
    assert!(!kinds.contains("switch") && kinds.contains("sync"), "the async run should have sync and no switch");
}

#[test]
fn the_critical_path_adds_up_to_each_step_and_agrees_with_the_simulator() {
    for pipeline in ["async", "colocated"] {
        let dir = run_dir(pipeline);
        let d = read_run(&dir).unwrap();
        let path = critical_path(&d);
        let steps = read(dir.join("steps.csv"));
        let mut rows = steps.lines();
        let header: Vec<&str> = rows.next().unwrap().split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let mut overlapped = false;
        for (c, line) in path.iter().zip(rows) {
            let f: Vec<f64> = line.split(',').map(|x| x.parse().unwrap_or(f64::NAN)).collect();
            let parts = c.train_s + c.logprob_s + c.reward_s + c.sync_s + c.switch_s + c.rollout_wait_s;
            assert!((parts - f[col("duration_s")]).abs() < 1e-6, "{pipeline} step {}: {parts} ≠ the step", c.step);
            assert!(
                (c.rollout_wait_s - f[col("rollout_wait_s")]).abs() < 1e-6,
                "{pipeline} step {}: wait {} against the simulator's {}",
                c.step,
                c.rollout_wait_s,
                f[col("rollout_wait_s")]
            );
            let phases: f64 =
                ["rollout_s", "logprob_s", "train_s", "sync_s", "switch_s", "reward_s"].iter().map(|k| f[col(k)]).sum();
            overlapped |= phases > 1.2 * f[col("duration_s")];
        }
        // Stacking per-phase durations is what made async steps look twice as long as they were.
        assert_eq!(overlapped, pipeline == "async", "{pipeline}: per-phase durations overlap only when async");
    }
}

#[test]
fn gridlines_are_sparse_and_ticks_are_clean_in_every_run_plot() {
    let dir = async_plots();
    // Measured when these tests were written: the old plots 2.0 % (timeline) and 5.9–16 % (charts), now 0.3 % and
    // 0.9–1.5 %.
    for (stem, bound) in [("timeline", 0.01), ("steps", 0.02), ("staleness", 0.02), ("lengths", 0.02)] {
        let share = grid_share(&Image::read(&dir.join(format!("{stem}.png"))));
        assert!(share < bound, "{stem}: {:.1} % of the image is gridline grey", 100.0 * share);
        let bad = noisy_numbers(&read(dir.join(format!("{stem}.svg"))));
        assert!(bad.is_empty(), "{stem}: {bad:?}");
    }
}

#[test]
fn the_scale_option_scales_every_image_and_drawing_is_deterministic() {
    let src = run_dir("colocated");
    let (one, two) = (scratch("scale-1"), scratch("scale-2"));
    for (dir, scale) in [(&one, 1.0), (&two, 2.0)] {
        for f in ["summary.json", "timeline.csv", "steps.csv"] {
            std::fs::copy(src.join(f), dir.join(f)).unwrap();
        }
        plot_run(dir, &PlotOptions::with_scale(scale).unwrap()).unwrap();
    }
    for stem in ["timeline", "steps", "staleness", "lengths"] {
        let (a, b) = (Image::read(&one.join(format!("{stem}.png"))), Image::read(&two.join(format!("{stem}.png"))));
        assert_eq!((b.w, b.h), (2 * a.w, 2 * a.h), "{stem}");
        let svg = read(two.join(format!("{stem}.svg")));
        assert!(svg.starts_with(&format!("<svg width=\"{}\" height=\"{}\"", b.w, b.h)), "{stem}");
    }
    // Same files in, same bytes out.
    let before: Vec<Vec<u8>> =
        ["timeline.png", "steps.png", "steps.svg"].iter().map(|f| std::fs::read(one.join(f)).unwrap()).collect();
    plot_run(&one, &PlotOptions::default()).unwrap();
    for (f, b) in ["timeline.png", "steps.png", "steps.svg"].iter().zip(before) {
        assert!(std::fs::read(one.join(f)).unwrap() == b, "{f} differs when drawn again");
    }
}

/// A sweep of a numeric key (16, 32, 128) against a categorical one, with made-up throughputs.
fn sweep_fixture() -> (Vec<String>, Vec<Vec<String>>, Vec<SweepPoint>) {
    let keys = vec!["workload.prompts_per_step".to_string(), "pipeline.type".to_string()];
    let sizes = ["16", "32", "128"];
    let kinds = ["colocated", "async", "partial", "seamless"];
    let values = vec![
        sizes.iter().map(|s| s.to_string()).collect(),
        kinds.iter().map(|s| s.to_string()).collect::<Vec<String>>(),
    ];
    let mut points = Vec::new();
    for (i, s) in sizes.iter().enumerate() {
        for (k, kind) in kinds.iter().enumerate() {
            // Up to about 50,000 tokens/s: ticks in thousands.
            let tokens_per_s = 2000.0 * (1 + i) as f64 + 4500.0 * k as f64 + 15_000.0 * i as f64;
            points.push(SweepPoint { values: vec![s.to_string(), kind.to_string()], tokens_per_s });
        }
    }
    (keys, values, points)
}

#[test]
fn a_numeric_sweep_axis_is_spaced_by_value_and_categories_are_bars_in_distinct_colours() {
    let dir = scratch("sweep");
    let (keys, values, points) = sweep_fixture();
    plot_sweep(&dir, &keys, &values, &points, &PlotOptions::default()).unwrap();
    // Numeric: each series' points sit at x positions proportional to 16, 32, 128; each series its own colour.
    let svg = read(dir.join("sweep-workload_prompts_per_step.svg"));
    let mut by_colour: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for c in elements(&svg, "circle") {
        by_colour.entry(c["fill"].clone()).or_default().push(num(&c, "cx"));
    }
    assert_eq!(by_colour.len(), 4, "four series, four colours: {by_colour:?}");
    for xs in by_colour.values() {
        let mut xs = xs.clone();
        xs.sort_by(f64::total_cmp);
        let ratio = (xs[1] - xs[0]) / (xs[2] - xs[0]);
        assert!((ratio - 16.0 / 112.0).abs() < 0.01, "x positions {xs:?} are not proportional to 16, 32, 128");
    }
    assert!(noisy_numbers(&svg).is_empty(), "{:?}", noisy_numbers(&svg));
    // Categorical: bars grouped per value, no lines, one distinct colour per series.
    let svg = read(dir.join("sweep-pipeline_type.svg"));
    let palette: BTreeSet<String> = PALETTE.iter().map(|c| hex(*c)).collect();
    let lines = elements(&svg, "polyline").iter().filter(|p| palette.contains(&p["stroke"])).count();
    assert_eq!(lines, 0, "a categorical axis drawn as lines");
    let mut bars: BTreeMap<String, usize> = BTreeMap::new();
    for r in elements(&svg, "rect").iter().filter(|r| palette.contains(&r["fill"])) {
        *bars.entry(r["fill"].clone()).or_default() += 1;
    }
    // Three series of four bars, plus each series' legend key.
    assert_eq!(bars.values().copied().collect::<Vec<_>>(), [5, 5, 5], "{bars:?}");
    let png = Image::read(&dir.join("sweep-pipeline_type.png"));
    assert!(grid_share(&png) < 0.02);
    let distinct: BTreeSet<String> = PALETTE.iter().map(|c| hex(*c)).collect();
    assert_eq!(distinct.len(), PALETTE.len(), "the palette repeats a colour");
}

#[test]
fn compare_is_four_panels_named_by_pipeline_with_the_seed_range() {
    let runs: Vec<Vec<rlsim_sim::report::Summary>> = ["colocated", "async"]
        .iter()
        .map(|p| (1..=2).map(|seed| simulated(p, seed).report.summary).collect())
        .collect();
    let rows = rlsim_reports::compare_rows_seeded(&runs);
    let dir = scratch("compare");
    plot_compare(&dir, &rows, &PlotOptions::default()).unwrap();
    let svg = read(dir.join("compare.svg"));
    let texts: Vec<String> = elements(&svg, "text").into_iter().map(|t| t["#text"].clone()).collect();
    for panel in ["(a)", "(b)", "(c)", "(d)"] {
        assert_eq!(texts.iter().filter(|t| t.starts_with(panel)).count(), 1, "panel {panel}: {texts:?}");
    }
    // The scenario once (in the title), the pipelines as labels under each of the four panels.
    assert_eq!(texts.iter().filter(|t| t.contains("quickstart")).count(), 1, "{texts:?}");
    assert_eq!(texts.iter().filter(|t| *t == "async").count(), 4, "{texts:?}");
    assert!(noisy_numbers(&svg).is_empty(), "{:?}", noisy_numbers(&svg));
    // Two seeds: each throughput bar has a whisker (a line and two caps).
    let ink =
        elements(&svg, "polyline").iter().filter(|p| p["stroke"] == "#282828" && p["stroke-width"] != "1").count();
    assert_eq!(ink, 3 * rows.len(), "seed-range whiskers");
    let png = Image::read(&dir.join("compare.png"));
    assert!(grid_share(&png) < 0.02);
}

#[test]
fn the_fidelity_scatter_has_log_ticks_without_noise() {
    let dir = scratch("fidelity");
    let points: Vec<FidelityPoint> = [(40.0, 44.0, true), (120.0, 90.0, false), (800.0, 760.0, true), (2.0, 2.1, true)]
        .iter()
        .map(|&(published, simulated, within)| FidelityPoint {
            published,
            simulated,
            speedup: published < 10.0,
            within,
        })
        .collect();
    plot_fidelity(&dir, &points, &PlotOptions::with_scale(1.5).unwrap()).unwrap();
    let svg = read(dir.join("fidelity.svg"));
    assert!(noisy_numbers(&svg).is_empty(), "{:?}", noisy_numbers(&svg));
    // Seconds only: the speed-up is left out, the three others drawn.
    assert_eq!(elements(&svg, "circle").len(), 3 + 2, "three points and two legend dots");
    let texts: Vec<String> = elements(&svg, "text").into_iter().map(|t| t["#text"].clone()).collect();
    assert!(texts.iter().any(|t| t == "1k") && texts.iter().any(|t| t == "100"), "{texts:?}");
    let png = Image::read(&dir.join("fidelity.png"));
    assert_eq!((png.w, png.h), (1230, 1170));
    let share = grid_share(&png);
    assert!(share < 0.02, "{:.2} %", 100.0 * share);
    assert!(png.count(rgb(GRID), 0, png.h) > 0, "gridlines at the ticks");
}
