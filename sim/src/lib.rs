//! rlsim-sim: the discrete-event simulator of RL post-training pipelines for LLMs.

pub mod cluster;
pub mod framework;
pub mod fuzzing;
pub mod hardware;
pub mod model;
pub mod queue;
pub mod rng;
pub mod rollout_engine;
pub mod scenario;
pub mod textfile;
pub mod time;
pub mod trace;
pub mod trajectory;
pub mod workload;

/// Cost models: formulas that turn work into durations (documented in docs/cost-model.md).
pub mod costs {
    pub mod analytic;
    pub mod decode;
    pub mod memory;
    pub mod profiled;
    pub mod train;
}

pub mod coarsen;
pub mod cost;
pub mod driver;
pub mod fake_view;
pub mod fidelity;
pub mod policies;
pub mod policy;
pub mod profile;
pub mod report;
pub mod simulator;
pub mod timeline;
