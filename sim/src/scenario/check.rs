//! Small checkers that turn a raw field into a value or a located error.

use super::locate::Source;
use super::ScenarioError;

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
        Ok(v)
    }

    pub(crate) fn number(
        &self,
        v: Option<f64>,
        field: &str,
        default: f64,
        lo: f64,
        hi: f64,
        what: &str,
    ) -> Result<f64, ScenarioError> {
        let v = v.unwrap_or(default);
        if !v.is_finite() || v < lo || v > hi {
            let range = if hi.is_infinite() { format!("≥ {lo}") } else { format!("in [{lo}, {hi}]") };
            return Err(self.src.error(field, format!("expected {what} {range}, got {v}")));
        }
        Ok(v)
    }

    pub(crate) fn positive(
        &self,
        v: Option<f64>,
        field: &str,
        default: Option<f64>,
        what: &str,
    ) -> Result<f64, ScenarioError> {
        let v = match (v, default) {
            (Some(v), _) => v,
            (None, Some(d)) => d,
            (None, None) => return Err(self.src.error(field, format!("missing; expected a positive number ({what})"))),
        };
        if !v.is_finite() || v <= 0.0 {
            return Err(self.src.error(field, format!("expected a positive number ({what}), got {v}")));
        }
        Ok(v)
    }

    pub(crate) fn fraction(&self, v: Option<f64>, field: &str, default: f64, what: &str) -> Result<f64, ScenarioError> {
        let v = v.unwrap_or(default);
        if !v.is_finite() || v <= 0.0 || v > 1.0 {
            return Err(self.src.error(field, format!("expected a fraction in (0, 1] ({what}), got {v}")));
        }
        Ok(v)
    }
}
