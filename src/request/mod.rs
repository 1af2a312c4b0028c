//! Validated, typed requests, one per endpoint; required fields are never `Option`.
//!
//! Both doors lead here: the HTTP handler parses the original's loose JSON ([`wire`], over
//! [`raw::LooseFields`]), the typed WIT exports build the structs directly, and both call
//! `validate`, so one set of rules (and one set of messages) applies to every caller. The JSON
//! shape itself, both ways, and every key's spelling are [`wire`]'s.

pub mod raw;
pub mod wire;

use crate::layout::{BLOCK_EDGE, block_grid};
use crate::storage::location::{Location, check_object_name};
use crate::{Error, Result};

/// Largest aligned frame edge we accept. alignedslice holds a strip of about 1024 rows of the
/// frame and its tiles (`tasks::aligned_slice`), so the edge bounds its memory: 128 MiB of strip
/// at 2^17.
pub const MAX_FRAME_EDGE: u32 = 1 << 17;

/// Largest number of pixels in an aligned frame: 4 Gi 8-bit voxels, three hemibrain-sized
/// slices (34,432 × 39,552). Memory no longer follows the frame's area (see
/// [`MAX_FRAME_EDGE`]); this bounds the time of one alignedslice task (minutes) and the size
/// of its objects.
pub const MAX_FRAME_PIXELS: u64 = 1 << 32;

/// tensorstore's default JPEG quality, which the original service used.
pub const DEFAULT_JPEG_QUALITY: u8 = 75;

/// Default voxel size in nm (the original wrote 8 nm isotropic).
pub const DEFAULT_RESOLUTION_NM: f64 = 8.0;

/// `POST /alignedslice`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlignedSliceRequest {
    /// Object name under `<dest>/raw/`.
    pub img: String,
    /// `[a, b, c, d, e, f]`, the affine matrix by columns.
    pub transform: [f64; 6],
    /// Width and height of the aligned frame.
    pub bbox: [u32; 2],
    /// Holds `raw/`, receives `align/`.
    pub dest: Location,
    /// Receives the tile pack `<slice>`.
    pub dest_tmp: Location,
    /// The slice's z index.
    pub slice: u32,
    /// Tile edge of the tile pack.
    pub shard_size: u32,
}

/// `POST /ngmeta`.
#[derive(Clone, Debug, PartialEq)]
pub struct NgMetaRequest {
    /// Receives `neuroglancer/<encoding>/info`.
    pub dest: Location,
    /// First slice.
    pub minz: u32,
    /// Last slice (inclusive).
    pub maxz: u32,
    /// Width and height of the aligned frame.
    pub bbox: [u32; 2],
    /// Also describe a raw-encoded volume.
    pub write_raw: bool,
    /// Voxel size in nm at scale 0.
    pub resolution_nm: f64,
}

/// `POST /ngshard`.
#[derive(Clone, Debug, PartialEq)]
pub struct NgShardRequest {
    /// Holds the volume's `info` and receives its shards.
    pub dest: Location,
    /// Holds the tile packs.
    pub source: Location,
    /// Block position in units of [`BLOCK_EDGE`], x y z.
    pub start: [u32; 3],
    /// First slice.
    pub minz: u32,
    /// Last slice (inclusive).
    pub maxz: u32,
    /// Width and height of the aligned frame.
    pub bbox: [u32; 2],
    /// Also write the raw-encoded pyramid.
    pub write_raw: bool,
    /// JPEG quality, 1–100.
    pub jpeg_quality: u8,
}

/// The volume's layout (docs/design.md §4) only works with 1024-voxel blocks.
pub fn check_block_size(shard_size: u32) -> Result<()> {
    if shard_size != BLOCK_EDGE {
        return Err(Error::bad_field(
            wire::SHARD_SIZE,
            format!("must be {BLOCK_EDGE} (the volume's block size), got {shard_size}"),
        ));
    }
    Ok(())
}

fn check_bbox(bbox: [u32; 2]) -> Result<()> {
    let [w, h] = bbox;
    if w == 0 || h == 0 {
        return Err(Error::bad_field(
            wire::BBOX,
            format!("width and height must be at least 1, got [{w}, {h}]"),
        ));
    }
    if w > MAX_FRAME_EDGE || h > MAX_FRAME_EDGE || u64::from(w) * u64::from(h) > MAX_FRAME_PIXELS {
        return Err(Error::new(
            crate::ErrorKind::TooLarge,
            format!(
                "{}: [{w}, {h}] exceeds the limit of {MAX_FRAME_PIXELS} pixels and {MAX_FRAME_EDGE} per edge",
                wire::BBOX
            ),
        ));
    }
    Ok(())
}

fn check_z_range(minz: u32, maxz: u32) -> Result<()> {
    if minz > maxz {
        return Err(Error::bad_field(
            wire::MAXZ,
            format!("{maxz} is below minz {minz}"),
        ));
    }
    Ok(())
}

impl AlignedSliceRequest {
    /// Checks the rules that do not depend on the JSON form.
    pub fn validate(&self) -> Result<()> {
        check_object_name(wire::IMG, &self.img)?;
        check_bbox(self.bbox)?;
        if !(16..=16384).contains(&self.shard_size) {
            return Err(Error::bad_field(
                wire::SHARD_SIZE,
                format!("must be between 16 and 16384, got {}", self.shard_size),
            ));
        }
        crate::resample::affine::AffineTransform::new(self.transform).inverse()?;
        Ok(())
    }
}

impl NgMetaRequest {
    /// Checks the rules that do not depend on the JSON form.
    pub fn validate(&self) -> Result<()> {
        check_bbox(self.bbox)?;
        check_z_range(self.minz, self.maxz)?;
        if !(self.resolution_nm.is_finite() && self.resolution_nm > 0.0) {
            return Err(Error::bad_field(
                wire::RESOLUTION,
                format!(
                    "must be a positive number of nm, got {}",
                    self.resolution_nm
                ),
            ));
        }
        Ok(())
    }
}

impl NgShardRequest {
    /// Checks the rules that do not depend on the JSON form, including that the block lies
    /// inside the volume.
    pub fn validate(&self) -> Result<()> {
        check_bbox(self.bbox)?;
        check_z_range(self.minz, self.maxz)?;
        if !(1..=100).contains(&self.jpeg_quality) {
            return Err(Error::bad_field(
                wire::JPEG_QUALITY,
                format!("must be between 1 and 100, got {}", self.jpeg_quality),
            ));
        }
        let blocks = block_grid(self.bbox, self.maxz);
        if self.start.iter().zip(blocks).any(|(&s, n)| s >= n) {
            return Err(Error::bad_field(
                wire::START,
                format!(
                    "block {:?} lies outside the volume, which has {:?} blocks of {BLOCK_EDGE}³",
                    self.start, blocks
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    const ALIGNED: &str = r#"{"img": "s0003.png", "transform": "[1 0 0 1 0 0]", "bbox": "[1300, 1100]",
        "dest": "emdata", "dest-tmp": "emdata-tmp", "slice": "3"}"#;

    #[test]
    fn aligned_slice_accepts_the_originals_shape() {
        let r = AlignedSliceRequest::from_json(ALIGNED.as_bytes()).unwrap();
        assert_eq!(r.bbox, [1300, 1100]);
        assert_eq!(r.slice, 3);
        assert_eq!(r.shard_size, 1024);
        assert_eq!(r.transform, [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn a_hemibrain_sized_frame_is_accepted_and_larger_ones_are_too_large() {
        let body = ALIGNED.replace("[1300, 1100]", "[34432, 39552]");
        assert!(AlignedSliceRequest::from_json(body.as_bytes()).is_ok());
        for bbox in ["[100000, 100000]", "[131073, 8]"] {
            let body = ALIGNED.replace("[1300, 1100]", bbox);
            let e = AlignedSliceRequest::from_json(body.as_bytes()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TooLarge, "{bbox}");
        }
    }

    #[test]
    fn singular_transform_is_a_bad_transform_field() {
        let body = ALIGNED.replace("[1 0 0 1 0 0]", "[1 2 2 4 0 0]");
        let e = AlignedSliceRequest::from_json(body.as_bytes()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(e.message().starts_with("transform: "), "{e}");
    }

    #[test]
    fn ng_requests_insist_on_1024_blocks() {
        let body = r#"{"dest": "d", "minz": 0, "maxz": 5, "shard-size": 512, "bbox": "[10, 10]", "writeRaw": "True"}"#;
        let e = NgMetaRequest::from_json(body.as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "shard-size: must be 1024 (the volume's block size), got 512"
        );
    }

    #[test]
    fn ng_shard_parses_and_checks_the_block_is_inside() {
        let body = r#"{"dest": "d", "source": "t", "start": [1, 0, 0], "shard-size": 1024, "minz": 3,
            "maxz": 40, "bbox": "[1300, 1100]", "writeRaw": "False"}"#;
        let r = NgShardRequest::from_json(body.as_bytes()).unwrap();
        assert_eq!(r.start, [1, 0, 0]);
        assert!(!r.write_raw);
        assert_eq!(r.jpeg_quality, 75);
        let outside = body.replace("[1, 0, 0]", "[2, 0, 0]");
        let e = NgShardRequest::from_json(outside.as_bytes()).unwrap_err();
        assert!(
            e.message()
                .starts_with("start: block [2, 0, 0] lies outside"),
            "{e}"
        );
    }

    #[test]
    fn missing_and_mistyped_fields_are_named() {
        let e =
            NgMetaRequest::from_json(br#"{"dest": "d", "minz": 0, "bbox": "[1, 1]"}"#).unwrap_err();
        assert_eq!(e.to_string(), "maxz: missing");
        let e =
            NgMetaRequest::from_json(br#"{"dest": "d", "minz": 9, "maxz": 2, "bbox": "[1, 1]"}"#)
                .unwrap_err();
        assert_eq!(e.to_string(), "maxz: 2 is below minz 9");
        let e =
            NgMetaRequest::from_json(br#"{"dest": "d", "minz": 0, "maxz": 2, "bbox": "[0, 1]"}"#)
                .unwrap_err();
        assert!(e.message().starts_with("bbox: "));
    }
}
