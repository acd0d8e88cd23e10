//! Batched generation and scoring against transformers: greedy ids of a left-padded batch of
//! two images with prompts of different lengths equal `generate()`'s, scores equal the
//! reference log-softmax; seeded sampling is reproducible.

mod common;

use tch::Device;
use vila2::vlm::generate::{GenerationParams, Sampling, StopReason, Vlm};
use vila2::vlm::preprocess::load_image;

fn batch_greedy(case: &str) {
    let dir = common::fixture(case);
    let exp = common::expected(&dir);
    let vlm = Vlm::load(&dir, Device::Cpu).unwrap();
    let b = &exp["batch"];
    let prompts: Vec<_> = (0..2)
        .map(|i| {
            let img = load_image(&dir.join(b["images"][i].as_str().unwrap())).unwrap();
            vlm.prepare(b["prompts"][i].as_str().unwrap(), &[img])
                .unwrap()
        })
        .collect();
    assert_ne!(
        prompts[0].ids.len(),
        prompts[1].ids.len(),
        "the batch must need padding"
    );
    let params = GenerationParams {
        max_new_tokens: b["max_new_tokens"].as_u64().unwrap() as usize,
        ..Default::default()
    };
    let refs: Vec<_> = prompts.iter().collect();
    let out = vlm.generate(&refs, &params).unwrap();
    let eos = vlm.tokenizer.eos_token_ids.clone();
    for (i, g) in out.iter().enumerate() {
        let mut want = common::ints(&b["generated"][i]);
        if let Some(p) = want.iter().position(|t| eos.contains(t)) {
            want.truncate(p + 1);
            assert_eq!(g.stop, StopReason::Eos);
        }
        assert_eq!(
            g.token_ids, want,
            "{case}: row {i} differs from transformers"
        );
        assert_eq!(g.text, vlm.tokenizer.decode(&g.token_ids).unwrap());
    }
}

#[test]
fn clip_llama_batched_greedy_matches_transformers() {
    batch_greedy("clip_llama");
}

#[test]
fn siglip_qwen2_batched_greedy_matches_transformers() {
    batch_greedy("siglip_qwen2");
}

#[test]
fn score_matches_transformers() {
    for case in ["clip_llama", "siglip_qwen2"] {
        let dir = common::fixture(case);
        let exp = common::expected(&dir);
        let vlm = Vlm::load(&dir, Device::Cpu).unwrap();
        let img = load_image(&dir.join("image_a.png")).unwrap();
        let prompt = vlm
            .prepare(exp["prompt"].as_str().unwrap(), &[img])
            .unwrap();
        let s = vlm
            .score(&prompt, exp["score"]["text"].as_str().unwrap())
            .unwrap();
        assert_eq!(s.token_ids, common::ints(&exp["score"]["token_ids"]));
        let got: Vec<f32> = s.token_logprobs.iter().map(|&x| x as f32).collect();
        let diff = common::max_abs_diff(&got, &common::floats(&exp["score"]["token_logprobs"]));
        assert!(diff < 1e-4, "{case}: log-probs differ by {diff}");
        let mean = exp["score"]["mean_logprob"].as_f64().unwrap();
        assert!((s.mean_logprob - mean).abs() < 1e-4);
    }
}

#[test]
fn sampling_is_seeded_and_tiny_top_p_is_greedy() {
    let dir = common::fixture("clip_llama");
    let vlm = Vlm::load(&dir, Device::Cpu).unwrap();
    let img = load_image(&dir.join("image_b.png")).unwrap();
    let p = vlm
        .prepare("USER: <image>\nDescribe the image. ASSISTANT:", &[img])
        .unwrap();
    let run = |sampling| {
        let params = GenerationParams {
            max_new_tokens: 10,
            sampling,
            ..Default::default()
        };
        vlm.generate(&[&p], &params).unwrap().remove(0).token_ids
    };
    let hot = |seed| Sampling::TopP {
        temperature: 1.5,
        top_p: 0.95,
        seed,
    };
    assert_eq!(run(hot(7)), run(hot(7)));
    let draws: Vec<_> = (0..4).map(|s| run(hot(s))).collect();
    assert!(
        draws.iter().any(|d| d != &draws[0]),
        "different seeds never differ"
    );
    let nucleus_of_one = Sampling::TopP {
        temperature: 1.0,
        top_p: 1e-9,
        seed: 3,
    };
    assert_eq!(run(nucleus_of_one), run(Sampling::Greedy));
}

#[test]
fn stop_strings_and_max_new_tokens_end_generation() {
    let dir = common::fixture("clip_llama");
    let vlm = Vlm::load(&dir, Device::Cpu).unwrap();
    let img = load_image(&dir.join("image_b.png")).unwrap();
    let p = vlm
        .prepare("USER: <image>\nDescribe the image. ASSISTANT:", &[img])
        .unwrap();
    let full = vlm
        .generate(
            &[&p],
            &GenerationParams {
                max_new_tokens: 8,
                ..Default::default()
            },
        )
        .unwrap()
        .remove(0);
    assert_eq!(full.token_ids.len(), 8);
    assert_eq!(full.stop, StopReason::Length);
    // Stop on the text of the third generated token.
    let third = vlm.tokenizer.decode(&full.token_ids[2..3]).unwrap();
    assert!(!third.is_empty());
    let params = GenerationParams {
        max_new_tokens: 8,
        stop_strings: vec![third.clone()],
        ..Default::default()
    };
    let cut = vlm.generate(&[&p], &params).unwrap().remove(0);
    assert_eq!(cut.stop, StopReason::StopString);
    assert!(cut.token_ids.len() <= 3);
    assert!(!cut.text.contains(&third));
    let params = GenerationParams {
        max_new_tokens: 8,
        stop_token_ids: vec![full.token_ids[1]],
        ..Default::default()
    };
    let by_id = vlm.generate(&[&p], &params).unwrap().remove(0);
    assert_eq!(by_id.token_ids, full.token_ids[..2].to_vec());
    assert_eq!(by_id.stop, StopReason::Eos);
}

#[test]
fn batched_scores_equal_single_scores_and_empty_text_fails_alone() {
    let dir = common::fixture("siglip_qwen2");
    let vlm = Vlm::load(&dir, Device::Cpu).unwrap();
    let a = load_image(&dir.join("image_a.png")).unwrap();
    let b = load_image(&dir.join("image_b.png")).unwrap();
    let p1 = vlm
        .prepare(
            "USER: <image>\nWhat is shown in the image? ASSISTANT:",
            &[a],
        )
        .unwrap();
    let p2 = vlm.prepare("<image> A cat", &[b]).unwrap();
    let items = [
        (&p1, " A red square on a blue background."),
        (&p2, " sits on the table"),
        (&p1, ""),
        (&p2, " two circles"),
    ];
    let batch = vlm.score_batch(&items).unwrap();
    assert!(matches!(batch[2], Err(vila2::vlm::VlmError::Request(_))));
    for (i, (p, text)) in items.iter().enumerate() {
        if text.is_empty() {
            continue;
        }
        let one = vlm.score(p, text).unwrap();
        let got = batch[i].as_ref().unwrap();
        assert_eq!(got.token_ids, one.token_ids);
        let a: Vec<f32> = got.token_logprobs.iter().map(|&x| x as f32).collect();
        let b: Vec<f32> = one.token_logprobs.iter().map(|&x| x as f32).collect();
        let diff = common::max_abs_diff(&a, &b);
        assert!(diff < 1e-4, "item {i}: batched vs single differ by {diff}");
    }
}
