//! A layer blob's recorded diffID checked against its content: the sha256 of the tar the
//! blob decompresses to, read as a stream (memory stays bounded whatever the layer's size).
//!
//! A task cache entry from another machine records, for each layer blob it names, the diffID
//! the image config will list for it (`rootfs.diff_ids`). The blob's own digest is verified
//! as it is downloaded; this is the check that the diffID it comes with is the blob's, so
//! that an entry cannot make an image whose config does not match its layers.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::archive::Compression;
use crate::unpack::decoder;

/// A layer blob an entry names with a diffID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordedBlob {
    /// `sha256:` of the blob as stored.
    pub digest: String,
    /// `sha256:` of its tar, as recorded.
    pub diff_id: String,
    /// How the tar is compressed, as recorded.
    pub compression: Compression,
}

/// Why a blob's diffID is not the one recorded.
#[derive(Debug, thiserror::Error)]
pub enum DiffIdError {
    /// The blob cannot be read, or does not decompress as recorded.
    #[error("cannot read the {compression} tar of {path}")]
    Read {
        path: PathBuf,
        compression: Compression,
        #[source]
        source: io::Error,
    },
    /// Its tar hashes to another diffID.
    #[error("its tar is {actual}, not the diffID {recorded} recorded for it")]
    Mismatch { recorded: String, actual: String },
}

/// Checks that the blob `blob` names, the file at `path`, decompresses (as `blob` says) to
/// a tar whose sha256 is `blob.diff_id`. An uncompressed blob's diffID is its digest, which
/// the caller has verified: it is compared, not hashed again.
///
/// # Errors
/// The file cannot be read or decompressed, or its tar is another.
pub fn check(path: &Path, blob: &RecordedBlob) -> Result<(), DiffIdError> {
    let actual = match blob.compression {
        Compression::None => blob.digest.clone(),
        compression => {
            let read = |source| DiffIdError::Read {
                path: path.to_path_buf(),
                compression,
                source,
            };
            let file = File::open(path).map_err(read)?;
            let mut tar = decoder(BufReader::new(file), compression).map_err(read)?;
            let mut hasher = Sha256::new();
            io::copy(&mut tar, &mut hasher).map_err(read)?;
            format!("sha256:{}", hex::encode(hasher.finalize()))
        }
    };
    if actual == blob.diff_id {
        Ok(())
    } else {
        Err(DiffIdError::Mismatch {
            recorded: blob.diff_id.clone(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failing test

    use std::io::Write as _;

    use super::*;

    fn sha(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    #[test]
    fn a_blob_matches_the_diff_id_of_its_tar_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        // Bytes past any one buffer's length, that do not compress to nothing.
        let tar: Vec<u8> = (0u32..300_000)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
            .collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&tar[..], 1).unwrap();
        for (compression, bytes) in [
            (Compression::Gzip, gz),
            (Compression::Zstd, zst),
            (Compression::None, tar.clone()),
        ] {
            let path = dir.path().join(compression.to_string());
            std::fs::write(&path, &bytes).unwrap();
            let blob = RecordedBlob {
                digest: sha(&bytes),
                diff_id: sha(&tar),
                compression,
            };
            check(&path, &blob).unwrap();
            let wrong = RecordedBlob {
                diff_id: sha(b"another tar"),
                ..blob.clone()
            };
            assert!(
                matches!(check(&path, &wrong), Err(DiffIdError::Mismatch { .. })),
                "{compression}"
            );
            if compression != Compression::None {
                // Recorded as the other compression, or not a compressed stream at all.
                std::fs::write(&path, &tar).unwrap();
                assert!(check(&path, &blob).is_err(), "{compression}");
            }
        }
        let gone = RecordedBlob {
            digest: sha(b"x"),
            diff_id: sha(b"x"),
            compression: Compression::Gzip,
        };
        assert!(matches!(
            check(&dir.path().join("absent"), &gone),
            Err(DiffIdError::Read { .. })
        ));
    }
}
