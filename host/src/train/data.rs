//! The trainer's samples from WebDataset shards (read with [`crate::data::webdataset`], the
//! one tar reader of the platform): `*.tar` files in a folder whose members are grouped
//! into samples by key; a sample is an image (`png`, `jpg`, `jpeg`, `webp`) with a `txt`
//! caption, or with a `json` holding LLaVA's `{"conversations": [{"from": "human"|"gpt",
//! "value": …}, …]}` (a `json` without `conversations`, e.g. provenance, is ignored).
//! Corrupt images, malformed conversations and samples without a caption or image are
//! skipped and counted; a member without an extension or a key used twice in a shard is an
//! error naming the shard and member.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;

use super::TrainError;
use crate::data::webdataset::{self, RawSample};
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
    Ok(webdataset::list_shards(dir)?)
}

const IMAGE_EXTS: [&str; 4] = ["png", "jpg", "jpeg", "webp"];

/// The image member of a sample (extension lower-cased) and its bytes.
fn image_member(raw: &RawSample) -> Option<(String, &[u8])> {
    raw.members.iter().find_map(|(ext, bytes)| {
        let ext = ext.to_ascii_lowercase();
        IMAGE_EXTS
            .contains(&ext.as_str())
            .then_some((ext, bytes.as_slice()))
    })
}

/// The member with extension `ext` (any case).
fn member<'a>(raw: &'a RawSample, ext: &str) -> Option<&'a [u8]> {
    raw.members
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map(|(_, b)| b.as_slice())
}

/// The trimmed `txt` caption of a sample, if it has one.
fn caption_of(raw: &RawSample) -> Option<String> {
    member(raw, "txt").map(|b| String::from_utf8_lossy(b).trim().to_string())
}

/// Whether the sample has an image and something to learn (a non-empty caption or a
/// `json` with a valid conversation), without decoding the image.
fn usable(raw: &RawSample) -> bool {
    image_member(raw).is_some()
        && (caption_of(raw).is_some_and(|c| !c.is_empty())
            || member(raw, "json").is_some_and(|j| matches!(parse_conversation(j), Ok(Some(_)))))
}

/// Samples with an image and a non-empty caption or a conversation in the shards of `dir`
/// (images not decoded): the length of one epoch.
pub fn count_samples(dir: &Path) -> Result<usize, TrainError> {
    let mut n = 0;
    for shard in list_shards(dir)? {
        webdataset::visit_shard(&shard, |raw| {
            n += usize::from(usable(&raw));
            std::ops::ControlFlow::Continue(())
        })?;
    }
    Ok(n)
}

/// Where a reader stands: enough to replay it to the same point (saved in resumable
/// checkpoints).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ReaderState {
    /// Raw samples drawn from the (shuffled) stream, usable or not.
    pub consumed: u64,
    /// Completed passes over all shards.
    pub epoch: usize,
    /// Raw samples drawn from the current pass (0 right after a pass completes).
    pub in_epoch: u64,
    /// Counts so far.
    pub stats: DataStats,
}

/// SplitMix64: a tiny seeded generator whose whole state is one `u64`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A raw sample drawn from the stream, with what a [`Tally`] and
/// [`ReaderState`] need to account for it wherever it is decoded.
#[derive(Debug)]
pub struct Drawn {
    /// Name of its shard (for messages).
    pub shard: Arc<str>,
    /// Its members.
    pub raw: RawSample,
    /// The reader's position once it is drawn: [`ReaderState::consumed`].
    pub consumed: u64,
    /// [`ReaderState::epoch`] once it is drawn.
    pub epoch: usize,
    /// [`ReaderState::in_epoch`] once it is drawn.
    pub in_epoch: u64,
    /// Raw samples in one pass, once a pass completed.
    pub pass_len: Option<u64>,
}

impl Drawn {
    /// `shard:key`, how messages name the sample.
    pub fn key(&self) -> String {
        format!("{}:{}", self.shard, self.raw.key)
    }

    /// The reader's state once this sample is accounted for with `stats`.
    pub fn state(&self, stats: DataStats) -> ReaderState {
        ReaderState {
            consumed: self.consumed,
            epoch: self.epoch,
            in_epoch: self.in_epoch,
            stats,
        }
    }
}

/// Why a drawn sample is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// No image member.
    MissingImage,
    /// The `json` holds a malformed `conversations`.
    BadConversation(String),
    /// No caption (or an empty one) and no conversation.
    MissingCaption,
    /// The image does not decode.
    CorruptImage(String),
}

/// What is counted of drawn samples as they are used or skipped, in stream order, and
/// when a run of skips means the shards hold nothing usable.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Counts so far.
    pub stats: DataStats,
    streak: u64,
    archive_order: bool,
}

impl Tally {
    /// A tally continuing from `stats`, for a reader with a shuffle buffer of `buffer`.
    pub fn new(stats: DataStats, buffer: usize) -> Self {
        Self {
            stats,
            streak: 0,
            archive_order: buffer <= 1,
        }
    }

    /// Counts the outcome of decoding `key` (logging a skip). `Ok(true)`: use the sample;
    /// `Ok(false)`: skipped, draw another; an error once more samples in a row were skipped
    /// than a pass can hold (every pass yields every sample once, so with a usable sample
    /// failures in a row are fewer than a pass in archive order, or two shuffled).
    pub fn record(
        &mut self,
        key: &str,
        outcome: Result<bool, &Skip>,
        pass_len: Option<u64>,
        dir: &Path,
    ) -> Result<bool, TrainError> {
        let skip = match outcome {
            Ok(is_conversation) => {
                self.stats.samples += 1;
                self.stats.conversations += usize::from(is_conversation);
                self.streak = 0;
                return Ok(true);
            }
            Err(skip) => skip,
        };
        match skip {
            Skip::MissingImage => {
                tracing::warn!(sample = %key, "no image: skipped");
                self.stats.missing_images += 1;
            }
            Skip::BadConversation(msg) => {
                tracing::warn!(sample = %key, error = %msg, "bad conversation: skipped");
                self.stats.bad_conversations += 1;
            }
            Skip::MissingCaption => {
                tracing::warn!(sample = %key, "no caption: skipped");
                self.stats.missing_captions += 1;
            }
            Skip::CorruptImage(msg) => {
                tracing::warn!(sample = %key, error = %msg, "corrupt image: skipped");
                self.stats.corrupt_images += 1;
            }
        }
        self.streak += 1;
        let limit = |n: u64| if self.archive_order { n } else { 2 * n - 1 };
        if pass_len.is_some_and(|n| self.streak >= limit(n)) {
            return Err(TrainError::NoSamples {
                dir: dir.to_path_buf(),
                skipped: self.stats.skipped(),
            });
        }
        Ok(false)
    }
}

/// The sample a drawn raw sample holds, or why it is skipped. Pure: loader workers call it
/// in parallel and the tally counts the outcomes in stream order.
pub fn decode(shard: &str, raw: &RawSample) -> Result<CaptionSample, Skip> {
    let key = format!("{shard}:{}", raw.key);
    let Some((ext, bytes)) = image_member(raw) else {
        return Err(Skip::MissingImage);
    };
    let conversation = match member(raw, "json").map(parse_conversation) {
        Some(Err(msg)) => return Err(Skip::BadConversation(msg)),
        Some(Ok(c)) => c,
        None => None,
    };
    let caption = match caption_of(raw) {
        Some(c) if !c.is_empty() || conversation.is_some() => c,
        None if conversation.is_some() => String::new(),
        _ => return Err(Skip::MissingCaption),
    };
    match decode_image(bytes, &format!("{key}.{ext}")) {
        Ok(image) => Ok(CaptionSample {
            key,
            image,
            caption,
            conversation,
        }),
        Err(e) => Err(Skip::CorruptImage(e.to_string())),
    }
}

/// Streams decoded samples from the shards of a folder, one shard in memory at a time,
/// cycling through the shards for further epochs. With a shuffle buffer of `n` samples,
/// each sample is drawn at random (seeded) from the next `n` of the pass, as WebDataset's
/// `shuffle(n)` does; the buffer never reaches into the next pass, so every pass yields
/// each sample once and [`ReaderState::epoch`] turns when the last sample of a pass is
/// drawn. The stream is deterministic, so [`ShardReader::resume`] replays it to a saved
/// [`ReaderState`] without decoding images.
#[derive(Debug)]
pub struct ShardReader {
    dir: PathBuf,
    shards: Vec<PathBuf>,
    next_shard: usize,
    pending: VecDeque<(Arc<str>, RawSample)>,
    buffer: Vec<(Arc<str>, RawSample)>,
    buffer_size: usize,
    rng: SplitMix,
    consumed: u64,
    in_epoch: u64,
    /// Raw samples in one pass, known once a pass completed.
    pass_len: Option<u64>,
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
            in_epoch: 0,
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
            r.draw()?;
        }
        r.stats = state.stats;
        if (r.epoch, r.in_epoch) != (state.epoch, state.in_epoch) {
            return Err(TrainError::Config(format!(
                "cannot resume reading {}: the shards changed since the checkpoint (replaying {} samples ends at epoch {} sample {}, the checkpoint says epoch {} sample {})",
                dir.display(),
                state.consumed,
                r.epoch,
                r.in_epoch,
                state.epoch,
                state.in_epoch
            )));
        }
        Ok(r)
    }

    /// The position to save.
    pub fn state(&self) -> ReaderState {
        ReaderState {
            consumed: self.consumed,
            epoch: self.epoch,
            in_epoch: self.in_epoch,
            stats: self.stats,
        }
    }

    /// Fills the shuffle buffer from the current pass, reading its next shards as needed
    /// (never the next pass).
    fn top_up(&mut self) -> Result<(), TrainError> {
        while self.buffer.len() < self.buffer_size {
            if let Some(r) = self.pending.pop_front() {
                self.buffer.push(r);
            } else if self.next_shard < self.shards.len() {
                let shard = &self.shards[self.next_shard];
                self.next_shard += 1;
                let name: Arc<str> = shard
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into();
                tracing::debug!(shard = %shard.display(), "reading shard");
                self.pending.extend(
                    webdataset::read_shard(shard)?
                        .into_iter()
                        .map(|r| (name.clone(), r)),
                );
            } else {
                break;
            }
        }
        Ok(())
    }

    /// The next raw sample of the shuffled stream, undecoded; an error when a whole pass
    /// over the shards holds no sample at all.
    pub fn draw(&mut self) -> Result<Drawn, TrainError> {
        self.top_up()?;
        if self.buffer.is_empty() {
            return Err(TrainError::NoSamples {
                dir: self.dir.clone(),
                skipped: self.stats.skipped(),
            });
        }
        let i = if self.buffer_size > 1 {
            self.rng.below(self.buffer.len())
        } else {
            0
        };
        let (shard, raw) = self.buffer.swap_remove(i);
        self.consumed += 1;
        self.in_epoch += 1;
        self.top_up()?;
        if self.buffer.is_empty() {
            // That was the last sample of the pass: the next draw starts the next one.
            self.pass_len.get_or_insert(self.in_epoch);
            self.epoch += 1;
            self.in_epoch = 0;
            self.next_shard = 0;
        }
        Ok(Drawn {
            shard,
            raw,
            consumed: self.consumed,
            epoch: self.epoch,
            in_epoch: self.in_epoch,
            pass_len: self.pass_len,
        })
    }

    /// The next usable sample, reading further shards (and wrapping to a new epoch) as
    /// needed; an error when a whole pass over the shards yields nothing usable.
    pub fn next_sample(&mut self) -> Result<CaptionSample, TrainError> {
        let mut tally = Tally::new(self.stats, self.buffer_size);
        loop {
            let d = self.draw()?;
            let sample = decode(&d.shard, &d.raw);
            let used = tally.record(
                &d.key(),
                sample.as_ref().map(|s| s.conversation.is_some()),
                d.pass_len,
                &self.dir,
            );
            self.stats = tally.stats;
            if let (true, Ok(s)) = (used?, sample) {
                return Ok(s);
            }
        }
    }

    /// The size of the shuffle buffer (1: archive order).
    pub fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    /// A tally continuing this reader's counts.
    pub fn tally(&self) -> Tally {
        Tally::new(self.stats, self.buffer_size)
    }
}
