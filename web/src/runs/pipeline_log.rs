//! The pipeline's own warnings in the run's log: a `tracing` layer that forwards WARN and
//! ERROR events of the host crate (`vila2::…`, e.g. a plugin instance discarded after a trap,
//! a corrupt image skipped) and of guest plugins (`vila2::plugin::guest`) to the run the
//! worker is executing, through [`super::progress::log`] (stored and streamed like the
//! worker's own lines).
//!
//! The portal executes one run at a time per process and the pipeline uses several threads,
//! so the run is a process-global slot the worker fills around the pipeline call
//! ([`capture`]) rather than a span.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{Filtered, Targets};
use tracing_subscriber::layer::Context;

use super::events::Live;

/// Most pipeline lines one run's execution logs; then one line says how many were dropped.
pub const MAX_LINES: usize = 200;

/// Target prefixes whose events are forwarded: the host crate (`vila2`, depended on as
/// `vila2_host`) and its guest plugins' logs.
const TARGETS: [&str; 2] = ["vila2::", "vila2_host"];

/// A line on its way to the run's log.
struct Line {
    level: &'static str,
    message: String,
}

/// The run whose execution is being captured.
struct Slot {
    token: u64,
    sent: usize,
    dropped: usize,
    tx: mpsc::UnboundedSender<Line>,
}

static SLOT: Mutex<Option<Slot>> = Mutex::new(None);
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

fn slot() -> MutexGuard<'static, Option<Slot>> {
    SLOT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The forwarding layer; install it with [`layer`], which adds its cheap target filter.
#[derive(Debug, Clone, Copy, Default)]
pub struct PipelineLog;

/// The layer to install next to the fmt layer: WARN and ERROR of the host crate only.
pub fn layer<S>() -> Filtered<PipelineLog, Targets, S>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    // `Targets` matches by prefix (so `vila2` also lets `vila2_web` through); `on_event`
    // checks the exact prefixes.
    let targets = Targets::new()
        .with_target("vila2", Level::WARN)
        .with_target("vila2_host", Level::WARN);
    PipelineLog.with_filter(targets)
}

impl<S: Subscriber> Layer<S> for PipelineLog {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            _ => return,
        };
        if !TARGETS.iter().any(|t| meta.target().starts_with(t)) {
            return;
        }
        if slot().is_none() {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let message = text.finish();
        let mut guard = slot();
        let Some(slot) = guard.as_mut() else { return };
        if slot.sent >= MAX_LINES {
            slot.dropped += 1;
            return;
        }
        slot.sent += 1;
        // A closed channel: the worker has stopped listening; nothing to do.
        let _ = slot.tx.send(Line { level, message });
    }
}

/// An event as one line: its message, then its other fields as `name=value`.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Text {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else if self.message.is_empty() {
            self.fields
        } else {
            format!("{} ({})", self.message, self.fields)
        }
    }

    fn field(&mut self, name: &str, value: std::fmt::Arguments<'_>) {
        if !self.fields.is_empty() {
            self.fields.push_str(", ");
        }
        let _ = write!(self.fields, "{name}={value}");
    }
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.field(field.name(), format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.field(field.name(), format_args!("{value:?}"));
        }
    }
}

/// Forwards the pipeline's warnings to run `run`'s log until [`Capture::finish`] (or drop),
/// with the run's folder `dir` left out of paths (the team sees `plugins/3.wasm`, not where
/// the server keeps it). A task on the current runtime writes the lines. Replaces a capture
/// still in place: one run at a time per process.
pub fn capture(db: DatabaseConnection, live: Live, run: i32, dir: &Path) -> Capture {
    let prefix = format!("{}{}", dir.display(), std::path::MAIN_SEPARATOR);
    let (tx, mut rx) = mpsc::unbounded_channel::<Line>();
    let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
    *slot() = Some(Slot {
        token,
        sent: 0,
        dropped: 0,
        tx,
    });
    let writer = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            let message = line.message.replace(&prefix, "");
            if let Err(e) = super::progress::log(&db, &live, run, line.level, message).await {
                tracing::warn!(run, error = %e, "recording a pipeline log line");
            }
        }
    });
    Capture {
        token,
        writer: Some(writer),
    }
}

/// The capture of one run's execution (see [`capture`]).
pub struct Capture {
    token: u64,
    writer: Option<tokio::task::JoinHandle<()>>,
}

impl Capture {
    /// Stops forwarding (adding a line with the count of lines dropped over
    /// [`MAX_LINES`]) and waits until every forwarded line is stored.
    pub async fn finish(mut self) {
        self.release();
        if let Some(writer) = self.writer.take() {
            let _ = writer.await;
        }
    }

    /// Empties the slot if it is still this capture's; its sender closes with it.
    fn release(&self) {
        let taken = {
            let mut guard = slot();
            match guard.as_ref() {
                Some(s) if s.token == self.token => guard.take(),
                _ => None,
            }
        };
        if let Some(s) = taken
            && s.dropped > 0
        {
            let _ = s.tx.send(Line {
                level: "warn",
                message: format!(
                    "{} more pipeline warnings not shown (at most {MAX_LINES} per run)",
                    s.dropped
                ),
            });
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // Unfinished (an early return): stop forwarding; the writer drains what was sent.
        self.release();
    }
}
