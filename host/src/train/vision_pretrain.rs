//! Vision-tower pretraining on ShapesWorld: the miniature's stand-in for the web-scale
//! pretraining (SigLIP, CLIP) that gives VILA's vision encoder its sight before any VLM
//! stage. A from-scratch tower learns objects poorly through the language model's caption
//! loss alone (docs/RESULTS.md), so this stage trains it directly on
//! [`scene_labels`]: what covers each patch (an object's colour, shape, the third of the
//! image its centre is in and the centre itself; text ink and the word) through a linear
//! head on every patch feature, and the object count and colour–shape pairs through a
//! linear head on their mean. Scenes are drawn fresh for every step from their own seed stream
//! (none is an image of the generated dataset's files), rendered, and preprocessed with the
//! model's image processor. Only the tower trains; the heads are dropped and the saved
//! folder is the init with the tower's new weights.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Reduction, Tensor};

use super::TrainError;
use super::checkpoint;
use super::optim::{AdamW, AdamWConfig, CosineSchedule};
use super::params::{Group, Param, Params, Stage};
use crate::data::shapes::generate::sample_rng;
use crate::data::shapes::labels::{
    COLOR_CLASSES, COUNT_CLASSES, NO_LABEL, PAIRS, SHAPE_CLASSES, SceneLabels, THIRDS,
    WORD_CLASSES, scene_labels,
};
use crate::data::shapes::{Scene, SceneConfig, render};
use crate::vlm::config::LlavaConfig;
use crate::vlm::llava::{LlavaModel, canonical_key};
use crate::vlm::preprocess::ImageProcessor;
use crate::vlm::weights::{Weights, weight_files};

/// Seed stream of the training scenes (ShapesWorld's dataset splits use 1–6).
const TRAIN_SPLIT: u64 = 100;
/// Seed stream of the held-out scenes of the final check.
const HELD_OUT_SPLIT: u64 = 101;
/// The parts of the per-patch head's output, in column order.
#[derive(Clone, Copy)]
enum Part {
    /// Colour classes.
    Color,
    /// Shape classes.
    Shape,
    /// Text ink yes/no.
    Text,
    /// The object's horizontal third.
    Column,
    /// The object's vertical third.
    Row,
    /// The word.
    Word,
    /// The object's centre, x and y.
    Center,
}

/// Width of each [`Part`], in order.
const PATCH_LAYOUT: [usize; 7] = [
    COLOR_CLASSES,
    SHAPE_CLASSES,
    2,
    THIRDS,
    THIRDS,
    WORD_CLASSES,
    2,
];
/// Weight of the centre's L1 error (fractions of the image side) in the loss: a centre a
/// fifth of the image off costs as much as one nat of a classification.
const CENTER_WEIGHT: f64 = 5.0;

/// The per-patch outputs of `part`.
fn patch_part(patch: &Tensor, part: Part) -> Tensor {
    let i = part as usize;
    let start: usize = PATCH_LAYOUT[..i].iter().sum();
    patch.narrow(-1, start as i64, PATCH_LAYOUT[i] as i64)
}

/// The L1 distance of the read centres from the objects' over the object patches `obj`,
/// summed over axes and patches.
fn center_error_sum(patch: &Tensor, b: &SceneBatch, obj: &Tensor) -> Tensor {
    ((patch_part(patch, Part::Center) - &b.center).abs() * obj.unsqueeze(-1).to_kind(Kind::Float))
        .sum(Kind::Float)
}
/// Outputs of the pooled head: count classes, then one logit per colour–shape pair.
const POOLED_OUT: i64 = (COUNT_CLASSES + PAIRS) as i64;

/// Settings of a vision pretraining run.
#[derive(Debug, Clone)]
pub struct VisionPretrainConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Scenes per step.
    pub batch_size: usize,
    /// Peak learning rate (cosine schedule, 3 % warmup).
    pub lr: f64,
    /// Seed of the scene stream and of the heads' initialisation.
    pub seed: u64,
    /// How scenes are drawn (the image side is the tower's).
    pub scenes: SceneConfig,
    /// Held-out scenes scored at the end (0: none).
    pub held_out: usize,
    /// Where it trains.
    pub device: Device,
}

impl VisionPretrainConfig {
    /// `steps` steps of 32 scenes at 1e-3, 512 held-out scenes, on the GPU if there is one.
    pub fn new(steps: usize, seed: u64) -> Self {
        Self {
            steps,
            batch_size: 32,
            lr: 1e-3,
            seed,
            scenes: SceneConfig::default(),
            held_out: 512,
            device: Device::cuda_if_available(),
        }
    }

    fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(format!("vision pretraining: {m}")));
        if self.steps == 0 || self.batch_size == 0 {
            return bad("steps and batch_size must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("the learning rate must be positive");
        }
        self.scenes
            .validate()
            .map_err(|m| TrainError::Config(format!("vision pretraining: scenes: {m}")))
    }
}

/// How well the tower's features tell the held-out scenes apart, through the trained heads.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HeldOutScore {
    /// Scenes scored.
    pub scenes: usize,
    /// Patches covered by an object whose colour was read right (%).
    pub object_patch_color: f64,
    /// Patches covered by an object whose shape was read right (%).
    pub object_patch_shape: f64,
    /// Background patches read as background (%).
    pub background_patch: f64,
    /// Patches whose text ink (or its absence) was read right (%).
    pub text_patch: f64,
    /// Object patches whose object's horizontal third was read right (%).
    #[serde(default)]
    pub object_patch_column: f64,
    /// Object patches whose object's vertical third was read right (%).
    #[serde(default)]
    pub object_patch_row: f64,
    /// Mean distance of the read centre from the object's, per axis, in % of the side.
    #[serde(default)]
    pub object_patch_center_error: f64,
    /// Text patches whose word was read right (%).
    #[serde(default)]
    pub text_patch_word: f64,
    /// Scenes whose object count was read right (%).
    pub count: f64,
    /// Scenes whose set of colour–shape pairs was read exactly (%).
    pub pairs_exact: f64,
}

/// What a vision pretraining run did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VisionPretrainSummary {
    /// Optimizer steps taken.
    pub steps: usize,
    /// Loss of the first step.
    pub first_loss: f64,
    /// Loss of the last step.
    pub final_loss: f64,
    /// Scalars of the tower that trained.
    pub trained_params: usize,
    /// Wall seconds of the training loop.
    pub seconds: f64,
    /// The final check on unseen scenes.
    pub held_out: HeldOutScore,
}

/// The tower with its two heads.
struct Heads {
    patch_w: Tensor,
    patch_b: Tensor,
    pooled_w: Tensor,
    pooled_b: Tensor,
}

impl Heads {
    fn new(dim: i64, device: Device) -> Self {
        let scale = 1.0 / (dim as f64).sqrt();
        let patch_out = PATCH_LAYOUT.iter().sum::<usize>() as i64;
        let w = |out: i64| {
            (Tensor::randn([out, dim], (Kind::Float, device)) * scale).set_requires_grad(true)
        };
        let b = |out: i64| Tensor::zeros([out], (Kind::Float, device)).set_requires_grad(true);
        Self {
            patch_w: w(patch_out),
            patch_b: b(patch_out),
            pooled_w: w(POOLED_OUT),
            pooled_b: b(POOLED_OUT),
        }
    }

    fn params(&self) -> Vec<Param> {
        [
            ("head.patch.weight", &self.patch_w, true),
            ("head.patch.bias", &self.patch_b, false),
            ("head.pooled.weight", &self.pooled_w, true),
            ("head.pooled.bias", &self.pooled_b, false),
        ]
        .into_iter()
        .map(|(key, t, decay)| Param {
            key: key.into(),
            tensor: t.shallow_clone(),
            group: Group::Vision,
            trainable: true,
            decay,
        })
        .collect()
    }

    /// Per-patch logits `[B, P, Σ PATCH_LAYOUT]` and pooled logits `[B, POOLED_OUT]` of the
    /// features `[B, N, D]` (the last `patches` tokens are the patch grid).
    fn forward(&self, feats: &Tensor, patches: i64) -> (Tensor, Tensor) {
        let n = feats.size()[1];
        let grid = feats.narrow(1, n - patches, patches);
        let patch = grid.linear(&self.patch_w, Some(&self.patch_b));
        let pooled = grid.mean_dim(1, false, Kind::Float);
        (patch, pooled.linear(&self.pooled_w, Some(&self.pooled_b)))
    }
}

/// One batch of scenes: pixels and label tensors on `device`.
struct SceneBatch {
    pixels: Tensor,
    color: Tensor,
    shape: Tensor,
    column: Tensor,
    row: Tensor,
    center: Tensor,
    text: Tensor,
    word: Tensor,
    count: Tensor,
    pairs: Tensor,
}

/// Where batches of labelled scenes come from: the seed streams, how scenes are drawn, and
/// how their images become the tower's pixels.
struct SceneSource {
    seed: u64,
    scenes: SceneConfig,
    processor: ImageProcessor,
    grid: usize,
    device: Device,
}

impl SceneSource {
    /// Scenes `first..first + n` of seed stream `split`, rendered and labelled.
    fn batch(&self, split: u64, first: usize, n: usize) -> SceneBatch {
        let mut pixels = Vec::with_capacity(n);
        let mut labels: Vec<SceneLabels> = Vec::with_capacity(n);
        for i in first..first + n {
            let scene = Scene::random(&mut sample_rng(self.seed, split, i), &self.scenes);
            pixels.push(self.processor.preprocess(&render(&scene)));
            labels.push(scene_labels(&scene, self.grid));
        }
        let device = self.device;
        let ints = |f: &dyn Fn(&SceneLabels) -> &[i64]| {
            let v: Vec<i64> = labels.iter().flat_map(|l| f(l).iter().copied()).collect();
            Tensor::from_slice(&v)
                .view([n as i64, -1])
                .to_device(device)
        };
        let pairs: Vec<f32> = labels
            .iter()
            .flat_map(|l| l.pairs.iter().copied())
            .collect();
        let count: Vec<i64> = labels.iter().map(|l| l.count).collect();
        let center: Vec<f32> = labels
            .iter()
            .flat_map(|l| l.center.iter().flatten().copied())
            .collect();
        SceneBatch {
            pixels: Tensor::stack(&pixels, 0).to_device(device),
            color: ints(&|l| &l.color),
            shape: ints(&|l| &l.shape),
            column: ints(&|l| &l.column),
            row: ints(&|l| &l.row),
            center: Tensor::from_slice(&center)
                .view([n as i64, -1, 2])
                .to_device(device),
            text: ints(&|l| &l.text),
            word: ints(&|l| &l.word),
            count: Tensor::from_slice(&count).to_device(device),
            pairs: Tensor::from_slice(&pairs)
                .view([n as i64, PAIRS as i64])
                .to_device(device),
        }
    }
}

/// The summed loss of the heads on a batch: cross-entropy of the patch colour and text
/// classes (mean over patches), of the shape and the object's thirds (mean over object
/// patches), of the word (mean over text patches) and of the count; the weighted L1 error
/// of the object's centre (object patches); binary cross-entropy of the pairs.
fn loss(patch: &Tensor, pooled: &Tensor, b: &SceneBatch) -> Tensor {
    let ce = |logits: &Tensor, target: &Tensor| {
        let k = logits.size()[logits.dim() - 1];
        logits.reshape([-1, k]).cross_entropy_loss::<Tensor>(
            &target.reshape([-1]),
            None,
            Reduction::Mean,
            NO_LABEL,
            0.0,
        )
    };
    let count = COUNT_CLASSES as i64;
    let obj = b.color.gt(0);
    // Shape is scored on object patches only: over every patch, the background majority
    // dilutes the signal of the one property the caption loss does not teach.
    let shape = b.shape.where_scalarother(&obj, NO_LABEL);
    let center =
        center_error_sum(patch, b, &obj) / obj.sum(Kind::Float).clamp_min(1.0) * CENTER_WEIGHT;
    ce(&patch_part(patch, Part::Color), &b.color)
        + ce(&patch_part(patch, Part::Shape), &shape)
        + ce(&patch_part(patch, Part::Text), &b.text)
        + ce(&patch_part(patch, Part::Column), &b.column)
        + ce(&patch_part(patch, Part::Row), &b.row)
        + word_loss(&ce, &patch_part(patch, Part::Word), &b.word)
        + center
        + ce(&pooled.narrow(-1, 0, count), &b.count)
        + pooled
            .narrow(-1, count, PAIRS as i64)
            .binary_cross_entropy_with_logits::<Tensor>(&b.pairs, None, None, Reduction::Mean)
}

/// Cross-entropy of the word on text patches; zero for a batch without text (cross-entropy
/// over no target is NaN).
fn word_loss(ce: &dyn Fn(&Tensor, &Tensor) -> Tensor, logits: &Tensor, word: &Tensor) -> Tensor {
    if word.ne(NO_LABEL).any().int64_value(&[]) != 0 {
        ce(logits, word)
    } else {
        logits.sum(Kind::Float) * 0.0
    }
}

/// Trains the vision tower of the HF LLaVA folder `init` on rendered scenes and saves the
/// whole model, with the new tower, to `out`. `on_step(step, loss)` follows the run.
pub fn run(
    init: &Path,
    out: &Path,
    cfg: &VisionPretrainConfig,
    mut on_step: impl FnMut(usize, f64),
) -> Result<VisionPretrainSummary, TrainError> {
    cfg.validate()?;
    tch::manual_seed(cfg.seed as i64);
    let device = cfg.device;
    let config = LlavaConfig::from_file(&init.join("config.json"))?;
    let (side, patch) = (config.vision.image_size, config.vision.patch_size);
    let grid = side / patch.max(1);
    let w = Weights::load(
        init,
        weight_files(init)?,
        Kind::Float,
        device,
        canonical_key,
    )?;
    let params = Params::select(&w, Stage::Sft, Some(&[Group::Vision]), &[])?;
    let model = LlavaModel::from_weights(init, config, &w, device, Kind::Float)?;
    let source = SceneSource {
        seed: cfg.seed,
        scenes: SceneConfig {
            image_size: side as u32,
            ..cfg.scenes.clone()
        },
        processor: ImageProcessor::load(init)?,
        grid,
        device,
    };
    let patches = (grid * grid) as i64;
    let heads = Heads::new(model.vision_feature_dim(), device);
    let head_params = heads.params();
    let trainable: Vec<&Param> = params.trainable().chain(&head_params).collect();
    let trained_params = params.trainable_count();
    let inputs: Vec<&Tensor> = trainable.iter().map(|p| &p.tensor).collect();
    let mut opt = AdamW::new(
        AdamWConfig {
            weight_decay: 0.01,
            ..AdamWConfig::default()
        },
        &trainable,
    );
    let schedule = CosineSchedule::new(cfg.lr, cfg.steps, 0.03);
    tracing::info!(
        init = %init.display(),
        steps = cfg.steps,
        batch = cfg.batch_size,
        grid,
        trained_params,
        "vision pretraining"
    );
    let start = Instant::now();
    let (mut first_loss, mut final_loss) = (f64::NAN, f64::NAN);
    for step in 0..cfg.steps {
        let b = source.batch(TRAIN_SPLIT, step * cfg.batch_size, cfg.batch_size);
        let (p, q) = heads.forward(&model.vision_features(&b.pixels), patches);
        let l = loss(&p, &q, &b);
        let v = l.double_value(&[]);
        if !v.is_finite() {
            return Err(TrainError::NonFinite {
                step: step + 1,
                loss: v,
                checkpoint: None,
            });
        }
        let grads = Tensor::f_run_backward(&[&l], &inputs, false, false)?;
        opt.clip_and_step(&trainable, grads, schedule.lr(step), 1.0, device.is_cuda());
        if step == 0 {
            first_loss = v;
        }
        final_loss = v;
        on_step(step + 1, v);
    }
    let seconds = start.elapsed().as_secs_f64();
    let held_out = score(&model, &heads, &source, cfg.held_out);
    tracing::info!(?held_out, seconds, "vision pretraining done");
    checkpoint::save(&params.all, init, out)?;
    Ok(VisionPretrainSummary {
        steps: cfg.steps,
        first_loss,
        final_loss,
        trained_params,
        seconds,
        held_out,
    })
}

/// Scores the heads on the first `held_out` scenes of the held-out stream.
fn score(model: &LlavaModel, heads: &Heads, source: &SceneSource, held_out: usize) -> HeldOutScore {
    let _guard = tch::no_grad_guard();
    let patches = (source.grid * source.grid) as i64;
    let k = COUNT_CLASSES as i64;
    let mut hits = [0i64; 9];
    let (mut object_patches, mut background, mut all_patches) = (0i64, 0i64, 0i64);
    let (mut word_patches, mut center_err) = (0i64, 0f64);
    let chunk = 64;
    for first in (0..held_out).step_by(chunk) {
        let n = chunk.min(held_out - first);
        let b = source.batch(HELD_OUT_SPLIT, first, n);
        let (p, q) = heads.forward(&model.vision_features(&b.pixels), patches);
        let obj = b.color.gt(0);
        let sum = |t: Tensor| t.sum(Kind::Int64).int64_value(&[]);
        let read = |part: Part| patch_part(&p, part).argmax(-1, false);
        let (color, shape, text) = (read(Part::Color), read(Part::Shape), read(Part::Text));
        hits[0] += sum(color.eq_tensor(&b.color).logical_and(&obj));
        hits[1] += sum(shape.eq_tensor(&b.shape).logical_and(&obj));
        hits[2] += sum(color.eq(0).logical_and(&obj.logical_not()));
        hits[3] += sum(text.eq_tensor(&b.text));
        hits[4] += sum(q.narrow(-1, 0, k).argmax(-1, false).eq_tensor(&b.count));
        let pairs = q.narrow(-1, k, PAIRS as i64).gt(0.0);
        let exact = pairs.eq_tensor(&b.pairs.gt(0.5)).all_dim(-1, false);
        hits[5] += sum(exact);
        hits[6] += sum(read(Part::Column).eq_tensor(&b.column).logical_and(&obj));
        hits[7] += sum(read(Part::Row).eq_tensor(&b.row).logical_and(&obj));
        let has_word = b.word.ne(NO_LABEL);
        hits[8] += sum(read(Part::Word).eq_tensor(&b.word).logical_and(&has_word));
        word_patches += sum(has_word);
        center_err += center_error_sum(&p, &b, &obj).double_value(&[]);
        object_patches += sum(obj.shallow_clone());
        background += sum(obj.logical_not());
        all_patches += n as i64 * patches;
    }
    let pct = |h: i64, n: i64| {
        if n == 0 {
            0.0
        } else {
            100.0 * h as f64 / n as f64
        }
    };
    let scenes_n = held_out as i64;
    HeldOutScore {
        scenes: held_out,
        object_patch_color: pct(hits[0], object_patches),
        object_patch_shape: pct(hits[1], object_patches),
        background_patch: pct(hits[2], background),
        text_patch: pct(hits[3], all_patches),
        object_patch_column: pct(hits[6], object_patches),
        object_patch_row: pct(hits[7], object_patches),
        object_patch_center_error: if object_patches == 0 {
            0.0
        } else {
            100.0 * center_err / (2 * object_patches) as f64
        },
        text_patch_word: pct(hits[8], word_patches),
        count: pct(hits[4], scenes_n),
        pairs_exact: pct(hits[5], scenes_n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::init::{ModelSpec, init_model};

    fn corpus(dir: &Path) -> std::path::PathBuf {
        let p = dir.join("corpus.txt");
        std::fs::write(&p, "a red circle and a blue square\nthe text reads CAT\n").unwrap();
        p
    }

    #[test]
    fn only_the_tower_changes_and_the_heads_learn() {
        let tmp = tempfile::tempdir().unwrap();
        let init = tmp.path().join("init");
        init_model(&ModelSpec::tiny(), &corpus(tmp.path()), &init, 3).unwrap();
        let out = tmp.path().join("out");
        let mut cfg = VisionPretrainConfig::new(150, 5);
        cfg.batch_size = 16;
        cfg.lr = 3e-3;
        cfg.held_out = 128;
        cfg.device = Device::Cpu;
        let mut losses = Vec::new();
        let s = run(&init, &out, &cfg, |_, l| losses.push(l)).unwrap();
        assert_eq!(losses.len(), 150);
        let head: f64 = losses[..10].iter().sum::<f64>() / 10.0;
        let tail: f64 = losses[140..].iter().sum::<f64>() / 10.0;
        assert!(tail < 0.8 * head, "loss {head} -> {tail}");
        // Colour is one pixel value away: 150 steps read it on most object patches.
        assert!(s.held_out.object_patch_color > 50.0, "{:?}", s.held_out);
        assert!(s.held_out.background_patch > 80.0, "{:?}", s.held_out);
        let h = &s.held_out;
        for pct in [
            h.object_patch_column,
            h.object_patch_row,
            h.text_patch_word,
            h.object_patch_center_error,
        ] {
            assert!((0.0..=100.0).contains(&pct), "{h:?}");
        }
        // A centre guessed at the image's middle is 25 % of the side off on average.
        assert!(h.object_patch_center_error < 25.0, "{h:?}");
        let load = |d: &Path| {
            let w = Weights::load(
                d,
                weight_files(d).unwrap(),
                Kind::Float,
                Device::Cpu,
                canonical_key,
            )
            .unwrap();
            let mut v: Vec<_> = w
                .named_tensors()
                .map(|(k, t)| (k.to_string(), t.shallow_clone()))
                .collect();
            v.sort_by(|x, y| x.0.cmp(&y.0));
            v
        };
        let (a, b) = (load(&init), load(&out));
        assert_eq!(a.len(), b.len(), "the heads are not saved");
        let mut changed_tower = 0;
        for ((ka, ta), (kb, tb)) in a.iter().zip(&b) {
            assert_eq!(ka, kb);
            let same = ta.equal(tb);
            if Group::of(ka) == Group::Vision {
                changed_tower += usize::from(!same);
            } else {
                assert!(same, "{ka} changed");
            }
        }
        assert!(changed_tower > 10, "{changed_tower} tower tensors changed");
        assert!(out.join("tokenizer.json").exists() || out.join("config.json").exists());
    }

    #[test]
    fn scores_recorded_before_the_position_and_word_heads_still_load() {
        let old = r#"{"scenes":512,"object_patch_color":99.4,"object_patch_shape":91.9,
            "background_patch":99.9,"text_patch":99.8,"count":93.9,"pairs_exact":7.6}"#;
        let h: HeldOutScore = serde_json::from_str(old).unwrap();
        assert_eq!(
            (h.scenes, h.object_patch_column, h.text_patch_word),
            (512, 0.0, 0.0)
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = VisionPretrainConfig::new(0, 1);
        let e = run(tmp.path(), &tmp.path().join("o"), &cfg, |_, _| {}).unwrap_err();
        assert!(e.to_string().contains("steps"), "{e}");
        cfg.steps = 1;
        cfg.scenes.max_objects = 9;
        let e = run(tmp.path(), &tmp.path().join("o"), &cfg, |_, _| {}).unwrap_err();
        assert!(e.to_string().contains("max_objects"), "{e}");
    }
}
