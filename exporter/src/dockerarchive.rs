//! Writing an image from a layout as a `docker save` tarball (`docker-archive:PATH[:NAME:TAG]`),
//! which `docker load`, `podman load` and `skopeo copy docker-archive:…` read.
//!
//! The tarball has the shape `docker save` writes since Docker 25: a `manifest.json` naming
//! the config and the layers by their path, and those files under `blobs/sha256/<hex>`, next
//! to an `oci-layout` and `index.json` for the same image. Layers stay as they are in the
//! layout (compressed or not): loaders detect the compression and check each layer against
//! its diffID in the config. The archive is written to a temp file beside `path` and renamed,
//! so a failed write leaves whatever was there before.

use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;

use crate::layout::{Layout, LayoutError};

/// Why an archive could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DockerArchiveError {
    /// The image could not be read from its layout.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Writing the archive failed.
    #[error("cannot write the docker archive {}: {source}", path.display())]
    Write {
        /// The archive.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// Writes the image tagged `tag` in the layout `layout_dir` to the archive `path`, loaded as
/// `name` (`NAME:TAG`; untagged when `None`). Returns the image's manifest digest.
///
/// # Errors
/// [`DockerArchiveError::Layout`] when the image cannot be read, [`DockerArchiveError::Write`]
/// when the archive cannot be written.
pub fn write(
    layout_dir: &Path,
    tag: &str,
    path: &Path,
    name: Option<&str>,
) -> Result<String, DockerArchiveError> {
    let layout = Layout::open(layout_dir)?;
    let (descriptor, manifest) = layout.resolve(tag)?;
    let write_err = |source| DockerArchiveError::Write {
        path: path.to_owned(),
        source,
    };
    let entry = |digest: &Digest| format!("blobs/sha256/{}", digest.digest());
    let docker_manifest = serde_json::json!([{
        "Config": entry(manifest.config().digest()),
        "RepoTags": name.into_iter().collect::<Vec<_>>(),
        "Layers": manifest.layers().iter().map(|l| entry(l.digest())).collect::<Vec<_>>(),
    }]);
    let mut index_entry = serde_json::to_value(&descriptor)
        .map_err(|e| write_err(io::Error::other(e.to_string())))?;
    if let (Some(name), Some(object)) = (name, index_entry.as_object_mut()) {
        object.insert(
            "annotations".to_owned(),
            serde_json::json!({ "io.containerd.image.name": name }),
        );
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [index_entry],
    });

    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
    let mut tar = tar::Builder::new(io::BufWriter::new(tmp.as_file()));
    tar.mode(tar::HeaderMode::Deterministic);
    let add_bytes = |tar: &mut tar::Builder<_>, name: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes)
    };
    add_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(write_err)?;
    add_bytes(&mut tar, "index.json", index.to_string().as_bytes()).map_err(write_err)?;
    add_bytes(
        &mut tar,
        "manifest.json",
        docker_manifest.to_string().as_bytes(),
    )
    .map_err(write_err)?;
    let mut seen = std::collections::HashSet::new();
    let blobs = std::iter::once(descriptor.digest())
        .chain(std::iter::once(manifest.config().digest()))
        .chain(
            manifest
                .layers()
                .iter()
                .map(oci_spec::image::Descriptor::digest),
        );
    for digest in blobs {
        if !seen.insert(digest.to_string()) {
            continue;
        }
        let source = layout.blob_path(digest);
        let mut file = File::open(&source).map_err(|_| LayoutError::MissingBlob {
            dir: layout_dir.to_owned(),
            digest: digest.to_string(),
            tag: Some(tag.to_owned()),
        })?;
        let len = file.metadata().map_err(write_err)?.len();
        let mut header = tar::Header::new_ustar();
        header.set_size(len);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, entry(digest), &mut file)
            .map_err(write_err)?;
    }
    let mut out = tar.into_inner().map_err(write_err)?;
    out.flush().map_err(write_err)?;
    drop(out);
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(path).map_err(|e| write_err(e.error))?;
    Ok(descriptor.digest().to_string())
}
