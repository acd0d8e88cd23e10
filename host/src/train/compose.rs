//! VILA's initialisation: a pretrained causal LM (Llama or Qwen2) and a pretrained vision
//! tower (CLIP or SigLIP) joined by a new, randomly initialised `mlp2x_gelu` projector, saved
//! as an HF `LlavaForConditionalGeneration` folder that the engine, the trainer and
//! transformers load.
//!
//! The LLM and vision weights are copied unchanged (renamed to the LLaVA keys). An `<image>`
//! token is added to the tokenizer when missing; the embedding and output rows then grow by
//! one, the new row set to the mean of the existing rows. A tied output head (no `lm_head`
//! key) is written out as an explicit copy of the grown embedding, untied.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};
use tch::{Device, Kind, Tensor};
use tokenizers::{AddedToken, Tokenizer};

use super::TrainError;
use super::checkpoint;
use super::init::VICUNA_TEMPLATE;
use super::params::{Group, Param};
use crate::vlm::VlmError;
use crate::vlm::config::{TextConfig, VisionConfig, VisionFamily};
use crate::vlm::weights::{Weights, weight_files};

/// The image placeholder token.
pub const IMAGE_TOKEN: &str = "<image>";

/// What [`compose`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ComposeSummary {
    /// Id of the `<image>` token.
    pub image_token_index: usize,
    /// Whether `<image>` was added to the tokenizer (and the embedding grown).
    pub added_image_token: bool,
    /// Rows of the embedding and output head after composing.
    pub vocab_size: usize,
    /// Image tokens per image.
    pub image_tokens: usize,
    /// Parameters of the composed model.
    pub parameters: usize,
}

fn config_err(file: &Path, msg: impl Into<String>) -> TrainError {
    TrainError::Model(VlmError::Config {
        file: file.to_path_buf(),
        msg: msg.into(),
    })
}

fn read_json(file: &Path) -> Result<Value, TrainError> {
    let text = std::fs::read_to_string(file).map_err(|e| TrainError::Io {
        path: file.to_path_buf(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| config_err(file, e.to_string()))
}

fn write_json(path: &Path, v: &Value) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(v).expect("JSON serialises");
    std::fs::write(path, text).map_err(|e| TrainError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

/// The LLM's `config.json`, checked to be a Llama or Qwen2 causal LM.
fn llm_config(dir: &Path) -> Result<(Value, TextConfig, PathBuf), TrainError> {
    let file = dir.join("config.json");
    let v = read_json(&file)?;
    let mt = v.get("model_type").and_then(Value::as_str).unwrap_or("");
    if v.get("vision_config").is_some() || !matches!(mt, "llama" | "qwen2") {
        return Err(config_err(
            &file,
            format!(
                "not a causal LM config: model_type {mt:?} (expected \"llama\" or \"qwen2\", \
                 i.e. LlamaForCausalLM or Qwen2ForCausalLM)"
            ),
        ));
    }
    let cfg = TextConfig::from_value(&v, &file)?;
    Ok((v, cfg, file))
}

/// The vision tower's config object (the `vision_config` of a CLIP/SigLIP model, or the whole
/// file for a vision-only model), with `model_type` set to the vision model's.
fn vision_config(dir: &Path) -> Result<(Value, VisionConfig, PathBuf), TrainError> {
    let file = dir.join("config.json");
    let v = read_json(&file)?;
    let mt = v.get("model_type").and_then(Value::as_str).unwrap_or("");
    let (mut obj, vision_mt) = match mt {
        "clip_vision_model" | "siglip_vision_model" => (v.clone(), mt.to_string()),
        "clip" | "siglip" => {
            let obj = v
                .get("vision_config")
                .cloned()
                .ok_or_else(|| config_err(&file, format!("{mt} config has no vision_config")))?;
            (obj, format!("{mt}_vision_model"))
        }
        other => {
            return Err(config_err(
                &file,
                format!(
                    "not a vision tower config: model_type {other:?} (expected \
                     \"clip_vision_model\", \"siglip_vision_model\", \"clip\" or \"siglip\")"
                ),
            ));
        }
    };
    obj["model_type"] = json!(vision_mt);
    let cfg = VisionConfig::from_value(Some(&obj), &file)?;
    Ok((obj, cfg, file))
}

fn llm_key(k: &str) -> Option<String> {
    if k.contains("rotary_emb.") {
        return None;
    }
    if let Some(r) = k.strip_prefix("lm_head.") {
        return Some(format!("language_model.lm_head.{r}"));
    }
    k.strip_prefix("model.")
        .map(|r| format!("language_model.model.{r}"))
}

/// A vision tower key: `vision_model.*` (transformers v4, and CLIP/SigLIP models' vision
/// part) or the bare tower keys transformers v5 saves for a vision-only model.
fn vision_key(k: &str) -> Option<String> {
    const TOWER: [&str; 5] = [
        "embeddings.",
        "encoder.",
        "pre_layrnorm.",
        "post_layernorm.",
        "head.",
    ];
    let r = k.strip_prefix("vision_model.").unwrap_or(k);
    TOWER
        .iter()
        .any(|p| r.starts_with(p))
        .then(|| format!("vision_tower.{r}"))
}

/// Loads a folder's weights with every key passed through `rename` (dropped when `None`).
fn load(
    dir: &Path,
    rename: fn(&str) -> Option<String>,
) -> Result<Vec<(String, Tensor)>, TrainError> {
    let files = weight_files(dir)?;
    let w = Weights::load(dir, files, Kind::Float, Device::Cpu, |k| {
        rename(k).unwrap_or_else(|| format!("\u{0}drop.{k}"))
    })?;
    let mut out: Vec<(String, Tensor)> = w
        .named_tensors()
        .filter(|(k, _)| !k.starts_with('\u{0}'))
        .map(|(k, t)| (k.to_string(), t.shallow_clone()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn grow(t: &Tensor, rows: i64) -> Tensor {
    let have = t.size()[0];
    if rows <= have {
        return t.shallow_clone();
    }
    let mean = t.mean_dim(Some(&[0i64][..]), true, Kind::Float);
    Tensor::cat(
        &[
            t.shallow_clone(),
            mean.expand([rows - have, t.size()[1]], false),
        ],
        0,
    )
}

fn param(key: String, tensor: Tensor) -> Param {
    Param {
        group: Group::of(&key),
        decay: tensor.dim() >= 2 && !key.contains("norm"),
        key,
        tensor,
        trainable: false,
    }
}

/// Writes to `out` a LLaVA folder made of the causal LM in `llm` (config.json, safetensors,
/// tokenizer.json and tokenizer_config.json), the vision tower in `vision` (a CLIP or SigLIP
/// vision model, or a CLIP/SigLIP model whose vision part is used) and a new `mlp2x_gelu`
/// projector drawn from `seed`.
pub fn compose(
    llm: &Path,
    vision: &Path,
    out: &Path,
    seed: i64,
) -> Result<ComposeSummary, TrainError> {
    let (mut text_json, text, text_file) = llm_config(llm)?;
    let (vision_json, vis, vision_file) = vision_config(vision)?;
    if vis.num_hidden_layers < 2 {
        return Err(config_err(
            &vision_file,
            "num_hidden_layers must be at least 2 (features come from the second to last layer)",
        ));
    }
    if vis.patch_size == 0 || vis.image_size % vis.patch_size != 0 {
        return Err(config_err(
            &vision_file,
            "image_size must be a multiple of patch_size",
        ));
    }

    // Tokenizer: add `<image>` when missing.
    let tok_file = llm.join("tokenizer.json");
    if !tok_file.is_file() {
        return Err(TrainError::Io {
            path: tok_file,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the LLM folder has no tokenizer.json",
            ),
        });
    }
    let mut tok = Tokenizer::from_file(&tok_file).map_err(|e| TrainError::Tokenizer {
        file: tok_file.clone(),
        msg: e.to_string(),
    })?;
    let added_image_token = tok.token_to_id(IMAGE_TOKEN).is_none();
    if added_image_token {
        tok.add_special_tokens(&[AddedToken::from(IMAGE_TOKEN, true)]);
    }
    let image_id = tok
        .token_to_id(IMAGE_TOKEN)
        .expect("<image> was just added") as usize;

    // Weights.
    let mut llm_w = load(llm, llm_key)?;
    let vision_w = load(vision, vision_key)?;
    if !vision_w
        .iter()
        .any(|(k, _)| k.starts_with("vision_tower.encoder."))
    {
        return Err(config_err(
            &vision_file,
            format!(
                "no vision encoder tensors (encoder.* or vision_model.encoder.*) in the weights of {}: not a vision tower",
                vision.display()
            ),
        ));
    }
    let embed_key = "language_model.model.embed_tokens.weight";
    let head_key = "language_model.lm_head.weight";
    let embed = llm_w
        .iter()
        .find(|(k, _)| k == embed_key)
        .map(|(_, t)| t.shallow_clone())
        .ok_or_else(|| {
            TrainError::Model(VlmError::MissingWeight {
                key: "model.embed_tokens.weight".into(),
                dir: llm.to_path_buf(),
                files: "the LLM's safetensors".into(),
            })
        })?;
    let rows = (embed.size()[0]).max(image_id as i64 + 1);
    if !llm_w.iter().any(|(k, _)| k == head_key) {
        llm_w.push((head_key.to_string(), embed.shallow_clone()));
    }
    for (k, t) in llm_w.iter_mut() {
        if k == embed_key || k == head_key {
            *t = grow(t, rows);
        }
    }

    // Projector.
    let std = text_json
        .get("initializer_range")
        .and_then(Value::as_f64)
        .unwrap_or(0.02);
    let (h, c) = (text.hidden_size as i64, vis.hidden_size as i64);
    tch::manual_seed(seed);
    let opts = (Kind::Float, Device::Cpu);
    let mp = "multi_modal_projector";
    let mut params: Vec<Param> = llm_w
        .into_iter()
        .chain(vision_w)
        .map(|(k, t)| param(k, t))
        .collect();
    params.push(param(
        format!("{mp}.linear_1.weight"),
        Tensor::randn([h, c], opts) * std,
    ));
    params.push(param(
        format!("{mp}.linear_1.bias"),
        Tensor::zeros([h], opts),
    ));
    params.push(param(
        format!("{mp}.linear_2.weight"),
        Tensor::randn([h, h], opts) * std,
    ));
    params.push(param(
        format!("{mp}.linear_2.bias"),
        Tensor::zeros([h], opts),
    ));
    params.sort_by(|a, b| a.key.cmp(&b.key));

    // Config.
    let clip = vis.family == VisionFamily::Clip;
    let image_tokens = vis.grid() * vis.grid();
    text_json["vocab_size"] = json!(rows);
    text_json["tie_word_embeddings"] = json!(false);
    if let Some(o) = text_json.as_object_mut() {
        for k in ["architectures", "transformers_version", "auto_map"] {
            o.remove(k);
        }
    }
    let strategy = if clip { "default" } else { "full" };
    let config = json!({
        "architectures": ["LlavaForConditionalGeneration"],
        "dtype": "float32",
        "image_seq_length": image_tokens,
        "image_token_index": image_id,
        "model_type": "llava",
        "multimodal_projector_bias": true,
        "projector_hidden_act": "gelu",
        "tie_word_embeddings": false,
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": strategy,
        "text_config": text_json,
        "vision_config": vision_json,
    });

    std::fs::create_dir_all(out).map_err(|e| TrainError::Io {
        path: out.to_path_buf(),
        source: e,
    })?;
    write_json(&out.join("config.json"), &config)?;
    let gen_file = llm.join("generation_config.json");
    let generation = if gen_file.is_file() {
        read_json(&gen_file)?
    } else {
        json!({
            "bos_token_id": text.bos_token_id,
            "eos_token_id": text.eos_token_ids.first(),
            "pad_token_id": text.pad_token_id,
        })
    };
    write_json(&out.join("generation_config.json"), &generation)?;

    let out_tok = out.join("tokenizer.json");
    tok.save(&out_tok, true)
        .map_err(|e| TrainError::Tokenizer {
            file: out_tok.clone(),
            msg: e.to_string(),
        })?;
    let tc_file = llm.join("tokenizer_config.json");
    let mut tc = if tc_file.is_file() {
        read_json(&tc_file)?
    } else {
        json!({})
    };
    let template = tc
        .get("chat_template")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| std::fs::read_to_string(llm.join("chat_template.jinja")).ok())
        .unwrap_or_else(|| VICUNA_TEMPLATE.to_string());
    tc["image_token"] = json!(IMAGE_TOKEN);
    tc["chat_template"] = json!(template);
    tc["processor_class"] = json!("LlavaProcessor");
    if let Some(o) = tc.as_object_mut() {
        // The added token lives in tokenizer.json; a stale decoder table would contradict it.
        o.remove("added_tokens_decoder");
    }
    write_json(&out.join("tokenizer_config.json"), &tc)?;
    std::fs::write(out.join("chat_template.jinja"), &template).map_err(|e| TrainError::Io {
        path: out.join("chat_template.jinja"),
        source: e,
    })?;

    let improc = image_processor(vision, &vis)?;
    let mut pre = improc.clone();
    pre["processor_class"] = json!("LlavaProcessor");
    write_json(&out.join("preprocessor_config.json"), &pre)?;
    write_json(
        &out.join("processor_config.json"),
        &json!({
            "image_processor": improc,
            "image_token": IMAGE_TOKEN,
            "num_additional_image_tokens": usize::from(clip),
            "patch_size": vis.patch_size,
            "processor_class": "LlavaProcessor",
            "vision_feature_select_strategy": strategy,
        }),
    )?;

    checkpoint::save(&params, out, out)?;
    let summary = ComposeSummary {
        image_token_index: image_id,
        added_image_token,
        vocab_size: rows as usize,
        image_tokens,
        parameters: params.iter().map(|p| p.tensor.numel()).sum(),
    };
    tracing::info!(
        llm = %text_file.display(),
        vision = %vision_file.display(),
        out = %out.display(),
        ?summary,
        "composed a LLaVA model"
    );
    Ok(summary)
}

/// The vision folder's `preprocessor_config.json` when present, else the family's default
/// processor at the tower's resolution.
fn image_processor(vision: &Path, vis: &VisionConfig) -> Result<Value, TrainError> {
    let file = vision.join("preprocessor_config.json");
    if file.is_file() {
        let mut v = read_json(&file)?;
        if let Some(o) = v.as_object_mut() {
            o.remove("processor_class");
        }
        return Ok(v);
    }
    let s = vis.image_size;
    Ok(if vis.family == VisionFamily::Clip {
        super::init::clip_image_processor(s)
    } else {
        json!({
            "do_convert_rgb": true,
            "do_normalize": true,
            "do_rescale": true,
            "do_resize": true,
            "image_mean": [0.5, 0.5, 0.5],
            "image_processor_type": "SiglipImageProcessor",
            "image_std": [0.5, 0.5, 0.5],
            "resample": 2,
            "rescale_factor": 1.0 / 255.0,
            "size": {"height": s, "width": s},
        })
    })
}
