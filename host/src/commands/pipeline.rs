//! `emwrite pipeline STACK`: a whole stack, from raw slices to a sharded Neuroglancer volume,
//! every phase through the driver (`stack/driver.rs`), in-process or on a remote service; where
//! this process sees the storage (in-process, or a service writing to GCS), finished tasks are
//! skipped (`stack/finished.rs`, `--force` redoes them) and the volume is verified at the end
//! (`volume/verify.rs`); then where the volume is and how to view it.

use std::net::Ipv4Addr;
use std::path::Path;

use emwrite::layout;
use emwrite::precomputed::codec::Encoding;
use emwrite::request::OutputFormat;
use emwrite::storage::location::Store;

use crate::cli::PipelineArgs;
use crate::embed::engine::Settings;
use crate::embed::store;
use crate::error::HostError;
use crate::runtime::runtime;
use crate::stack::batch::Share;
use crate::stack::driver::{self, Mode};
use crate::stack::tasks::{Phase, Stack};
use crate::volume::neuroglancer::{self, Framing};
use crate::volume::verify;
use crate::volume::view::{DEFAULT_PORT, layer_name};

/// Reads the stack and runs it where the flags say.
pub fn run(args: PipelineArgs) -> Result<(), HostError> {
    let stack = args.stack.read(&args.engine.allow_hosts)?;
    let mode = args.mode(&stack);
    pipeline(&stack, mode)
}

/// Runs every phase of the stack (where the storage is visible: skipping finished tasks unless
/// forced, then verifying the volume) and prints where the volume is and how to view it.
fn pipeline(stack: &Stack, mode: Mode) -> Result<(), HostError> {
    let remote = matches!(mode, Mode::Remote { .. });
    let verify_with = match &mode {
        Mode::InProcess { settings, .. } => Some(settings.clone()),
        Mode::Remote { shared_storage, .. } => shared_storage.clone(),
    };
    let outcome = driver::drive(stack, &Phase::ALL, Share::ALL, mode)?;
    if let Some(settings) = verify_with {
        verify_volume(stack, &settings)?;
    }
    let dest = stack.dest.to_string();
    if remote && stack.dest.store() != Store::Gcs {
        // A bucket name is the service's own: a folder of its data directory, or a GCS bucket.
        println!("{} (on the service)", volume_url(&dest));
        return Ok(());
    }
    let data_dir = outcome.data_dir.as_deref();
    println!("{}", volume_location(&dest, data_dir));
    // Centred on the stack's slices.
    let framing = Framing::of_stack(stack.bbox, stack.minz(), stack.maxz(), stack.resolution);
    println!(
        "{}",
        how_to_view(&dest, data_dir, framing.as_ref(), stack.format)
    );
    Ok(())
}

/// Verifies the volume `stack` wrote (`volume/verify.rs`): logs every problem and fails unless
/// complete.
fn verify_volume(stack: &Stack, settings: &Settings) -> Result<(), HostError> {
    let runtime = runtime(None)?;
    let report = runtime.block_on(async {
        let store = store::open(settings)?;
        verify::verify(&store, &stack.dest).await
    })?;
    for line in report.problem_lines() {
        tracing::error!("{line}");
    }
    let dest = stack.dest.to_string();
    tracing::info!("{}", report.summary(&dest));
    report.into_result(&dest)
}

/// The JPEG volume's folder below the location `base`.
fn volume_url(base: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        layout::volume_prefix(Encoding::Jpeg)
    )
}

/// Where the JPEG volume is: the URL as given for `gs://` locations; for a bucket name, a local
/// path under the data dir, or `gs://bucket/...` when there is none (`--store gcs`).
fn volume_location(dest: &str, data_dir: Option<&Path>) -> String {
    match data_dir {
        _ if dest.starts_with("gs://") => volume_url(dest),
        Some(data_dir) => data_dir
            .join(dest)
            .join(layout::volume_prefix(Encoding::Jpeg))
            .display()
            .to_string(),
        None => volume_url(&format!("gs://{dest}")),
    }
}

/// The lines the pipeline ends with: how to look at the volume it wrote to `dest`. For a local
/// volume, the `emwrite view` command that serves it, with its port, and the link that command
/// prints (the same link: it depends on nothing else); for GCS, the link. One link per volume
/// `format` wrote: the JPEG volume's, then the OME-Zarr image's.
fn how_to_view(
    dest: &str,
    data_dir: Option<&Path>,
    framing: Option<&Framing>,
    format: OutputFormat,
) -> String {
    let name = layer_name(dest);
    let viewer = neuroglancer::DEMO_VIEWER;
    let links = |base: &str| {
        let precomputed = format
            .precomputed()
            .then(|| neuroglancer::jpeg_source(base));
        let zarr = format.zarr().then(|| neuroglancer::zarr_source(base));
        let links: Vec<String> = [precomputed, zarr]
            .into_iter()
            .flatten()
            .map(|source| neuroglancer::link(viewer, &source, &name, framing))
            .collect();
        links.join("\n")
    };
    match data_dir {
        Some(dir) if !dest.starts_with("gs://") => {
            let base = format!("http://{}:{DEFAULT_PORT}", Ipv4Addr::LOCALHOST);
            format!(
                "view it: emwrite view {dest} --data-dir {} --port {DEFAULT_PORT}\n\
                 which prints this link to open while it runs:\n{}",
                dir.display(),
                links(&base)
            )
        }
        _ => {
            let url = if dest.starts_with("gs://") {
                dest.to_owned()
            } else {
                format!("gs://{dest}")
            };
            links(&url)
        }
    }
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

    #[test]
    fn the_view_lines_name_the_view_command_and_its_link() {
        let framing = Framing::of_stack([1100, 300], 5, 16, [8.0; 3]);
        let local = how_to_view(
            "emdata",
            Some(Path::new("data")),
            framing.as_ref(),
            OutputFormat::Precomputed,
        );
        assert!(local.starts_with("view it: emwrite view emdata --data-dir data --port 8081\n"));
        // The link is the one that command prints: for its port.
        let link = local.lines().last().expect("the link last");
        assert!(link.contains("precomputed://http://127.0.0.1:8081/neuroglancer/jpeg"));
        let gcs = how_to_view(
            "gs://lab/run1",
            Some(Path::new("data")),
            framing.as_ref(),
            OutputFormat::Precomputed,
        );
        assert!(gcs.contains("precomputed://gs://lab/run1/neuroglancer/jpeg"));
        let bare = how_to_view("lab", None, None, OutputFormat::Both);
        assert!(bare.contains("precomputed://gs://lab/neuroglancer/jpeg"));
        // format both: the OME-Zarr image's link after the JPEG volume's.
        let zarr = bare.lines().last().expect("two links");
        assert!(zarr.contains("zarr3://gs://lab/ome-zarr/"), "{bare}");
        let only = how_to_view("lab", None, None, OutputFormat::OmeZarr);
        assert!(!only.contains("precomputed://") && only.contains("zarr3://"));
    }
}
