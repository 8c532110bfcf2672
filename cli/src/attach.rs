//! The image a signature or attestation is about, wherever it is: an image in a layout
//! (`oci:DIR:TAG`) or in a registry (`docker://HOST/REPO:TAG|@DIGEST`). Artifacts are
//! attached to it and listed from it the same way for both (see
//! `strata_exporter::referrers`): in a layout through the `sha256-<hex>` referrers tag, in a
//! registry through the referrers API or that tag.

use std::path::Path;

use strata_exporter::layout::Layout;
use strata_exporter::referrers::{
    Artifact, Referrer, Subject, attach_in_layout, list_in_layout, referrer_from_manifest,
};
use strata_registry::{BlobDir, Descriptor, Digest, Reference};

use crate::error::CliError;
use crate::images::{Images, Location};

/// The largest artifact layer read from a registry: signatures and provenance are a few kB.
const MAX_ARTIFACT: u64 = 16 << 20;

/// An image whose manifest artifacts are attached to.
pub(crate) enum Attached<'a> {
    /// In a layout.
    Layout {
        dir: std::path::PathBuf,
        shown: String,
        subject: Subject,
    },
    /// In a registry: `reference` names the manifest by digest.
    Registry {
        images: &'a Images,
        reference: Reference,
        shown: String,
        subject: Subject,
    },
}

impl<'a> Attached<'a> {
    /// The image `text` names (a relative layout is relative to the working directory).
    ///
    /// # Errors
    /// A usage error for a reference that names no image here; a layout or registry error.
    pub(crate) fn open(text: &str, images: &'a Images) -> Result<Self, CliError> {
        match Location::parse(text, Path::new("."))? {
            Location::Layout(image) => {
                let layout = Layout::open(image.dir())?;
                let (descriptor, _) = layout.resolve(image.tag())?;
                let subject = Subject {
                    media_type: descriptor.media_type().to_string(),
                    digest: descriptor.digest().to_string(),
                    size: descriptor.size(),
                };
                Ok(Self::Layout {
                    dir: image.dir().to_owned(),
                    shown: image.to_string(),
                    subject,
                })
            }
            Location::Registry(reference) => {
                let client = images.client()?;
                let fetched = client.fetch_manifest(&reference).map_err(|source| {
                    CliError::RegistryImage {
                        what: format!("cannot read docker://{reference}"),
                        source: Box::new(source),
                    }
                })?;
                let subject = Subject {
                    media_type: fetched.descriptor.media_type.clone(),
                    digest: fetched.descriptor.digest.to_string(),
                    size: fetched.descriptor.size,
                };
                Ok(Self::Registry {
                    images,
                    shown: format!("docker://{reference}"),
                    reference: reference.with_digest(fetched.descriptor.digest),
                    subject,
                })
            }
            Location::Archive { .. } => Err(CliError::Usage(format!(
                "{text}: a docker-archive cannot carry signatures; sign the image in a layout or registry"
            ))),
        }
    }

    /// The image as the user named it.
    pub(crate) fn shown(&self) -> &str {
        match self {
            Self::Layout { shown, .. } | Self::Registry { shown, .. } => shown,
        }
    }

    /// The manifest artifacts are about.
    pub(crate) fn subject(&self) -> &Subject {
        match self {
            Self::Layout { subject, .. } | Self::Registry { subject, .. } => subject,
        }
    }

    /// Attaches `artifact`, in place of the one of its type and key listed before; returns
    /// the artifact manifest's digest.
    ///
    /// # Errors
    /// A layout or registry error.
    pub(crate) fn attach(&self, artifact: &Artifact) -> Result<String, CliError> {
        match self {
            Self::Layout { dir, subject, .. } => attach_in_layout(dir, subject, artifact)
                .map_err(|e| CliError::Attach(format!("cannot attach to {}: {e}", self.shown()))),
            Self::Registry {
                images,
                reference,
                subject,
                ..
            } => {
                let manifest = artifact.manifest(subject).map_err(|e| {
                    CliError::Attach(format!("cannot make an artifact manifest: {e}"))
                })?;
                let temp = tempfile::tempdir().map_err(|source| CliError::Io {
                    what: "cannot make a temporary directory".to_owned(),
                    source,
                })?;
                let blobs = BlobDir::new(temp.path());
                for bytes in [
                    strata_exporter::referrers::EMPTY_CONFIG,
                    artifact.layer.as_slice(),
                    manifest.manifest.as_slice(),
                ] {
                    std::fs::write(blobs.path(&Digest::of(bytes)), bytes).map_err(|source| {
                        CliError::Io {
                            what: format!("cannot write {}", temp.path().display()),
                            source,
                        }
                    })?;
                }
                let descriptor = Descriptor {
                    media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
                    digest: Digest::of(&manifest.manifest),
                    size: manifest.manifest.len() as u64,
                    platform: None,
                };
                let entry = artifact.index_entry(&manifest);
                images
                    .client()?
                    .attach(&blobs, &descriptor, reference, &entry, |e| {
                        e.descriptor.digest != descriptor.digest
                            && !artifact.replaces(e.artifact_type.as_deref(), &e.annotations)
                    })
                    .map_err(|source| CliError::RegistryImage {
                        what: format!("cannot attach an artifact to {}", self.shown()),
                        source: Box::new(source),
                    })?;
                Ok(manifest.digest)
            }
        }
    }

    /// The artifacts of `artifact_type` attached to the image.
    ///
    /// # Errors
    /// A layout or registry error reading the listing.
    pub(crate) fn list(&self, artifact_type: &str) -> Result<Vec<Referrer>, CliError> {
        match self {
            Self::Layout { dir, subject, .. } => {
                list_in_layout(dir, &subject.digest, artifact_type)
                    .map_err(|e| CliError::Attach(format!("cannot read {}: {e}", self.shown())))
            }
            Self::Registry {
                images,
                reference,
                subject,
                ..
            } => {
                let client = images.client()?;
                let registry_err = |source| CliError::RegistryImage {
                    what: format!("cannot read the referrers of {}", self.shown()),
                    source: Box::new(source),
                };
                let temp = tempfile::tempdir().map_err(|source| CliError::Io {
                    what: "cannot make a temporary directory".to_owned(),
                    source,
                })?;
                let blobs = BlobDir::new(temp.path());
                let mut found = Vec::new();
                for entry in client.referrers(reference).map_err(registry_err)? {
                    if entry.artifact_type.as_deref() != Some(artifact_type) {
                        continue;
                    }
                    // Fetched by digest: the client checks the bytes against it.
                    let Ok(fetched) =
                        client.fetch_manifest(&reference.with_digest(entry.descriptor.digest))
                    else {
                        continue;
                    };
                    let read = |media_type: &str, digest: &str, size: u64| {
                        let digest: Digest = digest.parse().map_err(|_| ())?;
                        if size > MAX_ARTIFACT {
                            return Err(());
                        }
                        let layer = Descriptor {
                            media_type: media_type.to_owned(),
                            digest: digest.clone(),
                            size,
                            platform: None,
                        };
                        client
                            .pull_blobs(reference, &[layer], &blobs)
                            .map_err(|_| ())?;
                        blobs.read_verified(&digest).map_err(|_| ())
                    };
                    let digest = fetched.descriptor.digest.to_string();
                    if let Ok(Some(referrer)) =
                        referrer_from_manifest(&digest, &fetched.bytes, &subject.digest, read)
                        && referrer.artifact_type == artifact_type
                    {
                        found.push(referrer);
                    }
                }
                Ok(found)
            }
        }
    }
}
