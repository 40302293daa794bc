//! rlsim-exec: the real backend — runs the simulator's policies on real devices with candle.

pub mod model;
