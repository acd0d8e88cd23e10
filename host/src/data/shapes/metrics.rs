//! Scoring against ground truth: caption precision / recall / hallucination from the
//! (colour, shape) mentions parsed out of free text, and exact-match VQA accuracy per kind.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::questions::QaKind;
use super::scene::{Color, Scene, Shape};

/// Words that may stand between a colour and its shape ("red and blue circles",
/// "a red, large square").
const FILLER: [&str; 13] = [
    "and", "or", "a", "an", "the", "small", "large", "big", "little", "tiny", "huge", "bright",
    "dark",
];

/// Longest run of filler words allowed between a colour and its shape.
const MAX_GAP: usize = 3;

/// Lowercase alphanumeric words of a text.
pub(crate) fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// The colour–shape mentions of a tokenised text in order, each with the index of its shape
/// word: a colour word (or several joined by "and"/"or") followed within a few filler words
/// (articles, size words) by a shape word, singular or plural.
pub(crate) fn mention_spans(toks: &[String]) -> Vec<(usize, Color, Shape)> {
    let mut out = Vec::new();
    let mut colors: Vec<Color> = Vec::new();
    let mut gap = 0;
    for (i, t) in toks.iter().enumerate() {
        if let Some(c) = Color::from_word(t) {
            colors.push(c);
            gap = 0;
        } else if let Some(s) = Shape::from_word(t) {
            out.extend(colors.drain(..).map(|c| (i, c, s)));
        } else if !colors.is_empty() && FILLER.contains(&t.as_str()) && gap < MAX_GAP {
            gap += 1;
        } else {
            colors.clear();
            gap = 0;
        }
    }
    out
}

/// The distinct (colour, shape) pairs a text mentions ([`mention_spans`]). Shapes without a
/// colour and other phrasings ("the circle is red") are not counted.
pub fn parse_mentions(text: &str) -> BTreeSet<(Color, Shape)> {
    mention_spans(&tokens(text))
        .into_iter()
        .map(|(_, c, s)| (c, s))
        .collect()
}

/// How one caption fares against its scene (counts of distinct colour–shape pairs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptionScore {
    /// Pairs the caption mentions.
    pub mentioned: usize,
    /// Mentioned pairs that are in the scene.
    pub correct: usize,
    /// Objects in the scene.
    pub gt_objects: usize,
    /// Objects of the scene the caption mentions.
    pub recalled: usize,
    /// Mentioned pairs that are not in the scene.
    pub hallucinated: usize,
}

/// Scores a caption against the scene it describes.
pub fn caption_metrics(text: &str, scene: &Scene) -> CaptionScore {
    let mentions = parse_mentions(text);
    let correct = mentions
        .iter()
        .filter(|(c, s)| scene.find(*c, *s).is_some())
        .count();
    let recalled = scene
        .objects
        .iter()
        .filter(|o| mentions.contains(&(o.color, o.shape)))
        .count();
    CaptionScore {
        mentioned: mentions.len(),
        correct,
        gt_objects: scene.objects.len(),
        recalled,
        hallucinated: mentions.len() - correct,
    }
}

/// Sums of [`CaptionScore`]s over a set of captions, with micro-averaged rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CaptionTally {
    /// Captions added.
    pub captions: usize,
    /// Total words over the captions.
    pub words: usize,
    /// Summed scores.
    pub sum: CaptionScore,
}

/// `a / b`, or 0 when `b` is 0 (a share of nothing).
pub fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl CaptionTally {
    /// Adds one caption and its score.
    pub fn add(&mut self, caption: &str, score: CaptionScore) {
        self.captions += 1;
        self.words += caption.split_whitespace().count();
        self.sum.mentioned += score.mentioned;
        self.sum.correct += score.correct;
        self.sum.gt_objects += score.gt_objects;
        self.sum.recalled += score.recalled;
        self.sum.hallucinated += score.hallucinated;
    }

    /// Correct mentions / mentions (0 when nothing was mentioned).
    pub fn precision(&self) -> f64 {
        ratio(self.sum.correct, self.sum.mentioned)
    }

    /// Recalled objects / objects.
    pub fn recall(&self) -> f64 {
        ratio(self.sum.recalled, self.sum.gt_objects)
    }

    /// Hallucinated mentions / mentions.
    pub fn hallucination_rate(&self) -> f64 {
        ratio(self.sum.hallucinated, self.sum.mentioned)
    }

    /// Mean caption length in words.
    pub fn mean_words(&self) -> f64 {
        ratio(self.words, self.captions)
    }
}

fn number_to_digits(w: &str) -> Option<&'static str> {
    const N: [(&str, &str); 11] = [
        ("zero", "0"),
        ("one", "1"),
        ("two", "2"),
        ("three", "3"),
        ("four", "4"),
        ("five", "5"),
        ("six", "6"),
        ("seven", "7"),
        ("eight", "8"),
        ("nine", "9"),
        ("ten", "10"),
    ];
    N.iter().find(|(a, _)| *a == w).map(|(_, d)| *d)
}

/// Normalises an answer: lowercase, punctuation removed, articles dropped, British/American
/// spellings unified, number words turned into digits for count questions.
pub fn normalize_answer(kind: QaKind, s: &str) -> String {
    tokens(s)
        .into_iter()
        .filter(|t| !matches!(t.as_str(), "a" | "an" | "the"))
        .map(|t| match t.as_str() {
            "grey" => "gray".to_string(),
            "centre" => "center".to_string(),
            "violet" => "purple".to_string(),
            w if kind == QaKind::Count => number_to_digits(w).map_or(t.clone(), str::to_string),
            _ => t,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Exact match of a predicted answer with the gold one after [`normalize_answer`].
pub fn score_answer(kind: QaKind, predicted: &str, gold: &str) -> bool {
    let g = normalize_answer(kind, gold);
    !g.is_empty() && normalize_answer(kind, predicted) == g
}

/// VQA accuracy per question kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VqaTally {
    /// (correct, total) per kind.
    pub per_kind: BTreeMap<QaKind, (usize, usize)>,
}

impl VqaTally {
    /// Records one scored answer.
    pub fn add(&mut self, kind: QaKind, correct: bool) {
        let e = self.per_kind.entry(kind).or_default();
        e.0 += correct as usize;
        e.1 += 1;
    }

    /// Accuracy on one kind (`None` when no question of that kind was scored).
    pub fn accuracy(&self, kind: QaKind) -> Option<f64> {
        self.per_kind
            .get(&kind)
            .filter(|e| e.1 > 0)
            .map(|e| ratio(e.0, e.1))
    }

    /// Accuracy over all questions.
    pub fn overall(&self) -> f64 {
        let (c, t) = self
            .per_kind
            .values()
            .fold((0, 0), |a, e| (a.0 + e.0, a.1 + e.1));
        ratio(c, t)
    }

    /// Accuracy per kind by name (`colour`, `shape`, ...), for reports.
    pub fn by_name(&self) -> BTreeMap<&'static str, f64> {
        self.per_kind
            .keys()
            .filter_map(|k| self.accuracy(*k).map(|a| (k.name(), a)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shapes::captions::{AltTextConfig, alt_text, detailed_caption};
    use crate::data::shapes::scene::{Background, Object, SceneConfig};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn obj(color: Color, shape: Shape, x0: u32) -> Object {
        Object::test_at(color, shape, x0, 10, 12)
    }

    fn scene() -> Scene {
        Scene {
            width: 64,
            height: 64,
            background: Background::White,
            objects: vec![
                obj(Color::Red, Shape::Circle, 2),
                obj(Color::Blue, Shape::Square, 20),
                obj(Color::Blue, Shape::Circle, 40),
            ],
            text: None,
        }
    }

    #[test]
    fn hand_written_captions() {
        let s = scene();
        let c = caption_metrics("A red circle and the two blue circles.", &s);
        assert_eq!(
            (c.mentioned, c.correct, c.recalled, c.hallucinated),
            (2, 2, 2, 0)
        );
        let c = caption_metrics("Red and blue circles next to a GREEN triangle!", &s);
        assert_eq!((c.mentioned, c.correct, c.hallucinated), (3, 2, 1));
        let c = caption_metrics("a big blue square, the small red circle, a blue circle", &s);
        assert_eq!(
            (c.mentioned, c.correct, c.recalled, c.gt_objects),
            (3, 3, 3, 3)
        );
        let c = caption_metrics("stock image of a circle on a white background", &s);
        assert_eq!((c.mentioned, c.recalled), (0, 0));
        let c = caption_metrics("red, happy circle", &s);
        assert_eq!(c.mentioned, 0, "non-filler word breaks the phrase");
    }

    #[test]
    fn detailed_captions_score_perfectly_and_alt_text_does_not() {
        let mut tally = CaptionTally::default();
        let mut alt = CaptionTally::default();
        for seed in 0..200 {
            let s = Scene::random(&mut StdRng::seed_from_u64(seed), &SceneConfig::default());
            let d = detailed_caption(&s);
            tally.add(&d, caption_metrics(&d, &s));
            let mut rng = StdRng::seed_from_u64(seed);
            let a = alt_text(&s, &mut rng, &AltTextConfig::default());
            alt.add(&a, caption_metrics(&a, &s));
        }
        assert_eq!(tally.precision(), 1.0);
        assert_eq!(tally.recall(), 1.0);
        assert_eq!(tally.hallucination_rate(), 0.0);
        assert!(alt.recall() < 0.8, "{alt:?}");
        assert!(alt.hallucination_rate() > 0.05, "{alt:?}");
        assert!(alt.mean_words() < tally.mean_words() / 4.0);
    }

    #[test]
    fn answers_are_normalised() {
        assert!(score_answer(QaKind::Colour, "Red.", "red"));
        assert!(score_answer(QaKind::Colour, " the GREY ", "gray"));
        assert!(score_answer(QaKind::Count, "Three", "3"));
        assert!(score_answer(QaKind::Count, "3.", "three"));
        assert!(score_answer(QaKind::Text, "\"CAT\"", "CAT"));
        assert!(score_answer(QaKind::Position, "Centre", "center"));
        assert!(!score_answer(QaKind::Shape, "red circle", "circle"));
        assert!(!score_answer(QaKind::Count, "", ""));
        let mut t = VqaTally::default();
        t.add(QaKind::Colour, true);
        t.add(QaKind::Colour, false);
        t.add(QaKind::Text, true);
        assert_eq!(t.accuracy(QaKind::Colour), Some(0.5));
        assert_eq!(t.accuracy(QaKind::Shape), None);
        assert!((t.overall() - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(t.by_name()["text"], 1.0);
    }
}
