//! VILA²'s prompts (VILA2.md, quoted) and the specialist answers for a scene: spatial
//! relations, grounding with 000–999 boxes, OCR.

use super::captions::number_word;
use super::questions::{clear_closest, clear_pairs};
use super::scene::Scene;
use super::spatial::{position_phrase, relation};

/// The long recaption prompts long-v1..v3; VILA²'s final recipe picks one at random.
pub const LONG_PROMPTS: [&str; 3] = [
    "Describe the image in details.",
    "Elaborate on the visual and narrative elements of the image in detail.",
    "Instead of describing the imaginary content, only describing the content one can \
     determine confidently from the image. Do not describe the contents by itemizing them in \
     list form. Minimize aesthetic descriptions as much as possible.",
];

/// The brief recaption prompt (did not help in the paper).
pub const BRIEF_PROMPT: &str = "Describe the image briefly.";

/// The spatial specialist's prompt.
pub const SPATIAL_PROMPT: &str = "Elaborate on the visual and narrative elements of the image \
     in detail, with a focus on spatial relations.";

/// The grounding specialist's prompt.
pub const GROUNDING_PROMPT: &str = "Elaborate on the visual and narrative elements in the \
     image, and specify their location with [xmin,ymin,xmax,ymax].";

/// The OCR specialist's prompt.
pub const OCR_PROMPT: &str = "Your task is to recognize and describe the text in the image. \
     Please provide a brief description that focuses on the textual content.";

/// A specialist task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Specialist {
    /// Spatial relations.
    Spatial,
    /// Grounding with boxes.
    Grounding,
    /// Reading text.
    Ocr,
}

impl Specialist {
    /// Every specialist.
    pub const ALL: [Specialist; 3] = [Specialist::Spatial, Specialist::Grounding, Specialist::Ocr];

    /// The folder name: `spatial`, `grounding`, `ocr`.
    pub fn name(self) -> &'static str {
        match self {
            Specialist::Spatial => "spatial",
            Specialist::Grounding => "grounding",
            Specialist::Ocr => "ocr",
        }
    }

    /// The task prompt from VILA2.md.
    pub fn prompt(self) -> &'static str {
        match self {
            Specialist::Spatial => SPATIAL_PROMPT,
            Specialist::Grounding => GROUNDING_PROMPT,
            Specialist::Ocr => OCR_PROMPT,
        }
    }

    /// The gold answer to [`prompt`](Self::prompt) for a scene.
    pub fn answer(self, scene: &Scene) -> String {
        match self {
            Specialist::Spatial => spatial_answer(scene),
            Specialist::Grounding => grounding_answer(scene),
            Specialist::Ocr => ocr_answer(scene),
        }
    }
}

/// Positions, every clear pairwise relation (each pair once) and each object's clearly
/// closest neighbour.
pub fn spatial_answer(scene: &Scene) -> String {
    let n = scene.objects.len();
    let mut s = if n == 1 {
        "There is a single shape.".to_string()
    } else {
        format!("There are {} shapes.", number_word(n))
    };
    for o in &scene.objects {
        s.push_str(&format!(
            " The {} is {}.",
            o.name(),
            position_phrase(scene, &o.bbox)
        ));
    }
    for (a, b) in clear_pairs(scene) {
        let (ia, ib) = (index(scene, a), index(scene, b));
        if ia < ib {
            s.push_str(&format!(
                " The {} is {} the {}.",
                a.name(),
                relation(a, b).phrase(),
                b.name()
            ));
        }
    }
    for (a, b) in clear_closest(scene) {
        s.push_str(&format!(
            " The shape closest to the {} is the {}.",
            a.name(),
            b.name()
        ));
    }
    s
}

fn index(scene: &Scene, o: &super::scene::Object) -> usize {
    scene.objects.iter().position(|p| p == o).unwrap_or(0)
}

/// Every object (and the word) followed by its box in VILA's `[xmin,ymin,xmax,ymax]` format
/// with 3-digit integers normalised to 000–999, e.g. `a large red circle [120,080,450,400]`.
pub fn grounding_answer(scene: &Scene) -> String {
    let (w, h) = (scene.width, scene.height);
    let mut items: Vec<String> = scene
        .objects
        .iter()
        .map(|o| {
            format!(
                "a {} {} {}",
                o.size.word(),
                o.name(),
                o.bbox.vila_string(w, h)
            )
        })
        .collect();
    if let Some(t) = &scene.text {
        items.push(format!(
            "the word \"{}\" {}",
            t.word,
            t.bbox.vila_string(w, h)
        ));
    }
    let list = match items.len() {
        1 => items[0].clone(),
        n => format!("{} and {}", items[..n - 1].join(", "), items[n - 1]),
    };
    format!(
        "The image shows {list} on a {} background.",
        scene.background.word()
    )
}

/// `The text reads: WORD.` or `There is no text in the image.`
pub fn ocr_answer(scene: &Scene) -> String {
    match &scene.text {
        Some(t) => format!("The text reads: {}.", t.word),
        None => "There is no text in the image.".into(),
    }
}

/// Parses `[xmin,ymin,xmax,ymax]` boxes (000–999) out of a grounding answer, each with the
/// words before it back to the previous box or `,`; malformed boxes are skipped.
pub fn parse_boxes(text: &str) -> Vec<(String, [u32; 4])> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut label_start = 0usize;
    let mut offset = 0usize;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']') else {
            break;
        };
        let inner = &rest[open + 1..open + close];
        let nums: Vec<Option<u32>> = inner.split(',').map(|v| v.trim().parse().ok()).collect();
        if let [Some(a), Some(b), Some(c), Some(d)] = nums[..] {
            let label_text = &text[label_start..offset + open];
            let label = label_text
                .rsplit([',', '.'])
                .next()
                .unwrap_or("")
                .trim()
                .trim_start_matches("and ")
                .to_string();
            out.push((label, [a, b, c, d]));
        }
        offset += open + close + 1;
        label_start = offset;
        rest = &text[offset..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shapes::scene::SceneConfig;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn grounding_boxes_are_in_range_and_parse_back() {
        for seed in 0..100 {
            let cfg = SceneConfig {
                text_prob: 0.5,
                ..SceneConfig::default()
            };
            let scene = Scene::random(&mut StdRng::seed_from_u64(seed), &cfg);
            let a = grounding_answer(&scene);
            let boxes = parse_boxes(&a);
            assert_eq!(
                boxes.len(),
                scene.objects.len() + scene.text.is_some() as usize,
                "{a}"
            );
            for (o, (label, b)) in scene.objects.iter().zip(&boxes) {
                assert!(label.ends_with(&o.name()), "{label:?} in {a}");
                assert_eq!(*b, o.bbox.normalized(scene.width, scene.height));
                assert!(b.iter().all(|&v| v <= 999) && b[0] < b[2] && b[1] < b[3]);
            }
            assert!(a.contains(&format!("{} [", scene.objects[0].name())));
        }
    }

    #[test]
    fn ocr_answer_reads_the_word() {
        let cfg = SceneConfig {
            text_prob: 1.0,
            ..SceneConfig::default()
        };
        let scene = Scene::random(&mut StdRng::seed_from_u64(1), &cfg);
        let word = &scene.text.as_ref().unwrap().word;
        assert_eq!(ocr_answer(&scene), format!("The text reads: {word}."));
    }
}
