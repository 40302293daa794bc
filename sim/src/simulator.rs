//! The simulation backend: a discrete-event engine and the cost model carry out the effects of the shared
//! [`Driver`]'s commands in simulated time, and the driver records the Timeline.

use crate::cluster::WorkerId;
use crate::cost::Role;
use crate::driver::{Backend, Driver, SyncOrder};
use crate::policy::{build_policy, Activity, Command, Event, Policy};
use crate::queue::EventQueue;
use crate::report::{report, Report, RunMeta};
use crate::rng::RngStreams;
use crate::rollout_engine::{Departed, EngineSeq, EngineStuck, RolloutEngine};
use crate::scenario::Scenario;
use crate::time::SimTime;
use crate::timeline::{CounterKind, SpanKind, Timeline};
use crate::trajectory::{TrajId, TrajectoryManager};
use crate::workload::GroupLengths;
use std::collections::VecDeque;
use std::time::Instant;

pub use crate::driver::{RunError, MAX_FAILURES_WITHOUT_PROGRESS, MAX_SIM_TIME};

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
    /// `attempt` is the train attempt it was scheduled for: a failure of a train worker throws that attempt away.
    TrainDone {
        step: u32,
        attempt: u64,
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
        order: SyncOrder,
    },
    SwitchDone {
        worker: WorkerId,
        role: Role,
        step: u32,
        start: SimTime,
    },
}

/// The planned passes of the train attempt in progress (its spans are recorded when it ends or is lost).
struct TrainPlan {
    attempt: u64,
    /// Controller work and batch reward before the first pass, ns.
    reward_ns: u64,
    logprob_ns: Vec<u64>,
    update_ns: u64,
    tokens: u64,
}

/// The simulator's side of a run: engines, the event queue, and the state of multi-turn tool calls.
/// One multi-turn trajectory's tool state: its turns, the worker holding it while its tool call runs, when that
/// call returns, and the epoch that invalidates a paused call's return.
#[derive(Clone, Debug, Default)]
struct ToolState {
    turns: Vec<crate::trace::Turn>,
    wait: Option<WorkerId>,
    ready: SimTime,
    epoch: u64,
}

/// The tool state of `t` in `tools` (ids from `base`), if it is live.
fn tool_of(tools: &VecDeque<ToolState>, base: u64, t: TrajId) -> Option<&ToolState> {
    tools.get(usize::try_from(t.0.checked_sub(base)?).ok()?)
}

/// The worker `t` waits on for its tool call, if any (a free function: the caller holds an engine borrowed).
fn tool_holder(tools: &VecDeque<ToolState>, base: u64, t: TrajId) -> Option<WorkerId> {
    tool_of(tools, base, t)?.wait
}

struct Sim<'a> {
    scenario: &'a Scenario,
    queue: EventQueue<Internal>,
    engines: Vec<Option<RolloutEngine>>,
    epochs: Vec<u64>,
    /// The train attempt in progress and its passes (`None` while none runs).
    train_plan: Option<TrainPlan>,
    /// Reused by every engine tick for the sequences that left the engine, and for those that finished.
    departed: Vec<Departed>,
    finished_buf: Vec<TrajId>,
    /// Multi-turn: each live trajectory's tool state, by id from `tools_base` (retired with the trajectories in a
    /// summary-only run), and per-worker counts of trajectories waiting on a tool call.
    tools: VecDeque<ToolState>,
    tools_base: u64,
    tool_waiting_on: Vec<usize>,
    tool_calls: u64,
    /// The workload has multi-turn samples (the vectors above are kept only then).
    multi_turn: bool,
    /// The report is computed as the run goes (`Recording::stream_report`).
    stream_report: bool,
}

/// What a simulation records beyond what its report needs (the report is the same either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recording {
    /// Counter samples over time (KV-cache use, batch, queue, versions) for the trace: a few per engine boundary,
    /// time and memory spent for nothing when only the summary is kept (sweep, search, bench).
    pub counters: bool,
    /// Compute the report as the run goes and retire finished trajectories, keeping no samples and no generation
    /// spans: memory stays flat over the run's steps.
    pub stream_report: bool,
    /// With `stream_report`: still keep the worker-activity spans (not the per-trajectory generation spans) in the
    /// Timeline, for files that show each worker's activity (`--timeline workers`).
    pub activity_spans: bool,
}

impl Recording {
    /// Everything: for runs whose files are written.
    pub const FULL: Recording = Recording { counters: true, stream_report: false, activity_spans: true };
    /// Only what the report needs.
    pub const SUMMARY: Recording = Recording { counters: false, stream_report: true, activity_spans: false };
    /// Counters and worker-activity spans, the report streamed: everything a run's files need below
    /// `--timeline trajectories` (the per-trajectory generation spans are all that is left out).
    pub const WORKERS: Recording = Recording { counters: true, stream_report: true, activity_spans: true };
}

/// Runs a scenario in the simulator with its pipeline's policy, recording everything.
pub fn simulate(scenario: &Scenario) -> Result<SimRun, RunError> {
    simulate_recording(scenario, Recording::FULL)
}

/// [`simulate`], recording what `recording` asks.
pub fn simulate_recording(scenario: &Scenario, recording: Recording) -> Result<SimRun, RunError> {
    simulate_with_recording(scenario, build_policy(&scenario.pipeline, &scenario.workload), recording)
}

/// Runs a scenario in the simulator with any policy (a user's own, or a test's), recording everything.
pub fn simulate_with(scenario: &Scenario, policy: Box<dyn Policy>) -> Result<SimRun, RunError> {
    simulate_with_recording(scenario, policy, Recording::FULL)
}

/// [`simulate_with`], recording what `recording` asks.
pub fn simulate_with_recording(
    scenario: &Scenario,
    policy: Box<dyn Policy>,
    recording: Recording,
) -> Result<SimRun, RunError> {
    Simulation::new(scenario, policy, recording).finish()
}

/// A simulation that can stop after some train steps and go on later: `search` screens a configuration on the
/// first steps of its full run and, if it confirms it, carries on from there instead of starting again. Stopping
/// changes nothing: a run stopped and resumed gives the same results as one run straight through.
pub struct Simulation<'a> {
    d: Driver<'a>,
    sim: Sim<'a>,
    started: Instant,
}

// A paused simulation moves between `search`'s worker threads.
const _: fn() = || {
    fn is_send<T: Send>() {}
    is_send::<Simulation<'static>>();
};

impl<'a> Simulation<'a> {
    /// Sets a run up, up to its first event.
    pub fn new(scenario: &'a Scenario, policy: Box<dyn Policy>, recording: Recording) -> Self {
        let started = Instant::now();
        let mut d = Driver::new(scenario, policy, recording.counters);
        if recording.stream_report {
            d.stream_report(recording.activity_spans);
        }
        // Any worker that may hold a rollout engine (its start state or a later retag) gets one.
        let engines: Vec<Option<RolloutEngine>> = scenario
            .cluster
            .workers
            .iter()
            .map(|w| {
                w.has_tag("rollout").then(|| {
                    RolloutEngine::new(
                        d.cost.decode_coeffs(w),
                        d.cost.prefill_coeffs(w),
                        d.cost.kv_capacity_tokens(w),
                        scenario.rollout.max_num_seqs,
                        scenario.rollout.prefix_caching,
                    )
                })
            })
            .collect();
        let n = engines.len();
        let mut sim = Sim {
            scenario,
            queue: EventQueue::new(),
            engines,
            epochs: vec![0; n],
            train_plan: None,
            departed: Vec::new(),
            finished_buf: Vec::new(),
            tools: VecDeque::new(),
            tools_base: 0,
            tool_waiting_on: vec![0; n],
            tool_calls: 0,
            multi_turn: scenario.workload.is_multi_turn(),
            stream_report: recording.stream_report,
        };
        if let Some(f) = &scenario.failures {
            for &(worker, at_s) in &f.events {
                sim.queue.schedule(SimTime(crate::time::secs_to_ns(at_s)), Internal::Fail { worker });
            }
            for i in 0..n {
                sim.schedule_mtbf_failure(&d, WorkerId(i as u32));
            }
        }
        sim.queue.schedule(SimTime::ZERO, Internal::Deliver(Event::Started));
        Simulation { d, sim, started }
    }

    /// Train steps completed so far.
    pub fn steps_done(&self) -> u32 {
        self.d.train_steps_done
    }

    /// Runs until `steps` train steps are done (stopping right after the last of them finishes training), or to the
    /// end for `steps` at or beyond the scenario's; a run that stops short of them is an error (`Stalled`).
    pub fn run_until_trained(&mut self, steps: u32) -> Result<(), RunError> {
        let (d, sim) = (&mut self.d, &mut self.sim);
        while d.train_steps_done < steps {
            let Some((at, ev)) = sim.queue.pop() else { break };
            // Failures and recoveries after the last train step do not extend the run.
            if d.all_steps_done() && matches!(ev, Internal::Fail { .. } | Internal::Recover { .. }) {
                continue;
            }
            if at > MAX_SIM_TIME {
                // A failure drawn beyond the horizon never strikes; anything else means a cost exploded.
                if matches!(ev, Internal::Fail { .. }) {
                    continue;
                }
                return Err(sim.clock_limit(&ev));
            }
            d.now = at;
            d.events += 1;
            let train_done = matches!(ev, Internal::TrainDone { .. });
            sim.handle(d, ev)?;
            d.deliver(sim)?;
            if train_done && sim.stream_report {
                d.advance_report(sim.oldest_generation())?;
                sim.retire_tools(d.tm.first_live());
            }
        }
        if d.train_steps_done < steps.min(d.scenario.workload.steps) {
            return Err(d.stalled());
        }
        Ok(())
    }

    /// The summary of the run as it stands: the steps trained so far, over the time so far (a streaming run only;
    /// `None` otherwise). Generation still under way counts as in flight with the tokens its engines have booked
    /// (an engine books a sequence's tokens when it leaves the batch, so the few an iteration in progress holds are
    /// not counted), and spans still open end now.
    pub fn summary_so_far(&self) -> Option<crate::report::Summary> {
        let meta = self.meta();
        let counters = self.sim.counters();
        self.d.report_so_far(&counters, &meta).map(|r| r.summary)
    }

    fn meta(&self) -> RunMeta {
        RunMeta {
            scenario: self.d.scenario.name.clone(),
            pipeline: self.d.policy.name().to_string(),
            backend: "sim".into(),
            seed: self.d.scenario.seed,
            events: self.d.events,
            wall_s: self.started.elapsed().as_secs_f64(),
            usd_per_hour: self.d.scenario.cluster.usd_per_hour(),
            trajectory_copies: self.d.scenario.workload.coarsen,
        }
    }

    /// Runs to the end and reports.
    pub fn finish(mut self) -> Result<SimRun, RunError> {
        self.run_until_trained(u32::MAX)?;
        self.sim.flush(&mut self.d)?;
        self.d.tm.check_conservation().map_err(RunError::Conservation)?;
        let timeline = self.sim.timeline(&mut self.d);
        let meta = self.meta();
        let mut d = self.d;
        let report = d.finish_report(&timeline, &meta).unwrap_or_else(|| report(&timeline, &meta));
        Ok(SimRun { timeline, report, trajectories: d.tm })
    }
}

impl Backend for Sim<'_> {
    fn group_created(&mut self, _d: &Driver, _group: u64, g: &GroupLengths, ids: std::ops::Range<u64>) {
        // Single-turn runs keep no per-trajectory tool state (48 bytes a trajectory at 1,024 GPUs' scale).
        if !self.multi_turn {
            debug_assert!(g.turns.is_empty());
            return;
        }
        debug_assert_eq!(ids.start, self.tools_base + self.tools.len() as u64);
        for k in 0..ids.count() {
            let turns = g.turns.get(k).cloned().unwrap_or_default();
            self.tools.push_back(ToolState { turns, ..ToolState::default() });
        }
    }

    fn admit(&mut self, d: &mut Driver, worker: WorkerId, trajectories: &[TrajId]) -> Result<(), RunError> {
        for &t in trajectories {
            if self.multi_turn && self.tool(t).is_some_and(|s| s.ready > d.now) {
                // Paused during a tool call: it rejoins a batch only once the tool has answered.
                self.hold_for_tool(d, t, worker);
            } else {
                self.enqueue(d, t, worker, 0)?;
            }
        }
        self.kick(d, worker)
    }

    fn train(&mut self, d: &mut Driver) -> Result<(), RunError> {
        let train = d.train.as_ref().expect("a step to train");
        let cost = d.cost.train(&train.sample_tokens, &train.workers);
        // The controller's per-step work (reward manager, advantages, moving the batch) and the batch reward both
        // keep the train GPUs waiting before the first pass.
        let reward_ns = crate::time::secs_to_ns(self.scenario.workload.reward_batch_s)
            + d.cost.controller_ns(train.sample_tokens.len() as u64);
        self.queue.schedule(
            d.now.after_ns(reward_ns).after_ns(cost.total_ns()),
            Internal::TrainDone { step: train.step, attempt: train.attempt },
        );
        self.train_plan = Some(TrainPlan {
            attempt: train.attempt,
            reward_ns,
            logprob_ns: cost.logprob_ns.clone(),
            update_ns: cost.update_ns,
            tokens: train.sample_tokens.iter().sum(),
        });
        Ok(())
    }

    fn sync(&mut self, d: &mut Driver, order: SyncOrder) -> Result<(), RunError> {
        let ns = d.cost.sync_ns(&order.from, &order.to);
        self.queue.schedule(d.now.after_ns(ns), Internal::SyncDone { order });
        Ok(())
    }

    fn switch(&mut self, d: &mut Driver, step: u32, worker: WorkerId, to: Role) -> Result<(), RunError> {
        let ns = d.cost.switch_ns(worker, to);
        self.queue.schedule(d.now.after_ns(ns), Internal::SwitchDone { worker, role: to, step, start: d.now });
        Ok(())
    }

    fn pause(
        &mut self,
        d: &mut Driver,
        c: &Command,
        worker: WorkerId,
        which: Option<&[TrajId]>,
    ) -> Result<(), RunError> {
        let version = d.states[worker.index()].weights_version;
        let engine = self.engines[worker.index()].as_mut().expect("checked");
        // Let the iteration in progress finish; then take the trajectories out at that boundary.
        let done = engine.interrupt(d.now.as_fs());
        let targets: Vec<TrajId> = match which {
            Some(list) => list.to_vec(),
            None => engine.resident().collect(),
        };
        let mut removed = Vec::with_capacity(targets.len());
        let mut at_tool = Vec::new();
        for t in &targets {
            match engine.remove(*t) {
                Some(dep) => removed.push(dep),
                None if done.iter().any(|dep| dep.seq.traj == *t) => {} // finished at this very boundary
                None if tool_holder(&self.tools, self.tools_base, *t) == Some(worker) => at_tool.push(*t),
                None => {
                    let reason = format!("trajectory {} is not on worker `{}`", t.0, d.worker_name(worker));
                    return Err(d.invalid(c, reason));
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
            d.tm.pause(t)?;
            paused.push(t);
        }
        pause_departed(d, worker, version, &removed, &mut paused)?;
        // As in the real backend: the policy hears of the pause before it hears that the worker drained.
        let drained = self.settle_quietly(d, worker, &done, next, which.is_none().then_some(&mut paused))?;
        d.announce(Event::Paused { worker, trajectories: paused });
        if drained && self.engine_empty(worker) {
            d.announce_drained(worker);
        }
        Ok(())
    }

    fn later(&mut self, _d: &Driver, at: SimTime, event: Event) {
        self.queue.schedule(at, Internal::Deliver(event));
    }

    fn fail_later(&mut self, _d: &Driver, at: SimTime, worker: WorkerId) {
        self.queue.schedule(at, Internal::Fail { worker });
    }

    /// Its rollout sequences are paused with their tokens kept (the policy resumes them elsewhere), a train step
    /// it takes part in is lost and restarts when it recovers, and it is down for `recovery_s`.
    fn fail(&mut self, d: &mut Driver, worker: WorkerId, was: Activity) -> Result<(), RunError> {
        let mut paused = Vec::new();
        for t in self.tool_waiters(worker) {
            self.release_tool_wait(t, worker);
            d.tm.pause(t)?;
            paused.push(t);
        }
        if let Some(engine) = self.engines[worker.index()].as_mut().filter(|e| !e.is_empty()) {
            let version = d.states[worker.index()].weights_version;
            let done = engine.interrupt(d.now.as_fs());
            let resident: Vec<TrajId> = engine.resident().collect();
            let removed: Vec<Departed> = resident.into_iter().filter_map(|t| engine.remove(t)).collect();
            pause_departed(d, worker, version, &removed, &mut paused)?;
            // Sequences that completed at this very boundary finish normally.
            self.settle_quietly(d, worker, &done, None, Some(&mut paused))?;
        }
        if was == Activity::Training {
            // What ran of the attempt stays on the timeline up to now; the step restarts from scratch on recovery.
            self.record_train_spans(d, false);
            self.train_plan = None;
            d.train_lost();
        }
        d.states[worker.index()].resident = 0;
        self.epochs[worker.index()] += 1;
        let recovery = crate::time::secs_to_ns(self.scenario.failures.as_ref().map_or(0.0, |f| f.recovery_s));
        self.queue.schedule(d.now.after_ns(recovery), Internal::Recover { worker });
        d.announce(Event::WorkerFailed { worker, trajectories: paused });
        Ok(())
    }

    fn recovered(&mut self, d: &Driver, worker: WorkerId) {
        self.schedule_mtbf_failure(d, worker);
    }
}

/// Records sequences taken out of `worker`'s engine mid-generation: their tokens, their generation span, and
/// their new status (paused, resumable anywhere); appends them to `paused`.
fn pause_departed(
    d: &mut Driver,
    worker: WorkerId,
    version: u32,
    removed: &[Departed],
    paused: &mut Vec<TrajId>,
) -> Result<(), RunError> {
    debug_assert_eq!(version, d.states[worker.index()].weights_version);
    for dep in removed {
        let admitted = dep.admitted_fs.map(SimTime::from_fs_ceil);
        d.generated(worker, dep.seq.traj, dep.new_tokens, admitted, false)?;
        d.tm.pause(dep.seq.traj)?;
        paused.push(dep.seq.traj);
    }
    Ok(())
}

impl Sim<'_> {
    /// The error for an event scheduled past [`MAX_SIM_TIME`], naming the fields whose values set its cost.
    fn clock_limit(&self, ev: &Internal) -> RunError {
        let name = |w: &WorkerId| self.scenario.cluster.worker(*w).name.clone();
        let (what, fields) = match ev {
            Internal::EngineTick { worker, .. } => (
                format!("a rollout iteration of worker `{}`", name(worker)),
                "the GPU's hbm_gbytes_per_s, bf16_tflops, matmul_efficiency, hbm_efficiency_vs_h100 and \
                 layer_floor_vs_h100, the framework's decode and prefill efficiencies and overheads, \
                 rollout.speculative_tokens and speculative_acceptance, the model's size and the response lengths",
            ),
            Internal::TrainDone { step, .. } => (
                format!("train step {step}"),
                "training.mfu, the GPU's bf16_tflops, matmul_efficiency and train_efficiency_vs_h100, the framework's \
                 train constants and the sample lengths",
            ),
            Internal::SyncDone { order } => (
                format!("the weight sync after step {}", order.step),
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
        RunError::ClockLimit { what, fields }
    }

    fn handle(&mut self, d: &mut Driver, ev: Internal) -> Result<(), RunError> {
        match ev {
            Internal::Deliver(e) => {
                d.announce(e);
                Ok(())
            }
            Internal::EngineTick { worker, epoch } => {
                if epoch == self.epochs[worker.index()] {
                    self.engine_tick(d, worker)?;
                }
                Ok(())
            }
            Internal::TrainDone { attempt, .. } => {
                if self.train_plan.as_ref().is_some_and(|p| p.attempt == attempt) {
                    self.record_train_spans(d, true);
                    self.train_plan = None;
                    d.train_done();
                }
                Ok(())
            }
            Internal::SyncDone { order } => {
                d.sync_done(&order);
                Ok(())
            }
            Internal::Fail { worker } => d.fail(worker, self),
            Internal::ToolReturn { traj, worker, epoch } => self.tool_return(d, traj, worker, epoch),
            Internal::Recover { worker } => d.recover(worker, self),
            Internal::SwitchDone { worker, role, step, start } => {
                d.switch_done(worker, role, step, start, d.now);
                Ok(())
            }
        }
    }

    /// Records the spans of the train attempt in progress on each of its workers: all of them when it `finished`,
    /// else what ran of them up to now (a failure threw it away).
    fn record_train_spans(&self, d: &mut Driver, finished: bool) {
        let (Some(plan), Some(train)) = (&self.train_plan, d.train.as_ref()) else { return };
        // The group and start only: the attempt's sample lists stay where they are.
        let (step, started, workers) = (train.step, train.started, train.workers.clone());
        let until = d.now;
        let record = |d: &mut Driver, w: WorkerId, kind: SpanKind, start: SimTime, ns: u64, tokens: u64| {
            let end = if finished { start.after_ns(ns) } else { start.after_ns(ns).min(until) };
            if finished || start < until {
                d.span(w, kind, start, end, Some(step), tokens);
            }
            start.after_ns(ns)
        };
        for &w in &workers {
            let mut at = started;
            if plan.reward_ns > 0 {
                at = record(d, w, SpanKind::Reward, at, plan.reward_ns, 0);
            }
            for &ns in &plan.logprob_ns {
                at = record(d, w, SpanKind::LogProb, at, ns, plan.tokens);
            }
            record(d, w, SpanKind::Train, at, plan.update_ns, plan.tokens);
        }
    }

    /// Schedules `worker`'s next failure from its GPUs' MTBF (each failure of the worker draws a fresh interval).
    fn schedule_mtbf_failure(&mut self, d: &Driver, worker: WorkerId) {
        let Some(mtbf_h) = self.scenario.failures.as_ref().and_then(|f| f.mtbf_gpu_hours) else { return };
        let gpus = self.scenario.cluster.worker(worker).gpu_count() as f64;
        let n = d.failures_of[worker.index()];
        let mut rng = RngStreams::new(self.scenario.seed).indexed(&format!("failures/{}", worker.0), n);
        let u: f64 = rand::RngExt::random(&mut rng);
        // Exponential with mean MTBF / GPUs (the worker fails when any of its GPUs does).
        let wait_s = -(1.0 - u).ln() * mtbf_h * 3600.0 / gpus;
        self.queue.schedule(d.now.after_ns(crate::time::secs_to_ns(wait_s)), Internal::Fail { worker });
    }

    fn engine_error(&self, worker: WorkerId, source: EngineStuck) -> RunError {
        RunError::Engine { worker: self.scenario.cluster.worker(worker).name.clone(), source }
    }

    fn engine_tick(&mut self, d: &mut Driver, worker: WorkerId) -> Result<(), RunError> {
        // One buffer for every tick: the event loop does not allocate per event.
        let mut done = std::mem::take(&mut self.departed);
        done.clear();
        let engine = self.engines[worker.index()].as_mut().expect("ticks only for engines");
        engine.complete_into(&mut done);
        let clock = engine.clock_fs();
        let next = engine.plan(clock).map_err(|e| self.engine_error(worker, e));
        let result = next.and_then(|next| self.settle(d, worker, &done, next));
        self.departed = done;
        result
    }

    /// After an engine boundary: schedules its next interval, records and announces finished trajectories, and
    /// announces the drain when it drained.
    fn settle(
        &mut self,
        d: &mut Driver,
        worker: WorkerId,
        done: &[Departed],
        next: Option<u128>,
    ) -> Result<(), RunError> {
        if self.settle_quietly(d, worker, done, next, None)? {
            d.announce_drained(worker);
        }
        Ok(())
    }

    /// `settle` without announcing the drain; returns whether the worker drained (so the caller announces it
    /// after its own event).
    ///
    /// `stopping`: the worker is being emptied (a pause of everything, a failure), so a trajectory that reached the
    /// end of a turn here is paused at its tool call (collected there) instead of waiting on this worker.
    fn settle_quietly(
        &mut self,
        d: &mut Driver,
        worker: WorkerId,
        done: &[Departed],
        next: Option<u128>,
        mut stopping: Option<&mut Vec<TrajId>>,
    ) -> Result<bool, RunError> {
        self.epochs[worker.index()] += 1;
        if let Some(end) = next {
            self.queue.schedule(
                SimTime::from_fs_ceil(end),
                Internal::EngineTick { worker, epoch: self.epochs[worker.index()] },
            );
        }
        // A reused buffer (taken, so a settle inside this one — a failure's — gets its own): no allocation per tick.
        let mut finished = std::mem::take(&mut self.finished_buf);
        finished.clear();
        for dep in done {
            let t = dep.seq.traj;
            d.generated(worker, t, dep.new_tokens, dep.admitted_fs.map(SimTime::from_fs_ceil), true)?;
            let target = d.tm.get(t)?.target_tokens;
            if dep.seq.generated < target {
                // The end of a turn: the trajectory calls its tool and waits, holding no decode slot.
                let turn = self.finished_turn(t, dep.seq.generated);
                self.tool_calls += 1;
                if let Some(s) = self.tool_mut(t) {
                    s.ready = d.now.after_ns(turn.tool_ns);
                }
                match stopping.as_deref_mut() {
                    Some(paused) => {
                        d.tm.pause(t)?;
                        paused.push(t);
                    }
                    None => self.hold_for_tool(d, t, worker),
                }
            } else {
                d.tm.finish(t, d.now)?;
                finished.push(t);
            }
        }
        let engine = self.engines[worker.index()].as_ref().expect("settle only for engines");
        d.states[worker.index()].resident =
            engine.running_len() + engine.waiting_len() + self.tool_waiting_on[worker.index()];
        self.sample_engine(d, worker);
        // The worker is idle before the policy hears of the finished trajectories, so it can switch or reuse it.
        let drained = next.is_none() && self.tool_waiting_on[worker.index()] == 0;
        if drained {
            d.drained(worker);
        }
        for &t in &finished {
            d.announce_finished(worker, t, self);
        }
        self.finished_buf = finished;
        Ok(drained)
    }

    /// The turn of `t` that ends after `generated` tokens.
    fn finished_turn(&self, t: TrajId, generated: u32) -> crate::trace::Turn {
        let mut end = 0;
        for turn in self.tool(t).map_or(&[][..], |s| &s.turns) {
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
        let base = self.tools_base;
        self.tools
            .iter()
            .enumerate()
            .filter(|(_, s)| s.wait == Some(worker))
            .map(|(i, _)| TrajId(base + i as u64))
            .collect()
    }

    /// Samples `worker`'s engine after its batch may have changed (an admission, a boundary, a pause): running
    /// batch, queue and KV-cache tokens, each recorded only when it changed.
    fn sample_engine(&self, d: &mut Driver, worker: WorkerId) {
        let Some(e) = self.engines[worker.index()].as_ref() else { return };
        let (w, at) = (worker.0, d.now);
        d.series.record(w, CounterKind::Running, at, e.running_len() as u64);
        d.series.record(w, CounterKind::Waiting, at, e.waiting_len() as u64);
        d.series.record(w, CounterKind::KvTokens, at, e.kv_tokens());
    }

    fn engine_empty(&self, worker: WorkerId) -> bool {
        self.engines[worker.index()].as_ref().is_none_or(|e| e.is_empty())
    }

    /// At the end of the run, stops any engine still generating and records its progress (tokens stay in flight).
    fn flush(&mut self, d: &mut Driver) -> Result<(), RunError> {
        for i in 0..self.engines.len() {
            let Some(engine) = self.engines[i].as_mut() else { continue };
            if engine.is_empty() {
                continue;
            }
            let worker = WorkerId(i as u32);
            let version = d.states[i].weights_version;
            let mut departed = engine.interrupt(d.now.as_fs());
            let resident: Vec<TrajId> = engine.resident().collect();
            departed.extend(resident.into_iter().filter_map(|t| engine.remove(t)));
            for dep in departed {
                d.tm.add_tokens(dep.seq.traj, worker, version, dep.new_tokens)?;
                if dep.seq.generated == dep.seq.target {
                    d.tm.finish(dep.seq.traj, d.now)?;
                } else {
                    d.tm.pause(dep.seq.traj)?;
                }
            }
            d.close_rollout_span(worker);
            self.sample_engine(d, worker);
        }
        // Trajectories waiting on a tool call at the end.
        let waiting: Vec<(TrajId, WorkerId)> = (0..self.tools.len())
            .filter_map(|i| Some((TrajId(self.tools_base + i as u64), self.tools[i].wait?)))
            .collect();
        for (t, w) in waiting {
            self.release_tool_wait(t, w);
            d.tm.pause(t)?;
        }
        d.close_down_spans();
        Ok(())
    }

    /// The recorded Timeline (moves the spans out: call once, at the end).
    /// The earliest start of a generation still under way in any engine (no span still to come starts before).
    fn oldest_generation(&self) -> Option<SimTime> {
        let fs = self.engines.iter().flatten().filter_map(|e| e.oldest_admitted_fs()).min()?;
        Some(SimTime((fs / crate::time::FS_PER_NS) as u64))
    }

    fn timeline(&self, d: &mut Driver) -> Timeline {
        let counters = self.counters();
        d.timeline(d.now, counters)
    }

    /// The engines' counters so far.
    fn counters(&self) -> std::collections::BTreeMap<String, u64> {
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
        counters.insert("tool_calls".to_string(), self.tool_calls);
        counters
    }

    /// Where trajectory `t` stands in its turns after `generated` tokens: (end of its current turn, tokens the
    /// tools have added to its context so far, tokens the last tool call added).
    fn turn_state(&self, t: TrajId, generated: u32, target: u32) -> (u32, u32, u32) {
        let Some(turns) = self.tool(t).map(|s| &s.turns) else { return (target, 0, 0) };
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
    fn enqueue(&mut self, d: &Driver, t: TrajId, worker: WorkerId, cached: u32) -> Result<(), RunError> {
        let tr = d.tm.get(t)?;
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
    fn hold_for_tool(&mut self, d: &Driver, t: TrajId, worker: WorkerId) {
        let s = self.tool_mut(t).expect("a live multi-turn trajectory");
        s.wait = Some(worker);
        s.epoch += 1;
        let (epoch, ready) = (s.epoch, s.ready);
        self.tool_waiting_on[worker.index()] += 1;
        self.queue.schedule(ready.max(d.now), Internal::ToolReturn { traj: t, worker, epoch });
    }

    /// Takes `t` off its tool wait on `worker` (a pause); its call keeps running outside.
    fn release_tool_wait(&mut self, t: TrajId, worker: WorkerId) {
        let s = self.tool_mut(t).expect("a trajectory waiting on a tool is live");
        s.wait = None;
        s.epoch += 1;
        self.tool_waiting_on[worker.index()] -= 1;
    }

    fn tool(&self, t: TrajId) -> Option<&ToolState> {
        tool_of(&self.tools, self.tools_base, t)
    }

    fn tool_mut(&mut self, t: TrajId) -> Option<&mut ToolState> {
        self.tools.get_mut(usize::try_from(t.0.checked_sub(self.tools_base)?).ok()?)
    }

    /// Drops the tool state of trajectories before `first_live` (retired by the trajectory manager).
    fn retire_tools(&mut self, first_live: TrajId) {
        while self.tools_base < first_live.0 && self.tools.pop_front().is_some() {
            self.tools_base += 1;
        }
    }

    fn tool_return(&mut self, d: &mut Driver, t: TrajId, worker: WorkerId, epoch: u64) -> Result<(), RunError> {
        // A stale return: the call was given up (a pause) or its trajectory is gone.
        match self.tool_mut(t) {
            Some(s) if s.epoch == epoch && s.wait == Some(worker) => s.wait = None,
            _ => return Ok(()),
        }
        self.tool_waiting_on[worker.index()] -= 1;
        // With prefix caching the context before the tool's output is still cached: only the output is prefilled.
        let cached = if self.scenario.rollout.prefix_caching {
            let tr = d.tm.get(t)?;
            let (_, context, last) = self.turn_state(t, tr.generated, tr.target_tokens);
            tr.prompt_tokens + context - last + tr.generated
        } else {
            0
        };
        self.enqueue(d, t, worker, cached)?;
        self.kick(d, worker)
    }

    /// After sequences joined `worker`'s waiting queue: cut the running interval at the next iteration boundary (or
    /// plan one) and schedule the engine's next tick.
    fn kick(&mut self, d: &mut Driver, worker: WorkerId) -> Result<(), RunError> {
        let now_fs = d.now.as_fs();
        let engine = self.engines[worker.index()].as_mut().expect("a rollout engine");
        let end = if engine.is_busy() {
            engine.truncate(now_fs)
        } else {
            engine.plan(now_fs).map_err(|source| RunError::Engine {
                worker: self.scenario.cluster.worker(worker).name.clone(),
                source,
            })?
        };
        d.states[worker.index()].resident =
            engine.running_len() + engine.waiting_len() + self.tool_waiting_on[worker.index()];
        self.sample_engine(d, worker);
        if let Some(end) = end {
            self.epochs[worker.index()] += 1;
            self.queue.schedule(
                SimTime::from_fs_ceil(end),
                Internal::EngineTick { worker, epoch: self.epochs[worker.index()] },
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run stopped after some train steps and carried on gives the report of the run straight through, for every
    /// pipeline; what it reports while stopped covers exactly the steps trained so far.
    #[test]
    fn a_run_stopped_and_resumed_reports_as_one_run_straight_through() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/quickstart.toml");
        // Besides every pipeline's defaults, async with two local updates per sync, whose trainer starts the next
        // batch the moment one finishes (that batch must not count as trained in the report so far).
        let cases = crate::scenario::PIPELINE_TYPES.iter().map(|kind| vec![format!("pipeline.type={kind}")]).chain([[
            "pipeline.type=async",
            "pipeline.async.steps_per_sync=2",
            "training.mfu=0.02",
        ]
        .map(String::from)
        .to_vec()]);
        for mut sets in cases {
            let kind = sets.join(" ");
            sets.push("workload.steps=6".to_string());
            let scenario = Scenario::load(&file, &sets).unwrap();
            let policy = || build_policy(&scenario.pipeline, &scenario.workload);
            let mut straight = simulate_recording(&scenario, Recording::SUMMARY).unwrap().report;
            let mut run = Simulation::new(&scenario, policy(), Recording::SUMMARY);
            for stop in [3u32, 5] {
                run.run_until_trained(stop).unwrap();
                assert_eq!(run.steps_done(), stop, "{kind}");
                let so_far = run.summary_so_far().expect("a summary-only run streams its report");
                let rows = &straight.steps[..stop as usize];
                assert_eq!(so_far.steps, stop, "{kind}");
                assert_eq!(so_far.trained_tokens, rows.iter().map(|r| r.trained_tokens).sum::<u64>(), "{kind}");
                assert_eq!(so_far.trained_samples, rows.iter().map(|r| r.trained_samples).sum::<u64>(), "{kind}");
                let histogram: u64 = so_far.staleness_histogram.iter().map(|(_, n)| n).sum();
                assert_eq!(histogram, so_far.trained_tokens, "{kind}");
                assert!(so_far.sim_time_s <= rows[stop as usize - 1].end_s + 1e-9, "{kind}");
                assert!(so_far.sim_time_s > rows[stop as usize - 2].end_s, "{kind}");
            }
            let mut resumed = run.finish().unwrap().report;
            straight.summary.wall_s = 0.0;
            resumed.summary.wall_s = 0.0;
            assert_eq!(resumed, straight, "{kind}");
        }
    }

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
