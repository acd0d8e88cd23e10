//! Helpers of the run tests: an app with the tiny preset, JSON calls on a router, a team with a
//! small ShapesWorld dataset.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use sea_orm::{DatabaseConnection, EntityTrait};
use serde_json::Value;
use tower::ServiceExt;
use vila2_web::entities::run;
use vila2_web::runs::{RunPreset, RunSettings};

use super::{ADMIN, TestApp};

/// How long a tiny run may take on a loaded CI machine.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Samples in [`dataset`]'s shard.
pub const DATASET_SAMPLES: usize = 8;

/// The folder of the built first-party components.
pub fn components_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("wasm32-wasip2/release")
}

/// `state` (of `app`'s data directory) with the tiny preset; returns (router, state).
pub fn tiny_from(app: &TestApp, mut state: vila2_web::AppState) -> (Router, vila2_web::AppState) {
    state.runs = Arc::new(RunSettings {
        runs_dir: app.dir.path().join("runs"),
        components_dir: Some(components_dir()),
        preset: RunPreset::tiny(),
        threads: Some(1),
    });
    (vila2_web::router(state.clone()), state)
}

/// The app with the tiny preset.
pub fn tiny(app: &TestApp) -> (Router, vila2_web::AppState) {
    tiny_from(app, app.state.clone())
}

/// A call with a bearer token; the body as JSON (or a JSON string of the text).
pub async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_as(router, method, uri, Some(token), body).await
}

/// A call with a bearer token or none; the body as JSON (or a JSON string of the text).
pub async fn call_as(
    router: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, _, bytes) = send(router, json_request(method, uri, token, body)).await;
    (status, json_or_text(&bytes))
}

/// A GET with a bearer token that must answer 200; the body as JSON.
pub async fn get_ok(router: &Router, uri: &str, token: &str) -> Value {
    let (status, body) = call(router, Method::GET, uri, token, None).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    body
}

/// A run request: dataset `ds` with `rounds` self-augmentation rounds.
pub fn run_request(ds: i64, rounds: i64) -> Value {
    serde_json::json!({"dataset_id": ds, "rounds": rounds})
}

/// Submits a run of `team` that must be accepted (201); the run.
pub async fn submit(router: &Router, team: i64, token: &str, request: Value) -> Value {
    let uri = format!("/api/v1/teams/{team}/runs");
    let (status, run) = call(router, Method::POST, &uri, token, Some(request)).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    run
}

/// A call with a bearer token; status, headers and the whole body.
pub async fn raw(
    router: &Router,
    method: Method,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    send(router, json_request(method, uri, Some(token), body)).await
}

/// A JSON request (content type set even without a body), with a bearer token if given.
fn json_request(
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap()
}

/// Sends `req` to `router`: status, headers and the whole body.
pub async fn send(
    router: &Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = router.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}

/// `bytes` as JSON, or a JSON string of the text.
pub fn json_or_text(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// Changes the stored row of run `id` with `edit` (to stage a crash or a cancel).
pub async fn edit_run(db: &DatabaseConnection, id: i64, edit: impl FnOnce(&mut run::ActiveModel)) {
    let mut row: run::ActiveModel = run::Entity::find_by_id(id as i32)
        .one(db)
        .await
        .unwrap()
        .expect("the run")
        .into();
    edit(&mut row);
    sea_orm::ActiveModelTrait::update(row, db).await.unwrap();
}

const BOUNDARY: &str = "XRUNSBOUNDARYX";

/// A ShapesWorld pretraining shard of `samples` samples (seed 7), as bytes.
pub fn shapes_shard(samples: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let shapes = vila2_host::data::shapes::ShapesConfig {
        seed: 7,
        pretrain: samples,
        sft: 1,
        specialist: 1,
        eval: 1,
        ..Default::default()
    };
    vila2_host::data::shapes::generate(&dir.path().join("w"), &shapes).unwrap();
    std::fs::read(first_tar(&dir.path().join("w/pretrain"))).unwrap()
}

/// Uploads `bytes` as a dataset of `team` (named `name`, or after the file): (status, body).
pub async fn upload(
    router: &Router,
    team: i64,
    token: &str,
    name: Option<&str>,
    bytes: &[u8],
) -> (StatusCode, Value) {
    let mut body = String::new();
    if let Some(name) = name {
        body = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n"
        );
    }
    let mut body = format!(
        "{body}--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"shapes.tar\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let req = Request::post(format!("/api/v1/teams/{team}/datasets"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(body))
        .unwrap();
    let (status, _, bytes) = send(router, req).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Uploads a small ShapesWorld pretraining shard (8 samples) as a dataset of `team`; returns
/// its id.
pub async fn dataset(router: &Router, team: i64, token: &str) -> i64 {
    let (status, body) = upload(router, team, token, None, &shapes_shard(DATASET_SAMPLES)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["sample_count"], DATASET_SAMPLES, "{body}");
    body["id"].as_i64().unwrap()
}

/// The first `.tar` of `dir` by name.
pub fn first_tar(dir: &Path) -> PathBuf {
    let mut tars: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    tars.sort();
    tars.into_iter().next().expect("a generated shard")
}

/// A team with a member and a dataset: (team id, token, dataset id).
pub async fn new_team(
    app: &TestApp,
    router: &Router,
    name: &str,
    email: &str,
) -> (i64, String, i64) {
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team, token) = app.team_with_member(&admin, name, email, "member").await;
    let ds = dataset(router, team, &token).await;
    (team, token, ds)
}

/// One parsed Server-Sent Event.
#[derive(Debug)]
pub struct Sse {
    pub event: String,
    pub data: Value,
}

/// Reads `body` as an event stream until it ends (or the timeout).
pub async fn read_events(body: Body) -> Vec<Sse> {
    let mut body = body;
    let mut text = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + RUN_TIMEOUT;
    loop {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("the event stream did not end; got {events:?}"));
        let Some(frame) = frame else { break };
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            text.push_str(std::str::from_utf8(data).unwrap());
        }
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let (mut event, mut data) = (String::from("message"), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            if !data.is_empty() {
                let data = serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("event {event}: data is not JSON ({e}): {data}"));
                events.push(Sse { event, data });
            }
        }
    }
    events
}

/// Opens the event stream of `uri` as `token`; its body.
pub async fn open_events(router: &Router, uri: &str, token: &str) -> Body {
    let req = Request::get(uri)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[CONTENT_TYPE].to_str().unwrap(),
        "text/event-stream"
    );
    response.into_body()
}
