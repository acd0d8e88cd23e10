//! WebDataset shards: `*.tar` files in a folder whose members are grouped into samples by
//! key (the member path up to the first `.` of its file name); a sample is an image (`png`,
//! `jpg`, `jpeg`, `webp`) with a `txt` caption, or with a `json` holding LLaVA's
//! `{"conversations": [{"from": "human"|"gpt", "value": …}, …]}` (a `json` without
//! `conversations`, e.g. provenance, is ignored). Corrupt images, malformed conversations and
//! samples without a caption or image are skipped and counted.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};

use image::RgbImage;

use super::TrainError;
use crate::vlm::preprocess::decode_image;

/// A decoded caption sample.
#[derive(Debug, Clone)]
pub struct CaptionSample {
    /// WebDataset key (with the shard name, for messages).
    pub key: String,
    /// The image.
    pub image: RgbImage,
    /// The caption, trimmed (empty for conversation samples without a `txt`).
    pub caption: String,
    /// The conversation of a `json` sample (the loss is on the assistant turns only).
    pub conversation: Option<Vec<Turn>>,
}

/// Who speaks a conversation turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A system prompt (`from: "system"`).
    System,
    /// The user (`from: "human"` or `"user"`).
    User,
    /// The model (`from: "gpt"` or `"assistant"`): these turns carry the loss.
    Assistant,
}

impl Role {
    /// The chat-template role name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One turn of a conversation sample.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Turn {
    /// The speaker.
    pub role: Role,
    /// The text (`<image>` marks the image).
    pub value: String,
}

/// The turns of a sample's `json`: `Ok(None)` when it has no `conversations` (or is not
/// JSON); an error naming the turn or field when the conversation is malformed. A
/// conversation without an `<image>` gets one in front of its first user turn, as LLaVA
/// does; more than one image is an error (one image per sample).
pub fn parse_conversation(bytes: &[u8]) -> Result<Option<Vec<Turn>>, String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(None);
    };
    let Some(conv) = v.get("conversations") else {
        return Ok(None);
    };
    let turns = conv.as_array().ok_or("\"conversations\" is not a list")?;
    let mut out = Vec::with_capacity(turns.len());
    for (i, t) in turns.iter().enumerate() {
        let from = t
            .get("from")
            .and_then(serde_json::Value::as_str)
            .ok_or(format!("turn {i} has no \"from\""))?;
        let value = t
            .get("value")
            .and_then(serde_json::Value::as_str)
            .ok_or(format!("turn {i} has no string \"value\""))?;
        let role = match from {
            "human" | "user" => Role::User,
            "gpt" | "assistant" => Role::Assistant,
            "system" => Role::System,
            other => return Err(format!("turn {i}: unknown speaker {other:?}")),
        };
        out.push(Turn {
            role,
            value: value.to_string(),
        });
    }
    if !out
        .iter()
        .any(|t| t.role == Role::Assistant && !t.value.trim().is_empty())
    {
        return Err("no non-empty \"gpt\" turn to learn from".into());
    }
    match out
        .iter()
        .map(|t| t.value.matches("<image>").count())
        .sum::<usize>()
    {
        0 => {
            let first = out
                .iter_mut()
                .find(|t| t.role == Role::User)
                .ok_or("no \"human\" turn")?;
            first.value = format!("<image>\n{}", first.value);
        }
        1 => {}
        n => return Err(format!("{n} <image> markers; a sample holds one image")),
    }
    Ok(Some(out))
}

/// What the reader skipped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DataStats {
    /// Samples yielded.
    pub samples: usize,
    /// Samples whose image did not decode.
    pub corrupt_images: usize,
    /// Samples without a caption (or with an empty one).
    pub missing_captions: usize,
    /// Samples without an image.
    pub missing_images: usize,
    /// Samples whose `json` has a malformed `conversations`.
    pub bad_conversations: usize,
    /// Conversation samples among those yielded.
    pub conversations: usize,
}

impl DataStats {
    /// Samples skipped for any reason.
    pub fn skipped(&self) -> usize {
        self.corrupt_images + self.missing_captions + self.missing_images + self.bad_conversations
    }
}

/// The `*.tar` shards of `dir`, sorted by name; an error naming `dir` when there are none.
pub fn list_shards(dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
    let rd = std::fs::read_dir(dir).map_err(|e| TrainError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut shards: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "tar"))
        .collect();
    shards.sort();
    if shards.is_empty() {
        return Err(TrainError::NoShards(dir.to_path_buf()));
    }
    Ok(shards)
}

/// Members of one sample, before decoding.
#[derive(Debug, Default)]
struct RawSample {
    key: String,
    image: Option<(String, Vec<u8>)>,
    caption: Option<String>,
    json: Option<Vec<u8>>,
}

impl RawSample {
    /// Whether the sample has an image and something to learn (a non-empty caption or a
    /// `json` that mentions conversations), without decoding anything.
    fn usable(&self) -> bool {
        self.image.is_some()
            && (self.caption.as_ref().is_some_and(|c| !c.is_empty())
                || self
                    .json
                    .as_ref()
                    .is_some_and(|j| matches!(parse_conversation(j), Ok(Some(_)))))
    }
}

const IMAGE_EXTS: [&str; 4] = ["png", "jpg", "jpeg", "webp"];

/// Splits a member path into (key, extension) as WebDataset does.
fn split_key(path: &str) -> Option<(String, String)> {
    let (dir, file) = match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    };
    let dot = file.find('.')?;
    Some((
        format!("{dir}{}", &file[..dot]),
        file[dot + 1..].to_ascii_lowercase(),
    ))
}

/// Reads the raw samples of one shard, in archive order.
fn read_shard(shard: &Path) -> Result<Vec<RawSample>, TrainError> {
    let file = std::fs::File::open(shard).map_err(|e| TrainError::Io {
        path: shard.to_path_buf(),
        source: e,
    })?;
    let bad = |e: std::io::Error| TrainError::Shard {
        shard: shard.to_path_buf(),
        msg: e.to_string(),
    };
    let mut archive = tar::Archive::new(file);
    let mut out: Vec<RawSample> = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let Some((key, ext)) = split_key(&path) else {
            continue;
        };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(bad)?;
        if out.last().is_none_or(|s| s.key != key) {
            out.push(RawSample {
                key: key.clone(),
                ..RawSample::default()
            });
        }
        let sample = out.last_mut().expect("pushed above");
        if IMAGE_EXTS.contains(&ext.as_str()) {
            sample.image = Some((ext, bytes));
        } else if ext == "txt" {
            sample.caption = Some(String::from_utf8_lossy(&bytes).trim().to_string());
        } else if ext == "json" {
            sample.json = Some(bytes);
        }
    }
    Ok(out)
}

/// Samples with an image and a non-empty caption or a conversation in the shards of `dir`
/// (images not decoded): the length of one epoch.
pub fn count_samples(dir: &Path) -> Result<usize, TrainError> {
    let mut n = 0;
    for shard in list_shards(dir)? {
        n += read_shard(&shard)?.iter().filter(|r| r.usable()).count();
    }
    Ok(n)
}

/// Streams decoded caption samples from the shards of a folder, one shard in memory at a
/// time, cycling through the shards for further epochs.
#[derive(Debug)]
pub struct ShardReader {
    dir: PathBuf,
    shards: Vec<PathBuf>,
    next_shard: usize,
    pending: VecDeque<(String, RawSample)>,
    /// Completed passes over all shards.
    pub epoch: usize,
    /// What was yielded and skipped so far.
    pub stats: DataStats,
}

impl ShardReader {
    /// The data folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl ShardReader {
    /// A reader over the `*.tar` shards of `dir`.
    pub fn open(dir: &Path) -> Result<Self, TrainError> {
        Ok(Self {
            dir: dir.to_path_buf(),
            shards: list_shards(dir)?,
            next_shard: 0,
            pending: VecDeque::new(),
            epoch: 0,
            stats: DataStats::default(),
        })
    }

    /// The next usable sample, reading further shards (and wrapping to a new epoch) as
    /// needed; an error when a whole pass over the shards yields nothing.
    pub fn next_sample(&mut self) -> Result<CaptionSample, TrainError> {
        let mut shards_without_sample = 0;
        loop {
            while let Some((shard, raw)) = self.pending.pop_front() {
                if let Some(s) = self.decode(&shard, raw) {
                    self.stats.samples += 1;
                    return Ok(s);
                }
            }
            if shards_without_sample >= self.shards.len() {
                return Err(TrainError::NoSamples {
                    dir: self.dir.clone(),
                    skipped: self.stats.skipped(),
                });
            }
            if self.next_shard == self.shards.len() {
                self.next_shard = 0;
                self.epoch += 1;
            }
            let shard = &self.shards[self.next_shard];
            self.next_shard += 1;
            shards_without_sample += 1;
            let name = shard
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            tracing::debug!(shard = %shard.display(), "reading shard");
            self.pending
                .extend(read_shard(shard)?.into_iter().map(|r| (name.clone(), r)));
        }
    }

    fn decode(&mut self, shard: &str, raw: RawSample) -> Option<CaptionSample> {
        let key = format!("{shard}:{}", raw.key);
        let Some((ext, bytes)) = raw.image else {
            tracing::warn!(sample = %key, "no image: skipped");
            self.stats.missing_images += 1;
            return None;
        };
        let conversation = match raw.json.as_deref().map(parse_conversation) {
            Some(Err(msg)) => {
                tracing::warn!(sample = %key, error = %msg, "bad conversation: skipped");
                self.stats.bad_conversations += 1;
                return None;
            }
            Some(Ok(c)) => c,
            None => None,
        };
        let caption = match raw.caption {
            Some(c) if !c.is_empty() || conversation.is_some() => c,
            None if conversation.is_some() => String::new(),
            _ => {
                tracing::warn!(sample = %key, "no caption: skipped");
                self.stats.missing_captions += 1;
                return None;
            }
        };
        match decode_image(&bytes, &format!("{key}.{ext}")) {
            Ok(image) => {
                self.stats.conversations += usize::from(conversation.is_some());
                Some(CaptionSample {
                    key,
                    image,
                    caption,
                    conversation,
                })
            }
            Err(e) => {
                tracing::warn!(sample = %key, error = %e, "corrupt image: skipped");
                self.stats.corrupt_images += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_key;

    #[test]
    fn keys_split_at_the_first_dot_of_the_file_name() {
        assert_eq!(
            split_key("a/b.c/000.seg.png"),
            Some(("a/b.c/000".into(), "seg.png".into()))
        );
        assert_eq!(split_key("x.txt"), Some(("x".into(), "txt".into())));
        assert_eq!(split_key("noext"), None);
    }
}
