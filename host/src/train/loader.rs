//! Decoding and preprocessing on a worker thread: the reader runs ahead of the training
//! step through a bounded channel, so a step waits on I/O only when the worker falls
//! behind (the wait is measured and logged).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, bounded};
use tch::Tensor;

use super::TrainError;
use super::data::{CaptionSample, ReaderState, ShardReader};
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

/// A reader running on its own thread, `capacity` samples ahead.
pub struct Loader {
    rx: Option<Receiver<Result<Prepared, TrainError>>>,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl Loader {
    /// Starts the worker: it reads, decodes and preprocesses until dropped or the reader
    /// fails (the error is delivered in order).
    pub fn spawn(mut reader: ShardReader, processor: ImageProcessor, capacity: usize) -> Self {
        let (tx, rx) = bounded(capacity.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let worker = std::thread::Builder::new()
            .name("vila2-loader".into())
            .spawn(move || {
                crate::vlm::threads::apply_torch_threads();
                while !flag.load(Ordering::Relaxed) {
                    let item = reader.next_sample().map(|sample| Prepared {
                        pixels: processor.preprocess(&sample.image),
                        state: reader.state(),
                        sample,
                    });
                    let failed = item.is_err();
                    if tx.send(item).is_err() || failed {
                        break;
                    }
                }
            })
            .expect("spawn the loader thread");
        Self {
            rx: Some(rx),
            stop,
            worker: Some(worker),
        }
    }

    /// The next sample, waiting for the worker if needed.
    pub fn next(&self) -> Result<Prepared, TrainError> {
        self.rx
            .as_ref()
            .and_then(|rx| rx.recv().ok())
            .unwrap_or_else(|| Err(TrainError::Config("the data loader thread stopped".into())))
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.rx.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
