//! `vila2 shapes`: writes the synthetic ShapesWorld dataset (see `vila2::data::shapes`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::data::shapes::{ShapesConfig, generate};

/// Arguments of `vila2 shapes`.
#[derive(Debug, Args)]
pub struct ShapesArgs {
    /// Output folder (created; must be empty).
    #[arg(long)]
    out: PathBuf,
    /// Master seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Pretraining samples (noisy alt-text captions).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pretrain: u64,
    /// SFT samples (detailed caption + VQA conversations).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    sft: u64,
    /// VQA turns per SFT conversation (up to this many of the scene's questions; 0: 2 or 3).
    #[arg(long, default_value_t = 0)]
    sft_questions: usize,
    /// Always put the detailed caption first in SFT conversations, and the full answer first in
    /// specialist ones (default: at a random turn).
    #[arg(long)]
    sft_caption_first: bool,
    /// Samples per specialist task (spatial, grounding, OCR).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    specialist: u64,
    /// Held-out evaluation images.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    eval: u64,
    /// Image side in pixels (32..=1024).
    #[arg(long, value_name = "PX", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(32..=1024))]
    image_size: u32,
    /// Samples per shard.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    shard_size: u64,
}

/// Runs `vila2 shapes` and prints a JSON summary.
pub fn run_shapes(a: ShapesArgs) -> anyhow::Result<()> {
    let cfg = ShapesConfig {
        seed: a.seed,
        image_size: a.image_size,
        pretrain: a.pretrain as usize,
        sft: a.sft as usize,
        sft_questions: a.sft_questions,
        sft_caption_first: a.sft_caption_first,
        specialist: a.specialist as usize,
        eval: a.eval as usize,
        shard_size: a.shard_size as usize,
        ..ShapesConfig::default()
    };
    let start = std::time::Instant::now();
    let summary = generate(&a.out, &cfg)
        .with_context(|| format!("writing ShapesWorld to {}", a.out.display()))?;
    tracing::info!(
        seconds = start.elapsed().as_secs_f64(),
        "ShapesWorld written"
    );
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
