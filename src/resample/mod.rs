//! Resampling a raw slice through its affine transform into the aligned frame.

pub mod affine;
pub mod bicubic;
mod cubic32;
