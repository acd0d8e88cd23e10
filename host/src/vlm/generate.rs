//! A loaded checkpoint with its tokenizer and image processor, and the two operations the
//! platform needs: batched generation (KV cache, left padding, greedy or temperature/top-p
//! sampling with a seed, stop ids and strings) and scoring a continuation.

use std::path::Path;

use image::RgbImage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tch::{Device, Kind, Tensor};

use super::VlmError;
use super::chat_template::{ChatTemplate, VilaConversation};
use super::llama::KvCache;
use super::llava::LlavaModel;
use super::preprocess::ImageProcessor;
use super::tokenizer::VlmTokenizer;

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most likely token.
    Greedy,
    /// Sample from the tempered distribution restricted to the top-p nucleus.
    TopP {
        /// Softmax temperature (> 0).
        temperature: f64,
        /// Nucleus mass in (0, 1].
        top_p: f64,
        /// Seed of the sampler; the same seed gives the same tokens.
        seed: u64,
    },
}

/// Parameters of one generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationParams {
    /// Upper bound on generated tokens.
    pub max_new_tokens: usize,
    /// Token choice.
    pub sampling: Sampling,
    /// Ids that end generation, in addition to the checkpoint's EOS ids.
    pub stop_token_ids: Vec<i64>,
    /// Strings that end generation; the text is cut before the first one.
    pub stop_strings: Vec<String>,
    /// Do not stop on the checkpoint's EOS ids (benchmarks want fixed lengths).
    pub ignore_eos: bool,
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self {
            max_new_tokens: 128,
            sampling: Sampling::Greedy,
            stop_token_ids: Vec::new(),
            stop_strings: Vec::new(),
            ignore_eos: false,
        }
    }
}

impl GenerationParams {
    /// Checks the parameters are usable.
    pub fn validate(&self) -> Result<(), VlmError> {
        if let Sampling::TopP {
            temperature, top_p, ..
        } = self.sampling
            && (temperature <= 0.0 || !(top_p > 0.0 && top_p <= 1.0))
        {
            return Err(VlmError::Request(format!(
                "temperature must be > 0 and top_p in (0, 1], got {temperature} and {top_p}"
            )));
        }
        Ok(())
    }
}

/// A tokenized prompt with its preprocessed images.
#[derive(Debug)]
pub struct Prompt {
    /// Prompt ids (image placeholders expanded).
    pub ids: Vec<i64>,
    /// One `[3, H, W]` tensor per image, in placeholder order.
    pub pixels: Vec<Tensor>,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// An EOS or stop id was generated (it is the last of `token_ids`).
    Eos,
    /// A stop string appeared.
    StopString,
    /// `max_new_tokens` were generated.
    Length,
}

/// The outcome of one generation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Generated {
    /// Generated ids only (ending with the EOS id when it stopped on one).
    pub token_ids: Vec<i64>,
    /// Decoded text without special tokens, cut before a stop string.
    pub text: String,
    /// Why it ended.
    pub stop: StopReason,
}

/// Log-probabilities of a continuation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Score {
    /// The continuation's ids.
    pub token_ids: Vec<i64>,
    /// log p(token | prompt, previous tokens) for each.
    pub token_logprobs: Vec<f64>,
    /// Byte offset in the continuation where each token ends.
    pub token_ends: Vec<usize>,
    /// Their mean.
    pub mean_logprob: f64,
}

/// One pair to score: its index in the request, prompt, continuation ids and their ends.
type ScoreRow<'a> = (usize, &'a Prompt, Vec<i64>, Vec<usize>);

/// A checkpoint ready to serve: model, tokenizer, image processor, chat template.
pub struct Vlm {
    /// The network.
    pub model: LlavaModel,
    /// The tokenizer.
    pub tokenizer: VlmTokenizer,
    /// The image processor.
    pub processor: ImageProcessor,
    /// The chat template, when the checkpoint has one.
    pub chat_template: Option<ChatTemplate>,
    /// For VILA checkpoints: the conversation template `--chat` uses (VILA's choice by
    /// model path, else `vicuna_v1`), unless the tokenizer has a chat template.
    pub vila_conversation: Option<VilaConversation>,
    /// See [`Vlm::reply_lead`]; found once at load.
    reply_lead: String,
}

/// Renders a one-turn conversation with and without the assistant's reply and returns what
/// the template writes between its generation prompt and the reply (empty when unknown).
fn find_reply_lead(template: Option<&ChatTemplate>, conv: Option<VilaConversation>) -> String {
    const MARK: &str = "\u{1}reply\u{1}";
    if let Some(conv) = conv {
        return conv.reply_lead().to_string();
    }
    let Some(t) = template else {
        return String::new();
    };
    let user = serde_json::json!({"role": "user", "content": "x"});
    let reply = serde_json::json!({"role": "assistant", "content": MARK});
    let (Ok(prompt), Ok(full)) = (
        t.render(&serde_json::json!([user])),
        t.render_with(&serde_json::json!([user, reply]), false),
    ) else {
        return String::new();
    };
    full.strip_prefix(&prompt)
        .and_then(|rest| rest.find(MARK).map(|i| rest[..i].to_string()))
        .unwrap_or_default()
}

/// Where the weights come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightSource {
    /// The folder's safetensors files.
    Checkpoint,
    /// Seeded random weights of the folder's config (benchmarks).
    Random {
        /// RNG seed.
        seed: i64,
    },
}

/// The engine's default dtype on a device: fp32 on CPU, bf16 on CUDA.
pub fn default_kind(device: Device) -> Kind {
    if device.is_cuda() {
        Kind::BFloat16
    } else {
        Kind::Float
    }
}

/// The dtype `name` (`auto`, `f32`, `bf16`, `f16`) denotes on `device`.
pub fn parse_kind(name: &str, device: Device) -> Result<Kind, VlmError> {
    match name {
        "auto" => Ok(default_kind(device)),
        "f32" | "fp32" | "float32" => Ok(Kind::Float),
        "bf16" | "bfloat16" => Ok(Kind::BFloat16),
        "f16" | "fp16" | "float16" => Ok(Kind::Half),
        other => Err(VlmError::Request(format!(
            "unknown dtype {other:?} (auto, f32, bf16, f16)"
        ))),
    }
}

/// The device `name` (`cpu`, `cuda`, `cuda:N` or `auto`) denotes.
pub fn parse_device(name: &str) -> Result<Device, VlmError> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(Device::cuda_if_available()),
        "cuda" => Ok(Device::Cuda(0)),
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(Device::Cuda)
            .ok_or_else(|| {
                VlmError::Request(format!(
                    "unknown device {other:?} (cpu, cuda, cuda:N, auto)"
                ))
            }),
    }
}

impl Vlm {
    /// Loads a checkpoint folder: fp32 on CPU, bf16 on CUDA.
    pub fn load(dir: &Path, device: Device) -> Result<Self, VlmError> {
        Self::load_with(dir, device, default_kind(device), WeightSource::Checkpoint)
    }

    /// Loads a checkpoint folder with an explicit dtype and weight source.
    pub fn load_with(
        dir: &Path,
        device: Device,
        kind: Kind,
        source: WeightSource,
    ) -> Result<Self, VlmError> {
        if let Device::Cuda(_) = device
            && !tch::Cuda::is_available()
        {
            return Err(VlmError::Request(
                "CUDA was requested but libtorch sees no GPU".into(),
            ));
        }
        let model = match source {
            WeightSource::Checkpoint => LlavaModel::load(dir, device, kind)?,
            WeightSource::Random { seed } => LlavaModel::random(dir, device, kind, seed)?,
        };
        let eos = &model.config.text.eos_token_ids;
        let is_vila = super::vila::is_vila_dir(dir);
        let (tokenizer, processor, chat_template) = if is_vila {
            let llm = super::vila::llm_dir(dir);
            let tokenizer = VlmTokenizer::load_vila(&llm, eos)?;
            let processor = ImageProcessor::load(&super::vila::vision_dir(dir))?;
            let chat = ChatTemplate::load(&llm, &tokenizer)?;
            (tokenizer, processor, chat)
        } else {
            let tokenizer = VlmTokenizer::load(dir, model.config.image_token_id, eos)?;
            let processor = ImageProcessor::load(dir)?;
            let chat = ChatTemplate::load(dir, &tokenizer)?;
            (tokenizer, processor, chat)
        };
        tracing::info!(dir = %dir.display(), ?device, ?kind, "loaded model");
        let vila_conversation = (is_vila && chat_template.is_none())
            .then(|| VilaConversation::for_model_path(dir).unwrap_or(VilaConversation::VicunaV1));
        let reply_lead = find_reply_lead(chat_template.as_ref(), vila_conversation);
        Ok(Self {
            model,
            tokenizer,
            processor,
            chat_template,
            vila_conversation,
            reply_lead,
        })
    }

    /// Tokenizes a raw prompt (`<image>` marks each image) as transformers' processor does
    /// and preprocesses its images.
    pub fn prepare(&self, prompt: &str, images: &[RgbImage]) -> Result<Prompt, VlmError> {
        self.prepare_text(prompt, images, true)
    }

    /// Treats `message` as the user's turn: renders the chat template with one image slot
    /// per image, then tokenizes as transformers' `processor.apply_chat_template` does
    /// (special tokens added unless the rendered text already starts with the BOS token).
    pub fn prepare_chat(&self, message: &str, images: &[RgbImage]) -> Result<Prompt, VlmError> {
        let text = self.chat_prompt(message, images.len())?;
        let bos = self
            .chat_template
            .as_ref()
            .map(|t| t.bos_token())
            .unwrap_or_default();
        // VILA's tokenizer_image_token always adds the tokenizer's special tokens.
        let special = self.vila_conversation.is_some() || bos.is_empty() || !text.starts_with(bos);
        self.prepare_text(&text, images, special)
    }

    fn prepare_text(
        &self,
        prompt: &str,
        images: &[RgbImage],
        special: bool,
    ) -> Result<Prompt, VlmError> {
        let n = self.tokenizer.count_images(prompt);
        if n != images.len() {
            return Err(VlmError::Request(format!(
                "the prompt has {n} {} placeholders but {} images were given \
                 (put one {} where each image goes, or use the chat mode)",
                self.tokenizer.image_token,
                images.len(),
                self.tokenizer.image_token
            )));
        }
        let ids = self.tokenizer.encode_prompt(
            prompt,
            self.model.config.image_feature_count(),
            special,
        )?;
        let pixels = images
            .iter()
            .map(|im| self.processor.preprocess(im))
            .collect();
        Ok(Prompt { ids, pixels })
    }

    /// What the chat template writes between its generation prompt and the assistant's reply
    /// (the space after `ASSISTANT:`), so a reply is scored as the model generates it: the
    /// model writes `" The"`, and `"The"` alone is another token it never produced there.
    pub fn reply_lead(&self) -> &str {
        &self.reply_lead
    }

    /// Renders `user_message` with the checkpoint's chat template (one user turn, one image
    /// per entry of `n_images` placed before the text), ready for [`Vlm::prepare`].
    pub fn chat_prompt(&self, user_message: &str, n_images: usize) -> Result<String, VlmError> {
        if let Some(conv) = self.vila_conversation {
            return Ok(conv.render_user(user_message, n_images));
        }
        let t = self.chat_template.as_ref().ok_or_else(|| {
            VlmError::Request(format!(
                "{} has no chat template (tokenizer_config.json, chat_template.jinja or chat_template.json)",
                self.model.dir.display()
            ))
        })?;
        t.render_user(user_message, n_images)
    }

    fn features(&self, prompts: &[&Prompt]) -> Result<Option<Tensor>, VlmError> {
        let pixels: Vec<&Tensor> = prompts.iter().flat_map(|p| p.pixels.iter()).collect();
        if pixels.is_empty() {
            return Ok(None);
        }
        let want = self.model.config.vision.image_size as i64;
        for p in &pixels {
            let s = p.size();
            if s[1] != want || s[2] != want {
                return Err(VlmError::Request(format!(
                    "preprocessed image is {}×{} but the vision tower takes {want}×{want}; \
                     check size/crop_size in the processor config",
                    s[1], s[2]
                )));
            }
        }
        Ok(Some(self.model.image_features(&Tensor::stack(&pixels, 0))))
    }

    /// Generates a continuation for every prompt of the batch.
    pub fn generate(
        &self,
        prompts: &[&Prompt],
        params: &GenerationParams,
    ) -> Result<Vec<Generated>, VlmError> {
        params.validate()?;
        tch::no_grad(|| self.generate_inner(prompts, params))
    }

    fn generate_inner(
        &self,
        prompts: &[&Prompt],
        params: &GenerationParams,
    ) -> Result<Vec<Generated>, VlmError> {
        let b = prompts.len();
        if b == 0 {
            return Ok(Vec::new());
        }
        let dev = self.model.device;
        let llm = &self.model.llm;
        let t = prompts.iter().map(|p| p.ids.len()).max().unwrap_or(0);
        if t == 0 {
            return Err(VlmError::Request("empty prompt".into()));
        }
        let pad = self.tokenizer.pad_token_id;
        let mut ids = Vec::with_capacity(b * t);
        let mut mask = Vec::with_capacity(b * t);
        for p in prompts {
            let n_pad = t - p.ids.len();
            ids.extend(std::iter::repeat_n(pad, n_pad).chain(p.ids.iter().copied()));
            mask.extend(
                std::iter::repeat_n(0i64, n_pad).chain(std::iter::repeat_n(1, p.ids.len())),
            );
        }
        let ids = Tensor::from_slice(&ids)
            .view([b as i64, t as i64])
            .to_device(dev);
        let mut mask = Tensor::from_slice(&mask)
            .view([b as i64, t as i64])
            .to_device(dev);
        let feats = self.features(prompts)?;
        let emb = self.model.embed_with_images(&ids, feats.as_ref())?;
        let positions = (mask.cumsum(1, Kind::Int64) - 1).clamp_min(0);
        let mut next_pos = mask
            .sum_dim_intlist(1, false, Kind::Int64)
            .view([b as i64, 1]);
        let mut cache = KvCache::with_capacity(t + params.max_new_tokens);
        let h = llm.forward(&emb, &positions, &mask, &mut cache);
        let mut logits = llm.logits(&h.select(1, t as i64 - 1)).to_kind(Kind::Float);

        let mut stop_ids = if params.ignore_eos {
            Vec::new()
        } else {
            self.tokenizer.eos_token_ids.clone()
        };
        stop_ids.extend(&params.stop_token_ids);
        let mut rng = match params.sampling {
            Sampling::TopP { seed, .. } => Some(StdRng::seed_from_u64(seed)),
            Sampling::Greedy => None,
        };
        let mut out: Vec<Vec<i64>> = vec![Vec::new(); b];
        let mut done: Vec<Option<StopReason>> = vec![None; b];
        let mut texts: Vec<Option<String>> = vec![None; b];
        // Batch row -> prompt index, for the rows still generating.
        let mut active: Vec<usize> = (0..b).collect();
        for step in 0..params.max_new_tokens {
            let next = self.choose(&logits, params.sampling, rng.as_mut());
            let mut keep = Vec::with_capacity(active.len());
            for (row, &i) in active.iter().enumerate() {
                let tok = next[row];
                out[i].push(tok);
                if stop_ids.contains(&tok) {
                    done[i] = Some(StopReason::Eos);
                } else if !params.stop_strings.is_empty() {
                    let text = self.tokenizer.decode(&out[i])?;
                    if let Some(cut) = params
                        .stop_strings
                        .iter()
                        .filter_map(|s| text.find(s.as_str()))
                        .min()
                    {
                        done[i] = Some(StopReason::StopString);
                        texts[i] = Some(text[..cut].to_string());
                    }
                }
                if done[i].is_none() {
                    keep.push(row as i64);
                }
            }
            if keep.is_empty() || step + 1 == params.max_new_tokens {
                break;
            }
            let next_t = Tensor::from_slice(&next).to_device(dev);
            if keep.len() != active.len() {
                let rows = Tensor::from_slice(&keep).to_device(dev);
                cache.select_rows(&rows);
                mask = mask.index_select(0, &rows);
                next_pos = next_pos.index_select(0, &rows);
                let next_kept = next_t.index_select(0, &rows);
                active = keep.iter().map(|&r| active[r as usize]).collect();
                logits = self.step(&next_kept, &mut mask, &mut next_pos, &mut cache);
            } else {
                logits = self.step(&next_t, &mut mask, &mut next_pos, &mut cache);
            }
        }
        let mut results = Vec::with_capacity(b);
        for i in 0..b {
            let text = match texts[i].take() {
                Some(t) => t,
                None => self.tokenizer.decode(&out[i])?,
            };
            results.push(Generated {
                token_ids: std::mem::take(&mut out[i]),
                text,
                stop: done[i].unwrap_or(StopReason::Length),
            });
        }
        Ok(results)
    }

    /// Feeds one token per row and returns the next logits `[B, V]` (fp32).
    fn step(
        &self,
        tokens: &Tensor,
        mask: &mut Tensor,
        next_pos: &mut Tensor,
        cache: &mut KvCache,
    ) -> Tensor {
        let llm = &self.model.llm;
        let n = tokens.size()[0];
        *mask = Tensor::cat(
            &[&*mask, &Tensor::ones([n, 1], (Kind::Int64, mask.device()))],
            1,
        );
        let emb = llm.embed(&tokens.view([n, 1]));
        let h = llm.forward(&emb, next_pos, mask, cache);
        *next_pos = &*next_pos + 1;
        llm.logits(&h.squeeze_dim(1)).to_kind(Kind::Float)
    }

    fn choose(&self, logits: &Tensor, sampling: Sampling, rng: Option<&mut StdRng>) -> Vec<i64> {
        match (sampling, rng) {
            (
                Sampling::TopP {
                    temperature, top_p, ..
                },
                Some(rng),
            ) => {
                let probs = (logits / temperature)
                    .softmax(-1, Kind::Float)
                    .to_device(Device::Cpu);
                let (sorted, idx) = probs.sort(-1, true);
                let rows = sorted.size()[0];
                let sorted: Vec<f32> = Vec::try_from(sorted.flatten(0, -1)).expect("fp32 probs");
                let idx: Vec<i64> = Vec::try_from(idx.flatten(0, -1)).expect("int64 indices");
                let v = sorted.len() / rows as usize;
                (0..rows as usize)
                    .map(|r| {
                        let p = &sorted[r * v..(r + 1) * v];
                        // Smallest prefix whose mass reaches top_p (at least one token).
                        let mut mass = 0.0f64;
                        let mut n = 0;
                        while n < v {
                            mass += f64::from(p[n]);
                            n += 1;
                            if mass >= top_p {
                                break;
                            }
                        }
                        let u: f64 = rng.random::<f64>() * mass;
                        let mut acc = 0.0f64;
                        let mut pick = n - 1;
                        for (j, &pj) in p[..n].iter().enumerate() {
                            acc += f64::from(pj);
                            if u < acc {
                                pick = j;
                                break;
                            }
                        }
                        idx[r * v + pick]
                    })
                    .collect()
            }
            // `max` over the vocabulary returns the same index as `argmax` (the first maximum)
            // but runs a vectorised kernel: ~10 % of a batch-16 CPU decode step
            // (tests/parity/bench_decode_step.py).
            _ => Vec::try_from(logits.max_dim(-1, false).1.to_device(Device::Cpu))
                .expect("int64 argmax"),
        }
    }

    /// Log-probabilities of `continuation` (tokenized without special tokens) after the
    /// prompt.
    pub fn score(&self, prompt: &Prompt, continuation: &str) -> Result<Score, VlmError> {
        self.score_batch(&[(prompt, continuation)])?.remove(0)
    }

    /// Scores several (prompt, continuation) pairs in one left-padded forward pass; an
    /// empty continuation fails alone.
    pub fn score_batch(
        &self,
        items: &[(&Prompt, &str)],
    ) -> Result<Vec<Result<Score, VlmError>>, VlmError> {
        let mut out: Vec<Option<Result<Score, VlmError>>> = Vec::with_capacity(items.len());
        let mut rows = Vec::new();
        for (i, (prompt, text)) in items.iter().enumerate() {
            let (cont, ends) = self.tokenizer.encode_with_ends(text)?;
            if cont.is_empty() {
                out.push(Some(Err(VlmError::Request(
                    "the continuation to score is empty".into(),
                ))));
            } else {
                out.push(None);
                rows.push((i, *prompt, cont, ends));
            }
        }
        if !rows.is_empty() {
            let scores = tch::no_grad(|| self.score_rows(&rows))?;
            for ((i, ..), s) in rows.iter().zip(scores) {
                out[*i] = Some(Ok(s));
            }
        }
        Ok(out
            .into_iter()
            .map(|r| r.expect("every item answered"))
            .collect())
    }

    fn score_rows(&self, rows: &[ScoreRow<'_>]) -> Result<Vec<Score>, VlmError> {
        let dev = self.model.device;
        let b = rows.len() as i64;
        let lens: Vec<usize> = rows
            .iter()
            .map(|(_, p, c, _)| p.ids.len() + c.len())
            .collect();
        let t = *lens.iter().max().expect("at least one row");
        let pad = self.tokenizer.pad_token_id;
        let mut ids = Vec::with_capacity(rows.len() * t);
        let mut mask = Vec::with_capacity(rows.len() * t);
        for ((_, p, c, _), &len) in rows.iter().zip(&lens) {
            ids.extend(std::iter::repeat_n(pad, t - len));
            ids.extend(p.ids.iter().chain(c.iter()).copied());
            mask.extend(std::iter::repeat_n(0i64, t - len).chain(std::iter::repeat_n(1, len)));
        }
        let ids = Tensor::from_slice(&ids).view([b, t as i64]).to_device(dev);
        let mask = Tensor::from_slice(&mask).view([b, t as i64]).to_device(dev);
        let prompts: Vec<&Prompt> = rows.iter().map(|(_, p, ..)| *p).collect();
        let feats = self.features(&prompts)?;
        let emb = self.model.embed_with_images(&ids, feats.as_ref())?;
        let positions = (mask.cumsum(1, Kind::Int64) - 1).clamp_min(0);
        let mut cache = KvCache::new();
        let h = self.model.llm.forward(&emb, &positions, &mask, &mut cache);
        let mut scores = Vec::with_capacity(rows.len());
        for (r, ((_, p, cont, ends), &len)) in rows.iter().zip(&lens).enumerate() {
            // Hidden states that predict the continuation's tokens.
            let start = (t - len + p.ids.len() - 1) as i64;
            let hr = h.get(r as i64).narrow(0, start, cont.len() as i64);
            let lp = self
                .model
                .llm
                .logits(&hr)
                .to_kind(Kind::Float)
                .log_softmax(-1, Kind::Float);
            let target = Tensor::from_slice(cont).to_device(dev).view([-1, 1]);
            let picked = lp
                .gather(1, &target, false)
                .flatten(0, -1)
                .to_kind(Kind::Double)
                .to_device(Device::Cpu);
            let token_logprobs: Vec<f64> = Vec::try_from(picked).expect("fp64 log-probs");
            let mean_logprob = token_logprobs.iter().sum::<f64>() / token_logprobs.len() as f64;
            scores.push(Score {
                token_ids: cont.clone(),
                token_logprobs,
                token_ends: ends.clone(),
                mean_logprob,
            });
        }
        Ok(scores)
    }
}
