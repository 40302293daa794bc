//! The Timeline: the only thing a backend records — spans of worker activity and per-trajectory generation, plus
//! one record per trajectory — from which `report::report` derives every metric.

use crate::cluster::Cluster;
use crate::time::SimTime;
use crate::trajectory::{TrajStatus, TrajectoryManager};
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
    /// Policy version used (Generate) or produced (Sync).
    pub version: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineWorker {
    pub name: String,
    pub gpus: u32,
    pub node: u32,
    pub tags: Vec<String>,
}

/// What became of a trajectory by the end of the run.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Trained { step: u32, version: u32 },
    InFlight,
    Discarded,
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
}

impl Timeline {
    /// Assembles a finished run's Timeline, the same way for every backend: workers from the cluster, one sample
    /// record per trajectory from the trajectory manager (with the step each was created for), the backend's spans,
    /// and its counters plus the trajectory manager's pause/resume/migrate counts.
    pub fn assemble(
        cluster: &Cluster,
        tm: &TrajectoryManager,
        batch_step: &[u32],
        spans: Vec<Span>,
        end: SimTime,
        mut counters: BTreeMap<String, u64>,
    ) -> Timeline {
        let c = tm.counters();
        counters.insert("paused".to_string(), c.paused);
        counters.insert("resumed".to_string(), c.resumed);
        counters.insert("migrated".to_string(), c.migrated);
        Timeline {
            workers: cluster
                .workers
                .iter()
                .map(|w| TimelineWorker {
                    name: w.name.clone(),
                    gpus: w.gpu_count(),
                    node: w.node,
                    tags: w.tags.clone(),
                })
                .collect(),
            total_gpus: cluster.total_gpus(),
            spans,
            samples: tm
                .all()
                .iter()
                .map(|t| SampleRecord {
                    trajectory: t.id.0,
                    group: t.group,
                    batch_step: batch_step[t.id.0 as usize],
                    prompt_tokens: t.prompt_tokens,
                    generated_tokens: t.generated,
                    segments: t.segments.iter().map(|s| (s.version, s.tokens)).collect(),
                    outcome: match (t.status, t.trained) {
                        (TrajStatus::Trained, Some((step, version))) => Outcome::Trained { step, version },
                        (TrajStatus::Discarded, _) => Outcome::Discarded,
                        _ => Outcome::InFlight,
                    },
                })
                .collect(),
            end,
            counters,
        }
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
