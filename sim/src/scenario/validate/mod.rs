//! Validation of a raw scenario into a `Scenario`, one module per section. Each section's function checks its
//! fields (each bound beside the field it guards) and fills in that section of the resolved copy.

mod cluster;
mod exec;
mod failures;
mod framework;
mod hardware;
mod limits;
mod memory;
mod model;
mod pipeline;
mod published;
mod rollout;
mod training;
mod workload;

use super::check::Check;
use super::locate::Source;
use super::{RawScenario, Scenario, ScenarioError};

pub use limits::{DEFAULT_MAX_TRAJECTORIES, DEFAULT_MAX_TRAJECTORIES_PER_STEP};

pub(super) fn validate(raw: RawScenario, src: &Source) -> Result<Scenario, ScenarioError> {
    let c = Check { src };
    let mut resolved = raw.clone();
    let (name, seed) = validate_top_level(&raw, &c, &mut resolved)?;

    let model = model::validate_model(&raw.model, &c)?;
    resolved.model = model::resolved_model(&raw.model, &model);
    let shape = cluster::validate_shape(&raw.cluster, &c, &mut resolved)?;
    let framework = framework::validate_framework(&raw.framework, &c, &mut resolved)?;
    let rollout = rollout::validate_rollout(&raw.rollout, &framework, &c, &mut resolved)?;
    let training = training::validate_training(&raw.training, &framework, &c, &mut resolved)?;

    // Pipeline and layout.
    let mut pipeline = pipeline::validate_pipeline(&raw, &framework, &c)?;
    let groups = cluster::worker_groups(&raw, &shape, &rollout, &c, &mut pipeline)?;
    pipeline::resolve_pipeline(&raw, &pipeline, &mut resolved);
    let explicit = raw.cluster.workers.is_some();
    let cluster = cluster::build_cluster(&shape, &groups, pipeline.kind, pipeline.layout, &c, explicit)?;
    cluster::check_hbm_shares(&cluster, &rollout, &c)?;
    training::check_model_parallel(&training, &model, &cluster, &c)?;
    memory::check_memory(&model, &shape.gpu, &cluster, &rollout, &training, &c, explicit)?;

    let workload = workload::validate_workload(&raw.workload, &c, &mut resolved.workload)?;
    limits::check_limits(raw.limits.as_ref(), &workload, &c, &mut resolved)?;
    training::check_mini_batches(&training, &workload, &c)?;
    pipeline::check_dynamic_sampling(pipeline.kind, &workload, &c)?;
    memory::check_kv_capacity(&model, &cluster, &rollout, &workload, &c)?;

    let profile = hardware::validate_hardware(&raw.hardware, &c, &mut resolved)?;
    if profile.is_some() && rollout.speculative_tokens > 0 {
        return Err(c.src.error(
            "rollout.speculative_tokens",
            "speculative decoding is priced by the analytic cost model; a measured profile ([hardware] profile) \
             decodes one token a step: expected no profile, or no speculation",
        ));
    }
    let exec = exec::validate_exec(&raw.exec, &model, &c, &mut resolved)?;
    let failures = failures::validate_failures(raw.failures.as_ref(), &cluster, &c, &mut resolved)?;
    if let Some(p) = &raw.published {
        published::validate_published(p, &c)?;
    }

    let mut scenario = Scenario {
        framework,
        failures,
        name,
        seed,
        file: src.file.to_path_buf(),
        model,
        cluster,
        workload,
        training,
        rollout,
        pipeline,
        profile,
        exec,
        resolved,
    };
    // A coarse-grained run simulates 1/coarsen of the groups: the counts become the simulated ones.
    crate::coarsen::apply(&mut scenario).map_err(|e| c.src.error("workload.coarsen", e))?;
    Ok(scenario)
}

/// `name` and `seed`.
fn validate_top_level(
    raw: &RawScenario,
    c: &Check,
    resolved: &mut RawScenario,
) -> Result<(String, u64), ScenarioError> {
    let src = c.src;
    let name = raw
        .name
        .clone()
        .unwrap_or_else(|| src.file.file_stem().and_then(|s| s.to_str()).unwrap_or("scenario").to_string());
    // The name becomes a folder under runs/: nothing that leaves it, hides in it or garbles a terminal.
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_control)
    {
        return Err(src.error(
            "name",
            format!("expected a non-empty name without slashes, backslashes or control characters, and not `.` or `..` (it names the run folder runs/<name>), got {name:?}"),
        ));
    }
    let seed = raw.seed.unwrap_or(0);
    resolved.name = Some(name.clone());
    resolved.seed = Some(seed);
    Ok((name, seed))
}
