//! One small file of an image, read from its layer tars without unpacking them: what a build
//! image's `etc/passwd` says must be known before its tree is unpacked (it decides whose files
//! become the sandbox user's).
//!
//! Layers are read bottom first, as they stack: the last layer to write the path wins, a
//! whiteout of it (or of a directory above it, or an opaque one in such a directory, from a
//! higher layer) removes it. Nothing is written anywhere; only an entry at exactly the path,
//! a regular file of at most [`MAX_FILE`] bytes, is read. A symlink or hardlink at the path
//! counts as no file: following one would need the tree.

use std::collections::{BTreeMap, BTreeSet};
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

/// The regular files of `image` whose paths (relative to the root) `wanted` gives a size limit
/// for, in the image's top-most state, each of at most that many bytes (a larger one is left out, as is a
/// symlink or hardlink at a wanted path: following one would need the tree), and at most
/// `budget` bytes in all (files past it are left out, so a hostile image cannot make strata
/// hold more). Layers are read once each, bottom first; whiteouts of upper layers remove what
/// lower ones put there.
///
/// # Errors
/// See [`ImageFileError`].
pub fn read_image_files(
    image: &RunImage,
    wanted: &dyn Fn(&Path) -> Option<u64>,
    budget: u64,
) -> Result<BTreeMap<PathBuf, Vec<u8>>, ImageFileError> {
    let mut found = BTreeMap::new();
    let mut budget = budget;
    for layer in &image.layers {
        let digest = layer.descriptor.digest().to_string();
        let reader = open_layer(layer, &digest)?;
        apply_many(reader, wanted, &mut budget, &mut found)
            .map_err(|source| ImageFileError::Read { digest, source })?;
    }
    Ok(found)
}

/// Removes from `found` every path at or below `under` that this layer did not write.
fn hide(found: &mut BTreeMap<PathBuf, Vec<u8>>, under: &Path, written: &BTreeSet<PathBuf>) {
    let any = found
        .range::<Path, _>((std::ops::Bound::Included(under), std::ops::Bound::Unbounded))
        .next()
        .is_some_and(|(k, _)| k.starts_with(under));
    if any {
        found.retain(|k, _| !k.starts_with(under) || written.contains(k));
    }
}

/// Applies one layer's say about the wanted paths to `found`.
fn apply_many(
    reader: impl Read,
    wanted: &dyn Fn(&Path) -> Option<u64>,
    budget: &mut u64,
    found: &mut BTreeMap<PathBuf, Vec<u8>>,
) -> io::Result<()> {
    let mut written = BTreeSet::new();
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let Some(entry_path) = relative(&entry.path()?) else {
            continue;
        };
        let name = entry_path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let parent = entry_path.parent().unwrap_or(Path::new("")).to_owned();
        if name == OPAQUE_WHITEOUT {
            hide(found, &parent, &written);
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            hide(found, &parent.join(hidden), &written);
            continue;
        }
        let kind = entry.header().entry_type();
        if !kind.is_dir() {
            // Whatever was at this path, or below it as a directory, is replaced.
            written.remove(&entry_path);
            hide(found, &entry_path, &written);
        }
        if kind.is_file()
            && entry.size() <= *budget
            && wanted(&entry_path).is_some_and(|limit| entry.size() <= limit)
        {
            *budget -= entry.size();
            let mut content = Vec::new();
            entry.read_to_end(&mut content)?;
            found.insert(entry_path.clone(), content);
            written.insert(entry_path);
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

    fn stacked_many(layers: &[Vec<u8>]) -> Vec<(String, String)> {
        let mut found = BTreeMap::new();
        let wanted = |p: &Path| (p.starts_with("doc") && p.ends_with("copyright")).then_some(8);
        let mut budget = u64::MAX;
        for layer in layers {
            apply_many(&layer[..], &wanted, &mut budget, &mut found).unwrap();
        }
        found
            .into_iter()
            .map(|(k, v)| (k.display().to_string(), String::from_utf8(v).unwrap()))
            .collect()
    }

    #[test]
    fn many_files_are_read_in_one_pass_with_whiteouts() {
        let lower = layer(&[
            ("doc/a/copyright", "a"),
            ("doc/b/copyright", "b"),
            ("doc/c/copyright", "c"),
            ("doc/big/copyright", "far too large"),
            ("doc/a/changelog", "x"),
        ]);
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        assert_eq!(
            stacked_many(std::slice::from_ref(&lower)),
            pairs(&[
                ("doc/a/copyright", "a"),
                ("doc/b/copyright", "b"),
                ("doc/c/copyright", "c")
            ])
        );
        let upper = layer(&[
            ("doc/.wh.a", ""),
            ("doc/b/copyright", "b2"),
            ("doc/c", "now a file"),
        ]);
        assert_eq!(
            stacked_many(&[lower.clone(), upper]),
            pairs(&[("doc/b/copyright", "b2")])
        );
        // Past the budget, files are left out.
        let mut found = BTreeMap::new();
        let mut budget = 2;
        let wanted = |p: &Path| p.ends_with("copyright").then_some(8);
        apply_many(&lower[..], &wanted, &mut budget, &mut found).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        let opaque = layer(&[("doc/.wh..wh..opq", ""), ("doc/d/copyright", "d")]);
        assert_eq!(
            stacked_many(&[lower, opaque]),
            pairs(&[("doc/d/copyright", "d")])
        );
    }
}
