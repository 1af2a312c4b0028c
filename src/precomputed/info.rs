//! The `info` file: its JSON types, read and written.
//!
//! Spec: <https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/volume.md#info-json-file-specification>
//! (docs/design.md §4 "ngmeta"). This module reads and writes uint8, one-channel `image`
//! volumes whose every scale is sharded; [`VolumeInfo::from_json`] rejects anything else rather
//! than misread it. Which scales a volume has is the caller's choice (emwrite's is
//! `layout::volume_info`).

use serde::{Deserialize, Serialize};

use crate::precomputed::codec::Encoding;
use crate::precomputed::morton;
use crate::precomputed::shard::ChunkOrder;
use crate::precomputed::sharding::{ShardingSpec, expect};
use crate::{Error, ErrorKind, Result};

/// A whole `info` file.
///
/// ```
/// use emwrite::precomputed::codec::Encoding;
/// use emwrite::precomputed::info::{Scale, VolumeInfo};
/// use emwrite::precomputed::sharding::ShardingSpec;
/// let sharding = ShardingSpec::new(0, 0, 21)?;
/// let scale = Scale::new("8x8x40".into(), [1500, 700, 20], [8.0, 8.0, 40.0], [64; 3],
///                        Encoding::Jpeg, sharding)?;
/// let info = VolumeInfo::new(vec![scale], None, None)?;
/// assert_eq!(info.scales()[0].grid(), [24, 11, 1]);
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
    /// An info of `scales`, finest first, with the original service's extra keys `realsize`
    /// and `realoffset` when given (readers of the format ignore them).
    ///
    /// Fails if `scales` is empty.
    pub fn new(
        scales: Vec<Scale>,
        realsize: Option<[u64; 3]>,
        realoffset: Option<[u64; 3]>,
    ) -> Result<Self> {
        if scales.is_empty() {
            return Err(Error::bad_field("scales", "no scales"));
        }
        Ok(Self {
            scales,
            realsize,
            realoffset,
        })
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

    /// Chunk size in voxels, xyz.
    pub fn chunk_size(&self) -> [u64; 3] {
        self.chunk_size
    }

    /// How the scale's chunks are encoded.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Offset of voxel (0, 0, 0) in voxels, xyz.
    pub fn voxel_offset(&self) -> [i64; 3] {
        self.voxel_offset
    }

    /// How the scale's chunks map to shard files.
    pub fn sharding(&self) -> &ShardingSpec {
        &self.sharding
    }

    /// The order of the chunk data in the scale's shard files: minishards by the last z layer
    /// each reaches, as the pyramid completes them.
    pub fn chunk_order(&self) -> ChunkOrder {
        ChunkOrder::by_layer(&self.sharding, self.morton_bits())
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
        Self::new(json.scales, json.realsize, json.realoffset)
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

    /// A two-scale volume of `size0` voxels at 8 nm, 64³ chunks, preshift 9 and 24 shard bits.
    fn info(size0: [u64; 3], encoding: Encoding) -> VolumeInfo {
        let scales = (0..2)
            .map(|k| {
                let resolution = [8.0 * f64::from(1u32 << k); 3];
                let sharding = ShardingSpec::new(9, 0, 24).expect("valid spec");
                let size = size0.map(|voxels| voxels >> k);
                Scale::new(
                    format!("s{k}"),
                    size,
                    resolution,
                    [64; 3],
                    encoding,
                    sharding,
                )
                .expect("valid scale")
            })
            .collect();
        VolumeInfo::new(scales, Some([1500, 700, 1028]), Some([0, 0, 3])).expect("scales")
    }

    fn info_json(info: &VolumeInfo) -> serde_json::Value {
        serde_json::from_slice(&info.to_json().expect("serializes")).expect("valid json")
    }

    #[test]
    fn info_json_matches_the_spec_shape() {
        let json = info_json(&info([2048, 1024, 2048], Encoding::Jpeg));
        assert_eq!(json["@type"], "neuroglancer_multiscale_volume");
        assert_eq!(json["type"], "image");
        assert_eq!(json["data_type"], "uint8");
        assert_eq!(json["num_channels"], 1);
        assert_eq!(json["realsize"], json!([1500, 700, 1028]));
        assert_eq!(json["realoffset"], json!([0, 0, 3]));
        assert_eq!(
            json["scales"][1],
            json!({
                "key": "s1",
                "size": [1024, 512, 1024],
                "resolution": [16.0, 16.0, 16.0],
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
        let without =
            VolumeInfo::new(info([64; 3], Encoding::Raw).scales, None, None).expect("scales");
        let json = info_json(&without);
        assert!(json.get("realsize").is_none() && json.get("realoffset").is_none());
    }

    #[test]
    fn json_round_trip() {
        for encoding in [Encoding::Jpeg, Encoding::Raw] {
            let info = info([5000, 3000, 4000], encoding);
            let back = VolumeInfo::from_json(&info.to_json().expect("serializes")).expect("parses");
            assert_eq!(back, info);
        }
    }

    #[test]
    fn an_info_has_a_scale() {
        let e = VolumeInfo::new(Vec::new(), None, None).expect_err("no scales");
        assert_eq!(e.to_string(), "scales: no scales");
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
        let good = info_json(&info([1024, 1024, 1024], Encoding::Jpeg));
        /// field, how to break it, what the error says
        type Edit = (&'static str, fn(&mut serde_json::Value), &'static str);
        let edits: [Edit; 8] = [
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
                |j| j["scales"][1]["sharding"]["hash"] = "murmurhash3_x86_128".into(),
                "sharding.hash: \"murmurhash3_x86_128\" is not supported",
            ),
            (
                "sharding",
                |j| {
                    if let Some(scale) = j["scales"][0].as_object_mut() {
                        scale.remove("sharding");
                    }
                },
                "scale s0: sharding: missing",
            ),
            (
                "chunk_sizes",
                |j| j["scales"][0]["chunk_sizes"] = json!([]),
                "scale s0: chunk_sizes: empty",
            ),
            ("scales", |j| j["scales"] = json!([]), "scales: no scales"),
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
    fn ids_wider_than_the_sharding_are_too_large() {
        // 2^18 voxels per axis: 12 bits per axis, 36 > 9 + 24 bits of chunk id.
        let large = info([1 << 18; 3], Encoding::Jpeg);
        let e = large.scales()[0]
            .check_shard_capacity()
            .expect_err("too large");
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        assert!(
            e.message()
                .contains("needs 36-bit chunk ids, but the sharding holds 33"),
            "{e}"
        );
        // 2^17 voxels per axis just fit.
        let largest = info([1 << 17; 3], Encoding::Jpeg);
        for scale in largest.scales() {
            scale.check_shard_capacity().expect("fits");
        }
    }
}
