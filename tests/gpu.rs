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

/// Decode of the Qwen2.5-0.5B shape (random weights, f32) at batch 64, 128 and 256: the bytes it must read (weights
/// and KV cache) over its time, against the device's measured memory bandwidth (its HBM roofline). On an H200
/// (2026-11-29) the eager candle engine reached 738–1,020 GB/s over three runs, 18–25 % of the 4,080 GB/s the
/// fixed roofline measured there (docs/gpu-measurements.md): the target of 50 % is not met, so this asserts the
/// floor it reached (15 %, against a regression) and that no iteration reads faster than the roofline (which would
/// mean the roofline itself is wrong: before its fix it measured 42 GB/s and this test passed at "1,882 % of
/// roofline"). On a CPU (no GPU or no `cuda` feature) it only prints, at a short context so it fits in host memory:
/// `cargo test --release --test gpu decode -- --ignored --nocapture`.
#[test]
#[ignore = "needs a GPU and a build with --features cuda (on a CPU it only prints, slowly)"]
fn decode_of_the_qwen_0_5b_shape_reads_at_its_measured_share_of_the_hbm_roofline() {
    use rlsim_exec::decode_rate::decode_rate;
    use rlsim_exec::device::DeviceSpec;
    use rlsim_exec::figures::read_bandwidth;
    use rlsim_exec::model::{Gpt, GptConfig};
    use rlsim_sim::rng::RngStreams;

    let on_gpu = cuda_device_count().is_ok_and(|n| n >= 1);
    let spec = if on_gpu { DeviceSpec::Cuda(0) } else { DeviceSpec::Cpu };
    let dev = spec.open().unwrap();
    // A long context on the GPU (the KV cache dominates the bytes read at batch 256, as in RL rollouts).
    let (context, reps) = if on_gpu { (1024, 5) } else { (64, 2) };
    let cfg = GptConfig::named("Qwen2.5-0.5B", context + reps + 2).unwrap();
    let model = Gpt::new(cfg, &mut RngStreams::new(1).stream("decode-rate/init"), &dev).unwrap();
    let (roofline, big) = read_bandwidth(&dev).unwrap();
    drop(big);
    println!(
        "{spec}: Qwen2.5-0.5B shape ({} parameters, f32), read bandwidth {roofline:.1} GB/s",
        cfg.parameter_count()
    );
    println!("batch  context  ms/iteration  tokens/s  GB read  GB/s  of roofline");
    let (mut worst, mut best): (f64, f64) = (f64::INFINITY, 0.0);
    for batch in [64, 128, 256] {
        let r = decode_rate(&model, batch, context, reps).unwrap();
        let share = r.gbytes_per_s() / roofline;
        worst = worst.min(share);
        best = best.max(share);
        println!(
            "{batch:>5}  {context:>7}  {:>12.2}  {:>8.0}  {:>7.2}  {:>4.0}  {:>10.0} %",
            r.iteration_s * 1e3,
            r.tokens_per_s(),
            r.bytes_read / 1e9,
            r.gbytes_per_s(),
            share * 100.0
        );
    }
    if on_gpu {
        assert!(best <= 1.1, "decode read {:.0} % of the measured read bandwidth: the roofline is wrong", best * 100.0);
        assert!(worst >= 0.15, "decode reached only {:.0} % of the measured read bandwidth", worst * 100.0);
    }
}
