//! The three endpoints as tasks over a [`Storage`]: they read, call the format and resampling
//! modules, and write. No format logic lives here.

pub mod aligned_slice;
mod block_writes;
pub mod finished;
pub mod ng_meta;
pub mod ng_shard;
pub mod tile_reads;

use std::time::{Duration, Instant};

use serde::Serialize;

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
    /// Decoding input images (alignedslice: the raw slice; ngshard: the tiles' PNGs).
    pub decode: Duration,
    /// Resampling the raw slice through its transform (alignedslice).
    pub resample: Duration,
    /// Making the coarser scales (ngshard: the 2×2×2 means).
    pub downsample: Duration,
    /// Encoding output: the aligned PNG and the tile pack; chunks into JPEG or raw, and
    /// assembling shard files.
    pub encode: Duration,
    /// Writing objects: the puts, from start to acknowledgement.
    pub write: Duration,
}

/// [`StageTimings`] in whole microseconds, as reports and the WIT `stage-timings` carry them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StageMicros {
    /// [`StageTimings::fetch`].
    pub fetch_us: u64,
    /// [`StageTimings::decode`].
    pub decode_us: u64,
    /// [`StageTimings::resample`].
    pub resample_us: u64,
    /// [`StageTimings::downsample`].
    pub downsample_us: u64,
    /// [`StageTimings::encode`].
    pub encode_us: u64,
    /// [`StageTimings::write`].
    pub write_us: u64,
}

impl From<StageTimings> for StageMicros {
    fn from(t: StageTimings) -> Self {
        // A task runs for far less than the 584 000 years that overflow u64 microseconds.
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Self {
            fetch_us: us(t.fetch),
            decode_us: us(t.decode),
            resample_us: us(t.resample),
            downsample_us: us(t.downsample),
            encode_us: us(t.encode),
            write_us: us(t.write),
        }
    }
}

/// The JSON body of a task that succeeded, for clients that ask for JSON: one shape for the
/// component's HTTP answer and the host's `emwrite run` (which adds `wall_us`).
///
/// ```
/// let mut written = emwrite::tasks::Written::default();
/// written.objects.push("lab/neuroglancer/jpeg/info".into());
/// let body = emwrite::tasks::ReportBody::from(&written);
/// assert!(body.to_json().starts_with(r#"{"status":"success","objects":["lab/neuroglancer"#));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReportBody {
    /// Always `success` (the original answered a bare `success`).
    pub status: &'static str,
    /// Objects written, as `bucket/name`, in order.
    pub objects: Vec<String>,
    /// Total bytes written.
    pub bytes: u64,
    /// Storage requests repeated after transient failures.
    pub retries: u32,
    /// What the task chose or could not tidy (see [`Written::notes`]).
    pub notes: Vec<String>,
    /// Where the task's time went.
    pub stages: StageMicros,
    /// The task's wall time, where the caller measured it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_us: Option<u64>,
}

impl ReportBody {
    /// The report of a task that wrote `objects` (`bytes` in all) after `retries` retries.
    pub fn new(
        objects: Vec<String>,
        bytes: u64,
        retries: u32,
        notes: Vec<String>,
        stages: StageMicros,
    ) -> Self {
        Self {
            status: "success",
            objects,
            bytes,
            retries,
            notes,
            stages,
            wall_us: None,
        }
    }

    /// The body as JSON text.
    pub fn to_json(&self) -> String {
        // Strings, numbers and lists of strings always serialise.
        serde_json::to_string(self).expect("a report always serialises")
    }
}

impl From<&Written> for ReportBody {
    fn from(w: &Written) -> Self {
        Self::new(
            w.objects.clone(),
            w.bytes,
            w.retries,
            w.notes.clone(),
            w.stages.into(),
        )
    }
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
