//! `vila2 model init`: a random LLaVA from a spec, with a tokenizer trained on a corpus.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::train::init::{ModelSpec, init_model};

/// `vila2 model …` commands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Create a random model (HF LLaVA layout) to train from scratch.
    Init(InitArgs),
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
    }
}
