//! Server-rendered pages (askama). Form posts carry a CSRF token that must match the
//! `vila2_csrf` cookie (double submit).

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{AppendHeaders, Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::{ClientIp, set_cookie};
use crate::AppState;
use crate::accounts;
use crate::auth::{AuthUser, CSRF_COOKIE, Credential, SESSION_COOKIE, cookie, random_hex};
use crate::datasets::{self, SampleError, SamplePage};
use crate::entities::{dataset, plugin};
use crate::error::ApiError;
use crate::plugins;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard))
        .route("/login", get(login_page).post(login_form))
        .route("/logout", axum::routing::post(logout_form))
        .route(
            "/teams/{id}/datasets",
            axum::routing::post(upload_form).layer(DefaultBodyLimit::disable()),
        )
        .route("/teams/{id}/datasets/{dataset_id}", get(dataset_page))
        .route(
            "/teams/{id}/datasets/{dataset_id}/delete",
            axum::routing::post(delete_dataset_form),
        )
        .merge(super::plugin_pages::routes())
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

struct TeamPlugins {
    id: i32,
    name: String,
    role: String,
    plugins: Vec<plugin::Model>,
    datasets: Vec<dataset::Model>,
    runs: Vec<crate::entities::run::Model>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    csrf: &'a str,
    email: &'a str,
    is_admin: bool,
    teams: Vec<TeamPlugins>,
    /// The model registry, offered as a run's base model.
    models: Vec<crate::entities::registered_model::Model>,
    /// The new-run form's prefilled filters and specialist boxes.
    run_form: super::run_pages::RunFormDefaults,
}

pub(super) fn render(template: &impl Template) -> Result<Html<String>, ApiError> {
    template
        .render()
        .map(Html)
        .map_err(|e| ApiError::Internal(format!("rendering a page: {e}")))
}

/// The request's CSRF token, or a new one with the cookie that carries it.
pub(super) fn csrf_token(headers: &HeaderMap, secure: bool) -> (String, Option<String>) {
    match cookie(headers, CSRF_COOKIE) {
        Some(token) if token.len() == 32 => (token.to_string(), None),
        _ => {
            let token = random_hex(16);
            let header = set_cookie(CSRF_COOKIE, &token, 24 * 3600, secure);
            (token, Some(header))
        }
    }
}

/// Refuses a form post whose `csrf` field does not match the cookie.
pub(super) fn check_csrf(headers: &HeaderMap, submitted: &str) -> Result<(), ApiError> {
    match cookie(headers, CSRF_COOKIE) {
        Some(expected) if !submitted.is_empty() && expected == submitted => Ok(()),
        _ => Err(ApiError::Forbidden(
            "csrf: the form's token is missing or stale; reload the page and try again".into(),
        )),
    }
}

pub(super) fn with_cookies(cookies: Vec<String>, body: impl IntoResponse) -> Response {
    let headers: Vec<_> = cookies.into_iter().map(|c| (SET_COOKIE, c)).collect();
    (AppendHeaders(headers), body).into_response()
}

/// The page `render_with` renders from the request's CSRF token; sets the token's cookie when
/// the token is new.
pub(super) fn csrf_page(
    state: &AppState,
    headers: &HeaderMap,
    render_with: impl FnOnce(&str) -> Result<Html<String>, ApiError>,
) -> Result<Response, ApiError> {
    let (csrf, set) = csrf_token(headers, state.secure_cookies);
    let page = render_with(&csrf)?;
    Ok(with_cookies(set.into_iter().collect(), page))
}

/// `e` as an error page titled `title`, with its status.
pub(super) fn error_page(title: &str, e: &ApiError) -> Result<Response, ApiError> {
    let page = render(&ErrorPage {
        title,
        message: &e.to_string(),
    })?;
    Ok((e.status(), page).into_response())
}

/// A client error as an error page with its status; a refused CSRF token or quota (403) and
/// server errors stay errors.
pub(super) fn refused(title: &str, e: ApiError) -> Result<Response, ApiError> {
    if matches!(e, ApiError::Forbidden(_)) || !e.status().is_client_error() {
        return Err(e);
    }
    error_page(title, &e)
}

async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    csrf_page(&state, &headers, |csrf| {
        render(&LoginPage {
            csrf,
            email: "",
            error: None,
        })
    })
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn login_form(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiError> {
    check_csrf(&headers, &form.csrf)?;
    match super::api::sign_in(&state, ip, &form.email, &form.password).await {
        Ok((_, token)) => {
            let cookie = set_cookie(
                SESSION_COOKIE,
                &token,
                state.sessions.ttl().as_secs(),
                state.secure_cookies,
            );
            Ok(with_cookies(vec![cookie], Redirect::to("/")))
        }
        Err(e @ (ApiError::Unauthorized(_) | ApiError::TooManyRequests(_))) => {
            let page = render(&LoginPage {
                csrf: &form.csrf,
                email: &form.email,
                error: Some(&e.to_string()),
            })?;
            Ok((e.status(), page).into_response())
        }
        Err(e) => Err(e),
    }
}

async fn dashboard(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
) -> Result<Response, ApiError> {
    let Ok(auth) = auth else {
        return Ok(Redirect::to("/login").into_response());
    };
    let mut teams = Vec::new();
    for (team, role) in accounts::teams_of(&state.db, &auth.user).await? {
        teams.push(TeamPlugins {
            id: team.id,
            plugins: plugins::list(&state.db, team.id).await?,
            datasets: datasets::list(&state.db, team.id).await?,
            runs: crate::runs::list(&state.db, team.id).await?,
            name: team.name,
            role,
        });
    }
    let models = crate::models_registry::list(&state.db).await?;
    csrf_page(&state, &headers, |csrf| {
        render(&DashboardPage {
            csrf,
            email: &auth.user.email,
            is_admin: auth.user.is_admin,
            teams,
            models,
            run_form: super::run_pages::RunFormDefaults::of(&state.runs),
        })
    })
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Form(form): Form<LogoutForm>,
) -> Result<Response, ApiError> {
    check_csrf(&headers, &form.csrf)?;
    if let Ok(AuthUser {
        credential: Credential::Session(claims),
        ..
    }) = &auth
    {
        crate::auth::revoke(&state.db, claims).await?;
    }
    let clear = set_cookie(SESSION_COOKIE, "", 0, state.secure_cookies);
    Ok(with_cookies(
        vec![clear],
        (StatusCode::SEE_OTHER, [("location", "/login")]),
    ))
}

#[derive(Template)]
#[template(path = "dataset.html")]
struct DatasetPage<'a> {
    csrf: &'a str,
    email: &'a str,
    team_id: i32,
    dataset: dataset::Model,
    samples: SamplePage,
    report: Vec<SampleError>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub(super) struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

/// `?page=` of a dataset page.
#[derive(Deserialize)]
struct PageQuery {
    page: Option<u64>,
}

async fn dataset_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path((team_id, dataset_id)): Path<(i32, i32)>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let Ok(auth) = auth else {
        return Ok(Redirect::to("/login").into_response());
    };
    let dataset = super::datasets::team_dataset(&state, &auth, team_id, dataset_id).await?;
    let samples = datasets::samples(
        &state.db,
        &dataset,
        query.page.unwrap_or(1),
        datasets::PAGE_SIZE,
    )
    .await?;
    let report = datasets::report(&dataset);
    csrf_page(&state, &headers, |csrf| {
        render(&DatasetPage {
            csrf,
            email: &auth.user.email,
            team_id,
            dataset,
            samples,
            report,
        })
    })
}

/// The dashboard's upload form (multipart: `csrf` first, then `name` and `file`); redirects to
/// the new dataset, or shows why it was refused.
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
    let (team, _) = accounts::team_access(&state.db, &auth.user, team_id).await?;
    let result = async {
        let multipart = multipart.map_err(|e| {
            ApiError::BadRequest(format!(
                "file: expected a multipart form: {}",
                e.body_text()
            ))
        })?;
        let cap = datasets::upload_cap(&state.db, &team).await?;
        let check = |submitted: &str| check_csrf(&headers, submitted);
        let received = datasets::receive(
            &state.db,
            multipart,
            &state.tmp_dir,
            &team,
            cap,
            Some(&check),
        )
        .await?;
        datasets::ingest(&state, &team, received).await
    }
    .await;
    match result {
        Ok(row) => Ok((
            StatusCode::SEE_OTHER,
            [("location", format!("/teams/{team_id}/datasets/{}", row.id))],
        )
            .into_response()),
        Err(e) => refused("Upload refused", e),
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    csrf: String,
}

/// The dataset page's delete button: frees the team's storage, back to the dashboard.
async fn delete_dataset_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path((team_id, dataset_id)): Path<(i32, i32)>,
    Form(form): Form<DeleteForm>,
) -> Result<Response, ApiError> {
    let Ok(auth) = auth else {
        return Ok(Redirect::to("/login").into_response());
    };
    check_csrf(&headers, &form.csrf)?;
    let dataset = super::datasets::team_dataset(&state, &auth, team_id, dataset_id).await?;
    match datasets::delete(&state, &dataset).await {
        Ok(()) => Ok((StatusCode::SEE_OTHER, [("location", "/")]).into_response()),
        Err(e @ ApiError::Conflict(_)) => error_page("Dataset kept", &e),
        Err(e) => Err(e),
    }
}
