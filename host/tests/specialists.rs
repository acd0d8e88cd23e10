//! The first-party components (`specialists/*`), built for wasm32-wasip2, exercised through the
//! host runtime: descriptions, configs (good and bad), and each world's batch call.
//! `make components` builds them; `cargo test -p vila2 --test specialists` runs this file.

mod common;

use std::collections::BTreeMap;

use vila2::plugin::records::{
    Candidate, Description, Processed, Prompt, PromptRequest, Sample, SpecialistOutput, Verdict,
};
use vila2::plugin::{
    ItemError, Judge, Judgement, Plugin, PluginError, PluginRuntime, RuntimeConfig, World,
};

/// Tests share one artifact cache so each component is compiled at most once.
fn runtime_config() -> RuntimeConfig {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    RuntimeConfig {
        cache_dir: Some(target.join("vila2-test-cache")),
        ..RuntimeConfig::default()
    }
}

fn runtime() -> PluginRuntime {
    PluginRuntime::new(runtime_config()).unwrap()
}

fn load(name: &str, world: World) -> Plugin {
    runtime()
        .load_file(&common::component(name), world)
        .unwrap()
}

fn sample(key: &str, width: u32, height: u32) -> Sample {
    Sample {
        key: key.into(),
        width,
        height,
        original_caption: "a photo".into(),
        metadata: vec![("source".into(), "test".into())],
    }
}

fn ok<T: std::fmt::Debug>(out: Vec<Result<T, ItemError>>) -> Vec<T> {
    out.into_iter().map(|r| r.expect("item result")).collect()
}

fn assert_description(d: &Description, name: &str, world: World, fields: &[&str]) {
    assert_eq!(d.name, name);
    assert_eq!(d.version, "0.1.0");
    assert_eq!(d.world, world);
    assert!(!d.description.is_empty());
    let schema: serde_json::Value = serde_json::from_str(&d.config_schema).unwrap();
    assert_eq!(schema["type"], "object", "{name}");
    for f in fields {
        assert!(
            schema["properties"].get(f).is_some(),
            "{name}: {f} missing from schema"
        );
    }
}

fn config_error(p: &Plugin, json: &str) -> String {
    match p.configure(json) {
        Err(PluginError::Config { message, .. }) => message,
        other => panic!("{json}: expected a config error, got {other:?}"),
    }
}

// ---------------------------------------------------------------- quality (caption-filter)

fn demo() -> Vec<Candidate> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/filter-demo.jsonl");
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn quality_describes_itself() {
    let p = load("vila2_quality", World::CaptionFilter);
    let d = p.describe().unwrap();
    assert_description(
        &d,
        "vila2-quality",
        World::CaptionFilter,
        &["min_words", "max_words", "min_score"],
    );
}

#[test]
fn quality_gives_each_demo_sample_its_verdict() {
    let p = load("vila2_quality", World::CaptionFilter);
    let batch = demo();
    let verdicts = ok(p.filter(&batch).unwrap());
    assert_eq!(verdicts.len(), batch.len());
    let by_key: BTreeMap<&str, &Verdict> = batch
        .iter()
        .map(|c| c.sample.key.as_str())
        .zip(&verdicts)
        .collect();
    let expect = |key: &str, keep: bool, reasons: &[&str]| {
        let v = by_key[key];
        assert_eq!(v.keep, keep, "{key}: {v:?}");
        assert_eq!(v.reasons, reasons, "{key}: {v:?}");
        assert!((0.0..=1.0).contains(&v.score), "{key}: {v:?}");
    };
    expect("coyo-000001", true, &[]);
    expect("coyo-000002", true, &[]);
    expect("coyo-000003", true, &[]);
    expect("coyo-000004", false, &["empty"]);
    expect("coyo-000005", false, &["too-short"]);
    expect("coyo-000006", false, &["repetition"]);
    expect("coyo-000007", false, &["truncated"]);
    expect("coyo-000008", false, &["boilerplate"]);
    expect("coyo-000009", false, &["list-form"]);
    expect("coyo-000010", false, &["speculative"]);
    expect("coyo-000011", false, &["too-short", "truncated", "garbage"]);
    expect("coyo-000012", false, &["boilerplate"]);
    expect("coyo-000013", true, &[]);
    assert_eq!(by_key["coyo-000001"].score, 1.0);
    assert_eq!(by_key["coyo-000004"].score, 0.0);
}

#[test]
fn quality_component_agrees_with_the_native_logic() {
    let p = load("vila2_quality", World::CaptionFilter);
    let batch = demo();
    let config = vila2_quality::Config::default();
    for (c, v) in batch.iter().zip(ok(p.filter(&batch).unwrap())) {
        let native = vila2_quality::judge_candidate(&config, &c.text, c.mean_logprob).to_verdict();
        assert_eq!(
            (v.keep, v.score, &v.reasons),
            (native.keep, native.score, &native.reasons),
            "{}",
            c.sample.key
        );
    }
}

/// ShapesWorld's reference captions are templated ("A … is in the top left. A … is in the
/// bottom left."), so a four-object caption shares many 3-grams; the default repetition check
/// must keep every one of them and still reject the loops a small model writes.
#[test]
fn quality_keeps_templated_reference_captions_and_rejects_their_loops() {
    use rand::SeedableRng;
    use vila2::data::shapes::{detailed_caption, scene::Scene, scene::SceneConfig};
    let config = vila2_quality::Config::default();
    let mut four = 0;
    for i in 0..300 {
        let scene = Scene::random(
            &mut rand::rngs::StdRng::seed_from_u64(i),
            &SceneConfig::default(),
        );
        four += (scene.objects.len() == 4) as usize;
        let reference = detailed_caption(&scene);
        let a = vila2_quality::judge(&config, &reference);
        assert!(a.keep && a.reasons.is_empty(), "{reference}: {a:?}");
        // The model's loop: the caption's second sentence three times over.
        let second = reference.split_inclusive(". ").nth(1).unwrap().trim();
        let looped = format!("{reference} {second} {second} {second}");
        let a = vila2_quality::judge(&config, &looped);
        assert!(!a.keep, "{looped}: {a:?}");
        let reasons: Vec<_> = a.reasons.iter().map(|r| r.as_str()).collect();
        assert_eq!(reasons, ["repetition"], "{looped}");
    }
    assert!(four >= 30, "only {four} four-object scenes");
}

#[test]
fn quality_config_changes_verdicts_and_bad_config_names_the_field() {
    let p = load("vila2_quality", World::CaptionFilter);
    let batch = demo();
    let train = batch
        .iter()
        .position(|c| c.sample.key == "coyo-000013")
        .unwrap();
    let cake = batch
        .iter()
        .position(|c| c.sample.key == "coyo-000005")
        .unwrap();

    let config = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/quality-config.json"),
    )
    .unwrap();
    p.configure(&config).unwrap();
    let v = ok(p.filter(&batch).unwrap());
    assert_eq!(v[train].reasons, ["low-logprob"]);
    assert!(!v[train].keep);

    p.configure(r#"{"min_words": 3}"#).unwrap();
    let v = ok(p.filter(&batch[cake..=cake]).unwrap());
    assert!(v[0].keep, "{:?}", v[0]);

    let e = config_error(&p, r#"{"min_words": "five"}"#);
    assert!(e.contains("min_words"), "{e}");
    let e = config_error(&p, r#"{"min_wrods": 3}"#);
    assert!(e.contains("min_wrods"), "{e}");
    let e = config_error(&p, r#"{"min_words": 50, "max_words": 10}"#);
    assert!(e.contains("min_words") && e.contains("max_words"), "{e}");
    // A rejected config leaves the last good one in force.
    let v = ok(p.filter(&batch[cake..=cake]).unwrap());
    assert!(v[0].keep);
}

/// A judge that likes captions about vases and counts its calls.
#[derive(Default)]
struct VaseJudge {
    calls: std::sync::Mutex<Vec<String>>,
}

impl Judge for VaseJudge {
    fn score(&self, sample_key: &str, prompt: &str, text: &str) -> Result<Judgement, String> {
        assert_eq!(prompt, "<image>\nDescribe the image in details.");
        self.calls.lock().unwrap().push(sample_key.to_string());
        let mean_logprob = if text.contains("vase") { -0.5 } else { -3.0 };
        Ok(Judgement {
            mean_logprob,
            token_logprobs: vec![mean_logprob; 4],
        })
    }
}

const JUDGED: &str =
    r#"{"judge_prompt": "<image>\nDescribe the image in details.", "min_mean_logprob": -2.0}"#;

#[test]
fn quality_asks_the_host_judge_only_about_captions_that_pass() {
    let judge = std::sync::Arc::new(VaseJudge::default());
    let rt = PluginRuntime::with_judge(runtime_config(), judge.clone()).unwrap();
    let p = rt
        .load_file(&common::component("vila2_quality"), World::CaptionFilter)
        .unwrap();
    p.configure(JUDGED).unwrap();
    let mut batch: Vec<Candidate> = demo().into_iter().take(5).collect();
    batch.iter_mut().for_each(|c| c.mean_logprob = None);
    batch[1].mean_logprob = Some(-1.0); // known: the judge is not asked
    let v = ok(p.filter(&batch).unwrap());
    // 000001 (a vase) is judged and kept; 000003 (a market) is judged and scores too low;
    // 000004 (empty) and 000005 (too short) fail before any judging.
    assert_eq!(*judge.calls.lock().unwrap(), ["coyo-000001", "coyo-000003"]);
    assert!(v[0].keep && v[0].reasons.is_empty(), "{:?}", v[0]);
    assert!(v[1].keep);
    assert_eq!(v[2].reasons, ["low-logprob"]);
    assert_eq!(v[3].reasons, ["empty"]);
    assert_eq!(v[4].reasons, ["too-short"]);
}

#[test]
fn quality_with_a_judge_but_no_model_fails_the_judged_items_and_says_why() {
    let p = load("vila2_quality", World::CaptionFilter);
    p.configure(JUDGED).unwrap();
    let mut batch: Vec<Candidate> = demo().into_iter().take(4).collect();
    batch.iter_mut().for_each(|c| c.mean_logprob = None);
    let out = p.filter(&batch).unwrap();
    match &out[0] {
        Err(ItemError::Plugin(m)) => assert!(m.contains("no VLM is loaded"), "{m}"),
        other => panic!("expected the judge's error, got {other:?}"),
    }
    assert_eq!(out[3].as_ref().unwrap().reasons, ["empty"]);
    let e = config_error(&p, r#"{"judge_prompt": "<image>\nDescribe."}"#);
    assert!(e.contains("min_mean_logprob"), "{e}");
}

// ---------------------------------------------------------- recaption (prompt-template)

fn requests(keys: &[&str], seed: u64) -> Vec<PromptRequest> {
    keys.iter()
        .map(|k| PromptRequest {
            sample: sample(k, 640, 480),
            seed,
            round: 1,
        })
        .collect()
}

const LONG_V1: &str = "Describe the image in details.";
const LONG_V2: &str = "Elaborate on the visual and narrative elements of the image in detail.";
const LONG_V3: &str = "Instead of describing the imaginary content, only describing the content one can determine confidently from the image. Do not describe the contents by itemizing them in list form. Minimize aesthetic descriptions as much as possible.";

#[test]
fn recaption_describes_itself() {
    let d = load("vila2_recaption", World::PromptTemplate)
        .describe()
        .unwrap();
    assert_description(
        &d,
        "vila2-recaption",
        World::PromptTemplate,
        &["recipe", "image_token"],
    );
}

#[test]
fn recaption_vila2_recipe_is_deterministic_per_key_and_seed() {
    let p = load("vila2_recaption", World::PromptTemplate);
    let keys = ["000000", "000001", "000002", "000003", "000004", "000005"];
    let prompts: Vec<Prompt> = ok(p.render(&requests(&keys, 0)).unwrap());
    let variants: Vec<&str> = prompts.iter().map(|p| p.variant.as_str()).collect();
    // The same golden picks as the native unit test: component and native hash agree.
    assert_eq!(
        variants,
        [
            "long-v3", "long-v2", "long-v3", "long-v1", "long-v2", "long-v1"
        ]
    );
    for p in &prompts {
        let text = match p.variant.as_str() {
            "long-v1" => LONG_V1,
            "long-v2" => LONG_V2,
            _ => LONG_V3,
        };
        assert_eq!(p.text, format!("<image>\n{text}"));
    }
    // A fresh runtime and instance give the same prompts.
    let again = ok(load("vila2_recaption", World::PromptTemplate)
        .render(&requests(&keys, 0))
        .unwrap());
    assert_eq!(prompts, again);
    // Another seed moves some picks.
    let many: Vec<String> = (0..60).map(|i| format!("key-{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let a = ok(p.render(&requests(&many, 1)).unwrap());
    let b = ok(p.render(&requests(&many, 2)).unwrap());
    assert!(
        a.iter()
            .zip(&b)
            .filter(|(x, y)| x.variant != y.variant)
            .count()
            > 10
    );
}

#[test]
fn recaption_fixed_recipes_and_config_errors() {
    let p = load("vila2_recaption", World::PromptTemplate);
    p.configure(r#"{"recipe": "brief"}"#).unwrap();
    let out = ok(p.render(&requests(&["a", "b"], 0)).unwrap());
    for prompt in out {
        assert_eq!(prompt.text, "<image>\nDescribe the image briefly.");
        assert_eq!(prompt.variant, "brief");
    }
    p.configure(r#"{"recipe": "long-v2", "image_token": false}"#)
        .unwrap();
    assert_eq!(ok(p.render(&requests(&["a"], 0)).unwrap())[0].text, LONG_V2);
    let e = config_error(&p, r#"{"recipe": "long-v9"}"#);
    assert!(e.contains("recipe") && e.contains("long-v9"), "{e}");
}

// ------------------------------------------------------------------ specialists (specialist)

fn answer(key: &str, task: &str, text: &str, width: u32, height: u32) -> SpecialistOutput {
    SpecialistOutput {
        sample: sample(key, width, height),
        task: task.into(),
        prompt: String::new(),
        answer: text.into(),
        model: format!("vila-{task}"),
    }
}

fn prompt_of(p: &Plugin) -> Prompt {
    ok(p.render(&requests(&["k"], 0)).unwrap()).remove(0)
}

#[test]
fn specialists_describe_themselves_and_render_the_papers_prompts() {
    for (name, crate_name, task, text) in [
        (
            "vila2_grounding",
            "vila2-grounding",
            "grounding",
            "Elaborate on the visual and narrative elements in the image, and specify their location with [xmin,ymin,xmax,ymax].",
        ),
        (
            "vila2_ocr",
            "vila2-ocr",
            "ocr",
            "Your task is to recognize and describe the text in the image. Please provide a brief description that focuses on the textual content.",
        ),
        (
            "vila2_spatial",
            "vila2-spatial",
            "spatial",
            "Elaborate on the visual and narrative elements of the image in detail, with a focus on spatial relations.",
        ),
    ] {
        let p = load(name, World::Specialist);
        assert_description(
            &p.describe().unwrap(),
            crate_name,
            World::Specialist,
            &["image_token"],
        );
        let prompt = prompt_of(&p);
        assert_eq!(prompt.text, format!("<image>\n{text}"));
        assert_eq!(prompt.variant, task);
    }
}

#[test]
fn grounding_normalises_boxes_and_reports_dropped_ones() {
    let p = load("vila2_grounding", World::Specialist);
    let batch = [
        answer(
            "g1",
            "grounding",
            "A vase [0.28, 0.57, 0.55, 0.73] stands on a table [000,680,999,999]. A cup [500,10,20,30] and a plate [12,34].",
            0,
            0,
        ),
        answer(
            "g2",
            "grounding",
            "A dog [320,240,1280,960] runs near a fence [10,20,300,400].",
            1280,
            960,
        ),
        answer("g3", "grounding", "   ", 0, 0),
    ];
    let out: Vec<Processed> = ok(p.process(&batch).unwrap());
    assert_eq!(out[0].turns.len(), 1);
    assert_eq!(
        out[0].turns[0].answer,
        "A vase [280,569,549,729] stands on a table [000,680,999,999]. A cup and a plate."
    );
    assert_eq!(
        out[0].dropped,
        [
            "inverted-box: cup [500,10,20,30]",
            "malformed-box: plate [12,34]"
        ]
    );
    assert!(
        out[0].turns[0].question.contains("[xmin,ymin,xmax,ymax]")
            || out[0].turns[0].question.contains("box")
    );
    assert_eq!(
        out[1].turns[0].answer,
        "A dog [250,250,999,999] runs near a fence [010,020,300,400]."
    );
    assert!(out[2].turns.is_empty());
    assert_eq!(out[2].dropped, ["empty-answer"]);

    p.configure(r#"{"object_turns": true, "max_box_area": 0.9}"#)
        .unwrap();
    let out = ok(p.process(&batch[..1]).unwrap());
    let answers: Vec<&str> = out[0].turns.iter().map(|t| t.answer.as_str()).collect();
    assert_eq!(
        answers[1..],
        ["vase [280,569,549,729]", "table [000,680,999,999]"]
    );
    let e = config_error(&p, r#"{"max_box_area": 2}"#);
    assert!(e.contains("max_box_area"), "{e}");
}

#[test]
fn ocr_normalises_and_deduplicates_text() {
    let p = load("vila2_ocr", World::Specialist);
    let out = ok(p
        .process(&[
            answer(
                "o1",
                "ocr",
                "\u{201C}OPEN\u{201D}  24 hours\nopen 24 hours\n\nSTOP \u{2014} NO ENTRY",
                100,
                100,
            ),
            answer(
                "o2",
                "ocr",
                "There is no visible text in this image.",
                100,
                100,
            ),
            answer("o3", "ocr", "\n \n", 100, 100),
        ])
        .unwrap());
    assert_eq!(out[0].turns.len(), 1);
    assert_eq!(out[0].turns[0].answer, "\"OPEN\" 24 hours\nSTOP - NO ENTRY");
    assert!(
        out[0]
            .dropped
            .iter()
            .any(|d| d.starts_with("duplicate-line")),
        "{:?}",
        out[0].dropped
    );
    assert!(out[1].turns.is_empty() && out[1].dropped[0].starts_with("no-text"));
    assert_eq!(out[2].dropped, ["empty-answer"]);
}

#[test]
fn spatial_keeps_statements_relating_two_objects() {
    let p = load("vila2_spatial", World::Specialist);
    let out = ok(p
        .process(&[answer(
            "s1",
            "spatial",
            "A bright kitchen. The kettle is next to the toaster. It is on the left of the image. The fridge stands behind the table.",
            100,
            100,
        )])
        .unwrap());
    assert_eq!(out[0].turns.len(), 1);
    assert_eq!(
        out[0].turns[0].answer,
        "The kettle is next to the toaster. The fridge stands behind the table."
    );
    assert_eq!(
        out[0].dropped,
        [
            "no-relation: A bright kitchen.",
            "one-object: It is on the left of the image."
        ]
    );
    // The question is drawn per key: the same key gets the same question.
    let again = ok(p
        .process(&[answer("s1", "spatial", "The cup is under the table.", 1, 1)])
        .unwrap());
    assert_eq!(again[0].turns[0].question, out[0].turns[0].question);
}

#[test]
fn spatial_drops_self_relations_and_repeats() {
    // What the mini demo's 0.57M-parameter spatial specialist writes when it loops.
    let p = load("vila2_spatial", World::Specialist);
    let out = ok(p
        .process(&[answer(
            "s1",
            "spatial",
            "The blue diamond is to the left of the purple cross. The blue diamond is to the left of the purple cross. The purple cross is to the right of the purple cross. The shape closest to the purple cross is the purple cross.",
            64,
            64,
        )])
        .unwrap());
    assert_eq!(
        out[0].turns[0].answer,
        "The blue diamond is to the left of the purple cross."
    );
    assert_eq!(
        out[0].dropped,
        [
            "duplicate: The blue diamond is to the left of the purple cross.",
            "self-relation: The purple cross is to the right of the purple cross.",
            "self-relation: The shape closest to the purple cross is the purple cross."
        ]
    );
}

#[test]
fn a_specialist_is_not_a_caption_filter() {
    let e = runtime()
        .load_file(&common::component("vila2_spatial"), World::CaptionFilter)
        .err()
        .expect("a specialist must not load as a caption filter");
    assert!(e.to_string().contains("filter"), "{e}");
}
