//! `[limits]`: the run's size, estimated up front, so a run too big for memory is refused by `check` with a located
//! error instead of aborting part-way through an allocation.

use crate::scenario::check::Check;
use crate::scenario::{RawLimits, RawScenario, ScenarioError};
use crate::workload::WorkloadSpec;

/// Default `limits.max_trajectories`.
pub const DEFAULT_MAX_TRAJECTORIES: u64 = 50_000_000;
/// Default `limits.max_trajectories_per_step`.
pub const DEFAULT_MAX_TRAJECTORIES_PER_STEP: u64 = 1 << 20;
/// Rough memory the simulator keeps per trajectory until the end of a run (its record, segments, per-trajectory
/// bookkeeping and share of spans), for the message.
const BYTES_PER_TRAJECTORY: f64 = 200.0;

pub(super) fn check_limits(
    raw: Option<&RawLimits>,
    workload: &WorkloadSpec,
    c: &Check,
    resolved: &mut RawScenario,
) -> Result<(), ScenarioError> {
    let raw = raw.cloned().unwrap_or_default();
    let max_total = raw.max_trajectories.unwrap_or(DEFAULT_MAX_TRAJECTORIES);
    let max_step = raw.max_trajectories_per_step.unwrap_or(DEFAULT_MAX_TRAJECTORIES_PER_STEP);
    for (v, field) in [(max_total, "limits.max_trajectories"), (max_step, "limits.max_trajectories_per_step")] {
        if v == 0 {
            return Err(c.src.error(field, "must be at least 1, got 0"));
        }
    }
    resolved.limits = Some(RawLimits { max_trajectories: Some(max_total), max_trajectories_per_step: Some(max_step) });

    // Groups generated for one step: prompts_per_step, or with dynamic sampling the rounds it takes to keep that
    // many (at most max_rounds) of prompts_per_round groups each.
    let p = workload.prompts_per_step as u64;
    let s = workload.samples_per_prompt as u64;
    let (groups, group_field) = match &workload.dynamic_sampling {
        None => (p, "workload.prompts_per_step"),
        Some(d) => {
            let per_round = d.prompts_per_round as u64;
            let needed = (p as f64 / (d.keep_fraction * per_round as f64)).ceil().max(1.0) as u64;
            let rounds = needed.min(d.max_rounds as u64);
            if rounds * per_round > p {
                (rounds * per_round, "workload.dynamic_sampling.prompts_per_round")
            } else {
                (p, "workload.prompts_per_step")
            }
        }
    };
    // A coarse-grained run simulates 1/coarsen of them (`crate::coarsen`): the limits guard what it keeps.
    let k = workload.coarsen.max(1) as u64;
    let (groups, group_field) = if k > 1 { (groups.div_ceil(k), "workload.coarsen") } else { (groups, group_field) };
    let per_step = groups * s;
    let memory = |n: u64| {
        let gb = n as f64 * BYTES_PER_TRAJECTORY / 1e9;
        if gb >= 1.0 {
            format!("{gb:.0} GB")
        } else {
            format!("{:.0} MB", gb * 1e3)
        }
    };
    if per_step > max_step {
        let field = if s > groups { "workload.samples_per_prompt" } else { group_field };
        return Err(c.src.error(
            field,
            format!(
                "{groups} {}groups × {s} samples_per_prompt = {per_step} trajectories per step, above limits.max_trajectories_per_step = {max_step}; lower it, or raise the limit with [limits] max_trajectories_per_step (--set limits.max_trajectories_per_step=N) on a machine with the memory (about {} for a step)",
                if k > 1 { "simulated " } else { "" },
                memory(per_step)
            ),
        ));
    }
    let total = per_step.saturating_mul(workload.steps as u64);
    if total > max_total {
        return Err(c.src.error(
            "workload.steps",
            format!(
                "{} steps × {per_step} trajectories per step = {total} trajectories, above limits.max_trajectories = {max_total} (the simulator keeps every trajectory until the end: about {}); lower it, or raise the limit with [limits] max_trajectories (--set limits.max_trajectories=N) on a machine with the memory",
                workload.steps,
                memory(total)
            ),
        ));
    }
    Ok(())
}
