//! The OpenAPI document of the JSON API, generated with utoipa from the handlers' annotations
//! and served at `/api/v1/openapi.json`.

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, SecurityRequirement};

use crate::auth::SESSION_COOKIE;

/// The whole document: every `/api/v1` route, with bearer and cookie authentication.
pub fn document() -> Document {
    let mut doc = Document::builder()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("vila2 portal API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Accounts, teams, datasets, plugins and augmentation runs. Authenticate with `Authorization: \
                     Bearer <token>` (a session JWT from /login or a personal API token) or the \
                     session cookie. Another team's objects answer 404.",
                ))
                .build(),
        )
        .build();
    doc.merge(super::api::Doc::openapi());
    doc.merge(super::datasets::Doc::openapi());
    doc.merge(super::plugins::Doc::openapi());
    doc.merge(super::runs::Doc::openapi());
    doc.merge(super::run_live::Doc::openapi());
    doc.merge(super::admin::Doc::openapi());
    doc.merge(super::judging::Doc::openapi());
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components.add_security_scheme(
        "cookie",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))),
    );
    doc.security = Some(vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("cookie", Vec::<String>::new()),
    ]);
    doc
}

/// This document (no authentication needed).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)),
)]
pub async fn openapi_json() -> Json<Document> {
    Json(document())
}
