//! Where a stack file is read from: a path on this machine, or a GCS object
//! (`gs://bucket/path/stack.json`) read through the host's own storage access
//! (`embed/store.rs`), with the credentials and the `STORAGE_EMULATOR_HOST` rule of every other
//! GCS request: a Cloud Run Job or a Kubernetes Job then needs no volume for it.
//!
//! Only a `gs://` URL names an object. Anything else is a path, also with `--store gcs`: the stack
//! file has always been a local file, and `runs/stack.json` must not turn into the bucket `runs`
//! when a flag changes where the *volume* goes.

use std::fmt;
use std::path::{Path, PathBuf};

use emwrite::storage::Storage;
use emwrite::storage::location::{Location, ObjectPath, check_object_name};

use crate::embed::outgoing::AllowedHost;
use crate::embed::store;
use crate::error::HostError;
use crate::runtime::runtime;

/// The argument's name in messages.
const ARGUMENT: &str = "STACK";

/// A stack file's place, as given on the command line.
#[derive(Debug, Clone)]
pub enum StackFile {
    /// A file on this machine.
    Local(PathBuf),
    /// A GCS object.
    Gcs {
        /// As given: `gs://bucket/path/stack.json`.
        url: String,
        /// The object it names.
        object: ObjectPath,
    },
}

impl StackFile {
    /// `gs://BUCKET/OBJECT` is a GCS object; anything else is a local path.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix("gs://") else {
            return Ok(StackFile::Local(PathBuf::from(text)));
        };
        let (bucket, name) = rest.split_once('/').unwrap_or((rest, ""));
        if name.is_empty() || name.ends_with('/') {
            return Err(format!(
                "{text:?}: expected gs://BUCKET/OBJECT, e.g. gs://lab/run1/stack.json"
            ));
        }
        let bucket =
            Location::parse(ARGUMENT, &format!("gs://{bucket}")).map_err(|e| e.to_string())?;
        check_object_name(ARGUMENT, name).map_err(|e| e.to_string())?;
        Ok(StackFile::Gcs {
            url: text.to_owned(),
            object: bucket.object(name),
        })
    }

    /// Whether it holds CSV rather than JSON: its name ends in `.csv`.
    pub fn is_csv(&self) -> bool {
        let path = match self {
            StackFile::Local(path) => path.as_path(),
            StackFile::Gcs { object, .. } => Path::new(&object.name),
        };
        path.extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("csv"))
    }

    /// The file's text. A GCS object is read as the component reads GCS (`embed/store.rs`): the
    /// emulator of `STORAGE_EMULATOR_HOST`, else GCS with the host's credentials; a missing object
    /// is an error naming it.
    pub fn read(&self, allow_hosts: &[AllowedHost]) -> Result<String, HostError> {
        let failed = |why: String| HostError::Config(format!("stack file {self}: {why}"));
        let bytes = match self {
            StackFile::Local(path) => std::fs::read(path).map_err(|e| failed(e.to_string()))?,
            StackFile::Gcs { object, .. } => {
                let runtime = runtime(Some(1))?;
                runtime.block_on(async {
                    let gcs = store::open_gcs(allow_hosts)?.map_err(|e| failed(e.to_string()))?;
                    gcs.get(object).await.map_err(|e| failed(e.to_string()))
                })?
            }
        };
        String::from_utf8(bytes).map_err(|_| failed("not UTF-8 text".to_owned()))
    }
}

impl fmt::Display for StackFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackFile::Local(path) => write!(f, "{}", path.display()),
            StackFile::Gcs { url, .. } => f.write_str(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use emwrite::storage::location::Store;

    use super::*;

    #[test]
    fn only_gs_urls_name_objects() {
        let Ok(StackFile::Gcs { url, object }) = StackFile::parse("gs://lab/runs/1/stack.CSV")
        else {
            panic!("a GCS object");
        };
        assert_eq!(url, "gs://lab/runs/1/stack.CSV");
        assert_eq!(
            (object.store, object.bucket.as_str(), object.name.as_str()),
            (Store::Gcs, "lab", "runs/1/stack.CSV")
        );
        assert!(
            StackFile::parse("gs://lab/runs/1/stack.CSV")
                .unwrap()
                .is_csv()
        );
        for local in ["stack.json", "lab/stack.csv", "/srv/em/stack.json", "./s"] {
            assert!(
                matches!(StackFile::parse(local), Ok(StackFile::Local(_))),
                "{local}"
            );
        }
        assert!(StackFile::parse("lab/stack.csv").unwrap().is_csv());
        assert!(!StackFile::parse("gs://lab/csv").unwrap().is_csv());
    }

    #[test]
    fn a_gs_url_must_name_an_object_in_a_valid_bucket() {
        for (bad, says) in [
            ("gs://lab", "expected gs://BUCKET/OBJECT"),
            ("gs://lab/", "expected gs://BUCKET/OBJECT"),
            ("gs://lab/runs/", "expected gs://BUCKET/OBJECT"),
            ("gs://la b/stack.json", "STACK: invalid bucket name"),
            ("gs://lab/../stack.json", "STACK: "),
        ] {
            let error = StackFile::parse(bad).expect_err(bad);
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn a_missing_local_file_is_named() {
        let missing = StackFile::parse("/nonexistent/stack.json").unwrap();
        let error = missing.read(&[]).expect_err("no such file");
        assert!(
            error
                .to_string()
                .starts_with("stack file /nonexistent/stack.json: "),
            "{error}"
        );
    }
}
