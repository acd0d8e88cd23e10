//! Projectors from vision features to the language model's embedding space: LLaVA's
//! two-layer MLP (`multi_modal_projector.linear_1` → act → `linear_2`).

use tch::Tensor;

use super::VlmError;
use super::nn::{Activation, Linear};
use super::weights::Weights;

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
