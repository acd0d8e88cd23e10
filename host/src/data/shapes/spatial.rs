//! Position words and spatial relations, computed from box centres; captions, questions and
//! specialist answers all use these so the vocabulary stays consistent.

use super::scene::{BBox, Object, Scene};

/// Which third of a side of `side` pixels the coordinate `pos` is in: 0, 1 or 2.
pub fn third(pos: f64, side: f64) -> usize {
    if pos < side / 3.0 {
        0
    } else if pos > 2.0 * side / 3.0 {
        2
    } else {
        1
    }
}

/// Horizontal third of the image: `left`, `center` or `right`.
pub fn horizontal(scene: &Scene, b: &BBox) -> &'static str {
    ["left", "center", "right"][third(b.center().0, scene.width as f64)]
}

/// Vertical third of the image: `top`, `middle` or `bottom`.
pub fn vertical(scene: &Scene, b: &BBox) -> &'static str {
    ["top", "middle", "bottom"][third(b.center().1, scene.height as f64)]
}

/// Where a box is, as a phrase: "in the top left", "at the top", "on the left", "in the
/// center", ...
pub fn position_phrase(scene: &Scene, b: &BBox) -> String {
    match (vertical(scene, b), horizontal(scene, b)) {
        ("middle", "center") => "in the center".into(),
        ("middle", h) => format!("on the {h}"),
        (v, "center") => format!("at the {v}"),
        (v, h) => format!("in the {v} {h}"),
    }
}

/// The relation of `a` to `b` along the axis where their centres differ most:
/// `left of`, `right of`, `above` or `below`.
pub fn relation(a: &Object, b: &Object) -> Relation {
    let (ax, ay) = a.bbox.center();
    let (bx, by) = b.bbox.center();
    let (dx, dy) = (bx - ax, by - ay);
    if dx.abs() >= dy.abs() {
        if dx > 0.0 {
            Relation::LeftOf
        } else {
            Relation::RightOf
        }
    } else if dy > 0.0 {
        Relation::Above
    } else {
        Relation::Below
    }
}

/// The larger centre offset between two objects in pixels (how clear their relation is).
pub fn separation(a: &Object, b: &Object) -> f64 {
    let (ax, ay) = a.bbox.center();
    let (bx, by) = b.bbox.center();
    (bx - ax).abs().max((by - ay).abs())
}

/// The other object whose centre is nearest to `objects[i]`'s (ties: the first).
pub fn closest(objects: &[Object], i: usize) -> Option<usize> {
    let (ax, ay) = objects[i].bbox.center();
    objects
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != i)
        .map(|(j, o)| {
            let (bx, by) = o.bbox.center();
            (j, (bx - ax).powi(2) + (by - ay).powi(2))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(j, _)| j)
}

/// A spatial relation between two objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// Centre further left.
    LeftOf,
    /// Centre further right.
    RightOf,
    /// Centre higher.
    Above,
    /// Centre lower.
    Below,
}

impl Relation {
    /// The phrase used in captions: "to the left of", "to the right of", "above", "below".
    pub fn phrase(self) -> &'static str {
        match self {
            Relation::LeftOf => "to the left of",
            Relation::RightOf => "to the right of",
            Relation::Above => "above",
            Relation::Below => "below",
        }
    }

    /// The one-word answer: `left`, `right`, `above`, `below`.
    pub fn word(self) -> &'static str {
        match self {
            Relation::LeftOf => "left",
            Relation::RightOf => "right",
            Relation::Above => "above",
            Relation::Below => "below",
        }
    }

    /// Whether the relation is horizontal.
    pub fn horizontal(self) -> bool {
        matches!(self, Relation::LeftOf | Relation::RightOf)
    }
}
