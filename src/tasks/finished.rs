//! How a finished task is known from what storage holds, so that a rerun skips it and a half-done
//! task is never taken for done (docs/design.md §4, "Finished tasks").
//!
//! Every output object is whole or absent (§9), so existence is enough where a task always writes
//! the same objects: an alignedslice task is finished when its aligned PNG and its tile pack
//! exist; an ngmeta task when its info(s) and OME-Zarr metadata exist and equal what it would write. An ngshard task
//! writes no shard for an all-zero region, so it is finished when its block manifest says so
//! ([`crate::block::manifest`]).

use super::ng_meta;
use crate::block::manifest::{BlockState, block_state};
use crate::layout::{aligned_slice_object, info_object, tile_pack_object};
use crate::request::{AlignedSliceRequest, NgMetaRequest, NgShardRequest};
use crate::storage::Storage;
use crate::{ErrorKind, Result};

/// Whether the alignedslice task `request` is finished: its aligned PNG and its tile pack exist.
pub async fn slice_finished(storage: &impl Storage, request: &AlignedSliceRequest) -> Result<bool> {
    let png = aligned_slice_object(&request.dest, &request.img);
    let pack = tile_pack_object(&request.dest_tmp, request.slice.into());
    let (png, pack) = futures::future::try_join(storage.size(&png), storage.size(&pack)).await?;
    Ok(png.is_some() && pack.is_some())
}

/// Whether the ngmeta task `request` is finished: each info it writes exists and describes the
/// same volume (sizes, resolutions, encodings, sharding, realsize and realoffset; a volume begun
/// with emwrite's earlier sharding keeps it, `ng_meta::keeping_earlier_sharding`).
pub async fn meta_finished(storage: &impl Storage, request: &NgMetaRequest) -> Result<bool> {
    for (encoding, expected) in ng_meta::infos(request)? {
        let found = ng_meta::found_info(storage, &info_object(&request.dest, encoding)).await?;
        let expected = ng_meta::keeping_earlier_sharding(expected, found.clone())?;
        if found.as_ref() != Some(&expected) {
            return Ok(false);
        }
    }
    for (object, expected) in super::ng_meta::zarr_documents(request)? {
        match storage.get(&object).await {
            Ok(bytes) if bytes == expected => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Whether the ngshard task `request` is finished: its block manifest matches the request and
/// every object it lists exists with the listed size.
pub async fn block_finished(storage: &impl Storage, request: &NgShardRequest) -> Result<bool> {
    Ok(matches!(
        block_state(storage, request).await?,
        BlockState::Finished(_)
    ))
}
