//! The launcher layer, written once into the store and reused by every image.
//!
//! Its bytes depend only on the launcher binary, the file time and the compression, so one
//! blob serves every service of every build with those settings: the first export writes it
//! (a tar of a few megabytes, gzipped), the others hardlink the stored blob as they do a
//! cached buildpack layer. The action key hashes those inputs and the blob format's version.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use strata_engine::layers::StoredBlob;
use strata_engine::store::{ActionEntry, Store, StoreError};
use strata_planner::TaskKey;

use crate::archive::{ArchiveError, BLOB_FORMAT, Compression};
use crate::launch::launcher_layer;
use crate::launcher;

/// Why the launcher layer could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum LauncherStoreError {
    /// The layer could not be written.
    #[error("cannot write the launcher layer: {0}")]
    Layer(#[from] ArchiveError),
    /// The store refused it.
    #[error("cannot store the launcher layer: {0}")]
    Store(#[from] StoreError),
}

/// What the action entry records about the blob.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    diff_id: String,
    digest: String,
    size: u64,
    compression: Compression,
}

/// The key of the launcher layer written with `epoch` and `compression`.
fn key(epoch: u64, compression: Compression) -> TaskKey {
    let mut hasher = Sha256::new();
    hasher.update(b"strata launcher layer\0");
    hasher.update(BLOB_FORMAT.to_le_bytes());
    hasher.update(launcher::sha256());
    hasher.update(epoch.to_le_bytes());
    // One byte per compression, as it was when there were only none and gzip.
    hasher.update([match compression {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Zstd => 2,
    }]);
    TaskKey::from_bytes(hasher.finalize().into())
}

/// The launcher layer in `store` for `epoch` and `compression`: the stored blob, written
/// first when the store has none (or a broken one).
///
/// # Errors
/// The layer cannot be written, or the store cannot take it.
pub fn stored_launcher_layer(
    store: &Store,
    epoch: u64,
    compression: Compression,
) -> Result<StoredBlob, LauncherStoreError> {
    let key = key(epoch, compression);
    let stored = |record: Record| -> Result<StoredBlob, StoreError> {
        Ok(StoredBlob {
            path: store.blob_path(&record.digest)?,
            diff_id: record.diff_id,
            digest: record.digest,
            size: record.size,
            compression: record.compression,
        })
    };
    if let Some(record) = store
        .get_action(&key)
        .and_then(|entry| serde_json::from_value::<Record>(entry.payload).ok())
        .filter(|r| r.compression == compression)
    {
        return Ok(stored(record)?);
    }
    let scratch = store.temp_dir()?;
    let blob = launcher_layer(epoch)?.finish(compression, scratch.path())?;
    let blob_ref = store.adopt_blob(&blob.path, &blob.digest, blob.size)?;
    let record = Record {
        diff_id: blob.diff_id,
        digest: blob.digest,
        size: blob.size,
        compression,
    };
    let entry = ActionEntry {
        blobs: vec![blob_ref],
        payload: serde_json::to_value(&record).unwrap_or_default(),
    };
    store.put_action(&key, &entry)?;
    Ok(stored(record)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layer_is_written_once_and_then_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let first = stored_launcher_layer(&store, 1, Compression::Gzip).unwrap();
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&first.path).unwrap());
        let again = stored_launcher_layer(&store, 1, Compression::Gzip).unwrap();
        assert_eq!(first, again);
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&again.path).unwrap()),
            inode,
            "the same blob, not written again"
        );
        let plain = stored_launcher_layer(&store, 1, Compression::None).unwrap();
        assert_eq!(plain.diff_id, first.diff_id, "the same tar");
        assert_eq!(plain.compression, Compression::None);
        assert_eq!(plain.digest, plain.diff_id);
    }
}
