//! Passwords (argon2id), session JWTs (HS256), personal API tokens, login rate limiting and
//! the [`AuthUser`] extractor.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm as ArgonAlgorithm, Argon2, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::entities::{api_token, revoked_jwt, user};
use crate::error::ApiError;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "vila2_session";
/// Name of the CSRF double-submit cookie.
pub const CSRF_COOKIE: &str = "vila2_csrf";
/// Prefix of personal API tokens, so they are told apart from JWTs.
pub const API_TOKEN_PREFIX: &str = "vila2_";

fn argon2() -> Argon2<'static> {
    Argon2::new(ArgonAlgorithm::Argon2id, Version::V0x13, Params::default())
}

/// Hashes `password` with argon2id and a random salt (PHC string). CPU-heavy: call it on a
/// blocking thread.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let salt = SaltString::encode_b64(&bytes)
        .map_err(|e| ApiError::Internal(format!("encoding a salt: {e}")))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(format!("hashing a password: {e}")))
}

/// Whether `password` matches the PHC string `hash`. CPU-heavy: call it on a blocking thread.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// SHA-256 of a token, as stored in `api_tokens.token_hash`.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Claims of a session JWT.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id (a string, as RFC 7519 wants).
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    /// Token id, for logout.
    pub jti: String,
}

/// Signs and checks session JWTs. Logged-out tokens are in the `revoked_jwt` table
/// ([`revoke`], [`is_revoked`]).
pub struct SessionKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl SessionKeys {
    /// Keys from an HS256 secret; sessions last `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        SessionKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl,
        }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A signed session token for `user_id`.
    pub fn issue(&self, user_id: i32) -> Result<String, ApiError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            jti: random_hex(16),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("signing a session token: {e}")))
    }

    /// Checks signature (HS256 only) and expiry; returns the claims. Logout is checked by
    /// [`is_revoked`].
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "jti"]);
        Ok(
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
                .map_err(|e| match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                        ApiError::Unauthorized("session expired: sign in again".into())
                    }
                    _ => ApiError::Unauthorized("invalid session token".into()),
                })?
                .claims,
        )
    }
}

/// Ends the session of `claims`: its `jti` is blocklisted until the token would have expired.
pub async fn revoke(db: &DatabaseConnection, claims: &Claims) -> Result<(), ApiError> {
    let expires_at = chrono::DateTime::from_timestamp(claims.exp, 0)
        .ok_or_else(|| ApiError::Internal(format!("token expiry {} out of range", claims.exp)))?;
    revoked_jwt::Entity::insert(revoked_jwt::ActiveModel {
        jti: Set(claims.jti.clone()),
        expires_at: Set(expires_at),
    })
    .on_conflict_do_nothing()
    .exec(db)
    .await?;
    tracing::info!(user = %claims.sub, "session revoked by logout");
    Ok(())
}

/// Whether the session token with id `jti` was logged out.
pub async fn is_revoked(db: &DatabaseConnection, jti: &str) -> Result<bool, ApiError> {
    Ok(revoked_jwt::Entity::find_by_id(jti.to_string())
        .one(db)
        .await?
        .is_some())
}

/// Deletes blocklist rows of tokens that have expired anyway; returns how many.
pub async fn prune_revoked(db: &DatabaseConnection) -> Result<u64, sea_orm::DbErr> {
    let result = revoked_jwt::Entity::delete_many()
        .filter(revoked_jwt::Column::ExpiresAt.lt(chrono::Utc::now()))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Fixed-window limit on login attempts per key (client address, email).
pub struct LoginLimiter {
    max_attempts: u32,
    window: Duration,
    attempts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl LoginLimiter {
    /// At most `max_attempts` per `window` for each key.
    pub fn new(max_attempts: u32, window: Duration) -> Self {
        LoginLimiter {
            max_attempts,
            window,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt under every key; refuses when any key is over its limit.
    pub fn check(&self, keys: &[String]) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut attempts = self.attempts.lock().expect("poisoned");
        attempts.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        let mut refused = false;
        for key in keys {
            let entry = attempts.entry(key.clone()).or_insert((now, 0));
            entry.1 += 1;
            refused |= entry.1 > self.max_attempts;
        }
        if refused {
            Err(ApiError::TooManyRequests(format!(
                "too many login attempts: wait {} s and try again",
                self.window.as_secs()
            )))
        } else {
            Ok(())
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(parts: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    parts
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// How the request was authenticated.
#[derive(Debug, Clone)]
pub enum Credential {
    Session(Claims),
    ApiToken(i32),
}

/// The signed-in user of a request: a session JWT from the `Authorization: Bearer` header or
/// the session cookie, or a personal API token as Bearer.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: user::Model,
    pub credential: Credential,
}

impl AuthUser {
    /// Refuses non-admins.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.user.is_admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "only a platform admin may do this".into(),
            ))
        }
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let bearer = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let token = bearer
            .or_else(|| cookie(&parts.headers, SESSION_COOKIE))
            .ok_or_else(|| ApiError::Unauthorized("not signed in".into()))?;
        let (user_id, credential) = if token.starts_with(API_TOKEN_PREFIX) {
            let row = api_token::Entity::find()
                .filter(api_token::Column::TokenHash.eq(token_digest(token)))
                .filter(api_token::Column::RevokedAt.is_null())
                .one(&state.db)
                .await?
                .ok_or_else(|| ApiError::Unauthorized("unknown or revoked API token".into()))?;
            (row.user_id, Credential::ApiToken(row.id))
        } else {
            let claims = state.sessions.verify(token)?;
            if is_revoked(&state.db, &claims.jti).await? {
                return Err(ApiError::Unauthorized(
                    "session ended by logout: sign in again".into(),
                ));
            }
            let user_id = claims
                .sub
                .parse()
                .map_err(|_| ApiError::Unauthorized("invalid session token".into()))?;
            (user_id, Credential::Session(claims))
        };
        let user = user::Entity::find_by_id(user_id)
            .one(&state.db)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".into()))?;
        Ok(AuthUser { user, credential })
    }
}
