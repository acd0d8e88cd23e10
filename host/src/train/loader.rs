//! Decoding and preprocessing ahead of the training step: one thread draws raw samples from
//! the reader (cheap: tar members in memory), `workers` threads decode and preprocess them
//! in parallel, and [`Loader::next_sample`] puts the results back in stream order and counts skips
//! there, so the samples, the counts and the saved reader state are the same for any
//! number of workers. A step waits only when the workers fall behind (the wait is measured
//! and logged).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};
use tch::Tensor;

use super::TrainError;
use super::data::{CaptionSample, Drawn, ReaderState, ShardReader, Skip, Tally, decode};
use crate::vlm::preprocess::ImageProcessor;

/// A decoded sample with its pixels and the reader's position after it.
#[derive(Debug)]
pub struct Prepared {
    /// The sample.
    pub sample: CaptionSample,
    /// `[3, H, W]` pixel values.
    pub pixels: Tensor,
    /// Reader position once this sample is consumed (what a checkpoint saves).
    pub state: ReaderState,
}

/// A drawn sample after a worker: decoded and preprocessed, or why it is skipped.
struct Done {
    drawn: Drawn,
    outcome: Result<(CaptionSample, Tensor), Skip>,
}

/// What the workers send back, numbered in stream order; a reader error ends the stream.
type Numbered = (u64, Result<Done, TrainError>);

/// Decoding workers a loader starts by default: one on the CPU (the step is the bottleneck
/// and the cores are libtorch's), up to 8 where a GPU consumes samples faster than one
/// thread decodes them.
pub fn default_workers(device: tch::Device) -> usize {
    if device.is_cuda() {
        std::thread::available_parallelism()
            .map_or(4, |n| n.get().saturating_sub(2))
            .clamp(1, 8)
    } else {
        1
    }
}

/// A reader feeding `workers` decoding threads, up to `capacity` samples ahead.
pub struct Loader {
    rx: Option<Receiver<Numbered>>,
    ahead: BTreeMap<u64, Result<Done, TrainError>>,
    next: u64,
    tally: Tally,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Loader {
    /// Starts the reader thread and `workers` (at least one) decoding threads; they run
    /// until the loader is dropped or the reader fails (the error is delivered in order).
    pub fn spawn(
        mut reader: ShardReader,
        processor: ImageProcessor,
        capacity: usize,
        workers: usize,
    ) -> Self {
        let workers = workers.max(1);
        let (jobs_tx, jobs_rx) = bounded::<(u64, Drawn)>(2 * workers);
        let (done_tx, done_rx) = bounded::<Numbered>(capacity.max(1) + workers);
        let stop = Arc::new(AtomicBool::new(false));
        let tally = reader.tally();
        let dir = reader.dir().to_path_buf();
        let mut threads = Vec::with_capacity(workers + 1);
        let flag = stop.clone();
        let errors = done_tx.clone();
        threads.push(
            std::thread::Builder::new()
                .name("vila2-reader".into())
                .spawn(move || {
                    let mut seq = 0u64;
                    while !flag.load(Ordering::Relaxed) {
                        let sent = match reader.draw() {
                            Ok(d) => jobs_tx.send((seq, d)).is_ok(),
                            Err(e) => {
                                let _ = errors.send((seq, Err(e)));
                                false
                            }
                        };
                        if !sent {
                            break;
                        }
                        seq += 1;
                    }
                })
                .expect("spawn the reader thread"),
        );
        for i in 0..workers {
            let (jobs, done) = (jobs_rx.clone(), done_tx.clone());
            let processor = processor.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("vila2-loader-{i}"))
                    .spawn(move || work(&jobs, &done, &processor))
                    .expect("spawn a loader thread"),
            );
        }
        Self {
            rx: Some(done_rx),
            ahead: BTreeMap::new(),
            next: 0,
            tally,
            dir,
            stop,
            threads,
        }
    }

    /// The next usable sample in stream order, waiting for the workers if needed; skipped
    /// samples are counted (an error once a whole pass yields nothing usable).
    pub fn next_sample(&mut self) -> Result<Prepared, TrainError> {
        loop {
            let item = self.take_next()?;
            let done = item?;
            let used = self.tally.record(
                &done.drawn.key(),
                done.outcome.as_ref().map(|(s, _)| s.conversation.is_some()),
                done.drawn.pass_len,
                &self.dir,
            )?;
            if let (true, Ok((sample, pixels))) = (used, done.outcome) {
                return Ok(Prepared {
                    sample,
                    pixels,
                    state: done.drawn.state(self.tally.stats),
                });
            }
        }
    }

    /// The item numbered `self.next`, from those already received or the channel.
    fn take_next(&mut self) -> Result<Result<Done, TrainError>, TrainError> {
        let stopped = || TrainError::Config("the data loader threads stopped".into());
        loop {
            if let Some(item) = self.ahead.remove(&self.next) {
                self.next += 1;
                return Ok(item);
            }
            let rx = self.rx.as_ref().ok_or_else(stopped)?;
            let (seq, item) = rx.recv().map_err(|_| stopped())?;
            self.ahead.insert(seq, item);
        }
    }
}

/// A decoding thread: decodes and preprocesses drawn samples until the reader or the
/// loader is gone.
fn work(jobs: &Receiver<(u64, Drawn)>, done: &Sender<Numbered>, processor: &ImageProcessor) {
    crate::vlm::threads::apply_torch_threads();
    while let Ok((seq, drawn)) = jobs.recv() {
        let outcome = decode(&drawn.shard, &drawn.raw).map(|sample| {
            let pixels = processor.preprocess(&sample.image);
            (sample, pixels)
        });
        if done.send((seq, Ok(Done { drawn, outcome }))).is_err() {
            break;
        }
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // The reader stops at its next draw or failed send; the workers when the reader's
        // channel closes or their results have nowhere to go.
        self.stop.store(true, Ordering::Relaxed);
        drop(self.rx.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
