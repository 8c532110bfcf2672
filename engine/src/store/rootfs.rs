//! Build images' root filesystems in the store: `rootfs/<64 hex>/`, each a tree the exporter
//! unpacked (`strata_exporter::rootfs`), named by its layers, read-only to builds. A build
//! that uses one sets its directory's mtime ([`mark_rootfs_used`]), so that `gc` evicts the
//! trees no recent build used first, competing with actions by that time; anything else under
//! `rootfs/` (the `.unpacking-*` temp dir a killed unpack left) is a leftover. Trees are made
//! and used only while a [`super::Store`] is open, so `gc`'s exclusive lock never removes one
//! under a build.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::scan::{entries, tree_size};
use super::{ROOTFS, StoreError, io_err, is_sha256_hex};

/// One unpacked tree.
pub(super) struct RootfsTree {
    pub(super) path: PathBuf,
    /// When a build last used it.
    pub(super) used: SystemTime,
    /// Its files' bytes.
    pub(super) bytes: u64,
}

/// The store's directory of build image trees: `<store>/rootfs`.
pub fn rootfs_dir(store_root: &Path) -> PathBuf {
    store_root.join(ROOTFS)
}

/// Records that a build uses the tree `dir` now (its mtime), for `gc`'s least-recently-used
/// order. A tree whose time cannot be set is only evicted sooner.
pub fn mark_rootfs_used(dir: &Path) {
    if let Ok(file) = fs::File::open(dir) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// The trees under `<root>/rootfs`, and everything else there.
pub(super) fn rootfs_trees(root: &Path) -> Result<(Vec<RootfsTree>, Vec<PathBuf>), StoreError> {
    let mut trees = Vec::new();
    let mut strays = Vec::new();
    for entry in entries(&rootfs_dir(root))? {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let named = entry.file_name().to_str().is_some_and(is_sha256_hex);
        if named && meta.is_dir() {
            trees.push(RootfsTree {
                used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                bytes: tree_size(&path).1,
                path,
            });
        } else {
            strays.push(path);
        }
    }
    Ok((trees, strays))
}

/// Removes a tree, making its read-only directories (an image's `/proc`, `/root`, …)
/// writable first when removing as their owner fails; links are never followed.
pub(super) fn remove_rootfs(path: &Path) -> Result<(), StoreError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            open_up(path);
            fs::remove_dir_all(path).map_err(io_err("remove", path))
        }
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

/// Gives the owner full access to every directory under `path` (not following links).
fn open_up(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(
        path,
        fs::Permissions::from_mode(meta.permissions().mode() | 0o700),
    );
    if let Ok(children) = fs::read_dir(path) {
        for child in children.flatten() {
            open_up(&child.path());
        }
    }
}
