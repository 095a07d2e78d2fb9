//! The composite reconciler: one kube-rs `Controller` per `Composition`,
//! watching its composite kind, plus one watch per child kind that triggers
//! the owning composite.
//!
//! One reconcile ([`sync_composite`]) takes these steps, one module each:
//!
//! 1. [`observe`]: watch the child kinds of the last reconcile and read the
//!    children the composite controls;
//! 2. [`expand`]: run the plugin (again, when a new child kind shows children
//!    it did not see);
//! 3. [`own`]: resolve each child's kind and set its ownerReference;
//! 4. [`judge`]: every named policy on every child;
//! 5. [`apply`]: server-side apply of the children that differ, all of them
//!    dry-run first;
//! 6. [`prune`]: delete owned children no longer desired;
//! 7. [`status`]: the composite's status and an event.
//!
//! Any failure leaves the children as they are and says why in the `Synced`
//! condition and an event ([`ReconcileError`]). [`watches`] holds the child
//! watches the first two steps read.

mod apply;
mod backoff;
mod child;
mod error;
mod expand;
mod judge;
mod observe;
mod own;
mod prune;
mod status;
mod watches;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::Poll;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tessera_runtime::Binding;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::kinds::{Kind, Kinds};
use crate::plugins::BindError;
use crate::policies::PolicyStore;
use backoff::Backoff;
use child::Observed;
use error::ReconcileError;
use status::Outcome;
use watches::ChildWatches;

/// Counters of what the controller did, for tests and logs.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Reconciles run.
    pub reconciles: AtomicU64,
    /// Children applied for real (create or update).
    pub applies: AtomicU64,
    /// Children deleted because no longer desired.
    pub prunes: AtomicU64,
    /// Status writes on composites.
    pub status_writes: AtomicU64,
    /// Reconciles that ended in an error.
    pub failures: AtomicU64,
}

impl Metrics {
    /// `(reconciles, applies, prunes, status writes, failures)` now.
    pub fn snapshot(&self) -> [u64; 5] {
        [
            self.reconciles.load(Ordering::Relaxed),
            self.applies.load(Ordering::Relaxed),
            self.prunes.load(Ordering::Relaxed),
            self.status_writes.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        ]
    }
}

/// What every reconciler shares.
pub struct Shared {
    /// The API client.
    pub client: Client,
    /// Discovery cache.
    pub kinds: Kinds,
    /// Loaded policies.
    pub policies: Arc<PolicyStore>,
    /// Field manager of server-side apply.
    pub field_manager: String,
    /// Event recorder.
    pub recorder: Recorder,
    /// Requeue after success (drift of kinds not watched, time-based readiness).
    pub resync: Duration,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The caches plugins' reads are answered from, and who read what.
    pub reads: Arc<crate::reads::Reads>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("field_manager", &self.field_manager)
            .field("resync", &self.resync)
            .finish_non_exhaustive()
    }
}

/// A composition as the reconciler uses it.
#[derive(Debug)]
pub struct Compiled {
    /// The composition's name.
    pub composition: String,
    /// The bound plugin, or why it is not available.
    pub binding: Result<Binding, Arc<BindError>>,
    /// Policies children must pass.
    pub policies: Vec<String>,
    /// What the plugin may read (`spec.reads`).
    pub reads: Vec<tessera_runtime::ReadRule>,
}

/// One running controller for one composite kind.
pub struct KindController {
    /// The composite kind.
    pub kind: Kind,
    compiled: RwLock<Arc<Compiled>>,
    trigger: mpsc::UnboundedSender<ObjectRef<DynamicObject>>,
    store: Store<DynamicObject>,
    children: ChildWatches,
    failures: Mutex<Backoff<ObjectRef<DynamicObject>>>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for KindController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindController")
            .field("kind", &self.kind.resource.kind)
            .finish_non_exhaustive()
    }
}

impl KindController {
    /// Starts a controller for composites of `kind`, its task tracked by
    /// `tasks` (so that a shutdown can wait until every controller's task,
    /// finished or [aborted](Self::abort), has ended).
    pub fn start(
        shared: Arc<Shared>,
        kind: Kind,
        compiled: Compiled,
        concurrency: u16,
        tasks: &TaskTracker,
    ) -> Arc<Self> {
        let api: Api<DynamicObject> = Api::all_with(shared.client.clone(), &kind.resource);
        let (trigger, triggers) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let controller =
            Controller::new_with(api, watcher::Config::default(), kind.resource.clone())
                .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
                .reconcile_on(tokio_stream_from(triggers))
                .graceful_shutdown_on({
                    let cancel = cancel.clone();
                    async move { cancel.cancelled().await }
                });
        let store = controller.store();
        let this = Arc::new(KindController {
            children: ChildWatches::new(
                shared.client.clone(),
                trigger.clone(),
                kind.clone(),
                cancel.clone(),
            ),
            kind,
            compiled: RwLock::new(Arc::new(compiled)),
            trigger,
            store,
            failures: Mutex::new(Backoff::new()),
            shared,
            cancel,
            task: Mutex::new(None),
        });
        let context = this.clone();
        let task = tasks.spawn(async move {
            controller
                .run(measured_reconcile, error_policy, context)
                .for_each(|result| async move {
                    if let Err(error) = result {
                        tracing::debug!(%error, "controller event");
                    }
                })
                .await;
        });
        *this.task.lock().expect("task lock") = Some(task);
        this
    }

    /// Swaps in a changed composition (plugin, settings, limits, policies)
    /// and reconciles every composite with it: a rollout without a restart.
    pub fn update(&self, compiled: Compiled) {
        *self.compiled.write().expect("compiled lock") = Arc::new(compiled);
        for composite in self.store.state() {
            let _ = self.trigger.send(ObjectRef::from_obj_with(
                composite.as_ref(),
                self.kind.resource.clone(),
            ));
        }
    }

    /// Takes no new work: no reconcile starts any more; running ones go on.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Waits until the controller's task has ended (after [`cancel`] once
    /// the running reconciles finished, or after [`abort`]). Dropping this
    /// future leaves the task as it is: [`abort`] still reaches it.
    ///
    /// [`cancel`]: Self::cancel
    /// [`abort`]: Self::abort
    pub async fn stopped(&self) {
        std::future::poll_fn(|cx| {
            let mut task = self.task.lock().expect("task lock");
            let ended = match task.as_mut() {
                Some(handle) => Pin::new(handle).poll(cx).is_ready(),
                None => true,
            };
            if ended {
                *task = None;
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Stops the controller, letting running reconciles finish.
    pub async fn stop(&self) {
        self.cancel();
        self.stopped().await;
    }

    /// Cuts the controller short: takes no new work and aborts its task,
    /// which drops the running reconciles (a guest stops at its next epoch
    /// tick). The task has ended once [`stopped`](Self::stopped) returns.
    pub fn abort(&self) {
        self.cancel.cancel();
        if let Some(task) = self.task.lock().expect("task lock").as_ref() {
            task.abort();
        }
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut receiver: mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

fn error_policy(
    composite: Arc<DynamicObject>,
    error: &ReconcileError,
    ctx: Arc<KindController>,
) -> Action {
    let key = ObjectRef::from_obj_with(composite.as_ref(), ctx.kind.resource.clone());
    let delay = ctx.failures.lock().expect("failures lock").failed(key);
    tracing::info!(composite = %composite.name_any(), error = %error.summary(), ?delay, "reconcile failed; backing off");
    Action::requeue(delay)
}

/// [`reconcile`], counted in the metrics by composition and outcome.
async fn measured_reconcile(
    composite: Arc<DynamicObject>,
    ctx: Arc<KindController>,
) -> Result<Action, ReconcileError> {
    let composition = ctx
        .compiled
        .read()
        .expect("compiled lock")
        .composition
        .clone();
    crate::metrics::reconcile(
        composition,
        ReconcileError::reason,
        reconcile(composite, ctx),
    )
    .await
}

async fn reconcile(
    composite: Arc<DynamicObject>,
    ctx: Arc<KindController>,
) -> Result<Action, ReconcileError> {
    let shared = ctx.shared.clone();
    shared.metrics.reconciles.fetch_add(1, Ordering::Relaxed);
    let key = ObjectRef::from_obj_with(composite.as_ref(), ctx.kind.resource.clone());
    {
        // Composites deleted meanwhile are not reconciled again: forget them.
        let mut failures = ctx.failures.lock().expect("failures lock");
        failures.retain(|other| ctx.store.get(other).is_some());
        if composite.metadata.deletion_timestamp.is_some() {
            failures.forget(&key);
        }
    }
    if composite.metadata.deletion_timestamp.is_some() {
        shared.reads.forget(&key);
        // Children carry ownerReferences: the garbage collector removes them.
        return Ok(Action::await_change());
    }
    let compiled = ctx.compiled.read().expect("compiled lock").clone();
    let result = sync_composite(&ctx, &compiled, &composite).await;
    match result {
        Ok(outcome) => {
            ctx.failures.lock().expect("failures lock").forget(&key);
            status::write_status(&ctx, &composite, Ok(&outcome)).await?;
            if outcome.applied > 0 || outcome.pruned > 0 {
                status::publish(
                    &ctx,
                    &composite,
                    EventType::Normal,
                    "Synced",
                    format!(
                        "applied {} and pruned {} children",
                        outcome.applied, outcome.pruned
                    ),
                )
                .await;
            }
            Ok(Action::requeue(shared.resync))
        }
        Err(error) => {
            shared.metrics.failures.fetch_add(1, Ordering::Relaxed);
            status::publish(
                &ctx,
                &composite,
                EventType::Warning,
                error.reason(),
                error.to_string(),
            )
            .await;
            // A failed status write must not hide the original error.
            if let Err(status_error) = status::write_status(&ctx, &composite, Err(&error)).await {
                tracing::warn!(status_error = %status_error.summary(), "writing the failure to the status");
            }
            Err(error)
        }
    }
}

/// One pass over one composite, a call per step; writes no status.
async fn sync_composite(
    ctx: &KindController,
    compiled: &Compiled,
    composite: &DynamicObject,
) -> Result<Outcome, ReconcileError> {
    let binding = match &compiled.binding {
        Ok(binding) => binding,
        Err(source) => {
            return Err(ReconcileError::PluginUnavailable {
                composition: compiled.composition.clone(),
                source: source.clone(),
            });
        }
    };
    let uid = composite.metadata.uid.clone().unwrap_or_default();
    let composite_json = serde_json::to_value(composite).map_err(ReconcileError::Internal)?;

    let observed = observe::observe(ctx, &composite_json, &uid).await?;
    let key = ObjectRef::from_obj_with(composite, ctx.kind.resource.clone());
    let (composed, observed) = expand::expand(
        ctx,
        binding,
        &compiled.reads,
        &key,
        &composite_json,
        &uid,
        observed,
    )
    .await?;
    let observed = Observed::new(observed);
    let desired = own::own(ctx, composite, &composed.children).await?;
    let warnings = judge::judge(
        ctx,
        compiled,
        composite.metadata.namespace.as_deref(),
        &desired,
        &observed,
    )
    .await?;
    let applied = apply::apply(ctx, &desired, &observed).await?;
    let pruned = prune::prune(ctx, &desired, &observed, &uid).await?;

    Ok(Outcome {
        applied,
        pruned,
        ready: composed.ready,
        status: composed.status,
        plugin_conditions: composed.conditions,
        digest: binding.plugin().digest().to_string(),
        refs: desired.iter().map(|child| child.key.reference()).collect(),
        warnings,
    })
}
