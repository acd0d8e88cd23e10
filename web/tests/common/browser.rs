//! The headless-Chromium harness of the browser tests: Debian's chromedriver on a free
//! loopback port, a Chromium session against the portal served in-process, and the waiting
//! helpers every step uses.
//!
//! chromedriver comes from `scripts/setup.sh`; without it a browser test fails (in CI and
//! outside), saying so. `VILA2_CHROMEDRIVER` / `VILA2_CHROMIUM` point at other binaries.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use axum::Router;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// How long any one wait in the browser may take (2 shared cores, a cold Chromium).
pub const WAIT: Duration = Duration::from_secs(60);

/// A chromedriver child process on a free loopback port, killed (with the browsers it
/// started: its process group) when dropped.
pub struct Chromedriver {
    child: Child,
    pub url: String,
}

impl Chromedriver {
    pub fn start(log_dir: &Path) -> Result<Chromedriver> {
        let binary = std::env::var_os("VILA2_CHROMEDRIVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
        if !binary.is_file() {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            bail!(
                "chromedriver not found at {}: the browser test needs Debian's chromium and \
                 chromium-driver, which scripts/setup.sh installs (apt-get install chromium \
                 chromium-driver){}",
                binary.display(),
                if ci {
                    "; CI=true: the CI image must run scripts/setup.sh"
                } else {
                    ""
                }
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
    pub async fn wait_ready(&mut self) -> Result<()> {
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
        // The whole group: chromedriver and the chromium processes it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A GET over plain HTTP on loopback, body as text.
pub async fn http_get(url: &str) -> Result<String> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = client.get(url.parse()?).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Capabilities for headless Chromium: no sandbox (containers run as root), nothing fetched
/// from the network besides the portal.
pub fn capabilities(profile: &Path) -> serde_json::Map<String, Value> {
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

/// What every step works with: the browser, the portal's base URL, the member's team.
pub struct Session {
    pub browser: Client,
    pub base: String,
    pub team_id: i64,
    pub files: PathBuf,
}

impl Session {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn path(&self) -> Result<String> {
        Ok(self.browser.current_url().await?.path().to_string())
    }

    /// Waits until the browser's path satisfies `ok`.
    pub async fn wait_for_path(&self, what: &str, ok: impl Fn(&str) -> bool) -> Result<String> {
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

    /// The trimmed text of the first element `css` selects, waiting for it to appear. A page
    /// that reloads between finding the element and reading it (the run page does once, when
    /// its run ends) leaves a stale element: it is found again on the new page.
    pub async fn text(&self, css: &str) -> Result<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let at = self.path().await?;
            let element = self
                .browser
                .wait()
                .at_most(WAIT)
                .for_element(Locator::Css(css))
                .await
                .with_context(|| format!("no element {css:?} on {at}"))?;
            match element.text().await {
                Ok(text) => return Ok(text.trim().to_string()),
                Err(e) if e.is_stale_element_reference() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("reading the text of {css:?} on {at}"));
                }
            }
        }
    }
}

/// Polls `check` until it yields `Some`, at most [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        ensure!(Instant::now() < deadline, "waited {WAIT:?} for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How a test's steps ended: their result, or the panic they raised.
pub type Outcome = std::thread::Result<Result<()>>;

/// Runs `steps` to their end, catching a panic, so the test can shut down before [`report`].
pub async fn caught(steps: impl Future<Output = Result<()>>) -> Outcome {
    futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(steps)).await
}

/// Fails the test as its steps did: with the error's context chain, or the panic again.
pub fn report(outcome: Outcome) {
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("browser test failed: {e:#}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// A browser session on a portal (served here on a loopback port, or already running), for a
/// member of team `team_id`; [`Browser::close`] ends it.
pub struct Browser {
    pub session: Session,
    driver: Chromedriver,
    /// The in-process portal ([`Browser::start`]); none for [`Browser::attach`].
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _files: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver, serves `router` and opens a headless Chromium session.
    pub async fn start(router: Router, team_id: i64) -> Result<Browser> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        Browser::open(base, team_id, Some(server)).await
    }

    /// Starts chromedriver and opens a headless Chromium session on a portal already
    /// running at `base` (e.g. `http://127.0.0.1:8080`, the one `make run` serves).
    pub async fn attach(base: String, team_id: i64) -> Result<Browser> {
        Browser::open(base, team_id, None).await
    }

    async fn open(
        base: String,
        team_id: i64,
        server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    ) -> Result<Browser> {
        let files = tempfile::tempdir()?;
        let mut driver = Chromedriver::start(files.path())?;
        driver.wait_ready().await?;
        let profile = files.path().join("profile");
        let browser = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities(&profile))
            .connect(&driver.url)
            .await
            .context("starting a headless Chromium session")?;
        Ok(Browser {
            session: Session {
                browser,
                base,
                team_id,
                files: files.path().to_path_buf(),
            },
            driver,
            server,
            _files: files,
        })
    }

    /// Closes the browser, chromedriver and the server.
    pub async fn close(self) {
        let Browser {
            session,
            driver,
            server,
            ..
        } = self;
        let _ = session.browser.close().await;
        drop(driver);
        if let Some(server) = server {
            server.abort();
        }
    }
}
