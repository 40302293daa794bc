//! Property tests on invalid input: the bundled scenarios (`scenarios/**/*.toml`, fidelity and paper ones included)
//! and valid traces, mutated at random — a line deleted, duplicated or swapped, a value replaced by a hostile token
//! (huge, negative, zero, NaN-ish, `inf`, empty, wrong type, unicode), the text truncated at a random byte, random
//! `--set` overrides. Loading must return `Ok`, or an `Err` whose message names the file (and, for a field, the field
//! and its line), within a bounded time — never a panic or a hang. A mutated scenario that loads is also simulated
//! for one or two steps (when it is small) and must not panic or hang either.
//!
//! Fast profile (in `cargo test`): 48 scenario cases and 128 trace cases. Larger run:
//!   RLSIM_INVALID_CASES=2000 cargo test --release -p rlsim-sim --test invalid_inputs
//! (the scenario property runs that many cases, the trace property four times as many).

use proptest::prelude::*;
use rlsim_sim::scenario::{Scenario, ScenarioError, SYNTAX};
use rlsim_sim::simulator::simulate;
use rlsim_sim::trace::{read_csv_trace, read_polytrace, read_search_r1};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::Duration;

/// Cases of the scenario property (the trace property runs four times as many).
fn cases() -> u32 {
    std::env::var("RLSIM_INVALID_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
}

/// How long loading one mutated input may take.
const LOAD_LIMIT: Duration = Duration::from_secs(2);
/// How long simulating one small mutated scenario for one or two steps may take (debug builds are slow).
const SIM_LIMIT: Duration = Duration::from_secs(20);
/// Scenarios bigger than this are loaded but not simulated (to keep each case cheap).
const MAX_SIM_GPUS: u32 = 64;
const MAX_SIM_TRAJECTORIES: u64 = 4096;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every bundled scenario: its path (relative traces resolve against its folder) and text.
fn bundled_scenarios() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![repo().join("scenarios")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p, text));
            }
        }
    }
    out.sort();
    assert!(out.len() >= 10, "expected the bundled scenarios, found {}", out.len());
    out
}

/// Values that break assumptions: extremes, signs, non-numbers, wrong types, unicode.
const TOKENS: &[&str] = &[
    "0",
    "-1",
    "1",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "1e308",
    "1e-308",
    "-1e308",
    "0.0",
    "-0.0",
    "0.5",
    "nan",
    "inf",
    "-inf",
    "\"nan\"",
    "\"inf\"",
    "\"\"",
    "\"x\"",
    "\"é∞😀\"",
    "true",
    "[]",
    "[1, 2]",
    "{}",
    "{ kind = \"constant\", tokens = 0 }",
    "{ kind = \"lognormal\", median = 1e308, sigma = 50 }",
    "1979-05-27T07:32:00Z",
    "",
    "=",
    "[[x]]",
    "\u{0}",
];

/// Keys a random `--set` override may touch.
const KEYS: &[&str] = &[
    "seed",
    "name",
    "model.preset",
    "cluster.gpu",
    "cluster.nodes",
    "cluster.gpus_per_node",
    "workload.steps",
    "workload.prompts_per_step",
    "workload.samples_per_prompt",
    "workload.max_response_tokens",
    "workload.max_prompt_tokens",
    "workload.response_tokens.median",
    "workload.response_tokens.sigma",
    "workload.prompt_tokens.tokens",
    "workload.trace.mode",
    "training.mini_batches",
    "rollout.tp",
    "rollout.max_num_seqs",
    "pipeline.type",
    "pipeline.async.max_staleness",
    "pipeline.partial.over_provision",
    "failures.mtbf_hours",
    "framework.preset",
    "cluster.groups[0].gpus",
    "nope.nope",
    "[0]",
];

#[derive(Clone, Debug)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    /// Replace the value of a `key = value` line (the n-th such line, modulo their count).
    ReplaceValue(usize, &'static str),
    /// Insert a random line.
    InsertLine(usize, String),
    /// Truncate at this fraction of the text (rounded down to a character boundary).
    Truncate(f64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let idx = any::<usize>();
    prop_oneof![
        1 => idx.prop_map(Mutation::DeleteLine),
        1 => idx.prop_map(Mutation::DuplicateLine),
        1 => (idx, idx).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        6 => (idx, proptest::sample::select(TOKENS)).prop_map(|(i, t)| Mutation::ReplaceValue(i, t)),
        2 => (idx, proptest::sample::select(KEYS), proptest::sample::select(TOKENS))
            .prop_map(|(i, k, t)| Mutation::InsertLine(i, format!("{k} = {t}"))),
        1 => (idx, "\\PC{0,24}").prop_map(|(i, s)| Mutation::InsertLine(i, s)),
        1 => (0.0..1.0f64).prop_map(Mutation::Truncate),
    ]
}

fn apply(text: &str, m: &Mutation, value_sep: char) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let n = lines.len();
    match m {
        Mutation::DeleteLine(i) => {
            lines.remove(i % n);
        }
        Mutation::DuplicateLine(i) => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
        }
        Mutation::SwapLines(a, b) => lines.swap(a % n, b % n),
        Mutation::ReplaceValue(i, token) => {
            // A line with a value: `key = value` in TOML, a cell in CSV, a `"key": value` in JSON.
            let with: Vec<usize> = (0..n).filter(|&k| lines[k].contains(value_sep)).collect();
            if let Some(&k) = with.get(i % with.len().max(1)) {
                let line = &lines[k];
                let cuts: Vec<usize> = line.match_indices(value_sep).map(|(p, _)| p).collect();
                let at = cuts[(i / n) % cuts.len()] + 1;
                // The value runs to the next separator (CSV, JSON) or the end of the line (TOML).
                let end = if value_sep == '=' {
                    line.len()
                } else {
                    line[at..].find([',', '}', ']']).map_or(line.len(), |e| at + e)
                };
                lines[k] = format!("{} {token}{}", &line[..at], &line[end..]);
            }
        }
        Mutation::InsertLine(i, s) => lines.insert(i % (n + 1), s.clone()),
        Mutation::Truncate(f) => {
            let joined = lines.join("\n");
            let mut cut = (joined.len() as f64 * f) as usize;
            while !joined.is_char_boundary(cut) {
                cut -= 1;
            }
            return joined[..cut].to_string();
        }
    }
    lines.join("\n") + "\n"
}

/// Where the last panic on each thread happened (a panic hook records it; the payload has no location).
fn panic_locations() -> &'static Mutex<HashMap<std::thread::ThreadId, String>> {
    static LOCATIONS: OnceLock<Mutex<HashMap<std::thread::ThreadId, String>>> = OnceLock::new();
    LOCATIONS.get_or_init(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(l) = info.location() {
                let at = format!("{}:{}:{}", l.file(), l.line(), l.column());
                if let Some(m) = LOCATIONS.get() {
                    m.lock().unwrap_or_else(|e| e.into_inner()).insert(std::thread::current().id(), at);
                }
            }
            default(info);
        }));
        Mutex::new(HashMap::new())
    })
}

/// How a bounded call ended, when not with a value: a panic, a timeout or a badly located error.
enum Failure {
    Bug(String),
}

/// Runs `f` on its own thread and waits at most `limit` for it; a panic or a timeout is a failure naming `what`.
fn bounded<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Failure> {
    let locations = panic_locations();
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(p)) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            let at = locations.lock().unwrap_or_else(|e| e.into_inner()).remove(&handle.thread().id());
            let at = at.unwrap_or_default();
            Err(Failure::Bug(format!("{what} panicked at {at}: {}", msg.unwrap_or_default())))
        }
        Err(_) => Err(Failure::Bug(format!("{what} took more than {limit:?}"))),
    }
}

/// The error names the file; a field error also names its field and (unless no part of its path is in the file)
/// the line; an override error names the `--set` assignment.
fn check_scenario_error(e: &ScenarioError, file: &Path, overrides: &[String]) -> Result<(), Failure> {
    check_scenario_message(e, file, overrides).map_err(Failure::Bug)
}

fn check_scenario_message(e: &ScenarioError, file: &Path, overrides: &[String]) -> Result<(), String> {
    let msg = e.to_string();
    match e {
        ScenarioError::Field { field, location, .. } => {
            if !msg.contains(&file.display().to_string()) {
                return Err(format!("error does not name the file: {msg}"));
            }
            if !msg.contains(&format!("field `{field}`")) && field != SYNTAX {
                return Err(format!("field error without its field: {msg}"));
            }
            // Only a missing field whose every ancestor is missing too has no line to point at.
            if location.is_none() && !msg.contains(": missing") {
                return Err(format!("field error without a line: {msg}"));
            }
        }
        ScenarioError::Override { assignment, .. } => {
            if !overrides.contains(assignment) || !msg.starts_with("--set ") {
                return Err(format!("override error does not name its assignment: {msg}"));
            }
        }
        ScenarioError::Io { .. } => {
            if !msg.contains(&file.display().to_string()) {
                return Err(format!("error does not name the file: {msg}"));
            }
        }
    }
    Ok(())
}

fn check_scenario(file: PathBuf, text: String, overrides: Vec<String>) -> Result<(), Failure> {
    let (f, t, o) = (file.clone(), text.clone(), overrides.clone());
    let loaded = bounded("loading", LOAD_LIMIT, move || Scenario::from_text(&t, &f, &o))?;
    let scenario = match loaded {
        Ok(s) => s,
        Err(e) => return check_scenario_error(&e, &file, &overrides),
    };
    // Loaded: simulate one or two steps when small (the steps override goes last, so it wins).
    let per_step = scenario.workload.prompts_per_step as u64 * scenario.workload.samples_per_prompt as u64;
    if scenario.total_gpus() > MAX_SIM_GPUS || per_step > MAX_SIM_TRAJECTORIES {
        return Ok(());
    }
    let steps = 1 + (text.len() % 2);
    let mut o = overrides;
    o.push(format!("workload.steps={steps}"));
    let f = file.clone();
    let s = bounded("loading with workload.steps", LOAD_LIMIT, move || Scenario::from_text(&text, &f, &o))?;
    let Ok(s) = s else { return Ok(()) };
    bounded("simulating", SIM_LIMIT, move || {
        let _ = simulate(&s);
    })
}

/// A trace mutated at random: which format, its file name and text.
fn check_trace(kind: usize, name: &str, text: Vec<u8>) -> Result<(), Failure> {
    let dir =
        std::env::temp_dir().join(format!("rlsim-invalid-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &text).unwrap();
    let p = path.clone();
    let r = bounded("reading the trace", LOAD_LIMIT, move || match kind {
        0 => read_csv_trace(&p).map(|_| ()),
        1 => read_polytrace(&[p]).map(|_| ()),
        _ => read_search_r1(&[p]).map(|_| ()),
    })?;
    if let Err(e) = r {
        let msg = e.to_string();
        if !msg.contains(&path.display().to_string()) {
            return Err(Failure::Bug(format!("error does not name the file: {msg}")));
        }
    }
    Ok(())
}

/// Valid traces to mutate: (reader, file name, text, value separator).
fn valid_traces() -> Vec<(usize, &'static str, String, char)> {
    let dapo = std::fs::read_to_string(repo().join("traces/dapo-math-qwen2.5-32b.csv")).unwrap();
    let dapo_head: String = dapo.lines().take(40).map(|l| format!("{l}\n")).collect();
    vec![
        (0, "trace.csv", dapo_head, ','),
        (
            0,
            "multi.csv",
            "step,group,prompt_tokens,response_tokens,turns\n0,0,10,9,4/0.5/7;5\n0,0,10,3,\n0,1,317,171,40/0.25/1044;131\n1,0,12,6,1/0/0;2/1.5/30;3\n".into(),
            ',',
        ),
        (
            1,
            "packed_lengths_step_1.jsonl",
            "{\"step\": 1, \"rank\": 0, \"input\": 120, \"output\": [310, 42, 977, 1500], \"n_sampling\": 4}\n{\"step\": 2, \"rank\": 1, \"input\": 95, \"output\": [16000, 12], \"n_sampling\": 2}\n".into(),
            ':',
        ),
        (
            2,
            "multiturn_workload_step_1.jsonl",
            concat!(
                r#"{"step": 1, "prompt_len": 300, "turns": [{"prompt_tokens": 300, "completion_tokens": 45, "total_len_after": 345}, {"prompt_tokens": 1200, "completion_tokens": 120, "total_len_after": 1320}], "tool_calls": [{"turn": 0, "latency_s": 0.21}], "prompt_group_id": 4}"#,
                "\n",
                r#"{"step": 1, "prompt_len": 300, "turns": [{"prompt_tokens": 300, "completion_tokens": 0, "total_len_after": 300}, {"prompt_tokens": 400, "completion_tokens": 33}], "tool_calls": [{"turn": 0, "latency_s": 1.5}], "prompt_group_id": 4}"#,
                "\n"
            )
            .into(),
            ':',
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, max_shrink_time: 60_000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_scenarios_load_or_fail_with_a_located_error(
        pick in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 0..3),
        sets in proptest::collection::vec((proptest::sample::select(KEYS), proptest::sample::select(TOKENS)), 0..3),
    ) {
        let all = bundled_scenarios();
        let (file, text) = &all[pick % all.len()];
        // Comments and blank lines dropped first, so that every mutation hits a table or a value.
        let text: String =
            text.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).map(|l| format!("{l}\n")).collect();
        let text = mutations.iter().fold(text, |t, m| apply(&t, m, '='));
        let overrides: Vec<String> = sets.iter().map(|(k, v)| format!("{k}={v}")).collect();
        match check_scenario(file.clone(), text.clone(), overrides.clone()) {
            Ok(()) => {}
            Err(Failure::Bug(e)) => prop_assert!(false, "{}: {e}\n--set {overrides:?}\n{text}", file.display()),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4 * cases(), failure_persistence: None, max_shrink_time: 60_000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_traces_load_or_fail_with_a_located_error(
        pick in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
        byte_cut in proptest::option::weighted(0.2, any::<usize>()),
    ) {
        let all = valid_traces();
        let (kind, name, text, sep) = &all[pick % all.len()];
        let text = mutations.iter().fold(text.clone(), |t, m| apply(&t, m, *sep));
        // Sometimes also cut at any byte, even inside a character (invalid UTF-8).
        let mut bytes = text.into_bytes();
        if let Some(cut) = byte_cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        if let Err(Failure::Bug(e)) = check_trace(*kind, name, bytes.clone()) {
            prop_assert!(false, "{name}: {e}\n{}", String::from_utf8_lossy(&bytes));
        }
    }
}
