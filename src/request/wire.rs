//! The requests' wire shape, both ways: every JSON key of the original API, spelled once; the
//! typed requests read from the original's loose JSON and written back as its plain JSON.
//!
//! docs/design.md §4 lists the fields. Reading accepts every form the original accepted
//! ([`LooseFields`]); writing gives the plain form (numbers as numbers, lists as arrays,
//! booleans as `true`/`false`), which every reader of the original API takes. A field added to a
//! request touches this module (its key, how it is read and written) and the typed request in
//! `request/mod.rs` (its type and its rules), nothing else: every other module that names a key
//! (the block manifest, the host's stack file, messages) takes it from here.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::raw::LooseFields;
use super::{
    AlignedSliceRequest, DEFAULT_JPEG_QUALITY, DEFAULT_RESOLUTION_NM, NgMetaRequest,
    NgShardRequest, check_block_size,
};
use crate::layout::BLOCK_EDGE;
use crate::storage::location::Location;
use crate::{Error, Result};

/// `img`: the raw slice's object name under `<dest>/raw/` (alignedslice).
pub const IMG: &str = "img";
/// `transform`: `[a, b, c, d, e, f]`, the affine matrix by columns (alignedslice).
pub const TRANSFORM: &str = "transform";
/// `bbox`: `[width, height]` of the aligned frame (every endpoint).
pub const BBOX: &str = "bbox";
/// `dest`: the bucket or `gs://` location of the volume (every endpoint).
pub const DEST: &str = "dest";
/// `dest-tmp`: where the tile packs go (alignedslice).
pub const DEST_TMP: &str = "dest-tmp";
/// `slice`: the slice's z (alignedslice).
pub const SLICE: &str = "slice";
/// `shard-size`: the tile edge, which for the volume must be the block edge (every endpoint).
pub const SHARD_SIZE: &str = "shard-size";
/// `source`: where the tile packs are (ngshard).
pub const SOURCE: &str = "source";
/// `start`: `[bx, by, bz]`, the block in units of 1024 (ngshard).
pub const START: &str = "start";
/// `minz`: the first slice (ngmeta, ngshard).
pub const MINZ: &str = "minz";
/// `maxz`: the last slice (ngmeta, ngshard).
pub const MAXZ: &str = "maxz";
/// `writeRaw`: also write the raw-encoded volume (ngmeta, ngshard).
pub const WRITE_RAW: &str = "writeRaw";
/// `resolution`: voxel size in nm (ngmeta; ours, not the original's).
pub const RESOLUTION: &str = "resolution";
/// `jpeg-quality`: JPEG quality, 1–100 (ngshard; ours, not the original's).
pub const JPEG_QUALITY: &str = "jpeg-quality";

/// `field`, an integer that must fit a u32.
fn u32_field(fields: &LooseFields, field: &str) -> Result<u32> {
    let value = fields.uint(field)?;
    u32::try_from(value).map_err(|_| Error::bad_field(field, format!("{value} is too large")))
}

/// `field`, a list of `N` integers that must each fit a u32.
fn u32_list<const N: usize>(fields: &LooseFields, field: &str) -> Result<[u32; N]> {
    let values = fields.uints(field, N)?;
    let mut out = [0u32; N];
    for (slot, value) in out.iter_mut().zip(values) {
        *slot = u32::try_from(value)
            .map_err(|_| Error::bad_field(field, format!("{value} is too large")))?;
    }
    Ok(out)
}

/// The location in `field`.
fn location(fields: &LooseFields, field: &str) -> Result<Location> {
    Location::parse(field, &fields.string(field)?)
}

/// The volume's endpoints take `shard-size` only to check it: the block edge is fixed.
fn require_block_size(fields: &LooseFields) -> Result<()> {
    check_block_size(fields.optional(SHARD_SIZE, BLOCK_EDGE, u32_field)?)
}

/// A JSON object from `(key, value)` pairs, as bytes.
fn object(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Vec<u8> {
    let map: Map<String, Value> = pairs
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    Value::Object(map).to_string().into_bytes()
}

impl AlignedSliceRequest {
    /// Parses and validates the original's JSON body.
    pub fn from_json(body: &[u8]) -> Result<Self> {
        let f = LooseFields::parse(body)?;
        let transform = f.numbers(TRANSFORM, 6)?;
        let request = Self {
            img: f.string(IMG)?,
            transform: std::array::from_fn(|i| transform[i]),
            bbox: u32_list(&f, BBOX)?,
            dest: location(&f, DEST)?,
            dest_tmp: location(&f, DEST_TMP)?,
            slice: u32_field(&f, SLICE)?,
            shard_size: f.optional(SHARD_SIZE, BLOCK_EDGE, u32_field)?,
        };
        request.validate()?;
        Ok(request)
    }

    /// The request as the original's JSON body, which [`AlignedSliceRequest::from_json`] reads
    /// back to an equal request.
    ///
    /// ```
    /// use emwrite::request::AlignedSliceRequest;
    /// let body = br#"{"img": "s3.png", "transform": "[1 0 0 1 0 0]", "bbox": "[1300, 1100]",
    ///     "dest": "emdata", "dest-tmp": "emdata-tmp", "slice": "3"}"#;
    /// let request = AlignedSliceRequest::from_json(body)?;
    /// assert_eq!(AlignedSliceRequest::from_json(&request.to_json())?, request);
    /// # Ok::<(), emwrite::Error>(())
    /// ```
    pub fn to_json(&self) -> Vec<u8> {
        object([
            (IMG, self.img.as_str().into()),
            (TRANSFORM, self.transform.as_slice().into()),
            (BBOX, self.bbox.as_slice().into()),
            (DEST, self.dest.to_string().into()),
            (DEST_TMP, self.dest_tmp.to_string().into()),
            (SLICE, self.slice.into()),
            (SHARD_SIZE, self.shard_size.into()),
        ])
    }
}

impl NgMetaRequest {
    /// Parses and validates the original's JSON body.
    pub fn from_json(body: &[u8]) -> Result<Self> {
        let f = LooseFields::parse(body)?;
        require_block_size(&f)?;
        let request = Self {
            dest: location(&f, DEST)?,
            minz: u32_field(&f, MINZ)?,
            maxz: u32_field(&f, MAXZ)?,
            bbox: u32_list(&f, BBOX)?,
            write_raw: f.optional(WRITE_RAW, false, LooseFields::boolean)?,
            resolution_nm: f.optional(RESOLUTION, DEFAULT_RESOLUTION_NM, LooseFields::number)?,
        };
        request.validate()?;
        Ok(request)
    }

    /// The request as the original's JSON body (with `shard-size`, which the original
    /// required), which [`NgMetaRequest::from_json`] reads back to an equal request.
    pub fn to_json(&self) -> Vec<u8> {
        object([
            (DEST, self.dest.to_string().into()),
            (MINZ, self.minz.into()),
            (MAXZ, self.maxz.into()),
            (SHARD_SIZE, BLOCK_EDGE.into()),
            (BBOX, self.bbox.as_slice().into()),
            (WRITE_RAW, self.write_raw.into()),
            (RESOLUTION, self.resolution_nm.into()),
        ])
    }
}

impl NgShardRequest {
    /// Parses and validates the original's JSON body.
    pub fn from_json(body: &[u8]) -> Result<Self> {
        let f = LooseFields::parse(body)?;
        require_block_size(&f)?;
        let quality = f.optional(
            JPEG_QUALITY,
            u64::from(DEFAULT_JPEG_QUALITY),
            LooseFields::uint,
        )?;
        let request = Self {
            dest: location(&f, DEST)?,
            source: location(&f, SOURCE)?,
            start: u32_list(&f, START)?,
            minz: u32_field(&f, MINZ)?,
            maxz: u32_field(&f, MAXZ)?,
            bbox: u32_list(&f, BBOX)?,
            write_raw: f.optional(WRITE_RAW, false, LooseFields::boolean)?,
            jpeg_quality: u8::try_from(quality).map_err(|_| {
                Error::bad_field(
                    JPEG_QUALITY,
                    format!("must be between 1 and 100, got {quality}"),
                )
            })?,
        };
        request.validate()?;
        Ok(request)
    }

    /// The request as the original's JSON body (with `shard-size`, which the original
    /// required), which [`NgShardRequest::from_json`] reads back to an equal request.
    pub fn to_json(&self) -> Vec<u8> {
        object([
            (DEST, self.dest.to_string().into()),
            (SOURCE, self.source.to_string().into()),
            (START, self.start.as_slice().into()),
            (SHARD_SIZE, BLOCK_EDGE.into()),
            (MINZ, self.minz.into()),
            (MAXZ, self.maxz.into()),
            (BBOX, self.bbox.as_slice().into()),
            (WRITE_RAW, self.write_raw.into()),
            (JPEG_QUALITY, self.jpeg_quality.into()),
        ])
    }
}

/// The fields of an ngshard request that decide its block's bytes, as the request spells them:
/// what a block manifest records of the request that wrote it (`block::manifest`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockFields {
    /// As [`BBOX`].
    pub bbox: [u32; 2],
    /// As [`MINZ`].
    pub minz: u32,
    /// As [`MAXZ`].
    pub maxz: u32,
    /// As [`WRITE_RAW`].
    #[serde(rename = "writeRaw")]
    pub write_raw: bool,
    /// As [`JPEG_QUALITY`].
    #[serde(rename = "jpeg-quality")]
    pub jpeg_quality: u8,
}

impl From<&NgShardRequest> for BlockFields {
    fn from(request: &NgShardRequest) -> Self {
        Self {
            bbox: request.bbox,
            minz: request.minz,
            maxz: request.maxz,
            write_raw: request.write_raw,
            jpeg_quality: request.jpeg_quality,
        }
    }
}

/// A JSON stack file as the native host reads it (`emwrite pipeline STACK`): the fields every
/// task of the stack shares, in the requests' spelling, and the slices, whose shape (`S`) is the
/// host's. `writeRaw` may also be spelled `write-raw`, and the JPEG quality `jpegQuality` (the
/// stack file's own spelling) or `jpeg-quality` (the request's).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackFile<S> {
    /// As [`DEST`].
    pub dest: String,
    /// As [`DEST_TMP`].
    #[serde(rename = "dest-tmp")]
    pub dest_tmp: String,
    /// As [`BBOX`].
    pub bbox: [u32; 2],
    /// As [`RESOLUTION`], default [`DEFAULT_RESOLUTION_NM`].
    #[serde(default = "default_resolution")]
    pub resolution: f64,
    /// As [`WRITE_RAW`], default false.
    #[serde(rename = "writeRaw", alias = "write-raw", default)]
    pub write_raw: bool,
    /// As [`JPEG_QUALITY`], default [`DEFAULT_JPEG_QUALITY`].
    #[serde(
        rename = "jpegQuality",
        alias = "jpeg-quality",
        default = "default_jpeg_quality"
    )]
    pub jpeg_quality: u8,
    /// The slices, in file order.
    pub slices: Vec<S>,
}

fn default_resolution() -> f64 {
    DEFAULT_RESOLUTION_NM
}

fn default_jpeg_quality() -> u8 {
    DEFAULT_JPEG_QUALITY
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(text: &str) -> Location {
        Location::parse("test", text).expect("a valid location")
    }

    fn aligned() -> AlignedSliceRequest {
        AlignedSliceRequest {
            img: "sub/s0003.png".to_owned(),
            transform: [
                1.000586, -0.001459, 0.001459, 1.000586, 42.760783, 38.143721,
            ],
            bbox: [1300, 1100],
            dest: location("gs://lab/run1"),
            dest_tmp: location("lab-tmp"),
            slice: 3,
            shard_size: 512,
        }
    }

    fn meta() -> NgMetaRequest {
        NgMetaRequest {
            dest: location("emdata"),
            minz: 3,
            maxz: 1030,
            bbox: [1300, 1100],
            write_raw: true,
            resolution_nm: 4.5,
        }
    }

    fn shard() -> NgShardRequest {
        NgShardRequest {
            dest: location("gs://lab/run1/"),
            source: location("emdata-tmp"),
            start: [1, 1, 1],
            minz: 3,
            maxz: 1030,
            bbox: [1300, 1100],
            write_raw: false,
            jpeg_quality: 90,
        }
    }

    fn keys(json: &[u8]) -> Vec<String> {
        let value: Value = serde_json::from_slice(json).expect("JSON");
        value
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn typed_requests_round_trip_through_their_json() {
        let request = aligned();
        assert_eq!(
            AlignedSliceRequest::from_json(&request.to_json()).unwrap(),
            request
        );
        let request = meta();
        assert_eq!(
            NgMetaRequest::from_json(&request.to_json()).unwrap(),
            request
        );
        let request = shard();
        assert_eq!(
            NgShardRequest::from_json(&request.to_json()).unwrap(),
            request
        );
    }

    #[test]
    fn written_json_is_plain_and_names_every_field() {
        let json: Value = serde_json::from_slice(&aligned().to_json()).unwrap();
        assert_eq!(json[TRANSFORM][4], 42.760783);
        assert_eq!(json[DEST], "gs://lab/run1");
        assert_eq!(json[SLICE], 3);
        assert_eq!(
            keys(&aligned().to_json()),
            [BBOX, DEST, DEST_TMP, IMG, SHARD_SIZE, SLICE, TRANSFORM]
        );
        let json: Value = serde_json::from_slice(&meta().to_json()).unwrap();
        assert_eq!(json[WRITE_RAW], true);
        assert_eq!(json[RESOLUTION], 4.5);
        assert_eq!(json[SHARD_SIZE], 1024);
        assert_eq!(
            keys(&meta().to_json()),
            [BBOX, DEST, MAXZ, MINZ, RESOLUTION, SHARD_SIZE, WRITE_RAW]
        );
        let json: Value = serde_json::from_slice(&shard().to_json()).unwrap();
        assert_eq!(json[START], serde_json::json!([1, 1, 1]));
        assert_eq!(json[JPEG_QUALITY], 90);
        assert_eq!(
            keys(&shard().to_json()),
            [
                BBOX,
                DEST,
                JPEG_QUALITY,
                MAXZ,
                MINZ,
                SHARD_SIZE,
                SOURCE,
                START,
                WRITE_RAW
            ]
        );
    }

    #[test]
    fn the_originals_loose_forms_read_as_the_plain_ones() {
        let loose = br#"{"img": "sub/s0003.png", "transform":
            "[1.000586 -0.001459 0.001459 1.000586 42.760783 38.143721]", "bbox": "[1300, 1100]",
            "dest": "gs://lab/run1", "dest-tmp": "lab-tmp", "slice": "3", "shard-size": "512"}"#;
        assert_eq!(AlignedSliceRequest::from_json(loose).unwrap(), aligned());
        let loose = br#"{"dest": "emdata", "minz": "3", "maxz": 1030.0, "shard-size": "1024",
            "bbox": "[1300 1100]", "writeRaw": "True", "resolution": "4.5"}"#;
        assert_eq!(NgMetaRequest::from_json(loose).unwrap(), meta());
        let loose = br#"{"dest": "gs://lab/run1/", "source": "emdata-tmp", "start": "[1, 1, 1]",
            "minz": 3, "maxz": "1030", "bbox": ["1300", 1100], "writeRaw": "false",
            "jpeg-quality": "90"}"#;
        assert_eq!(NgShardRequest::from_json(loose).unwrap(), shard());
    }

    #[test]
    fn serde_spellings_are_the_keys() {
        // serde's attributes take literals only; this holds them to the constants.
        let fields = BlockFields::from(&shard());
        assert_eq!(
            keys(&serde_json::to_vec(&fields).unwrap()),
            [BBOX, JPEG_QUALITY, MAXZ, MINZ, WRITE_RAW]
        );
        let file = format!(
            r#"{{"{DEST}": "lab", "{DEST_TMP}": "t", "{BBOX}": [1, 1], "{RESOLUTION}": 4,
                "{WRITE_RAW}": true, "{JPEG_QUALITY}": 80, "slices": []}}"#
        );
        let file: StackFile<u32> = serde_json::from_str(&file).unwrap();
        assert_eq!((file.write_raw, file.jpeg_quality), (true, 80));
    }

    #[test]
    fn a_stack_file_reads_both_spellings_and_defaults() {
        let file: StackFile<u32> = serde_json::from_str(
            r#"{"dest": "lab", "dest-tmp": "lab-tmp", "bbox": [20, 10], "write-raw": true,
                "jpeg-quality": 90, "slices": [3]}"#,
        )
        .unwrap();
        assert!(file.write_raw);
        assert_eq!(file.jpeg_quality, 90);
        assert_eq!(file.resolution, DEFAULT_RESOLUTION_NM);
        let file: StackFile<u32> = serde_json::from_str(
            r#"{"dest": "lab", "dest-tmp": "lab-tmp", "bbox": [20, 10], "writeRaw": false,
                "jpegQuality": 80, "resolution": 4, "slices": []}"#,
        )
        .unwrap();
        assert_eq!((file.write_raw, file.jpeg_quality), (false, 80));
        assert_eq!(file.resolution, 4.0);
        let unknown = r#"{"dest": "lab", "dest-tmp": "t", "bbox": [1, 1], "slices": [], "x": 1}"#;
        assert!(serde_json::from_str::<StackFile<u32>>(unknown).is_err());
    }
}
