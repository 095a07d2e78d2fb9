//! The artifact: the CNCF TAG Runtime Wasm OCI layout (the one `wkg` and
//! Spin use) plus two Tessera layers, the plugin's metadata and its test
//! suite.
//!
//! Every byte of a push is deterministic (no timestamps; the suite is a tar
//! with sorted entries, zero mtimes and owners), so pushing the same plugin
//! twice gives the same digest.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Digest, Error};

/// The OCI image manifest media type.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The artifact type of a Wasm component (Wasm OCI layout).
pub const ARTIFACT_TYPE: &str = "application/vnd.wasm.component.v1+wasm";
/// The config media type of the Wasm OCI layout.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The component layer.
pub const WASM_MEDIA_TYPE: &str = "application/wasm";
/// Tessera's metadata layer: name, version, world, WIT version, kinds,
/// settings schema (JSON).
pub const METADATA_MEDIA_TYPE: &str = "application/vnd.tessera.plugin.metadata.v1+json";
/// Tessera's test-suite layer: `tests/*.tessera.yaml` with goldens and
/// fixtures, as an uncompressed tar.
pub const SUITE_MEDIA_TYPE: &str = "application/vnd.tessera.plugin.suite.v1.tar";

/// The most bytes a component layer may have (a plugin is a few MiB; this
/// bounds what a hostile registry can make us hold).
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;
/// The most bytes of a manifest, config, metadata or signature payload.
pub const MAX_SMALL_BYTES: u64 = 4 << 20;
/// The most bytes of a suite layer, and of all its files once unpacked.
pub const MAX_SUITE_BYTES: u64 = 32 << 20;
/// The most files in a suite.
pub const MAX_SUITE_FILES: usize = 4096;

/// A plugin as an artifact: the component and, optionally, Tessera's
/// metadata and test suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The `.wasm` component, byte for byte.
    pub component: Vec<u8>,
    /// The metadata layer (a JSON object), if any.
    pub metadata: Option<Value>,
    /// The suite layer (a tar made by [`pack_suite`]), if any.
    pub suite: Option<Vec<u8>>,
}

/// A blob with its media type.
#[derive(Debug, Clone)]
pub(crate) struct Blob {
    pub(crate) media_type: &'static str,
    pub(crate) bytes: Vec<u8>,
    /// The file name generic clients (`oras pull`) save the layer as.
    pub(crate) title: Option<&'static str>,
}

/// The annotation generic OCI clients name a pulled layer's file by.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";

impl Blob {
    pub(crate) fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.to_string(),
            digest: Digest::of(&self.bytes).to_string(),
            size: self.bytes.len() as u64,
            annotations: self
                .title
                .map(|t| BTreeMap::from([(TITLE_ANNOTATION.to_string(), t.to_string())])),
        }
    }
}

/// An OCI descriptor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) annotations: Option<BTreeMap<String, String>>,
}

/// An OCI image manifest (the fields Tessera reads and writes).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub(crate) schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) artifact_type: Option<String>,
    pub(crate) config: Descriptor,
    #[serde(default)]
    pub(crate) layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) annotations: Option<BTreeMap<String, String>>,
}

impl Artifact {
    /// The config and layers, in manifest order.
    pub(crate) fn blobs(&self) -> (Blob, Vec<Blob>) {
        let mut layers = vec![Blob {
            media_type: WASM_MEDIA_TYPE,
            bytes: self.component.clone(),
            title: Some("plugin.wasm"),
        }];
        if let Some(metadata) = &self.metadata {
            layers.push(Blob {
                media_type: METADATA_MEDIA_TYPE,
                bytes: serde_json::to_vec(metadata).unwrap_or_default(),
                title: Some("tessera-metadata.json"),
            });
        }
        if let Some(suite) = &self.suite {
            layers.push(Blob {
                media_type: SUITE_MEDIA_TYPE,
                bytes: suite.clone(),
                title: Some("tessera-suite.tar"),
            });
        }
        let layer_digests: Vec<String> = layers
            .iter()
            .map(|l| Digest::of(&l.bytes).to_string())
            .collect();
        // The Wasm OCI config; no `created` so pushes are reproducible.
        let config = json!({
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": layer_digests,
        });
        let config = Blob {
            media_type: CONFIG_MEDIA_TYPE,
            bytes: serde_json::to_vec(&config).unwrap_or_default(),
            title: None,
        };
        (config, layers)
    }

    /// The manifest bytes for `config` and `layers`.
    pub(crate) fn manifest(config: &Blob, layers: &[Blob]) -> Vec<u8> {
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MANIFEST_MEDIA_TYPE.into()),
            artifact_type: Some(ARTIFACT_TYPE.into()),
            config: config.descriptor(),
            layers: layers.iter().map(Blob::descriptor).collect(),
            subject: None,
            annotations: None,
        };
        serde_json::to_vec(&manifest).unwrap_or_default()
    }

    /// The digest this artifact gets when pushed.
    pub fn digest(&self) -> Digest {
        let (config, layers) = self.blobs();
        Digest::of(&Artifact::manifest(&config, &layers))
    }
}

/// Parses a plugin manifest and finds its layers: exactly one
/// `application/wasm` layer; at most one metadata and one suite layer;
/// other layers are ignored. `reference` names it in errors.
pub(crate) fn plugin_layers(
    reference: &str,
    bytes: &[u8],
) -> Result<(Descriptor, Option<Descriptor>, Option<Descriptor>), Error> {
    let bad = |message: String| Error::Artifact {
        reference: reference.to_string(),
        message,
    };
    let manifest: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| bad(format!("the manifest is not an OCI image manifest: {e}")))?;
    if manifest.schema_version != 2 {
        return Err(bad(format!(
            "manifest schemaVersion {} (expected 2)",
            manifest.schema_version
        )));
    }
    let mut component = None;
    let mut metadata = None;
    let mut suite = None;
    for layer in manifest.layers {
        let slot = match layer.media_type.as_str() {
            WASM_MEDIA_TYPE => &mut component,
            METADATA_MEDIA_TYPE => &mut metadata,
            SUITE_MEDIA_TYPE => &mut suite,
            _ => continue,
        };
        if slot.is_some() {
            return Err(bad(format!("more than one {} layer", layer.media_type)));
        }
        Digest::parse(&layer.digest)
            .ok_or_else(|| bad(format!("layer digest {:?} is not sha256", layer.digest)))?;
        *slot = Some(layer);
    }
    let component = component.ok_or_else(|| {
        bad(format!(
            "not a Wasm plugin: no {WASM_MEDIA_TYPE} layer (config {})",
            manifest.config.media_type
        ))
    })?;
    Ok((component, metadata, suite))
}

/// Packs the files under `dir` into a deterministic tar: regular files
/// only, sorted by path, mode 0644, zero mtime and owners. Paths are
/// relative to `dir`. Refuses symlinks (they could point outside the suite)
/// and more than [`MAX_SUITE_FILES`] files or [`MAX_SUITE_BYTES`] bytes.
pub fn pack_suite(dir: &Path) -> Result<Vec<u8>, Error> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    if files.len() > MAX_SUITE_FILES {
        return Err(suite_error(
            dir,
            format!("more than {MAX_SUITE_FILES} files"),
        ));
    }
    let mut builder = tar::Builder::new(Vec::new());
    let mut total = 0u64;
    for relative in files {
        let path = dir.join(&relative);
        let bytes = std::fs::read(&path).map_err(|e| Error::Io {
            path: path.clone(),
            source: e,
        })?;
        total += bytes.len() as u64;
        if total > MAX_SUITE_BYTES {
            return Err(suite_error(
                dir,
                format!("more than {MAX_SUITE_BYTES} bytes"),
            ));
        }
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        let name = relative
            .iter()
            .map(|c| c.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        builder
            .append_data(&mut header, &name, bytes.as_slice())
            .map_err(|e| suite_error(dir, format!("{name}: {e}")))?;
    }
    builder
        .into_inner()
        .map_err(|e| suite_error(dir, e.to_string()))
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| Error::Io {
            path: path.clone(),
            source: e,
        })?;
        if kind.is_symlink() {
            return Err(suite_error(
                root,
                format!(
                    "{} is a symbolic link; a suite holds regular files only",
                    path.display()
                ),
            ));
        } else if kind.is_dir() {
            collect(root, &path, files)?;
        } else if kind.is_file() {
            let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            if relative.to_str().is_none() {
                return Err(suite_error(
                    root,
                    format!("{} is not UTF-8", path.display()),
                ));
            }
            files.push(relative);
        }
    }
    Ok(())
}

fn suite_error(dir: &Path, message: String) -> Error {
    Error::Suite {
        source_name: dir.display().to_string(),
        message,
    }
}

/// Unpacks a suite tar into `dest` (which must exist). Only regular files
/// with relative paths and no `..` are written; anything else (links,
/// devices, absolute paths, escapes) refuses the whole suite, as do more
/// than [`MAX_SUITE_FILES`] files or [`MAX_SUITE_BYTES`] bytes. `reference`
/// names it in errors.
pub fn unpack_suite(reference: &str, tar_bytes: &[u8], dest: &Path) -> Result<Vec<PathBuf>, Error> {
    let bad = |message: String| Error::Suite {
        source_name: reference.to_string(),
        message,
    };
    let mut archive = tar::Archive::new(tar_bytes);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    let mut written = Vec::new();
    let mut total = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a tar archive: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| bad(format!("bad entry name: {e}")))?
            .into_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(bad(format!(
                "{}: only regular files are allowed in a suite",
                path.display()
            )));
        }
        if path.as_os_str().is_empty()
            || !path.components().all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(bad(format!(
                "{}: entry paths must be relative, without ..",
                path.display()
            )));
        }
        if written.len() >= MAX_SUITE_FILES {
            return Err(bad(format!("more than {MAX_SUITE_FILES} files")));
        }
        let mut bytes = Vec::new();
        entry
            .by_ref()
            .take(MAX_SUITE_BYTES - total + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("{}: {e}", path.display())))?;
        total += bytes.len() as u64;
        if total > MAX_SUITE_BYTES {
            return Err(bad(format!("more than {MAX_SUITE_BYTES} bytes unpacked")));
        }
        let target = dest.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::Io {
                path: parent.to_path_buf(),
                source: e,
            })?;
        }
        std::fs::write(&target, &bytes).map_err(|e| Error::Io {
            path: target.clone(),
            source: e,
        })?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_packing_is_reproducible_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("golden")).unwrap();
        std::fs::write(dir.path().join("b.tessera.yaml"), "cases: []\n").unwrap();
        std::fs::write(dir.path().join("golden/out.yaml"), "kind: X\n").unwrap();
        let first = pack_suite(dir.path()).unwrap();
        // Touch a file: its mtime changes, the tar does not.
        std::fs::write(dir.path().join("b.tessera.yaml"), "cases: []\n").unwrap();
        assert_eq!(first, pack_suite(dir.path()).unwrap());

        let out = tempfile::tempdir().unwrap();
        let files = unpack_suite("oci://r/x:1", &first, out.path()).unwrap();
        assert_eq!(
            files,
            vec![
                PathBuf::from("b.tessera.yaml"),
                PathBuf::from("golden/out.yaml")
            ]
        );
        assert_eq!(
            std::fs::read_to_string(out.path().join("golden/out.yaml")).unwrap(),
            "kind: X\n"
        );
    }

    #[test]
    fn unpacking_refuses_escapes_and_links() {
        let out = tempfile::tempdir().unwrap();
        // A header whose name climbs out of the destination, written raw
        // (the tar crate refuses to build one).
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..12].copy_from_slice(b"../escape.tx");
        header.set_size(1);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(&[b'x'; 512]);
        bytes.extend_from_slice(&[0; 1024]);
        let message = unpack_suite("oci://r/x:1", &bytes, out.path())
            .unwrap_err()
            .to_string();
        assert!(message.contains("without .."), "{message}");
        assert!(!out.path().parent().unwrap().join("escape.tx").exists());

        let mut builder = tar::Builder::new(Vec::new());
        let mut link = tar::Header::new_ustar();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, "passwd", "/etc/passwd")
            .unwrap();
        let bytes = builder.into_inner().unwrap();
        let message = unpack_suite("oci://r/x:1", &bytes, out.path())
            .unwrap_err()
            .to_string();
        assert!(message.contains("only regular files"), "{message}");
    }

    #[test]
    fn manifest_has_the_wasm_layout() {
        let artifact = Artifact {
            component: b"\0asm\x0d\0\x01\0".to_vec(),
            metadata: Some(json!({"name": "x"})),
            suite: None,
        };
        let (config, layers) = artifact.blobs();
        let manifest: Value =
            serde_json::from_slice(&Artifact::manifest(&config, &layers)).unwrap();
        assert_eq!(manifest["artifactType"], ARTIFACT_TYPE);
        assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        assert_eq!(manifest["layers"][0]["mediaType"], WASM_MEDIA_TYPE);
        assert_eq!(
            manifest["layers"][0]["digest"],
            Digest::of(&artifact.component).to_string()
        );
        assert_eq!(manifest["layers"][1]["mediaType"], METADATA_MEDIA_TYPE);
        assert_eq!(artifact.digest(), artifact.clone().digest());
    }
}
