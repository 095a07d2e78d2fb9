//! An on-disk cache of precompiled plugins.
//!
//! An entry is keyed by the sha256 of the plugin's `.wasm` and by the
//! engine's compatibility hash (wasmtime version, target and the compilation
//! settings that matter), so an artifact is only ever loaded into an engine
//! configured like the one that made it. Each file ends with a trailer that
//! holds the sha256 of the artifact; an entry whose trailer does not match
//! (truncated, corrupted, or not ours) is recompiled, never loaded.
//! Entries are written to a temporary file and renamed into place, so a
//! reader never sees half an entry.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Marks a Tessera cache file; also versions the file format.
const MAGIC: &[u8; 8] = b"TSRCWA01";
const TRAILER: usize = 32 + MAGIC.len();

/// The cache directory and the engine's key.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
}

/// Why an entry was not used.
#[derive(Debug)]
pub(crate) enum Miss {
    /// There is no entry.
    Absent,
    /// There is an entry, but it is not a valid artifact for this engine.
    Rejected(String),
}

impl ArtifactCache {
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{:016x}", hasher.finish());
        ArtifactCache { dir, engine_key }
    }

    /// The default directory: `$TESSERA_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/tessera`, else `~/.cache/tessera`.
    pub(crate) fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("TESSERA_CACHE_DIR").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir).join("tessera"));
        }
        std::env::var_os("HOME")
            .filter(|d| !d.is_empty())
            .map(|home| PathBuf::from(home).join(".cache").join("tessera"))
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the artifact for a plugin digest (`hex` without prefix) lives.
    pub(crate) fn entry_path(&self, wasm_hex: &str) -> PathBuf {
        self.dir
            .join(format!("{wasm_hex}-{}.cwasm", self.engine_key))
    }

    /// Loads a cached artifact, checking its trailer before wasmtime sees it.
    pub(crate) fn load(&self, engine: &Engine, wasm_hex: &str) -> Result<Component, Miss> {
        let path = self.entry_path(wasm_hex);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Miss::Absent),
            Err(e) => return Err(Miss::Rejected(format!("{}: {e}", path.display()))),
        };
        if bytes.len() < TRAILER || &bytes[bytes.len() - MAGIC.len()..] != MAGIC {
            return Err(Miss::Rejected(format!(
                "{}: not a Tessera cache entry",
                path.display()
            )));
        }
        let (artifact, trailer) = bytes.split_at(bytes.len() - TRAILER);
        if Sha256::digest(artifact).as_slice() != &trailer[..32] {
            return Err(Miss::Rejected(format!(
                "{}: checksum mismatch",
                path.display()
            )));
        }
        // SAFETY: wasmtime requires that deserialized bytes were produced by
        // `Component::serialize` of a compatible engine and not tampered with.
        // The checksum above proves the bytes are exactly what this cache
        // wrote, the file name binds them to this plugin digest and engine
        // configuration, and wasmtime itself re-checks the engine
        // compatibility header and rejects a mismatch with an error.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, artifact) };
        component.map_err(|e| Miss::Rejected(format!("{}: {e}", path.display())))
    }

    /// Stores an artifact. Failures are reported, not fatal: the plugin is
    /// already compiled.
    pub(crate) fn store(&self, wasm_hex: &str, artifact: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(artifact)?;
        file.write_all(&Sha256::digest(artifact))?;
        file.write_all(MAGIC)?;
        file.as_file().sync_all()?;
        file.persist(self.entry_path(wasm_hex))
            .map_err(|e| e.error)?;
        Ok(())
    }
}
