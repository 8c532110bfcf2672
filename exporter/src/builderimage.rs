//! Builder images as input: a builder made by `pack builder create` (or `strata builder
//! create`), read as the lifecycle reads it.
//!
//! The labels are read first, from the config alone: `io.buildpacks.builder.metadata` must be
//! there, image extensions are refused, and every buildpack layer the
//! `io.buildpacks.buildpack.layers` label names must be a layer of the image. Then the image's
//! root filesystem is unpacked into the store, once, by [`crate::rootfs::unpack_rootfs`]
//! (content-addressed, every entry kept inside the tree); it is the same tree the sandbox runs
//! on when the builder is the build image. Everything else comes from that tree, never from a
//! host path: `/cnb/order.toml` (else the order label), `/cnb/run.toml` (else the legacy
//! `/cnb/stack.toml`, else the metadata label's run images), the operator env in
//! `/cnb/build-config/env/`, and each buildpack under `/cnb/buildpacks/<escaped id>/<version>/`.
//!
//! The tree is untrusted: the TOML files and the env directory are read with no link on the
//! way, and a buildpack directory (or its `buildpack.toml`) may reach its target through links
//! only while it stays inside the tree. The result is the [`Builder`] a `builder.toml` gives,
//! so detection and the plan do not know where the buildpacks came from.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use strata_engine::env::{EnvError, EnvModification, read_operator_env_dir};
use strata_engine::untrusted::{self, METADATA_LIMIT, UntrustedError};
use strata_planner::safepath::{self, PathError};
use strata_planner::{Builder, BuilderError, Buildpack, BuildpackError, Registry, RegistryError};

use crate::builderlabels::{
    BUILD_CONFIG_ENV_DIR, BuilderMetadata, EXTENSION_LAYERS_LABEL, LAYERS_LABEL, METADATA_LABEL,
    ModuleLayers, ORDER_EXTENSIONS_LABEL, ORDER_LABEL, ORDER_PATH, Order, OrderFile, RUN_PATH,
    RunFile, STACK_PATH, StackFile, buildpack_dir,
};
use crate::reference::ImageRef;
use crate::rootfs::{RootfsError, unpack_rootfs};
use crate::runimage::RunImage;
use crate::unpack::OwnerMap;

/// A builder image, read: the planner's [`Builder`] and what the platform takes from it.
#[derive(Debug, Clone)]
pub struct BuilderImage {
    /// The builder, with the buildpacks loaded from the unpacked tree.
    pub builder: Builder,
    /// The image itself (also the build image, unless another is named).
    pub image: RunImage,
    /// Where its root filesystem is unpacked in the store.
    pub rootfs: PathBuf,
    /// The operator env of `/cnb/build-config/env/`.
    pub build_config_env: Vec<EnvModification>,
}

/// Why a builder image cannot be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BuilderImageError {
    /// The image has no `io.buildpacks.builder.metadata` label: it is no builder.
    #[error("builder image `{reference}` has no label {METADATA_LABEL}: it is not a CNB builder")]
    NotABuilder {
        /// The image.
        reference: String,
    },
    /// A label is not the JSON pack writes.
    #[error("builder image `{reference}`: label {label} is malformed: {message}")]
    Label {
        /// The image.
        reference: String,
        /// The label.
        label: &'static str,
        /// What the JSON parser said.
        message: String,
    },
    /// The builder has image extensions.
    #[error(
        "builder image `{reference}` has image extensions ({what}): image extensions are not supported"
    )]
    #[diagnostic(help(
        "strata runs buildpacks only; use a builder without extensions, or build with pack"
    ))]
    Extensions {
        /// The image.
        reference: String,
        /// Where it names them.
        what: String,
    },
    /// The layers label names a layer the image does not have.
    #[error(
        "builder image `{reference}`: label {LAYERS_LABEL} puts buildpack {buildpack} in layer {diff_id}, which is not a layer of the image"
    )]
    UnknownLayer {
        /// The image.
        reference: String,
        /// `id@version`.
        buildpack: String,
        /// The diffID the label gives.
        diff_id: String,
    },
    /// The order names a buildpack the image does not carry.
    #[error("builder image `{reference}` has no buildpack {buildpack}, which {named_by} names")]
    MissingBuildpack {
        /// The image.
        reference: String,
        /// `id[@version]`.
        buildpack: String,
        /// What names it.
        named_by: String,
    },
    /// The image names a buildpack whose directory is not in its tree.
    #[error(
        "builder image `{reference}`: label {LAYERS_LABEL} lists buildpack {buildpack}, but the image has no {path}"
    )]
    MissingDir {
        /// The image.
        reference: String,
        /// `id@version`.
        buildpack: String,
        /// The directory in the image.
        path: String,
    },
    /// A path in the tree leads outside it (a link), or through a link where none may be.
    #[error("builder image `{reference}`: {path} is refused")]
    Outside {
        /// The image.
        reference: String,
        /// The path in the image.
        path: String,
        /// Why.
        #[source]
        source: PathError,
    },
    /// A file of the builder cannot be read.
    #[error("builder image `{reference}`: cannot read {path}")]
    Read {
        /// The image.
        reference: String,
        /// The path in the image.
        path: String,
        /// Why.
        #[source]
        source: UntrustedError,
    },
    /// `/cnb/run.toml` or `/cnb/stack.toml` is not valid TOML of its shape.
    #[error("builder image `{reference}`: {path} is malformed: {message}")]
    Toml {
        /// The image.
        reference: String,
        /// The path in the image.
        path: String,
        /// What the TOML parser said.
        message: String,
    },
    /// Neither `/cnb/order.toml` nor the order label is there.
    #[error(
        "builder image `{reference}` has no order: neither {ORDER_PATH} nor label {ORDER_LABEL}"
    )]
    NoOrder {
        /// The image.
        reference: String,
    },
    /// A buildpack in the image is not what the label says it is.
    #[error(
        "builder image `{reference}`: {path} holds buildpack {found}, but label {LAYERS_LABEL} says {buildpack}"
    )]
    WrongBuildpack {
        /// The image.
        reference: String,
        /// The directory in the image.
        path: String,
        /// What the label says.
        buildpack: String,
        /// What its `buildpack.toml` says.
        found: String,
    },
    /// A buildpack's `buildpack.toml` is invalid.
    #[error("builder image `{reference}`: buildpack at {path}")]
    Buildpack {
        /// The image.
        reference: String,
        /// The directory in the image.
        path: String,
        /// Why.
        #[source]
        #[diagnostic_source]
        source: BuildpackError,
    },
    /// Two buildpacks with one id and version.
    #[error("builder image `{reference}`")]
    Registry {
        /// The image.
        reference: String,
        /// Why.
        #[source]
        source: RegistryError,
    },
    /// The order or a composite's order is wrong.
    #[error("builder image `{reference}`")]
    Builder {
        /// The image.
        reference: String,
        /// Why.
        #[source]
        #[diagnostic_source]
        source: BuilderError,
    },
    /// The operator env cannot be read.
    #[error("builder image `{reference}`: cannot read {BUILD_CONFIG_ENV_DIR}")]
    Env {
        /// The image.
        reference: String,
        /// Why.
        #[source]
        source: EnvError,
    },
    /// The image cannot be unpacked.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
}

/// The labels of a builder image, checked: what it carries, before anything is unpacked.
#[derive(Debug, Clone)]
pub struct BuilderLabels {
    /// `io.buildpacks.builder.metadata`.
    pub metadata: BuilderMetadata,
    /// `io.buildpacks.buildpack.layers`.
    pub layers: ModuleLayers,
    /// `io.buildpacks.buildpack.order`, if set.
    pub order: Option<Order>,
}

impl BuilderLabels {
    /// Reads and checks the labels of `image`: the metadata label is there, no image
    /// extension is named, and each buildpack layer is a layer of the image.
    ///
    /// # Errors
    /// See [`BuilderImageError`].
    pub fn read(image: &RunImage) -> Result<Self, BuilderImageError> {
        let reference = &image.reference;
        let labels = image
            .config
            .config()
            .as_ref()
            .and_then(|c| c.labels().clone())
            .unwrap_or_default();
        let parse = |label: &'static str| -> Result<Option<serde_json::Value>, BuilderImageError> {
            labels
                .get(label)
                .map(|text| serde_json::from_str(text))
                .transpose()
                .map_err(|e| BuilderImageError::Label {
                    reference: reference.clone(),
                    label,
                    message: e.to_string(),
                })
        };
        let metadata: BuilderMetadata = match parse(METADATA_LABEL)? {
            Some(value) => typed(reference, METADATA_LABEL, value)?,
            None => {
                return Err(BuilderImageError::NotABuilder {
                    reference: reference.clone(),
                });
            }
        };
        let extensions = |what: String| BuilderImageError::Extensions {
            reference: reference.clone(),
            what,
        };
        if let Some(first) = metadata.extensions.first() {
            return Err(extensions(format!(
                "label {METADATA_LABEL} lists extension {}",
                first.id
            )));
        }
        for label in [ORDER_EXTENSIONS_LABEL, EXTENSION_LAYERS_LABEL] {
            if parse(label)?.is_some_and(|v| !is_empty_json(&v)) {
                return Err(extensions(format!("label {label}")));
            }
        }
        let layers: ModuleLayers = match parse(LAYERS_LABEL)? {
            Some(value) if !value.is_null() => typed(reference, LAYERS_LABEL, value)?,
            _ => ModuleLayers::new(),
        };
        let order: Option<Order> = match parse(ORDER_LABEL)? {
            Some(value) if !value.is_null() => Some(typed(reference, ORDER_LABEL, value)?),
            _ => None,
        };
        let diff_ids: BTreeSet<&str> = image.layers.iter().map(|l| l.diff_id.as_str()).collect();
        for (id, versions) in &layers {
            for (version, info) in versions {
                if !diff_ids.contains(info.layer_diff_id.as_str()) {
                    return Err(BuilderImageError::UnknownLayer {
                        reference: reference.clone(),
                        buildpack: format!("{id}@{version}"),
                        diff_id: info.layer_diff_id.clone(),
                    });
                }
            }
        }
        Ok(Self {
            metadata,
            layers,
            order,
        })
    }
}

/// The JSON `value` of `label` as a `T`.
fn typed<T: serde::de::DeserializeOwned>(
    reference: &str,
    label: &'static str,
    value: serde_json::Value,
) -> Result<T, BuilderImageError> {
    serde_json::from_value(value).map_err(|e| BuilderImageError::Label {
        reference: reference.to_owned(),
        label,
        message: e.to_string(),
    })
}

/// Whether a JSON label says "nothing": `null`, `[]`, `{}`.
fn is_empty_json(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Array(items) => items.is_empty(),
        serde_json::Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

impl BuilderImage {
    /// Reads the builder image `image` (loaded from `reference`): its labels, then its tree,
    /// unpacked under `store_root` with `owners` (as the build image would be, so that the
    /// tree is made once). A relative `oci:` run image reference it names stays relative: it
    /// is relative to the directory holding the builder's layout.
    ///
    /// # Errors
    /// See [`BuilderImageError`].
    pub fn load(
        reference: &ImageRef,
        image: RunImage,
        store_root: &Path,
        owners: Option<OwnerMap>,
    ) -> Result<Self, BuilderImageError> {
        let labels = BuilderLabels::read(&image)?;
        let rootfs = unpack_rootfs(&image, store_root, owners)?;
        let tree = Tree {
            root: &rootfs,
            reference: &image.reference,
        };

        let (order_text, order) = match tree.read_file(ORDER_PATH)? {
            Some(text) => {
                let order = toml::from_str::<OrderFile>(&text).map(|f| f.order).ok();
                (text, order)
            }
            None => match &labels.order {
                Some(order) => {
                    let file = OrderFile {
                        order: order.clone(),
                    };
                    let text = toml::to_string(&file).map_err(|e| BuilderImageError::Label {
                        reference: image.reference.clone(),
                        label: ORDER_LABEL,
                        message: e.to_string(),
                    })?;
                    (text, Some(order.clone()))
                }
                None => {
                    return Err(BuilderImageError::NoOrder {
                        reference: image.reference.clone(),
                    });
                }
            },
        };
        // A malformed order.toml is the planner's to report, with its line.
        for group in order.iter().flatten() {
            for entry in &group.group {
                let known = labels.layers.get(&entry.id).is_some_and(|versions| {
                    entry.version.is_empty() || versions.contains_key(&entry.version)
                });
                if !known {
                    let buildpack = if entry.version.is_empty() {
                        entry.id.clone()
                    } else {
                        format!("{}@{}", entry.id, entry.version)
                    };
                    return Err(BuilderImageError::MissingBuildpack {
                        reference: image.reference.clone(),
                        buildpack,
                        named_by: format!("its order ({ORDER_PATH})"),
                    });
                }
            }
        }

        let mut registry = Registry::new();
        for (id, versions) in &labels.layers {
            for version in versions.keys() {
                registry
                    .insert(tree.buildpack(id, version)?)
                    .map_err(|source| BuilderImageError::Registry {
                        reference: image.reference.clone(),
                        source,
                    })?;
            }
        }

        let run_image = tree.run_image(&labels.metadata)?;
        let order_path = PathBuf::from(format!("{reference} {ORDER_PATH}"));
        let builder = Builder::from_parts(
            reference.dir().to_owned(),
            registry,
            &order_path,
            &order_text,
            run_image,
            // The builder is the build image; the platform decides (a flag may name another).
            None,
        )
        .map_err(|source| BuilderImageError::Builder {
            reference: image.reference.clone(),
            source,
        })?;
        let build_config_env = tree.operator_env()?;
        let mut builder = builder;
        builder.run_image_mirrors = tree
            .read_toml::<RunFile>(RUN_PATH)?
            .and_then(|run| run.images.into_iter().next())
            .map(|image| image.mirrors)
            .unwrap_or_default();
        Ok(Self {
            builder,
            image,
            rootfs,
            build_config_env,
        })
    }
}

/// The unpacked tree of a builder image, read with every path kept inside it.
struct Tree<'a> {
    root: &'a Path,
    reference: &'a str,
}

impl Tree<'_> {
    fn outside(&self, path: &str, source: PathError) -> BuilderImageError {
        BuilderImageError::Outside {
            reference: self.reference.to_owned(),
            path: path.to_owned(),
            source,
        }
    }

    /// The text of the file at absolute `path` in the tree, `None` when absent. No link may be
    /// on the way, nor at the file.
    fn read_file(&self, path: &str) -> Result<Option<String>, BuilderImageError> {
        let rel =
            safepath::relative(path.trim_start_matches('/')).map_err(|e| self.outside(path, e))?;
        safepath::no_link_on_the_way(self.root, &rel).map_err(|e| self.outside(path, e))?;
        let host = self.root.join(&rel);
        if std::fs::symlink_metadata(&host).is_err() {
            return Ok(None);
        }
        untrusted::read_to_string(&host, METADATA_LIMIT)
            .map(Some)
            .map_err(|source| BuilderImageError::Read {
                reference: self.reference.to_owned(),
                path: path.to_owned(),
                source,
            })
    }

    /// Parses the TOML file at `path`, `None` when absent.
    fn read_toml<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, BuilderImageError> {
        self.read_file(path)?
            .map(|text| {
                toml::from_str(&text).map_err(|e| BuilderImageError::Toml {
                    reference: self.reference.to_owned(),
                    path: path.to_owned(),
                    message: e.message().to_owned(),
                })
            })
            .transpose()
    }

    /// The default run image: `/cnb/run.toml`'s first, else `/cnb/stack.toml`'s, else the
    /// metadata label's.
    fn run_image(&self, metadata: &BuilderMetadata) -> Result<Option<String>, BuilderImageError> {
        let from_run = self
            .read_toml::<RunFile>(RUN_PATH)?
            .and_then(|run| run.images.into_iter().next())
            .map(|image| image.image);
        let name = match from_run {
            Some(name) => Some(name),
            None => self
                .read_toml::<StackFile>(STACK_PATH)?
                .map(|stack| stack.run_image.image)
                .filter(|name| !name.is_empty()),
        };
        let name = name.or_else(|| {
            metadata
                .images
                .first()
                .map(|image| image.image.clone())
                .or_else(|| Some(metadata.stack.run_image.image.clone()))
        });
        Ok(name.filter(|name| !name.is_empty()))
    }

    /// The buildpack `id@version` from `/cnb/buildpacks/<escaped id>/<version>/`.
    fn buildpack(&self, id: &str, version: &str) -> Result<Buildpack, BuilderImageError> {
        let dir_path = buildpack_dir(id, version);
        let rel = dir_path.trim_start_matches('/');
        if safepath::relative(rel).is_err() || rel.split('/').count() != 4 {
            return Err(self.outside(&dir_path, PathError::NotAName(format!("{id}@{version}"))));
        }
        if std::fs::symlink_metadata(self.root.join(rel)).is_err() {
            return Err(BuilderImageError::MissingDir {
                reference: self.reference.to_owned(),
                buildpack: format!("{id}@{version}"),
                path: dir_path,
            });
        }
        let dir =
            safepath::resolve_inside(self.root, rel).map_err(|e| self.outside(&dir_path, e))?;
        let descriptor = format!("{dir_path}/buildpack.toml");
        if std::fs::symlink_metadata(dir.join("buildpack.toml")).is_ok() {
            safepath::resolve_inside(self.root, descriptor.trim_start_matches('/'))
                .map_err(|e| self.outside(&descriptor, e))?;
        }
        let buildpack = Buildpack::load(&dir).map_err(|source| BuilderImageError::Buildpack {
            reference: self.reference.to_owned(),
            path: dir_path.clone(),
            source,
        })?;
        if buildpack.id().as_str() != id || buildpack.version() != version {
            return Err(BuilderImageError::WrongBuildpack {
                reference: self.reference.to_owned(),
                path: dir_path,
                buildpack: format!("{id}@{version}"),
                found: buildpack.reference(),
            });
        }
        Ok(buildpack)
    }

    /// The operator env of `/cnb/build-config/env/`, with no link on the way to it.
    fn operator_env(&self) -> Result<Vec<EnvModification>, BuilderImageError> {
        let rel = Path::new(BUILD_CONFIG_ENV_DIR.trim_start_matches('/'));
        // The last component is checked by the env reader, which refuses a linked directory.
        safepath::no_link_on_the_way(self.root, &rel.join("_"))
            .map_err(|e| self.outside(BUILD_CONFIG_ENV_DIR, e))?;
        read_operator_env_dir(&self.root.join(rel)).map_err(|source| BuilderImageError::Env {
            reference: self.reference.to_owned(),
            source,
        })
    }
}
