//! A remote task cache: entries another machine built, fetched into the local store before
//! they are used, so that everything downstream (the executor, the exporter, restore state)
//! reads only the local store and verifies a remote entry exactly as it verifies its own.
//!
//! The engine knows nothing of where a remote keeps entries; a [`RemoteCache`] (the CLI's is a
//! registry) brings the entries of some keys into a [`Store`]. What this module adds is
//! *which* keys, without waiting on one round trip per task:
//!
//! - [`prefetch`] walks the plan in dependency rounds. A task's action key is made from the
//!   output digests of the tasks it needs ([`strata_planner::Plan::action_key`]), so the
//!   first round asks for every task that needs none, all in one batch; the next round asks
//!   for every task whose needs the first answered (their output digests are in the fetched
//!   entries); and so on. A plan of 100 services asks in as many batches as its graph is
//!   deep, not in as many requests as it has tasks. Then, for each opaque buildpack that
//!   will run, it fetches the restore state its last run on any machine left (see
//!   [`crate::restore::shared_restore_id`]) when the local store has none.
//! - [`WithRemote`] wraps the local [`TaskCache`] for the tasks the rounds could not key:
//!   those downstream of a task that runs, whose action key is known only once it has run
//!   (early cutoff). A local miss asks the remote for that one key, once.
//!
//! A hit need not bring every blob: the remote may leave some promised (see
//! [`crate::store`]'s `lazy`), to be fetched when a task reads them.
//!
//! A remote miss is a local miss: the task runs. A remote entry that is refused (bad bytes,
//! wrong key, refused by the store's checks) is a miss with a warning, never an error.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use petgraph::graph::NodeIndex;
use strata_planner::{Lookup, Plan, Task, TaskKey, TaskKind};

use crate::build::{BuildError, BuildRequest};
use crate::execute::{TaskCache, TaskOutput, Use};
use crate::layers::Layer;
use crate::store::Store;
use crate::workspace::Change;

/// What fetching from a remote cache did.
#[derive(Debug, Default, Clone)]
pub struct Fetched {
    /// The keys whose entries are now in the local store.
    pub hits: Vec<TaskKey>,
    /// Entries the remote has that were refused, each with why.
    pub warnings: Vec<String>,
    /// Blobs downloaded (entries' own and their layers).
    pub blobs: usize,
    /// Bytes downloaded.
    pub bytes: u64,
}

impl Fetched {
    /// Adds the blobs and bytes `other` downloaded.
    pub fn add_counts(&mut self, other: &Fetched) {
        self.blobs += other.blobs;
        self.bytes += other.bytes;
    }

    fn add(&mut self, other: Fetched) {
        self.hits.extend(other.hits);
        self.warnings.extend(other.warnings);
        self.blobs += other.blobs;
        self.bytes += other.bytes;
    }
}

/// Where entries built elsewhere are kept.
pub trait RemoteCache: Sync {
    /// Brings into `store` the entries of those `keys` the remote has, all in one batch;
    /// each is verified as the store verifies its own before it is an action there.
    fn fetch(&self, store: &Store, keys: &[TaskKey]) -> Fetched;
    /// Brings into `store`, for each `(local, shared)` restore id, the entry the remote
    /// names as the restore state of `shared`, and records it as that of `local`.
    fn fetch_restore(&self, store: &Store, ids: &[(TaskKey, TaskKey)]) -> Fetched;
}

/// What [`prefetch`] did.
#[derive(Debug, Default, Clone)]
pub struct Prefetched {
    /// What the remote gave.
    pub fetched: Fetched,
    /// The keys asked of the remote (so [`WithRemote`] does not ask again).
    pub asked: HashSet<TaskKey>,
    /// Batches asked.
    pub rounds: usize,
}

/// Fetches from `remote` every entry the tasks of `services` (indexes in `plan.services`)
/// can be keyed for now, round by round, and the restore state of each opaque buildpack
/// that will run. `outputs` reads an entry's output digest from the store;
/// `restore_ids(service, buildpack id)` gives the local and shared restore ids.
pub fn prefetch(
    plan: &Plan,
    services: &[usize],
    store: &Store,
    remote: &dyn RemoteCache,
    outputs: &dyn Lookup,
    restore_ids: &dyn Fn(usize, &str) -> (TaskKey, TaskKey),
) -> Prefetched {
    let mut done = Prefetched::default();
    let mut seen = HashSet::new();
    let mut pending: Vec<NodeIndex> = services
        .iter()
        .flat_map(|s| plan.services[*s].tasks.iter().copied())
        .filter(|n| stored_kind(&plan.graph[*n]) && seen.insert(*n))
        .collect();
    let mut known: std::collections::HashMap<NodeIndex, TaskKey> = std::collections::HashMap::new();
    loop {
        let (ready, rest): (Vec<NodeIndex>, Vec<NodeIndex>) = pending
            .into_iter()
            .partition(|n| plan.needs(*n).all(|m| known.contains_key(&m)));
        pending = rest;
        if ready.is_empty() {
            break;
        }
        let keyed: Vec<(NodeIndex, TaskKey)> = ready
            .into_iter()
            .filter_map(|n| Some((n, plan.action_key(n, &|m| known.get(&m).copied())?)))
            .collect();
        let mut wanted: Vec<TaskKey> = keyed
            .iter()
            .map(|(_, key)| *key)
            .filter(|key| !store.has_action(key) && done.asked.insert(*key))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        if !wanted.is_empty() {
            done.rounds += 1;
            done.fetched.add(remote.fetch(store, &wanted));
        }
        for (node, key) in keyed {
            if let Some(output) = outputs.output(&key) {
                known.insert(node, output);
            }
        }
    }
    // Restore state, for the opaque buildpacks that will run (those not known to be hits).
    let mut ids: Vec<(TaskKey, TaskKey)> = Vec::new();
    for service in services {
        for node in &plan.services[*service].tasks {
            if let TaskKind::Buildpack { buildpack, .. } = &plan.graph[*node].kind
                && !known.contains_key(node)
            {
                let (local, shared) = restore_ids(*service, buildpack.id().as_str());
                // A ref to an entry this store no longer has (or only had promised, in an
                // earlier build) is none.
                let here = store
                    .get_restore(&local)
                    .is_some_and(|key| store.has_action(&key));
                if !here && !ids.contains(&(local, shared)) {
                    ids.push((local, shared));
                }
            }
        }
    }
    if !ids.is_empty() {
        done.rounds += 1;
        done.fetched.add(remote.fetch_restore(store, &ids));
    }
    done
}

/// Whether `task` has an entry in the store of its own (the app and image tasks are the
/// exporter's, made from the others).
fn stored_kind(task: &Task) -> bool {
    matches!(
        task.kind,
        TaskKind::Layer { .. } | TaskKind::Buildpack { .. }
    )
}

/// A [`TaskCache`] that asks a remote for a key the local cache misses (once per key), then
/// answers from the local cache.
pub struct WithRemote<'a> {
    local: &'a dyn TaskCache,
    remote: &'a dyn RemoteCache,
    store: &'a Store,
    asked: Mutex<HashSet<TaskKey>>,
    fetched: Mutex<Fetched>,
}

impl<'a> WithRemote<'a> {
    /// `local` first, then `remote` into `store`; the keys in `asked` are known misses.
    pub fn new(
        local: &'a dyn TaskCache,
        remote: &'a dyn RemoteCache,
        store: &'a Store,
        asked: HashSet<TaskKey>,
    ) -> Self {
        Self {
            local,
            remote,
            store,
            asked: Mutex::new(asked),
            fetched: Mutex::new(Fetched::default()),
        }
    }

    /// What the remote gave while the build ran.
    pub fn fetched(self) -> Fetched {
        self.fetched
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl TaskCache for WithRemote<'_> {
    fn probe(&self, req: &BuildRequest<'_>, task: &Task, key: &TaskKey) -> Option<TaskOutput> {
        if let Some(output) = self.local.probe(req, task, key) {
            return Some(output);
        }
        let first = self
            .asked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(*key);
        if !stored_kind(task) || !first {
            return None;
        }
        let fetched = self.remote.fetch(self.store, &[*key]);
        let hit = !fetched.hits.is_empty();
        self.fetched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(fetched);
        if hit {
            self.local.probe(req, task, key)
        } else {
            None
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
        self.local.ensure(req, task, key, output, purpose)
    }

    fn restore(
        &self,
        req: &BuildRequest<'_>,
        task: &Task,
        state: &TaskKey,
    ) -> Result<Vec<Layer>, BuildError> {
        self.local.restore(req, task, state)
    }

    fn keep(&self, task: &Task, key: &TaskKey, state: &TaskKey) -> Result<(), BuildError> {
        self.local.keep(task, key, state)
    }

    fn save(
        &self,
        req: &BuildRequest<'_>,
        task: &Task,
        key: &TaskKey,
        output: TaskOutput,
        change: Option<&Change>,
    ) -> Result<TaskOutput, BuildError> {
        self.local.save(req, task, key, output, change)
    }
}
