use super::*;

fn cfg() -> Config {
    Config::default()
}

fn output(key: &str, answer: &str, width: u32, height: u32) -> SpecialistOutput {
    vila2_guest::specialist::output("grounding", PROMPT, (key, width, height), answer)
}

#[test]
fn prompt_is_the_papers_after_the_image_token() {
    let g = Grounding::new(cfg()).unwrap();
    let req = PromptRequest {
        sample: output("k", "", 1, 1).sample,
        seed: 3,
        round: 1,
    };
    let p = g.render(&req).unwrap();
    assert_eq!(
        p.text,
        "<image>\nElaborate on the visual and narrative elements in the image, and specify their \
         location with [xmin,ymin,xmax,ymax]."
    );
    assert_eq!(p.variant, "grounding");
}

#[test]
fn vila_format_boxes_pass_through() {
    let g = parse(
        "A vase [280,570,550,730] stands on a table [000,680,999,999].",
        0,
        0,
        &cfg(),
    );
    assert_eq!(
        g.text,
        "A vase [280,570,550,730] stands on a table [000,680,999,999]."
    );
    assert_eq!(g.kept.len(), 2);
    assert_eq!(g.kept[0].to_string(), "vase [280,570,550,730]");
    assert_eq!(g.kept[1].object, "table");
    assert!(g.dropped.is_empty());
}

#[test]
fn spaces_fractions_and_pixels_are_normalised() {
    let g = parse("a red vase [ 0.28, 0.57 , 0.55,0.73 ] here.", 0, 0, &cfg());
    assert_eq!(g.kept[0].bbox, [280, 569, 549, 729]);
    assert_eq!(g.text, "a red vase [280,569,549,729] here.");
    assert_eq!(g.kept[0].object, "red vase");

    let g = parse("a dog [320,240,1280,960] runs.", 1280, 960, &cfg());
    assert_eq!(g.kept[0].bbox, [250, 250, 999, 999]);
    let pixel = Config {
        coords: Coords::Pixel,
        ..cfg()
    };
    let g = parse("a cup [64,48,320,240] on it.", 640, 480, &pixel);
    assert_eq!(g.kept[0].to_string(), "cup [100,100,500,500]");
}

#[test]
fn bad_boxes_are_dropped_with_reasons_and_removed_from_the_text() {
    let answer = "A cup [500,10,20,30] and a plate [12,34] near a wall [000,000,999,999], \
                  a lamp [100,100,100,400], a fork [-5,0,10,10] and a knife [100,200,300,400].";
    let g = parse(answer, 0, 0, &cfg());
    assert_eq!(
        g.dropped,
        [
            "inverted-box: cup [500,10,20,30]",
            "malformed-box: plate [12,34]",
            "large-box: wall [000,000,999,999]",
            "empty-box: lamp [100,100,100,400]",
            "out-of-range-box: fork [-5,0,10,10]",
        ]
    );
    assert_eq!(
        g.kept,
        [Span {
            object: "knife".into(),
            bbox: [100, 200, 300, 400]
        }]
    );
    assert_eq!(
        g.text,
        "A cup and a plate near a wall, a lamp, a fork and a knife [100,200,300,400]."
    );
}

#[test]
fn an_object_name_does_not_reach_back_past_a_dropped_box() {
    let g = parse(
        "A vendor [500,100,200,400] fresh oranges [120,300,200,400].",
        0,
        0,
        &cfg(),
    );
    assert_eq!(g.dropped, ["inverted-box: vendor [500,100,200,400]"]);
    assert_eq!(g.kept[0].object, "fresh oranges");
    assert_eq!(g.text, "A vendor fresh oranges [120,300,200,400].");
}

#[test]
fn large_box_threshold_is_configurable() {
    let answer = "a table [000,200,999,999] indoors.";
    assert_eq!(parse(answer, 0, 0, &cfg()).dropped.len(), 1);
    let loose = Config {
        max_box_area: 0.9,
        ..cfg()
    };
    assert_eq!(parse(answer, 0, 0, &loose).kept.len(), 1);
}

#[test]
fn pixels_without_image_size_are_out_of_range() {
    let g = parse("a dog [10,20,1500,900] runs.", 0, 0, &cfg());
    assert_eq!(g.dropped, ["out-of-range-box: dog [10,20,1500,900]"]);
}

#[test]
fn unnamed_unterminated_and_non_box_brackets() {
    let g = parse("[100,100,200,200] something. A cat [1,2", 0, 0, &cfg());
    assert_eq!(
        g.dropped,
        ["unnamed-box: [100,100,200,200]", "malformed-box: cat [1,2]"]
    );
    let g = parse(
        "A sign reads [sic] hello, a cat [100,100,200,200].",
        0,
        0,
        &cfg(),
    );
    assert_eq!(g.text, "A sign reads [sic] hello, a cat [100,100,200,200].");
    assert!(g.dropped.is_empty());
}

#[test]
fn process_emits_one_turn_with_a_question_drawn_per_key() {
    let g = Grounding::new(cfg()).unwrap();
    let out = g
        .process(&output("k1", "A vase [280,570,550,730] on a shelf.", 0, 0))
        .unwrap();
    assert_eq!(out.turns.len(), 1);
    assert!(QUESTIONS.contains(&out.turns[0].question.as_str()));
    assert_eq!(out.turns[0].answer, "A vase [280,570,550,730] on a shelf.");
    let again = g
        .process(&output("k1", "A vase [280,570,550,730] on a shelf.", 0, 0))
        .unwrap();
    assert_eq!(out, again);
    let questions: std::collections::BTreeSet<String> = (0..40)
        .map(|i| {
            g.process(&output(&format!("k{i}"), "a cup [1,2,3,4].", 0, 0))
                .unwrap()
        })
        .map(|p| p.turns[0].question.clone())
        .collect();
    assert!(questions.len() > 1, "{questions:?}");
}

#[test]
fn object_turns_and_empty_or_boxless_answers() {
    let g = Grounding::new(Config {
        object_turns: true,
        ..cfg()
    })
    .unwrap();
    let out = g
        .process(&output(
            "k",
            "A vase [280,570,550,730] and a cup [500,10,20,30].",
            0,
            0,
        ))
        .unwrap();
    assert_eq!(out.turns.len(), 2);
    assert!(out.turns[1].question.contains("vase"), "{:?}", out.turns[1]);
    assert_eq!(out.turns[1].answer, "vase [280,570,550,730]");
    assert_eq!(out.dropped, ["inverted-box: cup [500,10,20,30]"]);

    let empty = g.process(&output("k", "  ", 0, 0)).unwrap();
    assert!(empty.turns.is_empty());
    assert_eq!(empty.dropped, ["empty-answer"]);
    let boxless = g.process(&output("k", "A vase on a table.", 0, 0)).unwrap();
    assert!(boxless.turns.is_empty());
    assert!(boxless.dropped[0].starts_with("no-boxes"));
}

#[test]
fn config_is_checked() {
    assert!(
        Grounding::new(Config {
            max_box_area: 1.5,
            ..cfg()
        })
        .is_err()
    );
    let e = vila2_guest::parse_config::<Config>(r#"{"coords": "inches"}"#).unwrap_err();
    assert!(e.contains("coords"), "{e}");
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let defaults = serde_json::to_value(Config::default()).unwrap();
    for field in defaults.as_object().unwrap().keys() {
        assert!(
            schema["properties"].get(field).is_some(),
            "{field} not in schema"
        );
    }
}
