//! The content-addressed store: what tasks built, kept between builds and shared by every
//! build on the machine.
//!
//! # Layout
//!
//! The store is a directory (by default `<cache-dir>/store`, beside the planner's `stat/` and
//! `detect/` caches):
//!
//! ```text
//! strata-store.json             {"version": 1}: the format of everything below
//! oci-layout                    blobs/ reads like an OCI image layout's
//! lock                          flock: shared by every open Store, exclusive for gc
//! blobs/sha256/<hex>            content named by its sha256 (layers, SBOM files, …), read-only
//! actions/<2 hex>/<key>.json    a TaskKey's outputs: the blobs it needs and the executor's payload
//! logs/<2 hex>/<key>.log        the last log of each task
//! restore/<2 hex>/<id>.json     the key of an opaque buildpack's last run per service: what
//!                               its next run restores (see `restore`)
//! rootfs/<hex>/                 build images' root filesystems, unpacked (see `rootfs`)
//! tmp/                          files being written; whatever stays here is a killed writer's
//! moved/                        stores of another format version, moved aside for gc to remove
//! ```
//!
//! Blobs are named exactly as in an OCI layout, so exporting a cached layer to a layout on the
//! same filesystem is a hardlink, never a re-tar or a re-compression. Because a hardlink shares
//! the inode, blobs are made read-only (0444): editing an exported blob in place must not
//! silently change the store's copy.
//!
//! # Crash safety
//!
//! Nothing appears under its final name before it is complete: every file is written to
//! `tmp/`, fsynced and renamed into place, and rename is atomic. An action is written last,
//! after every blob it names is in place and the blob directory is fsynced, so no crash (a
//! SIGKILL at any point, or a power loss) leaves an action pointing at a blob that is not
//! there. What a killed writer leaves is a file in `tmp/`: harmless, named and locked by its
//! owner (see [`crate::scratch`]), and removed by [`Store::gc`] and by the next
//! [`Store::open`] once its owner is gone. A SIGINT or SIGTERM removes it at once.
//!
//! # Verification
//!
//! A blob's name is a claim about its bytes, and disks, users and other tools break claims. So
//! [`Store::check_blob`] compares the size on every use and the sha256 on the first use of a
//! blob in a process (remembered in memory after that). A blob that fails is deleted and the
//! action naming it is a miss ([`Store::get_action`] removes it): the task runs again, writes
//! the blob anew, and a corrupt layer is never handed to the exporter. A blob that hashes to
//! its name but has another size than an action recorded is intact: the action is wrong, and
//! only the action goes. [`Store::verify`] re-hashes everything, for `strata cache verify`.
//!
//! # Concurrency
//!
//! Any number of threads and processes may use one store. Content addressing makes writes
//! idempotent: two writers of one blob rename identical files over each other, two writers of
//! one action each rename a complete entry whose blobs are in place, and the last rename wins.
//! A removal (of a corrupt blob, or of an action that misses) first checks that the name still
//! points at the inode that was checked, so a file another process has just put in its place
//! survives. Every [`Store`] holds a shared `flock` on `lock` for its lifetime; [`Store::gc`]
//! takes it exclusively with a non-blocking try, so it never removes anything under a running
//! build: it refuses instead of waiting.
//!
//! # Promised blobs
//!
//! An entry from a remote cache may come without the blobs of layers no task of this build
//! reads yet: such an entry lives in the [`Store`] handle only, its missing blobs promised
//! and fetched when read (see [`Store::put_promised_action`]). Nothing of it is on disk until
//! every blob is, so the checks above, `verify` and `gc` only ever see whole entries.
//!
//! # Format versions
//!
//! `strata-store.json` names the format. A store of another version (or with an unreadable
//! marker) is not an error: its contents are moved into `moved/` under the exclusive lock,
//! and the store starts empty.

mod files;
mod format;
mod gc;
mod lazy;
mod restore;
mod rootfs;
mod scan;
mod verify;

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use strata_planner::TaskKey;

use files::{
    create_parent, hash_blob, identity, persist, read_bounded, remove_file_if_exists,
    remove_if_same, sync_dir, write_file,
};
use format::{Format, move_aside, open_lock, read_format, write_marker};

use crate::hashing::HashingWriter;
use crate::scratch::{self, ScratchDir, TempHome};

pub use gc::{CLOSING_GRACE, GcReport, Removed};
pub use lazy::{BlobFetcher, PromisedBlob};
pub use rootfs::{mark_rootfs_used, rootfs_dir};
pub use scan::StoreStats;
pub use verify::{ActionProblem, BrokenAction, CorruptBlob, UnparsableAction, VerifyReport};

/// The format version of a store's files, kept in `strata-store.json`.
pub const STORE_VERSION: u32 = 1;

const MARKER: &str = "strata-store.json";
const LOCK: &str = "lock";
const BLOBS: &str = "blobs/sha256";
const ACTIONS: &str = "actions";
const LOGS: &str = "logs";
const RESTORE: &str = "restore";
const ROOTFS: &str = "rootfs";
const TMP: &str = "tmp";
const MOVED: &str = "moved";
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// The largest action entry read: it lists blobs and layer metadata, never content.
pub(super) const MAX_ACTION: u64 = 16 << 20;
/// Files in `tmp/` older than this belong to a killed process, not a running one.
const TMP_MAX_AGE: Duration = Duration::from_hours(24);
/// Read buffer for hashing and copying blobs.
const BUFFER: usize = 256 * 1024;
/// Blobs and other content files are read-only: exported layouts hardlink them.
const CONTENT_MODE: u32 = 0o444;

/// The store's directory in a cache directory: `<cache_dir>/store`.
pub fn store_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("store")
}

/// A blob in the store: its digest and size, as an action records them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobRef {
    /// `sha256:<64 lowercase hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

/// What a task produced: the blobs it needs and whatever the executor records about them
/// (layer descriptors, CNB layer metadata, env, …). A hit hands back exactly what was put.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionEntry {
    /// Every blob the entry refers to; a hit guarantees each is present and intact.
    pub blobs: Vec<BlobRef>,
    /// The executor's data; the store only keeps it.
    #[serde(default)]
    pub payload: serde_json::Value,
}

/// An action file as written: the entry and the key it belongs to, so that a file renamed
/// or copied to another key's name is not taken for that key's output.
#[derive(Serialize)]
struct ActionFileRef<'a> {
    key: String,
    blobs: &'a [BlobRef],
    payload: &'a serde_json::Value,
}

#[derive(Deserialize)]
struct ActionFile {
    key: String,
    blobs: Vec<BlobRef>,
    #[serde(default)]
    payload: serde_json::Value,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory of the store could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A digest that is not `sha256:<64 lowercase hex>`.
    #[error("`{digest}` is not a sha256 digest (sha256:<64 lowercase hex digits>)")]
    InvalidDigest { digest: String },
    /// A file to adopt has another size than its caller says.
    #[error("{} is {actual} bytes, but was given as blob {digest} of {expected} bytes", path.display())]
    SizeMismatch {
        path: PathBuf,
        digest: String,
        expected: u64,
        actual: u64,
    },
    /// A file copied into the store does not hash to the digest it was given as.
    #[error("{} does not hash to {digest}: its sha256 is {actual}", path.display())]
    DigestMismatch {
        path: PathBuf,
        digest: String,
        actual: String,
    },
    /// An action names a blob that is not in the store (or is corrupt).
    #[error("action {key} names blob {digest}, which is not in the store")]
    MissingBlob { key: String, digest: String },
    /// A promised blob (see [`Store::fetch_blob`]) could not be brought in.
    #[error("blob {digest} of the remote cache entry {from} cannot be fetched: {why}")]
    FetchFailed {
        digest: String,
        from: String,
        why: String,
    },
    /// An action could not be encoded.
    #[error("cannot encode action {key}: {source}")]
    Encode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// `gc` found the store in use by a build (or another store user).
    #[error(
        "the store {} is in use by another strata process; run gc when no build is running",
        path.display()
    )]
    Busy { path: PathBuf },
    /// The store kept changing format while being opened (another strata version is at work).
    #[error("the store {} keeps changing format (found {found}); is another strata version using it?", path.display())]
    Version { path: PathBuf, found: String },
}

/// Builds a [`StoreError::Io`] for `path`.
fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// An open store. Holds a shared lock on the store for its lifetime (so [`Store::gc`] cannot
/// run under it) and remembers which blobs it has verified.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    tmp: PathBuf,
    blobs: PathBuf,
    /// Hex digests of blobs this handle hashed (or wrote) and found intact.
    verified: Mutex<HashSet<String>>,
    /// Digests of blobs this handle deleted because they failed verification.
    removed: Mutex<Vec<String>>,
    /// Entries from elsewhere whose blobs are not all here yet (see [`lazy`]).
    promises: Mutex<lazy::Promises>,
    /// Makes a signal remove this process's temp files in `tmp/`.
    _home: TempHome,
    _lock: File,
}

impl Store {
    /// Opens the store in `dir`, creating it if needed, and takes the shared lock (waiting
    /// while a `gc` holds it). A store of another format version is moved aside and the store
    /// starts empty. Temp files of killed processes, and any older than a day, are removed.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        fs::create_dir_all(dir).map_err(io_err("create the store", dir))?;
        let lock_path = dir.join(LOCK);
        let lock = open_lock(&lock_path)?;
        lock.lock_shared().map_err(io_err("lock", &lock_path))?;
        let tmp = dir.join(TMP);
        let mut found = String::new();
        // The second round finds the foreign store moved aside; only another strata version
        // rewriting the marker all along gets to the end.
        for _ in 0..3 {
            match read_format(dir)? {
                Format::Current => return Self::finish_open(dir, tmp, lock),
                Format::Missing => {
                    fs::create_dir_all(&tmp).map_err(io_err("create", &tmp))?;
                    write_marker(dir, &tmp)?;
                    return Self::finish_open(dir, tmp, lock);
                }
                Format::Other(what) => {
                    found = what;
                    // flock cannot upgrade atomically: drop the shared lock first, so that two
                    // processes upgrading at once do not wait on each other.
                    lock.unlock().map_err(io_err("unlock", &lock_path))?;
                    lock.lock().map_err(io_err("lock", &lock_path))?;
                    if let Format::Other(_) = read_format(dir)? {
                        move_aside(dir)?;
                    }
                    lock.unlock().map_err(io_err("unlock", &lock_path))?;
                    lock.lock_shared().map_err(io_err("lock", &lock_path))?;
                }
            }
        }
        Err(StoreError::Version {
            path: dir.to_path_buf(),
            found,
        })
    }

    fn finish_open(dir: &Path, tmp: PathBuf, lock: File) -> Result<Store, StoreError> {
        let blobs = dir.join(BLOBS);
        for sub in [&blobs, &dir.join(ACTIONS), &dir.join(LOGS), &tmp] {
            fs::create_dir_all(sub).map_err(io_err("create", sub))?;
        }
        let layout = dir.join("oci-layout");
        if !layout.is_file() {
            write_file(&tmp, &layout, OCI_LAYOUT, 0o644)?;
        }
        remove_old_temps(&tmp);
        scratch::remove_stale_any(&tmp);
        Ok(Store {
            _home: TempHome::new(&tmp),
            root: dir.to_path_buf(),
            tmp,
            blobs,
            verified: Mutex::new(HashSet::new()),
            removed: Mutex::new(Vec::new()),
            promises: Mutex::new(lazy::Promises::default()),
            _lock: lock,
        })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A directory for files on their way into the store, on the store's filesystem. Write a
    /// layer into a private [`temp_dir`](Self::temp_dir) in it
    /// (`LayerBuilder::finish(compression, temp.path())`), then
    /// [`adopt_blob`](Self::adopt_blob) it: there a signal removes it with the directory, and
    /// two writers of one layer (same name, same bytes) do not meet.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// A fresh private directory (0700) under [`tmp_dir`](Self::tmp_dir), removed when
    /// dropped or when the process is stopped (see [`crate::scratch`]).
    pub fn temp_dir(&self) -> Result<ScratchDir, StoreError> {
        ScratchDir::create(&self.tmp, "dir-")
            .map_err(io_err("create a temp directory in", &self.tmp))
    }

    /// Where the blob with `digest` is (or would be): `blobs/sha256/<hex>`.
    ///
    /// # Errors
    /// [`StoreError::InvalidDigest`] unless `digest` is `sha256:<64 lowercase hex>`, so that
    /// no digest can name a path outside the blob directory.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        Ok(self.blobs.join(digest_hex(digest)?))
    }

    /// Moves a finished file into the store as the blob `digest` of `size` bytes, and returns
    /// its reference. The file is consumed: renamed into place, or removed when the store
    /// already has that blob intact, or copied (and hashed) when it is on another
    /// filesystem.
    ///
    /// `digest` and `size` must be the file's own, computed while writing it (as
    /// `LayerBuilder::finish` does): only the size is checked here, and the blob counts as
    /// verified in this process. A file that is gone because a concurrent writer of the same
    /// blob moved it is fine when the blob is in the store.
    pub fn adopt_blob(&self, file: &Path, digest: &str, size: u64) -> Result<BlobRef, StoreError> {
        let hex = digest_hex(digest)?;
        let blob = BlobRef {
            digest: digest.to_owned(),
            size,
        };
        let dest = self.blobs.join(hex);
        if self.is_verified(hex) && fs::metadata(&dest).is_ok_and(|m| m.len() == size) {
            remove_file_if_exists(file)?;
            return Ok(blob);
        }
        let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
        let source = match File::open(file) {
            Ok(source) => source,
            Err(e) if gone(&e) && self.check_blob(&blob) => return Ok(blob),
            Err(e) => return Err(io_err("read", file)(e)),
        };
        let meta = source.metadata().map_err(io_err("read", file))?;
        if meta.len() != size {
            return Err(StoreError::SizeMismatch {
                path: file.to_path_buf(),
                digest: digest.to_owned(),
                expected: size,
                actual: meta.len(),
            });
        }
        source
            .set_permissions(fs::Permissions::from_mode(CONTENT_MODE))
            .map_err(io_err("write", file))?;
        source.sync_all().map_err(io_err("write", file))?;
        drop(source);
        match fs::rename(file, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                let source = File::open(file).map_err(io_err("read", file))?;
                self.copy_in(source, file, hex, size)?;
                remove_file_if_exists(file)?;
            }
            Err(e) if gone(&e) && self.check_blob(&blob) => return Ok(blob),
            Err(e) => return Err(io_err("move a blob into", &dest)(e)),
        }
        self.mark_verified(hex);
        Ok(blob)
    }

    /// Puts `bytes` into the store as a blob.
    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<BlobRef, StoreError> {
        let hex = hex::encode(Sha256::digest(bytes));
        let blob = BlobRef {
            digest: format!("sha256:{hex}"),
            size: bytes.len() as u64,
        };
        if self.check_blob(&blob) {
            return Ok(blob);
        }
        let dest = self.blobs.join(&hex);
        write_file(&self.tmp, &dest, bytes, CONTENT_MODE)?;
        self.mark_verified(&hex);
        Ok(blob)
    }

    /// Streams `reader` into the store as a blob, hashing it on the way; nothing is visible
    /// under the blob's name before the last byte is written and synced.
    pub fn put_blob_reader(&self, mut reader: impl Read) -> Result<BlobRef, StoreError> {
        let mut temp = self.temp_file()?;
        let temp_path = temp.path().to_path_buf();
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0; BUFFER];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(StoreError::Io {
                        action: "read the blob to write to",
                        path: temp_path,
                        source,
                    });
                }
            };
            hasher.update(&buf[..n]);
            temp.write_all(&buf[..n])
                .map_err(io_err("write", &temp_path))?;
            size += n as u64;
        }
        let hex = hex::encode(hasher.finalize());
        let blob = BlobRef {
            digest: format!("sha256:{hex}"),
            size,
        };
        let dest = self.blobs.join(&hex);
        if self.is_verified(&hex) && fs::metadata(&dest).is_ok_and(|m| m.len() == size) {
            return Ok(blob);
        }
        persist(temp, &dest, CONTENT_MODE)?;
        self.mark_verified(&hex);
        Ok(blob)
    }

    /// Whether `blob` is in the store, intact: the size is compared on every call, the sha256
    /// on the first call for that blob in this process. A blob whose bytes do not hash to its
    /// name is deleted (so that its task runs again) and recorded in
    /// [`removed_blobs`](Self::removed_blobs). An intact blob of another size than `blob`
    /// says is kept, and `false` returned: the reference is wrong, not the blob.
    pub fn check_blob(&self, blob: &BlobRef) -> bool {
        let Ok(hex) = digest_hex(&blob.digest) else {
            return false;
        };
        let path = self.blobs.join(hex);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return false;
        };
        if !meta.is_file() {
            return false;
        }
        if meta.len() == blob.size && self.is_verified(hex) {
            return true;
        }
        match hash_blob(&path) {
            Ok(Some((actual, len, identity))) => {
                if actual == hex {
                    self.mark_verified(hex);
                    return len == blob.size;
                }
                self.forget(hex);
                if remove_if_same(&path, identity) {
                    lock(&self.removed).push(blob.digest.clone());
                }
                false
            }
            Ok(None) | Err(_) => false,
        }
    }

    /// Digests of the blobs this handle deleted because their bytes did not match their
    /// name: for a build to report that it rebuilt them.
    pub fn removed_blobs(&self) -> Vec<String> {
        lock(&self.removed).clone()
    }

    /// The outputs recorded for `key`, if they are all still here. `None` for no entry, an
    /// entry that does not parse or belongs to another key, or one with a blob that fails
    /// [`check_blob`](Self::check_blob); such an entry is removed, so the task runs again and
    /// writes a good one. A hit marks the entry as recently used, for [`gc`](Self::gc).
    /// Without an entry on disk, a promised one (see [`Store::put_promised_action`]) answers.
    pub fn get_action(&self, key: &TaskKey) -> Option<ActionEntry> {
        let path = self.action_path(key);
        let (text, meta, file) = match read_bounded(&path, MAX_ACTION) {
            Ok(Some(read)) => read,
            Ok(None) => return self.promised_action(key),
            Err(_) => {
                // A symlink, FIFO or oversized file is no entry: remove it like a bad one.
                if let Ok(meta) = fs::symlink_metadata(&path) {
                    remove_if_same(&path, identity(&meta));
                }
                return None;
            }
        };
        let identity = identity(&meta);
        let entry = parse_action(&text, key).filter(|entry| {
            // Every blob is checked, not only up to the first bad one: each corrupt blob is
            // removed and reported now, not left for a later build to trust.
            let bad = entry
                .blobs
                .iter()
                .filter(|blob| !self.check_blob(blob))
                .count();
            bad == 0
        });
        if entry.is_none() {
            remove_if_same(&path, identity);
            return None;
        }
        let _ = file.set_modified(SystemTime::now());
        entry
    }

    /// Whether an action entry for `key` exists, without reading or verifying it: what a
    /// plan shows as cached (the build still verifies before using it).
    pub fn has_action(&self, key: &TaskKey) -> bool {
        self.action_path(key).is_file() || self.has_promised_action(key)
    }

    /// Records `entry` as the output of `key`, replacing any earlier one.
    ///
    /// # Errors
    /// [`StoreError::MissingBlob`] if a blob of the entry is not in the store, intact and of
    /// the size given: blobs go in first, the action last.
    pub fn put_action(&self, key: &TaskKey, entry: &ActionEntry) -> Result<(), StoreError> {
        if let Some(blob) = entry.blobs.iter().find(|blob| !self.check_blob(blob)) {
            return Err(StoreError::MissingBlob {
                key: key.hex(),
                digest: blob.digest.clone(),
            });
        }
        let bytes = serde_json::to_vec(&ActionFileRef {
            key: key.hex(),
            blobs: &entry.blobs,
            payload: &entry.payload,
        })
        .map_err(|source| StoreError::Encode {
            key: key.hex(),
            source,
        })?;
        // The blobs' names must be durable before an action can point at them.
        sync_dir(&self.blobs)?;
        let dest = self.action_path(key);
        create_parent(&dest)?;
        write_file(&self.tmp, &dest, &bytes, 0o644)
    }

    /// Where the log of `key`'s last run goes: `logs/<2 hex>/<key>.log`. Its directory is
    /// created if it can be. [`put_log`](Self::put_log) replaces it atomically.
    pub fn log_path(&self, key: &TaskKey) -> PathBuf {
        let path = sharded(&self.root.join(LOGS), key, "log");
        let _ = create_parent(&path);
        path
    }

    /// Copies the finished log `file` to [`log_path`](Self::log_path) through a temp file, so
    /// that two builds running the same task at once each leave a whole log.
    pub fn put_log(&self, key: &TaskKey, file: &Path) -> Result<PathBuf, StoreError> {
        let dest = self.log_path(key);
        let mut source = File::open(file).map_err(io_err("read", file))?;
        let mut temp = self.temp_file()?;
        io::copy(&mut source, &mut temp).map_err(io_err("copy", file))?;
        persist(temp, &dest, 0o644)?;
        Ok(dest)
    }

    fn action_path(&self, key: &TaskKey) -> PathBuf {
        sharded(&self.root.join(ACTIONS), key, "json")
    }

    fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        scratch::temp_file_in(&self.tmp, "blob-")
            .map_err(io_err("create a temp file in", &self.tmp))
    }

    /// Copies `source` into the store as the blob `hex`, checking its size and digest.
    fn copy_in(&self, source: File, path: &Path, hex: &str, size: u64) -> Result<(), StoreError> {
        let mut temp = self.temp_file()?;
        let mut hashing = HashingWriter::new(temp.as_file_mut());
        io::copy(
            &mut io::BufReader::with_capacity(BUFFER, source),
            &mut hashing,
        )
        .map_err(io_err("copy", path))?;
        let (actual, len, _) = hashing.into_parts();
        if len != size {
            return Err(StoreError::SizeMismatch {
                path: path.to_path_buf(),
                digest: format!("sha256:{hex}"),
                expected: size,
                actual: len,
            });
        }
        if actual != hex {
            return Err(StoreError::DigestMismatch {
                path: path.to_path_buf(),
                digest: format!("sha256:{hex}"),
                actual: format!("sha256:{actual}"),
            });
        }
        persist(temp, &self.blobs.join(hex), CONTENT_MODE)
    }

    fn is_verified(&self, hex: &str) -> bool {
        lock(&self.verified).contains(hex)
    }

    fn mark_verified(&self, hex: &str) {
        lock(&self.verified).insert(hex.to_owned());
    }

    fn forget(&self, hex: &str) {
        lock(&self.verified).remove(hex);
    }
}

/// Locks a mutex; a panic elsewhere while it was held leaves plain data that is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The hex part of `sha256:<64 lowercase hex>`.
fn digest_hex(digest: &str) -> Result<&str, StoreError> {
    digest
        .strip_prefix("sha256:")
        .filter(|hex| is_sha256_hex(hex))
        .ok_or_else(|| StoreError::InvalidDigest {
            digest: digest.to_owned(),
        })
}

/// Whether `name` is 64 lowercase hex digits: the name of a blob file.
fn is_sha256_hex(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `<dir>/<first 2 hex of key>/<key hex>.<ext>`: 256 directories share the entries, so none
/// grows to a size that slows down lookups.
fn sharded(dir: &Path, key: &TaskKey, ext: &str) -> PathBuf {
    let hex = key.hex();
    dir.join(&hex[..2]).join(format!("{hex}.{ext}"))
}

/// The entry an action file holds, if it parses and belongs to `key`.
fn parse_action(text: &[u8], key: &TaskKey) -> Option<ActionEntry> {
    let file: ActionFile = serde_json::from_slice(text).ok()?;
    (file.key == key.hex()).then_some(ActionEntry {
        blobs: file.blobs,
        payload: file.payload,
    })
}

/// Removes what killed processes left in `tmp/` more than a day ago. Best effort: a file
/// that cannot be removed now will be by `gc`.
fn remove_old_temps(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|modified| now.duration_since(modified).ok())
            .is_some_and(|age| age > TMP_MAX_AGE);
        if old {
            let _ = if meta.is_dir() {
                fs::remove_dir_all(entry.path())
            } else {
                fs::remove_file(entry.path())
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> TaskKey {
        TaskKey::from_bytes([n; 32])
    }

    #[test]
    fn digests_must_be_sha256_lowercase_hex() {
        let hex = "ab".repeat(32);
        assert_eq!(digest_hex(&format!("sha256:{hex}")).unwrap(), hex);
        for bad in [
            String::new(),
            hex.clone(),
            format!("sha512:{hex}"),
            format!("sha256:{}", hex.to_uppercase()),
            format!("sha256:{}", &hex[..63]),
            format!("sha256:{hex}0"),
            format!("sha256:../../{}", &hex[6..]),
            "sha256:".to_owned(),
        ] {
            assert!(
                matches!(digest_hex(&bad), Err(StoreError::InvalidDigest { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_fifo_or_symlink_in_the_store_is_a_miss_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let store = Store::open(&root).unwrap();
        let blob = store.put_blob_bytes(b"content").unwrap();
        let entry = ActionEntry {
            blobs: vec![blob.clone()],
            payload: serde_json::Value::Null,
        };
        store.put_action(&key(1), &entry).unwrap();
        store.put_action(&key(2), &entry).unwrap();
        let mkfifo = |path: &Path| {
            fs::remove_file(path).unwrap();
            let made = std::process::Command::new("mkfifo")
                .arg(path)
                .status()
                .unwrap();
            assert!(made.success());
        };
        // key 1's entry is a FIFO; key 2's blob is a symlink to a copy of its bytes.
        mkfifo(&store.action_path(&key(1)));
        let blob_path = store.blob_path(&blob.digest).unwrap();
        let copy = dir.path().join("copy");
        fs::copy(&blob_path, &copy).unwrap();
        fs::remove_file(&blob_path).unwrap();
        std::os::unix::fs::symlink(&copy, &blob_path).unwrap();
        drop(store);

        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let store = Store::open(&root).unwrap();
            let found = (store.get_action(&key(1)), store.get_action(&key(2)));
            let report = store.verify(false).unwrap();
            let _ = done.send((found, report));
        });
        let ((one, two), report) = finished
            .recv_timeout(Duration::from_mins(1))
            .expect("the store does not wait on a FIFO");
        assert_eq!((one, two), (None, None));
        // Both entries were misses and are gone; the symlink is no blob, gc removes it.
        assert_eq!(report.actions, 0, "{report:?}");
        assert!(report.stray_files.contains(&blob_path), "{report:?}");
    }

    #[test]
    fn action_files_are_sharded_by_key() {
        let path = sharded(Path::new("/s/actions"), &key(0xab), "json");
        assert_eq!(
            path,
            Path::new("/s/actions/ab").join(format!("{}.json", "ab".repeat(32)))
        );
    }

    #[test]
    fn an_action_file_belongs_to_its_key() {
        let entry = ActionEntry {
            blobs: vec![BlobRef {
                digest: format!("sha256:{}", "0".repeat(64)),
                size: 3,
            }],
            payload: serde_json::json!({"layer": "node"}),
        };
        let text = serde_json::to_vec(&ActionFileRef {
            key: key(1).hex(),
            blobs: &entry.blobs,
            payload: &entry.payload,
        })
        .unwrap();
        assert_eq!(parse_action(&text, &key(1)), Some(entry));
        assert_eq!(parse_action(&text, &key(2)), None);
        assert_eq!(parse_action(b"{\"key\":", &key(1)), None);
        assert_eq!(parse_action(b"[]", &key(1)), None);
    }

    #[test]
    fn opening_removes_temps_of_dead_writers_only() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tmp = store.tmp_dir().to_owned();
        // What a SIGKILLed build left (a pid past the kernel's limit is never alive).
        let dead_file = tmp.join("blob-4194305.1.abcdefgh");
        std::fs::write(&dead_file, "half a layer").unwrap();
        let dead_dir = tmp.join("dir-4194305.1.ijklmnop");
        std::fs::create_dir(&dead_dir).unwrap();
        std::fs::write(dead_dir.join("f"), "x").unwrap();
        // What a live writer holds.
        let live = store.temp_file().unwrap();
        let live_dir = store.temp_dir().unwrap();
        assert_eq!(live.as_file().metadata().unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(live_dir.path()).unwrap().mode() & 0o777,
            0o700
        );

        let again = Store::open(dir.path()).unwrap();
        assert!(
            !dead_file.exists() && !dead_dir.exists(),
            "a dead writer's temps go"
        );
        assert!(
            live.path().exists() && live_dir.path().exists(),
            "a live writer's stay"
        );
        drop((again, live, live_dir));
    }
}
