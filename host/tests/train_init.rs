//! `vila2 model init`: a random model from a spec that the engine and transformers load to
//! the same chat prompt, ids and logits; seeded; bad specs named.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use tch::Device;
use vila2::train::init::{ModelSpec, init_model, train_tokenizer};
use vila2::vlm::generate::{GenerationParams, Vlm};
use vila2::vlm::preprocess::load_image;

const CORPUS: &str =
    "USER: What is shown in the image? ASSISTANT: A red square on a blue background.
A small green circle left of a large yellow triangle.
Two blue squares and a red circle on a white background.
What color is the circle? The circle is red.
How many shapes are there? There are three shapes.
";

fn corpus(dir: &Path) -> PathBuf {
    let p = dir.join("corpus.txt");
    std::fs::write(&p, CORPUS).unwrap();
    p
}

fn transformers_view(dir: &Path, image: &Path, message: &str) -> serde_json::Value {
    let out = Command::new(common::repo().join(".venv/bin/python"))
        .arg(common::repo().join("tests/parity/init_check.py"))
        .arg(dir)
        .arg(image)
        .arg(message)
        .output()
        .expect("run init_check.py (run `make setup`)");
    assert!(
        out.status.success(),
        "init_check.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("init_check.py prints JSON")
}

#[test]
fn a_tiny_model_loads_in_the_engine_and_transformers_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("model");
    let summary = init_model(&ModelSpec::tiny(), &corpus(tmp.path()), &out, 7).unwrap();
    assert_eq!(summary.image_tokens, 64);
    assert!(summary.parameters > 100_000);

    let image_path = tmp.path().join("red.png");
    std::fs::write(&image_path, common::png_bytes(50, 40, 3)).unwrap();
    let message = "What is shown in the image?";
    let want = transformers_view(&out, &image_path, message);

    let vlm = Vlm::load(&out, Device::Cpu).unwrap();
    // The chat template renders and tokenizes as transformers does.
    assert_eq!(
        vlm.chat_prompt(message, 1).unwrap(),
        want["text"].as_str().unwrap()
    );
    let image = load_image(&image_path).unwrap();
    let prompt = vlm
        .prepare_chat(message, std::slice::from_ref(&image))
        .unwrap();
    assert_eq!(prompt.ids, common::ints(&want["input_ids"]));
    assert_eq!(
        vlm.tokenizer.encode(message, true).unwrap(),
        common::ints(&want["tokenizer_ids"])
    );
    assert_eq!(
        want["conversation_text"].as_str().unwrap(),
        "USER: <image>\nWhat is shown in the image? ASSISTANT: A red circle.</s>"
    );

    // Same pixels and logits.
    let shape = common::ints(&want["pixel_shape"]);
    assert_eq!(shape, [3, 64, 64]);
    let got_px = Vec::<f32>::try_from(prompt.pixels[0].flatten(0, -1)).unwrap();
    let px_diff = common::max_abs_diff(&got_px, &common::floats(&want["pixel_values"]));
    assert!(px_diff < 1e-3, "pixels differ by {px_diff}");
    let _ = common::assert_golden_logits(
        &vlm.model,
        &prompt.ids,
        &common::golden_pixels(&want),
        &want,
    );

    // And the engine generates from it.
    let params = GenerationParams {
        max_new_tokens: 5,
        ignore_eos: true,
        ..Default::default()
    };
    let g = vlm.generate(&[&prompt], &params).unwrap().remove(0);
    assert_eq!(g.token_ids.len(), 5);
}

#[test]
fn the_seed_decides_the_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus(tmp.path());
    let mut spec = ModelSpec::tiny();
    spec.text.num_layers = 1;
    let dirs: Vec<PathBuf> = [1, 1, 2]
        .iter()
        .enumerate()
        .map(|(i, &seed)| {
            let d = tmp.path().join(format!("m{i}"));
            init_model(&spec, &c, &d, seed).unwrap();
            d
        })
        .collect();
    let bytes = |d: &PathBuf| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(bytes(&dirs[0]), bytes(&dirs[1]));
    assert_ne!(bytes(&dirs[0]), bytes(&dirs[2]));
    assert_eq!(
        std::fs::read(dirs[0].join("tokenizer.json")).unwrap(),
        std::fs::read(dirs[2].join("tokenizer.json")).unwrap()
    );
}

#[test]
fn the_cli_reads_a_toml_spec_and_names_bad_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let c = corpus(tmp.path());
    let spec = tmp.path().join("spec.toml");
    std::fs::write(
        &spec,
        "vocab_size = 300\n[text]\nhidden_size = 32\nnum_layers = 1\n[vision]\nimage_size = 32\n",
    )
    .unwrap();
    let out = tmp.path().join("m");
    let run = |spec: &Path| {
        Command::new(env!("CARGO_BIN_EXE_vila2"))
            .args(["model", "init", "--spec"])
            .arg(spec)
            .arg("--corpus")
            .arg(&c)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = run(&spec);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["image_tokens"], 16);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["text_config"]["hidden_size"], 32);
    assert_eq!(cfg["vision_config"]["image_size"], 32);

    std::fs::write(&spec, "[vision]\nnum_layers = 1\n").unwrap();
    let o = run(&spec);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("spec.toml") && err.contains("vision.num_layers"),
        "{err}"
    );
}

#[test]
fn numbers_are_split_into_single_digits() {
    // Boxes repeated often enough that BPE would merge digit pairs ("96", "09") without the
    // digit split, giving boxes of ragged token lengths that the grounding specialist never
    // learned to close.
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("corpus.txt");
    let line = "The image shows a large yellow diamond [296,484,609,796] and a small red \
                square [750,234,937,421] on a black background. There are 2 shapes.\n";
    std::fs::write(&p, format!("{CORPUS}{}", line.repeat(200))).unwrap();
    let tok = train_tokenizer(&p, 400).unwrap();
    for text in [
        "diamond [296,484,609,796]",
        "square [750,234,937,421].",
        "There are 2 shapes.",
    ] {
        let enc = tok.encode(text, false).unwrap();
        for t in enc.get_tokens() {
            let digits = t.chars().filter(char::is_ascii_digit).count();
            assert!(
                digits == 0 || t.len() == 1,
                "{t:?} in {:?}",
                enc.get_tokens()
            );
        }
        assert_eq!(tok.decode(enc.get_ids(), false).unwrap(), text);
    }
    // Every box is the same number of tokens, whatever its numbers.
    let len = |b: &str| tok.encode(b, false).unwrap().get_ids().len();
    assert_eq!(len("[296,484,609,796]"), len("[000,999,111,555]"));
}
