//! The simulation backend: a discrete-event loop that carries out a Policy's Commands with the cost model and
//! records a Timeline.

use crate::cluster::WorkerId;
use crate::cost::{CostModel, Role};
use crate::policy::{build_policy, check_command, Activity, ClusterView, Command, Event, Policy, WorkerState};
use crate::queue::EventQueue;
use crate::report::{report, Report, RunMeta};
use crate::rng::RngStreams;
use crate::rollout_engine::{Departed, EngineSeq, EngineStuck, RolloutEngine};
use crate::scenario::Scenario;
use crate::time::SimTime;
use crate::timeline::{CounterKind, CounterLog, CounterSample, Span, SpanKind, Timeline};
use crate::trajectory::{TrajError, TrajId, TrajectoryManager};
use crate::workload::Workload;
use std::time::Instant;

/// Why a simulation stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("policy `{policy}` at t={at}: invalid command {command}: {reason}")]
    Command { policy: &'static str, at: SimTime, command: String, reason: String },
    #[error("worker `{worker}`: {source}")]
    Engine { worker: String, source: EngineStuck },
    #[error("trajectory manager: {0}")]
    Trajectory(#[from] TrajError),
    #[error("policy `{policy}` stopped after {done} of {steps} train steps with no event left (a policy bug)")]
    Stalled { policy: &'static str, done: u32, steps: u32 },
    #[error("conservation check failed at the end of the run: {0}")]
    Conservation(String),
    #[error(
        "simulated time ran past {} years at {what}: a cost this large is not physical; check {fields}",
        MAX_SIM_TIME.0 / NS_PER_YEAR
    )]
    ClockLimit { what: String, fields: &'static str },
    #[error(
        "{failures} worker failures in a row without a completed train step (after {done} of {steps} steps, t={at}): at this failure rate the run makes no progress; raise failures.mtbf_gpu_hours (or lower failures.recovery_s)"
    )]
    NoProgress { failures: u64, done: u32, steps: u32, at: SimTime },
}

const NS_PER_YEAR: u64 = 365 * 24 * 3600 * 1_000_000_000;

/// The latest simulated instant a run may reach (100 years; u64 nanoseconds end at 584). Past it, some cost is so
/// large that saturating arithmetic would pin the clock and later steps would take 0 s: stop with an error instead.
pub const MAX_SIM_TIME: SimTime = SimTime(100 * NS_PER_YEAR);

/// Failures in a row without a completed train step after which a run stops with `SimError::NoProgress` (a train
/// step that every failure throws away would otherwise restart without end).
pub const MAX_FAILURES_WITHOUT_PROGRESS: u64 = 10_000;

/// A finished simulation.
pub struct SimRun {
    pub timeline: Timeline,
    pub report: Report,
    pub trajectories: TrajectoryManager,
}

enum Internal {
    Deliver(Event),
    EngineTick {
        worker: WorkerId,
        epoch: u64,
    },
    /// `epoch` is the train epoch it was scheduled in: a failure of a train worker restarts the step (new epoch).
    TrainDone {
        step: u32,
        workers: Vec<WorkerId>,
        epoch: u64,
    },
    /// An injected failure of `worker` (listed, or drawn from the MTBF).
    Fail {
        worker: WorkerId,
    },
    Recover {
        worker: WorkerId,
    },
    /// A multi-turn trajectory's tool call returned (stale when `epoch` no longer matches: it was paused).
    ToolReturn {
        traj: TrajId,
        worker: WorkerId,
        epoch: u64,
    },
    SyncDone {
        step: u32,
        involved: Vec<WorkerId>,
        targets: Vec<WorkerId>,
        version: u32,
    },
    SwitchDone {
        worker: WorkerId,
        role: Role,
    },
}

struct Sim<'a> {
    scenario: &'a Scenario,
    cost: Box<dyn CostModel>,
    workload: Workload,
    policy: Box<dyn Policy>,
    queue: EventQueue<Internal>,
    now: SimTime,
    tm: TrajectoryManager,
    states: Vec<WorkerState>,
    engines: Vec<Option<RolloutEngine>>,
    epochs: Vec<u64>,
    /// Open Rollout span per worker: (start, step label).
    rollout_open: Vec<Option<(SimTime, u32)>>,
    /// Step label of each trajectory (the batch it was created for), by id.
    batch_step: Vec<u32>,
    /// Reward (verifier) time of each trajectory, by id: its TrajectoryFinished is delivered that much later.
    reward_ns: Vec<u64>,
    trainer_version: u32,
    next_group: u64,
    train_steps_done: u32,
    spans: Vec<Span>,
    events: u64,
    /// Reused by every engine tick for the sequences that left the engine, and for those that finished.
    departed: Vec<Departed>,
    finished_buf: Vec<TrajId>,
    /// When each down worker failed.
    down_since: Vec<Option<SimTime>>,
    /// Commands that name a down worker, carried out when all their workers are up again (in order).
    deferred: Vec<Command>,
    /// The train step in progress: (step, workers, tokens, start), kept so a failure can restart it.
    /// (step, workers, tokens of each trained sample, start).
    train_running: Option<(u32, Vec<WorkerId>, Vec<u64>, SimTime)>,
    /// The step in `train_running` was thrown away by a failure and waits for its workers to be up.
    train_restart: bool,
    /// Where the spans of the train step in progress begin in `spans` (a failure edits only those after it).
    train_spans_from: usize,
    train_epoch: u64,
    /// Failures so far per worker (numbers the MTBF draws) and in all; GPU-nanoseconds of train work lost.
    failures_of: Vec<u64>,
    failures: u64,
    /// Failures since the last completed train step (the run stops at `MAX_FAILURES_WITHOUT_PROGRESS`).
    failures_since_step: u64,
    lost_work_gpu_ns: u128,
    /// Multi-turn: each trajectory's turns (empty: single-turn), the worker holding it while its tool call runs,
    /// when that call returns, the epoch that invalidates a paused call's return, and per-worker counts.
    turns: Vec<Vec<crate::trace::Turn>>,
    tool_wait: Vec<Option<WorkerId>>,
    tool_ready: Vec<SimTime>,
    tool_epoch: Vec<u64>,
    tool_waiting_on: Vec<usize>,
    tool_calls: u64,
    /// Counters over time for the trace (engine batch, queue and KV use; versions); never read by a decision.
    series: CounterLog,
}

/// What a simulation records beyond what its report needs (the report is the same either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recording {
    /// Counter samples over time (KV-cache use, batch, queue, versions) for the trace: a few per engine boundary,
    /// time and memory spent for nothing when only the summary is kept (sweep, search, bench).
    pub counters: bool,
}

impl Recording {
    /// Everything: for runs whose files are written.
    pub const FULL: Recording = Recording { counters: true };
    /// Only what the report needs.
    pub const SUMMARY: Recording = Recording { counters: false };
}

/// Runs a scenario in the simulator with its pipeline's policy, recording everything.
pub fn simulate(scenario: &Scenario) -> Result<SimRun, SimError> {
    simulate_recording(scenario, Recording::FULL)
}

/// [`simulate`], recording what `recording` asks.
pub fn simulate_recording(scenario: &Scenario, recording: Recording) -> Result<SimRun, SimError> {
    simulate_with_recording(scenario, build_policy(&scenario.pipeline, &scenario.workload), recording)
}

/// Runs a scenario in the simulator with any policy (a user's own, or a test's), recording everything.
pub fn simulate_with(scenario: &Scenario, policy: Box<dyn Policy>) -> Result<SimRun, SimError> {
    simulate_with_recording(scenario, policy, Recording::FULL)
}

/// [`simulate_with`], recording what `recording` asks.
pub fn simulate_with_recording(
    scenario: &Scenario,
    policy: Box<dyn Policy>,
    recording: Recording,
) -> Result<SimRun, SimError> {
    let started = Instant::now();
    let cost = crate::cost::cost_model(scenario);
    let mut engines = Vec::new();
    let mut states = Vec::new();
    for w in &scenario.cluster.workers {
        // Any worker that may hold a rollout engine (its start state or a later retag) gets one.
        let rollout = w.has_tag("rollout");
        engines.push(rollout.then(|| {
            RolloutEngine::new(
                cost.decode_coeffs(w),
                cost.prefill_coeffs(w),
                cost.kv_capacity_tokens(w),
                scenario.rollout.max_num_seqs,
                scenario.rollout.prefix_caching,
            )
        }));
        states.push(WorkerState { id: w.id, role: w.start, activity: Activity::Idle, weights_version: 0, resident: 0 });
    }
    let n = states.len();
    let mut sim = Sim {
        scenario,
        cost,
        workload: Workload::new(scenario.workload.clone(), scenario.seed),
        policy,
        queue: EventQueue::new(),
        now: SimTime::ZERO,
        tm: TrajectoryManager::new(),
        states,
        engines,
        epochs: vec![0; n],
        rollout_open: vec![None; n],
        batch_step: Vec::new(),
        reward_ns: Vec::new(),
        trainer_version: 0,
        next_group: 0,
        train_steps_done: 0,
        spans: Vec::new(),
        events: 0,
        departed: Vec::new(),
        finished_buf: Vec::new(),
        down_since: vec![None; n],
        deferred: Vec::new(),
        train_running: None,
        train_restart: false,
        train_epoch: 0,
        failures_of: vec![0; n],
        failures: 0,
        failures_since_step: 0,
        train_spans_from: 0,
        lost_work_gpu_ns: 0,
        turns: Vec::new(),
        tool_wait: Vec::new(),
        tool_ready: Vec::new(),
        tool_epoch: Vec::new(),
        tool_waiting_on: vec![0; n],
        tool_calls: 0,
        series: CounterLog::new(recording.counters),
    };
    sim.series.record(CounterSample::RUN, CounterKind::PolicyVersion, SimTime::ZERO, 0);
    for (i, e) in sim.engines.iter().enumerate() {
        if e.is_some() {
            sim.series.record(i as u32, CounterKind::WeightsVersion, SimTime::ZERO, 0);
        }
    }
    if let Some(f) = &scenario.failures {
        for &(worker, at_s) in &f.events {
            sim.queue.schedule(SimTime(crate::time::secs_to_ns(at_s)), Internal::Fail { worker });
        }
        for i in 0..n {
            sim.schedule_mtbf_failure(WorkerId(i as u32));
        }
    }
    sim.queue.schedule(SimTime::ZERO, Internal::Deliver(Event::Started));
    while let Some((at, ev)) = sim.queue.pop() {
        // Failures and recoveries after the last train step do not extend the run.
        if sim.train_steps_done >= scenario.workload.steps
            && matches!(ev, Internal::Fail { .. } | Internal::Recover { .. })
        {
            continue;
        }
        if at > MAX_SIM_TIME {
            // A failure drawn beyond the horizon never strikes; anything else means a cost exploded.
            if matches!(ev, Internal::Fail { .. }) {
                continue;
            }
            return Err(sim.clock_limit(&ev));
        }
        sim.now = at;
        sim.events += 1;
        sim.handle(ev)?;
    }
    if sim.train_steps_done < scenario.workload.steps {
        return Err(SimError::Stalled {
            policy: sim.policy.name(),
            done: sim.train_steps_done,
            steps: scenario.workload.steps,
        });
    }
    sim.flush()?;
    sim.tm.check_conservation().map_err(SimError::Conservation)?;
    let timeline = sim.timeline();
    let meta = RunMeta {
        scenario: scenario.name.clone(),
        pipeline: sim.policy.name().to_string(),
        backend: "sim".into(),
        seed: scenario.seed,
        events: sim.events,
        wall_s: started.elapsed().as_secs_f64(),
        usd_per_hour: scenario.cluster.usd_per_hour(),
    };
    let report = report(&timeline, &meta);
    Ok(SimRun { timeline, report, trajectories: sim.tm })
}

impl Sim<'_> {
    /// The error for an event scheduled past [`MAX_SIM_TIME`], naming the fields whose values set its cost.
    fn clock_limit(&self, ev: &Internal) -> SimError {
        let name = |w: &WorkerId| self.scenario.cluster.worker(*w).name.clone();
        let (what, fields) = match ev {
            Internal::EngineTick { worker, .. } => (
                format!("a rollout iteration of worker `{}`", name(worker)),
                "the GPU's hbm_gbytes_per_s and bf16_tflops, the framework's decode and prefill efficiencies and \
                 overheads, the model's size and the response lengths",
            ),
            Internal::TrainDone { step, .. } => (
                format!("train step {step}"),
                "training.mfu, the GPU's bf16_tflops, the framework's train constants and the sample lengths",
            ),
            Internal::SyncDone { step, .. } => (
                format!("the weight sync after step {step}"),
                "the cluster's link bandwidths and the framework's sync_fixed_s",
            ),
            Internal::SwitchDone { worker, .. } => (
                format!("a switch of worker `{}`", name(worker)),
                "the framework's switch_fixed_s and offload_gbytes_per_s",
            ),
            Internal::Recover { worker } => {
                (format!("the recovery of worker `{}`", name(worker)), "failures.recovery_s")
            }
            Internal::ToolReturn { .. } => ("a tool call's return".to_string(), "workload.multi_turn tool times"),
            Internal::Deliver(_) | Internal::Fail { .. } => {
                ("a pipeline event".to_string(), "the scenario's time and rate fields")
            }
        };
        SimError::ClockLimit { what, fields }
    }

    fn handle(&mut self, ev: Internal) -> Result<(), SimError> {
        match ev {
            Internal::Deliver(e) => self.dispatch(e),
            Internal::EngineTick { worker, epoch } => {
                if epoch == self.epochs[worker.index()] {
                    self.engine_tick(worker)?;
                }
                Ok(())
            }
            Internal::TrainDone { epoch, .. } if epoch != self.train_epoch => Ok(()),
            Internal::TrainDone { step, workers, .. } => {
                self.train_running = None;
                self.trainer_version += 1;
                self.series.record(
                    CounterSample::RUN,
                    CounterKind::PolicyVersion,
                    self.now,
                    self.trainer_version as u64,
                );
                self.train_steps_done += 1;
                self.failures_since_step = 0;
                for w in workers {
                    self.states[w.index()].activity = Activity::Idle;
                }
                self.dispatch(Event::TrainDone { step, version: self.trainer_version })
            }
            Internal::SyncDone { step, involved, targets, version } => {
                for w in involved {
                    self.states[w.index()].activity = Activity::Idle;
                }
                for w in targets {
                    self.states[w.index()].weights_version = version;
                    self.series.record(w.0, CounterKind::WeightsVersion, self.now, version as u64);
                }
                self.dispatch(Event::WeightsSynced { step, version })
            }
            Internal::Fail { worker } => self.fail(worker),
            Internal::ToolReturn { traj, worker, epoch } => self.tool_return(traj, worker, epoch),
            Internal::Recover { worker } => self.recover(worker),
            Internal::SwitchDone { worker, role } => {
                let st = &mut self.states[worker.index()];
                st.role = role;
                st.activity = Activity::Idle;
                if role == Role::Rollout {
                    // It comes from the training state, which holds the trainer's current weights.
                    st.weights_version = self.trainer_version;
                    self.series.record(worker.0, CounterKind::WeightsVersion, self.now, self.trainer_version as u64);
                }
                self.dispatch(Event::Retagged { worker, role })
            }
        }
    }

    /// Schedules `worker`'s next failure from its GPUs' MTBF (each failure of the worker draws a fresh interval).
    fn schedule_mtbf_failure(&mut self, worker: WorkerId) {
        let Some(mtbf_h) = self.scenario.failures.as_ref().and_then(|f| f.mtbf_gpu_hours) else { return };
        let gpus = self.scenario.cluster.worker(worker).gpu_count() as f64;
        let n = self.failures_of[worker.index()];
        let mut rng = RngStreams::new(self.scenario.seed).indexed(&format!("failures/{}", worker.0), n);
        let u: f64 = rand::RngExt::random(&mut rng);
        // Exponential with mean MTBF / GPUs (the worker fails when any of its GPUs does).
        let wait_s = -(1.0 - u).ln() * mtbf_h * 3600.0 / gpus;
        self.queue.schedule(self.now.after_ns(crate::time::secs_to_ns(wait_s)), Internal::Fail { worker });
    }

    fn is_down(&self, w: WorkerId) -> bool {
        self.down_since.get(w.index()).is_some_and(|d| d.is_some())
    }

    /// A worker fails: its rollout sequences are paused with their tokens kept (the policy resumes them elsewhere),
    /// a train step it takes part in is lost and restarts when it recovers, and it is down for `recovery_s`.
    fn fail(&mut self, worker: WorkerId) -> Result<(), SimError> {
        if self.is_down(worker) {
            return Ok(());
        }
        if matches!(self.states[worker.index()].activity, Activity::Syncing | Activity::Switching) {
            // A copy or a switch in flight completes first; the failure strikes a second later.
            self.queue.schedule(self.now.after_ns(1_000_000_000), Internal::Fail { worker });
            return Ok(());
        }
        self.failures += 1;
        self.failures_of[worker.index()] += 1;
        self.failures_since_step += 1;
        if self.failures_since_step >= MAX_FAILURES_WITHOUT_PROGRESS {
            return Err(SimError::NoProgress {
                failures: self.failures_since_step,
                done: self.train_steps_done,
                steps: self.scenario.workload.steps,
                at: self.now,
            });
        }
        // Down from now: whatever the policy decides while we settle its engine waits for the recovery. The policy
        // sees it down too (it hears of sequences that finished at this boundary before `WorkerFailed`): otherwise
        // it admits more work there, which runs on recovery ahead of a weight sync deferred meanwhile, and the sync
        // finds the worker busy (found by the property tests: seamless, multi-turn, failures).
        self.down_since[worker.index()] = Some(self.now);
        let was_training = self.states[worker.index()].activity == Activity::Training;
        self.states[worker.index()].activity = Activity::Down;
        let mut paused = Vec::new();
        for t in self.tool_waiters(worker) {
            self.release_tool_wait(t, worker);
            self.tm.pause(t)?;
            paused.push(t);
        }
        if let Some(engine) = self.engines[worker.index()].as_mut().filter(|e| !e.is_empty()) {
            let version = self.states[worker.index()].weights_version;
            let done = engine.interrupt(self.now.as_fs());
            let resident: Vec<TrajId> = engine.resident().collect();
            let removed: Vec<Departed> = resident.into_iter().filter_map(|t| engine.remove(t)).collect();
            self.pause_departed(worker, version, &removed, &mut paused)?;
            // Sequences that completed at this very boundary finish normally.
            self.settle_quietly(worker, &done, None, Some(&mut paused))?;
        }
        if was_training {
            let (step, workers, tokens, started) = self.train_running.clone().expect("a train step is running");
            self.train_epoch += 1;
            let gpus: u128 = workers.iter().map(|w| self.scenario.cluster.worker(*w).gpu_count() as u128).sum();
            self.lost_work_gpu_ns += gpus * self.now.since(started) as u128;
            // The step's spans end now (the work is lost); it restarts from scratch on recovery.
            let now = self.now;
            // Only the spans since this attempt started can belong to it (earlier ones are not scanned again, so a
            // run with many failures stays linear).
            let mut tail = self.spans.split_off(self.train_spans_from.min(self.spans.len()));
            tail.retain(|x| {
                !(x.step == Some(step)
                    && workers.contains(&WorkerId(x.worker))
                    && matches!(x.kind, SpanKind::Reward | SpanKind::LogProb | SpanKind::Train)
                    && x.start >= now)
            });
            for x in tail.iter_mut().filter(|x| {
                x.step == Some(step)
                    && workers.contains(&WorkerId(x.worker))
                    && matches!(x.kind, SpanKind::Reward | SpanKind::LogProb | SpanKind::Train)
                    && x.end > now
            }) {
                x.end = now;
            }
            self.spans.append(&mut tail);
            for &w in &workers {
                self.states[w.index()].activity = Activity::Idle;
            }
            self.train_running = Some((step, workers, tokens, started));
            self.train_restart = true;
        }
        let st = &mut self.states[worker.index()];
        st.activity = Activity::Down;
        st.resident = 0;
        self.epochs[worker.index()] += 1;
        let recovery = crate::time::secs_to_ns(self.scenario.failures.as_ref().map_or(0.0, |f| f.recovery_s));
        self.queue.schedule(self.now.after_ns(recovery), Internal::Recover { worker });
        self.dispatch(Event::WorkerFailed { worker, trajectories: paused })
    }

    fn recover(&mut self, worker: WorkerId) -> Result<(), SimError> {
        let Some(since) = self.down_since[worker.index()].take() else { return Ok(()) };
        self.span(worker, SpanKind::Down, since, self.now, None, 0);
        self.states[worker.index()].activity = Activity::Idle;
        // A train step a failure threw away starts again once all its workers are up; then whatever waited for
        // this worker is carried out, in order (a command still naming a down worker goes back to waiting).
        if self.train_restart {
            let (step, workers, tokens, _) = self.train_running.clone().expect("a step to restart");
            if !workers.iter().any(|w| self.is_down(*w)) {
                self.train_restart = false;
                self.start_train(step, &workers, &tokens);
            }
        }
        for c in std::mem::take(&mut self.deferred) {
            self.apply(c)?;
        }
        self.schedule_mtbf_failure(worker);
        self.dispatch(Event::WorkerRecovered { worker })
    }

    /// Whether a command needs a worker that is down (checked on every command: no allocation).
    fn needs_down_worker(&self, c: &Command) -> bool {
        c.needs_any(|w| self.is_down(w))
    }

    /// Starts the spans and the completion of train step `step` now.
    fn start_train(&mut self, step: u32, workers: &[WorkerId], sample_tokens: &[u64]) {
        self.train_spans_from = self.spans.len();
        let cost = self.cost.train(sample_tokens, workers);
        let tokens: u64 = sample_tokens.iter().sum();
        // The controller's per-step work (reward manager, advantages, moving the batch) and the batch reward both
        // keep the train GPUs waiting before the first pass.
        let reward_ns = crate::time::secs_to_ns(self.scenario.workload.reward_batch_s) + self.cost.controller_ns();
        for &w in workers {
            let mut at = self.now;
            if reward_ns > 0 {
                self.span(w, SpanKind::Reward, at, at.after_ns(reward_ns), Some(step), 0);
                at = at.after_ns(reward_ns);
            }
            for &d in &cost.logprob_ns {
                self.span(w, SpanKind::LogProb, at, at.after_ns(d), Some(step), tokens);
                at = at.after_ns(d);
            }
            self.span(w, SpanKind::Train, at, at.after_ns(cost.update_ns), Some(step), tokens);
            self.states[w.index()].activity = Activity::Training;
        }
        self.train_running = Some((step, workers.to_vec(), sample_tokens.to_vec(), self.now));
        self.queue.schedule(
            self.now.after_ns(reward_ns).after_ns(cost.total_ns()),
            Internal::TrainDone { step, workers: workers.to_vec(), epoch: self.train_epoch },
        );
    }

    fn dispatch(&mut self, event: Event) -> Result<(), SimError> {
        let commands = {
            let view = ClusterView {
                now: self.now,
                cluster: &self.scenario.cluster,
                workers: &self.states,
                trajectories: &self.tm,
                trainer_version: self.trainer_version,
                workload: &self.scenario.workload,
                estimates: &*self.cost,
            };
            self.policy.on_event(&event, &view)
        };
        for c in commands {
            self.apply(c)?;
        }
        Ok(())
    }

    fn invalid(&self, command: &Command, reason: impl Into<String>) -> SimError {
        SimError::Command {
            policy: self.policy.name(),
            at: self.now,
            command: command.describe(),
            reason: reason.into(),
        }
    }

    fn worker_name(&self, w: WorkerId) -> &str {
        &self.scenario.cluster.worker(w).name
    }

    fn apply(&mut self, c: Command) -> Result<(), SimError> {
        // A command that needs a down worker waits for its recovery (the job stalls on it, as a real one would).
        if self.needs_down_worker(&c) {
            self.deferred.push(c);
            return Ok(());
        }
        if let Command::Pause { worker, .. } = &c {
            if self.is_down(*worker) {
                // Its sequences were already paused when it failed.
                return self.dispatch(Event::Paused { worker: *worker, trajectories: Vec::new() });
            }
        }
        check_command(&c, &self.scenario.cluster, &self.states, self.now).map_err(|r| self.invalid(&c, r))?;
        match &c {
            Command::CreateGroups { step, groups } => {
                for _ in 0..*groups {
                    let g = self.workload.group(self.next_group, *step);
                    let ids = self.tm.create_group(self.next_group, g.prompt_tokens, &g.responses, self.now);
                    if !g.kept {
                        self.tm.mark_dropped_group(self.next_group);
                    }
                    self.batch_step.extend(ids.map(|_| *step));
                    self.reward_ns.extend_from_slice(&g.reward_ns);
                    let k = g.responses.len();
                    if g.turns.is_empty() {
                        self.turns.extend(std::iter::repeat_n(Vec::new(), k));
                    } else {
                        self.turns.extend(g.turns.iter().cloned());
                    }
                    self.tool_wait.extend(std::iter::repeat_n(None, k));
                    self.tool_ready.extend(std::iter::repeat_n(SimTime::ZERO, k));
                    self.tool_epoch.extend(std::iter::repeat_n(0, k));
                    self.next_group += 1;
                }
                Ok(())
            }
            Command::Admit { worker, trajectories } => self.admit(*worker, trajectories),
            Command::Train { step, workers, trajectories } => {
                let mut tokens = Vec::with_capacity(trajectories.len());
                for &t in trajectories {
                    let tr = self.tm.get(t)?;
                    tokens.push(tr.prompt_tokens as u64 + tr.generated as u64);
                    self.tm.train(t, *step, self.trainer_version)?;
                }
                self.start_train(*step, workers, &tokens);
                Ok(())
            }
            Command::SyncWeights { step, from, to } => {
                let mut involved: Vec<WorkerId> = from.iter().chain(to.iter()).copied().collect();
                involved.sort();
                involved.dedup();
                let d = self.cost.sync_ns(from, to);
                for &w in &involved {
                    self.span(w, SpanKind::Sync, self.now, self.now.after_ns(d), Some(*step), 0);
                    self.spans.last_mut().expect("just pushed").version = Some(self.trainer_version);
                    self.states[w.index()].activity = Activity::Syncing;
                }
                let ev =
                    Internal::SyncDone { step: *step, involved, targets: to.clone(), version: self.trainer_version };
                self.queue.schedule(self.now.after_ns(d), ev);
                Ok(())
            }
            Command::Retag { step, worker, to } => {
                let d = self.cost.switch_ns(*worker, *to);
                self.span(*worker, SpanKind::Switch, self.now, self.now.after_ns(d), Some(*step), 0);
                self.states[worker.index()].activity = Activity::Switching;
                self.queue.schedule(self.now.after_ns(d), Internal::SwitchDone { worker: *worker, role: *to });
                Ok(())
            }
            Command::Pause { worker, trajectories } => self.pause(&c, *worker, trajectories.as_deref()),
            Command::Discard { trajectories } => {
                for &t in trajectories {
                    self.tm.discard(t)?;
                }
                Ok(())
            }
            Command::SetTimer { at, id } => {
                self.queue.schedule(*at, Internal::Deliver(Event::TimerFired { id: *id }));
                Ok(())
            }
        }
    }

    /// Admits trajectories to a worker (`check_command` has vetted the worker).
    fn admit(&mut self, worker: WorkerId, trajectories: &[TrajId]) -> Result<(), SimError> {
        if trajectories.is_empty() {
            return Ok(());
        }
        for &t in trajectories {
            self.tm.admit(t, worker)?;
            if self.tool_ready[t.0 as usize] > self.now {
                // Paused during a tool call: it rejoins a batch only once the tool has answered.
                self.hold_for_tool(t, worker);
            } else {
                self.enqueue(t, worker, 0)?;
            }
        }
        if self.states[worker.index()].activity == Activity::Idle {
            self.states[worker.index()].activity = Activity::RollingOut;
            self.rollout_open[worker.index()] = Some((self.now, self.batch_step[trajectories[0].0 as usize]));
        }
        self.kick(worker)
    }

    /// Where trajectory `t` stands in its turns after `generated` tokens: (end of its current turn, tokens the
    /// tools have added to its context so far, tokens the last tool call added).
    fn turn_state(&self, t: TrajId, generated: u32, target: u32) -> (u32, u32, u32) {
        let turns = &self.turns[t.0 as usize];
        let (mut end, mut context, mut last) = (0u32, 0u32, 0u32);
        for turn in turns {
            end += turn.tokens;
            if generated < end {
                return (end, context, last);
            }
            context += turn.tool_tokens;
            last = turn.tool_tokens;
        }
        (target, context, last)
    }

    /// Puts trajectory `t` into `worker`'s waiting queue up to the end of its current turn (`cached` context
    /// tokens already in the engine's prefix cache).
    fn enqueue(&mut self, t: TrajId, worker: WorkerId, cached: u32) -> Result<(), SimError> {
        let tr = self.tm.get(t)?;
        let (turn_end, tool_context, _) = self.turn_state(t, tr.generated, tr.target_tokens);
        let seq = EngineSeq {
            traj: t,
            group: tr.group,
            prompt_tokens: tr.prompt_tokens + tool_context,
            generated: tr.generated,
            target: turn_end,
            cached_tokens: cached,
        };
        self.engines[worker.index()].as_mut().expect("a rollout engine").enqueue(seq);
        Ok(())
    }

    /// `t` waits on `worker` (holding no decode slot; its KV blocks are released, its prefix may stay cached) until
    /// its tool call returns.
    fn hold_for_tool(&mut self, t: TrajId, worker: WorkerId) {
        let i = t.0 as usize;
        self.tool_wait[i] = Some(worker);
        self.tool_epoch[i] += 1;
        self.tool_waiting_on[worker.index()] += 1;
        let ev = Internal::ToolReturn { traj: t, worker, epoch: self.tool_epoch[i] };
        self.queue.schedule(self.tool_ready[i].max(self.now), ev);
    }

    /// Takes `t` off its tool wait on `worker` (a pause); its call keeps running outside.
    fn release_tool_wait(&mut self, t: TrajId, worker: WorkerId) {
        let i = t.0 as usize;
        self.tool_wait[i] = None;
        self.tool_epoch[i] += 1;
        self.tool_waiting_on[worker.index()] -= 1;
    }

    fn tool_return(&mut self, t: TrajId, worker: WorkerId, epoch: u64) -> Result<(), SimError> {
        let i = t.0 as usize;
        if self.tool_epoch[i] != epoch || self.tool_wait[i] != Some(worker) {
            return Ok(());
        }
        self.tool_wait[i] = None;
        self.tool_waiting_on[worker.index()] -= 1;
        // With prefix caching the context before the tool's output is still cached: only the output is prefilled.
        let cached = if self.scenario.rollout.prefix_caching {
            let tr = self.tm.get(t)?;
            let (_, context, last) = self.turn_state(t, tr.generated, tr.target_tokens);
            tr.prompt_tokens + context - last + tr.generated
        } else {
            0
        };
        self.enqueue(t, worker, cached)?;
        self.kick(worker)
    }

    /// After sequences joined `worker`'s waiting queue: cut the running interval at the next iteration boundary (or
    /// plan one) and schedule the engine's next tick.
    fn kick(&mut self, worker: WorkerId) -> Result<(), SimError> {
        let now_fs = self.now.as_fs();
        let engine = self.engines[worker.index()].as_mut().expect("a rollout engine");
        let end = if engine.is_busy() {
            engine.truncate(now_fs)
        } else {
            engine.plan(now_fs).map_err(|source| SimError::Engine {
                worker: self.scenario.cluster.worker(worker).name.clone(),
                source,
            })?
        };
        self.states[worker.index()].resident =
            engine.running_len() + engine.waiting_len() + self.tool_waiting_on[worker.index()];
        self.sample_engine(worker);
        if let Some(end) = end {
            self.epochs[worker.index()] += 1;
            self.queue.schedule(
                SimTime::from_fs_ceil(end),
                Internal::EngineTick { worker, epoch: self.epochs[worker.index()] },
            );
        }
        Ok(())
    }

    fn engine_error(&self, worker: WorkerId, source: EngineStuck) -> SimError {
        SimError::Engine { worker: self.scenario.cluster.worker(worker).name.clone(), source }
    }

    fn engine_tick(&mut self, worker: WorkerId) -> Result<(), SimError> {
        // One buffer for every tick: the event loop does not allocate per event.
        let mut done = std::mem::take(&mut self.departed);
        done.clear();
        let engine = self.engines[worker.index()].as_mut().expect("ticks only for engines");
        engine.complete_into(&mut done);
        let clock = engine.clock_fs();
        let next = engine.plan(clock).map_err(|e| self.engine_error(worker, e))?;
        let result = self.settle(worker, &done, next);
        self.departed = done;
        result
    }

    /// Records a generation segment that ends now.
    fn generate_span(&mut self, worker: WorkerId, d: &Departed, version: u32) {
        let t = d.seq.traj;
        let start = d.admitted_fs.map_or(self.now, SimTime::from_fs_ceil).min(self.now);
        self.spans.push(Span {
            worker: worker.0,
            kind: SpanKind::Generate,
            start,
            end: self.now,
            step: Some(self.batch_step[t.0 as usize]),
            trajectory: Some(t.0),
            tokens: d.new_tokens as u64,
            version: Some(version),
        });
    }

    /// After an engine boundary: schedules its next interval, records and announces finished trajectories, and
    /// closes its rollout span when it drained.
    fn settle(&mut self, worker: WorkerId, done: &[Departed], next: Option<u128>) -> Result<(), SimError> {
        if self.settle_quietly(worker, done, next, None)? {
            self.dispatch(Event::WorkerDrained { worker })?;
        }
        Ok(())
    }

    /// `settle` without announcing the drain; returns whether the worker drained and is still idle (so the caller
    /// announces it after its own event).
    ///
    /// `stopping`: the worker is being emptied (a pause of everything, a failure), so a trajectory that reached the
    /// end of a turn here is paused at its tool call (collected there) instead of waiting on this worker.
    fn settle_quietly(
        &mut self,
        worker: WorkerId,
        done: &[Departed],
        next: Option<u128>,
        mut stopping: Option<&mut Vec<TrajId>>,
    ) -> Result<bool, SimError> {
        let version = self.states[worker.index()].weights_version;
        self.epochs[worker.index()] += 1;
        if let Some(end) = next {
            self.queue.schedule(
                SimTime::from_fs_ceil(end),
                Internal::EngineTick { worker, epoch: self.epochs[worker.index()] },
            );
        }
        // A reused buffer (taken, so a nested settle gets its own): no allocation per engine tick.
        let mut finished = std::mem::take(&mut self.finished_buf);
        finished.clear();
        for d in done {
            let t = d.seq.traj;
            self.tm.add_tokens(t, worker, version, d.new_tokens)?;
            self.generate_span(worker, d, version);
            let target = self.tm.get(t)?.target_tokens;
            if d.seq.generated < target {
                // The end of a turn: the trajectory calls its tool and waits, holding no decode slot.
                let turn = self.finished_turn(t, d.seq.generated);
                self.tool_calls += 1;
                self.tool_ready[t.0 as usize] = self.now.after_ns(turn.tool_ns);
                match stopping.as_deref_mut() {
                    Some(paused) => {
                        self.tm.pause(t)?;
                        paused.push(t);
                    }
                    None => self.hold_for_tool(t, worker),
                }
            } else {
                self.tm.finish(t, self.now)?;
                finished.push(t);
            }
        }
        let engine = self.engines[worker.index()].as_ref().expect("settle only for engines");
        self.states[worker.index()].resident =
            engine.running_len() + engine.waiting_len() + self.tool_waiting_on[worker.index()];
        self.sample_engine(worker);
        // The worker is idle before the policy hears of the finished trajectories, so it can switch or reuse it.
        let drained = next.is_none() && self.tool_waiting_on[worker.index()] == 0;
        if drained {
            if !self.is_down(worker) {
                self.states[worker.index()].activity = Activity::Idle;
            }
            if let Some((start, step)) = self.rollout_open[worker.index()].take() {
                self.span(worker, SpanKind::Rollout, start, self.now, Some(step), 0);
            }
        }
        for &t in &finished {
            match self.reward_ns[t.0 as usize] {
                0 => self.dispatch(Event::TrajectoryFinished { trajectory: t, worker })?,
                // The verifier scores it off the GPU; the policy hears of it when the reward is known.
                r => {
                    let at = self.now.after_ns(r);
                    self.queue.schedule(at, Internal::Deliver(Event::TrajectoryFinished { trajectory: t, worker }));
                }
            }
        }
        self.finished_buf = finished;
        Ok(drained && self.states[worker.index()].activity == Activity::Idle)
    }

    /// Records sequences taken out of `worker`'s engine mid-generation: their tokens, their generation span, and
    /// their new status (paused, resumable anywhere); appends them to `paused`.
    fn pause_departed(
        &mut self,
        worker: WorkerId,
        version: u32,
        removed: &[Departed],
        paused: &mut Vec<TrajId>,
    ) -> Result<(), SimError> {
        for d in removed {
            self.tm.add_tokens(d.seq.traj, worker, version, d.new_tokens)?;
            self.tm.pause(d.seq.traj)?;
            if d.admitted_fs.is_some() {
                self.generate_span(worker, d, version);
            }
            paused.push(d.seq.traj);
        }
        Ok(())
    }

    /// The turn of `t` that ends after `generated` tokens.
    fn finished_turn(&self, t: TrajId, generated: u32) -> crate::trace::Turn {
        let mut end = 0;
        for turn in &self.turns[t.0 as usize] {
            end += turn.tokens;
            if end == generated {
                return *turn;
            }
        }
        unreachable!("a turn of trajectory {} ends at {generated}", t.0)
    }

    /// Trajectories of `worker` waiting on a tool call.
    fn tool_waiters(&self, worker: WorkerId) -> Vec<TrajId> {
        if self.tool_waiting_on[worker.index()] == 0 {
            return Vec::new();
        }
        (0..self.tool_wait.len()).filter(|&i| self.tool_wait[i] == Some(worker)).map(|i| TrajId(i as u64)).collect()
    }

    /// Pauses trajectories on a worker (`check_command` has vetted the worker).
    fn pause(&mut self, c: &Command, worker: WorkerId, which: Option<&[TrajId]>) -> Result<(), SimError> {
        let version = self.states[worker.index()].weights_version;
        let engine = self.engines[worker.index()].as_mut().expect("checked");
        // Let the iteration in progress finish; then take the trajectories out at that boundary.
        let done = engine.interrupt(self.now.as_fs());
        let targets: Vec<TrajId> = match which {
            Some(list) => list.to_vec(),
            None => engine.resident().collect(),
        };
        let mut removed = Vec::with_capacity(targets.len());
        let mut at_tool = Vec::new();
        for t in &targets {
            match engine.remove(*t) {
                Some(d) => removed.push(d),
                None if done.iter().any(|d| d.seq.traj == *t) => {} // finished at this very boundary
                None if self.tool_wait[t.0 as usize] == Some(worker) => at_tool.push(*t),
                None => {
                    let name = self.worker_name(worker).to_string();
                    return Err(self.invalid(c, format!("trajectory {} is not on worker `{name}`", t.0)));
                }
            }
        }
        let clock = engine.clock_fs();
        let next = engine.plan(clock).map_err(|e| self.engine_error(worker, e))?;
        if which.is_none() {
            at_tool = self.tool_waiters(worker);
        }
        let mut paused = Vec::with_capacity(removed.len() + at_tool.len());
        for &t in &at_tool {
            self.release_tool_wait(t, worker);
            self.tm.pause(t)?;
            paused.push(t);
        }
        self.pause_departed(worker, version, &removed, &mut paused)?;
        // As in the real backend: the policy hears of the pause before it hears that the worker drained.
        let drained = self.settle_quietly(worker, &done, next, which.is_none().then_some(&mut paused))?;
        self.dispatch(Event::Paused { worker, trajectories: paused })?;
        if drained && self.states[worker.index()].activity == Activity::Idle && self.engine_empty(worker) {
            self.dispatch(Event::WorkerDrained { worker })?;
        }
        Ok(())
    }

    /// Samples `worker`'s engine after its batch may have changed (an admission, a boundary, a pause): running
    /// batch, queue and KV-cache tokens, each recorded only when it changed.
    fn sample_engine(&mut self, worker: WorkerId) {
        let Some(e) = self.engines[worker.index()].as_ref() else { return };
        let (w, at) = (worker.0, self.now);
        self.series.record(w, CounterKind::Running, at, e.running_len() as u64);
        self.series.record(w, CounterKind::Waiting, at, e.waiting_len() as u64);
        self.series.record(w, CounterKind::KvTokens, at, e.kv_tokens());
    }

    fn engine_empty(&self, worker: WorkerId) -> bool {
        self.engines[worker.index()].as_ref().is_none_or(|e| e.is_empty())
    }

    fn span(&mut self, w: WorkerId, kind: SpanKind, start: SimTime, end: SimTime, step: Option<u32>, tokens: u64) {
        self.spans.push(Span { worker: w.0, kind, start, end, step, trajectory: None, tokens, version: None });
    }

    /// At the end of the run, stops any engine still generating and records its progress (tokens stay in flight).
    fn flush(&mut self) -> Result<(), SimError> {
        for i in 0..self.engines.len() {
            let Some(engine) = self.engines[i].as_mut() else { continue };
            if engine.is_empty() {
                continue;
            }
            let worker = WorkerId(i as u32);
            let version = self.states[i].weights_version;
            let mut departed = engine.interrupt(self.now.as_fs());
            let resident: Vec<TrajId> = engine.resident().collect();
            departed.extend(resident.into_iter().filter_map(|t| engine.remove(t)));
            for d in departed {
                self.tm.add_tokens(d.seq.traj, worker, version, d.new_tokens)?;
                if d.seq.generated == d.seq.target {
                    self.tm.finish(d.seq.traj, self.now)?;
                } else {
                    self.tm.pause(d.seq.traj)?;
                }
            }
            if let Some((start, step)) = self.rollout_open[i].take() {
                self.span(worker, SpanKind::Rollout, start, self.now, Some(step), 0);
            }
            self.sample_engine(worker);
        }
        // Trajectories waiting on a tool call at the end.
        for i in 0..self.tool_wait.len() {
            if let Some(w) = self.tool_wait[i] {
                self.release_tool_wait(TrajId(i as u64), w);
                self.tm.pause(TrajId(i as u64))?;
            }
        }
        // Workers still down at the end.
        for i in 0..self.down_since.len() {
            if let Some(since) = self.down_since[i].take() {
                self.span(WorkerId(i as u32), SpanKind::Down, since, self.now.max(since), None, 0);
            }
        }
        Ok(())
    }

    /// The recorded Timeline (moves the spans out: call once, at the end).
    fn timeline(&mut self) -> Timeline {
        let mut counters = std::collections::BTreeMap::new();
        let (mut preemptions, mut prefill, mut iterations) = (0, 0, 0);
        for e in self.engines.iter().flatten() {
            let s = e.stats();
            preemptions += s.preemptions;
            prefill += s.prefill_tokens;
            iterations += s.decode_iterations;
        }
        counters.insert("kv_preemptions".to_string(), preemptions);
        counters.insert("prefill_tokens".to_string(), prefill);
        counters.insert("decode_iterations".to_string(), iterations);
        counters.insert("failures".to_string(), self.failures);
        counters.insert("tool_calls".to_string(), self.tool_calls);
        counters.insert("lost_work_gpu_ms".to_string(), (self.lost_work_gpu_ns / 1_000_000) as u64);
        let spans = std::mem::take(&mut self.spans);
        let series = std::mem::take(&mut self.series);
        Timeline::assemble(&self.scenario.cluster, &self.tm, &self.batch_step, spans, self.now, counters, series)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failures a minute apart (the least validation accepts) against a train step of 20 minutes: no attempt
    /// finishes, and the run stops after MAX_FAILURES_WITHOUT_PROGRESS failures instead of looping without end.
    #[test]
    fn failures_that_throw_away_every_train_step_stop_the_run() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/quickstart.toml");
        let sets: Vec<String> = [
            "failures.mtbf_gpu_hours=0.134",
            "failures.recovery_s=0",
            "training.micro_batch_overhead_ms=60000",
            "training.micro_batch_tokens=16",
            "training.logprob_passes=[]",
            "workload.steps=1",
            "workload.prompts_per_step=1",
            "workload.max_response_tokens=64",
            "workload.response_tokens={ kind = \"constant\", tokens = 64 }",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let scenario = Scenario::load(&file, &sets).unwrap();
        let e = simulate(&scenario).err().expect("the run stops").to_string();
        assert!(
            e.contains("10000 worker failures in a row without a completed train step (after 0 of 1 steps")
                && e.contains("raise failures.mtbf_gpu_hours"),
            "{e}"
        );
        // With failures rare enough, the same step finishes.
        let mut sets = sets;
        sets[0] = "failures.mtbf_gpu_hours=1000000".into();
        simulate(&Scenario::load(&file, &sets).unwrap()).unwrap();
    }
}
