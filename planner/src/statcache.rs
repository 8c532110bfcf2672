//! The stat cache: remembers each source file's digest under its `lstat` result, so that an
//! unchanged tree is planned by a stat walk, without reading a byte of it.
//!
//! # When a cached digest is trusted
//!
//! An entry is `(relative path, st_mode, size, mtime, ctime, inode) → blake3 digest`. A file
//! whose stat equals its entry is not read again, with one exception taken from git's index
//! ("racy git"): a file can be changed right after it was hashed and keep the same mtime when
//! the filesystem's clock ticks coarser than the change. So every cache carries a stamp, and an
//! entry whose mtime is within one second of the stamp, or after it, is hashed again even when
//! its stat matches. The stamp is the time the scan that recorded the entries *started*, not
//! the time the file was written: every digest in the cache was computed after that moment,
//! so a file last modified more than a second before it cannot have been changed since in the
//! same clock tick. (A stamp taken when the file is written, after a long scan, would be later
//! than some hashes by more than a second, and could vouch for a file changed just after its
//! hash.) Entries found fresh by this rule are re-hashed on every scan until a scan that starts
//! more than a second after their mtime records them.
//!
//! ctime and inode catch what size and mtime miss: a tool that rewrites a file and then puts
//! its old mtime back (`touch -r`, `rsync -t`, some checkouts) still moves its ctime, which no
//! program can set, and a file replaced by a rename has a new inode. The limits: a filesystem
//! with no real ctime or inode numbers (some FUSE and network filesystems) leaves only size and
//! mtime; a clock set backwards can repeat old timestamps; and the racy rule compares file
//! mtimes, set by the filesystem's clock, with the stamp, set by this machine's clock, which
//! for a network filesystem may differ by more than a second.
//!
//! # On disk
//!
//! One file per app root, chosen by the caller ([`stat_cache_path`]). Version 1 is binary,
//! little-endian:
//!
//! ```text
//! magic "strata-stat\0" (12 bytes), version u32, stamp i64 (ns since the Unix epoch),
//! root: u32 length + bytes, entry count u64,
//! entries sorted by path bytes, each: path u32 length + bytes, st_mode u32, size u64,
//!   mtime i64 ns, ctime i64 ns, inode u64, digest 32 bytes,
//! blake3 of everything before, 32 bytes.
//! ```
//!
//! Binary rather than JSON lines because loading is on the path of every warm scan: 20,000
//! entries are about 2 MB, read with one `read`, checked with one blake3 pass and parsed with
//! one allocation per path, in about a millisecond (JSON lines of the same entries are twice
//! the size and nearly ten times slower to load). Entries are sorted so that a scan
//! joins them with the sorted walk in one pass, without a hash map. A missing file, another
//! version, a bad checksum or any malformed byte makes an empty cache (a full re-hash, never an
//! error): the checksum also catches a file torn by a crash, since it is written without fsync.
//! Saving writes a temp file beside the cache and renames it over: readers see the old or the
//! new file whole, and of two processes saving at once the last rename wins.

use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::SourceError;

const MAGIC: &[u8; 12] = b"strata-stat\0";
const VERSION: u32 = 1;
/// How close to the stamp an mtime must be for its entry to be re-hashed.
const RACY_WINDOW_NS: i64 = 1_000_000_000;
/// Bytes in an entry besides its path.
const ENTRY_FIXED: usize = 4 + 4 + 8 + 8 + 8 + 8 + 32;

/// What `lstat` says about a file, as far as the cache compares it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Stat {
    /// `st_mode`: file type and permission bits.
    pub(crate) mode: u32,
    pub(crate) size: u64,
    pub(crate) mtime_ns: i64,
    pub(crate) ctime_ns: i64,
    pub(crate) ino: u64,
}

impl Stat {
    pub(crate) fn of(meta: &fs::Metadata) -> Stat {
        Stat {
            mode: meta.mode(),
            size: meta.size(),
            mtime_ns: nanos(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: nanos(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
        }
    }
}

fn nanos(secs: i64, nsecs: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsecs)
}

/// Now, in nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |ns| -ns),
    }
}

/// One file's cached digest.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Entry {
    pub(crate) path: Box<str>,
    pub(crate) stat: Stat,
    pub(crate) digest: [u8; 32],
}

/// How a [`StatCache`] came to be what it is; for reports and tests.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StatCacheStatus {
    /// Made by [`StatCache::in_memory`]: never read from or written to disk.
    InMemory,
    /// There was no cache file: the first scan hashes every file.
    Missing,
    /// Read from its file.
    Loaded,
    /// The file was written by another version of the format, and ignored.
    Outdated,
    /// The file was malformed or failed its checksum, and was ignored.
    Corrupt,
    /// The file could not be read (for example, permissions), and was ignored.
    Unreadable,
}

/// Digests of an app root's files keyed by their stat, kept between scans (see the
/// [module notes](self)). [`scan`](crate::scan) reads and replaces its entries;
/// [`StatCache::save`] persists them.
#[derive(Debug)]
pub struct StatCache {
    path: Option<PathBuf>,
    /// The root whose files the entries describe; `None` until a scan says.
    root: Option<Vec<u8>>,
    stamp_ns: i64,
    entries: Vec<Entry>,
    status: StatCacheStatus,
    dirty: bool,
}

impl StatCache {
    /// Reads the cache at `path`. A missing, unreadable, outdated or corrupt file gives an empty
    /// cache, never an error: [`StatCache::status`] says which. [`StatCache::save`] writes back
    /// to `path`.
    pub fn load(path: &Path) -> StatCache {
        let mut cache = StatCache {
            path: Some(path.to_path_buf()),
            ..StatCache::in_memory()
        };
        cache.status = match fs::read(path) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => StatCacheStatus::Missing,
            Err(_) => StatCacheStatus::Unreadable,
            Ok(bytes) => match decode(&bytes) {
                Decoded::Cache {
                    stamp_ns,
                    root,
                    entries,
                } => {
                    cache.stamp_ns = stamp_ns;
                    cache.root = Some(root);
                    cache.entries = entries;
                    StatCacheStatus::Loaded
                }
                Decoded::Outdated => StatCacheStatus::Outdated,
                Decoded::Corrupt => StatCacheStatus::Corrupt,
            },
        };
        cache
    }

    /// An empty cache that lives only as long as this value; [`StatCache::save`] does nothing.
    pub fn in_memory() -> StatCache {
        StatCache {
            path: None,
            root: None,
            stamp_ns: i64::MIN,
            entries: Vec::new(),
            status: StatCacheStatus::InMemory,
            dirty: false,
        }
    }

    /// Writes the cache to the file it was loaded from, atomically: a temp file in the same
    /// directory renamed over the old one. Does nothing for an in-memory cache, or when no scan
    /// changed anything since the cache was loaded.
    ///
    /// # Errors
    ///
    /// [`SourceError::Save`] when the directory cannot be created or the file written.
    pub fn save(&self) -> Result<(), SourceError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let failed = |source| SourceError::Save {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(failed)?;
        }
        let bytes = encode(
            self.stamp_ns,
            self.root.as_deref().unwrap_or_default(),
            &self.entries,
        );
        let mut temp_name = path.file_name().unwrap_or_default().to_os_string();
        temp_name.push(format!(".{}.{}.tmp", std::process::id(), now_ns()));
        let temp = path.with_file_name(temp_name);
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .and_then(|mut file| file.write_all(&bytes))
            .and_then(|()| fs::rename(&temp, path));
        if let Err(source) = written {
            // Best effort: the temp file may not exist; the error that matters is the first.
            let _ = fs::remove_file(&temp);
            return Err(failed(source));
        }
        Ok(())
    }

    /// Where this cache is saved; `None` for an in-memory cache.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// How the cache was loaded.
    pub fn status(&self) -> StatCacheStatus {
        self.status
    }

    /// The number of files the cache knows.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache knows no file.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes the entries recorded for `root`, sorted by path; none when they describe another
    /// root. The scan gives back the new set with [`StatCache::replace`].
    pub(crate) fn take_entries(&mut self, root: &Path) -> Vec<Entry> {
        let entries = std::mem::take(&mut self.entries);
        match &self.root {
            Some(cached) if cached.as_slice() == root.as_os_str().as_bytes() => entries,
            _ => Vec::new(),
        }
    }

    /// Whether a file with this mtime, whose stat matches its entry, must still be re-hashed.
    pub(crate) fn is_racy(&self, mtime_ns: i64) -> bool {
        mtime_ns >= self.stamp_ns.saturating_sub(RACY_WINDOW_NS)
    }

    /// Replaces the entries with those of a scan of `root` that started at `stamp_ns`.
    /// `changed` says whether they differ from what was taken.
    pub(crate) fn replace(
        &mut self,
        root: &Path,
        stamp_ns: i64,
        entries: Vec<Entry>,
        changed: bool,
    ) {
        let root = root.as_os_str().as_bytes().to_vec();
        self.dirty |= changed || self.root.as_ref() != Some(&root);
        self.root = Some(root);
        self.stamp_ns = stamp_ns;
        self.entries = entries;
    }
}

/// The stat cache file for the app at `root` under `cache_dir`:
/// `<cache_dir>/stat/<blake3 of the app's absolute path>.bin`, so that each app keeps its own.
pub fn stat_cache_path(cache_dir: &Path, root: &Path) -> PathBuf {
    let name = blake3::hash(root_identity(root).as_os_str().as_bytes()).to_hex();
    cache_dir.join("stat").join(format!("{name}.bin"))
}

/// The app root as the cache knows it: one name for `app`, `./app` and `/abs/app`.
pub(crate) fn root_identity(root: &Path) -> PathBuf {
    fs::canonicalize(root)
        .or_else(|_| std::path::absolute(root))
        .unwrap_or_else(|_| root.to_path_buf())
}

fn encode(stamp_ns: i64, root: &[u8], entries: &[Entry]) -> Vec<u8> {
    let paths: usize = entries.iter().map(|entry| entry.path.len()).sum();
    let mut out = Vec::with_capacity(64 + root.len() + paths + entries.len() * ENTRY_FIXED);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&stamp_ns.to_le_bytes());
    put_len(&mut out, root.len());
    out.extend_from_slice(root);
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for entry in entries {
        put_len(&mut out, entry.path.len());
        out.extend_from_slice(entry.path.as_bytes());
        out.extend_from_slice(&entry.stat.mode.to_le_bytes());
        out.extend_from_slice(&entry.stat.size.to_le_bytes());
        out.extend_from_slice(&entry.stat.mtime_ns.to_le_bytes());
        out.extend_from_slice(&entry.stat.ctime_ns.to_le_bytes());
        out.extend_from_slice(&entry.stat.ino.to_le_bytes());
        out.extend_from_slice(&entry.digest);
    }
    let checksum = blake3::hash(&out);
    out.extend_from_slice(checksum.as_bytes());
    out
}

/// Paths and the root are far below 4 GiB; a longer one is written truncated, which makes the
/// file fail to load: a re-hash, not a wrong digest.
fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

enum Decoded {
    Cache {
        stamp_ns: i64,
        root: Vec<u8>,
        entries: Vec<Entry>,
    },
    Outdated,
    Corrupt,
}

fn decode(bytes: &[u8]) -> Decoded {
    let mut reader = Reader(bytes);
    if reader.take(MAGIC.len()) != Some(MAGIC.as_slice()) {
        return Decoded::Corrupt;
    }
    match reader.u32() {
        Some(VERSION) => {}
        Some(_) => return Decoded::Outdated,
        None => return Decoded::Corrupt,
    }
    let Some(body_len) = bytes.len().checked_sub(32) else {
        return Decoded::Corrupt;
    };
    let (body, checksum) = bytes.split_at(body_len);
    if blake3::hash(body).as_bytes() != checksum {
        return Decoded::Corrupt;
    }
    reader.0 = &body[MAGIC.len() + 4..];
    decode_body(&mut reader).map_or(Decoded::Corrupt, |(stamp_ns, root, entries)| {
        Decoded::Cache {
            stamp_ns,
            root,
            entries,
        }
    })
}

fn decode_body(reader: &mut Reader<'_>) -> Option<(i64, Vec<u8>, Vec<Entry>)> {
    let stamp_ns = reader.i64()?;
    let root_len = reader.u32()?;
    let root = reader.take(usize::try_from(root_len).ok()?)?.to_vec();
    let count = usize::try_from(reader.u64()?).ok()?;
    // Each entry takes at least ENTRY_FIXED bytes: a forged count cannot reserve more memory
    // than the file's size justifies.
    if count > reader.0.len() / ENTRY_FIXED {
        return None;
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(count);
    for _ in 0..count {
        let path_len = usize::try_from(reader.u32()?).ok()?;
        let path = std::str::from_utf8(reader.take(path_len)?).ok()?;
        if entries.last().is_some_and(|last| *last.path >= *path) {
            return None;
        }
        let stat = Stat {
            mode: reader.u32()?,
            size: reader.u64()?,
            mtime_ns: reader.i64()?,
            ctime_ns: reader.i64()?,
            ino: reader.u64()?,
        };
        let digest = reader.take(32)?.try_into().ok()?;
        entries.push(Entry {
            path: path.into(),
            stat,
            digest,
        });
    }
    reader.0.is_empty().then_some((stamp_ns, root, entries))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, n: u8) -> Entry {
        Entry {
            path: path.into(),
            stat: Stat {
                mode: 0o100_644,
                size: u64::from(n),
                mtime_ns: i64::from(n) * 1_000,
                ctime_ns: -5,
                ino: 77,
            },
            digest: [n; 32],
        }
    }

    fn saved(dir: &Path, entries: Vec<Entry>) -> PathBuf {
        let path = dir.join("stat").join("cache.bin");
        let mut cache = StatCache::load(&path);
        assert_eq!(cache.status(), StatCacheStatus::Missing);
        cache.replace(Path::new("/app"), 42, entries, true);
        cache.save().unwrap();
        path
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let entries = vec![entry("a", 1), entry("b/c", 2), entry("é", 3)];
        let path = saved(dir.path(), entries.clone());
        let mut cache = StatCache::load(&path);
        assert_eq!(cache.status(), StatCacheStatus::Loaded);
        assert_eq!(cache.len(), 3);
        assert!(cache.is_racy(41) && !cache.is_racy(42 - RACY_WINDOW_NS - 1));
        assert!(cache.take_entries(Path::new("/other")).is_empty());
        let mut cache = StatCache::load(&path);
        assert_eq!(cache.take_entries(Path::new("/app")), entries);
        // No temp file is left beside the cache.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn every_damage_is_a_clean_miss() {
        let dir = tempfile::tempdir().unwrap();
        let path = saved(dir.path(), vec![entry("a", 1), entry("b", 2)]);
        let good = fs::read(&path).unwrap();
        // Truncation at every length, and a flipped bit at every byte.
        for len in 0..good.len() {
            assert_eq!(
                decode_status(&good[..len]),
                StatCacheStatus::Corrupt,
                "length {len}"
            );
        }
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            let status = decode_status(&bad);
            let version_byte = (MAGIC.len()..MAGIC.len() + 4).contains(&at);
            let expected = if version_byte {
                StatCacheStatus::Outdated
            } else {
                StatCacheStatus::Corrupt
            };
            assert_eq!(status, expected, "byte {at}");
        }
        fs::write(&path, b"garbage").unwrap();
        assert_eq!(StatCache::load(&path).status(), StatCacheStatus::Corrupt);
        assert!(StatCache::load(&path).is_empty());
    }

    fn decode_status(bytes: &[u8]) -> StatCacheStatus {
        match decode(bytes) {
            Decoded::Cache { .. } => StatCacheStatus::Loaded,
            Decoded::Outdated => StatCacheStatus::Outdated,
            Decoded::Corrupt => StatCacheStatus::Corrupt,
        }
    }

    #[test]
    fn unsorted_entries_are_corrupt() {
        let bytes = encode(0, b"/app", &[entry("b", 1), entry("a", 2)]);
        assert_eq!(decode_status(&bytes), StatCacheStatus::Corrupt);
        let bytes = encode(0, b"/app", &[entry("a", 1), entry("a", 2)]);
        assert_eq!(decode_status(&bytes), StatCacheStatus::Corrupt);
    }

    #[test]
    fn in_memory_and_clean_caches_do_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = StatCache::in_memory();
        cache.replace(Path::new("/app"), 1, vec![entry("a", 1)], true);
        cache.save().unwrap();
        let path = dir.path().join("never.bin");
        let cache = StatCache::load(&path);
        cache.save().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn concurrent_savers_leave_one_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat.bin");
        std::thread::scope(|scope| {
            for n in 0..8_u8 {
                let path = &path;
                scope.spawn(move || {
                    for round in 0..20_u8 {
                        let mut cache = StatCache::load(path);
                        let entries = (0..200)
                            .map(|i| entry(&format!("f{i:04}"), n ^ round))
                            .collect();
                        cache.replace(Path::new("/app"), 1, entries, true);
                        cache.save().unwrap();
                    }
                });
            }
        });
        let cache = StatCache::load(&path);
        assert_eq!(cache.status(), StatCacheStatus::Loaded);
        assert_eq!(cache.len(), 200);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn unwritable_location_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, b"").unwrap();
        let mut cache = StatCache::load(&blocker.join("stat.bin"));
        cache.replace(Path::new("/app"), 1, vec![entry("a", 1)], true);
        assert!(matches!(cache.save(), Err(SourceError::Save { .. })));
    }

    #[test]
    fn cache_path_depends_on_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = stat_cache_path(Path::new("/cache"), dir.path());
        assert_eq!(
            a,
            stat_cache_path(Path::new("/cache"), &dir.path().join("."))
        );
        assert_ne!(
            a,
            stat_cache_path(Path::new("/cache"), Path::new("/elsewhere"))
        );
        assert!(a.starts_with("/cache/stat") && a.extension().is_some_and(|ext| ext == "bin"));
    }
}
