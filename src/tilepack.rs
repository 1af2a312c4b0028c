//! The tile pack: an aligned slice cut into PNG tiles, in one object, read back tile by tile.
//!
//! Byte-compatible with the original service (docs/design.md §4). All integers are u64
//! little-endian: `width, height, tile_size`, then `n + 1` absolute offsets (the first is
//! `24 + 8·(n + 1)`), then the n PNG tiles back to back, row-major (y outer, x inner), edge tiles
//! clipped to the image. Tile i's `[start, end)` sits at bytes `[24 + 8i, 24 + 8i + 16)`, so a
//! reader needs two range reads: the offsets, then the tile ([`read_tile`]).

use crate::storage::Storage;
use crate::storage::location::ObjectPath;
use crate::{Error, Result};
use image::ImageEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use std::ops::Range;

/// Bytes before the offsets table.
pub const HEADER_BYTES: u64 = 24;

/// The largest tile [`read_tile`] fetches, in bytes. The offsets come from the pack itself, so a
/// corrupt pair could otherwise make a reader request (and allocate) gigabytes. The packs blocks
/// read have 1024² tiles: 1 MiB of pixels, and barely more as PNG even when incompressible, so
/// 64 MiB rejects only nonsense.
pub const MAX_TILE_BYTES: u64 = 64 << 20;

/// The pack's geometry, from its first 24 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TilePackHeader {
    /// Image width in pixels.
    pub width: u64,
    /// Image height in pixels.
    pub height: u64,
    /// Tile edge in pixels.
    pub tile_size: u64,
}

impl TilePackHeader {
    /// Tiles per row and per column.
    pub fn tiles_xy(&self) -> [u64; 2] {
        [
            self.width.div_ceil(self.tile_size),
            self.height.div_ceil(self.tile_size),
        ]
    }

    /// Number of tiles.
    pub fn tile_count(&self) -> u64 {
        let [nx, ny] = self.tiles_xy();
        nx * ny
    }

    /// Width and height of tile `(tx, ty)`: edge tiles are clipped.
    pub fn tile_extent(&self, tx: u64, ty: u64) -> [u64; 2] {
        [
            (self.width - tx * self.tile_size).min(self.tile_size),
            (self.height - ty * self.tile_size).min(self.tile_size),
        ]
    }

    /// Index of tile `(tx, ty)` in the pack: row-major, `ty · tiles per row + tx`.
    pub fn tile_index(&self, [tx, ty]: [u64; 2]) -> u64 {
        ty * self.tiles_xy()[0] + tx
    }

    /// Byte range holding tile `index`'s `[start, end)` pair.
    pub fn offsets_range(index: u64) -> std::ops::Range<u64> {
        HEADER_BYTES + 8 * index..HEADER_BYTES + 8 * index + 16
    }

    /// Parses the first 24 bytes; `what` names the pack in errors.
    pub fn parse(bytes: &[u8], what: &dyn std::fmt::Display) -> Result<Self> {
        let [width, height, tile_size] = read_u64s::<3>(bytes, what)?;
        if width == 0 || height == 0 || tile_size == 0 {
            return Err(Error::unreadable(
                what,
                format!(
                    "invalid tile pack header: width {width}, height {height}, tile size {tile_size}"
                ),
            ));
        }
        Ok(Self {
            width,
            height,
            tile_size,
        })
    }
}

/// Reads `N` little-endian u64s from the start of `bytes`.
pub fn read_u64s<const N: usize>(bytes: &[u8], what: &dyn std::fmt::Display) -> Result<[u64; N]> {
    if bytes.len() < 8 * N {
        return Err(Error::unreadable(
            what,
            format!(
                "truncated tile pack: expected {} bytes, got {}",
                8 * N,
                bytes.len()
            ),
        ));
    }
    let mut out = [0u64; N];
    for (i, slot) in out.iter_mut().enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[8 * i..8 * i + 8]);
        *slot = u64::from_le_bytes(word);
    }
    Ok(out)
}

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
fn encode_tile_png(pixels: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
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
        let mut tiles = Vec::new();
        let mut tile = Vec::new();
        for tx in 0..nx {
            let [tw, th] = header.tile_extent(tx, ty);
            tile.clear();
            for row in 0..th {
                let start = (row * header.width + tx * header.tile_size) as usize;
                tile.extend_from_slice(&pixels[start..start + tw as usize]);
            }
            let png = encode_tile_png(&tile, tw as u32, th as u32)?;
            let end = self.offsets.last().copied().unwrap_or_default() + png.len() as u64;
            self.offsets.push(end);
            tiles.extend_from_slice(&png);
        }
        self.next_tile_row += 1;
        Ok(tiles)
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
    let mut options = png::DecodeOptions::default();
    options.set_ignore_crc(true);
    // png skips the Adler-32 by default; here it is the one check of the pixels.
    options.set_ignore_adler32(false);
    let mut decoder = png::Decoder::new_with_options(std::io::Cursor::new(png), options);
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

/// Reads tile `(tx, ty)` of the tile pack at `pack`, which must have the geometry `expected`:
/// [`fetch_tile`], then [`FetchedTile::decode`].
///
/// Every error is [`crate::ErrorKind::UnreadableInput`] naming the pack (and the tile where it is
/// at fault), except a missing pack or a failing store, which keep the storage's error.
pub async fn read_tile(
    storage: &impl Storage,
    pack: &ObjectPath,
    expected: &TilePackHeader,
    tile: [u64; 2],
) -> Result<Tile> {
    fetch_tile(storage, pack, expected, tile).await?.decode()
}

/// A tile's PNG as read from its pack, not yet decoded: a caller that overlaps reads with
/// compute fetches the next tiles while it decodes these.
#[derive(Clone, Debug)]
pub struct FetchedTile {
    pack: ObjectPath,
    index: u64,
    extent: [u64; 2],
    png: Vec<u8>,
}

/// Where a tile's PNG lies in its pack: what [`locate_tile`] learns from the pack's header and
/// offsets, and [`fetch_located`] reads.
#[derive(Clone, Debug)]
pub struct TileLocation {
    pack: ObjectPath,
    index: u64,
    extent: [u64; 2],
    bytes: Range<u64>,
}

/// Fetches the PNG of tile `(tx, ty)` of the tile pack at `pack`, which must have the geometry
/// `expected`: [`locate_tile`], then [`fetch_located`]. Errors as [`read_tile`]'s.
pub async fn fetch_tile(
    storage: &impl Storage,
    pack: &ObjectPath,
    expected: &TilePackHeader,
    tile: [u64; 2],
) -> Result<FetchedTile> {
    let location = locate_tile(storage, pack, expected, tile).await?;
    fetch_located(storage, location).await
}

/// Reads the header of the tile pack at `pack` and the offsets up to tile `(tx, ty)`'s, in one
/// range read, and checks the pack has the geometry `expected`. Errors as [`read_tile`]'s.
pub async fn locate_tile(
    storage: &impl Storage,
    pack: &ObjectPath,
    expected: &TilePackHeader,
    [tx, ty]: [u64; 2],
) -> Result<TileLocation> {
    let index = expected.tile_index([tx, ty]);
    let offsets = TilePackHeader::offsets_range(index);
    let prefix = storage.get_range(pack, 0..offsets.end).await?;
    let header = TilePackHeader::parse(&prefix, pack)?;
    if header != *expected {
        return Err(Error::unreadable(
            pack,
            format!("tile pack is {header:?}, but the request expects {expected:?}"),
        ));
    }
    // A pack cut short inside its offsets table has fewer bytes than asked for.
    let pair = prefix.get(offsets.start as usize..).unwrap_or_default();
    let [start, end] = read_u64s::<2>(pair, pack)?;
    if start > end || end - start > MAX_TILE_BYTES {
        return Err(Error::unreadable(
            pack,
            format!("invalid offsets [{start}, {end}) for tile {index}"),
        ));
    }
    Ok(TileLocation {
        pack: pack.clone(),
        index,
        extent: header.tile_extent(tx, ty),
        bytes: start..end,
    })
}

/// Reads the tile PNG at `location`, in one range read. Errors as [`read_tile`]'s.
pub async fn fetch_located(storage: &impl Storage, location: TileLocation) -> Result<FetchedTile> {
    let TileLocation {
        pack,
        index,
        extent,
        bytes,
    } = location;
    let png = storage.get_range(&pack, bytes.clone()).await?;
    if png.len() as u64 != bytes.end - bytes.start {
        return Err(Error::unreadable(&pack, format!("truncated tile {index}")));
    }
    Ok(FetchedTile {
        pack,
        index,
        extent,
        png,
    })
}

impl FetchedTile {
    /// Decodes the tile's PNG, which must be 8-bit grayscale of the tile's extent.
    pub fn decode(&self) -> Result<Tile> {
        let [width, height] = self.extent;
        Ok(Tile {
            pixels: decode_tile(&self.png, self.extent, &self.name())?,
            width: width as usize,
            height: height as usize,
        })
    }

    /// Decodes the tile's PNG into `out` with rows `stride` bytes apart ([`decode_tile_into`]).
    pub fn decode_into(&self, out: &mut [u8], stride: usize) -> Result<()> {
        decode_tile_into(&self.png, self.extent, &self.name(), out, stride)
    }

    fn name(&self) -> TileName<'_> {
        TileName {
            pack: &self.pack,
            index: self.index,
        }
    }
}

/// Names a tile in errors: `tile 3 of 17 in bucket lab-tmp`.
struct TileName<'a> {
    pack: &'a ObjectPath,
    index: u64,
}

impl std::fmt::Display for TileName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tile {} of {}", self.index, self.pack)
    }
}

#[cfg(test)]
mod tests {
    use pollster::block_on;

    use super::*;
    use crate::ErrorKind;
    use crate::storage::location::Location;
    use crate::storage::memory::MemoryStorage;

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

    /// A 9×7 pack of 4² tiles stored as `tmp/3`, and its expected header.
    fn stored_pack(edit: impl FnOnce(&mut Vec<u8>)) -> (MemoryStorage, ObjectPath, TilePackHeader) {
        let mut pack = encode_tile_pack(&gradient(9, 7), 9, 7, 4).unwrap();
        edit(&mut pack);
        let storage = MemoryStorage::default();
        let object = Location::parse("source", "tmp").unwrap().object("3");
        block_on(storage.put(&object, &pack, "")).unwrap();
        let header = TilePackHeader {
            width: 9,
            height: 7,
            tile_size: 4,
        };
        (storage, object, header)
    }

    /// Sets tile `index`'s `[start, end)` in a pack.
    fn set_offsets(pack: &mut [u8], index: u64, start: u64, end: u64) {
        let at = TilePackHeader::offsets_range(index).start as usize;
        pack[at..at + 8].copy_from_slice(&start.to_le_bytes());
        pack[at + 8..at + 16].copy_from_slice(&end.to_le_bytes());
    }

    #[test]
    fn read_tile_reads_a_clipped_edge_tile() {
        let (storage, pack, header) = stored_pack(|_| {});
        let tile = block_on(read_tile(&storage, &pack, &header, [2, 1])).unwrap();
        assert_eq!([tile.width, tile.height], [1, 3]);
        // Column x = 8 of rows y = 4..7 of the gradient.
        let want: Vec<u8> = (4..7).map(|y| (8 * 3 + y * 7) as u8).collect();
        assert_eq!(tile.pixels, want);
    }

    #[test]
    fn read_tile_errors_name_the_pack_and_tile() {
        /// What the case breaks, how, and the start of the error message.
        type Case = (&'static str, fn(&mut Vec<u8>), &'static str);
        let cases: [Case; 4] = [
            (
                "header mismatch",
                |pack| pack[16..24].copy_from_slice(&8u64.to_le_bytes()),
                "3 in bucket tmp: tile pack is TilePackHeader { width: 9, height: 7, tile_size: 8 }, \
                 but the request expects",
            ),
            (
                "start after end",
                |pack| set_offsets(pack, 5, 900, 800),
                "3 in bucket tmp: invalid offsets [900, 800) for tile 5",
            ),
            (
                "tile too large",
                |pack| set_offsets(pack, 5, 80, 80 + MAX_TILE_BYTES + 1),
                "3 in bucket tmp: invalid offsets [80, 67108945) for tile 5",
            ),
            (
                "truncated tile",
                |pack| pack.truncate(pack.len() - 1),
                "3 in bucket tmp: truncated tile 5",
            ),
        ];
        for (name, edit, message) in cases {
            let (storage, pack, header) = stored_pack(edit);
            let e = block_on(read_tile(&storage, &pack, &header, [2, 1])).expect_err(name);
            assert_eq!(e.kind(), ErrorKind::UnreadableInput, "{name}");
            assert!(
                e.message().starts_with(message),
                "{name}: want {message:?} in {e}"
            );
        }
        // A pack cut short inside its offsets table.
        let (storage, pack, header) = stored_pack(|pack| pack.truncate(30));
        let e = block_on(read_tile(&storage, &pack, &header, [2, 1])).expect_err("short");
        assert_eq!(e.kind(), ErrorKind::UnreadableInput);
        assert_eq!(
            e.message(),
            "3 in bucket tmp: truncated tile pack: expected 16 bytes, got 0"
        );
        // A corrupt tile is named by its index and pack.
        let (storage, pack, header) = stored_pack(|pack| {
            let at = pack.len() - 20;
            pack[at..].fill(0);
        });
        let e = block_on(read_tile(&storage, &pack, &header, [2, 1])).expect_err("corrupt");
        assert_eq!(e.kind(), ErrorKind::UnreadableInput);
        assert!(
            e.message()
                .starts_with("tile 5 of 3 in bucket tmp: corrupt tile"),
            "{e}"
        );
    }

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
