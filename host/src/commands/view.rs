//! `emwrite view LOCATION`: serves a local volume to a browser on loopback and prints the
//! Neuroglancer link that opens it, until Ctrl-C or SIGTERM; for a volume on GCS it prints the
//! link alone. Where LOCATION's volume is and how its files are served: `volume/view.rs`.

use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_staticfile::Resolver;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use emwrite::layout;
use emwrite::precomputed::codec::Encoding;
use emwrite::zarr::metadata::METADATA_FILE;

use crate::cli::ViewArgs;
use crate::error::HostError;
use crate::runtime::runtime;
use crate::server::{accept, shutdown};
use crate::volume::neuroglancer::{self, Framing};
use crate::volume::view::{
    InsideFolder, Target, layer_name, locate, read_info, respond, volume_url,
};

/// Serves the volume at LOCATION until stopped (for GCS: prints its link and returns).
pub fn run(args: ViewArgs) -> Result<(), HostError> {
    let name = layer_name(&args.location);
    let data_dir = args.stores.data_dir();
    let (folder, volume) = match locate(&args.location, args.stores.store, &data_dir)? {
        Target::Gcs(url) => {
            let source = neuroglancer::source(&url);
            println!("{}", neuroglancer::link(&args.viewer, &source, &name, None));
            return Ok(());
        }
        Target::Folder { root, volume } => (root, volume),
    };
    // A destination with an OME-Zarr image beside (or instead of) its precomputed volumes.
    let zarr = volume == layout::volume_prefix(Encoding::Jpeg)
        && folder
            .join(layout::ZARR_FOLDER)
            .join(METADATA_FILE)
            .is_file();
    let info = match read_info(&folder, volume) {
        Ok(info) => Some(info),
        Err(_) if zarr => None,
        Err(e) => return Err(e),
    };
    let framing = info.as_ref().and_then(Framing::of);
    let runtime = runtime(None)?;
    let served = runtime.block_on(async {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, args.port))
            .await
            .map_err(|e| HostError::Config(format!("cannot listen on port {}: {e}", args.port)))?;
        let local = listener
            .local_addr()
            .map_err(|e| HostError::Config(format!("cannot listen: {e}")))?;
        let resolver = Arc::new(Resolver::with_opener(InsideFolder::new(&folder)?));
        tracing::info!("serving {} read-only; Ctrl-C stops", folder.display());
        // On stdout, alone, as `emwrite serve` prints it: a caller of --port 0 reads the port here.
        println!("listening on http://{local}");
        let base = format!("http://{local}");
        let mut sources = Vec::new();
        if info.is_some() {
            sources.push(neuroglancer::source(&volume_url(&base, volume)));
        }
        if zarr {
            sources.push(neuroglancer::zarr_source(&base));
        }
        for source in sources {
            println!(
                "{}",
                neuroglancer::link(&args.viewer, &source, &name, framing.as_ref())
            );
        }
        accept::accept_until(&listener, shutdown::signal(), |stream, peer| {
            let resolver = resolver.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let resolver = resolver.clone();
                    async move { Ok::<_, Infallible>(respond(&resolver, request).await) }
                });
                let connection = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(error) = connection.await {
                    tracing::debug!("connection from {peer}: {error}");
                }
            });
        })
        .await;
        tracing::info!("stopped");
        Ok(())
    });
    // Connections still open (a viewer keeps them alive) end with the runtime.
    runtime.shutdown_background();
    served
}
