//! End to end in headless Chromium: a tiny run with one self-augmentation round is taken to its
//! end by the worker, then a team member signs in, opens the run's judging page, votes a few
//! times with the buttons and sees the judging report's vote count go up.
//!
//! chromedriver comes from `scripts/setup.sh` (see browser.rs); `VILA2_CHROMEDRIVER` /
//! `VILA2_CHROMIUM` point at other binaries.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{Request, StatusCode};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tower::ServiceExt;
use vila2_web::runs::worker::{self, Outcome};
use vila2_web::runs::{RunPreset, RunSettings};

use common::*;

/// How long any one wait in the browser may take (2 shared cores, a cold Chromium).
const WAIT: Duration = Duration::from_secs(60);

/// The team member who signs in and judges.
const MEMBER: &str = "judge@example.org";
const MEMBER_PASSWORD: &str = "member-password";

// TODO(lead): use common::browser after merge (Chromedriver, free_port, http_get,
// capabilities and Session are copies of web/tests/browser.rs).

/// A chromedriver child process on a free loopback port, killed (with the browsers it
/// started: its process group) when dropped.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    fn start(log_dir: &Path) -> Result<Chromedriver> {
        let binary = std::env::var_os("VILA2_CHROMEDRIVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
        if !binary.is_file() {
            bail!(
                "chromedriver not found at {}: the browser test needs Debian's chromium and \
                 chromium-driver, which scripts/setup.sh installs (apt-get install chromium \
                 chromium-driver)",
                binary.display(),
            );
        }
        let port = free_port()?;
        let log = std::fs::File::create(log_dir.join("chromedriver.log"))?;
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(&binary)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .process_group(0)
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?
        };
        Ok(Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// Polls `/status` until chromedriver answers ready.
    async fn wait_ready(&mut self) -> Result<()> {
        let status_url = format!("{}/status", self.url);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(exit) = self.child.try_wait()? {
                bail!("chromedriver exited at start ({exit}); see chromedriver.log");
            }
            if let Ok(body) = http_get(&status_url).await
                && serde_json::from_str::<Value>(&body)
                    .is_ok_and(|v| v["value"]["ready"] == json!(true))
            {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "chromedriver did not answer {status_url} within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A GET over plain HTTP on loopback, body as text.
async fn http_get(url: &str) -> Result<String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = client.get(url.parse()?).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Capabilities for headless Chromium: no sandbox, nothing fetched besides the portal.
fn capabilities(profile: &Path) -> serde_json::Map<String, Value> {
    let chromium = std::env::var("VILA2_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--window-size=1280,1600",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    caps.as_object().unwrap().clone()
}

/// The browser and the portal's base URL.
struct Session {
    browser: Client,
    base: String,
}

impl Session {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn path(&self) -> Result<String> {
        Ok(self.browser.current_url().await?.path().to_string())
    }

    async fn wait_for_path(&self, what: &str, ok: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let path = self.path().await?;
            if ok(&path) {
                return Ok(path);
            }
            ensure!(
                Instant::now() < deadline,
                "waited {WAIT:?} for {what}; the browser is at {path}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, css: &str) -> Result<String> {
        let at = self.path().await?;
        let element = self
            .browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("no element {css:?} on {at}"))?;
        Ok(element.text().await?.trim().to_string())
    }
}

/// Step: sign in through the login form; lands on the dashboard.
async fn sign_in(s: &Session) -> Result<()> {
    s.browser.goto(&s.url("/login")).await?;
    let find = |css| s.browser.find(Locator::Css(css));
    find("#email").await?.send_keys(MEMBER).await?;
    find("#password").await?.send_keys(MEMBER_PASSWORD).await?;
    find("form[action='/login'] button[type=submit]")
        .await?
        .click()
        .await?;
    s.wait_for_path("the dashboard after signing in", |p| p == "/")
        .await?;
    Ok(())
}

/// The vote count the judging report page shows.
async fn report_votes(s: &Session, judging: &str) -> Result<u64> {
    s.browser.goto(&s.url(&format!("{judging}/report"))).await?;
    let votes = s.text("#judging-report .votes").await?;
    votes
        .parse()
        .with_context(|| format!("the report shows {votes:?} votes"))
}

/// Step: open the judging page of the finished run, vote `n` times with the three buttons
/// (the image loads, two captions are shown, the previous item's sources are revealed after
/// each vote), and see the report's vote count go up by `n`.
async fn judge(s: &Session, judging: &str, n: usize) -> Result<()> {
    let before = report_votes(s, judging).await?;
    s.browser.goto(&s.url(judging)).await?;
    let buttons = ["left", "right", "same"];
    let mut seen = Vec::new();
    for i in 0..n {
        let item = s
            .browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("section.judging-item"))
            .await
            .context("no item to judge")?;
        let id = item.attr("data-item").await?.unwrap_or_default();
        ensure!(!seen.contains(&id), "item {id} shown again after a vote");
        seen.push(id.clone());
        let a = s.text(".caption-a").await?;
        let b = s.text(".caption-b").await?;
        ensure!(!a.is_empty() && !b.is_empty(), "item {id}: empty caption");
        let main = s.text("main").await?.to_lowercase();
        if i == 0 {
            ensure!(
                !main.contains("round 1") && !main.contains("original caption"),
                "the page reveals a source before the vote: {main}"
            );
        }
        let img = s
            .browser
            .find(Locator::Css("section.judging-item img"))
            .await?;
        let arg = serde_json::to_value(&img)?;
        let deadline = Instant::now() + WAIT;
        loop {
            let w = s
                .browser
                .execute(
                    "const i = arguments[0]; return i.complete ? i.naturalWidth : -1;",
                    vec![arg.clone()],
                )
                .await?;
            match w.as_i64() {
                Some(w) if w > 0 => break,
                Some(0) => bail!("the image of item {id} did not load"),
                _ => {}
            }
            ensure!(
                Instant::now() < deadline,
                "the image of item {id} never loaded"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let choice = buttons[i % buttons.len()];
        s.browser
            .find(Locator::Css(&format!("form.vote button[value={choice}]")))
            .await?
            .click()
            .await?;
        s.wait_for_path("the judging page after a vote", |p| p == judging)
            .await?;
        let revealed = s.text("section.revealed").await?;
        ensure!(
            revealed.contains("Caption A was") && revealed.contains("round"),
            "the vote's answer does not reveal the sources: {revealed:?}"
        );
        let progress = s.text("p.progress").await?;
        ensure!(
            progress.starts_with(&format!("Judged {} of", i + 1)),
            "progress after {} votes: {progress:?}",
            i + 1
        );
    }
    let after = report_votes(s, judging).await?;
    ensure!(
        after == before + n as u64,
        "the report shows {after} votes, expected {before} + {n}"
    );
    let table = s.text("#judging-report table").await?;
    ensure!(
        table.contains("original vs round 1"),
        "the report has no pair row: {table:?}"
    );
    Ok(())
}

/// A finished tiny run (one round) of a fresh team with [`MEMBER`]: (team id, run id).
async fn finished_run(
    app: &TestApp,
    router: &axum::Router,
    state: &vila2_web::AppState,
) -> (i64, i64) {
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team, token) = app
        .team_with_member(&admin, "judges", MEMBER, "member")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let shapes = vila2_host::data::shapes::ShapesConfig {
        seed: 7,
        pretrain: 8,
        sft: 1,
        specialist: 1,
        eval: 1,
        ..Default::default()
    };
    vila2_host::data::shapes::generate(&dir.path().join("w"), &shapes).unwrap();
    let shard = vila2_host::data::list_shards(&dir.path().join("w/pretrain")).unwrap()[0].clone();
    let boundary = "XBROWSERJUDGINGX";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"shapes.tar\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&std::fs::read(&shard).unwrap());
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let post = |uri: String, content_type: String, body: Vec<u8>| {
        let router = router.clone();
        let token = token.clone();
        async move {
            let req = Request::post(uri)
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .header(CONTENT_TYPE, content_type)
                .body(Body::from(body))
                .unwrap();
            let response = router.oneshot(req).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };
    let (status, ds) = post(
        format!("/api/v1/teams/{team}/datasets"),
        format!("multipart/form-data; boundary={boundary}"),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ds}");
    let (status, run) = post(
        format!("/api/v1/teams/{team}/runs"),
        "application/json".into(),
        json!({"dataset_id": ds["id"], "rounds": 1})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let (id, outcome) = worker::run_next(state)
        .await
        .unwrap()
        .expect("the queued run");
    assert_eq!(outcome, Outcome::Succeeded);
    assert_eq!(id as i64, run["id"].as_i64().unwrap());
    (team, id as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_judge_a_run_and_see_the_report() {
    let files = tempfile::tempdir().unwrap();
    let mut driver = Chromedriver::start(files.path()).unwrap_or_else(|e| panic!("{e:#}"));

    let app = TestApp::start(Backend::Sqlite).await;
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let mut state = app.state.clone();
    state.runs = Arc::new(RunSettings {
        runs_dir: app.dir.path().join("runs"),
        components_dir: Some(target.join("wasm32-wasip2/release")),
        preset: RunPreset::tiny(),
        threads: Some(1),
    });
    let router = vila2_web::router(state.clone());
    let (team, run) = finished_run(&app, &router, &state).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let served = router.clone();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            served.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    driver
        .wait_ready()
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let browser = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities(&files.path().join("profile")))
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("starting a headless Chromium session: {e}"));
    let session = Session { browser, base };
    let judging = format!("/teams/{team}/runs/{run}/judging");
    let outcome = std::panic::AssertUnwindSafe(async {
        sign_in(&session).await.context("step: sign in")?;
        judge(&session, &judging, 3)
            .await
            .context("step: judge three items")
    })
    .catch_unwind()
    .await;
    let Session { browser, .. } = session;
    let _ = browser.close().await;
    drop(driver);
    server.abort();
    app.finish().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("browser test failed: {e:#}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
