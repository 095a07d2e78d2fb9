//! Reads plugins make through the host (`get-resource`, `list-resources`),
//! within what their binding's `reads` allow, answered from watch caches.
//!
//! [`Reads`] keeps one cache per (apiVersion, kind, namespace or all of
//! them): a kube-rs reflector started the first time a binding needs it,
//! shared by every binding that reads the same. A reconcile waits for a new cache's first list (at most
//! [`READY_TIMEOUT`]); a kind the controller cannot list or watch fails the
//! reconcile with `ReadsUnavailable` (retried with the composite's backoff)
//! instead of hanging, and the cache is dropped so a retry after
//! [`FAILED_START_TTL`] starts afresh.
//! The plugin's calls are answered synchronously from the caches
//! ([`ReadView`]), never by a request to the API server.
//!
//! Policies read from the same caches (in the webhook and on a
//! Composition's children): an admission request waits for a new cache
//! only within the webhook's budget, the cache starting on meanwhile, and
//! a policy that could not wait fails naming the kind ([`Reads::waiting`]).
//!
//! Memory is bounded: a cache holding more than [`MAX_OBJECTS_PER_CACHE`]
//! objects (its first list counted as it comes, before the list is done)
//! is dropped and its reads fail with `ReadsUnavailable`; at most
//! [`MAX_CACHES`] caches run at once; `managedFields` are stripped from
//! every cached object. A new cache past [`MAX_CACHES`] makes room by
//! stopping idle caches (no [`ReadView`] holds them), least recently used
//! first, those no recorded read points at before the others; it fails
//! only when every cache is in use.
//!
//! Each expansion's reads are recorded ([`ReadView::take_reads`]) and kept
//! per composite ([`Reads::depend`]); a change of an object one of them
//! read (or of the kind in a namespace it listed) triggers that composite
//! again, so its children follow what it read.
//!
//! Starts are shared: the reads waiting for the same new cache wait for one
//! start, and a start that failed is remembered for [`FAILED_START_TTL`],
//! its reads failing at once meanwhile with the same reason.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
/// How long a failed start of a cache is remembered: its reads fail at
/// once with the same reason meanwhile, instead of each starting it again.
pub const FAILED_START_TTL: Duration = Duration::from_secs(5);

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
    /// Set when the cache must not be used: the object bound was passed.
    failed: Arc<Mutex<Option<String>>>,
    /// The last watch error before the first list: what a start that timed
    /// out reports.
    last_error: Arc<Mutex<Option<String>>>,
    /// When a view last took this cache: the least recently used idle
    /// cache is stopped first to make room.
    last_used: Mutex<Instant>,
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
    /// Starts that failed lately, with when and why: answered at once until
    /// [`FAILED_START_TTL`] has passed.
    failures: Mutex<HashMap<CacheKey, (Instant, ReadsError)>>,
    dependents: Dependents,
    cancel: CancellationToken,
    ready_timeout: Duration,
    /// The most objects one cache holds.
    max_objects: usize,
    /// The most caches running at once.
    max_caches: usize,
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
        Self::with_limits(client, cancel, MAX_OBJECTS_PER_CACHE, MAX_CACHES)
    }

    /// As [`Reads::new`], each cache holding at most `max_objects`, and at
    /// most `max_caches` caches running at once.
    pub fn with_limits(
        client: Client,
        cancel: CancellationToken,
        max_objects: usize,
        max_caches: usize,
    ) -> Self {
        Reads {
            client,
            caches: Mutex::new(HashMap::new()),
            starting: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            dependents: Arc::new(Mutex::new(HashMap::new())),
            cancel,
            ready_timeout: READY_TIMEOUT,
            max_objects,
            max_caches,
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
        if last.is_none()
            && let Some(error) = self.recent_failure(key)
        {
            return error;
        }
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
        if let Some(error) = self.recent_failure(key) {
            return Err(error);
        }
        let gate = self
            .starting
            .lock()
            .expect("starting lock")
            .entry(key.clone())
            .or_default()
            .clone();
        // Waiting here joins the start under way: its cache, or its failure.
        let _starting = gate.lock().await;
        if let Some(cache) = self.usable(key)? {
            return Ok(cache);
        }
        if let Some(error) = self.recent_failure(key) {
            return Err(error);
        }
        if !self.make_room() {
            return Err(key.error(format!(
                "the controller already runs {} read caches, all in use",
                self.max_caches
            )));
        }
        let cache = Arc::new(self.start(key, resource));
        self.pending
            .lock()
            .expect("pending lock")
            .insert(key.clone(), cache.last_error.clone());
        let ready = tokio::time::timeout(self.ready_timeout, cache.store.wait_until_ready()).await;
        self.pending.lock().expect("pending lock").remove(key);
        let bound = cache.failed.lock().expect("failed lock").clone();
        let last_error = || cache.last_error.lock().expect("last error lock").clone();
        let failure = match ready {
            // Past the bound (its first list, or since): not usable.
            Ok(Ok(())) => bound,
            Ok(Err(_)) => Some(
                bound
                    .or_else(last_error)
                    .unwrap_or_else(|| "the watch ended before its first list".into()),
            ),
            Err(_) => Some(bound.or_else(last_error).unwrap_or_else(|| {
                format!("no first list within {}s", self.ready_timeout.as_secs())
            })),
        };
        if let Some(reason) = failure {
            // Dropping the cache stops its watch; a start after
            // FAILED_START_TTL starts afresh.
            let error = key.error(reason);
            self.remember(key, &error);
            return Err(error);
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
        let error = {
            let mut caches = self.caches.lock().expect("caches lock");
            let Some(cache) = caches.get(key) else {
                return Ok(None);
            };
            let failed = cache.failed.lock().expect("failed lock").clone();
            match failed {
                Some(reason) => {
                    caches.remove(key);
                    key.error(reason)
                }
                None => {
                    *cache.last_used.lock().expect("last used lock") = Instant::now();
                    return Ok(Some(cache.clone()));
                }
            }
        };
        self.remember(key, &error);
        Err(error)
    }

    /// Whether a new cache may start: below the cap, or once idle caches
    /// were stopped to get below it. Idle: only the registry holds it (no
    /// view, no start under way). Those no composite's recorded reads point
    /// at go first, least recently used first; then the others, also least
    /// recently used first. Trade-off: a composite whose read cache was
    /// stopped is not triggered by changes of what it read until its next
    /// expansion, which starts the cache again (its first list triggering
    /// the composite once more); failing every new read until a restart
    /// would be worse.
    fn make_room(&self) -> bool {
        let mut caches = self.caches.lock().expect("caches lock");
        if caches.len() < self.max_caches {
            return true;
        }
        let recorded: Vec<CacheKey> = {
            let dependents = self.dependents.lock().expect("dependents lock");
            dependents
                .values()
                .flat_map(|d| d.reads.iter())
                .map(|read| match read {
                    Read::Get { key, .. } | Read::List { key, .. } => key.clone(),
                })
                .collect()
        };
        // Under the caches lock no view can take an idle cache meanwhile.
        let mut idle: Vec<(bool, Instant, CacheKey)> = caches
            .iter()
            .filter(|(_, cache)| Arc::strong_count(cache) == 1)
            .map(|(key, cache)| {
                let used = *cache.last_used.lock().expect("last used lock");
                (recorded.contains(key), used, key.clone())
            })
            .collect();
        idle.sort_by_key(|a| (a.0, a.1));
        let excess = caches.len() + 1 - self.max_caches;
        if idle.len() < excess {
            return false;
        }
        for (_, _, key) in idle.into_iter().take(excess) {
            tracing::debug!(
                kind = key.kind,
                place = key.place(),
                "stopping an idle read cache"
            );
            // Dropping the last Arc aborts its watch.
            caches.remove(&key);
        }
        true
    }

    /// The failure of `key`'s last start, if within [`FAILED_START_TTL`].
    fn recent_failure(&self, key: &CacheKey) -> Option<ReadsError> {
        let mut failures = self.failures.lock().expect("failures lock");
        let now = Instant::now();
        failures.retain(|_, (at, _)| now.duration_since(*at) < FAILED_START_TTL);
        failures.get(key).map(|(_, error)| error.clone())
    }

    /// Remembers that `key` failed with `error`, for [`FAILED_START_TTL`].
    fn remember(&self, key: &CacheKey, error: &ReadsError) {
        self.failures
            .lock()
            .expect("failures lock")
            .insert(key.clone(), (Instant::now(), error.clone()));
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
        let last_error = Arc::new(Mutex::new(None));
        let max_objects = self.max_objects;
        let task = {
            let key = key.clone();
            let failed = failed.clone();
            let last_error = last_error.clone();
            let store = store.clone();
            let dependents = self.dependents.clone();
            let cancel = self.cancel.clone();
            tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                let mut listed = false;
                // Objects of the list under way: the writer keeps them
                // aside until the list is done, out of `store.len()`.
                let mut listing = 0usize;
                let past_bound = || {
                    *failed.lock().expect("failed lock") = Some(format!(
                        "more than {max_objects} objects; name fewer namespaces in reads"
                    ));
                };
                loop {
                    let event = tokio::select! {
                        _ = cancel.cancelled() => break,
                        event = stream.next() => event,
                    };
                    let Some(event) = event else { break };
                    let object = match event {
                        Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => {
                            if store.len() > max_objects {
                                past_bound();
                                break;
                            }
                            o
                        }
                        Ok(watcher::Event::InitApply(o)) => {
                            listing += 1;
                            if listing > max_objects {
                                // Stopping drops what was listed so far.
                                past_bound();
                                break;
                            }
                            o
                        }
                        Ok(watcher::Event::InitDone) => {
                            listed = true;
                            continue;
                        }
                        Ok(watcher::Event::Init) => {
                            listing = 0;
                            continue;
                        }
                        Err(error) => {
                            tracing::debug!(%error, kind = key.kind, "read cache watch");
                            if !listed {
                                // What the first list's timeout reports.
                                *last_error.lock().expect("last error lock") =
                                    Some(error.to_string());
                            }
                            continue;
                        }
                    };
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
            last_error,
            last_used: Mutex::new(Instant::now()),
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

    /// A fake API server answering every request with `status` and `body`,
    /// and a watch never; a client of it, and how many requests it answered.
    async fn fake_api(status: u16, body: String) -> (Client, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake API server");
        let address = listener.local_addr().expect("its address");
        let answered = Arc::new(AtomicUsize::new(0));
        let counted = answered.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (body, counted) = (body.clone(), counted.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&request).into_owned();
                    if head.lines().next().unwrap_or("").contains("watch=true") {
                        std::future::pending::<()>().await;
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let response = format!(
                        "HTTP/1.1 {status} Fake\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        let config = kube::Config::new(format!("http://{address}").parse().expect("url"));
        (Client::try_from(config).expect("client"), answered)
    }

    fn config_map() -> ApiResource {
        ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&())
    }

    #[tokio::test]
    async fn a_first_list_past_the_bound_fails_the_cache() {
        let items: Vec<Value> = (0..5)
            .map(|i| {
                serde_json::json!({
                    "metadata": {"name": format!("c{i}"), "namespace": "shop",
                                 "resourceVersion": "1"}
                })
            })
            .collect();
        let list = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMapList",
            "metadata": {"resourceVersion": "1"}, "items": items,
        });
        let (client, _) = fake_api(200, list.to_string()).await;
        let reads = Reads::with_limits(client, CancellationToken::new(), 3, MAX_CACHES);
        let error = reads
            .ensure(&key(Some("shop")), &config_map())
            .await
            .err()
            .expect("five objects are past a bound of three");
        assert!(error.reason.contains("more than 3 objects"), "{error}");
        // Within the bound, the same list is served.
        let (client, _) = fake_api(200, list.to_string()).await;
        let reads = Reads::with_limits(client, CancellationToken::new(), 5, MAX_CACHES);
        let cache = reads
            .ensure(&key(Some("shop")), &config_map())
            .await
            .expect("five objects are within a bound of five");
        assert_eq!(cache.store.len(), 5);
    }

    #[tokio::test]
    async fn a_failed_start_is_shared_and_remembered() {
        let forbidden = serde_json::json!({
            "apiVersion": "v1", "kind": "Status", "status": "Failure",
            "reason": "Forbidden", "code": 403,
            "message": "configmaps is forbidden: cannot list",
        });
        let (client, answered) = fake_api(403, forbidden.to_string()).await;
        let mut reads = Reads::new(client, CancellationToken::new());
        reads.ready_timeout = Duration::from_millis(500);
        let reads = Arc::new(reads);
        let started = Instant::now();
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let reads = reads.clone();
                tokio::spawn(async move { reads.ensure(&key(Some("shop")), &config_map()).await })
            })
            .collect();
        for waiter in waiters {
            let error = waiter.await.expect("joined").err().expect("forbidden");
            assert!(error.reason.contains("forbidden"), "{error}");
        }
        // One start, not eight one after another.
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
        let answered_once = answered.load(std::sync::atomic::Ordering::SeqCst);
        let again = Instant::now();
        let error = reads
            .ensure(&key(Some("shop")), &config_map())
            .await
            .err()
            .expect("still forbidden");
        assert!(error.reason.contains("forbidden"), "{error}");
        assert!(
            again.elapsed() < Duration::from_millis(100),
            "{:?}",
            again.elapsed()
        );
        assert_eq!(
            reads
                .waiting(&[ReadRule::new("v1", "ConfigMap")], Some("shop"))
                .reason,
            error.reason
        );
        // Answered from memory: no new start asked the server.
        assert_eq!(
            answered.load(std::sync::atomic::Ordering::SeqCst),
            answered_once
        );
    }

    #[tokio::test]
    async fn idle_caches_make_room_least_recently_used_first() {
        let empty = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMapList",
            "metadata": {"resourceVersion": "1"}, "items": [],
        });
        let (client, _) = fake_api(200, empty.to_string()).await;
        let reads = Reads::with_limits(client, CancellationToken::new(), MAX_OBJECTS_PER_CACHE, 2);
        let a = reads
            .ensure(&key(Some("a")), &config_map())
            .await
            .expect("a");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let b = reads
            .ensure(&key(Some("b")), &config_map())
            .await
            .expect("b");
        // Held by views: no room for a third.
        let error = reads
            .ensure(&key(Some("c")), &config_map())
            .await
            .err()
            .expect("both caches are in use");
        assert!(
            error.reason.contains("already runs 2 read caches"),
            "{error}"
        );
        drop((a, b));
        // `a` used again: `b` is now the least recently used.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let a = reads
            .ensure(&key(Some("a")), &config_map())
            .await
            .expect("a again");
        drop(a);
        let c = reads
            .ensure(&key(Some("c")), &config_map())
            .await
            .expect("an idle cache makes room");
        {
            let caches = reads.caches.lock().expect("caches lock");
            assert_eq!(caches.len(), 2);
            assert!(caches.contains_key(&key(Some("a"))));
            assert!(caches.contains_key(&key(Some("c"))));
        }
        // With `c` held and `a` idle, `b` evicts `a`.
        let b = reads
            .ensure(&key(Some("b")), &config_map())
            .await
            .expect("b again");
        let error = reads
            .ensure(&key(Some("d")), &config_map())
            .await
            .err()
            .expect("b and c are in use");
        assert!(error.reason.contains("all in use"), "{error}");
        drop((b, c));
    }

    #[tokio::test]
    async fn caches_with_recorded_readers_are_stopped_last() {
        let empty = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMapList",
            "metadata": {"resourceVersion": "1"}, "items": [],
        });
        let (client, _) = fake_api(200, empty.to_string()).await;
        let reads = Reads::with_limits(client, CancellationToken::new(), MAX_OBJECTS_PER_CACHE, 2);
        drop(
            reads
                .ensure(&key(Some("a")), &config_map())
                .await
                .expect("a"),
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(
            reads
                .ensure(&key(Some("b")), &config_map())
                .await
                .expect("b"),
        );
        // A composite read from `a`, the least recently used.
        let (trigger, _triggered) = mpsc::unbounded_channel();
        reads.dependents.lock().expect("dependents lock").insert(
            ObjectRef::new_with("x", config_map()).within("a"),
            Dependent {
                trigger,
                reads: vec![Read::List {
                    key: key(Some("a")),
                    namespace: Some("a".into()),
                }],
            },
        );
        drop(
            reads
                .ensure(&key(Some("c")), &config_map())
                .await
                .expect("c"),
        );
        let caches = reads.caches.lock().expect("caches lock");
        assert!(caches.contains_key(&key(Some("a"))));
        assert!(!caches.contains_key(&key(Some("b"))));
    }
}
