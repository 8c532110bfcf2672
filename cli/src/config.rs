//! The inputs of `plan` and `build`, validated before anything runs: the workspace
//! (`strata.toml`) or the one app, and per service the builder, buildpacks, `project.toml`,
//! references and env. Bad input fails here, with exit code 2 and nothing written.
//!
//! In a workspace, a flag wins over the file: `--builder`, `--buildpack` and `--run-image`
//! replace the service's and the workspace's settings, and `--env` comes after the
//! workspace's env, the service's and `project.toml`'s; `--binding` replaces a workspace
//! binding of the same name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use strata_engine::env::EnvModification;
use strata_engine::sandbox::{Limits, Sandbox};
use strata_engine::store::store_dir;
use strata_exporter::builderimage::BuilderImage;
use strata_exporter::reference::{ImageRef, RefError};
use strata_exporter::relocate::relative_oci_name;
use strata_exporter::runimage::RunImage;
use strata_exporter::unpack::OwnerMap;
use strata_planner::{
    Binding, Builder, Buildpack, BuildpackId, Group, GroupRef, Order, ProjectDescriptor, Registry,
    ServiceSpec, WORKSPACE_FILE, Workspace, valid_env_name,
};

use crate::args::{InputArgs, NetworkArg, SandboxArg};
use crate::error::CliError;
use crate::images::{Images, RegistrySettings};

/// 1980-01-01T00:00:01Z: the time CNB images carry when `SOURCE_DATE_EPOCH` is not set.
const DEFAULT_EPOCH: u64 = strata_exporter::archive::DEFAULT_MTIME;

/// What `plan` and `build` read, validated: one service (an app directory), or every
/// service of a workspace (a directory with `strata.toml`).
pub(crate) struct InputConfig {
    /// The services, in the workspace's order (by name); those `--service` names only.
    pub(crate) services: Vec<ServiceConfig>,
    /// The workspace, when the directory has a `strata.toml`.
    pub(crate) workspace: Option<Workspace>,
    pub(crate) cache_dir: PathBuf,
    pub(crate) sandbox: Sandbox,
    pub(crate) network: bool,
    pub(crate) epoch: u64,
    /// The execution environment (`--exec-env`).
    pub(crate) exec_env: String,
    /// Images by reference: pulls and pushes.
    pub(crate) images: Images,
    /// `--shard`: the services are that shard's.
    pub(crate) shard: Option<strata_planner::Shard>,
}

/// One service: an app and how to build it.
pub(crate) struct ServiceConfig {
    /// Its name: the workspace's name for it, else the app directory's name.
    pub(crate) name: String,
    pub(crate) app_dir: PathBuf,
    pub(crate) project: Option<ProjectDescriptor>,
    pub(crate) registry: Registry,
    pub(crate) order: Order,
    pub(crate) build_image: BuildImageSource,
    pub(crate) run_image: RunImageSource,
    pub(crate) env: Vec<(String, String)>,
    /// The service bindings its buildpacks see, by name.
    pub(crate) bindings: Vec<Binding>,
    /// The operator env of a builder image, when it has any.
    pub(crate) build_config: Option<BuildConfig>,
    /// The builder as given and its digest (`sha256:` of its manifest, or of its
    /// `builder.toml`), for provenance.
    pub(crate) builder: Option<(String, String)>,
}

/// A builder image's operator env (`/cnb/build-config/env/`).
#[derive(Clone)]
pub(crate) struct BuildConfig {
    /// The builder image's manifest digest, which task keys record for it.
    pub(crate) digest: String,
    /// The env files, as modifications.
    pub(crate) env: Vec<EnvModification>,
}

/// Where a builder comes from: a `builder.toml`, or a builder image.
#[derive(Clone, PartialEq, Eq, Hash)]
enum BuilderSource {
    File(PathBuf),
    Image(ImageRef),
}

/// A builder, loaded; an image's build image reference and operator env with it.
#[derive(Clone)]
struct LoadedBuilder {
    builder: Builder,
    image: Option<(ImageRef, Option<BuildConfig>)>,
    /// `sha256:` of the builder image's manifest, or of the `builder.toml`.
    digest: String,
}

impl BuilderSource {
    /// `--builder` or a `builder` setting: an image reference when it starts with a
    /// transport (`oci:` or `docker://`, as the other image flags), else a `builder.toml`
    /// path; a relative layout directory is relative to `base`, as a relative path already
    /// is. A registry builder is pulled into the store here.
    fn parse(value: &Path, base: &Path, images: &Images) -> Result<Self, CliError> {
        match value.to_str() {
            Some(text) if strata_planner::is_image_reference(text) => {
                Ok(Self::Image(images.resolve(text, base)?))
            }
            _ => Ok(Self::File(value.to_owned())),
        }
    }
}

/// What loading a builder image needs: where the store is, and whose files become whose.
struct BuilderContext<'a> {
    cache_dir: &'a Path,
    sandbox: &'a Sandbox,
    images: &'a Images,
}
/// Where the run image comes from.
#[derive(Clone)]
pub(crate) enum RunImageSource {
    /// An image, with the name to record for rebase.
    Image {
        reference: ImageRef,
        name: String,
        /// Other names of it (the builder's `mirrors`), recorded with it.
        mirrors: Vec<String>,
        /// The directory relative `oci:` names in `name` and `mirrors` are read from.
        names_from: PathBuf,
    },
    Builtin,
}

/// What buildpacks run on.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum BuildImageSource {
    /// The host's system directories (not hermetic).
    Host,
    /// A build image, unpacked into the store.
    Image(ImageRef),
}

/// What a service is made from before validation.
struct ServiceSource<'a> {
    name: String,
    app_dir: PathBuf,
    builder: Option<RunImageArg<'a>>,
    run_image: Option<RunImageArg<'a>>,
    env: Vec<(String, String)>,
    bindings: Vec<(String, PathBuf)>,
}

/// A run image or builder reference (or builder.toml path) and the directory a relative
/// layout path is relative to.
#[derive(Clone, Copy)]
struct RunImageArg<'a> {
    name: &'a Path,
    base: &'a Path,
}

impl InputConfig {
    pub(crate) fn from_args(args: &InputArgs) -> Result<Self, CliError> {
        let dir = std::fs::canonicalize(&args.app_dir).map_err(|e| {
            CliError::Usage(format!(
                "cannot read the app directory {}: {e}",
                args.app_dir.display()
            ))
        })?;
        if !dir.is_dir() {
            return Err(CliError::Usage(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        strata_planner::exec_env::check_name(&args.exec_env)
            .map_err(|e| CliError::Usage(format!("--exec-env: {e}")))?;
        let (workspace, implied) = find_workspace(&dir, args)?;
        let wanted = match (&implied, args.services.is_empty()) {
            (Some(names), true) => names.as_slice(),
            _ => args.services.as_slice(),
        };
        let cwd = Path::new(".");
        let flag_run_image = args.run_image.as_deref().map(|name| RunImageArg {
            name: Path::new(name),
            base: cwd,
        });
        let flag_builder = args
            .builder
            .as_deref()
            .map(|name| RunImageArg { name, base: cwd });
        let sources: Vec<ServiceSource<'_>> = match &workspace {
            None => {
                no_workspace_flags(args, &dir)?;
                vec![ServiceSource {
                    name: service_name(&dir),
                    app_dir: dir.clone(),
                    builder: flag_builder,
                    run_image: flag_run_image,
                    env: Vec::new(),
                    bindings: Vec::new(),
                }]
            }
            Some(ws) => select_services(ws, wanted)?
                .into_iter()
                .filter(|spec| args.shard.is_none_or(|shard| shard.contains(&spec.name)))
                .map(|spec| ServiceSource {
                    name: spec.name.clone(),
                    app_dir: spec.path.clone(),
                    builder: flag_builder.or_else(|| {
                        spec.builder
                            .as_deref()
                            .or(ws.builder.as_deref())
                            .map(|name| RunImageArg {
                                name,
                                base: &ws.root,
                            })
                    }),
                    run_image: flag_run_image.or_else(|| {
                        ws.run_image.as_deref().map(|name| RunImageArg {
                            name: Path::new(name),
                            base: &ws.root,
                        })
                    }),
                    env: spec.env.clone(),
                    bindings: spec.bindings.clone(),
                })
                .collect(),
        };
        let (sandbox, cache_dir) = sandbox_and_cache(args)?;
        let images = registry_images(args, workspace.as_ref(), &cache_dir);
        let context = BuilderContext {
            cache_dir: &cache_dir,
            sandbox: &sandbox,
            images: &images,
        };
        let mut builders: HashMap<BuilderSource, LoadedBuilder> = HashMap::new();
        let mut services = Vec::new();
        for source in sources {
            let name = source.name.clone();
            let service = ServiceConfig::new(source, args, &mut builders, &context);
            services.push(match (&workspace, service) {
                (_, Ok(service)) => service,
                (None, Err(e)) => return Err(e),
                (Some(_), Err(e)) => return Err(CliError::in_service(&name, e)),
            });
        }
        Ok(Self {
            services,
            workspace,
            cache_dir,
            sandbox,
            network: !args.offline && args.network == NetworkArg::Host,
            epoch: source_date_epoch()?,
            exec_env: args.exec_env.clone(),
            images,
            shard: args.shard,
        })
    }
}

/// Refuses `--service` and `--shard` for a directory that is no workspace.
fn no_workspace_flags(args: &InputArgs, dir: &Path) -> Result<(), CliError> {
    let flag = match (args.shard.is_some(), args.services.is_empty()) {
        (true, _) => "--shard",
        (false, false) => "--service",
        (false, true) => return Ok(()),
    };
    Err(CliError::Usage(format!(
        "{flag} needs a workspace, and {} has no {WORKSPACE_FILE}",
        dir.display()
    )))
}

/// How registries are spoken to: `--insecure-registry` and the workspace's
/// `insecure-registries`, and `--registry-ca`.
fn registry_images(args: &InputArgs, workspace: Option<&Workspace>, cache_dir: &Path) -> Images {
    let mut insecure = args.insecure_registries.clone();
    if let Some(ws) = workspace {
        insecure.extend(ws.insecure_registries.iter().cloned());
    }
    Images::new(
        cache_dir,
        RegistrySettings {
            insecure,
            ca_file: args.registry_ca.clone(),
        },
    )
}

/// `SOURCE_DATE_EPOCH`, else the CNB default time.
fn source_date_epoch() -> Result<u64, CliError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.is_empty() => value.parse().map_err(|_| {
            CliError::Usage(format!(
                "SOURCE_DATE_EPOCH={value} is not a number of seconds"
            ))
        }),
        _ => Ok(DEFAULT_EPOCH),
    }
}

/// The sandbox `--sandbox` asks for, and the cache directory.
fn sandbox_and_cache(args: &InputArgs) -> Result<(Sandbox, PathBuf), CliError> {
    let sandbox = match args.sandbox {
        SandboxArg::Bwrap => Sandbox::bwrap()?.with_limits(Limits::with_task(args.task_timeout)),
        SandboxArg::None => Sandbox::none(),
    };
    let cache_dir = match &args.cache_dir {
        Some(dir) => dir.clone(),
        None => default_cache_dir()?,
    };
    Ok((sandbox, cache_dir))
}

/// The workspace `dir` is the root of; or, for one service's directory with nothing on the
/// command line that says how to build it, the workspace around it and that service's name.
fn find_workspace(
    dir: &Path,
    args: &InputArgs,
) -> Result<(Option<Workspace>, Option<Vec<String>>), CliError> {
    if let Some(path) = Workspace::find(dir) {
        return Ok((Some(Workspace::load(&path)?), None));
    }
    if args.builder.is_some() || !args.buildpacks.is_empty() {
        return Ok((None, None));
    }
    Ok(match enclosing_workspace(dir)? {
        Some((ws, name)) => (Some(ws), Some(vec![name])),
        None => (None, None),
    })
}

/// The workspace in the nearest directory above `dir` that has a `strata.toml`, and the
/// name of its service at `dir`, if it has one there.
fn enclosing_workspace(dir: &Path) -> Result<Option<(Workspace, String)>, CliError> {
    let Some(path) = dir.ancestors().skip(1).find_map(Workspace::find) else {
        return Ok(None);
    };
    let ws = Workspace::load(&path)?;
    let name = ws
        .services
        .iter()
        .find(|s| std::fs::canonicalize(&s.path).is_ok_and(|p| p == dir))
        .map(|s| s.name.clone());
    Ok(name.map(|name| (ws, name)))
}

/// The workspace's services, or those `names` name (each must be one of them).
fn select_services<'w>(
    ws: &'w Workspace,
    names: &[String],
) -> Result<Vec<&'w ServiceSpec>, CliError> {
    if names.is_empty() {
        return Ok(ws.services.iter().collect());
    }
    let known = || {
        ws.services
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for name in names {
        if !ws.services.iter().any(|s| s.name == *name) {
            return Err(CliError::Usage(format!(
                "--service {name}: {} has no such service; it has: {}",
                ws.path.display(),
                known()
            )));
        }
    }
    Ok(ws
        .services
        .iter()
        .filter(|s| names.contains(&s.name))
        .collect())
}

/// The service name of an app directory: its directory name.
fn service_name(app_dir: &Path) -> String {
    app_dir
        .file_name()
        .map_or_else(|| "app".to_owned(), |n| n.to_string_lossy().into_owned())
}

impl ServiceConfig {
    fn new(
        source: ServiceSource<'_>,
        args: &InputArgs,
        builders: &mut HashMap<BuilderSource, LoadedBuilder>,
        context: &BuilderContext<'_>,
    ) -> Result<Self, CliError> {
        let app_dir = source.app_dir;
        let loaded = match source.builder {
            Some(arg) => {
                let source = BuilderSource::parse(arg.name, arg.base, context.images)?;
                if let Some(loaded) = builders.get(&source) {
                    Some(loaded.clone())
                } else {
                    let loaded = load_builder(&source, context)?;
                    builders.insert(source, loaded.clone());
                    Some(loaded)
                }
            }
            None => None,
        };
        let builder_id = loaded
            .as_ref()
            .zip(source.builder)
            .map(|(l, arg)| (arg.name.to_string_lossy().into_owned(), l.digest.clone()));
        let (builder, builder_image, build_config) = match loaded {
            Some(LoadedBuilder {
                builder,
                image: Some((reference, config)),
                ..
            }) => (Some(builder), Some(reference), config),
            Some(LoadedBuilder {
                builder,
                image: None,
                ..
            }) => (Some(builder), None, None),
            None => (None, None, None),
        };
        let project = ProjectDescriptor::load(&app_dir)?;
        let mut registry = builder
            .as_ref()
            .map(|b| b.registry.clone())
            .unwrap_or_default();
        let order = select_order(
            &args.buildpacks,
            builder.as_ref(),
            project.as_ref(),
            &app_dir,
            &mut registry,
        )?;
        let run_image = run_image_source(source.run_image, builder.as_ref(), context.images)?;
        let mut env = source.env;
        env.extend(project.as_ref().map(|p| p.env.clone()).unwrap_or_default());
        let env = user_env(env, &args.env)?;
        let build_image = build_image_source(
            args.build_image.as_deref(),
            builder.as_ref(),
            builder_image.as_ref(),
            context.images,
        )?;
        Ok(Self {
            name: source.name,
            app_dir,
            project,
            registry,
            order,
            build_image,
            run_image,
            env,
            bindings: service_bindings(source.bindings, &args.bindings)?,
            build_config,
            builder: builder_id,
        })
    }

    /// `project.toml`'s include and exclude patterns.
    pub(crate) fn include_exclude(&self) -> (&[String], &[String]) {
        self.project
            .as_ref()
            .map_or((&[][..], &[][..]), |p| (&p.include[..], &p.exclude[..]))
    }
}

/// Loads a builder: a `builder.toml` with its buildpack directories, or a builder image,
/// unpacked into the store as the build image would be (the same tree, made once).
fn load_builder(
    source: &BuilderSource,
    context: &BuilderContext<'_>,
) -> Result<LoadedBuilder, CliError> {
    let reference = match source {
        BuilderSource::File(path) => {
            let builder = Builder::load(path)?;
            // What was loaded was read just now; a file that cannot be read again has no
            // digest to record.
            let digest = std::fs::read(path).map_or_else(
                |_| String::new(),
                |bytes| {
                    use sha2::Digest as _;
                    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
                },
            );
            return Ok(LoadedBuilder {
                builder,
                image: None,
                digest,
            });
        }
        BuilderSource::Image(reference) => reference,
    };
    let image = RunImage::load(reference)?;
    let (uid, gid) = strata_exporter::builduser::build_user(&image)?;
    let owners = context.sandbox.host_owner().map(|host| OwnerMap {
        image: (uid, gid),
        host,
    });
    let digest = image.manifest_digest.clone();
    let image_digest = digest.clone();
    let loaded = BuilderImage::load(reference, image, &store_dir(context.cache_dir), owners)
        .map_err(Box::new)?;
    let config = (!loaded.build_config_env.is_empty()).then_some(BuildConfig {
        digest,
        env: loaded.build_config_env,
    });
    Ok(LoadedBuilder {
        builder: loaded.builder,
        image: Some((reference.clone(), config)),
        digest: image_digest,
    })
}

/// The order to detect with: `--buildpack`s, else the group `project.toml` names, else the
/// builder's order. Every buildpack it names must be known.
fn select_order(
    buildpacks: &[String],
    builder: Option<&Builder>,
    project: Option<&ProjectDescriptor>,
    app_dir: &Path,
    registry: &mut Registry,
) -> Result<Order, CliError> {
    let order = if !buildpacks.is_empty() {
        let refs = buildpacks
            .iter()
            .map(|arg| buildpack_ref(arg, Path::new("."), registry))
            .collect::<Result<Vec<_>, _>>()?;
        vec![Group { group: refs }]
    } else if let Some(p) = project.filter(|p| !p.buildpacks.is_empty()) {
        let mut refs = Vec::new();
        for bp in &p.buildpacks {
            refs.push(match (&bp.uri, &bp.id) {
                (Some(uri), _) => buildpack_ref(&project_uri(uri, app_dir)?, app_dir, registry)?,
                (None, Some(id)) => GroupRef {
                    id: id.clone(),
                    version: bp.version.clone(),
                    optional: false,
                    exec_env: Vec::new(),
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

/// `--run-image` (or the workspace's `run-image`, relative to `strata.toml`), else the
/// builder's run image (an `oci:` path relative to the builder file, or a registry name, with
/// or without `docker://`, as other platforms write it), else the built-in base. A registry
/// image is pulled into the store here, and recorded by its registry name, as given.
fn run_image_source(
    arg: Option<RunImageArg<'_>>,
    builder: Option<&Builder>,
    images: &Images,
) -> Result<RunImageSource, CliError> {
    if let Some(RunImageArg { name, base }) = arg {
        let name = name.to_string_lossy();
        return Ok(RunImageSource::Image {
            reference: images.resolve(&name, base)?,
            name: recorded_name(&name),
            mirrors: Vec::new(),
            names_from: base.to_owned(),
        });
    }
    match builder.and_then(|b| b.run_image.as_ref().map(|r| (b, r))) {
        Some((builder, name)) => {
            let base = builder.path.parent().unwrap_or(Path::new("/"));
            let text = match ImageRef::parse(name) {
                // Builders made for other platforms name their run image in a registry.
                Err(RefError::MissingTransport { .. }) => format!("docker://{name}"),
                _ => name.clone(),
            };
            Ok(RunImageSource::Image {
                reference: images.resolve(&text, base)?,
                name: recorded_name(name),
                mirrors: builder.run_image_mirrors.clone(),
                names_from: base.to_owned(),
            })
        }
        None => Ok(RunImageSource::Builtin),
    }
}

impl InputConfig {
    /// The layout directory a build's output names, when it is an `oci:` layout: `output`
    /// (an `--output`, relative to the working directory), else a workspace's `output`.
    ///
    /// # Errors
    /// A usage error for an `--output` that is no image reference.
    pub(crate) fn output_layout(&self, output: Option<&str>) -> Result<Option<PathBuf>, CliError> {
        if let Some(text) = output {
            return Ok(
                match crate::images::Location::parse(text, Path::new("."))? {
                    crate::images::Location::Layout(layout) => Some(layout.dir().to_owned()),
                    _ => None,
                },
            );
        }
        let Some(ws) = self.workspace.as_ref() else {
            return Ok(None);
        };
        Ok(ws
            .output
            .as_deref()
            .and_then(|text| ImageRef::parse(text).ok())
            .map(|output| output.relative_to(&ws.root).dir().to_owned()))
    }

    /// Makes the run image names images record relative to the directory holding the output
    /// layout `layout`: a relative `oci:` name is rewritten from the directory it was written
    /// relative to (the working directory, `strata.toml`'s, the builder's), so the recorded
    /// name does not depend on where a build ran, and a tree moved together keeps its digests
    /// (`strata rebase` reads the name from the directory holding the image's layout).
    /// Registry and absolute names are kept as written.
    pub(crate) fn record_run_images_from(&mut self, layout: &Path) {
        let holder = strata_exporter::relocate::holder_of(layout);
        for service in &mut self.services {
            if let RunImageSource::Image {
                name,
                mirrors,
                names_from,
                ..
            } = &mut service.run_image
            {
                let rewrite = |n: &str| relative_oci_name(n, names_from, holder);
                *name = rewrite(name);
                *mirrors = mirrors.iter().map(|m| rewrite(m)).collect();
                holder.clone_into(names_from);
            }
        }
    }
}

/// The run image name an image records: a registry image by its name without the
/// `docker://` transport, as the lifecycle records it, so `pack rebase` and kpack read it.
pub(crate) fn recorded_name(name: &str) -> String {
    name.strip_prefix("docker://").unwrap_or(name).to_owned()
}

/// The registry repository (`HOST/REPO`) of a run image recorded by its registry name; `None`
/// for a layout (`oci:…`).
pub(crate) fn registry_repository(name: &str) -> Option<String> {
    if name.starts_with("oci:") {
        return None;
    }
    let reference = strata_registry::Reference::parse(name).ok()?;
    Some(format!(
        "{}/{}",
        reference.registry(),
        reference.repository()
    ))
}

/// The build image: `--build-image` (relative to the working directory), else a builder
/// image itself (`builder_image`), else the builder's `[build] image` when it is an `oci:`
/// reference (relative to the builder), else the host.
fn build_image_source(
    arg: Option<&str>,
    builder: Option<&Builder>,
    builder_image: Option<&ImageRef>,
    images: &Images,
) -> Result<BuildImageSource, CliError> {
    match arg {
        Some("host") => return Ok(BuildImageSource::Host),
        Some(name) => {
            return Ok(BuildImageSource::Image(
                images.resolve(name, Path::new("."))?,
            ));
        }
        None => {}
    }
    if let Some(reference) = builder_image {
        return Ok(BuildImageSource::Image(reference.clone()));
    }
    match builder.and_then(|b| b.build_image.as_ref().map(|r| (b, r))) {
        Some((builder, name)) if name.starts_with("oci:") || name.starts_with("docker://") => {
            let base = builder.path.parent().unwrap_or(Path::new("/"));
            Ok(BuildImageSource::Image(images.resolve(name, base)?))
        }
        _ => Ok(BuildImageSource::Host),
    }
}

/// The user env: `env` (the workspace's, then `project.toml`'s build env), then `--env`
/// (`K=V`, or `K` from this process's env); a later value of a name replaces an earlier one.
fn user_env(
    env: Vec<(String, String)>,
    args: &[String],
) -> Result<Vec<(String, String)>, CliError> {
    let mut flags = Vec::new();
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
        flags.push((name, value));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in env.into_iter().chain(flags) {
        out.retain(|(k, _)| *k != name);
        out.push((name, value));
    }
    Ok(out)
}

/// The service bindings: `bindings` (the workspace's and the service's), then `--binding`,
/// which replaces one of the same name; each checked and hashed.
fn service_bindings(
    bindings: Vec<(String, PathBuf)>,
    flags: &[(String, PathBuf)],
) -> Result<Vec<Binding>, CliError> {
    let mut merged: Vec<(String, PathBuf)> = bindings
        .into_iter()
        .filter(|(name, _)| !flags.iter().any(|(flag, _)| flag == name))
        .collect();
    merged.extend(flags.iter().cloned());
    Ok(Binding::load_all(&merged)?)
}

/// A `project.toml` buildpack uri, checked: the app repository may name a buildpack it ships
/// (a directory inside it, through links that stay inside) or a buildpack id, never a
/// directory elsewhere on the host. A directory comes back resolved.
fn project_uri(uri: &str, app_dir: &Path) -> Result<String, CliError> {
    let refused = |why: String| {
        CliError::Usage(format!(
            "project.toml: buildpack uri `{uri}`: {why}; a project may name a buildpack directory \
             inside the app only (use --buildpack for one elsewhere)"
        ))
    };
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    strata_planner::safepath::relative_or_root(path).map_err(|e| refused(e.to_string()))?;
    if !app_dir.join(path).exists() {
        return Ok(uri.to_owned());
    }
    let dir = strata_planner::safepath::resolve_inside(app_dir, path)
        .map_err(|e| refused(e.to_string()))?;
    Ok(dir.to_string_lossy().into_owned())
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
            exec_env: Vec::new(),
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
        exec_env: Vec::new(),
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
