//! CLIP and SigLIP vision transformers (the towers LLaVA checkpoints use). Both share the
//! encoder; they differ in the embeddings (CLIP has a class token and a pre-layernorm).

use tch::Tensor;

use super::VlmError;
use super::config::{VisionConfig, VisionFamily};
use super::nn::{Activation, LayerNorm, Linear};
use super::weights::Weights;

#[derive(Debug)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: i64,
}

impl Attention {
    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, n, c) = x.size3().expect("vision hidden states are [B, N, C]");
        let hd = c / self.heads;
        let split = |t: Tensor| t.view([b, n, self.heads, hd]).transpose(1, 2);
        let q = split(self.q.forward(x));
        let k = split(self.k.forward(x));
        let v = split(self.v.forward(x));
        let o = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            None::<Tensor>,
            0.0,
            false,
            None,
            false,
        );
        self.out.forward(&o.transpose(1, 2).reshape([b, n, c]))
    }
}

#[derive(Debug)]
struct EncoderLayer {
    ln1: LayerNorm,
    attn: Attention,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl EncoderLayer {
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = x + self.attn.forward(&self.ln1.forward(x));
        let m = self
            .fc2
            .forward(&self.act.forward(&self.fc1.forward(&self.ln2.forward(&h))));
        h + m
    }
}

/// A CLIP or SigLIP vision tower; loaded from keys under `{prefix}.` (`vision_model.` stripped).
#[derive(Debug)]
pub struct VisionTower {
    family: VisionFamily,
    patch_weight: Tensor,
    patch_bias: Option<Tensor>,
    class_embedding: Option<Tensor>,
    position_embedding: Tensor,
    pre_layernorm: Option<LayerNorm>,
    layers: Vec<EncoderLayer>,
    patch: i64,
    /// The tower's configuration.
    pub config: VisionConfig,
}

impl VisionTower {
    /// Loads the tower's weights; `prefix` is e.g. `vision_tower`.
    pub fn load(w: &Weights, prefix: &str, cfg: &VisionConfig) -> Result<Self, VlmError> {
        let c = cfg.hidden_size;
        let p = cfg.patch_size as i64;
        let clip = cfg.family == VisionFamily::Clip;
        let act = Activation::from_name(&cfg.hidden_act).ok_or_else(|| {
            VlmError::Request(format!(
                "vision hidden_act {:?} is not supported",
                cfg.hidden_act
            ))
        })?;
        let e = format!("{prefix}.embeddings");
        let patch_weight = w.get(
            &format!("{e}.patch_embedding.weight"),
            &[c as i64, cfg.num_channels as i64, p, p],
        )?;
        let patch_bias = if clip {
            None
        } else {
            Some(w.get(&format!("{e}.patch_embedding.bias"), &[c as i64])?)
        };
        let class_embedding = if clip {
            Some(w.get(&format!("{e}.class_embedding"), &[c as i64])?)
        } else {
            None
        };
        let position_embedding = w.get(
            &format!("{e}.position_embedding.weight"),
            &[cfg.num_positions() as i64, c as i64],
        )?;
        let pre_layernorm = if clip {
            Some(LayerNorm::load(
                w,
                &format!("{prefix}.pre_layrnorm"),
                c,
                cfg.layer_norm_eps,
            )?)
        } else {
            None
        };
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = format!("{prefix}.encoder.layers.{i}");
            let lin =
                |n: &str, i_: usize, o: usize| Linear::load(w, &format!("{l}.{n}"), i_, o, true);
            layers.push(EncoderLayer {
                ln1: LayerNorm::load(w, &format!("{l}.layer_norm1"), c, cfg.layer_norm_eps)?,
                attn: Attention {
                    q: lin("self_attn.q_proj", c, c)?,
                    k: lin("self_attn.k_proj", c, c)?,
                    v: lin("self_attn.v_proj", c, c)?,
                    out: lin("self_attn.out_proj", c, c)?,
                    heads: cfg.num_attention_heads as i64,
                },
                ln2: LayerNorm::load(w, &format!("{l}.layer_norm2"), c, cfg.layer_norm_eps)?,
                fc1: lin("mlp.fc1", c, cfg.intermediate_size)?,
                fc2: lin("mlp.fc2", cfg.intermediate_size, c)?,
                act,
            });
        }
        Ok(Self {
            family: cfg.family,
            patch_weight,
            patch_bias,
            class_embedding,
            position_embedding,
            pre_layernorm,
            layers,
            patch: p,
            config: cfg.clone(),
        })
    }

    /// Resolves a transformers `hidden_states` index (negative counts from the end) to
    /// `0..=num_layers`, where 0 is the embedding output.
    pub fn resolve_layer(&self, idx: i64) -> Result<usize, VlmError> {
        let n = self.layers.len() as i64 + 1;
        let r = if idx < 0 { n + idx } else { idx };
        if !(0..n).contains(&r) {
            return Err(VlmError::Request(format!(
                "vision_feature_layer {idx} is out of range for a tower with {} layers",
                self.layers.len()
            )));
        }
        Ok(r as usize)
    }

    /// Runs the tower on `[B, C, H, W]` pixels and returns the hidden states at the requested
    /// indices (as resolved by [`VisionTower::resolve_layer`]), each `[B, N, hidden]`.
    pub fn hidden_states(&self, pixels: &Tensor, wanted: &[usize]) -> Vec<Tensor> {
        let b = pixels.size()[0];
        let x = pixels.conv2d(
            &self.patch_weight,
            self.patch_bias.as_ref(),
            [self.patch, self.patch],
            [0, 0],
            [1, 1],
            1,
        );
        let mut h = x.flatten(2, 3).transpose(1, 2);
        if let Some(cls) = &self.class_embedding {
            let c = cls.size()[0];
            let cls = cls.view([1, 1, c]).expand([b, 1, c], false);
            h = Tensor::cat(&[cls, h], 1);
        }
        h = &h + self.position_embedding.unsqueeze(0);
        if let Some(ln) = &self.pre_layernorm {
            h = ln.forward(&h);
        }
        let last = wanted.iter().copied().max().unwrap_or(0);
        let mut out: Vec<Option<Tensor>> = (0..wanted.len()).map(|_| None).collect();
        for step in 0..=last {
            if step > 0 {
                h = self.layers[step - 1].forward(&h);
            }
            for (slot, &wi) in wanted.iter().enumerate() {
                if wi == step {
                    out[slot] = Some(h.shallow_clone());
                }
            }
        }
        out.into_iter()
            .map(|t| t.expect("every wanted layer is visited"))
            .collect()
    }

    /// The tower family.
    pub fn family(&self) -> VisionFamily {
        self.family
    }
}
