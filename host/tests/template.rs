//! The guest SDK's template builds the way a third party builds it (its own crate, its own
//! target dir, `cargo build --target wasm32-wasip2 --release`) and runs through
//! `vila2 plugin inspect` and `vila2 plugin run`.

use std::path::Path;
use std::process::Command;

#[test]
fn template_filter_builds_and_runs_through_the_cli() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let template = root.join("guest-sdk/template");
    let lines = ["Cargo.toml", "src/lib.rs"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(template.join(f))
                .unwrap()
                .lines()
                .count()
        })
        .sum::<usize>();
    assert!(
        lines < 40,
        "the template is {lines} lines; it must stay under 40"
    );

    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("target");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(&template)
        .args(["build", "--target", "wasm32-wasip2", "--release", "--quiet"])
        .env("CARGO_TARGET_DIR", &target);
    // Build as an outsider would: nothing inherited from the cargo running this test.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CARGO_") && k != "CARGO_HOME" || k == "RUSTFLAGS" {
            cargo.env_remove(&k);
        }
    }
    cargo.env("CARGO_TARGET_DIR", &target);
    let status = cargo.status().unwrap();
    assert!(status.success(), "template build failed: {status}");
    let wasm = target.join("wasm32-wasip2/release/my_filter.wasm");
    assert!(wasm.exists(), "{} not built", wasm.display());

    let vila2 = env!("CARGO_BIN_EXE_vila2");
    let cache = work.path().join("cache");
    let out = Command::new(vila2)
        .args(["plugin", "inspect"])
        .arg(&wasm)
        .env("VILA2_CACHE_DIR", &cache)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["world"], "caption-filter");
    assert_eq!(report["description"]["name"], "my-filter");

    let input = work.path().join("samples.jsonl");
    std::fs::write(
        &input,
        concat!(
            r#"{"sample":{"key":"a"},"text":"a red vase on a table"}"#,
            "\n",
            r#"{"sample":{"key":"b"},"text":"vase"}"#,
            "\n",
        ),
    )
    .unwrap();
    let out = Command::new(vila2)
        .args(["plugin", "run"])
        .arg(&wasm)
        .arg("--input")
        .arg(&input)
        .args(["--config", r#"{"min_words": 3}"#])
        .env("VILA2_CACHE_DIR", &cache)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["key"], "a");
    assert_eq!(rows[0]["ok"]["keep"], true);
    assert_eq!(rows[1]["ok"]["keep"], false);
    assert_eq!(rows[1]["ok"]["reasons"][0], "too-short");

    // A config field the template does not know is refused with its name.
    let out = Command::new(vila2)
        .args(["plugin", "run"])
        .arg(&wasm)
        .arg("--input")
        .arg(&input)
        .args(["--config", r#"{"max_words": 3}"#])
        .env("VILA2_CACHE_DIR", &cache)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_words"), "{err}");
}
