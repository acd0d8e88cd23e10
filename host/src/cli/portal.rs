//! `vila2 serve | migrate | admin …`: handed to the `vila2-portal` binary beside this one,
//! the way cargo and git run external subcommands (the portal depends on this crate, so it
//! cannot be linked in).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// File name of the portal binary.
pub const PORTAL_BIN: &str = "vila2-portal";

/// Where the portal binary is expected: beside the running `vila2` executable.
pub fn portal_path() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the running vila2 executable")?;
    let dir = exe
        .parent()
        .with_context(|| format!("{} has no parent directory", exe.display()))?;
    Ok(dir.join(format!("{PORTAL_BIN}{}", std::env::consts::EXE_SUFFIX)))
}

/// Runs `vila2-portal <subcommand> <args…>` in place of this process and returns its exit
/// code (on Unix the process image is replaced, so this returns only on failure).
pub fn run(subcommand: &str, args: &[String]) -> anyhow::Result<i32> {
    let portal = portal_path()?;
    if !portal.is_file() {
        bail!(
            "`vila2 {subcommand}` runs the web portal binary, expected at {}, which does not \
             exist: build it with `cargo build --release -p vila2-web` (it must sit in the same \
             directory as vila2)",
            portal.display()
        );
    }
    tracing::debug!(portal = %portal.display(), subcommand, "dispatching to the portal");
    dispatch(&portal, subcommand, args)
}

#[cfg(unix)]
fn dispatch(portal: &Path, subcommand: &str, args: &[String]) -> anyhow::Result<i32> {
    use std::os::unix::process::CommandExt;
    let err = Command::new(portal).arg(subcommand).args(args).exec();
    Err(err).with_context(|| format!("cannot run {}", portal.display()))
}

#[cfg(not(unix))]
fn dispatch(portal: &Path, subcommand: &str, args: &[String]) -> anyhow::Result<i32> {
    let status = Command::new(portal)
        .arg(subcommand)
        .args(args)
        .status()
        .with_context(|| format!("cannot run {}", portal.display()))?;
    Ok(status.code().unwrap_or(1))
}
