//! The run document: one TOML file describes an augmentation run (data, model, training
//! recipe, plugins, rounds, specialists) and is stored with its results.
//!
//! Relative paths resolve against the folder holding the file. A plugin named without a
//! path separator (`plugin = "vila2_recaption"`) is looked up as `NAME.wasm` in
//! `components_dir` (default: the `VILA2_COMPONENTS` environment variable).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::PipelineError;
use crate::train::{Group, Stage};

/// How a recaption is combined with the caption it refines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fusion {
    /// The recaption alone.
    Replace,
    /// VILA's "### Short description: … ### Long description: …".
    #[default]
    Concat,
    /// The original caption, then the recaption as a question–answer turn.
    Qa,
}

impl std::fmt::Display for Fusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fusion::Replace => "replace",
            Fusion::Concat => "concat",
            Fusion::Qa => "qa",
        })
    }
}

/// A plugin and the JSON configuration it is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    /// Path of the `.wasm` component, or a component name in `components_dir`.
    pub plugin: String,
    /// Passed to the plugin's `configure` (as JSON).
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

/// Where the data is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// WebDataset shards to augment (image + `.txt` caption): the pretraining set.
    pub pretrain: PathBuf,
    /// Supervised fine-tuning shards (conversations), used by every round's SFT stage.
    pub sft: PathBuf,
    /// Ground truth of the pretraining images (`{"key","scene"}` lines), when known.
    #[serde(default)]
    pub ground_truth: Option<PathBuf>,
}

/// The held-out evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Shards with the evaluation images.
    pub shards: PathBuf,
    /// `{"key","kind","question","answer"}` lines.
    pub vqa: PathBuf,
    /// Ground truth of the evaluation images, for caption precision / recall.
    #[serde(default)]
    pub scenes: Option<PathBuf>,
    /// The prompt the evaluated captions are written with.
    #[serde(default = "default_caption_prompt")]
    pub caption_prompt: String,
    /// Evaluate on at most this many images (0 = all).
    #[serde(default)]
    pub max_images: usize,
    /// Longest answer, in tokens.
    #[serde(default = "default_answer_tokens")]
    pub max_answer_tokens: usize,
}

fn default_caption_prompt() -> String {
    "Describe the image in details.".into()
}
fn default_answer_tokens() -> usize {
    8
}

/// Where round 0's model comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// A model spec file (TOML) or `tiny`: a random model built from it, with a tokenizer
    /// trained on `corpus`; every round retrains from this same initialisation.
    #[serde(default)]
    pub spec: Option<String>,
    /// Text file the tokenizer is trained on (with `spec`).
    #[serde(default)]
    pub corpus: Option<PathBuf>,
    /// Tokenizer vocabulary size (with `spec`; default: the spec's).
    #[serde(default)]
    pub vocab_size: Option<usize>,
    /// An existing HF LLaVA folder to initialise every round from instead of `spec`.
    #[serde(default)]
    pub init: Option<PathBuf>,
}

/// Settings of one training stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Optimizer steps (0 skips the stage).
    pub steps: usize,
    /// Peak learning rate (default: the stage's paper value).
    #[serde(default)]
    pub lr: Option<f64>,
    /// Samples per step.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Groups to train instead of the stage's (`vision`, `projector`, `llm`); e.g. a model
    /// built from scratch has no pretrained vision tower to keep frozen in `pretrain`.
    #[serde(default)]
    pub train: Option<Vec<Group>>,
    /// Steps whose samples are drawn together and batched by token length, so a batch pads
    /// only to samples of similar length (1 or absent: each step takes its samples in drawn
    /// order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_group: Option<usize>,
}

fn default_batch() -> usize {
    8
}

impl StageConfig {
    /// Checks the settings of the stage called `name` in messages.
    fn check(&self, name: &str) -> Result<(), String> {
        if self.batch_size == 0 {
            return Err(format!("{name}.batch_size: must be at least 1"));
        }
        if self.length_group == Some(0) {
            return Err(format!(
                "{name}.length_group: must be at least 1 (steps batched by length together)"
            ));
        }
        Ok(())
    }
}

/// Settings of the vision pretraining stage ([`crate::train::vision_pretrain`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisionStageConfig {
    /// Optimizer steps (0 skips the stage).
    pub steps: usize,
    /// Peak learning rate.
    #[serde(default = "default_vision_lr")]
    pub lr: f64,
    /// Scenes per step.
    #[serde(default = "default_vision_batch")]
    pub batch_size: usize,
}

fn default_vision_lr() -> f64 {
    1e-3
}

fn default_vision_batch() -> usize {
    32
}

/// The training recipe of every round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainRecipe {
    /// Projector alignment on the pretraining captions.
    pub align: StageConfig,
    /// Projector + LLM on the pretraining captions.
    pub pretrain: StageConfig,
    /// Everything on the SFT set.
    pub sft: StageConfig,
    /// Specialist fine-tuning from the self-augmented model.
    #[serde(default)]
    pub specialist: Option<StageConfig>,
    /// Vision-tower pretraining on rendered ShapesWorld scenes before round 0 (the
    /// miniature's stand-in for a pretrained vision encoder); every round starts from the
    /// model it leaves.
    #[serde(default)]
    pub vision: Option<VisionStageConfig>,
    /// Longest training sequence in tokens.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
}

fn default_max_len() -> usize {
    512
}

impl TrainRecipe {
    /// The settings of `stage`.
    pub fn stage(&self, stage: Stage) -> Option<&StageConfig> {
        match stage {
            Stage::Align => Some(&self.align),
            Stage::Pretrain => Some(&self.pretrain),
            Stage::Sft => Some(&self.sft),
            Stage::Specialist => self.specialist.as_ref(),
        }
    }
}

/// How the pretraining images are recaptioned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecaptionConfig {
    /// The prompt-template plugin.
    pub template: PluginRef,
    /// Caption-filter plugins, applied in order; a recaption any of them rejects is dropped
    /// and the sample keeps its previous caption.
    #[serde(default)]
    pub filters: Vec<PluginRef>,
    /// Longest recaption, in tokens.
    #[serde(default = "default_caption_tokens")]
    pub max_new_tokens: usize,
    /// Samples sent to the engine and the plugins at once.
    #[serde(default = "default_recaption_batch")]
    pub batch_size: usize,
    /// Score every recaption with the model that wrote it (mean log-probability).
    #[serde(default = "yes")]
    pub score: bool,
    /// Drop each recaption sentence in which the model gave some token a log-probability
    /// under this (it was guessing), before the filters; a recaption left with no sentence
    /// keeps the previous caption. Needs `score`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_sentence_logprob: Option<f64>,
    /// Drop each recaption sentence that repeats an earlier one (a small model's greedy
    /// decoding loops), before scoring and filters; the provenance counts them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drop_repeated_sentences: bool,
    /// Drop each recaption sentence that relates an object to itself ("the blue triangle is
    /// left of the blue triangle"), before scoring and filters; a recaption left with no
    /// sentence keeps the previous caption. The provenance keeps the sentences dropped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drop_self_relations: bool,
}

fn default_caption_tokens() -> usize {
    96
}
fn default_recaption_batch() -> usize {
    16
}
fn yes() -> bool {
    true
}

/// One specialist of the specialist-augmentation stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecialistConfig {
    /// Task name (`spatial`, `grounding`, `ocr`, ...).
    pub name: String,
    /// A `specialist` (template + post-processor) component.
    pub plugin: PluginRef,
    /// Task data: conversation shards the specialist is fine-tuned on.
    pub data: PathBuf,
    /// Its own fine-tuning settings, instead of `[train] specialist` (a task that needs a
    /// longer fine-tune than the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<StageConfig>,
}

/// The whole run document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Seed of everything random in the run.
    #[serde(default)]
    pub seed: u64,
    /// Self-augmentation rounds after round 0.
    pub rounds: u32,
    /// Stop early when a round improves the evaluation score by less than this.
    #[serde(default)]
    pub min_gain: Option<f64>,
    /// How recaptions are combined with the previous captions.
    #[serde(default)]
    pub fusion: Fusion,
    /// Stop when more than this fraction of a shard's samples fail in a plugin or the engine.
    #[serde(default = "default_failure_fraction")]
    pub max_failure_fraction: f64,
    /// Cost of one GPU-hour, for the report's cost per 1k images.
    #[serde(default = "default_gpu_hour")]
    pub dollars_per_gpu_hour: f64,
    /// Folder of first-party components (default: `$VILA2_COMPONENTS`).
    #[serde(default)]
    pub components_dir: Option<PathBuf>,
    /// libtorch intra-op threads for training and the engine (default: the `--threads` flag,
    /// else one per core). Not part of what the run computes: it may change on resume.
    #[serde(default, skip_serializing)]
    pub threads: Option<usize>,
    /// Data.
    pub data: DataConfig,
    /// Evaluation.
    pub eval: EvalConfig,
    /// Initial model.
    pub model: ModelConfig,
    /// Training recipe.
    pub train: TrainRecipe,
    /// Recaptioning.
    pub recaption: RecaptionConfig,
    /// Specialists (empty: no specialist stage).
    #[serde(default)]
    pub specialists: Vec<SpecialistConfig>,
    /// Free-form labels stored with the run.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_failure_fraction() -> f64 {
    0.5
}
fn default_gpu_hour() -> f64 {
    4.91
}

impl RunConfig {
    /// The fine-tuning settings of `spec`: its own, else `[train] specialist` (one of them
    /// exists in a checked document).
    pub fn specialist_stage<'a>(&'a self, spec: &'a SpecialistConfig) -> &'a StageConfig {
        spec.train
            .as_ref()
            .or(self.train.specialist.as_ref())
            .expect("checked: every specialist has a fine-tune stage")
    }

    /// Reads `path`, resolves relative paths against its folder and checks the document.
    pub fn load(path: &Path) -> Result<Self, PipelineError> {
        let text = std::fs::read_to_string(path).map_err(|e| PipelineError::Io {
            path: path.to_path_buf(),
            error: e,
        })?;
        let mut cfg = Self::parse(&text).map_err(|msg| PipelineError::Config {
            file: path.to_path_buf(),
            msg,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve(base);
        cfg.check().map_err(|msg| PipelineError::Config {
            file: path.to_path_buf(),
            msg,
        })?;
        Ok(cfg)
    }

    /// Parses a TOML document (paths left as written); errors name the field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let de = toml::Deserializer::parse(text).map_err(|e| e.to_string())?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            format!("at `{path}`: {}", e.into_inner().message())
        })
    }

    /// Makes every relative path absolute against `base`.
    pub fn resolve(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.data.pretrain);
        abs(&mut self.data.sft);
        if let Some(p) = &mut self.data.ground_truth {
            abs(p);
        }
        abs(&mut self.eval.shards);
        abs(&mut self.eval.vqa);
        if let Some(p) = &mut self.eval.scenes {
            abs(p);
        }
        if let Some(p) = &mut self.model.corpus {
            abs(p);
        }
        if let Some(p) = &mut self.model.init {
            abs(p);
        }
        if let Some(spec) = &mut self.model.spec
            && spec != "tiny"
            && Path::new(spec).is_relative()
        {
            *spec = base.join(&*spec).to_string_lossy().into_owned();
        }
        if self.components_dir.is_none() {
            self.components_dir = std::env::var_os("VILA2_COMPONENTS").map(PathBuf::from);
        }
        if let Some(p) = &mut self.components_dir {
            abs(p);
        }
        for s in &mut self.specialists {
            abs(&mut s.data);
        }
        let comps = self.components_dir.clone();
        let plugin = |r: &mut PluginRef| {
            if r.plugin.contains('/') || r.plugin.ends_with(".wasm") {
                let p = Path::new(&r.plugin);
                if p.is_relative() {
                    r.plugin = base.join(p).to_string_lossy().into_owned();
                }
            } else if let Some(dir) = &comps {
                r.plugin = dir
                    .join(format!("{}.wasm", r.plugin))
                    .to_string_lossy()
                    .into_owned();
            }
        };
        plugin(&mut self.recaption.template);
        self.recaption.filters.iter_mut().for_each(plugin);
        for s in &mut self.specialists {
            plugin(&mut s.plugin);
        }
    }

    /// Checks what can be checked without loading anything; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        match (&self.model.spec, &self.model.init) {
            (None, None) => return Err("model: give `spec` (with `corpus`) or `init`".into()),
            (Some(_), Some(_)) => return Err("model: give `spec` or `init`, not both".into()),
            (Some(_), None) if self.model.corpus.is_none() => {
                return Err("model.corpus: a from-scratch `spec` needs a tokenizer corpus".into());
            }
            _ => {}
        }
        if !(0.0..=1.0).contains(&self.max_failure_fraction) {
            return Err(format!(
                "max_failure_fraction: {} is not in [0, 1]",
                self.max_failure_fraction
            ));
        }
        if self.recaption.batch_size == 0 {
            return Err("recaption.batch_size: must be at least 1".into());
        }
        if let Some(min) = self.recaption.min_sentence_logprob {
            if !(min.is_finite() && min < 0.0) {
                return Err(format!(
                    "recaption.min_sentence_logprob: {min} is not a negative log-probability"
                ));
            }
            if !self.recaption.score {
                return Err(
                    "recaption.min_sentence_logprob: pruning needs the recaptions scored \
                     (`score = true`)"
                        .into(),
                );
            }
        }
        for (name, st) in [
            ("train.align", &self.train.align),
            ("train.pretrain", &self.train.pretrain),
            ("train.sft", &self.train.sft),
        ] {
            st.check(name)?;
        }
        if let Some(st) = &self.train.specialist {
            st.check("train.specialist")?;
        }
        if let Some(v) = &self.train.vision {
            if v.batch_size == 0 {
                return Err("train.vision.batch_size: must be at least 1".into());
            }
            if !(v.lr.is_finite() && v.lr > 0.0) {
                return Err(format!(
                    "train.vision.lr: {} is not a positive number",
                    v.lr
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &self.specialists {
            match (&s.train, &self.train.specialist) {
                (None, None) => {
                    return Err(format!(
                        "train.specialist: specialist `{}` has no `train` of its own and there \
                         is no [train] specialist stage",
                        s.name
                    ));
                }
                (Some(st), _) => st.check(&format!("specialists.{}.train", s.name))?,
                _ => {}
            }
            if s.name.is_empty()
                || !s
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "specialists: name `{}` must be non-empty ASCII letters, digits, - or _",
                    s.name
                ));
            }
            if !names.insert(&s.name) {
                return Err(format!("specialists: `{}` appears twice", s.name));
            }
        }
        Ok(())
    }

    /// Every file or folder the run reads, with the field naming it, for an up-front check.
    pub fn inputs(&self) -> Vec<(String, PathBuf)> {
        let mut v = vec![
            ("data.pretrain".to_string(), self.data.pretrain.clone()),
            ("data.sft".into(), self.data.sft.clone()),
            ("eval.shards".into(), self.eval.shards.clone()),
            ("eval.vqa".into(), self.eval.vqa.clone()),
            (
                "recaption.template.plugin".into(),
                PathBuf::from(&self.recaption.template.plugin),
            ),
        ];
        let opt = |v: &mut Vec<(String, PathBuf)>, n: &str, p: &Option<PathBuf>| {
            if let Some(p) = p {
                v.push((n.to_string(), p.clone()));
            }
        };
        opt(&mut v, "data.ground_truth", &self.data.ground_truth);
        opt(&mut v, "eval.scenes", &self.eval.scenes);
        opt(&mut v, "model.corpus", &self.model.corpus);
        opt(&mut v, "model.init", &self.model.init);
        if let Some(spec) = &self.model.spec
            && spec != "tiny"
        {
            v.push(("model.spec".into(), PathBuf::from(spec)));
        }
        for (i, f) in self.recaption.filters.iter().enumerate() {
            v.push((
                format!("recaption.filters[{i}].plugin"),
                PathBuf::from(&f.plugin),
            ));
        }
        for s in &self.specialists {
            v.push((
                format!("specialists.{}.plugin", s.name),
                PathBuf::from(&s.plugin.plugin),
            ));
            v.push((format!("specialists.{}.data", s.name), s.data.clone()));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"
seed = 3
rounds = 2
fusion = "replace"
[data]
pretrain = "shapes/pretrain"
sft = "shapes/sft"
[eval]
shards = "shapes/eval"
vqa = "shapes/eval/vqa.jsonl"
[model]
spec = "tiny"
corpus = "shapes/corpus.txt"
[train]
align = { steps = 2 }
pretrain = { steps = 3, lr = 1e-3 }
sft = { steps = 1, batch_size = 2 }
specialist = { steps = 1 }
[recaption]
template = { plugin = "vila2_recaption", config = { recipe = "long-v1" } }
filters = [{ plugin = "filters/q.wasm" }]
[[specialists]]
name = "spatial"
plugin = { plugin = "vila2_spatial" }
data = "shapes/specialist/spatial"
"#;

    #[test]
    fn parses_and_resolves_paths() {
        let mut c = RunConfig::parse(DOC).unwrap();
        c.components_dir = Some("/comps".into());
        c.resolve(Path::new("/runs"));
        c.check().unwrap();
        assert_eq!(c.fusion, Fusion::Replace);
        assert_eq!(c.data.pretrain, Path::new("/runs/shapes/pretrain"));
        assert_eq!(c.recaption.template.plugin, "/comps/vila2_recaption.wasm");
        assert_eq!(c.recaption.filters[0].plugin, "/runs/filters/q.wasm");
        assert_eq!(c.specialists[0].plugin.plugin, "/comps/vila2_spatial.wasm");
        assert_eq!(c.train.sft.batch_size, 2);
        assert_eq!(c.train.align.batch_size, 8);
        assert_eq!(c.model.spec.as_deref(), Some("tiny"));
    }

    #[test]
    fn unknown_field_is_named() {
        let err =
            RunConfig::parse(&DOC.replace("rounds = 2", "rounds = 2\nroundz = 1")).unwrap_err();
        assert!(err.contains("roundz"), "{err}");
        let err = RunConfig::parse(&DOC.replace("steps = 3,", "steps = \"x\",")).unwrap_err();
        assert!(err.contains("train.pretrain.steps"), "{err}");
    }

    #[test]
    fn stage_trainable_groups_and_threads() {
        let doc = DOC.replace(
            "pretrain = { steps = 3, lr = 1e-3 }",
            "pretrain = { steps = 3, lr = 1e-3, train = [\"vision\", \"llm\"] }",
        );
        let c = RunConfig::parse(&format!("threads = 1\n{doc}")).unwrap();
        assert_eq!(
            c.train.pretrain.train,
            Some(vec![Group::Vision, Group::Llm])
        );
        assert_eq!(c.train.align.train, None);
        assert_eq!(c.threads, Some(1));
        // The thread count is not part of the stored run document.
        assert!(!toml::to_string(&c).unwrap().contains("threads"));
        let err = RunConfig::parse(&doc.replace("\"llm\"", "\"lm\"")).unwrap_err();
        assert!(
            err.contains("train.pretrain.train") && err.contains("lm"),
            "{err}"
        );
    }

    #[test]
    fn check_names_the_field() {
        let mut c = RunConfig::parse(DOC).unwrap();
        c.model.corpus = None;
        assert!(c.check().unwrap_err().contains("model.corpus"));
        let mut c = RunConfig::parse(DOC).unwrap();
        c.train.specialist = None;
        assert!(c.check().unwrap_err().contains("train.specialist"));
        let mut c = RunConfig::parse(DOC).unwrap();
        c.specialists.push(c.specialists[0].clone());
        assert!(c.check().unwrap_err().contains("twice"));
        for (min, score) in [(0.5, true), (f64::NAN, true), (-1.0, false)] {
            let mut c = RunConfig::parse(DOC).unwrap();
            c.recaption.min_sentence_logprob = Some(min);
            c.recaption.score = score;
            let err = c.check().unwrap_err();
            assert!(err.contains("recaption.min_sentence_logprob"), "{err}");
        }
        let mut c = RunConfig::parse(DOC).unwrap();
        c.recaption.min_sentence_logprob = Some(-1.0);
        c.check().unwrap();
        let mut c = RunConfig::parse(DOC).unwrap();
        c.train.sft.length_group = Some(0);
        assert!(c.check().unwrap_err().contains("train.sft.length_group"));
        let mut c = RunConfig::parse(DOC).unwrap();
        c.specialists[0].train = Some(c.train.sft.clone());
        c.specialists[0].train.as_mut().unwrap().length_group = Some(0);
        let err = c.check().unwrap_err();
        assert!(
            err.contains("specialists.") && err.contains("length_group"),
            "{err}"
        );
        c.specialists[0].train.as_mut().unwrap().length_group = Some(16);
        c.check().unwrap();
    }

    #[test]
    fn the_vision_stage_takes_defaults_and_names_bad_values() {
        let doc = DOC.replace(
            "specialist = { steps = 1 }",
            "specialist = { steps = 1 }\nvision = { steps = 5 }",
        );
        let c = RunConfig::parse(&doc).unwrap();
        c.check().unwrap();
        let v = c.train.vision.as_ref().unwrap();
        assert_eq!((v.steps, v.batch_size, v.lr), (5, 32, 1e-3));
        assert!(RunConfig::parse(DOC).unwrap().train.vision.is_none());
        for (bad, field) in [
            ("vision = { steps = 5, lr = -1.0 }", "train.vision.lr"),
            (
                "vision = { steps = 5, batch_size = 0 }",
                "train.vision.batch_size",
            ),
        ] {
            let doc = DOC.replace(
                "specialist = { steps = 1 }",
                &format!("specialist = {{ steps = 1 }}\n{bad}"),
            );
            let err = RunConfig::parse(&doc).unwrap().check().unwrap_err();
            assert!(err.contains(field), "{err}");
        }
        let err = RunConfig::parse(&DOC.replace(
            "specialist = { steps = 1 }",
            "specialist = { steps = 1 }\nvision = { step = 5 }",
        ))
        .unwrap_err();
        assert!(err.contains("step"), "{err}");
    }

    #[test]
    fn a_specialist_may_have_its_own_fine_tune() {
        let doc = DOC.replace(
            "data = \"shapes/specialist/spatial\"",
            "data = \"shapes/specialist/spatial\"\ntrain = { steps = 7, lr = 2e-3 }",
        );
        let c = RunConfig::parse(&doc).unwrap();
        c.check().unwrap();
        let own = c.specialists[0].train.as_ref().unwrap();
        assert_eq!((own.steps, own.lr), (7, Some(2e-3)));
        assert_eq!(c.specialist_stage(&c.specialists[0]).steps, 7);
        // Stored and read back with it; a specialist without one stores none.
        let back = RunConfig::parse(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back.specialists[0].train, c.specialists[0].train);
        let plain = RunConfig::parse(DOC).unwrap();
        assert!(!toml::to_string(&plain).unwrap().contains("steps = 7"));
        assert_eq!(plain.specialist_stage(&plain.specialists[0]).steps, 1);
        // Without [train] specialist, every specialist needs its own.
        let mut c = RunConfig::parse(&doc).unwrap();
        c.train.specialist = None;
        c.check().unwrap();
        let mut second = c.specialists[0].clone();
        second.name = "ocr".into();
        second.train = None;
        c.specialists.push(second);
        let err = c.check().unwrap_err();
        assert!(
            err.contains("`ocr`") && err.contains("train.specialist"),
            "{err}"
        );
        let err = RunConfig::parse(&doc.replace("steps = 7,", "steps = 7, batch_size = 0,"))
            .unwrap()
            .check()
            .unwrap_err();
        assert!(
            err.contains("specialists.spatial.train.batch_size"),
            "{err}"
        );
    }
}
