//! Errors of the plugin runtime: per plugin ([`PluginError`]) and per batch item ([`ItemError`]).

use std::path::PathBuf;

use serde::Serialize;

use super::World;

/// A failure that concerns the plugin as a whole: loading, validating, configuring.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read plugin {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "plugin {name} is {size} bytes, over the limit of {limit} bytes \
         (raise RuntimeConfig::max_component_bytes if it is legitimate)"
    )]
    TooLarge {
        name: String,
        size: usize,
        limit: usize,
    },
    #[error("plugin {name} is not WebAssembly (no `\\0asm` header): is it the right file?")]
    NotWasm { name: String },
    #[error(
        "plugin {name} is a core WebAssembly module, not a component: build it with \
         `cargo build --target wasm32-wasip2` against the vila2-guest SDK"
    )]
    CoreModule { name: String },
    #[error("plugin {name} could not be compiled: {message}")]
    Compile { name: String, message: String },
    #[error(
        "plugin {name} does not implement world `{world}`: missing export `{missing}` \
         (it exports: {found})"
    )]
    WrongWorld {
        name: String,
        world: World,
        missing: String,
        found: String,
    },
    #[error("plugin {name} cannot be linked as `{world}`: {message}")]
    Link {
        name: String,
        world: World,
        message: String,
    },
    #[error("plugin {name} is loaded as `{world}`, which has no `{call}` export")]
    WrongCall {
        name: String,
        world: World,
        call: &'static str,
    },
    #[error("plugin {name}: config is not valid JSON: {message}")]
    ConfigJson { name: String, message: String },
    #[error("plugin {name} rejected its config: {message}")]
    Config { name: String, message: String },
    #[error("plugin {name} failed in `{call}`: {message}")]
    Trap {
        name: String,
        call: &'static str,
        message: String,
    },
    #[error("plugin runtime: {0}")]
    Runtime(String),
    #[error("plugin cache {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A failure for one item of a batch; the rest of the run goes on.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[serde(tag = "kind", content = "message", rename_all = "kebab-case")]
pub enum ItemError {
    /// The plugin returned an error for this item.
    #[error("plugin error: {0}")]
    Plugin(String),
    /// The instance trapped during the batch (the instance is discarded).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The plugin broke the batch contract (wrong result count, oversized output).
    #[error("plugin broke the contract: {0}")]
    Contract(String),
}
