//! The executors that run a phase's tasks, chosen by the command line; the driver (`driver.rs`)
//! hands each the same tasks (`stack.rs`), so every executor makes the same volume:
//!
//! - [`in_process::InProcess`]: component instances in this process, `--jobs` at once;
//! - [`remote::Remote`]: the original API's requests POSTed to a deployed emwrite
//!   (`--endpoint`), `--concurrency` at once, ramped up, retried;
//! - batch tasks (`batch.rs`) run their share of a phase with [`in_process::InProcess`].
//!
//! Both stop starting tasks after a task failed for good (a failure is usually systematic: a
//! wrong bucket, a bad transform), let the running ones finish, log every failure with its task,
//! and then fail the phase.

pub mod in_process;
pub mod ramp;
pub mod remote;
pub mod retry;

use std::sync::Arc;

use crate::error::HostError;
use crate::stack::progress::Progress;
use crate::stack::tasks::{Phase, StackTask};

/// Where a stack's tasks run.
pub enum Executor {
    /// In this process (boxed: the engine's handles are large beside the remote's `Arc`).
    InProcess(Box<in_process::InProcess>),
    /// On a deployed service.
    Remote(remote::Remote),
}

impl Executor {
    /// Runs every task of `phase`; fails if one failed for good.
    pub async fn run_phase(
        &self,
        phase: Phase,
        tasks: Vec<StackTask>,
        progress: &Arc<Progress>,
    ) -> Result<(), HostError> {
        match self {
            Executor::InProcess(executor) => executor.run_phase(phase, tasks, progress).await,
            Executor::Remote(executor) => executor.run_phase(phase, tasks, progress).await,
        }
    }
}

/// Counts a phase's outcomes as tasks finish, and turns them into the phase's result.
struct Tally {
    phase: Phase,
    total: usize,
    done: usize,
    failed: usize,
}

impl Tally {
    fn new(phase: Phase, total: usize) -> Self {
        Tally {
            phase,
            total,
            done: 0,
            failed: 0,
        }
    }

    /// Records a task's outcome: counts it, and logs a failure with the task it belongs to.
    fn record(
        &mut self,
        outcome: Result<crate::stack::progress::Done, HostError>,
        progress: &Progress,
    ) {
        match outcome {
            Ok(done) => {
                self.done += 1;
                progress.done(done);
            }
            Err(error) => {
                self.failed += 1;
                progress.failed();
                if let Some(backtrace) = error.backtrace() {
                    tracing::error!("{backtrace}");
                }
                tracing::error!("{error}");
            }
        }
    }

    /// Whether new tasks may start: not after a failure.
    fn may_start(&self) -> bool {
        self.failed == 0
    }

    fn result(&self) -> Result<(), HostError> {
        if self.failed == 0 {
            return Ok(());
        }
        Err(HostError::Phase {
            phase: self.phase.name(),
            failed: self.failed,
            done: self.done,
            total: self.total,
        })
    }
}
