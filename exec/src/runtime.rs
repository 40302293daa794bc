//! The real backend's effects: the shared [`Driver`] runs the same Policy implementations as the simulator, and this
//! module carries out their Commands on real worker threads (each owning a candle device) and reports completions
//! back to it, so both backends record the same Timeline and the same Report function applies.

use crate::collective::AllReduce;
use crate::device::DeviceChoice;
use crate::engine::{RealEngine, RealEngineStats, SeqInput, SeqOutput};
use crate::model::{Gpt, GptConfig, KvCache};
use crate::task;
use crate::trainer::{RatioStats, TrainSample, TrainTimings, Trainer};
use candle_core::Tensor;
use rlsim_sim::cluster::WorkerId;
use rlsim_sim::cost::Role;
use rlsim_sim::driver::{Backend, Driver, RunError, SyncOrder};
use rlsim_sim::policy::{build_policy, Activity, Command, Event, Policy};
use rlsim_sim::report::{report, Report, RunMeta};
use rlsim_sim::rng::RngStreams;
use rlsim_sim::scenario::{LogProbPass, Scenario};
use rlsim_sim::time::SimTime;
use rlsim_sim::timeline::{CounterKind, SpanKind, Timeline};
use rlsim_sim::trajectory::{TrajId, TrajectoryManager};
use rlsim_sim::workload::GroupLengths;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A finished real run.
pub struct ExecRun {
    pub timeline: Timeline,
    pub report: Report,
    pub trajectories: TrajectoryManager,
    /// Mean verifier reward of each train step's batch, in step order.
    pub step_rewards: Vec<f32>,
    pub step_losses: Vec<f32>,
    /// The importance ratios each train step's update saw, in step order.
    pub step_ratios: Vec<RatioStats>,
    /// What each worker thread counted of its own work, by worker id.
    pub worker_work: Vec<WorkerWork>,
}

/// The run's clock: nanoseconds since it started, which is once every worker has built its models (building them
/// is set-up, which the simulator does not time either).
#[derive(Clone)]
struct Clock(Arc<std::sync::OnceLock<Instant>>);

impl Clock {
    fn ns(&self) -> u64 {
        self.0.get().map_or(0, |t| t.elapsed().as_nanos() as u64)
    }

    fn start(&self) {
        let _ = self.0.set(Instant::now());
    }
}

enum ToWorker {
    Admit(Vec<SeqInput>),
    Pause(Option<Vec<TrajId>>),
    /// Train as one rank of the step's data-parallel group.
    Train(TrainOrder),
    /// An injected failure: the engine loses every sequence and its KV cache at once; the tokens generated so far
    /// come back (they had been streamed to the controller) and are resumed elsewhere.
    Crash,
    Snapshot,
    Load(Arc<Vec<Tensor>>),
    /// Retag to this role; becoming a rollout engine loads these weights (the trainer's latest).
    Switch(Role, Option<Arc<Vec<Tensor>>>),
    Stop,
}

/// One rank's part of a train step.
struct TrainOrder {
    /// The whole batch: every rank plans the same split and trains on its share.
    samples: Arc<Vec<TrainSample>>,
    /// Wait this long for the batch's reward first (nanoseconds; emulates a verifier).
    reward_wait_ns: u64,
    /// The attempt's number: the driver kills attempt `n` by storing `n` in the abort cell.
    attempt: u64,
    rank: usize,
    ranks: usize,
    /// The gradient all-reduce shared by the attempt's ranks.
    reduce: Arc<AllReduce>,
}

/// What one worker thread did, counted by the thread itself (checked against the timeline by the tests).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WorkerWork {
    /// Train steps this thread ran to the end as a rank, and the tokens it computed on in them.
    pub train_steps: u32,
    pub train_tokens: u64,
    /// Wall time this thread spent in its train steps' log-prob passes and updates, ns.
    pub train_ns: u64,
    /// CPU time the thread used in those train steps (from the first log-prob pass to the end of the update) and
    /// over the whole run, ns (0 where the platform cannot tell).
    pub train_cpu_ns: u64,
    pub cpu_ns: u64,
}

/// CPU time of the calling thread, ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

enum FromWorker {
    /// The worker has built its models and waits for work.
    Ready,
    /// `admits_seen`: how many Admit messages the worker had taken in when it sent this, so the driver can tell a
    /// drain that an Admit still in flight is about to undo.
    Progress {
        worker: WorkerId,
        finished: Vec<SeqOutput>,
        drained: bool,
        admits_seen: u64,
    },
    Paused {
        worker: WorkerId,
        outputs: Vec<SeqOutput>,
        drained: bool,
        admits_seen: u64,
    },
    /// One rank's timings; rank 0 also sends the new weights (kept by the driver for workers retagged to rollout
    /// later).
    TrainDone {
        worker: WorkerId,
        timings: TrainTimings,
        weights: Option<Arc<Vec<Tensor>>>,
        /// When the trainer waited for the batch's reward (ns since the run began).
        reward: (u64, u64),
    },
    Snapshot {
        weights: Arc<Vec<Tensor>>,
    },
    Loaded,
    Switched {
        worker: WorkerId,
        role: Role,
        start_ns: u64,
        end_ns: u64,
    },
    Stats {
        worker: WorkerId,
        stats: RealEngineStats,
        work: WorkerWork,
    },
    Failed {
        worker: WorkerId,
        message: String,
    },
    /// The engine's sequences at the moment it was killed.
    Crashed {
        worker: WorkerId,
        outputs: Vec<SeqOutput>,
    },
    /// One rank of a train attempt killed before its last optimizer step: what ran of it (the weights and optimizer
    /// state are back to where the attempt started).
    TrainAborted {
        worker: WorkerId,
        timings: TrainTimings,
        reward: (u64, u64),
    },
    /// The engine's batch changed (sent only then): for the trace's counters, never for a decision.
    Load {
        worker: WorkerId,
        at_ns: u64,
        running: usize,
        waiting: usize,
        kv_tokens: u64,
    },
}

/// What one worker thread owns.
struct WorkerSetup {
    id: WorkerId,
    device: candle_core::Device,
    cfg: GptConfig,
    seed: u64,
    engine: bool,
    trainer: bool,
    scenario: Scenario,
    /// The train attempt to kill (0: none).
    abort: Arc<AtomicU64>,
    /// Move the training state to host memory while the worker holds a rollout engine (`framework.offload`).
    offload: bool,
    starts_as_rollout: bool,
}

/// What only the simulator models: a coarse-grained scenario (`workload.coarsen` > 1; the real backend runs every
/// sequence) and speculative decoding (`rollout.speculative_tokens`; its engine decodes one token a step).
pub fn reject_simulated_only(s: &Scenario) -> Result<(), String> {
    if s.workload.coarsen > 1 {
        return Err(format!(
            "{}: field `workload.coarsen`: a coarse-grained run (each group standing for {} identical ones) is simulated only; the real backend runs (and profiles) every sequence (remove workload.coarsen to run it)",
            s.file.display(),
            s.workload.coarsen
        ));
    }
    if s.rollout.speculative_tokens > 0 {
        return Err(format!(
            "{}: field `rollout.speculative_tokens`: speculative decoding ({} draft tokens a step) is simulated only; the real backend's engine decodes one token a step (remove rollout.speculative_tokens to run it)",
            s.file.display(),
            s.rollout.speculative_tokens
        ));
    }
    Ok(())
}

/// The model shape a scenario describes: `[model]` layers, hidden, heads, vocab; context = prompt + response caps.
pub fn gpt_config(s: &Scenario) -> Result<GptConfig, String> {
    let m = &s.model;
    if m.is_mla() {
        return Err(format!(
            "{}: field `model.kv_lora_rank`: the real backend's transformer has plain multi-head attention, not multi-head latent attention (got kv_lora_rank {}); simulate this model with `rlsim run`",
            s.file.display(), m.kv_lora_rank
        ));
    }
    if !m.hidden.is_multiple_of(m.heads) || m.kv_heads != m.heads {
        return Err(format!(
            "{}: field `model`: the real backend's transformer needs hidden divisible by heads and kv_heads = heads (got hidden {}, heads {}, kv_heads {})",
            s.file.display(), m.hidden, m.heads, m.kv_heads
        ));
    }
    let cfg = GptConfig {
        vocab: m.vocab as usize,
        d_model: m.hidden as usize,
        layers: m.layers as usize,
        heads: m.heads as usize,
        ffn: GptConfig::ffn_for(m.layers as usize, m.hidden as usize, m.heads as usize, m.vocab as usize),
        context: (s.workload.max_prompt_tokens + s.workload.max_response_tokens) as usize,
    };
    let real = cfg.parameter_count() as f64;
    if (m.params_b * 1e9 - real).abs() > 0.05 * real {
        return Err(format!(
            "{}: field `model.params_b`: {} does not describe the model the real backend builds from these dimensions ({:.9} billion parameters); set params_b = {:.9}",
            s.file.display(), m.params_b, real / 1e9, real / 1e9
        ));
    }
    Ok(cfg)
}

/// Bytes of host memory the OS says a new allocation can take (`MemAvailable`); `None` where it cannot tell.
pub fn available_host_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses a CPU run whose models cannot fit in host memory, before allocating them (a 6.5B model used to abort
/// the process with an allocation failure). Counted: one f32 copy per rollout engine and for every other worker,
/// plus the trainer's gradients and two Adam moments, and each worker's preallocated KV cache (any may roll out).
pub fn check_host_memory(s: &Scenario, cfg: &GptConfig, available: Option<u64>) -> Result<(), String> {
    let Some(available) = available else { return Ok(()) };
    let copies = s.cluster.workers.len() as u64 + 3;
    let slots = (s.rollout.max_num_seqs as u64).min(s.rollout.kv_capacity_tokens.unwrap_or(u64::MAX)).max(1);
    let kv_bytes = KvCache::bytes(cfg, slots as usize) * s.cluster.workers.len() as u64;
    let need = cfg.parameter_count() as u64 * 4 * copies + kv_bytes;
    // Leave a quarter for activations and the rest of the machine.
    if need > available / 4 * 3 {
        return Err(format!(
            "{}: field `model`: {} parameters × 4 bytes × {copies} copies ({} workers + gradients and Adam state) and {:.1} GiB of KV-cache slots need {:.1} GiB, but this machine has {:.1} GiB available; the CPU backend runs models of up to a few hundred million parameters — use a smaller model or fewer workers",
            s.file.display(),
            cfg.parameter_count(),
            s.cluster.workers.len(),
            kv_bytes as f64 / (1u64 << 30) as f64,
            need as f64 / (1u64 << 30) as f64,
            available as f64 / (1u64 << 30) as f64
        ));
    }
    Ok(())
}

fn worker_main(setup: WorkerSetup, rx: Receiver<ToWorker>, tx: Sender<FromWorker>, clock: Clock) {
    let id = setup.id;
    let fail_tx = tx.clone();
    let result = (|| -> candle_core::Result<()> {
        let s = &setup.scenario;
        let streams = RngStreams::new(setup.seed);
        // Every copy of the model starts from the same weights: version 0 everywhere.
        let fresh = || Gpt::new(setup.cfg, &mut streams.stream("exec/init"), &setup.device);
        let mut engine = if setup.engine {
            Some(RealEngine::new(
                fresh()?,
                s.rollout.max_num_seqs,
                s.rollout.kv_capacity_tokens.unwrap_or(u64::MAX / 4),
                s.rollout.prefix_caching,
                s.exec.lengths,
                s.exec.eos_token,
                streams.indexed("exec/sample", id.0 as u64),
            ))
        } else {
            None
        };
        let mut trainer = if setup.trainer {
            let reference =
                if s.training.logprob_passes.contains(&LogProbPass::Reference) { Some(fresh()?) } else { None };
            Some(Trainer::new(
                fresh()?,
                reference,
                s.exec.clone(),
                s.training.logprob_passes.clone(),
                s.training.micro_batch_tokens,
                s.training.mini_batches,
            )?)
        } else {
            None
        };
        // A worker that starts as a rollout engine starts with its training state offloaded, as after a switch.
        if let (true, Some(t)) = (setup.offload && setup.engine && setup.starts_as_rollout, trainer.as_mut()) {
            t.offload()?;
        }
        // What a colocated switch moved off the device: the state not in use.
        let mut parked: Option<Vec<Tensor>> = None;
        let _ = tx.send(FromWorker::Ready);
        let mut admits_seen = 0u64;
        let mut work = WorkerWork::default();
        let cpu_start = thread_cpu_ns();
        let now = || clock.ns();
        let send = |m: FromWorker| {
            let _ = tx.send(m);
        };
        // The engine's (running, waiting) last reported in a `Load`.
        let mut reported = (0, 0);
        let mut report_load = |e: &RealEngine| {
            let (running, waiting, kv_tokens) = e.load();
            if (running, waiting) != reported {
                reported = (running, waiting);
                send(FromWorker::Load { worker: id, at_ns: now(), running, waiting, kv_tokens });
            }
        };
        loop {
            if let Some(e) = engine.as_ref() {
                report_load(e);
            }
            let busy = engine.as_ref().is_some_and(|e| !e.is_empty());
            let msg = if busy {
                match rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return Ok(()),
                }
            } else {
                match rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return Ok(()),
                }
            };
            let Some(msg) = msg else {
                let e = engine.as_mut().expect("busy implies an engine");
                let finished = e.step(&now)?;
                let drained = e.is_empty();
                if !finished.is_empty() || drained {
                    send(FromWorker::Progress { worker: id, finished, drained, admits_seen });
                }
                continue;
            };
            match msg {
                ToWorker::Admit(seqs) => {
                    let e = engine.as_mut().ok_or_else(|| candle_core::Error::Msg("no rollout engine".into()))?;
                    seqs.into_iter().for_each(|s| e.enqueue(s));
                    admits_seen += 1;
                }
                ToWorker::Pause(which) => {
                    let e = engine.as_mut().ok_or_else(|| candle_core::Error::Msg("no rollout engine".into()))?;
                    let list = which.unwrap_or_else(|| e.resident());
                    let outputs: Vec<SeqOutput> =
                        list.into_iter().filter_map(|t| e.remove(t).transpose()).collect::<candle_core::Result<_>>()?;
                    send(FromWorker::Paused { worker: id, outputs, drained: e.is_empty(), admits_seen });
                }
                ToWorker::Train(order) => {
                    let t = trainer.as_mut().ok_or_else(|| candle_core::Error::Msg("no trainer".into()))?;
                    let reward_start = now();
                    if order.reward_wait_ns > 0 {
                        std::thread::sleep(Duration::from_nanos(order.reward_wait_ns));
                    }
                    let reward = (reward_start, now());
                    let killed = KilledAttempt { cell: &setup.abort, attempt: order.attempt };
                    let cpu_before = thread_cpu_ns();
                    let outcome =
                        t.step_ranked(&order.samples, order.rank, order.ranks, &*order.reduce, &now, &killed)?;
                    let timings = match &outcome {
                        Ok(t) | Err(t) => t,
                    };
                    work.train_ns += timings.logprob_ns.iter().map(|(a, b)| b - a).sum::<u64>()
                        + (timings.update_ns.1 - timings.update_ns.0);
                    work.train_cpu_ns += thread_cpu_ns().saturating_sub(cpu_before);
                    match outcome {
                        Ok(timings) => {
                            work.train_steps += 1;
                            work.train_tokens += timings.tokens;
                            let weights = if order.rank == 0 {
                                let w = t.model.snapshot()?;
                                // The engines load it on their own threads (their own GPU streams).
                                crate::device::settle(&w)?;
                                Some(Arc::new(w))
                            } else {
                                None
                            };
                            send(FromWorker::TrainDone { worker: id, timings, weights, reward })
                        }
                        Err(timings) => send(FromWorker::TrainAborted { worker: id, timings, reward }),
                    }
                }
                ToWorker::Crash => {
                    let outputs = match engine.as_mut() {
                        Some(e) => e
                            .resident()
                            .into_iter()
                            .filter_map(|t| e.remove(t).transpose())
                            .collect::<candle_core::Result<_>>()?,
                        None => Vec::new(),
                    };
                    send(FromWorker::Crashed { worker: id, outputs });
                }
                ToWorker::Snapshot => {
                    let t = trainer.as_ref().ok_or_else(|| candle_core::Error::Msg("no trainer".into()))?;
                    let weights = t.weights()?;
                    crate::device::settle(&weights)?;
                    send(FromWorker::Snapshot { weights: Arc::new(weights) });
                }
                ToWorker::Load(weights) => {
                    let e = engine.as_ref().ok_or_else(|| candle_core::Error::Msg("no rollout engine".into()))?;
                    if e.model.is_released() {
                        // The engine sleeps while its worker trains: keep the weights with the parked ones.
                        parked = Some(weights.to_vec());
                    } else {
                        e.model.load(&weights)?;
                    }
                    send(FromWorker::Loaded);
                }
                ToWorker::Switch(role, latest) => {
                    let start_ns = now();
                    switch_role(
                        role,
                        engine.as_mut(),
                        trainer.as_mut(),
                        &mut parked,
                        latest.as_deref(),
                        setup.offload,
                    )?;
                    send(FromWorker::Switched { worker: id, role, start_ns, end_ns: now() });
                }
                ToWorker::Stop => {
                    work.cpu_ns = thread_cpu_ns().saturating_sub(cpu_start);
                    let stats = engine.as_ref().map(|e| e.stats).unwrap_or_default();
                    send(FromWorker::Stats { worker: id, stats, work });
                    return Ok(());
                }
            }
        }
    })();
    if let Err(e) = result {
        let _ = fail_tx.send(FromWorker::Failed { worker: id, message: e.to_string() });
    }
}

/// "Is train attempt `attempt` killed?": the driver stores the number of the attempt it kills in `cell`.
struct KilledAttempt<'a> {
    cell: &'a AtomicU64,
    attempt: u64,
}

impl crate::trainer::AbortFlag for KilledAttempt<'_> {
    fn is_set(&self) -> bool {
        self.cell.load(Ordering::SeqCst) == self.attempt
    }
}

/// An injected fault, due at a wall-clock time of the run.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Fail(WorkerId),
    Recover(WorkerId),
}

/// Per-trajectory data the driver keeps: the real tokens behind the trajectory manager's counts.
#[derive(Clone, Debug, Default)]
struct TrajData {
    prompt: Vec<u32>,
    response: Vec<u32>,
    logprobs: Vec<f32>,
    reward: f32,
}

/// The real backend's side of a run: the worker threads' channels, the real tokens, the trainer replicas and what
/// is in flight between the driver and the threads.
struct Exec<'a> {
    scenario: &'a Scenario,
    streams: RngStreams,
    clock: Clock,
    to: Vec<Sender<ToWorker>>,
    data: Vec<TrajData>,
    /// Each worker's trainer replica (train-tagged workers have one): the policy version its weights hold. The
    /// replicas of a data-parallel group stay identical (same all-reduced gradients, same optimizer state).
    replica_version: Vec<Option<u32>>,
    /// The samples of the train step in progress (built once; a restart after a failure reuses them).
    train_batch: Option<Arc<Vec<TrainSample>>>,
    /// The ranks of the attempt in progress that have answered: (worker, finished, its timings, its reward wait).
    train_replies: Vec<(WorkerId, bool, TrainTimings, (u64, u64))>,
    /// What each worker thread counted of its own work (reported when it stops).
    work: Vec<WorkerWork>,
    /// Step label of each worker's switch in flight.
    switch_step: BTreeMap<u32, u32>,
    /// The sync in flight and the loads it still waits for.
    pending_sync: Option<(SyncOrder, usize)>,
    /// The trainer's weights after its last step (what a worker retagged to rollout loads).
    latest_weights: Option<Arc<Vec<Tensor>>>,
    /// Admit messages sent to each worker (see `FromWorker::Progress`).
    admits_sent: Vec<u64>,
    /// Pauses sent whose `Paused` reply has not come back (a worker that drained on its own still answers).
    pauses_in_flight: u64,
    /// Events due later (timers, and finished trajectories waiting for their reward), by (time, sequence).
    timers: BTreeMap<(SimTime, u64), Event>,
    timer_seq: u64,
    step_rewards: Vec<f32>,
    step_losses: Vec<f32>,
    step_ratios: Vec<RatioStats>,
    /// Injected failures and recoveries (`[[failures.events]]`), by (time, sequence): the simulator's semantics.
    faults: BTreeMap<(SimTime, u64), Fault>,
    /// Tie-breaker of fault times (listed failures take 0..n).
    fault_seq: u64,
    /// A killed engine whose sequences have not come back yet.
    crash_pending: Vec<bool>,
    /// The train attempt to kill (the trainer's ranks poll it between micro-batches).
    abort: Arc<AtomicU64>,
}

/// Runs a scenario on real devices with its pipeline's policy.
pub fn execute(scenario: &Scenario, device: impl Into<DeviceChoice>) -> Result<ExecRun, RunError> {
    execute_with(scenario, device, build_policy(&scenario.pipeline, &scenario.workload))
}

/// Runs a scenario on real devices with any policy.
pub fn execute_with(
    scenario: &Scenario,
    device: impl Into<DeviceChoice>,
    policy: Box<dyn Policy>,
) -> Result<ExecRun, RunError> {
    let started = Instant::now();
    let choice: DeviceChoice = device.into();
    if scenario.workload.is_multi_turn() {
        return Err(RunError::Setup(format!(
            "{}: field `workload`: multi-turn agents (tool calls between turns) are simulated only; the real backend's synthetic task is single-turn",
            scenario.file.display()
        )));
    }
    if scenario.workload.dynamic_sampling.is_some() {
        return Err(RunError::Setup(format!(
            "{}: field `workload.dynamic_sampling`: dynamic sampling is simulated only; the real backend's synthetic task does not drop groups (remove [workload.dynamic_sampling] to run it)",
            scenario.file.display()
        )));
    }
    reject_simulated_only(scenario).map_err(RunError::Setup)?;
    if scenario.failures.as_ref().is_some_and(|f| f.mtbf_gpu_hours.is_some()) {
        return Err(RunError::Setup(format!(
            "{}: field `failures.mtbf_gpu_hours`: random failures are simulated only; to kill real workers, list them with [[failures.events]] (worker and at_s)",
            scenario.file.display()
        )));
    }
    let cfg = gpt_config(scenario).map_err(RunError::Setup)?;
    if choice == DeviceChoice::Cpu {
        check_host_memory(scenario, &cfg, available_host_bytes()).map_err(RunError::Setup)?;
    }
    let cluster = &scenario.cluster;
    let (placement, shared_devices) =
        crate::device::assign_devices(&choice, cluster.workers.len(), crate::device::cuda_device_count)
            .map_err(RunError::Setup)?;
    // Each device opened once; its workers share the handle.
    let mut opened: BTreeMap<String, candle_core::Device> = BTreeMap::new();
    for d in &placement {
        if let std::collections::btree_map::Entry::Vacant(slot) = opened.entry(d.to_string()) {
            let dev = d.open().map_err(RunError::Setup)?;
            // Kernels loaded before the clock starts, not inside the first step (a GPU's first use of each).
            crate::profile::warm_up(scenario, cfg, &dev).map_err(|e| RunError::Setup(format!("{d}: warm-up: {e}")))?;
            slot.insert(dev);
        }
        crate::device::one_thread_per_worker(*d);
    }
    if cluster.with_tag("train").next().is_none() {
        return Err(RunError::Setup(format!("{}: no worker has the tag `train`", scenario.file.display())));
    }
    let n = cluster.workers.len();
    let clock = Clock(Arc::new(std::sync::OnceLock::new()));
    let (from_tx, from_rx) = channel::<FromWorker>();
    let mut d = Driver::new(scenario, policy, true);
    let mut fx = Exec {
        scenario,
        streams: RngStreams::new(scenario.seed),
        clock: clock.clone(),
        to: Vec::new(),
        data: Vec::new(),
        replica_version: cluster.workers.iter().map(|w| w.has_tag("train").then_some(0)).collect(),
        train_batch: None,
        train_replies: Vec::new(),
        work: vec![WorkerWork::default(); n],
        switch_step: BTreeMap::new(),
        pending_sync: None,
        latest_weights: None,
        admits_sent: vec![0; n],
        pauses_in_flight: 0,
        timers: BTreeMap::new(),
        timer_seq: 0,
        step_rewards: Vec::new(),
        step_losses: Vec::new(),
        step_ratios: Vec::new(),
        faults: BTreeMap::new(),
        fault_seq: scenario.failures.as_ref().map_or(0, |f| f.events.len() as u64),
        crash_pending: vec![false; n],
        abort: Arc::new(AtomicU64::new(0)),
    };
    for (i, &(worker, at_s)) in scenario.failures.iter().flat_map(|f| &f.events).enumerate() {
        fx.faults.insert((SimTime(rlsim_sim::time::secs_to_ns(at_s)), i as u64), Fault::Fail(worker));
    }
    let mut stats = RealEngineStats::default();
    let outcome = std::thread::scope(|scope| {
        for w in &cluster.workers {
            let (tx, rx) = channel();
            fx.to.push(tx);
            let setup = WorkerSetup {
                id: w.id,
                device: opened[&placement[w.id.index()].to_string()].clone(),
                cfg,
                seed: scenario.seed,
                engine: w.has_tag("rollout"),
                trainer: w.has_tag("train"),
                scenario: scenario.clone(),
                abort: fx.abort.clone(),
                offload: scenario.framework.offload,
                starts_as_rollout: w.start == Role::Rollout,
            };
            let from = from_tx.clone();
            let clock = clock.clone();
            scope.spawn(move || crate::device::on_own_pool(move || worker_main(setup, rx, from, clock)));
        }
        // The run starts when every worker is ready.
        let result = wait_until_ready(&d, &from_rx, n).and_then(|()| {
            fx.clock.start();
            fx.run(&mut d, &from_rx)
        });
        for tx in &fx.to {
            let _ = tx.send(ToWorker::Stop);
        }
        // Collect the engines' counters as the workers stop.
        let mut stopped = 0;
        while stopped < n {
            match from_rx.recv_timeout(Duration::from_secs(60)) {
                Ok(FromWorker::Stats { worker, stats: s, work }) => {
                    fx.work[worker.index()] = work;
                    stats.preemptions += s.preemptions;
                    stats.prefill_tokens += s.prefill_tokens;
                    stats.decode_iterations += s.decode_iterations;
                    stats.decode_batch_sum += s.decode_batch_sum;
                    stats.step_ns += s.step_ns;
                    stopped += 1;
                }
                Ok(FromWorker::Failed { .. }) => stopped += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        result
    });
    outcome?;
    d.tm.check_conservation().map_err(RunError::Conservation)?;
    let mut counters = BTreeMap::new();
    counters.insert("kv_preemptions".to_string(), stats.preemptions);
    counters.insert("prefill_tokens".to_string(), stats.prefill_tokens);
    counters.insert("decode_iterations".to_string(), stats.decode_iterations);
    counters.insert("decode_batch_sum".to_string(), stats.decode_batch_sum);
    counters.insert("engine_step_ns".to_string(), stats.step_ns);
    // Workers still down at the end: their Down spans end with the run.
    d.now = d.last_span_end();
    d.close_down_spans();
    let end = d.last_span_end();
    let timeline = d.timeline(end, counters);
    let meta = RunMeta {
        scenario: scenario.name.clone(),
        pipeline: d.policy.name().to_string(),
        backend: "exec".into(),
        seed: scenario.seed,
        events: d.events,
        wall_s: started.elapsed().as_secs_f64(),
        usd_per_hour: scenario.cluster.usd_per_hour(),
        trajectory_copies: 1,
    };
    let mut report = report(&timeline, &meta);
    report.summary.devices = placement.iter().map(|d| d.to_string()).collect();
    report.summary.shared_devices = shared_devices;
    Ok(ExecRun {
        timeline,
        report,
        trajectories: d.tm,
        step_rewards: fx.step_rewards,
        step_losses: fx.step_losses,
        worker_work: fx.work,
        step_ratios: fx.step_ratios,
    })
}

/// Waits for `n` workers to report that they built their models.
fn wait_until_ready(d: &Driver, rx: &Receiver<FromWorker>, n: usize) -> Result<(), RunError> {
    let mut ready = 0;
    while ready < n {
        match rx.recv() {
            Ok(FromWorker::Ready) => ready += 1,
            Ok(FromWorker::Failed { worker, message }) => {
                return Err(RunError::Worker { worker: d.worker_name(worker).to_string(), message })
            }
            Ok(_) => {}
            Err(_) => return Err(RunError::Setup("every worker thread stopped".into())),
        }
    }
    Ok(())
}

impl Backend for Exec<'_> {
    fn clock(&self) -> Option<SimTime> {
        Some(self.now())
    }

    /// The real trainer's own rules: every worker of a train group holds a replica at the trainer's version, and a
    /// sync has a sender holding the latest weights.
    fn check(&self, d: &Driver, c: &Command) -> Result<(), String> {
        match c {
            Command::Train { workers, .. } => {
                // Every worker of the group trains on its own replica; the replicas must be the same weights.
                if let Some(&w) = workers.iter().find(|w| self.replica_version[w.index()].is_none()) {
                    return Err(format!("worker `{}` has no trainer (no `train` tag)", d.worker_name(w)));
                }
                if let Some(&w) = workers.iter().find(|w| self.replica_version[w.index()] != Some(d.trainer_version)) {
                    return Err(format!(
                        "worker `{}` holds the trainer's version {} but the trainer is at {}: the real backend trains data-parallel replicas that must all have taken every step (train on the same workers each step)",
                        d.worker_name(w),
                        self.replica_version[w.index()].unwrap_or(0),
                        d.trainer_version
                    ));
                }
            }
            Command::SyncWeights { .. } if self.pending_sync.is_some() => {
                return Err("a weight sync is already running (the real backend copies one at a time)".into());
            }
            Command::SyncWeights { from, .. } if self.sync_source(d, from).is_none() => {
                return Err(format!(
                    "none of the senders holds the trainer's latest weights (version {})",
                    d.trainer_version
                ));
            }
            _ => {}
        }
        Ok(())
    }

    fn group_created(&mut self, _d: &Driver, group: u64, g: &GroupLengths, ids: std::ops::Range<u64>) {
        let s = self.scenario;
        let prompt = task::prompt_tokens(&self.streams, group, g.prompt_tokens, s.model.vocab, s.exec.eos_token);
        for _ in ids {
            self.data.push(TrajData { prompt: prompt.clone(), ..Default::default() });
        }
    }

    fn admit(&mut self, d: &mut Driver, worker: WorkerId, trajectories: &[TrajId]) -> Result<(), RunError> {
        let mut inputs = Vec::with_capacity(trajectories.len());
        for &t in trajectories {
            let tr = d.tm.get(t)?;
            let data = &self.data[t.0 as usize];
            inputs.push(SeqInput {
                traj: t,
                group: tr.group,
                prompt: data.prompt.clone(),
                response: data.response.clone(),
                logprobs: data.logprobs.clone(),
                target: tr.target_tokens,
            });
        }
        d.states[worker.index()].resident += inputs.len();
        self.admits_sent[worker.index()] += 1;
        let _ = self.to[worker.index()].send(ToWorker::Admit(inputs));
        Ok(())
    }

    /// Sends the step's batch to every rank of its train group as a new attempt.
    fn train(&mut self, d: &mut Driver) -> Result<(), RunError> {
        let train = d.train.as_ref().expect("a step to train");
        let samples = match &self.train_batch {
            Some(samples) => samples.clone(),
            None => {
                let mut samples = Vec::with_capacity(train.trajectories.len());
                for &t in &train.trajectories {
                    let tr = d.tm.get(t)?;
                    let data = &self.data[t.0 as usize];
                    samples.push(TrainSample {
                        group: tr.group,
                        prompt: data.prompt.clone(),
                        response: data.response.clone(),
                        behaviour_logprobs: data.logprobs.clone(),
                        reward: data.reward,
                    });
                }
                let samples = Arc::new(samples);
                self.train_batch = Some(samples.clone());
                samples
            }
        };
        let reward_wait_ns = rlsim_sim::time::secs_to_ns(self.scenario.workload.reward_batch_s);
        self.train_replies.clear();
        let reduce = AllReduce::new(train.workers.len());
        for (rank, w) in train.workers.iter().enumerate() {
            let order = TrainOrder {
                samples: samples.clone(),
                reward_wait_ns,
                attempt: train.attempt,
                rank,
                ranks: train.workers.len(),
                reduce: reduce.clone(),
            };
            let _ = self.to[w.index()].send(ToWorker::Train(order));
        }
        Ok(())
    }

    fn sync(&mut self, d: &mut Driver, order: SyncOrder) -> Result<(), RunError> {
        let source = self.sync_source(d, &order.from).expect("checked");
        let loads = order.to.len();
        self.pending_sync = Some((order, loads));
        let _ = self.to[source.index()].send(ToWorker::Snapshot);
        Ok(())
    }

    fn switch(&mut self, _d: &mut Driver, step: u32, worker: WorkerId, to: Role) -> Result<(), RunError> {
        self.switch_step.insert(worker.0, step);
        let _ = self.to[worker.index()].send(ToWorker::Switch(to, self.latest_weights.clone()));
        Ok(())
    }

    fn pause(
        &mut self,
        _d: &mut Driver,
        _c: &Command,
        worker: WorkerId,
        which: Option<&[TrajId]>,
    ) -> Result<(), RunError> {
        self.pauses_in_flight += 1;
        let _ = self.to[worker.index()].send(ToWorker::Pause(which.map(<[TrajId]>::to_vec)));
        Ok(())
    }

    fn later(&mut self, _d: &Driver, at: SimTime, event: Event) {
        self.timer_seq += 1;
        self.timers.insert((at, self.timer_seq), event);
    }

    fn fail_later(&mut self, _d: &Driver, at: SimTime, worker: WorkerId) {
        self.schedule_fault(at, Fault::Fail(worker));
    }

    /// A training rank is asked to give up its attempt; a rolling-out engine is killed and hands back its
    /// sequences (`WorkerFailed` goes out with them).
    fn fail(&mut self, d: &mut Driver, worker: WorkerId, was: Activity) -> Result<(), RunError> {
        if was == Activity::Training {
            d.train_aborting = true;
            self.abort.store(d.train.as_ref().expect("a train step is running").attempt, Ordering::SeqCst);
        }
        let recovery = rlsim_sim::time::secs_to_ns(self.scenario.failures.as_ref().map_or(0.0, |f| f.recovery_s));
        self.schedule_fault(d.now.after_ns(recovery), Fault::Recover(worker));
        if was == Activity::RollingOut {
            self.crash_pending[worker.index()] = true;
            let _ = self.to[worker.index()].send(ToWorker::Crash);
            return Ok(());
        }
        d.announce(Event::WorkerFailed { worker, trajectories: Vec::new() });
        Ok(())
    }
}

impl Exec<'_> {
    fn now(&self) -> SimTime {
        SimTime(self.clock.ns())
    }

    /// The first sender holding the trainer's latest weights.
    fn sync_source(&self, d: &Driver, from: &[WorkerId]) -> Option<WorkerId> {
        from.iter().copied().find(|w| self.replica_version[w.index()] == Some(d.trainer_version))
    }

    /// Every step trained and nothing in flight; a worker still down does not hold the run open (as in the
    /// simulator, failures after the last step do not extend it).
    fn finished(&self, d: &Driver) -> bool {
        d.all_steps_done()
            && d.states.iter().all(|s| matches!(s.activity, Activity::Idle | Activity::Down))
            && self.nothing_in_flight(d)
    }

    fn quiet(&self, d: &Driver) -> bool {
        d.states.iter().all(|s| s.activity == Activity::Idle) && self.nothing_in_flight(d)
    }

    fn nothing_in_flight(&self, d: &Driver) -> bool {
        self.pending_sync.is_none()
            && self.timers.is_empty()
            && self.pauses_in_flight == 0
            && !self.crash_pending.contains(&true)
            && !d.train_aborting
    }

    fn run(&mut self, d: &mut Driver, rx: &Receiver<FromWorker>) -> Result<(), RunError> {
        d.now = self.now();
        d.announce(Event::Started);
        d.deliver(self)?;
        loop {
            if self.finished(d) {
                return Ok(());
            }
            if self.quiet(d) {
                return Err(d.stalled());
            }
            let next = [self.timers.keys().next().map(|k| k.0), self.faults.keys().next().map(|k| k.0)];
            let wait = match next.into_iter().flatten().min() {
                Some(at) => Duration::from_nanos(at.since(self.now())),
                None => Duration::from_secs(3600),
            };
            match rx.recv_timeout(wait) {
                Ok(FromWorker::Load { worker, at_ns, running, waiting, kv_tokens }) => {
                    // Not an event: it changes nothing the policy sees.
                    let at = SimTime(at_ns);
                    d.series.record(worker.0, CounterKind::Running, at, running as u64);
                    d.series.record(worker.0, CounterKind::Waiting, at, waiting as u64);
                    d.series.record(worker.0, CounterKind::KvTokens, at, kv_tokens);
                }
                Ok(msg) => {
                    d.events += 1;
                    d.now = self.now();
                    self.handle(d, msg)?;
                    d.deliver(self)?;
                }
                Err(RecvTimeoutError::Timeout) => {
                    let now = self.now();
                    while let Some((&(at, seq), &fault)) = self.faults.iter().next() {
                        if at > now {
                            break;
                        }
                        self.faults.remove(&(at, seq));
                        d.events += 1;
                        d.now = self.now();
                        match fault {
                            Fault::Fail(w) => d.fail(w, self)?,
                            Fault::Recover(w) => self.recover(d, w)?,
                        }
                        d.deliver(self)?;
                    }
                    while let Some((&(at, seq), _)) = self.timers.iter().next() {
                        if at > now {
                            break;
                        }
                        let event = self.timers.remove(&(at, seq)).expect("listed");
                        d.events += 1;
                        d.announce(event);
                        d.deliver(self)?;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(RunError::Setup("every worker thread stopped".into()));
                }
            }
        }
    }

    /// Books the tokens of `o`, generated on `worker` (its generation span recorded always, or only if it joined a
    /// batch), and keeps its real tokens.
    fn record_tokens(
        &mut self,
        d: &mut Driver,
        worker: WorkerId,
        o: &SeqOutput,
        always_span: bool,
    ) -> Result<(), RunError> {
        d.generated(worker, o.traj, o.new_tokens, o.admitted_at_ns.map(SimTime), always_span)?;
        let data = &mut self.data[o.traj.0 as usize];
        data.response.clone_from(&o.response);
        data.logprobs.clone_from(&o.logprobs);
        Ok(())
    }

    /// Records the tokens of sequences taken off `worker` (a pause or a kill) and marks them paused.
    fn take_back(&mut self, d: &mut Driver, worker: WorkerId, outputs: &[SeqOutput]) -> Result<Vec<TrajId>, RunError> {
        let mut paused = Vec::with_capacity(outputs.len());
        for o in outputs {
            self.record_tokens(d, worker, o, false)?;
            d.tm.pause(o.traj)?;
            paused.push(o.traj);
        }
        Ok(paused)
    }

    fn drained(&mut self, d: &mut Driver, worker: WorkerId) {
        d.drained(worker);
        d.states[worker.index()].resident = 0;
    }

    fn handle(&mut self, d: &mut Driver, msg: FromWorker) -> Result<(), RunError> {
        match msg {
            FromWorker::Progress { worker, finished, drained, admits_seen } => {
                // A drain reported before the worker took in our latest Admit is not a drain.
                let drained = drained && admits_seen == self.admits_sent[worker.index()];
                for o in &finished {
                    self.record_tokens(d, worker, o, true)?;
                    if o.stopped_at_eos {
                        d.tm.finish_early(o.traj, d.now)?;
                    } else {
                        d.tm.finish(o.traj, d.now)?;
                    }
                    let data = &mut self.data[o.traj.0 as usize];
                    data.reward = task::reward(&self.scenario.exec.task, &data.response);
                    d.states[worker.index()].resident = d.states[worker.index()].resident.saturating_sub(1);
                }
                // As in the simulator: the worker is idle before the policy hears of the last finished trajectory.
                if drained {
                    self.drained(d, worker);
                }
                for o in finished {
                    d.announce_finished(worker, o.traj, self);
                }
                if drained {
                    d.announce_drained(worker);
                }
                Ok(())
            }
            FromWorker::Paused { worker, outputs, drained, admits_seen } => {
                self.pauses_in_flight -= 1;
                let drained = drained && admits_seen == self.admits_sent[worker.index()];
                let paused = self.take_back(d, worker, &outputs)?;
                if drained {
                    self.drained(d, worker);
                }
                d.announce(Event::Paused { worker, trajectories: paused });
                if drained {
                    d.announce_drained(worker);
                }
                Ok(())
            }
            FromWorker::TrainDone { worker, timings, weights, reward } => {
                if let Some(w) = weights {
                    self.latest_weights = Some(w);
                }
                self.train_replies.push((worker, true, timings, reward));
                self.train_reply_in(d)
            }
            FromWorker::TrainAborted { worker, timings, reward } => {
                self.train_replies.push((worker, false, timings, reward));
                self.train_reply_in(d)
            }
            FromWorker::Snapshot { weights } => {
                let (order, _) = self.pending_sync.as_ref().expect("a sync is pending");
                for &t in &order.to {
                    let _ = self.to[t.index()].send(ToWorker::Load(weights.clone()));
                }
                Ok(())
            }
            FromWorker::Loaded => {
                let (_, loads_left) = self.pending_sync.as_mut().expect("a sync is pending");
                *loads_left -= 1;
                if *loads_left == 0 {
                    let (order, _) = self.pending_sync.take().expect("checked");
                    d.sync_done(&order);
                }
                Ok(())
            }
            FromWorker::Switched { worker, role, start_ns, end_ns } => {
                let step = self.switch_step.remove(&worker.0).expect("a switch was sent");
                d.switch_done(worker, role, step, SimTime(start_ns), SimTime(end_ns));
                Ok(())
            }
            FromWorker::Crashed { worker, outputs } => {
                self.crash_pending[worker.index()] = false;
                let paused = self.take_back(d, worker, &outputs)?;
                self.drained(d, worker);
                // Down from when the engine stopped (it notices a kill between iterations), after its last span.
                d.set_down_since(worker, d.now);
                d.announce(Event::WorkerFailed { worker, trajectories: paused });
                Ok(())
            }
            FromWorker::Stats { .. } | FromWorker::Load { .. } | FromWorker::Ready => Ok(()),
            FromWorker::Failed { worker, message } => {
                Err(RunError::Worker { worker: d.worker_name(worker).to_string(), message })
            }
        }
    }

    /// A rank answered; once every rank has, the step is done (or, killed, waits to restart). Each worker's spans
    /// are its own measured work.
    fn train_reply_in(&mut self, d: &mut Driver) -> Result<(), RunError> {
        let train = d.train.as_ref().expect("a train step is running");
        let (step, ranks) = (train.step, train.workers.len());
        if self.train_replies.len() < ranks {
            return Ok(());
        }
        let replies = std::mem::take(&mut self.train_replies);
        // The ranks decide together at each all-reduce: all finished or none did.
        let finished = replies.iter().all(|r| r.1);
        if !finished && replies.iter().any(|r| r.1) {
            return Err(RunError::Worker {
                worker: d.worker_name(replies[0].0).to_string(),
                message: "the ranks of a train step disagree on whether it was killed".into(),
            });
        }
        for (w, _, timings, reward) in &replies {
            let w = *w;
            let tokens = if finished { timings.tokens } else { 0 };
            if reward.1 > reward.0 {
                d.span(w, SpanKind::Reward, SimTime(reward.0), SimTime(reward.1), Some(step), 0);
            }
            for &(a, b) in &timings.logprob_ns {
                d.span(w, SpanKind::LogProb, SimTime(a), SimTime(b), Some(step), tokens);
            }
            let (a, b) = timings.update_ns;
            if finished || b > a {
                d.span(w, SpanKind::Train, SimTime(a), SimTime(b), Some(step), tokens);
            }
            if d.is_down(w) {
                // Killed during the step: down from when its rank stopped (it notices a kill between
                // micro-batches), or, if the step completed, from now.
                d.set_down_since(w, d.now);
            }
        }
        d.train_aborting = false;
        if !finished {
            // What ran of the lost attempt stays on the timeline (it was work done) and counts as lost.
            d.train_lost();
            return d.restart_train_if_ready(self);
        }
        // It finished before a kill could land: the step counts; the failure strikes an idle worker.
        self.train_batch = None;
        let train = d.train_done();
        for &w in &train.workers {
            self.replica_version[w.index()] = Some(d.trainer_version);
        }
        let timings = &replies[0].2;
        self.step_rewards.push(timings.mean_reward);
        self.step_losses.push(timings.loss);
        self.step_ratios.push(timings.stats);
        Ok(())
    }

    fn schedule_fault(&mut self, at: SimTime, fault: Fault) {
        self.fault_seq += 1;
        self.faults.insert((at, self.fault_seq), fault);
    }

    fn recover(&mut self, d: &mut Driver, worker: WorkerId) -> Result<(), RunError> {
        if self.crash_pending[worker.index()] {
            // Its sequences are still on their way back: recover right after.
            self.schedule_fault(d.now.after_ns(1_000_000), Fault::Recover(worker));
            return Ok(());
        }
        d.recover(worker, self)
    }
}

/// A worker's side of a role switch: park the state going out of use on the host and bring the other back (real
/// copies). To train: the training state comes back when the framework offloads, the engine's KV cache is freed and
/// its weights are parked. To roll out: the engine comes back with the trainer's current weights (the simulator's
/// rule too; `latest` when the worker has no trainer, else what it parked), and an offloading framework moves the
/// training state off the device. `rlsim profile` times this same function.
pub(crate) fn switch_role(
    role: Role,
    mut engine: Option<&mut RealEngine>,
    mut trainer: Option<&mut Trainer>,
    parked: &mut Option<Vec<Tensor>>,
    latest: Option<&Vec<Tensor>>,
    offload: bool,
) -> candle_core::Result<()> {
    let host = candle_core::Device::Cpu;
    match role {
        Role::Train => {
            if offload {
                if let Some(t) = trainer.as_mut() {
                    t.onload()?;
                }
            }
            if let Some(e) = engine.as_mut() {
                // The engine's KV cache and weights leave the device while it trains.
                e.release();
                *parked = Some(
                    e.model
                        .vars
                        .iter()
                        .map(|v| v.as_tensor().to_device(&host)?.copy())
                        .collect::<candle_core::Result<_>>()?,
                );
                e.model.release_weights()?;
            }
        }
        Role::Rollout => {
            let parked = parked.take();
            if let Some(e) = engine.as_mut() {
                let weights = match (&trainer, latest, parked) {
                    (Some(t), _, _) => Some(t.weights()?),
                    (None, Some(w), _) => Some(w.to_vec()),
                    (None, None, Some(w)) => Some(w),
                    (None, None, None) => None,
                };
                match weights {
                    Some(w) if e.model.is_released() => e.model.restore(&w)?,
                    Some(w) => e.model.load(&w)?,
                    None => {}
                }
            }
            // A colocated framework moves the training state off the device while it decodes.
            if offload {
                if let Some(t) = trainer.as_mut() {
                    t.offload()?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_too_big_for_host_memory_is_refused_before_allocating() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/exec-tiny.toml");
        let s = Scenario::load(&path, &[]).unwrap();
        let cfg = gpt_config(&s).unwrap();
        assert!(check_host_memory(&s, &cfg, None).is_ok(), "no figure: no refusal");
        assert!(check_host_memory(&s, &cfg, Some(u64::MAX)).is_ok());
        let e = check_host_memory(&s, &cfg, Some(1 << 20)).unwrap_err();
        assert!(e.contains("field `model`") && e.contains("GiB available") && e.contains("exec-tiny.toml"), "{e}");
    }

    #[test]
    fn speculative_decoding_is_refused_by_field() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/exec-tiny.toml");
        let sets = ["rollout.speculative_tokens=1".to_string(), "rollout.speculative_acceptance=0.8".to_string()];
        // Loaded with its measured profile, the scenario is refused already (the profile decodes one token a step).
        let e = Scenario::load(&path, &sets).unwrap_err().to_string();
        assert!(e.contains("field `rollout.speculative_tokens`") && e.contains("measured profile"), "{e}");
        let s = Scenario::load_unprofiled(&path, &sets).unwrap();
        let e = reject_simulated_only(&s).unwrap_err();
        assert!(e.contains("field `rollout.speculative_tokens`") && e.contains("simulated only"), "{e}");
    }

    #[test]
    fn a_latent_attention_model_is_refused_by_field() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/exec-tiny.toml");
        let s = Scenario::load(&path, &["model.kv_lora_rank=8".to_string()]).unwrap();
        let e = gpt_config(&s).unwrap_err();
        assert!(e.contains("field `model.kv_lora_rank`") && e.contains("multi-head latent attention"), "{e}");
    }

    #[test]
    fn the_qwen_shape_scenario_builds_the_named_shape() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/exec-qwen0.5b.toml");
        let s = Scenario::load(&path, &[]).unwrap();
        let cfg = gpt_config(&s).unwrap();
        assert_eq!(cfg, GptConfig::named("qwen2.5-0.5b", 192).unwrap());
        assert_eq!((cfg.d_model, cfg.layers, cfg.heads, cfg.ffn, cfg.vocab), (896, 24, 14, 4864, 151_936));
        // The 1.5B shape is recognised the same way, at about 1.5 billion parameters.
        let big = GptConfig::named("Qwen2.5-1.5B", 192).unwrap();
        assert_eq!(GptConfig::ffn_for(28, 1536, 12, 151_936), big.ffn);
        assert!((big.parameter_count() as f64 / 1e9 - 1.50).abs() < 0.01);
        // Other dimensions keep the 4 · hidden MLP.
        assert_eq!(GptConfig::ffn_for(24, 896, 14, 32_000), 4 * 896);
    }
}
