//! Conversation samples (`KEY.json` with LLaVA's `conversations`): read from shards, rendered
//! with the model's chat template, loss on the assistant tokens only.

mod common;

use std::path::{Path, PathBuf};

use vila2::train::Stage;
use vila2::train::data::{CaptionSample, Role, ShardReader, Turn, parse_conversation};
use vila2::train::init::{ModelSpec, init_model};
use vila2::train::trainer::{IGNORE, TrainConfig, Trainer, run};

fn tiny_model(dir: &Path) -> PathBuf {
    let corpus = dir.join("corpus.txt");
    std::fs::write(
        &corpus,
        "What colour is the circle? The circle is red.\nHow many shapes are there? Three.\n\
         A red circle above a blue square.\n",
    )
    .unwrap();
    let mut spec = ModelSpec::tiny();
    spec.vocab_size = 300;
    spec.text.hidden_size = 32;
    spec.text.intermediate_size = 64;
    spec.vision.hidden_size = 32;
    spec.vision.intermediate_size = 64;
    spec.vision.image_size = 32;
    let out = dir.join("model");
    init_model(&spec, &corpus, &out, 0).unwrap();
    out
}

const CONV: &str = r#"{"conversations": [
  {"from": "human", "value": "<image>\nWhat colour is the circle?"},
  {"from": "gpt", "value": "The circle is red."},
  {"from": "human", "value": "How many shapes are there?"},
  {"from": "gpt", "value": "Three."}
]}"#;

fn conv_sample() -> CaptionSample {
    CaptionSample {
        key: "s:0".into(),
        image: image::RgbImage::new(32, 32),
        caption: String::new(),
        conversation: parse_conversation(CONV.as_bytes()).unwrap(),
    }
}

#[test]
fn conversations_parse_and_bad_ones_name_the_turn() {
    let turns = parse_conversation(CONV.as_bytes()).unwrap().unwrap();
    assert_eq!(turns.len(), 4);
    assert_eq!(turns[1].role, Role::Assistant);
    assert_eq!(
        parse_conversation(br#"{"round": 2, "model": "m"}"#).unwrap(),
        None
    );
    assert_eq!(parse_conversation(b"not json").unwrap(), None);
    let no_image = parse_conversation(
        br#"{"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]}"#,
    )
    .unwrap()
    .unwrap();
    assert_eq!(no_image[0].value, "<image>\nHi?");
    let err = parse_conversation(br#"{"conversations": [{"from": "human"}]}"#).unwrap_err();
    assert!(err.contains("turn 0"), "{err}");
    let err =
        parse_conversation(br#"{"conversations": [{"from": "human", "value": "x"}]}"#).unwrap_err();
    assert!(err.contains("gpt"), "{err}");
}

#[test]
fn the_reader_mixes_captions_conversations_and_ignores_provenance_json() {
    let dir = tempfile::tempdir().unwrap();
    let png = |s| common::png_bytes(16, 16, s);
    let members = vec![
        ("a.png".to_string(), png(1)),
        ("a.txt".to_string(), b"a caption".to_vec()),
        (
            "a.json".to_string(),
            br#"{"round": 1, "org_caption": "x"}"#.to_vec(),
        ),
        ("b.png".to_string(), png(2)),
        ("b.json".to_string(), CONV.as_bytes().to_vec()),
        ("c.png".to_string(), png(3)),
        ("c.json".to_string(), br#"{"conversations": 3}"#.to_vec()),
        (
            "c.txt".to_string(),
            b"caption of a bad conversation".to_vec(),
        ),
        ("d.png".to_string(), png(4)),
        ("d.json".to_string(), br#"{"round": 1}"#.to_vec()),
    ];
    common::write_shard(&dir.path().join("0.tar"), &members);
    assert_eq!(vila2::train::data::count_samples(dir.path()).unwrap(), 3);
    let mut r = ShardReader::open(dir.path()).unwrap();
    let a = r.next_sample().unwrap();
    assert_eq!(
        (a.caption.as_str(), a.conversation.is_none()),
        ("a caption", true)
    );
    let b = r.next_sample().unwrap();
    assert_eq!(b.conversation.as_ref().map(Vec::len), Some(4));
    assert_eq!(
        r.next_sample().unwrap().key,
        "0.tar:a",
        "c and d skipped, next epoch"
    );
    assert_eq!(r.stats.bad_conversations, 1);
    assert_eq!(r.stats.missing_captions, 1);
    assert_eq!(r.stats.conversations, 1);
}

#[test]
fn the_loss_is_on_the_assistant_tokens_only() {
    let tmp = tempfile::tempdir().unwrap();
    let init = tiny_model(tmp.path());
    let mut t = Trainer::new(&init, TrainConfig::new(Stage::Sft, 1)).unwrap();
    let (ids, labels) = t.encode_sample(&conv_sample()).unwrap();
    assert_eq!(ids.len(), labels.len());

    // The ids are those of the whole rendered conversation.
    let text = "USER: <image>\nWhat colour is the circle? ASSISTANT: The circle is red.</s>\
                USER: How many shapes are there? ASSISTANT: Three.</s>";
    let n = t.model.config.image_feature_count();
    assert_eq!(ids, t.tokenizer.encode_prompt(text, n, true).unwrap());

    // Token by token: the label is the id inside the answers (and their </s>), IGNORE
    // elsewhere.
    let tok = &t.tokenizer;
    let eos = tok.eos_token_ids[0];
    let answer = |s: &str| {
        let mut v = tok.encode(s, false).unwrap();
        v.push(eos);
        v
    };
    let prefix1 = tok
        .encode_prompt(
            "USER: <image>\nWhat colour is the circle? ASSISTANT:",
            n,
            true,
        )
        .unwrap();
    let a1 = answer(" The circle is red.");
    let mid = tok
        .encode("USER: How many shapes are there? ASSISTANT:", false)
        .unwrap();
    let a2 = answer(" Three.");
    let mut want = vec![IGNORE; prefix1.len()];
    want.extend(&a1);
    want.extend(vec![IGNORE; mid.len()]);
    want.extend(&a2);
    assert_eq!(labels, want);
    let image_positions = ids.iter().filter(|&&i| i == tok.image_token_id).count();
    assert_eq!(image_positions, n);
    for (i, (&id, &l)) in ids.iter().zip(&labels).enumerate() {
        assert!(l == IGNORE || l == id, "position {i}");
        if id == tok.image_token_id {
            assert_eq!(l, IGNORE, "image token at {i} carries loss");
        }
    }
    assert_eq!(ids[0], 1, "BOS first, no loss");
    assert_eq!(labels[0], IGNORE);
    let learned: Vec<i64> = labels.iter().copied().filter(|&l| l != IGNORE).collect();
    assert_eq!(
        tok.decode(&learned).unwrap().replace("  ", " ").trim(),
        "The circle is red. Three."
    );
}

#[test]
fn long_conversations_are_truncated_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let init = tiny_model(tmp.path());
    let t = Trainer::new(&init, TrainConfig::new(Stage::Sft, 1)).unwrap();
    assert_eq!(t.config().max_len, 512, "capped to max_position_embeddings");
    let mut cfg = TrainConfig::new(Stage::Sft, 1);
    let n = 16;
    cfg.max_len = n + 20;
    let mut t = Trainer::new(&init, cfg).unwrap();
    let (ids, labels) = t.encode_sample(&conv_sample()).unwrap();
    assert_eq!((ids.len(), labels.len()), (n + 20, n + 20));
    assert_eq!(t.truncated, 1);
    let mut cfg = TrainConfig::new(Stage::Sft, 1);
    cfg.max_len = 8;
    let mut t = Trainer::new(&init, cfg).unwrap();
    let err = t.encode_sample(&conv_sample()).unwrap_err();
    assert!(
        err.to_string().contains("s:0") && err.to_string().contains("max_len"),
        "{err}"
    );
}

#[test]
fn sft_trains_on_conversation_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let init = tiny_model(tmp.path());
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut members = Vec::new();
    for i in 0..4u32 {
        members.push((format!("{i}.png"), common::png_bytes(32, 32, i)));
        members.push((format!("{i}.json"), CONV.as_bytes().to_vec()));
    }
    common::write_shard(&data.join("0.tar"), &members);
    let mut cfg = TrainConfig::new(Stage::Sft, 6);
    cfg.lr = Some(3e-3);
    cfg.batch_size = 2;
    let mut losses = Vec::new();
    let s = run(&data, &init, &tmp.path().join("out"), cfg, |s| {
        losses.push(s.loss)
    })
    .unwrap();
    assert_eq!(s.data.conversations, s.data.samples);
    assert!(losses[5] < losses[0], "{losses:?}");
    // Turn is public for callers that build samples themselves.
    let _ = Turn {
        role: Role::User,
        value: String::new(),
    };
}
