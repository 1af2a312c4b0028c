//! An in-memory store for tests: objects by `bucket/name`; a streamed object appears, whole, only
//! when its writer finishes, as in the real stores. The crate's unit tests use it, and with the
//! `test-support` feature so do the fuzz targets.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Range;

use super::location::ObjectPath;
use super::{
    FinishedObject, ObjectWriter, PrefixedObjectWriter, Storage, StreamingStorage, Visible,
};
use crate::{Error, Result};

/// Objects by `bucket/name`.
#[derive(Debug, Default)]
pub struct MemoryStorage(RefCell<BTreeMap<String, Vec<u8>>>);

impl MemoryStorage {
    fn key(object: &ObjectPath) -> String {
        format!("{}/{}", object.bucket, object.name)
    }

    /// The objects in `bucket`, by name.
    pub fn bucket(&self, bucket: &str) -> BTreeMap<String, Vec<u8>> {
        let prefix = format!("{bucket}/");
        self.0
            .borrow()
            .iter()
            .filter_map(|(key, bytes)| Some((key.strip_prefix(&prefix)?.to_owned(), bytes.clone())))
            .collect()
    }

    /// The object's bytes, if it exists.
    pub fn bytes(&self, object: &ObjectPath) -> Option<Vec<u8>> {
        self.0.borrow().get(&Self::key(object)).cloned()
    }

    /// Puts `bytes` at `object` at once, bypassing the trait.
    pub fn insert(&self, object: &ObjectPath, bytes: Vec<u8>) {
        self.0.borrow_mut().insert(Self::key(object), bytes);
    }

    /// Removes `object`; returns its bytes if it existed.
    pub fn remove(&self, object: &ObjectPath) -> Option<Vec<u8>> {
        self.0.borrow_mut().remove(&Self::key(object))
    }
}

impl Storage for MemoryStorage {
    async fn get(&self, object: &ObjectPath) -> Result<Vec<u8>> {
        self.bytes(object).ok_or_else(|| Error::not_found(object))
    }

    /// Like a real store, a range past the end yields the bytes there are. Only the range is
    /// copied, so a reader's memory use is its own.
    async fn get_range(&self, object: &ObjectPath, range: Range<u64>) -> Result<Vec<u8>> {
        let objects = self.0.borrow();
        let bytes = objects
            .get(&Self::key(object))
            .ok_or_else(|| Error::not_found(object))?;
        let end = usize::try_from(range.end).map_or(bytes.len(), |end| end.min(bytes.len()));
        let start = usize::try_from(range.start).map_or(end, |start| start.min(end));
        Ok(bytes[start..end].to_vec())
    }

    async fn put(&self, object: &ObjectPath, bytes: &[u8], _: &str) -> Result<()> {
        self.insert(object, bytes.to_vec());
        Ok(())
    }
}

/// An object being written: visible only when finished.
#[derive(Debug)]
pub struct MemoryWriter<'a> {
    storage: &'a MemoryStorage,
    object: ObjectPath,
    prefix_len: u64,
    bytes: Vec<u8>,
}

impl StreamingStorage for MemoryStorage {
    type Writer<'a> = MemoryWriter<'a>;
    type PrefixedWriter<'a> = MemoryWriter<'a>;

    async fn start_put(&self, object: &ObjectPath, _: &str) -> Result<MemoryWriter<'_>> {
        self.start_put_with_prefix(object, "", 0).await
    }

    async fn start_put_with_prefix(
        &self,
        object: &ObjectPath,
        _: &str,
        prefix_len: u64,
    ) -> Result<MemoryWriter<'_>> {
        Ok(MemoryWriter {
            storage: self,
            object: object.clone(),
            prefix_len,
            bytes: Vec::new(),
        })
    }
}

impl ObjectWriter for MemoryWriter<'_> {
    async fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    async fn finish(self) -> Result<u64> {
        self.finish_with_prefix(&[]).await.map(|done| done.bytes)
    }
}

impl PrefixedObjectWriter for MemoryWriter<'_> {
    /// The object is stored when sent.
    type Sent = Visible;

    async fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    async fn send_with_prefix(self, prefix: &[u8]) -> Result<Visible> {
        if prefix.len() as u64 != self.prefix_len {
            return Err(super::prefix_length_error(
                &self.object,
                self.prefix_len,
                prefix.len(),
            ));
        }
        let file = [prefix, &self.bytes].concat();
        let bytes = file.len() as u64;
        self.storage.insert(&self.object, file);
        Ok(Visible(FinishedObject {
            bytes,
            notes: Vec::new(),
        }))
    }
}
