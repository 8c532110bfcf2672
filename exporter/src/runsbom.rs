//! The run image's SBOM in a layer of its own, directly above the run image's layers.
//!
//! The packages of a run image's dpkg status are a function of the run image alone, so their
//! SBOM (`CycloneDX` and SPDX at [`RUN_IMAGE_SBOM_DIR`]) is not in the SBOM layer, which
//! describes the app, but in a small layer (history [`RUN_IMAGE_SBOM_CREATED_BY`], files owned
//! by root) that belongs with the base: `strata rebase` replaces it as it replaces the run
//! image's layers, so a rebased image lists the packages of the run image it is on. Its
//! entry in the `io.strata.sbom` label records the layer's diffID (`layer`); that is how
//! rebase and `strata sbom download` find it.
//!
//! The layer depends only on the run image's packages, the image's time and the layer
//! compression, so a rebase writes the bytes a build on the new run image writes: the
//! packages are read from the new run image once for a whole batch ([`RunSbomLayers`]), and
//! the layer made once per compression the rebased images use.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use strata_engine::store::Store;

use crate::archive::{ArchiveError, Compression, LayerBlob, LayerBuilder, Owner, format_timestamp};
use crate::runimage::RunImage;
use crate::sbomdoc::{self, Inventory, Subject, SubjectKind};
use crate::sbomlayer::{
    GENERATED_FORMATS, RUN_IMAGE, RUN_IMAGE_SBOM_DIR, SbomEntry, SbomError, run_image_inventory,
};

/// The history line of the run image's SBOM layer.
pub const RUN_IMAGE_SBOM_CREATED_BY: &str = "Software Bill-of-Materials: run image";

/// The run image's SBOM layer, not yet written: both documents of its packages.
///
/// # Errors
/// [`SbomError::Archive`] when a path is refused (it never is: the paths are fixed).
pub fn layer(inventory: &Inventory, epoch: u64) -> Result<LayerBuilder, SbomError> {
    // A function of the packages alone (not of the run image's digest), so that a rebase onto
    // a run image with the same packages still equals a rebuild on it.
    let subject = Subject {
        name: "run-image".to_owned(),
        version: None,
        kind: SubjectKind::OperatingSystem,
    };
    let created = format_timestamp(epoch);
    let mut builder = LayerBuilder::new(Owner::ROOT, epoch);
    for ext in GENERATED_FORMATS {
        let bytes = match ext {
            "cdx" => sbomdoc::cyclonedx(&subject, inventory, &created),
            _ => sbomdoc::spdx(&subject, inventory, &created),
        };
        builder
            .add_bytes(
                &format!("{RUN_IMAGE_SBOM_DIR}/sbom.{ext}.json"),
                bytes,
                0o644,
            )
            .map_err(SbomError::Archive)?;
    }
    Ok(builder)
}

/// The `io.strata.sbom` entry of the run image's SBOMs, in the layer with diffID `layer`.
pub fn entry(layer: &str) -> SbomEntry {
    SbomEntry {
        path: RUN_IMAGE_SBOM_DIR.to_owned(),
        describes: RUN_IMAGE.to_owned(),
        diff_id: None,
        formats: GENERATED_FORMATS.map(str::to_owned).to_vec(),
        generated: true,
        layer: Some(layer.to_owned()),
    }
}

/// The diffID of the run image SBOM layer that `entries` (an image's `io.strata.sbom`
/// label) record, if they record one.
pub fn recorded_layer(entries: &[SbomEntry]) -> Option<&str> {
    entries
        .iter()
        .find(|e| e.path == RUN_IMAGE_SBOM_DIR)
        .and_then(|e| e.layer.as_deref())
}

/// Why the new run image's SBOM layer could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RunSbomError {
    /// The run image's packages could not be read.
    #[error(transparent)]
    Sbom(#[from] SbomError),
    /// No directory to write the layer into.
    #[error("cannot make a directory for the run image's SBOM layer")]
    Scratch(#[source] std::io::Error),
    /// The layer could not be written.
    #[error("cannot write the run image's SBOM layer")]
    Write(#[source] ArchiveError),
}

/// A layer made, or why it could not be.
type Made = Result<LayerBlob, Arc<RunSbomError>>;

/// The SBOM layer of one run image, made at most once per compression, for a batch of
/// rebases onto it: its packages are read the first time a layer is asked for.
#[derive(Debug)]
pub struct RunSbomLayers {
    image: RunImage,
    store: Option<PathBuf>,
    inventory: OnceLock<Result<Inventory, Arc<RunSbomError>>>,
    dir: OnceLock<Result<tempfile::TempDir, Arc<RunSbomError>>>,
    layers: Mutex<BTreeMap<(u64, u8), Made>>,
}

impl RunSbomLayers {
    /// The layers of `image`; its packages are looked up in (and kept in) the store at
    /// `store`, when one is given.
    pub fn new(image: RunImage, store: Option<PathBuf>) -> RunSbomLayers {
        RunSbomLayers {
            image,
            store,
            inventory: OnceLock::new(),
            dir: OnceLock::new(),
            layers: Mutex::new(BTreeMap::new()),
        }
    }

    fn inventory(&self) -> Result<&Inventory, Arc<RunSbomError>> {
        self.inventory
            .get_or_init(|| {
                let store = self.store.as_deref().and_then(|dir| Store::open(dir).ok());
                run_image_inventory(&self.image, store.as_ref())
                    .map_err(|e| Arc::new(RunSbomError::Sbom(e)))
            })
            .as_ref()
            .map_err(Arc::clone)
    }

    /// The layer dated `epoch` and compressed as `compression`, written into a directory
    /// that lives as long as `self`.
    ///
    /// # Errors
    /// The run image's packages cannot be read, or the layer cannot be written.
    pub fn blob(
        &self,
        epoch: u64,
        compression: Compression,
    ) -> Result<LayerBlob, Arc<RunSbomError>> {
        let code = match compression {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Zstd => 2,
        };
        // One at a time: a batch asks for one or two layers, each made once.
        let mut layers = self
            .layers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(made) = layers.get(&(epoch, code)) {
            return made.clone();
        }
        let made = self.make(epoch, compression);
        layers.insert((epoch, code), made.clone());
        made
    }

    fn make(&self, epoch: u64, compression: Compression) -> Result<LayerBlob, Arc<RunSbomError>> {
        let inventory = self.inventory()?;
        let dir = self
            .dir
            .get_or_init(|| {
                tempfile::Builder::new()
                    .prefix("strata-run-sbom-")
                    .tempdir()
                    .map_err(|e| Arc::new(RunSbomError::Scratch(e)))
            })
            .as_ref()
            .map_err(Arc::clone)?;
        layer(inventory, epoch)
            .map_err(|e| Arc::new(RunSbomError::Sbom(e)))?
            .finish(compression, dir.path())
            .map_err(|e| Arc::new(RunSbomError::Write(e)))
    }
}
