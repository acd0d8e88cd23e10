//! VQA questions with one-word (or number) answers, one per kind where the scene allows.

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde::{Deserialize, Serialize};

use super::captions::RELATION_MIN_SEPARATION;
use super::scene::{Color, Object, Scene, Shape};
use super::spatial::{Relation, horizontal, relation, separation, vertical};

/// What a question asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QaKind {
    /// The colour of an object.
    Colour,
    /// The shape of an object.
    Shape,
    /// How many objects (of a colour / shape).
    Count,
    /// Where an object is in the image.
    Position,
    /// The spatial relation of two objects.
    Relation,
    /// The rendered word.
    Text,
}

impl QaKind {
    /// Every kind, in report order.
    pub const ALL: [QaKind; 6] = [
        QaKind::Colour,
        QaKind::Shape,
        QaKind::Count,
        QaKind::Position,
        QaKind::Relation,
        QaKind::Text,
    ];

    /// The name used in files and reports.
    pub fn name(self) -> &'static str {
        match self {
            QaKind::Colour => "colour",
            QaKind::Shape => "shape",
            QaKind::Count => "count",
            QaKind::Position => "position",
            QaKind::Relation => "relation",
            QaKind::Text => "text",
        }
    }
}

/// One question with its gold answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Qa {
    /// What it asks about.
    pub kind: QaKind,
    /// The question as asked, ending with [`SHORT_ANSWER`].
    pub question: String,
    /// The gold answer: one word or a number in digits.
    pub answer: String,
}

/// Appended to every question (LLaVA's instruction for short answers).
pub const SHORT_ANSWER: &str = "\nAnswer the question using a single word or phrase.";

fn qa(kind: QaKind, question: String, answer: impl Into<String>) -> Qa {
    Qa {
        kind,
        question: question + SHORT_ANSWER,
        answer: answer.into(),
    }
}

/// Whether a centre coordinate lies within `margin` pixels of a third of `side`.
fn near_third(c: f64, side: f64, margin: f64) -> bool {
    (c - side / 3.0).abs() < margin || (c - 2.0 * side / 3.0).abs() < margin
}

fn colour_questions(scene: &Scene) -> Vec<Qa> {
    scene
        .objects
        .iter()
        .filter(|o| scene.objects.iter().filter(|p| p.shape == o.shape).count() == 1)
        .map(|o| {
            qa(
                QaKind::Colour,
                format!("What colour is the {}?", o.shape.word()),
                o.color.word(),
            )
        })
        .collect()
}

fn shape_questions(scene: &Scene) -> Vec<Qa> {
    scene
        .objects
        .iter()
        .filter(|o| scene.objects.iter().filter(|p| p.color == o.color).count() == 1)
        .map(|o| {
            qa(
                QaKind::Shape,
                format!("What shape is the {} object?", o.color.word()),
                o.shape.word(),
            )
        })
        .collect()
}

fn count_questions<R: Rng>(scene: &Scene, rng: &mut R) -> Vec<Qa> {
    let color = *Color::ALL.choose(rng).expect("non-empty");
    let shape = *Shape::ALL.choose(rng).expect("non-empty");
    let n_color = scene.objects.iter().filter(|o| o.color == color).count();
    let n_shape = scene.objects.iter().filter(|o| o.shape == shape).count();
    vec![
        qa(
            QaKind::Count,
            "How many shapes are there in the image?".into(),
            scene.objects.len().to_string(),
        ),
        qa(
            QaKind::Count,
            format!("How many {} shapes are there?", color.word()),
            n_color.to_string(),
        ),
        qa(
            QaKind::Count,
            format!("How many {} are there?", shape.plural()),
            n_shape.to_string(),
        ),
    ]
}

fn position_questions(scene: &Scene) -> Vec<Qa> {
    let margin = scene.width.min(scene.height) as f64 / 32.0;
    let mut out = Vec::new();
    for o in &scene.objects {
        let (cx, cy) = o.bbox.center();
        if !near_third(cx, scene.width as f64, margin) {
            out.push(qa(
                QaKind::Position,
                format!(
                    "Is the {} on the left, in the center or on the right of the image?",
                    o.name()
                ),
                horizontal(scene, &o.bbox),
            ));
        }
        if !near_third(cy, scene.height as f64, margin) {
            out.push(qa(
                QaKind::Position,
                format!(
                    "Is the {} at the top, in the middle or at the bottom of the image?",
                    o.name()
                ),
                vertical(scene, &o.bbox),
            ));
        }
    }
    out
}

/// The pairs of objects whose relation is clear enough to state or ask about.
pub fn clear_pairs(scene: &Scene) -> Vec<(&Object, &Object)> {
    let min_sep = scene.width.min(scene.height) as f64 * RELATION_MIN_SEPARATION;
    let mut out = Vec::new();
    for a in &scene.objects {
        for b in &scene.objects {
            if a != b && separation(a, b) >= min_sep {
                out.push((a, b));
            }
        }
    }
    out
}

fn relation_questions<R: Rng>(scene: &Scene, rng: &mut R) -> Vec<Qa> {
    let mut out = Vec::new();
    for (a, b) in clear_pairs(scene) {
        let r = relation(a, b);
        if rng.random_bool(0.5) {
            let q = if r.horizontal() {
                format!(
                    "Is the {} to the left or to the right of the {}?",
                    a.name(),
                    b.name()
                )
            } else {
                format!("Is the {} above or below the {}?", a.name(), b.name())
            };
            out.push(qa(QaKind::Relation, q, r.word()));
        } else {
            let truth = rng.random_bool(0.5);
            let asked = if truth {
                r
            } else {
                match r {
                    Relation::LeftOf => Relation::RightOf,
                    Relation::RightOf => Relation::LeftOf,
                    Relation::Above => Relation::Below,
                    Relation::Below => Relation::Above,
                }
            };
            out.push(qa(
                QaKind::Relation,
                format!("Is the {} {} the {}?", a.name(), asked.phrase(), b.name()),
                if truth { "yes" } else { "no" },
            ));
        }
    }
    out
}

/// Pairs (object, its nearest other object) by centre distance, for scenes with at least
/// three objects, where the nearest is clear (10% closer than the runner-up).
pub fn clear_closest(scene: &Scene) -> Vec<(&Object, &Object)> {
    if scene.objects.len() < 3 {
        return Vec::new();
    }
    let dist = |a: &Object, b: &Object| {
        let (ax, ay) = a.bbox.center();
        let (bx, by) = b.bbox.center();
        ((ax - bx).powi(2) + (ay - by).powi(2)).sqrt()
    };
    let mut out = Vec::new();
    for (i, a) in scene.objects.iter().enumerate() {
        let mut d: Vec<(f64, &Object)> = scene
            .objects
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, b)| (dist(a, b), b))
            .collect();
        d.sort_by(|x, y| x.0.total_cmp(&y.0));
        if d[0].0 * 1.1 < d[1].0 {
            out.push((a, d[0].1));
        }
    }
    out
}

/// "Which shape is closest to the red circle?" → "blue square" for each [`clear_closest`]
/// pair (two-word answers, so not part of [`questions`]; the spatial specialist's task data
/// uses them).
pub fn closest_questions(scene: &Scene) -> Vec<Qa> {
    clear_closest(scene)
        .into_iter()
        .map(|(a, b)| {
            qa(
                QaKind::Relation,
                format!("Which shape is closest to the {}?", a.name()),
                b.name(),
            )
        })
        .collect()
}

fn text_questions<R: Rng>(scene: &Scene, rng: &mut R) -> Vec<Qa> {
    let any = "Is there any text in the image?".to_string();
    match &scene.text {
        Some(_) if rng.random_bool(0.2) => vec![qa(QaKind::Text, any, "yes")],
        Some(t) => vec![qa(
            QaKind::Text,
            "What word is written in the image?".into(),
            t.word.clone(),
        )],
        None => vec![qa(QaKind::Text, any, "no")],
    }
}

/// All candidate questions of one kind for a scene (may be empty, e.g. colour questions when
/// every shape occurs twice).
pub fn questions_of_kind<R: Rng>(scene: &Scene, kind: QaKind, rng: &mut R) -> Vec<Qa> {
    match kind {
        QaKind::Colour => colour_questions(scene),
        QaKind::Shape => shape_questions(scene),
        QaKind::Count => count_questions(scene, rng),
        QaKind::Position => position_questions(scene),
        QaKind::Relation => relation_questions(scene, rng),
        QaKind::Text => text_questions(scene, rng),
    }
}

/// One question per kind where the scene allows one (picked at random among the
/// candidates), in shuffled order.
pub fn questions<R: Rng>(scene: &Scene, rng: &mut R) -> Vec<Qa> {
    let mut out = Vec::new();
    for kind in QaKind::ALL {
        let cands = questions_of_kind(scene, kind, rng);
        if let Some(q) = cands.choose(rng) {
            out.push(q.clone());
        }
    }
    out.shuffle(rng);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shapes::scene::SceneConfig;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn questions_are_deterministic_and_answers_are_single_words() {
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..100 {
            let scene = Scene::random(&mut StdRng::seed_from_u64(seed), &SceneConfig::default());
            let qs = questions(&scene, &mut StdRng::seed_from_u64(seed));
            assert_eq!(qs, questions(&scene, &mut StdRng::seed_from_u64(seed)));
            for q in &qs {
                assert!(!q.answer.contains(' '), "{q:?}");
                assert!(q.question.ends_with(SHORT_ANSWER));
                kinds.insert(q.kind);
            }
        }
        assert_eq!(kinds.len(), QaKind::ALL.len());
    }

    #[test]
    fn closest_questions_name_the_nearest_object() {
        let mut asked = 0;
        for seed in 0..50 {
            let scene = Scene::random(&mut StdRng::seed_from_u64(seed), &SceneConfig::default());
            for q in closest_questions(&scene) {
                asked += 1;
                let i = scene
                    .objects
                    .iter()
                    .position(|o| q.question.contains(&format!("the {}?", o.name())))
                    .unwrap();
                let j = crate::data::shapes::spatial::closest(&scene.objects, i).unwrap();
                assert_eq!(q.answer, scene.objects[j].name());
            }
        }
        assert!(asked > 0);
    }

    #[test]
    fn answers_match_the_scene() {
        let scene = Scene::random(&mut StdRng::seed_from_u64(5), &SceneConfig::default());
        let mut rng = StdRng::seed_from_u64(0);
        let count = &questions_of_kind(&scene, QaKind::Count, &mut rng)[0];
        assert_eq!(count.answer, scene.objects.len().to_string());
        for q in questions_of_kind(&scene, QaKind::Colour, &mut rng) {
            assert!(
                scene
                    .objects
                    .iter()
                    .any(|o| o.color.word() == q.answer && q.question.contains(o.shape.word()))
            );
        }
    }
}
