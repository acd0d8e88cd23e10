//! The `vila2 generate` / `vila2 score` contract: JSON shape, generated ids only (ending with
//! EOS when it stopped there) equal to transformers' greedy ids, bad images failing alone.

mod common;

use std::process::Command;

use serde_json::Value;

const PROMPT: &str = "USER: <image>\nWhat is shown in the image? ASSISTANT:";

fn vila2() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vila2"));
    c.env("RUST_BACKTRACE", "0");
    c
}

#[test]
fn generate_json_contract() {
    let dir = common::fixture("clip_llama");
    let exp = common::expected(&dir);
    assert_eq!(exp["batch"]["prompts"][0].as_str(), Some(PROMPT));
    let missing = dir.join("does-not-exist.png");
    let out = vila2()
        .args([
            "generate",
            "--device",
            "cpu",
            "--json",
            "--greedy",
            "--max-new-tokens",
            "12",
        ])
        .arg("--model")
        .arg(&dir)
        .arg("--image")
        .arg(dir.join("image_a.png"))
        .arg("--image")
        .arg(&missing)
        .arg("--image")
        .arg(dir.join("image_b.png"))
        .args(["--prompt", PROMPT])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a failed image must make the exit status non-zero"
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0]["image"].as_str().unwrap(),
        dir.join("image_a.png").to_str().unwrap()
    );
    let mut want = common::ints(&exp["batch"]["generated"][0]);
    let eos = 2;
    let end = want
        .iter()
        .position(|&t| t == eos)
        .expect("the golden stops on EOS");
    want.truncate(end + 1);
    assert_eq!(common::ints(&results[0]["token_ids"]), want);
    assert!(results[0]["text"].is_string());
    assert!(
        results[1]["error"]
            .as_str()
            .unwrap()
            .contains("does-not-exist.png")
    );
    assert!(results[1].get("token_ids").is_none());
    assert_eq!(common::ints(&results[2]["token_ids"]).len(), 12);
}

#[test]
fn score_json_contract() {
    let dir = common::fixture("siglip_qwen2");
    let exp = common::expected(&dir);
    let out = vila2()
        .args(["score", "--device", "cpu", "--json", "--prompt", PROMPT])
        .arg("--model")
        .arg(&dir)
        .arg("--image")
        .arg(dir.join("image_a.png"))
        .args(["--text", exp["score"]["text"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["token_ids"], exp["score"]["token_ids"]);
    let diff = common::max_abs_diff(
        &common::floats(&v["token_logprobs"]),
        &common::floats(&exp["score"]["token_logprobs"]),
    );
    assert!(diff < 1e-4, "log-probs differ by {diff}");
    assert!(
        (v["mean_logprob"].as_f64().unwrap() - exp["score"]["mean_logprob"].as_f64().unwrap())
            .abs()
            < 1e-4
    );
}

#[test]
fn chat_mode_uses_the_template() {
    let dir = common::fixture("clip_llama");
    let out = vila2()
        .args([
            "generate",
            "--device",
            "cpu",
            "--json",
            "--chat",
            "--max-new-tokens",
            "4",
        ])
        .args(["--prompt", "What is shown in the image?"])
        .arg("--model")
        .arg(&dir)
        .arg("--image")
        .arg(dir.join("image_a.png"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!common::ints(&v["results"][0]["token_ids"]).is_empty());
}
