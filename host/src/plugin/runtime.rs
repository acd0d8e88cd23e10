//! The plugin runtime: one wasmtime engine (pooling allocator, fuel, epoch interruption), one
//! linker with the sandboxed WASI and the host imports, and the compile cache.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker, types::ComponentItem};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::caption_filter::CaptionFilter;
use super::cache::{CacheHit, ComponentCache};
use super::host_state::{HostState, Judge, NoModelJudge};
use super::instance::Plugin;
use super::{PluginError, RuntimeConfig, World};

/// Granularity of the call deadline.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Loads, validates, caches and runs plugins. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct PluginRuntime {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) config: RuntimeConfig,
    pub(crate) judge: Arc<dyn Judge>,
    cache: ComponentCache,
    _ticker: EpochTicker,
}

/// What `vila2 plugin inspect` reports, read without running the plugin.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    /// The most specific world the exports satisfy, if any.
    pub world: Option<World>,
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    /// SHA-256 of the component bytes (the cache key).
    pub sha256: String,
    pub size: usize,
}

impl PluginRuntime {
    /// A runtime whose plugins' `judge` import reports that no model is loaded.
    pub fn new(config: RuntimeConfig) -> Result<Self, PluginError> {
        Self::with_judge(config, Arc::new(NoModelJudge))
    }

    /// A runtime whose plugins' `judge` import is served by `judge` (the VLM engine).
    pub fn with_judge(config: RuntimeConfig, judge: Arc<dyn Judge>) -> Result<Self, PluginError> {
        let engine = Engine::new(&engine_config(&config))
            .map_err(|e| PluginError::Runtime(format!("cannot create the wasm engine: {e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| CaptionFilter::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s))
            .map_err(|e| PluginError::Runtime(format!("cannot link host imports: {e:#}")))?;
        let cache = ComponentCache::new(&engine, config.cache_dir.clone());
        let ticker = EpochTicker::start(&engine);
        Ok(PluginRuntime {
            shared: Arc::new(Shared {
                engine,
                linker,
                config,
                judge,
                cache,
                _ticker: ticker,
            }),
        })
    }

    /// The limits plugins run under.
    pub fn config(&self) -> &RuntimeConfig {
        &self.shared.config
    }

    /// Loads the component at `path` for use as `world`.
    pub fn load_file(&self, path: &Path, world: World) -> Result<Plugin, PluginError> {
        let bytes = self.read(path)?;
        self.load_bytes(&path.display().to_string(), &bytes, world)
    }

    /// Loads component `bytes` (named `name` in errors) for use as `world`: checks the size and
    /// format, compiles or fetches from the cache, checks the exports against the world and
    /// the imports against what the host provides, and prepares instantiation.
    pub fn load_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        world: World,
    ) -> Result<Plugin, PluginError> {
        let (component, _) = self.compile(name, bytes)?;
        let exports = export_names(&self.shared.engine, &component);
        if let Some(missing) = world.missing_export(&exports) {
            return Err(PluginError::WrongWorld {
                name: name.to_string(),
                world,
                missing,
                found: if exports.is_empty() {
                    "nothing".into()
                } else {
                    exports.join(", ")
                },
            });
        }
        let pre = self
            .shared
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Link {
                name: name.to_string(),
                world,
                message: format!("{e:#}"),
            })?;
        Plugin::new(self.shared.clone(), name, world, pre)
    }

    /// Reads what a component exports and imports, and the world it implements.
    pub fn inspect_bytes(&self, name: &str, bytes: &[u8]) -> Result<Inspection, PluginError> {
        let (component, _) = self.compile(name, bytes)?;
        let engine = &self.shared.engine;
        let exports = export_names(engine, &component);
        let imports = component
            .component_type()
            .imports(engine)
            .map(|(n, _)| n.to_string())
            .collect();
        Ok(Inspection {
            world: World::detect(&exports),
            exports,
            imports,
            sha256: ComponentCache::digest(bytes),
            size: bytes.len(),
        })
    }

    /// Compiles `bytes`, or takes the artifact from the cache; says where it came from.
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<(Component, CacheHit), PluginError> {
        check_format(name, bytes, self.shared.config.max_component_bytes)?;
        let digest = ComponentCache::digest(bytes);
        self.shared
            .cache
            .get_or_compile(&self.shared.engine, name, &digest, bytes)
    }

    /// Reads a component file, refusing oversized ones before reading them whole.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>, PluginError> {
        let err = |source| PluginError::Read {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(err)?.len() as usize;
        let limit = self.shared.config.max_component_bytes;
        if size > limit {
            return Err(PluginError::TooLarge {
                name: path.display().to_string(),
                size,
                limit,
            });
        }
        std::fs::read(path).map_err(err)
    }
}

fn engine_config(rc: &RuntimeConfig) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(rc.max_instances)
        .total_core_instances(rc.max_instances * 8)
        .total_memories(rc.max_instances * 4)
        .total_tables(rc.max_instances * 8)
        .total_stacks(rc.max_instances)
        .max_memory_size(rc.memory_limit)
        .max_core_instances_per_component(32)
        .max_memories_per_component(8)
        .max_tables_per_component(16);
    let mut config = Config::new();
    config
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .consume_fuel(rc.fuel_per_item > 0)
        .epoch_interruption(true)
        .max_wasm_stack(rc.max_wasm_stack)
        .wasm_component_model(true);
    config
}

/// Refuses what is certainly not a component before handing it to the compiler.
fn check_format(name: &str, bytes: &[u8], limit: usize) -> Result<(), PluginError> {
    if bytes.len() > limit {
        return Err(PluginError::TooLarge {
            name: name.to_string(),
            size: bytes.len(),
            limit,
        });
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(PluginError::NotWasm {
            name: name.to_string(),
        });
    }
    // Version 1 with layer 0 is a core module; components use layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(PluginError::CoreModule {
            name: name.to_string(),
        });
    }
    Ok(())
}

fn export_names(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
        .map(|(n, _)| n.to_string())
        .collect()
}

/// Advances the engine's epoch every [`EPOCH_TICK`] so call deadlines fire; stops with the
/// runtime.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("vila2-plugin-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("spawn epoch thread");
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
