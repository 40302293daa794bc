//! One test per class of bad input: each error names the file, the line and column where it applies, the field,
//! and what was expected — and nothing panics.

use rlsim_sim::scenario::Scenario;
use std::path::{Path, PathBuf};

const BASE: &str = r#"name = "bad"
seed = 1

[model]
preset = "Qwen2.5-7B"

[cluster]
gpu = "H100-SXM"
nodes = 1
gpus_per_node = 8

[workload]
prompts_per_step = 8
samples_per_prompt = 4
steps = 2
max_response_tokens = 4096
response_tokens = { kind = "lognormal", median = 500, sigma = 1.0 }
prompt_tokens = { kind = "constant", tokens = 128 }

[pipeline]
type = "colocated"
"#;

fn err(text: &str, overrides: &[&str]) -> String {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    Scenario::from_text(text, Path::new("bad.toml"), &o).expect_err("must be rejected").to_string()
}

fn assert_has(e: &str, parts: &[&str]) {
    for p in parts {
        assert!(e.contains(p), "error {e:?} lacks {p:?}");
    }
}

#[test]
fn the_base_scenario_is_valid() {
    Scenario::from_text(BASE, Path::new("bad.toml"), &[]).unwrap();
}

#[test]
fn unknown_field() {
    let e = err(&BASE.replace("steps = 2", "steps = 2\nstepz = 3"), &[]);
    assert_has(&e, &["bad.toml:16:1:", "field `workload.stepz`", "unknown field `stepz`", "expected one of"]);
    let e = err(BASE, &["workload.promts_per_step=3"]);
    assert_has(&e, &["with --set overrides", "unknown field `promts_per_step`"]);
}

#[test]
fn wrong_type() {
    let e = err(&BASE.replace("steps = 2", "steps = \"two\""), &[]);
    assert_has(&e, &["bad.toml:15:9:", "field `workload.steps`", "invalid type: string \"two\", expected u32"]);
    let e = err(&BASE.replace("nodes = 1", "nodes = 1.5"), &[]);
    assert_has(&e, &["bad.toml:9:9:", "field `cluster.nodes`", "expected u32"]);
}

#[test]
fn negative_or_zero_counts() {
    let e = err(&BASE.replace("samples_per_prompt = 4", "samples_per_prompt = -4"), &[]);
    assert_has(&e, &["bad.toml:14:22:", "field `workload.samples_per_prompt`", "integer `-4`", "expected u32"]);
    let e = err(BASE, &["workload.prompts_per_step=0"]);
    assert_has(&e, &[":13:1:", "field `workload.prompts_per_step`", "must be at least 1", "got 0"]);
    let e = err(BASE, &["rollout.max_num_seqs=0"]);
    assert_has(&e, &["field `rollout.max_num_seqs`", "must be at least 1"]);
    let e = err(&BASE.replace("median = 500", "median = -5"), &[]);
    assert_has(&e, &["field `workload.response_tokens.median`", "expected a positive number"]);
    let e = err(BASE, &["training.mfu=1.5"]);
    assert_has(&e, &["field `training.mfu`", "expected a fraction in (0, 1]", "got 1.5"]);
}

#[test]
fn model_that_does_not_fit_says_by_how_much() {
    let e = err(&BASE.replace("Qwen2.5-7B", "Llama-3-70B"), &[]);
    assert_has(&e, &["field `rollout.tp`", "141.2 GB of weights per GPU", "offers 72.0 GB", "short by 69.2 GB"]);
    // Training state: 70.6B · 16 bytes / 8 GPUs + 8 GB = 149.2 GB per GPU on an 80 GB H100.
    let e = err(&BASE.replace("Qwen2.5-7B", "Llama-3-70B"), &["rollout.tp=4"]);
    assert_has(&e, &["field `cluster.nodes`", "needs 149.20 GB per GPU", "short by 69.20 GB", "add train GPUs"]);
    // A cap no KV cache can hold.
    let e = err(BASE, &["workload.max_response_tokens=2000000"]);
    assert_has(&e, &["field `workload.max_response_tokens`", "KV cache for only"]);
}

#[test]
fn no_worker_with_a_tag_the_pipeline_needs() {
    let explicit = BASE.replace(
        "nodes = 1\ngpus_per_node = 8\n",
        "nodes = 1\ngpus_per_node = 8\n\n[[cluster.workers]]\nname = \"gen\"\ncount = 8\ntags = [\"rollout\"]\n",
    );
    let e = err(&explicit, &[]);
    assert_has(&e, &["bad.toml:12:11:", "field `cluster.workers`", "no worker has the tag `train`", "colocated"]);
    let both = explicit.replace("[\"rollout\"]", "[\"rollout\", \"train\"]");
    let e = err(&both, &["pipeline.type=disaggregated"]);
    assert_has(&e, &["worker `gen0` has both `rollout` and `train`", "separate pools"]);
    let e = err(BASE, &["pipeline.type=warp"]);
    assert_has(&e, &["field `pipeline.type`", "unknown pipeline \"warp\"", "colocated, disaggregated"]);
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("rlsim-bad-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn with_trace(path: &str) -> String {
    BASE.replace(
        "response_tokens = { kind = \"lognormal\", median = 500, sigma = 1.0 }\nprompt_tokens = { kind = \"constant\", tokens = 128 }",
        &format!("trace = {{ path = \"{path}\" }}"),
    )
}

#[test]
fn missing_trace_file() {
    let d = dir();
    let e = Scenario::from_text(&with_trace("nope.csv"), &d.join("s.toml"), &[]).unwrap_err().to_string();
    assert_has(&e, &["s.toml:17:11:", "field `workload.trace.path`", "nope.csv: cannot read trace"]);
}

#[test]
fn malformed_trace_file() {
    let d = dir();
    std::fs::write(d.join("bad.csv"), "step,group,prompt_tokens,response_tokens\n0,0,12,40\n0,0,12,lots\n").unwrap();
    let e = Scenario::from_text(&with_trace("bad.csv"), &d.join("s.toml"), &[]).unwrap_err().to_string();
    assert_has(
        &e,
        &["field `workload.trace.path`", "bad.csv:3: field `response_tokens`", "expected a non-negative integer"],
    );
    std::fs::write(d.join("cols.csv"), "step,group,prompt,response_tokens\n0,0,12,40\n").unwrap();
    let e = Scenario::from_text(&with_trace("cols.csv"), &d.join("s.toml"), &[]).unwrap_err().to_string();
    assert_has(&e, &["cols.csv:1: field `prompt`: unknown column"]);
}

#[test]
fn syntax_errors_and_bad_overrides() {
    let e = err(&BASE.replace("steps = 2", "steps = [2"), &[]);
    assert_has(&e, &["bad.toml:16:1: TOML syntax error:", "expected `,`"]);
    let e = err(BASE, &["no-equals-sign"]);
    assert_has(&e, &["--set no-equals-sign", "expected KEY=VALUE"]);
    let e = err(BASE, &["workload.steps.deeper=1"]);
    assert_has(&e, &["--set workload.steps.deeper=1", "`steps` is a value, not a table"]);
}

#[test]
fn quantile_points_must_be_ordered() {
    let e = err(
        &BASE.replace(
            "{ kind = \"lognormal\", median = 500, sigma = 1.0 }",
            "{ kind = \"quantiles\", points = [[0.0, 10], [0.9, 5], [1.0, 20]] }",
        ),
        &[],
    );
    assert_has(
        &e,
        &["field `workload.response_tokens.points[1]`", "must increase in quantile and not decrease in tokens"],
    );
}

#[test]
fn missing_or_malformed_profile() {
    let d = dir();
    let text = format!("{BASE}\n[hardware]\nprofile = \"nope.toml\"\n");
    let e = Scenario::from_text(&text, &d.join("s.toml"), &[]).unwrap_err().to_string();
    assert_has(&e, &["s.toml:24:1:", "field `hardware.profile`", "nope.toml: cannot read profile"]);
    std::fs::write(d.join("p.toml"), "device = \"cpu\"\nmodel = \"m\"\ndecode_overhead_s = \"fast\"\n").unwrap();
    let text = format!("{BASE}\n[hardware]\nprofile = \"p.toml\"\n");
    let e = Scenario::from_text(&text, &d.join("s.toml"), &[]).unwrap_err().to_string();
    assert_has(&e, &["field `hardware.profile`", "p.toml:3:21:"]);
    // A profile measured before its train lines counted padded slots (no `train_unit`) is refused, not misread.
    let bundled =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../traces/profiles/cpu-exec-tiny.toml"))
            .unwrap();
    let old: String = bundled.lines().filter(|l| !l.starts_with("train_unit")).map(|l| format!("{l}\n")).collect();
    assert_ne!(old, bundled, "the bundled profile names its train unit");
    std::fs::write(d.join("old.toml"), old).unwrap();
    let text = format!("{BASE}\n[hardware]\nprofile = \"old.toml\"\n");
    let e = Scenario::from_text(&text, &d.join("s.toml"), &[]).unwrap_err().to_string();
    assert_has(&e, &["field `hardware.profile`", "old.toml", "field `train_unit`", "padded slot", "rlsim profile"]);
}

#[test]
fn pipeline_knobs_out_of_range_or_unknown() {
    let e = err(BASE, &["pipeline.type=partial", "pipeline.partial.layout=ring"]);
    assert_has(
        &e,
        &["field `pipeline.partial.layout`", "unknown layout \"ring\"", "\"colocated\" or \"disaggregated\""],
    );
    let e = err(BASE, &["pipeline.type=partial", "pipeline.partial.over_provision=0.5"]);
    assert_has(&e, &["field `pipeline.partial.over_provision`", "in [1, 16]", "got 0.5"]);
    let e = err(BASE, &["pipeline.type=seamless", "pipeline.seamless.lend=sometimes"]);
    assert_has(&e, &["field `pipeline.seamless.lend`", "\"gain\", \"always\" or \"never\""]);
    let e = err(BASE, &["pipeline.type=seamless", "pipeline.seamless.lend_s=-1"]);
    assert_has(&e, &["field `pipeline.seamless.lend_s`", "got -1"]);
    let e = err(BASE, &["pipeline.type=async", "pipeline.async.max_staleness=5000"]);
    assert_has(&e, &["field `pipeline.async.max_staleness`", "at most 1000"]);
}

#[test]
fn worker_start_state_and_gpu_must_make_sense() {
    let workers = "[[cluster.workers]]\nname = \"r\"\ncount = 4\ntags = [\"rollout\"]\nstart = \"train\"\n\n[[cluster.workers]]\nname = \"t\"\ntp = 4\ntags = [\"train\"]\n\n[workload]";
    let e = err(&BASE.replace("[workload]", workers), &["pipeline.type=disaggregated"]);
    assert_has(&e, &["field `cluster.workers[0].start`", "\"train\" is not one of the group's tags"]);
    let e = err(&BASE.replace("[workload]", &workers.replace("start = \"train\"", "gpu = \"B300\"")), &[]);
    assert_has(&e, &["field `cluster.workers[0].gpu`", "unknown GPU preset \"B300\"", "H100-SXM"]);
    // seamless needs train workers that can be lent.
    let e = err(&BASE.replace("[workload]", &workers.replace("start = \"train\"\n", "")), &["pipeline.type=seamless"]);
    assert_has(&e, &["field `cluster.workers`", "lacks the `rollout` tag", "could never be lent"]);
}

#[test]
fn failures_name_real_workers() {
    let e = err(&format!("{BASE}\n[failures]\nevents = [{{ worker = \"gpu9\", at_s = 3.0 }}]\n"), &[]);
    assert_has(&e, &["field `failures.events[0].worker`", "no worker named \"gpu9\"", "hybrid0"]);
    let e = err(&format!("{BASE}\n[failures]\nevents = [{{ worker = \"hybrid0\" }}]\n"), &[]);
    assert_has(&e, &["field `failures.events[0].at_s`", "missing"]);
    let e = err(&format!("{BASE}\n[failures]\nmtbf_gpu_hours = 0\n"), &[]);
    assert_has(&e, &["field `failures.mtbf_gpu_hours`", "positive"]);
}

#[test]
fn multi_turn_and_reward_fields_are_checked() {
    let e = err(BASE, &["workload.reward_s={kind=\"constant\",seconds=-2}"]);
    assert_has(&e, &["field `workload.reward_s.seconds`", "got -2"]);
    let e = err(BASE, &["workload.response_growth_per_step=-1.5"]);
    assert_has(&e, &["field `workload.response_growth_per_step`", "got -1.5"]);
    let e = err(BASE, &["workload.max_context_tokens=100"]);
    assert_has(&e, &["field `workload.max_context_tokens`", "below max_prompt_tokens + max_response_tokens"]);
    let e = err(
        BASE,
        &["workload.multi_turn={turns={kind=\"constant\",tokens=2},tool_latency_s={kind=\"lognormal\",median=0,sigma=1},tool_tokens={kind=\"constant\",tokens=10}}"],
    );
    assert_has(&e, &["field `workload.multi_turn.tool_latency_s.median`", "positive"]);
}

#[test]
fn framework_and_fidelity_knobs_are_checked() {
    let e = err(BASE, &["framework.preset=deepspeed"]);
    assert_has(&e, &["bad.toml", "field `framework.preset`", "unknown framework preset \"deepspeed\"", "verl-fsdp2"]);
    let e = err(BASE, &["framework.controller_ns_per_padded_token=-3"]);
    assert_has(&e, &["field `framework.controller_ns_per_padded_token`", "got -3"]);
    let e = err(BASE, &["framework.cuda_graphs=3"]);
    assert_has(&e, &["field `framework.cuda_graphs`"]);
    let e = err(BASE, &["training.mini_batches=0"]);
    assert_has(&e, &["field `training.mini_batches`"]);
    // 8 prompts × 4 samples: at most 32 optimizer steps (a huge count would loop for ever).
    let e = err(BASE, &["training.mini_batches=4000000000"]);
    assert_has(&e, &["field `training.mini_batches`", "more than the 32 samples"]);
    let e = err(BASE, &["training.model_parallel_gpus=0"]);
    assert_has(&e, &["field `training.model_parallel_gpus`"]);
    let e = err(BASE, &["training.logprob_micro_batch_tokens=0"]);
    assert_has(&e, &["field `training.logprob_micro_batch_tokens`"]);
    let e = err(BASE, &["pipeline.type=async", "pipeline.async.max_staleness=-0.5"]);
    assert_has(&e, &["field `pipeline.async.max_staleness`", "got -0.5"]);
    let e = err(BASE, &["pipeline.type=async", "pipeline.async.steps_per_sync=0"]);
    assert_has(&e, &["field `pipeline.async.steps_per_sync`"]);
    let e = err(BASE, &["pipeline.type=async", "pipeline.async.batch_order=fifo"]);
    assert_has(&e, &["field `pipeline.async.batch_order`", "\"version\" or \"completion\""]);
    let e = err(BASE, &["model.experts=128"]);
    assert_has(&e, &["field `model.experts`", "experts_per_token"]);
    let e = err(BASE, &["model.preset=Qwen3-30B-A3B", "model.experts_per_token=200"]);
    assert_has(&e, &["field `model.experts_per_token`", "k ≤ E"]);
    // A fidelity table with a phase mapped to a column steps.csv does not have, located at its line.
    let text = format!(
        "{BASE}\n[published]\nstep_s = 10.0\nphases = [{{ name = \"gen\", seconds = 5.0, sim = [\"rollouts\"] }}]\n"
    );
    let e = err(&text, &[]);
    assert_has(&e, &["bad.toml:", "field `published.phases[0].sim`", "unknown column \"rollouts\"", "logprob"]);
    let e = err(&format!("{BASE}\n[published]\nstep_s = 10.0\nstep_excludes = [\"syncs\"]\n"), &[]);
    assert_has(&e, &["bad.toml:", "field `published.step_excludes`", "unknown column \"syncs\"", "sync"]);
    let e = err(&format!("{BASE}\n[published]\nspeedup = 2.0\n"), &[]);
    assert_has(&e, &["field `published.speedup`", "speedup_over"]);
}

#[test]
fn a_fractional_staleness_bound_is_accepted_and_bounds_in_train_steps() {
    let s = Scenario::from_text(
        BASE,
        Path::new("ok.toml"),
        &["pipeline.type=async".into(), "pipeline.async.max_staleness=0.5".into()],
    )
    .unwrap();
    // ⌈1 · 1.5⌉ − 1 = 1 train step; with 4 steps per sync ⌈4 · 1.5⌉ − 1 = 5
    assert_eq!(s.pipeline.staleness_bound(), Some(1));
    let s = Scenario::from_text(
        BASE,
        Path::new("ok.toml"),
        &[
            "pipeline.type=async".into(),
            "pipeline.async.max_staleness=0.5".into(),
            "pipeline.async.steps_per_sync=4".into(),
        ],
    )
    .unwrap();
    assert_eq!(s.pipeline.staleness_bound(), Some(5));
}

#[test]
fn dynamic_sampling_is_checked() {
    let e = err(BASE, &["workload.dynamic_sampling={keep_fraction=0}"]);
    assert_has(&e, &["field `workload.dynamic_sampling.keep_fraction`", "[0.01, 1]", "got 0"]);
    let e = err(BASE, &["workload.dynamic_sampling={keep_fraction=1e-300}"]);
    assert_has(&e, &["field `workload.dynamic_sampling.keep_fraction`", "[0.01, 1]"]);
    let e = err(BASE, &["workload.dynamic_sampling={keep_fraction=0.5,prompts_per_round=4000000000}"]);
    assert_has(&e, &["field `workload.dynamic_sampling.prompts_per_round`", "64 × prompts_per_step"]);
    let e = err(BASE, &["workload.dynamic_sampling={prompts_per_round=8}"]);
    assert_has(&e, &["field `workload.dynamic_sampling.keep_fraction`", "missing"]);
    let e = err(BASE, &["workload.dynamic_sampling={keep_fraction=0.5,max_rounds=0}"]);
    assert_has(&e, &["field `workload.dynamic_sampling.max_rounds`"]);
    let e = err(BASE, &["pipeline.type=async", "workload.dynamic_sampling={keep_fraction=0.5}"]);
    assert_has(&e, &["field `workload.dynamic_sampling`", "synchronous pipelines"]);
}

#[test]
fn training_parallelism_and_published_figures_are_checked() {
    // 8 train GPUs cannot be cut into ranks of 3.
    let e = err(BASE, &["training.model_parallel_gpus=3"]);
    assert_has(&e, &["field `training.model_parallel_gpus`", "must divide the 8 train GPUs"]);
    let e = err(BASE, &["training.model_parallel_gpus=16"]);
    assert_has(&e, &["field `training.model_parallel_gpus`"]);
    let e = err(&format!("{BASE}\n[published]\nstep_s = 0\n"), &[]);
    assert_has(&e, &["field `published.step_s`", "positive"]);
}
