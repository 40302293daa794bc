//! Output folders are never half-written: a `run` killed (SIGKILL or SIGINT) at any moment leaves its `--out`
//! holding either the complete earlier set of files or the complete new one, and bad `--out` values are refused
//! before anything is simulated.

mod scratch;
use scratch::{scratch, Scratch};

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rlsim");
const SCENARIO: &str = "scenarios/quickstart.toml";

fn tmp(name: &str) -> Scratch {
    scratch("rel", name, true)
}

fn run(out: &Path, seed: u64, plots: bool) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.args(["run", SCENARIO, "--seed", &seed.to_string(), "--out", out.to_str().unwrap()]);
    if !plots {
        c.arg("--no-plots");
    }
    c.output().unwrap()
}

/// A folder's files and contents; `summary.json` without its `wall_s` (the one field that differs between runs).
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let mut bytes = std::fs::read(e.path()).unwrap();
        if name == "summary.json" {
            let mut v: serde_json::Value = serde_json::from_slice(&bytes).expect("summary.json is whole JSON");
            v.as_object_mut().unwrap().remove("wall_s");
            bytes = v.to_string().into_bytes();
        }
        files.insert(name, bytes);
    }
    files
}

/// Which complete set `dir` holds, if any.
fn which(dir: &Path, sets: &[(&str, &BTreeMap<String, Vec<u8>>)]) -> Option<String> {
    let now = contents(dir);
    sets.iter().find(|(_, s)| **s == now).map(|(n, _)| n.to_string())
}

fn kill_test(plots: bool, rounds: u64, window_ms: u64, signal: i32) {
    let root = tmp(&format!("kill-{plots}-{signal}"));
    let (ref_old, ref_new) = (root.join("ref-old"), root.join("ref-new"));
    assert!(run(&ref_old, 1, plots).status.success());
    assert!(run(&ref_new, 2, plots).status.success());
    let (old, new) = (contents(&ref_old), contents(&ref_new));
    assert_ne!(old, new, "the two seeds must give different files");
    let out = root.join("out");
    let mut outcomes = BTreeMap::new();
    for i in 0..rounds {
        // Start from the complete old set.
        let _ = std::fs::remove_dir_all(&out);
        assert!(run(&out, 1, plots).status.success());
        let mut child = Command::new(BIN)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["run", SCENARIO, "--seed", "2", "--out", out.to_str().unwrap()])
            .args(if plots { vec![] } else { vec!["--no-plots"] })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill times spread over the run's whole length, including its writing.
        std::thread::sleep(Duration::from_millis(i * window_ms / rounds));
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, signal) };
        let _ = child.wait();
        let got = which(&out, &[("old", &old), ("new", &new)]).unwrap_or_else(|| {
            panic!(
                "killed after {} ms: {} holds neither complete set: {:?}",
                i * window_ms / rounds,
                out.display(),
                contents(&out).keys().collect::<Vec<_>>()
            )
        });
        *outcomes.entry(got).or_insert(0) += 1;
        // Only the folder itself and the references are left beside it: a killed writer's staging folder is
        // removed by the next writer (checked below), never mistaken for output.
    }
    assert!(run(&out, 2, plots).status.success());
    let left: Vec<String> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(left.len(), 3, "stale staging folders left behind: {left:?}");
    assert!(outcomes.contains_key("old"), "no kill landed before the swap: {outcomes:?}");
}

#[test]
fn a_run_killed_at_any_moment_leaves_the_old_or_the_new_set_never_a_mix() {
    kill_test(false, 10, 200, libc::SIGKILL);
    kill_test(true, 8, 2400, libc::SIGKILL);
    kill_test(false, 6, 200, libc::SIGINT);
}

#[test]
fn a_rerun_without_plots_leaves_no_stale_plots() {
    let root = tmp("noplots");
    let out = root.join("run");
    assert!(run(&out, 1, true).status.success());
    assert!(out.join("steps.png").exists());
    assert!(run(&out, 1, false).status.success());
    assert!(!out.join("steps.png").exists() && !out.join("timeline.svg").exists());
}

fn fails_before_simulating(out: &Path, needle: &str) {
    let o = run(out, 1, false);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    // The summary is printed after the simulation; an empty stdout proves the check came first.
    assert!(o.stdout.is_empty(), "simulated before refusing --out: {}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn bad_out_folders_are_refused_before_simulating() {
    let root = tmp("badout");
    let file = root.join("a-file");
    std::fs::write(&file, "x").unwrap();
    fails_before_simulating(&file, "exists and is not a folder");
    let foreign = root.join("home");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "precious").unwrap();
    fails_before_simulating(&foreign, "not an rlsim output folder");
    assert_eq!(std::fs::read_to_string(foreign.join("notes.txt")).unwrap(), "precious");
    let link = root.join("link");
    std::os::unix::fs::symlink(&foreign, &link).unwrap();
    fails_before_simulating(&link, "symbolic link");
    fails_before_simulating(&file.join("below"), "Not a directory");
}
