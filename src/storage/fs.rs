//! Objects as files in a local data directory: bucket `B` is the folder `<root>/B`.
//!
//! The same code runs natively and in the component, where `std::fs` goes through
//! `wasi:filesystem` and `<root>` is the directory the host preopened.

use super::Storage;
use crate::storage::location::ObjectPath;
use crate::{Error, Result};
use std::io::{ErrorKind as IoKind, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A local data directory holding one folder per bucket.
#[derive(Clone, Debug)]
pub struct FsStorage {
    root: PathBuf,
}

/// Distinguishes temporary files of concurrent puts within one process.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// A random token, the same for the whole process or component instance: concurrent instances
/// share the data directory, and WASI has no process id (`std::process::id` panics there).
fn instance_token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static TOKEN: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    // RandomState draws its keys from the OS (wasi:random in the component).
    *TOKEN.get_or_init(|| {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    })
}

impl FsStorage {
    /// A store rooted at `root`, which must exist.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path_of(&self, object: &ObjectPath) -> PathBuf {
        // Bucket and name were validated by `storage::location`: no `..`, nothing absolute.
        self.root.join(&object.bucket).join(&object.name)
    }

    /// Creates the folders above `path` (the file of `object`) and returns the innermost.
    fn make_parent<'a>(&self, object: &ObjectPath, path: &'a Path) -> Result<&'a Path> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| io_error(object, &e))?;
        Ok(dir)
    }

    fn open(&self, object: &ObjectPath) -> Result<std::fs::File> {
        std::fs::File::open(self.path_of(object)).map_err(|e| io_error(object, &e))
    }
}

fn io_error(object: &ObjectPath, e: &std::io::Error) -> Error {
    match e.kind() {
        IoKind::NotFound => Error::not_found(object),
        _ => Error::storage(object, e),
    }
}

impl Storage for FsStorage {
    async fn get(&self, object: &ObjectPath) -> Result<Vec<u8>> {
        std::fs::read(self.path_of(object)).map_err(|e| io_error(object, &e))
    }

    async fn get_range(&self, object: &ObjectPath, range: Range<u64>) -> Result<Vec<u8>> {
        let mut file = self.open(object)?;
        file.seek(SeekFrom::Start(range.start))
            .map_err(|e| io_error(object, &e))?;
        let mut bytes = Vec::new();
        file.take(range.end.saturating_sub(range.start))
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(object, &e))?;
        Ok(bytes)
    }

    async fn put(&self, object: &ObjectPath, bytes: &[u8], _content_type: &str) -> Result<()> {
        let path = self.path_of(object);
        let dir = self.make_parent(object, &path)?;
        // Write beside the target and rename over it: readers see the old object or the new
        // one, never a torn write, and a failed task leaves no partial file under the real name.
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let temp = dir.join(format!(
            ".{file_name}.tmp-{:016x}-{}",
            instance_token(),
            NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
        ));
        let written = std::fs::write(&temp, bytes).and_then(|()| std::fs::rename(&temp, &path));
        if let Err(e) = written {
            // Best effort: the temporary name is hidden and unique, so a leftover is harmless.
            let _ = std::fs::remove_file(&temp);
            return Err(io_error(object, &e));
        }
        Ok(())
    }

    /// The folders a put needs exist afterwards, and no folder stands where the file goes:
    /// what makes a local put fail short of a full disk.
    async fn check_writable(&self, object: &ObjectPath) -> Result<()> {
        let path = self.path_of(object);
        self.make_parent(object, &path)?;
        if path.is_dir() {
            return Err(Error::storage(
                object,
                "a folder stands where the object goes",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::storage::location::Location;

    fn temp_root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("emwrite-fs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn put_get_and_ranges_round_trip() {
        let root = temp_root("roundtrip");
        let store = FsStorage::new(&root);
        let object = Location::parse("dest", "lab").unwrap().object("a/b/c.bin");
        pollster::block_on(store.put(&object, b"0123456789", super::super::BINARY)).unwrap();
        assert_eq!(
            pollster::block_on(store.get(&object)).unwrap(),
            b"0123456789"
        );
        assert_eq!(
            pollster::block_on(store.get_range(&object, 2..5)).unwrap(),
            b"234"
        );
        assert_eq!(
            pollster::block_on(store.get_range(&object, 8..20)).unwrap(),
            b"89"
        );
        assert!(root.join("lab/a/b/c.bin").is_file());
        let leftovers: Vec<_> = std::fs::read_dir(root.join("lab/a/b")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files remain");
    }

    #[test]
    fn check_writable_fails_where_put_would_and_writes_no_object() {
        let root = temp_root("writable");
        let store = FsStorage::new(&root);
        let lab = Location::parse("dest", "lab").unwrap();
        pollster::block_on(store.check_writable(&lab.object("a/b.png"))).unwrap();
        assert!(root.join("lab/a").is_dir());
        assert!(!root.join("lab/a/b.png").exists());

        std::fs::write(root.join("blocked"), b"a file, not a bucket folder").unwrap();
        let blocked = Location::parse("dest", "blocked").unwrap().object("3");
        let e = pollster::block_on(store.check_writable(&blocked)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert!(e.message().starts_with("3 in bucket blocked: "), "{e}");
        let put = pollster::block_on(store.put(&blocked, b"x", super::super::BINARY));
        assert_eq!(put.unwrap_err().kind(), e.kind());

        std::fs::create_dir_all(root.join("lab/dir.png")).unwrap();
        let e = pollster::block_on(store.check_writable(&lab.object("dir.png"))).unwrap_err();
        assert!(
            e.message()
                .contains("a folder stands where the object goes"),
            "{e}"
        );
    }

    #[test]
    fn missing_object_is_not_found_and_named() {
        let store = FsStorage::new(temp_root("missing"));
        let object = Location::parse("dest", "lab").unwrap().object("raw/s1.png");
        let e = pollster::block_on(store.get(&object)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.to_string(), "raw/s1.png in bucket lab: not found");
    }
}
