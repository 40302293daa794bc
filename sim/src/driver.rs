//! The one driver both backends share: it delivers Events to the Policy one at a time (never re-entrantly), checks
//! and books every Command, and keeps worker states, spans, versions, the train step and failure bookkeeping; a
//! [`Backend`] only starts effects and reports their completions (the simulator: its event engine and cost model;
//! the real backend: threads and devices).

use crate::cluster::WorkerId;
use crate::cost::{CostModel, Role};
use crate::policy::{check_command, Activity, ClusterView, Command, Event, Policy, WorkerState};
use crate::report::{Report, ReportBuilder, RunMeta};
use crate::rollout_engine::EngineStuck;
use crate::scenario::Scenario;
use crate::time::SimTime;
use crate::timeline::{outcome, CounterKind, CounterLog, CounterSample, Span, SpanKind, Timeline, TimelineWorker};
use crate::trajectory::{TrajError, TrajId, TrajectoryManager};
use crate::workload::{GroupLengths, Workload};
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;

/// Why a run (simulated or real) stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Setup(String),
    #[error("policy `{policy}` at t={at}: invalid command {command}: {reason}")]
    Command { policy: &'static str, at: SimTime, command: String, reason: String },
    /// A simulated engine that cannot make progress.
    #[error("worker `{worker}`: {source}")]
    Engine { worker: String, source: EngineStuck },
    /// A real worker thread that failed.
    #[error("worker `{worker}` failed: {message}")]
    Worker { worker: String, message: String },
    #[error("trajectory manager: {0}")]
    Trajectory(#[from] TrajError),
    #[error("policy `{policy}` stopped after {done} of {steps} train steps with nothing left to do (a policy bug)")]
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

/// Failures in a row without a completed train step after which a run stops with `RunError::NoProgress` (a train
/// step that every failure throws away would otherwise restart without end).
pub const MAX_FAILURES_WITHOUT_PROGRESS: u64 = 10_000;

/// The train step in progress (or waiting to restart after a failure threw an attempt away).
#[derive(Clone, Debug)]
pub struct TrainAttempt {
    pub step: u32,
    /// The data-parallel group, in the order the policy gave (rank order).
    pub workers: Vec<WorkerId>,
    pub trajectories: Vec<TrajId>,
    /// Prompt + response tokens of each sample, in `trajectories` order.
    pub sample_tokens: Vec<u64>,
    /// The attempt's number (a restart is a new attempt) and when it started.
    pub attempt: u64,
    pub started: SimTime,
}

/// A weight sync the driver has booked; the backend copies and then calls [`Driver::sync_done`].
#[derive(Clone, Debug)]
pub struct SyncOrder {
    pub step: u32,
    pub from: Vec<WorkerId>,
    pub to: Vec<WorkerId>,
    /// Senders and targets, sorted, each once.
    pub involved: Vec<WorkerId>,
    /// The policy version the targets will hold.
    pub version: u32,
    pub start: SimTime,
}

/// The effects of a backend. The driver has checked and booked a command (states, trajectory statuses) before it
/// calls one of these; the backend starts the work and reports its completion through the driver's methods.
pub trait Backend {
    /// The backend's clock, read before each event is delivered: the real backend's wall clock. `None` (the
    /// simulator): the driver's `now` is what the backend set.
    fn clock(&self) -> Option<SimTime> {
        None
    }
    /// Checks of the backend's own on top of [`check_command`] (e.g. the real trainer's replicas).
    fn check(&self, _d: &Driver, _c: &Command) -> Result<(), String> {
        Ok(())
    }
    /// Trajectories `ids` of prompt group `group` were created from `lengths`.
    fn group_created(&mut self, d: &Driver, group: u64, lengths: &GroupLengths, ids: Range<u64>);
    /// Start generating `trajectories` (admitted in the trajectory manager) on `worker`.
    fn admit(&mut self, d: &mut Driver, worker: WorkerId, trajectories: &[TrajId]) -> Result<(), RunError>;
    /// Start an attempt of `d.train` (its workers are marked Training); call [`Driver::train_done`] when it ends.
    fn train(&mut self, d: &mut Driver) -> Result<(), RunError>;
    /// Start copying weights; call [`Driver::sync_done`] when every target holds them.
    fn sync(&mut self, d: &mut Driver, order: SyncOrder) -> Result<(), RunError>;
    /// Start retagging `worker` to `to`; call [`Driver::switch_done`] when it holds it.
    fn switch(&mut self, d: &mut Driver, step: u32, worker: WorkerId, to: Role) -> Result<(), RunError>;
    /// Take trajectories off `worker` (all of its resident ones when `which` is `None`) at its next boundary and
    /// announce `Paused` (and a drain) through the driver.
    fn pause(
        &mut self,
        d: &mut Driver,
        c: &Command,
        worker: WorkerId,
        which: Option<&[TrajId]>,
    ) -> Result<(), RunError>;
    /// Deliver `event` at `at` (timers, and finished trajectories waiting for their reward).
    fn later(&mut self, d: &Driver, at: SimTime, event: Event);
    /// Fail `worker` at `at` instead of now (a copy or a switch in flight completes first).
    fn fail_later(&mut self, d: &Driver, at: SimTime, worker: WorkerId);
    /// The backend's part of a failure of `worker`, which was `was` until now (the driver has marked it Down and
    /// counted it): stop its work, schedule its recovery, and announce `WorkerFailed`.
    fn fail(&mut self, d: &mut Driver, worker: WorkerId, was: Activity) -> Result<(), RunError>;
    /// `worker` recovered (the simulator draws its next random failure).
    fn recovered(&mut self, _d: &Driver, _worker: WorkerId) {}
}

/// An event waiting for delivery.
enum Pending {
    Event(Event),
    /// `WorkerDrained`, delivered only if the worker is still idle then (the policy may have given it work in
    /// reaction to an event delivered before).
    DrainedIfIdle(WorkerId),
}

/// The state every backend keeps the same way, and the policy it drives.
pub struct Driver<'a> {
    pub scenario: &'a Scenario,
    pub policy: Box<dyn Policy>,
    /// Durations (the simulator) and the estimates policies read (both).
    pub cost: Box<dyn CostModel>,
    pub workload: Workload,
    /// The run's clock: simulated time, or wall time since the real run began.
    pub now: SimTime,
    pub tm: TrajectoryManager,
    pub states: Vec<WorkerState>,
    /// Policy version the trainer holds (train steps done).
    pub trainer_version: u32,
    pub train_steps_done: u32,
    next_group: u64,
    /// Events the backend handled (a report figure).
    pub events: u64,
    spans: Vec<Span>,
    /// The report computed as the run goes (summary-only runs): spans go to it instead of `spans`, and trained or
    /// discarded trajectories are folded into it and retired.
    report: Option<ReportBuilder>,
    /// Streaming: also keep the worker-activity spans in `spans` (not the generation spans), and each step's
    /// generation extent.
    keep_activity_spans: bool,
    step_generation: BTreeMap<u32, (SimTime, SimTime)>,
    /// Per worker: when its current train, sync or switch began, and that work's step label.
    activity_since: Vec<(SimTime, u32)>,
    /// Steps whose spans are all recorded: a command labelled with one is refused (see [`Driver::train_done`]).
    closed_through: Option<u32>,
    /// Open Rollout span per worker: (start, step label).
    rollout_open: Vec<Option<(SimTime, u32)>>,
    pending: VecDeque<Pending>,
    /// The train step in progress or waiting to restart.
    pub train: Option<TrainAttempt>,
    train_attempts: u64,
    /// The step in `train` was lost to a failure and waits for its workers to be up.
    train_restart: bool,
    /// The real backend asked its trainer to give up an attempt and has not heard back (no restart before).
    pub train_aborting: bool,
    /// When each down worker failed.
    down_since: Vec<Option<SimTime>>,
    /// Commands that need a down worker, carried out in order once all their workers are up.
    deferred: Vec<Command>,
    /// Failures so far per worker (numbers the MTBF draws) and in all, and since the last completed train step.
    pub failures_of: Vec<u64>,
    pub failures: u64,
    failures_since_step: u64,
    /// GPU-nanoseconds of train work thrown away by failures.
    pub lost_work_gpu_ns: u128,
    /// Counters over time for the trace (engine batch, queue and KV use; versions); never read by a decision.
    pub series: CounterLog,
    /// `RLSIM_DEBUG_EVENTS` set: print every event, the worker states and the policy's commands to stderr.
    debug_events: bool,
}

impl<'a> Driver<'a> {
    /// A driver at time 0 with every worker idle in its start role; `counters`: record the trace's counters.
    pub fn new(scenario: &'a Scenario, policy: Box<dyn Policy>, counters: bool) -> Self {
        let n = scenario.cluster.workers.len();
        let mut series = CounterLog::new(counters);
        series.record(CounterSample::RUN, CounterKind::PolicyVersion, SimTime::ZERO, 0);
        for w in scenario.cluster.workers.iter().filter(|w| w.has_tag("rollout")) {
            series.record(w.id.0, CounterKind::WeightsVersion, SimTime::ZERO, 0);
        }
        Driver {
            scenario,
            policy,
            cost: crate::cost::cost_model(scenario),
            workload: Workload::new(scenario.workload.clone(), scenario.seed),
            now: SimTime::ZERO,
            tm: TrajectoryManager::new(),
            states: WorkerState::initial(&scenario.cluster),
            trainer_version: 0,
            train_steps_done: 0,
            next_group: 0,
            events: 0,
            spans: Vec::new(),
            report: None,
            keep_activity_spans: false,
            step_generation: BTreeMap::new(),
            activity_since: vec![(SimTime::ZERO, 0); n],
            closed_through: None,
            rollout_open: vec![None; n],
            pending: VecDeque::new(),
            train: None,
            train_attempts: 0,
            train_restart: false,
            train_aborting: false,
            down_since: vec![None; n],
            deferred: Vec::new(),
            failures_of: vec![0; n],
            failures: 0,
            failures_since_step: 0,
            lost_work_gpu_ns: 0,
            series,
            debug_events: std::env::var_os("RLSIM_DEBUG_EVENTS").is_some(),
        }
    }

    /// Computes the report as the run goes ([`Driver::advance_report`]) and retires finished trajectories, instead
    /// of recording a Timeline of every trajectory: memory then stays flat over a run's steps. With
    /// `activity_spans`, the Timeline still gets the worker-activity spans (a few per worker and step).
    pub fn stream_report(&mut self, activity_spans: bool) {
        self.report = Some(ReportBuilder::new(TimelineWorker::of(&self.scenario.cluster)));
        self.keep_activity_spans = activity_spans;
    }

    pub fn worker_name(&self, w: WorkerId) -> &str {
        &self.scenario.cluster.worker(w).name
    }

    pub fn is_down(&self, w: WorkerId) -> bool {
        self.down_since.get(w.index()).is_some_and(|d| d.is_some())
    }

    /// Marks a worker down from `at` (the real backend learns when a killed rank stopped only later).
    pub fn set_down_since(&mut self, w: WorkerId, at: SimTime) {
        self.down_since[w.index()] = Some(at);
    }

    /// Whether every train step is done.
    pub fn all_steps_done(&self) -> bool {
        self.train_steps_done >= self.scenario.workload.steps
    }

    /// The error for a run that ended short of its steps.
    pub fn stalled(&self) -> RunError {
        RunError::Stalled {
            policy: self.policy.name(),
            done: self.train_steps_done,
            steps: self.scenario.workload.steps,
        }
    }

    /// Queues `event` for delivery.
    pub fn announce(&mut self, event: Event) {
        self.pending.push_back(Pending::Event(event));
    }

    /// Queues `WorkerDrained` for `worker`, delivered if it is still idle by then.
    pub fn announce_drained(&mut self, worker: WorkerId) {
        self.pending.push_back(Pending::DrainedIfIdle(worker));
    }

    /// Delivers the queued events to the policy in order and carries out its commands. A command's own events
    /// (a pause's `Paused`) join the end of the queue: the policy is never called while a command list is half
    /// carried out, and both backends deliver in the same order.
    pub fn deliver(&mut self, fx: &mut dyn Backend) -> Result<(), RunError> {
        while let Some(next) = self.pending.pop_front() {
            let event = match next {
                Pending::Event(e) => e,
                Pending::DrainedIfIdle(worker) => {
                    if self.states[worker.index()].activity != Activity::Idle {
                        continue;
                    }
                    Event::WorkerDrained { worker }
                }
            };
            if let Some(t) = fx.clock() {
                self.now = t;
            }
            let view =
                ClusterView::of(self.now, self.scenario, &self.states, &self.tm, self.trainer_version, &*self.cost);
            let commands = self.policy.on_event(&event, &view);
            if self.debug_events {
                let st: Vec<String> =
                    self.states.iter().map(|w| format!("{:?}/{:?}/{}", w.role, w.activity, w.resident)).collect();
                eprintln!("{:?} {event:?} -> {} cmds {:?}", self.now, commands.len(), st);
                for c in &commands {
                    eprintln!("    {}", c.describe());
                }
            }
            for c in commands {
                self.apply(c, fx)?;
            }
        }
        // A lost step whose survivors were busy at the recovery restarts once they are free.
        if self.train_restart {
            self.restart_train_if_ready(fx)?;
        }
        Ok(())
    }

    /// The error for an invalid command.
    pub fn invalid(&self, command: &Command, reason: impl Into<String>) -> RunError {
        RunError::Command {
            policy: self.policy.name(),
            at: self.now,
            command: command.describe(),
            reason: reason.into(),
        }
    }

    /// Checks, books and starts one command.
    fn apply(&mut self, c: Command, fx: &mut dyn Backend) -> Result<(), RunError> {
        // A command that needs a down worker waits for its recovery (the job stalls on it, as a real one would).
        if c.needs_any(|w| self.is_down(w)) {
            self.deferred.push(c);
            return Ok(());
        }
        if let Command::Pause { worker, .. } = &c {
            if self.is_down(*worker) {
                // Its sequences were taken off it when it failed.
                self.announce(Event::Paused { worker: *worker, trajectories: Vec::new() });
                return Ok(());
            }
        }
        let closed = match &c {
            Command::Train { step, .. } | Command::SyncWeights { step, .. } | Command::Retag { step, .. }
                if self.closed_through.is_some_and(|k| *step <= k) =>
            {
                Err(format!(
                    "step {step} is closed: train step {} is done, and a step's train, sync and switch work must be \
                     done by the time the next train step completes",
                    self.train_steps_done - 1
                ))
            }
            _ => Ok(()),
        };
        closed
            .and_then(|()| check_command(&c, &self.scenario.cluster, &self.states, self.now))
            .and_then(|()| match &c {
                Command::Train { .. } if self.train.is_some() => {
                    Err("a train step is already running (train steps run one at a time)".to_string())
                }
                _ => fx.check(self, &c),
            })
            .map_err(|r| self.invalid(&c, r))?;
        match c {
            Command::CreateGroups { step, groups } => {
                for _ in 0..groups {
                    let g = self.workload.group(self.next_group, step);
                    let rewards: &[u64] = if self.scenario.workload.reward_s.is_some() { &g.reward_ns } else { &[] };
                    let ids =
                        self.tm.create_group(self.next_group, step, g.prompt_tokens, &g.responses, rewards, self.now);
                    if !g.kept {
                        self.tm.mark_dropped_group(self.next_group);
                    }
                    fx.group_created(self, self.next_group, &g, ids);
                    self.next_group += 1;
                }
                Ok(())
            }
            Command::Admit { worker, trajectories } => {
                if trajectories.is_empty() {
                    return Ok(());
                }
                for &t in &trajectories {
                    self.tm.admit(t, worker)?;
                }
                if self.states[worker.index()].activity == Activity::Idle {
                    self.states[worker.index()].activity = Activity::RollingOut;
                    let step = self.tm.get(trajectories[0])?.batch_step;
                    self.rollout_open[worker.index()] = Some((self.now, step));
                }
                fx.admit(self, worker, &trajectories)
            }
            Command::Train { step, workers, trajectories } => {
                let mut sample_tokens = Vec::with_capacity(trajectories.len());
                for &t in &trajectories {
                    let tr = self.tm.get(t)?;
                    sample_tokens.push(tr.prompt_tokens as u64 + tr.generated as u64);
                    self.tm.train(t, step, self.trainer_version)?;
                }
                self.train =
                    Some(TrainAttempt { step, workers, trajectories, sample_tokens, attempt: 0, started: self.now });
                self.start_train_attempt(fx)
            }
            Command::SyncWeights { step, from, to } => {
                let mut involved: Vec<WorkerId> = from.iter().chain(to.iter()).copied().collect();
                involved.sort();
                involved.dedup();
                for &w in &involved {
                    self.states[w.index()].activity = Activity::Syncing;
                    self.activity_since[w.index()] = (self.now, step);
                }
                let order = SyncOrder { step, from, to, involved, version: self.trainer_version, start: self.now };
                fx.sync(self, order)
            }
            Command::Retag { step, worker, to } => {
                self.states[worker.index()].activity = Activity::Switching;
                self.activity_since[worker.index()] = (self.now, step);
                fx.switch(self, step, worker, to)
            }
            Command::Pause { worker, ref trajectories } => fx.pause(self, &c, worker, trajectories.as_deref()),
            Command::SetTimer { at, id } => {
                fx.later(self, at, Event::TimerFired { id });
                Ok(())
            }
            Command::Discard { trajectories } => {
                for t in trajectories {
                    self.tm.discard(t)?;
                }
                Ok(())
            }
        }
    }

    /// Starts a new attempt of the train step in `self.train`.
    fn start_train_attempt(&mut self, fx: &mut dyn Backend) -> Result<(), RunError> {
        self.train_attempts += 1;
        let (attempt, now) = (self.train_attempts, self.now);
        let train = self.train.as_mut().expect("a step to train");
        train.attempt = attempt;
        train.started = now;
        for &w in &train.workers {
            self.states[w.index()].activity = Activity::Training;
            self.activity_since[w.index()] = (now, train.step);
        }
        fx.train(self)
    }

    /// Records a worker-activity span (`tokens` processed, for train passes).
    pub fn span(&mut self, w: WorkerId, kind: SpanKind, start: SimTime, end: SimTime, step: Option<u32>, tokens: u64) {
        self.record(Span { worker: w.0, kind, start, end, step, trajectory: None, tokens, version: None });
    }

    /// Keeps a span for the Timeline, or folds it into the report computed as the run goes.
    fn record(&mut self, s: Span) {
        match &mut self.report {
            Some(b) => {
                b.span(s.worker, s.kind, s.start.as_ns(), s.end.as_ns(), s.step, s.into_rollout());
                if self.keep_activity_spans {
                    match (s.kind, s.step) {
                        (SpanKind::Generate, Some(step)) => {
                            let e = self.step_generation.entry(step).or_insert((s.start, s.end));
                            *e = (e.0.min(s.start), e.1.max(s.end));
                        }
                        (SpanKind::Generate, None) => {}
                        _ => self.spans.push(s),
                    }
                }
            }
            None => self.spans.push(s),
        }
    }

    /// Books `new_tokens` that `worker` generated for `traj` since it was admitted at `admitted` (`None`: it had
    /// not joined a batch yet) and records the generation span: always when `always_span`, else only for a
    /// trajectory that joined a batch. Returns the policy version that generated them.
    pub fn generated(
        &mut self,
        worker: WorkerId,
        traj: TrajId,
        new_tokens: u32,
        admitted: Option<SimTime>,
        always_span: bool,
    ) -> Result<u32, RunError> {
        let version = self.states[worker.index()].weights_version;
        self.tm.add_tokens(traj, worker, version, new_tokens)?;
        if always_span || admitted.is_some() {
            let step = self.tm.get(traj)?.batch_step;
            self.record(Span {
                worker: worker.0,
                kind: SpanKind::Generate,
                start: admitted.unwrap_or(self.now).min(self.now),
                end: self.now,
                step: Some(step),
                trajectory: Some(traj.0),
                tokens: new_tokens as u64,
                version: Some(version),
            });
        }
        Ok(version)
    }

    /// Announces that `traj`, finished on `worker`, is ready for training: now, or once its reward is known.
    pub fn announce_finished(&mut self, worker: WorkerId, traj: TrajId, fx: &mut dyn Backend) {
        let event = Event::TrajectoryFinished { trajectory: traj, worker };
        match self.tm.get(traj).map_or(0, |t| t.reward_ns) {
            0 => self.announce(event),
            // The verifier scores it off the GPU; the policy hears of it when the reward is known.
            r => fx.later(self, self.now.after_ns(r), event),
        }
    }

    /// `worker`'s engine is empty: it is idle (unless down) and its rollout span closes. The caller announces the
    /// drain (after the events it owes first).
    pub fn drained(&mut self, worker: WorkerId) {
        if !self.is_down(worker) {
            self.states[worker.index()].activity = Activity::Idle;
        }
        if let Some((start, step)) = self.rollout_open[worker.index()].take() {
            self.span(worker, SpanKind::Rollout, start, self.now, Some(step), 0);
        }
    }

    /// The train step in progress finished: the trainer holds a new version and its workers are free (a worker
    /// that failed meanwhile stays down). Returns the step.
    pub fn train_done(&mut self) -> TrainAttempt {
        let train = self.train.take().expect("a train step is running");
        self.trainer_version += 1;
        self.series.record(CounterSample::RUN, CounterKind::PolicyVersion, self.now, self.trainer_version as u64);
        self.train_steps_done += 1;
        self.failures_since_step = 0;
        // Step k (labels count from 0) closes once train step k + 1 is done and no work labelled k is under way or
        // waiting: every bundled policy records a step's spans by then, and a later command labelled k is refused,
        // so the report can close the step's window and fold the time before it (see `advance_report`).
        let mut closed = self.train_steps_done as i64 - 2;
        for (i, st) in self.states.iter().enumerate() {
            if train.workers.contains(&WorkerId(i as u32)) {
                continue;
            }
            if matches!(st.activity, Activity::Syncing | Activity::Switching | Activity::Training) {
                closed = closed.min(self.activity_since[i].1 as i64 - 1);
            }
        }
        for c in &self.deferred {
            if let Command::Train { step, .. } | Command::SyncWeights { step, .. } | Command::Retag { step, .. } = c {
                closed = closed.min(*step as i64 - 1);
            }
        }
        if closed >= 0 {
            self.closed_through = Some(self.closed_through.map_or(closed as u32, |k| k.max(closed as u32)));
        }
        for &w in &train.workers {
            if !self.is_down(w) {
                self.states[w.index()].activity = Activity::Idle;
            }
        }
        self.announce(Event::TrainDone { step: train.step, version: self.trainer_version });
        train
    }

    /// The attempt in progress was thrown away by a failure: its work counts as lost, its workers that are up
    /// are free, and the step restarts once all of them are up.
    pub fn train_lost(&mut self) {
        let train = self.train.as_ref().expect("a train step is running");
        let cluster = &self.scenario.cluster;
        let gpus: u128 = train.workers.iter().map(|w| cluster.worker(*w).gpu_count() as u128).sum();
        self.lost_work_gpu_ns += gpus * self.now.since(train.started) as u128;
        for &w in &train.workers {
            if !self.is_down(w) {
                self.states[w.index()].activity = Activity::Idle;
            }
        }
        self.train_restart = true;
    }

    /// Restarts a lost step once the backend has given it up and all of its workers are up, idle and holding the
    /// training state (a policy may have used a survivor meanwhile: the step then waits for it).
    pub fn restart_train_if_ready(&mut self, fx: &mut dyn Backend) -> Result<(), RunError> {
        let Some(train) = &self.train else { return Ok(()) };
        let ready = |w: &WorkerId| {
            let st = &self.states[w.index()];
            !self.is_down(*w) && st.activity == Activity::Idle && st.role == Role::Train
        };
        if self.train_restart && !self.train_aborting && train.workers.iter().all(ready) {
            self.train_restart = false;
            self.start_train_attempt(fx)?;
        }
        Ok(())
    }

    /// A weight sync finished: its workers are free, its targets hold its version.
    pub fn sync_done(&mut self, order: &SyncOrder) {
        for &w in &order.involved {
            self.record(Span {
                worker: w.0,
                kind: SpanKind::Sync,
                start: order.start,
                end: self.now,
                step: Some(order.step),
                trajectory: None,
                tokens: 0,
                version: Some(order.version),
            });
            self.states[w.index()].activity = Activity::Idle;
        }
        for &w in &order.to {
            self.states[w.index()].weights_version = order.version;
            self.series.record(w.0, CounterKind::WeightsVersion, self.now, order.version as u64);
        }
        self.announce(Event::WeightsSynced { step: order.step, version: order.version });
    }

    /// A switch of `worker` to `role` ran from `start` to `end`. Becoming a rollout engine, it holds the trainer's
    /// current weights (the training state it leaves holds them).
    pub fn switch_done(&mut self, worker: WorkerId, role: Role, step: u32, start: SimTime, end: SimTime) {
        // A switch into rollout leaves the engine holding the trainer's current weights: its span carries that version.
        let version = (role == Role::Rollout).then_some(self.trainer_version);
        self.record(Span {
            worker: worker.0,
            kind: SpanKind::Switch,
            start,
            end,
            step: Some(step),
            trajectory: None,
            tokens: 0,
            version,
        });
        let st = &mut self.states[worker.index()];
        st.role = role;
        st.activity = Activity::Idle;
        if role == Role::Rollout {
            st.weights_version = self.trainer_version;
            self.series.record(worker.0, CounterKind::WeightsVersion, end, self.trainer_version as u64);
        }
        self.announce(Event::Retagged { worker, role });
    }

    /// `worker` fails now: counted and marked down, then the backend stops its work (a worker copying or
    /// switching fails a second later, once that completes).
    pub fn fail(&mut self, worker: WorkerId, fx: &mut dyn Backend) -> Result<(), RunError> {
        if self.is_down(worker) {
            return Ok(());
        }
        let was = self.states[worker.index()].activity;
        if matches!(was, Activity::Syncing | Activity::Switching) {
            fx.fail_later(self, self.now.after_ns(1_000_000_000), worker);
            return Ok(());
        }
        self.failures += 1;
        self.failures_of[worker.index()] += 1;
        self.failures_since_step += 1;
        if self.failures_since_step >= MAX_FAILURES_WITHOUT_PROGRESS {
            return Err(RunError::NoProgress {
                failures: self.failures_since_step,
                done: self.train_steps_done,
                steps: self.scenario.workload.steps,
                at: self.now,
            });
        }
        // Down from now: whatever the policy decides meanwhile waits for the recovery. The policy sees it down
        // too: otherwise it admits more work there, which runs on recovery ahead of a weight sync deferred
        // meanwhile, and the sync finds the worker busy (found by the property tests: seamless, multi-turn,
        // failures).
        self.down_since[worker.index()] = Some(self.now);
        self.states[worker.index()].activity = Activity::Down;
        fx.fail(self, worker, was)
    }

    /// `worker` recovers: its Down span closes, a lost train step restarts when all its workers are up, and the
    /// commands that waited for it are carried out in order (one still naming a down worker waits again).
    pub fn recover(&mut self, worker: WorkerId, fx: &mut dyn Backend) -> Result<(), RunError> {
        let Some(since) = self.down_since[worker.index()].take() else { return Ok(()) };
        self.span(worker, SpanKind::Down, since, self.now, None, 0);
        self.states[worker.index()].activity = Activity::Idle;
        self.restart_train_if_ready(fx)?;
        for c in std::mem::take(&mut self.deferred) {
            self.apply(c, fx)?;
        }
        fx.recovered(self, worker);
        self.announce(Event::WorkerRecovered { worker });
        Ok(())
    }

    /// Closes the Down spans of workers still down at the end of a run.
    pub fn close_down_spans(&mut self) {
        for i in 0..self.down_since.len() {
            if let Some(since) = self.down_since[i].take() {
                self.span(WorkerId(i as u32), SpanKind::Down, since, self.now.max(since), None, 0);
            }
        }
    }

    /// Closes `worker`'s rollout span now, if open.
    pub fn close_rollout_span(&mut self, worker: WorkerId) {
        if let Some((start, step)) = self.rollout_open[worker.index()].take() {
            self.span(worker, SpanKind::Rollout, start, self.now, Some(step), 0);
        }
    }

    /// The recorded Timeline ending at `end`, with the backend's `counters` and the driver's (moves the spans
    /// out: call once, at the end). A run that streams its report has no samples and no generation spans in it.
    pub fn timeline(&mut self, end: SimTime, mut counters: BTreeMap<String, u64>) -> Timeline {
        counters.insert("failures".to_string(), self.failures);
        counters.insert("lost_work_gpu_ms".to_string(), (self.lost_work_gpu_ns / 1_000_000) as u64);
        let spans = std::mem::take(&mut self.spans);
        let series = std::mem::take(&mut self.series);
        let mut t = Timeline::assemble(&self.scenario.cluster, &self.tm, spans, end, counters, series);
        if self.report.is_some() {
            t.samples.clear();
            t.step_generation = std::mem::take(&mut self.step_generation);
        }
        t
    }

    /// Streaming runs: steps the driver has closed get their report windows, the critical path is folded up to
    /// the earliest instant a span may still start before (now, an open train, sync or switch, or
    /// `open_generation`: the earliest start of a generation still under way), and the trained or discarded
    /// trajectories at the front are folded in and retired.
    pub fn advance_report(&mut self, open_generation: Option<SimTime>) -> Result<(), RunError> {
        let Some(b) = &mut self.report else { return Ok(()) };
        if let Some(k) = self.closed_through {
            b.close_through(k);
        }
        let mut known = self.now.min(open_generation.unwrap_or(self.now));
        for (i, st) in self.states.iter().enumerate() {
            if matches!(st.activity, Activity::Syncing | Activity::Switching | Activity::Training) {
                known = known.min(self.activity_since[i].0);
            }
        }
        b.fold(known.as_ns());
        self.tm
            .retire_front(|t| b.sample(t.generated, outcome(t), t.segments.iter().map(|s| (s.version, s.tokens))))
            .map_err(RunError::Conservation)?;
        Ok(())
    }

    /// Streaming runs: the report of the run ending at `end` (its Timeline from [`Driver::timeline`] carries the
    /// counters), with the trajectories still live folded in.
    pub fn finish_report(&mut self, timeline: &Timeline, meta: &RunMeta) -> Option<Report> {
        let mut b = self.report.take()?;
        for t in self.tm.all() {
            b.sample(t.generated, outcome(t), t.segments.iter().map(|s| (s.version, s.tokens)));
        }
        Some(b.finish(timeline.end, timeline.total_gpus, timeline.counters.clone(), meta))
    }

    /// Streaming runs: the report of the run as if it ended now, without ending it. Rollout and down spans still
    /// open end now; the trajectories still live count with the tokens they have booked, and a batch whose
    /// training has not finished counts as in flight; a sync, switch or train pass under way is left out (at the
    /// end of a train step, where `search` looks, that is a lent worker's switch at most).
    pub fn report_so_far(&self, engine_counters: &BTreeMap<String, u64>, meta: &RunMeta) -> Option<Report> {
        let mut b = self.report.clone()?;
        let now = self.now.as_ns();
        for (i, open) in self.rollout_open.iter().enumerate() {
            if let Some((start, step)) = open {
                b.span(i as u32, SpanKind::Rollout, start.as_ns().min(now), now, Some(*step), false);
            }
        }
        for (i, since) in self.down_since.iter().enumerate() {
            if let Some(since) = since {
                b.span(i as u32, SpanKind::Down, since.as_ns().min(now), now, None, false);
            }
        }
        for t in self.tm.all() {
            b.sample(t.generated, outcome(t), t.segments.iter().map(|s| (s.version, s.tokens)));
        }
        b.untrain_from(self.train_steps_done);
        let mut counters = engine_counters.clone();
        counters.insert("failures".to_string(), self.failures);
        counters.insert("lost_work_gpu_ms".to_string(), (self.lost_work_gpu_ns / 1_000_000) as u64);
        Some(b.finish(self.now, self.scenario.cluster.total_gpus(), counters, meta))
    }

    /// The latest end of a recorded span (the real run's end).
    pub fn last_span_end(&self) -> SimTime {
        self.spans.iter().map(|s| s.end).max().unwrap_or(SimTime::ZERO)
    }
}
