//! Restore refs: which action entry an opaque buildpack's next run starts from.
//!
//! A ref file `restore/<2 hex>/<id>.json` names, for one restore id (a service of one
//! repository and one buildpack, see [`crate::restore::restore_id`]), the task key of that
//! buildpack's last successful run there. The entry it names already holds everything a
//! restore needs (layer blobs, layer metadata, `store.toml`), so a ref is a pointer and pins
//! nothing: `gc` evicts the entry by its own use like any other, and removes the refs whose
//! entry is gone. A ref that is missing, unreadable, or names a gone or bad entry is a cold
//! run, never an error.

use std::path::Path;

use serde::{Deserialize, Serialize};
use strata_planner::TaskKey;

use super::files::{
    create_parent, identity, read_bounded, remove_file_if_exists, remove_if_same, write_file,
};
use super::gc::Removed;
use super::scan::keyed_files;
use super::{ACTIONS, RESTORE, Store, StoreError, sharded};

/// The largest ref file read: two hex keys and their names.
const MAX_REF: u64 = 4096;

/// A ref file: its own id (so a file copied to another id's name is not taken for it) and
/// the key it names.
#[derive(Serialize, Deserialize)]
struct RefFile {
    id: String,
    key: String,
}

impl Store {
    /// Records that the restore state of `id` is the action entry of `key`, replacing any
    /// earlier one. Nothing is written when the ref already names `key`, so a build that
    /// changes nothing leaves the store as it was.
    pub fn put_restore(&self, id: &TaskKey, key: &TaskKey) -> Result<(), StoreError> {
        if self.get_restore(id) == Some(*key) {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&RefFile {
            id: id.hex(),
            key: key.hex(),
        })
        .map_err(|source| StoreError::Encode {
            key: id.hex(),
            source,
        })?;
        let dest = sharded(&self.root.join(RESTORE), id, "json");
        create_parent(&dest)?;
        write_file(&self.tmp, &dest, &bytes, 0o644)
    }

    /// The key whose entry holds the restore state of `id`, if a ref names one. A ref file that
    /// is not a small regular file of its own id is removed (it is no ref). Whether the entry
    /// is still there, and intact, is for [`Store::get_action`] to say.
    pub fn get_restore(&self, id: &TaskKey) -> Option<TaskKey> {
        let path = sharded(&self.root.join(RESTORE), id, "json");
        let Ok(read) = read_bounded(&path, MAX_REF) else {
            if let Ok(meta) = std::fs::symlink_metadata(&path) {
                remove_if_same(&path, identity(&meta));
            }
            return None;
        };
        let (text, meta, _) = read?;
        let key = serde_json::from_slice::<RefFile>(&text)
            .ok()
            .filter(|file| file.id == id.hex())
            .and_then(|file| TaskKey::from_hex(&file.key));
        if key.is_none() {
            remove_if_same(&path, identity(&meta));
        }
        key
    }
}

/// Removes, from the store in `dir`, every ref whose entry is gone, and every file under
/// `restore/` that is no ref. Runs under `gc`'s exclusive lock, after its removals.
pub(super) fn sweep(dir: &Path) -> Result<(Removed, Removed), StoreError> {
    let mut stale = Removed::default();
    let mut strays = Removed::default();
    let (refs, stray_files) = keyed_files(&dir.join(RESTORE), "json")?;
    for stray in stray_files {
        let bytes = super::scan::tree_size(&stray).1;
        super::scan::remove_tree(&stray)?;
        strays.add(bytes);
    }
    for file in refs {
        let named = read_bounded(&file.path, MAX_REF)
            .ok()
            .flatten()
            .and_then(|(text, _, _)| serde_json::from_slice::<RefFile>(&text).ok())
            .filter(|r| r.id == file.key.hex())
            .and_then(|r| TaskKey::from_hex(&r.key));
        let live = named.is_some_and(|key| sharded(&dir.join(ACTIONS), &key, "json").is_file());
        if !live {
            remove_file_if_exists(&file.path)?;
            stale.add(file.meta.len());
        }
    }
    Ok((stale, strays))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ActionEntry, Store};

    fn key(n: u8) -> TaskKey {
        TaskKey::from_bytes([n; 32])
    }

    #[test]
    fn a_ref_names_its_key_and_only_for_its_own_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.get_restore(&key(1)), None);
        store.put_restore(&key(1), &key(7)).unwrap();
        assert_eq!(store.get_restore(&key(1)), Some(key(7)));
        store.put_restore(&key(1), &key(8)).unwrap();
        assert_eq!(store.get_restore(&key(1)), Some(key(8)));

        // Copied to another id's name, it is no ref of that id, and goes.
        let path = |id: &TaskKey| sharded(&dir.path().join(RESTORE), id, "json");
        create_parent(&path(&key(2))).unwrap();
        std::fs::copy(path(&key(1)), path(&key(2))).unwrap();
        assert_eq!(store.get_restore(&key(2)), None);
        assert!(!path(&key(2)).exists());
        // Garbage and links are no refs either.
        std::fs::write(path(&key(1)), "{\"id\":").unwrap();
        assert_eq!(store.get_restore(&key(1)), None);
        std::os::unix::fs::symlink("/etc/passwd", path(&key(1))).unwrap();
        assert_eq!(store.get_restore(&key(1)), None);
        assert!(std::fs::symlink_metadata(path(&key(1))).is_err());
    }

    #[test]
    fn gc_keeps_refs_to_live_entries_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let entry = ActionEntry {
            blobs: Vec::new(),
            payload: serde_json::Value::Null,
        };
        store.put_action(&key(7), &entry).unwrap();
        store.put_restore(&key(1), &key(7)).unwrap();
        store.put_restore(&key(2), &key(9)).unwrap();
        drop(store);
        let report = Store::gc(dir.path(), u64::MAX).unwrap();
        assert_eq!(report.stale_restore_refs.count, 1, "{report:?}");
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.get_restore(&key(1)), Some(key(7)));
        assert_eq!(store.get_restore(&key(2)), None);
        drop(store);

        // Evicting the entry makes its ref stale too: the next run is cold.
        let report = Store::gc(dir.path(), 0).unwrap();
        assert_eq!(report.evicted_actions.count, 1, "{report:?}");
        assert_eq!(report.stale_restore_refs.count, 1, "{report:?}");
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.get_restore(&key(1)), None);
    }
}
