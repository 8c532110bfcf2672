//! Opening and checking files of an OCI layout (blobs, `index.json`, `oci-layout`) so that no
//! file in a layout can hang strata, point it elsewhere, or make it read without bound.
//!
//! A layout is shared with other tools and users, so any of its names may be something other
//! than the regular file it should be. Every file is opened with `O_NOFOLLOW | O_NONBLOCK`:
//! a symlink fails to open (strata never links or reads through one), a FIFO opens at once
//! instead of waiting for a writer, and the opened file's type is checked before a byte is
//! read. Whole-file reads are bounded.
//!
//! Verifying a blob means hashing it, and a build commits the same run image and cached
//! layers again and again, so a blob file found intact is remembered for the rest of the
//! process by its identity (device, inode, size, mtime), as the store remembers the blobs it
//! checked. A hardlink keeps that identity, so a store blob hashed once is not hashed again
//! when it is staged into a layout, moved in, or checked at the commit.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};

use oci_spec::image::Descriptor;
use sha2::{Digest as _, Sha256};
use strata_engine::hashing::HashingWriter;
use strata_engine::untrusted::{self, Refused};

use crate::layout::LayoutError;

/// Read buffer for hashing blobs.
const BUFFER: usize = 256 * 1024;

/// A file's identity and the state that changes when its bytes are rewritten.
type FileKey = (u64, u64, u64, i64, i64);

fn file_key(meta: &Metadata) -> FileKey {
    (
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
    )
}

/// Blob files this process hashed and found to be the blob of this hex digest.
fn verified() -> &'static Mutex<HashMap<FileKey, String>> {
    static VERIFIED: OnceLock<Mutex<HashMap<FileKey, String>>> = OnceLock::new();
    VERIFIED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Records that the file with `meta` holds the blob `hex`.
pub(crate) fn remember(meta: &Metadata, hex: &str) {
    verified()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(file_key(meta), hex.to_owned());
}

fn is_remembered(meta: &Metadata, hex: &str) -> bool {
    verified()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&file_key(meta))
        .is_some_and(|known| known == hex)
}

/// What a file that is not a regular file is, for an error message.
pub(crate) fn kind_of(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading if it is a regular file, without following a symlink at its last
/// component and without blocking on a FIFO; returns the file and its metadata.
///
/// # Errors
/// [`LayoutError::NotAFile`] for a symlink, FIFO, directory, socket or device, and
/// [`LayoutError::Io`] (with `NotFound` for a missing file) otherwise.
pub(crate) fn open_regular(path: &Path) -> Result<(File, Metadata), LayoutError> {
    let not_a_file = |kind| LayoutError::NotAFile {
        path: path.to_path_buf(),
        kind,
    };
    untrusted::open_regular(path).map_err(|refused| match refused {
        Refused::Symlink => not_a_file("a symbolic link"),
        Refused::NotAFile(kind) => not_a_file(kind_of(kind)),
        Refused::Io(source) => io_err("cannot read", path, source),
    })
}

/// Reads a whole small file (`index.json`, `oci-layout`) of at most `limit` bytes.
///
/// # Errors
/// As [`open_regular`], or [`LayoutError::FileTooLarge`].
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, LayoutError> {
    let (file, meta) = open_regular(path)?;
    let too_large = || LayoutError::FileTooLarge {
        path: path.to_path_buf(),
        limit,
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len().saturating_add(1)).unwrap_or(0));
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_err("cannot read", path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Checks that the file at `path` is the blob of `descriptor`: a regular file of its size
/// whose sha256 is its digest. A file this process found intact before is not hashed again.
///
/// # Errors
/// As [`open_regular`], [`LayoutError::SizeMismatch`], [`LayoutError::DigestMismatch`] or
/// [`LayoutError::UnsupportedDigest`].
pub(crate) fn verify_file(path: &Path, descriptor: &Descriptor) -> Result<(), LayoutError> {
    let hex = crate::layout::sha256_hex_of(descriptor.digest())?;
    let (file, meta) = open_regular(path)?;
    if meta.len() != descriptor.size() {
        return Err(LayoutError::SizeMismatch {
            path: path.to_path_buf(),
            digest: descriptor.digest().to_string(),
            expected: descriptor.size(),
            actual: meta.len(),
        });
    }
    if is_remembered(&meta, hex) {
        return Ok(());
    }
    let mut hashing = HashingWriter::new(io::sink());
    io::copy(
        &mut io::BufReader::with_capacity(BUFFER, file),
        &mut hashing,
    )
    .map_err(|e| io_err("cannot read blob", path, e))?;
    let (actual, len, _) = hashing.into_parts();
    check_copy(path, descriptor, len, &actual)?;
    remember(&meta, hex);
    Ok(())
}

/// Reads a JSON-sized blob whole and checks it against its descriptor.
///
/// # Errors
/// As [`verify_file`], or [`LayoutError::BlobTooLarge`] over [`crate::layout::MAX_JSON_BLOB`].
pub(crate) fn read_verified(path: &Path, descriptor: &Descriptor) -> Result<Vec<u8>, LayoutError> {
    let expected = crate::layout::sha256_hex_of(descriptor.digest())?;
    if descriptor.size() > crate::layout::MAX_JSON_BLOB {
        return Err(LayoutError::BlobTooLarge {
            digest: descriptor.digest().to_string(),
            size: descriptor.size(),
        });
    }
    let (file, meta) = open_regular(path)?;
    // Room for the whole blob at once (what the file has, at most what is expected): no
    // growing and copying as it is read.
    let room = descriptor.size().min(meta.len()).saturating_add(1);
    let mut bytes = Vec::with_capacity(usize::try_from(room).unwrap_or(0));
    // One byte more than expected is enough to notice a blob that is too long.
    file.take(descriptor.size() + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_err("cannot read blob", path, e))?;
    if bytes.len() as u64 != descriptor.size() {
        return Err(LayoutError::SizeMismatch {
            path: path.to_path_buf(),
            digest: descriptor.digest().to_string(),
            expected: descriptor.size(),
            actual: meta.len().max(bytes.len() as u64),
        });
    }
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != expected {
        return Err(LayoutError::DigestMismatch {
            path: path.to_path_buf(),
            expected: descriptor.digest().to_string(),
            actual: format!("sha256:{actual}"),
        });
    }
    Ok(bytes)
}

/// Checks a length and hex sha256 computed while copying or hashing `path`.
pub(crate) fn check_copy(
    path: &Path,
    descriptor: &Descriptor,
    len: u64,
    actual_hex: &str,
) -> Result<(), LayoutError> {
    if len != descriptor.size() {
        return Err(LayoutError::SizeMismatch {
            path: path.to_path_buf(),
            digest: descriptor.digest().to_string(),
            expected: descriptor.size(),
            actual: len,
        });
    }
    if Some(actual_hex) != descriptor.as_digest_sha256() {
        return Err(LayoutError::DigestMismatch {
            path: path.to_path_buf(),
            expected: descriptor.digest().to_string(),
            actual: format!("sha256:{actual_hex}"),
        });
    }
    Ok(())
}

pub(crate) fn io_err(action: &'static str, path: &Path, source: io::Error) -> LayoutError {
    LayoutError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use oci_spec::image::MediaType;
    use std::fs;

    fn descriptor(bytes: &[u8]) -> Descriptor {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        Descriptor::new(
            MediaType::ImageLayer,
            bytes.len() as u64,
            digest.parse::<oci_spec::image::Digest>().unwrap(),
        )
    }

    #[test]
    fn symlinks_and_fifos_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"bytes").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for (path, kind) in [
            (&link, "a symbolic link"),
            (&fifo, "a FIFO"),
            (&dir.path().to_path_buf(), "a directory"),
        ] {
            let err = verify_file(path, &descriptor(b"bytes")).unwrap_err();
            assert!(
                matches!(&err, LayoutError::NotAFile { kind: k, .. } if *k == kind),
                "{err:?}"
            );
            assert!(err.to_string().contains(&path.display().to_string()));
            assert!(read_bounded(path, 100).is_err());
        }
        verify_file(&target, &descriptor(b"bytes")).unwrap();
    }

    #[test]
    fn a_rewritten_file_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        fs::write(&path, b"good").unwrap();
        verify_file(&path, &descriptor(b"good")).unwrap();
        fs::write(&path, b"evil").unwrap();
        assert!(matches!(
            verify_file(&path, &descriptor(b"good")),
            Err(LayoutError::DigestMismatch { .. })
        ));
    }

    #[test]
    fn reads_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        fs::write(&path, vec![b' '; 101]).unwrap();
        assert!(matches!(
            read_bounded(&path, 100),
            Err(LayoutError::FileTooLarge { limit: 100, .. })
        ));
        assert_eq!(read_bounded(&path, 101).unwrap().len(), 101);
    }
}
