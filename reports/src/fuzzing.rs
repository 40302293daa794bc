//! Body of the `plot_readers` fuzz target (`fuzz/fuzz_targets/plot_readers.rs`), shared with the stable replay test
//! (`reports/tests/fuzz_corpus.rs`). An input is up to five files separated by `\n%%\n` lines: a run folder's
//! `summary.json`, `timeline.csv` and `steps.csv` (read by [`read_run`]), then a `sweep.csv` ([`read_sweep_csv`]) and a
//! `compare.csv` ([`read_compare_csv`]); a missing part is a missing file. Any `Err` is a correct answer; a panic, a
//! hang or an unbounded allocation is a bug. See docs/reliability.md.

use crate::plots::{read_compare_csv, read_run, read_sweep_csv};
use rlsim_sim::fuzzing::scratch_dir;

/// The separator line between the files of a `plot_readers` input.
pub const SEPARATOR: &str = "\n%%\n";

/// The files of a `plot_readers` input, in order.
pub const FILES: [&str; 5] = ["summary.json", "timeline.csv", "steps.csv", "sweep.csv", "compare.csv"];

/// Target `plot_readers`: `read_run`, `read_sweep_csv` and `read_compare_csv` on fuzzed files.
pub fn plot_readers(data: &[u8]) {
    let dir = scratch_dir().join("run");
    std::fs::create_dir_all(&dir).expect("cannot create the fuzz run folder");
    let mut parts = split(data).into_iter();
    for name in FILES {
        let path = dir.join(name);
        match parts.next() {
            Some(bytes) => std::fs::write(&path, bytes).expect("cannot write a fuzz input file"),
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let _ = read_run(&dir);
    let _ = read_sweep_csv(&dir.join("sweep.csv"));
    let _ = read_compare_csv(&dir.join("compare.csv"));
}

/// Splits an input at its separator lines.
fn split(data: &[u8]) -> Vec<&[u8]> {
    let sep = SEPARATOR.as_bytes();
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
        out.push(&rest[..i]);
        rest = &rest[i + sep.len()..];
    }
    out.push(rest);
    out
}
