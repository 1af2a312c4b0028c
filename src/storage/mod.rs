//! Object storage as the tasks see it: whole-object puts, whole and ranged gets.
//!
//! Every object is written whole in one `put`, or in parts through a writer that makes it
//! visible only when finished, so a task that fails leaves each of its outputs either complete
//! or absent. The trait is async because the component reaches GCS through
//! `wasi:http`, where many requests are in flight from one single-threaded instance.

pub mod fs;
pub mod gcs;
pub mod http_client;
pub mod location;
#[cfg(any(test, feature = "test-support"))]
pub mod memory;
pub mod retry;
pub mod router;
#[cfg(test)]
pub(crate) mod scripted_client;

use crate::Result;
use location::ObjectPath;
use std::ops::Range;

/// Content type of PNG objects.
pub const PNG: &str = "image/png";
/// Content type of `info` objects.
pub const JSON: &str = "application/json";
/// Content type of everything else (tile packs, shards).
pub const BINARY: &str = "application/octet-stream";

/// A store of objects addressed by [`ObjectPath`].
///
/// Errors name the object: a missing object is [`crate::ErrorKind::NotFound`]; a store that keeps
/// failing is [`crate::ErrorKind::Storage`].
#[expect(
    async_fn_in_trait,
    reason = "futures run on one thread (wasm32 has none other), so no Send bound is wanted"
)]
pub trait Storage {
    /// The whole object.
    async fn get(&self, object: &ObjectPath) -> Result<Vec<u8>>;

    /// The bytes of `range` that the object has: shorter than asked at the object's end.
    async fn get_range(&self, object: &ObjectPath, range: Range<u64>) -> Result<Vec<u8>>;

    /// Writes the whole object at once, replacing any previous version.
    async fn put(&self, object: &ObjectPath, bytes: &[u8], content_type: &str) -> Result<()>;

    /// The object's size in bytes, or `None` when it does not exist: how a finished task is
    /// checked without reading its outputs (`crate::tasks::finished`). The default reads the
    /// whole object; stores override it with their metadata (a file's length, GCS's object
    /// metadata).
    async fn size(&self, object: &ObjectPath) -> Result<Option<u64>> {
        match self.get(object).await {
            Ok(bytes) => Ok(Some(bytes.len() as u64)),
            Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Fails as a [`Storage::put`] to `object` would, where the store can tell without writing
    /// the object: a task that writes several objects checks them all before its first put.
    /// The default knows nothing in advance; a store may prepare what a put needs.
    async fn check_writable(&self, object: &ObjectPath) -> Result<()> {
        let _ = object;
        Ok(())
    }

    /// Attempts this store has repeated after transient failures since it was made; tasks
    /// report the difference over their run.
    fn retries(&self) -> u32 {
        0
    }
}

/// A store that can also write an object in parts, for objects too large to hold whole.
///
/// The object appears under its name only when [`ObjectWriter::finish`] succeeds: a writer that
/// fails or is dropped unfinished leaves the object as it was (absent, or its previous version),
/// as a failed [`Storage::put`] does.
#[expect(
    async_fn_in_trait,
    reason = "futures run on one thread (wasm32 has none other), so no Send bound is wanted"
)]
pub trait StreamingStorage: Storage {
    /// The writer of one object.
    type Writer<'a>: ObjectWriter
    where
        Self: 'a;

    /// The writer of one object whose first bytes come last.
    type PrefixedWriter<'a>: PrefixedObjectWriter
    where
        Self: 'a;

    /// Starts writing `object`; nothing is visible under its name until the writer finishes.
    async fn start_put(&self, object: &ObjectPath, content_type: &str) -> Result<Self::Writer<'_>>;

    /// Starts writing `object` as `prefix || appended bytes`, where the prefix, exactly
    /// `prefix_len` bytes, is known only once everything else is written (a table of offsets
    /// before the data it indexes). Nothing is visible under the name until
    /// [`PrefixedObjectWriter::finish_with_prefix`] succeeds.
    async fn start_put_with_prefix(
        &self,
        object: &ObjectPath,
        content_type: &str,
        prefix_len: u64,
    ) -> Result<Self::PrefixedWriter<'_>>;
}

/// An object being written, part after part.
#[expect(
    async_fn_in_trait,
    reason = "futures run on one thread (wasm32 has none other), so no Send bound is wanted"
)]
pub trait ObjectWriter {
    /// Appends `bytes` to the object.
    async fn append(&mut self, bytes: &[u8]) -> Result<()>;

    /// Makes the object visible, whole, under its name; returns its size in bytes.
    async fn finish(self) -> Result<u64>;
}

/// An object being written part after part, its first `prefix_len` bytes last.
#[expect(
    async_fn_in_trait,
    reason = "futures run on one thread (wasm32 has none other), so no Send bound is wanted"
)]
pub trait PrefixedObjectWriter {
    /// The object once all its bytes are sent: [`SentObject::complete`] makes it visible.
    type Sent: SentObject;

    /// Appends `bytes` to the object, after the prefix and what was appended before.
    async fn append(&mut self, bytes: &[u8]) -> Result<()>;

    /// Sends `prefix` (exactly the length announced when the put started) and whatever of the
    /// appended bytes is still held. The object is visible, whole, under its name once the
    /// answer's [`SentObject::complete`] succeeds (a store may make it visible sooner), and
    /// never in part.
    ///
    /// Two steps, so that a caller can send the next object while this one completes: on GCS
    /// completing is a compose and the cleanup of the two temporaries, two round trips with no
    /// bytes to send (`gcs/upload.rs`).
    async fn send_with_prefix(self, prefix: &[u8]) -> Result<Self::Sent>;

    /// Both steps: sends the prefix and the rest, then makes the object visible, whole.
    async fn finish_with_prefix(self, prefix: &[u8]) -> Result<FinishedObject>
    where
        Self: Sized,
    {
        self.send_with_prefix(prefix).await?.complete().await
    }
}

/// A prefixed object whose bytes are all sent ([`PrefixedObjectWriter::send_with_prefix`]).
#[expect(
    async_fn_in_trait,
    reason = "futures run on one thread (wasm32 has none other), so no Send bound is wanted"
)]
pub trait SentObject {
    /// Makes the object visible, whole, under its name, and says what finishing it did.
    async fn complete(self) -> Result<FinishedObject>;
}

/// A sent object that its store already made visible: completing it does nothing more.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Visible(pub FinishedObject);

impl SentObject for Visible {
    async fn complete(self) -> Result<FinishedObject> {
        Ok(self.0)
    }
}

/// What finishing a prefixed object did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FinishedObject {
    /// The object's size in bytes, prefix included.
    pub bytes: u64,
    /// Housekeeping that failed after the object was already whole (a temporary object left
    /// behind), for the task report: not an error.
    pub notes: Vec<String>,
}

/// The error for a prefix of the wrong length, a caller's bug.
fn prefix_length_error(object: &ObjectPath, expected: u64, got: usize) -> crate::Error {
    crate::Error::internal(format!(
        "{object}: the prefix is {got} bytes, but the put announced {expected}"
    ))
}
