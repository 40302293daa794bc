//! `[pipeline]`: the type, its layout, and each pipeline's table.

use super::cluster::explicit_workers_are_split;
use crate::framework::FrameworkSpec;
use crate::scenario::check::{Check, MAX_SECONDS};
use crate::scenario::{
    BatchOrder, Layout, LendRule, PipelineKind, PipelineSpec, RawAsync, RawColocated, RawDisaggregated, RawPartial,
    RawScenario, RawSeamless, ScenarioError, PIPELINE_TYPES,
};
use crate::workload::WorkloadSpec;

/// The pipeline's settings; `rollout_gpus` is filled in by the automatic layout.
pub(super) fn validate_pipeline(
    raw: &RawScenario,
    fw: &FrameworkSpec,
    c: &Check,
) -> Result<PipelineSpec, ScenarioError> {
    let src = c.src;
    let kind_name =
        c.require(raw.pipeline.kind.clone(), "pipeline.type", &format!("one of {}", PIPELINE_TYPES.join(", ")))?;
    let kind = PipelineKind::parse(&kind_name).ok_or_else(|| {
        src.error(
            "pipeline.type",
            format!("unknown pipeline {kind_name:?}; expected one of {}", PIPELINE_TYPES.join(", ")),
        )
    })?;
    let col = raw.pipeline.colocated.clone().unwrap_or_default();
    let asy = raw.pipeline.async_.clone().unwrap_or_default();
    let par = raw.pipeline.partial.clone().unwrap_or_default();
    let sea = raw.pipeline.seamless.clone().unwrap_or_default();
    let layout = match kind {
        PipelineKind::Colocated => Layout::TimeSliced,
        PipelineKind::Disaggregated | PipelineKind::Async => Layout::Split,
        PipelineKind::Seamless => Layout::Lendable,
        // Explicit workers say which layout they are: disjoint pools are the split layout.
        PipelineKind::Partial => match par.layout.as_deref().unwrap_or_else(|| {
            if explicit_workers_are_split(&raw.cluster.workers) {
                "disaggregated"
            } else {
                "colocated"
            }
        }) {
            "colocated" => Layout::TimeSliced,
            "disaggregated" => Layout::Split,
            other => {
                return Err(src.error(
                    "pipeline.partial.layout",
                    format!("unknown layout {other:?}; expected \"colocated\" or \"disaggregated\""),
                ))
            }
        },
    };
    let (staleness_field, staleness_raw, staleness_default) = match kind {
        PipelineKind::Seamless => ("pipeline.seamless.max_staleness", sea.max_staleness, 1.0),
        _ => ("pipeline.async.max_staleness", asy.max_staleness, 4.0),
    };
    let max_staleness =
        c.number(staleness_raw, staleness_field, staleness_default, 0.0, 1000.0, "weight syncs (at most 1000)")?;
    let steps_per_sync = match kind {
        PipelineKind::Async => c.count_max(
            asy.steps_per_sync,
            "pipeline.async.steps_per_sync",
            Some(1),
            10_000,
            "train steps per weight sync",
        )?,
        _ => 1,
    };
    let batch_order = match asy.batch_order.as_deref().unwrap_or("version") {
        "version" => BatchOrder::Version,
        "completion" => BatchOrder::Completion,
        other => {
            return Err(src.error(
                "pipeline.async.batch_order",
                format!("unknown order {other:?}; expected \"version\" or \"completion\""),
            ))
        }
    };
    // Only `async` reads its table's batch order (checked whatever the type, so `--set pipeline.type=async` works);
    // seamless keeps the strict version order.
    let batch_order = if kind == PipelineKind::Async { batch_order } else { BatchOrder::Version };
    let lend = match sea.lend.as_deref().unwrap_or("gain") {
        "gain" => LendRule::Gain,
        "always" => LendRule::Always,
        "never" => LendRule::Never,
        other => {
            return Err(src.error(
                "pipeline.seamless.lend",
                format!("unknown rule {other:?}; expected \"gain\", \"always\" or \"never\""),
            ))
        }
    };
    let seconds = |v: Option<f64>, field: &str| v.map(|v| c.seconds(Some(v), field, 0.0, "seconds")).transpose();
    let (to_train, to_rollout) = if kind == PipelineKind::Seamless {
        (seconds(sea.reclaim_s, "pipeline.seamless.reclaim_s")?, seconds(sea.lend_s, "pipeline.seamless.lend_s")?)
    } else {
        (
            seconds(col.switch_to_train_s, "pipeline.colocated.switch_to_train_s")?,
            seconds(col.switch_to_rollout_s, "pipeline.colocated.switch_to_rollout_s")?,
        )
    };
    Ok(PipelineSpec {
        kind,
        weight_sync_fixed_s: c.number(
            raw.pipeline.weight_sync_fixed_s,
            "pipeline.weight_sync_fixed_s",
            fw.weight_sync_fixed_s,
            0.0,
            MAX_SECONDS,
            "seconds",
        )?,
        weight_sync_per_tensor: raw.pipeline.weight_sync_per_tensor.unwrap_or(fw.weight_sync_per_tensor),
        switch_fixed_s: c.number(
            col.switch_fixed_s,
            "pipeline.colocated.switch_fixed_s",
            fw.switch_fixed_s,
            0.0,
            MAX_SECONDS,
            "seconds",
        )?,
        switch_to_train_s: to_train,
        switch_to_rollout_s: to_rollout,
        rollout_gpus: None,
        layout,
        max_staleness,
        steps_per_sync,
        batch_order,
        interruptible: asy.interruptible.unwrap_or(true),
        over_provision: c.number(
            par.over_provision,
            "pipeline.partial.over_provision",
            1.5,
            1.0,
            16.0,
            "a multiple of the groups trained per step",
        )?,
        lend,
        open_groups_per_engine: if kind == PipelineKind::Async { fw.stream_groups_per_engine } else { 0 },
    })
}

/// Fills in `resolved.pipeline` once the layout is known.
pub(super) fn resolve_pipeline(raw: &RawScenario, pipeline: &PipelineSpec, resolved: &mut RawScenario) {
    let layout = pipeline.layout;
    if layout != Layout::TimeSliced && raw.cluster.workers.is_none() {
        resolved.pipeline.disaggregated = Some(RawDisaggregated { rollout_gpus: pipeline.rollout_gpus });
    }
    resolved.pipeline.kind = Some(pipeline.kind.name().to_string());
    resolved.pipeline.weight_sync_fixed_s = Some(pipeline.weight_sync_fixed_s);
    resolved.pipeline.weight_sync_per_tensor = Some(pipeline.weight_sync_per_tensor);
    if layout == Layout::TimeSliced {
        resolved.pipeline.colocated = Some(RawColocated {
            switch_fixed_s: Some(pipeline.switch_fixed_s),
            switch_to_train_s: pipeline.switch_to_train_s,
            switch_to_rollout_s: pipeline.switch_to_rollout_s,
        });
    }
    let sea_lend = raw.pipeline.seamless.as_ref().and_then(|s| s.lend.clone());
    match pipeline.kind {
        PipelineKind::Async => {
            resolved.pipeline.async_ = Some(RawAsync {
                max_staleness: Some(pipeline.max_staleness),
                steps_per_sync: Some(pipeline.steps_per_sync),
                batch_order: Some(
                    if pipeline.batch_order == BatchOrder::Version { "version" } else { "completion" }.to_string(),
                ),
                interruptible: Some(pipeline.interruptible),
            })
        }
        PipelineKind::Partial => {
            resolved.pipeline.partial = Some(RawPartial {
                over_provision: Some(pipeline.over_provision),
                layout: Some(if layout == Layout::TimeSliced { "colocated" } else { "disaggregated" }.into()),
            })
        }
        PipelineKind::Seamless => {
            resolved.pipeline.seamless = Some(RawSeamless {
                max_staleness: Some(pipeline.max_staleness),
                lend: Some(sea_lend.unwrap_or_else(|| "gain".into())),
                lend_s: pipeline.switch_to_rollout_s,
                reclaim_s: pipeline.switch_to_train_s,
            })
        }
        PipelineKind::Colocated | PipelineKind::Disaggregated => {}
    }
}

/// Dynamic sampling is modelled for the synchronous pipelines only.
pub(super) fn check_dynamic_sampling(
    kind: PipelineKind,
    workload: &WorkloadSpec,
    c: &Check,
) -> Result<(), ScenarioError> {
    if workload.dynamic_sampling.is_some() && !matches!(kind, PipelineKind::Colocated | PipelineKind::Disaggregated) {
        return Err(c.src.error(
            "workload.dynamic_sampling",
            format!(
                "dynamic sampling is modelled for the synchronous pipelines (colocated, disaggregated), whose steps generate rounds until enough groups are kept; {kind} streams groups instead — remove it or pick one of those"
            ),
        ));
    }
    Ok(())
}
