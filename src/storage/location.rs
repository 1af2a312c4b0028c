//! Where objects live: a bucket name (as in the original) or a `gs://bucket/prefix` URL.
//!
//! A bare bucket name goes to the host's default store (a local data directory unless the host is
//! configured for GCS); `gs://` always means Google Cloud Storage (docs/design.md §3). Object names are
//! checked here so that no request can reach outside its bucket.

use crate::{Error, Result};
use std::fmt;

/// Which store a location names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// A bare bucket name: the host's default store.
    Default,
    /// A `gs://` URL.
    Gcs,
}

/// A validated bucket plus an optional prefix inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    store: Store,
    bucket: String,
    /// Empty, or `/`-separated segments without leading or trailing slash.
    prefix: String,
}

/// One object: a bucket and a full object name (prefix included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectPath {
    /// Which store holds it.
    pub store: Store,
    /// The bucket.
    pub bucket: String,
    /// The object's full name inside the bucket.
    pub name: String,
}

impl Location {
    /// Parses the location held in request field `field`.
    ///
    /// ```
    /// use emwrite::storage::location::Location;
    /// let l = Location::parse("dest", "gs://lab-em/run1").unwrap();
    /// assert_eq!(l.object("raw/s1.png").to_string(), "run1/raw/s1.png in bucket gs://lab-em");
    /// assert!(Location::parse("dest", "../etc").is_err());
    /// ```
    pub fn parse(field: &str, text: &str) -> Result<Self> {
        let (store, rest) = match text.strip_prefix("gs://") {
            Some(rest) => (Store::Gcs, rest),
            None if text.contains("://") => {
                return Err(Error::bad_field(
                    field,
                    format!(
                        "unsupported location {text:?}: expected a bucket name or gs://bucket/prefix"
                    ),
                ));
            }
            None => (Store::Default, text),
        };
        let rest = rest.trim_end_matches('/');
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(field, bucket)?;
        if !prefix.is_empty() {
            check_object_name(field, prefix)?;
        }
        Ok(Self {
            store,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The object `name` below this location's prefix. `name` must already be checked.
    pub fn object(&self, name: &str) -> ObjectPath {
        let name = if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        };
        ObjectPath {
            store: self.store,
            bucket: self.bucket.clone(),
            name,
        }
    }

    /// Which store the location names.
    pub fn store(&self) -> Store {
        self.store
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.store == Store::Gcs {
            f.write_str("gs://")?;
        }
        f.write_str(&self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.store == Store::Gcs {
            "gs://"
        } else {
            ""
        };
        write!(f, "{} in bucket {scheme}{}", self.name, self.bucket)
    }
}

/// Bucket names as GCS allows them (letters, digits, `-`, `_`, `.`), which also keeps a local
/// bucket folder inside the data directory.
fn check_bucket(field: &str, bucket: &str) -> Result<()> {
    let valid_chars = bucket
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if bucket.is_empty() || bucket.len() > 222 || !valid_chars || bucket.starts_with('.') {
        return Err(Error::bad_field(
            field,
            format!("invalid bucket name {bucket:?}: use letters, digits, '-', '_' and '.'"),
        ));
    }
    Ok(())
}

/// An object name must stay inside its bucket: relative, no empty, `.` or `..` segments, no
/// backslashes or control characters.
pub fn check_object_name(field: &str, name: &str) -> Result<()> {
    let bad_segment = name
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..");
    let bad_char = name.chars().any(|c| c.is_control() || c == '\\');
    if name.is_empty() || name.len() > 1024 || bad_segment || bad_char {
        return Err(Error::bad_field(
            field,
            format!("invalid object name {name:?}: must be a relative path inside the bucket"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_bucket_goes_to_the_default_store() {
        let l = Location::parse("dest", "lab-em").unwrap();
        assert_eq!(l.store(), Store::Default);
        assert_eq!(l.object("align/a.png").name, "align/a.png");
        assert_eq!(l.to_string(), "lab-em");
    }

    #[test]
    fn gs_url_keeps_its_prefix() {
        let l = Location::parse("dest", "gs://lab-em/runs/7/").unwrap();
        assert_eq!(l.store(), Store::Gcs);
        assert_eq!(l.bucket(), "lab-em");
        assert_eq!(l.object("info").name, "runs/7/info");
        assert_eq!(l.to_string(), "gs://lab-em/runs/7");
    }

    #[test]
    fn escapes_and_odd_names_are_rejected_naming_the_field() {
        for bad in [
            "",
            "..",
            "a/../b",
            "/abs",
            "gs://",
            "gs://b/../x",
            "s3://b",
            "a b",
            "b\\x",
        ] {
            let e = Location::parse("dest-tmp", bad).unwrap_err();
            assert!(e.message().starts_with("dest-tmp: "), "{bad}: {e}");
        }
        for bad in ["../x", "/x", "a//b", "a/./b", "", "a\0b"] {
            assert!(check_object_name("img", bad).is_err(), "{bad:?}");
        }
        assert!(check_object_name("img", "sub/s0001.png").is_ok());
    }
}
