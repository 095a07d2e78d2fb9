//! Discovery of the API resources behind (apiVersion, kind) pairs, cached
//! for the life of the process (a kind that is missing is asked again).

use std::collections::HashMap;
use std::sync::Mutex;

use kube::Client;
use kube::api::{ApiResource, GroupVersionKind};
use kube::discovery::{Scope, pinned_kind};

/// A resolved kind.
#[derive(Debug, Clone)]
pub struct Kind {
    /// What kube needs to build an `Api` for it.
    pub resource: ApiResource,
    /// Whether its objects live in a namespace.
    pub namespaced: bool,
}

/// Why a kind could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum KindError {
    /// Discovery did not find the kind: it is not installed, or the API
    /// server could not be asked.
    #[error("the API server does not serve {api_version} {kind}: {source}")]
    NotServed {
        /// The apiVersion asked for.
        api_version: String,
        /// The kind asked for.
        kind: String,
        /// What discovery said.
        #[source]
        source: kube::Error,
    },
}

/// Cached discovery.
#[derive(Debug, Default)]
pub struct Kinds {
    cache: Mutex<HashMap<(String, String), Kind>>,
}

impl Kinds {
    /// The kind behind `api_version` and `kind`; errors say which kind is
    /// not served.
    pub async fn resolve(
        &self,
        client: &Client,
        api_version: &str,
        kind: &str,
    ) -> Result<Kind, KindError> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(found) = self.cache.lock().expect("kinds lock").get(&key) {
            return Ok(found.clone());
        }
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, capabilities) =
            pinned_kind(client, &gvk)
                .await
                .map_err(|source| KindError::NotServed {
                    api_version: api_version.to_string(),
                    kind: kind.to_string(),
                    source,
                })?;
        let found = Kind {
            resource,
            namespaced: capabilities.scope == Scope::Namespaced,
        };
        self.cache
            .lock()
            .expect("kinds lock")
            .insert(key, found.clone());
        Ok(found)
    }
}
