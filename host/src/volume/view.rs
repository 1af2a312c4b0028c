//! Serving a volume to a browser, as `emwrite view LOCATION` does: where LOCATION's volume is,
//! and the read-only file service that answers the viewer.
//!
//! LOCATION is a pipeline's `dest`, named as everywhere in emwrite (docs/design.md §3): a bucket
//! name (with an optional prefix), the folder `<data-dir>/<bucket>` locally or a GCS bucket with
//! `--store gcs`, or a `gs://bucket/prefix` URL; a folder path is taken too. It may also be the
//! volume's own folder, the one holding its `info` (`data/emdata/neuroglancer/jpeg`), which is
//! what a user points a viewer at (as with `igneous view`). The server listens on loopback only
//! and serves that folder read-only: GET and HEAD with byte ranges (Neuroglancer
//! reads a chunk as a range of its shard), CORS for any origin (the viewer is another origin,
//! e.g. neuroglancer-demo.appspot.com), nothing outside the folder (`..` is dropped, links that
//! lead out are refused).

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use emwrite::layout;
use emwrite::precomputed::codec::Encoding;
use emwrite::precomputed::info::VolumeInfo;
use emwrite::storage::location::{Location, Store};
use emwrite::storage::router::DefaultStore;
use hyper::body::Incoming;
use hyper::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ALLOW,
    CACHE_CONTROL, CONTENT_RANGE, HeaderMap, HeaderName, HeaderValue,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_staticfile::vfs::{FileOpener, FileWithMetadata};
use hyper_staticfile::{Body, ResolveResult, Resolver, ResponseBuilder};

use crate::error::HostError;

/// `emwrite view`'s port when none is given: next to `emwrite serve`'s 8080. The `emwrite view`
/// command that `emwrite pipeline` prints names it, so the link printed with it is the one that
/// command serves.
pub const DEFAULT_PORT: u16 = 8081;

/// The file a precomputed volume's folder holds its description in (the format's `info`).
const INFO_FILE: &str = "info";

/// Methods the server answers; the rest get 405.
const METHODS: &str = "GET, HEAD, OPTIONS";

/// Response headers a page of another origin may read: the viewer checks a range answer's
/// `Content-Range` and sizes.
const EXPOSED_HEADERS: &str = "Content-Range, Content-Length, Accept-Ranges, ETag, Last-Modified";

/// Chrome's Private Network Access: a public page (the demo viewer on https) reaching a loopback
/// server asks in the preflight, and proceeds only if the server agrees.
const REQUEST_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");
const ALLOW_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-allow-private-network");

/// Where a LOCATION's volume is.
#[derive(Debug, PartialEq)]
pub enum Target {
    /// A local folder to serve, and the volume's folder below it: `neuroglancer/jpeg` for a
    /// destination, empty for the volume's own folder.
    Folder {
        /// The folder served.
        root: PathBuf,
        /// The volume's folder below `root`.
        volume: &'static str,
    },
    /// A volume on GCS: its folder's URL, `gs://bucket[/prefix]/neuroglancer/jpeg`.
    Gcs(String),
}

/// Resolves LOCATION as the rest of emwrite names locations (module doc): a `gs://` URL or, with
/// `--store gcs`, a bucket name is GCS; a bucket name is otherwise the folder under `data_dir`;
/// anything else must be a folder. Each may be a destination or the volume's own folder.
pub fn locate(location: &str, store: DefaultStore, data_dir: &Path) -> Result<Target, HostError> {
    let gcs = |url: String| match volume_below(&url) {
        Some(_) => Target::Gcs(url),
        None => Target::Gcs(volume_url(&url, layout::volume_prefix(Encoding::Jpeg))),
    };
    match Location::parse("LOCATION", location) {
        Ok(parsed) if parsed.store() == Store::Gcs => return Ok(gcs(parsed.to_string())),
        Ok(parsed) if store == DefaultStore::Gcs => return Ok(gcs(format!("gs://{parsed}"))),
        Ok(_) => {
            let bucket_folder = data_dir.join(location.trim_end_matches('/'));
            if bucket_folder.is_dir() {
                return Ok(local_target(bucket_folder));
            }
        }
        // `http://…`, `s3://…`: the parser's message says what a location may be.
        Err(error) if location.contains("://") => {
            return Err(HostError::Config(error.message().to_owned()));
        }
        Err(_) => {}
    }
    let folder = Path::new(location);
    if folder.is_dir() {
        return Ok(local_target(folder.to_path_buf()));
    }
    Err(HostError::Config(format!(
        "LOCATION {location:?}: no folder {} (a bucket under --data-dir) nor {location}",
        data_dir.join(location).display()
    )))
}

/// A local folder as a target: the volume's own folder when it holds an `info`, else a
/// destination whose JPEG volume is served.
fn local_target(root: PathBuf) -> Target {
    let volume = if root.join(INFO_FILE).is_file() {
        ""
    } else {
        layout::volume_prefix(Encoding::Jpeg)
    };
    Target::Folder { root, volume }
}

/// The URL of the volume folder `volume` below `base` (`volume` empty: `base` itself).
pub fn volume_url(base: &str, volume: &str) -> String {
    let base = base.trim_end_matches('/');
    if volume.is_empty() {
        base.to_owned()
    } else {
        format!("{base}/{volume}")
    }
}

/// The destination part of a location that names a volume's own folder
/// (`lab/run1/neuroglancer/jpeg` → `lab/run1`), `None` for any other location.
fn volume_below(location: &str) -> Option<&str> {
    let trimmed = location.trim_end_matches('/');
    [Encoding::Jpeg, Encoding::Raw]
        .into_iter()
        .find_map(|encoding| {
            let dest = trimmed.strip_suffix(layout::volume_prefix(encoding))?;
            (dest.is_empty() || dest.ends_with('/')).then(|| dest.trim_end_matches('/'))
        })
}

/// The volume's `info` in `volume` below `folder`, which must be there for the volume to be worth
/// serving.
pub fn read_info(folder: &Path, volume: &str) -> Result<VolumeInfo, HostError> {
    let path = folder.join(volume).join(INFO_FILE);
    let bytes = std::fs::read(&path).map_err(|e| {
        HostError::Config(format!(
            "no volume in {}: {}: {e} (LOCATION is a pipeline's dest, or the volume's own \
             folder holding its info)",
            folder.display(),
            path.display()
        ))
    })?;
    VolumeInfo::from_json(&bytes)
        .map_err(|e| HostError::Config(format!("{}: {}", path.display(), e.message())))
}

/// The image layer's name in the viewer: the destination's last segment (`lab/run1` and
/// `lab/run1/neuroglancer/jpeg` → `run1`).
pub fn layer_name(location: &str) -> String {
    let trimmed = location.trim_end_matches('/');
    let trimmed = volume_below(trimmed).unwrap_or(trimmed);
    let last = trimmed.rsplit('/').next().unwrap_or(trimmed);
    if last.is_empty() {
        "volume".to_owned()
    } else {
        last.to_owned()
    }
}

/// Answers one request: a preflight, a file (whole, a range, or 416), or 405; every answer
/// allows any origin.
pub async fn respond(
    resolver: &Resolver<InsideFolder>,
    request: Request<Incoming>,
) -> Response<Body> {
    let mut response = match *request.method() {
        Method::OPTIONS => preflight(request.headers()),
        Method::GET | Method::HEAD => serve_file(resolver, &request).await,
        _ => {
            let mut response = status(StatusCode::METHOD_NOT_ALLOWED);
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(METHODS));
            response
        }
    };
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED_HEADERS),
    );
    response
}

/// Static files through hyper-staticfile, which parses `Range` (single and multiple ranges,
/// suffixes, 206 and 416), `If-Modified-Since` and `If-Range`, and drops `..` from paths: a
/// well-kept crate for what is easy to get subtly wrong. It reads from [`InsideFolder`].
async fn serve_file(
    resolver: &Resolver<InsideFolder>,
    request: &Request<Incoming>,
) -> Response<Body> {
    let resolved = match resolver.resolve_request(request).await {
        Ok(resolved) => resolved,
        Err(error) => {
            // Missing files are 404 without a log line: Neuroglancer asks for shards of all-zero
            // regions, which ngshard never writes.
            tracing::warn!("{}: {error}", request.uri().path());
            return status(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let size = match &resolved {
        ResolveResult::Found(file) => Some(file.size),
        _ => None,
    };
    let mut response = ResponseBuilder::new()
        .request(request)
        .build(resolved)
        .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR));
    let headers = response.headers_mut();
    // A volume may be rewritten (a resumed run): revalidate, with the ETag and Last-Modified.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // RFC 9110 §15.5.17: a 416 says the current length, which the crate leaves out.
    if response.status() == StatusCode::RANGE_NOT_SATISFIABLE
        && let Some(size) = size
        && let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}"))
    {
        response.headers_mut().insert(CONTENT_RANGE, value);
    }
    response
}

/// The CORS preflight answer: any origin may GET and HEAD with any request headers (`Range`).
fn preflight(request: &HeaderMap) -> Response<Body> {
    let mut response = status(StatusCode::NO_CONTENT);
    let headers = response.headers_mut();
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(METHODS),
    );
    if let Some(asked) = request.get(ACCESS_CONTROL_REQUEST_HEADERS) {
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    if request.contains_key(REQUEST_PRIVATE_NETWORK) {
        headers.insert(ALLOW_PRIVATE_NETWORK, HeaderValue::from_static("true"));
    }
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    response
}

fn status(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = status;
    response
}

/// Opens files of one folder only: the resolved path, links followed, must lie inside the
/// folder's own resolved path (a link out of it is refused with 403, as a missing file is 404).
pub struct InsideFolder {
    root: PathBuf,
}

impl InsideFolder {
    /// Serves `folder`, which must exist.
    pub fn new(folder: &Path) -> Result<Self, HostError> {
        let root = folder
            .canonicalize()
            .map_err(|e| HostError::Config(format!("{}: {e}", folder.display())))?;
        Ok(InsideFolder { root })
    }
}

type OpenFuture =
    Pin<Box<dyn Future<Output = io::Result<FileWithMetadata<tokio::fs::File>>> + Send>>;

impl FileOpener for InsideFolder {
    type File = tokio::fs::File;
    type Future = OpenFuture;

    /// `path` is relative: hyper-staticfile dropped the root, `.` and `..` from the request's.
    fn open(&self, path: &Path) -> Self::Future {
        let root = self.root.clone();
        let path = self.root.join(path);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || open_inside(&root, &path))
                .await
                .map_err(io::Error::other)?
        })
    }
}

fn open_inside(root: &Path, path: &Path) -> io::Result<FileWithMetadata<tokio::fs::File>> {
    let resolved = path.canonicalize()?;
    if !resolved.starts_with(root) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "leads out of the served folder",
        ));
    }
    // The resolved path is opened, so a link swapped meanwhile cannot lead out.
    let file = std::fs::File::open(&resolved)?;
    let metadata = file.metadata()?;
    Ok(FileWithMetadata {
        handle: tokio::fs::File::from_std(file),
        size: metadata.len(),
        modified: metadata.modified().ok(),
        is_dir: metadata.is_dir(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_named_as_in_the_rest_of_emwrite() {
        let dir = std::env::temp_dir().join(format!("emwrite-view-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lab/run1")).expect("scratch folders");
        let local = DefaultStore::Local;
        let dest = |root: PathBuf| Target::Folder {
            root,
            volume: "neuroglancer/jpeg",
        };
        assert_eq!(
            locate("lab", local, &dir).expect("a bucket folder"),
            dest(dir.join("lab"))
        );
        assert_eq!(
            locate("lab/run1/", local, &dir).expect("a bucket and prefix"),
            dest(dir.join("lab/run1"))
        );
        let path = dir.join("lab").display().to_string();
        assert_eq!(
            locate(&path, local, Path::new("/nonexistent")).expect("a folder path"),
            dest(PathBuf::from(&path))
        );
        assert_eq!(
            locate("gs://lab/run1/", local, &dir).expect("a GCS URL"),
            Target::Gcs("gs://lab/run1/neuroglancer/jpeg".to_owned())
        );
        assert_eq!(
            locate("lab", DefaultStore::Gcs, &dir).expect("a GCS bucket"),
            Target::Gcs("gs://lab/neuroglancer/jpeg".to_owned())
        );
        let missing = locate("nolab", local, &dir).expect_err("no such folder");
        assert!(missing.to_string().contains("nolab"), "{missing}");
        assert!(locate("http://example.org/v", local, &dir).is_err());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn the_volume_s_own_folder_is_taken_too() {
        let dir = std::env::temp_dir().join(format!("emwrite-view-own-{}", std::process::id()));
        let jpeg = dir.join("lab/neuroglancer/jpeg");
        std::fs::create_dir_all(&jpeg).expect("scratch folders");
        std::fs::write(jpeg.join("info"), b"{}").expect("an info");
        let local = DefaultStore::Local;
        let own = Target::Folder {
            root: jpeg.clone(),
            volume: "",
        };
        let path = jpeg.display().to_string();
        assert_eq!(
            locate(&path, local, Path::new("/nonexistent")).unwrap(),
            own
        );
        assert_eq!(
            locate("lab/neuroglancer/jpeg/", local, &dir).unwrap(),
            own,
            "a bucket folder and prefix"
        );
        assert_eq!(
            locate("gs://lab/run1/neuroglancer/raw", local, &dir).unwrap(),
            Target::Gcs("gs://lab/run1/neuroglancer/raw".to_owned())
        );
        assert_eq!(layer_name(&path), "lab");
        assert_eq!(layer_name("gs://lab/run1/neuroglancer/jpeg/"), "run1");
        assert_eq!(layer_name("lab/myneuroglancer/jpeg"), "jpeg");
        assert_eq!(volume_url("http://127.0.0.1:9/", ""), "http://127.0.0.1:9");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[cfg(unix)]
    #[test]
    fn files_are_opened_only_inside_the_folder() {
        let dir = std::env::temp_dir().join(format!("emwrite-inside-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("served")).expect("scratch folders");
        std::fs::write(dir.join("secret"), b"x").expect("a file outside");
        std::fs::write(dir.join("served/info"), b"{}").expect("a file inside");
        std::os::unix::fs::symlink(dir.join("secret"), dir.join("served/out")).expect("a link out");
        let root = dir.join("served").canonicalize().expect("the root");
        assert_eq!(
            open_inside(&root, &root.join("info")).expect("inside").size,
            2
        );
        let out = open_inside(&root, &root.join("out")).expect_err("a link out");
        assert_eq!(out.kind(), io::ErrorKind::PermissionDenied);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
