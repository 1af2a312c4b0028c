//! The tokio runtime a command runs its asynchronous work on, and the cores it may use.

use tokio::runtime::{Builder, Runtime};

use crate::error::HostError;

/// A multi-threaded runtime with `workers` worker threads (default: one per core), timers and
/// I/O enabled. A guest computes on the worker that polls it (wasm32 has no threads), so a
/// command running N instances at once asks for N workers.
pub fn runtime(workers: Option<usize>) -> Result<Runtime, HostError> {
    let mut builder = Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(workers.max(1));
    }
    builder
        .enable_all()
        .build()
        .map_err(|e| HostError::Config(format!("cannot start the async runtime: {e}")))
}

/// This machine's cores, as the process may use them; at least 1.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
