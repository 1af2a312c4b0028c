//! The streaming block pyramid: one 1024³ block of scale-0 voxels in, slab by slab; the block's
//! shards at every scale out, each as soon as its last chunk is encoded.
//!
//! Spec: <https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/volume.md>
//! for chunks and `sharded.md` for shards; docs/design.md §4 "ngshard" for the pyramid itself.
//!
//! Scale 0 is the block's 16³ chunks of 64³ voxels. Scale k (1–4) is the 2×2×2 mean of scale
//! k − 1 over the same block, or the 2×2×1 mean where the scale keeps z
//! ([`crate::layout::ScaleShift`]), so for cubic voxels it holds (1024 >> k)³ voxels of it:
//! (16 >> k)³ chunks, and where z was kept more chunks along z. With emwrite's sharding
//! ([`crate::layout::ScaleShift::sharding`]) that is 8 shards at scale 0 and 1 at each coarser
//! scale for cubic voxels (a stack of shards along z where z was kept), none shared with another
//! block, so a block task writes whole shards that no other task touches. [`BlockPyramid::new`]
//! checks that the scales it is given have this property.
//!
//! The block arrives as 16 slabs of 64 slices, fed one slice at a time: each slice is encoded
//! into the scale-0 chunks it crosses as it comes ([`super::slice_feed`]). A slab gives one
//! layer of scale-0 chunks and, folded by 2×2×2 means, half a slab of scale 1 ([`super::level`]);
//! two scale-1 halves make a scale-1 chunk layer, which folds into half a slab of scale 2, and so
//! on: scale k encodes a chunk layer every 2^z slabs, z its shift along z ([`super::scale`]); a
//! scale that keeps z folds a whole slab of the finer one into a whole slab. The means themselves are
//! [`super::downsample`]'s, and the shards' chunks are collected by [`super::shards`].
//!
//! Two tasks can share a block, one half each ([`BlockPyramid::for_half`], see
//! [`BlockHalf`]): a half is the same pyramid fed 8 slabs, which writes its whole scale-0
//! shards, holds back its chunks of the shards the halves share and hands them
//! ([`super::handoff`]), with its half of the coarsest scale's voxels, to the merge
//! ([`super::merge`]).

use std::time::{Duration, Instant};

use super::handoff::{HalfHandoff, PartialShardFile};
use super::level::Level;
use super::scale::{BLOCK_CHUNKS, BlockGeometry, LayerOutput, ScaleState, scale_layers};
use super::shards::{ChunkEncoding, CompletedShard, ShardPart, ZarrPart};
use super::slice_feed::SliceFeed;
use crate::layout::{self, BlockHalf, SCALE_COUNT};
use crate::precomputed::codec::Encoding;
use crate::precomputed::info::Scale;
use crate::request::wire;
use crate::zarr::metadata::ZarrScale;
use crate::{Error, Result};

/// Chunk edge of emwrite's scales, in voxels.
const CHUNK_EDGE: usize = layout::CHUNK_EDGE as usize;

/// Slabs per block: one per layer of scale-0 chunks.
const SLAB_COUNT: usize = BLOCK_CHUNKS;

/// Turns one block of scale-0 voxels, fed in slabs, into the block's shards at every scale.
///
/// Chunks whose voxels are all zero are left out (readers fill missing chunks with 0), chunks
/// outside a scale's size are not written, edge chunks are clipped to it, and a shard with no
/// chunk left is not written at all.
///
/// # Memory
///
/// The pyramid never holds the block, nor a slab of it: slices come in one at a time
/// ([`BlockPyramid::push_slice`], 1 MiB, borrowed). It owns:
/// - the slice before the current one, until the pair folds into scale 1 (1 MiB);
/// - the current layer's scale-0 chunks encoded so far: a layer's JPEG chunks (~12 MiB on EM
///   data), or, with raw, its voxels (up to 64 MiB);
/// - one partial slab per coarser scale, (1024 >> k)² × 64 bytes for k = 1..4: 16 + 4 + 1 +
///   0.25 MiB, about 21 MiB, plus scratch: a 256 KiB chunk and a 2 KiB row of sums;
/// - the encoded chunks of shards not yet complete, one buffer per shard and encoding. A
///   scale-0 shard (512³ voxels) completes after 8 slabs and the coarser shards after the 16th,
///   so the peak comes with the last slab: 4 scale-0 shards, all of scales 1–4, and the shard
///   file being assembled from its buffer. JPEG chunks are typically a tenth of the voxels, and
///   all-zero chunks cost nothing; but a dense block in raw encoding would hold up to
///   4 · 128 + 128 + 16 + 2 + 0.25 ≈ 660 MiB of chunks plus a 128 MiB file. Hence
///   [`BlockPyramid::stream_large_shards`], which hands large shards out in parts in file
///   order, holding only the chunks that came ahead of their turn: with minishards of one
///   layer ([`crate::precomputed::shard::ChunkOrder`]) none, as each layer goes out once done;
///   with a volume's older shards of one minishard, at most half of each scale-0 and scale-1
///   shard, ≈ 4 · 64 + 64 MiB raw. Where a scale keeps z its block is
///   more chunks deep, in more or larger shards (8×8×40 nm voxels: two 512³ shards at scale 1,
///   four 256³ at scale 2); those complete earlier and stream the same way.
///
/// Shards returned by one push are held by the caller until it drops them: write each and drop
/// it before pushing the next slab.
///
/// ```
/// use emwrite::precomputed::codec::Encoding;
/// use emwrite::layout::volume_info;
/// use emwrite::block::pyramid::BlockPyramid;
/// let info = volume_info([1024, 1024], 0, 1023, [8.0; 3], Encoding::Jpeg)?;
/// let mut pyramid = BlockPyramid::new(info.scales(), [0, 0, 0], &[Encoding::Jpeg], 75)?;
/// let mut shards = Vec::new();
/// for _ in 0..16 {
///     // An empty block: every slab is zero, so nothing is written.
///     shards.extend(pyramid.push_zero_slab()?);
/// }
/// shards.extend(pyramid.finish()?);
/// assert!(shards.is_empty());
/// # Ok::<(), emwrite::Error>(())
/// ```
#[derive(Debug)]
pub struct BlockPyramid {
    block: [u64; 3],
    /// The half of the block this pyramid builds, `None` for the whole block.
    half: Option<BlockHalf>,
    chunk_edge: usize,
    encodings: Vec<Encoding>,
    jpeg_quality: u8,
    scales: Vec<ScaleState>,
    /// `levels[i]` is the partial slab of scale `i + 1`.
    levels: Vec<Level>,
    /// Scratch: a row of vertical 2×2 sums for the downsampler.
    row_sums: Vec<u16>,
    /// Scratch: one chunk's voxels, reused between chunks.
    chunk_voxels: Vec<u8>,
    /// The scale-0 chunks of the slab being fed slice by slice, from its first slice on.
    feed: Option<SliceFeed>,
    /// The slab's last even slice, until its pair comes to be folded into scale 1.
    lower_slice: Vec<u8>,
    slabs_pushed: usize,
    /// Slabs this pyramid takes: the block's 16, or a half's 8.
    slab_count: usize,
    /// A half's complete [`CompletedShard::partial`] shards, held for the hand-off.
    held: Vec<CompletedShard>,
    /// Parts of streamed shards from the last push, until [`BlockPyramid::take_parts`].
    parts: Vec<ShardPart>,
    /// Parts of streamed OME-Zarr shards from the last push, until
    /// [`BlockPyramid::take_zarr_parts`].
    zarr_parts: Vec<ZarrPart>,
    timings: PyramidTimings,
}

/// Where a pyramid's time went, summed over the slabs pushed so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PyramidTimings {
    /// Folding each scale into the next coarser one (the 2×2×2 and 2×2×1 means).
    pub downsample: Duration,
    /// Cutting chunks out of the slabs, skipping all-zero ones, and encoding the rest into
    /// their shards' buffers.
    pub encode: Duration,
}

impl BlockPyramid {
    /// Slices per slab.
    pub const SLAB_DEPTH: usize = CHUNK_EDGE;

    /// Slabs per block.
    pub const SLAB_COUNT: usize = SLAB_COUNT;

    /// Bytes per slab: 1024 × 1024 × 64.
    pub const SLAB_BYTES: usize = (BLOCK_CHUNKS * CHUNK_EDGE).pow(2) * CHUNK_EDGE;

    /// A pyramid for the block at `block` = `[bx, by, bz]` (units of 1024 voxels).
    ///
    /// `scales` are the volume's scales from its info, finest first (at most 5, 64³ chunks,
    /// voxel offset 0, sharded so that no shard reaches outside a block); the same scale list
    /// serves every encoding, and each scale's own `encoding` is ignored in favour of
    /// `encodings`, e.g. `[Jpeg]` or `[Jpeg, Raw]`. `jpeg_quality` (1–100) applies to JPEG
    /// chunks.
    pub fn new(
        scales: &[Scale],
        block: [u64; 3],
        encodings: &[Encoding],
        jpeg_quality: u8,
    ) -> Result<Self> {
        Self::with_chunk_edge(scales, block, None, encodings, jpeg_quality, CHUNK_EDGE)
    }

    /// A pyramid for `half` of the block at `block`, otherwise as [`BlockPyramid::new`]: it
    /// takes the half's 8 slabs (slab `i` of the half is slab `i` or `8 + i` of the block), its
    /// pushes return only shards the half owns whole (all of scale 0's), and
    /// [`BlockPyramid::finish_half`] returns what the merge needs from it.
    pub fn for_half(
        scales: &[Scale],
        block: [u64; 3],
        half: BlockHalf,
        encodings: &[Encoding],
        jpeg_quality: u8,
    ) -> Result<Self> {
        Self::with_chunk_edge(
            scales,
            block,
            Some(half),
            encodings,
            jpeg_quality,
            CHUNK_EDGE,
        )
    }

    /// [`BlockPyramid::new`] or [`BlockPyramid::for_half`] for chunks of `chunk_edge`³ voxels,
    /// blocks of 16 chunks per edge and slabs one chunk deep: the same pyramid at any size, so
    /// tests can run small blocks.
    pub(crate) fn with_chunk_edge(
        scales: &[Scale],
        block: [u64; 3],
        half: Option<BlockHalf>,
        encodings: &[Encoding],
        jpeg_quality: u8,
        chunk_edge: usize,
    ) -> Result<Self> {
        // A block feeds at most SCALE_COUNT scales: past them a chunk would mix several blocks.
        if scales.is_empty() || scales.len() > SCALE_COUNT {
            return Err(Error::internal(format_args!(
                "block pyramid: expected 1 to {SCALE_COUNT} scales, got {}",
                scales.len()
            )));
        }
        let mut unique = encodings.to_vec();
        unique.sort_unstable();
        unique.dedup();
        if encodings.is_empty() || unique.len() != encodings.len() {
            return Err(Error::internal(format_args!(
                "block pyramid: expected distinct encodings, got {encodings:?}"
            )));
        }
        if encodings.contains(&Encoding::Jpeg) && !(1..=100).contains(&jpeg_quality) {
            return Err(Error::bad_field(
                wire::JPEG_QUALITY,
                format_args!("{jpeg_quality} is not in 1..=100"),
            ));
        }
        let shifts = layout::shifts_of_scales(scales)?;
        let scales = scales
            .iter()
            .zip(&shifts)
            .map(|(scale, &shift)| {
                let (layers, others) = scale_layers(shift, half);
                let geometry = BlockGeometry { block, chunk_edge };
                ScaleState::new(scale, shift, geometry, layers, others, encodings.len())
            })
            .collect::<Result<Vec<_>>>()?;
        let block_edge = BLOCK_CHUNKS * chunk_edge;
        // Scale k's slab is the block's x and y shifted by k; z is one chunk deep at every scale.
        let levels = shifts
            .windows(2)
            .map(|pair| {
                let [finer, coarser] = [pair[0], pair[1]];
                Level::new(
                    block_edge >> coarser.0[0],
                    chunk_edge,
                    coarser.halves_z_of(finer),
                )
            })
            .collect();
        Ok(Self {
            block,
            half,
            chunk_edge,
            encodings: encodings.to_vec(),
            jpeg_quality,
            scales,
            levels,
            row_sums: vec![0; block_edge],
            chunk_voxels: Vec::with_capacity(chunk_edge.pow(3)),
            feed: None,
            lower_slice: Vec::new(),
            slabs_pushed: 0,
            slab_count: if half.is_some() {
                SLAB_COUNT / 2
            } else {
                SLAB_COUNT
            },
            held: Vec::new(),
            parts: Vec::new(),
            zarr_parts: Vec::new(),
            timings: PyramidTimings::default(),
        })
    }

    /// From now on, writes each shard whose chunks may hold `min_bytes` or more voxels in parts,
    /// as its chunks come in file order, instead of holding it whole until its last chunk:
    /// after every push, [`BlockPyramid::take_parts`] returns the parts to write. A scale-0
    /// shard is 512³ voxels (128 MiB raw) and its file holds its minishards by z layer, so each
    /// layer of it goes out once computed (docs/design.md §4 "ngmeta", "Minishards of one
    /// layer"; with a volume's older shards of one minishard, the file orders chunks by id and
    /// the pyramid holds up to half of each such shard).
    ///
    /// Call it before the first slab. Shards both halves of a block hold are never streamed:
    /// they go to the merge.
    pub fn stream_large_shards(&mut self, min_bytes: usize) -> Result<()> {
        if self.slabs_pushed > 0 {
            return Err(Error::internal(
                "block pyramid: stream_large_shards after the first slab",
            ));
        }
        for scale in &mut self.scales {
            scale.shards.stream_from(min_bytes, self.chunk_edge)?;
        }
        Ok(())
    }

    /// From now on, writes the OME-Zarr shard of each shard whose chunks may hold `min_bytes` or
    /// more voxels as its chunks are encoded, in the arrays `zarr` (one per scale, finest
    /// first): after every push, [`BlockPyramid::take_zarr_parts`] returns the parts to write. A
    /// Zarr shard's index comes last in its file, so the pyramid holds none of its chunks; with
    /// `drop_raw` (the precomputed raw volume is not written) it keeps no raw chunks of those
    /// shards either. The smaller shards, and those both halves of a block hold, are made from
    /// their whole raw shard ([`crate::block::zarr::zarr_shard`]).
    ///
    /// Call it before the first slab, and before [`BlockPyramid::stream_large_shards`].
    pub fn stream_zarr_shards(
        &mut self,
        zarr: &[ZarrScale],
        min_bytes: usize,
        drop_raw: bool,
    ) -> Result<()> {
        if self.slabs_pushed > 0 {
            return Err(Error::internal(
                "block pyramid: stream_zarr_shards after the first slab",
            ));
        }
        let raw = self
            .encodings
            .iter()
            .position(|&encoding| encoding == Encoding::Raw)
            .ok_or_else(|| Error::internal("block pyramid: OME-Zarr shards without raw chunks"))?;
        for (scale, zarr) in self.scales.iter_mut().zip(zarr) {
            scale
                .shards
                .stream_zarr(zarr, raw, min_bytes, self.chunk_edge, drop_raw)?;
        }
        Ok(())
    }

    /// The parts of streamed shards that the last push made ready, in the order to write them
    /// (see [`BlockPyramid::stream_large_shards`]); take them after every push.
    pub fn take_parts(&mut self) -> Vec<ShardPart> {
        std::mem::take(&mut self.parts)
    }

    /// The parts of streamed OME-Zarr shards that the last push made ready, in the order to
    /// write them (see [`BlockPyramid::stream_zarr_shards`]); take them after every push.
    pub fn take_zarr_parts(&mut self) -> Vec<ZarrPart> {
        std::mem::take(&mut self.zarr_parts)
    }

    /// Where the pyramid's time went so far.
    pub fn timings(&self) -> PyramidTimings {
        self.timings
    }

    /// Feeds the next slab of scale-0 voxels and returns the shards it completed.
    ///
    /// Slab `i` (0..16, in order) holds 1024 × 1024 × 64 voxels, x fastest, then y, then z,
    /// covering x ∈ [1024·bx, +1024), y ∈ [1024·by, +1024) and z ∈ [1024·bz + 64·i, +64). A
    /// half's pyramid takes the half's slabs: 0..8, or 8..16.
    pub fn push_slab(&mut self, slab: &[u8]) -> Result<Vec<CompletedShard>> {
        let expected = (BLOCK_CHUNKS * self.chunk_edge).pow(2) * self.chunk_edge;
        if slab.len() != expected {
            return Err(Error::internal(format_args!(
                "block pyramid: slab {} has {} bytes, expected {expected}",
                self.slabs_pushed,
                slab.len()
            )));
        }
        for slice in slab.chunks_exact(expected / self.chunk_edge) {
            self.push_slice(slice)?;
        }
        self.end_slab(&mut || {})
    }

    /// Feeds the next slice of the current slab: 1024 × 1024 voxels, x fastest, at z =
    /// 1024·bz + 64·i + (the slices fed before it in slab i). After the slab's 64th slice,
    /// [`BlockPyramid::end_slab`].
    ///
    /// Each slice goes at once into the encoders of the scale-0 chunks it crosses (a chunk's
    /// voxels are its slices one after another, and its JPEG their rows) and, paired with the
    /// slice before it, into scale 1: so a caller never needs the 64 MiB slab, only the slice.
    /// A chunk's encoders start at its first slice with a nonzero voxel, so all-zero chunks
    /// cost no encoding.
    pub fn push_slice(&mut self, slice: &[u8]) -> Result<()> {
        let block_edge = BLOCK_CHUNKS * self.chunk_edge;
        if slice.len() != block_edge * block_edge {
            return Err(Error::internal(format_args!(
                "block pyramid: a slice of {} bytes, expected {}",
                slice.len(),
                block_edge * block_edge
            )));
        }
        if self.feed.is_none() {
            self.begin_slab()?;
            let cells = self.scales[0].start_layer(self.chunk_edge)?;
            self.feed = Some(SliceFeed::new(cells));
        }
        let chunk = ChunkEncoding {
            chunk_edge: self.chunk_edge,
            encodings: &self.encodings,
            jpeg_quality: self.jpeg_quality,
        };
        let Some(feed) = self.feed.as_mut() else {
            unreachable!("the feed was just started");
        };
        // This slice's z in the slab.
        let dz = feed.slices();
        let started = Instant::now();
        feed.push(slice, block_edge, &chunk, &mut self.chunk_voxels)?;
        self.timings.encode += started.elapsed();

        if let Some(scale1) = self.levels.first_mut() {
            let started = Instant::now();
            if !scale1.halves_z() {
                scale1.fold_in_slices(slice, slice, &mut self.row_sums);
            } else if dz % 2 == 0 {
                self.lower_slice.clear();
                self.lower_slice.extend_from_slice(slice);
            } else {
                scale1.fold_in_slices(&self.lower_slice, slice, &mut self.row_sums);
            }
            self.timings.downsample += started.elapsed();
        }
        Ok(())
    }

    /// Feeds the next slab as all zero without the caller building it: its chunks are skipped
    /// and the coarser scales fold in zeros with a fill instead of averaging.
    pub fn push_zero_slab(&mut self) -> Result<Vec<CompletedShard>> {
        if self.feed.is_some() {
            return Err(Error::internal(
                "block pyramid: a zero slab in the middle of a slab's slices",
            ));
        }
        self.end_slab(&mut || {})
    }

    /// Checks that all 16 slabs were pushed, and returns any shard not yet returned.
    ///
    /// That is none: the 16th slab completes every shard and [`BlockPyramid::push_slab`] returns
    /// each shard as soon as it is complete. Still call it: it is what turns a short block (a
    /// failed read upstream) into an error rather than missing shards.
    pub fn finish(self) -> Result<Vec<CompletedShard>> {
        if let Some(half) = self.half {
            return Err(Error::internal(format_args!(
                "block pyramid: finish on the {} half's pyramid, which ends with finish_half",
                half.as_str()
            )));
        }
        self.check_complete()?;
        Ok(Vec::new())
    }

    /// Checks that the half's 8 slabs were pushed, and returns what the merge needs: the files
    /// of the half's partial shards (its chunks of the shards both halves hold: scales 1–3 for
    /// cubic voxels) and
    /// its half of the coarsest scale's voxels.
    ///
    /// Assembling the files takes time; [`BlockPyramid::timings`] does not count it.
    pub fn finish_half(self) -> Result<HalfHandoff<'static>> {
        let Some(half) = self.half else {
            return Err(Error::internal(
                "block pyramid: finish_half on a whole block's pyramid",
            ));
        };
        self.check_complete()?;
        // The one scale whose block is a single chunk straddles the halves; its level holds the
        // half's first half-slab. Every other level was consumed in whole chunk layers.
        let straddling = self.levels.iter().position(|level| level.slices != 0);
        let coarsest = match straddling {
            Some(i) if i + 1 == self.levels.len() => self.levels[i].half_contents(),
            Some(i) => {
                return Err(Error::internal(format_args!(
                    "block pyramid: scale {} has a partial slab at the end of a half",
                    i + 1
                )));
            }
            None => None,
        };
        let shards = self
            .held
            .into_iter()
            .map(|shard| {
                Ok(PartialShardFile {
                    encoding: shard.encoding,
                    scale_key: shard.scale_key.clone(),
                    file_name: shard.file_name.clone(),
                    bytes: shard.into_bytes()?.into(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(HalfHandoff {
            half,
            block: self.block,
            encodings: self.encodings,
            jpeg_quality: self.jpeg_quality,
            shards,
            coarsest: coarsest.map(|voxels| voxels.to_vec().into()),
            // The task that ran the half fills in the objects it wrote.
            written: Vec::new(),
        })
    }

    /// Fails unless every slab was pushed, every shard this pyramid encodes is complete and
    /// every part of a streamed shard was taken.
    fn check_complete(&self) -> Result<()> {
        self.check_parts_taken()?;
        if self.slabs_pushed != self.slab_count {
            return Err(Error::internal(format_args!(
                "block pyramid: finished after {} of {} slabs",
                self.slabs_pushed, self.slab_count
            )));
        }
        if let Some(scale) = self
            .scales
            .iter()
            .find(|scale| scale.shards.incomplete() > 0)
        {
            return Err(Error::internal(format_args!(
                "block pyramid: scale {} still has {} incomplete shards after the last slab",
                scale.scale.key(),
                scale.shards.incomplete()
            )));
        }
        Ok(())
    }

    /// Fails if parts of streamed shards were left untaken: they would be lost.
    fn check_parts_taken(&self) -> Result<()> {
        if self.parts.is_empty() && self.zarr_parts.is_empty() {
            return Ok(());
        }
        Err(Error::internal(format_args!(
            "block pyramid: {} parts of streamed shards were not taken",
            self.parts.len() + self.zarr_parts.len()
        )))
    }

    /// Counts a new slab, checking that the last one's parts were taken and that the pyramid
    /// takes one more.
    fn begin_slab(&mut self) -> Result<()> {
        self.check_parts_taken()?;
        if self.slabs_pushed == self.slab_count {
            return Err(Error::internal(format_args!(
                "block pyramid: a slab after the last ({}) one",
                self.slab_count
            )));
        }
        self.slabs_pushed += 1;
        Ok(())
    }

    /// Ends the slab whose slices were fed ([`BlockPyramid::push_slice`]), or, if none were,
    /// pushes an all-zero slab; returns the shards it completed. `between_rows` is called after
    /// each row of chunks it finishes or encodes.
    pub fn end_slab(&mut self, between_rows: &mut dyn FnMut()) -> Result<Vec<CompletedShard>> {
        let feed = self.feed.take();
        if feed.is_none() {
            self.begin_slab()?;
        }
        let chunk = ChunkEncoding {
            chunk_edge: self.chunk_edge,
            encodings: &self.encodings,
            jpeg_quality: self.jpeg_quality,
        };
        let mut completed = Vec::new();
        let started = Instant::now();
        let mut output = LayerOutput {
            completed: &mut completed,
            parts: &mut self.parts,
            zarr_parts: &mut self.zarr_parts,
            between_rows,
        };
        let scale0 = &mut self.scales[0];
        let fed = feed.is_some();
        match feed {
            Some(feed) => feed.finish(&mut scale0.shards, &chunk, &mut output)?,
            None => scale0.encode_layer(None, &chunk, &mut self.chunk_voxels, &mut output)?,
        }
        self.timings.encode += started.elapsed();

        // Scale 1 took the fed slices pair by pair (an all-zero slab folds in as zeros); when
        // scale 1's slab is full, encode it and fold it into scale 2, and so on.
        for k in 1..self.scales.len() {
            let (finer, coarser) = self.levels.split_at_mut(k - 1);
            let level = &mut coarser[0];
            let started = Instant::now();
            match k {
                1 if !fed => level.fold_in(None, &mut self.row_sums),
                1 => {}
                _ => {
                    level.fold_in(finer[k - 2].contents(), &mut self.row_sums);
                    // The finer level was consumed by the fold; start refilling it.
                    finer[k - 2].clear();
                }
            }
            self.timings.downsample += started.elapsed();
            if !level.is_full() {
                break;
            }
            let contents = level.contents();
            let started = Instant::now();
            self.scales[k].encode_layer(contents, &chunk, &mut self.chunk_voxels, &mut output)?;
            self.timings.encode += started.elapsed();
            if k + 1 == self.scales.len() {
                level.clear();
            }
        }
        // A half's share of a shard both halves hold waits for the hand-off.
        let (partial, whole) = completed.into_iter().partition(|shard| shard.partial);
        self.held.extend::<Vec<_>>(partial);
        Ok(whole)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::ErrorKind;
    use crate::block::scale::is_all_zero;
    use crate::block::test_support::{FLAT_VOXELS, scales_for, scales_with_voxels};
    use crate::precomputed::shard::decode_shard;
    use crate::precomputed::sharding::ShardingSpec;
    use crate::precomputed::{codec, morton};

    /// Chunk edge of the small test pyramids: blocks of 128³ voxels, slabs 8 deep.
    const C: usize = 8;
    /// Block edge of the small test pyramids.
    const B: usize = BLOCK_CHUNKS * C;

    /// Shards by (scale key, file name), each as chunks by id.
    type Shards = BTreeMap<(String, String), BTreeMap<u64, Vec<u8>>>;

    /// A B³ block: pseudo-random voxels (sometimes 0) inside `dense` (block-local voxel ranges
    /// per axis), zero elsewhere.
    fn block_voxels(dense: [std::ops::Range<usize>; 3]) -> Vec<u8> {
        let mut voxels = vec![0u8; B * B * B];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for z in dense[2].clone() {
            for y in dense[1].clone() {
                for x in dense[0].clone() {
                    // xorshift64: deterministic, no dependency.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    voxels[(z * B + y) * B + x] = (state >> 56) as u8;
                }
            }
        }
        voxels
    }

    /// Runs the streaming pyramid over `voxels` (a whole block), pushing the slabs in
    /// `zero_slabs` with `push_zero_slab`; returns each shard with the slab that completed it.
    fn stream(
        scales: &[Scale],
        block: [u64; 3],
        encodings: &[Encoding],
        voxels: &[u8],
        zero_slabs: &[usize],
        chunk_edge: usize,
    ) -> Vec<(usize, CompletedShard)> {
        let mut pyramid =
            BlockPyramid::with_chunk_edge(scales, block, None, encodings, 75, chunk_edge)
                .expect("valid pyramid");
        let slab_len = voxels.len() / SLAB_COUNT;
        let mut shards = Vec::new();
        for (i, slab) in voxels.chunks_exact(slab_len).enumerate() {
            let completed = if zero_slabs.contains(&i) {
                assert!(is_all_zero(slab), "slab {i} is not zero");
                pyramid.push_zero_slab()
            } else {
                pyramid.push_slab(slab)
            };
            shards.extend(completed.expect("slab").into_iter().map(|shard| (i, shard)));
        }
        shards.extend(
            pyramid
                .finish()
                .expect("finish")
                .into_iter()
                .map(|shard| (SLAB_COUNT, shard)),
        );
        shards
    }

    /// Decodes the streamed shards of `encoding`, checking each is emitted once and non-empty.
    fn decode_streamed(
        scales: &[Scale],
        streamed: &[(usize, CompletedShard)],
        encoding: Encoding,
    ) -> Shards {
        let mut shards = Shards::new();
        for (_, shard) in streamed
            .iter()
            .filter(|(_, shard)| shard.encoding == encoding)
        {
            let scale = scales
                .iter()
                .find(|s| s.key() == shard.scale_key)
                .expect("known scale");
            let bytes = shard.clone().into_bytes().expect("assembles");
            let chunks = decode_shard(scale.sharding(), &bytes).expect("decodes");
            assert!(
                !chunks.is_empty(),
                "empty shard {}/{}",
                shard.scale_key,
                shard.file_name
            );
            let key = (shard.scale_key.clone(), shard.file_name.clone());
            assert!(
                shards.insert(key, chunks).is_none(),
                "{}/{} emitted twice",
                shard.scale_key,
                shard.file_name
            );
        }
        shards
    }

    /// The slow twin: the whole block at every scale in memory, plain loops, raw chunks. Each
    /// scale's factor along z (2, or 1 where it keeps z) is read off the scales' voxel sizes.
    fn naive_pyramid(
        scales: &[Scale],
        block: [u64; 3],
        voxels: &[u8],
        chunk_edge: usize,
    ) -> Shards {
        let mut level = voxels.to_vec();
        let mut dims = [BLOCK_CHUNKS * chunk_edge; 3];
        let mut shards = Shards::new();
        for (k, scale) in scales.iter().enumerate() {
            if k > 0 {
                let z_factor = scale.resolution_nm()[2] / scales[k - 1].resolution_nm()[2];
                let z_factor = z_factor as usize;
                level = naive_downsample(&level, dims, z_factor);
                dims = [dims[0] / 2, dims[1] / 2, dims[2] / z_factor];
            }
            let [ex, ey, _] = dims;
            let cells = dims.map(|voxels| (voxels / chunk_edge) as u64);
            let grid = scale.grid();
            for cz in 0..cells[2] {
                for cy in 0..cells[1] {
                    for cx in 0..cells[0] {
                        let cell = [
                            block[0] * cells[0] + cx,
                            block[1] * cells[1] + cy,
                            block[2] * cells[2] + cz,
                        ];
                        if (0..3).any(|axis| cell[axis] >= grid[axis]) {
                            continue;
                        }
                        let [nx, ny, nz] = scale.chunk_extent(cell).map(|n| n as usize);
                        let [ox, oy, oz] = [cx, cy, cz].map(|c| c as usize * chunk_edge);
                        let mut chunk = Vec::new();
                        for z in oz..oz + nz {
                            for y in oy..oy + ny {
                                for x in ox..ox + nx {
                                    chunk.push(level[(z * ey + y) * ex + x]);
                                }
                            }
                        }
                        if chunk.iter().all(|&v| v == 0) {
                            continue;
                        }
                        let id = scale.chunk_id(cell);
                        let (shard, _) = scale.sharding().shard_and_minishard(id);
                        let key = (
                            scale.key().to_owned(),
                            scale.sharding().shard_file_name(shard),
                        );
                        shards.entry(key).or_default().insert(id, chunk);
                    }
                }
            }
        }
        shards
    }

    /// The rounded means over 2 × 2 × `z_factor` windows of `fine`, `dims` voxels (x fastest).
    fn naive_downsample(fine: &[u8], dims: [usize; 3], z_factor: usize) -> Vec<u8> {
        let [ex, ey, ez] = dims;
        let coarse_dims = [ex / 2, ey / 2, ez / z_factor];
        let mut coarse = vec![0; coarse_dims.iter().product()];
        let window = (4 * z_factor) as u32;
        for z in 0..coarse_dims[2] {
            for y in 0..coarse_dims[1] {
                for x in 0..coarse_dims[0] {
                    let mut sum = 0u32;
                    for dz in 0..z_factor {
                        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            let at = ((z_factor * z + dz) * ey + 2 * y + dy) * ex + 2 * x + dx;
                            sum += u32::from(fine[at]);
                        }
                    }
                    let at = (z * coarse_dims[1] + y) * coarse_dims[0] + x;
                    coarse[at] = ((sum + window / 2) / window) as u8;
                }
            }
        }
        coarse
    }

    /// Streams `voxels` and checks the raw shards against the slow twin, chunk by chunk.
    fn assert_streaming_equals_naive(
        size0: [u64; 3],
        block: [u64; 3],
        voxels: &[u8],
        zero_slabs: &[usize],
    ) -> Shards {
        let scales = scales_for(size0, C as u64);
        assert_scales_stream_as_naive(&scales, block, voxels, zero_slabs)
    }

    /// [`assert_streaming_equals_naive`] for any `scales`.
    fn assert_scales_stream_as_naive(
        scales: &[Scale],
        block: [u64; 3],
        voxels: &[u8],
        zero_slabs: &[usize],
    ) -> Shards {
        let streamed = stream(scales, block, &[Encoding::Raw], voxels, zero_slabs, C);
        let got = decode_streamed(scales, &streamed, Encoding::Raw);
        let want = naive_pyramid(scales, block, voxels, C);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "shard files"
        );
        for (shard, want_chunks) in &want {
            let got_chunks = &got[shard];
            assert_eq!(
                got_chunks.keys().collect::<Vec<_>>(),
                want_chunks.keys().collect::<Vec<_>>(),
                "chunk ids of {shard:?}"
            );
            for (id, chunk) in want_chunks {
                assert!(got_chunks[id] == *chunk, "chunk {id} of {shard:?} differs");
                assert!(
                    !is_all_zero(chunk),
                    "all-zero chunk {id} stored in {shard:?}"
                );
            }
        }
        got
    }

    #[test]
    fn streaming_equals_naive_on_a_partly_filled_block() {
        // Data in part of the block, zero slabs among the data (slab i is z in [8i, 8i + 8)).
        let voxels = block_voxels([3..70, 20..128, 10..100]);
        let zero_slabs = [0, 13, 14, 15];
        let shards =
            assert_streaming_equals_naive([256, 128, 256], [1, 0, 1], &voxels, &zero_slabs);
        // Scale 0 touches all 8 shards of the block at least partly; scales 1–4 one each.
        let per_scale = |key: &str| shards.keys().filter(|(k, _)| k == key).count();
        assert_eq!(
            [per_scale("s0"), per_scale("s1"), per_scale("s4")],
            [8, 1, 1]
        );
    }

    #[test]
    fn flat_voxels_keep_z_until_x_and_y_pass_it() {
        // 8×8×40 nm: scales 1 and 2 are 2×2×1 means, 3 and 4 are 2×2×2, so at scale 4 a block
        // is 1 × 1 × 4 chunks, one shard each.
        let voxels = block_voxels([3..70, 20..128, 10..100]);
        let scales = scales_with_voxels([256, 128, 256], C as u64, FLAT_VOXELS);
        let shards = assert_scales_stream_as_naive(&scales, [1, 0, 1], &voxels, &[0, 13, 14, 15]);
        let per_scale = |key: &str| shards.keys().filter(|(k, _)| k == key).count();
        // From scale 2 on a block is a stack of 4 shards along z, each 32 slices of scale 0 (4
        // slabs) deep: the data, z 10..100 of the block's 128, reaches all four.
        assert_eq!(
            ["s0", "s1", "s2", "s3", "s4"].map(per_scale),
            [8, 2, 4, 4, 4]
        );
        // Edges that clip every scale, and an empty block.
        let voxels = block_voxels([0..128, 0..128, 0..128]);
        let scales = scales_with_voxels([200, 100, 230], C as u64, FLAT_VOXELS);
        for block in [[0, 0, 0], [1, 0, 1], [1, 0, 0]] {
            assert_scales_stream_as_naive(&scales, block, &voxels, &[]);
        }
        let zero = vec![0; B * B * B];
        let all = (0..SLAB_COUNT).collect::<Vec<_>>();
        assert!(assert_scales_stream_as_naive(&scales, [0, 0, 0], &zero, &all).is_empty());
    }

    #[test]
    fn streaming_equals_naive_when_the_block_passes_the_volume_edge() {
        // Sizes that are not multiples of the block or the chunk at any scale, so every scale
        // clips: 200 × 100 × 230 at scale 0, … 12 × 6 × 14 at scale 4.
        let voxels = block_voxels([0..128, 0..128, 0..128]);
        for block in [[0, 0, 0], [1, 0, 1], [1, 0, 0]] {
            assert_streaming_equals_naive([200, 100, 230], block, &voxels, &[]);
        }
        // Clipping checked directly, not only against the twin: scale 4 of block (1, 0, 1) is
        // one chunk at cell (1, 0, 1), clipped to (12 − 8) × 6 × (14 − 8) voxels.
        let scales = scales_for([200, 100, 230], C as u64);
        let shards = stream(&scales, [1, 0, 1], &[Encoding::Raw], &voxels, &[], C);
        let s4 = decode_streamed(&scales, &shards, Encoding::Raw)
            .into_iter()
            .find(|((key, _), _)| key == "s4")
            .expect("scale 4 shard");
        let chunk_id = scales[4].chunk_id([1, 0, 1]);
        assert_eq!(s4.1[&chunk_id].len(), 4 * 6 * 6);
    }

    /// Shard files by `(encoding, scale key, file name)`, each with the slab after which it got
    /// its first part if it was streamed.
    type Files = BTreeMap<(Encoding, String, String), (Vec<u8>, Option<usize>)>;

    /// Every shard file of a pyramid run over `voxels`, by `(encoding, scale key, file name)`,
    /// with the slab after which each streamed file got its first part (`None` if held whole).
    /// With `stream_from`, shards of at least that many voxels go out in parts, which are
    /// assembled here as a store would: the parts back to back after the index.
    fn files(
        mut pyramid: BlockPyramid,
        voxels: &[u8],
        zero_slabs: &[usize],
        stream_from: Option<usize>,
    ) -> Files {
        if let Some(min_bytes) = stream_from {
            pyramid
                .stream_large_shards(min_bytes)
                .expect("before the first slab");
        }
        let slabs = voxels.chunks_exact(voxels.len() / SLAB_COUNT).enumerate();
        let slabs = slabs.skip(
            pyramid
                .half
                .map_or(0, |half| half.layers(16).start as usize),
        );
        let mut files = BTreeMap::new();
        let mut open: BTreeMap<_, (Vec<u8>, usize)> = BTreeMap::new();
        for (i, slab) in slabs.take(pyramid.slab_count) {
            let completed = if zero_slabs.contains(&i) {
                pyramid.push_zero_slab()
            } else {
                pyramid.push_slab(slab)
            };
            for shard in completed.expect("slab") {
                let key = (
                    shard.encoding,
                    shard.scale_key.clone(),
                    shard.file_name.clone(),
                );
                let file = shard.into_bytes().expect("assembles");
                assert!(files.insert(key, (file, None)).is_none(), "a file twice");
            }
            for part in pyramid.take_parts() {
                let key = (part.encoding, part.scale_key, part.file_name);
                let (data, _) = open.entry(key.clone()).or_insert((Vec::new(), i));
                data.extend(part.pieces.concat());
                if let Some(index) = part.index {
                    assert_eq!(index.len() as u64, part.index_len);
                    let (data, first) = open.remove(&key).expect("open");
                    let file = [index, data].concat();
                    assert!(
                        files.insert(key, (file, Some(first))).is_none(),
                        "a file twice"
                    );
                }
            }
        }
        assert!(open.is_empty(), "unfinished: {:?}", open.keys());
        if pyramid.half.is_none() {
            assert!(pyramid.finish().expect("finish").is_empty());
        }
        files
    }

    #[test]
    fn shards_in_parts_are_the_files_held_whole() {
        let voxels = block_voxels([3..128, 20..128, 10..120]);
        let zero_slabs = [0, 9];
        // Flat voxels stream their deeper shards the same way.
        let flat = scales_with_voxels([256, 128, 256], C as u64, FLAT_VOXELS);
        let both = [Encoding::Jpeg, Encoding::Raw];
        let make = || BlockPyramid::with_chunk_edge(&flat, [1, 0, 1], None, &both, 75, C);
        let held = files(make().expect("pyramid"), &voxels, &zero_slabs, None);
        let streamed = files(make().expect("pyramid"), &voxels, &zero_slabs, Some(0));
        assert_eq!(held.len(), streamed.len());
        for (key, (file, _)) in &held {
            assert!(streamed[key].0 == *file, "{key:?} differs");
        }

        let scales = scales_for([256, 128, 256], C as u64);
        let make = || BlockPyramid::with_chunk_edge(&scales, [1, 0, 1], None, &both, 75, C);
        let held = files(make().expect("pyramid"), &voxels, &zero_slabs, None);
        let streamed = files(make().expect("pyramid"), &voxels, &zero_slabs, Some(0));
        assert_eq!(
            held.keys().collect::<Vec<_>>(),
            streamed.keys().collect::<Vec<_>>()
        );
        for (key, (file, _)) in &held {
            assert!(streamed[key].0 == *file, "{key:?} differs");
        }
        // Every shard streamed; a scale-0 shard (8 slabs deep) had its first part out after its
        // 2nd slab: chunks 0–31 of its file order need only z 0–1.
        assert!(streamed.values().all(|(_, first)| first.is_some()));
        let first_s0: Vec<usize> = streamed
            .iter()
            .filter(|((_, scale, _), _)| scale == "s0")
            .map(|(_, (_, first))| first.expect("streamed") % 8)
            .collect();
        assert!(first_s0.iter().all(|&slab| slab <= 1), "{first_s0:?}");

        // Shards smaller than the threshold are held whole.
        let none = files(
            make().expect("pyramid"),
            &voxels,
            &zero_slabs,
            Some(usize::MAX),
        );
        assert!(none.values().all(|(_, first)| first.is_none()));
    }

    #[test]
    fn a_half_streams_its_own_shards_and_hands_off_the_shared_ones() {
        let voxels = block_voxels([0..128, 0..128, 0..128]);
        let scales = scales_for([128, 128, 128], C as u64);
        let whole =
            BlockPyramid::with_chunk_edge(&scales, [0, 0, 0], None, &[Encoding::Raw], 75, C);
        let held = files(whole.expect("pyramid"), &voxels, &[], None);
        for half in BlockHalf::BOTH {
            let pyramid = BlockPyramid::with_chunk_edge(
                &scales,
                [0, 0, 0],
                Some(half),
                &[Encoding::Raw],
                75,
                C,
            );
            let streamed = files(pyramid.expect("pyramid"), &voxels, &[], Some(0));
            // The half's own files are its 4 scale-0 shards, all streamed, as the whole block
            // writes them; the rest went to the hand-off.
            assert_eq!(streamed.len(), 4);
            for (key, (file, first)) in &streamed {
                assert_eq!(key.1, "s0");
                assert!(first.is_some());
                assert!(held[key].0 == *file, "{key:?} differs");
            }
        }
    }

    #[test]
    fn block_outside_the_volume_writes_nothing() {
        let voxels = block_voxels([0..128, 0..128, 0..128]);
        let scales = scales_for([200, 100, 230], C as u64);
        assert!(stream(&scales, [0, 1, 0], &[Encoding::Raw], &voxels, &[], C).is_empty());
    }

    #[test]
    fn zero_block_writes_nothing() {
        let voxels = vec![0; B * B * B];
        let scales = scales_for([256, 256, 256], C as u64);
        assert!(stream(&scales, [1, 1, 1], &[Encoding::Raw], &voxels, &[], C).is_empty());
        assert!(stream(&scales, [1, 1, 1], &[Encoding::Raw], &voxels, &[3, 4], C).is_empty());
    }

    #[test]
    fn shards_are_emitted_as_soon_as_complete() {
        // Dense: every voxel nonzero, so every chunk is stored.
        let voxels: Vec<u8> = block_voxels([0..128, 0..128, 0..128])
            .iter()
            .map(|&v| v | 1)
            .collect();
        let scales = scales_for([256, 256, 256], C as u64);
        let streamed = stream(&scales, [1, 0, 1], &[Encoding::Raw], &voxels, &[], C);
        let mut when: BTreeMap<(String, usize), usize> = BTreeMap::new();
        for (slab, shard) in &streamed {
            *when.entry((shard.scale_key.clone(), *slab)).or_default() += 1;
        }
        #[rustfmt::skip]
        let want = BTreeMap::from([
            (("s0".to_owned(), 7), 4),  // the lower 8 chunk layers: 4 shards after slab 7
            (("s0".to_owned(), 15), 4), // the upper 4 after the last slab
            (("s1".to_owned(), 15), 1), // scales 1–4: one shard each, complete at the end
            (("s2".to_owned(), 15), 1),
            (("s3".to_owned(), 15), 1),
            (("s4".to_owned(), 15), 1),
        ]);
        assert_eq!(when, want);
    }

    #[test]
    fn jpeg_and_raw_shards_hold_the_same_chunks() {
        let voxels = block_voxels([0..50, 0..128, 30..128]);
        let scales = scales_for([256, 128, 256], C as u64);
        let streamed = stream(
            &scales,
            [0, 0, 0],
            &[Encoding::Jpeg, Encoding::Raw],
            &voxels,
            &[],
            C,
        );
        let raw = decode_streamed(&scales, &streamed, Encoding::Raw);
        let jpeg = decode_streamed(&scales, &streamed, Encoding::Jpeg);
        assert_eq!(
            raw.keys().collect::<Vec<_>>(),
            jpeg.keys().collect::<Vec<_>>()
        );
        for (shard, raw_chunks) in &raw {
            let jpeg_chunks = &jpeg[shard];
            assert_eq!(
                raw_chunks.keys().collect::<Vec<_>>(),
                jpeg_chunks.keys().collect::<Vec<_>>()
            );
            let scale = scales
                .iter()
                .find(|s| s.key() == shard.0)
                .expect("known scale");
            for (id, raw_chunk) in raw_chunks {
                let cell = morton::decode(*id, scale.morton_bits());
                let extent = scale.chunk_extent(cell).map(|n| n as usize);
                let decoded =
                    codec::decode_chunk(Encoding::Jpeg, &jpeg_chunks[id], extent).expect("jpeg");
                assert_eq!(decoded.len(), raw_chunk.len());
            }
        }
    }

    /// A B³ block of smooth, textured data: what JPEG is meant for.
    fn smooth_block() -> Vec<u8> {
        let mut voxels = Vec::with_capacity(B * B * B);
        for z in 0..B {
            for y in 0..B {
                for x in 0..B {
                    let [x, y, z] = [x, y, z].map(|v| v as f64);
                    let v = 128.0
                        + 50.0 * (x / 9.0).sin()
                        + 30.0 * (y / 13.0).cos()
                        + 20.0 * (z / 7.0).sin();
                    voxels.push(v as u8);
                }
            }
        }
        voxels
    }

    /// The JPEG pyramid holds the raw pyramid's content, within JPEG's loss, at every scale.
    #[test]
    fn jpeg_chunks_decode_close_to_the_raw_chunks() {
        let voxels = smooth_block();
        let scales = scales_for([256, 128, 200], C as u64);
        let streamed = stream(
            &scales,
            [1, 0, 1],
            &[Encoding::Jpeg, Encoding::Raw],
            &voxels,
            &[],
            C,
        );
        let raw = decode_streamed(&scales, &streamed, Encoding::Raw);
        let jpeg = decode_streamed(&scales, &streamed, Encoding::Jpeg);
        let mut worst = 0.0f64;
        for (shard, raw_chunks) in &raw {
            let scale = scales
                .iter()
                .find(|s| s.key() == shard.0)
                .expect("known scale");
            for (id, raw_chunk) in raw_chunks {
                let cell = morton::decode(*id, scale.morton_bits());
                let extent = scale.chunk_extent(cell).map(|n| n as usize);
                let decoded =
                    codec::decode_chunk(Encoding::Jpeg, &jpeg[shard][id], extent).expect("jpeg");
                let squares: f64 = decoded
                    .iter()
                    .zip(raw_chunk)
                    .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                    .sum();
                worst = worst.max((squares / raw_chunk.len() as f64).sqrt());
            }
        }
        // tensorstore's chunk-encoding test asks RMS < 3 of JPEG at quality 75 on smooth data.
        // Measured here: about 1.0–1.4 for most chunks, worst 2.47 (scale 4, whose 8³ chunks
        // are the smallest images), so 3 leaves a margin without hiding a broken encoder.
        assert!(worst < 3.0, "worst chunk rms {worst}");
    }

    #[test]
    fn shard_layout_must_stay_inside_blocks() {
        // Preshift 15 at scale 0 makes shards of 32 chunks per axis, two blocks wide.
        let sharding = ShardingSpec::new(15, 0, 18).expect("valid spec");
        let scale = Scale::new(
            "wide".into(),
            [512; 3],
            [8.0; 3],
            [C as u64; 3],
            Encoding::Raw,
            sharding,
        )
        .expect("valid scale");
        let e = BlockPyramid::with_chunk_edge(
            std::slice::from_ref(&scale),
            [0, 0, 0],
            None,
            &[Encoding::Raw],
            75,
            C,
        )
        .expect_err("shards span blocks");
        assert!(
            e.message()
                .contains("scale wide: a shard spans cells [0, 32) along x"),
            "{e}"
        );
        // … unless the volume is only one block wide: the grid clips the shard to the block.
        let small = Scale::new(
            "small".into(),
            [128; 3],
            [8.0; 3],
            [C as u64; 3],
            Encoding::Raw,
            sharding,
        )
        .expect("valid scale");
        BlockPyramid::with_chunk_edge(&[small], [0, 0, 0], None, &[Encoding::Raw], 75, C)
            .expect("one block");
    }

    #[test]
    fn misuse_is_an_error_not_a_panic() {
        let scales = scales_for([256; 3], C as u64);
        let new = |scales: &[Scale], encodings: &[Encoding], quality| {
            BlockPyramid::with_chunk_edge(scales, [0, 0, 0], None, encodings, quality, C)
        };
        let cases = [
            (
                new(&[], &[Encoding::Raw], 75).expect_err("no scales"),
                "expected 1 to 5 scales, got 0",
            ),
            (
                new(
                    &[scales.clone(), scales.clone()].concat(),
                    &[Encoding::Raw],
                    75,
                )
                .expect_err("10 scales"),
                "got 10",
            ),
            (
                new(&scales, &[], 75).expect_err("no encoding"),
                "expected distinct encodings",
            ),
            (
                new(&scales, &[Encoding::Raw, Encoding::Raw], 75).expect_err("twice"),
                "distinct",
            ),
            (
                new(&scales, &[Encoding::Jpeg], 0).expect_err("quality 0"),
                "jpeg-quality: 0",
            ),
            (
                BlockPyramid::new(&scales, [0, 0, 0], &[Encoding::Raw], 75).expect_err("8³ chunks"),
                "chunk size [8, 8, 8], expected 64³",
            ),
        ];
        for (e, message) in cases {
            assert!(e.message().contains(message), "want {message:?} in {e}");
        }

        let mut pyramid = new(&scales, &[Encoding::Raw], 75).expect("valid");
        let e = pyramid.push_slab(&[0; 10]).expect_err("short slab");
        assert!(
            e.message().contains("slab 0 has 10 bytes, expected 131072"),
            "{e}"
        );
        pyramid.push_zero_slab().expect("slab 0");
        let e = pyramid.finish().expect_err("15 slabs missing");
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(e.message().contains("finished after 1 of 16 slabs"), "{e}");

        let mut pyramid = new(&scales, &[Encoding::Raw], 75).expect("valid");
        for _ in 0..16 {
            pyramid.push_zero_slab().expect("slab");
        }
        let e = pyramid.push_zero_slab().expect_err("17th slab");
        assert!(e.message().contains("after the last"), "{e}");
    }

    /// The production geometry (1024³ blocks, 64³ chunks, 64 MiB slabs) on a block with data in
    /// one slab only, so it runs in a debug build: a box of 200s at x ∈ [128, 256), y ∈ [0, 64),
    /// z ∈ [320, 384), aligned so that every scale holds exactly its image: 200 inside the box
    /// shrunk by 2^k, 0 outside.
    #[test]
    fn full_size_block_with_one_slab_of_data() {
        let info =
            layout::volume_info([2048, 1024], 0, 1023, [8.0; 3], Encoding::Jpeg).expect("info");
        let scales = info.scales();
        let edge = 1024;
        let mut slab = vec![0u8; BlockPyramid::SLAB_BYTES];
        for z in 0..64 {
            for y in 0..64 {
                slab[(z * edge + y) * edge + 128..][..128].fill(200);
            }
        }
        let mut pyramid =
            BlockPyramid::new(scales, [0, 0, 0], &[Encoding::Jpeg, Encoding::Raw], 75)
                .expect("valid");
        let mut streamed = Vec::new();
        for i in 0..BlockPyramid::SLAB_COUNT {
            let completed = if i == 5 {
                pyramid.push_slab(&slab)
            } else {
                pyramid.push_zero_slab()
            };
            streamed.extend(completed.expect("slab").into_iter().map(|shard| (i, shard)));
        }
        assert!(pyramid.finish().expect("16 slabs").is_empty());

        let when: BTreeSet<(usize, Encoding, &str, &str)> = streamed
            .iter()
            .map(|(i, s)| (*i, s.encoding, s.scale_key.as_str(), s.file_name.as_str()))
            .collect();
        let mut want = BTreeSet::new();
        for encoding in [Encoding::Jpeg, Encoding::Raw] {
            // The scale-0 shard of the lower half is complete after slab 7.
            want.insert((7, encoding, "8.0x8.0x8.0", "000000.shard"));
            for key in [
                "16.0x16.0x16.0",
                "32.0x32.0x32.0",
                "64.0x64.0x64.0",
                "128.0x128.0x128.0",
            ] {
                want.insert((15, encoding, key, "000000.shard"));
            }
        }
        assert_eq!(when, want);

        let raw = decode_streamed(scales, &streamed, Encoding::Raw);
        let jpeg = decode_streamed(scales, &streamed, Encoding::Jpeg);
        for (k, scale) in scales.iter().enumerate() {
            let inside = |voxel: [u64; 3]| {
                let [lo, hi] =
                    [[128u64, 0, 320], [256, 64, 384]].map(|corner| corner.map(|c| c >> k));
                (0..3).all(|axis| lo[axis] <= voxel[axis] && voxel[axis] < hi[axis])
            };
            let chunks = &raw[&(scale.key().to_owned(), "000000.shard".to_owned())];
            let mut want_ids = BTreeSet::new();
            for (id, chunk) in chunks {
                let cell = morton::decode(*id, scale.morton_bits());
                let extent = scale.chunk_extent(cell);
                assert_eq!(chunk.len() as u64, extent.iter().product::<u64>());
                let mut i = 0;
                for z in 0..extent[2] {
                    for y in 0..extent[1] {
                        for x in 0..extent[0] {
                            let voxel = [x + cell[0] * 64, y + cell[1] * 64, z + cell[2] * 64];
                            let want = if inside(voxel) { 200 } else { 0 };
                            assert_eq!(chunk[i], want, "scale {k} voxel {voxel:?}");
                            i += 1;
                        }
                    }
                }
                want_ids.insert(*id);
            }
            // Scale 0: cells x 2–3 of the box; each coarser scale: the one cell holding it.
            assert_eq!(chunks.len(), if k == 0 { 2 } else { 1 }, "scale {k}");
            let jpeg_chunks = &jpeg[&(scale.key().to_owned(), "000000.shard".to_owned())];
            assert_eq!(
                jpeg_chunks.keys().copied().collect::<BTreeSet<_>>(),
                want_ids
            );
        }
    }
}
