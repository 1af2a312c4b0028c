//! The `info` file: its JSON types and emwrite's 5-scale builder.
//!
//! Spec: <https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/volume.md#info-json-file-specification>
//! (docs/design.md §4 "ngmeta"). emwrite writes uint8, one-channel `image` volumes whose every scale
//! is sharded with [`ShardingSpec::for_emwrite_scales`] and has 64³ chunks;
//! [`VolumeInfo::from_json`] reads those back and rejects anything it could not write.

use serde::{Deserialize, Serialize};

use crate::layout::{BLOCK_EDGE, CHUNK_EDGE};
use crate::precomputed::codec::Encoding;
use crate::precomputed::morton;
use crate::precomputed::sharding::{ShardingSpec, expect};
use crate::{Error, ErrorKind, Result};

/// A whole `info` file.
///
/// ```
/// use emwrite::precomputed::codec::Encoding;
/// use emwrite::precomputed::info::VolumeInfo;
/// let info = VolumeInfo::new(1500, 700, 3, 1030, 8.0, Encoding::Jpeg);
/// let keys: Vec<&str> = info.scales().iter().map(|s| s.key()).collect();
/// assert_eq!(keys[..2], ["8.0x8.0x8.0", "16.0x16.0x16.0"]);
/// assert_eq!(keys[4], "128.0x128.0x128.0");
/// assert_eq!(info.scales()[0].size(), [2048, 1024, 2048]);
/// assert_eq!(VolumeInfo::from_json(&info.to_json()?)?, info);
/// # Ok::<(), emwrite::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "InfoJson", into = "InfoJson")]
pub struct VolumeInfo {
    scales: Vec<Scale>,
    realsize: Option<[u64; 3]>,
    realoffset: Option<[u64; 3]>,
}

impl VolumeInfo {
    /// emwrite's info for a stack of `width` × `height` slices numbered `minz..=maxz`, at
    /// `resolution_nm` per voxel on every axis.
    ///
    /// Scale 0 covers x in [0, W), y in [0, H) and z in [0, maxz] (slice numbers are z
    /// coordinates), each rounded up to a multiple of 1024 so that every ngshard block lies
    /// inside it; scale k has size `size0 >> k` and resolution `resolution_nm · 2^k`. The
    /// original's extra keys are kept: `realsize` = `[W, H, maxz − minz + 1]` and `realoffset` =
    /// `[0, 0, minz]`. Arithmetic saturates, so nonsense (maxz < minz) gives a nonsense info, not a
    /// panic; the request parser rejects it first.
    pub fn new(
        width: u64,
        height: u64,
        minz: u64,
        maxz: u64,
        resolution_nm: f64,
        encoding: Encoding,
    ) -> Self {
        let size0 = scale0_size(width, height, maxz);
        let scales = (0u32..)
            .zip(ShardingSpec::for_emwrite_scales())
            .map(|(k, sharding)| {
                let resolution = resolution_nm * f64::from(1u32 << k);
                Scale {
                    key: scale_key([resolution; 3]),
                    size: size0.map(|voxels| voxels >> k),
                    resolution_nm: [resolution; 3],
                    chunk_size: [CHUNK_EDGE.into(); 3],
                    encoding,
                    voxel_offset: [0; 3],
                    sharding,
                }
            })
            .collect();
        Self {
            scales,
            realsize: Some([width, height, maxz.saturating_sub(minz).saturating_add(1)]),
            realoffset: Some([0, 0, minz]),
        }
    }

    /// Checks that this info, read from `what`, describes the volume of a stack of `bbox` =
    /// `[width, height]` slices up to `maxz`, as [`VolumeInfo::new`] makes it: the same size at
    /// scale 0. A mismatch is a bad `bbox` field: the request disagrees with the ngmeta run.
    ///
    /// ```
    /// use emwrite::precomputed::codec::Encoding;
    /// use emwrite::precomputed::info::VolumeInfo;
    /// let info = VolumeInfo::new(1500, 700, 3, 1030, 8.0, Encoding::Jpeg);
    /// assert!(info.check_matches_stack("info", [1500, 700], 1030).is_ok());
    /// let e = info.check_matches_stack("info", [3000, 700], 1030).unwrap_err();
    /// assert!(e.message().starts_with("bbox: the volume's info info has size"));
    /// ```
    pub fn check_matches_stack(
        &self,
        what: impl std::fmt::Display,
        bbox: [u32; 2],
        maxz: u32,
    ) -> Result<()> {
        let size = self.scales.first().map(|s| s.size());
        let expected = Some(scale0_size(bbox[0].into(), bbox[1].into(), maxz.into()));
        if size != expected {
            return Err(Error::bad_field(
                crate::request::wire::BBOX,
                format!(
                    "the volume's info {what} has size {size:?} at scale 0, but bbox {bbox:?} and \
                     maxz {maxz} give {expected:?}"
                ),
            ));
        }
        Ok(())
    }

    /// The scales, finest first.
    pub fn scales(&self) -> &[Scale] {
        &self.scales
    }

    /// The original's `realsize`: `[W, H, number of slices]`, if present.
    pub fn realsize(&self) -> Option<[u64; 3]> {
        self.realsize
    }

    /// The original's `realoffset`: `[0, 0, minz]`, if present.
    pub fn realoffset(&self) -> Option<[u64; 3]> {
        self.realoffset
    }

    /// The info file's bytes: pretty-printed JSON, for people who open it.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self)
            .map_err(|e| Error::internal(format_args!("info to json: {e}")))
    }

    /// Parses an info file, checking that emwrite can read the volume it describes.
    ///
    /// Errors are [`ErrorKind::UnreadableInput`] and name the field at fault.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::unreadable("info", e))
    }
}

/// One scale of the volume.
///
/// A parsed scale keeps only the first of the info's `chunk_sizes`, which is the one sharded
/// volumes use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ScaleJson", into = "ScaleJson")]
pub struct Scale {
    key: String,
    size: [u64; 3],
    resolution_nm: [f64; 3],
    chunk_size: [u64; 3],
    encoding: Encoding,
    voxel_offset: [i64; 3],
    sharding: ShardingSpec,
}

impl Scale {
    /// A scale at voxel offset 0.
    ///
    /// Fails if a chunk size is 0 or the chunk grid needs more than 64 Morton bits.
    ///
    /// ```
    /// use emwrite::precomputed::codec::Encoding;
    /// use emwrite::precomputed::info::Scale;
    /// use emwrite::precomputed::sharding::ShardingSpec;
    /// let sharding = ShardingSpec::new(0, 0, 21)?;
    /// let size = [100, 64, 1];
    /// let scale = Scale::new("a".into(), size, [8.0; 3], [64; 3], Encoding::Raw, sharding)?;
    /// assert_eq!(scale.grid(), [2, 1, 1]);
    /// assert_eq!(scale.chunk_extent([1, 0, 0]), [36, 64, 1]);
    /// # Ok::<(), emwrite::Error>(())
    /// ```
    pub fn new(
        key: String,
        size: [u64; 3],
        resolution_nm: [f64; 3],
        chunk_size: [u64; 3],
        encoding: Encoding,
        sharding: ShardingSpec,
    ) -> Result<Self> {
        let scale = Self {
            key,
            size,
            resolution_nm,
            chunk_size,
            encoding,
            voxel_offset: [0; 3],
            sharding,
        };
        scale.validate()?;
        Ok(scale)
    }

    fn validate(&self) -> Result<()> {
        let field = |name: &str| format!("scale {}: {name}", self.key);
        if self.chunk_size.contains(&0) {
            return Err(Error::bad_field(
                &field("chunk_sizes"),
                format_args!("{:?} has a zero edge", self.chunk_size),
            ));
        }
        let bits: u32 = self.morton_bits().iter().sum();
        if bits > u64::BITS {
            return Err(Error::bad_field(
                &field("size"),
                format_args!(
                    "{:?} needs {bits} bits of chunk id, more than 64",
                    self.size
                ),
            ));
        }
        Ok(())
    }

    /// The key: the scale's directory name, e.g. `"8.0x8.0x8.0"`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Size in voxels, xyz.
    pub fn size(&self) -> [u64; 3] {
        self.size
    }

    /// Voxel size in nanometres, xyz.
    pub fn resolution_nm(&self) -> [f64; 3] {
        self.resolution_nm
    }

    /// Chunk size in voxels, xyz (64³ for emwrite's scales).
    pub fn chunk_size(&self) -> [u64; 3] {
        self.chunk_size
    }

    /// How the scale's chunks are encoded.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Offset of voxel (0, 0, 0) in voxels, xyz ([0, 0, 0] for emwrite's scales).
    pub fn voxel_offset(&self) -> [i64; 3] {
        self.voxel_offset
    }

    /// How the scale's chunks map to shard files.
    pub fn sharding(&self) -> &ShardingSpec {
        &self.sharding
    }

    /// The chunk grid: `ceil(size / chunk_size)` cells per axis.
    pub fn grid(&self) -> [u64; 3] {
        std::array::from_fn(|axis| self.size[axis].div_ceil(self.chunk_size[axis]))
    }

    /// Bits per axis of this scale's compressed Morton chunk ids.
    pub fn morton_bits(&self) -> [u32; 3] {
        morton::bits_per_axis(self.grid())
    }

    /// The chunk id of grid cell `cell`.
    pub fn chunk_id(&self, cell: [u64; 3]) -> u64 {
        morton::encode(cell, self.morton_bits())
    }

    /// Voxels per axis of the chunk at grid cell `cell`: the chunk size, clipped at the upper
    /// edge of the volume (never padded); 0 on an axis where the cell lies outside the grid.
    pub fn chunk_extent(&self, cell: [u64; 3]) -> [u64; 3] {
        std::array::from_fn(|axis| {
            let start = cell[axis].saturating_mul(self.chunk_size[axis]);
            self.size[axis]
                .saturating_sub(start)
                .min(self.chunk_size[axis])
        })
    }

    /// Checks that distinct chunk ids of this scale land in distinct shards or share one
    /// legitimately: the ids' Morton bits must fit the preshift, minishard and shard bits, or the
    /// shard number would wrap and unrelated regions of the volume would share a shard file.
    ///
    /// With emwrite's sharding this bounds scale 0 to 2^33 chunks, e.g. 131072 voxels per axis.
    pub fn check_shard_capacity(&self) -> Result<()> {
        let bits: u32 = self.morton_bits().iter().sum();
        let spec = &self.sharding;
        let capacity = spec.preshift_bits() + spec.minishard_bits() + spec.shard_bits();
        if bits > capacity {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "scale {}: size {:?} needs {bits}-bit chunk ids, but the sharding holds {capacity} \
                     ({} preshift + {} minishard + {} shard bits)",
                    self.key,
                    self.size,
                    spec.preshift_bits(),
                    spec.minishard_bits(),
                    spec.shard_bits()
                ),
            ));
        }
        Ok(())
    }
}

/// Scale 0's size for a stack of `width` × `height` slices up to `maxz`: x in [0, W), y in
/// [0, H) and z in [0, maxz], each rounded up to whole blocks so that every ngshard block lies
/// inside it.
fn scale0_size(width: u64, height: u64, maxz: u64) -> [u64; 3] {
    let block = u64::from(BLOCK_EDGE);
    let round_up = |voxels: u64| voxels.div_ceil(block).saturating_mul(block);
    [
        round_up(width),
        round_up(height),
        round_up(maxz.saturating_add(1)),
    ]
}

/// A scale key from its resolution: each axis formatted with Rust's shortest round-trip float
/// formatting (`{:?}`), which keeps one decimal for whole numbers, as the original's
/// `"<r·2^k>.0"` did: 8 → `"8.0"`, 16 → `"16.0"`, 4.5 → `"4.5"`, 3.3·2 → `"6.6"`. For resolutions
/// people use this is also what Python's `str(float)` prints.
fn scale_key(resolution_nm: [f64; 3]) -> String {
    let [x, y, z] = resolution_nm;
    format!("{x:?}x{y:?}x{z:?}")
}

const VOLUME_TYPE: &str = "neuroglancer_multiscale_volume";

/// The info file's JSON shape, before validation.
#[derive(Serialize, Deserialize)]
struct InfoJson {
    // volume.md: "@type" is optional; when present it must be this.
    #[serde(rename = "@type", default = "volume_type")]
    type_: String,
    #[serde(rename = "type")]
    kind: String,
    data_type: String,
    num_channels: u64,
    scales: Vec<Scale>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    realsize: Option<[u64; 3]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    realoffset: Option<[u64; 3]>,
}

fn volume_type() -> String {
    VOLUME_TYPE.to_owned()
}

impl TryFrom<InfoJson> for VolumeInfo {
    type Error = Error;

    fn try_from(json: InfoJson) -> Result<Self> {
        expect("@type", &json.type_, VOLUME_TYPE)?;
        expect("type", &json.kind, "image")?;
        expect("data_type", &json.data_type, "uint8")?;
        if json.num_channels != 1 {
            return Err(Error::bad_field(
                "num_channels",
                format_args!(
                    "{} is not supported, emwrite handles only 1",
                    json.num_channels
                ),
            ));
        }
        if json.scales.is_empty() {
            return Err(Error::bad_field("scales", "no scales"));
        }
        Ok(Self {
            scales: json.scales,
            realsize: json.realsize,
            realoffset: json.realoffset,
        })
    }
}

impl From<VolumeInfo> for InfoJson {
    fn from(info: VolumeInfo) -> Self {
        Self {
            type_: volume_type(),
            kind: "image".to_owned(),
            data_type: "uint8".to_owned(),
            num_channels: 1,
            scales: info.scales,
            realsize: info.realsize,
            realoffset: info.realoffset,
        }
    }
}

/// A scale's JSON shape, before validation.
#[derive(Serialize, Deserialize)]
struct ScaleJson {
    key: String,
    size: [u64; 3],
    resolution: [f64; 3],
    chunk_sizes: Vec<[u64; 3]>,
    encoding: Encoding,
    voxel_offset: [i64; 3],
    sharding: Option<ShardingSpec>,
}

impl TryFrom<ScaleJson> for Scale {
    type Error = Error;

    fn try_from(json: ScaleJson) -> Result<Self> {
        let field = |name: &str| format!("scale {}: {name}", json.key);
        let Some(&chunk_size) = json.chunk_sizes.first() else {
            return Err(Error::bad_field(&field("chunk_sizes"), "empty"));
        };
        let Some(sharding) = json.sharding else {
            return Err(Error::bad_field(
                &field("sharding"),
                "missing; emwrite handles only sharded volumes",
            ));
        };
        let scale = Self {
            key: json.key,
            size: json.size,
            resolution_nm: json.resolution,
            chunk_size,
            encoding: json.encoding,
            voxel_offset: json.voxel_offset,
            sharding,
        };
        scale.validate()?;
        Ok(scale)
    }
}

impl From<Scale> for ScaleJson {
    fn from(scale: Scale) -> Self {
        Self {
            key: scale.key,
            size: scale.size,
            resolution: scale.resolution_nm,
            chunk_sizes: vec![scale.chunk_size],
            encoding: scale.encoding,
            voxel_offset: scale.voxel_offset,
            sharding: Some(scale.sharding),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn info_json(info: &VolumeInfo) -> serde_json::Value {
        serde_json::from_slice(&info.to_json().expect("serializes")).expect("valid json")
    }

    #[test]
    fn info_json_matches_the_spec_shape() {
        let info = VolumeInfo::new(1500, 700, 3, 1030, 8.0, Encoding::Jpeg);
        let json = info_json(&info);
        assert_eq!(json["@type"], "neuroglancer_multiscale_volume");
        assert_eq!(json["type"], "image");
        assert_eq!(json["data_type"], "uint8");
        assert_eq!(json["num_channels"], 1);
        assert_eq!(json["realsize"], json!([1500, 700, 1028])); // maxz − minz + 1 slices
        assert_eq!(json["realoffset"], json!([0, 0, 3]));
        assert_eq!(
            json["scales"][0],
            json!({
                "key": "8.0x8.0x8.0",
                "size": [2048, 1024, 2048], // 1500, 700 and maxz + 1 = 1031 rounded up to 1024s
                "resolution": [8.0, 8.0, 8.0],
                "chunk_sizes": [[64, 64, 64]],
                "encoding": "jpeg",
                "voxel_offset": [0, 0, 0],
                "sharding": {
                    "@type": "neuroglancer_uint64_sharded_v1",
                    "hash": "identity",
                    "preshift_bits": 9,
                    "minishard_bits": 0,
                    "shard_bits": 24,
                    "minishard_index_encoding": "gzip",
                    "data_encoding": "raw",
                },
            })
        );
    }

    #[test]
    fn five_scale_table_for_a_small_volume() {
        let info = VolumeInfo::new(1500, 700, 3, 1030, 8.0, Encoding::Raw);
        /// key, size, resolution, preshift bits, shard bits
        type Row<'a> = (&'a str, [u64; 3], [f64; 3], u32, u32);
        let table: Vec<Row> = info
            .scales()
            .iter()
            .map(|s| {
                let sharding = s.sharding();
                (
                    s.key(),
                    s.size(),
                    s.resolution_nm(),
                    sharding.preshift_bits(),
                    sharding.shard_bits(),
                )
            })
            .collect();
        #[rustfmt::skip]
        let want: [Row; 5] = [
            // key                  size                 resolution            preshift shard
            ("8.0x8.0x8.0",         [2048, 1024, 2048], [8.0, 8.0, 8.0],       9, 24),
            ("16.0x16.0x16.0",      [1024, 512, 1024],  [16.0, 16.0, 16.0],    9, 21),
            ("32.0x32.0x32.0",      [512, 256, 512],    [32.0, 32.0, 32.0],    6, 21),
            ("64.0x64.0x64.0",      [256, 128, 256],    [64.0, 64.0, 64.0],    3, 21),
            ("128.0x128.0x128.0",   [128, 64, 128],     [128.0, 128.0, 128.0], 0, 21),
        ];
        assert_eq!(table, want);
        for scale in info.scales() {
            assert_eq!(scale.encoding(), Encoding::Raw);
            assert_eq!(scale.chunk_size(), [64; 3]);
            assert_eq!(scale.voxel_offset(), [0; 3]);
            scale.check_shard_capacity().expect("small volume fits");
        }
        assert_eq!(info.scales()[4].grid(), [2, 1, 2]);
    }

    #[test]
    fn exact_multiples_are_not_rounded_further() {
        // maxz = 1023: slices 0..=1023 are exactly one block deep.
        let info = VolumeInfo::new(2048, 1024, 0, 1023, 8.0, Encoding::Jpeg);
        assert_eq!(info.scales()[0].size(), [2048, 1024, 1024]);
    }

    #[test]
    fn keys_for_non_integer_resolutions() {
        let keys = |r: f64| -> Vec<String> {
            VolumeInfo::new(1, 1, 0, 0, r, Encoding::Jpeg)
                .scales()
                .iter()
                .map(|s| s.key().to_owned())
                .collect()
        };
        assert_eq!(
            keys(4.5),
            [
                "4.5x4.5x4.5",
                "9.0x9.0x9.0",
                "18.0x18.0x18.0",
                "36.0x36.0x36.0",
                "72.0x72.0x72.0"
            ]
        );
        assert_eq!(keys(3.3)[..2], ["3.3x3.3x3.3", "6.6x6.6x6.6"]);
        assert_eq!(keys(8.0)[1], "16.0x16.0x16.0");
    }

    #[test]
    fn json_round_trip() {
        for encoding in [Encoding::Jpeg, Encoding::Raw] {
            let info = VolumeInfo::new(5000, 3000, 17, 4000, 4.5, encoding);
            let back = VolumeInfo::from_json(&info.to_json().expect("serializes")).expect("parses");
            assert_eq!(back, info);
        }
    }

    #[test]
    fn chunk_extent_is_clipped_at_the_upper_edge() {
        let sharding = ShardingSpec::new(0, 0, 21).expect("valid spec");
        let scale = Scale::new(
            "s".into(),
            [130, 64, 5],
            [8.0; 3],
            [64; 3],
            Encoding::Raw,
            sharding,
        )
        .expect("valid scale");
        assert_eq!(scale.grid(), [3, 1, 1]);
        assert_eq!(scale.chunk_extent([0, 0, 0]), [64, 64, 5]);
        assert_eq!(scale.chunk_extent([2, 0, 0]), [2, 64, 5]); // 130 − 128
        assert_eq!(scale.chunk_extent([3, 0, 0]), [0, 64, 5]); // outside the grid
        assert_eq!(scale.chunk_id([2, 0, 0]), 2);
    }

    #[test]
    fn unreadable_infos_name_the_field() {
        let good = info_json(&VolumeInfo::new(1024, 1024, 0, 10, 8.0, Encoding::Jpeg));
        /// field, how to break it, what the error says
        type Edit = (&'static str, fn(&mut serde_json::Value), &'static str);
        let edits: [Edit; 7] = [
            (
                "data_type",
                |j| j["data_type"] = "uint16".into(),
                "data_type: \"uint16\" is not supported",
            ),
            (
                "num_channels",
                |j| j["num_channels"] = 3.into(),
                "num_channels: 3 is not supported",
            ),
            (
                "type",
                |j| j["type"] = "segmentation".into(),
                "type: \"segmentation\"",
            ),
            (
                "encoding",
                |j| j["scales"][1]["encoding"] = "png".into(),
                "unknown variant `png`",
            ),
            (
                "hash",
                |j| j["scales"][2]["sharding"]["hash"] = "murmurhash3_x86_128".into(),
                "sharding.hash: \"murmurhash3_x86_128\" is not supported",
            ),
            (
                "sharding",
                |j| {
                    if let Some(scale) = j["scales"][0].as_object_mut() {
                        scale.remove("sharding");
                    }
                },
                "scale 8.0x8.0x8.0: sharding: missing",
            ),
            (
                "chunk_sizes",
                |j| j["scales"][0]["chunk_sizes"] = json!([]),
                "scale 8.0x8.0x8.0: chunk_sizes: empty",
            ),
        ];
        for (name, edit, message) in edits {
            let mut json = good.clone();
            edit(&mut json);
            let bytes = serde_json::to_vec(&json).expect("serializes");
            let e = VolumeInfo::from_json(&bytes).expect_err(name);
            assert_eq!(e.kind(), ErrorKind::UnreadableInput, "{name}");
            assert!(e.message().starts_with("info: "), "{e}");
            assert!(
                e.message().contains(message),
                "{name}: want {message:?} in {e}"
            );
        }
    }

    #[test]
    fn info_of_another_stack_is_a_bad_bbox() {
        let info = VolumeInfo::new(1500, 700, 3, 1030, 8.0, Encoding::Raw);
        // Same blocks, other numbers: minz and exact sizes do not matter, whole blocks do.
        info.check_matches_stack("info", [2048, 1024], 2047)
            .expect("same scale-0 size");
        let e = info
            .check_matches_stack("lab/info", [1500, 700], 2048)
            .expect_err("one block deeper");
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert_eq!(
            e.to_string(),
            "bbox: the volume's info lab/info has size Some([2048, 1024, 2048]) at scale 0, but \
             bbox [1500, 700] and maxz 2048 give Some([2048, 1024, 3072])"
        );
    }

    #[test]
    fn oversized_volume_is_too_large_for_the_sharding() {
        // 2^18 voxels per axis at scale 0: 12 bits per axis, 36 > 9 + 24 bits of chunk id.
        let info = VolumeInfo::new(1 << 18, 1 << 18, 0, (1 << 18) - 1, 8.0, Encoding::Jpeg);
        let e = info.scales()[0]
            .check_shard_capacity()
            .expect_err("too large");
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        assert!(
            e.message()
                .contains("needs 36-bit chunk ids, but the sharding holds 33"),
            "{e}"
        );
        // 2^17 voxels per axis just fit.
        let info = VolumeInfo::new(1 << 17, 1 << 17, 0, (1 << 17) - 1, 8.0, Encoding::Jpeg);
        for scale in info.scales() {
            scale.check_shard_capacity().expect("fits");
        }
    }
}
