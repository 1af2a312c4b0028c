//! A block's tiles, read ahead of the pyramid in slice order, on a single thread.
//!
//! A pack emwrite built has its tiles where its geometry puts them
//! ([`TilePackHeader::stored_place`]), so each tile is one range read there
//! ([`read_stored_tile`]), checked ([`crate::tilepack::is_stored_tile`]). Another writer's pack
//! (the original's) fails the check, and then the tile takes two dependent range reads: the
//! header and offsets ([`locate_tile`]), then the tile ([`fetch_located`]); once a tile needed
//! them, the slices after it are located first, up to [`LOCATE_AHEAD`] ahead of the tiles, so
//! that a tile needed now costs one round trip there too. The tile pack format itself
//! ([`crate::tilepack`]) does no I/O.
//!
//! A wasm instance has one thread, and a request moves on only when its future is polled: the
//! host sends it on the first poll and the response is taken in on a later one. An `async`
//! stream (`futures`' `buffered`) is polled only while the task awaits it, which a task busy
//! computing does not. So this keeps its reads as plain futures and polls every one of them
//! whenever asked, from [`TileReads::next`] or from [`TileReads::pump`], which ngshard calls
//! after each slice it pushes and between the rows of chunks a slab's end encodes. Polling a
//! wstd future checks its pollable directly, so a poll outside the executor's loop still makes
//! progress.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::storage::Storage;
use crate::storage::location::{Location, ObjectPath};
use crate::tilepack::{
    Tile, TilePackHeader, TilePlace, decode_tile, decode_tile_into, is_stored_tile,
};
use crate::{Error, Result};

/// Tiles held at once, fetched or being fetched: what may arrive ahead of the slice being
/// encoded. Each costs up to ~1 MiB (a stored PNG tile) per instance. With 7, a block over a
/// bucket 20 ms away takes about 1.15× the same block with no delay; 16 gave 1.09–1.12× for
/// ~20 MiB more per split block (docs/performance.md).
pub const TILES_HELD: usize = 7;

/// Requests in flight at once, locations and tiles together: each keeps a connection to storage
/// busy, and the host opens a bounded number per instance (see
/// [`super::ng_shard::STORAGE_REQUESTS_IN_FLIGHT`]).
pub const REQUESTS_IN_FLIGHT: usize = 7;

/// How many slices' locations may be known or sought ahead of the tiles: one slab's worth, so
/// that a slab's locations are found while the slab before it computes.
pub const LOCATE_AHEAD: usize = 64;

/// Range reads one tile of a pack emwrite built costs: what `emwrite plan` counts per tile of
/// a block.
pub const READS_PER_TILE: u64 = 1;

type Read<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + 'a>>;

/// A read in flight or its outcome, for one slice.
enum Step<'a, T> {
    Running(Read<'a, T>),
    Done(Result<T>),
}

impl<T> Step<'_, T> {
    /// Polls a running read once; true if it is still running.
    fn poll(&mut self, cx: &mut Context<'_>) -> bool {
        if let Step::Running(read) = self {
            match read.as_mut().poll(cx) {
                Poll::Ready(outcome) => *self = Step::Done(outcome),
                Poll::Pending => return true,
            }
        }
        false
    }
}

/// The tiles of one block column `[tx, ty]` for a sequence of slices, in order.
pub struct TileReads<'a, S> {
    storage: &'a S,
    source: &'a Location,
    expected: TilePackHeader,
    tile: [u64; 2],
    /// Slices not yet sought.
    slices: Box<dyn Iterator<Item = u64> + 'a>,
    /// Slices being located, in order, after those being fetched.
    locating: VecDeque<(u64, Step<'a, TileLocation>)>,
    /// Slices being fetched or fetched, in order.
    fetching: VecDeque<(u64, Step<'a, FetchedTile>)>,
    /// Whether tiles are read at their stored place: until one is not there.
    stored: bool,
}

impl<'a, S: Storage> TileReads<'a, S> {
    /// Reads tile `tile` of the packs of `slices` under `source`, each of geometry `expected`.
    pub fn new(
        storage: &'a S,
        source: &'a Location,
        expected: TilePackHeader,
        tile: [u64; 2],
        slices: impl Iterator<Item = u64> + 'a,
    ) -> Self {
        let mut reads = Self {
            storage,
            source,
            expected,
            tile,
            slices: Box::new(slices),
            locating: VecDeque::new(),
            fetching: VecDeque::new(),
            stored: true,
        };
        reads.pump();
        reads
    }

    /// The next slice's tile, once fetched, with its slice; `None` after the last.
    pub async fn next(&mut self) -> Option<(u64, Result<FetchedTile>)> {
        std::future::poll_fn(|cx| {
            self.advance(cx);
            match self.fetching.front() {
                // With room for reads, `advance` leaves nothing to locate only after the last.
                None if self.locating.is_empty() => Poll::Ready(None),
                None | Some((_, Step::Running(_))) => Poll::Pending,
                Some((_, Step::Done(_))) => match self.fetching.pop_front() {
                    Some((z, Step::Done(outcome))) => {
                        // Not a pack of ours: locate the tiles of the slices after it first.
                        if outcome.as_ref().is_ok_and(|tile| tile.located) {
                            self.stored = false;
                        }
                        // Its slot is free: start what waits for it.
                        self.advance(cx);
                        Poll::Ready(Some((z, outcome)))
                    }
                    _ => unreachable!("the front was just seen done"),
                },
            }
        })
        .await
    }

    /// Takes in what arrived and sends what may go next, without waiting for anything: for a
    /// caller busy computing.
    pub fn pump(&mut self) {
        self.advance(&mut Context::from_waker(Waker::noop()));
    }

    /// Polls every read in flight and starts reads while there is room: tiles at their stored
    /// place, or else tiles located, for they are needed sooner, then locations with the
    /// requests left.
    fn advance(&mut self, cx: &mut Context<'_>) {
        loop {
            let mut running = 0;
            for (_, step) in self.fetching.iter_mut() {
                running += usize::from(step.poll(cx));
            }
            for (_, step) in self.locating.iter_mut() {
                running += usize::from(step.poll(cx));
            }
            let mut started = false;
            while running < REQUESTS_IN_FLIGHT && self.fetching.len() < TILES_HELD {
                match self.locating.front() {
                    Some((_, Step::Done(_))) => {}
                    _ => break,
                }
                let Some((z, Step::Done(located))) = self.locating.pop_front() else {
                    unreachable!("the front was just seen done")
                };
                let step = match located {
                    Ok(location) => {
                        running += 1;
                        Step::Running(Box::pin(fetch_located(self.storage, location)))
                    }
                    // The failure comes out in its slice's turn.
                    Err(e) => Step::Done(Err(e)),
                };
                self.fetching.push_back((z, step));
                started = true;
            }
            while self.stored && running < REQUESTS_IN_FLIGHT && self.fetching.len() < TILES_HELD {
                let Some(z) = self.slices.next() else { break };
                let (storage, expected, tile) = (self.storage, self.expected, self.tile);
                let pack = crate::layout::tile_pack_object(self.source, z);
                let read = async move { read_stored_tile(storage, pack, &expected, tile).await };
                self.fetching.push_back((z, Step::Running(Box::pin(read))));
                running += 1;
                started = true;
            }
            while !self.stored && running < REQUESTS_IN_FLIGHT && self.locating.len() < LOCATE_AHEAD
            {
                let Some(z) = self.slices.next() else { break };
                let (storage, expected, tile) = (self.storage, self.expected, self.tile);
                let pack = crate::layout::tile_pack_object(self.source, z);
                let read = async move { locate_tile(storage, &pack, &expected, tile).await };
                self.locating.push_back((z, Step::Running(Box::pin(read))));
                running += 1;
                started = true;
            }
            // New reads are polled once at once, so that their requests go out now.
            if !started {
                return;
            }
        }
    }
}

/// Reads tile `(tx, ty)` of the tile pack at `pack`, which must have the geometry `expected`:
/// [`locate_tile`], [`fetch_located`], then [`FetchedTile::decode`].
///
/// Every error is [`crate::ErrorKind::UnreadableInput`] naming the pack (and the tile where it is
/// at fault), except a missing pack or a failing store, which keep the storage's error.
pub async fn read_tile(
    storage: &impl Storage,
    pack: &ObjectPath,
    expected: &TilePackHeader,
    tile: [u64; 2],
) -> Result<Tile> {
    let location = locate_tile(storage, pack, expected, tile).await?;
    fetch_located(storage, location).await?.decode()
}

/// Reads tile `(tx, ty)` of the tile pack at `pack`, which must have the geometry `expected`,
/// in one range read at its stored place, if the pack is emwrite's
/// ([`TilePackHeader::stored_place`]); else as [`read_tile`] does, through its header and
/// offsets, which checks the geometry. Errors as [`read_tile`]'s.
///
/// A pack of another geometry is read at the stored place too when the tile there passes the
/// check: only one whose tiles before it have the same extents, i.e. a frame cut differently
/// only past this tile, whose pixels are the same.
pub async fn read_stored_tile(
    storage: &impl Storage,
    pack: ObjectPath,
    expected: &TilePackHeader,
    tile: [u64; 2],
) -> Result<FetchedTile> {
    let place = expected.stored_place(tile);
    let png = storage.get_range(&pack, place.bytes.clone()).await?;
    if is_stored_tile(&png, place.extent) {
        return Ok(FetchedTile {
            pack,
            index: place.index,
            extent: place.extent,
            png,
            located: false,
        });
    }
    drop(png);
    let location = locate_tile(storage, &pack, expected, tile).await?;
    fetch_located(storage, location).await
}

/// A tile's PNG as read from its pack, not yet decoded: a caller that overlaps reads with
/// compute fetches the next tiles while it decodes these.
#[derive(Clone, Debug)]
pub struct FetchedTile {
    pack: ObjectPath,
    index: u64,
    extent: [u64; 2],
    png: Vec<u8>,
    /// Whether the tile was found through the pack's offsets, not at its stored place.
    located: bool,
}

/// Where a tile's PNG lies in its pack: what [`locate_tile`] learns from the pack's header and
/// offsets, and [`fetch_located`] reads.
#[derive(Clone, Debug)]
pub struct TileLocation {
    pack: ObjectPath,
    place: TilePlace,
}

/// Reads the header of the tile pack at `pack` and the offsets up to tile `(tx, ty)`'s, in one
/// range read, and checks the pack has the geometry `expected` ([`TilePackHeader::locate`]).
/// Errors as [`read_tile`]'s.
pub async fn locate_tile(
    storage: &impl Storage,
    pack: &ObjectPath,
    expected: &TilePackHeader,
    tile: [u64; 2],
) -> Result<TileLocation> {
    let offsets = TilePackHeader::offsets_range(expected.tile_index(tile));
    let prefix = storage.get_range(pack, 0..offsets.end).await?;
    Ok(TileLocation {
        pack: pack.clone(),
        place: expected.locate(&prefix, tile, pack)?,
    })
}

/// Reads the tile PNG at `location`, in one range read. Errors as [`read_tile`]'s.
pub async fn fetch_located(storage: &impl Storage, location: TileLocation) -> Result<FetchedTile> {
    let TileLocation {
        pack,
        place: TilePlace {
            index,
            extent,
            bytes,
        },
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
        located: true,
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
    use std::cell::Cell;
    use std::ops::Range;

    use pollster::block_on;

    use super::*;
    use crate::ErrorKind;
    use crate::storage::location::ObjectPath;
    use crate::storage::memory::MemoryStorage;
    use crate::tilepack::{HEADER_BYTES, encode_png, encode_tile_pack};

    const EDGE: u32 = 1024;
    const SIZE: [u32; 2] = [40, 30];

    /// Storage whose range reads each take `polls` polls to answer, counting those in flight.
    struct Slow {
        inner: MemoryStorage,
        polls: usize,
        in_flight: Cell<usize>,
        most_in_flight: Cell<usize>,
        reads: Cell<usize>,
    }

    impl Slow {
        fn new(inner: MemoryStorage, polls: usize) -> Self {
            Self {
                inner,
                polls,
                in_flight: Cell::new(0),
                most_in_flight: Cell::new(0),
                reads: Cell::new(0),
            }
        }
    }

    impl Storage for Slow {
        async fn get(&self, object: &ObjectPath) -> Result<Vec<u8>> {
            self.inner.get(object).await
        }

        async fn get_range(&self, object: &ObjectPath, range: Range<u64>) -> Result<Vec<u8>> {
            self.reads.set(self.reads.get() + 1);
            self.in_flight.set(self.in_flight.get() + 1);
            let most = self.most_in_flight.get().max(self.in_flight.get());
            self.most_in_flight.set(most);
            for _ in 0..self.polls {
                let mut yielded = false;
                std::future::poll_fn(|cx| {
                    if yielded {
                        return Poll::Ready(());
                    }
                    yielded = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                })
                .await;
            }
            self.in_flight.set(self.in_flight.get() - 1);
            self.inner.get_range(object, range).await
        }

        async fn put(&self, object: &ObjectPath, bytes: &[u8], content_type: &str) -> Result<()> {
            self.inner.put(object, bytes, content_type).await
        }
    }

    fn source() -> Location {
        Location::parse("source", "tiles").expect("valid location")
    }

    /// Tile packs of `slices` whose pixels are all the slice number, but none for `missing`.
    fn packs(slices: Range<u64>, missing: Option<u64>) -> MemoryStorage {
        packs_made_by(slices, missing, |pixels| {
            encode_tile_pack(pixels, SIZE[0], SIZE[1], EDGE).expect("pack")
        })
    }

    /// [`packs`] as the original made them: the same layout, with compressed PNG tiles.
    fn original_packs(slices: Range<u64>) -> MemoryStorage {
        packs_made_by(slices, None, |pixels| {
            let tile = encode_png(pixels, SIZE[0], SIZE[1]).expect("a png");
            let first = HEADER_BYTES + 16;
            let mut pack = Vec::new();
            for word in [SIZE[0].into(), SIZE[1].into(), EDGE.into(), first] {
                pack.extend_from_slice(&u64::to_le_bytes(word));
            }
            pack.extend_from_slice(&(first + tile.len() as u64).to_le_bytes());
            pack.extend_from_slice(&tile);
            pack
        })
    }

    fn packs_made_by(
        slices: Range<u64>,
        missing: Option<u64>,
        make: impl Fn(&[u8]) -> Vec<u8>,
    ) -> MemoryStorage {
        let storage = MemoryStorage::default();
        for z in slices.filter(|z| Some(*z) != missing) {
            let pack = make(&vec![z as u8; (SIZE[0] * SIZE[1]) as usize]);
            let object = crate::layout::tile_pack_object(&source(), z);
            block_on(storage.put(&object, &pack, crate::storage::BINARY)).expect("put");
        }
        storage
    }

    fn header() -> TilePackHeader {
        crate::layout::tile_pack_header(SIZE)
    }

    #[test]
    fn tiles_come_in_slice_order_with_requests_bounded() {
        let storage = Slow::new(packs(0..150, None), 3);
        let source = source();
        let mut reads = TileReads::new(&storage, &source, header(), [0, 0], 0..150);
        for want in 0..150 {
            let (z, tile) = block_on(reads.next()).expect("a tile");
            assert_eq!(z, want);
            assert_eq!(
                tile.expect("read").decode().expect("decoded").pixels[0],
                z as u8
            );
        }
        assert!(block_on(reads.next()).is_none());
        assert_eq!(storage.reads.get() as u64, 150 * READS_PER_TILE);
        assert_eq!(storage.most_in_flight.get(), REQUESTS_IN_FLIGHT);
    }

    #[test]
    fn pumps_alone_fetch_the_tiles_held() {
        let storage = Slow::new(packs(0..200, None), 2);
        let source = source();
        let mut reads = TileReads::new(&storage, &source, header(), [0, 0], 0..200);
        // A pyramid computing calls nothing but `pump`.
        for _ in 0..100 {
            reads.pump();
        }
        assert_eq!(storage.reads.get(), TILES_HELD);
        assert_eq!(storage.in_flight.get(), 0, "every read answered");
        assert_eq!(storage.most_in_flight.get(), REQUESTS_IN_FLIGHT);
        // The tiles held are there at once. Each one taken starts the next tile's read.
        for want in 0..TILES_HELD as u64 {
            assert_eq!(block_on(reads.next()).expect("a tile").0, want);
        }
        assert_eq!(storage.reads.get(), 2 * TILES_HELD);
        assert_eq!(storage.most_in_flight.get(), REQUESTS_IN_FLIGHT);
    }

    #[test]
    fn the_originals_packs_are_located_a_slab_ahead() {
        let storage = Slow::new(original_packs(0..200), 2);
        let source = source();
        let mut reads = TileReads::new(&storage, &source, header(), [0, 0], 0..200);
        for _ in 0..100 {
            reads.pump();
        }
        // The tiles held were each read at the stored place, in vain, then located and read.
        assert_eq!(storage.reads.get(), 3 * TILES_HELD);
        // Once one was not where ours are, the next slices are located first, a slab ahead,
        // while a pyramid computes.
        assert_eq!(block_on(reads.next()).expect("a tile").0, 0);
        for _ in 0..100 {
            reads.pump();
        }
        assert_eq!(reads.locating.len(), LOCATE_AHEAD);
        assert_eq!(reads.fetching.len(), TILES_HELD);
        for want in 1..200 {
            let (z, tile) = block_on(reads.next()).expect("a tile");
            assert_eq!(z, want);
            assert_eq!(
                tile.expect("read").decode().expect("decoded").pixels,
                [z as u8; 1200]
            );
        }
        assert!(block_on(reads.next()).is_none());
        // Two reads for every tile after those.
        assert_eq!(storage.reads.get(), 3 * TILES_HELD + 2 * (200 - TILES_HELD));
        assert_eq!(storage.most_in_flight.get(), REQUESTS_IN_FLIGHT);
    }

    #[test]
    fn a_failed_read_comes_out_in_its_slices_turn() {
        let storage = packs(0..20, Some(9));
        let source = source();
        let mut reads = TileReads::new(&storage, &source, header(), [0, 0], 0..20);
        for want in 0..20 {
            let (z, tile) = block_on(reads.next()).expect("a tile");
            assert_eq!(z, want);
            match tile {
                Err(e) => {
                    assert_eq!(z, 9);
                    assert_eq!(e.kind(), ErrorKind::NotFound);
                }
                Ok(_) => assert_ne!(z, 9),
            }
        }
    }

    fn gradient(w: u32, h: u32) -> Vec<u8> {
        (0..w * h)
            .map(|i| ((i % w) * 3 + (i / w) * 7) as u8)
            .collect()
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
    fn a_stored_tile_is_read_at_its_place_else_located() {
        let (storage, pack, header) = stored_pack(|_| {});
        let counted = Slow::new(storage, 0);
        let tile = block_on(read_stored_tile(&counted, pack.clone(), &header, [2, 1])).unwrap();
        assert_eq!(counted.reads.get(), 1, "one read at the stored place");
        let want = block_on(read_tile(&counted.inner, &pack, &header, [2, 1])).unwrap();
        assert_eq!(tile.decode().unwrap().pixels, want.pixels);
        assert!(!tile.located);
        // A pack cut short fails the check at the stored place, and is read as before, with
        // the error it had.
        let (storage, pack, header) = stored_pack(|pack| pack.truncate(pack.len() - 1));
        let counted = Slow::new(storage, 0);
        let e = block_on(read_stored_tile(&counted, pack, &header, [2, 1])).expect_err("cut");
        assert_eq!(e.kind(), ErrorKind::UnreadableInput);
        assert!(e.message().ends_with("truncated tile 5"), "{e}");
        assert_eq!(counted.reads.get(), 3, "the place, the offsets, the tile");
    }

    #[test]
    fn read_tile_errors_name_the_pack_and_tile() {
        // The pack's own checks are the format's (`tilepack`); these are the reads'.
        /// What the case breaks, how, and the start of the error message.
        type Case = (&'static str, fn(&mut Vec<u8>), &'static str);
        let cases: [Case; 2] = [
            (
                "header mismatch",
                |pack| pack[16..24].copy_from_slice(&8u64.to_le_bytes()),
                "3 in bucket tmp: tile pack is TilePackHeader { width: 9, height: 7, tile_size: 8 }, \
                 but the request expects",
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
}
