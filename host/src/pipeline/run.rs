//! The orchestration: round 0 trains align → pretrain → SFT; each round k recaptions the
//! pretraining set with model k−1 (one task per shard), retrains from the same initialisation
//! on the new captions and evaluates; then the specialists are fine-tuned from the last
//! model, answer their task prompts about every image, and their QA turns are appended
//! before a final retraining. Every step is a durable task (see [`super::state`]).

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::Device;

use super::PipelineError;
use super::config::{PluginRef, RunConfig, StageConfig};
use super::evaluate::{EvalResult, evaluate, read_scenes};
use super::fingerprint;
use super::judge::EngineJudge;
use super::recaption::{
    LoadedPlugin, ModelInfo, RoundContext, ShardSummary, fuse_specialists, read_specialist,
    recaption_shard, specialist_shard,
};
use super::report::{self, DatasetStats, RoundReport, RunReport, SpecialistCheck};
use super::state::{
    FileTaskStore, Recorded, TaskStore, build_dir, create_dir, once, recorded, write_atomic,
};
use crate::data::webdataset::list_shards;
use crate::plugin::{PluginRuntime, RuntimeConfig, World};
use crate::train::TrainError;
use crate::train::init::{ModelSpec, init_model};
use crate::train::trainer::TrainConfig;
use crate::train::vision_pretrain::{self, VisionPretrainConfig, VisionPretrainSummary};
use crate::train::{Stage, trainer};
use crate::vlm::engine::{BusyClock, Engine, EngineConfig};
use crate::vlm::generate::GenerationParams;

/// Progress of a run, for a progress bar or a live page.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A task started (or was found done, `cached`).
    Task {
        /// Task id.
        id: String,
        /// Already done in an earlier attempt.
        cached: bool,
    },
    /// A training step.
    Step {
        /// Task id.
        task: String,
        /// Step number.
        step: usize,
        /// Steps of the stage.
        steps: usize,
        /// Loss.
        loss: f64,
    },
    /// A round finished with its evaluation.
    Round {
        /// Its report row.
        report: Box<RoundReport>,
    },
}

/// Trained stage record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StageRecord {
    summary: serde_json::Value,
    losses: Vec<f64>,
}

/// Runs (or resumes) the augmentation run `cfg` in `out`.
pub fn run(
    cfg: &RunConfig,
    out: &Path,
    on_event: &mut dyn FnMut(Event),
) -> Result<RunReport, PipelineError> {
    run_until(cfg, out, on_event, &mut || false)
}

/// [`run`], asking `stop` before each task that is not yet done; when it answers true the
/// run ends with [`PipelineError::Cancelled`] and can be resumed later.
pub fn run_until(
    cfg: &RunConfig,
    out: &Path,
    on_event: &mut dyn FnMut(Event),
    stop: &mut dyn FnMut() -> bool,
) -> Result<RunReport, PipelineError> {
    let store = FileTaskStore::new(&out.join("tasks"))?;
    run_with_store(cfg, out, &store, on_event, stop, &BusyClock::default())
}

/// [`run_until`] with the done records in `store` (e.g. the portal's database) instead of
/// the `tasks/` folder of `out`, counting the compute it does into `busy`: the engines' busy
/// time ([`crate::vlm::engine::EngineHandle::busy_seconds`]) and the trainer's step time. The
/// caller reads `busy` (e.g. in `stop`) to meter the run.
pub fn run_with_store(
    cfg: &RunConfig,
    out: &Path,
    store: &dyn TaskStore,
    on_event: &mut dyn FnMut(Event),
    stop: &mut dyn FnMut() -> bool,
    busy: &BusyClock,
) -> Result<RunReport, PipelineError> {
    for (field, path) in cfg.inputs() {
        if !path.exists() {
            return Err(PipelineError::Missing { field, path });
        }
    }
    if let Some(n) = cfg.threads
        && crate::vlm::threads::torch_threads() == 0
    {
        crate::vlm::threads::set_torch_threads(n);
    }
    create_dir(out)?;
    let doc = toml::to_string(cfg).map_err(|e| PipelineError::Failed(e.to_string()))?;
    let stored = out.join("run.toml");
    match std::fs::read_to_string(&stored) {
        Ok(prev) if prev != doc => {
            return Err(PipelineError::Config {
                file: stored,
                msg: "this folder holds a different run (its run.toml differs); \
                      resume with the same config or choose another output folder \
                      (a copy of this folder without its run.toml reuses the finished \
                      tasks whose settings and inputs are unchanged)"
                    .into(),
            });
        }
        Ok(_) => tracing::info!(out = %out.display(), "resuming run"),
        Err(_) => write_atomic(&stored, doc.as_bytes())?,
    }
    let judge = EngineJudge::new();
    let runtime =
        PluginRuntime::with_judge(RuntimeConfig::default(), judge.clone()).map_err(|e| {
            PipelineError::Plugin {
                what: "plugin runtime".into(),
                error: e,
            }
        })?;
    let load = |what: &str,
                r: &PluginRef,
                world: World|
     -> Result<(LoadedPlugin, String), PipelineError> {
        let err = |e| PipelineError::Plugin {
            what: format!("{what} ({})", r.plugin),
            error: e,
        };
        let plugin = runtime
            .load_file(Path::new(&r.plugin), world)
            .map_err(err)?;
        if let Some(c) = &r.config {
            plugin.configure(&c.to_string()).map_err(err)?;
        }
        let d = plugin.describe().map_err(err)?;
        let id = format!("{}@{}", d.name, d.version);
        let fp = fingerprint::of(&serde_json::json!({
            "id": id,
            "config": r.config,
            "component": fingerprint::of_content(Path::new(&r.plugin))?,
        }));
        Ok((LoadedPlugin { plugin, id }, fp))
    };
    let template = load(
        "recaption.template",
        &cfg.recaption.template,
        World::PromptTemplate,
    )?;
    let filters = cfg
        .recaption
        .filters
        .iter()
        .enumerate()
        .map(|(i, f)| load(&format!("recaption.filters[{i}]"), f, World::CaptionFilter))
        .collect::<Result<Vec<_>, _>>()?;
    let specialists = cfg
        .specialists
        .iter()
        .map(|s| {
            load(
                &format!("specialists.{}", s.name),
                &s.plugin,
                World::Specialist,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;

    let sft = Data::given(&cfg.data.sft)?;
    let mut r = Runner {
        cfg,
        out,
        store,
        judge: &judge,
        on_event,
        stop,
        busy,
        sft: &sft,
    };
    let (init, vision) = r.init_model()?;
    let pretrain = Data::given(&cfg.data.pretrain)?;
    let mut report = RunReport {
        fusion: cfg.fusion.to_string(),
        vision,
        ..Default::default()
    };
    let scenes = cfg
        .data
        .ground_truth
        .as_deref()
        .map(read_scenes)
        .transpose()?;
    let original = DatasetStats::of_dir(&cfg.data.pretrain, scenes.as_ref())?;
    let mut model = r.train_round("round-0", &init, &pretrain)?;
    let eval = r.eval("round-0", &model)?;
    let row = RoundReport::new("round 0".into(), original, None, eval, model.losses.clone());
    (r.on_event)(Event::Round {
        report: Box::new(row.clone()),
    });
    report.rounds.push(row);
    let mut data = pretrain;
    for k in 1..=cfg.rounds {
        let label = format!("round-{k}");
        let (new_data, shards) = r.recaption_round(k, &model, &data, &template, &filters)?;
        let data_stats = DatasetStats::of_dir(&new_data.dir, scenes.as_ref())?;
        if let Some(t) = &data_stats.truth {
            let placed = t.positions.unwrap_or_default();
            tracing::info!(
                round = k,
                precision = t.precision,
                recall = t.recall,
                hallucination = t.hallucination,
                relations = t.relations.stated,
                relations_correct = t.relations.correct,
                placed = placed.all.stated,
                placed_about_objects = placed.all.grounded,
                placed_right = placed.all.correct,
                one_object_placed = placed.one_object.grounded,
                one_object_right = placed.one_object.correct,
                "training captions against the ground truth"
            );
        }
        let next = r.train_round(&label, &init, &new_data)?;
        let eval = r.eval(&label, &next)?;
        let row = RoundReport::new(
            format!("round {k}"),
            data_stats,
            Some(shards),
            eval,
            next.losses.clone(),
        );
        (r.on_event)(Event::Round {
            report: Box::new(row.clone()),
        });
        let gain = row.score() - report.rounds.last().map_or(0.0, |p| p.score());
        report.rounds.push(row);
        data = new_data;
        model = next;
        if let Some(min) = cfg.min_gain
            && gain < min
            && k < cfg.rounds
        {
            report.stopped_early = Some(format!(
                "round {k} gained {gain:+.4} VQA accuracy, under min_gain {min}: saturated"
            ));
            break;
        }
    }
    if !specialists.is_empty() {
        let (spec_data, shards) = r.specialist_round(&model, &data, &specialists)?;
        let spec_model = r.train_round("specialists", &init, &spec_data)?;
        let eval = r.eval("specialists", &spec_model)?;
        if let Some(scenes) = &scenes {
            for s in &cfg.specialists {
                let answers = out.join("specialists").join(&s.name).join("answers");
                report
                    .specialists
                    .extend(SpecialistCheck::of_dir(&s.name, &answers, scenes)?);
            }
        }
        let row = RoundReport::new(
            "+ specialists".into(),
            DatasetStats::of_dir(&spec_data.dir, scenes.as_ref())?,
            Some(shards),
            eval,
            spec_model.losses.clone(),
        );
        (r.on_event)(Event::Round {
            report: Box::new(row.clone()),
        });
        report.rounds.push(row);
        data = spec_data;
    }
    report.final_data = data.dir;
    report.dollars_per_gpu_hour = cfg.dollars_per_gpu_hour;
    report::write(out, &report)?;
    Ok(report)
}

/// A trained model with its loss curve.
struct Trained {
    info: ModelInfo,
    /// The fingerprint of the task that made it.
    fp: String,
    losses: Vec<f64>,
}

/// A model folder with the fingerprint of what made it (or of its files, when given).
#[derive(Clone)]
struct ModelDir {
    dir: PathBuf,
    fp: String,
}

/// A dataset folder of shards with the fingerprints of the dataset and of each shard.
struct Data {
    dir: PathBuf,
    fp: String,
    shards: Vec<(PathBuf, String)>,
}

impl Data {
    /// A dataset the run did not make, keyed by its files.
    fn given(dir: &Path) -> Result<Self, PipelineError> {
        let shards = list_shards(dir)?
            .into_iter()
            .map(|s| fingerprint::of_path(&s).map(|fp| (s, fp)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            dir: dir.to_path_buf(),
            fp: fingerprint::of_path(dir)?,
            shards,
        })
    }

    /// A dataset the run made in `dir`, one task per shard.
    fn made(dir: PathBuf, shards: Vec<(PathBuf, String)>) -> Self {
        let fps: Vec<&String> = shards.iter().map(|(_, fp)| fp).collect();
        Self {
            fp: fingerprint::of(&fps),
            dir,
            shards,
        }
    }
}

/// The name of a shard file.
fn shard_name(shard: &Path) -> OsString {
    shard.file_name().expect("shards have names").to_owned()
}

struct Runner<'a> {
    cfg: &'a RunConfig,
    out: &'a Path,
    store: &'a dyn TaskStore,
    judge: &'a std::sync::Arc<EngineJudge>,
    on_event: &'a mut dyn FnMut(Event),
    stop: &'a mut dyn FnMut() -> bool,
    busy: &'a BusyClock,
    /// The SFT set, fingerprinted once for every round's SFT stage.
    sft: &'a Data,
}

impl Runner<'_> {
    /// Runs task `id` unless it is done from inputs of fingerprint `fp`.
    fn task<T: Serialize + for<'de> Deserialize<'de>>(
        &mut self,
        id: &str,
        fp: &str,
        work: impl FnOnce(&mut Self) -> Result<T, PipelineError>,
    ) -> Result<T, PipelineError> {
        let cached = self.is_done(id, fp)?;
        if !cached && (self.stop)() {
            tracing::info!(before = %id, "run cancelled");
            return Err(PipelineError::Cancelled);
        }
        (self.on_event)(Event::Task {
            id: id.to_string(),
            cached,
        });
        let store = self.store;
        let mut cell = Some(work);
        once(store, id, fp, || (cell.take().expect("runs once"))(self))
    }

    /// Whether task `id` is done from inputs of fingerprint `fp`.
    fn is_done(&self, id: &str, fp: &str) -> Result<bool, PipelineError> {
        Ok(matches!(recorded(self.store, id, fp)?, Recorded::Done(_)))
    }

    /// The initial model every round retrains from: the given or built one, with its
    /// vision tower pretrained when `[train] vision` asks for it.
    fn init_model(&mut self) -> Result<(ModelDir, Option<VisionPretrainSummary>), PipelineError> {
        let base = self.base_model()?;
        let Some(v) = self.cfg.train.vision.clone().filter(|v| v.steps > 0) else {
            return Ok((base, None));
        };
        let dir = self.out.join("init-vision");
        let mut vc = VisionPretrainConfig::new(v.steps, self.cfg.seed);
        vc.batch_size = v.batch_size;
        vc.lr = v.lr;
        let fp = fingerprint::of(&serde_json::json!({
            "from": base.fp,
            "vision": v,
            "seed": self.cfg.seed,
        }));
        let rec = self.training_task("vision", &fp, v.steps, &dir, |tmp, on_step| {
            vision_pretrain::run(&base.dir, tmp, &vc, on_step)
        })?;
        let summary = serde_json::from_value(rec.summary).ok();
        Ok((ModelDir { dir, fp }, summary))
    }

    /// The given model, or a random one built from `[model] spec`.
    fn base_model(&mut self) -> Result<ModelDir, PipelineError> {
        let cfg = self.cfg;
        if let Some(dir) = &cfg.model.init {
            return Ok(ModelDir {
                dir: dir.clone(),
                fp: fingerprint::of_path(dir)?,
            });
        }
        let dir = self.out.join("init");
        let spec = cfg.model.spec.clone().expect("checked: spec or init");
        let corpus = cfg.model.corpus.clone().expect("checked: corpus with spec");
        let seed = cfg.seed;
        let vocab = cfg.model.vocab_size;
        let spec_file = Path::new(&spec);
        let fp = fingerprint::of(&serde_json::json!({
            "spec": spec,
            "spec_file": if spec_file.is_file() { Some(fingerprint::of_path(spec_file)?) } else { None },
            "corpus": fingerprint::of_path(&corpus)?,
            "vocab_size": vocab,
            "seed": seed,
        }));
        self.task("init", &fp, |_| {
            build_dir(&dir, |tmp| {
                let mut model =
                    ModelSpec::named_or_file(&spec).map_err(|e| PipelineError::Train {
                        task: "init".into(),
                        error: e,
                    })?;
                if let Some(v) = vocab {
                    model.vocab_size = v;
                }
                init_model(&model, &corpus, tmp, seed as i64).map_err(|e| PipelineError::Train {
                    task: "init".into(),
                    error: e,
                })
            })?;
            Ok(())
        })?;
        Ok(ModelDir { dir, fp })
    }

    /// align → pretrain on `data`, then SFT, from `init`; stages with 0 steps are skipped.
    fn train_round(
        &mut self,
        label: &str,
        init: &ModelDir,
        data: &Data,
    ) -> Result<Trained, PipelineError> {
        let cfg = self.cfg;
        let sft = self.sft;
        let mut from = init.clone();
        let mut losses = Vec::new();
        for (stage, st, data) in [
            (Stage::Align, &cfg.train.align, data),
            (Stage::Pretrain, &cfg.train.pretrain, data),
            (Stage::Sft, &cfg.train.sft, sft),
        ] {
            if st.steps == 0 {
                continue;
            }
            let out = self.out.join(label).join(stage.to_string());
            let id = format!("{label}/{stage}");
            let (rec, fp) = self.train_stage(&id, stage, st, data, &from, &out)?;
            losses.extend(rec.losses);
            from = ModelDir { dir: out, fp };
        }
        Ok(Trained {
            info: model_info(label, &from.dir)?,
            fp: from.fp,
            losses,
        })
    }

    /// Trains `stage` on `data` from `init` into `out` as task `id`; returns its record and
    /// fingerprint.
    fn train_stage(
        &mut self,
        id: &str,
        stage: Stage,
        st: &StageConfig,
        data: &Data,
        init: &ModelDir,
        out: &Path,
    ) -> Result<(StageRecord, String), PipelineError> {
        let fp = fingerprint::of(&serde_json::json!({
            "stage": stage.to_string(),
            "settings": st,
            "max_len": self.cfg.train.max_len,
            "seed": self.cfg.seed,
            "max_failure_fraction": self.cfg.max_failure_fraction,
            "data": data.fp,
            "from": init.fp,
        }));
        let mut tc = TrainConfig::new(stage, st.steps);
        tc.lr = st.lr;
        tc.batch_size = st.batch_size;
        tc.length_group = st.length_group.unwrap_or(1);
        tc.train = st.train.clone();
        tc.max_len = self.cfg.train.max_len;
        tc.seed = self.cfg.seed as i64;
        tc.max_skip_fraction = self.cfg.max_failure_fraction;
        let rec = self.training_task(id, &fp, st.steps, out, |tmp, on_step| {
            trainer::run(&data.dir, &init.dir, tmp, tc, |s| on_step(s.step, s.loss))
        })?;
        Ok((rec, fp))
    }

    /// Runs the training task `id` of `steps` steps that builds the model folder `out`:
    /// `train(tmp, on_step)` trains into `tmp` and calls `on_step(step, loss)` after each
    /// step, which meters the step's compute and reports it as an event.
    fn training_task<S: Serialize>(
        &mut self,
        id: &str,
        fp: &str,
        steps: usize,
        out: &Path,
        train: impl FnOnce(&Path, &mut dyn FnMut(usize, f64)) -> Result<S, TrainError>,
    ) -> Result<StageRecord, PipelineError> {
        self.task(id, fp, |r| {
            let mut losses = Vec::new();
            let busy = r.busy.clone();
            let mut step_start = std::time::Instant::now();
            let summary = build_dir(out, |tmp| {
                train(tmp, &mut |step, loss| {
                    // Compute since the previous step (or the start), not the event handling.
                    busy.add(step_start.elapsed());
                    losses.push(loss);
                    (r.on_event)(Event::Step {
                        task: id.to_string(),
                        step,
                        steps,
                        loss,
                    });
                    step_start = std::time::Instant::now();
                })
                .map_err(|e| PipelineError::Train {
                    task: id.to_string(),
                    error: e,
                })
            })?;
            Ok(StageRecord {
                summary: serde_json::to_value(&summary).unwrap_or_default(),
                losses,
            })
        })
    }

    fn engine(&self, model: &ModelInfo) -> Result<Engine, PipelineError> {
        let device = Device::cuda_if_available();
        Engine::spawn_metered(
            model.dir.clone(),
            device,
            crate::vlm::generate::default_kind(device),
            EngineConfig {
                max_batch: self.cfg.recaption.batch_size.max(1),
                ..Default::default()
            },
            self.busy.clone(),
        )
        .map_err(|e| PipelineError::Model {
            model: model.dir.clone(),
            error: e,
        })
    }

    fn eval(&mut self, label: &str, model: &Trained) -> Result<EvalResult, PipelineError> {
        let info = model.info.clone();
        let e = &self.cfg.eval;
        let inputs = [Some(&e.shards), Some(&e.vqa), e.scenes.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| fingerprint::of_path(p))
            .collect::<Result<Vec<_>, _>>()?;
        let fp = fingerprint::of(&serde_json::json!({
            "model": model.fp,
            "eval": e,
            "inputs": inputs,
            "max_new_tokens": self.cfg.recaption.max_new_tokens,
        }));
        self.task(&format!("{label}/eval"), &fp, |r| {
            let engine = r.engine(&info)?;
            evaluate(
                &engine.handle(),
                &r.cfg.eval,
                r.cfg.recaption.max_new_tokens,
            )
        })
    }

    fn params(&self) -> GenerationParams {
        GenerationParams {
            max_new_tokens: self.cfg.recaption.max_new_tokens,
            ..Default::default()
        }
    }

    /// Recaptions every shard of `data` with `model` into `round-k/data`.
    fn recaption_round(
        &mut self,
        k: u32,
        model: &Trained,
        data: &Data,
        template: &(LoadedPlugin, String),
        filters: &[(LoadedPlugin, String)],
    ) -> Result<(Data, Vec<ShardSummary>), PipelineError> {
        let cfg = self.cfg;
        let out_dir = self.out.join(format!("round-{k}")).join("data");
        let loaded: Vec<LoadedPlugin> = filters.iter().map(|(p, _)| p.clone()).collect();
        let filter_fps: Vec<&String> = filters.iter().map(|(_, fp)| fp).collect();
        let mut engine: Option<Engine> = None;
        let mut summaries = Vec::new();
        let mut made = Vec::new();
        for (shard, shard_fp) in &data.shards {
            let name = shard_name(shard);
            let id = format!("round-{k}/recaption/{}", name.to_string_lossy());
            let output = out_dir.join(&name);
            let mut settings = serde_json::json!({
                "round": k,
                "seed": cfg.seed,
                "model": model.fp,
                "shard": shard_fp,
                "template": template.1,
                "filters": filter_fps,
                "fusion": cfg.fusion,
                "max_new_tokens": cfg.recaption.max_new_tokens,
                "batch_size": cfg.recaption.batch_size,
                "score": cfg.recaption.score,
                "max_failure_fraction": cfg.max_failure_fraction,
            });
            // Only when set, so runs without pruning keep their finished tasks.
            if let Some(min) = cfg.recaption.min_sentence_logprob {
                settings["min_sentence_logprob"] = min.into();
            }
            if cfg.recaption.drop_repeated_sentences {
                settings["drop_repeated_sentences"] = true.into();
            }
            if cfg.recaption.drop_self_relations {
                settings["drop_self_relations"] = true.into();
            }
            let fp = fingerprint::of(&settings);
            if !self.is_done(&id, &fp)? && engine.is_none() {
                engine = Some(self.engine(&model.info)?);
            }
            let handle = engine.as_ref().map(|e| e.handle());
            let s = self.task(&id, &fp, |r| {
                let handle = handle.expect("an engine runs for undone shards");
                let cx = RoundContext {
                    round: k,
                    seed: cfg.seed,
                    model: &model.info,
                    engine: &handle,
                    judge: r.judge,
                    template: &template.0,
                    filters: &loaded,
                    fusion: cfg.fusion,
                    params: r.params(),
                    batch_size: cfg.recaption.batch_size,
                    score: cfg.recaption.score,
                    min_sentence_logprob: cfg.recaption.min_sentence_logprob,
                    drop_repeated_sentences: cfg.recaption.drop_repeated_sentences,
                    drop_self_relations: cfg.recaption.drop_self_relations,
                    max_failure_fraction: cfg.max_failure_fraction,
                };
                recaption_shard(&cx, &id, shard, &output)
            })?;
            summaries.push(s);
            made.push((output, fp));
        }
        Ok((Data::made(out_dir, made), summaries))
    }

    /// Fine-tunes each specialist from `model`, collects its answers on every shard of
    /// `data`, and appends them to the captions in `specialists/data`.
    fn specialist_round(
        &mut self,
        model: &Trained,
        data: &Data,
        plugins: &[(LoadedPlugin, String)],
    ) -> Result<(Data, Vec<ShardSummary>), PipelineError> {
        let cfg = self.cfg;
        let from = ModelDir {
            dir: model.info.dir.clone(),
            fp: model.fp.clone(),
        };
        // Per specialist: its answers folder and each shard's answers fingerprint.
        let mut answers: Vec<(PathBuf, Vec<String>)> = Vec::new();
        let mut summaries = Vec::new();
        for (spec, (plugin, plugin_fp)) in cfg.specialists.iter().zip(plugins) {
            let base = self.out.join("specialists").join(&spec.name);
            let model_dir = base.join("model");
            let (_, model_fp) = self.train_stage(
                &format!("specialists/{}/train", spec.name),
                Stage::Specialist,
                cfg.specialist_stage(spec),
                &Data::given(&spec.data)?,
                &from,
                &model_dir,
            )?;
            let info = model_info(&format!("specialist-{}", spec.name), &model_dir)?;
            let mut engine: Option<Engine> = None;
            let mut fps = Vec::new();
            for (shard, shard_fp) in &data.shards {
                let stem = shard
                    .file_stem()
                    .expect("shards have names")
                    .to_string_lossy();
                let id = format!("specialists/{}/answers/{stem}", spec.name);
                let output = base.join("answers").join(format!("{stem}.jsonl"));
                let fp = fingerprint::of(&serde_json::json!({
                    "seed": cfg.seed,
                    "model": model_fp,
                    "shard": shard_fp,
                    "plugin": plugin_fp,
                    "max_new_tokens": cfg.recaption.max_new_tokens,
                    "batch_size": cfg.recaption.batch_size,
                    "max_failure_fraction": cfg.max_failure_fraction,
                }));
                if !self.is_done(&id, &fp)? && engine.is_none() {
                    engine = Some(self.engine(&info)?);
                }
                let handle = engine.as_ref().map(|e| e.handle());
                let s = self.task(&id, &fp, |r| {
                    let handle = handle.expect("an engine runs for undone shards");
                    let cx = RoundContext {
                        round: cfg.rounds + 1,
                        seed: cfg.seed,
                        model: &info,
                        engine: &handle,
                        judge: r.judge,
                        template: plugin,
                        filters: &[],
                        fusion: cfg.fusion,
                        params: r.params(),
                        batch_size: cfg.recaption.batch_size,
                        score: false,
                        min_sentence_logprob: None,
                        drop_repeated_sentences: false,
                        drop_self_relations: false,
                        max_failure_fraction: cfg.max_failure_fraction,
                    };
                    specialist_shard(&cx, &spec.name, &id, shard, &output)
                })?;
                summaries.push(s);
                fps.push(fp);
            }
            answers.push((base.join("answers"), fps));
        }
        let out_dir = self.out.join("specialists").join("data");
        let mut made = Vec::new();
        for (i, (shard, shard_fp)) in data.shards.iter().enumerate() {
            let name = shard_name(shard);
            let stem = shard
                .file_stem()
                .expect("shards have names")
                .to_string_lossy();
            let id = format!("specialists/fuse/{stem}");
            let output = out_dir.join(&name);
            let answer_fps: Vec<&String> = answers.iter().map(|(_, fps)| &fps[i]).collect();
            let fp = fingerprint::of(&serde_json::json!({
                "seed": cfg.seed,
                "shard": shard_fp,
                "answers": answer_fps,
            }));
            self.task(&id, &fp, |_| {
                let recs = answers
                    .iter()
                    .map(|(dir, _)| read_specialist(&dir.join(format!("{stem}.jsonl"))))
                    .collect::<Result<Vec<HashMap<_, _>>, _>>()?;
                fuse_specialists(shard, &recs, cfg.seed, &output)
            })?;
            made.push((output, fp));
        }
        Ok((Data::made(out_dir, made), summaries))
    }
}

/// Id, folder and weight checksum of a model.
pub fn model_info(id: &str, dir: &Path) -> Result<ModelInfo, PipelineError> {
    let files = super::state::files_with_ext(dir, "safetensors")?;
    let mut h = Sha256::new();
    for f in &files {
        let mut file = std::fs::File::open(f).map_err(|e| PipelineError::Io {
            path: f.clone(),
            error: e,
        })?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(|e| PipelineError::Io {
                path: f.clone(),
                error: e,
            })?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(ModelInfo {
        id: id.to_string(),
        dir: dir.to_path_buf(),
        sha256: hex::encode(h.finalize()),
    })
}
