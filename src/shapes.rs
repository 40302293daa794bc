//! The JSON documents `--json` prints on stdout, one type per command, fields in the order printed (docs/cli.md
//! describes them; tests/cli.rs checks their keys).

use crate::seeds::SeedStats;
use crate::ui::Object;
use rlsim_reports::CompareRow;
use rlsim_sim::profile::HardwareProfile;
use rlsim_sim::report::Summary;
use serde::Serialize;
use std::path::Path;

/// `run`: the summary.json of the scenario's own seed, and with `--seeds N` (N > 1) a `seeds` object.
#[derive(Serialize)]
pub struct Run<'a> {
    #[serde(flatten)]
    pub summary: &'a Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeds: Option<SeedStats>,
}

/// `exec`: the summary.json, and the mean verifier reward of each train step.
#[derive(Serialize)]
pub struct Exec<'a> {
    #[serde(flatten)]
    pub summary: &'a Summary,
    pub step_rewards: &'a [f32],
}

/// `compare`: compare.csv's rows, the pipelines the worker layout ruled out, the noise note, the output folder.
#[derive(Serialize)]
pub struct Compare<'a> {
    pub rows: &'a [CompareRow],
    pub skipped: &'a [String],
    pub noise_note: Option<String>,
    pub out: &'a Path,
}

/// `sweep` and `merge`: sweep.csv's rows (`point`, `values` = the varied keys, then the summary columns).
#[derive(Serialize)]
pub struct Sweep<'a> {
    pub points: Vec<crate::sweep::PointJson>,
    pub out: &'a Path,
}

/// `check`: what the scenario resolves to (the line `check` prints, as fields).
#[derive(Serialize)]
pub struct Check<'a> {
    pub scenario: &'a Path,
    pub name: &'a str,
    pub ok: bool,
    pub model: &'a str,
    pub weight_gb: f64,
    pub nodes: u32,
    pub gpus_per_node: u32,
    pub gpu: &'a str,
    pub gpus: u32,
    pub pipeline: String,
    pub rollout_workers: usize,
    pub rollout_tp: String,
    pub train_gpus: u32,
    pub lendable_workers: usize,
    pub steps: u32,
    /// The scenario's prompts per step (a coarse-grained run simulates prompts_per_step / coarsen of them).
    pub prompts_per_step: u32,
    pub samples_per_prompt: u32,
    /// `workload.coarsen` (1: exact).
    pub coarsen: u32,
    pub framework: &'a str,
    pub cuda_graphs: bool,
}

/// `profile`: the fitted profile (the TOML written, as JSON) and where it was written.
#[derive(Serialize)]
pub struct Profile<'a> {
    #[serde(flatten)]
    pub profile: &'a HardwareProfile,
    pub out: &'a Path,
}

/// One `validate` comparison run: did both backends make the same decisions, and what was printed about it.
#[derive(Serialize)]
pub struct Decisions {
    pub run: String,
    pub same_decisions: bool,
    pub verdict: String,
}

/// `validate`: validate.csv's rows, each run's decision check, the output folder.
#[derive(Serialize)]
pub struct Validate<'a> {
    pub rows: &'a [rlsim_exec::validate::RepeatedRow],
    pub decisions: &'a [Decisions],
    pub out: &'a Path,
}

/// `fidelity`: fidelity.csv's rows and the totals printed under them.
#[derive(Serialize)]
pub struct Fidelity<'a> {
    pub rows: Vec<Object>,
    pub cases: usize,
    pub comparisons: usize,
    pub mean_abs_error: f64,
    pub outside: usize,
    pub out: &'a Path,
}

/// One `bench` row.
#[derive(Serialize)]
pub struct BenchRow {
    pub scenario: String,
    pub pipeline: String,
    pub gpus: u32,
    pub steps: u32,
    pub events: u64,
    pub best_wall_s: f64,
    pub median_wall_s: f64,
    pub mevents_per_s: f64,
    pub sim_s_per_wall_s: f64,
}

/// One `bench --setup-only` row.
#[derive(Serialize)]
pub struct BenchSetupRow {
    pub scenario: String,
    pub pipeline: String,
    pub gpus: u32,
    pub workers: usize,
    pub best_setup_ms: f64,
    pub median_setup_ms: f64,
}

/// `trace import` and `trace synth`: the trace written.
#[derive(Serialize)]
pub struct TraceWritten<'a> {
    pub out: &'a Path,
    pub steps: usize,
    pub samples: usize,
}

/// Token-length statistics of a trace.
#[derive(Serialize)]
pub struct Lengths {
    pub mean: f64,
    pub p50: u32,
    pub p90: u32,
    pub p99: u32,
    pub max: u32,
}

/// `trace stats`.
#[derive(Serialize)]
pub struct TraceStats<'a> {
    pub trace: &'a Path,
    pub steps: usize,
    pub groups: usize,
    pub samples: usize,
    pub response_tokens: Lengths,
    pub prompt_tokens: Lengths,
}
