//! The child watches a kind controller keeps: one per child kind, restricted
//! to objects carrying the `tessera.dev/composite-name` label. An event on a
//! child triggers its controlling composite ([`controlling_owner`]); the
//! stores are what [`observe`](super::observe) and
//! [`expand`](super::expand) read the observed children from.

use std::collections::BTreeMap;
use std::sync::RwLock;
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
    /// Held while a new watch starts, so one kind is never watched twice.
    starting: tokio::sync::Mutex<()>,
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
            starting: tokio::sync::Mutex::new(()),
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
            .map_err(|_| WatchError::ListTimedOut {
                api_version: api_version.into(),
                kind: kind.into(),
            })?
            .map_err(|source| WatchError::ListFailed {
                api_version: api_version.into(),
                kind: kind.into(),
                source,
            })?;
        self.watched.write().expect("watch lock").insert(key, store);
        Ok(true)
    }

    /// Every watched object controlled by the composite with `uid`, as JSON
    /// without `managedFields`, ordered by [`ChildKey`].
    pub(super) fn owned_by(&self, uid: &str) -> Vec<Value> {
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
