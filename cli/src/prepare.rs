//! What `plan` and `build` share: hashing the app, detection (cached), and the plan.
//!
//! Nothing here writes outside the cache directory and a scratch directory: `strata plan`
//! stops after this, and an unchanged app plans without spawning a process or reading a file's
//! content (the stat cache and the detect cache answer).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use strata_engine::detect::ProcessDetector;
use strata_engine::platform::{PlatformDir, TargetEnv};
use strata_engine::store::{Store, store_dir};
use strata_exporter::runimage::RunImage;
use strata_planner::TaskKey;
use strata_planner::{CachingDetector, Plan, Records, ServiceInput, resolve};
use strata_planner::{HashStats, ScanOptions, SourceTree, StatCache, scan, stat_cache_path};

use crate::config::{InputConfig, RunImageSource};
use crate::error::CliError;

/// A planned build.
pub(crate) struct Prepared {
    /// The plan.
    pub(crate) plan: Plan,
    /// The run image, or `None` for the built-in base.
    pub(crate) run_image: Option<RunImage>,
    /// The name recorded for the run image.
    pub(crate) run_image_name: String,
    /// The target buildpacks build for.
    pub(crate) target: TargetEnv,
    /// The platform directory.
    pub(crate) platform: PlatformDir,
    /// How much hashing the app and buildpacks took.
    pub(crate) hashing: HashStats,
    /// Detect outcomes answered from the cache.
    pub(crate) detect_cached: u64,
    /// Detect processes spawned.
    pub(crate) detect_ran: u64,
    /// The app's files, as hashed.
    pub(crate) app: SourceTree,
    /// Each buildpack's content digest, by `id@version`.
    pub(crate) digests: BTreeMap<String, TaskKey>,
    /// A scratch directory, removed on drop.
    pub(crate) scratch: tempfile::TempDir,
}

/// The service name of an app directory: its directory name.
pub(crate) fn service_name(app_dir: &Path) -> String {
    app_dir
        .file_name()
        .map_or_else(|| "app".to_owned(), |n| n.to_string_lossy().into_owned())
}

/// Hashes the app and buildpacks, detects, and plans.
pub(crate) fn prepare(config: &InputConfig) -> Result<Prepared, CliError> {
    let scratch = tempfile::Builder::new()
        .prefix("strata-")
        .tempdir()
        .map_err(|source| CliError::Io {
            what: "cannot create a scratch directory".to_owned(),
            source,
        })?;
    let platform =
        PlatformDir::create(&scratch.path().join("platform"), &config.env).map_err(|source| {
            CliError::Io {
                what: "cannot write the platform directory".to_owned(),
                source,
            }
        })?;

    // A missing run image is bad input: find out before any buildpack runs.
    let (run_image, run_image_name) = match &config.run_image {
        RunImageSource::Image { reference, name } => {
            (Some(RunImage::load(reference)?), name.clone())
        }
        RunImageSource::Builtin => (
            None,
            strata_exporter::base::BUILTIN_BASE_REFERENCE.to_owned(),
        ),
    };
    let target = match &run_image {
        Some(image) => TargetEnv {
            os: image.os().to_string(),
            arch: image.arch().to_string(),
            ..TargetEnv::host()
        },
        None => TargetEnv::host(),
    };
    let target_name = format!("{}/{}", target.os, target.arch);
    let export = match &run_image {
        Some(image) => format!(
            "{}@{} epoch={}",
            run_image_name, image.manifest_digest, config.epoch
        ),
        None => format!("{run_image_name} epoch={}", config.epoch),
    };

    let (include, exclude) = config
        .project
        .as_ref()
        .map_or((&[][..], &[][..]), |p| (&p.include[..], &p.exclude[..]));
    let (app, mut hashing) = hash_tree(&config.cache_dir, &config.app_dir, include, exclude)?;
    let mut digests: BTreeMap<String, TaskKey> = BTreeMap::new();
    for buildpack in config.registry.iter() {
        let (tree, stats) = hash_tree(&config.cache_dir, &buildpack.dir, &[], &[])?;
        hashing += &stats;
        digests.insert(buildpack.reference(), tree.digest_of(tree.files.iter()));
    }

    let (group, detect_cached, detect_ran) = {
        let process = ProcessDetector {
            sandbox: &config.sandbox,
            app_dir: &config.app_dir,
            platform: &platform,
            target: &target,
            scratch: scratch.path().join("detect"),
            network: config.network,
            spawned: AtomicUsize::new(0),
        };
        let cache = config.cache_dir.join("detect");
        let detector =
            CachingDetector::new(&process, &cache, &app, &config.env, &target_name, &digests);
        let group = resolve(&config.order, &config.registry, &detector)?;
        (
            group,
            detector.hits.load(Ordering::Relaxed),
            process.spawned.load(Ordering::Relaxed) as u64,
        )
    };

    let mut plan = Plan::new();
    plan.add_service(&ServiceInput {
        name: &service_name(&config.app_dir),
        group: &group,
        app: &app,
        buildpack_digests: &digests,
        env: &config.env,
        build_image: &config.build_image,
        target: &target_name,
        export: &export,
    })?;
    // Statuses: cached when the store has the task's output, else why it will run.
    let store =
        Store::open(&store_dir(&config.cache_dir)).map_err(crate::cache::CacheError::from)?;
    let cached = |key: &TaskKey| store.has_action(key);
    Records::new(&config.cache_dir).explain(&mut plan, 0, &app, &digests, &cached);
    drop(store);
    Ok(Prepared {
        plan,
        run_image,
        run_image_name,
        target,
        platform,
        hashing,
        detect_cached,
        detect_ran,
        app,
        digests,
        scratch,
    })
}

/// Scans `root` with its stat cache under `cache_dir`, and saves the cache.
fn hash_tree(
    cache_dir: &Path,
    root: &Path,
    include: &[String],
    exclude: &[String],
) -> Result<(SourceTree, HashStats), CliError> {
    let mut cache = StatCache::load(&stat_cache_path(cache_dir, root));
    let scanned = scan(root, &ScanOptions { include, exclude }, &mut cache)?;
    // A cache that cannot be saved only costs hashing next time.
    let _ = cache.save();
    Ok(scanned)
}
