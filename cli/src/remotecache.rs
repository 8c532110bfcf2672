//! The remote task cache in a registry: `--cache-from docker://HOST/REPO`, `--cache-to …`,
//! or `cache = "docker://HOST/REPO"` in `strata.toml` (both). CI runners that build slices of
//! one workspace (`--shard K/N`) share what each built through the registry they already
//! run; no other server.
//!
//! # The artifact
//!
//! One OCI image manifest per task, tagged `k-<action key hex>` in the cache repository:
//!
//! ```text
//! mediaType     application/vnd.oci.image.manifest.v1+json
//! artifactType  application/vnd.strata.cache.v1
//! config        application/vnd.strata.cache.entry.v1+json: {"key", "blobs", "payload",
//!               "facts"}, the store's action entry (the executor's payload: layer
//!               descriptors, CNB layer metadata, launch.toml, the app change …), the key
//!               it is for, and (optional) what an export reads of a launch layer it has
//!               no blob of, by store key (see below)
//! layers        application/vnd.strata.cache.blob.v1: every blob the entry names (layer
//!               blobs as the store keeps them, SBOM files, the app change tar), in order
//! annotations   dev.strata.cache.key = the key
//! ```
//!
//! Restore state (an opaque buildpack's cache layers, layer metadata and `store.toml`, what
//! its next run starts from) is the entry of its last run: the tag `r-<shared restore id>`
//! names that entry's manifest too (see `strata_engine::restore::shared_restore_id`).
//!
//! One manifest per key makes concurrent writers safe with no lock: two runners that built
//! one task push the same blobs (content-addressed) and a manifest under the same tag, and
//! either one is right. Blobs go first (each asked for by `HEAD`, so one already there is not
//! uploaded again), the manifest last, so no tag names a blob the registry lacks.
//!
//! # Trust
//!
//! A cache entry comes from another machine: outside input. What is fetched is verified
//! before the store sees it (every blob against its digest and size, the entry against the
//! key it was asked for, its blobs against the manifest's, each layer blob's tar against the
//! diffID the entry records for it, which the image config will list), then written through
//! the store, which checks it as it checks its own (and the task cache refuses a payload
//! whose names or paths are not plain, or whose settings differ). A refused entry is a miss with a warning:
//! the task runs. Whoever can push to the cache repository can still give a task any output
//! that passes these checks; give CI runners write access, and pull requests read access.
//!
//! # What a hit downloads
//!
//! An entry's config, and the blobs its export reads: launch layers, SBOM files, the app
//! change. The blobs it names only for build-only and cache-only layers are promised to the
//! store for this build ([`Store::put_promised_action`]): this cache is the [`BlobFetcher`]
//! that downloads one when a task that runs reads it, with the same digest, size and diffID
//! checks (the diffID before the store sees the blob). One that fails then is a miss with a
//! warning naming the blob and the entry: the build goes once more with every entry naming
//! that blob refused, so their tasks run (what the first try stored is reused). Restore
//! state that fails so is a cold run, with the same warning.
//!
//! When the images go to the registry of the cache read (`docker://` on the same host) and
//! have a launcher, launch layers are promised too: the export reads nothing of their files
//! then (no launch env is baked in), so it takes from the entry what it would have read of
//! each, the blob's digest, size and diffID (the payload's) and, for a layer whose SBOM
//! strata writes, its file list (the entry's `facts`, kept under the store key
//! `strata_exporter::sbomlayer::layer_inventory_key` of the diffID; the writer sends the
//! list its own export made). The image's layout in the store goes without those blobs,
//! and the push mounts them from the cache (or skips them, when the target has them). A
//! task that runs with such a layer, or an `oci:` output, downloads it, checked as above.
//!
//! What is then trusted unchecked, and what a lying entry can do: the pushed manifest names
//! the blob by the digest the entry names, and the registry mounts exactly that blob, from
//! the cache repository only (a digest of a blob in some other repository mounts nothing,
//! and the push fails naming it before any manifest is written), so the layer's bytes are
//! the ones whoever wrote the entry pushed, as they would be on any hit. A false diffID puts a config in the image that does not match its
//! layer: a runtime that unpacks it (containerd, Docker) refuses it; it never runs other
//! bytes than the writer's. A false file list makes the image's generated SBOM of that
//! layer list files it does not have: that is the one thing a writer of the cache can do
//! here beyond choosing a task's output, which is why a fact is used only for a blob that
//! is not here, kept for this build only (never settled into the store), and an `oci:`
//! output (which has the bytes) lists the files itself. Give write access to the cache only
//! to what may also choose your images' contents.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use strata_engine::remote::{Fetched, Prefetched, RemoteCache};
use strata_engine::store::{ActionEntry, BlobFetcher, BlobRef, PromisedBlob, Store};
use strata_exporter::diffid::{self, RecordedBlob};
use strata_exporter::{sbomlayer, taskcache};
use strata_planner::TaskKey;
use strata_registry::{BlobDir, Client, Descriptor, Digest, PushReport, Reference};

use crate::error::CliError;
use crate::images::Images;
use crate::progress::Progress;
use crate::report::RemoteCacheReport;

/// The manifest's `artifactType`.
pub(crate) const ARTIFACT_TYPE: &str = "application/vnd.strata.cache.v1";
/// The config's media type: the entry.
const ENTRY_TYPE: &str = "application/vnd.strata.cache.entry.v1+json";
/// Each blob's media type.
const BLOB_TYPE: &str = "application/vnd.strata.cache.blob.v1";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const KEY_ANNOTATION: &str = "dev.strata.cache.key";
/// The largest entry read: it lists blobs and metadata, never content (as the store's).
const MAX_ENTRY: u64 = 16 << 20;
/// The most blobs an entry may name.
const MAX_BLOBS: usize = 4096;
/// Entries pushed at once (each push sends its blobs concurrently too).
const PUSHERS: usize = 4;

/// A cache repository in a registry.
pub(crate) struct RegistryCache<'a> {
    client: &'a Client,
    repository: Reference,
    /// Set when every request of a batch failed for want of the registry (unreachable, or
    /// 5xx after the retries): the build goes on without the cache, with one warning, and
    /// does not wait on it once per task.
    down: AtomicBool,
    /// The diffIDs the entries committed with promised blobs record for them, by digest:
    /// checked when a blob is fetched.
    recorded: Mutex<HashMap<String, Vec<RecordedBlob>>>,
    /// What fetching promised blobs downloaded.
    later: Mutex<Fetched>,
    /// Promised blobs that came in bad: `(digest, the entry it was promised by, why)`.
    failed: Mutex<Vec<(String, String, String)>>,
    /// Blobs that came in bad in an earlier try of this build: an entry naming one is a
    /// miss.
    bad: HashSet<String>,
    /// Whether a hit leaves launch layers promised too (the images go to a registry that
    /// mounts them from this cache, and their export reads no launch layer file).
    launch_promised: bool,
}

/// The config blob: an entry and the key it is for.
#[derive(Serialize, Deserialize)]
struct EntryFile {
    key: String,
    blobs: Vec<BlobRef>,
    #[serde(default)]
    payload: serde_json::Value,
    /// Facts an export reads of the launch layers, by store key (hex): the file list of
    /// each launch layer whose SBOM strata writes, under
    /// [`sbomlayer::layer_inventory_key`] of its diffID.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    facts: BTreeMap<String, serde_json::Value>,
}

/// The parts of a cache manifest read back.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(default)]
    artifact_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// What pushing the cache did.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub(crate) struct Pushed {
    /// Entries (manifests) written.
    pub(crate) entries: usize,
    /// Restore refs written.
    pub(crate) restore: usize,
    /// Blobs uploaded, and those the registry had.
    pub(crate) uploaded: usize,
    pub(crate) skipped: usize,
    /// Bytes uploaded.
    pub(crate) bytes: u64,
}

/// What a build pushes: the action keys of the tasks that ran, and the restore refs
/// `(shared restore id, key)` their opaque buildpacks left.
#[derive(Debug, Default)]
pub(crate) struct Entries {
    pub(crate) keys: Vec<TaskKey>,
    pub(crate) restores: Vec<(TaskKey, TaskKey)>,
}

/// A build's remote caches: the one it reads (`--cache-from`) and the one it pushes to
/// (`--cache-to`), and what it did with them, for its report.
pub(crate) struct RemoteRun<'a> {
    reader: Option<RegistryCache<'a>>,
    writer: Option<RegistryCache<'a>>,
    report: Option<RemoteCacheReport>,
}

impl<'a> RemoteRun<'a> {
    /// Reading `from` and pushing to `to` (either may be absent).
    /// With `launch_promised`, a hit leaves launch layers promised (see the module doc); an
    /// entry that names a blob in `bad` is a miss.
    pub(crate) fn new(
        images: &'a Images,
        from: Option<&Reference>,
        to: Option<&Reference>,
        launch_promised: bool,
        bad: &HashSet<String>,
    ) -> Result<Self, CliError> {
        let cache = |reference: Option<&Reference>| -> Result<_, CliError> {
            Ok(match reference {
                Some(r) => Some(RegistryCache::new(images.client()?, r.clone())),
                None => None,
            })
        };
        let (mut reader, writer) = (cache(from)?, cache(to)?);
        if let Some(reader) = &mut reader {
            reader.launch_promised = launch_promised;
            reader.bad.clone_from(bad);
        }
        let used = reader.is_some() || writer.is_some();
        Ok(Self {
            reader,
            writer,
            report: used.then(RemoteCacheReport::default),
        })
    }

    /// The cache to read, if any.
    pub(crate) fn reader(&self) -> Option<&dyn RemoteCache> {
        self.reader.as_ref().map(|r| r as &dyn RemoteCache)
    }

    /// What brings in the blobs the cache read only promised, if any.
    pub(crate) fn fetcher(&self) -> Option<&dyn BlobFetcher> {
        self.reader.as_ref().map(|r| r as &dyn BlobFetcher)
    }

    /// Counts what fetching promised blobs downloaded, once the tasks are done, and warns
    /// of each that came in bad, naming it and its entry (a task that needed it failed; a
    /// restore state with it was a cold run). Returns those blobs.
    pub(crate) fn fetched_later(&mut self, progress: &Progress) -> HashSet<String> {
        let (Some(reader), Some(report)) = (&self.reader, &mut self.report) else {
            return HashSet::new();
        };
        let later =
            std::mem::take(&mut *reader.later.lock().unwrap_or_else(PoisonError::into_inner));
        report.downloaded += later.blobs;
        report.downloaded_bytes += later.bytes;
        let failed =
            std::mem::take(&mut *reader.failed.lock().unwrap_or_else(PoisonError::into_inner));
        let mut bad = HashSet::new();
        for (digest, from, why) in failed {
            progress.warn(&refused(&from, &format!("blob {digest}: {why}")));
            report.refused += 1;
            bad.insert(digest);
        }
        bad
    }

    /// Counts what a prefetch gave and shows its warnings; returns the keys it asked for.
    pub(crate) fn prefetched(
        &mut self,
        progress: &Progress,
        prefetched: Option<&Prefetched>,
    ) -> HashSet<TaskKey> {
        let Some(prefetched) = prefetched else {
            return HashSet::new();
        };
        self.fetched(progress, &prefetched.fetched);
        prefetched.asked.clone()
    }

    /// Counts what a fetch gave and shows its warnings.
    pub(crate) fn fetched(&mut self, progress: &Progress, fetched: &Fetched) {
        for warning in &fetched.warnings {
            progress.warn(warning);
        }
        if let Some(report) = &mut self.report {
            report.fetched += fetched.hits.len();
            report.downloaded += fetched.blobs;
            report.downloaded_bytes += fetched.bytes;
            report.refused += fetched.warnings.len();
        }
    }

    /// Pushes `entries` to the cache to push to, if any. A push that fails is a warning:
    /// the images are built.
    pub(crate) fn push(&mut self, store: &Store, entries: &Entries, progress: &Progress) {
        let (Some(writer), Some(report)) = (&self.writer, &mut self.report) else {
            return;
        };
        match writer.push(store, &entries.keys, &entries.restores) {
            Ok(pushed) => report.pushed = Some(pushed),
            Err(e) => progress.warn(&format!(
                "warning: the remote cache docker://{} was not updated: {}",
                writer.repository,
                with_causes(&e)
            )),
        }
    }

    /// What the build did with its remote caches, if it has any.
    pub(crate) fn into_report(self) -> Option<RemoteCacheReport> {
        self.report
    }
}

/// Parses a cache reference: `docker://HOST[:PORT]/REPO`, with no tag or digest (the cache
/// tags entries itself).
pub(crate) fn parse_cache_ref(text: &str, what: &str) -> Result<Reference, CliError> {
    let bad = |why: String| CliError::Usage(format!("{what} `{text}`: {why}"));
    let rest = text
        .strip_prefix("docker://")
        .ok_or_else(|| bad("a cache is a registry repository, docker://HOST/REPO".to_owned()))?;
    let reference = Reference::parse(rest).map_err(|e| bad(e.to_string()))?;
    if reference.digest().is_some() || rest.rsplit('/').next().is_some_and(|r| r.contains(':')) {
        return Err(bad(
            "name the repository only (no tag or digest): strata tags each entry by its key"
                .to_owned(),
        ));
    }
    Ok(reference)
}

/// `k-<key>`: the tag of `key`'s entry.
fn entry_tag(key: &TaskKey) -> String {
    format!("k-{}", key.hex())
}

/// `r-<id>`: the tag of the restore state of the shared restore id `id`.
fn restore_tag(id: &TaskKey) -> String {
    format!("r-{}", id.hex())
}

/// An entry's facts by store key (see [`EntryFile::facts`]).
type Facts = HashMap<TaskKey, serde_json::Value>;

/// One entry on its way in.
struct Incoming {
    /// The key it must be for (`None`: whatever it names, a restore ref's entry).
    wanted: Option<TaskKey>,
    shown: String,
    manifest: Option<Manifest>,
    entry: Option<(TaskKey, ActionEntry)>,
    facts: Facts,
    refused: Option<String>,
}

impl<'a> RegistryCache<'a> {
    /// The cache in `repository`, spoken to with `client`.
    pub(crate) fn new(client: &'a Client, repository: Reference) -> Self {
        Self {
            client,
            repository,
            down: AtomicBool::new(false),
            recorded: Mutex::new(HashMap::new()),
            later: Mutex::new(Fetched::default()),
            failed: Mutex::new(Vec::new()),
            bad: HashSet::new(),
            launch_promised: false,
        }
    }

    fn tagged(&self, tag: &str) -> Result<Reference, String> {
        Reference::with_tag(
            self.repository.registry(),
            self.repository.repository(),
            tag,
        )
        .map_err(|e| e.to_string())
    }

    /// Fetches the entries the tags name into `store`: each `(tag, wanted key)`; returns,
    /// per tag, the key now in the store, if any.
    fn fetch_tags(
        &self,
        store: &Store,
        tags: &[(String, Option<TaskKey>)],
    ) -> (Vec<Option<TaskKey>>, Fetched) {
        let mut fetched = Fetched::default();
        let none = vec![None; tags.len()];
        if self.down.load(Ordering::Relaxed) {
            return (none, fetched);
        }
        let Ok(scratch) = store.temp_dir() else {
            return (none, fetched);
        };
        let blobs = BlobDir::new(scratch.path());
        let mut incoming = match self.manifests(tags) {
            Ok(incoming) => incoming,
            Err(e) => {
                self.down.store(true, Ordering::Relaxed);
                fetched.warnings.push(format!(
                    "warning: the remote cache docker://{} cannot be read ({}); building without it",
                    self.repository, e
                ));
                return (none, fetched);
            }
        };
        self.entries(&blobs, &mut incoming, &mut fetched);
        let deferred = deferred(store, &incoming, self.launch_promised);
        let failed = self.blobs(store, &blobs, &incoming, &deferred, &mut fetched);
        check_diff_ids(store, &mut incoming, &failed, &deferred);
        let keys = incoming
            .into_iter()
            .map(|item| self.commit(store, item, &failed, &deferred, &mut fetched))
            .collect();
        (keys, fetched)
    }

    /// The cache manifests the tags name, in one batch.
    ///
    /// # Errors
    /// When every request failed for want of the registry: the first of those errors.
    fn manifests(&self, tags: &[(String, Option<TaskKey>)]) -> Result<Vec<Incoming>, String> {
        let refs: Vec<Option<Reference>> =
            tags.iter().map(|(tag, _)| self.tagged(tag).ok()).collect();
        let valid: Vec<Reference> = refs.iter().flatten().cloned().collect();
        let results = self.client.fetch_manifests(&valid);
        let transient = |r: &Result<_, strata_registry::Error>| {
            r.as_ref().is_err_and(strata_registry::Error::is_transient)
        };
        if !results.is_empty() && results.iter().all(transient) {
            if let Some(Err(e)) = results.into_iter().next() {
                return Err(with_causes(&e));
            }
            return Ok(Vec::new());
        }
        let mut results = results.into_iter();
        Ok(tags
            .iter()
            .zip(refs)
            .map(|((tag, wanted), reference)| {
                let mut item = Incoming {
                    wanted: *wanted,
                    shown: format!("docker://{}:{tag}", self.repository),
                    manifest: None,
                    entry: None,
                    facts: HashMap::new(),
                    refused: None,
                };
                let result = match reference {
                    Some(_) => results.next(),
                    None => None,
                };
                match result {
                    None | Some(Ok(None)) => {}
                    Some(Ok(Some(m))) => match read_manifest(&m.bytes) {
                        Ok(manifest) => item.manifest = Some(manifest),
                        Err(why) => item.refused = Some(why),
                    },
                    Some(Err(e)) => item.refused = Some(with_causes(&e)),
                }
                item
            })
            .collect())
    }

    /// The entries (configs) of the manifests found, in one batch, checked.
    fn entries(&self, blobs: &BlobDir, incoming: &mut [Incoming], fetched: &mut Fetched) {
        let configs: Vec<Descriptor> = incoming
            .iter()
            .filter_map(|i| i.manifest.as_ref().map(|m| m.config.clone()))
            .collect();
        let mut results = self.pull(blobs, &configs, fetched).into_iter();
        for item in incoming {
            let Some(manifest) = &item.manifest else {
                continue;
            };
            match results.next() {
                Some(Ok(())) => match read_entry(blobs, manifest, item.wanted) {
                    Ok((entry, facts)) => {
                        item.entry = Some(entry);
                        item.facts = facts;
                    }
                    Err(why) => item.refused = Some(why),
                },
                Some(Err(why)) => item.refused = Some(why),
                None => item.refused = Some("not fetched".to_owned()),
            }
        }
    }

    /// Downloads the blobs of the entries that `store` lacks, but the `deferred` ones, in
    /// one batch and each once, and moves them into the store; returns those that failed,
    /// with why.
    fn blobs(
        &self,
        store: &Store,
        blobs: &BlobDir,
        incoming: &[Incoming],
        deferred: &HashSet<String>,
        fetched: &mut Fetched,
    ) -> Vec<(String, String)> {
        let mut wanted: Vec<Descriptor> = Vec::new();
        for (_, entry) in incoming.iter().filter_map(|i| i.entry.as_ref()) {
            for blob in &entry.blobs {
                if deferred.contains(&blob.digest)
                    || store.check_blob(blob)
                    || wanted.iter().any(|d| d.digest.as_str() == blob.digest)
                {
                    continue;
                }
                if let Ok(digest) = blob.digest.parse::<Digest>() {
                    wanted.push(Descriptor {
                        media_type: BLOB_TYPE.to_owned(),
                        digest,
                        size: blob.size,
                        platform: None,
                    });
                }
            }
        }
        let results = self.pull(blobs, &wanted, fetched);
        let mut failed = Vec::new();
        for (d, result) in wanted.iter().zip(results) {
            let adopted = result.and_then(|()| {
                store
                    .adopt_blob(&blobs.path(&d.digest), d.digest.as_str(), d.size)
                    .map(drop)
                    .map_err(|e| with_causes(&e))
            });
            if let Err(why) = adopted {
                failed.push((d.digest.to_string(), why));
            }
        }
        failed
    }

    /// Downloads `descriptors` into `blobs`; one result per descriptor.
    fn pull(
        &self,
        blobs: &BlobDir,
        descriptors: &[Descriptor],
        fetched: &mut Fetched,
    ) -> Vec<Result<(), String>> {
        if descriptors.is_empty() {
            return Vec::new();
        }
        match self
            .client
            .pull_blobs_each(&self.repository, descriptors, blobs)
        {
            Ok(results) => results
                .into_iter()
                .map(|r| {
                    r.map(|bytes| {
                        if bytes > 0 {
                            fetched.blobs += 1;
                            fetched.bytes += bytes;
                        }
                    })
                    .map_err(|e| with_causes(&e))
                })
                .collect(),
            Err(e) => vec![Err(with_causes(&e)); descriptors.len()],
        }
    }

    /// Pushes the entries of `keys` from `store`, and the restore refs `(shared id, key)`.
    ///
    /// # Errors
    /// The first push that failed (the others still went).
    pub(crate) fn push(
        &self,
        store: &Store,
        keys: &[TaskKey],
        restores: &[(TaskKey, TaskKey)],
    ) -> Result<Pushed, CliError> {
        let mut jobs: Vec<(TaskKey, Vec<String>)> = Vec::new();
        for key in keys {
            if !jobs.iter().any(|(k, _)| k == key) {
                jobs.push((*key, vec![entry_tag(key)]));
            }
        }
        for (id, key) in restores {
            match jobs.iter_mut().find(|(k, _)| k == key) {
                Some((_, tags)) => tags.push(restore_tag(id)),
                None => jobs.push((*key, vec![entry_tag(key), restore_tag(id)])),
            }
        }
        let next = AtomicUsize::new(0);
        let results: Vec<Result<(PushReport, usize), CliError>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..PUSHERS.min(jobs.len()))
                .map(|_| {
                    scope.spawn(|| {
                        let mut out = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some((key, tags)) = jobs.get(i) else {
                                return out;
                            };
                            out.push(self.push_entry(store, key, tags));
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect()
        });
        let mut pushed = Pushed::default();
        let mut first_error = None;
        for result in results {
            match result {
                Ok((report, tags)) => {
                    pushed.entries += 1;
                    pushed.restore += tags.saturating_sub(1);
                    pushed.uploaded += report.uploaded;
                    pushed.skipped += report.skipped;
                    pushed.bytes += report.bytes;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(pushed),
        }
    }

    /// Pushes `key`'s entry under `tags` (its entry tag first); a key the store no longer
    /// has is skipped. Returns the push report and how many tags were written.
    fn push_entry(
        &self,
        store: &Store,
        key: &TaskKey,
        tags: &[String],
    ) -> Result<(PushReport, usize), CliError> {
        let Some(entry) = store.get_action(key) else {
            return Ok((PushReport::default(), 0));
        };
        let what = || {
            format!(
                "cannot push cache entry {} to docker://{}",
                key.hex(),
                self.repository
            )
        };
        let err = |source: Box<dyn std::error::Error + Send + Sync>| CliError::Io {
            what: what(),
            source: std::io::Error::other(source),
        };
        let registry_err = |source: strata_registry::Error| CliError::RegistryImage {
            what: what(),
            source: Box::new(source),
        };
        let facts = taskcache::launch_blobs(&entry.payload)
            .into_iter()
            .filter(|b| !b.own_sbom)
            .filter_map(|b| {
                let fact = sbomlayer::layer_inventory_key(&b.diff_id);
                let found = store.get_action(&fact)?;
                sbomlayer::is_layer_inventory(&found.payload).then(|| (fact.hex(), found.payload))
            })
            .collect();
        let config = serde_json::to_vec(&EntryFile {
            key: key.hex(),
            blobs: entry.blobs.clone(),
            payload: entry.payload,
            facts,
        })
        .map_err(|e| err(Box::new(e)))?;
        let config = store
            .put_blob_bytes(&config)
            .map_err(|e| err(Box::new(e)))?;
        let descriptor = |blob: &BlobRef, media_type: &str| serde_json::json!({"mediaType": media_type, "digest": blob.digest, "size": blob.size});
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": descriptor(&config, ENTRY_TYPE),
            "layers": entry.blobs.iter().map(|b| descriptor(b, BLOB_TYPE)).collect::<Vec<_>>(),
            "annotations": {KEY_ANNOTATION: key.hex()},
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|e| err(Box::new(e)))?;
        let stored = store.put_blob_bytes(&bytes).map_err(|e| err(Box::new(e)))?;
        let root = Descriptor {
            media_type: MANIFEST_TYPE.to_owned(),
            digest: stored
                .digest
                .parse()
                .map_err(|e: strata_registry::digest::DigestError| err(e.0.into()))?,
            size: stored.size,
            platform: None,
        };
        let blobs = BlobDir::new(blob_dir(store));
        let mut written = 0;
        let mut report = PushReport::default();
        for (i, tag) in tags.iter().enumerate() {
            let target = self.tagged(tag).map_err(|e| err(e.into()))?;
            if i == 0 {
                report = self
                    .client
                    .push(&blobs, &root, &target, None)
                    .map_err(registry_err)?;
            } else {
                self.client
                    .push_manifest(&target, &root, bytes.clone())
                    .map_err(registry_err)?;
            }
            written += 1;
        }
        Ok((report, written))
    }
}

impl RemoteCache for RegistryCache<'_> {
    fn fetch(&self, store: &Store, keys: &[TaskKey]) -> Fetched {
        let tags: Vec<(String, Option<TaskKey>)> =
            keys.iter().map(|k| (entry_tag(k), Some(*k))).collect();
        self.fetch_tags(store, &tags).1
    }

    fn fetch_restore(&self, store: &Store, ids: &[(TaskKey, TaskKey)]) -> Fetched {
        let tags: Vec<(String, Option<TaskKey>)> = ids
            .iter()
            .map(|(_, shared)| (restore_tag(shared), None))
            .collect();
        let (keys, mut fetched) = self.fetch_tags(store, &tags);
        for ((local, _), key) in ids.iter().zip(keys) {
            if let Some(key) = key
                && let Err(e) = store.put_restore(local, &key)
            {
                fetched.warnings.push(format!(
                    "warning: cannot keep the restore state of {}: {}",
                    key.hex(),
                    with_causes(&e)
                ));
            }
        }
        fetched
    }
}

impl BlobFetcher for RegistryCache<'_> {
    /// Downloads a promised blob, checks it against its digest and size (as it comes in),
    /// against the diffID its entry records (before the store sees it), and moves it into
    /// the store, which checks it again.
    fn fetch_blob(&self, store: &Store, promised: &PromisedBlob) -> Result<(), String> {
        let result = self.fetch_promised(store, promised);
        if let Err(why) = &result {
            self.failed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((
                    promised.blob.digest.clone(),
                    promised.from.clone(),
                    why.clone(),
                ));
        }
        result
    }
}

impl RegistryCache<'_> {
    /// [`BlobFetcher::fetch_blob`], but for recording what failed.
    fn fetch_promised(&self, store: &Store, promised: &PromisedBlob) -> Result<(), String> {
        let scratch = store.temp_dir().map_err(|e| with_causes(&e))?;
        let blobs = BlobDir::new(scratch.path());
        let digest: Digest = promised
            .blob
            .digest
            .parse()
            .map_err(|_| format!("`{}` is not a digest", promised.blob.digest))?;
        let descriptor = Descriptor {
            media_type: BLOB_TYPE.to_owned(),
            digest,
            size: promised.blob.size,
            platform: None,
        };
        let mut fetched = Fetched::default();
        let result = self
            .pull(&blobs, std::slice::from_ref(&descriptor), &mut fetched)
            .pop()
            .unwrap_or_else(|| Err("not fetched".to_owned()));
        self.later
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add_counts(&fetched);
        result?;
        let path = blobs.path(&descriptor.digest);
        let recorded = self
            .recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&promised.blob.digest)
            .cloned()
            .unwrap_or_default();
        for blob in &recorded {
            diffid::check(&path, blob).map_err(|e| with_causes(&e))?;
        }
        store
            .adopt_blob(&path, &promised.blob.digest, promised.blob.size)
            .map(drop)
            .map_err(|e| with_causes(&e))
    }
}

impl RegistryCache<'_> {
    /// Makes `item` an action of `store` when it and every blob it names came in whole (none
    /// of them `failed`), its `deferred` blobs promised; returns its key then. Anything
    /// refused is a warning.
    fn commit(
        &self,
        store: &Store,
        item: Incoming,
        failed: &[(String, String)],
        deferred: &HashSet<String>,
        fetched: &mut Fetched,
    ) -> Option<TaskKey> {
        if let Some(why) = &item.refused {
            fetched.warnings.push(refused(&item.shown, why));
            return None;
        }
        let (key, entry) = item.entry?;
        if let Some(blob) = entry.blobs.iter().find(|b| self.bad.contains(&b.digest)) {
            fetched.warnings.push(refused(
                &item.shown,
                &format!("blob {}: it came in bad earlier in this build", blob.digest),
            ));
            return None;
        }
        let bad = entry
            .blobs
            .iter()
            .find_map(|b| failed.iter().find(|(d, _)| *d == b.digest));
        if let Some((digest, why)) = bad {
            fetched
                .warnings
                .push(refused(&item.shown, &format!("blob {digest}: {why}")));
            return None;
        }
        let promised: Vec<PromisedBlob> = entry
            .blobs
            .iter()
            .filter(|b| deferred.contains(&b.digest))
            .map(|b| PromisedBlob {
                blob: b.clone(),
                from: item.shown.clone(),
            })
            .collect();
        if !promised.is_empty() {
            let mut recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
            for blob in taskcache::recorded_blobs(&entry.payload) {
                if deferred.contains(&blob.digest) {
                    let known = recorded.entry(blob.digest.clone()).or_default();
                    if !known.contains(&blob) {
                        known.push(blob);
                    }
                }
            }
        }
        // The file lists of the launch layers it leaves promised, for their SBOMs.
        for blob in taskcache::launch_blobs(&entry.payload) {
            let fact = sbomlayer::layer_inventory_key(&blob.diff_id);
            if let (true, Some(payload)) = (deferred.contains(&blob.digest), item.facts.get(&fact))
            {
                store.put_fact(&fact, payload.clone());
            }
        }
        if let Err(e) = store.put_promised_action(&key, &entry, &promised) {
            fetched
                .warnings
                .push(refused(&item.shown, &with_causes(&e)));
            return None;
        }
        fetched.hits.push(key);
        Some(key)
    }
}

/// The blobs of the entries coming in that none needs now and `store` lacks: those each
/// names only for a build-only or cache-only layer (see
/// [`taskcache::deferrable_blobs`]), and with `launch`, its launch layers whose export
/// reads nothing of them but what the entry says (their buildpack wrote their SBOM, or the
/// entry carries their file list). They are promised, not downloaded.
fn deferred(store: &Store, incoming: &[Incoming], launch: bool) -> HashSet<String> {
    let mut deferrable = HashSet::new();
    let mut needed = HashSet::new();
    for item in incoming {
        let Some((_, entry)) = &item.entry else {
            continue;
        };
        let mut later: HashSet<String> = taskcache::deferrable_blobs(&entry.payload)
            .into_iter()
            .collect();
        if launch {
            later.extend(
                taskcache::launch_blobs(&entry.payload)
                    .into_iter()
                    .filter(|b| {
                        b.own_sbom
                            || item
                                .facts
                                .contains_key(&sbomlayer::layer_inventory_key(&b.diff_id))
                    })
                    .map(|b| b.digest),
            );
        }
        for blob in &entry.blobs {
            if later.contains(&blob.digest) {
                if !store.check_blob(blob) {
                    deferrable.insert(blob.digest.clone());
                }
            } else {
                needed.insert(blob.digest.clone());
            }
        }
    }
    deferrable.retain(|d| !needed.contains(d));
    deferrable
}

/// Refuses each entry that came in whole but names a layer blob whose tar is not the diffID
/// the entry records for it (the image config would not match its layers). Each blob is
/// read once, the blobs at once.
fn check_diff_ids(
    store: &Store,
    incoming: &mut [Incoming],
    failed: &[(String, String)],
    deferred: &HashSet<String>,
) {
    let whole = |item: &Incoming| {
        item.refused.is_none()
            && item.entry.as_ref().is_some_and(|(_, entry)| {
                entry
                    .blobs
                    .iter()
                    .all(|b| failed.iter().all(|(d, _)| *d != b.digest))
            })
    };
    let recorded: Vec<Vec<RecordedBlob>> = incoming
        .iter()
        .map(|item| match &item.entry {
            Some((_, entry)) if whole(item) => taskcache::recorded_blobs(&entry.payload)
                .into_iter()
                .filter(|b| !deferred.contains(&b.digest))
                .collect(),
            _ => Vec::new(),
        })
        .collect();
    let mut unique: Vec<&RecordedBlob> = recorded.iter().flatten().collect();
    unique.sort_unstable_by(|a, b| (&a.digest, &a.diff_id).cmp(&(&b.digest, &b.diff_id)));
    unique.dedup();
    let bad: Vec<(&RecordedBlob, String)> = unique
        .into_par_iter()
        .filter_map(|blob| {
            let checked = store
                .blob_path(&blob.digest)
                .map_err(|e| with_causes(&e))
                .and_then(|path| diffid::check(&path, blob).map_err(|e| with_causes(&e)));
            checked.err().map(|why| (blob, why))
        })
        .collect();
    for (item, recorded) in incoming.iter_mut().zip(&recorded) {
        if let Some((blob, why)) = bad.iter().find(|(b, _)| recorded.contains(b)) {
            item.refused = Some(format!("blob {}: {why}", blob.digest));
        }
    }
}

/// The store's blob directory.
fn blob_dir(store: &Store) -> PathBuf {
    store.root().join("blobs").join("sha256")
}

/// A cache manifest, checked for what it claims to be.
fn read_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| format!("not a cache manifest: {e}"))?;
    if manifest.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
        return Err(format!(
            "artifactType is {:?}, not {ARTIFACT_TYPE}",
            manifest.artifact_type
        ));
    }
    if manifest.config.media_type != ENTRY_TYPE {
        return Err(format!(
            "config media type {} is not {ENTRY_TYPE}",
            manifest.config.media_type
        ));
    }
    if manifest.config.size > MAX_ENTRY {
        return Err(format!(
            "its entry of {} bytes is too large",
            manifest.config.size
        ));
    }
    if manifest.layers.len() > MAX_BLOBS {
        return Err(format!("it names {} blobs", manifest.layers.len()));
    }
    Ok(manifest)
}

/// The entry a fetched config holds: for `wanted` (when given), naming exactly the blobs the
/// manifest lists, each a valid digest.
fn read_entry(
    blobs: &BlobDir,
    manifest: &Manifest,
    wanted: Option<TaskKey>,
) -> Result<((TaskKey, ActionEntry), Facts), String> {
    let bytes = blobs
        .read_verified(&manifest.config.digest)
        .map_err(|e| with_causes(&e))?;
    let file: EntryFile =
        serde_json::from_slice(&bytes).map_err(|e| format!("its entry does not parse: {e}"))?;
    let key = TaskKey::from_hex(&file.key).ok_or("its entry names no key")?;
    if let Some(wanted) = wanted
        && wanted != key
    {
        return Err(format!(
            "its entry is for key {}, not {}",
            key.hex(),
            wanted.hex()
        ));
    }
    let listed: Vec<(&str, u64)> = manifest
        .layers
        .iter()
        .map(|d| (d.digest.as_str(), d.size))
        .collect();
    let named: Vec<(&str, u64)> = file
        .blobs
        .iter()
        .map(|b| (b.digest.as_str(), b.size))
        .collect();
    if listed != named {
        return Err("its entry names other blobs than its manifest".to_owned());
    }
    for blob in &file.blobs {
        if blob.digest.parse::<Digest>().is_err() || !is_sha256(&blob.digest) {
            return Err(format!("`{}` is not a sha256 digest", blob.digest));
        }
    }
    let facts = read_facts(file.facts, &file.payload)?;
    Ok((
        (
            key,
            ActionEntry {
                blobs: file.blobs,
                payload: file.payload,
            },
        ),
        facts,
    ))
}

/// An entry's facts, each the file list of one of its launch layers (by the diffID the
/// payload records for it), or why the entry is refused: a fact that is not a file list.
/// One keyed by no such diffID is of nothing this entry exports, and is dropped.
fn read_facts(
    facts: BTreeMap<String, serde_json::Value>,
    payload: &serde_json::Value,
) -> Result<Facts, String> {
    let allowed: HashSet<TaskKey> = taskcache::launch_blobs(payload)
        .iter()
        .map(|b| sbomlayer::layer_inventory_key(&b.diff_id))
        .collect();
    let mut out = HashMap::new();
    for (hex, fact) in facts {
        let Some(key) = TaskKey::from_hex(&hex).filter(|k| allowed.contains(k)) else {
            continue;
        };
        if !sbomlayer::is_layer_inventory(&fact) {
            return Err(format!("its fact {hex} is not a file list"));
        }
        out.insert(key, fact);
    }
    Ok(out)
}

fn is_sha256(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

fn refused(shown: &str, why: &str) -> String {
    format!("warning: remote cache entry {shown} refused ({why}); its task runs")
}

/// An error and its causes, on one line.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_is_a_repository_without_tag_or_digest() {
        let ok = parse_cache_ref("docker://127.0.0.1:5000/team/cache", "--cache-to").unwrap();
        assert_eq!(ok.repository(), "team/cache");
        for bad in [
            "127.0.0.1:5000/cache",
            "oci:dir",
            "docker://127.0.0.1:5000/cache:v1",
            "docker://127.0.0.1:5000/cache@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "docker://",
        ] {
            assert!(parse_cache_ref(bad, "--cache-to").is_err(), "{bad}");
        }
    }

    #[test]
    fn a_manifest_must_be_a_cache_entry() {
        let config = format!("sha256:{}", "a".repeat(64));
        let good = serde_json::json!({
            "artifactType": ARTIFACT_TYPE,
            "config": {"mediaType": ENTRY_TYPE, "digest": config, "size": 10},
            "layers": [],
        });
        assert!(read_manifest(&serde_json::to_vec(&good).unwrap()).is_ok());
        let mut image = good.clone();
        image["artifactType"] = serde_json::Value::Null;
        assert!(read_manifest(&serde_json::to_vec(&image).unwrap()).is_err());
        let mut huge = good.clone();
        huge["config"]["size"] = serde_json::json!(MAX_ENTRY + 1);
        assert!(read_manifest(&serde_json::to_vec(&huge).unwrap()).is_err());
        assert!(read_manifest(b"{").is_err());
    }

    #[test]
    fn an_entry_must_be_for_its_key_and_name_its_manifests_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::new(dir.path());
        let key = TaskKey::from_bytes([7; 32]);
        let blob = BlobRef {
            digest: format!("sha256:{}", "b".repeat(64)),
            size: 3,
        };
        let write = |file: &EntryFile| {
            let bytes = serde_json::to_vec(file).unwrap();
            let digest = Digest::of(&bytes);
            std::fs::write(dir.path().join(digest.hex()), &bytes).unwrap();
            Descriptor {
                media_type: ENTRY_TYPE.to_owned(),
                digest,
                size: bytes.len() as u64,
                platform: None,
            }
        };
        let layer = Descriptor {
            media_type: BLOB_TYPE.to_owned(),
            digest: blob.digest.parse().unwrap(),
            size: 3,
            platform: None,
        };
        let config = write(&EntryFile {
            key: key.hex(),
            blobs: vec![blob.clone()],
            payload: serde_json::Value::Null,
            facts: BTreeMap::new(),
        });
        let manifest = |config: &Descriptor, layers: Vec<Descriptor>| Manifest {
            artifact_type: Some(ARTIFACT_TYPE.to_owned()),
            config: config.clone(),
            layers,
        };
        let ((found, entry), _) =
            read_entry(&blobs, &manifest(&config, vec![layer.clone()]), Some(key)).unwrap();
        assert_eq!((found, entry.blobs), (key, vec![blob.clone()]));
        // Another key's entry under this key's tag, or blobs the manifest does not list.
        let other = TaskKey::from_bytes([8; 32]);
        assert!(read_entry(&blobs, &manifest(&config, vec![layer.clone()]), Some(other)).is_err());
        assert!(read_entry(&blobs, &manifest(&config, Vec::new()), Some(key)).is_err());
        // A digest that is a path, not a digest.
        let sneaky = write(&EntryFile {
            key: key.hex(),
            blobs: vec![BlobRef {
                digest: "sha256:../../../etc/passwd".to_owned(),
                size: 3,
            }],
            payload: serde_json::Value::Null,
            facts: BTreeMap::new(),
        });
        assert!(read_entry(&blobs, &manifest(&sneaky, vec![layer]), Some(key)).is_err());
    }

    #[test]
    fn facts_are_file_lists_of_the_entrys_launch_layers() {
        let diff_id = format!("sha256:{}", "c".repeat(64));
        let payload = serde_json::json!({
            "settings": {"uid": 1000, "gid": 1000, "epoch": 0, "compression": "gzip", "format": 1},
            "layers": [{
                "name": "web", "dir": "/x", "metadata": {},
                "blob": {"diff_id": diff_id, "path": "/x", "digest": format!("sha256:{}", "d".repeat(64)),
                         "size": 3, "compression": "gzip"},
                "types": {"launch": true, "build": false, "cache": false},
            }],
            "sbom": [], "launch": null, "unmet": [], "store": null, "change": null,
        });
        let key = sbomlayer::layer_inventory_key(&diff_id);
        let files = serde_json::json!({"files": [{"path": "a", "sha256": "x", "sha1": "y"}], "packages": []});
        let other = TaskKey::from_bytes([9; 32]);
        let facts = BTreeMap::from([(key.hex(), files.clone()), (other.hex(), files.clone())]);
        // The fact of its layer is kept; one of no layer it names is dropped.
        let read = read_facts(facts, &payload).unwrap();
        assert_eq!(read, HashMap::from([(key, files)]));
        // One that is not a file list refuses the entry.
        for bad in [
            serde_json::json!({"files": [], "packages": [{"name": "p", "version": null,
                "purl": null, "licenses": [], "arch": null, "source": null}]}),
            serde_json::json!("files"),
        ] {
            assert!(read_facts(BTreeMap::from([(key.hex(), bad)]), &payload).is_err());
        }
    }

    #[test]
    fn entry_and_restore_tags_are_valid_tags() {
        let key = TaskKey::from_bytes([0xab; 32]);
        for tag in [entry_tag(&key), restore_tag(&key)] {
            assert_eq!(tag.len(), 66);
            assert!(Reference::with_tag("127.0.0.1:5000", "cache", &tag).is_ok());
        }
    }
}
