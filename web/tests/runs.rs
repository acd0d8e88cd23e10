//! Augmentation runs through the API: submit validation, cross-team isolation, cancel,
//! restart recovery, and the worker taking a tiny run to its end (SQLite and PostgreSQL).

mod common;

use axum::http::{Method, StatusCode};
use common::runs::{call, edit_run, get_ok, new_team, run_request, submit, tiny, tiny_from};
use common::{Backend, SECRET, TestApp, skip_postgres};
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use vila2_web::entities::run;
use vila2_web::runs::worker::{self, Outcome};

async fn submit_validation(app: &TestApp) {
    let (router, _) = tiny(app);
    let (team, alice, ds) = new_team(app, &router, "alpha", "alice@example.org").await;
    let (_, _, other_ds) = new_team(app, &router, "beta", "bob@example.org").await;
    let uri = format!("/api/v1/teams/{team}/runs");
    for (body, status, field) in [
        (
            json!({"dataset_id": ds, "rounds": 6}),
            StatusCode::BAD_REQUEST,
            "rounds",
        ),
        (
            json!({"dataset_id": ds, "rounds": -1}),
            StatusCode::BAD_REQUEST,
            "rounds",
        ),
        (json!({"dataset_id": ds}), StatusCode::BAD_REQUEST, "rounds"),
        (
            json!({"dataset_id": ds, "rounds": 1, "fusion": "blend"}),
            StatusCode::BAD_REQUEST,
            "fusion",
        ),
        (
            json!({"dataset_id": ds, "rounds": 1, "template": "nope"}),
            StatusCode::BAD_REQUEST,
            "template",
        ),
        (
            json!({"dataset_id": ds, "rounds": 1, "filters": ["vila2_quality", "../x"]}),
            StatusCode::BAD_REQUEST,
            "filters[1]",
        ),
        (
            json!({"dataset_id": ds, "rounds": 1, "colour": "red"}),
            StatusCode::BAD_REQUEST,
            "colour",
        ),
        (
            json!({"dataset_id": 99999, "rounds": 1}),
            StatusCode::NOT_FOUND,
            "dataset_id",
        ),
        (
            json!({"dataset_id": other_ds, "rounds": 1}),
            StatusCode::NOT_FOUND,
            "dataset_id",
        ),
    ] {
        let (got, answer) = call(&router, Method::POST, &uri, &alice, Some(body.clone())).await;
        assert_eq!(got, status, "{body} -> {answer}");
        let msg = answer["error"].as_str().unwrap();
        assert!(msg.contains(field), "{body}: `{msg}` should name {field}");
    }
    let list = get_ok(&router, &uri, &alice).await;
    assert_eq!(
        list,
        json!([]),
        "nothing was queued by the rejected requests"
    );

    let body = json!({"dataset_id": ds, "rounds": 2, "fusion": "qa", "filters": []});
    let run = submit(&router, team, &alice, body).await;
    assert_eq!(run["status"], "queued");
    assert_eq!(run["rounds"], 2);
    let cfg = vila2_host::pipeline::RunConfig::parse(run["config"].as_str().unwrap()).unwrap();
    assert_eq!(cfg.rounds, 2);
    assert_eq!(cfg.fusion, vila2_host::pipeline::Fusion::Qa);
    assert!(cfg.recaption.filters.is_empty());
    assert_eq!(cfg.recaption.template.plugin, "vila2_recaption");
    let list = get_ok(&router, &uri, &alice).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // A team plugin is preferred to the component of the same name, and must be of the world
    // its field needs.
    let (plugin_id, plugin_name) = team_plugin(app, team, &alice).await;
    let body = json!({"dataset_id": ds, "rounds": 1, "template": plugin_name});
    let (status, answer) = call(&router, Method::POST, &uri, &alice, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let msg = answer["error"].as_str().unwrap();
    assert!(
        msg.starts_with("template:") && msg.contains("caption-filter"),
        "{msg}"
    );
    let body = json!({"dataset_id": ds, "rounds": 1, "filters": [plugin_name]});
    let run = submit(&router, team, &alice, body).await;
    let cfg = vila2_host::pipeline::RunConfig::parse(run["config"].as_str().unwrap()).unwrap();
    assert_eq!(
        cfg.recaption.filters[0].plugin,
        format!("plugins/{plugin_id}.wasm")
    );
    // Another team does not see it.
    let (bob_team, bob, bob_ds) = new_team(app, &router, "gamma", "carol@example.org").await;
    let body = json!({"dataset_id": bob_ds, "rounds": 1, "filters": [plugin_name]});
    let bob_uri = format!("/api/v1/teams/{bob_team}/runs");
    let (status, answer) = call(&router, Method::POST, &bob_uri, &bob, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().starts_with("filters[0]:"),
        "{answer}"
    );
}

/// Uploads the quality filter as a plugin of `team`: (plugin id, name).
async fn team_plugin(app: &TestApp, team: i64, token: &str) -> (i64, String) {
    let (status, body) = app
        .upload_raw(team, token, "quality.wasm", common::quality_wasm())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        body["plugin"]["id"].as_i64().unwrap(),
        body["plugin"]["name"].as_str().unwrap().to_string(),
    )
}

async fn runs_are_team_private(app: &TestApp) {
    let (router, _) = tiny(app);
    let (a, alice, ds) = new_team(app, &router, "alpha", "alice@example.org").await;
    let (b, bob, bob_ds) = new_team(app, &router, "beta", "bob@example.org").await;
    let run = submit(&router, a, &alice, run_request(ds, 0)).await;
    let id = run["id"].as_i64().unwrap();
    for (method, uri, body) in [
        (Method::GET, format!("/api/v1/teams/{a}/runs"), None),
        (
            Method::POST,
            format!("/api/v1/teams/{a}/runs"),
            Some(json!({"dataset_id": bob_ds, "rounds": 0})),
        ),
        (Method::GET, format!("/api/v1/teams/{a}/runs/{id}"), None),
        (
            Method::POST,
            format!("/api/v1/teams/{a}/runs/{id}/cancel"),
            None,
        ),
        (Method::GET, format!("/api/v1/teams/{b}/runs/{id}"), None),
        (
            Method::POST,
            format!("/api/v1/teams/{b}/runs/{id}/cancel"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/teams/{b}/runs"),
            Some(json!({"dataset_id": ds, "rounds": 0})),
        ),
    ] {
        let (status, answer) = call(&router, method.clone(), &uri, &bob, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}: {answer}");
    }
    let list = get_ok(&router, &format!("/api/v1/teams/{b}/runs"), &bob).await;
    assert_eq!(list, json!([]));
    let run = get_ok(&router, &format!("/api/v1/teams/{a}/runs/{id}"), &alice).await;
    assert_eq!(run["status"], "queued", "bob's cancel did nothing");
}

async fn cancel_and_restart(app: &TestApp) {
    let (router, state) = tiny(app);
    let (team, alice, ds) = new_team(app, &router, "alpha", "alice@example.org").await;
    let uri = format!("/api/v1/teams/{team}/runs");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let body = json!({"dataset_id": ds, "rounds": 0});
        let run = submit(&router, team, &alice, body).await;
        ids.push(run["id"].as_i64().unwrap());
    }
    // A queued run is cancelled at once; again is a conflict.
    let cancel = |id: i64| format!("{uri}/{id}/cancel");
    let (status, run) = call(&router, Method::POST, &cancel(ids[2]), &alice, None).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["status"], "cancelled");
    assert!(run["finished_at"].is_string(), "{run}");
    let (status, answer) = call(&router, Method::POST, &cancel(ids[2]), &alice, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");

    // The worker claims the oldest queued runs; a running one only gets the cancel flag.
    let first = worker::claim(&state.db).await.unwrap().unwrap();
    assert_eq!(first.id as i64, ids[0]);
    assert_eq!(first.status, "running");
    let second = worker::claim(&state.db).await.unwrap().unwrap();
    assert_eq!(second.id as i64, ids[1]);
    assert!(
        worker::claim(&state.db).await.unwrap().is_none(),
        "the cancelled run is not claimed"
    );
    let (status, run) = call(&router, Method::POST, &cancel(ids[1]), &alice, None).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["status"], "running");
    assert_eq!(run["cancel_requested"], true);

    // A restart: the crashed running run is queued again, the one being cancelled is cancelled.
    let restarted = vila2_web::build_state(&app.options, SECRET).await.unwrap();
    let rows: Vec<run::Model> = run::Entity::find().all(&restarted.db).await.unwrap();
    let status_of = |id: i64| {
        rows.iter()
            .find(|r| r.id as i64 == id)
            .unwrap()
            .status
            .clone()
    };
    assert_eq!(status_of(ids[0]), "queued");
    assert_eq!(status_of(ids[1]), "cancelled");
    assert_eq!(status_of(ids[2]), "cancelled");
    let again = worker::claim(&restarted.db).await.unwrap().unwrap();
    assert_eq!(again.id as i64, ids[0]);
    restarted.db.close().await.unwrap();
}

/// The worker loop `serve` starts picks a submitted run up by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spawned_worker_runs_what_is_queued() {
    let app = TestApp::start(Backend::Sqlite).await;
    let (router, state) = tiny(&app);
    let (team, alice, ds) = new_team(&app, &router, "alpha", "alice@example.org").await;
    let worker = worker::spawn(state);
    let uri = format!("/api/v1/teams/{team}/runs");
    let body = json!({"dataset_id": ds, "rounds": 0});
    let run = submit(&router, team, &alice, body).await;
    let run_uri = format!("{uri}/{}", run["id"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let run = loop {
        let run = get_ok(&router, &run_uri, &alice).await;
        if run["status"] != "queued" && run["status"] != "running" {
            break run;
        }
        assert!(std::time::Instant::now() < deadline, "still {run}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(run["status"], "succeeded", "{run}");
    worker.abort();
    let _ = worker.await;
    app.finish().await;
}

/// Filters with their configurations and specialists: what was asked lands in the run
/// document; every bad choice is a 400 naming its field (a config the plugin refuses with
/// the plugin's message) and queues nothing.
async fn filter_configs_and_specialists(app: &TestApp) {
    let (router, _) = tiny(app);
    let (team, alice, ds) = new_team(app, &router, "alpha", "alice@example.org").await;
    let uri = format!("/api/v1/teams/{team}/runs");
    let (plugin_id, plugin_name) = team_plugin(app, team, &alice).await;
    let quality = |config: Value| json!({"name": "vila2_quality", "config": config});
    let request = |extra: Value| {
        let mut body = json!({"dataset_id": ds, "rounds": 0});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for (extra, field) in [
        (
            json!({"filters": ["vila2_quality", quality(json!([1]))]}),
            "filters[1].config: must be a JSON object",
        ),
        (
            json!({"filters": [quality(json!({"min_words": "many"}))]}),
            "filters[0].config: refused by the plugin",
        ),
        (
            json!({"filters": [quality(json!({"colour": 1}))]}),
            "filters[0].config: refused by the plugin",
        ),
        (
            json!({"filters": [quality(json!({"min_words": null}))]}),
            "filters[0].config: null",
        ),
        (
            json!({"filters": [{"name": "nope", "config": {}}]}),
            "filters[0]: no component `nope`",
        ),
        (
            json!({"specialists": ["spatial", "weather"]}),
            "specialists[1]: `weather` is not a specialist task",
        ),
        (
            json!({"specialists": ["ocr", {"name": "ocr"}]}),
            "specialists[1]: `ocr` is listed twice",
        ),
        (
            json!({"specialists": [{"name": "ocr", "plugin": "nope"}]}),
            "specialists[0].plugin: no component `nope`",
        ),
        (
            json!({"specialists": [{"name": "ocr", "plugin": plugin_name}]}),
            "specialists[0].plugin: plugin `",
        ),
        (
            json!({"specialists": [{"name": "ocr", "plugin": "vila2_quality"}]}),
            "specialists[0].plugin: ",
        ),
        (
            json!({"specialists": [{"name": "ocr", "config": "x"}]}),
            "specialists[0].config: must be a JSON object",
        ),
    ] {
        let body = request(extra);
        let (status, answer) = call(&router, Method::POST, &uri, &alice, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {answer}");
        let msg = answer["error"].as_str().unwrap();
        assert!(
            msg.starts_with(field),
            "{body}: `{msg}` should start with {field}"
        );
    }
    // A malformed entry is refused by the JSON reader, naming it.
    let body = request(json!({"specialists": [{"name": "ocr", "colour": "red"}]}));
    let (status, answer) = call(&router, Method::POST, &uri, &alice, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer.to_string().contains("specialists[0]"), "{answer}");
    assert_eq!(
        get_ok(&router, &uri, &alice).await,
        json!([]),
        "nothing queued"
    );

    let body = request(json!({
        "filters": [
            quality(json!({"min_words": 3, "max_words": 50})),
            "vila2_quality",
            {"name": plugin_name, "config": {"min_words": 2}},
        ],
        "specialists": ["ocr", {"name": "spatial", "plugin": "vila2_spatial"}],
    }));
    let run = submit(&router, team, &alice, body).await;
    let cfg = vila2_host::pipeline::RunConfig::parse(run["config"].as_str().unwrap()).unwrap();
    let filters: Vec<(&str, Option<Value>)> = cfg
        .recaption
        .filters
        .iter()
        .map(|f| (f.plugin.as_str(), f.config.clone()))
        .collect();
    let team_component = format!("plugins/{plugin_id}.wasm");
    assert_eq!(
        filters,
        [
            (
                "vila2_quality",
                Some(json!({"min_words": 3, "max_words": 50}))
            ),
            ("vila2_quality", None),
            (team_component.as_str(), Some(json!({"min_words": 2}))),
        ]
    );
    let specialists: Vec<(&str, &str, String)> = cfg
        .specialists
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.plugin.plugin.as_str(),
                s.data.display().to_string(),
            )
        })
        .collect();
    assert_eq!(
        specialists,
        [
            ("ocr", "vila2_ocr", "shapes/specialist/ocr".to_string()),
            (
                "spatial",
                "vila2_spatial",
                "shapes/specialist/spatial".to_string()
            ),
        ]
    );
    // Nothing asked: the preset's (the tiny one has no specialists); `[]`: none.
    let run = submit(&router, team, &alice, request(json!({}))).await;
    let cfg = vila2_host::pipeline::RunConfig::parse(run["config"].as_str().unwrap()).unwrap();
    assert!(cfg.specialists.is_empty());
    assert_eq!(
        cfg.recaption.filters[0].config,
        Some(json!({"min_words": 4}))
    );
    let body = request(json!({"specialists": [], "filters": []}));
    let run = submit(&router, team, &alice, body).await;
    let cfg = vila2_host::pipeline::RunConfig::parse(run["config"].as_str().unwrap()).unwrap();
    assert!(cfg.specialists.is_empty() && cfg.recaption.filters.is_empty());
}

/// A tiny run with one specialist goes to its end: its report has the `+ specialists` row,
/// made by the spatial specialist on every sample, and its page lists the specialist.
async fn worker_runs_a_specialist(app: &TestApp) {
    let (router, state) = tiny(app);
    let (team, alice, ds) = new_team(app, &router, "alpha", "alice@example.org").await;
    let body = json!({
        "dataset_id": ds,
        "rounds": 0,
        "filters": [{"name": "vila2_quality", "config": {"min_words": 1}}],
        "specialists": ["spatial"],
    });
    let run = submit(&router, team, &alice, body).await;
    let id = run["id"].as_i64().unwrap();
    let (ran, outcome) = worker::run_next(&state).await.unwrap().unwrap();
    assert_eq!((ran as i64, outcome), (id, Outcome::Succeeded));
    let out = app.dir.path().join(format!("runs/{id}/out"));
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let rows = report["rounds"].as_array().unwrap();
    let labels: Vec<&str> = rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["round 0", "+ specialists"]);
    let spec = &rows[1]["recaption"];
    assert_eq!(spec["samples"], common::runs::DATASET_SAMPLES, "{spec}");
    assert!(
        out.join("specialists/spatial").is_dir(),
        "the spatial specialist was trained and answered"
    );
    let page = get_ok(&router, &format!("/teams/{team}/runs/{id}"), &alice).await;
    let page = page.as_str().unwrap();
    assert!(
        page.contains(r#"<code id="specialists">spatial (vila2_spatial)</code>"#),
        "{page}"
    );
    assert!(page.contains("+ specialists"), "{page}");
}

both_backends!(
    submit_validation,
    runs_are_team_private,
    cancel_and_restart,
    worker_runs_a_tiny_run_to_the_end,
    filter_configs_and_specialists,
    worker_runs_a_specialist
);

/// The worker takes a tiny run (round 0 and one self-augmented round) to its end, finishes it
/// again after a simulated crash, and stops a run whose cancel was asked before its first task.
async fn worker_runs_a_tiny_run_to_the_end(app: &TestApp) {
    let (router, state) = tiny(app);
    let (team, alice, ds) = new_team(app, &router, "alpha", "alice@example.org").await;
    let uri = format!("/api/v1/teams/{team}/runs");
    // Its filter is the team's own upload, fetched by the worker into the run's folder.
    let (plugin_id, plugin_name) = team_plugin(app, team, &alice).await;
    let run = submit(
        &router,
        team,
        &alice,
        json!({"dataset_id": ds, "rounds": 1, "filters": [plugin_name]}),
    )
    .await;
    let id = run["id"].as_i64().unwrap();

    let (ran, outcome) = worker::run_next(&state)
        .await
        .unwrap()
        .expect("a queued run");
    assert_eq!(ran as i64, id);
    assert_eq!(outcome, Outcome::Succeeded);
    let run = get_ok(&router, &format!("{uri}/{id}"), &alice).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(run["error"].is_null(), "{run}");
    assert!(
        run["started_at"].is_string() && run["finished_at"].is_string(),
        "{run}"
    );
    assert!(
        !run["stage"].as_str().unwrap().is_empty(),
        "progress was recorded: {run}"
    );
    let out = app.dir.path().join(format!("runs/{id}/out"));
    let component = app
        .dir
        .path()
        .join(format!("runs/{id}/plugins/{plugin_id}.wasm"));
    assert_eq!(std::fs::read(&component).unwrap(), common::quality_wasm());
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let labels: Vec<&str> = report["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels.len(),
        2,
        "round 0 and the self-augmented round 1: {labels:?}"
    );
    assert!(
        worker::run_next(&state).await.unwrap().is_none(),
        "the queue is empty"
    );

    // A process that died while running it: the restart queues it again, and the worker
    // resumes it in the same folder (dataset, ShapesWorld and finished tasks kept).
    edit_run(&state.db, id, |row| {
        row.status = sea_orm::Set("running".into());
        row.finished_at = sea_orm::Set(None);
    })
    .await;
    let restarted = vila2_web::build_state(&app.options, SECRET).await.unwrap();
    let (restarted_router, restarted) = tiny_from(app, restarted);
    let run = get_ok(&restarted_router, &format!("{uri}/{id}"), &alice).await;
    assert_eq!(run["status"], "queued", "{run}");
    let (again, outcome) = worker::run_next(&restarted).await.unwrap().unwrap();
    assert_eq!((again as i64, outcome), (id, Outcome::Succeeded));
    let run = get_ok(&restarted_router, &format!("{uri}/{id}"), &alice).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    restarted.db.close().await.unwrap();

    // A cancel asked while running stops the pipeline before its next task.
    let run = submit(&router, team, &alice, run_request(ds, 0)).await;
    let id = run["id"].as_i64().unwrap();
    edit_run(&state.db, id, |row| {
        row.cancel_requested = sea_orm::Set(true)
    })
    .await;
    let (_, outcome) = worker::run_next(&state).await.unwrap().unwrap();
    assert_eq!(outcome, Outcome::Cancelled);
    let run = get_ok(&router, &format!("{uri}/{id}"), &alice).await;
    assert_eq!(run["status"], "cancelled", "{run}");
}
