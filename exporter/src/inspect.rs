//! Reading an image back: its layers with what created them, its processes, its run image and
//! its buildpacks, from the manifest, the config and the CNB labels. No layer blob is read.

use oci_spec::image::ImageConfiguration;
use serde::Serialize;

use crate::layout::{Layout, LayoutError};
use crate::metadata::{
    BUILD_LABEL, BuildMetadata, BuildpackRef, LIFECYCLE_LABEL, LifecycleMetadata, ProcessMetadata,
    RunImageMetadata,
};
use crate::reference::ImageRef;

/// What `strata inspect` shows.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    /// The reference inspected.
    pub reference: String,
    /// The manifest digest.
    pub digest: String,
    /// `os/arch`.
    pub platform: String,
    /// The default user.
    pub user: String,
    /// Layers, bottom first.
    pub layers: Vec<InspectLayer>,
    /// The processes.
    pub processes: Vec<ProcessMetadata>,
    /// The default process type.
    pub default_process: Option<String>,
    /// The run image.
    pub run_image: RunImageMetadata,
    /// The buildpack group.
    pub buildpacks: Vec<BuildpackRef>,
    /// The diffID of the SBOM layer, if any.
    pub sbom: Option<String>,
    /// The SBOM layer's documents: what each directory describes, in which formats (empty
    /// for an image without the `io.strata.sbom` label).
    pub sbom_documents: Vec<crate::sbomlayer::SbomEntry>,
}

/// One layer.
#[derive(Debug, Clone, Serialize)]
pub struct InspectLayer {
    /// The blob's size in bytes.
    pub size: u64,
    /// Its history line.
    pub created_by: String,
    /// Its diffID.
    pub diff_id: String,
    /// Whether it belongs to the run image.
    pub run_image: bool,
}

/// Why an image could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The layout or image could not be read.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The config is not valid JSON.
    #[error("image {reference}: invalid config: {message}")]
    Config { reference: String, message: String },
    /// The image has no CNB metadata.
    #[error("image {reference} has no `{LIFECYCLE_LABEL}` label: it was not built with buildpacks")]
    NotBuildpacks { reference: String },
}

/// Inspects `reference`.
pub fn inspect(reference: &ImageRef) -> Result<InspectReport, InspectError> {
    let ImageRef::OciLayout { dir, tag } = reference;
    let name = reference.to_string();
    let layout = Layout::open(dir)?;
    let (descriptor, manifest) = layout.resolve(tag)?;
    let bytes = layout.read_blob(manifest.config())?;
    let config_err = |message: String| InspectError::Config {
        reference: name.clone(),
        message,
    };
    let config: ImageConfiguration =
        serde_json::from_slice(&bytes).map_err(|e| config_err(e.to_string()))?;
    let labels = config
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .unwrap_or_default();
    let lifecycle: LifecycleMetadata = match labels.get(LIFECYCLE_LABEL) {
        Some(text) => {
            serde_json::from_str(text).map_err(|e| config_err(format!("{LIFECYCLE_LABEL}: {e}")))?
        }
        None => return Err(InspectError::NotBuildpacks { reference: name }),
    };
    let build: BuildMetadata = labels
        .get(BUILD_LABEL)
        .map(|text| {
            serde_json::from_str(text).map_err(|e| config_err(format!("{BUILD_LABEL}: {e}")))
        })
        .transpose()?
        .unwrap_or_default();

    let history: Vec<String> = config
        .history()
        .iter()
        .flatten()
        .filter(|h| !h.empty_layer().unwrap_or(false))
        .map(|h| h.created_by().clone().unwrap_or_default())
        .collect();
    let diff_ids = config.rootfs().diff_ids();
    let top = diff_ids
        .iter()
        .position(|d| *d == lifecycle.run_image.top_layer);
    let layers = manifest
        .layers()
        .iter()
        .enumerate()
        .map(|(i, layer)| InspectLayer {
            size: layer.size(),
            created_by: if history.len() == diff_ids.len() {
                history[i].clone()
            } else {
                String::new()
            },
            diff_id: diff_ids.get(i).cloned().unwrap_or_default(),
            run_image: top.is_some_and(|t| i <= t),
        })
        .collect();
    Ok(InspectReport {
        reference: name,
        digest: descriptor.digest().to_string(),
        platform: format!("{}/{}", config.os(), config.architecture()),
        user: config
            .config()
            .as_ref()
            .and_then(|c| c.user().clone())
            .unwrap_or_default(),
        layers,
        processes: build.processes,
        default_process: build.default_process,
        run_image: lifecycle.run_image,
        buildpacks: build.buildpacks,
        sbom: lifecycle.sbom.map(|s| s.sha),
        sbom_documents: crate::sbomlayer::entries_of(
            labels.get(crate::sbomlayer::SBOM_LABEL).map(String::as_str),
        )
        .unwrap_or_default(),
    })
}
