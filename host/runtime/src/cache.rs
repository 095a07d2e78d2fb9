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
//!
//! The cache also remembers the sha256 of plugin files it has loaded, in
//! `digests/` ([`ArtifactCache::remembered_digest`]), keyed by the file's
//! device and inode and checked against its size, modification and change
//! times, the way git's index and cargo's fingerprints avoid re-reading
//! unchanged files: hashing a 300 KB plugin was a third of a cached load.
//! Only the kernel sets the change time (any write, rename, `chmod` or
//! `utimes` moves it to the current time), and a digest is only remembered
//! for bytes read through one open file whose stamp did not change during
//! the read and whose change time was at least [`SETTLED`] old when the read
//! began, so a second write in the same timestamp tick cannot go unnoticed.
//! The digests get the same ownership checks as the entries. Not for
//! network file systems that cache attributes (NFS `actimeo`): there a
//! rewritten file may show its old stamp for a while; use `--no-cache` or
//! a local copy of the plugin.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Marks a Tessera cache file; also versions the file format.
const MAGIC: &[u8; 8] = b"TSRCWA02";
const TRAILER: usize = 4 + MAGIC.len();

/// How long a file must have been unchanged before its digest is
/// remembered: more than the coarsest timestamp granularity of the file
/// systems in use (ext4 and xfs record the kernel's coarse clock; FAT keeps
/// two seconds).
const SETTLED: std::time::Duration = std::time::Duration::from_secs(3);

/// Marks a remembered digest; versions its format.
const DIGEST_MAGIC: &str = "tessera-digest-v1";

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

/// The identity of a plugin file as `stat` reports it: where it is (device,
/// inode) and everything that changes when its contents do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    pub(crate) fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The file's size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Whether the file last changed at least [`SETTLED`] before `read_at`.
    fn settled(&self, read_at: std::time::SystemTime) -> bool {
        let now = read_at
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let changed = std::time::Duration::new(
            u64::try_from(self.ctime.0).unwrap_or(0),
            u32::try_from(self.ctime.1).unwrap_or(0),
        );
        now.checked_sub(changed).is_some_and(|age| age >= SETTLED)
    }

    fn line(&self, hex: &str) -> String {
        format!(
            "{DIGEST_MAGIC} {} {} {} {} {} {} {} {hex}\n",
            self.dev, self.ino, self.size, self.mtime.0, self.mtime.1, self.ctime.0, self.ctime.1
        )
    }
}

impl ArtifactCache {
    fn digest_path(&self, stamp: &FileStamp) -> PathBuf {
        self.dir
            .join("digests")
            .join(format!("{:x}-{:x}", stamp.dev, stamp.ino))
    }

    /// The sha256 (hex, no prefix) remembered for the file `stamp`
    /// describes, if the cache holds one for exactly this state of the file.
    pub(crate) fn remembered_digest(&self, stamp: &FileStamp) -> Option<String> {
        let path = self.digest_path(stamp);
        private(&self.dir).ok()?;
        private(path.parent()?).ok()?;
        private(&path).ok()?;
        let text = std::fs::read_to_string(&path).ok()?;
        let hex = text.trim_end().rsplit(' ').next()?;
        let valid = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        (valid && text == stamp.line(hex)).then(|| hex.to_string())
    }

    /// Remembers `hex` as the digest of the bytes read from the open file
    /// stamped `before` and `after` the read, which began at `read_at`:
    /// only when the stamps agree and the file had not changed for
    /// [`SETTLED`] by then. Failures only cost the next load a hash.
    pub(crate) fn remember_digest(
        &self,
        before: &FileStamp,
        after: &FileStamp,
        hex: &str,
        read_at: std::time::SystemTime,
    ) {
        if before != after || !before.settled(read_at) {
            return;
        }
        let path = self.digest_path(before);
        let written = (|| {
            use std::os::unix::fs::DirBuilderExt;
            let dir = path.parent().unwrap_or(&self.dir);
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            let mut file = tempfile::NamedTempFile::new_in(dir)?;
            file.write_all(before.line(hex).as_bytes())?;
            file.persist(&path).map_err(|e| e.error)?;
            std::io::Result::Ok(())
        })();
        if let Err(e) = written {
            tracing::debug!("cannot remember the digest in {}: {e}", path.display());
        }
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn cache(dir: &Path) -> ArtifactCache {
        ArtifactCache {
            dir: dir.to_path_buf(),
            engine_key: "0".repeat(16),
        }
    }

    fn stamp(changed_secs_ago: u64) -> FileStamp {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let changed = i64::try_from(now - changed_secs_ago).unwrap();
        FileStamp {
            dev: 0x803,
            ino: 42,
            size: 300_000,
            mtime: (changed, 5),
            ctime: (changed, 7),
        }
    }

    const HEX: &str = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12";

    #[test]
    fn a_digest_is_remembered_for_exactly_one_state_of_a_settled_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        let settled = stamp(60);
        assert_eq!(cache.remembered_digest(&settled), None);
        cache.remember_digest(&settled, &settled, HEX, SystemTime::now());
        assert_eq!(cache.remembered_digest(&settled).as_deref(), Some(HEX));
        let changes: [fn(&mut FileStamp); 4] = [
            |s| s.size += 1,
            |s| s.mtime.1 += 1,
            |s| s.ctime.1 += 1,
            |s| s.ctime.0 += 1,
        ];
        for change in changes {
            let mut other = settled.clone();
            change(&mut other);
            assert_eq!(cache.remembered_digest(&other), None, "{other:?}");
        }
    }

    #[test]
    fn a_file_that_just_changed_or_changed_while_read_is_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        let recent = stamp(1);
        cache.remember_digest(&recent, &recent, HEX, SystemTime::now());
        assert_eq!(cache.remembered_digest(&recent), None);
        // Settled now, but not yet when its bytes were read (a slow compile
        // in between).
        let read_at = SystemTime::now() - Duration::from_secs(58);
        let changed = stamp(60);
        cache.remember_digest(&changed, &changed, HEX, read_at);
        assert_eq!(cache.remembered_digest(&changed), None);
        let before = stamp(60);
        let mut after = before.clone();
        after.ctime.0 += 30;
        cache.remember_digest(&before, &after, HEX, SystemTime::now());
        assert_eq!(cache.remembered_digest(&before), None);
        assert_eq!(cache.remembered_digest(&after), None);
    }

    #[test]
    fn a_damaged_or_shared_digest_file_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        let settled = stamp(60);
        cache.remember_digest(&settled, &settled, HEX, SystemTime::now());
        let path = cache.digest_path(&settled);
        let line = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &line[..line.len() - 5]).unwrap();
        assert_eq!(cache.remembered_digest(&settled), None, "truncated");
        std::fs::write(&path, line.replace(HEX, &HEX.replace('a', "z"))).unwrap();
        assert_eq!(cache.remembered_digest(&settled), None, "not hex");
        std::fs::write(&path, &line).unwrap();
        assert_eq!(cache.remembered_digest(&settled).as_deref(), Some(HEX));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(
            cache.remembered_digest(&settled),
            None,
            "writable by others"
        );
    }
}
