//! Checking a whole output layout: every blob hashed against its name, every tag's image
//! complete. What `strata cache verify --layout` reports, since a build exports into layouts
//! and a broken image there is as much a problem as a broken blob in the store.
//!
//! It only reads: a layout is repaired by building again, whose commit replaces a blob only
//! once it is proven bad, under the layout lock.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, MediaType};
use rayon::prelude::*;
use serde::Serialize;

use crate::blobfile::verify_file;
use crate::layout::{Layout, LayoutError};
use crate::taskcache::with_causes;

/// What [`check_layout`] found in one layout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LayoutReport {
    /// The layout directory.
    pub dir: PathBuf,
    /// Blob files hashed.
    pub blobs: u64,
    /// Blobs whose file does not hash to its name (or cannot be read as a regular file).
    pub corrupt_blobs: Vec<BadLayoutBlob>,
    /// Tags whose image cannot be read whole.
    pub broken_tags: Vec<BrokenTag>,
}

impl LayoutReport {
    /// How many problems were found.
    pub fn problems(&self) -> usize {
        self.corrupt_blobs.len() + self.broken_tags.len()
    }
}

/// A blob of a layout that is not what its name says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadLayoutBlob {
    /// Its file.
    pub path: PathBuf,
    /// What is wrong.
    pub error: String,
}

/// A tag whose image is incomplete or unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenTag {
    /// The tag.
    pub tag: String,
    /// What is wrong.
    pub error: String,
}

/// Hashes every blob of the layout at `dir` (in parallel) and checks that every tagged image
/// resolves and has its config and layers.
///
/// # Errors
/// Only when the layout cannot be opened or its blob directory listed.
pub fn check_layout(dir: &Path) -> Result<LayoutReport, LayoutError> {
    let layout = Layout::open(dir)?;
    let blob_dir = dir.join("blobs/sha256");
    let mut names = Vec::new();
    match fs::read_dir(&blob_dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|source| LayoutError::Io {
                    action: "cannot read",
                    path: blob_dir.clone(),
                    source,
                })?;
                names.push(entry.path());
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(LayoutError::Io {
                action: "cannot read",
                path: blob_dir,
                source,
            });
        }
    }
    names.sort();
    let mut corrupt_blobs: Vec<BadLayoutBlob> = names
        .par_iter()
        .filter_map(|path| {
            check_blob(path).err().map(|error| BadLayoutBlob {
                path: path.clone(),
                error,
            })
        })
        .collect();
    corrupt_blobs.sort_by(|a, b| a.path.cmp(&b.path));

    let mut broken_tags = Vec::new();
    // A referrers index (`sha256-<hex>`) lists artifacts, not a platform's image.
    let mut tags: Vec<String> = layout
        .tags()
        .into_iter()
        .map(|(tag, _)| tag)
        .filter(|tag| !crate::referrers::is_referrers_tag(tag))
        .collect();
    tags.dedup();
    for tag in tags {
        let problem = match layout.resolve(&tag) {
            Err(e) => Some(with_causes(&e)),
            Ok((_, manifest)) => std::iter::once(manifest.config())
                .chain(manifest.layers())
                .find(|d| !layout.has_blob(d))
                .map(|d| format!("blob {} is missing or has the wrong size", d.digest())),
        };
        if let Some(error) = problem {
            broken_tags.push(BrokenTag { tag, error });
        }
    }
    Ok(LayoutReport {
        dir: dir.to_path_buf(),
        blobs: names.len() as u64,
        corrupt_blobs,
        broken_tags,
    })
}

/// Whether the blob file at `path` hashes to its name.
fn check_blob(path: &Path) -> Result<(), String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| "not named by a digest".to_owned())?;
    let digest: oci_spec::image::Digest = format!("sha256:{name}")
        .parse()
        .map_err(|_| "not named by a sha256 digest".to_owned())?;
    let size = fs::symlink_metadata(path).map_err(|e| e.to_string())?.len();
    verify_file(path, &Descriptor::new(MediaType::ImageLayer, size, digest))
        .map_err(|e| with_causes(&e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::layout::Staging;

    #[test]
    fn a_corrupt_blob_and_the_tag_it_breaks_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let layout_dir = dir.path().join("layout");
        let staging = Staging::new(&layout_dir).unwrap();
        let config = staging
            .put_bytes(
                br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#,
                MediaType::ImageConfig,
            )
            .unwrap();
        let layer = staging.put_bytes(b"layer", MediaType::ImageLayer).unwrap();
        let manifest = oci_spec::image::ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config)
            .layers(vec![layer.clone()])
            .build()
            .unwrap();
        let manifest = staging
            .put_json(&manifest, MediaType::ImageManifest)
            .unwrap();
        staging.commit(&[("t".to_owned(), manifest)]).unwrap();
        let clean = check_layout(&layout_dir).unwrap();
        assert_eq!((clean.blobs, clean.problems()), (3, 0));

        let path = layout_dir
            .join("blobs/sha256")
            .join(layer.as_digest_sha256().unwrap());
        fs::write(&path, b"LAYER").unwrap();
        let report = check_layout(&layout_dir).unwrap();
        assert_eq!(report.corrupt_blobs.len(), 1, "{report:?}");
        assert_eq!(report.corrupt_blobs[0].path, path);
        fs::remove_file(&path).unwrap();
        let report = check_layout(&layout_dir).unwrap();
        assert_eq!(report.broken_tags.len(), 1, "{report:?}");
        assert_eq!(report.broken_tags[0].tag, "t");
    }
}
