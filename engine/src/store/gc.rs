//! [`Store::gc`]: garbage out, then least recently used actions until the store fits a size.
//! It removes files, so it runs only under the exclusive lock, when no build has the store
//! open.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use strata_planner::TaskKey;

use super::files::remove_file_if_exists;
use super::format::{Format, move_aside, open_lock, read_format};
use super::rootfs::{RootfsTree, remove_rootfs, rootfs_trees};
use super::scan::{KeyedFile, blob_files, keyed_files, read_action, remove_tree, tree_size};
use super::{
    ACTIONS, ActionFile, BLOBS, LOCK, LOGS, MOVED, Store, StoreError, TMP, digest_hex, io_err,
};

/// A count of removed things and the bytes they took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    /// How many.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Removed {
    pub(super) fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

/// What [`Store::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// The store's bytes before.
    pub size_before: u64,
    /// The store's bytes after.
    pub size_after: u64,
    /// Files in `tmp/` and `moved/`, and files the store does not know.
    pub leftovers: Removed,
    /// Actions that did not parse or named a missing blob.
    pub broken_actions: Removed,
    /// Blobs no action names.
    pub unreferenced_blobs: Removed,
    /// Least recently used actions removed to get under the size limit, with the blobs only
    /// they named (`bytes` counts both).
    pub evicted_actions: Removed,
    /// Logs removed to get under the size limit: those of evicted actions, then the oldest.
    pub evicted_logs: Removed,
    /// Restore refs whose action entry is gone (the next run of that buildpack is cold).
    pub stale_restore_refs: Removed,
    /// Build images' unpacked root filesystems removed to get under the size limit, those
    /// no build used for longest first (the next build on one unpacks it again).
    pub evicted_rootfs: Removed,
}

/// How long [`Store::gc`] keeps trying for the exclusive lock before it reports the store
/// busy: long enough for a store that is closing to let go, far shorter than any build.
pub const CLOSING_GRACE: Duration = Duration::from_secs(1);

impl Store {
    /// Removes garbage from the store in `dir`, then the least recently used actions until
    /// it is at most `max_size` bytes (`u64::MAX`: garbage only).
    ///
    /// Garbage is what no build can use: files in `tmp/` and `moved/`, files the store does
    /// not know, actions that do not parse or name a missing blob (or one of another size),
    /// and blobs no action names. Then, while the store is over `max_size`, the action used
    /// least recently (a hit in [`Store::get_action`] counts as a use) goes, with its log
    /// and the blobs no remaining action names; logs of tasks with no action, and build
    /// images' unpacked trees (by when a build last used one), compete by their own age.
    /// Last, the restore refs whose entry is gone. Blobs are not hashed:
    /// [`Store::verify`] does that.
    ///
    /// # Errors
    /// [`StoreError::Busy`] while any [`Store`] is open on `dir`, in this process or another:
    /// `gc` does not wait for builds. It does wait up to [`CLOSING_GRACE`] for a lock that is
    /// being let go: a store just closed is still locked while a child process forked
    /// meanwhile has not yet exec'd (the lock belongs to the open file, which the child
    /// shares until exec closes it). A directory that holds no store is left alone.
    pub fn gc(dir: &Path, max_size: u64) -> Result<GcReport, StoreError> {
        let mut report = GcReport::default();
        if let Format::Missing = read_format(dir)? {
            return Ok(report);
        }
        let lock_path = dir.join(LOCK);
        let lock = open_lock(&lock_path)?;
        let deadline = Instant::now() + CLOSING_GRACE;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(StoreError::Busy {
                        path: dir.to_path_buf(),
                    });
                }
                Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", &lock_path)(e)),
            }
        }
        if let Format::Other(_) = read_format(dir)? {
            move_aside(dir)?;
        }

        for sub in [TMP, MOVED] {
            let sub = dir.join(sub);
            let (count, bytes) = tree_size(&sub);
            remove_tree(&sub)?;
            report.leftovers.count += count;
            report.leftovers.bytes += bytes;
        }
        let (blobs, mut strays) = blob_files(dir)?;
        let (actions, action_strays) = keyed_files(&dir.join(ACTIONS), "json")?;
        let (logs, log_strays) = keyed_files(&dir.join(LOGS), "log")?;
        strays.extend(action_strays);
        strays.extend(log_strays);
        for stray in strays {
            let bytes = tree_size(&stray).1;
            remove_tree(&stray)?;
            report.leftovers.add(bytes);
        }
        // No unpack is under way (each holds the store open): what is no tree is a killed
        // one's temp dir.
        let (trees, rootfs_strays) = rootfs_trees(dir)?;
        for stray in rootfs_strays {
            let bytes = tree_size(&stray).1;
            remove_rootfs(&stray)?;
            report.leftovers.add(bytes);
        }
        let tree_bytes: u64 = trees.iter().map(|t| t.bytes).sum();
        report.size_before = report.leftovers.bytes
            + blobs.iter().map(|b| b.len).sum::<u64>()
            + actions.iter().map(|a| a.meta.len()).sum::<u64>()
            + logs.iter().map(|l| l.meta.len()).sum::<u64>()
            + tree_bytes;

        // Actions whose blobs are all here; the rest is garbage.
        let sizes: HashMap<&str, u64> = blobs.iter().map(|b| (b.hex.as_str(), b.len)).collect();
        let mut live = Vec::new();
        for action in actions {
            let usable = match read_action(&action) {
                Ok(Some((file, _))) => usable_blobs(&file, &sizes),
                Ok(None) => continue,
                Err(_) => None,
            };
            if let Some(hexes) = usable {
                live.push((action, hexes));
            } else {
                remove_file_if_exists(&action.path)?;
                report.broken_actions.add(action.meta.len());
            }
        }
        let mut refs: HashMap<&str, u32> = HashMap::new();
        for (_, hexes) in &live {
            for hex in hexes {
                if let Some((name, _)) = sizes.get_key_value(hex.as_str()) {
                    *refs.entry(name).or_default() += 1;
                }
            }
        }
        for blob in &blobs {
            if !refs.contains_key(blob.hex.as_str()) {
                remove_file_if_exists(&blob.path)?;
                report.unreferenced_blobs.add(blob.len);
            }
        }

        report.size_after = live.iter().map(|(a, _)| a.meta.len()).sum::<u64>()
            + refs.keys().filter_map(|hex| sizes.get(hex)).sum::<u64>()
            + logs.iter().map(|l| l.meta.len()).sum::<u64>()
            + tree_bytes;
        if report.size_after > max_size {
            let found = Found { live, logs, trees };
            evict(dir, found, &sizes, &mut refs, max_size, &mut report)?;
        }
        // Last: a ref is stale when the entry it names went, now or before.
        let (stale, strays) = super::restore::sweep(dir)?;
        report.stale_restore_refs = stale;
        report.leftovers.count += strays.count;
        report.leftovers.bytes += strays.bytes;
        Ok(report)
    }
}

/// What eviction chooses from: the usable actions with their blobs, the logs, the trees.
struct Found {
    live: Vec<(KeyedFile, BTreeSet<String>)>,
    logs: Vec<KeyedFile>,
    trees: Vec<RootfsTree>,
}

/// What one candidate for eviction is.
enum Kind {
    /// A log of a task without an action.
    Log,
    /// An action, with the blobs it names (and its log, by its key).
    Action(TaskKey, BTreeSet<String>),
    /// An unpacked build image tree.
    Rootfs,
}

/// An action, a log of a task without one, or a tree, by when it was last used.
struct Candidate {
    used: SystemTime,
    path: PathBuf,
    len: u64,
    kind: Kind,
}

/// Removes actions (with their logs and the blobs only they name), logs of tasks without
/// an action and unpacked trees, least recently used first, until `report.size_after` is
/// at most `max_size`.
fn evict(
    dir: &Path,
    Found { live, logs, trees }: Found,
    sizes: &HashMap<&str, u64>,
    refs: &mut HashMap<&str, u32>,
    max_size: u64,
    report: &mut GcReport,
) -> Result<(), StoreError> {
    let mut size = report.size_after;
    let candidate = |file: KeyedFile, kind| Candidate {
        used: file.meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        len: file.meta.len(),
        path: file.path,
        kind,
    };
    let live_keys: HashSet<TaskKey> = live.iter().map(|(a, _)| a.key).collect();
    let mut logs_by_key: HashMap<TaskKey, KeyedFile> = HashMap::new();
    let mut candidates = Vec::new();
    for log in logs {
        if live_keys.contains(&log.key) {
            logs_by_key.insert(log.key, log);
        } else {
            candidates.push(candidate(log, Kind::Log));
        }
    }
    for (action, blobs) in live {
        let key = action.key;
        candidates.push(candidate(action, Kind::Action(key, blobs)));
    }
    for tree in trees {
        candidates.push(Candidate {
            used: tree.used,
            path: tree.path,
            len: tree.bytes,
            kind: Kind::Rootfs,
        });
    }
    // Oldest first; the path breaks ties, so the order never depends on listing order.
    candidates.sort_by(|a, b| (a.used, &a.path).cmp(&(b.used, &b.path)));
    for Candidate {
        path, len, kind, ..
    } in candidates
    {
        if size <= max_size {
            break;
        }
        let (key, blobs) = match kind {
            Kind::Log => {
                remove_file_if_exists(&path)?;
                size = size.saturating_sub(len);
                report.evicted_logs.add(len);
                continue;
            }
            Kind::Rootfs => {
                remove_rootfs(&path)?;
                size = size.saturating_sub(len);
                report.evicted_rootfs.add(len);
                continue;
            }
            Kind::Action(key, blobs) => (key, blobs),
        };
        remove_file_if_exists(&path)?;
        size = size.saturating_sub(len);
        let mut freed = len;
        for hex in &blobs {
            let Some(count) = refs.get_mut(hex.as_str()) else {
                continue;
            };
            *count -= 1;
            if *count == 0 {
                let blob_len = sizes.get(hex.as_str()).copied().unwrap_or(0);
                remove_file_if_exists(&dir.join(BLOBS).join(hex))?;
                size = size.saturating_sub(blob_len);
                freed += blob_len;
            }
        }
        report.evicted_actions.add(freed);
        if let Some(log) = logs_by_key.remove(&key) {
            remove_file_if_exists(&log.path)?;
            size = size.saturating_sub(log.meta.len());
            report.evicted_logs.add(log.meta.len());
        }
    }
    report.size_after = size;
    Ok(())
}

/// The distinct blobs (hex) of an action, if each is in the store at the size recorded.
fn usable_blobs(file: &ActionFile, sizes: &HashMap<&str, u64>) -> Option<BTreeSet<String>> {
    file.blobs
        .iter()
        .map(|blob| {
            let hex = digest_hex(&blob.digest).ok()?;
            (sizes.get(hex) == Some(&blob.size)).then(|| hex.to_owned())
        })
        .collect()
}
