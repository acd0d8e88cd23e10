//! The few layers the models are built from, holding plain tensors loaded from [`Weights`].

use tch::Tensor;

use super::VlmError;
use super::weights::Weights;

/// A dense layer `y = x Wᵀ + b`.
#[derive(Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Loads `{prefix}.weight` (`[out, in]`) and, when `bias`, `{prefix}.bias`.
    pub fn load(
        w: &Weights,
        prefix: &str,
        inp: usize,
        out: usize,
        bias: bool,
    ) -> Result<Self, VlmError> {
        let weight = w.get(&format!("{prefix}.weight"), &[out as i64, inp as i64])?;
        let bias = if bias {
            Some(w.get(&format!("{prefix}.bias"), &[out as i64])?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// Wraps an existing matrix (tied embeddings).
    pub fn from_weight(weight: Tensor) -> Self {
        Self { weight, bias: None }
    }

    /// Applies the layer to the last dimension of `x`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, self.bias.as_ref())
    }
}

/// LayerNorm over the last dimension.
#[derive(Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
    dim: i64,
}

impl LayerNorm {
    /// Loads `{prefix}.weight` and `{prefix}.bias` of width `dim`.
    pub fn load(w: &Weights, prefix: &str, dim: usize, eps: f64) -> Result<Self, VlmError> {
        Ok(Self {
            weight: w.get(&format!("{prefix}.weight"), &[dim as i64])?,
            bias: w.get(&format!("{prefix}.bias"), &[dim as i64])?,
            eps,
            dim: dim as i64,
        })
    }

    /// Normalises the last dimension of `x`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm(
            [self.dim],
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
            true,
        )
    }
}

/// RMSNorm as in Llama: computed in fp32, scaled by the weight in the input dtype.
#[derive(Debug)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Loads `{prefix}.weight` of width `dim`.
    pub fn load(w: &Weights, prefix: &str, dim: usize, eps: f64) -> Result<Self, VlmError> {
        Ok(Self {
            weight: w.get(&format!("{prefix}.weight"), &[dim as i64])?,
            eps,
        })
    }

    /// Normalises the last dimension of `x`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let xf = x.to_kind(tch::Kind::Float);
        let var = xf.pow_tensor_scalar(2).mean_dim(-1, true, tch::Kind::Float);
        let normed = xf * (var + self.eps).rsqrt();
        &self.weight * normed.to_kind(kind)
    }
}

/// Activation functions named as in transformers' `ACT2FN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact (erf) GELU.
    Gelu,
    /// Tanh-approximated GELU (`gelu_pytorch_tanh`, `gelu_new`, `gelu_fast`).
    GeluTanh,
    /// `x * sigmoid(1.702 x)`.
    QuickGelu,
    /// `x * sigmoid(x)`.
    Silu,
    /// max(0, x).
    Relu,
}

impl Activation {
    /// Parses an activation name; `None` when unknown.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "gelu" => Self::Gelu,
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Self::GeluTanh,
            "quick_gelu" => Self::QuickGelu,
            "silu" | "swish" => Self::Silu,
            "relu" => Self::Relu,
            _ => return None,
        })
    }

    /// Applies the activation.
    pub fn forward(self, x: &Tensor) -> Tensor {
        match self {
            Self::Gelu => x.gelu("none"),
            Self::GeluTanh => x.gelu("tanh"),
            Self::QuickGelu => x * (x * 1.702).sigmoid(),
            Self::Silu => x.silu(),
            Self::Relu => x.relu(),
        }
    }
}
