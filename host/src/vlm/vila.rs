//! VILA1.5's native checkpoint layout: a root `config.json` (`mm_vision_select_layer`,
//! `mm_vision_select_feature`, ...) beside `llm/` (an HF causal LM with its tokenizer),
//! `vision_tower/` (an HF vision model with `preprocessor_config.json`) and `mm_projector/`
//! (`mm_projector_type` and `layers.*` weights). Images enter the prompt as VILA's
//! `tokenizer_image_token` does: the text is split at `<image>`, each chunk tokenized alone.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::{Device, Kind};

use super::VlmError;
use super::config::{LlavaConfig, ProjectorKind, SelectStrategy, TextConfig, VisionConfig};
use super::weights::{Weights, weight_files};

/// The id VILA gives image placeholders (`IMAGE_TOKEN_INDEX`); never a vocabulary id.
pub const IMAGE_TOKEN_INDEX: i64 = -200;

/// Whether `dir` holds a VILA1.5 native checkpoint.
pub fn is_vila_dir(dir: &Path) -> bool {
    dir.join("llm").join("config.json").exists()
        && dir.join("vision_tower").is_dir()
        && dir.join("mm_projector").is_dir()
}

/// The folder holding the tokenizer and the chat template.
pub fn llm_dir(dir: &Path) -> PathBuf {
    dir.join("llm")
}

/// The folder holding `preprocessor_config.json`.
pub fn vision_dir(dir: &Path) -> PathBuf {
    dir.join("vision_tower")
}

fn read_json(path: &Path) -> Result<Value, VlmError> {
    let text = std::fs::read_to_string(path).map_err(|e| VlmError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| VlmError::Config {
        file: path.to_path_buf(),
        msg: e.to_string(),
    })
}

/// Reads the root and sub-folder configs into the engine's model config.
pub fn load_config(dir: &Path) -> Result<LlavaConfig, VlmError> {
    let root_file = dir.join("config.json");
    let root = read_json(&root_file)?;
    let llm_file = dir.join("llm/config.json");
    let text = TextConfig::from_value(&read_json(&llm_file)?, &llm_file)?;
    let vt_file = dir.join("vision_tower/config.json");
    let vt = read_json(&vt_file)?;
    // A SiglipConfig / CLIPConfig may nest the vision part.
    let vt = vt.get("vision_config").cloned().unwrap_or(vt);
    let vision = VisionConfig::from_value(Some(&vt), &vt_file)?;
    let pj_file = dir.join("mm_projector/config.json");
    let pj = if pj_file.exists() {
        read_json(&pj_file)?
    } else {
        root.get("mm_projector_cfg").cloned().unwrap_or(Value::Null)
    };
    let ptype = pj
        .get("mm_projector_type")
        .and_then(Value::as_str)
        .or_else(|| root.get("mm_projector").and_then(Value::as_str))
        .ok_or_else(|| VlmError::Config {
            file: pj_file.clone(),
            msg: "no \"mm_projector_type\"".into(),
        })?;
    let mut projector = ProjectorKind::from_vila(ptype, &pj_file)?;
    // NVILA's code (root model_type "vila") merges `mlp_downsample` tokens row-major, like
    // `mlp_downsample_2x2_fix`; VILA1.5's ("llava_llama") merges them column-major.
    if root.get("model_type").and_then(Value::as_str) == Some("vila")
        && projector == (ProjectorKind::VilaDownsample { fixed: false })
    {
        projector = ProjectorKind::VilaDownsample { fixed: true };
    }
    let layer = root
        .get("mm_vision_select_layer")
        .and_then(Value::as_i64)
        .unwrap_or(-2);
    let select_strategy = match root
        .get("mm_vision_select_feature")
        .and_then(Value::as_str)
        .unwrap_or("patch")
    {
        "patch" => SelectStrategy::Default,
        "cls_patch" => SelectStrategy::Full,
        other => {
            return Err(VlmError::Unsupported {
                file: root_file,
                what: format!("mm_vision_select_feature {other:?} (supported: patch, cls_patch)"),
            });
        }
    };
    Ok(LlavaConfig {
        text,
        vision,
        image_token_id: IMAGE_TOKEN_INDEX,
        vision_feature_layers: vec![layer],
        select_strategy,
        projector_hidden_act: "gelu".into(),
        projector_bias: true,
        projector,
    })
}

/// Loads the three folders' safetensors under the engine's canonical keys.
pub fn load_weights(dir: &Path, kind: Kind, device: Device) -> Result<Weights, VlmError> {
    let llm = dir.join("llm");
    let mut w = Weights::load(&llm, weight_files(&llm)?, kind, device, |k| {
        format!("language_model.{k}")
    })?;
    let vt = dir.join("vision_tower");
    w.merge(Weights::load(&vt, weight_files(&vt)?, kind, device, |k| {
        format!(
            "vision_tower.{}",
            k.strip_prefix("vision_model.").unwrap_or(k)
        )
    })?);
    let pj = dir.join("mm_projector");
    w.merge(Weights::load(&pj, weight_files(&pj)?, kind, device, |k| {
        format!("mm_projector.{k}")
    })?);
    Ok(w)
}
