//! Admin routes of the JSON API (`/api/v1/admin/...`, platform admins only; others get 403):
//! users and teams, quotas and usage, every run across teams (cancel, priority), the model
//! registry. Plus `GET /api/v1/models`, the registry as any signed-in user sees it.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};

use super::ApiJson;
use crate::AppState;
use crate::auth::AuthUser;
use crate::entities::{membership, registered_model, run, team, user};
use crate::error::ApiError;
use crate::models_registry::{self, RegisterModel};
use crate::quotas::{self, Limits, TeamUsage};

/// Highest (and, negated, lowest) run priority.
pub const MAX_PRIORITY: i32 = 1000;

/// The admin routes, relative to `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list_users).post(create_user))
        .route("/admin/teams", get(list_teams))
        .route("/admin/teams/{id}/quotas", get(get_quotas).put(set_quotas))
        .route("/admin/runs", get(list_runs))
        .route("/admin/runs/{run_id}/cancel", post(cancel_run))
        .route("/admin/runs/{run_id}/priority", put(set_priority))
        .route("/admin/models", get(list_models).post(register_model))
        .route("/admin/models/{model_id}", delete(remove_model))
        .route("/models", get(models_for_members))
}

/// A user with their teams.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminUser {
    pub id: i32,
    pub email: String,
    pub is_admin: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub teams: Vec<UserTeam>,
}

/// A team a user is in, with the role.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserTeam {
    pub team_id: i32,
    pub team_name: String,
    /// `owner` or `member`.
    pub role: String,
}

/// `POST /admin/users`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    /// At least 8 characters; stored as an argon2id hash.
    pub password: String,
    /// A platform admin (default: no).
    #[serde(default)]
    pub is_admin: bool,
}

/// `PUT /admin/runs/{run_id}/priority`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityRequest {
    /// -1000 to 1000; higher runs are claimed first, then the oldest. Default 0.
    pub priority: i32,
}

/// Every user with their teams (pages use it too).
pub async fn users(state: &AppState) -> Result<Vec<AdminUser>, ApiError> {
    let teams = team::Entity::find().all(&state.db).await?;
    let memberships = membership::Entity::find().all(&state.db).await?;
    let users = user::Entity::find()
        .order_by_asc(user::Column::Email)
        .all(&state.db)
        .await?;
    Ok(users
        .into_iter()
        .map(|u| AdminUser {
            teams: memberships
                .iter()
                .filter(|m| m.user_id == u.id)
                .filter_map(|m| {
                    let t = teams.iter().find(|t| t.id == m.team_id)?;
                    Some(UserTeam {
                        team_id: t.id,
                        team_name: t.name.clone(),
                        role: m.role.clone(),
                    })
                })
                .collect(),
            id: u.id,
            email: u.email,
            is_admin: u.is_admin,
            created_at: u.created_at,
        })
        .collect())
}

/// Limits and usage of every team, by name.
pub async fn teams_usage(state: &AppState) -> Result<Vec<TeamUsage>, ApiError> {
    let teams = team::Entity::find()
        .order_by_asc(team::Column::Name)
        .all(&state.db)
        .await?;
    let mut out = Vec::with_capacity(teams.len());
    for t in &teams {
        out.push(quotas::usage(&state.db, t).await?);
    }
    Ok(out)
}

/// Team `id` for an admin (404 when it does not exist).
pub async fn find_team(state: &AppState, id: i32) -> Result<team::Model, ApiError> {
    team::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found("team", id))
}

/// Every run of every team, newest first.
pub async fn all_runs(state: &AppState) -> Result<Vec<run::Model>, ApiError> {
    Ok(run::Entity::find()
        .order_by_desc(run::Column::Id)
        .all(&state.db)
        .await?)
}

/// Run `id` of any team (404 when it does not exist).
pub async fn find_run(state: &AppState, id: i32) -> Result<run::Model, ApiError> {
    run::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found("run", id))
}

/// Sets the priority of run `id`; a finished run is a 409.
pub async fn priority(state: &AppState, id: i32, priority: i32) -> Result<run::Model, ApiError> {
    if !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&priority) {
        return Err(ApiError::BadRequest(format!(
            "priority: {priority} is not in -{MAX_PRIORITY}..={MAX_PRIORITY}"
        )));
    }
    let row = find_run(state, id).await?;
    let done = run::Entity::update_many()
        .col_expr(run::Column::Priority, Expr::value(priority))
        .filter(run::Column::Id.eq(id))
        .filter(run::Column::Status.is_in(quotas::ACTIVE))
        .exec(&state.db)
        .await?;
    if done.rows_affected == 0 {
        return Err(ApiError::Conflict(format!(
            "run {id} is {} already; only queued, running or paused runs take a priority",
            row.status
        )));
    }
    tracing::info!(run = id, priority, "run priority set");
    find_run(state, id).await
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/users",
    tag = "admin",
    responses(
        (status = 200, description = "Every user with their teams", body = Vec<AdminUser>),
        (status = 403, description = "Not a platform admin", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn list_users(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<AdminUser>>, ApiError> {
    auth.require_admin()?;
    users(&state).await.map(Json)
}

/// Create a user account (they sign in with this email and password; add them to teams
/// with `POST /api/v1/teams/{id}/members`).
#[utoipa::path(
    post,
    path = "/api/v1/admin/users",
    tag = "admin",
    request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = AdminUser),
        (status = 400, description = "Invalid email or too short a password (named in the message)", body = crate::error::ErrorBody),
        (status = 409, description = "The email is taken", body = crate::error::ErrorBody),
        (status = 403, description = "Not a platform admin", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn create_user(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<AdminUser>), ApiError> {
    auth.require_admin()?;
    let u = new_user(&state, &auth, &req).await?;
    Ok((
        StatusCode::CREATED,
        Json(AdminUser {
            id: u.id,
            email: u.email,
            is_admin: u.is_admin,
            created_at: u.created_at,
            teams: Vec::new(),
        }),
    ))
}

/// Creates the account `req` on behalf of admin `by` (pages use it too).
pub async fn new_user(
    state: &AppState,
    by: &AuthUser,
    req: &CreateUser,
) -> Result<user::Model, ApiError> {
    let u =
        crate::accounts::create_user(&state.db, &req.email, &req.password, req.is_admin).await?;
    tracing::info!(user = u.id, email = %u.email, admin = u.is_admin, by = %by.user.email, "user created");
    Ok(u)
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/teams",
    tag = "admin",
    responses(
        (status = 200, description = "Every team's limits and usage", body = Vec<TeamUsage>),
        (status = 403, description = "Not a platform admin", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn list_teams(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<TeamUsage>>, ApiError> {
    auth.require_admin()?;
    teams_usage(&state).await.map(Json)
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/teams/{id}/quotas",
    tag = "admin",
    params(("id" = i32, Path, description = "Team id")),
    responses(
        (status = 200, description = "The team's limits and usage", body = TeamUsage),
        (status = 404, description = "No such team", body = crate::error::ErrorBody),
        (status = 403, description = "Not a platform admin", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn get_quotas(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(team_id): Path<i32>,
) -> Result<Json<TeamUsage>, ApiError> {
    auth.require_admin()?;
    let team = find_team(&state, team_id).await?;
    quotas::usage(&state.db, &team).await.map(Json)
}

/// Replace a team's limits (absent or null: unlimited). Paused runs the new limits allow
/// are queued again by the worker and resume from their done tasks.
#[utoipa::path(
    put,
    path = "/api/v1/admin/teams/{id}/quotas",
    tag = "admin",
    params(("id" = i32, Path, description = "Team id")),
    request_body = Limits,
    responses(
        (status = 200, description = "The team's new limits and usage", body = TeamUsage),
        (status = 400, description = "Invalid field (named in the message)", body = crate::error::ErrorBody),
        (status = 404, description = "No such team", body = crate::error::ErrorBody),
        (status = 403, description = "Not a platform admin", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn set_quotas(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(team_id): Path<i32>,
    ApiJson(limits): ApiJson<Limits>,
) -> Result<Json<TeamUsage>, ApiError> {
    auth.require_admin()?;
    let team = find_team(&state, team_id).await?;
    quotas::set_limits(&state.db, &team, &limits).await?;
    let team = find_team(&state, team_id).await?;
    quotas::usage(&state.db, &team).await.map(Json)
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/runs",
    tag = "admin",
    responses(
        (status = 200, description = "Every run of every team, newest first", body = Vec<run::Model>),
        (status = 403, description = "Not a platform admin", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn list_runs(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<run::Model>>, ApiError> {
    auth.require_admin()?;
    all_runs(&state).await.map(Json)
}

/// Cancel any team's run (as the team's own cancel does).
#[utoipa::path(
    post,
    path = "/api/v1/admin/runs/{run_id}/cancel",
    tag = "admin",
    params(("run_id" = i32, Path, description = "Run id")),
    responses(
        (status = 200, description = "Cancelled, or cancel requested", body = run::Model),
        (status = 409, description = "The run has finished already", body = crate::error::ErrorBody),
        (status = 404, description = "No such run", body = crate::error::ErrorBody),
        (status = 403, description = "Not a platform admin", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn cancel_run(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(run_id): Path<i32>,
) -> Result<Json<run::Model>, ApiError> {
    auth.require_admin()?;
    let row = find_run(&state, run_id).await?;
    crate::runs::cancel(&state.db, &row).await.map(Json)
}

/// Set a run's priority: the worker claims the highest first, then the oldest.
#[utoipa::path(
    put,
    path = "/api/v1/admin/runs/{run_id}/priority",
    tag = "admin",
    params(("run_id" = i32, Path, description = "Run id")),
    request_body = PriorityRequest,
    responses(
        (status = 200, description = "The run with its new priority", body = run::Model),
        (status = 400, description = "Priority out of range", body = crate::error::ErrorBody),
        (status = 409, description = "The run has finished already", body = crate::error::ErrorBody),
        (status = 404, description = "No such run", body = crate::error::ErrorBody),
        (status = 403, description = "Not a platform admin", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn set_priority(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(run_id): Path<i32>,
    ApiJson(req): ApiJson<PriorityRequest>,
) -> Result<Json<run::Model>, ApiError> {
    auth.require_admin()?;
    priority(&state, run_id, req.priority).await.map(Json)
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/models",
    tag = "admin",
    responses(
        (status = 200, description = "The registered models, by name", body = Vec<registered_model::Model>),
        (status = 403, description = "Not a platform admin", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn list_models(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<registered_model::Model>>, ApiError> {
    auth.require_admin()?;
    models_registry::list(&state.db).await.map(Json)
}

/// Register a local model folder; its config is loaded with the engine's loader first.
#[utoipa::path(
    post,
    path = "/api/v1/admin/models",
    tag = "admin",
    request_body = RegisterModel,
    responses(
        (status = 201, description = "Registered", body = registered_model::Model),
        (status = 400, description = "The folder does not load (the message says why) or a field is invalid", body = crate::error::ErrorBody),
        (status = 409, description = "The name is taken", body = crate::error::ErrorBody),
        (status = 403, description = "Not a platform admin", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn register_model(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<RegisterModel>,
) -> Result<(StatusCode, Json<registered_model::Model>), ApiError> {
    auth.require_admin()?;
    let row = models_registry::register(&state.db, &auth.user, &req).await?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// Remove a model from the registry (its folder is left alone).
#[utoipa::path(
    delete,
    path = "/api/v1/admin/models/{model_id}",
    tag = "admin",
    params(("model_id" = i32, Path, description = "Model id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such model", body = crate::error::ErrorBody),
        (status = 403, description = "Not a platform admin", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn remove_model(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(model_id): Path<i32>,
) -> Result<StatusCode, ApiError> {
    auth.require_admin()?;
    models_registry::remove(&state.db, model_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The registered models a run may start from (`model_id`), for any signed-in user.
#[utoipa::path(
    get,
    path = "/api/v1/models",
    tag = "runs",
    responses(
        (status = 200, description = "The registered models, by name", body = Vec<registered_model::Model>),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn models_for_members(
    State(state): State<AppState>,
    _auth: AuthUser,
) -> Result<Json<Vec<registered_model::Model>>, ApiError> {
    models_registry::list(&state.db).await.map(Json)
}

/// OpenAPI of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_users,
    create_user,
    list_teams,
    get_quotas,
    set_quotas,
    list_runs,
    cancel_run,
    set_priority,
    list_models,
    register_model,
    remove_model,
    models_for_members
))]
pub(super) struct Doc;
