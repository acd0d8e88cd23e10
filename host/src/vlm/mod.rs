//! The vision-language model on libtorch (`tch`): LLaVA-style checkpoints (CLIP or SigLIP
//! vision tower, MLP projector, Llama or Qwen2 decoder), their tokenizer and image
//! preprocessing, batched generation and scoring, and the engine thread that serves them.

pub mod chat_template;
pub mod config;
pub mod engine;
pub mod generate;
pub mod llama;
pub mod llava;
pub mod nn;
pub mod preprocess;
pub mod projector;
pub mod threads;
pub mod tokenizer;
pub mod vila;
pub mod vision;
pub mod weights;

use std::path::PathBuf;

/// Everything that can go wrong loading or running a model; each variant names the file,
/// key or image at fault.
#[derive(Debug, thiserror::Error)]
pub enum VlmError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A config file is malformed.
    #[error("invalid config {file}: {msg}")]
    Config {
        /// The config file.
        file: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A config asks for something this engine does not implement.
    #[error("{file}: unsupported {what}")]
    Unsupported {
        /// The config file.
        file: PathBuf,
        /// What is unsupported and what is.
        what: String,
    },
    /// A safetensors file is corrupt or truncated.
    #[error("corrupt safetensors file {file}: {msg} (re-download or re-save the checkpoint)")]
    Safetensors {
        /// The weight file.
        file: PathBuf,
        /// The parser's message.
        msg: String,
    },
    /// A weight the config requires is absent.
    #[error("missing weight {key} in {dir} (looked in: {files})")]
    MissingWeight {
        /// Canonical key.
        key: String,
        /// Checkpoint folder.
        dir: PathBuf,
        /// The weight files searched.
        files: String,
    },
    /// A weight has a shape that does not match the config.
    #[error("weight {key} in {file} has shape {actual:?}, config implies {expected:?}")]
    Shape {
        /// Canonical key.
        key: String,
        /// File holding it.
        file: PathBuf,
        /// Shape expected from the config.
        expected: Vec<i64>,
        /// Shape found.
        actual: Vec<i64>,
    },
    /// Tokenizer problems.
    #[error("tokenizer {file}: {msg}")]
    Tokenizer {
        /// The tokenizer file.
        file: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Chat template problems.
    #[error("chat template from {file}: {msg}")]
    Template {
        /// Where the template came from.
        file: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// An image could not be decoded or is unacceptable.
    #[error("image {path}: {msg}")]
    Image {
        /// The image file (or a label for in-memory images).
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Invalid request (prompt without `<image>`, bad sampling parameters, ...).
    #[error("invalid request: {0}")]
    Request(String),
    /// libtorch raised an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// The engine thread is gone.
    #[error("the engine thread has stopped")]
    EngineStopped,
}
