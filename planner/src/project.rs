//! `project.toml`: a service's CNB project descriptor, in schema 0.2 and the older 0.1.

use std::path::{Path, PathBuf};

use crate::{GroupRef, TomlError};

/// What strata uses of a `project.toml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectDescriptor {
    /// Globs of app files to include (gitignore syntax); empty means all.
    pub include: Vec<String>,
    /// Globs of app files to exclude (gitignore syntax).
    pub exclude: Vec<String>,
    /// The buildpack group to use instead of the builder's order; empty means none.
    /// Entries given by `uri` only are kept as `uris`.
    pub group: Vec<GroupRef>,
    /// Buildpacks given by `uri` (relative to the project dir), in group order.
    pub uris: Vec<String>,
    /// Build env, in file order.
    pub env: Vec<(String, String)>,
    /// The project's `[_]`/`[project]` table (id, name, version, source-url…), for the
    /// `io.buildpacks.project.metadata` label.
    pub source: toml::Table,
}

/// Why a `project.toml` could not be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ProjectError {
    /// The file exists but could not be read.
    #[error("cannot read {path}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is malformed or invalid.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Toml(#[from] Box<TomlError>),
}

impl ProjectDescriptor {
    /// Reads `app_dir/project.toml`; `Ok(None)` when there is none.
    pub fn load(app_dir: &Path) -> Result<Option<Self>, ProjectError> {
        let _ = app_dir;
        todo!()
    }
}
