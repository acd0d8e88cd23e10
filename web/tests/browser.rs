//! End to end in headless Chromium: the portal is served on a loopback port (fresh SQLite
//! file), Debian's chromedriver drives Debian's chromium, and a team member signs in, uploads a
//! WebDataset shard through the dashboard form, browses it, uploads a plugin and tries it on
//! the dataset in the sandbox, and signs out.
//!
//! Each step is one helper taking the [`Session`], run in order by [`steps`].
//!
//! The harness (chromedriver, the served portal, the Chromium session) is `common::browser`.

mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use fantoccini::Locator;

use common::browser::{Browser, Session, WAIT, caught, eventually, report};
use common::*;

/// The team member who signs in.
const MEMBER: &str = "browser@example.org";
const MEMBER_PASSWORD: &str = "member-password";

fn png(width: u32, height: u32, shade: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([x as u8 * 8, y as u8 * 8, shade])
    });
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// The samples of the shard: (key, caption, width, height).
const SAMPLES: [(&str, &str, u32, u32); 3] = [
    ("cat-000", "a red square on a white table", 32, 24),
    ("cat-001", "two blue circles side by side", 20, 20),
    ("cat-002", "a green triangle under a lamp", 16, 30),
];
/// A fourth member pair whose image does not decode: reported, left out.
const BROKEN: &str = "cat-003";

/// A WebDataset shard of [`SAMPLES`] plus [`BROKEN`], written to `dir`.
fn write_shard(dir: &Path) -> Result<PathBuf> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |name: String, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, name, data)
    };
    for (i, (key, caption, w, h)) in SAMPLES.iter().enumerate() {
        add(format!("{key}.png"), &png(*w, *h, 60 * i as u8))?;
        add(format!("{key}.txt"), caption.as_bytes())?;
    }
    add(format!("{BROKEN}.png"), b"not a png at all")?;
    add(format!("{BROKEN}.txt"), b"this one is left out")?;
    let path = dir.join("shapes-000000.tar");
    std::fs::write(&path, builder.into_inner()?)?;
    Ok(path)
}

/// Step: sign in through the login form; lands on the dashboard.
async fn sign_in(s: &Session) -> Result<()> {
    s.browser.goto(&s.url("/")).await?;
    s.wait_for_path("the redirect to /login", |p| p == "/login")
        .await?;
    let find = |css| s.browser.find(Locator::Css(css));
    find("#email").await?.send_keys(MEMBER).await?;
    find("#password").await?.send_keys(MEMBER_PASSWORD).await?;
    find("form[action='/login'] button[type=submit]")
        .await?
        .click()
        .await?;
    s.wait_for_path("the dashboard after signing in", |p| p == "/")
        .await?;
    let nav = s.text("header form span").await?;
    ensure!(
        nav.contains(MEMBER),
        "the header shows {nav:?}, not the member"
    );
    ensure!(
        s.text("main h1").await? == "Your teams",
        "the dashboard's heading is missing"
    );
    Ok(())
}

/// Step: upload the shard through the dashboard's form; lands on the new dataset's page.
/// Returns the dataset page's path.
async fn upload_dataset(s: &Session, name: &str) -> Result<String> {
    let shard = write_shard(&s.files)?;
    let form = format!("form.upload[action='/teams/{}/datasets']", s.team_id);
    let find = |css: String| async move { s.browser.find(Locator::Css(&css)).await };
    find(format!("{form} input[name=name]"))
        .await?
        .send_keys(name)
        .await?;
    find(format!("{form} input[type=file]"))
        .await?
        .send_keys(&shard.display().to_string())
        .await?;
    find(format!("{form} button[type=submit]"))
        .await?
        .click()
        .await?;
    let prefix = format!("/teams/{}/datasets/", s.team_id);
    let path = s
        .wait_for_path("the dataset page after the upload", |p| {
            p.strip_prefix(&prefix)
                .is_some_and(|id| id.parse::<u32>().is_ok())
        })
        .await?;
    ensure!(
        s.text("main h1").await? == name,
        "the dataset page is not titled {name:?}"
    );
    Ok(path)
}

/// The value cell of the summary row headed `th`.
async fn summary(s: &Session, th: &str) -> Result<String> {
    let rows = s
        .browser
        .find_all(Locator::Css("main section.card:first-of-type tr"))
        .await?;
    for row in rows {
        if row.find(Locator::Css("th")).await?.text().await?.trim() == th {
            return Ok(row.find(Locator::Css("td")).await?.text().await?);
        }
    }
    bail!("the dataset page has no {th:?} row")
}

/// Step: on a dataset page, check the counts, that every thumbnail loads and every caption is
/// shown, and that the broken sample is in the validation report.
async fn browse_samples(s: &Session) -> Result<()> {
    ensure!(summary(s, "Samples").await? == SAMPLES.len().to_string());
    ensure!(summary(s, "Invalid samples (left out)").await? == "1");
    let size = summary(s, "Size").await?;
    ensure!(size.ends_with("in 1 shard(s)"), "size row: {size:?}");

    let rows = s
        .browser
        .find_all(Locator::Css("tbody tr:has(img)"))
        .await?;
    ensure!(
        rows.len() == SAMPLES.len(),
        "{} sample rows, expected {}",
        rows.len(),
        SAMPLES.len()
    );
    for (row, (key, caption, w, h)) in rows.iter().zip(SAMPLES) {
        let cells = row.find_all(Locator::Css("td")).await?;
        ensure!(cells.len() == 4, "a sample row has {} cells", cells.len());
        ensure!(cells[1].text().await? == key, "row of {key}: wrong key");
        ensure!(cells[2].is_displayed().await?, "caption of {key} hidden");
        ensure!(
            cells[2].text().await? == caption,
            "row of {key}: caption {:?}",
            cells[2].text().await?
        );
        ensure!(cells[3].text().await? == format!("{w}×{h} png"));

        let img = row.find(Locator::Css("img")).await?;
        let arg = serde_json::to_value(&img)?;
        let natural = eventually(&format!("the thumbnail of {key} to load"), || {
            let arg = arg.clone();
            async move {
                let v = s
                    .browser
                    .execute(
                        "const img = arguments[0]; img.scrollIntoView(); \
                         return img.complete ? [img.naturalWidth, img.naturalHeight] : null;",
                        vec![arg],
                    )
                    .await?;
                Ok(serde_json::from_value::<Option<(u32, u32)>>(v)?)
            }
        })
        .await?;
        // Thumbnails fit 128 px and keep the aspect ratio; 0 means it failed to decode.
        ensure!(
            natural.0 > 0 && natural.1 > 0,
            "thumbnail of {key} did not load (natural size {natural:?})"
        );
        let (tw, th) = natural;
        ensure!(
            (tw as f64 / th as f64 - w as f64 / h as f64).abs() < 0.1,
            "thumbnail of {key} is {tw}x{th}, the image {w}x{h}"
        );
    }

    let report = s
        .browser
        .find(Locator::Css("main section.card:last-of-type"))
        .await?
        .text()
        .await?;
    ensure!(
        report.contains(BROKEN) && report.contains("image"),
        "the validation report does not name {BROKEN}: {report:?}"
    );
    Ok(())
}

/// Step: the dashboard lists the dataset with its sample count.
async fn dashboard_lists(s: &Session, name: &str) -> Result<()> {
    s.browser
        .find(Locator::LinkText("Dashboard"))
        .await?
        .click()
        .await?;
    s.wait_for_path("the dashboard", |p| p == "/").await?;
    let link = s
        .browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::LinkText(name))
        .await?;
    let row = link
        .find(Locator::XPath("ancestor::tr"))
        .await?
        .text()
        .await?;
    ensure!(
        row.starts_with(&format!("{name} {} 1 ", SAMPLES.len())),
        "dashboard row: {row:?}"
    );
    Ok(())
}

/// Step: sign out from the header; the session no longer opens the dashboard.
async fn sign_out(s: &Session) -> Result<()> {
    s.browser
        .find(Locator::Css("header form button[type=submit]"))
        .await?
        .click()
        .await?;
    s.wait_for_path("the login page after signing out", |p| p == "/login")
        .await?;
    s.browser.goto(&s.url("/")).await?;
    s.wait_for_path("the redirect to /login once signed out", |p| p == "/login")
        .await?;
    Ok(())
}

/// The steps, in order. Append new ones (e.g. uploading a plugin) here.
/// Step: upload the first-party quality filter through the plugins page's form, land on its
/// page (name, world, `describe()`'s schema), and try it on the uploaded dataset in the
/// sandbox: one verdict per valid sample.
async fn upload_plugin(s: &Session) -> Result<()> {
    let wasm = common::runs::components_dir().join("vila2_quality.wasm");
    ensure!(
        wasm.is_file(),
        "{} is missing: run `make components` first",
        wasm.display()
    );
    s.browser
        .goto(&s.url(&format!("/teams/{}/plugins", s.team_id)))
        .await?;
    let form = format!("form.upload[action='/teams/{}/plugins']", s.team_id);
    s.browser
        .find(Locator::Css(&format!("{form} input[type=file]")))
        .await?
        .send_keys(&wasm.display().to_string())
        .await?;
    s.browser
        .find(Locator::Css(&format!("{form} button[type=submit]")))
        .await?
        .click()
        .await?;
    let prefix = format!("/teams/{}/plugins/", s.team_id);
    s.wait_for_path("the plugin page after the upload", |p| {
        p.strip_prefix(&prefix)
            .is_some_and(|id| id.parse::<u32>().is_ok())
    })
    .await?;
    let title = s.text("main h1").await?;
    ensure!(
        title.contains("quality"),
        "the plugin page is titled {title:?}"
    );
    let card = s.text("main section.card").await?;
    ensure!(
        card.contains("filter"),
        "the plugin's world is not shown: {card:?}"
    );
    s.browser
        .find(Locator::Css("form[action$='/try'] button[type=submit]"))
        .await?
        .click()
        .await?;
    let rows = eventually("the sandbox trial's results", || async {
        let rows = s.browser.find_all(Locator::Css("#trial tbody tr")).await?;
        Ok((!rows.is_empty()).then_some(rows.len()))
    })
    .await?;
    ensure!(
        rows == SAMPLES.len().min(10),
        "the trial shows {rows} rows, expected {}",
        SAMPLES.len().min(10)
    );
    Ok(())
}

async fn steps(s: &Session) -> Result<()> {
    sign_in(s).await.context("step: sign in")?;
    let name = "browser shapes";
    upload_dataset(s, name)
        .await
        .context("step: upload a dataset")?;
    browse_samples(s).await.context("step: browse samples")?;
    dashboard_lists(s, name)
        .await
        .context("step: dashboard lists the dataset")?;
    upload_plugin(s)
        .await
        .context("step: upload a plugin and try it")?;
    sign_out(s).await.context("step: sign out")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_upload_browse_sign_out() {
    let app = TestApp::start(Backend::Sqlite).await;
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team_id, _) = app
        .team_with_member(&admin, "browsers", MEMBER, "member")
        .await;
    let browser = Browser::start(app.app.clone(), team_id)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let outcome = caught(steps(&browser.session)).await;
    browser.close().await;
    app.finish().await;
    report(outcome);
}
