//! Verifying a volume's OME-Zarr image, beside or instead of its precomputed volumes: which
//! shards each block may write, and whether a shard file is whole (`verify.rs` drives both).
//!
//! The image is read from its group's `zarr.json` (`layout::zarr_group_object`): the scale-0
//! voxel size of its multiscales and the stack it records (`layout::zarr_stack_of_group`), from
//! which `layout::zarr_scales` gives every array. A block's shards are those its chunk cells
//! fall in at each scale ([`block_shards`]); a shard is whole when its index checksum holds,
//! every entry lies inside the file, and every inner chunk decodes to a full chunk
//! ([`check_shard`]).

use std::collections::HashMap;

use emwrite::layout;
use emwrite::storage::location::Location;
use emwrite::zarr::codec::decode_chunk;
use emwrite::zarr::metadata::{ZarrScale, first_resolution_nm};
use emwrite::zarr::shard::decode_shard;

use crate::embed::store::HostStore;
use crate::error::HostError;

/// The OME-Zarr image at `dest`: `None` when it has none, `Some(Err(problem))` when its metadata
/// is unusable, else its arrays and the stack it records.
pub async fn load(
    store: &HostStore,
    dest: &Location,
) -> Result<Option<Result<Image, String>>, HostError> {
    let object = layout::zarr_group_object(dest);
    let Some(bytes) = super::read_if_present(store, &object).await? else {
        return Ok(None);
    };
    let image = first_resolution_nm(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|resolution| {
            let (bbox, minz, maxz) = layout::zarr_stack_of_group(&bytes)
                .ok_or_else(|| format!("records no {}", layout::ZARR_STACK_ATTRIBUTE))?;
            let scales =
                layout::zarr_scales(bbox, minz, maxz, resolution).map_err(|e| e.to_string())?;
            Ok(Image {
                scales,
                stack: (bbox, minz, maxz),
            })
        })
        .map_err(|problem| format!("{}: {problem}", object.name));
    Ok(Some(image))
}

/// An OME-Zarr image as its group's metadata describes it.
pub struct Image {
    /// Its arrays, finest first.
    pub scales: Vec<ZarrScale>,
    /// `(bbox, minz, maxz)` of the stack it was made from.
    pub stack: ([u32; 2], u32, u32),
}

/// The shards of the image `block` may write, by name below the destination, each with its
/// array.
pub fn block_shards(scales: &[ZarrScale], block: [u32; 3]) -> HashMap<String, ZarrScale> {
    let mut shards = HashMap::new();
    // The arrays are layout::zarr_scales of their first one's voxel size.
    let shifts = scales
        .first()
        .map(|scale0| layout::scale_shifts(scale0.resolution_nm));
    for (scale, shift) in scales.iter().zip(shifts.into_iter().flatten()) {
        let grid = std::array::from_fn(|axis| scale.shape[axis] / scale.chunk_shape[axis]);
        let cells = layout::block_cells(block.map(u64::from), shift, grid);
        let per = scale.chunks_per_shard();
        let range = |axis: usize| {
            let cells = &cells[axis];
            cells.start / per[axis]..cells.end.div_ceil(per[axis])
        };
        for z in range(2) {
            for y in range(1) {
                for x in range(0) {
                    let name = layout::zarr_shard_name(scale, [x, y, z]);
                    shards.insert(name, scale.clone());
                }
            }
        }
    }
    shards
}

/// Parses the shard file `name` of `scale` and decodes every inner chunk: the problems and the
/// number of chunks decoded.
pub fn check_shard(name: &str, bytes: &[u8], scale: &ZarrScale) -> (Vec<String>, u64) {
    let chunks = match decode_shard(bytes, scale.chunks_per_shard()) {
        Ok(chunks) => chunks,
        Err(e) => return (vec![format!("{name}: {e}")], 0),
    };
    let full = scale.chunk_shape.iter().product::<u64>() as usize;
    let mut problems = Vec::new();
    let mut decoded = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        let Some(chunk) = chunk else { continue };
        match decode_chunk(chunk) {
            Ok(voxels) if voxels.len() == full => decoded += 1,
            Ok(voxels) => problems.push(format!(
                "{name}: inner chunk {i}: {} voxels, expected {full}",
                voxels.len()
            )),
            Err(e) => problems.push(format!("{name}: inner chunk {i}: {e}")),
        }
    }
    if decoded == 0 && problems.is_empty() {
        problems.push(format!("{name}: holds no chunk"));
    }
    (problems, decoded)
}

#[cfg(test)]
mod tests {
    use emwrite::zarr::codec::encode_chunk;
    use emwrite::zarr::shard::ShardBuilder;

    use super::*;

    fn scales() -> Vec<ZarrScale> {
        layout::zarr_scales([2048, 1024], 0, 1000, [8.0; 3]).expect("scales")
    }

    #[test]
    fn a_block_owns_8_shards_at_scale_0_and_1_at_each_coarser_scale() {
        let shards = block_shards(&scales(), [1, 0, 0]);
        let mut names: Vec<&str> = shards.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names.len(), 8 + 4);
        assert_eq!(names[0], "ome-zarr/0/c/0/0/2");
        assert_eq!(names[7], "ome-zarr/0/c/1/1/3");
        assert_eq!(
            names[8..],
            [
                "ome-zarr/1/c/0/0/1",
                "ome-zarr/2/c/0/0/1",
                "ome-zarr/3/c/0/0/1",
                "ome-zarr/4/c/0/0/1"
            ]
        );
    }

    #[test]
    fn a_whole_shard_passes_and_damage_is_named() {
        let scale = &scales()[4];
        let mut shard = ShardBuilder::new(scale.chunks_per_shard()).expect("one chunk");
        shard
            .add_chunk(
                [0, 0, 0],
                &encode_chunk(&vec![9; 64 * 64 * 64]).expect("gzip"),
            )
            .expect("inside");
        let bytes = shard.finish();
        assert_eq!(check_shard("s", &bytes, scale), (Vec::new(), 1));
        let (problems, decoded) = check_shard("s", &bytes[1..], scale);
        assert_eq!(decoded, 0);
        assert!(problems[0].starts_with("s: "), "{problems:?}");
        let mut short = ShardBuilder::new(scale.chunks_per_shard()).expect("one chunk");
        short
            .add_chunk([0, 0, 0], &encode_chunk(&[9; 10]).expect("gzip"))
            .expect("inside");
        let (problems, _) = check_shard("s", &short.finish(), scale);
        assert_eq!(problems, ["s: inner chunk 0: 10 voxels, expected 262144"]);
    }
}
