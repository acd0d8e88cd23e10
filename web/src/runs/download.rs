//! Downloads of a finished run's augmented dataset: its WebDataset shards and Parquet
//! provenance files one by one, or all of them in one tar, streamed from disk.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::io::AsyncReadExt;
use vila2_host::pipeline::report::RunReport;

use super::{RunSettings, run_dir};
use crate::entities::run;
use crate::error::ApiError;

/// Bytes read from disk per chunk.
const CHUNK: usize = 64 * 1024;

/// A file of the augmented dataset.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DataFile {
    /// File name (`shard-000000.tar`, `shard-000000.parquet`).
    pub name: String,
    /// `shard` (WebDataset tar) or `parquet` (provenance table).
    pub kind: String,
    pub bytes: u64,
}

/// The run's report (`out/report.json`), once the run has succeeded; a 409 before.
pub fn report(settings: &RunSettings, row: &run::Model) -> Result<RunReport, ApiError> {
    if row.status != run::SUCCEEDED {
        return Err(ApiError::Conflict(format!(
            "run {} is {}: its augmented dataset is ready once it has succeeded",
            row.id, row.status
        )));
    }
    let path = run_dir(settings, row.id).join("out/report.json");
    let bytes = std::fs::read(&path)
        .map_err(|e| ApiError::Internal(format!("reading {}: {e}", path.display())))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::Internal(format!("parsing {}: {e}", path.display())))
}

/// The folder of the run's augmented dataset (inside the run's folder).
pub fn augmented_dir(settings: &RunSettings, row: &run::Model) -> Result<PathBuf, ApiError> {
    let report = report(settings, row)?;
    let base = run_dir(settings, row.id);
    let canon = |p: &Path| {
        p.canonicalize()
            .map_err(|e| ApiError::Internal(format!("run {}: {}: {e}", row.id, p.display())))
    };
    let dir = canon(&base.join(&report.final_data))?;
    if !dir.starts_with(canon(&base)?) {
        return Err(ApiError::Internal(format!(
            "run {}: its final data {} is outside the run's folder",
            row.id,
            dir.display()
        )));
    }
    Ok(dir)
}

/// The shards and Parquet files of `dir`, sorted by name.
pub fn files(dir: &Path) -> Result<Vec<DataFile>, ApiError> {
    let io = |e: std::io::Error| ApiError::Internal(format!("listing {}: {e}", dir.display()));
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = match Path::new(&name).extension().and_then(|e| e.to_str()) {
            Some("tar") => "shard",
            Some("parquet") => "parquet",
            _ => continue,
        };
        if name.starts_with('.') || !entry.file_type().map_err(io)?.is_file() {
            continue;
        }
        out.push(DataFile {
            bytes: entry.metadata().map_err(io)?.len(),
            name,
            kind: kind.into(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The file `name` of the listing (404 for any other name).
pub fn find(dir: &Path, name: &str) -> Result<(DataFile, PathBuf), ApiError> {
    let file = files(dir)?
        .into_iter()
        .find(|f| f.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("file `{name}` is not in the run's dataset")))?;
    let path = dir.join(&file.name);
    Ok((file, path))
}

/// The first `len` bytes of the file at `path`, in chunks.
pub fn file_stream(
    path: PathBuf,
    len: u64,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures_util::stream::once(tokio::fs::File::open(path))
        .map_ok(move |file| {
            futures_util::stream::try_unfold((file, len), |(mut file, left)| async move {
                if left == 0 {
                    return Ok(None);
                }
                let mut buf = vec![0u8; CHUNK.min(left as usize)];
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file shrank while it was sent",
                    ));
                }
                buf.truncate(n);
                Ok(Some((Bytes::from(buf), (file, left - n as u64))))
            })
        })
        .try_flatten()
}

/// The tar header of a member `name` of `size` bytes.
fn header(name: &str, size: u64) -> Result<Bytes, ApiError> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)
        .map_err(|e| ApiError::Internal(format!("tar header of {name}: {e}")))?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(Bytes::copy_from_slice(h.as_bytes()))
}

/// One tar of every file of `dir` (under the folder `prefix/`), streamed file by file.
pub fn tar_stream(
    dir: &Path,
    prefix: &str,
) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static, ApiError> {
    let mut parts = Vec::new();
    for f in files(dir)? {
        let head = header(&format!("{prefix}/{}", f.name), f.bytes)?;
        let pad = (512 - f.bytes % 512) % 512;
        parts.push((head, dir.join(&f.name), f.bytes, pad as usize));
    }
    let body = futures_util::stream::iter(parts).flat_map(|(head, path, len, pad)| {
        futures_util::stream::once(async move { Ok(head) })
            .chain(file_stream(path, len))
            .chain(futures_util::stream::once(async move {
                Ok(Bytes::from(vec![0u8; pad]))
            }))
    });
    Ok(body.chain(futures_util::stream::once(async {
        Ok(Bytes::from_static(&[0u8; 1024]))
    })))
}
