//! Run routes of the JSON API (`/api/v1/teams/{id}/runs...`): submit, list, show, cancel.
//! Every route answers 404 for a team the caller is not in and for another team's run.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

use super::ApiJson;
use crate::AppState;
use crate::accounts;
use crate::auth::AuthUser;
use crate::entities::run;
use crate::error::ApiError;
use crate::runs::{self, RunRequest};

/// The run routes, relative to `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/teams/{id}/runs", get(list_runs).post(submit_run))
        .route("/teams/{id}/runs/{run_id}", get(get_run))
        .route("/teams/{id}/runs/{run_id}/cancel", post(cancel_run))
}

/// Queue an augmentation run on one of the team's datasets. The run document is the portal's
/// preset with the given rounds, fusion, model, plugins (filters with their configurations,
/// checked by the plugins at submit) and specialists.
#[utoipa::path(
    post,
    path = "/api/v1/teams/{id}/runs",
    tag = "runs",
    params(("id" = i32, Path, description = "Team id")),
    request_body = RunRequest,
    responses(
        (status = 201, description = "Queued", body = run::Model),
        (status = 400, description = "Invalid field (named in the message)", body = crate::error::ErrorBody),
        (status = 404, description = "No such team or dataset (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn submit_run(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(team_id): Path<i32>,
    ApiJson(req): ApiJson<RunRequest>,
) -> Result<(StatusCode, Json<run::Model>), ApiError> {
    let (team, _) = accounts::team_access(&state.db, &auth.user, team_id).await?;
    let row = runs::submit(&state, &team, &auth.user, &req).await?;
    Ok((StatusCode::CREATED, Json(row)))
}

#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/runs",
    tag = "runs",
    params(("id" = i32, Path, description = "Team id")),
    responses(
        (status = 200, description = "Newest first", body = Vec<run::Model>),
        (status = 404, description = "No such team (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn list_runs(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(team_id): Path<i32>,
) -> Result<Json<Vec<run::Model>>, ApiError> {
    accounts::team_access(&state.db, &auth.user, team_id).await?;
    runs::list(&state.db, team_id).await.map(Json)
}

#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/runs/{run_id}",
    tag = "runs",
    params(("id" = i32, Path, description = "Team id"), ("run_id" = i32, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run with its status and progress", body = run::Model),
        (status = 404, description = "No such team or run (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn get_run(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, run_id)): Path<(i32, i32)>,
) -> Result<Json<run::Model>, ApiError> {
    accounts::team_access(&state.db, &auth.user, team_id).await?;
    runs::get(&state.db, team_id, run_id).await.map(Json)
}

/// Cancel a run: a queued run is cancelled at once; a running one gets `cancel_requested`
/// and stops before the pipeline's next task.
#[utoipa::path(
    post,
    path = "/api/v1/teams/{id}/runs/{run_id}/cancel",
    tag = "runs",
    params(("id" = i32, Path, description = "Team id"), ("run_id" = i32, Path, description = "Run id")),
    responses(
        (status = 200, description = "Cancelled, or cancel requested", body = run::Model),
        (status = 409, description = "The run has finished already", body = crate::error::ErrorBody),
        (status = 404, description = "No such team or run (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn cancel_run(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, run_id)): Path<(i32, i32)>,
) -> Result<Json<run::Model>, ApiError> {
    accounts::team_access(&state.db, &auth.user, team_id).await?;
    let row = runs::get(&state.db, team_id, run_id).await?;
    runs::cancel(&state.db, &row).await.map(Json)
}

/// OpenAPI of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(submit_run, list_runs, get_run, cancel_run))]
pub(super) struct Doc;
