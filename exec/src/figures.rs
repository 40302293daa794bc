//! Device figures from microbenchmarks (matmul throughput, memory bandwidth, the engine's and trainer's fixed costs
//! per iteration, layer and sequence) and the analytic cost model's settings they give a scenario.
//!
//! Unlike a profile (exec/src/profile.rs), which fits step-time lines of one model, these figures describe the device
//! and the real backend's software, not a model: `rlsim validate --model analytic` measures them once and predicts
//! every model size with the datasheet-style analytic model, so what gets tested is the model's scaling with batch,
//! context, model size and workers.

use crate::collective::SingleRank;
use crate::device::DeviceSpec;
use crate::engine::{RealEngine, SeqInput};
use crate::model::{Gpt, GptConfig};
use crate::trainer::{NeverAbort, TrainSample, Trainer};
use candle_core::{DType, Tensor};
use rlsim_sim::rng::RngStreams;
use rlsim_sim::scenario::{ExecLengths, ExecSpec, LogProbPass, Scenario};
use rlsim_sim::trajectory::TrajId;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// What the microbenchmarks measured on one device (one worker's thread on a CPU).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceFigures {
    /// e.g. "cpu (1 threads per worker)".
    pub device: String,
    /// Host name, CPU model and count, as profiles record it.
    pub host: String,
    /// f32 matmul throughput, [128, 512] × [512, 2048], GFLOP/s.
    pub matmul_gflops: f64,
    /// Streaming read (a sum over 128 MB), GB/s.
    pub read_gbytes_per_s: f64,
    /// Copy bandwidth counting the bytes moved once (a 64 MB tensor copied), GB/s.
    pub copy_gbytes_per_s: f64,
    /// The engine's fixed cost of one decode iteration besides its layers (sampling, bookkeeping, embedding,
    /// final norm and head of a negligible model), seconds.
    pub iteration_s: f64,
    /// Fixed cost of one transformer layer in a decode iteration (its ops' dispatch), seconds.
    pub layer_s: f64,
    /// Per running sequence per iteration: outside the layers, and in each layer (the engine's per-sequence
    /// attention), seconds.
    pub seq_s: f64,
    pub seq_layer_s: f64,
    /// Fixed cost of one micro-batch through the update (forward, backward, and the optimizer's step over the
    /// parameter tensors): outside the layers and per layer, seconds.
    pub update_micro_batch_s: f64,
    pub update_layer_s: f64,
}

/// Median of `reps` timed runs after one warm-up.
fn median_time(reps: usize, mut f: impl FnMut() -> candle_core::Result<()>) -> candle_core::Result<f64> {
    f()?;
    let mut v: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f().map(|_| t0.elapsed().as_secs_f64())
        })
        .collect::<candle_core::Result<_>>()?;
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

/// A model too narrow for its matmuls to matter: what is left is the fixed cost of its ops.
fn micro_model(layers: usize, dev: &candle_core::Device) -> candle_core::Result<Gpt> {
    let cfg = GptConfig { vocab: 8, d_model: 8, layers, heads: 1, ffn: 32, context: 64 };
    Gpt::new(cfg, &mut RngStreams::new(1).stream("figures/init"), dev)
}

/// Median seconds of one decode iteration of an engine running `batch` sequences of a micro model.
fn decode_iteration_s(layers: usize, batch: usize, dev: &candle_core::Device) -> candle_core::Result<f64> {
    let streams = RngStreams::new(1);
    let mut engine = RealEngine::new(
        micro_model(layers, dev)?,
        batch as u32,
        u64::MAX / 4,
        false,
        ExecLengths::Trace,
        0,
        streams.stream("figures/sample"),
    );
    for i in 0..batch {
        engine.enqueue(SeqInput {
            traj: TrajId(i as u64),
            group: i as u64,
            prompt: vec![1, 2],
            response: vec![],
            logprobs: vec![],
            target: 40,
        });
    }
    engine.step(&|| 0)?; // admission and prefill
    let mut times = Vec::new();
    for _ in 0..30 {
        let t0 = Instant::now();
        engine.step(&|| 0)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Median seconds of the update of one micro-batch of two short samples on a micro model.
fn update_s(layers: usize, dev: &candle_core::Device) -> candle_core::Result<f64> {
    let spec = ExecSpec {
        learning_rate: 1e-3,
        lengths: ExecLengths::Trace,
        eos_token: 0,
        kl_coef: 0.0,
        clip_ratio: 0.2,
        task: "even".into(),
    };
    let mut trainer = Trainer::new(micro_model(layers, dev)?, None, spec, vec![LogProbPass::Old], 1 << 20, 1)?;
    let samples: Vec<TrainSample> = (0..2)
        .map(|i| TrainSample {
            group: 0,
            prompt: vec![1, 2],
            response: vec![3, 4, 5],
            behaviour_logprobs: vec![-2.0; 3],
            reward: i as f32,
        })
        .collect();
    let clock = Instant::now();
    let now = || clock.elapsed().as_nanos() as u64;
    let mut v = Vec::new();
    for rep in 0..12 {
        let t = trainer.step_ranked(&samples, 0, 1, &SingleRank, &now, &NeverAbort)?.unwrap_or_else(|t| t);
        if rep > 1 {
            v.push((t.update_ns.1 - t.update_ns.0) as f64 / 1e9);
        }
    }
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

/// Streaming read bandwidth of `dev`, GB/s: a sum over 128 MB of f32 (median of 7), with the tensor it read.
pub fn read_bandwidth(dev: &candle_core::Device) -> candle_core::Result<(f64, Tensor)> {
    let big = Tensor::ones(32 << 20, DType::F32, dev)?;
    let read = median_time(7, || big.sum_all()?.to_scalar::<f32>().map(|_| ()))?;
    Ok(((32u64 << 20) as f64 * 4.0 / read / 1e9, big))
}

/// Runs the microbenchmarks on `device` (about ten seconds on a CPU), on a worker thread of its own as the runtime's
/// workers run.
pub fn measure(device: DeviceSpec) -> Result<DeviceFigures, String> {
    std::thread::scope(|scope| scope.spawn(|| crate::device::on_own_pool(|| measure_here(device))).join())
        .map_err(|_| "the microbenchmark thread panicked".to_string())?
}

fn measure_here(device: DeviceSpec) -> Result<DeviceFigures, String> {
    let err = |e: candle_core::Error| format!("{device}: {e}");
    let dev = device.open()?;
    let sync = |t: &Tensor| -> candle_core::Result<()> { t.sum_all()?.to_scalar::<f32>().map(|_| ()) };
    let (m, k, n) = (128usize, 512usize, 2048usize);
    let a = Tensor::ones((m, k), DType::F32, &dev).map_err(err)?;
    let b = Tensor::ones((k, n), DType::F32, &dev).map_err(err)?;
    let matmul = median_time(9, || sync(&a.matmul(&b)?)).map_err(err)?;
    let (read_gbytes_per_s, big) = read_bandwidth(&dev).map_err(err)?;
    let half = big.narrow(0, 0, 16 << 20).map_err(err)?;
    let copy = median_time(7, || half.copy().map(|_| ())).map_err(err)?;
    let t = |l, b| decode_iteration_s(l, b, &dev).map_err(err);
    let (t11, t41, t18, t48) = (t(1, 1)?, t(4, 1)?, t(1, 8)?, t(4, 8)?);
    // t(L, B) = iteration + L·layer + B·(seq + L·seq_layer), from four corners.
    let seq_layer = (((t48 - t18) - (t41 - t11)) / 21.0).max(0.0);
    let layer = ((t41 - t11) / 3.0 - seq_layer).max(0.0);
    let seq = ((t18 - t11) / 7.0 - seq_layer).max(0.0);
    let iteration = (t11 - layer - seq - seq_layer).max(0.0);
    let (u1, u4) = (update_s(1, &dev).map_err(err)?, update_s(4, &dev).map_err(err)?);
    let update_layer = ((u4 - u1) / 3.0).max(0.0);
    Ok(DeviceFigures {
        device: format!(
            "{device} ({} threads per worker)",
            std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into())
        ),
        host: rlsim_sim::profile::HardwareProfile::this_host(),
        matmul_gflops: 2.0 * (m * k * n) as f64 / matmul / 1e9,
        read_gbytes_per_s,
        copy_gbytes_per_s: (16u64 << 20) as f64 * 4.0 / copy / 1e9,
        iteration_s: iteration,
        layer_s: layer,
        seq_s: seq,
        seq_layer_s: seq_layer,
        update_micro_batch_s: (u1 - update_layer).max(0.0),
        update_layer_s: update_layer,
    })
}

impl DeviceFigures {
    pub fn to_toml(&self, header: &str) -> String {
        let body = toml::to_string(self).expect("device figures always serialise");
        let comment: String = header.lines().map(|l| format!("# {l}\n")).collect();
        format!("{comment}{body}")
    }

    /// Reads a figures file (`validate --figures`): errors name the file, the line and column of a TOML error, or
    /// the field whose value cannot be a measurement.
    pub fn load(path: &std::path::Path) -> Result<DeviceFigures, String> {
        let text = rlsim_sim::textfile::read_regular_text(path, 1 << 20)
            .map_err(|e| format!("{}: cannot read device figures: {e}", path.display()))?;
        let f: DeviceFigures = toml::from_str(&text).map_err(|e| {
            let (line, col) = e.span().map_or((0, 0), |s| {
                let before = &text[..s.start.min(text.len())];
                (before.matches('\n').count() + 1, before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1)
            });
            format!("{}:{line}:{col}: {}", path.display(), e.message().trim())
        })?;
        let rates = [
            ("matmul_gflops", f.matmul_gflops),
            ("read_gbytes_per_s", f.read_gbytes_per_s),
            ("copy_gbytes_per_s", f.copy_gbytes_per_s),
        ];
        if let Some((name, v)) = rates.iter().find(|(_, v)| !v.is_finite() || *v <= 0.0) {
            return Err(format!("{}: field `{name}`: expected a positive measured rate, got {v}", path.display()));
        }
        let times = [
            ("iteration_s", f.iteration_s),
            ("layer_s", f.layer_s),
            ("seq_s", f.seq_s),
            ("seq_layer_s", f.seq_layer_s),
            ("update_micro_batch_s", f.update_micro_batch_s),
            ("update_layer_s", f.update_layer_s),
        ];
        if let Some((name, v)) = times.iter().find(|(_, v)| !v.is_finite() || *v < 0.0 || *v > 1e3) {
            return Err(format!(
                "{}: field `{name}`: expected a measured time in seconds from 0 to 1000, got {v}",
                path.display()
            ));
        }
        Ok(f)
    }

    /// The scenario settings that make the analytic cost model describe this device running rlsim's real backend
    /// (framework preset `rlsim-exec`) with the scenario's model: the measured matmul rate as the peak (the model's
    /// weights and KV are f32 here, twice the bf16 bytes the model counts, so the bandwidths are halved), the fixed
    /// costs per iteration, layer and sequence, and per micro-batch for `layers` layers.
    pub fn analytic_overrides(&self, s: &Scenario) -> Vec<String> {
        let layers = s.model.layers as f64;
        // f32 bytes are twice the model's bf16 count.
        let (read, copy) = (self.read_gbytes_per_s / 2.0, self.copy_gbytes_per_s / 2.0);
        vec![
            "framework.preset=\"rlsim-exec\"".to_string(),
            format!("cluster.bf16_tflops={}", self.matmul_gflops / 1e3),
            format!("cluster.hbm_gbytes_per_s={read}"),
            format!("cluster.nvlink_gbytes_per_s={copy}"),
            format!("cluster.pcie_gbytes_per_s={copy}"),
            format!("rollout.iteration_overhead_ms={}", self.iteration_s * 1e3),
            format!("framework.eager_layer_us={}", self.layer_s * 1e6),
            format!("framework.seq_overhead_us={}", (self.seq_s + layers * self.seq_layer_s) * 1e6),
            format!(
                "training.micro_batch_overhead_ms={}",
                (self.update_micro_batch_s + layers * self.update_layer_s) * 1e3
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> DeviceFigures {
        DeviceFigures {
            device: "cpu".into(),
            host: "h".into(),
            matmul_gflops: 50.0,
            read_gbytes_per_s: 20.0,
            copy_gbytes_per_s: 1.0,
            iteration_s: 1e-4,
            layer_s: 2e-5,
            seq_s: 0.0,
            seq_layer_s: 8e-6,
            update_micro_batch_s: 1e-4,
            update_layer_s: 1e-4,
        }
    }

    #[test]
    fn a_figures_file_round_trips_and_bad_ones_name_file_line_and_field() {
        let dir = std::env::temp_dir().join(format!("rlsim-figures-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.toml");
        std::fs::write(&path, figures().to_toml("a header")).unwrap();
        assert_eq!(DeviceFigures::load(&path).unwrap(), figures());
        let text = figures().to_toml("x");
        std::fs::write(&path, text.replace("matmul_gflops = 50.0", "matmul_gflops = -1.0")).unwrap();
        let e = DeviceFigures::load(&path).unwrap_err();
        assert!(e.contains("f.toml: field `matmul_gflops`: expected a positive measured rate, got -1"), "{e}");
        std::fs::write(&path, text.replace("layer_s = 0.00002", "layer_s = nan")).unwrap();
        let e = DeviceFigures::load(&path).unwrap_err();
        assert!(e.contains("field `layer_s`") && e.contains("got NaN"), "{e}");
        std::fs::write(&path, text.replace("seq_s = 0.0\n", "")).unwrap();
        let e = DeviceFigures::load(&path).unwrap_err();
        assert!(e.contains("f.toml:") && e.contains("missing field `seq_s`"), "{e}");
        std::fs::write(&path, text.replace("seq_s = 0.0", "seq_s = \"fast\"")).unwrap();
        let e = DeviceFigures::load(&path).unwrap_err();
        assert!(e.contains("f.toml:") && e.contains(":9:"), "names the line: {e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_overrides_scale_with_the_scenario_and_halve_the_f32_bandwidths() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/exec-tiny.toml");
        let s = Scenario::load_unprofiled(&path, &[]).unwrap();
        let o = figures().analytic_overrides(&s);
        assert!(o.contains(&"cluster.hbm_gbytes_per_s=10".to_string()), "{o:?}");
        // 2 layers: 0 + 2 · 8 µs per sequence; 0.1 ms + 2 · 0.1 ms per micro-batch.
        assert!(o.iter().any(|x| x.starts_with("framework.seq_overhead_us=16")), "{o:?}");
        assert!(o.iter().any(|x| x.starts_with("training.micro_batch_overhead_ms=0.3")), "{o:?}");
        let with = Scenario::load_unprofiled(&path, &o).unwrap();
        assert_eq!(with.framework.name, "rlsim-exec");
        assert!((with.rollout.layer_launch_s - 2e-5).abs() < 1e-12);
    }
}
