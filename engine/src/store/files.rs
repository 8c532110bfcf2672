//! File operations the store is built from: writes that appear whole or not at all, hashing
//! while reading or writing, and removals that spare a file another process has just put in
//! place. A shared store is input from elsewhere, so its files are opened without following
//! a symlink and without waiting on a FIFO, and only regular files are read.

use std::fs::{self, File, Metadata};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::{BUFFER, StoreError, io_err};
use crate::hashing::HashingWriter;
use crate::untrusted::{self, Refused};

/// A file's identity: device and inode.
pub(super) type Identity = (u64, u64);

pub(super) fn identity(meta: &Metadata) -> Identity {
    (meta.dev(), meta.ino())
}

/// Opens the store file at `path` for reading if it is a regular file: a symlink (`ELOOP`
/// under `O_NOFOLLOW`) or a FIFO, device or directory is an `InvalidData` error, and opening
/// never blocks. `None` if it is gone.
pub(super) fn open_regular(path: &Path) -> io::Result<Option<(File, Metadata)>> {
    let invalid = |what| Err(io::Error::new(io::ErrorKind::InvalidData, what));
    match untrusted::open_regular(path) {
        Ok(opened) => Ok(Some(opened)),
        Err(Refused::Io(e)) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(Refused::Io(e)) => Err(e),
        Err(Refused::Symlink) => invalid("a symbolic link, not a regular file"),
        Err(Refused::NotAFile(_)) => invalid("not a regular file"),
    }
}

/// Reads the whole store file at `path` (an action entry) of at most `limit` bytes, as
/// [`open_regular`] opens it. `None` if it is gone.
pub(super) fn read_bounded(
    path: &Path,
    limit: u64,
) -> io::Result<Option<(Vec<u8>, Metadata, File)>> {
    let Some((file, meta)) = open_regular(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    (&file).take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more than {limit} bytes"),
        ));
    }
    Ok(Some((bytes, meta, file)))
}

/// Hashes the blob at `path`: its sha256 (hex), its length and its identity, or `None` if
/// it is gone.
pub(super) fn hash_blob(path: &Path) -> io::Result<Option<(String, u64, Identity)>> {
    let Some((file, meta)) = open_regular(path)? else {
        return Ok(None);
    };
    let identity = identity(&meta);
    let mut hashing = HashingWriter::new(io::sink());
    io::copy(&mut BufReader::with_capacity(BUFFER, file), &mut hashing)?;
    let (hex, len, _) = hashing.into_parts();
    Ok(Some((hex, len, identity)))
}

/// Removes `path` if it still is the file with `identity`; whether it did. A file another
/// process renamed to that name since it was checked is left alone.
pub(super) fn remove_if_same(path: &Path, identity: Identity) -> bool {
    match fs::symlink_metadata(path) {
        Ok(meta) if self::identity(&meta) == identity => fs::remove_file(path).is_ok(),
        _ => false,
    }
}

pub(super) fn remove_file_if_exists(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

pub(super) fn create_parent(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent).map_err(io_err("create", parent)),
        None => Ok(()),
    }
}

/// Writes `bytes` to `dest` through a synced temp file in `tmp_dir` and a rename.
pub(super) fn write_file(
    tmp_dir: &Path,
    dest: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<(), StoreError> {
    let mut temp = crate::scratch::temp_file_in(tmp_dir, "file-")
        .map_err(io_err("create a temp file in", tmp_dir))?;
    temp.write_all(bytes).map_err(io_err("write", dest))?;
    persist(temp, dest, mode)
}

/// Gives a finished temp file its mode, syncs it and renames it to `dest`.
pub(super) fn persist(
    temp: tempfile::NamedTempFile,
    dest: &Path,
    mode: u32,
) -> Result<(), StoreError> {
    let file = temp.as_file();
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err("write", dest))?;
    file.sync_all().map_err(io_err("write", dest))?;
    temp.persist(dest)
        .map_err(|e| io_err("write", dest)(e.error))?;
    Ok(())
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_if_same_spares_a_replaced_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "old").unwrap();
        let old = identity(&fs::metadata(&path).unwrap());
        fs::write(dir.path().join("g"), "new").unwrap();
        fs::rename(dir.path().join("g"), &path).unwrap();
        assert!(!remove_if_same(&path, old));
        assert!(path.exists());
        let new = identity(&fs::metadata(&path).unwrap());
        assert!(remove_if_same(&path, new));
        assert!(!path.exists());
    }

    #[test]
    fn hash_blob_reads_digest_and_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "hello").unwrap();
        let (hex, len, _) = hash_blob(&path).unwrap().unwrap();
        assert_eq!(
            hex,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(len, 5);
        assert!(hash_blob(&dir.path().join("missing")).unwrap().is_none());
    }
}
