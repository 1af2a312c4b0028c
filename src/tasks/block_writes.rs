//! Writing what an ngshard task makes: its shard files, whole or in parts as the pyramid
//! completes them (precomputed shards with their index first, OME-Zarr ones with it last), and
//! the block's manifest after them (docs/design.md §4). [`super::ng_shard`] builds the block and
//! hands each slab's output here.

use std::collections::BTreeMap;
use std::time::Instant;

use super::Written;
use crate::block::manifest::{BlockManifest, ListedObject};
use crate::block::pyramid::BlockPyramid;
use crate::block::shards::{CompletedShard, ShardPart, SplicedShard, ZarrPart};
use crate::block::zarr::zarr_shard;
use crate::layout;
use crate::precomputed::codec::Encoding;
use crate::precomputed::info::Scale;
use crate::request::NgShardRequest;
use crate::storage::location::ObjectPath;
use crate::storage::{
    self, FinishedObject, ObjectWriter, PrefixedObjectWriter, SentObject, Storage, StreamingStorage,
};
use crate::zarr::metadata::ZarrScale;
use crate::{Error, Result};

/// Shards whose chunks may hold this many voxels or more are written in parts as the pyramid
/// makes them ([`BlockPyramid::stream_large_shards`]), smaller ones whole. That is scales 0 and 1
/// (512³ voxels each; four scale-0 shards fill together): held whole, their raw files cost a
/// dense block with `writeRaw` about 600 MiB more, and their JPEG files about 100 MiB. Scale 2 is
/// 16 MiB of voxels at most (for flat voxels, whose scale 1 keeps z, scale 1 is two shards of
/// 512³ and scale 2 four of 256³), and on GCS a file in parts costs a resumable upload and a
/// compose rather than one request.
pub const STREAM_SHARDS_FROM: usize = 32 << 20;

/// What a block writes: the scales the engine builds, and the volumes their shards go to.
pub(super) struct Volumes {
    /// The scales, as the precomputed info describes them (the engine's geometry either way).
    pub(super) scales: Vec<Scale>,
    /// The encodings whose precomputed shards are written: none for `format` ome-zarr.
    pub(super) precomputed: &'static [Encoding],
    /// The OME-Zarr arrays, one per scale: none for `format` precomputed.
    pub(super) zarr: Vec<ZarrScale>,
}

impl Volumes {
    /// Streams the pyramid's large shards ([`STREAM_SHARDS_FROM`]): the precomputed ones in
    /// parts in file order, and their OME-Zarr twins chunk by chunk, keeping no raw chunks of
    /// them when the raw volume is not written. Smaller Zarr shards are made of whole raw shards
    /// ([`zarr_shard`]).
    pub(super) fn stream_large_shards(&self, pyramid: &mut BlockPyramid) -> Result<()> {
        if !self.zarr.is_empty() {
            let drop_raw = !self.precomputed.contains(&Encoding::Raw);
            pyramid.stream_zarr_shards(&self.zarr, STREAM_SHARDS_FROM, drop_raw)?;
        }
        pyramid.stream_large_shards(STREAM_SHARDS_FROM)
    }
}

/// What a slab completed: whole shards, parts of streamed ones, parts of streamed Zarr shards.
type Completed = (Vec<CompletedShard>, Vec<ShardPart>, Vec<ZarrPart>);

/// Writes what a slab completed: whole shards, then parts of streamed ones.
pub(super) async fn write_completed<'s, S: StreamingStorage>(
    storage: &'s S,
    request: &NgShardRequest,
    out: &mut Output<'_>,
    open: &mut OpenShards<'s, S>,
    (completed, parts, zarr_parts): Completed,
) -> Result<()> {
    write_shards(storage, request, out, completed).await?;
    open.write_parts(storage, request, out, parts).await?;
    open.write_zarr_parts(storage, request, out, zarr_parts)
        .await
}

/// Shard files being written in parts, by object name: precomputed ones (index first) and
/// OME-Zarr ones (index last).
pub(super) struct OpenShards<'s, S: StreamingStorage + 's> {
    writers: BTreeMap<String, S::PrefixedWriter<'s>>,
    zarr_writers: BTreeMap<String, S::Writer<'s>>,
}

impl<S: StreamingStorage> Default for OpenShards<'_, S> {
    fn default() -> Self {
        Self {
            writers: BTreeMap::new(),
            zarr_writers: BTreeMap::new(),
        }
    }
}

impl<'s, S: StreamingStorage> OpenShards<'s, S> {
    /// Writes `parts` in order: a shard's first part starts its object, its last one (with the
    /// shard index) makes it visible, whole.
    ///
    /// A finished shard completes while the next part goes out: on GCS completing is a compose
    /// and a cleanup, two round trips with no bytes to send, which would otherwise stand between
    /// one shard's last part and the next shard's (a half's four scale-0 shards all finish at its
    /// last slab). Only one shard's bytes are in flight at a time, as before.
    async fn write_parts(
        &mut self,
        storage: &'s S,
        request: &NgShardRequest,
        out: &mut Output<'_>,
        parts: Vec<ShardPart>,
    ) -> Result<()> {
        let mut completing = None;
        for part in parts {
            let started = Instant::now();
            let name = layout::shard_name(part.encoding, &part.scale_key, &part.file_name);
            let object = request.dest.object(&name);
            let writer = self.writers.remove(&name);
            let ShardPart {
                index_len,
                pieces,
                index,
                ..
            } = part;
            let object_ref = &object;
            // Each piece is dropped once appended, as the part goes out.
            let send = async move {
                let mut writer = match writer {
                    Some(writer) => writer,
                    None => {
                        storage
                            .start_put_with_prefix(object_ref, storage::BINARY, index_len)
                            .await?
                    }
                };
                for piece in pieces {
                    writer.append(&piece).await?;
                }
                match index {
                    None => Ok(SentOrOpen::Open(writer)),
                    Some(index) => Ok(SentOrOpen::Sent(writer.send_with_prefix(&index).await?)),
                }
            };
            let (completed, sent) = futures::join!(complete_shard(completing.take()), send);
            let completed = match completed {
                Ok(completed) => completed,
                Err(error) => {
                    // The task fails, but a shard that went out whole is completed all the same
                    // (its content is the same on a rerun): no temporaries are left behind.
                    if let Ok(SentOrOpen::Sent(sent)) = sent {
                        let _ = sent.complete().await;
                    }
                    return Err(error);
                }
            };
            if let Some((name, object, finished)) = completed {
                out.record_shard(name, &object, finished);
            }
            match sent? {
                SentOrOpen::Open(writer) => {
                    self.writers.insert(name, writer);
                }
                SentOrOpen::Sent(sent) => completing = Some((name, object, sent)),
            }
            out.written.stages.write += started.elapsed();
        }
        let started = Instant::now();
        if let Some((name, object, finished)) = complete_shard(completing).await? {
            out.record_shard(name, &object, finished);
        }
        out.written.stages.write += started.elapsed();
        Ok(())
    }

    /// Writes `parts` of OME-Zarr shards in order: a shard's first part starts its object, its
    /// last one (ending with the index) makes it visible, whole.
    async fn write_zarr_parts(
        &mut self,
        storage: &'s S,
        request: &NgShardRequest,
        out: &mut Output<'_>,
        parts: Vec<ZarrPart>,
    ) -> Result<()> {
        for part in parts {
            let started = Instant::now();
            let object = request.dest.object(&part.name);
            let mut writer = match self.zarr_writers.remove(&part.name) {
                Some(writer) => writer,
                None => storage.start_put(&object, storage::BINARY).await?,
            };
            writer.append(&part.bytes).await?;
            if part.last {
                let bytes = writer.finish().await?;
                out.written.record(&object, bytes);
                out.listed.push(ListedObject {
                    name: part.name,
                    bytes,
                });
            } else {
                self.zarr_writers.insert(part.name, writer);
            }
            out.written.stages.write += started.elapsed();
        }
        Ok(())
    }

    /// Fails (an emwrite bug) if a shard was started and never finished: dropping its writer
    /// leaves the object as it was, so nothing half-written shows, but the shard is missing.
    pub(super) fn check_all_finished(&self) -> Result<()> {
        match self.writers.keys().chain(self.zarr_writers.keys()).next() {
            None => Ok(()),
            Some(object) => Err(Error::internal(format_args!(
                "{object}: a shard written in parts was never finished"
            ))),
        }
    }
}

/// A shard writer after a part: still open, or with all of its shard sent.
enum SentOrOpen<W: PrefixedObjectWriter> {
    Open(W),
    Sent(W::Sent),
}

/// Completes the shard `sent` (its name, object and what was sent), if any: makes it visible,
/// whole.
async fn complete_shard<C: SentObject>(
    sent: Option<(String, ObjectPath, C)>,
) -> Result<Option<(String, ObjectPath, FinishedObject)>> {
    let Some((name, object, sent)) = sent else {
        return Ok(None);
    };
    let finished = sent.complete().await?;
    Ok(Some((name, object, finished)))
}

/// Where a block's writes are recorded: the task's report, and the list for its manifest; and
/// which volumes its shards go to.
pub(super) struct Output<'a> {
    pub(super) written: &'a mut Written,
    pub(super) listed: &'a mut Vec<ListedObject>,
    pub(super) volumes: &'a Volumes,
}

impl Output<'_> {
    /// Records the shard file `name`, finished as `object`, in the report and the manifest's list.
    fn record_shard(&mut self, name: String, object: &ObjectPath, finished: FinishedObject) {
        self.written.record(object, finished.bytes);
        self.written.notes.extend(finished.notes);
        self.listed.push(ListedObject {
            name,
            bytes: finished.bytes,
        });
    }

    /// Puts the whole `files` (name and bytes) below the request's destination side by side,
    /// recorded in the report and listed for the manifest in their order.
    async fn put_side_by_side(
        &mut self,
        storage: &impl Storage,
        request: &NgShardRequest,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        let started = Instant::now();
        let objects: Vec<_> = files
            .iter()
            .map(|(name, _)| request.dest.object(name))
            .collect();
        futures::future::try_join_all(
            files
                .iter()
                .zip(&objects)
                .map(|((_, bytes), object)| storage.put(object, bytes, storage::BINARY)),
        )
        .await?;
        self.written.stages.write += started.elapsed();
        for ((name, bytes), object) in files.into_iter().zip(&objects) {
            self.written.record(object, bytes.len() as u64);
            self.listed.push(ListedObject {
                name,
                bytes: bytes.len() as u64,
            });
        }
        Ok(())
    }

    /// Puts the whole file `bytes` as `name` below the request's destination, recorded in the
    /// report and listed for the manifest.
    async fn put(
        &mut self,
        storage: &impl Storage,
        request: &NgShardRequest,
        name: String,
        bytes: &[u8],
    ) -> Result<()> {
        let object = request.dest.object(&name);
        self.written
            .put(storage, &object, bytes, storage::BINARY)
            .await?;
        self.listed.push(ListedObject {
            name,
            bytes: bytes.len() as u64,
        });
        Ok(())
    }
}

/// Writes whole shard files, assembling each from its encoder. Small files go side by side, up to
/// [`SHARDS_PUT_TOGETHER_BYTES`] at once (a block's scales 2–4 are three files of a few MiB
/// together, which on GCS is one round trip instead of three); a larger one is assembled, written
/// and dropped alone, as raw files of 16–128 MiB must be.
pub(super) async fn write_shards(
    storage: &impl Storage,
    request: &NgShardRequest,
    out: &mut Output<'_>,
    shards: Vec<CompletedShard>,
) -> Result<()> {
    let mut together: Vec<(String, Vec<u8>)> = Vec::new();
    for shard in shards {
        if shard.encoding == Encoding::Raw && !out.volumes.zarr.is_empty() {
            write_zarr_shard(storage, request, out, &shard).await?;
        }
        if !out.volumes.precomputed.contains(&shard.encoding) {
            continue;
        }
        let name = layout::shard_name(shard.encoding, &shard.scale_key, &shard.file_name);
        let started = Instant::now();
        let bytes = shard.into_bytes()?;
        out.written.stages.encode += started.elapsed();
        let held: usize = together.iter().map(|(_, bytes)| bytes.len()).sum();
        if held + bytes.len() > SHARDS_PUT_TOGETHER_BYTES {
            out.put_side_by_side(storage, request, std::mem::take(&mut together))
                .await?;
        }
        let large = bytes.len() >= SHARDS_PUT_TOGETHER_BYTES;
        together.push((name, bytes));
        if large {
            out.put_side_by_side(storage, request, std::mem::take(&mut together))
                .await?;
        }
    }
    out.put_side_by_side(storage, request, together).await
}

/// Writes a shard the merge splices from the halves' hand-offs, in parts of a resumable part's
/// worth as they are copied out, so that the merge never holds the whole file (a raw scale-1
/// shard is 128 MiB).
pub(super) async fn write_spliced<S: StreamingStorage>(
    storage: &S,
    request: &NgShardRequest,
    out: &mut Output<'_>,
    mut shard: SplicedShard<'_>,
) -> Result<()> {
    let mut open = OpenShards::default();
    loop {
        let started = Instant::now();
        let part = shard.next_part(storage::gcs::UPLOAD_PART_BYTES)?;
        out.written.stages.encode += started.elapsed();
        let Some(part) = part else {
            break;
        };
        open.write_parts(storage, request, out, vec![part]).await?;
    }
    open.check_all_finished()
}

/// The most bytes of whole shard files [`write_shards`] holds and puts at once: a resumable
/// part's worth.
const SHARDS_PUT_TOGETHER_BYTES: usize = storage::gcs::UPLOAD_PART_BYTES;

/// Writes the OME-Zarr shard of the raw `shard`'s chunks, if it has any.
async fn write_zarr_shard(
    storage: &impl Storage,
    request: &NgShardRequest,
    out: &mut Output<'_>,
    shard: &CompletedShard,
) -> Result<()> {
    let volumes = out.volumes;
    let k = volumes
        .scales
        .iter()
        .position(|scale| scale.key() == shard.scale_key)
        .filter(|&k| k < volumes.zarr.len())
        .ok_or_else(|| {
            Error::internal(format_args!(
                "ngshard: no OME-Zarr array of scale {}",
                shard.scale_key
            ))
        })?;
    let started = Instant::now();
    let converted = zarr_shard(shard, &volumes.scales[k], &volumes.zarr[k])?;
    out.written.stages.encode += started.elapsed();
    if let Some((name, bytes)) = converted {
        out.put(storage, request, name, &bytes).await?;
    }
    Ok(())
}

/// Writes the block's manifest listing `listed`: the block's last put, made only once every
/// shard it lists is whole.
pub(super) async fn write_manifest(
    storage: &impl Storage,
    request: &NgShardRequest,
    written: &mut Written,
    listed: Vec<ListedObject>,
) -> Result<()> {
    let manifest = BlockManifest::new(request, listed).to_json()?;
    let object = layout::block_manifest_object(&request.dest, request.start);
    written
        .put(storage, &object, &manifest, storage::JSON)
        .await
}
