//! The in-process executor: each task in a fresh component instance in this process, through
//! the typed WIT exports, `--jobs` cores busy at once.
//!
//! A block splits into two halves on two cores (`--split`, `embed/call.rs`) when fewer blocks are
//! left to start than there are free cores: with many blocks, whole blocks already fill every
//! core, and it is the last ones (or a stack of fewer blocks than `--jobs`) that would leave cores
//! idle.

use tokio::task::JoinSet;

use super::tally::Tally;
use crate::embed::bindings::EndpointsPre;
use crate::embed::call::{self, Split, Task};
use crate::embed::engine::{Emwrite, HostState, Settings};
use crate::error::HostError;
use crate::stack::progress::{Done, Progress};
use crate::stack::tasks::{Phase, StackTask};

/// Component instances in this process.
pub struct InProcess {
    emwrite: Emwrite,
    pre: EndpointsPre<HostState>,
    jobs: usize,
    split: Split,
}

impl InProcess {
    /// Loads the component; `jobs` cores run tasks at once. Needs a tokio runtime with `jobs`
    /// workers: a guest computes on the worker that polls it.
    pub fn load(settings: &Settings, jobs: usize, split: Split) -> Result<Self, HostError> {
        let emwrite = Emwrite::load(settings)?;
        let pre = call::endpoints_pre(&emwrite)?;
        Ok(InProcess {
            emwrite,
            pre,
            jobs,
            split,
        })
    }

    /// Runs `tasks` on `jobs` cores: a task takes one, a split block two.
    pub async fn run_phase(
        &self,
        phase: Phase,
        tasks: Vec<StackTask>,
        progress: &Progress,
    ) -> Result<(), HostError> {
        // The meta phase is one tiny task: a core is plenty.
        let jobs = if phase == Phase::Meta { 1 } else { self.jobs };
        let mut tally = Tally::new(phase, tasks.len());
        let mut pending = tasks.into_iter();
        let mut running = JoinSet::new();
        let mut busy_cores = 0_usize;
        loop {
            while tally.may_start() && busy_cores < jobs {
                let not_started = pending.len();
                let Some(next) = pending.next() else {
                    break;
                };
                let task =
                    Task::new(&next.request).with_split(self.split, jobs - busy_cores, not_started);
                let cores = task.cores();
                busy_cores += cores;
                let (emwrite, pre) = (self.emwrite.clone(), self.pre.clone());
                running.spawn(async move { (cores, call::run(emwrite, pre, task).await) });
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let outcome = match joined {
                Ok((cores, outcome)) => {
                    busy_cores -= cores;
                    outcome.map(|written| Done {
                        objects: written.objects.len(),
                        bytes: written.bytes,
                        storage_retries: written.retries,
                    })
                }
                // Only a panic in the host ends a task this way; its cores count as busy until
                // the phase ends, which is soon: the failure stops new tasks.
                Err(join) => Err(HostError::Engine {
                    context: phase.name().to_owned(),
                    message: format!("host task failed: {join}"),
                }),
            };
            tally.record(outcome, progress);
        }
        tally.result()
    }

    /// The local data directory, or `None` when bare buckets are GCS buckets.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.emwrite.data_dir()
    }
}
