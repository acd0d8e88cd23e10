//! The VLM engine as a judge (`vila2:plugin/judge`), imported by the `caption-filter` world
//! only: a prompt template or post-processor that calls it will not load.

pub use crate::bindings::caption_filter::vila2::plugin::judge::Judgement;

/// Log-likelihood of `text` as the model's answer to `prompt` about the image of sample
/// `sample_key`. Errors when the host has no model loaded or does not know the sample, and
/// always outside a component (native builds).
pub fn score(sample_key: &str, prompt: &str, text: &str) -> Result<Judgement, String> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::caption_filter::vila2::plugin::judge::score(sample_key, prompt, text)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (sample_key, prompt, text);
        Err("the judge is only available inside a vila2 host (wasm32 component)".into())
    }
}
