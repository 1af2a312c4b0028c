//! Validated, typed requests, one per endpoint; required fields are never `Option`.
//!
//! Both doors lead here: the HTTP handler parses the original's loose JSON (`from_json`, over
//! [`raw::LooseFields`]), the typed WIT exports build the structs directly, and both call
//! `validate`, so one set of rules (and one set of messages) applies to every caller. Each
//! request also writes itself back as the original's plain JSON (`to_json`), which `from_json`
//! reads back to an equal request: the host builds typed requests and sends them so. Every key
//! is spelled in [`wire`].

pub mod raw;
pub mod wire;

use serde_json::{Map, Value};

pub use crate::layout::MAX_FRAME_EDGE;
use crate::layout::{BLOCK_EDGE, block_grid, block_origin};
use crate::storage::location::{Location, check_object_name};
use crate::window::Window;
use crate::{Error, Result};
use raw::LooseFields;
use wire::{
    BBOX, DEST, DEST_TMP, IMG, JPEG_QUALITY, MAXZ, MINZ, MISSING, RESOLUTION, SHARD_SIZE, SLICE,
    SOURCE, START, TRANSFORM, WINDOW, WRITE_RAW,
};
pub use wire::{DEFAULT_JPEG_QUALITY, DEFAULT_RESOLUTION_NM, FORMAT, OutputFormat};

/// Largest number of pixels in an aligned frame: 4 Gi 8-bit voxels, three hemibrain-sized
/// slices (34,432 × 39,552). Memory no longer follows the frame's area (see
/// [`MAX_FRAME_EDGE`]); this bounds the time of one alignedslice task (minutes) and the size
/// of its objects.
pub const MAX_FRAME_PIXELS: u64 = 1 << 32;

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
    /// Maps a 16-bit slice to 8 bits; `None` for 8-bit slices, which a window would also map.
    pub window: Option<Window>,
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
    /// Voxel size in nm at scale 0, x y z.
    pub resolution_nm: [f64; 3],
    /// The volumes described: the precomputed `info`s, the OME-Zarr metadata, or both.
    pub format: OutputFormat,
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
    /// Slices of `[minz, maxz]` with no tile pack, black in the volume: ascending, no repeats.
    pub missing: Vec<u32>,
    /// The volumes written: precomputed shards, OME-Zarr shards, or both.
    pub format: OutputFormat,
}

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

/// `resolution`: one number of nm for cubic voxels (the original's form), or `[x, y, z]`.
fn resolution(fields: &LooseFields, field: &str) -> Result<[f64; 3]> {
    match fields.number(field) {
        Ok(nm) => Ok([nm; 3]),
        Err(_) => {
            let axes = fields.numbers(field, 3).map_err(|_| {
                Error::bad_field(field, "expected a number of nm, or [x, y, z]".to_owned())
            })?;
            Ok([axes[0], axes[1], axes[2]])
        }
    }
}

/// `resolution` as written back: one number when the voxels are cubes, as the original wrote it.
fn resolution_json([x, y, z]: [f64; 3]) -> Value {
    if x == y && y == z {
        x.into()
    } else {
        [x, y, z].as_slice().into()
    }
}

/// The volume's endpoints take `shard-size` only to check it: the block edge is fixed.
fn require_block_size(fields: &LooseFields) -> Result<()> {
    check_block_size(fields.optional(SHARD_SIZE, BLOCK_EDGE, u32_field)?)
}

/// The optional `format` field, precomputed when absent.
fn format_field(fields: &LooseFields) -> Result<OutputFormat> {
    fields.optional(FORMAT, OutputFormat::default(), |f, field| {
        f.string(field)?
            .parse()
            .map_err(|problem: String| Error::bad_field(field, problem))
    })
}

/// The `format` pair of a request's JSON, left out when it is the default: a request of the
/// original's kind reads as it always did.
fn format_pair(format: OutputFormat) -> Option<(&'static str, Value)> {
    (!format.is_default()).then(|| (FORMAT, format.as_str().into()))
}

/// A JSON object from `(key, value)` pairs, as bytes.
fn object(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Vec<u8> {
    let map: Map<String, Value> = pairs
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    Value::Object(map).to_string().into_bytes()
}

/// The volume's layout (docs/design.md §4) only works with 1024-voxel blocks.
pub fn check_block_size(shard_size: u32) -> Result<()> {
    if shard_size != BLOCK_EDGE {
        return Err(Error::bad_field(
            SHARD_SIZE,
            format!("must be {BLOCK_EDGE} (the volume's block size), got {shard_size}"),
        ));
    }
    Ok(())
}

fn check_bbox(bbox: [u32; 2]) -> Result<()> {
    let [w, h] = bbox;
    if w == 0 || h == 0 {
        return Err(Error::bad_field(
            BBOX,
            format!("width and height must be at least 1, got [{w}, {h}]"),
        ));
    }
    if w > MAX_FRAME_EDGE || h > MAX_FRAME_EDGE || u64::from(w) * u64::from(h) > MAX_FRAME_PIXELS {
        return Err(Error::new(
            crate::ErrorKind::TooLarge,
            format!(
                "{}: [{w}, {h}] exceeds the limit of {MAX_FRAME_PIXELS} pixels and {MAX_FRAME_EDGE} per edge",
                BBOX
            ),
        ));
    }
    Ok(())
}

fn check_z_range(minz: u32, maxz: u32) -> Result<()> {
    if minz > maxz {
        return Err(Error::bad_field(
            MAXZ,
            format!("{maxz} is below minz {minz}"),
        ));
    }
    Ok(())
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
            window: f.optional(WINDOW, None, |f, field| {
                let [low, high] = f.uints(field, 2)?[..] else {
                    unreachable!("uints gives the 2 numbers asked for")
                };
                Window::new(low, high).map(Some)
            })?,
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
        let window = self.window.map(|w| (WINDOW, w.bounds().as_slice().into()));
        object(
            [
                (IMG, self.img.as_str().into()),
                (TRANSFORM, self.transform.as_slice().into()),
                (BBOX, self.bbox.as_slice().into()),
                (DEST, self.dest.to_string().into()),
                (DEST_TMP, self.dest_tmp.to_string().into()),
                (SLICE, self.slice.into()),
                (SHARD_SIZE, self.shard_size.into()),
            ]
            .into_iter()
            .chain(window),
        )
    }

    /// Checks the rules that do not depend on the JSON form.
    pub fn validate(&self) -> Result<()> {
        check_object_name(IMG, &self.img)?;
        check_bbox(self.bbox)?;
        if !(16..=16384).contains(&self.shard_size) {
            return Err(Error::bad_field(
                SHARD_SIZE,
                format!("must be between 16 and 16384, got {}", self.shard_size),
            ));
        }
        crate::resample::affine::AffineTransform::new(self.transform).inverse()?;
        Ok(())
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
            resolution_nm: f.optional(RESOLUTION, [DEFAULT_RESOLUTION_NM; 3], resolution)?,
            format: format_field(&f)?,
        };
        request.validate()?;
        Ok(request)
    }

    /// The request as the original's JSON body (with `shard-size`, which the original
    /// required), which [`NgMetaRequest::from_json`] reads back to an equal request.
    pub fn to_json(&self) -> Vec<u8> {
        object(
            [
                (DEST, self.dest.to_string().into()),
                (MINZ, self.minz.into()),
                (MAXZ, self.maxz.into()),
                (SHARD_SIZE, BLOCK_EDGE.into()),
                (BBOX, self.bbox.as_slice().into()),
                (WRITE_RAW, self.write_raw.into()),
                (RESOLUTION, resolution_json(self.resolution_nm)),
            ]
            .into_iter()
            .chain(format_pair(self.format)),
        )
    }

    /// Checks the rules that do not depend on the JSON form.
    pub fn validate(&self) -> Result<()> {
        check_bbox(self.bbox)?;
        check_z_range(self.minz, self.maxz)?;
        if let Some(nm) = self
            .resolution_nm
            .iter()
            .find(|nm| !(nm.is_finite() && **nm > 0.0))
        {
            return Err(Error::bad_field(
                RESOLUTION,
                format!("must be a positive number of nm, got {nm}"),
            ));
        }
        Ok(())
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
            missing: f.optional(MISSING, Vec::new(), |f, field| {
                f.uint_list(field)?
                    .into_iter()
                    .map(|z| {
                        u32::try_from(z)
                            .map_err(|_| Error::bad_field(field, format!("{z} is too large")))
                    })
                    .collect()
            })?,
            format: format_field(&f)?,
        };
        request.validate()?;
        Ok(request)
    }

    /// The request as the original's JSON body (with `shard-size`, which the original
    /// required), which [`NgShardRequest::from_json`] reads back to an equal request.
    pub fn to_json(&self) -> Vec<u8> {
        object(
            [
                (DEST, self.dest.to_string().into()),
                (SOURCE, self.source.to_string().into()),
                (START, self.start.as_slice().into()),
                (SHARD_SIZE, BLOCK_EDGE.into()),
                (MINZ, self.minz.into()),
                (MAXZ, self.maxz.into()),
                (BBOX, self.bbox.as_slice().into()),
                (WRITE_RAW, self.write_raw.into()),
                (JPEG_QUALITY, self.jpeg_quality.into()),
            ]
            .into_iter()
            .chain((!self.missing.is_empty()).then(|| (MISSING, self.missing.as_slice().into())))
            .chain(format_pair(self.format)),
        )
    }

    /// Whether slice `z` is one of the request's [`missing`](Self::missing) slices.
    pub fn is_missing(&self, z: u64) -> bool {
        u32::try_from(z).is_ok_and(|z| self.missing.binary_search(&z).is_ok())
    }

    /// The missing slices inside the request's block: what decides the block's bytes, and what
    /// its manifest records.
    pub fn missing_in_block(&self) -> Vec<u32> {
        let [_, _, z0] = block_origin(self.start);
        let block = z0..z0 + u64::from(BLOCK_EDGE);
        let inside = |z: &&u32| block.contains(&u64::from(**z));
        self.missing.iter().filter(inside).copied().collect()
    }

    /// Checks the rules that do not depend on the JSON form, including that the block lies
    /// inside the volume.
    pub fn validate(&self) -> Result<()> {
        check_bbox(self.bbox)?;
        check_z_range(self.minz, self.maxz)?;
        if !(1..=100).contains(&self.jpeg_quality) {
            return Err(Error::bad_field(
                JPEG_QUALITY,
                format!("must be between 1 and 100, got {}", self.jpeg_quality),
            ));
        }
        if let Some(pair) = self.missing.windows(2).find(|pair| pair[0] >= pair[1]) {
            return Err(Error::bad_field(
                MISSING,
                format!(
                    "must ascend with no repeats, got {} then {}",
                    pair[0], pair[1]
                ),
            ));
        }
        if let Some(z) = self
            .missing
            .iter()
            .find(|&&z| z < self.minz || z > self.maxz)
        {
            return Err(Error::bad_field(
                MISSING,
                format!("{z} is outside minz..maxz ({}..{})", self.minz, self.maxz),
            ));
        }
        let blocks = block_grid(self.bbox, self.maxz);
        if self.start.iter().zip(blocks).any(|(&s, n)| s >= n) {
            return Err(Error::bad_field(
                START,
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
            window: None,
        }
    }

    fn meta() -> NgMetaRequest {
        NgMetaRequest {
            dest: location("emdata"),
            minz: 3,
            maxz: 1030,
            bbox: [1300, 1100],
            write_raw: true,
            resolution_nm: [4.5; 3],
            format: OutputFormat::Precomputed,
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
            missing: Vec::new(),
            format: OutputFormat::Precomputed,
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
    fn resolution_is_one_number_or_three() {
        let body = |resolution: &str| {
            format!(
                r#"{{"dest": "d", "minz": 0, "maxz": 5, "bbox": [10, 10], "resolution": {resolution}}}"#
            )
        };
        let read = |resolution: &str| NgMetaRequest::from_json(body(resolution).as_bytes());
        assert_eq!(read("8").unwrap().resolution_nm, [8.0; 3]);
        assert_eq!(read("[8, 8, 40]").unwrap().resolution_nm, [8.0, 8.0, 40.0]);
        assert_eq!(
            read(r#""[4 4 40]""#).unwrap().resolution_nm,
            [4.0, 4.0, 40.0]
        );
        for bad in ["[8, 40]", "[8, 0, 40]", "-1", r#""fine""#] {
            let e = read(bad).unwrap_err();
            assert!(e.message().starts_with("resolution: "), "{bad}: {e}");
        }
        // Written back as it came: cubes as one number, as the original wrote it.
        let cubic = read("8").unwrap().to_json();
        assert_eq!(
            serde_json::from_slice::<Value>(&cubic).unwrap()[RESOLUTION],
            8.0
        );
        let request = read("[8, 8, 40]").unwrap();
        assert_eq!(
            NgMetaRequest::from_json(&request.to_json()).unwrap(),
            request
        );
    }

    #[test]
    fn window_and_missing_round_trip_and_are_checked() {
        let request = AlignedSliceRequest {
            window: Some(Window::new(100, 4000).unwrap()),
            ..aligned()
        };
        let json = request.to_json();
        assert_eq!(AlignedSliceRequest::from_json(&json).unwrap(), request);
        assert_eq!(
            serde_json::from_slice::<Value>(&json).unwrap()[WINDOW],
            serde_json::json!([100, 4000])
        );
        let loose = ALIGNED.replace(r#""slice": "3""#, r#""slice": "3", "window": "[7 9]""#);
        let request = AlignedSliceRequest::from_json(loose.as_bytes()).unwrap();
        assert_eq!(request.window.map(Window::bounds), Some([7, 9]));
        for (window, problem) in [
            ("[9, 7]", "low must be below high"),
            ("[1, 2, 3]", "expected 2"),
        ] {
            let body = ALIGNED.replace(
                r#""slice": "3""#,
                &format!(r#""slice": 3, "window": {window:?}"#),
            );
            let e = AlignedSliceRequest::from_json(body.as_bytes()).unwrap_err();
            assert!(
                e.message().starts_with("window: ") && e.message().contains(problem),
                "{e}"
            );
        }

        let request = NgShardRequest {
            missing: vec![4, 1029],
            ..shard()
        };
        assert_eq!(
            NgShardRequest::from_json(&request.to_json()).unwrap(),
            request
        );
        assert!(request.is_missing(1029) && !request.is_missing(5));
        // Block [1, 1, 1] holds z 1024..2048.
        assert_eq!(request.missing_in_block(), [1029]);
        for (missing, problem) in [(vec![9, 4], "must ascend"), (vec![2], "outside minz..maxz")] {
            let e = NgShardRequest { missing, ..shard() }
                .validate()
                .unwrap_err();
            assert!(
                e.message().starts_with("missing: ") && e.message().contains(problem),
                "{e}"
            );
        }
    }

    #[test]
    fn format_round_trips_and_a_bad_one_names_the_field() {
        for format in [OutputFormat::OmeZarr, OutputFormat::Both] {
            let request = NgMetaRequest { format, ..meta() };
            let json = request.to_json();
            assert_eq!(NgMetaRequest::from_json(&json).unwrap(), request);
            assert_eq!(
                serde_json::from_slice::<Value>(&json).unwrap()[FORMAT],
                format.as_str()
            );
            let request = NgShardRequest { format, ..shard() };
            assert_eq!(
                NgShardRequest::from_json(&request.to_json()).unwrap(),
                request
            );
        }
        let body = br#"{"dest": "d", "minz": 0, "maxz": 5, "bbox": [10, 10], "format": "n5"}"#;
        let e = NgMetaRequest::from_json(body).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::BadRequest);
        assert!(e.message().starts_with("format: expected one of"), "{e}");
    }
}
