//! The composite reconciler: one kube-rs `Controller` per `Composition`,
//! watching its composite kind, plus one watch per child kind that triggers
//! the owning composite.
//!
//! One reconcile: observed children → `expand` → every named policy on every
//! child → ownerReferences → server-side apply (dry run of all first, then
//! for real, and only the children that differ) → prune owned children no
//! longer desired → status. Any failure leaves the children as they are and
//! says why in the `Synced` condition and an event.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Map, Value, json};
use tessera_runtime::provenance::COMPOSITE_NAME_LABEL;
use tessera_runtime::{Binding, ConditionStatus, Context, Operation, Review, UserInfo};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::diff::is_subset;
use crate::kinds::{Kind, Kinds};
use crate::policies::{Judgement, PolicyStore, judge, one_line};

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
    pub binding: Result<Binding, String>,
    /// Policies children must pass.
    pub policies: Vec<String>,
}

/// One running controller for one composite kind.
pub struct KindController {
    /// The composite kind.
    pub kind: Kind,
    compiled: RwLock<Arc<Compiled>>,
    trigger: mpsc::UnboundedSender<ObjectRef<DynamicObject>>,
    store: Store<DynamicObject>,
    children: ChildWatches,
    failures: Mutex<HashMap<ObjectRef<DynamicObject>, u32>>,
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

#[derive(Debug, thiserror::Error)]
#[error("{reason}: {message}")]
pub(crate) struct ReconcileError {
    reason: &'static str,
    message: String,
}

fn fail(reason: &'static str, message: impl Into<String>) -> ReconcileError {
    ReconcileError {
        reason,
        message: message.into(),
    }
}

impl KindController {
    /// Starts a controller for composites of `kind`.
    pub fn start(
        shared: Arc<Shared>,
        kind: Kind,
        compiled: Compiled,
        concurrency: u16,
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
            failures: Mutex::new(HashMap::new()),
            shared,
            cancel,
            task: Mutex::new(None),
        });
        let context = this.clone();
        let task = tokio::spawn(async move {
            controller
                .run(reconcile, error_policy, context)
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

    /// Stops the controller, letting running reconciles finish.
    pub async fn stop(&self) {
        self.cancel.cancel();
        let task = self.task.lock().expect("task lock").take();
        if let Some(task) = task {
            let _ = task.await;
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
    let mut failures = ctx.failures.lock().expect("failures lock");
    let count = failures.entry(key).or_insert(0);
    *count = count.saturating_add(1);
    // 0.5 s, 1 s, 2 s, ... up to 5 minutes.
    let delay = Duration::from_millis(500)
        .saturating_mul(1u32 << (*count - 1).min(10))
        .min(Duration::from_secs(300));
    tracing::info!(composite = %composite.name_any(), %error, ?delay, "reconcile failed; backing off");
    Action::requeue(delay)
}

/// A child's identity.
type ChildKey = (String, String, String, String);

fn child_key(object: &Value) -> ChildKey {
    let s = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (
        s("/apiVersion"),
        s("/kind"),
        s("/metadata/namespace"),
        s("/metadata/name"),
    )
}

fn describe(key: &ChildKey) -> String {
    if key.2.is_empty() {
        format!("{} {}", key.1, key.3)
    } else {
        format!("{} {}/{}", key.1, key.2, key.3)
    }
}

async fn reconcile(
    composite: Arc<DynamicObject>,
    ctx: Arc<KindController>,
) -> Result<Action, ReconcileError> {
    let shared = ctx.shared.clone();
    shared.metrics.reconciles.fetch_add(1, Ordering::Relaxed);
    if composite.metadata.deletion_timestamp.is_some() {
        // Children carry ownerReferences: the garbage collector removes them.
        return Ok(Action::await_change());
    }
    let compiled = ctx.compiled.read().expect("compiled lock").clone();
    let result = sync_composite(&ctx, &compiled, &composite).await;
    let key = ObjectRef::from_obj_with(composite.as_ref(), ctx.kind.resource.clone());
    match result {
        Ok(outcome) => {
            ctx.failures.lock().expect("failures lock").remove(&key);
            write_status(&ctx, &composite, Ok(&outcome)).await?;
            if outcome.applied > 0 || outcome.pruned > 0 {
                publish(
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
            publish(
                &ctx,
                &composite,
                EventType::Warning,
                error.reason,
                error.message.clone(),
            )
            .await;
            // A failed status write must not hide the original error.
            if let Err(status_error) = write_status(&ctx, &composite, Err(&error)).await {
                tracing::warn!(%status_error, "writing the failure to the status");
            }
            Err(error)
        }
    }
}

/// What a successful sync did and found.
struct Outcome {
    applied: usize,
    pruned: usize,
    ready: bool,
    status: Option<Value>,
    plugin_conditions: Vec<tessera_runtime::Condition>,
    digest: String,
    refs: Vec<Value>,
    warnings: Vec<String>,
}

async fn sync_composite(
    ctx: &KindController,
    compiled: &Compiled,
    composite: &DynamicObject,
) -> Result<Outcome, ReconcileError> {
    let shared = &ctx.shared;
    let binding = compiled.binding.as_ref().map_err(|e| {
        fail(
            "PluginUnavailable",
            format!("composition {}: {e}", compiled.composition),
        )
    })?;
    let uid = composite.metadata.uid.clone().unwrap_or_default();
    let composite_json =
        serde_json::to_value(composite).map_err(|e| fail("Internal", e.to_string()))?;

    // Watch every kind this composite had children of last time, so the
    // plugin sees them (e.g. a Secret whose value must not change).
    let previous_refs = composite_json
        .pointer("/status/resourceRefs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for reference in &previous_refs {
        let api_version = reference["apiVersion"].as_str().unwrap_or("");
        let kind = reference["kind"].as_str().unwrap_or("");
        if !api_version.is_empty() && !kind.is_empty() {
            ctx.children
                .ensure(&shared.kinds, api_version, kind)
                .await
                .map_err(|e| fail("ChildKindUnknown", e))?;
        }
    }

    let context = Context {
        caller: "controller".into(),
        dry_run: false,
    };
    let mut observed = ctx.children.owned_by(&uid);
    let mut composed = binding
        .expand(&composite_json, &observed, &context)
        .await
        .map_err(|e| fail("PluginFailed", one_line(&e.to_string())))?;

    // New child kinds: watch them, and expand again if that shows children
    // the plugin did not see.
    let mut kinds: Vec<(String, String)> = Vec::new();
    let mut new_kind = false;
    for child in &composed.children {
        let key = child_key(child);
        if !kinds.contains(&(key.0.clone(), key.1.clone())) {
            kinds.push((key.0.clone(), key.1.clone()));
            new_kind |= ctx
                .children
                .ensure(&shared.kinds, &key.0, &key.1)
                .await
                .map_err(|e| fail("ChildKindUnknown", e))?;
        }
    }
    if new_kind {
        let now_observed = ctx.children.owned_by(&uid);
        if now_observed.len() != observed.len() {
            observed = now_observed;
            composed = binding
                .expand(&composite_json, &observed, &context)
                .await
                .map_err(|e| fail("PluginFailed", one_line(&e.to_string())))?;
        }
    }

    let observed_by_key: HashMap<ChildKey, &Value> =
        observed.iter().map(|o| (child_key(o), o)).collect();
    let owner = owner_reference(composite, &ctx.kind.resource);
    let mut desired = Vec::with_capacity(composed.children.len());
    for mut child in composed.children.clone() {
        let key = child_key(&child);
        let child_kind = shared
            .kinds
            .resolve(&shared.client, &key.0, &key.1)
            .await
            .map_err(|e| fail("ChildKindUnknown", e))?;
        if ctx.kind.namespaced && !child_kind.namespaced {
            return Err(fail(
                "InvalidChild",
                format!(
                    "{}: a cluster-scoped child cannot be owned by a namespaced composite",
                    describe(&key)
                ),
            ));
        }
        if !child_kind.namespaced
            && let Some(metadata) = child["metadata"].as_object_mut()
        {
            metadata.remove("namespace");
        }
        child["metadata"]["ownerReferences"] = json!([owner.clone()]);
        desired.push((child_key(&child), child_kind, child));
    }

    // Policies, before anything is written.
    let mut warnings = Vec::new();
    for name in &compiled.policies {
        let policy = shared.policies.get(name).ok_or_else(|| {
            fail(
                "PolicyNotFound",
                format!(
                    "policy {name} named by composition {} does not exist",
                    compiled.composition
                ),
            )
        })?;
        for (key, _, child) in &desired {
            let old = observed_by_key.get(key).map(|o| (*o).clone());
            let review = Review {
                operation: if old.is_some() {
                    Operation::Update
                } else {
                    Operation::Create
                },
                object: Some(child.clone()),
                old_object: old,
                user_info: UserInfo {
                    username: format!("system:tessera:{}", shared.field_manager),
                    ..UserInfo::default()
                },
            };
            match judge(&policy, &review, &describe(key)).await {
                Judgement::Allow { warnings: w } => warnings.extend(w),
                Judgement::Deny { message, failed } => {
                    return Err(fail(
                        if failed {
                            "PolicyFailed"
                        } else {
                            "PolicyDenied"
                        },
                        message,
                    ));
                }
            }
        }
    }

    // Apply: only what differs; every change dry-run first, so one rejected
    // child leaves all of them as they were.
    let changed: Vec<&(ChildKey, Kind, Value)> = desired
        .iter()
        .filter(|(key, _, child)| {
            !observed_by_key
                .get(key)
                .is_some_and(|o| is_subset(child, o))
        })
        .collect();
    for dry_run in [true, false] {
        for (key, kind, child) in &changed {
            let api = child_api(&shared.client, kind, key);
            let mut params = PatchParams::apply(&shared.field_manager).force();
            params.dry_run = dry_run;
            api.patch(&key.3, &params, &Patch::Apply(child))
                .await
                .map_err(|e| {
                    fail(
                        "ApplyFailed",
                        format!("{}: {}", describe(key), api_message(&e)),
                    )
                })?;
            if !dry_run {
                shared.metrics.applies.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    // Prune owned children that are no longer desired.
    let desired_keys: HashSet<&ChildKey> = desired.iter().map(|(k, _, _)| k).collect();
    let mut pruned = 0;
    for object in &observed {
        let key = child_key(object);
        if desired_keys.contains(&key) || !is_controlled_by(object, &uid) {
            continue;
        }
        let kind = shared
            .kinds
            .resolve(&shared.client, &key.0, &key.1)
            .await
            .map_err(|e| fail("ChildKindUnknown", e))?;
        let api = child_api(&shared.client, &kind, &key);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: object
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(String::from),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(&key.3, &params).await {
            Ok(_) => {
                pruned += 1;
                shared.metrics.prunes.fetch_add(1, Ordering::Relaxed);
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                return Err(fail(
                    "PruneFailed",
                    format!("{}: {}", describe(&key), api_message(&e)),
                ));
            }
        }
    }

    let refs = desired
        .iter()
        .map(|(key, _, _)| {
            let mut r = json!({"apiVersion": key.0, "kind": key.1, "name": key.3});
            if !key.2.is_empty() {
                r["namespace"] = json!(key.2);
            }
            r
        })
        .collect();
    Ok(Outcome {
        applied: changed.len(),
        pruned,
        ready: composed.ready,
        status: composed.status.clone(),
        plugin_conditions: composed.conditions.clone(),
        digest: binding.plugin().digest().to_string(),
        refs,
        warnings,
    })
}

fn child_api(client: &Client, kind: &Kind, key: &ChildKey) -> Api<DynamicObject> {
    if kind.namespaced {
        Api::namespaced_with(client.clone(), &key.2, &kind.resource)
    } else {
        Api::all_with(client.clone(), &kind.resource)
    }
}

fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => one_line(&status.message),
        other => one_line(&other.to_string()),
    }
}

fn owner_reference(composite: &DynamicObject, resource: &ApiResource) -> Value {
    json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "name": composite.name_any(),
        "uid": composite.metadata.uid.clone().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

fn is_controlled_by(object: &Value, uid: &str) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"].as_str() == Some(uid) && r["controller"].as_bool() == Some(true))
        })
}

/// Keys of the status the host owns; the plugin's status patch cannot set them.
const HOST_STATUS_KEYS: &[&str] = &[
    "conditions",
    "observedGeneration",
    "pluginDigest",
    "resourceRefs",
];

async fn write_status(
    ctx: &KindController,
    composite: &DynamicObject,
    result: Result<&Outcome, &ReconcileError>,
) -> Result<(), ReconcileError> {
    let shared = &ctx.shared;
    let current = composite.data.get("status").cloned().unwrap_or(json!({}));
    let mut status: Map<String, Value> = current.as_object().cloned().unwrap_or_default();
    let generation = composite.metadata.generation;
    let old_conditions: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut conditions: Vec<(String, &'static str, String, String)> = Vec::new();
    match result {
        Ok(outcome) => {
            if let Some(Value::Object(patch)) = &outcome.status {
                for (key, value) in patch {
                    if !HOST_STATUS_KEYS.contains(&key.as_str()) {
                        status.insert(key.clone(), value.clone());
                    }
                }
            }
            let (ready, reason, message) = if outcome.ready {
                (
                    "True",
                    "Available",
                    "the plugin reports the composite ready".to_string(),
                )
            } else {
                (
                    "False",
                    "Creating",
                    "waiting for the plugin to report the composite ready".to_string(),
                )
            };
            conditions.push(("Ready".into(), ready, reason.into(), message));
            let message = if outcome.warnings.is_empty() {
                format!("{} children in sync", outcome.refs.len())
            } else {
                format!(
                    "{} children in sync; {}",
                    outcome.refs.len(),
                    outcome.warnings.join("; ")
                )
            };
            conditions.push(("Synced".into(), "True", "ReconcileSuccess".into(), message));
            for c in &outcome.plugin_conditions {
                if c.type_ == "Ready" || c.type_ == "Synced" {
                    continue;
                }
                let s = match c.status {
                    ConditionStatus::True => "True",
                    ConditionStatus::False => "False",
                    ConditionStatus::Unknown => "Unknown",
                };
                conditions.push((c.type_.clone(), s, c.reason.clone(), c.message.clone()));
            }
            status.insert("pluginDigest".into(), json!(outcome.digest));
            status.insert("resourceRefs".into(), Value::Array(outcome.refs.clone()));
        }
        Err(error) => {
            // Keep what the last success said about readiness.
            let ready = old_conditions.iter().find(|c| c["type"] == "Ready");
            match ready {
                Some(ready) => conditions.push((
                    "Ready".into(),
                    match ready["status"].as_str() {
                        Some("True") => "True",
                        Some("False") => "False",
                        _ => "Unknown",
                    },
                    ready["reason"].as_str().unwrap_or("Unknown").into(),
                    ready["message"].as_str().unwrap_or("").into(),
                )),
                None => conditions.push((
                    "Ready".into(),
                    "False",
                    "Unknown".into(),
                    "not reconciled yet".into(),
                )),
            }
            conditions.push((
                "Synced".into(),
                "False",
                error.reason.into(),
                truncate(&error.message, 1024),
            ));
        }
    }
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let conditions: Vec<Value> = conditions
        .into_iter()
        .map(|(type_, s, reason, message)| {
            let old = old_conditions.iter().find(|c| c["type"] == type_.as_str());
            let same_status = old.is_some_and(|c| c["status"] == s);
            let transition = old
                .filter(|_| same_status)
                .and_then(|c| c["lastTransitionTime"].as_str())
                .unwrap_or(&now)
                .to_string();
            json!({
                "type": type_,
                "status": s,
                "reason": reason,
                "message": message,
                "lastTransitionTime": transition,
                "observedGeneration": generation,
            })
        })
        .collect();
    status.insert("conditions".into(), Value::Array(conditions));
    if let Some(generation) = generation {
        status.insert("observedGeneration".into(), json!(generation));
    }
    let status = Value::Object(status);
    if status == current {
        return Ok(());
    }
    let api: Api<DynamicObject> = match composite.namespace() {
        Some(ns) => Api::namespaced_with(shared.client.clone(), &ns, &ctx.kind.resource),
        None => Api::all_with(shared.client.clone(), &ctx.kind.resource),
    };
    api.patch_status(
        &composite.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .map_err(|e| {
        fail(
            "StatusFailed",
            format!("writing the status: {}", api_message(&e)),
        )
    })?;
    shared.metrics.status_writes.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

async fn publish(
    ctx: &KindController,
    composite: &DynamicObject,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let reference = composite.object_ref(&ctx.kind.resource);
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(truncate(&note, 1000)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = ctx.shared.recorder.publish(&event, &reference).await {
        tracing::warn!(%error, "publishing an event");
    }
}

/// Watches of child kinds, each restricted to objects carrying the
/// `tessera.dev/composite-name` label; an event on a child triggers its
/// controlling composite.
struct ChildWatches {
    client: Client,
    trigger: mpsc::UnboundedSender<ObjectRef<DynamicObject>>,
    owner: Kind,
    cancel: CancellationToken,
    watched: RwLock<BTreeMap<(String, String), Store<DynamicObject>>>,
    /// Held while a new watch starts, so one kind is never watched twice.
    starting: tokio::sync::Mutex<()>,
}

impl ChildWatches {
    fn new(
        client: Client,
        trigger: mpsc::UnboundedSender<ObjectRef<DynamicObject>>,
        owner: Kind,
        cancel: CancellationToken,
    ) -> Self {
        ChildWatches {
            client,
            trigger,
            owner,
            cancel,
            watched: RwLock::new(BTreeMap::new()),
            starting: tokio::sync::Mutex::new(()),
        }
    }

    /// Watches `api_version`/`kind` if not yet; true when the watch is new.
    async fn ensure(&self, kinds: &Kinds, api_version: &str, kind: &str) -> Result<bool, String> {
        let key = (api_version.to_string(), kind.to_string());
        if self.watched.read().expect("watch lock").contains_key(&key) {
            return Ok(false);
        }
        let _starting = self.starting.lock().await;
        if self.watched.read().expect("watch lock").contains_key(&key) {
            return Ok(false);
        }
        let child = kinds.resolve(&self.client, api_version, kind).await?;
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &child.resource);
        let writer = reflector::store::Writer::new(child.resource.clone());
        let store = writer.as_reader();
        let config = watcher::Config::default().labels(COMPOSITE_NAME_LABEL);
        let owner = self.owner.clone();
        let trigger = self.trigger.clone();
        let cancel = self.cancel.clone();
        let stream = watcher(api, config).default_backoff().reflect(writer);
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            loop {
                let event = tokio::select! {
                    _ = cancel.cancelled() => break,
                    event = stream.next() => event,
                };
                let Some(event) = event else { break };
                let objects: Vec<DynamicObject> = match event {
                    Ok(
                        watcher::Event::Apply(o)
                        | watcher::Event::Delete(o)
                        | watcher::Event::InitApply(o),
                    ) => vec![o],
                    Ok(_) => continue,
                    Err(error) => {
                        tracing::debug!(%error, "child watch");
                        continue;
                    }
                };
                for object in objects {
                    if let Some(owner_ref) = controlling_owner(&object, &owner) {
                        let _ = trigger.send(owner_ref);
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), store.wait_until_ready())
            .await
            .map_err(|_| format!("listing {api_version} {kind} timed out"))?
            .map_err(|e| format!("listing {api_version} {kind}: {e}"))?;
        self.watched.write().expect("watch lock").insert(key, store);
        Ok(true)
    }

    /// Every watched object controlled by the composite with `uid`, as JSON
    /// without `managedFields`.
    fn owned_by(&self, uid: &str) -> Vec<Value> {
        let watched: Vec<Store<DynamicObject>> = self
            .watched
            .read()
            .expect("watch lock")
            .values()
            .cloned()
            .collect();
        let mut owned = Vec::new();
        for store in watched {
            for object in store.state() {
                let is_owned = object
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.uid == uid && r.controller == Some(true));
                if is_owned {
                    let mut value = serde_json::to_value(object.as_ref()).unwrap_or(Value::Null);
                    if let Some(metadata) = value["metadata"].as_object_mut() {
                        metadata.remove("managedFields");
                    }
                    owned.push(value);
                }
            }
        }
        owned.sort_by_key(child_key);
        owned
    }
}

fn controlling_owner(object: &DynamicObject, owner: &Kind) -> Option<ObjectRef<DynamicObject>> {
    let reference = object
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| {
            r.controller == Some(true)
                && r.kind == owner.resource.kind
                && r.api_version == owner.resource.api_version
        })?;
    let mut object_ref = ObjectRef::new_with(&reference.name, owner.resource.clone());
    if owner.namespaced
        && let Some(ns) = &object.metadata.namespace
    {
        object_ref = object_ref.within(ns);
    }
    Some(object_ref)
}
