//! The trainer: VILA's training stages on the engine's LLaVA model (fp32 on the CPU, bf16
//! autocast on CUDA), fed by WebDataset caption shards, saving checkpoints in the HF LLaVA
//! layout that both the engine and transformers load.
//!
//! - [`params`]: which tensors train in which stage, and their weight-decay groups.
//! - [`precision`]: fp32 or bf16 autocast.
//! - [`optim`]: AdamW, the cosine schedule with warmup, clipping by global norm.
//! - [`data`]: caption and conversation samples from WebDataset shards (read with
//!   [`crate::data::webdataset`]) through a seeded per-epoch shuffle buffer.
//! - [`checkpoint`]: saving in the HF LLaVA layout.
//! - [`compose`]: VILA's init, a pretrained LLM and vision tower with a new projector.
//! - [`init`]: a random model (and its tokenizer) from a [`init::ModelSpec`].
//! - [`length_group`]: batching the samples of several steps by token length.
//! - [`loader`]: decoding and preprocessing on a worker thread.
//! - [`recipe`]: align → pretrain → sft from scratch (one round of the loop).
//! - [`resume`]: resumable checkpoints (optimizer, step, reader position).
//! - [`trainer`]: the loop (loss, gradient accumulation, metrics log).
//! - [`vision_pretrain`]: the vision tower trained alone on labelled ShapesWorld scenes.

pub mod checkpoint;
pub mod compose;
pub mod data;
pub mod init;
pub mod length_group;
pub mod loader;
pub mod optim;
pub mod params;
pub mod precision;
pub mod recipe;
pub mod resume;
pub mod trainer;
pub mod vision_pretrain;

use std::path::PathBuf;

pub use compose::{ComposeSummary, compose};
pub use params::{Group, Stage};
pub use trainer::{TrainConfig, Trainer};

use crate::data::DataError;
use crate::vlm::VlmError;

fn good_checkpoint(c: Option<&std::path::Path>) -> String {
    match c {
        Some(p) => format!(
            "the last good checkpoint is {} (lower the learning rate and resume from it)",
            p.display()
        ),
        None => "no checkpoint was saved (use --save-every to keep one)".into(),
    }
}

/// Everything that can go wrong training; each variant names the file, shard, sample or
/// stage at fault.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Loading the model, tokenizer or image processor failed.
    #[error(transparent)]
    Model(#[from] VlmError),
    /// A file could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A data folder holds no `.tar` shard.
    #[error("no WebDataset shards (*.tar) in {0}")]
    NoShards(PathBuf),
    /// The shards hold no usable sample.
    #[error("no usable sample in the shards of {dir} ({skipped} skipped)")]
    NoSamples {
        /// The data folder.
        dir: PathBuf,
        /// Samples skipped as corrupt or incomplete.
        skipped: usize,
    },
    /// A shard is not a readable tar archive.
    #[error("shard {shard}: {msg}")]
    Shard {
        /// The shard file.
        shard: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The stage (with its frozen groups) leaves nothing to train.
    #[error("stage {stage} has no trainable parameter ({why})")]
    NothingToTrain {
        /// The stage.
        stage: Stage,
        /// Which groups it trains and which were frozen.
        why: String,
    },
    /// A sample cannot be turned into a training sequence.
    #[error("sample {key}: {msg}")]
    Sample {
        /// The sample's WebDataset key.
        key: String,
        /// What is wrong.
        msg: String,
    },
    /// A checkpoint could not be serialised.
    #[error("cannot save {file}: {msg}")]
    Save {
        /// The file being written.
        file: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// Too many samples were skipped.
    #[error(
        "{skipped} of {seen} samples in {dir} were skipped (corrupt or incomplete), more than the allowed fraction {max_fraction}"
    )]
    TooManySkipped {
        /// The data folder.
        dir: PathBuf,
        /// Samples skipped.
        skipped: usize,
        /// Samples seen.
        seen: usize,
        /// The configured limit.
        max_fraction: f64,
    },
    /// Invalid training settings.
    #[error("invalid training config: {0}")]
    Config(String),
    /// The loss (or the gradient norm) became NaN or infinite; the parameters were not
    /// updated.
    #[error("non-finite loss {loss} at step {step}; {}", good_checkpoint(.checkpoint.as_deref()))]
    NonFinite {
        /// The optimizer step.
        step: usize,
        /// The loss value.
        loss: f64,
        /// The last good resumable checkpoint, if one was saved.
        checkpoint: Option<PathBuf>,
    },
    /// A model spec is malformed or inconsistent.
    #[error("model spec {file}: {msg}")]
    Spec {
        /// The spec file.
        file: PathBuf,
        /// What is wrong (names the field).
        msg: String,
    },
    /// Training or saving a tokenizer failed.
    #[error("tokenizer from {file}: {msg}")]
    Tokenizer {
        /// The corpus or tokenizer file.
        file: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// libtorch raised an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A shard could not be read (names the shard and member).
    #[error(transparent)]
    Data(DataError),
}

impl From<DataError> for TrainError {
    fn from(e: DataError) -> Self {
        match e {
            DataError::NoShards(dir) => Self::NoShards(dir),
            e => Self::Data(e),
        }
    }
}
