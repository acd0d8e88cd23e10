//! Writes the ShapesWorld dataset to a folder (layout in the [module doc](super)).

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde::{Deserialize, Serialize};

use super::captions::{AltTextConfig, alt_text, detailed_caption};
use super::files::{SceneRecord, VqaRecord};
use super::questions::{QaKind, closest_questions, questions, questions_of_kind};
use super::render::render;
use super::scene::{Scene, SceneConfig};
use super::tasks::{BRIEF_PROMPT, LONG_PROMPTS, Specialist};
use crate::data::DataError;
use crate::data::webdataset::ShardWriter;

/// Everything that determines a generated dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShapesConfig {
    /// Master seed.
    pub seed: u64,
    /// Image side in pixels.
    pub image_size: u32,
    /// Pretraining samples (alt-text captions).
    pub pretrain: usize,
    /// SFT samples (detailed caption + VQA conversations).
    pub sft: usize,
    /// VQA turns after the caption of each SFT conversation: up to this many of the scene's
    /// questions, or 0 for 2 or 3 drawn per sample.
    pub sft_questions: usize,
    /// Put the detailed caption first in every SFT conversation (and each specialist task's
    /// full answer first in its conversations). Off by default: the caption turn takes a
    /// random place among the VQA turns, so the questions asked before it must be answered
    /// from the image. Asked after the caption, every answer is already in the
    /// text, and a model trained only on those learns to copy it instead of looking — and
    /// the evaluation asks each question as the first turn (docs/RESULTS.md).
    pub sft_caption_first: bool,
    /// Samples per specialist task.
    pub specialist: usize,
    /// Held-out evaluation images.
    pub eval: usize,
    /// Samples per shard.
    pub shard_size: usize,
    /// Fewest objects per scene.
    pub min_objects: usize,
    /// Most objects per scene (≤ 4).
    pub max_objects: usize,
    /// Probability that a scene shows a word (the OCR set uses 0.9).
    pub text_prob: f64,
    /// Noise of the pretraining alt text.
    pub alt_text: AltTextConfig,
}

impl Default for ShapesConfig {
    fn default() -> Self {
        ShapesConfig {
            seed: 0,
            image_size: 64,
            pretrain: 2000,
            sft: 300,
            sft_questions: 0,
            sft_caption_first: false,
            specialist: 300,
            eval: 200,
            shard_size: 500,
            min_objects: 1,
            max_objects: 4,
            text_prob: 0.3,
            alt_text: AltTextConfig::default(),
        }
    }
}

impl ShapesConfig {
    /// The scene distribution of the pretrain, SFT, spatial, grounding and eval splits.
    pub fn scene_config(&self) -> SceneConfig {
        SceneConfig {
            image_size: self.image_size,
            min_objects: self.min_objects,
            max_objects: self.max_objects,
            text_prob: self.text_prob,
        }
    }

    /// Checks every field; the error names the field and its allowed range.
    pub fn validate(&self) -> Result<(), DataError> {
        for (name, v) in [
            ("pretrain", self.pretrain),
            ("sft", self.sft),
            ("specialist", self.specialist),
            ("eval", self.eval),
            ("shard_size", self.shard_size),
        ] {
            if v == 0 {
                return Err(DataError::Config(format!(
                    "{name} must be at least 1, got 0"
                )));
            }
        }
        for (name, p) in [
            ("alt_text.boilerplate_prob", self.alt_text.boilerplate_prob),
            ("alt_text.wrong_prob", self.alt_text.wrong_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(DataError::Config(format!("{name} {p} is not in 0..=1")));
            }
        }
        self.scene_config().validate().map_err(DataError::Config)
    }
}

/// One turn of a LLaVA conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// `human` or `gpt`.
    pub from: String,
    /// The text; the first human turn starts with `<image>\n`.
    pub value: String,
}

/// A LLaVA-format conversation: `{"conversations":[{"from":"human","value":…},…]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// Alternating human / gpt turns.
    pub conversations: Vec<Turn>,
}

impl Conversation {
    /// Builds a conversation from (question, answer) pairs, putting the `<image>` placeholder
    /// in the first human turn only.
    pub fn from_pairs(pairs: &[(String, String)]) -> Conversation {
        let mut turns = Vec::with_capacity(pairs.len() * 2);
        for (i, (q, a)) in pairs.iter().enumerate() {
            let value = if i == 0 {
                format!("<image>\n{q}")
            } else {
                q.clone()
            };
            turns.push(Turn {
                from: "human".into(),
                value,
            });
            turns.push(Turn {
                from: "gpt".into(),
                value: a.clone(),
            });
        }
        Conversation {
            conversations: turns,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateSummary {
    /// The output folder.
    pub out: PathBuf,
    /// Samples per split (`pretrain`, `sft`, `specialist/spatial`, ..., `eval`).
    pub samples: BTreeMap<String, usize>,
    /// Shards per split.
    pub shards: BTreeMap<String, usize>,
    /// Questions in `eval/vqa.jsonl`.
    pub eval_questions: usize,
    /// Lines of `corpus.txt`.
    pub corpus_lines: usize,
}

/// A text file written to `PATH.tmp-<pid>` and renamed on [`finish`](Self::finish).
struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    w: BufWriter<File>,
    lines: usize,
}

impl AtomicFile {
    fn create(path: PathBuf) -> Result<Self, DataError> {
        let mut tmp = path.clone().into_os_string();
        tmp.push(format!(".tmp-{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let f = File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        Ok(AtomicFile {
            path,
            tmp,
            w: BufWriter::new(f),
            lines: 0,
        })
    }

    fn line(&mut self, text: &str) -> Result<(), DataError> {
        self.lines += 1;
        writeln!(self.w, "{text}").map_err(|e| DataError::io(&self.tmp, e))
    }

    fn json_line<T: Serialize>(&mut self, v: &T) -> Result<(), DataError> {
        let s = serde_json::to_string(v).map_err(|e| DataError::Json {
            path: self.path.clone(),
            source: e,
        })?;
        self.line(&s)
    }

    fn finish(self) -> Result<usize, DataError> {
        let io = |e| DataError::io(&self.tmp, e);
        let f = self.w.into_inner().map_err(|e| io(e.into_error()))?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| DataError::io(&self.path, e))?;
        Ok(self.lines)
    }
}

/// Writes the samples of one split: shards of `shard_size` plus `scenes.jsonl`.
struct SplitWriter {
    dir: PathBuf,
    shard_size: usize,
    current: Option<ShardWriter>,
    shards: usize,
    samples: usize,
    scenes: AtomicFile,
}

impl SplitWriter {
    fn create(dir: PathBuf, shard_size: usize) -> Result<Self, DataError> {
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        let scenes = AtomicFile::create(dir.join("scenes.jsonl"))?;
        Ok(SplitWriter {
            dir,
            shard_size,
            current: None,
            shards: 0,
            samples: 0,
            scenes,
        })
    }

    fn add(
        &mut self,
        key: &str,
        scene: &Scene,
        members: &[(&str, &[u8])],
    ) -> Result<(), DataError> {
        if self.current.is_none() {
            let path = self.dir.join(format!("shard-{:05}.tar", self.shards));
            self.current = Some(ShardWriter::create(path)?);
            self.shards += 1;
        }
        let shard = self.current.as_mut().expect("opened above");
        shard.add(key, members)?;
        if shard.len() >= self.shard_size
            && let Some(full) = self.current.take()
        {
            full.finish()?;
        }
        self.samples += 1;
        self.scenes.json_line(&SceneRecord {
            key: key.to_string(),
            scene: scene.clone(),
        })
    }

    fn finish(mut self) -> Result<(usize, usize), DataError> {
        if let Some(s) = self.current.take() {
            s.finish()?;
        }
        self.scenes.finish()?;
        Ok((self.samples, self.shards))
    }
}

/// SplitMix64: a seed mixer, so nearby (seed, split, index) give unrelated streams.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG of sample `index` of split `split` (splits are numbered, see [`generate`]).
pub fn sample_rng(seed: u64, split: u64, index: usize) -> StdRng {
    StdRng::seed_from_u64(mix(mix(seed ^ mix(split)).wrapping_add(index as u64)))
}

fn png(key: &str, scene: &Scene) -> Result<Vec<u8>, DataError> {
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let img = render(scene);
    let mut buf = Vec::with_capacity(4096);
    PngEncoder::new_with_quality(&mut buf, CompressionType::Fast, FilterType::Adaptive)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| DataError::Image {
            key: key.to_string(),
            msg: e.to_string(),
        })?;
    Ok(buf)
}

fn conversation_json(key: &str, pairs: &[(String, String)]) -> Result<Vec<u8>, DataError> {
    serde_json::to_vec(&Conversation::from_pairs(pairs)).map_err(|e| DataError::Json {
        path: PathBuf::from(format!("{key}.json")),
        source: e,
    })
}

fn corpus_text(s: &str) -> String {
    s.replace('\n', " ")
}

/// Writes the dataset described by `cfg` into `out` (created if missing; must be empty).
pub fn generate(out: &Path, cfg: &ShapesConfig) -> Result<GenerateSummary, DataError> {
    cfg.validate()?;
    if out.exists() {
        let mut rd = std::fs::read_dir(out).map_err(|e| DataError::io(out, e))?;
        if rd.next().is_some() {
            return Err(DataError::OutputNotEmpty(out.to_path_buf()));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    let mut summary = GenerateSummary {
        out: out.to_path_buf(),
        ..GenerateSummary::default()
    };
    let mut corpus = AtomicFile::create(out.join("corpus.txt"))?;
    for p in LONG_PROMPTS.iter().chain([&BRIEF_PROMPT]) {
        corpus.line(p)?;
    }
    for s in Specialist::ALL {
        corpus.line(s.prompt())?;
    }
    let scenes = cfg.scene_config();
    // Every training scene, so that no evaluation image repeats one.
    let mut seen: HashSet<Scene> = HashSet::new();
    let record = |summary: &mut GenerateSummary, name: &str, w: SplitWriter| {
        let (n, shards) = w.finish()?;
        tracing::info!(split = name, samples = n, shards, "split written");
        summary.samples.insert(name.to_string(), n);
        summary.shards.insert(name.to_string(), shards);
        Ok::<(), DataError>(())
    };

    // Split 1: pretraining, noisy alt text.
    let mut w = SplitWriter::create(out.join("pretrain"), cfg.shard_size)?;
    for i in 0..cfg.pretrain {
        let key = format!("pretrain_{i:06}");
        let mut rng = sample_rng(cfg.seed, 1, i);
        let scene = Scene::random(&mut rng, &scenes);
        seen.insert(scene.clone());
        let alt = alt_text(&scene, &mut rng, &cfg.alt_text);
        corpus.line(&corpus_text(&alt))?;
        let img = png(&key, &scene)?;
        w.add(&key, &scene, &[("png", &img), ("txt", alt.as_bytes())])?;
    }
    record(&mut summary, "pretrain", w)?;

    // Split 2: SFT, a long prompt → the detailed caption and 2–3 VQA turns, the caption at a
    // random place among them (first when `sft_caption_first`).
    let mut w = SplitWriter::create(out.join("sft"), cfg.shard_size)?;
    for i in 0..cfg.sft {
        let key = format!("sft_{i:06}");
        let mut rng = sample_rng(cfg.seed, 2, i);
        let scene = Scene::random(&mut rng, &scenes);
        seen.insert(scene.clone());
        let prompt = LONG_PROMPTS
            .choose(&mut rng)
            .expect("non-empty")
            .to_string();
        let mut pairs = vec![(prompt, detailed_caption(&scene))];
        let turns = match cfg.sft_questions {
            0 if rand::Rng::random_bool(&mut rng, 0.5) => 2,
            0 => 3,
            n => n,
        };
        for q in questions(&scene, &mut rng).into_iter().take(turns) {
            pairs.push((q.question, q.answer));
        }
        for (q, a) in &pairs[1..] {
            corpus.line(&corpus_text(q))?;
            corpus.line(a)?;
        }
        corpus.line(&pairs[0].1)?;
        if !cfg.sft_caption_first {
            move_first_to_random_turn(&mut pairs, &mut rng);
        }
        let img = png(&key, &scene)?;
        let json = conversation_json(&key, &pairs)?;
        w.add(&key, &scene, &[("png", &img), ("json", &json)])?;
    }
    record(&mut summary, "sft", w)?;

    // Splits 3–5: specialist task data.
    for (tag, sp) in (3u64..).zip(Specialist::ALL) {
        let name = format!("specialist/{}", sp.name());
        let mut w = SplitWriter::create(out.join("specialist").join(sp.name()), cfg.shard_size)?;
        let sc = match sp {
            Specialist::Ocr => SceneConfig {
                text_prob: 0.9,
                ..scenes.clone()
            },
            _ => scenes.clone(),
        };
        for i in 0..cfg.specialist {
            let key = format!("{}_{i:06}", sp.name());
            let mut rng = sample_rng(cfg.seed, tag, i);
            let scene = Scene::random(&mut rng, &sc);
            seen.insert(scene.clone());
            let mut pairs = vec![(sp.prompt().to_string(), sp.answer(&scene))];
            let extra = match sp {
                Specialist::Spatial => {
                    let mut qs = questions_of_kind(&scene, QaKind::Relation, &mut rng);
                    qs.shuffle(&mut rng);
                    qs.truncate(2);
                    qs.extend(closest_questions(&scene).choose(&mut rng).cloned());
                    qs
                }
                Specialist::Ocr => questions_of_kind(&scene, QaKind::Text, &mut rng),
                Specialist::Grounding => Vec::new(),
            };
            for q in extra {
                corpus.line(&corpus_text(&q.question))?;
                corpus.line(&q.answer)?;
                pairs.push((q.question, q.answer));
            }
            corpus.line(&pairs[0].1)?;
            if !cfg.sft_caption_first {
                // As in SFT: questions asked after the full answer could be answered by
                // copying from it.
                move_first_to_random_turn(&mut pairs, &mut rng);
            }
            let img = png(&key, &scene)?;
            let json = conversation_json(&key, &pairs)?;
            w.add(&key, &scene, &[("png", &img), ("json", &json)])?;
        }
        record(&mut summary, &name, w)?;
    }

    // Split 6: held-out evaluation images (never equal to a training scene) and questions.
    let mut w = SplitWriter::create(out.join("eval"), cfg.shard_size)?;
    let mut vqa = AtomicFile::create(out.join("eval").join("vqa.jsonl"))?;
    for i in 0..cfg.eval {
        let key = format!("eval_{i:06}");
        let mut rng = sample_rng(cfg.seed, 6, i);
        let mut scene = Scene::random(&mut rng, &scenes);
        let mut redraws = 0;
        while seen.contains(&scene) && redraws < 100 {
            scene = Scene::random(&mut rng, &scenes);
            redraws += 1;
        }
        if redraws > 0 {
            tracing::debug!(
                key,
                redraws,
                "eval scene redrawn: it repeated a training scene"
            );
        }
        let caption = detailed_caption(&scene);
        corpus.line(&caption)?;
        for q in questions(&scene, &mut rng) {
            corpus.line(&corpus_text(&q.question))?;
            corpus.line(&q.answer)?;
            vqa.json_line(&VqaRecord {
                key: key.clone(),
                kind: q.kind,
                question: q.question,
                answer: q.answer,
            })?;
        }
        let img = png(&key, &scene)?;
        w.add(&key, &scene, &[("png", &img), ("txt", caption.as_bytes())])?;
    }
    record(&mut summary, "eval", w)?;
    summary.eval_questions = vqa.finish()?;
    summary.corpus_lines = corpus.finish()?;

    let mut meta = AtomicFile::create(out.join("shapes.json"))?;
    let json = serde_json::to_string_pretty(cfg).map_err(|e| DataError::Json {
        path: out.join("shapes.json"),
        source: e,
    })?;
    meta.line(&json)?;
    meta.finish()?;
    Ok(summary)
}

/// Moves the first (prompt, answer) turn to a random place among the turns.
fn move_first_to_random_turn<T>(pairs: &mut Vec<T>, rng: &mut impl rand::Rng) {
    let at = rng.random_range(0..pairs.len());
    let first = pairs.remove(0);
    pairs.insert(at, first);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::webdataset::{list_shards, read_shard};

    fn small() -> ShapesConfig {
        ShapesConfig {
            pretrain: 23,
            sft: 7,
            specialist: 5,
            eval: 6,
            shard_size: 10,
            ..ShapesConfig::default()
        }
    }

    #[test]
    fn generates_the_layout_deterministically() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let s = generate(a.path(), &small()).unwrap();
        generate(b.path(), &small()).unwrap();
        assert_eq!(s.samples["pretrain"], 23);
        assert_eq!(s.shards["pretrain"], 3);
        assert_eq!(s.samples["specialist/ocr"], 5);
        for f in [
            "pretrain/shard-00002.tar",
            "pretrain/scenes.jsonl",
            "sft/shard-00000.tar",
            "specialist/grounding/shard-00000.tar",
            "eval/vqa.jsonl",
            "corpus.txt",
            "shapes.json",
        ] {
            let (x, y) = (a.path().join(f), b.path().join(f));
            assert_eq!(
                std::fs::read(&x).unwrap(),
                std::fs::read(&y).unwrap(),
                "{f}"
            );
        }
        // The trainer's reader takes the pretraining shards as they are.
        let n = crate::train::data::count_samples(&a.path().join("pretrain")).unwrap();
        assert_eq!(n, 23);
        let mut reader = crate::train::data::ShardReader::open(&a.path().join("pretrain")).unwrap();
        let first = reader.next_sample().unwrap();
        assert_eq!(first.image.dimensions(), (64, 64));
        assert!(!first.caption.is_empty());
        assert_eq!(reader.stats.skipped(), 0);
        let scenes =
            crate::data::shapes::load_scenes(&a.path().join("pretrain/scenes.jsonl")).unwrap();
        assert_eq!(scenes.len(), 23);
        let vqa = crate::data::shapes::load_vqa(&a.path().join("eval/vqa.jsonl")).unwrap();
        assert_eq!(vqa.len(), s.eval_questions);
        assert!(vqa.iter().all(|q| q.key.starts_with("eval_")));
        let sft = read_shard(&list_shards(&a.path().join("sft")).unwrap()[0]).unwrap();
        let conv: Conversation = serde_json::from_slice(&sft[0].members["json"]).unwrap();
        assert!(conv.conversations[0].value.starts_with("<image>\n"));
        assert!(conv.conversations.len() >= 6);
        assert!(
            conv.conversations[2..]
                .iter()
                .all(|t| !t.value.contains("<image>"))
        );
        let e = generate(a.path(), &small()).unwrap_err();
        assert!(matches!(e, DataError::OutputNotEmpty(_)), "{e}");
    }

    /// The conversations of the first shard of `split` (a folder under the dataset).
    fn conversations(cfg: &ShapesConfig, split: &str) -> Vec<Conversation> {
        let d = tempfile::tempdir().unwrap();
        generate(d.path(), cfg).unwrap();
        let shard = read_shard(&list_shards(&d.path().join(split)).unwrap()[0]).unwrap();
        shard
            .iter()
            .map(|s| serde_json::from_slice(&s.members["json"]).unwrap())
            .collect()
    }

    #[test]
    fn sft_questions_sets_the_vqa_turns_per_conversation() {
        let turns = |sft_questions: usize| -> Vec<usize> {
            let cfg = ShapesConfig {
                sft_questions,
                ..small()
            };
            conversations(&cfg, "sft")
                .iter()
                .map(|c| c.conversations.len() / 2 - 1)
                .collect()
        };
        let drawn = turns(0);
        assert_eq!(drawn.len(), 7);
        assert!(drawn.iter().all(|&n| n <= 3), "{drawn:?}");
        let many = turns(6);
        assert!(many.iter().all(|&n| n <= 6), "{many:?}");
        assert!(
            many.iter().sum::<usize>() > drawn.iter().sum::<usize>() + drawn.len(),
            "{many:?} vs {drawn:?}"
        );
    }

    #[test]
    fn the_sft_caption_takes_a_random_turn_unless_asked_first() {
        let first_is_caption = |caption_first: bool| -> Vec<bool> {
            let cfg = ShapesConfig {
                sft: 40,
                shard_size: 40,
                sft_caption_first: caption_first,
                ..small()
            };
            conversations(&cfg, "sft")
                .iter()
                .map(|c| {
                    let first = c.conversations[0].value.trim_start_matches("<image>\n");
                    let captions = c
                        .conversations
                        .iter()
                        .filter(|t| LONG_PROMPTS.contains(&t.value.trim_start_matches("<image>\n")))
                        .count();
                    assert_eq!(captions, 1, "one caption turn per conversation");
                    LONG_PROMPTS.contains(&first)
                })
                .collect()
        };
        assert!(first_is_caption(true).iter().all(|&f| f));
        let shuffled = first_is_caption(false);
        let firsts = shuffled.iter().filter(|&&f| f).count();
        assert!(
            (3..=25).contains(&firsts),
            "{firsts} of 40 start with the caption"
        );
    }

    #[test]
    fn the_spatial_answer_takes_a_random_turn_unless_asked_first() {
        let firsts = |caption_first: bool| -> usize {
            let cfg = ShapesConfig {
                specialist: 40,
                shard_size: 40,
                sft_caption_first: caption_first,
                ..small()
            };
            let convs = conversations(&cfg, "specialist/spatial");
            assert_eq!(convs.len(), 40);
            convs
                .iter()
                .filter(|c| {
                    let prompts = c
                        .conversations
                        .iter()
                        .filter(|t| {
                            t.value.trim_start_matches("<image>\n") == Specialist::Spatial.prompt()
                        })
                        .count();
                    assert_eq!(prompts, 1, "one spatial prompt per conversation");
                    c.conversations[0].value.trim_start_matches("<image>\n")
                        == Specialist::Spatial.prompt()
                })
                .count()
        };
        assert_eq!(firsts(true), 40);
        let shuffled = firsts(false);
        assert!(
            (3..=25).contains(&shuffled),
            "{shuffled} of 40 start with the prompt"
        );
    }

    #[test]
    fn eval_scenes_never_repeat_training_scenes() {
        // A tiny scene space (32 px, one object, no text) where repeats are likely.
        let cfg = ShapesConfig {
            image_size: 32,
            max_objects: 1,
            text_prob: 0.0,
            pretrain: 3000,
            sft: 1,
            specialist: 1,
            eval: 300,
            shard_size: 1000,
            ..ShapesConfig::default()
        };
        let d = tempfile::tempdir().unwrap();
        generate(d.path(), &cfg).unwrap();
        let load = |p: &str| crate::data::shapes::load_scenes(&d.path().join(p)).unwrap();
        let train: HashSet<Scene> = load("pretrain/scenes.jsonl").into_values().collect();
        let eval = load("eval/scenes.jsonl");
        assert_eq!(eval.len(), 300);
        assert!(eval.values().all(|s| !train.contains(s)));
    }

    #[test]
    fn rejects_bad_configs() {
        let d = tempfile::tempdir().unwrap();
        for cfg in [
            ShapesConfig {
                image_size: 8,
                ..small()
            },
            ShapesConfig { eval: 0, ..small() },
            ShapesConfig {
                max_objects: 9,
                ..small()
            },
        ] {
            let e = generate(d.path(), &cfg).unwrap_err();
            assert!(matches!(e, DataError::Config(_)), "{e}");
        }
    }
}
