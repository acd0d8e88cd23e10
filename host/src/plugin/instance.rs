//! A loaded plugin: its prepared instantiation, its configuration, and a small pool of live
//! instances. A call takes an instance from the pool (or makes a fresh one from the
//! `InstancePre`, re-applying the configuration), arms fuel and the deadline, and returns the
//! instance afterwards — unless it trapped, in which case it is dropped and every item of the
//! batch gets the explanation as its error.

use std::sync::{Arc, Mutex};

use wasmtime::component::InstancePre;
use wasmtime::{Store, Trap};

use super::bindings::caption_filter::{CaptionFilter, CaptionFilterPre};
use super::bindings::post_processor::{PostProcessor, PostProcessorPre};
use super::bindings::prompt_template::{PromptTemplate, PromptTemplatePre};
use super::bindings::specialist::{Specialist, SpecialistPre};
use super::bindings::types as wit;
use super::host_state::HostState;
use super::records::{
    Candidate, Description, HostSize, Processed, Prompt, PromptRequest, SpecialistOutput, Verdict,
};
use super::runtime::{EPOCH_TICK, Shared};
use super::{ItemError, PluginError, World};

/// Idle instances kept per plugin; more concurrent callers get extra, short-lived ones.
const MAX_IDLE: usize = 4;

/// A loaded, validated plugin. Cheap to clone; calls may come from many threads.
///
/// Calls are synchronous and may block for up to the call deadline: from async code, run them
/// on a blocking pool (`tokio::task::spawn_blocking`), never on a runtime worker.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    name: Arc<str>,
    world: World,
    pre: WorldPre,
    config: Mutex<Option<String>>,
    idle: Mutex<Vec<Live>>,
}

enum WorldPre {
    Filter(CaptionFilterPre<HostState>),
    Template(PromptTemplatePre<HostState>),
    Processor(PostProcessorPre<HostState>),
    Specialist(SpecialistPre<HostState>),
}

enum Bound {
    Filter(CaptionFilter),
    Template(PromptTemplate),
    Processor(PostProcessor),
    Specialist(Specialist),
}

struct Live {
    store: Store<HostState>,
    bound: Bound,
}

/// Calls `$method` on the `$iface` export of whichever world `$bound` holds.
macro_rules! on_bound {
    ($bound:expr, |$b:ident| $body:expr, [$($variant:ident),+]) => {
        match $bound {
            $(Bound::$variant($b) => $body,)+
            #[allow(unreachable_patterns)]
            _ => unreachable!("world checked before the call"),
        }
    };
}

impl Plugin {
    pub(crate) fn new(
        shared: Arc<Shared>,
        name: &str,
        world: World,
        pre: InstancePre<HostState>,
    ) -> Result<Self, PluginError> {
        let link = |e: wasmtime::Error| PluginError::Link {
            name: name.to_string(),
            world,
            message: format!("{e:#}"),
        };
        let pre = match world {
            World::CaptionFilter => WorldPre::Filter(CaptionFilterPre::new(pre).map_err(link)?),
            World::PromptTemplate => WorldPre::Template(PromptTemplatePre::new(pre).map_err(link)?),
            World::PostProcessor => WorldPre::Processor(PostProcessorPre::new(pre).map_err(link)?),
            World::Specialist => WorldPre::Specialist(SpecialistPre::new(pre).map_err(link)?),
        };
        Ok(Plugin {
            inner: Arc::new(Inner {
                shared,
                name: name.into(),
                world,
                pre,
                config: Mutex::new(None),
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The name the plugin was loaded under (its path or upload name).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The world the plugin was loaded as.
    pub fn world(&self) -> World {
        self.inner.world
    }

    /// The plugin's name, version, world, description and config schema.
    pub fn describe(&self) -> Result<Description, PluginError> {
        let d = self.call("describe", 1, |store, bound| {
            on_bound!(
                bound,
                |b| b.vila2_plugin_plugin().call_describe(store),
                [Filter, Template, Processor, Specialist]
            )
        })?;
        d.map(Description::from)
            .map_err(|message| self.trap("describe", message))
    }

    /// Applies a JSON configuration. It is checked on a fresh instance first; once accepted it
    /// is re-applied to every instance this plugin makes from then on.
    pub fn configure(&self, config_json: &str) -> Result<(), PluginError> {
        serde_json::from_str::<serde_json::Value>(config_json).map_err(|e| {
            PluginError::ConfigJson {
                name: self.name().to_string(),
                message: e.to_string(),
            }
        })?;
        let mut live = self.instantiate(None)?;
        apply_config(&self.inner, &mut live, config_json)?;
        *self.inner.config.lock().expect("config lock") = Some(config_json.to_string());
        let mut idle = self.inner.idle.lock().expect("pool lock");
        idle.clear();
        idle.push(live);
        Ok(())
    }

    /// Judges a batch of candidate captions: one result per candidate, same order.
    pub fn filter(
        &self,
        batch: &[Candidate],
    ) -> Result<Vec<Result<Verdict, ItemError>>, PluginError> {
        self.expect_world(World::CaptionFilter, "filter")?;
        let items: Vec<wit::Candidate> = batch.iter().map(Into::into).collect();
        let out = self.call("filter", batch.len(), |store, bound| {
            on_bound!(
                bound,
                |b| b.vila2_plugin_filter().call_filter(store, &items),
                [Filter]
            )
        })?;
        Ok(self.finish(out, batch.len()))
    }

    /// Renders the recaption prompt of each request, same order.
    pub fn render(
        &self,
        batch: &[PromptRequest],
    ) -> Result<Vec<Result<Prompt, ItemError>>, PluginError> {
        self.expect_world(World::PromptTemplate, "render")?;
        let items: Vec<wit::PromptRequest> = batch.iter().map(Into::into).collect();
        let out = self.call("render", batch.len(), |store, bound| {
            on_bound!(
                bound,
                |b| b.vila2_plugin_template().call_render(store, &items),
                [Template, Specialist]
            )
        })?;
        Ok(self.finish(out, batch.len()))
    }

    /// Turns each specialist answer into QA turns, same order.
    pub fn process(
        &self,
        batch: &[SpecialistOutput],
    ) -> Result<Vec<Result<Processed, ItemError>>, PluginError> {
        self.expect_world(World::PostProcessor, "process")?;
        let items: Vec<wit::SpecialistOutput> = batch.iter().map(Into::into).collect();
        let out = self.call("process", batch.len(), |store, bound| {
            on_bound!(
                bound,
                |b| b.vila2_plugin_processor().call_process(store, &items),
                [Processor, Specialist]
            )
        })?;
        Ok(self.finish(out, batch.len()))
    }

    fn expect_world(&self, wanted: World, call: &'static str) -> Result<(), PluginError> {
        if self.inner.world.satisfies(wanted) {
            Ok(())
        } else {
            Err(PluginError::WrongCall {
                name: self.name().to_string(),
                world: self.inner.world,
                call,
            })
        }
    }

    fn trap(&self, call: &'static str, message: String) -> PluginError {
        PluginError::Trap {
            name: self.name().to_string(),
            call,
            message,
        }
    }

    /// Checks the batch contract and converts the results; a trap or a broken contract
    /// becomes every item's error.
    fn finish<W, R>(
        &self,
        out: Result<Vec<Result<W, String>>, String>,
        expected: usize,
    ) -> Vec<Result<R, ItemError>>
    where
        W: HostSize,
        R: From<W>,
    {
        let limit = self.inner.shared.config.max_result_bytes;
        match out {
            Err(trap) => (0..expected)
                .map(|_| Err(ItemError::Trap(trap.clone())))
                .collect(),
            Ok(results) if results.len() != expected => {
                let msg = format!(
                    "returned {} results for a batch of {expected} items",
                    results.len()
                );
                tracing::warn!(plugin = self.name(), "{msg}");
                (0..expected)
                    .map(|_| Err(ItemError::Contract(msg.clone())))
                    .collect()
            }
            Ok(results) => results
                .into_iter()
                .map(|r| match r {
                    Ok(v) if v.host_size() > limit => Err(ItemError::Contract(format!(
                        "result of {} bytes is over the limit of {limit} bytes",
                        v.host_size()
                    ))),
                    Ok(v) => Ok(R::from(v)),
                    Err(e) => Err(ItemError::Plugin(e)),
                })
                .collect(),
        }
    }

    /// Runs `f` on a live instance with fuel for `items` items and the call deadline armed.
    /// `Ok(Err(msg))` means the instance trapped (and was discarded).
    fn call<R>(
        &self,
        call: &'static str,
        items: usize,
        f: impl FnOnce(&mut Store<HostState>, &Bound) -> wasmtime::Result<R>,
    ) -> Result<Result<R, String>, PluginError> {
        let popped = self.inner.idle.lock().expect("pool lock").pop();
        let mut live = match popped {
            Some(live) => live,
            None => {
                let config = self.inner.config.lock().expect("config lock").clone();
                self.instantiate(config.as_deref())?
            }
        };
        arm(&self.inner, &mut live.store, items);
        let result = f(&mut live.store, &live.bound);
        match result {
            Ok(r) => {
                let mut idle = self.inner.idle.lock().expect("pool lock");
                if idle.len() < MAX_IDLE {
                    idle.push(live);
                }
                Ok(Ok(r))
            }
            Err(e) => {
                let message = explain(&self.inner, &e, &live.store, items);
                tracing::warn!(plugin = self.name(), call, "instance discarded: {message}");
                Ok(Err(message))
            }
        }
    }

    /// A fresh instance, configured with `config` when one was accepted before.
    fn instantiate(&self, config: Option<&str>) -> Result<Live, PluginError> {
        let inner = &self.inner;
        let shared = &inner.shared;
        let state = HostState::new(
            inner.name.clone(),
            shared.config.memory_limit,
            shared.judge.clone(),
        );
        let mut store = Store::new(&shared.engine, state);
        store.limiter(|s| s.limiter());
        store.epoch_deadline_trap();
        arm(inner, &mut store, 1);
        let bound = match &inner.pre {
            WorldPre::Filter(p) => p.instantiate(&mut store).map(Bound::Filter),
            WorldPre::Template(p) => p.instantiate(&mut store).map(Bound::Template),
            WorldPre::Processor(p) => p.instantiate(&mut store).map(Bound::Processor),
            WorldPre::Specialist(p) => p.instantiate(&mut store).map(Bound::Specialist),
        }
        .map_err(|e| self.trap("instantiate", explain(inner, &e, &store, 1)))?;
        let mut live = Live { store, bound };
        if let Some(config) = config {
            apply_config(inner, &mut live, config)?;
        }
        Ok(live)
    }
}

fn apply_config(inner: &Inner, live: &mut Live, config: &str) -> Result<(), PluginError> {
    arm(inner, &mut live.store, 1);
    let result = on_bound!(
        &live.bound,
        |b| b
            .vila2_plugin_plugin()
            .call_configure(&mut live.store, config),
        [Filter, Template, Processor, Specialist]
    );
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(PluginError::Config {
            name: inner.name.to_string(),
            message,
        }),
        Err(e) => Err(PluginError::Trap {
            name: inner.name.to_string(),
            call: "configure",
            message: explain(inner, &e, &live.store, 1),
        }),
    }
}

/// Gives the store fuel for `items` items and a fresh deadline.
fn arm(inner: &Inner, store: &mut Store<HostState>, items: usize) {
    let cfg = &inner.shared.config;
    if cfg.fuel_per_item > 0 {
        let fuel = cfg.fuel_per_item.saturating_mul(items.max(1) as u64);
        store.set_fuel(fuel).expect("fuel is enabled");
    }
    let ticks = (cfg.call_deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
    store.set_epoch_deadline(ticks);
    store.data_mut().start_call();
}

/// Says why a call trapped, in terms the plugin author can act on.
fn explain(inner: &Inner, err: &wasmtime::Error, store: &Store<HostState>, items: usize) -> String {
    let cfg = &inner.shared.config;
    let state = store.data();
    if let Some(asked) = state.memory_denied() {
        return format!(
            "exceeded the memory cap of {} MiB (tried to grow to {} MiB)",
            cfg.memory_limit >> 20,
            asked >> 20
        );
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => format!(
            "ran out of fuel: {} instructions per item × {items} item(s) (RuntimeConfig::fuel_per_item)",
            cfg.fuel_per_item
        ),
        Some(Trap::Interrupt) => format!("exceeded the call deadline of {:?}", cfg.call_deadline),
        Some(Trap::StackOverflow) => "call stack exhausted (unbounded recursion?)".to_string(),
        Some(Trap::MemoryOutOfBounds) => "out-of-bounds memory access (the guest's own stack \
            overflowing from unbounded recursion, or a guest bug)"
            .to_string(),
        Some(trap) => match state.last_stderr_line() {
            Some(line) => format!("{trap}: {line}"),
            None => trap.to_string(),
        },
        None => format!("{err:#}"),
    }
}
