//! Image assembly: a CNB build's output on a run image, as an OCI image.
//!
//! The layer order, history strings and labels follow the CNB exporter (see the module docs of
//! [`crate::metadata`]), so CNB tools can read strata images:
//! run image layers; the run image's SBOM layer (see [`crate::runsbom`]); each buildpack's launch layers in group order, sorted by name; the SBOM
//! layer; app slices, then the app layer; the launcher layer; the config layer
//! (`/layers/config/metadata.toml`); the process-types layer (see [`crate::launch`]).
//!
//! Without a launcher ([`ExportRequest::launcher`] false), the image's `Entrypoint` execs the
//! default process directly, with the launch env of every layer (for the default process)
//! computed into the config's `Env` at export time; there are no launcher and process-types
//! layers.
//!
//! Everything here is a function of its inputs: layers come from the one reproducible tar
//! writer, JSON is staged canonically (sorted keys), and every time in the
//! image is the one given (`SOURCE_DATE_EPOCH` or 1980-01-01T00:00:01Z).

use std::collections::BTreeMap;
use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};
use oci_spec::image::{ConfigBuilder, Descriptor, ImageConfiguration, MediaType};
use strata_engine::build::{BuildOutput, BuildpackOutput, layer_target};
use strata_engine::layers::{Process, StoredBlob};
use strata_engine::store::Store;
use strata_planner::ProjectDescriptor;

use crate::archive::{Compression, LayerBlob, LayerBuilder, ModePolicy, Owner, format_timestamp};
use crate::baseconfig::{
    base_labels, config_on_base, env_list, image_manifest, label_map, layer_history,
};
use crate::launch;
use crate::layout::Staging;
use crate::metadata::{
    BUILD_LABEL, BuildMetadata, BuildpackLayersMetadata, BuildpackRef, EXEC_ENV_LABEL,
    LIFECYCLE_LABEL, LayerMetadata, LayerSha, LifecycleMetadata, PROJECT_LABEL, ProcessMetadata,
    RunImageMetadata, StoreMetadata, json, project_metadata, toml_to_json,
};
use crate::runimage::RunImage;
use crate::sbomlayer::{LayerTar, NewLayers, SBOM_LABEL, SbomEntry, SbomError};

/// Everything an export needs besides the staging area.
#[derive(Debug)]
pub struct ExportRequest<'a> {
    /// What the buildpacks built.
    pub build: &'a BuildOutput,
    /// The run image.
    pub run_image: &'a RunImage,
    /// The run image's name as the user gave it, recorded for rebase.
    pub run_image_name: &'a str,
    /// The run image's registry repository (`HOST/REPO`) when it came from a registry:
    /// `runImage.reference` is then `HOST/REPO@sha256:…`, as the lifecycle records it, and
    /// the bare manifest digest otherwise.
    pub run_image_repository: Option<&'a str>,
    /// Other names of the run image (`[[run.images]] mirrors`), recorded as
    /// `runImage.mirrors`.
    pub run_image_mirrors: &'a [String],
    /// The CNB user that owns layer content.
    pub owner: Owner,
    /// The mtime of every file and the image's `created` (seconds since the epoch).
    pub epoch: u64,
    /// How new layers are compressed.
    pub compression: Compression,
    /// The app's `project.toml`, for `io.buildpacks.project.metadata`.
    pub project: Option<&'a ProjectDescriptor>,
    /// The execution environment the app was built for (`production`, `test`, …): only its
    /// processes are in the image (see [`crate::processes`]), and it is recorded in the
    /// `io.buildpacks.exec-env` label.
    pub exec_env: &'a str,
    /// Whether the image starts through the CNB launcher (the default); without, its
    /// `Entrypoint` is the default process's command and the launch env is baked in.
    pub launcher: bool,
    /// The launcher layer as stored (see [`crate::launcherstore`]), used when its compression
    /// is the request's; else the layer is written here.
    pub launcher_layer: Option<&'a StoredBlob>,
    /// The store, where the file lists and run image packages of SBOMs are kept between
    /// builds (see [`crate::sbomlayer`]); `None` computes them every time.
    pub store: Option<&'a Store>,
    /// Whether a launch layer whose blob `store` only has promised (a remote cache hit, see
    /// `strata_engine::store`'s `lazy`) is left out of the layout rather than fetched
    /// ([`Staging::put_absent`]): for an image pushed to a registry that has the blob.
    pub leave_promised: bool,
}

/// One layer of an exported image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedLayer {
    /// The history line: `Layer: 'x', Created by buildpack: id@version`, `Application Layer`, …
    pub created_by: String,
    /// The diffID.
    pub diff_id: String,
    /// The blob's digest.
    pub digest: String,
    /// The blob's size.
    pub size: u64,
}

/// An image written to a staging area, ready to be tagged.
#[derive(Debug, Clone)]
pub struct ExportedImage {
    /// The manifest descriptor (what a tag points to).
    pub manifest: Descriptor,
    /// The config's digest.
    pub config_digest: String,
    /// The layers, bottom first (run image layers included).
    pub layers: Vec<ExportedLayer>,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A layer could not be written.
    #[error("cannot write layer {what}: {source}")]
    Layer {
        what: String,
        #[source]
        source: crate::archive::ArchiveError,
    },
    /// A file a buildpack wrote could not be read.
    #[error("cannot read {path}: {source}", path = path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A launch env file could not be read.
    #[error(transparent)]
    Env(#[from] strata_engine::env::EnvError),
    /// A slice pattern in `launch.toml` is invalid.
    #[error("buildpack {buildpack}: invalid slice pattern `{pattern}` in launch.toml: {message}")]
    Slice {
        buildpack: String,
        pattern: String,
        message: String,
    },
    /// The image config or manifest could not be built.
    #[error("cannot assemble the image: {0}")]
    Spec(String),
    /// The launcher layer could not be stored.
    #[error(transparent)]
    LauncherStore(#[from] crate::launcherstore::LauncherStoreError),
    /// A JSON blob could not be staged.
    #[error(transparent)]
    Layout(#[from] crate::layout::LayoutError),
    /// The SBOM layer could not be made.
    #[error(transparent)]
    Sbom(#[from] SbomError),
}

/// The CNB history line of a buildpack layer.
pub fn layer_created_by(name: &str, buildpack: &str, version: &str) -> String {
    format!("Layer: '{name}', Created by buildpack: {buildpack}@{version}")
}

/// The layers of the image being assembled: the run image's, then each new one as it is
/// written into the staging area.
struct Stack<'a> {
    req: &'a ExportRequest<'a>,
    staging: &'a Staging,
    descriptors: Vec<Descriptor>,
    layers: Vec<ExportedLayer>,
    /// The tar of every new layer, by diffID, for the SBOM layer.
    tars: NewLayers,
}

impl<'a> Stack<'a> {
    fn new(req: &'a ExportRequest<'a>, staging: &'a Staging) -> Self {
        let run = &req.run_image.layers;
        Self {
            req,
            staging,
            descriptors: run.iter().map(|l| l.descriptor.clone()).collect(),
            layers: run
                .iter()
                .map(|l| ExportedLayer {
                    created_by: String::new(),
                    diff_id: l.diff_id.clone(),
                    digest: l.descriptor.digest().to_string(),
                    size: l.descriptor.size(),
                })
                .collect(),
            tars: NewLayers::new(),
        }
    }

    /// A layer builder with the request's time.
    fn builder(&self, owner: Owner) -> LayerBuilder {
        LayerBuilder::new(owner, self.req.epoch)
    }

    /// Writes `builder` as the next layer and returns its diffID.
    fn push(&mut self, created_by: String, builder: LayerBuilder) -> Result<String, ExportError> {
        let layer_err = |source| ExportError::Layer {
            what: created_by.clone(),
            source,
        };
        let blob: LayerBlob = builder
            .finish(self.req.compression, self.staging.blob_dir())
            .map_err(layer_err)?;
        self.descriptors.push(blob.descriptor().map_err(layer_err)?);
        self.tars.insert(
            blob.diff_id.clone(),
            (
                created_by.clone(),
                LayerTar {
                    path: blob.path.clone(),
                    compression: self.req.compression,
                    absent: false,
                },
            ),
        );
        self.layers.push(ExportedLayer {
            created_by,
            diff_id: blob.diff_id.clone(),
            digest: blob.digest,
            size: blob.size,
        });
        Ok(blob.diff_id)
    }

    /// Adds a layer already in the store (hardlinked into the layout, never re-tarred). One
    /// a remote cache only promised is left out of the layout with
    /// [`ExportRequest::leave_promised`].
    fn push_stored(
        &mut self,
        created_by: String,
        stored: &StoredBlob,
    ) -> Result<String, ExportError> {
        let media_type = crate::archive::media_type(stored.compression);
        let digest: oci_spec::image::Digest = stored
            .digest
            .parse()
            .map_err(|e: oci_spec::OciSpecError| ExportError::Spec(e.to_string()))?;
        let descriptor = Descriptor::new(media_type, stored.size, digest);
        let promised = self.req.store.is_some_and(|store| {
            store.is_promised(&strata_engine::store::BlobRef {
                digest: stored.digest.clone(),
                size: stored.size,
            })
        });
        let absent = promised && self.req.leave_promised;
        if absent {
            // Its registry has it: the layout goes without it, and the push mounts it.
            self.staging.put_absent(&descriptor)?;
        } else {
            self.staging.put_blob_file(&stored.path, &descriptor)?;
        }
        self.descriptors.push(descriptor);
        self.tars.insert(
            stored.diff_id.clone(),
            (
                created_by.clone(),
                LayerTar {
                    path: stored.path.clone(),
                    compression: stored.compression,
                    absent,
                },
            ),
        );
        self.layers.push(ExportedLayer {
            created_by,
            diff_id: stored.diff_id.clone(),
            digest: stored.digest.clone(),
            size: stored.size,
        });
        Ok(stored.diff_id.clone())
    }

    /// Writes `builder` as a layer and moves it to position `at` (counted from the bottom,
    /// run image layers included); returns its diffID.
    fn insert(
        &mut self,
        at: usize,
        created_by: String,
        builder: LayerBuilder,
    ) -> Result<String, ExportError> {
        let diff_id = self.push(created_by, builder)?;
        if let (Some(descriptor), Some(layer)) = (self.descriptors.pop(), self.layers.pop()) {
            self.descriptors.insert(at, descriptor);
            self.layers.insert(at, layer);
        }
        Ok(diff_id)
    }

    /// Each buildpack's launch layers, in group order and name order; returns the lifecycle
    /// metadata of every layer (launch or not).
    fn buildpack_layers(&mut self) -> Result<Vec<BuildpackLayersMetadata>, ExportError> {
        let mut all = Vec::new();
        for bp in &self.req.build.buildpacks {
            let info = &bp.buildpack.descriptor.info;
            let mut meta = BuildpackLayersMetadata {
                key: info.id.to_string(),
                version: info.version.clone(),
                layers: BTreeMap::new(),
                store: bp.layers.store.as_ref().map(|m| StoreMetadata {
                    metadata: toml_to_json(m),
                }),
            };
            // A layer without types is set aside by the engine; one in an older stored
            // output is left out here too.
            for layer in bp.layers.layers.iter().filter(|l| l.types.any()) {
                let mut entry = LayerMetadata {
                    sha: None,
                    data: toml_to_json(&layer.metadata),
                    build: layer.types.build,
                    launch: layer.types.launch,
                    cache: layer.types.cache,
                };
                let stored = layer
                    .blob
                    .as_ref()
                    .filter(|b| b.compression == self.req.compression);
                if let (true, Some(stored)) = (layer.types.launch, stored) {
                    let created_by = layer_created_by(&layer.name, info.id.as_str(), &info.version);
                    entry.sha = Some(self.push_stored(created_by, stored)?);
                } else if layer.types.launch {
                    let target = layer_target(&bp.buildpack, &layer.name);
                    let created_by = layer_created_by(&layer.name, info.id.as_str(), &info.version);
                    let mut builder = self.builder(self.req.owner);
                    builder
                        .add_dir_tree(&layer.dir, target.trim_start_matches('/'))
                        .map_err(|source| ExportError::Layer {
                            what: created_by.clone(),
                            source,
                        })?;
                    entry.sha = Some(self.push(created_by, builder)?);
                }
                meta.layers.insert(layer.name.clone(), entry);
            }
            all.push(meta);
        }
        Ok(all)
    }

    /// The launcher layer (with a launcher), the config layer, and the process-types layer
    /// (with a launcher and processes), in that order: their diffIDs.
    fn launch_layers(
        &mut self,
        processes: &[(Process, String)],
        default_process: Option<&str>,
    ) -> Result<(Option<LayerSha>, String, Option<LayerSha>), ExportError> {
        let req = self.req;
        let stored_launcher = req
            .launcher_layer
            .filter(|b| b.compression == req.compression);
        let launcher = if let (true, Some(stored)) = (req.launcher, stored_launcher) {
            Some(LayerSha {
                sha: self.push_stored(launch::LAUNCHER_CREATED_BY.to_owned(), stored)?,
            })
        } else if req.launcher {
            let builder =
                launch::launcher_layer(req.epoch).map_err(|source| ExportError::Layer {
                    what: "launcher".to_owned(),
                    source,
                })?;
            Some(LayerSha {
                sha: self.push(launch::LAUNCHER_CREATED_BY.to_owned(), builder)?,
            })
        } else {
            None
        };
        let mut builder = self.builder(Owner::ROOT);
        builder
            .add_bytes(
                launch::CONFIG_PATH.trim_start_matches('/'),
                launch::config_toml(req, processes, default_process),
                0o644,
            )
            .map_err(|source| ExportError::Layer {
                what: "config".to_owned(),
                source,
            })?;
        let config_sha = self.push(launch::CONFIG_CREATED_BY.to_owned(), builder)?;
        let types = processes.iter().map(|(p, _)| p.r#type.as_str());
        let process_types = match launch::process_types_layer(types, req.epoch) {
            Ok(Some(builder)) if req.launcher => Some(LayerSha {
                sha: self.push(launch::PROCESS_TYPES_CREATED_BY.to_owned(), builder)?,
            }),
            Ok(_) => None,
            Err(source) => {
                return Err(ExportError::Layer {
                    what: "process types".to_owned(),
                    source,
                });
            }
        };

        Ok((launcher, config_sha, process_types))
    }

    /// App slices, then the app layer: `/workspace` as the buildpacks left it. A file goes
    /// into the first slice whose globs match it, else into the app layer.
    fn app_layers(&mut self) -> Result<Vec<LayerSha>, ExportError> {
        let slices = slice_sets(&self.req.build.buildpacks)?;
        let in_slice = |rel: &Path, upto: usize| slices[..upto].iter().any(|s| s.is_match(rel));
        let mut app = Vec::new();
        for n in 0..=slices.len() {
            let created_by = if n < slices.len() {
                format!("Application Slice: {}", n + 1)
            } else {
                "Application Layer".to_owned()
            };
            let selected = |rel: &Path| {
                self.req
                    .build
                    .selection
                    .as_ref()
                    .is_none_or(|s| s.contains(rel))
            };
            let filter = |rel: &Path| {
                selected(rel) && !in_slice(rel, n) && slices.get(n).is_none_or(|s| s.is_match(rel))
            };
            let mut builder = self
                .builder(self.req.owner)
                .with_mode_policy(ModePolicy::Normalize);
            builder
                .add_dir_tree_filtered(&self.req.build.workspace, "workspace", &filter)
                .map_err(|source| ExportError::Layer {
                    what: created_by.clone(),
                    source,
                })?;
            app.push(LayerSha {
                sha: self.push(created_by, builder)?,
            });
        }
        Ok(app)
    }
}

/// Writes every new layer, the config and the manifest into `staging`.
pub fn assemble(req: &ExportRequest<'_>, staging: &Staging) -> Result<ExportedImage, ExportError> {
    let mut stack = Stack::new(req, staging);
    // The run image's SBOM goes with the base, so that rebase can replace it.
    let packages = crate::sbomlayer::run_image_inventory(req.run_image, req.store)?;
    let run_sbom = stack.push(
        crate::runsbom::RUN_IMAGE_SBOM_CREATED_BY.to_owned(),
        crate::runsbom::layer(&packages, req.epoch)?,
    )?;
    let bp_meta = stack.buildpack_layers()?;
    // The SBOM layer goes below the app layers, but describes them too.
    let sbom_at = stack.descriptors.len();
    let app = stack.app_layers()?;
    let (sbom_builder, mut sbom_entries) =
        crate::sbomlayer::sbom_layer(req, &bp_meta, &app, &stack.tars)?;
    sbom_entries.push(crate::runsbom::entry(&run_sbom));
    sbom_entries.sort_by(|a, b| a.path.cmp(&b.path));
    let sbom = Some(LayerSha {
        sha: stack.insert(
            sbom_at,
            "Software Bill-of-Materials".to_owned(),
            sbom_builder,
        )?,
    });

    let merged = crate::processes::merge(&req.build.buildpacks, req.exec_env);
    let processes = &merged.list;
    let default = merged.default_process();
    let default_process = merged.default.clone();
    let (launcher, config_sha, process_types) =
        stack.launch_layers(processes, default_process.as_deref())?;

    let lifecycle = LifecycleMetadata {
        app,
        sbom,
        config: Some(LayerSha { sha: config_sha }),
        launcher,
        process_types,
        buildpacks: bp_meta,
        run_image: RunImageMetadata {
            top_layer: req
                .run_image
                .layers
                .last()
                .map(|l| l.diff_id.clone())
                .unwrap_or_default(),
            reference: match req.run_image_repository {
                Some(repository) => format!("{repository}@{}", req.run_image.manifest_digest),
                None => req.run_image.manifest_digest.clone(),
            },
            image: req.run_image_name.to_owned(),
            mirrors: req.run_image_mirrors.to_vec(),
        },
        exec_env: Some(req.exec_env.to_owned()),
    };
    let build_meta = BuildMetadata {
        buildpacks: req
            .build
            .buildpacks
            .iter()
            .map(|bp| BuildpackRef {
                id: bp.buildpack.id().to_string(),
                version: bp.buildpack.version().to_owned(),
                homepage: bp.buildpack.descriptor.info.homepage.clone(),
            })
            .collect(),
        processes: processes
            .iter()
            .map(|(p, bp)| ProcessMetadata {
                kind: p.r#type.clone(),
                command: p.command.clone(),
                args: p.args.clone(),
                direct: p.direct,
                buildpack_id: bp.to_owned(),
                working_dir: p.working_dir.clone(),
                exec_env: p.exec_env.clone(),
            })
            .collect(),
        launcher: if req.launcher {
            launch::launcher_metadata()
        } else {
            serde_json::json!({})
        },
        default_process: default_process.clone(),
    };

    let config = image_config(
        req,
        &stack.layers,
        &lifecycle,
        &build_meta,
        &sbom_entries,
        default,
    )?;
    let config_desc = staging.put_json(&config, MediaType::ImageConfig)?;
    let manifest = image_manifest(config_desc.clone(), stack.descriptors)
        .map_err(|e| ExportError::Spec(e.to_string()))?;
    let manifest_desc = staging.put_json(&manifest, MediaType::ImageManifest)?;
    Ok(ExportedImage {
        manifest: manifest_desc,
        config_digest: config_desc.digest().to_string(),
        layers: stack.layers,
    })
}

/// The slice globs of every buildpack's `launch.toml`, in group order.
fn slice_sets(buildpacks: &[BuildpackOutput]) -> Result<Vec<GlobSet>, ExportError> {
    let mut sets = Vec::new();
    for bp in buildpacks {
        for slice in &bp.layers.launch.slices {
            let mut set = GlobSetBuilder::new();
            for pattern in &slice.paths {
                let glob = Glob::new(pattern.trim_start_matches("./")).map_err(|e| {
                    ExportError::Slice {
                        buildpack: bp.buildpack.reference(),
                        pattern: pattern.clone(),
                        message: e.to_string(),
                    }
                })?;
                set.add(glob);
            }
            sets.push(set.build().map_err(|e| ExportError::Slice {
                buildpack: bp.buildpack.reference(),
                pattern: slice.paths.join(", "),
                message: e.to_string(),
            })?);
        }
    }
    Ok(sets)
}

fn image_config(
    req: &ExportRequest<'_>,
    layers: &[ExportedLayer],
    lifecycle: &LifecycleMetadata,
    build_meta: &BuildMetadata,
    sbom: &[SbomEntry],
    process: Option<&Process>,
) -> Result<ImageConfiguration, ExportError> {
    let spec = |e: oci_spec::OciSpecError| ExportError::Spec(e.to_string());
    let run = &req.run_image.config;
    let created = format_timestamp(req.epoch);

    let mut labels = base_labels(run);
    for bp in &req.build.buildpacks {
        for label in &bp.layers.launch.labels {
            labels.insert(label.key.clone(), label.value.clone());
        }
    }
    labels.insert(LIFECYCLE_LABEL.to_owned(), json(lifecycle));
    labels.insert(BUILD_LABEL.to_owned(), json(build_meta));
    labels.insert(
        PROJECT_LABEL.to_owned(),
        project_metadata(req.project).to_string(),
    );
    labels.insert(EXEC_ENV_LABEL.to_owned(), req.exec_env.to_owned());
    labels.insert(SBOM_LABEL.to_owned(), json(&sbom));

    let user = run
        .config()
        .as_ref()
        .and_then(|c| c.user().clone())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("{}:{}", req.owner.uid, req.owner.gid));
    let mut config = ConfigBuilder::default()
        .user(user)
        .labels(label_map(labels));
    if req.launcher {
        config = config
            .env(env_list(&launch::launcher_env(run)))
            .working_dir(crate::baseconfig::APP_DIR)
            .entrypoint(vec![launch::entrypoint(process.map(|p| p.r#type.as_str()))]);
    } else {
        let env = launch::baked_env(req, process)?;
        config = config.env(env_list(&env)).working_dir(
            process
                .and_then(|p| p.working_dir.clone())
                .unwrap_or_else(|| crate::baseconfig::APP_DIR.to_owned()),
        );
        if let Some(process) = process {
            config = config
                .entrypoint(process.command.clone())
                .cmd(process.args.clone());
        }
    }
    let config = config.build().map_err(spec)?;

    let app_layers = &layers[req.run_image.layers.len()..];
    let history =
        layer_history(&created, app_layers.iter().map(|l| l.created_by.as_str())).map_err(spec)?;
    let diff_ids: Vec<String> = app_layers.iter().map(|l| l.diff_id.clone()).collect();
    config_on_base(run, created, config, &diff_ids, Some(history)).map_err(spec)
}
