//! Users, teams and memberships: the rules, separate from HTTP.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};

use crate::auth;
use crate::entities::{membership, team, user};
use crate::error::ApiError;

/// Shortest accepted password.
pub const MIN_PASSWORD_LEN: usize = 8;

fn check_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && (domain.contains('.') || domain == "localhost")
        });
    if valid {
        Ok(email)
    } else {
        Err(ApiError::BadRequest(format!(
            "email: {email:?} is not an email address"
        )))
    }
}

/// Creates a user with an argon2id password hash.
pub async fn create_user(
    db: &DatabaseConnection,
    email: &str,
    password: &str,
    is_admin: bool,
) -> Result<user::Model, ApiError> {
    let email = check_email(email)?;
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(ApiError::BadRequest(format!(
            "password: must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if find_user_by_email(db, &email).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "email: a user {email} already exists"
        )));
    }
    let password = password.to_string();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(format!("password hashing task: {e}")))??;
    let row = user::ActiveModel {
        email: Set(email),
        password_hash: Set(hash),
        is_admin: Set(is_admin),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    };
    Ok(row.insert(db).await?)
}

/// The user with `email` (case-insensitive).
pub async fn find_user_by_email(
    db: &DatabaseConnection,
    email: &str,
) -> Result<Option<user::Model>, ApiError> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(email.trim().to_lowercase()))
        .one(db)
        .await?)
}

/// The user whose email and password match; the same error whether the email is unknown or
/// the password wrong.
pub async fn authenticate(
    db: &DatabaseConnection,
    email: &str,
    password: &str,
) -> Result<user::Model, ApiError> {
    let found = find_user_by_email(db, email).await?;
    let hash = found.as_ref().map(|u| u.password_hash.clone());
    let password = password.to_string();
    let ok = tokio::task::spawn_blocking(move || match hash {
        Some(hash) => auth::verify_password(&password, &hash),
        None => {
            // Spend the same time as a real check, so timing does not reveal accounts.
            let _ = auth::hash_password(&password);
            false
        }
    })
    .await
    .map_err(|e| ApiError::Internal(format!("password check task: {e}")))?;
    match found {
        Some(user) if ok => Ok(user),
        _ => Err(ApiError::Unauthorized(
            "wrong email or password".to_string(),
        )),
    }
}

/// The teams `user` sees with its role there (`"admin"` for teams an admin is not a member
/// of): every team for an admin, else its memberships.
pub async fn teams_of(
    db: &DatabaseConnection,
    user: &user::Model,
) -> Result<Vec<(team::Model, String)>, ApiError> {
    let memberships = membership::Entity::find()
        .filter(membership::Column::UserId.eq(user.id))
        .all(db)
        .await?;
    let role_in = |team_id: i32| {
        memberships
            .iter()
            .find(|m| m.team_id == team_id)
            .map(|m| m.role.clone())
    };
    let mut query = team::Entity::find().order_by_asc(team::Column::Name);
    if !user.is_admin {
        query = query.filter(team::Column::Id.is_in(memberships.iter().map(|m| m.team_id)));
    }
    Ok(query
        .all(db)
        .await?
        .into_iter()
        .map(|t| {
            let role = role_in(t.id).unwrap_or_else(|| "admin".into());
            (t, role)
        })
        .collect())
}

/// What a user may do in a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Member,
    Owner,
    /// A platform admin who is not a member.
    Admin,
}

impl Access {
    /// Owners and admins manage the team's members.
    pub fn can_manage(self) -> bool {
        matches!(self, Access::Owner | Access::Admin)
    }
}

/// The team `team_id` as `user` sees it; 404 when it does not exist *or* the user is not in
/// it, so team ids cannot be enumerated.
pub async fn team_access(
    db: &DatabaseConnection,
    user: &user::Model,
    team_id: i32,
) -> Result<(team::Model, Access), ApiError> {
    let team = team::Entity::find_by_id(team_id).one(db).await?;
    let membership = membership::Entity::find()
        .filter(membership::Column::UserId.eq(user.id))
        .filter(membership::Column::TeamId.eq(team_id))
        .one(db)
        .await?;
    let access = match (&membership, user.is_admin) {
        (Some(m), _) if m.role == membership::OWNER => Some(Access::Owner),
        (Some(_), _) => Some(Access::Member),
        (None, true) => Some(Access::Admin),
        (None, false) => None,
    };
    match (team, access) {
        (Some(team), Some(access)) => Ok((team, access)),
        _ => Err(ApiError::not_found("team", team_id)),
    }
}

/// Creates a team.
pub async fn create_team(db: &DatabaseConnection, name: &str) -> Result<team::Model, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::BadRequest(
            "name: must be 1 to 100 characters".into(),
        ));
    }
    if team::Entity::find()
        .filter(team::Column::Name.eq(name))
        .one(db)
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "name: a team {name:?} already exists"
        )));
    }
    let row = team::ActiveModel {
        name: Set(name.to_string()),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    };
    Ok(row.insert(db).await?)
}

/// Adds the user with `email` to `team_id` as `role` (`owner` or `member`).
pub async fn add_member(
    db: &DatabaseConnection,
    team_id: i32,
    email: &str,
    role: &str,
) -> Result<membership::Model, ApiError> {
    if role != membership::OWNER && role != membership::MEMBER {
        return Err(ApiError::BadRequest(format!(
            "role: {role:?} is neither \"owner\" nor \"member\""
        )));
    }
    let user = find_user_by_email(db, email)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("email: no user {}", email.trim())))?;
    let existing = membership::Entity::find()
        .filter(membership::Column::UserId.eq(user.id))
        .filter(membership::Column::TeamId.eq(team_id))
        .one(db)
        .await?;
    if existing.is_some() {
        return Err(ApiError::Conflict(format!(
            "email: {} is already in this team",
            user.email
        )));
    }
    let row = membership::ActiveModel {
        user_id: Set(user.id),
        team_id: Set(team_id),
        role: Set(role.to_string()),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    };
    Ok(row.insert(db).await?)
}

/// Removes user `user_id` from `team_id` (404 when they are not in it). The team keeps its
/// datasets, plugins and runs; a platform admin can still manage a team left without owner.
pub async fn remove_member(
    db: &DatabaseConnection,
    team_id: i32,
    user_id: i32,
) -> Result<(), ApiError> {
    let done = membership::Entity::delete_many()
        .filter(membership::Column::UserId.eq(user_id))
        .filter(membership::Column::TeamId.eq(team_id))
        .exec(db)
        .await?;
    if done.rows_affected == 0 {
        return Err(ApiError::NotFound(format!(
            "user {user_id} is not a member of team {team_id}"
        )));
    }
    tracing::info!(team = team_id, user = user_id, "member removed");
    Ok(())
}
