//! `vila2 augment`: runs (or resumes) the VILA² loop described by a run document.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::pipeline::{Event, RunConfig, run};

/// Arguments of `vila2 augment`.
#[derive(Debug, Args)]
pub struct AugmentArgs {
    /// The run document (TOML): data, model, training recipe, plugins, rounds, specialists.
    #[arg(long)]
    pub config: PathBuf,
    /// Output folder (default: `runs/<config name>`); running again resumes it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The default output folder of a config.
pub fn default_out(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    PathBuf::from("runs").join(stem)
}

/// Runs the loop with a progress line and prints the report table.
pub fn run_config(cfg: &RunConfig, out: &Path) -> anyhow::Result<()> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .expect("valid progress template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut on_event = |e: Event| match e {
        Event::Task { id, cached } => {
            if cached {
                bar.println(format!("  {id}: done earlier, skipped"));
            }
            bar.set_message(id);
        }
        Event::Step {
            task,
            step,
            steps,
            loss,
        } => bar.set_message(format!("{task} step {step}/{steps} loss {loss:.4}")),
        Event::Round { report } => bar.println(format!(
            "{}: {:.1} caption words, VQA {:.1}%{}",
            report.label,
            report.data.mean_words,
            100.0 * report.score(),
            report.eval.captions.map_or(String::new(), |c| format!(
                ", caption precision {:.1}%, recall {:.1}%, hallucination {:.1}%",
                100.0 * c.precision,
                100.0 * c.recall,
                100.0 * c.hallucination
            ))
        )),
    };
    let report = run(cfg, out, &mut on_event)
        .with_context(|| format!("augmentation run in {} failed", out.display()))?;
    bar.finish_and_clear();
    println!("{}", report.markdown());
    println!(
        "report: {}\naugmented data: {}",
        out.join("report.md").display(),
        report.final_data.display()
    );
    Ok(())
}

/// Runs `vila2 augment`.
pub fn run_augment(a: AugmentArgs) -> anyhow::Result<()> {
    let cfg = RunConfig::load(&a.config)?;
    let out = a.out.unwrap_or_else(|| default_out(&a.config));
    run_config(&cfg, &out)
}
