//! Making tile packs: whole images at once, or row of tiles by row of tiles as an aligned slice
//! is computed strip by strip.

use image::ImageEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};

use super::{HEADER_BYTES, TilePackHeader};
use crate::{Error, Result};

/// Encodes an 8-bit grayscale image as a PNG, fast: these are intermediate and output files of a
/// batch job, where encode time matters more than the last percent of size.
pub fn encode_png(pixels: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(pixels.len() / 2 + 1024);
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
        .write_image(pixels, width, height, image::ExtendedColorType::L8)
        .map_err(|e| Error::internal(format!("encoding a {width}×{height} png: {e}")))?;
    Ok(out)
}

/// Encodes one tile of a pack as a PNG that decodes as fast as a PNG can: stored (uncompressed)
/// deflate blocks and no filter, so decoding is a copy plus the checksums. The packs are temporary
/// and EM tiles barely compress (about 78% of raw with [`encode_png`]'s settings on EM-like data),
/// while inflating and unfiltering made the tile decode most of a tile read in wasm (≈10 ms per
/// 1024² tile, against ≈1 ms stored; `benches/codec.rs`). Any PNG reader, the original's
/// included, still reads them.
pub(super) fn encode_tile_png(pixels: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(pixels.len() + pixels.len() / 1024 + 1024);
    PngEncoder::new_with_quality(
        &mut out,
        CompressionType::Uncompressed,
        FilterType::NoFilter,
    )
    .write_image(pixels, width, height, image::ExtendedColorType::L8)
    .map_err(|e| Error::internal(format!("encoding a {width}×{height} tile png: {e}")))?;
    Ok(out)
}

/// The length of the PNG [`encode_tile_png`] makes of a `width × height` tile, which depends on
/// nothing else: the signature (8 bytes), IHDR (25), one IDAT (12 + the zlib stream), IEND (12);
/// the zlib stream is its header (2), the rows with their filter byte in stored blocks of at
/// most 65,535 bytes with 5 bytes of header each (one block at least), and the Adler-32 (4).
/// A pack of ours is therefore laid out by its geometry alone
/// ([`TilePackHeader::stored_place`]).
pub fn stored_tile_len([width, height]: [u64; 2]) -> u64 {
    const STORED_BLOCK: u64 = u16::MAX as u64;
    let raw = height * (width + 1);
    let blocks = raw.div_ceil(STORED_BLOCK).max(1);
    8 + 25 + 12 + (2 + 5 * blocks + raw + 4) + 12
}

/// Cuts `pixels` (`width × height`, row-major) into tiles of `tile_size` and packs them.
///
/// ```
/// use emwrite::tilepack::{encode_tile_pack, TilePackHeader};
/// let pack = encode_tile_pack(&[7u8; 5 * 3], 5, 3, 4).unwrap();
/// let header = TilePackHeader::parse(&pack, &"pack").unwrap();
/// assert_eq!(header.tile_count(), 2);
/// ```
pub fn encode_tile_pack(pixels: &[u8], width: u32, height: u32, tile_size: u32) -> Result<Vec<u8>> {
    let mut builder = TilePackBuilder::new(width, height, tile_size);
    let mut tiles = Vec::new();
    for tile_row in pixels.chunks(builder.tile_row_bytes()) {
        tiles.extend_from_slice(&builder.encode_tile_row(tile_row)?);
    }
    let mut pack = builder.prefix()?;
    pack.extend_from_slice(&tiles);
    Ok(pack)
}

/// Builds a tile pack one row of tiles at a time, for images not held whole: the tiles go out
/// as each row of them is encoded, and the header and offsets, which precede them in the pack
/// but depend on their sizes, come last ([`Self::prefix`], [`Self::prefix_len`] bytes).
#[derive(Clone, Debug)]
pub struct TilePackBuilder {
    header: TilePackHeader,
    /// The absolute offsets so far: the first tile's start, then each encoded tile's end.
    offsets: Vec<u64>,
    /// The next row of tiles to encode.
    next_tile_row: u64,
}

impl TilePackBuilder {
    /// A builder of the pack of a `width × height` image (both ≥ 1) in tiles of `tile_size`
    /// (≥ 1).
    pub fn new(width: u32, height: u32, tile_size: u32) -> Self {
        let header = TilePackHeader {
            width: width.into(),
            height: height.into(),
            tile_size: tile_size.into(),
        };
        let data_start = HEADER_BYTES + 8 * (header.tile_count() + 1);
        Self {
            header,
            offsets: vec![data_start],
            next_tile_row: 0,
        }
    }

    /// Bytes before the first tile: the header and the `n + 1` offsets.
    pub fn prefix_len(&self) -> u64 {
        HEADER_BYTES + 8 * (self.header.tile_count() + 1)
    }

    /// Bytes of image pixels in one full row of tiles: `tile_size` image rows.
    pub fn tile_row_bytes(&self) -> usize {
        (self.header.tile_size * self.header.width) as usize
    }

    /// Encodes the next row of tiles from `pixels`, its image rows (`tile_size` rows of `width`,
    /// fewer in the last row of tiles), and returns their PNGs back to back, left to right.
    pub fn encode_tile_row(&mut self, pixels: &[u8]) -> Result<Vec<u8>> {
        let mut tiles = Vec::new();
        for png in self.tiles_of_row(pixels)? {
            tiles.extend_from_slice(&png?);
        }
        Ok(tiles)
    }

    /// The next row of tiles from `pixels` (as [`Self::encode_tile_row`] takes them), each
    /// tile's PNG encoded as the iterator reaches it, left to right: a caller that writes each
    /// out before taking the next holds one tile, not a row of them (34 MiB at 34,432 wide). A
    /// row not taken to its end leaves the pack short, which [`Self::prefix`] refuses.
    pub fn tiles_of_row<'b>(
        &'b mut self,
        pixels: &'b [u8],
    ) -> Result<impl Iterator<Item = Result<Vec<u8>>> + 'b> {
        let header = self.header;
        let ty = self.next_tile_row;
        let [nx, ny] = header.tiles_xy();
        let rows = if ty < ny {
            header.tile_extent(0, ty)[1]
        } else {
            0
        };
        if rows == 0 || pixels.len() as u64 != rows * header.width {
            return Err(Error::internal(format!(
                "tile row {ty} of {ny}: expected {} bytes of pixels, got {}",
                rows * header.width,
                pixels.len()
            )));
        }
        self.next_tile_row += 1;
        let mut tile = Vec::new();
        Ok((0..nx).map(move |tx| {
            let [tw, th] = header.tile_extent(tx, ty);
            tile.clear();
            for row in 0..th {
                let start = (row * header.width + tx * header.tile_size) as usize;
                tile.extend_from_slice(&pixels[start..start + tw as usize]);
            }
            let png = encode_tile_png(&tile, tw as u32, th as u32)?;
            let end = self.offsets.last().copied().unwrap_or_default() + png.len() as u64;
            self.offsets.push(end);
            Ok(png)
        }))
    }

    /// The header and offsets, once every row of tiles is encoded: [`Self::prefix_len`] bytes.
    pub fn prefix(&self) -> Result<Vec<u8>> {
        let header = self.header;
        if self.offsets.len() as u64 != header.tile_count() + 1 {
            return Err(Error::internal(format!(
                "tile pack prefix asked for after {} of {} tiles",
                self.offsets.len() - 1,
                header.tile_count()
            )));
        }
        let mut prefix = Vec::with_capacity(self.prefix_len() as usize);
        for word in [header.width, header.height, header.tile_size]
            .into_iter()
            .chain(self.offsets.iter().copied())
        {
            prefix.extend_from_slice(&word.to_le_bytes());
        }
        Ok(prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tilepack::{decode_tile, read_u64s};

    fn gradient(w: u32, h: u32) -> Vec<u8> {
        (0..w * h)
            .map(|i| ((i % w) * 3 + (i / w) * 7) as u8)
            .collect()
    }

    /// The pack of the 3×2 image [10 20 30 / 40 50 60] in tiles of 2: tile 0 is 2×2, tile 1 the
    /// clipped 1×2 column. Header and offsets are the original's layout; the PNGs are the png
    /// crate's Fast encoder output (a stored deflate block, no filtering), written out so that any
    /// change to the bytes we write shows up here.
    #[rustfmt::skip]
    const THREE_BY_TWO_PACK: [u8; 194] = [
        // header: u64 LE width, height, tile size
        3, 0, 0, 0, 0, 0, 0, 0,                      // width = 3
        2, 0, 0, 0, 0, 0, 0, 0,                      // height = 2
        2, 0, 0, 0, 0, 0, 0, 0,                      // tile size = 2
        // n + 1 = 3 absolute offsets
        48, 0, 0, 0, 0, 0, 0, 0,                     // tile 0 starts after 24 + 3·8 bytes
        122, 0, 0, 0, 0, 0, 0, 0,                    // tile 1 = 48 + 74
        194, 0, 0, 0, 0, 0, 0, 0,                    // end of the pack = 122 + 72
        // tile 0: a 74-byte PNG, 2×2
        137, 80, 78, 71, 13, 10, 26, 10,             // PNG signature
        0, 0, 0, 13, 73, 72, 68, 82,                 // IHDR, 13 bytes
        0, 0, 0, 2, 0, 0, 0, 2, 8, 0, 0, 0, 0,       // 2 × 2, 8-bit grey, no interlace
        87, 221, 82, 248,                            // CRC
        0, 0, 0, 17, 73, 68, 65, 84,                 // IDAT, 17 bytes
        120, 1,                                      // zlib header
        1, 6, 0, 249, 255,                           // final stored block, 6 bytes
        0, 10, 20,                                   // row 0: filter none, pixels
        0, 40, 50,                                   // row 1
        1, 10, 0, 121,                               // Adler-32
        30, 109, 235, 7,                             // CRC
        0, 0, 0, 0, 73, 69, 78, 68, 174, 66, 96, 130, // IEND
        // tile 1: a 72-byte PNG, 1×2
        137, 80, 78, 71, 13, 10, 26, 10,             // PNG signature
        0, 0, 0, 13, 73, 72, 68, 82,                 // IHDR, 13 bytes
        0, 0, 0, 1, 0, 0, 0, 2, 8, 0, 0, 0, 0,       // 1 × 2, 8-bit grey, no interlace
        188, 234, 233, 251,                          // CRC
        0, 0, 0, 15, 73, 68, 65, 84,                 // IDAT, 15 bytes
        120, 1,                                      // zlib header
        1, 4, 0, 251, 255,                           // final stored block, 4 bytes
        0, 30,                                       // row 0
        0, 60,                                       // row 1
        0, 154, 0, 91,                               // Adler-32
        74, 74, 92, 100,                             // CRC
        0, 0, 0, 0, 73, 69, 78, 68, 174, 66, 96, 130, // IEND
    ];

    #[test]
    fn layout_matches_the_original_byte_for_byte() {
        let pack = encode_tile_pack(&[10, 20, 30, 40, 50, 60], 3, 2, 2).unwrap();
        assert_eq!(pack[..48], THREE_BY_TWO_PACK[..48], "header and offsets");
        // The tiles decode to the image's pixels, whatever the PNG encoder's choices.
        assert_eq!(
            decode_tile(&pack[48..122], [2, 2], &"tile 0").unwrap(),
            [10, 20, 40, 50]
        );
        assert_eq!(
            decode_tile(&pack[122..], [1, 2], &"tile 1").unwrap(),
            [30, 60]
        );
        assert_eq!(pack, THREE_BY_TWO_PACK);

        // The same rules on a pack whose PNGs are not written out.
        let pack = encode_tile_pack(&gradient(5, 3), 5, 3, 4).unwrap();
        let words = read_u64s::<6>(&pack, &"pack").unwrap();
        assert_eq!(words[..3], [5, 3, 4]); // width, height, tile size
        assert_eq!(words[3], 24 + 8 * 3); // first offset: header + 3 offsets (2 tiles + 1)
        assert_eq!(words[5], pack.len() as u64); // last offset: end of the pack
        assert!(words[4] > words[3] && words[4] < words[5]);
    }

    #[test]
    fn stored_tiles_have_the_length_their_extent_gives() {
        // Rows of 65,535 bytes with their filter bytes, one stored block each at 255 × 257
        // (254 + 1 = 255 bytes a row) and two at 254 × 514, around the block boundary, a row
        // and a column, and the tiles a 1024 pack holds.
        for extent in [
            [1, 1],
            [2, 2],
            [254, 257],
            [254, 514],
            [65_534, 1],
            [65_535, 1],
            [1, 40_000],
            [1024, 1024],
            [1024, 17],
            [31, 1024],
        ] {
            let [w, h] = extent.map(|n| n as u32);
            let png = encode_tile_png(&gradient(w, h), w, h).unwrap();
            assert_eq!(stored_tile_len(extent), png.len() as u64, "{extent:?}");
        }
    }

    #[test]
    fn the_builder_refuses_rows_out_of_turn() {
        let mut builder = TilePackBuilder::new(5, 3, 2);
        assert_eq!(builder.prefix_len(), 24 + 8 * 7);
        assert!(builder.prefix().is_err(), "no tiles yet");
        assert!(builder.encode_tile_row(&[0; 9]).is_err(), "wrong length");
        builder.encode_tile_row(&[0; 10]).unwrap();
        builder.encode_tile_row(&[0; 5]).unwrap();
        assert!(
            builder.encode_tile_row(&[0; 5]).is_err(),
            "past the last row"
        );
        assert_eq!(builder.prefix().unwrap().len() as u64, builder.prefix_len());
    }

    #[test]
    fn tiles_round_trip_with_clipped_edges() {
        let (w, h, t) = (9u32, 7u32, 4u32);
        let pixels = gradient(w, h);
        let pack = encode_tile_pack(&pixels, w, h, t).unwrap();
        let header = TilePackHeader::parse(&pack, &"pack").unwrap();
        assert_eq!(header.tiles_xy(), [3, 2]);
        for ty in 0..2 {
            for tx in 0..3 {
                let i = ty * 3 + tx;
                let r = TilePackHeader::offsets_range(i);
                let [start, end] =
                    read_u64s::<2>(&pack[r.start as usize..r.end as usize], &"pack").unwrap();
                let extent = header.tile_extent(tx, ty);
                let tile =
                    decode_tile(&pack[start as usize..end as usize], extent, &"tile").unwrap();
                for row in 0..extent[1] {
                    for col in 0..extent[0] {
                        let (x, y) = (tx * 4 + col, ty * 4 + row);
                        assert_eq!(
                            tile[(row * extent[0] + col) as usize],
                            pixels[(y * 9 + x) as usize]
                        );
                    }
                }
            }
        }
    }
}
