//! The portal's API and pages, driven in-process, against a SQLite file in a temporary
//! directory and against PostgreSQL (`VILA2_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; each test gets a fresh database, dropped after).
//! Set `VILA2_TEST_SKIP_POSTGRES=1` to run the SQLite half only.

mod common;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

use common::*;

both_backends!(
    login_ok_and_wrong_password,
    expired_forged_and_logged_out_tokens,
    admin_only_routes_refused_for_members,
    plugin_upload_validation_and_cross_team_404,
    login_rate_limited,
    api_tokens_revocable,
    login_page_csrf_and_dashboard,
    logout_blocklist_in_the_database_survives_a_restart,
);

async fn login_ok_and_wrong_password(app: &TestApp) {
    let req = Request::post("/api/v1/login")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"email": ADMIN.0, "password": ADMIN.1}).to_string(),
        ))
        .unwrap();
    let (status, headers, body) = app.send(req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cookie = headers.get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(cookie.starts_with("vila2_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let token = body["token"].as_str().unwrap();

    let (status, me) = app.get("/api/v1/me", token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], ADMIN.0);
    assert_eq!(me["is_admin"], true);
    assert!(me.get("password_hash").is_none());

    // The cookie alone authenticates too.
    let session = cookie.split(';').next().unwrap();
    let req = Request::get("/api/v1/me")
        .header(COOKIE, session)
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.0, StatusCode::OK);

    for (email, password) in [
        (ADMIN.0, "not-the-password"),
        ("nobody@example.org", ADMIN.1),
    ] {
        let (status, body) = app
            .sign_in(json!({"email": email, "password": password}))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "wrong email or password");
    }
    let (status, body) = app.sign_in(json!({"email": ADMIN.0})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("password"),
        "{body}"
    );

    let (status, body) = app.get("/api/v1/me", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

async fn expired_forged_and_logged_out_tokens(app: &TestApp) {
    let token = app.login(ADMIN.0, ADMIN.1).await;
    let me = app.get("/api/v1/me", &token).await.1;
    let sub = me["id"].as_i64().unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims =
        |exp: i64| json!({"sub": sub.to_string(), "iat": now - 100, "exp": exp, "jti": "x"});
    use jsonwebtoken::Algorithm::{HS256, HS512};

    let expired = encode(claims(now - 10), HS256, SECRET);
    let (status, body) = app.get("/api/v1/me", &expired).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    let valid = encode(claims(now + 60), HS256, SECRET);
    assert_eq!(app.get("/api/v1/me", &valid).await.0, StatusCode::OK);
    for forged in [
        encode(claims(now + 60), HS512, SECRET),
        encode(claims(now + 60), HS256, b"another-secret-another-secret-xx"),
        format!("{}x", &valid),
    ] {
        let (status, body) = app.get("/api/v1/me", &forged).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{forged}: {body}");
    }

    let (status, _) = app
        .json(Method::POST, "/api/v1/logout", Some(&token), json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/api/v1/me", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().contains("logout"), "{body}");
}

async fn admin_only_routes_refused_for_members(app: &TestApp) {
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team, member) = app
        .team_with_member(&admin, "alpha", "member@example.org", "member")
        .await;

    let (status, body) = app.create_team(&member, "mine").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"].as_str().unwrap().contains("admin"));

    vila2_web::accounts::create_user(&app.state.db, "new@example.org", "new-password", false)
        .await
        .unwrap();
    let add = json!({"email": "new@example.org"});
    let uri = format!("/api/v1/teams/{team}/members");
    let (status, _) = app
        .json(Method::POST, &uri, Some(&member), add.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A team owner may add members; a bad role is named.
    let owner = app
        .add_member(&admin, team, "owner@example.org", "owner")
        .await;
    let (status, body) = app
        .json(
            Method::POST,
            &uri,
            Some(&owner),
            json!({"email": "new@example.org", "role": "boss"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().starts_with("role:"),
        "{body}"
    );
    let (status, _) = app.json(Method::POST, &uri, Some(&owner), add).await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, body) = app.create_team(&admin, "alpha").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

async fn plugin_upload_validation_and_cross_team_404(app: &TestApp) {
    let (_, (team_a, alice), (team_b, bob)) = app.two_teams("member").await;
    let wasm = quality_wasm();

    let (status, body) = app
        .upload_raw(team_a, &alice, "quality.wasm", wasm.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let plugin = &body["plugin"];
    assert_eq!(plugin["world"], "caption-filter");
    assert_eq!(plugin["team_id"], team_a);
    assert!(!plugin["name"].as_str().unwrap().is_empty());
    assert_eq!(plugin["size"], wasm.len());
    let plugin_id = plugin["id"].as_i64().unwrap();
    let key = plugin["object_key"].as_str().unwrap();
    assert_eq!(
        std::fs::read(app.dir.path().join("objects").join(key)).unwrap(),
        wasm
    );

    // Same name and version again, as multipart this time: refused as a duplicate.
    let boundary = "XBOUNDARYX";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"q.wasm\"\r\n\
         Content-Type: application/wasm\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(&wasm);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let req = Request::post(format!("/api/v1/teams/{team_a}/plugins"))
        .header(AUTHORIZATION, format!("Bearer {alice}"))
        .header(
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(form))
        .unwrap();
    let (status, _, body) = app.send(req).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (status, body) = app
        .upload_raw(
            team_a,
            &alice,
            "notes.txt",
            b"this is not a component at all".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("file:") && error.contains("not WebAssembly"),
        "{error}"
    );
    let core_module = wat::parse_str("(module)").unwrap();
    let (status, body) = app
        .upload_raw(team_a, &alice, "core.wasm", core_module)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not a component"),
        "{body}"
    );

    let (status, list) = app
        .get(&format!("/api/v1/teams/{team_a}/plugins"), &alice)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Bob (team B) sees none of it, and cannot tell it exists.
    for uri in [
        format!("/api/v1/teams/{team_a}/plugins"),
        format!("/api/v1/teams/{team_a}/plugins/{plugin_id}"),
        format!("/api/v1/teams/{team_b}/plugins/{plugin_id}"),
    ] {
        let (status, body) = app.get(&uri, &bob).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
    }
    let missing = app.get("/api/v1/teams/99999/plugins", &bob).await;
    let hidden = app
        .get(&format!("/api/v1/teams/{team_a}/plugins"), &bob)
        .await;
    assert_eq!(missing.0, hidden.0);
    let (status, _) = app.upload_raw(team_a, &bob, "quality.wasm", wasm).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .json(
            Method::POST,
            &format!("/api/v1/teams/{team_a}/members"),
            Some(&bob),
            json!({"email": "bob@example.org"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let me = app.get("/api/v1/me", &bob).await.1;
    assert_eq!(me["teams"].as_array().unwrap().len(), 1);
    assert_eq!(me["teams"][0]["name"], "team-b");
}

async fn login_rate_limited(app: &TestApp) {
    let mut last = StatusCode::OK;
    for _ in 0..11 {
        last = app
            .sign_in(json!({"email": ADMIN.0, "password": "guess-guess"}))
            .await
            .0;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    // Even the right password is refused while the limit holds.
    let (status, body) = app
        .sign_in(json!({"email": ADMIN.0, "password": ADMIN.1}))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

async fn api_tokens_revocable(app: &TestApp) {
    let session = app.login(ADMIN.0, ADMIN.1).await;
    let (status, created) = app
        .json(
            Method::POST,
            "/api/v1/tokens",
            Some(&session),
            json!({"name": "ci"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/me", token).await.0, StatusCode::OK);
    let (status, _) = app
        .json(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", created["id"]),
            Some(&session),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/api/v1/me", token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
}

async fn login_page_csrf_and_dashboard(app: &TestApp) {
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    app.team_with_member(&admin, "gamma", "carol@example.org", "owner")
        .await;

    let (status, headers, page) = app
        .send(Request::get("/login").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    let csrf_cookie = headers.get(SET_COOKIE).unwrap().to_str().unwrap();
    let csrf = csrf_cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("vila2_csrf=")
        .unwrap()
        .to_string();
    assert!(
        page.as_str()
            .unwrap()
            .contains(&format!("value=\"{csrf}\""))
    );

    let form =
        |csrf: &str| format!("email=carol%40example.org&password=member-password&csrf={csrf}");
    let post = |body: String, with_cookie: bool| {
        let mut req =
            Request::post("/login").header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        if with_cookie {
            req = req.header(COOKIE, format!("vila2_csrf={csrf}"));
        }
        req.body(Body::from(body)).unwrap()
    };
    let (status, _, body) = app.send(post(form(&csrf), false)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"].as_str().unwrap().starts_with("csrf:"));
    let (status, _, _) = app
        .send(post(form("0123456789abcdef0123456789abcdef"), true))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, _, page) = app
        .send(post(
            format!("email=carol%40example.org&password=wrong-password&csrf={csrf}"),
            true,
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.as_str().unwrap().contains("wrong email or password"));

    let (status, headers, _) = app.send(post(form(&csrf), true)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers.get(LOCATION).unwrap(), "/");
    let session = headers
        .get(SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();

    let cookies = format!("{session}; vila2_csrf={csrf}");
    let (status, _, page) = app.page("/", &cookies).await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().unwrap();
    assert!(
        page.contains("carol@example.org") && page.contains("gamma"),
        "{page}"
    );

    let (status, headers, _) = app
        .send(Request::get("/").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers.get(LOCATION).unwrap(), "/login");

    let (status, _, _) = app
        .send(
            Request::post("/logout")
                .header(COOKIE, &cookies)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("csrf={csrf}")))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = app.page("/", &cookies).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

async fn logout_blocklist_in_the_database_survives_a_restart(app: &TestApp) {
    use sea_orm::{ActiveModelTrait, EntityTrait, Set};
    use tower::ServiceExt;
    use vila2_web::entities::revoked_jwt;

    let token = app.login(ADMIN.0, ADMIN.1).await;
    assert_eq!(app.get("/api/v1/me", &token).await.0, StatusCode::OK);
    let claims = jsonwebtoken::decode::<vila2_web::auth::Claims>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(SECRET),
        &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256),
    )
    .unwrap()
    .claims;
    let (status, _) = app
        .json(Method::POST, "/api/v1/logout", Some(&token), json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/api/v1/me", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let rows = revoked_jwt::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].jti, claims.jti);
    assert_eq!(rows[0].expires_at.timestamp(), claims.exp);
    // A row whose token has expired anyway, to be pruned at the next start.
    revoked_jwt::ActiveModel {
        jti: Set("expired-long-ago".into()),
        expires_at: Set(chrono::Utc::now() - chrono::Duration::hours(1)),
    }
    .insert(&app.state.db)
    .await
    .unwrap();

    // A restart: a new app over the same database still refuses the logged-out token.
    let state = vila2_web::build_state(&app.options, SECRET).await.unwrap();
    let restarted = vila2_web::router(state.clone());
    let me = |token: String| {
        Request::get("/api/v1/me")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let response = restarted.clone().oneshot(me(token.clone())).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let fresh = app.login(ADMIN.0, ADMIN.1).await;
    let response = restarted.oneshot(me(fresh)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let rows = revoked_jwt::Entity::find().all(&state.db).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.jti.as_str()).collect::<Vec<_>>(),
        [claims.jti.as_str()],
        "expired rows are pruned at start"
    );
    state.db.close().await.unwrap();
}
