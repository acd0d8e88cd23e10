//! "Try on 10 samples": runs a stored plugin in the sandbox on the first samples of a dataset,
//! with their captions as input, and reports what it made of each.

use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};
use vila2_host::plugin::records::{
    Candidate, Processed, Prompt, PromptRequest, Sample, SpecialistOutput, Verdict,
};
use vila2_host::plugin::{ItemError, PluginError, PluginRuntime, World};

use crate::AppState;
use crate::datasets;
use crate::entities::{dataset, dataset_sample, plugin};
use crate::error::ApiError;

/// How many samples a trial runs on.
pub const TRIAL_SAMPLES: u64 = 10;

/// What to try a plugin on.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct TrialRequest {
    /// A dataset of the team the request is made for.
    pub dataset_id: i32,
    /// JSON given to the plugin's `configure()` first (default: none, the plugin's defaults).
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// Task of the specialist outputs a post-processor gets (default: the plugin's name).
    #[serde(default)]
    pub task: Option<String>,
}

/// What the plugin made of one sample; exactly one of `verdict`, `prompt`, `processed` or
/// `error` is set (`prompt` and `processed` both for a specialist).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrialRow {
    pub idx: i32,
    pub key: String,
    pub caption: String,
    /// A caption filter's decision on the caption.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub verdict: Option<Verdict>,
    /// A prompt template's rendered prompt for the sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub prompt: Option<Prompt>,
    /// A post-processor's QA turns from the caption taken as the specialist's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub processed: Option<Processed>,
    /// Why the plugin failed on this sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The result of a trial.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Trial {
    pub plugin_id: i32,
    pub plugin: String,
    pub version: String,
    pub world: String,
    pub dataset_id: i32,
    pub dataset: String,
    pub rows: Vec<TrialRow>,
}

/// Runs `plugin` on the first [`TRIAL_SAMPLES`] samples of `dataset` in the sandbox. The
/// caller has checked that both are visible to the team.
pub async fn run_trial(
    state: &AppState,
    plugin: &plugin::Model,
    dataset: &dataset::Model,
    request: &TrialRequest,
) -> Result<Trial, ApiError> {
    let world: World = plugin
        .world
        .parse()
        .map_err(|e| ApiError::Internal(format!("plugin {} has a bad world: {e}", plugin.id)))?;
    let config = match &request.config {
        None | Some(serde_json::Value::Null) => None,
        Some(value) => Some(value.to_string()),
    };
    let task = request.task.clone().unwrap_or_else(|| plugin.name.clone());
    let samples = datasets::samples(&state.db, dataset, 1, TRIAL_SAMPLES)
        .await?
        .samples;
    if samples.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "dataset_id: dataset {} has no samples to try the plugin on",
            dataset.id
        )));
    }
    let bytes = state
        .store
        .get(&ObjectPath::from(plugin.object_key.as_str()))
        .await?
        .bytes()
        .await?;
    let runtime = state.plugins.clone();
    let name = format!("{} {}", plugin.name, plugin.version);
    let rows = tokio::task::spawn_blocking(move || {
        run_blocking(
            &runtime,
            &name,
            &bytes,
            world,
            config.as_deref(),
            &task,
            &samples,
        )
    })
    .await
    .map_err(|e| ApiError::Internal(format!("plugin trial task: {e}")))??;
    tracing::info!(
        plugin = plugin.id,
        dataset = dataset.id,
        rows = rows.len(),
        "plugin trial"
    );
    Ok(Trial {
        plugin_id: plugin.id,
        plugin: plugin.name.clone(),
        version: plugin.version.clone(),
        world: plugin.world.clone(),
        dataset_id: dataset.id,
        dataset: dataset.name.clone(),
        rows,
    })
}

/// Loads, configures and calls the plugin once per world on the whole batch. Compiles and runs
/// guest code: a blocking thread only.
fn run_blocking(
    runtime: &PluginRuntime,
    name: &str,
    bytes: &[u8],
    world: World,
    config: Option<&str>,
    task: &str,
    samples: &[dataset_sample::Model],
) -> Result<Vec<TrialRow>, ApiError> {
    let plugin = runtime
        .load_bytes(name, bytes, world)
        .map_err(|e| ApiError::Unprocessable(format!("plugin: cannot load: {e}")))?;
    if let Some(config) = config {
        plugin
            .configure(config)
            .map_err(|e| ApiError::BadRequest(format!("config: refused by the plugin: {e}")))?;
    }
    let inputs: Vec<Sample> = samples
        .iter()
        .map(|s| Sample {
            key: s.key.clone(),
            width: s.width.max(0) as u32,
            height: s.height.max(0) as u32,
            original_caption: s.caption.clone(),
            metadata: Vec::new(),
        })
        .collect();
    let mut rows: Vec<TrialRow> = samples
        .iter()
        .map(|s| TrialRow {
            idx: s.idx,
            key: s.key.clone(),
            caption: s.caption.clone(),
            verdict: None,
            prompt: None,
            processed: None,
            error: None,
        })
        .collect();
    if world.satisfies(World::CaptionFilter) {
        let batch: Vec<Candidate> = inputs
            .iter()
            .map(|sample| Candidate {
                sample: sample.clone(),
                text: sample.original_caption.clone(),
                ..Candidate::default()
            })
            .collect();
        let out = plugin.filter(&batch);
        fill(&mut rows, out, |row, v| row.verdict = Some(v));
    }
    if world.satisfies(World::PromptTemplate) {
        let batch: Vec<PromptRequest> = inputs
            .iter()
            .zip(samples)
            .map(|(sample, s)| PromptRequest {
                sample: sample.clone(),
                seed: s.idx.max(0) as u64,
                round: 1,
            })
            .collect();
        let out = plugin.render(&batch);
        fill(&mut rows, out, |row, p| row.prompt = Some(p));
    }
    if world.satisfies(World::PostProcessor) {
        let batch: Vec<SpecialistOutput> = inputs
            .iter()
            .map(|sample| SpecialistOutput {
                sample: sample.clone(),
                task: task.to_string(),
                prompt: String::new(),
                answer: sample.original_caption.clone(),
                model: String::new(),
            })
            .collect();
        let out = plugin.process(&batch);
        fill(&mut rows, out, |row, p| row.processed = Some(p));
    }
    Ok(rows)
}

/// Puts each item's result into its row; a failed batch (trap, deadline) is every row's error.
fn fill<T>(
    rows: &mut [TrialRow],
    out: Result<Vec<Result<T, ItemError>>, PluginError>,
    mut set: impl FnMut(&mut TrialRow, T),
) {
    match out {
        Ok(items) => {
            for (row, item) in rows.iter_mut().zip(items) {
                match item {
                    Ok(value) => set(row, value),
                    Err(e) => row.error = Some(e.to_string()),
                }
            }
        }
        Err(e) => {
            for row in rows {
                row.error = Some(e.to_string());
            }
        }
    }
}
