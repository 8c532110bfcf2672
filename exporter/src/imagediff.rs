//! Where two images differ, for `strata build --check`: the first layer whose diffID differs,
//! and in it the first tar entry that differs and how (content, mode, owner, mtime, type, link
//! target, or an entry only one of them has); or, with the same layers, the first config field
//! that differs.
//!
//! strata writes layer entries in byte order of their path, so two layers are walked side by
//! side, one entry of each at a time, and nothing is unpacked or held in memory beyond one
//! entry's hash. Layers of other tools in other orders still compare, only the reported
//! entry is then the first out of step.

use std::fs::File;
use std::io::{self, Read};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};
use sha2::{Digest as _, Sha256};

use crate::layout::{Layout, LayoutError};
use crate::unpack::{decoder, layer_compression};

/// How two images differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// They are the same manifest.
    Same,
    /// One has more layers than the other, and the layers they share are the same.
    LayerCount {
        /// The first image's count.
        old: usize,
        /// The second's.
        new: usize,
    },
    /// Layer `index` (from 0, bottom first) differs.
    Layer {
        /// Its position.
        index: usize,
        /// Its history `created_by` in the first image (`Layer: 'x', Created by buildpack: …`).
        created_by: String,
        /// The diffIDs.
        old_diff_id: String,
        new_diff_id: String,
        /// The first entry that differs, when one could be told.
        entry: Option<EntryDifference>,
    },
    /// The layers are the same; the config differs in this top-level field (`created`,
    /// `config`, …), or the manifest does (`manifest`).
    Config {
        /// The field.
        field: String,
    },
}

/// A tar entry that differs between two layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryDifference {
    /// The entry's path in the layer.
    pub path: String,
    /// What differs: `content`, `mode 644 -> 755`, `owner 1000:1000 -> 0:0`, `mtime …`,
    /// `only in the first image`, …
    pub what: String,
}

/// Why two images cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A layout, manifest or config cannot be read.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A layer cannot be read or is no valid tar.
    #[error("cannot read layer {digest}: {source}")]
    Layer {
        /// The layer's digest.
        digest: String,
        /// Why.
        source: io::Error,
    },
}

/// One image of a comparison: a layout and its manifest.
pub struct Side<'a> {
    /// The layout.
    pub layout: &'a Layout,
    /// The manifest's descriptor.
    pub descriptor: &'a Descriptor,
    /// The manifest.
    pub manifest: &'a ImageManifest,
}

/// Where `old` and `new` differ first.
///
/// # Errors
/// [`DiffError`] when a config or layer of either cannot be read.
pub fn compare(old: &Side<'_>, new: &Side<'_>) -> Result<Difference, DiffError> {
    if old.descriptor.digest() == new.descriptor.digest() {
        return Ok(Difference::Same);
    }
    let old_config: ImageConfiguration = old
        .layout
        .read_json(old.manifest.config(), "image config")?;
    let new_config: ImageConfiguration = new
        .layout
        .read_json(new.manifest.config(), "image config")?;
    let old_ids = old_config.rootfs().diff_ids();
    let new_ids = new_config.rootfs().diff_ids();
    let history: Vec<String> = old_config
        .history()
        .iter()
        .flatten()
        .filter(|h| !h.empty_layer().unwrap_or(false))
        .map(|h| h.created_by().clone().unwrap_or_default())
        .collect();
    for (index, (a, b)) in old_ids.iter().zip(new_ids).enumerate() {
        if a == b {
            continue;
        }
        let entry = match (
            old.manifest.layers().get(index),
            new.manifest.layers().get(index),
        ) {
            (Some(x), Some(y)) => first_entry_difference(old.layout, x, new.layout, y)?,
            _ => None,
        };
        return Ok(Difference::Layer {
            index,
            created_by: history.get(index).cloned().unwrap_or_default(),
            old_diff_id: a.clone(),
            new_diff_id: b.clone(),
            entry,
        });
    }
    if old_ids.len() != new_ids.len() {
        return Ok(Difference::LayerCount {
            old: old_ids.len(),
            new: new_ids.len(),
        });
    }
    let a = serde_json::to_value(&old_config).unwrap_or_default();
    let b = serde_json::to_value(&new_config).unwrap_or_default();
    let field = match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.into_iter()
                .find(|k| a.get(*k) != b.get(*k))
                .cloned()
                .unwrap_or_else(|| "manifest".to_owned())
        }
        _ => "manifest".to_owned(),
    };
    Ok(Difference::Config { field })
}

/// The metadata of a tar entry that a comparison looks at.
struct Entry {
    path: String,
    kind: tar::EntryType,
    mode: u32,
    owner: (u64, u64),
    mtime: u64,
    link: Option<String>,
    content: [u8; 32],
}

fn read_entry<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Entry> {
    let header = entry.header();
    let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let kind = header.entry_type();
    let mode = header.mode()?;
    let owner = (header.uid()?, header.gid()?);
    let mtime = header.mtime()?;
    let link = entry
        .link_name_bytes()
        .map(|l| String::from_utf8_lossy(&l).into_owned());
    let mut hasher = Sha256::new();
    io::copy(entry, &mut hasher)?;
    Ok(Entry {
        path,
        kind,
        mode,
        owner,
        mtime,
        link,
        content: hasher.finalize().into(),
    })
}

fn open_layer<'a>(
    layout: &Layout,
    layer: &Descriptor,
) -> Result<tar::Archive<Box<dyn Read + 'a>>, DiffError> {
    let err = |source| DiffError::Layer {
        digest: layer.digest().to_string(),
        source,
    };
    let compression = layer_compression(layer.media_type()).ok_or_else(|| {
        err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("media type {} is no layer strata reads", layer.media_type()),
        ))
    })?;
    let file = File::open(layout.blob_path(layer.digest())).map_err(err)?;
    let reader = decoder(io::BufReader::new(file), compression).map_err(err)?;
    Ok(tar::Archive::new(reader))
}

/// The first entry that differs between two layers.
fn first_entry_difference(
    old_layout: &Layout,
    old: &Descriptor,
    new_layout: &Layout,
    new: &Descriptor,
) -> Result<Option<EntryDifference>, DiffError> {
    let mut a = open_layer(old_layout, old)?;
    let mut b = open_layer(new_layout, new)?;
    first_difference(&mut a, &mut b).map_err(|(which, source)| DiffError::Layer {
        digest: match which {
            Which::Old => old.digest().to_string(),
            Which::New => new.digest().to_string(),
        },
        source,
    })
}

/// Which of two layers a read error is about.
#[derive(Debug, Clone, Copy)]
enum Which {
    Old,
    New,
}

/// The next entry of `entries`, read (its content hashed).
fn next_entry<R: Read>(
    entries: &mut tar::Entries<'_, R>,
    which: Which,
) -> Result<Option<Entry>, (Which, io::Error)> {
    match entries.next() {
        None => Ok(None),
        Some(entry) => {
            let mut entry = entry.map_err(|e| (which, e))?;
            read_entry(&mut entry).map(Some).map_err(|e| (which, e))
        }
    }
}

/// The first entry that differs between the tars `a` and `b`, walked side by side.
fn first_difference<A: Read, B: Read>(
    a: &mut tar::Archive<A>,
    b: &mut tar::Archive<B>,
) -> Result<Option<EntryDifference>, (Which, io::Error)> {
    let mut a_entries = a.entries().map_err(|e| (Which::Old, e))?;
    let mut b_entries = b.entries().map_err(|e| (Which::New, e))?;
    loop {
        let x = next_entry(&mut a_entries, Which::Old)?;
        let y = next_entry(&mut b_entries, Which::New)?;
        let (x, y) = match (x, y) {
            (None, None) => return Ok(None),
            (Some(x), None) => {
                return Ok(Some(EntryDifference {
                    path: x.path,
                    what: "only in the output's image".to_owned(),
                }));
            }
            (None, Some(y)) => {
                return Ok(Some(EntryDifference {
                    path: y.path,
                    what: "only in the rebuilt image".to_owned(),
                }));
            }
            (Some(x), Some(y)) => (x, y),
        };
        if x.path != y.path {
            let (path, what) = if x.path < y.path {
                (x.path, "only in the output's image")
            } else {
                (y.path, "only in the rebuilt image")
            };
            return Ok(Some(EntryDifference {
                path,
                what: what.to_owned(),
            }));
        }
        if let Some(what) = entry_difference(&x, y) {
            return Ok(Some(EntryDifference { path: x.path, what }));
        }
    }
}

/// What differs between two entries of one path, if anything: type, content, mode, owner,
/// mtime, link target, in that order.
fn entry_difference(x: &Entry, y: Entry) -> Option<String> {
    if x.kind != y.kind {
        Some(format!("type {:?} -> {:?}", x.kind, y.kind))
    } else if x.content != y.content {
        Some("content".to_owned())
    } else if x.mode != y.mode {
        Some(format!("mode {:o} -> {:o}", x.mode, y.mode))
    } else if x.owner != y.owner {
        Some(format!(
            "owner {}:{} -> {}:{}",
            x.owner.0, x.owner.1, y.owner.0, y.owner.1
        ))
    } else if x.mtime != y.mtime {
        Some(format!("mtime {} -> {}", x.mtime, y.mtime))
    } else if x.link != y.link {
        Some(format!(
            "link target {} -> {}",
            x.link.clone().unwrap_or_default(),
            y.link.unwrap_or_default()
        ))
    } else {
        None
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Same => f.write_str("identical"),
            Difference::LayerCount { old, new } => {
                write!(
                    f,
                    "the output's image has {old} layers, the rebuilt one {new}"
                )
            }
            Difference::Layer {
                index,
                created_by,
                old_diff_id,
                new_diff_id,
                entry,
            } => {
                let name = if created_by.is_empty() {
                    String::new()
                } else {
                    format!(" ({created_by})")
                };
                write!(
                    f,
                    "layer {index}{name} differs ({old_diff_id} in the output, {new_diff_id} rebuilt)"
                )?;
                match entry {
                    Some(entry) => write!(
                        f,
                        ": first entry that differs: {}: {}",
                        entry.path, entry.what
                    ),
                    None => Ok(()),
                }
            }
            Difference::Config { field } => {
                write!(
                    f,
                    "the layers are identical; the config differs in `{field}`"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file: path, content, mode, uid (and gid), mtime.
    type File<'a> = (&'a str, &'a str, u32, u64, u64);

    /// A tar of `files`.
    fn tar(files: &[File<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content, mode, uid, mtime) in files {
            let mut header = tar::Header::new_ustar();
            header.set_size(content.len() as u64);
            header.set_mode(*mode);
            header.set_uid(*uid);
            header.set_gid(*uid);
            header.set_mtime(*mtime);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut header, path, content.as_bytes())
                .unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn difference(a: &[u8], b: &[u8]) -> Option<EntryDifference> {
        first_difference(&mut tar::Archive::new(a), &mut tar::Archive::new(b)).unwrap()
    }

    #[test]
    fn the_first_entry_that_differs_is_named_with_what_differs() {
        let base = [("a", "1", 0o644, 1000, 1), ("b", "2", 0o644, 1000, 1)];
        let same = tar(&base);
        assert_eq!(difference(&same, &same), None);
        let cases: [(&[File<'_>], &str, &str); 5] = [
            (
                &[("a", "1", 0o644, 1000, 1), ("b", "3", 0o644, 1000, 1)],
                "b",
                "content",
            ),
            (
                &[("a", "1", 0o755, 1000, 1), ("b", "2", 0o644, 1000, 1)],
                "a",
                "mode 644 -> 755",
            ),
            (
                &[("a", "1", 0o644, 0, 1), ("b", "2", 0o644, 1000, 1)],
                "a",
                "owner 1000:1000 -> 0:0",
            ),
            (
                &[("a", "1", 0o644, 1000, 1), ("b", "2", 0o644, 1000, 9)],
                "b",
                "mtime 1 -> 9",
            ),
            (
                &[("a", "1", 0o644, 1000, 1)],
                "b",
                "only in the output's image",
            ),
        ];
        for (files, path, what) in cases {
            assert_eq!(
                difference(&same, &tar(files)),
                Some(EntryDifference {
                    path: path.to_owned(),
                    what: what.to_owned()
                }),
                "{files:?}"
            );
        }
    }
}
