//! Build images unpacked into the store: the root filesystem a build's sandbox runs on.
//!
//! A build image is unpacked once, under `<store>/rootfs/<hex>/`, where `<hex>` is the sha256
//! of its diffID chain (bottom first): the same layers make the same tree, whatever the image
//! is called and however its layers are compressed, so a second build (or another image with
//! those layers) reuses it. It is made in a temp dir beside it and renamed into place, so a
//! half-unpacked tree is never found. Each layer blob is hashed while it is unpacked and must
//! match both its manifest digest and its diffID, or the tree is thrown away. Layers are
//! applied with [`crate::unpack::apply_layer`], which keeps every entry inside the tree.
//!
//! Each use marks the tree used ([`mark_rootfs_used`]), so that `strata cache gc` evicts the
//! trees no recent build used first. The caller holds the store open meanwhile, so that `gc`
//! never removes a tree being made or used.

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use strata_engine::store::{mark_rootfs_used, rootfs_dir};

use crate::archive::Compression;
use crate::runimage::{RunImage, RunImageLayer};
use crate::unpack::{OwnerMap, apply_layer_owned, decoder, layer_compression};

/// Versions the rootfs directory names: a change in how trees are made changes every name.
const ROOTFS_DOMAIN: &[u8] = b"strata build-image rootfs v1\0";

/// Why a build image cannot be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A layer blob is not on disk.
    #[error("build image `{reference}`: layer `{digest}` is not on disk")]
    NotOnDisk {
        /// The image.
        reference: String,
        /// The layer digest.
        digest: String,
    },
    /// A compression strata cannot decompress.
    #[error(
        "build image `{reference}`: layer `{digest}` is compressed as `{media_type}`, which strata cannot unpack"
    )]
    Unsupported {
        /// The image.
        reference: String,
        /// The layer digest.
        digest: String,
        /// The media type.
        media_type: String,
    },
    /// A layer is not a valid tar, or one of its entries is refused (it would land outside
    /// the tree), or writing failed.
    #[error("build image `{reference}`: cannot unpack layer `{digest}`")]
    Unpack {
        /// The image.
        reference: String,
        /// The layer digest.
        digest: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A layer's bytes are not what the image says.
    #[error(
        "build image `{reference}`: layer `{digest}` is corrupt: its blob hashes to {blob} and unpacks from {diff}, but the image names {digest} and {diff_id}"
    )]
    Corrupt {
        /// The image.
        reference: String,
        /// The layer digest (from the manifest).
        digest: String,
        /// The diffID (from the config).
        diff_id: String,
        /// What the blob hashes to.
        blob: String,
        /// What the uncompressed stream hashes to.
        diff: String,
    },
    /// The store's rootfs directory cannot be made or written.
    #[error("cannot make the build image's root filesystem in `{}`", path.display())]
    Store {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The name of the tree `image` unpacks to: the hex sha256 of its diffIDs, bottom first (and
/// of the owner map, which makes another tree).
#[must_use]
pub fn rootfs_name(image: &RunImage, owners: Option<OwnerMap>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(ROOTFS_DOMAIN);
    if let Some(map) = owners {
        hasher.update(format!(
            "owners {}:{}->{}\0",
            map.image.0, map.image.1, map.host
        ));
    }
    for layer in &image.layers {
        hasher.update(layer.diff_id.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// The root filesystem of `image` under `store_root`: unpacked now unless an earlier build
/// did; with `owners`, what the image's build user owns goes to the sandbox's host id.
///
/// # Errors
/// See [`RootfsError`]; nothing is left in the store when one occurs.
pub fn unpack_rootfs(
    image: &RunImage,
    store_root: &Path,
    owners: Option<OwnerMap>,
) -> Result<PathBuf, RootfsError> {
    let parent = rootfs_dir(store_root);
    let dir = parent.join(rootfs_name(image, owners));
    if dir.is_dir() {
        mark_rootfs_used(&dir);
        return Ok(dir);
    }
    let store_err = |path: &Path| {
        let path = path.to_owned();
        move |source| RootfsError::Store { path, source }
    };
    std::fs::create_dir_all(&parent).map_err(store_err(&parent))?;
    let temp = tempfile::Builder::new()
        .prefix(".unpacking-")
        .tempdir_in(&parent)
        .map_err(store_err(&parent))?;
    for layer in &image.layers {
        unpack_layer(&image.reference, layer, temp.path(), owners)?;
    }
    // The temp dir is private (0700); the sandbox's unprivileged user must traverse it.
    std::fs::set_permissions(
        temp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .map_err(store_err(temp.path()))?;
    let temp = temp.keep();
    match std::fs::rename(&temp, &dir) {
        Ok(()) => {
            mark_rootfs_used(&dir);
            Ok(dir)
        }
        // Another build unpacked the same layers meanwhile: theirs is as good.
        Err(_) if dir.is_dir() => {
            let _ = std::fs::remove_dir_all(&temp);
            Ok(dir)
        }
        Err(source) => {
            let _ = std::fs::remove_dir_all(&temp);
            Err(RootfsError::Store { path: dir, source })
        }
    }
}

fn unpack_layer(
    reference: &str,
    layer: &RunImageLayer,
    root: &Path,
    owners: Option<OwnerMap>,
) -> Result<(), RootfsError> {
    let digest = layer.descriptor.digest().to_string();
    let path = layer.blob.as_ref().ok_or_else(|| RootfsError::NotOnDisk {
        reference: reference.to_owned(),
        digest: digest.clone(),
    })?;
    let Some(compression) = layer_compression(layer.descriptor.media_type()) else {
        return Err(RootfsError::Unsupported {
            reference: reference.to_owned(),
            digest,
            media_type: layer.descriptor.media_type().to_string(),
        });
    };
    let unpack_err = |source| RootfsError::Unpack {
        reference: reference.to_owned(),
        digest: digest.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unpack_err)?;
    let mut compressed = Hashing::new(BufReader::new(file));
    let result = if compression == Compression::None {
        apply_layer_owned(&mut compressed, root, owners).map(|()| None)
    } else {
        decoder(&mut compressed, compression).and_then(|d| {
            let mut uncompressed = Hashing::new(d);
            apply_layer_owned(&mut uncompressed, root, owners)
                .and_then(|()| io::copy(&mut uncompressed, &mut io::sink()).map(drop))?;
            Ok(Some(uncompressed.finish()))
        })
    };
    // The rest of the blob (tar padding after the end marker) is part of its digest.
    let drained = io::copy(&mut compressed, &mut io::sink());
    let applied = result.and_then(|diff| drained.map(|_| diff));
    let blob = compressed.finish();
    let diff = match applied {
        Ok(diff) => diff.unwrap_or_else(|| blob.clone()),
        Err(source) => return Err(unpack_err(source)),
    };
    if blob != digest || diff != layer.diff_id {
        return Err(RootfsError::Corrupt {
            reference: reference.to_owned(),
            digest,
            diff_id: layer.diff_id.clone(),
            blob,
            diff,
        });
    }
    Ok(())
}

/// Reads from `inner`, hashing every byte read.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// `sha256:<hex>` of what was read.
    fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
