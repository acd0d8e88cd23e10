//! Logits of the engine's LLaVA forward pass against transformers, for each checkpoint case
//! (CLIP + Llama in the Hub layout, the same in the in-memory layout, SigLIP + Qwen2 in the
//! v5 layout as bf16 shards with tied embeddings and a list of feature layers).

mod common;

use tch::{Device, Kind, Tensor};
use vila2::vlm::llava::LlavaModel;

fn check_logits(case: &str) {
    let dir = common::fixture(case);
    let exp = common::expected(&dir);
    let model = LlavaModel::load(&dir, Device::Cpu, Kind::Float).expect("model loads");
    let ids = common::ints(&exp["input_ids"]);
    let shape = common::ints(&exp["pixel_shape"]);
    let pixels = Tensor::from_slice(&common::floats(&exp["pixel_values"]))
        .view([1, shape[0], shape[1], shape[2]]);
    let ids_t = Tensor::from_slice(&ids).unsqueeze(0);
    let logits = tch::no_grad(|| model.forward_logits(&ids_t, Some(&pixels))).expect("forward");
    let lshape = common::ints(&exp["logits_shape"]);
    assert_eq!(logits.size(), vec![1, lshape[0], lshape[1]]);
    let got: Vec<f32> = Vec::try_from(logits.flatten(0, -1)).unwrap();
    let want = common::floats(&exp["logits"]);
    let diff = common::max_abs_diff(&got, &want);
    assert!(
        diff < 1e-4,
        "{case}: logits differ from transformers by {diff}"
    );
}

#[test]
fn clip_llama_hub_layout_matches_transformers() {
    check_logits("clip_llama");
}

#[test]
fn clip_llama_in_memory_layout_matches_transformers() {
    check_logits("clip_llama_memory");
}

#[test]
fn siglip_qwen2_v5_sharded_bf16_matches_transformers() {
    check_logits("siglip_qwen2");
}
