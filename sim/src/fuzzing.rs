//! Bodies of the fuzz targets (`fuzz/fuzz_targets/*.rs`, cargo-fuzz) for the scenario parser and the trace readers,
//! shared with the stable replay test (`sim/tests/fuzz_corpus.rs`) that runs every file of `fuzz/corpus/<target>/`
//! through the same body — so the corpus guards against regressions without a nightly toolchain.
//!
//! Each body takes arbitrary bytes and may return any `Err`: bad input must give an error, never a panic, an abort,
//! a hang or an unbounded allocation. See docs/reliability.md.

use crate::scenario::Scenario;
use crate::trace::{read_csv_trace, read_polytrace, read_search_r1};
use std::path::{Path, PathBuf};

/// The line that separates a scenario's TOML text from its `--set` override lines in a `scenario` fuzz input.
pub const OVERRIDES_SEPARATOR: &str = "\n%%\n";

/// At most this many override lines are read from a `scenario` input.
pub const MAX_OVERRIDES: usize = 8;

/// The folder where fuzzed scenarios pretend to live: the repository's `scenarios/`, so the bundled scenarios'
/// relative trace and profile paths (`../traces/…`) resolve as they do for real.
pub fn scenario_anchor() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/fuzz.toml")
}

/// Splits a `scenario` input into its TOML text and its override lines (`KEY=VALUE`, one a line, empty lines
/// skipped, at most [`MAX_OVERRIDES`]).
pub fn split_scenario_input(data: &[u8]) -> (String, Vec<String>) {
    let text = String::from_utf8_lossy(data);
    match text.split_once(OVERRIDES_SEPARATOR) {
        Some((toml, sets)) => (
            toml.to_string(),
            sets.lines().filter(|l| !l.trim().is_empty()).take(MAX_OVERRIDES).map(String::from).collect(),
        ),
        None => (text.into_owned(), Vec::new()),
    }
}

/// Target `scenario`: the scenario parser and validator with `--set` overrides. A scenario that loads must load
/// again from its `scenario.resolved.toml` (every default filled in), as `rlsim run` promises.
pub fn scenario(data: &[u8]) {
    let (text, overrides) = split_scenario_input(data);
    let anchor = scenario_anchor();
    if let Ok(s) = Scenario::from_text(&text, &anchor, &overrides) {
        let resolved = s.resolved_toml();
        if let Err(e) = Scenario::from_text(&resolved, &anchor, &[]) {
            panic!("a loaded scenario's resolved copy does not load: {e}\n{resolved}");
        }
    }
}

/// A scratch folder for this thread (the replay test runs targets on several threads at once).
pub fn scratch_dir() -> PathBuf {
    thread_local! {
        static DIR: PathBuf = {
            let d = std::env::temp_dir()
                .join(format!("rlsim-fuzz-{}-{:?}", std::process::id(), std::thread::current().id()))
                .to_string_lossy()
                .replace(['(', ')'], "");
            std::fs::create_dir_all(&d).expect("cannot create the fuzz scratch folder");
            PathBuf::from(d)
        };
    }
    DIR.with(|d| d.clone())
}

/// Writes `data` to `name` in this thread's scratch folder.
pub fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    let p = scratch_dir().join(name);
    std::fs::write(&p, data).expect("cannot write a fuzz input file");
    p
}

/// Target `trace_csv`: rlsim's CSV trace reader.
pub fn trace_csv(data: &[u8]) {
    let _ = read_csv_trace(&scratch_file("trace.csv", data));
}

/// Target `polytrace`: the PolyTrace `packed_lengths_step_N.jsonl` importer.
pub fn polytrace(data: &[u8]) {
    let _ = read_polytrace(&[scratch_file("packed_lengths_step_1.jsonl", data)]);
}

/// Target `search_r1`: the Search-R1 `multiturn_workload_step_N.jsonl` importer.
pub fn search_r1(data: &[u8]) {
    let _ = read_search_r1(&[scratch_file("multiturn_workload_step_1.jsonl", data)]);
}

/// A target's name and body, for the replay test.
pub type Target = (&'static str, fn(&[u8]));

/// The targets this crate defines (the plot readers' target lives in rlsim-reports).
pub const TARGETS: [Target; 4] =
    [("scenario", scenario), ("trace_csv", trace_csv), ("polytrace", polytrace), ("search_r1", search_r1)];
