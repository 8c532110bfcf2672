//! Listing a store's files, and what they add up to ([`Store::stats`]). `verify` and `gc` work
//! from these lists; a file another process adds or removes meanwhile may or may not be in
//! them.

use std::fs::{self, Metadata};
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use strata_planner::TaskKey;

use super::files::{Identity, identity, read_bounded};
use super::rootfs::rootfs_trees;
use super::{
    ACTIONS, ActionFile, BLOBS, LOGS, MAX_ACTION, MOVED, Store, StoreError, TMP, io_err,
    is_sha256_hex,
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
    /// Build images' root filesystems, unpacked.
    pub rootfs: u64,
    /// Their bytes.
    pub rootfs_bytes: u64,
}

impl StoreStats {
    /// Every byte the store's files take.
    pub fn total_bytes(&self) -> u64 {
        self.blob_bytes
            + self.action_bytes
            + self.log_bytes
            + self.leftover_bytes
            + self.rootfs_bytes
    }
}

/// A blob file in `blobs/sha256/`.
pub(super) struct BlobFile {
    pub(super) hex: String,
    pub(super) path: PathBuf,
    pub(super) len: u64,
}

/// An action or log file, with the key its name gives.
pub(super) struct KeyedFile {
    pub(super) key: TaskKey,
    pub(super) path: PathBuf,
    pub(super) meta: Metadata,
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
        let (trees, strays) = rootfs_trees(&self.root)?;
        stats.rootfs = trees.len() as u64;
        stats.rootfs_bytes = trees.iter().map(|t| t.bytes).sum();
        for stray in strays {
            let (count, bytes) = tree_size(&stray);
            stats.leftovers += count;
            stats.leftover_bytes += bytes;
        }
        Ok(stats)
    }
}

/// Reads and parses an action file: `Ok(None)` if it is gone, `Err` with why it does not
/// parse (and its identity, to remove it safely).
pub(super) fn read_action(
    action: &KeyedFile,
) -> Result<Option<(ActionFile, Identity)>, (String, Identity)> {
    let id = identity(&action.meta);
    let (text, id) = match read_bounded(&action.path, MAX_ACTION) {
        Ok(Some((text, meta, _))) => (text, identity(&meta)),
        Ok(None) => return Ok(None),
        Err(e) => return Err((e.to_string(), id)),
    };
    match serde_json::from_slice::<ActionFile>(&text) {
        Ok(parsed) if parsed.key == action.key.hex() => Ok(Some((parsed, id))),
        Ok(parsed) => Err((format!("it is the entry of key {}", parsed.key), id)),
        Err(e) => Err((e.to_string(), id)),
    }
}

/// The entries of `dir`; none if it does not exist.
pub(super) fn entries(dir: &Path) -> Result<Vec<fs::DirEntry>, StoreError> {
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
pub(super) fn blob_files(root: &Path) -> Result<(Vec<BlobFile>, Vec<PathBuf>), StoreError> {
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
pub(super) fn keyed_files(
    dir: &Path,
    ext: &str,
) -> Result<(Vec<KeyedFile>, Vec<PathBuf>), StoreError> {
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
pub(super) fn tree_size(path: &Path) -> (u64, u64) {
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
pub(super) fn remove_tree(path: &Path) -> Result<(), StoreError> {
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
