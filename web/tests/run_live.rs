//! Live progress and results of runs through the API (SQLite and PostgreSQL): the database
//! task store across a restart, the SSE stream, the report, side-by-side captions, downloads,
//! the run page, and cross-team isolation of every such route.

mod common;

use std::io::{Cursor, Read};

use axum::Router;
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{Method, Request, StatusCode};
use common::runs::{
    Sse, call, edit_run, get_ok, new_team, open_events, raw, read_events, run_request, tiny,
    tiny_from,
};
use common::{Backend, SECRET, TestApp, skip_postgres};
use http_body_util::BodyExt;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use tower::ServiceExt;
use vila2_web::entities::{run, run_task};
use vila2_web::runs::worker::{self, Outcome};

/// The messages of the `log` events.
fn messages(events: &[Sse]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == "log")
        .map(|e| e.data["message"].as_str().unwrap().to_string())
        .collect()
}

/// Submits a run of `rounds` rounds; its id.
async fn submit(router: &Router, team: i64, token: &str, ds: i64, rounds: i64) -> i64 {
    common::runs::submit(router, team, token, run_request(ds, rounds)).await["id"]
        .as_i64()
        .unwrap()
}

/// The database task store: done tasks are rows of `run_tasks` (no task files), and a run
/// resumed after a crash skips them and redoes only what is missing.
async fn db_task_store_resumes(app: &TestApp) {
    let (router, state) = tiny(app);
    let (team, alice, ds) = new_team(app, &router, "alpha", "alice@example.org").await;
    let id = submit(&router, team, &alice, ds, 0).await;
    let (ran, outcome) = worker::run_next(&state).await.unwrap().unwrap();
    assert_eq!((ran as i64, outcome), (id, Outcome::Succeeded));
    let tasks: Vec<run_task::Model> = run_task::Entity::find()
        .filter(run_task::Column::RunId.eq(id as i32))
        .all(&state.db)
        .await
        .unwrap();
    let ids: Vec<&str> = tasks.iter().map(|t| t.task_id.as_str()).collect();
    for want in ["init", "round-0/eval"] {
        assert!(ids.contains(&want), "no task {want} in {ids:?}");
    }
    assert!(
        !app.dir.path().join(format!("runs/{id}/out/tasks")).exists(),
        "the done records are in the database, not in task files"
    );

    // A crash after its evaluation record was lost: the restart queues it again and the
    // worker redoes only the evaluation.
    run_task::Entity::delete_many()
        .filter(run_task::Column::RunId.eq(id as i32))
        .filter(run_task::Column::TaskId.eq("round-0/eval"))
        .exec(&state.db)
        .await
        .unwrap();
    edit_run(&state.db, id, |row| {
        row.status = sea_orm::Set(run::RUNNING.into())
    })
    .await;
    let restarted = vila2_web::build_state(&app.options, SECRET).await.unwrap();
    let (restarted_router, restarted) = tiny_from(app, restarted);
    let uri = format!("/api/v1/teams/{team}/runs/{id}/events");
    let stream = open_events(&restarted_router, &uri, &alice).await;
    let reader = tokio::spawn(read_events(stream));
    let (again, outcome) = worker::run_next(&restarted).await.unwrap().unwrap();
    assert_eq!((again as i64, outcome), (id, Outcome::Succeeded));
    let events = reader.await.unwrap();
    let log = messages(&events);
    let started: Vec<&String> = log.iter().filter(|m| m.ends_with(": started")).collect();
    assert_eq!(
        started,
        vec!["round-0/eval: started"],
        "only the lost task is redone: {log:?}"
    );
    assert!(
        log.iter()
            .any(|m| m == "init: done in an earlier attempt, skipped"),
        "{log:?}"
    );
    assert!(
        log.iter().any(|m| m.starts_with("run resumed: ")),
        "{log:?}"
    );
    let count = run_task::Entity::find()
        .filter(run_task::Column::RunId.eq(id as i32))
        .count(&restarted.db)
        .await
        .unwrap();
    assert_eq!(
        count as usize,
        tasks.len(),
        "the redone task is recorded again"
    );
    restarted.db.close().await.unwrap();
}

/// A run with one self-augmented round, watched over SSE from the queue to its end; then its
/// report, side-by-side captions, downloads and page; and every new route is private to the
/// team.
async fn live_progress_report_and_downloads(app: &TestApp) {
    let (router, state) = tiny(app);
    let (team, alice, ds) = new_team(app, &router, "alpha", "alice@example.org").await;
    let (bob_team, bob, _) = new_team(app, &router, "beta", "bob@example.org").await;
    let id = submit(&router, team, &alice, ds, 1).await;
    let base = format!("/api/v1/teams/{team}/runs/{id}");

    // Before it succeeded: no samples or downloads yet, and the report is empty.
    for path in ["samples", "files", "dataset.tar", "samples/0/thumbnail"] {
        let (status, body) = call(
            &router,
            Method::GET,
            &format!("{base}/{path}"),
            &alice,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}: {body}");
        assert!(body["error"].as_str().unwrap().contains("queued"), "{body}");
    }
    let report = get_ok(&router, &format!("{base}/report"), &alice).await;
    assert_eq!(report["rounds"], json!([]));

    let stream = open_events(&router, &format!("{base}/events"), &alice).await;
    let reader = tokio::spawn(read_events(stream));
    let (ran, outcome) = worker::run_next(&state).await.unwrap().unwrap();
    assert_eq!((ran as i64, outcome), (id, Outcome::Succeeded));
    let events = reader.await.unwrap();

    // snapshot first, end last, progress, loss points, log lines and both rounds between.
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names.first(), Some(&"snapshot"), "{names:?}");
    assert_eq!(names.last(), Some(&"end"), "{names:?}");
    let snapshot = &events[0].data;
    assert_eq!(snapshot["run"]["status"], "queued", "{snapshot}");
    assert!(snapshot["progress"].is_null(), "{snapshot}");
    let end = &events.last().unwrap().data;
    assert_eq!(end["status"], "succeeded", "{end}");
    let progress: Vec<&Value> = events
        .iter()
        .filter(|e| e.event == "progress")
        .map(|e| &e.data)
        .collect();
    assert!(progress.len() >= 5, "{names:?}");
    let percents: Vec<f64> = progress
        .iter()
        .map(|p| p["percent"].as_f64().unwrap())
        .collect();
    assert!(
        percents.windows(2).all(|w| w[1] >= w[0]),
        "progress never goes back: {percents:?}"
    );
    assert_eq!(*percents.last().unwrap(), 100.0);
    let last = progress.last().unwrap();
    assert_eq!(last["tasks_done"], last["tasks_total"], "{last}");
    assert_eq!(last["samples_total"], 8, "one round over 8 samples: {last}");
    assert_eq!(last["samples_done"], 8, "{last}");
    assert!(
        progress
            .iter()
            .any(|p| p["round"] == 1 && p["stage"].as_str().unwrap().contains("recaption")),
        "a recaption task of round 1 was reported"
    );
    assert!(
        progress
            .iter()
            .any(|p| p["images_per_s"].as_f64().is_some_and(|x| x > 0.0)),
        "images/s was measured"
    );
    assert!(
        progress.iter().any(|p| p["eta_s"].as_f64().is_some()),
        "an ETA was given"
    );
    let losses: Vec<&Value> = events
        .iter()
        .filter(|e| e.event == "loss")
        .map(|e| &e.data)
        .collect();
    assert!(!losses.is_empty(), "{names:?}");
    assert!(
        losses
            .iter()
            .all(|l| l["loss"].as_f64().unwrap().is_finite())
    );
    let rounds: Vec<&str> = events
        .iter()
        .filter(|e| e.event == "round")
        .map(|e| e.data["label"].as_str().unwrap())
        .collect();
    assert_eq!(rounds, ["round 0", "round 1"]);
    let log = messages(&events);
    assert!(log.iter().any(|m| m == "run started"), "{log:?}");
    assert!(log.iter().any(|m| m == "round-1/eval: started"), "{log:?}");
    assert!(log.iter().any(|m| m == "run succeeded"), "{log:?}");

    // A reconnect after the end: the snapshot holds everything, then the end.
    let again = read_events(open_events(&router, &format!("{base}/events"), &alice).await).await;
    assert_eq!(
        again.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        ["snapshot", "end"]
    );
    let snap = &again[0].data;
    assert_eq!(snap["run"]["status"], "succeeded");
    assert_eq!(snap["progress"]["percent"], 100.0);
    assert_eq!(snap["losses"].as_array().unwrap().len(), losses.len());
    assert_eq!(snap["rounds"].as_array().unwrap().len(), 2);
    assert!(snap["log"].as_array().unwrap().len() >= log.len());

    // The report.
    let report = get_ok(&router, &format!("{base}/report"), &alice).await;
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["rounds"].as_array().unwrap().len(), 2);
    assert_eq!(report["rounds"][1]["recaption"]["samples"], 8, "{report}");
    assert!(report["report"]["final_data"].is_string(), "{report}");

    // Side by side: every sample of the augmented set with its original caption.
    let page = get_ok(&router, &format!("{base}/samples?page=1"), &alice).await;
    assert_eq!(page["total"], 8, "{page}");
    let samples = page["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 8);
    assert!(samples.iter().all(|s| s["round"] == 1), "{page}");
    assert!(
        samples
            .iter()
            .all(|s| !s["original"].as_str().unwrap().is_empty()),
        "{page}"
    );
    let (status, _, png) = raw(
        &router,
        Method::GET,
        &format!("{base}/samples/3/thumbnail"),
        &alice,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let thumb = image::load_from_memory(&png).unwrap();
    assert!(thumb.width() <= 128 && thumb.height() <= 128 && thumb.width() > 0);
    let (status, _) = call(
        &router,
        Method::GET,
        &format!("{base}/samples/99/thumbnail"),
        &alice,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Downloads: one shard and its Parquet table, each alone and all in one tar.
    let files = get_ok(&router, &format!("{base}/files"), &alice).await;
    let names: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["shard-000000.parquet", "shard-000000.tar"],
        "{files}"
    );
    let (status, headers, parquet) = raw(
        &router,
        Method::GET,
        &format!("{base}/files/shard-000000.parquet"),
        &alice,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(parquet.starts_with(b"PAR1") && parquet.ends_with(b"PAR1"));
    assert_eq!(
        headers[CONTENT_DISPOSITION].to_str().unwrap(),
        format!("attachment; filename=\"run-{id}-shard-000000.parquet\"")
    );
    for bad in ["..%2Freport.json", "report.json", "nope.tar"] {
        let (status, _) = call(
            &router,
            Method::GET,
            &format!("{base}/files/{bad}"),
            &alice,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}");
    }
    let (status, headers, tar) = raw(
        &router,
        Method::GET,
        &format!("{base}/dataset.tar"),
        &alice,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[CONTENT_DISPOSITION].to_str().unwrap(),
        format!("attachment; filename=\"run-{id}-augmented.tar\"")
    );
    let unpacked = tempfile::tempdir().unwrap();
    tar::Archive::new(Cursor::new(&tar))
        .unpack(unpacked.path())
        .unwrap();
    let folder = unpacked.path().join(format!("run-{id}"));
    let shard = folder.join("shard-000000.tar");
    assert_eq!(
        std::fs::read(folder.join("shard-000000.parquet")).unwrap(),
        parquet
    );
    let parsed = vila2_host::data::webdataset::read_shard(&shard).unwrap();
    assert_eq!(parsed.len(), 8);
    for (sample, shown) in parsed.iter().zip(samples) {
        assert_eq!(sample.key, shown["key"].as_str().unwrap());
        assert_eq!(
            sample.text("txt").unwrap(),
            shown["augmented"].as_str().unwrap()
        );
        assert!(sample.members.contains_key("png") || sample.members.contains_key("jpg"));
        let prov: Value = serde_json::from_slice(&sample.members["json"]).unwrap();
        assert_eq!(prov["org_caption"], shown["original"]);
    }
    let mut alone = Vec::new();
    let (_, _, shard_alone) = raw(
        &router,
        Method::GET,
        &format!("{base}/files/shard-000000.tar"),
        &alice,
        None,
    )
    .await;
    std::fs::File::open(&shard)
        .unwrap()
        .read_to_end(&mut alone)
        .unwrap();
    assert_eq!(alone, shard_alone);

    // The run page renders the report, plots, captions and download links.
    let page = get_ok(&router, &format!("/teams/{team}/runs/{id}"), &alice).await;
    let html = page.as_str().unwrap();
    assert_eq!(html.matches("class=\"round-row\"").count(), 2, "{html}");
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 3);
    assert_eq!(html.matches("class=\"sample\"").count(), 8);
    assert!(html.contains(&format!("/api/v1/teams/{team}/runs/{id}/dataset.tar")));
    assert!(html.contains(&format!("/api/v1/teams/{team}/runs/{id}/events")));
    let first = samples[0]["original"].as_str().unwrap();
    assert!(html.contains(&first.replace('\'', "&#x27;")), "{first}");
    let dashboard = get_ok(&router, "/", &alice).await;
    let dashboard = dashboard.as_str().unwrap();
    assert!(dashboard.contains(&format!("href=\"/teams/{team}/runs/{id}\"")));
    assert!(dashboard.contains(&format!("action=\"/teams/{team}/runs\"")));

    // Another team sees none of it: 404 through its own team and through alice's.
    for owner in [team, bob_team] {
        let base = format!("/api/v1/teams/{owner}/runs/{id}");
        for path in [
            "events",
            "report",
            "samples",
            "samples/0/thumbnail",
            "files",
            "files/shard-000000.tar",
            "dataset.tar",
        ] {
            let (status, body) =
                call(&router, Method::GET, &format!("{base}/{path}"), &bob, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "bob: {base}/{path}: {body}");
        }
        let (status, _) = call(
            &router,
            Method::GET,
            &format!("/teams/{owner}/runs/{id}"),
            &bob,
            None,
        )
        .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "bob: the run page of team {owner}"
        );
    }
    let (status, _) = call(
        &router,
        Method::GET,
        &format!("/api/v1/teams/{team}/runs/9999/events"),
        &alice,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A form post of `body` to `uri` as `token`, with a CSRF cookie and field unless `csrf` is
/// false: (status, Location header, body text).
async fn form(
    router: &Router,
    uri: &str,
    token: &str,
    body: &str,
    csrf: bool,
) -> (StatusCode, Option<String>, String) {
    const TOKEN: &str = "0123456789abcdef0123456789abcdef";
    let mut req = Request::post(uri)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    let body = if csrf {
        req = req.header(axum::http::header::COOKIE, format!("vila2_csrf={TOKEN}"));
        format!("{body}&csrf={TOKEN}")
    } else {
        body.to_string()
    };
    let response = router
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let location = response
        .headers()
        .get(axum::http::header::LOCATION)
        .map(|l| l.to_str().unwrap().to_string());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        location,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// The dashboard's new-run form and the run page's cancel button: CSRF-checked, fields
/// validated by name, team-private.
async fn run_forms(app: &TestApp) {
    let (router, _) = tiny(app);
    let (team, alice, ds) = new_team(app, &router, "alpha", "alice@example.org").await;
    let (_, bob, _) = new_team(app, &router, "beta", "bob@example.org").await;
    let uri = format!("/teams/{team}/runs");
    let good = format!("dataset_id={ds}&rounds=0&template=&filters=none&fusion=replace");
    let (status, _, body) = form(&router, &uri, &alice, &good, false).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for (bad, field) in [
        (
            format!("dataset_id={ds}&rounds=x&filters=&fusion=concat"),
            "rounds",
        ),
        (
            format!("dataset_id={ds}&rounds=9&filters=&fusion=concat"),
            "rounds",
        ),
        (
            format!("dataset_id={ds}&rounds=1&filters=&fusion=blend"),
            "fusion",
        ),
        (
            format!("dataset_id={ds}&rounds=1&filters=nope&fusion=concat"),
            "filters[0]",
        ),
    ] {
        let (status, _, body) = form(&router, &uri, &alice, &bad, true).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body.contains(&format!("{field}:")), "{bad}: {body}");
    }
    let (status, _, _) = form(&router, &uri, &bob, &good, true).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "bob cannot start runs for alpha"
    );

    let (status, location, body) = form(&router, &uri, &alice, &good, true).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let location = location.unwrap();
    let id: i64 = location
        .strip_prefix(&format!("/teams/{team}/runs/"))
        .unwrap()
        .parse()
        .unwrap();
    let api = format!("/api/v1/teams/{team}/runs/{id}");
    let run = get_ok(&router, &api, &alice).await;
    assert_eq!(run["status"], "queued");
    let cfg = vila2_host::pipeline::RunConfig::parse(run["config"].as_str().unwrap()).unwrap();
    assert_eq!(cfg.fusion, vila2_host::pipeline::Fusion::Replace);
    assert!(cfg.recaption.filters.is_empty());
    let page = get_ok(&router, &location, &alice).await;
    assert!(page.as_str().unwrap().contains("Cancel run"));

    let cancel = format!("{location}/cancel");
    let (status, _, _) = form(&router, &cancel, &bob, "", true).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = form(&router, &cancel, &alice, "", false).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, back, _) = form(&router, &cancel, &alice, "", true).await;
    assert_eq!(
        (status, back.as_deref()),
        (StatusCode::SEE_OTHER, Some(location.as_str()))
    );
    let run = get_ok(&router, &api, &alice).await;
    assert_eq!(run["status"], "cancelled");
    let page = get_ok(&router, &location, &alice).await;
    assert!(!page.as_str().unwrap().contains("Cancel run"));

    // The dashboard's form offers the preset's filters with their configs and a box per
    // specialist task (none checked in the tiny preset).
    let dashboard = get_ok(&router, "/", &alice).await;
    let dashboard = dashboard.as_str().unwrap();
    assert!(
        dashboard.contains("vila2_quality {&#34;min_words&#34;:4}</textarea>"),
        "{dashboard}"
    );
    for task in ["spatial", "grounding", "ocr"] {
        assert!(
            dashboard.contains(&format!(
                r#"<input type="checkbox" name="specialists" value="{task}">"#
            )),
            "{task}: {dashboard}"
        );
    }
    // Filters with their configs, one per line, and the checked specialists.
    let filters = "vila2_quality {\"min_words\": 3}\r\nvila2_quality";
    let chosen = format!(
        "dataset_id={ds}&rounds=0&template=&filters={}&fusion=concat&specialists=&specialists=ocr&specialists=spatial",
        urlencode(filters)
    );
    let (status, location, body) = form(&router, &uri, &alice, &chosen, true).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let location = location.unwrap();
    let id = location.rsplit('/').next().unwrap();
    let run = get_ok(&router, &format!("/api/v1/teams/{team}/runs/{id}"), &alice).await;
    let cfg = vila2_host::pipeline::RunConfig::parse(run["config"].as_str().unwrap()).unwrap();
    let configs: Vec<_> = cfg
        .recaption
        .filters
        .iter()
        .map(|f| f.config.clone())
        .collect();
    assert_eq!(configs, [Some(json!({"min_words": 3})), None]);
    let names: Vec<&str> = cfg.specialists.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["ocr", "spatial"]);
    let page = get_ok(&router, &location, &alice).await;
    let page = page.as_str().unwrap();
    assert!(
        page.contains(r#"<code id="specialists">ocr (vila2_ocr); spatial (vila2_spatial)</code>"#),
        "{page}"
    );
    assert!(
        page.contains("vila2_quality {&#34;min_words&#34;:3}; vila2_quality</code>"),
        "{page}"
    );
    // No box checked: no specialists; a config that is not JSON or that the plugin refuses is
    // a 400 naming the filter.
    let none = format!("dataset_id={ds}&rounds=0&filters=&fusion=concat&specialists=");
    let (status, location, body) = form(&router, &uri, &alice, &none, true).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let id = location.unwrap().rsplit('/').next().unwrap().to_string();
    let run = get_ok(&router, &format!("/api/v1/teams/{team}/runs/{id}"), &alice).await;
    let cfg = vila2_host::pipeline::RunConfig::parse(run["config"].as_str().unwrap()).unwrap();
    assert!(cfg.specialists.is_empty());
    for (filters, field) in [
        (
            "vila2_quality {min_words: 3}",
            "filters[0].config: not JSON",
        ),
        (
            "vila2_quality\nvila2_quality {\"min_words\": \"three\"}",
            "filters[1].config: refused by the plugin",
        ),
    ] {
        let bad = format!(
            "dataset_id={ds}&rounds=0&filters={}&fusion=concat",
            urlencode(filters)
        );
        let (status, _, body) = form(&router, &uri, &alice, &bad, true).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{filters}: {body}");
        assert!(body.contains(field), "{filters}: {body}");
    }
}

/// `s` percent-encoded for a form body.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

both_backends!(
    db_task_store_resumes,
    live_progress_report_and_downloads,
    run_forms
);

/// `make run`'s demo seeding: once, a `demo` team with the admin in it and a ShapesWorld
/// dataset that the dashboard's run form offers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_dataset_is_seeded_once() {
    let app = TestApp::start(Backend::Sqlite).await;
    let seeded = vila2_web::demo::seed(&app.state, common::ADMIN.0)
        .await
        .unwrap()
        .expect("a new dataset");
    assert_eq!(seeded.name, vila2_web::demo::DEMO_DATASET);
    assert_eq!(seeded.sample_count as usize, vila2_web::demo::DEMO_SAMPLES);
    assert!(
        vila2_web::demo::seed(&app.state, common::ADMIN.0)
            .await
            .unwrap()
            .is_none(),
        "a second seeding changes nothing"
    );
    let err = vila2_web::demo::seed(&app.state, "nobody@example.org")
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("email:"), "{err}");
    let admin = app.login(common::ADMIN.0, common::ADMIN.1).await;
    let (status, page) = app.get("/", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().unwrap();
    assert!(
        page.contains(&format!(
            "<option value=\"{}\">{} ({} samples)</option>",
            seeded.id,
            vila2_web::demo::DEMO_DATASET,
            vila2_web::demo::DEMO_SAMPLES
        )),
        "the run form offers the demo dataset"
    );
    app.finish().await;
}
