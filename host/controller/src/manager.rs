//! Keeps one [`KindController`] per `Composition` in line with the
//! compositions and policies in the cluster, and keeps the policy store in
//! line with the `Policy` objects. A change to a composition, to its plugin's
//! bytes or to a policy it names rolls out to every composite without a
//! restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tessera_runtime::{Binding, SecretKey, World};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::compose::{Compiled, KindController, Shared};
use crate::conditions::{self, Condition, Status};
use crate::crd::{Composition, Policy};
use crate::kinds::KindError;
use crate::plugins::{Active, BindError, PluginLoader, User};
use crate::policies::{LoadedPolicy, one_line};

/// How many compositions' or policies' plugins a pass loads at once
/// (fetches, compiles and self-tests run concurrently up to this).
pub(crate) const LOADS_AT_ONCE: usize = 8;

/// Why a `Composition` or a `Policy` is not ready: its `Ready` condition is
/// False with [`reason`](NotReady::reason) and this message.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// An older composition composes the same kind.
    #[error("composition {owner} already composes {api_version} {kind}")]
    Conflict {
        /// The composition that composes it.
        owner: String,
        /// The composite kind's apiVersion.
        api_version: String,
        /// The composite kind.
        kind: String,
    },
    /// The plugin could not be loaded or bound to the settings.
    #[error("{0}")]
    PluginUnavailable(#[source] Arc<BindError>),
    /// The composite kind is not served.
    #[error("{0}")]
    CompositeKindUnknown(#[from] KindError),
}

impl NotReady {
    /// The `Ready` condition's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            NotReady::Conflict { .. } => "Conflict",
            NotReady::PluginUnavailable(error) => match error.as_ref() {
                BindError::Load(error) => error.reason(),
                BindError::Refused(error) => error.reason(),
                _ => "PluginUnavailable",
            },
            NotReady::CompositeKindUnknown(_) => "CompositeKindUnknown",
        }
    }
}

/// Watches `Policy` objects and reloads the store on every change and every
/// `resync` (for plugins read from files that may have been replaced).
/// Writes policy status only when `write_status`.
pub async fn run_policies(
    shared: Arc<Shared>,
    loader: Arc<PluginLoader>,
    resync: Duration,
    selector: Option<&str>,
    write_status: impl Fn() -> bool,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let api: Api<Policy> = Api::all(shared.client.clone());
    let writer = reflector::store::Writer::default();
    let store: Store<Policy> = writer.as_reader();
    let mut events = watcher(api.clone(), watch_config(selector))
        .default_backoff()
        .reflect(writer)
        .boxed();
    let mut tick = tokio::time::interval(resync);
    let mut written: HashMap<String, Value> = HashMap::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            event = events.next() => match event {
                None => anyhow::bail!("the Policy watch ended"),
                Some(Err(error)) => { tracing::warn!(%error, "Policy watch"); continue; }
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {}
        }
        if store.wait_until_ready().now_or_never_ready() {
            continue;
        }
        let objects = store.state();
        shared.policies.sync(&loader, &objects).await;
        if !write_status() {
            continue;
        }
        for object in &objects {
            let name = object.name_any();
            let Some(loaded) = shared.policies.get(&name) else {
                continue;
            };
            let outcome = loaded
                .binding
                .as_ref()
                .map(|b| Served::new(b, loaded.reference.clone(), loaded.refused.clone()))
                .map_err(|e| NotReady::PluginUnavailable(e.clone()));
            let status = loaded_status(
                outcome,
                object.metadata.generation,
                object.status.as_ref().map(|s| &s.conditions),
            );
            let current = object
                .status
                .as_ref()
                .map(|s| serde_json::to_value(s).unwrap_or_default())
                .unwrap_or(Value::Null);
            if same_status(&current, &status) || written.get(&name) == Some(&status) {
                continue;
            }
            match api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": status})),
                )
                .await
            {
                Ok(_) => {
                    written.insert(name, status);
                }
                Err(error) => tracing::warn!(policy = name, %error, "writing Policy status"),
            }
        }
    }
}

fn watch_config(selector: Option<&str>) -> watcher::Config {
    match selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    }
}

trait ReadyNow {
    /// True while the store has not finished its first list.
    fn now_or_never_ready(self) -> bool;
}

impl<F: std::future::Future> ReadyNow for F {
    fn now_or_never_ready(self) -> bool {
        futures::FutureExt::now_or_never(self).is_none()
    }
}

/// The plugin serving a `Composition` or `Policy`, for its status.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    digest: String,
    reference: Option<String>,
    refused: Option<Arc<crate::plugins::PluginError>>,
}

impl Served {
    pub(crate) fn new(
        binding: &Binding,
        reference: Option<String>,
        refused: Option<Arc<crate::plugins::PluginError>>,
    ) -> Self {
        Served {
            digest: binding.plugin().digest().to_string(),
            reference,
            refused,
        }
    }
}

/// Status of a `Composition` or `Policy`: a `Ready` condition (True with
/// the loaded plugin's digest, or False with a reason), a `PluginUpToDate`
/// condition (False when a newer plugin was refused and the previous one
/// serves on, or when none could be loaded), the observed generation, the
/// plugin digest and its pinned OCI reference. The transition time is kept
/// while a condition's status does not change.
fn loaded_status(
    outcome: Result<Served, NotReady>,
    generation: Option<i64>,
    old: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
) -> Value {
    let (ready, up_to_date, served) = match outcome {
        Ok(served) => {
            let name = served.reference.as_deref().unwrap_or(&served.digest);
            let ready = Condition::new(
                "Ready",
                Status::True,
                "PluginLoaded",
                format!("plugin {name} loaded"),
            );
            // The message may quote the plugin (what its self-test said, a
            // registry's answer): one line, like every condition.
            let up_to_date = match &served.refused {
                None => Condition::new(
                    "PluginUpToDate",
                    Status::True,
                    "PluginLoaded",
                    "the plugin the source names is serving",
                ),
                Some(refused) => Condition::new(
                    "PluginUpToDate",
                    Status::False,
                    refused.reason(),
                    one_line(&format!("{refused}; still serving {name}")),
                ),
            };
            (ready, up_to_date, Some(served))
        }
        Err(error) => {
            let message = one_line(&error.to_string());
            (
                Condition::new("Ready", Status::False, error.reason(), message.clone()),
                Condition::new("PluginUpToDate", Status::False, error.reason(), message),
                None,
            )
        }
    };
    let old: Vec<Value> = old
        .into_iter()
        .flatten()
        .map(|c| serde_json::to_value(c).unwrap_or_default())
        .collect();
    json!({
        "conditions": conditions::merge(vec![ready, up_to_date], &old, generation),
        "observedGeneration": generation,
        "pluginDigest": served.as_ref().map(|s| s.digest.clone()),
        "pluginRef": served.and_then(|s| s.reference),
    })
}

/// Whether a written status (`current`, as read back) already says what
/// `new` says.
fn same_status(current: &Value, new: &Value) -> bool {
    [
        "conditions",
        "observedGeneration",
        "pluginDigest",
        "pluginRef",
    ]
    .iter()
    .all(|key| current.get(*key).unwrap_or(&Value::Null) == &new[*key])
}

/// What a running kind controller was last configured with: when any of it
/// changes, the composition is rolled out again.
#[derive(Debug, Clone, PartialEq)]
struct Fingerprint {
    generation: Option<i64>,
    /// The plugin's digest and pinned reference, or the message of why it
    /// is not available.
    plugin: Result<String, String>,
    policies: Vec<(String, Option<i64>, Option<String>)>,
}

struct Running {
    composite: (String, String),
    fingerprint: Fingerprint,
    controller: Arc<KindController>,
}

impl Drop for Running {
    /// A controller no longer kept (also when [`run_compositions`] is
    /// dropped, at the end of the shutdown grace) is cut short: nothing of
    /// it runs on unseen.
    fn drop(&mut self) {
        self.controller.abort();
    }
}

/// Watches `Composition` objects and runs one controller for each, its task
/// tracked by `tasks`, until `cancel`; then stops every controller at once
/// (none takes new work) and waits for the running reconciles. Dropping this
/// future aborts every controller it started; `tasks` says when their tasks
/// have ended.
#[allow(clippy::too_many_arguments)]
pub async fn run_compositions(
    shared: Arc<Shared>,
    loader: Arc<PluginLoader>,
    secret_key: Arc<SecretKey>,
    resync: Duration,
    concurrency: u16,
    selector: Option<&str>,
    tasks: TaskTracker,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let api: Api<Composition> = Api::all(shared.client.clone());
    let writer = reflector::store::Writer::default();
    let store: Store<Composition> = writer.as_reader();
    let mut events = watcher(api.clone(), watch_config(selector))
        .default_backoff()
        .reflect(writer)
        .boxed();
    let mut policy_changes = shared.policies.subscribe();
    let mut tick = tokio::time::interval(resync);
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    let result = loop {
        tokio::select! {
            _ = cancel.cancelled() => break Ok(()),
            event = events.next() => match event {
                None => break Err(anyhow::anyhow!("the Composition watch ended")),
                Some(Err(error)) => { tracing::warn!(%error, "Composition watch"); continue; }
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {}
            _ = policy_changes.changed() => {}
        }
        if store.wait_until_ready().now_or_never_ready() {
            continue;
        }
        let mut compositions = store.state();
        // The oldest composition of a kind wins; later ones report a conflict.
        compositions.sort_by(|a, b| {
            (
                a.meta().creation_timestamp.as_ref().map(|t| t.0),
                a.name_any(),
            )
                .cmp(&(
                    b.meta().creation_timestamp.as_ref().map(|t| t.0),
                    b.name_any(),
                ))
        });
        // The oldest composition of each kind claims it.
        let mut claimed: HashMap<(String, String), String> = HashMap::new();
        let mut owners = Vec::new();
        let mut conflicts = Vec::new();
        let mut seen = Vec::new();
        for composition in &compositions {
            let name = composition.name_any();
            seen.push(name.clone());
            let spec = &composition.spec;
            let key = (
                spec.composite.api_version.clone(),
                spec.composite.kind.clone(),
            );
            match claimed.get(&key) {
                Some(owner) => conflicts.push((composition, owner.clone(), key)),
                None => {
                    claimed.insert(key, name);
                    owners.push(composition);
                }
            }
        }
        for (composition, owner, (api_version, kind)) in conflicts {
            if let Some(old) = running.remove(&composition.name_any()) {
                old.controller.stop().await;
            }
            let conflict = NotReady::Conflict {
                owner,
                api_version,
                kind,
            };
            write_composition_status(&api, composition, Err(conflict)).await;
        }
        // Plugins load a few at a time: one behind a slow registry does not
        // hold up the others' rollouts.
        let (loader, secret_key) = (&loader, &secret_key);
        let owned: Vec<Arc<Composition>> = owners.iter().map(|c| Arc::clone(c)).collect();
        let bound: Vec<_> = futures::stream::iter(owned)
            .map(|composition| async move { bind(loader, secret_key, &composition).await })
            .buffered(LOADS_AT_ONCE)
            .collect()
            .await;
        for (composition, bound) in owners.iter().zip(bound) {
            let outcome = sync_one(
                &shared,
                concurrency,
                composition,
                bound,
                &mut running,
                &tasks,
            )
            .await;
            write_composition_status(&api, composition, outcome).await;
        }
        // Plugins of deleted or changed compositions are not kept loaded.
        loader.end_pass(User::Compositions);
        let gone: Vec<String> = running
            .keys()
            .filter(|n| !seen.contains(n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(old) = running.remove(&name) {
                tracing::info!(
                    composition = name,
                    "composition deleted; stopping its controller"
                );
                old.controller.stop().await;
            }
        }
    };
    // Every controller first stops taking work, then all are waited for
    // together: one long reconcile does not keep the others running.
    for old in running.values() {
        old.controller.cancel();
    }
    futures::future::join_all(running.values().map(|old| old.controller.stopped())).await;
    result
}

/// Starts, updates or leaves alone the controller of one composition.
/// Returns the plugin digest, or why the composition is not ready.
async fn sync_one(
    shared: &Arc<Shared>,
    concurrency: u16,
    composition: &Composition,
    bound: Result<(Binding, Active), BindError>,
    running: &mut BTreeMap<String, Running>,
    tasks: &TaskTracker,
) -> Result<Served, NotReady> {
    let name = composition.name_any();
    let spec = &composition.spec;
    let composite = (
        spec.composite.api_version.clone(),
        spec.composite.kind.clone(),
    );
    let bound = bound.map_err(Arc::new);
    let served = bound
        .as_ref()
        .map(|(binding, active)| {
            Served::new(binding, active.reference.clone(), active.refused.clone())
        })
        .map_err(|e| NotReady::PluginUnavailable(e.clone()));
    let binding = bound.map(|(binding, _)| binding);
    let policies: Vec<(String, Option<i64>, Option<String>)> = spec
        .policies
        .iter()
        .map(|p| {
            let loaded: Option<Arc<LoadedPolicy>> = shared.policies.get(p);
            (
                p.clone(),
                loaded.as_ref().and_then(|l| l.generation),
                loaded.as_ref().and_then(|l| l.digest().map(String::from)),
            )
        })
        .collect();
    // The reference too: the same component pulled through a new manifest
    // is stamped with another `tessera.dev/plugin-ref`.
    let fingerprint = Fingerprint {
        generation: composition.metadata.generation,
        plugin: served
            .as_ref()
            .map(|s| format!("{} {}", s.digest, s.reference.as_deref().unwrap_or("")))
            .map_err(|e| e.to_string()),
        policies,
    };
    let compiled = Compiled {
        composition: name.clone(),
        binding,
        policies: spec.policies.clone(),
        reads: spec.reads.clone(),
    };
    match running.get_mut(&name) {
        Some(current) if current.composite == composite => {
            if current.fingerprint != fingerprint {
                tracing::info!(composition = name, "composition changed; rolling out");
                current.controller.update(compiled);
                current.fingerprint = fingerprint;
            }
        }
        _ => {
            if let Some(old) = running.remove(&name) {
                old.controller.stop().await;
            }
            let kind = shared
                .kinds
                .resolve(&shared.client, &composite.0, &composite.1)
                .await?;
            tracing::info!(
                composition = name,
                kind = composite.1,
                "starting a controller"
            );
            let controller =
                KindController::start(shared.clone(), kind, compiled, concurrency, tasks);
            running.insert(
                name,
                Running {
                    composite,
                    fingerprint,
                    controller,
                },
            );
        }
    }
    served
}

/// The composition's plugin bound to its settings and limits, with what the
/// loader said of it (its pinned reference, a newer plugin it refused).
async fn bind(
    loader: &PluginLoader,
    secret_key: &Arc<SecretKey>,
    composition: &Composition,
) -> Result<(Binding, Active), BindError> {
    let spec = &composition.spec;
    let previous = composition
        .status
        .as_ref()
        .and_then(|s| s.plugin_ref.as_deref());
    let active = loader
        .load(
            User::Compositions,
            &composition.name_any(),
            &spec.plugin,
            previous,
        )
        .await
        .inspect_err(crate::metrics::plugin_load_failed)?;
    if let Some(refused) = &active.refused {
        crate::metrics::plugin_load_failed(refused);
    }
    let plugin = active.plugin.clone();
    if plugin.world() != World::Composition {
        return Err(BindError::WrongWorld {
            plugin: plugin.id().clone(),
            world: plugin.world(),
            expected: World::Composition,
        });
    }
    let limits = match &spec.limits {
        Some(limits) => crate::crd::binding_limits(limits)?,
        None => tessera_runtime::Limits::default(),
    };
    for rule in &spec.reads {
        rule.check().map_err(BindError::Reads)?;
    }
    let settings = spec.settings.clone().unwrap_or(Value::Null);
    let binding = Binding::new(plugin, settings).map_err(|error| match &active.refused {
        Some(refused) => BindError::Refused(refused.clone()),
        None => BindError::Settings(error),
    })?;
    Ok((
        binding
            .with_limits(limits)
            .with_secret_key(secret_key.clone()),
        active,
    ))
}

async fn write_composition_status(
    api: &Api<Composition>,
    composition: &Composition,
    outcome: Result<Served, NotReady>,
) {
    let new = loaded_status(
        outcome,
        composition.metadata.generation,
        composition.status.as_ref().map(|s| &s.conditions),
    );
    let current = composition
        .status
        .as_ref()
        .map(|s| serde_json::to_value(s).unwrap_or_default())
        .unwrap_or(Value::Null);
    if same_status(&current, &new) {
        return;
    }
    if let Err(error) = api
        .patch_status(
            &composition.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": new})),
        )
        .await
    {
        tracing::warn!(composition = composition.name_any(), %error, "writing Composition status");
    }
}
