//! `vila2 serve | migrate | admin` run the `vila2-portal` binary beside `vila2` with the same
//! arguments and its exit code, and say how to build it when it is missing.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A copy (hard link when possible) of the `vila2` binary alone in a fresh directory.
fn lone_vila2() -> (tempfile::TempDir, PathBuf) {
    let built = Path::new(env!("CARGO_BIN_EXE_vila2"));
    // Beside the build output, so a hard link works (same file system).
    let dir = tempfile::Builder::new()
        .prefix("portal-dispatch-")
        .tempdir_in(built.parent().unwrap())
        .unwrap();
    let exe = dir.path().join("vila2");
    if std::fs::hard_link(built, &exe).is_err() {
        std::fs::copy(built, &exe).unwrap();
    }
    (dir, exe)
}

#[test]
fn missing_portal_names_the_path_and_the_build_command() {
    let (dir, exe) = lone_vila2();
    let out = Command::new(&exe)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = dir.path().join("vila2-portal");
    assert!(stderr.contains(&expected.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("cargo build --release -p vila2-web"),
        "{stderr}"
    );
}

#[test]
fn subcommands_run_the_portal_with_the_same_arguments_and_exit_code() {
    let (dir, exe) = lone_vila2();
    let portal = dir.path().join("vila2-portal");
    std::fs::write(&portal, "#!/bin/sh\necho \"portal: $*\"\nexit 7\n").unwrap();
    std::fs::set_permissions(&portal, std::fs::Permissions::from_mode(0o755)).unwrap();
    for args in [
        &["serve", "--bind", "127.0.0.1:9", "--help"][..],
        &["migrate", "--data-dir", "some dir"][..],
        &["admin", "create-user", "--email", "a@b.org", "--admin"][..],
    ] {
        let out = Command::new(&exe).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(7), "{args:?}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim_end(),
            format!("portal: {}", args.join(" ")),
        );
    }
}
