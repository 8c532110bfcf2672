//! `strata build`: plan, run the tasks, and export one app.
//!
//! Inputs are validated first ([`crate::config`]), so bad input fails fast with exit code 2
//! and nothing written. Tasks then run in a scratch directory, and the image is exported into
//! a staging area that is committed to the output layout only at the very end.

use serde::Serialize;
use strata_engine::appdir::copy_app;
use strata_engine::build::BuildRequest;
use strata_engine::execute::{Event, Executed, TaskReport, execute_service, task_report};
use strata_engine::executor::ExecOptions;
use strata_engine::store::{Store, store_dir};
use strata_exporter::archive::{Compression, Owner};
use strata_exporter::base::builtin_run_image;
use strata_exporter::image::{ExportRequest, ExportedLayer, assemble};
use strata_exporter::layout::Staging;
use strata_exporter::reference::ImageRef;
use strata_exporter::runimage::{DEFAULT_CNB_ID, RunImage};
use strata_exporter::taskcache::StoreCache;
use strata_planner::{Records, TaskKind};

use crate::args::{BuildArgs, CompressionArg};
use crate::config::InputConfig;
use crate::error::CliError;
use crate::prepare::{Prepared, prepare};
use crate::progress::Progress;

/// What a build produced, for the text and JSON reports.
#[derive(Debug, Serialize)]
pub(crate) struct BuildReport {
    pub(crate) image: String,
    pub(crate) digest: String,
    pub(crate) buildpacks: Vec<String>,
    pub(crate) layers: Vec<LayerReport>,
    /// Each task: `id`, `key`, `status` (`ran` or `cached`), `reason`, `seconds`.
    pub(crate) tasks: Vec<TaskReport>,
    /// How many tasks ran and how many were answered from the cache.
    pub(crate) ran: usize,
    pub(crate) cached: usize,
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

/// Stages the run image's layers into the output (or makes the built-in base there).
fn stage_run_image(
    prepared: &Prepared,
    config: &BuildConfig,
    staging: &Staging,
) -> Result<RunImage, CliError> {
    let Some(image) = &prepared.run_image else {
        let owner = Owner::new(DEFAULT_CNB_ID, DEFAULT_CNB_ID);
        return Ok(builtin_run_image(
            staging.blob_dir(),
            owner,
            config.input.epoch,
            config.compression,
        )?);
    };
    for layer in &image.layers {
        let blob = layer.blob.as_deref().ok_or_else(|| {
            CliError::Usage(format!(
                "run image {}: layer {} is not on disk",
                prepared.run_image_name, layer.diff_id
            ))
        })?;
        staging.put_blob_file(blob, &layer.descriptor)?;
    }
    Ok(image.clone())
}

/// Removes from the output layout the blobs the store found corrupt in this build.
///
/// Exported layers are hardlinks of store blobs, so a blob corrupted in the store is corrupt
/// in the layout too; the store has just rebuilt it, and the export must put the good copy
/// in place instead of keeping the layout's (which it would, finding the digest present).
fn drop_corrupt_copies(store: &Store, layout: &std::path::Path) {
    for digest in store.removed_blobs() {
        let Some(hex) = digest.strip_prefix("sha256:") else {
            continue;
        };
        let copy = layout.join("blobs/sha256").join(hex);
        // A copy that cannot be removed stays; `strata cache verify` and skopeo will show it.
        let _ = std::fs::remove_file(copy);
    }
}

/// The task cache of this build: layers owned by the run image's CNB user, dated and
/// compressed as asked; with `--no-cache`, one that answers nothing.
fn store_cache<'a>(
    store: &'a Store,
    prepared: &Prepared,
    config: &BuildConfig,
) -> Result<StoreCache<'a>, CliError> {
    let owner = match &prepared.run_image {
        Some(image) => image.cnb_user()?,
        None => Owner::new(DEFAULT_CNB_ID, DEFAULT_CNB_ID),
    };
    let cache = StoreCache::new(store, owner, config.input.epoch, config.compression);
    Ok(if config.no_cache {
        cache.without_lookups()
    } else {
        cache
    })
}

/// A build, validated.
pub(crate) struct BuildConfig {
    pub(crate) input: InputConfig,
    output: ImageRef,
    compression: Compression,
    exec: ExecOptions,
    no_cache: bool,
}

impl BuildConfig {
    pub(crate) fn from_args(args: &BuildArgs) -> Result<Self, CliError> {
        let output = ImageRef::parse(&args.output)?;
        Ok(Self {
            input: InputConfig::from_args(&args.input)?,
            output,
            compression: match args.compression {
                CompressionArg::None => Compression::None,
                CompressionArg::Gzip => Compression::Gzip,
            },
            exec: ExecOptions {
                jobs: args.jobs.map_or_else(
                    || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
                    usize::from,
                ),
                keep_going: args.keep_going,
            },
            no_cache: args.no_cache,
        })
    }
}

/// Plans, runs the tasks, and exports.
pub(crate) fn run(config: &BuildConfig, progress: &Progress) -> Result<BuildReport, CliError> {
    let input = &config.input;
    progress.line("===> DETECTING");
    let prepared = prepare(input)?;
    let service = &prepared.plan.services[0];
    for member in &service.group.group {
        progress.line(&format!("     {}", member.buildpack.reference()));
    }

    progress.line("===> BUILDING");
    progress.set_total(service.tasks.len().saturating_sub(2) as u64);
    let scratch = prepared.scratch.path();
    let workspace = scratch.join("workspace");
    std::fs::create_dir(&workspace).map_err(|source| CliError::Io {
        what: "cannot create the workspace".to_owned(),
        source,
    })?;
    let (include, exclude) = input
        .project
        .as_ref()
        .map_or((&[][..], &[][..]), |p| (&p.include[..], &p.exclude[..]));
    copy_app(&input.app_dir, &workspace, include, exclude)?;
    let request = BuildRequest {
        source: &input.app_dir,
        sandbox: &input.sandbox,
        workspace: &workspace,
        platform: &prepared.platform,
        target: &prepared.target,
        scratch: &scratch.join("build"),
        network: input.network,
    };
    let show = |event: Event<'_>| match event {
        Event::Started(id) => progress.started(id),
        Event::Finished(id, log) => progress.ended(id, None, Some(log)),
        Event::Failed(id) => progress.ended(id, Some("failed"), None),
        Event::Skipped(id) => progress.ended(id, Some("skipped (a task it needs failed)"), None),
    };
    let store =
        Store::open(&store_dir(&input.cache_dir)).map_err(crate::cache::CacheError::from)?;
    let cache = store_cache(&store, &prepared, config)?;
    let Executed { output, mut tasks } = execute_service(
        &request,
        &prepared.plan,
        service,
        config.exec,
        Some(&cache),
        &show,
    )?;

    progress.finish();
    progress.line("===> EXPORTING");
    let export_started = std::time::Instant::now();
    drop_corrupt_copies(&store, config.output.dir());
    let staging = Staging::new(config.output.dir())?;
    let run_image = stage_run_image(&prepared, config, &staging)?;
    let exported = assemble(
        &ExportRequest {
            build: &output,
            run_image: &run_image,
            run_image_name: &prepared.run_image_name,
            owner: run_image.cnb_user()?,
            epoch: input.epoch,
            compression: config.compression,
            project: input.project.as_ref(),
        },
        &staging,
    )?;
    staging.commit(&[(config.output.tag().to_owned(), exported.manifest.clone())])?;
    // What each task read, so the next plan can say why a task runs again. A record that
    // cannot be written only makes a later reason `new`.
    let _ =
        Records::new(&input.cache_dir).save(&prepared.plan, 0, &prepared.app, &prepared.digests);
    for node in &service.tasks {
        if matches!(
            prepared.plan.graph[*node].kind,
            TaskKind::App | TaskKind::Image
        ) {
            tasks.push(task_report(
                &prepared.plan,
                *node,
                "ran",
                export_started.elapsed(),
            ));
        }
    }
    let ran = tasks.iter().filter(|t| t.status == "ran").count();
    Ok(BuildReport {
        image: config.output.to_string(),
        digest: exported.manifest.digest().to_string(),
        buildpacks: service
            .group
            .group
            .iter()
            .map(|m| m.buildpack.reference())
            .collect(),
        layers: exported.layers.iter().map(LayerReport::from).collect(),
        cached: tasks.len() - ran,
        ran,
        tasks,
    })
}
