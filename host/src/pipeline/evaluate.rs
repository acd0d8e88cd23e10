//! Held-out evaluation of a round's model: VQA accuracy by exact match per question kind,
//! and — where the images' ground truth is known — the precision, recall and
//! hallucination rate of the model's own detailed captions.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::PipelineError;
use super::config::EvalConfig;
use super::recaption::IMAGE_EXTS;
use crate::data::shapes::{PlacementScore, QaKind, Scene, caption_metrics, score_answer};
use crate::data::webdataset::{list_shards, read_shard};
use crate::vlm::engine::{EngineHandle, PromptInput};
use crate::vlm::generate::GenerationParams;
use crate::vlm::preprocess::decode_image;

/// One held-out question.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VqaItem {
    /// Image key.
    pub key: String,
    /// Question kind (colour, shape, count, position, relation, text).
    pub kind: QaKind,
    /// The question.
    pub question: String,
    /// The expected answer.
    pub answer: String,
}

/// Correct answers out of asked questions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Correct answers.
    pub correct: usize,
    /// Questions asked.
    pub total: usize,
}

impl Accuracy {
    /// correct / total (0 when nothing was asked).
    pub fn rate(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

/// Caption quality against ground truth, summed over the evaluation images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CaptionQuality {
    /// Captions scored.
    pub captions: usize,
    /// Mean words per caption.
    pub mean_words: f64,
    /// Correct object mentions / all object mentions.
    pub precision: f64,
    /// Ground-truth objects mentioned / ground-truth objects.
    pub recall: f64,
    /// Mentions of objects that are not in the image / all mentions.
    pub hallucination: f64,
    /// Mean log-probability of the captions under the model.
    pub mean_logprob: f64,
    /// Where the captions place objects in the frame (absent from evaluations made before it
    /// was scored).
    #[serde(default)]
    pub positions: Option<PlacementScore>,
}

/// A round's evaluation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// Accuracy per question kind.
    pub vqa: BTreeMap<String, Accuracy>,
    /// Accuracy over every question.
    pub vqa_overall: Accuracy,
    /// Caption quality, when ground truth is known.
    pub captions: Option<CaptionQuality>,
    /// A few (key, caption) examples.
    pub examples: Vec<(String, String)>,
    /// Images evaluated.
    pub images: usize,
    /// Wall time.
    pub seconds: f64,
}

fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(|e| PipelineError::Io {
        path: path.to_path_buf(),
        error: e,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).map_err(|e| PipelineError::State {
                path: path.to_path_buf(),
                msg: format!("line {}: {e}", n + 1),
            })
        })
        .collect()
}

/// Ground-truth scenes by key from a `{"key","scene"}` JSON-lines file.
pub fn read_scenes(path: &Path) -> Result<HashMap<String, Scene>, PipelineError> {
    #[derive(Deserialize)]
    struct Line {
        key: String,
        scene: Scene,
    }
    Ok(read_jsonl::<Line>(path)?
        .into_iter()
        .map(|l| (l.key, l.scene))
        .collect())
}

/// The evaluation images (sorted by key, at most `max` when `max > 0`).
pub fn read_images(dir: &Path, max: usize) -> Result<Vec<(String, RgbImage)>, PipelineError> {
    let mut out = Vec::new();
    for shard in list_shards(dir)? {
        for raw in read_shard(&shard)? {
            let Some(ext) = IMAGE_EXTS.iter().find(|e| raw.members.contains_key(**e)) else {
                continue;
            };
            let label = format!("{}:{}.{ext}", shard.display(), raw.key);
            let im =
                decode_image(&raw.members[*ext], &label).map_err(|e| PipelineError::Model {
                    model: shard.clone(),
                    error: e,
                })?;
            out.push((raw.key, im));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    if max > 0 {
        out.truncate(max);
    }
    Ok(out)
}

/// Evaluates the model behind `engine` on `cfg`'s held-out set.
pub fn evaluate(
    engine: &EngineHandle,
    cfg: &EvalConfig,
    caption_tokens: usize,
) -> Result<EvalResult, PipelineError> {
    let started = Instant::now();
    let images = read_images(&cfg.shards, cfg.max_images)?;
    let by_key: HashMap<&str, &RgbImage> = images.iter().map(|(k, im)| (k.as_str(), im)).collect();
    let questions: Vec<VqaItem> = read_jsonl::<VqaItem>(&cfg.vqa)?
        .into_iter()
        .filter(|q| by_key.contains_key(q.key.as_str()))
        .collect();
    let answer_params = GenerationParams {
        max_new_tokens: cfg.max_answer_tokens,
        ..Default::default()
    };
    let pending: Vec<_> = questions
        .iter()
        .map(|q| {
            engine.submit_generate(
                PromptInput {
                    text: q.question.clone(),
                    images: vec![by_key[q.key.as_str()].clone()],
                    chat: true,
                },
                answer_params.clone(),
            )
        })
        .collect();
    let mut result = EvalResult {
        images: images.len(),
        ..Default::default()
    };
    for (q, rx) in questions.iter().zip(pending) {
        let answer = rx
            .recv()
            .map_err(|_| PipelineError::Failed("the engine stopped".into()))?
            .map(|g| g.text)
            .unwrap_or_default();
        let ok = score_answer(q.kind, &answer, &q.answer);
        for acc in [
            result.vqa.entry(q.kind.name().to_string()).or_default(),
            &mut result.vqa_overall,
        ] {
            acc.total += 1;
            acc.correct += ok as usize;
        }
    }
    if let Some(scenes_path) = &cfg.scenes {
        let scenes = read_scenes(scenes_path)?;
        let caption_params = GenerationParams {
            max_new_tokens: caption_tokens,
            ..Default::default()
        };
        let scored: Vec<(&String, &RgbImage, &Scene)> = images
            .iter()
            .filter_map(|(k, im)| scenes.get(k).map(|s| (k, im, s)))
            .collect();
        let pending: Vec<_> = scored
            .iter()
            .map(|(_, im, _)| {
                engine.submit_generate(
                    PromptInput {
                        text: cfg.caption_prompt.clone(),
                        images: vec![(*im).clone()],
                        chat: true,
                    },
                    caption_params.clone(),
                )
            })
            .collect();
        let (mut mentioned, mut correct, mut gt, mut recalled, mut halluc) = (0, 0, 0, 0, 0);
        let (mut words, mut lp_sum, mut lp_n) = (0usize, 0.0, 0usize);
        let mut positions = PlacementScore::default();
        let mut scores = Vec::with_capacity(scored.len());
        for ((key, im, scene), rx) in scored.iter().zip(pending) {
            let text = rx
                .recv()
                .map_err(|_| PipelineError::Failed("the engine stopped".into()))?
                .map(|g| g.text)
                .unwrap_or_default();
            let m = caption_metrics(&text, scene);
            mentioned += m.mentioned;
            correct += m.correct;
            gt += m.gt_objects;
            recalled += m.recalled;
            halluc += m.hallucinated;
            positions.add(&text, scene);
            words += text.split_whitespace().count();
            if !text.trim().is_empty() {
                // Submitted as they come so the engine scores them in batches.
                scores.push(engine.submit_score(
                    PromptInput {
                        text: cfg.caption_prompt.clone(),
                        images: vec![(*im).clone()],
                        chat: true,
                    },
                    text.clone(),
                ));
            }
            if result.examples.len() < 4 {
                result.examples.push(((*key).clone(), text));
            }
        }
        for rx in scores {
            if let Ok(Ok(s)) = rx.recv() {
                lp_sum += s.mean_logprob;
                lp_n += 1;
            }
        }
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        result.captions = Some(CaptionQuality {
            captions: scored.len(),
            mean_words: ratio(words, scored.len()),
            precision: ratio(correct, mentioned),
            recall: ratio(recalled, gt),
            hallucination: ratio(halluc, mentioned),
            mean_logprob: if lp_n == 0 { 0.0 } else { lp_sum / lp_n as f64 },
            positions: Some(positions),
        });
    }
    result.seconds = started.elapsed().as_secs_f64();
    Ok(result)
}
