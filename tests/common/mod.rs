//! Helpers shared by the tests that run both backends.

use rlsim_sim::report::Report;
use rlsim_sim::scenario::Scenario;
use rlsim_sim::timeline::{Outcome, Timeline};
use rlsim_sim::trajectory::TrajectoryManager;
use std::path::Path;

pub fn exec_tiny(sets: &[&str]) -> Scenario {
    // A test binary carried to another machine (the GPU tests) runs from the checkout's root there.
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/exec-tiny.toml");
    let path = if built.exists() { built } else { Path::new("scenarios/exec-tiny.toml").to_path_buf() };
    Scenario::load(&path, &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

/// The invariants every backend keeps, checked on a finished run.
pub fn check_run(
    what: &str,
    s: &Scenario,
    timeline: &Timeline,
    report: &Report,
    tm: &TrajectoryManager,
    staleness_bound: u32,
) {
    tm.check_conservation().unwrap_or_else(|e| panic!("{what}: {e}"));
    let m = &report.summary;
    assert_eq!(m.steps, s.workload.steps, "{what}");
    assert_eq!(m.generated_tokens, m.trained_tokens + m.in_flight_tokens + m.discarded_tokens, "{what}");
    let expected = (s.workload.steps * s.workload.prompts_per_step * s.workload.samples_per_prompt) as u64;
    assert_eq!(m.trained_samples, expected, "{what}");
    assert!(timeline.samples.iter().all(|x| matches!(x.outcome, Outcome::Trained { .. })), "{what}");
    assert!(timeline.find_double_booking().is_none(), "{what}: {:?}", timeline.find_double_booking());
    assert!(m.max_staleness <= staleness_bound, "{what}: staleness {}", m.max_staleness);
    for t in tm.all() {
        assert_eq!(t.generated, t.target_tokens, "{what}: trace-forced lengths are exact");
    }
}
