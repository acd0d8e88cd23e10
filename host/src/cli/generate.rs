//! `vila2 generate`, `vila2 score` and `vila2 bench generate`: the VLM engine from the shell.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::vlm::chat_template::VilaConversation;
use crate::vlm::engine::{Engine, EngineConfig, PromptInput};
use crate::vlm::generate::{
    GenerationParams, Sampling, Vlm, WeightSource, parse_device, parse_kind,
};
use crate::vlm::preprocess::load_image;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;

/// Arguments of `vila2 generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Checkpoint folder (HF LLaVA layout).
    #[arg(long, env = "VILA2_MODEL")]
    model: PathBuf,
    /// Image to caption; repeat for several (each gets its own result).
    #[arg(long = "image", required = true)]
    images: Vec<PathBuf>,
    /// Raw prompt in which `<image>` marks the image, e.g. "USER: <image>\nWhat is shown? ASSISTANT:";
    /// with --chat, the user message.
    #[arg(long)]
    prompt: String,
    /// Most tokens to generate per image.
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
    /// Greedy decoding (the default).
    #[arg(long, conflicts_with_all = ["temperature", "top_p", "seed"])]
    greedy: bool,
    /// Sampling temperature (enables sampling).
    #[arg(long)]
    temperature: Option<f64>,
    /// Nucleus mass for sampling (enables sampling; default 1.0).
    #[arg(long)]
    top_p: Option<f64>,
    /// Sampling seed (default 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop when this string appears (repeatable).
    #[arg(long = "stop")]
    stop: Vec<String>,
    /// Treat --prompt as the user message and apply the checkpoint's chat template.
    #[arg(long)]
    chat: bool,
    /// VILA checkpoints: conversation template for --chat (vicuna_v1, llama_3, hermes-2);
    /// default: VILA's choice from the model path, else vicuna_v1.
    #[arg(long)]
    conv_template: Option<String>,
    /// Print `{"results":[{"image":..,"token_ids":[..],"text":..}]}`.
    #[arg(long)]
    json: bool,
    /// cpu, cuda, cuda:N or auto (fp32 on CPU, bf16 on CUDA).
    #[arg(long, default_value = "auto", env = "VILA2_DEVICE")]
    device: String,
    /// auto (fp32 on CPU, bf16 on CUDA), f32, bf16 or f16.
    #[arg(long, default_value = "auto")]
    dtype: String,
    /// Largest batch the engine runs at once.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
}

/// Arguments of `vila2 score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Checkpoint folder (HF LLaVA layout).
    #[arg(long, env = "VILA2_MODEL")]
    model: PathBuf,
    /// The image.
    #[arg(long)]
    image: PathBuf,
    /// Raw prompt with `<image>` (or the user message with --chat).
    #[arg(long)]
    prompt: String,
    /// Continuation to score; tokenized without special tokens and appended to the prompt
    /// (with --chat, after the template's separator, as the assistant's reply is generated).
    #[arg(long)]
    text: String,
    /// Apply the checkpoint's chat template to --prompt.
    #[arg(long)]
    chat: bool,
    /// Print `{"token_ids":[..],"token_logprobs":[..],"mean_logprob":x}`.
    #[arg(long)]
    json: bool,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto", env = "VILA2_DEVICE")]
    device: String,
    /// auto (fp32 on CPU, bf16 on CUDA), f32, bf16 or f16.
    #[arg(long, default_value = "auto")]
    dtype: String,
}

/// `vila2 bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Greedy generation throughput of the engine (fixed length: EOS ignored).
    Generate(BenchArgs),
}

/// Arguments of `vila2 bench generate`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Checkpoint folder.
    #[arg(long)]
    model: PathBuf,
    /// Image given to every request.
    #[arg(long)]
    image: PathBuf,
    /// Raw prompt with `<image>`.
    #[arg(
        long,
        default_value = "USER: <image>\nDescribe the image in details. ASSISTANT:"
    )]
    prompt: String,
    /// Batch sizes to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    batch_sizes: Vec<usize>,
    /// Tokens generated per sequence.
    #[arg(long, default_value_t = 64)]
    new_tokens: usize,
    /// Timed repetitions per batch size (after one warm-up).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// auto (fp32 on CPU, bf16 on CUDA), f32, bf16 or f16.
    #[arg(long, default_value = "auto")]
    dtype: String,
    /// Use seeded random weights of the folder's config.json (sizes not shipped as files).
    #[arg(long)]
    random_weights: bool,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

fn sampling(args: &GenerateArgs) -> Sampling {
    if args.greedy || (args.temperature.is_none() && args.top_p.is_none() && args.seed.is_none()) {
        Sampling::Greedy
    } else {
        Sampling::TopP {
            temperature: args.temperature.unwrap_or(1.0),
            top_p: args.top_p.unwrap_or(1.0),
            seed: args.seed.unwrap_or(0),
        }
    }
}

fn start(
    model: &Path,
    device: &str,
    dtype: &str,
    max_batch: usize,
    conv: Option<&str>,
) -> anyhow::Result<Engine> {
    let device = parse_device(device)?;
    let kind = parse_kind(dtype, device)?;
    let vila_conversation = match conv {
        None => None,
        Some(name) => Some(VilaConversation::from_name(name).with_context(|| {
            format!("unknown --conv-template {name:?} (vicuna_v1, llama_3, hermes-2)")
        })?),
    };
    let config = EngineConfig {
        max_batch,
        vila_conversation,
        ..Default::default()
    };
    Engine::spawn_with(model.to_path_buf(), device, kind, config)
        .with_context(|| format!("loading the model in {}", model.display()))
}

/// Runs `vila2 generate`.
pub fn run_generate(args: GenerateArgs) -> anyhow::Result<()> {
    let params = GenerationParams {
        max_new_tokens: args.max_new_tokens,
        sampling: sampling(&args),
        stop_strings: args.stop.clone(),
        ..Default::default()
    };
    params.validate()?;
    let engine = start(
        &args.model,
        &args.device,
        &args.dtype,
        args.batch_size,
        args.conv_template.as_deref(),
    )?;
    let handle = engine.handle();
    // Submit everything first so the engine can batch; bad images fail alone.
    let pending: Vec<_> = args
        .images
        .iter()
        .map(|path| {
            load_image(path).map(|img| {
                handle.submit_generate(
                    PromptInput {
                        text: args.prompt.clone(),
                        images: vec![img],
                        chat: args.chat,
                    },
                    params.clone(),
                )
            })
        })
        .collect();
    let bar = (!args.json && args.images.len() > 1)
        .then(|| indicatif::ProgressBar::new(args.images.len() as u64));
    let mut results = Vec::with_capacity(pending.len());
    let mut failed = 0;
    for (path, p) in args.images.iter().zip(pending) {
        let r = p.and_then(|rx| {
            rx.recv()
                .unwrap_or(Err(crate::vlm::VlmError::EngineStopped))
        });
        let image = path.display().to_string();
        match r {
            Ok(g) => {
                if let Some(bar) = &bar {
                    bar.suspend(|| println!("{image}: {}", g.text));
                } else if !args.json {
                    println!("{image}: {}", g.text);
                }
                results.push(json!({"image": image, "token_ids": g.token_ids, "text": g.text}));
            }
            Err(e) => {
                failed += 1;
                eprintln!("{image}: error: {e}");
                results.push(json!({"image": image, "error": e.to_string()}));
            }
        }
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if args.json {
        println!("{}", json!({ "results": results }));
    }
    if failed > 0 {
        bail!("{failed} of {} images failed", args.images.len());
    }
    Ok(())
}

/// Runs `vila2 score`.
pub fn run_score(args: ScoreArgs) -> anyhow::Result<()> {
    let img = load_image(&args.image)?;
    let engine = start(&args.model, &args.device, &args.dtype, 1, None)?;
    let s = engine.handle().score(
        PromptInput {
            text: args.prompt,
            images: vec![img],
            chat: args.chat,
        },
        args.text,
    )?;
    if args.json {
        println!(
            "{}",
            json!({"token_ids": s.token_ids, "token_logprobs": s.token_logprobs, "mean_logprob": s.mean_logprob})
        );
    } else {
        println!(
            "mean log-prob {:.4} over {} tokens",
            s.mean_logprob,
            s.token_ids.len()
        );
        for (t, lp) in s.token_ids.iter().zip(&s.token_logprobs) {
            println!("{t:>8} {lp:>10.4}");
        }
    }
    Ok(())
}

/// Runs `vila2 bench ...`.
pub fn run_bench(cmd: BenchCommand) -> anyhow::Result<()> {
    let BenchCommand::Generate(args) = cmd;
    let device = parse_device(&args.device)?;
    let kind = parse_kind(&args.dtype, device)?;
    let source = if args.random_weights {
        WeightSource::Random { seed: 0 }
    } else {
        WeightSource::Checkpoint
    };
    let vlm = Vlm::load_with(&args.model, device, kind, source)?;
    let img = load_image(&args.image)?;
    let params = GenerationParams {
        max_new_tokens: args.new_tokens,
        ignore_eos: true,
        ..Default::default()
    };
    if !args.json {
        println!(
            "device {device:?} {kind:?}, {} new tokens, greedy",
            args.new_tokens
        );
        println!(
            "{:>6} {:>10} {:>12} {:>10}",
            "batch", "seconds", "tokens/s", "images/s"
        );
    }
    for &b in &args.batch_sizes {
        let prompts = (0..b)
            .map(|_| vlm.prepare(&args.prompt, std::slice::from_ref(&img)))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<_> = prompts.iter().collect();
        vlm.generate(&refs, &params)?;
        let mut best = f64::INFINITY;
        let mut tokens = 0;
        for _ in 0..args.repeats.max(1) {
            let t0 = Instant::now();
            let out = vlm.generate(&refs, &params)?;
            if device.is_cuda() {
                tch::Cuda::synchronize(0);
            }
            best = best.min(t0.elapsed().as_secs_f64());
            tokens = out.iter().map(|g| g.token_ids.len()).sum();
        }
        let tps = tokens as f64 / best;
        let ips = b as f64 / best;
        if args.json {
            println!(
                "{}",
                json!({"impl": "vila2", "device": format!("{device:?}"), "dtype": format!("{kind:?}"), "batch": b, "new_tokens": args.new_tokens,
                       "seconds": best, "tokens_per_s": tps, "images_per_s": ips})
            );
        } else {
            println!("{b:>6} {best:>10.3} {tps:>12.1} {ips:>10.2}");
        }
    }
    Ok(())
}
