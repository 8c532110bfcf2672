//! `strata build`: plan every service, run all their tasks in one executor run, and export
//! each service's image as soon as its tasks are done.
//!
//! Inputs are validated first ([`crate::config`]), so bad input fails fast with exit code 2
//! and nothing written. A service whose image task's key last exported the manifest the
//! output still tags it with is up to date: none of its tasks runs or is even probed. One
//! whose tasks ran but came out as before (its image task's action key last exported that
//! manifest) is up to date too, with no new manifest (early cutoff). The
//! others run in per-service scratch directories; each image is assembled in its own staging
//! area and committed to the shared output layout (commits are serialised by a lock; one
//! committer thread commits the services that finished within a second together, so a build
//! of n services does not write `index.json` n times: [`strata_exporter::groupcommit`]), so a
//! failed service leaves its old tag in place and the others still land.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use petgraph::graph::NodeIndex;
use strata_engine::build::{BuildError, BuildOutput, BuildRequest};
use strata_engine::execute::{
    Event, Executed, Failure, Outputs, ServiceRun, TaskCache, TaskReport, execute, task_report,
};
use strata_engine::executor::ExecOptions;
use strata_engine::layers::StoredBlob;
use strata_engine::remote::WithRemote;
use strata_engine::restore::{restore_id, shared_restore_id};
use strata_engine::store::Store;
use strata_exporter::archive::{Compression, Owner};
use strata_exporter::base::builtin_run_image;
use strata_exporter::groupcommit::GroupCommit;
use strata_exporter::image::{ExportError, ExportRequest, ExportedImage, assemble};
use strata_exporter::launcherstore::stored_launcher_layer;
use strata_exporter::layout::{Layout, Staging};
use strata_exporter::reference::{ImageRef, validate_tag};
use strata_exporter::runimage::{DEFAULT_CNB_ID, RunImage};
use strata_exporter::runproof::verify_layers;
use strata_exporter::taskcache::StoreCache;
use strata_planner::{Records, TaskKey, TaskKind};

use crate::args::{BuildArgs, CompressionArg};
use crate::config::{InputConfig, registry_repository};
use crate::error::CliError;
use crate::prepare::{Prepared, PreparedService, detect_warnings, prepare};
use crate::profile::Profile;
use crate::progress::Progress;
use crate::publish::Publish;
use crate::remotecache::{Entries, RemoteRun, parse_cache_ref};
use crate::report::{BuildReport, ImageReport, LayerReport, ServiceReport, SkippedReport};
use crate::uptodate;
use strata_registry::MountSources;

/// A build, validated.
pub(crate) struct BuildConfig {
    pub(crate) input: InputConfig,
    /// The output layout.
    pub(crate) layout: PathBuf,
    /// Each service's tag, by index in `input.services`.
    pub(crate) tags: Vec<String>,
    compression: Compression,
    exec: ExecOptions,
    no_cache: bool,
    /// Images exec their default process directly, with no launcher.
    no_launcher: bool,
    /// Where to write the build's trace (`--profile`).
    profile: Option<PathBuf>,
    /// Where images go after they are built into `layout`, when the output is a registry or
    /// an archive.
    publish: Option<Publish>,
    /// The key images are signed with (`--sign-key`).
    sign_key: Option<strata_exporter::signing::SigningKey>,
    /// The remote cache read before tasks run (`--cache-from`, or `cache` in strata.toml).
    cache_from: Option<strata_registry::Reference>,
    /// The remote cache what ran is pushed to (`--cache-to`, or `cache`).
    cache_to: Option<strata_registry::Reference>,
    /// The layout whose directory relative `oci:` run image names are recorded from (see
    /// [`InputConfig::record_run_images_from`]); `None` for a registry or archive output,
    /// whose images record the names as written.
    names_from: Option<PathBuf>,
}

/// The key images are signed with (`--sign-key`): none for an archive, which cannot carry
/// signatures.
fn sign_key(
    args: &BuildArgs,
    publish: Option<&Publish>,
) -> Result<Option<strata_exporter::signing::SigningKey>, CliError> {
    match &args.sign_key {
        Some(_) if matches!(publish, Some(Publish::Archive { .. })) => Err(CliError::Usage(
            "--sign-key: a docker-archive cannot carry signatures; build to a layout or registry"
                .to_owned(),
        )),
        Some(path) => Ok(Some(strata_exporter::signing::SigningKey::from_pem_file(
            path,
        )?)),
        None => Ok(None),
    }
}

/// A remote cache named by the flag `name`, else by `cache` in strata.toml.
fn cache_ref(
    flag: Option<&str>,
    name: &str,
    file: Option<&str>,
) -> Result<Option<strata_registry::Reference>, CliError> {
    flag.map(|text| (text, name))
        .or_else(|| file.map(|text| (text, "cache in strata.toml")))
        .map(|(text, what)| parse_cache_ref(text, what))
        .transpose()
}

impl BuildConfig {
    pub(crate) fn from_args(args: &BuildArgs) -> Result<Self, CliError> {
        Self::from_args_as(args, None)
    }

    /// As [`Self::from_args`], but with run image names recorded as `like` records them
    /// (a rebuild elsewhere that must give `like`'s images).
    pub(crate) fn from_args_as(
        args: &BuildArgs,
        like: Option<&BuildConfig>,
    ) -> Result<Self, CliError> {
        let mut input = InputConfig::from_args(&args.input)?;
        let no_launcher =
            args.no_launcher || input.workspace.as_ref().is_some_and(|ws| !ws.launcher);
        let (layout, tags, publish) = match &input.workspace {
            None => {
                let Some(output) = &args.output else {
                    return Err(CliError::Usage(
                        "no output: pass --output oci:DIR:TAG".to_owned(),
                    ));
                };
                if let Some(publish) = Publish::parse(output, Path::new("."), &args.tags, false)? {
                    let layout = Publish::staging_layout(&input.cache_dir, output);
                    let name = input
                        .services
                        .first()
                        .map_or_else(|| "app".to_owned(), |s| s.name.clone());
                    (layout, vec![name], Some(publish))
                } else {
                    let output = ImageRef::parse(output)?;
                    (output.dir().to_owned(), vec![output.tag().to_owned()], None)
                }
            }
            Some(ws) => {
                let (text, base) = match (&args.output, &ws.output) {
                    (Some(flag), _) => (flag.as_str(), Path::new(".")),
                    (None, Some(file)) => (file.as_str(), ws.root.as_path()),
                    (None, None) => {
                        return Err(CliError::Usage(format!(
                            "no output: pass --output oci:DIR, or set output in {}",
                            ws.path.display()
                        )));
                    }
                };
                let tags = input.services.iter().map(|s| s.name.clone()).collect();
                if let Some(publish) = Publish::parse(text, base, &args.tags, true)? {
                    let key = format!("{}#{text}", ws.root.display());
                    let layout = Publish::staging_layout(&input.cache_dir, &key);
                    (layout, tags, Some(publish))
                } else {
                    let output = ImageRef::parse(text)?.relative_to(base);
                    if text.trim_start_matches("oci:").contains(':') {
                        return Err(CliError::Usage(format!(
                            "output {text}: a workspace writes one layout, oci:DIR, and tags each image with its service's name"
                        )));
                    }
                    (output.dir().to_owned(), tags, None)
                }
            }
        };
        for tag in &tags {
            validate_tag(tag)?;
        }
        check_output(&layout)?;
        let names_from = match like {
            Some(like) => like.names_from.clone(),
            None => publish.is_none().then(|| layout.clone()),
        };
        if let Some(names_from) = &names_from {
            input.record_run_images_from(names_from);
        }
        let sign_key = sign_key(args, publish.as_ref())?;
        let file_cache = input.workspace.as_ref().and_then(|ws| ws.cache.as_deref());
        let cache_from = cache_ref(args.cache_from.as_deref(), "--cache-from", file_cache)?;
        let cache_to = cache_ref(args.cache_to.as_deref(), "--cache-to", file_cache)?;
        if publish.is_some()
            && let Some(parent) = layout.parent()
        {
            std::fs::create_dir_all(parent).map_err(|source| CliError::Io {
                what: format!("cannot create {}", parent.display()),
                source,
            })?;
        }
        Ok(Self {
            input,
            layout,
            tags,
            compression: match args.compression {
                CompressionArg::None => Compression::None,
                CompressionArg::Gzip => Compression::Gzip,
                CompressionArg::Zstd => Compression::Zstd,
            },
            exec: ExecOptions {
                jobs: args.jobs.map_or_else(
                    || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
                    usize::from,
                ),
                keep_going: args.keep_going,
            },
            no_cache: args.no_cache,
            no_launcher,
            profile: args.profile.clone(),
            publish,
            sign_key,
            cache_from,
            cache_to,
            names_from,
        })
    }

    /// The key images are signed with (`--sign-key`).
    pub(crate) fn sign_key(&self) -> Option<&strata_exporter::signing::SigningKey> {
        self.sign_key.as_ref()
    }

    /// Whether images go to a layout (not pushed or saved from one in the store).
    pub(crate) fn is_layout_output(&self) -> bool {
        self.publish.is_none()
    }

    /// The layer compression, as provenance names it.
    pub(crate) fn compression_name(&self) -> &'static str {
        match self.compression {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// The launcher the images carry: its version, or `None` without one.
    pub(crate) fn launcher(&self) -> Option<&'static str> {
        (!self.no_launcher).then_some(strata_exporter::launcher::VERSION)
    }

    /// The reference of service `index`'s image.
    pub(crate) fn image_ref(&self, index: usize) -> String {
        match &self.publish {
            Some(publish) => publish.shown(&self.input.services[index].name),
            None => format!("oci:{}:{}", self.layout.display(), self.tags[index]),
        }
    }
}

/// The CNB user of a service's run image.
fn owner_of(service: &PreparedService) -> Result<Owner, CliError> {
    Ok(match &service.run_image {
        Some(image) => image.cnb_user()?,
        None => Owner::new(DEFAULT_CNB_ID, DEFAULT_CNB_ID),
    })
}

/// Refuses, before anything is built, an output that can never take an image: a path that is
/// not a directory, or a directory that is neither empty nor an OCI layout (strata never
/// writes into a directory of other files). A missing directory is made at export.
fn check_output(layout: &Path) -> Result<(), CliError> {
    let Ok(meta) = std::fs::metadata(layout) else {
        return Ok(());
    };
    let shown = layout.display();
    if !meta.is_dir() {
        return Err(CliError::Usage(format!(
            "output oci:{shown}: `{shown}` is a file, not a directory for an OCI layout"
        )));
    }
    let empty = std::fs::read_dir(layout).is_ok_and(|mut entries| entries.next().is_none());
    if !empty && !layout.join("oci-layout").exists() {
        return Err(CliError::Usage(format!(
            "output oci:{shown}: `{shown}` is a directory of other files (no `oci-layout`), \
             not an OCI layout; name an empty or missing directory, or a layout"
        )));
    }
    Ok(())
}

/// Stages the run image's layers into the output (or makes the built-in base there).
fn stage_run_image(
    service: &PreparedService,
    config: &BuildConfig,
    owner: Owner,
    staging: &Staging,
) -> Result<RunImage, Box<dyn std::error::Error + Send + Sync>> {
    let Some(image) = &service.run_image else {
        return Ok(builtin_run_image(
            staging.blob_dir(),
            owner,
            config.input.epoch,
            config.compression,
        )?);
    };
    for layer in &image.layers {
        let blob = layer.blob.as_deref().ok_or_else(|| {
            format!(
                "run image {}: layer {} is not on disk",
                service.run_image_name, layer.diff_id
            )
        })?;
        staging.put_blob_file(blob, &layer.descriptor)?;
    }
    Ok((**image).clone())
}

/// Checks the layers of every run image a service will be exported on against their
/// diffIDs, each image once; the store keeps the proof, so this decompresses a layer only
/// the first time any build uses it.
fn verify_run_images(
    prepared: &Prepared,
    current: &HashMap<usize, String>,
    store: &Store,
) -> Result<(), CliError> {
    let mut seen = HashSet::new();
    for (index, service) in prepared.services.iter().enumerate() {
        if let Some(image) = &service.run_image
            && !current.contains_key(&index)
            && seen.insert(image.manifest_digest.clone())
        {
            verify_layers(image, Some(store))?;
        }
    }
    Ok(())
}

/// What a service's export left.
struct Exported {
    image: ExportedImage,
    at: f64,
}

/// Everything one build shares between its exports.
struct Exporter<'a> {
    config: &'a BuildConfig,
    prepared: &'a Prepared,
    store: &'a Store,
    /// The launcher layer, as stored; `None` without a launcher.
    launcher_layer: Option<&'a StoredBlob>,
    /// Whether launch layers a remote cache only promised stay out of the output layout
    /// (its images go to a registry that mounts them).
    leave_promised: bool,
    owner: Owner,
    started: Instant,
    done: Mutex<HashMap<usize, Exported>>,
    /// The services whose image came out as the output has it, with its manifest digest.
    unchanged: Mutex<HashMap<usize, String>>,
    /// Every service's commit to the output layout.
    commits: Commits,
    /// The output layout's tags as the build found them, read once: each service asks for
    /// its own tag, which only its own commit changes.
    tags: OnceLock<HashMap<String, oci_spec::image::Descriptor>>,
}

/// The commits of a build's services ([`GroupCommit`]) and what follows each.
#[derive(Default)]
struct Commits {
    group: GroupCommit,
    /// The service (index in `prepared.services`) of each commit ticket, and the keys to
    /// record its image under.
    tickets: Mutex<HashMap<u64, (usize, Vec<TaskKey>)>>,
    /// Services whose image was committed but could not be recorded, and why.
    unrecorded: Mutex<Vec<(usize, strata_engine::store::StoreError)>>,
}

impl Exporter<'_> {
    /// The manifest the output already has for service `index`, when its image task's action
    /// key `action` (every layer as it came out) last exported it.
    fn unchanged(&self, index: usize, action: &TaskKey) -> Option<String> {
        if self.config.no_cache {
            return None;
        }
        let tag = &self.config.tags[self.prepared.services[index].config];
        let tags = self.tags.get_or_init(|| {
            Layout::open(&self.config.layout)
                .map(|layout| layout.tags().into_iter().collect())
                .unwrap_or_default()
        });
        let tagged = tags.get(tag)?;
        let store = self.store;
        uptodate::up_to_date(
            store,
            action,
            &self.config.layout,
            tagged,
            self.config.compression,
            self.config.launcher(),
        )
    }

    /// Exports service `index` (of `prepared.services`) from `output`, and records it;
    /// `keys` are its tasks' action keys and output digests. Returns whether it wrote an
    /// image: not when the output has this one already (early cutoff).
    fn export(
        &self,
        index: usize,
        output: &BuildOutput,
        keys: &Outputs,
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        let service = &self.prepared.services[index];
        let config = &self.config.input.services[service.config];
        let plan = &self.prepared.plan;
        let image_node = plan.services[index].tasks.last().copied();
        let action = image_node
            .and_then(|n| keys.get(&n))
            .map(|(action, _)| *action);
        // What each task read and made, so the next plan can say why a task runs again and
        // cut its dependents off. A record that cannot be written only makes a later reason
        // `new`.
        let save_records = || {
            let _ = Records::new(&self.config.input.cache_dir).save(
                plan,
                index,
                &service.app,
                &service.digests,
                &|n| keys.get(&n).copied(),
            );
        };
        if let (Some(node), Some(action)) = (image_node, action)
            && let Some(digest) = self.unchanged(index, &action)
        {
            // The image key now names that image too, so the next build of this plan is
            // up to date without running anything.
            uptodate::alias(self.store, &action, &plan.graph[node].key)?;
            save_records();
            if let Ok(mut unchanged) = self.unchanged.lock() {
                unchanged.insert(index, digest);
            }
            return Ok(false);
        }
        let staging = Staging::new(&self.config.layout)?;
        let run_image = stage_run_image(service, self.config, self.owner, &staging)?;
        let repository = service
            .run_image
            .as_ref()
            .and_then(|_| registry_repository(&service.run_image_name));
        let image = assemble(
            &ExportRequest {
                build: output,
                run_image: &run_image,
                run_image_name: &service.run_image_name,
                run_image_repository: repository.as_deref(),
                run_image_mirrors: match &config.run_image {
                    crate::config::RunImageSource::Image { mirrors, .. } => mirrors,
                    crate::config::RunImageSource::Builtin => &[],
                },
                owner: self.owner,
                epoch: self.config.input.epoch,
                compression: self.config.compression,
                project: config.project.as_ref(),
                exec_env: &self.config.input.exec_env,
                launcher: !self.config.no_launcher,
                launcher_layer: self.launcher_layer,
                store: Some(self.store),
                leave_promised: self.leave_promised,
            },
            &staging,
        )?;
        save_records();
        let tags = vec![(
            self.config.tags[service.config].clone(),
            image.manifest.clone(),
        )];
        // Once committed, the image is recorded under the image key (for the next build of
        // this plan) and the action key (for a build whose tasks come out the same): see
        // `Exporter::committed`.
        let keys_of_image = image_node
            .map(|n| plan.graph[n].key)
            .into_iter()
            .chain(action)
            .collect();
        if let Ok(mut done) = self.done.lock() {
            let at = self.started.elapsed().as_secs_f64();
            done.insert(index, Exported { image, at });
        }
        // Committed in a batch with the services that finish meanwhile: one index write for
        // all of them, not one per service. A failed commit fails the service after the run.
        // The ticket is known before the committer can ask for it.
        let mut tickets = self
            .commits
            .tickets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ticket = self.commits.group.submit(staging, tags);
        tickets.insert(ticket, (index, keys_of_image));
        Ok(true)
    }

    /// Runs `execute` with the committer thread beside it, and returns what it ran with the
    /// services whose commit failed among the failures.
    fn committing(&self, runs: &[ServiceRun<'_>], execute: impl FnOnce() -> Executed) -> Executed {
        let mut executed = std::thread::scope(|scope| {
            scope.spawn(|| {
                self.commits
                    .group
                    .run(COMMIT_INTERVAL, |ticket| self.committed(ticket));
            });
            // Closed however the run ends, so the committer commits what is queued and stops.
            let _close = CloseOnDrop(&self.commits.group);
            execute()
        });
        commit_failures(self, runs, &mut executed);
        executed
    }

    /// Records the image of commit `ticket`, now in the layout, under its keys (a record
    /// names the layout's blobs, so it comes after the commit).
    fn committed(&self, ticket: u64) {
        let Some((index, keys)) = self
            .commits
            .tickets
            .lock()
            .ok()
            .and_then(|tickets| tickets.get(&ticket).cloned())
        else {
            return;
        };
        let Ok(done) = self.done.lock() else { return };
        let Some(exported) = done.get(&index) else {
            return;
        };
        for key in keys {
            if let Err(e) = uptodate::record(
                self.store,
                &key,
                &self.config.layout,
                &exported.image,
                self.config.compression,
                self.config.launcher(),
            ) && let Ok(mut unrecorded) = self.commits.unrecorded.lock()
            {
                unrecorded.push((index, e));
                return;
            }
        }
    }
}

/// How long a finished service waits at most for others to share its commit (see
/// [`strata_exporter::groupcommit`]): what a killed build may have to export again.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Closes a [`GroupCommit`] when dropped.
struct CloseOnDrop<'a>(&'a GroupCommit);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Each service whose commit failed becomes a failure of its image task, and is no longer
/// among the exported images.
fn commit_failures(exporter: &Exporter<'_>, runs: &[ServiceRun<'_>], executed: &mut Executed) {
    let tickets = exporter
        .commits
        .tickets
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default();
    let plan = &exporter.prepared.plan;
    let unrecorded = exporter
        .commits
        .unrecorded
        .lock()
        .map(|mut u| std::mem::take(&mut *u))
        .unwrap_or_default();
    let failed = exporter
        .commits
        .group
        .take_results()
        .into_iter()
        .filter_map(|(ticket, result)| {
            let (Err(error), Some((index, _))) = (result, tickets.get(&ticket)) else {
                return None;
            };
            let error: Box<dyn std::error::Error + Send + Sync> = Box::new(error);
            Some((*index, error))
        })
        .chain(unrecorded.into_iter().map(|(index, e)| {
            let error: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
            (index, error)
        }));
    for (index, error) in failed {
        if let Ok(mut done) = exporter.done.lock() {
            done.remove(&index);
        }
        let Some(run) = runs.iter().position(|r| r.service == index) else {
            continue;
        };
        let name = &plan.services[index].name;
        let task = plan.services[index]
            .tasks
            .last()
            .map(|n| plan.graph[*n].id.clone())
            .unwrap_or_default();
        executed.failures.push(Failure {
            task: if runs.len() == 1 {
                task
            } else {
                format!("{name}: {task}")
            },
            runs: vec![run],
            error: BuildError::Export {
                service: name.clone(),
                source: error,
            },
        });
    }
}

/// The CNB user that owns every service's layers: one for the whole build, since shared
/// layers are stored once.
fn common_owner(prepared: &Prepared) -> Result<Owner, CliError> {
    let owners = prepared
        .services
        .iter()
        .map(owner_of)
        .collect::<Result<Vec<_>, _>>()?;
    let owner = owners
        .first()
        .copied()
        .unwrap_or(Owner::new(DEFAULT_CNB_ID, DEFAULT_CNB_ID));
    if let Some(other) = owners.iter().find(|o| **o != owner) {
        return Err(CliError::Usage(format!(
            "the services' run images have different CNB users ({}:{} and {}:{}); build them separately",
            owner.uid, owner.gid, other.uid, other.gid
        )));
    }
    Ok(owner)
}

/// The services whose image is up to date (the output still has what their image key last
/// exported), with its manifest digest, by index in `prepared.services`.
fn up_to_date(config: &BuildConfig, prepared: &Prepared, store: &Store) -> HashMap<usize, String> {
    let plan = &prepared.plan;
    let tagged: HashMap<String, _> = Layout::open(&config.layout)
        .map(|layout| layout.tags().into_iter().collect())
        .unwrap_or_default();
    let mut current = HashMap::new();
    for (index, service) in prepared.services.iter().enumerate() {
        let image = plan.services[index]
            .tasks
            .last()
            .map(|n| &plan.graph[*n].key);
        let found = match (image, tagged.get(&config.tags[service.config])) {
            (Some(key), Some(descriptor)) if !config.no_cache => uptodate::up_to_date(
                store,
                key,
                &config.layout,
                descriptor,
                config.compression,
                config.launcher(),
            ),
            _ => None,
        };
        if let Some(digest) = found {
            current.insert(index, digest);
        }
    }
    current
}

/// The launcher layer every image gets, stored once and hardlinked into each: `None` without
/// a launcher, or when no image is exported (`exports` false).
fn launcher_layer(
    config: &BuildConfig,
    store: &Store,
    exports: bool,
) -> Result<Option<StoredBlob>, CliError> {
    if config.no_launcher || !exports {
        return Ok(None);
    }
    let stored = stored_launcher_layer(store, config.input.epoch, config.compression)
        .map_err(ExportError::from)?;
    Ok(Some(stored))
}

/// What detection found that the user should see: warnings, services that failed, and
/// buildpacks skipped for their targets.
fn show_detected(progress: &Progress, prepared: &Prepared, workspace: bool) {
    for warning in detect_warnings(prepared, workspace) {
        progress.warn(&warning);
    }
    for (name, error) in &prepared.failed {
        progress.line(&format!("     {name}: failed: {error}"));
    }
    for service in &prepared.plan.services {
        for skipped in &service.group.skipped {
            progress.line(&format!(
                "     {}: skipped at detect: {skipped}",
                service.name
            ));
        }
    }
}

/// Shows a task event on the progress display and records it in the profile.
fn show(progress: &Progress, profile: Option<&Profile>, event: Event<'_>) {
    if let Some(profile) = profile {
        match event {
            Event::Started(id) => profile.started(id),
            Event::Done(id) => profile.ended(id, "ran"),
            Event::Failed(id) => profile.ended(id, "failed"),
            Event::Cached(id) | Event::CutOff(id, _) => profile.cached(id),
            Event::Finished(..) | Event::Skipped(_) => {}
        }
    }
    match event {
        Event::Started(id) => progress.started(id),
        Event::Finished(id, log) => progress.ended(id, None, log),
        Event::Failed(id) => progress.ended(id, Some("failed"), None),
        Event::Skipped(id) => progress.ended(id, Some("skipped (a task it needs failed)"), None),
        Event::CutOff(id, reason) => {
            progress.line(&format!("     {id}: cached (cut off): {reason}, unchanged"));
        }
        Event::Cached(_) | Event::Done(_) => {}
    }
}

/// Plans, runs the tasks, and exports. Returns the report and, when a service failed, the
/// error to exit with (after the report is shown).
///
/// A build that failed after a blob a remote cache hit promised came in bad (a task that
/// ran needed it) goes once more with every entry that names such a blob a miss: their
/// tasks run, and what the first try stored is reused.
pub(crate) fn run(
    config: &BuildConfig,
    progress: &Progress,
) -> Result<(BuildReport, Option<CliError>), CliError> {
    let (report, error, bad) = run_once(config, progress, &HashSet::new())?;
    if error.is_none() || bad.is_empty() {
        return Ok((report, error));
    }
    progress.line("===> BUILDING AGAIN without the remote cache entries whose blobs were bad");
    let (report, error, _) = run_once(config, progress, &bad)?;
    Ok((report, error))
}

/// One try of [`run`], with the remote cache entries that name a blob in `bad` misses;
/// also returns the blobs a hit promised that came in bad.
fn run_once(
    config: &BuildConfig,
    progress: &Progress,
    bad: &HashSet<String>,
) -> Result<(BuildReport, Option<CliError>, HashSet<String>), CliError> {
    let started = Instant::now();
    let profile = config.profile.as_deref().map(Profile::new);
    let input = &config.input;
    progress.line("===> DETECTING");
    let cache_from = config.cache_from.as_ref().filter(|_| !config.no_cache);
    let launch_promised = launch_promised(config, cache_from);
    let mut remote = RemoteRun::new(
        &input.images,
        cache_from,
        config.cache_to.as_ref(),
        launch_promised,
        bad,
    )?;
    let prepared = prepare(input, config.exec.keep_going, remote.reader())?;
    let asked = remote.prefetched(progress, prepared.prefetched.as_ref());
    if let Some(profile) = &profile {
        profile.phase("detect", started);
    }
    show_detected(progress, &prepared, input.workspace.is_some());
    let plan = &prepared.plan;
    let owner = common_owner(&prepared)?;
    let store = &prepared.store;

    let current = up_to_date(config, &prepared, store);
    verify_run_images(&prepared, &current, store)?;
    let cache = store_cache(config, store, owner, &remote, launch_promised);
    let dirs: Vec<(PathBuf, PathBuf)> = prepared
        .services
        .iter()
        .map(|s| (s.scratch.join("workspace"), s.scratch.join("build")))
        .collect();
    let runs = service_runs(input, &prepared, &dirs, &current);

    if !runs.is_empty() {
        progress.line("===> BUILDING");
    }
    let total: HashSet<NodeIndex> = runs
        .iter()
        .flat_map(|r| plan.services[r.service].tasks.iter().copied())
        .collect();
    progress.set_total(total.len() as u64);
    let show = |event: Event<'_>| show(progress, profile.as_ref(), event);
    let launcher_layer = launcher_layer(config, store, current.len() < prepared.services.len())?;
    let exporter = Exporter {
        launcher_layer: launcher_layer.as_ref(),
        leave_promised: launch_promised,
        config,
        prepared: &prepared,
        store,
        owner,
        started,
        done: Mutex::new(HashMap::new()),
        unchanged: Mutex::new(HashMap::new()),
        commits: Commits::default(),
        tags: OnceLock::new(),
    };
    let export = |run: usize, output: &BuildOutput, keys: &Outputs| {
        let index = runs[run].service;
        exporter
            .export(index, output, keys)
            .map_err(|source| BuildError::Export {
                service: plan.services[index].name.clone(),
                source,
            })
    };
    let with_remote = remote
        .reader()
        .map(|reader| WithRemote::new(&cache, reader, store, asked));
    let task_cache: &dyn TaskCache = with_remote.as_ref().map_or(&cache, |w| w);
    let exec = || execute(plan, &runs, config.exec, Some(task_cache), &show, &export);
    let executed = exporter.committing(&runs, exec);
    progress.finish();
    let fetched = with_remote.map(WithRemote::fetched);
    drop(cache);
    if let Some(fetched) = fetched {
        remote.fetched(progress, &fetched);
    }
    let bad = remote.fetched_later(progress);
    // What a remote hit promised and the build fetched is kept as a whole entry.
    store.settle_promised();
    let ran = ran_entries(&prepared, &runs, &executed, store);
    let images = exporter.done.into_inner().unwrap_or_default();
    // A service whose every layer came out as before is up to date too.
    let mut current = current;
    current.extend(exporter.unchanged.into_inner().unwrap_or_default());
    let (mut report, mut error) = report(
        config, &prepared, &runs, executed, &current, images, started,
    );
    remote.push(store, &ran, progress);
    report.remote_cache = remote.into_report();
    if let Some(publish) = &config.publish {
        progress.line("===> PUBLISHING");
        error = error.or(published(config, publish, &mut report)?);
    }
    crate::attest::attest(config, &prepared, &mut report, progress, started)?;
    if let Some(profile) = &profile {
        profile
            .write(&report.tasks)
            .map_err(|source| CliError::Io {
                what: format!("cannot write the profile {}", profile.path().display()),
                source,
            })?;
    }
    Ok((report, error, bad))
}

/// The task cache of a build on `store`, reading `remote`'s promised blobs when read.
fn store_cache<'a>(
    config: &BuildConfig,
    store: &'a Store,
    owner: Owner,
    remote: &'a RemoteRun<'_>,
    launch_promised: bool,
) -> StoreCache<'a> {
    let mut cache = StoreCache::new(store, owner, config.input.epoch, config.compression);
    if config.no_cache {
        cache = cache.without_lookups();
    }
    if let Some(fetcher) = remote.fetcher() {
        cache = cache.with_fetcher(fetcher);
    }
    if launch_promised {
        cache = cache.leaving_launch_promised();
    }
    cache
}

/// Whether a remote hit's launch layers may stay promised: the images go to the registry of
/// the cache read (`cache_from`), which the push mounts them from, and with a launcher (no
/// launch env file is read at export).
fn launch_promised(config: &BuildConfig, cache_from: Option<&strata_registry::Reference>) -> bool {
    !config.no_launcher
        && matches!(
            (&config.publish, cache_from),
            (Some(Publish::Registry { reference, .. }), Some(cache))
                if reference.registry() == cache.registry()
        )
}

/// How each service of `prepared` that is not up to date (`current`) is run: in its own
/// `dirs` (workspace copy, scratch).
fn service_runs<'a>(
    input: &'a InputConfig,
    prepared: &'a Prepared,
    dirs: &'a [(PathBuf, PathBuf)],
    current: &HashMap<usize, String>,
) -> Vec<ServiceRun<'a>> {
    prepared
        .services
        .iter()
        .enumerate()
        .filter(|(index, _)| !current.contains_key(index))
        .map(|(index, service)| {
            let service_config = &input.services[service.config];
            let (include, exclude) = service_config.include_exclude();
            ServiceRun {
                service: index,
                req: BuildRequest {
                    source: &service_config.app_dir,
                    sandbox: &service.sandbox,
                    workspace: &dirs[index].0,
                    platform: &service.platform,
                    target: &service.target,
                    scratch: &dirs[index].1,
                    network: input.network,
                    exec_env: &input.exec_env,
                },
                include,
                exclude,
            }
        })
        .collect()
}

/// The action keys of the tasks that ran and stored an entry, and the restore refs
/// `(shared restore id, key)` their opaque buildpacks left: what goes to a remote cache.
fn ran_entries(
    prepared: &Prepared,
    runs: &[ServiceRun<'_>],
    executed: &Executed,
    store: &Store,
) -> Entries {
    let plan = &prepared.plan;
    let mut keys = Vec::new();
    let mut restores = Vec::new();
    for (node, task) in executed.nodes.iter().zip(&executed.tasks) {
        let kind = &plan.graph[*node].kind;
        if task.status != "ran"
            || !matches!(kind, TaskKind::Layer { .. } | TaskKind::Buildpack { .. })
        {
            continue;
        }
        let Some(key) = TaskKey::from_hex(&task.key) else {
            continue;
        };
        keys.push(key);
        if let TaskKind::Buildpack { buildpack, .. } = kind {
            for run in runs {
                let service = &plan.services[run.service];
                if !service.tasks.contains(node) {
                    continue;
                }
                let id = buildpack.id().as_str();
                let local = restore_id(run.req.source, &service.name, run.req.exec_env, id);
                if store.get_restore(&local) == Some(key) {
                    restores.push((shared_restore_id(&service.name, run.req.exec_env, id), key));
                }
            }
        }
    }
    Entries { keys, restores }
}

/// Pushes or saves every image the build has (built or up to date), and says so in its
/// report. In a workspace, a service whose push fails is marked failed in the report and the
/// others are still pushed; the error to exit with is returned (that service's, or the list of
/// services whose push failed).
///
/// # Errors
/// For one app, its push error.
fn published(
    config: &BuildConfig,
    publish: &Publish,
    report: &mut BuildReport,
) -> Result<Option<CliError>, CliError> {
    let mut failed: Vec<(String, CliError)> = Vec::new();
    // A remote cache has the layers of its entries (the one pushed to, every layer of what
    // ran): on the output's registry, they are mounted from it, not uploaded again.
    // Each service's push leaves its blobs in its repository: the services after it mount
    // the ones they share (the run image's layers, shared layers) from there.
    let mut sources = MountSources::any(
        config
            .cache_from
            .as_ref()
            .filter(|_| !config.no_cache)
            .or(config.cache_to.as_ref()),
    );
    for service in &mut report.services {
        let Some(image) = &mut service.image else {
            continue;
        };
        let Some(index) = config
            .input
            .services
            .iter()
            .position(|s| s.name == service.name)
        else {
            continue;
        };
        let pushed = publish.publish(
            &config.input.images,
            &config.layout,
            &config.tags[index],
            &service.name,
            &sources,
        );
        match (pushed, &config.input.workspace) {
            (Ok(mut pushed), _) => {
                sources.known.extend(pushed.holds.take());
                image.pushed = Some(pushed);
            }
            (Err(e), None) => return Err(e),
            (Err(e), Some(_)) => {
                let e = CliError::in_service(&service.name, e);
                service.status = "failed";
                service.error = Some(describe(&e));
                failed.push((service.name.clone(), e));
            }
        }
    }
    if let (Some(single), Some(first)) = (&mut report.single, report.services.first()) {
        single.pushed = first.image.as_ref().and_then(|i| i.pushed.clone());
    }
    Ok(match failed.len() {
        0 => None,
        1 => failed.pop().map(|(_, e)| e),
        n => Some(CliError::ServicesFailed {
            failed: n,
            total: report.services.len(),
            names: failed.into_iter().map(|(name, _)| name).collect(),
        }),
    })
}

/// The report of a build, and the error to exit with if a service failed.
fn report(
    config: &BuildConfig,
    prepared: &Prepared,
    runs: &[ServiceRun<'_>],
    executed: Executed,
    current: &HashMap<usize, String>,
    mut images: HashMap<usize, Exported>,
    started: Instant,
) -> (BuildReport, Option<CliError>) {
    let plan = &prepared.plan;
    let (status, tasks) = statuses(plan, executed.nodes, executed.tasks, current);
    let mut errors: HashMap<usize, String> = HashMap::new();
    for failure in &executed.failures {
        for run in &failure.runs {
            errors
                .entry(runs[*run].service)
                .or_insert_with(|| format!("{}: {}", failure.task, failure.error));
        }
    }
    let mut services = Vec::new();
    for (index, service) in prepared.services.iter().enumerate() {
        let name = plan.services[index].name.clone();
        let count = |wanted: &str| {
            plan.services[index]
                .tasks
                .iter()
                .filter(|n| status.get(n) == Some(&wanted))
                .count()
        };
        let buildpacks = plan.services[index]
            .group
            .group
            .iter()
            .map(|m| m.buildpack.reference())
            .collect::<Vec<_>>();
        let image_ref = config.image_ref(service.config);
        let (status_text, image, seconds) = if let Some(digest) = current.get(&index) {
            let image = ImageReport {
                image: image_ref,
                digest: digest.clone(),
                buildpacks,
                layers: Vec::new(),
                ..ImageReport::default()
            };
            ("up-to-date", Some(image), 0.0)
        } else if let Some(done) = images.remove(&index) {
            let image = ImageReport {
                image: image_ref,
                digest: done.image.manifest.digest().to_string(),
                buildpacks,
                layers: done.image.layers.iter().map(LayerReport::from).collect(),
                ..ImageReport::default()
            };
            ("built", Some(image), done.at)
        } else {
            ("failed", None, 0.0)
        };
        let error = (status_text == "failed").then(|| {
            errors
                .remove(&index)
                .unwrap_or_else(|| "not built: the build stopped at a failure".to_owned())
        });
        services.push(ServiceReport {
            name,
            status: status_text,
            error,
            image,
            ran: count("ran"),
            cached: count("cached"),
            seconds,
            skipped: SkippedReport::of(&plan.services[index].group),
        });
    }
    for (name, error) in &prepared.failed {
        services.push(ServiceReport {
            name: name.clone(),
            status: "failed",
            error: Some(describe(error)),
            ..ServiceReport::default()
        });
    }
    let ran = tasks.iter().filter(|t| t.status == "ran").count();
    let failed: Vec<String> = services
        .iter()
        .filter(|s| s.error.is_some())
        .map(|s| s.name.clone())
        .collect();
    let error = exit_error(
        config,
        plan,
        runs,
        executed.failures,
        failed,
        services.len(),
    );
    let single = match &config.input.workspace {
        None => services.first().and_then(|s| s.image.clone()),
        Some(_) => None,
    };
    let report = BuildReport {
        single,
        services,
        cached: tasks.len() - ran,
        ran,
        tasks,
        seconds: started.elapsed().as_secs_f64(),
        remote_cache: None,
    };
    (report, error)
}

/// An error and its causes, on one line.
fn describe(error: &CliError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Each task's status, and its report: those the executor saw, and those of up-to-date
/// services that no service run needed (all cached).
fn statuses(
    plan: &strata_planner::Plan,
    nodes: Vec<NodeIndex>,
    reports: Vec<TaskReport>,
    current: &HashMap<usize, String>,
) -> (HashMap<NodeIndex, &'static str>, Vec<TaskReport>) {
    let mut status: HashMap<NodeIndex, &'static str> = HashMap::new();
    let mut tasks: Vec<TaskReport> = Vec::new();
    for (node, task) in nodes.into_iter().zip(reports) {
        status.insert(node, task.status);
        tasks.push(task);
    }
    // In service order, so the report's task list is the same from run to run.
    let mut up_to_date: Vec<usize> = current.keys().copied().collect();
    up_to_date.sort_unstable();
    for index in up_to_date {
        for node in &plan.services[index].tasks {
            if !status.contains_key(node) {
                status.insert(*node, "cached");
                let report = task_report(plan, *node, "cached", std::time::Duration::ZERO);
                tasks.push(report);
            }
        }
    }
    (status, tasks)
}

/// The error a build with `failed` services exits with: for one app, or a workspace that
/// stopped at its first failure, that failure; after `--keep-going`, the list of failed
/// services (each one's error is in the report).
fn exit_error(
    config: &BuildConfig,
    plan: &strata_planner::Plan,
    runs: &[ServiceRun<'_>],
    failures: Vec<Failure>,
    failed: Vec<String>,
    total: usize,
) -> Option<CliError> {
    if failed.is_empty() {
        return None;
    }
    match (&config.input.workspace, failures.into_iter().next()) {
        (None, Some(failure)) => Some(CliError::Build(failure.error)),
        (Some(_), Some(failure)) if !config.exec.keep_going => {
            let service = failure.runs.first().map_or_else(String::new, |r| {
                plan.services[runs[*r].service].name.clone()
            });
            Some(CliError::in_service(
                &service,
                CliError::Build(failure.error),
            ))
        }
        _ => Some(CliError::ServicesFailed {
            failed: failed.len(),
            total,
            names: failed,
        }),
    }
}
