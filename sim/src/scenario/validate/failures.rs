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
const MIN_CLUSTER_MTBF_S: f64 = 1.0;
/// Least share of the time every worker must be up at once.
const MIN_ALL_UP: f64 = 0.5;

/// The share of the time every worker is up at once: each worker of g GPUs alternates up times of mean
/// `mtbf_gpu_hours · 3600 / g` with `recovery_s` down, independently of the others.
fn all_up(mtbf_gpu_hours: f64, recovery_s: f64, cluster: &Cluster) -> f64 {
    cluster
        .workers
        .iter()
        .map(|w| {
            let up = mtbf_gpu_hours * 3600.0 / w.gpu_count() as f64;
            up / (up + recovery_s)
        })
        .product()
}

/// Refuses a failure rate at which the run could not make progress. A train step spans the train workers, starts
/// only when all of them are up, and is thrown away by any failure among them; so the workers must all be up at
/// once at least half the time, and failures must not come more than once a second (with no
/// recovery time the share alone would allow any rate). A rate that passes may still be too high for a long step:
/// the simulator stops a run whose failures repeat without a completed train step.
fn check_progress(mtbf_gpu_hours: f64, recovery_s: f64, cluster: &Cluster, c: &Check) -> Result<(), ScenarioError> {
    let gpus: u64 = cluster.workers.iter().map(|w| w.gpu_count() as u64).sum();
    let cluster_mtbf_s = |mtbf: f64| mtbf * 3600.0 / gpus.max(1) as f64;
    let ok = |mtbf: f64| cluster_mtbf_s(mtbf) >= MIN_CLUSTER_MTBF_S && all_up(mtbf, recovery_s, cluster) >= MIN_ALL_UP;
    if ok(mtbf_gpu_hours) {
        return Ok(());
    }
    // The least MTBF that passes, by bisection (both conditions grow with the MTBF).
    let (mut lo, mut hi) = (mtbf_gpu_hours, mtbf_gpu_hours.max(1e-9));
    while !ok(hi) {
        hi *= 2.0;
    }
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if ok(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let share = all_up(mtbf_gpu_hours, recovery_s, cluster) * 100.0;
    let every = format!(
        "{} GPU-hours over the cluster's {gpus} GPUs is a failure every {} s somewhere in the cluster",
        num(mtbf_gpu_hours),
        num(round3(cluster_mtbf_s(mtbf_gpu_hours)))
    );
    let why = if cluster_mtbf_s(mtbf_gpu_hours) < MIN_CLUSTER_MTBF_S {
        format!("{every}: more than one a second")
    } else {
        format!(
            "{every}, each keeping its worker down recovery_s = {} s: all {} workers would be up at once only {} % of the time, and a train step needs all its workers up until it ends",
            num(recovery_s),
            cluster.workers.len(),
            num(round3(share)),
        )
    };
    Err(c.src.error(
        "failures.mtbf_gpu_hours",
        format!(
            "{why}; a run makes progress only if the workers are all up at once at least half the time and failures are at least 1 s apart: raise it to at least {} (or lower failures.recovery_s)",
            num(round3(hi)),
        ),
    ))
}

/// Three significant digits (rounded up), for a message.
fn round3(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(2 - v.abs().log10().floor() as i32);
    (v * scale).ceil() / scale
}
