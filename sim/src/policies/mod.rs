//! The pipelines: one Policy implementation each, chosen by `pipeline.type`.

pub mod colocated;
pub mod disaggregated;
