//! The executors that run a phase's tasks, chosen by the command line; the driver
//! (`stack/driver.rs`) hands each the same tasks (`stack/tasks.rs`), so every executor makes the
//! same volume:
//!
//! - [`in_process::InProcess`]: component instances in this process, `--jobs` at once;
//! - [`remote::Remote`]: the original API's requests POSTed to a deployed emwrite
//!   (`--endpoint`), `--concurrency` at once, ramped up, retried;
//! - batch tasks (`stack/batch.rs`) run their share of a phase with [`in_process::InProcess`].
//!
//! Both stop starting tasks after a task failed for good (a failure is usually systematic: a
//! wrong bucket, a bad transform), let the running ones finish, log every failure with its task,
//! and then fail the phase.

pub mod in_process;
pub mod ramp;
pub mod remote;
pub mod retry;
mod tally;

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
