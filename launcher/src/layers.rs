//! The image's launch layers, found as the lifecycle's launcher finds them: every directory
//! under `<layers>/<escaped buildpack id>/`, buildpacks in group order, layers in name order.
//! Only launch layers are in an image's `<layers>`, so no `<layer>.toml` is consulted.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use strata_launcher::env::{EnvFileError, EnvFs};

use crate::error::LaunchError;
use crate::metadata::Metadata;

/// One buildpack's launch layers, in name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuildpackLayers {
    pub(crate) layers: Vec<PathBuf>,
}

/// Every buildpack's launch layers, in group order; a buildpack without a directory has none.
pub(crate) fn launch_layers(
    layers_dir: &Path,
    md: &Metadata,
) -> Result<Vec<BuildpackLayers>, LaunchError> {
    let mut all = Vec::new();
    for bp in &md.buildpacks {
        let dir = layers_dir.join(bp.id.replace('/', "_"));
        let mut layers: Vec<PathBuf> = entries(&dir)?
            .into_iter()
            .filter(|(_, is_dir)| *is_dir)
            .map(|(name, _)| dir.join(name))
            .collect();
        layers.sort();
        all.push(BuildpackLayers { layers });
    }
    Ok(all)
}

/// The files (not directories) in `dir`, in byte order of their names; none if it is missing.
pub(crate) fn files_in(dir: &Path) -> Result<Vec<PathBuf>, LaunchError> {
    let mut files: Vec<PathBuf> = entries(dir)?
        .into_iter()
        .filter(|(_, is_dir)| !*is_dir)
        .map(|(name, _)| dir.join(name))
        .collect();
    files.sort();
    Ok(files)
}

/// The entries of `dir` with whether each is a directory (links followed, as the image's own
/// files are trusted); none if `dir` is missing or not a directory.
fn entries(dir: &Path) -> Result<Vec<(OsString, bool)>, LaunchError> {
    let read_error = |source| LaunchError::Read {
        path: dir.to_owned(),
        source,
    };
    let iter = match fs::read_dir(dir) {
        Ok(iter) => iter,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(Vec::new());
        }
        Err(e) => return Err(read_error(e)),
    };
    let mut out = Vec::new();
    for entry in iter {
        let entry = entry.map_err(read_error)?;
        let is_dir = fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
        out.push((entry.file_name(), is_dir));
    }
    Ok(out)
}

/// Reads env files inside the container with plain reads.
pub(crate) struct PlainFs;

impl From<EnvFileError> for LaunchError {
    fn from(e: EnvFileError) -> Self {
        LaunchError::EnvFile(e)
    }
}

impl EnvFs for PlainFs {
    type Error = LaunchError;

    fn files(&self, dir: &Path) -> Result<Vec<OsString>, LaunchError> {
        Ok(entries(dir)?
            .into_iter()
            .filter(|(_, is_dir)| !*is_dir)
            .map(|(name, _)| name)
            .collect())
    }

    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, LaunchError> {
        match fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound
                        | io::ErrorKind::IsADirectory
                        | io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(source) => Err(LaunchError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn is_dir(&self, path: &Path) -> Result<bool, LaunchError> {
        Ok(path.is_dir())
    }
}
