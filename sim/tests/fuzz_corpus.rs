//! Replays every file of `fuzz/corpus/<target>/` (the minimised cargo-fuzz corpora) through the same bodies the fuzz
//! targets run (rlsim_sim::fuzzing), on stable: no input may panic. The plot readers' corpus is replayed by
//! reports/tests/fuzz_corpus.rs.

use rlsim_sim::fuzzing;
use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    files
}

fn replay(target: &str, body: fn(&[u8])) {
    for file in corpus(target) {
        let data = std::fs::read(&file).unwrap();
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            panic!("fuzz target `{target}` panics on {}", file.display());
        }
    }
}

#[test]
fn scenario_corpus_never_panics() {
    replay("scenario", fuzzing::scenario);
}

#[test]
fn trace_csv_corpus_never_panics() {
    replay("trace_csv", fuzzing::trace_csv);
}

#[test]
fn polytrace_corpus_never_panics() {
    replay("polytrace", fuzzing::polytrace);
}

#[test]
fn search_r1_corpus_never_panics() {
    replay("search_r1", fuzzing::search_r1);
}
