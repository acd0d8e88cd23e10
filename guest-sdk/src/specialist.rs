//! Helpers of `specialist` plugins: the fixed task prompt, the answers of a post-processor (no
//! turn, or one turn whose question is drawn per sample key) and a fixture for unit tests.

use crate::{Processed, Prompt, QaTurn, Sample, SpecialistOutput, hash, image_prompt};

/// The task's `instruction` as the prompt of every sample (see [`image_prompt`]), labelled
/// `variant`.
pub fn task_prompt(instruction: &str, image_token: bool, variant: &str) -> Prompt {
    Prompt {
        text: image_prompt(instruction, image_token),
        variant: variant.into(),
    }
}

/// No turn: the whole answer was dropped, for the reasons in `dropped`.
pub fn no_turn(dropped: Vec<String>) -> Processed {
    Processed {
        turns: vec![],
        dropped,
    }
}

/// One turn: `answer` to the question of `questions` drawn for (sample `key`, `seed`) with
/// [`hash::pick`], and the reasons parts were `dropped`.
pub fn one_turn(
    questions: &[&str],
    key: &str,
    seed: u64,
    answer: String,
    dropped: Vec<String>,
) -> Processed {
    let q = hash::pick(key, seed, questions.len());
    Processed {
        turns: vec![QaTurn {
            question: questions[q].into(),
            answer,
        }],
        dropped,
    }
}

/// A test fixture: the answer of model `vila-{task}` to `prompt` on a `width` × `height` sample
/// `key` without caption or metadata.
pub fn output(
    task: &str,
    prompt: &str,
    (key, width, height): (&str, u32, u32),
    answer: &str,
) -> SpecialistOutput {
    SpecialistOutput {
        sample: Sample {
            key: key.into(),
            width,
            height,
            original_caption: String::new(),
            metadata: vec![],
        },
        task: task.into(),
        prompt: prompt.into(),
        answer: answer.into(),
        model: format!("vila-{task}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_turn_draws_the_question_per_key() {
        let questions = ["a?", "b?", "c?"];
        let p = one_turn(&questions, "k", 7, "yes".into(), vec!["x".into()]);
        let q = hash::pick("k", 7, questions.len());
        assert_eq!(p.turns.len(), 1);
        assert_eq!(p.turns[0].question, questions[q]);
        assert_eq!(p.turns[0].answer, "yes");
        assert_eq!(p.dropped, ["x"]);
        assert!(no_turn(vec![]).turns.is_empty());
    }

    #[test]
    fn task_prompt_puts_the_image_token_first() {
        let p = task_prompt("Read it.", true, "ocr");
        assert_eq!(
            (p.text.as_str(), p.variant.as_str()),
            ("<image>\nRead it.", "ocr")
        );
        assert_eq!(task_prompt("Read it.", false, "ocr").text, "Read it.");
    }

    #[test]
    fn output_fixture_names_the_model_after_the_task() {
        let o = output("ocr", "P", ("k", 3, 4), "A");
        assert_eq!(
            (o.model.as_str(), o.sample.width, o.sample.height),
            ("vila-ocr", 3, 4)
        );
        assert_eq!(
            (o.task.as_str(), o.prompt.as_str(), o.answer.as_str()),
            ("ocr", "P", "A")
        );
    }
}
