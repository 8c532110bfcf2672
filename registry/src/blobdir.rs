//! A content-addressed blob directory: `DIR/<sha256 hex>`, the shape of an OCI layout's
//! `blobs/sha256/` and of strata's store. Pulls write here, pushes read from here.
//!
//! A blob is written to a temporary file in the same directory while it streams in,
//! hashed on the way, and renamed to its digest only once the digest matches: a file
//! under a digest name is therefore always that content, and an interrupted or refused
//! download leaves nothing behind (the temporary file is removed on drop).

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::error::Error;

/// A directory of blobs named by their sha256 hex digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobDir {
    dir: PathBuf,
}

impl BlobDir {
    /// The directory `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob `digest` lives (whether or not it is there).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// Whether the blob is present with the expected size. Content written by this
    /// client was verified before it got its name; the size check catches a file
    /// truncated since.
    pub fn contains(&self, digest: &Digest, size: u64) -> bool {
        std::fs::metadata(self.path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Reads a blob whole and checks its digest: for manifests and configs, which are small.
    ///
    /// # Errors
    /// [`Error::MissingBlob`] if it is absent or does not match its digest.
    pub fn read_verified(&self, digest: &Digest) -> Result<Vec<u8>, Error> {
        let missing = || Error::MissingBlob {
            dir: self.dir.clone(),
            digest: digest.clone(),
        };
        let bytes = std::fs::read(self.path(digest)).map_err(|_| missing())?;
        if Digest::of(&bytes) != *digest {
            return Err(missing());
        }
        Ok(bytes)
    }

    /// Stores `bytes` under their digest (already known to be `digest`).
    pub(crate) fn write(&self, digest: &Digest, bytes: &[u8]) -> Result<(), Error> {
        let mut w = self.writer()?;
        w.write(bytes)?;
        w.commit(digest)
    }

    /// A writer for a blob streaming in.
    pub(crate) fn writer(&self) -> Result<BlobWriter, Error> {
        std::fs::create_dir_all(&self.dir).map_err(|source| Error::Io {
            path: self.dir.clone(),
            source,
        })?;
        let file = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(&self.dir)
            .map_err(|source| Error::Io {
                path: self.dir.clone(),
                source,
            })?;
        Ok(BlobWriter {
            dir: self.dir.clone(),
            file,
            hasher: Sha256::new(),
            len: 0,
        })
    }
}

/// A blob being written: a temporary file and the running digest.
pub(crate) struct BlobWriter {
    dir: PathBuf,
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    len: u64,
}

impl BlobWriter {
    /// Appends bytes.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        self.file.write_all(bytes).map_err(|source| Error::Io {
            path: self.file.path().to_owned(),
            source,
        })
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The digest of what was written.
    pub(crate) fn digest(&self) -> Digest {
        Digest::from_hasher(self.hasher.clone())
    }

    /// Renames the file to `digest` if the content hashes to it; otherwise the file is
    /// removed and the actual digest returned as the error.
    pub(crate) fn commit(self, digest: &Digest) -> Result<(), Error> {
        let actual = self.digest();
        if actual != *digest {
            return Err(Error::MissingBlob {
                dir: self.dir,
                digest: digest.clone(),
            });
        }
        let target = self.dir.join(digest.hex());
        self.file
            .as_file()
            .sync_data()
            .map_err(|source| Error::Io {
                path: self.file.path().to_owned(),
                source,
            })?;
        self.file.persist(&target).map_err(|e| Error::Io {
            path: target,
            source: e.error,
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_matching_content_gets_a_name() {
        let tmp = tempfile::tempdir().unwrap();
        let blobs = BlobDir::new(tmp.path().join("blobs/sha256"));
        let digest = Digest::of(b"hello");
        let mut w = blobs.writer().unwrap();
        w.write(b"hellO").unwrap();
        assert!(w.commit(&digest).is_err());
        assert_eq!(std::fs::read_dir(blobs.dir()).unwrap().count(), 0);
        blobs.write(&digest, b"hello").unwrap();
        assert!(blobs.contains(&digest, 5));
        assert!(!blobs.contains(&digest, 4));
        assert_eq!(blobs.read_verified(&digest).unwrap(), b"hello");
    }
}
