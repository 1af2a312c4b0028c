//! Tools over a written volume: verifying it block by block, serving it to Neuroglancer, and the
//! viewer's link.

pub mod neuroglancer;
pub mod verify;
pub mod verify_zarr;
pub mod view;
