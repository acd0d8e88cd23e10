//! libtorch's intra-op thread count. OpenMP keeps it per thread, so the chosen count is
//! stored here and applied again by every thread that runs tensor ops (the engine thread,
//! the trainer). Tiny models on a few cores run faster on one thread: their ops are too small
//! to pay for OpenMP's barriers, which spin badly when the cores are shared.

use std::sync::atomic::{AtomicUsize, Ordering};

/// 0: libtorch's default (one thread per physical core).
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets the intra-op thread count for this thread and every thread that later calls
/// [`apply_torch_threads`]; 0 keeps libtorch's default.
pub fn set_torch_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
    apply_torch_threads();
}

/// Applies the count set by [`set_torch_threads`] to the calling thread (no-op when unset).
pub fn apply_torch_threads() {
    let n = THREADS.load(Ordering::Relaxed);
    if n > 0 {
        tch::set_num_threads(i32::try_from(n).unwrap_or(i32::MAX));
    }
}

/// The count set by [`set_torch_threads`] (0: libtorch's default).
pub fn torch_threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}
