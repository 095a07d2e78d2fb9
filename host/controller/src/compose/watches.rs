//! The child watches a kind controller keeps: one per child kind, restricted
//! to objects carrying the `tessera.dev/composite-name` label. An event on a
//! child triggers its controlling composite ([`controlling_owner`]); the
//! stores are what [`observe`](super::observe) and
//! [`expand`](super::expand) read the observed children from.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::store::WriterDropped;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tessera_runtime::provenance::COMPOSITE_NAME_LABEL;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::child::ChildKey;
use crate::kinds::{Kind, KindError, Kinds};

/// Why a child kind could not be watched.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WatchError {
    /// The kind is not served.
    #[error("{0}")]
    Kind(#[from] KindError),
    /// The first list of the kind did not finish in time (30 s).
    #[error("listing {api_version} {kind} timed out")]
    ListTimedOut {
        /// The child kind's apiVersion.
        api_version: String,
        /// The child kind.
        kind: String,
    },
    /// The watch ended before its first list finished.
    #[error("listing {api_version} {kind}: {source}")]
    ListFailed {
        /// The child kind's apiVersion.
        api_version: String,
        /// The child kind.
        kind: String,
        /// What the store said.
        #[source]
        source: WriterDropped,
    },
}

/// Watches of child kinds, each restricted to objects carrying the
/// `tessera.dev/composite-name` label; an event on a child triggers its
/// controlling composite.
pub(super) struct ChildWatches {
    client: Client,
    trigger: mpsc::UnboundedSender<ObjectRef<DynamicObject>>,
    owner: Kind,
    cancel: CancellationToken,
    watched: RwLock<BTreeMap<(String, String), Store<DynamicObject>>>,
    /// One lock per child kind, held while its watch starts, so one kind
    /// is never watched twice; other kinds start meanwhile. One per kind
    /// discovery resolved.
    starting: Mutex<HashMap<(String, String), Gate>>,
    /// How long the first list of a new watch may take (30 s).
    ready_timeout: Duration,
    /// Watch tasks running.
    live: Arc<AtomicUsize>,
}

/// Held while the watch of one kind starts.
type Gate = Arc<tokio::sync::Mutex<()>>;

/// Aborts a task when dropped, unless disarmed.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl AbortOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Counts a running watch task while it lives (also when it is aborted).
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ChildWatches {
    pub(super) fn new(
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
            starting: Mutex::new(HashMap::new()),
            ready_timeout: Duration::from_secs(30),
            live: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Watches `api_version`/`kind` if not yet; true when the watch is new.
    pub(super) async fn ensure(
        &self,
        kinds: &Kinds,
        api_version: &str,
        kind: &str,
    ) -> Result<bool, WatchError> {
        let key = (api_version.to_string(), kind.to_string());
        if self.watched.read().expect("watch lock").contains_key(&key) {
            return Ok(false);
        }
        let child = kinds.resolve(&self.client, api_version, kind).await?;
        let gate = self
            .starting
            .lock()
            .expect("starting lock")
            .entry(key.clone())
            .or_default()
            .clone();
        let _starting = gate.lock().await;
        if self.watched.read().expect("watch lock").contains_key(&key) {
            return Ok(false);
        }
        self.watch(key, child).await
    }

    /// Starts the watch of `child` (`key` is its apiVersion and kind) and
    /// waits for its first list; stops it again when that fails (or this
    /// future is dropped), so a retry never leaves a watch behind.
    async fn watch(&self, key: (String, String), child: Kind) -> Result<bool, WatchError> {
        let (api_version, kind) = (key.0.as_str(), key.1.as_str());
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &child.resource);
        let writer = reflector::store::Writer::new(child.resource.clone());
        let store = writer.as_reader();
        let config = watcher::Config::default().labels(COMPOSITE_NAME_LABEL);
        let owner = self.owner.clone();
        let trigger = self.trigger.clone();
        let cancel = self.cancel.clone();
        let stream = watcher(api, config).default_backoff().reflect(writer);
        let live = Live::new(&self.live);
        let task = tokio::spawn(async move {
            let _live = live;
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
        let task = AbortOnDrop(Some(task));
        tokio::time::timeout(self.ready_timeout, store.wait_until_ready())
            .await
            .map_err(|_| WatchError::ListTimedOut {
                api_version: api_version.into(),
                kind: kind.into(),
            })?
            .map_err(|source| WatchError::ListFailed {
                api_version: api_version.into(),
                kind: kind.into(),
                source,
            })?;
        // Listed: the watch runs until the controller stops.
        task.disarm();
        self.watched.write().expect("watch lock").insert(key, store);
        Ok(true)
    }

    /// Every watched object controlled by the composite with `uid`, as JSON
    /// without `managedFields`, ordered by [`ChildKey`].
    ///
    /// Objects the watch got from a list carry no `apiVersion` and `kind`
    /// (the list has them, not its items): they are given their watch's,
    /// so that a child listed when the watch starts (say, after a
    /// restart) has the same key as the desired one, and is neither
    /// pruned nor mistaken for a kind of its own.
    pub(super) fn owned_by(&self, uid: &str) -> Vec<Value> {
        let watched: Vec<((String, String), Store<DynamicObject>)> = self
            .watched
            .read()
            .expect("watch lock")
            .iter()
            .map(|(key, store)| (key.clone(), store.clone()))
            .collect();
        let mut owned = Vec::new();
        for ((api_version, kind), store) in watched {
            for object in store.state() {
                let is_owned = object
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.uid == uid && r.controller == Some(true));
                if is_owned {
                    let mut value = serde_json::to_value(object.as_ref()).unwrap_or(Value::Null);
                    if let Some(fields) = value.as_object_mut() {
                        fields
                            .entry("apiVersion")
                            .or_insert_with(|| Value::String(api_version.clone()));
                        fields
                            .entry("kind")
                            .or_insert_with(|| Value::String(kind.clone()));
                    }
                    if let Some(metadata) = value["metadata"].as_object_mut() {
                        metadata.remove("managedFields");
                    }
                    owned.push(value);
                }
            }
        }
        owned.sort_by_key(ChildKey::of);
        owned
    }
}

/// The composite of `owner`'s kind that controls `object`, if any.
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

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ApiResource;

    /// A kind whose first list never finishes: the API server cannot be
    /// reached (as when the controller may not list it, the watch retries).
    fn unlistable() -> ChildWatches {
        crate::install_crypto_provider();
        let config = kube::Config::new("http://127.0.0.1:1".parse().expect("URL"));
        let client = Client::try_from(config).expect("client");
        let (trigger, _) = mpsc::unbounded_channel();
        let owner = Kind {
            resource: ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
            namespaced: true,
        };
        let mut watches = ChildWatches::new(client, trigger, owner, CancellationToken::new());
        watches.ready_timeout = Duration::from_millis(200);
        watches
    }

    #[tokio::test]
    async fn a_listed_child_gets_its_watch_s_api_version_and_kind() {
        let watches = unlistable();
        let resource = ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&());
        let mut writer = reflector::store::Writer::new(resource.clone());
        // As in a list: an item with metadata only, no apiVersion or kind.
        let listed: DynamicObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db-config", "namespace": "shop", "uid": "child",
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "db",
                    "uid": "owner", "controller": true}]},
            "data": {"a": "b"},
        }))
        .expect("an object");
        assert!(listed.types.is_none());
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(listed),
            watcher::Event::InitDone,
        ] {
            writer.apply_watcher_event(&event);
        }
        watches
            .watched
            .write()
            .expect("watch lock")
            .insert(("v1".into(), "ConfigMap".into()), writer.as_reader());
        let owned = watches.owned_by("owner");
        assert_eq!(owned.len(), 1);
        assert_eq!(owned[0]["apiVersion"], "v1");
        assert_eq!(owned[0]["kind"], "ConfigMap");
        assert_eq!(
            ChildKey::of(&owned[0]).reference(),
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "db-config",
                "namespace": "shop"})
        );
        assert!(watches.owned_by("someone else").is_empty());
    }

    #[tokio::test]
    async fn a_watch_that_never_lists_is_stopped() {
        let watches = unlistable();
        let child = Kind {
            resource: ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&()),
            namespaced: true,
        };
        for _ in 0..3 {
            let key = ("v1".to_string(), "Secret".to_string());
            let error = watches.watch(key, child.clone()).await.unwrap_err();
            assert!(matches!(error, WatchError::ListTimedOut { .. }), "{error}");
        }
        // An aborted task is dropped when the runtime next sees it.
        for _ in 0..50 {
            if watches.live.load(Ordering::SeqCst) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(watches.live.load(Ordering::SeqCst), 0, "watch tasks left");
        assert!(watches.watched.read().expect("watch lock").is_empty());
    }
}
