//! Images named by reference, wherever strata reads or writes one: `oci:DIR[:TAG]` (a layout,
//! read and written in place), `docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX]` (a registry) and,
//! as an output only, `docker-archive:PATH[:NAME:TAG]` (a `docker save` tarball).
//!
//! A registry image that a build reads (run image, build image, builder) is pulled into an OCI
//! layout of its own in the store, keyed by the reference, that holds the manifest for this
//! host's platform (an index is resolved here); everything downstream reads it as it reads any
//! layout. The pull asks for the manifest by `HEAD` first and fetches only blobs the layout
//! lacks, each verified against its digest on the way in, so a second build on an unchanged
//! image transfers nothing but that `HEAD`.
//!
//! An image written to a registry or an archive is built into a layout in the store first,
//! exactly as a layout output is (so its digest is the layout build's), then pushed or saved.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest as _, Sha256};
use strata_engine::store::store_dir;
use strata_exporter::reference::ImageRef;
use strata_registry::{BlobDir, Client, Descriptor, Options, Platform, Reference};

use crate::error::CliError;

/// The tag a pulled image has in its store layout.
const PULLED_TAG: &str = "pulled";

/// Where an image is, by the transport its reference names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Location {
    /// An OCI layout on disk.
    Layout(ImageRef),
    /// A registry.
    Registry(Reference),
    /// A `docker save` tarball (written only), with the `NAME:TAG` it is loaded as.
    Archive { path: PathBuf, name: Option<String> },
}

impl Location {
    /// Parses a reference; a relative layout directory or archive path is relative to `base`.
    ///
    /// # Errors
    /// A usage error naming the reference when it does not parse.
    pub(crate) fn parse(text: &str, base: &Path) -> Result<Self, CliError> {
        if let Some(rest) = text.strip_prefix("docker://") {
            return Reference::parse(rest)
                .map(Location::Registry)
                .map_err(|e| CliError::Usage(format!("image reference `{text}`: {e}")));
        }
        if let Some(rest) = text.strip_prefix("docker-archive:") {
            let (path, name) = match rest.split_once(':') {
                Some((path, name)) => (path, Some(name)),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(CliError::Usage(format!(
                    "image reference `{text}` names no file (expected docker-archive:PATH[:NAME:TAG])"
                )));
            }
            if let Some(name) = name {
                Reference::parse(name).map_err(|e| {
                    CliError::Usage(format!("image reference `{text}`: NAME:TAG {e}"))
                })?;
            }
            let path = if base == Path::new(".") {
                PathBuf::from(path)
            } else {
                base.join(path)
            };
            return Ok(Location::Archive {
                path,
                name: name.map(str::to_owned),
            });
        }
        let layout = ImageRef::parse(text)?;
        // The working directory adds nothing: references are shown as they were typed.
        if base == Path::new(".") {
            return Ok(Location::Layout(layout));
        }
        Ok(Location::Layout(layout.relative_to(base)))
    }
}

/// How strata speaks to registries: `--insecure-registry`, `insecure-registries` and
/// `--registry-ca`.
#[derive(Clone, Debug, Default)]
pub(crate) struct RegistrySettings {
    /// Registries (`HOST[:PORT]`) spoken to over plain HTTP.
    pub(crate) insecure: Vec<String>,
    /// Extra CA certificates (PEM).
    pub(crate) ca_file: Option<PathBuf>,
}

/// Reads and writes images by reference, with one registry client made when first needed.
pub(crate) struct Images {
    store: PathBuf,
    settings: RegistrySettings,
    client: OnceLock<Client>,
}

impl Images {
    /// For the store under `cache_dir`.
    pub(crate) fn new(cache_dir: &Path, settings: RegistrySettings) -> Self {
        Self {
            store: store_dir(cache_dir),
            settings,
            client: OnceLock::new(),
        }
    }

    /// The same registry settings, with pulled images kept under `cache_dir` instead.
    pub(crate) fn with_store(&self, cache_dir: &Path) -> Self {
        Self::new(cache_dir, self.settings.clone())
    }

    /// The registry client.
    ///
    /// # Errors
    /// [`CliError::RegistryImage`] when it cannot be set up (an unreadable `--registry-ca`).
    pub(crate) fn client(&self) -> Result<&Client, CliError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let options = Options {
            platform: host_platform(),
            insecure: self.settings.insecure.clone(),
            ca_file: self.settings.ca_file.clone(),
            ..Options::default()
        };
        let client = Client::new(options).map_err(|source| CliError::RegistryImage {
            what: "cannot set up the registry client".to_owned(),
            source: Box::new(source),
        })?;
        Ok(self.client.get_or_init(|| client))
    }

    /// The image `text` names (relative to `base`), readable as a layout: a layout as it is,
    /// a registry image pulled into the store.
    ///
    /// # Errors
    /// A usage error for a bad reference or an archive (which is written only); a registry
    /// error when the pull fails.
    pub(crate) fn resolve(&self, text: &str, base: &Path) -> Result<ImageRef, CliError> {
        match Location::parse(text, base)? {
            Location::Layout(layout) => Ok(layout),
            Location::Registry(reference) => self.pull(&reference),
            Location::Archive { .. } => Err(CliError::Usage(format!(
                "image reference `{text}`: a docker-archive is written only; read images from oci:DIR[:TAG] or docker://"
            ))),
        }
    }

    /// Pulls `reference` into its store layout (only what that lacks).
    fn pull(&self, reference: &Reference) -> Result<ImageRef, CliError> {
        let client = self.client()?;
        let key = hex(&Sha256::digest(reference.to_string().as_bytes()));
        let dir = self.store.join("images").join(&key[..32]);
        let blobs = BlobDir::new(dir.join("blobs").join("sha256"));
        let pulled = client
            .pull(reference, &blobs)
            .map_err(|source| CliError::RegistryImage {
                what: format!("cannot pull docker://{reference}"),
                source: Box::new(source),
            })?;
        write_layout(&dir, &pulled.manifest).map_err(|source| CliError::Io {
            what: format!("cannot write the store layout {}", dir.display()),
            source,
        })?;
        Ok(ImageRef::OciLayout {
            dir,
            tag: PULLED_TAG.to_owned(),
        })
    }
}

/// The parts of a manifest or index that choosing and reading an image needs.
#[derive(serde::Deserialize)]
struct Shape {
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

impl Images {
    /// Brings the manifest (for this host's platform) and the config of `reference` into a
    /// layout at `dir`, and no layer: enough to inspect the image.
    ///
    /// # Errors
    /// A registry error when a request fails or the registry has no image for this platform.
    pub(crate) fn fetch_config(
        &self,
        reference: &Reference,
        dir: &Path,
    ) -> Result<ImageRef, CliError> {
        let client = self.client()?;
        let shown = format!("docker://{reference}");
        let registry_err = |source| CliError::RegistryImage {
            what: format!("cannot read {shown}"),
            source: Box::new(source),
        };
        let bad = |message: String| CliError::Usage(format!("{shown}: {message}"));
        let mut fetched = client.fetch_manifest(reference).map_err(registry_err)?;
        let mut shape: Shape =
            serde_json::from_slice(&fetched.bytes).map_err(|e| bad(e.to_string()))?;
        if let Some(entries) = shape.manifests.take() {
            let wanted = host_platform();
            let entry = entries
                .iter()
                .find(|e| e.platform.as_ref().is_some_and(|p| wanted.matches(p)))
                .ok_or_else(|| bad(format!("the index has no image for {wanted}")))?;
            fetched = client
                .fetch_manifest(&reference.with_digest(entry.digest.clone()))
                .map_err(registry_err)?;
            shape = serde_json::from_slice(&fetched.bytes).map_err(|e| bad(e.to_string()))?;
        }
        let config = shape
            .config
            .ok_or_else(|| bad("the manifest names no config".to_owned()))?;
        let blobs = BlobDir::new(dir.join("blobs").join("sha256"));
        client
            .pull_blobs(reference, &[config], &blobs)
            .map_err(registry_err)?;
        let io_err = |source| CliError::Io {
            what: format!("cannot write {}", dir.display()),
            source,
        };
        std::fs::write(blobs.path(&fetched.descriptor.digest), &fetched.bytes).map_err(io_err)?;
        write_layout(dir, &fetched.descriptor).map_err(io_err)?;
        Ok(ImageRef::OciLayout {
            dir: dir.to_owned(),
            tag: PULLED_TAG.to_owned(),
        })
    }
}

impl Images {
    /// Adds the SBOM layers' blobs of the image `layout` holds (as [`Images::fetch_config`]
    /// left it) from `reference`: the SBOM layer and the run image's, which alone
    /// `strata sbom download` reads.
    ///
    /// # Errors
    /// The image records no SBOM layer, or the registry does not give its blob.
    pub(crate) fn fetch_sbom_layer(
        &self,
        reference: &Reference,
        layout: &ImageRef,
        shown: &str,
    ) -> Result<(), CliError> {
        let ImageRef::OciLayout { dir, tag } = layout;
        let opened = strata_exporter::layout::Layout::open(dir)?;
        let (_, manifest) = opened.resolve(tag)?;
        let config: oci_spec::image::ImageConfiguration =
            opened.read_json(manifest.config(), "image config")?;
        let at = strata_exporter::sbomdownload::locate(shown, &config)?;
        let layers = strata_exporter::sbomdownload::layer_descriptors(shown, &manifest, &at)?;
        let descriptors: Vec<Descriptor> = serde_json::from_value(
            serde_json::to_value(layers).map_err(|e| CliError::Usage(format!("{shown}: {e}")))?,
        )
        .map_err(|e| CliError::Usage(format!("{shown}: {e}")))?;
        let blobs = BlobDir::new(dir.join("blobs").join("sha256"));
        self.client()?
            .pull_blobs(reference, &descriptors, &blobs)
            .map_err(|source| CliError::RegistryImage {
                what: format!("cannot fetch the SBOM layer of {shown}"),
                source: Box::new(source),
            })?;
        Ok(())
    }
}

/// Makes `dir` a layout whose one image, tagged [`PULLED_TAG`], is `manifest` (its blobs are
/// there already): `index.json` is replaced through a temp file and a rename, so a reader
/// sees a whole index.
fn write_layout(dir: &Path, manifest: &Descriptor) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": manifest.media_type,
            "digest": manifest.digest.as_str(),
            "size": manifest.size,
            "annotations": {"org.opencontainers.image.ref.name": PULLED_TAG},
        }],
    });
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), index.to_string())?;
    tmp.persist(dir.join("index.json"))
        .map(|_| ())
        .map_err(|e| e.error)
}

/// This host's platform, as images name it.
pub(crate) fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        os: "linux".to_owned(),
        architecture: architecture.to_owned(),
        variant: None,
    }
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_transport() {
        let base = Path::new("/w");
        assert!(matches!(
            Location::parse("oci:out:v1", base).unwrap(),
            Location::Layout(ImageRef::OciLayout { dir, tag }) if dir == Path::new("/w/out") && tag == "v1"
        ));
        let Location::Registry(r) = Location::parse("docker://127.0.0.1:5000/a/b:1", base).unwrap()
        else {
            panic!("not a registry reference")
        };
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("127.0.0.1:5000", "a/b", Some("1"))
        );
        assert_eq!(
            Location::parse("docker-archive:x.tar:app:v1", base).unwrap(),
            Location::Archive {
                path: PathBuf::from("/w/x.tar"),
                name: Some("app:v1".to_owned())
            }
        );
        assert!(Location::parse("docker://", base).is_err());
        assert!(Location::parse("docker-archive:", base).is_err());
        assert!(Location::parse("docker-archive:x.tar:Bad Name", base).is_err());
    }
}
