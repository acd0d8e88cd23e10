//! The admin pages (platform admins only; others get 403, visitors the login page): users and
//! teams (create a user, create a team with its owner, add and remove members), quotas and
//! usage per team with an edit form, every run across teams with cancel and
//! priority, the model registry, and plugins with links to their publish controls. Form posts
//! check the CSRF token and come back to `/admin`.

use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use sea_orm::{EntityTrait, QueryOrder};
use serde::Deserialize;

use super::admin::{self, AdminUser, CreateUser};
use super::pages::{check_csrf, csrf_page, refused, render};
use crate::AppState;
use crate::accounts;
use crate::auth::AuthUser;
use crate::entities::{membership, plugin, registered_model, run, team};
use crate::error::ApiError;
use crate::models_registry::{self, RegisterModel};
use crate::quotas::{self, Limits, TeamUsage};

/// The admin pages, at the root.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(admin_page))
        .route("/admin/users", post(user_form))
        .route("/admin/teams", post(team_form))
        .route("/admin/teams/{id}/members", post(member_form))
        .route(
            "/admin/teams/{id}/members/{user_id}/remove",
            post(remove_member_form),
        )
        .route("/admin/teams/{id}/quotas", post(quotas_form))
        .route("/admin/runs/{run_id}/cancel", post(cancel_form))
        .route("/admin/runs/{run_id}/priority", post(priority_form))
        .route("/admin/models", post(register_form))
        .route("/admin/models/{model_id}/delete", post(remove_form))
}

/// A run with its team's name.
struct RunRow {
    run: run::Model,
    team_name: String,
    active: bool,
}

/// A plugin with its team's name.
struct PluginRow {
    plugin: plugin::Model,
    team_name: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage<'a> {
    csrf: &'a str,
    email: &'a str,
    users: Vec<AdminUser>,
    teams: Vec<TeamUsage>,
    runs: Vec<RunRow>,
    models: Vec<registered_model::Model>,
    plugins: Vec<PluginRow>,
}

impl AdminPage<'_> {
    /// The members of team `team_id` with their role, by email.
    fn members_of(&self, team_id: &i32) -> Vec<(&AdminUser, &str)> {
        self.users
            .iter()
            .filter_map(|u| {
                let t = u.teams.iter().find(|t| t.team_id == *team_id)?;
                Some((u, t.role.as_str()))
            })
            .collect()
    }
}

/// Signed-in platform admin, else the login page (visitors) or 403.
fn admin_only(auth: Result<AuthUser, ApiError>) -> Result<Result<AuthUser, Response>, ApiError> {
    match auth {
        Ok(auth) => {
            auth.require_admin()?;
            Ok(Ok(auth))
        }
        Err(_) => Ok(Err(Redirect::to("/login").into_response())),
    }
}

/// [`admin_only`] for a form post, whose CSRF token must match too.
fn admin_post(
    auth: Result<AuthUser, ApiError>,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Result<AuthUser, Response>, ApiError> {
    let auth = admin_only(auth)?;
    if auth.is_ok() {
        check_csrf(headers, csrf)?;
    }
    Ok(auth)
}

async fn admin_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
) -> Result<Response, ApiError> {
    let auth = match admin_only(auth)? {
        Ok(a) => a,
        Err(redirect) => return Ok(redirect),
    };
    let teams = team::Entity::find().all(&state.db).await?;
    let team_name = |id: i32| {
        teams
            .iter()
            .find(|t| t.id == id)
            .map_or_else(|| format!("team {id}"), |t| t.name.clone())
    };
    let runs = admin::all_runs(&state)
        .await?
        .into_iter()
        .map(|r| RunRow {
            team_name: team_name(r.team_id),
            active: quotas::ACTIVE.contains(&r.status.as_str()),
            run: r,
        })
        .collect();
    let plugins = plugin::Entity::find()
        .order_by_asc(plugin::Column::Name)
        .order_by_asc(plugin::Column::Id)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|p| PluginRow {
            team_name: team_name(p.team_id),
            plugin: p,
        })
        .collect();
    let users = admin::users(&state).await?;
    let teams = admin::teams_usage(&state).await?;
    let models = models_registry::list(&state.db).await?;
    csrf_page(&state, &headers, |csrf| {
        render(&AdminPage {
            csrf,
            email: &auth.user.email,
            users,
            teams,
            runs,
            models,
            plugins,
        })
    })
}

/// Back to the admin page, or the reason a form was refused.
fn outcome(result: Result<(), ApiError>) -> Result<Response, ApiError> {
    match result {
        Ok(()) => Ok((StatusCode::SEE_OTHER, [("location", "/admin")]).into_response()),
        Err(e) => refused("Not changed", e),
    }
}

#[derive(Deserialize)]
struct QuotasForm {
    #[serde(default)]
    csrf: String,
    storage_quota_bytes: String,
    #[serde(default)]
    gpu_seconds_per_month: String,
    #[serde(default)]
    max_concurrent_runs: String,
    #[serde(default)]
    max_samples_per_run: String,
}

/// A form number: empty is `None` (unlimited); else it must parse, naming `field`.
fn number<T: std::str::FromStr>(field: &str, value: &str) -> Result<Option<T>, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| {
        ApiError::BadRequest(format!(
            "{field}: {value:?} is not a number (leave it empty for unlimited)"
        ))
    })
}

async fn quotas_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path(team_id): Path<i32>,
    Form(form): Form<QuotasForm>,
) -> Result<Response, ApiError> {
    if let Err(redirect) = admin_post(auth, &headers, &form.csrf)? {
        return Ok(redirect);
    }
    let result = async {
        let team = admin::find_team(&state, team_id).await?;
        let limits = Limits {
            storage_quota_bytes: number("storage_quota_bytes", &form.storage_quota_bytes)?
                .ok_or_else(|| {
                    ApiError::BadRequest("storage_quota_bytes: give a number of bytes".into())
                })?,
            gpu_seconds_per_month: number("gpu_seconds_per_month", &form.gpu_seconds_per_month)?,
            max_concurrent_runs: number("max_concurrent_runs", &form.max_concurrent_runs)?,
            max_samples_per_run: number("max_samples_per_run", &form.max_samples_per_run)?,
        };
        quotas::set_limits(&state.db, &team, &limits).await
    }
    .await;
    outcome(result)
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn cancel_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path(run_id): Path<i32>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ApiError> {
    if let Err(redirect) = admin_post(auth, &headers, &form.csrf)? {
        return Ok(redirect);
    }
    let result = async {
        let row = admin::find_run(&state, run_id).await?;
        crate::runs::cancel(&state.db, &row).await.map(|_| ())
    }
    .await;
    outcome(result)
}

#[derive(Deserialize)]
struct PriorityForm {
    #[serde(default)]
    csrf: String,
    priority: String,
}

async fn priority_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path(run_id): Path<i32>,
    Form(form): Form<PriorityForm>,
) -> Result<Response, ApiError> {
    if let Err(redirect) = admin_post(auth, &headers, &form.csrf)? {
        return Ok(redirect);
    }
    let result = async {
        let priority = number("priority", &form.priority)?
            .ok_or_else(|| ApiError::BadRequest("priority: give a number".into()))?;
        admin::priority(&state, run_id, priority).await.map(|_| ())
    }
    .await;
    outcome(result)
}

#[derive(Deserialize)]
struct RegisterForm {
    #[serde(default)]
    csrf: String,
    name: String,
    path: String,
}

async fn register_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Form(form): Form<RegisterForm>,
) -> Result<Response, ApiError> {
    let auth = match admin_post(auth, &headers, &form.csrf)? {
        Ok(a) => a,
        Err(redirect) => return Ok(redirect),
    };
    let req = RegisterModel {
        name: form.name,
        path: form.path,
    };
    outcome(
        models_registry::register(&state.db, &auth.user, &req)
            .await
            .map(|_| ()),
    )
}

async fn remove_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path(model_id): Path<i32>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ApiError> {
    if let Err(redirect) = admin_post(auth, &headers, &form.csrf)? {
        return Ok(redirect);
    }
    outcome(models_registry::remove(&state.db, model_id).await)
}

#[derive(Deserialize)]
struct UserForm {
    #[serde(default)]
    csrf: String,
    email: String,
    password: String,
    /// The checkbox: present when ticked.
    #[serde(default)]
    is_admin: Option<String>,
}

async fn user_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Form(form): Form<UserForm>,
) -> Result<Response, ApiError> {
    let auth = match admin_post(auth, &headers, &form.csrf)? {
        Ok(a) => a,
        Err(redirect) => return Ok(redirect),
    };
    let req = CreateUser {
        email: form.email,
        password: form.password,
        is_admin: form.is_admin.is_some(),
    };
    outcome(admin::new_user(&state, &auth, &req).await.map(|_| ()))
}

#[derive(Deserialize)]
struct TeamForm {
    #[serde(default)]
    csrf: String,
    name: String,
    /// An existing user who becomes the team's owner; empty: none.
    #[serde(default)]
    owner_email: String,
}

async fn team_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Form(form): Form<TeamForm>,
) -> Result<Response, ApiError> {
    if let Err(redirect) = admin_post(auth, &headers, &form.csrf)? {
        return Ok(redirect);
    }
    let result = async {
        let owner = form.owner_email.trim();
        // Checked first, so that a mistyped owner leaves no team behind.
        if !owner.is_empty()
            && accounts::find_user_by_email(&state.db, owner)
                .await?
                .is_none()
        {
            return Err(ApiError::NotFound(format!("owner_email: no user {owner}")));
        }
        let team = accounts::create_team(&state.db, &form.name).await?;
        if !owner.is_empty() {
            accounts::add_member(&state.db, team.id, owner, membership::OWNER).await?;
        }
        Ok(())
    }
    .await;
    outcome(result)
}

#[derive(Deserialize)]
struct MemberForm {
    #[serde(default)]
    csrf: String,
    email: String,
    #[serde(default)]
    role: String,
}

async fn member_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path(team_id): Path<i32>,
    Form(form): Form<MemberForm>,
) -> Result<Response, ApiError> {
    if let Err(redirect) = admin_post(auth, &headers, &form.csrf)? {
        return Ok(redirect);
    }
    let result = async {
        let team = admin::find_team(&state, team_id).await?;
        let role = match form.role.trim() {
            "" => membership::MEMBER,
            role => role,
        };
        accounts::add_member(&state.db, team.id, &form.email, role)
            .await
            .map(|_| ())
    }
    .await;
    outcome(result)
}

async fn remove_member_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Result<AuthUser, ApiError>,
    Path((team_id, user_id)): Path<(i32, i32)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ApiError> {
    if let Err(redirect) = admin_post(auth, &headers, &form.csrf)? {
        return Ok(redirect);
    }
    outcome(accounts::remove_member(&state.db, team_id, user_id).await)
}
