//! One scale of a block: which of its chunks a task encodes, and encoding a layer of them.
//!
//! docs/design.md §4 "ngshard". A block at a scale is [`ScaleShift::block_chunks`] chunks per
//! axis; the pyramid encodes it one chunk layer at a time (a slab of the scale, one chunk
//! deep), cutting each chunk out of the slab, skipping all-zero ones, and handing the rest to
//! the scale's shards ([`super::shards`]). This is where the block engine meets the format: a
//! chunk is a grid cell of a [`Scale`] with an id, and its bytes go to a [`BlockShards`].

use std::ops::Range;

use super::shards::{BlockShards, ChunkEncoding, CompletedShard, ShardPart, ZarrPart};
use crate::layout::{self, BlockHalf, ScaleShift};
use crate::precomputed::codec::Encoding;
use crate::precomputed::info::Scale;
use crate::request::wire;
use crate::{Error, Result};

/// Chunk edge of emwrite's scales, in voxels: full chunk rows copy as fixed-size arrays.
const CHUNK_EDGE: usize = layout::CHUNK_EDGE as usize;

/// Chunks per block edge at scale 0 (16).
pub(super) const BLOCK_CHUNKS: usize = layout::BLOCK_CHUNKS as usize;

/// The chunk layers of the scale `shift` a pyramid encodes, and those another task encodes,
/// relative to the block: all of them for the whole block; for a half, its half of them if the
/// block is at least two chunks deep at that scale, otherwise none (the merge encodes that scale).
pub(super) fn scale_layers(shift: ScaleShift, half: Option<BlockHalf>) -> (Range<u64>, Range<u64>) {
    let layers = u64::from(shift.block_chunks()[2]);
    match half {
        None => (0..layers, 0..0),
        Some(_) if !BlockHalf::divide_scale(shift) => (0..0, 0..0),
        Some(half) => (half.layers(layers), half.other().layers(layers)),
    }
}

/// The scale's one chunk layer of the block at `block` from the voxels of both halves of its
/// partial slab (each `None` if all zero), encoded into the scale's shards: the merge's share
/// of a block built in halves, for the scale whose block is a single chunk.
pub(super) fn encode_straddling_scale(
    scale: &Scale,
    shift: ScaleShift,
    block: [u64; 3],
    halves: [Option<&[u8]>; 2],
    encodings: &[Encoding],
    jpeg_quality: u8,
    chunk_edge: usize,
) -> Result<Vec<CompletedShard>> {
    if shift.block_chunks() != [1; 3] {
        return Err(Error::internal(format_args!(
            "block pyramid: scale {} splits into whole chunk layers, it does not straddle",
            scale.key()
        )));
    }
    let geometry = BlockGeometry { block, chunk_edge };
    let mut state = ScaleState::new(scale, shift, geometry, 0..1, 0..0, encodings.len())?;
    let edge = chunk_edge;
    let half_len = edge * edge * chunk_edge / 2;
    for voxels in halves.iter().flatten() {
        if voxels.len() != half_len {
            return Err(Error::internal(format_args!(
                "block pyramid: scale {}: half a slab of {} bytes, expected {half_len}",
                scale.key(),
                voxels.len()
            )));
        }
    }
    let slab = match halves {
        [None, None] => None,
        [lower, upper] => {
            let zeros = vec![0; half_len];
            Some([lower.unwrap_or(&zeros), upper.unwrap_or(&zeros)].concat())
        }
    };
    let chunk = ChunkEncoding {
        chunk_edge,
        encodings,
        jpeg_quality,
    };
    let (mut completed, mut parts, mut zarr_parts) = (Vec::new(), Vec::new(), Vec::new());
    let mut scratch = Vec::with_capacity(chunk_edge.pow(3));
    let mut output = LayerOutput {
        completed: &mut completed,
        parts: &mut parts,
        zarr_parts: &mut zarr_parts,
        between_rows: &mut || {},
    };
    state.encode_layer(slab.as_deref(), &chunk, &mut scratch, &mut output)?;
    if !parts.is_empty() || !zarr_parts.is_empty() {
        return Err(Error::internal(
            "block pyramid: a straddling scale's shard was streamed",
        ));
    }
    if state.shards.incomplete() > 0 {
        return Err(Error::internal(format_args!(
            "block pyramid: scale {} incomplete after its one layer",
            scale.key()
        )));
    }
    Ok(completed)
}

/// Where a block is, and its chunk edge.
#[derive(Clone, Copy, Debug)]
pub(super) struct BlockGeometry {
    /// `[bx, by, bz]`, in blocks.
    pub(super) block: [u64; 3],
    /// Chunk edge in voxels.
    pub(super) chunk_edge: usize,
}

/// One scale's progress through the block.
#[derive(Debug)]
pub(super) struct ScaleState {
    pub(super) scale: Scale,
    /// The scale's chunk grid.
    grid: [u64; 3],
    /// Block edge in x and y at this scale, in voxels: a slab's slices are this square.
    block_edge: usize,
    /// The block's first grid cell.
    block_cell: [u64; 3],
    /// The block's grid cells inside the scale, per axis ([`layout::block_cells`]).
    cells: [Range<u64>; 3],
    /// The block's chunk layers this scale encodes, relative to the block.
    layers: Range<u64>,
    /// The next chunk layer to encode, relative to the block.
    next_layer: u64,
    /// The block's shards at this scale, until each is complete.
    pub(super) shards: BlockShards,
}

impl ScaleState {
    /// The state of the scale `shift` for the block of `geometry`, encoding the chunk `layers` (relative to
    /// the block) while another task encodes the layers `others`, with every shard those layers
    /// touch pending.
    pub(super) fn new(
        scale: &Scale,
        shift: ScaleShift,
        geometry: BlockGeometry,
        layers: Range<u64>,
        others: Range<u64>,
        encoding_count: usize,
    ) -> Result<Self> {
        let BlockGeometry { block, chunk_edge } = geometry;
        let key = scale.key();
        let chunk = chunk_edge as u64;
        if scale.chunk_size() != [chunk; 3] {
            return Err(Error::internal(format_args!(
                "block pyramid: scale {key}: chunk size {:?}, expected {chunk}³",
                scale.chunk_size()
            )));
        }
        if scale.voxel_offset() != [0; 3] {
            return Err(Error::internal(format_args!(
                "block pyramid: scale {key}: voxel offset {:?}, expected [0, 0, 0]",
                scale.voxel_offset()
            )));
        }
        scale.check_shard_capacity()?;

        let block_cells = shift.block_chunks().map(u64::from);
        let mut block_cell = [0; 3];
        for axis in 0..3 {
            block_cell[axis] = block[axis].checked_mul(block_cells[axis]).ok_or_else(|| {
                Error::bad_field(
                    wire::START,
                    format_args!("block {block:?} is outside any volume"),
                )
            })?;
        }
        let grid = scale.grid();
        scale
            .sharding()
            .check_block_owns_its_shards(grid, block_cell, block_cells)
            .map_err(|e| e.context(format_args!("block pyramid: scale {key}")))?;

        let cells = layout::block_cells(block, shift, grid);
        let [xs, ys, zs] = cells.clone();
        let chunk_ids = |layers: &Range<u64>| {
            let mut ids = Vec::new();
            let z_cells = block_cell[2] + layers.start..block_cell[2] + layers.end;
            for z in z_cells.filter(|z| zs.contains(z)) {
                for y in ys.clone() {
                    for x in xs.clone() {
                        ids.push(scale.chunk_id([x, y, z]));
                    }
                }
            }
            ids
        };
        Ok(Self {
            shards: BlockShards::new(
                scale,
                chunk_ids(&layers),
                chunk_ids(&others),
                encoding_count,
            ),
            scale: scale.clone(),
            grid,
            block_edge: block_cells[0] as usize * chunk_edge,
            block_cell,
            cells,
            next_layer: layers.start,
            layers,
        })
    }

    /// Starts the block's next layer of chunks: the layer's chunks inside the scale, in the
    /// order they are encoded (y, then x), with their place in a slab of chunk edge
    /// `chunk_edge`. None if the layer lies past the scale's end.
    pub(super) fn start_layer(&mut self, chunk_edge: usize) -> Result<Vec<LayerCell>> {
        if !self.layers.contains(&self.next_layer) {
            return Err(Error::internal(format_args!(
                "block pyramid: scale {}: chunk layer {} is not among this task's {:?}",
                self.scale.key(),
                self.next_layer,
                self.layers
            )));
        }
        let z = self.block_cell[2].saturating_add(self.next_layer);
        self.next_layer += 1;
        let mut cells = Vec::new();
        if z >= self.grid[2] {
            return Ok(cells);
        }
        let xs = self.cells[0].clone();
        for y in self.cells[1].clone() {
            for x in xs.clone() {
                let cell = [x, y, z];
                cells.push(LayerCell {
                    id: self.scale.chunk_id(cell),
                    // Each extent is at most the chunk edge, a usize, so the casts are lossless.
                    extent: self.scale.chunk_extent(cell).map(|voxels| voxels as usize),
                    origin: [x - self.block_cell[0], y - self.block_cell[1]]
                        .map(|cells| cells as usize * chunk_edge),
                    ends_row: x + 1 == xs.end,
                });
            }
        }
        Ok(cells)
    }

    /// Encodes the block's next layer of chunks from `slab` (this scale's voxels, one chunk
    /// deep; `None`: all zero) and hands out what it completes to `output`.
    pub(super) fn encode_layer(
        &mut self,
        slab: Option<&[u8]>,
        chunk: &ChunkEncoding<'_>,
        voxels: &mut Vec<u8>,
        output: &mut LayerOutput<'_>,
    ) -> Result<()> {
        for cell in self.start_layer(chunk.chunk_edge)? {
            if let Some(slab) = slab {
                extract_chunk(slab, self.block_edge, cell.origin, cell.extent, voxels);
                if !is_all_zero(voxels) {
                    self.shards.add_chunk(cell.id, voxels, cell.extent, chunk)?;
                }
            }
            output.cell_done(&mut self.shards, cell, chunk.encodings)?;
        }
        Ok(())
    }
}

/// A chunk of a scale's layer and its place in the layer's slab.
#[derive(Clone, Copy, Debug)]
pub(super) struct LayerCell {
    pub(super) id: u64,
    /// Voxels, clipped to the scale.
    pub(super) extent: [usize; 3],
    /// x and y of its first voxel in the slab.
    pub(super) origin: [usize; 2],
    /// Whether it is the last chunk of its row.
    pub(super) ends_row: bool,
}

/// Where a scale's layer puts what it completes.
pub(super) struct LayerOutput<'a> {
    /// Whole shards.
    pub(super) completed: &'a mut Vec<CompletedShard>,
    /// Parts of streamed shards.
    pub(super) parts: &'a mut Vec<ShardPart>,
    /// Parts of streamed OME-Zarr shards.
    pub(super) zarr_parts: &'a mut Vec<ZarrPart>,
    /// Called after each row of chunks.
    pub(super) between_rows: &'a mut dyn FnMut(),
}

impl LayerOutput<'_> {
    /// Counts `cell`'s chunk as done in `shards`, taking what that completes, and calls
    /// `between_rows` after the last chunk of a row.
    pub(super) fn cell_done(
        &mut self,
        shards: &mut BlockShards,
        cell: LayerCell,
        encodings: &[Encoding],
    ) -> Result<()> {
        shards.chunk_done(
            cell.id,
            encodings,
            self.completed,
            self.parts,
            self.zarr_parts,
        )?;
        if cell.ends_row {
            (self.between_rows)();
        }
        Ok(())
    }
}

/// Copies into `out` the chunk of `extent` voxels at `origin` = `[x, y]` of a slab whose
/// slices are `edge` × `edge` voxels: one contiguous row of `extent[0]` voxels at a time.
fn extract_chunk(
    slab: &[u8],
    edge: usize,
    origin: [usize; 2],
    extent: [usize; 3],
    out: &mut Vec<u8>,
) {
    let [nx, ny, nz] = extent;
    out.clear();
    for z in 0..nz {
        for y in 0..ny {
            let row = (z * edge + origin[1] + y) * edge + origin[0];
            let voxels = &slab[row..row + nx];
            // A full row has a size known here, which compiles to a few vector moves; a copy
            // of unknown size is a `memory.copy` in wasm, a call into the runtime that costs
            // three times as much for a 64-byte row (a block copies ~19 M rows).
            match <&[u8; CHUNK_EDGE]>::try_from(voxels) {
                Ok(full) => out.extend_from_slice(full),
                Err(_) => out.extend_from_slice(voxels),
            }
        }
    }
}

pub(super) fn is_all_zero(voxels: &[u8]) -> bool {
    // OR-folding a fixed-size run vectorizes where an early-exit scan would not; stopping after
    // the first nonzero run keeps dense chunks cheap.
    voxels
        .chunks(4096)
        .all(|run| run.iter().fold(0, |acc, &v| acc | v) == 0)
}
