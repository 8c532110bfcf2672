//! The buildpacks available to a build, by id and version.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{Buildpack, BuildpackId};

/// The buildpacks available to a build, looked up by id and optional version.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    by_id: BTreeMap<BuildpackId, Vec<Arc<Buildpack>>>,
}

/// A lookup or insertion that failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RegistryError {
    /// No buildpack with that id (and version).
    #[error("unknown buildpack {reference}; known: {known}")]
    Unknown { reference: String, known: String },
    /// Two buildpacks share id and version.
    #[error("buildpack {reference} is given twice: {first} and {second}")]
    Duplicate {
        reference: String,
        first: String,
        second: String,
    },
}

impl Registry {
    /// Adds a buildpack.
    pub fn insert(&mut self, buildpack: Buildpack) -> Result<Arc<Buildpack>, RegistryError> {
        let _ = (buildpack, &self.by_id);
        todo!()
    }

    /// The buildpack `id` at `version`, or the only/newest one when `version` is `None`.
    pub fn get(
        &self,
        id: &BuildpackId,
        version: Option<&str>,
    ) -> Result<Arc<Buildpack>, RegistryError> {
        let _ = (id, version);
        todo!()
    }

    /// Every buildpack, by id then version.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Buildpack>> {
        self.by_id.values().flatten()
    }
}
