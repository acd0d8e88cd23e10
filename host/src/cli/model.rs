//! `vila2 model init`: a random LLaVA from a spec, with a tokenizer trained on a corpus;
//! `vila2 model pretrain-vision`: its vision tower trained on labelled ShapesWorld scenes.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::train::init::{ModelSpec, init_model};
use crate::train::vision_pretrain::{self, VisionPretrainConfig};
use crate::vlm::generate::parse_device;

/// `vila2 model …` commands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Create a random model (HF LLaVA layout) to train from scratch.
    Init(InitArgs),
    /// Train a model's vision tower alone on rendered ShapesWorld scenes (colour, shape and
    /// text per patch, object count, colour–shape pairs) and save the model with it.
    PretrainVision(PretrainVisionArgs),
}

/// Arguments of `vila2 model pretrain-vision`.
#[derive(Debug, Args)]
pub struct PretrainVisionArgs {
    /// The model folder (HF LLaVA layout).
    #[arg(long)]
    init: PathBuf,
    /// Output folder (the model with the trained tower).
    #[arg(long)]
    out: PathBuf,
    /// Optimizer steps.
    #[arg(long)]
    steps: usize,
    /// Scenes per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Seed of the scenes and the heads.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Held-out scenes scored at the end.
    #[arg(long, default_value_t = 512)]
    held_out: usize,
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    #[arg(long, default_value = "auto")]
    device: String,
}

/// Arguments of `vila2 model init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Model spec (`.toml` or `.json`; missing keys take the tiny model's values).
    #[arg(long, conflicts_with = "tiny", required_unless_present = "tiny")]
    spec: Option<PathBuf>,
    /// The tiny ShapesWorld model (64×64 images, 512-token vocabulary).
    #[arg(long)]
    tiny: bool,
    /// Text file whose lines train the tokenizer.
    #[arg(long)]
    corpus: PathBuf,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    seed: i64,
}

/// Runs a `vila2 model` command.
pub fn run(cmd: ModelCommand) -> anyhow::Result<()> {
    match cmd {
        ModelCommand::Init(a) => {
            let spec = match &a.spec {
                Some(f) => ModelSpec::from_file(f)?,
                None => ModelSpec::tiny(),
            };
            let summary = init_model(&spec, &a.corpus, &a.out, a.seed)
                .with_context(|| format!("cannot create a model in {}", a.out.display()))?;
            println!("{}", serde_json::to_string(&summary)?);
            Ok(())
        }
        ModelCommand::PretrainVision(a) => {
            let mut cfg = VisionPretrainConfig::new(a.steps, a.seed);
            cfg.batch_size = a.batch_size;
            cfg.lr = a.lr;
            cfg.held_out = a.held_out;
            cfg.device = parse_device(&a.device)?;
            let summary = vision_pretrain::run(&a.init, &a.out, &cfg, |step, loss| {
                if step % 100 == 0 || step == a.steps {
                    eprintln!("step {step}/{}: loss {loss:.4}", a.steps);
                }
            })
            .with_context(|| format!("cannot pretrain the vision tower of {}", a.init.display()))?;
            println!("{}", serde_json::to_string(&summary)?);
            Ok(())
        }
    }
}
