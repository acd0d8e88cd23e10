//! VILA²'s grounding specialist as a `specialist` plugin: the task prompt, verbatim from the
//! paper, and a post-processor for the answers.
//!
//! The post-processor finds `object [xmin,ymin,xmax,ymax]` spans ([`parse`]), tolerating
//! spaces, fractions in 0–1 (scaled) and pixel coordinates (scaled by the sample's width and
//! height), and rewrites every box in VILA's format: 3-digit integers 000–999 right after the
//! object, e.g. `vase [280,570,550,730]`. Malformed, out-of-range, inverted or empty boxes and
//! boxes covering more than `max_box_area` of the image (70% in the paper, after GRIT-20M) are
//! removed, each with a `dropped` reason such as `inverted-box: cup [500,10,20,30]`. The
//! cleaned answer becomes one QA turn whose question is drawn per sample key from
//! [`QUESTIONS`]; with `object_turns`, each kept box also becomes a turn
//! ("Where is the vase?" → `vase [280,570,550,730]`).

mod boxes;

pub use boxes::{Coords, Grounded, Span, parse};

use serde::{Deserialize, Serialize};
use vila2_guest::specialist::{no_turn, one_turn, task_prompt};
use vila2_guest::{
    About, Plugin, PostProcessor, Processed, Prompt, PromptRequest, PromptTemplate, QaTurn,
    SpecialistOutput,
};

/// The grounding specialist's prompt (VILA² paper).
pub const PROMPT: &str = "Elaborate on the visual and narrative elements in the image, and \
specify their location with [xmin,ymin,xmax,ymax].";

/// Questions a grounded description answers; one is drawn per sample key.
pub const QUESTIONS: [&str; 4] = [
    "Describe the image and give the location of each object as [xmin,ymin,xmax,ymax].",
    "Elaborate on the elements in the image and specify their locations with bounding boxes.",
    "What objects are in the image, and where is each of them? Answer with [xmin,ymin,xmax,ymax] boxes.",
    "Give a grounded description of the image, with a box after every object.",
];

/// Questions of the per-object turns; `{}` is the object.
pub const OBJECT_QUESTIONS: [&str; 3] = [
    "Where is the {} in the image?",
    "Locate the {} in the image.",
    "Give the bounding box of the {}.",
];

/// Configuration of the grounding specialist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Start the prompt with `<image>\n`.
    pub image_token: bool,
    /// How box numbers are read; `auto` decides per box.
    pub coords: Coords,
    /// Boxes covering more than this share of the image are dropped (0.7, as in the paper).
    pub max_box_area: f32,
    /// Also emit one turn per kept box.
    pub object_turns: bool,
    /// Seed of the question draw.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            image_token: true,
            coords: Coords::Auto,
            max_box_area: 0.7,
            object_turns: false,
            seed: 0,
        }
    }
}

/// JSON Schema of [`Config`].
pub const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "vila2-grounding config",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "image_token": {"type": "boolean", "default": true, "description": "start the prompt with <image> and a newline"},
    "coords": {"enum": ["auto", "normalized", "fraction", "pixel"], "default": "auto", "description": "how box numbers are read: auto = all <= 1 is a fraction, any > 1000 is pixels, else 000-999"},
    "max_box_area": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.7, "description": "boxes covering more of the image are dropped"},
    "object_turns": {"type": "boolean", "default": false, "description": "also emit a turn per kept box"},
    "seed": {"type": "integer", "minimum": 0, "default": 0, "description": "seed of the per-sample question draw"}
  }
}"#;

/// The plugin.
#[derive(Debug, Clone, Default)]
pub struct Grounding {
    config: Config,
}

impl Plugin for Grounding {
    type Config = Config;

    fn about() -> About {
        vila2_guest::about!(SCHEMA)
    }

    fn new(config: Config) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&config.max_box_area) {
            return Err(format!(
                "invalid config field `max_box_area`: {} is not in [0, 1]",
                config.max_box_area
            ));
        }
        Ok(Grounding { config })
    }
}

impl PromptTemplate for Grounding {
    fn render(&self, _request: &PromptRequest) -> Result<Prompt, String> {
        Ok(task_prompt(PROMPT, self.config.image_token, "grounding"))
    }
}

impl PostProcessor for Grounding {
    fn process(&self, output: &SpecialistOutput) -> Result<Processed, String> {
        let sample = &output.sample;
        let g = parse(&output.answer, sample.width, sample.height, &self.config);
        let mut dropped = g.dropped;
        if output.answer.trim().is_empty() {
            dropped.push("empty-answer".into());
            return Ok(no_turn(dropped));
        }
        if g.kept.is_empty() {
            dropped.push("no-boxes: the answer has no usable box".into());
            return Ok(no_turn(dropped));
        }
        let key = &sample.key;
        let seed = self.config.seed;
        let mut processed = one_turn(&QUESTIONS, key, seed, g.text, dropped);
        if self.config.object_turns {
            for (i, span) in g.kept.iter().enumerate() {
                let q = OBJECT_QUESTIONS
                    [vila2_guest::hash::pick(key, seed ^ (i as u64 + 1), OBJECT_QUESTIONS.len())];
                processed.turns.push(QaTurn {
                    question: q.replace("{}", &span.object),
                    answer: span.to_string(),
                });
            }
        }
        Ok(processed)
    }
}

vila2_guest::export_specialist!(Grounding);

#[cfg(test)]
mod tests;
