//! Pulled artifacts on disk, by digest: `DIR/sha256-<hex>/` holds the
//! manifest, each layer and the signatures last seen. Everything is checked
//! again when read (the manifest against the directory's digest, each layer
//! against the manifest), so a cached digest is used offline with the same
//! guarantees as a pull; an entry that fails a check is a miss.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::artifact::{self, Artifact};
use crate::registry::Pulled;
use crate::signature::Candidate;
use crate::{Digest, Error, Reference};

/// A directory of pulled artifacts, keyed by manifest digest.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// A store under `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    fn entry(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("sha256-{}", digest.hex()))
    }

    /// The artifact `pinned` names, if cached and intact.
    pub fn get(&self, pinned: &Reference) -> Option<Pulled> {
        let digest = pinned.digest()?;
        let dir = self.entry(digest);
        let manifest = std::fs::read(dir.join("manifest.json")).ok()?;
        if Digest::of(&manifest) != *digest {
            return None;
        }
        let (component, metadata, suite) =
            artifact::plugin_layers(&pinned.to_string(), &manifest).ok()?;
        let read = |name: &str, digest: &str| -> Option<Vec<u8>> {
            let bytes = std::fs::read(dir.join(name)).ok()?;
            (Digest::of(&bytes).as_str() == digest).then_some(bytes)
        };
        let component = read("component.wasm", &component.digest)?;
        let metadata_bytes = match metadata {
            Some(d) => Some(read("metadata.json", &d.digest)?),
            None => None,
        };
        let metadata = match &metadata_bytes {
            Some(bytes) => Some(serde_json::from_slice(bytes).ok()?),
            None => None,
        };
        let suite = match suite {
            Some(d) => Some(read("suite.tar", &d.digest)?),
            None => None,
        };
        Some(Pulled {
            reference: pinned.clone(),
            manifest,
            artifact: Artifact {
                component,
                metadata,
                suite,
            },
            metadata_bytes,
        })
    }

    /// Stores a pulled artifact (atomically: a temporary directory renamed
    /// into place).
    pub fn put(&self, pulled: &Pulled) -> Result<(), Error> {
        let Some(digest) = pulled.reference.digest() else {
            return Ok(());
        };
        let io = |path: &Path, e: std::io::Error| Error::Io {
            path: path.to_path_buf(),
            source: e,
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".pull-")
            .tempdir_in(&self.dir)
            .map_err(|e| io(&self.dir, e))?;
        let write = |name: &str, bytes: &[u8]| {
            let path = tmp.path().join(name);
            std::fs::write(&path, bytes).map_err(|e| io(&path, e))
        };
        write("manifest.json", &pulled.manifest)?;
        write("component.wasm", &pulled.artifact.component)?;
        // The layer's own bytes: they are checked against its digest when
        // read back (re-serialised JSON would differ from a non-compact one).
        match (&pulled.metadata_bytes, &pulled.artifact.metadata) {
            (Some(bytes), _) => write("metadata.json", bytes)?,
            (None, Some(metadata)) => write(
                "metadata.json",
                &serde_json::to_vec(metadata).unwrap_or_default(),
            )?,
            (None, None) => {}
        }
        if let Some(suite) = &pulled.artifact.suite {
            write("suite.tar", suite)?;
        }
        let dest = self.entry(digest);
        let _ = std::fs::remove_dir_all(&dest);
        let kept = tmp.keep();
        std::fs::rename(&kept, &dest).map_err(|e| io(&dest, e))?;
        Ok(())
    }

    /// The signatures last fetched for `digest` (to verify offline).
    pub fn signatures(&self, digest: &Digest) -> Vec<Candidate> {
        let Ok(bytes) = std::fs::read(self.entry(digest).join("signatures.json")) else {
            return Vec::new();
        };
        let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&bytes) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| {
                Some(Candidate {
                    payload: base64::engine::general_purpose::STANDARD
                        .decode(item["payload"].as_str()?)
                        .ok()?,
                    signature: item["signature"].as_str()?.to_string(),
                })
            })
            .collect()
    }

    /// Remembers the signatures fetched for `digest` (they are re-verified
    /// on every use; tampering with them only makes verification fail).
    pub fn put_signatures(&self, digest: &Digest, candidates: &[Candidate]) -> Result<(), Error> {
        let dir = self.entry(digest);
        if !dir.is_dir() {
            return Ok(());
        }
        let items: Vec<Value> = candidates
            .iter()
            .map(|c| {
                json!({
                    "payload": base64::engine::general_purpose::STANDARD.encode(&c.payload),
                    "signature": c.signature,
                })
            })
            .collect();
        let path = dir.join("signatures.json");
        let tmp = dir.join(".signatures.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&items).unwrap_or_default())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::Io { path, source: e })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_compact_metadata_layer_is_a_cache_hit() {
        let component = b"\0asm\x0d\0\x01\0".to_vec();
        // As oras (or an editor) writes it: spaces and a newline.
        let metadata = b"{\n  \"name\": \"x\"\n}\n".to_vec();
        let layer = |media_type: &str, bytes: &[u8]| {
            json!({
                "mediaType": media_type,
                "digest": Digest::of(bytes).to_string(),
                "size": bytes.len(),
            })
        };
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": Digest::of(b"{}").to_string(),
                "size": 2,
            },
            "layers": [
                layer(artifact::WASM_MEDIA_TYPE, &component),
                layer(artifact::METADATA_MEDIA_TYPE, &metadata),
            ],
        }))
        .unwrap();
        let pinned = Reference::parse("oci://127.0.0.1:5000/a/b:1")
            .unwrap()
            .with_digest(Digest::of(&manifest));
        let pulled = Pulled {
            reference: pinned.clone(),
            manifest,
            artifact: Artifact {
                component,
                metadata: Some(serde_json::from_slice(&metadata).unwrap()),
                suite: None,
            },
            metadata_bytes: Some(metadata.clone()),
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.put(&pulled).unwrap();
        let cached = store.get(&pinned).expect("the stored artifact is a hit");
        assert_eq!(cached.artifact.metadata, pulled.artifact.metadata);
        assert_eq!(cached.metadata_bytes, Some(metadata));
    }
}
