//! One test per crash found while fuzzing (docs/reliability.md, "Fuzzing"): the exact input, fed to the same
//! function, must give a located `Err` (or, where the input is valid, an `Ok`) instead of a panic.

use rlsim_sim::scenario::Scenario;
use rlsim_sim::trace::read_search_r1;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn scratch(name: &str, text: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rlsim-fuzz-regress-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn search_r1_err(name: &str, line: &str) -> String {
    let p = scratch(name, line);
    match std::panic::catch_unwind(|| read_search_r1(&[p])) {
        Ok(r) => r.expect_err("must be rejected").to_string(),
        Err(_) => panic!("read_search_r1 panics on {line}"),
    }
}

/// Two turns of u32::MAX tokens each: their sum overflowed a u32 (panic "attempt to add with overflow" in
/// read_search_r1).
#[test]
fn search_r1_turns_adding_past_u32_are_an_error() {
    let line = r#"{"step":0,"prompt_len":1,"prompt_group_id":0,"turns":[{"prompt_tokens":1,"completion_tokens":4294967295,"total_len_after":1},{"prompt_tokens":1,"completion_tokens":4294967295}]}"#;
    let e = search_r1_err("multiturn_workload_step_1.jsonl", line);
    assert!(
        e.contains("multiturn_workload_step_1.jsonl:1: field `turns`: the turns generate 8589934590 tokens"),
        "{e}"
    );
}

/// Counts above u32 were cast with `as u32` (a silent wrap); now an error naming the field.
#[test]
fn search_r1_counts_above_u32_are_an_error() {
    let line =
        r#"{"step":0,"prompt_len":1,"prompt_group_id":0,"turns":[{"prompt_tokens":1,"completion_tokens":4294967296}]}"#;
    let e = search_r1_err("multiturn_workload_step_2.jsonl", line);
    assert!(
        e.contains("multiturn_workload_step_2.jsonl:1: field `turns[0].completion_tokens`: 4294967296 is too large"),
        "{e}"
    );
    let line = r#"{"step":0,"prompt_len":1,"prompt_group_id":0,"turns":[{"prompt_tokens":1,"completion_tokens":1,"total_len_after":0},{"prompt_tokens":4294967296,"completion_tokens":1}]}"#;
    let e = search_r1_err("multiturn_workload_step_3.jsonl", line);
    assert!(
        e.contains("multiturn_workload_step_3.jsonl:1: field `turns[1].prompt_tokens`: the tool adds 4294967296"),
        "{e}"
    );
}

/// Turns that generate nothing fold their tool calls into the previous turn's: two huge latencies (or tool outputs)
/// overflowed the sum (panic in workload::fit_turns). The trace is valid; the fold saturates.
#[test]
fn search_r1_folded_tool_calls_saturate() {
    let line = r#"{"step":0,"prompt_len":1,"prompt_group_id":0,"turns":[{"prompt_tokens":1,"completion_tokens":1,"total_len_after":0},{"prompt_tokens":4294967295,"completion_tokens":0,"total_len_after":0},{"prompt_tokens":4294967295,"completion_tokens":0,"total_len_after":0},{"prompt_tokens":1,"completion_tokens":1}],"tool_calls":[{"turn":0,"latency_s":1e300},{"turn":1,"latency_s":1e300}]}"#;
    let p = scratch("multiturn_workload_step_4.jsonl", line);
    let t = std::panic::catch_unwind(|| read_search_r1(&[p])).expect("no panic").expect("a valid trace");
    let turns = &t.steps[0][0].turns[0];
    assert_eq!(turns.len(), 2);
    assert_eq!((turns[0].tool_ns, turns[0].tool_tokens), (u64::MAX, u32::MAX));
}

fn quickstart() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/quickstart.toml")).unwrap()
}

/// `--set` keys made only of brackets (`[]`, `[`, `[x]`) split into no path segment: `set_in` indexed `segs[0]`
/// (panic "index out of bounds" at sim/src/scenario.rs `set_in`).
#[test]
fn override_key_without_a_name_is_an_error() {
    for key in ["[]=1", "[=1", "[x]=2"] {
        let text = quickstart();
        let r = std::panic::catch_unwind(|| {
            Scenario::from_text(&text, Path::new("fuzz.toml"), &[key.to_string()]).map(|_| ())
        });
        let e = r.unwrap_or_else(|_| panic!("--set {key} panics")).expect_err("must be rejected").to_string();
        assert!(e.contains(&format!("--set {key}")), "{e}");
    }
}

/// The exact input the `scenario` fuzz target crashed on (with its dictionary, 156,038 runs): an override line
/// whose key, a space then `[` and binary bytes, splits into no path segment (the same `set_in` panic as above).
#[test]
fn fuzz_crash_override_key_without_a_name() {
    let data = include_bytes!("fuzz_inputs/scenario-override-key-without-a-name.bin");
    let (text, overrides) = rlsim_sim::fuzzing::split_scenario_input(data);
    let r = std::panic::catch_unwind(|| Scenario::from_text(&text, Path::new("fuzz.toml"), &overrides).map(|_| ()));
    let e = r.expect("no panic").expect_err("must be rejected").to_string();
    assert!(e.starts_with("--set "), "{e}");
}

/// Runs `body` in a child process of this test binary with a 2 GB address-space limit, so a read that never ends
/// fails there instead of exhausting the machine; the child must succeed.
fn in_bounded_child(test: &str, body: impl FnOnce()) {
    if std::env::var_os("RLSIM_BOUNDED_CHILD").is_some() {
        body();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2000000; exec \"$0\" --exact \"$1\" --include-ignored --nocapture")
        .arg(exe)
        .arg(test)
        .env("RLSIM_BOUNDED_CHILD", "1")
        .status()
        .unwrap();
    assert!(status.success(), "{test} failed in its bounded child process");
}

/// A scenario whose trace (or hardware profile) is `/dev/zero` read it until memory ran out (an `out of memory`
/// error only under a memory limit; without one the machine's memory is exhausted first). A size guard must refuse
/// it quickly — and `/dev/zero` has length 0 in its metadata, so the guard must bound the read itself.
#[test]
fn unbounded_trace_or_profile_files_are_refused_quickly() {
    in_bounded_child("unbounded_trace_or_profile_files_are_refused_quickly", || {
        let text = quickstart()
            .lines()
            .filter(|l| !l.starts_with("response_tokens") && !l.starts_with("prompt_tokens"))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n[workload.trace]\npath = \"/dev/zero\"\n";
        for (text, overrides, field) in [
            (text, vec![], "workload.trace.path"),
            (quickstart(), vec!["hardware.profile=/dev/zero".to_string()], "hardware.profile"),
        ] {
            let start = Instant::now();
            let e = Scenario::from_text(&text, Path::new("fuzz.toml"), &overrides).unwrap_err().to_string();
            assert!(e.contains(field) && !e.contains("out of memory"), "{e}");
            assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
        }
    });
}

/// Loads quickstart with overrides in a bounded child process; the error must name `field` and come quickly.
fn refused_quickly(test: &str, overrides: &[&str], field: &str) {
    let (overrides, field) = (overrides.iter().map(|s| s.to_string()).collect::<Vec<_>>(), field.to_string());
    in_bounded_child(test, move || {
        let start = Instant::now();
        let r = std::panic::catch_unwind(|| {
            Scenario::from_text(&quickstart(), Path::new("fuzz.toml"), &overrides).map(|_| ())
        });
        let e = r.unwrap_or_else(|_| panic!("{overrides:?} panics")).expect_err("must be rejected").to_string();
        assert!(e.contains("fuzz.toml") && e.contains(&format!("field `{field}`")), "{e}");
        assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    });
}

/// `nodes * gpus_per_node` overflowed u32 (panic "attempt to multiply with overflow" in scenario.rs `validate`).
/// Found by tests/invalid_inputs.rs.
#[test]
fn cluster_size_overflowing_u32_is_an_error() {
    refused_quickly("cluster_size_overflowing_u32_is_an_error", &["cluster.nodes=4294967295"], "cluster.nodes");
}

/// A cluster of 10⁸ GPUs: Cluster::build allocated a worker per GPU (gigabytes, then the memory limit) before any
/// bound applied. Found by tests/invalid_inputs.rs.
#[test]
fn a_cluster_of_millions_of_gpus_is_refused_before_it_is_built() {
    refused_quickly(
        "a_cluster_of_millions_of_gpus_is_refused_before_it_is_built",
        &["cluster.gpus_per_node=100000000"],
        "cluster.gpus_per_node",
    );
}

/// `max_prompt_tokens + max_response_tokens` overflowed u32 (panic "attempt to add with overflow" in scenario.rs
/// `validate_workload`). Found by tests/invalid_inputs.rs.
#[test]
fn context_length_overflowing_u32_is_an_error() {
    refused_quickly(
        "context_length_overflowing_u32_is_an_error",
        &["workload.max_response_tokens=4294967295"],
        "workload.max_response_tokens",
    );
}

/// An integer beyond i64 is read by `toml` (as a float, for an f64 field) but refused by `toml_edit`, which locates
/// fields: the range error had no line. Found by tests/invalid_inputs.rs.
#[test]
fn an_integer_beyond_i64_is_located() {
    let text = quickstart().replace("[rollout]\n", "[rollout]\ngpu_memory_utilization = 18446744073709551615\n");
    let e = Scenario::from_text(&text, Path::new("fuzz.toml"), &[]).expect_err("must be rejected").to_string();
    assert!(e.starts_with("fuzz.toml:"), "{e}");
    assert!(e.contains("field `rollout.gpu_memory_utilization`"), "{e}");
    let line = e.split(':').nth(1).unwrap_or("");
    assert!(line.parse::<usize>().is_ok(), "no line in {e}");
}
