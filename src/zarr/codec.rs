//! The inner chunk codec of emwrite's shards: a chunk's voxels in C order (zyx, x fastest) as
//! bytes, then gzip.
//!
//! Spec: <https://zarr-specs.readthedocs.io/en/latest/v3/codecs/gzip/index.html>. gzip, not
//! zstd: `flate2` already builds for wasm32-wasip2 here (the PNG and tile packs use it), and
//! every Zarr v3 reader (tensorstore, zarr-python, Neuroglancer) decodes it. Level 1: EM voxels
//! compress little better at higher levels, and a block encodes a GiB of them.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::{Error, Result};

/// The gzip level written in the array metadata and used by [`encode_chunk`].
pub const GZIP_LEVEL: u32 = 1;

/// One chunk's voxels (C order over zyx, i.e. x fastest: the byte order of emwrite's raw
/// chunks), gzip-compressed.
///
/// ```
/// use emwrite::zarr::codec::{decode_chunk, encode_chunk};
/// let voxels: Vec<u8> = (0..=255).collect();
/// assert_eq!(decode_chunk(&encode_chunk(&voxels)?)?, voxels);
/// # Ok::<(), emwrite::Error>(())
/// ```
pub fn encode_chunk(voxels: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(voxels.len() / 2),
        Compression::new(GZIP_LEVEL),
    );
    encoder
        .write_all(voxels)
        .and_then(|()| encoder.finish())
        .map_err(|e| Error::internal(format_args!("zarr chunk: gzip: {e}")))
}

/// The voxels of a chunk [`encode_chunk`] made. Fails on bytes that are not gzip.
pub fn decode_chunk(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut voxels = Vec::new();
    GzDecoder::new(bytes)
        .read_to_end(&mut voxels)
        .map_err(|e| Error::unreadable("zarr chunk", format_args!("gzip: {e}")))?;
    Ok(voxels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_gzip_with_its_magic() {
        let voxels = vec![7u8; 64 * 64 * 64];
        let bytes = encode_chunk(&voxels).expect("encodes");
        // RFC 1952: ID1 ID2 CM=8 (deflate); a zlib stream would start 0x78.
        assert_eq!(bytes[..3], [0x1f, 0x8b, 8]);
        assert!(bytes.len() < 2048, "a uniform chunk compresses");
        assert_eq!(decode_chunk(&bytes).expect("decodes"), voxels);
    }

    #[test]
    fn a_truncated_chunk_is_an_error() {
        let voxels: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
        let bytes = encode_chunk(&voxels).expect("encodes");
        let e = decode_chunk(&bytes[..bytes.len() - 9]).expect_err("truncated");
        assert!(e.message().contains("gzip"), "{e}");
    }
}
