//! A binding: a plugin with its settings, limits, allowed reads and secret
//! key. Evaluations happen here, each in a fresh store and instance (or, for
//! a binding that opted into [`Reuse`], in a kept one).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

pub use tessera_types::{Condition, ConditionStatus, Finding, Operation, Severity, UserInfo};

use crate::bindings;
use crate::bindings::policy::tessera::plugin::policy_types as pwit;
use crate::bindings::tessera::plugin::composition_types as cwit;
use crate::bindings::tessera::plugin::types as wit;
use crate::error::{CrashKind, Error, Phase, Result};
use crate::limits::Limits;
use crate::plugin::{Plugin, PluginPre, World, classify};
use crate::provenance::{self, CompositeRef, Stamp};
use crate::resources::ReadAccess;
use crate::runtime::{Lease, Runtime};
use crate::secrets::SecretKey;
use crate::state::{CopyBudgetExceeded, HostEnv, LogLine, State};

/// The seed of the random numbers a plugin sees. Fixed, so that a plugin
/// that reads "random" bytes still renders the same output every time.
const RANDOM_SEED: u64 = 0x7e55_e7a0_5eed_0001;

/// What happened around an evaluation, apart from its answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Lines the plugin logged through the host (bounded).
    pub logs: Vec<LogLine>,
    /// Lines dropped because the log bound was reached.
    pub logs_dropped: u64,
    /// What the plugin wrote to stdout (bounded).
    pub stdout: String,
    /// What the plugin wrote to stderr (bounded).
    pub stderr: String,
    /// Fuel the call used, when the runtime counts fuel.
    pub fuel_consumed: Option<u64>,
    /// How many secrets the plugin derived through the host.
    pub secrets_derived: u32,
    /// The largest linear memory the instance grew to, in bytes.
    pub peak_memory_bytes: usize,
}

/// Facts about an evaluation passed to the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// Where the evaluation runs: `cli`, `controller`, `webhook`.
    pub caller: String,
    /// True when the result will not be applied.
    pub dry_run: bool,
}

impl Default for Context {
    fn default() -> Self {
        Context {
            caller: "cli".into(),
            dry_run: true,
        }
    }
}

/// The result of `expand`, checked and stamped.
#[derive(Debug, Clone, PartialEq)]
pub struct Composed {
    /// The children, each stamped with provenance, in the plugin's order.
    pub children: Vec<Value>,
    /// The status patch for the composite (a JSON object).
    pub status: Option<Value>,
    /// Conditions for the composite.
    pub conditions: Vec<Condition>,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Whether the composite is ready.
    pub ready: bool,
    /// Logs, output and fuel.
    pub report: Report,
}

/// What a policy is asked to judge.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    /// The operation.
    pub operation: Operation,
    /// The object after the operation (none on delete).
    pub object: Option<Value>,
    /// The object before it (update and delete).
    pub old_object: Option<Value>,
    /// Who asked.
    pub user_info: UserInfo,
}

/// A policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Allowed or not.
    pub allowed: bool,
    /// Why.
    pub findings: Vec<Finding>,
    /// Logs, output and fuel.
    pub report: Report,
}

/// Warm-instance reuse for a binding ([`Binding::reuse_instances`]); off by
/// default.
///
/// By default every evaluation gets a fresh instance, so nothing one
/// evaluation leaves in the plugin's memory is seen by the next. With reuse
/// on, an instance that answered is kept and serves later evaluations of the
/// same binding: cheaper (no instantiation, the guest's allocator and caches
/// are warm), but evaluations are no longer isolated from each other. Turn it
/// on only for plugins you trust with every input the binding sees.
///
/// An instance is discarded, never reused, after a trap, a deadline, a
/// refusal, an answer the host rejects or any other error; after
/// [`Reuse::max_calls`]
/// evaluations; and once its linear memory grew past
/// [`Reuse::max_memory_bytes`]. At most [`Reuse::max_idle`] instances wait
/// between evaluations; each holds a pooling slot
/// ([`crate::RuntimeBuilder::pooling`]) until an evaluation that finds the
/// pool full makes the runtime drop idle instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Reuse {
    max_calls: u32,
    max_memory_bytes: usize,
    max_idle: usize,
}

impl Default for Reuse {
    /// 1000 calls, 16 MiB of linear memory, one idle instance per CPU.
    fn default() -> Self {
        Reuse {
            max_calls: 1000,
            max_memory_bytes: 16 << 20,
            max_idle: std::thread::available_parallelism().map_or(4, |n| n.get()),
        }
    }
}

impl Reuse {
    /// Evaluations one instance serves before it is discarded (at least 1).
    pub fn max_calls(mut self, calls: u32) -> Self {
        self.max_calls = calls.max(1);
        self
    }

    /// An instance whose linear memory grew past this is discarded after
    /// its evaluation: a plugin that leaks or caches without bound starts
    /// over.
    pub fn max_memory_bytes(mut self, bytes: usize) -> Self {
        self.max_memory_bytes = bytes;
        self
    }

    /// How many instances wait between evaluations at most; an instance
    /// that finishes while that many wait is dropped.
    pub fn max_idle(mut self, instances: usize) -> Self {
        self.max_idle = instances;
        self
    }
}

/// How a binding's reused instances fared, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReuseStats {
    /// Instances created (an evaluation that found none kept).
    pub instantiated: u64,
    /// Evaluations served by a kept instance.
    pub reused: u64,
    /// Instances dropped after an error, the call bound or the memory bound,
    /// or because `max_idle` instances were already waiting.
    pub discarded: u64,
    /// Idle instances the runtime dropped to free their pooling slots for
    /// evaluations that found the pool full.
    pub evicted: u64,
}

/// A kept instance, with the store it lives in.
pub(crate) struct Warm {
    /// The store, with the pooling slot permit it holds while idle.
    lease: Lease,
    instance: WarmInstance,
    calls: u32,
}

enum WarmInstance {
    Composition(bindings::Composition),
    Policy(bindings::policy::Policy),
}

impl WarmInstance {
    fn into_composition(self) -> Option<bindings::Composition> {
        match self {
            WarmInstance::Composition(instance) => Some(instance),
            WarmInstance::Policy(_) => None,
        }
    }

    fn into_policy(self) -> Option<bindings::policy::Policy> {
        match self {
            WarmInstance::Policy(instance) => Some(instance),
            WarmInstance::Composition(_) => None,
        }
    }
}

/// An evaluation the plugin answered (not refused), before the host checked
/// the answer: the store and instance to check back in, and the report.
struct Answered<I, A> {
    lease: Lease,
    instance: I,
    calls: u32,
    answer: A,
    report: Report,
}

/// Kept instances waiting for an evaluation. The runtime holds a weak
/// reference to every such list so that an evaluation that finds the pool
/// full can drop idle instances (theirs or another binding's) for a slot.
#[derive(Default)]
pub(crate) struct IdleList {
    warm: Mutex<Vec<Warm>>,
    evicted: AtomicU64,
}

impl IdleList {
    /// Drops every waiting instance, counting them as evicted.
    pub(crate) fn evict(&self) {
        let evicted = std::mem::take(&mut *self.warm.lock().unwrap_or_else(|e| e.into_inner()));
        self.evicted
            .fetch_add(evicted.len() as u64, Ordering::Relaxed);
    }
}

/// The idle instances of one binding (shared by its clones).
struct WarmPool {
    reuse: Reuse,
    idle: Arc<IdleList>,
    instantiated: AtomicU64,
    reused: AtomicU64,
    discarded: AtomicU64,
}

impl WarmPool {
    fn new(reuse: Reuse, runtime: &crate::runtime::RuntimeInner) -> Arc<Self> {
        let idle = Arc::new(IdleList::default());
        runtime.register_idle(&idle);
        Arc::new(WarmPool {
            reuse,
            idle,
            instantiated: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
        })
    }

    fn take(&self) -> Option<Warm> {
        self.idle
            .warm
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
    }

    /// Keeps an instance that answered, unless a bound says otherwise.
    fn give_back(&self, mut warm: Warm) {
        warm.calls += 1;
        let grown = warm.lease.store.data().limiter.peak_memory > self.reuse.max_memory_bytes;
        if warm.calls >= self.reuse.max_calls || grown {
            self.discarded.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut idle = self.idle.warm.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.reuse.max_idle {
            idle.push(warm);
        } else {
            self.discarded.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for WarmPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmPool")
            .field("reuse", &self.reuse)
            .finish_non_exhaustive()
    }
}

/// A plugin bound to its settings, limits, reads and secret key.
#[derive(Debug, Clone)]
pub struct Binding {
    plugin: Plugin,
    settings: Value,
    settings_json: String,
    limits: Limits,
    reads: ReadAccess,
    secret_key: Arc<SecretKey>,
    warm: Option<Arc<WarmPool>>,
}

impl Binding {
    /// Binds a plugin to its settings, checked against the plugin's settings
    /// schema now, before the first call. `null` settings read as `{}`.
    ///
    /// Defaults: [`Limits::default`], no reads, and the development secret
    /// key (see [`SecretKey::development`]); set a real key for anything but
    /// offline rendering.
    pub fn new(plugin: Plugin, settings: Value) -> Result<Self> {
        let settings = plugin.check_settings(settings)?;
        Ok(Binding {
            settings_json: json_text(&settings),
            settings,
            plugin,
            limits: Limits::default(),
            reads: ReadAccess::none(),
            secret_key: Arc::new(SecretKey::development()),
            warm: None,
        })
    }

    /// Keeps instances that answered and reuses them for later evaluations
    /// of this binding (and its clones), within the bounds of `reuse`. Off
    /// by default: see [`Reuse`] for what this trades away.
    #[must_use]
    pub fn reuse_instances(mut self, reuse: Reuse) -> Self {
        self.warm = Some(WarmPool::new(reuse, self.plugin.runtime()));
        self
    }

    /// How reuse fared so far; `None` when reuse is off.
    pub fn reuse_stats(&self) -> Option<ReuseStats> {
        self.warm.as_ref().map(|pool| ReuseStats {
            instantiated: pool.instantiated.load(Ordering::Relaxed),
            reused: pool.reused.load(Ordering::Relaxed),
            discarded: pool.discarded.load(Ordering::Relaxed),
            evicted: pool.idle.evicted.load(Ordering::Relaxed),
        })
    }

    /// A store for one evaluation: a kept one (readied for `env`) when
    /// reuse is on and one waits, else a new one.
    async fn checkout(&self, env: HostEnv) -> (Lease, Option<(WarmInstance, u32)>) {
        let runtime = self.plugin.runtime();
        if let Some(pool) = &self.warm {
            if let Some(mut warm) = pool.take() {
                pool.reused.fetch_add(1, Ordering::Relaxed);
                warm.lease.store.data_mut().reset_for_reuse(env);
                Runtime::arm_store(runtime, &mut warm.lease.store, &self.limits);
                return (warm.lease, Some((warm.instance, warm.calls)));
            }
            pool.instantiated.fetch_add(1, Ordering::Relaxed);
        }
        let lease = Runtime::lease(runtime, &self.limits, env, RANDOM_SEED).await;
        (lease, None)
    }

    /// After an evaluation that answered: keeps the instance when reuse is
    /// on. (After an error the store is simply dropped.)
    fn check_in(&self, lease: Lease, instance: WarmInstance, calls: u32) {
        if let Some(pool) = &self.warm {
            pool.give_back(Warm {
                lease,
                instance,
                calls,
            });
        }
    }

    /// Counts an instance dropped after an error.
    fn discard(&self) {
        if let Some(pool) = &self.warm {
            pool.discarded.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sets the limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self.detach_reuse();
        self
    }

    /// Sets what the plugin may read.
    #[must_use]
    pub fn with_reads(mut self, reads: ReadAccess) -> Self {
        self.reads = reads;
        self.detach_reuse();
        self
    }

    /// Sets the key credentials are derived from.
    #[must_use]
    pub fn with_secret_key(mut self, key: Arc<SecretKey>) -> Self {
        self.secret_key = key;
        self.detach_reuse();
        self
    }

    /// A binding changed after a clone must not share kept instances (made
    /// with other limits, reads or key) with the binding it was cloned from.
    fn detach_reuse(&mut self) {
        if let Some(reuse) = self.warm.as_ref().map(|pool| pool.reuse) {
            self.warm = Some(WarmPool::new(reuse, self.plugin.runtime()));
        }
    }

    /// The plugin.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// The checked settings.
    pub fn settings(&self) -> &Value {
        &self.settings
    }

    fn wrong_world(&self, wanted: World) -> Error {
        Error::WrongWorld {
            plugin: self.plugin.id().clone(),
            world: self.plugin.world(),
            wanted,
        }
    }

    /// Expands a composite: one fresh instance (or a kept one, with
    /// [`Reuse`]), one call to `expand`, then the children are checked and
    /// stamped with provenance.
    pub async fn expand(
        &self,
        composite: &Value,
        observed: &[Value],
        context: &Context,
    ) -> Result<Composed> {
        let PluginPre::Composition(pre) = &self.plugin.inner.pre else {
            return Err(self.wrong_world(World::Composition));
        };
        // Moved to the thread the guest runs on (an `Arc` inside).
        let pre = pre.clone();
        let id = self.plugin.id();
        let composite_ref =
            CompositeRef::from_object(composite).map_err(|message| Error::Input { message })?;
        let metadata = self.plugin.metadata();
        let stamp = Stamp::new(
            format!("{}@{}", metadata.name, metadata.version),
            id.digest.clone(),
            provenance::input_digest(composite, &self.settings),
            composite_ref,
        )
        .with_plugin_source(self.plugin.path());
        let request = cwit::Request {
            composite: json_text(composite),
            observed: observed.iter().map(json_text).collect(),
            settings: self.settings_json.clone(),
            context: cwit::Context {
                caller: context.caller.clone(),
                dry_run: context.dry_run,
            },
        };

        let env = HostEnv::new(
            &id.name,
            self.reads.clone(),
            Some((self.secret_key.clone(), stamp.composite.secret_identity())),
            &self.limits,
        );
        let Answered {
            lease,
            instance,
            calls,
            answer: expansion,
            report,
        } = self
            .evaluate(
                Phase::Expand,
                env,
                WarmInstance::into_composition,
                async move |instance, store| {
                    let instance = match instance {
                        Some(instance) => instance,
                        None => pre
                            .instantiate_async(&mut *store)
                            .await
                            .map_err(|e| (Phase::Instantiate, e))?,
                    };
                    let answer = instance
                        .call_expand(&mut *store, &request)
                        .await
                        .map_err(|e| (Phase::Expand, e))?;
                    Ok((instance, answer))
                },
            )
            .await?;
        // Counted before any child is parsed, stamped or judged: the work an
        // answer causes downstream grows with the number of children.
        if expansion.children.len() > self.limits.max_children {
            return Err(self.crashed(
                Phase::Output,
                CrashKind::OutputTooLarge,
                format!(
                    "returned {} children, over the limit of {}",
                    expansion.children.len(),
                    self.limits.max_children
                ),
                &report,
            ));
        }

        let mut children = Vec::with_capacity(expansion.children.len());
        let mut seen = HashSet::new();
        for (index, text) in expansion.children.iter().enumerate() {
            let mut child: Value = serde_json::from_str(text).map_err(|e| {
                self.crashed(
                    Phase::Output,
                    CrashKind::InvalidOutput,
                    format!("child {index} is not valid JSON: {e}"),
                    &report,
                )
            })?;
            provenance::check_and_stamp(index, &mut child, &stamp, &mut seen).map_err(
                |message| self.crashed(Phase::Output, CrashKind::InvalidOutput, message, &report),
            )?;
            children.push(child);
        }
        let status = expansion
            .status
            .as_deref()
            .map(|text| match serde_json::from_str::<Value>(text) {
                Ok(v) if v.is_object() => Ok(v),
                Ok(_) => Err("the status patch is not a JSON object".to_string()),
                Err(e) => Err(format!("the status patch is not valid JSON: {e}")),
            })
            .transpose()
            .map_err(|message| {
                self.crashed(Phase::Output, CrashKind::InvalidOutput, message, &report)
            })?;

        // Kept for reuse only once the answer passed every check.
        self.check_in(lease, WarmInstance::Composition(instance), calls);
        Ok(Composed {
            children,
            status,
            conditions: expansion.conditions.into_iter().map(condition).collect(),
            findings: expansion.findings.into_iter().map(finding).collect(),
            ready: expansion.ready,
            report,
        })
    }

    /// Judges one object: one fresh instance (or a kept one, with
    /// [`Reuse`]), one call to `validate`.
    pub async fn validate(&self, review: &Review) -> Result<Verdict> {
        let PluginPre::Policy(pre) = &self.plugin.inner.pre else {
            return Err(self.wrong_world(World::Policy));
        };
        // Moved to the thread the guest runs on (an `Arc` inside).
        let pre = pre.clone();
        let id = self.plugin.id();
        let request = pwit::Review {
            operation: match review.operation {
                Operation::Create => pwit::Operation::Create,
                Operation::Update => pwit::Operation::Update,
                Operation::Delete => pwit::Operation::Delete,
            },
            object: review.object.as_ref().map(json_text),
            old_object: review.old_object.as_ref().map(json_text),
            user_info: pwit::UserInfo {
                username: review.user_info.username.clone(),
                uid: review.user_info.uid.clone(),
                groups: review.user_info.groups.clone(),
            },
            settings: self.settings_json.clone(),
        };
        let env = HostEnv::new(&id.name, self.reads.clone(), None, &self.limits);
        let Answered {
            lease,
            instance,
            calls,
            answer: verdict,
            report,
        } = self
            .evaluate(
                Phase::Validate,
                env,
                WarmInstance::into_policy,
                async move |instance, store| {
                    let instance = match instance {
                        Some(instance) => instance,
                        None => pre
                            .instantiate_async(&mut *store)
                            .await
                            .map_err(|e| (Phase::Instantiate, e))?,
                    };
                    let answer = instance
                        .call_validate(&mut *store, &request)
                        .await
                        .map_err(|e| (Phase::Validate, e))?;
                    Ok((instance, answer))
                },
            )
            .await?;
        self.check_in(lease, WarmInstance::Policy(instance), calls);
        Ok(Verdict {
            allowed: verdict.allowed,
            findings: verdict.findings.into_iter().map(finding).collect(),
            report,
        })
    }

    /// The evaluation core both worlds share: check out a store (and a kept
    /// instance, with [`Reuse`]), run `call` within the binding's limits,
    /// classify a failure, collect the report, and tell the plugin's
    /// refusal from its answer. The caller checks the answer and then
    /// checks the instance back in with [`Binding::check_in`]; an instance
    /// whose evaluation failed anywhere here is discarded.
    ///
    /// `call` gets the kept instance, if any (else it instantiates one), and
    /// the store; it returns the instance and the plugin's result, or the
    /// phase that failed and wasmtime's error.
    async fn evaluate<I, A>(
        &self,
        phase: Phase,
        env: HostEnv,
        kept: fn(WarmInstance) -> Option<I>,
        call: impl AsyncFnOnce(
            Option<I>,
            &mut wasmtime::Store<State>,
        ) -> std::result::Result<
            (I, std::result::Result<A, wit::PluginError>),
            (Phase, wasmtime::Error),
        > + Send
        + 'static,
    ) -> Result<Answered<I, A>>
    where
        I: Send + 'static,
        A: AnswerBytes + Send + 'static,
    {
        let id = self.plugin.id();
        let runtime = self.plugin.runtime();
        let (lease, warm) = self.checkout(env).await;
        let (instance, calls) = match warm {
            Some((instance, calls)) => (kept(instance), calls),
            None => (None, 0),
        };
        let (mut lease, outcome) =
            Runtime::run_guest(runtime, lease, &self.limits, phase, async move |store| {
                call(instance, store).await
            })
            .await
            .map_err(|e| {
                self.discard();
                Error::host(Some(id), phase, "the evaluation's thread failed", e)
            })?;
        let store = &mut lease.store;
        let (instance, answer) = outcome.map_err(|(phase, e)| {
            self.discard();
            match e.downcast_ref::<CopyBudgetExceeded>() {
                // A host call went over the evaluation's copy budget.
                Some(over) => Error::Crashed {
                    plugin: id.clone(),
                    phase,
                    kind: CrashKind::OutputTooLarge,
                    message: over.to_string(),
                    stderr: store.data().stderr.text(),
                },
                None => classify(e, store, id, phase),
            }
        })?;
        let report = report(store, &self.limits, runtime.fuel);
        // The answer, or the refusal, is held to the output cap and charged
        // to the copy budget here, once for both worlds. Counted after
        // wasmtime copied it out of guest memory, within the hostcall fuel;
        // see SECURITY.md ("Output") for what this does and does not bound.
        let output_bytes = match &answer {
            Ok(answer) => answer.answer_bytes(),
            Err(refusal) => refusal.answer_bytes(),
        };
        if output_bytes > self.limits.max_output_bytes {
            return Err(self.crashed(
                Phase::Output,
                CrashKind::OutputTooLarge,
                format!(
                    "returned {output_bytes} bytes of output, over the limit of {} bytes",
                    self.limits.max_output_bytes
                ),
                &report,
            ));
        }
        if let Err(over) = store.data_mut().env.charge(output_bytes) {
            return Err(self.crashed(
                Phase::Output,
                CrashKind::OutputTooLarge,
                over.to_string(),
                &report,
            ));
        }
        match answer {
            Ok(answer) => Ok(Answered {
                lease,
                instance,
                calls,
                answer,
                report,
            }),
            Err(e) => {
                self.discard();
                Err(refused(self, phase, e))
            }
        }
    }

    /// Creates a fresh store and instance and drops them without calling
    /// the plugin: the fixed cost every evaluation pays. For benchmarks.
    pub async fn instantiate(&self) -> Result<()> {
        let id = self.plugin.id();
        let env = HostEnv::new(&id.name, self.reads.clone(), None, &self.limits);
        let runtime = self.plugin.runtime();
        let mut lease = Runtime::lease(runtime, &self.limits, env, RANDOM_SEED).await;
        let store = &mut lease.store;
        match &self.plugin.inner.pre {
            PluginPre::Composition(pre) => pre.instantiate_async(&mut *store).await.map(drop),
            PluginPre::Policy(pre) => pre.instantiate_async(&mut *store).await.map(drop),
        }
        .map_err(|e| classify(e, store, id, Phase::Instantiate))
    }

    /// A broken answer; a reused instance that gave it is not kept.
    fn crashed(&self, phase: Phase, kind: CrashKind, message: String, report: &Report) -> Error {
        self.discard();
        Error::Crashed {
            plugin: self.plugin.id().clone(),
            phase,
            kind,
            message,
            stderr: report.stderr.clone(),
        }
    }
}

/// The bytes of text an answer (or a refusal) carries: what the output cap
/// limits, the same measure for both worlds.
pub(crate) trait AnswerBytes {
    /// Bytes of every string in the answer.
    fn answer_bytes(&self) -> usize;
}

impl AnswerBytes for cwit::Expansion {
    fn answer_bytes(&self) -> usize {
        self.children.iter().map(String::len).sum::<usize>()
            + self.status.as_ref().map_or(0, String::len)
            + self
                .conditions
                .iter()
                .map(|c| c.type_.len() + c.reason.len() + c.message.len())
                .sum::<usize>()
            + findings_bytes(&self.findings)
    }
}

impl AnswerBytes for pwit::Verdict {
    fn answer_bytes(&self) -> usize {
        findings_bytes(&self.findings)
    }
}

impl AnswerBytes for wit::PluginError {
    fn answer_bytes(&self) -> usize {
        self.message.len() + self.field.as_ref().map_or(0, String::len)
    }
}

fn findings_bytes(findings: &[wit::Finding]) -> usize {
    findings
        .iter()
        .map(|f| f.message.len() + f.field.as_ref().map_or(0, String::len))
        .sum()
}

/// Bounds a whole evaluation by the deadline in wall-clock time, as a second
/// line behind the epoch deadline: the epoch is only checked while guest code
/// runs, so a call parked in the host (a WASI sleep or poll) would otherwise
/// never end. A timeout reads as an epoch interrupt, i.e. a deadline crash.
/// Needs a tokio runtime with time enabled.
pub(crate) async fn within<T>(
    limits: &Limits,
    phase: Phase,
    evaluation: impl std::future::Future<Output = std::result::Result<T, (Phase, wasmtime::Error)>>,
) -> std::result::Result<T, (Phase, wasmtime::Error)> {
    // Two ticks of slack so the epoch, which stops the guest where it is,
    // normally fires first.
    let limit = limits
        .deadline
        .saturating_add(crate::runtime::EPOCH_TICK * 2);
    match tokio::time::timeout(limit, evaluation).await {
        Ok(result) => result,
        Err(_) => Err((phase, wasmtime::Error::new(wasmtime::Trap::Interrupt))),
    }
}

/// A value as compact JSON text, written straight into a buffer (faster
/// than `Value::to_string`, which goes through `fmt::Display`).
fn json_text(value: &Value) -> String {
    serde_json::to_string(value).expect("a JSON value with string keys always serializes")
}

fn refused(binding: &Binding, phase: Phase, error: wit::PluginError) -> Error {
    Error::Refused {
        plugin: binding.plugin.id().clone(),
        phase,
        message: error.message,
        field: error.field,
    }
}

fn report(store: &mut wasmtime::Store<State>, limits: &Limits, fuel: bool) -> Report {
    let fuel_consumed = if fuel {
        store
            .get_fuel()
            .ok()
            .map(|left| limits.fuel.unwrap_or(u64::MAX) - left)
    } else {
        None
    };
    let state = store.data_mut();
    Report {
        logs: std::mem::take(&mut state.env.logs),
        logs_dropped: state.env.logs_dropped,
        stdout: state.stdout.text(),
        stderr: state.stderr.text(),
        fuel_consumed,
        secrets_derived: state.env.secrets_derived,
        peak_memory_bytes: state.limiter.peak_memory,
    }
}

fn finding(f: wit::Finding) -> Finding {
    Finding {
        severity: match f.severity {
            wit::Severity::Info => Severity::Info,
            wit::Severity::Warning => Severity::Warning,
            wit::Severity::Error => Severity::Error,
        },
        message: f.message,
        field: f.field,
    }
}

fn condition(c: wit::Condition) -> Condition {
    Condition {
        type_: c.type_,
        status: match c.status {
            wit::ConditionStatus::True => ConditionStatus::True,
            wit::ConditionStatus::False => ConditionStatus::False,
            wit::ConditionStatus::Unknown => ConditionStatus::Unknown,
        },
        reason: c.reason,
        message: c.message,
    }
}
