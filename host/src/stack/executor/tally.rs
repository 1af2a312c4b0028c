//! A phase's outcomes as its tasks finish, for every executor: counted, each failure logged with
//! its task, new tasks stopped after the first failure, and the phase's result.

use crate::error::HostError;
use crate::stack::progress::{Done, Progress};
use crate::stack::tasks::Phase;

/// Counts a phase's outcomes as tasks finish, and turns them into the phase's result.
pub struct Tally {
    phase: Phase,
    total: usize,
    done: usize,
    failed: usize,
}

impl Tally {
    /// A phase of `total` tasks, none finished.
    pub fn new(phase: Phase, total: usize) -> Self {
        Tally {
            phase,
            total,
            done: 0,
            failed: 0,
        }
    }

    /// Records a task's outcome: counts it, and logs a failure with the task it belongs to.
    pub fn record(&mut self, outcome: Result<Done, HostError>, progress: &Progress) {
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
    pub fn may_start(&self) -> bool {
        self.failed == 0
    }

    /// The phase's result: a failure when a task failed.
    pub fn result(&self) -> Result<(), HostError> {
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
