//! `rlsim search`: for a cluster and workload, try the pipelines and their knobs (rollout tensor parallelism, the
//! rollout/train split) and rank them by trained-token throughput, optionally under a staleness limit.

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

/// Every configuration the scenario's cluster allows: each pipeline type; for automatic layouts each rollout
/// tensor-parallel degree dividing the node, and for `disaggregated` each split of whole engines (at least one
/// node's worth... of GPUs left to training when the cluster has more than one node). Configurations that fail
/// validation (a model that does not fit, a layout a pipeline cannot use) are counted, not tried.
pub fn candidates(path: &Path, base: &[String]) -> Result<(Vec<Candidate>, usize)> {
    let s = Scenario::load(path, base)?;
    let explicit = s.resolved.cluster.workers.is_some();
    let (total, per_node) = (s.cluster.total_gpus(), s.cluster.gpus_per_node);
    let tps: Vec<u32> =
        if explicit { vec![s.rollout.tp] } else { (0..8).map(|k| 1u32 << k).filter(|tp| per_node % tp == 0).collect() };
    let mut sets: Vec<Vec<String>> = Vec::new();
    for kind in PIPELINE_TYPES {
        for &tp in &tps {
            let mut one = vec![format!("pipeline.type={kind}")];
            if !explicit {
                one.push(format!("rollout.tp={tp}"));
            }
            if *kind == "disaggregated" && !explicit {
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
