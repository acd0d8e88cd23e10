//! Plugin pages, "try on 10 samples" with the real first-party quality filter
//! (`vila2_quality.wasm` from `make components`) and admin publishing, against SQLite and
//! PostgreSQL (see `common`).

mod common;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};

use common::*;

both_backends!(
    try_on_ten_samples_with_the_quality_filter,
    publish_is_admin_only_and_unpublished_plugins_stay_hidden,
    plugin_pages_upload_show_and_try,
);

const BOUNDARY: &str = "PLUGINTESTBOUNDARY";
const GOOD: &str = "A red square sits to the left of a small blue circle on a plain white \
                    background, and a green triangle is below them.";
const SHORT: &str = "cat";

fn png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A WebDataset shard of 12 samples `s00`…`s11`; even ones get [`GOOD`], odd ones [`SHORT`].
fn shard() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let image = png();
    for i in 0..12 {
        let caption = if i % 2 == 0 { GOOD } else { SHORT };
        for (ext, data) in [("png", image.as_slice()), ("txt", caption.as_bytes())] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder
                .append_data(&mut header, format!("s{i:02}.{ext}"), data)
                .unwrap();
        }
    }
    builder.into_inner().unwrap()
}

fn multipart(fields: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file_name, value) in fields {
        let disposition = match file_name {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload_dataset(app: &TestApp, team: i64, token: &str) -> i64 {
    let req = Request::post(format!("/api/v1/teams/{team}/datasets"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(multipart(&[
            ("name", None, b"captions"),
            ("file", Some("shard.tar"), &shard()),
        ])))
        .unwrap();
    let (status, _, body) = app.send(req).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["sample_count"], 12, "{body}");
    body["id"].as_i64().unwrap()
}

async fn upload_quality(app: &TestApp, team: i64, token: &str) -> i64 {
    let (status, body) = app
        .upload_raw(team, token, "vila2_quality.wasm", quality_wasm())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["plugin"]["id"].as_i64().unwrap()
}

async fn try_plugin(
    app: &TestApp,
    team: i64,
    plugin: i64,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    app.json(
        Method::POST,
        &format!("/api/v1/teams/{team}/plugins/{plugin}/try"),
        Some(token),
        body,
    )
    .await
}

async fn try_on_ten_samples_with_the_quality_filter(app: &TestApp) {
    let (_, (team_a, alice), (team_b, bob)) = app.two_teams("member").await;
    let plugin = upload_quality(app, team_a, &alice).await;
    let dataset = upload_dataset(app, team_a, &alice).await;
    let bob_dataset = upload_dataset(app, team_b, &bob).await;

    let (status, got) = app
        .get(&format!("/api/v1/teams/{team_a}/plugins/{plugin}"), &alice)
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["world"], "caption-filter");
    assert_eq!(got["read_only"], false);
    assert!(!got["description"].as_str().unwrap().is_empty(), "{got}");
    assert_eq!(got["versions"].as_array().unwrap().len(), 1, "{got}");

    let (status, trial) =
        try_plugin(app, team_a, plugin, &alice, json!({"dataset_id": dataset})).await;
    assert_eq!(status, StatusCode::OK, "{trial}");
    let rows = trial["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 10, "only the first 10 samples: {trial}");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["idx"], i, "{row}");
        assert_eq!(row["key"], format!("s{i:02}"), "{row}");
        let verdict = &row["verdict"];
        assert!(row.get("error").is_none(), "{row}");
        if i % 2 == 0 {
            assert_eq!(row["caption"], GOOD);
            assert_eq!(verdict["keep"], true, "{row}");
        } else {
            assert_eq!(row["caption"], SHORT);
            assert_eq!(verdict["keep"], false, "{row}");
            assert!(!verdict["reasons"].as_array().unwrap().is_empty(), "{row}");
        }
        assert!(verdict["score"].is_number(), "{row}");
    }

    // A configuration the plugin refuses, and bad requests, say what was wrong.
    let (status, body) = try_plugin(
        app,
        team_a,
        plugin,
        &alice,
        json!({"dataset_id": dataset, "config": "not an object"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("config:"),
        "{body}"
    );
    let (status, body) = try_plugin(app, team_a, plugin, &alice, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("dataset_id"),
        "{body}"
    );

    // Another team's dataset, plugin or team: 404 all the same.
    for (team, plugin, token, dataset) in [
        (team_a, plugin, &alice, bob_dataset),
        (team_b, plugin, &bob, bob_dataset),
        (team_a, plugin, &bob, dataset),
        (team_a, plugin + 1000, &alice, dataset),
    ] {
        let (status, body) =
            try_plugin(app, team, plugin, token, json!({"dataset_id": dataset})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{team} {plugin}: {body}");
    }
}

async fn publish_is_admin_only_and_unpublished_plugins_stay_hidden(app: &TestApp) {
    let (admin, (team_a, alice), (team_b, bob)) = app.two_teams("owner").await;
    let plugin = upload_quality(app, team_a, &alice).await;
    let bob_dataset = upload_dataset(app, team_b, &bob).await;
    let bob_trial = || {
        try_plugin(
            app,
            team_b,
            plugin,
            &bob,
            json!({"dataset_id": bob_dataset}),
        )
    };
    let publish = |team: i64, token: String, method: Method| async move {
        app.json(
            method,
            &format!("/api/v1/teams/{team}/plugins/{plugin}/publish"),
            Some(&token),
            json!({}),
        )
        .await
    };
    let hidden_from_bob = || async {
        let (status, _) = app
            .get(&format!("/api/v1/teams/{team_b}/plugins/{plugin}"), &bob)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, list) = app
            .get(&format!("/api/v1/teams/{team_b}/plugins"), &bob)
            .await;
        assert_eq!(list, json!([]));
        let (status, _) = bob_trial().await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    };
    hidden_from_bob().await;

    // Not an admin: the team's owner is refused (403); another team cannot even see it (404).
    let (status, body) = publish(team_a, alice.clone(), Method::POST).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for team in [team_a, team_b] {
        let (status, body) = publish(team, bob.clone(), Method::POST).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    hidden_from_bob().await;

    let (status, body) = publish(team_a, admin.clone(), Method::POST).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["is_public"], true);

    // Published: every team sees it read-only and may try it on its own data.
    let (status, got) = app
        .get(&format!("/api/v1/teams/{team_b}/plugins/{plugin}"), &bob)
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["read_only"], true);
    let (_, list) = app
        .get(&format!("/api/v1/teams/{team_b}/plugins"), &bob)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let (status, trial) = bob_trial().await;
    assert_eq!(status, StatusCode::OK, "{trial}");
    assert_eq!(trial["rows"].as_array().unwrap().len(), 10);
    // Read-only: bob can neither withdraw it nor publish through his own team.
    for (team, method) in [(team_b, Method::DELETE), (team_a, Method::DELETE)] {
        let (status, _) = publish(team, bob.clone(), method).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    let (status, body) = publish(team_a, admin.clone(), Method::DELETE).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["is_public"], false);
    hidden_from_bob().await;
}

async fn page(app: &TestApp, uri: &str, cookies: &str) -> (StatusCode, String) {
    let req = Request::get(uri)
        .header(COOKIE, cookies)
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = app.send(req).await;
    (status, body.as_str().unwrap_or_default().to_string())
}

async fn plugin_pages_upload_show_and_try(app: &TestApp) {
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team, carol) = app
        .team_with_member(&admin, "gamma", "carol@example.org", "member")
        .await;
    let (_, dave) = app
        .team_with_member(&admin, "delta", "dave@example.org", "member")
        .await;
    let dataset = upload_dataset(app, team, &carol).await;
    let csrf = "0123456789abcdef0123456789abcdef";
    let cookies = format!("vila2_session={carol}; vila2_csrf={csrf}");
    let upload = |csrf_field: &str, file_name: &str, bytes: Vec<u8>| {
        Request::post(format!("/teams/{team}/plugins"))
            .header(COOKIE, &cookies)
            .header(
                CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from(multipart(&[
                ("csrf", None, csrf_field.as_bytes()),
                ("file", Some(file_name), &bytes),
            ])))
            .unwrap()
    };

    let (status, list) = page(app, &format!("/teams/{team}/plugins"), &cookies).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        list.contains("No plugins yet") && list.contains("accept=\".wasm\""),
        "{list}"
    );

    let (status, _, _) = app
        .send(upload(
            "ffffffffffffffffffffffffffffffff",
            "q.wasm",
            quality_wasm(),
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Rejected: the page says why.
    let (status, _, body) = app
        .send(upload(csrf, "notes.wasm", b"plain text".to_vec()))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = body.as_str().unwrap();
    assert!(
        body.contains("role=\"alert\"") && body.contains("not WebAssembly"),
        "{body}"
    );

    let (status, headers, body) = app.send(upload(csrf, "q.wasm", quality_wasm())).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let location = headers["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("/teams/{team}/plugins/")),
        "{location}"
    );

    let (status, show) = page(app, &location, &cookies).await;
    assert_eq!(status, StatusCode::OK);
    for expected in [
        "caption-filter",
        "Versions",
        "Try on 10 samples",
        "captions (12 samples)",
    ] {
        assert!(show.contains(expected), "{expected}: {show}");
    }
    assert!(
        !show.contains("Publish to every team"),
        "not an admin: {show}"
    );

    let try_form = |csrf_field: &str| {
        Request::post(format!("{location}/try"))
            .header(COOKIE, &cookies)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "csrf={csrf_field}&dataset_id={dataset}&config="
            )))
            .unwrap()
    };
    let (status, _, _) = app.send(try_form("")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = app.send(try_form(csrf)).await;
    assert_eq!(status, StatusCode::OK);
    let body = body.as_str().unwrap();
    assert!(body.contains("<table id=\"trial\">"), "{body}");
    assert_eq!(body.matches("<strong>keep</strong>").count(), 5, "{body}");
    assert_eq!(body.matches("<strong>drop</strong>").count(), 5, "{body}");

    // Another team's member gets 404 pages.
    let dave_cookies = format!("vila2_session={dave}");
    let (status, _) = page(app, &location, &dave_cookies).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = page(app, &format!("/teams/{team}/plugins"), &dave_cookies).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The admin sees the publish button.
    let (status, show) = page(app, &location, &format!("vila2_session={admin}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(show.contains("Publish to every team"), "{show}");
}
