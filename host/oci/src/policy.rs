//! Trust policies, in the shape Kubewarden users know: `allOf` keys that
//! must each have signed the artifact, and `anyOf` keys of which at least
//! `minimumMatches` must have.
//!
//! ```yaml
//! allOf:
//!   - kind: pubKey
//!     path: release.pub        # relative to the policy file
//! anyOf:
//!   minimumMatches: 2
//!   signatures:
//!     - kind: pubKey
//!       key: |
//!         -----BEGIN PUBLIC KEY-----
//!         ...
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::signature::{Candidate, PublicKey};
use crate::{Digest, Error};

/// A trust policy: which keys must have signed an artifact.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    all_of: Vec<PublicKey>,
    any_of: Vec<PublicKey>,
    minimum_matches: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyFile {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    all_of: Vec<KeyEntry>,
    #[serde(default)]
    any_of: Option<AnyOfFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AnyOfFile {
    #[serde(default)]
    minimum_matches: Option<usize>,
    signatures: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    kind: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    path: Option<String>,
}

impl TrustPolicy {
    /// A policy that requires every key in `keys` (`--verify-key`).
    pub fn all_of(keys: Vec<PublicKey>) -> TrustPolicy {
        TrustPolicy {
            all_of: keys,
            ..TrustPolicy::default()
        }
    }

    /// Adds the requirements of `other` (both must hold).
    #[must_use]
    pub fn and(mut self, other: TrustPolicy) -> TrustPolicy {
        self.all_of.extend(other.all_of);
        if !other.any_of.is_empty() {
            self.any_of = other.any_of;
            self.minimum_matches = other.minimum_matches;
        }
        self
    }

    /// Whether the policy requires no key at all.
    pub fn is_empty(&self) -> bool {
        self.all_of.is_empty() && self.any_of.is_empty()
    }

    /// Reads a policy file (YAML or JSON). Keys given by `path` are read
    /// relative to the file. Every error names the file and the entry.
    pub fn from_file(path: &Path) -> Result<TrustPolicy, Error> {
        let name = path.display().to_string();
        let bad = |message: String| Error::Policy {
            file: name.clone(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let file: PolicyFile =
            serde_yaml_ng::from_str(&text).map_err(|e| bad(crate::one_line(&e.to_string())))?;
        if let Some(version) = &file.api_version
            && version != "v1"
        {
            return Err(bad(format!("apiVersion {version:?} (expected v1)")));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let load = |section: &str, i: usize, entry: &KeyEntry| -> Result<PublicKey, Error> {
            let at = format!("{section}[{i}]");
            if entry.kind != "pubKey" {
                return Err(bad(format!(
                    "{at}: kind {:?} is not supported (only pubKey)",
                    entry.kind
                )));
            }
            match (&entry.key, &entry.path) {
                (Some(pem), None) => PublicKey::from_pem(&format!("{name} {at}"), pem),
                (None, Some(file)) => PublicKey::from_file(&base.join(file)),
                _ => Err(bad(format!("{at}: give exactly one of key (PEM) or path"))),
            }
        };
        let mut policy = TrustPolicy::default();
        for (i, entry) in file.all_of.iter().enumerate() {
            policy.all_of.push(load("allOf", i, entry)?);
        }
        if let Some(any_of) = &file.any_of {
            for (i, entry) in any_of.signatures.iter().enumerate() {
                policy.any_of.push(load("anyOf.signatures", i, entry)?);
            }
            policy.minimum_matches = any_of.minimum_matches.unwrap_or(1);
            if policy.minimum_matches == 0 || policy.minimum_matches > policy.any_of.len() {
                return Err(bad(format!(
                    "anyOf.minimumMatches is {}, but there are {} keys",
                    policy.minimum_matches,
                    policy.any_of.len()
                )));
            }
        }
        if policy.is_empty() {
            return Err(bad("the policy names no key (allOf or anyOf)".into()));
        }
        Ok(policy)
    }

    /// Checks `candidates` (the signatures found for `digest`) against the
    /// policy. On success, the names of the keys that matched; on failure,
    /// one line naming the key (or the count) that failed and why.
    pub fn verify(&self, digest: &Digest, candidates: &[Candidate]) -> Result<Vec<String>, String> {
        if candidates.is_empty() {
            return Err("unsigned: no signature found (sha256-<hex>.sig tag or referrers)".into());
        }
        let matches = |key: &PublicKey| -> Result<(), String> {
            let mut reasons: Vec<String> = Vec::new();
            for candidate in candidates {
                match key.check(candidate, digest) {
                    Ok(()) => return Ok(()),
                    Err(reason) => {
                        if !reasons.contains(&reason) {
                            reasons.push(reason);
                        }
                    }
                }
            }
            Err(reasons.join("; "))
        };
        let mut matched = Vec::new();
        for key in &self.all_of {
            matches(key).map_err(|why| {
                format!(
                    "key {} (allOf) matched none of {} signature(s): {why}",
                    key.name(),
                    candidates.len()
                )
            })?;
            matched.push(key.name().to_string());
        }
        if !self.any_of.is_empty() {
            let mut count = 0;
            let mut failures = Vec::new();
            for key in &self.any_of {
                match matches(key) {
                    Ok(()) => {
                        count += 1;
                        matched.push(key.name().to_string());
                    }
                    Err(why) => failures.push(format!("{}: {why}", key.name())),
                }
            }
            if count < self.minimum_matches {
                return Err(format!(
                    "anyOf: {count} of the keys matched, {} needed ({})",
                    self.minimum_matches,
                    failures.join(", ")
                ));
            }
        }
        Ok(matched)
    }
}
