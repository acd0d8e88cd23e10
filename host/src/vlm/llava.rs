//! A LLaVA checkpoint assembled: vision tower → projector → decoder, loaded from any of the
//! three key layouts transformers has written:
//! - Hub (transformers < 4.52): `language_model.model.*`, `language_model.lm_head.*`,
//!   `vision_tower.vision_model.*`, `multi_modal_projector.*`;
//! - transformers v5 `save_pretrained`: as Hub but `vision_tower.*` without `vision_model.`;
//! - in-memory state dict: `model.language_model.*`, `model.vision_tower.*`,
//!   `model.multi_modal_projector.*`, `lm_head.*`.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use super::VlmError;
use super::config::{LlavaConfig, SelectStrategy};
use super::llama::Llama;
use super::projector::Projector;
use super::vision::VisionTower;
use super::weights::{Weights, weight_files};

/// Maps a key of any supported layout to the canonical (Hub, `vision_model.` stripped) one.
pub fn canonical_key(key: &str) -> String {
    let key = key
        .strip_prefix("model.")
        .filter(|r| {
            r.starts_with("language_model.")
                || r.starts_with("vision_tower.")
                || r.starts_with("multi_modal_projector.")
        })
        .unwrap_or(key);
    if let Some(r) = key.strip_prefix("lm_head.") {
        return format!("language_model.lm_head.{r}");
    }
    if let Some(r) = key.strip_prefix("language_model.") {
        if r.starts_with("model.") || r.starts_with("lm_head.") {
            return key.to_string();
        }
        return format!("language_model.model.{r}");
    }
    if let Some(r) = key.strip_prefix("vision_tower.") {
        return format!(
            "vision_tower.{}",
            r.strip_prefix("vision_model.").unwrap_or(r)
        );
    }
    key.to_string()
}

/// A loaded LLaVA model.
#[derive(Debug)]
pub struct LlavaModel {
    /// Vision tower.
    pub vision: VisionTower,
    /// Projector.
    pub projector: Projector,
    /// Language model.
    pub llm: Llama,
    /// Parsed `config.json`.
    pub config: LlavaConfig,
    feature_layers: Vec<usize>,
    /// Device the weights live on.
    pub device: Device,
    /// Floating dtype of the weights.
    pub kind: Kind,
    /// The checkpoint folder.
    pub dir: PathBuf,
}

impl LlavaModel {
    /// Loads a `LlavaForConditionalGeneration` folder, or a VILA1.5 native folder (see
    /// [`super::vila`]), onto `device` in `kind`.
    pub fn load(dir: &Path, device: Device, kind: Kind) -> Result<Self, VlmError> {
        if super::vila::is_vila_dir(dir) {
            let config = super::vila::load_config(dir)?;
            let w = super::vila::load_weights(dir, kind, device)?;
            return Self::from_weights(dir, config, &w, device, kind);
        }
        let config = LlavaConfig::from_file(&dir.join("config.json"))?;
        let files = weight_files(dir)?;
        let w = Weights::load(dir, files, kind, device, canonical_key)?;
        Self::from_weights(dir, config, &w, device, kind)
    }

    /// Builds a model of the folder's `config.json` with seeded random weights (benchmarks
    /// of sizes that are not worth shipping).
    pub fn random(dir: &Path, device: Device, kind: Kind, seed: i64) -> Result<Self, VlmError> {
        let config = if super::vila::is_vila_dir(dir) {
            super::vila::load_config(dir)?
        } else {
            LlavaConfig::from_file(&dir.join("config.json"))?
        };
        let w = Weights::random(dir, seed, kind, device);
        Self::from_weights(dir, config, &w, device, kind)
    }

    /// Builds the model from already loaded weights.
    pub fn from_weights(
        dir: &Path,
        config: LlavaConfig,
        w: &Weights,
        device: Device,
        kind: Kind,
    ) -> Result<Self, VlmError> {
        let vision = VisionTower::load(w, "vision_tower", &config.vision)?;
        let feature_layers = config
            .vision_feature_layers
            .iter()
            .map(|&i| vision.resolve_layer(i))
            .collect::<Result<Vec<_>, _>>()?;
        let proj_in = config.vision.hidden_size * feature_layers.len();
        let projector = Projector::load(
            w,
            config.projector,
            proj_in,
            config.text.hidden_size,
            &config.projector_hidden_act,
            config.projector_bias,
        )?;
        let llm = Llama::load(w, "language_model", &config.text)?;
        Ok(Self {
            vision,
            projector,
            llm,
            config,
            feature_layers,
            device,
            kind,
            dir: dir.to_path_buf(),
        })
    }

    /// Projected image features `[B, N, D]` of `[B, C, H, W]` pixel values.
    pub fn image_features(&self, pixels: &Tensor) -> Tensor {
        self.projector.forward(&self.vision_features(pixels))
    }

    /// Width of [`LlavaModel::vision_features`]: the tower's width per selected layer.
    pub fn vision_feature_dim(&self) -> i64 {
        (self.config.vision.hidden_size * self.feature_layers.len()) as i64
    }

    /// The vision tower's features `[B, N, D_vision]` that the projector reads: the
    /// configured layer(s), minus the class token under the default select strategy.
    pub fn vision_features(&self, pixels: &Tensor) -> Tensor {
        let pixels = pixels.to_device(self.device).to_kind(self.kind);
        let hs = self.vision.hidden_states(&pixels, &self.feature_layers);
        let hs: Vec<Tensor> = hs
            .into_iter()
            .map(|h| match self.config.select_strategy {
                SelectStrategy::Default => h.narrow(1, 1, h.size()[1] - 1),
                SelectStrategy::Full => h,
            })
            .collect();
        if hs.len() == 1 {
            hs.into_iter().next().expect("one hidden state")
        } else {
            Tensor::cat(&hs, -1)
        }
    }

    /// Token embeddings of `[B, T]` ids with every image-token position replaced, in order,
    /// by the rows of `features` (`[n_images, N, D]`).
    pub fn embed_with_images(
        &self,
        ids: &Tensor,
        features: Option<&Tensor>,
    ) -> Result<Tensor, VlmError> {
        let img = ids.eq(self.config.image_token_id);
        let n_tokens = img.sum(Kind::Int64).int64_value(&[]);
        let clean = ids.where_scalarother(&img.logical_not(), 0);
        let emb = self.llm.embed(&clean);
        let n_feats = features.map_or(0, |f| f.size()[0] * f.size()[1]);
        if n_tokens != n_feats {
            return Err(VlmError::Request(format!(
                "the prompt has {n_tokens} image tokens but the images give {n_feats} features"
            )));
        }
        Ok(match features {
            Some(f) if n_feats > 0 => {
                let mask = img.unsqueeze(-1).expand_as(&emb);
                emb.masked_scatter(&mask, &f.to_kind(emb.kind()))
            }
            _ => emb,
        })
    }

    /// Full-sequence logits `[B, T, V]` for `[B, T]` ids (right-aligned, no padding) with
    /// images; the plain forward pass parity tests compare against transformers.
    pub fn forward_logits(
        &self,
        ids: &Tensor,
        pixels: Option<&Tensor>,
    ) -> Result<Tensor, VlmError> {
        Ok(self.llm.logits(&self.forward_hidden(ids, pixels)?))
    }

    /// Final-normed hidden states `[B, T, D]` of whole sequences (causal, no cache), before
    /// the output head: the trainer applies the head only where a label is.
    pub fn forward_hidden(
        &self,
        ids: &Tensor,
        pixels: Option<&Tensor>,
    ) -> Result<Tensor, VlmError> {
        let feats = pixels.map(|p| self.image_features(p));
        let emb = self.embed_with_images(&ids.to_device(self.device), feats.as_ref())?;
        Ok(self.llm.forward_causal(&emb))
    }
}
