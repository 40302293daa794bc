//! `run` and `compare` below `--timeline trajectories` compute the report as the run goes and keep only the workers'
//! activity spans (memory flat over a run's steps): the files they write must be the files a run recording
//! everything writes at the same detail, byte for byte (`summary.json` less its wall time).

mod scratch;
use scratch::{scratch, Scratch};

use rlsim_reports::TimelineDetail;
use rlsim_sim::scenario::Scenario;
use rlsim_sim::simulator::{simulate_recording, Recording};
use std::collections::BTreeMap;
use std::path::Path;

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let mut bytes = std::fs::read(&p).unwrap();
        if name == "summary.json" {
            let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            v.as_object_mut().unwrap().remove("wall_s");
            bytes = v.to_string().into_bytes();
        }
        out.insert(name, bytes);
    }
    out
}

fn tmp(name: &str) -> Scratch {
    scratch("streamed", name, false)
}

#[test]
fn run_files_below_trajectories_detail_equal_those_of_a_full_recording() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Single-turn, long-tailed async, multi-turn agents, and failures (partial pauses and resumes).
    let cases: [(&str, &[&str]); 4] = [
        ("scenarios/quickstart.toml", &[]),
        ("scenarios/longtail-7b-h100x16.toml", &["pipeline.type=async"]),
        ("scenarios/search-r1-7b-h100x8.toml", &["pipeline.type=seamless"]),
        ("scenarios/quickstart.toml", &["pipeline.type=partial", "failures.mtbf_gpu_hours=2"]),
    ];
    for (i, (file, sets)) in cases.iter().enumerate() {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let s = Scenario::load(&root.join(file), &sets).unwrap_or_else(|e| panic!("{e}"));
        let full = simulate_recording(&s, Recording::FULL).unwrap();
        let streamed = simulate_recording(&s, Recording::WORKERS).unwrap();
        assert!(streamed.timeline.samples.is_empty(), "{file}: no per-trajectory records kept");
        assert!(streamed.timeline.spans.iter().all(|s| s.kind.is_activity()), "{file}: no generation spans kept");
        for detail in [TimelineDetail::None, TimelineDetail::Steps, TimelineDetail::Workers] {
            let (a, b) = (tmp(&format!("{i}-{detail:?}-full")), tmp(&format!("{i}-{detail:?}-streamed")));
            rlsim_reports::write_run_detail(&a, &full.report, &full.timeline, None, detail).unwrap();
            rlsim_reports::write_run_detail(&b, &streamed.report, &streamed.timeline, None, detail).unwrap();
            let (fa, fb) = (files(&a), files(&b));
            assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>(), "{file} {sets:?} {detail:?}");
            for (name, bytes) in &fa {
                assert!(bytes == &fb[name], "{file} {sets:?} {detail:?}: {name} differs");
            }
            let _ = std::fs::remove_dir_all(&a);
            let _ = std::fs::remove_dir_all(&b);
        }
    }
}
