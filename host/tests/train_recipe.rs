//! One round of the loop from scratch: a random tiny model, align and pretrain on caption
//! shards, sft on conversation shards; the engine generates from the result.

mod common;

use tch::Device;
use vila2::train::Stage;
use vila2::train::init::ModelSpec;
use vila2::train::recipe::{StagePlan, train_from_scratch};
use vila2::train::trainer::TrainConfig;
use vila2::vlm::generate::{GenerationParams, Vlm};

#[test]
fn align_pretrain_sft_from_scratch() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus.txt");
    std::fs::write(
        &corpus,
        "A red square on a blue background.\nWhat is shown? The picture shows two circles.\n",
    )
    .unwrap();
    let captions = tmp.path().join("captions");
    std::fs::create_dir_all(&captions).unwrap();
    common::caption_shard(&captions.join("0.tar"), 6, 0);
    let convs = tmp.path().join("convs");
    std::fs::create_dir_all(&convs).unwrap();
    let conv = br#"{"conversations": [{"from": "human", "value": "<image>\nWhat is shown?"}, {"from": "gpt", "value": "A red square."}]}"#;
    let mut members = Vec::new();
    for i in 0..4u32 {
        members.push((format!("{i}.png"), common::png_bytes(24, 24, i)));
        members.push((format!("{i}.json"), conv.to_vec()));
    }
    common::write_shard(&convs.join("0.tar"), &members);

    let mut spec = ModelSpec::tiny();
    spec.vocab_size = 300;
    spec.text.hidden_size = 32;
    spec.text.intermediate_size = 64;
    spec.vision.hidden_size = 32;
    spec.vision.intermediate_size = 64;
    spec.vision.image_size = 32;
    let plan = |stage, data: &std::path::Path, lr| {
        let mut cfg = TrainConfig::new(stage, 4);
        cfg.lr = Some(lr);
        cfg.batch_size = 2;
        StagePlan {
            data: data.to_path_buf(),
            cfg,
        }
    };
    let plans = [
        plan(Stage::Align, &captions, 1e-3),
        plan(Stage::Pretrain, &captions, 1e-3),
        plan(Stage::Sft, &convs, 1e-3),
    ];
    let mut seen = Vec::new();
    let out = tmp.path().join("round1");
    let s = train_from_scratch(&spec, &corpus, 0, &out, &plans, |i, st| {
        seen.push((i, st.step))
    })
    .unwrap();
    assert_eq!(seen.len(), 12);
    assert_eq!(s.model, out.join("sft"));
    assert_eq!(s.stages.len(), 3);
    assert_eq!(s.stages[2].1.data.conversations, s.stages[2].1.data.samples);

    let vlm = Vlm::load(&s.model, Device::Cpu).unwrap();
    let img = image::RgbImage::new(32, 32);
    let p = vlm.prepare_chat("What is shown?", &[img]).unwrap();
    let params = GenerationParams {
        max_new_tokens: 4,
        ..Default::default()
    };
    let g = vlm.generate(&[&p], &params).unwrap();
    assert!(!g[0].token_ids.is_empty());
}
