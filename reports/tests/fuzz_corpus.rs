//! Replays every file of `fuzz/corpus/plot_readers/` (the minimised cargo-fuzz corpus) through the body of the
//! `plot_readers` fuzz target, on stable: no input may panic.

use std::path::{Path, PathBuf};

#[test]
fn plot_readers_corpus_never_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/plot_readers");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    for file in files {
        let data = std::fs::read(&file).unwrap();
        if std::panic::catch_unwind(|| rlsim_reports::fuzzing::plot_readers(&data)).is_err() {
            panic!("fuzz target `plot_readers` panics on {}", file.display());
        }
    }
}
