//! VILA²'s OCR specialist as a `specialist` plugin: the task prompt, verbatim from the paper,
//! and a post-processor for the answers.
//!
//! The post-processor [`normalize`]s the answer (typographic quotes, dashes and ellipses to
//! ASCII, no-break and zero-width spaces, runs of spaces), drops empty and repeated lines (case,
//! spacing and punctuation ignored), drops answers that only say there is no text, and turns what is left
//! into one QA turn whose question is drawn per sample key from [`QUESTIONS`].

use serde::{Deserialize, Serialize};
use vila2_guest::specialist::{no_turn, one_turn, task_prompt};
use vila2_guest::{
    About, Plugin, PostProcessor, Processed, Prompt, PromptRequest, PromptTemplate,
    SpecialistOutput,
};

/// The OCR specialist's prompt (VILA² paper).
pub const PROMPT: &str = "Your task is to recognize and describe the text in the image. Please \
provide a brief description that focuses on the textual content.";

/// Questions an OCR answer answers; one is drawn per sample key.
pub const QUESTIONS: [&str; 4] = [
    "What text appears in the image?",
    "Read the text in the image.",
    "Describe the textual content of the image.",
    "What is written in the image?",
];

/// Answers that only say the image has no text.
const NO_TEXT: &[&str] = &[
    "no text",
    "no visible text",
    "no readable text",
    "does not contain any text",
    "doesn't contain any text",
    "there is no text",
    "cannot read any text",
];

/// Configuration of the OCR specialist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Start the prompt with `<image>\n`.
    pub image_token: bool,
    /// Answers longer than this many characters after normalisation are cut at a line end.
    pub max_chars: usize,
    /// Seed of the question draw.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            image_token: true,
            max_chars: 2000,
            seed: 0,
        }
    }
}

/// JSON Schema of [`Config`].
pub const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "vila2-ocr config",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "image_token": {"type": "boolean", "default": true, "description": "start the prompt with <image> and a newline"},
    "max_chars": {"type": "integer", "minimum": 1, "default": 2000, "description": "longer answers are cut at a line end"},
    "seed": {"type": "integer", "minimum": 0, "default": 0, "description": "seed of the per-sample question draw"}
  }
}"#;

/// Maps typographic characters to ASCII and removes invisible ones; whitespace runs inside a
/// line become one space, lines are trimmed.
pub fn normalize_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut space = false;
    for ch in line.chars() {
        let mapped = match ch {
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' => "'",
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '\u{AB}'
            | '\u{BB}' => "\"",
            '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2212}' => "-",
            '\u{2026}' => "...",
            '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' => "",
            c if c.is_whitespace() => " ",
            c if c.is_control() => "",
            _ => {
                if space && !out.is_empty() {
                    out.push(' ');
                }
                space = false;
                out.push(ch);
                continue;
            }
        };
        if mapped == " " {
            space = true;
        } else if !mapped.is_empty() {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push_str(mapped);
        }
    }
    out
}

/// What two lines must share to be the same text: their words, lowercased, punctuation left out.
fn dedup_key(line: &str) -> String {
    line.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The kept lines of an answer, and why the others were dropped.
pub fn normalize(answer: &str) -> (Vec<String>, Vec<String>) {
    let mut kept: Vec<String> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let mut dropped = Vec::new();
    for line in answer.lines() {
        let line = normalize_line(line);
        if line.is_empty() {
            continue;
        }
        let key = dedup_key(&line);
        if keys.contains(&key) {
            dropped.push(format!("duplicate-line: {line}"));
        } else {
            keys.push(key);
            kept.push(line);
        }
    }
    (kept, dropped)
}

/// The plugin.
#[derive(Debug, Clone, Default)]
pub struct Ocr {
    config: Config,
}

impl Plugin for Ocr {
    type Config = Config;

    fn about() -> About {
        vila2_guest::about!(SCHEMA)
    }

    fn new(config: Config) -> Result<Self, String> {
        if config.max_chars == 0 {
            return Err("invalid config field `max_chars`: must be at least 1".into());
        }
        Ok(Ocr { config })
    }
}

impl PromptTemplate for Ocr {
    fn render(&self, _request: &PromptRequest) -> Result<Prompt, String> {
        Ok(task_prompt(PROMPT, self.config.image_token, "ocr"))
    }
}

impl PostProcessor for Ocr {
    fn process(&self, output: &SpecialistOutput) -> Result<Processed, String> {
        let (lines, mut dropped) = normalize(&output.answer);
        if lines.is_empty() {
            dropped.push("empty-answer".into());
            return Ok(no_turn(dropped));
        }
        let lower = lines.join(" ").to_lowercase();
        if lines.len() == 1 && lower.len() < 80 && NO_TEXT.iter().any(|p| lower.contains(p)) {
            dropped.push(format!("no-text: {}", lines[0]));
            return Ok(no_turn(dropped));
        }
        let mut answer = String::new();
        for line in &lines {
            if !answer.is_empty() && answer.len() + 1 + line.len() > self.config.max_chars {
                dropped.push(format!("too-long: cut after {} characters", answer.len()));
                break;
            }
            if !answer.is_empty() {
                answer.push('\n');
            }
            answer.push_str(line);
        }
        let (key, seed) = (&output.sample.key, self.config.seed);
        Ok(one_turn(&QUESTIONS, key, seed, answer, dropped))
    }
}

vila2_guest::export_specialist!(Ocr);

#[cfg(test)]
mod tests {
    use super::*;

    fn output(key: &str, answer: &str) -> SpecialistOutput {
        vila2_guest::specialist::output("ocr", PROMPT, (key, 100, 100), answer)
    }

    fn ocr() -> Ocr {
        Ocr::new(Config::default()).unwrap()
    }

    #[test]
    fn prompt_is_the_papers_after_the_image_token() {
        let req = PromptRequest {
            sample: output("k", "").sample,
            seed: 0,
            round: 0,
        };
        let p = ocr().render(&req).unwrap();
        assert_eq!(
            p.text,
            "<image>\nYour task is to recognize and describe the text in the image. Please provide \
             a brief description that focuses on the textual content."
        );
        assert_eq!(p.variant, "ocr");
    }

    #[test]
    fn quotes_dashes_and_spaces_are_normalised() {
        assert_eq!(
            normalize_line(
                "  \u{201C}OPEN\u{201D}\u{00A0}\u{00A0}24 hours \u{2014} it\u{2019}s\u{200B} late\u{2026} "
            ),
            "\"OPEN\" 24 hours - it's late..."
        );
    }

    #[test]
    fn repeated_lines_are_dropped_case_insensitively() {
        let (kept, dropped) =
            normalize("STOP\n\nNo  parking\nstop\n  no parking \nExit\n\u{201C}EXIT!\u{201D}");
        assert_eq!(kept, ["STOP", "No parking", "Exit"]);
        assert_eq!(
            dropped,
            [
                "duplicate-line: stop",
                "duplicate-line: no parking",
                "duplicate-line: \"EXIT!\""
            ]
        );
    }

    #[test]
    fn process_emits_one_turn_with_a_question_drawn_per_key() {
        let out = ocr()
            .process(&output(
                "k1",
                "The sign reads \u{2018}CAF\u{00C9}\u{2019}.\nThe sign reads 'café'.",
            ))
            .unwrap();
        assert_eq!(out.turns.len(), 1);
        assert_eq!(out.turns[0].answer, "The sign reads 'CAF\u{00C9}'.");
        assert!(QUESTIONS.contains(&out.turns[0].question.as_str()));
        assert_eq!(out.dropped, ["duplicate-line: The sign reads 'café'."]);
        assert_eq!(
            out,
            ocr()
                .process(&output(
                    "k1",
                    "The sign reads \u{2018}CAF\u{00C9}\u{2019}.\nThe sign reads 'café'."
                ))
                .unwrap()
        );
        let questions: std::collections::BTreeSet<String> = (0..40)
            .map(|i| {
                ocr()
                    .process(&output(&format!("{i}"), "EXIT"))
                    .unwrap()
                    .turns[0]
                    .question
                    .clone()
            })
            .collect();
        assert!(questions.len() > 1);
    }

    #[test]
    fn empty_and_no_text_answers_are_dropped() {
        let empty = ocr().process(&output("k", " \n\u{200B}\n")).unwrap();
        assert!(empty.turns.is_empty());
        assert_eq!(empty.dropped, ["empty-answer"]);
        let none = ocr()
            .process(&output("k", "There is no visible text in this image."))
            .unwrap();
        assert!(none.turns.is_empty());
        assert_eq!(
            none.dropped,
            ["no-text: There is no visible text in this image."]
        );
    }

    #[test]
    fn long_answers_are_cut_at_a_line_end() {
        let o = Ocr::new(Config {
            max_chars: 12,
            ..Config::default()
        })
        .unwrap();
        let out = o.process(&output("k", "first line\nsecond line")).unwrap();
        assert_eq!(out.turns[0].answer, "first line");
        assert_eq!(out.dropped, ["too-long: cut after 10 characters"]);
        assert!(
            Ocr::new(Config {
                max_chars: 0,
                ..Config::default()
            })
            .is_err()
        );
    }

    #[test]
    fn schema_names_every_field() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        for field in serde_json::to_value(Config::default())
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
        {
            assert!(schema["properties"].get(field).is_some(), "{field}");
        }
    }
}
