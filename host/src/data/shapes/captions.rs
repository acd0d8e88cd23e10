//! Captions of a scene: the complete [`detailed_caption`] (what a good recaptioner should
//! say) and the noisy web-style [`alt_text`] used for pretraining (short, partial, sometimes
//! wrong, sometimes boilerplate, like COYO's). Both use the controlled vocabulary of
//! [`super::scene`] so [`super::metrics::caption_metrics`] can parse them back.

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde::{Deserialize, Serialize};

use super::scene::{Color, Object, Scene, Shape};
use super::spatial::{position_phrase, relation, separation};

/// The English word for small counts ("zero" … "ten"), digits beyond.
pub fn number_word(n: usize) -> String {
    const W: [&str; 11] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    W.get(n).map_or_else(|| n.to_string(), |w| w.to_string())
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// Minimum centre offset (a fraction of the image side) for a relation to be stated.
pub const RELATION_MIN_SEPARATION: f64 = 1.0 / 8.0;

/// A complete, deterministic dense caption: count and background, every object with size,
/// colour, shape and position, the pairwise spatial relations that are clear, and the word.
pub fn detailed_caption(scene: &Scene) -> String {
    let n = scene.objects.len();
    let mut s = if n == 1 {
        format!(
            "The image shows a single shape on a {} background.",
            scene.background.word()
        )
    } else {
        format!(
            "The image shows {} shapes on a {} background.",
            number_word(n),
            scene.background.word()
        )
    };
    for o in &scene.objects {
        s.push_str(&format!(
            " A {} {} {} is {}.",
            o.size.word(),
            o.color.word(),
            o.shape.word(),
            position_phrase(scene, &o.bbox)
        ));
    }
    let min_sep = scene.width.min(scene.height) as f64 * RELATION_MIN_SEPARATION;
    for (i, a) in scene.objects.iter().enumerate() {
        for b in &scene.objects[i + 1..] {
            if separation(a, b) >= min_sep {
                s.push_str(&format!(
                    " The {} is {} the {}.",
                    a.name(),
                    relation(a, b).phrase(),
                    b.name()
                ));
            }
        }
    }
    if let Some(t) = &scene.text {
        s.push_str(&format!(
            " The word \"{}\" is written in {} letters {}.",
            t.word,
            scene.background.ink_word(),
            position_phrase(scene, &t.bbox)
        ));
    } else {
        s.push_str(" There is no text in the image.");
    }
    s
}

/// Noise levels of [`alt_text`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AltTextConfig {
    /// Probability of pure boilerplate that says nothing about the image.
    pub boilerplate_prob: f64,
    /// Probability that one mentioned object gets a wrong colour or shape.
    pub wrong_prob: f64,
}

impl Default for AltTextConfig {
    fn default() -> Self {
        AltTextConfig {
            boilerplate_prob: 0.1,
            wrong_prob: 0.2,
        }
    }
}

/// Alt texts that say nothing about the image.
pub const BOILERPLATE: [&str; 8] = [
    "stock image",
    "click to enlarge",
    "image",
    "untitled",
    "free download",
    "photo for sale",
    "picture 1",
    "background wallpaper",
];

/// A mention of one object in alt text: maybe with its size, maybe without its colour.
fn mention<R: Rng>(rng: &mut R, color: Color, shape: Shape, o: &Object) -> String {
    match rng.random_range(0..6) {
        0 => shape.word().to_string(),
        1 => format!("{} {} {}", o.size.word(), color.word(), shape.word()),
        _ => format!("{} {}", color.word(), shape.word()),
    }
}

/// Noisy web-style alt text: short and partial (one or two objects), with probability
/// `wrong_prob` one object with a wrong colour or shape (a pair not in the scene), with
/// probability `boilerplate_prob` pure boilerplate.
pub fn alt_text<R: Rng>(scene: &Scene, rng: &mut R, cfg: &AltTextConfig) -> String {
    if rng.random_bool(cfg.boilerplate_prob.clamp(0.0, 1.0)) {
        return BOILERPLATE.choose(rng).expect("non-empty").to_string();
    }
    let mut picked: Vec<&Object> = scene.objects.iter().collect();
    picked.shuffle(rng);
    let k = rng.random_range(1..=picked.len().min(2));
    picked.truncate(k);
    let wrong = rng.random_bool(cfg.wrong_prob.clamp(0.0, 1.0));
    let mut mentions = Vec::new();
    for (i, o) in picked.iter().enumerate() {
        let (mut color, mut shape) = (o.color, o.shape);
        if wrong && i == 0 {
            // A pair that is not in the scene, so the error is checkable.
            loop {
                if rng.random_bool(0.5) {
                    color = *Color::ALL.choose(rng).expect("non-empty");
                } else {
                    shape = *Shape::ALL.choose(rng).expect("non-empty");
                }
                if scene.find(color, shape).is_none() {
                    break;
                }
            }
            mentions.push(format!("{} {}", color.word(), shape.word()));
        } else {
            mentions.push(mention(rng, color, shape, o));
        }
    }
    let bg = scene.background.word();
    let m = if mentions.len() == 2 {
        format!("{} and {}", mentions[0], mentions[1])
    } else {
        mentions[0].clone()
    };
    let mut s = match rng.random_range(0..7) {
        0 => format!("{m} on {bg} background"),
        1 => format!("simple {m} icon"),
        2 => format!("{m} vector illustration"),
        3 => format!("geometric {m} clipart"),
        4 => format!("{m} - stock image"),
        5 => format!("{bg} background with {m}"),
        _ => m,
    };
    if let Some(t) = &scene.text
        && rng.random_bool(0.4)
    {
        s.push_str(&format!(" {} sign", t.word.to_lowercase()));
    }
    if rng.random_bool(0.3) {
        s = capitalize(&s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shapes::scene::SceneConfig;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn detailed_caption_is_deterministic_and_complete() {
        let scene = Scene::random(&mut StdRng::seed_from_u64(3), &SceneConfig::default());
        let c = detailed_caption(&scene);
        assert_eq!(c, detailed_caption(&scene));
        for o in &scene.objects {
            assert!(c.contains(&o.name()), "{c}");
        }
    }

    #[test]
    fn alt_text_is_short_and_differs_from_the_detailed_caption() {
        let cfg = AltTextConfig::default();
        let mut boiler = 0;
        for seed in 0..200 {
            let scene = Scene::random(&mut StdRng::seed_from_u64(seed), &SceneConfig::default());
            let mut rng = StdRng::seed_from_u64(seed + 1000);
            let a = alt_text(&scene, &mut rng, &cfg);
            assert_ne!(a, detailed_caption(&scene));
            assert!(a.split_whitespace().count() <= 12, "{a}");
            assert_eq!(
                a,
                alt_text(&scene, &mut StdRng::seed_from_u64(seed + 1000), &cfg)
            );
            boiler += BOILERPLATE.contains(&a.as_str()) as usize;
        }
        assert!(
            (5..60).contains(&boiler),
            "{boiler} boilerplate alt texts of 200"
        );
    }
}
