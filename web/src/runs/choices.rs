//! The plugin choices of a run request: caption filters with their configurations and
//! specialists, resolved to the run document's plugin references and checked in the plugin
//! sandbox at submit (a configuration the plugin refuses is a 400, not a failed run).

use std::collections::BTreeSet;
use std::path::PathBuf;

use object_store::path::Path as ObjectPath;
use serde::Deserialize;
use vila2_host::data::shapes::Specialist;
use vila2_host::pipeline::config::{PluginRef, SpecialistConfig};
use vila2_host::plugin::World;

use crate::AppState;
use crate::error::ApiError;

/// A caption filter of a run request: a plugin name, or a name with its configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FilterChoice {
    /// A plugin name (the plugin's default configuration).
    Name(String),
    /// A plugin name and the configuration given to its `configure`.
    Configured(ConfiguredFilter),
}

/// `{"name": ..., "config": {...}}` in a run request's `filters`.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfiguredFilter {
    /// A team (or published) plugin's name, else a first-party component name.
    pub name: String,
    /// A JSON object passed to the plugin's `configure` (checked by the plugin at submit).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
}

impl FilterChoice {
    /// The plugin name.
    pub fn name(&self) -> &str {
        match self {
            FilterChoice::Name(name) => name,
            FilterChoice::Configured(c) => &c.name,
        }
    }

    /// The configuration, if one was given.
    pub fn config(&self) -> Option<&serde_json::Value> {
        match self {
            FilterChoice::Name(_) => None,
            FilterChoice::Configured(c) => c.config.as_ref(),
        }
    }
}

/// A specialist of a run request: a task name, or a task with its own plugin or
/// configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SpecialistChoice {
    /// A task name (`spatial`, `grounding`, `ocr`) with the preset's plugin for it.
    Name(String),
    /// A task with another `specialist` plugin and/or a configuration.
    Custom(CustomSpecialist),
}

/// `{"name": ..., "plugin": ..., "config": {...}}` in a run request's `specialists`.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomSpecialist {
    /// The task: `spatial`, `grounding` or `ocr` (the tasks the support data has).
    pub name: String,
    /// A team (or published) `specialist` plugin's name, else a first-party component name
    /// (default: the preset's, `vila2_<task>`).
    #[serde(default)]
    pub plugin: Option<String>,
    /// A JSON object passed to the plugin's `configure` (checked by the plugin at submit).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
}

impl SpecialistChoice {
    /// The task name.
    pub fn name(&self) -> &str {
        match self {
            SpecialistChoice::Name(name) => name,
            SpecialistChoice::Custom(c) => &c.name,
        }
    }

    /// The plugin, if one was named.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            SpecialistChoice::Name(_) => None,
            SpecialistChoice::Custom(c) => c.plugin.as_deref(),
        }
    }

    /// The configuration, if one was given.
    pub fn config(&self) -> Option<&serde_json::Value> {
        match self {
            SpecialistChoice::Name(_) => None,
            SpecialistChoice::Custom(c) => c.config.as_ref(),
        }
    }
}

/// The specialist tasks the ShapesWorld support data provides, by name.
pub fn specialist_tasks() -> Vec<&'static str> {
    Specialist::ALL.iter().map(|s| s.name()).collect()
}

/// Where a resolved plugin's component is now, to check it at submit.
#[derive(Debug, Clone)]
pub enum Source {
    /// A team plugin: its object-store key.
    Team(String),
    /// A first-party component file.
    Component(PathBuf),
}

/// A plugin a request named: its reference in the run document and its component.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub plugin: PluginRef,
    pub source: Source,
}

/// `value` as a plugin configuration: None (absent or JSON null), else a JSON object without
/// nulls (the run document is TOML, which has none); else a 400 naming `field`.
pub fn object_config(
    field: &str,
    value: Option<&serde_json::Value>,
) -> Result<Option<serde_json::Value>, ApiError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v @ serde_json::Value::Object(_)) => {
            if has_null(v) {
                return Err(ApiError::BadRequest(format!(
                    "{field}: null values cannot be stored in the run document; leave the key out"
                )));
            }
            Ok(Some(v.clone()))
        }
        Some(other) => Err(ApiError::BadRequest(format!(
            "{field}: must be a JSON object, not `{other}`"
        ))),
    }
}

fn has_null(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Array(items) => items.iter().any(has_null),
        serde_json::Value::Object(map) => map.values().any(has_null),
        _ => false,
    }
}

/// Loads `resolved` in the plugin sandbox as `world` and applies its configuration, if any:
/// a component of another world is a 400 naming `field`, a configuration the plugin refuses
/// a 400 naming `config_field` with the plugin's own message.
pub async fn check_in_sandbox(
    state: &AppState,
    field: &str,
    config_field: &str,
    resolved: &Resolved,
    world: World,
) -> Result<(), ApiError> {
    let bytes: Vec<u8> = match &resolved.source {
        Source::Team(key) => state
            .store
            .get(&ObjectPath::from(key.as_str()))
            .await?
            .bytes()
            .await?
            .to_vec(),
        Source::Component(path) => tokio::fs::read(path)
            .await
            .map_err(|e| ApiError::Internal(format!("reading {}: {e}", path.display())))?,
    };
    let runtime = state.plugins.clone();
    let name = resolved.plugin.plugin.clone();
    let config = resolved.plugin.config.as_ref().map(|c| c.to_string());
    let (field, config_field) = (field.to_string(), config_field.to_string());
    tokio::task::spawn_blocking(move || {
        let plugin = runtime
            .load_bytes(&name, &bytes, world)
            .map_err(|e| ApiError::BadRequest(format!("{field}: {e}")))?;
        if let Some(config) = config {
            plugin.configure(&config).map_err(|e| {
                ApiError::BadRequest(format!("{config_field}: refused by the plugin: {e}"))
            })?;
        }
        Ok(())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("plugin check task: {e}")))?
}

/// The caption filters of `choices` for team `team_id`, in order; a filter given a
/// configuration is checked in the sandbox.
pub async fn filters(
    state: &AppState,
    team_id: i32,
    choices: &[FilterChoice],
) -> Result<Vec<PluginRef>, ApiError> {
    let mut refs = Vec::with_capacity(choices.len());
    for (i, choice) in choices.iter().enumerate() {
        let field = format!("filters[{i}]");
        let config_field = format!("{field}.config");
        let config = object_config(&config_field, choice.config())?;
        let mut resolved = super::resolve_plugin(
            &state.db,
            &state.runs,
            team_id,
            &field,
            choice.name(),
            World::CaptionFilter,
        )
        .await?;
        resolved.plugin.config = config;
        if resolved.plugin.config.is_some() {
            check_in_sandbox(
                state,
                &field,
                &config_field,
                &resolved,
                World::CaptionFilter,
            )
            .await?;
        }
        refs.push(resolved.plugin);
    }
    Ok(refs)
}

/// The specialists of `choices` for team `team_id`: each a task the support data has (once),
/// with the preset's plugin and data for it (`preset`) unless another plugin is named. A
/// named plugin or a configuration is checked in the sandbox.
pub async fn specialists(
    state: &AppState,
    team_id: i32,
    choices: &[SpecialistChoice],
    preset: &[SpecialistConfig],
) -> Result<Vec<SpecialistConfig>, ApiError> {
    let tasks = specialist_tasks();
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(choices.len());
    for (i, choice) in choices.iter().enumerate() {
        let field = format!("specialists[{i}]");
        let name = choice.name();
        if !tasks.contains(&name) {
            return Err(ApiError::BadRequest(format!(
                "{field}: `{name}` is not a specialist task ({})",
                tasks.join(", ")
            )));
        }
        if !seen.insert(name) {
            return Err(ApiError::BadRequest(format!(
                "{field}: `{name}` is listed twice"
            )));
        }
        if state.runs.preset.shapes.specialist == 0 {
            return Err(ApiError::BadRequest(format!(
                "{field}: the portal's preset generates no specialist data"
            )));
        }
        let base = preset.iter().find(|s| s.name == name);
        let config_field = format!("{field}.config");
        let config = object_config(&config_field, choice.config())?;
        let (plugin_field, mut resolved) = match choice.plugin() {
            Some(plugin) => {
                let at = format!("{field}.plugin");
                let r = super::resolve_plugin(
                    &state.db,
                    &state.runs,
                    team_id,
                    &at,
                    plugin,
                    World::Specialist,
                )
                .await?;
                (at, r)
            }
            None => {
                let default = base.map_or(format!("vila2_{name}"), |b| b.plugin.plugin.clone());
                let mut r = super::component(&state.runs, &field, &default)?;
                r.plugin.config = base.and_then(|b| b.plugin.config.clone());
                (field.clone(), r)
            }
        };
        if config.is_some() {
            resolved.plugin.config = config;
        }
        if choice.plugin().is_some() || resolved.plugin.config.is_some() {
            check_in_sandbox(
                state,
                &plugin_field,
                &config_field,
                &resolved,
                World::Specialist,
            )
            .await?;
        }
        out.push(SpecialistConfig {
            name: name.to_string(),
            plugin: resolved.plugin,
            data: base.map_or_else(
                || PathBuf::from(format!("shapes/specialist/{name}")),
                |b| b.data.clone(),
            ),
            train: base.and_then(|b| b.train.clone()),
        });
    }
    Ok(out)
}
