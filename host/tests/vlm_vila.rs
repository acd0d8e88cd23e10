//! VILA1.5's native layout (root config + llm/ + vision_tower/ + mm_projector/) against a
//! plain-torch reference of VILA's forward pass, for every projector type and both
//! `mlp_downsample` token orders; prompts tokenized like VILA's `tokenizer_image_token`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use tch::{Device, Kind, Tensor};
use vila2::vlm::chat_template::VilaConversation;
use vila2::vlm::generate::{GenerationParams, Vlm};
use vila2::vlm::preprocess::load_image;

static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn vila_fixture(projector: &str) -> PathBuf {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("parity")
        .join(format!("vila_{projector}"));
    let script = common::repo().join("tests/parity/make_vila.py");
    let fresh = match (out.join("expected.json").metadata(), script.metadata()) {
        (Ok(e), Ok(s)) => e.modified().unwrap() >= s.modified().unwrap(),
        _ => false,
    };
    if !fresh {
        let _ = std::fs::remove_dir_all(&out);
        let status = Command::new(common::repo().join(".venv/bin/python"))
            .arg(&script)
            .arg(&out)
            .arg(projector)
            .status()
            .expect("run make_vila.py (run `make setup`)");
        assert!(status.success());
    }
    out
}

fn check(projector: &str) {
    let dir = vila_fixture(projector);
    let exp = common::expected(&dir);
    let vlm = Vlm::load(&dir, Device::Cpu).unwrap();
    assert_eq!(
        vlm.model.config.image_feature_count() as i64,
        exp["n_features"].as_i64().unwrap()
    );
    let img = load_image(&dir.join("image_a.png")).unwrap();
    let prompt = vlm
        .prepare(exp["prompt"].as_str().unwrap(), &[img])
        .unwrap();
    // VILA's ids hold one -200 per image; ours hold one placeholder per feature.
    let mut want_ids = Vec::new();
    for t in common::ints(&exp["vila_ids"]) {
        let n = if t == -200 {
            exp["n_features"].as_u64().unwrap() as usize
        } else {
            1
        };
        want_ids.extend(std::iter::repeat_n(t, n));
    }
    assert_eq!(prompt.ids, want_ids, "{projector}: prompt ids");
    let ids = Tensor::from_slice(&prompt.ids).unsqueeze(0);
    let px = Tensor::stack(&prompt.pixels, 0);
    let logits = tch::no_grad(|| vlm.model.forward_logits(&ids, Some(&px))).unwrap();
    let got: Vec<f32> = Vec::try_from(logits.to_kind(Kind::Float).flatten(0, -1)).unwrap();
    let diff = common::max_abs_diff(&got, &common::floats(&exp["logits"]));
    assert!(
        diff < 1e-4,
        "{projector}: logits differ from the reference by {diff}"
    );
    let out = vlm
        .generate(
            &[&prompt],
            &GenerationParams {
                max_new_tokens: 10,
                ..Default::default()
            },
        )
        .unwrap()
        .remove(0);
    let mut want = common::ints(&exp["generated"]);
    if let Some(p) = want
        .iter()
        .position(|t| vlm.tokenizer.eos_token_ids.contains(t))
    {
        want.truncate(p + 1);
    }
    assert_eq!(out.token_ids, want, "{projector}: greedy ids");
}

#[test]
fn vila_mlp_downsample_vila15_order() {
    check("mlp_downsample");
}

#[test]
fn vila_mlp_downsample_nvila_order() {
    check("mlp_downsample_2x2_fix");
}

#[test]
fn nvila_root_config_switches_mlp_downsample_to_row_major() {
    check("mlp_downsample_nvila");
}

#[test]
fn vila_mlp2x_gelu() {
    check("mlp2x_gelu");
}

#[test]
fn vila_linear() {
    check("linear");
}

#[test]
fn vila_unknown_projector_is_refused() {
    let src = vila_fixture("linear");
    let tmp = tempfile::tempdir().unwrap();
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.path().is_file() {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    };
    copy(&src, tmp.path());
    for sub in ["llm", "vision_tower", "mm_projector"] {
        std::fs::create_dir(tmp.path().join(sub)).unwrap();
        copy(&src.join(sub), &tmp.path().join(sub));
    }
    std::fs::write(
        tmp.path().join("mm_projector/config.json"),
        r#"{"mm_projector_type": "qformer"}"#,
    )
    .unwrap();
    let e = Vlm::load(tmp.path(), Device::Cpu)
        .err()
        .expect("unknown projector accepted");
    let msg = e.to_string();
    assert!(
        msg.contains("qformer") && msg.contains("mm_projector"),
        "{msg}"
    );
}

#[test]
fn vila_chat_uses_vila_conversation_templates() {
    let dir = vila_fixture("mlp2x_gelu");
    let mut vlm = Vlm::load(&dir, Device::Cpu).unwrap();
    assert_eq!(
        vlm.chat_prompt("Describe.", 1).unwrap(),
        "A chat between a curious user and an artificial intelligence assistant. The assistant \
         gives helpful, detailed, and polite answers to the user's questions. USER: <image>\n\
         Describe. ASSISTANT:"
    );
    vlm.vila_conversation = Some(VilaConversation::Hermes2);
    assert_eq!(
        vlm.chat_prompt("Describe.", 1).unwrap(),
        "<|im_start|>system\nAnswer the questions.<|im_end|><|im_start|>user\n<image>\nDescribe.\
         <|im_end|><|im_start|>assistant\n"
    );
    let img = load_image(&dir.join("image_a.png")).unwrap();
    let p = vlm.prepare_chat("Describe.", &[img]).unwrap();
    let n = vlm.model.config.image_feature_count();
    assert_eq!(p.ids.iter().filter(|&&t| t == -200).count(), n);
    assert_eq!(p.ids[0], 1, "tokenizer_image_token keeps the BOS");
    assert_eq!(
        VilaConversation::for_model_path(std::path::Path::new("/m/VILA1.5-8b")),
        Some(VilaConversation::Llama3)
    );
}
