//! `strata sbom download`: the SBOM layer of an image, written out as `pack sbom download`
//! writes it (`DIR/layers/sbom/launch/...`), or merged into one document of the whole image.
//!
//! The SBOM layer is found as pack finds it: `io.buildpacks.lifecycle.metadata`'s `sbom.sha`
//! names its diffID, whose position in `rootfs.diff_ids` is its position in the manifest's
//! layers. The run image's SBOMs are in a layer of their own, which the `io.strata.sbom`
//! label names (see [`crate::runsbom`]). Only those layers are read (from a registry, only
//! their blobs are fetched, by the CLI).
//!
//! The image may come from anywhere, so the layer is untrusted: it is read into memory
//! (bounded), every entry checked before anything is written, and an entry that is not a
//! directory or regular file under `layers/sbom/` (a `..`, an absolute path, a symlink or
//! hardlink, a device, a FIFO), or a file larger than strata reads, refuses the whole layer
//! with an error naming the image and the entry. Files are then written below the output
//! directory, never through a link the layer made (it can make none).

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};
use serde_json::Value;

use crate::archive::Compression;
use crate::layout::{Layout, LayoutError};
use crate::metadata::{LIFECYCLE_LABEL, LifecycleMetadata};
use crate::reference::ImageRef;
use crate::sbomdoc::{self, FileItem, Inventory, Package, Subject, SubjectKind};
use crate::unpack::{decoder, layer_compression};

/// The most an SBOM layer may hold, uncompressed.
pub const LAYER_LIMIT: u64 = 1 << 30;
/// The most one file of it may hold.
pub const FILE_LIMIT: u64 = strata_engine::untrusted::SBOM_LIMIT;
/// Where every entry of an SBOM layer must be.
const SBOM_PREFIX: &str = "layers/sbom";

/// Why an image's SBOMs cannot be downloaded.
#[derive(Debug, thiserror::Error)]
pub enum SbomDownloadError {
    /// The layout or a blob of it cannot be read.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The image's config or labels are not what a CNB image has.
    #[error("image {image}: {message}")]
    Image { image: String, message: String },
    /// The image records no SBOM layer.
    #[error("image {image} has no SBOM layer (no `sbom.sha` in `{LIFECYCLE_LABEL}`)")]
    NoSbom { image: String },
    /// The SBOM layer cannot be read.
    #[error("image {image}: cannot read the SBOM layer {digest}")]
    Read {
        image: String,
        digest: String,
        #[source]
        source: io::Error,
    },
    /// An entry of the SBOM layer is refused.
    #[error("image {image}: the SBOM layer's entry `{entry}` is refused: {why}")]
    Hostile {
        image: String,
        entry: String,
        why: String,
    },
    /// A file could not be written.
    #[error("cannot write {path}", path = path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What an image says about its SBOM layer, from its config.
#[derive(Debug, Clone)]
pub struct SbomLocation {
    /// The SBOM layer's diffID.
    pub diff_id: String,
    /// Its position among the image's layers.
    pub index: usize,
    /// The positions of the other layers with SBOM files (the run image's), if any.
    pub more: Vec<usize>,
    /// The image's `created` time, for a merged document.
    pub created: String,
}

/// Finds the SBOM layer in an image's `config`.
///
/// # Errors
/// [`SbomDownloadError::NoSbom`] without one, [`SbomDownloadError::Image`] when the label does
/// not parse or names no layer of the image.
pub fn locate(image: &str, config: &ImageConfiguration) -> Result<SbomLocation, SbomDownloadError> {
    let bad = |message: String| SbomDownloadError::Image {
        image: image.to_owned(),
        message,
    };
    let labels = config
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .unwrap_or_default();
    let lifecycle: LifecycleMetadata = match labels.get(LIFECYCLE_LABEL) {
        Some(text) => {
            serde_json::from_str(text).map_err(|e| bad(format!("{LIFECYCLE_LABEL}: {e}")))?
        }
        None => {
            return Err(SbomDownloadError::NoSbom {
                image: image.to_owned(),
            });
        }
    };
    let diff_id = lifecycle
        .sbom
        .map(|s| s.sha)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SbomDownloadError::NoSbom {
            image: image.to_owned(),
        })?;
    let index = config
        .rootfs()
        .diff_ids()
        .iter()
        .position(|d| *d == diff_id)
        .ok_or_else(|| {
            bad(format!(
                "the SBOM layer {diff_id} is not in rootfs.diff_ids"
            ))
        })?;
    let entries =
        crate::sbomlayer::entries_of(labels.get(crate::sbomlayer::SBOM_LABEL).map(String::as_str))
            .unwrap_or_default();
    let mut more = Vec::new();
    if let Some(layer) = crate::runsbom::recorded_layer(&entries) {
        let at = config.rootfs().diff_ids().iter().position(|d| d == layer);
        more.push(at.ok_or_else(|| {
            bad(format!(
                "the run image's SBOM layer {layer} is not in rootfs.diff_ids"
            ))
        })?);
    }
    Ok(SbomLocation {
        diff_id,
        index,
        more,
        created: config
            .created()
            .clone()
            .unwrap_or_else(|| crate::archive::format_timestamp(315_532_801)),
    })
}

/// The descriptors in `manifest` of the SBOM layer and of the other layers with SBOM files.
///
/// # Errors
/// The manifest has fewer layers than the config.
pub fn layer_descriptors<'m>(
    image: &str,
    manifest: &'m ImageManifest,
    at: &SbomLocation,
) -> Result<Vec<&'m Descriptor>, SbomDownloadError> {
    std::iter::once(at.index)
        .chain(at.more.iter().copied())
        .map(|i| {
            manifest
                .layers()
                .get(i)
                .ok_or_else(|| SbomDownloadError::Image {
                    image: image.to_owned(),
                    message: "the manifest has fewer layers than rootfs.diff_ids".to_owned(),
                })
        })
        .collect()
}

/// The files of an SBOM layer, by path.
pub type SbomFiles = BTreeMap<String, Vec<u8>>;

/// The SBOM layer of the image in a layout, read and checked: its files, and where it is.
///
/// # Errors
/// See [`SbomDownloadError`].
pub fn read_from_layout(
    reference: &ImageRef,
    shown: &str,
) -> Result<(SbomFiles, SbomLocation), SbomDownloadError> {
    let ImageRef::OciLayout { dir, tag } = reference;
    let layout = Layout::open(dir)?;
    let (_, manifest) = layout.resolve(tag)?;
    let config: ImageConfiguration = layout.read_json(manifest.config(), "image config")?;
    let at = locate(shown, &config)?;
    let mut files = SbomFiles::new();
    for descriptor in layer_descriptors(shown, &manifest, &at)? {
        let digest = descriptor.digest().to_string();
        let read_err = |source| SbomDownloadError::Read {
            image: shown.to_owned(),
            digest: digest.clone(),
            source,
        };
        let compression = layer_compression(descriptor.media_type()).ok_or_else(|| {
            read_err(io::Error::other(format!(
                "strata cannot read layers of media type `{}`",
                descriptor.media_type()
            )))
        })?;
        let file = std::fs::File::open(layout.blob_path(descriptor.digest())).map_err(read_err)?;
        files.extend(read_layer(
            BufReader::new(file),
            compression,
            shown,
            &digest,
        )?);
    }
    Ok((files, at))
}

/// The compression of a blob, by its first bytes.
pub fn sniff_compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// The SBOM layer of the image in a `docker save` tarball (as strata or docker write them).
///
/// # Errors
/// See [`SbomDownloadError`].
pub fn read_from_archive(
    path: &Path,
    shown: &str,
) -> Result<(SbomFiles, SbomLocation), SbomDownloadError> {
    let bad = |message: String| SbomDownloadError::Image {
        image: shown.to_owned(),
        message,
    };
    let open = || {
        std::fs::File::open(path).map_err(|source| SbomDownloadError::Read {
            image: shown.to_owned(),
            digest: "manifest.json".to_owned(),
            source,
        })
    };
    let entry_bytes = |name: &str, limit: u64| -> Result<Option<Vec<u8>>, SbomDownloadError> {
        let read_err = |source| SbomDownloadError::Read {
            image: shown.to_owned(),
            digest: name.to_owned(),
            source,
        };
        let mut archive = tar::Archive::new(BufReader::new(open()?));
        for entry in archive.entries().map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let entry_path = entry.path().map_err(read_err)?;
            if relative_name(&entry_path).as_deref() == Some(name) {
                if !entry.header().entry_type().is_file() || entry.size() > limit {
                    return Err(bad(format!(
                        "`{name}` is not a regular file of at most {limit} bytes"
                    )));
                }
                let mut bytes = Vec::new();
                entry
                    .take(limit)
                    .read_to_end(&mut bytes)
                    .map_err(read_err)?;
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    };
    let manifest = entry_bytes("manifest.json", 16 << 20)?
        .ok_or_else(|| bad("it is no docker archive: it has no manifest.json".to_owned()))?;
    let manifest: Value =
        serde_json::from_slice(&manifest).map_err(|e| bad(format!("manifest.json: {e}")))?;
    let first = manifest
        .as_array()
        .and_then(|a| a.first())
        .ok_or_else(|| bad("manifest.json names no image".to_owned()))?;
    let name_of = |v: &Value| v.as_str().and_then(|s| relative_name(Path::new(s)));
    let config_name = first
        .get("Config")
        .and_then(name_of)
        .ok_or_else(|| bad("manifest.json names no config".to_owned()))?;
    let layers: Vec<String> = first
        .get("Layers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(name_of).collect())
        .unwrap_or_default();
    let config = entry_bytes(&config_name, 16 << 20)?
        .ok_or_else(|| bad(format!("the config `{config_name}` is not in the archive")))?;
    let config: ImageConfiguration =
        serde_json::from_slice(&config).map_err(|e| bad(format!("{config_name}: {e}")))?;
    let at = locate(shown, &config)?;
    let mut files = SbomFiles::new();
    for index in std::iter::once(at.index).chain(at.more.iter().copied()) {
        let layer_name = layers.get(index).ok_or_else(|| {
            bad("manifest.json lists fewer layers than rootfs.diff_ids".to_owned())
        })?;
        let blob = entry_bytes(layer_name, LAYER_LIMIT)?
            .ok_or_else(|| bad(format!("the layer `{layer_name}` is not in the archive")))?;
        let compression = sniff_compression(&blob);
        files.extend(read_layer(&blob[..], compression, shown, layer_name)?);
    }
    Ok((files, at))
}

/// A tar entry's path as a relative name, `None` with a `..` or nothing in it.
fn relative_name(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for part in path.components() {
        match part {
            Component::Normal(p) => parts.push(p.to_str()?.to_owned()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Reads an SBOM layer's tar (compressed as `compression`), checking every entry.
///
/// # Errors
/// [`SbomDownloadError::Hostile`] for a refused entry, [`SbomDownloadError::Read`] for a
/// stream that is not a tar.
pub fn read_layer(
    reader: impl Read,
    compression: Compression,
    image: &str,
    digest: &str,
) -> Result<SbomFiles, SbomDownloadError> {
    let read_err = |source| SbomDownloadError::Read {
        image: image.to_owned(),
        digest: digest.to_owned(),
        source,
    };
    let hostile = |entry: &str, why: &str| SbomDownloadError::Hostile {
        image: image.to_owned(),
        entry: entry.to_owned(),
        why: why.to_owned(),
    };
    let reader = decoder(reader, compression).map_err(read_err)?;
    let mut archive = tar::Archive::new(reader.take(LAYER_LIMIT));
    let mut files = SbomFiles::new();
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = entry.path().map_err(read_err)?;
        if path.is_absolute() {
            return Err(hostile(&raw, "it is an absolute path"));
        }
        let Some(name) = relative_name(&path) else {
            return Err(hostile(&raw, "it has a `..` component"));
        };
        if name != SBOM_PREFIX && !name.starts_with(&format!("{SBOM_PREFIX}/")) && name != "layers"
        {
            return Err(hostile(&raw, "it is outside layers/sbom/"));
        }
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !name.starts_with(&format!("{SBOM_PREFIX}/")) {
            return Err(hostile(&raw, "it is outside layers/sbom/"));
        }
        if !kind.is_file() {
            let what = match kind {
                tar::EntryType::Symlink => "it is a symlink",
                tar::EntryType::Link => "it is a hardlink",
                tar::EntryType::Char | tar::EntryType::Block => "it is a device",
                tar::EntryType::Fifo => "it is a FIFO",
                _ => "it is not a regular file or directory",
            };
            return Err(hostile(&raw, what));
        }
        if entry.size() > FILE_LIMIT {
            return Err(hostile(&raw, "it is larger than strata reads"));
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(read_err)?;
        files.insert(name, bytes);
    }
    Ok(files)
}

/// Writes `files` below `dir` (creating it): `DIR/layers/sbom/...`. Returns the paths written.
///
/// # Errors
/// A directory or file cannot be written.
pub fn write_tree(files: &SbomFiles, dir: &Path) -> Result<Vec<PathBuf>, SbomDownloadError> {
    let mut written = Vec::new();
    for (name, bytes) in files {
        let path = dir.join(name);
        let write_err = |source| SbomDownloadError::Write {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write_err)?;
        }
        // A file (or link) already there is replaced, never written through.
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_err(e)),
        }
        std::fs::write(&path, bytes).map_err(write_err)?;
        written.push(path);
    }
    Ok(written)
}

/// A format of a merged document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergedFormat {
    /// `CycloneDX` 1.5 JSON.
    CycloneDx,
    /// SPDX 2.3 JSON.
    Spdx,
}

impl MergedFormat {
    /// The file extension of the format (`cdx`, `spdx`).
    pub fn ext(self) -> &'static str {
        match self {
            MergedFormat::CycloneDx => "cdx",
            MergedFormat::Spdx => "spdx",
        }
    }
}

/// One document of the whole image in `format`: every component (files and packages) of every
/// SBOM directory of the layer, from its document in `format` or else in the other one,
/// deduplicated and sorted. `subject` names the image.
pub fn merged(files: &SbomFiles, format: MergedFormat, subject: &str, created: &str) -> Vec<u8> {
    let mut dirs: BTreeMap<&str, BTreeMap<&str, &[u8]>> = BTreeMap::new();
    for (name, bytes) in files {
        let (dir, file) = name.rsplit_once('/').unwrap_or(("", name.as_str()));
        if let Some(ext) = file
            .strip_prefix("sbom.")
            .and_then(|f| f.strip_suffix(".json"))
        {
            dirs.entry(dir).or_default().insert(ext, bytes);
        }
    }
    let other = match format {
        MergedFormat::CycloneDx => MergedFormat::Spdx,
        MergedFormat::Spdx => MergedFormat::CycloneDx,
    };
    let mut inventory = Inventory::default();
    for docs in dirs.values() {
        let (ext, bytes) = match (docs.get(format.ext()), docs.get(other.ext())) {
            (Some(b), _) => (format, *b),
            (None, Some(b)) => (other, *b),
            (None, None) => continue,
        };
        let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
            continue;
        };
        inventory.extend(match ext {
            MergedFormat::CycloneDx => from_cyclonedx(&value),
            MergedFormat::Spdx => from_spdx(&value),
        });
    }
    inventory.normalize();
    let subject = Subject {
        name: subject.to_owned(),
        version: None,
        kind: SubjectKind::Container,
    };
    match format {
        MergedFormat::CycloneDx => sbomdoc::cyclonedx(&subject, &inventory, created),
        MergedFormat::Spdx => sbomdoc::spdx(&subject, &inventory, created),
    }
}

fn string(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// A file's path from an SBOM: relative to the root, `None` if it leaves it.
fn file_path(name: &str) -> Option<String> {
    relative_name(Path::new(name.trim_start_matches('/')))
}

/// The components of a `CycloneDX` document (nested ones too, not the described root).
fn from_cyclonedx(doc: &Value) -> Inventory {
    let mut inventory = Inventory::default();
    let mut stack: Vec<&Value> = doc
        .get("components")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    while let Some(c) = stack.pop() {
        if let Some(nested) = c.get("components").and_then(Value::as_array) {
            stack.extend(nested);
        }
        let Some(name) = string(c, "name") else {
            continue;
        };
        if c.get("type").and_then(Value::as_str) == Some("file") {
            let hash = |alg: &str| {
                c.get("hashes")
                    .and_then(Value::as_array)
                    .and_then(|h| {
                        h.iter()
                            .find(|h| h.get("alg").and_then(Value::as_str) == Some(alg))
                    })
                    .and_then(|h| string(h, "content"))
            };
            if let (Some(path), Some(sha256), Some(sha1)) =
                (file_path(&name), hash("SHA-256"), hash("SHA-1"))
            {
                inventory.files.push(FileItem { path, sha256, sha1 });
            }
            continue;
        }
        let property = |key: &str| {
            c.get("properties")
                .and_then(Value::as_array)
                .and_then(|p| {
                    p.iter()
                        .find(|p| p.get("name").and_then(Value::as_str) == Some(key))
                })
                .and_then(|p| string(p, "value"))
        };
        let licenses = c
            .get("licenses")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|l| {
                        l.get("license")
                            .and_then(|l| string(l, "id").or_else(|| string(l, "name")))
                            .or_else(|| string(l, "expression"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        inventory.packages.push(Package {
            name,
            version: string(c, "version"),
            purl: string(c, "purl"),
            licenses,
            arch: property("strata:package:architecture"),
            source: property("strata:package:source"),
        });
    }
    inventory
}

/// The packages and files of an SPDX document (not the ones it describes as its subject).
fn from_spdx(doc: &Value) -> Inventory {
    let mut inventory = Inventory::default();
    let empty = Vec::new();
    let array = |key: &str| doc.get(key).and_then(Value::as_array).unwrap_or(&empty);
    let described: Vec<String> = array("relationships")
        .iter()
        .filter(|r| {
            r.get("spdxElementId").and_then(Value::as_str) == Some("SPDXRef-DOCUMENT")
                && r.get("relationshipType").and_then(Value::as_str) == Some("DESCRIBES")
        })
        .filter_map(|r| string(r, "relatedSpdxElement"))
        .chain(
            array("documentDescribes")
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned)),
        )
        .collect();
    let extracted: BTreeMap<String, String> = array("hasExtractedLicensingInfos")
        .iter()
        .filter_map(|l| Some((string(l, "licenseId")?, string(l, "name")?)))
        .collect();
    for p in array("packages") {
        if string(p, "SPDXID").is_some_and(|id| described.contains(&id)) {
            continue;
        }
        let Some(name) = string(p, "name") else {
            continue;
        };
        let licenses = string(p, "licenseDeclared")
            .filter(|l| l != "NOASSERTION" && l != "NONE")
            .map(|l| {
                l.split(" AND ")
                    .map(|part| {
                        extracted
                            .get(part)
                            .cloned()
                            .unwrap_or_else(|| part.to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let purl = p
            .get("externalRefs")
            .and_then(Value::as_array)
            .and_then(|r| {
                r.iter()
                    .find(|r| r.get("referenceType").and_then(Value::as_str) == Some("purl"))
            })
            .and_then(|r| string(r, "referenceLocator"));
        let source = string(p, "sourceInfo").and_then(|s| {
            s.strip_prefix("built from the source package ")
                .map(str::to_owned)
        });
        inventory.packages.push(Package {
            name,
            version: string(p, "versionInfo"),
            arch: purl
                .as_deref()
                .and_then(|p| p.split_once("?arch="))
                .map(|(_, a)| a.split('&').next().unwrap_or_default().to_owned()),
            purl,
            licenses,
            source,
        });
    }
    for f in array("files") {
        let checksum = |alg: &str| {
            f.get("checksums")
                .and_then(Value::as_array)
                .and_then(|c| {
                    c.iter()
                        .find(|c| c.get("algorithm").and_then(Value::as_str) == Some(alg))
                })
                .and_then(|c| string(c, "checksumValue"))
        };
        if let (Some(path), Some(sha256), Some(sha1)) = (
            string(f, "fileName").and_then(|n| file_path(n.trim_start_matches("./"))),
            checksum("SHA256"),
            checksum("SHA1"),
        ) {
            inventory.files.push(FileItem { path, sha256, sha1 });
        }
    }
    inventory
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            header.set_size(if *kind == tar::EntryType::Regular {
                data.len() as u64
            } else {
                0
            });
            if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
                header.set_link_name(data).unwrap();
            }
            // Raw names, so that `..` and absolute paths reach the reader as an attacker
            // writes them.
            let name = header.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            let body: &[u8] = if *kind == tar::EntryType::Regular {
                data.as_bytes()
            } else {
                b""
            };
            builder.append(&header, body).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn hostile_entries_are_refused_with_their_name() {
        let good = tar_of(&[
            ("layers/", tar::EntryType::Directory, ""),
            (
                "layers/sbom/launch/x/sbom.cdx.json",
                tar::EntryType::Regular,
                "{}",
            ),
        ]);
        let files = read_layer(&good[..], Compression::None, "oci:x", "sha256:1").unwrap();
        assert_eq!(files.len(), 1);
        for (entry, kind, why) in [
            (
                "layers/sbom/../../etc/passwd",
                tar::EntryType::Regular,
                "`..`",
            ),
            ("/layers/sbom/x", tar::EntryType::Regular, "absolute"),
            ("layers/sbom/link", tar::EntryType::Symlink, "symlink"),
            ("layers/sbom/hard", tar::EntryType::Link, "hardlink"),
            ("layers/sbom/dev", tar::EntryType::Char, "device"),
            ("layers/sbom/fifo", tar::EntryType::Fifo, "FIFO"),
            ("etc/passwd", tar::EntryType::Regular, "outside"),
            ("layers/sbom", tar::EntryType::Regular, "outside"),
        ] {
            let tar = tar_of(&[(entry, kind, "/etc/passwd")]);
            let err = read_layer(&tar[..], Compression::None, "oci:x", "sha256:1").unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains(entry) && message.contains(why) && message.contains("oci:x"),
                "{entry}: {message}"
            );
        }
    }

    #[test]
    fn a_merged_document_dedups_components_of_every_directory() {
        let subject = Subject {
            name: "x".to_owned(),
            version: None,
            kind: SubjectKind::Application,
        };
        let file = FileItem {
            path: "layers/a/f".to_owned(),
            sha256: "1".repeat(64),
            sha1: "2".repeat(40),
        };
        let package = Package {
            name: "zlib1g".to_owned(),
            version: Some("1:1.2.13".to_owned()),
            purl: Some("pkg:deb/debian/zlib1g@1%3A1.2.13?arch=amd64".to_owned()),
            licenses: vec!["Zlib".to_owned()],
            arch: Some("amd64".to_owned()),
            source: Some("zlib".to_owned()),
        };
        let inventory = Inventory {
            files: vec![file],
            packages: vec![package],
        };
        let created = "1980-01-01T00:00:01Z";
        let mut files = SbomFiles::new();
        files.insert(
            "layers/sbom/launch/a/sbom.cdx.json".to_owned(),
            sbomdoc::cyclonedx(&subject, &inventory, created),
        );
        files.insert(
            "layers/sbom/launch/a/sbom.spdx.json".to_owned(),
            sbomdoc::spdx(&subject, &inventory, created),
        );
        files.insert(
            "layers/sbom/launch/b/sbom.spdx.json".to_owned(),
            sbomdoc::spdx(&subject, &inventory, created),
        );
        for format in [MergedFormat::CycloneDx, MergedFormat::Spdx] {
            let doc: Value =
                serde_json::from_slice(&merged(&files, format, "img", created)).unwrap();
            let expected = sbomdoc::Inventory {
                ..inventory.clone()
            };
            let back = match format {
                MergedFormat::CycloneDx => from_cyclonedx(&doc),
                MergedFormat::Spdx => from_spdx(&doc),
            };
            let mut back = back;
            back.normalize();
            assert_eq!(back, expected, "{format:?}");
        }
    }
}
