//! emwrite: aligned EM slices and Neuroglancer precomputed volumes, as a WASI component.
//!
//! The crate is the processing core (request parsing, the affine resampler, the tile pack, the
//! precomputed format and the block engine's streaming pyramid, all over the
//! [`storage::Storage`] trait) and,
//! built for `wasm32-wasip2`, the component that exports one WIT interface per endpoint plus
//! `wasi:http/incoming-handler`. See `../README.md` and `wit/` for the outside view.

pub mod block;
pub mod endpoint;
pub mod error;
pub mod guest_env;
pub mod layout;
pub mod png_rows;
pub mod precomputed;
pub mod request;
pub mod resample;
pub mod slice_image;
pub mod storage;
pub mod tasks;
pub mod tilepack;
pub mod window;
pub mod zarr;

#[cfg(any(target_family = "wasm", feature = "spin"))]
pub mod component;

pub use error::{Error, ErrorBody, ErrorKind, Result};
