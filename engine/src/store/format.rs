//! The store's format version (`strata-store.json`) and what happens to a store of another
//! one: it is moved aside, under the exclusive lock, and the store starts empty.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::files::write_file;
use super::{LOCK, MARKER, MOVED, STORE_VERSION, StoreError, io_err};

#[derive(Serialize, Deserialize)]
struct Marker {
    version: u32,
}

/// What `strata-store.json` says.
pub(super) enum Format {
    Missing,
    Current,
    Other(String),
}

/// Opens (creating) the lock file; locking is the caller's.
pub(super) fn open_lock(path: &Path) -> Result<File, StoreError> {
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err("open", path))
}

/// Reads the store's format marker.
pub(super) fn read_format(dir: &Path) -> Result<Format, StoreError> {
    let path = dir.join(MARKER);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Format::Missing),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    Ok(match serde_json::from_slice::<Marker>(&text) {
        Ok(marker) if marker.version == STORE_VERSION => Format::Current,
        Ok(marker) => Format::Other(format!("version {}", marker.version)),
        Err(_) => Format::Other(format!("an unreadable {MARKER}")),
    })
}

/// Marks the store in `dir` as this version's.
pub(super) fn write_marker(dir: &Path, tmp: &Path) -> Result<(), StoreError> {
    let text = format!("{{\"version\":{STORE_VERSION}}}\n");
    write_file(tmp, &dir.join(MARKER), text.as_bytes(), 0o644)
}

/// Moves everything of a store of another format into `moved/<unique>/`, the marker last so
/// that a crash half way leaves a store that is still recognized as foreign. Runs under the
/// exclusive lock.
pub(super) fn move_aside(dir: &Path) -> Result<(), StoreError> {
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let aside = dir
        .join(MOVED)
        .join(format!("{stamp}-{}", std::process::id()));
    fs::create_dir_all(&aside).map_err(io_err("create", &aside))?;
    let entries = fs::read_dir(dir).map_err(io_err("read", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err("read", dir))?;
        let name = entry.file_name();
        if name == LOCK || name == MOVED || name == MARKER {
            continue;
        }
        let from = entry.path();
        fs::rename(&from, aside.join(&name)).map_err(io_err("move aside", &from))?;
    }
    let marker = dir.join(MARKER);
    if marker.exists() {
        fs::rename(&marker, aside.join(MARKER)).map_err(io_err("move aside", &marker))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BLOBS, Store};

    #[test]
    fn a_store_of_another_version_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        fs::write(root.join(MARKER), r#"{"version": 999}"#).unwrap();
        fs::write(root.join("blobs/sha256/old"), "old").unwrap();
        let store = Store::open(&root).unwrap();
        assert!(matches!(read_format(&root).unwrap(), Format::Current));
        assert_eq!(fs::read_dir(root.join(BLOBS)).unwrap().count(), 0);
        let moved: Vec<_> = fs::read_dir(root.join(MOVED)).unwrap().collect();
        assert_eq!(moved.len(), 1);
        let aside = moved[0].as_ref().unwrap().path();
        assert!(aside.join("blobs/sha256/old").is_file());
        assert!(aside.join(MARKER).is_file());
        drop(store);

        fs::write(root.join(MARKER), "not json").unwrap();
        let _store = Store::open(&root).unwrap();
        assert!(matches!(read_format(&root).unwrap(), Format::Current));
        assert_eq!(fs::read_dir(root.join(MOVED)).unwrap().count(), 2);
    }
}
