//! JSON API handlers for sessions, tokens, teams and members: thin wrappers over
//! [`crate::accounts`].

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{AppendHeaders, IntoResponse};
use axum::routing::{delete, get, post};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};

use super::{ApiJson, ClientIp, set_cookie};
use crate::AppState;
use crate::accounts;
use crate::auth::{
    API_TOKEN_PREFIX, AuthUser, Credential, SESSION_COOKIE, random_hex, token_digest,
};
use crate::entities::{api_token, membership, team};
use crate::error::ApiError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(super::openapi::openapi_json))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/tokens", post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
        .route("/teams", get(list_teams).post(create_team))
        .route("/teams/{id}/members", post(add_member))
        .route("/teams/{id}/members/{user_id}", delete(remove_member))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct LoginResponse {
    token: String,
    expires_in: u64,
    user: UserView,
}

#[derive(Serialize, utoipa::ToSchema)]
struct UserView {
    id: i32,
    email: String,
    is_admin: bool,
}

impl From<&crate::entities::user::Model> for UserView {
    fn from(u: &crate::entities::user::Model) -> Self {
        UserView {
            id: u.id,
            email: u.email.clone(),
            is_admin: u.is_admin,
        }
    }
}

/// Rate-limits, checks the password, and issues a session token (cookie and body).
pub(super) async fn sign_in(
    state: &AppState,
    ip: ClientIp,
    email: &str,
    password: &str,
) -> Result<(crate::entities::user::Model, String), ApiError> {
    let mut keys = vec![format!("email:{}", email.trim().to_lowercase())];
    if let Some(ip) = ip.0 {
        keys.push(format!("ip:{ip}"));
    }
    state.login_limiter.check(&keys)?;
    let user = accounts::authenticate(&state.db, email, password).await?;
    let token = state.sessions.issue(user.id)?;
    tracing::info!(user = user.id, "signed in");
    Ok((user, token))
}

#[utoipa::path(
    post,
    path = "/api/v1/login",
    tag = "auth",
    security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; also sets the session cookie", body = LoginResponse),
        (status = 401, description = "Wrong email or password", body = crate::error::ErrorBody),
        (status = 429, description = "Too many attempts", body = crate::error::ErrorBody),
    ),
)]
async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let (user, token) = sign_in(&state, ip, &req.email, &req.password).await?;
    let ttl = state.sessions.ttl().as_secs();
    let cookie = set_cookie(SESSION_COOKIE, &token, ttl, state.secure_cookies);
    Ok((
        AppendHeaders([(SET_COOKIE, cookie)]),
        Json(LoginResponse {
            token,
            expires_in: ttl,
            user: UserView::from(&user),
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/logout",
    tag = "auth",
    responses(
        (status = 204, description = "Signed out: the session token is revoked and the cookie cleared"),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn logout(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<impl IntoResponse, ApiError> {
    if let Credential::Session(claims) = &auth.credential {
        crate::auth::revoke(&state.db, claims).await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        AppendHeaders([(
            SET_COOKIE,
            set_cookie(SESSION_COOKIE, "", 0, state.secure_cookies),
        )]),
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
struct TeamView {
    id: i32,
    name: String,
    role: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct MeResponse {
    #[serde(flatten)]
    user: UserView,
    teams: Vec<TeamView>,
}

#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "auth",
    responses(
        (status = 200, body = MeResponse),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn me(State(state): State<AppState>, auth: AuthUser) -> Result<Json<MeResponse>, ApiError> {
    let teams = team_views(&state, &auth).await?;
    Ok(Json(MeResponse {
        user: UserView::from(&auth.user),
        teams,
    }))
}

async fn team_views(state: &AppState, auth: &AuthUser) -> Result<Vec<TeamView>, ApiError> {
    Ok(accounts::teams_of(&state.db, &auth.user)
        .await?
        .into_iter()
        .map(|(t, role)| TeamView {
            id: t.id,
            name: t.name,
            role,
        })
        .collect())
}

#[utoipa::path(
    get,
    path = "/api/v1/teams",
    tag = "teams",
    responses(
        (status = 200, description = "The caller's teams (every team for an admin)", body = Vec<TeamView>),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn list_teams(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<TeamView>>, ApiError> {
    team_views(&state, &auth).await.map(Json)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CreateTeam {
    name: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/teams",
    tag = "teams",
    request_body = CreateTeam,
    responses(
        (status = 201, body = team::Model),
        (status = 403, description = "Not a platform admin", body = crate::error::ErrorBody),
        (status = 409, description = "Name taken", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn create_team(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<CreateTeam>,
) -> Result<(StatusCode, Json<team::Model>), ApiError> {
    auth.require_admin()?;
    let team = accounts::create_team(&state.db, &req.name).await?;
    Ok((StatusCode::CREATED, Json(team)))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct AddMember {
    email: String,
    #[serde(default = "default_role")]
    role: String,
}

fn default_role() -> String {
    membership::MEMBER.to_string()
}

#[utoipa::path(
    post,
    path = "/api/v1/teams/{id}/members",
    tag = "teams",
    params(("id" = i32, Path, description = "Team id")),
    request_body = AddMember,
    responses(
        (status = 201, body = membership::Model),
        (status = 403, description = "Not the team's owner or an admin", body = crate::error::ErrorBody),
        (status = 404, description = "No such team or object (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn add_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(team_id): Path<i32>,
    ApiJson(req): ApiJson<AddMember>,
) -> Result<(StatusCode, Json<membership::Model>), ApiError> {
    let (_, access) = accounts::team_access(&state.db, &auth.user, team_id).await?;
    if !access.can_manage() {
        return Err(ApiError::Forbidden(
            "only a team owner or a platform admin may add members".into(),
        ));
    }
    let m = accounts::add_member(&state.db, team_id, &req.email, &req.role).await?;
    Ok((StatusCode::CREATED, Json(m)))
}

/// Remove a member from a team (owners and platform admins). The team keeps its objects.
#[utoipa::path(
    delete,
    path = "/api/v1/teams/{id}/members/{user_id}",
    tag = "teams",
    params(
        ("id" = i32, Path, description = "Team id"),
        ("user_id" = i32, Path, description = "The member's user id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not the team's owner or an admin", body = crate::error::ErrorBody),
        (status = 404, description = "No such team or member (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn remove_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((team_id, user_id)): Path<(i32, i32)>,
) -> Result<StatusCode, ApiError> {
    let (_, access) = accounts::team_access(&state.db, &auth.user, team_id).await?;
    if !access.can_manage() {
        return Err(ApiError::Forbidden(
            "only a team owner or a platform admin may remove members".into(),
        ));
    }
    accounts::remove_member(&state.db, team_id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CreateToken {
    name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TokenCreated {
    id: i32,
    name: String,
    /// Shown once; only its hash is stored.
    token: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "auth",
    request_body = CreateToken,
    responses(
        (status = 201, description = "The token is shown once", body = TokenCreated),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn create_token(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let name = req.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::BadRequest(
            "name: must be 1 to 100 characters".into(),
        ));
    }
    let token = format!("{API_TOKEN_PREFIX}{}", random_hex(32));
    let row = api_token::ActiveModel {
        user_id: Set(auth.user.id),
        name: Set(name.to_string()),
        token_hash: Set(token_digest(&token)),
        created_at: Set(chrono::Utc::now()),
        revoked_at: Set(None),
        ..Default::default()
    }
    .insert(&state.db)
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            id: row.id,
            name: row.name,
            token,
        }),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "auth",
    params(("id" = i32, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such team or object (or not yours)", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
    ),
)]
async fn revoke_token(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<i32>,
) -> Result<StatusCode, ApiError> {
    let row = api_token::Entity::find_by_id(id)
        .filter(api_token::Column::UserId.eq(auth.user.id))
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found("token", id))?;
    let mut row: api_token::ActiveModel = row.into();
    row.revoked_at = Set(Some(chrono::Utc::now()));
    row.update(&state.db).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// OpenAPI of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    login,
    logout,
    me,
    list_teams,
    create_team,
    add_member,
    remove_member,
    create_token,
    revoke_token,
    super::openapi::openapi_json
))]
pub(super) struct Doc;
