//! Decoding a tile pack's tiles, within limits: the packs are read back by other tasks, so a
//! corrupt or hostile tile is refused before anything of its claimed size is allocated.

use crate::slice_image::png_decode_options;
use crate::{Error, Result};

/// Decodes one tile's PNG, which must be 8-bit grayscale of `extent`, into a buffer of its own
/// ([`decode_tile_into`] decodes in place).
pub fn decode_tile(png: &[u8], extent: [u64; 2], what: &dyn std::fmt::Display) -> Result<Vec<u8>> {
    let OpenTile {
        mut reader,
        width,
        height,
    } = open_tile(png, extent, what)?;
    let mut pixels = vec![0; width * height];
    reader
        .next_frame(&mut pixels)
        .map_err(|e| corrupt_tile(what, e))?;
    Ok(pixels)
}

/// Decodes one tile's PNG, which must be 8-bit grayscale of `extent`, into `out`: row `y` of
/// the tile goes to `out[y * stride..][..width]`, so a full tile lands straight in its slice of
/// a block's slab.
pub fn decode_tile_into(
    png: &[u8],
    extent: [u64; 2],
    what: &dyn std::fmt::Display,
    out: &mut [u8],
    stride: usize,
) -> Result<()> {
    let OpenTile {
        mut reader,
        width,
        height,
    } = open_tile(png, extent, what)?;
    let fits = stride >= width
        && height
            .checked_sub(1)
            .and_then(|rows| rows.checked_mul(stride)?.checked_add(width))
            .is_some_and(|needed| needed <= out.len());
    if !fits {
        return Err(Error::internal(format_args!(
            "{what}: a {width}×{height} tile does not fit {} bytes at stride {stride}",
            out.len()
        )));
    }
    if stride == width {
        reader
            .next_frame(&mut out[..width * height])
            .map_err(|e| corrupt_tile(what, e))?;
    } else {
        let mut pixels = vec![0; width * height];
        reader
            .next_frame(&mut pixels)
            .map_err(|e| corrupt_tile(what, e))?;
        for (row, pixels) in pixels.chunks_exact(width).enumerate() {
            out[row * stride..][..width].copy_from_slice(pixels);
        }
    }
    Ok(())
}

/// A tile's PNG whose header has been read and checked, ready for the pixels.
struct OpenTile<'p> {
    reader: png::Reader<std::io::Cursor<&'p [u8]>>,
    width: usize,
    height: usize,
}

/// Reads a tile's PNG header and checks it: 8-bit grayscale of `extent`.
///
/// The header is checked before any pixel is decoded: the pack is untrusted, and a corrupt tile
/// claiming a larger size must be refused before anything of that size is allocated.
///
/// The chunks' CRC-32s are not checked. In wasm, which has no carry-less multiply, a 1024² tile
/// decodes in ~0.9 ms with them and 0.25 ms without (~0.7 s of a 1024³ block's 1024 tiles), and
/// they guard the same pixels as the zlib stream's Adler-32, which is still checked, as are its
/// stored blocks' lengths and this header's fields (docs/design.md §5, tile pack).
fn open_tile<'p>(
    png: &'p [u8],
    extent: [u64; 2],
    what: &dyn std::fmt::Display,
) -> Result<OpenTile<'p>> {
    let mut decoder =
        png::Decoder::new_with_options(std::io::Cursor::new(png), png_decode_options());
    decoder.set_transformations(png::Transformations::IDENTITY);
    let reader = decoder.read_info().map_err(|e| corrupt_tile(what, e))?;
    let info = reader.info();
    if (info.color_type, info.bit_depth) != (png::ColorType::Grayscale, png::BitDepth::Eight) {
        return Err(Error::unreadable(what, "tile is not 8-bit grayscale"));
    }
    let (width, height) = (info.width, info.height);
    if [u64::from(width), u64::from(height)] != extent {
        return Err(Error::unreadable(
            what,
            format!(
                "tile is {width}×{height}, expected {}×{}",
                extent[0], extent[1]
            ),
        ));
    }
    Ok(OpenTile {
        reader,
        // u32 to usize: lossless on every target emwrite builds for (32 and 64 bits).
        width: width as usize,
        height: height as usize,
    })
}

fn corrupt_tile(what: &dyn std::fmt::Display, error: png::DecodingError) -> Error {
    Error::unreadable(what, format!("corrupt tile: {error}"))
}

/// One decoded tile: 8-bit grayscale pixels, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tile {
    /// `width × height` pixels.
    pub pixels: Vec<u8>,
    /// Width in pixels (clipped at the image's right edge).
    pub width: usize,
    /// Height in pixels (clipped at the image's bottom edge).
    pub height: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tilepack::builder::encode_tile_png;
    use crate::tilepack::{TilePackHeader, encode_png};

    /// A PNG of `width × height` gray pixels whose data is that of a 1×1 image: a corrupt tile
    /// whose header claims any size, with a valid CRC so that the claim is believed.
    fn png_claiming(width: u32, height: u32) -> Vec<u8> {
        let mut png = encode_png(&[0], 1, 1).unwrap();
        // IHDR's data starts after the signature (8), its length (4) and type (4) bytes.
        png[16..20].copy_from_slice(&width.to_be_bytes());
        png[20..24].copy_from_slice(&height.to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&png[12..29]);
        png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
        png
    }

    #[test]
    fn tile_size_is_checked_before_its_pixels_are_allocated() {
        // 16384² is 256 MiB, under the image crate's default limit: decoding first would
        // allocate it all and only then fail on the missing pixels (found by the tile_pack
        // fuzz target).
        let e = decode_tile(&png_claiming(16384, 16384), [4, 4], &"t").unwrap_err();
        assert_eq!(e.to_string(), "t: tile is 16384×16384, expected 4×4");
        let e = decode_tile(&png_claiming(1, 1 << 21), [1, 3], &"t").unwrap_err();
        assert_eq!(e.to_string(), "t: tile is 1×2097152, expected 1×3");
    }

    #[test]
    fn tiles_decode_in_place_at_a_stride() {
        let pixels: Vec<u8> = (0..6).collect();
        let png = encode_tile_png(&pixels, 3, 2).unwrap();
        let mut slab = vec![9; 10];
        decode_tile_into(&png, [3, 2], &"t", &mut slab, 5).unwrap();
        assert_eq!(slab, [0, 1, 2, 9, 9, 3, 4, 5, 9, 9]);
        let mut exact = vec![9; 6];
        decode_tile_into(&png, [3, 2], &"t", &mut exact, 3).unwrap();
        assert_eq!(exact, pixels);
        let e = decode_tile_into(&png, [3, 2], &"t", &mut [0; 7], 5).unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
    }

    #[test]
    fn a_changed_pixel_is_caught_without_the_chunk_crcs() {
        // Stored deflate: the pixels sit in the file as they are, each row after its filter byte.
        let pixels = vec![7u8; 64 * 64];
        let mut png = encode_tile_png(&pixels, 64, 64).unwrap();
        let at = png
            .windows(65)
            .position(|row| row[0] == 0 && row[1..].iter().all(|&p| p == 7))
            .expect("a stored row");
        png[at + 10] = 8;
        let e = decode_tile(&png, [64, 64], &"t").unwrap_err();
        assert!(e.to_string().starts_with("t: corrupt tile:"), "{e}");
    }

    #[test]
    fn truncated_header_and_bad_tiles_are_errors() {
        assert!(TilePackHeader::parse(&[0u8; 10], &"p").is_err());
        assert!(decode_tile(b"not a png", [1, 1], &"t").is_err());
        let png = encode_png(&[1, 2, 3, 4], 2, 2).unwrap();
        let e = decode_tile(&png, [3, 2], &"t").unwrap_err();
        assert_eq!(e.to_string(), "t: tile is 2×2, expected 3×2");
    }
}
