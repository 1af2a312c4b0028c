//! `ngmeta`: write the volume's `info` for the JPEG pyramid and, when asked, the raw one; with
//! `format` ome-zarr or both, the OME-Zarr image's metadata (docs/design.md §"OME-Zarr output").

use super::Written;
use crate::layout::{
    encodings, info_object, volume_info, with_one_minishard_per_shard, zarr_array_object,
    zarr_group_object, zarr_scales, zarr_stack_attributes,
};
use crate::precomputed::codec::Encoding;
use crate::precomputed::info::VolumeInfo;
use crate::request::NgMetaRequest;
use crate::storage::location::ObjectPath;
use crate::storage::{self, Storage};
use crate::zarr::metadata::group_metadata;
use crate::{ErrorKind, Result};

/// The name of the multiscale image in the OME-Zarr group's metadata.
const IMAGE_NAME: &str = "emwrite";

/// The precomputed infos `request` writes, one per encoding (none for `format` ome-zarr): what
/// `run` puts, and what a finished task left.
pub fn infos(request: &NgMetaRequest) -> Result<Vec<(Encoding, VolumeInfo)>> {
    if !request.format.precomputed() {
        return Ok(Vec::new());
    }
    encodings(request.write_raw)
        .iter()
        .map(|&encoding| {
            let info = volume_info(
                request.bbox,
                request.minz,
                request.maxz,
                request.resolution_nm,
                encoding,
            )?;
            Ok((encoding, info))
        })
        .collect()
}

/// The info at `object`, if there is one that reads as an info.
pub(crate) async fn found_info(
    storage: &impl Storage,
    object: &ObjectPath,
) -> Result<Option<VolumeInfo>> {
    match storage.get(object).await {
        Ok(bytes) => Ok(VolumeInfo::from_json(&bytes).ok()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The info to write over `found` (the info already at the object, if any): `expected`, the
/// request's ([`infos`]), unless `found` describes the same volume with each shard one
/// minishard, as emwrite wrote infos before minishards ([`with_one_minishard_per_shard`]).
/// Then `found` stays: the volume's shards already written are read through it, and ngshard
/// finishes the volume in that layout (docs/design.md §4 "ngmeta", "Minishards of one layer").
pub(crate) fn keeping_earlier_sharding(
    expected: VolumeInfo,
    found: Option<VolumeInfo>,
) -> Result<VolumeInfo> {
    match found {
        Some(found) if found == with_one_minishard_per_shard(&expected)? => Ok(found),
        _ => Ok(expected),
    }
}

/// The OME-Zarr metadata documents `request` writes (none for `format` precomputed): each
/// scale's array `zarr.json`, then the group's, last, since the group is what makes readers
/// look for the arrays.
pub fn zarr_documents(request: &NgMetaRequest) -> Result<Vec<(ObjectPath, Vec<u8>)>> {
    if !request.format.zarr() {
        return Ok(Vec::new());
    }
    let scales = zarr_scales(
        request.bbox,
        request.minz,
        request.maxz,
        request.resolution_nm,
    )?;
    let mut documents = scales
        .iter()
        .map(|scale| {
            Ok((
                zarr_array_object(&request.dest, scale),
                scale.array_metadata()?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    documents.push((
        zarr_group_object(&request.dest),
        group_metadata(
            IMAGE_NAME,
            &scales,
            zarr_stack_attributes(request.bbox, request.minz, request.maxz),
        )?,
    ));
    Ok(documents)
}

/// Runs one ngmeta task.
pub async fn run(storage: &impl Storage, request: &NgMetaRequest) -> Result<Written> {
    let retries_before = storage.retries();
    let mut written = Written::default();
    // Fail here, not blocks later in ngshard, when chunk ids would not fit the sharding: the
    // engine builds the same scales for either format.
    let raw = volume_info(
        request.bbox,
        request.minz,
        request.maxz,
        request.resolution_nm,
        Encoding::Raw,
    )?;
    for scale in raw.scales() {
        scale.check_shard_capacity()?;
    }
    for (encoding, info) in infos(request)? {
        let object = info_object(&request.dest, encoding);
        let info = keeping_earlier_sharding(info, found_info(storage, &object).await?)?;
        written
            .put(storage, &object, &info.to_json()?, storage::JSON)
            .await?;
    }
    for (object, document) in zarr_documents(request)? {
        written
            .put(storage, &object, &document, storage::JSON)
            .await?;
    }
    written.retries = storage.retries().saturating_sub(retries_before);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use pollster::block_on;

    use super::*;
    use crate::storage::location::Location;
    use crate::storage::memory::MemoryStorage;
    use crate::tasks::finished::meta_finished;

    fn request() -> NgMetaRequest {
        NgMetaRequest {
            dest: Location::parse("dest", "lab").expect("valid location"),
            minz: 0,
            maxz: 2000,
            bbox: [3000, 2000],
            write_raw: true,
            resolution_nm: [8.0; 3],
            format: Default::default(),
        }
    }

    /// The info at `encoding`'s object.
    fn info_at(storage: &MemoryStorage, encoding: Encoding) -> VolumeInfo {
        let object = info_object(&request().dest, encoding);
        let found = block_on(found_info(storage, &object)).expect("reads");
        found.expect("an info")
    }

    #[test]
    fn a_volume_begun_before_minishards_keeps_its_sharding() {
        let (storage, request) = (MemoryStorage::default(), request());
        let [(jpeg, now), (raw, _)] =
            <[_; 2]>::try_from(infos(&request).expect("infos")).expect("JPEG and raw");
        assert_eq!(now.scales()[0].sharding().minishard_bits(), 7);
        // The JPEG volume was begun by an emwrite without minishards; the raw one not at all.
        let before = with_one_minishard_per_shard(&now).expect("earlier sharding");
        let object = info_object(&request.dest, jpeg);
        block_on(storage.put(&object, &before.to_json().expect("json"), storage::JSON))
            .expect("put");
        assert!(block_on(meta_finished(&storage, &request)).is_ok_and(|done| !done));

        block_on(run(&storage, &request)).expect("ngmeta");
        assert_eq!(info_at(&storage, jpeg), before, "kept");
        assert_eq!(
            info_at(&storage, raw).scales()[0]
                .sharding()
                .minishard_bits(),
            7
        );
        assert!(block_on(meta_finished(&storage, &request)).expect("checks"));
    }

    #[test]
    fn an_info_of_another_volume_is_written_over() {
        let (storage, request) = (MemoryStorage::default(), request());
        let other = volume_info([1000, 2000], 0, 2000, [8.0; 3], Encoding::Jpeg).expect("info");
        let other = with_one_minishard_per_shard(&other).expect("earlier sharding");
        let object = info_object(&request.dest, Encoding::Jpeg);
        block_on(storage.put(&object, &other.to_json().expect("json"), storage::JSON))
            .expect("put");
        block_on(run(&storage, &request)).expect("ngmeta");
        let [(_, now), _] = <[_; 2]>::try_from(infos(&request).expect("infos")).expect("two");
        assert_eq!(info_at(&storage, Encoding::Jpeg), now);
    }
}
