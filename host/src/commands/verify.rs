//! `emwrite verify LOCATION`: checks a volume (`volume/verify.rs`), prints each problem with the
//! block to redo and a summary, and exits 0 only if the volume is complete.
//!
//! LOCATION is where a stack's `dest` points: a bucket name (a folder of `--data-dir`, or a GCS
//! bucket with `--store gcs`), `gs://bucket/prefix`, or a local folder path (anything with a
//! `/`: `data/lab`, `/srv/em/lab`, `./lab`), the folder holding `neuroglancer/`.

use std::path::Path;

use emwrite::storage::location::Location;
use emwrite::storage::router::DefaultStore;

use crate::cli::VerifyArgs;
use crate::embed::engine::Settings;
use crate::embed::store;
use crate::error::HostError;
use crate::runtime::runtime;
use crate::volume::verify;

/// `emwrite verify LOCATION`: prints each problem and the summary on stdout; fails unless the
/// volume is complete.
pub fn run(args: VerifyArgs) -> Result<(), HostError> {
    let location = args.location.as_str();
    // Read-only: no sweep of temporary files.
    let mut settings = Settings::from(args.engine);
    let dest = resolve_location(location, &mut settings)?;
    let runtime = runtime(None)?;
    let report = runtime.block_on(async {
        let store = store::open(&settings)?;
        verify::verify(&store, &dest).await
    })?;
    for line in report.problem_lines() {
        println!("{line}");
    }
    println!("{}", report.summary(location));
    report.into_result(location)
}

/// The location LOCATION names; a local folder path becomes a bucket of its parent folder, which
/// becomes the data directory.
fn resolve_location(location: &str, settings: &mut Settings) -> Result<Location, HostError> {
    if location.starts_with("gs://") || !location.contains('/') {
        return Location::parse("location", location).map_err(|e| HostError::Config(e.to_string()));
    }
    let folder = Path::new(location)
        .canonicalize()
        .map_err(|e| HostError::Config(format!("{location}: {e}")))?;
    let (Some(parent), Some(name)) = (folder.parent(), folder.file_name()) else {
        return Err(HostError::Config(format!(
            "{location}: not a folder holding neuroglancer/"
        )));
    };
    let bucket = Location::parse("location", &name.to_string_lossy()).map_err(|e| {
        HostError::Config(format!(
            "{location}: the folder's name must be a bucket name: {e}"
        ))
    })?;
    settings.store = DefaultStore::Local;
    settings.data_dir = parent.to_path_buf();
    Ok(bucket)
}
