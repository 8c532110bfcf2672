//! The files a buildpack leaves in its layers directory.
//!
//! After `bin/build`, a buildpack's `CNB_LAYERS_DIR` holds everything the rest of the build
//! needs from it: layer directories with their `<layer>.toml`, `launch.toml` (processes,
//! labels, slices), `build.toml` (unmet plan entries), `store.toml` and SBOM files.
//! [`read_layers_dir`] reads and validates all of it at once, right after the buildpack
//! exits, so that a mistake fails the build at the buildpack that made it, with the file (and
//! for TOML, the line) to look at, instead of surfacing later in the exporter.
//!
//! Where the spec leaves room, the reference lifecycle's behaviour decides:
//! - A layer is a `<layer>.toml`. A directory without one is left alone: the lifecycle reads
//!   its types as all false, so it is never exported, cached or put on the build env.
//! - A layer whose types are all false is read (its `.toml` must be valid), then set aside by
//!   [`set_aside_untyped`]: its directory is renamed to `<layer>.ignore`, as the lifecycle
//!   does, so later buildpacks cannot come to depend on it, and it leaves the list, so it
//!   belongs to no image, cache, store or env.
//! - `build`, `launch` and `store` name the buildpack's own metadata files, so directories with
//!   those names are rejected (the spec forbids them).
//! - Since Buildpack API 0.6 the types live in a `[types]` table; top-level `launch`, `build`
//!   or `cache` keys are rejected then, as the lifecycle does, and read as the types before.
//! - A `.toml` with `launch = true` but no directory is, in the lifecycle, a request to reuse
//!   the layer from the previous image: strata reuses the layer of the buildpack's previous
//!   run (its restore state, see [`crate::restore`]) given to [`read_layers_dir_reusing`].
//!   Without such a layer, and for any other type without a directory, it is an error rather
//!   than a silently missing layer.
//! - Process commands are arrays from API 0.9, where `direct` is no longer allowed; before,
//!   a command is one string and `direct` defaults to false. `working-dir` is ignored before
//!   API 0.8.
//! - An SBOM file whose layer has no `.toml` is ignored, as the lifecycle ignores it; one in a
//!   format the buildpack did not declare in `sbom-formats`, or in an unknown format, is an
//!   error.
//! - Unknown keys in these CNB files are ignored, so files written for newer APIs still read.
//!
//! Unlike the lifecycle, strata reads these files on the host without following symlinks:
//! a `.toml` or SBOM file that is a link, or is not a regular file, or is larger than strata
//! reads, is an error naming the buildpack and the file, and so is any such env file of a
//! layer (see [`crate::untrusted`]).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::untrusted::{self, METADATA_LIMIT, SBOM_LIMIT, UntrustedError};

/// A layer's `[types]`: where the layer goes.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct LayerTypes {
    /// Exported in the app image and on the launch env.
    pub launch: bool,
    /// Visible to later buildpacks and on their build env.
    pub build: bool,
    /// Kept for the next build.
    pub cache: bool,
}

impl LayerTypes {
    /// Whether any type is set (a layer with none is temporary).
    pub fn any(self) -> bool {
        self.launch || self.build || self.cache
    }
}

impl fmt::Display for LayerTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set: Vec<&str> = [
            ("launch", self.launch),
            ("build", self.build),
            ("cache", self.cache),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        if set.is_empty() {
            f.write_str("no type")
        } else {
            write!(f, "{} = true", set.join(", "))
        }
    }
}

/// One layer a buildpack declared with `<layer>.toml`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    /// The layer's name: its directory's and its `.toml`'s file name.
    pub name: String,
    /// `<layers_dir>/<name>`. Exists whenever any type is set; may not exist otherwise.
    pub dir: PathBuf,
    /// Its types.
    pub types: LayerTypes,
    /// Its `[metadata]`, free-form (empty when absent).
    pub metadata: toml::Table,
    /// The layer's tar in the store, once stored (the exporter uses it instead of tarring
    /// `dir` again).
    pub blob: Option<StoredBlob>,
}

/// A layer's tar, as stored: what a manifest needs of it and where it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredBlob {
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
    /// `sha256:` of the blob as stored.
    pub digest: String,
    /// The blob's size.
    pub size: u64,
    /// How the blob's tar is compressed.
    pub compression: Compression,
    /// The blob file.
    pub path: PathBuf,
}

/// How a layer blob is stored. A stored blob records it, so that a build asking for another
/// compression never takes the blob for its own.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// The tar itself (`application/vnd.oci.image.layer.v1.tar`), as the CNB lifecycle
    /// writes layers to a layout: digest and diffID are equal.
    #[default]
    None,
    /// gzip at a fixed level (`application/vnd.oci.image.layer.v1.tar+gzip`).
    Gzip,
    /// zstd at a fixed level (`application/vnd.oci.image.layer.v1.tar+zstd`).
    Zstd,
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// A compression name that is not `none`, `gzip` or `zstd`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown layer compression `{0}`: expected `none`, `gzip` or `zstd`")]
pub struct ParseCompressionError(pub String);

impl std::str::FromStr for Compression {
    type Err = ParseCompressionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            other => Err(ParseCompressionError(other.to_owned())),
        }
    }
}

/// One `[[processes]]` entry of `launch.toml`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Process {
    /// `type`: letters, digits, `.`, `-`, `_`.
    pub r#type: String,
    /// `command`: the executable and the arguments always passed to it. Never empty.
    pub command: Vec<String>,
    /// `args`: default arguments the user may override.
    pub args: Vec<String>,
    /// Whether the command runs without a shell: always true from Buildpack API 0.9, `direct`
    /// (default false) before.
    pub direct: bool,
    /// `default`: the buildpack's default process.
    pub default: bool,
    /// `working-dir`; `None` means the app directory.
    pub working_dir: Option<String>,
    /// `exec-env`: the execution environments the process is for; empty means all.
    pub exec_env: Vec<String>,
}

/// One `[[labels]]` entry of `launch.toml`: an image label.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Label {
    /// The label key.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// One `[[slices]]` entry of `launch.toml`: app paths (globs) that get their own layer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Slice {
    /// Globs relative to (or absolute within) the app directory.
    pub paths: Vec<String>,
}

/// A validated `launch.toml` (empty when the buildpack wrote none).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LaunchToml {
    /// `[[labels]]`, in file order.
    pub labels: Vec<Label>,
    /// `[[processes]]`, in file order; types are unique and at most one is the default.
    pub processes: Vec<Process>,
    /// `[[slices]]`, in file order.
    pub slices: Vec<Slice>,
}

/// What an SBOM file describes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SbomScope {
    /// `launch.sbom.<ext>.json`: the app image, apart from any layer.
    Launch,
    /// `build.sbom.<ext>.json`: the build environment, apart from any layer.
    Build,
    /// `<layer>.sbom.<ext>.json`: that layer.
    Layer(String),
}

/// An SBOM file a buildpack wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SbomFile {
    /// What it describes.
    pub scope: SbomScope,
    /// Its format: `cdx`, `spdx` or `syft`.
    pub ext: String,
    /// The file.
    pub path: PathBuf,
}

impl SbomFile {
    /// The file's media type.
    pub fn media_type(&self) -> Option<&'static str> {
        sbom_media_type(&self.ext)
    }
}

/// Everything one buildpack left in its layers directory, validated.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BuildpackLayers {
    /// Its layers (every `<layer>.toml`), sorted by name.
    pub layers: Vec<Layer>,
    /// Its `launch.toml`.
    pub launch: LaunchToml,
    /// `build.toml`'s `[[unmet]]` names, in file order.
    pub unmet: Vec<String>,
    /// `store.toml`'s `[metadata]`, if it wrote a `store.toml`.
    pub store: Option<toml::Table>,
    /// Its SBOM files, sorted by file name.
    pub sbom: Vec<SbomFile>,
}

/// The media type of the SBOM format with file extension `<ext>.json`: `cdx`, `spdx` or
/// `syft`.
pub fn sbom_media_type(ext: &str) -> Option<&'static str> {
    match ext {
        "cdx" => Some("application/vnd.cyclonedx+json"),
        "spdx" => Some("application/spdx+json"),
        "syft" => Some("application/vnd.syft+json"),
        _ => None,
    }
}

pub use strata_launcher::process_type::is_valid_process_type;

/// What is wrong with a buildpack's layers directory.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A file or directory could not be read.
    #[error("buildpack {buildpack}: cannot read {path}", path = path.display())]
    Io {
        buildpack: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A TOML file is malformed, or holds a value CNB does not allow. `span` is the byte range
    /// of the offending text in the file, `line` its 1-based line.
    #[error(
        "buildpack {buildpack}: {path}{at}: {message}",
        path = path.display(),
        at = line.map(|l| format!(" line {l}")).unwrap_or_default()
    )]
    Toml {
        buildpack: String,
        path: PathBuf,
        message: String,
        line: Option<usize>,
        span: Option<Range<usize>>,
    },
    /// A layer directory uses a name CNB reserves.
    #[error(
        "buildpack {buildpack}: layer `{layer}` at {path} uses a reserved name: `build`, `launch` \
         and `store` name the buildpack's metadata files",
        path = path.display()
    )]
    ReservedName {
        buildpack: String,
        layer: String,
        path: PathBuf,
    },
    /// A `.toml` names no layer (`.toml` itself).
    #[error("buildpack {buildpack}: {path} declares a layer with an empty name", path = path.display())]
    EmptyLayerName { buildpack: String, path: PathBuf },
    /// A layer's `.toml` sets a type but the buildpack left no directory for it.
    #[error(
        "buildpack {buildpack}: layer `{layer}` has {types} but no directory {path}; only a \
         launch layer of the buildpack's previous build can be reused without one, and there is \
         none of that name",
        path = path.display()
    )]
    MissingLayerDir {
        buildpack: String,
        layer: String,
        path: PathBuf,
        types: LayerTypes,
    },
    /// An SBOM file is in a format the buildpack did not declare in `sbom-formats`.
    #[error(
        "buildpack {buildpack}: SBOM file {path} is {media_type}, which buildpack.toml does not \
         declare in sbom-formats (declared: {declared_list})",
        path = path.display(),
        declared_list = if declared.is_empty() { "none".to_owned() } else { declared.join(", ") }
    )]
    UndeclaredSbom {
        buildpack: String,
        path: PathBuf,
        media_type: String,
        declared: Vec<String>,
    },
    /// An SBOM file's extension is no SBOM format CNB knows.
    #[error(
        "buildpack {buildpack}: SBOM file {path} has unknown format `{ext}` (CNB knows `cdx`, \
         `spdx` and `syft`)",
        path = path.display()
    )]
    UnknownSbomFormat {
        buildpack: String,
        path: PathBuf,
        ext: String,
    },
    /// An SBOM file is not JSON of the format its name says.
    #[error(
        "buildpack {buildpack}: SBOM file {path} of {owner} is not a valid `{ext}` SBOM: {reason}",
        path = path.display()
    )]
    InvalidSbom {
        buildpack: String,
        /// ``layer `<name>` ``, or the `launch`/`build` SBOM.
        owner: String,
        path: PathBuf,
        ext: String,
        reason: String,
    },
    /// The Buildpack API version does not parse.
    #[error("buildpack {buildpack}: Buildpack API `{api}` is not a version like `0.10`")]
    InvalidApi { buildpack: String, api: String },
    /// A metadata or SBOM file is a symlink, not a regular file, or too large.
    #[error("buildpack {buildpack}: {source}")]
    Untrusted {
        buildpack: String,
        #[source]
        source: UntrustedError,
    },
    /// A layer's env files are invalid, or symlinks.
    #[error("buildpack {buildpack}: layer `{layer}`: {source}")]
    Env {
        buildpack: String,
        layer: String,
        #[source]
        source: crate::env::EnvError,
    },
    /// A file name in the layers directory is not UTF-8.
    #[error("buildpack {buildpack}: the name of {path} is not UTF-8", path = path.display())]
    NonUtf8Name { buildpack: String, path: PathBuf },
}

impl LayerError {
    fn toml(
        buildpack: &str,
        path: &Path,
        text: &str,
        span: Option<Range<usize>>,
        message: String,
    ) -> Self {
        Self::Toml {
            buildpack: buildpack.to_owned(),
            path: path.to_owned(),
            message,
            line: span.as_ref().map(|s| line_of(text, s.start)),
            span,
        }
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].split(|&b| b == b'\n').count()
}

/// A Buildpack API version, `<major>.<minor>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Api(u64, u64);

impl Api {
    /// Parses `0.10`, `1`, or `v0.10`, as the lifecycle does.
    fn parse(text: &str) -> Option<Self> {
        let text = text.strip_prefix('v').unwrap_or(text);
        let (major, minor) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(major) || !(minor.is_empty() || digits(minor)) {
            return None;
        }
        let minor = if minor.is_empty() {
            0
        } else {
            minor.parse().ok()?
        };
        Some(Self(major.parse().ok()?, minor))
    }
}

/// What one read needs to know to report and to choose API-dependent rules.
struct Reader<'a> {
    dir: &'a Path,
    buildpack: &'a str,
    api: Api,
}

/// Reads and validates what a buildpack left in `layers_dir` after `bin/build`. `api` is its
/// Buildpack API, `sbom_formats` the media types its `buildpack.toml` declares. A missing
/// directory holds nothing.
///
/// # Errors
///
/// See [`LayerError`]: unreadable files, malformed or invalid TOML (a bad process type, a
/// duplicate process type, two default processes, an empty unmet name, layer types outside
/// `[types]`), reserved layer names, layers with a type but no directory, and SBOM files in
/// undeclared or unknown formats.
pub fn read_layers_dir(
    layers_dir: &Path,
    buildpack_id: &str,
    api: &str,
    sbom_formats: &[String],
) -> Result<BuildpackLayers, LayerError> {
    read_layers_dir_reusing(layers_dir, buildpack_id, api, sbom_formats, &[])
}

/// [`read_layers_dir`] after a restore: a `launch = true` layer the buildpack left without a
/// directory is the layer of the same name in `previous` (its last run's, with the stored
/// blob), reused as it was.
///
/// # Errors
/// As [`read_layers_dir`]; a layer without a directory that `previous` has no blob for is
/// [`LayerError::MissingLayerDir`].
pub fn read_layers_dir_reusing(
    layers_dir: &Path,
    buildpack_id: &str,
    api: &str,
    sbom_formats: &[String],
    previous: &[Layer],
) -> Result<BuildpackLayers, LayerError> {
    let api = Api::parse(api).ok_or_else(|| LayerError::InvalidApi {
        buildpack: buildpack_id.to_owned(),
        api: api.to_owned(),
    })?;
    let reader = Reader {
        dir: layers_dir,
        buildpack: buildpack_id,
        api,
    };
    let Some(listing) = reader.list()? else {
        return Ok(BuildpackLayers::default());
    };

    for reserved in ["build", "launch", "store"] {
        if listing.dirs.contains(reserved) {
            return Err(LayerError::ReservedName {
                buildpack: buildpack_id.to_owned(),
                layer: reserved.to_owned(),
                path: layers_dir.join(reserved),
            });
        }
    }

    let mut layers = Vec::new();
    for name in &listing.tomls {
        if matches!(name.as_str(), "build" | "launch" | "store") {
            continue;
        }
        let path = layers_dir.join(format!("{name}.toml"));
        if name.is_empty() {
            return Err(LayerError::EmptyLayerName {
                buildpack: buildpack_id.to_owned(),
                path,
            });
        }
        let (types, metadata) = reader.layer_toml(&path, &reader.read(&path)?)?;
        let dir = layers_dir.join(name);
        if listing.dirs.contains(name) {
            crate::env::check_env_files(&dir).map_err(|source| LayerError::Env {
                buildpack: buildpack_id.to_owned(),
                layer: name.clone(),
                source,
            })?;
        }
        let mut blob = None;
        if types.any() && !listing.dirs.contains(name) {
            let reused = previous
                .iter()
                .find(|p| &p.name == name)
                .and_then(|p| p.blob.clone())
                // Only where nothing is: a file of that name is no absent directory.
                .filter(|_| types.launch && fs::symlink_metadata(&dir).is_err());
            let Some(reused) = reused else {
                return Err(LayerError::MissingLayerDir {
                    buildpack: buildpack_id.to_owned(),
                    layer: name.clone(),
                    path: dir,
                    types,
                });
            };
            blob = Some(reused);
        }
        layers.push(Layer {
            name: name.clone(),
            dir,
            types,
            metadata,
            blob,
        });
    }

    let metadata_file = |name: &str| -> Result<Option<MetadataToml>, LayerError> {
        if !listing.tomls.contains(name) {
            return Ok(None);
        }
        let path = layers_dir.join(format!("{name}.toml"));
        reader.metadata_toml(&path, &reader.read(&path)?).map(Some)
    };
    let launch = match metadata_file("launch")? {
        Some(MetadataToml::Launch(launch)) => launch,
        _ => LaunchToml::default(),
    };
    let unmet = match metadata_file("build")? {
        Some(MetadataToml::Build(unmet)) => unmet,
        _ => Vec::new(),
    };
    let store = match metadata_file("store")? {
        Some(MetadataToml::Store(store)) => Some(store),
        _ => None,
    };
    let layer_names: BTreeSet<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    let sbom = reader.sbom_files(&listing.sboms, &layer_names, sbom_formats)?;

    Ok(BuildpackLayers {
        layers,
        launch,
        unmet,
        store,
        sbom,
    })
}

/// Sets aside the layers of `layers` whose types are all false, as the lifecycle does after
/// `bin/build`: each one's directory (if any) is renamed to `<layer>.ignore`, and the layer and
/// its SBOM files leave `layers`. Nothing after the buildpack sees them: not later buildpacks,
/// the store, or the image.
///
/// # Errors
/// [`LayerError::Io`] when a directory cannot be renamed (`<layer>.ignore` is a non-empty
/// directory already, say).
pub fn set_aside_untyped(
    layers: &mut BuildpackLayers,
    buildpack_id: &str,
) -> Result<(), LayerError> {
    let mut untyped = BTreeSet::new();
    for layer in layers.layers.iter().filter(|l| !l.types.any()) {
        let mut ignored = layer.dir.clone().into_os_string();
        ignored.push(".ignore");
        // Never onto something the buildpack made (an empty directory would be replaced).
        if fs::symlink_metadata(&ignored).is_ok() {
            return Err(LayerError::Io {
                buildpack: buildpack_id.to_owned(),
                path: PathBuf::from(ignored),
                source: io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "layer `{}` has no types, and the name it is set aside under is taken",
                        layer.name
                    ),
                ),
            });
        }
        match fs::rename(&layer.dir, &ignored) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(LayerError::Io {
                    buildpack: buildpack_id.to_owned(),
                    path: layer.dir.clone(),
                    source,
                });
            }
        }
        untyped.insert(layer.name.clone());
    }
    layers.layers.retain(|l| !untyped.contains(&l.name));
    layers
        .sbom
        .retain(|f| !matches!(&f.scope, SbomScope::Layer(name) if untyped.contains(name)));
    Ok(())
}

/// One of the TOML files a buildpack leaves in its layers directory, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataToml {
    /// `<layer>.toml`: the layer's types and `[metadata]`.
    Layer(LayerTypes, toml::Table),
    /// `launch.toml`.
    Launch(LaunchToml),
    /// `build.toml`: the names of its `[[unmet]]` entries.
    Build(Vec<String>),
    /// `store.toml`: its `[metadata]`.
    Store(toml::Table),
}

/// Parses and validates `text`, the contents of the metadata file `path` that buildpack
/// `buildpack_id` (of Buildpack API `api`) wrote: `launch.toml`, `build.toml` or
/// `store.toml` by its name, else a `<layer>.toml`. [`read_layers_dir`] reads each file
/// this way.
///
/// # Errors
/// [`LayerError::InvalidApi`], or [`LayerError::Toml`] for malformed or invalid TOML.
pub fn parse_metadata_toml(
    path: &Path,
    text: &str,
    buildpack_id: &str,
    api: &str,
) -> Result<MetadataToml, LayerError> {
    let api = Api::parse(api).ok_or_else(|| LayerError::InvalidApi {
        buildpack: buildpack_id.to_owned(),
        api: api.to_owned(),
    })?;
    let reader = Reader {
        dir: path.parent().unwrap_or(Path::new("")),
        buildpack: buildpack_id,
        api,
    };
    reader.metadata_toml(path, text)
}

/// The top level of a layers directory, names sorted.
struct Listing {
    /// Real directories (not symlinks).
    dirs: BTreeSet<String>,
    /// Files `<name>.toml`, as `<name>`.
    tomls: BTreeSet<String>,
    /// Files named `*.sbom.*.json`.
    sboms: BTreeSet<String>,
}

#[derive(Deserialize)]
struct RawLayerToml {
    types: Option<RawTypes>,
    #[serde(default)]
    metadata: toml::Table,
    launch: Option<Spanned<toml::Value>>,
    build: Option<Spanned<toml::Value>>,
    cache: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
struct RawTypes {
    #[serde(default)]
    launch: bool,
    #[serde(default)]
    build: bool,
    #[serde(default)]
    cache: bool,
}

#[derive(Deserialize)]
struct RawLaunchToml {
    #[serde(default)]
    labels: Vec<RawLabel>,
    #[serde(default)]
    processes: Vec<RawProcess>,
    #[serde(default)]
    slices: Vec<RawSlice>,
}

#[derive(Deserialize)]
struct RawLabel {
    key: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawProcess {
    r#type: Spanned<String>,
    command: Spanned<toml::Value>,
    #[serde(default)]
    args: Vec<String>,
    direct: Option<Spanned<bool>>,
    default: Option<Spanned<bool>>,
    working_dir: Option<String>,
    #[serde(default)]
    exec_env: Vec<String>,
}

#[derive(Deserialize)]
struct RawSlice {
    #[serde(default)]
    paths: Vec<String>,
}

#[derive(Deserialize)]
struct RawBuildToml {
    #[serde(default)]
    unmet: Vec<RawUnmet>,
}

#[derive(Deserialize)]
struct RawUnmet {
    name: Spanned<String>,
}

#[derive(Deserialize)]
struct RawStoreToml {
    #[serde(default)]
    metadata: toml::Table,
}

impl Reader<'_> {
    fn io(&self, path: &Path) -> impl FnOnce(io::Error) -> LayerError + '_ {
        let path = path.to_owned();
        move |source| LayerError::Io {
            buildpack: self.buildpack.to_owned(),
            path,
            source,
        }
    }

    fn untrusted(&self, source: UntrustedError) -> LayerError {
        LayerError::Untrusted {
            buildpack: self.buildpack.to_owned(),
            source,
        }
    }

    fn list(&self) -> Result<Option<Listing>, LayerError> {
        let entries = match fs::read_dir(self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(self.dir)(e)),
        };
        let mut listing = Listing {
            dirs: BTreeSet::new(),
            tomls: BTreeSet::new(),
            sboms: BTreeSet::new(),
        };
        for entry in entries {
            let entry = entry.map_err(self.io(self.dir))?;
            let path = entry.path();
            let Ok(name) = entry.file_name().into_string() else {
                return Err(LayerError::NonUtf8Name {
                    buildpack: self.buildpack.to_owned(),
                    path,
                });
            };
            let file_type = entry.file_type().map_err(self.io(&path))?;
            if file_type.is_dir() {
                listing.dirs.insert(name);
                continue;
            }
            let toml_stem = name.strip_suffix(".toml");
            let is_sbom = sbom_parts(&name).is_some();
            if toml_stem.is_none() && !is_sbom {
                continue;
            }
            // Never followed: a link would make strata read a host file for the buildpack.
            if file_type.is_symlink() {
                return Err(self.untrusted(UntrustedError::Symlink { path }));
            }
            if !file_type.is_file() {
                return Err(self.untrusted(UntrustedError::NotAFile { path }));
            }
            match toml_stem {
                Some(stem) => listing.tomls.insert(stem.to_owned()),
                None => listing.sboms.insert(name),
            };
        }
        Ok(Some(listing))
    }

    /// An invalid value at `span` of `path`.
    fn invalid(
        &self,
        path: &Path,
        text: &str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> LayerError {
        LayerError::toml(self.buildpack, path, text, Some(span), message.into())
    }

    /// The text of the metadata file `path`: never through a link, never more than
    /// [`METADATA_LIMIT`].
    fn read(&self, path: &Path) -> Result<String, LayerError> {
        untrusted::read_to_string(path, METADATA_LIMIT).map_err(|e| self.untrusted(e))
    }

    /// Parses `text` of `path` as the metadata file its name says.
    fn metadata_toml(&self, path: &Path, text: &str) -> Result<MetadataToml, LayerError> {
        Ok(match path.file_name().and_then(|n| n.to_str()) {
            Some("launch.toml") => MetadataToml::Launch(self.launch_toml(path, text)?),
            Some("build.toml") => MetadataToml::Build(self.build_toml(path, text)?),
            Some("store.toml") => MetadataToml::Store(self.store_toml(path, text)?),
            _ => {
                let (types, metadata) = self.layer_toml(path, text)?;
                MetadataToml::Layer(types, metadata)
            }
        })
    }

    /// Deserializes `text` of `path`, reporting TOML errors with their line.
    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        path: &Path,
        text: &str,
    ) -> Result<T, LayerError> {
        toml::from_str(text).map_err(|e| {
            LayerError::toml(self.buildpack, path, text, e.span(), e.message().to_owned())
        })
    }

    fn layer_toml(&self, path: &Path, text: &str) -> Result<(LayerTypes, toml::Table), LayerError> {
        let raw: RawLayerToml = self.parse(path, text)?;
        let top_level = [
            ("launch", &raw.launch),
            ("build", &raw.build),
            ("cache", &raw.cache),
        ];
        let types = if self.api < Api(0, 6) {
            let mut types = [false; 3];
            for ((key, value), slot) in top_level.into_iter().zip(&mut types) {
                match value.as_ref().map(|v| (v.get_ref().as_bool(), v.span())) {
                    None => {}
                    Some((Some(on), _)) => *slot = on,
                    Some((None, span)) => {
                        let message = format!("`{key}` must be a boolean");
                        return Err(self.invalid(path, text, span, message));
                    }
                }
            }
            let [launch, build, cache] = types;
            LayerTypes {
                launch,
                build,
                cache,
            }
        } else {
            if let Some((key, value)) = top_level
                .iter()
                .find_map(|(k, v)| v.as_ref().map(|v| (k, v)))
            {
                let message = format!(
                    "`{key}` belongs in the [types] table (top-level layer types are Buildpack API \
                     before 0.6)"
                );
                return Err(self.invalid(path, text, value.span(), message));
            }
            raw.types.map_or_else(LayerTypes::default, |t| LayerTypes {
                launch: t.launch,
                build: t.build,
                cache: t.cache,
            })
        };
        Ok((types, raw.metadata))
    }

    fn launch_toml(&self, path: &Path, text: &str) -> Result<LaunchToml, LayerError> {
        let raw: RawLaunchToml = self.parse(path, text)?;
        let error = |span, message: String| self.invalid(path, text, span, message);
        let mut types: HashMap<&str, Range<usize>> = HashMap::new();
        let mut default_process: Option<&str> = None;
        let mut processes = Vec::with_capacity(raw.processes.len());
        for p in &raw.processes {
            let ty = p.r#type.get_ref().as_str();
            if !is_valid_process_type(ty) {
                return Err(error(
                    p.r#type.span(),
                    format!(
                        "process type `{ty}` is invalid: use letters, digits, `.`, `-` and `_` \
                         (and not `.` or `..` alone)"
                    ),
                ));
            }
            if let Some(first) = types.insert(ty, p.r#type.span()) {
                return Err(error(
                    p.r#type.span(),
                    format!(
                        "process type `{ty}` is defined twice (first on line {})",
                        line_of(text, first.start)
                    ),
                ));
            }
            let default = p.default.as_ref().is_some_and(|d| *d.get_ref());
            if default {
                if let (Some(first), Some(span)) =
                    (default_process, p.default.as_ref().map(Spanned::span))
                {
                    return Err(error(
                        span,
                        format!(
                            "processes `{first}` and `{ty}` are both default; at most one may be"
                        ),
                    ));
                }
                default_process = Some(ty);
            }
            let (command, direct) = self.command(p, &error)?;
            processes.push(Process {
                r#type: ty.to_owned(),
                command,
                args: p.args.clone(),
                direct,
                default,
                working_dir: if self.api >= Api(0, 8) {
                    p.working_dir.clone()
                } else {
                    None
                },
                exec_env: p.exec_env.clone(),
            });
        }
        Ok(LaunchToml {
            labels: raw
                .labels
                .into_iter()
                .map(|l| Label {
                    key: l.key,
                    value: l.value,
                })
                .collect(),
            processes,
            slices: raw
                .slices
                .into_iter()
                .map(|s| Slice { paths: s.paths })
                .collect(),
        })
    }

    /// A process's command and whether it runs directly, by the rules of the buildpack's API.
    fn command(
        &self,
        p: &RawProcess,
        error: &impl Fn(Range<usize>, String) -> LayerError,
    ) -> Result<(Vec<String>, bool), LayerError> {
        let span = p.command.span();
        let (command, direct) = if self.api >= Api(0, 9) {
            if let Some(direct) = &p.direct {
                return Err(error(
                    direct.span(),
                    "`direct` is not allowed from Buildpack API 0.9: commands are arrays and \
                     always run directly"
                        .to_owned(),
                ));
            }
            let command = p.command.get_ref().as_array().and_then(|items| {
                items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect()
            });
            let Some(command) = command else {
                let message = "`command` must be an array of strings from Buildpack API 0.9";
                return Err(error(span, message.to_owned()));
            };
            (command, true)
        } else {
            let Some(command) = p.command.get_ref().as_str() else {
                let message = "`command` must be a string before Buildpack API 0.9";
                return Err(error(span, message.to_owned()));
            };
            let direct = p.direct.as_ref().is_some_and(|d| *d.get_ref());
            (vec![command.to_owned()], direct)
        };
        if command.first().is_none_or(String::is_empty) {
            return Err(error(span, "`command` must name an executable".to_owned()));
        }
        Ok((command, direct))
    }

    fn build_toml(&self, path: &Path, text: &str) -> Result<Vec<String>, LayerError> {
        let raw: RawBuildToml = self.parse(path, text)?;
        raw.unmet
            .into_iter()
            .map(|u| {
                let span = u.name.span();
                let name = u.name.into_inner();
                if name.is_empty() {
                    Err(self.invalid(path, text, span, "`unmet.name` must not be empty"))
                } else {
                    Ok(name)
                }
            })
            .collect()
    }

    fn store_toml(&self, path: &Path, text: &str) -> Result<toml::Table, LayerError> {
        let raw: RawStoreToml = self.parse(path, text)?;
        Ok(raw.metadata)
    }

    fn sbom_files(
        &self,
        files: &BTreeSet<String>,
        layers: &BTreeSet<&str>,
        declared: &[String],
    ) -> Result<Vec<SbomFile>, LayerError> {
        let declared_types: BTreeSet<String> =
            declared.iter().map(|d| media_type_essence(d)).collect();
        let mut sbom = Vec::new();
        for file in files {
            let Some((owner, ext)) = sbom_parts(file) else {
                continue;
            };
            let scope = match owner {
                "launch" => SbomScope::Launch,
                "build" => SbomScope::Build,
                layer if layers.contains(layer) => SbomScope::Layer(layer.to_owned()),
                // No such layer: the lifecycle skips these files.
                _ => continue,
            };
            let path = self.dir.join(file);
            let Some(media_type) = sbom_media_type(ext) else {
                return Err(LayerError::UnknownSbomFormat {
                    buildpack: self.buildpack.to_owned(),
                    path,
                    ext: ext.to_owned(),
                });
            };
            if !declared_types.contains(media_type) {
                return Err(LayerError::UndeclaredSbom {
                    buildpack: self.buildpack.to_owned(),
                    path,
                    media_type: media_type.to_owned(),
                    declared: declared.to_vec(),
                });
            }
            // Opened as it will be read, so that a file too big to take fails here.
            let size = untrusted::open(&path)
                .and_then(|f| {
                    f.metadata().map_err(|source| UntrustedError::Io {
                        path: path.clone(),
                        source,
                    })
                })
                .map_err(|e| self.untrusted(e))?
                .len();
            if size > SBOM_LIMIT {
                return Err(self.untrusted(UntrustedError::TooLarge {
                    path,
                    limit: SBOM_LIMIT,
                }));
            }
            let bytes = untrusted::read(&path, SBOM_LIMIT).map_err(|e| self.untrusted(e))?;
            if let Err(reason) = crate::sbomshape::check(ext, &bytes) {
                return Err(LayerError::InvalidSbom {
                    buildpack: self.buildpack.to_owned(),
                    owner: match &scope {
                        SbomScope::Layer(name) => format!("layer `{name}`"),
                        SbomScope::Launch => "the launch SBOM".to_owned(),
                        SbomScope::Build => "the build SBOM".to_owned(),
                    },
                    path,
                    ext: ext.to_owned(),
                    reason,
                });
            }
            sbom.push(SbomFile {
                scope,
                ext: ext.to_owned(),
                path,
            });
        }
        Ok(sbom)
    }
}

/// Splits `<owner>.sbom.<ext>.json` into owner and ext. The last `.sbom.` separates them, so a
/// layer name may itself contain dots.
fn sbom_parts(file: &str) -> Option<(&str, &str)> {
    let stem = file.strip_suffix(".json")?;
    let at = stem.rfind(".sbom.")?;
    Some((&stem[..at], &stem[at + ".sbom.".len()..]))
}

/// A media type without parameters, lowercased: `application/spdx+json; version=2.3` is
/// `application/spdx+json`.
fn media_type_essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BP: &str = "examples/node";

    fn write(root: &Path, rel: &str, content: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn all_formats() -> Vec<String> {
        ["cdx", "spdx", "syft"]
            .iter()
            .map(|e| sbom_media_type(e).unwrap().to_owned())
            .collect()
    }

    fn read(dir: &Path, api: &str) -> Result<BuildpackLayers, LayerError> {
        read_layers_dir(dir, BP, api, &all_formats())
    }

    /// Writes `launch.toml` and reads the directory with `api`.
    fn launch(api: &str, text: &str) -> Result<LaunchToml, LayerError> {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "launch.toml", text);
        read(dir.path(), api).map(|l| l.launch)
    }

    /// The message and line of a TOML error, or a panic naming what came instead.
    fn toml_error(result: Result<impl fmt::Debug, LayerError>) -> (String, Option<usize>) {
        match result {
            Err(LayerError::Toml {
                message,
                line,
                buildpack,
                ..
            }) => {
                assert_eq!(buildpack, BP);
                (message, line)
            }
            other => panic!("expected a TOML error, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_layers_dir_holds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            read(&dir.path().join("none"), "0.10").unwrap(),
            BuildpackLayers::default()
        );
    }

    #[test]
    fn reads_everything_a_buildpack_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "runtime.toml",
            "[types]\nlaunch = true\nbuild = true\n[metadata]\nversion = \"22\"\n",
        );
        write(d, "runtime/bin/node", "");
        write(d, "deps.toml", "[types]\ncache = true\n");
        fs::create_dir(d.join("deps")).unwrap();
        write(d, "scratch.toml", "[metadata]\nnote = \"temporary\"\n");
        fs::create_dir(d.join("no-toml")).unwrap();
        write(
            d,
            "launch.toml",
            r#"
[[labels]]
key = "org.example.runtime"
value = "node"

[[processes]]
type = "web"
command = ["node", "server.js"]
args = ["--port", "8080"]
default = true
working-dir = "/workspace/app"
exec-env = ["production"]

[[processes]]
type = "worker"
command = ["node"]

[[slices]]
paths = ["public/*"]

[[slices]]
"#,
        );
        write(d, "build.toml", "[[unmet]]\nname = \"yarn\"\n");
        write(d, "store.toml", "[metadata]\nruns = 3\n");
        write(
            d,
            "launch.sbom.cdx.json",
            r#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#,
        );
        write(
            d,
            "build.sbom.spdx.json",
            r#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT"}"#,
        );
        write(d, "runtime.sbom.syft.json", r#"{"artifacts":[]}"#);
        write(
            d,
            "gone.sbom.cdx.json",
            r#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#,
        );

        let got = read(d, "0.10").unwrap();

        let names: Vec<_> = got.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["deps", "runtime", "scratch"]);
        let runtime = &got.layers[1];
        assert_eq!(runtime.dir, d.join("runtime"));
        assert_eq!(
            runtime.types,
            LayerTypes {
                launch: true,
                build: true,
                cache: false
            }
        );
        assert_eq!(
            runtime.metadata.get("version").and_then(|v| v.as_str()),
            Some("22")
        );
        assert_eq!(
            got.layers[0].types,
            LayerTypes {
                launch: false,
                build: false,
                cache: true
            }
        );
        assert_eq!(got.layers[2].types, LayerTypes::default());
        assert!(!got.layers[2].types.any());

        assert_eq!(
            got.launch.labels,
            [Label {
                key: "org.example.runtime".into(),
                value: "node".into()
            }]
        );
        assert_eq!(
            got.launch.processes,
            [
                Process {
                    r#type: "web".into(),
                    command: vec!["node".into(), "server.js".into()],
                    args: vec!["--port".into(), "8080".into()],
                    direct: true,
                    default: true,
                    working_dir: Some("/workspace/app".into()),
                    exec_env: vec!["production".into()],
                },
                Process {
                    r#type: "worker".into(),
                    command: vec!["node".into()],
                    args: vec![],
                    direct: true,
                    default: false,
                    working_dir: None,
                    exec_env: vec![],
                },
            ]
        );
        assert_eq!(
            got.launch.slices,
            [
                Slice {
                    paths: vec!["public/*".into()]
                },
                Slice { paths: vec![] }
            ]
        );
        assert_eq!(got.unmet, ["yarn"]);
        assert_eq!(
            got.store
                .unwrap()
                .get("runs")
                .and_then(toml::Value::as_integer),
            Some(3)
        );
        assert_eq!(
            got.sbom,
            [
                SbomFile {
                    scope: SbomScope::Build,
                    ext: "spdx".into(),
                    path: d.join("build.sbom.spdx.json")
                },
                SbomFile {
                    scope: SbomScope::Launch,
                    ext: "cdx".into(),
                    path: d.join("launch.sbom.cdx.json")
                },
                SbomFile {
                    scope: SbomScope::Layer("runtime".into()),
                    ext: "syft".into(),
                    path: d.join("runtime.sbom.syft.json")
                },
            ]
        );
        assert_eq!(got.sbom[2].media_type(), Some("application/vnd.syft+json"));
    }

    #[test]
    fn metadata_files_alone_are_no_layers() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "launch.toml", "");
        write(dir.path(), "build.toml", "");
        write(dir.path(), "store.toml", "");
        let got = read(dir.path(), "0.10").unwrap();
        assert_eq!(got.layers, []);
        assert_eq!(got.store, Some(toml::Table::new()));
        assert_eq!(got.launch, LaunchToml::default());
        assert_eq!(got.unmet, Vec::<String>::new());
    }

    #[test]
    fn a_layer_without_types_has_all_types_false() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "plain.toml", "");
        fs::create_dir(dir.path().join("plain")).unwrap();
        let got = read(dir.path(), "0.10").unwrap();
        assert_eq!(got.layers[0].types, LayerTypes::default());
        assert_eq!(got.layers[0].metadata, toml::Table::new());
    }

    #[test]
    fn untyped_layers_are_renamed_away_and_leave_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "tmp.toml",
            "[types]\nlaunch = false\n[metadata]\nx = 1\n",
        );
        write(d, "tmp/file", "scratch");
        write(
            d,
            "tmp.sbom.cdx.json",
            r#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#,
        );
        write(d, "gone.toml", "");
        write(d, "kept.toml", "[types]\ncache = true\n");
        write(d, "kept/file", "cached");
        let mut got = read(d, "0.10").unwrap();
        assert_eq!(got.layers.len(), 3);
        set_aside_untyped(&mut got, "test/bp").unwrap();
        let names: Vec<&str> = got.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["kept"]);
        assert!(got.sbom.is_empty(), "{:?}", got.sbom);
        assert!(!d.join("tmp").exists());
        assert_eq!(
            fs::read_to_string(d.join("tmp.ignore/file")).unwrap(),
            "scratch"
        );
        assert!(d.join("kept/file").is_file());

        // The name it would be set aside under is taken: an error, nothing is replaced.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "tmp.toml", "");
        write(d, "tmp/file", "scratch");
        write(d, "tmp.ignore.toml", "[types]\nlaunch = true\n");
        fs::create_dir(d.join("tmp.ignore")).unwrap();
        let mut got = read(d, "0.10").unwrap();
        let err = set_aside_untyped(&mut got, "test/bp").unwrap_err();
        assert!(matches!(err, LayerError::Io { .. }), "{err}");
        assert!(d.join("tmp/file").is_file());
    }

    #[test]
    fn reserved_layer_names_are_rejected() {
        for name in ["build", "launch", "store"] {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir(dir.path().join(name)).unwrap();
            let err = read(dir.path(), "0.10").unwrap_err();
            match &err {
                LayerError::ReservedName {
                    buildpack,
                    layer,
                    path,
                } => {
                    assert_eq!((buildpack.as_str(), layer.as_str()), (BP, name));
                    assert_eq!(path, &dir.path().join(name));
                }
                other => panic!("{other:?}"),
            }
            assert!(err.to_string().contains(BP), "{err}");

            write(
                dir.path(),
                &format!("{name}.toml"),
                "[types]\nlaunch = true\n",
            );
            assert!(matches!(
                read(dir.path(), "0.10"),
                Err(LayerError::ReservedName { .. })
            ));
        }
    }

    #[test]
    fn a_typed_layer_needs_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "reused.toml",
            "[types]\nlaunch = true\ncache = true\n",
        );
        let err = read(dir.path(), "0.10").unwrap_err();
        match &err {
            LayerError::MissingLayerDir {
                buildpack,
                layer,
                types,
                ..
            } => {
                assert_eq!((buildpack.as_str(), layer.as_str()), (BP, "reused"));
                assert_eq!(
                    *types,
                    LayerTypes {
                        launch: true,
                        build: false,
                        cache: true
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains("`reused`") && message.contains("launch, cache = true"),
            "{message}"
        );

        // A file is no directory either.
        write(dir.path(), "reused", "");
        assert!(matches!(
            read(dir.path(), "0.10"),
            Err(LayerError::MissingLayerDir { .. })
        ));
    }

    #[test]
    fn a_launch_layer_without_its_directory_reuses_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let blob = StoredBlob {
            diff_id: format!("sha256:{}", "1".repeat(64)),
            digest: format!("sha256:{}", "2".repeat(64)),
            size: 3,
            compression: Compression::Gzip,
            path: PathBuf::from("/store/blob"),
        };
        let previous = |name: &str| Layer {
            name: name.to_owned(),
            dir: PathBuf::from("/old"),
            types: LayerTypes {
                launch: true,
                build: false,
                cache: false,
            },
            metadata: toml::Table::new(),
            blob: Some(blob.clone()),
        };
        let reading = |previous: &[Layer]| {
            read_layers_dir_reusing(dir.path(), BP, "0.10", &all_formats(), previous)
        };
        write(
            dir.path(),
            "runtime.toml",
            "[types]\nlaunch = true\n[metadata]\nv = 2\n",
        );
        let layers = reading(&[previous("runtime")]).unwrap().layers;
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0].blob.as_ref(), Some(&blob));
        assert_eq!(layers[0].dir, dir.path().join("runtime"));
        assert_eq!(layers[0].metadata["v"].as_integer(), Some(2));

        // No previous layer of that name, or not a launch layer now: still an error.
        for previous in [vec![], vec![previous("other")]] {
            assert!(matches!(
                reading(&previous),
                Err(LayerError::MissingLayerDir { .. })
            ));
        }
        write(dir.path(), "runtime.toml", "[types]\ncache = true\n");
        assert!(matches!(
            reading(&[previous("runtime")]),
            Err(LayerError::MissingLayerDir { .. })
        ));
        // A file where the directory would be is no absent directory.
        write(dir.path(), "runtime.toml", "[types]\nlaunch = true\n");
        write(dir.path(), "runtime", "");
        assert!(matches!(
            reading(&[previous("runtime")]),
            Err(LayerError::MissingLayerDir { .. })
        ));
    }

    #[test]
    fn malformed_toml_reports_its_line() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bad.toml", "[types]\nlaunch = true\nbuild = \n");
        let err = read(dir.path(), "0.10").unwrap_err();
        let LayerError::Toml {
            path, line, span, ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(path, &dir.path().join("bad.toml"));
        assert_eq!(*line, Some(3));
        assert!(span.is_some());
        assert!(err.to_string().contains("bad.toml line 3"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "x.toml", "[types]\nlaunch = \"yes\"\n");
        assert_eq!(toml_error(read(dir.path(), "0.10")).1, Some(2));
    }

    #[test]
    fn types_belong_in_the_types_table_from_api_0_6() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "old.toml",
            "launch = true\ncache = false\n[metadata]\nv = 1\n",
        );
        fs::create_dir(dir.path().join("old")).unwrap();

        let got = read(dir.path(), "0.5").unwrap();
        assert_eq!(
            got.layers[0].types,
            LayerTypes {
                launch: true,
                build: false,
                cache: false
            }
        );
        assert_eq!(
            got.layers[0]
                .metadata
                .get("v")
                .and_then(toml::Value::as_integer),
            Some(1)
        );

        let (message, line) = toml_error(read(dir.path(), "0.6"));
        assert!(message.contains("[types]"), "{message}");
        assert_eq!(line, Some(1));

        write(dir.path(), "old.toml", "launch = 1\n");
        let (message, _) = toml_error(read(dir.path(), "0.5"));
        assert!(message.contains("boolean"), "{message}");
    }

    #[test]
    fn invalid_api_and_names_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        for api in ["", "x", "0.x", "1..2", "0.10.1"] {
            assert!(
                matches!(read(dir.path(), api), Err(LayerError::InvalidApi { .. })),
                "{api:?}"
            );
        }
        for api in ["0.10", "v0.9", "1"] {
            assert!(read(dir.path(), api).is_ok(), "{api:?}");
        }
        write(dir.path(), ".toml", "");
        assert!(matches!(
            read(dir.path(), "0.10"),
            Err(LayerError::EmptyLayerName { .. })
        ));
    }

    #[test]
    fn process_types_are_validated() {
        for ty in ["", "web app", "a/b", "..", "wéb"] {
            let text = format!("[[processes]]\ntype = {ty:?}\ncommand = [\"x\"]\n");
            let (message, line) = toml_error(launch("0.10", &text));
            assert!(message.contains("process type"), "{message}");
            assert_eq!(line, Some(2));
        }
        let ok = "[[processes]]\ntype = \"Web_1.x-y\"\ncommand = [\"x\"]\n";
        assert_eq!(launch("0.10", ok).unwrap().processes[0].r#type, "Web_1.x-y");
    }

    #[test]
    fn duplicate_process_types_are_rejected() {
        let text = "[[processes]]\ntype = \"web\"\ncommand = [\"a\"]\n\n\
                    [[processes]]\ntype = \"web\"\ncommand = [\"b\"]\n";
        let (message, line) = toml_error(launch("0.10", text));
        assert!(
            message.contains("`web` is defined twice (first on line 2)"),
            "{message}"
        );
        assert_eq!(line, Some(6));
    }

    #[test]
    fn two_default_processes_are_rejected() {
        let text = "[[processes]]\ntype = \"web\"\ncommand = [\"a\"]\ndefault = true\n\n\
                    [[processes]]\ntype = \"worker\"\ncommand = [\"b\"]\ndefault = false\n\n\
                    [[processes]]\ntype = \"cron\"\ncommand = [\"c\"]\ndefault = true\n";
        let (message, line) = toml_error(launch("0.10", text));
        assert!(
            message.contains("`web` and `cron` are both default"),
            "{message}"
        );
        assert_eq!(line, Some(14));
    }

    #[test]
    fn commands_are_arrays_from_api_0_9() {
        let (message, _) = toml_error(launch(
            "0.9",
            "[[processes]]\ntype = \"w\"\ncommand = \"x\"\n",
        ));
        assert!(message.contains("array of strings"), "{message}");
        let (message, _) = toml_error(launch(
            "0.9",
            "[[processes]]\ntype = \"w\"\ncommand = [1]\n",
        ));
        assert!(message.contains("array of strings"), "{message}");
        let (message, _) = toml_error(launch("0.9", "[[processes]]\ntype = \"w\"\ncommand = []\n"));
        assert!(message.contains("executable"), "{message}");
        let (message, line) = toml_error(launch(
            "0.12",
            "[[processes]]\ntype = \"w\"\ncommand = [\"x\"]\ndirect = false\n",
        ));
        assert!(message.contains("`direct`"), "{message}");
        assert_eq!(line, Some(4));
        let (message, _) = toml_error(launch("0.10", "[[processes]]\ntype = \"w\"\n"));
        assert!(message.contains("command"), "{message}");
    }

    #[test]
    fn commands_are_strings_before_api_0_9() {
        let text = "[[processes]]\ntype = \"web\"\ncommand = \"node server.js\"\nargs = [\"a\"]\n\
                    working-dir = \"/srv\"\n\n\
                    [[processes]]\ntype = \"direct\"\ncommand = \"/bin/app\"\ndirect = true\n";
        let got = launch("0.8", text).unwrap();
        assert_eq!(got.processes[0].command, ["node server.js"]);
        assert_eq!(got.processes[0].args, ["a"]);
        assert!(!got.processes[0].direct);
        assert_eq!(got.processes[0].working_dir.as_deref(), Some("/srv"));
        assert!(got.processes[1].direct);

        // `working-dir` arrived with API 0.8.
        assert_eq!(launch("0.7", text).unwrap().processes[0].working_dir, None);

        let (message, _) = toml_error(launch(
            "0.8",
            "[[processes]]\ntype = \"w\"\ncommand = [\"x\"]\n",
        ));
        assert!(message.contains("must be a string"), "{message}");
    }

    #[test]
    fn labels_need_key_and_value() {
        let (message, _) = toml_error(launch("0.10", "[[labels]]\nkey = \"k\"\n"));
        assert!(message.contains("value"), "{message}");
    }

    #[test]
    fn unmet_entries_need_a_name() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "build.toml", "[[unmet]]\nname = \"\"\n");
        let (message, line) = toml_error(read(dir.path(), "0.10"));
        assert!(message.contains("unmet.name"), "{message}");
        assert_eq!(line, Some(2));

        write(dir.path(), "build.toml", "[[unmet]]\n");
        assert!(toml_error(read(dir.path(), "0.10")).0.contains("name"));
    }

    #[test]
    fn malformed_store_toml_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "store.toml", "metadata = 3\n");
        assert_eq!(toml_error(read(dir.path(), "0.10")).1, Some(1));
    }

    #[test]
    fn undeclared_sbom_formats_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "launch.sbom.spdx.json",
            r#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT"}"#,
        );
        let declared = vec!["application/vnd.cyclonedx+json".to_owned()];
        let err = read_layers_dir(dir.path(), BP, "0.10", &declared).unwrap_err();
        match &err {
            LayerError::UndeclaredSbom {
                buildpack,
                path,
                media_type,
                declared: d,
            } => {
                assert_eq!(buildpack, BP);
                assert_eq!(path, &dir.path().join("launch.sbom.spdx.json"));
                assert_eq!(media_type, "application/spdx+json");
                assert_eq!(d, &declared);
            }
            other => panic!("{other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(BP)
                && message.contains("launch.sbom.spdx.json")
                && message.contains("application/vnd.cyclonedx+json"),
            "{message}"
        );
        let none = read_layers_dir(dir.path(), BP, "0.10", &[]).unwrap_err();
        assert!(none.to_string().contains("declared: none"), "{none}");
    }

    #[test]
    fn declared_media_types_may_carry_parameters() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "build.sbom.spdx.json",
            r#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT"}"#,
        );
        let declared = vec!["Application/SPDX+json; version=2.3".to_owned()];
        let got = read_layers_dir(dir.path(), BP, "0.10", &declared).unwrap();
        assert_eq!(got.sbom[0].scope, SbomScope::Build);
    }

    #[test]
    fn an_sbom_that_is_not_of_its_format_names_buildpack_layer_and_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "web.toml", "[types]\nlaunch = true\n");
        fs::create_dir(dir.path().join("web")).unwrap();
        write(
            dir.path(),
            "web.sbom.cdx.json",
            r#"{"spdxVersion":"SPDX-2.3"}"#,
        );
        let declared = vec!["application/vnd.cyclonedx+json".to_owned()];
        let err = read_layers_dir(dir.path(), BP, "0.10", &declared).unwrap_err();
        assert!(matches!(&err, LayerError::InvalidSbom { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(BP)
                && message.contains("layer `web`")
                && message.contains("web.sbom.cdx.json")
                && message.contains("bomFormat"),
            "{message}"
        );
    }

    #[test]
    fn unknown_sbom_formats_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "launch.sbom.xml.json", "{}");
        let err = read(dir.path(), "0.10").unwrap_err();
        assert!(
            matches!(&err, LayerError::UnknownSbomFormat { ext, buildpack, .. } if ext == "xml" && buildpack == BP),
            "{err:?}"
        );
    }

    #[test]
    fn layer_sbom_files_match_layers_with_dots_in_their_names() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "node.js.toml", "[types]\nlaunch = true\n");
        fs::create_dir(dir.path().join("node.js")).unwrap();
        write(
            dir.path(),
            "node.js.sbom.cdx.json",
            r#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#,
        );
        // No such layer: ignored, whatever its format.
        write(dir.path(), "other.sbom.xml.json", "{}");
        let got = read(dir.path(), "0.10").unwrap();
        assert_eq!(got.sbom.len(), 1);
        assert_eq!(got.sbom[0].scope, SbomScope::Layer("node.js".into()));
    }

    #[test]
    fn sbom_media_types() {
        assert_eq!(
            sbom_media_type("cdx"),
            Some("application/vnd.cyclonedx+json")
        );
        assert_eq!(sbom_media_type("spdx"), Some("application/spdx+json"));
        assert_eq!(sbom_media_type("syft"), Some("application/vnd.syft+json"));
        assert_eq!(sbom_media_type("json"), None);
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_metadata_sbom_and_env_files_are_refused_naming_the_buildpack() {
        type Setup<'a> = &'a dyn Fn(&Path, &Path);
        let cases: &[(&str, Setup<'_>)] = &[
            ("dangling.toml", &|d, _| {
                std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling.toml")).unwrap();
            }),
            ("launch.toml", &|d, secret| {
                std::os::unix::fs::symlink(secret, d.join("launch.toml")).unwrap();
            }),
            ("node.toml", &|d, secret| {
                std::os::unix::fs::symlink(secret, d.join("node.toml")).unwrap();
            }),
            ("launch.sbom.cdx.json", &|d, secret| {
                std::os::unix::fs::symlink(secret, d.join("launch.sbom.cdx.json")).unwrap();
            }),
            ("env.launch/X", &|d, _| {
                write(d, "runtime.toml", "[types]\nlaunch = true\n");
                fs::create_dir_all(d.join("runtime/env.launch")).unwrap();
                std::os::unix::fs::symlink("/proc/self/environ", d.join("runtime/env.launch/X"))
                    .unwrap();
            }),
            ("env.build", &|d, secret| {
                write(d, "runtime.toml", "[types]\nbuild = true\n");
                fs::create_dir_all(d.join("runtime")).unwrap();
                std::os::unix::fs::symlink(secret.parent().unwrap(), d.join("runtime/env.build"))
                    .unwrap();
            }),
        ];
        for (file, setup) in cases {
            let host = tempfile::tempdir().unwrap();
            let secret = host.path().join("secret");
            fs::write(&secret, "host secret").unwrap();
            let dir = tempfile::tempdir().unwrap();
            setup(dir.path(), &secret);
            let err = read(dir.path(), "0.10").unwrap_err();
            let text = err.to_string();
            assert!(text.contains(BP) && text.contains(file), "{file}: {text}");
            assert!(text.contains("symlink"), "{file}: {text}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn fifos_and_huge_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(dir.path().join("launch.toml"))
            .status()
            .unwrap();
        assert!(made.success());
        let err = read(dir.path(), "0.10").unwrap_err();
        assert!(
            matches!(
                &err,
                LayerError::Untrusted {
                    source: UntrustedError::NotAFile { .. },
                    ..
                }
            ),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "store.toml", &"#".repeat(2 << 20));
        let err = read(dir.path(), "0.10").unwrap_err();
        assert!(
            matches!(
                &err,
                LayerError::Untrusted {
                    source: UntrustedError::TooLarge { .. },
                    ..
                }
            ),
            "{err}"
        );
    }
}
