//! Server-rendered pages (askama). Form posts carry a CSRF token that must match the
//! `vila2_csrf` cookie (double submit).

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{AppendHeaders, Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::{ClientIp, set_cookie};
use crate::AppState;
use crate::accounts;
use crate::auth::{AuthUser, CSRF_COOKIE, Credential, SESSION_COOKIE, cookie, random_hex};
use crate::entities::plugin;
use crate::error::ApiError;
use crate::plugins;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard))
        .route("/login", get(login_page).post(login_form))
        .route("/logout", axum::routing::post(logout_form))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

struct TeamPlugins {
    name: String,
    role: String,
    plugins: Vec<plugin::Model>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    csrf: &'a str,
    email: &'a str,
    is_admin: bool,
    teams: Vec<TeamPlugins>,
}

fn render(template: &impl Template) -> Result<Html<String>, ApiError> {
    template
        .render()
        .map(Html)
        .map_err(|e| ApiError::Internal(format!("rendering a page: {e}")))
}

/// The request's CSRF token, or a new one with the cookie that carries it.
fn csrf_token(headers: &HeaderMap, secure: bool) -> (String, Option<String>) {
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
fn check_csrf(headers: &HeaderMap, submitted: &str) -> Result<(), ApiError> {
    match cookie(headers, CSRF_COOKIE) {
        Some(expected) if !submitted.is_empty() && expected == submitted => Ok(()),
        _ => Err(ApiError::Forbidden(
            "csrf: the form's token is missing or stale; reload the page and try again".into(),
        )),
    }
}

fn with_cookies(cookies: Vec<String>, body: impl IntoResponse) -> Response {
    let headers: Vec<_> = cookies.into_iter().map(|c| (SET_COOKIE, c)).collect();
    (AppendHeaders(headers), body).into_response()
}

async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (csrf, set) = csrf_token(&headers, state.secure_cookies);
    let page = render(&LoginPage {
        csrf: &csrf,
        email: "",
        error: None,
    })?;
    Ok(with_cookies(set.into_iter().collect(), page))
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
            plugins: plugins::list(&state.db, team.id).await?,
            name: team.name,
            role,
        });
    }
    let (csrf, set) = csrf_token(&headers, state.secure_cookies);
    let page = render(&DashboardPage {
        csrf: &csrf,
        email: &auth.user.email,
        is_admin: auth.user.is_admin,
        teams,
    })?;
    Ok(with_cookies(set.into_iter().collect(), page))
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
        state.sessions.revoke(claims);
    }
    let clear = set_cookie(SESSION_COOKIE, "", 0, state.secure_cookies);
    Ok(with_cookies(
        vec![clear],
        (StatusCode::SEE_OTHER, [("location", "/login")]),
    ))
}
