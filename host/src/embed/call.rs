//! One task through the component's typed exports, each call in a fresh instance; a block either
//! whole or as two halves in two instances at once followed by their merge (`docs/design.md` §4,
//! "Two halves on two cores").

use std::future::Future;
use std::pin::Pin;

use clap::ValueEnum;
use wasmtime::Store;

use crate::embed::bindings::{
    Endpoints, EndpointsPre, OutputFormat, TaskError, Written, aligned_slice, ng_meta, ng_shard,
};
use crate::embed::engine::{Emwrite, HostState};
use crate::error::HostError;
use crate::request::Request;

/// When a block runs as two halves in two instances (`--split`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Split {
    /// When at least two cores are free and fewer blocks than free cores wait to start.
    Auto,
    /// Every block, whatever the cores (for tests and measurements).
    Always,
    /// Never: one instance per block.
    Never,
}

impl Split {
    /// Whether a block splits when `free_cores` cores are free and `not_started` blocks
    /// (this one included) wait for them. With auto: only when whole blocks would leave cores
    /// idle, since a split costs a merge and holds the hand-offs; and only for a block without
    /// raw chunks (`raw_shards`: `writeRaw`, or OME-Zarr output, whose shards both halves hold
    /// are made of raw chunks): two halves each hold a layer of raw chunks and their half of the
    /// coarse raw shards, which they hand to the merge, about 0.7 GB for a dense block against
    /// 0.27 GB whole with `writeRaw`, 0.74 GB against 0.24 GB with OME-Zarr (docs/performance.md,
    /// Memory).
    pub fn splits(self, free_cores: usize, not_started: usize, raw_shards: bool) -> bool {
        match self {
            Split::Auto => !raw_shards && free_cores >= 2 && not_started < free_cores,
            Split::Always => true,
            Split::Never => false,
        }
    }
}

/// One call into the component.
#[derive(Clone)]
pub enum Task {
    /// `aligned-slice.run`.
    Slice(aligned_slice::Request),
    /// `ng-meta.run`.
    Meta(ng_meta::Request),
    /// `ng-shard.run`, or with `split` the two halves and their merge.
    Block {
        /// The block.
        request: ng_shard::Request,
        /// Run as two halves in two instances, then the merge.
        split: bool,
    },
}

impl Task {
    /// Names the task in progress output, logs and errors.
    pub fn label(&self) -> String {
        match self {
            Task::Slice(request) => format!("slice z={} ({})", request.slice, request.img),
            Task::Meta(_) => "ngmeta".to_owned(),
            Task::Block { request, .. } => {
                let (x, y, z) = request.start;
                format!("block ({x}, {y}, {z})")
            }
        }
    }

    /// The call of `request`, a block whole ([`Task::with_split`] splits it): the core's request
    /// as the component's WIT record (`wit.rs`).
    pub fn new(request: &Request) -> Task {
        match request {
            Request::AlignedSlice(request) => Task::Slice(request.into()),
            Request::NgMeta(request) => Task::Meta(request.into()),
            Request::NgShard(request) => Task::Block {
                request: request.into(),
                split: false,
            },
        }
    }

    /// Cores the task keeps busy while it runs: two for a split block's halves, else one.
    pub fn cores(&self) -> usize {
        match self {
            Task::Block { split: true, .. } => 2,
            _ => 1,
        }
    }

    /// The task, a block run as two halves if `split` says so for `free_cores` free cores and
    /// `not_started` blocks waiting (this one included).
    pub fn with_split(self, split: Split, free_cores: usize, not_started: usize) -> Task {
        match self {
            Task::Block { request, .. } => Task::Block {
                split: split.splits(
                    free_cores,
                    not_started,
                    request.write_raw || request.format != OutputFormat::Precomputed,
                ),
                request,
            },
            task => task,
        }
    }
}

/// The component's typed endpoint exports, pre-instantiated.
pub fn endpoints_pre(emwrite: &Emwrite) -> Result<EndpointsPre<HostState>, HostError> {
    EndpointsPre::new(emwrite.instance_pre().clone()).map_err(|e| {
        HostError::engine(
            "the component does not export the emwrite:core endpoints",
            &e,
        )
    })
}

/// A call's future, borrowing the store it runs in.
type Call<'s, T> =
    Pin<Box<dyn Future<Output = wasmtime::Result<Result<T, TaskError>>> + Send + 's>>;

/// Runs `task`, each call in a fresh instance.
pub async fn run(
    emwrite: Emwrite,
    pre: EndpointsPre<HostState>,
    task: Task,
) -> Result<Written, HostError> {
    let label = task.label();
    match task {
        Task::Slice(request) => {
            in_fresh_instance(&emwrite, &pre, &label, move |store, endpoints| {
                Box::pin(async move {
                    endpoints
                        .emwrite_core_aligned_slice()
                        .call_run(store, &request)
                        .await
                })
            })
            .await
        }
        Task::Meta(request) => {
            in_fresh_instance(&emwrite, &pre, &label, move |store, endpoints| {
                Box::pin(async move {
                    endpoints
                        .emwrite_core_ng_meta()
                        .call_run(store, &request)
                        .await
                })
            })
            .await
        }
        Task::Block {
            request,
            split: false,
        } => {
            in_fresh_instance(&emwrite, &pre, &label, move |store, endpoints| {
                Box::pin(async move {
                    endpoints
                        .emwrite_core_ng_shard()
                        .call_run(store, &request)
                        .await
                })
            })
            .await
        }
        Task::Block {
            request,
            split: true,
        } => run_split_block(emwrite, pre, request, label).await,
    }
}

/// Runs the block's halves at once, each in its own instance on its own tokio task (so on its
/// own worker thread, given two), then the merge in a third.
async fn run_split_block(
    emwrite: Emwrite,
    pre: EndpointsPre<HostState>,
    request: ng_shard::Request,
    label: String,
) -> Result<Written, HostError> {
    let half = |half: ng_shard::BlockHalf, name: &str| {
        let (emwrite, pre, request) = (emwrite.clone(), pre.clone(), request.clone());
        let label = format!("{label} {name}");
        tokio::spawn(async move {
            in_fresh_instance(&emwrite, &pre, &label, move |store, endpoints| {
                Box::pin(async move {
                    endpoints
                        .emwrite_core_ng_shard()
                        .call_run_half(store, &request, half)
                        .await
                })
            })
            .await
        })
    };
    let low = half(ng_shard::BlockHalf::LowZ, "low-z");
    let high = half(ng_shard::BlockHalf::HighZ, "high-z");
    let joined = |result: Result<_, tokio::task::JoinError>| {
        result.unwrap_or_else(|join| {
            Err(HostError::Engine {
                context: label.clone(),
                message: format!("host task failed: {join}"),
            })
        })
    };
    // Both halves finish before either failure is reported: neither is left running unobserved.
    let (low, high) = (joined(low.await), joined(high.await));
    let (low, high) = (low?, high?);

    let merge_label = format!("{label} merge");
    let merged = in_fresh_instance(&emwrite, &pre, &merge_label, move |store, endpoints| {
        Box::pin(async move {
            endpoints
                .emwrite_core_ng_shard()
                .call_merge_halves(store, &request, &low.handoff, &high.handoff)
                .await
        })
    })
    .await?;
    Ok(combine([low.written, high.written, merged]))
}

/// The report of a split block: every object of the three calls, in the order written, and the
/// sums of bytes, retries and stage times. With the halves on two cores, the stage times are
/// core time, not wall time.
fn combine(parts: [Written; 3]) -> Written {
    let mut total = Written {
        objects: Vec::new(),
        bytes: 0,
        retries: 0,
        notes: Vec::new(),
        stages: crate::embed::bindings::StageTimings {
            fetch_us: 0,
            decode_us: 0,
            resample_us: 0,
            downsample_us: 0,
            encode_us: 0,
            write_us: 0,
        },
    };
    for part in parts {
        total.objects.extend(part.objects);
        total.bytes += part.bytes;
        total.retries += part.retries;
        total.notes.extend(part.notes);
        let (sum, add) = (&mut total.stages, part.stages);
        sum.fetch_us += add.fetch_us;
        sum.decode_us += add.decode_us;
        sum.resample_us += add.resample_us;
        sum.downsample_us += add.downsample_us;
        sum.encode_us += add.encode_us;
        sum.write_us += add.write_us;
    }
    total
}

/// Instantiates the component in a fresh store and makes one call, bounded by `--time-limit`.
async fn in_fresh_instance<T>(
    emwrite: &Emwrite,
    pre: &EndpointsPre<HostState>,
    label: &str,
    call: impl for<'s> FnOnce(&'s mut Store<HostState>, Endpoints) -> Call<'s, T>,
) -> Result<T, HostError> {
    let mut store = emwrite.new_store(label)?;
    let called = emwrite
        .bounded(async {
            let endpoints = pre.instantiate_async(&mut store).await?;
            call(&mut store, endpoints).await
        })
        .await;
    match called {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(error)) => Err(HostError::Task {
            context: label.to_owned(),
            error: error.into(),
        }),
        Err(error) => Err(emwrite.failure(&store, label, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::Split;

    #[test]
    fn auto_splits_only_jpeg_blocks_that_would_leave_cores_idle() {
        assert!(Split::Auto.splits(2, 1, false));
        // Whole blocks already fill the cores.
        assert!(!Split::Auto.splits(2, 2, false));
        assert!(!Split::Auto.splits(1, 1, false));
        // Raw halves would hold twice the memory.
        assert!(!Split::Auto.splits(2, 1, true));
        assert!(Split::Always.splits(1, 5, true));
        assert!(!Split::Never.splits(2, 1, false));
    }
}
