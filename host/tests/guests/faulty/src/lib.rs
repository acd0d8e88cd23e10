//! A caption filter whose `configure` selects a misbehaviour. The host's fault tests use it to
//! check that every kind of guest failure is contained: the host stays up and the next call on
//! the same plugin works.
//!
//! Modes: `ok`, `loop`, `alloc`, `recurse`, `panic`, `open-file`, `socket`, `env`,
//! `huge-string`, `wrong-length`, `trap-once` (traps on the first batch of each instance).
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
    static CALLS: RefCell<u32> = const { RefCell::new(0) };
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

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    std::hint::black_box(recurse(depth + 1)) + 1
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
        let mode = MODE.with(|m| m.borrow().clone());
        let calls = CALLS.with(|c| {
            *c.borrow_mut() += 1;
            *c.borrow()
        });
        match mode.as_str() {
            "loop" => loop {
                std::hint::black_box(calls);
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
            "panic" => panic!("faulty plugin panics on purpose"),
            "trap-once" if calls == 1 => panic!("first call of this instance traps"),
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
            "huge-string" => batch
                .iter()
                .map(|_| keep("x".repeat(100 << 20)))
                .collect(),
            "wrong-length" => batch.iter().skip(1).map(|c| keep(c.text.clone())).collect(),
            _ => batch
                .iter()
                .map(|c| {
                    vila2::plugin::log::log(
                        vila2::plugin::log::Level::Debug,
                        &format!("judging {}", c.sample.key),
                    );
                    Ok(Verdict {
                        keep: !c.text.is_empty(),
                        score: c.text.len().min(100) as f32 / 100.0,
                        reasons: Vec::new(),
                    })
                })
                .collect(),
        }
    }
}

export!(Faulty);
