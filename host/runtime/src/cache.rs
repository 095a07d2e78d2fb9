//! An on-disk cache of precompiled plugins.
//!
//! An entry is keyed by the sha256 of the plugin's `.wasm` and by the
//! engine's compatibility hash (wasmtime version, target and the compilation
//! settings that matter), so an artifact is only ever loaded into an engine
//! configured like the one that made it. Each file ends with a trailer that
//! holds a CRC-32 of the artifact; an entry whose trailer does not match
//! (truncated, corrupted, or not ours) is recompiled, never loaded. CRC-32
//! rather than a cryptographic hash: it only has to catch accidents, and at
//! several GB/s it keeps a cached load well under a millisecond (a SHA-256
//! of the ~700 KB artifact was most of the load time; BENCHMARKS.md).
//! Entries are written to a temporary file and renamed into place, so a
//! reader never sees half an entry.
//!
//! The checksum catches corruption, not tampering: anyone who can write to the
//! cache directory can plant native code that runs outside the sandbox. So the
//! directory is created private (0700), and an entry is used only when it and
//! its directory belong to this user and are writable by nobody else;
//! otherwise the plugin is compiled from its bytes. The cache directory is
//! part of what the host trusts (SECURITY.md).

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Marks a Tessera cache file; also versions the file format.
const MAGIC: &[u8; 8] = b"TSRCWA02";
const TRAILER: usize = 4 + MAGIC.len();

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

    /// Loads a cached artifact, checking ownership, permissions and the
    /// trailer before wasmtime sees it.
    pub(crate) fn load(&self, engine: &Engine, wasm_hex: &str) -> Result<Component, Miss> {
        let path = self.entry_path(wasm_hex);
        if !path.exists() {
            return Err(Miss::Absent);
        }
        for checked in [self.dir.as_path(), path.as_path()] {
            if let Err(why) = private(checked) {
                return Err(Miss::Rejected(format!("{}: {why}", checked.display())));
            }
        }
        let io_error = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Miss::Absent
            } else {
                Miss::Rejected(format!("{}: {e}", path.display()))
            }
        };
        let verified = verify(&path).map_err(io_error)?;
        if let Err(why) = verified {
            return Err(Miss::Rejected(format!("{}: {why}", path.display())));
        }
        // SAFETY: wasmtime requires that deserialized bytes were produced by
        // `Component::serialize` of a compatible engine and not tampered with.
        // The entry and its directory belong to this user and nobody else can
        // write them (checked above), so only this user's processes (this
        // cache) wrote it; the checksum rules out truncation and corruption
        // at rest; the file name binds it to this plugin digest and engine
        // configuration, and wasmtime re-checks the engine compatibility
        // header and rejects a mismatch with an error. wasmtime maps the
        // file instead of copying it (its code and data pages come straight
        // from the page cache; the trailer after the object is ignored).
        // The check and the mapping open the path separately, and a mapped
        // file truncated in place would fault: both need this user's own
        // processes to rewrite the entry in place, which this cache never
        // does (entries are replaced by rename).
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize_file(engine, &path) };
        component.map_err(|e| Miss::Rejected(format!("{}: {e}", path.display())))
    }

    /// Stores an artifact. Failures are reported, not fatal: the plugin is
    /// already compiled.
    pub(crate) fn store(&self, wasm_hex: &str, artifact: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(artifact)?;
        file.write_all(&crc32fast::hash(artifact).to_le_bytes())?;
        file.write_all(MAGIC)?;
        file.as_file().sync_all()?;
        file.persist(self.entry_path(wasm_hex))
            .map_err(|e| e.error)?;
        Ok(())
    }
}

/// Checks an entry's trailer (magic and CRC-32 of everything before it),
/// reading the file in small chunks rather than into one buffer: the
/// artifact itself is then mapped by wasmtime, never copied. The outer
/// error is I/O, the inner one why the entry is not acceptable.
fn verify(path: &Path) -> std::io::Result<Result<(), String>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let Some(artifact_len) = len.checked_sub(TRAILER as u64) else {
        return Ok(Err("not a Tessera cache entry".into()));
    };
    let mut trailer = [0u8; TRAILER];
    file.seek(SeekFrom::Start(artifact_len))?;
    file.read_exact(&mut trailer)?;
    if trailer[4..] != *MAGIC {
        return Ok(Err("not a Tessera cache entry".into()));
    }
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut left = artifact_len;
    while left > 0 {
        let n = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        file.read_exact(&mut chunk[..n])?;
        hasher.update(&chunk[..n]);
        left -= n as u64;
    }
    if hasher.finalize().to_le_bytes() != trailer[..4] {
        return Ok(Err("checksum mismatch".into()));
    }
    Ok(Ok(()))
}

/// Whether `path` belongs to this process's user and nobody else can write
/// to it.
fn private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    // The owner of /proc/self is the process's effective user on Linux.
    if let Ok(me) = std::fs::metadata("/proc/self")
        && meta.uid() != me.uid()
    {
        return Err(format!("owned by uid {}, not this user", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "writable by others (mode {:o})",
            meta.mode() & 0o777
        ));
    }
    Ok(())
}
