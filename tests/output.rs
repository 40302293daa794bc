//! The command line's output conventions, end to end: `--json` gives one parseable document with the promised keys
//! on every command that has a result, `--quiet` silences stderr, status lines ("wrote …") are on stderr, `--steps`
//! reaches every command that simulates or executes, `sweep` prints a points table, `--seeds` on `run` and `sweep`
//! reports a range, old sweep files still merge, and the completions and man pages generate.

mod scratch;
use scratch::{scratch, Scratch};

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn rlsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlsim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("rlsim runs")
}

/// Runs rlsim, which must succeed; returns (stdout, stderr).
fn ok(args: &[&str]) -> (String, String) {
    let out = rlsim(args);
    assert!(out.status.success(), "rlsim {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// Runs rlsim with `--json` appended; stdout must be exactly one JSON document.
fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (out, _) = ok(&all);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("rlsim {all:?}: stdout is not one JSON document ({e}):\n{out}"))
}

fn tmp(name: &str) -> Scratch {
    scratch("output", name, false)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn has_keys(v: &Value, keys: &[&str], what: &str) {
    for k in keys {
        assert!(v.get(k).is_some(), "{what}: no `{k}` in {v:#}");
    }
}

#[test]
fn run_json_is_the_summary_and_status_goes_to_stderr() {
    let dir = tmp("run");
    let (out, err) = ok(&["run", "scenarios/quickstart.toml", "--steps", "2", "--no-plots", "--out", s(&dir)]);
    assert!(out.contains("trained tokens/s") && out.contains("simulated time"), "{out}");
    assert!(!out.contains("wrote") && !out.contains("run time"), "{out}");
    assert!(err.contains(&format!("wrote {}", dir.display())), "{err}");
    // --json: summary.json's content, field for field and in its order; nothing on stdout besides.
    let (text, _) = ok(&["run", "scenarios/quickstart.toml", "--steps", "2", "--no-plots", "--out", s(&dir), "--json"]);
    let v: Value = serde_json::from_str(&text).unwrap();
    let file: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&v), keys(&file));
    assert_eq!(v["steps"], 2, "--steps 2");
    assert_eq!((&v["tokens_per_s"], &v["verdict"]), (&file["tokens_per_s"], &file["verdict"]));
    let first_key = text.lines().nth(1).unwrap().trim();
    assert!(first_key.starts_with("\"scenario\""), "summary.json's order: {first_key}");
    assert!(v.get("seeds").is_none(), "one seed: no seeds object");
    // --quiet: the result, and not a byte on stderr.
    let (out, err) = ok(&["run", "scenarios/quickstart.toml", "--steps", "2", "--out", s(&dir), "--quiet"]);
    assert!(out.contains("trained tokens/s"), "{out}");
    assert_eq!(err, "", "--quiet prints nothing on stderr");
    let (out, err) = ok(&["run", "scenarios/quickstart.toml", "--steps", "2", "--out", s(&dir), "-q", "--json"]);
    assert!(serde_json::from_str::<Value>(&out).is_ok() && err.is_empty(), "{err}");
}

#[test]
fn run_on_several_seeds_reports_a_range_and_writes_the_own_seeds_files() {
    let dir = tmp("run-seeds");
    let args = ["run", "scenarios/quickstart.toml", "--steps", "2", "--seed", "5", "--seeds", "2", "--no-plots"];
    let (out, _) = ok(&[&args[..], &["--out", s(&dir)]].concat());
    assert!(out.contains("over 2 seeds (5, 6)"), "{out}");
    let row = out.lines().find(|l| l.starts_with("trained tokens/s") && l.split_whitespace().count() == 5).unwrap();
    let n: Vec<f64> = row.split_whitespace().skip(2).map(|x| x.parse().unwrap()).collect();
    assert!(n[1] <= n[0] && n[0] <= n[2] && n[1] < n[2], "mean within a real range: {row}");
    let v = json(&[&args[..], &["--out", s(&dir)]].concat());
    let seeds = &v["seeds"];
    assert_eq!(seeds["seeds"], serde_json::json!([5, 6]));
    let t = &seeds["tokens_per_s"];
    let f = |k: &str| t[k].as_f64().unwrap();
    assert!(f("min") <= f("mean") && f("mean") <= f("max") && f("min") < f("max"), "{seeds}");
    has_keys(&seeds["mean_step_s"], &["mean", "min", "max"], "run --seeds");
    // The files are the scenario's own seed's: the same as a one-seed run.
    let one = tmp("run-seeds-one");
    ok(&["run", "scenarios/quickstart.toml", "--steps", "2", "--seed", "5", "--no-plots", "--out", s(&one)]);
    for f in ["timeline.csv", "steps.csv", "scenario.resolved.toml"] {
        assert_eq!(std::fs::read(dir.join(f)).unwrap(), std::fs::read(one.join(f)).unwrap(), "{f}");
    }
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!((summary["seed"].as_u64(), v["seed"].as_u64()), (Some(5), Some(5)));
}

#[test]
fn compare_check_and_bench_json() {
    let dir = tmp("compare");
    let v = json(&[
        "compare",
        "scenarios/quickstart.toml",
        "--pipeline",
        "colocated",
        "--pipeline",
        "async",
        "--steps",
        "2",
        "--seeds",
        "2",
        "--no-plots",
        "--out",
        s(&dir),
    ]);
    has_keys(&v, &["rows", "skipped", "noise_note", "out"], "compare");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        has_keys(r, &["scenario", "pipeline", "tokens_per_s", "speedup", "bottleneck", "verdict", "seeds"], "row");
        assert_eq!((r["steps"].as_u64(), r["seeds"].as_u64()), (Some(2), Some(2)), "--steps and --seeds: {r}");
    }
    assert_eq!(rows[0]["speedup"], 1.0);
    assert_eq!(v["out"], s(&dir));
    // Without --json the table is on stdout, and the run status on stderr.
    let (out, err) =
        ok(&["compare", "scenarios/quickstart.toml", "--steps", "1", "--no-plots", "--out", s(&dir.join("b"))]);
    assert!(out.contains("speedup") && !out.contains("wrote"), "{out}");
    assert!(err.contains("wrote"), "{err}");

    let v = json(&["check", "scenarios/quickstart.toml", "--steps", "7"]);
    has_keys(&v, &["scenario", "ok", "model", "gpus", "pipeline", "rollout_tp", "steps", "framework"], "check");
    assert_eq!((v["ok"].as_bool(), v["steps"].as_u64(), v["gpus"].as_u64()), (Some(true), Some(7), Some(8)));
    // --steps is validated like the file: the scenario's own limits apply.
    let bad = rlsim(&["check", "scenarios/quickstart.toml", "--steps", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--steps"));

    let v = json(&["bench", "scenarios/quickstart.toml", "--steps", "2", "--repeat", "1", "-q"]);
    let row = &v["rows"][0];
    has_keys(row, &["scenario", "pipeline", "events", "best_wall_s", "mevents_per_s"], "bench");
    assert_eq!(row["steps"], 2);
}

#[test]
fn sweep_prints_a_table_and_json_and_runs_points_on_several_seeds() {
    let dir = tmp("sweep");
    let args = [
        "sweep",
        "scenarios/quickstart.toml",
        "--vary",
        "pipeline.type=colocated,disaggregated",
        "--vary",
        "workload.prompts_per_step=16,32",
        "--steps",
        "2",
        "--no-plots",
    ];
    let (out, err) = ok(&[&args[..], &["--out", s(&dir)]].concat());
    let lines: Vec<&str> = out.lines().collect();
    for h in ["pipeline.type", "workload.prompts_per_step", "tokens/s", "speedup", "step s", "bottleneck"] {
        assert!(lines[0].contains(h), "{h}: {out}");
    }
    assert!(!lines[0].contains("seed range"), "one seed: no range column: {out}");
    assert_eq!(lines.len(), 2 + 4 + 1, "{out}");
    assert!(lines[2].contains("1.00x") && lines[3].contains(" 32 "), "{out}");
    assert!(err.contains("4 points"), "{err}");
    let v = json(&[&args[..], &["--out", s(&dir)]].concat());
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 4);
    let p = &points[3];
    assert_eq!(p["point"], 3);
    assert_eq!(p["values"], serde_json::json!({ "pipeline.type": "disaggregated", "workload.prompts_per_step": 32 }));
    has_keys(p, &["tokens_per_s", "mean_step_s", "bottleneck", "seeds", "tokens_per_s_min"], "sweep point");
    assert_eq!((p["steps"].as_u64(), p["seeds"].as_u64()), (Some(2), Some(1)));
    assert_eq!(p["tokens_per_s_min"], p["tokens_per_s"]);

    // Two seeds: means with their range, in the table and the file.
    let seeded = tmp("sweep-seeds");
    let (out, _) = ok(&[&args[..], &["--seeds", "2", "--out", s(&seeded)]].concat());
    assert!(out.contains("seed range") && out.contains("means over each point's seeds"), "{out}");
    let mut r = csv::Reader::from_path(seeded.join("sweep.csv")).unwrap();
    let h = r.headers().unwrap().clone();
    assert!(
        h.iter().collect::<Vec<_>>().ends_with(&[
            "bottleneck",
            "seeds",
            "tokens_per_s_min",
            "tokens_per_s_max",
            "mean_step_s_min",
            "mean_step_s_max"
        ]),
        "appended after the old columns: {h:?}"
    );
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    for rec in r.records() {
        let rec = rec.unwrap();
        let f = |n: &str| rec[col(n)].parse::<f64>().unwrap();
        assert_eq!(&rec[col("seeds")], "2");
        assert!(f("tokens_per_s_min") <= f("tokens_per_s") && f("tokens_per_s") <= f("tokens_per_s_max"), "{rec:?}");
        assert!(f("mean_step_s_min") <= f("mean_step_s") && f("mean_step_s") <= f("mean_step_s_max"), "{rec:?}");
    }
    // Deterministic: the same file again, apart from wall-clock time.
    let again = tmp("sweep-seeds-again");
    ok(&[&args[..], &["--seeds", "2", "--out", s(&again), "-q"]].concat());
    let strip = |d: &Path| {
        let text = std::fs::read_to_string(d.join("sweep.csv")).unwrap();
        let wall = text.lines().next().unwrap().split(',').position(|c| c == "wall_s").unwrap();
        text.lines()
            .map(|l| l.split(',').enumerate().filter(|(i, _)| *i != wall).map(|(_, c)| c).collect::<Vec<_>>().join(","))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&seeded), strip(&again));
}

/// A sweep written before the seed columns (and its manifest before `seeds`) still merges, plots and prints.
#[test]
fn merge_reads_old_and_new_sweep_files() {
    let base = tmp("merge");
    let shard = |i: &str, extra: &[&str]| {
        let dir = base.join(format!("s{i}"));
        let mut args = vec![
            "sweep",
            "scenarios/quickstart.toml",
            "--vary",
            "workload.prompts_per_step=16,32,48",
            "--steps",
            "2",
            "--shard",
        ];
        let n = format!("{i}/2");
        args.push(&n);
        args.extend(extra);
        args.extend(["--out", s(&dir), "-q"]);
        ok(&args);
        dir
    };
    let (s0, s1) = (shard("0", &[]), shard("1", &[]));
    let merged = base.join("merged");
    let v = json(&["merge", s(&s0), s(&s1), "--out", s(&merged)]);
    assert_eq!(v["points"].as_array().unwrap().len(), 3);
    assert_eq!(v["points"][1]["values"]["workload.prompts_per_step"], 32);
    // Shards run on different seed counts are not one sweep.
    let s1_seeds = base.join("s1-seeds");
    ok(&[
        "sweep",
        "scenarios/quickstart.toml",
        "--vary",
        "workload.prompts_per_step=16,32,48",
        "--steps",
        "2",
        "--shard",
        "1/2",
        "--seeds",
        "2",
        "--out",
        s(&s1_seeds),
        "-q",
    ]);
    let bad = rlsim(&["merge", s(&s0), s(&s1_seeds), "--out", s(&base.join("mixed"))]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--seeds count"), "{:?}", bad);
    // Make both shards look like files written before the seed columns and the manifest's `seeds`.
    for d in [&s0, &s1] {
        let csv = std::fs::read_to_string(d.join("sweep.csv")).unwrap();
        let old: Vec<String> = csv
            .lines()
            .map(|l| {
                let cells: Vec<&str> = l.split(',').collect();
                cells[..cells.len() - 5].join(",")
            })
            .collect();
        assert!(old[0].ends_with(",bottleneck"), "{}", old[0]);
        std::fs::write(d.join("sweep.csv"), old.join("\n") + "\n").unwrap();
        let manifest = std::fs::read_to_string(d.join("sweep.json")).unwrap();
        let mut m: Value = serde_json::from_str(&manifest).unwrap();
        m.as_object_mut().unwrap().remove("seeds").expect("the manifest records the seeds");
        std::fs::write(d.join("sweep.json"), serde_json::to_string_pretty(&m).unwrap()).unwrap();
    }
    let old_merged = base.join("old-merged");
    let (out, _) = ok(&["merge", s(&s1), s(&s0), "--out", s(&old_merged)]);
    assert!(out.contains("speedup") && out.lines().count() == 2 + 3 + 1, "{out}");
    ok(&["plot", s(&old_merged)]);
    assert!(old_merged.join("sweep-workload_prompts_per_step.png").exists());
}

#[test]
fn search_json_ranks_and_recommends() {
    let dir = tmp("search");
    let v =
        json(&["search", "scenarios/quickstart.toml", "--steps", "2", "--budget", "8", "--top", "2", "--out", s(&dir)]);
    has_keys(
        &v,
        &["rows", "best", "screened", "confirmed", "steps", "seeds", "dropped", "noise_warning", "out"],
        "search",
    );
    assert_eq!(v["steps"], 2, "--steps 2 is the full run length");
    has_keys(&v["best"], &["bottleneck", "verdict", "margin_over_runner_up"], "best");
    has_keys(
        &v["best"]["margin_over_runner_up"],
        &["runner_up", "gain", "spread_tokens_per_s", "within_noise"],
        "margin",
    );
    let rows = v["rows"].as_array().unwrap();
    assert!(rows.len() >= 5, "{v:#}");
    has_keys(&rows[0], &["rank", "configuration", "pipeline", "tokens_per_s", "screened_only", "labels"], "row");
    assert_eq!(rows[0]["rank"], 1);
    let best = &v["best"];
    has_keys(best, &["configuration", "tokens_per_s", "file", "gain_over_input"], "best");
    assert_eq!(best["tokens_per_s"], rows[0]["tokens_per_s"]);
    assert!(Path::new(best["file"].as_str().unwrap()).exists(), "{best}");
    assert!(best["gain_over_input"].as_f64().unwrap() >= 0.0, "{best}");
}

#[test]
fn fidelity_json_holds_every_comparison() {
    let cases = tmp("fidelity-cases");
    std::fs::create_dir_all(&cases).unwrap();
    std::fs::copy("scenarios/fidelity/nemo-rl-llama8b-colocated-16.toml", cases.join("a.toml")).unwrap();
    let out = tmp("fidelity-out");
    let v = json(&["fidelity", s(&cases), "--out", s(&out), "--no-plots", "-q"]);
    has_keys(&v, &["rows", "cases", "comparisons", "mean_abs_error", "outside", "out"], "fidelity");
    assert_eq!(v["cases"], 1);
    has_keys(&v["rows"][0], &["case", "quantity", "published", "simulated", "error", "tolerance", "within"], "row");
    assert_eq!(v["rows"].as_array().unwrap().len(), v["comparisons"].as_u64().unwrap() as usize);
}

#[test]
fn exec_and_validate_json_and_steps() {
    let dir = tmp("exec");
    let v = json(&["exec", "scenarios/exec-tiny.toml", "--steps", "2", "--no-plots", "--out", s(&dir), "-q"]);
    has_keys(&v, &["scenario", "backend", "tokens_per_s", "verdict", "step_rewards"], "exec");
    assert_eq!((v["backend"].as_str(), v["steps"].as_u64()), (Some("exec"), Some(2)));
    assert_eq!(v["step_rewards"].as_array().unwrap().len(), 2);
    let (out, err) = ok(&["exec", "scenarios/exec-tiny.toml", "--steps", "1", "--no-plots", "--out", s(&dir)]);
    assert!(out.contains("measured time") && out.contains("mean reward per step"), "{out}");
    assert!(err.contains("wrote") && !out.contains("wrote"), "{err}");

    let vdir = tmp("validate");
    let v =
        json(&["validate", "scenarios/exec-tiny.toml", "--pipeline", "colocated", "--steps", "2", "--out", s(&vdir)]);
    has_keys(&v, &["rows", "decisions", "out"], "validate");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "{v:#}");
    has_keys(&rows[0], &["pipeline", "metric", "simulated", "measured", "error", "error_min", "error_max"], "row");
    assert_eq!(v["decisions"][0]["run"], "colocated");
    assert_eq!(v["decisions"][0]["same_decisions"], true, "{v:#}");
    let sim: Value =
        serde_json::from_str(&std::fs::read_to_string(vdir.join("colocated-sim/summary.json")).unwrap()).unwrap();
    assert_eq!(sim["steps"], 2, "--steps reaches validate's runs");
}

#[test]
fn completions_and_man_pages_generate() {
    for (shell, mark) in [("bash", "_rlsim()"), ("zsh", "#compdef rlsim"), ("fish", "complete -c rlsim")] {
        let (out, _) = ok(&["completions", shell]);
        assert!(out.contains(mark) && out.contains("sweep") && out.contains("seeds"), "{shell}: {out}");
    }
    assert_eq!(rlsim(&["completions", "tcsh"]).status.code(), Some(2), "an unknown shell is a usage error");
    let (page, _) = ok(&["man"]);
    assert!(page.contains(".TH rlsim 1") && page.contains("completions"), "{page}");
    let dir = tmp("man");
    let (_, err) = ok(&["man", "--out", s(&dir)]);
    assert!(err.contains("man pages"), "{err}");
    let run = std::fs::read_to_string(dir.join("rlsim-run.1")).unwrap();
    assert!(run.contains("\\-\\-seeds") && run.contains("Scenario file"), "{run}");
    assert!(dir.join("rlsim-trace-synth.1").exists() && dir.join("rlsim.1").exists());
}
