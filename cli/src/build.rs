//! `strata build`: detect, build and export one app.
//!
//! [`BuildConfig::from_args`] validates everything the user typed before anything runs (the
//! builder, buildpacks, `project.toml`, references, env), so bad input fails fast with exit
//! code 2 and nothing written. [`run`] then detects, builds in a scratch directory, and
//! exports into a staging area that is committed to the output layout only at the very end.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;

use serde::Serialize;
use strata_engine::appdir::copy_app;
use strata_engine::build::{BuildRequest, build};
use strata_engine::detect::ProcessDetector;
use strata_engine::platform::{PlatformDir, TargetEnv, valid_env_name};
use strata_engine::sandbox::Sandbox;
use strata_exporter::archive::{Compression, Owner};
use strata_exporter::base::builtin_run_image;
use strata_exporter::image::{ExportRequest, ExportedLayer, assemble};
use strata_exporter::layout::Staging;
use strata_exporter::reference::ImageRef;
use strata_exporter::runimage::{DEFAULT_CNB_ID, RunImage};
use strata_planner::{
    Builder, Buildpack, BuildpackId, Group, GroupRef, Order, ProjectDescriptor, Registry, resolve,
};

use crate::args::{BuildArgs, CompressionArg, SandboxArg};
use crate::error::CliError;

/// 1980-01-01T00:00:01Z: the time CNB images carry when `SOURCE_DATE_EPOCH` is not set.
const DEFAULT_EPOCH: u64 = strata_exporter::archive::DEFAULT_MTIME;

/// A build, validated.
pub(crate) struct BuildConfig {
    app_dir: PathBuf,
    project: Option<ProjectDescriptor>,
    registry: Registry,
    order: Order,
    run_image: RunImageSource,
    output: ImageRef,
    env: Vec<(String, String)>,
    compression: Compression,
    sandbox: Sandbox,
    network: bool,
    epoch: u64,
}

enum RunImageSource {
    /// An image, with the name to record for rebase.
    Image {
        reference: ImageRef,
        name: String,
    },
    Builtin,
}

impl BuildConfig {
    pub(crate) fn from_args(args: &BuildArgs) -> Result<Self, CliError> {
        let app_dir = std::fs::canonicalize(&args.app_dir).map_err(|source| CliError::Io {
            what: format!("app directory {}", args.app_dir.display()),
            source,
        })?;
        if !app_dir.is_dir() {
            return Err(CliError::Usage(format!(
                "{} is not a directory",
                app_dir.display()
            )));
        }
        let output = ImageRef::parse(&args.output)?;
        let builder = args.builder.as_deref().map(Builder::load).transpose()?;
        let project = ProjectDescriptor::load(&app_dir)?;
        let mut registry = builder
            .as_ref()
            .map(|b| b.registry.clone())
            .unwrap_or_default();

        let order = select_order(
            args,
            builder.as_ref(),
            project.as_ref(),
            &app_dir,
            &mut registry,
        )?;
        let run_image = run_image_source(args.run_image.as_deref(), builder.as_ref())?;
        let env = user_env(&args.env, project.as_ref())?;
        let sandbox = match args.sandbox {
            SandboxArg::Bwrap => Sandbox::bwrap()?,
            SandboxArg::None => Sandbox::none(),
        };
        let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(value) if !value.is_empty() => value.parse().map_err(|_| {
                CliError::Usage(format!(
                    "SOURCE_DATE_EPOCH={value} is not a number of seconds"
                ))
            })?,
            _ => DEFAULT_EPOCH,
        };
        Ok(Self {
            app_dir,
            project,
            registry,
            order,
            run_image,
            output,
            env,
            compression: match args.compression {
                CompressionArg::None => Compression::None,
                CompressionArg::Gzip => Compression::Gzip,
            },
            sandbox,
            network: !args.offline,
            epoch,
        })
    }
}

/// The order to detect with: `--buildpack`s, else the group `project.toml` names, else the
/// builder's order. Every buildpack it names must be known.
fn select_order(
    args: &BuildArgs,
    builder: Option<&Builder>,
    project: Option<&ProjectDescriptor>,
    app_dir: &Path,
    registry: &mut Registry,
) -> Result<Order, CliError> {
    let order = if !args.buildpacks.is_empty() {
        let refs = args
            .buildpacks
            .iter()
            .map(|arg| buildpack_ref(arg, Path::new("."), registry))
            .collect::<Result<Vec<_>, _>>()?;
        vec![Group { group: refs }]
    } else if let Some(p) = project.filter(|p| !p.buildpacks.is_empty()) {
        let mut refs = Vec::new();
        for bp in &p.buildpacks {
            refs.push(match (&bp.uri, &bp.id) {
                (Some(uri), _) => buildpack_ref(uri, app_dir, registry)?,
                (None, Some(id)) => GroupRef {
                    id: id.clone(),
                    version: bp.version.clone(),
                    optional: false,
                },
                (None, None) => continue,
            });
        }
        vec![Group { group: refs }]
    } else if let Some(builder) = builder {
        builder.order.clone()
    } else {
        return Err(CliError::Usage(
            "no buildpacks: pass --builder FILE or --buildpack DIR, or list buildpacks in project.toml".to_owned(),
        ));
    };
    for group in &order {
        for member in &group.group {
            registry.get(&member.id, member.version.as_deref())?;
        }
    }
    Ok(order)
}

/// `--run-image`, else the builder's run image (an `oci:` path relative to the builder
/// file), else the built-in base.
fn run_image_source(
    arg: Option<&str>,
    builder: Option<&Builder>,
) -> Result<RunImageSource, CliError> {
    if let Some(name) = arg {
        return Ok(RunImageSource::Image {
            reference: ImageRef::parse(name)?,
            name: name.to_owned(),
        });
    }
    match builder.and_then(|b| b.run_image.as_ref().map(|r| (b, r))) {
        Some((builder, name)) => {
            let base = builder.path.parent().unwrap_or(Path::new("/"));
            Ok(RunImageSource::Image {
                reference: ImageRef::parse(name)?.relative_to(base),
                name: name.clone(),
            })
        }
        None => Ok(RunImageSource::Builtin),
    }
}

/// The user env: `project.toml`'s build env, then `--env` (`K=V`, or `K` from this process's
/// env); a later value of a name replaces an earlier one.
fn user_env(
    args: &[String],
    project: Option<&ProjectDescriptor>,
) -> Result<Vec<(String, String)>, CliError> {
    let mut env: Vec<(String, String)> = project.map(|p| p.env.clone()).unwrap_or_default();
    for item in args {
        let (name, value) = match item.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (item.clone(), std::env::var(item).unwrap_or_default()),
        };
        if !valid_env_name(&name) {
            return Err(CliError::Usage(format!(
                "--env {item}: `{name}` is not a valid variable name"
            )));
        }
        env.retain(|(k, _)| *k != name);
        env.push((name, value));
    }
    Ok(env)
}

/// A `--buildpack` argument or a `project.toml` uri: a directory (loaded and added to the
/// registry) or `id[@version]` of a buildpack the registry already has.
fn buildpack_ref(arg: &str, base: &Path, registry: &mut Registry) -> Result<GroupRef, CliError> {
    let path = base.join(arg.strip_prefix("file://").unwrap_or(arg));
    if path.is_dir() {
        let buildpack = Buildpack::load(&path)?;
        let (id, version) = (buildpack.id().clone(), buildpack.version().to_owned());
        if registry.get(&id, Some(&version)).is_err() {
            registry.insert(buildpack)?;
        }
        return Ok(GroupRef {
            id,
            version: Some(version),
            optional: false,
        });
    }
    let (id, version) = match arg.split_once('@') {
        Some((id, version)) => (id, Some(version.to_owned())),
        None => (arg, None),
    };
    let id = BuildpackId::new(id).map_err(|e| {
        CliError::Usage(format!(
            "--buildpack {arg}: not a directory, and not a buildpack id: {e}"
        ))
    })?;
    registry.get(&id, version.as_deref())?;
    Ok(GroupRef {
        id,
        version,
        optional: false,
    })
}

/// What a build produced, for the text and JSON reports.
#[derive(Debug, Serialize)]
pub(crate) struct BuildReport {
    pub(crate) image: String,
    pub(crate) digest: String,
    pub(crate) buildpacks: Vec<String>,
    pub(crate) layers: Vec<LayerReport>,
    #[serde(skip)]
    pub(crate) logs: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
pub(crate) struct LayerReport {
    pub(crate) created_by: String,
    pub(crate) diff_id: String,
    pub(crate) digest: String,
    pub(crate) size: u64,
}

impl From<&ExportedLayer> for LayerReport {
    fn from(l: &ExportedLayer) -> Self {
        Self {
            created_by: l.created_by.clone(),
            diff_id: l.diff_id.clone(),
            digest: l.digest.clone(),
            size: l.size,
        }
    }
}

/// Loads the run image and stages its layers into the output; returns it with the name to
/// record for rebase.
fn load_run_image(config: &BuildConfig, staging: &Staging) -> Result<(RunImage, String), CliError> {
    match &config.run_image {
        RunImageSource::Image { reference, name } => {
            let image = RunImage::load(reference)?;
            for layer in &image.layers {
                let blob = layer.blob.as_deref().ok_or_else(|| {
                    CliError::Usage(format!(
                        "run image {name}: layer {} is not on disk",
                        layer.diff_id
                    ))
                })?;
                staging.put_blob_file(blob, &layer.descriptor)?;
            }
            Ok((image, name.clone()))
        }
        RunImageSource::Builtin => {
            let owner = Owner::new(DEFAULT_CNB_ID, DEFAULT_CNB_ID);
            let image =
                builtin_run_image(staging.blob_dir(), owner, config.epoch, config.compression)?;
            let name = image.reference.clone();
            Ok((image, name))
        }
    }
}

/// Detects, builds and exports.
pub(crate) fn run(config: &BuildConfig, progress: &dyn Fn(&str)) -> Result<BuildReport, CliError> {
    let scratch = tempfile::Builder::new()
        .prefix("strata-build-")
        .tempdir()
        .map_err(|source| CliError::Io {
            what: "cannot create a scratch directory".to_owned(),
            source,
        })?;
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| CliError::Io { what, source }
    };
    let workspace = scratch.path().join("workspace");
    std::fs::create_dir(&workspace).map_err(io("cannot create the workspace"))?;
    let (include, exclude) = config
        .project
        .as_ref()
        .map_or((&[][..], &[][..]), |p| (&p.include[..], &p.exclude[..]));
    copy_app(&config.app_dir, &workspace, include, exclude)?;
    let platform = PlatformDir::create(&scratch.path().join("platform"), &config.env)
        .map_err(io("cannot write the platform directory"))?;

    // The run image first: a missing one is bad input and should fail before any buildpack runs.
    let staging = Staging::new(config.output.dir())?;
    let (run_image, run_image_name) = load_run_image(config, &staging)?;
    let target = TargetEnv {
        os: run_image.os().to_string(),
        arch: run_image.arch().to_string(),
        ..TargetEnv::host()
    };

    progress("===> DETECTING");
    let detector = ProcessDetector {
        sandbox: &config.sandbox,
        app_dir: &workspace,
        platform: &platform,
        target: &target,
        scratch: scratch.path().join("detect"),
        network: config.network,
        spawned: AtomicUsize::new(0),
    };
    let group = resolve(&config.order, &config.registry, &detector)?;
    for member in &group.group {
        progress(&member.buildpack.reference());
    }

    progress("===> BUILDING");
    let output = build(&BuildRequest {
        sandbox: &config.sandbox,
        workspace: &workspace,
        group: &group,
        platform: &platform,
        target: &target,
        scratch: &scratch.path().join("build"),
        network: config.network,
    })?;
    let mut logs = Vec::new();
    for bp in &output.buildpacks {
        let text = std::fs::read_to_string(&bp.log).unwrap_or_default();
        logs.push((bp.buildpack.reference(), text));
    }

    progress("===> EXPORTING");
    let exported = assemble(
        &ExportRequest {
            build: &output,
            run_image: &run_image,
            run_image_name: &run_image_name,
            owner: run_image.cnb_user()?,
            epoch: config.epoch,
            compression: config.compression,
            project: config.project.as_ref(),
        },
        &staging,
    )?;
    staging.commit(&[(config.output.tag().to_owned(), exported.manifest.clone())])?;
    Ok(BuildReport {
        image: config.output.to_string(),
        digest: exported.manifest.digest().to_string(),
        buildpacks: group
            .group
            .iter()
            .map(|m| m.buildpack.reference())
            .collect(),
        layers: exported.layers.iter().map(LayerReport::from).collect(),
        logs,
    })
}
