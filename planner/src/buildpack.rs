//! `buildpack.toml`: a buildpack directory's descriptor.

use std::path::{Path, PathBuf};

use crate::{BuildpackId, Order, TomlError};

/// A buildpack read from its directory.
#[derive(Debug, Clone)]
pub struct Buildpack {
    /// The buildpack directory (absolute).
    pub dir: PathBuf,
    /// Its parsed and validated `buildpack.toml`.
    pub descriptor: BuildpackDescriptor,
}

/// A validated `buildpack.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildpackDescriptor {
    /// Buildpack API, e.g. `"0.10"`.
    pub api: String,
    /// `[buildpack]`.
    pub info: BuildpackInfo,
    /// `[[order]]`: non-empty for a composite buildpack.
    pub order: Order,
    /// `[[targets]]` (with `[[stacks]]` mapped onto them; a component buildpack with neither
    /// gets `os = "linux"`).
    pub targets: Vec<Target>,
    /// `[metadata]`, free-form.
    pub metadata: toml::Table,
}

/// `[buildpack]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildpackInfo {
    /// `id`.
    pub id: BuildpackId,
    /// `version`.
    pub version: String,
    /// `name`.
    pub name: Option<String>,
    /// `homepage`.
    pub homepage: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `clear-env`: build without the platform's user env.
    pub clear_env: bool,
    /// `sbom-formats`: media types the buildpack may write.
    pub sbom_formats: Vec<String>,
}

/// One `[[targets]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// `os`, e.g. `linux`; `None` matches any.
    pub os: Option<String>,
    /// `arch`, e.g. `amd64`; `None` matches any.
    pub arch: Option<String>,
    /// `variant` (or `arch-variant`).
    pub variant: Option<String>,
    /// `[[targets.distros]]` as (name, version).
    pub distros: Vec<(String, Option<String>)>,
}

/// Why a buildpack could not be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BuildpackError {
    /// The directory or its `buildpack.toml` could not be read.
    #[error("cannot read buildpack at {path}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `buildpack.toml` is malformed or invalid.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Toml(#[from] Box<TomlError>),
    /// A component buildpack lacks an executable `bin/detect` or `bin/build`.
    #[error("buildpack {id} at {dir}: {what}", dir = dir.display())]
    Layout { id: String, dir: PathBuf, what: String },
}

impl Buildpack {
    /// Reads and validates `dir/buildpack.toml`.
    pub fn load(dir: &Path) -> Result<Self, BuildpackError> {
        let _ = dir;
        todo!()
    }

    /// The id.
    pub fn id(&self) -> &BuildpackId {
        &self.descriptor.info.id
    }

    /// The version.
    pub fn version(&self) -> &str {
        &self.descriptor.info.version
    }

    /// `id@version`, how the CLI names a buildpack.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.id(), self.version())
    }

    /// Whether this is a composite buildpack (it has an `[[order]]`).
    pub fn is_composite(&self) -> bool {
        !self.descriptor.order.is_empty()
    }
}
