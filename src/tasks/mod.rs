//! The three endpoints as tasks over a [`Storage`]: they read, call the format and resampling
//! modules, and write. No format logic lives here.

pub mod aligned_slice;
pub mod ng_meta;
pub mod ng_shard;

use std::time::{Duration, Instant};

use crate::Result;
use crate::storage::Storage;
use crate::storage::location::ObjectPath;

/// What a task wrote, in order, and where its time went: the report every endpoint returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Objects written, as `bucket/name`.
    pub objects: Vec<String>,
    /// Total bytes written.
    pub bytes: u64,
    /// Storage requests repeated after transient failures (throttling, 5xx, resets).
    pub retries: u32,
    /// What the task chose or could not tidy that a caller may want to know, e.g. that it
    /// decoded a slice whole, or left a temporary object behind. Empty normally.
    pub notes: Vec<String>,
    /// Where the task's time went.
    pub stages: StageTimings,
}

/// Where a task's time went, stage by stage: what to look at first when a task is slow. A stage
/// a task does not have stays zero. Stages overlap in time (ngshard reads the next slab's tiles
/// while it computes), so they need not add up to the task's wall time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageTimings {
    /// Waiting for input: the wall time the task had nothing to compute because reads were not
    /// done (reads hidden behind compute do not count).
    pub fetch: Duration,
    /// Decoding input images (ngshard: the tiles' PNGs).
    pub decode: Duration,
    /// Making the coarser scales (ngshard: the 2×2×2 means).
    pub downsample: Duration,
    /// Encoding output: chunks into JPEG or raw, and assembling shard files.
    pub encode: Duration,
    /// Writing objects: the puts, from start to acknowledgement.
    pub write: Duration,
}

impl Written {
    /// Puts `bytes` at `object` and records it.
    pub async fn put(
        &mut self,
        storage: &impl Storage,
        object: &ObjectPath,
        bytes: &[u8],
        content_type: &str,
    ) -> Result<()> {
        let started = Instant::now();
        storage.put(object, bytes, content_type).await?;
        self.stages.write += started.elapsed();
        self.record(object, bytes.len() as u64);
        Ok(())
    }

    /// Records `object`, of `bytes` bytes, as written (by a streaming put).
    pub fn record(&mut self, object: &ObjectPath, bytes: u64) {
        self.objects
            .push(format!("{}/{}", object.bucket, object.name));
        self.bytes += bytes;
    }
}
