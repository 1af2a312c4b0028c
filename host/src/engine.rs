//! Wasmtime setup shared by every command: the engine, the component loaded and pre-instantiated
//! once, and a fresh `Store` per request or task with its memory and time limits.
//!
//! Like `wasmtime serve`, nothing survives from one request to the next: each gets a new store
//! and instance, so a trap or a leak in one never reaches another.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder,
    Strategy, Trap, UpdateDeadline,
};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::error::HostError;
use crate::guest_log::{GuestLog, LineSink};

/// The component built by `build.rs`; empty when built with `EMWRITE_SKIP_COMPONENT_BUILD=1`.
static EMBEDDED_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/emwrite.wasm"));

/// Where the guest sees the data directory; the component finds it through `EMWRITE_DATA_DIR`.
pub const GUEST_DATA_DIR: &str = "/data";

/// How often the epoch advances: the resolution of `--time-limit`, and how long a guest computes
/// before it yields its executor thread to other requests (wasm32 has no threads, so a busy
/// instance would otherwise hold a tokio worker until it finishes).
const EPOCH_TICK: Duration = Duration::from_millis(50);

/// Guest environment variables passed through from the host when set.
/// `STORAGE_EMULATOR_HOST` points GCS locations at an emulator (`shared/design.md` §6).
const PASSED_ENV: [&str; 1] = ["STORAGE_EMULATOR_HOST"];

/// What every command needs to run the component.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Host directory preopened at [`GUEST_DATA_DIR`]; created if missing.
    pub data_dir: PathBuf,
    /// A component file to run instead of the embedded one.
    pub component: Option<PathBuf>,
    /// Cap on the linear memory of one instance.
    pub memory_limit_bytes: u64,
    /// Wall-clock cap of one request or task.
    pub time_limit: Option<Duration>,
}

/// The loaded component, ready to instantiate; cheap to clone.
#[derive(Clone)]
pub struct Emwrite {
    pre: InstancePre<HostState>,
    data_dir: Arc<Path>,
    memory_limit_bytes: u64,
    time_limit: Option<Duration>,
    log_sink: Option<LineSink>,
}

/// Per-store state: WASI contexts, the resource table, limits and the guest's log.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    log: GuestLog,
    started: Instant,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            // Outgoing requests go out as the guest made them; GCS credentials are a later hook.
            hooks: Default::default(),
        }
    }
}

/// `StoreLimits` plus a record of the growth it refused, so that the trap a refused allocation
/// leads to (a Rust guest aborts) can be reported as the memory limit rather than a bug.
struct MemoryLimiter {
    limits: StoreLimits,
    refused_bytes: Option<usize>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if !allowed {
            self.refused_bytes = Some(self.refused_bytes.unwrap_or(0).max(desired));
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

/// The error the epoch callback raises when a store outlives `--time-limit`.
#[derive(Debug, thiserror::Error)]
#[error("time limit exceeded")]
struct TimeLimitExceeded;

impl Emwrite {
    /// Configures the engine, compiles (or loads from wasmtime's cache) the component, links
    /// WASI 0.2 and wasi:http, and pre-instantiates it.
    pub fn load(settings: &Settings) -> Result<Self, HostError> {
        let engine = new_engine()?;
        let component = load_component(&engine, settings.component.as_deref())?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| HostError::engine("linking WASI", &e))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| HostError::engine("linking wasi:http", &e))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| HostError::engine("linking the component", &e))?;

        spawn_epoch_ticker(&engine);
        Ok(Emwrite {
            pre,
            data_dir: prepare_data_dir(&settings.data_dir)?.into(),
            memory_limit_bytes: settings.memory_limit_bytes,
            time_limit: settings.time_limit,
            log_sink: None,
        })
    }

    /// Sends the guests' log lines to `sink` rather than straight to stderr.
    pub fn with_log_sink(mut self, sink: LineSink) -> Self {
        self.log_sink = Some(sink);
        self
    }

    /// The pre-instantiated component, for typed wrappers (`ProxyPre`, `EndpointsPre`).
    pub fn instance_pre(&self) -> &InstancePre<HostState> {
        &self.pre
    }

    /// The host data directory, absolute.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A fresh store for one request or task; `tag` names it in the guest's log lines.
    pub fn new_store(&self, tag: &str) -> Result<Store<HostState>, HostError> {
        let log = GuestLog::new(tag, self.log_sink.clone());
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(log.clone())
            .stderr(log.clone())
            .env("EMWRITE_DATA_DIR", GUEST_DATA_DIR);
        for name in PASSED_ENV {
            if let Ok(value) = std::env::var(name) {
                wasi.env(name, value);
            }
        }
        wasi.preopened_dir(&*self.data_dir, GUEST_DATA_DIR, FsPerms::ReadWrite)
            .map_err(|e| {
                HostError::Config(format!(
                    "data dir {}: cannot open: {e:#}",
                    self.data_dir.display()
                ))
            })?;

        // A limit above the address space simply never triggers.
        let memory_limit = usize::try_from(self.memory_limit_bytes).unwrap_or(usize::MAX);
        let state = HostState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                limits: StoreLimitsBuilder::new().memory_size(memory_limit).build(),
                refused_bytes: None,
            },
            log,
            started: Instant::now(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limiter);

        let time_limit = self.time_limit;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |ctx| {
            if let Some(limit) = time_limit
                && ctx.data().started.elapsed() >= limit
            {
                return Err(wasmtime::Error::new(TimeLimitExceeded));
            }
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        Ok(store)
    }

    /// Awaits a call into a store's guest, bounded by `--time-limit`.
    ///
    /// The epoch callback stops a guest that computes too long; this stops one that waits too
    /// long on a host call (a storage request that never answers). Dropping the call mid-way is
    /// safe: its store is discarded with it.
    pub async fn bounded<T>(
        &self,
        call: impl Future<Output = wasmtime::Result<T>>,
    ) -> wasmtime::Result<T> {
        match self.time_limit {
            None => call.await,
            Some(limit) => tokio::time::timeout(limit, call)
                .await
                .unwrap_or_else(|_| Err(wasmtime::Error::new(TimeLimitExceeded))),
        }
    }

    /// Turns a wasmtime error from instantiating or calling into the store's guest into the
    /// failure it stands for.
    pub fn failure(
        &self,
        store: &Store<HostState>,
        context: &str,
        error: wasmtime::Error,
    ) -> HostError {
        let state = store.data();
        let context = context.to_owned();
        if let Some(requested) = state.limiter.refused_bytes {
            return HostError::MemoryLimit {
                context,
                limit_bytes: self.memory_limit_bytes,
                requested_bytes: requested as u64,
            };
        }
        if error.is::<TimeLimitExceeded>()
            && let Some(limit) = self.time_limit
        {
            return HostError::TimeLimit { context, limit };
        }
        match error.downcast_ref::<Trap>() {
            Some(trap) => HostError::Trap {
                context,
                // `Trap`'s display starts with "wasm trap: ", which "component trapped" says.
                trap: trap
                    .to_string()
                    .trim_start_matches("wasm trap: ")
                    .to_owned(),
                last_words: state.log.last_words(),
                // The debug form carries the wasm backtrace.
                backtrace: format!("{error:?}"),
            },
            None => HostError::engine(context, &error),
        }
    }
}

fn new_engine() -> Result<Engine, HostError> {
    let mut config = Config::new();
    config.strategy(Strategy::Cranelift);
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Compiling the component takes seconds; wasmtime's cache (keyed by the wasm bytes and the
    // engine settings) makes every later start of the same build take milliseconds.
    match Cache::new(CacheConfig::new()) {
        Ok(cache) => {
            config.cache(Some(cache));
        }
        Err(error) => eprintln!("warning: compilation cache disabled: {error:#}"),
    }
    Engine::new(&config).map_err(|e| HostError::engine("configuring wasmtime", &e))
}

fn load_component(engine: &Engine, file: Option<&Path>) -> Result<Component, HostError> {
    match file {
        Some(path) => Component::from_file(engine, path)
            .map_err(|e| HostError::engine(format!("loading {}", path.display()), &e)),
        None if EMBEDDED_COMPONENT.is_empty() => Err(HostError::Config(
            "this emwrite was built with EMWRITE_SKIP_COMPONENT_BUILD=1 and embeds no component: \
             pass --component FILE (e.g. target/component-build/wasm32-wasip2/release/emwrite.wasm)"
                .to_owned(),
        )),
        None => Component::new(engine, EMBEDDED_COMPONENT)
            .map_err(|e| HostError::engine("loading the embedded component", &e)),
    }
}

/// Creates the data directory if needed and returns it absolute (the pipeline prints it).
fn prepare_data_dir(dir: &Path) -> Result<PathBuf, HostError> {
    std::fs::create_dir_all(dir)
        .and_then(|()| dir.canonicalize())
        .map_err(|e| HostError::Config(format!("data dir {}: {e}", dir.display())))
}

/// Advances the engine's epoch every [`EPOCH_TICK`] for as long as the engine lives.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".to_owned())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
        // Without the ticker the epoch stays below every deadline: guests run to completion
        // without yielding and without a time limit, which is degraded but still correct.
        .unwrap_or_else(|e| eprintln!("warning: no time limit or yielding: epoch ticker: {e}"));
}
