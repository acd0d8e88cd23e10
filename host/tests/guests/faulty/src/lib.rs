//! A caption filter whose `configure` selects a misbehaviour. The host's fault tests use it to
//! check that every kind of guest failure is contained: the host stays up and the next call on
//! the same plugin works.
//!
//! Modes: `ok`, `loop`, `alloc`, `recurse`, `panic`, `open-file`, `socket`, `env`,
//! `huge-string`, `wrong-length`, `judge`, `panic-on-key:SUBSTRING` (traps when a candidate's
//! sample key contains SUBSTRING, keeps everything otherwise). A batch whose first candidate's text is
//! `fault:MODE` uses that mode instead of the configured one, so a test can make one batch
//! misbehave and check that the next batch on the same plugin works.
#![allow(clippy::missing_safety_doc)]

use std::cell::RefCell;

wit_bindgen::generate!({
    path: "../../../wit",
    world: "caption-filter",
});

use exports::vila2::plugin::filter::Guest as FilterGuest;
use exports::vila2::plugin::plugin::Guest as PluginGuest;
use vila2::plugin::types::{Candidate, Description, Verdict, WorldKind};

thread_local! {
    static MODE: RefCell<String> = RefCell::new("ok".to_string());
}

struct Faulty;

impl PluginGuest for Faulty {
    fn describe() -> Description {
        Description {
            name: "faulty".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            world: WorldKind::CaptionFilter,
            description: "misbehaves on request".into(),
            config_schema: r#"{"type":"object","properties":{"mode":{"type":"string"}}}"#.into(),
        }
    }

    fn configure(config: String) -> Result<(), String> {
        let mode = parse_mode(&config)?;
        MODE.with(|m| *m.borrow_mut() = mode);
        Ok(())
    }
}

/// Reads `{"mode": "..."}` without a JSON dependency.
fn parse_mode(config: &str) -> Result<String, String> {
    let rest = config
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| format!("config is not a JSON object: {config}"))?;
    let (key, value) = rest
        .split_once(':')
        .ok_or_else(|| "config: expected a field `mode`".to_string())?;
    if key.trim() != "\"mode\"" {
        return Err(format!("config: unknown field {}", key.trim()));
    }
    let value = value.trim();
    value
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .map(str::to_string)
        .ok_or_else(|| format!("config.mode: expected a string, got {value}"))
}

/// Recursion without end in small frames: exhausts wasm's own call stack.
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    recurse(std::hint::black_box(depth + 1)) + 1
}

/// Recursion without end in frames held in linear memory: overflows the guest's shadow stack.
fn recurse_big_frames(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    let frame = std::hint::black_box([depth; 64]);
    recurse_big_frames(frame[0] + 1) + frame[63]
}

fn keep(reason: String) -> Result<Verdict, String> {
    Ok(Verdict {
        keep: true,
        score: 1.0,
        reasons: vec![reason],
    })
}

impl FilterGuest for Faulty {
    fn filter(batch: Vec<Candidate>) -> Vec<Result<Verdict, String>> {
        let mode = match batch.first().and_then(|c| c.text.strip_prefix("fault:")) {
            Some(m) => m.to_string(),
            None => MODE.with(|m| m.borrow().clone()),
        };
        match mode.as_str() {
            "loop" => loop {
                std::hint::black_box(&mode);
            },
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recurse" => {
                let n = recurse(0);
                batch.iter().map(|_| keep(n.to_string())).collect()
            }
            "recurse-big-frames" => {
                let n = recurse_big_frames(0);
                batch.iter().map(|_| keep(n.to_string())).collect()
            }
            "panic" => panic!("faulty plugin panics on purpose"),
            m if m.starts_with("panic-on-key:") => {
                let needle = &m["panic-on-key:".len()..];
                if let Some(c) = batch.iter().find(|c| c.sample.key.contains(needle)) {
                    panic!("faulty plugin panics on sample {}", c.sample.key);
                }
                batch.iter().map(judge_length).collect()
            }
            "judge" => batch
                .iter()
                .map(|c| {
                    vila2::plugin::judge::score(&c.sample.key, "Describe the image.", &c.text).map(
                        |j| Verdict {
                            keep: j.mean_logprob > -5.0,
                            score: j.mean_logprob.exp(),
                            reasons: Vec::new(),
                        },
                    )
                })
                .collect(),
            "open-file" => {
                let r = std::fs::read_to_string("/etc/passwd");
                batch
                    .iter()
                    .map(|_| match &r {
                        Ok(_) => keep("opened /etc/passwd".into()),
                        Err(e) => Err(format!("open failed: {e}")),
                    })
                    .collect()
            }
            "socket" => {
                let r = std::net::TcpStream::connect("127.0.0.1:5432");
                batch
                    .iter()
                    .map(|_| match &r {
                        Ok(_) => keep("connected".into()),
                        Err(e) => Err(format!("connect failed: {e}")),
                    })
                    .collect()
            }
            "env" => {
                let vars: Vec<(String, String)> = std::env::vars().collect();
                let args: Vec<String> = std::env::args().collect();
                batch
                    .iter()
                    .map(|_| keep(format!("env={} args={}", vars.len(), args.len())))
                    .collect()
            }
            "huge-string" => batch.iter().map(|_| keep("x".repeat(100 << 20))).collect(),
            "wrong-length" => batch.iter().skip(1).map(|c| keep(c.text.clone())).collect(),
            "ok" => batch.iter().map(judge_length).collect(),
            other => batch
                .iter()
                .map(|_| Err(format!("unknown fault mode `{other}`")))
                .collect(),
        }
    }
}

/// The well-behaved path: keeps non-empty captions, scores by length.
fn judge_length(c: &Candidate) -> Result<Verdict, String> {
    vila2::plugin::log::log(
        vila2::plugin::log::Level::Debug,
        &format!("judging {}", c.sample.key),
    );
    Ok(Verdict {
        keep: !c.text.is_empty(),
        score: c.text.len().min(100) as f32 / 100.0,
        reasons: Vec::new(),
    })
}

export!(Faulty);
