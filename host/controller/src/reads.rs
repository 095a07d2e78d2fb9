//! Reads plugins make through the host (`get-resource`, `list-resources`),
//! within what their binding's `reads` allow, answered from watch caches.
//!
//! [`Reads`] keeps one cache per (apiVersion, kind, namespace or all of
//! them): a kube-rs reflector started the first time a binding needs it,
//! shared by every binding that reads the same, and never stopped while the
//! process runs. A reconcile waits for a new cache's first list (at most
//! [`READY_TIMEOUT`]); a kind the controller cannot list or watch fails the
//! reconcile with `ReadsUnavailable` (retried with the composite's backoff)
//! instead of hanging, and the cache is dropped so the retry starts afresh.
//! The plugin's calls are answered synchronously from the caches
//! ([`ReadView`]), never by a request to the API server.
//!
//! Policies read from the same caches (in the webhook and on a
//! Composition's children): an admission request waits for a new cache
//! only within the webhook's budget, the cache starting on meanwhile, and
//! a policy that could not wait fails naming the kind ([`Reads::waiting`]).
//!
//! Memory is bounded: a cache holding more than [`MAX_OBJECTS_PER_CACHE`]
//! objects is dropped and its reads fail with `ReadsUnavailable`; at most
//! [`MAX_CACHES`] caches run at once; `managedFields` are stripped from
//! every cached object.
//!
//! Each expansion's reads are recorded ([`ReadView::take_reads`]) and kept
//! per composite ([`Reads::depend`]); a change of an object one of them
//! read (or of the kind in a namespace it listed) triggers that composite
//! again, so its children follow what it read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, TypeMeta};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tessera_runtime::{ReadRule, ResourceSource};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::kinds::Kinds;

/// How long a new cache's first list may take.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The most objects one cache holds; past it the cache is dropped and its
/// reads fail (`ReadsUnavailable`). Narrow the rule's namespaces instead.
pub const MAX_OBJECTS_PER_CACHE: usize = 10_000;
/// The most caches the controller runs at once.
pub const MAX_CACHES: usize = 256;

/// Why the reads of a binding cannot be served.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot read {api_version} {kind} {place}: {reason}")]
pub struct ReadsError {
    /// The kind's apiVersion.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// `in namespace x` or `in all namespaces`.
    pub place: String,
    /// What went wrong, one line.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    api_version: String,
    kind: String,
    /// `None`: every namespace (and cluster-scoped objects).
    namespace: Option<String>,
}

impl CacheKey {
    fn place(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("in namespace {namespace}"),
            None => "in all namespaces".into(),
        }
    }

    fn error(&self, reason: impl Into<String>) -> ReadsError {
        ReadsError {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            place: self.place(),
            reason: crate::policies::one_line(&reason.into()),
        }
    }
}

/// One running reflector.
struct Cache {
    resource: ApiResource,
    store: Store<DynamicObject>,
    /// Set when the cache must not be used: the last watch error before the
    /// first list, or the object bound.
    failed: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A read one expansion made.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Read {
    Get {
        key: CacheKey,
        namespace: Option<String>,
        name: String,
    },
    List {
        key: CacheKey,
        namespace: Option<String>,
    },
}

impl Read {
    fn covers(&self, key: &CacheKey, object: &DynamicObject) -> bool {
        let same_kind = |k: &CacheKey| k.api_version == key.api_version && k.kind == key.kind;
        match self {
            Read::Get {
                key: k,
                namespace,
                name,
            } => {
                same_kind(k)
                    && object.metadata.namespace == *namespace
                    && object.metadata.name.as_deref() == Some(name)
            }
            Read::List { key: k, namespace } => {
                same_kind(k)
                    && namespace
                        .as_ref()
                        .is_none_or(|n| object.metadata.namespace.as_ref() == Some(n))
            }
        }
    }
}

/// The composites that read something, with what they read.
type Dependents = Arc<Mutex<HashMap<ObjectRef<DynamicObject>, Dependent>>>;

struct Dependent {
    trigger: mpsc::UnboundedSender<ObjectRef<DynamicObject>>,
    reads: Vec<Read>,
}

/// The shared read caches and who read what.
pub struct Reads {
    client: Client,
    caches: Mutex<HashMap<CacheKey, Arc<Cache>>>,
    /// One lock per cache key, held while its cache starts.
    starting: Mutex<HashMap<CacheKey, Arc<tokio::sync::Mutex<()>>>>,
    /// The failure slots of caches still waiting for their first list: what
    /// a read that cannot wait for them reports.
    pending: Mutex<HashMap<CacheKey, Arc<Mutex<Option<String>>>>>,
    dependents: Dependents,
    cancel: CancellationToken,
    ready_timeout: Duration,
}

impl std::fmt::Debug for Reads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reads")
            .field("caches", &self.caches.lock().map(|c| c.len()).unwrap_or(0))
            .finish_non_exhaustive()
    }
}

impl Reads {
    /// No caches yet; each stops when `cancel` is cancelled.
    pub fn new(client: Client, cancel: CancellationToken) -> Self {
        Reads {
            client,
            caches: Mutex::new(HashMap::new()),
            starting: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            dependents: Arc::new(Mutex::new(HashMap::new())),
            cancel,
            ready_timeout: READY_TIMEOUT,
        }
    }

    /// The caches `rules` need for a binding whose home namespace is
    /// `home`, started (and listed) when not yet: a view the plugin's reads
    /// are answered from.
    pub async fn view(
        &self,
        kinds: &Kinds,
        rules: &[ReadRule],
        home: Option<&str>,
    ) -> Result<ReadView, ReadsError> {
        let mut caches = Vec::new();
        for rule in rules {
            let kind = kinds
                .resolve(&self.client, &rule.api_version, &rule.kind)
                .await
                .map_err(|e| ReadsError {
                    api_version: rule.api_version.clone(),
                    kind: rule.kind.clone(),
                    place: "at all".into(),
                    reason: crate::policies::one_line(&e.to_string()),
                })?;
            let namespaces: Vec<Option<String>> = match rule.scope(home) {
                None => vec![None],
                // A cluster-scoped kind has no objects in a namespace.
                Some(_) if !kind.namespaced => Vec::new(),
                Some(named) => named.into_iter().map(Some).collect(),
            };
            for namespace in namespaces {
                let key = CacheKey {
                    api_version: rule.api_version.clone(),
                    kind: rule.kind.clone(),
                    namespace,
                };
                if caches.iter().any(|(k, _): &(CacheKey, _)| *k == key) {
                    continue;
                }
                let cache = self.ensure(&key, &kind.resource).await?;
                caches.push((key, cache));
            }
        }
        Ok(ReadView {
            caches,
            log: Mutex::new(Vec::new()),
        })
    }

    /// Why `rules` cannot be read for `home` yet: the first cache they
    /// need that is not ready, with the last error of its watch if it had
    /// one. What a read that could not wait for its caches reports.
    pub fn waiting(&self, rules: &[ReadRule], home: Option<&str>) -> ReadsError {
        let keys: Vec<CacheKey> = rules
            .iter()
            .flat_map(|rule| {
                let namespaces: Vec<Option<String>> = match rule.scope(home) {
                    None => vec![None],
                    Some(named) => named.into_iter().map(Some).collect(),
                };
                namespaces.into_iter().map(|namespace| CacheKey {
                    api_version: rule.api_version.clone(),
                    kind: rule.kind.clone(),
                    namespace,
                })
            })
            .collect();
        let caches = self.caches.lock().expect("caches lock");
        let Some(key) = keys
            .iter()
            .find(|k| !caches.contains_key(k))
            .or(keys.first())
        else {
            return ReadsError {
                api_version: String::new(),
                kind: String::new(),
                place: "the cluster".into(),
                reason: "no read rules".into(),
            };
        };
        let last = self
            .pending
            .lock()
            .expect("pending lock")
            .get(key)
            .and_then(|failed| failed.lock().expect("failed lock").clone());
        key.error(match last {
            Some(error) => format!("its cache was not ready in time; the watch says: {error}"),
            None => "its cache was not ready in time".into(),
        })
    }

    /// The running cache of `key`, started when there is none.
    async fn ensure(
        &self,
        key: &CacheKey,
        resource: &ApiResource,
    ) -> Result<Arc<Cache>, ReadsError> {
        if let Some(cache) = self.usable(key)? {
            return Ok(cache);
        }
        let gate = self
            .starting
            .lock()
            .expect("starting lock")
            .entry(key.clone())
            .or_default()
            .clone();
        let _starting = gate.lock().await;
        if let Some(cache) = self.usable(key)? {
            return Ok(cache);
        }
        if self.caches.lock().expect("caches lock").len() >= MAX_CACHES {
            return Err(key.error(format!(
                "the controller already runs {MAX_CACHES} read caches"
            )));
        }
        let cache = Arc::new(self.start(key, resource));
        self.pending
            .lock()
            .expect("pending lock")
            .insert(key.clone(), cache.failed.clone());
        let ready = tokio::time::timeout(self.ready_timeout, cache.store.wait_until_ready()).await;
        self.pending.lock().expect("pending lock").remove(key);
        let failure = match ready {
            Ok(Ok(())) => None,
            Ok(Err(_)) => Some("the watch ended before its first list".to_string()),
            Err(_) => Some(
                cache
                    .failed
                    .lock()
                    .expect("failed lock")
                    .clone()
                    .unwrap_or_else(|| {
                        format!("no first list within {}s", self.ready_timeout.as_secs())
                    }),
            ),
        };
        if let Some(reason) = failure {
            // Dropping the cache stops its watch; a retry starts afresh.
            return Err(key.error(reason));
        }
        self.caches
            .lock()
            .expect("caches lock")
            .insert(key.clone(), cache.clone());
        Ok(cache)
    }

    /// The cache of `key` if running and usable; a failed one is dropped
    /// and its failure returned.
    fn usable(&self, key: &CacheKey) -> Result<Option<Arc<Cache>>, ReadsError> {
        let mut caches = self.caches.lock().expect("caches lock");
        let Some(cache) = caches.get(key) else {
            return Ok(None);
        };
        let failed = cache.failed.lock().expect("failed lock").clone();
        match failed {
            Some(reason) => {
                caches.remove(key);
                Err(key.error(reason))
            }
            None => Ok(Some(cache.clone())),
        }
    }

    /// Starts the reflector of `key`; each event triggers the composites
    /// that read the object.
    fn start(&self, key: &CacheKey, resource: &ApiResource) -> Cache {
        let api: Api<DynamicObject> = match &key.namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, resource),
            None => Api::all_with(self.client.clone(), resource),
        };
        let writer = reflector::store::Writer::new(resource.clone());
        let store = writer.as_reader();
        let types = TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        };
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(move |object: &mut DynamicObject| {
                object.metadata.managed_fields = None;
                // Listed items carry no apiVersion and kind: give them theirs.
                object.types = Some(types.clone());
            })
            .reflect(writer);
        let failed = Arc::new(Mutex::new(None));
        let task = {
            let key = key.clone();
            let failed = failed.clone();
            let store = store.clone();
            let dependents = self.dependents.clone();
            let cancel = self.cancel.clone();
            tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                let mut listed = false;
                loop {
                    let event = tokio::select! {
                        _ = cancel.cancelled() => break,
                        event = stream.next() => event,
                    };
                    let Some(event) = event else { break };
                    let object = match event {
                        Ok(
                            watcher::Event::Apply(o)
                            | watcher::Event::Delete(o)
                            | watcher::Event::InitApply(o),
                        ) => o,
                        Ok(watcher::Event::InitDone) => {
                            listed = true;
                            continue;
                        }
                        Ok(watcher::Event::Init) => continue,
                        Err(error) => {
                            tracing::debug!(%error, kind = key.kind, "read cache watch");
                            if !listed {
                                // What the first list's timeout reports.
                                *failed.lock().expect("failed lock") = Some(error.to_string());
                            }
                            continue;
                        }
                    };
                    if store.len() > MAX_OBJECTS_PER_CACHE {
                        *failed.lock().expect("failed lock") = Some(format!(
                            "more than {MAX_OBJECTS_PER_CACHE} objects; name fewer namespaces in reads"
                        ));
                        break;
                    }
                    let dependents = dependents.lock().expect("dependents lock");
                    for (composite, dependent) in dependents.iter() {
                        if dependent.reads.iter().any(|r| r.covers(&key, &object)) {
                            let _ = dependent.trigger.send(composite.clone());
                        }
                    }
                }
            })
        };
        Cache {
            resource: resource.clone(),
            store,
            failed,
            task,
        }
    }

    /// Records what `composite`'s last expansion read: a change of any of
    /// it sends `composite` on `trigger`. No reads: forgets the composite.
    pub fn depend(
        &self,
        composite: ObjectRef<DynamicObject>,
        trigger: mpsc::UnboundedSender<ObjectRef<DynamicObject>>,
        view: Option<&ReadView>,
    ) {
        let reads = view.map(ReadView::take_reads).unwrap_or_default();
        let mut dependents = self.dependents.lock().expect("dependents lock");
        if reads.is_empty() {
            dependents.remove(&composite);
        } else {
            dependents.insert(composite, Dependent { trigger, reads });
        }
    }

    /// Forgets a deleted composite.
    pub fn forget(&self, composite: &ObjectRef<DynamicObject>) {
        self.dependents
            .lock()
            .expect("dependents lock")
            .remove(composite);
    }
}

/// The caches one expansion may read, recording each read; what a binding's
/// `ReadAccess` reads from in the cluster.
pub struct ReadView {
    caches: Vec<(CacheKey, Arc<Cache>)>,
    log: Mutex<Vec<Read>>,
}

impl std::fmt::Debug for ReadView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadView")
            .field("caches", &self.caches.len())
            .finish_non_exhaustive()
    }
}

impl ReadView {
    /// The cache answering reads of this kind in `namespace` (`None`: all):
    /// its own namespace's, else the one of all namespaces.
    fn cache(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Option<&(CacheKey, Arc<Cache>)> {
        let of_kind = || {
            self.caches
                .iter()
                .filter(move |(k, _)| k.api_version == api_version && k.kind == kind)
        };
        of_kind()
            .find(|(k, _)| k.namespace.as_deref() == namespace && namespace.is_some())
            .or_else(|| of_kind().find(|(k, _)| k.namespace.is_none()))
    }

    fn record(&self, read: Read) {
        let mut log = self.log.lock().expect("read log lock");
        if !log.contains(&read) {
            log.push(read);
        }
    }

    /// The reads made so far, emptying the record.
    fn take_reads(&self) -> Vec<Read> {
        std::mem::take(&mut *self.log.lock().expect("read log lock"))
    }
}

fn to_json(object: &DynamicObject) -> Option<Value> {
    serde_json::to_value(object).ok()
}

impl ResourceSource for ReadView {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let (key, cache) = self.cache(api_version, kind, namespace)?;
        self.record(Read::Get {
            key: key.clone(),
            namespace: namespace.map(String::from),
            name: name.to_string(),
        });
        let mut reference = ObjectRef::new_with(name, cache.resource.clone());
        if let Some(namespace) = namespace {
            reference = reference.within(namespace);
        }
        let found = cache.store.get(&reference)?;
        // The store falls back to a cluster-scoped key: keep to the asked one.
        (found.metadata.namespace.as_deref() == namespace)
            .then(|| to_json(&found))
            .flatten()
    }

    fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some((key, cache)) = self.cache(api_version, kind, namespace) else {
            return Vec::new();
        };
        self.record(Read::List {
            key: key.clone(),
            namespace: namespace.map(String::from),
        });
        let mut objects: Vec<Arc<DynamicObject>> = cache
            .store
            .state_filter(|o| namespace.is_none_or(|n| o.metadata.namespace.as_deref() == Some(n)));
        // In a stable order, as offline: by namespace, then name.
        objects.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        objects.iter().filter_map(|o| to_json(o)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(namespace: Option<&str>) -> CacheKey {
        CacheKey {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: namespace.map(String::from),
        }
    }

    fn object(namespace: &str, name: &str) -> DynamicObject {
        let resource = ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&());
        DynamicObject::new(name, &resource).within(namespace)
    }

    #[test]
    fn a_change_triggers_the_reads_that_saw_or_listed_it() {
        let get = Read::Get {
            key: key(Some("shop")),
            namespace: Some("shop".into()),
            name: "defaults".into(),
        };
        assert!(get.covers(&key(Some("shop")), &object("shop", "defaults")));
        // The same object seen through the cache of all namespaces.
        assert!(get.covers(&key(None), &object("shop", "defaults")));
        assert!(!get.covers(&key(Some("shop")), &object("shop", "other")));
        assert!(!get.covers(&key(Some("x")), &object("x", "defaults")));
        let secret = CacheKey {
            kind: "Secret".into(),
            ..key(Some("shop"))
        };
        assert!(!get.covers(&secret, &object("shop", "defaults")));

        let list = Read::List {
            key: key(Some("shop")),
            namespace: Some("shop".into()),
        };
        assert!(list.covers(&key(Some("shop")), &object("shop", "anything")));
        assert!(!list.covers(&key(None), &object("elsewhere", "anything")));
        let everywhere = Read::List {
            key: key(None),
            namespace: None,
        };
        assert!(everywhere.covers(&key(None), &object("elsewhere", "anything")));
    }

    #[test]
    fn errors_name_the_kind_and_place() {
        assert_eq!(
            key(None).error("no first list\nwithin 10s").to_string(),
            "cannot read v1 ConfigMap in all namespaces: no first list | within 10s"
        );
    }
}
