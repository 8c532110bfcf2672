//! Looking after a store: what it holds ([`Store::stats`]), whether it is intact
//! ([`Store::verify`]) and keeping it within a size ([`Store::gc`]).
//!
//! `stats` and `verify` work on an open store, beside running builds. `gc` removes files, so it
//! runs only under the exclusive lock, when no build has the store open.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rayon::prelude::*;
use serde::Serialize;
use strata_planner::TaskKey;

use super::{
    ACTIONS, ActionFile, BLOBS, Format, Identity, LOCK, LOGS, MOVED, Store, StoreError, TMP,
    digest_hex, hash_blob, identity, io_err, is_sha256_hex, move_aside, open_lock, read_format,
    remove_if_same,
};

/// What a store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Blob files.
    pub blobs: u64,
    /// Their bytes.
    pub blob_bytes: u64,
    /// Action entries.
    pub actions: u64,
    /// Their bytes.
    pub action_bytes: u64,
    /// Task logs.
    pub logs: u64,
    /// Their bytes.
    pub log_bytes: u64,
    /// Files in `tmp/` and `moved/`: being written now, or left by killed processes and
    /// stores of another format; `gc` removes them.
    pub leftovers: u64,
    /// Their bytes.
    pub leftover_bytes: u64,
}

impl StoreStats {
    /// Every byte the store's files take.
    pub fn total_bytes(&self) -> u64 {
        self.blob_bytes + self.action_bytes + self.log_bytes + self.leftover_bytes
    }
}

/// What [`Store::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Blob files checked.
    pub blobs: u64,
    /// Their bytes.
    pub blob_bytes: u64,
    /// Action entries checked.
    pub actions: u64,
    /// Blobs whose bytes do not hash to their name.
    pub corrupt_blobs: Vec<CorruptBlob>,
    /// Actions naming a blob that is missing, corrupt or of another size.
    pub broken_actions: Vec<BrokenAction>,
    /// Action files that do not parse, or belong to another key.
    pub unparsable_actions: Vec<UnparsableAction>,
    /// Files the store does not know (not problems: `gc` removes them).
    pub stray_files: Vec<PathBuf>,
    /// Whether the problems found were removed.
    pub repaired: bool,
}

impl VerifyReport {
    /// How many problems were found.
    pub fn problems(&self) -> usize {
        self.corrupt_blobs.len() + self.broken_actions.len() + self.unparsable_actions.len()
    }

    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems() == 0
    }
}

/// A blob whose bytes do not match its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CorruptBlob {
    /// The digest it is named by.
    pub digest: String,
    /// Its file.
    pub path: PathBuf,
    /// What its bytes hash to, if they could be read.
    pub actual: Option<String>,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// An action that cannot be used, and the blob why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenAction {
    /// The action's `TaskKey` (hex).
    pub key: String,
    /// Its file.
    pub path: PathBuf,
    /// The blob it names.
    pub digest: String,
    /// What is wrong with that blob.
    pub problem: ActionProblem,
}

/// What is wrong with a blob an action names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ActionProblem {
    /// Not in the store.
    MissingBlob,
    /// In the store, but its bytes do not match its name.
    CorruptBlob,
    /// Intact, but of another size than the action recorded.
    SizeMismatch {
        /// The size the action recorded.
        recorded: u64,
        /// The blob's size.
        actual: u64,
    },
    /// Not a sha256 digest.
    InvalidDigest,
}

/// An action file that cannot be read as the entry of its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnparsableAction {
    /// Its file.
    pub path: PathBuf,
    /// Why.
    pub error: String,
}

/// A count of removed things and the bytes they took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    /// How many.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Removed {
    fn add(&mut self, bytes: u64) {
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
}

/// A blob file in `blobs/sha256/`.
struct BlobFile {
    hex: String,
    path: PathBuf,
    len: u64,
}

/// An action or log file, with the key its name gives.
struct KeyedFile {
    key: TaskKey,
    path: PathBuf,
    meta: Metadata,
}

/// A blob's state as `verify` found it.
enum Found {
    Intact(u64),
    Corrupt(Identity),
    Unreadable,
}

impl Store {
    /// Counts what the store holds. Files written or removed meanwhile by other processes
    /// may or may not be counted.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let mut stats = StoreStats::default();
        let (blobs, _) = blob_files(&self.root)?;
        stats.blobs = blobs.len() as u64;
        stats.blob_bytes = blobs.iter().map(|b| b.len).sum();
        let (actions, _) = keyed_files(&self.root.join(ACTIONS), "json")?;
        stats.actions = actions.len() as u64;
        stats.action_bytes = actions.iter().map(|a| a.meta.len()).sum();
        let (logs, _) = keyed_files(&self.root.join(LOGS), "log")?;
        stats.logs = logs.len() as u64;
        stats.log_bytes = logs.iter().map(|l| l.meta.len()).sum();
        for dir in [TMP, MOVED] {
            let (count, bytes) = tree_size(&self.root.join(dir));
            stats.leftovers += count;
            stats.leftover_bytes += bytes;
        }
        Ok(stats)
    }

    /// Hashes every blob (in parallel) and checks every action's blobs. Reports only, unless
    /// `repair`: then corrupt blobs, broken actions and unparsable actions are removed (a
    /// file another process has replaced since it was checked is left alone). Stray files
    /// are listed, not removed: `gc` does that, when no build can be writing them.
    pub fn verify(&self, repair: bool) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport {
            repaired: repair,
            ..VerifyReport::default()
        };
        let (blobs, mut strays) = blob_files(&self.root)?;
        let hashed: Vec<_> = blobs
            .par_iter()
            .map(|blob| (blob, hash_blob(&blob.path)))
            .collect();
        let mut found: HashMap<String, Found> = HashMap::new();
        for (blob, result) in hashed {
            match result {
                // Removed since it was listed.
                Ok(None) => continue,
                Ok(Some((actual, len, _))) if actual == blob.hex => {
                    self.mark_verified(&blob.hex);
                    found.insert(blob.hex.clone(), Found::Intact(len));
                }
                Ok(Some((actual, _, id))) => {
                    found.insert(blob.hex.clone(), Found::Corrupt(id));
                    report.corrupt_blobs.push(CorruptBlob {
                        digest: format!("sha256:{}", blob.hex),
                        path: blob.path.clone(),
                        actual: Some(format!("sha256:{actual}")),
                        error: None,
                    });
                }
                Err(e) => {
                    found.insert(blob.hex.clone(), Found::Unreadable);
                    report.corrupt_blobs.push(CorruptBlob {
                        digest: format!("sha256:{}", blob.hex),
                        path: blob.path.clone(),
                        actual: None,
                        error: Some(e.to_string()),
                    });
                }
            }
            report.blobs += 1;
            report.blob_bytes += blob.len;
        }

        let (actions, action_strays) = keyed_files(&self.root.join(ACTIONS), "json")?;
        strays.extend(action_strays);
        let mut remove_actions = Vec::new();
        for action in actions {
            let (file, id) = match read_action(&action) {
                Ok(Some(read)) => read,
                Ok(None) => continue,
                Err((error, id)) => {
                    report.unparsable_actions.push(UnparsableAction {
                        path: action.path.clone(),
                        error,
                    });
                    remove_actions.push((action.path, id));
                    continue;
                }
            };
            report.actions += 1;
            let mut broken = false;
            for blob in &file.blobs {
                let problem = match digest_hex(&blob.digest) {
                    Err(_) => Some(ActionProblem::InvalidDigest),
                    Ok(hex) => self.blob_problem(hex, blob.size, &mut found),
                };
                if let Some(problem) = problem {
                    broken = true;
                    report.broken_actions.push(BrokenAction {
                        key: action.key.hex(),
                        path: action.path.clone(),
                        digest: blob.digest.clone(),
                        problem,
                    });
                }
            }
            if broken {
                remove_actions.push((action.path, id));
            }
        }
        let (_, log_strays) = keyed_files(&self.root.join(LOGS), "log")?;
        strays.extend(log_strays);
        strays.sort();
        report.stray_files = strays;

        if repair {
            for blob in &report.corrupt_blobs {
                if let Some(hex) = blob.digest.strip_prefix("sha256:") {
                    self.forget(hex);
                    match found.get(hex) {
                        Some(Found::Corrupt(id)) => {
                            remove_if_same(&blob.path, *id);
                        }
                        // Unreadable: nothing this process could compare, and nothing usable.
                        _ => {
                            let _ = fs::remove_file(&blob.path);
                        }
                    }
                }
            }
            for (path, id) in remove_actions {
                remove_if_same(&path, id);
            }
        }
        Ok(report)
    }

    /// What is wrong with blob `hex` of `size`, for an action that names it. A blob not seen
    /// when the blobs were listed may have been written since: it is hashed now.
    fn blob_problem(
        &self,
        hex: &str,
        size: u64,
        found: &mut HashMap<String, Found>,
    ) -> Option<ActionProblem> {
        if !found.contains_key(hex)
            && let Ok(Some((actual, len, _))) = hash_blob(&self.blobs.join(hex))
            && actual == hex
        {
            self.mark_verified(hex);
            found.insert(hex.to_owned(), Found::Intact(len));
        }
        match found.get(hex) {
            None => Some(ActionProblem::MissingBlob),
            Some(Found::Corrupt(_) | Found::Unreadable) => Some(ActionProblem::CorruptBlob),
            Some(Found::Intact(len)) if *len != size => Some(ActionProblem::SizeMismatch {
                recorded: size,
                actual: *len,
            }),
            Some(Found::Intact(_)) => None,
        }
    }

    /// Removes garbage from the store in `dir`, then the least recently used actions until
    /// it is at most `max_size` bytes (`u64::MAX`: garbage only).
    ///
    /// Garbage is what no build can use: files in `tmp/` and `moved/`, files the store does
    /// not know, actions that do not parse or name a missing blob (or one of another size),
    /// and blobs no action names. Then, while the store is over `max_size`, the action used
    /// least recently (a hit in [`Store::get_action`] counts as a use) goes, with its log
    /// and the blobs no remaining action names; logs of tasks with no action compete by
    /// their own age. Blobs are not hashed: [`Store::verify`] does that.
    ///
    /// # Errors
    /// [`StoreError::Busy`] while any [`Store`] is open on `dir`, in this process or another:
    /// `gc` does not wait for builds. A directory that holds no store is left alone.
    pub fn gc(dir: &Path, max_size: u64) -> Result<GcReport, StoreError> {
        let mut report = GcReport::default();
        if let Format::Missing = read_format(dir)? {
            return Ok(report);
        }
        let lock_path = dir.join(LOCK);
        let lock = open_lock(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Busy {
                    path: dir.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", &lock_path)(e)),
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
        report.size_before = report.leftovers.bytes
            + blobs.iter().map(|b| b.len).sum::<u64>()
            + actions.iter().map(|a| a.meta.len()).sum::<u64>()
            + logs.iter().map(|l| l.meta.len()).sum::<u64>();

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
                remove_file(&action.path)?;
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
                remove_file(&blob.path)?;
                report.unreferenced_blobs.add(blob.len);
            }
        }

        report.size_after = live.iter().map(|(a, _)| a.meta.len()).sum::<u64>()
            + refs.keys().filter_map(|hex| sizes.get(hex)).sum::<u64>()
            + logs.iter().map(|l| l.meta.len()).sum::<u64>();
        if report.size_after > max_size {
            evict(dir, live, logs, &sizes, &mut refs, max_size, &mut report)?;
        }
        Ok(report)
    }
}

/// An action (with its blobs) or a log of a task without one, by when it was last used.
struct Candidate {
    used: SystemTime,
    path: PathBuf,
    len: u64,
    key: TaskKey,
    blobs: Option<BTreeSet<String>>,
}

/// Removes actions (with their logs and the blobs only they name) and logs of tasks without
/// an action, least recently used first, until `report.size_after` is at most `max_size`.
fn evict(
    dir: &Path,
    live: Vec<(KeyedFile, BTreeSet<String>)>,
    logs: Vec<KeyedFile>,
    sizes: &HashMap<&str, u64>,
    refs: &mut HashMap<&str, u32>,
    max_size: u64,
    report: &mut GcReport,
) -> Result<(), StoreError> {
    let mut size = report.size_after;
    let candidate = |file: KeyedFile, blobs| Candidate {
        used: file.meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        len: file.meta.len(),
        path: file.path,
        key: file.key,
        blobs,
    };
    let live_keys: HashSet<TaskKey> = live.iter().map(|(a, _)| a.key).collect();
    let mut logs_by_key: HashMap<TaskKey, KeyedFile> = HashMap::new();
    let mut candidates = Vec::new();
    for log in logs {
        if live_keys.contains(&log.key) {
            logs_by_key.insert(log.key, log);
        } else {
            candidates.push(candidate(log, None));
        }
    }
    for (action, blobs) in live {
        candidates.push(candidate(action, Some(blobs)));
    }
    // Oldest first; the path breaks ties, so the order never depends on listing order.
    candidates.sort_by(|a, b| (a.used, &a.path).cmp(&(b.used, &b.path)));
    for Candidate {
        path,
        len,
        key,
        blobs,
        ..
    } in candidates
    {
        if size <= max_size {
            break;
        }
        remove_file(&path)?;
        size -= len;
        let Some(blobs) = blobs else {
            report.evicted_logs.add(len);
            continue;
        };
        let mut freed = len;
        for hex in &blobs {
            let Some(count) = refs.get_mut(hex.as_str()) else {
                continue;
            };
            *count -= 1;
            if *count == 0 {
                let blob_len = sizes.get(hex.as_str()).copied().unwrap_or(0);
                remove_file(&dir.join(BLOBS).join(hex))?;
                size -= blob_len;
                freed += blob_len;
            }
        }
        report.evicted_actions.add(freed);
        if let Some(log) = logs_by_key.remove(&key) {
            remove_file(&log.path)?;
            size -= log.meta.len();
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

/// Reads and parses an action file: `Ok(None)` if it is gone, `Err` with why it does not
/// parse (and its identity, to remove it safely).
fn read_action(action: &KeyedFile) -> Result<Option<(ActionFile, Identity)>, (String, Identity)> {
    let id = identity(&action.meta);
    let mut file = match File::open(&action.path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err((e.to_string(), id)),
    };
    let id = file.metadata().map_or(id, |m| identity(&m));
    let mut text = Vec::new();
    if let Err(e) = file.read_to_end(&mut text) {
        return Err((e.to_string(), id));
    }
    match serde_json::from_slice::<ActionFile>(&text) {
        Ok(parsed) if parsed.key == action.key.hex() => Ok(Some((parsed, id))),
        Ok(parsed) => Err((format!("it is the entry of key {}", parsed.key), id)),
        Err(e) => Err((e.to_string(), id)),
    }
}

/// The entries of `dir`; none if it does not exist.
fn entries(dir: &Path) -> Result<Vec<fs::DirEntry>, StoreError> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter(|e| !matches!(e, Err(e) if e.kind() == io::ErrorKind::NotFound))
            .collect::<Result<_, _>>()
            .map_err(io_err("read", dir)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err("read", dir)(e)),
    }
}

/// The blob files of the store in `root`, and the files in the blob directory that are not
/// blobs.
fn blob_files(root: &Path) -> Result<(Vec<BlobFile>, Vec<PathBuf>), StoreError> {
    let mut blobs = Vec::new();
    let mut strays = Vec::new();
    for entry in entries(&root.join(BLOBS))? {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        match entry.file_name().to_str() {
            Some(name) if is_sha256_hex(name) && meta.is_file() => blobs.push(BlobFile {
                hex: name.to_owned(),
                path,
                len: meta.len(),
            }),
            _ => strays.push(path),
        }
    }
    Ok((blobs, strays))
}

/// The `<2 hex>/<key hex>.<ext>` files under `dir`, and everything else there.
fn keyed_files(dir: &Path, ext: &str) -> Result<(Vec<KeyedFile>, Vec<PathBuf>), StoreError> {
    let mut files = Vec::new();
    let mut strays = Vec::new();
    for shard in entries(dir)? {
        let shard_path = shard.path();
        let shard_name = shard.file_name();
        let shard_ok = shard_name.len() == 2
            && shard_name
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            && fs::symlink_metadata(&shard_path).is_ok_and(|m| m.is_dir());
        if !shard_ok {
            strays.push(shard_path);
            continue;
        }
        for entry in entries(&shard_path)? {
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let key = entry
                .file_name()
                .to_str()
                .and_then(|name| name.strip_suffix(ext)?.strip_suffix('.'))
                .filter(|hex| hex.as_bytes().get(..2) == Some(shard_name.as_encoded_bytes()))
                .filter(|hex| hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                .and_then(TaskKey::from_hex);
            match key {
                Some(key) if meta.is_file() => files.push(KeyedFile { key, path, meta }),
                _ => strays.push(path),
            }
        }
    }
    Ok((files, strays))
}

/// Files (and symlinks) under `path`, and their bytes; `path` itself if it is a file.
fn tree_size(path: &Path) -> (u64, u64) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return (0, 0);
    };
    if !meta.is_dir() {
        return (1, meta.len());
    }
    let Ok(entries) = fs::read_dir(path) else {
        return (0, 0);
    };
    entries.flatten().fold((0, 0), |(count, bytes), entry| {
        let (c, b) = tree_size(&entry.path());
        (count + c, bytes + b)
    })
}

/// Removes a file or a directory tree; nothing if it is gone.
fn remove_tree(path: &Path) -> Result<(), StoreError> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

fn remove_file(path: &Path) -> Result<(), StoreError> {
    super::remove_file_if_exists(path)
}
