//! A random LLaVA from a [`ModelSpec`] (CLIP vision tower + Llama LM + `mlp2x_gelu`
//! projector), initialised as transformers does (normal weights with std
//! `initializer_range`, zero biases, unit norms) from a seed, with a byte-level BPE tokenizer
//! trained on a corpus and a vicuna chat template, saved in the HF LLaVA layout that the
//! engine and transformers load.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tch::{Device, Kind, Tensor};
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use super::TrainError;
use super::checkpoint;
use super::params::{Group, Param};

/// Special tokens, in id order: `<unk>` 0, `<s>` 1, `</s>` 2, `<pad>` 3, `<image>` 4.
pub const SPECIAL_TOKENS: [&str; 5] = ["<unk>", "<s>", "</s>", "<pad>", "<image>"];
const BOS: u32 = 1;
const EOS: u32 = 2;
const PAD: u32 = 3;
const IMAGE: u32 = 4;

/// Vicuna's conversation format as a transformers chat template: `USER: <image>\n{q}
/// ASSISTANT: {a}</s>` per turn, `ASSISTANT:` as the generation prompt.
pub const VICUNA_TEMPLATE: &str = concat!(
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: ",
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}",
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n",
    "{% elif c['type'] == 'text' %}{{ c['text'].strip() }}{% endif %}{% endfor %}{% endif %}",
    " {% else %}ASSISTANT: {{ message['content'] }}{{ eos_token }}{% endif %}{% endfor %}",
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
);

/// The Llama language model's dimensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextSpec {
    /// Hidden size.
    pub hidden_size: usize,
    /// Decoder layers.
    pub num_layers: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `num_heads`).
    pub num_kv_heads: usize,
    /// MLP intermediate size.
    pub intermediate_size: usize,
    /// Longest sequence (image tokens included).
    pub max_position_embeddings: usize,
    /// RoPE base.
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
}

impl Default for TextSpec {
    fn default() -> Self {
        Self {
            hidden_size: 128,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            intermediate_size: 256,
            max_position_embeddings: 512,
            rope_theta: 10000.0,
            rms_norm_eps: 1e-6,
        }
    }
}

/// The CLIP vision tower's dimensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VisionSpec {
    /// Hidden size.
    pub hidden_size: usize,
    /// Encoder layers (features are taken from the second to last, so at least 2).
    pub num_layers: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// MLP intermediate size.
    pub intermediate_size: usize,
    /// Square input size in pixels.
    pub image_size: usize,
    /// Square patch size in pixels.
    pub patch_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
}

impl Default for VisionSpec {
    fn default() -> Self {
        Self {
            hidden_size: 64,
            num_layers: 3,
            num_heads: 4,
            intermediate_size: 128,
            image_size: 64,
            patch_size: 8,
            layer_norm_eps: 1e-5,
        }
    }
}

/// What to build: the defaults are the tiny ShapesWorld model (64×64 images, 64 image
/// tokens, a 512-token vocabulary, ~0.7M parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSpec {
    /// Tokenizer vocabulary size (special tokens and the 256 byte symbols included).
    pub vocab_size: usize,
    /// Std of the normal initialisation.
    pub initializer_range: f64,
    /// Projector type; only `mlp2x_gelu` (Linear → GELU → Linear).
    pub projector: String,
    /// The language model.
    pub text: TextSpec,
    /// The vision tower.
    pub vision: VisionSpec,
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            vocab_size: 512,
            initializer_range: 0.02,
            projector: "mlp2x_gelu".into(),
            text: TextSpec::default(),
            vision: VisionSpec::default(),
        }
    }
}

fn bad(file: &Path, msg: impl Into<String>) -> TrainError {
    TrainError::Spec {
        file: file.to_path_buf(),
        msg: msg.into(),
    }
}

impl ModelSpec {
    /// The tiny ShapesWorld model.
    pub fn tiny() -> Self {
        Self::default()
    }

    /// The spec a run document's `model.spec` names: `tiny`, or a spec file ([`Self::from_file`]).
    pub fn named_or_file(spec: &str) -> Result<Self, TrainError> {
        if spec == "tiny" {
            Ok(Self::tiny())
        } else {
            Self::from_file(Path::new(spec))
        }
    }

    /// Reads a spec from `.json` or `.toml` (top-level keys plus `[text]` and `[vision]`
    /// tables; missing keys take the tiny model's values). Errors name the file and the
    /// field (`text.hidden_size: invalid type ...`, `vision: unknown field ...`).
    pub fn from_file(file: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(file).map_err(|e| TrainError::Io {
            path: file.to_path_buf(),
            source: e,
        })?;
        let spec = if file.extension().is_some_and(|e| e == "json") {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        }
        .map_err(|m| bad(file, m))?;
        spec.validate().map_err(|m| bad(file, m))?;
        Ok(spec)
    }

    /// Parses a TOML spec (not validated); the error names the field at fault.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let de = toml::Deserializer::parse(text).map_err(|e| e.to_string())?;
        serde_path_to_error::deserialize(de).map_err(|e| field_error(&e))
    }

    /// Parses a JSON spec (not validated); the error names the field at fault.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de).map_err(|e| field_error(&e))
    }

    /// Checks the dimensions fit together; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let (t, v) = (&self.text, &self.vision);
        if self.projector != "mlp2x_gelu" {
            return Err(format!(
                "projector {:?}: only \"mlp2x_gelu\" is supported",
                self.projector
            ));
        }
        if self.vocab_size < 256 + SPECIAL_TOKENS.len() {
            return Err(format!(
                "vocab_size {} is below {} (256 byte symbols + {} special tokens)",
                self.vocab_size,
                256 + SPECIAL_TOKENS.len(),
                SPECIAL_TOKENS.len()
            ));
        }
        let checks = [
            (
                t.num_heads == 0 || t.hidden_size % t.num_heads != 0,
                "text.hidden_size must be a multiple of text.num_heads",
            ),
            (
                t.num_kv_heads == 0 || t.num_heads % t.num_kv_heads != 0,
                "text.num_heads must be a multiple of text.num_kv_heads",
            ),
            (
                !(t.hidden_size / t.num_heads.max(1)).is_multiple_of(2),
                "text head size (hidden_size / num_heads) must be even for RoPE",
            ),
            (
                t.num_layers == 0 || t.intermediate_size == 0,
                "text.num_layers and text.intermediate_size must be positive",
            ),
            (
                v.num_heads == 0 || v.hidden_size % v.num_heads != 0,
                "vision.hidden_size must be a multiple of vision.num_heads",
            ),
            (
                v.num_layers < 2,
                "vision.num_layers must be at least 2 (features come from the second to last layer)",
            ),
            (
                v.patch_size == 0 || v.image_size % v.patch_size != 0,
                "vision.image_size must be a multiple of vision.patch_size",
            ),
            (
                self.initializer_range.is_nan() || self.initializer_range <= 0.0,
                "initializer_range must be positive",
            ),
        ];
        if let Some((_, m)) = checks.iter().find(|(c, _)| *c) {
            return Err((*m).to_string());
        }
        if t.max_position_embeddings <= self.image_tokens() {
            return Err(format!(
                "text.max_position_embeddings {} leaves no room after the {} image tokens",
                t.max_position_embeddings,
                self.image_tokens()
            ));
        }
        Ok(())
    }

    /// Image tokens per image (patches; the CLS token is dropped).
    pub fn image_tokens(&self) -> usize {
        (self.vision.image_size / self.vision.patch_size).pow(2)
    }

    /// `config.json` of the HF LLaVA layout.
    pub fn config_json(&self) -> Value {
        let (t, v) = (&self.text, &self.vision);
        json!({
            "architectures": ["LlavaForConditionalGeneration"],
            "dtype": "float32",
            "image_seq_length": self.image_tokens(),
            "image_token_index": IMAGE,
            "model_type": "llava",
            "multimodal_projector_bias": true,
            "projector_hidden_act": "gelu",
            "tie_word_embeddings": false,
            "vision_feature_layer": -2,
            "vision_feature_select_strategy": "default",
            "text_config": {
                "model_type": "llama",
                "attention_bias": false,
                "attention_dropout": 0.0,
                "bos_token_id": BOS,
                "eos_token_id": EOS,
                "pad_token_id": PAD,
                "head_dim": t.hidden_size / t.num_heads,
                "hidden_act": "silu",
                "hidden_size": t.hidden_size,
                "initializer_range": self.initializer_range,
                "intermediate_size": t.intermediate_size,
                "max_position_embeddings": t.max_position_embeddings,
                "mlp_bias": false,
                "num_attention_heads": t.num_heads,
                "num_hidden_layers": t.num_layers,
                "num_key_value_heads": t.num_kv_heads,
                "pretraining_tp": 1,
                "rms_norm_eps": t.rms_norm_eps,
                "rope_parameters": {"rope_theta": t.rope_theta, "rope_type": "default"},
                "tie_word_embeddings": false,
                "use_cache": true,
                "vocab_size": self.vocab_size,
            },
            "vision_config": {
                "model_type": "clip_vision_model",
                "attention_dropout": 0.0,
                "hidden_act": "quick_gelu",
                "hidden_size": v.hidden_size,
                "image_size": v.image_size,
                "initializer_factor": 1.0,
                "initializer_range": self.initializer_range,
                "intermediate_size": v.intermediate_size,
                "layer_norm_eps": v.layer_norm_eps,
                "num_attention_heads": v.num_heads,
                "num_channels": 3,
                "num_hidden_layers": v.num_layers,
                "patch_size": v.patch_size,
                "projection_dim": v.hidden_size,
            },
        })
    }

    /// The CLIP image processor: resize the short side to `image_size`, center crop,
    /// CLIP normalisation.
    pub fn image_processor_json(&self) -> Value {
        clip_image_processor(self.vision.image_size)
    }

    /// Random tensors with canonical keys (see [`crate::vlm::llava::canonical_key`]), drawn
    /// in a fixed order from libtorch's generator (seed it first).
    pub fn random_params(&self) -> Vec<Param> {
        let (t, v) = (&self.text, &self.vision);
        let std = self.initializer_range;
        let opts = (Kind::Float, Device::Cpu);
        let mut out = Vec::new();
        let mut push = |key: String, shape: &[usize], init: Init| {
            let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            let tensor = match init {
                Init::Normal => Tensor::randn(shape.as_slice(), opts) * std,
                Init::Zeros => Tensor::zeros(shape.as_slice(), opts),
                Init::Ones => Tensor::ones(shape.as_slice(), opts),
            };
            out.push(Param {
                group: Group::of(&key),
                decay: tensor.dim() >= 2 && !key.contains("norm"),
                key,
                tensor,
                trainable: false,
            });
        };
        use Init::{Normal, Ones, Zeros};
        // Language model.
        let (h, hd) = (t.hidden_size, t.hidden_size / t.num_heads);
        let kv = t.num_kv_heads * hd;
        let lm = "language_model.model";
        push(
            format!("{lm}.embed_tokens.weight"),
            &[self.vocab_size, h],
            Normal,
        );
        for l in 0..t.num_layers {
            let p = format!("{lm}.layers.{l}");
            push(format!("{p}.self_attn.q_proj.weight"), &[h, h], Normal);
            push(format!("{p}.self_attn.k_proj.weight"), &[kv, h], Normal);
            push(format!("{p}.self_attn.v_proj.weight"), &[kv, h], Normal);
            push(format!("{p}.self_attn.o_proj.weight"), &[h, h], Normal);
            push(
                format!("{p}.mlp.gate_proj.weight"),
                &[t.intermediate_size, h],
                Normal,
            );
            push(
                format!("{p}.mlp.up_proj.weight"),
                &[t.intermediate_size, h],
                Normal,
            );
            push(
                format!("{p}.mlp.down_proj.weight"),
                &[h, t.intermediate_size],
                Normal,
            );
            push(format!("{p}.input_layernorm.weight"), &[h], Ones);
            push(format!("{p}.post_attention_layernorm.weight"), &[h], Ones);
        }
        push(format!("{lm}.norm.weight"), &[h], Ones);
        push(
            "language_model.lm_head.weight".into(),
            &[self.vocab_size, h],
            Normal,
        );
        // Vision tower.
        let (c, ps) = (v.hidden_size, v.patch_size);
        let vt = "vision_tower";
        push(format!("{vt}.embeddings.class_embedding"), &[c], Normal);
        push(
            format!("{vt}.embeddings.patch_embedding.weight"),
            &[c, 3, ps, ps],
            Normal,
        );
        push(
            format!("{vt}.embeddings.position_embedding.weight"),
            &[self.image_tokens() + 1, c],
            Normal,
        );
        push(format!("{vt}.pre_layrnorm.weight"), &[c], Ones);
        push(format!("{vt}.pre_layrnorm.bias"), &[c], Zeros);
        for l in 0..v.num_layers {
            let p = format!("{vt}.encoder.layers.{l}");
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                push(format!("{p}.self_attn.{proj}.weight"), &[c, c], Normal);
                push(format!("{p}.self_attn.{proj}.bias"), &[c], Zeros);
            }
            push(
                format!("{p}.mlp.fc1.weight"),
                &[v.intermediate_size, c],
                Normal,
            );
            push(format!("{p}.mlp.fc1.bias"), &[v.intermediate_size], Zeros);
            push(
                format!("{p}.mlp.fc2.weight"),
                &[c, v.intermediate_size],
                Normal,
            );
            push(format!("{p}.mlp.fc2.bias"), &[c], Zeros);
            for n in ["layer_norm1", "layer_norm2"] {
                push(format!("{p}.{n}.weight"), &[c], Ones);
                push(format!("{p}.{n}.bias"), &[c], Zeros);
            }
        }
        push(format!("{vt}.post_layernorm.weight"), &[c], Ones);
        push(format!("{vt}.post_layernorm.bias"), &[c], Zeros);
        // Projector.
        let mp = "multi_modal_projector";
        push(format!("{mp}.linear_1.weight"), &[h, c], Normal);
        push(format!("{mp}.linear_1.bias"), &[h], Zeros);
        push(format!("{mp}.linear_2.weight"), &[h, h], Normal);
        push(format!("{mp}.linear_2.bias"), &[h], Zeros);
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

#[derive(Clone, Copy)]
enum Init {
    Normal,
    Zeros,
    Ones,
}

/// `field: message` for a deserialisation error (just the message at the top level).
fn field_error<E: std::fmt::Display>(e: &serde_path_to_error::Error<E>) -> String {
    let path = e.path().to_string();
    let inner = e.inner().to_string();
    let inner = inner.trim();
    if path == "." || path.is_empty() {
        inner.to_string()
    } else {
        format!("{path}: {inner}")
    }
}

/// Trains a byte-level BPE tokenizer (GPT-2 pre-tokenizer, `<s>` prepended) of at most
/// `vocab_size` tokens on the lines of `corpus`; ids 0–4 are [`SPECIAL_TOKENS`].
///
/// Digits are split one per token, as Llama's tokenizer does: BPE merges would otherwise
/// cut numbers into ragged pieces ("296" → `2`,`96`; "484" → `4`,`8`,`4`), so a box such
/// as `[296,484,609,796]` would have no fixed length and a small model never learns where
/// it closes (the grounding specialist looped on `5,5,5,…`).
pub fn train_tokenizer(corpus: &Path, vocab_size: usize) -> Result<Tokenizer, TrainError> {
    let err = |msg: String| TrainError::Tokenizer {
        file: corpus.to_path_buf(),
        msg,
    };
    if !corpus.is_file() {
        return Err(TrainError::Io {
            path: corpus.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "corpus file not found"),
        });
    }
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(Sequence::new(vec![
        PreTokenizerWrapper::Digits(Digits::new(true)),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
    ])));
    tok.with_decoder(Some(ByteLevel::new(true, true, true)));
    let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
    let mut trainer: TrainerWrapper = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .show_progress(false)
        .special_tokens(
            SPECIAL_TOKENS
                .iter()
                .map(|t| AddedToken::from(*t, true))
                .collect(),
        )
        .initial_alphabet(alphabet)
        .build()
        .into();
    let file = corpus.to_string_lossy().into_owned();
    tok.train_from_files(&mut trainer, vec![file])
        .map_err(|e| err(e.to_string()))?;
    for (id, t) in SPECIAL_TOKENS.iter().enumerate() {
        if tok.token_to_id(t) != Some(id as u32) {
            return Err(err(format!("special token {t} did not get id {id}")));
        }
    }
    let post = TemplateProcessing::builder()
        .try_single("<s> $A")
        .and_then(|b| b.try_pair("<s> $A <s> $B"))
        .map_err(|e| err(e.to_string()))?
        .special_tokens(vec![("<s>", BOS)])
        .build()
        .map_err(|e| err(e.to_string()))?;
    tok.with_post_processor(Some(post));
    Ok(tok)
}

/// What [`init_model`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct InitSummary {
    /// Parameters of the model.
    pub parameters: usize,
    /// Tokens in the trained vocabulary (can be below the spec's `vocab_size` on a small
    /// corpus; the embedding keeps `vocab_size` rows).
    pub vocab: usize,
    /// Image tokens per image.
    pub image_tokens: usize,
}

fn write_json(path: &Path, v: &Value) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(v).expect("JSON serialises");
    write_file(path, text.as_bytes())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    std::fs::write(path, bytes).map_err(|e| TrainError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

/// Builds a random model from `spec` with a tokenizer trained on `corpus` and saves it to
/// `out` in the HF LLaVA layout; the same seed gives the same weights.
pub fn init_model(
    spec: &ModelSpec,
    corpus: &Path,
    out: &Path,
    seed: i64,
) -> Result<InitSummary, TrainError> {
    spec.validate()
        .map_err(|m| TrainError::Config(m.to_string()))?;
    let tok = train_tokenizer(corpus, spec.vocab_size)?;
    let vocab = tok.get_vocab_size(true);
    std::fs::create_dir_all(out).map_err(|e| TrainError::Io {
        path: out.to_path_buf(),
        source: e,
    })?;
    let tok_file = out.join("tokenizer.json");
    tok.save(&tok_file, true)
        .map_err(|e| TrainError::Tokenizer {
            file: tok_file.clone(),
            msg: e.to_string(),
        })?;
    write_json(
        &out.join("tokenizer_config.json"),
        &json!({
            "backend": "tokenizers",
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "pad_token": "<pad>",
            "image_token": "<image>",
            "extra_special_tokens": [],
            "chat_template": VICUNA_TEMPLATE,
            "model_max_length": spec.text.max_position_embeddings,
            "padding_side": "left",
            "processor_class": "LlavaProcessor",
            "tokenizer_class": "TokenizersBackend",
        }),
    )?;
    write_file(&out.join("chat_template.jinja"), VICUNA_TEMPLATE.as_bytes())?;
    write_json(&out.join("config.json"), &spec.config_json())?;
    write_json(
        &out.join("generation_config.json"),
        &json!({"bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD}),
    )?;
    let mut pre = spec.image_processor_json();
    pre["processor_class"] = json!("LlavaProcessor");
    write_json(&out.join("preprocessor_config.json"), &pre)?;
    write_json(
        &out.join("processor_config.json"),
        &json!({
            "image_processor": spec.image_processor_json(),
            "image_token": "<image>",
            "num_additional_image_tokens": 1,
            "patch_size": spec.vision.patch_size,
            "processor_class": "LlavaProcessor",
            "vision_feature_select_strategy": "default",
        }),
    )?;
    tch::manual_seed(seed);
    let params = spec.random_params();
    checkpoint::save(&params, out, out)?;
    let summary = InitSummary {
        parameters: params.iter().map(|p| p.tensor.numel()).sum(),
        vocab,
        image_tokens: spec.image_tokens(),
    };
    tracing::info!(out = %out.display(), parameters = summary.parameters, vocab, "initialised model");
    Ok(summary)
}

/// CLIP's image processor at `size` pixels: resize the short side, center crop, CLIP
/// normalisation (what `CLIPImageProcessor` writes).
pub(crate) fn clip_image_processor(size: usize) -> Value {
    let s = size;
    json!({
        "crop_size": {"height": s, "width": s},
        "do_center_crop": true,
        "do_convert_rgb": true,
        "do_normalize": true,
        "do_rescale": true,
        "do_resize": true,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_processor_type": "CLIPImageProcessor",
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 3,
        "rescale_factor": 1.0 / 255.0,
        "size": {"shortest_edge": s},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_specs_override_the_tiny_defaults() {
        let s = ModelSpec::from_toml(
            "vocab_size = 600 # bigger\n[text]\nhidden_size = 64\nrope_theta = 1e4\n[vision]\nimage_size = 32\n",
        )
        .unwrap();
        assert_eq!(s.vocab_size, 600);
        assert_eq!(s.text.hidden_size, 64);
        assert_eq!(s.text.rope_theta, 1e4);
        assert_eq!(s.vision.image_size, 32);
        assert_eq!(s.vision.patch_size, 8);
        assert!(s.validate().is_ok());
        let e = ModelSpec::from_toml("oops").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn wrong_types_and_unknown_fields_name_the_field() {
        let e = ModelSpec::from_toml("[text]\nhidden_size = \"big\"\n").unwrap_err();
        assert!(e.starts_with("text.hidden_size: "), "{e}");
        assert!(e.contains("invalid type"), "{e}");
        let e = ModelSpec::from_toml("[vision]\npatch_sise = 4\n").unwrap_err();
        assert!(e.starts_with("vision"), "{e}");
        assert!(e.contains("unknown field `patch_sise`"), "{e}");
        let e = ModelSpec::from_toml("vocab_size = -3\n").unwrap_err();
        assert!(e.starts_with("vocab_size: "), "{e}");
        let e = ModelSpec::from_json(r#"{"text": {"num_layers": 2.5}}"#).unwrap_err();
        assert!(e.starts_with("text.num_layers: "), "{e}");
        // Integers are accepted where floats are expected.
        let s = ModelSpec::from_toml("[text]\nrope_theta = 10000\n").unwrap();
        assert_eq!(s.text.rope_theta, 10000.0);
    }

    #[test]
    fn invalid_specs_name_the_field() {
        let mut s = ModelSpec::tiny();
        s.vision.num_layers = 1;
        assert!(s.validate().unwrap_err().contains("vision.num_layers"));
        let mut s = ModelSpec::tiny();
        s.text.num_kv_heads = 3;
        assert!(s.validate().unwrap_err().contains("num_kv_heads"));
    }
}
