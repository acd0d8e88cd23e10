//! `vila2 shapes` end to end: the layout it writes, shards read back with the raw reader, and
//! image, caption and scene of a sample agree; bad arguments are refused clearly.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use vila2::data::shapes::{
    Conversation, LONG_PROMPTS, QaKind, Scene, Turn, caption_metrics, detailed_caption, render,
    score_answer,
};
use vila2::data::{list_shards, read_shard};

fn vila2() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vila2"));
    c.env("RUST_BACKTRACE", "0");
    c
}

fn scenes(path: &Path) -> Vec<(String, Scene)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let scene: Scene = serde_json::from_value(v["scene"].clone()).unwrap();
            (v["key"].as_str().unwrap().to_string(), scene)
        })
        .collect()
}

#[test]
fn shapes_writes_a_consistent_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("shapes");
    let o = vila2()
        .args(["shapes", "--seed", "7", "--pretrain", "30", "--sft", "8"])
        .args(["--specialist", "6", "--eval", "10", "--shard-size", "12"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["samples"]["pretrain"], 30);
    assert_eq!(summary["shards"]["pretrain"], 3);

    for f in [
        "corpus.txt",
        "shapes.json",
        "eval/vqa.jsonl",
        "pretrain/scenes.jsonl",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("shapes.json")).unwrap()).unwrap();
    assert_eq!(cfg["seed"], 7);

    // Pretraining: png + alt text, ground truth outside the shards, image matches the scene.
    let truth = scenes(&out.join("pretrain/scenes.jsonl"));
    let mut samples = Vec::new();
    for shard in list_shards(&out.join("pretrain")).unwrap() {
        samples.extend(read_shard(&shard).unwrap());
    }
    assert_eq!(samples.len(), 30);
    for (s, (key, scene)) in samples.iter().zip(&truth) {
        assert_eq!(&s.key, key);
        let exts: BTreeSet<&str> = s.members.keys().map(String::as_str).collect();
        assert_eq!(exts, BTreeSet::from(["png", "txt"]));
        let img = image::load_from_memory(&s.members["png"])
            .unwrap()
            .to_rgb8();
        assert_eq!(img, render(scene), "{key}: image differs from its scene");
        assert_ne!(s.text("txt").unwrap(), detailed_caption(scene));
    }

    // SFT and specialists: LLaVA conversations, <image> only in the first human turn.
    for split in [
        "sft",
        "specialist/spatial",
        "specialist/grounding",
        "specialist/ocr",
    ] {
        let truth = scenes(&out.join(split).join("scenes.jsonl"));
        let shard = &list_shards(&out.join(split)).unwrap()[0];
        let first = &read_shard(shard).unwrap()[0];
        let conv: Conversation = serde_json::from_slice(&first.members["json"]).unwrap();
        let turns = &conv.conversations;
        assert!(turns.len() >= 2 && turns.len().is_multiple_of(2), "{split}");
        assert!(turns[0].value.starts_with("<image>\n"), "{split}");
        for (i, t) in turns.iter().enumerate() {
            assert_eq!(t.from, if i % 2 == 0 { "human" } else { "gpt" });
            assert_eq!(t.value.contains("<image>"), i == 0, "{split} turn {i}");
        }
        if split == "sft" {
            // The detailed caption answers the one long prompt, at whichever turn it is.
            let asks = |t: &Turn| LONG_PROMPTS.contains(&t.value.trim_start_matches("<image>\n"));
            let at = turns.iter().position(asks).expect("a caption turn");
            assert_eq!(turns.iter().filter(|t| asks(t)).count(), 1);
            let score = caption_metrics(&turns[at + 1].value, &truth[0].1);
            assert_eq!(score.correct, score.mentioned);
            assert_eq!(score.recalled, score.gt_objects);
        }
        if split == "specialist/grounding" {
            assert!(turns[1].value.contains(" ["), "{}", turns[1].value);
        }
    }

    // Eval: the reference caption scores precision 1 and recall 1; vqa.jsonl answers itself.
    let truth = scenes(&out.join("eval/scenes.jsonl"));
    let eval = read_shard(&list_shards(&out.join("eval")).unwrap()[0]).unwrap();
    for (s, (key, scene)) in eval.iter().zip(&truth) {
        assert_eq!(&s.key, key);
        let caption = s.text("txt").unwrap();
        assert_eq!(caption, detailed_caption(scene));
        let score = caption_metrics(&caption, scene);
        assert_eq!(
            (score.correct, score.recalled),
            (score.mentioned, score.gt_objects)
        );
        assert_eq!(score.hallucinated, 0);
    }
    let vqa = std::fs::read_to_string(out.join("eval/vqa.jsonl")).unwrap();
    let mut kinds = BTreeSet::new();
    for line in vqa.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let kind: QaKind = serde_json::from_value(v["kind"].clone()).unwrap();
        kinds.insert(kind);
        let answer = v["answer"].as_str().unwrap();
        assert!(score_answer(kind, &format!("The {answer}."), answer));
        assert!(truth.iter().any(|(k, _)| k == v["key"].as_str().unwrap()));
    }
    assert!(kinds.len() >= 5, "{kinds:?}");
    let corpus = std::fs::read_to_string(out.join("corpus.txt")).unwrap();
    assert!(corpus.contains("Describe the image in details."));

    // A second run into the same folder is refused rather than mixing datasets.
    let o = vila2()
        .arg("shapes")
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
}

#[test]
fn shapes_rejects_bad_arguments_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (vec!["--image-size", "8"], "--image-size"),
        (vec!["--pretrain", "0"], "--pretrain"),
        (vec!["--eval", "0"], "--eval"),
        (vec!["--shard-size", "0"], "--shard-size"),
    ] {
        let o = vila2()
            .arg("shapes")
            .args(&args)
            .arg("--out")
            .arg(tmp.path().join("x"))
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!tmp.path().join("x").exists(), "{args:?} wrote output");
    }
}
