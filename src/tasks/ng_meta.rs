//! `ngmeta`: write the volume's `info` for the JPEG pyramid and, when asked, the raw one.

use super::Written;
use crate::Result;
use crate::layout::{encodings, info_object, volume_info};
use crate::precomputed::codec::Encoding;
use crate::precomputed::info::VolumeInfo;
use crate::request::NgMetaRequest;
use crate::storage::{self, Storage};

/// The infos `request` writes, one per encoding: what `run` puts, and what a finished task left.
pub fn infos(request: &NgMetaRequest) -> Result<Vec<(Encoding, VolumeInfo)>> {
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

/// Runs one ngmeta task.
pub async fn run(storage: &impl Storage, request: &NgMetaRequest) -> Result<Written> {
    let retries_before = storage.retries();
    let mut written = Written::default();
    for (encoding, info) in infos(request)? {
        // Fail here, not blocks later in ngshard, when chunk ids would not fit the sharding.
        for scale in info.scales() {
            scale.check_shard_capacity()?;
        }
        let object = info_object(&request.dest, encoding);
        written
            .put(storage, &object, &info.to_json()?, storage::JSON)
            .await?;
    }
    written.retries = storage.retries().saturating_sub(retries_before);
    Ok(written)
}
