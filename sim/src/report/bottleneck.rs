//! The bottleneck, named: which resource bounds a run and which knob to turn next, derived from the Timeline alone
//! (so it means the same for the simulated and the real backend). Rules and thresholds: `docs/bottleneck.md`.
//!
//! Three things are computed:
//! - **Pool busy fractions.** Each worker's time `[0, end]` is split between the rollout pool and the train pool by
//!   the role of its spans: `rollout` spans are rollout work, `logprob`/`train` train work, `reward` (a verifier wait)
//!   train-side but idle. Gaps, `sync`, `switch` and `down` spans count, not busy, in the pool of the worker's last
//!   rollout or train-side span (before its first one, in the pool of that first one; a worker with none, by its
//!   tags). A colocated worker is thus in the rollout pool while it rolls out and waits for the batch's tail, and in
//!   the train pool from its first train-side span to its next rollout.
//! - **Per step, the critical path.** A step's window (the previous step's end to its own) is partitioned instant
//!   by instant, by the first phase active on any worker in the order train, logprob, reward, sync, switch; what is
//!   left is time the trainer waited for rollout. Of that wait, the **tail** is the part during which fewer than
//!   half of the window's peak number of generating sequences (but at least one) were still generating: a few long
//!   responses holding the batch.
//! - **A verdict**, over the steady state (the first step skipped from 2 steps on, the first two from 5 on; the last
//!   left out from 4 steps on), from shares of the steady steps' time: wait W, tail L ⊆ W, train side T (log-prob,
//!   train, reward), sync + switch O (W + T + O = 1), and the rollout pool's busy fraction R over those steps. Steps
//!   are *serial* when generation overlaps under 10 % of the train-side time. Overlapping steps, in order:
//!   `sync-switch` if O ≥ 20 % and O > W; `rollout-tail` if W ≥ 10 % and L ≥ W / 2; `rollout` if W ≥ 10 %;
//!   `reward` if reward spans are ≥ 20 % of the step and at least the rest of T; `balanced` if R ≥ 90 %; else
//!   `train`. Serial steps: `sync-switch` if O ≥ 20 % and O is the largest part; `rollout-tail` if L ≥ 25 %;
//!   `rollout` if W ≥ T; `reward` as above; else `train`.

#[cfg(test)]
use crate::timeline::Timeline;
use crate::timeline::{SpanKind, TimelineWorker};

/// The trainer waited at least this share of the steady step time for rollout: the rollout side bounds the run.
pub const WAIT_BOUND_FRACTION: f64 = 0.10;
/// Sync + switch at least this share of the steady step time (and more than the wait): overhead bounds the run.
pub const SYNC_SWITCH_BOUND_FRACTION: f64 = 0.20;
/// A rollout-bound run is tail-bound when at least this share of the wait was the tail.
pub const TAIL_SHARE_OF_WAIT: f64 = 0.5;
/// The tail: fewer generating sequences than this share of the window's peak.
pub const TAIL_CONCURRENCY_FRACTION: f64 = 0.5;
/// Steps are serial (time-sliced: rollout never runs during training) when generation overlaps less than this share
/// of the train-side time; a serial step is bound by its largest part, its tail when that is this large.
pub const SERIAL_OVERLAP_FRACTION: f64 = 0.10;
pub const SERIAL_TAIL_BOUND_FRACTION: f64 = 0.25;
/// Reward and controller spans at least this share of the step, and at least the log-prob and train time: `reward`.
pub const REWARD_BOUND_FRACTION: f64 = 0.20;
/// A run whose trainer never waits is `balanced` (not `train`-bound) when its rollout pool is this busy.
pub const BALANCED_ROLLOUT_BUSY_FRACTION: f64 = 0.90;

/// One completed step's window, in nanoseconds.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Window {
    pub step: u32,
    pub start: u64,
    pub end: u64,
}

/// What one step's window was spent on (seconds; they add up to the window) and its pools' busy fractions.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct StepPath {
    pub rollout_wait_s: f64,
    pub rollout_tail_s: f64,
    pub logprob_s: f64,
    pub train_s: f64,
    pub reward_s: f64,
    pub sync_s: f64,
    pub switch_s: f64,
    pub rollout_pool_busy_fraction: f64,
    pub train_pool_busy_fraction: f64,
    /// The largest part of the window: rollout (the wait), logprob, train, reward, sync or switch.
    pub critical_phase: &'static str,
}

/// The run's answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Analysis {
    pub rollout_pool_busy_fraction: f64,
    pub train_pool_busy_fraction: f64,
    /// Shares of the steady steps' time.
    pub rollout_wait_fraction: f64,
    pub rollout_tail_fraction: f64,
    pub train_side_fraction: f64,
    pub sync_switch_fraction: f64,
    /// The first step of the steady state the verdict is over.
    pub steady_from_step: u32,
    pub bottleneck: &'static str,
    pub verdict: String,
    pub steps: Vec<StepPath>,
}

const ROLLOUT: usize = 0;
const TRAIN: usize = 1;

/// Busy and total GPU-ns of each pool.
type PoolTime = [[u128; 2]; 2];

/// A worker-activity span as the analysis keeps it (generation spans are never kept: the sweep folds them).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Activity {
    pub start: u64,
    pub end: u64,
    pub kind: SpanKind,
    pub worker: u32,
}

/// Per worker, its time split by pool: (start, end, pool, busy).
fn role_segments(workers: &[TimelineWorker], activity: &[Activity], end: u64) -> Vec<Vec<(u64, u64, usize, bool)>> {
    let mut by_worker: Vec<Vec<(u64, u64, SpanKind)>> = vec![Vec::new(); workers.len()];
    for s in activity {
        if let Some(v) = by_worker.get_mut(s.worker as usize) {
            v.push((s.start, s.end, s.kind));
        }
    }
    let role = |k: SpanKind| match k {
        SpanKind::Rollout => Some((ROLLOUT, true)),
        SpanKind::LogProb | SpanKind::Train => Some((TRAIN, true)),
        SpanKind::Reward => Some((TRAIN, false)),
        _ => None,
    };
    by_worker
        .into_iter()
        .enumerate()
        .map(|(i, mut spans)| {
            spans.sort_unstable();
            let tags = &workers[i].tags;
            let by_tag =
                if tags.iter().any(|x| x == "train") && !tags.iter().any(|x| x == "rollout") { TRAIN } else { ROLLOUT };
            let mut pool = spans.iter().find_map(|s| role(s.2)).map_or(by_tag, |r| r.0);
            let (mut segs, mut cursor) = (Vec::new(), 0u64);
            for &(a, b, kind) in &spans {
                let (a, b) = (a.max(cursor), b.min(end));
                if a > cursor {
                    segs.push((cursor, a, pool, false));
                }
                if b > a {
                    match role(kind) {
                        Some((p, busy)) => {
                            pool = p;
                            segs.push((a, b, p, busy));
                        }
                        None => segs.push((a, b, pool, false)),
                    }
                } else if let Some((p, _)) = role(kind) {
                    pool = p;
                }
                cursor = cursor.max(b);
            }
            if end > cursor {
                segs.push((cursor, end, pool, false));
            }
            segs
        })
        .collect()
}

fn busy(p: &PoolTime, pool: usize) -> f64 {
    if p[pool][1] > 0 {
        p[pool][0] as f64 / p[pool][1] as f64
    } else {
        0.0
    }
}

/// Steps left out at the end, out of `n`: the last, from 4 steps on (nothing is generated for a step after it, so
/// an overlapping pipeline's rollout pool idles).
pub(crate) fn cooldown_steps(n: usize) -> usize {
    usize::from(n >= 4)
}

/// Steps skipped as warm-up before the steady state, out of `n`.
pub(crate) fn warmup_steps(n: usize) -> usize {
    if n >= 5 {
        2
    } else if n >= 2 {
        1
    } else {
        0
    }
}

const PHASES: [&str; 6] = ["rollout", "logprob", "train", "reward", "sync", "switch"];

/// The critical path as a sweep over phase spans and generations, split at window boundaries. It is fed span
/// boundaries in any order and windows in step order, and folds time forward only as far as the caller says
/// everything is known ([`Sweep::fold`]), so a run can be analysed as it goes without keeping its generations.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sweep {
    /// Boundaries not yet folded, sorted by time: (time, kind, ±1). Kinds: 0 logprob, 1 train, 2 reward, 3 sync,
    /// 4 switch, 5 generate.
    pending: Vec<(u64, u8, i8)>,
    /// Boundaries given since the last fold, in any order; a fold sorts them and merges them into `pending`.
    fresh: Vec<(u64, u8, i8)>,
    /// The merge's buffer, kept between folds.
    merged: Vec<(u64, u8, i8)>,
    active: [i64; 6],
    /// Everything before this instant is folded.
    now: u64,
    /// The first window that may still receive time.
    wi: usize,
    windows: Vec<Window>,
    /// Per window: ns by phase (PHASES order).
    parts: Vec<[u64; 6]>,
    /// Per window: train-side time with some sequence generating at once (rollout overlapping training).
    overlap: Vec<u64>,
    /// Per window: the peak number of sequences generating at once.
    peak: Vec<i64>,
    /// Per window still open: (generations, ns) of each wait interval; the tail is summed from them once the
    /// window's peak is known.
    waits: Vec<Vec<(i64, u64)>>,
    /// Per window: its tail (ns), once it is folded to its end.
    tail: Vec<Option<u64>>,
    /// Windows before this one have their tails.
    tailed: usize,
}

impl Sweep {
    /// A span of `kind` from `a` to `b` (ns); rollout and down spans play no part in the critical path.
    pub fn span(&mut self, kind: SpanKind, a: u64, b: u64) {
        let kind = match kind {
            SpanKind::LogProb => 0,
            SpanKind::Train => 1,
            SpanKind::Reward => 2,
            SpanKind::Sync => 3,
            SpanKind::Switch => 4,
            SpanKind::Generate => 5,
            SpanKind::Rollout | SpanKind::Down => return,
        };
        if b > a {
            debug_assert!(a >= self.now, "a span starting before the folded time");
            self.fresh.push((a, kind, 1));
            self.fresh.push((b, kind, -1));
        }
    }

    /// The next completed step's window (windows come in step order, each starting where the last ended).
    pub fn window(&mut self, w: Window) {
        self.windows.push(w);
        self.parts.push([0; 6]);
        self.overlap.push(0);
        self.peak.push(0);
        self.waits.push(Vec::new());
        self.tail.push(None);
    }

    /// Folds time up to `limit` ns (and no further than the last window's end): every span that overlaps the
    /// time before `limit` must have been given, and every window that does.
    pub fn fold(&mut self, limit: u64) {
        let horizon = self.windows.last().map_or(0, |w| w.end);
        let limit = limit.min(horizon);
        // What is left from the last fold is sorted: sort only the new boundaries and merge the two (equal instants
        // are applied together, so their order does not matter). Sorting everything each fold was 9 % of a
        // streaming run's instructions.
        self.fresh.sort_unstable_by_key(|e| e.0);
        self.merged.clear();
        self.merged.reserve(self.pending.len() + self.fresh.len());
        let (mut p, mut f) = (0, 0);
        while p < self.pending.len() && f < self.fresh.len() {
            if self.fresh[f].0 < self.pending[p].0 {
                self.merged.push(self.fresh[f]);
                f += 1;
            } else {
                self.merged.push(self.pending[p]);
                p += 1;
            }
        }
        self.merged.extend_from_slice(&self.pending[p..]);
        self.merged.extend_from_slice(&self.fresh[f..]);
        self.fresh.clear();
        std::mem::swap(&mut self.pending, &mut self.merged);
        let mut i = 0;
        loop {
            while i < self.pending.len() && self.pending[i].0 <= self.now {
                self.active[self.pending[i].1 as usize] += self.pending[i].2 as i64;
                i += 1;
            }
            if self.now >= limit {
                break;
            }
            let next = self.pending.get(i).map_or(limit, |e| e.0).min(limit);
            let active = self.active;
            let mut a = self.now;
            while a < next {
                while self.wi < self.windows.len() && self.windows[self.wi].end <= a {
                    self.wi += 1;
                }
                let Some(w) = self.windows.get(self.wi) else { break };
                let b = next.min(w.end);
                let phase = if active[1] > 0 {
                    2
                } else if active[0] > 0 {
                    1
                } else if active[2] > 0 {
                    3
                } else if active[3] > 0 {
                    4
                } else if active[4] > 0 {
                    5
                } else {
                    0
                };
                if a >= w.start {
                    let k = self.wi;
                    self.parts[k][phase] += b - a;
                    if (1..=3).contains(&phase) && active[5] > 0 {
                        self.overlap[k] += b - a;
                    }
                    self.peak[k] = self.peak[k].max(active[5]);
                    if phase == 0 {
                        self.waits[k].push((active[5], b - a));
                    }
                }
                a = b;
            }
            self.now = next;
        }
        self.pending.drain(..i);
        // Windows that end by now receive no more time: their tails are final (in window order; a window left
        // behind here gets its tail from its waits at the end).
        while self.tailed < self.windows.len() && self.windows[self.tailed].end <= self.now {
            let k = self.tailed;
            self.tail[k] = Some(tail_ns(&std::mem::take(&mut self.waits[k]), self.peak[k]));
            self.tailed += 1;
        }
    }
}

/// Wait time during which fewer than half the window's peak of sequences (but at least one) were generating.
fn tail_ns(waits: &[(i64, u64)], peak: i64) -> u64 {
    waits
        .iter()
        .filter(|(n, _)| *n >= 1 && (*n as f64) < TAIL_CONCURRENCY_FRACTION * peak as f64)
        .map(|(_, ns)| ns)
        .sum()
}

/// Names the bottleneck of a run from its Timeline and its completed steps' windows (contiguous, in order).
#[cfg(test)]
pub(crate) fn analyse(t: &Timeline, windows: &[Window], pipeline: &str) -> Analysis {
    let mut sweep = Sweep::default();
    for w in windows {
        sweep.window(*w);
    }
    for s in &t.spans {
        sweep.span(s.kind, s.start.as_ns(), s.end.as_ns());
    }
    sweep.fold(u64::MAX);
    let activity: Vec<Activity> = t
        .spans
        .iter()
        .filter(|s| s.kind != SpanKind::Generate)
        .map(|s| Activity { start: s.start.as_ns(), end: s.end.as_ns(), kind: s.kind, worker: s.worker })
        .collect();
    let longest = t.samples.iter().map(|s| s.generated_tokens).max().unwrap_or(0);
    analyse_folded(&t.workers, &activity, t.end.as_ns(), &sweep, longest, pipeline)
}

/// Names the bottleneck from what a run kept: its workers, its activity spans, its end (ns), the sweep folded to
/// its last window's end, and its longest response (tokens).
pub(crate) fn analyse_folded(
    workers: &[TimelineWorker],
    activity: &[Activity],
    end: u64,
    sweep: &Sweep,
    longest: u32,
    pipeline: &str,
) -> Analysis {
    let windows = &sweep.windows[..];
    let gpus = |w: u32| workers.get(w as usize).map_or(1, |x| x.gpus) as u128;

    // Pool busy fractions: the whole run, and per window.
    let segs = role_segments(workers, activity, end);
    let mut run_pools: PoolTime = [[0; 2]; 2];
    let mut step_pools: Vec<PoolTime> = vec![[[0; 2]; 2]; windows.len()];
    for (w, list) in segs.iter().enumerate() {
        let g = gpus(w as u32);
        let mut wi = 0;
        for &(a, b, pool, is_busy) in list {
            let len = (b - a) as u128 * g;
            run_pools[pool][1] += len;
            if is_busy {
                run_pools[pool][0] += len;
            }
            while wi < windows.len() && windows[wi].end <= a {
                wi += 1;
            }
            let mut k = wi;
            while k < windows.len() && windows[k].start < b {
                let overlap = (b.min(windows[k].end)).saturating_sub(a.max(windows[k].start)) as u128 * g;
                step_pools[k][pool][1] += overlap;
                if is_busy {
                    step_pools[k][pool][0] += overlap;
                }
                k += 1;
            }
        }
    }

    let (parts, overlap) = (&sweep.parts, &sweep.overlap);
    let secs = |ns: u64| ns as f64 / 1e9;
    let steps: Vec<StepPath> = (0..windows.len())
        .map(|k| {
            let p = &parts[k];
            let tail = sweep.tail[k].unwrap_or_else(|| tail_ns(&sweep.waits[k], sweep.peak[k]));
            let critical = (0..6).fold(0, |best, j| if p[j] > p[best] { j } else { best });
            StepPath {
                rollout_wait_s: secs(p[0]),
                rollout_tail_s: secs(tail),
                logprob_s: secs(p[1]),
                train_s: secs(p[2]),
                reward_s: secs(p[3]),
                sync_s: secs(p[4]),
                switch_s: secs(p[5]),
                rollout_pool_busy_fraction: busy(&step_pools[k], ROLLOUT),
                train_pool_busy_fraction: busy(&step_pools[k], TRAIN),
                critical_phase: PHASES[critical],
            }
        })
        .collect();

    // The steady state.
    let skip = warmup_steps(windows.len());
    let steady = skip..windows.len() - cooldown_steps(windows.len());
    let total: f64 = steady.clone().map(|k| secs(windows[k].end - windows[k].start)).sum();
    let sum = |f: &dyn Fn(&StepPath) -> f64| steps[steady.clone()].iter().map(f).sum::<f64>();
    let share = |x: f64| if total > 0.0 { x / total } else { 0.0 };
    let train_side_s = sum(&|s| s.logprob_s + s.train_s + s.reward_s);
    let serial = (steady.clone().map(|k| secs(overlap[k])).sum::<f64>()) < SERIAL_OVERLAP_FRACTION * train_side_s;
    let wait = share(sum(&|s| s.rollout_wait_s));
    let tail = share(sum(&|s| s.rollout_tail_s));
    let train_side = share(train_side_s);
    let sync = share(sum(&|s| s.sync_s));
    let switch = share(sum(&|s| s.switch_s));
    let overhead = sync + switch;
    let mut steady_pools: PoolTime = [[0; 2]; 2];
    for p in &step_pools[steady.clone()] {
        for pool in [ROLLOUT, TRAIN] {
            steady_pools[pool][0] += p[pool][0];
            steady_pools[pool][1] += p[pool][1];
        }
    }
    let (r, tr) = (busy(&steady_pools, ROLLOUT), busy(&steady_pools, TRAIN));
    let (run_r, run_t) = (busy(&run_pools, ROLLOUT), busy(&run_pools, TRAIN));
    let pct = |x: f64| format!("{:.0} %", 100.0 * x);
    let time_sliced = pipeline == "colocated" || (pipeline == "partial" && colocated_workers(workers));
    let reward = share(sum(&|s| s.reward_s));
    let (bottleneck, verdict) = if steady.is_empty() || total <= 0.0 {
        ("none", "no steady-state train step to judge".to_string())
    } else if overhead >= SYNC_SWITCH_BOUND_FRACTION && overhead > wait && (!serial || overhead > train_side) {
        let knob = match pipeline {
            _ if time_sliced => "a split layout (disaggregated, async) has no offload/onload switches",
            "seamless" => "lend less (pipeline.seamless.lend = \"gain\" or \"never\") or sync less often",
            "async" => "sync less often (pipeline.async.steps_per_sync higher) or use a faster weight-sync link",
            _ => "use a faster weight-sync link (cluster) or sync less often (async with steps_per_sync > 1)",
        };
        (
            "sync-switch",
            format!(
                "sync/switch-bound: {} of the step in weight sync ({}) and switches ({}) — {knob}",
                pct(overhead),
                pct(sync),
                pct(switch)
            ),
        )
    } else if if serial {
        tail >= SERIAL_TAIL_BOUND_FRACTION
    } else {
        wait >= WAIT_BOUND_FRACTION && tail >= TAIL_SHARE_OF_WAIT * wait
    } {
        let knob = match pipeline {
            "partial" => "raise pipeline.partial.over_provision, or try async",
            "async" => "raise pipeline.async.max_staleness (or batch_order = \"completion\")",
            "seamless" => "raise pipeline.seamless.max_staleness",
            _ => "try partial (pipeline.partial.over_provision) or async",
        };
        (
            "rollout-tail",
            format!(
                "rollout tail-bound: the last sequences (under half the peak still generating; longest response \
                 {longest} tokens) hold the trainer {} of the step, of {} waiting for rollout; rollout pool busy {}, \
                 training {} of the step — {knob}",
                pct(tail),
                pct(wait),
                pct(r),
                pct(train_side)
            ),
        )
    } else if if serial { wait >= train_side } else { wait >= WAIT_BOUND_FRACTION } {
        let knob = if time_sliced {
            "overlap rollout with training (disaggregated, async) or add GPUs"
        } else {
            "give rollout more GPUs (pipeline.disaggregated.rollout_gpus higher)"
        };
        (
            "rollout",
            format!(
                "rollout-bound: the trainer waits for rollout {} of the step; rollout pool busy {}, train pool {} \
                 — {knob}",
                pct(wait),
                pct(r),
                pct(tr)
            ),
        )
    } else if reward >= REWARD_BOUND_FRACTION && reward >= train_side - reward {
        (
            "reward",
            format!(
                "reward-bound: the trainer waits {} of the step for the batch's reward and controller work (GPUs \
                 idle), {} computing; rollout pool busy {}, train pool {} — a faster verifier or controller \
                 (workload.reward_batch_s, the framework preset)",
                pct(reward),
                pct(train_side - reward),
                pct(r),
                pct(tr)
            ),
        )
    } else if !serial && r >= BALANCED_ROLLOUT_BUSY_FRACTION {
        (
            "balanced",
            format!(
                "balanced: rollout pool busy {}, train pool {}, the trainer waits {} of the step — both pools are \
                 busy: add GPUs to both",
                pct(r),
                pct(tr),
                pct(wait)
            ),
        )
    } else {
        let knob = if time_sliced {
            "more GPUs, or faster training (framework, parallelism)"
        } else {
            "give training more GPUs (pipeline.disaggregated.rollout_gpus lower)"
        };
        (
            "train",
            format!(
                "train-bound: train pool busy {}, rollout pool {}, training {} of the step, the trainer waits {} — \
                 {knob}",
                pct(tr),
                pct(r),
                pct(train_side),
                pct(wait)
            ),
        )
    };
    Analysis {
        rollout_pool_busy_fraction: run_r,
        train_pool_busy_fraction: run_t,
        rollout_wait_fraction: wait,
        rollout_tail_fraction: tail,
        train_side_fraction: train_side,
        sync_switch_fraction: overhead,
        steady_from_step: windows.get(skip).map_or(0, |w| w.step),
        bottleneck,
        verdict,
        steps,
    }
}

/// Whether some worker carries both the rollout and the train tag (a time-sliced layout).
fn colocated_workers(workers: &[TimelineWorker]) -> bool {
    workers.iter().any(|w| w.tags.iter().any(|x| x == "rollout") && w.tags.iter().any(|x| x == "train"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SimTime;
    use crate::timeline::{Span, TimelineWorker};

    const S: u64 = 1_000_000_000;

    fn span(worker: u32, kind: SpanKind, a: f64, b: f64) -> Span {
        Span {
            worker,
            kind,
            start: SimTime((a * S as f64) as u64),
            end: SimTime((b * S as f64) as u64),
            step: None,
            trajectory: None,
            tokens: 0,
            version: None,
        }
    }

    fn worker(name: &str, tags: &[&str]) -> TimelineWorker {
        TimelineWorker { name: name.into(), gpus: 1, node: 0, tags: tags.iter().map(|t| t.to_string()).collect() }
    }

    /// A rollout worker and a train worker; each 10 s step: `per_step(k)` gives the step's spans (times relative
    /// to the step's start). Steps end at 10, 20, ….
    fn split(steps: u32, per_step: impl Fn(f64) -> Vec<Span>) -> (Timeline, Vec<Window>) {
        let spans: Vec<Span> = (0..steps).flat_map(|k| per_step(10.0 * k as f64)).collect();
        let t = Timeline {
            workers: vec![worker("r", &["rollout"]), worker("t", &["train"])],
            total_gpus: 2,
            spans,
            samples: Vec::new(),
            end: SimTime(steps as u64 * 10 * S),
            counters: Default::default(),
            counter_samples: Vec::new(),
            step_generation: Default::default(),
        };
        let windows = (0..steps as u64).map(|k| Window { step: k as u32, start: k * 10 * S, end: (k + 1) * 10 * S });
        (t, windows.collect())
    }

    fn generate(worker: u32, a: f64, b: f64) -> Span {
        span(worker, SpanKind::Generate, a, b)
    }

    #[test]
    fn a_trainer_that_never_waits_with_an_idle_rollout_pool_is_train_bound() {
        // Rollout 3 s of every 10; train 9 s, sync 1 s on both.
        let (t, w) = split(4, |o| {
            let mut v = vec![
                span(0, SpanKind::Rollout, o, o + 3.0),
                span(1, SpanKind::Train, o, o + 9.0),
                span(0, SpanKind::Sync, o + 9.0, o + 10.0),
                span(1, SpanKind::Sync, o + 9.0, o + 10.0),
            ];
            v.extend((0..4).map(|_| generate(0, o, o + 3.0)));
            v
        });
        let a = analyse(&t, &w, "disaggregated");
        assert_eq!(a.bottleneck, "train", "{}", a.verdict);
        assert_eq!((a.rollout_pool_busy_fraction, a.train_pool_busy_fraction), (0.3, 0.9));
        assert_eq!((a.rollout_wait_fraction, a.train_side_fraction, a.sync_switch_fraction), (0.0, 0.9, 0.1));
        assert_eq!(a.steady_from_step, 1);
        assert!(a.verdict.starts_with("train-bound: train pool busy 90 %, rollout pool 30 %"), "{}", a.verdict);
        assert!(a.verdict.contains("rollout_gpus lower"), "{}", a.verdict);
        for s in &a.steps {
            assert_eq!((s.train_s, s.sync_s, s.rollout_wait_s, s.critical_phase), (9.0, 1.0, 0.0, "train"));
        }
    }

    #[test]
    fn a_trainer_waiting_on_a_full_rollout_pool_is_rollout_bound() {
        // Eight sequences generate 0–8 s together (no tail); train 8–9.5 s, sync 9.5–10 s.
        let (t, w) = split(3, |o| {
            let mut v = vec![
                span(0, SpanKind::Rollout, o, o + 8.0),
                span(1, SpanKind::Train, o + 8.0, o + 9.5),
                span(0, SpanKind::Sync, o + 9.5, o + 10.0),
                span(1, SpanKind::Sync, o + 9.5, o + 10.0),
            ];
            v.extend((0..8).map(|_| generate(0, o, o + 8.0)));
            v
        });
        let a = analyse(&t, &w, "disaggregated");
        assert_eq!(a.bottleneck, "rollout", "{}", a.verdict);
        assert_eq!((a.rollout_wait_fraction, a.rollout_tail_fraction), (0.8, 0.0));
        assert_eq!(a.steps[2].critical_phase, "rollout");
        assert!(a.verdict.contains("rollout_gpus higher"), "{}", a.verdict);
    }

    #[test]
    fn one_long_sequence_holding_the_batch_is_tail_bound() {
        // Colocated on one worker: seven sequences end at 2 s, one at 8 s; switch, train, sync to 10 s.
        let mut t = split(3, |o| {
            let mut v = vec![
                span(0, SpanKind::Rollout, o, o + 8.0),
                span(0, SpanKind::Switch, o + 8.0, o + 8.5),
                span(0, SpanKind::Train, o + 8.5, o + 9.5),
                span(0, SpanKind::Sync, o + 9.5, o + 9.8),
                span(0, SpanKind::Switch, o + 9.8, o + 10.0),
            ];
            v.extend((0..7).map(|_| generate(0, o, o + 2.0)));
            v.push(generate(0, o, o + 8.0));
            v
        });
        t.0.workers = vec![worker("c", &["rollout", "train"])];
        t.0.total_gpus = 1;
        let a = analyse(&t.0, &t.1, "colocated");
        assert_eq!(a.bottleneck, "rollout-tail", "{}", a.verdict);
        let s = &a.steps[1];
        assert_eq!((s.rollout_wait_s, s.rollout_tail_s, s.train_s), (8.0, 6.0, 1.0));
        assert!((s.switch_s - 0.7).abs() < 1e-9 && (s.sync_s - 0.3).abs() < 1e-9, "{s:?}");
        // The rollout pool: 8 s busy of 8 s + the switch to train (0.5 s); the train pool: 1 s of 1.5 s.
        assert!((a.rollout_pool_busy_fraction - 8.0 / 8.5).abs() < 1e-9, "{a:?}");
        assert!((a.train_pool_busy_fraction - 1.0 / 1.5).abs() < 1e-9, "{a:?}");
        assert!(a.verdict.contains("try partial"), "{}", a.verdict);
    }

    #[test]
    fn long_syncs_and_switches_are_sync_switch_bound_and_busy_pools_balanced() {
        let (t, w) = split(3, |o| {
            vec![
                span(0, SpanKind::Rollout, o, o + 7.0),
                generate(0, o, o + 7.0),
                span(1, SpanKind::Train, o, o + 7.0),
                span(0, SpanKind::Sync, o + 7.0, o + 10.0),
                span(1, SpanKind::Sync, o + 7.0, o + 10.0),
            ]
        });
        let a = analyse(&t, &w, "async");
        assert_eq!(a.bottleneck, "sync-switch", "{}", a.verdict);
        assert!(a.verdict.contains("30 % of the step in weight sync (30 %) and switches (0 %)"), "{}", a.verdict);
        let (t, w) = split(3, |o| {
            vec![
                span(0, SpanKind::Rollout, o, o + 9.5),
                generate(0, o, o + 9.5),
                span(1, SpanKind::Train, o, o + 9.5),
                span(0, SpanKind::Sync, o + 9.5, o + 10.0),
                span(1, SpanKind::Sync, o + 9.5, o + 10.0),
            ]
        });
        assert_eq!(analyse(&t, &w, "disaggregated").bottleneck, "balanced");
        // The same steps with rollout and training taking turns (serial): the largest part, training, bounds them.
        let (t, w) = split(3, |o| {
            vec![
                span(0, SpanKind::Rollout, o, o + 3.0),
                generate(0, o, o + 3.0),
                span(1, SpanKind::Train, o + 3.0, o + 8.0),
                span(0, SpanKind::Sync, o + 8.0, o + 10.0),
                span(1, SpanKind::Sync, o + 8.0, o + 10.0),
            ]
        });
        let a = analyse(&t, &w, "disaggregated");
        assert_eq!((a.bottleneck, a.rollout_wait_fraction, a.train_side_fraction), ("train", 0.3, 0.5), "{a:?}");
    }

    #[test]
    fn no_steps_no_verdict() {
        let (t, _) = split(1, |o| vec![span(0, SpanKind::Rollout, o, o + 3.0)]);
        let a = analyse(&t, &[], "colocated");
        assert_eq!(a.bottleneck, "none");
        assert_eq!(a.rollout_pool_busy_fraction, 0.3);
        assert_eq!(a.train_pool_busy_fraction, 0.0);
    }

    #[test]
    fn random_timelines_give_fractions_in_range_and_windows_fully_split() {
        // A small deterministic generator: per worker, back-to-back spans of random kinds and gaps.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let kinds = [
            SpanKind::Rollout,
            SpanKind::LogProb,
            SpanKind::Train,
            SpanKind::Sync,
            SpanKind::Switch,
            SpanKind::Reward,
            SpanKind::Down,
        ];
        for case in 0..200 {
            let workers = 1 + next(4) as u32;
            let mut spans = Vec::new();
            let mut end = 0;
            for w in 0..workers {
                let mut at = next(3);
                for _ in 0..next(12) {
                    let len = 1 + next(5);
                    spans.push(span(w, kinds[next(7) as usize], at as f64, (at + len) as f64));
                    for _ in 0..next(4) {
                        let a = at + next(len);
                        spans.push(generate(w, a as f64, (a + 1 + next(len)) as f64));
                    }
                    at += len + next(3);
                }
                end = end.max(at);
            }
            let mut cuts: Vec<u64> = (0..next(6)).map(|_| next(end + 1)).collect();
            cuts.push(end);
            cuts.sort_unstable();
            cuts.dedup();
            let windows: Vec<Window> = cuts
                .iter()
                .enumerate()
                .map(|(i, &e)| Window { step: i as u32, start: if i == 0 { 0 } else { cuts[i - 1] * S }, end: e * S })
                .collect();
            let t = Timeline {
                workers: (0..workers).map(|i| worker(&format!("w{i}"), &["rollout", "train"])).collect(),
                total_gpus: workers,
                spans,
                samples: Vec::new(),
                end: SimTime(end * S),
                counters: Default::default(),
                counter_samples: Vec::new(),
                step_generation: Default::default(),
            };
            let a = analyse(&t, &windows, "colocated");
            let in_range = |f: f64| (0.0..=1.0).contains(&f);
            assert!(in_range(a.rollout_pool_busy_fraction) && in_range(a.train_pool_busy_fraction), "{case}: {a:?}");
            for (s, w) in a.steps.iter().zip(&windows) {
                assert!(in_range(s.rollout_pool_busy_fraction) && in_range(s.train_pool_busy_fraction), "{case}");
                let parts = s.rollout_wait_s + s.logprob_s + s.train_s + s.reward_s + s.sync_s + s.switch_s;
                assert!((parts - (w.end - w.start) as f64 / 1e9).abs() < 1e-9, "{case}: {s:?} vs {w:?}");
                assert!(s.rollout_tail_s <= s.rollout_wait_s, "{case}");
            }
            for f in [a.rollout_wait_fraction, a.rollout_tail_fraction, a.train_side_fraction, a.sync_switch_fraction] {
                assert!(in_range(f), "{case}: {a:?}");
            }
        }
    }
}
