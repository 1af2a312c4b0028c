//! The order of a shard file's chunk data, which the format leaves to the writer.
//!
//! Spec: <https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/sharded.md#minishard-index-format>
//! (docs/design.md §5, "Shard file"). A reader finds every chunk through its minishard's index,
//! whose offsets may point anywhere after the shard index; the format asks only that a
//! minishard's index list its chunks by ascending id, each offset counted from the end of the
//! chunk listed before it. So the minishards' data may come in any order, as long as each
//! minishard's own chunks come together, by id.

use crate::precomputed::morton;
use crate::precomputed::sharding::ShardingSpec;

/// The order in which a shard file holds its minishards' data: by the last z layer of the grid
/// that each minishard reaches, then by chunk id.
///
/// The pyramid completes a block layer by layer in z, so a shard written front to back can let
/// each minishard's chunks out as soon as its last layer is done ([`super::ShardStream`]). With
/// minishards of one layer each ([`crate::layout::ScaleShift::sharding`]) no chunk waits for a
/// later layer. With a shard that is one minishard (as in volumes written before minishards,
/// `minishard_bits` 0) every chunk has the same last layer, and the order is plain id order.
///
/// The order is a function of the chunk ids alone, so every path (one task, a split block's
/// halves and their merge, the held and the streamed shard) writes the same bytes.
///
/// ```
/// use emwrite::precomputed::shard::ChunkOrder;
/// use emwrite::precomputed::sharding::ShardingSpec;
/// // A 2×2×2 grid, ids x0 y0 z0; minishards of 2×2×1 chunks (2 preshift bits).
/// let order = ChunkOrder::by_layer(&ShardingSpec::new(2, 1, 0)?, [1, 1, 1]);
/// let mut ids = vec![7, 0, 5, 2];
/// ids.sort_by_key(|&id| order.key(id));
/// assert_eq!(ids, [0, 2, 5, 7]);
/// // One minishard of 2×2×2: plain id order.
/// let order = ChunkOrder::by_layer(&ShardingSpec::new(3, 0, 0)?, [1, 1, 1]);
/// assert!(order.key(4) < order.key(5));
/// # Ok::<(), emwrite::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkOrder {
    /// The id bits below the minishard bits, all set: or-ed into an id, they give the last
    /// chunk its minishard can hold.
    preshift_mask: u64,
    /// The id bits that hold a chunk's z cell (from the grid's compressed Morton code) and pick
    /// its minishard or lie below those: bits above them may differ within a minishard (the
    /// identity hash ignores what lies above the shard bits), and a minishard's chunks must
    /// all share a layer key to stay in id order.
    z_mask: u64,
}

impl ChunkOrder {
    /// Plain id order (minishard by minishard, ascending id within each): what a writer that
    /// does not know the grid writes.
    pub const BY_ID: Self = Self {
        preshift_mask: 0,
        z_mask: 0,
    };

    /// Minishards by the last z layer each reaches, for `spec` on a grid of `morton_bits`
    /// bits per axis ([`morton::bits_per_axis`]).
    pub fn by_layer(spec: &ShardingSpec, morton_bits: [u32; 3]) -> Self {
        let preshift_mask = low_bits_mask(spec.preshift_bits());
        // Every z bit set, and no x or y bit: the Morton code's z bits, up to the minishard's.
        let minishard_mask = low_bits_mask(spec.preshift_bits() + spec.minishard_bits());
        let z_mask = morton::encode([0, 0, u64::MAX], morton_bits) & minishard_mask;
        Self {
            preshift_mask,
            z_mask,
        }
    }

    /// Where chunk `id` goes in its shard file's data: ascending keys, front to back. The z bits
    /// of the last id in the chunk's minishard order the minishards by the layer they end in,
    /// and keep each minishard's chunks together; the id orders them within it.
    pub fn key(&self, id: u64) -> (u64, u64) {
        ((id | self.preshift_mask) & self.z_mask, id)
    }
}

/// The low `bits` bits set.
fn low_bits_mask(bits: u32) -> u64 {
    1u64.checked_shl(bits).map_or(u64::MAX, |bit| bit - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cells of an 8³ shard in file order under `spec`.
    fn file_order(spec: ShardingSpec) -> Vec<[u64; 3]> {
        let bits = [3; 3];
        let order = ChunkOrder::by_layer(&spec, bits);
        let mut ids: Vec<u64> = (0..512).collect();
        ids.sort_by_key(|&id| order.key(id));
        ids.into_iter().map(|id| morton::decode(id, bits)).collect()
    }

    #[test]
    fn minishards_of_one_layer_go_layer_by_layer() {
        let cells = file_order(ShardingSpec::new(2, 7, 0).expect("spec"));
        let layers: Vec<u64> = cells.iter().map(|cell| cell[2]).collect();
        assert!(layers.is_sorted(), "{layers:?}");
        // Each minishard's four chunks (2×2 in x and y) come together, by id.
        for group in cells.chunks(4) {
            assert_eq!(
                group[0].map(|c| c / 2),
                group[3].map(|c| c / 2),
                "{group:?}"
            );
        }
    }

    #[test]
    fn one_minishard_is_plain_id_order() {
        let bits = [3; 3];
        let order = ChunkOrder::by_layer(&ShardingSpec::new(9, 0, 21).expect("spec"), bits);
        let mut ids: Vec<u64> = (512..1024).rev().collect();
        ids.sort_by_key(|&id| order.key(id));
        assert_eq!(ids, (512..1024).collect::<Vec<_>>());
    }

    #[test]
    fn a_minishards_chunks_stay_in_id_order_whatever_their_high_bits() {
        // The identity hash ignores the bits above the shard bits, so ids 0b0_0100 and
        // 0b1_0100 share a minishard (minishard bits 2–3, no shard bits) although bit 4, a z bit
        // of a grid of 1, 1 and 3 bits (x0 y0 z0 z1 z2), differs.
        let spec = ShardingSpec::new(2, 2, 0).expect("spec");
        let order = ChunkOrder::by_layer(&spec, [1, 1, 3]);
        let (low, high) = (0b0_0100, 0b1_0100);
        assert_eq!(
            spec.shard_and_minishard(low),
            spec.shard_and_minishard(high)
        );
        assert_eq!(order.key(low).0, order.key(high).0);
        assert!(order.key(low) < order.key(high));
    }

    #[test]
    fn minishards_of_two_layers_end_at_odd_layers() {
        // 5 preshift bits: x0 y0 z0 x1 y1, so a minishard is 4×4×2 chunks.
        let cells = file_order(ShardingSpec::new(5, 4, 0).expect("spec"));
        let ends: Vec<u64> = cells.chunks(32).map(|group| group[31][2]).collect();
        assert!(ends.is_sorted(), "{ends:?}");
        assert!(ends.iter().all(|z| z % 2 == 1), "{ends:?}");
    }
}
