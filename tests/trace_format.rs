//! The trace (`timeline.json.gz`) checked against the trace-event format's rules as Perfetto reads them, on quickstart
//! runs whose pipelines pause and migrate trajectories, at every `--timeline` detail.

mod scratch;
use scratch::{scratch, Scratch};

use flate2::read::GzDecoder;
use rlsim_reports::{write_run_detail, TimelineDetail};
use rlsim_sim::scenario::Scenario;
use rlsim_sim::simulator::{simulate, SimRun};
use rlsim_sim::timeline::{CounterKind, SpanKind, Timeline};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

/// Quickstart under `pipeline` for `steps` steps (512 trajectories each), and its engines' most sequences at once.
fn run(pipeline: &str, steps: u32) -> (SimRun, u32) {
    let sets = [format!("pipeline.type={pipeline}"), format!("workload.steps={steps}")];
    let s = Scenario::load(Path::new("scenarios/quickstart.toml"), &sets).unwrap();
    (simulate(&s).unwrap(), s.rollout.max_num_seqs)
}

fn tmp(name: &str) -> Scratch {
    scratch("trace", name, false)
}

fn read_trace(dir: &Path) -> Value {
    let mut text = String::new();
    GzDecoder::new(std::fs::File::open(dir.join("timeline.json.gz")).unwrap()).read_to_string(&mut text).unwrap();
    serde_json::from_str(&text).expect("the trace is valid JSON once gunzipped")
}

/// A timestamp as Perfetto reads it: microseconds × 1000, truncated to integer nanoseconds.
fn ns(v: &Value) -> i64 {
    (v.as_f64().expect("a numeric timestamp") * 1000.0) as i64
}

/// A thread: (pid, tid).
type Thread = (u64, u64);
/// A complete slice as Perfetto reads it: start and end in nanoseconds, and its event's index.
type Slice = (i64, i64, usize);
/// A flow's key: (cat, name, id).
type FlowKey = (String, String, u64);

/// What the rules check found in a trace.
#[derive(Default)]
struct Found {
    /// (pid, tid) → its complete slices (start, end, event index), and which threads carry anything at all.
    slices: BTreeMap<Thread, Vec<Slice>>,
    used: BTreeSet<Thread>,
    process_names: BTreeMap<u64, String>,
    thread_names: BTreeMap<Thread, String>,
    /// Counter track (pid, "<name> <arg>") → its values in file order.
    counters: BTreeMap<(u64, String), Vec<f64>>,
    /// Flows: (s event, f event).
    flows: Vec<(usize, usize)>,
}

/// Checks the trace-event format's rules (as Perfetto applies them) and returns what it found.
fn check(trace: &Value) -> Found {
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    let mut f = Found::default();
    let mut open_async: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    let mut starts: BTreeMap<FlowKey, Vec<usize>> = BTreeMap::new();
    let mut finishes: BTreeMap<FlowKey, Vec<usize>> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        let ph = e["ph"].as_str().unwrap_or_else(|| panic!("event {i} has no ph: {e}"));
        let (pid, tid) = (e["pid"].as_u64().expect("pid"), e["tid"].as_u64().expect("tid"));
        let name = e["name"].as_str().unwrap_or_else(|| panic!("event {i} has no name: {e}")).to_string();
        let cat = e["cat"].as_str().unwrap_or("").to_string();
        match ph {
            "M" => {
                let value = e["args"]["name"].as_str().map(String::from);
                match name.as_str() {
                    "process_name" => assert!(f.process_names.insert(pid, value.unwrap()).is_none(), "{e}"),
                    "thread_name" => {
                        // Perfetto keys thread names by tid alone: a tid must belong to one process.
                        assert!(!f.thread_names.keys().any(|&(_, t)| t == tid), "tid {tid} named twice: {e}");
                        f.thread_names.insert((pid, tid), value.unwrap());
                    }
                    "process_sort_index" | "thread_sort_index" => assert!(e["args"]["sort_index"].is_u64()),
                    other => panic!("unexpected metadata {other}"),
                }
            }
            "X" => {
                let (start, dur) = (ns(&e["ts"]), ns(&e["dur"]));
                assert!(dur >= 0, "{e}");
                f.slices.entry((pid, tid)).or_default().push((start, start + dur, i));
                f.used.insert((pid, tid));
            }
            "b" | "e" => {
                let id = if e["id"].is_null() { e["id2"].to_string() } else { e["id"].to_string() };
                assert_ne!(id, "null", "async event without id: {e}");
                let stack = open_async.entry((cat, id)).or_default();
                if ph == "b" {
                    stack.push(ns(&e["ts"]));
                } else {
                    let begun = stack.pop().unwrap_or_else(|| panic!("`e` without its `b`: {e}"));
                    assert!(ns(&e["ts"]) >= begun, "{e} ends before it begins");
                }
                f.used.insert((pid, tid));
            }
            "C" => {
                let args = e["args"].as_object().expect("counter args");
                assert!(!args.is_empty(), "{e}");
                for (k, v) in args {
                    let v = v.as_f64().unwrap_or_else(|| panic!("counter {name} {k} is not a number: {e}"));
                    f.counters.entry((pid, format!("{name} {k}"))).or_default().push(v);
                }
                f.used.insert((pid, tid));
            }
            "s" | "f" => {
                let key = (cat, name, e["id"].as_u64().expect("flow id"));
                if ph == "s" {
                    starts.entry(key).or_default().push(i);
                } else {
                    assert_eq!(e["bp"], "e", "a flow end binds to its enclosing slice: {e}");
                    finishes.entry(key).or_default().push(i);
                }
                f.used.insert((pid, tid));
            }
            other => panic!("unexpected phase {other}: {e}"),
        }
    }
    assert!(open_async.values().all(|s| s.is_empty()), "async slices left open");
    // Complete events on one thread nest or follow each other; never overlap partially.
    for (thread, slices) in f.slices.iter_mut() {
        slices.sort_by_key(|&(a, b, _)| (a, std::cmp::Reverse(b)));
        let mut stack: Vec<Slice> = Vec::new();
        for &(a, b, i) in slices.iter() {
            while stack.last().is_some_and(|&(_, end, _)| end <= a) {
                stack.pop();
            }
            if let Some(&(_, end, j)) = stack.last() {
                assert!(b <= end, "{thread:?}: {} overlaps {} partially", events[i], events[j]);
            }
            stack.push((a, b, i));
        }
    }
    // Flows: one start and one finish per id, in time order, each strictly inside a slice of its thread.
    assert_eq!(starts.keys().collect::<Vec<_>>(), finishes.keys().collect::<Vec<_>>(), "flows unmatched");
    for (key, s) in &starts {
        let fin = &finishes[key];
        assert_eq!((s.len(), fin.len()), (1, 1), "flow {key:?} reused");
        let (s, fin) = (s[0], fin[0]);
        assert!(ns(&events[fin]["ts"]) >= ns(&events[s]["ts"]), "flow {key:?} runs backwards");
        for &end in &[s, fin] {
            let e = &events[end];
            let (thread, at) = ((e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap()), ns(&e["ts"]));
            let inside = f.slices.get(&thread).is_some_and(|v| v.iter().any(|&(a, b, _)| a < at && at < b));
            assert!(inside, "flow end {e} is in no slice of its thread");
        }
        f.flows.push((s, fin));
    }
    for t in &f.used {
        assert!(f.thread_names.contains_key(t), "thread {t:?} has no thread_name");
        assert!(f.process_names.contains_key(&t.0), "process {} has no process_name", t.0);
    }
    f
}

/// The most spans of `kind` open at once on `worker` (one ending where another starts does not overlap it).
fn peak(t: &Timeline, worker: u32, generate: bool) -> u32 {
    let mut edges: Vec<(u64, i32)> = Vec::new();
    for s in t.spans.iter().filter(|s| s.worker == worker && (s.kind == SpanKind::Generate) == generate) {
        edges.push((s.start.as_ns(), 1));
        edges.push((s.end.as_ns(), -1));
    }
    edges.sort(); // at one instant, ends (-1) before starts
    let (mut open, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        open += d;
        most = most.max(open);
    }
    most as u32
}

#[test]
fn the_trace_follows_the_format_and_scales_with_workers_not_trajectories() {
    for pipeline in ["seamless", "partial", "async"] {
        // Enough steps that trajectories far outnumber the sequences an engine runs at once.
        let (run, max_num_seqs) = run(pipeline, 12);
        let t = &run.timeline;
        let dir = tmp(pipeline);
        write_run_detail(&dir, &run.report, t, None, TimelineDetail::Trajectories).unwrap();
        let trace = read_trace(&dir);
        let found = check(&trace);
        let events = trace["traceEvents"].as_array().unwrap();

        // Every span is one slice: worker activity on the worker's thread in its node's process, each generation
        // segment on a lane of its worker's generation process, with its worker, step, trajectory, tokens, version.
        let xs: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
        let generate: Vec<&&Value> = xs.iter().filter(|e| e["cat"] == "generate").collect();
        let gen_spans = t.spans.iter().filter(|s| s.kind == SpanKind::Generate).count();
        assert_eq!(generate.len(), gen_spans, "{pipeline}");
        let activity = xs.iter().filter(|e| e["args"]["worker"].is_string() && e["cat"] != "generate").count();
        assert_eq!(activity, t.spans.len() - gen_spans, "{pipeline}");
        for e in &generate {
            let a = &e["args"];
            for key in ["step", "trajectory", "tokens", "version"] {
                assert!(a[key].is_u64(), "{pipeline}: generation slice lacks {key}: {e}");
            }
            let worker = a["worker"].as_str().unwrap();
            let process = &found.process_names[&e["pid"].as_u64().unwrap()];
            assert!(process.starts_with(&format!("{worker} generation")), "{e} is under {process}");
            assert_eq!(e["name"], format!("traj {}", a["trajectory"]));
        }

        // Tracks: a worker's generation lanes are exactly its peak number of sequences at once (at most the
        // engine's max_num_seqs); activity is one thread per worker. Far fewer tracks than trajectories.
        for (w, x) in t.workers.iter().enumerate() {
            let lanes = found.thread_names.values().filter(|n| n.starts_with(&format!("{} lane ", x.name))).count();
            assert_eq!(lanes as u32, peak(t, w as u32, true), "{pipeline}: lanes of {}", x.name);
            assert!(peak(t, w as u32, false) <= 1, "{pipeline}: {} double-booked", x.name);
        }
        let trajectories = t.spans.iter().filter_map(|s| s.trajectory).collect::<BTreeSet<_>>().len();
        let slice_threads = found.slices.len();
        let step_threads = found.slices.keys().filter(|(pid, _)| found.process_names[pid] == "steps").count();
        let bound = t.workers.len() * (1 + max_num_seqs as usize) + step_threads;
        assert!(slice_threads <= bound, "{pipeline}: {slice_threads} tracks, more than {bound}");
        assert!(slice_threads * 4 < trajectories, "{pipeline}: {slice_threads} tracks for {trajectories} trajectories");

        // Counters: per rollout worker, KV cache, batch and queue; the policy version ends at the last step.
        for (w, x) in t.workers.iter().enumerate() {
            if !t.spans.iter().any(|s| s.worker == w as u32 && s.kind == SpanKind::Generate) {
                continue;
            }
            for track in ["KV cache tokens", "batch running", "queue waiting", "weights version"] {
                let name = format!("{} {track}", x.name);
                let v = found.counters.iter().find(|((_, n), _)| *n == name).map(|(_, v)| v);
                assert!(v.is_some_and(|v| !v.is_empty()), "{pipeline}: no counter {name}");
            }
            let running = found.counters.iter().find(|((_, n), _)| *n == format!("{} batch running", x.name)).unwrap();
            assert!(running.1.iter().any(|&v| v > 0.0), "{pipeline}: {} never ran a batch", x.name);
        }
        let version = found.counters.iter().find(|((_, n), _)| n == "policy version").expect("policy version").1;
        assert_eq!(version.last(), Some(&(run.report.summary.steps as f64)), "{pipeline}");
        assert!(t.counter_samples.iter().any(|c| c.kind == CounterKind::KvTokens && c.value > 0));

        // Flows: one per migration between consecutive segments, from the worker it left to the one it resumed on.
        let mut segments: Vec<(u64, u64, u32, u64)> = t
            .spans
            .iter()
            .filter(|s| s.kind == SpanKind::Generate)
            .map(|s| (s.trajectory.unwrap(), s.start.as_ns(), s.worker, s.end.as_ns() - s.start.as_ns()))
            .collect();
        segments.sort();
        let moves = segments.windows(2).filter(|p| p[0].0 == p[1].0 && p[0].2 != p[1].2 && p[0].3 >= 2 && p[1].3 >= 2);
        assert_eq!(found.flows.len(), moves.count(), "{pipeline}");
        if pipeline != "async" {
            assert!(!found.flows.is_empty(), "{pipeline} migrates trajectories");
        }
        for &(s, f) in &found.flows {
            assert_ne!(events[s]["pid"], events[f]["pid"], "a migration goes to another worker");
        }

        // Deterministic to the byte, compressed included.
        let again = tmp(&format!("{pipeline}-again"));
        write_run_detail(&again, &run.report, t, None, TimelineDetail::Trajectories).unwrap();
        for file in ["timeline.json.gz", "timeline.csv"] {
            assert_eq!(std::fs::read(dir.join(file)).unwrap(), std::fs::read(again.join(file)).unwrap(), "{file}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&again).unwrap();
    }
}

#[test]
fn each_detail_holds_what_it_says() {
    let (run, _) = run("seamless", 5);
    let t = &run.timeline;
    let files = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
    };

    let dir = tmp("none");
    write_run_detail(&dir, &run.report, t, None, TimelineDetail::None).unwrap();
    assert_eq!(files(&dir), ["steps.csv", "summary.json"].map(String::from).into());
    std::fs::remove_dir_all(&dir).unwrap();

    // steps: the steps process only — a slice per step window and the phases — and the policy version.
    let dir = tmp("steps");
    write_run_detail(&dir, &run.report, t, None, TimelineDetail::Steps).unwrap();
    assert!(!dir.join("timeline.csv").exists());
    let trace = read_trace(&dir);
    let found = check(&trace);
    assert_eq!(found.process_names.values().collect::<Vec<_>>(), ["steps"]);
    let events = trace["traceEvents"].as_array().unwrap();
    let steps = events.iter().filter(|e| e["ph"] == "X" && e["cat"] == "step").count();
    assert_eq!(steps, run.report.steps.len());
    for phase in ["rollout", "train", "sync", "switch"] {
        assert!(events.iter().any(|e| e["ph"] == "X" && e["cat"] == phase), "no {phase} phase");
    }
    assert_eq!(found.counters.keys().map(|(_, n)| n.as_str()).collect::<Vec<_>>(), ["policy version"]);
    std::fs::remove_dir_all(&dir).unwrap();

    // workers: activity and counters, no generation slices and no flows; timeline.csv without `generate` rows.
    let dir = tmp("workers");
    write_run_detail(&dir, &run.report, t, None, TimelineDetail::Workers).unwrap();
    let trace = read_trace(&dir);
    let found = check(&trace);
    let events = trace["traceEvents"].as_array().unwrap();
    assert!(!events.iter().any(|e| e["cat"] == "generate") && found.flows.is_empty());
    assert!(found.counters.keys().any(|(_, n)| n.ends_with(" KV cache tokens")));
    let csv = std::fs::read_to_string(dir.join("timeline.csv")).unwrap();
    let activity = t.spans.iter().filter(|s| s.kind.is_activity()).count();
    assert_eq!(csv.lines().count(), 1 + activity);
    assert!(!csv.contains(",generate,") && csv.contains(",switch,"));
    std::fs::remove_dir_all(&dir).unwrap();
}
