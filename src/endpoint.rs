//! The endpoints of the original API: one list, with each endpoint's route, name and WIT interface.
//!
//! docs/design.md §4 lists them; the component's HTTP handler routes with [`Endpoint::from_route`],
//! and the native host's `emwrite run ENDPOINT` takes [`Endpoint::name`] (or the WIT interface
//! name) on its command line.

use std::fmt;

/// The largest request body accepted, in bytes. Request bodies are a few hundred bytes of JSON;
/// anything far larger is a mistake. The component enforces it, and the native host enforces it
/// (its `--max-body` default) while the body streams in, before an instance is made.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The health check's route, which is ours rather than the original API's. Hosts never refuse it
/// for load or credentials: it says whether the server is alive.
pub const HEALTH_ROUTE: &str = "/healthz";

/// The methods the health check answers, for its `Allow` header.
pub const HEALTH_METHODS: &str = "GET, HEAD";

/// The methods every endpoint answers, for its `Allow` header.
pub const ENDPOINT_METHODS: &str = "POST";

/// Whether `path` is the health check's route; a trailing slash is ignored, as for endpoints.
///
/// ```
/// use emwrite::endpoint::is_health_route;
/// assert!(is_health_route("/healthz/"));
/// assert!(!is_health_route("/ngmeta"));
/// ```
pub fn is_health_route(path: &str) -> bool {
    path.trim_end_matches('/') == HEALTH_ROUTE
}

/// One endpoint of the original API (all `POST`, JSON body).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /alignedslice`: resample one raw slice and write its tile pack.
    AlignedSlice,
    /// `POST /ngmeta`: write the volume's `info`.
    NgMeta,
    /// `POST /ngshard`: write one 1024³ block's shards.
    NgShard,
}

impl Endpoint {
    /// Every endpoint, in the order of the original's pipeline.
    pub const ALL: [Self; 3] = [Self::AlignedSlice, Self::NgMeta, Self::NgShard];

    /// The original's name for it, which is also its route without the slash: `alignedslice`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AlignedSlice => "alignedslice",
            Self::NgMeta => "ngmeta",
            Self::NgShard => "ngshard",
        }
    }

    /// The URL path it is served at: `/alignedslice`.
    ///
    /// ```
    /// use emwrite::endpoint::Endpoint;
    /// assert_eq!(Endpoint::NgShard.route(), "/ngshard");
    /// ```
    pub fn route(self) -> &'static str {
        match self {
            Self::AlignedSlice => "/alignedslice",
            Self::NgMeta => "/ngmeta",
            Self::NgShard => "/ngshard",
        }
    }

    /// The name of the WIT interface that exports it (`wit/aligned-slice.wit`): `aligned-slice`.
    pub fn wit_interface(self) -> &'static str {
        match self {
            Self::AlignedSlice => "aligned-slice",
            Self::NgMeta => "ng-meta",
            Self::NgShard => "ng-shard",
        }
    }

    /// The endpoint served at `path`; a trailing slash is ignored, as the original ignored it.
    ///
    /// ```
    /// use emwrite::endpoint::Endpoint;
    /// assert_eq!(Endpoint::from_route("/ngmeta/"), Some(Endpoint::NgMeta));
    /// assert_eq!(Endpoint::from_route("/healthz"), None);
    /// ```
    pub fn from_route(path: &str) -> Option<Self> {
        let path = path.trim_end_matches('/');
        Self::ALL.into_iter().find(|e| e.route() == path)
    }

    /// The routes for a message: `/alignedslice, /ngmeta or /ngshard`.
    pub fn list_routes() -> String {
        let routes: Vec<&str> = Self::ALL.iter().map(|e| e.route()).collect();
        match routes.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `emwrite run ENDPOINT`: the original's name, or the WIT interface's as an alias.
#[cfg(feature = "clap")]
impl clap::ValueEnum for Endpoint {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).alias(self.wit_interface()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_names_and_interfaces_agree() {
        for endpoint in Endpoint::ALL {
            assert_eq!(endpoint.route(), format!("/{}", endpoint.name()));
            assert_eq!(endpoint.wit_interface().replace('-', ""), endpoint.name());
            assert_eq!(Endpoint::from_route(endpoint.route()), Some(endpoint));
        }
        assert_eq!(Endpoint::from_route("/aligned-slice"), None);
        assert_eq!(Endpoint::from_route(""), None);
    }

    #[test]
    fn routes_are_listed_for_messages() {
        assert_eq!(
            Endpoint::list_routes(),
            "/alignedslice, /ngmeta or /ngshard"
        );
    }
}
