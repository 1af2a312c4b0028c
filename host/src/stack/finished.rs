//! Which tasks of a stack are already done, from what storage holds: a rerun skips them, and a
//! half-done task is never taken for done.
//!
//! The rule is the core's (`emwrite::tasks::finished`, docs/design.md §4 "Finished tasks"): a
//! slice when its aligned PNG and tile pack exist, the info when it exists and describes the
//! same volume, a block when its manifest matches the request and every shard it lists exists
//! with the listed size. Here it is applied to a stack's tasks, many at once.

use emwrite::tasks::finished::{block_finished, meta_finished, slice_finished};
use futures::StreamExt;

use crate::embed::store::HostStore;
use crate::error::HostError;
use crate::request::Request;
use crate::stack::tasks::StackTask;

/// Tasks checked at once: each check is one to a few metadata requests (a block: its manifest,
/// then its shards' sizes, 16 at a time), so this keeps a few hundred requests in flight on GCS.
const CHECKS_IN_FLIGHT: usize = 32;

/// Whether `task`'s outputs are all in `store`, whole: its request goes to the core's rule as
/// it is.
pub async fn is_finished(store: &HostStore, task: &StackTask) -> emwrite::Result<bool> {
    match &task.request {
        Request::AlignedSlice(request) => slice_finished(store, request).await,
        Request::NgMeta(request) => meta_finished(store, request).await,
        Request::NgShard(request) => block_finished(store, request).await,
    }
}

/// Each task with whether it is finished, in the order given, checked concurrently.
pub async fn check_all(
    store: &HostStore,
    tasks: Vec<StackTask>,
) -> Result<Vec<(StackTask, bool)>, HostError> {
    futures::stream::iter(tasks)
        .map(|task| async move {
            match is_finished(store, &task).await {
                Ok(done) => Ok((task, done)),
                Err(error) => Err(HostError::Task {
                    context: format!("checking whether {} is finished", task.id),
                    error,
                }),
            }
        })
        .buffered(CHECKS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}
