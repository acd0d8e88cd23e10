//! The HTTP surface: JSON API under `/api/v1`, server-rendered pages at the root.

mod admin;
mod admin_pages;
mod api;
mod datasets;
mod judging;
mod judging_pages;
mod openapi;
mod pages;
mod plugin_pages;
mod plugins;
mod run_charts;
mod run_live;
mod run_pages;
mod runs;

use std::net::IpAddr;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::routing::get;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// The whole app around `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .nest(
            "/api/v1",
            api::routes()
                .merge(datasets::routes())
                .merge(plugins::routes())
                .merge(runs::routes())
                .merge(run_live::routes())
                .merge(admin::routes())
                .merge(judging::routes()),
        )
        .merge(pages::routes())
        .merge(run_pages::routes())
        .merge(admin_pages::routes())
        .merge(judging_pages::routes())
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(crate::metrics::endpoint).with_state(state.metrics.clone()),
        )
        // Last, so it wraps every route above and sees its template.
        .route_layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track,
        ))
        .with_state(state)
}

/// The client's address when the server was started with connect info (absent in-process).
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// A JSON body whose rejection is a JSON error naming the problem (and the field).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|j| ApiJson(j.0))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// `Set-Cookie` value of cookie `name`; `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}
