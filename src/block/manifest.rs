//! The block manifest: what an ngshard task wrote, so that a finished block can be told from a
//! half-done one.
//!
//! ngshard writes no shard for an all-zero region, so which shards exist cannot tell whether a
//! block is done. A block's task (`run`, or `merge-halves` after both halves) therefore writes
//! this small JSON object as its **last** put, after every shard is whole:
//! `<dest>/neuroglancer/blocks/<bx>_<by>_<bz>.json` ([`layout::block_manifest_object`]). It
//! names every object the block wrote with its size, and the request fields that determine the
//! output. A block is finished iff its manifest parses, matches the request, and every object it
//! lists exists with that size (docs/design.md §4 "ngshard", "Block manifest").
//!
//! ```json
//! {"@type": "emwrite_block_manifest_v1", "block": [0, 0, 0], "bbox": [1100, 1024],
//!  "minz": 506, "maxz": 517, "writeRaw": false, "jpeg-quality": 75,
//!  "objects": [{"name": "neuroglancer/jpeg/8.0x8.0x8.0/000000.shard", "bytes": 81234}, …]}
//! ```
//!
//! Object names are relative to the destination (a volume copied elsewhere keeps its manifests
//! valid) and sorted, so a block built whole and one built as two halves write the same bytes.

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::layout::{self, BLOCK_MANIFEST_FOLDER, ZARR_FOLDER};
use crate::request::wire::{self, BlockFields};
use crate::request::{NgShardRequest, OutputFormat};
use crate::storage::Storage;
use crate::storage::location::{Location, check_object_name};
use crate::{Error, Result};

/// The manifest's `@type`: names the format and its version.
pub const MANIFEST_TYPE: &str = "emwrite_block_manifest_v1";

/// Largest manifest read: a block lists at most 5 scales × 8 shards × 2 encodings, a few KiB.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// Object sizes checked at once against the store.
const CHECKS_IN_FLIGHT: usize = 16;

/// One block's manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "ManifestJson", from = "ManifestJson")]
pub struct BlockManifest {
    /// Always [`MANIFEST_TYPE`].
    pub format: String,
    /// The block, `[bx, by, bz]`.
    pub block: [u32; 3],
    /// The request's `bbox`.
    pub bbox: [u32; 2],
    /// The request's `minz`.
    pub minz: u32,
    /// The request's `maxz`.
    pub maxz: u32,
    /// The request's `writeRaw`.
    pub write_raw: bool,
    /// The request's `jpeg-quality`.
    pub jpeg_quality: u8,
    /// The request's `missing` slices inside the block ([`NgShardRequest::missing_in_block`]).
    pub missing: Vec<u32>,
    /// The request's `format`: which volumes the block wrote shards of.
    pub volumes: OutputFormat,
    /// Every object the block wrote (its shards; none for an all-zero block), by name.
    pub objects: Vec<ListedObject>,
}

/// The manifest's JSON: the request's fields under the request's own keys
/// ([`wire::BlockFields`]), between the block and the objects.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestJson {
    #[serde(rename = "@type")]
    format: String,
    block: [u32; 3],
    #[serde(flatten)]
    request: BlockFields,
    objects: Vec<ListedObject>,
}

impl From<BlockManifest> for ManifestJson {
    fn from(manifest: BlockManifest) -> Self {
        Self {
            format: manifest.format,
            block: manifest.block,
            request: BlockFields {
                bbox: manifest.bbox,
                minz: manifest.minz,
                maxz: manifest.maxz,
                write_raw: manifest.write_raw,
                jpeg_quality: manifest.jpeg_quality,
                missing: manifest.missing,
                format: manifest.volumes,
            },
            objects: manifest.objects,
        }
    }
}

impl From<ManifestJson> for BlockManifest {
    fn from(json: ManifestJson) -> Self {
        let BlockFields {
            bbox,
            minz,
            maxz,
            write_raw,
            jpeg_quality,
            missing,
            format: volumes,
        } = json.request;
        Self {
            format: json.format,
            block: json.block,
            bbox,
            minz,
            maxz,
            write_raw,
            jpeg_quality,
            missing,
            volumes,
            objects: json.objects,
        }
    }
}

/// An object a block wrote.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListedObject {
    /// Its name below the destination, e.g. `neuroglancer/jpeg/8.0x8.0x8.0/000000.shard`.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
}

impl BlockManifest {
    /// The manifest of `request`'s block, which wrote `objects` (in any order).
    pub fn new(request: &NgShardRequest, mut objects: Vec<ListedObject>) -> Self {
        objects.sort();
        Self {
            format: MANIFEST_TYPE.to_owned(),
            block: request.start,
            bbox: request.bbox,
            minz: request.minz,
            maxz: request.maxz,
            write_raw: request.write_raw,
            jpeg_quality: request.jpeg_quality,
            missing: request.missing_in_block(),
            volumes: request.format,
            objects,
        }
    }

    /// The manifest's bytes: pretty-printed JSON, for people who open it.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self)
            .map_err(|e| Error::internal(format_args!("block manifest to json: {e}")))
    }

    /// Parses a manifest, checking its type and that every name is a shard name below the
    /// destination (no `..`, nothing outside `neuroglancer/`), so a reader can open what it
    /// lists. Errors are [`crate::ErrorKind::UnreadableInput`].
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let manifest: Self =
            serde_json::from_slice(bytes).map_err(|e| Error::unreadable("block manifest", e))?;
        if manifest.format != MANIFEST_TYPE {
            return Err(Error::unreadable(
                "block manifest",
                format_args!("@type {:?}, expected {MANIFEST_TYPE:?}", manifest.format),
            ));
        }
        for object in &manifest.objects {
            let inside = (object.name.starts_with("neuroglancer/")
                || object.name.starts_with(&format!("{ZARR_FOLDER}/")))
                && !object.name.starts_with(BLOCK_MANIFEST_FOLDER);
            if !inside || check_object_name("objects", &object.name).is_err() {
                return Err(Error::unreadable(
                    "block manifest",
                    format_args!("{:?} is not a shard name of the volume", object.name),
                ));
            }
        }
        Ok(manifest)
    }

    /// The first way this manifest differs from what `request` would write, e.g.
    /// `maxz is 40, the request's 41`; `None` when it describes the request's block.
    pub fn mismatch(&self, request: &NgShardRequest) -> Option<String> {
        let expected = Self::new(request, Vec::new());
        let differs = |field: &str, ours: &dyn std::fmt::Debug, theirs: &dyn std::fmt::Debug| {
            Some(format!("{field} is {ours:?}, the request's {theirs:?}"))
        };
        if self.block != expected.block {
            differs("block", &self.block, &expected.block)
        } else if self.bbox != expected.bbox {
            differs(wire::BBOX, &self.bbox, &expected.bbox)
        } else if self.minz != expected.minz {
            differs(wire::MINZ, &self.minz, &expected.minz)
        } else if self.maxz != expected.maxz {
            differs(wire::MAXZ, &self.maxz, &expected.maxz)
        } else if self.write_raw != expected.write_raw {
            differs(wire::WRITE_RAW, &self.write_raw, &expected.write_raw)
        } else if self.jpeg_quality != expected.jpeg_quality {
            differs(
                wire::JPEG_QUALITY,
                &self.jpeg_quality,
                &expected.jpeg_quality,
            )
        } else if self.missing != expected.missing {
            differs(wire::MISSING, &self.missing, &expected.missing)
        } else if self.volumes != expected.volumes {
            differs(wire::FORMAT, &self.volumes, &expected.volumes)
        } else {
            None
        }
    }

    /// What is wrong with the listed objects in `storage` below `dest`: one line per object that
    /// is missing or has another size (`neuroglancer/…/000000.shard: missing`), checked
    /// concurrently; empty when all are there and whole.
    pub async fn object_problems(
        &self,
        storage: &impl Storage,
        dest: &Location,
    ) -> Result<Vec<String>> {
        let checks = futures::stream::iter(&self.objects)
            .map(|listed| async move {
                let size = storage.size(&dest.object(&listed.name)).await?;
                Ok(match size {
                    Some(size) if size == listed.bytes => None,
                    Some(size) => Some(format!(
                        "{}: {size} bytes, the manifest lists {}",
                        listed.name, listed.bytes
                    )),
                    None => Some(format!("{}: missing", listed.name)),
                })
            })
            .buffered(CHECKS_IN_FLIGHT)
            .collect::<Vec<Result<Option<String>>>>()
            .await;
        checks
            .into_iter()
            .filter_map(Result::transpose)
            .collect::<Result<Vec<_>>>()
    }
}

/// Whether `request`'s block is finished, or why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockState {
    /// Its manifest matches the request and every object it lists is there, whole.
    Finished(BlockManifest),
    /// Why the block must run (again): no manifest, a manifest of another request, a listed
    /// object missing or of another size.
    Unfinished(String),
}

/// Reads `request`'s block manifest and checks it (the module docs' rule). Storage failures are
/// errors; anything a rerun of the block fixes is [`BlockState::Unfinished`].
pub async fn block_state(storage: &impl Storage, request: &NgShardRequest) -> Result<BlockState> {
    let object = layout::block_manifest_object(&request.dest, request.start);
    let Some(bytes) = read_manifest_bytes(storage, &object).await? else {
        return Ok(BlockState::Unfinished("no manifest".to_owned()));
    };
    let manifest = match BlockManifest::from_json(&bytes) {
        Ok(manifest) => manifest,
        Err(e) => return Ok(BlockState::Unfinished(e.to_string())),
    };
    if let Some(why) = manifest.mismatch(request) {
        return Ok(BlockState::Unfinished(format!(
            "the manifest is of another request: {why}"
        )));
    }
    let problems = manifest.object_problems(storage, &request.dest).await?;
    Ok(match problems.into_iter().next() {
        Some(problem) => BlockState::Unfinished(problem),
        None => BlockState::Finished(manifest),
    })
}

/// The bytes of the manifest `object`, `None` when it does not exist; one larger than
/// [`MAX_MANIFEST_BYTES`] is read only that far (and then fails to parse).
pub async fn read_manifest_bytes(
    storage: &impl Storage,
    object: &crate::storage::location::ObjectPath,
) -> Result<Option<Vec<u8>>> {
    match storage.get_range(object, 0..MAX_MANIFEST_BYTES + 1).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use pollster::block_on;

    use super::*;
    use crate::storage::memory::MemoryStorage;

    fn request() -> NgShardRequest {
        NgShardRequest {
            dest: Location::parse("dest", "lab").expect("valid"),
            source: Location::parse("source", "tiles").expect("valid"),
            start: [1, 0, 0],
            minz: 3,
            maxz: 40,
            bbox: [2000, 900],
            write_raw: false,
            jpeg_quality: 75,
            missing: Vec::new(),
            format: Default::default(),
        }
    }

    const SHARD: &str = "neuroglancer/jpeg/8.0x8.0x8.0/000008.shard";
    const COARSE: &str = "neuroglancer/jpeg/16.0x16.0x16.0/000001.shard";

    /// A finished block: two shards and the manifest listing them.
    fn finished_block() -> (MemoryStorage, NgShardRequest) {
        let storage = MemoryStorage::default();
        let request = request();
        let put = |name: &str, bytes: &[u8]| {
            block_on(storage.put(&request.dest.object(name), bytes, "")).expect("put")
        };
        put(SHARD, &[7; 100]);
        put(COARSE, &[8; 30]);
        let listed = [(COARSE, 30), (SHARD, 100)]
            .map(|(name, bytes)| ListedObject {
                name: name.to_owned(),
                bytes,
            })
            .to_vec();
        let manifest = BlockManifest::new(&request, listed);
        let object = layout::block_manifest_object(&request.dest, request.start);
        put(&object.name, &manifest.to_json().expect("json"));
        (storage, request)
    }

    fn state(storage: &MemoryStorage, request: &NgShardRequest) -> BlockState {
        block_on(block_state(storage, request)).expect("no storage failure")
    }

    fn unfinished_because(storage: &MemoryStorage, request: &NgShardRequest, why: &str) {
        match state(storage, request) {
            BlockState::Unfinished(reason) => assert!(reason.contains(why), "{reason}"),
            BlockState::Finished(_) => panic!("finished, expected unfinished because {why}"),
        }
    }

    #[test]
    fn a_manifest_round_trips_sorted() {
        let listed = [(SHARD, 1), (COARSE, 2)]
            .map(|(name, bytes)| ListedObject {
                name: name.to_owned(),
                bytes,
            })
            .to_vec();
        let manifest = BlockManifest::new(&request(), listed);
        assert_eq!(manifest.objects[0].name, COARSE, "sorted by name");
        let json = manifest.to_json().expect("json");
        assert_eq!(BlockManifest::from_json(&json).expect("parses"), manifest);
        let text = String::from_utf8(json).expect("UTF-8");
        assert!(
            text.contains(r#""@type": "emwrite_block_manifest_v1""#),
            "{text}"
        );
        assert!(text.contains(r#""jpeg-quality": 75"#), "{text}");
    }

    #[test]
    fn a_manifests_bytes_keep_the_request_fields_between_block_and_objects() {
        let listed = vec![ListedObject {
            name: SHARD.to_owned(),
            bytes: 9,
        }];
        let json = BlockManifest::new(&request(), listed)
            .to_json()
            .expect("json");
        let expected = r#"{
  "@type": "emwrite_block_manifest_v1",
  "block": [
    1,
    0,
    0
  ],
  "bbox": [
    2000,
    900
  ],
  "minz": 3,
  "maxz": 40,
  "writeRaw": false,
  "jpeg-quality": 75,
  "objects": [
    {
      "name": "neuroglancer/jpeg/8.0x8.0x8.0/000008.shard",
      "bytes": 9
    }
  ]
}"#;
        assert_eq!(String::from_utf8(json).expect("UTF-8"), expected);
        let unknown = expected.replace(r#""minz": 3,"#, r#""minz": 3, "x": 1,"#);
        assert!(BlockManifest::from_json(unknown.as_bytes()).is_err());
    }

    #[test]
    fn a_complete_block_is_finished() {
        let (storage, request) = finished_block();
        let BlockState::Finished(manifest) = state(&storage, &request) else {
            panic!("unfinished");
        };
        assert_eq!(manifest.objects.len(), 2);
    }

    #[test]
    fn no_manifest_is_unfinished() {
        let (storage, request) = finished_block();
        let other_block = NgShardRequest {
            start: [0, 0, 0],
            ..request
        };
        unfinished_because(&storage, &other_block, "no manifest");
    }

    #[test]
    fn a_manifest_of_another_request_is_unfinished() {
        let (storage, request) = finished_block();
        for (changed, why) in [
            (
                NgShardRequest {
                    maxz: 41,
                    ..request.clone()
                },
                "maxz is 40, the request's 41",
            ),
            (
                NgShardRequest {
                    write_raw: true,
                    ..request.clone()
                },
                "writeRaw",
            ),
            (
                NgShardRequest {
                    jpeg_quality: 90,
                    ..request.clone()
                },
                "jpeg-quality",
            ),
            (
                NgShardRequest {
                    bbox: [2000, 901],
                    ..request.clone()
                },
                "bbox",
            ),
        ] {
            unfinished_because(&storage, &changed, why);
        }
    }

    #[test]
    fn a_missing_object_is_unfinished() {
        let (storage, request) = finished_block();
        storage.remove(&request.dest.object(SHARD));
        unfinished_because(&storage, &request, &format!("{SHARD}: missing"));
    }

    #[test]
    fn an_object_of_another_size_is_unfinished() {
        let (storage, request) = finished_block();
        storage.insert(&request.dest.object(COARSE), vec![8; 29]);
        unfinished_because(
            &storage,
            &request,
            &format!("{COARSE}: 29 bytes, the manifest lists 30"),
        );
    }

    #[test]
    fn a_broken_manifest_is_unfinished_and_names_escape_nothing() {
        let (storage, request) = finished_block();
        let object = layout::block_manifest_object(&request.dest, request.start);
        let cut = storage.bytes(&object).expect("the manifest")[..20].to_vec();
        storage.insert(&object, cut);
        unfinished_because(&storage, &request, "block manifest");

        let (storage, request) = finished_block();
        let bad = |name: &str| {
            let listed = vec![ListedObject {
                name: name.to_owned(),
                bytes: 1,
            }];
            BlockManifest::new(&request, listed)
                .to_json()
                .expect("json")
        };
        for name in [
            "../secret",
            "neuroglancer/../../x",
            "align/s1.png",
            "neuroglancer/blocks/0_0_0.json",
        ] {
            let e = BlockManifest::from_json(&bad(name)).expect_err(name);
            assert!(e.message().contains("not a shard name"), "{e}");
        }
        let mut other = BlockManifest::new(&request, Vec::new());
        other.format = "something_else".to_owned();
        let e = BlockManifest::from_json(&other.to_json().expect("json")).expect_err("type");
        assert!(e.message().contains("@type"), "{e}");
        drop(storage);
    }
}
