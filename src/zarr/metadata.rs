//! The `zarr.json` documents: one per array (a scale), and the group's, whose attributes hold
//! the OME `multiscales` metadata.
//!
//! Specs: Zarr v3 array and group metadata
//! (<https://zarr-specs.readthedocs.io/en/latest/v3/core/index.html#metadata>) and NGFF 0.5
//! "multiscales" (<https://ngff.openmicroscopy.org/0.5/#multiscale-md>): axes z, y, x in
//! nanometers, one dataset per scale with a `scale` transform (the voxel size, per axis).

use serde_json::{Value, json};

use super::codec::GZIP_LEVEL;
use super::zyx;
use crate::{Error, Result};

/// The NGFF version of the `ome` attributes.
pub const NGFF_VERSION: &str = "0.5";

/// The name of every Zarr v3 metadata document, in the folder of its array or group.
pub const METADATA_FILE: &str = "zarr.json";

/// One scale of a multiscale image: a Zarr array, and its place in the multiscales.
#[derive(Clone, Debug, PartialEq)]
pub struct ZarrScale {
    /// The array's folder below the group, also its dataset `path`: `"0"`, `"1"`, …
    pub path: String,
    /// Voxels per axis, xyz.
    pub shape: [u64; 3],
    /// Voxels per shard edge, xyz: the array's (outer) chunk shape.
    pub shard_shape: [u64; 3],
    /// Voxels per inner chunk edge, xyz.
    pub chunk_shape: [u64; 3],
    /// Voxel size in nm, xyz: the dataset's `scale` transform.
    pub resolution_nm: [f64; 3],
}

impl ZarrScale {
    /// Inner chunks per shard edge, xyz.
    pub fn chunks_per_shard(&self) -> [u64; 3] {
        std::array::from_fn(|axis| self.shard_shape[axis] / self.chunk_shape[axis].max(1))
    }

    /// The key of shard `shard` (xyz, in shards) below the array's folder, with the default
    /// chunk key encoding and separator `/`: `c/<z>/<y>/<x>`.
    ///
    /// ```
    /// use emwrite::zarr::metadata::ZarrScale;
    /// let scale = ZarrScale {
    ///     path: "0".into(),
    ///     shape: [1024; 3],
    ///     shard_shape: [512; 3],
    ///     chunk_shape: [64; 3],
    ///     resolution_nm: [8.0; 3],
    /// };
    /// assert_eq!(scale.shard_key([1, 0, 1]), "c/1/0/1");
    /// assert_eq!(scale.shard_key([2, 3, 0]), "c/0/3/2");
    /// ```
    pub fn shard_key(&self, shard: [u64; 3]) -> String {
        let [z, y, x] = zyx(shard);
        format!("c/{z}/{y}/{x}")
    }

    /// Checks that shards are whole inner chunks and that both tile the array; fails (an
    /// emwrite bug) otherwise.
    pub fn check(&self) -> Result<()> {
        let whole = (0..3).all(|axis| {
            let (shape, shard, chunk) = (
                self.shape[axis],
                self.shard_shape[axis],
                self.chunk_shape[axis],
            );
            chunk > 0 && shard % chunk == 0 && shard > 0 && shape % shard == 0
        });
        if !whole {
            return Err(Error::internal(format_args!(
                "zarr array {}: shape {:?}, shards {:?}, chunks {:?} do not tile",
                self.path, self.shape, self.shard_shape, self.chunk_shape
            )));
        }
        Ok(())
    }

    /// The array's `zarr.json`: uint8 voxels, fill value 0, shards of [`Self::shard_shape`]
    /// holding gzip inner chunks of [`Self::chunk_shape`], the shard index at the end.
    pub fn array_metadata(&self) -> Result<Vec<u8>> {
        self.check()?;
        let metadata = json!({
            "zarr_format": 3,
            "node_type": "array",
            "shape": zyx(self.shape),
            "data_type": "uint8",
            "chunk_grid": {
                "name": "regular",
                "configuration": {"chunk_shape": zyx(self.shard_shape)}
            },
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": 0,
            "codecs": [{
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": zyx(self.chunk_shape),
                    "codecs": [
                        {"name": "bytes"},
                        {"name": "gzip", "configuration": {"level": GZIP_LEVEL}}
                    ],
                    "index_codecs": [
                        {"name": "bytes", "configuration": {"endian": "little"}},
                        {"name": "crc32c"}
                    ],
                    "index_location": "end"
                }
            }],
            "dimension_names": ["z", "y", "x"],
            "attributes": {}
        });
        to_vec(&metadata)
    }
}

/// The group's `zarr.json`: one multiscale image named `name`, whose datasets are `scales`,
/// finest first, and the writer's own `extra` attributes beside `ome` (Zarr v3 leaves
/// `attributes` to applications; NGFF 0.5 claims only the `ome` key).
pub fn group_metadata(
    name: &str,
    scales: &[ZarrScale],
    extra: serde_json::Map<String, Value>,
) -> Result<Vec<u8>> {
    let axes: Vec<Value> = ["z", "y", "x"]
        .iter()
        .map(|axis| json!({"name": axis, "type": "space", "unit": "nanometer"}))
        .collect();
    let datasets: Vec<Value> = scales
        .iter()
        .map(|scale| {
            json!({
                "path": scale.path,
                "coordinateTransformations": [
                    {"type": "scale", "scale": zyx(scale.resolution_nm)}
                ]
            })
        })
        .collect();
    let mut attributes = extra;
    attributes.insert(
        "ome".to_owned(),
        json!({
            "version": NGFF_VERSION,
            "multiscales": [{"name": name, "axes": axes, "datasets": datasets}]
        }),
    );
    let metadata = json!({
        "zarr_format": 3,
        "node_type": "group",
        "attributes": attributes
    });
    to_vec(&metadata)
}

/// The scale-0 voxel size (xyz, nm) a group's `zarr.json` gives its first dataset, as
/// [`group_metadata`] writes it. Fails (422) on any other document.
pub fn first_resolution_nm(group: &[u8]) -> Result<[f64; 3]> {
    let bad = || Error::unreadable("zarr group metadata", "no multiscales scale transform");
    let value: Value =
        serde_json::from_slice(group).map_err(|e| Error::unreadable("zarr group metadata", e))?;
    let scale =
        value["attributes"]["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]
            ["scale"]
            .as_array()
            .ok_or_else(bad)?;
    let axes: Vec<f64> = scale.iter().filter_map(Value::as_f64).collect();
    match axes[..] {
        [z, y, x] => Ok([x, y, z]),
        _ => Err(bad()),
    }
}

fn to_vec(metadata: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(metadata)
        .map_err(|e| Error::internal(format_args!("zarr metadata: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scale(k: u32) -> ZarrScale {
        ZarrScale {
            path: k.to_string(),
            shape: [2048 >> k, 1024 >> k, 1024 >> k],
            shard_shape: [512 >> k.min(3); 3],
            chunk_shape: [64; 3],
            resolution_nm: [8.0 * f64::from(1 << k), 8.0 * f64::from(1 << k), 40.0],
        }
    }

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("json")
    }

    #[test]
    fn array_metadata_is_zyx_with_sharding_at_the_end() {
        let array = parse(&scale(0).array_metadata().expect("tiles"));
        assert_eq!(array["shape"], json!([1024, 1024, 2048]));
        assert_eq!(
            array["chunk_grid"]["configuration"]["chunk_shape"],
            json!([512, 512, 512])
        );
        let sharding = &array["codecs"][0];
        assert_eq!(sharding["name"], "sharding_indexed");
        assert_eq!(
            sharding["configuration"]["chunk_shape"],
            json!([64, 64, 64])
        );
        assert_eq!(sharding["configuration"]["index_location"], "end");
        assert_eq!(sharding["configuration"]["codecs"][1]["name"], "gzip");
        assert_eq!(array["dimension_names"], json!(["z", "y", "x"]));
        assert_eq!(scale(0).chunks_per_shard(), [8, 8, 8]);
    }

    #[test]
    fn shapes_that_do_not_tile_are_refused() {
        let odd = ZarrScale {
            shape: [1000, 1024, 1024],
            ..scale(0)
        };
        odd.array_metadata().expect_err("1000 is not whole shards");
        let zero = ZarrScale {
            chunk_shape: [0, 64, 64],
            ..scale(0)
        };
        zero.check().expect_err("no chunk");
    }

    #[test]
    fn group_metadata_names_each_scale_and_its_voxel_size() {
        let scales: Vec<ZarrScale> = (0..3).map(scale).collect();
        let extra = serde_json::Map::from_iter([("lab".to_owned(), json!(1))]);
        let bytes = group_metadata("emwrite", &scales, extra).expect("json");
        let group = parse(&bytes);
        let ome = &group["attributes"]["ome"];
        assert_eq!(ome["version"], "0.5");
        assert_eq!(group["attributes"]["lab"], 1);
        let multiscale = &ome["multiscales"][0];
        assert_eq!(multiscale["axes"][0]["name"], "z");
        assert_eq!(multiscale["axes"][2]["unit"], "nanometer");
        assert_eq!(multiscale["datasets"][2]["path"], "2");
        assert_eq!(
            multiscale["datasets"][1]["coordinateTransformations"][0]["scale"],
            json!([40.0, 16.0, 16.0])
        );
        assert_eq!(first_resolution_nm(&bytes).expect("ours"), [8.0, 8.0, 40.0]);
        first_resolution_nm(b"{}").expect_err("not a multiscale");
    }
}
