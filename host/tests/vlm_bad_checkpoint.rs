//! Broken checkpoints fail with errors naming the file and key at fault: missing or truncated
//! safetensors, a weight missing, a shape that contradicts the config, unknown model types.
//! Also: an fp16 copy of a checkpoint loads and stays close to the fp32 reference.

mod common;

use std::path::Path;

use serde_json::Value;
use tch::{Device, Kind, Tensor};
use vila2::vlm::VlmError;
use vila2::vlm::llava::LlavaModel;

fn copy_fixture(case: &str) -> tempfile::TempDir {
    let src = common::fixture(case);
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    tmp
}

fn load_err(dir: &Path) -> VlmError {
    match LlavaModel::load(dir, Device::Cpu, Kind::Float) {
        Err(e) => e,
        Ok(_) => panic!("a broken checkpoint in {} loaded", dir.display()),
    }
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut Value)) {
    let path = dir.join("config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

fn rewrite_weights(dir: &Path, f: impl Fn(Vec<(String, Tensor)>) -> Vec<(String, Tensor)>) {
    let file = dir.join("model.safetensors");
    let tensors = f(Tensor::read_safetensors(&file).unwrap());
    Tensor::write_safetensors(&tensors, &file).unwrap();
}

#[test]
fn missing_weight_names_key_and_folder() {
    let tmp = copy_fixture("clip_llama");
    let key = "language_model.model.layers.1.mlp.up_proj.weight";
    rewrite_weights(tmp.path(), |ts| {
        ts.into_iter().filter(|(k, _)| k != key).collect()
    });
    let e = load_err(tmp.path());
    assert!(matches!(e, VlmError::MissingWeight { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(key) && msg.contains("model.safetensors"),
        "{msg}"
    );
}

#[test]
fn truncated_or_missing_safetensors_name_the_file() {
    let tmp = copy_fixture("clip_llama");
    let file = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(tmp.path());
    assert!(matches!(e, VlmError::Safetensors { .. }), "{e}");
    assert!(e.to_string().contains("model.safetensors"));

    let tmp = copy_fixture("siglip_qwen2");
    let shard = "model-00002-of-00003.safetensors";
    std::fs::remove_file(tmp.path().join(shard)).unwrap();
    let e = load_err(tmp.path());
    assert!(matches!(e, VlmError::Io { .. }), "{e}");
    assert!(e.to_string().contains(shard), "{e}");

    let tmp = copy_fixture("clip_llama");
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    let e = load_err(tmp.path());
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}

#[test]
fn shape_mismatch_names_key_and_file() {
    let tmp = copy_fixture("clip_llama");
    edit_config(tmp.path(), |v| {
        v["text_config"]["intermediate_size"] = 100.into()
    });
    let e = load_err(tmp.path());
    let msg = e.to_string();
    assert!(matches!(e, VlmError::Shape { .. }), "{msg}");
    assert!(
        msg.contains("mlp.gate_proj.weight") && msg.contains("model.safetensors"),
        "{msg}"
    );
    assert!(
        msg.contains("[128, 64]") && msg.contains("[100, 64]"),
        "{msg}"
    );
}

#[test]
fn unknown_model_types_are_refused() {
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "\"blip\"",
            Box::new(|v: &mut Value| v["model_type"] = "blip".into()),
        ),
        (
            "\"mistral\"",
            Box::new(|v: &mut Value| v["text_config"]["model_type"] = "mistral".into()),
        ),
        (
            "\"dinov2\"",
            Box::new(|v: &mut Value| v["vision_config"]["model_type"] = "dinov2".into()),
        ),
        (
            "\"swiglu\"",
            Box::new(|v: &mut Value| v["projector_hidden_act"] = "swiglu".into()),
        ),
    ];
    for (needle, edit) in cases {
        let tmp = copy_fixture("clip_llama");
        edit_config(tmp.path(), edit);
        let msg = load_err(tmp.path()).to_string();
        assert!(msg.contains(needle), "error does not name {needle}: {msg}");
    }
}

#[test]
fn fp16_checkpoint_loads_close_to_fp32() {
    let tmp = copy_fixture("clip_llama");
    rewrite_weights(tmp.path(), |ts| {
        ts.into_iter()
            .map(|(k, t)| (k, t.to_kind(Kind::Half)))
            .collect()
    });
    let exp = common::expected(tmp.path());
    let model = LlavaModel::load(tmp.path(), Device::Cpu, Kind::Float).unwrap();
    let ids = Tensor::from_slice(&common::ints(&exp["input_ids"])).unsqueeze(0);
    let shape = common::ints(&exp["pixel_shape"]);
    let px = Tensor::from_slice(&common::floats(&exp["pixel_values"]))
        .view([1, shape[0], shape[1], shape[2]]);
    let logits = tch::no_grad(|| model.forward_logits(&ids, Some(&px))).unwrap();
    let got: Vec<f32> = Vec::try_from(logits.flatten(0, -1)).unwrap();
    let diff = common::max_abs_diff(&got, &common::floats(&exp["logits"]));
    assert!(
        diff > 0.0 && diff < 0.1,
        "fp16 weights: logits differ by {diff}"
    );
}
