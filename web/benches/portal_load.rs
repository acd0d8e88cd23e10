//! Portal benchmark (not a test): latency of the dataset listing and sample-browse pages under
//! 64 concurrent connections with a 100k-sample dataset, and server RSS growth during a 2 GB
//! streaming upload.
//!
//! `cargo bench -p vila2-web --bench portal_load` (release). The server runs in this process on
//! its own 2-thread tokio runtime; the load generator (64 keep-alive HTTP/1.1 connections, one
//! worker each) on another. Besides the app's routes it serves one comparison route,
//! `/bench/offset/...`: the same sample page as the API but paginated with SQL `OFFSET`.
//!
//! Environment: `BENCH_REQUESTS` (per scenario, default 4000), `BENCH_SAMPLES` (default
//! 100000), `BENCH_UPLOAD_BYTES` (default 2 GiB; 0 skips the upload), `BENCH_DIR` (where the
//! data directory goes; default the system temp dir), `BENCH_DB_CONNECTIONS` (the database pool;
//! default the portal's).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use serde::Deserialize;
use vila2_web::auth::{AuthUser, SESSION_COOKIE};
use vila2_web::entities::{dataset, dataset_sample, team};
use vila2_web::error::ApiError;
use vila2_web::{AppState, accounts, datasets};

const CONNECTIONS: usize = 64;
const SHARD_SAMPLES: usize = 1000;
const SECRET: &[u8] = b"bench-secret-bench-secret-bench-secret!!";

fn env_u64(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let requests = env_u64("BENCH_REQUESTS", 4000)? as usize;
    let samples = env_u64("BENCH_SAMPLES", 100_000)? as usize;
    let upload_bytes = env_u64("BENCH_UPLOAD_BYTES", 2 << 30)?;
    let dir = match std::env::var_os("BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(base)?,
        None => tempfile::tempdir()?,
    };

    // The server: its own runtime, 2 workers (the cores this machine has).
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let t0 = Instant::now();
    let connections = match std::env::var("BENCH_DB_CONNECTIONS") {
        Ok(_) => Some(env_u64("BENCH_DB_CONNECTIONS", 0)?.max(1) as u32),
        Err(_) => None,
    };
    println!(
        "database pool: {} connections",
        connections.unwrap_or(vila2_web::DEFAULT_DB_CONNECTIONS)
    );
    let seeded = server_rt.block_on(seed(dir.path(), samples, connections))?;
    println!(
        "seeded {samples} samples in {} shards in {:.1} s ({})",
        samples.div_ceil(SHARD_SAMPLES),
        t0.elapsed().as_secs_f64(),
        dir.path().display()
    );
    let addr = server_rt.block_on(serve(seeded.state.clone()))?;
    let base = format!("http://{addr}");

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    client_rt.block_on(async {
        check_routes(addr, &seeded).await?;
        load(addr, &seeded, requests, samples).await?;
        if upload_bytes > 0 {
            upload(addr, &seeded, upload_bytes).await?;
        }
        anyhow::Ok(())
    })?;
    println!("server was {base}; data dir removed");
    Ok(())
}

/// What the seeded database holds.
struct Seeded {
    state: AppState,
    team_id: i32,
    dataset_id: i32,
    /// `vila2_session=<jwt>` of a member of the team.
    cookie: String,
}

/// A tiny distinct PNG per shade.
fn tiny_png(shade: u8) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([shade, x as u8 * 30, y as u8 * 30]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encoding a PNG");
    out
}

/// A migrated SQLite database with a team, a member, 19 small datasets and one of `samples`
/// samples whose shards (real WebDataset tars, 1000 samples each) are in the object store.
async fn seed(data_dir: &Path, samples: usize, connections: Option<u32>) -> Result<Seeded> {
    let options = vila2_web::Options {
        database_url: None,
        bind: "127.0.0.1:0".parse()?,
        data_dir: data_dir.to_path_buf(),
        secure_cookies: false,
        db_connections: connections,
    };
    let state = vila2_web::build_state(&options, SECRET).await?;
    let db = &state.db;
    let team = accounts::create_team(db, "bench").await?;
    let mut active = team.clone().into_active_model();
    active.storage_quota_bytes = Set(64 << 30);
    let team: team::Model = active.update(db).await?;
    let user = accounts::create_user(db, "bench@example.org", "bench-password", false).await?;
    accounts::add_member(db, team.id, &user.email, "member").await?;
    let token = state.sessions.issue(user.id)?;

    let insert_dataset =
        |name: String, count: usize, prefix: String, shards: usize| dataset::ActiveModel {
            team_id: Set(team.id),
            name: Set(name),
            status: Set("ready".into()),
            sample_count: Set(count as i64),
            bytes: Set(0),
            object_key: Set(prefix),
            invalid_count: Set(0),
            shard_count: Set(shards as i32),
            report: Set("[]".into()),
            created_at: Set(chrono::Utc::now()),
            ..Default::default()
        };
    for n in 0..19 {
        insert_dataset(
            format!("small-{n:02}"),
            0,
            format!("datasets/team-{}/small-{n}", team.id),
            0,
        )
        .insert(db)
        .await?;
    }

    let prefix = format!("datasets/team-{}/big", team.id);
    let shard_dir = data_dir.join("objects").join(&prefix);
    std::fs::create_dir_all(&shard_dir)?;
    let pngs: Vec<Vec<u8>> = (0..=255u8).map(tiny_png).collect();
    let shard_count = samples.div_ceil(SHARD_SAMPLES);
    let txn = db.begin().await?;
    let mut row = insert_dataset("big".into(), samples, prefix.clone(), shard_count);
    let mut total_bytes = 0u64;
    let dataset = row.clone().insert(&txn).await?;
    let mut rows = Vec::with_capacity(1000);
    for shard in 0..shard_count {
        let mut builder = tar::Builder::new(Vec::new());
        let mut pos = 0u64;
        for idx in shard * SHARD_SAMPLES..((shard + 1) * SHARD_SAMPLES).min(samples) {
            let key = format!("sample-{idx:07}");
            let png = &pngs[idx % 256];
            let caption = format!("sample {idx}: a small gradient square, shade {}", idx % 256);
            let mut header = tar::Header::new_gnu();
            header.set_size(png.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, format!("{key}.png"), &png[..])?;
            let image_offset = pos + 512;
            pos += 512 + (png.len() as u64).div_ceil(512) * 512;
            let mut header = tar::Header::new_gnu();
            header.set_size(caption.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, format!("{key}.txt"), caption.as_bytes())?;
            pos += 512 + (caption.len() as u64).div_ceil(512) * 512;
            rows.push(dataset_sample::ActiveModel {
                dataset_id: Set(dataset.id),
                idx: Set(idx as i32),
                key: Set(key),
                shard: Set(shard as i32),
                image_ext: Set("png".into()),
                image_offset: Set(image_offset as i64),
                image_size: Set(png.len() as i64),
                width: Set(8),
                height: Set(8),
                caption: Set(caption),
                ..Default::default()
            });
            if rows.len() == 1000 {
                dataset_sample::Entity::insert_many(std::mem::take(&mut rows))
                    .exec(&txn)
                    .await?;
            }
        }
        let tar = builder.into_inner()?;
        total_bytes += tar.len() as u64;
        std::fs::write(shard_dir.join(format!("shard-{shard:06}.tar")), tar)?;
    }
    if !rows.is_empty() {
        dataset_sample::Entity::insert_many(rows).exec(&txn).await?;
    }
    row = dataset.clone().into_active_model();
    row.bytes = Set(total_bytes as i64);
    row.update(&txn).await?;
    txn.commit().await?;
    Ok(Seeded {
        state,
        team_id: team.id,
        dataset_id: dataset.id,
        cookie: format!("{SESSION_COOKIE}={token}"),
    })
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<u64>,
}

/// The comparison: the API's sample page, paginated with `OFFSET` instead of by `idx`.
async fn offset_samples(
    State(state): State<AppState>,
    auth: AuthUser,
    UrlPath((team_id, dataset_id)): UrlPath<(i32, i32)>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Vec<dataset_sample::Model>>, ApiError> {
    accounts::team_access(&state.db, &auth.user, team_id).await?;
    let dataset = datasets::get(&state.db, team_id, dataset_id).await?;
    let page = query.page.unwrap_or(1).max(1);
    let rows = dataset_sample::Entity::find()
        .filter(dataset_sample::Column::DatasetId.eq(dataset.id))
        .order_by_asc(dataset_sample::Column::Idx)
        .offset((page - 1) * datasets::PAGE_SIZE)
        .limit(datasets::PAGE_SIZE)
        .all(&state.db)
        .await?;
    Ok(Json(rows))
}

/// Serves the app (plus the comparison route) on a loopback port of the current runtime.
async fn serve(state: AppState) -> Result<SocketAddr> {
    let app = vila2_web::router(state.clone()).merge(
        axum::Router::new()
            .route("/bench/offset/{team}/{dataset}", get(offset_samples))
            .with_state(state),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    Ok(addr)
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One GET on `sender`; the status and the body's length.
async fn get_once(sender: &mut Sender, path: &str, cookie: &str) -> Result<(u16, usize)> {
    sender.ready().await?;
    let req = hyper::Request::get(path)
        .header("host", "127.0.0.1")
        .header("cookie", cookie)
        .body(Empty::new())?;
    let response = sender.send_request(req).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body.len()))
}

/// Each route answers 200 with what it should (so the timings measure real pages).
async fn check_routes(addr: SocketAddr, s: &Seeded) -> Result<()> {
    let mut c = connect(addr).await?;
    let (t, d) = (s.team_id, s.dataset_id);
    let last = s.state.db.clone();
    let dataset = datasets::get(&last, t, d).await?;
    let late = dataset.sample_count as u64 / datasets::PAGE_SIZE;
    let api = datasets::samples(&last, &dataset, late, datasets::PAGE_SIZE).await?;
    ensure!(api.samples.len() == datasets::PAGE_SIZE as usize);
    ensure!(api.samples[0].idx as u64 == (late - 1) * datasets::PAGE_SIZE);
    for path in [
        "/".to_string(),
        format!("/api/v1/teams/{t}/datasets"),
        format!("/teams/{t}/datasets/{d}?page={late}"),
        format!("/api/v1/teams/{t}/datasets/{d}/samples?page={late}"),
        format!("/bench/offset/{t}/{d}?page={late}"),
        format!(
            "/api/v1/teams/{t}/datasets/{d}/samples/{}/thumbnail",
            dataset.sample_count - 1
        ),
    ] {
        let (status, len) = get_once(&mut c, &path, &s.cookie).await?;
        ensure!(status == 200, "GET {path}: {status}");
        ensure!(len > 100, "GET {path}: only {len} bytes");
    }
    Ok(())
}

/// Latencies of `requests` GETs cycling through `paths` over [`CONNECTIONS`] connections.
async fn run_scenario(
    addr: SocketAddr,
    cookie: &str,
    paths: &[String],
    requests: usize,
) -> Result<(Vec<Duration>, Duration)> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    let start = Instant::now();
    for _ in 0..CONNECTIONS {
        let next = next.clone();
        let paths = paths.to_vec();
        let cookie = cookie.to_string();
        workers.push(tokio::spawn(async move {
            let mut sender = connect(addr).await?;
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= requests {
                    return anyhow::Ok(latencies);
                }
                let path = &paths[n % paths.len()];
                let t = Instant::now();
                let (status, _) = get_once(&mut sender, path, &cookie).await?;
                latencies.push(t.elapsed());
                if status != 200 {
                    bail!("GET {path}: {status}");
                }
            }
        }));
    }
    let mut all = Vec::with_capacity(requests);
    for w in workers {
        all.extend(w.await??);
    }
    let wall = start.elapsed();
    all.sort();
    Ok((all, wall))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn load(addr: SocketAddr, s: &Seeded, requests: usize, samples: usize) -> Result<()> {
    let (t, d) = (s.team_id, s.dataset_id);
    let last = (samples as u64).div_ceil(datasets::PAGE_SIZE);
    let deep = [1, last / 4, last / 2, last * 3 / 4, last];
    let pages = |f: &dyn Fn(u64) -> String| deep.iter().map(|&p| f(p)).collect::<Vec<_>>();
    let scenarios: Vec<(String, Vec<String>)> = vec![
        (
            "listing: dashboard page `/` (20 datasets)".into(),
            vec!["/".into()],
        ),
        (
            "listing: API `GET /teams/{t}/datasets`".into(),
            vec![format!("/api/v1/teams/{t}/datasets")],
        ),
        (
            "browse page, page 1".into(),
            vec![format!("/teams/{t}/datasets/{d}?page=1")],
        ),
        (
            format!("browse page, pages 1..{last} (5 depths)"),
            pages(&|p| format!("/teams/{t}/datasets/{d}?page={p}")),
        ),
        (
            format!("browse page, last page {last}"),
            vec![format!("/teams/{t}/datasets/{d}?page={last}")],
        ),
        (
            format!("API samples keyset (app), last page {last}"),
            vec![format!(
                "/api/v1/teams/{t}/datasets/{d}/samples?page={last}"
            )],
        ),
        (
            format!("API samples OFFSET (alternative), last page {last}"),
            vec![format!("/bench/offset/{t}/{d}?page={last}")],
        ),
        (
            "API samples keyset (app), page 1".into(),
            vec![format!("/api/v1/teams/{t}/datasets/{d}/samples?page=1")],
        ),
        (
            "API samples OFFSET (alternative), page 1".into(),
            vec![format!("/bench/offset/{t}/{d}?page=1")],
        ),
    ];
    println!(
        "\n{CONNECTIONS} connections, {requests} requests per scenario (after {} warm-up)\n",
        requests / 10
    );
    println!("| scenario | p50 ms | p99 ms | max ms | req/s |");
    println!("|---|---:|---:|---:|---:|");
    for (name, paths) in &scenarios {
        run_scenario(addr, &s.cookie, paths, requests / 10).await?;
        let (lat, wall) = run_scenario(addr, &s.cookie, paths, requests).await?;
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.0} |",
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.99)),
            ms(*lat.last().unwrap()),
            lat.len() as f64 / wall.as_secs_f64()
        );
    }
    Ok(())
}

/// Resident memory of this process (server included), from `/proc/self/status`.
fn vm_rss() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS line in /proc/self/status")?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .context("malformed VmRSS line")?
        .parse()?;
    Ok(kb * 1024)
}

/// A noise PNG of about 100 KB (does not compress).
fn noise_png() -> Vec<u8> {
    let mut x = 0x9e37_79b9_u32;
    let img = image::RgbImage::from_fn(184, 184, |_, _| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let [a, b, c, _] = x.to_le_bytes();
        image::Rgb([a, b, c])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encoding a PNG");
    out
}

fn tar_member(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_path(name).expect("short member name");
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut out = Vec::with_capacity(512 + data.len() + 512);
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// POSTs a multipart upload whose `file` is a WebDataset tar of ~100 KB samples, about
/// `total` bytes, generated while it is sent; samples VmRSS meanwhile.
async fn upload(addr: SocketAddr, s: &Seeded, total: u64) -> Result<()> {
    let png = Arc::new(noise_png());
    let per_sample = 512 + png.len().div_ceil(512) * 512 + 1024;
    let count = (total as usize / per_sample).max(1);
    let boundary = "vila2benchboundary7d1f";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nbig upload\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.tar\"\r\n\
         Content-Type: application/x-tar\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let sent = Arc::new(AtomicU64::new(0));
    let stream = {
        let sent = sent.clone();
        futures_util::stream::unfold(0usize, move |i| {
            let png = png.clone();
            let sent = sent.clone();
            let head = head.clone();
            let tail = tail.clone();
            async move {
                let chunk = match i {
                    0 => head.into_bytes(),
                    i if i <= count => {
                        let key = format!("big-{:07}", i - 1);
                        let mut out = tar_member(&format!("{key}.png"), &png);
                        out.extend(tar_member(
                            &format!("{key}.txt"),
                            format!("noise sample number {i}").as_bytes(),
                        ));
                        out
                    }
                    i if i == count + 1 => {
                        let mut out = vec![0u8; 1024];
                        out.extend_from_slice(tail.as_bytes());
                        out
                    }
                    _ => return None,
                };
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Some((
                    Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(chunk))),
                    i + 1,
                ))
            }
        })
    };

    // VmRSS sampled every 20 ms on a thread of its own.
    let baseline = vm_rss()?;
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok(rss) = vm_rss() {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::post(format!("/api/v1/teams/{}/datasets", s.team_id))
        .header("host", "127.0.0.1")
        .header("cookie", &s.cookie)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(StreamBody::new(stream))?;
    let start = Instant::now();
    let response = sender.send_request(req).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let elapsed = start.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("the RSS sampler panicked");
    let after = vm_rss()?;
    let body: serde_json::Value = serde_json::from_slice(&body).with_context(|| {
        format!(
            "upload answered {status}: {}",
            String::from_utf8_lossy(&body)
        )
    })?;
    ensure!(status == 201, "upload answered {status}: {body}");
    ensure!(
        body["sample_count"] == serde_json::json!(count),
        "upload stored {} samples, sent {count}",
        body["sample_count"]
    );
    let sent = sent.load(Ordering::Relaxed);
    let peak = peak.load(Ordering::Relaxed);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "\nupload: {count} samples, {:.0} MiB sent in {:.1} s ({:.0} MiB/s end to end, ingest \
         included); answered {status}, {} samples stored",
        mib(sent),
        elapsed.as_secs_f64(),
        mib(sent) / elapsed.as_secs_f64(),
        body["sample_count"]
    );
    println!(
        "VmRSS: before {:.1} MiB, peak {:.1} MiB, after {:.1} MiB; growth (peak - before) {:.1} MiB",
        mib(baseline),
        mib(peak),
        mib(after),
        mib(peak.saturating_sub(baseline))
    );
    Ok(())
}
