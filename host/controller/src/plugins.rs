//! Loading plugins named by a [`PluginSource`]: from a file or a URL, checked
//! against the expected sha256, compiled once per digest.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use tessera_runtime::{Plugin, PluginId, Runtime, World};

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
    /// Neither `plugin.path` nor `plugin.url`.
    #[error("plugin: set one of path or url")]
    NoSource,
    /// Both `plugin.path` and `plugin.url`.
    #[error("plugin: set path or url, not both")]
    TwoSources,
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

/// Reads, checks and compiles plugins; compiled plugins are kept by digest,
/// so a composition that did not change costs a read and a hash (and a
/// plugin pinned by URL and sha256 no fetch at all), for as long as some
/// binding uses them ([`PluginLoader::end_pass`]).
#[derive(Debug)]
pub struct PluginLoader {
    runtime: Runtime,
    http: reqwest::Client,
    loaded: Mutex<Loaded<Plugin>>,
}

impl PluginLoader {
    /// A loader compiling with `runtime`.
    pub fn new(runtime: Runtime) -> Self {
        PluginLoader {
            runtime,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("an HTTP client with default settings"),
            loaded: Mutex::new(Loaded::new()),
        }
    }

    /// Loads the plugin `source` names, for a pass of `user`.
    pub async fn load(&self, user: User, source: &PluginSource) -> Result<Plugin, PluginError> {
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
                    return Ok(plugin);
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
            return Ok(plugin);
        }
        let plugin = self
            .runtime
            .load(&bytes, Path::new(&origin))
            .await
            .inspect(crate::metrics::plugin_loaded)?;
        self.loaded
            .lock()
            .expect("loader lock")
            .insert(user, digest, plugin.clone());
        Ok(plugin)
    }

    /// The loaded plugin whose bytes have the lowercase hex `digest`.
    fn cached(&self, user: User, digest: &str) -> Option<Plugin> {
        let plugin = self.loaded.lock().expect("loader lock").get(user, digest);
        plugin.inspect(crate::metrics::plugin_reused)
    }

    /// Ends a pass of `user` over all its objects: from now on it uses
    /// the plugins the pass loaded. Plugins no user uses any more are
    /// dropped, so the loader holds only what current bindings need.
    pub fn end_pass(&self, user: User) {
        self.loaded.lock().expect("loader lock").end_pass(user);
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
