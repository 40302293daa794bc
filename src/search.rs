//! `rlsim search`: for a cluster and workload, try the pipelines and their knobs (rollout tensor parallelism, the
//! rollout/train split, the staleness bound of async and seamless, partial's over-provisioning and layout) and
//! rank them by trained-token throughput, optionally under a staleness and an off-policy limit.
//!
//! The algorithm (successive halving, deterministic):
//! 1. the input scenario as given and each pipeline type's defaults (`--set pipeline.type=X` alone) are always
//!    tried; the budget counts them, and a smaller budget is raised to cover them (said in the output);
//! 2. the rest of the budget is split across pipeline types in fair shares (water-filling: a type with fewer
//!    configurations than its share gives the remainder to the others); within a type the picks go round-robin over
//!    its (knob, tensor-parallel degree) groups, each group's rollout/train splits taken middle first;
//! 3. every configuration is screened on the first `--screen-steps` steps of its full run; the top third (at least
//!    3), the input scenario and the pipeline defaults are confirmed with the full steps on the scenario's seed
//!    (their screening runs, kept paused, carried on to the end; `screen`, `confirm_first`); the input, the
//!    defaults and the leaders by mean (the best `max(--top, 3)`, and any within 5 % of the last of them) are then
//!    run on the other `--seeds` seeds (the scenario's seed + k) too, until every leader by mean has them all, and
//!    every confirmed configuration is ranked by its mean throughput; the others are reported as screened only;
//! 4. a configuration breaking `--max-staleness` or `--max-off-policy` in any of its runs is dropped and counted.

use crate::sweep::simulate_all;
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use rlsim_reports as reports;
use rlsim_sim::policy::build_policy;
use rlsim_sim::report::Summary;
use rlsim_sim::scenario::{Scenario, PIPELINE_TYPES};
use rlsim_sim::simulator::{Recording, Simulation};
use std::collections::BTreeSet;
use std::path::Path;

/// The configuration column of the input scenario's row.
pub const INPUT_LABEL: &str = "(input scenario)";

/// One configuration tried.
pub struct Candidate {
    /// The `--set` overrides that make it (none for the input scenario).
    pub sets: Vec<String>,
    /// What it stands for besides itself: "input scenario", "<type> default".
    pub labels: Vec<String>,
    pub scenario: Scenario,
}

/// A configuration as written in search.csv: its overrides, or the input scenario's label for none.
fn config_label(sets: &[String]) -> String {
    if sets.is_empty() {
        INPUT_LABEL.to_string()
    } else {
        sets.join(" ")
    }
}

impl Candidate {
    /// The configuration as written in search.csv.
    pub fn config(&self) -> String {
        config_label(&self.sets)
    }
}

/// The configurations a search can try: the ones it always tries, and the rest grouped by pipeline type.
pub struct Plan {
    /// The input scenario first, then each pipeline type's defaults that validate and differ from it.
    pub mandatory: Vec<Candidate>,
    /// Per pipeline type (in `PIPELINE_TYPES` order), its other configurations in groups of one (knobs, tensor
    /// parallelism) each, the group's rollout/train splits in increasing order.
    pub by_type: Vec<(&'static str, Vec<Vec<Candidate>>)>,
    /// Configurations that failed validation (a model that does not fit, a layout a pipeline cannot use).
    pub infeasible: usize,
    /// Of those, the ones only a coarse-grained scenario's checks rejected (`workload.coarsen`).
    pub coarse_rejected: usize,
}

impl Plan {
    /// Distinct feasible configurations.
    pub fn total(&self) -> usize {
        self.mandatory.len() + self.by_type.iter().map(|(_, g)| g.iter().map(Vec::len).sum::<usize>()).sum::<usize>()
    }
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

/// Every configuration the scenario's cluster allows: the input scenario, each pipeline type's defaults, and each
/// pipeline type with its knobs (`pipeline_knobs`); for automatic layouts each rollout tensor-parallel degree
/// dividing the node (and the powers of two over whole nodes when the scenario's own engine spans nodes), and for
/// split layouts each split of whole engines. Configurations that fail validation are
/// counted, not tried; one that resolves to the same scenario as an earlier one is kept once (the input scenario
/// and the defaults first, carrying the labels of the duplicates).
pub fn candidates(path: &Path, base: &[String], max_staleness: Option<u32>) -> Result<Plan> {
    let s = Scenario::load(path, base)?;
    let explicit = s.resolved.cluster.workers.is_some();
    let (total, per_node) = (s.cluster.total_gpus(), s.cluster.gpus_per_node);
    // Engines over whole nodes are tried when the scenario already needs one (a model too large for a node).
    let spans = s.rollout.tp > per_node;
    let tps: Vec<u32> = if explicit {
        vec![s.rollout.tp]
    } else {
        (0..16)
            .map(|k| 1u32 << k)
            .filter(|&tp| per_node % tp == 0 || (spans && tp % per_node == 0 && tp as u64 <= total as u64))
            .collect()
    };
    // A coarse-grained scenario's candidates may fail only the coarsening's checks (groups per engine, KV copies):
    // counted apart, so `search` can say so.
    let coarse_rejected = std::cell::Cell::new(0usize);
    let load = |extra: &[String]| {
        let mut all = base.to_vec();
        all.extend(extra.iter().cloned());
        Scenario::load(path, &all)
            .inspect_err(|e| {
                if matches!(e, rlsim_sim::scenario::ScenarioError::Field { field, .. } if field == "workload.coarsen") {
                    coarse_rejected.set(coarse_rejected.get() + 1);
                }
            })
            .ok()
    };
    let mut seen: Vec<String> = Vec::new();
    let mut infeasible = 0;
    let mut mandatory = vec![Candidate { sets: Vec::new(), labels: vec!["input scenario".into()], scenario: s }];
    seen.push(mandatory[0].scenario.resolved_toml());
    for kind in PIPELINE_TYPES {
        let sets = vec![format!("pipeline.type={kind}")];
        let label = format!("{kind} default");
        match load(&sets) {
            None => infeasible += 1,
            Some(scenario) => {
                let toml = scenario.resolved_toml();
                if let Some(i) = seen.iter().position(|t| *t == toml) {
                    mandatory[i].labels.push(label);
                } else {
                    seen.push(toml);
                    mandatory.push(Candidate { sets, labels: vec![label], scenario });
                }
            }
        }
    }
    let mut by_type = Vec::new();
    for kind in PIPELINE_TYPES {
        let mut groups: Vec<Vec<Candidate>> = Vec::new();
        for knobs in pipeline_knobs(kind, max_staleness) {
            for &tp in &tps {
                let mut one = vec![format!("pipeline.type={kind}")];
                one.extend(knobs.iter().cloned());
                if !explicit {
                    one.push(format!("rollout.tp={tp}"));
                }
                let mut sets = Vec::new();
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
                let mut group = Vec::new();
                for extra in sets {
                    match load(&extra) {
                        None => infeasible += 1,
                        Some(scenario) => {
                            let toml = scenario.resolved_toml();
                            if !seen.contains(&toml) {
                                seen.push(toml);
                                group.push(Candidate { sets: extra, labels: Vec::new(), scenario });
                            }
                        }
                    }
                }
                if !group.is_empty() {
                    groups.push(group);
                }
            }
        }
        by_type.push((*kind, groups));
    }
    Ok(Plan { mandatory, by_type, infeasible, coarse_rejected: coarse_rejected.get() })
}

/// Fair shares of `budget` for parts of the given sizes (water-filling, deterministic): each round gives every
/// part that still has room an equal share of what is left; a part smaller than its share keeps only its size, and
/// a remainder smaller than the open parts goes one each to the first of them.
pub fn fair_shares(sizes: &[usize], budget: usize) -> Vec<usize> {
    let mut share = vec![0; sizes.len()];
    let mut left = budget;
    loop {
        let open: Vec<usize> = (0..sizes.len()).filter(|&i| share[i] < sizes[i]).collect();
        if open.is_empty() || left == 0 {
            return share;
        }
        let each = (left / open.len()).max(1);
        for i in open {
            let add = each.min(sizes[i] - share[i]).min(left);
            share[i] += add;
            left -= add;
            if left == 0 {
                break;
            }
        }
    }
}

/// The indices 0..n in an order whose every prefix is spread over the range: the middle first, then the quarters,
/// the eighths, … (the van der Corput sequence), so that a few picks from a sorted list cover its extremes and
/// middle rather than one end.
pub fn spread_order(n: usize) -> Vec<usize> {
    let mut order = Vec::with_capacity(n);
    let mut taken = vec![false; n];
    let mut k: u64 = 1;
    while order.len() < n {
        // The k-th van der Corput fraction in base 2, k = 1, 2, …: 1/2, 1/4, 3/4, 1/8, …
        let (mut x, mut denom, mut m) = (0.0f64, 2.0f64, k);
        while m > 0 {
            x += (m & 1) as f64 / denom;
            m >>= 1;
            denom *= 2.0;
        }
        let i = ((x * n as f64) as usize).min(n - 1);
        if !taken[i] {
            taken[i] = true;
            order.push(i);
        }
        k += 1;
        if k > 4 * n as u64 + 8 {
            // Fill whatever the sequence has not reached yet, in order.
            order.extend((0..n).filter(|&i| !taken[i]));
            break;
        }
    }
    order
}

/// The first `k` picks from a type's groups: round-robin over the groups (in spread order), each group's members
/// in spread order.
fn pick(groups: Vec<Vec<Candidate>>, k: usize) -> Vec<Candidate> {
    let group_order = spread_order(groups.len());
    let mut queues: Vec<Vec<Option<Candidate>>> =
        groups.into_iter().map(|g| g.into_iter().map(Some).collect()).collect();
    let member_orders: Vec<Vec<usize>> = queues.iter().map(|q| spread_order(q.len())).collect();
    let mut out = Vec::new();
    let mut round = 0;
    while out.len() < k {
        let mut any = false;
        for &g in &group_order {
            if out.len() == k {
                break;
            }
            if let Some(&m) = member_orders[g].get(round) {
                any = true;
                out.extend(queues[g][m].take());
            }
        }
        if !any {
            break;
        }
        round += 1;
    }
    out
}

/// The configurations a budget tries: every mandatory one, then each type's fair share of the rest. Returns them and
/// a note when the budget was raised to cover the mandatory ones.
pub fn select(plan: Plan, budget: usize) -> (Vec<Candidate>, Option<String>) {
    let need = plan.mandatory.len();
    let note = (budget < need).then(|| {
        format!(
            "note: --budget {budget} is smaller than the {need} configurations always tried (the input scenario and \
             the pipeline defaults); raised to {need}"
        )
    });
    let sizes: Vec<usize> = plan.by_type.iter().map(|(_, g)| g.iter().map(Vec::len).sum()).collect();
    let shares = fair_shares(&sizes, budget.saturating_sub(need));
    let mut out = plan.mandatory;
    for ((_, groups), share) in plan.by_type.into_iter().zip(shares) {
        out.extend(pick(groups, share));
    }
    (out, note)
}

/// How a search screens and confirms.
pub struct Options {
    /// Steps of the screening runs (default max(3, steps/4), at most the scenario's steps).
    pub screen_steps: Option<u32>,
    /// Seeds of the confirmation runs (the scenario's seed + k, k = 0..seeds).
    pub seeds: u32,
    /// How many of the best the output prints: the confirmed leaders raced on every seed (at least 3).
    pub top: usize,
    pub max_staleness: Option<u32>,
    pub max_off_policy: Option<f64>,
    pub jobs: usize,
}

/// A configuration evaluated.
pub struct Row {
    pub sets: Vec<String>,
    pub labels: Vec<String>,
    /// The full-steps scenario at the scenario's seed (what `top-N.toml` holds).
    pub resolved_toml: String,
    /// The run at the scenario's seed: with the full steps when confirmed, the screening run otherwise.
    pub summary: Summary,
    pub screened_only: bool,
    /// Runs behind the throughput figures (1 for a screened-only row).
    pub seeds: u32,
    pub tokens_per_s_mean: f64,
    pub tokens_per_s_min: f64,
    pub tokens_per_s_max: f64,
    /// The worst over its runs.
    pub max_staleness: u32,
    /// The worst over its runs.
    pub off_policy_token_fraction: f64,
}

impl Row {
    pub fn config(&self) -> String {
        config_label(&self.sets)
    }
}

/// What a search found.
pub struct Outcome {
    /// Confirmed rows by mean throughput (best first), then screened-only rows by their screening throughput.
    pub rows: Vec<Row>,
    pub screened: usize,
    pub confirmed: usize,
    /// Of the confirmed, those run on every seed (the input, the pipeline defaults and the leaders).
    pub seeded: usize,
    pub screen_steps: u32,
    pub steps: u32,
    pub seeds: u32,
    pub over_staleness: usize,
    pub over_off_policy: usize,
    /// The mandatory configurations dropped by a constraint: "<labels>: <why>".
    pub dropped_mandatory: Vec<String>,
}

enum Broken {
    Staleness(u32),
    OffPolicy(f64),
}

fn breaks(o: &Options, staleness: u32, off_policy: f64) -> Option<Broken> {
    if o.max_staleness.is_some_and(|m| staleness > m) {
        Some(Broken::Staleness(staleness))
    } else if o.max_off_policy.is_some_and(|m| off_policy > m) {
        Some(Broken::OffPolicy(off_policy))
    } else {
        None
    }
}

/// A configuration whose mean so far is this close to the last leader's (a share of its throughput) is raced on
/// the other seeds too: another seed may lift it into the top.
const RACE_MARGIN: f64 = 0.05;

/// The configurations among `confirm` that still need seeds: the mandatory ones (the input scenario and the
/// pipeline defaults, compared on the same seeds as the leaders) and, by their mean throughput over the runs they
/// have, the best `max(top, 3)` that keep within the constraints and any within `RACE_MARGIN` of the last of them —
/// those with fewer than `o.seeds` runs.
fn race_leaders(confirm: &BTreeSet<usize>, per: &[Vec<Summary>], n_mandatory: usize, o: &Options) -> Vec<usize> {
    let mean = |i: usize| per[i].iter().map(|s| s.tokens_per_s).sum::<f64>() / per[i].len() as f64;
    let mut ranked: Vec<(usize, f64)> = confirm
        .iter()
        .filter(|&&i| {
            let worst_staleness = per[i].iter().map(|s| s.max_staleness).max().unwrap_or(0);
            let worst_off_policy = per[i].iter().map(|s| s.off_policy_token_fraction).fold(0.0, f64::max);
            breaks(o, worst_staleness, worst_off_policy).is_none()
        })
        .map(|&i| (i, mean(i)))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let leaders = o.top.max(3);
    let bar = ranked.get(leaders.min(ranked.len()).saturating_sub(1)).map_or(0.0, |r| r.1) * (1.0 - RACE_MARGIN);
    let mut race: BTreeSet<usize> = confirm.iter().copied().filter(|&i| i < n_mandatory).collect();
    race.extend(ranked.iter().enumerate().filter(|(rank, r)| *rank < leaders || r.1 >= bar).map(|(_, r)| r.0));
    race.into_iter().filter(|&i| per[i].len() < o.seeds as usize).collect()
}

/// Paused screening runs are kept while their trajectories per step add up to at most this many. A paused run of a
/// streaming pipeline holds up to a few steps' trajectories (~230 bytes each, measured on `dapo-32b-h800x64`: 25
/// paused runs of 8,192 per step took 170 MB), so this is ~0.5 GB; the confirmations of the runs beyond it start
/// again from their first step (the same results, later).
const PAUSED_TRAJECTORY_BUDGET: u64 = 500_000;

/// The screening runs still paused, by candidate, and the screened survivors' throughputs so far.
struct Paused<'a> {
    runs: Vec<Option<Simulation<'a>>>,
    survivors: Vec<(f64, usize)>,
}

impl Paused<'_> {
    /// Keeps the runs that may still be confirmed — the mandatory survivors and the best `keep` survivors so far (a
    /// survivor's screening throughput is final, so one that falls out of the best `keep` never comes back in) —
    /// at most `max` of them, the best first; drops the others.
    fn retain(&mut self, n_mandatory: usize, keep: usize, max: usize) {
        self.survivors.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let kept: BTreeSet<usize> = self
            .survivors
            .iter()
            .enumerate()
            .filter(|(rank, (_, i))| *rank < keep || *i < n_mandatory)
            .map(|(_, (_, i))| *i)
            .take(max)
            .collect();
        for (i, run) in self.runs.iter_mut().enumerate() {
            if !kept.contains(&i) {
                *run = None;
            }
        }
    }
}

/// A summary-only run of `s` with its pipeline's policy, set up to its first event.
fn summary_run(s: &Scenario) -> Simulation<'_> {
    Simulation::new(s, build_policy(&s.pipeline, &s.workload), Recording::SUMMARY)
}

/// The screening summaries in candidate order, and the paused runs by candidate.
type Screened<'a> = (Vec<Result<Summary>>, Vec<Option<Simulation<'a>>>);

/// Screens every candidate on the first `screen_steps` steps of its full run (the run stopped once that many
/// steps have trained, its summary taken there), keeping paused the runs that may be confirmed so that
/// `confirm_first` carries them on rather than starting again. Returns the screening summaries in candidate order
/// and the paused runs by candidate.
fn screen<'a>(cands: &'a [Candidate], screen_steps: u32, n_mandatory: usize, o: &Options) -> Result<Screened<'a>> {
    // The confirmed are the best third of the survivors (at least 3) and the mandatory ones.
    let keep = cands.len().div_ceil(3).max(3);
    let per_run = cands
        .iter()
        .map(|c| u64::from(c.scenario.workload.prompts_per_step) * u64::from(c.scenario.workload.samples_per_prompt))
        .max()
        .unwrap_or(1)
        .max(1);
    let max_paused = (PAUSED_TRAJECTORY_BUDGET / per_run) as usize;
    let paused =
        std::sync::Mutex::new(Paused { runs: (0..cands.len()).map(|_| None).collect(), survivors: Vec::new() });
    let bar = crate::ui::progress(cands.len(), "runs");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(o.jobs.max(1)).build()?;
    let results: Vec<Result<Summary>> = pool.install(|| {
        cands
            .par_iter()
            .enumerate()
            .map(|(i, c)| {
                let s = &c.scenario;
                let mut run = summary_run(s);
                let summary = run
                    .run_until_trained(screen_steps)
                    .map_err(anyhow::Error::from)
                    .and_then(|()| run.summary_so_far().context("a summary-only run streams its report"))
                    .with_context(|| format!("simulating {}", s.name));
                bar.inc(1);
                let summary = summary?;
                let mut p = paused.lock().expect("no screening run panicked");
                if breaks(o, summary.max_staleness, summary.off_policy_token_fraction).is_none() {
                    p.survivors.push((summary.tokens_per_s, i));
                    p.runs[i] = Some(run);
                    p.retain(n_mandatory, keep, max_paused);
                }
                Ok(summary)
            })
            .collect()
    });
    bar.finish_and_clear();
    let runs = paused.into_inner().expect("no screening run panicked").runs;
    Ok((results, runs))
}

/// The confirmation runs on the scenario's seed of candidates `which`: each paused screening run carried on to its
/// last step, the others run from the start; summaries in `which` order.
fn confirm_first(
    cands: &[Candidate],
    which: &[usize],
    paused: &mut [Option<Simulation<'_>>],
    jobs: usize,
) -> Result<Vec<Result<Summary>>> {
    let runs: Vec<(usize, Option<Simulation<'_>>)> =
        which.iter().map(|&i| (i, paused.get_mut(i).and_then(Option::take))).collect();
    let bar = crate::ui::progress(runs.len(), "runs");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs.max(1)).build()?;
    let results = pool.install(|| {
        runs.into_par_iter()
            .map(|(i, run)| {
                let s = &cands[i].scenario;
                let run = run.unwrap_or_else(|| summary_run(s));
                let r = run.finish().map(|r| r.report.summary).map_err(anyhow::Error::from);
                bar.inc(1);
                r.with_context(|| format!("simulating {}", s.name))
            })
            .collect()
    });
    bar.finish_and_clear();
    Ok(results)
}

/// Screens the candidates on the first steps of their runs, confirms the leaders (and every mandatory one) on the
/// full steps and several seeds, and ranks them. `path` and `base` are the scenario file and overrides the
/// candidates were made from (the runs on other seeds reload them with `seed` added).
pub fn evaluate(path: &Path, base: &[String], cands: Vec<Candidate>, o: &Options) -> Result<Outcome> {
    let load = |c: &Candidate, extra: &[String]| -> Result<Scenario> {
        let mut all = base.to_vec();
        all.extend(c.sets.iter().cloned());
        all.extend(extra.iter().cloned());
        Scenario::load(path, &all).with_context(|| format!("loading {} with {}", c.config(), extra.join(" ")))
    };
    let steps = cands.first().context("no configuration to try")?.scenario.workload.steps;
    let screen_steps = o.screen_steps.unwrap_or((steps / 4).max(3)).min(steps);
    let n_mandatory = cands.iter().take_while(|c| !c.labels.is_empty()).count();
    let mut over_staleness = 0;
    let mut over_off_policy = 0;
    let mut dropped_mandatory = Vec::new();
    let mut reject = |why: Broken, c: &Candidate, mandatory: bool| {
        let text = match why {
            Broken::Staleness(s) => {
                over_staleness += 1;
                format!("max staleness {s} > --max-staleness {}", o.max_staleness.unwrap_or(0))
            }
            Broken::OffPolicy(f) => {
                over_off_policy += 1;
                format!("off-policy token fraction {f:.3} > --max-off-policy {}", o.max_off_policy.unwrap_or(0.0))
            }
        };
        if mandatory {
            dropped_mandatory.push(format!("{} ({}): {text}", c.labels.join(", "), c.config()));
        }
    };

    // Screening: the first `screen_steps` steps of each configuration's full run, the runs that may be confirmed
    // kept paused (`screen`).
    let screened = cands.len();
    let (results, mut paused) = if screen_steps < steps {
        screen(&cands, screen_steps, n_mandatory, o)?
    } else {
        let scenarios: Vec<Scenario> = cands.iter().map(|c| c.scenario.clone()).collect();
        (simulate_all(&scenarios, o.jobs)?, Vec::new())
    };
    let mut survivors: Vec<(usize, Summary)> = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        let s = r?;
        match breaks(o, s.max_staleness, s.off_policy_token_fraction) {
            Some(why) => reject(why, &cands[i], i < n_mandatory),
            None => survivors.push((i, s)),
        }
    }
    survivors.sort_by(|a, b| b.1.tokens_per_s.total_cmp(&a.1.tokens_per_s));
    let keep_n = survivors.len().div_ceil(3).max(3).min(survivors.len());
    let confirm: BTreeSet<usize> = survivors
        .iter()
        .enumerate()
        .filter(|(rank, (i, _))| *rank < keep_n || *i < n_mandatory)
        .map(|(_, (i, _))| *i)
        .collect();

    // Confirmation, raced: every confirmed configuration on the scenario's seed with the full steps (the screening
    // run when it had them), then the other seeds only for the mandatory ones and the leaders that could still be
    // in the printed top (`race_leaders`); the rest keep their one full run.
    let mut per: Vec<Vec<Summary>> = (0..cands.len()).map(|_| Vec::new()).collect();
    let first: Vec<usize> = if screen_steps == steps {
        for (i, s) in &survivors {
            if confirm.contains(i) {
                per[*i].push(s.clone());
            }
        }
        Vec::new()
    } else {
        confirm.iter().copied().collect()
    };
    for (&i, r) in first.iter().zip(confirm_first(&cands, &first, &mut paused, o.jobs)?) {
        per[i].push(r?);
    }
    // Kept but not confirmed (ranked between the final cut and the screening's bound): no longer needed.
    drop(paused);
    // Until the leaders by mean all have every seed: a leader that a later seed drops (a constraint) or demotes
    // lets the next one in, which then runs its seeds too.
    loop {
        let race = race_leaders(&confirm, &per, n_mandatory, o);
        if race.is_empty() {
            break;
        }
        let mut runs: Vec<Scenario> = Vec::new();
        let mut owner: Vec<usize> = Vec::new();
        for &i in &race {
            let c = &cands[i];
            for k in per[i].len() as u32..o.seeds {
                runs.push(load(c, &[format!("seed={}", c.scenario.seed + u64::from(k))])?);
                owner.push(i);
            }
        }
        let results = simulate_all(&runs, o.jobs)?;
        for (i, r) in owner.into_iter().zip(results) {
            per[i].push(r?);
        }
    }
    let mut confirmed_rows = Vec::new();
    let mut screened_rows = Vec::new();
    let mut cands: Vec<Option<Candidate>> = cands.into_iter().map(Some).collect();
    for (i, s) in survivors {
        let c = cands[i].take().expect("each candidate once");
        let row = |summaries: &[Summary], screened_only: bool| {
            let tps: Vec<f64> = summaries.iter().map(|s| s.tokens_per_s).collect();
            Row {
                sets: c.sets.clone(),
                labels: c.labels.clone(),
                resolved_toml: c.scenario.resolved_toml(),
                summary: summaries[0].clone(),
                screened_only,
                seeds: summaries.len() as u32,
                tokens_per_s_mean: tps.iter().sum::<f64>() / tps.len() as f64,
                tokens_per_s_min: tps.iter().copied().fold(f64::INFINITY, f64::min),
                tokens_per_s_max: tps.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                max_staleness: summaries.iter().map(|s| s.max_staleness).max().unwrap_or(0),
                off_policy_token_fraction: summaries.iter().map(|s| s.off_policy_token_fraction).fold(0.0, f64::max),
            }
        };
        if confirm.contains(&i) {
            let r = row(&per[i], false);
            match breaks(o, r.max_staleness, r.off_policy_token_fraction) {
                Some(why) => reject(why, &c, i < n_mandatory),
                None => confirmed_rows.push(r),
            }
        } else {
            screened_rows.push(row(std::slice::from_ref(&s), true));
        }
    }
    let confirmed = confirmed_rows.len();
    // Those run on every seed (all of them with one seed).
    let seeded = confirmed_rows.iter().filter(|r| r.seeds == o.seeds.max(1)).count();
    confirmed_rows.sort_by(|a, b| b.tokens_per_s_mean.total_cmp(&a.tokens_per_s_mean));
    // Already in screening order; a stable sort keeps it.
    confirmed_rows.extend(screened_rows);
    if confirmed_rows.is_empty() {
        bail!(
            "no configuration within the limits ({over_staleness} over --max-staleness, {over_off_policy} over \
             --max-off-policy, of {screened} tried)"
        );
    }
    Ok(Outcome {
        rows: confirmed_rows,
        screened,
        confirmed,
        seeded,
        screen_steps,
        steps,
        seeds: o.seeds,
        over_staleness,
        over_off_policy,
        dropped_mandatory,
    })
}

/// The best's lead over the second: the gap against the seeds' spread of the two (the larger range).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Margin {
    pub runner_up: String,
    pub gap_tokens_per_s: f64,
    /// best / runner-up − 1.
    pub gain: f64,
    /// Both were confirmed (not only screened), each on this many seeds at least.
    pub seeds: u32,
    /// The larger seed range of the two (0 when either was only screened).
    pub spread_tokens_per_s: f64,
    /// Both confirmed, and their seed ranges overlap or the gap is smaller than the spread: the order may not hold
    /// on other seeds.
    pub within_noise: bool,
}

impl Margin {
    fn line(&self) -> String {
        let judged = if self.seeds < 2 {
            "not judged against noise (one seed; --seeds 3 tells)".to_string()
        } else if self.within_noise {
            format!("within the seeds' spread of {:.0} tokens/s: not a reliable lead", self.spread_tokens_per_s)
        } else {
            format!("beyond the seeds' spread of {:.0} tokens/s", self.spread_tokens_per_s)
        };
        format!(
            "margin over the runner-up ({}): {:+.1} % ({:.0} tokens/s), {judged}",
            short(&self.runner_up),
            100.0 * self.gain,
            self.gap_tokens_per_s
        )
    }
}

/// How far the best leads the second (none with fewer than two rows); the one judgement of "within noise" that the
/// margin line, `--json` and the noise warning share.
pub fn runner_up_margin(rows: &[Row]) -> Option<Margin> {
    let (a, b) = match rows {
        [a, b, ..] => (a, b),
        _ => return None,
    };
    let confirmed = !a.screened_only && !b.screened_only;
    let spread = if confirmed {
        (a.tokens_per_s_max - a.tokens_per_s_min).max(b.tokens_per_s_max - b.tokens_per_s_min)
    } else {
        0.0
    };
    let gap = a.tokens_per_s_mean - b.tokens_per_s_mean;
    let overlap = b.tokens_per_s_max >= a.tokens_per_s_min && a.tokens_per_s_max >= b.tokens_per_s_min;
    Some(Margin {
        runner_up: b.config(),
        gap_tokens_per_s: gap,
        gain: if b.tokens_per_s_mean > 0.0 { a.tokens_per_s_mean / b.tokens_per_s_mean - 1.0 } else { 0.0 },
        seeds: if confirmed { a.seeds.min(b.seeds) } else { 1 },
        spread_tokens_per_s: spread,
        within_noise: confirmed && (overlap || gap < spread),
    })
}

/// The line warning that the top two confirmed configurations are within noise, if they are (see
/// [`runner_up_margin`]), or tie on every seed.
pub fn noise_warning(rows: &[Row]) -> Option<String> {
    let m = runner_up_margin(rows)?;
    let (a, b) = (&rows[0], &rows[1]);
    if !m.within_noise {
        return None;
    }
    if a.tokens_per_s_min == b.tokens_per_s_min && a.tokens_per_s_max == b.tokens_per_s_max && m.gap_tokens_per_s == 0.0
    {
        return Some(format!(
            "warning: the top two tie on every seed: {} and {} (the knobs that differ change nothing here)\n",
            short(&a.config()),
            short(&b.config())
        ));
    }
    Some(format!(
        "warning: the top two are within noise: {} and {} differ by {:.0} tokens/s ({:.1} %) while their \
         seeds spread over up to {:.0} tokens/s; more --seeds (or either of them) will do\n",
        short(&a.config()),
        short(&b.config()),
        m.gap_tokens_per_s,
        100.0 * m.gain,
        m.spread_tokens_per_s
    ))
}

fn short(config: &str) -> String {
    config.replace("pipeline.", "").replace("disaggregated.", "")
}

/// The search.csv columns. `tokens_per_s` is the figure a row is ranked by: the mean over its seeds when confirmed,
/// the screening run's figure when `screened_only`.
pub const CSV_COLUMNS: &[&str] = &[
    "rank",
    "configuration",
    "pipeline",
    "tokens_per_s",
    "mean_step_s",
    "max_staleness",
    "bubble_fraction",
    "usd_per_million_trained_tokens",
    "screened_only",
    "seeds",
    "tokens_per_s_mean",
    "tokens_per_s_min",
    "tokens_per_s_max",
    "off_policy_token_fraction",
    "labels",
    "bottleneck",
    "verdict",
];

/// Writes search.csv and top-N.toml into `dir`; returns the text to print on stdout (the table with the top `top`
/// rows and every input/default row beyond them, the best's margin over the input scenario, the dropped mandatory
/// configurations, the model's error); the noise warning (`noise_warning`) goes to stderr.
pub fn write(dir: &Path, out: &Outcome, top: usize) -> Result<String> {
    let mut w = csv::Writer::from_path(dir.join("search.csv"))?;
    w.write_record(CSV_COLUMNS)?;
    let best = out.rows[0].tokens_per_s_mean;
    let mut table = Vec::new();
    for (i, r) in out.rows.iter().enumerate() {
        let s = &r.summary;
        let config = r.config();
        w.write_record([
            (i + 1).to_string(),
            config.clone(),
            s.pipeline.clone(),
            r.tokens_per_s_mean.to_string(),
            s.mean_step_s.to_string(),
            r.max_staleness.to_string(),
            s.bubble_fraction.to_string(),
            s.usd_per_million_trained_tokens.to_string(),
            r.screened_only.to_string(),
            r.seeds.to_string(),
            r.tokens_per_s_mean.to_string(),
            r.tokens_per_s_min.to_string(),
            r.tokens_per_s_max.to_string(),
            r.off_policy_token_fraction.to_string(),
            r.labels.join("; "),
            s.bottleneck.clone(),
            s.verdict.clone(),
        ])?;
        if i < top {
            let kind = if r.screened_only {
                format!("screened only ({} steps, 1 seed)", out.screen_steps)
            } else {
                format!("mean of {} seeds", r.seeds)
            };
            std::fs::write(
                dir.join(format!("top-{}.toml", i + 1)),
                format!("# rank {} of `rlsim search` ({kind}): {config}\n{}", i + 1, r.resolved_toml),
            )?;
        }
        if i < top || !r.labels.is_empty() {
            let mut note: Vec<String> = r.labels.clone();
            if r.screened_only {
                note.push(format!("screened only, {} steps", out.screen_steps));
            }
            if i >= top {
                note.push("outside the top".into());
            }
            table.push(vec![
                (i + 1).to_string(),
                short(&config),
                format!("{:.0}", r.tokens_per_s_mean),
                if r.seeds > 1 { format!("{:.0}–{:.0}", r.tokens_per_s_min, r.tokens_per_s_max) } else { "-".into() },
                format!("{:.2}x", r.tokens_per_s_mean / best),
                format!("{:.2}", s.mean_step_s),
                r.max_staleness.to_string(),
                format!("{:.2}", r.off_policy_token_fraction),
                format!("{:.2}", s.usd_per_million_trained_tokens),
                s.bottleneck.clone(),
                note.join("; "),
            ]);
        }
    }
    w.flush()?;
    let mut text = reports::text_table(
        &[
            "rank",
            "configuration",
            "tokens/s",
            "seed range",
            "vs best",
            "step s",
            "staleness",
            "off-policy",
            "$/M tok",
            "bottleneck",
            "note",
        ],
        &table,
    );
    let b = &out.rows[0];
    match out.rows.iter().find(|r| r.sets.is_empty()) {
        Some(input) if std::ptr::eq(input, b) => {
            text += &format!("best: the input scenario itself ({:.0} tokens/s)\n", b.tokens_per_s_mean)
        }
        Some(input) => {
            text += &format!(
                "best: {} at {:.0} tokens/s, {:+.1} % over the input scenario ({:.0} tokens/s)\n",
                short(&b.config()),
                b.tokens_per_s_mean,
                100.0 * (b.tokens_per_s_mean / input.tokens_per_s_mean - 1.0),
                input.tokens_per_s_mean
            )
        }
        None => text += &format!("best: {} at {:.0} tokens/s\n", short(&b.config()), b.tokens_per_s_mean),
    }
    if let Some(m) = runner_up_margin(&out.rows) {
        text += &format!("{}\n", m.line());
    }
    text += &format!("why: {}\n", b.summary.verdict);
    for d in &out.dropped_mandatory {
        text += &format!("dropped: {d}\n");
    }
    text += &rlsim_sim::fidelity::model_error_note();
    text.push('\n');
    Ok(text)
}

/// One ranked configuration in `search --json`: search.csv's columns, labels as a list.
#[derive(serde::Serialize)]
pub struct RowJson {
    pub rank: usize,
    pub configuration: String,
    /// The `--set` overrides that make it (none for the input scenario).
    pub sets: Vec<String>,
    pub labels: Vec<String>,
    pub pipeline: String,
    pub tokens_per_s: f64,
    pub mean_step_s: f64,
    pub max_staleness: u32,
    pub bubble_fraction: f64,
    pub usd_per_million_trained_tokens: f64,
    pub screened_only: bool,
    pub seeds: u32,
    pub tokens_per_s_min: f64,
    pub tokens_per_s_max: f64,
    pub off_policy_token_fraction: f64,
    pub bottleneck: String,
    /// Its `top-N.toml`, when it is in the top written.
    pub file: Option<std::path::PathBuf>,
}

/// The recommendation: the best configuration, its file, and its margin over the input scenario.
#[derive(serde::Serialize)]
pub struct BestJson {
    pub configuration: String,
    pub tokens_per_s: f64,
    pub file: std::path::PathBuf,
    pub input_tokens_per_s: Option<f64>,
    /// (best / input − 1): 0 when the input scenario is the best.
    pub gain_over_input: Option<f64>,
    /// What bounds it (`rollout`, `rollout-tail`, `train`, `reward`, `sync-switch`, `balanced`) and the sentence why.
    pub bottleneck: String,
    pub verdict: String,
    /// Its lead over the second configuration, against the seeds' spread.
    pub margin_over_runner_up: Option<Margin>,
}

/// `search --json`.
#[derive(serde::Serialize)]
pub struct SearchJson {
    pub rows: Vec<RowJson>,
    pub best: BestJson,
    pub summary: String,
    pub total: usize,
    pub infeasible: usize,
    pub screened: usize,
    pub confirmed: usize,
    pub seeded: usize,
    pub screen_steps: u32,
    pub steps: u32,
    pub seeds: u32,
    pub over_staleness: usize,
    pub over_off_policy: usize,
    pub dropped: Vec<String>,
    pub noise_warning: Option<String>,
    pub out: std::path::PathBuf,
}

/// The ranked candidates and the recommendation as JSON; `dir` is the committed output folder, `summary` the line
/// printed about what was simulated.
pub fn json(
    out: &Outcome,
    top: usize,
    dir: &Path,
    total: usize,
    infeasible: usize,
    summary: &str,
) -> Result<SearchJson> {
    let rows: Vec<RowJson> = out
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| RowJson {
            rank: i + 1,
            configuration: r.config(),
            sets: r.sets.clone(),
            labels: r.labels.clone(),
            pipeline: r.summary.pipeline.clone(),
            tokens_per_s: r.tokens_per_s_mean,
            mean_step_s: r.summary.mean_step_s,
            max_staleness: r.max_staleness,
            bubble_fraction: r.summary.bubble_fraction,
            usd_per_million_trained_tokens: r.summary.usd_per_million_trained_tokens,
            screened_only: r.screened_only,
            seeds: r.seeds,
            tokens_per_s_min: r.tokens_per_s_min,
            tokens_per_s_max: r.tokens_per_s_max,
            off_policy_token_fraction: r.off_policy_token_fraction,
            bottleneck: r.summary.bottleneck.clone(),
            file: (i < top).then(|| dir.join(format!("top-{}.toml", i + 1))),
        })
        .collect();
    let b = out.rows.first().context("no configuration ranked")?;
    let input = out.rows.iter().find(|r| r.sets.is_empty()).map(|r| r.tokens_per_s_mean);
    Ok(SearchJson {
        best: BestJson {
            configuration: b.config(),
            tokens_per_s: b.tokens_per_s_mean,
            file: dir.join("top-1.toml"),
            input_tokens_per_s: input,
            gain_over_input: input.filter(|x| *x > 0.0).map(|x| b.tokens_per_s_mean / x - 1.0),
            bottleneck: b.summary.bottleneck.clone(),
            verdict: b.summary.verdict.clone(),
            margin_over_runner_up: runner_up_margin(&out.rows),
        },
        rows,
        summary: summary.to_string(),
        total,
        infeasible,
        screened: out.screened,
        confirmed: out.confirmed,
        seeded: out.seeded,
        screen_steps: out.screen_steps,
        steps: out.steps,
        seeds: out.seeds,
        over_staleness: out.over_staleness,
        over_off_policy: out.over_off_policy,
        dropped: out.dropped_mandatory.clone(),
        noise_warning: noise_warning(&out.rows).map(|w| w.trim_end().to_string()),
        out: dir.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fair_shares_fill_small_parts_and_split_the_rest() {
        assert_eq!(fair_shares(&[4, 100, 100, 30, 10], 58), vec![4, 15, 15, 14, 10]);
        assert_eq!(fair_shares(&[4, 100, 100, 30, 10], 0), vec![0; 5]);
        assert_eq!(fair_shares(&[1, 1], 10), vec![1, 1]);
        assert_eq!(fair_shares(&[5, 5, 5], 4), vec![2, 1, 1]);
        let s = fair_shares(&[3, 50, 200, 7, 0], 40);
        assert_eq!(s.iter().sum::<usize>(), 40);
        assert_eq!(s, fair_shares(&[3, 50, 200, 7, 0], 40), "deterministic");
    }

    #[test]
    fn spread_order_is_a_permutation_covering_the_ends_early() {
        for n in 0..40 {
            let o = spread_order(n);
            let mut sorted = o.clone();
            sorted.sort();
            assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "n = {n}");
        }
        assert_eq!(spread_order(8)[..4], [4, 2, 6, 1]);
        assert_eq!(spread_order(1), [0]);
    }

    /// The race gives every seed to the mandatory configurations and to the leaders by mean (the best max(top, 3)
    /// within the constraints, and any within 5 % of the last), and to nothing else; a leader that later seeds
    /// demote lets the next one in.
    #[test]
    fn the_race_seeds_the_mandatory_and_the_leaders_by_mean() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
        let s = Scenario::load(&path, &["workload.steps=1".to_string()]).unwrap();
        let base = rlsim_sim::simulator::simulate(&s).unwrap().report.summary;
        let run = |tokens_per_s: f64, max_staleness: u32| Summary { tokens_per_s, max_staleness, ..base.clone() };
        let o = Options { screen_steps: None, seeds: 3, top: 3, max_staleness: Some(1), max_off_policy: None, jobs: 1 };
        // 0 is mandatory; 6 breaks the staleness bound; 4 is within 5 % of the third leader (3), 5 is not.
        let mut per: Vec<Vec<Summary>> =
            [(10.0, 0), (100.0, 0), (99.0, 0), (98.0, 0), (96.0, 1), (92.0, 0), (200.0, 2)]
                .iter()
                .map(|&(t, m)| vec![run(t, m)])
                .collect();
        let confirm: BTreeSet<usize> = (0..per.len()).collect();
        assert_eq!(race_leaders(&confirm, &per, 1, &o), vec![0, 1, 2, 3, 4]);
        for i in [0, 2, 3, 4] {
            let first = per[i][0].clone();
            per[i].extend([first.clone(), first]);
        }
        // 1's later seeds pull its mean to 66.7: 5 (92) is now within 5 % of the third leader (4, at 96).
        per[1].extend([run(50.0, 0), run(50.0, 0)]);
        assert_eq!(race_leaders(&confirm, &per, 1, &o), vec![5]);
        per[5].extend([run(92.0, 0), run(92.0, 0)]);
        assert!(race_leaders(&confirm, &per, 1, &o).is_empty());
        // One seed: nothing to race.
        assert!(race_leaders(&confirm, &per, 1, &Options { seeds: 1, ..o }).is_empty());
    }

    /// The budget split is deterministic and fair: the same picks twice, the input scenario and the defaults first,
    /// every type with configurations left gets some, and the budget is kept.
    #[test]
    fn select_is_deterministic_and_gives_every_type_a_share() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
        let base = vec!["workload.steps=2".to_string()];
        let names = |(c, _): (Vec<Candidate>, Option<String>)| c.iter().map(Candidate::config).collect::<Vec<_>>();
        let a = names(select(candidates(&path, &base, None).unwrap(), 20));
        let b = names(select(candidates(&path, &base, None).unwrap(), 20));
        assert_eq!(a, b);
        assert_eq!(a.len(), 20);
        assert_eq!(a[0], INPUT_LABEL);
        for kind in PIPELINE_TYPES {
            assert!(a.iter().any(|c| c.starts_with(&format!("pipeline.type={kind}"))), "{kind}: {a:?}");
        }
        // quickstart is colocated tp=1: the colocated default is the input scenario itself, not tried twice.
        assert!(!a.contains(&"pipeline.type=colocated".to_string()), "{a:?}");
        let picked_async: Vec<&String> = a.iter().filter(|c| c.contains("type=async ")).collect();
        assert!(picked_async.len() >= 3, "{a:?}");
        // A budget below the mandatory configurations is raised, and said.
        let (c, note) = select(candidates(&path, &base, None).unwrap(), 2);
        let n = c.len();
        assert!(n >= 4 && note.unwrap().contains(&format!("raised to {n}")));
    }
}
