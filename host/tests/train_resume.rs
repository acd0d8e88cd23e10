//! Shuffled reading, resumable checkpoints and non-finite losses: a run killed with SIGKILL
//! after a checkpoint and resumed ends where an uninterrupted run ends.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tch::Tensor;
use vila2::train::data::ShardReader;
use vila2::train::init::{ModelSpec, init_model};
use vila2::train::trainer::{TrainConfig, run};
use vila2::train::{Stage, TrainError};

fn tiny_model(dir: &Path) -> PathBuf {
    let corpus = dir.join("corpus.txt");
    std::fs::write(
        &corpus,
        "A red square on a blue background.\nThe picture shows two circles and a triangle.\n",
    )
    .unwrap();
    let mut spec = ModelSpec::tiny();
    spec.vocab_size = 300;
    spec.text.hidden_size = 32;
    spec.text.intermediate_size = 64;
    spec.vision.hidden_size = 32;
    spec.vision.intermediate_size = 64;
    spec.vision.image_size = 32;
    let out = dir.join("model");
    init_model(&spec, &corpus, &out, 0).unwrap();
    out
}

fn data(dir: &Path) -> PathBuf {
    let d = dir.join("data");
    std::fs::create_dir_all(&d).unwrap();
    common::caption_shard(&d.join("000000.tar"), 7, 0);
    common::caption_shard(&d.join("000001.tar"), 5, 100);
    d
}

fn keys(r: &mut ShardReader, n: usize) -> Vec<String> {
    (0..n).map(|_| r.next_sample().unwrap().key).collect()
}

#[test]
fn the_shuffle_is_seeded_and_a_saved_position_replays() {
    let tmp = tempfile::tempdir().unwrap();
    let d = data(tmp.path());
    let order = keys(&mut ShardReader::open(&d).unwrap(), 12);
    let a = keys(&mut ShardReader::shuffled(&d, 4, 1).unwrap(), 12);
    let b = keys(&mut ShardReader::shuffled(&d, 4, 1).unwrap(), 12);
    let c = keys(&mut ShardReader::shuffled(&d, 4, 2).unwrap(), 12);
    assert_eq!(a, b);
    assert_ne!(a, order);
    assert_ne!(a, c);
    // The buffer stays within its pass: the epoch's 12 draws are its 12 samples.
    let mut early = keys(&mut ShardReader::shuffled(&d, 4, 1).unwrap(), 12);
    early.sort();
    early.dedup();
    assert_eq!(early.len(), 12);

    let mut r = ShardReader::shuffled(&d, 4, 1).unwrap();
    keys(&mut r, 17);
    let state = r.state();
    let mut replay = ShardReader::resume(&d, 4, 1, &state).unwrap();
    assert_eq!(replay.state(), state);
    assert_eq!(keys(&mut replay, 10), keys(&mut r, 10));
}

fn train_cmd(init: &Path, data: &Path, out: &Path, flat: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vila2"));
    c.args([
        "train",
        "--stage",
        "sft",
        "--steps",
        "30",
        "--save-every",
        "3",
        "--flat-optimizer",
        if flat { "true" } else { "false" },
    ])
    .args(["--batch-size", "2", "--shuffle-buffer", "5", "--lr", "1e-3"])
    .arg("--init")
    .arg(init)
    .arg("--data")
    .arg(data)
    .arg("--out")
    .arg(out)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    c
}

fn tensors(file: &Path) -> Vec<(String, Tensor)> {
    let mut t = Tensor::read_safetensors(file).unwrap();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

fn losses(out: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let f = v["data_wait_fraction"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&f), "{l}");
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn a_killed_run_resumes_to_the_same_parameters() {
    // Tensor by tensor (the CPU's default) and through the flat buffers (CUDA's), which
    // restore the saved moments into views of the packed state.
    for flat in [false, true] {
        killed_run_resumes(flat);
    }
}

fn killed_run_resumes(flat: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let init = tiny_model(tmp.path());
    let d = data(tmp.path());

    let full = tmp.path().join("full");
    assert!(
        train_cmd(&init, &d, &full, flat)
            .status()
            .unwrap()
            .success()
    );

    let killed = tmp.path().join("killed");
    let mut child = train_cmd(&init, &d, &killed, flat).spawn().unwrap();
    let latest = killed.join("checkpoints/latest");
    let t0 = Instant::now();
    while !latest.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no checkpoint written"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run finished before it could be killed"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!killed.join("model.safetensors").exists());
    // A save interrupted by the kill leaves a .tmp folder; resuming ignores it.
    let torn = killed.join("checkpoints/step-99999999.tmp");
    std::fs::create_dir_all(&torn).unwrap();
    std::fs::write(torn.join("model.safetensors"), b"torn").unwrap();

    let mut resume = train_cmd(&init, &d, &killed, flat);
    resume.arg("--resume").stdout(Stdio::piped());
    let o = resume.output().unwrap();
    assert!(o.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let from = summary["resumed_from"].as_u64().unwrap();
    assert!((3..30).contains(&from), "resumed from {from}");
    assert_eq!(summary["steps"], 30);

    assert_same_run(&full, &killed, 30, &format!("flat {flat}"));
}

/// The runs in `a` and `b` end with the same parameters and log the same `steps` losses,
/// each step once.
fn assert_same_run(a: &Path, b: &Path, steps: usize, what: &str) {
    let (ta, tb) = (
        tensors(&a.join("model.safetensors")),
        tensors(&b.join("model.safetensors")),
    );
    assert_eq!(ta.len(), tb.len());
    for ((ka, xa), (kb, xb)) in ta.iter().zip(&tb) {
        assert_eq!(ka, kb);
        let d = (xa - xb).abs().max().double_value(&[]);
        assert!(d < 1e-5, "{what}: {ka} differs by {d}");
    }
    let (la, lb) = (losses(a), losses(b));
    assert_eq!(lb.len(), steps, "{what}: the log holds each step once");
    for ((sa, xa), (sb, xb)) in la.iter().zip(&lb) {
        assert_eq!(sa, sb);
        assert!((xa - xb).abs() < 1e-5, "{what}: step {sa}: {xa} vs {xb}");
    }
}

#[test]
fn a_non_finite_loss_stops_and_names_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let init = tiny_model(tmp.path());
    let d = data(tmp.path());
    let out = tmp.path().join("out");
    let mut cfg = TrainConfig::new(Stage::Sft, 10);
    cfg.lr = Some(1e30);
    cfg.save_every = 1;
    cfg.max_grad_norm = 0.0;
    let err = run(&d, &init, &out, cfg, |_| {}).unwrap_err();
    let TrainError::NonFinite {
        step, checkpoint, ..
    } = &err
    else {
        panic!("{err}");
    };
    let good = checkpoint.as_ref().expect("a good checkpoint");
    assert_eq!(*good, out.join(format!("checkpoints/step-{:08}", step - 1)));
    assert!(good.join("model.safetensors").exists());
    let msg = err.to_string();
    assert!(msg.contains(&format!("step {step}")), "{msg}");
    assert!(msg.contains(&good.display().to_string()), "{msg}");
    assert!(!out.join("model.safetensors").exists());
    // The good checkpoint's weights are finite.
    for (k, t) in tensors(&good.join("model.safetensors")) {
        assert!(t.isfinite().all().int64_value(&[]) == 1, "{k}");
    }
}

fn pad_fractions(out: &Path) -> Vec<f64> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["pad_fraction"].as_f64().unwrap()
        })
        .collect()
}

fn grouped_cfg(steps: usize, length_group: usize) -> TrainConfig {
    let mut cfg = TrainConfig::new(Stage::Sft, steps);
    cfg.batch_size = 2;
    cfg.shuffle_buffer = 5;
    cfg.lr = Some(1e-3);
    cfg.device = tch::Device::Cpu;
    cfg.length_group = length_group;
    cfg
}

#[test]
fn length_groups_pad_less_and_a_run_stopped_inside_one_resumes_to_the_same_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    let init = tiny_model(tmp.path());
    let d = data(tmp.path());

    let plain = tmp.path().join("plain");
    run(&d, &init, &plain, grouped_cfg(14, 1), |_| {}).unwrap();
    let full = tmp.path().join("full");
    let summary = run(&d, &init, &full, grouped_cfg(14, 4), |_| {}).unwrap();
    assert_eq!(summary.steps, 14);
    // Same samples (14 steps of 2 from the same seeded stream), less padding.
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    let (p, g) = (mean(pad_fractions(&plain)), mean(pad_fractions(&full)));
    assert!(g < p, "padding grouped {g:.4}, in drawn order {p:.4}");

    // Stopped at step 7, after the checkpoint of step 6: inside the group of steps 5-8,
    // two of whose steps were taken.
    let stopped = tmp.path().join("stopped");
    let mut cfg = grouped_cfg(14, 4);
    cfg.save_every = 3;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(&d, &init, &stopped, cfg.clone(), |s| {
            assert!(s.step < 7, "stopped at step 7");
        })
    }));
    assert!(r.is_err());
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(stopped.join("checkpoints/step-00000006/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["group_done"], 2, "{state}");
    assert_eq!(state["key"]["length_group"], 4);

    cfg.resume = true;
    let resumed = run(&d, &init, &stopped, cfg.clone(), |_| {}).unwrap();
    assert_eq!(resumed.resumed_from, 6);
    assert_eq!(resumed.truncated, summary.truncated);
    assert_eq!(resumed.data, summary.data);
    assert_same_run(&full, &stopped, 14, "length groups");

    // Resuming with another grouping is refused, naming the settings.
    let mut other = cfg;
    other.length_group = 2;
    let err = run(&d, &init, &stopped, other, |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("length_group"), "{err}");
}
