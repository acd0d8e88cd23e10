//! Plugin routes of the JSON API (`/api/v1/teams/{id}/plugins...`): upload, list, show, try
//! on a dataset, publish. A team sees its own plugins and the published ones; anything else
//! answers 404.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::ApiJson;
use crate::AppState;
use crate::accounts;
use crate::auth::AuthUser;
use crate::datasets;
use crate::entities::plugin;
use crate::error::ApiError;
use crate::plugins::{self, Trial, TrialRequest};

/// Largest plugin upload body accepted (the runtime's component limit plus multipart framing).
pub const PLUGIN_BODY_LIMIT: usize = (32 << 20) + (64 << 10);

/// The plugin routes, relative to `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/teams/{id}/plugins",
            get(list_plugins)
                .post(upload_plugin)
                .layer(DefaultBodyLimit::max(PLUGIN_BODY_LIMIT)),
        )
        .route("/teams/{id}/plugins/{plugin_id}", get(get_plugin))
        .route("/teams/{id}/plugins/{plugin_id}/try", post(try_plugin))
        .route(
            "/teams/{id}/plugins/{plugin_id}/publish",
            post(publish_plugin).delete(unpublish_plugin),
        )
}

/// `?filename=` of a raw-body upload.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct UploadQuery {
    /// Name of the uploaded file, for messages (default `upload.wasm`).
    filename: Option<String>,
}

/// An accepted upload: the stored plugin and what its `describe()` said.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PluginUploaded {
    plugin: plugin::Model,
    description: String,
    config_schema: String,
}

/// A plugin with every version of it the team sees, and whether the team may only read it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PluginView {
    #[serde(flatten)]
    pub plugin: plugin::Model,
    /// Another team's plugin, published by an admin.
    pub read_only: bool,
    pub versions: Vec<plugin::Model>,
}

/// Upload a `.wasm` component: the raw body (`?filename=` names it) or the `file` field of a
/// multipart form. It is validated in the sandbox (format, size, compiles, implements a vila2
/// world, answers `describe()`); a rejection says why.
#[utoipa::path(
    post,
    path = "/api/v1/teams/{id}/plugins",
    tag = "plugins",
    params(("id" = i32, Path, description = "Team id"), UploadQuery),
    request_body(content = Vec<u8>, description = "The component (application/wasm) or a multipart form with a `file` field", content_type = "application/wasm"),
    responses(
        (status = 201, description = "Stored", body = PluginUploaded),
        (status = 409, description = "This name and version exist already", body = crate::error::ErrorBody),
        (status = 413, description = "Over the size limit", body = crate::error::ErrorBody),
        (status = 422, description = "Rejected by validation, with the reason", body = crate::error::ErrorBody),
        (status = 404, description = "No such team (or not yours)", body = crate::error::ErrorBody),
    ),
)]
pub async fn upload_plugin(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(team_id): Path<i32>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    request: Request,
) -> Result<(StatusCode, Json<PluginUploaded>), ApiError> {
    accounts::team_access(&state.db, &auth.user, team_id).await?;
    let is_multipart = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (file_name, bytes) = if is_multipart {
        let multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|e| {
                ApiError::BadRequest(format!("file: malformed multipart body: {}", e.body_text()))
            })?;
        read_multipart_file(multipart, None).await?
    } else {
        let bytes = Bytes::from_request(request, &state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(format!(
                    "file: over the {PLUGIN_BODY_LIMIT}-byte upload limit"
                )),
                _ => ApiError::BadRequest(format!("file: cannot read the body: {}", e.body_text())),
            })?;
        (
            query.filename.unwrap_or_else(|| "upload.wasm".into()),
            bytes,
        )
    };
    let (plugin, validated) = plugins::upload(&state, team_id, &file_name, bytes).await?;
    Ok((
        StatusCode::CREATED,
        Json(PluginUploaded {
            plugin,
            description: validated.description,
            config_schema: validated.config_schema,
        }),
    ))
}

/// Checks a submitted CSRF token (the page form's `csrf` field).
pub type CsrfCheck<'a> = dyn Fn(&str) -> Result<(), ApiError> + Sync + 'a;

/// The `file` field of a multipart form. With `check_csrf`, a `csrf` field must come before it
/// and pass the check (the page form).
pub async fn read_multipart_file(
    mut multipart: Multipart,
    check_csrf: Option<&CsrfCheck<'_>>,
) -> Result<(String, Bytes), ApiError> {
    let malformed = |e: axum::extract::multipart::MultipartError| {
        ApiError::BadRequest(format!("file: malformed multipart body: {}", e.body_text()))
    };
    let mut csrf_ok = check_csrf.is_none();
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        match field.name() {
            Some("csrf") => {
                if let Some(check) = check_csrf {
                    check(&field.text().await.map_err(malformed)?)?;
                    csrf_ok = true;
                }
            }
            Some("file") => {
                if !csrf_ok {
                    // Same answer as a wrong token: the form is not ours.
                    check_csrf.expect("checked above")("")?;
                }
                let name = field.file_name().unwrap_or("upload.wasm").to_string();
                let bytes = field.bytes().await.map_err(|e| match e.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(format!(
                        "file: over the {PLUGIN_BODY_LIMIT}-byte upload limit"
                    )),
                    _ => malformed(e),
                })?;
                return Ok((name, bytes));
            }
            _ => {}
        }
    }
    Err(ApiError::BadRequest(
        "file: the multipart form has no \"file\" field".into(),
    ))
}

/// The team's plugins and the published ones of other teams.
#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/plugins",
    tag = "plugins",
    params(("id" = i32, Path, description = "Team id")),
    responses(
        (status = 200, body = Vec<plugin::Model>),
        (status = 404, description = "No such team (or not yours)", body = crate::error::ErrorBody),
    ),
)]
pub async fn list_plugins(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(team_id): Path<i32>,
) -> Result<Json<Vec<plugin::Model>>, ApiError> {
    accounts::team_access(&state.db, &auth.user, team_id).await?;
    plugins::list(&state.db, team_id).await.map(Json)
}

/// A plugin as the team sees it, with its versions.
pub async fn plugin_view(
    state: &AppState,
    team_id: i32,
    plugin: plugin::Model,
) -> Result<PluginView, ApiError> {
    let versions = plugins::versions(&state.db, team_id, &plugin).await?;
    Ok(PluginView {
        read_only: plugin.team_id != team_id,
        plugin,
        versions,
    })
}

/// One plugin (the team's own, or a published one) with what `describe()` said and its
/// versions.
#[utoipa::path(
    get,
    path = "/api/v1/teams/{id}/plugins/{plugin_id}",
    tag = "plugins",
    params(("id" = i32, Path, description = "Team id"), ("plugin_id" = i32, Path, description = "Plugin id")),
    responses(
        (status = 200, body = PluginView),
        (status = 404, description = "No such plugin for this team", body = crate::error::ErrorBody),
    ),
)]
pub async fn get_plugin(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, plugin_id)): Path<(i32, i32)>,
) -> Result<Json<PluginView>, ApiError> {
    accounts::team_access(&state.db, &auth.user, team_id).await?;
    let plugin = plugins::visible(&state.db, team_id, plugin_id).await?;
    plugin_view(&state, team_id, plugin).await.map(Json)
}

/// Run the plugin in the sandbox on the first 10 samples of one of the team's datasets.
#[utoipa::path(
    post,
    path = "/api/v1/teams/{id}/plugins/{plugin_id}/try",
    tag = "plugins",
    params(("id" = i32, Path, description = "Team id"), ("plugin_id" = i32, Path, description = "Plugin id")),
    request_body = TrialRequest,
    responses(
        (status = 200, description = "One row per sample", body = Trial),
        (status = 400, description = "Bad request (e.g. a configuration the plugin refuses)", body = crate::error::ErrorBody),
        (status = 404, description = "No such plugin or dataset for this team", body = crate::error::ErrorBody),
    ),
)]
pub async fn try_plugin(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, plugin_id)): Path<(i32, i32)>,
    ApiJson(request): ApiJson<TrialRequest>,
) -> Result<Json<Trial>, ApiError> {
    accounts::team_access(&state.db, &auth.user, team_id).await?;
    let plugin = plugins::visible(&state.db, team_id, plugin_id).await?;
    let dataset = datasets::get(&state.db, team_id, request.dataset_id).await?;
    plugins::run_trial(&state, &plugin, &dataset, &request)
        .await
        .map(Json)
}

/// Publish the team's plugin to every team, read-only to them (platform admins only).
#[utoipa::path(
    post,
    path = "/api/v1/teams/{id}/plugins/{plugin_id}/publish",
    tag = "plugins",
    params(("id" = i32, Path, description = "Team id"), ("plugin_id" = i32, Path, description = "Plugin id")),
    responses(
        (status = 200, body = plugin::Model),
        (status = 403, description = "Not a platform admin", body = crate::error::ErrorBody),
        (status = 404, description = "No such plugin of this team", body = crate::error::ErrorBody),
    ),
)]
pub async fn publish_plugin(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, plugin_id)): Path<(i32, i32)>,
) -> Result<Json<plugin::Model>, ApiError> {
    set_public(&state, &auth, team_id, plugin_id, true)
        .await
        .map(Json)
}

/// Withdraw a published plugin: other teams no longer see it (platform admins only).
#[utoipa::path(
    delete,
    path = "/api/v1/teams/{id}/plugins/{plugin_id}/publish",
    tag = "plugins",
    params(("id" = i32, Path, description = "Team id"), ("plugin_id" = i32, Path, description = "Plugin id")),
    responses(
        (status = 200, body = plugin::Model),
        (status = 403, description = "Not a platform admin", body = crate::error::ErrorBody),
        (status = 404, description = "No such plugin of this team", body = crate::error::ErrorBody),
    ),
)]
pub async fn unpublish_plugin(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, plugin_id)): Path<(i32, i32)>,
) -> Result<Json<plugin::Model>, ApiError> {
    set_public(&state, &auth, team_id, plugin_id, false)
        .await
        .map(Json)
}

/// 404 unless the plugin is the team's own and the caller sees the team; then 403 for
/// non-admins.
pub async fn set_public(
    state: &AppState,
    auth: &AuthUser,
    team_id: i32,
    plugin_id: i32,
    public: bool,
) -> Result<plugin::Model, ApiError> {
    accounts::team_access(&state.db, &auth.user, team_id).await?;
    let plugin = plugins::owned(&state.db, team_id, plugin_id).await?;
    auth.require_admin()?;
    plugins::set_public(&state.db, plugin, public).await
}

/// OpenAPI of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    upload_plugin,
    list_plugins,
    get_plugin,
    try_plugin,
    publish_plugin,
    unpublish_plugin
))]
pub(super) struct Doc;
