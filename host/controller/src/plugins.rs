//! Loading plugins named by a [`PluginSource`]: from a file or a URL, checked
//! against the expected sha256, compiled once per digest.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use tessera_runtime::{Plugin, Runtime};

use crate::crd::PluginSource;

/// The largest plugin the controller downloads or reads.
pub const MAX_PLUGIN_BYTES: usize = 64 << 20;

/// Reads, checks and compiles plugins; compiled plugins are kept by digest,
/// so a composition that did not change costs a read and a hash.
#[derive(Debug)]
pub struct PluginLoader {
    runtime: Runtime,
    http: reqwest::Client,
    loaded: Mutex<HashMap<String, Plugin>>,
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
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// Loads the plugin `source` names. Errors are one line, naming the
    /// field (`plugin.path`, `plugin.url`, `plugin.sha256`).
    pub async fn load(&self, source: &PluginSource) -> Result<Plugin, String> {
        let expected = match &source.sha256 {
            Some(text) => Some(parse_sha256(text)?),
            None => None,
        };
        let (bytes, origin) = match (&source.path, &source.url) {
            (Some(path), None) => (read_file(path).await?, path.clone()),
            (None, Some(url)) => {
                if expected.is_none() {
                    return Err("plugin.sha256 is required with plugin.url".into());
                }
                (self.download(url).await?, url.clone())
            }
            (None, None) => return Err("plugin: set one of path or url".into()),
            (Some(_), Some(_)) => return Err("plugin: set path or url, not both".into()),
        };
        let digest = hex::encode(Sha256::digest(&bytes));
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(format!(
                "plugin.sha256: expected {expected}, but {origin} has sha256 {digest}"
            ));
        }
        if let Some(plugin) = self.loaded.lock().expect("loader lock").get(&digest) {
            return Ok(plugin.clone());
        }
        let plugin = self
            .runtime
            .load(&bytes, Path::new(&origin))
            .await
            .map_err(|e| e.to_string())?;
        self.loaded
            .lock()
            .expect("loader lock")
            .insert(digest, plugin.clone());
        Ok(plugin)
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>, String> {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!(
                "plugin.url: only http and https URLs are supported, got {url:?}"
            ));
        }
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("plugin.url: fetching {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "plugin.url: fetching {url}: HTTP {}",
                response.status()
            ));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("plugin.url: fetching {url}: {e}"))?
        {
            if bytes.len() + chunk.len() > MAX_PLUGIN_BYTES {
                return Err(format!(
                    "plugin.url: {url} is larger than {} MiB",
                    MAX_PLUGIN_BYTES >> 20
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

async fn read_file(path: &str) -> Result<Vec<u8>, String> {
    let metadata = tokio::fs::metadata(path)
        .await
        .map_err(|e| format!("plugin.path: {path}: {e}"))?;
    if metadata.len() > MAX_PLUGIN_BYTES as u64 {
        return Err(format!(
            "plugin.path: {path} is larger than {} MiB",
            MAX_PLUGIN_BYTES >> 20
        ));
    }
    tokio::fs::read(path)
        .await
        .map_err(|e| format!("plugin.path: {path}: {e}"))
}

/// `sha256:<hex>` or `<hex>` → lowercase hex.
fn parse_sha256(text: &str) -> Result<String, String> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(format!(
            "plugin.sha256: expected 64 hex digits (optionally prefixed with sha256:), got {text:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_forms() {
        let hex = "AB".repeat(32);
        assert_eq!(parse_sha256(&hex), Ok("ab".repeat(32)));
        assert_eq!(parse_sha256(&format!("sha256:{hex}")), Ok("ab".repeat(32)));
        assert!(
            parse_sha256("sha256:abc")
                .unwrap_err()
                .starts_with("plugin.sha256:")
        );
    }
}
