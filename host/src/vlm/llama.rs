//! The Llama / Qwen2 decoder (one implementation; Qwen2 switches on q/k/v biases): RMSNorm,
//! rotary embeddings, grouped-query attention with a KV cache, SwiGLU MLP.

use tch::{Kind, Tensor};

use super::VlmError;
use super::config::TextConfig;
use super::nn::{Linear, RmsNorm};
use super::weights::Weights;

/// Keys and values of one layer: `[B, kv_heads, capacity, head_dim]` buffers of which the
/// first `len` positions are filled.
#[derive(Debug)]
struct LayerCache {
    k: Tensor,
    v: Tensor,
    len: i64,
}

impl LayerCache {
    /// Appends `[B, kv_heads, T, head_dim]` keys and values, writing into the preallocated
    /// buffers while they have room (no copy of what is cached), growing them otherwise.
    fn append(slot: &mut Option<Self>, k: Tensor, v: Tensor, capacity: i64) -> (Tensor, Tensor) {
        let t = k.size()[2];
        match slot {
            None => {
                let (kb, vb) = if capacity > t {
                    let mut shape = k.size();
                    shape[2] = capacity;
                    let kb = Tensor::zeros(&shape, (k.kind(), k.device()));
                    let vb = Tensor::zeros(&shape, (v.kind(), v.device()));
                    kb.narrow(2, 0, t).copy_(&k);
                    vb.narrow(2, 0, t).copy_(&v);
                    (kb, vb)
                } else {
                    (k, v)
                };
                *slot = Some(Self {
                    k: kb,
                    v: vb,
                    len: t,
                });
            }
            Some(c) => {
                if c.len + t <= c.k.size()[2] {
                    c.k.narrow(2, c.len, t).copy_(&k);
                    c.v.narrow(2, c.len, t).copy_(&v);
                } else {
                    c.k = Tensor::cat(&[c.k.narrow(2, 0, c.len), k], 2);
                    c.v = Tensor::cat(&[c.v.narrow(2, 0, c.len), v], 2);
                }
                c.len += t;
            }
        }
        let c = slot.as_ref().expect("slot filled above");
        (c.k.narrow(2, 0, c.len), c.v.narrow(2, 0, c.len))
    }
}

/// Keys and values of every layer for the sequences of one batch.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<LayerCache>>,
    capacity: i64,
}

impl KvCache {
    /// An empty cache that grows as needed.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cache with room for `positions` positions per sequence, so that decoding
    /// writes each new key/value in place instead of copying the cache every step.
    pub fn with_capacity(positions: usize) -> Self {
        Self {
            layers: Vec::new(),
            capacity: positions as i64,
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> i64 {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |c| c.len)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the batch rows in `rows` (an int64 index tensor).
    pub fn select_rows(&mut self, rows: &Tensor) {
        for c in self.layers.iter_mut().flatten() {
            c.k = c.k.index_select(0, rows);
            c.v = c.v.index_select(0, rows);
        }
    }
}

#[derive(Debug)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: i64,
    kv_heads: i64,
    head_dim: i64,
}

#[derive(Debug)]
struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

#[derive(Debug)]
struct DecoderLayer {
    input_norm: RmsNorm,
    attn: Attention,
    post_norm: RmsNorm,
    mlp: Mlp,
}

fn rotate_half(x: &Tensor) -> Tensor {
    let half = x.size()[3] / 2;
    let x1 = x.narrow(3, 0, half);
    let x2 = x.narrow(3, half, half);
    Tensor::cat(&[-x2, x1], 3)
}

impl Attention {
    fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<(&mut Option<LayerCache>, i64)>,
    ) -> Tensor {
        let (b, t, _) = x.size3().expect("decoder hidden states are [B, T, D]");
        let q = self
            .q
            .forward(x)
            .view([b, t, self.heads, self.head_dim])
            .transpose(1, 2);
        let k = self
            .k
            .forward(x)
            .view([b, t, self.kv_heads, self.head_dim])
            .transpose(1, 2);
        let v = self
            .v
            .forward(x)
            .view([b, t, self.kv_heads, self.head_dim])
            .transpose(1, 2);
        let q = &q * cos + rotate_half(&q) * sin;
        let k = &k * cos + rotate_half(&k) * sin;
        let (k, v) = match cache {
            Some((slot, capacity)) => LayerCache::append(slot, k, v, capacity),
            None => (k, v),
        };
        // Grouped-query attention without materialising repeated keys/values; without a
        // mask, plain causal attention (the kernel skips the masked blocks).
        let o = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            mask,
            0.0,
            mask.is_none(),
            None,
            self.heads != self.kv_heads,
        );
        self.o.forward(
            &o.transpose(1, 2)
                .reshape([b, t, self.heads * self.head_dim]),
        )
    }
}

/// A Llama or Qwen2 causal language model.
#[derive(Debug)]
pub struct Llama {
    embed_tokens: Tensor,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Linear,
    inv_freq: Tensor,
    /// The decoder's configuration.
    pub config: TextConfig,
}

impl Llama {
    /// Loads `{prefix}.model.*` and `{prefix}.lm_head.weight` (tied to the embeddings when
    /// that key is absent).
    pub fn load(w: &Weights, prefix: &str, cfg: &TextConfig) -> Result<Self, VlmError> {
        let d = cfg.hidden_size;
        let hd = cfg.head_dim;
        let (h, kvh) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        if kvh == 0 || h % kvh != 0 {
            return Err(VlmError::Request(format!(
                "num_attention_heads {h} is not a multiple of num_key_value_heads {kvh}"
            )));
        }
        let m = format!("{prefix}.model");
        let embed_tokens = w.get(
            &format!("{m}.embed_tokens.weight"),
            &[cfg.vocab_size as i64, d as i64],
        )?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = format!("{m}.layers.{i}");
            let lin = |n: &str, a: usize, b: usize, bias: bool| {
                Linear::load(w, &format!("{l}.{n}"), a, b, bias)
            };
            layers.push(DecoderLayer {
                input_norm: RmsNorm::load(w, &format!("{l}.input_layernorm"), d, cfg.rms_norm_eps)?,
                attn: Attention {
                    q: lin("self_attn.q_proj", d, h * hd, cfg.attention_bias)?,
                    k: lin("self_attn.k_proj", d, kvh * hd, cfg.attention_bias)?,
                    v: lin("self_attn.v_proj", d, kvh * hd, cfg.attention_bias)?,
                    o: lin("self_attn.o_proj", h * hd, d, cfg.o_proj_bias)?,
                    heads: h as i64,
                    kv_heads: kvh as i64,
                    head_dim: hd as i64,
                },
                post_norm: RmsNorm::load(
                    w,
                    &format!("{l}.post_attention_layernorm"),
                    d,
                    cfg.rms_norm_eps,
                )?,
                mlp: Mlp {
                    gate: lin("mlp.gate_proj", d, cfg.intermediate_size, cfg.mlp_bias)?,
                    up: lin("mlp.up_proj", d, cfg.intermediate_size, cfg.mlp_bias)?,
                    down: lin("mlp.down_proj", cfg.intermediate_size, d, cfg.mlp_bias)?,
                },
            });
        }
        let norm = RmsNorm::load(w, &format!("{m}.norm"), d, cfg.rms_norm_eps)?;
        let lm_head = match w.get_opt(
            &format!("{prefix}.lm_head.weight"),
            &[cfg.vocab_size as i64, d as i64],
        )? {
            Some(t) => Linear::from_weight(t),
            None => {
                tracing::debug!("no lm_head weight: tying the output head to embed_tokens");
                Linear::from_weight(embed_tokens.shallow_clone())
            }
        };
        let device = embed_tokens.device();
        let exps = Tensor::arange_start_step(0, hd as i64, 2, (Kind::Int64, device))
            .to_kind(Kind::Float)
            / hd as f64;
        let inv_freq = 1.0 / Tensor::pow_scalar(cfg.rope_theta, &exps);
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            lm_head,
            inv_freq,
            config: cfg.clone(),
        })
    }

    /// Token embeddings of `[B, T]` ids.
    pub fn embed(&self, ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.embed_tokens, ids, -1, false, false)
    }

    /// Runs the decoder on `[B, T, D]` embeddings at `[B, T]` positions, attending to the
    /// cached positions plus these; `attention_mask` is `[B, S]` (1 = real token, 0 =
    /// padding) over cached + new positions. Returns the final-normed hidden states.
    pub fn forward(
        &self,
        embeds: &Tensor,
        positions: &Tensor,
        attention_mask: &Tensor,
        cache: &mut KvCache,
    ) -> Tensor {
        let (_, t, _) = embeds.size3().expect("embeddings are [B, T, D]");
        let kind = embeds.kind();
        let device = embeds.device();
        let s = attention_mask.size()[1];
        // Additive mask [B, 1, T, S]: causal over absolute positions and no padding keys.
        let kpos = Tensor::arange(s, (Kind::Int64, device)).view([1, s]);
        let qpos = (Tensor::arange(t, (Kind::Int64, device)) + (s - t)).view([t, 1]);
        let causal = kpos.le_tensor(&qpos).view([1, 1, t, s]);
        let keep = causal.logical_and(&attention_mask.to_kind(Kind::Bool).view([-1, 1, 1, s]));
        let min = match kind {
            Kind::BFloat16 => -3.389_531_4e38,
            Kind::Half => -65504.0,
            _ => f64::from(f32::MIN),
        };
        let mask = keep.logical_not().to_kind(kind) * min;
        if cache.layers.len() != self.layers.len() {
            cache.layers = (0..self.layers.len()).map(|_| None).collect();
        }
        let capacity = cache.capacity;
        let slots = cache.layers.iter_mut().map(|slot| Some((slot, capacity)));
        self.run_layers(embeds, positions, Some(&mask), slots)
    }

    /// Runs the decoder on `[B, T, D]` embeddings of whole sequences (positions `0..T`,
    /// causal attention, no cache, no padding mask: right padding needs none, since no real
    /// token attends past itself). The training forward pass. Returns the final-normed
    /// hidden states.
    pub fn forward_causal(&self, embeds: &Tensor) -> Tensor {
        let (b, t, _) = embeds.size3().expect("embeddings are [B, T, D]");
        let positions = Tensor::arange(t, (Kind::Int64, embeds.device()))
            .unsqueeze(0)
            .expand([b, t], false);
        let slots = std::iter::repeat_with(|| None).take(self.layers.len());
        self.run_layers(embeds, &positions, None, slots)
    }

    fn run_layers<'a>(
        &self,
        embeds: &Tensor,
        positions: &Tensor,
        mask: Option<&Tensor>,
        slots: impl Iterator<Item = Option<(&'a mut Option<LayerCache>, i64)>>,
    ) -> Tensor {
        let kind = embeds.kind();
        // Rotary tables [B, 1, T, head_dim].
        let freqs = positions.to_kind(Kind::Float).unsqueeze(-1) * self.inv_freq.view([1, 1, -1]);
        let emb = Tensor::cat(&[&freqs, &freqs], -1).unsqueeze(1);
        let cos = emb.cos().to_kind(kind);
        let sin = emb.sin().to_kind(kind);
        let mut h = embeds.shallow_clone();
        for (layer, slot) in self.layers.iter().zip(slots) {
            let x = layer.input_norm.forward(&h);
            let a = layer.attn.forward(&x, &cos, &sin, mask, slot);
            h = &h + a;
            let x = layer.post_norm.forward(&h);
            let m = layer
                .mlp
                .down
                .forward(&(layer.mlp.gate.forward(&x).silu() * layer.mlp.up.forward(&x)));
            h = &h + m;
        }
        self.norm.forward(&h)
    }

    /// Vocabulary logits of hidden states.
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        self.lm_head.forward(hidden)
    }
}
