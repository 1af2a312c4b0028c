//! `ngmeta`: write the volume's `info` for the JPEG pyramid and, when asked, the raw one; with
//! `format` ome-zarr or both, the OME-Zarr image's metadata (docs/design.md §"OME-Zarr output").

use super::Written;
use crate::Result;
use crate::layout::{
    encodings, info_object, volume_info, zarr_array_object, zarr_group_object, zarr_scales,
    zarr_stack_attributes,
};
use crate::precomputed::codec::Encoding;
use crate::precomputed::info::VolumeInfo;
use crate::request::NgMetaRequest;
use crate::storage::location::ObjectPath;
use crate::storage::{self, Storage};
use crate::zarr::metadata::group_metadata;

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
