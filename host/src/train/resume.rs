//! Resumable checkpoints under `OUT/checkpoints/`: `step-NNNNNNNN/` holds the model (HF
//! LLaVA layout, loadable as is), `optimizer.safetensors` (AdamW moments by tensor key) and
//! `state.json` (step, schedule, reader position, settings); `latest` names the newest.
//! Each is written under a `.tmp` name and renamed into place, and `latest` is replaced
//! atomically, so a kill during a save leaves the previous checkpoint in charge.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::TrainError;
use super::checkpoint;
use super::data::ReaderState;
use super::trainer::{TrainConfig, Trainer};

/// Settings that must not change across a resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunKey {
    /// Stage name.
    pub stage: String,
    /// Total optimizer steps (the schedule depends on it).
    pub steps: usize,
    /// Samples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per step.
    pub grad_accum: usize,
    /// Seed (model and shuffle).
    pub seed: i64,
    /// Shuffle buffer size.
    pub shuffle_buffer: usize,
    /// Steps batched by length together (1: none).
    #[serde(default = "one")]
    pub length_group: usize,
}

fn one() -> usize {
    1
}

impl RunKey {
    /// The key of a config.
    pub fn of(cfg: &TrainConfig) -> Self {
        Self {
            stage: cfg.stage.to_string(),
            steps: cfg.steps,
            batch_size: cfg.batch_size,
            grad_accum: cfg.grad_accum,
            seed: cfg.seed,
            shuffle_buffer: cfg.shuffle_buffer,
            length_group: cfg.length_group.max(1),
        }
    }
}

/// `state.json` of a resumable checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    /// Optimizer steps taken.
    pub step: usize,
    /// AdamW updates taken (bias correction).
    pub adam_t: u64,
    /// Samples truncated so far.
    pub truncated: usize,
    /// Where the data reader stands (before the current length group when `group_done`
    /// is not 0).
    pub reader: ReaderState,
    /// Steps of the current length group already taken.
    #[serde(default)]
    pub group_done: usize,
    /// Settings the run must keep.
    pub key: RunKey,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |e| TrainError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// The newest complete checkpoint under `dir` (`OUT/checkpoints`), if any.
pub fn latest(dir: &Path) -> Result<Option<PathBuf>, TrainError> {
    let file = dir.join("latest");
    if !file.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&file).map_err(io(&file))?;
    let ckpt = dir.join(name.trim());
    if !ckpt.join("state.json").exists() {
        return Err(TrainError::Config(format!(
            "{} names {}, which is not a complete checkpoint",
            file.display(),
            ckpt.display()
        )));
    }
    Ok(Some(ckpt))
}

/// Reads `state.json` of a checkpoint.
pub fn load_state(ckpt: &Path) -> Result<RunState, TrainError> {
    let file = ckpt.join("state.json");
    let text = std::fs::read_to_string(&file).map_err(io(&file))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Config(format!("{}: {e}", file.display())))
}

/// Saves a resumable checkpoint of `trainer` at its current step into `dir`, makes it the
/// latest and removes older ones; `reader` is where the data stands, `group_done` the steps
/// taken past it (inside a length group). Returns its folder.
pub fn save(
    dir: &Path,
    trainer: &Trainer,
    reader: ReaderState,
    group_done: usize,
) -> Result<PathBuf, TrainError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = format!("step-{:08}", trainer.step);
    let tmp = dir.join(format!("{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    checkpoint::save(&trainer.params.all, trainer.side_files(), &tmp)?;
    let (m, v) = trainer.optimizer().moments();
    let keys: Vec<&str> = trainer.params.trainable().map(|p| p.key.as_str()).collect();
    let mut named: Vec<(String, Tensor)> = Vec::new();
    for ((k, m), v) in keys.iter().zip(m).zip(v) {
        named.push((format!("m.{k}"), m.to_device(tch::Device::Cpu)));
        named.push((format!("v.{k}"), v.to_device(tch::Device::Cpu)));
    }
    let opt_file = tmp.join("optimizer.safetensors");
    Tensor::write_safetensors(&named, &opt_file).map_err(|e| TrainError::Save {
        file: opt_file.clone(),
        msg: e.to_string(),
    })?;
    let state = RunState {
        step: trainer.step,
        adam_t: trainer.optimizer().t,
        truncated: trainer.truncated,
        reader,
        group_done,
        key: RunKey::of(trainer.config()),
    };
    let state_file = tmp.join("state.json");
    std::fs::write(
        &state_file,
        serde_json::to_string_pretty(&state).expect("state serialises"),
    )
    .map_err(io(&state_file))?;
    let dst = dir.join(&name);
    if dst.exists() {
        std::fs::remove_dir_all(&dst).map_err(io(&dst))?;
    }
    std::fs::rename(&tmp, &dst).map_err(io(&dst))?;
    let latest_tmp = dir.join("latest.tmp");
    std::fs::write(&latest_tmp, &name).map_err(io(&latest_tmp))?;
    std::fs::rename(&latest_tmp, dir.join("latest")).map_err(io(&latest_tmp))?;
    for e in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("step-") && n != name {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    tracing::info!(checkpoint = %dst.display(), step = trainer.step, "saved resumable checkpoint");
    Ok(dst)
}

/// Restores the optimizer moments and counters of `ckpt` into `trainer` (whose weights
/// were loaded from `ckpt`), after checking the run's settings match.
pub fn restore(trainer: &mut Trainer, ckpt: &Path, state: &RunState) -> Result<(), TrainError> {
    let now = RunKey::of(trainer.config());
    if now != state.key {
        return Err(TrainError::Config(format!(
            "cannot resume from {}: it was saved with {:?}, this run has {:?} (use a new --out or the same settings)",
            ckpt.display(),
            state.key,
            now
        )));
    }
    let file = ckpt.join("optimizer.safetensors");
    let saved = Tensor::read_safetensors(&file).map_err(|e| TrainError::Save {
        file: file.clone(),
        msg: e.to_string(),
    })?;
    let get = |name: String| {
        saved
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, t)| t.shallow_clone())
            .ok_or_else(|| TrainError::Config(format!("{}: no tensor {name}", file.display())))
    };
    let keys: Vec<String> = trainer.params.trainable().map(|p| p.key.clone()).collect();
    let m = keys
        .iter()
        .map(|k| get(format!("m.{k}")))
        .collect::<Result<Vec<_>, _>>()?;
    let v = keys
        .iter()
        .map(|k| get(format!("v.{k}")))
        .collect::<Result<Vec<_>, _>>()?;
    trainer
        .optimizer_mut()
        .restore(state.adam_t, &m, &v)
        .map_err(|msg| TrainError::Config(format!("{}: {msg}", file.display())))?;
    trainer.step = state.step;
    trainer.truncated = state.truncated;
    Ok(())
}
