//! End-to-end tests of the `rlsim` command line.

mod scratch;
use scratch::{scratch, Scratch};

use std::path::Path;
use std::process::{Command, Output};

fn rlsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlsim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("rlsim runs")
}

fn ok(args: &[&str]) -> String {
    let out = rlsim(args);
    assert!(out.status.success(), "rlsim {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs rlsim, which must succeed; returns (stdout, stderr).
fn ok_with_stderr(args: &[&str]) -> (String, String) {
    let out = rlsim(args);
    assert!(out.status.success(), "rlsim {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn fails(args: &[&str]) -> String {
    let out = rlsim(args);
    assert_eq!(out.status.code(), Some(1), "rlsim {args:?} should fail with exit code 1");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn tmp(name: &str) -> Scratch {
    scratch("cli", name, false)
}

#[test]
fn run_writes_the_promised_files() {
    let dir = tmp("run");
    let out = ok(&["run", "scenarios/quickstart.toml", "--timeline", "trajectories", "--out", dir.to_str().unwrap()]);
    assert!(out.contains("trained tokens/s") && out.contains("quickstart"), "{out}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    for field in [
        "scenario",
        "pipeline",
        "backend",
        "seed",
        "steps",
        "sim_time_s",
        "generated_tokens",
        "trained_tokens",
        "discarded_tokens",
        "in_flight_tokens",
        "tokens_per_s",
        "samples_per_s",
        "mean_step_s",
        "gpu_util",
        "bubble_fraction",
        "mean_staleness",
        "max_staleness",
        "events",
        "wall_s",
        "rollout_pool_busy_fraction",
        "train_pool_busy_fraction",
        "steady_from_step",
        "step_rollout_wait_fraction",
        "step_rollout_tail_fraction",
        "step_train_fraction",
        "step_sync_switch_fraction",
        "bottleneck",
        "verdict",
    ] {
        assert!(summary.get(field).is_some(), "summary.json lacks {field}");
    }
    // The bottleneck, named: a code, and the sentence the printed summary ends with.
    let code = summary["bottleneck"].as_str().unwrap();
    assert!(["rollout", "rollout-tail", "train", "sync-switch", "balanced"].contains(&code), "{code}");
    let verdict = summary["verdict"].as_str().unwrap();
    assert!(out.contains(&format!("verdict: {verdict}")), "{out}");
    for f in ["rollout_pool_busy_fraction", "train_pool_busy_fraction"] {
        assert!((0.0..=1.0).contains(&summary[f].as_f64().unwrap()), "{f}");
    }
    assert_eq!(summary["backend"], "sim");
    assert_eq!(summary["pipeline"], "colocated");
    assert_eq!(summary["steps"], 5);
    let steps = std::fs::read_to_string(dir.join("steps.csv")).unwrap();
    assert_eq!(steps.lines().count(), 6, "{steps}");
    let timeline = std::fs::read_to_string(dir.join("timeline.csv")).unwrap();
    assert!(timeline.starts_with("worker,kind,start_s,end_s,step,trajectory,tokens,version\n"));
    assert!(timeline.contains(",generate,") && timeline.contains(",train,") && timeline.contains(",switch,"));
    // timeline.json.gz (Chrome trace-event format, for Perfetto) holds the same spans as timeline.csv, one complete
    // event each: worker activity on the worker's thread, generation segments on its lanes (tests/trace_format.rs
    // checks the format's rules).
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(dir.join("timeline.json.gz")).unwrap()),
        &mut text,
    )
    .unwrap();
    let trace: serde_json::Value = serde_json::from_str(&text).unwrap();
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    for e in events {
        for field in ["name", "ph", "pid", "tid", "args"] {
            assert!(e.get(field).is_some(), "event lacks {field}: {e}");
        }
    }
    let slices = |cat: Option<&str>| {
        events
            .iter()
            .filter(|e| e["ph"] == "X" && e["args"]["worker"].is_string())
            .filter(|e| cat.is_none_or(|c| e["cat"] == c))
            .count()
    };
    let rows: Vec<&str> = timeline.lines().skip(1).collect();
    let generate = rows.iter().filter(|r| r.contains(",generate,")).count();
    assert_eq!(slices(None), rows.len(), "one complete event per span");
    assert_eq!(slices(Some("generate")), generate, "one slice per trajectory segment");
    let processes = events.iter().filter(|e| e["name"] == "process_name").count();
    assert_eq!(processes, 1 + 1 + 8, "the steps, one node, a generation process per worker");
    let train = events.iter().find(|e| e["ph"] == "X" && e["name"] == "train" && e["args"]["worker"].is_string());
    let train = train.unwrap();
    let csv_train = rows.iter().find(|r| r.contains(",train,")).unwrap();
    let start_s: f64 = csv_train.split(',').nth(2).unwrap().parse().unwrap();
    assert!((train["ts"].as_f64().unwrap() - start_s * 1e6).abs() < 1e-3, "{train} vs {csv_train}");
    assert!(train["args"]["step"].is_u64());
    // Plots, PNG and SVG, drawn with the bundled font; `plot` redraws them from the files, `--no-plots` skips them.
    for stem in ["timeline", "steps", "staleness", "lengths"] {
        let png = std::fs::read(dir.join(format!("{stem}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "{stem}.png");
        let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.contains("quickstart"), "{stem}.svg has its title");
    }
    std::fs::remove_file(dir.join("steps.png")).unwrap();
    ok(&["plot", dir.to_str().unwrap()]);
    assert!(dir.join("steps.png").exists());
    let bare = tmp("run-bare");
    ok(&["run", "scenarios/quickstart.toml", "--no-plots", "--out", bare.to_str().unwrap()]);
    assert!(!bare.join("timeline.png").exists());
    // Less timeline detail: by default (`workers`) the activity (and its plot) but no per-trajectory rows (no
    // lengths plot); `none` writes neither timeline file, and the plots that need no spans are still drawn.
    let workers = tmp("run-workers");
    ok(&["run", "scenarios/quickstart.toml", "--out", workers.to_str().unwrap()]);
    let csv = std::fs::read_to_string(workers.join("timeline.csv")).unwrap();
    assert!(!csv.contains(",generate,") && csv.contains(",train,"));
    assert!(workers.join("timeline.json.gz").exists() && workers.join("timeline.png").exists());
    assert!(!workers.join("lengths.png").exists());
    let none = tmp("run-none");
    ok(&["run", "scenarios/quickstart.toml", "--timeline", "none", "--out", none.to_str().unwrap()]);
    assert!(!none.join("timeline.csv").exists() && !none.join("timeline.json.gz").exists());
    // The steps plot is each step's critical path, drawn from the worker spans: not without them.
    assert!(none.join("staleness.png").exists() && !none.join("timeline.png").exists());
    assert!(!none.join("steps.png").exists());
    ok(&["plot", none.to_str().unwrap()]);
    let out = rlsim(&["run", "scenarios/quickstart.toml", "--timeline", "all"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a usage error: {e}");
    assert!(e.contains("possible values: none, steps, workers, trajectories"), "{e}");
    // The resolved scenario reproduces the run.
    let resolved = dir.join("scenario.resolved.toml");
    let again = tmp("run-resolved");
    ok(&["run", resolved.to_str().unwrap(), "--timeline", "trajectories", "--out", again.to_str().unwrap()]);
    assert_eq!(std::fs::read(dir.join("timeline.csv")).unwrap(), std::fs::read(again.join("timeline.csv")).unwrap());
}

/// Every output file is byte-identical across runs, except `wall_s` in summary.json (wall-clock time).
fn files_without_wall_time(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let mut bytes = std::fs::read(&p).unwrap();
            if name == "summary.json" {
                let text = String::from_utf8(bytes).unwrap();
                bytes = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("\"wall_s\""))
                    .collect::<Vec<_>>()
                    .join("\n")
                    .into_bytes();
            }
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn same_scenario_and_seed_give_byte_identical_outputs() {
    let (a, b, c) = (tmp("det-a"), tmp("det-b"), tmp("det-c"));
    for d in [&a, &b] {
        let d = d.to_str().unwrap();
        ok(&[
            "run",
            "scenarios/dapo-32b-h800x64.toml",
            "--set",
            "workload.steps=3",
            "--timeline",
            "trajectories",
            "--out",
            d,
        ]);
    }
    let (fa, fb) = (files_without_wall_time(&a), files_without_wall_time(&b));
    assert_eq!(fa.len(), 14, "{:?}", fa.iter().map(|f| &f.0).collect::<Vec<_>>());
    for (x, y) in fa.iter().zip(&fb) {
        assert!(x == y, "{} differs between identical runs", x.0);
    }
    // A different seed gives a different run.
    ok(&[
        "run",
        "scenarios/dapo-32b-h800x64.toml",
        "--set",
        "workload.steps=3",
        "--seed",
        "99",
        "--out",
        c.to_str().unwrap(),
    ]);
    let fc = files_without_wall_time(&c);
    assert_ne!(fa.iter().find(|f| f.0 == "timeline.csv"), fc.iter().find(|f| f.0 == "timeline.csv"));
}

#[test]
fn compare_runs_one_scenario_under_several_pipelines() {
    let dir = tmp("compare");
    let out = ok(&[
        "compare",
        "scenarios/quickstart.toml",
        "--pipeline",
        "colocated",
        "--pipeline",
        "disaggregated",
        "--pipeline",
        "async",
        "--pipeline",
        "partial",
        "--pipeline",
        "seamless",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.contains("1.00x") && out.contains("disaggregated"), "{out}");
    let csv = std::fs::read_to_string(dir.join("compare.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 6, "{csv}");
    assert!(lines[0].starts_with("scenario,pipeline,gpus,steps,sim_time_s,mean_step_s,tokens_per_s,speedup"));
    // New columns come after the old ones, so older readers keep working.
    assert!(
        lines[0].ends_with(
            "usd_per_million_trained_tokens,rollout_pool_busy_fraction,train_pool_busy_fraction,bottleneck,verdict,\
             seeds,tokens_per_s_min,tokens_per_s_max"
        ),
        "{}",
        lines[0]
    );
    assert!(
        out.contains("off-policy %") && out.contains("bottleneck") && out.contains("quickstart / async: "),
        "{out}"
    );
    let rows = rlsim_reports::plots::read_compare_csv(&dir.join("compare.csv")).unwrap();
    assert!(rows.iter().all(|r| !r.bottleneck.is_empty() && !r.verdict.is_empty()), "{rows:?}");
    for (line, p) in lines[1..].iter().zip(["colocated", "disaggregated", "async", "partial", "seamless"]) {
        assert!(line.contains(&format!(",{p},")), "{line}");
    }
    // An explicit layout rules some pipelines out: compare says so and runs the others.
    let out = rlsim(&[
        "compare",
        "scenarios/moe-30b-h20-explicit.toml",
        "--pipeline",
        "colocated",
        "--pipeline",
        "async",
        "--no-plots",
        "--out",
        dir.join("explicit").to_str().unwrap(),
    ]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("skipped") && stderr.contains("as colocated"), "{stderr}");
    assert!(stdout.contains("async") && !stdout.contains(" colocated "), "{stdout}");
    assert!(dir.join("quickstart-colocated/summary.json").exists());
    assert!(dir.join("quickstart-disaggregated/timeline.csv").exists());
    assert!(dir.join("compare.png").exists() && dir.join("compare.svg").exists());
    assert!(dir.join("quickstart-disaggregated/timeline.png").exists());
    // Several scenarios at once.
    let out = ok(&[
        "compare",
        "scenarios/quickstart.toml",
        "scenarios/moe-30b-h20-explicit.toml",
        "--out",
        dir.join("two").to_str().unwrap(),
    ]);
    assert!(out.contains("moe-30b-h20-explicit"), "{out}");
}

#[test]
fn check_notes_a_pipelined_trainer_left_at_the_default_micro_batch() {
    let file = "scenarios/nemo-rl-qwen3-235b-h100x128.toml";
    let (_, quiet) = ok_with_stderr(&["check", file]);
    assert!(!quiet.contains("note:"), "{quiet}");
    let (out, err) = ok_with_stderr(&["check", file, "--set", "training.micro_batch_tokens=16384"]);
    assert!(out.contains("ok"), "{out}");
    assert!(err.contains("note: scenarios/nemo-rl-qwen3-235b-h100x128.toml: training.micro_batch_tokens = 16384 per GPU makes a pipelined rank's micro-batch 524288 tokens"), "{err}");
}

#[test]
fn a_coarse_grained_scenario_is_checked_noted_and_kept_off_the_real_backend() {
    let file = "scenarios/bench/seamless-1024.toml";
    let (out, err) = ok_with_stderr(&["check", file, "--set", "workload.coarsen=16", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["prompts_per_step"].as_u64(), v["coarsen"].as_u64()), (Some(8192), Some(16)), "{out}");
    assert!(
        err.contains("workload.coarsen = 16: an approximation that simulates 512 of the 8192 groups per step"),
        "{err}"
    );
    // async under the verl preset keeps 16 groups per engine in flight: at coarsen 32 that rounds to 32 real ones.
    let (_, err) = ok_with_stderr(&["check", file, "--set", "workload.coarsen=32", "--set", "pipeline.type=async"]);
    assert!(err.contains("framework.stream_groups_per_engine = 16 is not a multiple of coarsen 32"), "{err}");
    // An engine's KV cache must hold the copies of the longest sequence, and every engine must get a group.
    let err = fails(&["check", file, "--set", "workload.coarsen=64"]);
    assert!(err.contains("field `workload.coarsen`") && err.contains("expected coarsen at most 41"), "{err}");
    let err = fails(&["check", file, "--set", "workload.prompts_per_step=256", "--set", "workload.coarsen=4"]);
    assert!(err.contains("64 simulated groups per step") && err.contains("for 128 rollout engines"), "{err}");
    let err = fails(&["exec", "scenarios/exec-tiny.toml", "--set", "workload.coarsen=2", "--steps", "1"]);
    assert!(err.contains("field `workload.coarsen`") && err.contains("simulated only"), "{err}");
    let out = tmp("coarse-profile.toml");
    let err =
        fails(&["profile", "scenarios/exec-tiny.toml", "--set", "workload.coarsen=2", "--out", out.to_str().unwrap()]);
    assert!(!out.exists(), "nothing written");
    assert!(err.contains("field `workload.coarsen`") && err.contains("simulated only"), "{err}");
}

#[test]
fn check_validates_and_bad_input_exits_non_zero_with_a_located_message() {
    let out = ok(&["check", "scenarios/quickstart.toml"]);
    assert!(out.contains("ok"), "{out}");
    let err = fails(&["check", "scenarios/quickstart.toml", "--set", "workload.steps=0"]);
    assert!(
        err.contains(
            "scenarios/quickstart.toml (with --set overrides):18:1: field `workload.steps`: must be at least 1"
        ),
        "{err}"
    );
    let err = fails(&["run", "scenarios/no-such.toml"]);
    assert!(err.contains("scenarios/no-such.toml: cannot read scenario"), "{err}");
    let err = fails(&["run", "scenarios/quickstart.toml", "--set", "model.preset=GPT-9"]);
    assert!(err.contains("field `model.preset`: unknown model preset \"GPT-9\""), "{err}");
    let usage = rlsim(&["compare", "scenarios/quickstart.toml", "--pipeline", "warp"]);
    assert_eq!(usage.status.code(), Some(2), "clap rejects an unknown pipeline type");
}

#[test]
fn help_lists_every_command() {
    let out = ok(&["--help"]);
    for cmd in ["run", "compare", "check", "trace", "bench"] {
        assert!(out.contains(cmd), "{out}");
    }
    let run = ok(&["run", "--help"]);
    assert!(run.contains("--set") && run.contains("--seed") && run.contains("--out"), "{run}");
}

#[test]
fn trace_import_reads_polytrace_and_matches_its_published_quantiles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/traces/polytrace/dapo-math");
    if !src.exists() {
        // CI and the development machines have ../shared beside the checkout; a bare clone does not.
        eprintln!("skipping: {} not found", src.display());
        return;
    }
    let dir = scratch("cli", "import", true);
    let out = dir.join("trace.csv");
    ok(&["trace", "import", src.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let stats = ok(&["trace", "stats", out.to_str().unwrap()]);
    // ../shared/traces/README.md: dapo-math output tokens p50 / p90 / p99 / max = 465 / 1,041 / 2,711 / 10,112.
    assert!(stats.contains("6 steps, 576 groups, 4608 samples"), "{stats}");
    let row = stats.lines().find(|l| l.starts_with("response tokens")).unwrap();
    let nums: Vec<&str> = row.split_whitespace().skip(2).collect();
    assert_eq!(nums[1..], ["465", "1041", "2711", "10112"], "{stats}");
}

#[test]
fn trace_import_reads_search_r1_multi_turn_and_the_trace_runs() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/traces/polytrace/search-multiturn");
    if !src.exists() {
        eprintln!("skipping: {} not found", src.display());
        return;
    }
    let dir = scratch("cli", "import-sr1", true);
    let out = dir.join("trace.csv");
    ok(&["trace", "import", src.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("step,group,prompt_tokens,response_tokens,turns"), "{}", &text[..80]);
    // ../shared/traces/README.md: 2.66 turns on average (max 5); tool latency p50 0.18 s.
    let turns: Vec<usize> = text
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().split(';').filter(|t| !t.is_empty()).count().max(1))
        .collect();
    let mean = turns.iter().sum::<usize>() as f64 / turns.len() as f64;
    assert!((mean - 2.63).abs() < 0.05 && *turns.iter().max().unwrap() == 5, "mean turns {mean}");
    // The imported trace drives a multi-turn simulation.
    let run = tmp("sr1-run");
    let scenario = dir.join("scenario.toml");
    let base =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/search-r1-7b-h100x8.toml"))
            .unwrap();
    let head = &base[..base.find("\nresponse_tokens =").unwrap() + 1];
    std::fs::write(
        &scenario,
        format!("{head}steps = 2\ntrace = {{ path = {:?} }}\n[pipeline]\ntype = \"async\"\n", out.to_str().unwrap())
            .replace("steps = 5\n", ""),
    )
    .unwrap();
    let summary = ok(&["run", scenario.to_str().unwrap(), "--no-plots", "--out", run.to_str().unwrap()]);
    assert!(summary.contains("search-r1"), "{summary}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert!(s["counters"]["tool_calls"].as_u64().unwrap() > 0, "{s}");
}

#[test]
fn trace_synth_is_reproducible() {
    let dir = scratch("cli", "synth", true);
    let (a, b) = (dir.join("a.csv"), dir.join("b.csv"));
    for p in [&a, &b] {
        ok(&[
            "trace",
            "synth",
            "--response-quantiles",
            "0:2,0.5:465,0.99:2711,1:10112",
            "--prompt-quantiles",
            "0:86,1:617",
            "--steps",
            "2",
            "--groups",
            "3",
            "--samples",
            "4",
            "--seed",
            "5",
            "--out",
            p.to_str().unwrap(),
        ]);
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(std::fs::read_to_string(&a).unwrap().lines().count(), 1 + 2 * 3 * 4);
    let err = fails(&[
        "trace",
        "synth",
        "--response-quantiles",
        "0.5:3",
        "--prompt-quantiles",
        "0:1,1:2",
        "--steps",
        "1",
        "--groups",
        "1",
        "--samples",
        "1",
        "--out",
        a.to_str().unwrap(),
    ]);
    assert!(err.contains("--response-quantiles"), "{err}");
}

#[test]
fn bench_prints_events_per_second() {
    let out = ok(&["bench", "scenarios/quickstart.toml", "--steps", "2", "--repeat", "1"]);
    assert!(out.contains("Mevents/s") && out.contains("quickstart"), "{out}");
}

#[test]
fn bench_setup_only_times_the_setup_of_the_cluster_set() {
    let out = ok(&[
        "--json",
        "bench",
        "scenarios/quickstart.toml",
        "--setup-only",
        "--repeat",
        "2",
        "--set",
        "cluster.nodes=4",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = &v["rows"][0];
    assert_eq!(row["gpus"], 32, "--set reaches the scenario: {out}");
    assert!(row["workers"].as_u64().unwrap() > 0, "{out}");
    assert!(row["best_setup_ms"].as_f64().unwrap() <= row["median_setup_ms"].as_f64().unwrap(), "{out}");
    let text = ok(&["bench", "scenarios/quickstart.toml", "--setup-only", "--repeat", "1"]);
    assert!(text.contains("best setup ms") && !text.contains("Mevents/s"), "{text}");
}

#[test]
fn exec_profile_and_validate_run_on_the_cpu() {
    let dir = tmp("exec");
    ok(&["exec", "scenarios/exec-tiny.toml", "--device", "cpu", "--steps", "2", "--out", dir.to_str().unwrap()]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["backend"], "exec");
    assert_eq!(summary["steps"], 2);
    assert!(dir.join("timeline.csv").exists() && dir.join("steps.csv").exists());

    let err = fails(&["exec", "scenarios/exec-tiny.toml", "--device", "cuda:0"]);
    assert!(err.contains("--features cuda"), "{err}");
    let err = fails(&["exec", "scenarios/exec-tiny.toml", "--device", "tpu"]);
    assert!(err.contains("expected cpu, cuda (every visible GPU), cuda:N or cuda:N,M,..."), "{err}");
    let err = fails(&["exec", "scenarios/exec-tiny.toml", "--device", "cuda"]);
    assert!(err.contains("--features cuda"), "counting GPUs needs the CUDA build: {err}");
    let err = fails(&["exec", "scenarios/quickstart.toml", "--steps", "1"]);
    assert!(err.contains("field `model"), "a 7B preset is not the transformer exec builds: {err}");

    let profile = dir.join("profile.toml");
    let out = ok(&["profile", "scenarios/exec-tiny.toml", "--out", profile.to_str().unwrap()]);
    assert!(out.contains("decode iteration"), "{out}");
    // The profile is what the simulator then uses.
    let sim_dir = dir.join("sim");
    let set = format!("hardware.profile={:?}", profile.to_str().unwrap());
    ok(&["run", "scenarios/exec-tiny.toml", "--set", &set, "--out", sim_dir.to_str().unwrap()]);
    let resolved = std::fs::read_to_string(sim_dir.join("scenario.resolved.toml")).unwrap();
    assert!(resolved.contains("profile.toml"), "{resolved}");

    let vdir = dir.join("validate");
    let out = ok(&[
        "validate",
        "scenarios/exec-tiny.toml",
        "--pipeline",
        "colocated",
        "--steps",
        "2",
        "--out",
        vdir.to_str().unwrap(),
    ]);
    assert!(out.contains("same policy decisions in both backends: yes"), "{out}");
    let csv = std::fs::read_to_string(vdir.join("validate.csv")).unwrap();
    assert!(csv.starts_with("pipeline,metric,simulated,measured,error"), "{csv}");
    assert_eq!(csv.lines().count(), 7, "{csv}");
    assert!(vdir.join("colocated-exec/summary.json").exists() && vdir.join("colocated-sim/summary.json").exists());
    // Repeated, on a pipeline whose decisions follow the timing: medians with their range, its promises checked.
    let rdir = dir.join("validate-repeat");
    let out = ok(&[
        "validate",
        "scenarios/exec-tiny.toml",
        "--pipeline",
        "async",
        "--steps",
        "2",
        "--repeat",
        "2",
        "--out",
        rdir.to_str().unwrap(),
    ]);
    assert!(out.contains("error range"), "{out}");
    // Over two steps the order of finishes may or may not differ between backends; either way nothing is broken.
    assert!(out.contains("sim ok, exec ok") || out.contains("both backends: yes"), "{out}");
    assert!(!out.contains("VIOLATED") && !out.contains("NO ("), "{out}");
    assert!(rdir.join("async-r1-exec/summary.json").exists() && rdir.join("async-r2-sim/summary.json").exists());
    let csv = std::fs::read_to_string(rdir.join("validate.csv")).unwrap();
    assert!(csv.lines().skip(1).all(|l| l.ends_with(",2")), "{csv}");
    // A tolerance no real machine meets fails the validation (exit 1), after writing its files; the analytic model
    // runs from device figures measured now.
    let tdir = dir.join("validate-tolerance");
    let err = fails(&[
        "validate",
        "scenarios/exec-tiny.toml",
        "--model",
        "analytic",
        "--steps",
        "2",
        "--tolerance",
        "0.000001",
        "--out",
        tdir.to_str().unwrap(),
    ]);
    assert!(err.contains("validation failed") && err.contains("exceeds the tolerance of 0.0 %"), "{err}");
    assert!(tdir.join("validate.csv").exists() && tdir.join("figures-r1.toml").exists());
    let resolved = std::fs::read_to_string(tdir.join("colocated-sim/scenario.resolved.toml")).unwrap();
    assert!(resolved.contains("rlsim-exec") && !resolved.contains("profile ="), "analytic, not profiled: {resolved}");
}

/// A device list that does not fit the layout fails before minutes of profiling, naming the pipeline it was
/// profiling for, with any build (the list is checked before a GPU is counted or opened).
#[test]
fn validate_refuses_a_device_list_that_does_not_fit_before_profiling() {
    let dir = tmp("validate-devices");
    let err = fails(&[
        "validate",
        "scenarios/exec-tiny.toml",
        "--device",
        "cuda:0,1,2",
        "--reprofile",
        "--pipeline",
        "disaggregated",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(err.contains("profiling disaggregated on cuda:0,1,2"), "{err}");
    assert!(err.contains("3 GPUs listed for 2 workers"), "{err}");
    assert!(!dir.join("profile-disaggregated.toml").exists());
}

/// sweep.csv without the wall-clock column, for comparing runs.
fn sweep_without_wall(dir: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(dir.join("sweep.csv")).unwrap();
    let wall = r.headers().unwrap().iter().position(|h| h == "wall_s").expect("wall_s column");
    let mut rows = vec![r.headers().unwrap().iter().map(String::from).collect::<Vec<_>>()];
    for rec in r.records() {
        rows.push(rec.unwrap().iter().enumerate().filter(|(i, _)| *i != wall).map(|(_, v)| v.to_string()).collect());
    }
    rows
}

#[test]
fn sharded_sweeps_merge_into_the_unsharded_result() {
    let base = tmp("sweep");
    let vary = ["--vary", "pipeline.type=colocated,disaggregated", "--vary", "workload.prompts_per_step=16,32,48"];
    let run = |extra: &[&str], out: &Path| {
        let mut args = vec!["sweep", "scenarios/quickstart.toml", "--set", "workload.steps=2"];
        args.extend(vary);
        args.extend(extra);
        args.extend(["--out", out.to_str().unwrap()]);
        ok_with_stderr(&args)
    };
    let whole = base.join("whole");
    // The points table on stdout, where the file went on stderr (a status line).
    let (out, err) = run(&["-j", "2"], &whole);
    assert!(err.contains("6 points"), "{err}");
    assert_eq!(out.lines().count(), 2 + 6 + 1, "header, rule, a row per point, legend: {out}");
    assert!(out.contains("speedup") && out.lines().filter(|l| l.contains("colocated")).count() == 3, "{out}");
    run(&["--shard", "0/2"], &base.join("s0"));
    run(&["--shard", "1/2"], &base.join("s1"));
    let merged = base.join("merged");
    ok(&[
        "merge",
        base.join("s1").to_str().unwrap(),
        base.join("s0").to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    let (a, b) = (sweep_without_wall(&whole), sweep_without_wall(&merged));
    assert_eq!(a.len(), 7);
    assert_eq!(a[0][..3], ["point", "pipeline.type", "workload.prompts_per_step"]);
    assert_eq!(a, b, "merged shards equal the unsharded sweep apart from wall-clock time");
    assert!(
        whole.join("sweep-pipeline_type.png").exists() && whole.join("sweep-workload_prompts_per_step.svg").exists()
    );
    assert!(!base.join("s0").join("sweep-pipeline_type.png").exists(), "a shard draws no curves");
    ok(&["plot", merged.to_str().unwrap()]);
    assert!(merged.join("sweep-workload_prompts_per_step.png").exists());
    let err = fails(&[
        "merge",
        base.join("s0").to_str().unwrap(),
        base.join("s0").to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(err.contains("shard 0/2 given twice"), "{err}");
    // Two of three shards, or shards of another sweep, are refused rather than merged into a smaller file.
    let err = fails(&["merge", base.join("s0").to_str().unwrap(), "--out", merged.to_str().unwrap()]);
    assert!(err.contains("shard(s) 1 of 2 missing"), "{err}");
    run(&["--shard", "1/2", "--seed", "9"], &base.join("s1-seed9"));
    let err = fails(&[
        "merge",
        base.join("s0").to_str().unwrap(),
        base.join("s1-seed9").to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(err.contains("is not the same as in"), "{err}");
    let err = fails(&[
        "sweep",
        "scenarios/quickstart.toml",
        "--vary",
        "workload.steps=2,0",
        "--out",
        base.join("bad").to_str().unwrap(),
    ]);
    assert!(err.contains("sweep point 1") && err.contains("field `workload.steps`"), "{err}");
}

#[test]
fn schema_describes_the_scenario_format() {
    let out = ok(&["schema"]);
    let schema: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    let props = schema["properties"].as_object().unwrap();
    for table in ["model", "cluster", "workload", "training", "rollout", "pipeline", "hardware", "exec", "seed", "name"]
    {
        assert!(props.contains_key(table), "schema lacks {table}");
    }
    // Every key of every bundled scenario is known to the schema (top level).
    for f in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            let t: toml::Table = std::fs::read_to_string(&p).unwrap().parse().unwrap();
            for k in t.keys() {
                assert!(props.contains_key(k), "{}: {k} not in the schema", p.display());
            }
        }
    }
}

#[test]
fn search_ranks_configurations_and_writes_runnable_scenarios() {
    let dir = tmp("search");
    let out = ok(&[
        "search",
        "scenarios/quickstart.toml",
        "--set",
        "workload.steps=2",
        "--top",
        "3",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.contains("configurations simulated"), "{out}");
    // The best's bottleneck and why, and its lead over the second against the seeds' spread.
    assert!(out.contains("bottleneck") && out.contains("\nwhy: "), "{out}");
    assert!(out.contains("margin over the runner-up ("), "{out}");
    let csv = std::fs::read_to_string(dir.join("search.csv")).unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",labels,bottleneck,verdict"), "{csv}");
    let rows: Vec<Vec<String>> = csv.lines().skip(1).map(|l| l.split(',').map(String::from).collect()).collect();
    assert!(rows.len() >= 4, "{csv}");
    let tps: Vec<f64> = rows.iter().map(|r| r[3].parse().unwrap()).collect();
    // Confirmed rows first, by mean throughput, then the screened-only ones by their screening figure.
    let confirmed = rows.iter().filter(|r| r[8] == "false").count();
    assert!(rows[confirmed..].iter().all(|r| r[8] == "true"), "{csv}");
    for part in [&tps[..confirmed], &tps[confirmed..]] {
        assert!(part.windows(2).all(|w| w[0] >= w[1]), "ranked by throughput: {tps:?}");
    }
    // The best configuration is a scenario file that runs and gives the ranked throughput.
    let best = dir.join("top-1.toml");
    let run = dir.join("best-run");
    ok(&["run", best.to_str().unwrap(), "--no-plots", "--out", run.to_str().unwrap()]);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    // It runs at the scenario's seed: one of the seeds the ranked mean is over.
    let (min, max): (f64, f64) = (rows[0][11].parse().unwrap(), rows[0][12].parse().unwrap());
    let got = s["tokens_per_s"].as_f64().unwrap();
    assert!(got >= min * (1.0 - 1e-9) && got <= max * (1.0 + 1e-9), "{got} outside {min}–{max}");
    // A staleness limit of 0 leaves only on-policy (colocated) configurations.
    let on = tmp("search-onpolicy");
    ok(&[
        "search",
        "scenarios/quickstart.toml",
        "--set",
        "workload.steps=2",
        "--max-staleness",
        "0",
        "--out",
        on.to_str().unwrap(),
    ]);
    let csv = std::fs::read_to_string(on.join("search.csv")).unwrap();
    // A limit of 0 leaves on-policy configurations: colocated, and async with η = 0.
    assert!(csv.lines().skip(1).all(|l| l.split(',').nth(5) == Some("0")), "{csv}");
    assert!(csv.lines().any(|l| l.contains("async.max_staleness=0")), "{csv}");
    assert!(!csv.contains("async.max_staleness=1") && !csv.contains("type=disaggregated"), "{csv}");
}

/// `rlsim search` always tries the input scenario and every pipeline type's defaults, confirms them on the same
/// seeds as the leaders, and so returns a configuration at least as good as each (issue #13's done-when, on a
/// small scenario). The input here starves rollout on purpose (one rollout GPU of eight, disaggregated), so a
/// better split or layout exists and the search must find one well above it.
#[test]
fn search_beats_the_input_scenario_and_every_pipeline_default() {
    let dir = tmp("search-done-when");
    let out = ok(&[
        "search",
        "scenarios/quickstart.toml",
        "--set",
        "workload.steps=2",
        "--set",
        "pipeline.type=disaggregated",
        "--set",
        "pipeline.disaggregated.rollout_gpus=1",
        "--budget",
        "16",
        "--top",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let csv = std::fs::read_to_string(dir.join("search.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("{name}: {header:?}"));
    let rows: Vec<Vec<String>> = csv.lines().skip(1).map(|l| l.split(',').map(String::from).collect()).collect();
    let (mean, labels, only, seeds) = (col("tokens_per_s_mean"), col("labels"), col("screened_only"), col("seeds"));
    let best: f64 = rows[0][mean].parse().unwrap();
    assert_eq!(rows[0][only], "false", "{csv}");
    assert_eq!(rows[0][seeds], "3", "{csv}");
    // The input scenario and each pipeline default: present, confirmed on 3 seeds, and no better than the best.
    for label in ["input scenario", "colocated default", "async default", "partial default", "seamless default"] {
        let row =
            rows.iter().find(|r| r[labels].split("; ").any(|l| l == label)).unwrap_or_else(|| panic!("{label}: {csv}"));
        assert_eq!((row[only].as_str(), row[seeds].as_str()), ("false", "3"), "{label}: {csv}");
        assert!(row[mean].parse::<f64>().unwrap() <= best, "{label}: {csv}");
    }
    let input = rows.iter().find(|r| r[1] == "(input scenario)").unwrap();
    assert!(best >= 1.5 * input[mean].parse::<f64>().unwrap(), "{csv}");
    // The printed table shows the input and the defaults even outside the top 2, and the margin.
    assert!(out.contains("(input scenario)") && out.contains("outside the top"), "{out}");
    assert!(out.contains("over the input scenario"), "{out}");
    // A budget below the configurations always tried is raised, and said.
    let small = tmp("search-small-budget");
    let (_, err) = ok_with_stderr(&[
        "search",
        "scenarios/quickstart.toml",
        "--set",
        "workload.steps=2",
        "--budget",
        "1",
        "--out",
        small.to_str().unwrap(),
    ]);
    // A note, so on stderr with the other status lines.
    assert!(err.contains("--budget 1 is smaller") && err.contains("raised to 5"), "{err}");
}

/// `--max-off-policy` and `--max-staleness` drop what breaks them, and say how many; a bad fraction names the flag.
#[test]
fn search_constraints_drop_what_they_should() {
    let dir = tmp("search-off-policy");
    let out = ok(&[
        "search",
        "scenarios/quickstart.toml",
        "--set",
        "workload.steps=2",
        "--max-off-policy",
        "0",
        "--budget",
        "16",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let csv = std::fs::read_to_string(dir.join("search.csv")).unwrap();
    let rows: Vec<Vec<String>> = csv.lines().skip(1).map(|l| l.split(',').map(String::from).collect()).collect();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r[13].parse::<f64>().unwrap() == 0.0), "{csv}");
    // The one-step off-policy pipelines' defaults break it: dropped, named and counted.
    assert!(out.contains("dropped: disaggregated default"), "{out}");
    let over: usize = out.split(" over --max-off-policy").next().unwrap().rsplit(", ").next().unwrap().parse().unwrap();
    assert!(over >= 4, "{out}");
    // A staleness bound of 1 keeps one-step off-policy configurations, drops nothing staler.
    let one = tmp("search-stale-1");
    ok(&[
        "search",
        "scenarios/quickstart.toml",
        "--set",
        "workload.steps=3",
        "--max-staleness",
        "1",
        "--budget",
        "16",
        "--out",
        one.to_str().unwrap(),
    ]);
    let csv = std::fs::read_to_string(one.join("search.csv")).unwrap();
    assert!(csv.lines().skip(1).all(|l| l.split(',').nth(5).unwrap().parse::<u32>().unwrap() <= 1), "{csv}");
    assert!(!csv.contains("async.max_staleness=2") && !csv.contains("async.max_staleness=4"), "{csv}");
    // A usage error: clap's exit code 2.
    let bad = rlsim(&["search", "scenarios/quickstart.toml", "--max-off-policy", "1.5"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8(bad.stderr).unwrap();
    assert!(err.contains("--max-off-policy") && err.contains("fraction from 0 to 1"), "{err}");
}

/// `rlsim fidelity`: the table, fidelity.csv and the plot; exit 1 when a published figure is missed by more than
/// the tolerance its file states.
#[test]
fn fidelity_compares_published_figures_and_fails_outside_tolerance() {
    let cases = tmp("fidelity-cases");
    std::fs::create_dir_all(&cases).unwrap();
    let base = std::fs::read_to_string("scenarios/fidelity/nemo-rl-llama8b-colocated-16.toml").unwrap();
    std::fs::write(cases.join("a.toml"), &base).unwrap();
    let out = tmp("fidelity-out");
    let text = ok(&["fidelity", cases.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(text.contains("nemo-rl") || text.contains("a "), "{text}");
    assert!(text.contains("0 outside tolerance"), "{text}");
    let csv = std::fs::read_to_string(out.join("fidelity.csv")).unwrap();
    assert!(csv.starts_with("case,quantity,published,simulated,error,tolerance,within\n"), "{csv}");
    assert!(out.join("fidelity.png").exists() && out.join("fidelity.svg").exists());
    // A published step ten times longer than the simulation is outside any tolerance: exit 1, named.
    std::fs::write(cases.join("a.toml"), base.replace("step_s = 92.8", "step_s = 928.0")).unwrap();
    let out2 = rlsim(&["fidelity", cases.to_str().unwrap(), "--out", out.to_str().unwrap(), "--no-plots"]);
    assert_eq!(out2.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out2.stdout).contains("OUTSIDE"));
    // An empty folder is an error, not an empty success.
    let empty = tmp("fidelity-empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = fails(&["fidelity", empty.to_str().unwrap()]);
    assert!(err.contains("no fidelity scenarios"), "{err}");
}

#[test]
fn compare_on_several_seeds_reports_the_mean_and_its_range() {
    let dir = tmp("compare-seeds");
    let out = ok(&[
        "compare",
        "scenarios/quickstart.toml",
        "--pipeline",
        "colocated",
        "--pipeline",
        "async",
        "--seeds",
        "3",
        "--set",
        "workload.steps=2",
        "--no-plots",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.contains("seed range") && out.contains("means over each row's seeds"), "{out}");
    assert!(out.contains("model error: rlsim's step, phase and speed-up figures differ from"), "{out}");
    let mut r = csv::Reader::from_path(dir.join("compare.csv")).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|x| x == name).unwrap_or_else(|| panic!("no column {name}"));
    let (seeds, mean, lo, hi) = (col("seeds"), col("tokens_per_s"), col("tokens_per_s_min"), col("tokens_per_s_max"));
    let mut rows = 0;
    for rec in r.records() {
        let rec = rec.unwrap();
        let f = |i: usize| rec[i].parse::<f64>().unwrap();
        assert_eq!(&rec[seeds], "3");
        assert!(f(lo) <= f(mean) && f(mean) <= f(hi) && f(lo) > 0.0, "{rec:?}");
        rows += 1;
    }
    assert_eq!(rows, 2);
    // Run files are written for the scenario's own seed only.
    assert!(dir.join("quickstart-colocated/summary.json").exists() && !dir.join("quickstart-colocated-2").exists());
}

/// `presets` lists what a scenario can name; `--json` gives the full figures, and a named kind only that kind.
#[test]
fn presets_lists_models_gpus_and_frameworks() {
    let text = ok(&["presets"]);
    for name in ["Qwen3-235B-A22B", "DeepSeek-R1-Distill-Qwen-1.5B", "GB200", "verl-megatron", "H100 = H100-SXM"] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let json: serde_json::Value = serde_json::from_str(&ok(&["presets", "gpus", "--json"])).unwrap();
    assert!(json.get("models").is_none() && json.get("frameworks").is_none());
    let h20 = json["gpus"].as_array().unwrap().iter().find(|g| g["name"] == "H20").unwrap();
    assert_eq!(h20["bf16_tflops"], 148.0);
    assert_eq!(json["gpu_aliases"][0]["alias"], "H100");
    let err = String::from_utf8(rlsim(&["presets", "tpus"]).stderr).unwrap();
    assert!(err.contains("invalid value 'tpus'"), "{err}");
}
