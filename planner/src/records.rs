//! Why a task will run: what each task read the last time it was built, kept per task
//! identity (service and task id), so a plan can name the change that gave a task a new key.
//!
//! A record holds the task's last key, the action key its output was stored under and that
//! output's digest, its buildpack's digest, the digest of every input file, the env it read
//! and the output digests of the tasks it needed. A task whose action key has no output in the
//! store gets the first difference found, in that order: `buildpack changed`, `input changed:
//! PATH`, `env changed: NAME`, `bindings changed` (only their digest is recorded, never their
//! content), `needs rebuilt: TASK` (the first needed task whose output changed); with no
//! record (or no difference) it is `new`.
//!
//! Statuses go in dependency order. A task whose key is the one last built, and whose last
//! action key is still in the store, is cached without reading anything more: a no-change plan
//! costs a file check per task, as before early cutoff. Otherwise its action key is made from
//! the output digests of the tasks it needs, when they are all known (cached); when one of them
//! will run and nothing of its own changed, the task *may run*: it is cut off if that task
//! comes out unchanged. A service's records are one JSON file, written atomically after a build of it
//! succeeded; a missing or unreadable one only makes the reasons `new`.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use petgraph::graph::NodeIndex;

use crate::key::{KeyHasher, TaskKey};
use crate::sources::SourceTree;
use crate::{Plan, Reason, Status, TaskKind};

/// What a task read when it was last built.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct TaskRecord {
    key: TaskKey,
    /// The key its output was stored under, and that output's digest.
    #[serde(default)]
    action: Option<TaskKey>,
    #[serde(default)]
    output: Option<TaskKey>,
    buildpack: Option<TaskKey>,
    inputs: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    /// The digest of the bindings it saw (records written before bindings have none).
    #[serde(default)]
    bindings: Option<TaskKey>,
    needs: BTreeMap<String, TaskKey>,
}

/// What a task's status needs of its record when its key is the one last built: everything
/// but what it read and the env it saw, which only name the reason a task runs. A no-change
/// plan reads only this: the input digests are most of a record's bytes (an app task lists
/// every app file), and skipping them parses without allocating them.
#[derive(Debug, serde::Deserialize)]
struct Summary {
    key: TaskKey,
    #[serde(default)]
    action: Option<TaskKey>,
    #[serde(default)]
    output: Option<TaskKey>,
    needs: BTreeMap<String, TaskKey>,
}

/// What the store has, as statuses need it.
pub trait Lookup {
    /// Whether the store has an output under the action key `action`.
    fn has(&self, action: &TaskKey) -> bool;
    /// The digest of the output stored under `action`, if any.
    fn output(&self, action: &TaskKey) -> Option<TaskKey>;
}

/// The records of one cache directory.
#[derive(Debug)]
pub struct Records {
    dir: PathBuf,
}

impl Records {
    /// The records under `cache_dir/records`.
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            dir: cache_dir.join("records"),
        }
    }

    /// The file of `service`'s records: one per service, task records by task id.
    fn path(&self, service: &str) -> PathBuf {
        let mut h = KeyHasher::new("record/service");
        h.str(service);
        let key = h.finish().hex();
        self.dir.join(&key[..2]).join(format!("{key}.json"))
    }

    /// The bytes of `service`'s records file; empty when missing or unreadable.
    fn read(&self, service: &str) -> Vec<u8> {
        std::fs::read(self.path(service)).unwrap_or_default()
    }

    fn record(
        plan: &Plan,
        node: NodeIndex,
        app: &SourceTree,
        digests: &BTreeMap<String, TaskKey>,
        outputs: &dyn Fn(NodeIndex) -> Option<(TaskKey, TaskKey)>,
    ) -> TaskRecord {
        let task = &plan.graph[node];
        let done = outputs(node);
        TaskRecord {
            key: task.key,
            action: done.map(|(action, _)| action),
            output: done.map(|(_, output)| output),
            buildpack: task
                .buildpack()
                .and_then(|bp| digests.get(&bp.reference()).copied()),
            inputs: task
                .inputs
                .iter()
                .filter_map(|p| app.get(p).map(|f| (p.clone(), hex::encode(f.digest))))
                .collect(),
            env: task.env.clone(),
            bindings: task.bindings,
            needs: plan
                .needs(node)
                .filter_map(|n| Some((plan.graph[n].id.clone(), outputs(n)?.1)))
                .collect(),
        }
    }

    /// Sets each task of `service`'s status: `Cached` when `store` has its output, else
    /// `WillRun` with the reason its record gives, or `MayRun` when only a task it needs will
    /// run.
    pub fn explain(
        &self,
        plan: &mut Plan,
        service: usize,
        app: &SourceTree,
        digests: &BTreeMap<String, TaskKey>,
        store: &dyn Lookup,
    ) {
        let cached = |action: &TaskKey| store.has(action);
        let output = |action: &TaskKey| store.output(action);
        let bytes = self.read(&plan.services[service].name);
        // Records by task id, none when unreadable: the summaries first, the whole records
        // (what each task read) only for a task whose key changed.
        let summaries: BTreeMap<String, Summary> =
            serde_json::from_slice(&bytes).unwrap_or_default();
        let records: OnceCell<BTreeMap<String, TaskRecord>> = OnceCell::new();
        let full = |id: &str| {
            records
                .get_or_init(|| serde_json::from_slice(&bytes).unwrap_or_default())
                .get(id)
        };
        // The output digest of each task known to be cached: what its dependents' keys use.
        let mut known: HashMap<NodeIndex, (TaskKey, TaskKey)> = HashMap::new();
        for node in plan.services[service].tasks.clone() {
            let task = &plan.graph[node];
            let before = summaries.get(&task.id);
            // The app layer and the image are made at export, from stored parts: they count as
            // cached when their action key is the one last built.
            let exported = matches!(task.kind, TaskKind::App | TaskKind::Image);
            let last = before
                .and_then(|b| Some((b.action?, b.output?)))
                .filter(|(action, _)| exported || cached(action));
            let outputs = |n: NodeIndex| known.get(&n).copied();
            let hit = match last {
                Some(last) if before.is_some_and(|b| b.key == task.key) => Some(last),
                _ => plan
                    .action_key(node, &|n| outputs(n).map(|(_, o)| o))
                    .and_then(|action| {
                        if exported {
                            last.filter(|(a, _)| *a == action)
                        } else if cached(&action) {
                            Some((action, output(&action)?))
                        } else {
                            None
                        }
                    }),
            };
            let status = if let Some(hit) = hit {
                known.insert(node, hit);
                Status::Cached
            } else {
                let now = Self::record(plan, node, app, digests, &outputs);
                let unknown = plan
                    .needs(node)
                    .filter(|n| !known.contains_key(n))
                    .map(|n| plan.graph[n].id.clone())
                    .min();
                let reason = before.and_then(|_| full(&task.id)).map(|b| reason(b, &now));
                match (reason, unknown) {
                    (None, _) => Status::WillRun(Reason::New),
                    // Nothing it reads changed but what a task yet to run will make: that
                    // task's output decides (a known one that changed is a reason already).
                    (Some(Reason::New), Some(unknown)) => {
                        Status::MayRun(Reason::NeedsRebuilt(unknown))
                    }
                    (Some(reason), _) => Status::WillRun(reason),
                }
            };
            let previous = before.map(|b| b.needs.clone()).unwrap_or_default();
            let last_action = before.and_then(|b| b.action);
            let task = &mut plan.graph[node];
            task.status = status;
            task.previous = previous;
            task.last_action = last_action;
        }
    }

    /// Writes the records of `service`'s tasks, after a build of it succeeded.
    /// `outputs(node)` is the action key and output digest a task's build ended with.
    pub fn save(
        &self,
        plan: &Plan,
        service: usize,
        app: &SourceTree,
        digests: &BTreeMap<String, TaskKey>,
        outputs: &dyn Fn(NodeIndex) -> Option<(TaskKey, TaskKey)>,
    ) -> std::io::Result<()> {
        let records: BTreeMap<&str, TaskRecord> = plan.services[service]
            .tasks
            .iter()
            .map(|node| {
                let record = Self::record(plan, *node, app, digests, outputs);
                (plan.graph[*node].id.as_str(), record)
            })
            .collect();
        let path = self.path(&plan.services[service].name);
        let dir = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        // One write: the record of an app task lists every app file.
        let bytes = serde_json::to_vec(&records).map_err(std::io::Error::other)?;
        std::io::Write::write_all(&mut tmp, &bytes)?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// The first difference between what a task read before and now.
fn reason(before: &TaskRecord, now: &TaskRecord) -> Reason {
    if before.buildpack != now.buildpack {
        return Reason::BuildpackChanged;
    }
    let paths = before.inputs.keys().chain(now.inputs.keys());
    if let Some(path) = paths
        .into_iter()
        .find(|p| before.inputs.get(*p) != now.inputs.get(*p))
    {
        return Reason::InputChanged(path.clone());
    }
    let names = before.env.keys().chain(now.env.keys());
    if let Some(name) = names
        .into_iter()
        .find(|n| before.env.get(*n) != now.env.get(*n))
    {
        return Reason::EnvChanged(name.clone());
    }
    if before.bindings != now.bindings {
        return Reason::BindingsChanged;
    }
    match now
        .needs
        .iter()
        .find(|(id, key)| before.needs.get(*id) != Some(key))
    {
        Some((id, _)) => Reason::NeedsRebuilt(id.clone()),
        None => Reason::New,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(inputs: &[(&str, &str)], env: &[(&str, &str)], needs: &[(&str, u8)]) -> TaskRecord {
        TaskRecord {
            key: TaskKey::from_bytes([0; 32]),
            action: None,
            output: None,
            buildpack: Some(TaskKey::from_bytes([1; 32])),
            inputs: inputs
                .iter()
                .map(|(p, d)| ((*p).to_owned(), (*d).to_owned()))
                .collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            bindings: None,
            needs: needs
                .iter()
                .map(|(id, k)| ((*id).to_owned(), TaskKey::from_bytes([*k; 32])))
                .collect(),
        }
    }

    #[test]
    fn reasons_name_the_first_difference() {
        let base = record(
            &[("a.lock", "1"), ("b", "2")],
            &[("MODE", "dev")],
            &[("bp:runtime", 7)],
        );
        assert_eq!(reason(&base, &base), Reason::New);
        let input = record(
            &[("a.lock", "9"), ("b", "2")],
            &[("MODE", "dev")],
            &[("bp:runtime", 7)],
        );
        assert_eq!(reason(&base, &input), Reason::InputChanged("a.lock".into()));
        let added = record(
            &[("a.lock", "1"), ("b", "2"), ("c", "3")],
            &[("MODE", "dev")],
            &[("bp:runtime", 7)],
        );
        assert_eq!(reason(&base, &added), Reason::InputChanged("c".into()));
        let env = record(
            &[("a.lock", "1"), ("b", "2")],
            &[("MODE", "prod")],
            &[("bp:runtime", 7)],
        );
        assert_eq!(reason(&base, &env), Reason::EnvChanged("MODE".into()));
        let need = record(
            &[("a.lock", "1"), ("b", "2")],
            &[("MODE", "dev")],
            &[("bp:runtime", 8)],
        );
        assert_eq!(
            reason(&base, &need),
            Reason::NeedsRebuilt("bp:runtime".into())
        );
        let mut bound = base.clone();
        bound.bindings = Some(TaskKey::from_bytes([3; 32]));
        assert_eq!(reason(&base, &bound), Reason::BindingsChanged);
        let mut bp = base.clone();
        bp.buildpack = Some(TaskKey::from_bytes([2; 32]));
        assert_eq!(reason(&base, &bp), Reason::BuildpackChanged);
    }
}
