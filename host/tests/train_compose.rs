//! VILA's initialisation: a tiny random LlamaForCausalLM (tied embeddings, no `<image>` token)
//! and a tiny random CLIPVisionModel, built with transformers, composed into a LLaVA folder
//! that the engine and transformers read to the same logits, and trained from with
//! `vila2 train --init-llm --init-vision`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use safetensors::SafeTensors;
use tch::{Device, Kind, Tensor};
use vila2::train::compose;
use vila2::vlm::llava::LlavaModel;

/// `OUT/llm`, `OUT/vision` and `OUT/image.png` from `tests/parity/make_components.py`.
fn components() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compose-components");
        let _ = std::fs::remove_dir_all(&out);
        let status = Command::new(common::repo().join(".venv/bin/python"))
            .arg(common::repo().join("tests/parity/make_components.py"))
            .arg(&out)
            .status()
            .expect("run make_components.py (run `make setup`)");
        assert!(status.success(), "make_components.py failed");
        out
    })
}

fn tensors(file: &Path) -> Vec<(String, Vec<u8>, Vec<usize>)> {
    let bytes = std::fs::read(file).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(k, t)| (k, t.data().to_vec(), t.shape().to_vec()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn vila2() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vila2"));
    c.env("RUST_BACKTRACE", "0");
    c
}

#[test]
fn composed_model_loads_in_the_engine_and_transformers_alike() {
    let src = components();
    let out = tempfile::tempdir().unwrap();
    let s = compose(&src.join("llm"), &src.join("vision"), out.path(), 7).unwrap();
    assert!(s.added_image_token);
    let src_cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("llm/config.json")).unwrap()).unwrap();
    let src_vocab = src_cfg["vocab_size"].as_u64().unwrap() as usize;
    assert_eq!(s.image_token_index, src_vocab);
    assert_eq!(s.vocab_size, src_vocab + 1);
    assert_eq!(s.image_tokens, 16);

    // (3) The LLM's and the vision tower's weights are copied bit for bit.
    let got: std::collections::HashMap<String, (Vec<u8>, Vec<usize>)> =
        tensors(&out.path().join("model.safetensors"))
            .into_iter()
            .map(|(k, d, s)| (k, (d, s)))
            .collect();
    let src_llm = tensors(&src.join("llm/model.safetensors"));
    assert!(
        src_llm.iter().all(|(k, _, _)| k != "lm_head.weight"),
        "tied source"
    );
    for (k, data, shape) in &src_llm {
        let key = format!("model.language_model.{}", k.strip_prefix("model.").unwrap());
        let (d, s) = got.get(&key).unwrap_or_else(|| panic!("{key} missing"));
        if k == "model.embed_tokens.weight" {
            assert_eq!(s[0], shape[0] + 1);
            assert_eq!(&d[..data.len()], &data[..], "{k} rows changed");
        } else {
            assert_eq!(s, shape, "{k}");
            assert!(d == data, "{k} is not bit-identical");
        }
    }
    for (k, data, shape) in tensors(&src.join("vision/model.safetensors")) {
        let r = k.strip_prefix("vision_model.").unwrap_or(&k);
        let key = format!("model.vision_tower.{r}");
        let (d, s) = got.get(&key).unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(s, &shape, "{k}");
        assert!(d == &data, "{k} is not bit-identical");
    }
    // The new row is the mean of the others; the tied head is written out as the embedding.
    let f = |k: &str| {
        let (d, s) = &got[k];
        let v: Vec<f32> = d
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        Tensor::from_slice(&v).view([s[0] as i64, s[1] as i64])
    };
    let embed = f("model.language_model.embed_tokens.weight");
    let head = f("lm_head.weight");
    assert!(embed.equal(&head));
    let n = src_vocab as i64;
    let mean = embed
        .narrow(0, 0, n)
        .mean_dim(Some(&[0i64][..]), false, Kind::Float);
    let diff = (embed.get(n) - mean).abs().max().double_value(&[]);
    assert!(diff < 1e-6, "new row differs from the mean by {diff}");
    // The projector is new and seeded.
    let again = tempfile::tempdir().unwrap();
    compose(&src.join("llm"), &src.join("vision"), again.path(), 7).unwrap();
    assert_eq!(
        std::fs::read(again.path().join("model.safetensors")).unwrap(),
        std::fs::read(out.path().join("model.safetensors")).unwrap()
    );

    // (1) + (2) The engine and transformers agree on an image + text input.
    let image = src.join("image.png");
    let prompt = "USER: <image>\nWhat is shown in the image? ASSISTANT:";
    let o = Command::new(common::repo().join(".venv/bin/python"))
        .arg(common::repo().join("tests/parity/llava_logits.py"))
        .arg(out.path())
        .arg(&image)
        .arg(prompt)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "llava_logits.py failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let want: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids = common::ints(&want["input_ids"]);
    assert_eq!(
        ids.iter().filter(|&&i| i == n).count(),
        16,
        "the processor expands <image> to the 16 patch tokens"
    );
    let model = LlavaModel::load(out.path(), Device::Cpu, Kind::Float).unwrap();
    let _ = common::assert_golden_logits(&model, &ids, &common::golden_pixels(&want), &want);
}

#[test]
fn train_runs_from_init_llm_and_init_vision_and_names_bad_input() {
    let src = components();
    let data = tempfile::tempdir().unwrap();
    common::caption_shard(&data.path().join("000000.tar"), 4, 0);
    let out = tempfile::tempdir().unwrap();
    let o = vila2()
        .args([
            "train",
            "--stage",
            "align",
            "--batch-size",
            "2",
            "--steps",
            "2",
        ])
        .arg("--data")
        .arg(data.path())
        .arg("--init-llm")
        .arg(src.join("llm"))
        .arg("--init-vision")
        .arg(src.join("vision"))
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["steps"], 2);
    assert!(out.path().join("init/config.json").exists());
    assert!(out.path().join("model.safetensors").exists());
    let log = std::fs::read_to_string(out.path().join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2);

    let run = |args: &[&std::ffi::OsStr]| {
        let o = vila2()
            .args(["train", "--stage", "align", "--data"])
            .arg(data.path())
            .arg("--out")
            .arg(out.path().join("bad"))
            .args(args)
            .output()
            .unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let llm = src.join("llm");
    let vision = src.join("vision");
    let e = run(&["--init-llm".as_ref(), llm.as_os_str()]);
    assert!(e.contains("--init-llm needs --init-vision"), "{e}");
    let e = run(&["--init-vision".as_ref(), vision.as_os_str()]);
    assert!(e.contains("--init-vision needs --init-llm"), "{e}");
    let e = run(&[
        "--init".as_ref(),
        llm.as_os_str(),
        "--init-vision".as_ref(),
        vision.as_os_str(),
    ]);
    assert!(e.contains("cannot be combined"), "{e}");
    // Swapped folders: the LLM config is a vision config.
    let e = run(&[
        "--init-llm".as_ref(),
        vision.as_os_str(),
        "--init-vision".as_ref(),
        llm.as_os_str(),
    ]);
    assert!(e.contains("not a causal LM config"), "{e}");
    assert!(e.contains("vision/config.json"), "{e}");

    // A vision folder holding an LLM, and an LLM folder without weights.
    let bad = tempfile::tempdir().unwrap();
    let e = compose(&llm, &llm, bad.path(), 0).unwrap_err().to_string();
    assert!(
        e.contains("not a vision tower config") && e.contains("llm/config.json"),
        "{e}"
    );
    let noweights = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(llm.join(f), noweights.path().join(f)).unwrap();
    }
    let e = compose(noweights.path(), &vision, bad.path(), 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.safetensors"), "{e}");
}
