//! Which store an object goes to: `gs://` locations to GCS, bare bucket names to the default.
//!
//! docs/design.md §3: a bare bucket name means the host's default store, a local data directory
//! unless the host runs with `--store gcs` (guest env `EMWRITE_STORE=gcs`). Configuration errors
//! are kept and reported when a request first needs the store they concern, so that a bad setting
//! fails requests with a clear message rather than trapping the instance.

use super::{
    FinishedObject, ObjectWriter, PrefixedObjectWriter, SentObject, Storage, StreamingStorage,
};
use crate::guest_env::DEFAULT_STORE_ENV;
use crate::storage::location::{ObjectPath, Store};
use crate::{Error, Result};
use std::ops::Range;

/// Where bare bucket names go: the guest's [`DEFAULT_STORE_ENV`], the native host's `--store`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultStore {
    /// Folders of the data directory: bucket B is `<data-dir>/B`.
    Local,
    /// Google Cloud Storage buckets (or the emulator's, with
    /// [`EMULATOR_HOST_ENV`](crate::guest_env::EMULATOR_HOST_ENV) set).
    Gcs,
}

impl DefaultStore {
    /// Both stores, the default first.
    pub const ALL: [Self; 2] = [Self::Local, Self::Gcs];

    /// The value that selects it: `local` or `gcs`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Gcs => "gcs",
        }
    }

    /// What it means, for command-line help.
    #[cfg(feature = "clap")]
    fn description(self) -> String {
        match self {
            Self::Local => "folders of the data directory: bucket B is <data-dir>/B".to_owned(),
            Self::Gcs => {
                let emulator = crate::guest_env::EMULATOR_HOST_ENV;
                format!("Google Cloud Storage buckets (or the emulator's, with {emulator})")
            }
        }
    }

    /// Parses the value of [`DEFAULT_STORE_ENV`]; unset or empty means local.
    ///
    /// ```
    /// use emwrite::storage::router::DefaultStore;
    /// assert_eq!(DefaultStore::parse(None).unwrap(), DefaultStore::Local);
    /// assert_eq!(DefaultStore::parse(Some("gcs")).unwrap(), DefaultStore::Gcs);
    /// assert!(DefaultStore::parse(Some("s3")).is_err());
    /// ```
    pub fn parse(value: Option<&str>) -> Result<Self> {
        let value = value.map_or("", str::trim);
        if value.is_empty() {
            return Ok(Self::Local);
        }
        Self::ALL
            .into_iter()
            .find(|store| store.name() == value)
            .ok_or_else(|| {
                Error::internal(format!(
                    "{DEFAULT_STORE_ENV}: unknown store {value:?}: expected \"local\" or \"gcs\""
                ))
            })
    }
}

/// The native host's `--store`: the same names as [`DEFAULT_STORE_ENV`] takes.
#[cfg(feature = "clap")]
impl clap::ValueEnum for DefaultStore {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.description()))
    }
}

/// Sends each object to the local store `L` or the GCS store `G`.
#[derive(Debug)]
pub struct Router<L, G> {
    local: L,
    gcs: Result<G>,
    default: Result<DefaultStore>,
}

enum Target<'a, L, G> {
    Local(&'a L),
    Gcs(&'a G),
}

impl<L: Storage, G: Storage> Router<L, G> {
    /// A router over both stores; either configuration may have failed.
    pub fn new(local: L, gcs: Result<G>, default: Result<DefaultStore>) -> Self {
        Self {
            local,
            gcs,
            default,
        }
    }

    fn target(&self, object: &ObjectPath) -> Result<Target<'_, L, G>> {
        let to_gcs = match object.store {
            Store::Gcs => true,
            Store::Default => self.default.clone()? == DefaultStore::Gcs,
        };
        if to_gcs {
            self.gcs.as_ref().map(Target::Gcs).map_err(Clone::clone)
        } else {
            Ok(Target::Local(&self.local))
        }
    }
}

impl<L: Storage, G: Storage> Storage for Router<L, G> {
    async fn get(&self, object: &ObjectPath) -> Result<Vec<u8>> {
        match self.target(object)? {
            Target::Local(s) => s.get(object).await,
            Target::Gcs(s) => s.get(object).await,
        }
    }

    async fn get_range(&self, object: &ObjectPath, range: Range<u64>) -> Result<Vec<u8>> {
        match self.target(object)? {
            Target::Local(s) => s.get_range(object, range).await,
            Target::Gcs(s) => s.get_range(object, range).await,
        }
    }

    async fn put(&self, object: &ObjectPath, bytes: &[u8], content_type: &str) -> Result<()> {
        match self.target(object)? {
            Target::Local(s) => s.put(object, bytes, content_type).await,
            Target::Gcs(s) => s.put(object, bytes, content_type).await,
        }
    }

    async fn size(&self, object: &ObjectPath) -> Result<Option<u64>> {
        match self.target(object)? {
            Target::Local(s) => s.size(object).await,
            Target::Gcs(s) => s.size(object).await,
        }
    }

    async fn check_writable(&self, object: &ObjectPath) -> Result<()> {
        match self.target(object)? {
            Target::Local(s) => s.check_writable(object).await,
            Target::Gcs(s) => s.check_writable(object).await,
        }
    }

    fn retries(&self) -> u32 {
        let gcs = self.gcs.as_ref().map_or(0, Storage::retries);
        self.local.retries() + gcs
    }
}

impl<L: StreamingStorage, G: StreamingStorage> StreamingStorage for Router<L, G> {
    type Writer<'a>
        = RoutedWriter<L::Writer<'a>, G::Writer<'a>>
    where
        Self: 'a;
    type PrefixedWriter<'a>
        = RoutedWriter<L::PrefixedWriter<'a>, G::PrefixedWriter<'a>>
    where
        Self: 'a;

    async fn start_put(&self, object: &ObjectPath, content_type: &str) -> Result<Self::Writer<'_>> {
        Ok(match self.target(object)? {
            Target::Local(s) => RoutedWriter::Local(s.start_put(object, content_type).await?),
            Target::Gcs(s) => RoutedWriter::Gcs(s.start_put(object, content_type).await?),
        })
    }

    async fn start_put_with_prefix(
        &self,
        object: &ObjectPath,
        content_type: &str,
        prefix_len: u64,
    ) -> Result<Self::PrefixedWriter<'_>> {
        Ok(match self.target(object)? {
            Target::Local(s) => RoutedWriter::Local(
                s.start_put_with_prefix(object, content_type, prefix_len)
                    .await?,
            ),
            Target::Gcs(s) => RoutedWriter::Gcs(
                s.start_put_with_prefix(object, content_type, prefix_len)
                    .await?,
            ),
        })
    }
}

/// The writer of whichever store an object went to, or (as [`PrefixedObjectWriter::Sent`]) the
/// object sent there.
#[derive(Debug)]
pub enum RoutedWriter<L, G> {
    /// Writing to the local store.
    Local(L),
    /// Writing to GCS.
    Gcs(G),
}

impl<L: ObjectWriter, G: ObjectWriter> ObjectWriter for RoutedWriter<L, G> {
    async fn append(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            RoutedWriter::Local(w) => w.append(bytes).await,
            RoutedWriter::Gcs(w) => w.append(bytes).await,
        }
    }

    async fn finish(self) -> Result<u64> {
        match self {
            RoutedWriter::Local(w) => w.finish().await,
            RoutedWriter::Gcs(w) => w.finish().await,
        }
    }
}

impl<L: PrefixedObjectWriter, G: PrefixedObjectWriter> PrefixedObjectWriter for RoutedWriter<L, G> {
    type Sent = RoutedWriter<L::Sent, G::Sent>;

    async fn append(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            RoutedWriter::Local(w) => w.append(bytes).await,
            RoutedWriter::Gcs(w) => w.append(bytes).await,
        }
    }

    async fn send_with_prefix(self, prefix: &[u8]) -> Result<Self::Sent> {
        Ok(match self {
            RoutedWriter::Local(w) => RoutedWriter::Local(w.send_with_prefix(prefix).await?),
            RoutedWriter::Gcs(w) => RoutedWriter::Gcs(w.send_with_prefix(prefix).await?),
        })
    }
}

impl<L: SentObject, G: SentObject> SentObject for RoutedWriter<L, G> {
    async fn complete(self) -> Result<FinishedObject> {
        match self {
            RoutedWriter::Local(sent) => sent.complete().await,
            RoutedWriter::Gcs(sent) => sent.complete().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::storage::location::Location;

    /// Answers every get with its own name.
    struct Named(&'static str);

    impl Storage for Named {
        async fn get(&self, _: &ObjectPath) -> Result<Vec<u8>> {
            Ok(self.0.as_bytes().to_vec())
        }
        async fn get_range(&self, _: &ObjectPath, _: Range<u64>) -> Result<Vec<u8>> {
            Ok(self.0.as_bytes().to_vec())
        }
        async fn put(&self, _: &ObjectPath, _: &[u8], _: &str) -> Result<()> {
            Ok(())
        }
        fn retries(&self) -> u32 {
            3
        }
    }

    fn get(router: &Router<Named, Named>, location: &str) -> Result<Vec<u8>> {
        let object = Location::parse("dest", location).unwrap().object("info");
        pollster::block_on(router.get(&object))
    }

    #[test]
    fn gs_goes_to_gcs_and_bare_names_to_the_default() {
        let router = Router::new(Named("local"), Ok(Named("gcs")), DefaultStore::parse(None));
        assert_eq!(get(&router, "lab").unwrap(), b"local");
        assert_eq!(get(&router, "gs://lab").unwrap(), b"gcs");
        assert_eq!(router.retries(), 6);

        let router = Router::new(Named("local"), Ok(Named("gcs")), Ok(DefaultStore::Gcs));
        assert_eq!(get(&router, "lab").unwrap(), b"gcs");
        assert_eq!(get(&router, "gs://lab").unwrap(), b"gcs");
    }

    #[test]
    fn bad_settings_fail_only_the_requests_that_need_them() {
        let router = Router::new(
            Named("local"),
            Ok(Named("gcs")),
            DefaultStore::parse(Some("s3")),
        );
        assert_eq!(get(&router, "gs://lab").unwrap(), b"gcs");
        let e = get(&router, "lab").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(
            e.to_string(),
            "EMWRITE_STORE: unknown store \"s3\": expected \"local\" or \"gcs\""
        );

        let broken = Err(Error::internal("EMWRITE_RETRY_BASE_MS: bad"));
        let router = Router::new(Named("local"), broken, Ok(DefaultStore::Local));
        assert_eq!(get(&router, "lab").unwrap(), b"local");
        assert_eq!(
            get(&router, "gs://lab").unwrap_err().to_string(),
            "EMWRITE_RETRY_BASE_MS: bad"
        );
        assert_eq!(router.retries(), 3);
    }
}
