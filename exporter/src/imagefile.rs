//! One small file of an image, read from its layer tars without unpacking them: what a build
//! image's `etc/passwd` says must be known before its tree is unpacked (it decides whose files
//! become the sandbox user's).
//!
//! Layers are read bottom first, as they stack: the last layer to write the path wins, a
//! whiteout of it (or of a directory above it, or an opaque one in such a directory, from a
//! higher layer) removes it. Nothing is written anywhere; only an entry at exactly the path,
//! a regular file of at most [`MAX_FILE`] bytes, is read. A symlink or hardlink at the path
//! counts as no file: following one would need the tree.

use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use crate::runimage::{RunImage, RunImageLayer};
use crate::unpack::{decoder, layer_compression};

/// The largest file read: `etc/passwd` and `etc/group` of any real image are far smaller.
pub const MAX_FILE: u64 = 4 << 20;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// Why a file of an image cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageFileError {
    /// A layer blob is not on disk, or is compressed in a way strata cannot read.
    #[error("layer `{digest}` cannot be read: {why}")]
    Unreadable {
        /// The layer digest.
        digest: String,
        /// Why.
        why: String,
    },
    /// A layer is not a valid tar (or gzip), or the file is larger than [`MAX_FILE`].
    #[error("cannot read layer `{digest}`")]
    Read {
        /// The layer digest.
        digest: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The content of the regular file at `path` (relative to the image's root, e.g.
/// `etc/passwd`) in `image`'s top-most state, or `None` when no layer leaves one there.
///
/// # Errors
/// See [`ImageFileError`].
pub fn read_image_file(image: &RunImage, path: &Path) -> Result<Option<Vec<u8>>, ImageFileError> {
    let mut found = None;
    for layer in &image.layers {
        let digest = layer.descriptor.digest().to_string();
        let reader = open_layer(layer, &digest)?;
        apply(reader, path, &mut found)
            .map_err(|source| ImageFileError::Read { digest, source })?;
    }
    Ok(found)
}

fn open_layer(layer: &RunImageLayer, digest: &str) -> Result<Box<dyn Read>, ImageFileError> {
    let unreadable = |why: String| ImageFileError::Unreadable {
        digest: digest.to_owned(),
        why,
    };
    let blob = layer
        .blob
        .as_ref()
        .ok_or_else(|| unreadable("it is not on disk".to_owned()))?;
    let media_type = layer.descriptor.media_type();
    let compression = layer_compression(media_type)
        .ok_or_else(|| unreadable(format!("strata cannot unpack `{media_type}`")))?;
    let file = std::fs::File::open(blob).map_err(|e| unreadable(e.to_string()))?;
    decoder(BufReader::new(file), compression).map_err(|e| unreadable(e.to_string()))
}

/// Applies one layer's say about `path` to `found`.
fn apply(reader: impl Read, path: &Path, found: &mut Option<Vec<u8>>) -> io::Result<()> {
    // What this layer wrote is never whited out by its own whiteouts.
    let mut written_here = false;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let Some(entry_path) = relative(&entry.path()?) else {
            continue;
        };
        if entry_path == path {
            *found = None;
            if entry.header().entry_type().is_file() {
                if entry.size() > MAX_FILE {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} is over {MAX_FILE} bytes", path.display()),
                    ));
                }
                let mut content = Vec::new();
                entry.read_to_end(&mut content)?;
                *found = Some(content);
                written_here = true;
            }
            continue;
        }
        let Some(name) = entry_path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let parent = entry_path.parent().unwrap_or(Path::new(""));
        let hidden = if name == OPAQUE_WHITEOUT {
            path.starts_with(parent) && !written_here
        } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            !written_here && path.starts_with(parent.join(hidden))
        } else {
            // Something else where a directory on the way is: the file is gone.
            path.starts_with(&entry_path) && !entry.header().entry_type().is_dir()
        };
        if hidden {
            *found = None;
        }
    }
    Ok(())
}

/// `path` relative to the root, or `None` for one with a `..` (unpacking refuses it).
fn relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => return None,
            _ => {}
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A tar of (path, content) files.
    fn layer(files: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, path, content.as_bytes())
                .unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn stacked(layers: &[Vec<u8>]) -> Option<String> {
        let mut found = None;
        for layer in layers {
            apply(&layer[..], Path::new("etc/passwd"), &mut found).unwrap();
        }
        found.map(|c| String::from_utf8(c).unwrap())
    }

    #[test]
    fn the_top_layers_file_wins_and_whiteouts_remove_it() {
        let lower = layer(&[("etc/passwd", "lower"), ("etc/group", "g")]);
        assert_eq!(
            stacked(std::slice::from_ref(&lower)).as_deref(),
            Some("lower")
        );
        let upper = layer(&[("./etc/passwd", "upper")]);
        assert_eq!(stacked(&[lower.clone(), upper]).as_deref(), Some("upper"));
        for whiteout in ["etc/.wh.passwd", "etc/.wh..wh..opq", ".wh.etc"] {
            let upper = layer(&[(whiteout, "")]);
            assert_eq!(stacked(&[lower.clone(), upper]), None, "{whiteout}");
        }
        // A layer's own opaque whiteout spares what it writes.
        let upper = layer(&[("etc/passwd", "mine"), ("etc/.wh..wh..opq", "")]);
        assert_eq!(stacked(&[lower.clone(), upper]).as_deref(), Some("mine"));
        // A file where the directory was.
        let upper = layer(&[("etc", "a file")]);
        assert_eq!(stacked(&[lower, upper]), None);
    }
}
