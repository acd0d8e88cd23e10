//! Projectors from vision features to the language model's embedding space: LLaVA's
//! two-layer MLP (`multi_modal_projector.linear_1` → act → `linear_2`) and VILA's
//! `mlp_downsample` (both token orders), `mlp2x_gelu` and `linear` (`mm_projector.layers.*`).

use tch::Tensor;

use super::VlmError;
use super::config::ProjectorKind;
use super::nn::{Activation, LayerNorm, Linear};
use super::weights::Weights;

/// Any supported projector.
#[derive(Debug)]
pub enum Projector {
    /// Two linears around an activation (LLaVA, VILA `mlp2x_gelu`).
    Mlp(MlpProjector),
    /// VILA `mlp_downsample`.
    Downsample(DownsampleProjector),
    /// VILA `linear`.
    Linear(Linear),
}

impl Projector {
    /// Loads the projector `kind` mapping `inp` vision features to `out` LLM features.
    pub fn load(
        w: &Weights,
        kind: ProjectorKind,
        inp: usize,
        out: usize,
        act: &str,
        bias: bool,
    ) -> Result<Self, VlmError> {
        let p = "mm_projector.layers";
        Ok(match kind {
            ProjectorKind::LlavaMlp => Self::Mlp(MlpProjector::load(
                w,
                "multi_modal_projector",
                inp,
                out,
                act,
                bias,
            )?),
            ProjectorKind::VilaMlp2xGelu => Self::Mlp(MlpProjector {
                linear_1: Linear::load(w, &format!("{p}.0"), inp, out, true)?,
                act: Activation::Gelu,
                linear_2: Linear::load(w, &format!("{p}.2"), out, out, true)?,
            }),
            ProjectorKind::VilaLinear => Self::Linear(Linear::load(w, p, inp, out, true)?),
            ProjectorKind::VilaDownsample { fixed } => Self::Downsample(DownsampleProjector {
                norm: LayerNorm::load(w, &format!("{p}.1"), 4 * inp, 1e-5)?,
                linear_1: Linear::load(w, &format!("{p}.2"), 4 * inp, out, true)?,
                linear_2: Linear::load(w, &format!("{p}.4"), out, out, true)?,
                fixed,
            }),
        })
    }

    /// Projects `[B, N, inp]` features to `[B, N', out]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Self::Mlp(m) => m.forward(x),
            Self::Downsample(d) => d.forward(x),
            Self::Linear(l) => l.forward(x),
        }
    }
}

/// VILA's `mlp_downsample`: each 2×2 neighbourhood of the square token grid becomes one
/// token of 4× the width (odd grids zero-padded), then LayerNorm → Linear → GELU → Linear.
#[derive(Debug)]
pub struct DownsampleProjector {
    norm: LayerNorm,
    linear_1: Linear,
    linear_2: Linear,
    fixed: bool,
}

impl DownsampleProjector {
    /// Merges neighbourhoods as VILA's `DownSampleBlock.flat_square` does (column-major
    /// output order), or row-major with NVILA's fix.
    pub fn merge(&self, x: &Tensor) -> Tensor {
        let (b, n, c) = x.size3().expect("vision features are [B, N, C]");
        let s = (n as f64).sqrt() as i64;
        let mut g = x.reshape([b, s, s, c]);
        if s % 2 == 1 {
            let zr = Tensor::zeros([b, 1, s, c], (g.kind(), g.device()));
            g = Tensor::cat(&[g, zr], 1);
            let zc = Tensor::zeros([b, s + 1, 1, c], (g.kind(), g.device()));
            g = Tensor::cat(&[g, zc], 2);
        }
        let (w, h) = (g.size()[1], g.size()[2]);
        let mut m = g
            .reshape([b, w, h / 2, 2 * c])
            .permute([0, 2, 1, 3])
            .contiguous()
            .reshape([b, h / 2, w / 2, 4 * c]);
        if self.fixed {
            m = m.permute([0, 2, 1, 3]).contiguous();
        }
        m.reshape([b, -1, 4 * c])
    }

    /// Projects `[B, N, C]` to `[B, ceil(√N/2)², D]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let m = self.norm.forward(&self.merge(x));
        self.linear_2
            .forward(&self.linear_1.forward(&m).gelu("none"))
    }
}

/// LLaVA's `LlavaMultiModalProjector`.
#[derive(Debug)]
pub struct MlpProjector {
    linear_1: Linear,
    act: Activation,
    linear_2: Linear,
}

impl MlpProjector {
    /// Loads `{prefix}.linear_1` (`inp → out`) and `{prefix}.linear_2` (`out → out`).
    pub fn load(
        w: &Weights,
        prefix: &str,
        inp: usize,
        out: usize,
        act: &str,
        bias: bool,
    ) -> Result<Self, VlmError> {
        let act = Activation::from_name(act).ok_or_else(|| {
            VlmError::Request(format!("projector_hidden_act {act:?} is not supported"))
        })?;
        Ok(Self {
            linear_1: Linear::load(w, &format!("{prefix}.linear_1"), inp, out, bias)?,
            act,
            linear_2: Linear::load(w, &format!("{prefix}.linear_2"), out, out, bias)?,
        })
    }

    /// Projects `[B, N, inp]` features to `[B, N, out]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.linear_2
            .forward(&self.act.forward(&self.linear_1.forward(x)))
    }
}
