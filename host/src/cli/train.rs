//! `vila2 train`: one training stage on WebDataset shards (captions or conversations), from
//! an HF LLaVA folder, with resumable checkpoints.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::train::data::count_samples;
use crate::train::precision::Precision;
use crate::train::trainer::{TrainConfig, run};
use crate::train::{Group, Stage, compose};
use crate::vlm::generate::parse_device;

/// Arguments of `vila2 train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Stage: align (projector), pretrain (projector + LLM), sft or specialist (all).
    #[arg(long, value_enum)]
    stage: Stage,
    /// Folder of WebDataset shards (`*.tar`; `KEY.png|jpg` + `KEY.txt` caption or
    /// `KEY.json` with LLaVA `conversations`).
    #[arg(long)]
    data: PathBuf,
    /// HF LLaVA checkpoint folder to start from (or give --init-llm and --init-vision).
    #[arg(long)]
    init: Option<PathBuf>,
    /// VILA's init: a pretrained HF causal LM folder (Llama or Qwen2), joined to
    /// --init-vision by a new projector; the composed model is written to OUT/init.
    #[arg(long)]
    init_llm: Option<PathBuf>,
    /// VILA's init: a pretrained HF vision tower folder (CLIP or SigLIP), with --init-llm.
    #[arg(long)]
    init_vision: Option<PathBuf>,
    /// Output folder: the final checkpoint and `metrics.jsonl`.
    #[arg(long)]
    out: PathBuf,
    /// Optimizer steps (default: one epoch over the shards).
    #[arg(long)]
    steps: Option<usize>,
    /// Peak learning rate (default: the stage's, 1e-3 / 5e-5 / 2e-5 / 1e-4).
    #[arg(long)]
    lr: Option<f64>,
    /// Samples per micro-batch.
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// Micro-batches per optimizer step (global batch = batch size × this).
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// AdamW weight decay (not applied to norms and biases).
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// Clip gradients to this global norm (0 disables).
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f64,
    /// Longest training sequence in tokens (captions are truncated).
    #[arg(long, default_value_t = 2048)]
    max_len: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: i64,
    /// Train these groups instead of the stage's (comma-separated, e.g. `vision,projector,llm`).
    #[arg(long, value_enum, value_delimiter = ',')]
    train_groups: Option<Vec<Group>>,
    /// Freeze a group the stage would train (repeatable).
    #[arg(long, value_enum)]
    freeze: Vec<Group>,
    /// Shuffle buffer in samples (1: archive order).
    #[arg(long, default_value_t = 1000)]
    shuffle_buffer: usize,
    /// Draw the samples of N steps together and batch them by token length, so a batch pads
    /// only to samples of similar length (1: each step in drawn order).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    length_group: u64,
    /// Save a resumable checkpoint to OUT/checkpoints every N steps (0: never).
    #[arg(long, default_value_t = 0)]
    save_every: usize,
    /// Continue from the latest checkpoint in OUT/checkpoints (same settings required).
    #[arg(long)]
    resume: bool,
    /// Device: cpu, cuda, cuda:N or auto (CUDA when libtorch sees a GPU).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Forward-pass precision: auto (bf16 autocast on CUDA, fp32 on the CPU), fp32 or bf16.
    /// Weights, gradients and optimizer state stay fp32.
    #[arg(long, default_value = "auto")]
    precision: Precision,
    /// Threads decoding and preprocessing images (0: 1 on the CPU, up to 8 on CUDA).
    #[arg(long, default_value_t = 0)]
    loader_workers: usize,
    /// Clip and update through flat per-group buffers (true) or tensor by tensor (false);
    /// default: flat on CUDA only.
    #[arg(long)]
    flat_optimizer: Option<bool>,
}

/// The folder to train from: `--init`, or the model composed from `--init-llm` and
/// `--init-vision` into `OUT/init`.
fn init_folder(a: &TrainArgs) -> anyhow::Result<PathBuf> {
    match (&a.init, &a.init_llm, &a.init_vision) {
        (Some(init), None, None) => Ok(init.clone()),
        (Some(_), _, _) => anyhow::bail!(
            "--init cannot be combined with --init-llm/--init-vision: start from a LLaVA \
             folder (--init) or compose one from a pretrained LLM and vision tower"
        ),
        (None, Some(llm), Some(vision)) => {
            let dir = a.out.join("init");
            let s = compose(llm, vision, &dir, a.seed).with_context(|| {
                format!(
                    "cannot compose a LLaVA model from --init-llm {} and --init-vision {}",
                    llm.display(),
                    vision.display()
                )
            })?;
            tracing::info!(dir = %dir.display(), ?s, "composed the initial model");
            Ok(dir)
        }
        (None, Some(_), None) => {
            anyhow::bail!("--init-llm needs --init-vision (the vision tower to join it to)")
        }
        (None, None, Some(_)) => {
            anyhow::bail!("--init-vision needs --init-llm (the language model to join it to)")
        }
        (None, None, None) => {
            anyhow::bail!("give --init DIR, or --init-llm DIR together with --init-vision DIR")
        }
    }
}

/// Runs `vila2 train`.
pub fn run_train(a: TrainArgs) -> anyhow::Result<()> {
    let init = init_folder(&a)?;
    let global = a.batch_size * a.grad_accum;
    let steps = match a.steps {
        Some(s) => s,
        None => count_samples(&a.data)?.div_ceil(global.max(1)),
    };
    let mut cfg = TrainConfig::new(a.stage, steps);
    cfg.lr = a.lr;
    cfg.batch_size = a.batch_size;
    cfg.grad_accum = a.grad_accum;
    cfg.adamw.weight_decay = a.weight_decay;
    cfg.max_grad_norm = a.max_grad_norm;
    cfg.max_len = a.max_len;
    cfg.seed = a.seed;
    cfg.train = a.train_groups;
    cfg.frozen = a.freeze;
    cfg.shuffle_buffer = a.shuffle_buffer;
    cfg.length_group = a.length_group as usize;
    cfg.save_every = a.save_every;
    cfg.resume = a.resume;
    cfg.device = parse_device(&a.device)?;
    cfg.precision = a.precision;
    cfg.loader_workers = a.loader_workers;
    cfg.flat_optimizer = a.flat_optimizer;
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} ETA {eta}")
            .expect("valid progress template"),
    );
    let started = std::time::Instant::now();
    let mut tokens = 0i64;
    let summary = run(&a.data, &init, &a.out, cfg, |s| {
        tokens += s.tokens;
        let rate = tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("loss {:.4} {rate:.0} tok/s", s.loss));
        bar.set_position(s.step as u64);
    })
    .with_context(|| format!("training stage {} failed", a.stage))?;
    bar.finish_and_clear();
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
