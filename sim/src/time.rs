//! Integer simulated time: nanoseconds since the start of a run, plus femtosecond helpers for cost arithmetic.

use serde::Serialize;
use std::fmt;

/// Femtoseconds in one nanosecond. Cost coefficients are integers in femtoseconds so that the closed-form decode
/// sums are exact (a KV-cache read of one token takes tens of picoseconds: nanoseconds would round it away).
pub const FS_PER_NS: u128 = 1_000_000;
/// Femtoseconds in one second.
pub const FS_PER_S: f64 = 1e15;

/// An instant of simulated time, in integer nanoseconds since the run started. Never a float in the event queue.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SimTime(pub u64);

impl SimTime {
    pub const ZERO: SimTime = SimTime(0);

    /// Nanoseconds since the start.
    pub fn as_ns(self) -> u64 {
        self.0
    }

    /// Seconds since the start (for reports only; never for ordering).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// The instant `ns` nanoseconds later.
    pub fn after_ns(self, ns: u64) -> SimTime {
        SimTime(self.0.saturating_add(ns))
    }

    /// This instant in femtoseconds.
    pub fn as_fs(self) -> u128 {
        self.0 as u128 * FS_PER_NS
    }

    /// The first nanosecond at or after an exact femtosecond instant (events never fire early).
    pub fn from_fs_ceil(fs: u128) -> SimTime {
        SimTime(fs.div_ceil(FS_PER_NS).min(u64::MAX as u128) as u64)
    }

    /// Nanoseconds from `earlier` to `self` (zero if `earlier` is later).
    pub fn since(self, earlier: SimTime) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}s", self.as_secs_f64())
    }
}

/// Seconds (a configuration value) to integer nanoseconds, rounded to the nearest.
pub fn secs_to_ns(secs: f64) -> u64 {
    (secs * 1e9).round().max(0.0) as u64
}

/// Seconds to integer femtoseconds, rounded to the nearest.
pub fn secs_to_fs(secs: f64) -> u64 {
    (secs * FS_PER_S).round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fs_rounds_up_to_the_next_nanosecond() {
        assert_eq!(SimTime::from_fs_ceil(0), SimTime(0));
        assert_eq!(SimTime::from_fs_ceil(1), SimTime(1));
        assert_eq!(SimTime::from_fs_ceil(1_000_000), SimTime(1));
        assert_eq!(SimTime::from_fs_ceil(1_000_001), SimTime(2));
    }

    #[test]
    fn seconds_convert_exactly_for_round_values() {
        assert_eq!(secs_to_ns(1.5), 1_500_000_000);
        assert_eq!(secs_to_fs(1e-6), 1_000_000_000);
        assert_eq!(SimTime(2_500_000_000).as_secs_f64(), 2.5);
    }
}
