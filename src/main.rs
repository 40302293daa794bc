//! The `rlsim` command line: run, compare, sweep and check scenarios; run them on real devices; traces; benchmarks.

mod completions;
mod presets;
mod search;
mod seeds;
mod shapes;
mod sweep;
mod ui;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use rlsim_exec::device::{DeviceChoice, DeviceSpec};
use rlsim_exec::runtime::execute;
use rlsim_reports as reports;
use rlsim_reports::output::Staged;
use rlsim_sim::scenario::{PipelineKind, Scenario, ScenarioError, PIPELINE_TYPES};
use rlsim_sim::simulator::{simulate, simulate_recording, Recording};
use rlsim_sim::trace::{
    looks_like_search_r1, read_csv_trace, read_polytrace, read_search_r1, write_csv_trace, Trace, TraceGroup,
};
use rlsim_sim::workload::LengthDist;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "rlsim",
    version,
    about = "Which RL post-training pipeline trains fastest on your model, GPUs and rollout lengths — and why.",
    after_help = "Results go to stdout, status (\"wrote …\", notes) and progress to stderr; --json and --quiet work on every \
                  command (JSON shapes: docs/cli.md).\nStart with: rlsim run scenarios/quickstart.toml"
)]
struct Cli {
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: Cmd,
    /// Scale every PNG/SVG plot this command draws (run, compare, sweep, exec, fidelity, plot): 2 draws the same
    /// figures at twice the pixel size, text and lines included (for slides and print); 0.5 to 4.
    #[arg(long, global = true, default_value_t = 1.0, value_name = "X", value_parser = plot_scale)]
    plot_scale: f64,
}

/// Flags every command takes: what goes to stdout and stderr.
#[derive(Args, Clone, Copy, Default)]
struct OutputArgs {
    /// Print the result as one JSON document on stdout and nothing else there (shapes: docs/cli.md); status and
    /// progress still go to stderr.
    #[arg(long, global = true, help_heading = "Output")]
    json: bool,
    /// No status lines ("wrote …", notes) and no progress bars on stderr; errors are still printed there.
    #[arg(short, long, global = true, help_heading = "Output")]
    quiet: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Simulate one scenario: print a summary ending in a verdict (what bounds the run and the next knob to try,
    /// docs/bottleneck.md) and write summary.json, steps.csv, timeline.csv, timeline.json.gz (Perfetto), plots and
    /// scenario.resolved.toml to --out (default runs/<scenario name>/).
    #[command(after_help = RUN_EXAMPLES)]
    Run {
        /// Scenario file (TOML; every field: docs/scenario-reference.md).
        scenario: PathBuf,
        /// Output folder (default runs/<scenario name>/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also run the scenario on the seeds after its own (seed + 1, …, + N − 1) and print the mean, lowest and
        /// highest tokens/s and mean step time; the files written are those of the scenario's own seed.
        #[arg(long, default_value_t = 1, value_parser = at_least_one)]
        seeds: usize,
        /// Skip the PNG/SVG plots.
        #[arg(long)]
        no_plots: bool,
        #[command(flatten)]
        timeline: TimelineArg,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Simulate several scenarios, or one scenario under several pipeline types with everything else equal, and
    /// print throughput with the speedup over the first, staleness, off-policy tokens, pool busy fractions and the
    /// bottleneck, with each run's verdict; writes compare.csv, compare.png/.svg and each run's files under --out.
    #[command(after_help = COMPARE_EXAMPLES)]
    Compare {
        /// Scenario files to compare (the first is the baseline of the speedups).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Pipeline type to run each scenario with (repeatable); default: each scenario's own.
        #[arg(long = "pipeline", value_name = "TYPE", value_parser = clap::builder::PossibleValuesParser::new(PIPELINE_TYPES))]
        pipelines: Vec<String>,
        /// Run each row on this many seeds (the scenario's seed, then +1, +2, …) and report the mean tokens/s with
        /// its range, and a note when the two fastest are within that noise; run files are written for the first.
        #[arg(long, default_value_t = 1, value_parser = at_least_one)]
        seeds: usize,
        /// Output folder (default runs/compare-<first scenario name>/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Skip the PNG/SVG plots.
        #[arg(long)]
        no_plots: bool,
        #[command(flatten)]
        timeline: TimelineArg,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Print the JSON Schema of the scenario format (point your editor's TOML schema support at it).
    Schema,
    /// Re-draw the plots of a run folder, a compare folder (and its runs) or a sweep folder (e.g. after `merge`)
    /// from its CSV/JSON files.
    Plot {
        /// A folder written by run, exec, compare, sweep or merge.
        dir: PathBuf,
    },
    /// Simulate the cartesian product of `--vary` values in parallel, print a table (the varied values, tokens/s,
    /// speedup over the first point, mean step time, bottleneck) and write sweep.csv (one row per point: the varied
    /// keys, then the summary). `--shard I/N` runs the I-th of N slices (0 ≤ I < N) for array jobs; join the shards
    /// with `rlsim merge`.
    #[command(after_help = SWEEP_EXAMPLES)]
    Sweep {
        /// Scenario file every point starts from.
        scenario: PathBuf,
        /// A dotted key and its values, e.g. workload.prompts_per_step=64,128 (repeatable; the last varies fastest).
        #[arg(long = "vary", value_name = "KEY=V1,V2,...", required = true)]
        vary: Vec<String>,
        /// Points simulated at once (default: the cores).
        #[arg(short = 'j', long, value_parser = at_least_one)]
        jobs: Option<usize>,
        /// Run only slice I of N (0-based), e.g. --shard "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT".
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// Run every point on this many seeds (the scenario's seed, then +1, +2, …): tokens/s and mean step time
        /// become means, and sweep.csv gets the seed count and their ranges.
        #[arg(long, default_value_t = 1, value_parser = at_least_one)]
        seeds: usize,
        /// Output folder (default runs/sweep-<scenario name>/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Skip the PNG/SVG curves.
        #[arg(long)]
        no_plots: bool,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Find the pipeline and knobs (rollout tensor parallelism, rollout/train split, async/seamless staleness bound,
    /// partial over-provisioning and layout) with the highest trained-token throughput for this cluster and
    /// workload; print the best and write them as ready-to-run scenario files.
    #[command(after_help = SEARCH_EXAMPLES)]
    Search {
        /// Scenario file: its cluster, model and workload stay; its pipeline is the first configuration tried.
        scenario: PathBuf,
        /// Most configurations to screen. The input scenario and each pipeline type's defaults (`--set
        /// pipeline.type=X`) are always tried and count against it (a smaller budget is raised to cover them); the
        /// rest is split fairly across the pipeline types.
        #[arg(long, default_value_t = 64, value_parser = at_least_one)]
        budget: usize,
        /// Steps of the screening runs (default max(3, steps/4), at most the scenario's steps): each configuration's
        /// full run is stopped after them. The top third (at least 3), the input scenario and the pipeline defaults
        /// are then carried on to the full steps (or rerun from the start beyond a memory budget: the same result).
        #[arg(long, value_parser = at_least_one)]
        screen_steps: Option<usize>,
        /// Seeds of the confirmation runs (the scenario's seed + 0, 1, …): every confirmed configuration runs on
        /// the first; the input scenario, the pipeline defaults and the leaders by mean (the best max(--top, 3), and
        /// any within 5 % of the last of them) on all. Confirmed configurations are ranked by their mean trained
        /// tokens/s.
        #[arg(long, default_value_t = 3, value_parser = at_least_one)]
        seeds: usize,
        /// Keep only configurations whose samples are at most this many policy versions stale in every run (async
        /// and seamless are only tried with bounds within it).
        #[arg(long)]
        max_staleness: Option<u32>,
        /// Keep only configurations whose off-policy token fraction (trained tokens generated by an older policy)
        /// is at most this in every run, a fraction from 0 to 1.
        #[arg(long, value_name = "FRACTION", value_parser = fraction)]
        max_off_policy: Option<f64>,
        /// How many of the best to print and write.
        #[arg(long, default_value_t = 5, value_parser = at_least_one)]
        top: usize,
        /// Simulations at once (default: the cores).
        #[arg(short = 'j', long, value_parser = at_least_one)]
        jobs: Option<usize>,
        /// Output folder (default runs/search-<scenario name>/).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Join the sweep.csv of shard folders into one, ordered by point (the file an unsharded sweep writes).
    #[command(after_help = "Example:\n  rlsim merge runs/sweep/shard-* --out runs/sweep/all")]
    Merge {
        /// Shard folders written by `rlsim sweep --shard I/N`, in any order; every shard of the sweep once.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Folder for the merged sweep.csv and sweep.json.
        #[arg(long)]
        out: PathBuf,
    },
    /// List the built-in models, GPUs and frameworks a scenario can name (`[model] preset`, `[cluster] gpu`,
    /// `[framework] preset`), with their figures and aliases.
    #[command(after_help = "Examples:\n  rlsim presets\n  rlsim presets models\n  rlsim presets frameworks --json")]
    Presets {
        /// Only these kinds (default: all three).
        #[arg(value_enum)]
        kinds: Vec<presets::Kind>,
    },
    /// Validate a scenario (after overrides) without running it.
    Check {
        /// Scenario file to check.
        scenario: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Work with workload traces.
    Trace {
        #[command(subcommand)]
        command: TraceCmd,
    },
    /// Run a scenario on real devices (the same policies, executed for real) and write the same files as `run`,
    /// with backend "exec".
    Exec {
        /// Scenario file (its model must be the real backend's transformer, e.g. scenarios/exec-tiny.toml).
        scenario: PathBuf,
        /// cpu (a thread per worker); cuda (one worker per visible GPU); cuda:N (every worker on GPU N); or
        /// cuda:A,B,... (one GPU per worker, repeats share). CUDA needs a build with --features cuda.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Output folder (default runs/<scenario name>-exec/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Skip the PNG/SVG plots.
        #[arg(long)]
        no_plots: bool,
        #[command(flatten)]
        timeline: TimelineArg,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Measure this device with the scenario's model (decode, prefill, train passes, weight sync, switch) and fit
    /// the simulator's cost parameters into a profile a scenario can name with `[hardware] profile = "..."`.
    Profile {
        /// Scenario file whose model (and layout) is measured.
        scenario: PathBuf,
        /// cpu, or cuda:N (needs a build with --features cuda).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Where to write the profile (TOML).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Run the simulator (with a measured profile) and the real backend on the same scenario and print simulated
    /// vs measured step time, throughput, rollout and train time, bubble fraction and staleness; writes
    /// validate.csv and both runs' files under --out.
    Validate {
        /// Scenario file (its model must be the real backend's transformer, e.g. scenarios/exec-tiny.toml).
        scenario: PathBuf,
        /// cpu (a thread per worker); cuda (one worker per visible GPU); cuda:N (every worker on GPU N); or
        /// cuda:A,B,... (one GPU per worker, repeats share). CUDA needs a build with --features cuda.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Pipeline type(s) to validate (repeatable); default: the scenario's own.
        #[arg(long = "pipeline", value_name = "TYPE", value_parser = clap::builder::PossibleValuesParser::new(PIPELINE_TYPES))]
        pipelines: Vec<String>,
        /// Profile to give the simulator; default: the scenario's `[hardware] profile`, or measure one now.
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Measure a fresh profile even if the scenario names one.
        #[arg(long)]
        reprofile: bool,
        /// Which cost model the simulator predicts with: `profiled` (a profile fitted on this device for this model)
        /// or `analytic` (the datasheet-style model, given device figures measured by microbenchmarks: tests how
        /// the model scales with batch, context, model size and workers).
        #[arg(long, default_value = "profiled", value_parser = ["profiled", "analytic"])]
        model: String,
        /// Device figures for --model analytic (a file written by an earlier validate); default: measure now.
        #[arg(long)]
        figures: Option<PathBuf>,
        /// Fail (exit 1) when a timing metric's median error exceeds this fraction (e.g. 0.10), besides a broken
        /// promise or different decisions, which always fail.
        #[arg(long, value_name = "FRACTION", value_parser = fraction)]
        tolerance: Option<f64>,
        /// Repeat each comparison this many times (re-profiling before each run when profiling) and report the
        /// median error with its range: on a noisy machine one run says little.
        #[arg(long, default_value_t = 1, value_parser = at_least_one)]
        repeat: usize,
        /// Output folder (default runs/validate-<scenario name>/).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Simulate every published measurement in scenarios/fidelity/ (each file's `[published]` table) and print
    /// published against simulated per step, per phase and per speed-up with the relative error; writes
    /// fidelity.csv and fidelity.png/.svg (simulated against published, y = x) to --out (default runs/fidelity/).
    /// Exits 1 when an error exceeds the tolerance its file states.
    Fidelity {
        /// Folder of fidelity scenarios.
        #[arg(default_value = "scenarios/fidelity")]
        dir: PathBuf,
        /// Output folder (default runs/fidelity/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Skip the PNG/SVG plot.
        #[arg(long)]
        no_plots: bool,
        /// What if: apply these overrides to every case (e.g. --set training.mfu=0.5); the tolerances stay.
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Time the simulator on a scenario: events per second and wall time (release builds give the real figure).
    Bench {
        /// Scenario to time (default scenarios/dapo-32b-h800x64.toml).
        #[arg(default_value = "scenarios/dapo-32b-h800x64.toml")]
        scenario: PathBuf,
        /// RL steps to simulate.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
        /// Timed repetitions (the best and the median are reported).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        repeat: u32,
        /// Pipeline type(s) to time (repeatable); default: the scenario's own.
        #[arg(long = "pipeline", value_name = "TYPE", value_parser = clap::builder::PossibleValuesParser::new(PIPELINE_TYPES))]
        pipelines: Vec<String>,
        /// Override any field by its dotted path (repeatable), e.g. --set cluster.nodes=512 to time a bigger
        /// cluster; --steps and --pipeline win over the same fields set here.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Time only the setup, not a run: loading and validating the scenario, then the cluster-wide cost
        /// estimates of a first step (every worker's engine and switches, the train all-reduce, the weight sync).
        #[arg(long)]
        setup_only: bool,
    },
    /// Print a shell completion script on stdout.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions {
        /// The shell to complete in.
        shell: clap_complete::aot::Shell,
    },
    /// Write the man pages (rlsim.1 and one per command, e.g. rlsim-run.1) to --out, or print rlsim.1 on stdout.
    #[command(after_help = "Example:\n  rlsim man --out ~/.local/share/man/man1 && man rlsim-sweep")]
    Man {
        /// Folder for the pages (created if needed).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

const RUN_EXAMPLES: &str = "Examples:
  rlsim run scenarios/quickstart.toml
  rlsim run scenarios/quickstart.toml --set pipeline.type=disaggregated --steps 20 --out runs/q-disagg
  rlsim run scenarios/quickstart.toml --seeds 5 --no-plots      # mean and range over 5 seeds
  rlsim run scenarios/quickstart.toml --json --quiet | jq .tokens_per_s";

const COMPARE_EXAMPLES: &str = "Examples:
  rlsim compare scenarios/dapo-32b-h800x64.toml --pipeline colocated --pipeline async --seeds 3
  rlsim compare scenarios/quickstart.toml scenarios/longtail-7b-h100x16.toml --steps 10";

const SWEEP_EXAMPLES: &str = "Examples:
  rlsim sweep scenarios/quickstart.toml --vary pipeline.type=colocated,disaggregated \\
      --vary workload.prompts_per_step=32,64,128
  rlsim sweep scenarios/quickstart.toml --vary pipeline.async.max_staleness=0,1,2 --set pipeline.type=async --seeds 3
  rlsim sweep scenarios/dapo-32b-h800x64.toml --vary workload.prompts_per_step=256,512 --shard 0/4 --out runs/s0
(sharding on Slurm and Kubernetes: docs/sweeps.md)";

const SEARCH_EXAMPLES: &str = "Examples:
  rlsim search scenarios/dapo-32b-h800x64.toml --max-staleness 1 --max-off-policy 0.5
  rlsim search scenarios/quickstart.toml --budget 16 --steps 4 --json --quiet | jq .best";

const COMPLETIONS_EXAMPLES: &str = "Examples:
  rlsim completions bash > ~/.local/share/bash-completion/completions/rlsim
  rlsim completions zsh > \"${fpath[1]}/_rlsim\"
  rlsim completions fish > ~/.config/fish/completions/rlsim.fish";

/// `--timeline`: how much of the run the timeline files hold.
#[derive(Args, Clone, Copy)]
struct TimelineArg {
    /// Detail of timeline.csv and the Perfetto trace timeline.json.gz: none (neither), steps (a trace of each
    /// step's window and phases), workers (+ each worker's activity and its KV-cache, batch, queue and weights-version
    /// counters), trajectories (+ every trajectory's generation, on lanes per worker, with arrows where one moved to
    /// another worker; timeline.csv gets its per-trajectory rows, which the response-length plot needs).
    #[arg(long = "timeline", value_name = "DETAIL", default_value = "workers", value_parser = timeline_detail())]
    detail: reports::TimelineDetail,
}

#[derive(Args, Clone, Default)]
struct Overrides {
    /// Override the scenario's seed (0 to 2^63 − 1: it goes through the scenario's TOML, whose integers are signed
    /// 64-bit).
    #[arg(long, value_parser = clap::value_parser!(u64).range(..=i64::MAX as u64))]
    seed: Option<u64>,
    /// RL steps to run (default: the scenario's): shorthand for --set workload.steps=N, validated like the file.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    steps: Option<u32>,
    /// Override any field by its dotted path, validated like the file (repeatable), e.g.
    /// --set pipeline.type=disaggregated --set workload.prompts_per_step=64
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl Overrides {
    fn list(&self) -> Vec<String> {
        let mut v = self.set.clone();
        if let Some(steps) = self.steps {
            v.push(format!("workload.steps={steps}"));
        }
        if let Some(seed) = self.seed {
            v.push(format!("seed={seed}"));
        }
        v
    }
}

#[derive(Subcommand)]
enum TraceCmd {
    /// Convert PolyTrace packed_lengths_step_*.jsonl or Search-R1 multiturn_workload_step_*.jsonl files (or folders
    /// of them) into rlsim's CSV trace format (multi-turn traces get a `turns` column).
    Import {
        /// PolyTrace or Search-R1 JSONL files, or folders of them.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// The CSV trace to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Generate a CSV trace by sampling published length quantiles (log-linear between points).
    #[command(
        after_help = "Example:\n  rlsim trace synth --response-quantiles 0:2,0.5:465,0.99:2711,1:10112 \\\n      --prompt-quantiles 0:86,1:617 --steps 4 --groups 64 --samples 8 --out traces/synth.csv"
    )]
    Synth {
        /// Response-length quantiles as q:tokens pairs from 0 to 1, e.g. 0:2,0.5:465,0.99:2711,1:10112
        #[arg(long)]
        response_quantiles: String,
        /// Prompt-length quantiles, same form.
        #[arg(long)]
        prompt_quantiles: String,
        /// RL steps in the trace.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
        /// Prompt groups per step.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        groups: u32,
        /// Responses per prompt group.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        samples: u32,
        /// Seed of the sampling (same seed, same trace).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The CSV trace to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print length statistics of a CSV trace (samples, prompt and response quantiles).
    Stats {
        /// The CSV trace to read.
        trace: PathBuf,
    },
}

/// `--timeline`: one of the listed details (listed in `--help` and in the error).
fn timeline_detail() -> impl clap::builder::TypedValueParser<Value = reports::TimelineDetail> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(reports::TimelineDetail::NAMES)
        .map(|s| s.parse::<reports::TimelineDetail>().expect("a listed value"))
}

/// A fraction from 0 to 1 (`--max-off-policy`).
fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        Ok(x) => Err(format!("expected a fraction from 0 to 1, got {x}")),
        Err(e) => Err(format!("expected a fraction from 0 to 1 ({e})")),
    }
}

/// A count that must be at least 1 (`-j 0`, `--top 0` … would do nothing, or divide by zero).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("expected a whole number ≥ 1 ({e})")),
    }
}

/// A `--plot-scale` value: a number from 0.5 to 4.
fn plot_scale(text: &str) -> Result<f64, String> {
    let v = text.parse::<f64>().map_err(|e| format!("expected a number ({e})"))?;
    reports::plots::PlotOptions::with_scale(v).map(|o| o.scale)
}

/// Most samples `trace synth` writes (about 20 bytes each on disk).
const MAX_SYNTH_SAMPLES: u64 = 100_000_000;

/// The simulations at once when `-j` is not given: the cores.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn main() {
    let cli = Cli::parse();
    ui::init(ui::Mode { json: cli.output.json, quiet: cli.output.quiet });
    // Before any thread or candle op exists: the real backend's CPU workers run one thread each.
    if let Cmd::Exec { device, .. } | Cmd::Profile { device, .. } | Cmd::Validate { device, .. } = &cli.command {
        if let Ok(d) = device.parse::<DeviceChoice>() {
            rlsim_exec::device::one_thread_per_worker(d.first());
        }
    }
    if let Err(e) = dispatch(cli) {
        eprintln!("error: {}", error_chain(&e));
        std::process::exit(1);
    }
}

/// The error and its causes, skipping a cause whose text the message already includes.
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if !text.contains(&c) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&c);
        }
    }
    text
}

/// What a run records for the files `detail` writes: below `trajectories` no file shows a trajectory, so the report
/// is computed as the run goes and only the workers' activity spans are kept (memory flat over the run's steps).
fn recording_for(detail: reports::perfetto::TimelineDetail) -> Recording {
    if detail >= reports::perfetto::TimelineDetail::Trajectories {
        Recording::FULL
    } else {
        Recording::WORKERS
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    let plots = reports::plots::PlotOptions { scale: cli.plot_scale };
    match cli.command {
        Cmd::Run { scenario, out, seeds, no_plots, timeline, overrides } => {
            let s = Scenario::load(&scenario, &overrides.list())?;
            for note in s.advisories() {
                ui::status(format!("note: {}: {note}", scenario.display()));
            }
            let staged = Staged::new(&out.unwrap_or_else(|| Path::new("runs").join(&s.name)), "run")?;
            let run = simulate_recording(&s, recording_for(timeline.detail))
                .with_context(|| format!("simulating {}", scenario.display()))?;
            ui::text(&reports::summary_table(&run.report.summary));
            // The other seeds: only their summaries are kept.
            let stats = if seeds > 1 {
                let mut all = vec![run.report.summary.clone()];
                for r in sweep::simulate_all(&seeds::others(&s, seeds), cores())? {
                    all.push(r?);
                }
                let stats = seeds::SeedStats::of(&all);
                ui::text(&stats.table());
                Some(stats)
            } else {
                None
            };
            let resolved = s.resolved_toml();
            reports::write_run_detail(staged.path(), &run.report, &run.timeline, Some(&resolved), timeline.detail)?;
            if !no_plots {
                reports::plots::plot_run(staged.path(), &plots)?;
            }
            let dir = staged.commit()?;
            ui::status(format!("wrote {}", dir.display()));
            ui::json(|| Ok(shapes::Run { summary: &run.report.summary, seeds: stats }))?;
        }
        Cmd::Schema => ui::emit(&(serde_json::to_string_pretty(&rlsim_sim::scenario::json_schema())? + "\n")),
        Cmd::Plot { dir } => {
            let written = plot_dir(&dir, &plots)?;
            ui::status(format!("drew {} files in {}", written, dir.display()));
            ui::json(|| Ok(serde_json::json!({ "dir": dir, "files": written })))?;
        }
        Cmd::Compare { scenarios, pipelines, seeds, out, no_plots, timeline, overrides } => {
            // Every scenario is loaded (and checked) before anything is simulated or written.
            let mut loaded = Vec::new();
            let mut skipped = Vec::new();
            for path in &scenarios {
                let kinds: Vec<Option<&String>> =
                    if pipelines.is_empty() { vec![None] } else { pipelines.iter().map(Some).collect() };
                for kind in kinds {
                    let mut sets = overrides.list();
                    if let Some(k) = kind {
                        sets.push(format!("pipeline.type={k}"));
                    }
                    match Scenario::load(path, &sets) {
                        Ok(s) => loaded.push((path, s)),
                        // An explicit worker layout may rule a pipeline out: say so and compare the rest.
                        Err(ScenarioError::Field { field, message, .. })
                            if kind.is_some() && field == "cluster.workers" && pipelines.len() > 1 =>
                        {
                            let k = kind.expect("checked");
                            ui::status(format!("skipped {} as {k}: {message}", path.display()));
                            skipped.push(format!("{k} ({message})"));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if loaded.is_empty() {
                bail!("nothing to compare: every pipeline was ruled out by the worker layout: {}", skipped.join("; "));
            }
            let dir = out.unwrap_or_else(|| Path::new("runs").join(format!("compare-{}", loaded[0].1.name)));
            let staged = Staged::new(&dir, "compare")?;
            let mut summaries = Vec::new();
            let mut names = std::collections::BTreeSet::new();
            let bar = ui::progress(loaded.len() * seeds, "runs");
            for (path, s) in &loaded {
                bar.set_message(format!("{} as {}", s.name, s.pipeline.kind));
                let run = simulate_recording(s, recording_for(timeline.detail))
                    .with_context(|| format!("simulating {} as {}", path.display(), s.pipeline.kind))?;
                bar.inc(1);
                summaries.push(run.report.summary.clone());
                let name = format!("{}-{}", s.name, s.pipeline.kind);
                let mut unique = name.clone();
                let mut i = 2;
                while !names.insert(unique.clone()) {
                    unique = format!("{name}-{i}");
                    i += 1;
                }
                let run_dir = staged.path().join(&unique);
                std::fs::create_dir(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
                let resolved = s.resolved_toml();
                reports::write_run_detail(&run_dir, &run.report, &run.timeline, Some(&resolved), timeline.detail)?;
                if !no_plots {
                    reports::plots::plot_run(&run_dir, &plots)?;
                }
            }
            // The other seeds: only their summaries are kept.
            let extra: Vec<Scenario> = loaded.iter().flat_map(|(_, s)| seeds::others(s, seeds)).collect();
            bar.set_message("other seeds");
            let mut extra = sweep::simulate_all_with(&extra, cores(), &bar)?.into_iter();
            bar.finish_and_clear();
            let mut runs = Vec::with_capacity(summaries.len());
            for first in summaries {
                let mut r = vec![first];
                for _ in 1..seeds {
                    r.push(extra.next().expect("one summary per extra seed")?);
                }
                runs.push(r);
            }
            let rows = reports::compare_rows_seeded(&runs);
            ui::text(&reports::compare_table(&rows));
            let noise_note = reports::noise_note(&rows);
            if let Some(note) = &noise_note {
                ui::status(note);
            }
            reports::write_compare_csv(&staged.path().join("compare.csv"), &rows)?;
            if !no_plots {
                reports::plots::plot_compare(staged.path(), &rows, &plots)?;
            }
            let dir = staged.commit()?;
            ui::status(format!("wrote {}", dir.display()));
            ui::json(|| Ok(shapes::Compare { rows: &rows, skipped: &skipped, noise_note, out: &dir }))?;
        }
        Cmd::Check { scenario, overrides } => {
            let s = Scenario::load(&scenario, &overrides.list())?;
            for note in s.advisories() {
                ui::status(format!("note: {}: {note}", scenario.display()));
            }
            let rollout = s.cluster.workers.iter().filter(|w| w.start == rlsim_sim::cost::Role::Rollout).count();
            let train_gpus: u32 = s.cluster.with_tag("train").map(|w| w.gpu_count()).sum();
            let lendable = s
                .cluster
                .workers
                .iter()
                .filter(|w| w.start == rlsim_sim::cost::Role::Train && w.has_tag("rollout"))
                .count();
            let mut gpu_name = s.cluster.gpu.name.clone();
            if s.cluster.is_heterogeneous() {
                let mut names: Vec<&str> = s.cluster.workers.iter().map(|w| w.gpu.name.as_str()).collect();
                names.sort();
                names.dedup();
                gpu_name = format!("{gpu_name} (workers on {})", names.join(" + "));
            }
            let lend_note =
                if lendable > 0 { format!(" ({lendable} workers lendable to rollout)") } else { String::new() };
            ui::json(|| {
                Ok(shapes::Check {
                    scenario: &scenario,
                    name: &s.name,
                    ok: true,
                    model: &s.model.name,
                    weight_gb: s.model.weight_bytes() / 1e9,
                    nodes: s.cluster.nodes,
                    gpus_per_node: s.cluster.gpus_per_node,
                    gpu: &gpu_name,
                    gpus: s.total_gpus(),
                    pipeline: s.pipeline.kind.to_string(),
                    rollout_workers: rollout,
                    rollout_tp: s.rollout_tp_summary(),
                    train_gpus,
                    lendable_workers: lendable,
                    steps: s.workload.steps,
                    prompts_per_step: s.workload.prompts_per_step * s.workload.coarsen,
                    samples_per_prompt: s.workload.samples_per_prompt,
                    coarsen: s.workload.coarsen,
                    framework: &s.framework.name,
                    cuda_graphs: s.framework.cuda_graphs,
                })
            })?;
            ui::text(&format!(
                "{}: ok — {} ({} GB bf16) on {} node(s) × {} {} ({} GPUs), pipeline {}, {} rollout workers (tp={}), {} train GPUs{lend_note}, {} steps × {} prompts × {} samples{}, framework {} ({})\n",
                scenario.display(),
                s.model.name,
                s.model.weight_bytes() / 1e9,
                s.cluster.nodes,
                s.cluster.gpus_per_node,
                gpu_name,
                s.total_gpus(),
                s.pipeline.kind,
                rollout,
                s.rollout_tp_summary(),
                train_gpus,
                s.workload.steps,
                s.workload.prompts_per_step * s.workload.coarsen,
                s.workload.samples_per_prompt,
                if s.workload.coarsen > 1 {
                    format!(" (coarse-grained: {} simulated groups per step)", s.workload.prompts_per_step)
                } else {
                    String::new()
                },
                s.framework.name,
                if s.framework.cuda_graphs { "CUDA-graph decode" } else { "eager decode" },
            ));
        }
        Cmd::Trace { command } => trace_command(command)?,
        Cmd::Presets { kinds } => {
            let p = presets::collect(&kinds);
            ui::json(|| Ok(&p))?;
            ui::text(&presets::text(&p));
        }
        Cmd::Sweep { scenario, vary, jobs, shard, seeds, out, no_plots, overrides } => {
            let axes = sweep::parse_axes(&vary)?;
            let shard = shard.as_deref().map(sweep::parse_shard).transpose()?;
            let name = Scenario::load(&scenario, &overrides.list())?.name;
            let dir = out.unwrap_or_else(|| Path::new("runs").join(format!("sweep-{name}")));
            let jobs = jobs.unwrap_or_else(cores);
            // A shard draws no curves: it holds only some points; draw them after `merge` with the full file.
            let plot = (!no_plots && shard.is_none()).then_some(&plots);
            let n = sweep::sweep(&scenario, &axes, &overrides.list(), jobs, shard, seeds, &dir, plot)?;
            sweep_result(&dir, n)?;
        }
        Cmd::Search {
            scenario,
            budget,
            screen_steps,
            seeds,
            max_staleness,
            max_off_policy,
            top,
            jobs,
            out,
            overrides,
        } => {
            let input = Scenario::load(&scenario, &overrides.list())?;
            let name = input.name.clone();
            let staged =
                Staged::new(&out.unwrap_or_else(|| Path::new("runs").join(format!("search-{name}"))), "search")?;
            let plan = search::candidates(&scenario, &overrides.list(), max_staleness)?;
            let (total, infeasible) = (plan.total(), plan.infeasible);
            if input.workload.coarsen > 1 {
                ui::status(format!(
                    "note: searching a coarse-grained scenario (workload.coarsen = {}): {} configurations failed only its checks (too few groups per engine, or KV cache for too few copies) and count as infeasible, and its error differs between configurations (it grows as groups per engine shrink); confirm the winner with an exact run",
                    input.workload.coarsen, plan.coarse_rejected
                ));
            }
            let (cands, note) = search::select(plan, budget);
            if let Some(note) = note {
                ui::status(note);
            }
            let options = search::Options {
                screen_steps: screen_steps.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
                seeds: u32::try_from(seeds).unwrap_or(u32::MAX),
                top,
                max_staleness,
                max_off_policy,
                jobs: jobs.unwrap_or_else(cores),
            };
            let outcome = search::evaluate(&scenario, &overrides.list(), cands, &options)?;
            let text = search::write(staged.path(), &outcome, top)?;
            let dir = staged.commit()?;
            ui::text(&text);
            if let Some(w) = search::noise_warning(&outcome.rows) {
                ui::status(w.trim_end());
            }
            let o = &outcome;
            let seeded = if o.seeds > 1 {
                format!(", {} of them (the input, the defaults and the leaders) on {} seeds", o.seeded, o.seeds)
            } else {
                String::new()
            };
            let tried = format!(
                "{} of {total} configurations simulated ({infeasible} more infeasible{}{}): all screened at {} steps, \
                 {} confirmed at {} steps{seeded}",
                o.screened,
                if max_staleness.is_some() {
                    format!(", {} over --max-staleness", o.over_staleness)
                } else {
                    String::new()
                },
                if max_off_policy.is_some() {
                    format!(", {} over --max-off-policy", o.over_off_policy)
                } else {
                    String::new()
                },
                o.screen_steps,
                o.confirmed,
                o.steps,
            );
            ui::text(&format!("{tried}\n"));
            ui::status(format!("wrote search.csv and top-N.toml to {}", dir.display()));
            ui::json(|| search::json(&outcome, top, &dir, total, infeasible, &tried))?;
        }
        Cmd::Merge { shards, out } => {
            let n = sweep::merge(&shards, &out)?;
            sweep_result(&out, n)?;
        }
        Cmd::Exec { scenario, device, out, no_plots, timeline, overrides } => {
            let s = Scenario::load(&scenario, &overrides.list())?;
            let device: DeviceChoice = device.parse().map_err(anyhow::Error::msg)?;
            let staged =
                Staged::new(&out.unwrap_or_else(|| Path::new("runs").join(format!("{}-exec", s.name))), "exec")?;
            let spinner = ui::spinner(format!("running {} on {device}, {} steps", s.name, s.workload.steps));
            let run =
                execute(&s, device.clone()).with_context(|| format!("running {} on {device}", scenario.display()));
            spinner.finish_and_clear();
            let run = run?;
            ui::text(&reports::summary_table(&run.report.summary));
            let rewards: Vec<String> = run.step_rewards.iter().map(|r| format!("{r:.3}")).collect();
            ui::text(&format!("mean reward per step: {}\n", rewards.join(" ")));
            let resolved = s.resolved_toml();
            reports::write_run_detail(staged.path(), &run.report, &run.timeline, Some(&resolved), timeline.detail)?;
            if !no_plots {
                reports::plots::plot_run(staged.path(), &plots)?;
            }
            let dir = staged.commit()?;
            ui::status(format!("wrote {}", dir.display()));
            ui::json(|| Ok(shapes::Exec { summary: &run.report.summary, step_rewards: &run.step_rewards }))?;
        }
        Cmd::Profile { scenario, device, out, overrides } => {
            // The profile the scenario names (perhaps the one being replaced) plays no part in measuring.
            let s = Scenario::load_unprofiled(&scenario, &overrides.list())?;
            let device: DeviceSpec = device.parse().map_err(anyhow::Error::msg)?;
            // Where it will be written is checked before minutes of measuring.
            reports::output::temp_beside(&out)?;
            let t0 = Instant::now();
            let spinner = ui::spinner(format!("profiling {device} with {}", s.name));
            // One device measured alone: the profile assumes each of the run's workers has a GPU of its own.
            let p = rlsim_exec::profile::measure(&s, device, 1).map_err(anyhow::Error::msg);
            spinner.finish_and_clear();
            let p = p?;
            let header = format!(
                "Measured by `rlsim profile {} --device {device}` in {:.0} s.\nName it from a scenario: [hardware] profile = \"<path relative to the scenario>\"",
                scenario.display(),
                t0.elapsed().as_secs_f64()
            );
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            reports::output::write_file_atomic(&out, p.to_toml(&header).as_bytes())?;
            ui::text(&profile_table(&p));
            ui::status(format!("wrote {}", out.display()));
            ui::json(|| Ok(shapes::Profile { profile: &p, out: &out }))?;
        }
        Cmd::Validate {
            scenario,
            device,
            pipelines,
            profile,
            reprofile,
            model,
            figures,
            tolerance,
            repeat,
            out,
            overrides,
        } => {
            let analytic = model == "analytic";
            let options =
                ValidateOptions { profile, reprofile, analytic, figures, tolerance, repeat: repeat.max(1), out };
            validate(&scenario, &device, &pipelines, options, &overrides)?
        }
        Cmd::Bench { scenario, steps, repeat, pipelines, set, setup_only } => {
            if setup_only {
                bench_setup(&scenario, repeat.max(1), &pipelines, &set)?
            } else {
                bench(&scenario, steps, repeat.max(1), &pipelines, &set)?
            }
        }
        Cmd::Fidelity { dir, out, no_plots, overrides } => {
            let out = out.unwrap_or_else(|| PathBuf::from("runs/fidelity"));
            if !fidelity(&dir, &out, (!no_plots).then_some(&plots), &overrides.list())? {
                std::process::exit(1);
            }
        }
        Cmd::Completions { shell } => {
            ui::emit(&completions::completion_script(&mut <Cli as clap::CommandFactory>::command(), shell)?)
        }
        Cmd::Man { out: None } => ui::emit(&completions::man_page(<Cli as clap::CommandFactory>::command())?),
        Cmd::Man { out: Some(dir) } => {
            let pages = completions::write_man_pages(<Cli as clap::CommandFactory>::command(), &dir)?;
            ui::status(format!("wrote {} man pages to {}", pages.len(), dir.display()));
            ui::json(|| Ok(serde_json::json!({ "out": dir, "pages": pages })))?;
        }
    }
    Ok(())
}

/// What `sweep` and `merge` print: the points table, then where the file is (or the points as JSON).
fn sweep_result(dir: &Path, points: usize) -> Result<()> {
    let csv = dir.join("sweep.csv");
    ui::text(&sweep::table(&csv)?);
    ui::status(format!("{points} points → {}", csv.display()));
    ui::json(|| Ok(shapes::Sweep { points: sweep::points_json(&csv)?, out: dir }))
}

/// Re-draws a run folder's plots, or a compare folder's comparison and each run inside it. Returns files drawn.
fn plot_dir(dir: &Path, plots: &reports::plots::PlotOptions) -> Result<usize> {
    let mut written = 0;
    if dir.join("summary.json").exists() {
        written += reports::plots::plot_run(dir, plots)?.len();
    }
    let compare = dir.join("compare.csv");
    if compare.exists() {
        let rows = reports::plots::read_compare_csv(&compare)?;
        written += reports::plots::plot_compare(dir, &rows, plots)?.len();
        let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("summary.json").exists())
            .collect();
        subdirs.sort();
        for sub in subdirs {
            written += reports::plots::plot_run(&sub, plots)?.len();
        }
    }
    let sweep_csv = dir.join("sweep.csv");
    if sweep_csv.exists() {
        written += sweep::plot_from_csv(dir, plots)?;
    }
    if written == 0 {
        bail!("{}: no summary.json, compare.csv or sweep.csv to plot", dir.display());
    }
    Ok(written)
}

fn profile_table(p: &rlsim_sim::profile::HardwareProfile) -> String {
    let us = |s: f64| format!("{:.3}", s * 1e6);
    let rows = vec![
        vec![
            "decode iteration".to_string(),
            us(p.decode_overhead_s),
            format!("{} per seq + {} per context token", us(p.decode_s_per_seq), us(p.decode_s_per_context_token)),
        ],
        vec![
            "prefill".to_string(),
            "0".to_string(),
            format!("{} per seq + {} per token", us(p.prefill_s_per_seq), us(p.prefill_s_per_token)),
        ],
        vec![
            "log-prob pass".to_string(),
            us(p.logprob_overhead_s),
            format!("{} per padded token", us(p.logprob_s_per_token)),
        ],
        vec!["update".to_string(), us(p.update_overhead_s), format!("{} per padded token", us(p.update_s_per_token))],
        vec!["weight sync".to_string(), us(p.sync_s), String::new()],
        vec!["switch".to_string(), us(p.switch_s), String::new()],
        vec!["gradient all-reduce (2 ranks)".to_string(), us(p.allreduce_s), String::new()],
    ];
    format!("{}: {}\n{}", p.device, p.model, reports::text_table(&["operation", "fixed µs", "variable µs"], &rows))
}

/// The device figures as a table (units as a reader expects them).
fn figures_table(f: &rlsim_exec::figures::DeviceFigures) -> String {
    let elementwise = |e: rlsim_sim::framework::Elementwise| {
        format!(
            "{:.0} + {:.1}·hidden + ({:.2}·heads + {:.3}·hidden)·context ns per token; {:.0} ns·heads per \
             sequence; {:.0} ns per token outside the layers",
            e.token_ns, e.hidden_ns, e.head_context_ns, e.hidden_context_ns, e.sequence_head_ns, e.outside_token_ns
        )
    };
    let rows = vec![
        vec!["matmul (f32)".to_string(), format!("{:.1} GFLOP/s", f.matmul_gflops)],
        vec!["memory read".to_string(), format!("{:.1} GB/s", f.read_gbytes_per_s)],
        vec!["memory copy".to_string(), format!("{:.1} GB/s", f.copy_gbytes_per_s)],
        vec![
            "weight stream (4-row matmul)".to_string(),
            f.weight_stream_gbytes_per_s
                .iter()
                .map(|[mb, r]| format!("{r:.1} GB/s at {mb} MB"))
                .collect::<Vec<_>>()
                .join(", "),
        ],
        vec!["decode iteration, fixed".to_string(), format!("{:.1} µs", f.iteration_s * 1e6)],
        vec!["decode, per layer".to_string(), format!("{:.1} µs", f.layer_s * 1e6)],
        vec![
            "decode, per sequence".to_string(),
            format!("{:.1} µs + {:.1} µs per layer", f.seq_s * 1e6, f.seq_layer_s * 1e6),
        ],
        vec![
            "update, per micro-batch".to_string(),
            format!("{:.1} µs + {:.1} µs per layer", f.update_micro_batch_s * 1e6, f.update_layer_s * 1e6),
        ],
        vec!["outside the matmuls, per layer:".to_string(), String::new()],
        vec!["  log-prob pass".to_string(), elementwise(f.logprob_elementwise)],
        vec!["  update".to_string(), elementwise(f.update_elementwise)],
        vec!["  decode (per sequence)".to_string(), elementwise(f.decode_elementwise)],
    ];
    format!("{}: device figures\n{}", f.device, reports::text_table(&["figure", "value"], &rows))
}

/// `rlsim validate`'s options besides the scenario, device and pipelines.
struct ValidateOptions {
    profile: Option<PathBuf>,
    reprofile: bool,
    /// Predict with the analytic model and device figures instead of a profile.
    analytic: bool,
    figures: Option<PathBuf>,
    tolerance: Option<f64>,
    repeat: usize,
    out: Option<PathBuf>,
}

/// How many of the run's rollout engines `validate --device` puts on the GPU it profiles (every one with `cuda:N`;
/// the layout, and so the count, depends on the pipeline type), so the profile decodes with as many at once as the
/// run will. Every worker tagged `rollout` counts, seamless's lendable trainers too, though they decode only while
/// lent. A device list that does not fit the layout fails here, before minutes of profiling.
fn engines_on_profiled_gpu(device: &DeviceChoice, s: &Scenario) -> anyhow::Result<usize> {
    let workers = &s.cluster.workers;
    let (placed, _) = rlsim_exec::device::assign_devices(device, workers.len(), rlsim_exec::device::cuda_device_count)
        .map_err(anyhow::Error::msg)?;
    let first = device.first();
    Ok(placed.iter().zip(workers).filter(|(d, w)| **d == first && w.has_tag("rollout")).count().max(1))
}

fn validate(
    path: &Path,
    device: &str,
    pipelines: &[String],
    options: ValidateOptions,
    overrides: &Overrides,
) -> Result<()> {
    let ValidateOptions { profile, reprofile, analytic, figures, tolerance, repeat, out } = options;
    let device: DeviceChoice = device.parse().map_err(anyhow::Error::msg)?;
    let base = overrides.list();
    let s = Scenario::load(path, &base)?;
    let staged =
        Staged::new(&out.unwrap_or_else(|| Path::new("runs").join(format!("validate-{}", s.name))), "validate")?;
    let dir = staged.path().to_path_buf();
    let staging_abs = std::fs::canonicalize(&dir)?;
    let target_abs = staging_abs.with_file_name(staged.target().file_name().context("--out names a folder")?);
    let (staging_abs, target_abs) = (staging_abs.display().to_string(), target_abs.display().to_string());
    // A profile given, or the scenario's own, serves every pipeline; otherwise each pipeline is measured with its
    // own layout (how many workers run at once changes the figures on a small machine).
    let given = match (profile, s.resolved.hardware.profile.clone(), reprofile) {
        (Some(p), _, _) => Some(std::fs::canonicalize(&p).with_context(|| format!("profile {}", p.display()))?),
        (None, Some(p), false) => Some(PathBuf::from(p)),
        _ => None,
    };
    let given_figures = match &figures {
        Some(f) => Some(rlsim_exec::figures::DeviceFigures::load(f).map_err(anyhow::Error::msg)?),
        None => None,
    };
    if let Some(f) = given_figures.as_ref().filter(|f| f.host != rlsim_sim::profile::HardwareProfile::this_host()) {
        ui::status(format!("warning: the device figures were measured on `{}`, not on this machine", f.host));
    }
    let mut run_figures: Option<(usize, rlsim_exec::figures::DeviceFigures)> = None;
    if let Some(p) = given.as_ref().filter(|_| !analytic) {
        let measured = rlsim_sim::profile::HardwareProfile::load(p).map_err(anyhow::Error::msg)?;
        let here = rlsim_sim::profile::HardwareProfile::this_host();
        if measured.host != here {
            ui::status(format!(
                "warning: the profile {} was measured on `{}`, this is `{here}`: its figures may not hold here (--reprofile measures this machine)",
                p.display(),
                measured.host
            ));
        }
    }
    // What fails the validation: different decisions where they must agree, a broken promise, and (with
    // --tolerance) a timing error beyond it.
    let mut broken: Vec<String> = Vec::new();
    let kinds: Vec<String> = if pipelines.is_empty() { vec![s.pipeline.kind.to_string()] } else { pipelines.to_vec() };
    let mut runs: Vec<Vec<rlsim_exec::validate::ValidateRow>> = vec![Vec::new(); repeat];
    let mut decisions = Vec::new();
    let bar = ui::progress(repeat * kinds.len(), "comparisons");
    for (run, kind) in (0..repeat).flat_map(|r| kinds.iter().map(move |k| (r, k))) {
        let rows = &mut runs[run];
        let tag = if repeat > 1 { format!("{kind}-r{}", run + 1) } else { kind.to_string() };
        let mut sets = base.clone();
        sets.push(format!("pipeline.type={kind}"));
        let s = if analytic {
            // Device figures: given, or measured once per repetition (the machine drifts between repetitions).
            let figures = match (&given_figures, &run_figures) {
                (Some(f), _) => f.clone(),
                (None, Some((r, f))) if *r == run => f.clone(),
                _ => {
                    bar.set_message(format!("{tag}: measuring device figures"));
                    // On a CPU every worker is a thread of the same machine: measure with as many busy at once.
                    let sharing = if matches!(device.first(), rlsim_exec::device::DeviceSpec::Cpu) {
                        s.cluster.workers.len()
                    } else {
                        1
                    };
                    let f = rlsim_exec::figures::measure(device.first(), sharing).map_err(anyhow::Error::msg)?;
                    let file = dir.join(format!("figures-r{}.toml", run + 1));
                    std::fs::write(&file, f.to_toml("Device figures measured by `rlsim validate --model analytic`."))?;
                    bar.suspend(|| ui::text(&figures_table(&f)));
                    run_figures = Some((run, f.clone()));
                    f
                }
            };
            sets.extend(figures.analytic_overrides(&Scenario::load_unprofiled(path, &sets)?));
            Scenario::load_unprofiled(path, &sets)?
        } else {
            let profile_path = match &given {
                Some(p) => p.clone(),
                None => {
                    bar.set_message(format!("{tag}: profiling"));
                    bar.suspend(|| {
                        ui::status(format!("profiling {device} with the scenario's model and the {kind} layout…"))
                    });
                    let profiled = Scenario::load(path, &sets)?;
                    let engines = engines_on_profiled_gpu(&device, &profiled)
                        .with_context(|| format!("profiling {kind} on {device}"))?;
                    let p =
                        rlsim_exec::profile::measure(&profiled, device.first(), engines).map_err(anyhow::Error::msg)?;
                    let file = dir.join(format!("profile-{tag}.toml"));
                    std::fs::write(&file, p.to_toml(&format!("Measured by `rlsim validate` for the {kind} layout.")))?;
                    bar.suspend(|| ui::text(&profile_table(&p)));
                    std::fs::canonicalize(&file)?
                }
            };
            sets.push(format!("hardware.profile={:?}", profile_path.to_string_lossy()));
            Scenario::load(path, &sets)?
        };
        bar.set_message(format!("{tag}: running on {device}"));
        let exec = execute(&s, device.clone()).with_context(|| format!("running {kind} on {device}"))?;
        bar.set_message(format!("{tag}: simulating"));
        let sim = simulate(&s).with_context(|| format!("simulating {kind}"))?;
        let structure = rlsim_exec::validate::compare_structure(&sim.timeline, &exec.timeline);
        // The profile was written in the staging folder; the resolved files name where it will be once committed.
        let resolved = s.resolved_toml().replace(&staging_abs, &target_abs);
        for (side, report, timeline) in [("sim", &sim.report, &sim.timeline), ("exec", &exec.report, &exec.timeline)] {
            let run_dir = dir.join(format!("{tag}-{side}"));
            std::fs::create_dir(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
            reports::write_run(&run_dir, report, timeline, Some(&resolved))?;
        }
        rows.extend(rlsim_exec::validate::compare_reports(kind, &sim.report, &exec.report));
        // colocated and disaggregated decide the same whatever the timing; async, partial and seamless follow the
        // order in which samples finish across workers, so only their promises can be compared.
        let timing_dependent =
            matches!(s.pipeline.kind, PipelineKind::Async | PipelineKind::Partial | PipelineKind::Seamless);
        let promises = |r: &rlsim_sim::report::Summary| {
            let bound = match s.pipeline.kind {
                PipelineKind::Async | PipelineKind::Seamless => s.pipeline.staleness_bound().unwrap_or(u32::MAX),
                _ => u32::MAX,
            };
            r.max_staleness <= bound && r.discarded_tokens == 0
        };
        match (&structure, timing_dependent) {
            (Err(e), false) => broken.push(format!("{tag}: the backends made different decisions ({e})")),
            (Err(_), true) if !promises(&sim.report.summary) || !promises(&exec.report.summary) => {
                broken.push(format!("{tag}: the staleness bound or nothing-discarded promise was broken"))
            }
            _ => {}
        }
        let same = match (&structure, timing_dependent) {
            (Ok(()), _) => "yes".to_string(),
            (Err(_), true) => format!(
                "not expected (its decisions follow the order in which samples finish); staleness bound and nothing discarded: sim {}, exec {}",
                if promises(&sim.report.summary) { "ok" } else { "VIOLATED" },
                if promises(&exec.report.summary) { "ok" } else { "VIOLATED" }
            ),
            (Err(e), false) => format!("NO ({e})"),
        };
        bar.suspend(|| ui::text(&format!("{tag}: same policy decisions in both backends: {same}\n")));
        decisions.push(shapes::Decisions { run: tag, same_decisions: structure.is_ok(), verdict: same });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let rows = rlsim_exec::validate::aggregate(&runs);
    let pct = |metric: &str, e: f64| {
        if metric == "mean staleness" {
            format!("{e:+.3}")
        } else {
            format!("{:+.1} %", 100.0 * e)
        }
    };
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.pipeline.clone(),
                r.metric.clone(),
                format!("{:.4}", r.simulated),
                format!("{:.4}", r.measured),
                pct(&r.metric, r.error),
            ];
            if repeat > 1 {
                row.push(format!("{} … {}", pct(&r.metric, r.error_min), pct(&r.metric, r.error_max)));
            }
            row
        })
        .collect();
    let mut header = vec!["pipeline", "metric", "simulated", "measured", "error"];
    if repeat > 1 {
        header = vec!["pipeline", "metric", "simulated (median)", "measured (median)", "error (median)", "error range"];
    }
    ui::text(&reports::text_table(&header, &body));
    let csv_path = dir.join("validate.csv");
    let mut w = csv::Writer::from_path(&csv_path)?;
    for r in &rows {
        w.serialize(r)?;
    }
    w.flush()?;
    drop(w);
    let dir = staged.commit()?;
    ui::status(format!("wrote {}", dir.display()));
    ui::json(|| Ok(shapes::Validate { rows: &rows, decisions: &decisions, out: &dir }))?;
    if let Some(t) = tolerance {
        broken.extend(rlsim_exec::validate::out_of_tolerance(&rows, t));
    }
    if !broken.is_empty() {
        bail!("validation failed:\n  {}", broken.join("\n  "));
    }
    Ok(())
}

fn parse_quantiles(text: &str, flag: &str) -> Result<LengthDist> {
    let mut points = Vec::new();
    for part in text.split(',') {
        let (q, t) = part.split_once(':').with_context(|| format!("{flag}: expected q:tokens pairs, got {part:?}"))?;
        let q: f64 = q.trim().parse().with_context(|| format!("{flag}: bad quantile {q:?}"))?;
        let t: f64 = t.trim().parse().with_context(|| format!("{flag}: bad token count {t:?}"))?;
        points.push((q, t));
    }
    let ok = points.len() >= 2
        && points[0].0 == 0.0
        && points[points.len() - 1].0 == 1.0
        && points.windows(2).all(|w| w[1].0 > w[0].0 && w[1].1 >= w[0].1)
        && points.iter().all(|p| p.1 >= 1.0);
    if !ok {
        bail!("{flag}: quantiles must run from 0 to 1, increase, and give non-decreasing token counts ≥ 1");
    }
    Ok(LengthDist::Quantiles(points))
}

fn trace_command(cmd: TraceCmd) -> Result<()> {
    match cmd {
        TraceCmd::Import { inputs, out } => {
            reports::output::temp_beside(&out)?;
            let trace = if looks_like_search_r1(&inputs) { read_search_r1(&inputs)? } else { read_polytrace(&inputs)? };
            write_trace_atomic(&trace, &out)?;
            ui::status(format!("wrote {} ({} steps, {} samples)", out.display(), trace.steps.len(), trace.samples()));
            ui::json(|| Ok(shapes::TraceWritten { out: &out, steps: trace.steps.len(), samples: trace.samples() }))?;
        }
        TraceCmd::Synth { response_quantiles, prompt_quantiles, steps, groups, samples, seed, out } => {
            reports::output::temp_beside(&out)?;
            let response = parse_quantiles(&response_quantiles, "--response-quantiles")?;
            let prompt = parse_quantiles(&prompt_quantiles, "--prompt-quantiles")?;
            let total = steps as u64 * groups as u64 * samples as u64;
            if total > MAX_SYNTH_SAMPLES {
                bail!(
                    "--steps × --groups × --samples = {total} samples; at most {MAX_SYNTH_SAMPLES} (about 2 GB of CSV) are written"
                );
            }
            let streams = rlsim_sim::rng::RngStreams::new(seed);
            let mut trace = Trace { path: out.clone(), steps: Vec::new() };
            for s in 0..steps {
                let mut step = Vec::new();
                for g in 0..groups {
                    let mut rng = streams.indexed("trace/synth", (s as u64) * groups as u64 + g as u64);
                    let prompt_tokens = prompt.sample(&mut rng, u32::MAX);
                    let responses = (0..samples).map(|_| response.sample(&mut rng, u32::MAX)).collect();
                    step.push(TraceGroup { prompt_tokens, responses, turns: Vec::new() });
                }
                trace.steps.push(step);
            }
            write_trace_atomic(&trace, &out)?;
            ui::status(format!("wrote {} ({} samples)", out.display(), trace.samples()));
            ui::json(|| Ok(shapes::TraceWritten { out: &out, steps: trace.steps.len(), samples: trace.samples() }))?;
        }
        TraceCmd::Stats { trace } => {
            let t = read_csv_trace(&trace)?;
            let mut resp: Vec<u32> = t.steps.iter().flatten().flat_map(|g| g.responses.iter().copied()).collect();
            let mut prompts: Vec<u32> = t.steps.iter().flatten().map(|g| g.prompt_tokens).collect();
            resp.sort_unstable();
            prompts.sort_unstable();
            let q = |v: &[u32], p: f64| v[((p * v.len() as f64) as usize).min(v.len() - 1)];
            let groups: usize = t.steps.iter().map(|s| s.len()).sum();
            ui::text(&format!(
                "{}: {} steps, {} groups, {} samples\n",
                trace.display(),
                t.steps.len(),
                groups,
                resp.len()
            ));
            let lengths = |v: &[u32]| shapes::Lengths {
                mean: v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64,
                p50: q(v, 0.5),
                p90: q(v, 0.9),
                p99: q(v, 0.99),
                max: v[v.len() - 1],
            };
            let (response_tokens, prompt_tokens) = (lengths(&resp), lengths(&prompts));
            let rows: Vec<Vec<String>> = [("response tokens", &response_tokens), ("prompt tokens", &prompt_tokens)]
                .iter()
                .map(|(name, l)| {
                    vec![
                        name.to_string(),
                        format!("{:.0}", l.mean),
                        l.p50.to_string(),
                        l.p90.to_string(),
                        l.p99.to_string(),
                        l.max.to_string(),
                    ]
                })
                .collect();
            ui::text(&reports::text_table(&["", "mean", "p50", "p90", "p99", "max"], &rows));
            ui::json(|| {
                Ok(shapes::TraceStats {
                    trace: &trace,
                    steps: t.steps.len(),
                    groups,
                    samples: resp.len(),
                    response_tokens,
                    prompt_tokens,
                })
            })?;
        }
    }
    Ok(())
}

/// Writes a CSV trace through a temporary file beside `out`, so an interrupted write never leaves half a trace.
fn write_trace_atomic(trace: &Trace, out: &Path) -> Result<()> {
    let tmp = reports::output::temp_beside(out)?;
    if let Err(e) = write_csv_trace(trace, &tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    reports::output::rename_over(&tmp, out)?;
    Ok(())
}

/// Runs the fidelity suite; true when every error is within its tolerance.
fn fidelity(dir: &Path, out: &Path, plots: Option<&reports::plots::PlotOptions>, overrides: &[String]) -> Result<bool> {
    use rayon::prelude::*;
    use rlsim_sim::fidelity::{case_files, compare, run_case};
    let files = case_files(dir)?;
    if files.is_empty() {
        bail!("{}: no fidelity scenarios (*.toml) here", dir.display());
    }
    let staged = Staged::new(out, "fidelity")?;
    let bar = ui::progress(files.len(), "cases");
    let results: Vec<_> = files
        .par_iter()
        .map(|f| {
            let r = run_case(f, overrides);
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    let mut cases = Vec::new();
    for r in results {
        cases.push(r?);
    }
    let rows = compare(&cases)?;
    let csv_path = staged.path().join("fidelity.csv");
    let mut w = csv::Writer::from_path(&csv_path).with_context(|| format!("writing {}", csv_path.display()))?;
    w.write_record(["case", "quantity", "published", "simulated", "error", "tolerance", "within"])?;
    let mut table = Vec::new();
    for r in &rows {
        let unit = if r.quantity.starts_with("speedup") { "×" } else { " s" };
        w.write_record([
            r.case.clone(),
            r.quantity.clone(),
            format!("{:.4}", r.published),
            format!("{:.4}", r.simulated),
            format!("{:.4}", r.error()),
            format!("{:.4}", r.tolerance),
            r.within().to_string(),
        ])?;
        table.push(vec![
            r.case.clone(),
            r.quantity.clone(),
            format!("{:.2}{unit}", r.published),
            format!("{:.2}{unit}", r.simulated),
            format!("{:+.1} %", 100.0 * r.error()),
            format!("±{:.0} %", 100.0 * r.tolerance),
            if r.within() { "ok".into() } else { "OUTSIDE".into() },
        ]);
    }
    w.flush()?;
    ui::text(&reports::text_table(&["case", "quantity", "published", "rlsim", "error", "tolerance", ""], &table));
    let outside = rows.iter().filter(|r| !r.within()).count();
    let mean_abs = rows.iter().map(|r| r.error().abs()).sum::<f64>() / rows.len().max(1) as f64;
    ui::text(&format!(
        "{} cases, {} comparisons, mean |error| {:.1} %, {} outside tolerance\n",
        cases.len(),
        rows.len(),
        100.0 * mean_abs,
        outside
    ));
    if let Some(o) = plots {
        let points: Vec<reports::plots::FidelityPoint> = rows
            .iter()
            .map(|r| reports::plots::FidelityPoint {
                published: r.published,
                simulated: r.simulated,
                speedup: r.quantity.starts_with("speedup"),
                within: r.error().abs() <= 0.15,
            })
            .collect();
        reports::plots::plot_fidelity(staged.path(), &points, o)?;
    }
    let dir = staged.commit()?;
    ui::status(format!("wrote {}", dir.display()));
    ui::json(|| {
        Ok(shapes::Fidelity {
            rows: ui::csv_rows(&dir.join("fidelity.csv"))?,
            cases: cases.len(),
            comparisons: rows.len(),
            mean_abs_error: mean_abs,
            outside,
            out: &dir,
        })
    })?;
    Ok(outside == 0)
}

fn bench(path: &Path, steps: u32, repeat: u32, pipelines: &[String], set: &[String]) -> Result<()> {
    if cfg!(debug_assertions) {
        ui::status("note: this is a debug build; `cargo run --release -- bench` gives the figures that count");
    }
    let kinds: Vec<Option<&String>> =
        if pipelines.is_empty() { vec![None] } else { pipelines.iter().map(Some).collect() };
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    for kind in kinds {
        let mut sets = set.to_vec();
        sets.push(format!("workload.steps={steps}"));
        if let Some(k) = kind {
            sets.push(format!("pipeline.type={k}"));
        }
        let s = Scenario::load(path, &sets)?;
        let mut walls = Vec::new();
        let mut events = 0;
        let mut sim_time = 0.0;
        for _ in 0..repeat {
            let t0 = Instant::now();
            // What sweep and search run: the summary, no counters over time.
            let run = rlsim_sim::simulator::simulate_recording(&s, rlsim_sim::simulator::Recording::SUMMARY)?;
            walls.push(t0.elapsed().as_secs_f64());
            events = run.report.summary.events;
            sim_time = run.report.summary.sim_time_s;
        }
        walls.sort_by(f64::total_cmp);
        let best = walls[0];
        let median = walls[walls.len() / 2];
        json_rows.push(shapes::BenchRow {
            scenario: s.name.clone(),
            pipeline: s.pipeline.kind.to_string(),
            gpus: s.total_gpus(),
            steps,
            events,
            best_wall_s: best,
            median_wall_s: median,
            mevents_per_s: events as f64 / best / 1e6,
            sim_s_per_wall_s: sim_time / best,
        });
        rows.push(vec![
            s.name.clone(),
            s.pipeline.kind.to_string(),
            s.total_gpus().to_string(),
            steps.to_string(),
            events.to_string(),
            format!("{:.3}", best),
            format!("{:.3}", median),
            format!("{:.2}", events as f64 / best / 1e6),
            format!("{:.0}", sim_time / best),
        ]);
    }
    ui::text(&reports::text_table(
        &[
            "scenario",
            "pipeline",
            "GPUs",
            "steps",
            "events",
            "best wall s",
            "median wall s",
            "Mevents/s",
            "sim s per wall s",
        ],
        &rows,
    ));
    ui::json(|| Ok(serde_json::json!({ "rows": json_rows })))
}

/// `bench --setup-only`: per pipeline, the best and median time from the scenario file to a simulator ready to run
/// (load, validation, cluster and cost model, and the first step's cluster-wide estimates).
fn bench_setup(path: &Path, repeat: u32, pipelines: &[String], set: &[String]) -> Result<()> {
    if cfg!(debug_assertions) {
        ui::status("note: this is a debug build; `cargo run --release -- bench` gives the figures that count");
    }
    let kinds: Vec<Option<&String>> =
        if pipelines.is_empty() { vec![None] } else { pipelines.iter().map(Some).collect() };
    let (mut rows, mut json_rows) = (Vec::new(), Vec::new());
    for kind in kinds {
        let mut sets = set.to_vec();
        sets.extend(kind.map(|k| format!("pipeline.type={k}")));
        let mut walls = Vec::new();
        let mut s = None;
        for _ in 0..repeat {
            let t0 = Instant::now();
            let loaded = Scenario::load(path, &sets)?;
            let cost = rlsim_sim::cost::cost_model(&loaded);
            std::hint::black_box(rlsim_sim::cost::first_step_estimates_ns(&*cost, &loaded.cluster));
            walls.push(t0.elapsed().as_secs_f64());
            s = Some(loaded);
        }
        let s = s.expect("repeat is at least 1");
        walls.sort_by(f64::total_cmp);
        let (best_ms, median_ms) = (walls[0] * 1e3, walls[walls.len() / 2] * 1e3);
        json_rows.push(shapes::BenchSetupRow {
            scenario: s.name.clone(),
            pipeline: s.pipeline.kind.to_string(),
            gpus: s.total_gpus(),
            workers: s.cluster.workers.len(),
            best_setup_ms: best_ms,
            median_setup_ms: median_ms,
        });
        rows.push(vec![
            s.name.clone(),
            s.pipeline.kind.to_string(),
            s.total_gpus().to_string(),
            s.cluster.workers.len().to_string(),
            format!("{best_ms:.2}"),
            format!("{median_ms:.2}"),
        ]);
    }
    ui::text(&reports::text_table(
        &["scenario", "pipeline", "GPUs", "workers", "best setup ms", "median setup ms"],
        &rows,
    ));
    ui::json(|| Ok(serde_json::json!({ "rows": json_rows })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument of every command, positional ones included, says what it is in `--help` (and so in the man
    /// pages and the completions' descriptions).
    #[test]
    fn every_argument_has_help() {
        let mut cmd = Cli::command();
        cmd.build();
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if cmd.get_about().is_none() && path != "rlsim help" {
                missing.push(format!("{path} (the command)"));
            }
            for a in cmd.get_arguments() {
                if a.get_help().is_none() && !["help", "version"].contains(&a.get_id().as_str()) {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&cmd, "rlsim", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
        cmd.debug_assert();
    }
}
