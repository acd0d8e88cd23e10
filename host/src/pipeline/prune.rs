//! Sentences taken out of recaptions before the filters see them. Confidence pruning: a
//! sentence in which the model gave some token a low probability is one where it was guessing
//! (which object, which relation, which colour), and a round that trains on it learns the
//! guess; pruning drops those sentences and keeps the ones the model wrote with confidence.
//! Also dropped on request: sentences repeating an earlier one (greedy decoding loops) and
//! sentences relating an object to itself (false wherever no two objects look alike).

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// A sentence taken out of a recaption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrunedSentence {
    /// Its place among the recaption's sentences (0-based).
    pub index: usize,
    /// The sentence as the model wrote it.
    pub text: String,
    /// The log-probability of its least likely token.
    pub min_logprob: f32,
}

/// A recaption after pruning.
#[derive(Debug, Clone, PartialEq)]
pub struct Pruned {
    /// The sentences kept, joined by single spaces (empty when none was).
    pub text: String,
    /// The sentences dropped, in order.
    pub dropped: Vec<PrunedSentence>,
}

/// Byte ranges of the sentences of `text`: a sentence ends after `.`, `!` or `?` followed by
/// whitespace or the end of the text (so `3.5` does not split); surrounding whitespace is
/// left out and empty sentences are skipped.
pub fn sentences(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut push = |a: usize, b: usize| {
        let s = &text[a..b];
        let lead = s.len() - s.trim_start().len();
        let trimmed = s.trim();
        if !trimmed.is_empty() {
            out.push(a + lead..a + lead + trimmed.len());
        }
    };
    for (i, &c) in bytes.iter().enumerate() {
        let ends = matches!(c, b'.' | b'!' | b'?')
            && bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace());
        if ends {
            push(start, i + 1);
            start = i + 1;
        }
    }
    push(start, text.len());
    out
}

/// Drops every sentence of `text` containing a token whose log-probability is under
/// `min_logprob`. `token_ends[i]` is the byte offset in `text` where token `i` ends and
/// `token_logprobs[i]` its log-probability (as [`crate::vlm::generate::Score`] gives them); a
/// token spanning two sentences counts for both.
pub fn prune(text: &str, token_ends: &[usize], token_logprobs: &[f64], min_logprob: f64) -> Pruned {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for (index, range) in sentences(text).into_iter().enumerate() {
        let mut start = 0;
        let mut least = f64::INFINITY;
        for (&end, &lp) in token_ends.iter().zip(token_logprobs) {
            if end > range.start && start < range.end {
                least = least.min(lp);
            }
            start = end;
        }
        let sentence = &text[range];
        if least < min_logprob {
            dropped.push(PrunedSentence {
                index,
                text: sentence.to_string(),
                min_logprob: least as f32,
            });
        } else {
            kept.push(sentence);
        }
    }
    Pruned {
        text: kept.join(" "),
        dropped,
    }
}

/// Drops every sentence of `text` that repeats an earlier one (compared without case and
/// with runs of whitespace as one space): a small captioner's greedy decoding loops on a
/// sentence ("A large red circle is in the top left." three times). Returns the sentences kept,
/// joined by single spaces, and how many were dropped; an unchanged text is returned as is.
pub fn drop_repeated(text: &str) -> (String, usize) {
    let mut seen = std::collections::HashSet::new();
    let (kept, dropped) = drop_sentences(text, |sentence| {
        let norm = sentence
            .split_whitespace()
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join(" ");
        !seen.insert(norm)
    });
    (kept, dropped.len())
}

/// Splits `text` into [`sentences`] and drops those `drop` says to, in order. Returns the
/// sentences kept, joined by single spaces (`text` as is when none was dropped), and the
/// sentences dropped.
fn drop_sentences(text: &str, mut drop: impl FnMut(&str) -> bool) -> (String, Vec<&str>) {
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    for range in sentences(text) {
        let sentence = &text[range];
        if drop(sentence) {
            dropped.push(sentence);
        } else {
            kept.push(sentence);
        }
    }
    if dropped.is_empty() {
        (text.to_string(), dropped)
    } else {
        (kept.join(" "), dropped)
    }
}

/// Articles that may open a noun phrase.
const ARTICLES: [&str; 3] = ["the", "a", "an"];

/// Whether `sentence` relates its subject to itself ("The blue triangle is to the left of the
/// blue triangle."): its subject is the words before its first `is` or `are`, less a leading
/// article, and the sentence ends with those words again after an article and at least one
/// word of relation between (case and punctuation ignored; no list of relations). Where no two
/// objects share a description (ShapesWorld) such a sentence is always false; where they can
/// ("the dog is next to the dog"), it may drop a true one. Reflexives ("itself") are left
/// alone: "the cat is licking itself" is a fine caption.
pub fn is_self_relation(sentence: &str) -> bool {
    let words: Vec<String> = sentence
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let Some(verb) = words.iter().position(|w| w == "is" || w == "are") else {
        return false;
    };
    let mut subject = &words[..verb];
    if subject
        .first()
        .is_some_and(|w| ARTICLES.contains(&w.as_str()))
    {
        subject = &subject[1..];
    }
    let rest = &words[verb + 1..];
    if subject.is_empty() || rest.len() < 2 {
        return false;
    }
    // Relation words, an article, then the subject again.
    let Some(at) = rest.len().checked_sub(subject.len() + 1) else {
        return false;
    };
    at >= 1 && ARTICLES.contains(&rest[at].as_str()) && rest[at + 1..] == *subject
}

/// Drops every sentence of `text` that relates an object to itself ([`is_self_relation`]): a
/// small captioner that has learnt the form of a relation sentence but not which two objects
/// it relates names one object twice. Returns the sentences kept, joined by single spaces,
/// and the sentences dropped; an unchanged text is returned as is.
pub fn drop_self_relations(text: &str) -> (String, Vec<String>) {
    let (kept, dropped) = drop_sentences(text, is_self_relation);
    (kept, dropped.into_iter().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<&str> {
        sentences(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn sentences_split_at_end_marks_followed_by_space() {
        assert_eq!(
            texts("A red circle.  It is 3.5 cm wide! Is it?\nYes"),
            ["A red circle.", "It is 3.5 cm wide!", "Is it?", "Yes"]
        );
        assert_eq!(texts("  "), Vec::<&str>::new());
        assert_eq!(texts("One. "), ["One."]);
    }

    #[test]
    fn a_sentence_with_an_unlikely_token_is_dropped() {
        // Tokens: "A", " red", " circle", ".", " A", " blue", " square", "."
        let text = "A red circle. A blue square.";
        let ends = [1, 5, 12, 13, 15, 20, 27, 28];
        let lps = [-0.1, -0.2, -0.1, -0.01, -0.3, -2.5, -0.4, -0.01];
        let p = prune(text, &ends, &lps, -1.0);
        assert_eq!(p.text, "A red circle.");
        assert_eq!(p.dropped.len(), 1);
        assert_eq!(p.dropped[0].index, 1);
        assert_eq!(p.dropped[0].text, "A blue square.");
        assert!((p.dropped[0].min_logprob + 2.5).abs() < 1e-6);
        // A lower bar keeps both; a higher one drops both.
        assert_eq!(prune(text, &ends, &lps, -3.0).text, text);
        let none = prune(text, &ends, &lps, -0.05);
        assert_eq!(none.text, "");
        assert_eq!(none.dropped.len(), 2);
    }

    #[test]
    fn repeated_sentences_are_dropped_and_counted() {
        let looped = concat!(
            "Two shapes. A large red circle is in the top left. A large red circle is ",
            "in the top left. a large  RED circle is in the top left. A blue square is on ",
            "the right. A large red circle is in the top left."
        );
        let (text, n) = drop_repeated(looped);
        assert_eq!(
            text,
            "Two shapes. A large red circle is in the top left. A blue square is on the right."
        );
        assert_eq!(n, 3);
        // Sentences alike but not equal stay; a text without repeats comes back unchanged.
        let alike =
            "A small red circle is in the top left.  A large red circle is in the top left.";
        assert_eq!(drop_repeated(alike), (alike.to_string(), 0));
        assert_eq!(drop_repeated(""), (String::new(), 0));
    }

    #[test]
    fn a_token_across_a_boundary_counts_for_both_sentences() {
        // One token ". A" (bytes 12..15) is unlikely: both sentences hold part of it.
        let text = "A red circle. A blue square.";
        let ends = [1, 5, 12, 15, 20, 27, 28];
        let lps = [-0.1, -0.1, -0.1, -3.0, -0.1, -0.1, -0.1];
        assert_eq!(prune(text, &ends, &lps, -1.0).dropped.len(), 2);
    }

    #[test]
    fn sentences_relating_an_object_to_itself_are_found() {
        for s in [
            "The blue triangle is to the left of the blue triangle.",
            "the Blue  triangle is to the left of THE blue triangle",
            "The large green square is above a large green square.",
            "The circles are bigger than the circles.",
        ] {
            assert!(is_self_relation(s), "{s}");
        }
        for s in [
            "The blue triangle is to the left of the red circle.",
            "The blue triangle is to the left of the large blue triangle.",
            "There is a blue triangle.",
            "A blue triangle.",
            "The triangle is blue.",
            "The red circle is a red circle.",
            "It is left of it.",
            "The cat is licking itself.",
            "",
        ] {
            assert!(!is_self_relation(s), "{s}");
        }
    }

    #[test]
    fn self_relations_are_dropped_and_returned() {
        let text = concat!(
            "Three shapes. The blue triangle is to the left of the blue triangle. ",
            "The red circle is above the blue triangle. A red circle is next to a red circle."
        );
        let (kept, dropped) = drop_self_relations(text);
        assert_eq!(
            kept,
            "Three shapes. The red circle is above the blue triangle."
        );
        assert_eq!(
            dropped,
            [
                "The blue triangle is to the left of the blue triangle.",
                "A red circle is next to a red circle."
            ]
        );
        let clean = "Two shapes.  A red circle.";
        assert_eq!(drop_self_relations(clean), (clean.to_string(), vec![]));
        let only = "The red circle is below the red circle.";
        assert_eq!(drop_self_relations(only).0, "");
    }
}
