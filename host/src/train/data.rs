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
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
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

/// Where a reader stands: enough to replay it to the same point (saved in resumable
/// checkpoints).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReaderState {
    /// Raw samples drawn from the (shuffled) stream, usable or not.
    pub consumed: u64,
    /// Completed passes over all shards.
    pub epoch: usize,
    /// Counts so far.
    pub stats: DataStats,
}

/// SplitMix64: a tiny seeded generator whose whole state is one `u64`.
#[derive(Debug, Clone, Copy)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Streams decoded samples from the shards of a folder, one shard in memory at a time,
/// cycling through the shards for further epochs. With a shuffle buffer of `n` samples,
/// each sample is drawn at random (seeded) from the next `n` of the stream, as
/// WebDataset's `shuffle(n)` does. The stream is deterministic, so [`ShardReader::resume`]
/// replays it to a saved [`ReaderState`] without decoding images.
#[derive(Debug)]
pub struct ShardReader {
    dir: PathBuf,
    shards: Vec<PathBuf>,
    next_shard: usize,
    pending: VecDeque<(String, RawSample)>,
    buffer: Vec<(String, RawSample)>,
    buffer_size: usize,
    rng: SplitMix,
    consumed: u64,
    read_in_order: usize,
    pass_len: Option<usize>,
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

    /// A reader over the `*.tar` shards of `dir`, in archive order.
    pub fn open(dir: &Path) -> Result<Self, TrainError> {
        Self::shuffled(dir, 1, 0)
    }

    /// A reader drawing from a shuffle buffer of `buffer` samples (1: archive order) with
    /// the generator seeded by `seed`.
    pub fn shuffled(dir: &Path, buffer: usize, seed: u64) -> Result<Self, TrainError> {
        Ok(Self {
            dir: dir.to_path_buf(),
            shards: list_shards(dir)?,
            next_shard: 0,
            pending: VecDeque::new(),
            buffer: Vec::new(),
            buffer_size: buffer.max(1),
            rng: SplitMix(seed),
            consumed: 0,
            read_in_order: 0,
            pass_len: None,
            epoch: 0,
            stats: DataStats::default(),
        })
    }

    /// A reader like [`ShardReader::shuffled`], advanced to `state` (the shards are read
    /// again, images are not decoded).
    pub fn resume(
        dir: &Path,
        buffer: usize,
        seed: u64,
        state: &ReaderState,
    ) -> Result<Self, TrainError> {
        let mut r = Self::shuffled(dir, buffer, seed)?;
        for _ in 0..state.consumed {
            r.next_raw()?;
        }
        r.stats = state.stats;
        if r.epoch != state.epoch {
            return Err(TrainError::Config(format!(
                "cannot resume reading {}: the shards changed since the checkpoint (epoch {} instead of {})",
                dir.display(),
                r.epoch,
                state.epoch
            )));
        }
        Ok(r)
    }

    /// The position to save.
    pub fn state(&self) -> ReaderState {
        ReaderState {
            consumed: self.consumed,
            epoch: self.epoch,
            stats: self.stats,
        }
    }

    /// The next raw sample of the archive-order stream; an error when a whole pass over
    /// the shards holds no sample at all.
    fn next_in_order(&mut self) -> Result<(String, RawSample), TrainError> {
        let mut shards_read = 0;
        loop {
            if let Some(r) = self.pending.pop_front() {
                self.read_in_order += 1;
                if self.pending.is_empty() && self.next_shard == self.shards.len() {
                    self.pass_len.get_or_insert(self.read_in_order);
                }
                return Ok(r);
            }
            if shards_read >= self.shards.len() {
                return Err(TrainError::NoSamples {
                    dir: self.dir.clone(),
                    skipped: self.stats.skipped(),
                });
            }
            if self.next_shard == self.shards.len() {
                self.next_shard = 0;
                self.epoch += 1;
                self.pass_len.get_or_insert(self.read_in_order);
            }
            let shard = &self.shards[self.next_shard];
            self.next_shard += 1;
            shards_read += 1;
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

    /// The next raw sample of the shuffled stream.
    fn next_raw(&mut self) -> Result<(String, RawSample), TrainError> {
        loop {
            // The buffer never holds more than one pass (small datasets).
            let cap = self
                .pass_len
                .map_or(self.buffer_size, |n| n.min(self.buffer_size));
            if self.buffer.len() >= cap.max(1) {
                break;
            }
            if !self.buffer.is_empty()
                && self.pending.is_empty()
                && self.next_shard == self.shards.len()
            {
                let n = *self.pass_len.get_or_insert(self.read_in_order);
                if self.buffer.len() >= n {
                    break;
                }
            }
            let r = self.next_in_order()?;
            self.buffer.push(r);
        }
        let i = if self.buffer_size > 1 {
            self.rng.below(self.buffer.len())
        } else {
            0
        };
        self.consumed += 1;
        Ok(self.buffer.swap_remove(i))
    }

    /// The next usable sample, reading further shards (and wrapping to a new epoch) as
    /// needed; an error when a whole pass over the shards yields nothing usable.
    pub fn next_sample(&mut self) -> Result<CaptionSample, TrainError> {
        let mut streak = 0usize;
        loop {
            let (shard, raw) = self.next_raw()?;
            if let Some(s) = self.decode(&shard, raw) {
                self.stats.samples += 1;
                return Ok(s);
            }
            streak += 1;
            // A pass of failures in a row (archive order), or two passes plus the buffer
            // (shuffled: a good sample may wait in the buffer): nothing is usable.
            let b = self.buffer_size;
            if self
                .pass_len
                .is_some_and(|n| streak >= if b == 1 { n } else { 2 * n + b })
            {
                return Err(TrainError::NoSamples {
                    dir: self.dir.clone(),
                    skipped: self.stats.skipped(),
                });
            }
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
