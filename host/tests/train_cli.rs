//! `vila2 train` end to end: one epoch of the align stage on a tiny shard, and its errors.

mod common;

use std::process::Command;

fn vila2() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vila2"));
    c.env("RUST_BACKTRACE", "0");
    c
}

#[test]
fn train_writes_metrics_and_a_checkpoint_and_names_bad_input() {
    let init = common::fixture("clip_llama");
    let data = tempfile::tempdir().unwrap();
    common::caption_shard(&data.path().join("000000.tar"), 6, 0);
    let out = tempfile::tempdir().unwrap();
    let o = vila2()
        .args([
            "train",
            "--stage",
            "align",
            "--batch-size",
            "2",
            "--lr",
            "1e-3",
        ])
        .arg("--data")
        .arg(data.path())
        .arg("--init")
        .arg(&init)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        summary["steps"], 3,
        "one epoch of 6 samples in batches of 2"
    );
    let log = std::fs::read_to_string(out.path().join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 3);
    for f in ["model.safetensors", "config.json", "tokenizer.json"] {
        assert!(out.path().join(f).exists(), "{f} missing");
    }

    let empty = tempfile::tempdir().unwrap();
    let o = vila2()
        .args(["train", "--stage", "sft", "--data"])
        .arg(empty.path())
        .arg("--init")
        .arg(&init)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&empty.path().display().to_string()), "{err}");
}
