//! The VILA² loop end to end on a tiny ShapesWorld: two self-augmentation rounds and one
//! specialist through the real CLI (model from scratch, real plugins, real training), a run
//! killed at random points and resumed, and the bad inputs of the pipeline.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vila2::data::shapes::facts::relation_facts;
use vila2::data::shapes::{CaptionTally, Conversation, FactScore, caption_metrics, load_scenes};
use vila2::data::webdataset::{list_shards, read_shard};
use vila2::pipeline::provenance::Provenance;
use vila2::pipeline::prune::{drop_repeated, is_self_relation, sentences};

fn vila2() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vila2"));
    c.env("VILA2_LOG", "warn");
    c
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A tiny ShapesWorld, generated once per test binary.
fn shapes() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pipeline-shapes");
        let _ = std::fs::remove_dir_all(&dir);
        ok(
            vila2()
                .args(["shapes", "--seed", "5", "--pretrain", "24", "--sft", "16"])
                .args(["--specialist", "8", "--eval", "6", "--out"])
                .arg(&dir)
                .output()
                .unwrap(),
            "vila2 shapes",
        );
        dir
    })
}

fn components() -> PathBuf {
    common::component("vila2_recaption")
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A run document over the tiny ShapesWorld; `rounds`, filters and specialists vary.
fn config(dir: &Path, rounds: u32, filters: &str, specialists: bool, pretrain: &Path) -> PathBuf {
    let s = shapes().display().to_string();
    let mut doc = format!(
        r#"seed = 11
rounds = {rounds}
fusion = "concat"
max_failure_fraction = 0.3
components_dir = "{comps}"
[data]
pretrain = "{pretrain}"
sft = "{s}/sft"
ground_truth = "{s}/pretrain/scenes.jsonl"
[eval]
shards = "{s}/eval"
vqa = "{s}/eval/vqa.jsonl"
scenes = "{s}/eval/scenes.jsonl"
max_images = 4
[model]
spec = "tiny"
corpus = "{s}/corpus.txt"
vocab_size = 300
[train]
align = {{ steps = 2, batch_size = 4 }}
pretrain = {{ steps = 3, batch_size = 4 }}
sft = {{ steps = 3, batch_size = 4 }}
specialist = {{ steps = 2, batch_size = 4 }}
vision = {{ steps = 3, batch_size = 4 }}
max_len = 256
[recaption]
template = {{ plugin = "vila2_recaption" }}
filters = [{filters}]
max_new_tokens = 12
batch_size = 4
"#,
        comps = components().display(),
        pretrain = pretrain.display(),
    );
    if specialists {
        doc.push_str(&format!(
            "[[specialists]]\nname = \"spatial\"\nplugin = {{ plugin = \"vila2_spatial\" }}\ndata = \"{s}/specialist/spatial\"\n"
        ));
    }
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("run.toml");
    std::fs::write(&path, doc).unwrap();
    path
}

const LENIENT: &str = r#"{ plugin = "vila2_quality", config = { min_words = 1, require_terminal_punctuation = false, min_score = 0.0 } }"#;

fn augment(config: &Path, out: &Path) -> Output {
    vila2()
        .arg("augment")
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// key → (txt, provenance, image bytes) of every sample in a shard folder.
fn samples(dir: &Path) -> BTreeMap<String, (String, Provenance, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for shard in list_shards(dir).unwrap() {
        for s in read_shard(&shard).unwrap() {
            let txt = String::from_utf8(s.members["txt"].clone()).unwrap();
            let prov: Provenance = serde_json::from_slice(&s.members["json"]).unwrap();
            let dup = out.insert(s.key.clone(), (txt, prov, s.members["png"].clone()));
            assert!(
                dup.is_none(),
                "key {} appears twice in {}",
                s.key,
                dir.display()
            );
        }
    }
    out
}

/// key → (caption, image) of the original pretraining shards.
fn originals(dir: &Path) -> BTreeMap<String, (String, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for shard in list_shards(dir).unwrap() {
        for s in read_shard(&shard).unwrap() {
            let (Some(t), Some(p)) = (s.members.get("txt"), s.members.get("png")) else {
                continue;
            };
            out.insert(s.key, (String::from_utf8(t.clone()).unwrap(), p.clone()));
        }
    }
    out
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap()
}

#[test]
fn loop_end_to_end_then_killed_and_resumed() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pipeline-loop");
    let _ = std::fs::remove_dir_all(&root);
    let pretrain = shapes().join("pretrain");
    let cfg = config(&root, 2, LENIENT, true, &pretrain);

    // Uninterrupted reference run.
    let reference = root.join("reference");
    let started = Instant::now();
    let out = ok(augment(&cfg, &reference), "vila2 augment");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| round 2 |"), "{stdout}");
    let rep = report(&reference);
    let labels: Vec<&str> = rep["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["round 0", "round 1", "round 2", "+ specialists"]);
    // The vision tower was pretrained once, and every round started from that model.
    assert_eq!(rep["vision"]["steps"], 3, "{}", rep["vision"]);
    assert_eq!(rep["vision"]["held_out"]["scenes"], 512);
    assert!(reference.join("init-vision/model.safetensors").exists());
    assert!(
        stdout.contains("Vision tower pretrained 3 steps"),
        "{stdout}"
    );
    for r in rep["rounds"].as_array().unwrap() {
        assert!(
            r["eval"]["vqa_overall"]["total"].as_u64().unwrap() > 0,
            "{r}"
        );
        assert!(
            r["eval"]["captions"]["captions"].as_u64().unwrap() > 0,
            "{r}"
        );
        assert!(!r["losses"].as_array().unwrap().is_empty());
    }
    for f in ["report.md", "vqa.svg", "caption_words.svg", "loss.svg"] {
        assert!(reference.join(f).exists(), "{f} missing");
    }
    let final_dir = reference.join("specialists/data");
    assert_eq!(Path::new(rep["final_data"].as_str().unwrap()), final_dir);
    let orig = originals(&pretrain);
    let got = samples(&final_dir);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        orig.keys().collect::<Vec<_>>(),
        "every sample is kept, none duplicated"
    );
    for (key, (txt, prov, png)) in &got {
        let (org, org_png) = &orig[key];
        assert_eq!(&prov.org_caption, org.trim(), "{key}");
        assert_eq!(png, org_png, "{key}: the image is carried unchanged");
        assert_eq!(
            txt, &prov.caption,
            "{key}: .txt is the provenance's final caption"
        );
        assert_eq!(prov.rounds.len(), 2, "{key}: one record per round");
        assert_eq!(prov.rounds[0].model, "round-0");
        assert_eq!(prov.rounds[1].model, "round-1");
        assert_eq!(prov.rounds[1].model_sha256.len(), 64);
        assert!(
            prov.rounds[0].template.starts_with("vila2-recaption@"),
            "{:?}",
            prov.rounds[0]
        );
        assert_eq!(prov.specialist_turns.len(), 1, "{key}");
        assert_eq!(prov.specialist_turns[0].task, "spatial");
        for t in &prov.specialist_turns[0].turns {
            assert!(txt.contains(t.answer.trim()), "{key}: turn appended");
        }
    }
    for shard in list_shards(&final_dir).unwrap() {
        assert!(shard.with_extension("parquet").exists());
    }

    // Training captions and specialist answers against ground truth, recomputed here.
    let scenes = load_scenes(&shapes().join("pretrain/scenes.jsonl")).unwrap();
    let (mut alt, mut kept, mut last) = (
        CaptionTally::default(),
        FactScore::default(),
        FactScore::default(),
    );
    for (key, (org, _)) in &orig {
        alt.add(org, caption_metrics(org, &scenes[key]));
        let (txt, prov, _) = &got[key];
        for t in &prov.specialist_turns[0].turns {
            kept += relation_facts(&t.answer, &scenes[key]);
        }
        last += relation_facts(txt, &scenes[key]);
    }
    let truth = &rep["rounds"][0]["data"]["truth"];
    assert_eq!(truth["captions"], orig.len(), "{truth}");
    assert!(
        (truth["precision"].as_f64().unwrap() - alt.precision()).abs() < 1e-9,
        "{truth}"
    );
    assert!(alt.hallucination_rate() > 0.0, "alt text is noisy: {alt:?}");
    let fact = |v: &serde_json::Value| FactScore {
        stated: v["stated"].as_u64().unwrap() as usize,
        grounded: v["grounded"].as_u64().unwrap() as usize,
        correct: v["correct"].as_u64().unwrap() as usize,
    };
    assert_eq!(fact(&rep["rounds"][3]["data"]["truth"]["relations"]), last);
    let spatial = &rep["specialists"][0];
    assert_eq!(spatial["name"], "spatial");
    assert_eq!(spatial["answers"], orig.len());
    assert_eq!(fact(&spatial["kept"]), kept, "{spatial}");
    let md = std::fs::read_to_string(reference.join("report.md")).unwrap();
    assert!(
        md.contains("## Training captions against ground truth"),
        "{md}"
    );
    assert!(md.contains("| spatial | 24 |"), "{md}");

    // Running it again redoes nothing and gives the same report.
    let records = |dir: &Path| -> BTreeMap<PathBuf, std::time::SystemTime> {
        std::fs::read_dir(dir.join("tasks"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path(), e.metadata().unwrap().modified().unwrap())
            })
            .collect()
    };
    let before = records(&reference);
    assert!(before.len() > 10, "{before:?}");
    ok(augment(&cfg, &reference), "vila2 augment (again)");
    assert_eq!(records(&reference), before, "a finished run redoes no task");
    assert_eq!(report(&reference)["rounds"], rep["rounds"]);

    // Killed at random points, then resumed: same samples, same content.
    let resumed = root.join("resumed");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    eprintln!("kill schedule seed {seed}, reference run took {took:?}");
    let mut x = seed | 1;
    for kill in 0..3 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = took.mul_f64(0.05 + 0.3 * (x % 1000) as f64 / 1000.0);
        let mut child = vila2()
            .arg("augment")
            .arg("--config")
            .arg(&cfg)
            .arg("--out")
            .arg(&resumed)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + at;
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        eprintln!("kill {kill} after {at:?}: {status}");
    }
    ok(augment(&cfg, &resumed), "vila2 augment (resume)");
    let again = samples(&resumed.join("specialists/data"));
    assert_eq!(
        again.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (key, (txt, prov, png)) in &again {
        let (rtxt, rprov, rpng) = &got[key];
        assert_eq!(png, rpng, "{key}");
        assert_eq!(
            txt, rtxt,
            "{key}: caption differs from the uninterrupted run"
        );
        assert_eq!(
            prov, rprov,
            "{key}: provenance differs from the uninterrupted run"
        );
    }
    let mut eval = report(&resumed)["rounds"][2]["eval"].clone();
    let mut want = rep["rounds"][2]["eval"].clone();
    eval["seconds"] = 0.into();
    want["seconds"] = 0.into();
    assert_eq!(
        eval, want,
        "the resumed run's evaluation equals the reference's"
    );

    // A copy of the finished run (without its run.toml) under a config with one setting
    // changed redoes exactly the tasks downstream of that setting and reuses the rest.
    let changed = root.join("changed");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&reference)
        .arg(&changed)
        .status()
        .unwrap();
    assert!(cp.success());
    std::fs::remove_file(changed.join("run.toml")).unwrap();
    let doc = std::fs::read_to_string(&cfg).unwrap();
    let old_sft = "sft = { steps = 3, batch_size = 4 }";
    assert!(doc.contains(old_sft), "{doc}");
    let changed_cfg = root.join("changed.toml");
    std::fs::write(
        &changed_cfg,
        doc.replace(old_sft, "sft = { steps = 4, batch_size = 4 }"),
    )
    .unwrap();
    let contents = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir.join("tasks"))
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect()
    };
    let before = contents(&changed);
    ok(
        augment(&changed_cfg, &changed),
        "vila2 augment (changed sft)",
    );
    let after = contents(&changed);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    let kept: Vec<&str> = before
        .iter()
        .filter(|(k, v)| after[*k] == **v)
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        kept,
        ["init", "round-0__align", "round-0__pretrain", "vision"],
        "only the tasks upstream of SFT are reused"
    );
    let rounds = &report(&changed)["rounds"];
    let steps = |r: &serde_json::Value| r["losses"].as_array().unwrap().len();
    assert_eq!(steps(&rounds[0]), 2 + 3 + 4, "{}", rounds[0]["losses"]);
    assert_eq!(steps(&rep["rounds"][0]), 2 + 3 + 3);
}

/// Copies the pretraining shards and adds one with an undecodable image and an empty caption.
fn pretrain_with_bad_samples(dir: &Path) -> PathBuf {
    let out = dir.join("pretrain");
    std::fs::create_dir_all(&out).unwrap();
    for shard in list_shards(&shapes().join("pretrain")).unwrap() {
        std::fs::copy(&shard, out.join(shard.file_name().unwrap())).unwrap();
    }
    let good = read_shard(&list_shards(&out).unwrap()[0])
        .unwrap()
        .remove(0);
    let mut w = vila2::data::webdataset::ShardWriter::create(out.join("zz-bad.tar")).unwrap();
    w.add(
        "broken-image",
        &[("png", b"not a png".as_slice()), ("txt", b"a red circle")],
    )
    .unwrap();
    w.add(
        "empty-caption",
        &[("png", good.members["png"].as_slice()), ("txt", b"  ")],
    )
    .unwrap();
    w.finish().unwrap();
    out
}

#[test]
fn undecodable_images_and_empty_captions_are_skipped_and_listed() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pipeline-bad-samples");
    let _ = std::fs::remove_dir_all(&root);
    let pretrain = pretrain_with_bad_samples(&root);
    let cfg = config(&root, 1, LENIENT, false, &pretrain);
    ok(augment(&cfg, &root.join("run")), "vila2 augment");
    let rep = report(&root.join("run"));
    let skipped = rep["rounds"][1]["recaption"]["skipped"].to_string();
    assert!(
        skipped.contains("broken-image") && skipped.contains("undecodable"),
        "{skipped}"
    );
    assert!(
        skipped.contains("empty-caption") && skipped.contains("empty caption"),
        "{skipped}"
    );
    let md = std::fs::read_to_string(root.join("run/report.md")).unwrap();
    assert!(md.contains("broken-image"), "{md}");
    let got = samples(&root.join("run/round-1/data"));
    assert!(!got.contains_key("broken-image") && !got.contains_key("empty-caption"));
    assert_eq!(got.len(), originals(&shapes().join("pretrain")).len());
}

#[test]
fn a_filter_trapping_on_some_items_leaves_their_caption_and_records_the_error() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pipeline-trap-some");
    let _ = std::fs::remove_dir_all(&root);
    let pretrain = shapes().join("pretrain");
    let victim = originals(&pretrain).keys().nth(3).unwrap().clone();
    let filters = format!(
        r#"{{ plugin = "{}", config = {{ mode = "panic-on-key:{victim}" }} }}"#,
        common::component("vila2_faulty_plugin").display()
    );
    let cfg = config(&root, 1, &filters, false, &pretrain);
    // One sample per plugin call, so the trap hits only the victim's batch.
    let doc = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("batch_size = 4\n", "batch_size = 1\n");
    std::fs::write(&cfg, doc).unwrap();
    ok(augment(&cfg, &root.join("run")), "vila2 augment");
    let got = samples(&root.join("run/round-1/data"));
    let (txt, prov, _) = &got[&victim];
    let r = &prov.rounds[0];
    assert!(!r.kept);
    assert!(
        r.error.as_deref().unwrap_or("").contains("trapped"),
        "{r:?}"
    );
    assert_eq!(
        txt, &prov.org_caption,
        "the victim keeps its previous caption"
    );
    let healthy = got.iter().filter(|(k, _)| **k != victim);
    assert!(
        healthy
            .clone()
            .all(|(_, (_, p, _))| p.rounds[0].error.is_none())
    );
    let rep = report(&root.join("run"));
    assert_eq!(rep["rounds"][1]["recaption"]["failed"], 1);
}

#[test]
fn pruning_drops_unlikely_sentences_and_a_caption_with_none_left_keeps_its_previous_one() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pipeline-prune");
    let _ = std::fs::remove_dir_all(&root);
    let pretrain = shapes().join("pretrain");
    let cfg = config(&root, 1, LENIENT, false, &pretrain);
    // A barely trained model is sure of no token: a bar just under certainty prunes every
    // sentence it writes.
    let doc = std::fs::read_to_string(&cfg).unwrap().replacen(
        "max_new_tokens = 12\n",
        "max_new_tokens = 12\nmin_sentence_logprob = -0.001\n",
        1,
    );
    std::fs::write(&cfg, doc).unwrap();
    ok(augment(&cfg, &root.join("run")), "vila2 augment");
    let got = samples(&root.join("run/round-1/data"));
    let orig = originals(&pretrain);
    assert_eq!(got.len(), orig.len());
    let mut pruned = 0;
    for (key, (txt, prov, _)) in &got {
        let r = &prov.rounds[0];
        assert!(!r.kept && r.recaption.is_none(), "{key}: {r:?}");
        assert!(!r.pruned.is_empty(), "{key}: nothing recorded as pruned");
        for (i, s) in r.pruned.iter().enumerate() {
            assert_eq!(s.index, i);
            assert!(!s.text.trim().is_empty());
            assert!(s.min_logprob < -0.001, "{key}: {s:?}");
        }
        pruned += r.pruned.len();
        assert_eq!(txt, &orig[key].0, "{key} keeps its caption");
    }
    let rep = report(&root.join("run"));
    let rc = &rep["rounds"][1]["recaption"];
    assert_eq!(rc["pruned_sentences"], pruned);
    assert_eq!(rc["reasons"]["pruned-empty"], got.len());
    assert_eq!(rc["recaptioned"], 0);
    let md = std::fs::read_to_string(root.join("run/report.md")).unwrap();
    assert!(
        md.contains("sentences pruned for a low-probability token"),
        "{md}"
    );
}

/// The SFT split as one turn per image: `prompt`, answered by `answer`.
fn sft_answering(dir: &Path, prompt: &str, answer: &str) -> PathBuf {
    let out = dir.join("sft");
    std::fs::create_dir_all(&out).unwrap();
    for shard in list_shards(&shapes().join("sft")).unwrap() {
        let mut w =
            vila2::data::webdataset::ShardWriter::create(out.join(shard.file_name().unwrap()))
                .unwrap();
        for s in read_shard(&shard).unwrap() {
            let pairs = [(prompt.to_string(), answer.to_string())];
            let json = serde_json::to_vec(&Conversation::from_pairs(&pairs)).unwrap();
            w.add(
                &s.key,
                &[("png", s.members["png"].as_slice()), ("json", &json)],
            )
            .unwrap();
        }
        w.finish().unwrap();
    }
    out
}

#[test]
fn repeated_and_self_relation_sentences_are_dropped_from_recaptions() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pipeline-dropped-sentences");
    let _ = std::fs::remove_dir_all(&root);
    let pretrain = shapes().join("pretrain");
    // A model taught one answer to the brief recaption prompt, a self-relation then a true
    // sentence said twice, writes it back.
    let relation = "The red circle is to the left of the red circle.";
    let sft = sft_answering(
        &root,
        "Describe the image briefly.",
        &format!("{relation} A red circle. A  red circle."),
    );
    let cfg = config(&root, 1, LENIENT, false, &pretrain);
    let doc = std::fs::read_to_string(&cfg)
        .unwrap()
        .replacen(
            &format!("sft = \"{}/sft\"", shapes().display()),
            &format!("sft = \"{}\"", sft.display()),
            1,
        )
        .replacen(
            "sft = { steps = 3, batch_size = 4 }",
            "sft = { steps = 120, batch_size = 4, lr = 0.003 }",
            1,
        )
        .replacen(
            "max_new_tokens = 12\n",
            "max_new_tokens = 64\ndrop_self_relations = true\ndrop_repeated_sentences = true\n",
            1,
        )
        .replacen(
            r#"template = { plugin = "vila2_recaption" }"#,
            r#"template = { plugin = "vila2_recaption", config = { recipe = "brief" } }"#,
            1,
        );
    assert!(doc.contains("drop_self_relations") && doc.contains("drop_repeated_sentences"));
    assert!(doc.contains(r#"recipe = "brief""#));
    assert!(doc.contains(&*sft.display().to_string()));
    std::fs::write(&cfg, doc).unwrap();
    ok(augment(&cfg, &root.join("run")), "vila2 augment");
    let got = samples(&root.join("run/round-1/data"));
    let orig = originals(&pretrain);
    assert_eq!(got.len(), orig.len());
    let (mut dropped, mut repeated, mut learnt, mut emptied) = (0, 0, 0, 0);
    for (key, (txt, prov, _)) in &got {
        let r = &prov.rounds[0];
        for s in &r.self_relations {
            assert!(is_self_relation(s), "{key}: {s}");
        }
        dropped += r.self_relations.len();
        repeated += r.repeated_sentences;
        if let Some(kept) = &r.recaption {
            for range in sentences(kept) {
                let s = &kept[range];
                assert!(!is_self_relation(s), "{key}: {s}");
            }
            assert_eq!(drop_repeated(kept).1, 0, "{key} repeats a sentence: {kept}");
        }
        assert!(!txt.contains(relation), "{key}: {txt}");
        if r.self_relations != [relation] || r.repeated_sentences != 1 {
            continue;
        }
        learnt += 1;
        match &r.recaption {
            Some(kept) => {
                assert_eq!(kept, "A red circle.", "{key}");
                assert!(r.kept && txt.contains(kept.as_str()), "{key}: {txt}");
            }
            None => {
                // Nothing left: the sample keeps its previous caption.
                emptied += 1;
                assert!(!r.kept, "{key}: {r:?}");
                assert_eq!(txt, &orig[key].0, "{key} keeps its caption");
            }
        }
    }
    assert!(
        learnt * 2 >= got.len(),
        "the model wrote the taught answer for {learnt} of {} images",
        got.len()
    );
    let rep = report(&root.join("run"));
    let rc = &rep["rounds"][1]["recaption"];
    if emptied > 0 {
        assert_eq!(rc["reasons"]["self-relations-only"], emptied);
    }
    assert_eq!(rc["self_relations"], dropped);
    assert_eq!(rc["repeated_sentences"], repeated);
    let md = std::fs::read_to_string(root.join("run/report.md")).unwrap();
    assert!(
        md.contains(&format!(
            "sentences relating an object to itself dropped × {dropped}"
        )),
        "{md}"
    );
    assert!(
        md.contains(&format!("repeated sentences dropped × {repeated}")),
        "{md}"
    );
}

#[test]
fn a_filter_failing_everything_stops_the_run_clearly() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pipeline-fail-all");
    let _ = std::fs::remove_dir_all(&root);
    let filters = format!(
        r#"{{ plugin = "{}", config = {{ mode = "panic" }} }}"#,
        common::component("vila2_faulty_plugin").display()
    );
    let cfg = config(&root, 1, &filters, false, &shapes().join("pretrain"));
    let out = augment(&cfg, &root.join("run"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("max_failure_fraction") && err.contains("trapped"),
        "{err}"
    );
    assert!(
        !root.join("run/round-1/data").exists()
            || list_shards(&root.join("run/round-1/data")).is_err()
    );
}

#[test]
fn missing_plugin_or_model_is_named() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pipeline-missing");
    let _ = std::fs::remove_dir_all(&root);
    let filters = r#"{ plugin = "no_such_filter" }"#;
    let cfg = config(&root, 1, filters, false, &shapes().join("pretrain"));
    let out = augment(&cfg, &root.join("run"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("recaption.filters[0].plugin") && err.contains("no_such_filter.wasm"),
        "{err}"
    );

    let cfg = config(&root, 1, LENIENT, false, &shapes().join("pretrain"));
    let doc = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("spec = \"tiny\"", "init = \"no/such/model\"")
        .replace("corpus = ", "# corpus = ");
    std::fs::write(&cfg, doc).unwrap();
    let out = augment(&cfg, &root.join("run2"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("model.init") && err.contains("no/such/model"),
        "{err}"
    );
}
