//! Task outputs kept in the engine's store: each layer a blob written by the one tar writer,
//! each task an action entry whose payload says which layers, metadata and app changes it
//! produced. A hit gives the exporter the stored blob (never re-tarred); a task that needs a
//! hit's layers gets them extracted on demand.
//!
//! A layer's tar depends on the CNB user and the file time, and its blob on the compression:
//! the payload records all three, and the blob format's version, and a lookup with other
//! settings is a miss (the task runs again and its entry is replaced).
//!
//! An opaque buildpack's entry is also its restore state: when its task runs again, the
//! entry its last run left for that service (named by a restore ref) is verified like a hit
//! and written back into its layers directory (see `strata_engine::restore`); a state that
//! fails any check is a cold run.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use strata_engine::build::{BuildError, BuildRequest, BuildpackOutput, layer_target};
use strata_engine::execute::{TaskCache, TaskOutput, Use};
use strata_engine::layer_task::BuiltLayer;
use strata_engine::layers::{LaunchToml, Layer, SbomFile, SbomScope, StoredBlob};
use strata_engine::store::{ActionEntry, BlobFetcher, BlobRef, Store};
use strata_engine::untrusted;
use strata_engine::workspace::Change;
use strata_planner::{Buildpack, Task, TaskKey, TaskKind, safepath};

use crate::archive::{Compression, LayerBuilder, Owner};
use crate::restorestate::{RestoreState, extract_reused, write_restore};

/// A [`TaskCache`] on a [`Store`].
pub struct StoreCache<'a> {
    store: &'a Store,
    settings: Settings,
    lookups: bool,
    /// What brings in the blobs a remote hit only promised (see `strata_engine::store`'s
    /// `lazy`), when they are read.
    fetcher: Option<&'a dyn BlobFetcher>,
    /// Whether an export leaves a promised launch layer promised (its image goes to a
    /// registry that has the blob, and reads nothing of its files).
    launch_promised: bool,
    /// Outputs made real, or being made real: by key for layers, by key and app copy for an
    /// opaque buildpack (its change is replayed into each service's own copy), each part
    /// once. One task's output is made real once while others wait for it; different ones
    /// at the same time.
    ensured: Mutex<HashMap<EnsuredKey, Ensured>>,
}

/// A part of a stored output that is made real on its own ([`TaskCache::ensure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Part {
    /// Its launch layers: what an export reads, and a task too.
    Launch,
    /// Its launch layers whose blobs are here: what an export that leaves promised launch
    /// layers promised reads ([`StoreCache::leaving_launch_promised`]).
    LaunchHere,
    /// An opaque buildpack's app change, replayed into the app copy.
    Change,
    /// Its build layers that are not launch layers: what only a task that runs reads.
    Build,
}

type EnsuredKey = (TaskKey, Option<PathBuf>, Part);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Settings {
    uid: u32,
    gid: u32,
    epoch: u64,
    compression: Compression,
    /// [`crate::archive::BLOB_FORMAT`]; a payload without it is from before it existed.
    format: u32,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    settings: Settings,
    layers: Vec<Layer>,
    sbom: Vec<StoredSbom>,
    /// For an opaque buildpack.
    launch: Option<LaunchToml>,
    unmet: Vec<String>,
    store: Option<toml::Table>,
    change: Option<StoredChange>,
    /// The output's digest ([`TaskOutput::digest`]), which a plan reads to make the action
    /// keys of the tasks that need it.
    #[serde(default)]
    output: Option<TaskKey>,
}

#[derive(Serialize, Deserialize)]
struct StoredSbom {
    scope: SbomScope,
    ext: String,
    blob: BlobRef,
}

#[derive(Serialize, Deserialize)]
struct StoredChange {
    tar: Option<StoredBlob>,
    deleted: Vec<String>,
}

impl StoredChange {
    /// What a later buildpack and the app layer see of the change.
    fn digest(&self) -> TaskKey {
        let mut h = strata_planner::KeyHasher::new("output/app-change");
        h.value(&self.tar.as_ref().map(|t| t.diff_id.clone()));
        h.list(&self.deleted);
        h.finish()
    }
}

/// The layer blobs an entry's payload names with a diffID (each layer's, the app change's),
/// each once, to check against their content ([`crate::diffid::check`]) when the entry comes
/// from elsewhere. A payload that is not a task output names none: the task cache never
/// uses it either.
#[must_use]
pub fn recorded_blobs(payload: &serde_json::Value) -> Vec<crate::diffid::RecordedBlob> {
    let Ok(payload) = Payload::deserialize(payload) else {
        return Vec::new();
    };
    let change = payload.change.iter().flat_map(|c| &c.tar);
    let mut out: Vec<crate::diffid::RecordedBlob> = Vec::new();
    for blob in payload
        .layers
        .iter()
        .filter_map(|l| l.blob.as_ref())
        .chain(change)
    {
        let recorded = crate::diffid::RecordedBlob {
            digest: blob.digest.clone(),
            diff_id: blob.diff_id.clone(),
            compression: blob.compression,
        };
        if !out.contains(&recorded) {
            out.push(recorded);
        }
    }
    out
}

/// The blobs an entry's payload names only for layers that are not launch layers (build-only
/// and cache-only layers): what a build reads only when a task that runs needs them, so an
/// entry from elsewhere may come without them ([`Store::put_promised_action`]). A payload
/// that is not a task output names none.
#[must_use]
pub fn deferrable_blobs(payload: &serde_json::Value) -> Vec<String> {
    let Ok(payload) = Payload::deserialize(payload) else {
        return Vec::new();
    };
    let read_by_export: HashSet<&str> = payload
        .layers
        .iter()
        .filter(|l| l.types.launch)
        .filter_map(|l| l.blob.as_ref())
        .chain(payload.change.iter().flat_map(|c| &c.tar))
        .map(|b| b.digest.as_str())
        .chain(payload.sbom.iter().map(|s| s.blob.digest.as_str()))
        .collect();
    let mut out: Vec<String> = payload
        .layers
        .iter()
        .filter(|l| !l.types.launch)
        .filter_map(|l| l.blob.as_ref())
        .map(|b| b.digest.clone())
        .filter(|d| !read_by_export.contains(d.as_str()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A launch layer blob an entry's payload names: what an export of it reads without the
/// blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchBlob {
    /// The blob's digest.
    pub digest: String,
    /// The diffID the payload records for it (the image config lists it).
    pub diff_id: String,
    /// Whether the buildpack wrote the layer's SBOM (else the export lists its files, kept
    /// under [`crate::sbomlayer::layer_inventory_key`] of the diffID).
    pub own_sbom: bool,
}

/// The launch layer blobs an entry's payload names, each once. A payload that is not a task
/// output names none.
#[must_use]
pub fn launch_blobs(payload: &serde_json::Value) -> Vec<LaunchBlob> {
    let Ok(payload) = Payload::deserialize(payload) else {
        return Vec::new();
    };
    let mut out: Vec<LaunchBlob> = Vec::new();
    for layer in payload.layers.iter().filter(|l| l.types.launch) {
        let Some(blob) = &layer.blob else { continue };
        let own_sbom = payload
            .sbom
            .iter()
            .any(|s| s.scope == SbomScope::Layer(layer.name.clone()));
        let found = LaunchBlob {
            digest: blob.digest.clone(),
            diff_id: blob.diff_id.clone(),
            own_sbom,
        };
        if !out.contains(&found) {
            out.push(found);
        }
    }
    out
}

/// The task outputs a [`Store`] has, as a plan's statuses ask for them.
pub struct StoredOutputs<'a>(pub &'a Store);

impl strata_planner::Lookup for StoredOutputs<'_> {
    fn has(&self, action: &TaskKey) -> bool {
        self.0.has_action(action)
    }

    /// The output digest stored under `action` ([`TaskOutput::digest`]).
    fn output(&self, action: &TaskKey) -> Option<TaskKey> {
        let entry = self.0.get_action(action)?;
        serde_json::from_value::<Payload>(entry.payload)
            .ok()?
            .output
    }
}

impl Payload {
    /// Checks every name and path the entry would have joined onto a directory of this build:
    /// a store entry may come from elsewhere (a shared cache), so it is outside input.
    fn check(&self) -> Result<(), strata_planner::PathError> {
        for layer in &self.layers {
            safepath::name(&layer.name)?;
        }
        for sbom in &self.sbom {
            if let SbomScope::Layer(name) = &sbom.scope {
                safepath::name(name)?;
            }
            safepath::name(&sbom.ext)?;
        }
        for process in self.launch.iter().flat_map(|l| &l.processes) {
            safepath::name(&process.r#type)?;
        }
        for path in self.change.iter().flat_map(|c| &c.deleted) {
            safepath::relative(path)?;
        }
        Ok(())
    }
}

/// Whether a task's output is real: set once, when made real (or why that failed).
type Ensured = Arc<OnceLock<Result<(), String>>>;

/// A store error as a build error. The error itself is kept as the source (not its message):
/// what lies under it, a full disk and the file being written, reaches the user.
pub(crate) fn cache_err(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> BuildError {
    BuildError::Io {
        path: PathBuf::from("<store>"),
        source: std::io::Error::other(error),
    }
}

/// An error and its causes on one line, for a result that is shared (and so cloned) or
/// reported as text.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl<'a> StoreCache<'a> {
    /// A cache in `store` for layers owned by `owner`, dated `epoch`, compressed so.
    pub fn new(store: &'a Store, owner: Owner, epoch: u64, compression: Compression) -> Self {
        let settings = Settings {
            uid: owner.uid,
            gid: owner.gid,
            epoch,
            compression,
            format: crate::archive::BLOB_FORMAT,
        };
        Self {
            store,
            settings,
            lookups: true,
            fetcher: None,
            launch_promised: false,
            ensured: Mutex::new(HashMap::new()),
        }
    }

    /// A cache that brings a promised blob in with `fetcher` when it is read.
    #[must_use]
    pub fn with_fetcher(mut self, fetcher: &'a dyn BlobFetcher) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    /// A cache whose exports leave promised launch layers promised: for images pushed to a
    /// registry that has their blobs (a remote cache on the output's registry, which they
    /// are mounted from), with a launcher (so no launch env file is read at export). A task
    /// that runs still gets them.
    #[must_use]
    pub fn leaving_launch_promised(mut self) -> Self {
        self.launch_promised = true;
        self
    }

    /// Makes sure the blob of `blob` is in the store before it is read: a promised one is
    /// fetched now, with every check a fetched blob gets.
    pub(crate) fn fetched(&self, blob: &StoredBlob) -> Result<(), BuildError> {
        self.store
            .fetch_blob(
                &BlobRef {
                    digest: blob.digest.clone(),
                    size: blob.size,
                },
                self.fetcher,
            )
            .map_err(cache_err)
    }

    /// A cache that stores every output but answers no lookup (`--no-cache`).
    #[must_use]
    pub fn without_lookups(mut self) -> Self {
        self.lookups = false;
        self
    }

    fn compression(&self) -> Compression {
        self.settings.compression
    }

    /// Tars `dir` as it sits at `image_path` and adopts the blob.
    fn store_tree(
        &self,
        dir: &Path,
        image_path: &str,
        filter: Option<&dyn Fn(&Path) -> bool>,
        compression: Compression,
    ) -> Result<StoredBlob, BuildError> {
        let mut builder = LayerBuilder::new(
            Owner::new(self.settings.uid, self.settings.gid),
            self.settings.epoch,
        );
        match filter {
            Some(filter) => builder.add_dir_tree_filtered(dir, image_path, filter),
            None => builder.add_dir_tree(dir, image_path),
        }
        .map_err(cache_err)?;
        // A private directory, not the shared `tmp/`: the finished blob waits there for
        // adoption under its digest's name, and a signal must know it is this process's.
        let scratch = self.store.temp_dir().map_err(cache_err)?;
        let blob = builder
            .finish(compression, scratch.path())
            .map_err(cache_err)?;
        let stored = self
            .store
            .adopt_blob(&blob.path, &blob.digest, blob.size)
            .map_err(cache_err)?;
        Ok(StoredBlob {
            diff_id: blob.diff_id,
            path: self.store.blob_path(&stored.digest).map_err(cache_err)?,
            digest: stored.digest,
            size: stored.size,
            compression,
        })
    }

    fn store_layers(
        &self,
        buildpack: &Buildpack,
        layers: &[Layer],
    ) -> Result<Vec<Layer>, BuildError> {
        let mut out = Vec::new();
        for layer in layers {
            let mut layer = layer.clone();
            // A layer reused from the previous run has its blob and no directory to tar.
            let reused = layer.blob.is_some() && fs::symlink_metadata(&layer.dir).is_err();
            if layer.types.any() && !reused {
                let target = layer_target(buildpack, &layer.name);
                layer.blob = Some(self.store_tree(
                    &layer.dir,
                    target.trim_start_matches('/'),
                    None,
                    self.compression(),
                )?);
            }
            out.push(layer);
        }
        Ok(out)
    }

    fn store_sbom(&self, files: &[SbomFile]) -> Result<Vec<StoredSbom>, BuildError> {
        files
            .iter()
            .map(|f| {
                let bytes = untrusted::read(&f.path, untrusted::SBOM_LIMIT)
                    .map_err(|e| cache_err(format!("SBOM file: {e}")))?;
                let blob = self.store.put_blob_bytes(&bytes).map_err(cache_err)?;
                Ok(StoredSbom {
                    scope: f.scope.clone(),
                    ext: f.ext.clone(),
                    blob,
                })
            })
            .collect()
    }

    /// Layers and SBOM files as this build sees them: directories under its scratch, blobs
    /// in the store.
    fn relocate(
        &self,
        req: &BuildRequest<'_>,
        buildpack: &Buildpack,
        layers: Vec<Layer>,
        sbom: &[StoredSbom],
    ) -> Option<(Vec<Layer>, Vec<SbomFile>)> {
        let layers = layers
            .into_iter()
            .map(|mut layer| {
                layer.dir = req
                    .scratch
                    .join("layers")
                    .join(buildpack.id().escaped())
                    .join(&layer.name);
                if let Some(blob) = &mut layer.blob {
                    blob.path = self.store.blob_path(&blob.digest).ok()?;
                }
                Some(layer)
            })
            .collect::<Option<Vec<_>>>()?;
        let sbom = sbom
            .iter()
            .map(|s| {
                Some(SbomFile {
                    scope: s.scope.clone(),
                    ext: s.ext.clone(),
                    path: self.store.blob_path(&s.blob.digest).ok()?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some((layers, sbom))
    }

    /// The stored output that holds the restore state of `state` for `task`'s buildpack, if a
    /// ref names an intact entry made with this build's settings whose names are all plain
    /// names: relocated to this build.
    fn restore_state(
        &self,
        req: &BuildRequest<'_>,
        buildpack: &Buildpack,
        state: &TaskKey,
    ) -> Option<RestoreState> {
        let key = self.store.get_restore(state)?;
        let entry = self.store.get_action(&key)?;
        let payload: Payload = serde_json::from_value(entry.payload).ok()?;
        if payload.settings != self.settings || payload.check().is_err() {
            return None;
        }
        let (layers, sbom) = self.relocate(req, buildpack, payload.layers, &payload.sbom)?;
        Some(RestoreState {
            layers,
            sbom,
            store: payload.store,
        })
    }

    /// Extracts a stored output's layers of `part`, and for [`Part::Launch`] replays an
    /// opaque buildpack's app change.
    fn make_real(
        &self,
        req: &BuildRequest<'_>,
        task: &Task,
        key: &TaskKey,
        output: &TaskOutput,
        part: Part,
    ) -> Result<(), BuildError> {
        let layers: Vec<&Layer> = match output {
            TaskOutput::Layer(built) => vec![&built.layer],
            TaskOutput::Buildpack(bp) => bp.layers.layers.iter().collect(),
            TaskOutput::Nothing => Vec::new(),
        };
        let promised = |layer: &Layer| {
            layer.blob.as_ref().is_some_and(|b| {
                self.store.is_promised(&BlobRef {
                    digest: b.digest.clone(),
                    size: b.size,
                })
            })
        };
        let wanted = |layer: &Layer| match part {
            Part::Launch => layer.types.launch,
            Part::LaunchHere => layer.types.launch && !promised(layer),
            Part::Build => !layer.types.launch && layer.types.build,
            Part::Change => false,
        };
        for layer in layers.into_iter().filter(|l| wanted(l)) {
            if let (false, Some(blob), Some(buildpack)) =
                (layer.dir.exists(), &layer.blob, task.buildpack())
            {
                let target = layer_target(buildpack, &layer.name);
                self.fetched(blob)?;
                extract(blob, req.scratch, Path::new(target.trim_start_matches('/')))?;
                req.sandbox.hand_over(&layer.dir)?;
            }
        }
        if let (TaskOutput::Buildpack(bp), Part::Change) = (output, part)
            && bp.app_changed
        {
            // Only stored outputs get here: a task that ran is marked ensured by `save`.
            let payload = self
                .store
                .get_action(key)
                .and_then(|e| serde_json::from_value::<Payload>(e.payload).ok());
            if let Some(change) = payload.and_then(|p| p.change) {
                for path in &change.deleted {
                    // Checked at probe already; checked again right where it is joined, with
                    // the filesystem: no link on the way may lead the removal out.
                    let rel = safepath::relative(path).map_err(cache_err)?;
                    safepath::no_link_on_the_way(req.workspace, &rel).map_err(cache_err)?;
                    let target = req.workspace.join(rel);
                    let _ =
                        std::fs::remove_dir_all(&target).or_else(|_| std::fs::remove_file(&target));
                }
                if let (Some(tar), Some(parent), Some(name)) = (
                    &change.tar,
                    req.workspace.parent(),
                    req.workspace.file_name(),
                ) {
                    let mut tar = tar.clone();
                    tar.path = self.store.blob_path(&tar.digest).map_err(cache_err)?;
                    self.fetched(&tar)?;
                    extract(&tar, parent, Path::new(name))?;
                    req.sandbox.hand_over(req.workspace)?;
                }
            }
        }
        Ok(())
    }
}

/// Extracts a stored tar into `dir` (its entries' paths are relative to `dir`). Every entry
/// must lie under `inside` (a directory entry may be one of its parents): the tar comes from
/// the store, and one entry outside would write another layer's or the app's files. The
/// `tar` crate itself refuses `..` and writing through links.
pub(crate) fn extract(blob: &StoredBlob, dir: &Path, inside: &Path) -> Result<(), BuildError> {
    let io = |source| BuildError::Io {
        path: blob.path.clone(),
        source,
    };
    let file = BufReader::new(File::open(&blob.path).map_err(io)?);
    crate::unpack::unpack_tar(file, blob.compression, dir, inside).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => cache_err(format!("stored blob {}: {e}", blob.digest)),
        _ => io(e),
    })
}

/// What [`StoreCache::ensure`] does once: a part of a task's layers, and an opaque
/// buildpack's app change per app copy.
fn ensured_key(req: &BuildRequest<'_>, task: &Task, key: &TaskKey, part: Part) -> EnsuredKey {
    match task.kind {
        TaskKind::Buildpack { .. } => (*key, Some(req.workspace.to_owned()), part),
        _ => (*key, None, part),
    }
}

fn blob_refs(layers: &[Layer], sbom: &[StoredSbom], change: Option<&StoredChange>) -> Vec<BlobRef> {
    let mut refs: Vec<BlobRef> = layers
        .iter()
        .filter_map(|l| l.blob.as_ref())
        .chain(change.and_then(|c| c.tar.as_ref()))
        .map(|b| BlobRef {
            digest: b.digest.clone(),
            size: b.size,
        })
        .chain(sbom.iter().map(|s| s.blob.clone()))
        .collect();
    refs.sort();
    refs.dedup();
    refs
}

impl TaskCache for StoreCache<'_> {
    fn probe(&self, req: &BuildRequest<'_>, task: &Task, key: &TaskKey) -> Option<TaskOutput> {
        if !self.lookups {
            return None;
        }
        let buildpack = task.buildpack()?;
        let entry = self.store.get_action(key)?;
        let payload: Payload = serde_json::from_value(entry.payload).ok()?;
        if payload.settings != self.settings || payload.check().is_err() {
            return None;
        }
        let (layers, sbom) = self.relocate(req, buildpack, payload.layers, &payload.sbom)?;
        let log = self.store.log_path(key);
        match &task.kind {
            TaskKind::Layer { .. } => Some(TaskOutput::Layer(Arc::new(BuiltLayer {
                buildpack: buildpack.reference(),
                layer: layers.into_iter().next()?,
                sbom,
                log,
            }))),
            TaskKind::Buildpack { plan, .. } => {
                Some(TaskOutput::Buildpack(Arc::new(BuildpackOutput {
                    buildpack: Arc::clone(buildpack),
                    plan: plan.clone(),
                    layers_dir: req.scratch.join("layers").join(buildpack.id().escaped()),
                    layers: strata_engine::layers::BuildpackLayers {
                        layers,
                        launch: payload.launch.unwrap_or_default(),
                        unmet: payload.unmet,
                        store: payload.store,
                        sbom,
                    },
                    log,
                    app_changed: payload.change.is_some(),
                    change: payload.change.as_ref().map(StoredChange::digest),
                })))
            }
            TaskKind::App | TaskKind::Image => None,
        }
    }

    fn ensure(
        &self,
        req: &BuildRequest<'_>,
        task: &Task,
        key: &TaskKey,
        output: &TaskOutput,
        purpose: Use,
    ) -> Result<(), BuildError> {
        let parts: &[Part] = match purpose {
            Use::Task => &[Part::Launch, Part::Change, Part::Build],
            Use::Export if self.launch_promised => &[Part::LaunchHere, Part::Change],
            Use::Export => &[Part::Launch, Part::Change],
        };
        for part in parts {
            let cell = {
                let Ok(mut ensured) = self.ensured.lock() else {
                    return Err(cache_err("cache lock poisoned"));
                };
                Arc::clone(
                    ensured
                        .entry(ensured_key(req, task, key, *part))
                        .or_default(),
                )
            };
            cell.get_or_init(|| {
                self.make_real(req, task, key, output, *part)
                    .map_err(|e| with_causes(&e))
            })
            .clone()
            .map_err(cache_err)?;
        }
        Ok(())
    }

    fn restore(
        &self,
        req: &BuildRequest<'_>,
        task: &Task,
        state: &TaskKey,
    ) -> Result<Vec<Layer>, BuildError> {
        let Some(buildpack) = task.buildpack().filter(|_| self.lookups) else {
            return Ok(Vec::new());
        };
        let Some(state) = self.restore_state(req, buildpack, state) else {
            return Ok(Vec::new());
        };
        let layers_dir = req.scratch.join("layers").join(buildpack.id().escaped());
        let io = |source| BuildError::Io {
            path: layers_dir.clone(),
            source,
        };
        fs::create_dir_all(&layers_dir).map_err(io)?;
        if write_restore(self, req, buildpack, &layers_dir, &state).is_err() {
            // A stored tar that leaves its layer, a name that is no name: the state is bad,
            // and what of it was written goes. The buildpack runs cold.
            fs::remove_dir_all(&layers_dir).map_err(io)?;
            fs::create_dir_all(&layers_dir).map_err(io)?;
            return Ok(Vec::new());
        }
        req.sandbox.hand_over(&layers_dir)?;
        Ok(state
            .layers
            .into_iter()
            .filter(|l| l.types.launch && l.blob.is_some())
            .collect())
    }

    fn keep(&self, _task: &Task, key: &TaskKey, state: &TaskKey) -> Result<(), BuildError> {
        self.store.put_restore(state, key).map_err(cache_err)
    }

    fn save(
        &self,
        req: &BuildRequest<'_>,
        task: &Task,
        key: &TaskKey,
        output: TaskOutput,
        change: Option<&Change>,
    ) -> Result<TaskOutput, BuildError> {
        let Some(buildpack) = task.buildpack() else {
            return Ok(output);
        };
        let (saved, payload) = match &output {
            TaskOutput::Layer(built) => {
                let layers = self.store_layers(buildpack, std::slice::from_ref(&built.layer))?;
                let sbom = self.store_sbom(&built.sbom)?;
                let mut built = (**built).clone();
                built.layer = layers[0].clone();
                let payload = Payload {
                    settings: self.settings,
                    layers,
                    sbom,
                    launch: None,
                    unmet: Vec::new(),
                    store: None,
                    change: None,
                    output: None,
                };
                (TaskOutput::Layer(Arc::new(built)), payload)
            }
            TaskOutput::Buildpack(bp) => {
                let layers = self.store_layers(buildpack, &bp.layers.layers)?;
                extract_reused(self, req, buildpack, &layers)?;
                let sbom = self.store_sbom(&bp.layers.sbom)?;
                let change = match change {
                    Some(change) if !change.is_empty() => {
                        let changed: HashSet<PathBuf> =
                            change.changed.iter().map(PathBuf::from).collect();
                        let filter = |rel: &Path| changed.contains(rel);
                        let tar = if changed.is_empty() {
                            None
                        } else {
                            Some(self.store_tree(
                                req.workspace,
                                "workspace",
                                Some(&filter),
                                Compression::None,
                            )?)
                        };
                        Some(StoredChange {
                            tar,
                            deleted: change.deleted.clone(),
                        })
                    }
                    _ => None,
                };
                let mut out = (**bp).clone();
                out.layers.layers.clone_from(&layers);
                out.change = change.as_ref().map(StoredChange::digest);
                let payload = Payload {
                    settings: self.settings,
                    layers,
                    sbom,
                    launch: Some(bp.layers.launch.clone()),
                    unmet: bp.layers.unmet.clone(),
                    store: bp.layers.store.clone(),
                    change,
                    output: None,
                };
                (TaskOutput::Buildpack(Arc::new(out)), payload)
            }
            TaskOutput::Nothing => return Ok(output),
        };
        let payload = Payload {
            output: Some(saved.digest()),
            ..payload
        };
        let entry = ActionEntry {
            blobs: blob_refs(&payload.layers, &payload.sbom, payload.change.as_ref()),
            payload: serde_json::to_value(&payload).map_err(cache_err)?,
        };
        self.store.put_action(key, &entry).map_err(cache_err)?;
        if let Ok(mut ensured) = self.ensured.lock() {
            // Its layers are real and its app change is in the workspace already.
            for part in [Part::Launch, Part::LaunchHere, Part::Change, Part::Build] {
                let done = OnceLock::new();
                let _ = done.set(Ok(()));
                ensured.insert(ensured_key(req, task, key, part), Arc::new(done));
            }
        }
        Ok(saved)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A payload with one layer `layer`, one SBOM of it and a change deleting `deleted`.
    fn payload(layer: &str, sbom_ext: &str, process: &str, deleted: &str) -> Payload {
        serde_json::from_value(serde_json::json!({
            "settings": { "uid": 1000, "gid": 1000, "epoch": 0, "compression": "gzip", "format": 1 },
            "layers": [{
                "name": layer, "dir": "/x", "metadata": {}, "blob": null,
                "types": { "launch": true, "build": false, "cache": false },
            }],
            "sbom": [{
                "scope": { "Layer": layer }, "ext": sbom_ext,
                "blob": { "digest": format!("sha256:{}", "0".repeat(64)), "size": 0 },
            }],
            "launch": {
                "labels": [], "slices": [],
                "processes": [{
                    "type": process, "command": ["x"], "args": [], "direct": true,
                    "default": false, "working_dir": null, "exec_env": [],
                }],
            },
            "unmet": [], "store": null,
            "change": { "tar": null, "deleted": [deleted] },
        }))
        .unwrap()
    }

    /// An uncompressed tar blob in `dir` of `(path, is_dir)` entries.
    fn tar_blob(dir: &Path, entries: &[(&str, bool)]) -> StoredBlob {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, is_dir) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(if *is_dir {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            });
            header.set_mode(0o755);
            header.set_size(u64::from(!*is_dir));
            let data: &[u8] = if *is_dir { b"" } else { b"x" };
            builder.append_data(&mut header, path, data).unwrap();
        }
        let path = dir.join("blob.tar");
        std::fs::write(&path, builder.into_inner().unwrap()).unwrap();
        StoredBlob {
            diff_id: String::new(),
            digest: "sha256:test".to_owned(),
            size: 0,
            compression: Compression::None,
            path,
        }
    }

    #[test]
    fn a_stored_tar_writes_only_under_its_own_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let scratch = tmp.path().join("scratch");
        let inside = Path::new("layers/t_bp/deps");
        let good = tar_blob(
            tmp.path(),
            &[
                ("layers/", true),
                ("layers/t_bp/deps/", true),
                ("layers/t_bp/deps/f", false),
            ],
        );
        extract(&good, &scratch, inside).unwrap();
        assert!(scratch.join("layers/t_bp/deps/f").is_file());

        for evil in ["workspace/app.js", "layers/t_bp/other/f", "layers/t_bp/f"] {
            let bad = tar_blob(tmp.path(), &[("layers/t_bp/deps/ok", false), (evil, false)]);
            let err = extract(&bad, &scratch, inside).unwrap_err().to_string();
            assert!(err.contains(evil), "{err}");
            assert!(!scratch.join(evil).exists(), "{evil} was written");
        }
    }

    #[test]
    fn an_entry_whose_names_or_paths_leave_their_directory_is_refused() {
        assert!(payload("node", "cdx", "web", "gone/file").check().is_ok());
        for bad in [
            payload("..", "cdx", "web", "gone"),
            payload("a/b", "cdx", "web", "gone"),
            payload("node", "../x", "web", "gone"),
            payload("node", "cdx", "..", "gone"),
            payload("node", "cdx", "web", "../../../x"),
            payload("node", "cdx", "web", "/etc"),
            payload("node", "cdx", "web", "."),
        ] {
            assert!(bad.check().is_err());
        }
    }
}
