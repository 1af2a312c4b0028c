//! The typed WIT exports: WIT records in, core tasks run, core errors out as `task-error`, whose
//! cases are named as [`ErrorKind::name`] names the kinds.

use super::bindings::exports::emwrite::core::types::{
    OutputFormat as WitFormat, StageTimings, TaskError, Written,
};
use super::bindings::exports::emwrite::core::{aligned_slice, ng_meta, ng_shard};
use crate::layout::BlockHalf;
use crate::request::wire::{DEST, DEST_TMP, SOURCE, TRANSFORM};
use crate::request::{
    AlignedSliceRequest, NgMetaRequest, NgShardRequest, OutputFormat, check_block_size,
};
use crate::storage::location::Location;
use crate::window::Window;
use crate::{Error, ErrorKind, tasks};

/// The component's implementation of the endpoint interfaces.
pub struct Component;

impl From<Error> for TaskError {
    fn from(e: Error) -> Self {
        let message = e.message().to_owned();
        match e.kind() {
            ErrorKind::BadRequest => Self::BadRequest(message),
            ErrorKind::NotFound => Self::NotFound(message),
            ErrorKind::UnreadableInput => Self::UnreadableInput(message),
            ErrorKind::TooLarge => Self::TooLarge(message),
            ErrorKind::Storage => Self::Storage(message),
            ErrorKind::Internal => Self::Internal(message),
        }
    }
}

impl From<tasks::Written> for Written {
    fn from(w: tasks::Written) -> Self {
        Self {
            objects: w.objects,
            bytes: w.bytes,
            retries: w.retries,
            notes: w.notes,
            stages: w.stages.into(),
        }
    }
}

impl From<tasks::StageTimings> for StageTimings {
    fn from(t: tasks::StageTimings) -> Self {
        let us = tasks::StageMicros::from(t);
        Self {
            fetch_us: us.fetch_us,
            decode_us: us.decode_us,
            resample_us: us.resample_us,
            downsample_us: us.downsample_us,
            encode_us: us.encode_us,
            write_us: us.write_us,
        }
    }
}

impl From<WitFormat> for OutputFormat {
    fn from(format: WitFormat) -> Self {
        match format {
            WitFormat::Precomputed => Self::Precomputed,
            WitFormat::OmeZarr => Self::OmeZarr,
            WitFormat::Both => Self::Both,
        }
    }
}

impl From<ng_shard::BlockHalf> for BlockHalf {
    fn from(half: ng_shard::BlockHalf) -> Self {
        match half {
            ng_shard::BlockHalf::LowZ => Self::Lower,
            ng_shard::BlockHalf::HighZ => Self::Upper,
        }
    }
}

/// The core request of a typed ngshard request, validated.
fn ng_shard_request(req: ng_shard::Request) -> Result<NgShardRequest, Error> {
    check_block_size(req.shard_size)?;
    let request = NgShardRequest {
        dest: Location::parse(DEST, &req.dest)?,
        source: Location::parse(SOURCE, &req.source)?,
        start: [req.start.0, req.start.1, req.start.2],
        minz: req.minz,
        maxz: req.maxz,
        bbox: [req.bbox.0, req.bbox.1],
        write_raw: req.write_raw,
        jpeg_quality: req.jpeg_quality,
        missing: req.missing,
        format: req.format.into(),
    };
    request.validate()?;
    Ok(request)
}

fn transform(values: &[f64]) -> Result<[f64; 6], Error> {
    values.try_into().map_err(|_| {
        Error::bad_field(
            TRANSFORM,
            format!("expected 6 numbers, got {}", values.len()),
        )
    })
}

impl aligned_slice::Guest for Component {
    fn run(req: aligned_slice::Request) -> Result<Written, TaskError> {
        let request = AlignedSliceRequest {
            transform: transform(&req.transform)?,
            img: req.img,
            bbox: [req.bbox.0, req.bbox.1],
            dest: Location::parse(DEST, &req.dest)?,
            dest_tmp: Location::parse(DEST_TMP, &req.dest_tmp)?,
            slice: req.slice,
            shard_size: req.shard_size,
            window: req
                .window
                .map(|(low, high)| Window::new(low.into(), high.into()))
                .transpose()?,
        };
        request.validate()?;
        let written =
            wstd::runtime::block_on(tasks::aligned_slice::run(&super::storage(), &request))?;
        Ok(written.into())
    }
}

impl ng_meta::Guest for Component {
    fn run(req: ng_meta::Request) -> Result<Written, TaskError> {
        check_block_size(req.shard_size)?;
        let request = NgMetaRequest {
            dest: Location::parse(DEST, &req.dest)?,
            minz: req.minz,
            maxz: req.maxz,
            bbox: [req.bbox.0, req.bbox.1],
            write_raw: req.write_raw,
            resolution_nm: req.resolution.into(),
            format: req.format.into(),
        };
        request.validate()?;
        let written = wstd::runtime::block_on(tasks::ng_meta::run(&super::storage(), &request))?;
        Ok(written.into())
    }
}

impl ng_shard::Guest for Component {
    fn run(req: ng_shard::Request) -> Result<Written, TaskError> {
        let request = ng_shard_request(req)?;
        let written = wstd::runtime::block_on(tasks::ng_shard::run(&super::storage(), &request))?;
        Ok(written.into())
    }

    fn run_half(
        req: ng_shard::Request,
        half: ng_shard::BlockHalf,
    ) -> Result<ng_shard::HalfWritten, TaskError> {
        let request = ng_shard_request(req)?;
        let storage = super::storage();
        let task = tasks::ng_shard::run_half(&storage, &request, half.into());
        let half = wstd::runtime::block_on(task)?;
        Ok(ng_shard::HalfWritten {
            written: half.written.into(),
            handoff: half.handoff,
        })
    }

    fn merge_halves(
        req: ng_shard::Request,
        lower: Vec<u8>,
        upper: Vec<u8>,
    ) -> Result<Written, TaskError> {
        let request = ng_shard_request(req)?;
        let storage = super::storage();
        let task = tasks::ng_shard::merge_halves(&storage, &request, &lower, &upper);
        let written = wstd::runtime::block_on(task)?;
        Ok(written.into())
    }
}
