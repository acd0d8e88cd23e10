//! `vila2 plugin inspect|run`: the plugin author's inner loop.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::plugin::records::{Candidate, PromptRequest, SpecialistOutput};
use crate::plugin::{ItemError, Plugin, PluginRuntime, RuntimeConfig, World};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Print a component's world, description, config schema, exports and imports as JSON.
    Inspect {
        /// The component (`.wasm`).
        file: PathBuf,
    },
    /// Run a component over a JSON-lines file and print one JSON line per input line.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The component (`.wasm`).
    file: PathBuf,
    /// Input records, one JSON object per line: candidates for a caption filter, prompt
    /// requests for a prompt template, specialist outputs for a post-processor.
    #[arg(long)]
    input: PathBuf,
    /// Plugin configuration: a JSON file, or inline JSON starting with `{`.
    #[arg(long)]
    config: Option<String>,
    /// Call the component as this world (default: the world its exports implement; a
    /// specialist runs as post-processor when lines have an `answer`, else as prompt-template).
    #[arg(long = "as", value_parser = parse_world)]
    world: Option<World>,
    /// Items per plugin call.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Fuel (≈ instructions) per item.
    #[arg(long, env = "VILA2_PLUGIN_FUEL")]
    fuel_per_item: Option<u64>,
    /// Deadline of one call, in milliseconds.
    #[arg(long, env = "VILA2_PLUGIN_DEADLINE_MS")]
    deadline_ms: Option<u64>,
    /// Memory cap per instance, in MiB.
    #[arg(long, env = "VILA2_PLUGIN_MEMORY_MIB")]
    memory_mib: Option<usize>,
}

fn parse_world(s: &str) -> Result<World, String> {
    s.parse()
}

pub fn run(cmd: PluginCommand) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::Inspect { file } => inspect(&file),
        PluginCommand::Run(args) => run_file(args),
    }
}

#[derive(Serialize)]
struct InspectReport {
    file: String,
    #[serde(flatten)]
    inspection: crate::plugin::Inspection,
    description: Option<crate::plugin::records::Description>,
}

fn inspect(file: &Path) -> anyhow::Result<()> {
    let runtime = PluginRuntime::new(RuntimeConfig::default())?;
    let bytes = runtime.read(file)?;
    let name = file.display().to_string();
    let inspection = runtime.inspect_bytes(&name, &bytes)?;
    let description = match inspection.world {
        Some(world) => Some(runtime.load_bytes(&name, &bytes, world)?.describe()?),
        None => None,
    };
    let report = InspectReport {
        file: name,
        inspection,
        description,
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?;
    if report.description.is_none() {
        bail!(
            "{} implements no vila2:plugin world (its exports: {})",
            file.display(),
            report.inspection.exports.join(", ")
        );
    }
    Ok(())
}

/// One output line: the input's key and either the result or the error.
#[derive(Serialize)]
struct OutLine<'a, T: Serialize> {
    line: usize,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ok: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ItemError>,
}

fn run_file(args: RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    let mut config = RuntimeConfig::default();
    if let Some(f) = args.fuel_per_item {
        config.fuel_per_item = f;
    }
    if let Some(ms) = args.deadline_ms {
        config.call_deadline = std::time::Duration::from_millis(ms);
    }
    if let Some(mib) = args.memory_mib {
        config.memory_limit = mib << 20;
    }
    let runtime = PluginRuntime::new(config)?;
    let bytes = runtime.read(&args.file)?;
    let name = args.file.display().to_string();
    let lines = read_lines(&args.input)?;
    let world = match args.world {
        Some(w) => w,
        None => {
            let detected = runtime
                .inspect_bytes(&name, &bytes)?
                .world
                .with_context(|| {
                    format!("{name} implements no vila2:plugin world; see `vila2 plugin inspect`")
                })?;
            if detected == World::Specialist {
                let answers = lines.iter().any(|(_, l)| l.contains("\"answer\""));
                if answers {
                    World::PostProcessor
                } else {
                    World::PromptTemplate
                }
            } else {
                detected
            }
        }
    };
    let plugin = runtime.load_bytes(&name, &bytes, world)?;
    if let Some(cfg) = &args.config {
        let json = if cfg.trim_start().starts_with('{') {
            cfg.clone()
        } else {
            std::fs::read_to_string(cfg).with_context(|| format!("cannot read config {cfg}"))?
        };
        plugin.configure(&json)?;
    }
    let input = args.input.display().to_string();
    match world {
        World::CaptionFilter => emit(
            &plugin,
            &input,
            &lines,
            args.batch_size,
            |c: &Candidate| &c.sample.key,
            Plugin::filter,
        ),
        World::PromptTemplate | World::Specialist => emit(
            &plugin,
            &input,
            &lines,
            args.batch_size,
            |r: &PromptRequest| &r.sample.key,
            Plugin::render,
        ),
        World::PostProcessor => emit(
            &plugin,
            &input,
            &lines,
            args.batch_size,
            |o: &SpecialistOutput| &o.sample.key,
            Plugin::process,
        ),
    }
}

/// Non-empty lines of a JSON-lines file with their 1-based numbers.
fn read_lines(path: &Path) -> anyhow::Result<Vec<(usize, String)>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open input {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line =
            line.with_context(|| format!("{}:{}: cannot read line", path.display(), i + 1))?;
        if !line.trim().is_empty() {
            out.push((i + 1, line));
        }
    }
    Ok(out)
}

/// Parses every line first (a bad line stops the run before any plugin call, naming the line
/// and field), then calls the plugin batch by batch and prints one JSON line per input.
fn emit<I, O, F>(
    plugin: &Plugin,
    input: &str,
    lines: &[(usize, String)],
    batch_size: usize,
    key: fn(&I) -> &String,
    call: F,
) -> anyhow::Result<()>
where
    I: DeserializeOwned,
    O: Serialize,
    F: Fn(&Plugin, &[I]) -> Result<Vec<Result<O, ItemError>>, crate::plugin::PluginError>,
{
    let items: Vec<I> = lines
        .iter()
        .map(|(n, l)| {
            serde_json::from_str(l).with_context(|| format!("{input}:{n}: invalid record"))
        })
        .collect::<anyhow::Result<_>>()?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut failed = 0usize;
    for (chunk_no, chunk) in items.chunks(batch_size).enumerate() {
        let results = call(plugin, chunk)?;
        for (i, (item, result)) in chunk.iter().zip(results).enumerate() {
            let line = lines[chunk_no * batch_size + i].0;
            let (ok, error) = match result {
                Ok(v) => (Some(v), None),
                Err(e) => {
                    failed += 1;
                    (None, Some(e))
                }
            };
            let rec = OutLine {
                line,
                key: key(item),
                ok,
                error,
            };
            serde_json::to_writer(&mut out, &rec)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    if failed > 0 {
        tracing::warn!("{failed} of {} items failed", items.len());
    }
    Ok(())
}
