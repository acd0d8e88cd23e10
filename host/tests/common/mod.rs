//! Helpers shared by the host's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The built component `name` (e.g. `vila2_quality`): looked up in `$VILA2_COMPONENTS`, else
/// `$CARGO_TARGET_DIR/wasm32-wasip2/release/`, else `<workspace>/target/wasm32-wasip2/release/`.
/// `make components` builds them.
pub fn component(name: &str) -> PathBuf {
    let file = format!("{name}.wasm");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = match (
        std::env::var_os("VILA2_COMPONENTS"),
        std::env::var_os("CARGO_TARGET_DIR"),
    ) {
        (Some(d), _) => PathBuf::from(d),
        (None, Some(t)) => workspace.join(t).join("wasm32-wasip2/release"),
        (None, None) => workspace.join("target/wasm32-wasip2/release"),
    };
    let path = dir.join(&file);
    assert!(
        path.exists(),
        "component {} is not built: run `make components` first",
        path.display()
    );
    path
}
