//! The tile pack: an aligned slice cut into PNG tiles, in one object, read back tile by tile.
//!
//! Byte-compatible with the original service (docs/design.md §4). All integers are u64
//! little-endian: `width, height, tile_size`, then `n + 1` absolute offsets (the first is
//! `24 + 8·(n + 1)`), then the n PNG tiles back to back, row-major (y outer, x inner), edge tiles
//! clipped to the image. Tile i's `[start, end)` sits at bytes `[24 + 8i, 24 + 8i + 16)`, so a
//! reader needs two range reads: the offsets ([`TilePackHeader::locate`] says where the tile
//! is), then the tile. In a pack emwrite built, one is enough: its stored tiles lie where the
//! geometry puts them ([`TilePackHeader::stored_place`], checked by [`is_stored_tile`]).
//!
//! The format does no I/O: `builder.rs` makes packs ([`TilePackBuilder`], [`encode_tile_pack`]),
//! `decode.rs` decodes tiles ([`decode_tile`]), and the reads are the task's
//! (`tasks::tile_reads`).

mod builder;
mod decode;

use std::ops::Range;

use crate::slice_image::PNG_SIGNATURE;
use crate::{Error, Result};

pub use builder::{TilePackBuilder, encode_png, encode_tile_pack, stored_tile_len};
pub use decode::{Tile, decode_tile, decode_tile_into};

/// Bytes before the offsets table.
pub const HEADER_BYTES: u64 = 24;

/// The largest tile [`TilePackHeader::locate`] accepts, in bytes. The offsets come from the pack itself, so a
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
    pub fn offsets_range(index: u64) -> Range<u64> {
        HEADER_BYTES + 8 * index..HEADER_BYTES + 8 * index + 16
    }

    /// Where tile `(tx, ty)` lies in a pack with this geometry whose first bytes are `prefix`
    /// (the header and the offsets through the tile's, [`TilePackHeader::offsets_range`]`.end`
    /// bytes, or fewer if the pack is shorter): checks that the pack's header is this one and
    /// that the tile's offsets are sane (`start ≤ end`, at most [`MAX_TILE_BYTES`] apart), so a
    /// reader can fetch the tile with one range read. `what` names the pack in errors, which are
    /// [`crate::ErrorKind::UnreadableInput`].
    ///
    /// ```
    /// use emwrite::tilepack::{TilePackHeader, encode_tile_pack};
    /// let pack = encode_tile_pack(&[7u8; 5 * 3], 5, 3, 4)?;
    /// let header = TilePackHeader { width: 5, height: 3, tile_size: 4 };
    /// let tile = header.locate(&pack, [1, 0], &"pack")?;
    /// assert_eq!((tile.index, tile.extent), (1, [1, 3]));
    /// assert_eq!(tile.bytes.end, pack.len() as u64);
    /// # Ok::<(), emwrite::Error>(())
    /// ```
    pub fn locate(
        &self,
        prefix: &[u8],
        [tx, ty]: [u64; 2],
        what: &dyn std::fmt::Display,
    ) -> Result<TilePlace> {
        let index = self.tile_index([tx, ty]);
        let header = Self::parse(prefix, what)?;
        if header != *self {
            return Err(Error::unreadable(
                what,
                format!("tile pack is {header:?}, but the request expects {self:?}"),
            ));
        }
        // A pack cut short inside its offsets table has fewer bytes than asked for.
        let offsets = Self::offsets_range(index);
        let pair = prefix.get(offsets.start as usize..).unwrap_or_default();
        let [start, end] = read_u64s::<2>(pair, what)?;
        if start > end || end - start > MAX_TILE_BYTES {
            return Err(Error::unreadable(
                what,
                format!("invalid offsets [{start}, {end}) for tile {index}"),
            ));
        }
        Ok(TilePlace {
            index,
            extent: self.tile_extent(tx, ty),
            bytes: start..end,
        })
    }

    /// Where tile `(tx, ty)` lies in a pack of this geometry that emwrite built: its tiles are
    /// stored PNGs whose lengths follow from their extents ([`stored_tile_len`]), so a reader
    /// can fetch a tile without reading the offsets first. Another writer's pack (the
    /// original's compresses its tiles) has other places: check what is read there with
    /// [`is_stored_tile`], and [`Self::locate`] the tile when it is not.
    pub fn stored_place(&self, [tx, ty]: [u64; 2]) -> TilePlace {
        let [nx, _] = self.tiles_xy();
        let row_len = |ty: u64| -> u64 {
            let [w, h] = self.tile_extent(0, ty);
            let last = self.tile_extent(nx - 1, ty);
            (nx - 1) * stored_tile_len([w, h]) + stored_tile_len(last)
        };
        let rows: u64 = if ty == 0 {
            0
        } else {
            // Every row above is full height, so all but its last tile are the same.
            ty * row_len(0)
        };
        let extent = self.tile_extent(tx, ty);
        let start = HEADER_BYTES
            + 8 * (self.tile_count() + 1)
            + rows
            + tx * stored_tile_len(self.tile_extent(0, ty));
        TilePlace {
            index: self.tile_index([tx, ty]),
            extent,
            bytes: start..start + stored_tile_len(extent),
        }
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

/// Where one tile lies in its pack ([`TilePackHeader::locate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TilePlace {
    /// The tile's index in the pack, row-major.
    pub index: u64,
    /// Its width and height in pixels (clipped at the image's edges).
    pub extent: [u64; 2],
    /// Its PNG's bytes in the pack.
    pub bytes: Range<u64>,
}

/// Whether `png`, read at a tile's [`TilePackHeader::stored_place`], is that tile: a PNG
/// signature, an 8-bit grayscale IHDR of `extent`, and its IEND chunk exactly at the end of
/// the bytes, whose length the place gave. In another writer's pack the bytes there are the
/// middle or the end of other tiles, or a tile of another length, and fail this; the pixels
/// are checked again as they are decoded (the zlib stream's lengths and Adler-32).
pub fn is_stored_tile(png: &[u8], extent: [u64; 2]) -> bool {
    const IHDR: &[u8] = b"\0\0\0\x0dIHDR";
    const IEND: &[u8] = b"\0\0\0\0IEND\xae\x42\x60\x82";
    let [width, height] = extent;
    let (Ok(width), Ok(height)) = (u32::try_from(width), u32::try_from(height)) else {
        return false;
    };
    png.len() as u64 == stored_tile_len(extent)
        && png.starts_with(PNG_SIGNATURE)
        && png[8..].starts_with(IHDR)
        && png[16..20] == width.to_be_bytes()
        && png[20..24] == height.to_be_bytes()
        // 8-bit depth, grayscale (colour type 0).
        && png[24..26] == [8, 0]
        && png.ends_with(IEND)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    /// A 9×7 pack of 4² tiles with `edit` applied, and its expected header.
    fn pack(edit: impl FnOnce(&mut Vec<u8>)) -> (Vec<u8>, TilePackHeader) {
        let pixels: Vec<u8> = (0..63).collect();
        let mut pack = encode_tile_pack(&pixels, 9, 7, 4).expect("encodes");
        edit(&mut pack);
        let header = TilePackHeader {
            width: 9,
            height: 7,
            tile_size: 4,
        };
        (pack, header)
    }

    /// Sets tile `index`'s `[start, end)` in a pack.
    fn set_offsets(pack: &mut [u8], index: u64, start: u64, end: u64) {
        let at = TilePackHeader::offsets_range(index).start as usize;
        pack[at..at + 8].copy_from_slice(&start.to_le_bytes());
        pack[at + 8..at + 16].copy_from_slice(&end.to_le_bytes());
    }

    #[test]
    fn locate_finds_a_clipped_edge_tile() {
        let (pack, header) = pack(|_| {});
        let place = header.locate(&pack, [2, 1], &"p").expect("a good pack");
        assert_eq!((place.index, place.extent), (5, [1, 3]));
        assert_eq!(place.bytes.end, pack.len() as u64);
        // The prefix through the tile's offsets is enough.
        let prefix = &pack[..TilePackHeader::offsets_range(5).end as usize];
        assert_eq!(header.locate(prefix, [2, 1], &"p").expect("prefix"), place);
    }

    #[test]
    fn stored_places_are_where_the_offsets_say() {
        // Clipped columns and rows, one and several tiles, one stored block per tile and more.
        for (w, h, t) in [
            (9u32, 7u32, 4u32),
            (4, 4, 4),
            (300, 200, 256),
            (700, 20, 300),
        ] {
            let pixels: Vec<u8> = (0..w * h).map(|i| (i % 251) as u8).collect();
            let pack = encode_tile_pack(&pixels, w, h, t).expect("encodes");
            let header = TilePackHeader::parse(&pack, &"p").expect("a header");
            let [nx, ny] = header.tiles_xy();
            for ty in 0..ny {
                for tx in 0..nx {
                    let located = header.locate(&pack, [tx, ty], &"p").expect("located");
                    let stored = header.stored_place([tx, ty]);
                    assert_eq!(stored, located, "{w}×{h} in {t}: tile {tx}, {ty}");
                    let png = &pack[stored.bytes.start as usize..stored.bytes.end as usize];
                    assert!(is_stored_tile(png, stored.extent));
                }
            }
        }
    }

    #[test]
    fn only_a_whole_stored_tile_of_the_extent_passes() {
        let (pack, header) = pack(|_| {});
        let place = header.stored_place([1, 0]);
        let png = &pack[place.bytes.start as usize..place.bytes.end as usize];
        assert!(is_stored_tile(png, [4, 4]));
        assert!(!is_stored_tile(png, [4, 3]), "another extent");
        assert!(!is_stored_tile(&png[1..], [4, 4]), "shifted");
        assert!(!is_stored_tile(&png[..png.len() - 1], [4, 4]), "cut short");
        // The original's tiles are compressed: the same tile is another length.
        let compressed = encode_png(&[9; 64 * 64], 64, 64).expect("encodes");
        assert!(!is_stored_tile(&compressed, [64, 64]));
        assert!(!is_stored_tile(&[], [4, 4]));
    }

    #[test]
    fn locate_refuses_another_geometry_and_bad_offsets() {
        /// What the case breaks, how, and the error message.
        type Case = (&'static str, fn(&mut Vec<u8>), &'static str);
        let cases: [Case; 4] = [
            (
                "header mismatch",
                |pack| pack[16..24].copy_from_slice(&8u64.to_le_bytes()),
                "p: tile pack is TilePackHeader { width: 9, height: 7, tile_size: 8 }, but the \
                 request expects TilePackHeader { width: 9, height: 7, tile_size: 4 }",
            ),
            (
                "start after end",
                |pack| set_offsets(pack, 5, 900, 800),
                "p: invalid offsets [900, 800) for tile 5",
            ),
            (
                "tile too large",
                |pack| set_offsets(pack, 5, 80, 80 + MAX_TILE_BYTES + 1),
                "p: invalid offsets [80, 67108945) for tile 5",
            ),
            (
                "cut short in the offsets",
                |pack| pack.truncate(30),
                "p: truncated tile pack: expected 16 bytes, got 0",
            ),
        ];
        for (name, edit, message) in cases {
            let (pack, header) = pack(edit);
            let e = header.locate(&pack, [2, 1], &"p").expect_err(name);
            assert_eq!(e.kind(), ErrorKind::UnreadableInput, "{name}");
            assert_eq!(e.to_string(), message, "{name}");
        }
        assert!(TilePackHeader::parse(&[0u8; 10], &"p").is_err());
        assert!(
            TilePackHeader::parse(&[0u8; 24], &"p").is_err(),
            "zero sizes"
        );
    }
}
