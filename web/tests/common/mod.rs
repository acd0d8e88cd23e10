//! The harness shared by the portal's integration tests: an app per test against SQLite or
//! PostgreSQL, request helpers, and `both_backends!`.
#![allow(dead_code)]

pub mod browser;
pub mod runs;

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use vila2_web::accounts;

pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
pub const ADMIN: (&str, &str) = ("admin@example.org", "admin-password");

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub app: Router,
    pub state: vila2_web::AppState,
    pub dir: tempfile::TempDir,
    /// (server URL, database name) of the per-test PostgreSQL database.
    pub postgres: Option<(String, String)>,
    /// What the app was built from (to build another over the same database: a restart).
    pub options: vila2_web::Options,
}

pub fn postgres_url() -> String {
    std::env::var("VILA2_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn skip_postgres() -> bool {
    std::env::var("VILA2_TEST_SKIP_POSTGRES").is_ok_and(|v| v == "1")
}

impl TestApp {
    pub async fn start(backend: Backend) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, postgres) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                let server = postgres_url();
                let admin = Database::connect(&server).await.unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is not reachable at {server} ({e}): start it, set \
                         VILA2_TEST_POSTGRES_URL, or VILA2_TEST_SKIP_POSTGRES=1"
                    )
                });
                let name = format!(
                    "vila2_test_{}_{}",
                    std::process::id(),
                    vila2_web::auth::random_hex(6)
                );
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap();
                admin.close().await.unwrap();
                let base = server.rsplit_once('/').unwrap().0;
                (Some(format!("{base}/{name}")), Some((server, name)))
            }
        };
        let options = vila2_web::Options {
            database_url,
            bind: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            secure_cookies: false,
            db_connections: None,
        };
        let state = vila2_web::build_state(&options, SECRET).await.unwrap();
        accounts::create_user(&state.db, ADMIN.0, ADMIN.1, true)
            .await
            .unwrap();
        TestApp {
            app: vila2_web::router(state.clone()),
            state,
            dir,
            postgres,
            options,
        }
    }

    /// Drops the per-test PostgreSQL database.
    pub async fn finish(self) {
        let TestApp {
            app,
            state,
            postgres,
            ..
        } = self;
        drop(app);
        let db = state.db.clone();
        drop(state);
        db.close().await.unwrap();
        if let Some((server, name)) = postgres {
            let admin = Database::connect(&server).await.unwrap();
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .unwrap();
        }
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let (status, headers, bytes) = runs::send(&self.app, req).await;
        (status, headers, runs::json_or_text(&bytes))
    }

    /// A GET of page `uri` with the `cookies` header.
    pub async fn page(&self, uri: &str, cookies: &str) -> (StatusCode, HeaderMap, Value) {
        self.send(
            Request::get(uri)
                .header(COOKIE, cookies)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// A JSON call, with a bearer token if given: (status, body).
    pub async fn json(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        runs::call_as(&self.app, method, uri, token, Some(body)).await
    }

    pub async fn get(&self, uri: &str, token: &str) -> (StatusCode, Value) {
        let req = Request::get(uri)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = self.send(req).await;
        (status, body)
    }

    /// Posts `body` (`email`, `password`) to the login route: (status, body).
    pub async fn sign_in(&self, body: Value) -> (StatusCode, Value) {
        self.json(Method::POST, "/api/v1/login", None, body).await
    }

    /// Signs in (which must succeed); the token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .sign_in(json!({"email": email, "password": password}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// Creates team `name` as `token`: (status, body).
    pub async fn create_team(&self, token: &str, name: &str) -> (StatusCode, Value) {
        self.json(
            Method::POST,
            "/api/v1/teams",
            Some(token),
            json!({"name": name}),
        )
        .await
    }

    /// Creates a team (as admin) with a fresh user in it; returns (team id, user token).
    pub async fn team_with_member(
        &self,
        admin: &str,
        team: &str,
        email: &str,
        role: &str,
    ) -> (i64, String) {
        let (status, body) = self.create_team(admin, team).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let team_id = body["id"].as_i64().unwrap();
        (team_id, self.add_member(admin, team_id, email, role).await)
    }

    /// Adds a fresh user (password `member-password`) to `team` with `role` as `admin`; returns
    /// their token.
    pub async fn add_member(&self, admin: &str, team: i64, email: &str, role: &str) -> String {
        accounts::create_user(&self.state.db, email, "member-password", false)
            .await
            .unwrap();
        let (status, body) = self
            .json(
                Method::POST,
                &format!("/api/v1/teams/{team}/members"),
                Some(admin),
                json!({"email": email, "role": role}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        self.login(email, "member-password").await
    }

    /// Two teams made by the admin, `team-a` with alice (as `alice_role`) and `team-b` with bob
    /// (a member): (admin token, (team a, alice's token), (team b, bob's token)).
    pub async fn two_teams(&self, alice_role: &str) -> (String, (i64, String), (i64, String)) {
        let admin = self.login(ADMIN.0, ADMIN.1).await;
        let (team_a, alice) = self
            .team_with_member(&admin, "team-a", "alice@example.org", alice_role)
            .await;
        let (team_b, bob) = self
            .team_with_member(&admin, "team-b", "bob@example.org", "member")
            .await;
        (admin, (team_a, alice), (team_b, bob))
    }

    pub async fn upload_raw(
        &self,
        team_id: i64,
        token: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> (StatusCode, Value) {
        let req = Request::post(format!("/api/v1/teams/{team_id}/plugins?filename={name}"))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/wasm")
            .body(Body::from(bytes))
            .unwrap();
        let (status, _, body) = self.send(req).await;
        (status, body)
    }
}

pub fn quality_wasm() -> Vec<u8> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("wasm32-wasip2/release/vila2_quality.wasm");
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{} ({e}): run `make components` first", path.display()))
}

pub fn encode(claims: Value, algorithm: jsonwebtoken::Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// Runs each scenario against SQLite and PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let app = super::TestApp::start(super::Backend::Sqlite).await;
                    super::$scenario(&app).await;
                    app.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if super::skip_postgres() {
                        eprintln!("VILA2_TEST_SKIP_POSTGRES=1: skipped");
                        return;
                    }
                    let app = super::TestApp::start(super::Backend::Postgres).await;
                    super::$scenario(&app).await;
                    app.finish().await;
                }
            )*
        }
    };
}
