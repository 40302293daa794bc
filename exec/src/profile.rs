//! `rlsim profile`: measures this device with the scenario's model — decode iterations over batch sizes and
//! context lengths, prefill, log-prob and update passes over token counts, weight sync, role switch — and fits the
//! simulator's cost parameters (a `HardwareProfile`).

use crate::device::DeviceSpec;
use crate::engine::{RealEngine, SeqInput};
use crate::model::Gpt;
use crate::runtime::gpt_config;
use crate::trainer::{TrainSample, Trainer};
use rand::RngExt;
use rlsim_sim::profile::{fit_linear, HardwareProfile, ProfileSample};
use rlsim_sim::rng::RngStreams;
use rlsim_sim::scenario::{ExecLengths, Scenario};
use rlsim_sim::trajectory::TrajId;
use rlsim_sim::workload::Workload;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `reps` runs of `f` after one warm-up run.
fn time<T>(reps: usize, mut f: impl FnMut() -> candle_core::Result<T>) -> candle_core::Result<f64> {
    f()?;
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        f()?;
        v.push(t0.elapsed().as_secs_f64());
    }
    Ok(median(v))
}

/// Runs every kind of work the backend does — an engine's prefill, batched decode and sampling, a trainer's
/// log-prob passes, update and offload — once on a tiny copy of the model on `dev`, before anything is timed. On a
/// GPU candle loads each kernel module (and the driver compiles its PTX) the first time an op needs it: on an H200
/// that put ~14 s into the first step of a run (docs/cuda.md). The tiny shapes load candle's modules, not every cuBLAS
/// kernel a larger model's matmuls will pick, so a little loading may still land in a big model's first step.
/// Nothing to do on the CPU.
pub fn warm_up(s: &Scenario, cfg: crate::model::GptConfig, dev: &candle_core::Device) -> candle_core::Result<()> {
    if dev.is_cpu() {
        return Ok(());
    }
    every_kind_of_work(s, cfg, dev)
}

/// What `warm_up` runs (on any device, so the CPU test suite exercises it).
fn every_kind_of_work(
    s: &Scenario,
    cfg: crate::model::GptConfig,
    dev: &candle_core::Device,
) -> candle_core::Result<()> {
    let tiny = crate::model::GptConfig { d_model: 8, layers: 1, heads: 2, ffn: 16, context: 12, ..cfg };
    let streams = RngStreams::new(0);
    let mut engine = RealEngine::new(
        Gpt::new(tiny, &mut streams.stream("warm-up/engine"), dev)?,
        4,
        64,
        true,
        ExecLengths::Trace,
        s.exec.eos_token,
        streams.stream("warm-up/sample"),
    );
    // Token ids within any vocabulary (a valid one has at least 2 ids), never the end-of-sequence id.
    let vocab = cfg.vocab.max(2) as u32;
    let eos = s.exec.eos_token;
    let token = |i: u32| (0..vocab).cycle().skip(i as usize).find(|&t| t != eos).unwrap_or(0);
    for id in 0..3u64 {
        let prompt: Vec<u32> = (1..5).map(token).collect();
        engine.enqueue(SeqInput {
            traj: TrajId(id),
            group: 0,
            prompt,
            response: vec![],
            logprobs: vec![],
            target: 3 + id as u32,
        });
    }
    while !engine.is_empty() {
        engine.step(&|| 0)?;
    }
    engine.release();
    let reference = Some(Gpt::new(tiny, &mut streams.stream("warm-up/reference"), dev)?);
    let model = Gpt::new(tiny, &mut streams.stream("warm-up/trainer"), dev)?;
    let passes = vec![rlsim_sim::scenario::LogProbPass::Old, rlsim_sim::scenario::LogProbPass::Reference];
    let mut trainer = Trainer::new(model, reference, s.exec.clone(), passes, 16, 1)?;
    let samples: Vec<TrainSample> = (0..2)
        .map(|i| TrainSample {
            group: 0,
            prompt: (1..4).map(token).collect(),
            response: vec![token(4), token(5), token(6 + i)],
            behaviour_logprobs: vec![-1.0; 3],
            reward: i as f32,
        })
        .collect();
    trainer
        .step(&samples, &|| 0, &crate::trainer::NeverAbort)?
        .map_err(|_| candle_core::Error::Msg("aborted".into()))?;
    trainer.offload()?;
    trainer.onload()?;
    dev.synchronize()
}

/// (batch size, context tokens, seconds) of one decode iteration.
type DecodeSample = (f64, f64, f64);

/// (batch, context tokens, seconds) of every pure decode iteration (no admission) of one engine working through
/// the scenario's workload, after a warm-up pass over other groups.
fn decode_samples(
    s: &Scenario,
    cfg: crate::model::GptConfig,
    dev: &candle_core::Device,
    engine_index: u64,
) -> candle_core::Result<Vec<DecodeSample>> {
    let streams = RngStreams::new(s.seed);
    let mut rng = streams.indexed("profile/decode", engine_index);
    let workload = Workload::new(s.workload.clone(), s.seed);
    let longest = cfg.context - 1;
    let groups = (2 * s.workload.prompts_per_step as u64).max(8);
    let mut out = Vec::new();
    for pass in 0..2u64 {
        let mut engine = RealEngine::new(
            Gpt::new(cfg, &mut streams.stream("exec/init"), dev)?,
            s.rollout.max_num_seqs,
            s.rollout.kv_capacity_tokens.unwrap_or(u64::MAX / 4),
            s.rollout.prefix_caching,
            ExecLengths::Trace,
            s.exec.eos_token,
            streams.indexed("profile/sample", engine_index),
        );
        let mut id = 0;
        let first = (engine_index * 2 + pass) * groups;
        for g in first..first + groups {
            let lengths = workload.group(g, (g / s.workload.prompts_per_step as u64) as u32);
            let prompt: Vec<u32> = (0..lengths.prompt_tokens).map(|_| rng.random_range(1..cfg.vocab as u32)).collect();
            for &r in &lengths.responses {
                engine.enqueue(SeqInput {
                    traj: TrajId(id),
                    group: g,
                    prompt: prompt.clone(),
                    response: vec![],
                    logprobs: vec![],
                    target: r.min((longest - prompt.len()) as u32).max(1),
                });
                id += 1;
            }
        }
        while !engine.is_empty() {
            let before = engine.stats.prefill_tokens;
            let t0 = Instant::now();
            engine.step(&|| 0)?;
            let secs = t0.elapsed().as_secs_f64();
            if pass == 1 && engine.stats.prefill_tokens == before {
                out.push((engine.stats.last_batch as f64, engine.stats.last_context as f64, secs));
            }
        }
    }
    Ok(out)
}

/// Measures and fits. Takes tens of seconds for a tiny model on a CPU. Runs on a worker thread, as the runtime's
/// workers do (the main thread's allocator arena behaves differently and is measurably slower).
///
/// `gpu_sharing`: how many of the run's rollout engines share this device when it is a GPU (1 when each has its
/// own); that many engines decode on it at once while the decode iterations are timed. On a CPU every core runs an
/// engine. The train passes are timed with every rank of the layout's train group on this one device, as a run on
/// one GPU (`cuda:N`) places them; where each rank has a GPU of its own they are timed too slow.
pub fn measure(s: &Scenario, device: DeviceSpec, gpu_sharing: usize) -> Result<HardwareProfile, String> {
    crate::runtime::reject_simulated_only(s)?;
    std::thread::scope(|scope| {
        scope.spawn(|| crate::device::on_own_pool(|| measure_here(s, device, gpu_sharing))).join()
    })
    .map_err(|_| "the profiling thread panicked".to_string())?
}

fn measure_here(s: &Scenario, device: DeviceSpec, gpu_sharing: usize) -> Result<HardwareProfile, String> {
    let cfg = gpt_config(s)?;
    let dev = device.open()?;
    crate::device::one_thread_per_worker(device);
    let err = |e: candle_core::Error| format!("profiling on {device}: {e}");
    warm_up(s, cfg, &dev).map_err(err)?;
    let streams = RngStreams::new(s.seed);
    let model = Gpt::new(cfg, &mut streams.stream("exec/init"), &dev).map_err(err)?;
    let mut rng = streams.stream("profile");
    let mut tokens = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(1..cfg.vocab as u32)).collect() };
    let mut samples = Vec::new();

    // Decode: real engine iterations (sampling included) while engines work through the scenario's own workload —
    // prompt groups with their real length mix, joining and leaving the batch — timed one by one. On a CPU one
    // engine per core runs at once: in a run every core is busy (engines, or an engine beside the trainer), and on
    // a small virtual machine a lone busy thread is measurably slower than one beside busy neighbours. On a GPU as
    // many engines run at once as the run puts on it (a core count of engines, 16 on an H200 host, all queueing on
    // one GPU, made the profiled iteration's fixed cost 8.7–10.9× the one measured with the run's count).
    let longest = cfg.context - 1;
    let workload = Workload::new(s.workload.clone(), s.seed);
    let engines = if dev.is_cpu() {
        std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16)
    } else {
        gpu_sharing.clamp(1, 16)
    };
    let runs: Vec<Result<Vec<DecodeSample>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..engines)
            .map(|i| {
                let dev = dev.clone();
                scope.spawn(move || {
                    crate::device::on_own_pool(|| {
                        decode_samples(s, cfg, &dev, i as u64).map_err(|e| format!("profiling on {device}: {e}"))
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a profiling thread panicked".into()))).collect()
    });
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for run in runs {
        for (k, (b, context, secs)) in run?.into_iter().enumerate() {
            xs.push(vec![1.0, b, context]);
            ys.push(secs);
            if k % 16 == 0 {
                samples.push(ProfileSample { what: "decode".into(), x1: b, x2: context, seconds: secs });
            }
        }
    }
    if xs.len() < 3 {
        return Err(format!("profiling on {device}: the workload gave only {} decode iterations to fit", xs.len()));
    }
    let decode = fit_linear(&xs, &ys);

    // Prefill: one sequence of P tokens at a time (as the engine does).
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    let mut cache = crate::model::KvCache::new(&cfg, 1, &dev).map_err(err)?;
    let slot = cache.claim().map_err(err)?;
    for p in [2usize, longest / 4, longest / 2, longest - 1].into_iter().filter(|&p| p >= 1) {
        let t = tokens(p);
        let secs = time(9, || {
            model.prefill(&mut cache, slot, &t)?;
            dev.synchronize().map(|_| p)
        })
        .map_err(err)?;
        xs.push(vec![1.0, p as f64]);
        ys.push(secs);
        samples.push(ProfileSample { what: "prefill".into(), x1: 1.0, x2: p as f64, seconds: secs });
    }
    let prefill = fit_linear(&xs, &ys);

    // Train: log-prob passes and the update over batches of different token counts.
    // The trainer exactly as the runtime builds it: the scenario's log-prob passes (with a frozen reference model
    // when one is asked for) and micro-batching.
    let trainer_model = Gpt::new(cfg, &mut streams.stream("exec/init"), &dev).map_err(err)?;
    let reference = if s.training.logprob_passes.contains(&rlsim_sim::scenario::LogProbPass::Reference) {
        Some(Gpt::new(cfg, &mut streams.stream("exec/init"), &dev).map_err(err)?)
    } else {
        None
    };
    let mut trainer = Trainer::new(
        trainer_model,
        reference,
        s.exec.clone(),
        s.training.logprob_passes.clone(),
        s.training.micro_batch_tokens,
        s.training.mini_batches,
    )
    .map_err(err)?;
    let ranks = s.cluster.with_tag("train").count().max(1);
    let (mut xl, mut yl, mut xu, mut yu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Batches drawn from the scenario's own workload, so their mix of lengths (and padding) is the real one.
    let groups_per_step = s.workload.prompts_per_step as u64;
    let mut serial = 1_000_000u64;
    for groups in [1, groups_per_step / 4, groups_per_step / 2, groups_per_step, groups_per_step * 2]
        .into_iter()
        .filter(|&g| g >= 1)
    {
        for _ in 0..2 {
            let mut batch = Vec::new();
            for _ in 0..groups {
                let g = workload.group(serial, (serial / s.workload.prompts_per_step as u64) as u32);
                let prompt = tokens(g.prompt_tokens as usize);
                for (i, &r) in g.responses.iter().enumerate() {
                    let r = (r as usize).min(cfg.context - prompt.len()).max(1);
                    batch.push(TrainSample {
                        group: serial,
                        prompt: prompt.clone(),
                        response: tokens(r),
                        behaviour_logprobs: vec![-1.0; r],
                        reward: (i % 3) as f32 / 2.0,
                    });
                }
                serial += 1;
            }
            // Every rank of the layout's train group at once, as in a run (cores shared, all-reduces included); the
            // step waits for its slowest rank, so each repetition counts the slowest rank's time.
            let per_rank = train_ranked(s, cfg, &dev, &batch, ranks, 7).map_err(err)?;
            let (mut logprob, mut update) = (Vec::new(), Vec::new());
            for rep in 0..7 {
                let lp_passes = per_rank[0][rep].logprob_ns.len();
                for pass in 0..lp_passes {
                    let slowest = per_rank.iter().map(|r| r[rep].logprob_ns[pass]).map(|(a, b)| b - a).max();
                    logprob.push(slowest.unwrap_or(0) as f64 / 1e9);
                }
                let slowest = per_rank.iter().map(|r| r[rep].update_ns.1 - r[rep].update_ns.0).max().unwrap_or(0);
                update.push(slowest as f64 / 1e9);
            }
            let lengths: Vec<u64> = batch.iter().map(|b| (b.prompt.len() + b.response.len()) as u64).collect();
            // Per padded token slot, as the trainer computes them (and `ProfiledCosts` prices them).
            let (share, update_tokens, _) = rlsim_sim::costs::train::padded_slowest_rank_tokens(
                &lengths,
                ranks,
                s.training.mini_batches as usize,
                s.training.micro_batch_tokens as u64,
            );
            let passes = s.training.logprob_passes.len().max(1);
            let (lp, up) = if logprob.is_empty() {
                (0.0, median(update[1..].to_vec()))
            } else {
                (median(logprob[passes..].to_vec()), median(update[1..].to_vec()))
            };
            xl.push(vec![1.0, share as f64]);
            yl.push(lp);
            xu.push(vec![1.0, update_tokens as f64]);
            yu.push(up);
            // x2: the padded slots the line was fitted on (the slowest rank's share, and summed over its steps).
            samples.push(ProfileSample {
                what: "logprob".into(),
                x1: batch.len() as f64,
                x2: share as f64,
                seconds: lp,
            });
            samples.push(ProfileSample {
                what: "update".into(),
                x1: batch.len() as f64,
                x2: update_tokens as f64,
                seconds: up,
            });
        }
    }
    let logprob = fit_linear(&xl, &yl);
    let update = fit_linear(&xu, &yu);

    // Weight sync: snapshot the trainer's weights and load them into an engine's model.
    let sync = time(5, || {
        model.load(&trainer.model.snapshot()?)?;
        dev.synchronize()
    })
    .map_err(err)?;
    samples.push(ProfileSample { what: "sync".into(), x1: 0.0, x2: 0.0, seconds: sync });
    // Switch: a worker's own switch (`runtime::switch_role`) to train and back (the two halves, averaged), and the
    // KV cache the engine freed allocated again, as its first admission after the switch does. Where a train worker
    // also decodes (colocated, partial, seamless's lendable workers) it holds a trainer too, whose state an
    // offloading framework moves to the host and back.
    let mut engine = RealEngine::new(
        Gpt::new(cfg, &mut streams.stream("exec/init"), &dev).map_err(err)?,
        s.rollout.max_num_seqs,
        s.rollout.kv_capacity_tokens.unwrap_or(u64::MAX / 4),
        s.rollout.prefix_caching,
        ExecLengths::Trace,
        s.exec.eos_token,
        streams.indexed("profile/sample", u64::MAX),
    );
    engine.allocate_cache().map_err(err)?;
    let time_sliced = s.cluster.with_tag("train").any(|w| w.has_tag("rollout"));
    let offload = s.framework.offload;
    let mut parked = None;
    // A run switches a worker after it has decoded or trained, its caches full of other data: each half is timed
    // after the same 64 MB read the train passes of such a layout are timed after.
    let evict = candle_core::Tensor::ones(EVICT_FLOATS, candle_core::DType::F32, &dev).map_err(err)?;
    let mut halves = Vec::new();
    for round in 0..6 {
        use rlsim_sim::cost::Role;
        let mut seconds = 0.0;
        for role in [Role::Train, Role::Rollout] {
            evict.sum_all().and_then(|x| x.to_scalar::<f32>()).map_err(err)?;
            let t0 = Instant::now();
            let t = time_sliced.then_some(&mut trainer);
            crate::runtime::switch_role(role, Some(&mut engine), t, &mut parked, None, offload).map_err(err)?;
            if role == Role::Rollout {
                engine.allocate_cache().map_err(err)?;
            }
            dev.synchronize().map_err(err)?;
            seconds += t0.elapsed().as_secs_f64();
        }
        // The first round warms up.
        if round > 0 {
            halves.push(seconds / 2.0);
        }
    }
    let switch = median(halves);
    // Each round ends with the training state offloaded (a rollout engine's worker): bring it back for what follows;
    // the engine (a second model and a full KV cache) is done.
    trainer.onload().map_err(err)?;
    drop(engine);
    samples.push(ProfileSample { what: "switch".into(), x1: 0.0, x2: 0.0, seconds: switch });
    // Gradient all-reduce of a two-rank group: gradient-sized tensors from two threads, summed in rank order.
    let allreduce = allreduce_seconds(&trainer.model).map_err(err)?;
    samples.push(ProfileSample { what: "allreduce".into(), x1: 2.0, x2: 0.0, seconds: allreduce });

    Ok(HardwareProfile {
        device: format!(
            "{device} ({} threads per worker)",
            std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into())
        ),
        host: HardwareProfile::this_host(),
        model: format!(
            "layers={} d_model={} heads={} vocab={} context={} params={}",
            cfg.layers,
            cfg.d_model,
            cfg.heads,
            cfg.vocab,
            cfg.context,
            cfg.parameter_count()
        ),
        decode_overhead_s: decode[0],
        decode_s_per_seq: decode[1],
        decode_s_per_context_token: decode[2],
        prefill_s_per_seq: prefill[0],
        prefill_s_per_token: prefill[1],
        logprob_overhead_s: logprob[0],
        logprob_s_per_token: logprob[1],
        update_overhead_s: update[0],
        update_s_per_token: update[1],
        sync_s: sync,
        switch_s: switch,
        allreduce_s: allreduce,
        train_ranks: ranks as u32,
        train_unit: rlsim_sim::profile::TRAIN_UNIT.to_string(),
        samples,
    })
}

/// Median wall time of one all-reduce of `model`'s gradient-sized tensors between two ranks on two threads.
fn allreduce_seconds(model: &Gpt) -> candle_core::Result<f64> {
    use crate::collective::{AllReduce, GradReduce};
    let grads: Vec<candle_core::Tensor> =
        model.vars.iter().map(|v| v.as_tensor().ones_like()).collect::<candle_core::Result<_>>()?;
    let reduce = AllReduce::new(2);
    let rounds = 11;
    let times = std::thread::scope(|s| -> candle_core::Result<Vec<f64>> {
        let other = s.spawn(|| -> candle_core::Result<()> {
            for _ in 0..rounds {
                reduce.all_reduce(1, Some(grads.clone()), &|| false)?;
            }
            Ok(())
        });
        let mut times = Vec::new();
        for _ in 0..rounds {
            let t0 = Instant::now();
            let sum = reduce.all_reduce(0, Some(grads.clone()), &|| false)?;
            // Force the sum (lazy devices).
            if let Some(g) = sum.as_ref().and_then(|g| g.last().cloned()) {
                crate::device::wait_for(&g)?;
            }
            times.push(t0.elapsed().as_secs_f64());
        }
        other.join().map_err(|_| candle_core::Error::Msg("all-reduce profiling thread panicked".into()))??;
        Ok(times)
    })?;
    Ok(median(times[1..].to_vec()))
}

/// f32 values read before each timed train step of a time-sliced layout and before each timed half of a switch (64 MB,
/// more than a CPU's last-level cache).
const EVICT_FLOATS: usize = 16 << 20;

/// Timings of `reps` train steps on `batch` by each of `ranks` ranks running at once, each on a thread (and a
/// one-thread candle pool) of its own with its own trainer, as the runtime's train group does.
fn train_ranked(
    s: &Scenario,
    cfg: crate::model::GptConfig,
    dev: &candle_core::Device,
    batch: &[TrainSample],
    ranks: usize,
    reps: usize,
) -> candle_core::Result<Vec<Vec<crate::trainer::TrainTimings>>> {
    let reduce = crate::collective::AllReduce::new(ranks);
    let t0 = Instant::now();
    let clock = move || t0.elapsed().as_nanos() as u64;
    let time_sliced = s.cluster.with_tag("train").any(|w| w.has_tag("rollout"));
    // Such a worker's framework may also move the training state to the host while it decodes: the step then
    // starts on state copied back just before (fresh buffers), as in the run. (Seamless's lendable workers do so
    // only for the steps after a lend; the profile treats every step alike.)
    let offloads = time_sliced && s.framework.offload;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..ranks)
            .map(|rank| {
                let reduce = reduce.clone();
                scope.spawn(move || {
                    crate::device::on_own_pool(|| -> candle_core::Result<Vec<crate::trainer::TrainTimings>> {
                        let streams = RngStreams::new(s.seed);
                        let uses_reference =
                            s.training.logprob_passes.contains(&rlsim_sim::scenario::LogProbPass::Reference);
                        let reference = if uses_reference {
                            Some(Gpt::new(cfg, &mut streams.stream("exec/init"), dev)?)
                        } else {
                            None
                        };
                        let mut trainer = Trainer::new(
                            Gpt::new(cfg, &mut streams.stream("exec/init"), dev)?,
                            reference,
                            s.exec.clone(),
                            s.training.logprob_passes.clone(),
                            s.training.micro_batch_tokens,
                            s.training.mini_batches,
                        )?;
                        // A train worker that also carries `rollout` (colocated, partial, seamless's lendable ones)
                        // starts each step after its engine has decoded: its weights and optimizer state were evicted
                        // from the caches meanwhile. Evict them here too.
                        let evict = if time_sliced {
                            Some(candle_core::Tensor::ones(EVICT_FLOATS, candle_core::DType::F32, dev)?)
                        } else {
                            None
                        };
                        (0..reps)
                            .map(|_| {
                                if offloads {
                                    trainer.offload()?;
                                }
                                if let Some(e) = &evict {
                                    e.sum_all()?.to_scalar::<f32>()?;
                                }
                                if offloads {
                                    trainer.onload()?;
                                }
                                // Nothing kills a profiling step: both arms hold the whole step's timings.
                                let t = trainer.step_ranked(
                                    batch,
                                    rank,
                                    ranks,
                                    &*reduce,
                                    &clock,
                                    &crate::trainer::NeverAbort,
                                )?;
                                Ok(t.unwrap_or_else(|t| t))
                            })
                            .collect()
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| candle_core::Error::Msg("a profiling rank panicked".into()))?)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The warm-up a GPU run does before its clock starts (engine, trainer, offload), run on the CPU so the suite
    /// exercises it; on the CPU itself `warm_up` does nothing.
    #[test]
    fn the_warm_up_runs_every_kind_of_work() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/exec-tiny.toml");
        let s = Scenario::load(&path, &[]).unwrap();
        let cfg = gpt_config(&s).unwrap();
        every_kind_of_work(&s, cfg, &candle_core::Device::Cpu).unwrap();
        warm_up(&s, cfg, &candle_core::Device::Cpu).unwrap();
        // Its token ids stay inside the smallest vocabularies, whichever id ends a sequence.
        for (vocab, eos) in [(2, 0), (2, 1), (3, 2)] {
            let mut s = s.clone();
            s.exec.eos_token = eos;
            every_kind_of_work(&s, crate::model::GptConfig { vocab, ..cfg }, &candle_core::Device::Cpu).unwrap();
        }
    }
}
