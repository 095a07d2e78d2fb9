//! An on-disk cache of precompiled plugins.
//!
//! An entry is keyed by the sha256 of the plugin's `.wasm` and by the
//! engine's compatibility hash (wasmtime version, target and the compilation
//! settings that matter), so an artifact is only ever loaded into an engine
//! configured like the one that made it. Both halves of the key are SHA-256
//! over bytes this module spells out ([`entry_name`], [`engine_key`]), not
//! std's `DefaultHasher`, whose output may change with any Rust release.
//! Each file ends with a trailer that
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
//!
//! Old entries do not pile up: after each write the cache evicts the least
//! recently used artifacts until they take at most [`MAX_CACHE_BYTES`]
//! ([`evict`] says how "used" is tracked and why a concurrent process
//! cannot make that fail).

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};
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

/// The first bytes hashed into an [`engine_key`]; versions how the key is
/// derived, so a change to the encoding below can never match an entry
/// written under the old one.
const ENGINE_KEY_DOMAIN: &[u8] = b"tessera-engine-key-v1\0";

/// The most bytes of artifacts the cache keeps: 1 GiB. A Rust plugin's
/// artifact is 0.3-1 MB, so this holds a thousand or more plugin builds,
/// while every rebuilt plugin (a new digest) and every wasmtime upgrade or
/// engine setting (a new engine key) leaves an entry nothing will load
/// again; without a cap those fill the disk.
pub(crate) const MAX_CACHE_BYTES: u64 = 1 << 30;

/// How stale an entry's modification time may get before a cached load
/// moves it to now (the use stamp [`evict`] sorts by). An hour keeps the
/// cost of a cached load at one write per entry per hour, and an hour's
/// error in the order of eviction does not matter.
const TOUCH_AFTER: Duration = Duration::from_secs(60 * 60);

/// Temporary files older than this are left over from a process that died
/// while writing (a write takes milliseconds) and are removed by [`evict`].
const STALE_TEMP: Duration = Duration::from_secs(60 * 60);

/// How the temporary file of an entry being written is named, so that
/// [`evict`] removes only its own leftovers.
const TEMP_PREFIX: &str = ".tessera-tmp";

/// The cache directory and the engine's key.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
    max_bytes: u64,
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
        ArtifactCache {
            dir,
            engine_key: engine_key(engine),
            max_bytes: MAX_CACHE_BYTES,
        }
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
        self.dir.join(entry_name(wasm_hex, &self.engine_key))
    }

    /// Loads a cached artifact, checking ownership, permissions and the
    /// trailer before wasmtime sees it.
    pub(crate) fn load(&self, engine: &Engine, wasm_hex: &str) -> Result<Component, Miss> {
        let path = self.entry_path(wasm_hex);
        if !path.exists() {
            return Err(Miss::Absent);
        }
        if let Err(why) = private(&self.dir) {
            return Err(Miss::Rejected(format!("{}: {why}", self.dir.display())));
        }
        let meta =
            private(&path).map_err(|why| Miss::Rejected(format!("{}: {why}", path.display())))?;
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
        let component =
            component.map_err(|e| Miss::Rejected(format!("{}: {e}", path.display())))?;
        touch_if_stale(&path, &meta, SystemTime::now());
        Ok(component)
    }

    /// Stores an artifact, then evicts old entries down to the size cap
    /// ([`evict`]). Failures are reported, not fatal: the plugin is already
    /// compiled.
    pub(crate) fn store(&self, wasm_hex: &str, artifact: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let mut file = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.dir)?;
        file.write_all(artifact)?;
        file.write_all(&crc32fast::hash(artifact).to_le_bytes())?;
        file.write_all(MAGIC)?;
        file.as_file().sync_all()?;
        let path = self.entry_path(wasm_hex);
        file.persist(&path).map_err(|e| e.error)?;
        evict(&self.dir, &path, self.max_bytes, SystemTime::now());
        Ok(())
    }
}

/// The file name of the entry for a plugin whose `.wasm` has the SHA-256
/// `wasm_hex`, compiled by an engine whose [`engine_key`] is `engine_key`:
/// `<wasm_hex>-<engine_key>.cwasm`, both lower-case hex. The plugin digest
/// comes first so that a listing groups one plugin's entries.
fn entry_name(wasm_hex: &str, engine_key: &str) -> String {
    format!("{wasm_hex}-{engine_key}.cwasm")
}

/// Whether `name` is an entry's file name for any engine key: 64 hex
/// digits, `-`, hex digits, `.cwasm`.
fn is_entry_name(name: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    name.strip_suffix(".cwasm")
        .and_then(|stem| stem.split_once('-'))
        .is_some_and(|(wasm, engine)| wasm.len() == 64 && hex(wasm) && hex(engine))
}

/// The engine half of an entry's key: the lower-case hex SHA-256 of
/// [`ENGINE_KEY_DOMAIN`] followed by the bytes of wasmtime's
/// [`Engine::precompile_compatibility_hash`] as [`Sha256Hasher`] encodes
/// them.
///
/// wasmtime exposes what decides whether an artifact fits an engine (the
/// target triple, Cranelift's shared and ISA flags, the tunables, the
/// enabled wasm features and wasmtime's own version) only as an
/// `impl Hash`, so the bytes are those its `Hash` implementations write:
/// integers fixed-width little-endian (`usize`/`isize` widened to 64 bits),
/// byte strings as written, `str` as its bytes then `0xff` (std's
/// `Hasher::write_str`). A hasher that std is free to change between
/// releases (`DefaultHasher`) would orphan every entry on a toolchain
/// upgrade; this encoding changes only when wasmtime's compatibility state
/// or std's `Hash` impls for those types do, and then costs one recompile
/// per plugin, the old entries aging out under [`MAX_CACHE_BYTES`].
/// wasmtime also checks its own header when an entry is loaded, so a key
/// that matched wrongly would still be refused.
fn engine_key(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    hasher.0.update(ENGINE_KEY_DOMAIN);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(hasher.0.finalize())
}

/// A [`Hasher`] that feeds SHA-256 with an explicit encoding of what it is
/// given ([`engine_key`]): each integer as fixed-width little-endian bytes,
/// whatever the platform, instead of std's native-endian defaults.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    /// The first 8 bytes of the digest so far (only the full digest is used
    /// as a key).
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn write_u8(&mut self, i: u8) {
        self.0.update([i]);
    }
    fn write_u16(&mut self, i: u16) {
        self.0.update(i.to_le_bytes());
    }
    fn write_u32(&mut self, i: u32) {
        self.0.update(i.to_le_bytes());
    }
    fn write_u64(&mut self, i: u64) {
        self.0.update(i.to_le_bytes());
    }
    fn write_u128(&mut self, i: u128) {
        self.0.update(i.to_le_bytes());
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn write_i8(&mut self, i: i8) {
        self.write_u8(i as u8);
    }
    fn write_i16(&mut self, i: i16) {
        self.write_u16(i as u16);
    }
    fn write_i32(&mut self, i: i32) {
        self.write_u32(i as u32);
    }
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
    fn write_i128(&mut self, i: i128) {
        self.write_u128(i as u128);
    }
    fn write_isize(&mut self, i: isize) {
        self.write_i64(i as i64);
    }
}

/// Moves the modification time of the entry at `path` (`meta` is its
/// metadata) to `now` when it is more than [`TOUCH_AFTER`] old: that time
/// is the entry's last use for [`evict`]. Only the times change, never the
/// bytes (a mapped entry stays valid). Failures (a read-only cache, an
/// entry just evicted by another process) only make eviction less exact.
fn touch_if_stale(path: &Path, meta: &std::fs::Metadata, now: SystemTime) {
    let stale = meta
        .modified()
        .ok()
        .and_then(|modified| now.duration_since(modified).ok())
        .is_some_and(|age| age > TOUCH_AFTER);
    if stale {
        let touched = std::fs::File::options()
            .append(true)
            .open(path)
            .and_then(|file| file.set_modified(now));
        if let Err(e) = touched {
            tracing::debug!("cannot mark {} as used: {e}", path.display());
        }
    }
}

/// Removes the least recently used artifacts in `dir` until the ones left
/// take at most `max_bytes`, never `keep` (the entry just written, which
/// stays even when it alone is larger), and removes this cache's temporary
/// files older than [`STALE_TEMP`].
///
/// An entry's last use is its modification time: set when it is written,
/// moved forward by a cached load ([`touch_if_stale`]); the oldest goes
/// first, ties by name. Every regular file named like an entry
/// ([`is_entry_name`]) counts, including entries of other engine keys
/// (older wasmtime versions, other settings, the 16-digit keys of earlier
/// Tessera releases) that this engine never loads; other files are left
/// alone. Other processes may be loading, writing or
/// evicting in the same directory: an entry that vanishes or cannot be
/// removed is skipped, and nothing here fails the store. Removing an entry
/// another process has mapped is safe (the kernel keeps its pages until it
/// is unmapped); that process's next load of it compiles it again.
fn evict(dir: &Path, keep: &Path, max_bytes: u64, now: SystemTime) {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries = Vec::new();
    let mut total: u64 = 0;
    for item in listing.flatten() {
        let path = item.path();
        let Ok(meta) = item.metadata() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let name = item.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TEMP_PREFIX) {
            if now
                .duration_since(modified)
                .is_ok_and(|age| age > STALE_TEMP)
            {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        if !is_entry_name(&name) {
            continue;
        }
        total = total.saturating_add(meta.len());
        if path != keep {
            entries.push((modified, path, meta.len()));
        }
    }
    entries.sort();
    for (_, path, len) in entries {
        if total <= max_bytes {
            break;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::debug!("evicted {} from the cache", path.display());
                total -= len;
            }
            // Gone already: another process evicted or replaced it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => total -= len,
            Err(e) => tracing::debug!("cannot evict {}: {e}", path.display()),
        }
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
/// to it; its metadata when it does.
fn private(path: &Path) -> Result<std::fs::Metadata, String> {
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
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn cache(dir: &Path) -> ArtifactCache {
        ArtifactCache {
            dir: dir.to_path_buf(),
            engine_key: "0".repeat(16),
            max_bytes: MAX_CACHE_BYTES,
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

    /// An entry holding 1000 bytes of artifact, with its trailer.
    const ENTRY: u64 = 1000 + TRAILER as u64;

    fn digest(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn set_used(path: &Path, at: SystemTime) {
        let file = std::fs::File::options().append(true).open(path).unwrap();
        file.set_modified(at).unwrap();
    }

    fn cwasm_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| is_entry_name(n))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_write_evicts_the_least_recently_used_entries_down_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = cache(dir.path());
        let now = SystemTime::now();
        let hours_ago = |h: u64| now - Duration::from_secs(h * 3600);
        for (c, hours) in [('a', 4), ('b', 3), ('c', 2), ('d', 1)] {
            cache.store(&digest(c), &[0; 1000]).unwrap();
            set_used(&cache.entry_path(&digest(c)), hours_ago(hours));
        }
        // An entry for another engine key (an older wasmtime) counts too.
        let foreign = dir.path().join(entry_name(&digest('e'), &"f".repeat(64)));
        std::fs::write(&foreign, [0; ENTRY as usize]).unwrap();
        set_used(&foreign, hours_ago(5));
        // Files that are not entries are not counted or touched.
        std::fs::write(dir.path().join("notes.txt"), [0; 5000]).unwrap();
        std::fs::write(dir.path().join("compiled.cwasm"), [0; 5000]).unwrap();
        // A cached load of `b` makes it the most recently used.
        let b = cache.entry_path(&digest('b'));
        touch_if_stale(&b, &std::fs::metadata(&b).unwrap(), now);

        cache.max_bytes = 3 * ENTRY;
        cache.store(&digest('f'), &[0; 1000]).unwrap();
        assert_eq!(
            cwasm_names(dir.path()),
            [
                &cache.entry_path(&digest('b')),
                &cache.entry_path(&digest('d')),
                &cache.entry_path(&digest('f'))
            ]
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned()),
            "e (5 h), a (4 h) and c (2 h) went, oldest first"
        );
        assert!(dir.path().join("notes.txt").exists());
        assert!(dir.path().join("compiled.cwasm").exists());
    }

    #[test]
    fn the_entry_written_stays_even_when_it_alone_is_over_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = cache(dir.path());
        cache.max_bytes = 10;
        cache.store(&digest('a'), &[0; 1000]).unwrap();
        assert!(cache.entry_path(&digest('a')).exists());
        cache.store(&digest('b'), &[0; 1000]).unwrap();
        assert!(!cache.entry_path(&digest('a')).exists());
        assert!(cache.entry_path(&digest('b')).exists());
    }

    #[test]
    fn temporary_files_left_by_a_dead_writer_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        let (old, fresh) = (
            dir.path().join(format!("{TEMP_PREFIX}OLD")),
            dir.path().join(format!("{TEMP_PREFIX}NEW")),
        );
        let foreign = dir.path().join(".tmpOLD");
        std::fs::write(&old, b"half an entry").unwrap();
        std::fs::write(&fresh, b"being written").unwrap();
        std::fs::write(&foreign, b"someone else's").unwrap();
        for path in [&old, &foreign] {
            set_used(path, SystemTime::now() - Duration::from_secs(2 * 3600));
        }
        cache.store(&digest('a'), &[0; 1000]).unwrap();
        assert!(!old.exists());
        assert!(fresh.exists(), "may be another process's write in progress");
        assert!(foreign.exists(), "not this cache's");
    }

    #[test]
    fn concurrent_writers_evicting_in_one_directory_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = cache(dir.path());
        cache.max_bytes = 5 * ENTRY;
        std::thread::scope(|scope| {
            for thread in 0..8u32 {
                let cache = cache.clone();
                scope.spawn(move || {
                    for i in 0..20u32 {
                        let hex = format!("{thread:032x}{i:032x}");
                        cache.store(&hex, &[0; 1000]).unwrap();
                    }
                });
            }
        });
        cache.store(&digest('a'), &[0; 1000]).unwrap();
        let names = cwasm_names(dir.path());
        assert!(names.len() <= 5, "{names:?}");
        assert!(cache.entry_path(&digest('a')).exists());
    }

    #[test]
    fn a_cached_load_moves_the_use_stamp_only_when_it_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entry.cwasm");
        std::fs::write(&path, b"artifact").unwrap();
        let now = SystemTime::now();
        let recent = now - Duration::from_secs(600);
        set_used(&path, recent);
        touch_if_stale(&path, &std::fs::metadata(&path).unwrap(), now);
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            recent
        );
        set_used(&path, now - Duration::from_secs(2 * 3600));
        touch_if_stale(&path, &std::fs::metadata(&path).unwrap(), now);
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), now);
        assert_eq!(std::fs::read(&path).unwrap(), b"artifact");
    }

    #[test]
    fn the_engine_key_is_sha256_of_a_fixed_encoding() {
        // The encoding `engine_key` documents: integers little-endian and
        // fixed-width (usize as 8 bytes), a str as its bytes then 0xff.
        let mut hasher = Sha256Hasher(Sha256::new());
        (1u32, "ab", 7usize, -1i16).hash(&mut hasher);
        let mut expected = Sha256::new();
        expected.update([
            1, 0, 0, 0, b'a', b'b', 0xff, 7, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
        ]);
        assert_eq!(hasher.0.finalize(), expected.finalize());

        let engine = |fuel: bool| {
            let mut config = wasmtime::Config::new();
            config.consume_fuel(fuel);
            Engine::new(&config).unwrap()
        };
        let key = engine_key(&engine(false));
        assert_eq!(key.len(), 64);
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(
            key,
            engine_key(&engine(false)),
            "the same configuration, the same key"
        );
        assert_ne!(
            key,
            engine_key(&engine(true)),
            "another configuration, another key"
        );
        assert_eq!(
            entry_name(&digest('a'), &key),
            format!("{}-{key}.cwasm", digest('a'))
        );
    }
}
