//! Run images: the base an app image is assembled on, and that rebase swaps.
//!
//! What export and rebase need from a run image is small: its manifest (the layer descriptors
//! to reuse as they are), its config (os/arch, env, user, labels to inherit), the diffID of each
//! layer (for `rootfs.diff_ids` and `runImage.topLayer`), and where each layer blob sits on disk
//! so it can be hardlinked or copied into the output. [`RunImage`] is exactly that, whatever the
//! source: an OCI layout today (as `umoci`, `skopeo copy` or strata itself write them, with
//! gzip or uncompressed layers), the built-in base ([`crate::base`]), later a docker archive or
//! a registry.
//!
//! Loading reads and verifies only JSON (manifest and config are checked against their size
//! and sha256); layer blobs are located and their size checked, never hashed, so loading a
//! large base costs milliseconds. A layer count that differs from `rootfs.diff_ids` is an
//! error: pairing descriptors with the wrong diffIDs would produce an image that does not
//! unpack. A layer blob that is a symlink or other non-regular file is refused. Whether each
//! layer really decompresses to its diffID is [`crate::runproof`]'s check, made before an
//! image is exported on the run image.

use std::path::PathBuf;

use oci_spec::image::{
    Arch, Descriptor, Digest, DigestAlgorithm, ImageConfiguration, ImageManifest, MediaType, Os,
};

use strata_planner::{TargetEnv, UnbuildableTarget};

use crate::archive::Owner;
use crate::blobfile::kind_of;
use crate::layout::{Layout, LayoutError};
use crate::reference::ImageRef;

/// uid and gid of the CNB user when the run image does not set `CNB_USER_ID`/`CNB_GROUP_ID`.
pub const DEFAULT_CNB_ID: u32 = 1000;

/// What an image is loaded for, as its errors name it: the same loader reads run images and
/// build images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageRole {
    /// The base an app image is assembled on.
    Run,
    /// The root filesystem buildpacks run on.
    Build,
    /// An app image, run as it is (`strata run`).
    App,
}

impl std::fmt::Display for ImageRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImageRole::Run => "run image",
            ImageRole::Build => "build image",
            ImageRole::App => "image",
        })
    }
}

/// The run image labels that name its distribution, for `CNB_TARGET_DISTRO_*`.
const DISTRO_NAME_LABEL: &str = "io.buildpacks.base.distro.name";
const DISTRO_VERSION_LABEL: &str = "io.buildpacks.base.distro.version";
/// The run image label with its (deprecated) stack id, for `CNB_STACK_ID` and `[[stacks]]`.
const STACK_ID_LABEL: &str = "io.buildpacks.stack.id";

/// Docker's config and layer media types, which skopeo keeps for Docker images copied into a
/// layout with `--format v2s2`.
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// A run image, loaded.
#[derive(Clone, Debug)]
pub struct RunImage {
    /// How the image was named: the reference it was loaded from (`oci:DIR:TAG`) or
    /// `strata/builtin-base`.
    pub reference: String,
    /// Its manifest.
    pub manifest: ImageManifest,
    /// `sha256:<hex>` of the manifest.
    pub manifest_digest: String,
    /// Its config.
    pub config: ImageConfiguration,
    /// Its layers, bottom first, each with its diffID.
    pub layers: Vec<RunImageLayer>,
}

/// One layer of a run image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunImageLayer {
    /// The layer's descriptor as in the run image's manifest (digest, size, media type).
    pub descriptor: Descriptor,
    /// `sha256:<hex>` of the uncompressed layer, from the config's `rootfs.diff_ids`.
    pub diff_id: String,
    /// Where the blob is on disk, if it is (a registry image's layers are not).
    pub blob: Option<PathBuf>,
}

/// Errors loading a run image or reading its settings.
#[derive(Debug, thiserror::Error)]
pub enum RunImageError {
    /// The layout could not be read, has no such tag, or a JSON blob is missing or corrupt.
    #[error("cannot load {role} `{reference}`")]
    Layout {
        /// What the image was loaded as.
        role: ImageRole,
        /// The image reference.
        reference: String,
        /// What went wrong in the layout (boxed: it is the largest of these errors).
        #[source]
        source: Box<LayoutError>,
    },
    /// The manifest's config is not an image config.
    #[error("{role} `{reference}` has a config of media type `{media_type}`, not an image config")]
    NotAnImage {
        /// What the image was loaded as.
        role: ImageRole,
        /// The image reference.
        reference: String,
        /// The config descriptor's media type.
        media_type: String,
    },
    /// Manifest layers and `rootfs.diff_ids` differ in number.
    #[error(
        "{role} `{reference}` lists {layers} layers in its manifest but {diff_ids} diff_ids in its config"
    )]
    LayerCountMismatch {
        /// What the image was loaded as.
        role: ImageRole,
        /// The image reference.
        reference: String,
        /// Number of manifest layers.
        layers: usize,
        /// Number of diffIDs.
        diff_ids: usize,
    },
    /// A layer of a media type strata cannot reuse.
    #[error(
        "{role} `{reference}` has layer `{digest}` of media type `{media_type}`, which strata cannot use"
    )]
    UnsupportedLayer {
        /// What the image was loaded as.
        role: ImageRole,
        /// The image reference.
        reference: String,
        /// The layer digest.
        digest: String,
        /// Its media type.
        media_type: String,
    },
    /// A diffID that is not a sha256 digest.
    #[error("{role} `{reference}` has an invalid diff_id `{diff_id}`")]
    InvalidDiffId {
        /// What the image was loaded as.
        role: ImageRole,
        /// The image reference.
        reference: String,
        /// The offending value.
        diff_id: String,
    },
    /// A layer blob the manifest names is absent (or has the wrong size).
    #[error("{role} `{reference}` is incomplete: layer blob `{digest}` is missing or has the wrong size at `{}`", path.display())]
    MissingLayerBlob {
        /// What the image was loaded as.
        role: ImageRole,
        /// The image reference.
        reference: String,
        /// The layer digest.
        digest: String,
        /// Where it should be.
        path: PathBuf,
    },
    /// The run image is for a platform this host cannot build for.
    #[error(
        "run image `{reference}` is for {target}, but strata builds on this host, for {host} only"
    )]
    Unbuildable {
        /// The run image reference.
        reference: String,
        /// The image's platform, `os/arch[/variant]`.
        target: String,
        /// The host's, `os/arch`.
        host: String,
    },
    /// `CNB_USER_ID` or `CNB_GROUP_ID` is not a number.
    #[error("run image `{reference}` sets {name}=`{value}`, which is not a numeric id")]
    InvalidId {
        /// The run image reference.
        reference: String,
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
}

impl RunImage {
    /// Loads a run image from where `image_ref` points.
    ///
    /// # Errors
    /// [`RunImageError::Layout`] (missing layout, unknown tag — with the tags present —,
    /// missing or corrupt manifest or config), or an inconsistent image.
    pub fn load(image_ref: &ImageRef) -> Result<RunImage, RunImageError> {
        Self::load_as(image_ref, ImageRole::Run)
    }

    /// [`RunImage::load`], for an image used as `role`: its errors name it so.
    ///
    /// # Errors
    /// As [`RunImage::load`].
    pub fn load_as(image_ref: &ImageRef, role: ImageRole) -> Result<RunImage, RunImageError> {
        match image_ref {
            ImageRef::OciLayout { dir, tag } => {
                let reference = image_ref.to_string();
                let wrap = |source| RunImageError::Layout {
                    role,
                    reference: reference.clone(),
                    source: Box::new(source),
                };
                let layout = Layout::open(dir).map_err(wrap)?;
                let (descriptor, manifest) = layout.resolve(tag).map_err(wrap)?;
                let config_descriptor = manifest.config();
                match config_descriptor.media_type() {
                    MediaType::ImageConfig => {}
                    MediaType::Other(other) if other == DOCKER_CONFIG => {}
                    other => {
                        return Err(RunImageError::NotAnImage {
                            role,
                            reference,
                            media_type: other.to_string(),
                        });
                    }
                }
                let config: ImageConfiguration = layout
                    .read_json(config_descriptor, "image config")
                    .map_err(wrap)?;
                let layers = pair_layers((role, &reference), &manifest, &config, |layer| {
                    let path = layout.blob_path(layer.digest());
                    match std::fs::symlink_metadata(&path) {
                        Ok(meta) if meta.is_file() && meta.len() == layer.size() => Ok(path),
                        // A symlink is never followed, nor linked into an output as one.
                        Ok(meta) if !meta.is_file() => Err(RunImageError::Layout {
                            role,
                            reference: reference.clone(),
                            source: Box::new(LayoutError::NotAFile {
                                path,
                                kind: kind_of(meta.file_type()),
                            }),
                        }),
                        _ => Err(RunImageError::MissingLayerBlob {
                            role,
                            reference: reference.clone(),
                            digest: layer.digest().to_string(),
                            path,
                        }),
                    }
                })?;
                Ok(RunImage {
                    manifest_digest: descriptor.digest().to_string(),
                    reference,
                    manifest,
                    config,
                    layers,
                })
            }
        }
    }

    /// The CNB user: `CNB_USER_ID`/`CNB_GROUP_ID` from the config's Env, each
    /// [`DEFAULT_CNB_ID`] when unset.
    ///
    /// # Errors
    /// [`RunImageError::InvalidId`] for a value that is not a `u32`.
    pub fn cnb_user(&self) -> Result<Owner, RunImageError> {
        let id = |name: &'static str| match self.env_var(name) {
            None => Ok(DEFAULT_CNB_ID),
            Some(value) => value.trim().parse().map_err(|_| RunImageError::InvalidId {
                reference: self.reference.clone(),
                name,
                value: value.to_owned(),
            }),
        };
        Ok(Owner::new(id("CNB_USER_ID")?, id("CNB_GROUP_ID")?))
    }

    /// The value of `name` in the config's Env (the last one, as a container runtime does).
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.config
            .config()
            .as_ref()?
            .env()
            .as_ref()?
            .iter()
            .rev()
            .find_map(|entry| entry.strip_prefix(name)?.strip_prefix('='))
    }

    /// The operating system the image is for.
    pub fn os(&self) -> &Os {
        self.config.os()
    }

    /// The CPU architecture the image is for (GOARCH naming).
    pub fn arch(&self) -> &Arch {
        self.config.architecture()
    }

    /// The architecture variant (`v8` for arm64), if set.
    pub fn variant(&self) -> Option<&str> {
        self.config.variant().as_deref()
    }

    /// The target a build on this image is for: its os, architecture and variant, the
    /// distribution its `io.buildpacks.base.distro.*` labels name, and its
    /// `io.buildpacks.stack.id` (empty labels count as absent).
    ///
    /// # Errors
    /// [`RunImageError::Unbuildable`] when this host cannot build for that platform (strata
    /// runs buildpacks on the host: Linux on the host's architecture only).
    pub fn target(&self) -> Result<TargetEnv, RunImageError> {
        let label = |name: &str| {
            self.config
                .config()
                .as_ref()?
                .labels()
                .as_ref()?
                .get(name)
                .filter(|value| !value.is_empty())
                .cloned()
        };
        let target = TargetEnv {
            os: self.os().to_string(),
            arch: self.arch().to_string(),
            variant: self.variant().filter(|v| !v.is_empty()).map(str::to_owned),
            distro_name: label(DISTRO_NAME_LABEL),
            distro_version: label(DISTRO_VERSION_LABEL),
            stack_id: label(STACK_ID_LABEL),
        };
        target
            .check_buildable()
            .map_err(
                |UnbuildableTarget { target, host }| RunImageError::Unbuildable {
                    reference: self.reference.clone(),
                    target,
                    host,
                },
            )?;
        Ok(target)
    }

    /// The diffID of the top layer (`runImage.topLayer` in the lifecycle metadata).
    pub fn top_layer(&self) -> Option<&str> {
        self.layers.last().map(|l| l.diff_id.as_str())
    }
}

/// Pairs manifest layers with the config's diffIDs, checking media types and diffIDs, and
/// asks `locate` where each blob is.
fn pair_layers(
    (role, reference): (ImageRole, &str),
    manifest: &ImageManifest,
    config: &ImageConfiguration,
    mut locate: impl FnMut(&Descriptor) -> Result<PathBuf, RunImageError>,
) -> Result<Vec<RunImageLayer>, RunImageError> {
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(RunImageError::LayerCountMismatch {
            role,
            reference: reference.to_owned(),
            layers: manifest.layers().len(),
            diff_ids: diff_ids.len(),
        });
    }
    manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .map(|(descriptor, diff_id)| {
            let usable = match descriptor.media_type() {
                MediaType::ImageLayer | MediaType::ImageLayerGzip | MediaType::ImageLayerZstd => {
                    true
                }
                MediaType::Other(other) => other == DOCKER_LAYER_GZIP || other == DOCKER_LAYER,
                _ => false,
            };
            if !usable {
                return Err(RunImageError::UnsupportedLayer {
                    role,
                    reference: reference.to_owned(),
                    digest: descriptor.digest().to_string(),
                    media_type: descriptor.media_type().to_string(),
                });
            }
            let is_sha256 = diff_id
                .parse::<Digest>()
                .is_ok_and(|d| *d.algorithm() == DigestAlgorithm::Sha256);
            if !is_sha256 {
                return Err(RunImageError::InvalidDiffId {
                    role,
                    reference: reference.to_owned(),
                    diff_id: diff_id.clone(),
                });
            }
            Ok(RunImageLayer {
                descriptor: descriptor.clone(),
                diff_id: diff_id.clone(),
                blob: Some(locate(descriptor)?),
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::archive::{Compression, DEFAULT_MTIME, LayerBuilder};
    use crate::layout::Staging;
    use oci_spec::image::{
        ConfigBuilder, ImageConfigurationBuilder, ImageManifestBuilder, RootFsBuilder,
    };
    use std::path::Path;

    /// Writes an image with the given layers and Env into a layout, returns its reference.
    fn write_image(
        layout_dir: &Path,
        tag: &str,
        env: &[&str],
        layer_count: usize,
        diff_id_count: usize,
    ) -> ImageRef {
        let staging = Staging::new(layout_dir).unwrap();
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for i in 0..layer_count.max(diff_id_count) {
            let mut builder = LayerBuilder::new(Owner::ROOT, DEFAULT_MTIME);
            builder
                .add_bytes(&format!("f{i}"), format!("layer {i}"), 0o644)
                .unwrap();
            let blob = builder
                .finish(Compression::Gzip, staging.blob_dir())
                .unwrap();
            if i < layer_count {
                layers.push(blob.descriptor().unwrap());
            }
            if i < diff_id_count {
                diff_ids.push(blob.diff_id.clone());
            }
        }
        let config = ImageConfigurationBuilder::default()
            .os(Os::Linux)
            .architecture(Arch::Amd64)
            .config(
                ConfigBuilder::default()
                    .env(env.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>())
                    .build()
                    .unwrap(),
            )
            .rootfs(RootFsBuilder::default().diff_ids(diff_ids).build().unwrap())
            .build()
            .unwrap();
        let config = staging.put_json(&config, MediaType::ImageConfig).unwrap();
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config)
            .layers(layers)
            .build()
            .unwrap();
        let manifest = staging
            .put_json(&manifest, MediaType::ImageManifest)
            .unwrap();
        staging.commit(&[(tag.to_owned(), manifest)]).unwrap();
        ImageRef::OciLayout {
            dir: layout_dir.to_path_buf(),
            tag: tag.to_owned(),
        }
    }

    #[test]
    fn loads_layers_with_diff_ids_and_blob_paths() {
        let dir = tempfile::tempdir().unwrap();
        let reference = write_image(&dir.path().join("l"), "base", &[], 2, 2);
        let image = RunImage::load(&reference).unwrap();
        assert_eq!(image.reference, reference.to_string());
        assert_eq!(image.layers.len(), 2);
        for layer in &image.layers {
            let blob = layer.blob.as_ref().unwrap();
            assert_eq!(
                std::fs::metadata(blob).unwrap().len(),
                layer.descriptor.size()
            );
            assert_ne!(layer.diff_id, layer.descriptor.digest().to_string());
        }
        assert_eq!(image.top_layer(), Some(image.layers[1].diff_id.as_str()));
        assert_eq!(image.os(), &Os::Linux);
        assert_eq!(image.arch(), &Arch::Amd64);
        assert_eq!(image.cnb_user().unwrap(), Owner::new(1000, 1000));
    }

    #[test]
    fn cnb_user_comes_from_env_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let reference = write_image(
            &dir.path().join("l"),
            "t",
            &["CNB_USER_ID=1001", "CNB_GROUP_ID=1002", "CNB_USER_ID_X=5"],
            1,
            1,
        );
        let image = RunImage::load(&reference).unwrap();
        assert_eq!(image.cnb_user().unwrap(), Owner::new(1001, 1002));

        let reference = write_image(&dir.path().join("l2"), "t", &["CNB_GROUP_ID=abc"], 1, 1);
        let err = RunImage::load(&reference).unwrap().cnb_user().unwrap_err();
        assert!(
            matches!(
                err,
                RunImageError::InvalidId {
                    name: "CNB_GROUP_ID",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("abc"));
    }

    #[test]
    fn layer_count_must_match_diff_ids() {
        let dir = tempfile::tempdir().unwrap();
        let reference = write_image(&dir.path().join("l"), "t", &[], 2, 1);
        let err = RunImage::load(&reference).unwrap_err();
        assert!(
            matches!(
                err,
                RunImageError::LayerCountMismatch {
                    layers: 2,
                    diff_ids: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn missing_tag_names_layout_tag_and_tags_present() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        write_image(&layout, "base", &[], 1, 1);
        write_image(&layout, "other", &[], 1, 1);
        let err = RunImage::load(&ImageRef::OciLayout {
            dir: layout.clone(),
            tag: "nope".to_owned(),
        })
        .unwrap_err();
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(err.to_string().contains("nope"), "{err}");
        assert!(source.contains(&layout.display().to_string()), "{source}");
        assert!(
            source.contains("`nope`") && source.contains("base, other"),
            "{source}"
        );
    }

    #[test]
    fn missing_layer_blob_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let reference = write_image(&dir.path().join("l"), "t", &[], 1, 1);
        let image = RunImage::load(&reference).unwrap();
        std::fs::remove_file(image.layers[0].blob.as_ref().unwrap()).unwrap();
        let err = RunImage::load(&reference).unwrap_err();
        assert!(
            matches!(err, RunImageError::MissingLayerBlob { .. }),
            "{err}"
        );
    }
}
