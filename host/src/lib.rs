//! vila2: a platform that makes a vision-language model improve its own pretraining data
//! (VILA², arXiv 2407.17453).
//!
//! - [`plugin`]: the sandboxed WebAssembly plugin runtime (WIT package `vila2:plugin`).
//! - [`vlm`]: the vision-language model on libtorch.
//! - [`train`]: the trainer (VILA's stages, WebDataset shards, HF checkpoints).
//! - [`pipeline`]: the VILA² loop (rounds, specialists, provenance, reports).
//! - [`data`]: WebDataset shard I/O and the synthetic ShapesWorld dataset.
//! - [`cli`]: the `vila2` command line.

pub mod cli;
pub mod data;
pub mod pipeline;
pub mod plugin;
pub mod train;
pub mod vlm;
