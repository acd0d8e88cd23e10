//! What each plugin instance's store holds: a WASI context with nothing granted, the memory
//! limiter, and the host side of the `log` and `judge` imports.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{judge, log};

/// Bytes of a guest's stderr kept to explain a trap (panic messages land there).
const STDERR_CAPTURE: usize = 16 << 10;

/// Log-likelihood scoring for the `judge` import; the VLM engine implements it.
pub trait Judge: Send + Sync {
    /// Log-probabilities of `text` as the answer to `prompt` about the image of `sample_key`.
    fn score(&self, sample_key: &str, prompt: &str, text: &str) -> Result<Judgement, String>;
}

/// Per-token and mean log-probability of a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub mean_logprob: f32,
    pub token_logprobs: Vec<f32>,
}

/// The judge used when no model is loaded: every call is an error that says so.
#[derive(Debug, Default)]
pub struct NoModelJudge;

impl Judge for NoModelJudge {
    fn score(&self, sample_key: &str, _prompt: &str, _text: &str) -> Result<Judgement, String> {
        Err(format!(
            "judge unavailable for sample `{sample_key}`: no VLM is loaded in this host \
             (run the filter inside a pipeline with a model, or drop the judge from its config)"
        ))
    }
}

/// Store data of one plugin instance.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: MemoryCap,
    stderr: MemoryOutputPipe,
    judge: Arc<dyn Judge>,
    plugin: Arc<str>,
}

impl HostState {
    /// A sandbox with no preopened dirs, no env, no args, no network, stdout discarded and
    /// stderr captured for error reports.
    pub(crate) fn new(plugin: Arc<str>, memory_limit: usize, judge: Arc<dyn Judge>) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limits: MemoryCap {
                limit: memory_limit,
                denied: None,
            },
            stderr,
            judge,
            plugin,
        }
    }

    pub(crate) fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limits
    }

    /// Forgets what the previous call left behind (a refused growth).
    pub(crate) fn start_call(&mut self) {
        self.limits.denied = None;
    }

    /// The memory growth that was refused during the current call, if any.
    pub(crate) fn memory_denied(&self) -> Option<usize> {
        self.limits.denied
    }

    /// The last line the guest wrote to stderr (a Rust guest's panic message).
    pub(crate) fn last_stderr_line(&self) -> Option<String> {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        text.lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("note:"))
            .map(str::to_string)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory growth and remembers a refusal, so a trap can be explained.
struct MemoryCap {
    limit: usize,
    denied: Option<usize>,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.limit;
        if !ok {
            self.denied = Some(desired);
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => {
                tracing::trace!(target: "vila2::plugin::guest", plugin, "{message}")
            }
            log::Level::Debug => {
                tracing::debug!(target: "vila2::plugin::guest", plugin, "{message}")
            }
            log::Level::Info => tracing::info!(target: "vila2::plugin::guest", plugin, "{message}"),
            log::Level::Warn => tracing::warn!(target: "vila2::plugin::guest", plugin, "{message}"),
            log::Level::Error => {
                tracing::error!(target: "vila2::plugin::guest", plugin, "{message}")
            }
        }
    }
}

impl judge::Host for HostState {
    fn score(
        &mut self,
        sample_key: String,
        prompt: String,
        text: String,
    ) -> Result<judge::Judgement, String> {
        self.judge
            .score(&sample_key, &prompt, &text)
            .map(|j| judge::Judgement {
                mean_logprob: j.mean_logprob,
                token_logprobs: j.token_logprobs,
            })
    }
}

impl super::bindings::types::Host for HostState {}
