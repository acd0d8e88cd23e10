//! Combining captions: a round's recaption with the caption it refines, and specialist QA
//! turns with the self-augmented caption (VILA2.md, "Fusion of captions").

use rand::SeedableRng;
use rand::seq::SliceRandom;

use super::config::Fusion;
use crate::plugin::records::QaTurn;

/// The caption a sample trains on after a round: `previous` refined by `recaption`
/// (`prompt` is the instruction the recaption answered).
pub fn fuse(mode: Fusion, previous: &str, recaption: &str, prompt: &str) -> String {
    let (previous, recaption) = (previous.trim(), recaption.trim());
    match mode {
        Fusion::Replace => recaption.to_string(),
        Fusion::Concat => {
            format!("### Short description: \n{previous} \n\n### Long description: \n{recaption}")
        }
        Fusion::Qa => format!(
            "{previous}\n{}",
            render_turn(&QaTurn {
                question: strip_image_token(prompt).to_string(),
                answer: recaption.to_string(),
            })
        ),
    }
}

/// The original caption as the first turn, then the specialists' turns in an order shuffled
/// per sample (deterministic in `seed` and `key`).
pub fn append_turns(caption: &str, turns: &[QaTurn], key: &str, seed: u64) -> String {
    let mut order: Vec<&QaTurn> = turns.iter().collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ fnv1a(key));
    order.shuffle(&mut rng);
    let mut out = caption.trim().to_string();
    for t in order {
        out.push('\n');
        out.push_str(&render_turn(t));
    }
    out
}

/// One QA turn as caption text.
pub fn render_turn(t: &QaTurn) -> String {
    format!(
        "Question: {} Answer: {}",
        t.question.trim(),
        t.answer.trim()
    )
}

/// The prompt without its leading `<image>` line.
pub fn strip_image_token(prompt: &str) -> &str {
    prompt
        .trim_start()
        .trim_start_matches("<image>")
        .trim_start()
}

/// FNV-1a of a key: a stable per-sample seed.
pub fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(
            fuse(Fusion::Replace, "a cat", " a red cat ", "p"),
            "a red cat"
        );
        assert_eq!(
            fuse(Fusion::Concat, "a cat", "a red cat", "p"),
            "### Short description: \na cat \n\n### Long description: \na red cat"
        );
        assert_eq!(
            fuse(Fusion::Qa, "a cat", "a red cat", "<image>\nDescribe it."),
            "a cat\nQuestion: Describe it. Answer: a red cat"
        );
    }

    #[test]
    fn turns_are_shuffled_per_key_but_reproducibly() {
        let turns: Vec<QaTurn> = (0..6)
            .map(|i| QaTurn {
                question: format!("q{i}"),
                answer: format!("a{i}"),
            })
            .collect();
        let a = append_turns("cap", &turns, "k1", 1);
        assert_eq!(a, append_turns("cap", &turns, "k1", 1));
        assert!(a.starts_with("cap\nQuestion: "));
        assert_eq!(a.matches("Question:").count(), 6);
        let orders: std::collections::BTreeSet<String> = (0..8)
            .map(|k| append_turns("cap", &turns, &format!("k{k}"), 1))
            .collect();
        assert!(orders.len() > 1, "the order must depend on the key");
    }
}
