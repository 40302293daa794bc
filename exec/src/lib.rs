//! rlsim-exec: the real backend — runs the simulator's policies on real devices with candle.

pub mod collective;
pub mod decode_rate;
pub mod device;
pub mod engine;
pub mod figures;
pub mod model;
pub mod profile;
pub mod runtime;
pub mod task;
pub mod trainer;
pub mod validate;
