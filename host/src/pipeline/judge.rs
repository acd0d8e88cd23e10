//! The engine as the plugins' judge: a caption filter asks for the log-likelihood of a text
//! about one of the samples of the batch being filtered.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use image::RgbImage;

use super::fuse::strip_image_token;
use crate::plugin::{Judge, Judgement};
use crate::vlm::engine::{EngineHandle, PromptInput};

/// The engine serving the current batch and the batch's images by key.
type Serving = (EngineHandle, HashMap<String, Arc<RgbImage>>);

/// Scores texts with the current model on the images of the current batch.
#[derive(Default)]
pub struct EngineJudge {
    inner: RwLock<Option<Serving>>,
}

impl EngineJudge {
    /// A judge with no model yet (calls fail with a message saying so).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Makes `engine` judge the samples `images` (key → image) until the next call.
    pub fn serve(&self, engine: EngineHandle, images: HashMap<String, Arc<RgbImage>>) {
        *self.inner.write().expect("judge lock") = Some((engine, images));
    }

    /// Stops judging (the model is being replaced).
    pub fn clear(&self) {
        *self.inner.write().expect("judge lock") = None;
    }
}

impl Judge for EngineJudge {
    fn score(&self, sample_key: &str, prompt: &str, text: &str) -> Result<Judgement, String> {
        let guard = self.inner.read().expect("judge lock");
        let Some((engine, images)) = guard.as_ref() else {
            return Err(format!(
                "judge unavailable for sample `{sample_key}`: no model is serving this batch"
            ));
        };
        let image = images.get(sample_key).ok_or_else(|| {
            format!("judge: sample `{sample_key}` is not in the batch being filtered")
        })?;
        let input = PromptInput {
            text: strip_image_token(prompt).to_string(),
            images: vec![(**image).clone()],
            chat: true,
        };
        let s = engine
            .score(input, text.to_string())
            .map_err(|e| format!("judge: {e}"))?;
        Ok(Judgement {
            mean_logprob: s.mean_logprob as f32,
            token_logprobs: s.token_logprobs.iter().map(|&x| x as f32).collect(),
        })
    }
}
