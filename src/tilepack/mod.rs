//! The tile pack: an aligned slice cut into PNG tiles, in one object, read back tile by tile.
//!
//! Byte-compatible with the original service (docs/design.md §4). All integers are u64
//! little-endian: `width, height, tile_size`, then `n + 1` absolute offsets (the first is
//! `24 + 8·(n + 1)`), then the n PNG tiles back to back, row-major (y outer, x inner), edge tiles
//! clipped to the image. Tile i's `[start, end)` sits at bytes `[24 + 8i, 24 + 8i + 16)`, so a
//! reader needs two range reads: the offsets ([`TilePackHeader::locate`] says where the tile
//! is), then the tile.
//!
//! The format does no I/O: `builder.rs` makes packs ([`TilePackBuilder`], [`encode_tile_pack`]),
//! `decode.rs` decodes tiles ([`decode_tile`]), and the reads are the task's
//! (`tasks::tile_reads`).

mod builder;
mod decode;

use std::ops::Range;

use crate::{Error, Result};

pub use builder::{TilePackBuilder, encode_png, encode_tile_pack};
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
