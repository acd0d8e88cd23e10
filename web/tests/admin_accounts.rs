//! Users and teams managed by admins (SQLite and PostgreSQL): creating accounts through the
//! API and the admin page, creating a team with its owner, adding and removing members, and
//! what each refuses (bad email, short password, taken email, unknown owner, bad role, no
//! admin, no CSRF token, other teams).

mod common;

use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, COOKIE, LOCATION};
use axum::http::{Method, Request, StatusCode};
use common::{ADMIN, Backend, TestApp, skip_postgres};
use serde_json::{Value, json};

const CSRF: &str = "0123456789abcdef0123456789abcdef";

/// Posts the form `body` to `uri` with `token`'s session and the test CSRF cookie.
async fn form(app: &TestApp, token: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let req = Request::post(uri)
        .header(COOKIE, format!("vila2_session={token}; vila2_csrf={CSRF}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, headers, body) = app.send(req).await;
    if status == StatusCode::SEE_OTHER {
        assert_eq!(headers[LOCATION], "/admin", "{uri}");
    }
    (status, body)
}

/// The teams `token`'s user is in, as `(name, role)`.
async fn teams_of(app: &TestApp, token: &str) -> Vec<(String, String)> {
    let (status, me) = app.get("/api/v1/me", token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    me["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["role"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The user row of `email` in the admin's user list.
async fn user_row(app: &TestApp, admin: &str, email: &str) -> Option<Value> {
    let (status, users) = app.get("/api/v1/admin/users", admin).await;
    assert_eq!(status, StatusCode::OK, "{users}");
    users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .cloned()
}

async fn users_through_the_api(app: &TestApp) {
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let create = |body: Value, token: Option<String>| async move {
        app.json(Method::POST, "/api/v1/admin/users", token.as_deref(), body)
            .await
    };
    let (status, body) = create(
        json!({"email": " Bob@Example.org ", "password": "bob-password"}),
        Some(admin.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["email"], "bob@example.org", "{body}");
    assert_eq!(body["is_admin"], false);
    assert_eq!(body["teams"], json!([]));
    assert!(body.get("password_hash").is_none(), "{body}");
    let bob = app.login("bob@example.org", "bob-password").await;
    assert!(teams_of(app, &bob).await.is_empty());

    let refused = [
        (
            json!({"email": "BOB@example.org", "password": "another-password"}),
            StatusCode::CONFLICT,
            "email",
        ),
        (
            json!({"email": "not-an-email", "password": "long-enough"}),
            StatusCode::BAD_REQUEST,
            "email",
        ),
        (
            json!({"email": "carol@example.org", "password": "short"}),
            StatusCode::BAD_REQUEST,
            "password",
        ),
        (
            json!({"email": "carol@example.org", "password": "long-enough", "role": "admin"}),
            StatusCode::BAD_REQUEST,
            "role",
        ),
    ];
    for (body, want, field) in refused {
        let (status, answer) = create(body.clone(), Some(admin.clone())).await;
        assert_eq!(status, want, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(field),
            "{body}: the error names `{field}`: {answer}"
        );
    }
    let good =
        json!({"email": "carol@example.org", "password": "carol-password", "is_admin": true});
    let (status, _) = create(good.clone(), Some(bob.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a user who is not an admin");
    let (status, _) = create(good.clone(), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        user_row(app, &admin, "carol@example.org").await.is_none(),
        "nothing refused was created"
    );
    let (status, body) = create(good, Some(admin.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["is_admin"], true);
    let carol = app.login("carol@example.org", "carol-password").await;
    let (status, _) = app.get("/api/v1/admin/users", &carol).await;
    assert_eq!(status, StatusCode::OK, "the new admin is an admin");
}

async fn members_through_the_api(app: &TestApp) {
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (alpha, owner) = app
        .team_with_member(&admin, "alpha", "owner@example.org", "owner")
        .await;
    let (beta, other_owner) = app
        .team_with_member(&admin, "beta", "beta@example.org", "owner")
        .await;
    let (status, body) = app
        .json(
            Method::POST,
            "/api/v1/admin/users",
            Some(&admin),
            json!({"email": "dan@example.org", "password": "dan-password"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let dan_id = body["id"].as_i64().unwrap();
    let (status, body) = app
        .json(
            Method::POST,
            &format!("/api/v1/teams/{alpha}/members"),
            Some(&owner),
            json!({"email": "dan@example.org"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let dan = app.login("dan@example.org", "dan-password").await;
    assert_eq!(
        teams_of(app, &dan).await,
        [("alpha".to_string(), "member".to_string())]
    );
    let owner_id = user_row(app, &admin, "owner@example.org").await.unwrap()["id"]
        .as_i64()
        .unwrap();

    let remove = |team: i64, user: i64, token: String| async move {
        app.json(
            Method::DELETE,
            &format!("/api/v1/teams/{team}/members/{user}"),
            Some(&token),
            Value::Null,
        )
        .await
    };
    // A member may not remove others; another team's owner does not see the team.
    let (status, body) = remove(alpha, owner_id, dan.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = remove(alpha, dan_id, other_owner.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Nor does the owner of alpha reach beta's members through alpha's id.
    let (status, body) = remove(beta, dan_id, owner.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(teams_of(app, &dan).await.len(), 1, "still a member");

    let (status, body) = remove(alpha, dan_id, owner.clone()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(teams_of(app, &dan).await.is_empty());
    let (status, _) = app
        .get(&format!("/api/v1/teams/{alpha}/datasets"), &dan)
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a removed member loses access"
    );
    let (status, body) = remove(alpha, dan_id, owner.clone()).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "not a member any more: {body}"
    );
    assert!(body["error"].as_str().unwrap().contains("not a member"));
    // The account stays; the admin can remove the team's owner too.
    assert!(user_row(app, &admin, "dan@example.org").await.is_some());
    let (status, _) = remove(alpha, owner_id, admin.clone()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(teams_of(app, &owner).await.is_empty());
}

async fn users_and_teams_on_the_admin_page(app: &TestApp) {
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (_, member) = app
        .team_with_member(&admin, "alpha", "alice@example.org", "member")
        .await;

    // Every form checks the CSRF token and the admin role.
    let (status, _) = form(
        app,
        &admin,
        "/admin/users",
        "csrf=wrong&email=erin%40example.org&password=erin-password",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = form(
        app,
        &member,
        "/admin/users",
        &format!("csrf={CSRF}&email=erin%40example.org&password=erin-password"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(user_row(app, &admin, "erin@example.org").await.is_none());

    let (status, body) = form(
        app,
        &admin,
        "/admin/users",
        &format!("csrf={CSRF}&email=erin%40example.org&password=erin-password"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let erin = user_row(app, &admin, "erin@example.org").await.unwrap();
    assert_eq!(erin["is_admin"], false, "the box was not ticked");
    let (status, body) = form(
        app,
        &admin,
        "/admin/users",
        &format!("csrf={CSRF}&email=frank%40example.org&password=frank-password&is_admin=on"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(
        user_row(app, &admin, "frank@example.org").await.unwrap()["is_admin"],
        true
    );
    let (status, body) = form(
        app,
        &admin,
        "/admin/users",
        &format!("csrf={CSRF}&email=gina%40example.org&password=short"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.as_str()
            .unwrap()
            .contains("password: must be at least 8")
    );

    // A team with an unknown owner is refused whole: no team is left behind.
    let (status, body) = form(
        app,
        &admin,
        "/admin/teams",
        &format!("csrf={CSRF}&name=gamma&owner_email=nobody%40example.org"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.as_str().unwrap().contains("owner_email: no user"));
    let (_, teams) = app.get("/api/v1/admin/teams", &admin).await;
    assert!(
        !teams
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["team_name"] == "gamma"),
        "{teams}"
    );
    let (status, body) = form(
        app,
        &admin,
        "/admin/teams",
        &format!("csrf={CSRF}&name=gamma&owner_email=erin%40example.org"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let erin_token = app.login("erin@example.org", "erin-password").await;
    assert_eq!(
        teams_of(app, &erin_token).await,
        [("gamma".to_string(), "owner".to_string())]
    );
    let (status, body) = form(
        app,
        &admin,
        "/admin/teams",
        &format!("csrf={CSRF}&name=gamma"),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (_, teams) = app.get("/api/v1/admin/teams", &admin).await;
    let gamma = teams
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["team_name"] == "gamma")
        .unwrap()["team_id"]
        .as_i64()
        .unwrap();
    let (status, body) = form(
        app,
        &admin,
        &format!("/admin/teams/{gamma}/members"),
        &format!("csrf={CSRF}&email=alice%40example.org&role=boss"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.as_str().unwrap().contains("role"));
    let (status, body) = form(
        app,
        &admin,
        &format!("/admin/teams/{gamma}/members"),
        &format!("csrf={CSRF}&email=alice%40example.org&role=member"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(teams_of(app, &member).await.len(), 2);
    let (status, _) = form(
        app,
        &admin,
        "/admin/teams/999999/members",
        &format!("csrf={CSRF}&email=alice%40example.org"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The page lists each team's members with a remove button.
    let alice_id = user_row(app, &admin, "alice@example.org").await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let req = Request::get("/admin")
        .header(COOKIE, format!("vila2_session={admin}; vila2_csrf={CSRF}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, html) = app.send(req).await;
    assert_eq!(status, StatusCode::OK);
    let html = html.as_str().unwrap();
    let remove = format!("/admin/teams/{gamma}/members/{alice_id}/remove");
    for needle in [
        remove.as_str(),
        "Remove alice@example.org from gamma",
        "Remove erin@example.org from gamma",
        "action=\"/admin/users\"",
        "action=\"/admin/teams\"",
    ] {
        assert!(html.contains(needle), "the admin page shows {needle}");
    }
    let (status, body) = form(app, &admin, &remove, &format!("csrf={CSRF}")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(
        teams_of(app, &member).await,
        [("alpha".to_string(), "member".to_string())]
    );
    let (status, _) = form(app, &admin, &remove, &format!("csrf={CSRF}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "removed already");
}

both_backends!(
    users_through_the_api,
    members_through_the_api,
    users_and_teams_on_the_admin_page
);
