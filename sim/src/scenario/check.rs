//! Small checkers that turn a raw field into a value or a located error, and the bounds they apply.

use super::locate::Source;
use super::ScenarioError;

/// Most seconds any duration field may hold (about 11.6 days): far above any real fixed cost, and far below what
/// would overflow the nanosecond clock once multiplied by steps and iterations.
pub(crate) const MAX_SECONDS: f64 = 1e6;
/// Bounds of a GPU's bf16 peak, TFLOP/s: down to one CPU core (0.001, the real backend's devices in `validate
/// --model analytic`).
pub(crate) const TFLOPS: (f64, f64) = (0.001, 100_000.0);
/// Bounds of a memory or link bandwidth in GB/s, or a network in Gbit/s.
pub(crate) const BANDWIDTH: (f64, f64) = (0.1, 100_000.0);
/// Bounds of an HBM bandwidth, GB/s.
pub(crate) const HBM: (f64, f64) = (1.0, 100_000.0);
/// Most GB of memory a GPU may have (or a trainer reserve for activations).
pub(crate) const MAX_MEMORY_GB: f64 = 100_000.0;
/// Most US dollars per GPU-hour.
pub(crate) const MAX_PRICE: f64 = 10_000.0;
/// Most log-space standard deviation of a lognormal (σ = 5 puts p99 at e^11.6 ≈ 10⁵ × the median).
pub(crate) const MAX_SIGMA: f64 = 5.0;
/// Most tokens a prompt or a response cap may hold.
pub(crate) const MAX_TOKENS: u32 = 10_000_000;

/// A float for a message: plain for ordinary magnitudes, in exponent form when very large or very small.
pub(crate) fn num(v: f64) -> String {
    if v != 0.0 && v.is_finite() && (v.abs() >= 1e9 || v.abs() < 1e-4) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

pub(crate) struct Check<'a, 'b> {
    pub(crate) src: &'a Source<'b>,
}

impl Check<'_, '_> {
    pub(crate) fn require<T>(&self, v: Option<T>, field: &str, expected: &str) -> Result<T, ScenarioError> {
        v.ok_or_else(|| self.src.error(field, format!("missing; expected {expected}")))
    }

    pub(crate) fn count(
        &self,
        v: Option<u32>,
        field: &str,
        default: Option<u32>,
        what: &str,
    ) -> Result<u32, ScenarioError> {
        self.count_max(v, field, default, u32::MAX, what)
    }

    /// A positive integer of at most `max`.
    pub(crate) fn count_max(
        &self,
        v: Option<u32>,
        field: &str,
        default: Option<u32>,
        max: u32,
        what: &str,
    ) -> Result<u32, ScenarioError> {
        let v = match (v, default) {
            (Some(v), _) => v,
            (None, Some(d)) => d,
            (None, None) => {
                return Err(self.src.error(field, format!("missing; expected a positive integer ({what})")))
            }
        };
        if v == 0 {
            return Err(self.src.error(field, format!("must be at least 1 ({what}), got 0")));
        }
        if v > max {
            return Err(self.src.error(field, format!("must be at most {max} ({what}), got {v}")));
        }
        Ok(v)
    }

    /// A number in [lo, hi], `default` when absent.
    pub(crate) fn number(
        &self,
        v: Option<f64>,
        field: &str,
        default: f64,
        lo: f64,
        hi: f64,
        what: &str,
    ) -> Result<f64, ScenarioError> {
        self.range(v, field, Some(default), lo, hi, what)
    }

    /// A number in [lo, hi]; absent without a default is an error.
    pub(crate) fn range(
        &self,
        v: Option<f64>,
        field: &str,
        default: Option<f64>,
        lo: f64,
        hi: f64,
        what: &str,
    ) -> Result<f64, ScenarioError> {
        let range =
            if hi.is_infinite() { format!("≥ {}", num(lo)) } else { format!("in [{}, {}]", num(lo), num(hi)) };
        let v = match (v, default) {
            (Some(v), _) => v,
            (None, Some(d)) => d,
            (None, None) => return Err(self.src.error(field, format!("missing; expected {what} {range}"))),
        };
        if !v.is_finite() || v < lo || v > hi {
            return Err(self.src.error(field, format!("expected {what} {range}, got {}", num(v))));
        }
        Ok(v)
    }

    /// A number in (0, hi].
    pub(crate) fn positive(
        &self,
        v: Option<f64>,
        field: &str,
        default: Option<f64>,
        hi: f64,
        what: &str,
    ) -> Result<f64, ScenarioError> {
        let v = match (v, default) {
            (Some(v), _) => v,
            (None, Some(d)) => d,
            (None, None) => return Err(self.src.error(field, format!("missing; expected a positive number ({what})"))),
        };
        if !v.is_finite() || v <= 0.0 {
            return Err(self.src.error(field, format!("expected a positive number ({what}), got {}", num(v))));
        }
        if v > hi {
            return Err(self.src.error(field, format!("expected {what} in (0, {}], got {}", num(hi), num(v))));
        }
        Ok(v)
    }

    pub(crate) fn fraction(&self, v: Option<f64>, field: &str, default: f64, what: &str) -> Result<f64, ScenarioError> {
        let v = v.unwrap_or(default);
        if !v.is_finite() || v <= 0.0 || v > 1.0 {
            return Err(self.src.error(field, format!("expected a fraction in (0, 1] ({what}), got {}", num(v))));
        }
        Ok(v)
    }

    /// Seconds in [0, MAX_SECONDS], `default` when absent.
    pub(crate) fn seconds(&self, v: Option<f64>, field: &str, default: f64, what: &str) -> Result<f64, ScenarioError> {
        self.number(v, field, default, 0.0, MAX_SECONDS, what)
    }
}
