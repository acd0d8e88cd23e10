//! VILA's three stages in a row, from scratch: what one round of the VILA² loop calls.
//! Each stage starts from the previous stage's output folder and writes its own
//! (`OUT/align`, `OUT/pretrain`, `OUT/sft`), so a round can be inspected or resumed stage by
//! stage.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::TrainError;
use super::init::{InitSummary, ModelSpec, init_model};
use super::trainer::{RunSummary, StepStats, TrainConfig, run};

/// One stage of a recipe: its data folder and settings (`cfg.stage` names it).
#[derive(Debug, Clone)]
pub struct StagePlan {
    /// WebDataset shards (captions for align/pretrain, conversations for sft).
    pub data: PathBuf,
    /// The stage's settings.
    pub cfg: TrainConfig,
}

/// What [`train_from_scratch`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RecipeSummary {
    /// The random initial model.
    pub init: InitSummary,
    /// Each stage's output folder and summary, in order.
    pub stages: Vec<(PathBuf, RunSummary)>,
    /// The final model (the last stage's folder).
    pub model: PathBuf,
}

/// Runs `plans` in order starting from the HF LLaVA folder `init`; stage `i` writes
/// `out/<stage>` and the next starts from it. `on_step` sees the stage index and each step.
pub fn run_stages(
    init: &Path,
    out: &Path,
    plans: &[StagePlan],
    mut on_step: impl FnMut(usize, &StepStats),
) -> Result<Vec<(PathBuf, RunSummary)>, TrainError> {
    let mut from = init.to_path_buf();
    let mut done = Vec::with_capacity(plans.len());
    for (i, p) in plans.iter().enumerate() {
        let dir = out.join(p.cfg.stage.to_string());
        tracing::info!(stage = %p.cfg.stage, data = %p.data.display(), out = %dir.display(), "stage");
        let s = run(&p.data, &from, &dir, p.cfg.clone(), |s| on_step(i, s))?;
        from = dir.clone();
        done.push((dir, s));
    }
    Ok(done)
}

/// A random model from `spec` (tokenizer trained on `corpus`, weights from `seed`) in
/// `out/init`, then `plans` (typically align → pretrain → sft) via [`run_stages`].
pub fn train_from_scratch(
    spec: &ModelSpec,
    corpus: &Path,
    seed: i64,
    out: &Path,
    plans: &[StagePlan],
    on_step: impl FnMut(usize, &StepStats),
) -> Result<RecipeSummary, TrainError> {
    let init_dir = out.join("init");
    let init = init_model(spec, corpus, &init_dir, seed)?;
    let stages = run_stages(&init_dir, out, plans, on_step)?;
    let model = stages
        .last()
        .map_or(init_dir.clone(), |(dir, _)| dir.clone());
    Ok(RecipeSummary {
        init,
        stages,
        model,
    })
}
