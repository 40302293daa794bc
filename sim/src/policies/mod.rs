//! The pipelines: one Policy implementation each, chosen by `pipeline.type` (`partial` reuses colocated or
//! disaggregated with a partial rollout; `async` and `seamless` share the streaming policy).

pub mod colocated;
pub mod disaggregated;
pub mod partial;
pub mod rounds;
pub mod streaming;
