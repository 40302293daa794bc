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
use rlsim_sim::framework::Elementwise;
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
    /// Copy bandwidth counting the bytes moved once (an 8 MB tensor copied into a new one, as the backend copies
    /// weights for a sync or a switch), GB/s.
    pub copy_gbytes_per_s: f64,
    /// Weight bytes a 4-row matmul consumes per second from a set of distinct weight matrices read over and over,
    /// as decode iterations read a model's weights, by the set's size: `[megabytes, GB/s]` pairs, smallest first.
    /// The decode's memory line at the scenario's weight bytes (interpolated). On a CPU the rate falls once the
    /// set leaves the caches and stays well below `read_gbytes_per_s`, because the GEMM packs each weight matrix
    /// before it multiplies.
    pub weight_stream_gbytes_per_s: Vec<[f64; 2]>,
    /// Whether the device overlaps those reads with the FLOPs (a GPU) or runs them one after the other (a CPU's
    /// packing GEMM): the framework's `decode_overlap`.
    pub decode_overlap: bool,
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
    /// What the real backend spends outside its matmuls per layer, of a log-prob pass, of the update, and per
    /// running sequence of a decode iteration: the framework's `*_elementwise` (sim/src/framework.rs,
    /// `Elementwise`). Least-squares fits over micro models of widths 8 and 32, 1 and 4 heads, short and long
    /// sequences, after what the analytic model already charges there (matmul FLOPs at `matmul_gflops`, weight and
    /// KV reads, the fixed costs above) is taken out, so the model extrapolates them to the scenario's width, heads
    /// and lengths.
    pub logprob_elementwise: Elementwise,
    pub update_elementwise: Elementwise,
    pub decode_elementwise: Elementwise,
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

/// A model too narrow for its matmuls to matter (width 8): what is left is the fixed cost of its ops. Width 32
/// shows how the ops between the matmuls grow with the width.
fn micro_model(layers: usize, width: usize, heads: usize, dev: &candle_core::Device) -> candle_core::Result<Gpt> {
    let cfg = GptConfig { vocab: 8, d_model: width, layers, heads, ffn: 4 * width, context: MICRO_CONTEXT };
    Gpt::new(cfg, &mut RngStreams::new(1).stream("figures/init"), dev)
}

/// Positions of the micro models: room for the longest prompt below plus the timed decode iterations.
const MICRO_CONTEXT: usize = 96;
/// Decode iterations timed per measurement, and the prompt lengths of the short and long decode cases.
const DECODE_ITERATIONS: usize = 30;
const SHORT_PROMPT: usize = 2;
const LONG_PROMPT: usize = 34;

/// A decode measurement: (layers, running sequences, width, heads, prompt tokens) of a micro model.
type DecodeCase = (usize, usize, usize, usize, usize);

/// Median seconds of one decode iteration for each case. The cases' engines take turns iteration by iteration, so
/// a change of the machine's load while they run touches them all alike (their differences are the figures).
fn decode_iterations_s(cases: &[DecodeCase], dev: &candle_core::Device) -> candle_core::Result<Vec<f64>> {
    let streams = RngStreams::new(1);
    let mut engines = Vec::new();
    for &(layers, batch, width, heads, prompt) in cases {
        let mut engine = RealEngine::new(
            micro_model(layers, width, heads, dev)?,
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
                prompt: (0..prompt).map(|t| 1 + (t % 7) as u32).collect(),
                response: vec![],
                logprobs: vec![],
                target: DECODE_ITERATIONS as u32 + 10,
            });
        }
        engine.step(&|| 0)?; // admission and prefill
        engines.push(engine);
    }
    let mut times = vec![Vec::new(); cases.len()];
    for _ in 0..DECODE_ITERATIONS {
        for (engine, times) in engines.iter_mut().zip(&mut times) {
            let t0 = Instant::now();
            engine.step(&|| 0)?;
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    Ok(times.into_iter().map(median).collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A training measurement: (layers, width, heads, samples, tokens per sample) of a micro model, one micro-batch.
type PassCase = (usize, usize, usize, usize, usize);

/// Median seconds of the log-prob pass and of the update for each case, the cases' trainers taking turns step by
/// step (as `decode_iterations_s`).
fn pass_times(cases: &[PassCase], dev: &candle_core::Device) -> candle_core::Result<Vec<(f64, f64)>> {
    let spec = ExecSpec {
        learning_rate: 1e-3,
        lengths: ExecLengths::Trace,
        eos_token: 0,
        kl_coef: 0.0,
        clip_ratio: 0.2,
        task: "even".into(),
    };
    let mut runs = Vec::new();
    for &(layers, width, heads, batch, tokens) in cases {
        let model = micro_model(layers, width, heads, dev)?;
        let trainer = Trainer::new(model, None, spec.clone(), vec![LogProbPass::Old], 1 << 20, 1)?;
        let prompt = 2.min(tokens - 1);
        let samples: Vec<TrainSample> = (0..batch)
            .map(|i| TrainSample {
                group: 0,
                prompt: (0..prompt).map(|t| 1 + t as u32).collect(),
                response: (0..tokens - prompt).map(|t| 3 + (t % 5) as u32).collect(),
                behaviour_logprobs: vec![-2.0; tokens - prompt],
                reward: (i % 2) as f32,
            })
            .collect();
        runs.push((trainer, samples, Vec::new(), Vec::new()));
    }
    let clock = Instant::now();
    let now = || clock.elapsed().as_nanos() as u64;
    for rep in 0..TRAIN_REPS + 2 {
        for (trainer, samples, logprob, update) in runs.iter_mut() {
            let t = trainer.step_ranked(samples, 0, 1, &SingleRank, &now, &NeverAbort)?.unwrap_or_else(|t| t);
            if rep >= 2 {
                logprob.push(t.logprob_ns.iter().map(|(a, b)| b - a).sum::<u64>() as f64 / 1e9);
                update.push((t.update_ns.1 - t.update_ns.0) as f64 / 1e9);
            }
        }
    }
    Ok(runs.into_iter().map(|(_, _, logprob, update)| (median(logprob), median(update))).collect())
}

/// Timed train steps per training case (after two warm-ups).
const TRAIN_REPS: usize = 15;

/// One observation of a cost per token (or running sequence) per layer outside the matmuls, seconds, at a width,
/// heads, context and tokens per sequence (1 in decode, where each sequence adds one token).
struct Observation {
    width: f64,
    heads: f64,
    context: f64,
    tokens_per_sequence: f64,
    seconds: f64,
}

impl Observation {
    /// The regressors of [`Elementwise`]'s five terms for this observation (per token).
    fn terms(&self) -> [f64; 5] {
        let (w, h, c) = (self.width, self.heads, self.context);
        [1.0, w, h * c, w * c, h / self.tokens_per_sequence]
    }
}

/// The least-squares [`Elementwise`] (ns) for `observations`, every term at least 0: terms a fit puts below 0 are
/// dropped and the rest refitted (a term lost in the noise is none; `profile::fit_linear`). Each term's column is
/// scaled to unit size first, since they differ by orders of magnitude (1 against width × context).
fn fit_elementwise(observations: &[Observation]) -> Elementwise {
    let rows: Vec<[f64; 5]> = observations.iter().map(Observation::terms).collect();
    let scale: Vec<f64> = (0..5).map(|i| rows.iter().map(|r| r[i] * r[i]).sum::<f64>().sqrt().max(1e-30)).collect();
    let xs: Vec<Vec<f64>> = rows.iter().map(|r| (0..5).map(|i| r[i] / scale[i]).collect()).collect();
    let y: Vec<f64> = observations.iter().map(|o| o.seconds).collect();
    let x = rlsim_sim::profile::fit_linear(&xs, &y);
    let ns = |i: usize| (x[i] / scale[i]).max(0.0) * 1e9;
    Elementwise {
        token_ns: ns(0),
        hidden_ns: ns(1),
        head_context_ns: ns(2),
        hidden_context_ns: ns(3),
        sequence_head_ns: ns(4),
        outside_token_ns: 0.0,
    }
}

/// f32 values of the copy measurement (8 MB).
const COPY_FLOATS: usize = 2 << 20;

/// Weight-set sizes of the stream measurement, megabytes: a micro model's to a few times a CPU's last-level cache.
const WEIGHT_SET_MB: [f64; 8] = [0.25, 1.0, 4.0, 8.0, 12.0, 16.0, 32.0, 64.0];

/// Weight bytes per second a 4-row matmul consumes from a set of `megabytes` of distinct [128, 512] f32 matrices,
/// read over and over (median pass after a warm-up pass), as decode iterations reread a model's weights.
fn weight_stream(megabytes: f64, dev: &candle_core::Device) -> candle_core::Result<f64> {
    let (k, n) = (128usize, 512usize);
    let bytes = (k * n * 4) as f64;
    let count = ((megabytes * (1u64 << 20) as f64 / bytes).round() as usize).max(1);
    let weights: Vec<Tensor> =
        (0..count).map(|i| Tensor::full(i as f32, (k, n), dev)).collect::<candle_core::Result<_>>()?;
    let x = Tensor::ones((4, 1, k), DType::F32, dev)?;
    let passes = (64.0 / megabytes).clamp(5.0, 64.0) as usize;
    let pass_s = median_time(passes, || {
        let mut last = None;
        for w in &weights {
            last = Some(x.broadcast_matmul(w)?);
        }
        match last {
            Some(t) => t.sum_all()?.to_scalar::<f32>().map(|_| ()),
            None => Ok(()),
        }
    })?;
    Ok(count as f64 * bytes / pass_s)
}

/// Streaming bandwidth of `dev`'s memory, GB/s, median of 7, with the tensor it read. On a CPU: a sum over 128 MB
/// of f32. On a GPU: a device-to-device copy of 1 GiB (17× an H200's L2), bytes read plus bytes written, as
/// PyTorch's copy and read measurements agree there (4.25 and 4.32 TB/s on an H200). candle's CUDA reductions
/// cannot measure it: they give each output one thread block, so a sum over the flat tensor ran on one block
/// (42 GB/s on that H200) and a sum along 1,024-value rows reached 619 GB/s, under what a decode iteration reads.
pub fn read_bandwidth(dev: &candle_core::Device) -> candle_core::Result<(f64, Tensor)> {
    if dev.is_cpu() {
        let big = Tensor::ones(32 << 20, DType::F32, dev)?;
        let read = median_time(7, || big.sum_all()?.to_scalar::<f32>().map(|_| ()))?;
        return Ok(((32u64 << 20) as f64 * 4.0 / read / 1e9, big));
    }
    let elements: usize = 256 << 20;
    let big = Tensor::ones(elements, DType::F32, dev)?;
    let copy = median_time(7, || {
        let copied = big.copy()?;
        dev.synchronize()?;
        drop(copied);
        Ok(())
    })?;
    Ok((2.0 * elements as f64 * 4.0 / copy / 1e9, big))
}

/// Runs the microbenchmarks on `device` (about ten seconds on a CPU), on a worker thread of its own as the runtime's
/// workers run.
///
/// `sharing` workers share the device (a CPU's threads of one run): the microbenchmarks then run on that many
/// threads at once and the figures are their mean, so they describe a worker while the others work too, as in the
/// run (two busy threads on two cores are slower each than one alone: shared caches, memory bandwidth, the
/// driver's thread).
pub fn measure(device: DeviceSpec, sharing: usize) -> Result<DeviceFigures, String> {
    let all: Vec<Result<DeviceFigures, String>> = std::thread::scope(|scope| {
        let threads: Vec<_> =
            (0..sharing.max(1)).map(|_| scope.spawn(|| crate::device::on_own_pool(|| measure_here(device)))).collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err("a microbenchmark thread panicked".into())))
            .collect()
    });
    let all = all.into_iter().collect::<Result<Vec<_>, _>>()?;
    let mut f = mean_figures(&all);
    if all.len() > 1 {
        f.device = format!("{} × {} at once", f.device, all.len());
    }
    Ok(f)
}

/// The field-by-field mean of figures measured at the same time (same device and host).
fn mean_figures(all: &[DeviceFigures]) -> DeviceFigures {
    let n = all.len() as f64;
    let mean = |get: &dyn Fn(&DeviceFigures) -> f64| all.iter().map(get).sum::<f64>() / n;
    let elementwise = |get: &dyn Fn(&DeviceFigures) -> Elementwise| Elementwise {
        token_ns: mean(&|f| get(f).token_ns),
        hidden_ns: mean(&|f| get(f).hidden_ns),
        head_context_ns: mean(&|f| get(f).head_context_ns),
        hidden_context_ns: mean(&|f| get(f).hidden_context_ns),
        sequence_head_ns: mean(&|f| get(f).sequence_head_ns),
        outside_token_ns: mean(&|f| get(f).outside_token_ns),
    };
    let first = &all[0];
    DeviceFigures {
        device: first.device.clone(),
        host: first.host.clone(),
        matmul_gflops: mean(&|f| f.matmul_gflops),
        read_gbytes_per_s: mean(&|f| f.read_gbytes_per_s),
        copy_gbytes_per_s: mean(&|f| f.copy_gbytes_per_s),
        weight_stream_gbytes_per_s: (0..first.weight_stream_gbytes_per_s.len())
            .map(|i| [first.weight_stream_gbytes_per_s[i][0], mean(&|f| f.weight_stream_gbytes_per_s[i][1])])
            .collect(),
        decode_overlap: first.decode_overlap,
        iteration_s: mean(&|f| f.iteration_s),
        layer_s: mean(&|f| f.layer_s),
        seq_s: mean(&|f| f.seq_s),
        seq_layer_s: mean(&|f| f.seq_layer_s),
        update_micro_batch_s: mean(&|f| f.update_micro_batch_s),
        update_layer_s: mean(&|f| f.update_layer_s),
        logprob_elementwise: elementwise(&|f| f.logprob_elementwise),
        update_elementwise: elementwise(&|f| f.update_elementwise),
        decode_elementwise: elementwise(&|f| f.decode_elementwise),
    }
}

fn measure_here(device: DeviceSpec) -> Result<DeviceFigures, String> {
    let err = |e: candle_core::Error| format!("{device}: {e}");
    let dev = device.open()?;
    let sync = crate::device::wait_for;
    let (m, k, n) = (128usize, 512usize, 2048usize);
    let a = Tensor::ones((m, k), DType::F32, &dev).map_err(err)?;
    let b = Tensor::ones((k, n), DType::F32, &dev).map_err(err)?;
    let matmul = median_time(9, || sync(&a.matmul(&b)?)).map_err(err)?;
    let (read_gbytes_per_s, big) = read_bandwidth(&dev).map_err(err)?;
    drop(big);
    // A tensor of its own: `copy` of a view clones the whole storage under it.
    let weights = Tensor::ones(COPY_FLOATS, DType::F32, &dev).map_err(err)?;
    let copy = median_time(15, || weights.copy().and_then(|c| dev.synchronize().map(|_| drop(c)))).map_err(err)?;
    let matmul_flops = 2.0 * (m * k * n) as f64 / matmul;
    let weight_stream_gbytes_per_s = WEIGHT_SET_MB
        .iter()
        .map(|&mb| weight_stream(mb, &dev).map(|r| [mb, r / 1e9]))
        .collect::<candle_core::Result<Vec<_>>>()
        .map_err(err)?;
    let decode_overlap = !dev.is_cpu();
    // Decode: t(L, B) = iteration + L·layer + B·(seq + L·seq_layer) from four corners (width 8, one head, short
    // prompts); then 4 layers × 8 sequences at (width 8 or 32) × (1 or 4 heads) × (short or long context) for the
    // work outside the matmuls.
    let mut cases: Vec<DecodeCase> = vec![
        (1, 1, 8, 1, SHORT_PROMPT),
        (4, 1, 8, 1, SHORT_PROMPT),
        (1, 8, 8, 1, SHORT_PROMPT),
        (4, 8, 8, 1, SHORT_PROMPT),
    ];
    let (widths, heads) = ([8usize, 32], [1usize, 4]);
    for &w in &widths {
        for &h in &heads {
            for p in [SHORT_PROMPT, LONG_PROMPT] {
                cases.push((4, 8, w, h, p));
            }
        }
    }
    let d = decode_iterations_s(&cases, &dev).map_err(err)?;
    let (t11, t41, t18, t48) = (d[0], d[1], d[2], d[3]);
    let seq_layer = (((t48 - t18) - (t41 - t11)) / 21.0).max(0.0);
    let layer = ((t41 - t11) / 3.0 - seq_layer).max(0.0);
    let seq = ((t18 - t11) / 7.0 - seq_layer).max(0.0);
    let iteration = (t11 - layer - seq - seq_layer).max(0.0);
    // Per sequence per layer, after the fixed costs, the weight and KV reads and the matmul FLOPs the analytic
    // model charges (its memory line at the micro model's weight bytes).
    let stream = |bytes: f64| interpolate_stream(&weight_stream_gbytes_per_s, bytes) * 1e9;
    let roofline = |width: f64, context: f64| {
        // The 4 layers, and what the model also reads and multiplies outside them: the head (vocabulary 8), the
        // learned positions, the final norm (not the input embedding, which is looked up).
        let params = 4.0 * layer_params(width) + (8.0 + MICRO_CONTEXT as f64 + 2.0) * width;
        let kv_bytes = 4.0 * 2.0 * width * 4.0 * 8.0 * context;
        let memory = (params * 4.0 + kv_bytes) / stream(params * 4.0);
        let compute = (8.0 * 2.0 * params + 8.0 * 4.0 * 4.0 * width * context) / matmul_flops;
        if decode_overlap {
            memory.max(compute)
        } else {
            memory + compute
        }
    };
    let mean_context = |prompt: usize| prompt as f64 + DECODE_ITERATIONS as f64 / 2.0;
    let decode: Vec<Observation> = cases[4..]
        .iter()
        .zip(&d[4..])
        .map(|(&(_, _, w, h, p), &t)| {
            let (width, context) = (w as f64, mean_context(p));
            Observation {
                width,
                heads: h as f64,
                context,
                tokens_per_sequence: 1.0,
                seconds: (t - iteration - 4.0 * layer - 8.0 * seq - roofline(width, context)) / 32.0,
            }
        })
        .collect();
    // Training: the fixed cost per micro-batch and per layer (two short samples, width 8, 1 or 4 layers), then per
    // token per layer at (width 8 or 32) × (1 or 4 heads) × (16 or 48 tokens per sample): the third layer's cost
    // over the first's, less the FLOPs and the per-micro-batch-and-layer cost the model charges.
    let (batch, lengths, widths) = (8usize, [16usize, 48], [8usize, 16, 32, 64]);
    let mut cases: Vec<PassCase> = vec![(1, 8, 1, 2, 5), (4, 8, 1, 2, 5)];
    let mut shapes = Vec::new();
    for &w in &widths {
        for &h in &heads {
            for &len in &lengths {
                cases.extend([(1, w, h, batch, len), (3, w, h, batch, len)]);
                shapes.push((w, h, len));
            }
        }
    }
    let p = pass_times(&cases, &dev).map_err(err)?;
    let (u1, u4) = (p[0].1, p[1].1);
    let update_layer = ((u4 - u1) / 3.0).max(0.0);
    let update_micro_batch = (u1 - update_layer).max(0.0);
    let (mut logprob, mut update) = (Vec::new(), Vec::new());
    let (mut logprob_outside, mut update_outside) = (Vec::new(), Vec::new());
    for (i, &(w, h, len)) in shapes.iter().enumerate() {
        let (one, three) = (p[2 + 2 * i], p[3 + 2 * i]);
        let tokens = (batch * len) as f64;
        let forward = (2.0 * layer_params(w as f64) + 2.0 * w as f64 * len as f64) / matmul_flops;
        let per_token_layer = |one: f64, three: f64| (three - one) / 2.0 / tokens - update_layer / tokens;
        // What one layer leaves of the one-layer model, per token: the work outside the layers, less the
        // micro-batch's fixed cost and the FLOPs of the parameters outside the layers (vocabulary 8).
        // (The model's 2·N FLOPs per token count every parameter outside the layers but the untied input
        // embedding's: the head, the learned positions, the final norm.)
        let outside_flops = 2.0 * (8.0 * w as f64 + MICRO_CONTEXT as f64 * w as f64 + 2.0 * w as f64);
        let outside = |one: f64, three: f64, passes: f64| {
            (one - (three - one) / 2.0 - update_micro_batch) / tokens - passes * outside_flops / matmul_flops
        };
        logprob_outside.push(outside(one.0, three.0, 1.0));
        update_outside.push(outside(one.1, three.1, 3.0));
        let observe = |seconds| Observation {
            width: w as f64,
            heads: h as f64,
            context: len as f64,
            tokens_per_sequence: len as f64,
            seconds,
        };
        logprob.push(observe(per_token_layer(one.0, three.0) - forward));
        update.push(observe(per_token_layer(one.1, three.1) - 3.0 * forward));
    }
    Ok(DeviceFigures {
        device: format!(
            "{device} ({} threads per worker)",
            std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into())
        ),
        host: rlsim_sim::profile::HardwareProfile::this_host(),
        matmul_gflops: matmul_flops / 1e9,
        read_gbytes_per_s,
        copy_gbytes_per_s: COPY_FLOATS as f64 * 4.0 / copy / 1e9,
        weight_stream_gbytes_per_s,
        decode_overlap,
        iteration_s: iteration,
        layer_s: layer,
        seq_s: seq,
        seq_layer_s: seq_layer,
        update_micro_batch_s: update_micro_batch,
        update_layer_s: update_layer,
        logprob_elementwise: Elementwise {
            outside_token_ns: median(logprob_outside).max(0.0) * 1e9,
            ..fit_elementwise(&logprob)
        },
        update_elementwise: Elementwise {
            outside_token_ns: median(update_outside).max(0.0) * 1e9,
            ..fit_elementwise(&update)
        },
        decode_elementwise: fit_elementwise(&decode),
    })
}

/// The weight-stream rate (GB/s) at a weight set of `bytes`: linear in log size between the measured sizes, the
/// end values beyond them.
pub fn interpolate_stream(table: &[[f64; 2]], bytes: f64) -> f64 {
    let mb = bytes / (1u64 << 20) as f64;
    match table.iter().position(|p| p[0] >= mb) {
        None => table.last().map_or(1.0, |p| p[1]),
        Some(0) => table[0][1],
        Some(i) => {
            let ([m0, r0], [m1, r1]) = (table[i - 1], table[i]);
            let f = (mb.ln() - m0.ln()) / (m1.ln() - m0.ln());
            r0 + f * (r1 - r0)
        }
    }
}

/// Parameters of one transformer layer of the micro models (MLP 4 × width), as `GptConfig::parameter_count`
/// counts them.
fn layer_params(width: f64) -> f64 {
    let (d, f) = (width, 4.0 * width);
    4.0 * d + 4.0 * d * d + 2.0 * d * f + f + d
}

/// `e` as a TOML inline table (for `--set`).
fn inline_table(e: &Elementwise) -> String {
    let fields: Vec<String> = e.fields().iter().map(|(name, v)| format!("{name} = {v:?}")).collect();
    format!("{{ {} }}", fields.join(", "))
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
        let stream = &f.weight_stream_gbytes_per_s;
        let ordered = stream.windows(2).all(|w| w[0][0] < w[1][0]);
        if stream.is_empty() || !ordered || stream.iter().flatten().any(|v| !v.is_finite() || *v <= 0.0) {
            return Err(format!(
                "{}: field `weight_stream_gbytes_per_s`: expected [megabytes, GB/s] pairs of positive numbers, sizes \
                 increasing, got {stream:?}",
                path.display()
            ));
        }
        for (table, e) in [
            ("logprob_elementwise", f.logprob_elementwise),
            ("update_elementwise", f.update_elementwise),
            ("decode_elementwise", f.decode_elementwise),
        ] {
            if let Some((name, v)) = e.fields().into_iter().find(|(_, v)| !v.is_finite() || *v < 0.0 || *v > 1e9) {
                return Err(format!(
                    "{}: field `{table}.{name}`: expected nanoseconds from 0 to 1e9, got {v}",
                    path.display()
                ));
            }
        }
        Ok(f)
    }

    /// The scenario settings that make the analytic cost model describe this device running rlsim's real backend
    /// (framework preset `rlsim-exec`) with the scenario's model: the measured matmul rate as the peak, all of it
    /// achievable; the weight stream at the model's f32 weight bytes as the decode's memory bandwidth, and the copy
    /// bandwidth for syncs and switches (the model's weights and KV are f32 here, twice the bf16 bytes the model
    /// counts, so the bandwidths are halved); whether decode overlaps reads and FLOPs; the fixed costs per
    /// iteration, layer, sequence and micro-batch (for the scenario's layers); the work outside the matmuls; and no
    /// model-parallel collectives (the real backend trains data-parallel).
    pub fn analytic_overrides(&self, s: &Scenario) -> Vec<String> {
        let layers = s.model.layers as f64;
        // f32 bytes are twice the model's bf16 count.
        // The f32 weights a decode iteration reads (twice the bf16 bytes the model counts).
        let stream = interpolate_stream(&self.weight_stream_gbytes_per_s, s.model.decode_weight_bytes() * 2.0);
        let (read, copy) = (stream / 2.0, self.copy_gbytes_per_s / 2.0);
        vec![
            "framework.preset=\"rlsim-exec\"".to_string(),
            format!("cluster.bf16_tflops={}", self.matmul_gflops / 1e3),
            "cluster.matmul_efficiency=1".to_string(),
            // The bandwidth below is this device's measured stream: no GPU's share relative to an H100 applies.
            "cluster.hbm_efficiency_vs_h100=1".to_string(),
            "cluster.layer_floor_vs_h100=1".to_string(),
            "cluster.train_efficiency_vs_h100=1".to_string(),
            // The real backend trains data-parallel only: no tensor-, expert- or pipeline-parallel collectives.
            "training.tensor_parallel=1".to_string(),
            "training.expert_parallel=1".to_string(),
            "training.pipeline_parallel=1".to_string(),
            format!("cluster.hbm_gbytes_per_s={read}"),
            format!("framework.decode_overlap={}", self.decode_overlap),
            format!("cluster.nvlink_gbytes_per_s={copy}"),
            format!("cluster.pcie_gbytes_per_s={copy}"),
            format!("rollout.iteration_overhead_ms={}", self.iteration_s * 1e3),
            format!("framework.eager_layer_us={}", self.layer_s * 1e6),
            format!("framework.seq_overhead_us={}", self.seq_s * 1e6),
            format!("framework.decode_elementwise={}", inline_table(&self.decode_elementwise)),
            format!("framework.logprob_elementwise={}", inline_table(&self.logprob_elementwise)),
            format!("framework.update_elementwise={}", inline_table(&self.update_elementwise)),
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
            weight_stream_gbytes_per_s: vec![[1.0, 40.0], [16.0, 10.0]],
            decode_overlap: false,
            iteration_s: 1e-4,
            layer_s: 2e-5,
            seq_s: 0.0,
            seq_layer_s: 8e-6,
            update_micro_batch_s: 1e-4,
            update_layer_s: 1e-4,
            logprob_elementwise: Elementwise { hidden_ns: 5.0, ..Elementwise::ZERO },
            update_elementwise: Elementwise { token_ns: 100.0, sequence_head_ns: 2000.0, ..Elementwise::ZERO },
            decode_elementwise: Elementwise { head_context_ns: 7.5, hidden_context_ns: 0.25, ..Elementwise::ZERO },
        }
    }

    #[test]
    fn the_least_squares_fit_recovers_known_terms_and_drops_negative_ones() {
        let truth = [300e-9, 40e-9, 6e-9, 0.5e-9, 2000e-9];
        let mut obs = Vec::new();
        for w in [8.0, 16.0, 32.0] {
            for h in [1.0, 4.0] {
                for c in [16.0, 48.0] {
                    let o = Observation { width: w, heads: h, context: c, tokens_per_sequence: c, seconds: 0.0 };
                    let seconds = o.terms().iter().zip(&truth).map(|(t, x)| t * x).sum();
                    obs.push(Observation { seconds, ..o });
                }
            }
        }
        let e = fit_elementwise(&obs);
        let got = [e.token_ns, e.hidden_ns, e.head_context_ns, e.hidden_context_ns, e.sequence_head_ns];
        for (g, t) in got.iter().zip(truth) {
            assert!((g - t * 1e9).abs() < 1e-6 * (t * 1e9), "{got:?}");
        }
        // A cost that falls with the width gets no negative per-width term: it is dropped and the rest refitted.
        let falling: Vec<Observation> = [8.0, 32.0]
            .iter()
            .map(|&w| Observation {
                width: w,
                heads: 1.0,
                context: 16.0,
                tokens_per_sequence: 16.0,
                seconds: 1e-6 - w * 1e-9,
            })
            .collect();
        let e = fit_elementwise(&falling);
        assert!(e.hidden_ns == 0.0 && e.fields().iter().all(|(_, v)| *v >= 0.0), "{e:?}");
    }

    #[test]
    fn the_weight_stream_is_interpolated_in_log_size() {
        let t = [[1.0, 40.0], [16.0, 10.0]];
        let mb = (1u64 << 20) as f64;
        assert_eq!(interpolate_stream(&t, 0.5 * mb), 40.0);
        assert_eq!(interpolate_stream(&t, 64.0 * mb), 10.0);
        // 4 MB is halfway from 1 to 16 MB in log size.
        assert!((interpolate_stream(&t, 4.0 * mb) - 25.0).abs() < 1e-9);
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
        let line = text.lines().position(|l| l.starts_with("seq_s =")).unwrap() + 1;
        assert!(e.contains("f.toml:") && e.contains(&format!(":{line}:")), "names the line: {e}");
        std::fs::write(&path, text.replace("[[1.0, 40.0], [16.0, 10.0]]", "[[16.0, 40.0], [1.0, 10.0]]")).unwrap();
        let e = DeviceFigures::load(&path).unwrap_err();
        assert!(e.contains("field `weight_stream_gbytes_per_s`") && e.contains("sizes increasing"), "{e}");
        std::fs::write(&path, text.replace("hidden_ns = 5.0", "hidden_ns = -5.0")).unwrap();
        let e = DeviceFigures::load(&path).unwrap_err();
        assert!(e.contains("field `logprob_elementwise.hidden_ns`"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_overrides_scale_with_the_scenario_and_carry_every_figure() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/exec-tiny.toml");
        let s = Scenario::load_unprofiled(&path, &[]).unwrap();
        let o = figures().analytic_overrides(&s);
        // exec-tiny's f32 weights (0.4 MB) stream at the small sets' 40 GB/s, halved for the bf16 count.
        assert!(o.contains(&"cluster.hbm_gbytes_per_s=20".to_string()), "{o:?}");
        assert!(o.contains(&"framework.seq_overhead_us=0".to_string()), "{o:?}");
        // 0.1 ms + 2 layers · 0.1 ms per micro-batch.
        assert!(o.iter().any(|x| x.starts_with("training.micro_batch_overhead_ms=0.3")), "{o:?}");
        let with = Scenario::load_unprofiled(&path, &o).unwrap();
        assert_eq!(with.framework.name, "rlsim-exec");
        assert!((with.rollout.layer_launch_s - 2e-5).abs() < 1e-12);
        assert!(!with.framework.decode_overlap);
        assert_eq!(with.framework.update_elementwise, figures().update_elementwise);
        assert_eq!(with.framework.decode_elementwise, figures().decode_elementwise);
        assert_eq!(with.framework.logprob_elementwise, figures().logprob_elementwise);
        // The measured matmul rate is all achievable, and nothing is priced that the backend does not run.
        assert!(with.cluster.workers.iter().all(|w| w.gpu.matmul_efficiency == 1.0));
        assert!(with.cluster.workers.iter().all(|w| w.gpu.hbm_efficiency_vs_h100 == 1.0));
        assert!(with.cluster.workers.iter().all(|w| w.gpu.layer_floor_vs_h100 == 1.0));
        assert!(with.cluster.workers.iter().all(|w| w.gpu.train_efficiency_vs_h100 == 1.0));
        let t = &with.training;
        assert_eq!((t.tensor_parallel, t.expert_parallel, t.pipeline_parallel), (1, 1, 1));
    }
}
