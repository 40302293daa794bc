//! `rlsim search`: for a cluster and workload, try the pipelines and their knobs (rollout tensor parallelism, the
//! rollout/train split, the staleness bound of async and seamless, partial's over-provisioning and layout) and
//! rank them by trained-token throughput, optionally under a staleness limit.

use crate::sweep::simulate_all;
use anyhow::{bail, Result};
use rlsim_sim::report::Summary;
use rlsim_sim::scenario::{Scenario, PIPELINE_TYPES};
use std::path::Path;

/// One configuration tried.
pub struct Candidate {
    /// The `--set` overrides that make it.
    pub sets: Vec<String>,
    pub scenario: Scenario,
}

/// The pipeline-specific knobs tried for `kind`: async's and seamless's staleness bound η (only values within
/// `max_staleness` when given), partial's over-provisioning on either layout. Each entry is a list of `--set`s.
fn pipeline_knobs(kind: &str, max_staleness: Option<u32>) -> Vec<Vec<String>> {
    let within = |eta: &u32| max_staleness.is_none_or(|m| *eta <= m);
    match kind {
        "async" => [0u32, 1, 2, 4]
            .iter()
            .filter(|e| within(e))
            .map(|e| vec![format!("pipeline.async.max_staleness={e}")])
            .collect(),
        "seamless" => [1u32, 2]
            .iter()
            .filter(|e| within(e))
            .map(|e| vec![format!("pipeline.seamless.max_staleness={e}")])
            .collect(),
        "partial" => {
            let mut v = Vec::new();
            for layout in ["colocated", "disaggregated"] {
                for over in ["1.25", "1.5", "2.0"] {
                    v.push(vec![
                        format!("pipeline.partial.over_provision={over}"),
                        format!("pipeline.partial.layout={layout}"),
                    ]);
                }
            }
            v
        }
        _ => vec![Vec::new()],
    }
}

/// Whether a configuration runs on disjoint rollout and train pools (so the split is a knob).
fn splits_pools(kind: &str, knobs: &[String]) -> bool {
    matches!(kind, "disaggregated" | "async" | "seamless") || knobs.iter().any(|k| k.ends_with("layout=disaggregated"))
}

/// Every configuration the scenario's cluster allows: each pipeline type with its knobs (`pipeline_knobs`); for
/// automatic layouts each rollout tensor-parallel degree dividing the node, and for split layouts each split of
/// whole engines. Configurations that fail validation (a model that does not fit, a layout a pipeline cannot use)
/// are counted, not tried.
pub fn candidates(path: &Path, base: &[String], max_staleness: Option<u32>) -> Result<(Vec<Candidate>, usize)> {
    let s = Scenario::load(path, base)?;
    let explicit = s.resolved.cluster.workers.is_some();
    let (total, per_node) = (s.cluster.total_gpus(), s.cluster.gpus_per_node);
    let tps: Vec<u32> =
        if explicit { vec![s.rollout.tp] } else { (0..8).map(|k| 1u32 << k).filter(|tp| per_node % tp == 0).collect() };
    let mut sets: Vec<Vec<String>> = Vec::new();
    for kind in PIPELINE_TYPES {
        for knobs in pipeline_knobs(kind, max_staleness) {
            for &tp in &tps {
                let mut one = vec![format!("pipeline.type={kind}")];
                one.extend(knobs.iter().cloned());
                if !explicit {
                    one.push(format!("rollout.tp={tp}"));
                }
                if splits_pools(kind, &knobs) && !explicit {
                    let mut split = tp;
                    while split < total {
                        let mut with = one.clone();
                        with.push(format!("pipeline.disaggregated.rollout_gpus={split}"));
                        sets.push(with);
                        split += tp.max(total / 16);
                        split = split.div_ceil(tp) * tp;
                    }
                } else {
                    sets.push(one);
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut infeasible = 0;
    for extra in sets {
        let mut all = base.to_vec();
        all.extend(extra.iter().cloned());
        match Scenario::load(path, &all) {
            Ok(scenario) => out.push(Candidate { sets: extra, scenario }),
            Err(_) => infeasible += 1,
        }
    }
    Ok((out, infeasible))
}

/// Keeps at most `budget` candidates, evenly spaced over the list (deterministic).
pub fn within_budget(c: Vec<Candidate>, budget: usize) -> Vec<Candidate> {
    if c.len() <= budget {
        return c;
    }
    let n = c.len();
    let keep: Vec<usize> = (0..budget).map(|i| i * n / budget).collect();
    c.into_iter().enumerate().filter(|(i, _)| keep.contains(i)).map(|(_, x)| x).collect()
}

/// A ranked result.
pub struct Ranked {
    pub sets: Vec<String>,
    pub summary: Summary,
    pub resolved_toml: String,
}

/// Evaluates the candidates and ranks those within the staleness limit by trained tokens/s (best first).
pub fn rank(cands: Vec<Candidate>, jobs: usize, max_staleness: Option<u32>) -> Result<(Vec<Ranked>, usize)> {
    let scenarios: Vec<Scenario> = cands.iter().map(|c| c.scenario.clone()).collect();
    let results = simulate_all(&scenarios, jobs)?;
    let mut ranked = Vec::new();
    let mut over_limit = 0;
    for (c, r) in cands.into_iter().zip(results) {
        let summary = r?;
        if max_staleness.is_some_and(|m| summary.max_staleness > m) {
            over_limit += 1;
            continue;
        }
        ranked.push(Ranked { resolved_toml: c.scenario.resolved_toml(), sets: c.sets, summary });
    }
    ranked.sort_by(|a, b| b.summary.tokens_per_s.total_cmp(&a.summary.tokens_per_s));
    if ranked.is_empty() {
        bail!("no configuration within the limits");
    }
    Ok((ranked, over_limit))
}
