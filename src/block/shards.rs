//! A block's shards at one scale: each shard's encoded chunks, collected until its last one.
//!
//! Spec: <https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/sharded.md>
//! (docs/design.md §4 "ngshard": write a shard as soon as its last chunk is encoded). The
//! pyramid encodes a block's chunks layer by layer; a shard is complete once every chunk of the
//! block it holds has been encoded or found all zero, and is then handed out as a
//! [`CompletedShard`] with one [`ShardEncoder`] per encoding. Large shards can instead go out
//! in parts as their chunks come ([`BlockShards::stream_from`], [`ShardPart`]), and so can the
//! OME-Zarr shard of the same chunks ([`BlockShards::stream_zarr`], [`ZarrPart`]).

use std::collections::BTreeMap;

use crate::layout;
use crate::precomputed::codec::{self, Encoding};
use crate::precomputed::info::Scale;
use crate::precomputed::shard::{ShardEncoder, ShardStream, shard_chunk_ranges};
use crate::zarr::metadata::ZarrScale;
use crate::zarr::shard::ShardBuilder;
use crate::{Error, Result};

/// A complete shard: write [`CompletedShard::into_bytes`] to `<scale_key>/<file_name>` in the
/// volume of `encoding` (for example `neuroglancer/jpeg/8.0x8.0x8.0/000000.shard`; see
/// [`crate::layout::shard_object`]).
#[derive(Clone, Debug)]
pub struct CompletedShard {
    /// The encoding of the shard's chunks, which picks the volume it belongs to.
    pub encoding: Encoding,
    /// The key (directory) of the shard's scale, e.g. `"8.0x8.0x8.0"`.
    pub scale_key: String,
    /// The shard's file name, e.g. `"000000.shard"`.
    pub file_name: String,
    /// Whether the shard also holds chunks of the block's other half, which another task
    /// encodes: then it holds only this half's chunks and is handed to the merge, not written
    /// ([`crate::layout::BlockHalf`]). Always false when a task builds the whole block.
    pub partial: bool,
    /// The shard's chunks, assembled into the file only by [`CompletedShard::into_bytes`].
    encoder: ShardEncoder,
}

impl CompletedShard {
    /// The whole shard file. Assembling it copies the chunks into one buffer, so the caller
    /// assembles and writes one shard at a time: with `writeRaw`, four 128 MiB raw shards
    /// complete together, and holding all their files at once would double their memory.
    pub fn into_bytes(self) -> Result<Vec<u8>> {
        self.encoder.finish()
    }

    /// The shard's chunks, `(chunk id, encoded bytes)`, before they are assembled into the
    /// file: what another format's shard of the same chunks is made of ([`crate::block::zarr`]).
    pub fn chunks(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.encoder.chunks()
    }

    /// The whole shard `file_name` of `scale` in `encoding`, from the files of its parts (each a
    /// shard file holding some of its chunks, as [`CompletedShard::into_bytes`] of a partial
    /// shard makes them): the same file the chunks would have made had one task encoded them
    /// all, since a shard file depends only on its set of chunks.
    ///
    /// Fails if a part is not a shard file of that name, or if two parts hold the same chunk.
    pub(crate) fn from_parts<'a>(
        scale: &Scale,
        encoding: Encoding,
        file_name: &str,
        parts: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self> {
        let context = || shard_context(scale, encoding, file_name);
        let (shard, chunks) = chunks_of_parts(scale, encoding, file_name, parts)?;
        let mut encoder = ShardEncoder::new(*scale.sharding(), scale.chunk_order(), shard);
        for (id, bytes) in chunks {
            // Fails if a chunk belongs to another shard.
            encoder
                .add_chunk(id, bytes)
                .map_err(|e| e.context(context()))?;
        }
        let shard = CompletedShard {
            encoding,
            scale_key: scale.key().to_owned(),
            file_name: file_name.to_owned(),
            partial: false,
            encoder,
        };
        Ok(shard)
    }
}

/// Names shard `file_name` of `scale` in `encoding` in errors.
fn shard_context(scale: &Scale, encoding: Encoding, file_name: &str) -> String {
    format!("{} shard {}/{file_name}", encoding.as_str(), scale.key())
}

/// Chunks of a shard, `(id, encoded bytes)`, each borrowed from the partial file that holds it.
type ChunksInParts<'p> = Vec<(u64, &'p [u8])>;

/// The chunks of shard `file_name` of `scale` in `encoding` held by the shard files `parts`,
/// each borrowed from its part, and the shard's number (that of the first chunk). What
/// [`CompletedShard::from_parts`] and [`SplicedShard::from_parts`] are made of.
///
/// Fails if a part is not a shard file, holds no chunk at all, or holds chunks of another file
/// than `file_name`. (A chunk of another shard among the rest, or one given twice, is refused by
/// the encoder or the stream the chunks go to.)
fn chunks_of_parts<'p>(
    scale: &Scale,
    encoding: Encoding,
    file_name: &str,
    parts: impl IntoIterator<Item = &'p [u8]>,
) -> Result<(u64, ChunksInParts<'p>)> {
    let spec = scale.sharding();
    let context = || shard_context(scale, encoding, file_name);
    let mut chunks = Vec::new();
    for part in parts {
        let ranges = shard_chunk_ranges(spec, part).map_err(|e| e.context(context()))?;
        chunks.extend(ranges.into_iter().map(|(id, range)| (id, &part[range])));
    }
    let Some(&(first, _)) = chunks.first() else {
        return Err(Error::internal("no chunk in any part").context(context()));
    };
    let (shard, _) = spec.shard_and_minishard(first);
    if spec.shard_file_name(shard) != file_name {
        return Err(Error::internal(format_args!(
            "the parts hold chunks of shard {}",
            spec.shard_file_name(shard)
        ))
        .context(context()));
    }
    Ok((shard, chunks))
}

/// A shard file made of the chunks of files of the same shard that each hold some of them (a
/// split block's partial shards, [`crate::block::merge`]), handed out in [`ShardPart`]s as it is
/// written: each chunk is copied once, from its part into the part that goes out, so the merge
/// never holds the whole file (a raw scale-1 shard is 128 MiB) as [`CompletedShard::from_parts`]
/// would. The bytes are those of [`CompletedShard::from_parts`] of the same parts.
#[derive(Debug)]
pub struct SplicedShard<'p> {
    encoding: Encoding,
    scale_key: String,
    file_name: String,
    /// The whole file's chunks, in its order, each in the part it comes from.
    chunks: std::vec::IntoIter<(u64, &'p [u8])>,
    /// The file written so far; `None` once its last part went out.
    stream: Option<ShardStream>,
}

impl<'p> SplicedShard<'p> {
    /// The shard `file_name` of `scale` in `encoding`, from the files of its `parts`.
    ///
    /// Fails if a part is not a shard file of that name, or if two parts hold the same chunk.
    pub(crate) fn from_parts(
        scale: &Scale,
        encoding: Encoding,
        file_name: &str,
        parts: impl IntoIterator<Item = &'p [u8]>,
    ) -> Result<Self> {
        let order = scale.chunk_order();
        let (shard, mut chunks) = chunks_of_parts(scale, encoding, file_name, parts)?;
        chunks.sort_unstable_by_key(|&(id, _)| order.key(id));
        // Fails if a chunk belongs to another shard or comes twice.
        let ids = chunks.iter().map(|&(id, _)| id);
        let stream = ShardStream::new(*scale.sharding(), order, shard, ids)
            .map_err(|e| e.context(shard_context(scale, encoding, file_name)))?;
        Ok(Self {
            encoding,
            scale_key: scale.key().to_owned(),
            file_name: file_name.to_owned(),
            chunks: chunks.into_iter(),
            stream: Some(stream),
        })
    }

    /// The file's next part: its next chunks, `part_bytes` of them or a chunk more, and with the
    /// last chunk the file's end and its index. `None` once the last part went out.
    pub fn next_part(&mut self, part_bytes: usize) -> Result<Option<ShardPart>> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        let (mut pieces, mut bytes) = (Vec::new(), 0);
        while bytes < part_bytes {
            let Some((id, chunk)) = self.chunks.next() else {
                break;
            };
            stream.add_chunk_with(id, |out| {
                out.extend_from_slice(chunk);
                Ok(())
            })?;
            // Chunks come in file order: each goes out at once.
            for piece in stream.take_ready() {
                bytes += piece.len();
                pieces.push(piece);
            }
        }
        let index_len = stream.index_len()?;
        let index = if stream.is_complete() {
            let end = self.stream.take().map(ShardStream::finish).transpose()?;
            end.map(|end| {
                pieces.push(end.tail);
                end.index
            })
        } else {
            None
        };
        Ok(Some(ShardPart {
            encoding: self.encoding,
            scale_key: self.scale_key.clone(),
            file_name: self.file_name.clone(),
            index_len,
            pieces,
            index,
        }))
    }
}

/// The next bytes of a shard file written in parts ([`BlockShards::stream_from`]): parts
/// of one file come in order, the first opens it, the one with [`ShardPart::index`] completes
/// it. A shard whose chunks are all zero has no part at all.
#[derive(Debug)]
pub struct ShardPart {
    /// The encoding of the shard's chunks, which picks the volume it belongs to.
    pub encoding: Encoding,
    /// The key (directory) of the shard's scale.
    pub scale_key: String,
    /// The shard's file name.
    pub file_name: String,
    /// Length of the file's first bytes, the shard index, which come with the last part.
    pub index_len: u64,
    /// The file's next bytes, after those of the parts before: these pieces back to back.
    pub pieces: Vec<Vec<u8>>,
    /// With the file's last part: its first `index_len` bytes. The file is then complete.
    pub index: Option<Vec<u8>>,
}

/// The next bytes of an OME-Zarr shard file written as its chunks come
/// ([`BlockShards::stream_zarr`]): a Zarr shard's index comes last in its file, so its chunks go
/// out as they are encoded, and the part with `last` (which ends with the index) completes it. A
/// shard whose chunks are all zero has no part at all.
#[derive(Debug)]
pub struct ZarrPart {
    /// The shard's name below the destination ([`layout::zarr_shard_name`]).
    pub name: String,
    /// The file's next bytes, after those of the parts before.
    pub bytes: Vec<u8>,
    /// Whether these bytes end the file.
    pub last: bool,
}

/// What every chunk is encoded with.
pub(crate) struct ChunkEncoding<'a> {
    /// Chunk edge in voxels: a full chunk is `chunk_edge³` voxels.
    pub chunk_edge: usize,
    /// The encodings each chunk is written in, one shard file each.
    pub encodings: &'a [Encoding],
    /// JPEG quality, 1–100.
    pub jpeg_quality: u8,
}

/// The shards of one scale that a block touches, each until its last chunk is done.
#[derive(Debug)]
pub(crate) struct BlockShards {
    scale: Scale,
    /// Shards with chunks still to come, by shard number.
    pending: BTreeMap<u64, PendingShard>,
}

/// A shard that is not complete yet.
#[derive(Debug)]
struct PendingShard {
    /// Chunks of this block in the shard not yet encoded (or found all zero).
    remaining: usize,
    /// Whether the shard also holds chunks another task encodes ([`CompletedShard::partial`]).
    partial: bool,
    /// The ids of this block's chunks in the shard, all of them.
    ids: Vec<u64>,
    /// One per encoding, in the order of [`ChunkEncoding::encodings`].
    sinks: Vec<ShardSink>,
    /// The shard's OME-Zarr twin, when it is streamed ([`BlockShards::stream_zarr`]).
    zarr: Option<ZarrStream>,
}

/// An OME-Zarr shard written as its raw chunks come: each is gzip-encoded into the Zarr shard
/// of the same chunks ([`crate::block::zarr`]) and handed out at once.
///
/// The pyramid encodes a shard's chunks layer by layer in z, each layer row by row in y, x
/// fastest: the C order of the Zarr shard's index. So the streamed file is the file
/// [`crate::block::zarr::zarr_shard`] makes of the same chunks held whole (it sorts them into
/// that order); a chunk out of that order is refused rather than written into another file.
#[derive(Debug)]
struct ZarrStream {
    /// The shard's name below the destination.
    name: String,
    /// The shard's array.
    zarr: ZarrScale,
    /// Where the raw encoding is among [`ChunkEncoding::encodings`].
    raw: usize,
    builder: ShardBuilder,
    /// The C-order place in the shard of the last chunk added.
    last: Option<[u64; 3]>,
}

impl ZarrStream {
    /// Adds chunk `id` of `scale`, its raw voxels gzip-encoded, at its place in the shard.
    fn add(&mut self, scale: &Scale, id: u64, raw: &[u8]) -> Result<()> {
        let (_, place) = layout::zarr_chunk_place(scale, &self.zarr, id);
        let zyx = |[x, y, z]: [u64; 3]| [z, y, x];
        if self.last.is_some_and(|last| zyx(last) >= zyx(place)) {
            return Err(Error::internal(format_args!(
                "zarr shard {}: chunk {id} comes after {:?}, out of the index's order",
                self.name, self.last
            )));
        }
        self.last = Some(place);
        self.builder
            .add_chunk(place, &crate::zarr::codec::encode_chunk(raw)?)
    }
}

/// Where one encoding's chunks of a shard go.
#[derive(Debug)]
enum ShardSink {
    /// Held until the shard is complete, then handed out whole.
    Held(ShardEncoder),
    /// Handed out in parts as soon as they can go out.
    Streamed(ShardStream),
    /// Not kept: raw chunks that only the shard's streamed OME-Zarr twin needs.
    Dropped,
}

impl ShardSink {
    /// Whether no chunk went into it yet.
    fn is_empty(&self) -> bool {
        match self {
            ShardSink::Held(encoder) => encoder.is_empty(),
            ShardSink::Streamed(_) | ShardSink::Dropped => false,
        }
    }
}

impl BlockShards {
    /// Every shard of `scale` holding one of `chunk_ids` (the chunks of the block, or of the
    /// block's half, that this task encodes at this scale, each once), pending, with one encoder
    /// per encoding. A shard that also holds one of `others_ids` (the chunks of the other half,
    /// which another task encodes) completes as [`CompletedShard::partial`].
    pub(crate) fn new(
        scale: &Scale,
        chunk_ids: impl IntoIterator<Item = u64>,
        others_ids: impl IntoIterator<Item = u64>,
        encoding_count: usize,
    ) -> Self {
        let (spec, order) = (*scale.sharding(), scale.chunk_order());
        let mut ids_by_shard: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for id in chunk_ids {
            let (shard, _) = spec.shard_and_minishard(id);
            ids_by_shard.entry(shard).or_default().push(id);
        }
        let shared: Vec<u64> = others_ids
            .into_iter()
            .map(|id| spec.shard_and_minishard(id).0)
            .collect();
        let pending = ids_by_shard
            .into_iter()
            .map(|(shard, ids)| {
                let pending = PendingShard {
                    remaining: ids.len(),
                    partial: shared.contains(&shard),
                    ids,
                    sinks: (0..encoding_count)
                        .map(|_| ShardSink::Held(ShardEncoder::new(spec, order, shard)))
                        .collect(),
                    zarr: None,
                };
                (shard, pending)
            })
            .collect();
        Self {
            scale: scale.clone(),
            pending,
        }
    }

    /// From now on, writes in parts ([`ShardPart`]) the shards whose chunks may hold
    /// `min_bytes` voxels (`chunk_edge`³ a chunk) or more, except partial ones, which go to the
    /// merge. Call it before the first chunk.
    pub(crate) fn stream_from(&mut self, min_bytes: usize, chunk_edge: usize) -> Result<()> {
        let spec = *self.scale.sharding();
        for (&shard, pending) in &mut self.pending {
            let voxels = pending.ids.len().saturating_mul(chunk_edge.pow(3));
            if pending.partial || voxels < min_bytes {
                continue;
            }
            for sink in &mut pending.sinks {
                match sink {
                    ShardSink::Held(encoder) if encoder.is_empty() => {
                        *sink = ShardSink::Streamed(ShardStream::new(
                            spec,
                            self.scale.chunk_order(),
                            shard,
                            pending.ids.iter().copied(),
                        )?);
                    }
                    ShardSink::Held(_) => {
                        return Err(Error::internal(
                            "block shards: streaming chosen after the first chunk",
                        ));
                    }
                    ShardSink::Streamed(_) | ShardSink::Dropped => {}
                }
            }
        }
        Ok(())
    }

    /// From now on, writes the OME-Zarr shard of each shard whose chunks may hold `min_bytes`
    /// voxels or more as its chunks come ([`ZarrPart`]), in the array of `zarr`, except partial
    /// ones, which go to the merge. The chunks are taken from the raw encoding, the one at
    /// `raw` among the encodings; with `drop_raw` (the precomputed raw volume is not written)
    /// those shards keep no raw chunks at all. Call it before the first chunk, and before
    /// [`BlockShards::stream_from`].
    pub(crate) fn stream_zarr(
        &mut self,
        zarr: &ZarrScale,
        raw: usize,
        min_bytes: usize,
        chunk_edge: usize,
        drop_raw: bool,
    ) -> Result<()> {
        for pending in self.pending.values_mut() {
            let voxels = pending.ids.len().saturating_mul(chunk_edge.pow(3));
            let Some(&first) = pending.ids.first() else {
                continue;
            };
            if pending.partial || voxels < min_bytes {
                continue;
            }
            match pending.sinks.get_mut(raw) {
                Some(sink @ ShardSink::Held(_)) if sink.is_empty() => {
                    if drop_raw {
                        *sink = ShardSink::Dropped;
                    }
                }
                _ => {
                    return Err(Error::internal(
                        "block shards: zarr streaming chosen after the first chunk or after \
                         stream_from, or without a raw encoding",
                    ));
                }
            }
            let (place, _) = layout::zarr_chunk_place(&self.scale, zarr, first);
            pending.zarr = Some(ZarrStream {
                name: layout::zarr_shard_name(zarr, place),
                zarr: zarr.clone(),
                raw,
                builder: ShardBuilder::new(zarr.chunks_per_shard())?,
                last: None,
            });
        }
        Ok(())
    }

    /// Shards still waiting for chunks.
    pub(crate) fn incomplete(&self) -> usize {
        self.pending.len()
    }

    /// Encodes chunk `id` of `extent` voxels in every encoding and adds it to its shard.
    pub(crate) fn add_chunk(
        &mut self,
        id: u64,
        voxels: &[u8],
        extent: [usize; 3],
        chunk: &ChunkEncoding<'_>,
    ) -> Result<()> {
        self.add_chunk_with(id, chunk, |encoding, _, out| {
            codec::encode_chunk_into(encoding, voxels, extent, chunk.jpeg_quality, out)
        })
    }

    /// Adds chunk `id`, already encoded: `encoded[i]` in `chunk.encodings[i]`.
    pub(crate) fn add_encoded_chunk(
        &mut self,
        id: u64,
        chunk: &ChunkEncoding<'_>,
        encoded: &[Vec<u8>],
    ) -> Result<()> {
        if encoded.len() != chunk.encodings.len() {
            return Err(Error::internal(format_args!(
                "block shards: chunk {id} in {} encodings, expected {}",
                encoded.len(),
                chunk.encodings.len()
            )));
        }
        self.add_chunk_with(id, chunk, |_, i, out| {
            out.extend_from_slice(&encoded[i]);
            Ok(())
        })
    }

    /// Adds chunk `id` to its shard in every encoding, `encode(encoding, i, out)` appending it
    /// in `chunk.encodings[i]` to `out`.
    fn add_chunk_with(
        &mut self,
        id: u64,
        chunk: &ChunkEncoding<'_>,
        mut encode: impl FnMut(Encoding, usize, &mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let context = || format!("scale {} chunk {id}", self.scale.key());
        let (shard, _) = self.scale.sharding().shard_and_minishard(id);
        let Some(pending) = self.pending.get_mut(&shard) else {
            return Err(Error::internal("belongs to no pending shard").context(context()));
        };
        if let Some(zarr) = pending.zarr.as_mut() {
            let mut raw = Vec::with_capacity(chunk.chunk_edge.pow(3));
            encode(Encoding::Raw, zarr.raw, &mut raw)?;
            zarr.add(&self.scale, id, &raw)
                .map_err(|e| e.context(context()))?;
        }
        for (i, (sink, &encoding)) in pending.sinks.iter_mut().zip(chunk.encodings).enumerate() {
            let encode = |out: &mut Vec<u8>| encode(encoding, i, out);
            match sink {
                ShardSink::Dropped => Ok(()),
                ShardSink::Held(encoder) => {
                    if encoding == Encoding::Raw && encoder.is_empty() {
                        // Every chunk still to come in this shard is at most a full chunk of
                        // raw voxels.
                        encoder.reserve_data(pending.remaining * chunk.chunk_edge.pow(3))?;
                    }
                    encoder.add_chunk_with(id, encode)
                }
                ShardSink::Streamed(stream) => stream.add_chunk_with(id, encode),
            }
            .map_err(|e| e.context(context()))?;
        }
        Ok(())
    }

    /// Counts chunk `id` as done: hands out the streamed shards' bytes that can now go out to
    /// `parts`, and if that completes its shard, moves the shard to `completed` (one file per
    /// held encoding, none if every chunk was zero).
    pub(crate) fn chunk_done(
        &mut self,
        id: u64,
        encodings: &[Encoding],
        completed: &mut Vec<CompletedShard>,
        parts: &mut Vec<ShardPart>,
        zarr_parts: &mut Vec<ZarrPart>,
    ) -> Result<()> {
        let spec = *self.scale.sharding();
        let (shard, _) = spec.shard_and_minishard(id);
        let Some(pending) = self.pending.get_mut(&shard) else {
            return Err(Error::internal(format_args!(
                "block pyramid: scale {} chunk {id}: shard {shard} is already complete",
                self.scale.key()
            )));
        };
        pending.remaining -= 1;
        let complete = pending.remaining == 0;
        if let Some(zarr) = pending.zarr.as_mut() {
            let bytes = zarr.builder.take_data();
            if !bytes.is_empty() {
                let name = zarr.name.clone();
                zarr_parts.push(ZarrPart {
                    name,
                    bytes,
                    last: false,
                });
            }
        }
        let part = |encoding: Encoding, index_len, pieces, index| ShardPart {
            encoding,
            scale_key: self.scale.key().to_owned(),
            file_name: spec.shard_file_name(shard),
            index_len,
            pieces,
            index,
        };
        for (sink, &encoding) in pending.sinks.iter_mut().zip(encodings) {
            let ShardSink::Streamed(stream) = sink else {
                continue;
            };
            if !stream.has_chunk(id) {
                // Not added: all zero, left out of the file.
                stream.skip_chunk(id)?;
            }
            if complete {
                // The last part also carries the tail and the index: below.
                continue;
            }
            let pieces = stream.take_ready();
            if !pieces.is_empty() {
                parts.push(part(encoding, stream.index_len()?, pieces, None));
            }
        }
        if !complete {
            return Ok(());
        }
        let Some(pending) = self.pending.remove(&shard) else {
            return Ok(());
        };
        if let Some(zarr) = pending.zarr {
            // Every chunk was zero: no file, as for a held shard.
            if !zarr.builder.is_empty() {
                zarr_parts.push(ZarrPart {
                    name: zarr.name,
                    bytes: zarr.builder.finish(),
                    last: true,
                });
            }
        }
        for (sink, &encoding) in pending.sinks.into_iter().zip(encodings) {
            match sink {
                ShardSink::Dropped => {}
                ShardSink::Held(encoder) if encoder.is_empty() => {}
                ShardSink::Held(encoder) => completed.push(CompletedShard {
                    encoding,
                    scale_key: self.scale.key().to_owned(),
                    file_name: spec.shard_file_name(shard),
                    partial: pending.partial,
                    encoder,
                }),
                ShardSink::Streamed(mut stream) => {
                    let mut pieces = stream.take_ready();
                    if stream.is_empty() {
                        // Every chunk was zero: no file, as for a held shard.
                        continue;
                    }
                    let index_len = stream.index_len()?;
                    let end = stream.finish()?;
                    pieces.push(end.tail);
                    parts.push(part(encoding, index_len, pieces, Some(end.index)));
                }
            }
        }
        Ok(())
    }
}
