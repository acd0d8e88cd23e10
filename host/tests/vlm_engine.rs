//! The engine thread: concurrent callers are batched together and get the same answers as
//! unbatched generation; a bad request fails alone; load errors and shutdown are reported.

mod common;

use std::time::Duration;

use tch::Device;
use vila2::vlm::VlmError;
use vila2::vlm::engine::{Engine, EngineConfig, PromptInput};
use vila2::vlm::generate::{GenerationParams, Vlm};
use vila2::vlm::preprocess::load_image;

#[test]
fn concurrent_requests_are_batched_and_match_single_runs() {
    let dir = common::fixture("clip_llama");
    let prompts = [
        "USER: <image>\nWhat is shown in the image? ASSISTANT:",
        "USER: <image>\nDescribe the image. ASSISTANT:",
        "<image>\nA cat sits on",
        "USER: <image>\nElaborate on the visual and narrative elements of the image in detail. ASSISTANT:",
    ];
    let images = ["image_a.png", "image_b.png"];
    let params = GenerationParams {
        max_new_tokens: 10,
        ..Default::default()
    };
    // Reference: each request alone.
    let vlm = Vlm::load(&dir, Device::Cpu).unwrap();
    let mut want = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let img = load_image(&dir.join(images[i % 2])).unwrap();
        let prompt = vlm.prepare(p, &[img]).unwrap();
        want.push(vlm.generate(&[&prompt], &params).unwrap().remove(0));
    }
    drop(vlm);

    let config = EngineConfig {
        max_batch: 8,
        batch_wait: Duration::from_millis(200),
        ..Default::default()
    };
    let engine = Engine::spawn(dir.clone(), Device::Cpu, config).unwrap();
    let got: Vec<_> = std::thread::scope(|s| {
        let mut joins = Vec::new();
        for (i, p) in prompts.iter().enumerate() {
            let h = engine.handle();
            let img = load_image(&dir.join(images[i % 2])).unwrap();
            let params = params.clone();
            joins.push(s.spawn(move || {
                h.generate(
                    PromptInput {
                        text: p.to_string(),
                        images: vec![img],
                        chat: false,
                    },
                    params,
                )
            }));
        }
        // A malformed request in the same window: two placeholders, one image.
        let h = engine.handle();
        let img = load_image(&dir.join("image_a.png")).unwrap();
        let bad = s.spawn(move || {
            h.generate(
                PromptInput {
                    text: "<image> and <image>".into(),
                    images: vec![img],
                    chat: false,
                },
                GenerationParams {
                    max_new_tokens: 10,
                    ..Default::default()
                },
            )
        });
        let bad = bad.join().unwrap();
        assert!(
            matches!(bad, Err(VlmError::Request(ref m)) if m.contains("2")),
            "{bad:?}"
        );
        joins
            .into_iter()
            .map(|j| j.join().unwrap().unwrap())
            .collect()
    });
    assert_eq!(got, want);
    assert!(
        engine.stats().largest_batch() > 1,
        "requests were never batched"
    );

    let img = load_image(&dir.join("image_a.png")).unwrap();
    let s = engine
        .handle()
        .score(
            PromptInput {
                text: prompts[0].into(),
                images: vec![img.clone()],
                chat: false,
            },
            " A red square".into(),
        )
        .unwrap();
    assert_eq!(s.token_ids.len(), s.token_logprobs.len());
    assert!(s.token_logprobs.iter().all(|&l| l < 0.0));

    let handle = engine.handle();
    drop(engine);
    let after = handle.generate(
        PromptInput {
            text: prompts[0].into(),
            images: vec![img],
            chat: false,
        },
        params,
    );
    assert!(matches!(after, Err(VlmError::EngineStopped)), "{after:?}");
}

#[test]
fn load_errors_come_back_from_spawn() {
    let tmp = tempfile::tempdir().unwrap();
    let e = Engine::spawn(
        tmp.path().to_path_buf(),
        Device::Cpu,
        EngineConfig::default(),
    )
    .err()
    .expect("an empty folder must not load");
    assert!(e.to_string().contains("config.json"), "{e}");
}

/// A chat reply is scored as the model generates it: after the template's separator (the
/// space after `ASSISTANT:`), so its first word is the token the model writes there, and the
/// token ends count from the reply's start.
#[test]
fn a_chat_reply_is_scored_after_the_templates_separator() {
    let dir = common::fixture("clip_llama");
    let vlm = Vlm::load(&dir, Device::Cpu).unwrap();
    let lead = vlm.reply_lead().to_string();
    assert_eq!(
        lead, " ",
        "the fixture's template writes `ASSISTANT: ` + reply"
    );
    let reply = "A red square. It is small.";
    let (want_ids, _) = vlm
        .tokenizer
        .encode_with_ends(&format!("{lead}{reply}"))
        .unwrap();
    let (bare_ids, _) = vlm.tokenizer.encode_with_ends(reply).unwrap();
    assert_ne!(want_ids, bare_ids, "the separator changes the first token");
    let img = load_image(&dir.join("image_a.png")).unwrap();
    let chat_prompt = vlm.chat_prompt("What is shown?", 1).unwrap();
    drop(vlm);
    let engine = Engine::spawn(dir, Device::Cpu, EngineConfig::default()).unwrap();
    let chat = engine
        .handle()
        .score(
            PromptInput {
                text: "What is shown?".into(),
                images: vec![img.clone()],
                chat: true,
            },
            reply.into(),
        )
        .unwrap();
    assert_eq!(chat.token_ids, want_ids);
    assert_eq!(chat.token_ends.last().copied(), Some(reply.len()));
    // The same as scoring the rendered prompt raw with the separator written out.
    let raw = engine
        .handle()
        .score(
            PromptInput {
                text: chat_prompt,
                images: vec![img],
                chat: false,
            },
            format!("{lead}{reply}"),
        )
        .unwrap();
    assert_eq!(raw.token_ids, chat.token_ids);
    for (a, b) in raw.token_logprobs.iter().zip(&chat.token_logprobs) {
        assert!((a - b).abs() < 1e-4, "{raw:?} vs {chat:?}");
    }
}
