//! `strata builder create`: a builder image from a `builder.toml`, in the shape pack writes.
//!
//! The image is the build image with layers added on top, in the order of pack's
//! `Builder.Save`:
//!
//! 1. the default directories: `/workspace` and `/layers` owned by the build image's CNB user,
//!    `/cnb`, `/cnb/buildpacks`, `/cnb/extensions`, `/platform`, `/platform/env`,
//!    `/cnb/build-config` and `/cnb/build-config/env` owned by root;
//! 2. the lifecycle (`/cnb/lifecycle/` and the `/lifecycle` link), when one is given;
//! 3. one layer per buildpack, component and composite, sorted by `id@version`:
//!    `/cnb/buildpacks/<escaped id>/<version>/` with the buildpack directory's files, owned
//!    by root, modes by pack's rule ([`ModePolicy::Executable`]);
//! 4. `/cnb/order.toml` (the order with every version filled in), `/cnb/stack.toml` (the first
//!    run image), `/cnb/run.toml` (every run image with its mirrors);
//! 5. `/cnb/build-config/env/`, when `builder.toml` has `[[build.env]]`.
//!
//! The build image's layers are reused as they are (hardlinked or copied, never recompressed)
//! and its config is kept (Env, User, labels, history), with the builder labels
//! (`io.buildpacks.builder.metadata`, `io.buildpacks.buildpack.layers`,
//! `io.buildpacks.buildpack.order`, and the empty extension labels pack writes) added and
//! `WorkingDir` set to `/layers`; `CNB_USER_ID`/`CNB_GROUP_ID` are added to the Env when the
//! build image names its user only in `User` (pack and the lifecycle need them). As pack
//! does, a builder whose buildpacks' `[[targets]]` the build image does not satisfy is
//! refused, and `[stack] id` must be the build image's. Every new layer comes from the one reproducible tar writer
//! and every JSON blob is canonical, so the same inputs give the same manifest digest wherever
//! the files are checked out and whenever the command runs.
//!
//! A run image named by a relative `oci:` path (relative to `builder.toml`) is recorded
//! relative to the directory holding the output layout (where a builder image's relative names are
//! read from), so a builder layout and its run image move
//! together; registry names are recorded as written.
//!
//! Writing goes through [`create`], which picks the destination from the [`ImageRef`]: an OCI
//! layout today (staged, then committed next to the layout's other images), a registry when
//! `ImageRef` gains one; [`assemble`] itself only writes blobs into a staging directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, MediaType};
use strata_planner::{Builder, Buildpack};

use crate::archive::{
    ArchiveError, Compression, LayerBuilder, ModePolicy, Owner, format_timestamp,
};
use crate::baseconfig::{base_labels, config_on_base, image_manifest, label_map, layer_history};
use crate::builderconfig::BuilderConfig;
use crate::builderlabels::{
    BUILD_CONFIG_ENV_DIR, BuilderMetadata, CreatorMetadata, EXTENSION_LAYERS_LABEL, LAYERS_LABEL,
    LifecycleMetadata, METADATA_LABEL, MIXINS_LABEL, ModuleLayers, ORDER_EXTENSIONS_LABEL,
    ORDER_LABEL, ORDER_PATH, OrderFile, RUN_PATH, RunFile, RunImageMetadata, STACK_ID_LABEL,
    STACK_PATH, StackFile, StackMetadata, buildpack_dir,
};
use crate::buildermodules::{check_targets, label_order, layer_info, module_infos, resolved_order};
use crate::layout::{LayoutError, Staging};
use crate::lifecycletar::Lifecycle;
use crate::reference::{ImageRef, RefError};
use crate::relocate::{holder_of, relative_oci_name};
use crate::runimage::{RunImage, RunImageError};

/// The name a builder records as its maker.
pub const CREATOR: &str = "strata";

/// The build image labels that name its distribution.
const DISTRO_NAME_LABEL: &str = "io.buildpacks.base.distro.name";
const DISTRO_VERSION_LABEL: &str = "io.buildpacks.base.distro.version";

/// The `WorkingDir` of a builder image, as pack sets it.
pub const WORKING_DIR: &str = "/layers";

/// Everything a builder image is made of.
#[derive(Debug)]
pub struct BuilderRequest<'a> {
    /// The builder's buildpacks and order, loaded and checked by the planner.
    pub builder: &'a Builder,
    /// The rest of `builder.toml`.
    pub config: &'a BuilderConfig,
    /// The build image, the base of the builder.
    pub build_image: &'a RunImage,
    /// The lifecycle to include, if any.
    pub lifecycle: Option<&'a Lifecycle>,
    /// The mtime of every new file and the config's `created` (seconds since the epoch).
    pub epoch: u64,
    /// How new layers are compressed.
    pub compression: Compression,
    /// The version recorded in `createdBy`.
    pub creator_version: &'a str,
}

/// One layer of a builder image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderLayer {
    /// What the layer holds (the history line); empty for the build image's layers.
    pub created_by: String,
    /// Its diffID.
    pub diff_id: String,
}

/// A builder image written to a staging area (and, through [`create`], committed).
#[derive(Debug, Clone)]
pub struct CreatedBuilder {
    /// The manifest descriptor.
    pub manifest: Descriptor,
    /// The layers, bottom first, the build image's included.
    pub layers: Vec<BuilderLayer>,
    /// `io.buildpacks.builder.metadata` as written.
    pub metadata: BuilderMetadata,
}

/// Why a builder image cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum BuilderCreateError {
    /// Neither `--build-image` nor `builder.toml` names a build image.
    #[error(
        "{} names no build image{}: a builder is made on one; set `[build] image = \"oci:DIR:TAG\"` or pass --build-image",
        path.display(),
        if *.host { " (`host` is the host's own system, not an image)" } else { "" }
    )]
    NoBuildImage {
        /// The `builder.toml`.
        path: PathBuf,
        /// Whether it says `host`.
        host: bool,
    },
    /// The build image reference does not parse.
    #[error("build image `{name}` of {}", path.display())]
    BuildImageRef {
        /// The reference as written.
        name: String,
        /// Where it was written (`builder.toml`, or the command line).
        path: PathBuf,
        /// Why it does not parse.
        #[source]
        source: RefError,
    },
    /// `[stack] id` is not the build image's stack.
    #[error(
        "{}: `[stack] id` is `{config}` but build image {reference} has stack `{image}`",
        path.display()
    )]
    StackMismatch {
        /// The `builder.toml`.
        path: PathBuf,
        /// `[stack] id`.
        config: String,
        /// The build image's `io.buildpacks.stack.id` (empty when it has none).
        image: String,
        /// The build image.
        reference: String,
    },
    /// The build image cannot be loaded, or its CNB user read.
    #[error("cannot use build image {reference}")]
    BuildImage {
        /// The build image.
        reference: String,
        /// What is wrong with it.
        #[source]
        source: Box<RunImageError>,
    },
    /// The build image's build user cannot be told.
    #[error(transparent)]
    BuildUser(#[from] crate::builduser::BuildUserError),
    /// A build image layer is not on disk.
    #[error("build image {reference}: layer {digest} is not on disk")]
    LayerNotLocal {
        /// The build image.
        reference: String,
        /// The layer.
        digest: String,
    },
    /// A buildpack's `buildpack.toml` cannot be read again for its labels.
    #[error("cannot read {}", path.display())]
    Descriptor {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A buildpack is for none of what the build image is.
    #[error("buildpack {buildpack} is for {targets}, not for the build image's {image}")]
    UnsupportedTarget {
        /// `id@version`.
        buildpack: String,
        /// Its targets.
        targets: String,
        /// The build image's os/arch and distribution.
        image: String,
    },
    /// An order entry names a version-less buildpack the builder does not have.
    #[error("the order names buildpack {reference}, which the builder does not have")]
    UnknownBuildpack {
        /// `id[@version]`.
        reference: String,
    },
    /// A layer could not be written.
    #[error("cannot write the builder's {what} layer")]
    Layer {
        /// Which layer.
        what: String,
        /// The underlying error.
        #[source]
        source: ArchiveError,
    },
    /// The output layout could not be written.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The config or manifest could not be built.
    #[error("cannot assemble the builder image: {0}")]
    Spec(String),
}

impl BuilderCreateError {
    /// Whether the error is about the input (`builder.toml`, the build image), not about
    /// writing the output.
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            BuilderCreateError::Layer { .. }
                | BuilderCreateError::Layout(_)
                | BuilderCreateError::Spec(_)
        )
    }
}

/// The build image a builder is made on: `flag` (`--build-image`, relative to the working
/// directory) if given, else `[build] image` of `config` (relative to the `builder.toml` at
/// `path`).
///
/// # Errors
/// [`BuilderCreateError::NoBuildImage`] when neither names an image (or it says `host`),
/// [`BuilderCreateError::BuildImageRef`] when the reference does not parse.
pub fn build_image_ref(
    flag: Option<&str>,
    config: &BuilderConfig,
    path: &Path,
) -> Result<ImageRef, BuilderCreateError> {
    let (name, base, source) = match (flag, config.build_image.as_deref()) {
        (Some("host"), _) | (None, Some("host")) => {
            return Err(BuilderCreateError::NoBuildImage {
                path: path.to_owned(),
                host: true,
            });
        }
        (Some(name), _) => (name, Path::new("."), Path::new("--build-image")),
        (None, Some(name)) => (name, path.parent().unwrap_or(Path::new("/")), path),
        (None, None) => {
            return Err(BuilderCreateError::NoBuildImage {
                path: path.to_owned(),
                host: false,
            });
        }
    };
    ImageRef::parse(name)
        .map(|r| r.relative_to(base))
        .map_err(|err| BuilderCreateError::BuildImageRef {
            name: name.to_owned(),
            path: source.to_owned(),
            source: err,
        })
}

/// Loads the build image `reference` points at.
///
/// # Errors
/// [`BuilderCreateError::BuildImage`] naming it, with why it cannot be loaded.
pub fn load_build_image(reference: &ImageRef) -> Result<RunImage, BuilderCreateError> {
    RunImage::load(reference).map_err(|source| BuilderCreateError::BuildImage {
        reference: reference.to_string(),
        source: Box::new(source),
    })
}

/// Writes the builder image to `output` and tags it there; other images of a layout are kept.
///
/// # Errors
/// As [`assemble`], or a [`LayoutError`] committing to the layout.
pub fn create(
    req: &BuilderRequest<'_>,
    output: &ImageRef,
) -> Result<CreatedBuilder, BuilderCreateError> {
    match output {
        ImageRef::OciLayout { dir, tag } => {
            let run_images = recorded_run_images(req, Some(dir));
            let staging = Staging::new(dir)?;
            let created = assemble(req, &run_images, &staging)?;
            staging.commit(&[(tag.clone(), created.manifest.clone())])?;
            Ok(created)
        }
    }
}

/// The run images as the builder records them: relative `oci:` layouts rewritten from the
/// `builder.toml`'s directory to the directory holding the output layout `output_dir` (as a
/// builder image's names are read: relative to where its layout is, as a `builder.toml`'s
/// are to where the file is), kept as written without one.
pub fn recorded_run_images(
    req: &BuilderRequest<'_>,
    output_dir: Option<&Path>,
) -> Vec<RunImageMetadata> {
    let builder_dir = req.builder.path.parent().unwrap_or(Path::new("/"));
    let rewrite = |name: &String| match output_dir {
        Some(out) => relative_oci_name(name, builder_dir, holder_of(out)),
        None => name.clone(),
    };
    req.config
        .run_images
        .iter()
        .map(|image| RunImageMetadata {
            image: rewrite(&image.image),
            mirrors: image.mirrors.iter().map(rewrite).collect(),
        })
        .collect()
}

/// The build user of `image`, as a build on that image runs (see [`crate::builduser`]).
///
/// # Errors
/// [`crate::builduser::BuildUserError`] for ids that are not numbers or a `User` the image
/// does not know.
pub fn build_user(image: &RunImage) -> Result<Owner, crate::builduser::BuildUserError> {
    let (uid, gid) = crate::builduser::build_user(image)?;
    Ok(Owner::new(uid, gid))
}

/// The image being assembled: its layers so far (the build image's, then each new one as it
/// is written into the staging area).
struct Assembly<'a> {
    req: &'a BuilderRequest<'a>,
    staging: &'a Staging,
    descriptors: Vec<Descriptor>,
    written: Vec<BuilderLayer>,
}

impl Assembly<'_> {
    fn builder(&self) -> LayerBuilder {
        LayerBuilder::new(Owner::ROOT, self.req.epoch)
    }

    fn push(
        &mut self,
        created_by: String,
        layer: LayerBuilder,
    ) -> Result<String, BuilderCreateError> {
        let err = |source| BuilderCreateError::Layer {
            what: created_by.clone(),
            source,
        };
        let blob = layer
            .finish(self.req.compression, self.staging.blob_dir())
            .map_err(err)?;
        self.descriptors.push(blob.descriptor().map_err(err)?);
        self.written.push(BuilderLayer {
            created_by,
            diff_id: blob.diff_id.clone(),
        });
        Ok(blob.diff_id)
    }

    /// A layer of one file, `/<path>`, root-owned 0644.
    fn file(
        &mut self,
        created_by: &str,
        path: &str,
        bytes: Vec<u8>,
    ) -> Result<(), BuilderCreateError> {
        let mut layer = self.builder();
        layer
            .add_bytes(path.trim_start_matches('/'), bytes, 0o644)
            .map_err(|source| BuilderCreateError::Layer {
                what: created_by.to_owned(),
                source,
            })?;
        self.push(created_by.to_owned(), layer).map(|_| ())
    }

    /// The build image's layers, reused as they are.
    fn base_layers(&mut self) -> Result<(), BuilderCreateError> {
        let base = self.req.build_image;
        for layer in &base.layers {
            let Some(blob) = &layer.blob else {
                return Err(BuilderCreateError::LayerNotLocal {
                    reference: base.reference.clone(),
                    digest: layer.descriptor.digest().to_string(),
                });
            };
            self.staging.put_blob_file(blob, &layer.descriptor)?;
            self.descriptors.push(layer.descriptor.clone());
            self.written.push(BuilderLayer {
                created_by: String::new(),
                diff_id: layer.diff_id.clone(),
            });
        }
        Ok(())
    }

    /// The lifecycle layer, when there is a lifecycle; its metadata (empty without).
    fn lifecycle_layer(&mut self) -> Result<LifecycleMetadata, BuilderCreateError> {
        let Some(lifecycle) = self.req.lifecycle else {
            return Ok(LifecycleMetadata::default());
        };
        let mut layer = self.builder();
        lifecycle
            .add_to(&mut layer)
            .map_err(|source| BuilderCreateError::Layer {
                what: "lifecycle".to_owned(),
                source,
            })?;
        self.push(format!("Lifecycle {}", lifecycle.metadata.version), layer)?;
        Ok(lifecycle.metadata.clone())
    }

    /// One layer per buildpack, by `id@version` as pack sorts them; their label entries.
    fn buildpack_layers(&mut self) -> Result<ModuleLayers, BuilderCreateError> {
        let mut buildpacks: Vec<&Buildpack> = self
            .req
            .builder
            .registry
            .iter()
            .map(AsRef::as_ref)
            .collect();
        buildpacks.sort_by_key(|bp| format!("{}@{}", bp.id(), bp.version()));
        let mut module_layers = ModuleLayers::new();
        for bp in buildpacks {
            let created_by = format!("Buildpack {}", bp.reference());
            let dir = buildpack_dir(bp.id().as_str(), bp.version());
            let dir = dir.trim_start_matches('/');
            let mut layer = self.builder().with_mode_policy(ModePolicy::Executable);
            let id_dir = dir.rsplit_once('/').map_or(dir, |(parent, _)| parent);
            let added = layer
                .add_dir(id_dir, 0o755)
                .and_then(|()| layer.add_dir_tree(&bp.dir, dir));
            added.map_err(|source| BuilderCreateError::Layer {
                what: created_by.clone(),
                source,
            })?;
            let diff_id = self.push(created_by, layer)?;
            module_layers
                .entry(bp.id().to_string())
                .or_default()
                .insert(bp.version().to_owned(), layer_info(bp, diff_id)?);
        }
        Ok(module_layers)
    }

    /// `order.toml`, `stack.toml`, `run.toml` and the build config env; the stack metadata.
    fn file_layers(
        &mut self,
        run_images: &[RunImageMetadata],
    ) -> Result<StackMetadata, BuilderCreateError> {
        let resolved = resolved_order(self.req.builder)?;
        self.file(
            "Order",
            ORDER_PATH,
            toml_bytes(&OrderFile { order: resolved })?,
        )?;
        let stack = StackMetadata {
            run_image: run_images.first().cloned().unwrap_or_default(),
        };
        let stack_toml = if run_images.is_empty() {
            Vec::new()
        } else {
            toml_bytes(&StackFile {
                run_image: stack.run_image.clone(),
            })?
        };
        self.file("Stack", STACK_PATH, stack_toml)?;
        let run = RunFile {
            images: run_images.to_vec(),
        };
        self.file("Run images", RUN_PATH, toml_bytes(&run)?)?;
        let env = &self.req.config.build_env;
        if !env.is_empty() {
            let mut layer = self.builder();
            for (file, value) in env {
                let path = format!("{}/{file}", BUILD_CONFIG_ENV_DIR.trim_start_matches('/'));
                layer
                    .add_bytes(&path, value.clone().into_bytes(), 0o644)
                    .map_err(|source| BuilderCreateError::Layer {
                        what: "build config env".to_owned(),
                        source,
                    })?;
            }
            self.push("Build config env".to_owned(), layer)?;
        }
        Ok(stack)
    }

    /// The config (the build image's, with `labels`, `WorkingDir /layers` and the build
    /// `user`'s `CNB_USER_ID`/`CNB_GROUP_ID` where it has none) and the manifest.
    fn finish(
        self,
        user: Owner,
        labels: BTreeMap<String, String>,
        metadata: BuilderMetadata,
    ) -> Result<CreatedBuilder, BuilderCreateError> {
        let base = self.req.build_image;
        let spec = |e: oci_spec::OciSpecError| BuilderCreateError::Spec(e.to_string());
        let created = format_timestamp(self.req.epoch);
        let mut config = base.config.config().clone().unwrap_or_default();
        // Pack and the lifecycle read the build user from these and refuse a builder
        // without them; a build image that names its user only in `User` gets them.
        let mut env = config.env().clone().unwrap_or_default();
        for (name, id) in [("CNB_USER_ID", user.uid), ("CNB_GROUP_ID", user.gid)] {
            if base.env_var(name).is_none() {
                env.push(format!("{name}={id}"));
            }
        }
        config.set_env(Some(env));
        config.set_labels(Some(label_map(labels)));
        config.set_working_dir(Some(WORKING_DIR.to_owned()));
        let added = &self.written[base.layers.len()..];
        let history =
            layer_history(&created, added.iter().map(|l| l.created_by.as_str())).map_err(spec)?;
        let diff_ids: Vec<String> = added.iter().map(|l| l.diff_id.clone()).collect();
        let image_config = config_on_base(&base.config, created, config, &diff_ids, Some(history))
            .map_err(spec)?;
        let config_desc = self
            .staging
            .put_json(&image_config, MediaType::ImageConfig)?;
        let manifest = image_manifest(config_desc, self.descriptors).map_err(spec)?;
        let manifest = self.staging.put_json(&manifest, MediaType::ImageManifest)?;
        Ok(CreatedBuilder {
            manifest,
            layers: self.written,
            metadata,
        })
    }
}

/// Writes every layer blob, the config and the manifest of the builder image into `staging`,
/// recording `run_images` (see [`recorded_run_images`]).
///
/// # Errors
/// A stack id that is not the build image's, a build image layer not on disk, an unreadable
/// buildpack, or an error writing a layer or blob.
pub fn assemble(
    req: &BuilderRequest<'_>,
    run_images: &[RunImageMetadata],
    staging: &Staging,
) -> Result<CreatedBuilder, BuilderCreateError> {
    let base = req.build_image;
    let mut labels = base_labels(&base.config);
    if let Some(stack) = &req.config.stack_id {
        let image_stack = labels.get(STACK_ID_LABEL).cloned().unwrap_or_default();
        if *stack != image_stack {
            return Err(BuilderCreateError::StackMismatch {
                path: req.builder.path.clone(),
                config: stack.clone(),
                image: image_stack,
                reference: base.reference.clone(),
            });
        }
    }
    let label = |name: &str| labels.get(name).map_or("", String::as_str);
    check_targets(
        req.builder,
        &base.os().to_string(),
        &base.arch().to_string(),
        (label(DISTRO_NAME_LABEL), label(DISTRO_VERSION_LABEL)),
    )?;
    let user = build_user(base)?;

    let mut image = Assembly {
        req,
        staging,
        descriptors: Vec::new(),
        written: Vec::new(),
    };
    image.base_layers()?;
    let dirs = default_dirs(image.builder(), user).map_err(|source| BuilderCreateError::Layer {
        what: "default directories".to_owned(),
        source,
    })?;
    image.push("Default directories".to_owned(), dirs)?;
    let lifecycle = image.lifecycle_layer()?;
    let module_layers = image.buildpack_layers()?;
    let stack = image.file_layers(run_images)?;

    let metadata = BuilderMetadata {
        description: req.config.description.clone(),
        buildpacks: module_infos(req.builder)?,
        extensions: Vec::new(),
        stack,
        lifecycle,
        created_by: CreatorMetadata {
            name: CREATOR.to_owned(),
            version: req.creator_version.to_owned(),
        },
        images: run_images.to_vec(),
    };
    labels.insert(METADATA_LABEL.to_owned(), json(&metadata)?);
    labels.insert(LAYERS_LABEL.to_owned(), json(&module_layers)?);
    labels.insert(
        ORDER_LABEL.to_owned(),
        json(&label_order(&req.builder.order))?,
    );
    labels.insert(EXTENSION_LAYERS_LABEL.to_owned(), "{}".to_owned());
    labels.insert(ORDER_EXTENSIONS_LABEL.to_owned(), "null".to_owned());
    labels
        .entry(MIXINS_LABEL.to_owned())
        .or_insert_with(|| "null".to_owned());
    image.finish(user, labels, metadata)
}

/// `/workspace` and `/layers` for `user`, the CNB directories for root, as pack writes them.
fn default_dirs(mut layer: LayerBuilder, user: Owner) -> Result<LayerBuilder, ArchiveError> {
    for dir in ["workspace", "layers"] {
        layer.add_dir_owned(dir, 0o755, user)?;
    }
    for dir in [
        "cnb",
        "cnb/buildpacks",
        "cnb/extensions",
        "platform",
        "platform/env",
        "cnb/build-config",
        "cnb/build-config/env",
    ] {
        layer.add_dir(dir, 0o755)?;
    }
    Ok(layer)
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, BuilderCreateError> {
    serde_json::to_string(value).map_err(|e| BuilderCreateError::Spec(e.to_string()))
}

fn toml_bytes<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, BuilderCreateError> {
    toml::to_string(value)
        .map(String::into_bytes)
        .map_err(|e| BuilderCreateError::Spec(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_build_image_is_the_flag_else_the_config_and_never_the_host() {
        let path = Path::new("/repo/builder.toml");
        let config = |image: Option<&str>| BuilderConfig {
            build_image: image.map(str::to_owned),
            ..BuilderConfig::default()
        };
        let from_config = build_image_ref(None, &config(Some("oci:stack:build")), path).unwrap();
        assert_eq!(from_config.dir(), Path::new("/repo/stack"));
        let from_flag =
            build_image_ref(Some("oci:other:b"), &config(Some("oci:stack:build")), path).unwrap();
        assert_eq!(from_flag.dir(), Path::new("./other"));
        for (flag, image, host) in [
            (None, None, false),
            (None, Some("host"), true),
            (Some("host"), Some("oci:stack:build"), true),
        ] {
            match build_image_ref(flag, &config(image), path) {
                Err(BuilderCreateError::NoBuildImage { host: h, .. }) => assert_eq!(h, host),
                other => panic!("{flag:?} {image:?}: {other:?}"),
            }
        }
        assert!(matches!(
            build_image_ref(None, &config(Some("cnbs/build:jammy")), path),
            Err(BuilderCreateError::BuildImageRef { .. })
        ));
    }

    #[test]
    fn buildpack_files_get_packs_modes() {
        let policy = ModePolicy::Executable;
        assert_eq!(policy.apply(0o100_600), 0o644);
        assert_eq!(policy.apply(0o100_664), 0o644);
        assert_eq!(policy.apply(0o100_700), 0o755);
        assert_eq!(policy.apply(0o104_744), 0o755);
        assert_eq!(policy.apply(0o040_700), 0o755);
        assert_eq!(policy.apply(0o040_600), 0o755);
    }
}
