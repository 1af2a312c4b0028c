//! A whole stack, checked, and the tasks of each phase it makes: every slice through
//! alignedslice, the volume's info through ngmeta, every block through ngshard, each the typed
//! request of its endpoint (`request.rs`), built here from the stack's fields.
//!
//! Every executor (`executor/`) runs the same tasks, so an in-process run, a remote one and batch
//! tasks write the same volume. A stack is checked as it is read (`parse.rs`) by the core's own
//! rules for each request, so every task it makes is one every endpoint accepts.

use std::fmt;

use clap::ValueEnum;
use emwrite::layout::{BLOCK_EDGE, stack_blocks};
use emwrite::request::{AlignedSliceRequest, NgMetaRequest, NgShardRequest, OutputFormat};
use emwrite::storage::location::{Location, Store};
use emwrite::storage::router::DefaultStore;
use emwrite::window::Window;
use serde::Deserialize;

use crate::request::Request;

/// A whole stack, checked: every task it makes is a valid request.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Location holding `raw/` and receiving `align/` and `neuroglancer/`.
    pub dest: Location,
    /// Location receiving the tile packs.
    pub dest_tmp: Location,
    /// Width and height of the aligned frame.
    pub bbox: [u32; 2],
    /// Voxel size at scale 0, nm, x y z.
    pub resolution: [f64; 3],
    /// Also write the raw-encoded volume.
    pub write_raw: bool,
    /// The volumes written: precomputed, OME-Zarr, or both.
    pub format: OutputFormat,
    /// JPEG quality of the volume, 1–100.
    pub jpeg_quality: u8,
    /// Maps 16-bit slices to 8 bits.
    pub window: Option<Window>,
    /// The z between the first and last slice that no slice has, filled with black; empty
    /// unless the stack file or the command line asked for gaps to be filled.
    pub missing: Vec<u32>,
    /// The slices, in file order; their z are distinct.
    pub slices: Vec<Slice>,
}

/// One raw slice and its place in the volume, as a stack file lists it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slice {
    /// The slice's z index in the volume.
    pub z: u32,
    /// Object name under `<dest>/raw/`.
    pub img: String,
    /// `[a, b, c, d, e, f]` by columns, as in the original.
    pub transform: [f64; 6],
}

/// The three phases of a stack, in the order they run; each starts when the previous one
/// succeeded (`docs/design.md` §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Phase {
    /// Every slice through `alignedslice`: aligned PNGs and tile packs.
    Align,
    /// The volume's `info` through `ngmeta`.
    Meta,
    /// Every block through `ngshard`.
    Shard,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Self; 3] = [Self::Align, Self::Meta, Self::Shard];

    /// The phase's name on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Align => "align",
            Self::Meta => "meta",
            Self::Shard => "shard",
        }
    }

    /// What one task of the phase works on, for progress lines: `slices`, `info`, `blocks`.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Align => "slices",
            Self::Meta => "info",
            Self::Shard => "blocks",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a task works on: a slice, the volume's info, or a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskId {
    /// Slice `z`, read from `<dest>/raw/<img>`.
    Slice {
        /// Its z.
        z: u32,
        /// Its raw image.
        img: String,
    },
    /// The volume's `info`.
    Meta,
    /// Block `[bx, by, bz]`, in units of [`BLOCK_EDGE`].
    Block([u32; 3]),
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskId::Slice { z, img } => write!(f, "slice z={z} ({img})"),
            TaskId::Meta => f.write_str("ngmeta"),
            TaskId::Block([x, y, z]) => write!(f, "block ({x}, {y}, {z})"),
        }
    }
}

/// One task of a phase: the request its endpoint takes.
#[derive(Debug, Clone)]
pub struct StackTask {
    /// What it works on.
    pub id: TaskId,
    /// Its request.
    pub request: Request,
}

impl Stack {
    /// Whether every location of the stack is on GCS when bare bucket names go to `store`: a
    /// service writing it then writes where this process can look too.
    pub fn all_on_gcs(&self, store: DefaultStore) -> bool {
        [&self.dest, &self.dest_tmp]
            .iter()
            .all(|location| location.store() == Store::Gcs || store == DefaultStore::Gcs)
    }

    /// The first slice's z.
    pub fn minz(&self) -> u32 {
        self.slices.iter().map(|s| s.z).min().unwrap_or(0)
    }

    /// The last slice's z.
    pub fn maxz(&self) -> u32 {
        self.slices.iter().map(|s| s.z).max().unwrap_or(0)
    }

    /// The blocks of the volume, in the order `ngshard` tasks run.
    pub fn blocks(&self) -> impl Iterator<Item = [u32; 3]> {
        stack_blocks(self.bbox, self.minz(), self.maxz())
    }

    /// The tasks of `phase`, in a fixed order (batch shares depend on it).
    pub fn tasks(&self, phase: Phase) -> Vec<StackTask> {
        match phase {
            Phase::Align => self
                .slices
                .iter()
                .map(|slice| StackTask {
                    id: TaskId::Slice {
                        z: slice.z,
                        img: slice.img.clone(),
                    },
                    request: Request::AlignedSlice(self.slice_request(slice)),
                })
                .collect(),
            Phase::Meta => vec![StackTask {
                id: TaskId::Meta,
                request: Request::NgMeta(self.meta_request()),
            }],
            Phase::Shard => self
                .blocks()
                .map(|block| StackTask {
                    id: TaskId::Block(block),
                    request: Request::NgShard(self.block_request(block)),
                })
                .collect(),
        }
    }

    /// The alignedslice request of `slice`: its tiles are the volume's blocks' edge.
    pub fn slice_request(&self, slice: &Slice) -> AlignedSliceRequest {
        AlignedSliceRequest {
            img: slice.img.clone(),
            transform: slice.transform,
            bbox: self.bbox,
            dest: self.dest.clone(),
            dest_tmp: self.dest_tmp.clone(),
            slice: slice.z,
            shard_size: BLOCK_EDGE,
            window: self.window,
        }
    }

    /// The ngmeta request of the volume.
    pub fn meta_request(&self) -> NgMetaRequest {
        NgMetaRequest {
            dest: self.dest.clone(),
            minz: self.minz(),
            maxz: self.maxz(),
            bbox: self.bbox,
            write_raw: self.write_raw,
            resolution_nm: self.resolution,
            format: self.format,
        }
    }

    /// The ngshard request of `block`, reading the tile packs of `dest_tmp`; it lists only the
    /// missing slices inside the block.
    pub fn block_request(&self, block: [u32; 3]) -> NgShardRequest {
        let mut request = NgShardRequest {
            dest: self.dest.clone(),
            source: self.dest_tmp.clone(),
            start: block,
            minz: self.minz(),
            maxz: self.maxz(),
            bbox: self.bbox,
            write_raw: self.write_raw,
            jpeg_quality: self.jpeg_quality,
            missing: self.missing.clone(),
            format: self.format,
        };
        request.missing = request.missing_in_block();
        request
    }
}

#[cfg(test)]
impl Stack {
    /// A stack of slices `zs` (identity transforms, `s<z>.png`) into `lab` and `lab-tmp`, with
    /// the defaults of a stack file otherwise: the tests' one way to make one.
    pub fn for_tests(zs: impl IntoIterator<Item = u32>, bbox: [u32; 2], write_raw: bool) -> Self {
        let location = |field, text| Location::parse(field, text).expect("a location");
        Stack {
            dest: location("dest", "lab"),
            dest_tmp: location("dest-tmp", "lab-tmp"),
            bbox,
            resolution: [8.0; 3],
            write_raw,
            jpeg_quality: 75,
            window: None,
            missing: Vec::new(),
            format: Default::default(),
            slices: zs
                .into_iter()
                .map(|z| Slice {
                    z,
                    img: format!("s{z}.png"),
                    transform: [1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(zs: &[u32]) -> Stack {
        Stack::for_tests(zs.iter().copied(), [1300, 1100], false)
    }

    #[test]
    fn tasks_are_the_original_requests_for_every_phase() {
        let stack = stack(&[3, 1030]);
        let align = stack.tasks(Phase::Align);
        assert_eq!(align.len(), 2);
        assert_eq!(align[1].id.to_string(), "slice z=1030 (s1030.png)");
        let Request::AlignedSlice(first) = &align[0].request else {
            panic!("an alignedslice request");
        };
        assert_eq!(
            (first.dest_tmp.to_string(), first.slice),
            ("lab-tmp".into(), 3)
        );
        let meta = stack.tasks(Phase::Meta);
        let Request::NgMeta(info) = &meta[0].request else {
            panic!("an ngmeta request");
        };
        assert_eq!((info.minz, info.maxz), (3, 1030));
        // 1300 × 1100 is 2 × 2 blocks; z 3..=1030 spans blocks 0 and 1.
        let shard = stack.tasks(Phase::Shard);
        assert_eq!(shard.len(), 8);
        assert_eq!(shard[7].id, TaskId::Block([1, 1, 1]));
        for task in align.iter().chain(&meta).chain(&shard) {
            let (endpoint, body) = (task.request.endpoint(), task.request.to_json());
            Request::from_json(endpoint, &body).expect("every task is a valid request");
        }
    }

    #[test]
    fn only_a_stack_whose_locations_are_all_on_gcs_is_all_on_gcs() {
        let mut stack = stack(&[0]);
        assert!(!stack.all_on_gcs(DefaultStore::Local));
        assert!(stack.all_on_gcs(DefaultStore::Gcs));
        stack.dest = Location::parse("dest", "gs://lab/run1").expect("a location");
        assert!(!stack.all_on_gcs(DefaultStore::Local), "dest-tmp is local");
        stack.dest_tmp = Location::parse("dest-tmp", "gs://lab-tmp").expect("a location");
        assert!(stack.all_on_gcs(DefaultStore::Local));
    }
}
