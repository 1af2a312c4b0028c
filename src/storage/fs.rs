//! Objects as files in a local data directory: bucket `B` is the folder `<root>/B`.
//!
//! The same code runs natively and in the component, where `std::fs` goes through
//! `wasi:filesystem` and `<root>` is the directory the host preopened. A put writes a hidden
//! temporary file beside the object and renames it over the object, so an object is whole or
//! absent; [`sweep_stale_temp_files`] removes the temporary files of puts that were cut short
//! (a killed process), which nothing else would.

use super::{
    FinishedObject, ObjectWriter, PrefixedObjectWriter, Storage, StreamingStorage, Visible,
    prefix_length_error,
};
use crate::storage::location::ObjectPath;
use crate::{Error, ErrorKind, Result};
use std::io::{ErrorKind as IoKind, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// A local data directory holding one folder per bucket.
#[derive(Clone, Debug)]
pub struct FsStorage {
    root: PathBuf,
}

/// Distinguishes temporary files of concurrent puts within one process.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// What stands between an object's file name and a put's token in its temporary file's name:
/// `.<file name>.tmp-<16 hex digits>-<counter>`.
const TEMP_MARKER: &str = ".tmp-";

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

/// The temporary file name of the next put of the file `file_name`.
fn temp_file_name(file_name: &str) -> String {
    format!(
        ".{file_name}{TEMP_MARKER}{:016x}-{}",
        instance_token(),
        NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether `name` is a temporary file name that [`temp_file_name`] makes: nothing else in a
/// data directory is ever swept.
///
/// ```
/// use emwrite::storage::fs::is_temp_file_name;
/// assert!(is_temp_file_name(".0.shard.tmp-00c0ffee00c0ffee-12"));
/// assert!(!is_temp_file_name("0.shard"));
/// assert!(!is_temp_file_name(".0.shard.tmp-c0ffee-12"));
/// assert!(!is_temp_file_name(".notes.tmp-00c0ffee00c0ffee-x"));
/// ```
pub fn is_temp_file_name(name: &str) -> bool {
    let Some((object, suffix)) = name.rsplit_once(TEMP_MARKER) else {
        return false;
    };
    let Some((token, counter)) = suffix.split_once('-') else {
        return false;
    };
    object.len() > 1
        && object.starts_with('.')
        && token.len() == 16
        && token.bytes().all(|b| b.is_ascii_hexdigit())
        && !counter.is_empty()
        && counter.bytes().all(|b| b.is_ascii_digit())
}

/// What a sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Temporary files removed.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Removes the temporary files of puts below `root` last modified more than `min_age` ago.
///
/// A put writes its temporary file in one go and renames it at once, so one that has not
/// changed for a while belongs to a put that was cut short (the process was killed); `min_age`
/// keeps the sweep away from puts still in flight in other processes sharing the directory.
/// Only names that [`is_temp_file_name`] accepts are touched, and links are not followed.
/// Entries that vanish or cannot be read meanwhile are skipped: a sweep is best effort.
pub fn sweep_stale_temp_files(root: &Path, min_age: Duration) -> Swept {
    let mut swept = Swept::default();
    let now = SystemTime::now();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            // `DirEntry::file_type` does not follow links: a link is neither a folder nor a file.
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_dir() {
                folders.push(entry.path());
                continue;
            }
            let name = entry.file_name();
            if !file_type.is_file() || !name.to_str().is_some_and(is_temp_file_name) {
                continue;
            }
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            let age = metadata
                .modified()
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .unwrap_or_default();
            if age >= min_age && std::fs::remove_file(entry.path()).is_ok() {
                swept.files += 1;
                swept.bytes += metadata.len();
            }
        }
    }
    swept
}

/// What a failed operation was doing, for the error it becomes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Doing {
    Reading,
    Writing,
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
        std::fs::create_dir_all(dir).map_err(|e| self.fault(object, Doing::Writing, &e))?;
        Ok(dir)
    }

    /// [`Storage::check_writable`] for the file `path` of `object`.
    fn check_path(&self, object: &ObjectPath, path: &Path) -> Result<()> {
        // The nearest existing folder on the object's path must be a folder (a file there is
        // what makes the put fail), and the object itself not a folder.
        for ancestor in path.ancestors().skip(1) {
            match std::fs::metadata(ancestor) {
                Ok(found) if found.is_dir() => break,
                Ok(_) => {
                    let not_a_folder = std::io::Error::from(IoKind::NotADirectory);
                    return Err(self.fault(object, Doing::Writing, &not_a_folder));
                }
                Err(e) if e.kind() == IoKind::NotFound => {}
                Err(e) => return Err(self.fault(object, Doing::Writing, &e)),
            }
        }
        if path.is_dir() {
            return Err(Error::new(
                ErrorKind::BadRequest,
                format!("{object}: is a folder, not an object"),
            ));
        }
        Ok(())
    }

    fn open(&self, object: &ObjectPath) -> Result<std::fs::File> {
        std::fs::File::open(self.path_of(object))
            .map_err(|e| self.fault(object, Doing::Reading, &e))
    }

    /// Whether a link stands anywhere on the way from the bucket folder to `object`'s file.
    fn passes_through_link(&self, object: &ObjectPath) -> bool {
        let mut path = self.root.clone();
        std::iter::once(object.bucket.as_str())
            .chain(object.name.split('/'))
            .any(|segment| {
                path.push(segment);
                std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink())
            })
    }

    /// The error for a failed file operation on `object`, by who is at fault (docs/design.md
    /// §9): names that clash with what the directory holds, or lead through a link the sandbox
    /// refuses, are the request's; a read-only directory is the deployment's; anything else is
    /// the store failing.
    fn fault(&self, object: &ObjectPath, doing: Doing, e: &std::io::Error) -> Error {
        match (e.kind(), doing) {
            (IoKind::NotFound, _) => Error::not_found(object),
            // A file in the way of a folder on the object's path: reading, there is no such
            // object (as an object store would say); writing, the names clash.
            (IoKind::NotADirectory, Doing::Reading) => Error::not_found(object),
            (IoKind::NotADirectory | IoKind::AlreadyExists, Doing::Writing) => Error::new(
                ErrorKind::BadRequest,
                format!("{object}: a file stands where the object's name needs a folder"),
            ),
            (IoKind::IsADirectory, _) => Error::new(
                ErrorKind::BadRequest,
                format!("{object}: is a folder, not an object"),
            ),
            (IoKind::PermissionDenied, _) if self.passes_through_link(object) => Error::new(
                ErrorKind::BadRequest,
                format!("{object}: leads through a link, which the data directory does not follow"),
            ),
            (IoKind::PermissionDenied, Doing::Writing) => Error::storage(
                object,
                "the data directory is read-only here (under Spin, files mounts are read-only \
                 unless `spin up --allow-transient-write`)",
            ),
            _ => Error::storage(object, e),
        }
    }
}

impl Storage for FsStorage {
    async fn get(&self, object: &ObjectPath) -> Result<Vec<u8>> {
        std::fs::read(self.path_of(object)).map_err(|e| self.fault(object, Doing::Reading, &e))
    }

    async fn get_range(&self, object: &ObjectPath, range: Range<u64>) -> Result<Vec<u8>> {
        let mut file = self.open(object)?;
        let fault = |e: std::io::Error| self.fault(object, Doing::Reading, &e);
        // One buffer of the exact size, filled by reads that each ask for all that is left:
        // `read_to_end` would start from a small probe and grow, and in the component every read
        // is a call into the host (a tile is 1 MiB, a block reads 1 GiB of them).
        let file_len = file.metadata().map_err(fault)?.len();
        let len = range.end.min(file_len).saturating_sub(range.start);
        let len = usize::try_from(len).map_err(|_| {
            Error::new(
                ErrorKind::TooLarge,
                format!("{object}: a read of {len} bytes does not fit in memory"),
            )
        })?;
        let mut bytes = vec![0; len];
        file.seek(SeekFrom::Start(range.start)).map_err(fault)?;
        let mut filled = 0;
        while filled < bytes.len() {
            match file.read(&mut bytes[filled..]).map_err(fault)? {
                0 => break,
                n => filled += n,
            }
        }
        bytes.truncate(filled);
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
        let temp = dir.join(temp_file_name(&file_name));
        let written = std::fs::File::create(&temp)
            .and_then(|file| write_all_at(&file, bytes, 0))
            .and_then(|()| std::fs::rename(&temp, &path));
        if let Err(e) = written {
            // Best effort; a leftover (say, of a killed process) is what the sweep is for.
            let _ = std::fs::remove_file(&temp);
            return Err(self.fault(object, Doing::Writing, &e));
        }
        Ok(())
    }

    /// The file's length; a missing file, or a folder where the object would be, is no object.
    async fn size(&self, object: &ObjectPath) -> Result<Option<u64>> {
        match std::fs::metadata(self.path_of(object)) {
            Ok(metadata) if metadata.is_file() => Ok(Some(metadata.len())),
            Ok(_) => Ok(None),
            Err(e) if matches!(e.kind(), IoKind::NotFound | IoKind::NotADirectory) => Ok(None),
            Err(e) => Err(self.fault(object, Doing::Reading, &e)),
        }
    }

    /// No file stands where a folder of the object's path goes, and no folder where the file
    /// goes: what makes a local put fail short of a full disk. Creates nothing.
    async fn check_writable(&self, object: &ObjectPath) -> Result<()> {
        self.check_path(object, &self.path_of(object))
    }
}

impl StreamingStorage for FsStorage {
    type Writer<'a> = FsWriter;
    type PrefixedWriter<'a> = FsPrefixedWriter;

    /// Leaves `prefix_len` bytes at the start of the temporary file and appends after them;
    /// finishing writes the prefix there and renames the file, as [`Self::start_put`] does.
    async fn start_put_with_prefix(
        &self,
        object: &ObjectPath,
        content_type: &str,
        prefix_len: u64,
    ) -> Result<FsPrefixedWriter> {
        let mut writer = self.start_put(object, content_type).await?;
        writer.hole = prefix_len;
        Ok(FsPrefixedWriter { writer, prefix_len })
    }

    /// Checks the object's path now; the folders and the temporary file are made at the first
    /// byte, so a task that fails before writing anything leaves nothing, not even a folder.
    async fn start_put(&self, object: &ObjectPath, _content_type: &str) -> Result<FsWriter> {
        let path = self.path_of(object);
        self.check_path(object, &path)?;
        Ok(FsWriter {
            store: self.clone(),
            object: object.clone(),
            file: None,
            hole: 0,
            path,
            bytes: 0,
            finished: false,
        })
    }
}

/// An object of the local store being written: appended to its temporary file (made at the
/// first byte), renamed over the object by [`ObjectWriter::finish`], removed if dropped
/// unfinished.
#[derive(Debug)]
pub struct FsWriter {
    store: FsStorage,
    object: ObjectPath,
    /// The temporary file and its path, once the first byte (or the finish) needed them.
    file: Option<(std::fs::File, PathBuf)>,
    /// Bytes left empty at the start of the file, for a prefix written at the finish.
    hole: u64,
    path: PathBuf,
    bytes: u64,
    finished: bool,
}

impl FsWriter {
    fn fault(&self, e: &std::io::Error) -> Error {
        self.store.fault(&self.object, Doing::Writing, e)
    }

    /// The temporary file, made (with the folders above it) on first use.
    fn file(&mut self) -> Result<&std::fs::File> {
        if self.file.is_none() {
            let dir = self
                .store
                .make_parent(&self.object, &self.path)?
                .to_path_buf();
            let file_name = self
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let temp = dir.join(temp_file_name(&file_name));
            let file = std::fs::File::create(&temp).map_err(|e| self.fault(&e))?;
            self.file = Some((file, temp));
        }
        let (file, _) = self
            .file
            .as_ref()
            .expect("the temporary file was made just above");
        Ok(file)
    }

    /// Writes `prefix` at the start of the file, into the hole left for it.
    fn fill_hole(&mut self, prefix: &[u8]) -> Result<()> {
        let written = write_all_at(self.file()?, prefix, 0);
        written.map_err(|e| self.fault(&e))
    }
}

impl ObjectWriter for FsWriter {
    /// Writes `bytes` after the hole and the bytes before them: the first write past the end of
    /// the empty file leaves the hole that the prefix fills. Unbuffered, as the callers append
    /// whole encoded pieces (tiles, rows of a PNG, shard parts), not small writes.
    async fn append(&mut self, bytes: &[u8]) -> Result<()> {
        let at = self.hole + self.bytes;
        let written = write_all_at(self.file()?, bytes, at);
        written.map_err(|e| self.fault(&e))?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    async fn finish(mut self) -> Result<u64> {
        // An object nothing was appended to is still made, empty (or its prefix alone).
        self.file()?;
        let (_, temp) = self
            .file
            .as_ref()
            .expect("`file()` made the temporary file");
        std::fs::rename(temp, &self.path).map_err(|e| self.fault(&e))?;
        self.finished = true;
        Ok(self.bytes)
    }
}

/// The most bytes one positional write hands the host: it copies a call's bytes out of linear
/// memory into a buffer of that size. At 1 MiB the buffers come from the host allocator's heap,
/// reused; whole 8 MiB strips each took fresh pages (an aligned 8192² slice's writes took
/// 0.28–0.42 s instead of 0.12 s).
#[cfg(target_os = "wasi")]
const WRITE_CALL_BYTES: usize = 1 << 20;

/// Writes all of `bytes` at `offset` of `file`, by positional writes. In the component such a
/// write is `wasi:filesystem`'s `descriptor.write`, which the host runs on the instance's own
/// thread; a plain `write` goes through an output stream, which wasmtime hands to tokio's
/// blocking pool: two thread switches per 64 KiB (the futex wakes were 5–7% of an aligned
/// slice's CPU time).
fn write_all_at(file: &std::fs::File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    #[cfg(not(target_os = "wasi"))]
    {
        std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
    }
    // std's `std::os::wasi::fs::FileExt` is unstable, so this is `write_all_at` on rustix's
    // `pwrite` (wasi-libc's).
    #[cfg(target_os = "wasi")]
    {
        let (mut bytes, mut offset) = (bytes, offset);
        while !bytes.is_empty() {
            let piece = &bytes[..bytes.len().min(WRITE_CALL_BYTES)];
            match rustix::io::pwrite(file, piece, offset) {
                Ok(0) => return Err(IoKind::WriteZero.into()),
                Ok(n) => {
                    bytes = &bytes[n..];
                    offset += n as u64;
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}

/// An object of the local store being written after a prefix that [`finish_with_prefix`]
/// fills in: an [`FsWriter`] whose file starts with a hole of `prefix_len` bytes.
///
/// [`finish_with_prefix`]: PrefixedObjectWriter::finish_with_prefix
#[derive(Debug)]
pub struct FsPrefixedWriter {
    writer: FsWriter,
    prefix_len: u64,
}

impl PrefixedObjectWriter for FsPrefixedWriter {
    /// The file is renamed into place when sent.
    type Sent = Visible;

    async fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.append(bytes).await
    }

    async fn send_with_prefix(mut self, prefix: &[u8]) -> Result<Visible> {
        if prefix.len() as u64 != self.prefix_len {
            return Err(prefix_length_error(
                &self.writer.object,
                self.prefix_len,
                prefix.len(),
            ));
        }
        self.writer.fill_hole(prefix)?;
        let appended = self.writer.finish().await?;
        Ok(Visible(FinishedObject {
            bytes: self.prefix_len + appended,
            notes: Vec::new(),
        }))
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        if let (false, Some((_, temp))) = (self.finished, &self.file) {
            // Best effort, as in `put`: a leftover is what the sweep is for.
            let _ = std::fs::remove_file(temp);
        }
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
        assert!(!root.join("lab").exists(), "a check creates nothing");

        std::fs::write(root.join("blocked"), b"a file, not a bucket folder").unwrap();
        let blocked = Location::parse("dest", "blocked").unwrap().object("3");
        let e = pollster::block_on(store.check_writable(&blocked)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert_eq!(
            e.message(),
            "3 in bucket blocked: a file stands where the object's name needs a folder"
        );
        let put = pollster::block_on(store.put(&blocked, b"x", super::super::BINARY));
        assert_eq!(put.unwrap_err().kind(), e.kind());

        std::fs::create_dir_all(root.join("lab/dir.png")).unwrap();
        let e = pollster::block_on(store.check_writable(&lab.object("dir.png"))).unwrap_err();
        assert_eq!(
            e.message(),
            "dir.png in bucket lab: is a folder, not an object"
        );
    }

    #[test]
    fn folders_and_files_in_the_way_are_named_by_who_is_at_fault() {
        let root = temp_root("clash");
        let store = FsStorage::new(&root);
        let lab = Location::parse("dest", "lab").unwrap();
        std::fs::create_dir_all(root.join("lab/raw/s1.png")).unwrap();
        std::fs::write(root.join("lab/file"), b"x").unwrap();

        let e = pollster::block_on(store.get(&lab.object("raw/s1.png"))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert_eq!(
            e.message(),
            "raw/s1.png in bucket lab: is a folder, not an object"
        );
        let e = pollster::block_on(store.get_range(&lab.object("raw/s1.png"), 0..8)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);

        let e = pollster::block_on(store.get(&lab.object("file/7"))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        let e = pollster::block_on(store.put(&lab.object("file/7"), b"x", super::super::BINARY))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert_eq!(
            e.message(),
            "file/7 in bucket lab: a file stands where the object's name needs a folder"
        );
        let e = pollster::block_on(store.put(&lab.object("raw/s1.png"), b"x", super::super::PNG))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{e}");
    }

    #[test]
    fn sweep_removes_only_stale_temporary_files_of_puts() {
        let root = temp_root("sweep");
        let shards = root.join("lab/neuroglancer/jpeg/8.0x8.0x8.0");
        std::fs::create_dir_all(&shards).unwrap();
        let temp = shards.join(temp_file_name("0.shard"));
        std::fs::write(&temp, [0u8; 100]).unwrap();
        let keep = [
            shards.join("0.shard"),
            shards.join(".0.shard.tmp-notours"),
            root.join("lab/.hidden"),
        ];
        for file in &keep {
            std::fs::write(file, b"kept").unwrap();
        }
        // A fresh temporary file may belong to a put in flight elsewhere.
        let hour = Duration::from_secs(3600);
        assert_eq!(sweep_stale_temp_files(&root, hour), Swept::default());
        assert!(temp.exists());

        let file = std::fs::File::options().write(true).open(&temp).unwrap();
        file.set_modified(SystemTime::now() - 2 * hour).unwrap();
        drop(file);
        let swept = sweep_stale_temp_files(&root, hour);
        assert_eq!(
            swept,
            Swept {
                files: 1,
                bytes: 100
            }
        );
        assert!(!temp.exists());
        assert!(keep.iter().all(|f| f.exists()));
    }

    #[test]
    fn streamed_objects_appear_only_when_finished() {
        use pollster::block_on;
        let root = temp_root("stream");
        let store = FsStorage::new(&root);
        let object = Location::parse("dest", "lab")
            .unwrap()
            .object("raw/0.shard");
        let mut writer = block_on(store.start_put(&object, super::super::BINARY)).unwrap();
        block_on(writer.append(b"0123")).unwrap();
        block_on(writer.append(b"4567")).unwrap();
        assert!(
            !root.join("lab/raw/0.shard").exists(),
            "not visible before finish"
        );
        assert_eq!(block_on(writer.finish()).unwrap(), 8);
        assert_eq!(block_on(store.get(&object)).unwrap(), b"01234567");

        // A writer dropped unfinished leaves the previous version and no temporary file.
        let mut writer = block_on(store.start_put(&object, super::super::BINARY)).unwrap();
        block_on(writer.append(b"partial")).unwrap();
        drop(writer);
        assert_eq!(block_on(store.get(&object)).unwrap(), b"01234567");
        let files: Vec<_> = std::fs::read_dir(root.join("lab/raw")).unwrap().collect();
        assert_eq!(files.len(), 1, "no temporary files remain");
    }

    #[test]
    fn prefixed_objects_get_their_prefix_first_and_appear_only_when_finished() {
        use pollster::block_on;
        let root = temp_root("prefixed");
        let store = FsStorage::new(&root);
        let object = Location::parse("dest", "lab-tmp").unwrap().object("7");
        let mut writer =
            block_on(store.start_put_with_prefix(&object, super::super::BINARY, 4)).unwrap();
        block_on(writer.append(b"tiles")).unwrap();
        block_on(writer.append(b"!")).unwrap();
        assert!(
            !root.join("lab-tmp/7").exists(),
            "not visible before finish"
        );
        let finished = block_on(writer.finish_with_prefix(b"HEAD")).unwrap();
        assert_eq!(finished.bytes, 10);
        assert!(finished.notes.is_empty());
        assert_eq!(block_on(store.get(&object)).unwrap(), b"HEADtiles!");

        // A prefix of another length is refused and leaves the previous version.
        let mut writer =
            block_on(store.start_put_with_prefix(&object, super::super::BINARY, 4)).unwrap();
        block_on(writer.append(b"other")).unwrap();
        let e = block_on(writer.finish_with_prefix(b"LONGER")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(
            e.message(),
            "7 in bucket lab-tmp: the prefix is 6 bytes, but the put announced 4"
        );
        assert_eq!(block_on(store.get(&object)).unwrap(), b"HEADtiles!");
        let files: Vec<_> = std::fs::read_dir(root.join("lab-tmp")).unwrap().collect();
        assert_eq!(files.len(), 1, "no temporary files remain");
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
