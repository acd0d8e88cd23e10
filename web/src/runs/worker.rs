//! The run worker: claims the queued run of highest priority, then the oldest (a conditional
//! `UPDATE`, so two workers never take the same run), prepares its folder (the team's dataset shards, the ShapesWorld
//! support sets), runs the VILA² pipeline on a blocking thread and records progress and the
//! outcome. A cancel is honoured before the pipeline's next task; so is a team quota, which
//! pauses the run (see [`crate::quotas`]) until paused runs are queued again.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use tokio::io::AsyncWriteExt;
use vila2_host::pipeline::{PipelineError, RunConfig};

use super::run_dir;
use crate::AppState;
use crate::datasets;
use crate::entities::{dataset, plugin, run};

/// How long the worker sleeps when the queue is empty.
pub const POLL: Duration = Duration::from_secs(2);

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed(String),
    Cancelled,
    /// Stopped by a team quota (the reason); queued again when the limit allows it.
    Paused(String),
}

/// Starts the worker loop on the runtime: one run at a time, until the process ends.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match run_next(&state).await {
                Ok(Some(_)) => {}
                Ok(None) => tokio::time::sleep(POLL).await,
                Err(e) => {
                    tracing::error!(error = %e, "run worker: database error");
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    })
}

/// Queues again the paused runs their quotas now allow, claims the next queued run, if any,
/// and executes it to its end (or pause). Returns its id.
pub async fn run_next(state: &AppState) -> Result<Option<(i32, Outcome)>, sea_orm::DbErr> {
    crate::quotas::resume_paused(&state.db).await?;
    let Some(row) = claim(&state.db).await? else {
        return Ok(None);
    };
    tracing::info!(run = row.id, team = row.team_id, "run started");
    let outcome = match execute(state, &row).await {
        Ok(outcome) => outcome,
        Err(msg) => Outcome::Failed(msg),
    };
    let (status, error, paused) = match &outcome {
        Outcome::Succeeded => (run::SUCCEEDED, None, None),
        Outcome::Failed(msg) => (run::FAILED, Some(msg.clone()), None),
        Outcome::Cancelled => (run::CANCELLED, None, None),
        Outcome::Paused(reason) => (run::PAUSED, None, Some(reason.clone())),
    };
    let finished = paused.is_none().then(Utc::now);
    match &error {
        Some(msg) => tracing::warn!(run = row.id, error = %msg, "run failed"),
        None => tracing::info!(run = row.id, status, "run finished"),
    }
    run::Entity::update_many()
        .col_expr(run::Column::Status, Expr::value(status))
        .col_expr(run::Column::Error, Expr::value(error.clone()))
        .col_expr(run::Column::FinishedAt, Expr::value(finished))
        .col_expr(run::Column::PausedReason, Expr::value(paused))
        .filter(run::Column::Id.eq(row.id))
        .exec(&state.db)
        .await?;
    if matches!(outcome, Outcome::Succeeded) && row.rounds >= 1 {
        // The blind judging items are drawn once, now, rather than on the page's first load.
        let done = run::Model {
            status: run::SUCCEEDED.into(),
            ..row.clone()
        };
        if let Err(e) = crate::judging::ensure_items(&state.db, &state.runs, &done).await {
            tracing::warn!(run = row.id, error = %e, "judging items not drawn; the run page retries");
        }
    }
    match &outcome {
        // Not an end: the run is queued again when its quota allows, and its page keeps
        // listening.
        Outcome::Paused(reason) => {
            let line = format!("run paused: {reason}");
            super::progress::log(&state.db, &state.live, row.id, "warn", line).await?
        }
        _ => super::progress::finish(&state.db, &state.live, row.id, status, error).await?,
    }
    Ok(Some((row.id, outcome)))
}

/// Marks the queued run of highest priority (then the oldest) `running` and returns it
/// (None: the queue is empty).
pub async fn claim(db: &DatabaseConnection) -> Result<Option<run::Model>, sea_orm::DbErr> {
    loop {
        let Some(next) = run::Entity::find()
            .filter(run::Column::Status.eq(run::QUEUED))
            .order_by_desc(run::Column::Priority)
            .order_by_asc(run::Column::Id)
            .one(db)
            .await?
        else {
            return Ok(None);
        };
        let taken = run::Entity::update_many()
            .col_expr(run::Column::Status, Expr::value(run::RUNNING))
            .col_expr(run::Column::StartedAt, Expr::value(Utc::now()))
            .filter(run::Column::Id.eq(next.id))
            .filter(run::Column::Status.eq(run::QUEUED))
            .exec(db)
            .await?;
        if taken.rows_affected == 1 {
            return run::Entity::find_by_id(next.id).one(db).await;
        }
        // Another worker (or a cancel) was first: try the next one.
    }
}

/// Prepares the run's folder and runs the pipeline, with the pipeline's own warnings going to
/// the run's log ([`super::pipeline_log`]); `Err` is the failure message.
async fn execute(state: &AppState, row: &run::Model) -> Result<Outcome, String> {
    let dir = run_dir(&state.runs, row.id);
    let capture = super::pipeline_log::capture(state.db.clone(), state.live.clone(), row.id, &dir);
    let outcome = prepare_and_run(state, row).await;
    capture.finish().await;
    outcome
}

/// [`execute`] without the log capture.
async fn prepare_and_run(state: &AppState, row: &run::Model) -> Result<Outcome, String> {
    let settings = &state.runs;
    let dir = run_dir(settings, row.id);
    let dataset = dataset::Entity::find_by_id(row.dataset_id)
        .one(&state.db)
        .await
        .map_err(|e| format!("reading dataset {}: {e}", row.dataset_id))?
        .ok_or_else(|| format!("dataset_id: dataset {} no longer exists", row.dataset_id))?;
    fetch_dataset(state, &dataset, &dir.join("dataset")).await?;
    let shapes_dir = dir.join("shapes");
    let shapes = settings.preset.shapes.clone();
    tokio::task::spawn_blocking(move || prepare_shapes(&shapes_dir, &shapes))
        .await
        .map_err(|e| format!("generating ShapesWorld: {e}"))??;
    let cfg = RunConfig::parse(&row.config).map_err(|e| format!("the run document: {e}"))?;
    fetch_plugins(
        state,
        &super::team_plugin_ids(&cfg),
        &dir.join(super::TEAM_PLUGINS),
    )
    .await?;
    let doc = dir.join("run.toml");
    tokio::fs::write(&doc, &row.config)
        .await
        .map_err(|e| format!("writing {}: {e}", doc.display()))?;
    let mut cfg = RunConfig::load(&doc).map_err(|e| e.to_string())?;
    if settings.threads.is_some() {
        cfg.threads = settings.threads;
    }
    let out = dir.join("out");
    let db = state.db.clone();
    let id = row.id;
    let handle = tokio::runtime::Handle::current();
    let plan = super::progress::Plan::new(
        &cfg,
        dataset.shard_count.max(0) as u64,
        dataset.sample_count.max(0) as u64,
    );
    let done = super::tasks::done_ids(&state.db, id)
        .await
        .map_err(|e| format!("reading the run's tasks: {e}"))?;
    let resumed = if done.is_empty() {
        "run started".to_string()
    } else {
        format!(
            "run resumed: {} tasks done in an earlier attempt",
            done.len()
        )
    };
    if let Err(e) = super::progress::log(&state.db, &state.live, id, "info", resumed).await {
        tracing::warn!(run = id, error = %e, "recording a run event");
    }
    let live = state.live.clone();
    let mut meter = crate::quotas::meter::RunMeter::new(db.clone(), handle.clone(), row);
    let joined = tokio::task::spawn_blocking(move || {
        let cancel = CancelCheck {
            db: db.clone(),
            id,
            handle: handle.clone(),
        };
        let store = super::tasks::DbTaskStore::new(db.clone(), id, handle.clone());
        let mut progress = super::progress::Recorder::new(db, live, id, handle, plan);
        let clock = meter.clock().clone();
        let result = vila2_host::pipeline::run_with_store(
            &cfg,
            &out,
            &store,
            &mut |event| progress.on_event(event),
            &mut || cancel.requested() || meter.should_pause(),
            &clock,
        );
        meter.flush();
        match result {
            Ok(_report) => Outcome::Succeeded,
            Err(PipelineError::Cancelled) => match meter.pause_reason() {
                Some(reason) => Outcome::Paused(reason.to_string()),
                None => Outcome::Cancelled,
            },
            Err(e) => Outcome::Failed(e.to_string()),
        }
    })
    .await;
    match joined {
        Ok(outcome) => Ok(outcome),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Ok(Outcome::Failed(format!("the pipeline panicked: {msg}")))
        }
        Err(e) => Err(format!("the pipeline task: {e}")),
    }
}

/// Copies the dataset's shards from the object store into `dir` (kept when already there).
async fn fetch_dataset(
    state: &AppState,
    dataset: &dataset::Model,
    dir: &Path,
) -> Result<(), String> {
    for n in 0..dataset.shard_count {
        let key = datasets::shard_key(&dataset.object_key, n);
        let path = dir.join(format!("shard-{n:06}.tar"));
        copy_object(state, &key, &path)
            .await
            .map_err(|e| format!("copying shard {n} of the dataset: {e}"))?;
    }
    Ok(())
}

/// Copies the components of the team plugins `ids` into `dir` as `<id>.wasm`.
async fn fetch_plugins(state: &AppState, ids: &[i32], dir: &Path) -> Result<(), String> {
    for &id in ids {
        let row = plugin::Entity::find_by_id(id)
            .one(&state.db)
            .await
            .map_err(|e| format!("reading plugin {id}: {e}"))?
            .ok_or_else(|| format!("plugin {id} no longer exists"))?;
        let key = object_store::path::Path::from(row.object_key.as_str());
        copy_object(state, &key, &dir.join(format!("{id}.wasm")))
            .await
            .map_err(|e| format!("copying plugin `{}` ({id}): {e}", row.name))?;
    }
    Ok(())
}

/// Streams object `key` to `path` through a `.part` file (kept when `path` exists).
async fn copy_object(
    state: &AppState,
    key: &object_store::path::Path,
    path: &Path,
) -> Result<(), String> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let part = path.with_extension("part");
    let mut file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = state
        .store
        .get(key)
        .await
        .map_err(|e| e.to_string())?
        .into_stream();
    while let Some(chunk) = stream.next().await {
        file.write_all(&chunk.map_err(|e| e.to_string())?)
            .await
            .map_err(|e| e.to_string())?;
    }
    file.sync_all().await.map_err(|e| e.to_string())?;
    tokio::fs::rename(&part, path)
        .await
        .map_err(|e| e.to_string())
}

/// Generates the ShapesWorld support sets into `dir` unless its stamp says they are there.
fn prepare_shapes(
    dir: &Path,
    shapes: &vila2_host::data::shapes::ShapesConfig,
) -> Result<(), String> {
    let stamp = dir.join("shapes.json");
    let want = serde_json::to_string(shapes).map_err(|e| e.to_string())?;
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(dir);
    vila2_host::data::shapes::generate(dir, shapes)
        .map_err(|e| format!("generating ShapesWorld: {e}"))?;
    std::fs::write(&stamp, want).map_err(|e| format!("writing {}: {e}", stamp.display()))
}

/// Reads the run's cancel flag (the pipeline asks before each task).
struct CancelCheck {
    db: DatabaseConnection,
    id: i32,
    handle: tokio::runtime::Handle,
}

impl CancelCheck {
    fn requested(&self) -> bool {
        let flag = self.handle.block_on(async {
            run::Entity::find_by_id(self.id)
                .one(&self.db)
                .await
                .map(|r| r.is_some_and(|r| r.cancel_requested))
        });
        flag.unwrap_or_else(|e| {
            tracing::warn!(run = self.id, error = %e, "reading the cancel flag");
            false
        })
    }
}
