//! The `make run` demo data: once, a `demo` team with the admin in it and a small ShapesWorld
//! dataset, so the admin can start the tiny VILA² loop from the dashboard right away.

use std::io::Write;

use vila2_host::data::shapes::{ShapesConfig, generate};

use crate::entities::{dataset, team};
use crate::error::{ApiError, StartError};
use crate::{AppState, Options, accounts, build_state, datasets, jwt_secret};

/// Name of the demo team.
pub const DEMO_TEAM: &str = "demo";
/// Name of the demo dataset.
pub const DEMO_DATASET: &str = "shapes-demo";
/// Samples of the demo dataset.
pub const DEMO_SAMPLES: usize = 16;

/// Seeds the demo for the user `email` in the database and data directory of `options`;
/// the new dataset, or None when it was there already.
pub async fn seed_demo(
    options: &Options,
    email: &str,
) -> Result<Option<dataset::Model>, StartError> {
    std::fs::create_dir_all(&options.data_dir).map_err(|source| StartError::DataDir {
        path: options.data_dir.display().to_string(),
        source,
    })?;
    let secret = jwt_secret(&options.data_dir)?;
    let state = build_state(options, &secret).await?;
    let seeded = seed(&state, email)
        .await
        .map_err(|e| StartError::User(format!("seeding the demo dataset: {e}")));
    state.db.close().await.ok();
    seeded
}

/// [`seed_demo`] on a running state.
pub async fn seed(state: &AppState, email: &str) -> Result<Option<dataset::Model>, ApiError> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    accounts::find_user_by_email(&state.db, email)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("email: no user {email}")))?;
    let team = match team::Entity::find()
        .filter(team::Column::Name.eq(DEMO_TEAM))
        .one(&state.db)
        .await?
    {
        Some(t) => t,
        None => accounts::create_team(&state.db, DEMO_TEAM).await?,
    };
    match accounts::add_member(&state.db, team.id, email, "owner").await {
        Ok(_) | Err(ApiError::Conflict(_)) => {}
        Err(e) => return Err(e),
    }
    if datasets::list(&state.db, team.id)
        .await?
        .iter()
        .any(|d| d.name == DEMO_DATASET)
    {
        return Ok(None);
    }
    let shard = tokio::task::spawn_blocking(shapes_shard)
        .await
        .map_err(|e| ApiError::Internal(format!("generating ShapesWorld: {e}")))??;
    let mut file = tempfile::NamedTempFile::new_in(&state.tmp_dir)
        .map_err(|e| ApiError::Internal(format!("spooling the demo shard: {e}")))?;
    file.write_all(&shard)
        .map_err(|e| ApiError::Internal(format!("spooling the demo shard: {e}")))?;
    let received = datasets::Received {
        file,
        file_name: format!("{DEMO_DATASET}.tar"),
        name: Some(DEMO_DATASET.into()),
        bytes: shard.len() as u64,
        reservation: None,
    };
    let row = datasets::ingest(state, &team, received).await?;
    tracing::info!(team = team.id, dataset = row.id, "seeded the demo dataset");
    Ok(Some(row))
}

/// One ShapesWorld pretraining shard of [`DEMO_SAMPLES`] samples.
fn shapes_shard() -> Result<Vec<u8>, ApiError> {
    let dir =
        tempfile::tempdir().map_err(|e| ApiError::Internal(format!("a work directory: {e}")))?;
    let cfg = ShapesConfig {
        seed: 11,
        pretrain: DEMO_SAMPLES,
        sft: 1,
        specialist: 1,
        eval: 1,
        shard_size: DEMO_SAMPLES,
        ..ShapesConfig::default()
    };
    let world = dir.path().join("world");
    generate(&world, &cfg)
        .map_err(|e| ApiError::Internal(format!("generating ShapesWorld: {e}")))?;
    let shards = vila2_host::data::webdataset::list_shards(&world.join("pretrain"))
        .map_err(|e| ApiError::Internal(format!("the generated shard: {e}")))?;
    let first = shards
        .first()
        .ok_or_else(|| ApiError::Internal("ShapesWorld wrote no pretraining shard".into()))?;
    std::fs::read(first).map_err(|e| ApiError::Internal(format!("{}: {e}", first.display())))
}
