//! Object storage as the tasks see it: whole-object puts, whole and ranged gets.
//!
//! Every object is written whole in one `put`, so a task that fails leaves each of its outputs
//! either complete or absent. The trait is async because the component reaches GCS through
//! `wasi:http`, where many requests are in flight from one single-threaded instance.

pub mod fs;
pub mod gcs;
pub mod http_client;
pub mod location;
pub mod retry;
pub mod router;

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

    /// Starts writing `object`; nothing is visible under its name until the writer finishes.
    async fn start_put(&self, object: &ObjectPath, content_type: &str) -> Result<Self::Writer<'_>>;
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
