//! Checkpoints in the HF LLaVA layout: `model.safetensors` with transformers v5's keys
//! (`model.language_model.*`, `model.vision_tower.*`, `model.multi_modal_projector.*`,
//! `lm_head.*`), plus the init folder's config, tokenizer and processor files.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, View};
use tch::{Kind, Tensor};

use super::TrainError;
use super::params::Param;

/// Files copied from the init folder when present.
pub const SIDE_FILES: [&str; 13] = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "preprocessor_config.json",
    "processor_config.json",
    "chat_template.json",
    "chat_template.jinja",
];

/// The transformers v5 `state_dict` key of a canonical key.
pub fn hf_key(canonical: &str) -> String {
    if let Some(r) = canonical.strip_prefix("language_model.lm_head.") {
        return format!("lm_head.{r}");
    }
    if let Some(r) = canonical.strip_prefix("language_model.model.") {
        return format!("model.language_model.{r}");
    }
    format!("model.{canonical}")
}

struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn raw(t: &Tensor, key: &str) -> Result<Raw, TrainError> {
    let t = t.detach().to_device(tch::Device::Cpu).contiguous();
    let shape = t.size().iter().map(|&d| d as usize).collect();
    let (dtype, data) = match t.kind() {
        Kind::Int64 => {
            let v = Vec::<i64>::try_from(t.flatten(0, -1))?;
            (Dtype::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect())
        }
        Kind::Float | Kind::Half | Kind::BFloat16 | Kind::Double => {
            let v = Vec::<f32>::try_from(t.to_kind(Kind::Float).flatten(0, -1))?;
            (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect())
        }
        other => {
            return Err(TrainError::Config(format!(
                "cannot save tensor {key} of dtype {other:?}"
            )));
        }
    };
    Ok(Raw { dtype, shape, data })
}

/// Writes `params` (fp32) and the init folder's side files to `out`. The weights go to a
/// temporary file renamed into place, so an interrupted save leaves no torn checkpoint.
pub fn save(params: &[Param], init: &Path, out: &Path) -> Result<(), TrainError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| TrainError::Io { path, source: e }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let raws = params
        .iter()
        .map(|p| Ok((hf_key(&p.key), raw(&p.tensor, &p.key)?)))
        .collect::<Result<Vec<_>, TrainError>>()?;
    let views: Vec<(String, &Raw)> = raws.iter().map(|(k, r)| (k.clone(), r)).collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let tmp = out.join("model.safetensors.tmp");
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| TrainError::Save {
        file: tmp.clone(),
        msg: e.to_string(),
    })?;
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    let dst = out.join("model.safetensors");
    std::fs::rename(&tmp, &dst).map_err(io(&dst))?;
    for name in SIDE_FILES {
        let src = init.join(name);
        if src.exists() && init != out {
            std::fs::copy(&src, out.join(name)).map_err(io(&src))?;
        }
    }
    tracing::info!(out = %out.display(), tensors = params.len(), "saved checkpoint");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::hf_key;
    use crate::vlm::llava::canonical_key;

    #[test]
    fn hf_keys_map_back_to_canonical() {
        for k in [
            "language_model.model.layers.0.mlp.up_proj.weight",
            "language_model.lm_head.weight",
            "vision_tower.embeddings.class_embedding",
            "multi_modal_projector.linear_1.bias",
        ] {
            assert_eq!(canonical_key(&hf_key(k)), k);
        }
    }
}
