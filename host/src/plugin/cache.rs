//! Compile-once cache of components: in memory for this process, and on disk as serialized
//! artifacts named by the component's SHA-256 and the engine's compatibility hash, so a
//! different wasmtime or different settings never load a stale artifact.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::PluginError;

/// Where a component came from in the cache, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheHit {
    /// Already compiled in this process.
    Memory,
    /// Deserialized from the on-disk artifact.
    Disk,
    /// Compiled now (and written to disk when a cache dir is set).
    Compiled,
}

pub(crate) struct ComponentCache {
    dir: Option<PathBuf>,
    compat: String,
    memory: Mutex<HashMap<String, Component>>,
}

impl ComponentCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        ComponentCache {
            dir,
            compat: format!("{:016x}", h.finish()),
            memory: Mutex::new(HashMap::new()),
        }
    }

    /// The content hash that identifies `bytes` in the cache.
    pub(crate) fn digest(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// The compiled component for `bytes`, compiling at most once per content and engine.
    pub(crate) fn get_or_compile(
        &self,
        engine: &Engine,
        name: &str,
        digest: &str,
        bytes: &[u8],
    ) -> Result<(Component, CacheHit), PluginError> {
        if let Some(c) = self.memory.lock().expect("cache lock").get(digest) {
            return Ok((c.clone(), CacheHit::Memory));
        }
        let path = self.artifact_path(digest);
        if let Some(path) = path.as_deref().filter(|p| p.exists()) {
            // Read into memory rather than mmap the file: a cache file truncated by someone
            // else while mapped would crash the process (SIGBUS) instead of failing cleanly.
            let loaded = std::fs::read(path)
                .map_err(wasmtime::Error::from)
                // SAFETY: the artifact was written by `store` below into our own cache dir,
                // under a name carrying the engine's compatibility hash; wasmtime still checks
                // its header and refuses one from another engine configuration.
                .and_then(|art| unsafe { Component::deserialize(engine, art) });
            match loaded {
                Ok(c) => {
                    self.remember(digest, &c);
                    return Ok((c, CacheHit::Disk));
                }
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    "discarding unusable cached artifact: {e}"
                ),
            }
        }
        let component = Component::new(engine, bytes).map_err(|e| PluginError::Compile {
            name: name.to_string(),
            message: format!("{e:#}"),
        })?;
        if let Some(path) = path
            && let Err(e) = store(&component, &path)
        {
            tracing::warn!(path = %path.display(), "cannot write plugin cache: {e}");
        }
        self.remember(digest, &component);
        Ok((component, CacheHit::Compiled))
    }

    fn remember(&self, digest: &str, c: &Component) {
        self.memory
            .lock()
            .expect("cache lock")
            .insert(digest.to_string(), c.clone());
    }

    fn artifact_path(&self, digest: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{digest}-{}.cwasm", self.compat)))
    }
}

/// Writes the artifact atomically: a temp file in the same dir, then a rename.
fn store(component: &Component, path: &Path) -> Result<(), PluginError> {
    let err = |source| PluginError::Cache {
        path: path.to_path_buf(),
        source,
    };
    let bytes = component
        .serialize()
        .map_err(|e| PluginError::Runtime(format!("serialize component: {e}")))?;
    let dir = path.parent().expect("artifact path has a parent");
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(&bytes).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
