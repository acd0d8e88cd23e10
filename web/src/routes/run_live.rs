//! Live progress and results of a run in the JSON API: the Server-Sent Events stream, the
//! quality report, the side-by-side captions with thumbnails, and the augmented dataset's
//! downloads. Every route answers 404 for a team the caller is not in and another team's run.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::accounts;
use crate::auth::AuthUser;
use crate::entities::run;
use crate::error::ApiError;
use crate::runs::download::{self, DataFile};
use crate::runs::events::{self, Snapshot};
use crate::runs::samples::{self, SidePage};

/// The routes, relative to `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/teams/{id}/runs/{run_id}/events", get(run_events))
        .route("/teams/{id}/runs/{run_id}/report", get(run_report))
        .route("/teams/{id}/runs/{run_id}/samples", get(run_samples))
        .route(
            "/teams/{id}/runs/{run_id}/samples/{idx}/thumbnail",
            get(run_sample_thumbnail),
        )
        .route("/teams/{id}/runs/{run_id}/files", get(run_files))
        .route("/teams/{id}/runs/{run_id}/files/{name}", get(run_file))
        .route(
            "/teams/{id}/runs/{run_id}/dataset.tar",
            get(run_dataset_tar),
        )
}

/// The run `run_id` of team `team_id`, for a member of the team.
pub(super) async fn team_run(
    state: &AppState,
    auth: &AuthUser,
    team_id: i32,
    run_id: i32,
) -> Result<run::Model, ApiError> {
    accounts::team_access(&state.db, &auth.user, team_id).await?;
    crate::runs::get(&state.db, team_id, run_id).await
}

/// Live progress as Server-Sent Events: `snapshot` (the run, its progress, loss points, rounds
/// and log tail: what a reconnecting client starts from), then `progress`, `loss`, `log` and
/// `round` events as they happen, and `end` (`{"status", "error"}`) when the run has ended,
/// after which the stream closes.
#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/runs/{run_id}/events",
    tag = "runs",
    params(("id" = i32, Path, description = "Team id"), ("run_id" = i32, Path, description = "Run id")),
    responses(
        (status = 200, description = "An event stream; the `snapshot` event's data is a RunSnapshot", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such team or run (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn run_events(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, run_id)): Path<(i32, i32)>,
) -> Result<Response, ApiError> {
    let row = team_run(&state, &auth, team_id, run_id).await?;
    let rx = state.live.subscribe();
    let first = events::snapshot(&state.db, &row).await?;
    let stream = events::stream(state.db.clone(), row, rx, first);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The quality report so far.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ReportView {
    /// Run status.
    pub status: String,
    /// The finished rounds' rows (VILA²'s per-round table: caption statistics, recaptioning
    /// counts, drop reasons, images/s, evaluation, losses).
    #[schema(value_type = Vec<Object>)]
    pub rounds: Vec<vila2_host::pipeline::report::RoundReport>,
    /// Why the loop stopped before its last round (once finished).
    pub stopped_early: Option<String>,
    /// The whole `report.json` of a succeeded run.
    #[schema(value_type = Option<Object>)]
    pub report: Option<vila2_host::pipeline::report::RunReport>,
}

#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/runs/{run_id}/report",
    tag = "runs",
    params(("id" = i32, Path, description = "Team id"), ("run_id" = i32, Path, description = "Run id")),
    responses(
        (status = 200, description = "The per-round quality report (rounds finished so far)", body = ReportView),
        (status = 404, description = "No such team or run (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn run_report(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, run_id)): Path<(i32, i32)>,
) -> Result<Json<ReportView>, ApiError> {
    let row = team_run(&state, &auth, team_id, run_id).await?;
    Ok(Json(report_view(&state, &row).await?))
}

/// The report of `row`: the whole report once succeeded, else the rounds so far.
pub(super) async fn report_view(
    state: &AppState,
    row: &run::Model,
) -> Result<ReportView, ApiError> {
    let report = if row.status == run::SUCCEEDED {
        Some(download::report(&state.runs, row)?)
    } else {
        None
    };
    let rounds = match &report {
        Some(r) => r.rounds.clone(),
        None => events::rounds(&state.db, row.id).await?,
    };
    Ok(ReportView {
        status: row.status.clone(),
        stopped_early: report.as_ref().and_then(|r| r.stopped_early.clone()),
        rounds,
        report,
    })
}

/// `?page=` (1-based).
#[derive(Deserialize, utoipa::IntoParams)]
pub(super) struct PageQuery {
    /// 1-based page number (default 1).
    pub page: Option<u64>,
}

/// The page of side-by-side samples of a succeeded run.
pub(super) async fn side_page(
    state: &AppState,
    row: &run::Model,
    page: u64,
) -> Result<SidePage, ApiError> {
    let dir = download::augmented_dir(&state.runs, row)?;
    tokio::task::spawn_blocking(move || samples::page(&dir, page))
        .await
        .map_err(|e| ApiError::Internal(format!("reading samples: {e}")))?
}

/// Original vs augmented caption of each sample of the augmented dataset, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/runs/{run_id}/samples",
    tag = "runs",
    params(("id" = i32, Path, description = "Team id"), ("run_id" = i32, Path, description = "Run id"), PageQuery),
    responses(
        (status = 200, description = "A page of samples", body = SidePage),
        (status = 409, description = "The run has not succeeded (yet)", body = crate::error::ErrorBody),
        (status = 404, description = "No such team or run (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn run_samples(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, run_id)): Path<(i32, i32)>,
    Query(query): Query<PageQuery>,
) -> Result<Json<SidePage>, ApiError> {
    let row = team_run(&state, &auth, team_id, run_id).await?;
    side_page(&state, &row, query.page.unwrap_or(1))
        .await
        .map(Json)
}

/// A PNG thumbnail (at most 128 px) of sample `idx` of the augmented dataset.
#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/runs/{run_id}/samples/{idx}/thumbnail",
    tag = "runs",
    params(("id" = i32, Path, description = "Team id"), ("run_id" = i32, Path, description = "Run id"), ("idx" = u64, Path, description = "Sample index")),
    responses(
        (status = 200, description = "PNG", content_type = "image/png", body = Vec<u8>),
        (status = 409, description = "The run has not succeeded (yet)", body = crate::error::ErrorBody),
        (status = 404, description = "No such team, run or sample (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn run_sample_thumbnail(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, run_id, idx)): Path<(i32, i32, u64)>,
) -> Result<Response, ApiError> {
    let row = team_run(&state, &auth, team_id, run_id).await?;
    let dir = download::augmented_dir(&state.runs, &row)?;
    let png = tokio::task::spawn_blocking(move || samples::thumbnail(&dir, idx))
        .await
        .map_err(|e| ApiError::Internal(format!("thumbnail task: {e}")))??;
    Ok(([(CONTENT_TYPE, "image/png")], png).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/runs/{run_id}/files",
    tag = "runs",
    params(("id" = i32, Path, description = "Team id"), ("run_id" = i32, Path, description = "Run id")),
    responses(
        (status = 200, description = "The augmented dataset's WebDataset shards and Parquet provenance files", body = Vec<DataFile>),
        (status = 409, description = "The run has not succeeded (yet)", body = crate::error::ErrorBody),
        (status = 404, description = "No such team or run (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn run_files(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, run_id)): Path<(i32, i32)>,
) -> Result<Json<Vec<DataFile>>, ApiError> {
    let row = team_run(&state, &auth, team_id, run_id).await?;
    let dir = download::augmented_dir(&state.runs, &row)?;
    download::files(&dir).map(Json)
}

/// One shard (`.tar`) or provenance table (`.parquet`) of the augmented dataset, streamed.
#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/runs/{run_id}/files/{name}",
    tag = "runs",
    params(("id" = i32, Path, description = "Team id"), ("run_id" = i32, Path, description = "Run id"), ("name" = String, Path, description = "File name from the listing")),
    responses(
        (status = 200, description = "The file, as an attachment", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 409, description = "The run has not succeeded (yet)", body = crate::error::ErrorBody),
        (status = 404, description = "No such team, run or file (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn run_file(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, run_id, name)): Path<(i32, i32, String)>,
) -> Result<Response, ApiError> {
    let row = team_run(&state, &auth, team_id, run_id).await?;
    let dir = download::augmented_dir(&state.runs, &row)?;
    let (file, path) = download::find(&dir, &name)?;
    let kind = if file.kind == "shard" {
        "application/x-tar"
    } else {
        "application/vnd.apache.parquet"
    };
    let disposition = format!("attachment; filename=\"run-{run_id}-{}\"", file.name);
    Ok((
        [
            (CONTENT_TYPE, kind.to_string()),
            (CONTENT_LENGTH, file.bytes.to_string()),
            (CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(download::file_stream(path, file.bytes)),
    )
        .into_response())
}

/// The whole augmented dataset (every shard and Parquet file) as one tar, streamed from disk.
#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/runs/{run_id}/dataset.tar",
    tag = "runs",
    params(("id" = i32, Path, description = "Team id"), ("run_id" = i32, Path, description = "Run id")),
    responses(
        (status = 200, description = "A tar with `run-<id>/<file>` members", content_type = "application/x-tar", body = Vec<u8>),
        (status = 409, description = "The run has not succeeded (yet)", body = crate::error::ErrorBody),
        (status = 404, description = "No such team or run (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn run_dataset_tar(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, run_id)): Path<(i32, i32)>,
) -> Result<Response, ApiError> {
    let row = team_run(&state, &auth, team_id, run_id).await?;
    let dir = download::augmented_dir(&state.runs, &row)?;
    let stream = download::tar_stream(&dir, &format!("run-{run_id}"))?;
    tracing::info!(team = team_id, run = run_id, "augmented dataset download");
    Ok((
        [
            (CONTENT_TYPE, "application/x-tar".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"run-{run_id}-augmented.tar\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// OpenAPI of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        run_events,
        run_report,
        run_samples,
        run_sample_thumbnail,
        run_files,
        run_file,
        run_dataset_tar
    ),
    components(schemas(Snapshot))
)]
pub(super) struct Doc;
