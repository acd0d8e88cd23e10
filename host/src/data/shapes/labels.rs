//! Dense labels of a scene for pretraining a vision tower: what covers each patch of the
//! image (background or an object's colour, shape and where that object is; text ink and
//! which word it spells), plus the scene-level object count and the set of colour–shape
//! pairs present. They cover what captions and questions talk about: colour, shape,
//! position, relations (through the objects' centres), count, text.

use super::render::inside;
use super::scene::{Color, Scene, Shape, WORDS};
use super::spatial::third;

/// Classes of [`SceneLabels::color`]: background, then [`Color::ALL`].
pub const COLOR_CLASSES: usize = Color::ALL.len() + 1;
/// Classes of [`SceneLabels::shape`]: background, then [`Shape::ALL`].
pub const SHAPE_CLASSES: usize = Shape::ALL.len() + 1;
/// Classes of [`SceneLabels::count`]: 1 to [`super::scene::MAX_OBJECTS`] objects.
pub const COUNT_CLASSES: usize = super::scene::MAX_OBJECTS;
/// Entries of [`SceneLabels::pairs`]: one per colour × shape.
pub const PAIRS: usize = Color::ALL.len() * Shape::ALL.len();
/// Classes of [`SceneLabels::column`] and [`SceneLabels::row`]: the image's thirds.
pub const THIRDS: usize = 3;
/// Classes of [`SceneLabels::word`]: the index in [`WORDS`].
pub const WORD_CLASSES: usize = WORDS.len();
/// A patch label that does not apply (background for an object's property, no text for
/// the word); the value cross-entropy losses skip.
pub const NO_LABEL: i64 = -100;

/// Labels of one scene on a `grid × grid` patch grid, patches in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneLabels {
    /// Per patch: 0 for background, 1 + the index in [`Color::ALL`] of the object that
    /// covers the patch most (when it covers at least an eighth of it).
    pub color: Vec<i64>,
    /// Per patch: 0 for background, 1 + the index in [`Shape::ALL`] of that object.
    pub shape: Vec<i64>,
    /// Per patch: the horizontal third (0 left, 1 center, 2 right) of the centre of the
    /// object that covers it, as position questions use it; [`NO_LABEL`] on background.
    pub column: Vec<i64>,
    /// Per patch: the vertical third (0 top, 1 middle, 2 bottom) of that object's centre;
    /// [`NO_LABEL`] on background.
    pub row: Vec<i64>,
    /// Per patch: that object's centre as fractions of the image's width and height
    /// (relations compare centres); `[0, 0]` on background.
    pub center: Vec<[f32; 2]>,
    /// Per patch: 1 when text ink covers part of it.
    pub text: Vec<i64>,
    /// Per patch with text ink: the index of the word in [`WORDS`]; [`NO_LABEL`] elsewhere
    /// and for a word outside the list.
    pub word: Vec<i64>,
    /// Number of objects minus one.
    pub count: i64,
    /// 1.0 at `color_index · 5 + shape_index` for each object present.
    pub pairs: Vec<f32>,
}

/// Index of `c` in [`Color::ALL`].
fn color_index(c: Color) -> usize {
    Color::ALL.iter().position(|&x| x == c).expect("in ALL")
}

/// Index of `s` in [`Shape::ALL`].
fn shape_index(s: Shape) -> usize {
    Shape::ALL.iter().position(|&x| x == s).expect("in ALL")
}

/// The labels of `scene` on a `grid × grid` patch grid over its image (pixel `p` of a side
/// of `n` pixels falls in patch row/column `p · grid / n`).
pub fn scene_labels(scene: &Scene, grid: usize) -> SceneLabels {
    let (w, h) = (scene.width as usize, scene.height as usize);
    let grid = grid.max(1);
    let cell = |p: usize, side: usize| (p * grid / side).min(grid - 1);
    let n_obj = scene.objects.len();
    // covered[patch][object] pixel counts; the last column is text ink.
    let mut covered = vec![vec![0u32; n_obj + 1]; grid * grid];
    for (i, o) in scene.objects.iter().enumerate() {
        let b = o.bbox;
        for y in b.y0..b.y1.min(scene.height) {
            for x in b.x0..b.x1.min(scene.width) {
                if inside(o.shape, &b, x as f64 + 0.5, y as f64 + 0.5) {
                    covered[cell(y as usize, h) * grid + cell(x as usize, w)][i] += 1;
                }
            }
        }
    }
    if let Some(t) = &scene.text {
        // The word's box stands for its ink: glyphs fill most of it.
        let b = t.bbox;
        for y in b.y0..b.y1.min(scene.height) {
            for x in b.x0..b.x1.min(scene.width) {
                covered[cell(y as usize, h) * grid + cell(x as usize, w)][n_obj] += 1;
            }
        }
    }
    let patch_px = ((w * h) / (grid * grid)).max(1) as u32;
    let word = scene
        .text
        .as_ref()
        .and_then(|t| WORDS.iter().position(|&x| x == t.word))
        .map_or(NO_LABEL, |i| i as i64);
    let mut labels = SceneLabels {
        color: vec![0; grid * grid],
        shape: vec![0; grid * grid],
        column: vec![NO_LABEL; grid * grid],
        row: vec![NO_LABEL; grid * grid],
        center: vec![[0.0; 2]; grid * grid],
        text: vec![0; grid * grid],
        word: vec![NO_LABEL; grid * grid],
        count: n_obj.saturating_sub(1) as i64,
        pairs: vec![0.0; PAIRS],
    };
    for (p, c) in covered.iter().enumerate() {
        let best = (0..n_obj).max_by_key(|&i| (c[i], std::cmp::Reverse(i)));
        if let Some(i) = best.filter(|&i| c[i] * 8 >= patch_px) {
            let o = &scene.objects[i];
            labels.color[p] = 1 + color_index(o.color) as i64;
            labels.shape[p] = 1 + shape_index(o.shape) as i64;
            let (cx, cy) = o.bbox.center();
            labels.column[p] = third(cx, w as f64) as i64;
            labels.row[p] = third(cy, h as f64) as i64;
            labels.center[p] = [(cx / w as f64) as f32, (cy / h as f64) as f32];
        }
        labels.text[p] = i64::from(c[n_obj] > 0);
        if c[n_obj] > 0 {
            labels.word[p] = word;
        }
    }
    for o in &scene.objects {
        labels.pairs[color_index(o.color) * Shape::ALL.len() + shape_index(o.shape)] = 1.0;
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shapes::scene::{BBox, Background, Object, TextItem};

    fn scene(objects: Vec<Object>, text: Option<TextItem>) -> Scene {
        Scene {
            width: 64,
            height: 64,
            background: Background::ALL[0],
            objects,
            text,
        }
    }

    #[test]
    fn patches_name_the_object_that_covers_them() {
        let s = scene(
            vec![
                Object::test_at(Color::Red, Shape::Square, 0, 0, 16),
                Object::test_at(Color::Blue, Shape::Circle, 40, 40, 16),
            ],
            None,
        );
        let l = scene_labels(&s, 8);
        // The square fills patches (0,0), (0,1), (1,0), (1,1).
        for p in [0, 1, 8, 9] {
            assert_eq!((l.color[p], l.shape[p]), (1, 2), "patch {p}");
        }
        // The circle's centre (48, 48) is the corner of patches (5,5), (5,6), (6,5), (6,6).
        for p in [5 * 8 + 5, 5 * 8 + 6, 6 * 8 + 5, 6 * 8 + 6] {
            assert_eq!((l.color[p], l.shape[p]), (3, 1), "patch {p}");
        }
        // The square's centre (8, 8) is in the top left third, the circle's in the bottom right.
        for p in [0, 1, 8, 9] {
            assert_eq!((l.column[p], l.row[p]), (0, 0), "patch {p}");
            assert_eq!(l.center[p], [0.125, 0.125]);
        }
        assert_eq!((l.column[5 * 8 + 5], l.row[5 * 8 + 5]), (2, 2));
        assert_eq!(l.center[6 * 8 + 6], [0.75, 0.75]);
        assert_eq!(l.color[3 * 8 + 3], 0, "background in between");
        assert_eq!(
            (l.column[3 * 8 + 3], l.row[3 * 8 + 3]),
            (NO_LABEL, NO_LABEL)
        );
        assert_eq!(l.color.iter().filter(|&&c| c != 0).count(), 8);
        assert_eq!(l.count, 1);
        assert_eq!(l.pairs.iter().sum::<f32>(), 2.0);
        assert_eq!(l.pairs[1], 1.0, "red square");
        assert_eq!(l.pairs[2 * 5], 1.0, "blue circle");
        assert!(l.text.iter().all(|&t| t == 0));
        assert!(l.word.iter().all(|&t| t == NO_LABEL));
    }

    #[test]
    fn text_marks_the_patches_of_its_box() {
        let t = TextItem {
            word: "CAT".into(),
            scale: 1,
            bbox: BBox {
                x0: 20,
                y0: 50,
                x1: 37,
                y1: 57,
            },
        };
        let s = scene(
            vec![Object::test_at(Color::Green, Shape::Cross, 2, 2, 12)],
            Some(t),
        );
        let l = scene_labels(&s, 8);
        let marked: Vec<usize> = (0..64).filter(|&p| l.text[p] == 1).collect();
        assert_eq!(
            marked,
            vec![
                6 * 8 + 2,
                6 * 8 + 3,
                6 * 8 + 4,
                7 * 8 + 2,
                7 * 8 + 3,
                7 * 8 + 4
            ]
        );
        assert_eq!(l.count, 0);
        let cat = WORDS.iter().position(|&w| w == "CAT").unwrap() as i64;
        for p in 0..64 {
            let want = if marked.contains(&p) { cat } else { NO_LABEL };
            assert_eq!(l.word[p], want, "patch {p}");
        }
        let mut unknown = s.clone();
        unknown.text.as_mut().unwrap().word = "ZEBRA".into();
        assert!(
            scene_labels(&unknown, 8)
                .word
                .iter()
                .all(|&t| t == NO_LABEL)
        );
    }
}
