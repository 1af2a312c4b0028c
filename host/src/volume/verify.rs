//! Verifying a volume (`emwrite verify LOCATION`, and the end of `emwrite pipeline`): checks it
//! against its info and lists what must be redone.
//!
//! From `<dest>/neuroglancer/jpeg/info` (and `raw/info` when it exists) verify derives the blocks
//! of the stack (`layout::stack_blocks`, from the info's `realsize` and `realoffset`; the whole
//! grid of its size when those are absent), and for every block checks (docs/design.md §4,
//! "Verify"): its manifest exists, parses and agrees with the info; every shard it lists is a
//! shard of that block, exists with the listed size and parses (`precomputed::shard`: minishard
//! index offsets in range, each chunk in its shard and minishard, no chunk twice); and every
//! chunk belongs to the block and decodes (JPEG or raw) to its size, 64³ clipped at the volume's
//! edge. Each problem is one line naming the object and the block to redo.
//!
//! The OME-Zarr image, when the volume has one (`ome-zarr/zarr.json`), is checked the same way
//! ([`super::verify_zarr`]): the manifest may list its shards, each must be one of the block's,
//! whole, and decode. A volume may be an OME-Zarr image alone: its blocks then come from the
//! stack its group records.
//!
//! Reads are bounded: manifests by `block_manifest::MAX_MANIFEST_BYTES`, shards by
//! [`MAX_SHARD_BYTES`] (checked on the stored size before reading), minishard indexes and JPEG
//! headers by the core's decoders; nothing is sized from what a file claims.

use std::collections::HashMap;
use std::ops::Range;

use emwrite::block::manifest::{BlockManifest, read_manifest_bytes};
use emwrite::layout::{self, ScaleShift};
use emwrite::precomputed::codec::{Encoding, decode_chunk};
use emwrite::precomputed::info::{Scale, VolumeInfo};
use emwrite::precomputed::morton;
use emwrite::precomputed::shard::decode_shard;
use emwrite::request::wire;
use emwrite::storage::Storage;
use emwrite::storage::location::Location;
use futures::StreamExt;

use emwrite::zarr::metadata::ZarrScale;

use super::verify_zarr;
use crate::embed::store::HostStore;
use crate::error::HostError;
use crate::runtime::cores;

/// Largest shard read: a raw scale-0 shard of a full block is 128 MiB of voxels plus its index.
pub const MAX_SHARD_BYTES: u64 = 256 << 20;

/// Problems printed per shard; past it, a count.
const PROBLEMS_PER_SHARD: usize = 5;

/// What verify found.
#[derive(Debug, Default)]
pub struct Report {
    /// Blocks of the stack.
    pub blocks: usize,
    /// Blocks with no problem.
    pub complete: usize,
    /// Problems, one line each, by block (`None`: the volume itself, e.g. a missing info).
    pub problems: Vec<(Option<[u32; 3]>, String)>,
    /// Shards read and parsed.
    pub shards: usize,
    /// Chunks decoded.
    pub chunks: u64,
}

impl Report {
    /// Whether the volume is complete: every block there and whole.
    pub fn is_complete(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problem lines: `block (1, 0, 0): neuroglancer/…/000008.shard: missing`.
    pub fn problem_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.problems.iter().map(|(block, problem)| match block {
            Some([x, y, z]) => format!("block ({x}, {y}, {z}): {problem}"),
            None => format!("volume: {problem}"),
        })
    }

    /// The summary line.
    pub fn summary(&self, location: &str) -> String {
        let counts = format!(
            "{} blocks, {} shards and {} chunks checked",
            self.blocks, self.shards, self.chunks
        );
        if self.is_complete() {
            format!("verify {location}: complete: {counts}")
        } else {
            format!(
                "verify {location}: incomplete: {} of {} blocks to redo, {} problems; {counts}",
                self.blocks_to_redo(),
                self.blocks,
                self.problems.len()
            )
        }
    }

    /// Blocks with at least one problem.
    pub fn blocks_to_redo(&self) -> usize {
        self.blocks - self.complete
    }

    /// `Ok` when complete, else the error that makes the command fail.
    pub fn into_result(self, location: &str) -> Result<(), HostError> {
        if self.is_complete() {
            return Ok(());
        }
        Err(HostError::Incomplete {
            location: location.to_owned(),
            blocks: self.blocks_to_redo(),
            problems: self.problems.len(),
        })
    }
}

/// Checks the volume at `dest` (module docs).
pub async fn verify(store: &HostStore, dest: &Location) -> Result<Report, HostError> {
    let mut report = Report::default();
    let volume = match Volume::load(store, dest).await? {
        Ok(volume) => volume,
        Err(problem) => {
            report.problems.push((None, problem));
            return Ok(report);
        }
    };
    report.blocks = volume.blocks.len();
    // Shards decode on tokio's blocking threads, so a few blocks at once keep every core busy
    // while their reads wait; each holds at most one shard.
    let in_flight = 2 * cores();
    let mut checks = futures::stream::iter(volume.blocks.iter().copied())
        .map(|block| {
            let volume = &volume;
            async move { (block, volume.check_block(store, block).await) }
        })
        .buffered(in_flight);
    while let Some((block, outcome)) = checks.next().await {
        let outcome = outcome?;
        report.shards += outcome.shards;
        report.chunks += outcome.chunks;
        if outcome.problems.is_empty() {
            report.complete += 1;
        }
        report
            .problems
            .extend(outcome.problems.into_iter().map(|p| (Some(block), p)));
    }
    Ok(report)
}

/// What the infos say the volume is.
struct Volume {
    dest: Location,
    /// Each encoding with its scales: JPEG, and raw when its info exists; none for an OME-Zarr
    /// image alone.
    encodings: Vec<(Encoding, Vec<Scale>)>,
    /// The shift of each of the encodings' scales ([`layout::shifts_of_scales`]).
    shifts: Vec<ScaleShift>,
    /// The OME-Zarr image's arrays, when it has one.
    zarr: Vec<ZarrScale>,
    /// `(bbox, minz, maxz)` from `realsize` and `realoffset`, when the info has them.
    stack: Option<([u32; 2], u32, u32)>,
    blocks: Vec<[u32; 3]>,
}

/// What checking one block found.
#[derive(Default)]
struct BlockOutcome {
    problems: Vec<String>,
    shards: usize,
    chunks: u64,
}

/// One shard of a block at one scale.
struct ExpectedShard {
    encoding: Encoding,
    scale: Scale,
    shard: u64,
    /// The block's chunk cells at this scale, per axis.
    cells: [Range<u64>; 3],
}

impl Volume {
    /// Reads the infos; `Ok(Err(problem))` when they are missing or unusable.
    async fn load(store: &HostStore, dest: &Location) -> Result<Result<Self, String>, HostError> {
        let zarr = match verify_zarr::load(store, dest).await? {
            Some(Ok(image)) => Some(image),
            Some(Err(problem)) => return Ok(Err(problem)),
            None => None,
        };
        let jpeg = match (read_info(store, dest, Encoding::Jpeg).await?, zarr) {
            (Some(Ok(info)), zarr) => (info, zarr),
            (Some(Err(problem)), _) => return Ok(Err(problem)),
            (None, Some(image)) => {
                let (bbox, minz, maxz) = image.stack;
                return Ok(Ok(Volume {
                    dest: dest.clone(),
                    encodings: Vec::new(),
                    shifts: Vec::new(),
                    zarr: image.scales,
                    stack: Some(image.stack),
                    blocks: layout::stack_blocks(bbox, minz, maxz).collect(),
                }));
            }
            (None, None) => {
                let object = layout::info_object(dest, Encoding::Jpeg);
                return Ok(Err(format!(
                    "{}: missing (ngmeta has not run)",
                    object.name
                )));
            }
        };
        let (jpeg, zarr) = jpeg;
        // A block's cells at each scale follow from the scales' shifts; an info laid out by
        // other rules has no blocks to check.
        let shifts = match layout::shifts_of_scales(jpeg.scales()) {
            Ok(shifts) => shifts,
            Err(error) => {
                let object = layout::info_object(dest, Encoding::Jpeg);
                return Ok(Err(format!("{}: {error}", object.name)));
            }
        };
        let mut encodings = vec![(Encoding::Jpeg, jpeg.scales().to_vec())];
        match read_info(store, dest, Encoding::Raw).await? {
            Some(Ok(raw)) => {
                let shape = |info: &VolumeInfo| {
                    let scales = info.scales().iter();
                    scales
                        .map(|scale| (scale.size(), scale.resolution_nm()))
                        .collect::<Vec<_>>()
                };
                if shape(&raw) != shape(&jpeg) {
                    let object = layout::info_object(dest, Encoding::Raw);
                    return Ok(Err(format!(
                        "{}: its scales' sizes or voxel sizes differ from the jpeg info's",
                        object.name
                    )));
                }
                encodings.push((Encoding::Raw, raw.scales().to_vec()));
            }
            Some(Err(problem)) => return Ok(Err(problem)),
            None => {}
        }
        let stack = match (jpeg.realsize(), jpeg.realoffset()) {
            (Some([w, h, n]), Some([_, _, minz])) if n > 0 => {
                let fit = |v: u64| u32::try_from(v).ok();
                match (fit(w), fit(h), fit(minz), fit(minz + n - 1)) {
                    (Some(w), Some(h), Some(minz), Some(maxz)) => Some(([w, h], minz, maxz)),
                    _ => None,
                }
            }
            _ => None,
        };
        let blocks = match stack {
            Some((bbox, minz, maxz)) => layout::stack_blocks(bbox, minz, maxz).collect(),
            None => {
                let size = jpeg.scales().first().map_or([0; 3], Scale::size);
                let grid = layout::blocks_of_size(size).map(|n| u32::try_from(n).unwrap_or(0));
                (0..grid[2])
                    .flat_map(|z| {
                        (0..grid[1]).flat_map(move |y| (0..grid[0]).map(move |x| [x, y, z]))
                    })
                    .collect()
            }
        };
        Ok(Ok(Volume {
            dest: dest.clone(),
            encodings,
            shifts,
            zarr: zarr.map(|image| image.scales).unwrap_or_default(),
            stack,
            blocks,
        }))
    }

    /// The shards `block` may write, by name below the destination.
    fn block_shards(&self, block: [u32; 3]) -> HashMap<String, ExpectedShard> {
        let mut shards = HashMap::new();
        for (encoding, scales) in &self.encodings {
            // The raw info's scales have the jpeg info's voxel sizes (checked when loaded).
            for (scale, &shift) in scales.iter().zip(&self.shifts) {
                let cells = layout::block_cells(block.map(u64::from), shift, scale.grid());
                let spec = scale.sharding();
                for z in cells[2].clone() {
                    for y in cells[1].clone() {
                        for x in cells[0].clone() {
                            let (shard, _) = spec.shard_and_minishard(scale.chunk_id([x, y, z]));
                            let name = layout::shard_name(
                                *encoding,
                                scale.key(),
                                &spec.shard_file_name(shard),
                            );
                            shards.entry(name).or_insert_with(|| ExpectedShard {
                                encoding: *encoding,
                                scale: scale.clone(),
                                shard,
                                cells: cells.clone(),
                            });
                        }
                    }
                }
            }
        }
        shards
    }

    async fn check_block(
        &self,
        store: &HostStore,
        block: [u32; 3],
    ) -> Result<BlockOutcome, HostError> {
        let mut outcome = BlockOutcome::default();
        let object = layout::block_manifest_object(&self.dest, block);
        let storage_error = |error| HostError::Task {
            context: format!("verify block {block:?}"),
            error,
        };
        let Some(bytes) = read_manifest_bytes(store, &object)
            .await
            .map_err(storage_error)?
        else {
            outcome.problems.push(format!(
                "{}: missing (the block never finished)",
                object.name
            ));
            return Ok(outcome);
        };
        let manifest = match BlockManifest::from_json(&bytes) {
            Ok(manifest) => manifest,
            Err(e) => {
                outcome.problems.push(format!("{}: {e}", object.name));
                return Ok(outcome);
            }
        };
        outcome.problems.extend(
            self.manifest_disagreements(&manifest, block)
                .into_iter()
                .map(|why| format!("{}: {why}", object.name)),
        );
        let expected = self.block_shards(block);
        let expected_zarr = verify_zarr::block_shards(&self.zarr, block);
        for listed in &manifest.objects {
            let shard = expected.get(&listed.name);
            let zarr_scale = expected_zarr.get(&listed.name);
            if shard.is_none() && zarr_scale.is_none() {
                outcome.problems.push(format!(
                    "{}: listed in {}, but not a shard of this block",
                    listed.name, object.name
                ));
                continue;
            }
            let shard_object = self.dest.object(&listed.name);
            let size = store.size(&shard_object).await.map_err(storage_error)?;
            match size {
                None => {
                    outcome.problems.push(format!("{}: missing", listed.name));
                    continue;
                }
                Some(size) if size != listed.bytes => {
                    outcome.problems.push(format!(
                        "{}: {size} bytes, the manifest lists {}",
                        listed.name, listed.bytes
                    ));
                    continue;
                }
                Some(size) if size > MAX_SHARD_BYTES => {
                    outcome.problems.push(format!(
                        "{}: {size} bytes, more than a block's shard can be ({MAX_SHARD_BYTES})",
                        listed.name
                    ));
                    continue;
                }
                Some(_) => {}
            }
            let bytes = store.get(&shard_object).await.map_err(storage_error)?;
            let name = listed.name.clone();
            let check: Box<dyn FnOnce() -> (Vec<String>, u64) + Send> = match (shard, zarr_scale) {
                (Some(shard), _) => {
                    let (encoding, scale, number, cells) = (
                        shard.encoding,
                        shard.scale.clone(),
                        shard.shard,
                        shard.cells.clone(),
                    );
                    Box::new(move || check_shard(&name, &bytes, encoding, &scale, number, &cells))
                }
                (None, scale) => {
                    let scale = scale.cloned().expect("checked above: one of the two");
                    Box::new(move || verify_zarr::check_shard(&name, &bytes, &scale))
                }
            };
            let (problems, chunks) =
                tokio::task::spawn_blocking(check)
                    .await
                    .map_err(|e| HostError::Engine {
                        context: format!("verify block {block:?}"),
                        message: format!("shard check failed: {e}"),
                    })?;
            outcome.shards += 1;
            outcome.chunks += chunks;
            outcome.problems.extend(problems);
        }
        Ok(outcome)
    }

    /// Where a manifest disagrees with the volume's infos.
    fn manifest_disagreements(&self, manifest: &BlockManifest, block: [u32; 3]) -> Vec<String> {
        let mut why = Vec::new();
        if manifest.block != block {
            why.push(format!("names block {:?}", manifest.block));
        }
        if let Some((bbox, minz, maxz)) = self.stack
            && (manifest.bbox, manifest.minz, manifest.maxz) != (bbox, minz, maxz)
        {
            // The manifest's fields, named as the request names them.
            let (b, lo, hi) = (wire::BBOX, wire::MINZ, wire::MAXZ);
            why.push(format!(
                "{b} {:?}, {lo} {}, {hi} {}, but the info says {b} {bbox:?}, {lo} {minz}, {hi} {maxz}",
                manifest.bbox, manifest.minz, manifest.maxz
            ));
        }
        let has_zarr = !self.zarr.is_empty();
        if manifest.volumes.zarr() != has_zarr {
            why.push(format!(
                "{} {}, but the OME-Zarr metadata {}",
                wire::FORMAT,
                manifest.volumes.as_str(),
                if has_zarr { "exists" } else { "does not" }
            ));
        }
        let has_raw = self.encodings.len() > 1;
        if manifest.volumes.precomputed() && manifest.write_raw != has_raw {
            why.push(format!(
                "{} {}, but the raw info {}",
                wire::WRITE_RAW,
                manifest.write_raw,
                if has_raw { "exists" } else { "does not" }
            ));
        }
        why
    }
}

/// The info of `encoding` at `dest`: `None` when absent, `Some(Err)` when unusable.
async fn read_info(
    store: &HostStore,
    dest: &Location,
    encoding: Encoding,
) -> Result<Option<Result<VolumeInfo, String>>, HostError> {
    let object = layout::info_object(dest, encoding);
    let Some(bytes) = super::read_if_present(store, &object).await? else {
        return Ok(None);
    };
    Ok(Some(
        VolumeInfo::from_json(&bytes).map_err(|e| format!("{}: {e}", object.name)),
    ))
}

/// Parses shard file `name` (shard `number` of `scale`) and decodes every chunk: the problems
/// (at most [`PROBLEMS_PER_SHARD`] and a count) and the number of chunks decoded.
fn check_shard(
    name: &str,
    bytes: &[u8],
    encoding: Encoding,
    scale: &Scale,
    number: u64,
    cells: &[Range<u64>; 3],
) -> (Vec<String>, u64) {
    let chunks = match decode_shard(scale.sharding(), bytes) {
        Ok(chunks) => chunks,
        Err(e) => return (vec![format!("{name}: {e}")], 0),
    };
    if chunks.is_empty() {
        return (vec![format!("{name}: holds no chunk")], 0);
    }
    let bits = scale.morton_bits();
    let mut problems = Vec::new();
    let mut decoded = 0;
    for (id, data) in &chunks {
        let cell = morton::decode(*id, bits);
        let problem = if morton::encode(cell, bits) != *id {
            Some("is not a chunk id of this scale".to_owned())
        } else if (0..3).any(|axis| !cells[axis].contains(&cell[axis])) {
            Some(format!("at cell {cell:?} lies outside the block"))
        } else if scale.sharding().shard_and_minishard(*id).0 != number {
            Some("belongs to another shard".to_owned())
        } else {
            let extent = scale.chunk_extent(cell).map(|e| e as usize);
            match decode_chunk(encoding, data, extent) {
                Ok(_) => {
                    decoded += 1;
                    None
                }
                Err(e) => Some(format!("at cell {cell:?}: {e}")),
            }
        };
        if let Some(problem) = problem {
            problems.push(format!("{name}: chunk {id} {problem}"));
        }
    }
    if problems.len() > PROBLEMS_PER_SHARD {
        let more = problems.len() - PROBLEMS_PER_SHARD;
        problems.truncate(PROBLEMS_PER_SHARD);
        problems.push(format!("{name}: and {more} more bad chunks"));
    }
    (problems, decoded)
}

#[cfg(test)]
mod tests {
    use emwrite::precomputed::codec::encode_chunk;
    use emwrite::precomputed::shard::ShardEncoder;

    use super::*;

    /// The jpeg scales of a 2048 × 1024 × 1024 volume.
    fn scales() -> Vec<Scale> {
        layout::volume_info([2048, 1024], 0, 1000, [8.0; 3], Encoding::Jpeg)
            .unwrap()
            .scales()
            .to_vec()
    }

    /// Scale 1's one shard of block (1, 0, 0), with the block's first `n` chunks at that scale.
    fn shard_of_block_1(n: usize) -> (Vec<u8>, Scale, u64, [Range<u64>; 3]) {
        let scale = scales()[1].clone();
        let cells = [8..16, 0..8, 0..8];
        let extent = [64; 3];
        let chunk = encode_chunk(Encoding::Jpeg, &vec![90; 64 * 64 * 64], extent, 75).unwrap();
        let first = scale.chunk_id([8, 0, 0]);
        let (number, _) = scale.sharding().shard_and_minishard(first);
        let mut encoder = ShardEncoder::new(*scale.sharding(), scale.chunk_order(), number);
        for (i, x) in (8..16).take(n).enumerate() {
            let id = scale.chunk_id([x, (i / 8) as u64, 0]);
            encoder.add_chunk(id, &chunk).unwrap();
        }
        (encoder.finish().unwrap(), scale, number, cells)
    }

    #[test]
    fn a_good_shard_decodes_every_chunk() {
        let (bytes, scale, number, cells) = shard_of_block_1(3);
        let (problems, chunks) = check_shard("s", &bytes, Encoding::Jpeg, &scale, number, &cells);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(chunks, 3);
    }

    #[test]
    fn a_truncated_shard_is_named() {
        let (bytes, scale, number, cells) = shard_of_block_1(3);
        let cut = &bytes[..bytes.len() - 10];
        let (problems, chunks) = check_shard("s1", cut, Encoding::Jpeg, &scale, number, &cells);
        assert_eq!(chunks, 0);
        assert_eq!(problems.len(), 1, "{problems:?}");
        // The cut falls in the last minishard index of the file.
        assert!(
            problems[0].starts_with("s1: minishard index of minishard "),
            "{problems:?}"
        );
    }

    #[test]
    fn chunks_of_another_block_or_size_are_named() {
        let (bytes, scale, number, _) = shard_of_block_1(2);
        // Checked as if it were block 0's: every chunk lies outside.
        let (problems, _) = check_shard(
            "s",
            &bytes,
            Encoding::Jpeg,
            &scale,
            number,
            &[0..8, 0..8, 0..8],
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("lies outside the block"),
            "{problems:?}"
        );
        // Raw chunks of JPEG bytes: the wrong size.
        let (bytes, scale, number, cells) = shard_of_block_1(1);
        let (problems, chunks) = check_shard("s", &bytes, Encoding::Raw, &scale, number, &cells);
        assert_eq!(chunks, 0);
        assert!(
            problems[0].contains("raw chunk: expected [64, 64, 64] voxels"),
            "{problems:?}"
        );
        // A shard number that is not the file's.
        let (problems, _) = check_shard("s", &bytes, Encoding::Jpeg, &scale, number + 1, &cells);
        assert!(
            problems[0].contains("belongs to another shard"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_corrupt_chunk_is_named_with_its_cell() {
        let scale = scales()[1].clone();
        let id = scale.chunk_id([8, 0, 0]);
        let (number, _) = scale.sharding().shard_and_minishard(id);
        let mut encoder = ShardEncoder::new(*scale.sharding(), scale.chunk_order(), number);
        // Ends like a JPEG, but is not one.
        encoder.add_chunk(id, &[1, 2, 3, 0xff, 0xd9]).unwrap();
        let bytes = encoder.finish().unwrap();
        let (problems, chunks) = check_shard(
            "s",
            &bytes,
            Encoding::Jpeg,
            &scale,
            number,
            &[8..16, 0..8, 0..8],
        );
        assert_eq!(chunks, 0);
        assert!(
            problems[0].starts_with(&format!("s: chunk {id} at cell [8, 0, 0]: jpeg chunk")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_block_expects_its_own_shards() {
        let volume = Volume {
            dest: Location::parse("dest", "lab").unwrap(),
            encodings: vec![(Encoding::Jpeg, scales())],
            shifts: layout::shifts_of_scales(&scales()).expect("emwrite's scales"),
            zarr: Vec::new(),
            stack: Some(([2048, 1024], 0, 1000)),
            blocks: vec![[0, 0, 0], [1, 0, 0]],
        };
        let mut names: Vec<_> = volume.block_shards([1, 0, 0]).into_keys().collect();
        names.sort();
        // 8 shards at scale 0 (8 … 15, docs/design.md §5's example), one at each other scale.
        assert_eq!(names.len(), 12, "{names:?}");
        assert!(names.contains(&"neuroglancer/jpeg/8.0x8.0x8.0/000008.shard".to_owned()));
        assert!(names.contains(&"neuroglancer/jpeg/16.0x16.0x16.0/000001.shard".to_owned()));
        assert!(!names.contains(&"neuroglancer/jpeg/8.0x8.0x8.0/000000.shard".to_owned()));
    }
}
