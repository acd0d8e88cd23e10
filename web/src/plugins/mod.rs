//! Plugins: uploads validated with the plugin runtime, stored in the object store, recorded in
//! the database; who sees which (a team its own, every team the published ones); trials.

mod trial;

pub use trial::{TRIAL_SAMPLES, Trial, TrialRequest, TrialRow, run_trial};

use bytes::Bytes;
use object_store::PutPayload;
use object_store::path::Path as ObjectPath;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde::Serialize;
use vila2_host::plugin::{PluginError, PluginRuntime};

use crate::AppState;
use crate::entities::plugin;
use crate::error::ApiError;

/// What the runtime found in an uploaded component.
#[derive(Debug, Clone, Serialize)]
pub struct Validated {
    pub name: String,
    pub version: String,
    pub world: String,
    pub description: String,
    pub config_schema: String,
    pub sha256: String,
    pub size: usize,
}

/// Checks `bytes` as a plugin (format, size, compiles, implements a vila2 world, answers
/// `describe()`). Compiles and runs guest code: call it on a blocking thread.
pub fn validate(
    runtime: &PluginRuntime,
    file_name: &str,
    bytes: &[u8],
) -> Result<Validated, PluginError> {
    let inspection = runtime.inspect_bytes(file_name, bytes)?;
    let Some(world) = inspection.world else {
        return Err(PluginError::Runtime(format!(
            "{file_name} implements no vila2 plugin world (it exports: {})",
            if inspection.exports.is_empty() {
                "nothing".to_string()
            } else {
                inspection.exports.join(", ")
            }
        )));
    };
    let description = runtime.load_bytes(file_name, bytes, world)?.describe()?;
    Ok(Validated {
        name: description.name,
        version: description.version,
        world: world.to_string(),
        description: description.description,
        config_schema: description.config_schema,
        sha256: inspection.sha256,
        size: inspection.size,
    })
}

/// Validates and stores an uploaded component for `team_id`.
pub async fn upload(
    state: &AppState,
    team_id: i32,
    file_name: &str,
    bytes: Bytes,
) -> Result<(plugin::Model, Validated), ApiError> {
    state.metrics.uploaded("plugin", bytes.len() as u64);
    if bytes.is_empty() {
        return Err(ApiError::BadRequest("file: the upload is empty".into()));
    }
    let limit = state.plugins.config().max_component_bytes;
    if bytes.len() > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "file: {} bytes is over the {limit}-byte limit for plugins",
            bytes.len()
        )));
    }
    let runtime = state.plugins.clone();
    let name = file_name.to_string();
    let checked = bytes.clone();
    let validated = tokio::task::spawn_blocking(move || validate(&runtime, &name, &checked))
        .await
        .map_err(|e| ApiError::Internal(format!("plugin validation task: {e}")))?
        .map_err(|e| ApiError::Unprocessable(format!("file: rejected: {e}")))?;

    let duplicate = plugin::Entity::find()
        .filter(plugin::Column::TeamId.eq(team_id))
        .filter(plugin::Column::Name.eq(&validated.name))
        .filter(plugin::Column::Version.eq(&validated.version))
        .one(&state.db)
        .await?;
    if duplicate.is_some() {
        return Err(ApiError::Conflict(format!(
            "file: this team already has {} version {}; bump the version to upload a new build",
            validated.name, validated.version
        )));
    }
    let key = format!("plugins/team-{team_id}/{}.wasm", validated.sha256);
    state
        .store
        .put(&ObjectPath::from(key.as_str()), PutPayload::from(bytes))
        .await?;
    let row = plugin::ActiveModel {
        team_id: Set(team_id),
        name: Set(validated.name.clone()),
        version: Set(validated.version.clone()),
        world: Set(validated.world.clone()),
        sha256: Set(validated.sha256.clone()),
        size: Set(validated.size as i64),
        object_key: Set(key),
        is_public: Set(false),
        created_at: Set(chrono::Utc::now()),
        description: Set(validated.description.clone()),
        config_schema: Set(validated.config_schema.clone()),
        ..Default::default()
    };
    let row = row.insert(&state.db).await?;
    tracing::info!(team_id, plugin = %row.name, version = %row.version, world = %row.world, "plugin uploaded");
    Ok((row, validated))
}

/// The plugins team `team_id` sees: its own and the published ones of other teams, by name
/// and version.
pub async fn list(db: &DatabaseConnection, team_id: i32) -> Result<Vec<plugin::Model>, ApiError> {
    Ok(plugin::Entity::find()
        .filter(visible_to(team_id))
        .order_by_asc(plugin::Column::Name)
        .order_by_asc(plugin::Column::Version)
        .order_by_asc(plugin::Column::Id)
        .all(db)
        .await?)
}

fn visible_to(team_id: i32) -> Condition {
    Condition::any()
        .add(plugin::Column::TeamId.eq(team_id))
        .add(plugin::Column::IsPublic.eq(true))
}

/// Plugin `plugin_id` as team `team_id` sees it: its own, or one an admin published; 404
/// otherwise (whether it does not exist or is another team's).
pub async fn visible(
    db: &DatabaseConnection,
    team_id: i32,
    plugin_id: i32,
) -> Result<plugin::Model, ApiError> {
    plugin::Entity::find_by_id(plugin_id)
        .filter(visible_to(team_id))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found("plugin", plugin_id))
}

/// Plugin `plugin_id` of team `team_id` itself (not a published one of another team); 404
/// otherwise.
pub async fn owned(
    db: &DatabaseConnection,
    team_id: i32,
    plugin_id: i32,
) -> Result<plugin::Model, ApiError> {
    plugin::Entity::find_by_id(plugin_id)
        .filter(plugin::Column::TeamId.eq(team_id))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found("plugin", plugin_id))
}

/// Every version of `plugin` (same owner, same name) that team `team_id` sees, oldest first.
pub async fn versions(
    db: &DatabaseConnection,
    team_id: i32,
    plugin: &plugin::Model,
) -> Result<Vec<plugin::Model>, ApiError> {
    Ok(plugin::Entity::find()
        .filter(plugin::Column::TeamId.eq(plugin.team_id))
        .filter(plugin::Column::Name.eq(&plugin.name))
        .filter(visible_to(team_id))
        .order_by_asc(plugin::Column::CreatedAt)
        .order_by_asc(plugin::Column::Id)
        .all(db)
        .await?)
}

/// Publishes `plugin` to every team (read-only to them), or withdraws it.
pub async fn set_public(
    db: &DatabaseConnection,
    plugin: plugin::Model,
    public: bool,
) -> Result<plugin::Model, ApiError> {
    let (id, name, version) = (plugin.id, plugin.name.clone(), plugin.version.clone());
    let mut row: plugin::ActiveModel = plugin.into();
    row.is_public = Set(public);
    let row = row.update(db).await?;
    tracing::info!(plugin = id, %name, %version, public, "plugin visibility changed");
    Ok(row)
}
