//! The data each evaluation's `Store` holds, and the host side of the
//! interfaces plugins import.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::tessera::plugin::{credentials, host, types};
use crate::limits::Limits;
use crate::resources::ReadAccess;
use crate::secrets::SecretKey;

/// Everything one evaluation's store holds. A store lives for exactly one
/// evaluation (unless its binding opted into reuse, `crate::Reuse`), so
/// nothing here is shared between requests or tenants.
pub(crate) struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) env: HostEnv,
    pub(crate) stdout: CapturedOutput,
    pub(crate) stderr: CapturedOutput,
    /// What the host copies out of the guest at most in one host call or
    /// answer (wasmtime's hostcall fuel); `HostEnv::charge` bounds their sum.
    pub(crate) hostcall_budget: usize,
    /// When the running evaluation must end, and whether its caller gave up
    /// on it; the epoch callback (`Runtime::new_store`) reads both.
    pub(crate) clock: EvaluationClock,
}

/// The wall-clock end of one evaluation, checked on every epoch tick while
/// guest code runs.
#[derive(Debug, Clone)]
pub(crate) struct EvaluationClock {
    /// The guest traps (as past its deadline) at the first tick after this.
    pub(crate) deadline: Instant,
    /// Set when whoever awaited the evaluation dropped it (a webhook budget
    /// ran out): the guest traps at the next tick instead of running on to
    /// its own deadline on a thread nobody waits for.
    pub(crate) cancelled: Arc<AtomicBool>,
    /// Yield to the async executor at every tick instead of continuing
    /// (guests run on the executor's own workers; the measured
    /// alternative, see `RuntimeBuilder::yield_on_executor`).
    pub(crate) yield_each_tick: bool,
}

/// `limits.deadline` from now; a deadline too far to represent (a limit
/// of centuries) reads as a year, which no evaluation reaches either.
pub(crate) fn deadline_from_now(limits: &Limits) -> Instant {
    let now = Instant::now();
    now.checked_add(limits.deadline)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

impl EvaluationClock {
    /// A clock whose deadline is `limits.deadline` from now.
    pub(crate) fn start(limits: &Limits, yield_each_tick: bool) -> Self {
        EvaluationClock {
            deadline: deadline_from_now(limits),
            cancelled: Arc::new(AtomicBool::new(false)),
            yield_each_tick,
        }
    }

    /// What the epoch callback does at a tick: trap once the deadline passed
    /// or the caller gave up, else run on for one more tick.
    pub(crate) fn on_tick(&self) -> wasmtime::UpdateDeadline {
        if self.cancelled.load(Ordering::Relaxed) || Instant::now() >= self.deadline {
            wasmtime::UpdateDeadline::Interrupt
        } else if self.yield_each_tick {
            wasmtime::UpdateDeadline::Yield(1)
        } else {
            wasmtime::UpdateDeadline::Continue(1)
        }
    }
}

/// What the host interfaces answer from, for one evaluation.
pub(crate) struct HostEnv {
    /// The plugin's name, for messages.
    pub(crate) plugin: String,
    /// Which reads the binding allows, and where they are answered from.
    pub(crate) reads: ReadAccess,
    /// Key and composite identity for `derive-secret`; `None` outside
    /// `expand`.
    pub(crate) secrets: Option<(Arc<SecretKey>, String)>,
    /// Log lines kept so far.
    pub(crate) logs: Vec<LogLine>,
    /// Bytes of log kept so far.
    log_bytes: usize,
    /// Log lines dropped because a bound was reached.
    pub(crate) logs_dropped: u64,
    /// How many secrets the plugin derived.
    pub(crate) secrets_derived: u32,
    max_log_lines: usize,
    max_log_bytes: usize,
    /// Bytes the plugin handed the host so far in this evaluation: every
    /// host call's arguments (log messages, read arguments, secret purposes)
    /// and, at the end, its answer. See [`HostEnv::charge`].
    copied: usize,
    /// What `copied` may reach: the hostcall budget
    /// (`crate::runtime::hostcall_budget`), for the whole evaluation.
    copy_budget: usize,
}

/// The plugin handed the host more than one evaluation's copy budget; fails
/// the evaluation as `output too large`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "handed the host {copied} bytes in one evaluation (host-call arguments and the answer), \
     over the budget of {budget} bytes"
)]
pub(crate) struct CopyBudgetExceeded {
    /// Bytes handed over, with the call that went over.
    pub(crate) copied: usize,
    /// The budget.
    pub(crate) budget: usize,
}

/// A log line a plugin wrote through the host interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its level.
    pub level: LogLevel,
    /// The message, cut to 1 KiB or to what is left of the evaluation's log
    /// byte budget, whichever is less. The budget is spent by what the
    /// plugin offered, not by what was kept.
    pub message: String,
}

/// Level of a [`LogLine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warn.
    Warn,
    /// Error.
    Error,
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        })
    }
}

/// The point in time the guest always sees as "now": 2024-01-01T00:00:00Z.
/// Fixed (there is no way to give a plugin the real clock) so that output
/// is deterministic; the monotonic clock likewise stays at 0.
const FIXED_WALL_CLOCK: Duration = Duration::from_secs(1_704_067_200);

struct FixedWallClock;

impl wasmtime_wasi::HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        FIXED_WALL_CLOCK
    }
}

struct FixedMonotonicClock;

impl wasmtime_wasi::HostMonotonicClock for FixedMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

impl State {
    /// A fresh state: WASI with nothing granted (no files, no environment,
    /// no sockets, no name lookups, no stdin), a fixed clock, random numbers
    /// seeded from `seed`, and captured, bounded stdout and stderr.
    pub(crate) fn new(limits: &Limits, env: HostEnv, seed: u64, yield_each_tick: bool) -> Self {
        use rand::SeedableRng;
        let stdout = CapturedOutput::new(limits.max_stdio_bytes);
        let stderr = CapturedOutput::new(limits.max_stdio_bytes);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(FixedWallClock)
            .monotonic_clock(FixedMonotonicClock)
            .secure_random(rand::rngs::StdRng::seed_from_u64(seed))
            .insecure_random(rand::rngs::StdRng::seed_from_u64(seed.rotate_left(17)))
            .insecure_random_seed(u128::from(seed))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        State {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits),
            env,
            stdout,
            stderr,
            hostcall_budget: crate::runtime::hostcall_budget(limits),
            clock: EvaluationClock::start(limits, yield_each_tick),
        }
    }

    /// Readies a reused instance's state for its next evaluation: the new
    /// evaluation's environment, empty stdout and stderr. The guest's own
    /// memory is not touched; that is what reuse means.
    pub(crate) fn reset_for_reuse(&mut self, env: HostEnv) {
        self.env = env;
        // A refused grow in an earlier evaluation must not make a later,
        // unrelated trap read as "memory cap reached".
        self.limiter.hit_memory_cap = false;
        self.limiter.hit_table_cap = false;
        self.stdout.clear();
        self.stderr.clear();
    }
}

impl HostEnv {
    pub(crate) fn new(
        plugin: &str,
        reads: ReadAccess,
        secrets: Option<(Arc<SecretKey>, String)>,
        limits: &Limits,
    ) -> Self {
        HostEnv {
            plugin: plugin.to_string(),
            reads,
            secrets,
            logs: Vec::new(),
            log_bytes: 0,
            logs_dropped: 0,
            secrets_derived: 0,
            max_log_lines: limits.max_log_lines,
            max_log_bytes: limits.max_log_bytes,
            copied: 0,
            copy_budget: crate::runtime::hostcall_budget(limits),
        }
    }

    /// Charges `bytes` the plugin handed the host against the evaluation's
    /// copy budget. wasmtime's hostcall fuel bounds each host call (and the
    /// answer) on its own and starts afresh for the next; this is what
    /// bounds their sum. Every host function charges what it was given
    /// before it does anything else, and the evaluation core charges the
    /// answer.
    pub(crate) fn charge(&mut self, bytes: usize) -> Result<(), CopyBudgetExceeded> {
        self.copied = self.copied.saturating_add(bytes);
        if self.copied > self.copy_budget {
            return Err(CopyBudgetExceeded {
                copied: self.copied,
                budget: self.copy_budget,
            });
        }
        Ok(())
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for State {}

impl crate::bindings::tessera::plugin::composition_types::Host for State {}

impl crate::bindings::policy::tessera::plugin::policy_types::Host for State {}

impl host::Host for State {
    fn log(&mut self, level: host::LogLevel, message: String) -> wasmtime::Result<()> {
        let env = &mut self.env;
        env.charge(message.len())?;
        // Bounded: a plugin that logs in a loop costs the host a counter,
        // not memory.
        if env.logs.len() >= env.max_log_lines || env.log_bytes >= env.max_log_bytes {
            env.logs_dropped += 1;
            return Ok(());
        }
        let room = (env.max_log_bytes - env.log_bytes).min(crate::limits::MAX_LOG_LINE);
        // What was offered counts against the log budget, not what is kept:
        // otherwise lines cut short (or to nothing) would cost the budget
        // little while each made the host copy a large string.
        env.log_bytes = env.log_bytes.saturating_add(message.len());
        // A copy of what is kept, so a cut line does not keep the whole
        // allocation the plugin sent alive.
        let message = tessera_types::text::truncate(&message, room).to_string();
        env.logs.push(LogLine {
            level: match level {
                host::LogLevel::Debug => LogLevel::Debug,
                host::LogLevel::Info => LogLevel::Info,
                host::LogLevel::Warn => LogLevel::Warn,
                host::LogLevel::Error => LogLevel::Error,
            },
            message,
        });
        Ok(())
    }

    fn get_resource(
        &mut self,
        target: types::ResourceRef,
    ) -> wasmtime::Result<Result<Option<String>, String>> {
        self.env.charge(
            target.api_version.len()
                + target.kind.len()
                + target.namespace.as_ref().map_or(0, String::len)
                + target.name.len(),
        )?;
        Ok(self
            .env
            .reads
            .get(
                &self.env.plugin,
                &target.api_version,
                &target.kind,
                target.namespace.as_deref(),
                &target.name,
            )
            .map(|found| found.map(|v| v.to_string())))
    }

    fn list_resources(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        label_selector: Option<String>,
    ) -> wasmtime::Result<Result<Vec<String>, String>> {
        self.env.charge(
            api_version.len()
                + kind.len()
                + namespace.as_ref().map_or(0, String::len)
                + label_selector.as_ref().map_or(0, String::len),
        )?;
        Ok(self
            .env
            .reads
            .list(
                &self.env.plugin,
                &api_version,
                &kind,
                namespace.as_deref(),
                label_selector.as_deref(),
            )
            .map(|found| found.iter().map(|v| v.to_string()).collect()))
    }
}

impl credentials::Host for State {
    fn derive_secret(&mut self, purpose: String, length: u32) -> wasmtime::Result<String> {
        self.env.charge(purpose.len())?;
        self.env.secrets_derived = self.env.secrets_derived.saturating_add(1);
        Ok(match &self.env.secrets {
            Some((key, identity)) => key.derive(identity, &purpose, length),
            // Outside `expand` there is no composite to derive for; an empty
            // answer is deterministic and obviously unusable.
            None => String::new(),
        })
    }
}

/// Table elements all of an evaluation's tables may hold together: 2^18
/// (262,144). wasmtime stores a table element as one pointer (8 bytes), under
/// both allocators, so tables can make the host hold at most 2 MiB per
/// evaluation, however many tables a plugin declares or grows. A Rust plugin
/// uses a few hundred; the largest modules wasmtime knows of (C# in debug)
/// about 10,000 in their one table, so this leaves room for language runtimes.
/// The pooling allocator reserves its tables at this size too
/// (`PoolingAllocationConfig::table_elements`), so one table may be as large
/// under either allocator.
pub(crate) const MAX_TABLE_ELEMENTS: usize = 1 << 18;

/// Enforces the memory cap, the cap on table elements
/// ([`MAX_TABLE_ELEMENTS`]) and the limits on how many instances, tables and
/// memories a plugin may create, and remembers whether a cap was hit so a
/// later trap is reported as out-of-memory.
pub(crate) struct MemoryLimiter {
    memory_bytes: usize,
    max_instances: usize,
    max_tables: usize,
    max_memories: usize,
    pub(crate) hit_memory_cap: bool,
    /// Whether a table was refused for passing [`MAX_TABLE_ELEMENTS`].
    pub(crate) hit_table_cap: bool,
    /// Table elements (all tables together) granted now.
    total_table_elements: usize,
    /// The most linear memory (all memories together) granted so far.
    pub(crate) peak_memory: usize,
    /// Linear memory (all memories together) granted now.
    total_memory: usize,
}

impl MemoryLimiter {
    fn new(limits: &Limits) -> Self {
        MemoryLimiter {
            memory_bytes: limits.memory_bytes,
            max_instances: limits.max_instances,
            max_tables: limits.max_instances,
            max_memories: limits.max_instances,
            hit_memory_cap: false,
            hit_table_cap: false,
            total_table_elements: 0,
            peak_memory: 0,
            total_memory: 0,
        }
    }
}

impl MemoryLimiter {
    pub(crate) fn cap_mib(&self) -> usize {
        self.memory_bytes >> 20
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The cap is on all of the instance's linear memories together: a
        // component may hold several.
        let total = self.total_memory - current + desired;
        if total > self.memory_bytes {
            self.hit_memory_cap = true;
            return Ok(false);
        }
        self.total_memory = total;
        self.peak_memory = self.peak_memory.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Called for every table an instance creates (current 0, desired its
        // minimum) and every `table.grow`. The cap is on all tables
        // together, like the memory cap: a per-table cap alone lets a plugin
        // multiply it by the number of tables. Refused (`Ok(false)`) rather
        // than trapped, as wasm asks: instantiation then fails, and
        // `table.grow` returns -1; either way the flag names the cap if the
        // plugin then dies.
        let total = (self.total_table_elements - current).saturating_add(desired);
        if total > MAX_TABLE_ELEMENTS {
            self.hit_table_cap = true;
            return Ok(false);
        }
        self.total_table_elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.max_instances
    }

    fn tables(&self) -> usize {
        self.max_tables
    }

    fn memories(&self) -> usize {
        self.max_memories
    }
}

/// Captures a guest's stdout or stderr up to a byte bound; what comes after
/// the bound is dropped (the guest is not told, so it does not trap).
#[derive(Clone)]
pub(crate) struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

struct Captured {
    bytes: Vec<u8>,
    capacity: usize,
    truncated: bool,
}

impl CapturedOutput {
    fn new(capacity: usize) -> Self {
        CapturedOutput {
            inner: Arc::new(Mutex::new(Captured {
                bytes: Vec::new(),
                capacity,
                truncated: false,
            })),
        }
    }

    /// Forgets what was captured (a reused instance starts each evaluation
    /// with empty output).
    pub(crate) fn clear(&self) {
        let mut captured = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        captured.bytes.clear();
        captured.truncated = false;
    }

    /// What was captured, as text (invalid UTF-8 replaced).
    pub(crate) fn text(&self) -> String {
        let captured = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = String::from_utf8_lossy(&captured.bytes).into_owned();
        if captured.truncated {
            text.push_str("...[truncated]");
        }
        text
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl CapturedOutput {
    fn append(&self, buf: &[u8]) {
        let mut captured = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = captured.capacity.saturating_sub(captured.bytes.len());
        if buf.len() > room {
            captured.truncated = true;
        }
        let keep = buf.len().min(room);
        captured.bytes.extend_from_slice(&buf[..keep]);
    }
}

impl StdoutStream for CapturedOutput {
    /// The WASI 0.2 stream the guest writes to: synchronous, so a write never
    /// parks the evaluation on the executor (where other tasks would eat
    /// into its deadline).
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// How much a guest may write in one `write` call; the guest splits larger
/// writes. The bound on what is kept is the capture capacity.
const WRITE_PERMIT: usize = 64 << 10;

impl wasmtime_wasi::p2::OutputStream for CapturedOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> wasmtime_wasi::p2::StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> wasmtime_wasi::p2::StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> wasmtime_wasi::p2::StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
