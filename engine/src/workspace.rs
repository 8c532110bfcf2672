//! What an opaque buildpack changed in `/workspace`: a stat snapshot before its `bin/build`
//! and one after. The change (files added or changed, paths deleted) is part of the task's
//! output, so a cache hit can replay it onto a fresh copy of the app.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The state of every entry under a directory, by relative path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot(BTreeMap<String, EntryState>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryState {
    mode: u32,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

/// What changed between two snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// Paths added or changed (files, links and directories), relative.
    pub changed: Vec<String>,
    /// Paths that are gone, relative.
    pub deleted: Vec<String>,
}

impl Change {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.deleted.is_empty()
    }
}

impl Snapshot {
    /// Takes a snapshot of `root` (which must exist).
    pub fn take(root: &Path) -> std::io::Result<Self> {
        let mut entries = BTreeMap::new();
        let mut stack = vec![root.to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let meta = std::fs::symlink_metadata(entry.path())?;
                let rel = entry
                    .path()
                    .strip_prefix(root)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if meta.is_dir() {
                    stack.push(entry.path());
                }
                entries.insert(
                    rel,
                    EntryState {
                        mode: meta.mode(),
                        size: if meta.is_dir() { 0 } else { meta.len() },
                        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000
                            + i128::from(meta.mtime_nsec()),
                        ctime_ns: i128::from(meta.ctime()) * 1_000_000_000
                            + i128::from(meta.ctime_nsec()),
                        ino: meta.ino(),
                    },
                );
            }
        }
        Ok(Self(entries))
    }

    /// What changed from `self` to `after`. Directories count as changed only when new or
    /// when their mode changed (their mtime moves with every file added).
    pub fn change_to(&self, after: &Snapshot) -> Change {
        let mut change = Change::default();
        for (path, state) in &after.0 {
            let is_dir = state.mode & 0o170_000 == 0o040_000;
            let changed = match self.0.get(path) {
                None => true,
                Some(old) if is_dir => old.mode != state.mode,
                Some(old) => old != state,
            };
            if changed {
                change.changed.push(path.clone());
            }
        }
        change.deleted = self
            .0
            .keys()
            .filter(|p| !after.0.contains_key(*p))
            .cloned()
            .collect();
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_added_changed_and_deleted_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/keep"), "k").unwrap();
        std::fs::write(root.join("src/edit"), "e").unwrap();
        std::fs::write(root.join("gone"), "g").unwrap();
        let before = Snapshot::take(root).unwrap();
        std::fs::write(root.join("src/edit"), "edited").unwrap();
        std::fs::remove_file(root.join("gone")).unwrap();
        std::fs::create_dir(root.join("new")).unwrap();
        std::fs::write(root.join("new/file"), "n").unwrap();
        let change = before.change_to(&Snapshot::take(root).unwrap());
        assert_eq!(change.changed, ["new", "new/file", "src/edit"]);
        assert_eq!(change.deleted, ["gone"]);
    }
}
