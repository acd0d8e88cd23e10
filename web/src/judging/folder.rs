//! Reading a finished run's output folder: the captions of every sample (from the per-sample
//! provenance the last round's shards carry) and a sample's image.
//!
//! Layout (see `vila2_host::pipeline::run`): `<out>/round-<k>/data/shard-*.tar`, each sample
//! with `KEY.json` = its [`Provenance`]: the original caption and one record per round with
//! that round's recaption.

use std::ops::ControlFlow;
use std::path::{Component, Path, PathBuf};

use vila2_host::data::{list_shards, visit_shard};
use vila2_host::pipeline::provenance::Provenance;
use vila2_host::pipeline::recaption::IMAGE_EXTS;

use super::source::Source;

/// Problems reading a run's folder.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("the run's folder {0} has no recaptioned round (round-K/data with shards)")]
    NoRounds(PathBuf),
    #[error("reading the run's shards: {0}")]
    Data(#[from] vila2_host::data::DataError),
    #[error("sample `{key}` is not in shard {shard}")]
    NoSample { shard: String, key: String },
    #[error("sample `{key}` of shard {shard} has no image")]
    NoImage { shard: String, key: String },
    #[error("shard path `{0}` leaves the run's folder")]
    BadShard(String),
}

/// One sample's judgeable captions.
#[derive(Debug, Clone)]
pub struct Sample {
    pub key: String,
    /// Its shard, relative to the run's output folder.
    pub shard: String,
    /// The original caption, then each round's recaption (rounds whose recaption is missing,
    /// e.g. a model or plugin failure, are left out).
    pub captions: Vec<(Source, String)>,
}

impl Sample {
    /// The caption from `source`, if the sample has a non-empty one.
    pub fn caption(&self, source: Source) -> Option<&str> {
        self.captions
            .iter()
            .find(|(s, _)| *s == source)
            .map(|(_, c)| c.as_str())
            .filter(|c| !c.trim().is_empty())
    }
}

/// The data folder of round `k`.
fn round_data(out: &Path, k: u32) -> PathBuf {
    out.join(format!("round-{k}")).join("data")
}

/// The last round in `1..=rounds` whose data folder holds shards.
pub fn last_round(out: &Path, rounds: u32) -> Result<u32, FolderError> {
    (1..=rounds)
        .rev()
        .find(|&k| list_shards(&round_data(out, k)).is_ok())
        .ok_or_else(|| FolderError::NoRounds(out.to_path_buf()))
}

/// Streams every sample of the last round's shards to `f`; returns that round. Samples without
/// provenance are skipped (the pipeline writes it for every sample).
pub fn samples(out: &Path, rounds: u32, mut f: impl FnMut(Sample)) -> Result<u32, FolderError> {
    let last = last_round(out, rounds)?;
    for shard in list_shards(&round_data(out, last))? {
        let relative = shard
            .strip_prefix(out)
            .unwrap_or(&shard)
            .to_string_lossy()
            .into_owned();
        visit_shard(&shard, |raw| {
            let Some(p) = raw
                .members
                .get("json")
                .and_then(|b| serde_json::from_slice::<Provenance>(b).ok())
            else {
                tracing::warn!(shard = %relative, key = %raw.key, "sample without provenance");
                return ControlFlow::Continue(());
            };
            let mut captions = vec![(Source::Original, p.org_caption.clone())];
            for r in &p.rounds {
                if let Some(c) = &r.recaption
                    && (1..=last).contains(&r.round)
                {
                    captions.push((Source::Round(r.round), c.clone()));
                }
            }
            f(Sample {
                key: raw.key,
                shard: relative.clone(),
                captions,
            });
            ControlFlow::Continue(())
        })?;
    }
    Ok(last)
}

/// The image of sample `key` in `shard` (relative to `out`): its bytes and MIME type.
pub fn image(out: &Path, shard: &str, key: &str) -> Result<(Vec<u8>, &'static str), FolderError> {
    let relative = Path::new(shard);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(FolderError::BadShard(shard.into()));
    }
    let mut found = None;
    visit_shard(&out.join(relative), |raw| {
        if raw.key != key {
            return ControlFlow::Continue(());
        }
        found = Some(raw);
        ControlFlow::Break(())
    })?;
    let raw = found.ok_or_else(|| FolderError::NoSample {
        shard: shard.into(),
        key: key.into(),
    })?;
    let (ext, bytes) = IMAGE_EXTS
        .iter()
        .find_map(|e| raw.members.get(*e).map(|b| (*e, b.clone())))
        .ok_or_else(|| FolderError::NoImage {
            shard: shard.into(),
            key: key.into(),
        })?;
    let mime = match ext {
        "png" => "image/png",
        "webp" => "image/webp",
        _ => "image/jpeg",
    };
    Ok((bytes, mime))
}
