//! Proof that a run image's layers are what its config says they are.
//!
//! An image's manifest names each layer blob by its compressed digest, and its config names
//! the same layer by its diffID, the sha256 of the uncompressed tar. Loading a run image
//! checks neither (it only locates the blobs), and staging a blob checks only the compressed
//! digest, so a layer whose blob matches its descriptor but does not decompress to its diffID
//! (a truncated gzip stream, a layer from another image) would be exported into an image that
//! no runtime unpacks. [`verify_layers`] decompresses and hashes each layer once and compares.
//!
//! Decompressing a base of hundreds of megabytes takes seconds, and the pairing of a
//! compressed digest with a diffID is a fact about content, true forever once shown. So the
//! proof is kept in the store as an action entry under a key derived from the pair; a later
//! build finds it and does not decompress again. (The blob's own bytes are still hashed when
//! it is staged into an output, so a blob changed since is caught there.)

use std::io::{self, BufReader, Read};
use std::path::PathBuf;

use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use strata_engine::hashing::HashingWriter;
use strata_engine::store::{ActionEntry, Store};
use strata_planner::TaskKey;

use crate::archive::Compression;
use crate::blobfile::{open_regular, remember};
use crate::layout::{LayoutError, sha256_hex_of};
use crate::runimage::{RunImage, RunImageLayer};
use crate::unpack::{decoder, layer_compression};

/// Versions the key of a stored proof: a change in what is proven changes every key.
const PROOF_DOMAIN: &[u8] = b"strata run-image layer diffID proof v1\0";

/// Read buffer for decompressing layers.
const BUFFER: usize = 256 * 1024;

/// Why a run image layer is not what its image says.
#[derive(Debug, thiserror::Error)]
pub enum LayerProofError {
    /// The layer is not on disk (a registry image's layers are fetched first).
    #[error("run image `{reference}`: layer `{digest}` is not on disk")]
    NotOnDisk {
        /// The run image.
        reference: String,
        /// The layer digest.
        digest: String,
    },
    /// The blob cannot be opened or read (a symlink, a FIFO, an I/O error).
    #[error("run image `{reference}`: cannot read layer `{digest}`")]
    Read {
        /// The run image.
        reference: String,
        /// The layer digest.
        digest: String,
        /// Why.
        #[source]
        source: Box<LayoutError>,
    },
    /// The blob's bytes do not hash to its digest, or it has another size.
    #[error("run image `{reference}`: layer blob `{}` is corrupt: {size} bytes with sha256 {actual}, but the manifest says `{digest}` of {expected} bytes", path.display())]
    Corrupt {
        /// The run image.
        reference: String,
        /// The layer digest.
        digest: String,
        /// The blob file.
        path: PathBuf,
        /// What it hashes to.
        actual: String,
        /// Its size.
        size: u64,
        /// The size the manifest gives.
        expected: u64,
    },
    /// The blob does not decompress (a truncated or damaged gzip stream).
    #[error("run image `{reference}`: layer `{digest}` does not decompress (at `{}`)", path.display())]
    Decompress {
        /// The run image.
        reference: String,
        /// The layer digest.
        digest: String,
        /// The blob file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
    /// The decompressed layer is not the diffID the config names.
    #[error(
        "run image `{reference}`: layer `{digest}` decompresses to sha256:{actual}, but the config's rootfs.diff_ids names {diff_id}"
    )]
    DiffIdMismatch {
        /// The run image.
        reference: String,
        /// The layer digest.
        digest: String,
        /// The diffID in the config.
        diff_id: String,
        /// What the layer decompresses to (hex).
        actual: String,
    },
    /// A compression strata cannot decompress, so cannot check.
    #[error(
        "run image `{reference}`: layer `{digest}` is compressed as `{media_type}`, which strata cannot check against its diffID"
    )]
    Unsupported {
        /// The run image.
        reference: String,
        /// The layer digest.
        digest: String,
        /// The media type.
        media_type: String,
    },
}

/// Checks every layer of `image` against its diffID, in parallel, unless `store` holds the
/// proof from an earlier check; records each new proof in `store`.
///
/// # Errors
/// The first layer (bottom first) that fails; see [`LayerProofError`].
pub fn verify_layers(image: &RunImage, store: Option<&Store>) -> Result<(), LayerProofError> {
    image
        .layers
        .par_iter()
        .map(|layer| verify_layer(&image.reference, layer, store))
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

/// The store key of the proof that `digest` decompresses to `diff_id`.
fn proof_key(digest: &str, diff_id: &str) -> TaskKey {
    let mut hasher = Sha256::new();
    hasher.update(PROOF_DOMAIN);
    hasher.update(digest.as_bytes());
    hasher.update([0]);
    hasher.update(diff_id.as_bytes());
    TaskKey::from_bytes(hasher.finalize().into())
}

fn verify_layer(
    reference: &str,
    layer: &RunImageLayer,
    store: Option<&Store>,
) -> Result<(), LayerProofError> {
    let digest = layer.descriptor.digest().to_string();
    let key = proof_key(&digest, &layer.diff_id);
    if store.is_some_and(|store| store.get_action(&key).is_some()) {
        return Ok(());
    }
    let path = layer
        .blob
        .as_ref()
        .ok_or_else(|| LayerProofError::NotOnDisk {
            reference: reference.to_owned(),
            digest: digest.clone(),
        })?;
    let read_err = |source| LayerProofError::Read {
        reference: reference.to_owned(),
        digest: digest.clone(),
        source: Box::new(source),
    };
    let expected_hex = sha256_hex_of(layer.descriptor.digest()).map_err(read_err)?;
    let Some(compression) = layer_compression(layer.descriptor.media_type()) else {
        return Err(LayerProofError::Unsupported {
            reference: reference.to_owned(),
            digest,
            media_type: layer.descriptor.media_type().to_string(),
        });
    };
    let (file, meta) = open_regular(path).map_err(read_err)?;
    let mut compressed = HashingReader::new(BufReader::with_capacity(BUFFER, file));
    let mut uncompressed = HashingWriter::new(io::sink());
    let decompressed = if compression == Compression::None {
        io::copy(&mut compressed, &mut uncompressed)
    } else {
        decoder(&mut compressed, compression).and_then(|mut d| io::copy(&mut d, &mut uncompressed))
    };
    // What the decoder left unread (nothing, for a well-formed stream) is still part of the
    // blob's digest.
    let drained = decompressed.and_then(|_| io::copy(&mut compressed, &mut io::sink()));
    let (actual, size) = compressed.finish();
    if actual != expected_hex || size != layer.descriptor.size() {
        return Err(LayerProofError::Corrupt {
            reference: reference.to_owned(),
            digest,
            path: path.clone(),
            actual: format!("sha256:{actual}"),
            size,
            expected: layer.descriptor.size(),
        });
    }
    if let Err(source) = drained {
        // The blob is the one the manifest names, but it is no valid layer.
        return Err(LayerProofError::Decompress {
            reference: reference.to_owned(),
            digest,
            path: path.clone(),
            source,
        });
    }
    remember(&meta, expected_hex);
    let (diff_hex, _, _) = uncompressed.into_parts();
    if Some(diff_hex.as_str()) != layer.diff_id.strip_prefix("sha256:") {
        return Err(LayerProofError::DiffIdMismatch {
            reference: reference.to_owned(),
            digest,
            diff_id: layer.diff_id.clone(),
            actual: diff_hex,
        });
    }
    if let Some(store) = store {
        let entry = ActionEntry {
            blobs: Vec::new(),
            payload: serde_json::json!({ "digest": digest, "diff_id": layer.diff_id }),
        };
        // A proof that cannot be stored is only checked again next time.
        let _ = store.put_action(&key, &entry);
    }
    Ok(())
}

/// Reads from `inner`, hashing and counting every byte read, so the whole-file digest comes
/// from the same pass that decompresses it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use oci_spec::image::{Descriptor, MediaType};
    use std::io::Write as _;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn layer(dir: &std::path::Path, blob: &[u8], tar: &[u8]) -> RunImageLayer {
        let hex = hex::encode(Sha256::digest(blob));
        let path = dir.join(&hex);
        std::fs::write(&path, blob).unwrap();
        RunImageLayer {
            descriptor: Descriptor::new(
                MediaType::ImageLayerGzip,
                blob.len() as u64,
                format!("sha256:{hex}")
                    .parse::<oci_spec::image::Digest>()
                    .unwrap(),
            ),
            diff_id: format!("sha256:{}", hex::encode(Sha256::digest(tar))),
            blob: Some(path),
        }
    }

    #[test]
    fn a_layer_is_proven_once_and_a_truncated_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let tar = vec![7u8; 100_000];
        let good = layer(dir.path(), &gzip(&tar), &tar);
        verify_layer("oci:base:run", &good, Some(&store)).unwrap();
        // The proof is stored: an unreadable blob of the same pair is not decompressed again.
        std::fs::write(good.blob.as_ref().unwrap(), b"gone").unwrap();
        verify_layer("oci:base:run", &good, Some(&store)).unwrap();

        let whole = gzip(&tar);
        let cut = layer(dir.path(), &whole[..whole.len() / 2], &tar);
        let err = verify_layer("oci:base:run", &cut, Some(&store)).unwrap_err();
        assert!(matches!(err, LayerProofError::Decompress { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("oci:base:run")
                && message.contains(&cut.descriptor.digest().to_string()),
            "{message}"
        );

        let other = layer(dir.path(), &gzip(b"other"), &tar);
        let err = verify_layer("oci:base:run", &other, None).unwrap_err();
        assert!(
            matches!(err, LayerProofError::DiffIdMismatch { .. }),
            "{err:?}"
        );
    }
}
