//! The seam between the core's types and the component's WIT types as the host's bindings spell
//! them (`bindings.rs`): typed requests into WIT records, the WIT `task-error` back into the
//! core's error, a task's WIT report into the core's report body.
//!
//! The component makes the opposite conversions (`src/component/exports.rs`). The two sides
//! cannot share code: wasmtime's `bindgen!` and wit-bindgen generate distinct types from the same
//! WIT. Each side converts in one place, and the round trip is what the typed exports validate.

use emwrite::layout::BLOCK_EDGE;
use emwrite::request::{self, AlignedSliceRequest, NgMetaRequest, NgShardRequest};
use emwrite::tasks::{ReportBody, StageMicros};
use emwrite::{Error, ErrorKind};

use crate::embed::bindings::{
    OutputFormat, StageTimings, TaskError, Written, aligned_slice, ng_meta, ng_shard,
};

impl From<request::OutputFormat> for OutputFormat {
    fn from(format: request::OutputFormat) -> Self {
        match format {
            request::OutputFormat::Precomputed => Self::Precomputed,
            request::OutputFormat::OmeZarr => Self::OmeZarr,
            request::OutputFormat::Both => Self::Both,
        }
    }
}

impl From<&AlignedSliceRequest> for aligned_slice::Request {
    fn from(request: &AlignedSliceRequest) -> Self {
        Self {
            img: request.img.clone(),
            transform: request.transform.to_vec(),
            bbox: (request.bbox[0], request.bbox[1]),
            dest: request.dest.to_string(),
            dest_tmp: request.dest_tmp.to_string(),
            slice: request.slice,
            shard_size: request.shard_size,
            window: request.window.map(|w| {
                let [low, high] = w.bounds();
                (low, high)
            }),
        }
    }
}

impl From<&NgMetaRequest> for ng_meta::Request {
    fn from(request: &NgMetaRequest) -> Self {
        Self {
            dest: request.dest.to_string(),
            minz: request.minz,
            maxz: request.maxz,
            // The only block size the volume's endpoints take (`check_block_size`).
            shard_size: BLOCK_EDGE,
            bbox: (request.bbox[0], request.bbox[1]),
            write_raw: request.write_raw,
            resolution: request.resolution_nm.into(),
            format: request.format.into(),
        }
    }
}

impl From<&NgShardRequest> for ng_shard::Request {
    fn from(request: &NgShardRequest) -> Self {
        let [x, y, z] = request.start;
        Self {
            dest: request.dest.to_string(),
            source: request.source.to_string(),
            start: (x, y, z),
            shard_size: BLOCK_EDGE,
            minz: request.minz,
            maxz: request.maxz,
            bbox: (request.bbox[0], request.bbox[1]),
            write_raw: request.write_raw,
            jpeg_quality: request.jpeg_quality,
            missing: request.missing.clone(),
            format: request.format.into(),
        }
    }
}

/// The one mapping from the component's WIT `task-error` to the core error it was made from.
impl From<TaskError> for Error {
    fn from(error: TaskError) -> Self {
        let (kind, message) = match error {
            TaskError::BadRequest(message) => (ErrorKind::BadRequest, message),
            TaskError::NotFound(message) => (ErrorKind::NotFound, message),
            TaskError::UnreadableInput(message) => (ErrorKind::UnreadableInput, message),
            TaskError::TooLarge(message) => (ErrorKind::TooLarge, message),
            TaskError::Storage(message) => (ErrorKind::Storage, message),
            TaskError::Internal(message) => (ErrorKind::Internal, message),
        };
        Error::new(kind, message)
    }
}

impl From<&StageTimings> for StageMicros {
    fn from(stages: &StageTimings) -> Self {
        Self {
            fetch_us: stages.fetch_us,
            decode_us: stages.decode_us,
            resample_us: stages.resample_us,
            downsample_us: stages.downsample_us,
            encode_us: stages.encode_us,
            write_us: stages.write_us,
        }
    }
}

/// The report a task's WIT `written` makes: the HTTP API's JSON success body.
impl From<&Written> for ReportBody {
    fn from(written: &Written) -> Self {
        ReportBody::new(
            written.objects.clone(),
            written.bytes,
            written.retries,
            written.notes.clone(),
            StageMicros::from(&written.stages),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::HostError;

    #[test]
    fn task_errors_map_to_their_status_and_name_the_case() {
        let cases = [
            (
                TaskError::BadRequest("bbox: expected 2 numbers, got 3".into()),
                400,
            ),
            (
                TaskError::NotFound("raw/s1.png in bucket lab: not found".into()),
                404,
            ),
            (
                TaskError::UnreadableInput("raw/s1.png: not a PNG".into()),
                422,
            ),
            (
                TaskError::TooLarge("bbox: 100000 x 100000 is too large".into()),
                413,
            ),
            (
                TaskError::Storage("gs://lab/x: 503 after 6 tries".into()),
                502,
            ),
            (TaskError::Internal("shard index overflow".into()), 500),
        ];
        for (error, status) in cases {
            let host = HostError::Task {
                context: "slice z=3".into(),
                error: error.into(),
            };
            assert_eq!(host.status(), status, "{host}");
        }
        let host = HostError::Task {
            context: "slice z=3 (s3.png)".into(),
            error: TaskError::BadRequest("bbox: expected 2 numbers, got 3".into()).into(),
        };
        assert_eq!(
            host.to_string(),
            "slice z=3 (s3.png): bad request: bbox: expected 2 numbers, got 3"
        );
    }
}
