//! The driver: runs a stack's phases in order on one executor (`executor/`), a phase starting
//! only when the previous one succeeded, with progress and a summary (`progress.rs`).
//!
//! `emwrite pipeline` drives every phase, in-process or on a remote service; `emwrite task`
//! drives one phase's share in-process (`batch.rs`). The tasks come from the stack alone
//! (`tasks.rs`), so the three give the same volume. A task whose outputs are all in storage,
//! whole, is skipped (`finished.rs`), unless `--force`: in-process, and on a service whose
//! storage this process sees too (GCS).

use std::path::PathBuf;
use std::sync::Arc;

use crate::embed::call::Split;
use crate::embed::engine::Settings;
use crate::embed::store::{self, HostStore};
use crate::error::HostError;
use crate::runtime::runtime;
use crate::stack::batch::Share;
use crate::stack::executor::Executor;
use crate::stack::executor::in_process::InProcess;
use crate::stack::executor::remote::{Remote, RemoteOptions};
use crate::stack::finished;
use crate::stack::progress::Progress;
use crate::stack::tasks::{Phase, Stack, StackTask};

/// Where the tasks run.
pub enum Mode {
    /// Component instances in this process, `jobs` cores busy at once.
    InProcess {
        /// The engine's settings (data dir, store, limits).
        settings: Settings,
        /// Cores busy at once.
        jobs: usize,
        /// When a block runs as two halves.
        split: Split,
        /// Redo finished tasks too.
        force: bool,
    },
    /// A deployed emwrite service.
    Remote {
        /// How to reach it.
        options: RemoteOptions,
        /// Where this process sees the service's storage too (every location on GCS, with
        /// this host's credentials), unless `--force`: finished tasks are then skipped and the
        /// volume verified, as in-process. `None`: the service's storage is its own.
        shared_storage: Option<Settings>,
    },
}

/// What a run did.
pub struct Outcome {
    /// The local data directory, when tasks ran in-process on the local store.
    pub data_dir: Option<PathBuf>,
}

/// Runs `phases` of `stack` (this process's `share` of each) in `mode`, and logs the summary,
/// also when a phase failed.
pub fn drive(
    stack: &Stack,
    phases: &[Phase],
    share: Share,
    mode: Mode,
) -> Result<Outcome, HostError> {
    let workers = match &mode {
        // A guest computes on the worker that polls it: one worker per job runs them in parallel.
        Mode::InProcess { jobs, .. } => *jobs,
        // Requests only wait on the network.
        Mode::Remote { .. } => 2,
    };
    let runtime = runtime(Some(workers))?;
    runtime.block_on(async {
        // The store finished tasks are looked up in; none for a service whose storage this
        // process cannot see, or with --force.
        let (executor, data_dir, store) = match mode {
            Mode::InProcess {
                settings,
                jobs,
                split,
                force,
            } => {
                let executor = InProcess::load(&settings, jobs, split)?;
                let data_dir = executor.data_dir().map(PathBuf::from);
                let store = if force {
                    None
                } else {
                    Some(store::open(&settings)?)
                };
                (Executor::InProcess(Box::new(executor)), data_dir, store)
            }
            Mode::Remote {
                options,
                shared_storage,
            } => {
                let remote = Remote::new(options)?;
                tracing::info!("sending the tasks to {}", remote.endpoint());
                let store = shared_storage.as_ref().map(store::open).transpose()?;
                (Executor::Remote(remote), None, store)
            }
        };
        let progress = Arc::new(Progress::new());
        let result = run_phases(stack, phases, share, &executor, store.as_ref(), &progress).await;
        tracing::info!("{}", progress.summary());
        result.map(|()| Outcome { data_dir })
    })
}

async fn run_phases(
    stack: &Stack,
    phases: &[Phase],
    share: Share,
    executor: &Executor,
    store: Option<&HostStore>,
    progress: &Arc<Progress>,
) -> Result<(), HostError> {
    for &phase in phases {
        let tasks = share.pick(stack.tasks(phase));
        progress.start_phase(phase, tasks.len());
        let tasks = match store {
            Some(store) => {
                let (todo, skipped) = unfinished(store, tasks).await?;
                if skipped > 0 {
                    tracing::info!("{phase}: {skipped} tasks already finished, skipped");
                }
                progress.skipped(skipped);
                todo
            }
            None => tasks,
        };
        let result = executor.run_phase(phase, tasks, progress).await;
        progress.finish_phase();
        result?;
    }
    Ok(())
}

/// The tasks whose outputs are not all in `store`, whole (`finished.rs`), in order, and how many
/// were.
async fn unfinished(
    store: &HostStore,
    tasks: Vec<StackTask>,
) -> Result<(Vec<StackTask>, usize), HostError> {
    let total = tasks.len();
    let todo: Vec<StackTask> = finished::check_all(store, tasks)
        .await?
        .into_iter()
        .filter_map(|(task, done)| (!done).then_some(task))
        .collect();
    let skipped = total - todo.len();
    Ok((todo, skipped))
}
