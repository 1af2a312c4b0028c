//! `emwrite pipeline STACK`: a whole stack, from raw slices to a sharded Neuroglancer volume,
//! every phase through the driver (`driver.rs`), in-process or on a remote service; in-process,
//! finished tasks are skipped (`finished.rs`, `--force` redoes them) and the volume is verified
//! at the end (`verify.rs`); then where the volume is.

use std::path::Path;

use emwrite::storage::location::Location;

use crate::batch::Share;
use crate::driver::{self, Mode};
use crate::engine::Settings;
use crate::error::HostError;
use crate::stack::{Phase, Stack};
use crate::{store, verify};

/// Runs every phase of the stack and prints where the volume is and its Neuroglancer source
/// string.
pub fn pipeline(stack: &Stack, mode: Mode) -> Result<(), HostError> {
    let remote = matches!(mode, Mode::Remote(_));
    let verify_with = match &mode {
        Mode::InProcess { settings, .. } => Some(settings.clone()),
        Mode::Remote(_) => None,
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
    println!("precomputed://{}", volume_url(&volume));
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

/// The kvstore URL Neuroglancer expects after `precomputed://`.
fn volume_url(volume: &str) -> String {
    if volume.starts_with("gs://") {
        volume.to_owned()
    } else {
        format!("file://{volume}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_location_is_absolute_for_buckets_and_kept_for_gcs() {
        let data = Some(Path::new("/srv/data"));
        let local = volume_location("lab", data);
        assert_eq!(local, "/srv/data/lab/neuroglancer/jpeg");
        assert_eq!(volume_url(&local), "file:///srv/data/lab/neuroglancer/jpeg");
        let gcs = volume_location("gs://lab/vol/", data);
        assert_eq!(volume_url(&gcs), "gs://lab/vol/neuroglancer/jpeg");
    }

    #[test]
    fn bare_buckets_are_gcs_buckets_with_store_gcs() {
        let bare = volume_location("lab", None);
        assert_eq!(volume_url(&bare), "gs://lab/neuroglancer/jpeg");
        let url = volume_location("gs://lab/vol", None);
        assert_eq!(volume_url(&url), "gs://lab/vol/neuroglancer/jpeg");
    }
}
