//! End to end in headless Chromium: a team member signs in, starts a run on a tiny ShapesWorld
//! dataset from the dashboard's form (the tiny preset, one self-augmented round), watches the
//! run page's live progress reach done, sees the report and the side-by-side captions, and
//! downloads the augmented dataset from the page's link, whose shards must parse as
//! WebDataset with the captions the page shows, then judges three caption pairs blind on the
//! run's judging page and sees the report count the votes.

mod common;

use std::collections::HashMap;
use std::io::Cursor;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use fantoccini::Locator;

use common::browser::{Browser, Session, WAIT, caught, eventually, report};
use common::runs::{DATASET_SAMPLES, dataset, tiny};
use common::*;

/// The team member who signs in.
const MEMBER: &str = "runner@example.org";

/// How long the tiny run may take in the browser test.
const RUN_WAIT: Duration = Duration::from_secs(300);

/// Step: sign in through the login form; lands on the dashboard.
async fn sign_in(s: &Session, email: &str, password: &str) -> Result<()> {
    s.browser.goto(&s.url("/login")).await?;
    let find = |css| s.browser.find(Locator::Css(css));
    find("#email").await?.send_keys(email).await?;
    find("#password").await?.send_keys(password).await?;
    find("form[action='/login'] button[type=submit]")
        .await?
        .click()
        .await?;
    s.wait_for_path("the dashboard after signing in", |p| p == "/")
        .await?;
    Ok(())
}

/// Step: start a one-round run from the dashboard's form; lands on the run's page. Returns
/// its path.
async fn start_run(s: &Session) -> Result<String> {
    let form = format!("form.new-run[action='/teams/{}/runs']", s.team_id);
    let rounds = s
        .browser
        .find(Locator::Css(&format!("{form} input[name=rounds]")))
        .await
        .context("the dashboard has no new-run form")?;
    rounds.clear().await?;
    rounds.send_keys("1").await?;
    s.browser
        .find(Locator::Css(&format!("{form} button[type=submit]")))
        .await?
        .click()
        .await?;
    let prefix = format!("/teams/{}/runs/", s.team_id);
    s.wait_for_path("the run page after submitting", |p| {
        p.strip_prefix(&prefix)
            .is_some_and(|id| id.parse::<u32>().is_ok())
    })
    .await
}

/// Step: the live page reaches done: the status says succeeded, the bar is full, the log
/// says so, the loss curve has points, and the page (reloaded at the end) shows the report.
async fn watch_progress(s: &Session) -> Result<()> {
    let deadline = Instant::now() + RUN_WAIT;
    let mut seen_running = false;
    loop {
        let status = s.text("#status").await?;
        seen_running |= status == "running" || status == "queued";
        if status == "succeeded" && s.browser.find(Locator::Id("download-all")).await.is_ok() {
            break;
        }
        ensure!(
            status != "failed" && status != "cancelled",
            "the run ended {status}: {}",
            s.text("#summary").await.unwrap_or_default()
        );
        ensure!(
            Instant::now() < deadline,
            "waited {RUN_WAIT:?} for the run to succeed; status {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let bar = s
        .browser
        .execute("return document.getElementById('bar').value;", vec![])
        .await?;
    ensure!(bar.as_f64() == Some(100.0), "the progress bar is at {bar}");
    // The reloaded page's event stream: its snapshot fills the log and the loss curve.
    let log = eventually("the log to say the run succeeded", || async {
        let log = s.text("#log").await?;
        Ok(log.contains("run succeeded").then_some(log))
    })
    .await?;
    ensure!(log.contains("round-1/eval: started"), "the log: {log:?}");
    let points = s
        .browser
        .find(Locator::Id("loss-line"))
        .await?
        .attr("points")
        .await?
        .unwrap_or_default();
    ensure!(!points.is_empty(), "the loss curve has no points");
    let rows = s
        .browser
        .find_all(Locator::Css("#report tr.round-row"))
        .await?;
    ensure!(rows.len() == 2, "{} report rows, expected 2", rows.len());
    let plots = s
        .browser
        .find_all(Locator::Css("#report svg.chart"))
        .await?;
    ensure!(plots.len() == 3, "{} plots", plots.len());
    ensure!(seen_running, "the page never showed the run before its end");
    Ok(())
}

/// The side-by-side table: key → augmented caption.
async fn shown_captions(s: &Session) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for row in s
        .browser
        .find_all(Locator::Css("#side-by-side tr.sample"))
        .await?
    {
        let key = row.find(Locator::Css("code")).await?.text().await?;
        let augmented = row.find(Locator::Css("td.augmented")).await?.text().await?;
        let caption = augmented.lines().next().unwrap_or_default().to_string();
        out.insert(key, caption);
    }
    Ok(out)
}

/// Step: download the augmented dataset through the page's link (fetched by the page, with
/// its session) and check its shards against the captions on the page.
async fn download(s: &Session, samples: usize) -> Result<()> {
    let shown = shown_captions(s).await?;
    let on_first_page = samples.min(vila2_web::runs::samples::PAGE_SIZE as usize);
    ensure!(
        shown.len() == on_first_page,
        "{} samples shown, expected {on_first_page}",
        shown.len()
    );
    let bytes = s
        .browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const href = document.getElementById('download-all').getAttribute('href');
             fetch(href).then(r => r.ok ? r.arrayBuffer() : Promise.reject(r.status))
               .then(b => done(Array.from(new Uint8Array(b))), e => done('failed: ' + e));",
            vec![],
        )
        .await?;
    let bytes: Vec<u8> =
        serde_json::from_value(bytes.clone()).with_context(|| format!("the download: {bytes}"))?;
    let dir = tempfile::tempdir()?;
    tar::Archive::new(Cursor::new(bytes)).unpack(dir.path())?;
    let run_dir = std::fs::read_dir(dir.path())?
        .next()
        .context("an empty download")??
        .path();
    let mut shards: Vec<_> = std::fs::read_dir(&run_dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    shards.retain(|p| p.extension().is_some_and(|e| e == "tar"));
    shards.sort();
    ensure!(!shards.is_empty(), "no shard in the download");
    let mut seen = 0;
    for shard in &shards {
        ensure!(
            shard.with_extension("parquet").is_file(),
            "no Parquet provenance beside {}",
            shard.display()
        );
        for sample in vila2_host::data::webdataset::read_shard(shard)? {
            seen += 1;
            let caption = sample.text("txt").context("a sample without caption")?;
            ensure!(
                sample.members.contains_key("json"),
                "{}: no provenance",
                sample.key
            );
            if let Some(on_page) = shown.get(&sample.key) {
                ensure!(
                    caption.trim() == on_page.trim(),
                    "{}: the shard says {caption:?}, the page {on_page:?}",
                    sample.key
                );
            }
        }
    }
    ensure!(
        seen == samples,
        "{seen} samples in the shards, expected {samples}"
    );
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
        // The vote reloads the same path, so the path cannot tell the new page from the old
        // one (read while it unloads, the old one's elements go stale): wait for the new
        // page's progress line instead.
        let want = format!("Judged {} of", i + 1);
        let deadline = Instant::now() + WAIT;
        loop {
            match s.text("p.progress").await {
                Ok(p) if p.starts_with(&want) => break,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                other => bail!("progress after {} votes: {other:?}", i + 1),
            }
        }
        let revealed = s.text("section.revealed").await?;
        ensure!(
            revealed.contains("Caption A was") && revealed.contains("round"),
            "the vote's answer does not reveal the sources: {revealed:?}"
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

/// Every step after signing in: start, watch, download, judge.
async fn run_steps(s: &Session, samples: usize) -> Result<()> {
    let run = start_run(s).await.context("step: start a run")?;
    watch_progress(s).await.context("step: watch the run")?;
    download(s, samples)
        .await
        .context("step: download the result")?;
    let judging = format!("{run}/judging");
    s.browser
        .find(Locator::Id("judge-link"))
        .await
        .context("the run page has no judging link")?
        .click()
        .await?;
    s.wait_for_path("the judging page", |p| p == judging)
        .await?;
    judge(s, &judging, 3)
        .await
        .context("step: judge three items")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_watch_and_download_a_run() {
    let app = TestApp::start(Backend::Sqlite).await;
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team_id, token) = app
        .team_with_member(&admin, "runners", MEMBER, "member")
        .await;
    let (router, state) = tiny(&app);
    dataset(&router, team_id, &token).await;
    let worker = vila2_web::runs::worker::spawn(state);
    let browser = Browser::start(router, team_id)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let steps = async {
        let s = &browser.session;
        sign_in(s, MEMBER, "member-password")
            .await
            .context("step: sign in")?;
        run_steps(s, DATASET_SAMPLES).await
    };
    let outcome = caught(steps).await;
    browser.close().await;
    worker.abort();
    let _ = worker.await;
    app.finish().await;
    report(outcome);
}

/// The README's run command checked in a browser: against the portal `make run` serves (start
/// it first; `scripts/check-make-run.sh` does both), the admin it created signs in with the
/// password it stored, starts a one-round run of the tiny loop on the demo team's ShapesWorld
/// dataset, watches it to done, downloads and checks the shards, and judges three pairs.
/// `VILA2_PORTAL` is the portal's URL, `VILA2_PORTAL_DATA` its data folder (for
/// `admin-password`); ignored unless asked for (`--ignored`), as it needs that portal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the portal of `make run`: scripts/check-make-run.sh"]
async fn make_run_portal_end_to_end() {
    let base = std::env::var("VILA2_PORTAL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let data = std::env::var("VILA2_PORTAL_DATA")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../vila2-data").to_string());
    let password = std::fs::read_to_string(format!("{data}/admin-password"))
        .unwrap_or_else(|e| panic!("{data}/admin-password (made by `make run`): {e}"));
    let mut browser = Browser::attach(base, 0)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let steps = async {
        sign_in(&browser.session, "admin@localhost", password.trim())
            .await
            .context("step: sign in as the admin `make run` made")?;
        // The demo team `make run` seeded, from its new-run form.
        let action = browser
            .session
            .browser
            .find(Locator::Css("form.new-run"))
            .await
            .context("the dashboard has no new-run form (no team?)")?
            .attr("action")
            .await?
            .unwrap_or_default();
        browser.session.team_id = action
            .strip_prefix("/teams/")
            .and_then(|rest| rest.strip_suffix("/runs"))
            .and_then(|id| id.parse().ok())
            .with_context(|| format!("new-run form action {action:?}"))?;
        run_steps(&browser.session, vila2_web::demo::DEMO_SAMPLES).await
    };
    let outcome = caught(steps).await;
    browser.close().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("browser check of `make run` failed: {e:#}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
