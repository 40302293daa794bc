//! `[failures]`: injected worker failures.

use crate::cluster::Cluster;
use crate::scenario::check::Check;
use crate::scenario::{FailureSpec, RawFailures, RawScenario, ScenarioError};

pub(super) fn validate_failures(
    f: Option<&RawFailures>,
    cluster: &Cluster,
    c: &Check,
    resolved: &mut RawScenario,
) -> Result<Option<FailureSpec>, ScenarioError> {
    let src = c.src;
    let Some(f) = f else { return Ok(None) };
    let recovery_s =
        c.number(f.recovery_s, "failures.recovery_s", 600.0, 0.0, 1e7, "seconds a failed worker is down")?;
    let mtbf_gpu_hours = f
        .mtbf_gpu_hours
        .map(|v| c.positive(Some(v), "failures.mtbf_gpu_hours", None, "mean hours between failures of one GPU"))
        .transpose()?;
    let mut events = Vec::new();
    for (i, e) in f.events.iter().enumerate() {
        let field = format!("failures.events[{i}]");
        let name = c.require(e.worker.clone(), &format!("{field}.worker"), "a worker name")?;
        let w = cluster.workers.iter().find(|w| w.name == name).ok_or_else(|| {
            let names: Vec<&str> = cluster.workers.iter().map(|w| w.name.as_str()).collect();
            src.error(
                &format!("{field}.worker"),
                format!("no worker named {name:?}; the workers are {}", names.join(", ")),
            )
        })?;
        let at = c.require(e.at_s, &format!("{field}.at_s"), "seconds after the start")?;
        let at = c.number(Some(at), &format!("{field}.at_s"), 0.0, 0.0, 1e9, "seconds after the start")?;
        events.push((w.id, at));
    }
    events.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    if let Some(r) = resolved.failures.as_mut() {
        r.recovery_s = Some(recovery_s);
    }
    Ok(Some(FailureSpec { recovery_s, mtbf_gpu_hours, events }))
}
