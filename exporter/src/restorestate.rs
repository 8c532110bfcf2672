//! An opaque buildpack's restore state written back into its layers directory before it runs
//! again, and the layers it reused from its last run made real after it (see
//! `strata_engine::restore` for what comes back). The state comes from the store, which may
//! be shared: every tar goes through the store's unpack (each entry inside its own layer),
//! every name through safepath, and nothing is written over an existing file.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use strata_engine::build::{BuildError, BuildRequest, layer_target};
use strata_engine::layers::{Layer, SbomFile, SbomScope, sbom_media_type};
use strata_engine::restore::{self, Restores};
use strata_engine::untrusted;
use strata_planner::Buildpack;

use crate::taskcache::{StoreCache, cache_err, extract};

/// Extracts each layer the buildpack reused from its previous run (a blob, no directory),
/// so that later buildpacks and the launch env see it like a layer it made.
pub(crate) fn extract_reused(
    cache: &StoreCache<'_>,
    req: &BuildRequest<'_>,
    buildpack: &Buildpack,
    layers: &[Layer],
) -> Result<(), BuildError> {
    for layer in layers {
        if let (Some(blob), Err(_)) = (&layer.blob, fs::symlink_metadata(&layer.dir)) {
            let target = layer_target(buildpack, &layer.name);
            cache.fetched(blob)?;
            extract(blob, req.scratch, Path::new(target.trim_start_matches('/')))?;
            req.sandbox.hand_over(&layer.dir)?;
        }
    }
    Ok(())
}

/// Writes the restore state into the buildpack's (empty) layers directory: the contents
/// of cache layers, the metadata (and SBOM files) of those and of launch-only layers,
/// `store.toml`. Every tar goes through the store's unpack, every name through safepath; a
/// blob a remote hit only promised is fetched first (and one that fails fails the state).
pub(crate) fn write_restore(
    cache: &StoreCache<'_>,
    req: &BuildRequest<'_>,
    buildpack: &Buildpack,
    layers_dir: &Path,
    state: &RestoreState,
) -> Result<(), BuildError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BuildError::Io { path, source }
    };
    let mut restored = HashSet::new();
    for layer in &state.layers {
        let (what, Some(blob)) = (restore::restores(layer.types), &layer.blob) else {
            continue;
        };
        if what == Restores::Contents {
            let target = layer_target(buildpack, &layer.name);
            cache.fetched(blob)?;
            extract(blob, req.scratch, Path::new(target.trim_start_matches('/')))?;
        }
        if what != Restores::Nothing {
            restore::write_layer_toml(layers_dir, &layer.name, &layer.metadata)
                .map_err(io(&layer.dir))?;
            restored.insert(layer.name.as_str());
        }
    }
    // A restored layer's SBOM files come back with it, in the formats the buildpack (maybe
    // a newer version) still declares.
    let declared = |ext: &str| {
        let formats = &buildpack.descriptor.info.sbom_formats;
        let essence = |f: &String| f.split(';').next().unwrap_or_default().trim().to_owned();
        sbom_media_type(ext).is_some_and(|m| formats.iter().any(|f| essence(f) == m))
    };
    for file in &state.sbom {
        if let SbomScope::Layer(name) = &file.scope
            && restored.contains(name.as_str())
            && declared(&file.ext)
        {
            let bytes = untrusted::read(&file.path, untrusted::SBOM_LIMIT)
                .map_err(|e| cache_err(format!("stored SBOM: {e}")))?;
            restore::write_new(
                layers_dir,
                &format!("{name}.sbom.{}.json", file.ext),
                &bytes,
            )
            .map_err(io(layers_dir))?;
        }
    }
    if let Some(store) = &state.store {
        restore::write_store_toml(layers_dir, store).map_err(io(layers_dir))?;
    }
    Ok(())
}

/// What an opaque buildpack's last run left for its next: its layers, their SBOM files and
/// its `store.toml`, relocated to this build.
pub(crate) struct RestoreState {
    pub(crate) layers: Vec<Layer>,
    pub(crate) sbom: Vec<SbomFile>,
    pub(crate) store: Option<toml::Table>,
}
