use super::*;

const GOOD: &str = "A red ceramic vase with white flowers stands on a wooden table. Sunlight from a \
    window on the left falls across the table, and a folded newspaper lies next to the vase.";

fn reasons(text: &str) -> Vec<&'static str> {
    judge(&Config::default(), text)
        .reasons
        .iter()
        .map(Reason::as_str)
        .collect()
}

#[test]
fn clean_caption_is_kept_with_full_score() {
    let a = judge(&Config::default(), GOOD);
    assert!(a.keep);
    assert_eq!(a.score, 1.0);
    assert!(a.reasons.is_empty());
    assert_eq!(a.words, 32);
}

#[test]
fn empty_and_whitespace_only() {
    for text in ["", "   \n\t "] {
        let a = judge(&Config::default(), text);
        assert!(!a.keep);
        assert_eq!(a.score, 0.0);
        assert_eq!(reasons(text), ["empty"]);
    }
}

#[test]
fn word_count_limits_follow_config() {
    assert_eq!(reasons("A dog on grass."), ["too-short"]);
    let config = Config {
        min_words: 2,
        max_words: 10,
        ..Config::default()
    };
    assert!(judge(&config, "A dog on grass.").keep);
    let long = "word ".repeat(11).trim_end().to_string() + ".";
    let a = judge(&config, &long);
    assert!(a.reasons.contains(Reason::TooLong), "{a:?}");
    assert!(!a.keep);
}

#[test]
fn repetition_loop_is_caught_but_ordinary_reuse_is_not() {
    let looped = format!("{GOOD} {}the end.", "The cat sat on the mat and ".repeat(6));
    assert_eq!(reasons(&looped), ["repetition"]);
    let reuse = "A man in a red shirt stands in the street. A man in a blue shirt stands near a bus \
        stop, and a dog waits in the shade of a tree.";
    assert!(
        judge(&Config::default(), reuse).reasons.is_empty(),
        "{reuse}"
    );
    let words = "the the the the the the the the the the the the.";
    assert!(reasons(words).contains(&"repetition"));
}

#[test]
fn a_sentence_said_again_is_repetition_however_long_the_caption() {
    // A small model's greedy loop: one sentence again, too few repeated 4-grams to matter in a
    // long caption.
    let looped = format!("{GOOD} {GOOD} The newspaper is folded. the  newspaper is FOLDED!");
    assert_eq!(reasons(&looped), ["repetition"]);
    let once = format!("{GOOD} A second sentence about the vase: its flowers are white.");
    let a = judge(&Config::default(), &once);
    assert!(a.reasons.is_empty(), "{a:?}");
    let lenient = Config {
        max_repeated_sentences: 1,
        ..Config::default()
    };
    let twice = format!("{GOOD} The vase is red. The vase is red.");
    assert!(judge(&lenient, &twice).reasons.is_empty());
    assert_eq!(reasons(&twice), ["repetition"]);
    // "3.5" and "e.g.," end no sentence; a quote after the full stop does.
    let not_sentences = "The sign reads 3.5 metres, e.g., as tall as the door. The sign reads 3.5 \
        metres tall, the door is e.g., blue and old. \"Hello.\" A man says \"Hello.\"";
    assert!(
        reasons(not_sentences).is_empty(),
        "{:?}",
        reasons(not_sentences)
    );
    let quoted = "A sign on the wall reads \"Open.\" A sign on the wall reads \"Open.\"";
    assert_eq!(reasons(quoted), ["repetition"]);
}

/// The templated captions of a synthetic dataset share many 3-grams without looping.
#[test]
fn templated_sentences_are_not_a_loop() {
    let caption = "The image shows four shapes on a white background. A small red circle is in \
        the top left. A large blue square is in the top right. A small green triangle is in the \
        bottom left. A large yellow cross is in the bottom right. The small red circle is to the \
        left of the large blue square. The small red circle is above the small green triangle. \
        The small red circle is to the left of the large yellow cross. The large blue square is \
        to the right of the small green triangle. The large blue square is above the large \
        yellow cross. The small green triangle is to the left of the large yellow cross. There \
        is no text in the image.";
    assert!(reasons(caption).is_empty(), "{:?}", reasons(caption));
    let three = Config {
        repetition_ngram: 3,
        ..Config::default()
    };
    assert!(judge(&three, caption).reasons.contains(Reason::Repetition));
}

#[test]
fn truncated_mid_sentence() {
    let cut = "A red ceramic vase with white flowers stands on a wooden table next to the";
    let a = judge(&Config::default(), cut);
    assert_eq!(reasons(cut), ["truncated"]);
    assert!(!a.keep);
    assert!((a.score - 0.55).abs() < 1e-6);
    // Closing quotes and brackets after the full stop are fine.
    assert!(reasons("A sign on the old brick wall reads \"Welcome to the town.\"").is_empty());
    let lenient = Config {
        require_terminal_punctuation: false,
        ..Config::default()
    };
    assert!(judge(&lenient, cut).keep);
}

#[test]
fn refusals_and_assistant_boilerplate() {
    for text in [
        "I'm sorry, but I cannot help with identifying people in this image.",
        "As an AI language model, I do not have the ability to see images directly.",
        "Sure! Here is a detailed description of the image you provided for me.",
        "Certainly, here’s a description: a red vase stands on a wooden table.",
        "The photo shows a kitchen with white cabinets. I hope this helps you today!",
    ] {
        let a = judge(&Config::default(), text);
        assert!(a.reasons.contains(Reason::Boilerplate), "{text}: {a:?}");
        assert!(!a.keep, "{text}");
    }
}

#[test]
fn list_itemisation() {
    let listed = "The image shows:\n1. A red vase on a table.\n2. A window on the left.\n\
        3. A folded newspaper next to the vase.";
    let a = judge(&Config::default(), listed);
    assert_eq!(reasons(listed), ["list-form"]);
    assert!(!a.keep);
    let dashes = "Objects in the scene:\n- a red vase on the table.\n- a window with curtains.";
    assert!(reasons(dashes).contains(&"list-form"));
    // One line that happens to start with a number is not a list.
    assert!(reasons("3 dogs run across a wide green field under a cloudy sky.").is_empty());
}

#[test]
fn speculative_wording_costs_per_expression() {
    let one = "A woman, possibly a tourist, stands in front of a large stone fountain.";
    assert!(judge(&Config::default(), one).reasons.is_empty());
    let three = "A woman, possibly a tourist, stands in front of what might be a fountain; it \
        seems to be evening.";
    let a = judge(&Config::default(), three);
    assert_eq!(a.speculative, 4); // possibly, might be, it seems, seems to
    assert_eq!(reasons(three), ["speculative"]);
    assert!((a.score - (1.0 - 0.45)).abs() < 1e-6, "{a:?}");
    assert!(!a.keep);
    let two = "A woman, possibly a tourist, stands near what is likely a large stone fountain.";
    let b = judge(&Config::default(), two);
    assert!(b.keep && b.reasons.contains(Reason::Speculative));
    assert!((b.score - 0.85).abs() < 1e-6);
}

#[test]
fn non_text_garbage() {
    for text in [
        "@@##$$%%^^&&** ((!!)) ~~~ ||| ### $$$ %%% ^^^ &&& *** !!!",
        "A red vase \u{FFFD}\u{FFFD} stands on a wooden table near the big window.",
        "A red vase stands on a table ################ near the window today.",
        "aGVsbG8gd29ybGQgdGhpcyBpcyBhIGJhc2U2NCBlbmNvZGVkIHN0cmluZw== is what the sign says.",
        "12 34 56 78 90 12 34 56 78 90 12 34 56 78 90 12 34 56 78 90.",
    ] {
        let a = judge(&Config::default(), text);
        assert!(a.reasons.contains(Reason::Garbage), "{text}: {a:?}");
        assert!(!a.keep);
    }
    // Non-ASCII prose is text.
    assert!(
        reasons("Ein roter Vase steht auf einem hölzernen Tisch neben dem großen Fenster.")
            .is_empty()
    );
}

#[test]
fn low_logprob_only_when_configured_and_known() {
    let strict = Config {
        min_mean_logprob: Some(-1.5),
        ..Config::default()
    };
    assert!(
        judge_candidate(&strict, GOOD, Some(-2.0))
            .reasons
            .contains(Reason::LowLogprob)
    );
    assert!(judge_candidate(&strict, GOOD, Some(-1.0)).keep);
    assert!(judge_candidate(&strict, GOOD, None).keep);
    assert!(judge_candidate(&Config::default(), GOOD, Some(-9.0)).keep);
}

#[test]
fn verdict_lists_reasons_as_kebab_case_in_stable_order() {
    let v = judge(&Config::default(), "I'm sorry, as an AI I cannot").to_verdict();
    assert!(!v.keep);
    assert_eq!(v.score, 0.0);
    assert_eq!(v.reasons, ["too-short", "truncated", "boilerplate"]);
    for r in Reason::ALL {
        let s = r.as_str();
        assert!(
            s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
            "{s}"
        );
    }
}

#[test]
fn min_score_decides_keep() {
    let cut = "A red ceramic vase with white flowers stands on a wooden table next to the";
    let lenient = Config {
        min_score: 0.5,
        ..Config::default()
    };
    assert!(judge(&lenient, cut).keep);
}

#[test]
fn config_validation_and_parsing() {
    assert!(
        QualityFilter::new(Config {
            min_words: 10,
            max_words: 5,
            ..Config::default()
        })
        .is_err()
    );
    assert!(
        QualityFilter::new(Config {
            min_score: 1.5,
            ..Config::default()
        })
        .is_err()
    );
    let c: Config =
        vila2_guest::parse_config(r#"{"min_words": 3, "min_mean_logprob": -2.0}"#).unwrap();
    assert_eq!(
        (c.min_words, c.max_words, c.min_mean_logprob),
        (3, 400, Some(-2.0))
    );
    let e = vila2_guest::parse_config::<Config>(r#"{"max_words": -1}"#).unwrap_err();
    assert!(e.contains("max_words"), "{e}");
}

#[test]
fn schema_describes_every_field_with_its_default() {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let props = schema["properties"].as_object().unwrap();
    let defaults = serde_json::to_value(Config::default()).unwrap();
    let defaults = defaults.as_object().unwrap();
    assert_eq!(props.len(), defaults.len());
    for (field, value) in defaults {
        let declared = &props
            .get(field)
            .unwrap_or_else(|| panic!("{field} missing"))["default"];
        match (declared.as_f64(), value.as_f64()) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6, "{field}"),
            _ => assert_eq!(declared, value, "{field}"),
        }
    }
}

#[test]
fn plugin_filter_uses_the_candidate_logprob() {
    let strict = QualityFilter::new(Config {
        min_mean_logprob: Some(-1.0),
        ..Config::default()
    })
    .unwrap();
    let sample = vila2_guest::Sample {
        key: "k".into(),
        width: 10,
        height: 10,
        original_caption: String::new(),
        metadata: vec![],
    };
    let c = |lp| Candidate {
        sample: sample.clone(),
        text: GOOD.into(),
        model: "m".into(),
        round: 1,
        mean_logprob: lp,
    };
    let out = strict.filter_batch(&[c(Some(-3.0)), c(None)]);
    assert_eq!(out[0].as_ref().unwrap().reasons, ["low-logprob"]);
    assert!(out[1].as_ref().unwrap().keep);
}

#[test]
fn judge_prompt_needs_a_threshold_and_is_only_asked_about_passing_captions() {
    let e = QualityFilter::new(Config {
        judge_prompt: Some("<image>\nDescribe.".into()),
        ..Config::default()
    })
    .err()
    .unwrap();
    assert!(
        e.contains("judge_prompt") && e.contains("min_mean_logprob"),
        "{e}"
    );

    let f = QualityFilter::new(Config {
        judge_prompt: Some("<image>\nDescribe the image in details.".into()),
        min_mean_logprob: Some(-2.0),
        ..Config::default()
    })
    .unwrap();
    let sample = vila2_guest::Sample {
        key: "k".into(),
        width: 10,
        height: 10,
        original_caption: String::new(),
        metadata: vec![],
    };
    let c = |text: &str, lp| Candidate {
        sample: sample.clone(),
        text: text.into(),
        model: "m".into(),
        round: 1,
        mean_logprob: lp,
    };
    // Natively there is no judge: asking it is an item error, which proves it was asked.
    let asked = f.filter(&c(GOOD, None)).unwrap_err();
    assert!(asked.contains("judge"), "{asked}");
    // Not asked: a caption that fails anyway, or one whose log-probability is known.
    assert_eq!(f.filter(&c("", None)).unwrap().reasons, ["empty"]);
    assert!(f.filter(&c(GOOD, Some(-1.0))).unwrap().keep);
}
