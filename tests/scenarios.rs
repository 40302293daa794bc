//! Every bundled scenario loads and runs under every pipeline its layout allows, keeps the invariants
//! (conservation, no double booking, staleness bounds), and matches its golden summary.

use rlsim_sim::scenario::{Layout, PipelineKind, Scenario, PIPELINE_TYPES};
use rlsim_sim::simulator::{simulate, simulate_recording, Recording, SimRun};
use std::path::{Path, PathBuf};

/// The bundled scenarios the tests run in full: all but those in scenarios/bench/, which are sized for timing the
/// simulator (`rlsim bench`), not for a test run (`bench_scenarios_load_at_their_stated_size` loads them).
fn bundled() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let bench = dir.join("bench");
    let mut files: Vec<PathBuf> = walk(&dir).into_iter().filter(|f| !f.starts_with(&bench)).collect();
    files.sort();
    assert!(files.len() >= 3, "bundled scenarios missing in {}", dir.display());
    files
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
    out
}

fn check_invariants(s: &Scenario, run: &SimRun) {
    let m = &run.report.summary;
    let what = format!("{} as {}", s.name, s.pipeline.kind);
    run.trajectories.check_conservation().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(m.generated_tokens, m.trained_tokens + m.in_flight_tokens + m.discarded_tokens, "{what}");
    let w = &s.workload;
    assert_eq!(m.trained_samples, (w.steps * w.prompts_per_step * w.samples_per_prompt) as u64, "{what}");
    assert_eq!(m.steps, w.steps, "{what}");
    assert!(run.timeline.find_double_booking().is_none(), "{what}: {:?}", run.timeline.find_double_booking());
    let bound = match s.pipeline.kind {
        PipelineKind::Colocated => Some(0),
        PipelineKind::Disaggregated => Some(1),
        PipelineKind::Async | PipelineKind::Seamless => s.pipeline.staleness_bound(),
        // Carried-over samples may span several versions; partial's promise is that it discards nothing.
        PipelineKind::Partial => None,
    };
    if let Some(bound) = bound {
        assert!(m.max_staleness <= bound, "{what}: staleness {} above {bound}", m.max_staleness);
    }
    assert_eq!(m.discarded_tokens, 0, "{what}: no pipeline discards");
    assert!(m.tokens_per_s > 0.0 && m.gpu_util > 0.0 && m.bubble_fraction >= 0.0, "{what}");
}

#[test]
fn every_bundled_scenario_runs_under_every_pipeline_its_layout_allows() {
    for file in bundled() {
        let own = Scenario::load(&file, &[]).unwrap_or_else(|e| panic!("{e}"));
        let run = simulate(&own).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        check_invariants(&own, &run);
        for kind in PIPELINE_TYPES {
            if *kind == own.pipeline.kind.name() {
                continue;
            }
            match Scenario::load(&file, &[format!("pipeline.type={kind}")]) {
                Ok(s) => check_invariants(&s, &simulate(&s).unwrap_or_else(|e| panic!("{}: {e}", file.display()))),
                // Only an explicit worker layout, a trainer's parallel group that the pipeline's smaller train
                // pool cannot hold (expert parallel 16 on a 16-GPU cluster split 8 : 8), or a training state that
                // does not fit on it (DeepSeek-V3 on half of 256 H100), may rule a pipeline out, and it must say why.
                Err(e) => {
                    let e = e.to_string();
                    let layout = own.resolved.cluster.workers.is_some() && e.contains("cluster.workers");
                    let group =
                        e.contains("field `training.") && e.contains("must divide the") && e.contains("train GPUs");
                    // A split layout trains on part of a time-sliced scenario's GPUs.
                    let memory = own.pipeline.layout == Layout::TimeSliced
                        && e.contains("field `cluster.nodes`: training")
                        && e.contains("add train GPUs");
                    assert!(layout || group || memory, "{}: {e}", file.display());
                }
            }
        }
    }
}

/// The benchmark scenarios load, and describe the run issue #11 sets its targets on.
#[test]
fn bench_scenarios_load_at_their_stated_size() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/bench");
    for file in walk(&dir) {
        Scenario::load(&file, &[]).unwrap_or_else(|e| panic!("{e}"));
    }
    let s = Scenario::load(&dir.join("seamless-1024.toml"), &[]).unwrap();
    let w = &s.workload;
    assert_eq!((s.total_gpus(), s.cluster.gpu.name.as_str(), s.model.name.as_str()), (1024, "H800", "Qwen2.5-32B"));
    assert_eq!((w.prompts_per_step, w.samples_per_prompt, w.steps, w.max_response_tokens), (8192, 16, 1000, 16384));
    assert_eq!(s.pipeline.kind, PipelineKind::Seamless);
}

/// Golden summaries: the bundled scenarios' key figures, so that any change to the model shows up in review.
/// Regenerate with `RLSIM_BLESS=1 cargo test --test scenarios golden` and explain the change in the commit.
/// Each run is also simulated summary-only (the report computed as the run goes, finished trajectories retired):
/// its report must equal the one computed from the whole Timeline, field for field.
#[test]
fn golden_summaries_of_the_bundled_scenarios() {
    let mut lines =
        vec!["scenario,pipeline,steps,sim_time_s,generated_tokens,trained_tokens,mean_step_s,mean_staleness,events"
            .to_string()];
    for file in bundled() {
        for kind in PIPELINE_TYPES {
            let Ok(s) = Scenario::load(&file, &[format!("pipeline.type={kind}")]) else { continue };
            let full = simulate(&s).unwrap().report;
            let mut streamed = simulate_recording(&s, Recording::SUMMARY).unwrap().report;
            streamed.summary.wall_s = full.summary.wall_s;
            assert!(streamed == full, "{} as {kind}: streamed report differs:\n{streamed:#?}\nvs\n{full:#?}", s.name);
            let m = full.summary;
            lines.push(format!(
                "{},{},{},{:.6},{},{},{:.6},{:.6},{}",
                m.scenario,
                m.pipeline,
                m.steps,
                m.sim_time_s,
                m.generated_tokens,
                m.trained_tokens,
                m.mean_step_s,
                m.mean_staleness,
                m.events
            ));
        }
    }
    let got = lines.join("\n") + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/summaries.csv");
    if std::env::var_os("RLSIM_BLESS").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(got == want, "golden summaries changed (RLSIM_BLESS=1 to accept):\n--- want\n{want}--- got\n{got}");
}
