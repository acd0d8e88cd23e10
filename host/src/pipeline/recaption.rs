//! One shard through a round: the template picks each sample's prompt, the model writes a
//! caption, the filters judge it, and the kept caption is fused with the sample's caption;
//! a sample whose recaption fails or is rejected keeps its previous caption, with the reason
//! in its provenance. The output shard, its Parquet table and the task record are written
//! atomically, in that order.
//!
//! Specialist answers go the same way, except that the post-processor turns each answer
//! into QA turns that [`fuse_specialists`] appends to the caption later.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::PipelineError;
use super::config::Fusion;
use super::fuse::{append_turns, fuse, strip_image_token};
use super::judge::EngineJudge;
use super::provenance::{FilterRecord, Provenance, RoundRecord, SpecialistRecord, write_parquet};
use super::prune::{drop_repeated, drop_self_relations, prune};
use crate::data::webdataset::{RawSample, ShardWriter, read_shard};
use crate::plugin::records::{Candidate, Prompt, PromptRequest, Sample, SpecialistOutput};
use crate::plugin::{ItemError, Plugin};
use crate::vlm::VlmError;
use crate::vlm::engine::{EngineHandle, PromptInput};
use crate::vlm::generate::{Generated, GenerationParams};
use crate::vlm::preprocess::decode_image;

/// Image member extensions, in order of preference.
pub const IMAGE_EXTS: [&str; 4] = ["png", "jpg", "jpeg", "webp"];

/// A loaded plugin with its `name@version` id.
#[derive(Clone)]
pub struct LoadedPlugin {
    /// The plugin.
    pub plugin: Plugin,
    /// `name@version` from its `describe()`.
    pub id: String,
}

/// The model doing a round's captioning.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Short id (`round-0`, `specialist-spatial`).
    pub id: String,
    /// Its folder.
    pub dir: PathBuf,
    /// SHA-256 of its weights file(s).
    pub sha256: String,
}

/// What is shared by every shard of a round.
pub struct RoundContext<'a> {
    /// Round number (1-based for self-augmentation).
    pub round: u32,
    /// Run seed (the template's per-sample choice depends on it).
    pub seed: u64,
    /// The captioning model.
    pub model: &'a ModelInfo,
    /// Its engine.
    pub engine: &'a EngineHandle,
    /// The judge the filters call.
    pub judge: &'a EngineJudge,
    /// Prompt template.
    pub template: &'a LoadedPlugin,
    /// Caption filters, in order.
    pub filters: &'a [LoadedPlugin],
    /// Fusion mode.
    pub fusion: Fusion,
    /// Generation settings.
    pub params: GenerationParams,
    /// Samples per plugin call.
    pub batch_size: usize,
    /// Score each recaption with the model.
    pub score: bool,
    /// Prune recaption sentences holding a token under this log-probability (needs `score`).
    pub min_sentence_logprob: Option<f64>,
    /// Drop recaption sentences that repeat an earlier one.
    pub drop_repeated_sentences: bool,
    /// Drop recaption sentences that relate an object to itself.
    pub drop_self_relations: bool,
    /// Failure limit per shard.
    pub max_failure_fraction: f64,
}

/// Counts of one shard task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardSummary {
    /// Samples read.
    pub samples: usize,
    /// Samples written.
    pub written: usize,
    /// Samples whose recaption was used.
    pub recaptioned: usize,
    /// Recaptions a filter rejected.
    pub rejected: usize,
    /// Samples where a plugin or the model failed.
    pub failed: usize,
    /// Recaption sentences pruned for a low-probability token.
    #[serde(default)]
    pub pruned_sentences: usize,
    /// Recaption sentences dropped for repeating an earlier one.
    #[serde(default)]
    pub repeated_sentences: usize,
    /// Recaption sentences dropped for relating an object to itself.
    #[serde(default)]
    pub self_relations: usize,
    /// Rejection and failure reasons with their counts.
    pub reasons: BTreeMap<String, usize>,
    /// Samples left out: (key, why) for undecodable images, missing or empty captions.
    pub skipped: Vec<(String, String)>,
    /// Wall time of the task.
    pub seconds: f64,
    /// Images captioned per second of the task.
    pub images_per_s: f64,
}

/// A decoded input sample.
struct Item {
    raw: RawSample,
    image: Arc<RgbImage>,
    width: u32,
    height: u32,
    provenance: Provenance,
}

/// Reads and decodes a shard; samples that cannot be used are listed in `skipped`.
fn load(input: &Path, skipped: &mut Vec<(String, String)>) -> Result<Vec<Item>, PipelineError> {
    let mut items = Vec::new();
    for raw in read_shard(input)? {
        let key = raw.key.clone();
        let Some(ext) = IMAGE_EXTS.iter().find(|e| raw.members.contains_key(**e)) else {
            skipped.push((key, "no image".into()));
            continue;
        };
        let label = format!("{}:{key}.{ext}", input.display());
        let image = match decode_image(&raw.members[*ext], &label) {
            Ok(im) => im,
            Err(e) => {
                skipped.push((key, format!("undecodable image: {e}")));
                continue;
            }
        };
        let caption = raw
            .members
            .get("txt")
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::trim)
            .unwrap_or_default()
            .to_string();
        let previous: Option<Provenance> = raw
            .members
            .get("json")
            .and_then(|b| serde_json::from_slice(b).ok());
        let provenance = match previous {
            Some(p) if p.key == key => p,
            _ if caption.is_empty() => {
                skipped.push((key, "missing or empty caption".into()));
                continue;
            }
            _ => Provenance {
                key: key.clone(),
                org_caption: caption.clone(),
                caption: caption.clone(),
                ..Default::default()
            },
        };
        let (width, height) = image.dimensions();
        items.push(Item {
            raw,
            image: Arc::new(image),
            width,
            height,
            provenance,
        });
    }
    Ok(items)
}

fn plugin_sample(it: &Item) -> Sample {
    Sample {
        key: it.raw.key.clone(),
        width: it.width,
        height: it.height,
        original_caption: it.provenance.org_caption.clone(),
        metadata: Vec::new(),
    }
}

/// Every item's result of one plugin call (a whole-call failure fails each item).
fn per_item<T>(
    r: Result<Vec<Result<T, ItemError>>, crate::plugin::PluginError>,
    n: usize,
) -> Vec<Result<T, String>> {
    match r {
        Ok(v) => v
            .into_iter()
            .map(|x| x.map_err(|e| e.to_string()))
            .collect(),
        Err(e) => (0..n).map(|_| Err(e.to_string())).collect(),
    }
}

/// Renders each item's prompt with the template and submits every generation at once (so
/// the engine batches them); an item whose prompt failed has no pending generation.
fn prompt_and_generate(
    cx: &RoundContext<'_>,
    chunk: &[Item],
) -> (Vec<Result<Prompt, String>>, Vec<Pending>) {
    let requests: Vec<PromptRequest> = chunk
        .iter()
        .map(|it| PromptRequest {
            sample: plugin_sample(it),
            seed: cx.seed,
            round: cx.round,
        })
        .collect();
    let prompts = per_item(cx.template.plugin.render(&requests), chunk.len());
    let pending = chunk
        .iter()
        .zip(&prompts)
        .map(|(it, p)| {
            p.as_ref().ok().map(|p| {
                cx.engine.submit_generate(
                    PromptInput {
                        text: strip_image_token(&p.text).to_string(),
                        images: vec![(*it.image).clone()],
                        chat: true,
                    },
                    cx.params.clone(),
                )
            })
        })
        .collect();
    (prompts, pending)
}

/// A generation in flight, or none when the item's prompt failed.
type Pending = Option<crossbeam_channel::Receiver<Result<Generated, VlmError>>>;

/// Writes items (with their updated provenance) as the output shard and its Parquet table.
fn write(output: &Path, items: &[Item]) -> Result<(), PipelineError> {
    if let Some(dir) = output.parent() {
        super::state::create_dir(dir)?;
    }
    let mut w = ShardWriter::create(output)?;
    for it in items {
        let mut members: Vec<(String, Vec<u8>)> = it
            .raw
            .members
            .iter()
            .filter(|(ext, _)| ext.as_str() != "txt" && ext.as_str() != "json")
            .map(|(e, b)| (e.clone(), b.clone()))
            .collect();
        members.push(("txt".into(), it.provenance.caption.clone().into_bytes()));
        members.push((
            "json".into(),
            serde_json::to_vec(&it.provenance).expect("provenance serialises"),
        ));
        let refs: Vec<(&str, &[u8])> = members
            .iter()
            .map(|(e, b)| (e.as_str(), b.as_slice()))
            .collect();
        w.add(&it.raw.key, &refs)?;
    }
    w.finish()?;
    let rows: Vec<Provenance> = items.iter().map(|i| i.provenance.clone()).collect();
    write_parquet(&output.with_extension("parquet"), &rows)
}

fn check_failures(
    task: &str,
    s: &ShardSummary,
    max: f64,
    first: &Option<String>,
) -> Result<(), PipelineError> {
    let total = s.samples.max(1);
    if s.failed > 0 && s.failed as f64 > max * total as f64 {
        return Err(PipelineError::TooManyFailures {
            task: task.to_string(),
            failed: s.failed,
            total: s.samples,
            max,
            first: first.clone().unwrap_or_default(),
        });
    }
    Ok(())
}

/// `text` less the sentences `cx` asks to drop (repeated ones, then self-relations), counted
/// in the sample's record and the shard's summary.
fn drop_asked_sentences(
    cx: &RoundContext<'_>,
    text: &str,
    rec: &mut RoundRecord,
    s: &mut ShardSummary,
) -> String {
    let mut text = text.to_string();
    if cx.drop_repeated_sentences {
        let (kept, n) = drop_repeated(&text);
        text = kept;
        rec.repeated_sentences = n;
        s.repeated_sentences += n;
    }
    if cx.drop_self_relations {
        let (kept, dropped) = drop_self_relations(&text);
        text = kept;
        s.self_relations += dropped.len();
        rec.self_relations = dropped;
    }
    text
}

/// Recaptions the shard `input` into `output` (a `.tar`; its `.parquet` beside it).
pub fn recaption_shard(
    cx: &RoundContext<'_>,
    task: &str,
    input: &Path,
    output: &Path,
) -> Result<ShardSummary, PipelineError> {
    let started = Instant::now();
    let mut s = ShardSummary::default();
    let mut items = load(input, &mut s.skipped)?;
    s.samples = items.len() + s.skipped.len();
    let mut first_error: Option<String> = None;
    let mut fail = |s: &mut ShardSummary, why: &str, msg: String| {
        s.failed += 1;
        *s.reasons.entry(why.to_string()).or_default() += 1;
        first_error.get_or_insert(msg.clone());
        msg
    };
    for chunk in items.chunks_mut(cx.batch_size.max(1)) {
        cx.judge.serve(
            cx.engine.clone(),
            chunk
                .iter()
                .map(|i| (i.raw.key.clone(), i.image.clone()))
                .collect::<HashMap<_, _>>(),
        );
        let (prompts, pending) = prompt_and_generate(cx, chunk);
        let mut records: Vec<RoundRecord> = prompts
            .iter()
            .map(|p| RoundRecord {
                round: cx.round,
                model: cx.model.id.clone(),
                model_sha256: cx.model.sha256.clone(),
                template: cx.template.id.clone(),
                prompt: p.as_ref().map(|p| p.text.clone()).unwrap_or_default(),
                variant: p.as_ref().map(|p| p.variant.clone()).unwrap_or_default(),
                ..Default::default()
            })
            .collect();
        for ((rec, p), rx) in records.iter_mut().zip(&prompts).zip(pending) {
            match (p, rx) {
                (Err(e), _) => {
                    rec.error = Some(fail(&mut s, "template-error", format!("template: {e}")))
                }
                (Ok(_), Some(rx)) => match rx.recv() {
                    Ok(Ok(g)) if !g.text.trim().is_empty() => {
                        let text = drop_asked_sentences(cx, g.text.trim(), rec, &mut s);
                        if text.is_empty() {
                            *s.reasons.entry("self-relations-only".into()).or_default() += 1;
                            s.rejected += 1;
                        } else {
                            rec.recaption = Some(text)
                        }
                    }
                    Ok(Ok(_)) => {
                        *s.reasons.entry("empty-recaption".into()).or_default() += 1;
                        s.rejected += 1;
                    }
                    Ok(Err(e)) => {
                        rec.error = Some(fail(&mut s, "model-error", format!("model: {e}")))
                    }
                    Err(_) => return Err(PipelineError::Failed("the engine stopped".into())),
                },
                (Ok(_), None) => unreachable!("a prompt always has a pending generation"),
            }
        }
        if cx.score {
            let pending: Vec<_> = chunk
                .iter()
                .zip(&records)
                .map(|(it, r)| {
                    r.recaption.as_ref().map(|text| {
                        let input = PromptInput {
                            text: strip_image_token(&r.prompt).to_string(),
                            images: vec![(*it.image).clone()],
                            chat: true,
                        };
                        (input, text.clone())
                    })
                })
                .collect();
            // Submitted together so the engine scores them in batches.
            let replies: Vec<_> = pending
                .into_iter()
                .map(|job| job.map(|(input, text)| cx.engine.submit_score(input, text)))
                .collect();
            for (rec, rx) in records.iter_mut().zip(replies) {
                let Some(score) = rx.and_then(|rx| rx.recv().ok()).and_then(|r| r.ok()) else {
                    continue;
                };
                rec.mean_logprob = Some(score.mean_logprob as f32);
                let (Some(min), Some(text)) = (cx.min_sentence_logprob, &rec.recaption) else {
                    continue;
                };
                let pruned = prune(text, &score.token_ends, &score.token_logprobs, min);
                if pruned.dropped.is_empty() {
                    continue;
                }
                s.pruned_sentences += pruned.dropped.len();
                rec.pruned = pruned.dropped;
                if pruned.text.is_empty() {
                    rec.recaption = None;
                    *s.reasons.entry("pruned-empty".into()).or_default() += 1;
                    s.rejected += 1;
                } else {
                    rec.recaption = Some(pruned.text);
                }
            }
        }
        // Filters, in order, on the recaptions still standing.
        for f in cx.filters {
            let idx: Vec<usize> = (0..chunk.len())
                .filter(|&i| {
                    records[i].recaption.is_some() && records[i].verdicts.iter().all(|v| v.keep)
                })
                .collect();
            if idx.is_empty() {
                continue;
            }
            let batch: Vec<Candidate> = idx
                .iter()
                .map(|&i| Candidate {
                    sample: plugin_sample(&chunk[i]),
                    text: records[i].recaption.clone().unwrap_or_default(),
                    model: cx.model.id.clone(),
                    round: cx.round,
                    mean_logprob: records[i].mean_logprob,
                })
                .collect();
            let verdicts = per_item(f.plugin.filter(&batch), batch.len());
            for (&i, v) in idx.iter().zip(verdicts) {
                let rec = match v {
                    Ok(v) => FilterRecord {
                        plugin: f.id.clone(),
                        keep: v.keep,
                        score: Some(v.score),
                        reasons: v.reasons,
                        error: None,
                    },
                    Err(e) => {
                        let msg = fail(&mut s, "filter-error", format!("filter {}: {e}", f.id));
                        records[i].error = Some(msg.clone());
                        FilterRecord {
                            plugin: f.id.clone(),
                            keep: false,
                            score: None,
                            reasons: vec![],
                            error: Some(msg),
                        }
                    }
                };
                if !rec.keep && rec.error.is_none() {
                    s.rejected += 1;
                    for r in &rec.reasons {
                        *s.reasons.entry(r.clone()).or_default() += 1;
                    }
                    if rec.reasons.is_empty() {
                        *s.reasons.entry("rejected".into()).or_default() += 1;
                    }
                }
                records[i].verdicts.push(rec);
            }
        }
        for (it, mut rec) in chunk.iter_mut().zip(records) {
            rec.kept = rec.error.is_none() && rec.verdicts.iter().all(|v| v.keep);
            if let (true, Some(text)) = (rec.kept, &rec.recaption) {
                it.provenance.caption =
                    fuse(cx.fusion, &it.provenance.org_caption, text, &rec.prompt);
                s.recaptioned += 1;
            } else {
                rec.kept = false;
            }
            it.provenance.rounds.push(rec);
        }
    }
    cx.judge.clear();
    check_failures(task, &s, cx.max_failure_fraction, &first_error)?;
    write(output, &items)?;
    s.written = items.len();
    s.seconds = started.elapsed().as_secs_f64();
    s.images_per_s = s.written as f64 / s.seconds.max(1e-9);
    Ok(s)
}

/// Asks a specialist about every sample of `input`; its records (key → record) go to the
/// JSON-lines file `output`.
pub fn specialist_shard(
    cx: &RoundContext<'_>,
    task_name: &str,
    task: &str,
    input: &Path,
    output: &Path,
) -> Result<ShardSummary, PipelineError> {
    let started = Instant::now();
    let mut s = ShardSummary::default();
    let items = load(input, &mut s.skipped)?;
    s.samples = items.len() + s.skipped.len();
    let mut first_error = None;
    let mut lines = Vec::new();
    for chunk in items.chunks(cx.batch_size.max(1)) {
        let (prompts, pending) = prompt_and_generate(cx, chunk);
        let mut recs: Vec<SpecialistRecord> = Vec::with_capacity(chunk.len());
        for (p, rx) in prompts.iter().zip(pending) {
            let mut rec = SpecialistRecord {
                task: task_name.to_string(),
                model: cx.model.id.clone(),
                prompt: p.as_ref().map(|p| p.text.clone()).unwrap_or_default(),
                ..Default::default()
            };
            match (p, rx) {
                (Err(e), _) => rec.error = Some(format!("template: {e}")),
                (Ok(_), Some(rx)) => match rx.recv() {
                    Ok(Ok(g)) => rec.answer = g.text.trim().to_string(),
                    Ok(Err(e)) => rec.error = Some(format!("model: {e}")),
                    Err(_) => return Err(PipelineError::Failed("the engine stopped".into())),
                },
                (Ok(_), None) => unreachable!("a prompt always has a pending generation"),
            }
            recs.push(rec);
        }
        let idx: Vec<usize> = (0..chunk.len())
            .filter(|&i| recs[i].error.is_none())
            .collect();
        let outputs: Vec<SpecialistOutput> = idx
            .iter()
            .map(|&i| SpecialistOutput {
                sample: plugin_sample(&chunk[i]),
                task: task_name.to_string(),
                prompt: recs[i].prompt.clone(),
                answer: recs[i].answer.clone(),
                model: cx.model.id.clone(),
            })
            .collect();
        let processed = per_item(cx.template.plugin.process(&outputs), outputs.len());
        for (&i, p) in idx.iter().zip(processed) {
            match p {
                Ok(p) => {
                    recs[i].turns = p.turns;
                    recs[i].dropped = p.dropped;
                }
                Err(e) => recs[i].error = Some(format!("post-processor: {e}")),
            }
        }
        for (it, rec) in chunk.iter().zip(recs) {
            if let Some(e) = &rec.error {
                s.failed += 1;
                *s.reasons
                    .entry(e.split(':').next().unwrap_or("error").to_string())
                    .or_default() += 1;
                first_error.get_or_insert(e.clone());
            } else if rec.turns.is_empty() {
                s.rejected += 1;
                *s.reasons.entry("no-turns".into()).or_default() += 1;
            } else {
                s.recaptioned += 1;
            }
            lines.push(serde_json::json!({"key": it.raw.key, "record": rec}).to_string());
        }
    }
    check_failures(task, &s, cx.max_failure_fraction, &first_error)?;
    let mut text = lines.join("\n");
    text.push('\n');
    super::state::write_atomic(output, text.as_bytes())?;
    s.written = items.len();
    s.seconds = started.elapsed().as_secs_f64();
    s.images_per_s = s.written as f64 / s.seconds.max(1e-9);
    Ok(s)
}

/// Reads a specialist's JSON-lines records.
pub fn read_specialist(path: &Path) -> Result<HashMap<String, SpecialistRecord>, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(|e| PipelineError::Io {
        path: path.to_path_buf(),
        error: e,
    })?;
    let mut out = HashMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        #[derive(Deserialize)]
        struct Line {
            key: String,
            record: SpecialistRecord,
        }
        let l: Line = serde_json::from_str(line).map_err(|e| PipelineError::State {
            path: path.to_path_buf(),
            msg: format!("line {}: {e}", n + 1),
        })?;
        out.insert(l.key, l.record);
    }
    Ok(out)
}

/// Appends every specialist's turns to the captions of `input`, writing `output`.
pub fn fuse_specialists(
    input: &Path,
    specialists: &[HashMap<String, SpecialistRecord>],
    seed: u64,
    output: &Path,
) -> Result<ShardSummary, PipelineError> {
    let started = Instant::now();
    let mut s = ShardSummary::default();
    let mut items = load(input, &mut s.skipped)?;
    s.samples = items.len() + s.skipped.len();
    for it in &mut items {
        let recs: Vec<SpecialistRecord> = specialists
            .iter()
            .filter_map(|m| m.get(&it.raw.key).cloned())
            .collect();
        let turns: Vec<_> = recs.iter().flat_map(|r| r.turns.clone()).collect();
        if !turns.is_empty() {
            it.provenance.caption = append_turns(&it.provenance.caption, &turns, &it.raw.key, seed);
            s.recaptioned += 1;
        }
        it.provenance.specialist_turns.extend(recs);
    }
    write(output, &items)?;
    s.written = items.len();
    s.seconds = started.elapsed().as_secs_f64();
    Ok(s)
}
