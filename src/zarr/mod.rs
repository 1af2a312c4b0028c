//! OME-Zarr 0.5 output: Zarr v3 arrays with the `sharding_indexed` codec, and the OME
//! `multiscales` metadata of the group that holds them.
//!
//! Specs: Zarr v3 <https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html>, its sharding
//! codec <https://zarr-specs.readthedocs.io/en/latest/v3/codecs/sharding-indexed/index.html>, and
//! NGFF 0.5 <https://ngff.openmicroscopy.org/0.5/> (docs/design.md §"OME-Zarr output"). As
//! [`crate::precomputed`], nothing here knows emwrite's layout or does I/O: shapes come from the
//! caller ([`crate::layout::zarr_scales`]), bytes go back to it. Shapes and cells are xyz in this
//! API, as everywhere in emwrite; the files say zyx, NGFF's order for space axes.

pub mod codec;
pub mod metadata;
pub mod shard;

/// Reverses an xyz triple into the zyx order of Zarr shapes and NGFF axes.
fn zyx<T: Copy>([x, y, z]: [T; 3]) -> [T; 3] {
    [z, y, x]
}
