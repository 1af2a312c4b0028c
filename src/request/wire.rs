//! The requests' wire shape: every JSON key of the original API, spelled once, the defaults of
//! the optional ones, and the serde shapes that carry request fields elsewhere (the block
//! manifest, the host's stack file).
//!
//! docs/design.md §4 lists the fields. The typed requests read and write their JSON in
//! `request/mod.rs` with these keys; every other module that names a key (validation messages,
//! the WIT exports, the block engine, the host) takes it from here. A field added to a request
//! touches this module (its key, its default) and the typed request in `request/mod.rs` (its
//! type, how it is read and written, its rules), nothing else. This module imports nothing of
//! emwrite's, so any module may name a key without a circle of imports.

use serde::{Deserialize, Serialize};

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
/// `resolution`: voxel size in nm, one number for cubes or `[x, y, z]` (ngmeta; ours, not the
/// original's).
pub const RESOLUTION: &str = "resolution";
/// `jpeg-quality`: JPEG quality, 1–100 (ngshard; ours, not the original's).
pub const JPEG_QUALITY: &str = "jpeg-quality";
/// `window`: `[low, high]`, the 16-bit values that map to 0 and 255 (alignedslice; ours).
pub const WINDOW: &str = "window";
/// `missing`: the slices of `[minz, maxz]` that have no tile pack and are black (ngshard; ours).
pub const MISSING: &str = "missing";
/// `format`: which volumes ngmeta and ngshard write, an [`OutputFormat`] (ours).
pub const FORMAT: &str = "format";
/// `fill-missing`: a stack file's consent to fill its missing slices with black (the host's).
pub const FILL_MISSING: &str = "fill-missing";

/// tensorstore's default JPEG quality, which the original service used: `jpeg-quality` when
/// absent.
pub const DEFAULT_JPEG_QUALITY: u8 = 75;

/// Default voxel size in nm (the original wrote 8 nm isotropic): `resolution` when absent.
pub const DEFAULT_RESOLUTION_NM: f64 = 8.0;

/// The volumes a request writes (`format`): Neuroglancer precomputed (the original's, the
/// default), OME-Zarr, or both from one pyramid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OutputFormat {
    /// `precomputed`: `neuroglancer/jpeg/` (and `raw/` with `writeRaw`) only.
    #[default]
    #[serde(rename = "precomputed")]
    Precomputed,
    /// `ome-zarr`: the OME-Zarr image only (`writeRaw` is then ignored: there is no JPEG).
    #[serde(rename = "ome-zarr")]
    OmeZarr,
    /// `both`: the precomputed volumes and the OME-Zarr image.
    #[serde(rename = "both")]
    Both,
}

impl OutputFormat {
    /// Every format, in the order messages list them.
    pub const ALL: [Self; 3] = [Self::Precomputed, Self::OmeZarr, Self::Both];

    /// The format as requests spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Precomputed => "precomputed",
            Self::OmeZarr => "ome-zarr",
            Self::Both => "both",
        }
    }

    /// Whether the precomputed volumes are written.
    pub fn precomputed(self) -> bool {
        self != Self::OmeZarr
    }

    /// Whether the OME-Zarr image is written.
    pub fn zarr(self) -> bool {
        self != Self::Precomputed
    }

    /// Whether this is the default, which a request or manifest leaves out.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl std::str::FromStr for OutputFormat {
    type Err = String;

    /// A format by its name; the error lists the names.
    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|format| format.as_str() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|f| f.as_str()).collect();
                format!("expected one of {}, got {name:?}", names.join(", "))
            })
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
    /// As [`MISSING`], only those in the block: absent when none, so a block of a stack without
    /// gaps records what it always did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<u32>,
    /// As [`FORMAT`]: absent when precomputed, so a block of the original's kind records what it
    /// always did.
    #[serde(default, skip_serializing_if = "OutputFormat::is_default")]
    pub format: OutputFormat,
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
    pub resolution: ResolutionField,
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
    /// As [`WINDOW`], for 16-bit slices.
    #[serde(default)]
    pub window: Option<[u64; 2]>,
    /// As [`FILL_MISSING`], default false: a gap in z is an error.
    #[serde(rename = "fill-missing", alias = "fillMissing", default)]
    pub fill_missing: bool,
    /// As [`FORMAT`], default precomputed.
    #[serde(default)]
    pub format: OutputFormat,
    /// The slices, in file order.
    pub slices: Vec<S>,
}

/// [`RESOLUTION`] as a stack file writes it: one number of nm for cubic voxels, or `[x, y, z]`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(untagged, expecting = "nm as one number or [x, y, z]")]
pub enum ResolutionField {
    /// Cubic voxels of this edge.
    Cubic(f64),
    /// Voxels of `[x, y, z]` nm.
    Axes([f64; 3]),
}

impl ResolutionField {
    /// The voxel size per axis, x y z.
    pub fn nm(self) -> [f64; 3] {
        match self {
            Self::Cubic(nm) => [nm; 3],
            Self::Axes(axes) => axes,
        }
    }
}

fn default_resolution() -> ResolutionField {
    ResolutionField::Cubic(DEFAULT_RESOLUTION_NM)
}

fn default_jpeg_quality() -> u8 {
    DEFAULT_JPEG_QUALITY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_spellings_are_the_keys() {
        // serde's attributes take literals only; this holds them to the constants.
        let fields = BlockFields {
            bbox: [1300, 1100],
            minz: 3,
            maxz: 1030,
            write_raw: false,
            jpeg_quality: 90,
            missing: Vec::new(),
            format: OutputFormat::Precomputed,
        };
        let json = serde_json::to_value(&fields).unwrap();
        for (key, value) in [(BBOX, "[1300,1100]"), (MINZ, "3"), (MAXZ, "1030")] {
            assert_eq!(json[key].to_string(), value, "{key}");
        }
        let (write_raw, quality) = (json[WRITE_RAW].as_bool(), json[JPEG_QUALITY].as_u64());
        assert_eq!((write_raw, quality), (Some(false), Some(90)));
        assert_eq!(json.as_object().map(|o| o.len()), Some(5));
        let file = format!(
            r#"{{"{DEST}": "lab", "{DEST_TMP}": "t", "{BBOX}": [1, 1], "{RESOLUTION}": 4,
                "{WRITE_RAW}": true, "{JPEG_QUALITY}": 80, "slices": []}}"#
        );
        let file: StackFile<u32> = serde_json::from_str(&file).unwrap();
        assert_eq!((file.write_raw, file.jpeg_quality), (true, 80));
        let gaps = BlockFields {
            missing: vec![7, 9],
            ..fields
        };
        assert_eq!(
            serde_json::to_value(&gaps).unwrap()[MISSING],
            serde_json::json!([7, 9])
        );
        let file = format!(
            r#"{{"{DEST}": "lab", "{DEST_TMP}": "t", "{BBOX}": [1, 1], "{WINDOW}": [9, 900],
                "{FILL_MISSING}": true, "slices": []}}"#
        );
        let file: StackFile<u32> = serde_json::from_str(&file).unwrap();
        assert_eq!((file.window, file.fill_missing), (Some([9, 900]), true));
        let both = BlockFields {
            format: OutputFormat::Both,
            ..fields
        };
        assert_eq!(serde_json::to_value(&both).unwrap()[FORMAT], "both");
        let file = format!(
            r#"{{"{DEST}": "lab", "{DEST_TMP}": "t", "{BBOX}": [1, 1], "{FORMAT}": "ome-zarr",
                "slices": []}}"#
        );
        let file: StackFile<u32> = serde_json::from_str(&file).unwrap();
        assert_eq!(file.format, OutputFormat::OmeZarr);
    }

    #[test]
    fn formats_by_name_both_ways() {
        for format in OutputFormat::ALL {
            assert_eq!(format.as_str().parse(), Ok(format));
            let json = serde_json::to_value(format).unwrap();
            assert_eq!(json, format.as_str());
        }
        assert_eq!(
            "zarr".parse::<OutputFormat>(),
            Err(r#"expected one of precomputed, ome-zarr, both, got "zarr""#.to_owned())
        );
        assert!(OutputFormat::Both.precomputed() && OutputFormat::Both.zarr());
        assert!(!OutputFormat::OmeZarr.precomputed() && !OutputFormat::Precomputed.zarr());
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
        assert_eq!(file.resolution.nm(), [DEFAULT_RESOLUTION_NM; 3]);
        let file: StackFile<u32> = serde_json::from_str(
            r#"{"dest": "lab", "dest-tmp": "lab-tmp", "bbox": [20, 10], "writeRaw": false,
                "jpegQuality": 80, "resolution": 4, "slices": []}"#,
        )
        .unwrap();
        assert_eq!((file.write_raw, file.jpeg_quality), (false, 80));
        assert_eq!(file.resolution.nm(), [4.0; 3]);
        let file: StackFile<u32> = serde_json::from_str(
            r#"{"dest": "lab", "dest-tmp": "t", "bbox": [1, 1], "resolution": [8, 8, 40], "slices": []}"#,
        )
        .unwrap();
        assert_eq!(file.resolution.nm(), [8.0, 8.0, 40.0]);
        let two = r#"{"dest": "lab", "dest-tmp": "t", "bbox": [1, 1], "resolution": [8, 40], "slices": []}"#;
        let e = serde_json::from_str::<StackFile<u32>>(two).unwrap_err();
        assert!(
            e.to_string().contains("nm as one number or [x, y, z]"),
            "{e}"
        );
        let unknown = r#"{"dest": "lab", "dest-tmp": "t", "bbox": [1, 1], "slices": [], "x": 1}"#;
        assert!(serde_json::from_str::<StackFile<u32>>(unknown).is_err());
    }
}
