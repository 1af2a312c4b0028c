//! Wasmtime setup shared by every command: the engine, the component loaded and pre-instantiated
//! once, and a fresh `Store` per request or task with its memory and time limits.
//!
//! Like `wasmtime serve`, nothing survives from one request to the next: each gets a new store
//! and instance, so a trap or a leak in one never reaches another.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use emwrite::guest_env::{
    DATA_DIR_ENV, DEFAULT_DATA_DIR, DEFAULT_STORE_ENV, EMULATOR_HOST_ENV, RETRY_BASE_DELAY_ENV,
};
use emwrite::storage::router::DefaultStore;
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, ProfilingStrategy, ResourceLimiter, Store, StoreLimits,
    StoreLimitsBuilder, Strategy, Trap, UpdateDeadline,
};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::embed::credentials::Credentials;
use crate::embed::guest_log::GuestLog;
use crate::embed::outgoing::{AllowedHost, Outgoing, Policy};
use crate::embed::pooled_client::InstanceSlot;
use crate::error::HostError;

/// The component built by `build.rs`; empty when built with `EMWRITE_SKIP_COMPONENT_BUILD=1`.
static EMBEDDED_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/emwrite.wasm"));

/// File name of the embedded component precompiled by `emwrite precompile`, looked for next to
/// the executable. It carries the component's fingerprint (`build.rs`), so a file left from
/// another build is never loaded; wasmtime itself rejects one from another wasmtime or engine
/// configuration (or a CPU lacking features it was compiled for).
const PRECOMPILED_NAME: &str = concat!("emwrite-", env!("EMWRITE_COMPONENT_FINGERPRINT"), ".cwasm");

/// How often the epoch advances: the resolution of `--time-limit`, and how long a guest computes
/// before it yields its executor thread to other requests (wasm32 has no threads, so a busy
/// instance would otherwise hold a tokio worker until it finishes).
const EPOCH_TICK: Duration = Duration::from_millis(50);

/// Guest environment variables passed through from the host when set: the emulator, which the
/// guest sends every GCS request to (`docs/design.md` §6), and the first retry delay (tests make
/// it short).
const PASSED_ENV: [&str; 2] = [EMULATOR_HOST_ENV, RETRY_BASE_DELAY_ENV];

/// What every command needs to run the component.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where bare bucket names live (`docs/design.md` §3); `gs://` locations are always GCS.
    pub store: DefaultStore,
    /// With [`DefaultStore::Local`], the host directory preopened at [`DEFAULT_DATA_DIR`];
    /// created if missing. Unused with [`DefaultStore::Gcs`].
    pub data_dir: PathBuf,
    /// Hosts the component may reach besides GCS and the emulator.
    pub allow_hosts: Vec<AllowedHost>,
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
    store: DefaultStore,
    /// `Some` exactly with [`DefaultStore::Local`].
    data_dir: Option<Arc<Path>>,
    /// Values of [`PASSED_ENV`] read once at load, so that every instance sees the same.
    passed_env: Vec<(&'static str, String)>,
    outgoing: Outgoing,
    memory_limit_bytes: u64,
    time_limit: Option<Duration>,
}

/// Per-store state: WASI contexts, the resource table, limits and the guest's log.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    log: GuestLog,
    started: Instant,
    outgoing: Outgoing,
    /// This instance's share of the outgoing connections, for as long as the store lives.
    _connections: InstanceSlot,
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
            // The allow-list and the GCS token (`outgoing.rs`).
            hooks: &mut self.outgoing,
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
    /// Configures the engine, loads the component (precompiled by `emwrite precompile`, from
    /// wasmtime's cache, or compiled now), links
    /// WASI 0.2 and wasi:http, and pre-instantiates it.
    pub fn load(settings: &Settings) -> Result<Self, HostError> {
        // The cheap checks of the configuration come before the seconds of compiling.
        let passed_env: Vec<(&'static str, String)> = PASSED_ENV
            .into_iter()
            .filter_map(|name| std::env::var(name).ok().map(|value| (name, value)))
            .collect();
        let emulator = passed_env
            .iter()
            .find(|(name, _)| *name == EMULATOR_HOST_ENV)
            .map(|(_, value)| value.as_str());
        let policy = Policy::new(emulator, settings.allow_hosts.clone())?;
        // Nothing is looked up until a request for GCS itself needs a token.
        let outgoing = Outgoing::new(policy, Credentials::new());
        let data_dir = match settings.store {
            DefaultStore::Local => Some(prepare_data_dir(&settings.data_dir)?.into()),
            DefaultStore::Gcs => None,
        };

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
            store: settings.store,
            data_dir,
            passed_env,
            outgoing,
            memory_limit_bytes: settings.memory_limit_bytes,
            time_limit: settings.time_limit,
        })
    }

    /// The pre-instantiated component, for typed wrappers (`ProxyPre`, `EndpointsPre`).
    pub fn instance_pre(&self) -> &InstancePre<HostState> {
        &self.pre
    }

    /// The host data directory, absolute; `None` with `--store gcs`, which preopens nothing.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// The hosts the component may reach, for a startup line.
    pub fn allowed_hosts(&self) -> String {
        self.outgoing.describe()
    }

    /// A fresh store for one request or task; `tag` names it in the guest's log lines.
    pub fn new_store(&self, tag: &str) -> Result<Store<HostState>, HostError> {
        let log = GuestLog::new(tag);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(log.clone())
            .stderr(log.clone())
            .env(DEFAULT_STORE_ENV, self.store.name());
        for (name, value) in &self.passed_env {
            wasi.env(name, value);
        }
        // With `--store gcs` the guest gets no filesystem at all: nothing it does can land on
        // the host's disk (on Cloud Run, that disk is the instance's memory).
        if let Some(data_dir) = &self.data_dir {
            wasi.env(DATA_DIR_ENV, DEFAULT_DATA_DIR);
            // File calls run on the instance's own thread. Otherwise each one goes through
            // tokio's blocking pool, a thread hand-off and a futex wake per read or write (about
            // 2 s of a 1024³ block's 13 CPU-s). The instance holds its thread while it computes
            // anyway, and page-cache reads and writes take microseconds.
            wasi.allow_blocking_current_thread(true);
            wasi.preopened_dir(&**data_dir, DEFAULT_DATA_DIR, FsPerms::ReadWrite)
                .map_err(|e| {
                    HostError::Config(format!(
                        "data dir {}: cannot open: {e:#}",
                        data_dir.display()
                    ))
                })?;
        }

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
            outgoing: self.outgoing.clone(),
            _connections: self.outgoing.instance(),
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

/// Set (to anything) to have wasmtime write a perf map of the component's compiled code.
const PERF_MAP_VAR: &str = "EMWRITE_PERF_MAP";

fn new_engine() -> Result<Engine, HostError> {
    let mut config = Config::new();
    config.strategy(Strategy::Cranelift);
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // For profiling the component with `perf` (docs/performance.md): wasmtime writes
    // /tmp/perf-<pid>.map, which names the compiled wasm functions in `perf report`.
    if std::env::var_os(PERF_MAP_VAR).is_some() {
        config.profiler(ProfilingStrategy::PerfMap);
    }
    // Compiling the component takes seconds; wasmtime's cache (keyed by the wasm bytes and the
    // engine settings) makes every later start of the same build take milliseconds.
    match Cache::new(CacheConfig::new()) {
        Ok(cache) => {
            config.cache(Some(cache));
        }
        Err(error) => tracing::warn!("compilation cache disabled: {error:#}"),
    }
    Engine::new(&config).map_err(|e| HostError::engine("configuring wasmtime", &e))
}

/// Compiles the embedded component with the engine every command uses and writes it next to
/// the executable, where `load` finds it: a start then skips compiling. Returns the file written.
pub fn precompile() -> Result<PathBuf, HostError> {
    let dir = executable_dir()
        .ok_or_else(|| HostError::Config("cannot tell the executable's directory".to_owned()))?;
    if EMBEDDED_COMPONENT.is_empty() {
        return Err(HostError::Config(
            "this emwrite embeds no component (EMWRITE_SKIP_COMPONENT_BUILD=1): nothing to \
             precompile"
                .to_owned(),
        ));
    }
    let engine = new_engine()?;
    let compiled = engine
        .precompile_component(EMBEDDED_COMPONENT)
        .map_err(|e| HostError::engine("compiling the embedded component", &e))?;
    let path = dir.join(PRECOMPILED_NAME);
    std::fs::write(&path, compiled)
        .map_err(|e| HostError::Config(format!("{}: {e}", path.display())))?;
    Ok(path)
}

fn executable_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.parent().map(Path::to_path_buf)
}

/// The embedded component as `emwrite precompile` left it next to the executable, if it is
/// there and this engine accepts it.
fn load_precompiled(engine: &Engine) -> Option<Component> {
    let path = executable_dir()?.join(PRECOMPILED_NAME);
    if !path.is_file() {
        return None;
    }
    // SAFETY: wasmtime runs the file's machine code as is. It is trusted as the binary next to
    // it is: `emwrite precompile` wrote it from this binary's own component (the name says
    // which), and wasmtime checks its version, engine settings and CPU features.
    #[expect(unsafe_code, reason = "loading precompiled code is unsafe by nature")]
    let loaded = unsafe { Component::deserialize_file(engine, &path) };
    match loaded {
        Ok(component) => {
            // What an operator checks that the image's precompile step took: no compile here.
            tracing::info!("component: precompiled {}", path.display());
            Some(component)
        }
        Err(error) => {
            tracing::warn!(
                "{} not usable, compiling instead: {error:#}",
                path.display()
            );
            None
        }
    }
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
        None => match load_precompiled(engine) {
            Some(component) => Ok(component),
            None => Component::new(engine, EMBEDDED_COMPONENT)
                .map_err(|e| HostError::engine("loading the embedded component", &e)),
        },
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
        .unwrap_or_else(|e| tracing::warn!("no time limit or yielding: epoch ticker: {e}"));
}
