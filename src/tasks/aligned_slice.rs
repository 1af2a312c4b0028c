//! `alignedslice`: resample one raw slice into the aligned frame, write its PNG and tile pack.
//!
//! The frame is made one strip of rows at a time (docs/design.md §4), so that memory follows
//! the strip, not the slice: each strip is resampled from the band of source rows it reaches
//! ([`source_rows_needed`]), appended to the aligned PNG as it is encoded, and cut into its row
//! of tiles for the tile pack, whose offsets table is written last, in front. A plain 8-bit
//! grey PNG source is decoded progressively, keeping only the band; other sources, and
//! transforms whose bands do not move down the source within [`MAX_WINDOW_BYTES`] (a vertical
//! flip, a large rotation), decode the source whole, and the report says so.
//!
//! Memory, for an `out_w`-wide frame from a `src_w`-wide source: the band (at most
//! [`MAX_WINDOW_BYTES`], typically `src_w · (strip rows + rotation spread + 5)`), the strip
//! (`strip rows · out_w`), one tile PNG and about a MiB of rows of the aligned PNG at a time
//! (each written out before the next is made), the source read ahead
//! ([`FETCH_BYTES`](crate::slice_image::FETCH_BYTES)) and each GCS writer's part (8 MiB).
//! Strips are whole rows of tiles, so a `shard-size` above [`STRIP_ROWS`] makes them that
//! tall. Measured peak heap (`cargo bench --bench aligned_slice`, native, 0.5° rotation,
//! `shard-size` 1024), when a strip's PNG and tiles were still held whole: 57 MiB at 8192²,
//! 97 MiB at 16384², 185 MiB at 34,432 × 39,552, against 266 MiB and 1064 MiB for the
//! whole-image path at the first two. The whole process in the component now: 74 MiB at 8192²,
//! 177 MiB at 34,432 × 39,552 (docs/performance.md, Scaling).

use super::{StageTimings, Written};
use crate::layout::{aligned_slice_object, raw_slice_object, tile_pack_object};
use crate::png_rows::PngRowEncoder;
use crate::request::AlignedSliceRequest;
use crate::resample::affine::AffineTransform;
use crate::resample::bicubic::{resample_affine_rows, source_rows_needed};
use crate::slice_image::SliceRows;
use crate::storage::{self, ObjectWriter, PrefixedObjectWriter, StreamingStorage};
use crate::tilepack::TilePackBuilder;
use crate::{Error, ErrorKind, Result};
use std::ops::Range;
use std::time::Instant;

/// Output rows per strip, as near as whole rows of tiles allow: large enough that per-strip
/// costs vanish, small enough that a strip of the widest frame stays a few tens of MiB.
pub const STRIP_ROWS: u32 = 1024;

/// The largest band of source rows held while decoding progressively; a transform that needs
/// more (a large rotation of a wide slice) decodes the source whole instead.
pub const MAX_WINDOW_BYTES: u64 = 256 << 20;

/// Runs one alignedslice task. Writes `<dest>/align/<img>` then `<dest-tmp>/<slice>`, after
/// checking that both can be written: a task that fails leaves neither or, only when the store
/// fails between finishing the two, a whole aligned PNG without its tile pack.
pub async fn run(
    storage: &impl StreamingStorage,
    request: &AlignedSliceRequest,
) -> Result<Written> {
    run_in_strips(storage, request, STRIP_ROWS).await
}

/// [`run`] with strips of about `strip_rows` rows.
async fn run_in_strips(
    storage: &impl StreamingStorage,
    request: &AlignedSliceRequest,
    strip_rows: u32,
) -> Result<Written> {
    let retries_before = storage.retries();
    let raw_object = raw_slice_object(&request.dest, &request.img);
    let aligned_object = aligned_slice_object(&request.dest, &request.img);
    let pack_object = tile_pack_object(&request.dest_tmp, request.slice.into());
    let mut stages = StageTimings::default();
    let opening = Instant::now();
    let mut raw = SliceRows::open(storage, &raw_object, request.window).await?;

    let inverse = AffineTransform::new(request.transform).inverse()?;
    let [out_w, out_h] = request.bbox;
    let strips = plan_strips(&inverse, &raw, request.bbox, request.shard_size, strip_rows);
    let mut written = Written::default();
    if raw.is_progressive()
        && let Some(reason) = why_not_progressive(&strips, raw.width())
    {
        raw = raw.into_whole(storage, &raw_object).await?;
        written
            .notes
            .push(format!("{raw_object}: decoded whole, because {reason}"));
    }
    stages.decode += opening.elapsed();

    storage.check_writable(&aligned_object).await?;
    storage.check_writable(&pack_object).await?;
    let mut png = PngRowEncoder::new(out_w, out_h)?;
    let mut pack = TilePackBuilder::new(out_w, out_h, request.shard_size);
    let started = Instant::now();
    let mut png_writer = storage.start_put(&aligned_object, storage::PNG).await?;
    let mut pack_writer = storage
        .start_put_with_prefix(&pack_object, storage::BINARY, pack.prefix_len())
        .await?;
    stages.write += started.elapsed();
    let out_w = out_w as usize;
    let mut strip = Vec::new();
    for Strip { rows, needed } in strips {
        let len = rows.len() * out_w;
        if strip.len() != len {
            strip = Vec::new();
            strip.try_reserve_exact(len).map_err(|_| {
                Error::new(
                    ErrorKind::TooLarge,
                    format!("bbox: cannot allocate a strip of {out_w}×{}", rows.len()),
                )
            })?;
            strip.resize(len, 0);
        }
        let started = Instant::now();
        let band = raw.band(storage, needed).await?;
        stages.decode += started.elapsed();
        let started = Instant::now();
        resample_affine_rows(band, &inverse, out_w, rows, &mut strip)
            .map_err(|e| Error::internal(format!("{raw_object}: {e}")))?;
        stages.resample += started.elapsed();
        for band in strip.chunks(png_band_bytes(out_w)) {
            let started = Instant::now();
            png.write_rows(band)?;
            let encoded = png.take_encoded();
            stages.encode += started.elapsed();
            let started = Instant::now();
            png_writer.append(&encoded).await?;
            stages.write += started.elapsed();
        }
        for tile_row in strip.chunks(pack.tile_row_bytes()) {
            let mut tiles = pack.tiles_of_row(tile_row)?;
            loop {
                let started = Instant::now();
                let Some(tile) = tiles.next().transpose()? else {
                    break;
                };
                stages.encode += started.elapsed();
                let started = Instant::now();
                pack_writer.append(&tile).await?;
                stages.write += started.elapsed();
            }
        }
    }
    // Reads were waited for inside the decode time: move them to fetch.
    stages.fetch = raw.read_time();
    stages.decode = stages.decode.saturating_sub(stages.fetch);
    drop(raw);
    let started = Instant::now();
    let (tail, prefix) = (png.finish()?, pack.prefix()?);
    stages.encode += started.elapsed();
    let started = Instant::now();
    png_writer.append(&tail).await?;
    let png_bytes = png_writer.finish().await?;
    written.record(&aligned_object, png_bytes);
    let finished = pack_writer.finish_with_prefix(&prefix).await?;
    stages.write += started.elapsed();
    written.record(&pack_object, finished.bytes);
    written.notes.extend(finished.notes);
    written.retries = storage.retries().saturating_sub(retries_before);
    written.stages = stages;
    Ok(written)
}

/// About how many bytes of a strip's rows go into the aligned PNG's encoder before its output is
/// written out: whole rows, at least one. Its output is then held a band at a time, not a strip
/// (about 30 MB at 34,432 wide, and as much again while its buffer grew).
const PNG_BAND_BYTES: usize = 1 << 20;

/// The bytes of the whole rows of an `out_w`-wide frame that make a band of about
/// [`PNG_BAND_BYTES`].
fn png_band_bytes(out_w: usize) -> usize {
    out_w * (PNG_BAND_BYTES / out_w).max(1)
}

/// Output rows and the source rows they read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Strip {
    rows: Range<usize>,
    needed: Range<usize>,
}

/// The frame's strips, top to bottom: whole rows of `shard_size` tiles, `strip_rows` high or
/// the nearest multiple of the tile size below it (one row of tiles when tiles are taller).
fn plan_strips(
    inverse: &[f64; 6],
    raw: &SliceRows,
    bbox: [u32; 2],
    shard_size: u32,
    strip_rows: u32,
) -> Vec<Strip> {
    let [out_w, out_h] = bbox.map(|n| n as usize);
    let strip_rows = (shard_size * (strip_rows / shard_size).max(1)) as usize;
    (0..out_h)
        .step_by(strip_rows)
        .map(|y0| {
            let rows = y0..(y0 + strip_rows).min(out_h);
            let needed =
                source_rows_needed(inverse, raw.width(), raw.height(), out_w, rows.clone());
            Strip { rows, needed }
        })
        .collect()
}

/// Why a progressive source cannot serve `strips` (of a `width`-wide source), if it cannot:
/// bands must not start above an earlier one, and must fit [`MAX_WINDOW_BYTES`].
fn why_not_progressive(strips: &[Strip], width: usize) -> Option<String> {
    let mut start = 0;
    let mut end = 0;
    for needed in strips.iter().map(|s| &s.needed).filter(|n| !n.is_empty()) {
        if needed.start < start {
            return Some(format!(
                "the transform reads source rows upwards (rows {needed:?} after rows from {start}): \
                 a vertical flip or a large rotation"
            ));
        }
        start = needed.start;
        end = end.max(needed.end);
        let window = (end - start) as u64 * width as u64;
        if window > MAX_WINDOW_BYTES {
            return Some(format!(
                "a strip reaches {} source rows ({} MiB), over the {} MiB window: a large rotation",
                end - start,
                window >> 20,
                MAX_WINDOW_BYTES >> 20
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample::bicubic::resample_affine;
    use crate::storage::Storage;
    use crate::storage::fs::FsStorage;
    use crate::storage::location::Location;

    fn noise(w: usize, h: usize) -> Vec<u8> {
        (0..w * h)
            .map(|i| ((i * 2_654_435_761) >> 9) as u8 / 2 + ((i % w) / 3) as u8)
            .collect()
    }

    /// Runs the task on a `w × h` raw PNG with `columns`, in strips of about `strip_rows`, and
    /// checks both outputs against the whole-image path; returns the report.
    fn check(
        columns: [f64; 6],
        (w, h): (usize, usize),
        bbox: [u32; 2],
        strip_rows: u32,
    ) -> Written {
        let root = std::env::temp_dir().join(format!(
            "emwrite-aligned-{}-{:x}",
            std::process::id(),
            columns
                .iter()
                .map(|c| c.to_bits())
                .fold(0u64, |a, b| a.rotate_left(7) ^ b)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let store = FsStorage::new(&root);
        let pixels = noise(w, h);
        let raw = crate::tilepack::encode_png(&pixels, w as u32, h as u32).unwrap();
        let dest = Location::parse("dest", "lab").unwrap();
        pollster::block_on(store.put(&dest.object("raw/s.png"), &raw, storage::PNG)).unwrap();
        let request = AlignedSliceRequest {
            img: "s.png".to_owned(),
            transform: columns,
            bbox,
            dest: dest.clone(),
            dest_tmp: Location::parse("dest-tmp", "lab-tmp").unwrap(),
            slice: 3,
            shard_size: 16,
            window: None,
        };
        let written = pollster::block_on(run_in_strips(&store, &request, strip_rows)).unwrap();

        let inverse = AffineTransform::new(columns).inverse().unwrap();
        let [ow, oh] = bbox;
        let expected = resample_affine(&pixels, w, h, &inverse, ow as usize, oh as usize);
        let png = std::fs::read(root.join("lab/align/s.png")).unwrap();
        let aligned = crate::slice_image::decode_gray(&png, &dest.object("align/s.png")).unwrap();
        assert!(aligned.pixels == expected, "aligned PNG for {columns:?}");
        let pack = std::fs::read(root.join("lab-tmp/3")).unwrap();
        let whole_pack = crate::tilepack::encode_tile_pack(&expected, ow, oh, 16).unwrap();
        assert!(pack == whole_pack, "tile pack for {columns:?}");
        assert_eq!(written.objects, ["lab/align/s.png", "lab-tmp/3"]);
        assert_eq!(written.bytes, (png.len() + pack.len()) as u64);
        let _ = std::fs::remove_dir_all(&root);
        written
    }

    #[test]
    fn strips_write_the_same_png_pixels_and_tile_pack_as_the_whole_image() {
        let (w, h) = (150, 230);
        let (s, c) = 2f64.to_radians().sin_cos();
        let small_rotation = [c, s, -s, c, 5.0, -3.0];
        let written = check(small_rotation, (w, h), [170, 240], 48);
        assert!(written.notes.is_empty(), "{:?}", written.notes);
        // Every stage of the task is timed (fetch too: the raw PNG is read in range reads).
        let stages = written.stages;
        let timed = [
            stages.fetch,
            stages.decode,
            stages.resample,
            stages.encode,
            stages.write,
        ];
        assert!(timed.iter().all(|t| !t.is_zero()), "{stages:?}");
        // Strips of one row of tiles, a scale, a frame wider than the source.
        check([1.7, 0.1, -0.2, 0.6, -20.0, 9.0], (w, h), [300, 100], 1);
        // A frame taller than the shifted source: the last strips reach no source row (a
        // 3000 × 2100 example stack failed on this with an internal error).
        let written = check(small_rotation, (w, h), [170, 320], 32);
        assert!(written.notes.is_empty(), "{:?}", written.notes);
    }

    #[test]
    fn transforms_reading_upwards_decode_the_source_whole_and_say_so() {
        let (w, h) = (90, 200);
        let flip = [1.0, 0.0, 0.0, -1.0, 0.0, h as f64];
        let written = check(flip, (w, h), [90, 200], 32);
        assert_eq!(written.notes.len(), 1, "{:?}", written.notes);
        assert!(
            written.notes[0].starts_with(
                "raw/s.png in bucket lab: decoded whole, because the transform reads source rows \
                 upwards"
            ),
            "{:?}",
            written.notes
        );
        let quarter_turn = [0.0, 1.0, -1.0, 0.0, h as f64, 0.0];
        check(quarter_turn, (w, h), [200, 90], 32);
    }
}
