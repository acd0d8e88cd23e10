//! `/api/v1/openapi.json` documents every `/api/v1` route the router registers (read from the
//! route modules' source) and nothing the router lacks; `/metrics` counts requests by route
//! template and status, their latency, and upload bytes. SQLite only: neither depends on the
//! database backend.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};

use common::*;

/// The route modules nested under `/api/v1`.
const API_ROUTE_SOURCES: [&str; 7] = [
    include_str!("../src/routes/api.rs"),
    include_str!("../src/routes/datasets.rs"),
    include_str!("../src/routes/plugins.rs"),
    include_str!("../src/routes/runs.rs"),
    include_str!("../src/routes/run_live.rs"),
    include_str!("../src/routes/admin.rs"),
    include_str!("../src/routes/judging.rs"),
];

/// (method, path) of every `.route("PATH", get(..).post(..)…)` call in `source`.
fn registered_routes(source: &str) -> Vec<(String, String)> {
    let mut routes = Vec::new();
    let calls: Vec<&str> = source.split(".route(").skip(1).collect();
    for call in calls {
        // Up to the parenthesis that closes this `.route(`.
        let mut depth = 1;
        let end = call
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map_or(call.len(), |(i, _)| i);
        let call = call[..end].trim_start();
        let path = call
            .strip_prefix('"')
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("a .route( call without a literal path: {call:.80}"));
        for method in ["get", "post", "put", "delete", "patch"] {
            let pattern = format!("{method}(");
            let found = call.match_indices(&pattern).any(|(i, _)| {
                i == 0 || {
                    let before = call.as_bytes()[i - 1];
                    !(before.is_ascii_alphanumeric() || before == b'_')
                }
            });
            if found {
                routes.push((method.to_string(), format!("/api/v1{path}")));
            }
        }
    }
    routes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_every_api_route() {
    let app = TestApp::start(Backend::Sqlite).await;
    let req = Request::get("/api/v1/openapi.json")
        .body(Body::empty())
        .unwrap();
    let (status, _, doc) = app.send(req).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().expect("paths");

    let registered: Vec<_> = API_ROUTE_SOURCES
        .iter()
        .flat_map(|s| registered_routes(s))
        .collect();
    assert!(registered.len() >= 20, "{registered:?}");
    let mut missing = Vec::new();
    for (method, path) in &registered {
        if paths.get(path).and_then(|p| p.get(method)).is_none() {
            missing.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    assert!(missing.is_empty(), "not in openapi.json: {missing:?}");

    // And the other way round: every documented operation is routed (unauthenticated it gets
    // 401, 400 or 200, never 404/405), and has a response with a schema or a description.
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            assert!(
                registered.contains(&(method.clone(), path.clone())),
                "{method} {path} is documented but not registered"
            );
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty())
            );
            let uri = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "1" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            let req = Request::builder()
                .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
                .uri(&uri)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let (status, _, body) = app.send(req).await;
            assert!(
                status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri}: {status} {body}"
            );
        }
    }
    // Signing in needs no credentials; everything else takes a bearer token or the cookie.
    assert_eq!(paths["/api/v1/login"]["post"]["security"], json!([{}]));
    assert!(
        doc["components"]["securitySchemes"]["bearer"].is_object(),
        "{doc}"
    );
    // Schemas of the bodies are there too.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "Plugin",
        "Dataset",
        "SamplePage",
        "Trial",
        "TrialRequest",
        "ErrorBody",
        "RunRequest",
        "FilterChoice",
        "SpecialistChoice",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    // A run's filters and specialists: a name, or an object with a config.
    let run_request = &schemas["RunRequest"]["properties"];
    for (field, schema) in [
        ("filters", "FilterChoice"),
        ("specialists", "SpecialistChoice"),
    ] {
        assert!(
            run_request[field]
                .to_string()
                .contains(&format!("#/components/schemas/{schema}")),
            "{field}: {}",
            run_request[field]
        );
    }
    let filter = schemas["FilterChoice"].to_string();
    assert!(
        filter.contains("oneOf") && filter.contains("ConfiguredFilter"),
        "{filter}"
    );
    assert!(
        schemas["ConfiguredFilter"]["properties"]["config"].is_object(),
        "{}",
        schemas["ConfiguredFilter"]
    );
    app.finish().await;
}

/// The value of the sample line that starts with `prefix` (name and labels).
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_latency_and_upload_bytes() {
    let app = TestApp::start(Backend::Sqlite).await;
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team, alice) = app
        .team_with_member(&admin, "team-m", "alice@example.org", "member")
        .await;
    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/me", &alice).await.0, StatusCode::OK);
    }
    assert_eq!(
        app.get("/api/v1/teams/424242/plugins", &alice).await.0,
        StatusCode::NOT_FOUND
    );
    let wasm = quality_wasm();
    let (status, body) = app
        .upload_raw(team, &alice, "quality.wasm", wasm.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = app
        .sign_in(json!({"email": ADMIN.0, "password": "wrong-password"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let req = Request::get("/metrics").body(Body::empty()).unwrap();
    let (status, headers, body) = app.send(req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{headers:?}"
    );
    let Value::String(text) = body else {
        panic!("not text: {body}")
    };
    let requests = |method: &str, route: &str, status: u16| {
        sample(
            &text,
            &format!(
                "vila2_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(requests("GET", "/api/v1/me", 200), Some(3.0), "{text}");
    // The route template, not the id.
    assert_eq!(
        requests("GET", "/api/v1/teams/{id}/plugins", 404),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("424242"), "{text}");
    assert_eq!(
        requests("POST", "/api/v1/teams/{id}/plugins", 201),
        Some(1.0)
    );
    assert_eq!(requests("POST", "/api/v1/login", 401), Some(1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "vila2_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/me\",status=\"200\"}"
        ),
        Some(3.0),
        "{text}"
    );
    let sum = sample(
        &text,
        "vila2_http_request_duration_seconds_sum{method=\"POST\",route=\"/api/v1/teams/{id}/plugins\",status=\"201\"}",
    )
    .unwrap();
    assert!(sum > 0.0, "{text}");
    assert_eq!(
        sample(&text, "vila2_upload_bytes_total{kind=\"plugin\"}"),
        Some(wasm.len() as f64),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    app.finish().await;
}
