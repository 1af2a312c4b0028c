//! The slice feed: a slab's scale-0 chunk layer encoded as its slices arrive, one at a time.
//!
//! docs/design.md §4 "ngshard". A chunk's voxels are its slices one after another, and its JPEG
//! their rows (x wide, y·z tall), so each slice goes at once into the encoders of the chunks it
//! crosses ([`ChunkSlices`], the row-wise JPEG of vendor/jpeg-encoder): the pyramid never needs
//! the 64 MiB slab, only the slice. A chunk's encoders start at its first slice with a nonzero
//! voxel, so all-zero chunks cost no encoding.

use super::scale::{LayerCell, LayerOutput, is_all_zero};
use super::shards::{BlockShards, ChunkEncoding};
use crate::precomputed::codec::ChunkSlices;
use crate::{Error, Result};

/// The scale-0 chunk layer of a slab being fed slice by slice.
#[derive(Debug)]
pub(super) struct SliceFeed {
    /// The layer's chunks inside the volume, in the order they are encoded.
    chunks: Vec<FedChunk>,
    /// Slices fed so far.
    slices: usize,
}

/// A scale-0 chunk of the slab being fed.
#[derive(Debug)]
struct FedChunk {
    cell: LayerCell,
    /// One per encoding, from the chunk's first slice with a nonzero voxel; none while all of
    /// its voxels so far are zero.
    encoders: Vec<ChunkSlices>,
}

impl SliceFeed {
    /// A feed of the layer whose chunks are `cells` ([`super::scale::ScaleState::start_layer`]).
    pub(super) fn new(cells: Vec<LayerCell>) -> Self {
        let chunks = cells
            .into_iter()
            .map(|cell| FedChunk {
                cell,
                encoders: Vec::new(),
            })
            .collect();
        Self { chunks, slices: 0 }
    }

    /// Slices fed so far: the z in the slab of the next one.
    pub(super) fn slices(&self) -> usize {
        self.slices
    }

    /// Feeds the slab's next slice (`block_edge`² voxels, x fastest) into the encoders of the
    /// chunks it crosses, each in every encoding of `chunk`; `region` is scratch for one chunk's
    /// share of the slice.
    pub(super) fn push(
        &mut self,
        slice: &[u8],
        block_edge: usize,
        chunk: &ChunkEncoding<'_>,
        region: &mut Vec<u8>,
    ) -> Result<()> {
        let dz = self.slices;
        if dz == chunk.chunk_edge {
            return Err(Error::internal(
                "block pyramid: a slice after the slab's last; end the slab first",
            ));
        }
        for fed in &mut self.chunks {
            let [ex, ey, ez] = fed.cell.extent;
            if dz >= ez {
                continue;
            }
            let [ox, oy] = fed.cell.origin;
            region.clear();
            for row in slice[oy * block_edge..].chunks_exact(block_edge).take(ey) {
                region.extend_from_slice(&row[ox..][..ex]);
            }
            if fed.encoders.is_empty() {
                if is_all_zero(region) {
                    continue;
                }
                // The chunk's first nonzero slice: its encoders start with the zero slices
                // before it.
                let zeros = vec![0; ex * ey];
                for &encoding in chunk.encodings {
                    let mut encoder =
                        ChunkSlices::new(encoding, fed.cell.extent, chunk.jpeg_quality)?;
                    for _ in 0..dz {
                        encoder.push_slice(&zeros)?;
                    }
                    fed.encoders.push(encoder);
                }
            }
            for encoder in &mut fed.encoders {
                encoder.push_slice(region)?;
            }
        }
        self.slices += 1;
        Ok(())
    }

    /// Ends the slab, whose every slice was fed: each chunk's encoders finish into `shards`
    /// (scale 0's), which hand out what completes to `output`.
    pub(super) fn finish(
        self,
        shards: &mut BlockShards,
        chunk: &ChunkEncoding<'_>,
        output: &mut LayerOutput<'_>,
    ) -> Result<()> {
        if self.slices != chunk.chunk_edge {
            return Err(Error::internal(format_args!(
                "block pyramid: a slab ended after {} of its {} slices",
                self.slices, chunk.chunk_edge
            )));
        }
        for FedChunk { cell, encoders } in self.chunks {
            if !encoders.is_empty() {
                let encoded = encoders
                    .into_iter()
                    .map(ChunkSlices::finish)
                    .collect::<Result<Vec<_>>>()?;
                shards.add_encoded_chunk(cell.id, chunk, &encoded)?;
            }
            output.cell_done(shards, cell, chunk.encodings)?;
        }
        Ok(())
    }
}
