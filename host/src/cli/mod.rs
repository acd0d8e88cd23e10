//! The `vila2` command line: one submodule per command group.

mod augment;
mod demo;
mod generate;
mod model;
mod plugin;
pub mod portal;
mod shapes;
mod train;

pub use demo::MINI_RECIPE;

use std::io::IsTerminal;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// vila2: make a vision-language model improve its own pretraining data.
#[derive(Debug, Parser)]
#[command(name = "vila2", version, about)]
pub struct Cli {
    /// libtorch intra-op threads (default: one per physical core; 1 is fastest for tiny
    /// models on shared cores).
    #[arg(long, global = true, env = "VILA2_THREADS")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect and run WebAssembly plugins (filters, prompt templates, post-processors).
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Caption images with a vision-language model checkpoint.
    Generate(generate::GenerateArgs),
    /// Log-probability of a text given an image and a prompt.
    Score(generate::ScoreArgs),
    /// Train the model: one stage on WebDataset caption shards.
    Train(train::TrainArgs),
    /// Run (or resume) the VILA² loop: recaption, filter, fuse, retrain, evaluate.
    Augment(augment::AugmentArgs),
    /// The miniature VILA² reproduction on ShapesWorld (prints the rounds table).
    Demo(demo::DemoArgs),
    /// Several finished runs of one recipe (seeds) side by side: mean ± sd per row and the
    /// VILA² targets as paired differences, run by run.
    Compare(demo::CompareArgs),
    /// Write the synthetic ShapesWorld dataset (pretrain, SFT, specialist and eval splits).
    Shapes(shapes::ShapesArgs),
    /// Create models: `model init` builds a random one to train from scratch.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(generate::BenchCommand),
    /// Serve the web portal and JSON API (runs `vila2-portal serve`; see `vila2 serve --help`).
    #[command(disable_help_flag = true)]
    Serve(PortalArgs),
    /// Apply the portal's database migrations (runs `vila2-portal migrate`).
    #[command(disable_help_flag = true)]
    Migrate(PortalArgs),
    /// Portal administration, e.g. `admin create-user` (runs `vila2-portal admin`).
    #[command(disable_help_flag = true)]
    Admin(PortalArgs),
}

/// Everything after a portal subcommand, passed through to `vila2-portal` untouched.
#[derive(Debug, clap::Args)]
struct PortalArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<String>,
}

/// Entry point of the `vila2` binary.
pub fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("VILA2_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        crate::vlm::threads::set_torch_threads(n);
    }
    match cli.command {
        Command::Plugin(cmd) => plugin::run(cmd),
        Command::Generate(args) => generate::run_generate(args),
        Command::Score(args) => generate::run_score(args),
        Command::Train(args) => train::run_train(args),
        Command::Augment(args) => augment::run_augment(args),
        Command::Demo(args) => demo::run_demo(args),
        Command::Compare(args) => demo::run_compare(args),
        Command::Shapes(args) => shapes::run_shapes(args),
        Command::Model(cmd) => model::run(cmd),
        Command::Bench(cmd) => generate::run_bench(cmd),
        Command::Serve(a) => std::process::exit(portal::run("serve", &a.args)?),
        Command::Migrate(a) => std::process::exit(portal::run("migrate", &a.args)?),
        Command::Admin(a) => std::process::exit(portal::run("admin", &a.args)?),
    }
}
