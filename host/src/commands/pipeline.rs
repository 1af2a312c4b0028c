//! `emwrite pipeline STACK`: a whole stack, from raw slices to a sharded Neuroglancer volume,
//! every phase through the driver (`driver.rs`), in-process or on a remote service; where this
//! process sees the storage (in-process, or a service writing to GCS), finished tasks are skipped
//! (`finished.rs`, `--force` redoes them) and the volume is verified at the end (`verify.rs`);
//! then where the volume is.

use std::path::Path;

use emwrite::storage::location::Location;

use crate::embed::engine::Settings;
use crate::embed::store;
use crate::error::HostError;
use crate::stack::batch::Share;
use crate::stack::driver::{self, Mode};
use crate::stack::tasks::{Phase, Stack};
use crate::volume::neuroglancer::Framing;
use crate::volume::{verify, view};

/// Runs every phase of the stack (where the storage is visible: skipping finished tasks unless
/// forced, then verifying the volume) and prints where the volume is and how to view it.
pub fn pipeline(stack: &Stack, mode: Mode) -> Result<(), HostError> {
    let remote = matches!(mode, Mode::Remote { .. });
    let verify_with = match &mode {
        Mode::InProcess { settings, .. } => Some(settings.clone()),
        Mode::Remote { shared_storage, .. } => shared_storage.clone(),
    };
    let outcome = driver::drive(stack, &Phase::ALL, Share::ALL, mode)?;
    if let Some(settings) = verify_with {
        verify_volume(stack, &settings)?;
    }
    if remote && !stack.dest.starts_with("gs://") {
        // A bucket name is the service's own: a folder of its data directory, or a GCS bucket.
        println!("{}/neuroglancer/jpeg (on the service)", stack.dest);
        return Ok(());
    }
    let volume = volume_location(&stack.dest, outcome.data_dir.as_deref());
    println!("{volume}");
    println!("{}", how_to_view(stack, outcome.data_dir.as_deref()));
    Ok(())
}

/// Verifies the volume `stack` wrote (`verify.rs`): logs every problem and fails unless complete.
fn verify_volume(stack: &Stack, settings: &Settings) -> Result<(), HostError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| HostError::Config(format!("cannot start the async runtime: {e}")))?;
    let report = runtime.block_on(async {
        let store = store::open(settings)?;
        let dest =
            Location::parse("dest", &stack.dest).map_err(|e| HostError::Config(e.to_string()))?;
        verify::verify(&store, &dest).await
    })?;
    for line in report.problem_lines() {
        tracing::error!("{line}");
    }
    tracing::info!("{}", report.summary(&stack.dest));
    report.into_result(&stack.dest)
}

/// Where the JPEG volume is: the URL as given for `gs://` locations; for a bucket name, a local
/// path under the data dir, or `gs://bucket/...` when there is none (`--store gcs`).
fn volume_location(dest: &str, data_dir: Option<&Path>) -> String {
    match data_dir {
        _ if dest.starts_with("gs://") => {
            format!("{}/neuroglancer/jpeg", dest.trim_end_matches('/'))
        }
        Some(data_dir) => data_dir
            .join(dest)
            .join("neuroglancer")
            .join("jpeg")
            .display()
            .to_string(),
        None => format!("gs://{}/neuroglancer/jpeg", dest.trim_end_matches('/')),
    }
}

/// The `emwrite view` command for the stack's volume and the Neuroglancer link (`view.rs`),
/// centred on the stack's slices.
fn how_to_view(stack: &Stack, data_dir: Option<&Path>) -> String {
    let minz = stack.slices.iter().map(|s| s.z).min().unwrap_or(0);
    let maxz = stack.slices.iter().map(|s| s.z).max().unwrap_or(0);
    let framing = Framing::of_stack(stack.bbox, minz, maxz, stack.resolution);
    view::how_to_view(&stack.dest, data_dir, framing.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_location_is_absolute_for_buckets_and_kept_for_gcs() {
        let data = Some(Path::new("/srv/data"));
        assert_eq!(
            volume_location("lab", data),
            "/srv/data/lab/neuroglancer/jpeg"
        );
        assert_eq!(
            volume_location("gs://lab/vol/", data),
            "gs://lab/vol/neuroglancer/jpeg"
        );
    }

    #[test]
    fn bare_buckets_are_gcs_buckets_with_store_gcs() {
        assert_eq!(volume_location("lab", None), "gs://lab/neuroglancer/jpeg");
        assert_eq!(
            volume_location("gs://lab/vol", None),
            "gs://lab/vol/neuroglancer/jpeg"
        );
    }
}
