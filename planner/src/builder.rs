//! `builder.toml`: the buildpacks a builder carries and the order it detects with.

use std::path::{Path, PathBuf};

use crate::{BuildpackError, Order, RegistryError, TomlError};

/// A builder read from its `builder.toml`, with its buildpacks loaded from their directories.
#[derive(Debug, Clone)]
pub struct Builder {
    /// The `builder.toml` (absolute).
    pub path: PathBuf,
    /// The buildpacks that `[[buildpacks]] uri` names, as a registry.
    pub registry: crate::Registry,
    /// `[[order]]`.
    pub order: Order,
    /// The run image reference (`[run] [[run.images]] image`, or `[stack] run-image`).
    pub run_image: Option<String>,
    /// The build image reference (`[build] image`, or `[stack] build-image`).
    pub build_image: Option<String>,
}

/// Why a builder could not be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BuilderError {
    /// `builder.toml` could not be read.
    #[error("cannot read builder {path}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `builder.toml` is malformed or invalid (including an order naming an unknown buildpack).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Toml(#[from] Box<TomlError>),
    /// A buildpack it names could not be read.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Buildpack(#[from] BuildpackError),
    /// Two buildpacks with the same id and version.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Registry(#[from] RegistryError),
}

impl Builder {
    /// Reads `path`, loads every buildpack its `[[buildpacks]] uri` names (a directory path
    /// relative to the file, or a `file://` URI), and checks that each order entry names a
    /// known buildpack.
    pub fn load(path: &Path) -> Result<Self, BuilderError> {
        let _ = path;
        todo!()
    }
}
