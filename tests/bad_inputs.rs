//! The bad-input catalogue: every file in `tests/bad-inputs/` is one hostile or mistaken input with the exact
//! message rlsim must answer it with. Each case runs the real binary under a memory cap and a timeout, so a hang,
//! an abort or a panic fails the case as surely as a wrong message.
//!
//! A case file starts with `#!` header lines, then its body:
//! - `#! args: check {body}` — the command line (split on spaces); `{body}` is the body's file, `{dir}` the
//!   case's scratch folder, `{repo}` the repository root. Commands run in the repository root.
//! - `#! body: scenario.toml` — the name the body is written to inside `{dir}` (default `body.toml`); a path
//!   with folders is created (`run/steps.csv`).
//! - `#! setup: run scenarios/quickstart.toml --out {dir}/run --no-plots` — a command that must succeed first
//!   (repeatable; the body is written after the setups, so it can replace a file they wrote).
//! - `#! expect: field `workload.steps`` — a substring of stderr (repeatable; all must appear).
//! - `#! exit: 1` — the expected exit code (default 1); `#! stdout-empty` — nothing may be printed on stdout
//!   (the refusal came before any simulation).
//! - `#! why:` — what the case guards, for the reader.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rlsim");
const TIMEOUT: Duration = Duration::from_secs(60);
/// Address-space cap for each command, KiB (4 GiB).
const MEMORY_KIB: u64 = 4 << 20;

struct Case {
    file: PathBuf,
    args: String,
    body_name: String,
    body: String,
    setups: Vec<String>,
    expects: Vec<String>,
    exit: i32,
    stdout_empty: bool,
}

fn parse(file: &Path) -> Case {
    let text = std::fs::read_to_string(file).unwrap();
    let mut case = Case {
        file: file.to_path_buf(),
        args: String::new(),
        body_name: "body.toml".into(),
        body: String::new(),
        setups: Vec::new(),
        expects: Vec::new(),
        exit: 1,
        stdout_empty: false,
    };
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next_if(|l| l.starts_with("#!")) {
        let line = line.trim_start_matches("#!").trim();
        let (key, value) = line.split_once(':').map_or((line, ""), |(k, v)| (k.trim(), v.trim()));
        match key {
            "args" => case.args = value.to_string(),
            "body" => case.body_name = value.to_string(),
            "setup" => case.setups.push(value.to_string()),
            "expect" => case.expects.push(value.to_string()),
            "exit" => case.exit = value.parse().unwrap_or_else(|_| panic!("{}: bad exit {value}", file.display())),
            "stdout-empty" => case.stdout_empty = true,
            "why" => {}
            _ => panic!("{}: unknown header `{key}`", file.display()),
        }
    }
    case.body = lines.collect();
    assert!(!case.args.is_empty(), "{}: no `#! args:` line", file.display());
    assert!(!case.expects.is_empty(), "{}: no `#! expect:` line", file.display());
    case
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    timed_out: bool,
}

/// Runs rlsim with `args` under the memory cap and the timeout.
fn rlsim(args: &str, dir: &Path, body: &Path) -> Outcome {
    let repo = env!("CARGO_MANIFEST_DIR");
    let expanded: Vec<String> = args
        .split(' ')
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.replace("{body}", body.to_str().unwrap()).replace("{dir}", dir.to_str().unwrap()).replace("{repo}", repo)
        })
        .collect();
    let mut child = Command::new("bash")
        .args(["-c", &format!("ulimit -v {MEMORY_KIB}; exec \"$0\" \"$@\""), BIN])
        .args(&expanded)
        .current_dir(repo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).ok();
        s
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            timed_out = true;
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome { code: status.code(), stdout: out_reader.join().unwrap(), stderr: err_reader.join().unwrap(), timed_out }
}

fn run_case(case: &Case, scratch: &Path) -> Result<(), String> {
    let stem = case.file.file_stem().unwrap().to_string_lossy().into_owned();
    let dir = scratch.join(&stem);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let body = dir.join(&case.body_name);
    for setup in &case.setups {
        let o = rlsim(setup, &dir, &body);
        if o.code != Some(0) {
            return Err(format!("setup `{setup}` failed: {}", o.stderr));
        }
    }
    if let Some(parent) = body.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&body, &case.body).unwrap();
    let o = rlsim(&case.args, &dir, &body);
    if o.timed_out {
        return Err(format!("timed out after {TIMEOUT:?}"));
    }
    let mut problems = Vec::new();
    if o.stderr.contains("panicked") || o.code.is_none() {
        problems.push(format!("crashed (exit {:?})", o.code));
    }
    if o.code != Some(case.exit) {
        problems.push(format!("exit {:?}, expected {}", o.code, case.exit));
    }
    for e in &case.expects {
        if !o.stderr.contains(e.as_str()) {
            problems.push(format!("stderr lacks {e:?}"));
        }
    }
    if case.stdout_empty && !o.stdout.is_empty() {
        problems.push("printed on stdout before refusing".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n    stderr: {}", problems.join("; "), o.stderr.trim()))
    }
}

#[test]
fn every_bad_input_gets_its_catalogued_message() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-inputs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .collect();
    files.sort();
    assert!(files.len() >= 60, "the catalogue holds {} cases; the issue asks for at least 60", files.len());
    let scratch = std::env::temp_dir().join(format!("rlsim-bad-inputs-{}", std::process::id()));
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let case = parse(f);
            run_case(&case, &scratch).err().map(|e| format!("{}: {e}", f.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), files.len(), failures.join("\n"));
}
