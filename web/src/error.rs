//! Errors of the portal, and how they become HTTP responses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error a handler returns; the message is shown to the client as `{"error": "..."}`,
/// except for [`ApiError::Internal`], which is logged and answered with a generic message.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("object store error: {0}")]
    Store(#[from] object_store::Error),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Database(_) | ApiError::Store(_) | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// Shorthand for a missing (or hidden) team object: same answer whether it does not exist
    /// or belongs to another team.
    pub fn not_found(what: &str, id: i32) -> Self {
        ApiError::NotFound(format!("{what} {id} not found"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
            "internal server error".to_string()
        } else {
            self.to_string()
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// The body of every error answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What was wrong, naming the field or part of the request when there is one.
    pub error: String,
}

/// Errors of starting the portal (configuration, database, secrets).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("JWT secret file {path}: {source}")]
    Secret {
        path: String,
        source: std::io::Error,
    },
    #[error("VILA2_JWT_SECRET must be at least 32 bytes long")]
    WeakSecret,
    #[error("cannot open database {url}: {source}")]
    Database { url: String, source: sea_orm::DbErr },
    #[error("migrating the database failed: {0}")]
    Migrate(sea_orm::DbErr),
    #[error("removing expired rows of the logout blocklist failed: {0}")]
    Prune(sea_orm::DbErr),
    #[error("requeueing the runs of the last process failed: {0}")]
    Recover(sea_orm::DbErr),
    #[error("recomputing the teams' storage charge failed: {0}")]
    StorageCharge(sea_orm::DbErr),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("plugin runtime: {0}")]
    Plugins(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("{0}")]
    User(String),
}
