//! Side-by-side view of a finished run's augmented dataset: each sample's original caption
//! next to its augmented one (from the provenance each sample carries), and its image.

use std::io::Cursor;
use std::ops::ControlFlow;
use std::path::Path;

use serde::Serialize;
use vila2_host::data::webdataset::{list_shards, visit_shard};
use vila2_host::pipeline::provenance::Provenance;

use crate::error::ApiError;

/// Samples per page.
pub const PAGE_SIZE: u64 = 12;

/// Side of a thumbnail's bounding square, in pixels.
pub const THUMBNAIL_SIDE: u32 = 128;

/// Image member extensions, in the order they are looked for.
const IMAGE_EXTS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// One sample: where it came from and what it trains on now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SideBySide {
    /// Position in the augmented dataset (0-based; the image route takes it).
    pub idx: u64,
    pub key: String,
    /// The caption the team's dataset came with.
    pub original: String,
    /// The caption the sample now trains on.
    pub augmented: String,
    /// The round that last recaptioned it (absent: never recaptioned).
    pub round: Option<u32>,
    /// Whether that round's recaption was kept.
    pub kept: Option<bool>,
}

/// One page of samples.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SidePage {
    /// 1-based.
    pub page: u64,
    pub pages: u64,
    pub total: u64,
    pub samples: Vec<SideBySide>,
}

fn data_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("reading the augmented dataset: {e}"))
}

/// Calls `f` with every sample of the shards of `dir` and its index, until it breaks.
fn visit(
    dir: &Path,
    mut f: impl FnMut(u64, vila2_host::data::webdataset::RawSample) -> ControlFlow<()>,
) -> Result<(), ApiError> {
    let mut idx = 0u64;
    for shard in list_shards(dir).map_err(data_err)? {
        let mut stop = false;
        visit_shard(&shard, |s| {
            let flow = f(idx, s);
            idx += 1;
            stop = flow.is_break();
            flow
        })
        .map_err(data_err)?;
        if stop {
            break;
        }
    }
    Ok(())
}

/// Page `page` (1-based) of the dataset in `dir`. Blocking: call from a blocking thread.
pub fn page(dir: &Path, page: u64) -> Result<SidePage, ApiError> {
    let page = page.max(1);
    let first = (page - 1) * PAGE_SIZE;
    let mut samples = Vec::new();
    let mut total = 0;
    visit(dir, |idx, s| {
        total = idx + 1;
        if (first..first + PAGE_SIZE).contains(&idx) {
            let caption = s.text("txt").unwrap_or_default();
            let prov = s
                .members
                .get("json")
                .and_then(|b| serde_json::from_slice::<Provenance>(b).ok());
            let last = prov.as_ref().and_then(|p| p.last_round());
            samples.push(SideBySide {
                idx,
                original: prov
                    .as_ref()
                    .map_or_else(|| caption.clone(), |p| p.org_caption.clone()),
                round: last.map(|r| r.round),
                kept: last.map(|r| r.kept),
                augmented: caption,
                key: s.key,
            });
        }
        ControlFlow::Continue(())
    })?;
    Ok(SidePage {
        page,
        pages: total.div_ceil(PAGE_SIZE).max(1),
        total,
        samples,
    })
}

/// A PNG thumbnail of sample `idx`'s image. Blocking.
pub fn thumbnail(dir: &Path, idx: u64) -> Result<Vec<u8>, ApiError> {
    let mut found = None;
    visit(dir, |i, s| {
        if i == idx {
            found = Some(s);
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    let sample = found.ok_or_else(|| ApiError::NotFound(format!("sample {idx} not found")))?;
    let bytes = IMAGE_EXTS
        .iter()
        .find_map(|e| sample.members.get(*e))
        .ok_or_else(|| {
            ApiError::Unprocessable(format!("sample {}: no image member", sample.key))
        })?;
    let decoded = image::load_from_memory(bytes)
        .map_err(|e| ApiError::Unprocessable(format!("sample {}: image: {e}", sample.key)))?;
    let thumb = decoded.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE);
    let mut png = Vec::new();
    thumb
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| ApiError::Internal(format!("encoding a thumbnail: {e}")))?;
    Ok(png)
}
