//! The pipeline's own `tracing` warnings reach the run's log: a run whose filter traps fails
//! with the max_failure_fraction error, and the plugin's trap warnings are in its streamed
//! and stored log (SQLite, then PostgreSQL: one test, since the capture is process-global).

mod common;

use std::sync::Once;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use common::runs::{components_dir, new_team, open_events, read_events, submit, tiny};
use common::{Backend, TestApp, skip_postgres};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt;
use vila2_web::entities::run_event;
use vila2_web::runs::pipeline_log;
use vila2_web::runs::worker::{self, Outcome};

/// The layer as the process's subscriber, once.
fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(pipeline_log::layer());
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

/// The log lines of the event stream `uri`, read until it ends: the snapshot's and the
/// streamed `log` events'.
async fn log_lines(router: &Router, uri: &str, token: &str) -> (Vec<String>, Vec<String>) {
    let events = read_events(open_events(router, uri, token).await).await;
    let text = |v: &Value| v["message"].as_str().unwrap().to_string();
    let snapshot = events
        .iter()
        .filter(|e| e.event == "snapshot")
        .flat_map(|e| e.data["log"].as_array().unwrap().iter().map(text))
        .collect();
    let streamed = events
        .iter()
        .filter(|e| e.event == "log")
        .map(|e| text(&e.data))
        .collect();
    (snapshot, streamed)
}

async fn trapping_filter(app: &TestApp) {
    let (router, state) = tiny(app);
    let (team, alice, ds) = new_team(app, &router, "alpha", "alice@example.org").await;
    let faulty = std::fs::read(components_dir().join("vila2_faulty_plugin.wasm")).unwrap();
    let (status, body) = app.upload_raw(team, &alice, "faulty.wasm", faulty).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let name = body["plugin"]["name"].as_str().unwrap().to_string();
    let plugin_id = body["plugin"]["id"].as_i64().unwrap();
    let run = submit(
        &router,
        team,
        &alice,
        json!({
            "dataset_id": ds,
            "rounds": 1,
            "filters": [{"name": name, "config": {"mode": "panic"}}],
        }),
    )
    .await;
    let id = run["id"].as_i64().unwrap();
    let uri = format!("/api/v1/teams/{team}/runs/{id}/events");

    // Listening while it runs: the warnings are streamed.
    let listener = {
        let (router, uri, alice) = (router.clone(), uri.clone(), alice.clone());
        tokio::spawn(async move { log_lines(&router, &uri, &alice).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ran, outcome) = worker::run_next(&state).await.unwrap().unwrap();
    assert_eq!(ran as i64, id);
    let Outcome::Failed(error) = outcome else {
        panic!("the run should fail: {outcome:?}");
    };
    assert!(error.contains("max_failure_fraction"), "{error}");
    // The message, then the fields, the plugin's path relative to the run's folder.
    let component = format!("plugin=plugins/{plugin_id}.wasm");
    let is_trap = |l: &String| {
        l.starts_with("instance discarded: ")
            && l.contains("faulty plugin panics on purpose")
            && l.contains(&format!("({component}, call=filter)"))
    };
    let (_, streamed) = listener.await.unwrap();
    assert!(
        streamed.iter().any(is_trap),
        "the trap warnings are streamed: {streamed:#?}"
    );
    // And stored: a client arriving later gets them in the snapshot.
    let (snapshot, _) = log_lines(&router, &uri, &alice).await;
    assert!(
        snapshot.iter().any(is_trap),
        "the trap warnings are stored: {snapshot:#?}"
    );
    let traps = snapshot.iter().filter(|l| is_trap(l)).count();
    assert!(traps <= pipeline_log::MAX_LINES, "{traps}");

    // The portal's own warnings are not the pipeline's: not forwarded. Past the cap, one
    // line counts the rest.
    let dir = app.dir.path().join(format!("runs/{id}"));
    let capture = pipeline_log::capture(state.db.clone(), state.live.clone(), id as i32, &dir);
    tracing::warn!(target: "vila2_web::elsewhere", "cap-test: the portal's own");
    for i in 0..pipeline_log::MAX_LINES + 5 {
        tracing::warn!(target: "vila2::pipeline::cap_test", i, "cap-test: line");
    }
    capture.finish().await;
    let stored: Vec<String> = run_event::Entity::find()
        .filter(run_event::Column::RunId.eq(id as i32))
        .order_by_asc(run_event::Column::Id)
        .all(&state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.data)
        .filter(|d| d.contains("cap-test") || d.contains("more pipeline warnings"))
        .collect();
    assert_eq!(stored.len(), pipeline_log::MAX_LINES + 1, "{stored:#?}");
    assert!(stored[0].contains("cap-test: line (i=0)"), "{}", stored[0]);
    assert!(
        stored
            .last()
            .unwrap()
            .contains("5 more pipeline warnings not shown"),
        "{stored:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_warnings_reach_the_run_log() {
    install();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if matches!(backend, Backend::Postgres) && skip_postgres() {
            eprintln!("VILA2_TEST_SKIP_POSTGRES=1: PostgreSQL skipped");
            continue;
        }
        let app = TestApp::start(backend).await;
        trapping_filter(&app).await;
        app.finish().await;
    }
}
