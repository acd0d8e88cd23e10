//! Finding, normalising and checking `object [xmin,ymin,xmax,ymax]` spans.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Config;

/// How the four numbers of a box are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Coords {
    /// Per box: all numbers ≤ 1 are fractions, any number > 1000 means pixels, else 000–999.
    #[default]
    Auto,
    /// VILA's 000–999 grid (1000 is accepted as 999).
    Normalized,
    /// Fractions of the image in 0–1.
    Fraction,
    /// Pixels of the sample's `width` × `height` image.
    Pixel,
}

/// A kept box, normalised to the 000–999 grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub object: String,
    /// xmin, ymin, xmax, ymax in 0..=999.
    pub bbox: [u16; 4],
}

impl fmt::Display for Span {
    /// VILA's format: `vase [280,570,550,730]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [x0, y0, x1, y1] = self.bbox;
        write!(f, "{} [{x0:03},{y0:03},{x1:03},{y1:03}]", self.object)
    }
}

/// What [`parse`] made of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grounded {
    /// The answer with kept boxes normalised and dropped boxes removed.
    pub text: String,
    pub kept: Vec<Span>,
    /// One reason per dropped box, e.g. `inverted-box: cup [500,10,20,30]`.
    pub dropped: Vec<String>,
}

/// Words that end an object name when reading backwards from its box.
const STOP: &[&str] = &[
    "a", "an", "the", "and", "or", "with", "of", "on", "in", "at", "to", "from", "by", "near",
    "under", "over", "behind", "is", "are", "was", "were", "has", "have", "its", "their", "his",
    "her", "this", "that", "these", "those", "there", "which", "while", "where", "sits", "stands",
    "lies", "holding", "wearing", "beside", "next", "for", "as", "into", "onto",
];

/// Rewrites the boxes of `answer` for an image of `width` × `height` pixels.
pub fn parse(answer: &str, width: u32, height: u32, config: &Config) -> Grounded {
    let mut out = Grounded {
        text: String::with_capacity(answer.len()),
        ..Grounded::default()
    };
    let mut rest = answer;
    // Where the text after the last box starts: an object name never reaches back past a box,
    // kept or dropped.
    let mut since_box = 0;
    while let Some(open) = rest.find('[') {
        out.text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let (inner, next, terminated) = match after.find([']', '[']) {
            Some(close) if after.as_bytes()[close] == b']' => {
                (&after[..close], &after[close + 1..], true)
            }
            // Unterminated: the box runs to the end of its numbers.
            _ => {
                let end = after
                    .find(|c: char| !(c.is_ascii_digit() || matches!(c, ',' | '.' | ' ' | '-')))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..], false)
            }
        };
        rest = next;
        if !inner.bytes().any(|b| b.is_ascii_digit()) {
            // Not a box ("[sic]"): keep it as written.
            out.text.push('[');
            out.text.push_str(inner);
            if terminated {
                out.text.push(']');
            }
            continue;
        }
        let object = object_before(&out.text[since_box..]);
        let raw: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
        let verdict = if !terminated {
            Err("malformed-box")
        } else if object.is_empty() {
            Err("unnamed-box")
        } else {
            check(inner, width, height, config)
        };
        match verdict {
            Ok(bbox) => {
                let trimmed = out.text.trim_end().len();
                out.text.truncate(trimmed);
                let span = Span { object, bbox };
                let [x0, y0, x1, y1] = bbox;
                out.text
                    .push_str(&format!(" [{x0:03},{y0:03},{x1:03},{y1:03}]"));
                out.kept.push(span);
            }
            Err(kind) => {
                let trimmed = out.text.trim_end().len();
                out.text.truncate(trimmed);
                let what = if object.is_empty() {
                    String::new()
                } else {
                    format!("{object} ")
                };
                out.dropped.push(format!("{kind}: {what}[{raw}]"));
            }
        }
        since_box = out.text.len();
    }
    out.text.push_str(rest);
    out.text = tidy(&out.text);
    out
}

/// Reads and checks one box's numbers; the error is the drop reason's kind.
fn check(inner: &str, width: u32, height: u32, config: &Config) -> Result<[u16; 4], &'static str> {
    let mut v = [0f64; 4];
    // Fails on more or fewer than four numbers, or anything else between the brackets.
    let mut parts = inner.split(',');
    for slot in &mut v {
        *slot = parts
            .next()
            .and_then(|p| p.trim().parse::<f64>().ok())
            .filter(|x| x.is_finite())
            .ok_or("malformed-box")?;
    }
    if parts.next().is_some() {
        return Err("malformed-box");
    }
    if v.iter().any(|&x| x < 0.0) {
        return Err("out-of-range-box");
    }
    let coords = match config.coords {
        Coords::Auto if v.iter().all(|&x| x <= 1.0) => Coords::Fraction,
        Coords::Auto if v.iter().any(|&x| x > 1000.0) => Coords::Pixel,
        Coords::Auto => Coords::Normalized,
        c => c,
    };
    let (sx, sy) = match coords {
        Coords::Fraction => (1.0, 1.0),
        Coords::Normalized => {
            // 1000 is a common off-by-one for the 999 edge.
            v.iter_mut()
                .filter(|x| **x <= 1000.0)
                .for_each(|x| *x = x.min(999.0));
            (999.0, 999.0)
        }
        Coords::Pixel if width > 0 && height > 0 => (f64::from(width), f64::from(height)),
        Coords::Pixel | Coords::Auto => return Err("out-of-range-box"),
    };
    let mut b = [0u16; 4];
    for (i, (out, x)) in b.iter_mut().zip(v).enumerate() {
        let scale = if i % 2 == 0 { sx } else { sy };
        if x > scale {
            return Err("out-of-range-box");
        }
        *out = ((x / scale) * 999.0).round().min(999.0) as u16;
    }
    let [x0, y0, x1, y1] = b;
    if x0 > x1 || y0 > y1 {
        return Err("inverted-box");
    }
    if x0 == x1 || y0 == y1 {
        return Err("empty-box");
    }
    let area = f32::from(x1 - x0) * f32::from(y1 - y0) / (999.0 * 999.0);
    if area > config.max_box_area {
        return Err("large-box");
    }
    Ok(b)
}

/// The object named right before a box: up to three words back, stopping at punctuation, a
/// previous box or a function word ("a red vase [" → "red vase").
fn object_before(text: &str) -> String {
    let mut words = Vec::new();
    for word in text.split_whitespace().rev() {
        if words.len() == 3 || word.ends_with([']', ',', '.', ';', ':', '!', '?', ')']) {
            break;
        }
        let w = word.trim_start_matches(['(', '"', '\'']);
        if w.is_empty() || STOP.contains(&w.to_ascii_lowercase().as_str()) {
            break;
        }
        words.push(w);
        if w.len() != word.len() {
            break;
        }
    }
    words.reverse();
    words.join(" ")
}

/// Collapses whitespace runs and the space left before punctuation by a removed box.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() && !word.starts_with([',', '.', ';', ':', '!', '?']) {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}
