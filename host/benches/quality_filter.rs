//! The `quality` filter as a sandboxed component against the same logic compiled natively;
//! cold compile against cached load; the fixed cost of one plugin call.
//!
//! `make bench` (or `cargo bench -p vila2 --bench quality_filter` after `make components`).
//! Prints medians and ratios measured in the same run; docs/BENCHMARKS.md records them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use vila2::plugin::records::{Candidate, Sample};
use vila2::plugin::{CacheHit, PluginRuntime, RuntimeConfig, World};

const BATCH: usize = 256;

fn component() -> PathBuf {
    let dir = std::env::var_os("VILA2_COMPONENTS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(|t| PathBuf::from(t).join("wasm32-wasip2/release"))
        })
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release")
        });
    let path = dir.join("vila2_quality.wasm");
    assert!(
        path.exists(),
        "{} missing: run `make components`",
        path.display()
    );
    path
}

/// Deterministic ~60-word captions, a few of them defective.
fn captions() -> Vec<String> {
    const WORDS: &[&str] = &[
        "a", "red", "vase", "stands", "on", "the", "wooden", "table", "next", "to", "window",
        "light", "falls", "across", "white", "wall", "and", "small", "blue", "cup", "sits",
        "beside", "it", "while", "green", "plant", "grows", "in", "corner", "of", "room", "books",
        "are", "stacked", "near", "lamp", "with", "yellow", "shade", "possibly",
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..BATCH)
        .map(|i| {
            let mut words = Vec::with_capacity(60);
            for _ in 0..60 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                words.push(WORDS[(state % WORDS.len() as u64) as usize]);
            }
            let mut s = words.join(" ");
            if i % 17 != 0 {
                s.push('.');
            }
            s
        })
        .collect()
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Median wall time of `f` over `reps` runs after `warm` warm-up runs.
fn time<R>(warm: usize, reps: usize, mut f: impl FnMut() -> R) -> Duration {
    for _ in 0..warm {
        std::hint::black_box(f());
    }
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let texts = captions();
    let batch: Vec<Candidate> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Candidate {
            sample: Sample {
                key: format!("s{i:06}"),
                width: 640,
                height: 480,
                original_caption: "a photo".into(),
                metadata: vec![],
            },
            text: t.clone(),
            model: "bench".into(),
            round: 1,
            mean_logprob: Some(-1.2),
        })
        .collect();
    let bytes = std::fs::read(component()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cfg = RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeConfig::default()
    };

    // Native: the same judge function the component runs, producing the same verdict records.
    let qcfg = vila2_quality::Config::default();
    let native = time(20, 200, || {
        texts
            .iter()
            .map(|t| vila2_quality::judge_candidate(&qcfg, t, Some(-1.2)).to_verdict())
            .collect::<Vec<_>>()
    });

    // Cold compile (fresh runtime, empty cache) vs cached load (fresh runtime, artifact on disk).
    let cold = time(0, 3, || {
        let rt = PluginRuntime::new(RuntimeConfig {
            cache_dir: None,
            ..RuntimeConfig::default()
        })
        .unwrap();
        let (_, hit) = rt.compile("quality", &bytes).unwrap();
        assert_eq!(hit, CacheHit::Compiled);
    });
    PluginRuntime::new(cfg.clone())
        .unwrap()
        .compile("quality", &bytes)
        .unwrap();
    let cached = time(2, 20, || {
        let rt = PluginRuntime::new(cfg.clone()).unwrap();
        let p = rt
            .load_bytes("quality", &bytes, World::CaptionFilter)
            .unwrap();
        assert_eq!(rt.compile("quality", &bytes).unwrap().1, CacheHit::Memory);
        p
    });

    let rt = PluginRuntime::new(cfg).unwrap();
    let plugin = rt
        .load_bytes("quality", &bytes, World::CaptionFilter)
        .unwrap();
    let out = plugin.filter(&batch).unwrap();
    let kept = out
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|v| v.keep))
        .count();
    let native_kept = texts
        .iter()
        .filter(|t| vila2_quality::judge_candidate(&qcfg, t, Some(-1.2)).keep)
        .count();
    assert_eq!(kept, native_kept, "component and native logic disagree");
    let wasm = time(20, 200, || plugin.filter(&batch).unwrap());
    // Transport only: the same records with empty captions (the filter returns at once).
    let empty: Vec<Candidate> = batch
        .iter()
        .map(|c| Candidate {
            text: String::new(),
            ..c.clone()
        })
        .collect();
    let transport = time(20, 200, || plugin.filter(&empty).unwrap());
    // The same component without fuel metering (deadline only).
    let unmetered = PluginRuntime::new(RuntimeConfig {
        fuel_per_item: 0,
        cache_dir: None,
        ..RuntimeConfig::default()
    })
    .unwrap()
    .load_bytes("quality", &bytes, World::CaptionFilter)
    .unwrap();
    let wasm_nofuel = time(20, 200, || unmetered.filter(&batch).unwrap());
    let one = [Candidate {
        text: "A cup.".into(),
        ..batch[0].clone()
    }];
    let overhead = time(100, 2000, || plugin.filter(&one).unwrap());
    let native_one = time(100, 2000, || {
        vila2_quality::judge_candidate(&qcfg, "A cup.", Some(-1.2)).to_verdict()
    });

    let per_s = |d: Duration| BATCH as f64 / d.as_secs_f64();
    println!("quality filter, batches of {BATCH} captions of 60 words ({kept} kept)");
    println!("| measure | value |");
    println!("|---|---|");
    println!("| native captions/s | {:.0} |", per_s(native));
    println!("| wasm component captions/s | {:.0} |", per_s(wasm));
    println!(
        "| wasm / native throughput | {:.2}x |",
        native.as_secs_f64() / wasm.as_secs_f64()
    );
    println!(
        "| wasm without fuel metering captions/s | {:.0} |",
        per_s(wasm_nofuel)
    );
    println!(
        "| wasm without fuel / native | {:.2}x |",
        native.as_secs_f64() / wasm_nofuel.as_secs_f64()
    );
    println!(
        "| transport only (empty captions) records/s | {:.0} |",
        per_s(transport)
    );
    println!("| cold compile (ms) | {:.1} |", cold.as_secs_f64() * 1e3);
    println!(
        "| cached load, new runtime (ms) | {:.2} |",
        cached.as_secs_f64() * 1e3
    );
    println!(
        "| cold / cached | {:.0}x |",
        cold.as_secs_f64() / cached.as_secs_f64()
    );
    println!(
        "| per-call overhead, 1-item batch minus native item (µs) | {:.1} |",
        (overhead.as_secs_f64() - native_one.as_secs_f64()) * 1e6
    );
}
