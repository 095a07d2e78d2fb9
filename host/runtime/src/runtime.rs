//! The engine, the linker, the epoch ticker and plugin loading.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, Linker, types::ComponentItem};
use wasmtime::{Config, Engine, Store};

use crate::bindings;
use crate::cache::{ArtifactCache, Miss};
use crate::error::{Error, Phase, PluginId, Result};
use crate::limits::Limits;
use crate::plugin::{Metadata, Plugin, PluginInner, PluginPre, World};
use crate::resources::ReadAccess;
use crate::state::{HostEnv, MAX_TABLE_ELEMENTS, State};

/// What guest code ends with: its result, or the phase that failed and
/// wasmtime's error.
pub(crate) type GuestResult<R> = std::result::Result<R, (Phase, wasmtime::Error)>;

/// Held while an evaluation's caller waits for it; dropped (the caller gave
/// up, or the evaluation is done), it sets the evaluation's cancel flag,
/// which the epoch callback reads, and wakes a host call the guest is
/// parked in.
struct CancelOnDrop {
    flag: Arc<std::sync::atomic::AtomicBool>,
    _gave_up: tokio::sync::oneshot::Sender<std::convert::Infallible>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.flag.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How often the epoch advances. Deadlines are enforced with this
/// granularity: 5 ms keeps the ticker's cost negligible (200 wake-ups a
/// second) while a 1 s deadline overshoots by at most 0.5 %.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Where a plugin's compiled code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactSource {
    /// Compiled now (the cache was off, empty or rejected).
    Compiled,
    /// Loaded from the on-disk cache.
    Cache,
}

/// Configures a [`Runtime`].
#[derive(Debug, Default)]
#[must_use]
pub struct RuntimeBuilder {
    cache_dir: Option<PathBuf>,
    no_cache: bool,
    fuel: bool,
    pooling: Option<u32>,
    guest_threads: Option<usize>,
    yield_on_executor: bool,
}

/// The largest linear memory a pooled instance may have. Bindings whose
/// [`Limits::memory_bytes`] is larger fail to grow past it (reported as
/// memory cap reached). 256 MiB covers language runtimes with room to spare.
pub const POOLED_MAX_MEMORY: usize = 256 << 20;

/// Live instances the front ends pre-allocate with the pooling allocator
/// ([`Runtime::standard_builder`], the controller's `--instance-slots`
/// default): enough for the webhook's and the controller's concurrency on a
/// few cores, and only address space until used (about 16 GiB per slot, see
/// [`RuntimeBuilder::pooling`]).
pub const DEFAULT_INSTANCE_SLOTS: u32 = 64;

/// Memory a pooled slot keeps resident (and resets in place instead of
/// returning to the kernel) between instances: a Rust plugin's working set
/// fits, so a fresh instance touches no new pages. 2 MiB.
pub const POOLED_KEEP_RESIDENT: usize = 2 << 20;

/// Evaluations whose guest code runs at the same time by default
/// ([`RuntimeBuilder::guest_threads`]): as many as the front ends' pooled
/// instance slots, so that a few plugins that spin to their deadline take
/// threads the operating system time-slices, not every slot the short
/// evaluations queue for. An idle thread costs nothing; a busy one its
/// stack (the guest runs on wasmtime's own fiber stack).
pub const DEFAULT_GUEST_THREADS: usize = DEFAULT_INSTANCE_SLOTS as usize;

impl RuntimeBuilder {
    /// Keeps precompiled plugins in `dir` instead of the default
    /// (`$TESSERA_CACHE_DIR`, `$XDG_CACHE_HOME/tessera`, `~/.cache/tessera`).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Compiles every plugin on every load; nothing is read from or written
    /// to disk. Overrides [`RuntimeBuilder::cache_dir`].
    pub fn no_cache(mut self) -> Self {
        self.no_cache = true;
        self
    }

    /// Counts fuel (deterministic CPU accounting) for every call, so
    /// [`Limits::fuel`] budgets apply and outcomes report fuel used. Costs
    /// speed; precompiled artifacts made with and without fuel differ.
    pub fn fuel(mut self, enable: bool) -> Self {
        self.fuel = enable;
        self
    }

    /// Pre-allocates slots for `concurrency` live instances (wasmtime's
    /// pooling allocator) instead of mapping memory for every instance.
    /// Instantiation gets cheaper and scales better across threads; in
    /// exchange the runtime reserves virtual memory up front (about
    /// `4 × concurrency` linear-memory slots of 4 GiB + guard each, i.e.
    /// `concurrency × ~16 GiB` of address space, not of RAM), and an
    /// evaluation beyond `concurrency` live instances waits until one
    /// finishes (the wait is not bounded by the deadline, which starts with
    /// the instance). Instances kept by [`crate::Reuse`] hold slots while
    /// idle; an evaluation that finds the pool full makes the runtime drop
    /// them first. Linear memories are capped at 256 MiB
    /// (`POOLED_MAX_MEMORY`); each of the `8 × concurrency` table slots
    /// reserves 2 MiB of address space (262,144 elements, the same cap on all
    /// of an evaluation's tables together that applies without pooling).
    pub fn pooling(mut self, concurrency: u32) -> Self {
        self.pooling = Some(concurrency.max(1));
        self
    }

    /// How many evaluations may run guest code at the same time (default
    /// [`DEFAULT_GUEST_THREADS`], at least 1). Guest code never runs on the
    /// async executor's workers: each evaluation runs on one of tokio's
    /// blocking threads, and an evaluation past this many waits, in order,
    /// for one to finish (the wait is not part of its deadline).
    pub fn guest_threads(mut self, threads: usize) -> Self {
        self.guest_threads = Some(threads.max(1));
        self
    }

    /// Runs guest code on the async executor's own workers, yielding to the
    /// executor at every epoch tick, instead of on blocking threads. Only
    /// for the benchmark that compares both designs (BENCHMARKS.md, "Guest
    /// code and the async workers"): with CPU-bound plugins it delays every
    /// other task on a worker by up to one tick per busy evaluation, and I/O
    /// by more.
    #[doc(hidden)]
    pub fn yield_on_executor(mut self, enable: bool) -> Self {
        self.yield_on_executor = enable;
        self
    }

    /// Builds the runtime and starts its epoch ticker.
    pub fn build(self) -> Result<Runtime> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.consume_fuel(self.fuel);
        if let Some(n) = self.pooling {
            let mut pool = wasmtime::PoolingAllocationConfig::new();
            // A Rust component has a handful of core instances, memories and
            // tables (the WASI adapter adds some); the per-component maxima
            // match `Limits::max_instances`.
            pool.total_component_instances(n)
                .total_core_instances(n.saturating_mul(16))
                .total_memories(n.saturating_mul(4))
                .total_tables(n.saturating_mul(8))
                .total_stacks(n)
                .max_core_instances_per_component(64)
                .max_memories_per_component(16)
                .max_tables_per_component(32)
                // One table may hold as many elements as all of an
                // evaluation's tables together (the store's limiter caps the
                // total, `MAX_TABLE_ELEMENTS`), so a plugin loads under this
                // allocator exactly when it loads without it. The pool
                // reserves `total_tables × 2 MiB` of address space for it
                // (1 GiB for 64 slots), touched only as tables are used.
                .table_elements(MAX_TABLE_ELEMENTS)
                .max_memory_size(POOLED_MAX_MEMORY)
                .linear_memory_keep_resident(POOLED_KEEP_RESIDENT)
                .table_keep_resident(64 << 10)
                .pagemap_scan(wasmtime::Enabled::Auto);
            config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config)
            .map_err(|e| Error::host(None, Phase::Load, "cannot create the wasmtime engine", e))?;

        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| Error::host(None, Phase::Link, "cannot link WASI", e))?;
        bindings::Composition::add_to_linker::<State, wasmtime::component::HasSelf<State>>(
            &mut linker,
            |state| state,
        )
        .map_err(|e| Error::host(None, Phase::Link, "cannot link the host interfaces", e))?;
        bindings::policy::tessera::plugin::policy_types::add_to_linker::<
            State,
            wasmtime::component::HasSelf<State>,
        >(&mut linker, |state| state)
        .map_err(|e| Error::host(None, Phase::Link, "cannot link the policy types", e))?;

        let cache = if self.no_cache {
            None
        } else {
            self.cache_dir
                .or_else(ArtifactCache::default_dir)
                .map(|dir| ArtifactCache::new(dir, &engine))
        };

        spawn_epoch_ticker(&engine);
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                cache,
                fuel: self.fuel,
                pooling: self.pooling,
                slots: self
                    .pooling
                    .map(|n| Arc::new(tokio::sync::Semaphore::new(n as usize))),
                idle_lists: std::sync::Mutex::new(Vec::new()),
                guests: Arc::new(tokio::sync::Semaphore::new(
                    self.guest_threads.unwrap_or(DEFAULT_GUEST_THREADS),
                )),
                yield_on_executor: self.yield_on_executor,
            }),
        })
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is
/// dropped.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("tessera-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

/// One per process: the wasmtime engine, the linker with everything plugins
/// may import, and the artifact cache. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    pub(crate) engine: Engine,
    linker: Linker<State>,
    cache: Option<ArtifactCache>,
    pub(crate) fuel: bool,
    pooling: Option<u32>,
    /// With the pooling allocator: one permit per slot, so an evaluation
    /// past the pool's size waits for a slot instead of failing.
    slots: Option<Arc<tokio::sync::Semaphore>>,
    /// The kept-instance lists of bindings with reuse on, so that a full
    /// pool can be relieved of idle instances.
    idle_lists: std::sync::Mutex<Vec<std::sync::Weak<crate::binding::IdleList>>>,
    /// One permit per evaluation running guest code on a blocking thread
    /// ([`RuntimeBuilder::guest_threads`]).
    guests: Arc<tokio::sync::Semaphore>,
    /// Guest code runs on the executor's workers, yielding every tick
    /// ([`RuntimeBuilder::yield_on_executor`]).
    yield_on_executor: bool,
}

impl RuntimeInner {
    /// Lets the runtime drop this list's idle instances when the pool is
    /// full.
    pub(crate) fn register_idle(&self, list: &Arc<crate::binding::IdleList>) {
        let mut lists = self.idle_lists.lock().unwrap_or_else(|e| e.into_inner());
        lists.retain(|weak| weak.strong_count() > 0);
        lists.push(Arc::downgrade(list));
    }

    /// Drops every idle kept instance (freeing their slots and permits).
    fn evict_idle(&self) {
        let lists: Vec<_> = self
            .idle_lists
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .collect();
        for list in lists {
            list.evict();
        }
    }
}

/// A store for one evaluation and, with the pooling allocator, the slot
/// permit it holds. Fields drop in order: the store (which hands its slot
/// back to wasmtime) before the permit (which lets the next evaluation in).
pub(crate) struct Lease {
    pub(crate) store: Store<State>,
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("cache", &self.inner.cache.as_ref().map(ArtifactCache::dir))
            .field("fuel", &self.inner.fuel)
            .field("pooling", &self.inner.pooling)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A builder with the defaults: cache in the default directory, no fuel,
    /// an instance allocated per evaluation (no pooling). For embedding and
    /// tests; the front ends start from [`Runtime::standard_builder`].
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// The configuration every front end uses — the CLI, `tessera bench` and
    /// the controller with its webhook — so that what a plugin author runs
    /// and measures offline is what the cluster spends: the default cache and
    /// the pooling allocator with [`DEFAULT_INSTANCE_SLOTS`] slots. Callers
    /// change only what their users ask for (a cache directory, fuel, a slot
    /// count).
    pub fn standard_builder() -> RuntimeBuilder {
        RuntimeBuilder::default().pooling(DEFAULT_INSTANCE_SLOTS)
    }

    /// Whether fuel is counted.
    pub fn fuel_enabled(&self) -> bool {
        self.inner.fuel
    }

    /// The cache directory, when caching is on.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.inner.cache.as_ref().map(ArtifactCache::dir)
    }

    /// Whether the cache holds a precompiled artifact for these plugin bytes
    /// and this engine; `None` when caching is off.
    pub fn is_cached(&self, bytes: &[u8]) -> Option<bool> {
        let cache = self.inner.cache.as_ref()?;
        let digest = crate::provenance::sha256_digest(bytes);
        Some(
            cache
                .entry_path(digest.trim_start_matches("sha256:"))
                .exists(),
        )
    }

    /// Loads a plugin from a `.wasm` file.
    ///
    /// With the cache on, a file whose digest the cache remembers for its
    /// current state (device, inode, size, modification and change times)
    /// and whose artifact is cached is not read at all; README ("The
    /// artifact cache") and the cache module say when that holds.
    pub async fn load_file(&self, path: impl AsRef<Path>) -> Result<Plugin> {
        use crate::cache::FileStamp;
        let path = path.as_ref();
        let io_error = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let stat = std::fs::metadata(path).map(|m| FileStamp::of(&m));
        if let (Some(cache), Ok(stamp)) = (&self.inner.cache, &stat)
            && let Some(hex) = cache.remembered_digest(stamp)
            && let Ok(component) = cache.load(&self.inner.engine, &hex)
        {
            let size = usize::try_from(stamp.size()).unwrap_or(usize::MAX);
            let id = provisional_id(&hex, path);
            return self
                .finish_load(component, ArtifactSource::Cache, id, size, path)
                .await;
        }
        // Read through one open file, stamped before and after the read, so
        // that a digest remembered belongs to the bytes read even if the
        // path is switched to another file meanwhile.
        let read_at = std::time::SystemTime::now();
        let mut file = std::fs::File::open(path).map_err(io_error)?;
        let before = file.metadata().map(|m| FileStamp::of(&m));
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(io_error)?;
        let after = file.metadata().map(|m| FileStamp::of(&m));
        drop(file);
        let plugin = self.load(&bytes, path).await?;
        if let (Some(cache), Ok(before), Ok(after)) = (&self.inner.cache, before, after) {
            let hex = plugin.id().digest.trim_start_matches("sha256:");
            cache.remember_digest(&before, &after, hex, read_at);
        }
        Ok(plugin)
    }

    /// Loads a plugin from its bytes; `source` names it in errors.
    ///
    /// Compiles the component (or loads it from the cache), checks that it
    /// implements the `composition` or `policy` world and imports nothing
    /// the host does not provide, pre-links it, and calls `metadata` once.
    pub async fn load(&self, bytes: &[u8], source: &Path) -> Result<Plugin> {
        let digest = crate::provenance::sha256_digest(bytes);
        let hex = digest.trim_start_matches("sha256:");
        let incompatible = |message: String| Error::Incompatible {
            path: source.to_path_buf(),
            message: tessera_types::text::one_line(&message),
        };

        if !bytes.starts_with(b"\0asm") {
            return Err(incompatible(
                "it is not a WebAssembly binary (no \\0asm header)".into(),
            ));
        }
        if is_core_module(bytes) {
            return Err(incompatible(
                "it is a core WebAssembly module, not a component (build it for wasm32-wasip2)"
                    .into(),
            ));
        }
        let provisional = provisional_id(hex, source);
        let (component, artifact) = match self.cached(hex) {
            Some(component) => (component, ArtifactSource::Cache),
            None => {
                // Compiling takes tens to hundreds of milliseconds of CPU: on
                // a blocking thread, so that it never holds an async worker
                // (the webhook's accept loop, health checks and watches run
                // there).
                let runtime = self.clone();
                let bytes = bytes.to_vec();
                let hex = hex.to_string();
                let id = provisional.clone();
                let source_path = source.to_path_buf();
                tokio::task::spawn_blocking(move || {
                    runtime.compile(&bytes, &hex, &id, &source_path)
                })
                .await
                .map_err(|e| {
                    Error::host(
                        Some(&provisional),
                        Phase::Load,
                        "compiling the plugin failed",
                        e,
                    )
                })??
            }
        };
        self.finish_load(component, artifact, provisional, bytes.len(), source)
            .await
    }

    /// The cached artifact of the plugin with this digest, if the cache has a
    /// good one. Loading maps a file: cheap enough for an async worker.
    fn cached(&self, hex: &str) -> Option<Component> {
        let cache = self.inner.cache.as_ref()?;
        match cache.load(&self.inner.engine, hex) {
            Ok(component) => Some(component),
            Err(Miss::Absent) => None,
            Err(Miss::Rejected(why)) => {
                tracing::warn!("ignoring cache entry, recompiling: {why}");
                None
            }
        }
    }

    /// Checks the world of a compiled component, pre-links it and calls
    /// `metadata`: everything a load does after compiling. `provisional`
    /// names the plugin until its metadata does.
    async fn finish_load(
        &self,
        component: Component,
        artifact: ArtifactSource,
        provisional: PluginId,
        size: usize,
        source: &Path,
    ) -> Result<Plugin> {
        let incompatible = |message: String| Error::Incompatible {
            path: source.to_path_buf(),
            message: tessera_types::text::one_line(&message),
        };
        let world = self.world_of(&component).map_err(incompatible)?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| incompatible(format!("{e:#}")))?;
        let pre = match world {
            World::Composition => bindings::CompositionPre::new(pre).map(PluginPre::Composition),
            World::Policy => bindings::policy::PolicyPre::new(pre).map(PluginPre::Policy),
        }
        .map_err(|e| incompatible(format!("its exports do not match the {world} world: {e:#}")))?;

        let engine = &self.inner.engine;
        let component_type = component.component_type();
        let mut imports: Vec<String> = component_type
            .imports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        imports.sort();
        let mut exports: Vec<String> = component_type
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        exports.sort();
        let mut plugin = PluginInner {
            id: provisional,
            path: source.to_path_buf(),
            world,
            metadata: Metadata::default(),
            settings_schema: None,
            pre,
            size,
            imports,
            exports,
            artifact,
            runtime: self.inner.clone(),
        };
        let metadata = plugin.call_metadata().await?;
        plugin.id.name = metadata.name.clone();
        plugin.settings_schema = metadata
            .settings_schema
            .as_ref()
            .map(|schema| crate::plugin::compile_schema(&plugin.id, schema))
            .transpose()?;
        plugin.metadata = metadata;
        Ok(Plugin {
            inner: Arc::new(plugin),
        })
    }

    /// Compiles the component and writes its artifact to the cache. CPU
    /// bound and blocking: `load` runs it on a blocking thread.
    fn compile(
        &self,
        bytes: &[u8],
        hex: &str,
        id: &PluginId,
        source: &Path,
    ) -> Result<(Component, ArtifactSource)> {
        let engine = &self.inner.engine;
        let component = Component::new(engine, bytes).map_err(|e| Error::Incompatible {
            path: source.to_path_buf(),
            message: tessera_types::text::one_line(&format!("{e:#}")),
        })?;
        if let Some(cache) = &self.inner.cache {
            let stored = component
                .serialize()
                .map_err(|e| Error::host(Some(id), Phase::Load, "cannot serialize", e))
                .and_then(|artifact| {
                    cache.store(hex, &artifact).map_err(|e| {
                        Error::host(
                            Some(id),
                            Phase::Load,
                            format!("cannot write cache {}", cache.dir().display()),
                            e,
                        )
                    })
                });
            if let Err(e) = stored {
                // The plugin is compiled; a cache that cannot be written only
                // costs the next load a compile.
                tracing::warn!("{e}");
            }
        }
        Ok((component, ArtifactSource::Compiled))
    }

    fn world_of(&self, component: &Component) -> std::result::Result<World, String> {
        let engine = &self.inner.engine;
        let exports: Vec<(String, bool)> = component
            .component_type()
            .exports(engine)
            .map(|(name, item)| {
                (
                    name.to_string(),
                    matches!(item.ty, ComponentItem::ComponentFunc(_)),
                )
            })
            .collect();
        let has = |name: &str| exports.iter().any(|(n, is_func)| n == name && *is_func);
        let world = match (has("expand"), has("validate")) {
            (true, false) => World::Composition,
            (false, true) => World::Policy,
            (true, true) => {
                return Err(
                    "it exports both `expand` and `validate`; a plugin implements one world".into(),
                );
            }
            (false, false) => {
                let names: Vec<&str> = exports.iter().map(|(n, _)| n.as_str()).collect();
                return Err(format!(
                    "it exports neither `expand` (composition world) nor `validate` (policy world); its exports: [{}]",
                    names.join(", ")
                ));
            }
        };
        if !has("metadata") {
            return Err(format!(
                "it is missing the export `metadata` of the {world} world"
            ));
        }
        Ok(world)
    }

    /// A new store, after waiting for a pooling slot when the pool is full.
    pub(crate) async fn lease(
        inner: &RuntimeInner,
        limits: &Limits,
        env: HostEnv,
        seed: u64,
    ) -> Lease {
        let slot = match &inner.slots {
            Some(slots) => loop {
                if let Ok(permit) = slots.clone().try_acquire_owned() {
                    break Some(permit);
                }
                // Full: idle kept instances give their slots up first, then
                // wait. Idle instances can come back while this waits (an
                // evaluation that reused one keeps it again), so evict again
                // every tick instead of waiting on them forever. The
                // semaphore is never closed, so acquiring cannot fail.
                inner.evict_idle();
                if let Ok(permit) =
                    tokio::time::timeout(EPOCH_TICK, slots.clone().acquire_owned()).await
                {
                    break permit.ok();
                }
            },
            None => None,
        };
        Lease {
            store: Runtime::new_store(inner, limits, env, seed),
            _slot: slot,
        }
    }

    fn new_store(inner: &RuntimeInner, limits: &Limits, env: HostEnv, seed: u64) -> Store<State> {
        let mut store = Store::new(
            &inner.engine,
            State::new(limits, env, seed, inner.yield_on_executor),
        );
        store.limiter(|state| &mut state.limiter);
        // Every tick while guest code runs: trap once the evaluation's
        // deadline passed or its caller gave up on it, else go on (or, on
        // the executor, yield first).
        store.epoch_deadline_callback(|store| Ok(store.data().clock.on_tick()));
        Runtime::arm_store(inner, &mut store, limits);
        store
    }

    /// Sets the per-evaluation budgets of a store: hostcall fuel, the epoch
    /// deadline and fuel. Called for every new store and again before each
    /// evaluation of a reused one.
    pub(crate) fn arm_store(inner: &RuntimeInner, store: &mut Store<State>, limits: &Limits) {
        // wasmtime counts every byte and list element it copies out of the
        // guest (results and host-call arguments) against "hostcall fuel".
        // Bounding it by the output cap means an answer whose list entries
        // all point at one large string cannot make the host copy more than
        // this, whatever the plugin's memory holds.
        store.set_hostcall_fuel(store.data().hostcall_budget);
        Runtime::start_clock(inner, store, limits);
        if inner.fuel {
            // Without a budget, fuel is still counted (for reporting), with
            // a tank that cannot run dry in practice.
            let _ = store.set_fuel(limits.fuel.unwrap_or(u64::MAX));
        }
    }

    /// Starts the evaluation's deadline now: the epoch callback checks it at
    /// every tick (the callback set in `new_store`).
    pub(crate) fn start_clock(inner: &RuntimeInner, store: &mut Store<State>, limits: &Limits) {
        store.data_mut().clock =
            crate::state::EvaluationClock::start(limits, inner.yield_on_executor);
        store.set_epoch_deadline(1);
    }

    /// Runs `call` (instantiating and calling guest code) within `limits`
    /// where it cannot hold an async worker: on one of tokio's blocking
    /// threads, after waiting for a guest-thread permit
    /// ([`RuntimeBuilder::guest_threads`]). The deadline starts when the
    /// thread does. Dropping the returned future (a webhook's budget ran
    /// out) stops the guest at the next epoch tick, or a host call it is
    /// parked in at once, instead of letting it run on to its own deadline.
    ///
    /// Gives the lease back with the outcome, for the report and for reuse;
    /// `Err` only when the thread itself failed (a panic in the host).
    pub(crate) async fn run_guest<R>(
        inner: &RuntimeInner,
        mut lease: Lease,
        limits: &Limits,
        phase: Phase,
        call: impl AsyncFnOnce(&mut Store<State>) -> GuestResult<R> + Send + 'static,
    ) -> std::result::Result<(Lease, GuestResult<R>), tokio::task::JoinError>
    where
        R: Send + 'static,
    {
        if inner.yield_on_executor {
            Runtime::start_clock(inner, &mut lease.store, limits);
            let outcome = crate::binding::within(limits, phase, call(&mut lease.store)).await;
            return Ok((lease, outcome));
        }
        // The semaphore is never closed; a permit is always granted.
        let permit = inner.guests.clone().acquire_owned().await.ok();
        let limits = limits.clone();
        let handle = tokio::runtime::Handle::current();
        let (gave_up, given_up) = tokio::sync::oneshot::channel::<std::convert::Infallible>();
        let clock = crate::state::EvaluationClock::start(&limits, false);
        let cancel = CancelOnDrop {
            flag: clock.cancelled.clone(),
            _gave_up: gave_up,
        };
        let thread = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let store = &mut lease.store;
            // The deadline starts with the thread, not with the wait for it.
            store.data_mut().clock = crate::state::EvaluationClock {
                deadline: crate::state::deadline_from_now(&limits),
                ..clock
            };
            store.set_epoch_deadline(1);
            let outcome = handle.block_on(async {
                tokio::select! {
                    outcome = crate::binding::within(&limits, phase, call(store)) => outcome,
                    // Only an error can come: the sender never sends.
                    _ = given_up => Err((phase, wasmtime::Error::new(wasmtime::Trap::Interrupt))),
                }
            });
            (lease, outcome)
        });
        let joined = thread.await;
        drop(cancel);
        joined
    }

    pub(crate) fn metadata_env(plugin: &str, limits: &Limits) -> HostEnv {
        HostEnv::new(plugin, ReadAccess::none(), None, limits)
    }
}

/// What the host copies out of the guest for one host call or for the
/// answer (wasmtime's hostcall fuel, which starts afresh for each), and the
/// copy budget all of them together are charged against in one evaluation
/// (`HostEnv::charge`): twice the output cap (list elements are counted at
/// their host size too) plus 1 MiB for logs and host-call arguments.
pub(crate) fn hostcall_budget(limits: &Limits) -> usize {
    limits
        .max_output_bytes
        .saturating_mul(2)
        .saturating_add(1 << 20)
}

/// A plugin's identity before its `metadata` names it: the file stem.
fn provisional_id(hex: &str, source: &Path) -> PluginId {
    PluginId {
        name: source
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into()),
        digest: format!("sha256:{hex}"),
    }
}

/// Whether `bytes` start like a core WebAssembly module: the `\0asm` magic,
/// then version 1 in layer 0 (`01 00 00 00`). A component has the same magic
/// followed by its own version in layer 1 (`0d 00 01 00`). Reads the
/// 8-byte header only; compiling checks the rest.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}
