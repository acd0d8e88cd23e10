//! SDK for vila2 plugins: sandboxed WebAssembly components that decide which prompt recaptions
//! an image, which caption is kept and how a specialist's answer becomes caption text
//! (WIT package `vila2:plugin@0.1.0`, in `host/wit/plugin.wit`).
//!
//! A plugin is a type implementing [`Plugin`] (typed configuration and a description) plus one
//! of the world traits, exported with the matching macro:
//!
//! | world             | trait(s)                              | macro                          |
//! |-------------------|---------------------------------------|--------------------------------|
//! | `caption-filter`  | [`CaptionFilter`]                     | [`export_caption_filter!`]     |
//! | `prompt-template` | [`PromptTemplate`]                    | [`export_prompt_template!`]    |
//! | `post-processor`  | [`PostProcessor`]                     | [`export_post_processor!`]     |
//! | `specialist`      | [`PromptTemplate`] + [`PostProcessor`] | [`export_specialist!`]         |
//!
//! The host calls `configure(json)` (deserialized into [`Plugin::Config`]; an error names the bad
//! field) and then hands over batches; the macros loop over a batch and call the per-item
//! method unless the trait's `*_batch` method is overridden. A plugin that is never configured
//! is built from `Config::default()` on its first batch.
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component. The crate also compiles natively, so a
//! plugin's logic can be unit-tested with `cargo test` (also in a `cdylib` + `rlib` crate):
//! natively the export macros only check the trait bounds, [`log`] writes to stderr and
//! [`judge::score`] returns an error.
//!
//! # Example: a complete caption filter
//!
//! ```
//! use serde::Deserialize;
//! use vila2_guest::{CaptionFilter, Candidate, Plugin, Verdict};
//!
//! #[derive(Debug, Deserialize)]
//! #[serde(default, deny_unknown_fields)]
//! struct Config {
//!     min_words: usize,
//! }
//!
//! impl Default for Config {
//!     fn default() -> Self {
//!         Config { min_words: 8 }
//!     }
//! }
//!
//! struct MinWords(Config);
//!
//! impl Plugin for MinWords {
//!     type Config = Config;
//!     fn about() -> vila2_guest::About {
//!         vila2_guest::about!(r#"{"type":"object","properties":{"min_words":{"type":"integer","minimum":0}}}"#)
//!     }
//!     fn new(config: Config) -> Result<Self, String> {
//!         Ok(MinWords(config))
//!     }
//! }
//!
//! impl CaptionFilter for MinWords {
//!     fn filter(&self, candidate: &Candidate) -> Result<Verdict, String> {
//!         let words = candidate.text.split_whitespace().count();
//!         let keep = words >= self.0.min_words;
//!         vila2_guest::log::debug!("{}: {words} words", candidate.sample.key);
//!         Ok(Verdict {
//!             keep,
//!             score: if keep { 1.0 } else { 0.0 },
//!             reasons: if keep { vec![] } else { vec!["too-short".into()] },
//!         })
//!     }
//! }
//!
//! vila2_guest::export_caption_filter!(MinWords);
//!
//! // Natively the logic is plain Rust:
//! let f = MinWords::new(vila2_guest::parse_config(r#"{"min_words": 2}"#).unwrap()).unwrap();
//! # let sample = vila2_guest::Sample { key: "k".into(), width: 1, height: 1,
//! #     original_caption: String::new(), metadata: vec![] };
//! let c = Candidate { sample, text: "a red cup".into(), model: "m".into(), round: 1,
//!     mean_logprob: None };
//! assert!(f.filter(&c).unwrap().keep);
//! let err = vila2_guest::parse_config::<Config>(r#"{"min_words": "many"}"#).unwrap_err();
//! assert!(err.contains("min_words"), "{err}");
//! ```

pub mod bindings;
mod config;
#[doc(hidden)]
pub mod export;
pub mod hash;
pub mod judge;
pub mod log;
pub mod specialist;

pub use bindings::caption_filter::vila2::plugin::types::{
    Candidate, Description, Processed, Prompt, PromptRequest, QaTurn, Sample, SpecialistOutput,
    Verdict, WorldKind,
};
pub use config::parse_config;

use serde::de::DeserializeOwned;

/// What every plugin has: a typed configuration and a description of itself.
pub trait Plugin: Sized + 'static {
    /// The document `configure` accepts, as JSON. Use `#[serde(default, deny_unknown_fields)]`
    /// so partial documents work and typos are reported.
    type Config: DeserializeOwned + Default;

    /// Name, version, description and config schema; usually [`about!`].
    fn about() -> About;

    /// Builds the plugin from a configuration; reject inconsistent values here.
    fn new(config: Self::Config) -> Result<Self, String>;
}

/// Decides which captions are kept (world `caption-filter`).
pub trait CaptionFilter: Plugin {
    /// Judges one candidate. An `Err` becomes that item's error; the batch goes on.
    fn filter(&self, candidate: &Candidate) -> Result<Verdict, String>;

    /// Judges a batch: one result per candidate, same order. Defaults to [`Self::filter`] on
    /// each item.
    fn filter_batch(&self, batch: &[Candidate]) -> Vec<Result<Verdict, String>> {
        batch.iter().map(|c| self.filter(c)).collect()
    }
}

/// Chooses the prompt a sample is recaptioned with (world `prompt-template`).
pub trait PromptTemplate: Plugin {
    /// Renders the prompt for one request; the same (key, seed) must give the same prompt.
    fn render(&self, request: &PromptRequest) -> Result<Prompt, String>;

    /// Renders a batch: one result per request, same order.
    fn render_batch(&self, batch: &[PromptRequest]) -> Vec<Result<Prompt, String>> {
        batch.iter().map(|r| self.render(r)).collect()
    }
}

/// Turns a specialist's answers into caption QA turns (world `post-processor`).
pub trait PostProcessor: Plugin {
    /// Processes one answer: the turns to append and why parts were dropped.
    fn process(&self, output: &SpecialistOutput) -> Result<Processed, String>;

    /// Processes a batch: one result per output, same order.
    fn process_batch(&self, batch: &[SpecialistOutput]) -> Vec<Result<Processed, String>> {
        batch.iter().map(|o| self.process(o)).collect()
    }
}

/// A [`Verdict`] that keeps the caption, with `score` in [0, 1] and no reasons.
pub fn keep(score: f32) -> Verdict {
    Verdict {
        keep: true,
        score,
        reasons: Vec::new(),
    }
}

/// A [`Verdict`] that drops the caption, with `score` in [0, 1] and its `reasons` (stable
/// kebab-case strings such as `too-short`).
pub fn reject<S: Into<String>>(score: f32, reasons: impl IntoIterator<Item = S>) -> Verdict {
    Verdict {
        keep: false,
        score,
        reasons: reasons.into_iter().map(Into::into).collect(),
    }
}

/// `<image>\n` followed by `instruction`: the prompt layout the VLM engine expects (`<image>`
/// marks where the image goes), or `instruction` alone when `image_token` is false.
pub fn image_prompt(instruction: &str, image_token: bool) -> String {
    if image_token {
        format!("<image>\n{instruction}")
    } else {
        instruction.to_string()
    }
}

/// A plugin's self-description; the export macro adds the world to make a [`Description`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct About {
    pub name: String,
    pub version: String,
    pub description: String,
    /// JSON Schema of the config document.
    pub config_schema: String,
}

impl About {
    /// The [`Description`] the host sees for this plugin in `world`.
    pub fn describe(&self, world: WorldKind) -> Description {
        Description {
            name: self.name.clone(),
            version: self.version.clone(),
            world,
            description: self.description.clone(),
            config_schema: self.config_schema.clone(),
        }
    }
}

/// An [`About`] from the calling crate's `Cargo.toml` (`name`, `version`, `description`) and a
/// JSON Schema string: `about!(SCHEMA)`, or `about!(SCHEMA, "description")` to override it.
#[macro_export]
macro_rules! about {
    ($schema:expr) => {
        $crate::about!($schema, ::core::env!("CARGO_PKG_DESCRIPTION"))
    };
    ($schema:expr, $description:expr) => {
        $crate::About {
            name: ::core::env!("CARGO_PKG_NAME").into(),
            version: ::core::env!("CARGO_PKG_VERSION").into(),
            description: ::core::convert::Into::into($description),
            config_schema: ::core::convert::Into::into($schema),
        }
    };
}
