//! `[failures]`: injected worker failures.

use crate::cluster::Cluster;
use crate::scenario::check::{num, Check};
use crate::scenario::{FailureSpec, RawFailures, RawScenario, ScenarioError};

pub(super) fn validate_failures(
    f: Option<&RawFailures>,
    cluster: &Cluster,
    c: &Check,
    resolved: &mut RawScenario,
) -> Result<Option<FailureSpec>, ScenarioError> {
    let src = c.src;
    let Some(f) = f else { return Ok(None) };
    let recovery_s = c.seconds(f.recovery_s, "failures.recovery_s", 600.0, "seconds a failed worker is down")?;
    let mtbf_gpu_hours = f
        .mtbf_gpu_hours
        .map(|v| c.positive(Some(v), "failures.mtbf_gpu_hours", None, 1e7, "mean hours between failures of one GPU"))
        .transpose()?;
    if let Some(mtbf) = mtbf_gpu_hours {
        check_progress(mtbf, recovery_s, cluster, c)?;
    }
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

/// Fewest seconds between two failures somewhere in the cluster.
const MIN_CLUSTER_MTBF_S: f64 = 60.0;
/// Fewest recovery times between two failures somewhere in the cluster.
const MIN_MTBF_OVER_RECOVERY: f64 = 10.0;

/// Refuses a failure rate at which the run could not make progress. Every GPU of every worker fails at the MTBF's
/// rate, so the cluster fails every `mtbf_gpu_hours · 3600 / GPUs` seconds on average; a train step spans the train
/// workers and is thrown away by any of their failures, and each failure takes `recovery_s`. The cluster's mean time
/// between failures must be at least a minute and at least ten recovery times, so that most of the time the whole
/// cluster is up. (The simulator also stops a run whose failures repeat without a completed train step.)
fn check_progress(mtbf_gpu_hours: f64, recovery_s: f64, cluster: &Cluster, c: &Check) -> Result<(), ScenarioError> {
    let gpus: u64 = cluster.workers.iter().map(|w| w.gpu_count() as u64).sum();
    let cluster_mtbf_s = mtbf_gpu_hours * 3600.0 / gpus.max(1) as f64;
    let floor_s = MIN_CLUSTER_MTBF_S.max(MIN_MTBF_OVER_RECOVERY * recovery_s);
    if cluster_mtbf_s < floor_s {
        let least_h = floor_s * gpus as f64 / 3600.0;
        return Err(c.src.error(
            "failures.mtbf_gpu_hours",
            format!(
                "{} GPU-hours over the cluster's {gpus} GPUs is a failure every {} s somewhere in the cluster; a run makes progress only if failures are at least {} s apart (a minute, and 10 × recovery_s = {} s), so that the train steps each failure throws away can finish: raise it to at least {} (or lower failures.recovery_s)",
                num(mtbf_gpu_hours),
                num(round3(cluster_mtbf_s)),
                num(floor_s),
                num(MIN_MTBF_OVER_RECOVERY * recovery_s),
                num(round3(least_h)),
            ),
        ));
    }
    Ok(())
}

/// Three significant digits (rounded up), for a message.
fn round3(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(2 - v.abs().log10().floor() as i32);
    (v * scale).ceil() / scale
}
