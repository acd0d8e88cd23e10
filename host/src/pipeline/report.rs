//! The per-round quality report: caption statistics of each dataset version, filter drop
//! rates and reasons, the judge's mean log-probability, recaption throughput and cost, and
//! the held-out evaluation — as `report.json`, `report.md` and SVG plots.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::PipelineError;
use super::evaluate::EvalResult;
use super::provenance::Provenance;
use super::recaption::{ShardSummary, read_specialist};
use super::state::write_atomic;
use crate::data::shapes::facts::relation_facts;
use crate::data::shapes::metrics::ratio;
use crate::data::shapes::{
    CHECKED_TASKS, CaptionTally, FactScore, PlacementScore, Scene, caption_metrics, task_facts,
};
use crate::data::webdataset::{list_shards, read_shard};
use crate::train::vision_pretrain::VisionPretrainSummary;

/// Caption statistics of one dataset version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetStats {
    /// Samples with a caption.
    pub samples: usize,
    /// Mean caption length in words.
    pub mean_words: f64,
    /// Distinct lowercase words over all captions.
    pub vocabulary: usize,
    /// Mean log-probability the recaptioning model gave its kept captions (when scored).
    pub mean_logprob: Option<f64>,
    /// The captions against the images' ground truth, when it is known.
    #[serde(default)]
    pub truth: Option<DataTruth>,
}

/// A dataset version's captions scored against its images' ground truth: what the next
/// model is taught, right or wrong.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DataTruth {
    /// Captions whose image has a known scene.
    pub captions: usize,
    /// Correct colour–shape mentions / mentions.
    pub precision: f64,
    /// Objects mentioned / objects.
    pub recall: f64,
    /// Mentions of objects not in the image / mentions.
    pub hallucination: f64,
    /// The spatial relation statements of the captions.
    pub relations: FactScore,
    /// Where the captions place objects in the frame (absent from reports written before it
    /// was scored).
    #[serde(default)]
    pub positions: Option<PlacementScore>,
}

impl DatasetStats {
    /// Reads every `.txt` (and `.json` provenance) of the shards in `dir`; with `scenes`
    /// (ground truth by key) the captions are also scored against it.
    pub fn of_dir(
        dir: &Path,
        scenes: Option<&HashMap<String, Scene>>,
    ) -> Result<Self, PipelineError> {
        let mut vocab = BTreeSet::new();
        let (mut n, mut words, mut lp, mut lp_n) = (0usize, 0usize, 0.0f64, 0usize);
        let mut tally = CaptionTally::default();
        let mut relations = FactScore::default();
        let mut positions = PlacementScore::default();
        for shard in list_shards(dir)? {
            for s in read_shard(&shard)? {
                let Some(text) = s
                    .members
                    .get("txt")
                    .and_then(|b| std::str::from_utf8(b).ok())
                else {
                    continue;
                };
                n += 1;
                if let Some(scene) = scenes.and_then(|m| m.get(&s.key)) {
                    tally.add(text, caption_metrics(text, scene));
                    relations += relation_facts(text, scene);
                    positions.add(text, scene);
                }
                for w in text.split_whitespace() {
                    words += 1;
                    let w: String = w
                        .chars()
                        .filter(|c| c.is_alphanumeric())
                        .flat_map(char::to_lowercase)
                        .collect();
                    if !w.is_empty() {
                        vocab.insert(w);
                    }
                }
                if let Some(p) = s
                    .members
                    .get("json")
                    .and_then(|b| serde_json::from_slice::<Provenance>(b).ok())
                    && let Some(r) = p.last_round()
                    && r.kept
                    && let Some(x) = r.mean_logprob
                {
                    lp += x as f64;
                    lp_n += 1;
                }
            }
        }
        Ok(Self {
            samples: n,
            mean_words: if n == 0 { 0.0 } else { words as f64 / n as f64 },
            vocabulary: vocab.len(),
            mean_logprob: (lp_n > 0).then(|| lp / lp_n as f64),
            truth: (tally.captions > 0).then(|| DataTruth {
                captions: tally.captions,
                precision: tally.precision(),
                recall: tally.recall(),
                hallucination: tally.hallucination_rate(),
                relations,
                positions: Some(positions),
            }),
        })
    }
}

/// Recaptioning counts of a round, summed over its shards.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecaptionStats {
    /// Samples read.
    pub samples: usize,
    /// Recaptions used.
    pub recaptioned: usize,
    /// Recaptions rejected by a filter.
    pub rejected: usize,
    /// Samples a plugin or the model failed on.
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
    /// Samples left out (undecodable image, no caption), with the reason.
    pub skipped: Vec<(String, String)>,
    /// Reasons with counts.
    pub reasons: BTreeMap<String, usize>,
    /// Images per second over the round's shard tasks.
    pub images_per_s: f64,
}

impl RecaptionStats {
    fn sum(shards: &[ShardSummary]) -> Self {
        let mut s = Self::default();
        let mut secs = 0.0;
        for x in shards {
            s.samples += x.samples;
            s.recaptioned += x.recaptioned;
            s.rejected += x.rejected;
            s.failed += x.failed;
            s.pruned_sentences += x.pruned_sentences;
            s.repeated_sentences += x.repeated_sentences;
            s.self_relations += x.self_relations;
            s.skipped.extend(x.skipped.iter().cloned());
            for (k, v) in &x.reasons {
                *s.reasons.entry(k.clone()).or_default() += v;
            }
            secs += x.seconds;
        }
        s.images_per_s = if secs > 0.0 {
            (s.samples - s.skipped.len()) as f64 / secs
        } else {
            0.0
        };
        s
    }

    /// Fraction of the recaptions a filter rejected or that failed.
    pub fn drop_rate(&self) -> f64 {
        let tried = self.samples.saturating_sub(self.skipped.len());
        if tried == 0 {
            0.0
        } else {
            (self.rejected + self.failed) as f64 / tried as f64
        }
    }
}

/// One row of the report: a dataset version and the model trained on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundReport {
    /// `round 0`, `round 1`, ..., `+ specialists`.
    pub label: String,
    /// The training captions.
    pub data: DatasetStats,
    /// How they were made (absent for the original data).
    pub recaption: Option<RecaptionStats>,
    /// The trained model's evaluation.
    pub eval: EvalResult,
    /// Training losses of the round's stages, in order.
    pub losses: Vec<f64>,
}

impl RoundReport {
    /// A row from its parts.
    pub fn new(
        label: String,
        data: DatasetStats,
        shards: Option<Vec<ShardSummary>>,
        eval: EvalResult,
        losses: Vec<f64>,
    ) -> Self {
        Self {
            label,
            data,
            recaption: shards.map(|s| RecaptionStats::sum(&s)),
            eval,
            losses,
        }
    }

    /// The score the saturation rule compares: overall VQA accuracy.
    pub fn score(&self) -> f64 {
        self.eval.vqa_overall.rate()
    }
}

/// The whole run's report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Fusion mode.
    pub fusion: String,
    /// Rows, in order.
    pub rounds: Vec<RoundReport>,
    /// Why the loop stopped before its last round, if it did.
    pub stopped_early: Option<String>,
    /// The augmented dataset.
    pub final_data: PathBuf,
    /// $ per GPU-hour used for the cost column.
    pub dollars_per_gpu_hour: f64,
    /// The specialists' answers against ground truth (when known), in run order.
    #[serde(default)]
    pub specialists: Vec<SpecialistCheck>,
    /// The vision pretraining stage before round 0, if the run had one.
    #[serde(default)]
    pub vision: Option<VisionPretrainSummary>,
}

/// A specialist's answers checked against the ground truth of the images it answered on
/// ([`task_facts`]): the facts its raw answers state, and those of the turns its
/// post-processor kept — what the final retraining is taught.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpecialistCheck {
    /// The specialist (`spatial`, `grounding`, `ocr`).
    pub name: String,
    /// Answers about images with a known scene.
    pub answers: usize,
    /// Of them, answers that gave at least one turn.
    pub with_turns: usize,
    /// Facts of the raw answers.
    pub answered: FactScore,
    /// Facts of the kept turns' answers.
    pub kept: FactScore,
    /// Facts of the raw answers about scenes of one object (none in reports made before
    /// this was counted).
    #[serde(default)]
    pub one_object: FactScore,
}

impl SpecialistCheck {
    /// Checks the answer records (`*.jsonl`) in `answers` of the specialist task `name`;
    /// `None` for a task without a checker.
    pub fn of_dir(
        name: &str,
        answers: &Path,
        scenes: &HashMap<String, Scene>,
    ) -> Result<Option<Self>, PipelineError> {
        if !CHECKED_TASKS.contains(&name) {
            return Ok(None);
        }
        let files = super::state::files_with_ext(answers, "jsonl")?;
        let mut check = Self {
            name: name.to_string(),
            ..Default::default()
        };
        for file in files {
            for (key, rec) in read_specialist(&file)? {
                let Some(scene) = scenes.get(&key) else {
                    continue;
                };
                check.answers += 1;
                check.with_turns += !rec.turns.is_empty() as usize;
                let facts = |t: &str| task_facts(name, t, scene).unwrap_or_default();
                let answered = facts(&rec.answer);
                check.answered += answered;
                if scene.objects.len() == 1 {
                    check.one_object += answered;
                }
                for turn in &rec.turns {
                    check.kept += facts(&turn.answer);
                }
            }
        }
        Ok(Some(check))
    }
}

impl RunReport {
    /// Cost of recaptioning 1k images at `images_per_s` (one accelerator).
    pub fn cost_per_1k(&self, images_per_s: f64) -> Option<f64> {
        (images_per_s > 0.0).then(|| 1000.0 / images_per_s / 3600.0 * self.dollars_per_gpu_hour)
    }

    /// The Markdown report (Tables 1 and 3 of VILA² in miniature).
    pub fn markdown(&self) -> String {
        let kinds: BTreeSet<&String> = self.rounds.iter().flat_map(|r| r.eval.vqa.keys()).collect();
        let mut md = String::from("# Augmentation report\n\n");
        md.push_str(&format!("Fusion: `{}`.", self.fusion));
        if let Some(why) = &self.stopped_early {
            md.push_str(&format!(" Stopped early: {why}."));
        }
        md.push_str(&format!(
            " Augmented data: `{}`.\n\n",
            self.final_data.display()
        ));
        if let Some(v) = &self.vision {
            let h = &v.held_out;
            md.push_str(&format!(
                "Vision tower pretrained {} steps on rendered scenes (loss {:.3} → {:.3}); on {} \
                 held-out scenes its heads read object patches' colour {:.1} %, shape {:.1} %, \
                 their object's horizontal third {:.1} % and vertical third {:.1} % right and \
                 its centre within {:.1} % of the side, background patches {:.1} %, text \
                 patches {:.1} % and their word {:.1} %, the object count {:.1} % and the \
                 exact colour–shape set {:.1} %.\n\n",
                v.steps,
                v.first_loss,
                v.final_loss,
                h.scenes,
                h.object_patch_color,
                h.object_patch_shape,
                h.object_patch_column,
                h.object_patch_row,
                h.object_patch_center_error,
                h.background_patch,
                h.text_patch,
                h.text_patch_word,
                h.count,
                h.pairs_exact,
            ));
        }
        md.push_str("## Training data and held-out evaluation\n\n");
        md.push_str("| data | caption words | vocab | eval caption words | precision | recall | hallucination |");
        for k in &kinds {
            md.push_str(&format!(" VQA {k} |"));
        }
        md.push_str(" VQA all |\n|---|---:|---:|---:|---:|---:|---:|");
        md.push_str(&"---:|".repeat(kinds.len() + 1));
        md.push('\n');
        let pct = |x: f64| format!("{:.1}", 100.0 * x);
        for r in &self.rounds {
            let c = r.eval.captions.unwrap_or_default();
            let has = r.eval.captions.is_some();
            let opt = |x: f64| if has { pct(x) } else { "–".into() };
            md.push_str(&format!(
                "| {} | {:.1} | {} | {} | {} | {} | {} |",
                r.label,
                r.data.mean_words,
                r.data.vocabulary,
                if has {
                    format!("{:.1}", c.mean_words)
                } else {
                    "–".into()
                },
                opt(c.precision),
                opt(c.recall),
                opt(c.hallucination),
            ));
            for k in &kinds {
                let a = r.eval.vqa.get(*k).copied().unwrap_or_default();
                md.push_str(&format!(" {} |", pct(a.rate())));
            }
            md.push_str(&format!(" {} |\n", pct(r.eval.vqa_overall.rate())));
        }
        md.push_str("\nPercentages; precision, recall and hallucination rate of the model's own captions of the held-out images against their ground truth.\n");
        self.truth_tables(&mut md);
        md.push_str("\n## Recaptioning\n\n");
        md.push_str("| round | samples | used | rejected | failed | skipped | drop rate | judge mean log-prob | images/s | $ per 1k images |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.rounds {
            let Some(s) = &r.recaption else { continue };
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} |\n",
                r.label,
                s.samples,
                s.recaptioned,
                s.rejected,
                s.failed,
                s.skipped.len(),
                pct(s.drop_rate()),
                r.data
                    .mean_logprob
                    .map_or("–".into(), |x| format!("{x:.3}")),
                s.images_per_s,
                self.cost_per_1k(s.images_per_s)
                    .map_or("–".into(), |c| format!("{c:.3}")),
            ));
        }
        let mut reasons = String::new();
        for r in &self.rounds {
            let Some(s) = &r.recaption else { continue };
            if s.repeated_sentences > 0 {
                reasons.push_str(&format!(
                    "- {}: repeated sentences dropped × {}\n",
                    r.label, s.repeated_sentences
                ));
            }
            if s.self_relations > 0 {
                reasons.push_str(&format!(
                    "- {}: sentences relating an object to itself dropped × {}\n",
                    r.label, s.self_relations
                ));
            }
            if s.pruned_sentences > 0 {
                reasons.push_str(&format!(
                    "- {}: sentences pruned for a low-probability token × {}\n",
                    r.label, s.pruned_sentences
                ));
            }
            for (why, n) in &s.reasons {
                reasons.push_str(&format!("- {}: {why} × {n}\n", r.label));
            }
            for (key, why) in s.skipped.iter().take(20) {
                reasons.push_str(&format!("- {}: skipped `{key}`: {why}\n", r.label));
            }
        }
        if !reasons.is_empty() {
            md.push_str("\n### Drop reasons and skipped samples\n\n");
            md.push_str(&reasons);
        }
        md.push_str(&format!(
            "\nCost assumes ${:.2} per GPU-hour on one accelerator at the measured rate.\n\n![VQA accuracy](vqa.svg) ![Caption length](caption_words.svg) ![Loss](loss.svg)\n",
            self.dollars_per_gpu_hour
        ));
        let examples: Vec<_> = self
            .rounds
            .iter()
            .filter_map(|r| r.eval.examples.first().map(|e| (&r.label, e)))
            .collect();
        if !examples.is_empty() {
            md.push_str("\n## A held-out caption per model\n\n");
            for (label, (key, text)) in examples {
                md.push_str(&format!(
                    "- {label} on `{key}`: {}\n",
                    text.replace('\n', " ")
                ));
            }
        }
        md
    }

    /// Where the training and the held-out captions place objects, where the truth is known.
    fn placement_table(&self, md: &mut String) {
        let rows: Vec<_> = self
            .rounds
            .iter()
            .map(|r| {
                let train = r.data.truth.and_then(|t| t.positions);
                let held = r.eval.captions.and_then(|c| c.positions);
                (&r.label, train, held)
            })
            .filter(|(_, t, h)| [t, h].into_iter().flatten().any(|p| p.all.stated > 0))
            .collect();
        if rows.is_empty() {
            return;
        }
        let cells = |p: Option<PlacementScore>| match p {
            Some(p) => format!(
                "{} | {} | {} | {} | {}",
                p.all.stated,
                share(p.all.grounded, p.all.stated),
                share(p.all.correct, p.all.grounded),
                p.one_object.grounded,
                share(p.one_object.correct, p.one_object.grounded)
            ),
            None => "– | – | – | – | –".into(),
        };
        md.push_str("\n## Where the captions place objects\n\n");
        md.push_str("| data | training: placed | about the image's objects | right | one-object scenes: about the object | right | held-out: placed | about the image's objects | right | one-object scenes: about the object | right |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (label, train, held) in rows {
            md.push_str(&format!(
                "| {label} | {} | {} |\n",
                cells(train),
                cells(held)
            ));
        }
        md.push_str("\nStatements that put a colour–shape object in a third of the frame (\"A red circle is in the top left.\", \"… on the left\", \"… at the top\", \"… in the center\"): how many, the share about an object of the image, and of those the share naming the thirds (vertical and horizontal) its centre is in; then, over the scenes of one object (where no object has to be told from another), the statements about that object and the share right. Percentages.\n");
    }

    /// The training captions and the specialists' answers against ground truth, where known.
    fn truth_tables(&self, md: &mut String) {
        let pct = |x: f64| format!("{:.1}", 100.0 * x);
        let facts = |f: &FactScore| {
            format!(
                "{} | {} | {}",
                f.stated,
                share(f.grounded, f.stated),
                share(f.correct, f.grounded)
            )
        };
        if self.rounds.iter().any(|r| r.data.truth.is_some()) {
            md.push_str("\n## Training captions against ground truth\n\n");
            md.push_str("| data | captions | precision | recall | hallucination | relation statements | per caption | about the image's objects | correct |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            for r in &self.rounds {
                let Some(t) = &r.data.truth else { continue };
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {:.2} | {} | {} |\n",
                    r.label,
                    t.captions,
                    pct(t.precision),
                    pct(t.recall),
                    pct(t.hallucination),
                    t.relations.stated,
                    ratio(t.relations.stated, t.captions),
                    share(t.relations.grounded, t.relations.stated),
                    share(t.relations.correct, t.relations.grounded),
                ));
            }
            md.push_str("\nThe captions each model trains on, against the pretraining images' scenes: colour–shape mentions (percentages) and the spatial relation statements (\"A is left of / right of / above / below B\", \"the shape closest to A is B\"): how many, the share naming two distinct objects of the image, and of those the share that holds.\n");
        }
        self.placement_table(md);
        if !self.specialists.is_empty() {
            md.push_str("\n## Specialist answers against ground truth\n\n");
            md.push_str("| specialist | answers | with turns | facts stated | about the image | correct | kept facts | about the image | correct | one-object scenes: facts stated | about the object | correct |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            for c in &self.specialists {
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} |\n",
                    c.name,
                    c.answers,
                    c.with_turns,
                    facts(&c.answered),
                    facts(&c.kept),
                    facts(&c.one_object)
                ));
            }
            md.push_str("\nFacts: spatial relations (as above), grounding boxes (correct at IoU ≥ 0.5 with the named object's box), text readings. \"Kept\": those in the turns the post-processor made, which the final retraining learns from. \"One-object scenes\": the raw answers about scenes of one object, where nothing has to be told from another — a box there is wrong only if the specialist does not read where the object is. Percentages; a share of nothing is a dash.\n");
        }
    }
}

/// `a / b` as a percentage with one decimal; a share of nothing (`b == 0`) is a dash.
fn share(a: usize, b: usize) -> String {
    if b == 0 {
        "–".to_string()
    } else {
        format!("{:.1}", 100.0 * ratio(a, b))
    }
}

fn line_svg(title: &str, series: &[(String, Vec<f64>)], x_label: &str) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let n = series.iter().map(|s| s.1.len()).max().unwrap_or(0).max(2);
        let (lo, hi) = series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .filter(|x| x.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(x), b.max(x))
            });
        let (lo, hi) = if lo.is_finite() {
            (lo, if hi > lo { hi } else { lo + 1.0 })
        } else {
            (0.0, 1.0)
        };
        let pad = (hi - lo) * 0.05;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..(n - 1) as f64, (lo - pad)..(hi + pad))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (name, ys)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    ys.iter().enumerate().map(|(x, y)| (x as f64, *y)),
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Writes `report.json`, `report.md` and the plots into `out`.
pub fn write(out: &Path, report: &RunReport) -> Result<(), PipelineError> {
    let json = serde_json::to_vec_pretty(report).expect("reports serialise");
    write_atomic(&out.join("report.json"), &json)?;
    write_atomic(&out.join("report.md"), report.markdown().as_bytes())?;
    let plot_err = |file: &str| {
        let path = out.join(file);
        move |msg: String| PipelineError::Output { path, msg }
    };
    let kinds: BTreeSet<&String> = report
        .rounds
        .iter()
        .flat_map(|r| r.eval.vqa.keys())
        .collect();
    let mut vqa: Vec<(String, Vec<f64>)> = kinds
        .iter()
        .map(|k| {
            (
                (*k).clone(),
                report
                    .rounds
                    .iter()
                    .map(|r| r.eval.vqa.get(*k).map_or(0.0, |a| a.rate()))
                    .collect(),
            )
        })
        .collect();
    vqa.push((
        "all".into(),
        report.rounds.iter().map(|r| r.score()).collect(),
    ));
    let svg = line_svg("VQA accuracy per round", &vqa, "round").map_err(plot_err("vqa.svg"))?;
    write_atomic(&out.join("vqa.svg"), svg.as_bytes())?;
    let words = vec![(
        "training captions".to_string(),
        report.rounds.iter().map(|r| r.data.mean_words).collect(),
    )];
    let svg = line_svg("Caption length (words)", &words, "round")
        .map_err(plot_err("caption_words.svg"))?;
    write_atomic(&out.join("caption_words.svg"), svg.as_bytes())?;
    let losses: Vec<(String, Vec<f64>)> = report
        .rounds
        .iter()
        .map(|r| (r.label.clone(), r.losses.clone()))
        .collect();
    let svg = line_svg("Training loss (align → pretrain → SFT)", &losses, "step")
        .map_err(plot_err("loss.svg"))?;
    write_atomic(&out.join("loss.svg"), svg.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shapes::facts::box_facts;
    use crate::data::shapes::tasks::{grounding_answer, spatial_answer};
    use crate::data::shapes::{SceneConfig, detailed_caption};
    use crate::pipeline::provenance::SpecialistRecord;
    use crate::plugin::records::QaTurn;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn where_captions_place_objects_is_scored_and_tabled() {
        let dir = tempfile::tempdir().unwrap();
        let one = SceneConfig {
            max_objects: 1,
            ..SceneConfig::default()
        };
        let several = SceneConfig {
            min_objects: 3,
            ..SceneConfig::default()
        };
        let scenes: HashMap<String, Scene> = [("k0", &one), ("k1", &several)]
            .into_iter()
            .enumerate()
            .map(|(i, (k, cfg))| {
                let s = Scene::random(&mut StdRng::seed_from_u64(i as u64), cfg);
                (k.to_string(), s)
            })
            .collect();
        // k0 (one object): its reference caption; k1: k0's caption, about another scene.
        let gold = detailed_caption(&scenes["k0"]);
        let mut w =
            crate::data::webdataset::ShardWriter::create(dir.path().join("shard-00000.tar"))
                .unwrap();
        w.add("k0", &[("txt", gold.as_bytes())]).unwrap();
        w.add("k1", &[("txt", gold.as_bytes())]).unwrap();
        w.finish().unwrap();
        let stats = DatasetStats::of_dir(dir.path(), Some(&scenes)).unwrap();
        let p = stats.truth.unwrap().positions.unwrap();
        let one_stated = |f: FactScore| (f.stated, f.grounded, f.correct);
        assert_eq!(one_stated(p.one_object), (1, 1, 1));
        assert_eq!(p.all.stated, 2, "one statement per caption: {p:?}");
        // Older reports, written before placements were scored, still read.
        let mut old = serde_json::to_value(stats.truth.unwrap()).unwrap();
        old.as_object_mut().unwrap().remove("positions");
        let old: DataTruth = serde_json::from_value(old).unwrap();
        assert_eq!(old.positions, None);
        // The report has the section only when a caption placed something.
        let round = |data| RoundReport {
            label: "round 1".into(),
            data,
            ..Default::default()
        };
        let md = RunReport {
            rounds: vec![round(stats.clone())],
            ..Default::default()
        }
        .markdown();
        assert!(md.contains("## Where the captions place objects"), "{md}");
        assert!(md.contains("| round 1 | 2 |"), "{md}");
        // Nothing placed: counts of 0, shares as dashes.
        let mut nothing = stats.clone();
        nothing.truth.as_mut().unwrap().positions = Some(PlacementScore::default());
        let mut r0 = round(nothing);
        r0.label = "round 0".into();
        r0.eval.captions = Some(crate::pipeline::evaluate::CaptionQuality {
            positions: Some(PlacementScore {
                all: FactScore {
                    stated: 3,
                    grounded: 2,
                    correct: 1,
                },
                ..Default::default()
            }),
            ..Default::default()
        });
        let md0 = RunReport {
            rounds: vec![r0],
            ..Default::default()
        }
        .markdown();
        assert!(
            md0.contains("| round 0 | 0 | – | – | 0 | – | 3 | 66.7 | 50.0 | 0 | – |\n"),
            "{md0}"
        );
        // No held-out placements (an evaluation made before they were scored): dashes.
        assert!(md.contains("| – | – | – | – | – |\n"), "{md}");
        let none = RunReport {
            rounds: vec![round(DatasetStats::default())],
            ..Default::default()
        };
        assert!(!none.markdown().contains("place objects"));
    }

    #[test]
    fn specialist_answers_are_checked_against_the_scenes() {
        let dir = tempfile::tempdir().unwrap();
        let scene = |seed| {
            let cfg = SceneConfig {
                min_objects: 3,
                ..SceneConfig::default()
            };
            Scene::random(&mut StdRng::seed_from_u64(seed), &cfg)
        };
        let scenes: HashMap<String, Scene> = (0..3).map(|i| (format!("k{i}"), scene(i))).collect();
        let rec = |answer: String, kept: &str| SpecialistRecord {
            task: "spatial".into(),
            answer,
            turns: vec![QaTurn {
                question: "Where?".into(),
                answer: kept.into(),
            }],
            ..Default::default()
        };
        // k0: the gold answer, kept whole; k1: another scene's answer, an empty turn kept;
        // a key without a scene is skipped.
        let gold = spatial_answer(&scenes["k0"]);
        let lines = [
            ("k0", rec(gold.clone(), &gold)),
            ("k1", rec(spatial_answer(&scene(99)), "")),
            ("nope", rec(gold.clone(), &gold)),
        ]
        .map(|(k, r)| serde_json::json!({"key": k, "record": r}).to_string());
        std::fs::write(dir.path().join("shard-00000.jsonl"), lines.join("\n")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a record file").unwrap();
        let c = SpecialistCheck::of_dir("spatial", dir.path(), &scenes)
            .unwrap()
            .unwrap();
        assert_eq!((c.answers, c.with_turns), (2, 2));
        let want = relation_facts(&gold, &scenes["k0"]);
        assert!(want.stated >= 2 && want.correct == want.stated, "{want:?}");
        assert_eq!(c.kept, want, "k1's empty turn states nothing");
        let k1 = relation_facts(&spatial_answer(&scene(99)), &scenes["k1"]);
        assert_eq!(c.answered.stated, want.stated + k1.stated);
        assert_eq!(c.answered.correct, want.correct + k1.correct);
        // A task without a checker has no row; a missing folder is an error naming it.
        assert_eq!(
            SpecialistCheck::of_dir("count", dir.path(), &scenes).unwrap(),
            None
        );
        let err = SpecialistCheck::of_dir("ocr", &dir.path().join("gone"), &scenes).unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
        // The report shows the row.
        let report = RunReport {
            specialists: vec![c],
            ..Default::default()
        };
        assert!(report.markdown().contains("| spatial | 2 | 2 |"));
    }

    #[test]
    fn specialist_answers_about_one_object_scenes_are_counted_apart() {
        let dir = tempfile::tempdir().unwrap();
        let scene = |seed, min_objects, max_objects| {
            let cfg = SceneConfig {
                min_objects,
                max_objects,
                ..SceneConfig::default()
            };
            Scene::random(&mut StdRng::seed_from_u64(seed), &cfg)
        };
        let scenes: HashMap<String, Scene> = HashMap::from([
            ("lone".into(), scene(1, 1, 1)),
            ("many".into(), scene(2, 3, 4)),
        ]);
        let lines = ["lone", "many"].map(|k| {
            let rec = SpecialistRecord {
                task: "grounding".into(),
                answer: grounding_answer(&scenes[k]),
                ..Default::default()
            };
            serde_json::json!({"key": k, "record": rec}).to_string()
        });
        std::fs::write(dir.path().join("shard-00000.jsonl"), lines.join("\n")).unwrap();
        let c = SpecialistCheck::of_dir("grounding", dir.path(), &scenes)
            .unwrap()
            .unwrap();
        let lone = box_facts(&grounding_answer(&scenes["lone"]), &scenes["lone"]);
        assert!(lone.stated >= 1 && lone.correct == lone.stated, "{lone:?}");
        assert_eq!(c.one_object, lone);
        assert!(c.answered.stated > lone.stated, "{c:?}");
        // A report written before the split reads, with nothing counted and dashes shown.
        let mut old = serde_json::to_value(&c).unwrap();
        old.as_object_mut().unwrap().remove("one_object");
        let old: SpecialistCheck = serde_json::from_value(old).unwrap();
        assert_eq!(old.one_object, FactScore::default());
        let md = |c: SpecialistCheck| {
            RunReport {
                specialists: vec![c],
                ..Default::default()
            }
            .markdown()
        };
        let n = lone.stated;
        assert!(md(c).contains(&format!("| {n} | 100.0 | 100.0 |\n")));
        assert!(md(old).contains("| 0 | – | – |\n"));
    }
}
