//! Scenes: the ground truth of one ShapesWorld image (background, 1–4 non-overlapping
//! objects, and sometimes one rendered word), drawn at random from a seeded RNG.

use rand::Rng;
use rand::seq::IndexedRandom;
use serde::{Deserialize, Serialize};

/// A shape an object can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// A filled disc.
    Circle,
    /// A filled axis-aligned square.
    Square,
    /// An upright isosceles triangle.
    Triangle,
    /// A square rotated by 45°.
    Diamond,
    /// A plus sign.
    Cross,
}

impl Shape {
    /// Every shape, in a fixed order.
    pub const ALL: [Shape; 5] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Diamond,
        Shape::Cross,
    ];

    /// The caption word (singular).
    pub fn word(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Diamond => "diamond",
            Shape::Cross => "cross",
        }
    }

    /// The plural caption word.
    pub fn plural(self) -> &'static str {
        match self {
            Shape::Cross => "crosses",
            Shape::Circle => "circles",
            Shape::Square => "squares",
            Shape::Triangle => "triangles",
            Shape::Diamond => "diamonds",
        }
    }

    /// Parses a singular or plural caption word.
    pub fn from_word(w: &str) -> Option<Shape> {
        Shape::ALL
            .into_iter()
            .find(|s| s.word() == w || s.plural() == w)
    }
}

/// An object colour: a fixed palette of visually distinct named colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    /// Red.
    Red,
    /// Green.
    Green,
    /// Blue.
    Blue,
    /// Yellow.
    Yellow,
    /// Purple.
    Purple,
    /// Orange.
    Orange,
}

impl Color {
    /// Every colour, in a fixed order.
    pub const ALL: [Color; 6] = [
        Color::Red,
        Color::Green,
        Color::Blue,
        Color::Yellow,
        Color::Purple,
        Color::Orange,
    ];

    /// The caption word.
    pub fn word(self) -> &'static str {
        match self {
            Color::Red => "red",
            Color::Green => "green",
            Color::Blue => "blue",
            Color::Yellow => "yellow",
            Color::Purple => "purple",
            Color::Orange => "orange",
        }
    }

    /// Parses a caption word (`violet` is read as purple).
    pub fn from_word(w: &str) -> Option<Color> {
        if w == "violet" {
            return Some(Color::Purple);
        }
        Color::ALL.into_iter().find(|c| c.word() == w)
    }

    /// The RGB value drawn.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Color::Red => [220, 30, 30],
            Color::Green => [30, 160, 50],
            Color::Blue => [30, 70, 220],
            Color::Yellow => [245, 215, 0],
            Color::Purple => [140, 50, 180],
            Color::Orange => [250, 130, 0],
        }
    }
}

/// The background of a scene (never one of the object colours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Background {
    /// White.
    White,
    /// Light gray.
    Gray,
    /// Black.
    Black,
}

impl Background {
    /// Every background.
    pub const ALL: [Background; 3] = [Background::White, Background::Gray, Background::Black];

    /// The caption word.
    pub fn word(self) -> &'static str {
        match self {
            Background::White => "white",
            Background::Gray => "gray",
            Background::Black => "black",
        }
    }

    /// The RGB value drawn.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Background::White => [255, 255, 255],
            Background::Gray => [190, 190, 190],
            Background::Black => [20, 20, 20],
        }
    }

    /// The colour text is drawn in on this background (black or white).
    pub fn ink(self) -> [u8; 3] {
        match self {
            Background::Black => [255, 255, 255],
            _ => [0, 0, 0],
        }
    }

    /// The caption word for [`ink`](Self::ink).
    pub fn ink_word(self) -> &'static str {
        match self {
            Background::Black => "white",
            _ => "black",
        }
    }
}

/// Object size class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    /// About a fifth of the image side.
    Small,
    /// About a third of the image side.
    Large,
}

impl Size {
    /// The caption word.
    pub fn word(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Large => "large",
        }
    }

    /// Side of the bounding box in pixels for an image of side `image`.
    pub fn pixels(self, image: u32) -> u32 {
        let f = match self {
            Size::Small => 0.19,
            Size::Large => 0.31,
        };
        ((image as f64 * f).round() as u32).max(5)
    }
}

/// A pixel box: `x0..x1` × `y0..y1` (max exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BBox {
    /// Left column (inclusive).
    pub x0: u32,
    /// Top row (inclusive).
    pub y0: u32,
    /// Right column (exclusive).
    pub x1: u32,
    /// Bottom row (exclusive).
    pub y1: u32,
}

impl BBox {
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }

    /// Centre in pixel coordinates.
    pub fn center(&self) -> (f64, f64) {
        (
            (self.x0 + self.x1) as f64 / 2.0,
            (self.y0 + self.y1) as f64 / 2.0,
        )
    }

    /// Whether the boxes, each grown by `gap` pixels, intersect.
    pub fn near(&self, other: &BBox, gap: u32) -> bool {
        self.x0 < other.x1 + gap
            && other.x0 < self.x1 + gap
            && self.y0 < other.y1 + gap
            && other.y0 < self.y1 + gap
    }

    /// The box as VILA's 000–999 normalised `[xmin, ymin, xmax, ymax]`.
    pub fn normalized(&self, width: u32, height: u32) -> [u32; 4] {
        let n = |v: u32, side: u32| ((v as u64 * 1000 / side.max(1) as u64) as u32).min(999);
        [
            n(self.x0, width),
            n(self.y0, height),
            n(self.x1, width),
            n(self.y1, height),
        ]
    }

    /// The normalised box written as `[xmin,ymin,xmax,ymax]` with 3-digit integers.
    pub fn vila_string(&self, width: u32, height: u32) -> String {
        let [a, b, c, d] = self.normalized(width, height);
        format!("[{a:03},{b:03},{c:03},{d:03}]")
    }
}

/// One object of a scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Object {
    /// Its shape.
    pub shape: Shape,
    /// Its colour.
    pub color: Color,
    /// Its size class.
    pub size: Size,
    /// Its bounding box in pixels.
    pub bbox: BBox,
}

impl Object {
    /// "red circle".
    pub fn name(&self) -> String {
        format!("{} {}", self.color.word(), self.shape.word())
    }
}

#[cfg(test)]
impl Object {
    /// A small object whose box is the `side`-pixel square at (`x0`, `y0`), for tests.
    pub(crate) fn test_at(color: Color, shape: Shape, x0: u32, y0: u32, side: u32) -> Self {
        Object {
            shape,
            color,
            size: Size::Small,
            bbox: BBox {
                x0,
                y0,
                x1: x0 + side,
                y1: y0 + side,
            },
        }
    }
}

/// A rendered word (the OCR target).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TextItem {
    /// The word, uppercase A–Z.
    pub word: String,
    /// Pixel scale of the 5×7 font.
    pub scale: u32,
    /// Its bounding box in pixels.
    pub bbox: BBox,
}

/// Words a scene may show (none is a colour or shape word).
pub const WORDS: [&str; 16] = [
    "CAT", "DOG", "SUN", "MOON", "FISH", "BIRD", "TREE", "BOOK", "CAKE", "SHIP", "FROG", "LAMP",
    "KEY", "CUP", "HAT", "BEE",
];

/// The ground truth of one image.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scene {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Background.
    pub background: Background,
    /// The objects (distinct colour–shape pairs, non-overlapping boxes).
    pub objects: Vec<Object>,
    /// The rendered word, if any.
    pub text: Option<TextItem>,
}

/// How [`Scene::random`] draws scenes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SceneConfig {
    /// Image side in pixels (square images).
    pub image_size: u32,
    /// Fewest objects per scene (≥ 1).
    pub min_objects: usize,
    /// Most objects per scene (≤ 4).
    pub max_objects: usize,
    /// Probability that a scene shows a word.
    pub text_prob: f64,
}

impl Default for SceneConfig {
    fn default() -> Self {
        SceneConfig {
            image_size: 64,
            min_objects: 1,
            max_objects: 4,
            text_prob: 0.3,
        }
    }
}

/// Smallest supported image side.
pub const MIN_IMAGE_SIZE: u32 = 32;
/// Largest supported image side.
pub const MAX_IMAGE_SIZE: u32 = 1024;
/// Most objects per scene.
pub const MAX_OBJECTS: usize = 4;

impl SceneConfig {
    /// Checks the ranges; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_IMAGE_SIZE..=MAX_IMAGE_SIZE).contains(&self.image_size) {
            return Err(format!(
                "image_size {} is out of range: use {MIN_IMAGE_SIZE}..={MAX_IMAGE_SIZE} pixels",
                self.image_size
            ));
        }
        if self.min_objects == 0 || self.min_objects > self.max_objects {
            return Err(format!(
                "min_objects {} must be at least 1 and at most max_objects {}",
                self.min_objects, self.max_objects
            ));
        }
        if self.max_objects > MAX_OBJECTS {
            return Err(format!(
                "max_objects {} is more than {MAX_OBJECTS}",
                self.max_objects
            ));
        }
        if !(0.0..=1.0).contains(&self.text_prob) {
            return Err(format!("text_prob {} is not in 0..=1", self.text_prob));
        }
        Ok(())
    }
}

const PLACE_TRIES: usize = 200;

fn place<R: Rng>(rng: &mut R, w: u32, h: u32, side: u32, taken: &[BBox], gap: u32) -> Option<BBox> {
    place_rect(rng, side, side, w, h, taken, gap)
}

fn place_rect<R: Rng>(
    rng: &mut R,
    bw: u32,
    bh: u32,
    w: u32,
    h: u32,
    taken: &[BBox],
    gap: u32,
) -> Option<BBox> {
    let margin = 1;
    if w < bw + 2 * margin || h < bh + 2 * margin {
        return None;
    }
    for _ in 0..PLACE_TRIES {
        let x0 = rng.random_range(margin..=w - bw - margin);
        let y0 = rng.random_range(margin..=h - bh - margin);
        let b = BBox {
            x0,
            y0,
            x1: x0 + bw,
            y1: y0 + bh,
        };
        if taken.iter().all(|t| !t.near(&b, gap)) {
            return Some(b);
        }
    }
    None
}

impl Scene {
    /// Draws a scene; the same RNG state gives the same scene. Objects that find no free place
    /// are dropped (a scene always has at least one object); the word is dropped likewise.
    pub fn random<R: Rng>(rng: &mut R, cfg: &SceneConfig) -> Scene {
        let side = cfg.image_size.clamp(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE);
        let background = *Background::ALL.choose(rng).expect("non-empty");
        let max = cfg.max_objects.clamp(1, MAX_OBJECTS);
        let min = cfg.min_objects.clamp(1, max);
        let n = rng.random_range(min..=max);
        let gap = (side / 32).max(2);
        let mut objects: Vec<Object> = Vec::new();
        let mut taken: Vec<BBox> = Vec::new();
        let show_text = rng.random_bool(cfg.text_prob.clamp(0.0, 1.0));
        // The word first: it is the widest thing to place.
        let text = if show_text {
            let word = WORDS.choose(rng).expect("non-empty").to_string();
            let scale = (side / 64).max(1);
            let tw = (word.len() as u32 * 6 - 1) * scale;
            let th = 7 * scale;
            place_rect(rng, tw, th, side, side, &taken, gap).map(|bbox| {
                taken.push(bbox);
                TextItem { word, scale, bbox }
            })
        } else {
            None
        };
        for _ in 0..n {
            let (shape, color) = loop {
                let s = *Shape::ALL.choose(rng).expect("non-empty");
                let c = *Color::ALL.choose(rng).expect("non-empty");
                if !objects.iter().any(|o| o.shape == s && o.color == c) {
                    break (s, c);
                }
            };
            let size = if rng.random_bool(0.5) {
                Size::Small
            } else {
                Size::Large
            };
            let mut placed =
                place(rng, side, side, size.pixels(side), &taken, gap).map(|b| (size, b));
            if placed.is_none() && size == Size::Large {
                placed = place(rng, side, side, Size::Small.pixels(side), &taken, gap)
                    .map(|b| (Size::Small, b));
            }
            if let Some((size, bbox)) = placed {
                taken.push(bbox);
                objects.push(Object {
                    shape,
                    color,
                    size,
                    bbox,
                });
            }
        }
        if objects.is_empty() {
            // Only possible when the word filled the image: drop the word and retry once.
            let bbox = place(rng, side, side, Size::Small.pixels(side), &[], gap)
                .expect("an empty image fits a small object");
            objects.push(Object {
                shape: Shape::Circle,
                color: Color::Red,
                size: Size::Small,
                bbox,
            });
            return Scene {
                width: side,
                height: side,
                background,
                objects,
                text: None,
            };
        }
        Scene {
            width: side,
            height: side,
            background,
            objects,
            text,
        }
    }

    /// The object named by a colour and shape, if present.
    pub fn find(&self, color: Color, shape: Shape) -> Option<&Object> {
        self.objects
            .iter()
            .find(|o| o.color == color && o.shape == shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn random_is_deterministic_and_valid() {
        let cfg = SceneConfig::default();
        for seed in 0..300 {
            let a = Scene::random(&mut StdRng::seed_from_u64(seed), &cfg);
            let b = Scene::random(&mut StdRng::seed_from_u64(seed), &cfg);
            assert_eq!(a, b);
            assert!((1..=4).contains(&a.objects.len()));
            let mut boxes: Vec<BBox> = a.objects.iter().map(|o| o.bbox).collect();
            boxes.extend(a.text.iter().map(|t| t.bbox));
            for (i, x) in boxes.iter().enumerate() {
                assert!(x.x1 <= a.width && x.y1 <= a.height && x.x0 < x.x1 && x.y0 < x.y1);
                for y in &boxes[i + 1..] {
                    assert!(!x.near(y, 0), "seed {seed}: overlapping boxes");
                }
            }
        }
        let a = Scene::random(&mut StdRng::seed_from_u64(1), &cfg);
        let b = Scene::random(&mut StdRng::seed_from_u64(2), &cfg);
        assert_ne!(a, b);
    }

    #[test]
    fn boxes_normalise_to_three_digits() {
        let b = BBox {
            x0: 0,
            y0: 5,
            x1: 64,
            y1: 32,
        };
        assert_eq!(b.normalized(64, 64), [0, 78, 999, 500]);
        assert_eq!(b.vila_string(64, 64), "[000,078,999,500]");
    }

    #[test]
    fn scenes_round_trip_through_json() {
        let s = Scene::random(&mut StdRng::seed_from_u64(9), &SceneConfig::default());
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Scene>(&j).unwrap(), s);
    }
}
