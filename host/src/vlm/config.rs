//! Model configuration as written by transformers (`config.json`), with the same defaults as
//! the Python config classes so that fields omitted by `save_pretrained` read back identically.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::VlmError;

/// Which decoder family a text config describes; both share one implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFamily {
    /// `model_type = "llama"`.
    Llama,
    /// `model_type = "qwen2"` (q/k/v projections carry a bias).
    Qwen2,
}

/// Configuration of a Llama or Qwen2 decoder.
#[derive(Debug, Clone)]
pub struct TextConfig {
    /// Decoder family.
    pub family: TextFamily,
    /// Vocabulary size (rows of `embed_tokens`).
    pub vocab_size: usize,
    /// Hidden width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than query heads).
    pub num_key_value_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// Whether q/k/v projections have a bias.
    pub attention_bias: bool,
    /// Whether `o_proj` has a bias.
    pub o_proj_bias: bool,
    /// Whether the MLP projections have a bias.
    pub mlp_bias: bool,
    /// Whether the output head shares the input embedding matrix.
    pub tie_word_embeddings: bool,
    /// End-of-sequence ids.
    pub eos_token_ids: Vec<i64>,
    /// Beginning-of-sequence id.
    pub bos_token_id: Option<i64>,
    /// Padding id.
    pub pad_token_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct RawText {
    model_type: Option<String>,
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_parameters: Option<Value>,
    rope_scaling: Option<Value>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    tie_word_embeddings: Option<bool>,
    eos_token_id: Option<Value>,
    bos_token_id: Option<Value>,
    pad_token_id: Option<Value>,
    hidden_act: Option<String>,
}

fn ids_of(v: &Option<Value>) -> Vec<i64> {
    match v {
        Some(Value::Number(n)) => n.as_i64().into_iter().collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_i64).collect(),
        _ => Vec::new(),
    }
}

impl TextConfig {
    /// Parses a text config object (`text_config` of a LLaVA config or a causal LM's config).
    pub fn from_value(v: &Value, file: &Path) -> Result<Self, VlmError> {
        let raw: RawText = serde_json::from_value(v.clone()).map_err(|e| VlmError::Config {
            file: file.to_path_buf(),
            msg: format!("text config: {e}"),
        })?;
        let model_type = raw.model_type.clone().unwrap_or_else(|| "llama".into());
        let family = match model_type.as_str() {
            "llama" => TextFamily::Llama,
            "qwen2" => TextFamily::Qwen2,
            other => {
                return Err(VlmError::Unsupported {
                    file: file.to_path_buf(),
                    what: format!("text model_type {other:?} (supported: \"llama\", \"qwen2\")"),
                });
            }
        };
        let rope_type = raw
            .rope_parameters
            .as_ref()
            .or(raw.rope_scaling.as_ref())
            .and_then(|p| p.get("rope_type").or_else(|| p.get("type")))
            .and_then(Value::as_str)
            .unwrap_or("default");
        if rope_type != "default" {
            return Err(VlmError::Unsupported {
                file: file.to_path_buf(),
                what: format!("text rope_type {rope_type:?} (supported: \"default\")"),
            });
        }
        if let Some(act) = &raw.hidden_act
            && act != "silu"
        {
            return Err(VlmError::Unsupported {
                file: file.to_path_buf(),
                what: format!("text hidden_act {act:?} (supported: \"silu\")"),
            });
        }
        let rope_theta = raw
            .rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_theta"))
            .and_then(Value::as_f64)
            .or(raw.rope_theta)
            .unwrap_or(10000.0);
        let (vocab, hidden, inter) = match family {
            TextFamily::Llama => (32000, 4096, 11008),
            TextFamily::Qwen2 => (151936, 4096, 22016),
        };
        let hidden_size = raw.hidden_size.unwrap_or(hidden);
        let num_attention_heads = raw.num_attention_heads.unwrap_or(32);
        let head_dim = raw
            .head_dim
            .unwrap_or(hidden_size / num_attention_heads.max(1));
        let qwen = family == TextFamily::Qwen2;
        Ok(Self {
            family,
            vocab_size: raw.vocab_size.unwrap_or(vocab),
            hidden_size,
            intermediate_size: raw.intermediate_size.unwrap_or(inter),
            num_hidden_layers: raw.num_hidden_layers.unwrap_or(32),
            num_attention_heads,
            num_key_value_heads: raw.num_key_value_heads.unwrap_or(num_attention_heads),
            head_dim,
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            attention_bias: qwen || raw.attention_bias.unwrap_or(false),
            o_proj_bias: !qwen && raw.attention_bias.unwrap_or(false),
            mlp_bias: !qwen && raw.mlp_bias.unwrap_or(false),
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            eos_token_ids: ids_of(&raw.eos_token_id),
            bos_token_id: ids_of(&raw.bos_token_id).first().copied(),
            pad_token_id: ids_of(&raw.pad_token_id).first().copied(),
        })
    }
}

/// Which vision tower a vision config describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisionFamily {
    /// CLIP ViT: class token, pre-layernorm, bias-free patch convolution.
    Clip,
    /// SigLIP ViT: no class token, patch convolution with bias.
    Siglip,
}

/// Configuration of a CLIP or SigLIP vision transformer.
#[derive(Debug, Clone)]
pub struct VisionConfig {
    /// Tower family.
    pub family: VisionFamily,
    /// Hidden width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Input resolution (square).
    pub image_size: usize,
    /// Patch side.
    pub patch_size: usize,
    /// Input channels.
    pub num_channels: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// MLP activation name (`quick_gelu`, `gelu`, `gelu_pytorch_tanh`, ...).
    pub hidden_act: String,
}

#[derive(Debug, Deserialize)]
struct RawVision {
    model_type: Option<String>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    image_size: Option<usize>,
    patch_size: Option<usize>,
    num_channels: Option<usize>,
    layer_norm_eps: Option<f64>,
    hidden_act: Option<String>,
}

impl VisionConfig {
    /// Parses a vision config object; `None` gives LLaVA's default CLIP ViT-L/14-336 config.
    pub fn from_value(v: Option<&Value>, file: &Path) -> Result<Self, VlmError> {
        let Some(v) = v else {
            return Ok(Self {
                family: VisionFamily::Clip,
                hidden_size: 1024,
                intermediate_size: 4096,
                num_hidden_layers: 24,
                num_attention_heads: 16,
                image_size: 336,
                patch_size: 14,
                num_channels: 3,
                layer_norm_eps: 1e-5,
                hidden_act: "quick_gelu".into(),
            });
        };
        let raw: RawVision = serde_json::from_value(v.clone()).map_err(|e| VlmError::Config {
            file: file.to_path_buf(),
            msg: format!("vision config: {e}"),
        })?;
        let mt = raw
            .model_type
            .clone()
            .unwrap_or_else(|| "clip_vision_model".into());
        let family = match mt.as_str() {
            "clip_vision_model" | "clip" => VisionFamily::Clip,
            "siglip_vision_model" | "siglip" => VisionFamily::Siglip,
            other => {
                return Err(VlmError::Unsupported {
                    file: file.to_path_buf(),
                    what: format!(
                        "vision model_type {other:?} (supported: \"clip_vision_model\", \"siglip_vision_model\")"
                    ),
                });
            }
        };
        let clip = family == VisionFamily::Clip;
        Ok(Self {
            family,
            hidden_size: raw.hidden_size.unwrap_or(768),
            intermediate_size: raw.intermediate_size.unwrap_or(3072),
            num_hidden_layers: raw.num_hidden_layers.unwrap_or(12),
            num_attention_heads: raw.num_attention_heads.unwrap_or(12),
            image_size: raw.image_size.unwrap_or(224),
            patch_size: raw.patch_size.unwrap_or(if clip { 32 } else { 16 }),
            num_channels: raw.num_channels.unwrap_or(3),
            layer_norm_eps: raw.layer_norm_eps.unwrap_or(if clip { 1e-5 } else { 1e-6 }),
            hidden_act: raw.hidden_act.unwrap_or_else(|| {
                if clip {
                    "quick_gelu".into()
                } else {
                    "gelu_pytorch_tanh".into()
                }
            }),
        })
    }

    /// Number of patches along one side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens the tower outputs per image (patches, plus the class token for CLIP).
    pub fn num_positions(&self) -> usize {
        self.grid() * self.grid() + usize::from(self.family == VisionFamily::Clip)
    }
}

/// How the vision features are taken from the tower's hidden states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectStrategy {
    /// Drop the first token (the CLIP class token).
    Default,
    /// Keep every token.
    Full,
}

/// The projector between vision features and the language model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectorKind {
    /// LLaVA's `multi_modal_projector.linear_1` → act → `linear_2`.
    LlavaMlp,
    /// VILA `mlp_downsample`: 2×2 neighbourhoods merged (zero-padded when odd), LayerNorm,
    /// Linear, GELU, Linear. `fixed` is NVILA's row-major token order
    /// (`mlp_downsample_2x2_fix`, and `mlp_downsample` in NVILA checkpoints); otherwise
    /// VILA1.5's column-major order.
    VilaDownsample {
        /// NVILA token order.
        fixed: bool,
    },
    /// VILA `mlp2x_gelu`: Linear, GELU, Linear.
    VilaMlp2xGelu,
    /// VILA `linear`.
    VilaLinear,
}

impl ProjectorKind {
    /// Parses VILA's `mm_projector_type`.
    pub fn from_vila(name: &str, file: &Path) -> Result<Self, VlmError> {
        Ok(match name {
            "mlp_downsample" => Self::VilaDownsample { fixed: false },
            "mlp_downsample_2x2_fix" => Self::VilaDownsample { fixed: true },
            "mlp2x_gelu" => Self::VilaMlp2xGelu,
            "linear" => Self::VilaLinear,
            other => {
                return Err(VlmError::Unsupported {
                    file: file.to_path_buf(),
                    what: format!(
                        "mm_projector_type {other:?} (supported: mlp_downsample, mlp_downsample_2x2_fix, mlp2x_gelu, linear)"
                    ),
                });
            }
        })
    }
}

/// Configuration of a `LlavaForConditionalGeneration` checkpoint.
#[derive(Debug, Clone)]
pub struct LlavaConfig {
    /// Language model.
    pub text: TextConfig,
    /// Vision tower.
    pub vision: VisionConfig,
    /// Id of the `<image>` placeholder token.
    pub image_token_id: i64,
    /// Hidden-state indices taken from the tower (concatenated along features when several).
    pub vision_feature_layers: Vec<i64>,
    /// Token selection.
    pub select_strategy: SelectStrategy,
    /// Projector activation.
    pub projector_hidden_act: String,
    /// Whether projector linears have a bias.
    pub projector_bias: bool,
    /// Projector architecture.
    pub projector: ProjectorKind,
}

impl LlavaConfig {
    /// Reads `config.json` of a LLaVA checkpoint.
    pub fn from_file(file: &Path) -> Result<Self, VlmError> {
        let text = std::fs::read_to_string(file).map_err(|e| VlmError::Io {
            path: file.to_path_buf(),
            source: e,
        })?;
        let v: Value = serde_json::from_str(&text).map_err(|e| VlmError::Config {
            file: file.to_path_buf(),
            msg: e.to_string(),
        })?;
        Self::from_value(&v, file)
    }

    /// Parses the JSON of a LLaVA `config.json`.
    pub fn from_value(v: &Value, file: &Path) -> Result<Self, VlmError> {
        let model_type = v.get("model_type").and_then(Value::as_str).unwrap_or("");
        if model_type != "llava" {
            return Err(VlmError::Unsupported {
                file: file.to_path_buf(),
                what: format!("model_type {model_type:?} (supported: \"llava\")"),
            });
        }
        let text = match v.get("text_config") {
            Some(t) => TextConfig::from_value(t, file)?,
            None => TextConfig::from_value(&serde_json::json!({"model_type": "llama"}), file)?,
        };
        let vision = VisionConfig::from_value(v.get("vision_config"), file)?;
        let image_token_id = v
            .get("image_token_id")
            .or_else(|| v.get("image_token_index"))
            .and_then(Value::as_i64)
            .unwrap_or(32000);
        let vision_feature_layers = match v.get("vision_feature_layer") {
            None | Some(Value::Null) => vec![-2],
            Some(Value::Number(n)) => vec![n.as_i64().unwrap_or(-2)],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_i64).collect(),
            Some(other) => {
                return Err(VlmError::Config {
                    file: file.to_path_buf(),
                    msg: format!("vision_feature_layer must be an int or a list, got {other}"),
                });
            }
        };
        let select_strategy = match v
            .get("vision_feature_select_strategy")
            .and_then(Value::as_str)
            .unwrap_or("default")
        {
            "default" => SelectStrategy::Default,
            "full" => SelectStrategy::Full,
            other => {
                return Err(VlmError::Unsupported {
                    file: file.to_path_buf(),
                    what: format!(
                        "vision_feature_select_strategy {other:?} (supported: \"default\", \"full\")"
                    ),
                });
            }
        };
        Ok(Self {
            text,
            vision,
            image_token_id,
            vision_feature_layers,
            select_strategy,
            projector_hidden_act: v
                .get("projector_hidden_act")
                .and_then(Value::as_str)
                .unwrap_or("gelu")
                .to_string(),
            projector_bias: v
                .get("multimodal_projector_bias")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            projector: ProjectorKind::LlavaMlp,
        })
    }

    /// Image features the projector yields per image (what `<image>` expands to).
    pub fn image_feature_count(&self) -> usize {
        let n = self.vision.num_positions();
        let n = match self.select_strategy {
            SelectStrategy::Default => n - 1,
            SelectStrategy::Full => n,
        };
        match self.projector {
            ProjectorKind::VilaDownsample { .. } => {
                let side = (n as f64).sqrt() as usize;
                side.div_ceil(2) * side.div_ceil(2)
            }
            _ => n,
        }
    }
}
