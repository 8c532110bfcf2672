//! The SBOM layer (`/layers/sbom/launch/...`, history `Software Bill-of-Materials`): an SBOM
//! for every layer strata exports, and for the run image.
//!
//! As the lifecycle lays it out, a buildpack's SBOMs are at
//! `layers/sbom/launch/<buildpack id, / as _>/sbom.<ext>.json` (its `launch.sbom.<ext>.json`)
//! and `.../<buildpack>/<layer>/sbom.<ext>.json` (its `<layer>.sbom.<ext>.json`), kept byte
//! for byte (the engine checked their format when the buildpack wrote them). Every other layer
//! gets SBOMs strata generates, in `CycloneDX` 1.5 and SPDX 2.3 JSON (see [`crate::sbomdoc`]):
//! - a launch layer whose buildpack wrote none: its files with their SHA-256 and SHA-1, at the
//!   same path a buildpack's would be;
//! - the app (slices and app layer): `layers/sbom/launch/buildpacksio_lifecycle/app/`;
//! - the launcher: `layers/sbom/launch/buildpacksio_lifecycle/launcher/`, where the lifecycle
//!   puts its own;
//! - the run image: the packages of its dpkg status, with versions, purls and the licenses of
//!   machine-readable copyright files, at `layers/sbom/launch/buildpacksio_lifecycle/run-image/`
//!   (pack and the lifecycle write no run image SBOM; `buildpacksio_lifecycle` is the
//!   platform's own directory, so no buildpack id can take the path). These are not in the
//!   SBOM layer but in a layer of their own above the run image's, which `strata rebase`
//!   replaces with the new run image's (see [`crate::runsbom`]).
//!
//! What each directory describes, and in which formats, is recorded in the image label
//! [`SBOM_LABEL`], so `strata inspect` lists it without reading a layer.
//!
//! A layer's file list depends only on its tar, and a run image's packages only on its
//! layers, so both are kept in the store under a key of the diffIDs: a layer shared by fifty
//! services, or an unchanged run image, is read once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use strata_engine::layers::SbomScope;
use strata_engine::store::{ActionEntry, Store};
use strata_planner::TaskKey;

use crate::archive::{ArchiveError, Compression, LayerBuilder, format_timestamp};
use crate::image::ExportRequest;
use crate::imagefile::ImageFileError;
use crate::metadata::{BuildpackLayersMetadata, LayerSha};
use crate::runimage::RunImage;
use crate::sbomdoc::{self, FileItem, Inventory, Subject, SubjectKind};
use crate::unpack::decoder;

/// The image label listing the SBOM layer's documents (JSON, a list of [`SbomEntry`]).
pub const SBOM_LABEL: &str = "io.strata.sbom";
/// The SBOM layer's root directory for launch SBOMs.
pub const SBOM_ROOT: &str = "layers/sbom/launch";
/// The app's generated SBOMs.
pub const APP_SBOM_DIR: &str = "layers/sbom/launch/buildpacksio_lifecycle/app";
/// The run image's generated SBOMs.
pub const RUN_IMAGE_SBOM_DIR: &str = "layers/sbom/launch/buildpacksio_lifecycle/run-image";
/// What the run image's entry describes.
pub const RUN_IMAGE: &str = "run image";
/// The formats strata generates, as file extensions.
pub const GENERATED_FORMATS: [&str; 2] = ["cdx", "spdx"];

/// Versions the store keys of file lists and package lists.
const LAYER_DOMAIN: &[u8] = b"strata layer SBOM inventory v1\0";
const RUN_IMAGE_DOMAIN: &[u8] = b"strata run-image SBOM inventory v1\0";

/// One directory of SBOMs in the SBOM layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SbomEntry {
    /// The directory, relative to the image root (`layers/sbom/launch/examples_runtime/greeter`).
    pub path: String,
    /// What the SBOMs describe: the layer's history line, `run image`, or `Buildpack: <id>@<version>`
    /// for a buildpack's launch SBOM.
    pub describes: String,
    /// The diffID of the layer described, if it is one layer.
    #[serde(rename = "diffID", default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
    /// The formats there, as file extensions (`cdx`, `spdx`, `syft`), sorted.
    pub formats: Vec<String>,
    /// Whether strata generated them (else a buildpack wrote them).
    pub generated: bool,
    /// The diffID of the layer the files are in, when it is not the SBOM layer (the run
    /// image's SBOMs, see [`crate::runsbom`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
}

/// Why the SBOM layer could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// A layer's tar could not be read to list its files.
    #[error("cannot list the files of layer `{what}` for its SBOM")]
    Layer {
        /// The layer's history line.
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The run image's packages could not be read.
    #[error("cannot read the packages of run image `{reference}` for its SBOM")]
    RunImage {
        /// The run image.
        reference: String,
        /// Why.
        #[source]
        source: ImageFileError,
    },
    /// A buildpack's SBOM file could not be read.
    #[error("cannot read SBOM file {path}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: strata_engine::untrusted::UntrustedError,
    },
    /// The layer could not be written.
    #[error("cannot write the SBOM layer")]
    Archive(#[source] ArchiveError),
}

/// A layer's tar as written: where it is and how it is compressed.
#[derive(Debug, Clone)]
pub(crate) struct LayerTar {
    pub(crate) path: PathBuf,
    pub(crate) compression: Compression,
    /// Whether the blob is not here: a remote cache hit left it promised, and its file list
    /// is the one the entry carries ([`Store::fact`]).
    pub(crate) absent: bool,
}

/// `path` relative to the image root, or `None` for one with a `..`.
fn image_path(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for part in path.components() {
        match part {
            Component::Normal(part) => parts.push(part.to_str()?.to_owned()),
            Component::ParentDir => return None,
            _ => {}
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// The regular files of a layer tar with their hashes, by path; a hardlink counts as a copy
/// of the file it links to.
///
/// # Errors
/// The stream is not a valid tar.
pub fn tar_files(reader: impl Read) -> io::Result<Vec<FileItem>> {
    let mut files: BTreeMap<String, FileItem> = BTreeMap::new();
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let Some(path) = image_path(&entry.path()?) else {
            continue;
        };
        let kind = entry.header().entry_type();
        if kind.is_file() {
            let mut sha256 = Sha256::new();
            let mut sha1 = Sha1::new();
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let n = entry.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                sha256.update(&buffer[..n]);
                sha1.update(&buffer[..n]);
            }
            files.insert(
                path.clone(),
                FileItem {
                    path,
                    sha256: hex::encode(sha256.finalize()),
                    sha1: hex::encode(sha1.finalize()),
                },
            );
        } else if kind.is_hard_link()
            && let Some(target) = entry.link_name()?.and_then(|t| image_path(&t))
            && let Some(linked) = files.get(&target).cloned()
        {
            files.insert(path.clone(), FileItem { path, ..linked });
        }
    }
    Ok(files.into_values().collect())
}

/// A store key of `domain` and `parts`.
fn key(domain: &[u8], parts: &[&str]) -> TaskKey {
    let mut hasher = Sha256::new();
    hasher.update(domain);
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    TaskKey::from_bytes(hasher.finalize().into())
}

/// The store key under which the file list of the layer with diffID `diff_id` is kept: a
/// remote cache entry carries it for a launch layer a hit does not download.
#[must_use]
pub fn layer_inventory_key(diff_id: &str) -> TaskKey {
    key(LAYER_DOMAIN, &[diff_id])
}

/// Whether `payload` is a layer's file list as [`layer_inventory_key`] keeps it (files, no
/// packages).
#[must_use]
pub fn is_layer_inventory(payload: &serde_json::Value) -> bool {
    Inventory::deserialize(payload).is_ok_and(|i| i.packages.is_empty())
}

/// The inventory under `key` in `store`, else `compute`d and kept there.
fn cached<E>(
    store: Option<&Store>,
    key: &TaskKey,
    compute: impl FnOnce() -> Result<Inventory, E>,
) -> Result<Inventory, E> {
    if let Some(inventory) = store
        .and_then(|s| s.get_action(key))
        .and_then(|entry| serde_json::from_value::<Inventory>(entry.payload).ok())
    {
        return Ok(inventory);
    }
    let mut inventory = compute()?;
    inventory.normalize();
    if let Some(store) = store
        && let Ok(payload) = serde_json::to_value(&inventory)
    {
        // An inventory that cannot be kept is only computed again next time.
        let _ = store.put_action(
            key,
            &ActionEntry {
                blobs: Vec::new(),
                payload,
            },
        );
    }
    Ok(inventory)
}

/// The files of the layer with diffID `diff_id`, whose tar is `tar`.
fn layer_inventory(
    tar: &LayerTar,
    diff_id: &str,
    what: &str,
    store: Option<&Store>,
) -> Result<Inventory, SbomError> {
    let err = |source| SbomError::Layer {
        what: what.to_owned(),
        source,
    };
    let key = layer_inventory_key(diff_id);
    if tar.absent {
        return store
            .and_then(|s| s.fact(&key))
            .and_then(|fact| serde_json::from_value::<Inventory>(fact).ok())
            .filter(|i| i.packages.is_empty())
            .ok_or_else(|| {
                err(io::Error::other(
                    "its blob is not here and its cache entry does not list its files",
                ))
            });
    }
    cached(store, &key, || {
        let file = std::fs::File::open(&tar.path).map_err(err)?;
        let reader = decoder(BufReader::new(file), tar.compression).map_err(err)?;
        Ok(Inventory {
            files: tar_files(reader).map_err(err)?,
            packages: Vec::new(),
        })
    })
}

/// The packages of `image`, kept in `store` under a key of its diffIDs.
pub(crate) fn run_image_inventory(
    image: &RunImage,
    store: Option<&Store>,
) -> Result<Inventory, SbomError> {
    let diff_ids: Vec<&str> = image.layers.iter().map(|l| l.diff_id.as_str()).collect();
    cached(store, &key(RUN_IMAGE_DOMAIN, &diff_ids), || {
        Ok(Inventory {
            files: Vec::new(),
            packages: crate::dpkg::image_packages(image).map_err(|source| SbomError::RunImage {
                reference: image.reference.clone(),
                source,
            })?,
        })
    })
}

/// The launcher's file, with its hashes.
fn launcher_inventory() -> Inventory {
    static SHA1: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sha1 = SHA1.get_or_init(|| hex::encode(Sha1::digest(crate::launcher::BINARY)));
    Inventory {
        files: vec![FileItem {
            path: crate::launch::LAUNCHER_PATH
                .trim_start_matches('/')
                .to_owned(),
            sha256: hex::encode(crate::launcher::sha256()),
            sha1: sha1.clone(),
        }],
        packages: Vec::new(),
    }
}

/// The SBOM layer being written, and what it holds.
struct Builder {
    layer: LayerBuilder,
    entries: Vec<SbomEntry>,
    created: String,
}

impl Builder {
    fn add(&mut self, dir: &str, ext: &str, bytes: Vec<u8>) -> Result<(), SbomError> {
        self.layer
            .add_bytes(&format!("{dir}/sbom.{ext}.json"), bytes, 0o644)
            .map_err(SbomError::Archive)
    }

    /// Both generated documents of `inventory` into `dir`.
    fn generated(
        &mut self,
        dir: &str,
        describes: &str,
        diff_id: Option<&str>,
        subject: &Subject,
        inventory: &Inventory,
    ) -> Result<(), SbomError> {
        self.add(
            dir,
            "cdx",
            sbomdoc::cyclonedx(subject, inventory, &self.created),
        )?;
        self.add(
            dir,
            "spdx",
            sbomdoc::spdx(subject, inventory, &self.created),
        )?;
        self.entries.push(SbomEntry {
            path: dir.to_owned(),
            describes: describes.to_owned(),
            diff_id: diff_id.map(str::to_owned),
            formats: GENERATED_FORMATS.map(str::to_owned).to_vec(),
            generated: true,
            layer: None,
        });
        Ok(())
    }
}

/// The new layers of an image being assembled, by diffID, with their history lines.
pub(crate) type NewLayers = BTreeMap<String, (String, LayerTar)>;

/// A buildpack's SBOMs: its own files, and strata's for its launch layers without one.
fn buildpack_sboms(
    out: &mut Builder,
    req: &ExportRequest<'_>,
    bp: &strata_engine::build::BuildpackOutput,
    meta: &BuildpackLayersMetadata,
    layers: &NewLayers,
) -> Result<(), SbomError> {
    let escaped = bp.buildpack.id().escaped();
    let info = &bp.buildpack.descriptor.info;
    // The buildpack's own files, by directory.
    let mut own: BTreeMap<String, (String, Option<String>, BTreeSet<String>)> = BTreeMap::new();
    for file in &bp.layers.sbom {
        let (dir, describes, diff_id) = match &file.scope {
            SbomScope::Launch => (
                format!("{SBOM_ROOT}/{escaped}"),
                format!("Buildpack: {}@{}", info.id, info.version),
                None,
            ),
            SbomScope::Layer(name) => match meta.layers.get(name).and_then(|l| l.sha.clone()) {
                Some(sha) => (
                    format!("{SBOM_ROOT}/{escaped}/{name}"),
                    crate::image::layer_created_by(name, info.id.as_str(), &info.version),
                    Some(sha),
                ),
                // Not a launch layer: not in the image.
                None => continue,
            },
            SbomScope::Build => continue,
        };
        let bytes =
            strata_engine::untrusted::read(&file.path, strata_engine::untrusted::SBOM_LIMIT)
                .map_err(|source| SbomError::Read {
                    path: file.path.clone(),
                    source,
                })?;
        out.add(&dir, &file.ext, bytes)?;
        own.entry(dir)
            .or_insert((describes, diff_id, BTreeSet::new()))
            .2
            .insert(file.ext.clone());
    }
    for (dir, (describes, diff_id, formats)) in &own {
        out.entries.push(SbomEntry {
            path: dir.clone(),
            describes: describes.clone(),
            diff_id: diff_id.clone(),
            formats: formats.iter().cloned().collect(),
            generated: false,
            layer: None,
        });
    }
    // Launch layers without one.
    for (name, layer) in &meta.layers {
        let Some(sha) = &layer.sha else { continue };
        let dir = format!("{SBOM_ROOT}/{escaped}/{name}");
        if own.contains_key(&dir) {
            continue;
        }
        let Some((created_by, tar)) = layers.get(sha) else {
            continue;
        };
        let inventory = layer_inventory(tar, sha, created_by, req.store)?;
        let subject = Subject {
            name: format!("{}:{name}", info.id),
            version: Some(info.version.clone()),
            kind: SubjectKind::Application,
        };
        out.generated(&dir, created_by, Some(sha), &subject, &inventory)?;
    }
    Ok(())
}

/// The SBOM layer of the image `req` describes: its builder and its entries (sorted by path).
/// `buildpacks` are the buildpack layers' metadata (with their diffIDs), `app` the app slices'
/// and app layer's diffIDs, `layers` every new layer's tar. The run image's entry is not among
/// them: its SBOMs are in a layer of their own ([`crate::runsbom`]).
///
/// # Errors
/// See [`SbomError`].
pub(crate) fn sbom_layer(
    req: &ExportRequest<'_>,
    buildpacks: &[BuildpackLayersMetadata],
    app: &[LayerSha],
    layers: &NewLayers,
) -> Result<(LayerBuilder, Vec<SbomEntry>), SbomError> {
    let mut out = Builder {
        layer: LayerBuilder::new(req.owner, req.epoch),
        entries: Vec::new(),
        created: format_timestamp(req.epoch),
    };
    for (bp, meta) in req.build.buildpacks.iter().zip(buildpacks) {
        buildpack_sboms(&mut out, req, bp, meta, layers)?;
    }
    // The app: its slices and layer, as one.
    let mut inventory = Inventory::default();
    let mut described = Vec::new();
    for sha in app {
        if let Some((created_by, tar)) = layers.get(&sha.sha) {
            inventory.extend(layer_inventory(tar, &sha.sha, created_by, req.store)?);
            described.push(created_by.clone());
        }
    }
    inventory.normalize();
    let app_subject = Subject {
        name: "app".to_owned(),
        version: None,
        kind: SubjectKind::Application,
    };
    let app_diff_id = (app.len() == 1).then(|| app[0].sha.as_str());
    out.generated(
        APP_SBOM_DIR,
        &described.join(", "),
        app_diff_id,
        &app_subject,
        &inventory,
    )?;
    if req.launcher {
        let subject = Subject {
            name: "strata-launcher".to_owned(),
            version: Some(crate::launcher::VERSION.to_owned()),
            kind: SubjectKind::Application,
        };
        out.generated(
            crate::launch::SBOM_DIR,
            crate::launch::LAUNCHER_CREATED_BY,
            None,
            &subject,
            &launcher_inventory(),
        )?;
    }
    out.entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((out.layer, out.entries))
}

/// Reads an image's [`SBOM_LABEL`]: `None` when it has none or it does not parse (an image
/// strata did not build).
pub fn entries_of(label: Option<&str>) -> Option<Vec<SbomEntry>> {
    label.and_then(|text| serde_json::from_str(text).ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_tar_lists_its_files_with_hashes_and_hardlinks_as_copies() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "layers/x/bin/tool", &b"hello"[..])
            .unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Link);
        link.set_size(0);
        builder
            .append_link(&mut link, "layers/x/bin/again", "layers/x/bin/tool")
            .unwrap();
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_size(0);
        builder
            .append_data(&mut dir, "layers/x/lib/", &b""[..])
            .unwrap();
        let files = tar_files(&builder.into_inner().unwrap()[..]).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["layers/x/bin/again", "layers/x/bin/tool"]);
        assert_eq!(
            files[1].sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(files[1].sha1, "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
        assert_eq!(files[0].sha256, files[1].sha256);
    }
}
