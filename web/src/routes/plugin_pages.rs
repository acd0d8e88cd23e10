//! Plugin pages: a team's plugins with an upload form, and a plugin's page (what `describe()`
//! said, versions, "try on 10 samples", publish for admins). Form posts check the CSRF token.

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::pages::{check_csrf, csrf_page, render};
use super::plugins::{PLUGIN_BODY_LIMIT, plugin_view, read_multipart_file, set_public};
use crate::AppState;
use crate::accounts;
use crate::auth::AuthUser;
use crate::datasets;
use crate::entities::{dataset, plugin};
use crate::error::ApiError;
use crate::plugins::{self, Trial, TrialRequest};

/// The plugin pages, at the root.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/teams/{id}/plugins",
            get(plugins_page)
                .post(upload_form)
                .layer(DefaultBodyLimit::max(PLUGIN_BODY_LIMIT)),
        )
        .route("/teams/{id}/plugins/{plugin_id}", get(plugin_page))
        .route("/teams/{id}/plugins/{plugin_id}/try", post(try_form))
        .route(
            "/teams/{id}/plugins/{plugin_id}/publish",
            post(publish_form),
        )
}

#[derive(Template)]
#[template(path = "plugins.html")]
struct PluginsPage<'a> {
    csrf: &'a str,
    email: &'a str,
    team_id: i32,
    team_name: &'a str,
    plugins: Vec<plugin::Model>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "plugin.html")]
struct PluginPage<'a> {
    csrf: &'a str,
    email: &'a str,
    is_admin: bool,
    team_id: i32,
    plugin: plugin::Model,
    read_only: bool,
    versions: Vec<plugin::Model>,
    datasets: Vec<dataset::Model>,
    selected_dataset: i32,
    config: &'a str,
    trial: Option<Trial>,
    error: Option<String>,
}

async fn list_page(
    state: &AppState,
    headers: &HeaderMap,
    auth: &AuthUser,
    team_id: i32,
    error: Option<String>,
) -> Result<Response, ApiError> {
    let (team, _) = accounts::team_access(&state.db, &auth.user, team_id).await?;
    let plugins = plugins::list(&state.db, team_id).await?;
    csrf_page(state, headers, |csrf| {
        render(&PluginsPage {
            csrf,
            email: &auth.user.email,
            team_id,
            team_name: &team.name,
            plugins,
            error,
        })
    })
}

async fn plugins_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path(team_id): Path<i32>,
) -> Result<Response, ApiError> {
    let Ok(auth) = auth else {
        return Ok(Redirect::to("/login").into_response());
    };
    list_page(&state, &headers, &auth, team_id, None).await
}

/// Multipart: `csrf` first, then `file`. Redirects to the new plugin's page, or shows the list
/// again with the reason it was refused.
async fn upload_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path(team_id): Path<i32>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let Ok(auth) = auth else {
        return Ok(Redirect::to("/login").into_response());
    };
    accounts::team_access(&state.db, &auth.user, team_id).await?;
    let result = async {
        let multipart = multipart.map_err(|e| {
            ApiError::BadRequest(format!(
                "file: expected a multipart form: {}",
                e.body_text()
            ))
        })?;
        let check = |submitted: &str| check_csrf(&headers, submitted);
        let (name, bytes) = read_multipart_file(multipart, Some(&check)).await?;
        plugins::upload(&state, team_id, &name, bytes).await
    }
    .await;
    match result {
        Ok((row, _)) => Ok((
            StatusCode::SEE_OTHER,
            [("location", format!("/teams/{team_id}/plugins/{}", row.id))],
        )
            .into_response()),
        Err(e @ ApiError::Forbidden(_)) => Err(e),
        Err(e) if e.status().is_client_error() => {
            let status = e.status();
            let page = list_page(&state, &headers, &auth, team_id, Some(e.to_string())).await?;
            Ok((status, page).into_response())
        }
        Err(e) => Err(e),
    }
}

/// Renders a plugin's page, with a trial's results or error when there is one.
async fn show(
    state: &AppState,
    headers: &HeaderMap,
    auth: &AuthUser,
    (team_id, plugin_id): (i32, i32),
    trial: Option<(TrialRequest, Result<Trial, ApiError>)>,
) -> Result<Response, ApiError> {
    accounts::team_access(&state.db, &auth.user, team_id).await?;
    let plugin = plugins::visible(&state.db, team_id, plugin_id).await?;
    let view = plugin_view(state, team_id, plugin).await?;
    let datasets = datasets::list(&state.db, team_id).await?;
    let (selected_dataset, config, trial, error, status) = match trial {
        None => (0, String::new(), None, None, StatusCode::OK),
        Some((req, result)) => {
            let config = req.config.map(|c| c.to_string()).unwrap_or_default();
            match result {
                Ok(trial) => (req.dataset_id, config, Some(trial), None, StatusCode::OK),
                Err(e) => (
                    req.dataset_id,
                    config,
                    None,
                    Some(e.to_string()),
                    e.status(),
                ),
            }
        }
    };
    let page = csrf_page(state, headers, |csrf| {
        render(&PluginPage {
            csrf,
            email: &auth.user.email,
            is_admin: auth.user.is_admin,
            team_id,
            read_only: view.read_only,
            plugin: view.plugin,
            versions: view.versions,
            datasets,
            selected_dataset,
            config: &config,
            trial,
            error,
        })
    })?;
    Ok((status, page).into_response())
}

async fn plugin_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path(ids): Path<(i32, i32)>,
) -> Result<Response, ApiError> {
    let Ok(auth) = auth else {
        return Ok(Redirect::to("/login").into_response());
    };
    show(&state, &headers, &auth, ids, None).await
}

#[derive(Deserialize)]
struct TryForm {
    #[serde(default)]
    csrf: String,
    dataset_id: i32,
    #[serde(default)]
    config: String,
}

async fn try_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path((team_id, plugin_id)): Path<(i32, i32)>,
    Form(form): Form<TryForm>,
) -> Result<Response, ApiError> {
    check_csrf(&headers, &form.csrf)?;
    let Ok(auth) = auth else {
        return Ok(Redirect::to("/login").into_response());
    };
    accounts::team_access(&state.db, &auth.user, team_id).await?;
    let plugin = plugins::visible(&state.db, team_id, plugin_id).await?;
    let config = form.config.trim();
    let parsed = if config.is_empty() {
        Ok(None)
    } else {
        serde_json::from_str(config)
            .map(Some)
            .map_err(|e| ApiError::BadRequest(format!("config: not JSON: {e}")))
    };
    let request = TrialRequest {
        dataset_id: form.dataset_id,
        config: parsed.as_ref().ok().cloned().flatten(),
        task: None,
    };
    let result = match parsed {
        Err(e) => Err(e),
        Ok(_) => match datasets::get(&state.db, team_id, form.dataset_id).await {
            Ok(dataset) => plugins::run_trial(&state, &plugin, &dataset, &request).await,
            Err(e) => Err(e),
        },
    };
    let result = match result {
        Err(e) if !e.status().is_client_error() => return Err(e),
        other => other,
    };
    show(
        &state,
        &headers,
        &auth,
        (team_id, plugin_id),
        Some((request, result)),
    )
    .await
}

#[derive(Deserialize)]
struct PublishForm {
    #[serde(default)]
    csrf: String,
    public: bool,
}

async fn publish_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path((team_id, plugin_id)): Path<(i32, i32)>,
    Form(form): Form<PublishForm>,
) -> Result<Response, ApiError> {
    check_csrf(&headers, &form.csrf)?;
    let Ok(auth) = auth else {
        return Ok(Redirect::to("/login").into_response());
    };
    set_public(&state, &auth, team_id, plugin_id, form.public).await?;
    Ok((
        StatusCode::SEE_OTHER,
        [("location", format!("/teams/{team_id}/plugins/{plugin_id}"))],
    )
        .into_response())
}
