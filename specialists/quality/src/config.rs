//! Thresholds of the quality filter, as the JSON document `configure` accepts.

use serde::{Deserialize, Serialize};

/// Thresholds; every field is optional in the JSON and defaults as documented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Fewer words than this is `too-short` (default 8).
    pub min_words: usize,
    /// More words than this is `too-long` (default 400).
    pub max_words: usize,
    /// Sentences that repeat an earlier one (case, spacing and punctuation ignored) allowed
    /// before `repetition` (default 0).
    pub max_repeated_sentences: usize,
    /// Word n-gram size of the repetition check (default 4: at 3, templated captions such as
    /// "A … is in the top left. A … is in the bottom left." read as loops).
    pub repetition_ngram: usize,
    /// Share of repeated n-grams above which a caption is `repetition` (default 0.3).
    pub max_repeated_ngram_ratio: f32,
    /// Whether a caption must end with terminal punctuation, else `truncated` (default true).
    pub require_terminal_punctuation: bool,
    /// Lines that look like list items ("1.", "- ", "* ", "•") allowed before `list-form`
    /// (default 1).
    pub max_list_items: usize,
    /// Speculative expressions ("possibly", "might be", ...) allowed before `speculative`
    /// (default 1).
    pub max_speculative: usize,
    /// Minimum share of letters among non-space characters, else `garbage` (default 0.6).
    pub min_alpha_ratio: f32,
    /// Longest run of symbols (not letters, digits or spaces) allowed, else `garbage`
    /// (default 6).
    pub max_symbol_run: usize,
    /// Longest whitespace-delimited token allowed, in characters, else `garbage` (default 40).
    pub max_token_chars: usize,
    /// Candidates whose mean token log-probability is below this are `low-logprob`; off when
    /// null (default null).
    pub min_mean_logprob: Option<f32>,
    /// Verdicts scoring below this are dropped (default 0.6).
    pub min_score: f32,
    /// When set, a candidate that passes every other check and has no `mean_logprob` is scored
    /// by the host's judge (the VLM's mean log-probability of the caption as the answer to this
    /// prompt), and `min_mean_logprob` applies to that. A judge error fails the item (default
    /// null: the judge is never called).
    pub judge_prompt: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            min_words: 8,
            max_words: 400,
            max_repeated_sentences: 0,
            repetition_ngram: 4,
            max_repeated_ngram_ratio: 0.3,
            require_terminal_punctuation: true,
            max_list_items: 1,
            max_speculative: 1,
            min_alpha_ratio: 0.6,
            max_symbol_run: 6,
            max_token_chars: 40,
            min_mean_logprob: None,
            min_score: 0.6,
            judge_prompt: None,
        }
    }
}

impl Config {
    /// Rejects contradictory values.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_words > self.max_words {
            return Err(format!(
                "invalid config: min_words ({}) is above max_words ({})",
                self.min_words, self.max_words
            ));
        }
        if self.repetition_ngram == 0 {
            return Err("invalid config field `repetition_ngram`: must be at least 1".into());
        }
        for (name, v) in [
            ("max_repeated_ngram_ratio", self.max_repeated_ngram_ratio),
            ("min_alpha_ratio", self.min_alpha_ratio),
            ("min_score", self.min_score),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!(
                    "invalid config field `{name}`: {v} is not in [0, 1]"
                ));
            }
        }
        if self.judge_prompt.is_some() && self.min_mean_logprob.is_none() {
            return Err(
                "invalid config field `judge_prompt`: it needs `min_mean_logprob`, the threshold \
                 the judged log-probability is held to"
                    .into(),
            );
        }
        Ok(())
    }
}

/// JSON Schema of [`Config`], returned by `describe()`.
pub const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "vila2-quality config",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "min_words": {"type": "integer", "minimum": 0, "default": 8, "description": "fewer words is too-short"},
    "max_words": {"type": "integer", "minimum": 0, "default": 400, "description": "more words is too-long"},
    "max_repeated_sentences": {"type": "integer", "minimum": 0, "default": 0, "description": "sentences repeating an earlier one allowed before repetition"},
    "repetition_ngram": {"type": "integer", "minimum": 1, "default": 4, "description": "n of the repeated word n-gram check"},
    "max_repeated_ngram_ratio": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.3, "description": "share of repeated n-grams above which a caption is repetition"},
    "require_terminal_punctuation": {"type": "boolean", "default": true, "description": "no final . ! ? is truncated"},
    "max_list_items": {"type": "integer", "minimum": 0, "default": 1, "description": "list-like lines allowed before list-form"},
    "max_speculative": {"type": "integer", "minimum": 0, "default": 1, "description": "speculative expressions allowed before speculative"},
    "min_alpha_ratio": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.6, "description": "minimum share of letters among non-space characters"},
    "max_symbol_run": {"type": "integer", "minimum": 1, "default": 6, "description": "longest run of symbols before garbage"},
    "max_token_chars": {"type": "integer", "minimum": 1, "default": 40, "description": "longest token before garbage"},
    "min_mean_logprob": {"type": ["number", "null"], "default": null, "description": "candidates below this mean log-probability are low-logprob"},
    "min_score": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.6, "description": "verdicts scoring below this are dropped"},
    "judge_prompt": {"type": ["string", "null"], "default": null, "description": "score candidates without mean_logprob with the host's VLM judge under this prompt (needs min_mean_logprob)"}
  }
}"#;
