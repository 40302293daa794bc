//! `[training]`: the trainer's settings, and what they need of the cluster and the workload.

use crate::cluster::Cluster;
use crate::framework::FrameworkSpec;
use crate::model::ModelSpec;
use crate::scenario::check::{Check, MAX_MEMORY_GB};

/// Most tokens per micro-batch per GPU.
const MAX_MICRO_BATCH_TOKENS: u32 = 100_000_000;
use crate::scenario::{LogProbPass, RawScenario, RawTraining, ScenarioError, TrainingSpec};
use crate::workload::WorkloadSpec;

pub(super) fn validate_training(
    t: &RawTraining,
    fw: &FrameworkSpec,
    c: &Check,
    resolved: &mut RawScenario,
) -> Result<TrainingSpec, ScenarioError> {
    let src = c.src;
    let optimizer = t.optimizer.clone().unwrap_or_else(|| "adamw".into());
    let optimizer_bytes_per_param = match optimizer.as_str() {
        "adamw" => 12.0,
        "sgd" => 8.0,
        other => {
            return Err(
                src.error("training.optimizer", format!("unknown optimizer {other:?}; expected \"adamw\" or \"sgd\""))
            )
        }
    };
    let passes_raw = t.logprob_passes.clone().unwrap_or_else(|| vec!["old".into(), "reference".into()]);
    let mut logprob_passes = Vec::new();
    for (i, p) in passes_raw.iter().enumerate() {
        logprob_passes.push(match p.as_str() {
            "old" => LogProbPass::Old,
            "reference" => LogProbPass::Reference,
            other => {
                return Err(src.error(
                    &format!("training.logprob_passes[{i}]"),
                    format!("unknown pass {other:?}; expected \"old\" or \"reference\""),
                ))
            }
        });
    }
    let mut training = TrainingSpec {
        mfu: c.fraction(t.mfu, "training.mfu", fw.mfu, "model FLOPs utilisation of training")?,
        micro_batch_tokens: c.count_max(
            t.micro_batch_tokens,
            "training.micro_batch_tokens",
            Some(16_384),
            MAX_MICRO_BATCH_TOKENS,
            "tokens per micro-batch per GPU",
        )?,
        micro_batch_overhead_s: c.number(
            t.micro_batch_overhead_ms,
            "training.micro_batch_overhead_ms",
            fw.micro_batch_overhead_ms,
            0.0,
            60_000.0,
            "milliseconds",
        )? / 1e3,
        logprob_passes,
        optimizer,
        optimizer_bytes_per_param,
        activation_reserve_gb: c.number(
            t.activation_reserve_gb,
            "training.activation_reserve_gb",
            8.0,
            0.0,
            MAX_MEMORY_GB,
            "GB",
        )?,
        mini_batches: c.count(t.mini_batches, "training.mini_batches", Some(1), "optimizer steps per RL step")?,
        model_parallel_gpus: c.count_max(
            t.model_parallel_gpus,
            "training.model_parallel_gpus",
            Some(1),
            1 << 20,
            "GPUs that process one sequence together",
        )?,
        tensor_parallel: c.count_max(
            t.tensor_parallel,
            "training.tensor_parallel",
            Some(1),
            1 << 20,
            "GPUs that split each layer's matmuls",
        )?,
        expert_parallel: c.count_max(
            t.expert_parallel,
            "training.expert_parallel",
            Some(1),
            1 << 20,
            "GPUs an MoE layer's experts are spread over",
        )?,
        pipeline_parallel: c.count_max(
            t.pipeline_parallel,
            "training.pipeline_parallel",
            Some(1),
            1 << 20,
            "pipeline stages of a model-parallel group",
        )?,
        logprob_micro_batch_tokens: 0,
        gradient_checkpointing: t.gradient_checkpointing.unwrap_or(fw.gradient_checkpointing),
        fsdp_size: match t.fsdp_size {
            None => 0,
            some => c.count_max(
                some,
                "training.fsdp_size",
                None,
                1 << 20,
                "GPUs one copy of the training state is sharded over",
            )?,
        },
    };
    if !training.model_parallel_gpus.is_multiple_of(training.tensor_parallel) {
        return Err(c.src.error(
            "training.tensor_parallel",
            format!(
                "{} tensor-parallel GPUs must divide training.model_parallel_gpus = {} (the GPUs that process one \
                 sequence together, tensor parallelism among them)",
                training.tensor_parallel, training.model_parallel_gpus
            ),
        ));
    }
    let split = training.tensor_parallel as u64 * training.pipeline_parallel as u64;
    if !(training.model_parallel_gpus as u64).is_multiple_of(split) {
        return Err(c.src.error(
            "training.pipeline_parallel",
            format!(
                "{} pipeline stages × {} tensor-parallel GPUs must divide training.model_parallel_gpus = {}",
                training.pipeline_parallel, training.tensor_parallel, training.model_parallel_gpus
            ),
        ));
    }
    training.logprob_micro_batch_tokens = c.count_max(
        t.logprob_micro_batch_tokens,
        "training.logprob_micro_batch_tokens",
        Some(training.micro_batch_tokens),
        MAX_MICRO_BATCH_TOKENS,
        "tokens per micro-batch per GPU of the log-prob passes",
    )?;
    resolved.training = RawTraining {
        mfu: Some(training.mfu),
        micro_batch_tokens: Some(training.micro_batch_tokens),
        micro_batch_overhead_ms: Some(training.micro_batch_overhead_s * 1e3),
        logprob_passes: Some(passes_raw),
        optimizer: Some(training.optimizer.clone()),
        activation_reserve_gb: Some(training.activation_reserve_gb),
        mini_batches: Some(training.mini_batches),
        model_parallel_gpus: Some(training.model_parallel_gpus),
        tensor_parallel: Some(training.tensor_parallel),
        expert_parallel: Some(training.expert_parallel),
        pipeline_parallel: Some(training.pipeline_parallel),
        logprob_micro_batch_tokens: Some(training.logprob_micro_batch_tokens),
        gradient_checkpointing: Some(training.gradient_checkpointing),
        fsdp_size: (training.fsdp_size > 0).then_some(training.fsdp_size),
    };
    Ok(training)
}

/// `model_parallel_gpus` must divide the train GPUs; `expert_parallel` needs an MoE model whose experts it divides,
/// and must divide the train GPUs.
pub(super) fn check_model_parallel(
    training: &TrainingSpec,
    model: &ModelSpec,
    cluster: &Cluster,
    c: &Check,
) -> Result<(), ScenarioError> {
    let train_gpus: u32 = cluster.with_tag("train").map(|w| w.gpu_count()).sum();
    let fsdp = training.fsdp_size;
    if fsdp > 0 && (training.tensor_parallel * training.pipeline_parallel > 1 || training.expert_parallel > 1) {
        return Err(c.src.error(
            "training.fsdp_size",
            "hybrid FSDP sharding is for data-parallel (FSDP) trainers; with tensor, pipeline or expert parallelism the model-parallel split already divides the state (verl's Megatron workers have no fsdp_size): leave it out".to_string(),
        ));
    }
    if fsdp > 0 && train_gpus > 0 && (fsdp > train_gpus || !train_gpus.is_multiple_of(fsdp)) {
        return Err(c.src.error(
            "training.fsdp_size",
            format!("{fsdp} GPUs per copy of the sharded training state must divide the {train_gpus} train GPUs (the copies replicate over the rest)"),
        ));
    }
    let per_rank = training.model_parallel_gpus;
    if train_gpus > 0 && (per_rank > train_gpus || !train_gpus.is_multiple_of(per_rank)) {
        return Err(c.src.error(
            "training.model_parallel_gpus",
            format!(
                "{per_rank} GPUs per sequence must divide the {train_gpus} train GPUs (data-parallel ranks = train GPUs / this)"
            ),
        ));
    }
    let ep = training.expert_parallel;
    if ep > 1 {
        let problem = if !model.is_moe() {
            Some("the model is dense (model.experts = 0): expert parallelism needs an MoE model".to_string())
        } else if !model.experts.is_multiple_of(ep) {
            Some(format!("{ep} GPUs must divide the model's {} experts", model.experts))
        } else if train_gpus > 0 && (ep > train_gpus || !train_gpus.is_multiple_of(ep)) {
            Some(format!("{ep} GPUs must divide the {train_gpus} train GPUs"))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(c
                .src
                .error("training.expert_parallel", format!("expected 1 or a valid expert-parallel size: {problem}")));
        }
    }
    Ok(())
}

/// A step cannot have more optimizer steps than samples.
pub(super) fn check_mini_batches(
    training: &TrainingSpec,
    workload: &WorkloadSpec,
    c: &Check,
) -> Result<(), ScenarioError> {
    let samples_per_step = workload.prompts_per_step as u64 * workload.samples_per_prompt as u64;
    if training.mini_batches as u64 > samples_per_step {
        return Err(c.src.error(
            "training.mini_batches",
            format!(
                "{} optimizer steps per RL step is more than the {samples_per_step} samples a step trains on",
                training.mini_batches
            ),
        ));
    }
    Ok(())
}
