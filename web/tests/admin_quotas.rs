//! Quotas, priority, the model registry and the admin pages through the API (SQLite and
//! PostgreSQL): each limit refused at submit with its name, a run paused by its GPU-seconds
//! quota and resumed when the admin raises it, concurrent uploads against the storage quota,
//! dataset delete freeing storage, priority order, model registration (good and bad folders),
//! admin-only access and cross-team isolation.

mod common;

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, COOKIE, LOCATION};
use axum::http::{Method, Request, StatusCode};
use common::runs::{
    call, call_as, get_ok, new_team, run_request, shapes_shard, submit, tiny, upload,
};
use common::{ADMIN, Backend, TestApp, skip_postgres};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use vila2_web::runs::worker::{self, Outcome};

/// Sets the limits of `team` as admin; returns the answer.
async fn set_limits(router: &Router, admin: &str, team: i64, limits: Value) -> (StatusCode, Value) {
    call(
        router,
        Method::PUT,
        &format!("/api/v1/admin/teams/{team}/quotas"),
        admin,
        Some(limits),
    )
    .await
}

async fn usage(router: &Router, admin: &str, team: i64) -> Value {
    let (status, body) = call(
        router,
        Method::GET,
        &format!("/api/v1/admin/teams/{team}/quotas"),
        admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

const STORAGE: i64 = 1 << 30;

async fn quota_checks_at_submit(app: &TestApp) {
    let (router, _) = tiny(app);
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team, alice, ds) = new_team(app, &router, "alpha", "alice@example.org").await;
    let (other, bob, other_ds) = new_team(app, &router, "beta", "bob@example.org").await;
    let uri = format!("/api/v1/teams/{team}/runs");
    let run = json!({"dataset_id": ds, "rounds": 0});

    // Invalid limits name their field; only admins set them.
    for (limits, field) in [
        (json!({"storage_quota_bytes": -1}), "storage_quota_bytes"),
        (
            json!({"storage_quota_bytes": 1, "gpu_seconds_per_month": -2.0}),
            "gpu_seconds_per_month",
        ),
        (
            json!({"storage_quota_bytes": 1, "max_concurrent_runs": -1}),
            "max_concurrent_runs",
        ),
        (
            json!({"storage_quota_bytes": 1, "cpu_hours": 3}),
            "cpu_hours",
        ),
    ] {
        let (status, body) = set_limits(&router, &admin, team, limits.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{limits}: {body}");
        assert!(body["error"].as_str().unwrap().contains(field), "{body}");
    }
    let (status, _) = set_limits(
        &router,
        &alice,
        team,
        json!({"storage_quota_bytes": STORAGE}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Each limit refuses a submit with its name: samples per run (the dataset has 8);
    // concurrent runs (one may be queued, the second is refused); GPU-seconds per month (a zero
    // budget is used up).
    let mut active = 0;
    for (limits, accepted, needle) in [
        (json!({"max_samples_per_run": 7}), 0, "samples per run"),
        (
            json!({"max_samples_per_run": 8, "max_concurrent_runs": 1}),
            1,
            "concurrent runs",
        ),
        (json!({"gpu_seconds_per_month": 0.0}), 0, "GPU-seconds"),
    ] {
        let mut limits = limits;
        limits["storage_quota_bytes"] = STORAGE.into();
        let (status, body) = set_limits(&router, &admin, team, limits.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for (field, value) in limits.as_object().unwrap() {
            assert_eq!(&body["limits"][field], value, "{body}");
        }
        for _ in 0..accepted {
            submit(&router, team, &alice, run.clone()).await;
        }
        active += accepted;
        let (status, body) = call(&router, Method::POST, &uri, &alice, Some(run.clone())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let msg = body["error"].as_str().unwrap();
        assert!(msg.starts_with("quota:") && msg.contains(needle), "{msg}");
        assert_eq!(usage(&router, &admin, team).await["active_runs"], active);
    }

    // The other team's limits are its own.
    submit(&router, other, &bob, run_request(other_ds, 0)).await;

    // Raised again: accepted.
    set_limits(
        &router,
        &admin,
        team,
        json!({"storage_quota_bytes": STORAGE}),
    )
    .await;
    submit(&router, team, &alice, run).await;
}

/// A tiny GPU-seconds quota pauses the run at a task boundary with the reason; raising it
/// queues the run again, which resumes from its done tasks and finishes.
async fn quota_pause_and_resume(app: &TestApp) {
    let (router, state) = tiny(app);
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team, alice, ds) = new_team(app, &router, "alpha", "alice@example.org").await;
    set_limits(
        &router,
        &admin,
        team,
        json!({"storage_quota_bytes": STORAGE, "gpu_seconds_per_month": 0.001}),
    )
    .await;
    let uri = format!("/api/v1/teams/{team}/runs");
    let run = submit(&router, team, &alice, run_request(ds, 0)).await;
    let id = run["id"].as_i64().unwrap();
    let run_uri = format!("{uri}/{id}");

    let (ran, outcome) = worker::run_next(&state)
        .await
        .unwrap()
        .expect("a queued run");
    assert_eq!(ran as i64, id);
    let Outcome::Paused(reason) = outcome else {
        panic!("expected a pause, got {outcome:?}");
    };
    assert!(reason.contains("GPU-seconds"), "{reason}");
    let run = get_ok(&router, &run_uri, &alice).await;
    assert_eq!(run["status"], "paused", "{run}");
    assert_eq!(
        run["paused_reason"].as_str(),
        Some(reason.as_str()),
        "{run}"
    );
    assert!(run["finished_at"].is_null(), "{run}");
    let used = usage(&router, &admin, team).await["gpu_seconds"]
        .as_f64()
        .unwrap();
    assert!(used >= 0.001, "the busy time was charged: {used}");
    let done_tasks = || async {
        vila2_web::runs::tasks::done_ids(&state.db, id as i32)
            .await
            .unwrap()
            .len()
    };
    let done_before = done_tasks().await;
    assert!(done_before > 0, "some tasks were done before the pause");

    // Still over the limit: the worker leaves it paused.
    assert!(worker::run_next(&state).await.unwrap().is_none());
    let run = get_ok(&router, &run_uri, &alice).await;
    assert_eq!(run["status"], "paused", "{run}");

    // Raised: queued again, resumed, finished; the usage grew.
    let (status, body) = set_limits(
        &router,
        &admin,
        team,
        json!({"storage_quota_bytes": STORAGE, "gpu_seconds_per_month": 1e9}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (again, outcome) = worker::run_next(&state).await.unwrap().expect("resumed");
    assert_eq!((again as i64, outcome), (id, Outcome::Succeeded));
    let run = get_ok(&router, &run_uri, &alice).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(run["paused_reason"].is_null(), "{run}");
    assert!(done_tasks().await > done_before);
    let after = usage(&router, &admin, team).await["gpu_seconds"]
        .as_f64()
        .unwrap();
    assert!(after > used, "{after} > {used}");

    // A paused run is cancelled at once.
    set_limits(
        &router,
        &admin,
        team,
        json!({"storage_quota_bytes": STORAGE, "gpu_seconds_per_month": after + 0.0005}),
    )
    .await;
    let run = submit(&router, team, &alice, run_request(ds, 0)).await;
    let second = run["id"].as_i64().unwrap();
    let (_, outcome) = worker::run_next(&state).await.unwrap().unwrap();
    assert!(matches!(outcome, Outcome::Paused(_)), "{outcome:?}");
    let (status, run) = call(
        &router,
        Method::POST,
        &format!("{uri}/{second}/cancel"),
        &alice,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["status"], "cancelled", "{run}");
}

/// Two uploads at once that fit the quota only one at a time: one is refused; the charge is
/// the stored bytes; deleting the dataset frees them (and its objects).
async fn storage_quota_under_concurrent_uploads(app: &TestApp) {
    let (router, _) = tiny(app);
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (scratch, carol) = app
        .team_with_member(&admin, "scratch", "carol@example.org", "member")
        .await;
    let bytes = shapes_shard(8);
    let (status, probe) = upload(&router, scratch, &carol, Some("probe"), &bytes).await;
    assert_eq!(status, StatusCode::CREATED, "{probe}");
    let stored = probe["bytes"].as_i64().unwrap();
    let quota = stored.max(bytes.len() as i64) * 3 / 2;

    let (team, alice) = app
        .team_with_member(&admin, "alpha", "alice@example.org", "member")
        .await;
    set_limits(&router, &admin, team, json!({"storage_quota_bytes": quota})).await;
    let (a, b) = tokio::join!(
        upload(&router, team, &alice, Some("one"), &bytes),
        upload(&router, team, &alice, Some("two"), &bytes),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::PAYLOAD_TOO_LARGE],
        "{a:?} {b:?}"
    );
    let refused = if a.0 == StatusCode::CREATED {
        &b.1
    } else {
        &a.1
    };
    assert!(
        refused["error"].as_str().unwrap().contains("quota"),
        "{refused}"
    );
    let kept = if a.0 == StatusCode::CREATED {
        &a.1
    } else {
        &b.1
    };
    let kept_id = kept["id"].as_i64().unwrap();
    let u = usage(&router, &admin, team).await;
    assert_eq!(u["storage_bytes"], stored, "{u}");
    assert_eq!(
        u["storage_charged_bytes"], stored,
        "nothing stays reserved: {u}"
    );

    // Another team cannot delete it.
    let ds_uri = format!("/api/v1/teams/{team}/datasets/{kept_id}");
    let (status, _) = call(&router, Method::DELETE, &ds_uri, &carol, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &router,
        Method::DELETE,
        &format!("/api/v1/teams/{scratch}/datasets/{kept_id}"),
        &carol,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Delete frees the storage and the objects; a second upload fits again.
    let prefix = app.dir.path().join(format!("objects/datasets/team-{team}"));
    assert!(count_files(&prefix) > 0);
    let (status, body) = call(&router, Method::DELETE, &ds_uri, &alice, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = call(&router, Method::GET, &ds_uri, &alice, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(count_files(&prefix), 0, "the shards are gone");
    let u = usage(&router, &admin, team).await;
    assert_eq!(u["storage_bytes"], 0, "{u}");
    assert_eq!(u["storage_charged_bytes"], 0, "{u}");
    let (status, body) = upload(&router, team, &alice, Some("again"), &bytes).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // A dataset a run was made from is kept.
    let again = body["id"].as_i64().unwrap();
    submit(&router, team, &alice, run_request(again, 0)).await;
    let (status, body) = call(
        &router,
        Method::DELETE,
        &format!("/api/v1/teams/{team}/datasets/{again}"),
        &alice,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("dataset_id:"),
        "{body}"
    );
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() { count_files(&path) } else { 1 }
        })
        .sum()
}

/// The worker claims the highest priority first, then the oldest; only admins set it.
async fn priority_order(app: &TestApp) {
    let (router, state) = tiny(app);
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team, alice, ds) = new_team(app, &router, "alpha", "alice@example.org").await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let run = submit(&router, team, &alice, run_request(ds, 0)).await;
        assert_eq!(run["priority"], 0);
        ids.push(run["id"].as_i64().unwrap());
    }
    let priority = |id: i64| format!("/api/v1/admin/runs/{id}/priority");
    let (status, _) = call(
        &router,
        Method::PUT,
        &priority(ids[2]),
        &alice,
        Some(json!({"priority": 5})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = call(
        &router,
        Method::PUT,
        &priority(ids[2]),
        &admin,
        Some(json!({"priority": 5000})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().starts_with("priority:"));
    for (id, p) in [(ids[2], 5), (ids[3], 5), (ids[0], -1)] {
        let (status, body) = call(
            &router,
            Method::PUT,
            &priority(id),
            &admin,
            Some(json!({"priority": p})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["priority"], p);
    }
    let mut order = Vec::new();
    while let Some(run) = worker::claim(&state.db).await.unwrap() {
        order.push(run.id as i64);
    }
    assert_eq!(order, vec![ids[2], ids[3], ids[1], ids[0]]);

    // The admin cancels any team's run; a finished run takes no priority.
    let (status, run) = call(
        &router,
        Method::POST,
        &format!("/api/v1/admin/runs/{}/cancel", ids[1]),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["cancel_requested"], true, "{run}");
    let runs = get_ok(&router, "/api/v1/admin/runs", &admin).await;
    assert_eq!(runs.as_array().unwrap().len(), 4, "{runs}");
}

/// A tiny model folder, made as the host's tests make one.
fn tiny_model(dir: &Path) -> PathBuf {
    let corpus = dir.join("corpus.txt");
    std::fs::write(
        &corpus,
        "A red square on a blue background.\nThe picture shows two circles and a triangle.\n",
    )
    .unwrap();
    let mut spec = vila2_host::train::init::ModelSpec::tiny();
    spec.vocab_size = 300;
    let out = dir.join("model");
    vila2_host::train::init::init_model(&spec, &corpus, &out, 0).unwrap();
    out
}

async fn model_registry(app: &TestApp) {
    let (router, _) = tiny(app);
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team, alice, ds) = new_team(app, &router, "alpha", "alice@example.org").await;
    let folder = tempfile::tempdir().unwrap();
    let model_dir = tiny_model(folder.path());
    let uri = "/api/v1/admin/models";

    // Bad folders: a clear 400 naming `path` and what failed.
    let empty = folder.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let broken = folder.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("config.json"), "{ not json").unwrap();
    for (path, needle) in [
        (empty.clone(), "config.json"),
        (broken.clone(), "invalid config"),
        (folder.path().join("nowhere"), "cannot be opened"),
        (broken.join("config.json"), "not a folder"),
    ] {
        let (status, body) = call(
            &router,
            Method::POST,
            uri,
            &admin,
            Some(json!({"name": "bad", "path": path})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path:?}: {body}");
        let msg = body["error"].as_str().unwrap();
        assert!(msg.starts_with("path:") && msg.contains(needle), "{msg}");
    }
    // Only admins register.
    let register = Some(json!({"name": "tiny", "path": model_dir}));
    let (status, _) = call(&router, Method::POST, uri, &alice, register.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, model) = call(&router, Method::POST, uri, &admin, register.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{model}");
    assert!(
        model["architecture"].as_str().unwrap().contains("Llama"),
        "{model}"
    );
    let model_id = model["id"].as_i64().unwrap();
    let (status, body) = call(&router, Method::POST, uri, &admin, register).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Members see the registry and start a run from it.
    let list = get_ok(&router, "/api/v1/models", &alice).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let runs = format!("/api/v1/teams/{team}/runs");
    let run = submit(
        &router,
        team,
        &alice,
        json!({"dataset_id": ds, "rounds": 0, "model_id": model_id}),
    )
    .await;
    let cfg = vila2_host::pipeline::RunConfig::parse(run["config"].as_str().unwrap()).unwrap();
    assert_eq!(
        cfg.model.init.as_deref(),
        Some(std::fs::canonicalize(&model_dir).unwrap().as_path())
    );
    assert!(cfg.model.spec.is_none());
    let (status, body) = call(
        &router,
        Method::POST,
        &runs,
        &alice,
        Some(json!({"dataset_id": ds, "rounds": 0, "model_id": 9999})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("model_id:"),
        "{body}"
    );

    // Removed: gone from the list.
    let model_uri = format!("{uri}/{model_id}");
    let (status, _) = call(&router, Method::DELETE, &model_uri, &admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let list = get_ok(&router, uri, &admin).await;
    assert_eq!(list, json!([]));
    let (status, _) = call(&router, Method::DELETE, &model_uri, &admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Every admin route refuses members (403) and visitors (401); the admin page likewise, and
/// its forms need the CSRF token.
async fn admin_only_access(app: &TestApp) {
    let (router, _) = tiny(app);
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team, alice, ds) = new_team(app, &router, "alpha", "alice@example.org").await;
    let run = submit(&router, team, &alice, run_request(ds, 0)).await;
    let run_id = run["id"].as_i64().unwrap();
    let quotas = format!("/api/v1/admin/teams/{team}/quotas");
    let cancel = format!("/api/v1/admin/runs/{run_id}/cancel");
    let priority = format!("/api/v1/admin/runs/{run_id}/priority");
    let routes = [
        (Method::GET, "/api/v1/admin/users", None),
        (Method::GET, "/api/v1/admin/teams", None),
        (Method::GET, &quotas, None),
        (
            Method::PUT,
            &quotas,
            Some(json!({"storage_quota_bytes": 1})),
        ),
        (Method::GET, "/api/v1/admin/runs", None),
        (Method::POST, &cancel, None),
        (Method::PUT, &priority, Some(json!({"priority": 1}))),
        (Method::GET, "/api/v1/admin/models", None),
        (
            Method::POST,
            "/api/v1/admin/models",
            Some(json!({"name": "x", "path": "/"})),
        ),
        (Method::DELETE, "/api/v1/admin/models/1", None),
    ];
    for (method, uri, body) in &routes {
        let (status, answer) = call(&router, method.clone(), uri, &alice, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {answer}");
        let (status, _) = call_as(&router, method.clone(), uri, None, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
    let run = get_ok(
        &router,
        &format!("/api/v1/teams/{team}/runs/{run_id}"),
        &alice,
    )
    .await;
    assert_eq!(
        run["status"], "queued",
        "the member's attempts changed nothing"
    );
    assert_eq!(run["priority"], 0);
    let users = get_ok(&router, "/api/v1/admin/users", &admin).await;
    let alice_row = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "alice@example.org")
        .unwrap();
    assert_eq!(alice_row["teams"][0]["team_name"], "alpha", "{users}");
    let teams = get_ok(&router, "/api/v1/admin/teams", &admin).await;
    assert_eq!(teams[0]["team_name"], "alpha", "{teams}");

    // Pages.
    let page = |cookie: Option<String>| {
        let mut req = Request::get("/admin");
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        req.body(Body::empty()).unwrap()
    };
    let response = router.clone().oneshot(page(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/login");
    let member = format!("vila2_session={alice}");
    let response = router.clone().oneshot(page(Some(member))).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let csrf = "0123456789abcdef0123456789abcdef";
    let cookies = format!("vila2_session={admin}; vila2_csrf={csrf}");
    let response = router
        .clone()
        .oneshot(page(Some(cookies.clone())))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for needle in [
        "alpha",
        "alice@example.org",
        "Model registry",
        &format!("/admin/runs/{run_id}/priority"),
        &format!("/admin/teams/{team}/quotas"),
    ] {
        assert!(html.contains(needle), "the admin page shows {needle}");
    }
    let form = |body: String| {
        Request::post(format!("/admin/teams/{team}/quotas"))
            .header(COOKIE, cookies.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let response = router
        .clone()
        .oneshot(form(
            "csrf=wrong&storage_quota_bytes=5000&max_concurrent_runs=3".into(),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = router
        .clone()
        .oneshot(form(format!(
            "csrf={csrf}&storage_quota_bytes=5000&gpu_seconds_per_month=&max_concurrent_runs=3&max_samples_per_run="
        )))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let u = usage(&router, &admin, team).await;
    assert_eq!(u["limits"]["storage_quota_bytes"], 5000, "{u}");
    assert_eq!(u["limits"]["max_concurrent_runs"], 3, "{u}");
    assert!(u["limits"]["gpu_seconds_per_month"].is_null(), "{u}");
    let response = router
        .clone()
        .oneshot(form(format!(
            "csrf={csrf}&storage_quota_bytes=lots&max_concurrent_runs=3"
        )))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

both_backends!(
    quota_checks_at_submit,
    quota_pause_and_resume,
    storage_quota_under_concurrent_uploads,
    priority_order,
    model_registry,
    admin_only_access
);
