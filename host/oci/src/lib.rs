//! Tessera plugins as OCI artifacts.
//!
//! - [`Artifact`]: the CNCF TAG Runtime Wasm OCI layout (config
//!   `application/vnd.wasm.config.v0+json`, the component as an
//!   `application/wasm` layer, artifactType
//!   `application/vnd.wasm.component.v1+wasm`), so `oras` and `wkg` pull
//!   it, plus Tessera's metadata and test-suite layers.
//! - [`Reference`]: `oci://REGISTRY/REPO:TAG` or `...@sha256:HEX`; a tag is
//!   resolved to a digest once and the digest is used afterwards.
//! - [`Registry`]: push, pull, resolve, signatures; every blob is checked
//!   against its digest, every operation has a deadline.
//! - [`signature`]: cosign-compatible keyed signatures (ECDSA P-256 over
//!   the simple-signing payload, cosign's `sha256-<hex>.sig` tag, also
//!   found through the referrers API); [`TrustPolicy`]: `allOf` / `anyOf`
//!   with `minimumMatches`.
//! - [`Store`]: pulled artifacts by digest, so a cached digest needs no
//!   network; [`fetch`] ties it together for the CLI and the controller.
//!
//! The library is async and knows nothing of the CLI.
//!
//! ```
//! use tessera_oci::{Artifact, Reference};
//!
//! let reference = Reference::parse("oci://registry.example/plugins/require-labels:1.0").unwrap();
//! let artifact = Artifact { component: b"\0asm".to_vec(), metadata: None, suite: None };
//! // A push is reproducible: the digest depends on the bytes only.
//! let pinned = reference.with_digest(artifact.digest());
//! assert!(pinned.to_string().starts_with("oci://registry.example/plugins/require-labels:1.0@sha256:"));
//! ```

#![deny(missing_docs)]

pub mod artifact;
mod policy;
mod reference;
mod registry;
pub mod signature;
mod store;

use std::path::PathBuf;
use std::time::Duration;

pub use artifact::{Artifact, pack_suite, unpack_suite};
pub use policy::TrustPolicy;
pub use reference::{Digest, Reference, SCHEME};
pub use registry::{MAX_SIGNATURE_CANDIDATES, Pulled, Registry, RegistryOptions};
pub use store::Store;

/// What can go wrong. Each message is one line naming the reference, file
/// or key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed reference.
    #[error("{reference}: {message}")]
    Reference {
        /// The reference as given.
        reference: String,
        /// Why it is refused.
        message: String,
    },
    /// The registry could not be reached or answered with an error.
    #[error("{reference}: {message}")]
    Registry {
        /// The reference.
        reference: String,
        /// What failed.
        message: String,
    },
    /// The registry has no manifest under this reference.
    #[error("{reference}: not found in the registry")]
    NotFound {
        /// The reference.
        reference: String,
    },
    /// A registry operation ran past its deadline.
    #[error("{reference}: {what} timed out after {after:?} (the registry is slow or stalled)")]
    Timeout {
        /// The reference.
        reference: String,
        /// The operation.
        what: String,
        /// The deadline.
        after: Duration,
    },
    /// The registry served something that is not a valid plugin artifact
    /// (wrong layout, a digest mismatch, over a size limit).
    #[error("{reference}: {message}")]
    Artifact {
        /// The reference.
        reference: String,
        /// What is wrong.
        message: String,
    },
    /// The artifact's signatures do not satisfy the trust policy.
    #[error("{reference}: refused by the trust policy: {message}")]
    Untrusted {
        /// The reference (with digest).
        reference: String,
        /// Which key failed, and why.
        message: String,
    },
    /// A key file or PEM text could not be used.
    #[error("{key}: {message}")]
    Key {
        /// The key's file or name.
        key: String,
        /// Why.
        message: String,
    },
    /// A trust policy file is invalid.
    #[error("{file}: {message}")]
    Policy {
        /// The file.
        file: String,
        /// Why.
        message: String,
    },
    /// The Docker config file is invalid.
    #[error("{file}: {message}")]
    RegistryConfig {
        /// The file.
        file: String,
        /// Why.
        message: String,
    },
    /// A suite cannot be packed or unpacked.
    #[error("{source_name}: suite: {message}")]
    Suite {
        /// The directory or reference.
        source_name: String,
        /// Why.
        message: String,
    },
    /// Reading or writing a local file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A fetched plugin: the artifact, pinned by digest, and the keys whose
/// signatures the trust policy accepted.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The artifact, with the reference pinned to its digest.
    pub pulled: Pulled,
    /// The names of the keys that matched (empty without a policy).
    pub verified_by: Vec<String>,
    /// Whether it came from the store without the network.
    pub cached: bool,
}

/// Fetches the plugin `reference` names: from `store` when its digest is
/// there (no network), else from the registry (then stored). With a
/// `policy`, the signatures must satisfy it before anything is returned:
/// the stored signatures first, then the registry's. A tag always costs one
/// request to resolve it.
pub async fn fetch(
    options: &RegistryOptions,
    store: Option<&Store>,
    reference: &Reference,
    policy: Option<&TrustPolicy>,
) -> Result<Fetched, Error> {
    let mut registry = None;
    let connect = |registry: &mut Option<Registry>| -> Result<(), Error> {
        if registry.is_none() {
            *registry = Some(Registry::new(options, reference)?);
        }
        Ok(())
    };
    let pinned = match reference.digest() {
        Some(_) => reference.clone(),
        None => {
            connect(&mut registry)?;
            let client = registry
                .as_ref()
                .ok_or_else(|| unreachable_error(reference))?;
            client.resolve(reference).await?
        }
    };
    let (pulled, cached) = match store.and_then(|s| s.get(&pinned)) {
        Some(pulled) => (pulled, true),
        None => {
            connect(&mut registry)?;
            let client = registry
                .as_ref()
                .ok_or_else(|| unreachable_error(reference))?;
            let pulled = client.pull(&pinned).await?;
            if let Some(store) = store {
                store.put(&pulled)?;
            }
            (pulled, false)
        }
    };
    let digest = pulled
        .reference
        .digest()
        .cloned()
        .ok_or_else(|| unreachable_error(reference))?;
    let mut verified_by = Vec::new();
    if let Some(policy) = policy.filter(|p| !p.is_empty()) {
        let stored = store.map(|s| s.signatures(&digest)).unwrap_or_default();
        let offline = if stored.is_empty() {
            None
        } else {
            policy.verify(&digest, &stored).ok()
        };
        verified_by = match offline {
            Some(keys) => keys,
            None => {
                connect(&mut registry)?;
                let client = registry
                    .as_ref()
                    .ok_or_else(|| unreachable_error(reference))?;
                let candidates = client.signatures(&pulled.reference).await?;
                let keys =
                    policy
                        .verify(&digest, &candidates)
                        .map_err(|message| Error::Untrusted {
                            reference: pulled.reference.to_string(),
                            message,
                        })?;
                if let Some(store) = store {
                    store.put_signatures(&digest, &candidates)?;
                }
                keys
            }
        };
    }
    Ok(Fetched {
        pulled,
        verified_by,
        cached,
    })
}

fn unreachable_error(reference: &Reference) -> Error {
    Error::Reference {
        reference: reference.to_string(),
        message: "internal error: no registry client".into(),
    }
}

/// One line, safe for a terminal: registry bodies are untrusted
/// (`tessera_types::text`, the one choke point).
pub(crate) fn one_line(text: &str) -> String {
    tessera_types::text::one_line(text)
}
