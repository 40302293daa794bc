//! The run's trace for ui.perfetto.dev and chrome://tracing (`timeline.json.gz`): Chrome trace-event JSON laid out
//! so that a run of any size opens as one track per worker (and one group of lanes per worker for its
//! trajectories), never one track per trajectory.
//!
//! Layout (every pid and tid is unique in the file: Perfetto's importer keys thread names by tid alone):
//! - process `steps`: thread `step` with one slice per RL step window (as in `steps.csv`); one thread per phase
//!   (rollout, reward, logprob, train, sync, switch) with each step's phase as one slice from its first span to its
//!   last (extra lanes `train · 2`… where steps overlap, as in one-step off-policy and async pipelines); the counter
//!   `policy version` (the trainer's).
//! - (`workers` and up) one process per node: one thread per worker with its activity slices (rollout engine busy
//!   period, reward, logprob, train, sync, switch, down) and the worker's counters: `KV cache tokens` in use,
//!   `batch running` (sequences decoding), `queue waiting` (sequences waiting for a slot), `weights version`.
//! - (`trajectories`) one process per rollout worker, `<worker> generation`, whose threads are lanes: each segment of
//!   a trajectory generated there is a complete slice on the lowest-numbered lane free at its start (greedy interval
//!   colouring), so a worker has at most as many lanes as it ever ran sequences at once; a flow arrow joins two
//!   segments of a trajectory paused on one worker and resumed on another.
//!
//! Why complete events on lanes, not async events: Perfetto's JSON importer puts every async id (`b`/`e` with `id`,
//! or `id2.local`/`id2.global`) on its own track whatever its `tid` (one track per trajectory: 163,840 for a DAPO
//! run), and binds flow events (`s`/`f`) only to slices on thread tracks. Complete events (`X`) on one thread must
//! nest, hence the lanes.
//!
//! Timestamps are microseconds with half a nanosecond added (`12.3455` for 12,345 ns): Perfetto reads a timestamp as
//! `(µs × 1000)` truncated to an integer, and without the half a slice ending where the next begins could land a
//! nanosecond past it and be taken for its parent.

use crate::{io_at, WriteError};
use rlsim_sim::report::StepRow;
use rlsim_sim::timeline::{CounterKind, CounterSample, Span, SpanKind, Timeline};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;
use std::io::{self, Write};
use std::path::Path;

/// How much detail the timeline files of a run hold (`--timeline`). The default, `workers`, keeps a run's output
/// writing well under its simulation time (docs/performance.md) and opens in Perfetto as one track per worker.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimelineDetail {
    /// No `timeline.csv`, no trace.
    None,
    /// The trace holds step-level spans (each step's window and phases) and the policy version; no
    /// `timeline.csv` (`steps.csv` has the same per-step phases).
    Steps,
    /// Also each worker's activity spans and counters; `timeline.csv` without the `generate` rows.
    #[default]
    Workers,
    /// Also each trajectory's generation segments (lanes per worker) and migrations (flows); `timeline.csv` in full
    /// (the response-length plot needs it).
    Trajectories,
}

impl TimelineDetail {
    /// The values `--timeline` accepts, from least to most detail.
    pub const NAMES: [&'static str; 4] = ["none", "steps", "workers", "trajectories"];

    pub fn name(self) -> &'static str {
        match self {
            TimelineDetail::None => "none",
            TimelineDetail::Steps => "steps",
            TimelineDetail::Workers => "workers",
            TimelineDetail::Trajectories => "trajectories",
        }
    }
}

impl fmt::Display for TimelineDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TimelineDetail {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(TimelineDetail::None),
            "steps" => Ok(TimelineDetail::Steps),
            "workers" => Ok(TimelineDetail::Workers),
            "trajectories" => Ok(TimelineDetail::Trajectories),
            _ => Err(format!("expected one of {}, got {s:?}", TimelineDetail::NAMES.join(", "))),
        }
    }
}

/// What a written trace holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceStats {
    /// Events written, metadata included.
    pub events: u64,
    /// Threads that carry slices (tracks in Perfetto, counters aside).
    pub threads: u32,
    /// The most generation lanes of one worker.
    pub max_lanes: u32,
    /// Migrations drawn as flow arrows.
    pub flows: u64,
}

/// Writes the trace of `t` at `detail` (`steps`: the report's step rows, for the step windows). A path ending in
/// `.gz` is gzip-compressed (Perfetto opens `.json.gz` directly); any other is plain JSON.
pub fn write_trace(
    path: &Path,
    t: &Timeline,
    steps: &[StepRow],
    detail: TimelineDetail,
) -> Result<TraceStats, WriteError> {
    let io = io_at(path);
    let mut file = std::fs::File::create(path).map_err(&io)?;
    // `write_events` hands over 64 kB at a time: no further buffering.
    if path.extension().is_some_and(|e| e == "gz") {
        // Level 1: a DAPO-sized trace compresses ~7×, in a fraction of the default level's time.
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let stats = write_events(&mut gz, t, steps, detail).map_err(&io)?;
        gz.finish().map_err(&io)?;
        Ok(stats)
    } else {
        write_events(&mut file, t, steps, detail).map_err(&io)
    }
}

/// A JSON string literal (quoted and escaped).
fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// Greedy interval colouring: `intervals` sorted by start; returns each one's lane (the lowest-numbered lane whose
/// last interval ended at or before its start) and the number of lanes, which is the peak number of intervals open
/// at once. Touching intervals (one ends where the next starts) share a lane.
pub fn pack_lanes(intervals: &[(u64, u64)]) -> (Vec<u32>, u32) {
    let mut busy: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
    let mut free: BinaryHeap<Reverse<u32>> = BinaryHeap::new();
    let mut lanes = 0u32;
    let mut out = Vec::with_capacity(intervals.len());
    for &(start, end) in intervals {
        while let Some(&Reverse((e, lane))) = busy.peek() {
            if e > start {
                break;
            }
            busy.pop();
            free.push(Reverse(lane));
        }
        let lane = free.pop().map_or_else(
            || {
                lanes += 1;
                lanes - 1
            },
            |Reverse(l)| l,
        );
        busy.push(Reverse((end.max(start), lane)));
        out.push(lane);
    }
    (out, lanes)
}

/// The event stream: comma-separated events inside `traceEvents`, each built in a buffer that goes to the writer
/// in large pieces (formatting through `write!` a few bytes at a time cost as much as the compression).
struct Out<'w, W: Write> {
    w: &'w mut W,
    buf: Vec<u8>,
    events: u64,
}

impl<'w, W: Write> Out<'w, W> {
    fn new(w: &'w mut W) -> Self {
        let mut buf = Vec::with_capacity(1 << 17);
        buf.extend_from_slice(b"{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n");
        Out { w, buf, events: 0 }
    }

    /// Starts an event (after the previous one's separator).
    fn begin(&mut self) -> io::Result<&mut Self> {
        if self.buf.len() >= 1 << 16 {
            self.w.write_all(&self.buf)?;
            self.buf.clear();
        }
        if self.events > 0 {
            self.buf.extend_from_slice(b",\n");
        }
        self.events += 1;
        Ok(self)
    }

    /// Text written as is (JSON already).
    fn raw(&mut self, s: &str) -> &mut Self {
        self.buf.extend_from_slice(s.as_bytes());
        self
    }

    fn num(&mut self, mut n: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.buf.extend_from_slice(&digits[i..]);
        self
    }

    /// Nanoseconds as microseconds plus half a nanosecond (see the module notes): `12345` → `12.3455`.
    fn us(&mut self, ns: u64) -> &mut Self {
        self.num(ns / 1000);
        let f = ns % 1000;
        self.buf.extend_from_slice(&[
            b'.',
            b'0' + (f / 100) as u8,
            b'0' + (f / 10 % 10) as u8,
            b'0' + (f % 10) as u8,
            b'5',
        ]);
        self
    }

    /// Ends the stream: the closing brackets, and everything still buffered.
    fn finish(mut self) -> io::Result<u64> {
        self.buf.extend_from_slice(b"\n]}\n");
        self.w.write_all(&self.buf)?;
        Ok(self.events)
    }

    fn process(&mut self, pid: u32, name: &str, sort: u32) -> io::Result<()> {
        let n = json_str(name);
        let (pid, sort) = (u64::from(pid), u64::from(sort));
        self.begin()?.raw(r#"{"name":"process_name","ph":"M","pid":"#).num(pid).raw(r#","tid":"#).num(pid);
        self.raw(r#","args":{"name":"#).raw(&n).raw("}}");
        self.begin()?.raw(r#"{"name":"process_sort_index","ph":"M","pid":"#).num(pid).raw(r#","tid":"#).num(pid);
        self.raw(r#","args":{"sort_index":"#).num(sort).raw("}}");
        Ok(())
    }

    fn thread(&mut self, pid: u32, tid: u32, name: &str, sort: u32) -> io::Result<()> {
        let n = json_str(name);
        let (pid, tid, sort) = (u64::from(pid), u64::from(tid), u64::from(sort));
        self.begin()?.raw(r#"{"name":"thread_name","ph":"M","pid":"#).num(pid).raw(r#","tid":"#).num(tid);
        self.raw(r#","args":{"name":"#).raw(&n).raw("}}");
        self.begin()?.raw(r#"{"name":"thread_sort_index","ph":"M","pid":"#).num(pid).raw(r#","tid":"#).num(tid);
        self.raw(r#","args":{"sort_index":"#).num(sort).raw("}}");
        Ok(())
    }

    /// A complete event up to its `args` value, which the caller writes, then closes with `}`. `name` writes the
    /// name's JSON string.
    #[allow(clippy::too_many_arguments)]
    fn complete(
        &mut self,
        name: impl FnOnce(&mut Self),
        cat: &str,
        start: u64,
        end: u64,
        pid: u32,
        tid: u32,
    ) -> io::Result<&mut Self> {
        self.begin()?.raw(r#"{"name":"#);
        name(self);
        self.raw(r#","cat":""#).raw(cat).raw(r#"","ph":"X","ts":"#).us(start).raw(r#","dur":"#);
        self.us(end.saturating_sub(start)).raw(r#","pid":"#).num(pid.into()).raw(r#","tid":"#).num(tid.into());
        Ok(self.raw(r#","args":"#))
    }

    /// A counter event; `name` is JSON already.
    fn counter(&mut self, name: &str, key: &str, at: u64, value: u64, pid: u32, tid: u32) -> io::Result<()> {
        self.begin()?.raw(r#"{"name":"#).raw(name).raw(r#","ph":"C","ts":"#).us(at);
        self.raw(r#","pid":"#).num(pid.into()).raw(r#","tid":"#).num(tid.into());
        self.raw(r#","args":{""#).raw(key).raw(r#"":"#).num(value).raw("}}");
        Ok(())
    }

    /// One end of a flow arrow: `s` binds to the slice enclosing `at` on (pid, tid), `f` (binding point `e`) too.
    fn flow(&mut self, ph: char, id: u64, at: u64, pid: u32, tid: u32) -> io::Result<()> {
        let ph = if ph == 'f' { r#"f","bp":"e"# } else { "s" };
        self.begin()?.raw(r#"{"name":"migrate","cat":"migration","ph":""#).raw(ph).raw(r#"","id":"#).num(id);
        self.raw(r#","ts":"#).us(at).raw(r#","pid":"#).num(pid.into()).raw(r#","tid":"#).num(tid.into()).raw("}");
        Ok(())
    }

    /// A span's `args` (its worker, step, trajectory, tokens and version where it has them), closing the event.
    fn span_args(&mut self, worker: &str, s: &Span) {
        self.raw(r#"{"worker":"#).raw(worker);
        if let Some(step) = s.step {
            self.raw(r#","step":"#).num(step.into());
        }
        if let Some(traj) = s.trajectory {
            self.raw(r#","trajectory":"#).num(traj);
        }
        if s.tokens > 0 || s.kind == SpanKind::Generate {
            self.raw(r#","tokens":"#).num(s.tokens);
        }
        if let Some(v) = s.version {
            self.raw(r#","version":"#).num(v.into());
        }
        self.raw("}}");
    }
}

/// The phases of a step, in the order of their threads, and the span kind each comes from.
const PHASES: [(&str, SpanKind); 6] = [
    ("rollout", SpanKind::Generate),
    ("reward", SpanKind::Reward),
    ("logprob", SpanKind::LogProb),
    ("train", SpanKind::Train),
    ("sync", SpanKind::Sync),
    ("switch", SpanKind::Switch),
];

/// A counter's track: its event name's suffix and its argument (Perfetto names the track "<name> <argument>").
fn counter_track(kind: CounterKind) -> (&'static str, &'static str) {
    match kind {
        CounterKind::KvTokens => ("KV cache", "tokens"),
        CounterKind::Running => ("batch", "running"),
        CounterKind::Waiting => ("queue", "waiting"),
        CounterKind::WeightsVersion => ("weights", "version"),
        CounterKind::PolicyVersion => ("policy", "version"),
    }
}

/// Items packed onto lanes ([`pack_lanes`]): in order of start, each with its lane, and how many lanes.
struct Lanes<T> {
    items: Vec<T>,
    lane: Vec<u32>,
    count: u32,
}

impl<T> Lanes<T> {
    /// Sorts `items` by `key` — (start ns, end ns, a tie-break that makes the order total) — and packs them.
    fn pack(mut items: Vec<T>, key: impl Fn(&T) -> (u64, u64, u64)) -> Self {
        items.sort_by_key(&key);
        let intervals: Vec<(u64, u64)> = items.iter().map(&key).map(|(a, b, _)| (a, b)).collect();
        let (lane, count) = pack_lanes(&intervals);
        Lanes { items, lane, count }
    }

    fn iter(&self) -> impl Iterator<Item = (&T, usize)> {
        self.items.iter().zip(self.lane.iter().map(|&l| l as usize))
    }
}

/// Spans (indices into `spans`) packed on lanes by (start, end, recording order).
fn span_lanes(spans: &[Span], indices: Vec<usize>) -> Lanes<usize> {
    Lanes::pack(indices, |&i| (spans[i].start.as_ns(), spans[i].end.as_ns(), i as u64))
}

fn write_events<W: Write>(
    w: &mut W,
    t: &Timeline,
    steps: &[StepRow],
    detail: TimelineDetail,
) -> io::Result<TraceStats> {
    let mut out = Out::new(w);
    let mut stats = TraceStats::default();
    if detail == TimelineDetail::None {
        out.finish()?;
        return Ok(stats);
    }
    let workers = detail >= TimelineDetail::Workers;
    let trajectories = detail >= TimelineDetail::Trajectories;
    let names: Vec<String> = t.workers.iter().map(|x| json_str(&x.name)).collect();

    // Step-level: each phase's extent per step, from its first span to its last.
    let mut extent: BTreeMap<(usize, u32), (u64, u64)> = BTreeMap::new();
    for s in t.spans.iter().filter(|s| s.kind != SpanKind::Generate) {
        let (Some(step), Some(p)) = (s.step, PHASES.iter().position(|(_, k)| *k == s.kind)) else { continue };
        let e = extent.entry((p, step)).or_insert((u64::MAX, 0));
        e.0 = e.0.min(s.start.as_ns());
        e.1 = e.1.max(s.end.as_ns());
    }
    // Generation: from its spans, or from the per-step extents a run kept instead of them.
    let rollout = PHASES.iter().position(|(_, k)| *k == SpanKind::Generate).expect("a rollout phase");
    for (step, (a, b)) in t.generation_extents() {
        extent.insert((rollout, step), (a.as_ns(), b.as_ns()));
    }
    let phase_lanes: Vec<Lanes<(u32, u64, u64)>> = (0..PHASES.len())
        .map(|p| {
            let v = extent.range((p, 0)..=(p, u32::MAX)).map(|(&(_, step), &(a, b))| (step, a, b)).collect();
            Lanes::pack(v, |&(step, a, b)| (a, b, step.into()))
        })
        .collect();

    // Worker activity and generation lanes.
    let mut activity: Vec<Vec<usize>> = vec![Vec::new(); t.workers.len()];
    let mut generate: Vec<Vec<usize>> = vec![Vec::new(); t.workers.len()];
    if workers {
        for (i, s) in t.spans.iter().enumerate().filter(|(_, s)| (s.worker as usize) < t.workers.len()) {
            let w = s.worker as usize;
            if s.kind.is_activity() {
                activity[w].push(i);
            } else if trajectories {
                generate[w].push(i);
            }
        }
    }
    let activity: Vec<Lanes<usize>> = activity.into_iter().map(|v| span_lanes(&t.spans, v)).collect();
    let generate: Vec<Lanes<usize>> = generate.into_iter().map(|v| span_lanes(&t.spans, v)).collect();

    // Ids: pids first (steps, nodes, generation processes), then tids above every pid.
    let mut nodes: Vec<u32> = if workers { t.workers.iter().map(|x| x.node).collect() } else { Vec::new() };
    nodes.sort_unstable();
    nodes.dedup();
    let steps_pid = 1;
    let node_pid = |node: u32| 2 + nodes.binary_search(&node).expect("a node of a worker") as u32;
    let gen_workers: Vec<usize> = (0..t.workers.len()).filter(|&w| generate[w].count > 0).collect();
    let gen_pid = |k: usize| 2 + nodes.len() as u32 + k as u32;
    let mut next_tid = 2 + nodes.len() as u32 + gen_workers.len() as u32;
    let mut tid = || {
        next_tid += 1;
        next_tid - 1
    };

    // The steps process.
    out.process(steps_pid, "steps", 0)?;
    let step_tid = tid();
    out.thread(steps_pid, step_tid, "step", 0)?;
    stats.threads += 1;
    let secs_to_ns = |s: f64| (s * 1e9).round() as u64;
    for r in steps {
        let args = format!(
            r#"{{"step":{},"duration_s":{},"trained_samples":{},"trained_tokens":{},"critical_phase":{}}}"#,
            r.step,
            r.duration_s,
            r.trained_samples,
            r.trained_tokens,
            json_str(&r.critical_phase)
        );
        let name = |o: &mut Out<W>| {
            o.raw(r#""step "#).num(r.step.into()).raw("\"");
        };
        out.complete(name, "step", secs_to_ns(r.start_s), secs_to_ns(r.end_s), steps_pid, step_tid)?
            .raw(&args)
            .raw("}");
    }
    let mut sort = 1;
    for (p, lanes) in phase_lanes.iter().enumerate() {
        let phase = PHASES[p].0;
        let tids: Vec<u32> = (0..lanes.count).map(|_| tid()).collect();
        for (l, &id) in tids.iter().enumerate() {
            let name = if l == 0 { phase.to_string() } else { format!("{phase} · {}", l + 1) };
            out.thread(steps_pid, id, &name, sort)?;
            sort += 1;
        }
        stats.threads += lanes.count;
        let name = json_str(phase);
        for (&(step, a, b), l) in lanes.iter() {
            let write_name = |o: &mut Out<W>| {
                o.raw(&name);
            };
            out.complete(write_name, phase, a, b, steps_pid, tids[l])?.raw(r#"{"step":"#).num(step.into()).raw("}}");
        }
    }
    for c in t.counter_samples.iter().filter(|c| c.worker == CounterSample::RUN) {
        let (name, key) = counter_track(c.kind);
        out.counter(&json_str(name), key, c.at.as_ns(), c.value, steps_pid, step_tid)?;
    }
    if !workers {
        stats.events = out.finish()?;
        return Ok(stats);
    }

    // Nodes: one thread (or a few lanes, should a backend's spans ever overlap) per worker, then its counters.
    for (k, &n) in nodes.iter().enumerate() {
        out.process(node_pid(n), &format!("node {n}"), 1 + k as u32)?;
    }
    let mut worker_tid = vec![0u32; t.workers.len()];
    for (w, x) in t.workers.iter().enumerate() {
        // A worker with no span still gets its (empty) thread.
        let lanes = &activity[w];
        let pid = node_pid(x.node);
        let tids: Vec<u32> = (0..lanes.count.max(1)).map(|_| tid()).collect();
        worker_tid[w] = tids[0];
        for (l, &id) in tids.iter().enumerate() {
            let mut name = format!("{} ({} GPU, {})", x.name, x.gpus, x.tags.join("+"));
            if l > 0 {
                name = format!("{} · {}", x.name, l + 1);
            }
            out.thread(pid, id, &name, w as u32 * 1000 + l as u32)?;
        }
        stats.threads += tids.len() as u32;
        for (&i, l) in lanes.iter() {
            let s = &t.spans[i];
            let name = |o: &mut Out<W>| {
                o.raw("\"").raw(s.kind.name()).raw("\"");
            };
            out.complete(name, s.kind.name(), s.start.as_ns(), s.end.as_ns(), pid, tids[l])?.span_args(&names[w], s);
        }
    }
    // Counter names, per worker and kind, made once (a DAPO run has a few hundred thousand samples).
    let counter_names: Vec<Vec<String>> = t
        .workers
        .iter()
        .map(|x| CounterKind::ALL.iter().map(|&k| json_str(&format!("{} {}", x.name, counter_track(k).0))).collect())
        .collect();
    for c in t.counter_samples.iter().filter(|c| (c.worker as usize) < t.workers.len()) {
        let w = c.worker as usize;
        let name = &counter_names[w][c.kind as usize];
        out.counter(name, counter_track(c.kind).1, c.at.as_ns(), c.value, node_pid(t.workers[w].node), worker_tid[w])?;
    }

    // Generation lanes, one process per rollout worker.
    let mut lane_tid: Vec<Vec<u32>> = vec![Vec::new(); t.workers.len()];
    for (k, &w) in gen_workers.iter().enumerate() {
        let x = &t.workers[w];
        let lanes = &generate[w];
        let pid = gen_pid(k);
        out.process(pid, &format!("{} generation (node {})", x.name, x.node), 1 + nodes.len() as u32 + k as u32)?;
        lane_tid[w] = (0..lanes.count).map(|_| tid()).collect();
        for (l, &id) in lane_tid[w].iter().enumerate() {
            out.thread(pid, id, &format!("{} lane {}", x.name, l + 1), l as u32)?;
        }
        stats.threads += lanes.count;
        stats.max_lanes = stats.max_lanes.max(lanes.count);
        for (&i, l) in lanes.iter() {
            let s = &t.spans[i];
            let name = |o: &mut Out<W>| {
                o.raw(r#""traj "#).num(s.trajectory.unwrap_or(0)).raw("\"");
            };
            out.complete(name, "generate", s.start.as_ns(), s.end.as_ns(), pid, lane_tid[w][l])?
                .span_args(&names[w], s);
        }
    }

    // Migrations: consecutive segments of one trajectory on different workers. A flow binds to the slice enclosing
    // its timestamp, so each end sits mid-slice (a slice shorter than 2 ns has no inside and gets no arrow).
    if trajectories {
        // (trajectory, start, span, lane) of every segment, in trajectory and time order.
        let mut segments: Vec<(u64, u64, usize, usize)> = Vec::new();
        for &w in &gen_workers {
            let seg = |(&i, l): (&usize, usize)| (t.spans[i].trajectory.unwrap_or(0), t.spans[i].start.as_ns(), i, l);
            segments.extend(generate[w].iter().map(seg));
        }
        segments.sort_unstable();
        let mid = |s: &Span| s.start.as_ns() + (s.end.as_ns() - s.start.as_ns()) / 2;
        for pair in segments.windows(2) {
            let ((ta, _, ia, la), (tb, _, ib, lb)) = (pair[0], pair[1]);
            let (a, b) = (&t.spans[ia], &t.spans[ib]);
            if ta != tb || a.worker == b.worker || a.end.since(a.start) < 2 || b.end.since(b.start) < 2 {
                continue;
            }
            stats.flows += 1;
            let id = stats.flows;
            let (wa, wb) = (a.worker as usize, b.worker as usize);
            let pa = gen_pid(gen_workers.binary_search(&wa).expect("a generation worker"));
            let pb = gen_pid(gen_workers.binary_search(&wb).expect("a generation worker"));
            out.flow('s', id, mid(a), pa, lane_tid[wa][la])?;
            out.flow('f', id, mid(b), pb, lane_tid[wb][lb])?;
        }
    }
    stats.events = out.finish()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_are_the_lowest_free_and_as_many_as_the_peak_overlap() {
        // [0,10) [2,4) [4,6) [5,12) [10,11): peak 3 open at once (0–10, 4–6, 5–12 at t=5).
        let (lanes, n) = pack_lanes(&[(0, 10), (2, 4), (4, 6), (5, 12), (10, 11)]);
        assert_eq!(lanes, vec![0, 1, 1, 2, 0]);
        assert_eq!(n, 3);
        // Touching intervals share a lane; zero-length ones free it at once.
        assert_eq!(pack_lanes(&[(0, 5), (5, 5), (5, 9)]), (vec![0, 0, 0], 1));
        assert_eq!(pack_lanes(&[]), (vec![], 0));
    }

    #[test]
    fn timestamps_survive_perfettos_truncation() {
        // Perfetto computes (µs × 1000) as an integer by truncation; every nanosecond must come back exactly.
        for ns in (0..2_000_000u64).step_by(7).chain([999_999_999_999, 86_400_000_000_000]) {
            let mut sink = Vec::new();
            let mut out = Out::new(&mut sink);
            out.buf.clear();
            out.us(ns);
            let text = String::from_utf8(out.buf).unwrap();
            let back = (text.parse::<f64>().unwrap() * 1000.0) as u64;
            assert_eq!(back, ns, "{text}");
        }
    }

    #[test]
    fn detail_names_round_trip_and_a_bad_one_is_named() {
        for n in TimelineDetail::NAMES {
            assert_eq!(n.parse::<TimelineDetail>().unwrap().name(), n);
        }
        let e = "all".parse::<TimelineDetail>().unwrap_err();
        assert_eq!(e, r#"expected one of none, steps, workers, trajectories, got "all""#);
    }
}
