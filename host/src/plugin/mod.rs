//! The sandboxed WebAssembly plugin runtime.
//!
//! Plugins are components of the WIT package `vila2:plugin@0.1.0` (`host/wit/plugin.wit`) that
//! implement one of its worlds ([`World`]). [`PluginRuntime`] compiles each component once
//! (cached by content hash and engine compatibility), checks it against the world it is loaded
//! as, and runs it in a sandbox: WASI with no files, environment, arguments or sockets; fuel per
//! item and a deadline per call; a memory cap per instance. A trapped instance is discarded, the
//! batch's items get the explanation as their error, and the next call gets a fresh instance.

mod bindings;
mod cache;
mod config;
mod error;
mod host_state;
mod instance;
pub mod records;
mod runtime;
mod world;

pub use cache::CacheHit;
pub use config::{RuntimeConfig, default_cache_dir};
pub use error::{ItemError, PluginError};
pub use host_state::{Judge, Judgement, NoModelJudge};
pub use instance::Plugin;
pub use runtime::{Inspection, PluginRuntime};
pub use world::{PACKAGE, World};
