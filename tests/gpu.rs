//! GPU checks of the real backend: ignored by default (CI and the build machine have no GPU). On a GPU machine,
//! with a binary built by `scripts/check-cuda.sh` (`--features cuda`), run them with
//! `cargo test --features cuda --test gpu -- --ignored`, or the prebuilt test binary `.gpu/gpu-tests --ignored`.

use rlsim_exec::device::{cuda_device_count, DeviceChoice};
use rlsim_exec::runtime::execute;
use rlsim_exec::validate::compare_structure;
use rlsim_sim::scenario::PIPELINE_TYPES;
use rlsim_sim::simulator::simulate;

mod common;
use common::{check_run, exec_tiny};

/// Every pipeline runs on the GPUs, one worker per GPU when there are enough (else all on GPU 0, said as shared),
/// keeping every invariant of the CPU runs; the deterministic pipelines make the simulator's decisions.
#[test]
#[ignore = "needs a GPU and a build with --features cuda"]
fn every_pipeline_runs_on_the_gpus_with_the_simulators_decisions() {
    // Without the feature the count says how to build with it.
    let gpus = cuda_device_count().unwrap_or_else(|e| panic!("{e}"));
    assert!(gpus >= 1, "no GPU visible");
    for &pipeline in PIPELINE_TYPES {
        let s = exec_tiny(&[&format!("pipeline.type={pipeline}")]);
        let workers = s.cluster.workers.len();
        let choice = if gpus >= workers { DeviceChoice::AllCuda } else { DeviceChoice::Cuda(vec![0]) };
        let run = execute(&s, choice).unwrap_or_else(|e| panic!("{pipeline}: {e}"));
        assert!(run.report.summary.devices.iter().all(|d| d.starts_with("cuda:")), "{:?}", run.report.summary.devices);
        assert_eq!(run.report.summary.shared_devices, gpus < workers);
        let bound = s.pipeline.staleness_bound().unwrap_or(u32::MAX);
        check_run(&format!("cuda {pipeline}"), &s, &run.timeline, &run.report, &run.trajectories, bound);
        if matches!(pipeline, "colocated" | "disaggregated") {
            let sim = simulate(&s).unwrap();
            compare_structure(&sim.timeline, &run.timeline).unwrap_or_else(|e| panic!("{pipeline}: {e}"));
        }
    }
}

/// GRPO learns on the GPU as it does on the CPU.
#[test]
#[ignore = "needs a GPU and a build with --features cuda"]
fn the_real_trainer_learns_on_a_gpu() {
    let s = exec_tiny(&["workload.steps=24"]);
    let run = execute(&s, DeviceChoice::Cuda(vec![0])).unwrap();
    let r = &run.step_rewards;
    let first = r[..4].iter().sum::<f32>() / 4.0;
    let last = r[r.len() - 4..].iter().sum::<f32>() / 4.0;
    assert!(last > first + 0.15, "rewards {r:?}");
}
