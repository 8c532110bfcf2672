//! What `plan` and `build` share: hashing each service's app, detection (cached), and one plan
//! for every service.
//!
//! Nothing here writes outside the cache directory and a scratch directory: `strata plan`
//! stops after this, and an unchanged app plans without spawning a process or reading a file's
//! content (the stat cache and the detect cache answer). Services are hashed and detected in
//! parallel; each buildpack directory and each run image is read once however many services
//! use it.
//!
//! Each service's target is its run image's (or the host's for the built-in base); when that
//! names no distribution, the build root's os-release gives it, as the lifecycle takes it from
//! the build image. The build root is what the sandbox runs buildpacks on: the host's system
//! directories, so `/` ([`BUILD_ROOT`]), read once per build.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use strata_engine::detect::ProcessDetector;
use strata_engine::osrelease::{self, Distro};
use strata_engine::platform::{PlatformDir, TargetEnv};
use strata_engine::remote::{Prefetched, RemoteCache, prefetch};
use strata_engine::restore::{restore_id, shared_restore_id};
use strata_engine::sandbox::{Root, Sandbox};
use strata_engine::scratch::{self, ScratchDir};
use strata_engine::store::{Store, store_dir};
use strata_exporter::builduser::build_user;
use strata_exporter::layout::LayoutError;
use strata_exporter::reference::ImageRef;
use strata_exporter::rootfs::unpack_rootfs;
use strata_exporter::runimage::{ImageRole, RunImage, RunImageError};
use strata_exporter::unpack::OwnerMap;
use strata_planner::{
    CachingDetector, DetectResult, Plan, Records, ServiceInput, resolve_for_exec_env,
};
use strata_planner::{HashStats, ScanOptions, SourceTree, StatCache, scan, stat_cache_path};
use strata_planner::{TaskKey, bindings_digest};

use crate::cache::CacheError;
use crate::config::{BuildImageSource, InputConfig, RunImageSource, ServiceConfig};
use crate::error::CliError;

/// A planned build of one or more services.
pub(crate) struct Prepared {
    /// The plan: `plan.services[i]` is `services[i]`.
    pub(crate) plan: Plan,
    /// The planned services.
    pub(crate) services: Vec<PreparedService>,
    /// Services that could not be planned (detection failed), with why; only with
    /// `keep_going`, else the first of these is the error.
    pub(crate) failed: Vec<(String, CliError)>,
    /// How much hashing the apps and buildpacks took.
    pub(crate) hashing: HashStats,
    /// Detect outcomes answered from the cache.
    pub(crate) detect_cached: u64,
    /// Detect processes spawned.
    pub(crate) detect_ran: u64,
    /// Notes for the user about the whole build (no build image, so not hermetic), shown
    /// before the detect warnings.
    pub(crate) notes: Vec<String>,
    /// What a remote cache gave before the statuses were made.
    pub(crate) prefetched: Option<Prefetched>,
    /// A scratch directory, removed on drop (or by a signal, see `strata_engine::scratch`).
    pub(crate) _scratch: ScratchDir,
    /// The store, open from before the build images are unpacked until the build is done:
    /// `strata cache gc` does not remove a tree the build runs on. The build uses this
    /// handle: it holds what a remote cache only promised (see `strata_engine::store`).
    pub(crate) store: Store,
}

/// One planned service.
pub(crate) struct PreparedService {
    /// Its index in [`InputConfig::services`].
    pub(crate) config: usize,
    /// The run image, or `None` for the built-in base.
    pub(crate) run_image: Option<Arc<RunImage>>,
    /// The name recorded for the run image.
    pub(crate) run_image_name: String,
    /// The target buildpacks build for.
    pub(crate) target: TargetEnv,
    /// The platform directory.
    pub(crate) platform: PlatformDir,
    /// The app's files, as hashed.
    pub(crate) app: SourceTree,
    /// Each buildpack's content digest, by `id@version`.
    pub(crate) digests: Arc<BTreeMap<String, TaskKey>>,
    /// This service's own scratch directory.
    pub(crate) scratch: PathBuf,
    /// The sandbox its buildpacks run in: on its build image, as its build user.
    pub(crate) sandbox: Sandbox,
}

/// The root buildpack processes see without a build image: the sandbox binds the host's
/// system directories (the `host` build image).
const BUILD_ROOT: &str = "/";

/// What a build image gives the services built on it.
struct BuildRoot {
    /// What task keys record: the image's manifest digest, or `host`.
    key: String,
    /// Where its root filesystem is on the host (`/` for the host's).
    dir: PathBuf,
    /// The sandbox on it.
    sandbox: Sandbox,
}

/// A service hashed and detected, before it joins the plan.
struct Detected {
    service: PreparedService,
    group: DetectResult,
    export: String,
    hashing: HashStats,
    detect_cached: u64,
    detect_ran: u64,
}

/// Hashes the apps and buildpacks, detects, and plans. A service whose detection fails is an
/// error, or with `keep_going` left out of the plan and listed in [`Prepared::failed`].
pub(crate) fn prepare(
    config: &InputConfig,
    keep_going: bool,
    remote: Option<&dyn RemoteCache>,
) -> Result<Prepared, CliError> {
    let scratch = new_scratch()?;
    let in_service = |name: &str, e: CliError| match config.workspace {
        Some(_) => CliError::in_service(name, e),
        None => e,
    };

    let run_images = load_run_images(config, &in_service)?;
    let store = Store::open(&store_dir(&config.cache_dir)).map_err(CacheError::from)?;
    let mut notes = Vec::new();
    let build_roots = build_roots(config, &mut notes)?;
    let targets = targets(config, &run_images, &build_roots)?;
    let mut hashing = HashStats::default();
    let dir_digests = buildpack_digests(config, &mut hashing)?;

    let detected: Vec<Result<Detected, CliError>> = config
        .services
        .par_iter()
        .zip(targets)
        .enumerate()
        .map(|(index, (service, target))| {
            let run_image = match &service.run_image {
                RunImageSource::Image {
                    reference, name, ..
                } => Some((Arc::clone(&run_images[reference]), name.clone())),
                RunImageSource::Builtin => None,
            };
            let digests = service
                .registry
                .iter()
                .map(|bp| (bp.reference(), dir_digests[&bp.dir]))
                .collect();
            let dir = scratch.path().join(format!("service-{index}"));
            detect_service(
                config,
                index,
                service,
                run_image,
                target,
                Arc::new(digests),
                (
                    dir,
                    build_roots[&service.build_image].sandbox.clone(),
                    &service_build_key(&build_roots[&service.build_image].key, service),
                ),
            )
        })
        .collect();

    let mut plan = Plan::new();
    let mut services = Vec::new();
    let mut failed = Vec::new();
    let (mut detect_cached, mut detect_ran) = (0, 0);
    for (result, service) in detected.into_iter().zip(&config.services) {
        let detected = match result {
            Ok(detected) => detected,
            Err(e) if keep_going && config.workspace.is_some() => {
                failed.push((service.name.clone(), e));
                continue;
            }
            Err(e) => return Err(in_service(&service.name, e)),
        };
        hashing += &detected.hashing;
        detect_cached += detected.detect_cached;
        detect_ran += detected.detect_ran;
        let prepared = detected.service;
        plan.add_service(&ServiceInput {
            name: &service.name,
            group: &detected.group,
            app: &prepared.app,
            buildpack_digests: &prepared.digests,
            env: &service.env,
            bindings: bindings_digest(&service.bindings),
            build_image: &service_build_key(&build_roots[&service.build_image].key, service),
            target: &prepared.target.key(),
            export: &detected.export,
            exec_env: &config.exec_env,
        })
        .map_err(|e| in_service(&service.name, e.into()))?;
        services.push(prepared);
    }

    // Statuses: cached when the store has the task's output, else why it will run.
    let cached = strata_exporter::taskcache::StoredOutputs(&store);
    // What a remote cache has goes into the store first, so the statuses count it.
    let prefetched =
        remote.map(|remote| prefetch_remote(config, &plan, &services, &store, remote, &cached));
    let records = Records::new(&config.cache_dir);
    for (index, service) in services.iter().enumerate() {
        records.explain(&mut plan, index, &service.app, &service.digests, &cached);
    }
    Ok(Prepared {
        plan,
        services,
        failed,
        hashing,
        detect_cached,
        detect_ran,
        notes,
        prefetched,
        _scratch: scratch,
        store,
    })
}

/// Fetches what `remote` has of every service's tasks, and the restore state of the opaque
/// buildpacks that will run, into `store`.
fn prefetch_remote(
    config: &InputConfig,
    plan: &Plan,
    services: &[PreparedService],
    store: &Store,
    remote: &dyn RemoteCache,
    cached: &dyn strata_planner::Lookup,
) -> Prefetched {
    let indexes: Vec<usize> = (0..services.len()).collect();
    let ids = |index: usize, buildpack: &str| {
        let service = &config.services[services[index].config];
        (
            restore_id(&service.app_dir, &service.name, &config.exec_env, buildpack),
            shared_restore_id(&service.name, &config.exec_env, buildpack),
        )
    };
    prefetch(plan, &indexes, store, remote, cached, &ids)
}

/// The digest of each buildpack directory the services use, each hashed once.
fn buildpack_digests(
    config: &InputConfig,
    hashing: &mut HashStats,
) -> Result<HashMap<PathBuf, TaskKey>, CliError> {
    let mut digests: HashMap<PathBuf, TaskKey> = HashMap::new();
    for service in &config.services {
        for buildpack in service.registry.iter() {
            if !digests.contains_key(&buildpack.dir) {
                // A buildpack is a handful of files: walker threads would cost more than the
                // walk.
                let (tree, stats) = hash_tree(&config.cache_dir, &buildpack.dir, &[], &[], true)?;
                *hashing += &stats;
                digests.insert(buildpack.dir.clone(), tree.digest_of(tree.files.iter()));
            }
        }
    }
    Ok(digests)
}

/// A warning for each buildpack whose detect errored though its service's group passed
/// without it (an optional one, or one of a group tried before), with the last lines it
/// printed: the lifecycle prints those too, and a silently missing buildpack is hard to
/// explain.
pub(crate) fn detect_warnings(prepared: &Prepared, workspace: bool) -> Vec<String> {
    let mut out = prepared.notes.clone();
    for service in &prepared.plan.services {
        for errored in &service.group.errored {
            let service = if workspace {
                format!("{}: ", service.name)
            } else {
                String::new()
            };
            let mut text = format!(
                "warning: {service}detect of buildpack {} errored ({}); the build goes on \
                 without it",
                errored.buildpack, errored.message
            );
            let tail = errored.output.trim_end();
            if !tail.is_empty() {
                text.push_str("\n--- last lines of its output ---\n");
                text.push_str(tail);
            }
            out.push(text);
        }
    }
    out
}

/// What the names of builds' scratch directories (in the temp directory) start with.
pub(crate) const SCRATCH_PREFIX: &str = "strata-scratch-";

/// A private scratch directory for this build in the temp directory (`TMPDIR`), after
/// removing those that killed builds left there.
fn new_scratch() -> Result<ScratchDir, CliError> {
    let tmp = std::env::temp_dir();
    scratch::remove_stale(&tmp, SCRATCH_PREFIX);
    ScratchDir::create(&tmp, SCRATCH_PREFIX).map_err(|source| CliError::Io {
        what: format!("cannot create a scratch directory in {}", tmp.display()),
        source,
    })
}

/// Loads each run image the services name, once. A missing run image, or one for a platform
/// this host cannot build for, is bad input: found out here, before any buildpack runs.
fn load_run_images(
    config: &InputConfig,
    in_service: &dyn Fn(&str, CliError) -> CliError,
) -> Result<HashMap<ImageRef, Arc<RunImage>>, CliError> {
    let mut run_images = HashMap::new();
    for service in &config.services {
        if let RunImageSource::Image { reference, .. } = &service.run_image
            && !run_images.contains_key(reference)
        {
            let image = RunImage::load(reference)
                .and_then(|image| image.target().map(|_| image))
                .map_err(|e| in_service(&service.name, not_made_hint(e)))?;
            run_images.insert(reference.clone(), Arc::new(image));
        }
    }
    Ok(run_images)
}

/// A run image layout that does not exist, in a directory with a `make.sh` (as the examples'
/// run image and stack are made): the error says to run it.
fn not_made_hint(err: RunImageError) -> CliError {
    if let RunImageError::Layout {
        reference, source, ..
    } = &err
        && let LayoutError::Missing { dir } = source.as_ref()
        && let Some(script) = dir
            .parent()
            .map(|parent| parent.join("make.sh"))
            .filter(|script| script.is_file())
    {
        return CliError::RunImageNotMade {
            reference: reference.clone(),
            hint: format!("it is made by `{}`: run that first", script.display()),
            source: Box::new(LayoutError::Missing { dir: dir.clone() }),
        };
    }
    err.into()
}

/// Each build image the services name, loaded and unpacked into the store (once: a second
/// build finds the tree), with the sandbox on it; `host` for those that name none, said once
/// in `notes`, since what the host has installed then decides the build.
fn build_roots(
    config: &InputConfig,
    notes: &mut Vec<String>,
) -> Result<HashMap<BuildImageSource, BuildRoot>, CliError> {
    let mut roots = HashMap::new();
    for service in &config.services {
        if roots.contains_key(&service.build_image) {
            continue;
        }
        let root = match &service.build_image {
            BuildImageSource::Host => {
                if config.sandbox.isolates() {
                    notes.push(
                        "note: no build image: buildpacks run on this host's system directories, \
                         so the build is not hermetic (--build-image oci:DIR:TAG)"
                            .to_owned(),
                    );
                }
                BuildRoot {
                    key: "host".to_owned(),
                    dir: PathBuf::from(BUILD_ROOT),
                    sandbox: config.sandbox.clone(),
                }
            }
            BuildImageSource::Image(reference) => {
                // Unsandboxed, buildpacks would run on the host while keys name the image.
                if !config.sandbox.isolates() {
                    return Err(CliError::Usage(format!(
                        "the build image `{reference}` needs the sandbox: it cannot be used with --sandbox none"
                    )));
                }
                let image = RunImage::load_as(reference, ImageRole::Build)?;
                let (uid, gid) = build_user(&image)?;
                let owners = config.sandbox.host_owner().map(|host| OwnerMap {
                    image: (uid, gid),
                    host,
                });
                let dir = unpack_rootfs(&image, &store_dir(&config.cache_dir), owners)?;
                let env = image
                    .config
                    .config()
                    .as_ref()
                    .and_then(|c| c.env().clone())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                let sandbox = config
                    .sandbox
                    .clone()
                    .with_root(Root::Image(dir.clone()))
                    .with_user(uid, gid)
                    .with_image_env(env);
                BuildRoot {
                    key: image.manifest_digest.clone(),
                    dir,
                    sandbox,
                }
            }
        };
        roots.insert(service.build_image.clone(), root);
    }
    Ok(roots)
}

/// What task keys record of what a service's buildpacks run on: the build root's key, and the
/// builder image that gives operator env, when one does (it need not be the build image).
fn service_build_key(root_key: &str, service: &ServiceConfig) -> String {
    match &service.build_config {
        Some(config) => format!("{root_key} build-config={}", config.digest),
        None => root_key.to_owned(),
    }
}

/// Each service's target: its run image's, or the host's for the built-in base; the
/// distribution of the build root `build_root` (read at most once) for one that names none.
fn targets(
    config: &InputConfig,
    run_images: &HashMap<ImageRef, Arc<RunImage>>,
    build_roots: &HashMap<BuildImageSource, BuildRoot>,
) -> Result<Vec<TargetEnv>, CliError> {
    let mut build_distros: HashMap<&BuildImageSource, Distro> = HashMap::new();
    let mut targets = Vec::new();
    for service in &config.services {
        let target = match &service.run_image {
            RunImageSource::Image { reference, .. } => run_images[reference].target()?,
            RunImageSource::Builtin => TargetEnv::host(),
        };
        let target = if target.has_distro() {
            target
        } else {
            let distro = if let Some(distro) = build_distros.get(&service.build_image) {
                distro.clone()
            } else {
                let distro = osrelease::distro(&build_roots[&service.build_image].dir)?;
                build_distros.insert(&service.build_image, distro.clone());
                distro
            };
            target.or_distro(distro.name, distro.version)
        };
        targets.push(target);
    }
    Ok(targets)
}

/// Hashes one service's app and detects its group.
fn detect_service(
    config: &InputConfig,
    index: usize,
    service: &ServiceConfig,
    run_image: Option<(Arc<RunImage>, String)>,
    target: TargetEnv,
    digests: Arc<BTreeMap<String, TaskKey>>,
    (scratch, sandbox, build_key): (PathBuf, Sandbox, &str),
) -> Result<Detected, CliError> {
    let platform = PlatformDir::new(&scratch.join("platform"), &service.env)
        .with_bindings(service.bindings.clone(), &config.sandbox)
        .with_operator_env(
            service
                .build_config
                .as_ref()
                .map(|c| c.env.clone())
                .unwrap_or_default(),
        );
    let (run_image, run_image_name) = match run_image {
        Some((image, name)) => (Some(image), name),
        None => (
            None,
            strata_exporter::base::BUILTIN_BASE_REFERENCE.to_owned(),
        ),
    };
    let export = match &run_image {
        Some(image) => format!(
            "{}@{} epoch={}",
            run_image_name, image.manifest_digest, config.epoch
        ),
        None => format!("{run_image_name} epoch={}", config.epoch),
    };
    let (include, exclude) = service.include_exclude();
    // The services are hashed in parallel already: each walks on its own thread.
    let sequential = config.services.len() > 1;
    let (app, hashing) = hash_tree(
        &config.cache_dir,
        &service.app_dir,
        include,
        exclude,
        sequential,
    )?;

    let process = ProcessDetector {
        sandbox: &sandbox,
        app_dir: &service.app_dir,
        platform: &platform,
        target: &target,
        scratch: scratch.join("detect"),
        network: config.network,
        exec_env: &config.exec_env,
        spawned: AtomicUsize::new(0),
    };
    let cache = config.cache_dir.join("detect");
    let detector = CachingDetector::new(
        &process,
        &cache,
        &app,
        &service.env,
        &target.key(),
        &config.exec_env,
        &digests,
    )
    .with_bindings(bindings_digest(&service.bindings))
    .with_build_image(build_key);
    let group = resolve_for_exec_env(
        &service.order,
        &service.registry,
        &target,
        &config.exec_env,
        &detector,
    )?;
    let detect_cached = detector.hits.load(Ordering::Relaxed);
    let detect_ran = process.spawned.load(Ordering::Relaxed) as u64;
    Ok(Detected {
        service: PreparedService {
            config: index,
            run_image,
            run_image_name,
            target,
            platform,
            app,
            digests,
            scratch,
            sandbox,
        },
        group,
        export,
        hashing,
        detect_cached,
        detect_ran,
    })
}

/// Scans `root` with its stat cache under `cache_dir` (on this thread when `sequential`), and
/// saves the cache.
fn hash_tree(
    cache_dir: &Path,
    root: &Path,
    include: &[String],
    exclude: &[String],
    sequential: bool,
) -> Result<(SourceTree, HashStats), CliError> {
    let mut cache = StatCache::load(&stat_cache_path(cache_dir, root));
    let options = ScanOptions {
        include,
        exclude,
        sequential,
    };
    let scanned = scan(root, &options, &mut cache)?;
    // A cache that cannot be saved only costs hashing next time.
    let _ = cache.save();
    Ok(scanned)
}
