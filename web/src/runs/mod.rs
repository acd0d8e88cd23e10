//! Augmentation runs: submitted by team members (a run document built from a preset), queued
//! in the database and executed one at a time by the [`worker`].

pub mod choices;
pub mod download;
pub mod events;
pub mod pipeline_log;
pub mod progress;
pub mod samples;
pub mod tasks;
pub mod worker;

use std::path::PathBuf;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde::Deserialize;
use vila2_host::data::shapes::ShapesConfig;
use vila2_host::pipeline::config::{PluginRef, SpecialistConfig};
use vila2_host::pipeline::{Fusion, RunConfig};
use vila2_host::plugin::World;

pub use choices::{ConfiguredFilter, CustomSpecialist, FilterChoice, SpecialistChoice};

use crate::AppState;
use crate::datasets;
use crate::entities::{plugin, run, team, user};
use crate::error::ApiError;

/// Most self-augmentation rounds a run may ask for.
pub const MAX_ROUNDS: i64 = 5;

/// What a run is built from and where runs are executed.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Each run's folder is `<runs_dir>/<id>`.
    pub runs_dir: PathBuf,
    /// Folder of the first-party plugin components (`VILA2_COMPONENTS`).
    pub components_dir: Option<PathBuf>,
    /// The preset every run document starts from.
    pub preset: RunPreset,
    /// libtorch threads of the pipeline (None: the pipeline's default).
    pub threads: Option<usize>,
}

/// A run document template (paths relative to the run's folder: the team's dataset is
/// `dataset/`, the generated ShapesWorld support data `shapes/`) and the ShapesWorld it needs.
#[derive(Debug, Clone)]
pub struct RunPreset {
    pub document: String,
    pub shapes: ShapesConfig,
}

const MINI: &str = include_str!("preset_mini.toml");
const TINY: &str = include_str!("preset_tiny.toml");

impl RunPreset {
    /// The `vila2 demo --preset mini` recipe on the team's dataset: minutes on a CPU.
    pub fn mini() -> Self {
        RunPreset {
            document: MINI.into(),
            shapes: ShapesConfig {
                seed: 1,
                pretrain: 1,
                ..ShapesConfig::default()
            },
        }
    }

    /// The preset `VILA2_RUN_PRESET` names (`tiny` or `mini`; default and unknown: mini).
    pub fn from_env() -> Self {
        match std::env::var("VILA2_RUN_PRESET").as_deref() {
            Ok("tiny") => Self::tiny(),
            Ok("mini") | Err(_) => Self::mini(),
            Ok(other) => {
                tracing::warn!(
                    preset = other,
                    "VILA2_RUN_PRESET: unknown preset (tiny or mini); using mini"
                );
                Self::mini()
            }
        }
    }

    /// One or two steps per stage and a handful of evaluation images: seconds, for tests.
    pub fn tiny() -> Self {
        RunPreset {
            document: TINY.into(),
            shapes: ShapesConfig {
                seed: 1,
                pretrain: 1,
                sft: 8,
                specialist: 1,
                eval: 4,
                ..ShapesConfig::default()
            },
        }
    }
}

/// `POST /teams/{id}/runs`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// A dataset of the team (its samples are the pretraining set that is recaptioned).
    pub dataset_id: i32,
    /// Self-augmentation rounds after round 0, 0 to 5.
    pub rounds: i64,
    /// `replace`, `concat` (default) or `qa`.
    #[serde(default)]
    pub fusion: Option<String>,
    /// Prompt-template plugin: a team (or published) plugin's name, else a first-party
    /// component name (default `vila2_recaption`).
    #[serde(default)]
    pub template: Option<String>,
    /// Caption-filter plugins, applied in order (default: the preset's, `vila2_quality` with
    /// `{"min_words": 4}`; `[]`: none). Each is a plugin name (as `template`; the plugin's
    /// default configuration) or `{"name": ..., "config": {...}}`, the config a JSON object
    /// given to the plugin's `configure`, which is tried in the sandbox at submit.
    #[serde(default)]
    pub filters: Option<Vec<FilterChoice>>,
    /// Specialist tasks after the last round (`spatial`, `grounding`, `ocr`: those the
    /// ShapesWorld support data has; default: the preset's; `[]`: none). Each is a task name
    /// (with the preset's `vila2_<task>` plugin) or `{"name": ..., "plugin": ..., "config":
    /// {...}}` naming a team (or published) `specialist` plugin, else a first-party component.
    #[serde(default)]
    pub specialists: Option<Vec<SpecialistChoice>>,
    /// A model of the admins' registry to start every round from (the run document's
    /// `model.init`) instead of the preset's from-scratch model.
    #[serde(default)]
    pub model_id: Option<i32>,
}

/// The name of the component `name` once it is known to be in the components folder.
fn component_name(settings: &RunSettings, field: &str, name: &str) -> Result<String, ApiError> {
    Ok(component(settings, field, name)?.plugin.plugin)
}

/// The component `name` in the components folder, or a 400 naming `field`.
fn component(
    settings: &RunSettings,
    field: &str,
    name: &str,
) -> Result<choices::Resolved, ApiError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ApiError::BadRequest(format!(
            "{field}: `{name}` is not a component name (ASCII letters, digits, _ or -)"
        )));
    }
    let Some(dir) = &settings.components_dir else {
        return Err(ApiError::BadRequest(format!(
            "{field}: no components folder is configured (VILA2_COMPONENTS)"
        )));
    };
    let path = dir.join(format!("{name}.wasm"));
    if !path.is_file() {
        return Err(ApiError::BadRequest(format!(
            "{field}: no component `{name}` in {}",
            dir.display()
        )));
    }
    Ok(choices::Resolved {
        plugin: PluginRef {
            plugin: name.into(),
            config: None,
        },
        source: choices::Source::Component(path),
    })
}

/// A plugin of the team (its own, else a published one; the newest version) named `name`, as
/// a component file `plugins/<plugin id>.wasm` of the run's folder, which the worker fetches
/// from the object store; else the first-party component `name`. A team plugin of another
/// world than `world` is a 400 naming `field`.
async fn resolve_plugin(
    db: &DatabaseConnection,
    settings: &RunSettings,
    team_id: i32,
    field: &str,
    name: &str,
    world: World,
) -> Result<choices::Resolved, ApiError> {
    let found = plugin::Entity::find()
        .filter(plugin::Column::Name.eq(name))
        .filter(
            Condition::any()
                .add(plugin::Column::TeamId.eq(team_id))
                .add(plugin::Column::IsPublic.eq(true)),
        )
        .all(db)
        .await?
        .into_iter()
        // The team's own first, then the newest.
        .max_by_key(|p| (p.team_id == team_id, p.id));
    match found {
        Some(p) if p.world != world.name() => Err(ApiError::BadRequest(format!(
            "{field}: plugin `{name}` is a {} plugin, not a {}",
            p.world,
            world.name()
        ))),
        Some(p) => Ok(choices::Resolved {
            plugin: PluginRef {
                plugin: format!("{TEAM_PLUGINS}/{}.wasm", p.id),
                config: None,
            },
            source: choices::Source::Team(p.object_key),
        }),
        None => component(settings, field, name),
    }
}

/// Folder of a run's team plugin components, relative to the run's folder.
pub const TEAM_PLUGINS: &str = "plugins";

/// The ids of the team plugins the run document `config` uses (`plugins/<id>.wasm`).
pub fn team_plugin_ids(config: &RunConfig) -> Vec<i32> {
    let refs = std::iter::once(&config.recaption.template)
        .chain(&config.recaption.filters)
        .chain(config.specialists.iter().map(|s| &s.plugin));
    refs.filter_map(|r| {
        r.plugin
            .strip_prefix(TEAM_PLUGINS)?
            .strip_prefix('/')?
            .strip_suffix(".wasm")?
            .parse()
            .ok()
    })
    .collect()
}

/// The run document of `req` (TOML): the preset with the request's rounds and fusion, and the
/// given (already resolved) template, filters and specialists (None: the preset's).
pub fn build_config(
    settings: &RunSettings,
    req: &RunRequest,
    template: Option<PluginRef>,
    filters: Option<Vec<PluginRef>>,
    specialists: Option<Vec<SpecialistConfig>>,
) -> Result<String, ApiError> {
    if !(0..=MAX_ROUNDS).contains(&req.rounds) {
        return Err(ApiError::BadRequest(format!(
            "rounds: {} is not in 0..={MAX_ROUNDS}",
            req.rounds
        )));
    }
    let mut cfg = RunConfig::parse(&settings.preset.document)
        .map_err(|e| ApiError::Internal(format!("the run preset is invalid: {e}")))?;
    cfg.rounds = req.rounds as u32;
    if let Some(fusion) = &req.fusion {
        cfg.fusion = match fusion.as_str() {
            "replace" => Fusion::Replace,
            "concat" => Fusion::Concat,
            "qa" => Fusion::Qa,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "fusion: `{other}` is not one of replace, concat, qa"
                )));
            }
        };
    }
    match template {
        Some(t) => cfg.recaption.template = t,
        None => {
            cfg.recaption.template.plugin =
                component_name(settings, "template", &cfg.recaption.template.plugin)?;
        }
    }
    match filters {
        Some(f) => cfg.recaption.filters = f,
        None => {
            for (i, f) in cfg.recaption.filters.iter_mut().enumerate() {
                f.plugin = component_name(settings, &format!("filters[{i}]"), &f.plugin)?;
            }
        }
    }
    match specialists {
        Some(s) => {
            if !s.is_empty() && cfg.train.specialist.is_none() {
                return Err(ApiError::BadRequest(
                    "specialists: the portal's preset has no specialist training stage".into(),
                ));
            }
            cfg.specialists = s;
        }
        None => {
            for s in &mut cfg.specialists {
                s.plugin.plugin = component_name(settings, "specialists", &s.plugin.plugin)?;
            }
        }
    }
    cfg.components_dir = settings.components_dir.clone();
    cfg.check()
        .map_err(|e| ApiError::Internal(format!("the run preset is invalid: {e}")))?;
    toml::to_string(&cfg).map_err(|e| ApiError::Internal(format!("writing the run document: {e}")))
}

/// Queues a run of `req` for `team`, submitted by `user`.
pub async fn submit(
    state: &AppState,
    team: &team::Model,
    user: &user::Model,
    req: &RunRequest,
) -> Result<run::Model, ApiError> {
    let (db, settings) = (&state.db, &*state.runs);
    let dataset = datasets::get(db, team.id, req.dataset_id)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(msg) => ApiError::NotFound(format!("dataset_id: {msg}")),
            e => e,
        })?;
    let model = match req.model_id {
        Some(id) => Some(crate::models_registry::for_run(db, id).await?),
        None => None,
    };
    let template = match &req.template {
        Some(name) => Some(
            resolve_plugin(
                db,
                settings,
                team.id,
                "template",
                name,
                World::PromptTemplate,
            )
            .await?
            .plugin,
        ),
        None => None,
    };
    let filters = match &req.filters {
        Some(list) => Some(choices::filters(state, team.id, list).await?),
        None => None,
    };
    let specialists = match &req.specialists {
        Some(list) => {
            let preset = RunConfig::parse(&settings.preset.document)
                .map_err(|e| ApiError::Internal(format!("the run preset is invalid: {e}")))?;
            Some(choices::specialists(state, team.id, list, &preset.specialists).await?)
        }
        None => None,
    };
    let mut config = build_config(settings, req, template, filters, specialists)?;
    if let Some(model) = &model {
        config = crate::models_registry::apply(&config, model)?;
    }
    crate::quotas::check_submit(db, team, &dataset).await?;
    let row = run::ActiveModel {
        team_id: Set(team.id),
        dataset_id: Set(req.dataset_id),
        created_by: Set(user.id),
        status: Set(run::QUEUED.into()),
        config: Set(config),
        rounds: Set(req.rounds as i32),
        stage: Set(String::new()),
        done: Set(0),
        total: Set(0),
        error: Set(None),
        cancel_requested: Set(false),
        created_at: Set(Utc::now()),
        started_at: Set(None),
        finished_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    tracing::info!(
        run = row.id,
        team = team.id,
        dataset = req.dataset_id,
        rounds = req.rounds,
        "run queued"
    );
    Ok(row)
}

/// The runs of `team_id`, newest first.
pub async fn list(db: &DatabaseConnection, team_id: i32) -> Result<Vec<run::Model>, ApiError> {
    Ok(run::Entity::find()
        .filter(run::Column::TeamId.eq(team_id))
        .order_by_desc(run::Column::Id)
        .all(db)
        .await?)
}

/// Run `id` of `team_id`; 404 when it does not exist or belongs to another team.
pub async fn get(db: &DatabaseConnection, team_id: i32, id: i32) -> Result<run::Model, ApiError> {
    run::Entity::find_by_id(id)
        .filter(run::Column::TeamId.eq(team_id))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found("run", id))
}

/// Cancels `run`: a queued or paused run at once, a running one when the worker reaches its next task;
/// a finished run is a 409.
pub async fn cancel(db: &DatabaseConnection, run: &run::Model) -> Result<run::Model, ApiError> {
    let queued = run::Entity::update_many()
        .col_expr(run::Column::Status, Expr::value(run::CANCELLED))
        .col_expr(run::Column::FinishedAt, Expr::value(Utc::now()))
        .filter(run::Column::Id.eq(run.id))
        .filter(run::Column::Status.is_in([run::QUEUED, run::PAUSED]))
        .exec(db)
        .await?;
    if queued.rows_affected == 0 {
        let running = run::Entity::update_many()
            .col_expr(run::Column::CancelRequested, Expr::value(true))
            .filter(run::Column::Id.eq(run.id))
            .filter(run::Column::Status.eq(run::RUNNING))
            .exec(db)
            .await?;
        if running.rows_affected == 0 {
            let now = get(db, run.team_id, run.id).await?;
            return Err(ApiError::Conflict(format!(
                "run {} is {} already",
                run.id, now.status
            )));
        }
    }
    tracing::info!(run = run.id, "run cancel requested");
    get(db, run.team_id, run.id).await
}

/// At start: runs a crashed process left `running` are queued again (the pipeline resumes
/// from its task files), or cancelled when a cancel was asked. Returns how many were requeued.
/// This assumes one portal process executes runs on the database.
pub async fn recover(db: &DatabaseConnection) -> Result<u64, sea_orm::DbErr> {
    run::Entity::update_many()
        .col_expr(run::Column::Status, Expr::value(run::CANCELLED))
        .col_expr(run::Column::FinishedAt, Expr::value(Utc::now()))
        .filter(run::Column::Status.eq(run::RUNNING))
        .filter(run::Column::CancelRequested.eq(true))
        .exec(db)
        .await?;
    let requeued = run::Entity::update_many()
        .col_expr(run::Column::Status, Expr::value(run::QUEUED))
        .filter(run::Column::Status.eq(run::RUNNING))
        .exec(db)
        .await?;
    Ok(requeued.rows_affected)
}

/// The folder of run `id`.
pub fn run_dir(settings: &RunSettings, id: i32) -> PathBuf {
    settings.runs_dir.join(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portal's mini preset is the demo's recipe: only the run's own fields (seed,
    /// rounds, where the pretraining data, its ground truth and the plugins are) differ.
    #[test]
    fn mini_preset_keeps_the_demo_recipe() {
        let demo: toml::Table = vila2_host::cli::MINI_RECIPE
            .replace("{seed}", "1")
            .replace("{rounds}", "0")
            .replace("{components}", "components")
            .parse()
            .unwrap();
        let portal: toml::Table = MINI.parse().unwrap();
        for key in [
            "fusion",
            "max_failure_fraction",
            "eval",
            "model",
            "train",
            "recaption",
            "specialists",
        ] {
            assert!(demo.contains_key(key), "{key}");
            assert_eq!(
                portal.get(key),
                demo.get(key),
                "preset_mini.toml's `{key}` differs from host/src/cli/demo_mini.toml's"
            );
        }
        assert_eq!(portal["data"]["sft"], demo["data"]["sft"]);
    }
}
