//! The Timeline: the only thing a backend records — spans of worker activity and per-trajectory generation, one
//! record per trajectory, and counter samples — from which `report::report` derives every metric.

use crate::cluster::Cluster;
use crate::time::SimTime;
use crate::trajectory::{TrajStatus, Trajectory, TrajectoryManager};
use serde::Serialize;
use std::collections::BTreeMap;

/// What a span is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    /// A rollout engine busy period on a worker (from first admission until it drains).
    Rollout,
    /// One trajectory's generation on a worker (overlaps its worker's Rollout span and other trajectories').
    Generate,
    /// A forward-only log-prob pass of a train step.
    LogProb,
    /// Forward + backward + all-reduce + optimizer.
    Train,
    /// Weight copy to rollout workers.
    Sync,
    /// Offload/onload between rollout and training state.
    Switch,
    /// Train workers waiting before the step's first pass for the batch's reward (verifier/sandbox) and the
    /// framework's controller work (reward manager, advantages, moving the batch); GPUs idle.
    Reward,
    /// A failed worker waiting to recover.
    Down,
}

impl SpanKind {
    pub fn name(self) -> &'static str {
        match self {
            SpanKind::Rollout => "rollout",
            SpanKind::Generate => "generate",
            SpanKind::LogProb => "logprob",
            SpanKind::Train => "train",
            SpanKind::Sync => "sync",
            SpanKind::Switch => "switch",
            SpanKind::Reward => "reward",
            SpanKind::Down => "down",
        }
    }

    /// Worker-activity spans occupy the worker exclusively; `Generate` spans are per trajectory and overlap.
    pub fn is_activity(self) -> bool {
        self != SpanKind::Generate
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub worker: u32,
    pub kind: SpanKind,
    pub start: SimTime,
    pub end: SimTime,
    /// The RL step the span belongs to (for Generate/Rollout: the step whose batch it produces).
    pub step: Option<u32>,
    pub trajectory: Option<u64>,
    /// Tokens generated (Generate) or processed (Train, LogProb).
    pub tokens: u64,
    /// Policy version used (Generate), produced (Sync), or held by the engine after a Switch into rollout (none
    /// for a Switch into training).
    pub version: Option<u32>,
}

impl Span {
    /// A switch that made its worker a rollout engine (it loaded weights), rather than a trainer.
    pub fn into_rollout(&self) -> bool {
        self.kind == SpanKind::Switch && self.version.is_some()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineWorker {
    pub name: String,
    pub gpus: u32,
    pub node: u32,
    pub tags: Vec<String>,
}

impl TimelineWorker {
    /// The cluster's workers as a Timeline names them.
    pub fn of(cluster: &Cluster) -> Vec<TimelineWorker> {
        cluster
            .workers
            .iter()
            .map(|w| TimelineWorker { name: w.name.clone(), gpus: w.gpu_count(), node: w.node, tags: w.tags.clone() })
            .collect()
    }
}

/// What became of a trajectory by the end of the run.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Trained { step: u32, version: u32 },
    InFlight,
    Discarded,
}

/// What has become of `t` so far.
pub fn outcome(t: &Trajectory) -> Outcome {
    match (t.status, t.trained) {
        (TrajStatus::Trained, Some((step, version))) => Outcome::Trained { step, version },
        (TrajStatus::Discarded, _) => Outcome::Discarded,
        _ => Outcome::InFlight,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleRecord {
    pub trajectory: u64,
    pub group: u64,
    /// The step whose batch it was created for.
    pub batch_step: u32,
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
    /// (policy version, tokens) per segment, in generation order.
    pub segments: Vec<(u32, u32)>,
    pub outcome: Outcome,
}

/// What a counter sample measures.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterKind {
    /// KV-cache tokens a rollout engine holds for its running sequences (their contexts), at its last batch change.
    KvTokens,
    /// Sequences in a rollout engine's running batch.
    Running,
    /// Sequences waiting in a rollout engine's queue for a slot.
    Waiting,
    /// Policy version of the weights a worker generates with.
    WeightsVersion,
    /// The trainer's policy version (run-wide).
    PolicyVersion,
}

impl CounterKind {
    pub const ALL: [CounterKind; 5] = [
        CounterKind::KvTokens,
        CounterKind::Running,
        CounterKind::Waiting,
        CounterKind::WeightsVersion,
        CounterKind::PolicyVersion,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CounterKind::KvTokens => "kv_tokens",
            CounterKind::Running => "running",
            CounterKind::Waiting => "waiting",
            CounterKind::WeightsVersion => "weights_version",
            CounterKind::PolicyVersion => "policy_version",
        }
    }
}

/// A counter's value from `at` until its next sample. (24 bytes: a DAPO run records a few million.)
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CounterSample {
    pub at: SimTime,
    pub value: u64,
    /// The worker it belongs to, or [`CounterSample::RUN`] for a run-wide counter.
    pub worker: u32,
    pub kind: CounterKind,
}

impl CounterSample {
    /// `worker` of a run-wide counter (the policy version).
    pub const RUN: u32 = u32::MAX;
}

/// Records counter samples on change only; both backends feed it as their engines' batches change. At most one
/// sample per counter and instant: a later value at the same instant replaces the earlier (and a value that comes
/// back within the instant to the one before leaves no sample). A disabled log records nothing (runs whose summary
/// is all that is kept: sweep, search, bench).
#[derive(Clone, Debug)]
pub struct CounterLog {
    enabled: bool,
    samples: Vec<CounterSample>,
    /// Per worker (then one slot for run-wide counters) and kind: the counter's last sample and the one before,
    /// kept here so that a repeated value is refused without reaching into `samples`.
    last: Vec<[(Option<Last>, Option<Last>); CounterKind::ALL.len()]>,
    /// Samples withdrawn (their `at` set to [`CounterLog::WITHDRAWN`]), dropped at the end.
    withdrawn: usize,
}

#[derive(Clone, Copy, Debug)]
struct Last {
    value: u64,
    at: SimTime,
    index: usize,
}

impl Default for CounterLog {
    fn default() -> Self {
        CounterLog::new(true)
    }
}

impl CounterLog {
    /// The time of a withdrawn sample (later than any run may reach).
    const WITHDRAWN: SimTime = SimTime(u64::MAX);

    pub fn new(enabled: bool) -> Self {
        CounterLog { enabled, samples: Vec::new(), last: Vec::new(), withdrawn: 0 }
    }

    pub fn record(&mut self, worker: u32, kind: CounterKind, at: SimTime, value: u64) {
        if !self.enabled {
            return;
        }
        let slot = if worker == CounterSample::RUN { 0 } else { worker as usize + 1 };
        if slot >= self.last.len() {
            self.last.resize(slot + 1, [(None, None); CounterKind::ALL.len()]);
        }
        let (last, before) = &mut self.last[slot][kind as usize];
        match *last {
            Some(l) if l.value == value => return,
            Some(l) if l.at == at => {
                if before.is_some_and(|b| b.value == value) {
                    // Back to the value before within the instant: no change to show.
                    self.samples[l.index].at = Self::WITHDRAWN;
                    self.withdrawn += 1;
                    (*last, *before) = (*before, None);
                } else {
                    self.samples[l.index].value = value;
                    *last = Some(Last { value, ..l });
                }
                return;
            }
            _ => {}
        }
        (*before, *last) = (*last, Some(Last { value, at, index: self.samples.len() }));
        self.samples.push(CounterSample { at, value, worker, kind });
    }

    /// The samples, in recording order (per counter, in time order).
    pub fn into_samples(mut self) -> Vec<CounterSample> {
        if self.withdrawn > 0 {
            self.samples.retain(|c| c.at != Self::WITHDRAWN);
        }
        self.samples
    }
}

/// Everything a run recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    pub workers: Vec<TimelineWorker>,
    /// GPUs in the cluster, used or not (unused GPUs count as idle).
    pub total_gpus: u32,
    pub spans: Vec<Span>,
    pub samples: Vec<SampleRecord>,
    /// When the last event happened.
    pub end: SimTime,
    /// Backend counters (e.g. KV-cache preemptions), by name.
    pub counters: BTreeMap<String, u64>,
    /// Counters over time (KV-cache use, batch, queue, versions), sampled when they change; only the trace shows
    /// them, no metric reads them.
    pub counter_samples: Vec<CounterSample>,
    /// Per step, the earliest start and the latest end of its generation spans, kept when those spans are not (a
    /// run that computes its report as it goes); empty otherwise. See [`Timeline::generation_extents`].
    pub step_generation: BTreeMap<u32, (SimTime, SimTime)>,
}

impl Timeline {
    /// Assembles a finished run's Timeline, the same way for every backend: workers from the cluster, one sample
    /// record per trajectory from the trajectory manager (with the step each was created for), the backend's spans,
    /// its counters plus the trajectory manager's pause/resume/migrate counts, and its counter samples.
    pub fn assemble(
        cluster: &Cluster,
        tm: &TrajectoryManager,
        spans: Vec<Span>,
        end: SimTime,
        mut counters: BTreeMap<String, u64>,
        counter_samples: CounterLog,
    ) -> Timeline {
        let c = tm.counters();
        counters.insert("paused".to_string(), c.paused);
        counters.insert("resumed".to_string(), c.resumed);
        counters.insert("migrated".to_string(), c.migrated);
        Timeline {
            workers: TimelineWorker::of(cluster),
            total_gpus: cluster.total_gpus(),
            spans,
            samples: tm
                .all()
                .iter()
                .map(|t| SampleRecord {
                    trajectory: t.id.0,
                    group: t.group,
                    batch_step: t.batch_step,
                    prompt_tokens: t.prompt_tokens,
                    generated_tokens: t.generated,
                    segments: t.segments.iter().map(|s| (s.version, s.tokens)).collect(),
                    outcome: outcome(t),
                })
                .collect(),
            end,
            counters,
            counter_samples: counter_samples.into_samples(),
            step_generation: BTreeMap::new(),
        }
    }

    /// Per step, the earliest start and the latest end of its generation, from its generation spans or, when they
    /// were not kept, from `step_generation`.
    pub fn generation_extents(&self) -> BTreeMap<u32, (SimTime, SimTime)> {
        let mut out = self.step_generation.clone();
        for s in self.spans.iter().filter(|s| s.kind == SpanKind::Generate) {
            if let Some(step) = s.step {
                let e = out.entry(step).or_insert((s.start, s.end));
                *e = (e.0.min(s.start), e.1.max(s.end));
            }
        }
        out
    }

    /// The first pair of overlapping activity spans on one worker, if any (a worker is never double-booked).
    pub fn find_double_booking(&self) -> Option<(&Span, &Span)> {
        let mut by_worker: BTreeMap<u32, Vec<&Span>> = BTreeMap::new();
        for s in self.spans.iter().filter(|s| s.kind.is_activity()) {
            by_worker.entry(s.worker).or_default().push(s);
        }
        for spans in by_worker.values_mut() {
            spans.sort_by_key(|s| (s.start, s.end));
            for pair in spans.windows(2) {
                if pair[1].start < pair[0].end {
                    return Some((pair[0], pair[1]));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_is_recorded_when_it_changes_once_per_instant() {
        let mut log = CounterLog::default();
        let at = |ns| SimTime(ns);
        log.record(0, CounterKind::Running, at(0), 0);
        log.record(0, CounterKind::Running, at(5), 0); // unchanged: nothing
        log.record(0, CounterKind::Running, at(10), 3);
        log.record(0, CounterKind::Running, at(10), 4); // same instant: replaces
        log.record(1, CounterKind::Running, at(10), 4); // another worker's counter
        log.record(CounterSample::RUN, CounterKind::PolicyVersion, at(12), 1);
        log.record(0, CounterKind::Waiting, at(12), 0); // another counter of worker 0
        log.record(0, CounterKind::Running, at(20), 4); // unchanged
        log.record(0, CounterKind::Running, at(30), 0);
        log.record(0, CounterKind::Running, at(40), 2);
        log.record(0, CounterKind::Running, at(40), 0); // back to the value before within the instant: no sample
        log.record(0, CounterKind::Running, at(50), 0); // still unchanged
        let got: Vec<(u32, CounterKind, u64, u64)> =
            log.into_samples().iter().map(|c| (c.worker, c.kind, c.at.as_ns(), c.value)).collect();
        let run = CounterSample::RUN;
        assert_eq!(
            got,
            vec![
                (0, CounterKind::Running, 0, 0),
                (0, CounterKind::Running, 10, 4),
                (1, CounterKind::Running, 10, 4),
                (run, CounterKind::PolicyVersion, 12, 1),
                (0, CounterKind::Waiting, 12, 0),
                (0, CounterKind::Running, 30, 0),
            ]
        );
        let mut off = CounterLog::new(false);
        off.record(0, CounterKind::Running, at(0), 7);
        assert!(off.into_samples().is_empty());
    }
}
