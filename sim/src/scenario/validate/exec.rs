//! `[exec]`: settings only the real backend reads.

use crate::model::ModelSpec;
use crate::scenario::check::Check;
use crate::scenario::{ExecLengths, ExecSpec, RawExec, RawScenario, ScenarioError};

pub(super) fn validate_exec(
    e: &RawExec,
    model: &ModelSpec,
    c: &Check,
    resolved: &mut RawScenario,
) -> Result<ExecSpec, ScenarioError> {
    let src = c.src;
    let exec = ExecSpec {
        learning_rate: c.positive(e.learning_rate, "exec.learning_rate", Some(3e-3), 1.0, "AdamW learning rate")?,
        lengths: match e.lengths.as_deref().unwrap_or("trace") {
            "trace" => ExecLengths::Trace,
            "natural" => ExecLengths::Natural,
            other => {
                return Err(
                    src.error("exec.lengths", format!("unknown mode {other:?}; expected \"trace\" or \"natural\""))
                )
            }
        },
        eos_token: e.eos_token.unwrap_or(0),
        kl_coef: c.number(e.kl_coef, "exec.kl_coef", 0.0, 0.0, 100.0, "KL penalty coefficient")?,
        clip_ratio: c.number(e.clip_ratio, "exec.clip_ratio", 0.2, 0.0, 1.0, "PPO clip range")?,
        task: match e.task.as_deref().unwrap_or("even") {
            "even" => "even".to_string(),
            other => return Err(src.error("exec.task", format!("unknown task {other:?}; expected \"even\""))),
        },
    };
    if exec.eos_token >= model.vocab {
        return Err(
            src.error("exec.eos_token", format!("{} is outside the vocabulary of {}", exec.eos_token, model.vocab))
        );
    }
    resolved.exec = RawExec {
        learning_rate: Some(exec.learning_rate),
        lengths: Some(if exec.lengths == ExecLengths::Trace { "trace" } else { "natural" }.into()),
        eos_token: Some(exec.eos_token),
        kl_coef: Some(exec.kl_coef),
        clip_ratio: Some(exec.clip_ratio),
        task: Some(exec.task.clone()),
    };
    Ok(exec)
}
