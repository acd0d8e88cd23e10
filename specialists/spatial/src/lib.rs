//! VILA²'s spatial specialist as a `specialist` plugin: the task prompt, verbatim from the
//! paper, and a post-processor for the answers.
//!
//! The post-processor splits an answer into sentences and keeps those that state a known
//! relation ([`RELATIONS`]: left of, right of, in front of, behind, above, below, closest, next
//! to, on top of, under, ... — the paper's SpatialRelationQA relations and their common
//! neighbours) between two named objects: a content word on each side of the relation. The
//! camera counts as an object ("closest to the camera"); the image frame does not ("on the left
//! of the image" names one object). A statement that names the same object on both ends ("the
//! cup is left of the cup", "the shape closest to the cup is the cup") or repeats an earlier
//! kept one is degenerate — the marks of a small model looping — and is dropped too. Other
//! sentences are dropped with `no-relation: ...`, `one-object: ...`, `self-relation: ...` or
//! `duplicate: ...`; the kept ones become one QA turn whose question is drawn per sample key
//! from [`QUESTIONS`].

use serde::{Deserialize, Serialize};
use vila2_guest::specialist::{no_turn, one_turn, task_prompt};
use vila2_guest::{
    About, Plugin, PostProcessor, Processed, Prompt, PromptRequest, PromptTemplate,
    SpecialistOutput,
};

/// The spatial specialist's prompt (VILA² paper).
pub const PROMPT: &str = "Elaborate on the visual and narrative elements of the image in detail, \
with a focus on spatial relations.";

/// Questions a spatial description answers; one is drawn per sample key.
pub const QUESTIONS: [&str; 4] = [
    "Describe the spatial relations between the objects in the image.",
    "How are the objects in the image arranged relative to each other?",
    "Where are the objects in the image relative to one another?",
    "Explain the layout of the scene: which objects are next to, behind or in front of others?",
];

/// Relations, as lowercase word sequences; longer ones first so the longest match wins.
pub const RELATIONS: &[&[&str]] = &[
    &["to", "the", "left", "of"],
    &["to", "the", "right", "of"],
    &["on", "the", "left", "of"],
    &["on", "the", "right", "of"],
    &["in", "front", "of"],
    &["on", "top", "of"],
    &["left", "of"],
    &["right", "of"],
    &["next", "to"],
    &["close", "to"],
    &["closer", "to"],
    &["closest", "to"],
    &["far", "from"],
    &["farther", "from"],
    &["further", "from"],
    &["across", "from"],
    &["behind"],
    &["above"],
    &["below"],
    &["beneath"],
    &["under"],
    &["underneath"],
    &["beside"],
    &["near"],
    &["between"],
    &["inside"],
    &["opposite"],
    &["closest"],
    &["farthest"],
    &["nearest"],
];

/// Words that do not name an object.
const NOT_OBJECTS: &[&str] = &[
    "a",
    "an",
    "the",
    "it",
    "its",
    "they",
    "them",
    "this",
    "that",
    "these",
    "those",
    "there",
    "here",
    "is",
    "are",
    "was",
    "were",
    "be",
    "being",
    "been",
    "which",
    "who",
    "while",
    "and",
    "or",
    "of",
    "to",
    "in",
    "on",
    "at",
    "by",
    "with",
    "from",
    "side",
    "part",
    "image",
    "picture",
    "photo",
    "photograph",
    "scene",
    "frame",
    "view",
    "one",
    "other",
    "another",
    "also",
    "located",
    "positioned",
    "placed",
    "situated",
    "seen",
    "visible",
    "appears",
    "can",
    "slightly",
    "directly",
    "just",
    "very",
    "much",
    "most",
    "more",
    "each",
    "all",
    "both",
];

/// Configuration of the spatial specialist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Start the prompt with `<image>\n`.
    pub image_token: bool,
    /// Seed of the question draw.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            image_token: true,
            seed: 0,
        }
    }
}

/// JSON Schema of [`Config`].
pub const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "vila2-spatial config",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "image_token": {"type": "boolean", "default": true, "description": "start the prompt with <image> and a newline"},
    "seed": {"type": "integer", "minimum": 0, "default": 0, "description": "seed of the per-sample question draw"}
  }
}"#;

/// Why a sentence is not a spatial statement, if it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    NoRelation,
    OneObject,
    /// The same object phrase on both ends ("the red cup is left of the red cup", "the shape
    /// closest to the cup is the cup"): a degenerate statement, true of no image.
    SelfRelation,
}

/// The object phrases of a sentence: the runs of object words between the other words
/// (`["red cup", "blue box"]` for "The red cup is left of the blue box"), outside `skip`
/// (the relation's word range).
fn object_phrases(words: &[String], skip: std::ops::Range<usize>) -> Vec<String> {
    let mut out = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let object = !skip.contains(&i)
            && !NOT_OBJECTS.contains(&w.as_str())
            && !w.chars().all(|c| c.is_ascii_digit());
        if object {
            run.push(w);
        } else if !run.is_empty() {
            out.push(run.join(" "));
            run.clear();
        }
    }
    if !run.is_empty() {
        out.push(run.join(" "));
    }
    out
}

/// Checks one sentence: a relation with an object named on each side of it.
pub fn check_sentence(sentence: &str) -> Result<&'static [&'static str], Rejection> {
    let words: Vec<String> = sentence
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let is_object =
        |w: &String| !NOT_OBJECTS.contains(&w.as_str()) && !w.chars().all(|c| c.is_ascii_digit());
    let mut found = None;
    for i in 0..words.len() {
        let at = &words[i..];
        let hit = RELATIONS
            .iter()
            .find(|r| r.len() <= at.len() && r.iter().zip(at).all(|(a, b)| *a == b.as_str()));
        if let Some(rel) = hit {
            found = Some(*rel);
            if words[..i].iter().any(is_object) && words[i + rel.len()..].iter().any(is_object) {
                let phrases = object_phrases(&words, i..i + rel.len());
                let mut seen = std::collections::BTreeSet::new();
                if phrases.iter().any(|p| !seen.insert(p.as_str())) {
                    return Err(Rejection::SelfRelation);
                }
                return Ok(rel);
            }
        }
    }
    match found {
        Some(_) => Err(Rejection::OneObject),
        None => Err(Rejection::NoRelation),
    }
}

/// Sentences of `answer`, each with its terminal punctuation, whitespace collapsed.
pub fn sentences(answer: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut flush = |current: &mut String| {
        let s = current.split_whitespace().collect::<Vec<_>>().join(" ");
        if !s.is_empty() && s.chars().any(char::is_alphanumeric) {
            out.push(s);
        }
        current.clear();
    };
    let mut chars = answer.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            flush(&mut current);
            continue;
        }
        current.push(c);
        // A full stop between digits ("1.5 m") does not end a sentence.
        let ends = matches!(c, '!' | '?' | ';')
            || (c == '.' && chars.peek().is_none_or(|n| n.is_whitespace()));
        if ends {
            flush(&mut current);
        }
    }
    flush(&mut current);
    out
}

/// A kept clause as a sentence of its own: capitalised, ending in a full stop ("the lamp is
/// above it;" → "The lamp is above it.").
fn as_statement(clause: &str) -> String {
    let body = clause.trim_end_matches([';', ',', ':']);
    let mut chars = body.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// The plugin.
#[derive(Debug, Clone, Default)]
pub struct Spatial {
    config: Config,
}

impl Plugin for Spatial {
    type Config = Config;

    fn about() -> About {
        vila2_guest::about!(SCHEMA)
    }

    fn new(config: Config) -> Result<Self, String> {
        Ok(Spatial { config })
    }
}

impl PromptTemplate for Spatial {
    fn render(&self, _request: &PromptRequest) -> Result<Prompt, String> {
        Ok(task_prompt(PROMPT, self.config.image_token, "spatial"))
    }
}

impl PostProcessor for Spatial {
    fn process(&self, output: &SpecialistOutput) -> Result<Processed, String> {
        let all = sentences(&output.answer);
        if all.is_empty() {
            return Ok(no_turn(vec!["empty-answer".into()]));
        }
        let mut kept: Vec<String> = Vec::new();
        let mut dropped = Vec::new();
        for s in all {
            match check_sentence(&s) {
                Ok(_) => {
                    let statement = as_statement(&s);
                    // A repeated statement adds nothing; a model that loops repeats itself.
                    if kept.iter().any(|k| k.eq_ignore_ascii_case(&statement)) {
                        dropped.push(format!("duplicate: {s}"));
                    } else {
                        kept.push(statement);
                    }
                }
                Err(Rejection::NoRelation) => dropped.push(format!("no-relation: {s}")),
                Err(Rejection::OneObject) => dropped.push(format!("one-object: {s}")),
                Err(Rejection::SelfRelation) => dropped.push(format!("self-relation: {s}")),
            }
        }
        if kept.is_empty() {
            dropped.push("no-relations: no sentence relates two objects".into());
            return Ok(no_turn(dropped));
        }
        let (key, seed) = (&output.sample.key, self.config.seed);
        Ok(one_turn(&QUESTIONS, key, seed, kept.join(" "), dropped))
    }
}

vila2_guest::export_specialist!(Spatial);

#[cfg(test)]
mod tests {
    use super::*;

    fn output(key: &str, answer: &str) -> SpecialistOutput {
        vila2_guest::specialist::output("spatial", PROMPT, (key, 100, 100), answer)
    }

    fn spatial() -> Spatial {
        Spatial::new(Config::default()).unwrap()
    }

    #[test]
    fn prompt_is_the_papers_after_the_image_token() {
        let req = PromptRequest {
            sample: output("k", "").sample,
            seed: 0,
            round: 0,
        };
        let p = spatial().render(&req).unwrap();
        assert_eq!(
            p.text,
            "<image>\nElaborate on the visual and narrative elements of the image in detail, with a \
             focus on spatial relations."
        );
        assert_eq!(p.variant, "spatial");
    }

    #[test]
    fn statements_relating_two_objects_are_kept() {
        for s in [
            "The red cup is to the left of the laptop.",
            "A dog sits behind the wooden bench.",
            "The lamp is on top of the desk.",
            "A small vase stands next to the books.",
            "The chair is closest to the camera.",
            "The cat is under the table.",
            "Two mugs are in front of the monitor.",
        ] {
            assert!(check_sentence(s).is_ok(), "{s}");
        }
        assert_eq!(
            check_sentence("The cup is to the left of the laptop.").unwrap(),
            ["to", "the", "left", "of"]
        );
    }

    #[test]
    fn other_sentences_are_rejected_with_a_reason() {
        assert_eq!(
            check_sentence("The room is bright and cozy."),
            Err(Rejection::NoRelation)
        );
        assert_eq!(
            check_sentence("It is on the left of the image."),
            Err(Rejection::OneObject)
        );
        assert_eq!(
            check_sentence("There is a tree behind."),
            Err(Rejection::OneObject)
        );
        assert_eq!(
            check_sentence("The leftover pizza is cold."),
            Err(Rejection::NoRelation)
        );
    }

    #[test]
    fn statements_relating_an_object_to_itself_are_rejected() {
        for s in [
            "The purple cross is to the right of the purple cross.",
            "The yellow circle is below the yellow circle.",
            "The shape closest to the purple cross is the purple cross.",
            "The cup is next to the cup.",
        ] {
            assert_eq!(check_sentence(s), Err(Rejection::SelfRelation), "{s}");
        }
        for s in [
            "The purple cross is to the right of the blue cross.",
            "The shape closest to the blue diamond is the purple cross.",
            "The red cup is left of the blue cup.",
        ] {
            assert!(check_sentence(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn degenerate_statements_are_dropped_with_a_reason() {
        let answer = "The blue diamond is to the left of the purple cross. The blue diamond is \
                      to the left of the purple cross. The purple cross is to the right of the \
                      purple cross. The shape closest to the purple cross is the blue diamond.";
        let out = spatial().process(&output("k", answer)).unwrap();
        assert_eq!(
            out.turns[0].answer,
            "The blue diamond is to the left of the purple cross. The shape closest to the \
             purple cross is the blue diamond."
        );
        assert_eq!(
            out.dropped,
            [
                "duplicate: The blue diamond is to the left of the purple cross.",
                "self-relation: The purple cross is to the right of the purple cross."
            ]
        );
        let only = spatial()
            .process(&output(
                "k",
                "The cup is left of the cup. The cup is left of the cup.",
            ))
            .unwrap();
        assert!(only.turns.is_empty());
    }

    #[test]
    fn sentences_split_on_terminators_but_not_decimals() {
        assert_eq!(
            sentences("The box is 1.5 m wide. Is it near the door?\nYes; the lamp is above it"),
            [
                "The box is 1.5 m wide.",
                "Is it near the door?",
                "Yes;",
                "the lamp is above it"
            ]
        );
    }

    #[test]
    fn process_keeps_relations_and_reports_the_rest() {
        let answer = "A kitchen with white walls. The kettle is next to the toaster. It is on the \
                      left of the image. The fridge stands behind the table.";
        let out = spatial().process(&output("k", answer)).unwrap();
        assert_eq!(out.turns.len(), 1);
        assert_eq!(
            out.turns[0].answer,
            "The kettle is next to the toaster. The fridge stands behind the table."
        );
        assert!(QUESTIONS.contains(&out.turns[0].question.as_str()));
        assert_eq!(
            out.dropped,
            [
                "no-relation: A kitchen with white walls.",
                "one-object: It is on the left of the image."
            ]
        );
        let questions: std::collections::BTreeSet<String> = (0..40)
            .map(|i| {
                spatial()
                    .process(&output(&format!("{i}"), answer))
                    .unwrap()
                    .turns[0]
                    .question
                    .clone()
            })
            .collect();
        assert!(questions.len() > 1);
    }

    #[test]
    fn kept_clauses_become_full_sentences() {
        let out = spatial()
            .process(&output(
                "k",
                "The sofa is behind the table; the lamp is above the sofa",
            ))
            .unwrap();
        assert_eq!(
            out.turns[0].answer,
            "The sofa is behind the table. The lamp is above the sofa."
        );
    }

    #[test]
    fn empty_and_relation_free_answers_give_no_turns() {
        let empty = spatial().process(&output("k", "  ")).unwrap();
        assert!(empty.turns.is_empty());
        assert_eq!(empty.dropped, ["empty-answer"]);
        let none = spatial().process(&output("k", "A sunny beach.")).unwrap();
        assert!(none.turns.is_empty());
        assert_eq!(none.dropped.len(), 2);
        assert!(none.dropped[1].starts_with("no-relations"));
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
