//! Datasets: streaming upload into a temporary file (counted against the team's quota),
//! validation of the archive and of every sample, normalisation into WebDataset shards in the
//! object store, and reading back (samples, images, thumbnails, export).
//!
//! Nothing becomes visible before it is complete: shard objects are written first, then the
//! dataset row and its sample rows in one transaction; any failure before the commit removes
//! what was written.

pub mod archive;
mod shards;

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::Multipart;
use axum::extract::multipart::MultipartError;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::AppState;
use crate::entities::{dataset, dataset_sample, run, team};
use crate::error::ApiError;
use crate::quotas::storage::{self, Reservation};
use archive::{Archive, ArchiveError, Caption};
pub use shards::TAR_TRAILER;

/// Largest upload accepted whatever the quota (8 GiB).
pub const MAX_UPLOAD_BYTES: u64 = 8 << 30;
/// Largest width or height of an image.
pub const MAX_IMAGE_SIDE: u32 = 8192;
/// Longest side of a thumbnail.
pub const THUMBNAIL_SIDE: u32 = 128;
/// Samples per page when browsing, by default and at most.
pub const PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 200;
/// At most this many entries of the per-sample report are kept.
pub const MAX_REPORT_ENTRIES: usize = 10_000;
/// The text fields of an upload form (name, csrf) are at most this long.
const MAX_FIELD_BYTES: usize = 1024;

/// Why one sample was left out of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SampleError {
    pub key: String,
    /// The member (or `metadata.jsonl` line) it came from.
    pub member: String,
    pub error: String,
}

/// An upload received into a temporary file, not yet looked at.
pub struct Received {
    /// Removed when dropped.
    pub file: tempfile::NamedTempFile,
    pub file_name: String,
    pub name: Option<String>,
    pub bytes: u64,
    /// The storage its bytes hold against the team's quota until it is committed or fails.
    pub reservation: Option<Reservation>,
}

/// Bytes of shards `team` keeps, and its quota.
pub async fn storage_used(db: &DatabaseConnection, team_id: i32) -> Result<i64, ApiError> {
    let sizes: Vec<i64> = dataset::Entity::find()
        .select_only()
        .column(dataset::Column::Bytes)
        .filter(dataset::Column::TeamId.eq(team_id))
        .into_tuple()
        .all(db)
        .await?;
    Ok(sizes.into_iter().sum())
}

/// How many bytes `team` may still upload (its quota less its datasets and the uploads in
/// flight).
pub async fn upload_cap(db: &DatabaseConnection, team: &team::Model) -> Result<u64, ApiError> {
    let left = storage::left(db, team).await? as u64;
    Ok(left.min(MAX_UPLOAD_BYTES))
}

fn too_large(team: &team::Model, cap: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "file: the upload is larger than the {cap} bytes team {} may still store (quota {} \
         bytes); delete datasets or ask an admin for a larger quota",
        team.name, team.storage_quota_bytes
    ))
}

fn malformed(e: MultipartError) -> ApiError {
    ApiError::BadRequest(format!(
        "file: malformed or truncated multipart body: {}",
        e.body_text()
    ))
}

/// Checks a form's `csrf` field (page uploads); it must come before the file.
pub type CsrfCheck<'a> = &'a (dyn Fn(&str) -> Result<(), ApiError> + Sync);

/// Streams the multipart form into a temporary file under `tmp_dir`, counting bytes and
/// refusing more than `cap`, and reserving them against the team's storage quota as they
/// arrive (so uploads running together cannot exceed it; released on failure). Fields: `file`
/// (required), `name` (optional), and `csrf` before `file` when `csrf_check` is given (checked
/// before any byte of the file is kept).
pub async fn receive(
    db: &DatabaseConnection,
    multipart: Multipart,
    tmp_dir: &std::path::Path,
    team: &team::Model,
    cap: u64,
    csrf_check: Option<CsrfCheck<'_>>,
) -> Result<Received, ApiError> {
    let mut reservation = Reservation::start(db, team).await?;
    match receive_reserved(&mut reservation, multipart, tmp_dir, team, cap, csrf_check).await {
        Ok(mut received) => {
            received.reservation = Some(reservation);
            Ok(received)
        }
        Err(e) => {
            reservation.release().await;
            Err(e)
        }
    }
}

async fn receive_reserved(
    reservation: &mut Reservation,
    mut multipart: Multipart,
    tmp_dir: &std::path::Path,
    team: &team::Model,
    cap: u64,
    csrf_check: Option<CsrfCheck<'_>>,
) -> Result<Received, ApiError> {
    let mut name = None;
    let mut csrf = None;
    let mut upload: Option<(tempfile::NamedTempFile, String, u64)> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        let field_name = field.name().unwrap_or_default().to_string();
        match field_name.as_str() {
            "file" if upload.is_none() => {
                if let Some(check) = csrf_check {
                    check(csrf.as_deref().unwrap_or_default())?;
                }
                let file_name = field.file_name().unwrap_or("upload.tar").to_string();
                let temp = tempfile::Builder::new()
                    .prefix("upload-")
                    .tempfile_in(tmp_dir)
                    .map_err(|e| ApiError::Internal(format!("creating an upload file: {e}")))?;
                let mut out = tokio::fs::File::from_std(
                    temp.reopen()
                        .map_err(|e| ApiError::Internal(format!("opening upload file: {e}")))?,
                );
                let mut bytes = 0u64;
                while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                    bytes += chunk.len() as u64;
                    if bytes > cap || !reservation.cover(bytes as i64).await? {
                        tracing::info!(team = team.id, cap, "upload refused: over the quota");
                        return Err(too_large(team, cap));
                    }
                    out.write_all(&chunk)
                        .await
                        .map_err(|e| ApiError::Internal(format!("writing upload file: {e}")))?;
                }
                out.flush()
                    .await
                    .map_err(|e| ApiError::Internal(format!("writing upload file: {e}")))?;
                upload = Some((temp, file_name, bytes));
            }
            "name" | "csrf" => {
                let mut value = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                    value.extend_from_slice(&chunk);
                    if value.len() > MAX_FIELD_BYTES {
                        return Err(ApiError::BadRequest(format!(
                            "{field_name}: longer than {MAX_FIELD_BYTES} bytes"
                        )));
                    }
                }
                let value = String::from_utf8(value)
                    .map_err(|_| ApiError::BadRequest(format!("{field_name}: not UTF-8")))?;
                if field_name == "name" {
                    name = Some(value);
                } else if upload.is_none() {
                    csrf = Some(value);
                }
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "{other}: unexpected form field; send `file` and optionally `name`"
                )));
            }
        }
    }
    let Some((file, file_name, bytes)) = upload else {
        return Err(ApiError::BadRequest(
            "file: the multipart form has no \"file\" field".into(),
        ));
    };
    Ok(Received {
        file,
        file_name,
        name,
        bytes,
        reservation: None,
    })
}

/// The dataset name: the given one, else the file name without its extension.
fn dataset_name(received: &Received) -> Result<String, ApiError> {
    let name = match received.name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => {
            let base = received
                .file_name
                .rsplit(['/', '\\'])
                .next()
                .unwrap_or_default();
            base.split('.')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        }
    };
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::BadRequest(
            "name: must be 1 to 100 characters".into(),
        ));
    }
    Ok(name)
}

/// A validated, normalised upload: shard files in a work directory plus the sample rows.
struct Built {
    shards: Vec<PathBuf>,
    samples: Vec<shards::WrittenSample>,
    report: Vec<SampleError>,
    invalid: usize,
    bytes: u64,
}

/// What a valid sample holds.
struct Valid {
    ext: &'static str,
    width: u32,
    height: u32,
    caption: String,
}

/// Checks one sample's contents: the image header decodes as PNG/JPEG/WebP with both sides in
/// 1..=[`MAX_IMAGE_SIDE`], the caption is non-empty UTF-8, the optional JSON parses.
fn validate_sample(image: &[u8], caption: &[u8], json: Option<&[u8]>) -> Result<Valid, String> {
    let reader = image::ImageReader::new(Cursor::new(image))
        .with_guessed_format()
        .map_err(|e| format!("image: {e}"))?;
    let ext = match reader.format() {
        Some(image::ImageFormat::Png) => "png",
        Some(image::ImageFormat::Jpeg) => "jpg",
        Some(image::ImageFormat::WebP) => "webp",
        _ => return Err("image: not a PNG, JPEG or WebP file".into()),
    };
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| format!("image: the header does not decode: {e}"))?;
    if width == 0 || height == 0 || width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(format!(
            "image: {width}x{height} is outside 1..={MAX_IMAGE_SIDE} pixels per side"
        ));
    }
    let caption = std::str::from_utf8(caption).map_err(|e| {
        format!(
            "caption: not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        )
    })?;
    let caption = caption.trim();
    if caption.is_empty() {
        return Err("caption: empty; every sample needs a caption".into());
    }
    if let Some(json) = json {
        serde_json::from_slice::<serde_json::Value>(json)
            .map_err(|e| format!("json: not valid JSON: {e}"))?;
    }
    Ok(Valid {
        ext,
        width,
        height,
        caption: caption.to_string(),
    })
}

/// Reads, validates and normalises the archive at `upload` into shard files under `work`.
/// Blocking: run it on a blocking thread.
/// Stops once the shards exceed `cap` bytes.
fn build(
    upload: &std::path::Path,
    work: &std::path::Path,
    cap: u64,
) -> Result<Built, ArchiveError> {
    let mut archive = Archive::open(upload)?;
    let sources = archive.samples()?;
    let mut writer = shards::ShardWriter::new(work, shards::SHARD_SAMPLES, shards::SHARD_BYTES);
    let mut report = Vec::new();
    let mut invalid = 0usize;
    for source in sources {
        let mut reject = |error: String| {
            invalid += 1;
            if report.len() < MAX_REPORT_ENTRIES {
                report.push(SampleError {
                    key: source.key.clone(),
                    member: source.origin.clone(),
                    error,
                });
            }
        };
        let Some(image_index) = source.image else {
            reject(match source.caption {
                Some(Caption::Text(_)) => {
                    "image: the file named by file_name is not in the archive".into()
                }
                _ => format!("image: missing ({}.png|jpg|jpeg|webp)", source.key),
            });
            continue;
        };
        let caption = match &source.caption {
            Some(Caption::Member(i)) => archive.read(*i)?,
            Some(Caption::Text(Some(text))) => text.clone().into_bytes(),
            Some(Caption::Text(None)) => {
                reject("caption: the metadata.jsonl line has no \"text\" string".into());
                continue;
            }
            None => {
                reject(format!("caption: missing ({}.txt)", source.key));
                continue;
            }
        };
        let image = archive.read(image_index)?;
        let json = source.json.map(|i| archive.read(i)).transpose()?;
        match validate_sample(&image, &caption, json.as_deref()) {
            Ok(valid) => writer.append(
                &source.key,
                valid.ext,
                &image,
                &valid.caption,
                json.as_deref(),
                (valid.width, valid.height),
            )?,
            Err(error) => reject(error),
        }
        if writer.bytes() > cap {
            return Err(ArchiveError::OverQuota { limit: cap });
        }
    }
    let (shards, samples, bytes) = writer.finish()?;
    Ok(Built {
        shards,
        samples,
        report,
        invalid,
        bytes,
    })
}

/// Object key of shard `n` under a dataset's prefix.
pub fn shard_key(prefix: &str, n: i32) -> ObjectPath {
    ObjectPath::from(format!("{prefix}/shard-{n:06}.tar"))
}

/// Validates `received`, writes its shards and commits the dataset of `team`; its storage
/// reservation becomes the dataset's bytes, or is released when this fails.
pub async fn ingest(
    state: &AppState,
    team: &team::Model,
    mut received: Received,
) -> Result<dataset::Model, ApiError> {
    let mut reservation = match received.reservation.take() {
        Some(r) => r,
        None => Reservation::start(&state.db, team).await?,
    };
    match ingest_reserved(state, team, received, &mut reservation).await {
        Ok(row) => {
            reservation.keep();
            Ok(row)
        }
        Err(e) => {
            reservation.release().await;
            Err(e)
        }
    }
}

async fn ingest_reserved(
    state: &AppState,
    team: &team::Model,
    received: Received,
    reservation: &mut Reservation,
) -> Result<dataset::Model, ApiError> {
    state.metrics.uploaded("dataset", received.bytes);
    let name = dataset_name(&received)?;
    if find_by_name(&state.db, team.id, &name).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "name: team {} already has a dataset named {name:?}; choose another name",
            team.name
        )));
    }
    if received.bytes == 0 {
        return Err(ApiError::BadRequest("file: the upload is empty".into()));
    }
    let work = tempfile::Builder::new()
        .prefix("dataset-")
        .tempdir_in(&state.tmp_dir)
        .map_err(|e| ApiError::Internal(format!("creating a work directory: {e}")))?;
    let upload_path = received.file.path().to_path_buf();
    let work_path = work.path().to_path_buf();
    // What is left of the quota, plus what this upload holds already.
    let cap =
        (upload_cap(&state.db, team).await? + reservation.bytes() as u64).min(MAX_UPLOAD_BYTES);
    let built = tokio::task::spawn_blocking(move || build(&upload_path, &work_path, cap))
        .await
        .map_err(|e| ApiError::Internal(format!("dataset validation task: {e}")))?
        .map_err(|e| match e {
            ArchiveError::Io(e) => ApiError::Internal(format!("reading an upload: {e}")),
            e @ ArchiveError::OverQuota { .. } => {
                ApiError::PayloadTooLarge(format!("file: {}: {e}", received.file_name))
            }
            e => ApiError::BadRequest(format!("file: {}: {e}", received.file_name)),
        })?;
    drop(received);
    if built.samples.is_empty() {
        let first: Vec<String> = built
            .report
            .iter()
            .take(3)
            .map(|e| format!("{}: {}", e.member, e.error))
            .collect();
        return Err(ApiError::Unprocessable(format!(
            "file: no valid sample ({} invalid; {})",
            built.invalid,
            first.join("; ")
        )));
    }
    // Hold exactly the shards' bytes (atomically: other uploads may be running).
    if !reservation.resize(built.bytes as i64).await? {
        let cap = upload_cap(&state.db, team).await? + reservation.bytes() as u64;
        return Err(too_large(team, cap));
    }

    let prefix = format!("datasets/team-{}/{}", team.id, crate::auth::random_hex(8));
    let mut written = Vec::new();
    let stored = async {
        for (n, path) in built.shards.iter().enumerate() {
            let key = shard_key(&prefix, n as i32);
            written.push(key.clone());
            put_file(state, &key, path).await?;
        }
        commit(state, team, &name, &prefix, &built).await
    }
    .await;
    match stored {
        Ok(row) => {
            tracing::info!(
                team = team.id,
                dataset = row.id,
                samples = row.sample_count,
                invalid = row.invalid_count,
                bytes = row.bytes,
                "dataset uploaded"
            );
            Ok(row)
        }
        Err(e) => {
            for key in written {
                if let Err(error) = state.store.delete(&key).await {
                    tracing::warn!(%key, %error, "could not remove a shard of a failed upload");
                }
            }
            Err(e)
        }
    }
}

/// Copies a local file into the object store in parts, never whole in memory.
async fn put_file(state: &AppState, key: &ObjectPath, path: &PathBuf) -> Result<(), ApiError> {
    let io = |e: std::io::Error| ApiError::Internal(format!("storing shard {key}: {e}"));
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let mut out = object_store::buffered::BufWriter::new(state.store.clone(), key.clone());
    if let Err(e) = tokio::io::copy(&mut file, &mut out).await {
        let _ = out.abort().await;
        return Err(io(e));
    }
    out.shutdown().await.map_err(io)
}

async fn commit(
    state: &AppState,
    team: &team::Model,
    name: &str,
    prefix: &str,
    built: &Built,
) -> Result<dataset::Model, ApiError> {
    let report = serde_json::to_string(&built.report)
        .map_err(|e| ApiError::Internal(format!("encoding a report: {e}")))?;
    let txn = state.db.begin().await?;
    let row = dataset::ActiveModel {
        team_id: Set(team.id),
        name: Set(name.to_string()),
        status: Set("ready".into()),
        sample_count: Set(built.samples.len() as i64),
        bytes: Set(built.bytes as i64),
        object_key: Set(prefix.to_string()),
        invalid_count: Set(built.invalid as i64),
        shard_count: Set(built.shards.len() as i32),
        report: Set(report),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(|e| match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => ApiError::Conflict(format!(
            "name: team {} already has a dataset named {name:?}; choose another name",
            team.name
        )),
        _ => ApiError::Database(e),
    })?;
    for chunk in built.samples.chunks(500) {
        let rows = chunk.iter().map(|s| dataset_sample::ActiveModel {
            dataset_id: Set(row.id),
            idx: Set(s.idx as i32),
            key: Set(s.key.clone()),
            shard: Set(s.shard as i32),
            image_ext: Set(s.ext.to_string()),
            image_offset: Set(s.image_offset as i64),
            image_size: Set(s.image_size as i64),
            width: Set(s.width as i32),
            height: Set(s.height as i32),
            caption: Set(s.caption.clone()),
            ..Default::default()
        });
        dataset_sample::Entity::insert_many(rows).exec(&txn).await?;
    }
    txn.commit().await?;
    Ok(row)
}

async fn find_by_name(
    db: &DatabaseConnection,
    team_id: i32,
    name: &str,
) -> Result<Option<dataset::Model>, ApiError> {
    Ok(dataset::Entity::find()
        .filter(dataset::Column::TeamId.eq(team_id))
        .filter(dataset::Column::Name.eq(name))
        .one(db)
        .await?)
}

/// The datasets of `team_id`, newest first.
pub async fn list(db: &DatabaseConnection, team_id: i32) -> Result<Vec<dataset::Model>, ApiError> {
    Ok(dataset::Entity::find()
        .filter(dataset::Column::TeamId.eq(team_id))
        .order_by_desc(dataset::Column::Id)
        .all(db)
        .await?)
}

/// Dataset `id` of `team_id`; 404 when it does not exist or belongs to another team.
pub async fn get(
    db: &DatabaseConnection,
    team_id: i32,
    id: i32,
) -> Result<dataset::Model, ApiError> {
    dataset::Entity::find_by_id(id)
        .filter(dataset::Column::TeamId.eq(team_id))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found("dataset", id))
}

/// Deletes `dataset` (its rows, then its shards and thumbnails) and frees its bytes of the
/// team's storage quota. A dataset runs were made from is kept with them (409).
pub async fn delete(state: &AppState, dataset: &dataset::Model) -> Result<(), ApiError> {
    let runs: Vec<i32> = run::Entity::find()
        .select_only()
        .column(run::Column::Id)
        .filter(run::Column::DatasetId.eq(dataset.id))
        .into_tuple()
        .all(&state.db)
        .await?;
    if !runs.is_empty() {
        let ids: Vec<String> = runs.iter().map(|id| id.to_string()).collect();
        return Err(ApiError::Conflict(format!(
            "dataset_id: dataset {} is used by run(s) {}; a dataset runs were made from is kept \
             with them",
            dataset.name,
            ids.join(", ")
        )));
    }
    let txn = state.db.begin().await?;
    dataset_sample::Entity::delete_many()
        .filter(dataset_sample::Column::DatasetId.eq(dataset.id))
        .exec(&txn)
        .await?;
    let deleted = dataset::Entity::delete_by_id(dataset.id).exec(&txn).await?;
    if deleted.rows_affected == 0 {
        return Err(ApiError::not_found("dataset", dataset.id));
    }
    storage::release_bytes(&txn, dataset.team_id, dataset.bytes).await?;
    txn.commit().await?;
    let prefix = ObjectPath::from(dataset.object_key.as_str());
    let keys: Vec<ObjectPath> = state
        .store
        .list(Some(&prefix))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%prefix, %error, "listing the objects of a deleted dataset");
            Vec::new()
        });
    for key in keys {
        if let Err(error) = state.store.delete(&key).await {
            tracing::warn!(%key, %error, "could not remove an object of a deleted dataset");
        }
    }
    tracing::info!(
        team = dataset.team_id,
        dataset = dataset.id,
        bytes = dataset.bytes,
        "dataset deleted"
    );
    Ok(())
}

/// The stored per-sample report of `dataset`.
pub fn report(dataset: &dataset::Model) -> Vec<SampleError> {
    serde_json::from_str(&dataset.report).unwrap_or_default()
}

/// One page of samples.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SamplePage {
    pub total: u64,
    /// From 1.
    pub page: u64,
    pub per_page: u64,
    pub pages: u64,
    pub samples: Vec<dataset_sample::Model>,
}

/// Page `page` (from 1) of `dataset`'s samples, `per_page` (at most [`MAX_PAGE_SIZE`]) each.
pub async fn samples(
    db: &DatabaseConnection,
    dataset: &dataset::Model,
    page: u64,
    per_page: u64,
) -> Result<SamplePage, ApiError> {
    let per_page = per_page.clamp(1, MAX_PAGE_SIZE);
    let page = page.max(1);
    let total = dataset.sample_count.max(0) as u64;
    let samples = dataset_sample::Entity::find()
        .filter(dataset_sample::Column::DatasetId.eq(dataset.id))
        .filter(dataset_sample::Column::Idx.gte(((page - 1) * per_page) as i64))
        .order_by_asc(dataset_sample::Column::Idx)
        .limit(per_page)
        .all(db)
        .await?;
    Ok(SamplePage {
        total,
        page,
        per_page,
        pages: total.div_ceil(per_page),
        samples,
    })
}

/// Sample `idx` of `dataset`; 404 when out of range.
pub async fn sample(
    db: &DatabaseConnection,
    dataset: &dataset::Model,
    idx: i32,
) -> Result<dataset_sample::Model, ApiError> {
    dataset_sample::Entity::find()
        .filter(dataset_sample::Column::DatasetId.eq(dataset.id))
        .filter(dataset_sample::Column::Idx.eq(idx))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found("sample", idx))
}

/// The image bytes of `sample`, read from its shard by range.
pub async fn image(
    state: &AppState,
    dataset: &dataset::Model,
    sample: &dataset_sample::Model,
) -> Result<Bytes, ApiError> {
    let start = sample.image_offset as u64;
    let end = start + sample.image_size as u64;
    Ok(state
        .store
        .get_range(&shard_key(&dataset.object_key, sample.shard), start..end)
        .await?)
}

/// Object key of the cached thumbnail of sample `idx`.
fn thumbnail_key(prefix: &str, idx: i32) -> ObjectPath {
    ObjectPath::from(format!("{prefix}/thumbnails/{idx:08}.png"))
}

/// A PNG of `sample`'s image scaled to fit [`THUMBNAIL_SIDE`]; made on first request and kept
/// in the object store beside the shards.
pub async fn thumbnail(
    state: &AppState,
    dataset: &dataset::Model,
    sample: &dataset_sample::Model,
) -> Result<Bytes, ApiError> {
    let key = thumbnail_key(&dataset.object_key, sample.idx);
    match state.store.get(&key).await {
        Ok(cached) => return Ok(cached.bytes().await?),
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let png = Bytes::from(render_thumbnail(state, dataset, sample).await?);
    if let Err(error) = state.store.put(&key, png.clone().into()).await {
        tracing::warn!(%key, %error, "could not cache a thumbnail");
    }
    Ok(png)
}

async fn render_thumbnail(
    state: &AppState,
    dataset: &dataset::Model,
    sample: &dataset_sample::Model,
) -> Result<Vec<u8>, ApiError> {
    let bytes = image(state, dataset, sample).await?;
    let key = sample.key.clone();
    tokio::task::spawn_blocking(move || {
        let decoded = image::load_from_memory(&bytes)
            .map_err(|e| ApiError::Unprocessable(format!("sample {key}: image: {e}")))?;
        let thumb = decoded.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE);
        let mut png = Vec::new();
        thumb
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| ApiError::Internal(format!("encoding a thumbnail: {e}")))?;
        Ok(png)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("thumbnail task: {e}")))?
}

/// The dataset as one WebDataset tar, streamed shard by shard (each without its end-of-archive
/// blocks, then one trailer).
pub fn export_stream(
    store: Arc<dyn ObjectStore>,
    dataset: &dataset::Model,
) -> impl futures_util::Stream<Item = Result<Bytes, object_store::Error>> + Send + 'static {
    let keys: Vec<ObjectPath> = (0..dataset.shard_count)
        .map(|n| shard_key(&dataset.object_key, n))
        .collect();
    futures_util::stream::iter(keys)
        .then(move |key| {
            let store = store.clone();
            async move {
                let size = store.head(&key).await?.size;
                let options = GetOptions {
                    range: Some(GetRange::Bounded(0..size.saturating_sub(TAR_TRAILER))),
                    ..GetOptions::default()
                };
                Ok::<_, object_store::Error>(store.get_opts(&key, options).await?.into_stream())
            }
        })
        .try_flatten()
        .chain(futures_util::stream::once(async {
            Ok(Bytes::from_static(&[0u8; TAR_TRAILER as usize]))
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn png(side: u32, shade: u8) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(side, side, image::Rgb([shade, 0, 0]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[tokio::test]
    async fn shards_rotate_offsets_hold_and_export_concatenates() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = shards::ShardWriter::new(dir.path(), 2, u64::MAX);
        let images: Vec<Vec<u8>> = (0..5).map(|i| png(3 + i, i as u8 * 40)).collect();
        for (i, image) in images.iter().enumerate() {
            let key = format!("dir/{}{i}", "k".repeat(120)); // needs a GNU long name
            writer
                .append(&key, "png", image, &format!("caption {i}"), None, (1, 1))
                .unwrap();
        }
        let (files, samples, bytes) = writer.finish().unwrap();
        assert_eq!(files.len(), 3);
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut total = 0;
        for (n, file) in files.iter().enumerate() {
            let data = std::fs::read(file).unwrap();
            total += data.len() as u64;
            store
                .put(&shard_key("p", n as i32), data.into())
                .await
                .unwrap();
        }
        assert_eq!(total, bytes);
        for sample in &samples {
            let start = sample.image_offset;
            let got = store
                .get_range(
                    &shard_key("p", sample.shard as i32),
                    start..start + sample.image_size,
                )
                .await
                .unwrap();
            assert_eq!(got.as_ref(), images[sample.idx].as_slice());
        }
        assert_eq!(samples[4].shard, 2);

        let dataset = dataset::Model {
            id: 1,
            team_id: 1,
            name: "d".into(),
            status: "ready".into(),
            sample_count: 5,
            bytes: bytes as i64,
            object_key: "p".into(),
            invalid_count: 0,
            shard_count: 3,
            report: "[]".into(),
            created_at: chrono::Utc::now(),
        };
        let exported: Vec<Bytes> = export_stream(store, &dataset).try_collect().await.unwrap();
        let exported = exported.concat();
        let mut archive = tar::Archive::new(Cursor::new(exported));
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            names.push((entry.path().unwrap().display().to_string(), data));
        }
        assert_eq!(names.len(), 10);
        assert!(names[8].0.ends_with("k4.png"));
        assert_eq!(names[8].1, images[4]);
        assert_eq!(names[9].1, b"caption 4");
    }
}
