//! The three endpoints as tasks over a [`Storage`]: they read, call the format and resampling
//! modules, and write. No format logic lives here.

pub mod aligned_slice;
pub mod ng_meta;
pub mod ng_shard;

use crate::Result;
use crate::storage::Storage;
use crate::storage::location::ObjectPath;

/// What a task wrote, in order: the report every endpoint returns.
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
        storage.put(object, bytes, content_type).await?;
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
