//! Tools over a written volume: verifying it block by block, serving it to Neuroglancer, and the
//! viewer's link.

pub mod neuroglancer;
pub mod verify;
pub mod verify_zarr;
pub mod view;

use emwrite::storage::Storage;
use emwrite::storage::location::ObjectPath;

use crate::embed::store::HostStore;
use crate::error::HostError;

/// The bytes of a volume's metadata `object` (an info, the OME-Zarr group), `None` if it is
/// absent: what verify reads to learn which volumes there are.
async fn read_if_present(
    store: &HostStore,
    object: &ObjectPath,
) -> Result<Option<Vec<u8>>, HostError> {
    match store.get(object).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == emwrite::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(HostError::Task {
            context: "verify".to_owned(),
            error,
        }),
    }
}
