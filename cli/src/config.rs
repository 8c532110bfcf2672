//! The inputs of `plan` and `build`, validated before anything runs: the builder, buildpacks,
//! `project.toml`, references and env. Bad input fails here, with exit code 2 and nothing
//! written.

use std::path::{Path, PathBuf};

use strata_engine::sandbox::Sandbox;
use strata_exporter::reference::ImageRef;
use strata_planner::{
    Builder, Buildpack, BuildpackId, Group, GroupRef, Order, ProjectDescriptor, Registry,
    valid_env_name,
};

use crate::args::{InputArgs, SandboxArg};
use crate::error::CliError;

/// 1980-01-01T00:00:01Z: the time CNB images carry when `SOURCE_DATE_EPOCH` is not set.
const DEFAULT_EPOCH: u64 = strata_exporter::archive::DEFAULT_MTIME;

/// What `plan` and `build` read, validated.
pub(crate) struct InputConfig {
    pub(crate) app_dir: PathBuf,
    pub(crate) project: Option<ProjectDescriptor>,
    pub(crate) registry: Registry,
    pub(crate) order: Order,
    pub(crate) build_image: String,
    pub(crate) run_image: RunImageSource,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cache_dir: PathBuf,
    pub(crate) sandbox: Sandbox,
    pub(crate) network: bool,
    pub(crate) epoch: u64,
}

/// Where the run image comes from.
pub(crate) enum RunImageSource {
    /// An image, with the name to record for rebase.
    Image {
        reference: ImageRef,
        name: String,
    },
    Builtin,
}

impl InputConfig {
    pub(crate) fn from_args(args: &InputArgs) -> Result<Self, CliError> {
        let app_dir = std::fs::canonicalize(&args.app_dir).map_err(|e| {
            CliError::Usage(format!(
                "cannot read the app directory {}: {e}",
                args.app_dir.display()
            ))
        })?;
        if !app_dir.is_dir() {
            return Err(CliError::Usage(format!(
                "{} is not a directory",
                app_dir.display()
            )));
        }
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
        let cache_dir = match &args.cache_dir {
            Some(dir) => dir.clone(),
            None => default_cache_dir()?,
        };
        let build_image = builder
            .as_ref()
            .and_then(|b| b.build_image.clone())
            .unwrap_or_else(|| "host".to_owned());
        Ok(Self {
            app_dir,
            project,
            registry,
            order,
            build_image,
            run_image,
            env,
            cache_dir,
            sandbox,
            network: !args.offline,
            epoch,
        })
    }
}

/// The order to detect with: `--buildpack`s, else the group `project.toml` names, else the
/// builder's order. Every buildpack it names must be known.
fn select_order(
    args: &InputArgs,
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

/// `$XDG_CACHE_HOME/strata`, else `$HOME/.cache/strata`.
pub(crate) fn default_cache_dir() -> Result<PathBuf, CliError> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("strata"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache/strata")),
        None => Err(CliError::Usage(
            "no cache directory: set HOME or XDG_CACHE_HOME, or pass --cache-dir DIR".to_owned(),
        )),
    }
}
