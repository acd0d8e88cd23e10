//! The training loop: caption samples become "<image>\n caption</s>" sequences with the loss
//! on the caption tokens only, conversation samples are rendered with the model's chat
//! template with the loss on the assistant turns only; each optimizer step averages the cross-entropy over every
//! label token of its micro-batches (so gradient accumulation equals one large batch),
//! clips by global norm and takes an AdamW step on the cosine schedule.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tch::{Device, Kind, Reduction, Tensor};

use super::TrainError;
use super::checkpoint;
use super::data::{CaptionSample, DataStats, ReaderState, Role, ShardReader, Turn};
use super::length_group;
use super::loader::{Loader, default_workers};
use super::optim::{AdamW, AdamWConfig, CosineSchedule};
use super::params::{Group, Params, Stage};
use super::precision::{Autocast, Precision};
use super::resume;
use crate::vlm::chat_template::ChatTemplate;
use crate::vlm::config::LlavaConfig;
use crate::vlm::llava::{LlavaModel, canonical_key};
use crate::vlm::preprocess::ImageProcessor;
use crate::vlm::tokenizer::VlmTokenizer;
use crate::vlm::weights::{Weights, weight_files};

/// Label of positions that carry no loss.
pub const IGNORE: i64 = -100;

/// Settings of a training run.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// The stage (selects the trainable groups and the default learning rate).
    pub stage: Stage,
    /// Peak learning rate; the stage's default when `None`.
    pub lr: Option<f64>,
    /// Optimizer steps.
    pub steps: usize,
    /// Samples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Fraction of the steps warming up.
    pub warmup_ratio: f64,
    /// Clip gradients to this global L2 norm (0 disables).
    pub max_grad_norm: f64,
    /// AdamW settings.
    pub adamw: AdamWConfig,
    /// Seed of libtorch's generator.
    pub seed: i64,
    /// Longest sequence (samples are truncated to fit); capped to the model's
    /// `max_position_embeddings`.
    pub max_len: usize,
    /// Groups to train instead of the stage's (`None`: the stage's).
    pub train: Option<Vec<Group>>,
    /// Groups frozen on top of the stage's choice.
    pub frozen: Vec<Group>,
    /// Stop when more than this fraction of the samples read were skipped.
    pub max_skip_fraction: f64,
    /// Shuffle buffer of the reader in samples (1: archive order).
    pub shuffle_buffer: usize,
    /// Save a resumable checkpoint every this many steps (0: never).
    pub save_every: usize,
    /// Continue from the latest resumable checkpoint in `OUT/checkpoints` if there is one.
    pub resume: bool,
    /// Where the model trains (weights, gradients and optimizer state live there).
    pub device: Device,
    /// fp32, or bf16 autocast (by default on CUDA).
    pub precision: Precision,
    /// Threads decoding and preprocessing samples (0: [`default_workers`] for the device).
    pub loader_workers: usize,
    /// Clip and update through flat per-group buffers ([`AdamW::step_clipped`]) instead of
    /// tensor by tensor; `None`: on CUDA, where the per-tensor kernels' launches dominate
    /// (1.20–1.27× the per-tensor step on an H200), not on the CPU, where the per-tensor
    /// path keeps each tensor's update in cache (~6 % faster on the demo's tiny model).
    pub flat_optimizer: Option<bool>,
    /// Steps whose samples are drawn together and batched by token length
    /// ([`length_group`](super::length_group); 0 or 1: each step takes its samples in
    /// drawn order). A group's decoded images stay in host memory until its steps are taken.
    /// Batches of alike length can be batches of alike content: on ShapesWorld, where length
    /// follows the object count, it made the models worse (docs/RESULTS.md).
    pub length_group: usize,
}

impl TrainConfig {
    /// The paper's recipe for `stage` over `steps` steps.
    pub fn new(stage: Stage, steps: usize) -> Self {
        Self {
            stage,
            lr: None,
            steps,
            batch_size: 1,
            grad_accum: 1,
            warmup_ratio: 0.03,
            max_grad_norm: 1.0,
            adamw: AdamWConfig::default(),
            seed: 42,
            max_len: 2048,
            train: None,
            frozen: Vec::new(),
            max_skip_fraction: 0.5,
            shuffle_buffer: 1000,
            save_every: 0,
            resume: false,
            device: Device::cuda_if_available(),
            precision: Precision::Auto,
            loader_workers: 0,
            flat_optimizer: None,
            length_group: 1,
        }
    }

    fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(m.to_string()));
        if self.steps == 0 {
            return bad("steps must be at least 1");
        }
        if self.batch_size == 0 || self.grad_accum == 0 {
            return bad("batch size and gradient accumulation must be at least 1");
        }
        if self.lr.is_some_and(|lr| !(lr.is_finite() && lr > 0.0)) {
            return bad("the learning rate must be positive");
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad("the warmup ratio must be in [0, 1)");
        }
        if let Device::Cuda(i) = self.device
            && i >= tch::Cuda::device_count().max(0) as usize
        {
            return bad(&format!(
                "training on cuda:{i} was requested but libtorch sees {} GPU(s)",
                tch::Cuda::device_count()
            ));
        }
        Ok(())
    }
}

/// Token ids, labels and pixels of a micro-batch (right-padded).
#[derive(Debug)]
pub struct Batch {
    /// `[B, T]` ids.
    pub ids: Tensor,
    /// `[B, T]` labels (`IGNORE` on prompt, image and padding positions).
    pub labels: Tensor,
    /// `[B, 3, H, W]` pixel values.
    pub pixels: Tensor,
    /// Label tokens that carry loss (after the shift).
    pub label_tokens: i64,
    /// Non-padding tokens.
    pub tokens: i64,
    /// Token slots, padding included (`B·T`).
    pub slots: i64,
    /// Rows of the flattened `[B·T]` positions whose next-token prediction carries a label.
    pub loss_rows: Tensor,
    /// Their target ids.
    pub loss_targets: Tensor,
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StepStats {
    /// 1-based step number.
    pub step: usize,
    /// Mean cross-entropy over the step's label tokens.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Non-padding tokens processed.
    pub tokens: i64,
    /// Token slots processed, padding included.
    pub slots: i64,
}

/// A model being trained, with its tokenizer, image processor and optimizer.
pub struct Trainer {
    /// The model (its tensors are [`Trainer::params`]).
    pub model: LlavaModel,
    /// Tokenizer of the init folder.
    pub tokenizer: VlmTokenizer,
    /// Image processor of the init folder.
    pub processor: ImageProcessor,
    /// Chat template of the init folder (formats conversation samples).
    pub chat_template: Option<ChatTemplate>,
    /// Every tensor, with the trainable subset marked.
    pub params: Params,
    opt: AdamW,
    schedule: CosineSchedule,
    cfg: TrainConfig,
    init: PathBuf,
    /// Optimizer steps taken.
    pub step: usize,
    /// Captions truncated to fit `max_len`.
    pub truncated: usize,
}

impl Trainer {
    /// Loads the HF LLaVA folder `init` in fp32 on `cfg.device` and prepares `cfg.stage`.
    pub fn new(init: &Path, mut cfg: TrainConfig) -> Result<Self, TrainError> {
        cfg.validate()?;
        if let Some(n) = max_positions(init).filter(|&n| n < cfg.max_len) {
            tracing::info!(
                max_len = n,
                "max_len capped to the model's max_position_embeddings"
            );
            cfg.max_len = n;
        }
        if crate::vlm::vila::is_vila_dir(init) {
            return Err(TrainError::Config(format!(
                "{}: training starts from HF LLaVA folders; VILA native folders are not supported yet",
                init.display()
            )));
        }
        tch::manual_seed(cfg.seed);
        let (device, kind) = (cfg.device, Kind::Float);
        let config = LlavaConfig::from_file(&init.join("config.json"))?;
        let w = Weights::load(init, weight_files(init)?, kind, device, canonical_key)?;
        let params = Params::select(&w, cfg.stage, cfg.train.as_deref(), &cfg.frozen)?;
        let model = LlavaModel::from_weights(init, config, &w, device, kind)?;
        let tokenizer = VlmTokenizer::load(
            init,
            model.config.image_token_id,
            &model.config.text.eos_token_ids,
        )?;
        let processor = ImageProcessor::load(init)?;
        let chat_template = ChatTemplate::load(init, &tokenizer)?;
        let trainable: Vec<_> = params.trainable().collect();
        let opt = AdamW::new(cfg.adamw, &trainable);
        let schedule = CosineSchedule::new(
            cfg.lr.unwrap_or(cfg.stage.default_lr()),
            cfg.steps,
            cfg.warmup_ratio,
        );
        tracing::info!(
            init = %init.display(),
            stage = %cfg.stage,
            trainable = params.trainable_count(),
            ?device,
            autocast_bf16 = cfg.precision.autocast_on(device),
            peak_lr = schedule.peak,
            warmup = schedule.warmup,
            "trainer ready"
        );
        Ok(Self {
            model,
            tokenizer,
            processor,
            chat_template,
            params,
            opt,
            schedule,
            cfg,
            init: init.to_path_buf(),
            step: 0,
            truncated: 0,
        })
    }

    /// Ids and labels of one caption sample: `<image>\n` (BOS and image placeholders
    /// included, no loss) then the caption and EOS (loss), truncated to `max_len`.
    pub fn encode_caption(
        &mut self,
        s: &CaptionSample,
    ) -> Result<(Vec<i64>, Vec<i64>), TrainError> {
        let n = self.model.config.image_feature_count();
        let prompt =
            self.tokenizer
                .encode_prompt(&format!("{}\n", self.tokenizer.image_token), n, true)?;
        let mut caption = self.tokenizer.encode(&s.caption, false)?;
        let eos = *self
            .tokenizer
            .eos_token_ids
            .first()
            .ok_or_else(|| TrainError::Sample {
                key: s.key.clone(),
                msg: "the tokenizer has no EOS token".into(),
            })?;
        caption.push(eos);
        if prompt.len() + 1 > self.cfg.max_len {
            return Err(TrainError::Sample {
                key: s.key.clone(),
                msg: format!(
                    "the image prompt alone is {} tokens, max_len is {}",
                    prompt.len(),
                    self.cfg.max_len
                ),
            });
        }
        let room = self.cfg.max_len - prompt.len();
        if caption.len() > room {
            tracing::debug!(sample = %s.key, tokens = caption.len(), room, "caption truncated");
            caption.truncate(room);
            self.truncated += 1;
        }
        let mut labels = vec![IGNORE; prompt.len()];
        labels.extend(&caption);
        let mut ids = prompt;
        ids.extend(caption);
        Ok((ids, labels))
    }

    /// Ids and labels of a sample: its conversation when it has one, else its caption.
    pub fn encode_sample(&mut self, s: &CaptionSample) -> Result<(Vec<i64>, Vec<i64>), TrainError> {
        match &s.conversation {
            Some(turns) => self.encode_conversation(&s.key, turns),
            None => self.encode_caption(s),
        }
    }

    /// Ids and labels of a conversation rendered with the chat template: the loss is on
    /// what each assistant turn adds to the rendering (its text and end-of-turn tokens),
    /// `IGNORE` elsewhere (BOS, user turns, image tokens, role headers); truncated to
    /// `max_len`.
    pub fn encode_conversation(
        &mut self,
        key: &str,
        turns: &[Turn],
    ) -> Result<(Vec<i64>, Vec<i64>), TrainError> {
        let err = |msg: String| TrainError::Sample {
            key: key.to_string(),
            msg,
        };
        let tmpl = self.chat_template.as_ref().ok_or_else(|| {
            err(format!(
                "a conversation sample, but {} has no chat template",
                self.init.display()
            ))
        })?;
        let messages: Vec<serde_json::Value> = turns
            .iter()
            .map(|t| serde_json::json!({"role": t.role.as_str(), "content": t.value}))
            .collect();
        let render = |n: usize, gen_prompt: bool| {
            tmpl.render_with(&serde_json::Value::from(&messages[..n]), gen_prompt)
                .map_err(|e| err(e.to_string()))
        };
        let full = render(turns.len(), false)?;
        // Byte spans of the assistant turns: what the turn adds after the generation prompt.
        let mut spans = Vec::new();
        for (i, t) in turns.iter().enumerate() {
            if t.role != Role::Assistant {
                continue;
            }
            let (before, upto) = (render(i, true)?, render(i + 1, false)?);
            if !upto.starts_with(&before) || !full.starts_with(&upto) {
                return Err(err(format!(
                    "the chat template does not render turn {i} as a prefix of the conversation"
                )));
            }
            spans.push((before.len(), upto.len()));
        }
        let bos = tmpl.bos_token();
        let mut special = bos.is_empty() || !full.starts_with(bos);
        let n = self.model.config.image_feature_count();
        let (mut ids, mut labels) = (Vec::new(), Vec::new());
        let mut push = |text: &str, loss: bool| -> Result<(), TrainError> {
            if text.is_empty() && !special {
                return Ok(());
            }
            let enc = self.tokenizer.encode_prompt(text, n, special)?;
            special = false;
            labels.extend(enc.iter().map(|&t| if loss { t } else { IGNORE }));
            ids.extend(enc);
            Ok(())
        };
        let mut pos = 0;
        for (a, b) in spans {
            push(&full[pos..a], false)?;
            push(&full[a..b], true)?;
            pos = b;
        }
        push(&full[pos..], false)?;
        let image = self.tokenizer.image_token_id;
        for (l, &t) in labels.iter_mut().zip(&ids) {
            if t == image {
                *l = IGNORE;
            }
        }
        if ids.len() > self.cfg.max_len {
            if ids[self.cfg.max_len..].contains(&image) {
                return Err(err(format!(
                    "the image ends past max_len {} (the conversation is {} tokens)",
                    self.cfg.max_len,
                    ids.len()
                )));
            }
            tracing::debug!(sample = key, tokens = ids.len(), "conversation truncated");
            ids.truncate(self.cfg.max_len);
            labels.truncate(self.cfg.max_len);
            self.truncated += 1;
        }
        Ok((ids, labels))
    }

    /// A right-padded micro-batch of caption or conversation samples.
    pub fn batch(&mut self, samples: &[CaptionSample]) -> Result<Batch, TrainError> {
        let pixels: Vec<Tensor> = samples
            .iter()
            .map(|s| self.processor.preprocess(&s.image))
            .collect();
        self.batch_with_pixels(samples, &pixels)
    }

    /// [`Trainer::batch`] with the images already preprocessed (one `[3, H, W]` each).
    pub fn batch_with_pixels(
        &mut self,
        samples: &[CaptionSample],
        pixels: &[Tensor],
    ) -> Result<Batch, TrainError> {
        let seqs = samples
            .iter()
            .map(|s| self.encode_sample(s))
            .collect::<Result<Vec<_>, _>>()?;
        let seqs: Vec<&(Vec<i64>, Vec<i64>)> = seqs.iter().collect();
        Ok(self.batch_of(&seqs, pixels))
    }

    /// A right-padded micro-batch of encoded samples (ids and labels, as
    /// [`Trainer::encode_sample`] makes them) and their preprocessed images.
    pub fn batch_of(&self, seqs: &[&(Vec<i64>, Vec<i64>)], pixels: &[Tensor]) -> Batch {
        let t = seqs.iter().map(|(i, _)| i.len()).max().unwrap_or(0);
        let pad = self.tokenizer.pad_token_id;
        let (mut ids, mut labels) = (Vec::new(), Vec::new());
        let mut tokens = 0;
        for &(i, l) in seqs {
            tokens += i.len() as i64;
            ids.extend(
                i.iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad, t - i.len())),
            );
            labels.extend(
                l.iter()
                    .copied()
                    .chain(std::iter::repeat_n(IGNORE, t - l.len())),
            );
        }
        let b = seqs.len() as i64;
        let dev = self.cfg.device;
        // Position j of row r predicts label j + 1.
        let (mut rows, mut targets) = (Vec::new(), Vec::new());
        for (r, row) in labels.chunks(t.max(1)).enumerate() {
            for (j, &l) in row.iter().enumerate().skip(1) {
                if l != IGNORE {
                    rows.push((r * t + j - 1) as i64);
                    targets.push(l);
                }
            }
        }
        Batch {
            ids: Tensor::from_slice(&ids).view([b, t as i64]).to_device(dev),
            labels: Tensor::from_slice(&labels)
                .view([b, t as i64])
                .to_device(dev),
            pixels: Tensor::stack(pixels, 0).to_device(dev),
            label_tokens: rows.len() as i64,
            tokens,
            slots: b * t as i64,
            loss_rows: Tensor::from_slice(&rows).to_device(dev),
            loss_targets: Tensor::from_slice(&targets).to_device(dev),
        }
    }

    /// Summed cross-entropy of the batch's label tokens (next-token prediction). Right
    /// padding needs no attention mask: causal attention never looks past a real token.
    /// The output head runs only on the positions that carry a label (the others' logits
    /// would not reach the loss), which for caption samples skips the image positions.
    /// Under bf16 autocast the forward pass computes in bf16 and the loss in fp32.
    pub fn loss_sum(&self, batch: &Batch) -> Result<Tensor, TrainError> {
        let device = self.cfg.device;
        let _autocast = self
            .cfg
            .precision
            .autocast_on(device)
            .then(|| Autocast::bf16(device));
        let h = self.model.forward_hidden(&batch.ids, Some(&batch.pixels))?;
        let d = h.size3()?.2;
        let h = h.reshape([-1, d]).index_select(0, &batch.loss_rows);
        let logits = self.model.llm.logits(&h);
        Ok(logits.cross_entropy_loss::<Tensor>(
            &batch.loss_targets,
            None,
            Reduction::Sum,
            IGNORE,
            0.0,
        ))
    }

    /// Mean loss of a batch without gradients.
    pub fn eval_loss(&self, batch: &Batch) -> Result<f64, TrainError> {
        let _guard = tch::no_grad_guard();
        Ok(self.loss_sum(batch)?.double_value(&[]) / batch.label_tokens.max(1) as f64)
    }

    /// One optimizer step over `micro` batches. The gradients come straight out of the
    /// backward pass (`.grad` is never touched) and are summed across micro-batches only
    /// when there are several. A non-finite loss or gradient norm leaves the parameters
    /// untouched and is an error.
    pub fn train_step(&mut self, micro: &[Batch]) -> Result<StepStats, TrainError> {
        let total: i64 = micro.iter().map(|b| b.label_tokens).sum();
        if total == 0 {
            return Err(TrainError::Config(format!(
                "step {}: the batch has no label token",
                self.step + 1
            )));
        }
        let trainable: Vec<&super::params::Param> = self.params.trainable().collect();
        let inputs: Vec<&Tensor> = trainable.iter().map(|p| &p.tensor).collect();
        let non_finite = |step: usize, loss: f64| TrainError::NonFinite {
            step,
            loss,
            checkpoint: None,
        };
        let mut loss = 0.0;
        let mut grads: Vec<Tensor> = Vec::new();
        for b in micro {
            let l = self.loss_sum(b)? / total as f64;
            let v = l.double_value(&[]);
            if !v.is_finite() {
                return Err(non_finite(self.step + 1, v));
            }
            let g = Tensor::f_run_backward(&[&l], &inputs, false, false)?;
            if grads.is_empty() {
                grads = g;
            } else {
                let _guard = tch::no_grad_guard();
                for (acc, g) in grads.iter_mut().zip(g) {
                    match (acc.defined(), g.defined()) {
                        (true, true) => {
                            let _ = acc.g_add_(&g);
                        }
                        (false, true) => *acc = g,
                        _ => {}
                    }
                }
            }
            loss += v;
        }
        let lr = self.schedule.lr(self.step);
        let flat = self
            .cfg
            .flat_optimizer
            .unwrap_or_else(|| self.cfg.device.is_cuda());
        let grad_norm = self
            .opt
            .clip_and_step(&trainable, grads, lr, self.cfg.max_grad_norm, flat);
        if !grad_norm.is_finite() {
            return Err(non_finite(self.step + 1, grad_norm));
        }
        self.step += 1;
        Ok(StepStats {
            step: self.step,
            loss,
            lr,
            grad_norm,
            tokens: micro.iter().map(|b| b.tokens).sum(),
            slots: micro.iter().map(|b| b.slots).sum(),
        })
    }

    /// Saves the model in the HF LLaVA layout (with the init folder's side files).
    pub fn save(&self, out: &Path) -> Result<(), TrainError> {
        checkpoint::save(&self.params.all, &self.init, out)
    }

    /// The folder whose config, tokenizer and processor files checkpoints copy.
    pub fn side_files(&self) -> &Path {
        &self.init
    }

    /// Takes the side files from `dir` from now on (it must hold them).
    pub fn set_side_files(&mut self, dir: &Path) {
        self.init = dir.to_path_buf();
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &AdamW {
        &self.opt
    }

    /// The optimizer, to restore its state.
    pub fn optimizer_mut(&mut self) -> &mut AdamW {
        &mut self.opt
    }

    /// The run's settings.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }
}

/// `text_config.max_position_embeddings` of a folder's `config.json`, when present.
fn max_positions(dir: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let n = v
        .get("text_config")?
        .get("max_position_embeddings")?
        .as_u64()?;
    Some(n as usize)
}

/// What a finished run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Optimizer steps taken.
    pub steps: usize,
    /// Loss of the last step.
    pub final_loss: f64,
    /// Data reader counts (samples used, skipped by reason).
    pub data: DataStats,
    /// Captions truncated to fit the context.
    pub truncated: usize,
    /// Fraction of the step time spent waiting for data (this process's steps).
    pub data_wait_fraction: f64,
    /// The step this process resumed from (0 for a fresh run).
    pub resumed_from: usize,
}

/// One metrics line of `metrics.jsonl`.
#[derive(Debug, Serialize)]
struct MetricsLine {
    step: usize,
    loss: f64,
    lr: f64,
    grad_norm: f64,
    tokens: i64,
    tokens_per_s: f64,
    pad_fraction: f64,
    epoch: usize,
    data_wait_s: f64,
    data_wait_fraction: f64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |e| TrainError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Opens `metrics.jsonl` for appending: fresh for a new run, cut back to the steps up to
/// `keep` when resuming (a killed run may have logged steps past its checkpoint).
fn open_log(path: &Path, keep: Option<usize>) -> Result<std::fs::File, TrainError> {
    let mut kept = String::new();
    if let (Some(keep), Ok(text)) = (keep, std::fs::read_to_string(path)) {
        for line in text.lines() {
            let step = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["step"].as_u64());
            if step.is_some_and(|s| s as usize <= keep) {
                kept.push_str(line);
                kept.push('\n');
            }
        }
    }
    std::fs::write(path, kept).map_err(io_err(path))?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(io_err(path))
}

/// The samples of a group of steps, encoded and planned into micro-batches
/// ([`length_group`](super::length_group)), and how many of its steps were taken.
struct StepGroup {
    /// Reader position before the group's first sample.
    start: ReaderState,
    /// Reader position after its last sample.
    end: ReaderState,
    seqs: Vec<(Vec<i64>, Vec<i64>)>,
    pixels: Vec<Tensor>,
    /// Sample indices of each step's micro-batches.
    plan: Vec<Vec<Vec<usize>>>,
    /// Steps taken.
    done: usize,
}

impl StepGroup {
    /// Draws and encodes the samples of `steps` steps, the first of which is step
    /// `first + 1`: in drawn order for one step, grouped by length for more. Also returns
    /// the seconds spent waiting for the loader.
    fn draw(
        loader: &mut Loader,
        trainer: &mut Trainer,
        start: ReaderState,
        steps: usize,
        first: usize,
    ) -> Result<(Self, f64), TrainError> {
        let cfg = trainer.config().clone();
        let n = steps * cfg.batch_size * cfg.grad_accum;
        let (mut seqs, mut pixels) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut end, mut wait) = (start, 0.0);
        for _ in 0..n {
            let t0 = Instant::now();
            let p = loader.next_sample()?;
            wait += t0.elapsed().as_secs_f64();
            end = p.state;
            seqs.push(trainer.encode_sample(&p.sample)?);
            pixels.push(p.pixels);
        }
        let plan = if steps > 1 {
            let lengths: Vec<usize> = seqs.iter().map(|(i, _)| i.len()).collect();
            let seed = (cfg.seed as u64) ^ (first as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            length_group::plan(&lengths, cfg.batch_size, cfg.grad_accum, seed)
        } else {
            length_group::in_order(n, cfg.batch_size, cfg.grad_accum)
        };
        let group = Self {
            start,
            end,
            seqs,
            pixels,
            plan,
            done: 0,
        };
        Ok((group, wait))
    }

    fn finished(&self) -> bool {
        self.done >= self.plan.len()
    }

    /// The micro-batches of the next step.
    fn next_step(&mut self, trainer: &Trainer) -> Vec<Batch> {
        let step = &self.plan[self.done];
        self.done += 1;
        step.iter()
            .map(|mb| {
                let seqs: Vec<_> = mb.iter().map(|&i| &self.seqs[i]).collect();
                let pixels: Vec<_> = mb.iter().map(|&i| self.pixels[i].shallow_clone()).collect();
                trainer.batch_of(&seqs, &pixels)
            })
            .collect()
    }

    /// What a checkpoint taken now saves: the reader after the group and 0 once all its
    /// steps are taken, else the reader before it and the steps taken.
    fn resume_point(&self) -> (ReaderState, usize) {
        if self.finished() {
            (self.end, 0)
        } else {
            (self.start, self.done)
        }
    }
}

/// Trains on the shards of `data` from `init`, logging every step to `out/metrics.jsonl`
/// and saving the final checkpoint to `out`. Samples are decoded on a worker thread.
/// With `cfg.save_every`, resumable checkpoints go to `out/checkpoints/`; with
/// `cfg.resume`, the run continues from the latest of them (the same settings required).
/// A non-finite loss stops the run with an error naming the step and the last good
/// checkpoint.
pub fn run(
    data: &Path,
    init: &Path,
    out: &Path,
    cfg: TrainConfig,
    mut on_step: impl FnMut(&StepStats),
) -> Result<RunSummary, TrainError> {
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let ckpts = out.join("checkpoints");
    let seed = cfg.seed as u64;
    let from = if cfg.resume {
        resume::latest(&ckpts)?
    } else {
        None
    };
    // A checkpoint saved inside a length group holds the reader where the group began and
    // how many of its steps were taken: the group is drawn again and those steps skipped.
    let (mut trainer, reader, mut resume_in_group, mut resumed_truncated) = match &from {
        Some(dir) => {
            let state = resume::load_state(dir)?;
            let reader = ShardReader::resume(data, cfg.shuffle_buffer, seed, &state.reader)?;
            let mut t = Trainer::new(dir, cfg.clone())?;
            resume::restore(&mut t, dir, &state)?;
            tracing::info!(checkpoint = %dir.display(), step = t.step, "resuming");
            (t, reader, state.group_done, Some(state.truncated))
        }
        None => {
            let reader = ShardReader::shuffled(data, cfg.shuffle_buffer, seed)?;
            (Trainer::new(init, cfg.clone())?, reader, 0, None)
        }
    };
    let resumed_from = trainer.step;
    let mut last_good = from.clone();
    let mut reader_state = reader.state();
    let log_path = out.join("metrics.jsonl");
    let mut log = open_log(&log_path, from.as_ref().map(|_| resumed_from))?;
    let per_step = cfg.batch_size * cfg.grad_accum;
    let group_steps = cfg.length_group.max(1);
    let workers = match cfg.loader_workers {
        0 => default_workers(cfg.device),
        n => n,
    };
    let mut loader = Loader::spawn(
        reader,
        trainer.processor.clone(),
        2 * per_step.max(workers),
        workers,
    );
    let (mut wait_total, mut time_total) = (0.0, 0.0);
    let mut last = None;
    let mut group: Option<StepGroup> = None;
    while trainer.step < cfg.steps {
        let started = Instant::now();
        let mut wait = 0.0;
        if group.as_ref().is_none_or(StepGroup::finished) {
            let first = trainer.step - resume_in_group;
            let steps = group_steps.min(cfg.steps - first);
            let (mut g, waited) =
                StepGroup::draw(&mut loader, &mut trainer, reader_state, steps, first)?;
            wait += waited;
            g.done = std::mem::take(&mut resume_in_group);
            if let Some(n) = resumed_truncated.take() {
                // The saved count already holds this group's truncations.
                trainer.truncated = n;
            }
            let st = g.end.stats;
            let seen = st.samples + st.skipped();
            if st.skipped() as f64 > cfg.max_skip_fraction * seen as f64 {
                return Err(TrainError::TooManySkipped {
                    dir: data.to_path_buf(),
                    skipped: st.skipped(),
                    seen,
                    max_fraction: cfg.max_skip_fraction,
                });
            }
            group = Some(g);
        }
        let g = group.as_mut().expect("a group was drawn");
        let micro = g.next_step(&trainer);
        let s = match trainer.train_step(&micro) {
            Err(TrainError::NonFinite { step, loss, .. }) => {
                tracing::error!(step, loss, checkpoint = ?last_good, "non-finite loss");
                return Err(TrainError::NonFinite {
                    step,
                    loss,
                    checkpoint: last_good,
                });
            }
            r => r?,
        };
        reader_state = g.end;
        let secs = started.elapsed().as_secs_f64();
        wait_total += wait;
        time_total += secs;
        let line = MetricsLine {
            step: s.step,
            loss: s.loss,
            lr: s.lr,
            grad_norm: s.grad_norm,
            tokens: s.tokens,
            tokens_per_s: s.tokens as f64 / secs.max(1e-9),
            pad_fraction: 1.0 - s.tokens as f64 / s.slots.max(1) as f64,
            epoch: reader_state.epoch,
            data_wait_s: wait,
            data_wait_fraction: wait / secs.max(1e-9),
        };
        let json = serde_json::to_string(&line).expect("metrics serialise");
        writeln!(log, "{json}").map_err(io_err(&log_path))?;
        tracing::info!(step = s.step, loss = s.loss, lr = s.lr, "step");
        on_step(&s);
        last = Some(s);
        if cfg.save_every > 0 && s.step % cfg.save_every == 0 && s.step < cfg.steps {
            let (at, done) = g.resume_point();
            let dir = resume::save(&ckpts, &trainer, at, done)?;
            trainer.set_side_files(&dir);
            last_good = Some(dir);
        }
    }
    drop(loader);
    trainer.save(out)?;
    let stats = reader_state.stats;
    if stats.skipped() > 0 {
        tracing::warn!(
            corrupt_images = stats.corrupt_images,
            missing_captions = stats.missing_captions,
            missing_images = stats.missing_images,
            bad_conversations = stats.bad_conversations,
            "samples skipped"
        );
    }
    Ok(RunSummary {
        steps: trainer.step,
        final_loss: last.map_or(f64::NAN, |s| s.loss),
        data: stats,
        truncated: trainer.truncated,
        data_wait_fraction: wait_total / time_total.max(1e-9),
        resumed_from,
    })
}
