//! Facts stated in free text, checked against a scene: spatial relations ("the red circle is
//! to the left of the blue square", "the shape closest to the red circle is the blue
//! square"), where an object is in the frame ("the red circle is in the top left"),
//! grounding boxes and text readings. This is how right a specialist's answers — and
//! the captions a round trains on — are, where the ground truth is known.

use std::ops::AddAssign;

use serde::{Deserialize, Serialize};

use super::metrics::{mention_spans, ratio, tokens};
use super::scene::{Color, Scene, Shape};
use super::spatial::{Relation, closest, horizontal, relation, vertical};
use super::tasks::parse_boxes;

/// Statements of one kind found in a text and how many of them hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactScore {
    /// Statements found.
    pub stated: usize,
    /// Of them, those about what the scene holds (for a relation: two distinct objects of
    /// the scene; for a box: an object or word of the scene).
    pub grounded: usize,
    /// Of the grounded ones, those that hold.
    pub correct: usize,
}

impl FactScore {
    /// correct / grounded (0 when nothing was grounded).
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct, self.grounded)
    }

    /// correct / stated: the share of all statements that are true of the image.
    pub fn precision(&self) -> f64 {
        ratio(self.correct, self.stated)
    }
}

impl AddAssign for FactScore {
    fn add_assign(&mut self, o: Self) {
        self.stated += o.stated;
        self.grounded += o.grounded;
        self.correct += o.correct;
    }
}

/// The specialist tasks [`task_facts`] checks.
pub const CHECKED_TASKS: [&str; 3] = ["spatial", "grounding", "ocr"];

/// The facts of the kind a specialist task states (`spatial`: relations, `grounding`:
/// boxes, `ocr`: readings); `None` for a task without a checker.
pub fn task_facts(task: &str, text: &str, scene: &Scene) -> Option<FactScore> {
    match task {
        "spatial" => Some(relation_facts(text, scene)),
        "grounding" => Some(box_facts(text, scene)),
        "ocr" => Some(reading_facts(text, scene)),
        _ => None,
    }
}

/// Directional relation phrases, longest first; the first one in a sentence is its relation.
const PHRASES: [(&[&str], Relation); 6] = [
    (&["left", "of"], Relation::LeftOf),
    (&["right", "of"], Relation::RightOf),
    (&["above"], Relation::Above),
    (&["over"], Relation::Above),
    (&["below"], Relation::Below),
    (&["under"], Relation::Below),
];

/// The relation statements of `text`, one per sentence: a directional relation (`left of`,
/// `right of`, `above`, `below`) between the colour–shape mention just before it and the one
/// just after, or a nearest-neighbour statement ("the shape closest to A is B", "A is
/// closest to B"). A statement holds when the scene's relation of the two objects is the one
/// stated ([`relation`]: the axis on which their centres differ most), or B is A's nearest
/// other object ([`closest`]).
pub fn relation_facts(text: &str, scene: &Scene) -> FactScore {
    let mut score = FactScore::default();
    for sentence in text.split(['.', '!', '?', ';', '\n']) {
        let toks = tokens(sentence);
        let spans = mention_spans(&toks);
        let before = |i: usize| spans.iter().rev().find(|m| m.0 < i).map(|m| (m.1, m.2));
        let after = |i: usize, nth: usize| {
            spans
                .iter()
                .filter(|m| m.0 >= i)
                .nth(nth)
                .map(|m| (m.1, m.2))
        };
        let pair_of = |a: (Color, Shape), b: (Color, Shape)| -> Option<(usize, usize)> {
            let ia = index_of(scene, a)?;
            let ib = index_of(scene, b)?;
            (ia != ib).then_some((ia, ib))
        };
        if let Some(at) = toks.iter().position(|t| t == "closest" || t == "nearest") {
            // "the shape closest to A is B" / "A is closest to B".
            let (a, b) = match before(at) {
                Some(a) => (Some(a), after(at, 0)),
                None => (after(at, 0), after(at, 1)),
            };
            let (Some(a), Some(b)) = (a, b) else { continue };
            score.stated += 1;
            if let Some((ia, ib)) = pair_of(a, b) {
                score.grounded += 1;
                score.correct += (closest(&scene.objects, ia) == Some(ib)) as usize;
            }
            continue;
        }
        let Some((at, len, rel)) = (0..toks.len()).find_map(|i| {
            PHRASES.iter().find_map(|(words, rel)| {
                (toks.len() >= i + words.len()
                    && toks[i..i + words.len()]
                        .iter()
                        .zip(*words)
                        .all(|(t, w)| t == w))
                .then_some((i, words.len(), *rel))
            })
        }) else {
            continue;
        };
        let (Some(a), Some(b)) = (before(at), after(at + len, 0)) else {
            continue;
        };
        score.stated += 1;
        if let Some((ia, ib)) = pair_of(a, b) {
            score.grounded += 1;
            score.correct += (relation(&scene.objects[ia], &scene.objects[ib]) == rel) as usize;
        }
    }
    score
}

/// The position phrase starting at `toks[i]`, as (vertical, horizontal) thirds in the words
/// of [`vertical`] and [`horizontal`], with its length: "in the top left", "on the left",
/// "at the bottom", "in the center" (or "centre", "middle") — the phrases of
/// [`super::spatial::position_phrase`]. "On the left of" (a relation) is not one.
fn position_phrase_at(toks: &[String], i: usize) -> Option<((&str, &str), usize)> {
    let w = |k: usize| toks.get(i + k).map(String::as_str);
    let v = |k| w(k).filter(|t| matches!(*t, "top" | "bottom"));
    let h = |k| w(k).filter(|t| matches!(*t, "left" | "right"));
    if w(1) != Some("the") {
        return None;
    }
    let (place, len) = match w(0)? {
        "in" => match (v(2), h(3)) {
            (Some(v), Some(h)) => ((v, h), 4),
            _ if matches!(w(2), Some("center" | "centre" | "middle")) => (("middle", "center"), 3),
            _ => return None,
        },
        "on" => (("middle", h(2)?), 3),
        "at" => ((v(2)?, "center"), 3),
        _ => return None,
    };
    (w(len) != Some("of")).then_some((place, len))
}

/// The statements of `text` that place an object in the frame: a position phrase
/// ([`position_phrase_at`]) after a colour–shape mention in the same sentence ("A large red
/// circle is in the top left."; each phrase takes the last mention since the previous one).
/// Grounded when the scene has the object; correct when the phrase names the thirds its box
/// centre is in.
pub fn position_facts(text: &str, scene: &Scene) -> FactScore {
    let mut score = FactScore::default();
    for sentence in text.split(['.', '!', '?', ';', '\n']) {
        let toks = tokens(sentence);
        let spans = mention_spans(&toks);
        let (mut i, mut from) = (0, 0);
        while i < toks.len() {
            let Some((place, len)) = position_phrase_at(&toks, i) else {
                i += 1;
                continue;
            };
            if let Some(&(_, c, s)) = spans.iter().rev().find(|m| m.0 >= from && m.0 < i) {
                score.stated += 1;
                if let Some(o) = index_of(scene, (c, s)).map(|k| &scene.objects[k]) {
                    score.grounded += 1;
                    let truth = (vertical(scene, &o.bbox), horizontal(scene, &o.bbox));
                    score.correct += (truth == place) as usize;
                }
            }
            i += len;
            from = i;
        }
    }
    score
}

/// Where captions place objects ([`position_facts`]), over all scenes and over the scenes
/// of one object — where no object has to be told from another, so a model that reads
/// positions from the image at all gets them right.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementScore {
    /// Over every scene.
    pub all: FactScore,
    /// Over the scenes with one object.
    pub one_object: FactScore,
}

impl PlacementScore {
    /// Adds the position statements of `text` about `scene`.
    pub fn add(&mut self, text: &str, scene: &Scene) {
        let f = position_facts(text, scene);
        self.all += f;
        if scene.objects.len() == 1 {
            self.one_object += f;
        }
    }
}

fn index_of(scene: &Scene, (c, s): (Color, Shape)) -> Option<usize> {
    scene
        .objects
        .iter()
        .position(|o| o.color == c && o.shape == s)
}

/// Least intersection-over-union for a box to count as the object's.
pub const MIN_IOU: f64 = 0.5;

fn iou(a: [u32; 4], b: [u32; 4]) -> f64 {
    let w = a[2].min(b[2]).saturating_sub(a[0].max(b[0])) as f64;
    let h = a[3].min(b[3]).saturating_sub(a[1].max(b[1])) as f64;
    let area = |r: [u32; 4]| r[2].saturating_sub(r[0]) as f64 * r[3].saturating_sub(r[1]) as f64;
    let union = area(a) + area(b) - w * h;
    if union <= 0.0 { 0.0 } else { w * h / union }
}

/// The `[xmin,ymin,xmax,ymax]` boxes of `text` (000–999): a box is grounded when its label
/// names an object of the scene (its last colour–shape mention) or the scene's word, and
/// correct when it overlaps that object's box with IoU ≥ [`MIN_IOU`].
pub fn box_facts(text: &str, scene: &Scene) -> FactScore {
    let mut score = FactScore::default();
    for (label, b) in parse_boxes(text) {
        score.stated += 1;
        let toks = tokens(&label);
        let target = match mention_spans(&toks).last() {
            Some(&(_, c, s)) => index_of(scene, (c, s)).map(|i| scene.objects[i].bbox),
            None if toks.iter().any(|t| t == "word" || t == "text") => {
                scene.text.as_ref().map(|t| t.bbox)
            }
            None => None,
        };
        if let Some(gt) = target {
            score.grounded += 1;
            let gt = gt.normalized(scene.width, scene.height);
            score.correct += (iou(b, gt) >= MIN_IOU) as usize;
        }
    }
    score
}

/// A text reading: "The text reads: WORD" (or "says"/"is" after "text"), or a statement that
/// there is no text. Every reading is grounded (the scene has a word or has none); it is
/// correct when the word matches the scene's (case-insensitively) or the scene has no word.
pub fn reading_facts(text: &str, scene: &Scene) -> FactScore {
    let toks = tokens(text);
    let truth = scene.text.as_ref().map(|t| t.word.to_lowercase());
    let says_none = toks.windows(2).any(|w| w == ["no", "text"]);
    let read = toks
        .windows(3)
        .find(|w| w[0] == "text" && matches!(w[1].as_str(), "reads" | "says" | "is"))
        .map(|w| w[2].clone());
    let correct = match (read, says_none) {
        (Some(word), _) => truth.as_deref() == Some(word.as_str()),
        (None, true) => truth.is_none(),
        (None, false) => return FactScore::default(),
    };
    FactScore {
        stated: 1,
        grounded: 1,
        correct: correct as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shapes::captions::detailed_caption;
    use crate::data::shapes::scene::{BBox, Background, Object, SceneConfig, TextItem};
    use crate::data::shapes::tasks::{grounding_answer, ocr_answer, spatial_answer};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn obj(color: Color, shape: Shape, x0: u32, y0: u32) -> Object {
        Object::test_at(color, shape, x0, y0, 10)
    }

    /// Red circle top left, blue square top right, green triangle bottom left.
    fn scene() -> Scene {
        Scene {
            width: 100,
            height: 100,
            background: Background::White,
            objects: vec![
                obj(Color::Red, Shape::Circle, 5, 5),
                obj(Color::Blue, Shape::Square, 80, 8),
                obj(Color::Green, Shape::Triangle, 6, 70),
            ],
            text: None,
        }
    }

    /// One statement, `grounded` and `correct` of it.
    fn one(grounded: usize, correct: usize) -> FactScore {
        FactScore {
            stated: 1,
            grounded,
            correct,
        }
    }

    #[test]
    fn hand_written_relations() {
        let s = scene();
        let f = |t: &str| relation_facts(t, &s);
        assert_eq!(
            f("The red circle is to the left of the blue square."),
            one(1, 1)
        );
        assert_eq!(f("The blue square is left of the red circle"), one(1, 0));
        assert_eq!(f("the red circle is above the green triangle!"), one(1, 1));
        assert_eq!(f("The green triangle is over the red circle."), one(1, 0));
        // The triangle is nearer the circle than the square is.
        assert_eq!(
            f("The shape closest to the red circle is the green triangle."),
            one(1, 1)
        );
        assert_eq!(
            f("The red circle is closest to the blue square."),
            one(1, 0)
        );
        // Not grounded: an object the scene lacks, the same object on both ends.
        assert_eq!(f("The purple cross is below the red circle."), one(0, 0));
        assert_eq!(
            f("The red circle is to the right of the red circle."),
            one(0, 0)
        );
        // Not a relation statement: one object, a position in the frame.
        assert_eq!(
            f("The red circle is on the left. A blue square."),
            FactScore::default()
        );
        let two = f(
            "The red circle is left of the blue square. The blue square is below the green triangle.",
        );
        assert_eq!((two.stated, two.grounded, two.correct), (2, 2, 1));
        assert_eq!(two.accuracy(), 0.5);
    }

    #[test]
    fn gold_answers_hold_and_shuffled_ones_do_not() {
        let [mut gold, mut boxes, mut reads, mut swapped] = [FactScore::default(); 4];
        for seed in 0..300 {
            let cfg = SceneConfig {
                text_prob: 0.5,
                ..SceneConfig::default()
            };
            let s = Scene::random(&mut StdRng::seed_from_u64(seed), &cfg);
            gold += relation_facts(&spatial_answer(&s), &s);
            boxes += box_facts(&grounding_answer(&s), &s);
            reads += reading_facts(&ocr_answer(&s), &s);
            // The same sentences about another scene's objects.
            let other = Scene::random(&mut StdRng::seed_from_u64(seed + 1000), &cfg);
            swapped += relation_facts(&spatial_answer(&other), &s);
        }
        let all =
            |f: FactScore| f.stated > 100 && f.stated == f.grounded && f.grounded == f.correct;
        assert!(all(gold), "{gold:?}");
        assert!(all(boxes), "{boxes:?}");
        assert_eq!((reads.stated, reads.correct), (300, 300));
        assert!(swapped.precision() < 0.3, "{swapped:?}");
    }

    #[test]
    fn hand_written_positions() {
        let s = scene();
        let f = |t: &str| position_facts(t, &s);
        assert_eq!(f("A large red circle is in the top left."), one(1, 1));
        assert_eq!(f("The blue square is on the left."), one(1, 0));
        assert_eq!(f("the green triangle is at the bottom"), one(1, 0));
        assert_eq!(f("The green triangle is in the bottom left"), one(1, 1));
        assert_eq!(f("A purple cross is in the centre."), one(0, 0));
        // Relations, the word's place and a phrase without an object state no position.
        for t in [
            "The red circle is to the left of the blue square.",
            "The red circle is on the left of the green triangle.",
            "The word \"CAT\" is written in black letters in the center.",
            "In the top left. The red circle.",
        ] {
            assert_eq!(f(t), FactScore::default(), "{t}");
        }
        let two = f("A red circle in the top left and a blue square in the center.");
        assert_eq!((two.stated, two.grounded, two.correct), (2, 2, 1));
        // A phrase takes the last mention since the previous phrase, not an earlier one.
        let three = f("A red circle in the top left, at the top.");
        assert_eq!((three.stated, three.correct), (1, 1));
    }

    #[test]
    fn reference_captions_place_every_object_and_other_scenes_do_not() {
        let (mut gold, mut swapped) = (PlacementScore::default(), PlacementScore::default());
        let cfg = SceneConfig::default();
        for seed in 0..300 {
            let s = Scene::random(&mut StdRng::seed_from_u64(seed), &cfg);
            gold.add(&detailed_caption(&s), &s);
            let other = Scene::random(&mut StdRng::seed_from_u64(seed + 1000), &cfg);
            // Another scene's caption, scored only where it names this scene's objects.
            swapped.add(&detailed_caption(&other), &s);
        }
        let objects: usize = (0..300)
            .map(|seed| {
                Scene::random(&mut StdRng::seed_from_u64(seed), &cfg)
                    .objects
                    .len()
            })
            .sum();
        assert_eq!(gold.all.stated, objects);
        assert_eq!(gold.all.correct, objects);
        assert!(gold.one_object.stated > 20 && gold.one_object.stated < objects);
        assert_eq!(gold.one_object.correct, gold.one_object.stated);
        assert!(swapped.all.grounded > 30, "{swapped:?}");
        assert!(swapped.all.accuracy() < 0.4, "{swapped:?}");
    }

    #[test]
    fn boxes_and_readings() {
        let mut s = scene();
        s.text = Some(TextItem {
            word: "CAT".into(),
            scale: 1,
            bbox: BBox {
                x0: 40,
                y0: 40,
                x1: 60,
                y1: 50,
            },
        });
        let f = box_facts(
            "a small red circle [050,050,150,150], a blue square [500,500,600,600], \
             a purple cross [000,000,100,100] and the word \"CAT\" [400,400,600,500]",
            &s,
        );
        assert_eq!((f.stated, f.grounded, f.correct), (4, 3, 2));
        assert_eq!(reading_facts("The text reads: cat.", &s).correct, 1);
        assert_eq!(reading_facts("The text reads: DOG.", &s).correct, 0);
        assert_eq!(
            reading_facts("There is no text in the image.", &s).correct,
            0
        );
        s.text = None;
        assert_eq!(
            reading_facts("There is no text in the image.", &s).correct,
            1
        );
        assert_eq!(reading_facts("A red circle.", &s), FactScore::default());
        assert_eq!(task_facts("count", "x", &s), None);
    }
}
