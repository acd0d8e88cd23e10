//! vila2's default caption filter (world `caption-filter`): drops recaptions that are empty,
//! too short or too long, stuck in a repetition loop, cut off mid-sentence, refusals or
//! assistant boilerplate, itemised as lists or hedged with speculative wording (both of which
//! VILA²'s long-v3 prompt asks the model to avoid), or not text at all.
//!
//! Every verdict carries a score (1 minus the penalties of its reasons, see
//! [`Reason::penalty`]) and its reasons as stable kebab-case strings; a caption is kept when its
//! score reaches `min_score`. Thresholds are the JSON document of [`Config`] (schema:
//! [`SCHEMA`]).
//!
//! # Native use (benchmarks, tests)
//!
//! The same logic the component runs is a plain function of this rlib:
//!
//! ```
//! let config = vila2_quality::Config::default();
//! let a = vila2_quality::judge(&config, "A red vase stands on a wooden table next to a window.");
//! assert!(a.keep && a.reasons.is_empty());
//! let v = vila2_quality::judge(&config, "I'm sorry, but I cannot describe the people in this image.").to_verdict();
//! assert_eq!(v.reasons, ["boilerplate"]);
//! ```
//!
//! With `judge_prompt` set, candidates that pass every check and carry no `mean_logprob` are
//! scored by the host's VLM judge (`vila2:plugin/judge`) before `min_mean_logprob` applies.
//!
//! [`judge`] does not allocate once warm; [`Assessment::to_verdict`] builds the WIT record the
//! component returns (one `String` per reason), so `judge(..).to_verdict()` is the like-for-like
//! native counterpart of the component's `filter` for a benchmark. [`QualityFilter`] is the
//! plugin type itself.

mod config;
mod judge;

pub use config::{Config, SCHEMA};
pub use judge::{Assessment, Reason, Reasons, judge, judge_candidate};

use vila2_guest::{About, Candidate, CaptionFilter, Plugin, Verdict};

/// The plugin: a validated [`Config`].
#[derive(Debug, Clone, Default)]
pub struct QualityFilter {
    config: Config,
}

impl Plugin for QualityFilter {
    type Config = Config;

    fn about() -> About {
        vila2_guest::about!(SCHEMA)
    }

    fn new(config: Config) -> Result<Self, String> {
        config.validate()?;
        Ok(QualityFilter { config })
    }
}

impl CaptionFilter for QualityFilter {
    fn filter(&self, candidate: &Candidate) -> Result<Verdict, String> {
        let config = &self.config;
        let text = &candidate.text;
        let assessment = judge_candidate(config, text, candidate.mean_logprob);
        // The VLM judge is costly: only asked about captions that pass everything else.
        let Some(prompt) = &config.judge_prompt else {
            return Ok(assessment.to_verdict());
        };
        if !assessment.keep || candidate.mean_logprob.is_some() {
            return Ok(assessment.to_verdict());
        }
        let judged = vila2_guest::judge::score(&candidate.sample.key, prompt, text)?;
        Ok(judge_candidate(config, text, Some(judged.mean_logprob)).to_verdict())
    }
}

vila2_guest::export_caption_filter!(QualityFilter);

#[cfg(test)]
mod tests;
