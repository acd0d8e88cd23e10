//! Limits and knobs of the plugin sandbox.

use std::path::PathBuf;
use std::time::Duration;

/// How plugins are compiled, cached and confined.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Fuel (≈ wasm instructions) a batch may burn per item; `describe`/`configure` get one
    /// item's worth. 0 turns fuel metering off (only the call deadline bounds a call), which
    /// makes guest code faster; the engine is built one way or the other.
    pub fuel_per_item: u64,
    /// Wall-clock deadline of one call, enforced with epoch interruption.
    pub call_deadline: Duration,
    /// Linear memory one instance may grow to, in bytes.
    pub memory_limit: usize,
    /// Largest component file accepted, in bytes.
    pub max_component_bytes: usize,
    /// Largest result one item may return, in bytes (checked after lifting).
    pub max_result_bytes: usize,
    /// Instances alive at once across all plugins (pooling allocator slots).
    pub max_instances: u32,
    /// Native code of the deepest wasm call stack, in bytes.
    pub max_wasm_stack: usize,
    /// Where compiled artifacts are cached; `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            fuel_per_item: 200_000_000,
            call_deadline: Duration::from_secs(10),
            memory_limit: 64 << 20,
            max_component_bytes: 32 << 20,
            max_result_bytes: 1 << 20,
            max_instances: 64,
            max_wasm_stack: 1 << 20,
            cache_dir: default_cache_dir(),
        }
    }
}

/// `$VILA2_CACHE_DIR/components`, else `$XDG_CACHE_HOME/vila2/components`, else
/// `~/.cache/vila2/components`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("VILA2_CACHE_DIR") {
        return Some(PathBuf::from(dir).join("components"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("vila2").join("components"))
}
