//! Loading plugins named by a [`PluginSource`]: from an OCI registry
//! (verified against the trust policy before anything is compiled), a file
//! or a URL (checked against the expected sha256); compiled once per digest
//! and activated only when the plugin's bundled self-test passes.
//!
//! A source that names a plugin which cannot be activated (the registry is
//! down, the signature does not verify, the self-test fails) leaves the
//! plugin that was serving for that object in place: [`PluginLoader::load`]
//! returns it with the refusal ([`Active::refused`]), so a failure changes
//! nothing that was working.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use sha2::{Digest, Sha256};
use tessera_oci::{Reference, RegistryOptions, Store, TrustPolicy};
use tessera_runtime::{LimitsSpec, Plugin, PluginId, Runtime, World};

use crate::crd::PluginSource;

/// The largest plugin the controller downloads or reads.
pub const MAX_PLUGIN_BYTES: usize = 64 << 20;

/// Why the plugin a [`PluginSource`] names could not be loaded. Each message
/// is one line naming the field (`plugin.path`, `plugin.url`,
/// `plugin.sha256`).
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// `plugin.sha256` is not 64 hex digits.
    #[error(
        "plugin.sha256: expected 64 hex digits (optionally prefixed with sha256:), got {text:?}"
    )]
    Sha256Format {
        /// What `plugin.sha256` holds.
        text: String,
    },
    /// `plugin.url` without `plugin.sha256`.
    #[error("plugin.sha256 is required with plugin.url")]
    Sha256Required,
    /// None of `plugin.oci`, `plugin.path` and `plugin.url`.
    #[error("plugin: set one of oci, path or url")]
    NoSource,
    /// More than one of `plugin.oci`, `plugin.path` and `plugin.url`.
    #[error("plugin: set only one of oci, path or url")]
    TwoSources,
    /// A field that only goes with another source (`pullSecrets` and
    /// `verify` with `oci`, `suite` with `path`, `sha256` not with `oci`).
    #[error("plugin.{field}: {message}")]
    Misplaced {
        /// The field.
        field: &'static str,
        /// Which source it goes with.
        message: &'static str,
    },
    /// `plugin.verify` or the cluster-wide trust policy is invalid.
    #[error("{0}")]
    TrustPolicy(#[source] tessera_oci::Error),
    /// A `plugin.pullSecrets` entry could not be used.
    #[error("plugin.pullSecrets[{index}]: Secret {namespace}/{name}: {message}")]
    PullSecret {
        /// The entry's index.
        index: usize,
        /// The controller's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// Why.
        message: String,
    },
    /// Resolving, pulling or verifying the OCI artifact failed (the message
    /// names the reference; for a signature, which key failed).
    #[error("plugin.oci: {0}")]
    Oci(#[source] tessera_oci::Error),
    /// The plugin's bundled self-test failed: it is not activated.
    #[error("{plugin}: self-test failed: {message}")]
    SelfTestFailed {
        /// The plugin: its pinned reference or path.
        plugin: String,
        /// Which case failed and how (or why the suite could not run).
        message: String,
    },
    /// The bytes do not have the expected digest.
    #[error("plugin.sha256: expected {expected}, but {origin} has sha256 {digest}")]
    DigestMismatch {
        /// The lowercase hex digest `plugin.sha256` names.
        expected: String,
        /// The path or URL the bytes came from.
        origin: String,
        /// The lowercase hex digest of the bytes.
        digest: String,
    },
    /// `plugin.path` could not be read.
    #[error("plugin.path: {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// The file at `plugin.path` is larger than [`MAX_PLUGIN_BYTES`].
    #[error("plugin.path: {path} is larger than {} MiB", MAX_PLUGIN_BYTES >> 20)]
    FileTooLarge {
        /// The file.
        path: String,
    },
    /// `plugin.url` is neither http nor https.
    #[error("plugin.url: only http and https URLs are supported, got {url:?}")]
    UnsupportedUrl {
        /// The URL.
        url: String,
    },
    /// Downloading `plugin.url` failed.
    #[error("plugin.url: fetching {url}: {source}")]
    Fetch {
        /// The URL.
        url: String,
        /// What the HTTP client said.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered `plugin.url` with an error status.
    #[error("plugin.url: fetching {url}: HTTP {status}")]
    HttpStatus {
        /// The URL.
        url: String,
        /// The status it answered with.
        status: reqwest::StatusCode,
    },
    /// The download is larger than [`MAX_PLUGIN_BYTES`].
    #[error("plugin.url: {url} is larger than {} MiB", MAX_PLUGIN_BYTES >> 20)]
    DownloadTooLarge {
        /// The URL.
        url: String,
    },
    /// The runtime refused the bytes (not a component, not a Tessera plugin,
    /// an incompatible artifact).
    #[error("{0}")]
    Compile(#[from] tessera_runtime::Error),
}

impl PluginError {
    /// The CamelCase reason of a condition saying the plugin was not
    /// activated: `SelfTestFailed`, `Untrusted` (signatures),
    /// `PullFailed` (the registry), or `PluginUnavailable`.
    pub fn reason(&self) -> &'static str {
        match self {
            PluginError::SelfTestFailed { .. } => "SelfTestFailed",
            PluginError::Oci(tessera_oci::Error::Untrusted { .. }) => "Untrusted",
            PluginError::Oci(_) | PluginError::PullSecret { .. } => "PullFailed",
            _ => "PluginUnavailable",
        }
    }
}

/// A plugin ready to bind, as [`PluginLoader::load`] returns it.
#[derive(Debug, Clone)]
pub struct Active {
    /// The plugin to serve.
    pub plugin: Plugin,
    /// For an `oci` plugin, its reference pinned to the manifest digest.
    pub reference: Option<String>,
    /// Set when the source names a newer plugin that was refused: why.
    /// `plugin` is then the one that was serving before.
    pub refused: Option<Arc<PluginError>>,
}

/// How the loader reaches registries: the options every pull uses, the
/// cluster-wide trust policy and the store of pulled artifacts.
#[derive(Debug, Clone, Default)]
pub struct OciOptions {
    /// TLS, plain-HTTP hosts, deadlines.
    pub registry: RegistryOptions,
    /// Required of every `oci` plugin, besides its own `verify`.
    pub trust_policy: Option<TrustPolicy>,
    /// Where pulled artifacts are kept by digest (none: memory only).
    pub store: Option<Store>,
    /// The controller's namespace, where `pullSecrets` are read.
    pub namespace: String,
}

/// Why a `Composition`'s or `Policy`'s plugin could not be bound to its
/// settings and limits.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The plugin could not be loaded.
    #[error("{0}")]
    Load(#[from] PluginError),
    /// The plugin implements the other world.
    #[error(
        "plugin {plugin} is a {world} plugin; a {} needs a {expected} plugin",
        owner_kind(*expected)
    )]
    WrongWorld {
        /// The plugin.
        plugin: PluginId,
        /// The world it implements.
        world: World,
        /// The world the object needs.
        expected: World,
    },
    /// `limits` did not parse; the message names the field.
    #[error(transparent)]
    Limits(#[from] tessera_runtime::LimitsError),
    /// The plugin refused the settings.
    #[error("settings: {0}")]
    Settings(#[source] tessera_runtime::Error),
    /// The source's plugin was refused, and the plugin that served before
    /// does not take the object's settings: the refusal is what to fix.
    #[error("{0}")]
    Refused(#[source] Arc<PluginError>),
    /// A `reads` entry is not valid; the message names it.
    #[error("{0}")]
    Reads(String),
}

/// The kind of object that needs a plugin of `world`.
fn owner_kind(world: World) -> &'static str {
    match world {
        World::Composition => "Composition",
        World::Policy => "Policy",
    }
}

/// Who loads plugins through a [`PluginLoader`], in passes over its objects
/// each ended by [`PluginLoader::end_pass`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum User {
    /// The `Composition` watch.
    Compositions,
    /// The `Policy` watch.
    Policies,
}

/// The loaded plugins by lowercase hex digest, and what keeps each loaded:
/// for each [`User`], the digests its last finished pass loaded and those
/// its pass under way has loaded so far.
#[derive(Debug)]
struct Loaded<P> {
    plugins: HashMap<String, P>,
    used: HashMap<User, HashSet<String>>,
    pending: HashMap<User, HashSet<String>>,
}

impl<P: Clone> Loaded<P> {
    fn new() -> Self {
        Loaded {
            plugins: HashMap::new(),
            used: HashMap::new(),
            pending: HashMap::new(),
        }
    }

    /// The plugin with `digest`, now used by `user`'s pass.
    fn get(&mut self, user: User, digest: &str) -> Option<P> {
        let plugin = self.plugins.get(digest).cloned()?;
        self.pending
            .entry(user)
            .or_default()
            .insert(digest.to_string());
        Some(plugin)
    }

    /// Keeps `plugin`, used by `user`'s pass.
    fn insert(&mut self, user: User, digest: String, plugin: P) {
        self.pending.entry(user).or_default().insert(digest.clone());
        self.plugins.insert(digest, plugin);
    }

    /// Ends `user`'s pass: it uses what the pass loaded. Drops every plugin
    /// no user uses and no pass under way loaded.
    fn end_pass(&mut self, user: User) {
        let loaded = self.pending.remove(&user).unwrap_or_default();
        self.used.insert(user, loaded);
        let Loaded {
            plugins,
            used,
            pending,
        } = self;
        plugins.retain(|digest, _| {
            used.values()
                .chain(pending.values())
                .any(|set| set.contains(digest))
        });
    }
}

/// The most self-test refusals remembered (by manifest digest), so that a
/// failing artifact is not tested again on every resync.
const MAX_REFUSED: usize = 256;

/// Reads, checks and compiles plugins; compiled plugins are kept by digest
/// (for `oci` plugins the manifest's, which covers the suite too), so a
/// composition that did not change costs a read and a hash (a plugin pinned
/// by URL and sha256 or by `oci` digest no fetch at all, an `oci` tag one
/// request), for as long as some binding uses them
/// ([`PluginLoader::end_pass`]).
pub struct PluginLoader {
    runtime: Runtime,
    http: reqwest::Client,
    oci: OciOptions,
    client: Option<kube::Client>,
    loaded: Mutex<Loaded<Plugin>>,
    /// The key of the plugin last activated for each object (`User`, name).
    serving: Mutex<HashMap<(User, String), Serving>>,
    /// `oci` manifests whose self-test failed, by digest.
    refused: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for PluginLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLoader")
            .field("oci", &self.oci)
            .finish_non_exhaustive()
    }
}

/// What serves an object: the loaded plugin's key and its pinned reference.
#[derive(Debug, Clone)]
struct Serving {
    key: String,
    reference: Option<String>,
}

/// A plugin fetched and checked, not yet activated.
struct Candidate {
    /// The key it is kept under: the manifest digest for `oci`, else the
    /// bytes' digest.
    key: String,
    /// Where it came from (a path, a URL, a pinned reference).
    origin: String,
    /// For `oci`, the pinned reference.
    reference: Option<String>,
    bytes: Vec<u8>,
    /// The self-test: a suite tar (from the artifact) or a directory.
    suite: Option<Suite>,
}

enum Suite {
    Tar(Vec<u8>),
    Dir(String),
}

impl PluginLoader {
    /// A loader compiling with `runtime` that pulls `oci` plugins with
    /// `oci`, reading pull secrets with `client`.
    pub fn with_registry(runtime: Runtime, oci: OciOptions, client: Option<kube::Client>) -> Self {
        PluginLoader {
            runtime,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("an HTTP client with default settings"),
            oci,
            client,
            loaded: Mutex::new(Loaded::new()),
            serving: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// Loads the plugin `source` names for the object `owner`, in a pass
    /// of `user`. A plugin not yet activated is compiled and self-tested
    /// first. When that fails and another plugin was serving `owner` (in
    /// this process, or `previous`: the `status.pluginRef` it had), that
    /// one is returned with the refusal; otherwise the error.
    pub async fn load(
        &self,
        user: User,
        owner: &str,
        source: &PluginSource,
        previous: Option<&str>,
    ) -> Result<Active, PluginError> {
        match self.activate(user, source).await {
            Ok((key, active)) => {
                self.serve(user, owner, key, &active);
                Ok(active)
            }
            Err(error) => match self.fallback(user, owner, source, previous).await {
                Some(active) => Ok(Active {
                    refused: Some(Arc::new(error)),
                    ..active
                }),
                None => Err(error),
            },
        }
    }

    /// What served `owner` before, when the source's plugin was refused:
    /// the plugin last activated for it in this process, else (after a
    /// restart) the pinned reference `previous` of its status, unless that
    /// is what was just refused; either only while it satisfies the trust
    /// policies the source names now.
    async fn fallback(
        &self,
        user: User,
        owner: &str,
        source: &PluginSource,
        previous: Option<&str>,
    ) -> Option<Active> {
        // An `oci` plugin that served must still satisfy the trust
        // policies as they are now (they may have been tightened): it is
        // verified again (from the store, without the network).
        let pinned = |reference: &str| PluginSource {
            oci: Some(reference.to_string()),
            pull_secrets: source.pull_secrets.clone(),
            verify: source.verify.clone(),
            ..PluginSource::default()
        };
        let serving = self.serving_lock().get(&(user, owner.to_string())).cloned();
        if let Some(serving) = serving {
            return match &serving.reference {
                Some(reference) => {
                    let (_, active) = self.activate(user, &pinned(reference)).await.ok()?;
                    Some(active)
                }
                None => Some(Active {
                    plugin: self.cached(user, &serving.key)?,
                    reference: None,
                    refused: None,
                }),
            };
        }
        let previous = previous?;
        let reference = Reference::parse(previous).ok()?;
        if reference.digest().is_none() || source.oci.as_deref() == Some(previous) {
            return None;
        }
        let (key, active) = self.activate(user, &pinned(previous)).await.ok()?;
        self.serve(user, owner, key, &active);
        Some(active)
    }

    /// Remembers that `active` (kept under `key`) serves `owner`.
    fn serve(&self, user: User, owner: &str, key: String, active: &Active) {
        self.serving_lock().insert(
            (user, owner.to_string()),
            Serving {
                key,
                reference: active.reference.clone(),
            },
        );
    }

    fn serving_lock(&self) -> std::sync::MutexGuard<'_, HashMap<(User, String), Serving>> {
        self.serving.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fetches, checks, compiles and self-tests the plugin `source` names;
    /// returns it with its key.
    async fn activate(
        &self,
        user: User,
        source: &PluginSource,
    ) -> Result<(String, Active), PluginError> {
        check_fields(source)?;
        let candidate = match self.fetch(user, source).await? {
            Fetch::Loaded(key, active) => return Ok((key, active)),
            Fetch::New(candidate) => candidate,
        };
        let known = self
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&candidate.key)
            .cloned();
        if let Some(message) = known {
            return Err(PluginError::SelfTestFailed {
                plugin: candidate.origin,
                message,
            });
        }
        let plugin = self
            .runtime
            .load(&candidate.bytes, Path::new(&candidate.origin))
            .await
            .inspect(crate::metrics::plugin_loaded)?;
        if let Some(suite) = &candidate.suite
            && let Err(message) = self_test(&plugin, &candidate.origin, suite).await
        {
            // An artifact's suite is part of its digest: its failure is
            // remembered. A directory's suite may be fixed at any time.
            if candidate.reference.is_some() {
                let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
                if refused.len() >= MAX_REFUSED {
                    refused.clear();
                }
                refused.insert(candidate.key.clone(), message.clone());
            }
            return Err(PluginError::SelfTestFailed {
                plugin: candidate.origin,
                message,
            });
        }
        self.loaded.lock().expect("loader lock").insert(
            user,
            candidate.key.clone(),
            plugin.clone(),
        );
        Ok((
            candidate.key,
            Active {
                plugin,
                reference: candidate.reference,
                refused: None,
            },
        ))
    }

    /// The bytes `source` names, or the loaded plugin when its key is
    /// known without them.
    async fn fetch(&self, user: User, source: &PluginSource) -> Result<Fetch, PluginError> {
        if let Some(text) = &source.oci {
            return self.fetch_oci(user, text, source).await;
        }
        let expected = match &source.sha256 {
            Some(text) => Some(parse_sha256(text)?),
            None => None,
        };
        let (bytes, origin) = match (&source.path, &source.url) {
            (Some(path), None) => (read_file(path).await?, path.clone()),
            (None, Some(url)) => {
                let Some(expected) = &expected else {
                    return Err(PluginError::Sha256Required);
                };
                // The digest is pinned: a plugin with it loaded already is
                // the plugin the URL serves, so it is fetched once per
                // digest, not on every sync.
                if let Some(plugin) = self.cached(user, expected) {
                    return Ok(Fetch::Loaded(
                        expected.clone(),
                        Active {
                            plugin,
                            reference: None,
                            refused: None,
                        },
                    ));
                }
                (self.download(url).await?, url.clone())
            }
            (None, None) => return Err(PluginError::NoSource),
            (Some(_), Some(_)) => return Err(PluginError::TwoSources),
        };
        let digest = hex::encode(Sha256::digest(&bytes));
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(PluginError::DigestMismatch {
                expected,
                origin,
                digest,
            });
        }
        if let Some(plugin) = self.cached(user, &digest) {
            return Ok(Fetch::Loaded(
                digest,
                Active {
                    plugin,
                    reference: None,
                    refused: None,
                },
            ));
        }
        Ok(Fetch::New(Candidate {
            key: digest,
            origin,
            reference: None,
            bytes,
            suite: source.suite.clone().map(Suite::Dir),
        }))
    }

    /// An `oci` plugin: the tag resolved (one request), then the loaded
    /// plugin of that manifest digest, or the artifact pulled (from the
    /// store when it is there) and its signatures verified against the
    /// trust policies, before anything is compiled.
    async fn fetch_oci(
        &self,
        user: User,
        text: &str,
        source: &PluginSource,
    ) -> Result<Fetch, PluginError> {
        let reference = Reference::parse(text).map_err(PluginError::Oci)?;
        let policy = self.trust_policy(source)?;
        let options = self.registry_options(source).await?;
        let pinned = match reference.digest() {
            Some(_) => reference.clone(),
            None => tessera_oci::Registry::new(&options, &reference)
                .map_err(PluginError::Oci)?
                .resolve(&reference)
                .await
                .map_err(PluginError::Oci)?,
        };
        let key = pinned.digest().map(|d| d.to_string()).unwrap_or_default();
        // Loaded already: it was verified and tested when activated. With a
        // trust policy, a policy that changed since is checked again below
        // (the signatures come from the store, without the network).
        if policy.is_none()
            && let Some(plugin) = self.cached(user, &key)
        {
            return Ok(Fetch::Loaded(
                key,
                Active {
                    plugin,
                    reference: Some(pinned.to_string()),
                    refused: None,
                },
            ));
        }
        let fetched =
            tessera_oci::fetch(&options, self.oci.store.as_ref(), &pinned, policy.as_ref())
                .await
                .map_err(PluginError::Oci)?;
        let pulled = fetched.pulled;
        let reference = pulled.reference.to_string();
        if let Some(plugin) = self.cached(user, &key) {
            return Ok(Fetch::Loaded(
                key,
                Active {
                    plugin,
                    reference: Some(reference),
                    refused: None,
                },
            ));
        }
        Ok(Fetch::New(Candidate {
            key,
            origin: reference.clone(),
            reference: Some(reference),
            bytes: pulled.artifact.component,
            suite: pulled.artifact.suite.map(Suite::Tar),
        }))
    }

    /// The cluster-wide trust policy and the source's own `verify`, both
    /// required; none when neither is set.
    fn trust_policy(&self, source: &PluginSource) -> Result<Option<TrustPolicy>, PluginError> {
        let own = match &source.verify {
            Some(spec) => {
                let value = serde_json::to_value(spec).unwrap_or_default();
                Some(
                    TrustPolicy::from_value("plugin.verify", &value)
                        .map_err(PluginError::TrustPolicy)?,
                )
            }
            None => None,
        };
        Ok(match (self.oci.trust_policy.clone(), own) {
            (Some(cluster), Some(own)) => Some(cluster.and(own)),
            (cluster, own) => cluster.or(own),
        })
    }

    /// The registry options with the source's pull secrets.
    async fn registry_options(
        &self,
        source: &PluginSource,
    ) -> Result<RegistryOptions, PluginError> {
        let mut options = self.oci.registry.clone();
        let namespace = &self.oci.namespace;
        for (index, secret) in source.pull_secrets.iter().enumerate() {
            let bad = |message: String| PluginError::PullSecret {
                index,
                namespace: namespace.clone(),
                name: secret.name.clone(),
                message,
            };
            let Some(client) = &self.client else {
                return Err(bad("no API client to read it with".into()));
            };
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            let found = api
                .get_opt(&secret.name)
                .await
                .map_err(|e| bad(crate::policies::one_line(&e.to_string())))?
                .ok_or_else(|| bad("not found".into()))?;
            if found.type_.as_deref() != Some("kubernetes.io/dockerconfigjson") {
                return Err(bad(format!(
                    "is of type {:?}, not kubernetes.io/dockerconfigjson",
                    found.type_.as_deref().unwrap_or("Opaque")
                )));
            }
            let Some(ByteString(json)) = found.data.and_then(|mut d| d.remove(".dockerconfigjson"))
            else {
                return Err(bad("has no .dockerconfigjson key".into()));
            };
            let json = String::from_utf8(json)
                .map_err(|_| bad(".dockerconfigjson is not UTF-8".into()))?;
            options = options.docker_config_json(
                format!(
                    "plugin.pullSecrets[{index}] (Secret {namespace}/{})",
                    secret.name
                ),
                json,
            );
        }
        Ok(options)
    }

    /// The loaded plugin kept under `key`.
    fn cached(&self, user: User, key: &str) -> Option<Plugin> {
        let plugin = self.loaded.lock().expect("loader lock").get(user, key);
        plugin.inspect(crate::metrics::plugin_reused)
    }

    /// Ends a pass of `user` over all its objects: from now on it uses
    /// the plugins the pass loaded. Plugins no user uses any more are
    /// dropped, so the loader holds only what current bindings need; so is
    /// the memory of what served an object whose plugin is gone.
    pub fn end_pass(&self, user: User) {
        let mut loaded = self.loaded.lock().expect("loader lock");
        loaded.end_pass(user);
        self.serving_lock()
            .retain(|_, serving| loaded.plugins.contains_key(&serving.key));
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>, PluginError> {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(PluginError::UnsupportedUrl { url: url.into() });
        }
        let fetch = |source| PluginError::Fetch {
            url: url.into(),
            source,
        };
        let mut response = self.http.get(url).send().await.map_err(fetch)?;
        if !response.status().is_success() {
            return Err(PluginError::HttpStatus {
                url: url.into(),
                status: response.status(),
            });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(fetch)? {
            if bytes.len() + chunk.len() > MAX_PLUGIN_BYTES {
                return Err(PluginError::DownloadTooLarge { url: url.into() });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

/// What [`PluginLoader::fetch`] found.
enum Fetch {
    /// A plugin loaded already, under this key.
    Loaded(String, Active),
    /// A plugin to activate.
    New(Candidate),
}

/// Refuses fields that do not go with the source they are given with.
fn check_fields(source: &PluginSource) -> Result<(), PluginError> {
    let sources = [
        source.oci.is_some(),
        source.path.is_some(),
        source.url.is_some(),
    ];
    match sources.iter().filter(|s| **s).count() {
        0 => return Err(PluginError::NoSource),
        1 => {}
        _ => return Err(PluginError::TwoSources),
    }
    let misplaced = |field, message| Err(PluginError::Misplaced { field, message });
    if source.oci.is_none() {
        if !source.pull_secrets.is_empty() {
            return misplaced("pullSecrets", "only for oci plugins");
        }
        if source.verify.is_some() {
            return misplaced("verify", "only oci plugins carry signatures");
        }
    } else if source.sha256.is_some() {
        return misplaced(
            "sha256",
            "pin an oci plugin with @sha256:... in the reference",
        );
    }
    if source.suite.is_some() && source.path.is_none() {
        return misplaced(
            "suite",
            "only for path plugins (an oci artifact bundles its own suite)",
        );
    }
    Ok(())
}

/// Runs the self-test `suite` against `plugin` (`origin` names it): Ok when
/// every case passed, else which case failed and how, one line.
async fn self_test(plugin: &Plugin, origin: &str, suite: &Suite) -> Result<(), String> {
    let unpacked;
    let dir = match suite {
        Suite::Dir(dir) => Path::new(dir),
        Suite::Tar(tar) => {
            unpacked = tempfile::tempdir()
                .map_err(|e| format!("a directory to unpack the suite into: {e}"))?;
            tessera_oci::unpack_suite(origin, tar, unpacked.path()).map_err(|e| e.to_string())?;
            unpacked.path()
        }
    };
    let name = plugin.id().name.clone();
    let report = tessera_suite::self_test(plugin.clone(), &name, dir, &LimitsSpec::default())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(plugin = origin, summary = report.summary(), "self-test");
    if report.failed() > 0 {
        return Err(report.summary());
    }
    if report.passed() == 0 {
        return Err("the suite has no case that ran".into());
    }
    Ok(())
}

async fn read_file(path: &str) -> Result<Vec<u8>, PluginError> {
    let read_error = |source| PluginError::Read {
        path: path.into(),
        source,
    };
    let metadata = tokio::fs::metadata(path).await.map_err(read_error)?;
    if metadata.len() > MAX_PLUGIN_BYTES as u64 {
        return Err(PluginError::FileTooLarge { path: path.into() });
    }
    tokio::fs::read(path).await.map_err(read_error)
}

/// `sha256:<hex>` or `<hex>` → lowercase hex.
fn parse_sha256(text: &str) -> Result<String, PluginError> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(PluginError::Sha256Format { text: text.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests(loaded: &Loaded<u32>) -> Vec<&str> {
        let mut digests: Vec<&str> = loaded.plugins.keys().map(String::as_str).collect();
        digests.sort();
        digests
    }

    #[test]
    fn plugins_no_binding_uses_are_dropped() {
        let mut loaded = Loaded::new();
        // A pass of the compositions loads a and b; one of the policies c.
        loaded.insert(User::Compositions, "a".into(), 1);
        loaded.insert(User::Compositions, "b".into(), 2);
        loaded.insert(User::Policies, "c".into(), 3);
        loaded.end_pass(User::Compositions);
        loaded.end_pass(User::Policies);
        assert_eq!(digests(&loaded), ["a", "b", "c"]);

        // The next pass of the compositions uses only a (b was replaced or
        // deleted); one of the policies starts and finds a loaded.
        assert_eq!(loaded.get(User::Compositions, "a"), Some(1));
        assert_eq!(loaded.get(User::Policies, "a"), Some(1));
        loaded.end_pass(User::Compositions);
        assert_eq!(digests(&loaded), ["a", "c"], "b dropped, c still used");

        // The policies' pass used a, not c.
        loaded.end_pass(User::Policies);
        assert_eq!(digests(&loaded), ["a"]);

        // Loaded by a pass under way: kept through another user's end of
        // pass. a is still used by the policies' last pass.
        loaded.end_pass(User::Compositions);
        loaded.insert(User::Compositions, "d".into(), 4);
        loaded.end_pass(User::Policies);
        assert_eq!(digests(&loaded), ["d"]);
        loaded.end_pass(User::Compositions);
        assert_eq!(digests(&loaded), ["d"]);
        loaded.end_pass(User::Compositions);
        assert!(digests(&loaded).is_empty());
    }

    /// Fields that go with another source are refused, naming the field.
    #[test]
    fn fields_of_another_source_are_refused() {
        let oci = || PluginSource {
            oci: Some("oci://127.0.0.1:5000/p/db:1".into()),
            ..PluginSource::default()
        };
        let path = || PluginSource {
            path: Some("/plugins/db.wasm".into()),
            ..PluginSource::default()
        };
        let cases = [
            (
                PluginSource::default(),
                "plugin: set one of oci, path or url",
            ),
            (
                PluginSource {
                    path: Some("/p.wasm".into()),
                    ..oci()
                },
                "plugin: set only one of oci, path or url",
            ),
            (
                PluginSource {
                    sha256: Some("ab".repeat(32)),
                    ..oci()
                },
                "plugin.sha256: pin an oci plugin with @sha256:... in the reference",
            ),
            (
                PluginSource {
                    suite: Some("/suites".into()),
                    ..oci()
                },
                "plugin.suite: only for path plugins (an oci artifact bundles its own suite)",
            ),
            (
                PluginSource {
                    pull_secrets: vec![crate::crd::SecretName { name: "r".into() }],
                    ..path()
                },
                "plugin.pullSecrets: only for oci plugins",
            ),
            (
                PluginSource {
                    verify: Some(crate::crd::TrustPolicySpec::default()),
                    ..path()
                },
                "plugin.verify: only oci plugins carry signatures",
            ),
        ];
        for (source, expected) in cases {
            assert_eq!(check_fields(&source).unwrap_err().to_string(), expected);
        }
        check_fields(&oci()).unwrap();
        check_fields(&PluginSource {
            suite: Some("/suites".into()),
            ..path()
        })
        .unwrap();
    }

    #[test]
    fn sha256_forms() {
        let hex = "AB".repeat(32);
        assert_eq!(parse_sha256(&hex).ok(), Some("ab".repeat(32)));
        assert_eq!(
            parse_sha256(&format!("sha256:{hex}")).ok(),
            Some("ab".repeat(32))
        );
        assert!(
            parse_sha256("sha256:abc")
                .unwrap_err()
                .to_string()
                .starts_with("plugin.sha256:")
        );
    }
}
