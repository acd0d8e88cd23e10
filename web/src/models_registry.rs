//! The admins' model registry: local checkpoint folders (HF LLaVA or VILA1.5 layout), checked
//! at registration by loading their config with the host's loader; a run may start from one
//! (`model_id`, written into the run document's `model.init`).

use std::path::{Path, PathBuf};

use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, QueryOrder, Set};
use serde::Deserialize;
use vila2_host::pipeline::RunConfig;
use vila2_host::vlm::VlmError;
use vila2_host::vlm::config::LlavaConfig;

use crate::entities::{registered_model, user};
use crate::error::ApiError;

/// `POST /api/v1/admin/models`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterModel {
    /// A unique name, 1 to 100 characters.
    pub name: String,
    /// The checkpoint folder on the portal's machine.
    pub path: String,
}

/// A one-line summary of the model config in `dir`, loaded as the engine would.
pub fn describe(dir: &Path) -> Result<String, VlmError> {
    let cfg = if vila2_host::vlm::vila::is_vila_dir(dir) {
        vila2_host::vlm::vila::load_config(dir)?
    } else {
        LlavaConfig::from_file(&dir.join("config.json"))?
    };
    Ok(format!(
        "{:?} decoder {} layers × {} (vocab {}), {:?} vision {} px / patch {}, projector {:?}",
        cfg.text.family,
        cfg.text.num_hidden_layers,
        cfg.text.hidden_size,
        cfg.text.vocab_size,
        cfg.vision.family,
        cfg.vision.image_size,
        cfg.vision.patch_size,
        cfg.projector
    ))
}

/// Registers the folder of `req` after loading its config; a folder that does not load is a
/// 400 naming `path` and what is wrong.
pub async fn register(
    db: &DatabaseConnection,
    admin: &user::Model,
    req: &RegisterModel,
) -> Result<registered_model::Model, ApiError> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::BadRequest(
            "name: must be 1 to 100 characters".into(),
        ));
    }
    let given = PathBuf::from(req.path.trim());
    let dir = std::fs::canonicalize(&given).map_err(|e| {
        ApiError::BadRequest(format!(
            "path: {} cannot be opened on the portal's machine: {e}",
            given.display()
        ))
    })?;
    if !dir.is_dir() {
        return Err(ApiError::BadRequest(format!(
            "path: {} is not a folder (give the checkpoint folder)",
            dir.display()
        )));
    }
    let probe = dir.clone();
    let architecture = tokio::task::spawn_blocking(move || describe(&probe))
        .await
        .map_err(|e| ApiError::Internal(format!("model config task: {e}")))?
        .map_err(|e| {
            ApiError::BadRequest(format!(
                "path: {} does not hold a model vila2 can load: {e}",
                dir.display()
            ))
        })?;
    let row = registered_model::ActiveModel {
        name: Set(name.to_string()),
        path: Set(dir.to_string_lossy().into_owned()),
        architecture: Set(architecture),
        created_by: Set(Some(admin.id)),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(|e| match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => ApiError::Conflict(format!(
            "name: a model named {name:?} is registered already"
        )),
        _ => ApiError::Database(e),
    })?;
    tracing::info!(model = row.id, name = %row.name, path = %row.path, "model registered");
    Ok(row)
}

/// Every registered model, by name.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<registered_model::Model>, ApiError> {
    Ok(registered_model::Entity::find()
        .order_by_asc(registered_model::Column::Name)
        .all(db)
        .await?)
}

/// Removes model `id` from the registry (its folder stays; runs that use it keep their path).
pub async fn remove(db: &DatabaseConnection, id: i32) -> Result<(), ApiError> {
    let done = registered_model::Entity::delete_by_id(id).exec(db).await?;
    if done.rows_affected == 0 {
        return Err(ApiError::not_found("model", id));
    }
    tracing::info!(model = id, "model removed from the registry");
    Ok(())
}

/// The registered model `id` a run asks for; 404 naming `model_id` when there is none.
pub async fn for_run(
    db: &DatabaseConnection,
    id: i32,
) -> Result<registered_model::Model, ApiError> {
    registered_model::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("model_id: model {id} is not registered")))
}

/// The run document `config` (TOML) starting every round from `model` instead of the
/// preset's from-scratch model.
pub fn apply(config: &str, model: &registered_model::Model) -> Result<String, ApiError> {
    let mut cfg = RunConfig::parse(config)
        .map_err(|e| ApiError::Internal(format!("the run document is invalid: {e}")))?;
    cfg.model.init = Some(PathBuf::from(&model.path));
    cfg.model.spec = None;
    cfg.model.corpus = None;
    cfg.model.vocab_size = None;
    cfg.check()
        .map_err(|e| ApiError::BadRequest(format!("model_id: {e}")))?;
    toml::to_string(&cfg).map_err(|e| ApiError::Internal(format!("writing the run document: {e}")))
}
