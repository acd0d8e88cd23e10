//! `vila2 plugin inspect|run` on good and bad input.

mod common;

use std::process::{Command, Output};

fn vila2(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vila2"))
        .args(args)
        .env("VILA2_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn run_reports_bad_lines_before_calling_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = common::component("vila2_faulty_plugin");
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"sample\":{\"key\":\"a\"},\"text\":\"ok\"}\n\n{\"sample\":{\"key\":\"b\"}}\n",
    )
    .unwrap();
    let out = vila2(
        &[
            "plugin",
            "run",
            wasm.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("in.jsonl:3"), "names the line: {err}");
    assert!(err.contains("text"), "names the field: {err}");
    assert!(
        out.stdout.is_empty(),
        "nothing printed for a rejected input"
    );
}

#[test]
fn run_prints_one_line_per_record_with_errors_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = common::component("vila2_faulty_plugin");
    let input = dir.path().join("in.jsonl");
    let lines: Vec<String> = (0..5)
        .map(|i| {
            format!(
                "{{\"sample\":{{\"key\":\"k{i}\"}},\"text\":\"{}\"}}",
                if i == 2 { "fault:panic" } else { "a cat" }
            )
        })
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = vila2(
        &[
            "plugin",
            "run",
            wasm.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--batch-size",
            "2",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let keys: Vec<&str> = rows.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["k0", "k1", "k2", "k3", "k4"]);
    // The batch holding the panicking record (k2, k3) fails; the others pass.
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["line"], i + 1);
        if i == 2 || i == 3 {
            assert_eq!(r["error"]["kind"], "trap", "{r}");
        } else {
            assert_eq!(r["ok"]["keep"], true, "{r}");
        }
    }
}

#[test]
fn inspect_refuses_what_is_not_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, wat::parse_str("(module)").unwrap()).unwrap();
    let out = vila2(&["plugin", "inspect", core.to_str().unwrap()], dir.path());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("core WebAssembly module"),
        "{}",
        stderr(&out)
    );
    let out = vila2(&["plugin", "inspect", "/no/such.wasm"], dir.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/no/such.wasm"), "{}", stderr(&out));
}
