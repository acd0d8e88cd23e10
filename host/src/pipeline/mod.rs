//! The VILA² loop: recaption → filter → fuse → retrain from scratch → evaluate, round after
//! round, then specialist augmentation — as durable shard tasks with full provenance.
//!
//! - [`config`]: the run document (TOML).
//! - [`state`]: durable task records and atomic outputs (kill-and-resume safety).
//! - [`fingerprint`]: what each task's record is keyed by, so a changed setting redoes it.
//! - [`fuse`]: replace / concat / qa fusion and specialist QA turns.
//! - [`provenance`]: per-sample history, `.json` members and Parquet tables.
//! - [`judge`]: the engine as the plugins' judge.
//! - [`prune`]: confidence pruning of recaption sentences.
//! - [`recaption`]: one shard through template, engine, filters and fusion.
//! - [`evaluate`]: held-out VQA accuracy and caption precision / recall / hallucination.
//! - [`report`]: the per-round quality report (JSON, Markdown, SVG plots).
//! - [`run`]: the orchestration of rounds and specialists.
//! - [`seeds`]: several runs of one recipe side by side (mean ± sd, paired targets).

pub mod config;
pub mod evaluate;
pub mod fingerprint;
pub mod fuse;
pub mod judge;
pub mod provenance;
pub mod prune;
pub mod recaption;
pub mod report;
pub mod run;
pub mod seeds;
pub mod state;

use std::path::PathBuf;

pub use config::{Fusion, RunConfig};
pub use run::{Event, run, run_until, run_with_store};

/// Everything that can stop a run; each variant names the file, shard, sample or field.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The run document is invalid.
    #[error("{file}: {msg}")]
    Config {
        /// The run document.
        file: PathBuf,
        /// What is wrong, naming the field.
        msg: String,
    },
    /// A file the run needs is missing.
    #[error("{field}: {path} does not exist")]
    Missing {
        /// The config field naming it.
        field: String,
        /// The path.
        path: PathBuf,
    },
    /// A file could not be read or written.
    #[error("cannot access {path}: {error}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// A task record is unreadable.
    #[error("{path}: {msg}")]
    State {
        /// The record file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// An output could not be written.
    #[error("cannot write {path}: {msg}")]
    Output {
        /// The output file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// Reading or writing shards failed.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A plugin could not be loaded or failed as a whole.
    #[error("{what}: {error}")]
    Plugin {
        /// Which plugin, by config field.
        what: String,
        /// The plugin error.
        error: crate::plugin::PluginError,
    },
    /// The model could not be loaded or run.
    #[error("model {model}: {error}")]
    Model {
        /// The model folder.
        model: PathBuf,
        /// The engine error.
        error: crate::vlm::VlmError,
    },
    /// Training failed.
    #[error("{task}: {error}")]
    Train {
        /// The task (round and stage).
        task: String,
        /// The trainer's error.
        error: crate::train::TrainError,
    },
    /// Too many samples of a shard failed.
    #[error(
        "{task}: {failed} of {total} samples failed (more than max_failure_fraction {max}); first error: {first}"
    )]
    TooManyFailures {
        /// The task (round, shard).
        task: String,
        /// Failed samples.
        failed: usize,
        /// Samples in the shard.
        total: usize,
        /// The configured limit.
        max: f64,
        /// The first failure's message.
        first: String,
    },
    /// The run was cancelled.
    #[error("run cancelled")]
    Cancelled,
    /// Any other failure, described.
    #[error("{0}")]
    Failed(String),
}
