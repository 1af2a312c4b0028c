//! Which tasks of a stack are already done, from what storage holds: a rerun skips them, and a
//! half-done task is never taken for done.
//!
//! The rule is the core's (`emwrite::tasks::finished`, docs/design.md §4 "Finished tasks"): a
//! slice when its aligned PNG and tile pack exist, the info when it exists and describes the
//! same volume, a block when its manifest matches the request and every shard it lists exists
//! with the listed size. Here it is applied to the host's [`Task`]s, many at once.

use emwrite::request::{AlignedSliceRequest, NgMetaRequest, NgShardRequest};
use emwrite::storage::location::Location;
use emwrite::tasks::finished::{block_finished, meta_finished, slice_finished};
use futures::StreamExt;

use crate::error::HostError;
use crate::store::HostStore;
use crate::task::Task;

/// Tasks checked at once: each check is one to a few metadata requests (a block: its manifest,
/// then its shards' sizes, 16 at a time), so this keeps a few hundred requests in flight on GCS.
const CHECKS_IN_FLIGHT: usize = 32;

/// Whether `task`'s outputs are all in `store`, whole.
pub async fn is_finished(store: &HostStore, task: &Task) -> emwrite::Result<bool> {
    match task {
        Task::Slice(r) => {
            let request = AlignedSliceRequest {
                img: r.img.clone(),
                // The transform does not decide which objects exist.
                transform: [0.0; 6],
                bbox: [r.bbox.0, r.bbox.1],
                dest: Location::parse("dest", &r.dest)?,
                dest_tmp: Location::parse("dest-tmp", &r.dest_tmp)?,
                slice: r.slice,
                shard_size: r.shard_size,
            };
            slice_finished(store, &request).await
        }
        Task::Meta(r) => {
            let request = NgMetaRequest {
                dest: Location::parse("dest", &r.dest)?,
                minz: r.minz,
                maxz: r.maxz,
                bbox: [r.bbox.0, r.bbox.1],
                write_raw: r.write_raw,
                resolution_nm: r.resolution,
            };
            meta_finished(store, &request).await
        }
        Task::Block { request: r, .. } => {
            let request = NgShardRequest {
                dest: Location::parse("dest", &r.dest)?,
                source: Location::parse("source", &r.source)?,
                start: [r.start.0, r.start.1, r.start.2],
                minz: r.minz,
                maxz: r.maxz,
                bbox: [r.bbox.0, r.bbox.1],
                write_raw: r.write_raw,
                jpeg_quality: r.jpeg_quality,
            };
            block_finished(store, &request).await
        }
    }
}

/// Each task with whether it is finished, in the order given, checked concurrently.
pub async fn check_all(
    store: &HostStore,
    tasks: Vec<Task>,
) -> Result<Vec<(Task, bool)>, HostError> {
    futures::stream::iter(tasks)
        .map(|task| async move {
            match is_finished(store, &task).await {
                Ok(done) => Ok((task, done)),
                Err(error) => Err(HostError::Task {
                    context: format!("checking whether {} is finished", task.label()),
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
