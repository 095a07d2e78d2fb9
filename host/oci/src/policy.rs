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
    /// Each group must hold: at least `minimum` of its keys matched.
    any_of: Vec<AnyOf>,
}

/// `anyOf`: at least `minimum` of `keys` must have signed.
#[derive(Debug, Clone)]
struct AnyOf {
    keys: Vec<PublicKey>,
    minimum: usize,
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
        self.any_of.extend(other.any_of);
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
        let text = std::fs::read_to_string(path).map_err(|e| Error::Policy {
            file: name.clone(),
            message: format!("cannot read: {e}"),
        })?;
        let file: PolicyFile = serde_yaml_ng::from_str(&text).map_err(|e| Error::Policy {
            file: name.clone(),
            message: crate::one_line(&e.to_string()),
        })?;
        Self::from_document(&name, &file, Some(path.parent().unwrap_or(Path::new("."))))
    }

    /// A policy written inline, in the same shape as a policy file, e.g. a
    /// `Composition`'s `spec.plugin.verify`; `name` (the field) starts
    /// every error. Keys must be given as PEM text (`key`): there is no
    /// file to resolve a `path` against.
    pub fn from_value(name: &str, value: &serde_json::Value) -> Result<TrustPolicy, Error> {
        let file: PolicyFile =
            serde_json::from_value(value.clone()).map_err(|e| Error::Policy {
                file: name.to_string(),
                message: crate::one_line(&e.to_string()),
            })?;
        Self::from_document(name, &file, None)
    }

    /// Checks a parsed policy and loads its keys; `base` is where `path`
    /// keys are resolved (none: `path` is refused).
    fn from_document(
        name: &str,
        file: &PolicyFile,
        base: Option<&Path>,
    ) -> Result<TrustPolicy, Error> {
        let bad = |message: String| Error::Policy {
            file: name.to_string(),
            message,
        };
        if let Some(version) = &file.api_version
            && version != "v1"
        {
            return Err(bad(format!("apiVersion {version:?} (expected v1)")));
        }
        let load = |section: &str, i: usize, entry: &KeyEntry| -> Result<PublicKey, Error> {
            let at = format!("{section}[{i}]");
            if entry.kind != "pubKey" {
                return Err(bad(format!(
                    "{at}: kind {:?} is not supported (only pubKey)",
                    entry.kind
                )));
            }
            match (&entry.key, &entry.path, base) {
                (Some(pem), None, _) => PublicKey::from_pem(&format!("{name} {at}"), pem),
                (None, Some(file), Some(base)) => PublicKey::from_file(&base.join(file)),
                (None, Some(_), None) => Err(bad(format!(
                    "{at}: give the key as PEM text (key); path is only for policy files"
                ))),
                _ => Err(bad(format!("{at}: give exactly one of key (PEM) or path"))),
            }
        };
        let mut policy = TrustPolicy::default();
        // Every key once: a key listed twice would count twice.
        let mut seen: Vec<(String, PublicKey)> = Vec::new();
        let mut add = |at: String, key: PublicKey| -> Result<PublicKey, Error> {
            if let Some((first, _)) = seen.iter().find(|(_, k)| k.same_key(&key)) {
                return Err(bad(format!("{first} and {at} are the same key")));
            }
            seen.push((at, key.clone()));
            Ok(key)
        };
        for (i, entry) in file.all_of.iter().enumerate() {
            policy
                .all_of
                .push(add(format!("allOf[{i}]"), load("allOf", i, entry)?)?);
        }
        if let Some(any_of) = &file.any_of {
            let mut keys = Vec::new();
            for (i, entry) in any_of.signatures.iter().enumerate() {
                keys.push(add(
                    format!("anyOf.signatures[{i}]"),
                    load("anyOf.signatures", i, entry)?,
                )?);
            }
            let minimum = any_of.minimum_matches.unwrap_or(1);
            if minimum == 0 || minimum > keys.len() {
                return Err(bad(format!(
                    "anyOf.minimumMatches is {minimum}, but there are {} keys",
                    keys.len()
                )));
            }
            policy.any_of.push(AnyOf { keys, minimum });
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
        for group in &self.any_of {
            let mut count = 0;
            let mut failures = Vec::new();
            for key in &group.keys {
                match matches(key) {
                    Ok(()) => {
                        count += 1;
                        matched.push(key.name().to_string());
                    }
                    Err(why) => failures.push(format!("{}: {why}", key.name())),
                }
            }
            if count < group.minimum {
                return Err(format!(
                    "anyOf: {count} of the keys matched, {} needed ({})",
                    group.minimum,
                    failures.join(", ")
                ));
            }
        }
        Ok(matched)
    }
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::SigningKey;
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

    use super::*;
    use crate::Reference;
    use crate::signature::PrivateKey;

    /// A deterministic test key pair (fixed scalar; protects nothing):
    /// the private key and the public key's PEM.
    fn pair(seed: u8) -> (PrivateKey, String) {
        let key = SigningKey::from_bytes(&[seed; 32].into()).unwrap();
        let private = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let public = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        (PrivateKey::from_pem("test", &private).unwrap(), public)
    }

    fn indent(pem: &str) -> String {
        pem.lines().map(|l| format!("        {l}\n")).collect()
    }

    fn write_policy(dir: &Path, text: &str) -> std::path::PathBuf {
        let file = dir.join("policy.yaml");
        std::fs::write(&file, text).unwrap();
        file
    }

    #[test]
    fn a_key_listed_twice_is_refused_naming_both_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (_, pem) = pair(7);
        std::fs::write(dir.path().join("k.pub"), &pem).unwrap();
        let text = format!(
            "anyOf:\n  minimumMatches: 2\n  signatures:\n    - kind: pubKey\n      key: |\n{}    - kind: pubKey\n      path: k.pub\n",
            indent(&pem)
        );
        let error = TrustPolicy::from_file(&write_policy(dir.path(), &text))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("anyOf.signatures[0] and anyOf.signatures[1] are the same key"),
            "{error}"
        );
        assert_eq!(error.lines().count(), 1, "{error}");
        // Across allOf and anyOf as well.
        let text = "allOf:\n  - kind: pubKey\n    path: k.pub\nanyOf:\n  signatures:\n    - kind: pubKey\n      path: ./k.pub\n";
        let error = TrustPolicy::from_file(&write_policy(dir.path(), text))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("allOf[0] and anyOf.signatures[0] are the same key"),
            "{error}"
        );
    }

    #[test]
    fn and_requires_both_policies() {
        let dir = tempfile::tempdir().unwrap();
        let (_, first) = pair(7);
        let (second_key, second) = pair(9);
        let any_of = |pem: &str| {
            let text = format!(
                "anyOf:\n  signatures:\n    - kind: pubKey\n      key: |\n{}",
                indent(pem)
            );
            TrustPolicy::from_file(&write_policy(dir.path(), &text)).unwrap()
        };
        let both = any_of(&first).and(any_of(&second));
        let reference = Reference::parse("oci://127.0.0.1:5000/a/b:1").unwrap();
        let digest = Digest::of(b"manifest");
        let payload = crate::signature::payload(&reference, &digest);
        let candidate = Candidate {
            signature: second_key.sign(&payload),
            payload,
        };
        // Only the second policy's key signed: the first does not hold.
        let error = both
            .verify(&digest, std::slice::from_ref(&candidate))
            .unwrap_err();
        assert!(error.contains("anyOf: 0 of the keys matched"), "{error}");
        any_of(&second).verify(&digest, &[candidate]).unwrap();
    }

    /// An inline policy (a `spec.plugin.verify`) verifies like a file's,
    /// names the field in its errors, and refuses key paths.
    #[test]
    fn inline_policies_take_pem_keys_only() {
        let (key, pem) = pair(11);
        let policy = TrustPolicy::from_value(
            "plugin.verify",
            &serde_json::json!({"allOf": [{"kind": "pubKey", "key": pem}]}),
        )
        .unwrap();
        let reference = Reference::parse("oci://127.0.0.1:5000/a/b:1").unwrap();
        let digest = Digest::of(b"manifest");
        let payload = crate::signature::payload(&reference, &digest);
        let candidate = Candidate {
            signature: key.sign(&payload),
            payload,
        };
        assert_eq!(policy.verify(&digest, &[candidate]).unwrap().len(), 1);
        let path = TrustPolicy::from_value(
            "plugin.verify",
            &serde_json::json!({"allOf": [{"kind": "pubKey", "path": "/etc/key.pub"}]}),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            path,
            "plugin.verify: allOf[0]: give the key as PEM text (key); path is only for policy files"
        );
        let unknown = TrustPolicy::from_value("plugin.verify", &serde_json::json!({"oneOf": []}))
            .unwrap_err()
            .to_string();
        assert!(
            unknown.starts_with("plugin.verify: unknown field `oneOf`"),
            "{unknown}"
        );
    }
}
