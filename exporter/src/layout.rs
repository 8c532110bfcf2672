//! OCI image layouts on disk: reading images out of them and adding images to them atomically.
//!
//! A layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`) is shared: several services are
//! exported into one layout so that they share run image and buildpack layer blobs, and users
//! keep their own tags in it. So writing follows two rules.
//!
//! 1. **Nothing in the layout changes until everything is ready.** A [`Staging`] is a temp
//!    directory *next to* the layout (in its parent, so later renames stay on one filesystem
//!    and the layout itself gains no stray files). Layer blobs, configs and manifests are
//!    written there. If the export fails, dropping the `Staging` removes it and the layout is
//!    byte for byte what it was.
//! 2. **[`Staging::commit`] only adds.** It checks that every committed manifest's config and
//!    layers are present (staged or already in the layout), makes every staged blob durable
//!    with one `syncfs` (they are written without an fsync each: thousands of small configs
//!    and manifests in a fleet rebase would otherwise wait for the disk once per file), moves
//!    them into `blobs/sha256/` (a blob that is already there is left alone: same name, same
//!    bytes), and then replaces `index.json` through a temp file, `fsync` and `rename`, so a
//!    reader sees either the old index or the new one. Entries of other tags are kept; the entries of the
//!    committed tags are replaced. Entries are sorted by tag so the index is reproducible.
//!
//! Commits to layouts in one directory are serialised by an exclusive lock on that directory
//! (the layout's parent), held from reading the old `index.json` to renaming the new one, so
//! services exported at the same time, by one build or several, all keep their tags.
//!
//! Every JSON blob strata writes goes through [`canonical_json`]: `oci-spec` keeps labels,
//! annotations, exposed ports and volumes in `HashMap`s, whose serialisation order changes from
//! run to run, and a digest that changes with it would break reproducible builds.
//!
//! 3. **Nothing in the layout is overwritten unless it is proven bad.** A blob the layout
//!    already has is hashed before it is trusted; a good one is kept, and only a copy that
//!    fails the check (or is no regular file) is replaced, by a rename, under the lock. A
//!    commit never removes a blob, so an export that fails (a full disk, a kill) leaves every
//!    earlier image whole.
//!
//! Reading verifies what it can afford to: JSON blobs (manifests, configs, indexes) are checked
//! against their descriptor's size and sha256 before they are parsed; layer blobs are only
//! located for reading, since a run image layer may be hundreds of megabytes and rebase reads
//! none. Every file is opened as `blobfile` does: no symlink is followed, no FIFO
//! blocks, and `index.json` is read with a size bound. Every blob a commit points a tag at is
//! verified.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use oci_spec::image::{
    ANNOTATION_REF_NAME, Arch, Descriptor, Digest, DigestAlgorithm, ImageIndex, ImageManifest,
    MediaType, OciLayout, Os,
};
use rayon::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use strata_engine::scratch::{self, ScratchDir, TempHome};

use strata_engine::hashing::HashingWriter;

use crate::blobfile::{
    check_copy, io_err, open_regular, read_bounded, read_verified, remember, verify_file,
};
use crate::reference::{RefError, validate_tag};

/// The `imageLayoutVersion` strata reads and writes.
pub const LAYOUT_VERSION: &str = "1.0.0";

/// The largest JSON blob (manifest, config, index) [`Layout::read_blob`] loads into memory,
/// and the largest `index.json` [`Layout::open`] reads.
pub const MAX_JSON_BLOB: u64 = 64 << 20;

/// The largest `oci-layout` file: it holds one short field.
const MAX_MARKER: u64 = 64 << 10;

const OCI_LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";

/// How deep nested image indexes are followed before giving up.
const MAX_INDEX_DEPTH: usize = 4;

/// Docker's manifest media types, which skopeo keeps when it copies a Docker image into a
/// layout with `--format v2s2`; their JSON has the same shape as the OCI types.
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Errors reading or writing an OCI image layout.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The layout directory does not exist.
    #[error("no OCI image layout at `{}`: the directory does not exist", dir.display())]
    Missing {
        /// The layout directory.
        dir: PathBuf,
    },
    /// The directory exists but is no OCI layout (and, when writing, is not empty).
    #[error("`{}` is not an OCI image layout (it has no `oci-layout` file{})", dir.display(), if *.not_empty { " and is not empty" } else { "" })]
    NotALayout {
        /// The directory.
        dir: PathBuf,
        /// Whether it has other files (writing refuses to mix a layout into them).
        not_empty: bool,
    },
    /// `oci-layout` names a version strata does not know.
    #[error("OCI image layout `{}` has imageLayoutVersion `{version}`; strata reads {LAYOUT_VERSION}", dir.display())]
    UnsupportedVersion {
        /// The layout directory.
        dir: PathBuf,
        /// The version found.
        version: String,
    },
    /// The layout directory cannot be a layout path (`/`, `..`).
    #[error("`{}` cannot be used as an OCI image layout directory", dir.display())]
    InvalidDir {
        /// The path given.
        dir: PathBuf,
    },
    /// A file system operation failed.
    #[error("{action} `{}`", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A JSON file or blob does not parse as what it should be.
    #[error("`{}` is not a valid {what}", path.display())]
    Json {
        /// What the file should be.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be serialised.
    #[error("cannot serialise {what}")]
    Serialize {
        /// What was being serialised.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// No index entry carries the tag.
    #[error("OCI image layout `{}` has no image tagged `{tag}`; tags present: {}", dir.display(), list_or_none(available))]
    TagNotFound {
        /// The layout directory.
        dir: PathBuf,
        /// The tag asked for.
        tag: String,
        /// The tags the layout has.
        available: Vec<String>,
    },
    /// The tag names several images (an index), none for the wanted platform.
    #[error("image `{tag}` in OCI image layout `{}` has no manifest for {wanted}; platforms present: {}", dir.display(), list_or_none(available))]
    NoMatchingPlatform {
        /// The layout directory.
        dir: PathBuf,
        /// The tag.
        tag: String,
        /// `os/arch` wanted.
        wanted: String,
        /// `os/arch` of the manifests present.
        available: Vec<String>,
    },
    /// A descriptor's media type is not one this code can follow.
    #[error("`{digest}` in OCI image layout `{}` has media type `{media_type}`, expected {expected}", dir.display())]
    UnexpectedMediaType {
        /// The layout directory.
        dir: PathBuf,
        /// The blob digest.
        digest: String,
        /// Its media type.
        media_type: String,
        /// What was acceptable.
        expected: &'static str,
    },
    /// Image indexes nest deeper than strata follows.
    #[error("image `{tag}` in OCI image layout `{}` nests image indexes more than {MAX_INDEX_DEPTH} deep", dir.display())]
    IndexTooDeep {
        /// The layout directory.
        dir: PathBuf,
        /// The tag.
        tag: String,
    },
    /// A blob a descriptor points to is not there.
    #[error("blob `{digest}` is missing from OCI image layout `{}`{}", dir.display(), tag.as_ref().map(|t| format!(" (needed by tag `{t}`)")).unwrap_or_default())]
    MissingBlob {
        /// The layout directory.
        dir: PathBuf,
        /// The digest.
        digest: String,
        /// The tag being committed or read, if any.
        tag: Option<String>,
    },
    /// A blob's size differs from its descriptor.
    #[error("blob `{}` has {actual} bytes but its descriptor says {expected} (digest {digest})", path.display())]
    SizeMismatch {
        /// The blob file.
        path: PathBuf,
        /// The digest.
        digest: String,
        /// Size from the descriptor.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// A blob's sha256 differs from its name.
    #[error("blob `{}` is corrupt: its sha256 is {actual}, expected {expected}", path.display())]
    DigestMismatch {
        /// The blob file.
        path: PathBuf,
        /// The digest expected.
        expected: String,
        /// The digest computed.
        actual: String,
    },
    /// A digest with an algorithm other than sha256.
    #[error("digest `{digest}` uses an algorithm other than sha256, which strata does not support")]
    UnsupportedDigest {
        /// The digest.
        digest: String,
    },
    /// A JSON blob too large to be a manifest or config.
    #[error(
        "blob `{digest}` has {size} bytes, more than the {MAX_JSON_BLOB} a manifest or config may have"
    )]
    BlobTooLarge {
        /// The digest.
        digest: String,
        /// Its size.
        size: u64,
    },
    /// A file of the layout is a symlink, FIFO, directory or device, not a regular file.
    #[error("`{}` is {kind}, not a regular file: strata neither follows nor waits on it", path.display())]
    NotAFile {
        /// The file.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A file read whole is larger than strata reads.
    #[error("`{}` has more than {limit} bytes, more than strata reads", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// The bound.
        limit: u64,
    },
    /// A tag to commit is not a valid ref name.
    #[error("cannot tag an image in `{}`", dir.display())]
    InvalidTag {
        /// The layout directory.
        dir: PathBuf,
        /// Why the tag is invalid.
        #[source]
        source: RefError,
    },
    /// A commit of several stagings together failed as a whole (each of them gets this).
    #[error("the commit of several images together failed")]
    Group {
        /// Why.
        #[source]
        source: std::sync::Arc<LayoutError>,
    },
    /// The same tag appears twice in one commit.
    #[error("tag `{tag}` is committed twice to OCI image layout `{}`", dir.display())]
    DuplicateTag {
        /// The layout directory.
        dir: PathBuf,
        /// The tag.
        tag: String,
    },
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// An OCI image layout opened for reading.
#[derive(Clone, Debug)]
pub struct Layout {
    dir: PathBuf,
    index: ImageIndex,
}

impl Layout {
    /// Opens the layout at `dir`: checks `oci-layout` (version 1.0.0) and reads `index.json`.
    ///
    /// # Errors
    /// [`LayoutError::Missing`], [`LayoutError::NotALayout`],
    /// [`LayoutError::UnsupportedVersion`], or an unreadable or invalid `index.json`.
    pub fn open(dir: &Path) -> Result<Layout, LayoutError> {
        let marker = dir.join(OCI_LAYOUT_FILE);
        let marker_bytes = match read_bounded(&marker, MAX_MARKER) {
            Ok(bytes) => bytes,
            Err(LayoutError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(if dir.is_dir() {
                    LayoutError::NotALayout {
                        dir: dir.to_path_buf(),
                        not_empty: false,
                    }
                } else {
                    LayoutError::Missing {
                        dir: dir.to_path_buf(),
                    }
                });
            }
            Err(e) => return Err(e),
        };
        let layout: OciLayout =
            serde_json::from_slice(&marker_bytes).map_err(|source| LayoutError::Json {
                what: "oci-layout file",
                path: marker.clone(),
                source,
            })?;
        if layout.image_layout_version() != LAYOUT_VERSION {
            return Err(LayoutError::UnsupportedVersion {
                dir: dir.to_path_buf(),
                version: layout.image_layout_version().clone(),
            });
        }
        let index_path = dir.join(INDEX_FILE);
        let index_bytes = read_bounded(&index_path, MAX_JSON_BLOB)?;
        let index: ImageIndex =
            serde_json::from_slice(&index_bytes).map_err(|source| LayoutError::Json {
                what: "image index",
                path: index_path,
                source,
            })?;
        Ok(Layout {
            dir: dir.to_path_buf(),
            index,
        })
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The parsed `index.json`.
    pub fn index(&self) -> &ImageIndex {
        &self.index
    }

    /// Every `index.json` entry that has a tag (`org.opencontainers.image.ref.name`), sorted by
    /// tag. A tag may appear more than once (one entry per platform).
    pub fn tags(&self) -> Vec<(String, Descriptor)> {
        let mut tags: Vec<(String, Descriptor)> = self
            .index
            .manifests()
            .iter()
            .filter_map(|d| ref_name(d).map(|tag| (tag.to_owned(), d.clone())))
            .collect();
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        tags
    }

    /// The manifest tagged `tag`, for linux on this machine's architecture where the tag
    /// names an image index (or several entries); a tag with a single manifest is taken
    /// whatever its platform.
    ///
    /// # Errors
    /// [`LayoutError::TagNotFound`] listing the tags present,
    /// [`LayoutError::NoMatchingPlatform`], or a missing, corrupt or unparsable blob.
    pub fn resolve(&self, tag: &str) -> Result<(Descriptor, ImageManifest), LayoutError> {
        self.resolve_for_platform(tag, &Os::Linux, &host_arch())
    }

    /// Like [`Self::resolve`], choosing `os`/`arch` among several manifests.
    ///
    /// # Errors
    /// As [`Self::resolve`].
    pub fn resolve_for_platform(
        &self,
        tag: &str,
        os: &Os,
        arch: &Arch,
    ) -> Result<(Descriptor, ImageManifest), LayoutError> {
        let tagged: Vec<&Descriptor> = self
            .index
            .manifests()
            .iter()
            .filter(|d| ref_name(d) == Some(tag))
            .collect();
        if tagged.is_empty() {
            let mut available: Vec<String> = self.tags().into_iter().map(|(tag, _)| tag).collect();
            available.dedup();
            return Err(LayoutError::TagNotFound {
                dir: self.dir.clone(),
                tag: tag.to_owned(),
                available,
            });
        }
        let mut current = self.select_platform(tag, &tagged, os, arch)?.clone();
        for _ in 0..MAX_INDEX_DEPTH {
            match current.media_type() {
                MediaType::ImageManifest => {}
                MediaType::Other(other) if other == DOCKER_MANIFEST => {}
                MediaType::ImageIndex => {
                    let index: ImageIndex = self.read_json(&current, "image index")?;
                    let children: Vec<&Descriptor> = index.manifests().iter().collect();
                    current = self.select_platform(tag, &children, os, arch)?.clone();
                    continue;
                }
                MediaType::Other(other) if other == DOCKER_MANIFEST_LIST => {
                    let index: ImageIndex = self.read_json(&current, "manifest list")?;
                    let children: Vec<&Descriptor> = index.manifests().iter().collect();
                    current = self.select_platform(tag, &children, os, arch)?.clone();
                    continue;
                }
                other => {
                    return Err(LayoutError::UnexpectedMediaType {
                        dir: self.dir.clone(),
                        digest: current.digest().to_string(),
                        media_type: other.to_string(),
                        expected: "an image manifest or image index",
                    });
                }
            }
            let manifest: ImageManifest = self.read_json(&current, "image manifest")?;
            return Ok((current, manifest));
        }
        Err(LayoutError::IndexTooDeep {
            dir: self.dir.clone(),
            tag: tag.to_owned(),
        })
    }

    /// `<dir>/blobs/<algorithm>/<hex>`, where the blob with this digest is (or would be).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path_in(&self.dir, digest)
    }

    /// Whether the blob a descriptor points to is present, a regular file (not a symlink)
    /// with the right size (its content is not hashed).
    pub fn has_blob(&self, descriptor: &Descriptor) -> bool {
        fs::symlink_metadata(self.blob_path(descriptor.digest()))
            .is_ok_and(|m| m.is_file() && m.len() == descriptor.size())
    }

    /// Reads a JSON-sized blob, checking its size and sha256 against the descriptor.
    ///
    /// # Errors
    /// [`LayoutError::MissingBlob`], [`LayoutError::SizeMismatch`],
    /// [`LayoutError::DigestMismatch`], [`LayoutError::UnsupportedDigest`] or
    /// [`LayoutError::BlobTooLarge`] (over [`MAX_JSON_BLOB`]).
    pub fn read_blob(&self, descriptor: &Descriptor) -> Result<Vec<u8>, LayoutError> {
        let path = self.blob_path(descriptor.digest());
        read_verified(&path, descriptor).map_err(|e| match e {
            LayoutError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                LayoutError::MissingBlob {
                    dir: self.dir.clone(),
                    digest: descriptor.digest().to_string(),
                    tag: None,
                }
            }
            other => other,
        })
    }

    /// Reads and parses a JSON blob (verified as [`Self::read_blob`] does).
    ///
    /// # Errors
    /// As [`Self::read_blob`], or [`LayoutError::Json`] naming `what`.
    pub fn read_json<T: DeserializeOwned>(
        &self,
        descriptor: &Descriptor,
        what: &'static str,
    ) -> Result<T, LayoutError> {
        let bytes = self.read_blob(descriptor)?;
        serde_json::from_slice(&bytes).map_err(|source| LayoutError::Json {
            what,
            path: self.blob_path(descriptor.digest()),
            source,
        })
    }

    fn select_platform<'a>(
        &self,
        tag: &str,
        candidates: &[&'a Descriptor],
        os: &Os,
        arch: &Arch,
    ) -> Result<&'a Descriptor, LayoutError> {
        if let [only] = candidates {
            return Ok(only);
        }
        candidates
            .iter()
            .find(|d| {
                d.platform()
                    .as_ref()
                    .is_some_and(|p| p.os() == os && p.architecture() == arch)
            })
            .copied()
            .ok_or_else(|| LayoutError::NoMatchingPlatform {
                dir: self.dir.clone(),
                tag: tag.to_owned(),
                wanted: format!("{os}/{arch}"),
                available: candidates
                    .iter()
                    .map(|d| {
                        d.platform().as_ref().map_or_else(
                            || "unspecified".to_owned(),
                            |p| format!("{}/{}", p.os(), p.architecture()),
                        )
                    })
                    .collect(),
            })
    }
}

/// The tag (`org.opencontainers.image.ref.name`) of an index entry.
pub fn ref_name(descriptor: &Descriptor) -> Option<&str> {
    descriptor
        .annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_REF_NAME))
        .map(String::as_str)
}

/// This machine's architecture in Go's `GOARCH` naming, as OCI configs and platforms use it.
pub fn host_arch() -> Arch {
    let goarch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    };
    Arch::from(goarch)
}

/// Serialises `value` as compact JSON with object keys in byte order, so equal values always
/// give equal bytes (and digests), whatever order `HashMap` fields iterate in.
///
/// # Errors
/// A value serde cannot represent as JSON (a map with non-string keys).
pub fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    // Written straight from the value, each object's keys in order (sorted here only when
    // the map does not keep them sorted): no second, sorted copy of the tree is built, which
    // was most of the cost of the thousands of configs and manifests of a fleet rebase.
    fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                if !entries.is_sorted_by(|a, b| a.0 <= b.0) {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                out.push(b'{');
                for (i, (key, value)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut *out, key)?;
                    out.push(b':');
                    write(value, out)?;
                }
                out.push(b'}');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out)?;
                }
                out.push(b']');
            }
            other => serde_json::to_writer(&mut *out, other)?,
        }
        Ok(())
    }
    let mut out = Vec::new();
    write(&serde_json::to_value(value)?, &mut out)?;
    Ok(out)
}

/// The `tags` that still name what `expected` says in the `existing` layout (one manifest of
/// that digest; none for an empty `expected`); the others are pushed onto `moved`.
fn unmoved<'t>(
    existing: Option<&Layout>,
    tags: &'t [(String, Descriptor)],
    expected: &[String],
    moved: &mut Vec<MovedTag>,
) -> Vec<&'t (String, Descriptor)> {
    // Every tag's manifests now, in one pass over the index (not one per tag).
    let mut now_by_tag: HashMap<&str, Vec<String>> = HashMap::new();
    for d in existing.iter().flat_map(|layout| layout.index.manifests()) {
        if let Some(tag) = ref_name(d) {
            now_by_tag
                .entry(tag)
                .or_default()
                .push(d.digest().to_string());
        }
    }
    tags.iter()
        .zip(expected)
        .filter(|((tag, _), expected)| {
            let now = now_by_tag.remove(tag.as_str()).unwrap_or_default();
            let same = match (now.as_slice(), expected.as_str()) {
                ([], "") => true,
                ([one], expected) => one == expected,
                _ => false,
            };
            if !same {
                moved.push(MovedTag {
                    tag: tag.clone(),
                    now: now.into_iter().next(),
                });
            }
            same
        })
        .map(|(pair, _)| pair)
        .collect()
}

/// Tags to commit, each with the manifest (or index) it is to name.
pub type Tags = Vec<(String, Descriptor)>;

/// A tag [`Staging::commit_swap`] left alone because it moved since it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedTag {
    /// The tag.
    pub tag: String,
    /// The manifest digest it names now (the first, if several entries), `None` if it is gone.
    pub now: Option<String>,
}

/// Blobs and metadata being prepared for one commit into a layout. Dropping it without
/// [`Staging::commit`] removes everything it wrote and leaves the layout untouched.
///
/// The staging directory, `.<layout name>.staging-<owner>` beside the layout, is private
/// (0700), and so are the temp files a commit writes in the layout: a signal removes them,
/// and the next commit to the layout removes those a killed process left (see
/// [`strata_engine::scratch`]).
#[derive(Debug)]
pub struct Staging {
    layout_dir: PathBuf,
    blob_dir: PathBuf,
    /// Hex digests of blobs [`Staging::put_blob_file`] found intact in the layout and used
    /// instead of staging its own copy: the commit verifies them again under the lock.
    reused: Mutex<HashSet<String>>,
    /// Blobs (`digest/size`) the images committed may name and the layout goes without
    /// ([`Staging::put_absent`]).
    absent: Mutex<HashSet<String>>,
    // Deletes the staging directory, with whatever is still in it, when the staging goes away.
    _temp: ScratchDir,
    // Where a commit writes temp files: the layout and its blob directory.
    _homes: [TempHome; 2],
}

/// What the names of temp files in a layout start with.
const TEMP_PREFIX: &str = ".tmp-";

/// What the names of a layout's staging directories start with.
fn staging_prefix(layout_name: &std::ffi::OsStr) -> String {
    format!(".{}.staging-", layout_name.to_string_lossy())
}

/// The directory a layout is in (`.` for a bare name).
fn parent_of(layout_dir: &Path) -> &Path {
    match layout_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl Staging {
    /// Starts staging for the layout at `layout_dir` (which need not exist yet), in a temp
    /// directory in its parent. The parent is created if missing.
    ///
    /// # Errors
    /// [`LayoutError::InvalidDir`] for a path with no final component, or an I/O error
    /// creating the temp directory.
    pub fn new(layout_dir: &Path) -> Result<Staging, LayoutError> {
        let name = layout_dir
            .file_name()
            .ok_or_else(|| LayoutError::InvalidDir {
                dir: layout_dir.to_path_buf(),
            })?;
        let parent = parent_of(layout_dir);
        fs::create_dir_all(parent).map_err(|e| io_err("cannot create", parent, e))?;
        let temp = ScratchDir::create(parent, &staging_prefix(name))
            .map_err(|e| io_err("cannot create a staging directory in", parent, e))?;
        let blob_dir = temp.path().join("blobs");
        fs::create_dir(&blob_dir).map_err(|e| io_err("cannot create", &blob_dir, e))?;
        Ok(Staging {
            _homes: [
                TempHome::new(layout_dir),
                TempHome::new(&layout_dir.join("blobs").join("sha256")),
            ],
            layout_dir: layout_dir.to_path_buf(),
            blob_dir,
            reused: Mutex::new(HashSet::new()),
            absent: Mutex::new(HashSet::new()),
            _temp: temp,
        })
    }

    /// The layout this staging commits into.
    pub fn layout_dir(&self) -> &Path {
        &self.layout_dir
    }

    /// Where staged blobs live, named by the hex of their sha256: pass it to
    /// [`crate::archive::LayerBuilder::finish`].
    pub fn blob_dir(&self) -> &Path {
        &self.blob_dir
    }

    /// Stages `bytes` as a blob and returns its descriptor.
    ///
    /// # Errors
    /// An I/O error writing the blob.
    pub fn put_bytes(
        &self,
        bytes: &[u8],
        media_type: MediaType,
    ) -> Result<Descriptor, LayoutError> {
        let hex = hex::encode(Sha256::digest(bytes));
        let digest = sha256_digest(&hex)?;
        // A blob staged already (by another thread) is found by the exclusive create.
        write_staged(&self.blob_dir.join(&hex), bytes)?;
        Ok(Descriptor::new(media_type, bytes.len() as u64, digest))
    }

    /// Stages `value` as canonical JSON (see [`canonical_json`]) and returns the descriptor
    /// of exactly those bytes.
    ///
    /// # Errors
    /// [`LayoutError::Serialize`] or an I/O error writing the blob.
    pub fn put_json<T: Serialize>(
        &self,
        value: &T,
        media_type: MediaType,
    ) -> Result<Descriptor, LayoutError> {
        let bytes = canonical_json(value).map_err(|source| LayoutError::Serialize {
            what: "a JSON blob",
            source,
        })?;
        self.put_bytes(&bytes, media_type)
    }

    /// Lets the images committed name the layer `descriptor` without the layout having it:
    /// for a layout in the store that stages images for a registry that has the blob (the
    /// push mounts or skips it), never for a layout given as an output. The layout keeps
    /// it if it has it already.
    ///
    /// # Errors
    /// [`LayoutError::UnsupportedDigest`] for a digest that is not sha256.
    pub fn put_absent(&self, descriptor: &Descriptor) -> Result<(), LayoutError> {
        sha256_hex_of(descriptor.digest())?;
        self.absent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(format!("{}/{}", descriptor.digest(), descriptor.size()));
        Ok(())
    }

    /// Includes an existing blob file (a run image layer from another layout, a cached layer
    /// from the store) in the commit. Nothing is staged if the staging already has that blob,
    /// or if the target layout has a copy that hashes right (the commit checks it again under
    /// the lock). Otherwise the file is hardlinked into the staging directory where possible
    /// (sharing its inode, as blobs are never modified in place) and copied where not, and the
    /// staged bytes are checked against the size and sha256 of `descriptor`. A layout copy
    /// that is bad is left for the commit to replace: nothing in the layout changes here.
    ///
    /// # Errors
    /// [`LayoutError::NotAFile`] when `src` is a symlink, FIFO or other non-regular file,
    /// [`LayoutError::SizeMismatch`], [`LayoutError::DigestMismatch`],
    /// [`LayoutError::UnsupportedDigest`] or an I/O error; nothing is staged then.
    pub fn put_blob_file(&self, src: &Path, descriptor: &Descriptor) -> Result<(), LayoutError> {
        let hex = sha256_hex_of(descriptor.digest())?;
        let staged = self.blob_dir.join(hex);
        if fs::symlink_metadata(&staged).is_ok() {
            return Ok(());
        }
        if verify_file(
            &blob_path_in(&self.layout_dir, descriptor.digest()),
            descriptor,
        )
        .is_ok()
        {
            self.reused
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(hex.to_owned());
            return Ok(());
        }
        let (mut input, meta) = open_regular(src)?;
        if meta.len() != descriptor.size() {
            return Err(LayoutError::SizeMismatch {
                path: src.to_path_buf(),
                digest: descriptor.digest().to_string(),
                expected: descriptor.size(),
                actual: meta.len(),
            });
        }
        if fs::hard_link(src, &staged).is_ok() {
            // Hash what is now staged, so the check covers the bytes that will be committed
            // (and refuses a symlink put at `src` since it was opened: link() does not follow).
            if let Err(e) = verify_file(&staged, descriptor) {
                let _ = fs::remove_file(&staged);
                return Err(e);
            }
            return Ok(());
        }
        let mut temp = scratch::temp_file_in(&self.blob_dir, TEMP_PREFIX)
            .map_err(|e| io_err("cannot create a temp file in", &self.blob_dir, e))?;
        let mut hashing = HashingWriter::new(temp.as_file_mut());
        io::copy(&mut input, &mut hashing).map_err(|e| io_err("cannot copy blob", src, e))?;
        let (actual, copied, _) = hashing.into_parts();
        check_copy(src, descriptor, copied, &actual)?;
        share(temp.as_file(), &staged)?;
        let file = temp
            .persist(&staged)
            .map_err(|e| io_err("cannot write", &staged, e.error))?;
        if let Ok(meta) = file.metadata() {
            remember(&meta, hex);
        }
        Ok(())
    }

    /// Moves the staged blobs into the layout and points `tags` at their manifests (or
    /// indexes), keeping every other tag of the layout. Creates the layout if the directory
    /// does not exist or is empty.
    ///
    /// # Errors
    /// An invalid or repeated tag, a directory that is neither empty nor a layout, a committed
    /// manifest whose config or layers are in neither the staging nor the layout, or an I/O
    /// error. Every check runs before the layout is touched.
    pub fn commit(self, tags: &[(String, Descriptor)]) -> Result<(), LayoutError> {
        self.commit_inner(tags, None).map(|_| ())
    }

    /// Like [`Staging::commit`], as a compare-and-swap per tag: `expected[i]` is the manifest
    /// digest tag `i` had when its new manifest was computed (empty: the tag did not exist). Under the layout lock, each
    /// tag that no longer names exactly that one manifest (a build committed it meanwhile) is
    /// left as it is and returned, with the digest it names now; the other tags are
    /// committed.
    ///
    /// # Errors
    /// As [`Staging::commit`]; `expected` must have one entry per tag.
    pub fn commit_swap(
        self,
        tags: &[(String, Descriptor)],
        expected: &[String],
    ) -> Result<Vec<MovedTag>, LayoutError> {
        self.commit_inner(tags, Some(expected))
    }

    fn commit_inner(
        self,
        tags: &[(String, Descriptor)],
        expected: Option<&[String]>,
    ) -> Result<Vec<MovedTag>, LayoutError> {
        let dir = self.layout_dir.clone();
        commit_group(&dir, &[(self, tags, expected)])
            .pop()
            .unwrap_or_else(|| Ok(Vec::new()))
    }

    /// Commits several stagings for one layout at once, as if one after the other in the
    /// order given (a later staging's tag replaces an earlier one's), with one lock, one
    /// `syncfs`, one `index.json` write and one directory sync for all of them: a build of
    /// many services commits whatever has finished together ([`crate::groupcommit`]) instead
    /// of rewriting the whole index once per service. Each staging's result is its own: one
    /// that fails its checks is dropped (its tags stay as they were) and the others go on.
    /// Stagings for another layout than the first's are committed in a group of their own.
    pub fn commit_together(commits: Vec<(Staging, Tags)>) -> Vec<Result<(), LayoutError>> {
        let mut results: Vec<Option<Result<(), LayoutError>>> =
            commits.iter().map(|_| None).collect();
        let mut rest: Vec<(usize, Staging, Tags)> = commits
            .into_iter()
            .enumerate()
            .map(|(i, (staging, tags))| (i, staging, tags))
            .collect();
        while let Some(first) = rest.first() {
            let dir = first.1.layout_dir.clone();
            let (group, others): (Vec<_>, Vec<_>) =
                rest.into_iter().partition(|(_, s, _)| s.layout_dir == dir);
            rest = others;
            let indices: Vec<usize> = group.iter().map(|(i, _, _)| *i).collect();
            let (stagings, tags): (Vec<Staging>, Vec<Tags>) =
                group.into_iter().map(|(_, s, t)| (s, t)).unzip();
            let items: Vec<GroupItem<'_, '_>> = stagings
                .into_iter()
                .zip(&tags)
                .map(|(s, t)| (s, t.as_slice(), None))
                .collect();
            for (i, result) in indices.into_iter().zip(commit_group(&dir, &items)) {
                results[i] = Some(result.map(|_| ()));
            }
        }
        results.into_iter().flatten().collect()
    }

    /// Removes what killed processes left of their commits to this layout: staging
    /// directories beside it and temp files in it. Under the layout lock, so that no
    /// commit is between moving a file in and renaming it.
    fn remove_stale(&self) {
        let dir = &self.layout_dir;
        if let Some(name) = dir.file_name() {
            scratch::remove_stale(parent_of(dir), &staging_prefix(name));
        }
        for home in [dir.clone(), dir.join("blobs").join("sha256")] {
            scratch::remove_stale(&home, TEMP_PREFIX);
        }
    }

    /// An exclusive lock on the directory the layout is in, released when dropped.
    fn lock_parent(&self) -> Result<File, LayoutError> {
        let parent = parent_of(&self.layout_dir);
        let dir = File::open(parent).map_err(|e| io_err("cannot open", parent, e))?;
        dir.lock().map_err(|e| io_err("cannot lock", parent, e))?;
        Ok(dir)
    }

    /// The layout already at the target, `None` for a missing or empty directory.
    ///
    /// A directory with no `oci-layout` that holds only what a first commit writes before
    /// its marker (`blobs/sha256/` with blobs, temp files, and maybe `index.json`) is that
    /// commit, killed: it is taken up where it stopped (its `index.json`, if it was written,
    /// is the layout's index), so a kill at any moment leaves a layout the next commit can use.
    fn existing_layout(&self) -> Result<Option<Layout>, LayoutError> {
        let dir = &self.layout_dir;
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("cannot read", dir, e)),
        };
        if dir.join(OCI_LAYOUT_FILE).exists() {
            return Layout::open(dir).map(Some);
        }
        let mut has_index = false;
        for entry in entries {
            let entry = entry.map_err(|e| io_err("cannot read", dir, e))?;
            let name = entry.file_name();
            let first_commit = match name.to_str() {
                Some(INDEX_FILE) => {
                    has_index = true;
                    true
                }
                Some("blobs") => holds_only_blobs(&entry.path()),
                Some(n) => n.starts_with(TEMP_PREFIX),
                None => false,
            };
            if !first_commit {
                return Err(LayoutError::NotALayout {
                    dir: dir.clone(),
                    not_empty: true,
                });
            }
        }
        if !has_index {
            return Ok(None);
        }
        let index_path = dir.join(INDEX_FILE);
        let bytes = read_bounded(&index_path, MAX_JSON_BLOB)?;
        let index = serde_json::from_slice(&bytes).map_err(|source| LayoutError::Json {
            what: "image index",
            path: index_path,
            source,
        })?;
        Ok(Some(Layout {
            dir: dir.clone(),
            index,
        }))
    }

    /// Where a blob will be found after the commit: staged (written here, or checked when it
    /// was staged), or already in the layout. A layout copy that stands in for a blob of this
    /// commit ([`Staging::put_blob_file`] chose it) is verified again now, under the lock; a
    /// bad one is an error, since no tag may point at it. Other blobs of the layout that a
    /// manifest names (an app layer that a rebase keeps) are only checked to be regular files
    /// of their size: a rebase reads no layer.
    fn locate(&self, descriptor: &Descriptor) -> Result<Option<PathBuf>, LayoutError> {
        let hex = sha256_hex_of(descriptor.digest())?;
        let staged = self.blob_dir.join(hex);
        if let Ok(meta) = fs::symlink_metadata(&staged) {
            if meta.len() != descriptor.size() {
                return Err(LayoutError::SizeMismatch {
                    path: staged,
                    digest: descriptor.digest().to_string(),
                    expected: descriptor.size(),
                    actual: meta.len(),
                });
            }
            return Ok(Some(staged));
        }
        let in_layout = blob_path_in(&self.layout_dir, descriptor.digest());
        let reused = self
            .reused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(hex);
        if !reused {
            return match fs::symlink_metadata(&in_layout) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_err("cannot read", &in_layout, e)),
                Ok(meta) if !meta.is_file() => Err(LayoutError::NotAFile {
                    path: in_layout,
                    kind: "not a regular file",
                }),
                Ok(meta) if meta.len() != descriptor.size() => Err(LayoutError::SizeMismatch {
                    path: in_layout,
                    digest: descriptor.digest().to_string(),
                    expected: descriptor.size(),
                    actual: meta.len(),
                }),
                Ok(_) => Ok(Some(in_layout)),
            };
        }
        match verify_file(&in_layout, descriptor) {
            Ok(()) => Ok(Some(in_layout)),
            Err(LayoutError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Checks that `descriptor` and everything it references can be found after the commit;
    /// `found` holds the digests of configs and layers already located.
    fn check_complete(
        &self,
        tag: &str,
        descriptor: &Descriptor,
        depth: usize,
        found: &mut HashSet<String>,
    ) -> Result<(), LayoutError> {
        let missing = || LayoutError::MissingBlob {
            dir: self.layout_dir.clone(),
            digest: descriptor.digest().to_string(),
            tag: Some(tag.to_owned()),
        };
        let path = self.locate(descriptor)?.ok_or_else(missing)?;
        let is_index = match descriptor.media_type() {
            MediaType::ImageManifest => false,
            MediaType::ImageIndex => true,
            MediaType::Other(other) if other == DOCKER_MANIFEST => false,
            MediaType::Other(other) if other == DOCKER_MANIFEST_LIST => true,
            other => {
                return Err(LayoutError::UnexpectedMediaType {
                    dir: self.layout_dir.clone(),
                    digest: descriptor.digest().to_string(),
                    media_type: other.to_string(),
                    expected: "an image manifest or image index",
                });
            }
        };
        let bytes = read_verified(&path, descriptor)?;
        let json_err = |source| LayoutError::Json {
            what: if is_index {
                "image index"
            } else {
                "image manifest"
            },
            path: path.clone(),
            source,
        };
        if is_index {
            if depth >= MAX_INDEX_DEPTH {
                return Err(LayoutError::IndexTooDeep {
                    dir: self.layout_dir.clone(),
                    tag: tag.to_owned(),
                });
            }
            let index: ImageIndex = serde_json::from_slice(&bytes).map_err(json_err)?;
            for child in index.manifests() {
                self.check_complete(tag, child, depth + 1, found)?;
            }
        } else {
            let manifest: ImageManifest = serde_json::from_slice(&bytes).map_err(json_err)?;
            for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
                let key = format!("{}/{}", blob.digest(), blob.size());
                if found.contains(&key)
                    || self
                        .absent
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .contains(&key)
                {
                    continue;
                }
                if self.locate(blob)?.is_none() {
                    return Err(LayoutError::MissingBlob {
                        dir: self.layout_dir.clone(),
                        digest: blob.digest().to_string(),
                        tag: Some(tag.to_owned()),
                    });
                }
                found.insert(key);
            }
        }
        Ok(())
    }

    /// Moves each staged blob into `blobs`, unless the layout has a copy that hashes right.
    /// A copy that does not (or is no regular file) is proven bad, and the staged blob is
    /// renamed over it; nothing is ever removed. Runs under the layout lock.
    fn move_blobs(&self, blobs: &Path) -> Result<(), LayoutError> {
        let entries =
            fs::read_dir(&self.blob_dir).map_err(|e| io_err("cannot read", &self.blob_dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_err("cannot read", &self.blob_dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| is_sha256_hex(n)) else {
                continue; // a temp file of an interrupted write
            };
            let src = entry.path();
            let dest = blobs.join(name);
            // One syscall for the common case, a blob the layout lacks: a rename that never
            // replaces. Only a blob that is there already is looked at.
            let there = match rename_noreplace(&src, &dest) {
                Ok(()) => continue,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => true,
                // No RENAME_NOREPLACE here (an old kernel, another file system): look first.
                Err(_) => match fs::symlink_metadata(&dest) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                    Err(e) => return Err(io_err("cannot read", &dest, e)),
                    Ok(_) => true,
                },
            };
            if there {
                let src_len = entry
                    .metadata()
                    .map_err(|e| io_err("cannot read", &src, e))?
                    .len();
                let descriptor =
                    Descriptor::new(MediaType::ImageLayer, src_len, sha256_digest(name)?);
                if verify_file(&dest, &descriptor).is_ok() {
                    continue;
                }
            }
            move_file(&src, &dest)?;
        }
        Ok(())
    }
}

/// One staging of a group commit with its tags and, for a compare-and-swap, the manifest
/// digests they are expected to name.
type GroupItem<'t, 'e> = (Staging, &'t [(String, Descriptor)], Option<&'e [String]>);

/// The tags of one staging in a group commit, checked: its tags still as expected, each
/// complete; or why not.
type Checked<'t> = Result<Vec<&'t (String, Descriptor)>, LayoutError>;

/// [`Staging::commit_together`] for stagings of the layout `dir`, each with its tags and, for
/// a compare-and-swap, the manifest digests its tags are expected to name
/// ([`Staging::commit_swap`]). Returns per staging the tags left alone because they moved.
fn commit_group<'t>(
    dir: &Path,
    items: &[GroupItem<'t, '_>],
) -> Vec<Result<Vec<MovedTag>, LayoutError>> {
    let mut moved: Vec<Vec<MovedTag>> = items.iter().map(|_| Vec::new()).collect();
    let mut checked: Vec<Checked<'t>> = items
        .iter()
        .map(|(_, tags, _)| check_tags(dir, tags).map(|()| Vec::new()))
        .collect();
    let Some((first, _, _)) = items.first() else {
        return Vec::new();
    };
    if checked.iter().all(Result::is_err) {
        return checked.into_iter().map(|c| c.map(|_| Vec::new())).collect();
    }
    let locked = first.lock_parent().and_then(|lock| {
        first.remove_stale();
        // index.json as it is now, under the lock: what the compare-and-swap compares with.
        Ok((lock, first.existing_layout()?))
    });
    let (_lock, existing) = match locked {
        Ok(locked) => locked,
        Err(e) => return fail_all(checked, e),
    };
    for (i, (staging, tags, expected)) in items.iter().enumerate() {
        let Ok(ok) = &mut checked[i] else { continue };
        *ok = match expected {
            None => tags.iter().collect(),
            Some(expected) => unmoved(existing.as_ref(), tags, expected, &mut moved[i]),
        };
        // On every core: it reads each manifest back. Configs and layers found once by a
        // thread are not looked up again by it: the images of a fleet share their run
        // image's layers.
        let complete: Vec<Result<(), LayoutError>> = ok
            .par_iter()
            .map_init(HashSet::new, |found, (tag, d)| {
                staging.check_complete(tag, d, 0, found)
            })
            .collect();
        if let Some(e) = complete.into_iter().find_map(Result::err) {
            checked[i] = Err(e);
        }
    }
    if let Err(e) = write_group(dir, items, &mut checked, existing) {
        return fail_all(checked, e);
    }
    checked
        .into_iter()
        .zip(moved)
        .map(|(result, moved)| result.map(|_| moved))
        .collect()
}

/// Every staging of a group that had not failed yet fails with `error`: itself when it is the
/// only one, else shared ([`LayoutError::Group`]).
fn fail_all(
    checked: Vec<Checked<'_>>,
    error: LayoutError,
) -> Vec<Result<Vec<MovedTag>, LayoutError>> {
    let live: Vec<usize> = (0..checked.len()).filter(|&i| checked[i].is_ok()).collect();
    let mut results: Vec<Result<Vec<MovedTag>, LayoutError>> =
        checked.into_iter().map(|c| c.map(|_| Vec::new())).collect();
    if let [one] = live[..] {
        results[one] = Err(error);
    } else {
        let shared = std::sync::Arc::new(error);
        for i in live {
            results[i] = Err(LayoutError::Group {
                source: std::sync::Arc::clone(&shared),
            });
        }
    }
    results
}

/// Checks the tags of one staging: each valid, none twice.
fn check_tags(dir: &Path, tags: &[(String, Descriptor)]) -> Result<(), LayoutError> {
    let mut seen = HashSet::new();
    for (tag, _) in tags {
        validate_tag(tag).map_err(|source| LayoutError::InvalidTag {
            dir: dir.to_path_buf(),
            source,
        })?;
        if !seen.insert(tag.as_str()) {
            return Err(LayoutError::DuplicateTag {
                dir: dir.to_path_buf(),
                tag: tag.clone(),
            });
        }
    }
    Ok(())
}

/// The writing half of [`commit_group`], under the lock: moves the blobs of every staging
/// that passed its checks into the layout and writes the index once with all their tags.
/// A staging whose blobs cannot be moved fails alone (what it moved is only added blobs).
fn write_group(
    dir: &Path,
    items: &[GroupItem<'_, '_>],
    checked: &mut [Checked<'_>],
    existing: Option<Layout>,
) -> Result<(), LayoutError> {
    if checked
        .iter()
        .all(|c| c.as_ref().map_or(true, Vec::is_empty))
    {
        return Ok(());
    }
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(|e| io_err("cannot create", &blobs, e))?;
    // Staged blobs were written without an fsync each: one syncfs makes all of them durable
    // before any is renamed into the layout (and index.json names them). Every staging of a
    // layout is in its parent, so one file system holds them all.
    sync_fs(&items[0].0.blob_dir)?;
    for ((staging, _, _), result) in items.iter().zip(checked.iter_mut()) {
        if matches!(result, Ok(tags) if !tags.is_empty())
            && let Err(e) = staging.move_blobs(&blobs)
        {
            *result = Err(e);
        }
    }
    sync_dir(&blobs)?;

    // Each committed tag's entry, the last staging's where several commit one tag.
    let mut committed: HashMap<&str, &Descriptor> = HashMap::new();
    for (tag, descriptor) in checked.iter().flat_map(|c| c.iter().flatten()) {
        committed.insert(tag.as_str(), descriptor);
    }
    if committed.is_empty() {
        return Ok(());
    }
    let mut index = existing.map_or_else(ImageIndex::default, |layout| layout.index);
    let mut manifests: Vec<Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| ref_name(d).is_none_or(|t| !committed.contains_key(t)))
        .cloned()
        .collect();
    for (tag, descriptor) in committed {
        let mut entry = descriptor.clone();
        let mut annotations = entry.annotations().clone().unwrap_or_default();
        annotations.insert(ANNOTATION_REF_NAME.to_owned(), tag.to_owned());
        entry.set_annotations(Some(annotations));
        manifests.push(entry);
    }
    // Tagged entries by tag (stable, so several platforms of one tag keep their order),
    // untagged ones after them.
    manifests.sort_by(|a, b| match (ref_name(a), ref_name(b)) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    index.set_manifests(manifests);
    index.set_schema_version(2);
    index.set_media_type(Some(MediaType::ImageIndex));
    let bytes = canonical_json(&index).map_err(|source| LayoutError::Serialize {
        what: "index.json",
        source,
    })?;
    write_atomic(&dir.join(INDEX_FILE), &bytes)?;
    // The marker that makes the directory a layout comes last, once what it marks is whole:
    // a commit killed before it leaves what `existing_layout` knows as a first commit cut
    // short, never a layout without an index.
    if !dir.join(OCI_LAYOUT_FILE).exists() {
        let marker = canonical_json(&serde_json::json!({ "imageLayoutVersion": LAYOUT_VERSION }))
            .map_err(|source| LayoutError::Serialize {
            what: "oci-layout",
            source,
        })?;
        write_atomic(&dir.join(OCI_LAYOUT_FILE), &marker)?;
    }
    sync_dir(dir)
}

fn blob_path_in(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(digest.algorithm().as_ref())
        .join(digest.digest())
}

fn is_sha256_hex(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(crate) fn sha256_hex_of(digest: &Digest) -> Result<&str, LayoutError> {
    if *digest.algorithm() == DigestAlgorithm::Sha256 {
        Ok(digest.digest())
    } else {
        Err(LayoutError::UnsupportedDigest {
            digest: digest.to_string(),
        })
    }
}

fn sha256_digest(hex: &str) -> Result<Digest, LayoutError> {
    let text = format!("sha256:{hex}");
    Digest::from_str(&text).map_err(|_| LayoutError::UnsupportedDigest { digest: text })
}

/// Makes a finished temp file world-readable (temp files start 0600) and durable.
fn finish_file(file: &File, dest: &Path) -> Result<(), LayoutError> {
    share(file, dest)?;
    file.sync_all().map_err(|e| io_err("cannot write", dest, e))
}

/// Makes a finished temp file world-readable (temp files start 0600).
fn share(file: &File, dest: &Path) -> Result<(), LayoutError> {
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(|e| io_err("cannot write", dest, e))
}

/// Writes `bytes` to the staged blob `dest`, created under its own name (no temp file and
/// rename: the staging directory is this process's alone, and a file creation is the main
/// cost of staging thousands of small configs and manifests), without an fsync: the commit
/// syncs every staged blob at once ([`sync_fs`]) before moving any into the layout. A crash
/// before that leaves only the staging directory, which the next commit removes. Another
/// thread staging the same bytes first is no error; a failed write removes its file.
fn write_staged(dest: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let mut file = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(dest)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(io_err("cannot write", dest, e)),
    };
    // As for every blob: world-readable whatever the umask.
    let written = file
        .write_all(bytes)
        .map_err(|e| io_err("cannot write", dest, e))
        .and_then(|()| share(&file, dest));
    if written.is_err() {
        let _ = fs::remove_file(dest);
    }
    written
}

/// Whether `blobs` is a directory that holds only `sha256/` with files named as blobs or
/// temp files: what a layout's first commit puts there before its marker.
fn holds_only_blobs(blobs: &Path) -> bool {
    let only = |dir: &Path, ok: &dyn Fn(&fs::DirEntry) -> bool| {
        fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
            && fs::read_dir(dir)
                .is_ok_and(|mut entries| entries.all(|entry| entry.is_ok_and(|entry| ok(&entry))))
    };
    only(blobs, &|entry| {
        entry.file_name() == "sha256"
            && only(&entry.path(), &|blob| {
                let name = blob.file_name();
                let name = name.to_string_lossy();
                (is_sha256_hex(&name) || name.starts_with(TEMP_PREFIX))
                    && blob.file_type().is_ok_and(|t| t.is_file())
            })
    })
}

/// Flushes everything written to the file system holding `dir` (`syncfs`): one call for all
/// the blobs of a commit, where an fsync per file would wait for the disk once per blob.
fn sync_fs(dir: &Path) -> Result<(), LayoutError> {
    File::open(dir)
        .and_then(|d| rustix::fs::syncfs(&d).map_err(io::Error::from))
        .map_err(|e| io_err("cannot sync", dir, e))
}

/// Writes `bytes` to `dest` through a synced temp file in the same directory and a rename.
fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut temp = scratch::temp_file_in(dir, TEMP_PREFIX)
        .map_err(|e| io_err("cannot create a temp file in", dir, e))?;
    temp.write_all(bytes)
        .map_err(|e| io_err("cannot write", dest, e))?;
    finish_file(temp.as_file(), dest)?;
    temp.persist(dest)
        .map_err(|e| io_err("cannot write", dest, e.error))?;
    Ok(())
}

/// Renames `src` to `dest`, copying through a temp file when they are on different file
/// systems (a layout directory that is a symlink to another disk).
fn move_file(src: &Path, dest: &Path) -> Result<(), LayoutError> {
    match fs::rename(src, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            let dir = dest.parent().unwrap_or(Path::new("."));
            let mut temp = scratch::temp_file_in(dir, TEMP_PREFIX)
                .map_err(|e| io_err("cannot create a temp file in", dir, e))?;
            let mut input = File::open(src).map_err(|e| io_err("cannot read", src, e))?;
            io::copy(&mut input, temp.as_file_mut())
                .map_err(|e| io_err("cannot write", dest, e))?;
            finish_file(temp.as_file(), dest)?;
            temp.persist(dest)
                .map_err(|e| io_err("cannot write", dest, e.error))?;
            Ok(())
        }
        Err(e) => Err(io_err("cannot move a blob to", dest, e)),
    }
}

/// Renames `src` to `dest` unless `dest` exists (`AlreadyExists` then), in one syscall.
fn rename_noreplace(src: &Path, dest: &Path) -> io::Result<()> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        src,
        rustix::fs::CWD,
        dest,
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .map_err(io::Error::from)
}

fn sync_dir(dir: &Path) -> Result<(), LayoutError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("cannot sync", dir, e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use oci_spec::image::{ImageManifestBuilder, PlatformBuilder};
    use std::collections::HashMap;

    /// Stages an image of one layer `layer` (and an empty config); its manifest.
    pub(crate) fn manifest_with(staging: &Staging, layer: &[u8]) -> Descriptor {
        let config = staging
            .put_bytes(b"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}", MediaType::ImageConfig)
            .unwrap();
        let layer = staging.put_bytes(layer, MediaType::ImageLayer).unwrap();
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config)
            .layers(vec![layer])
            .build()
            .unwrap();
        staging
            .put_json(&manifest, MediaType::ImageManifest)
            .unwrap()
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let mut labels = HashMap::new();
        for key in ["zeta", "alpha", "mid", "beta", "omega"] {
            labels.insert(key.to_owned(), key.to_owned());
        }
        let value = serde_json::json!({"b": 1, "a": {"y": [ {"d": 1, "c": 2} ], "x": labels}});
        let text = String::from_utf8(canonical_json(&value).unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"a":{"x":{"alpha":"alpha","beta":"beta","mid":"mid","omega":"omega","zeta":"zeta"},"y":[{"c":2,"d":1}]},"b":1}"#
        );
    }

    #[test]
    fn put_json_digest_is_of_the_stored_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::new(&dir.path().join("layout")).unwrap();
        let descriptor = staging
            .put_json(&serde_json::json!({"k": "v"}), MediaType::ImageConfig)
            .unwrap();
        let stored = fs::read(
            staging
                .blob_dir()
                .join(descriptor.as_digest_sha256().unwrap()),
        )
        .unwrap();
        assert_eq!(stored, br#"{"k":"v"}"#);
        assert_eq!(descriptor.size(), stored.len() as u64);
        assert_eq!(
            descriptor.as_digest_sha256().unwrap(),
            hex::encode(Sha256::digest(&stored))
        );
    }

    #[test]
    fn commits_at_the_same_time_keep_every_tag() {
        let dir = tempfile::tempdir().unwrap();
        let layout_dir = dir.path().join("layout");
        std::thread::scope(|scope| {
            for i in 0..16 {
                let layout_dir = &layout_dir;
                scope.spawn(move || {
                    let staging = Staging::new(layout_dir).unwrap();
                    let manifest = manifest_with(&staging, format!("layer {i}").as_bytes());
                    staging.commit(&[(format!("s{i}"), manifest)]).unwrap();
                });
            }
        });
        let layout = Layout::open(&layout_dir).unwrap();
        for i in 0..16 {
            let (_, manifest) = layout.resolve(&format!("s{i}")).unwrap();
            assert_eq!(
                layout.read_blob(&manifest.layers()[0]).unwrap(),
                format!("layer {i}").as_bytes()
            );
        }
    }

    #[test]
    fn a_commit_removes_what_killed_commits_left_and_keeps_live_stagings() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let layout_dir = dir.path().join("layout");
        let first = Staging::new(&layout_dir).unwrap();
        let manifest = manifest_with(&first, b"one");
        first.commit(&[("one".to_owned(), manifest)]).unwrap();
        // What a SIGKILLed commit left (a pid past the kernel's limit is never alive): its
        // staging directory beside the layout, temp files in the layout and its blobs.
        let dead_staging = dir.path().join(".layout.staging-4194305.1.abcdefgh");
        fs::create_dir_all(dead_staging.join("blobs")).unwrap();
        fs::write(dead_staging.join("blobs").join("f"), "half a layer").unwrap();
        let dead_index = layout_dir.join(".tmp-4194305.1.ijklmnop");
        fs::write(&dead_index, "{").unwrap();
        let dead_blob = layout_dir.join("blobs/sha256/.tmp-4194305.1.qrstuvwx");
        fs::write(&dead_blob, "half").unwrap();
        // A build still staging for the same layout.
        let live = Staging::new(&layout_dir).unwrap();
        let live_dir = live.blob_dir().parent().unwrap().to_owned();

        let second = Staging::new(&layout_dir).unwrap();
        let manifest = manifest_with(&second, b"two");
        second.commit(&[("two".to_owned(), manifest)]).unwrap();
        for dead in [&dead_staging, &dead_index, &dead_blob] {
            assert!(!dead.exists(), "{} is removed", dead.display());
        }
        assert!(live_dir.exists(), "a live staging stays");
        assert_eq!(fs::metadata(&live_dir).unwrap().mode() & 0o777, 0o700);
        let manifest = manifest_with(&live, b"three");
        live.commit(&[("three".to_owned(), manifest)]).unwrap();
        let layout = Layout::open(&layout_dir).unwrap();
        for tag in ["one", "two", "three"] {
            layout.resolve(tag).unwrap();
        }
    }

    #[test]
    fn commit_creates_layout_and_resolve_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let layout_dir = dir.path().join("out").join("layout");
        let staging = Staging::new(&layout_dir).unwrap();
        let manifest = manifest_with(&staging, b"layer one");
        staging
            .commit(&[("v1".to_owned(), manifest.clone())])
            .unwrap();

        let layout = Layout::open(&layout_dir).unwrap();
        let (found, parsed) = layout.resolve("v1").unwrap();
        assert_eq!(found.digest(), manifest.digest());
        assert_eq!(parsed.layers().len(), 1);
        assert_eq!(layout.read_blob(&parsed.layers()[0]).unwrap(), b"layer one");
        assert!(layout.has_blob(parsed.config()));
        assert_eq!(
            fs::read_to_string(layout_dir.join("oci-layout")).unwrap(),
            r#"{"imageLayoutVersion":"1.0.0"}"#
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["layout"], "the staging directory is gone");
        let err = layout.resolve("v2").unwrap_err();
        assert!(
            matches!(&err, LayoutError::TagNotFound { available, .. } if available == &["v1"]),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("v2") && message.contains("v1") && message.contains("layout"),
            "{message}"
        );
    }

    #[test]
    fn a_first_commit_killed_before_its_marker_is_taken_up_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let layout_dir = dir.path().join("layout");
        let staging = Staging::new(&layout_dir).unwrap();
        let first = manifest_with(&staging, b"first");
        staging.commit(&[("a".to_owned(), first.clone())]).unwrap();
        // Killed after its index was written, before the marker: the tag it wrote stays.
        fs::remove_file(layout_dir.join(OCI_LAYOUT_FILE)).unwrap();
        fs::write(layout_dir.join(".tmp-killed"), b"half").unwrap();
        let staging = Staging::new(&layout_dir).unwrap();
        let second = manifest_with(&staging, b"second");
        staging.commit(&[("b".to_owned(), second.clone())]).unwrap();
        let layout = Layout::open(&layout_dir).unwrap();
        assert_eq!(layout.resolve("a").unwrap().0.digest(), first.digest());
        assert_eq!(layout.resolve("b").unwrap().0.digest(), second.digest());

        // Killed after its blobs moved in, before any index: a new layout.
        let other = dir.path().join("other");
        fs::create_dir_all(other.join("blobs/sha256")).unwrap();
        fs::write(other.join("blobs/sha256").join("1".repeat(64)), b"x").unwrap();
        let staging = Staging::new(&other).unwrap();
        let manifest = manifest_with(&staging, b"third");
        staging
            .commit(&[("c".to_owned(), manifest.clone())])
            .unwrap();
        let layout = Layout::open(&other).unwrap();
        assert_eq!(layout.tags().len(), 1);
        assert_eq!(layout.resolve("c").unwrap().0.digest(), manifest.digest());

        // Anything else beside them is not a commit of strata's: not a layout, untouched.
        let foreign = dir.path().join("foreign");
        fs::create_dir_all(foreign.join("blobs/sha256")).unwrap();
        fs::write(foreign.join("blobs/notes.txt"), b"mine").unwrap();
        let staging = Staging::new(&foreign).unwrap();
        let manifest = manifest_with(&staging, b"fourth");
        let err = staging.commit(&[("d".to_owned(), manifest)]).unwrap_err();
        assert!(matches!(err, LayoutError::NotALayout { .. }), "{err:?}");
        assert_eq!(fs::read(foreign.join("blobs/notes.txt")).unwrap(), b"mine");
        assert!(!foreign.join(INDEX_FILE).exists());
    }

    #[test]
    fn a_layer_put_absent_may_be_missing_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let layout_dir = dir.path().join("layout");
        let absent = Descriptor::new(
            MediaType::ImageLayerGzip,
            7,
            sha256_digest(&"a".repeat(64)).unwrap(),
        );
        let missing = Descriptor::new(
            MediaType::ImageLayerGzip,
            8,
            sha256_digest(&"b".repeat(64)).unwrap(),
        );
        let image = |staging: &Staging, layers: Vec<Descriptor>| {
            let config = staging.put_bytes(b"{}", MediaType::ImageConfig).unwrap();
            let manifest = ImageManifestBuilder::default()
                .schema_version(2u32)
                .config(config)
                .layers(layers)
                .build()
                .unwrap();
            staging
                .put_json(&manifest, MediaType::ImageManifest)
                .unwrap()
        };
        // The same digest of another size is not the blob put absent.
        let staging = Staging::new(&layout_dir).unwrap();
        staging.put_absent(&absent).unwrap();
        let other_size = Descriptor::new(MediaType::ImageLayerGzip, 9, absent.digest().clone());
        let manifest = image(&staging, vec![absent.clone(), other_size]);
        let err = staging.commit(&[("t".to_owned(), manifest)]).unwrap_err();
        assert!(matches!(err, LayoutError::MissingBlob { .. }), "{err:?}");

        let staging = Staging::new(&layout_dir).unwrap();
        staging.put_absent(&absent).unwrap();
        let manifest = image(&staging, vec![absent.clone(), missing]);
        let err = staging.commit(&[("t".to_owned(), manifest)]).unwrap_err();
        assert!(err.to_string().contains(&"b".repeat(64)), "{err}");

        let staging = Staging::new(&layout_dir).unwrap();
        staging.put_absent(&absent).unwrap();
        let manifest = image(&staging, vec![absent.clone()]);
        staging
            .commit(&[("t".to_owned(), manifest.clone())])
            .unwrap();
        let layout = Layout::open(&layout_dir).unwrap();
        assert_eq!(layout.resolve("t").unwrap().0.digest(), manifest.digest());
        assert!(!blob_path_in(&layout_dir, absent.digest()).exists());
    }

    #[test]
    fn commit_refuses_missing_blobs_and_non_layout_dirs_without_touching_anything() {
        let dir = tempfile::tempdir().unwrap();
        let layout_dir = dir.path().join("layout");
        let staging = Staging::new(&layout_dir).unwrap();
        let layer = staging.put_bytes(b"x", MediaType::ImageLayer).unwrap();
        let config = Descriptor::new(
            MediaType::ImageConfig,
            2,
            sha256_digest(&"0".repeat(64)).unwrap(),
        );
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .config(config)
            .layers(vec![layer])
            .build()
            .unwrap();
        let manifest = staging
            .put_json(&manifest, MediaType::ImageManifest)
            .unwrap();
        let err = staging.commit(&[("t".to_owned(), manifest)]).unwrap_err();
        assert!(matches!(err, LayoutError::MissingBlob { .. }), "{err:?}");
        assert!(err.to_string().contains(&"0".repeat(64)));
        assert!(!layout_dir.exists());

        fs::create_dir(&layout_dir).unwrap();
        fs::write(layout_dir.join("precious.txt"), b"mine").unwrap();
        let staging = Staging::new(&layout_dir).unwrap();
        let manifest = manifest_with(&staging, b"y");
        let err = staging.commit(&[("t".to_owned(), manifest)]).unwrap_err();
        assert!(
            matches!(
                err,
                LayoutError::NotALayout {
                    not_empty: true,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(fs::read_dir(&layout_dir).unwrap().count(), 1);

        let other = dir.path().join("other");
        for tags in [vec!["bad tag"], vec!["a", "a"]] {
            let staging = Staging::new(&other).unwrap();
            let manifest = manifest_with(&staging, b"z");
            let tags: Vec<_> = tags
                .iter()
                .map(|t| ((*t).to_owned(), manifest.clone()))
                .collect();
            let err = staging.commit(&tags).unwrap_err();
            assert!(
                matches!(
                    err,
                    LayoutError::InvalidTag { .. } | LayoutError::DuplicateTag { .. }
                ),
                "{err:?}"
            );
        }
        assert!(!dir.path().join("other").exists());
    }

    #[test]
    fn put_blob_file_verifies_and_skips_known_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("blob");
        fs::write(&src, b"layer bytes").unwrap();
        let good = Descriptor::new(
            MediaType::ImageLayer,
            11,
            sha256_digest(&hex::encode(Sha256::digest(b"layer bytes"))).unwrap(),
        );
        let staging = Staging::new(&dir.path().join("layout")).unwrap();
        staging.put_blob_file(&src, &good).unwrap();
        let staged = staging.blob_dir().join(good.as_digest_sha256().unwrap());
        assert_eq!(fs::read(&staged).unwrap(), b"layer bytes");

        let wrong_digest = Descriptor::new(
            MediaType::ImageLayer,
            11,
            sha256_digest(&"1".repeat(64)).unwrap(),
        );
        let err = staging.put_blob_file(&src, &wrong_digest).unwrap_err();
        assert!(matches!(err, LayoutError::DigestMismatch { .. }), "{err:?}");
        assert!(!staging.blob_dir().join("1".repeat(64)).exists());
        let wrong_size = Descriptor::new(
            MediaType::ImageLayer,
            12,
            sha256_digest(&"2".repeat(64)).unwrap(),
        );
        assert!(matches!(
            staging.put_blob_file(&src, &wrong_size),
            Err(LayoutError::SizeMismatch { .. })
        ));
    }

    /// A descriptor of `bytes` as a layer, and a file holding them.
    fn layer_file(dir: &Path, name: &str, bytes: &[u8]) -> (PathBuf, Descriptor) {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        let digest = sha256_digest(&hex::encode(Sha256::digest(bytes))).unwrap();
        (
            path,
            Descriptor::new(MediaType::ImageLayer, bytes.len() as u64, digest),
        )
    }

    fn manifest_of(staging: &Staging, layer: &Descriptor) -> Descriptor {
        let config = staging
            .put_bytes(
                b"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
                MediaType::ImageConfig,
            )
            .unwrap();
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config)
            .layers(vec![layer.clone()])
            .build()
            .unwrap();
        staging
            .put_json(&manifest, MediaType::ImageManifest)
            .unwrap()
    }

    #[test]
    fn a_good_layout_blob_is_kept_and_a_bad_one_replaced_only_by_a_commit() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let layout_dir = dir.path().join("layout");
        let (src, layer) = layer_file(dir.path(), "src", b"layer bytes");
        let staging = Staging::new(&layout_dir).unwrap();
        let manifest = manifest_of(&staging, &layer);
        staging.put_blob_file(&src, &layer).unwrap();
        staging.commit(&[("v1".to_owned(), manifest)]).unwrap();
        let in_layout = layout_dir
            .join("blobs/sha256")
            .join(layer.as_digest_sha256().unwrap());

        // A copy of the same bytes (another file system) is kept: it is good.
        fs::remove_file(&in_layout).unwrap();
        fs::write(&in_layout, b"layer bytes").unwrap();
        let kept = fs::metadata(&in_layout).unwrap().ino();
        let staging = Staging::new(&layout_dir).unwrap();
        let manifest = manifest_of(&staging, &layer);
        staging.put_blob_file(&src, &layer).unwrap();
        staging.commit(&[("v2".to_owned(), manifest)]).unwrap();
        assert_eq!(fs::metadata(&in_layout).unwrap().ino(), kept);

        // A bad copy of the right size is left alone until the commit, which replaces it.
        fs::remove_file(&in_layout).unwrap();
        fs::write(&in_layout, b"LAYER BYTES").unwrap();
        let staging = Staging::new(&layout_dir).unwrap();
        let manifest = manifest_of(&staging, &layer);
        staging.put_blob_file(&src, &layer).unwrap();
        assert_eq!(fs::read(&in_layout).unwrap(), b"LAYER BYTES");
        staging.commit(&[("v3".to_owned(), manifest)]).unwrap();
        assert_eq!(fs::read(&in_layout).unwrap(), b"layer bytes");
    }

    #[test]
    fn a_commit_never_points_a_tag_at_a_bad_layout_blob() {
        let dir = tempfile::tempdir().unwrap();
        let layout_dir = dir.path().join("layout");
        let (src, layer) = layer_file(dir.path(), "src", b"layer bytes");
        let staging = Staging::new(&layout_dir).unwrap();
        let manifest = manifest_of(&staging, &layer);
        staging.put_blob_file(&src, &layer).unwrap();
        staging.commit(&[("v1".to_owned(), manifest)]).unwrap();
        let in_layout = layout_dir
            .join("blobs/sha256")
            .join(layer.as_digest_sha256().unwrap());
        let index = fs::read(layout_dir.join("index.json")).unwrap();

        // Found good when staged, broken before the commit: the commit refuses.
        let staging = Staging::new(&layout_dir).unwrap();
        let manifest = manifest_of(&staging, &layer);
        staging.put_blob_file(&src, &layer).unwrap();
        fs::remove_file(&in_layout).unwrap();
        fs::write(&in_layout, b"LAYER BYTES").unwrap();
        let err = staging.commit(&[("v2".to_owned(), manifest)]).unwrap_err();
        assert!(matches!(err, LayoutError::DigestMismatch { .. }), "{err:?}");
        assert_eq!(fs::read(layout_dir.join("index.json")).unwrap(), index);
    }

    #[test]
    fn a_symlink_is_never_staged() {
        let dir = tempfile::tempdir().unwrap();
        let (src, layer) = layer_file(dir.path(), "src", b"layer bytes");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&src, &link).unwrap();
        let staging = Staging::new(&dir.path().join("layout")).unwrap();
        let err = staging.put_blob_file(&link, &layer).unwrap_err();
        assert!(matches!(err, LayoutError::NotAFile { .. }), "{err:?}");
        assert!(err.to_string().contains("link"), "{err}");
        assert_eq!(fs::read_dir(staging.blob_dir()).unwrap().count(), 0);
    }

    #[test]
    fn resolve_follows_a_nested_index_to_the_host_platform() {
        let dir = tempfile::tempdir().unwrap();
        let layout_dir = dir.path().join("layout");
        let staging = Staging::new(&layout_dir).unwrap();
        let mut children = Vec::new();
        for (arch, content) in [
            ("s390x", b"other".as_slice()),
            (host_arch().to_string().as_str(), b"mine".as_slice()),
        ] {
            let mut manifest = manifest_with(&staging, content);
            manifest.set_platform(Some(
                PlatformBuilder::default()
                    .os(Os::Linux)
                    .architecture(Arch::from(arch))
                    .build()
                    .unwrap(),
            ));
            children.push(manifest);
        }
        let mut index = ImageIndex::default();
        index.set_media_type(Some(MediaType::ImageIndex));
        index.set_manifests(children.clone());
        let index = staging.put_json(&index, MediaType::ImageIndex).unwrap();
        staging.commit(&[("multi".to_owned(), index)]).unwrap();

        let layout = Layout::open(&layout_dir).unwrap();
        let (found, manifest) = layout.resolve("multi").unwrap();
        assert_eq!(found.digest(), children[1].digest());
        assert_eq!(layout.read_blob(&manifest.layers()[0]).unwrap(), b"mine");
        let err = layout
            .resolve_for_platform("multi", &Os::Windows, &Arch::Amd64)
            .unwrap_err();
        assert!(
            matches!(err, LayoutError::NoMatchingPlatform { .. }),
            "{err}"
        );
    }

    #[test]
    fn read_blob_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let layout_dir = dir.path().join("layout");
        let staging = Staging::new(&layout_dir).unwrap();
        let manifest = manifest_with(&staging, b"content");
        staging
            .commit(&[("t".to_owned(), manifest.clone())])
            .unwrap();
        let layout = Layout::open(&layout_dir).unwrap();
        let path = layout.blob_path(manifest.digest());
        let mut bytes = fs::read(&path).unwrap();
        bytes[0] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            layout.resolve("t"),
            Err(LayoutError::DigestMismatch { .. })
        ));
        fs::remove_file(&path).unwrap();
        assert!(matches!(
            layout.resolve("t"),
            Err(LayoutError::MissingBlob { .. })
        ));
    }

    #[test]
    fn open_reports_missing_and_foreign_dirs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Layout::open(&dir.path().join("nope")),
            Err(LayoutError::Missing { .. })
        ));
        assert!(matches!(
            Layout::open(dir.path()),
            Err(LayoutError::NotALayout { .. })
        ));
        fs::write(
            dir.path().join("oci-layout"),
            br#"{"imageLayoutVersion":"2.0.0"}"#,
        )
        .unwrap();
        assert!(matches!(
            Layout::open(dir.path()),
            Err(LayoutError::UnsupportedVersion { .. })
        ));
    }
}
