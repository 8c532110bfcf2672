//! Whether a service's image is already built: the store keeps, under the image task's key,
//! the manifest that key last exported and the stat (size, mtime, inode) of each of its blobs
//! in the output layout. When the layout still tags the service with that manifest and every
//! blob stats the same, nothing of the service needs to run, not even a probe of its tasks:
//! this is what makes a no-change build of a large workspace cost about what hashing its files
//! costs. A blob changed in place (exported layers are hardlinks of the store's) stats
//! differently, and the service takes the full path, where the store verifies its blobs.
//!
//! An image is recorded under its image task's key and under its action key (the output
//! digests of its tasks): a build whose tasks ran but came out the same finds the image by the
//! latter, writes nothing, and names it by the new image key for the next build.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::image::Descriptor;
use serde::{Deserialize, Serialize};
use strata_engine::store::{ActionEntry, Store, StoreError};
use strata_exporter::archive::{BLOB_FORMAT, Compression};
use strata_exporter::image::ExportedImage;
use strata_planner::TaskKey;

/// What an image task produced.
#[derive(Debug, Serialize, Deserialize)]
struct ImageRecord {
    manifest: String,
    size: u64,
    compression: Compression,
    /// The blob format it was written in ([`BLOB_FORMAT`]).
    format: u32,
    blobs: Vec<BlobStat>,
    /// The version of the launcher it carries; `None` for an image without one.
    #[serde(default)]
    launcher: Option<String>,
}

/// A blob file as it was when the image was written.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct BlobStat {
    digest: String,
    len: u64,
    mtime_ns: i128,
    ino: u64,
}

/// The blob file of `digest` in `layout`; `None` for a digest that names no blob file (the
/// record is read from the cache, which is outside input).
fn blob_path(layout: &Path, digest: &str) -> Option<PathBuf> {
    let hex = digest.strip_prefix("sha256:")?;
    let is_hex = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    is_hex.then(|| layout.join("blobs/sha256").join(hex))
}

fn stat(layout: &Path, digest: &str) -> Option<BlobStat> {
    let meta = std::fs::metadata(blob_path(layout, digest)?).ok()?;
    Some(BlobStat {
        digest: digest.to_owned(),
        len: meta.len(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        ino: meta.ino(),
    })
}

/// The manifest digest `key` last exported, if it was made with `compression` and carries
/// `launcher` (a version; `None`: no launcher, so that building with or without one exports
/// again), the layout at `layout` still tags the service with it (`tagged`), and its blobs are
/// as written. The record is read once.
pub(crate) fn up_to_date(
    store: &Store,
    key: &TaskKey,
    layout: &Path,
    tagged: &Descriptor,
    compression: Compression,
    launcher: Option<&str>,
) -> Option<String> {
    let entry = store.get_action(key)?;
    let record: ImageRecord = serde_json::from_value(entry.payload).ok()?;
    let same = record.compression == compression
        && record.format == BLOB_FORMAT
        && record.launcher.as_deref() == launcher
        && tagged.digest().to_string() == record.manifest
        && tagged.size() == record.size;
    let intact = || {
        record
            .blobs
            .iter()
            .all(|b| stat(layout, &b.digest).as_ref() == Some(b))
    };
    (same && intact()).then_some(record.manifest)
}

/// Records that `key` names the image `from` last exported too.
pub(crate) fn alias(store: &Store, from: &TaskKey, key: &TaskKey) -> Result<(), StoreError> {
    match store.get_action(from) {
        Some(entry) => store.put_action(key, &entry),
        None => Ok(()),
    }
}

/// Records that `key` exported `image` into the layout at `layout`.
pub(crate) fn record(
    store: &Store,
    key: &TaskKey,
    layout: &Path,
    image: &ExportedImage,
    compression: Compression,
    launcher: Option<&str>,
) -> Result<(), StoreError> {
    let manifest = image.manifest.digest().to_string();
    let digests = std::iter::once(manifest.as_str())
        .chain(std::iter::once(image.config_digest.as_str()))
        .chain(image.layers.iter().map(|l| l.digest.as_str()));
    // A blob that cannot be stat'ed now leaves the image unrecorded: the next build exports
    // it again.
    let Some(blobs) = digests.map(|d| stat(layout, d)).collect::<Option<Vec<_>>>() else {
        return Ok(());
    };
    let record = ImageRecord {
        manifest: manifest.clone(),
        size: image.manifest.size(),
        compression,
        format: BLOB_FORMAT,
        blobs,
        launcher: launcher.map(str::to_owned),
    };
    let entry = ActionEntry {
        blobs: Vec::new(),
        payload: serde_json::to_value(record).unwrap_or_default(),
    };
    store.put_action(key, &entry)
}
