//! Judging routes of the JSON API (`/api/v1/teams/{id}/runs/{run_id}/judging/...`): the next
//! blind item, votes, the report and an item's image. Every route answers 404 for a team the
//! caller is not in and for another team's run; judging a run that has not succeeded with a
//! recaption round is a 409.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};

use super::ApiJson;
use super::datasets::cached_image;
use super::run_live::team_run;
use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::judging::{self, JudgingReport, NextItem, VoteRequest, VoteResult};

/// The judging routes, relative to `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/teams/{id}/runs/{run_id}/judging/next", get(next_item))
        .route("/teams/{id}/runs/{run_id}/judging/votes", post(cast_vote))
        .route("/teams/{id}/runs/{run_id}/judging/report", get(report))
        .route(
            "/teams/{id}/runs/{run_id}/judging/items/{item_id}/image",
            get(item_image),
        )
}

/// The caller's next item to judge: an image URL and two captions, their sources hidden.
/// `item` is null once the caller has voted on every item.
#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/runs/{run_id}/judging/next",
    tag = "judging",
    params(("id" = i32, Path, description = "Team id"), ("run_id" = i32, Path, description = "Run id")),
    responses(
        (status = 200, description = "The next item and the caller's progress", body = NextItem),
        (status = 409, description = "The run cannot be judged (not succeeded, or no recaption round)", body = crate::error::ErrorBody),
        (status = 404, description = "No such team or run (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn next_item(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, run_id)): Path<(i32, i32)>,
) -> Result<Json<NextItem>, ApiError> {
    let run = team_run(&state, &auth, team_id, run_id).await?;
    judging::next(&state.db, &state.runs, &run, &auth.user)
        .await
        .map(Json)
}

/// Vote on an item: which caption has fewer hallucinations (`left` = caption A, `right` =
/// caption B, or `same`). Voting again on the item replaces the vote. The answer reveals the
/// captions' sources.
#[utoipa::path(
    post,
    path = "/api/v1/teams/{id}/runs/{run_id}/judging/votes",
    tag = "judging",
    params(("id" = i32, Path, description = "Team id"), ("run_id" = i32, Path, description = "Run id")),
    request_body = VoteRequest,
    responses(
        (status = 200, description = "Recorded (or replaced), with the sources revealed", body = VoteResult),
        (status = 400, description = "Invalid field (named in the message)", body = crate::error::ErrorBody),
        (status = 409, description = "The run cannot be judged (not succeeded, or no recaption round)", body = crate::error::ErrorBody),
        (status = 404, description = "No such team, run or item (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn cast_vote(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, run_id)): Path<(i32, i32)>,
    ApiJson(req): ApiJson<VoteRequest>,
) -> Result<Json<VoteResult>, ApiError> {
    let run = team_run(&state, &auth, team_id, run_id).await?;
    judging::vote(&state.db, &state.runs, &run, &auth.user, &req)
        .await
        .map(Json)
}

/// Win rates per pair of caption sources with 95% Wilson intervals, ties and vote counts. A
/// run that cannot be judged answers an empty report with the reason.
#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/runs/{run_id}/judging/report",
    tag = "judging",
    params(("id" = i32, Path, description = "Team id"), ("run_id" = i32, Path, description = "Run id")),
    responses(
        (status = 200, description = "The report", body = JudgingReport),
        (status = 404, description = "No such team or run (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn report(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, run_id)): Path<(i32, i32)>,
) -> Result<Json<JudgingReport>, ApiError> {
    let run = team_run(&state, &auth, team_id, run_id).await?;
    judging::judging_report(&state.db, &state.runs, &run)
        .await
        .map(Json)
}

/// The image of a judging item.
#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/runs/{run_id}/judging/items/{item_id}/image",
    tag = "judging",
    params(
        ("id" = i32, Path, description = "Team id"),
        ("run_id" = i32, Path, description = "Run id"),
        ("item_id" = i32, Path, description = "Judging item id"),
    ),
    responses(
        (status = 200, description = "The sample's image (PNG, JPEG or WebP)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 409, description = "The run cannot be judged", body = crate::error::ErrorBody),
        (status = 404, description = "No such team, run or item (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn item_image(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, run_id, item_id)): Path<(i32, i32, i32)>,
) -> Result<Response, ApiError> {
    let run = team_run(&state, &auth, team_id, run_id).await?;
    let (bytes, mime) = judging::item_image(&state.db, &state.runs, &run, item_id).await?;
    Ok(cached_image(mime, bytes))
}

/// OpenAPI of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(next_item, cast_vote, report, item_image))]
pub(super) struct Doc;
