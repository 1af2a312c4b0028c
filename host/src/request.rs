//! A typed request to any of the three endpoints: the core's request types under one enum, read
//! from and written as the original API's JSON by the core's wire module
//! (`emwrite::request::wire`), which owns every key; the host spells none.
//!
//! A stack's tasks are these (`stack/tasks.rs`); the remote executor sends their JSON, the
//! in-process one turns them into the component's WIT records (`embed/wit.rs`), and `emwrite run`
//! reads one from a file.

use emwrite::endpoint::Endpoint;
use emwrite::request::{AlignedSliceRequest, NgMetaRequest, NgShardRequest};

/// One endpoint's request, validated by the core's rules.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `/alignedslice`.
    AlignedSlice(AlignedSliceRequest),
    /// `/ngmeta`.
    NgMeta(NgMetaRequest),
    /// `/ngshard`.
    NgShard(NgShardRequest),
}

impl Request {
    /// Parses and validates a request body of `endpoint` in the original's JSON: the parser the
    /// component's HTTP handler runs (`docs/design.md` §2), so the host accepts exactly what a
    /// service accepts.
    pub fn from_json(endpoint: Endpoint, body: &[u8]) -> emwrite::Result<Self> {
        Ok(match endpoint {
            Endpoint::AlignedSlice => Self::AlignedSlice(AlignedSliceRequest::from_json(body)?),
            Endpoint::NgMeta => Self::NgMeta(NgMetaRequest::from_json(body)?),
            Endpoint::NgShard => Self::NgShard(NgShardRequest::from_json(body)?),
        })
    }

    /// The request as the original's JSON body, which [`Request::from_json`] reads back.
    pub fn to_json(&self) -> Vec<u8> {
        match self {
            Self::AlignedSlice(request) => request.to_json(),
            Self::NgMeta(request) => request.to_json(),
            Self::NgShard(request) => request.to_json(),
        }
    }

    /// The endpoint it goes to.
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Self::AlignedSlice(_) => Endpoint::AlignedSlice,
            Self::NgMeta(_) => Endpoint::NgMeta,
            Self::NgShard(_) => Endpoint::NgShard,
        }
    }
}

#[cfg(test)]
mod tests {
    use emwrite::storage::location::Location;

    use super::*;

    #[test]
    fn requests_go_to_their_endpoint_and_back_through_json() {
        let location = |text| Location::parse("test", text).expect("a location");
        let requests = [
            Request::AlignedSlice(AlignedSliceRequest {
                img: "s3.png".into(),
                transform: [1.0, 0.0, 0.0, 1.0, 4.5, -2.0],
                bbox: [1300, 1100],
                dest: location("emdata"),
                dest_tmp: location("gs://lab/tmp"),
                slice: 3,
                shard_size: 1024,
                window: Some(emwrite::window::Window::new(9, 900).expect("a window")),
            }),
            Request::NgMeta(NgMetaRequest {
                dest: location("emdata"),
                minz: 3,
                maxz: 40,
                bbox: [1300, 1100],
                write_raw: true,
                resolution_nm: [4.0, 4.0, 40.0],
                format: Default::default(),
            }),
            Request::NgShard(NgShardRequest {
                dest: location("emdata"),
                source: location("emdata-tmp"),
                start: [1, 0, 0],
                minz: 3,
                maxz: 40,
                bbox: [1300, 1100],
                write_raw: false,
                jpeg_quality: 90,
                missing: vec![7],
                format: Default::default(),
            }),
        ];
        for (request, endpoint) in requests.into_iter().zip(Endpoint::ALL) {
            assert_eq!(request.endpoint(), endpoint);
            let read = Request::from_json(endpoint, &request.to_json()).expect("parses");
            assert_eq!(read, request);
        }
    }
}
