//! The engine thread: it owns the model (tch tensors are `Send`, not `Sync`), receives
//! requests from any number of callers over a channel and runs them in dynamic batches —
//! every generation request that arrives while a batch is being collected and asks for the
//! same parameters joins that batch.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use image::RgbImage;
use tch::{Device, Kind};

use super::VlmError;
use super::chat_template::VilaConversation;
use super::generate::{
    Generated, GenerationParams, Prompt, Score, Vlm, WeightSource, default_kind,
};

/// What a request says to the model: a prompt and its images.
#[derive(Debug, Clone)]
pub struct PromptInput {
    /// Raw prompt with image placeholders, or the user message when `chat`.
    pub text: String,
    /// Decoded images, one per placeholder (or per image slot of the chat turn).
    pub images: Vec<RgbImage>,
    /// Apply the checkpoint's chat template to `text`.
    pub chat: bool,
}

/// How batches are formed.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Largest batch run at once.
    pub max_batch: usize,
    /// How long the first request of a batch waits for companions.
    pub batch_wait: Duration,
    /// For VILA checkpoints: override the conversation template `chat` requests use.
    pub vila_conversation: Option<VilaConversation>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_batch: 16,
            batch_wait: Duration::from_millis(5),
            vila_conversation: None,
        }
    }
}

enum Job {
    Generate {
        input: PromptInput,
        params: GenerationParams,
        reply: Sender<Result<Generated, VlmError>>,
    },
    Score {
        input: PromptInput,
        continuation: String,
        reply: Sender<Result<Score, VlmError>>,
    },
    Shutdown,
}

/// A cumulative busy-time counter, shareable between engines (and a trainer) so the caller
/// can meter the compute a run used. Cheap to clone; clones count into the same total.
#[derive(Debug, Clone, Default)]
pub struct BusyClock(Arc<AtomicU64>);

impl BusyClock {
    /// Adds `d` of busy time.
    pub fn add(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Busy seconds counted so far.
    pub fn seconds(&self) -> f64 {
        self.0.load(Ordering::Relaxed) as f64 / 1e9
    }
}

/// Counters of what the engine thread has run.
#[derive(Debug, Default)]
pub struct EngineStats {
    batches: AtomicUsize,
    largest_batch: AtomicUsize,
    busy: BusyClock,
}

impl EngineStats {
    /// Generation batches run so far.
    pub fn batches(&self) -> usize {
        self.batches.load(Ordering::Relaxed)
    }

    /// Size of the largest generation batch so far.
    pub fn largest_batch(&self) -> usize {
        self.largest_batch.load(Ordering::Relaxed)
    }

    /// Seconds the engine thread has spent executing jobs (generation and scoring batches),
    /// counted into its [`BusyClock`] (which may be shared with other engines).
    pub fn busy_seconds(&self) -> f64 {
        self.busy.seconds()
    }
}

/// A handle to the engine thread; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct EngineHandle {
    tx: Sender<Job>,
    busy: BusyClock,
}

/// The engine thread; dropping it stops the thread (later requests through remaining
/// handles fail with [`VlmError::EngineStopped`]).
pub struct Engine {
    handle: EngineHandle,
    thread: Option<JoinHandle<()>>,
    stats: Arc<EngineStats>,
}

impl Engine {
    /// Starts the thread and loads the checkpoint in it (fp32 on CPU, bf16 on CUDA); returns
    /// once loaded (or failed).
    pub fn spawn(dir: PathBuf, device: Device, config: EngineConfig) -> Result<Self, VlmError> {
        Self::spawn_with(dir, device, default_kind(device), config)
    }

    /// Like [`Engine::spawn`] with an explicit dtype.
    pub fn spawn_with(
        dir: PathBuf,
        device: Device,
        kind: Kind,
        config: EngineConfig,
    ) -> Result<Self, VlmError> {
        Self::spawn_metered(dir, device, kind, config, BusyClock::default())
    }

    /// Like [`Engine::spawn_with`], counting the thread's busy time into `busy`.
    pub fn spawn_metered(
        dir: PathBuf,
        device: Device,
        kind: Kind,
        config: EngineConfig,
        busy: BusyClock,
    ) -> Result<Self, VlmError> {
        let (tx, rx) = unbounded::<Job>();
        let (ready_tx, ready_rx) = bounded::<Result<(), VlmError>>(1);
        let stats = Arc::new(EngineStats {
            busy: busy.clone(),
            ..EngineStats::default()
        });
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("vila2-engine".into())
            .spawn(move || {
                super::threads::apply_torch_threads();
                match Vlm::load_with(&dir, device, kind, WeightSource::Checkpoint) {
                    Ok(vlm) => {
                        let _ = ready_tx.send(Ok(()));
                        serve(&vlm, &rx, config, &thread_stats);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| VlmError::Request(format!("cannot start the engine thread: {e}")))?;
        ready_rx.recv().map_err(|_| VlmError::EngineStopped)??;
        Ok(Self {
            handle: EngineHandle { tx, busy },
            thread: Some(thread),
            stats,
        })
    }

    /// A handle for submitting requests.
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// What the thread has run so far.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.handle.tx.send(Job::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl EngineHandle {
    /// Seconds the engine thread has spent executing jobs so far (see [`BusyClock`]).
    pub fn busy_seconds(&self) -> f64 {
        self.busy.seconds()
    }

    /// Submits a generation request; the answer arrives on the returned channel.
    pub fn submit_generate(
        &self,
        input: PromptInput,
        params: GenerationParams,
    ) -> Receiver<Result<Generated, VlmError>> {
        let (reply, rx) = bounded(1);
        if let Err(e) = self.tx.send(Job::Generate {
            input,
            params,
            reply,
        }) && let Job::Generate { reply, .. } = e.into_inner()
        {
            let _ = reply.send(Err(VlmError::EngineStopped));
        }
        rx
    }

    /// Generates and waits for the answer.
    pub fn generate(
        &self,
        input: PromptInput,
        params: GenerationParams,
    ) -> Result<Generated, VlmError> {
        self.submit_generate(input, params)
            .recv()
            .map_err(|_| VlmError::EngineStopped)?
    }

    /// Submits a scoring request (the log-probability of `continuation` after the prompt);
    /// the answer arrives on the returned channel, so many requests batch together.
    pub fn submit_score(
        &self,
        input: PromptInput,
        continuation: String,
    ) -> Receiver<Result<Score, VlmError>> {
        let (reply, rx) = bounded(1);
        if let Err(e) = self.tx.send(Job::Score {
            input,
            continuation,
            reply,
        }) && let Job::Score { reply, .. } = e.into_inner()
        {
            let _ = reply.send(Err(VlmError::EngineStopped));
        }
        rx
    }

    /// Scores `continuation` after the prompt and waits for the answer (this backs the
    /// plugins' judge import).
    pub fn score(&self, input: PromptInput, continuation: String) -> Result<Score, VlmError> {
        self.submit_score(input, continuation)
            .recv()
            .map_err(|_| VlmError::EngineStopped)?
    }
}

fn prepare(vlm: &Vlm, input: &PromptInput) -> Result<Prompt, VlmError> {
    if input.chat {
        vlm.prepare_chat(&input.text, &input.images)
    } else {
        vlm.prepare(&input.text, &input.images)
    }
}

fn serve(vlm: &Vlm, rx: &Receiver<Job>, config: EngineConfig, stats: &EngineStats) {
    let max_batch = config.max_batch.max(1);
    let mut pending: Vec<Job> = Vec::new();
    loop {
        if pending.is_empty() {
            match rx.recv() {
                Ok(job) => pending.push(job),
                Err(_) => return,
            }
        }
        let deadline = Instant::now() + config.batch_wait;
        while pending.len() < max_batch * 4 {
            match rx.recv_deadline(deadline) {
                Ok(job) => pending.push(job),
                Err(_) => break,
            }
        }
        // Take the first job, and every generation job with the same parameters up to
        // max_batch; the rest waits for the next round.
        let first = pending.remove(0);
        let started = Instant::now();
        match first {
            // Requests still queued are dropped: their callers see `EngineStopped`.
            Job::Shutdown => return,
            Job::Score {
                input,
                continuation,
                reply,
            } => {
                let mut batch = vec![(input, continuation, reply)];
                let mut rest = Vec::with_capacity(pending.len());
                for job in pending.drain(..) {
                    match job {
                        Job::Score {
                            input,
                            continuation,
                            reply,
                        } if batch.len() < max_batch => batch.push((input, continuation, reply)),
                        other => rest.push(other),
                    }
                }
                pending = rest;
                run_score_batch(vlm, batch);
                stats.busy.add(started.elapsed());
            }
            Job::Generate {
                input,
                params,
                reply,
            } => {
                let mut batch = vec![(input, reply)];
                let mut rest = Vec::with_capacity(pending.len());
                for job in pending.drain(..) {
                    match job {
                        Job::Generate {
                            input,
                            params: p,
                            reply,
                        } if p == params && batch.len() < max_batch => batch.push((input, reply)),
                        other => rest.push(other),
                    }
                }
                pending = rest;
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats
                    .largest_batch
                    .fetch_max(batch.len(), Ordering::Relaxed);
                run_batch(vlm, batch, &params);
                stats.busy.add(started.elapsed());
            }
        }
    }
}

type ScoreReply = Sender<Result<Score, VlmError>>;

fn run_score_batch(vlm: &Vlm, batch: Vec<(PromptInput, String, ScoreReply)>) {
    let mut ready = Vec::with_capacity(batch.len());
    let lead = vlm.reply_lead();
    for (input, text, reply) in batch {
        match prepare(vlm, &input) {
            // A chat reply follows the template's separator, as when it was generated.
            Ok(p) if input.chat && !lead.is_empty() => {
                ready.push((p, format!("{lead}{text}"), lead.len(), reply))
            }
            Ok(p) => ready.push((p, text, 0, reply)),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }
    if ready.is_empty() {
        return;
    }
    let items: Vec<(&Prompt, &str)> = ready.iter().map(|(p, t, ..)| (p, t.as_str())).collect();
    let results = match vlm.score_batch(&items) {
        Ok(results) => results,
        Err(e) => {
            // A batch-level failure: retry each alone so one bad request fails alone.
            let msg = e.to_string();
            ready
                .iter()
                .map(|(p, text, ..)| {
                    if ready.len() > 1 {
                        vlm.score(p, text)
                    } else {
                        Err(VlmError::Request(msg.clone()))
                    }
                })
                .collect()
        }
    };
    for ((_, _, lead, reply), r) in ready.iter().zip(results) {
        let _ = reply.send(r.map(|s| without_lead(s, *lead)));
    }
}

/// The score of the reply alone: tokens made only of the `lead` bytes in front of it are
/// left out and the token ends count from the reply's start.
fn without_lead(mut s: Score, lead: usize) -> Score {
    if lead == 0 {
        return s;
    }
    let skip = s.token_ends.iter().take_while(|&&e| e <= lead).count();
    if skip < s.token_ids.len() {
        s.token_ids.drain(..skip);
        s.token_logprobs.drain(..skip);
        s.token_ends.drain(..skip);
        s.mean_logprob = s.token_logprobs.iter().sum::<f64>() / s.token_logprobs.len() as f64;
    }
    for e in &mut s.token_ends {
        *e = e.saturating_sub(lead);
    }
    s
}

type Reply = Sender<Result<Generated, VlmError>>;

fn run_batch(vlm: &Vlm, batch: Vec<(PromptInput, Reply)>, params: &GenerationParams) {
    let mut ready = Vec::with_capacity(batch.len());
    for (input, reply) in batch {
        match prepare(vlm, &input) {
            Ok(p) => ready.push((p, reply)),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }
    if ready.is_empty() {
        return;
    }
    tracing::debug!(batch = ready.len(), "generating");
    let prompts: Vec<&Prompt> = ready.iter().map(|(p, _)| p).collect();
    match vlm.generate(&prompts, params) {
        Ok(results) => {
            for ((_, reply), r) in ready.iter().zip(results) {
                let _ = reply.send(Ok(r));
            }
        }
        Err(e) => {
            // A batch-level failure: retry each prompt alone so one bad request fails alone.
            let msg = e.to_string();
            for (p, reply) in &ready {
                let r = if ready.len() > 1 {
                    vlm.generate(&[p], params).map(|mut v| v.remove(0))
                } else {
                    Err(VlmError::Request(msg.clone()))
                };
                let _ = reply.send(r);
            }
        }
    }
}
