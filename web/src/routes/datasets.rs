//! Dataset routes of the JSON API (`/api/v1/teams/{id}/datasets...`): thin wrappers over
//! [`crate::datasets`]. Every route answers 404 for a team the caller is not in and for a
//! dataset of another team.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::accounts;
use crate::auth::AuthUser;
use crate::datasets::{self, SampleError, SamplePage};
use crate::entities::{dataset, dataset_sample};
use crate::error::ApiError;

/// The dataset routes, relative to `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/teams/{id}/datasets",
            get(list_datasets)
                .post(upload_dataset)
                // The upload counts its own bytes against the team's quota.
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/teams/{id}/datasets/{dataset_id}",
            get(get_dataset).delete(delete_dataset),
        )
        .route(
            "/teams/{id}/datasets/{dataset_id}/samples",
            get(list_samples),
        )
        .route(
            "/teams/{id}/datasets/{dataset_id}/samples/{idx}/image",
            get(sample_image),
        )
        .route(
            "/teams/{id}/datasets/{dataset_id}/samples/{idx}/thumbnail",
            get(sample_thumbnail),
        )
        .route(
            "/teams/{id}/datasets/{dataset_id}/export",
            get(export_dataset),
        )
}

/// A dataset with its per-sample error report.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DatasetView {
    #[serde(flatten)]
    pub dataset: dataset::Model,
    pub report: Vec<SampleError>,
}

impl From<dataset::Model> for DatasetView {
    fn from(dataset: dataset::Model) -> Self {
        let report = datasets::report(&dataset);
        DatasetView { dataset, report }
    }
}

/// Checks the caller may see `team_id`, then finds its dataset `dataset_id`.
pub async fn team_dataset(
    state: &AppState,
    auth: &AuthUser,
    team_id: i32,
    dataset_id: i32,
) -> Result<dataset::Model, ApiError> {
    accounts::team_access(&state.db, &auth.user, team_id).await?;
    datasets::get(&state.db, team_id, dataset_id).await
}

#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/datasets",
    tag = "datasets",
    params(("id" = i32, Path, description = "Team id")),
    responses(
        (status = 200, body = Vec<dataset::Model>),
        (status = 404, description = "No such team or object (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn list_datasets(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(team_id): Path<i32>,
) -> Result<Json<Vec<dataset::Model>>, ApiError> {
    accounts::team_access(&state.db, &auth.user, team_id).await?;
    datasets::list(&state.db, team_id).await.map(Json)
}

/// Multipart form: `file` (a `.tar` or `.zip`), optional `name`.
#[utoipa::path(
    post,
    path = "/api/v1/teams/{id}/datasets",
    tag = "datasets",
    params(("id" = i32, Path, description = "Team id")),
    request_body(content = String, description = "Multipart form: `file` (a WebDataset `.tar` shard, or a `.zip`/`.tar` imagefolder with `metadata.jsonl`) and optional `name`", content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored; invalid samples are listed in `report`", body = DatasetView),
        (status = 400, description = "Not an acceptable archive (names the member)", body = crate::error::ErrorBody),
        (status = 413, description = "Over the team's storage quota", body = crate::error::ErrorBody),
        (status = 404, description = "No such team or object (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn upload_dataset(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(team_id): Path<i32>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(StatusCode, Json<DatasetView>), ApiError> {
    let (team, _) = accounts::team_access(&state.db, &auth.user, team_id).await?;
    let multipart = multipart.map_err(|e| {
        ApiError::BadRequest(format!(
            "file: expected a multipart form: {}",
            e.body_text()
        ))
    })?;
    let cap = datasets::upload_cap(&state.db, &team).await?;
    let received =
        datasets::receive(&state.db, multipart, &state.tmp_dir, &team, cap, None).await?;
    let row = datasets::ingest(&state, &team, received).await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/datasets/{dataset_id}",
    tag = "datasets",
    params(("id" = i32, Path, description = "Team id"), ("dataset_id" = i32, Path, description = "Dataset id")),
    responses(
        (status = 200, body = DatasetView),
        (status = 404, description = "No such team or object (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn get_dataset(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, dataset_id)): Path<(i32, i32)>,
) -> Result<Json<DatasetView>, ApiError> {
    let dataset = team_dataset(&state, &auth, team_id, dataset_id).await?;
    Ok(Json(dataset.into()))
}

/// Delete a dataset: its samples and shards, freeing its bytes of the team's storage quota.
/// A dataset runs were made from is kept with them.
#[utoipa::path(
    delete,
    path = "/api/v1/teams/{id}/datasets/{dataset_id}",
    tag = "datasets",
    params(("id" = i32, Path, description = "Team id"), ("dataset_id" = i32, Path, description = "Dataset id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "Runs were made from it", body = crate::error::ErrorBody),
        (status = 404, description = "No such team or object (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn delete_dataset(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, dataset_id)): Path<(i32, i32)>,
) -> Result<StatusCode, ApiError> {
    let dataset = team_dataset(&state, &auth, team_id, dataset_id).await?;
    datasets::delete(&state, &dataset).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?page=` (from 1) and `?per_page=`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/datasets/{dataset_id}/samples",
    tag = "datasets",
    params(("id" = i32, Path, description = "Team id"), ("dataset_id" = i32, Path, description = "Dataset id"), PageQuery),
    responses(
        (status = 200, body = SamplePage),
        (status = 404, description = "No such team or object (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn list_samples(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, dataset_id)): Path<(i32, i32)>,
    Query(query): Query<PageQuery>,
) -> Result<Json<SamplePage>, ApiError> {
    let dataset = team_dataset(&state, &auth, team_id, dataset_id).await?;
    datasets::samples(
        &state.db,
        &dataset,
        query.page.unwrap_or(1),
        query.per_page.unwrap_or(datasets::PAGE_SIZE),
    )
    .await
    .map(Json)
}

#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/datasets/{dataset_id}/samples/{idx}/image",
    tag = "datasets",
    params(("id" = i32, Path, description = "Team id"), ("dataset_id" = i32, Path, description = "Dataset id"), ("idx" = i32, Path, description = "Sample position, from 0")),
    responses(
        (status = 200, description = "The original image (PNG, JPEG or WebP)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "No such team or object (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn sample_image(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(ids): Path<(i32, i32, i32)>,
) -> Result<Response, ApiError> {
    let (dataset, sample) = team_sample(&state, &auth, ids).await?;
    let mime = match sample.image_ext.as_str() {
        "png" => "image/png",
        "webp" => "image/webp",
        _ => "image/jpeg",
    };
    let bytes = datasets::image(&state, &dataset, &sample).await?;
    Ok(cached_image(mime, bytes))
}

#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/datasets/{dataset_id}/samples/{idx}/thumbnail",
    tag = "datasets",
    params(("id" = i32, Path, description = "Team id"), ("dataset_id" = i32, Path, description = "Dataset id"), ("idx" = i32, Path, description = "Sample position, from 0")),
    responses(
        (status = 200, description = "128 px PNG thumbnail", content_type = "image/png", body = Vec<u8>),
        (status = 404, description = "No such team or object (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn sample_thumbnail(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(ids): Path<(i32, i32, i32)>,
) -> Result<Response, ApiError> {
    let (dataset, sample) = team_sample(&state, &auth, ids).await?;
    let png = datasets::thumbnail(&state, &dataset, &sample).await?;
    Ok(cached_image("image/png", png))
}

/// Sample `idx` of the team's dataset, given (team id, dataset id, idx); 404 unless the caller
/// sees the team.
async fn team_sample(
    state: &AppState,
    auth: &AuthUser,
    (team_id, dataset_id, idx): (i32, i32, i32),
) -> Result<(dataset::Model, dataset_sample::Model), ApiError> {
    let dataset = team_dataset(state, auth, team_id, dataset_id).await?;
    let sample = datasets::sample(&state.db, &dataset, idx).await?;
    Ok((dataset, sample))
}

/// An image answer of type `mime` that the browser may keep (privately) for an hour.
pub(super) fn cached_image(mime: &str, body: impl IntoResponse) -> Response {
    (
        [
            (CONTENT_TYPE, mime),
            (CACHE_CONTROL, "private, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/datasets/{dataset_id}/export",
    tag = "datasets",
    params(("id" = i32, Path, description = "Team id"), ("dataset_id" = i32, Path, description = "Dataset id")),
    responses(
        (status = 200, description = "The dataset as one WebDataset tar, streamed", content_type = "application/x-tar", body = Vec<u8>),
        (status = 404, description = "No such team or object (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn export_dataset(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, dataset_id)): Path<(i32, i32)>,
) -> Result<Response, ApiError> {
    let dataset = team_dataset(&state, &auth, team_id, dataset_id).await?;
    let file_name: String = dataset
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    tracing::info!(team = team_id, dataset = dataset.id, "dataset export");
    let body = Body::from_stream(datasets::export_stream(state.store.clone(), &dataset));
    Ok((
        [
            (CONTENT_TYPE, "application/x-tar".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}.tar\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// OpenAPI of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_datasets,
    upload_dataset,
    get_dataset,
    delete_dataset,
    list_samples,
    sample_image,
    sample_thumbnail,
    export_dataset
))]
pub(super) struct Doc;
