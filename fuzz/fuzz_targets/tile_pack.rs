//! A tile pack read back tile by tile: the fuzz input is the stored pack. Every outcome is a
//! tile of the expected extent or an error naming the pack, never a panic, and reading a tile
//! never holds much more memory than the tile it returns.

#![no_main]

use emwrite::ErrorKind;
use emwrite::layout::{BLOCK_EDGE, tile_pack_header};
use emwrite::request::MAX_FRAME_EDGE;
use emwrite::tasks::tile_reads::read_tile;
use emwrite::tilepack::TilePackHeader;
use emwrite_fuzz::{heap_peak_of, object, stored};
use libfuzzer_sys::fuzz_target;

/// The geometry a caller could expect: the pack's own header where a validated request could
/// have asked for it (so that mutations reach past the header check), else a fixed one.
/// ngshard reads tiles of BLOCK_EDGE; smaller ones let a small input hold whole valid PNGs.
fn expected(pack: &[u8]) -> TilePackHeader {
    let fallback = TilePackHeader {
        tile_size: 4,
        ..tile_pack_header([9, 7])
    };
    let Ok(header) = TilePackHeader::parse(pack, &"pack") else {
        return fallback;
    };
    let edge = 1..=u64::from(MAX_FRAME_EDGE);
    if edge.contains(&header.width)
        && edge.contains(&header.height)
        && header.tile_size <= u64::from(BLOCK_EDGE)
    {
        header
    } else {
        fallback
    }
}

fuzz_target!(|pack: &[u8]| {
    let expected = expected(pack);
    let [nx, ny] = expected.tiles_xy();
    let store = stored(pack);
    for tile in [[0, 0], [nx / 2, ny / 2], [nx - 1, ny - 1]] {
        let (read, peak) =
            heap_peak_of(|| pollster::block_on(read_tile(&store, &object(), &expected, tile)));
        let [w, h] = expected.tile_extent(tile[0], tile[1]);
        // The decoded tile, a copy of the stored bytes at most, and the decoder's row buffers.
        let budget = 2 * (w * h) as usize + 4 * pack.len() + (1 << 20);
        assert!(
            peak <= budget,
            "reading tile {tile:?} of a {}-byte pack held {peak} bytes at once, over {budget}",
            pack.len()
        );
        match read {
            Ok(t) => {
                assert_eq!([t.width as u64, t.height as u64], [w, h]);
                assert_eq!(t.pixels.len(), t.width * t.height);
            }
            Err(e) => assert!(
                matches!(e.kind(), ErrorKind::UnreadableInput | ErrorKind::NotFound),
                "{:?} from reading a pack: {e}",
                e.kind()
            ),
        }
    }
});
