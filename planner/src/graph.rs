//! The plan: a DAG of tasks, each keyed by a hash of everything it reads.
//!
//! Node kinds:
//! - `Layer`: one declared layer of a buildpack (`[[metadata.strata.layers]]`). It reads the
//!   app files its `inputs` globs match, the env variables it names, and the layers it `needs`.
//! - `Buildpack`: an opaque CNB `bin/build`. strata cannot see what it reads, so it depends on
//!   every task of the buildpacks before it in the group and reads the whole app (or the
//!   `[metadata.strata] inputs` it declares), the whole user env and the service bindings
//!   (their digest: it can read them).
//! - `App`: the app layer, `/workspace` after the build: the app's files and every opaque
//!   buildpack before it (they may change the app).
//! - `Image`: one per service, depending on all of that service's tasks.
//!
//! Edges point from a task to the tasks that need it. A task's [`TaskKey`] covers its kind,
//! its buildpack's id, version and content digest, its definition, its input files (path,
//! mode, digest, in path order), its env, the keys of the tasks it needs (sorted), the build
//! image and the target. That key names the task in a plan (equal keys are one node, and an
//! image key last exported says the service is up to date). The store keeps its output under
//! its *action key* ([`Plan::action_key`]): the same definition ([`Task::own`]) with the
//! output digest of each task it needs instead of that task's key, so that a need rebuilt to
//! the same output leaves the task cached (early cutoff). It is known once those tasks are
//! done, which for a need that runs in this build is when the executor gets to the task. Of the env a process gets beyond that, the build image's and what
//! strata sets are covered by the build image and the key schema; `HOSTNAME` and the proxy
//! variables are left out on purpose (they say how to reach the network, not what to build,
//! and would make every machine's cache its own). Declared layers with equal keys are one node, so a layer that many
//! services would build the same way is built once. Opaque buildpacks and the app layer are
//! per service even when their keys are equal: they change and read that service's own copy
//! of the app. Their equal keys still share one entry in the store.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::key::{CacheKey, KeyHasher, TaskKey};
use crate::sources::{SourceFile, SourceTree, glob_set};
use crate::{Buildpack, BuildpackPlan, DeclaredLayer, DetectResult, TomlError};

/// What a task does.
#[derive(Debug, Clone)]
pub enum TaskKind {
    /// A declared layer: `buildpack`'s `[[metadata.strata.layers]]` called `layer`.
    Layer {
        /// The buildpack.
        buildpack: Arc<Buildpack>,
        /// The layer's name.
        layer: String,
    },
    /// An opaque CNB `bin/build`, with the Buildpack Plan it receives.
    Buildpack {
        /// The buildpack.
        buildpack: Arc<Buildpack>,
        /// Its Buildpack Plan.
        plan: BuildpackPlan,
    },
    /// The app layer.
    App,
    /// A service's image.
    Image,
}

/// Why a task will run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", content = "detail", rename_all = "kebab-case")]
pub enum Reason {
    /// Never built before.
    New,
    /// An input file changed (added, removed, or different content or mode).
    InputChanged(String),
    /// A task it needs will be rebuilt.
    NeedsRebuilt(String),
    /// The buildpack's files changed.
    BuildpackChanged,
    /// An env variable it reads changed.
    EnvChanged(String),
    /// The service bindings it sees changed (added, removed, or different content).
    BindingsChanged,
    /// The user asked for it.
    Forced,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::New => f.write_str("new"),
            Reason::InputChanged(path) => write!(f, "input changed: {path}"),
            Reason::NeedsRebuilt(task) => write!(f, "needs rebuilt: {task}"),
            Reason::BuildpackChanged => f.write_str("buildpack changed"),
            Reason::EnvChanged(name) => write!(f, "env changed: {name}"),
            Reason::BindingsChanged => f.write_str("bindings changed"),
            Reason::Forced => f.write_str("forced"),
        }
    }
}

/// Whether a task must run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Its output is in the store.
    Cached,
    /// It will run, and why.
    WillRun(Reason),
    /// Nothing of its own changed, but a task it needs will run (the reason names the first):
    /// it runs only if that task's output comes out different (early cutoff).
    MayRun(Reason),
}

impl Status {
    /// Whether it may be answered by the store once the tasks it needs are done.
    pub fn cut_off(&self) -> bool {
        matches!(self, Status::MayRun(_))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Cached => f.write_str("cached"),
            Status::WillRun(reason) => write!(f, "will run: {reason}"),
            Status::MayRun(reason @ Reason::NeedsRebuilt(task)) => {
                write!(f, "may run: {reason} (cut off if {task} is unchanged)")
            }
            Status::MayRun(reason) => write!(f, "may run: {reason}"),
        }
    }
}

/// One node of the plan.
#[derive(Debug, Clone)]
pub struct Task {
    /// What it does.
    pub kind: TaskKind,
    /// Its key.
    pub key: TaskKey,
    /// How people name it: `examples/node:runtime`, `examples/procfile (bin/build)`, `app`,
    /// `image`.
    pub id: String,
    /// The services it belongs to.
    pub services: Vec<String>,
    /// The app files it reads, by relative path.
    pub inputs: Vec<String>,
    /// The env variables it reads, with their values.
    pub env: BTreeMap<String, String>,
    /// The digest of the service bindings it sees, if any (never their content).
    pub bindings: Option<TaskKey>,
    /// The key of its own definition, without the tasks it needs: with their output digests
    /// it makes its action key ([`Plan::action_key`]), under which the store keeps its output.
    pub own: TaskKey,
    /// The output digest of each task it needed when it was last built, by task id (empty
    /// when unknown): what a reason is computed against once those tasks are done.
    pub previous: BTreeMap<String, TaskKey>,
    /// Its action key when it was last built, if known.
    pub last_action: Option<TaskKey>,
    /// Whether it will run.
    pub status: Status,
}

impl Task {
    /// The buildpack it belongs to, if any.
    pub fn buildpack(&self) -> Option<&Arc<Buildpack>> {
        match &self.kind {
            TaskKind::Layer { buildpack, .. } | TaskKind::Buildpack { buildpack, .. } => {
                Some(buildpack)
            }
            TaskKind::App | TaskKind::Image => None,
        }
    }

    /// The declared layer, for a `Layer` task.
    pub fn declared_layer(&self) -> Option<&DeclaredLayer> {
        match &self.kind {
            TaskKind::Layer { buildpack, layer } => {
                buildpack.descriptor.strata.as_ref()?.layer(layer)
            }
            _ => None,
        }
    }
}

/// One service in the plan.
#[derive(Debug, Clone)]
pub struct ServicePlan {
    /// Its name.
    pub name: String,
    /// The group detection chose.
    pub group: DetectResult,
    /// Its tasks, in an order where every task comes after the tasks it needs; the image
    /// task last.
    pub tasks: Vec<NodeIndex>,
}

/// The whole plan.
#[derive(Debug, Default)]
pub struct Plan {
    /// The DAG; edges point from a task to the tasks that need it.
    pub graph: DiGraph<Task, ()>,
    /// The services, in the order they were added.
    pub services: Vec<ServicePlan>,
    by_key: HashMap<TaskKey, NodeIndex>,
}

/// What the plan of one service is made from.
#[derive(Debug)]
pub struct ServiceInput<'a> {
    /// The service's name.
    pub name: &'a str,
    /// The group detection chose.
    pub group: &'a DetectResult,
    /// The app's files (after `project.toml` include/exclude).
    pub app: &'a SourceTree,
    /// The content digest of each buildpack directory, by `id@version`.
    pub buildpack_digests: &'a BTreeMap<String, TaskKey>,
    /// The user env.
    pub env: &'a [(String, String)],
    /// The digest of the service bindings opaque buildpacks see ([`crate::bindings_digest`]),
    /// `None` without bindings.
    pub bindings: Option<TaskKey>,
    /// The build environment (a build image reference, or `host`).
    pub build_image: &'a str,
    /// The target platform, `os/arch[/variant]`.
    pub target: &'a str,
    /// What the image is exported onto and how (run image digest, compression, time).
    pub export: &'a str,
    /// The execution environment the build is for (see [`crate::exec_env`]).
    pub exec_env: &'a str,
}

/// Feeds the app files selected links lead to, as (link, target), into a key: nothing when
/// there are none, so keys of tasks without links stay as they were.
fn link_targets_key(h: &mut KeyHasher, targets: &[(&str, &SourceFile)]) {
    if targets.is_empty() {
        return;
    }
    h.field("link-targets");
    for (link, target) in targets {
        h.str(link);
        target.cache_key(h);
    }
}

/// A [`SourceFile`]'s mode when it is a symlink.
const SYMLINK_MODE: u32 = 0o120_000;

/// The plan could not be built.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    /// A `needs` names a buildpack or layer that is not in the group.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Needs(Box<TomlError>),
    /// Layers of several buildpacks need each other in a cycle.
    #[error("layers need each other in a cycle: {}", cycle.join(" -> "))]
    Cycle {
        /// The tasks of the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
    /// An `inputs` glob is invalid.
    #[error("buildpack {buildpack}: {message}")]
    Glob {
        /// The buildpack.
        buildpack: String,
        /// What is wrong.
        message: String,
    },
    /// A declared layer's input is a symlink it cannot read: one that leads outside the app,
    /// nowhere, or to a directory.
    #[error("layer {layer}: input {message}")]
    Input {
        /// `id@version:layer`.
        layer: String,
        /// What is wrong.
        message: String,
    },
    /// A buildpack's content digest is missing from the input.
    #[error("no content digest for buildpack {0}")]
    MissingDigest(String),
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every task in an order where each comes after the tasks it needs.
    pub fn order(&self) -> Vec<NodeIndex> {
        petgraph::algo::toposort(&self.graph, None).unwrap_or_default()
    }

    /// The tasks `node` needs.
    pub fn needs(&self, node: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        self.graph.neighbors_directed(node, Direction::Incoming)
    }

    /// Adds one service's tasks; tasks equal to ones already planned are shared.
    pub fn add_service(&mut self, input: &ServiceInput<'_>) -> Result<(), PlanError> {
        let mut tasks: Vec<NodeIndex> = Vec::new();
        // Every task of the buildpacks so far, and the opaque ones (which change the app).
        let mut before: Vec<NodeIndex> = Vec::new();
        let mut opaque: Vec<NodeIndex> = Vec::new();
        let mut layer_nodes: BTreeMap<(String, String), NodeIndex> = BTreeMap::new();

        for member in &input.group.group {
            let bp = &member.buildpack;
            let digest = *input
                .buildpack_digests
                .get(&bp.reference())
                .ok_or_else(|| PlanError::MissingDigest(bp.reference()))?;
            // Declared layers when there are any; a buildpack with `[metadata.strata]` and no
            // `bin/build` (processes only, say) is declared too, with no task of its own.
            let declared =
                bp.descriptor.strata.as_ref().filter(|s| {
                    !s.layers.is_empty() || !bp.dir.join("bin").join("build").is_file()
                });
            let mut this_bp = Vec::new();
            if let Some(strata) = declared {
                for layer in layers_in_need_order(&strata.layers) {
                    let needs = Self::resolve_needs(input, bp, layer, &layer_nodes)?;
                    let node = self.add_layer(input, bp, digest, layer, &needs)?;
                    layer_nodes.insert((bp.id().to_string(), layer.name.clone()), node);
                    this_bp.push(node);
                }
            } else {
                let node = self.add_buildpack(input, bp, digest, &member.plan, &before)?;
                opaque.push(node);
                this_bp.push(node);
            }
            before.extend(&this_bp);
            tasks.extend(this_bp);
        }
        let app = self.add_app(input, &opaque);
        tasks.push(app);
        let image = self.add_image(input, &tasks);
        tasks.push(image);
        if let Err(cycle) = petgraph::algo::toposort(&self.graph, None) {
            let id = self.graph[cycle.node_id()].id.clone();
            return Err(PlanError::Cycle {
                cycle: vec![id.clone(), id],
            });
        }
        self.services.push(ServicePlan {
            name: input.name.to_owned(),
            group: input.group.clone(),
            tasks,
        });
        Ok(())
    }

    /// The nodes of the layers `layer` needs.
    fn resolve_needs(
        input: &ServiceInput<'_>,
        bp: &Arc<Buildpack>,
        layer: &DeclaredLayer,
        planned: &BTreeMap<(String, String), NodeIndex>,
    ) -> Result<Vec<NodeIndex>, PlanError> {
        let strata = bp.descriptor.strata.as_ref();
        let mut out = Vec::new();
        for need in &layer.needs {
            let owner = need.buildpack.clone().unwrap_or_else(|| bp.id().clone());
            let error = |message: String| {
                PlanError::Needs(Box::new(strata.map_or_else(
                    || TomlError::new(&bp.dir, "", None, message.clone()),
                    |s| s.error_at(Some(need.span.clone()), message.clone()),
                )))
            };
            let Some(member) = input
                .group
                .group
                .iter()
                .find(|m| *m.buildpack.id() == owner)
            else {
                let group: Vec<String> = input
                    .group
                    .group
                    .iter()
                    .map(|m| m.buildpack.reference())
                    .collect();
                return Err(error(format!(
                    "layer `{}` needs `{need}`, but buildpack {owner} is not in the group ({})",
                    layer.name,
                    group.join(", ")
                )));
            };
            let Some(declared) = member
                .buildpack
                .descriptor
                .strata
                .as_ref()
                .and_then(|s| s.layer(&need.layer))
            else {
                return Err(error(format!(
                    "layer `{}` needs `{need}`, but buildpack {owner} declares no layer `{}`",
                    layer.name, need.layer
                )));
            };
            match planned.get(&(owner.to_string(), declared.name.clone())) {
                Some(node) => out.push(*node),
                None => {
                    return Err(error(format!(
                        "layer `{}` needs `{need}`, which comes later in the group: a layer can only need layers of its own or earlier buildpacks",
                        layer.name
                    )));
                }
            }
        }
        Ok(out)
    }

    fn add_layer(
        &mut self,
        input: &ServiceInput<'_>,
        bp: &Arc<Buildpack>,
        digest: TaskKey,
        layer: &DeclaredLayer,
        needs: &[NodeIndex],
    ) -> Result<NodeIndex, PlanError> {
        let globs = glob_set(&layer.inputs).map_err(|e| PlanError::Glob {
            buildpack: bp.reference(),
            message: e.to_string(),
        })?;
        let files: Vec<&SourceFile> = if layer.inputs.is_empty() {
            Vec::new()
        } else {
            input.app.select(&globs).collect()
        };
        let env: BTreeMap<String, String> = layer
            .env
            .iter()
            .filter_map(|name| lookup(input.env, name).map(|v| (name.clone(), v.to_owned())))
            .collect();
        let mut h = KeyHasher::new("task/layer");
        common_key(&mut h, input, bp, digest);
        h.field("layer").str(&layer.name).str(&layer.run);
        h.field("types")
            .bool(layer.launch)
            .bool(layer.build)
            .bool(layer.cache);
        // Only when asked for, so that the keys of layers without network stay as they were.
        if layer.network {
            h.field("network").bool(true);
        }
        h.field("globs")
            .sorted_strs(layer.inputs.iter().map(String::as_str));
        h.field("env-names")
            .sorted_strs(layer.env.iter().map(String::as_str));
        h.field("env");
        env_key(&mut h, &env);
        h.field("files").list(&files);
        // The script reads a link input's target through it (the engine mounts the target at
        // the link's path), so the key covers the target's content too.
        let mut targets = Vec::new();
        for file in files.iter().filter(|f| f.mode == SYMLINK_MODE) {
            let target = input
                .app
                .link_target(&file.path)
                .map_err(|message| PlanError::Input {
                    layer: format!("{}:{}", bp.reference(), layer.name),
                    message,
                })?;
            targets.push((file.path.as_str(), target));
        }
        link_targets_key(&mut h, &targets);
        let own = h.finish();
        self.needs_key(&mut h, needs);
        let task = Task {
            own,
            previous: BTreeMap::new(),
            last_action: None,
            kind: TaskKind::Layer {
                buildpack: Arc::clone(bp),
                layer: layer.name.clone(),
            },
            key: h.finish(),
            id: format!("{}:{}", bp.id(), layer.name),
            services: Vec::new(),
            inputs: files.iter().map(|f| f.path.clone()).collect(),
            env,
            bindings: None,
            status: Status::WillRun(Reason::New),
        };
        Ok(self.insert(input.name, task, needs, Sharing::Shared))
    }

    fn add_buildpack(
        &mut self,
        input: &ServiceInput<'_>,
        bp: &Arc<Buildpack>,
        digest: TaskKey,
        plan: &BuildpackPlan,
        before: &[NodeIndex],
    ) -> Result<NodeIndex, PlanError> {
        let declared_inputs = bp.descriptor.strata.as_ref().and_then(|s| s.inputs.clone());
        let files: Vec<&SourceFile> = match &declared_inputs {
            Some(globs) => {
                let set = glob_set(globs).map_err(|e| PlanError::Glob {
                    buildpack: bp.reference(),
                    message: e.to_string(),
                })?;
                // `select`, without tying the files' lifetime to the glob set's.
                let app = input.app;
                app.files.iter().filter(|f| set.is_match(&f.path)).collect()
            }
            None => input.app.files.iter().collect(),
        };
        let env: BTreeMap<String, String> = input.env.iter().cloned().collect();
        let mut h = KeyHasher::new("task/buildpack");
        common_key(&mut h, input, bp, digest);
        h.field("plan")
            .str(&toml::to_string(plan).unwrap_or_default());
        h.field("env");
        env_key(&mut h, &env);
        // Only with bindings, so that the keys of builds without them stay as they were.
        if let Some(bindings) = &input.bindings {
            h.field("bindings").key(bindings);
        }
        h.field("files").list(&files);
        if declared_inputs.is_some() {
            // The buildpack reads a selected link's target through it; a target in the app
            // is then part of what it reads (one outside is not in its sandbox).
            let targets: Vec<(&str, &SourceFile)> = files
                .iter()
                .filter(|f| f.mode == SYMLINK_MODE)
                .filter_map(|f| Some((f.path.as_str(), input.app.link_target(&f.path).ok()?)))
                .collect();
            link_targets_key(&mut h, &targets);
        }
        let own = h.finish();
        self.needs_key(&mut h, before);
        let task = Task {
            own,
            previous: BTreeMap::new(),
            last_action: None,
            kind: TaskKind::Buildpack {
                buildpack: Arc::clone(bp),
                plan: plan.clone(),
            },
            key: h.finish(),
            id: format!("{} (bin/build)", bp.id()),
            services: Vec::new(),
            inputs: files.iter().map(|f| f.path.clone()).collect(),
            env,
            bindings: input.bindings,
            status: Status::WillRun(Reason::New),
        };
        Ok(self.insert(input.name, task, before, Sharing::PerService))
    }

    fn add_app(&mut self, input: &ServiceInput<'_>, opaque: &[NodeIndex]) -> NodeIndex {
        let mut h = KeyHasher::new("task/app");
        h.field("files").list(&input.app.files);
        let own = h.finish();
        self.needs_key(&mut h, opaque);
        let task = Task {
            own,
            previous: BTreeMap::new(),
            last_action: None,
            kind: TaskKind::App,
            key: h.finish(),
            id: "app".to_owned(),
            services: Vec::new(),
            inputs: input.app.files.iter().map(|f| f.path.clone()).collect(),
            env: BTreeMap::new(),
            bindings: None,
            status: Status::WillRun(Reason::New),
        };
        self.insert(input.name, task, opaque, Sharing::PerService)
    }

    fn add_image(&mut self, input: &ServiceInput<'_>, tasks: &[NodeIndex]) -> NodeIndex {
        let mut h = KeyHasher::new("task/image");
        h.field("service").str(input.name);
        h.field("export").str(input.export);
        h.field("target").str(input.target);
        exec_env_key(&mut h, input);
        h.field("group");
        for member in &input.group.group {
            h.str(&member.buildpack.reference());
        }
        // A declared buildpack's processes go into the image from its `buildpack.toml`, not
        // from a task's output.
        h.field("processes");
        for member in &input.group.group {
            let strata = member.buildpack.descriptor.strata.as_ref();
            let processes = strata.map(|s| s.processes.as_slice()).unwrap_or_default();
            h.u64(processes.len() as u64);
            for p in processes {
                h.str(&p.kind)
                    .list(&p.command)
                    .list(&p.args)
                    .bool(p.default);
                h.value(&p.working_dir).list(&p.exec_env);
            }
        }
        let own = h.finish();
        // Layer order in the image follows the group, so the keys go in task order here.
        h.field("tasks").u64(tasks.len() as u64);
        for node in tasks {
            h.key(&self.graph[*node].key);
        }
        let task = Task {
            own,
            previous: BTreeMap::new(),
            last_action: None,
            kind: TaskKind::Image,
            key: h.finish(),
            id: "image".to_owned(),
            services: Vec::new(),
            inputs: Vec::new(),
            env: BTreeMap::new(),
            bindings: None,
            status: Status::WillRun(Reason::New),
        };
        self.insert(input.name, task, tasks, Sharing::PerService)
    }

    /// The key the store keeps `node`'s output under: its own definition and the output
    /// digest of each task it needs (by task id), so that a need rebuilt to the same output
    /// leaves it cached. `None` while the output of a task it needs is not known.
    pub fn action_key(
        &self,
        node: NodeIndex,
        output: &dyn Fn(NodeIndex) -> Option<TaskKey>,
    ) -> Option<TaskKey> {
        let mut needs: Vec<(&str, TaskKey)> = Vec::new();
        for need in self.needs(node) {
            needs.push((self.graph[need].id.as_str(), output(need)?));
        }
        needs.sort_unstable();
        needs.dedup();
        let mut h = KeyHasher::new("task/action");
        h.field("own").key(&self.graph[node].own);
        h.field("needs").u64(needs.len() as u64);
        for (id, digest) in needs {
            h.str(id).key(&digest);
        }
        Some(h.finish())
    }

    fn needs_key(&self, h: &mut KeyHasher, needs: &[NodeIndex]) {
        let mut keys: Vec<TaskKey> = needs.iter().map(|n| self.graph[*n].key).collect();
        keys.sort();
        keys.dedup();
        h.field("needs").u64(keys.len() as u64);
        for key in &keys {
            h.key(key);
        }
    }

    /// Adds `task` with edges from `needs`; a shared task equal to one already planned is
    /// that node.
    fn insert(
        &mut self,
        service: &str,
        mut task: Task,
        needs: &[NodeIndex],
        sharing: Sharing,
    ) -> NodeIndex {
        let existing = match sharing {
            Sharing::Shared => self.by_key.get(&task.key).copied(),
            Sharing::PerService => None,
        };
        let node = if let Some(node) = existing {
            node
        } else {
            task.services.clear();
            let node = self.graph.add_node(task);
            if sharing == Sharing::Shared {
                self.by_key.insert(self.graph[node].key, node);
            }
            for need in needs {
                self.graph.update_edge(*need, node, ());
            }
            node
        };
        let services = &mut self.graph[node].services;
        if !services.iter().any(|s| s == service) {
            services.push(service.to_owned());
        }
        node
    }
}

/// Whether a task may be one node for every service that plans it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sharing {
    /// Equal keys are one node.
    Shared,
    /// One node per service: it works on the service's own copy of the app.
    PerService,
}

/// The part of every buildpack task's key that names the buildpack and the environment.
fn common_key(h: &mut KeyHasher, input: &ServiceInput<'_>, bp: &Buildpack, digest: TaskKey) {
    h.field("buildpack")
        .str(bp.id().as_str())
        .str(bp.version())
        .key(&digest);
    h.field("build-image").str(input.build_image);
    h.field("target").str(input.target);
    exec_env_key(h, input);
}

/// Every buildpack and layer task gets `CNB_EXEC_ENV`, and the image keeps only that
/// environment's processes. Only another environment than the default is hashed, so that
/// keys of `production` builds (which had it all along) stay as they were.
fn exec_env_key(h: &mut KeyHasher, input: &ServiceInput<'_>) {
    if input.exec_env != crate::exec_env::DEFAULT_EXEC_ENV {
        h.field("exec-env").str(input.exec_env);
    }
}

fn env_key(h: &mut KeyHasher, env: &BTreeMap<String, String>) {
    h.u64(env.len() as u64);
    for (name, value) in env {
        h.str(name).str(value);
    }
}

/// The last value of `name` in `env`.
fn lookup<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A buildpack's layers ordered so that each comes after the layers of the same buildpack it
/// needs (the file order where that already holds). Declared cycles were refused on load.
fn layers_in_need_order(layers: &[DeclaredLayer]) -> Vec<&DeclaredLayer> {
    let mut out: Vec<&DeclaredLayer> = Vec::new();
    let mut pending: Vec<&DeclaredLayer> = layers.iter().collect();
    while !pending.is_empty() {
        let ready = pending.iter().position(|layer| {
            layer
                .needs
                .iter()
                .filter(|n| n.buildpack.is_none())
                .all(|n| out.iter().any(|done| done.name == n.layer))
        });
        match ready {
            Some(i) => out.push(pending.remove(i)),
            // A cycle (refused on load): keep file order so planning still terminates.
            None => out.append(&mut pending),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{component, write, write_executable};
    use crate::sources::{ScanOptions, scan};
    use crate::statcache::StatCache;
    use crate::{GroupMember, TaskKey};

    /// A declared buildpack `t/decl` with layers `runtime` (reads `.v`) and `deps` (reads
    /// `*.lock`, needs `runtime`), then an opaque `t/opaque`.
    fn fixture(extra: &str) -> (tempfile::TempDir, DetectResult, BTreeMap<String, TaskKey>) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write_executable(root, "decl/layers/run.sh");
        write(
            root,
            "decl/buildpack.toml",
            &format!(
                "api = \"0.10\"\n[buildpack]\nid = \"t/decl\"\nversion = \"1\"\n\
                 [[metadata.strata.layers]]\nname = \"runtime\"\ninputs = [\".v\"]\nrun = \"layers/run.sh\"\nbuild = true\n\
                 [[metadata.strata.layers]]\nname = \"deps\"\ninputs = [\"*.lock\"]\nneeds = [\"runtime\"]\nrun = \"layers/run.sh\"\nlaunch = true\n{extra}"
            ),
        );
        component(root, "opaque", "t/opaque", "1");
        let mut digests = BTreeMap::new();
        let mut group = Vec::new();
        for dir in ["decl", "opaque"] {
            let bp = Arc::new(Buildpack::load(&root.join(dir)).unwrap());
            let mut h = KeyHasher::new("test/bp");
            h.str(dir);
            digests.insert(bp.reference(), h.finish());
            group.push(GroupMember {
                buildpack: bp,
                plan: BuildpackPlan::default(),
            });
        }
        (
            tmp,
            DetectResult {
                group,
                ..DetectResult::default()
            },
            digests,
        )
    }

    fn app(files: &[(&str, &str)]) -> (tempfile::TempDir, SourceTree) {
        let tmp = tempfile::tempdir().unwrap();
        for (path, text) in files {
            write(tmp.path(), path, text);
        }
        let opts = ScanOptions {
            include: &[],
            exclude: &[],
            sequential: false,
        };
        let (tree, _) = scan(tmp.path(), &opts, &mut StatCache::in_memory()).unwrap();
        (tmp, tree)
    }

    fn add(
        plan: &mut Plan,
        name: &str,
        group: &DetectResult,
        tree: &SourceTree,
        digests: &BTreeMap<String, TaskKey>,
    ) -> Result<(), PlanError> {
        plan.add_service(&ServiceInput {
            name,
            group,
            app: tree,
            buildpack_digests: digests,
            env: &[],
            bindings: None,
            build_image: "host",
            target: "linux/amd64",
            export: "builtin",
            exec_env: "production",
        })
    }

    fn key_of(plan: &Plan, service: usize, id: &str) -> TaskKey {
        plan.services[service]
            .tasks
            .iter()
            .map(|n| &plan.graph[*n])
            .find(|t| t.id == id)
            .unwrap()
            .key
    }

    /// The plan of an app whose `a.lock` is a symlink to `target` (relative to the app),
    /// `secret` being a file outside the app with `outside` in it.
    fn plan_with_lock_link(target: &str, inside: &str, outside: &str) -> Result<Plan, PlanError> {
        let (_bps, group, digests) = fixture("");
        let tmp = tempfile::tempdir().unwrap();
        let app_dir = tmp.path().join("app");
        write(&app_dir, ".v", "1");
        write(&app_dir, "vendor/real.lock", inside);
        write(tmp.path(), "secret", outside);
        let target = target.replace("$OUT", &tmp.path().join("secret").to_string_lossy());
        std::os::unix::fs::symlink(target, app_dir.join("a.lock")).unwrap();
        let opts = ScanOptions::default();
        let (tree, _) = scan(&app_dir, &opts, &mut StatCache::in_memory()).unwrap();
        let mut plan = Plan::new();
        add(&mut plan, "svc", &group, &tree, &digests)?;
        Ok(plan)
    }

    #[test]
    fn an_input_linking_outside_the_app_is_refused() {
        for target in [
            "$OUT",
            "../secret",
            "vendor/../../secret",
            "vendor",
            "nowhere",
        ] {
            let err = plan_with_lock_link(target, "in", "out").err().unwrap();
            let text = err.to_string();
            assert!(
                matches!(err, PlanError::Input { .. }) && text.contains("a.lock"),
                "{target}: {text}"
            );
        }
    }

    #[test]
    fn an_input_linking_inside_the_app_is_keyed_by_what_it_reads() {
        let key = |inside: &str| {
            key_of(
                &plan_with_lock_link("vendor/real.lock", inside, "-").unwrap(),
                0,
                "t/decl:deps",
            )
        };
        assert_eq!(key("v1"), key("v1"));
        assert_ne!(key("v1"), key("v2"));
    }

    #[test]
    fn an_opaque_buildpacks_selected_link_is_keyed_by_what_it_reads() {
        let key = |inside: &str| {
            let tmp = tempfile::tempdir().unwrap();
            let bp_dir = component(tmp.path(), "bp", "t/sel", "1");
            write(
                &bp_dir,
                "buildpack.toml",
                "api = \"0.10\"\n[buildpack]\nid = \"t/sel\"\nversion = \"1\"\n\
                 [metadata.strata]\ninputs = [\"*.lock\"]\n",
            );
            let bp = Arc::new(Buildpack::load(&bp_dir).unwrap());
            let mut digests = BTreeMap::new();
            digests.insert(bp.reference(), KeyHasher::new("test/bp").finish());
            let group = DetectResult {
                group: vec![GroupMember {
                    buildpack: bp,
                    plan: BuildpackPlan::default(),
                }],
                ..DetectResult::default()
            };
            let app_dir = tmp.path().join("app");
            write(&app_dir, "vendor/real.lock", inside);
            std::os::unix::fs::symlink("vendor/real.lock", app_dir.join("a.lock")).unwrap();
            let (tree, _) = scan(
                &app_dir,
                &ScanOptions::default(),
                &mut StatCache::in_memory(),
            )
            .unwrap();
            let mut plan = Plan::new();
            add(&mut plan, "svc", &group, &tree, &digests).unwrap();
            key_of(&plan, 0, "t/sel (bin/build)")
        };
        assert_eq!(key("v1"), key("v1"));
        assert_ne!(key("v1"), key("v2"));
    }

    #[test]
    fn tasks_edges_and_inputs() {
        let (_bps, group, digests) = fixture("");
        let (_app, tree) = app(&[(".v", "1"), ("a.lock", "x"), ("src/main", "m")]);
        let mut plan = Plan::new();
        add(&mut plan, "svc", &group, &tree, &digests).unwrap();
        let ids: Vec<&str> = plan.services[0]
            .tasks
            .iter()
            .map(|n| plan.graph[*n].id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "t/decl:runtime",
                "t/decl:deps",
                "t/opaque (bin/build)",
                "app",
                "image"
            ]
        );
        let deps = plan.services[0].tasks[1];
        assert_eq!(plan.graph[deps].inputs, ["a.lock"]);
        let needs: Vec<&str> = plan
            .needs(deps)
            .map(|n| plan.graph[n].id.as_str())
            .collect();
        assert_eq!(needs, ["t/decl:runtime"]);
        let opaque = plan.services[0].tasks[2];
        assert_eq!(
            plan.needs(opaque).count(),
            2,
            "an opaque buildpack needs every task before it"
        );
        assert_eq!(
            plan.graph[opaque].inputs.len(),
            3,
            "and reads the whole app"
        );
    }

    #[test]
    fn equal_tasks_of_two_services_are_one_node() {
        let (_bps, group, digests) = fixture("");
        let (_a, tree_a) = app(&[(".v", "1"), ("a.lock", "x"), ("src/a", "a")]);
        let (_b, tree_b) = app(&[(".v", "1"), ("a.lock", "y"), ("src/b", "b")]);
        let mut plan = Plan::new();
        add(&mut plan, "a", &group, &tree_a, &digests).unwrap();
        add(&mut plan, "b", &group, &tree_b, &digests).unwrap();
        assert_eq!(
            key_of(&plan, 0, "t/decl:runtime"),
            key_of(&plan, 1, "t/decl:runtime")
        );
        assert_ne!(
            key_of(&plan, 0, "t/decl:deps"),
            key_of(&plan, 1, "t/decl:deps")
        );
        let shared = plan.services[0].tasks[0];
        assert_eq!(plan.services[1].tasks[0], shared);
        assert_eq!(plan.graph[shared].services, ["a", "b"]);
        assert_eq!(
            plan.graph.node_count(),
            9,
            "runtime is shared; every other task is per service"
        );
    }

    #[test]
    fn opaque_and_app_tasks_stay_per_service() {
        let (_bps, group, digests) = fixture("");
        let files = [(".v", "1"), ("a.lock", "x"), ("src/a", "a")];
        let (_a, tree_a) = app(&files);
        let (_b, tree_b) = app(&files);
        let mut plan = Plan::new();
        add(&mut plan, "a", &group, &tree_a, &digests).unwrap();
        add(&mut plan, "b", &group, &tree_b, &digests).unwrap();
        for id in ["t/opaque (bin/build)", "app"] {
            assert_eq!(key_of(&plan, 0, id), key_of(&plan, 1, id), "{id}");
            let node = |s: usize| {
                plan.services[s]
                    .tasks
                    .iter()
                    .copied()
                    .find(|n| plan.graph[*n].id == id)
                    .unwrap()
            };
            assert_ne!(
                node(0),
                node(1),
                "{id} works on each service's own app copy"
            );
            assert_eq!(plan.graph[node(1)].services, ["b"]);
        }
        assert_eq!(plan.services[0].tasks[1], plan.services[1].tasks[1]);
    }

    #[test]
    fn env_only_matters_to_the_layers_that_name_it() {
        let (_bps, group, digests) = fixture("env = [\"MODE\"]\n");
        let (_app, tree) = app(&[(".v", "1"), ("a.lock", "x")]);
        let plan_with = |value: &str| {
            let mut plan = Plan::new();
            let env = [
                ("MODE".to_owned(), value.to_owned()),
                ("OTHER".to_owned(), "1".to_owned()),
            ];
            plan.add_service(&ServiceInput {
                name: "svc",
                group: &group,
                app: &tree,
                buildpack_digests: &digests,
                env: &env,
                bindings: None,
                build_image: "host",
                target: "linux/amd64",
                export: "builtin",
                exec_env: "production",
            })
            .unwrap();
            plan
        };
        let (a, b) = (plan_with("dev"), plan_with("prod"));
        assert_eq!(
            key_of(&a, 0, "t/decl:runtime"),
            key_of(&b, 0, "t/decl:runtime")
        );
        assert_ne!(key_of(&a, 0, "t/decl:deps"), key_of(&b, 0, "t/decl:deps"));
        assert_eq!(
            a.graph[a.services[0].tasks[1]]
                .env
                .get("MODE")
                .map(String::as_str),
            Some("dev")
        );
    }

    #[test]
    fn bindings_change_the_keys_of_opaque_buildpacks_only() {
        let (_bps, group, digests) = fixture("");
        let (_app, tree) = app(&[(".v", "1"), ("a.lock", "x")]);
        let plan_with = |bindings: Option<u8>| {
            let mut plan = Plan::new();
            plan.add_service(&ServiceInput {
                name: "svc",
                group: &group,
                app: &tree,
                buildpack_digests: &digests,
                env: &[],
                bindings: bindings.map(|n| TaskKey::from_bytes([n; 32])),
                build_image: "host",
                target: "linux/amd64",
                export: "builtin",
                exec_env: "production",
            })
            .unwrap();
            plan
        };
        let (none, one, two) = (plan_with(None), plan_with(Some(1)), plan_with(Some(2)));
        let opaque = "t/opaque (bin/build)";
        assert_ne!(key_of(&none, 0, opaque), key_of(&one, 0, opaque));
        assert_ne!(key_of(&one, 0, opaque), key_of(&two, 0, opaque));
        assert_eq!(
            key_of(&one, 0, opaque),
            key_of(&plan_with(Some(1)), 0, opaque)
        );
        for layer in ["t/decl:runtime", "t/decl:deps"] {
            assert_eq!(key_of(&none, 0, layer), key_of(&two, 0, layer), "{layer}");
        }
    }

    #[test]
    fn the_exec_env_is_part_of_every_task_key() {
        let (_bps, group, digests) = fixture("");
        let (_app, tree) = app(&[(".v", "1"), ("a.lock", "x")]);
        let plan_for = |exec_env: &str| {
            let mut plan = Plan::new();
            plan.add_service(&ServiceInput {
                name: "svc",
                group: &group,
                app: &tree,
                buildpack_digests: &digests,
                env: &[],
                bindings: None,
                build_image: "host",
                target: "linux/amd64",
                export: "builtin",
                exec_env,
            })
            .unwrap();
            plan
        };
        let (production, test) = (plan_for("production"), plan_for("test"));
        for id in [
            "t/decl:runtime",
            "t/decl:deps",
            "t/opaque (bin/build)",
            "image",
        ] {
            assert_ne!(key_of(&production, 0, id), key_of(&test, 0, id), "{id}");
        }
    }

    #[test]
    fn needs_naming_a_missing_or_later_buildpack_is_an_error_with_its_span() {
        let (_bps, group, digests) = fixture(
            "[[metadata.strata.layers]]\nname = \"x\"\nneeds = [\"t/opaque:thing\"]\nrun = \"layers/run.sh\"\n",
        );
        let (_app, tree) = app(&[(".v", "1")]);
        let err = add(&mut Plan::new(), "svc", &group, &tree, &digests).unwrap_err();
        let PlanError::Needs(toml) = &err else {
            panic!("{err}")
        };
        assert!(
            toml.message.contains("t/opaque declares no layer `thing`"),
            "{}",
            toml.message
        );
        assert!(toml.line().is_some());

        let (_bps, group, digests) = fixture(
            "[[metadata.strata.layers]]\nname = \"x\"\nneeds = [\"t/elsewhere:thing\"]\nrun = \"layers/run.sh\"\n",
        );
        let err = add(&mut Plan::new(), "svc", &group, &tree, &digests).unwrap_err();
        assert!(err.to_string().contains("not in the group"), "{err}");
    }

    #[test]
    fn a_processes_only_buildpack_has_no_task() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "procs/buildpack.toml",
            "api = \"0.10\"\n[buildpack]\nid = \"t/procs\"\nversion = \"1\"\n\
             [metadata.strata.detect]\nfiles = [\"*\"]\n\
             [[metadata.strata.processes]]\ntype = \"web\"\ncommand = [\"serve\"]\n",
        );
        let bp = Arc::new(Buildpack::load(&tmp.path().join("procs")).unwrap());
        let digests = BTreeMap::from([(bp.reference(), KeyHasher::new("test/bp").finish())]);
        let group = DetectResult {
            group: vec![GroupMember {
                buildpack: bp,
                plan: BuildpackPlan::default(),
            }],
            ..DetectResult::default()
        };
        let (_app, tree) = app(&[("main", "m")]);
        let mut plan = Plan::new();
        add(&mut plan, "svc", &group, &tree, &digests).unwrap();
        let ids: Vec<&str> = plan.services[0]
            .tasks
            .iter()
            .map(|n| plan.graph[*n].id.as_str())
            .collect();
        assert_eq!(ids, ["app", "image"]);
    }

    /// A declared buildpack of `needs.len()` layers `l0`, `l1`, …: layer `i` reads `i<i>.txt`
    /// and needs each earlier layer `j` with `needs[i][j]`.
    fn dag_buildpack(
        needs: &[Vec<bool>],
    ) -> (tempfile::TempDir, DetectResult, BTreeMap<String, TaskKey>) {
        use std::fmt::Write as _;
        let tmp = tempfile::tempdir().unwrap();
        let mut toml =
            String::from("api = \"0.10\"\n[buildpack]\nid = \"t/dag\"\nversion = \"1\"\n");
        for (i, row) in needs.iter().enumerate() {
            let names: Vec<String> = (0..i)
                .filter(|j| row[*j])
                .map(|j| format!("\"l{j}\""))
                .collect();
            let _ = write!(
                toml,
                "[[metadata.strata.layers]]\nname = \"l{i}\"\ninputs = [\"i{i}.txt\"]\n\
                 needs = [{}]\nrun = \"layers/run.sh\"\nlaunch = true\n",
                names.join(", ")
            );
        }
        write_executable(tmp.path(), "dag/layers/run.sh");
        write(tmp.path(), "dag/buildpack.toml", &toml);
        let bp = Arc::new(Buildpack::load(&tmp.path().join("dag")).unwrap());
        let digests = BTreeMap::from([(bp.reference(), KeyHasher::new("test/bp").finish())]);
        let group = DetectResult {
            group: vec![GroupMember {
                buildpack: bp,
                plan: BuildpackPlan::default(),
            }],
            ..DetectResult::default()
        };
        (tmp, group, digests)
    }

    /// What a build of `plan` runs against `store` (action key -> output digest), each task
    /// that runs making `output(layer)`; the output digest of every layer after it.
    fn simulate(
        plan: &Plan,
        store: &mut HashMap<TaskKey, TaskKey>,
        output: &dyn Fn(&str) -> TaskKey,
    ) -> (
        std::collections::BTreeSet<String>,
        HashMap<NodeIndex, TaskKey>,
    ) {
        let mut ran = std::collections::BTreeSet::new();
        let mut outs: HashMap<NodeIndex, TaskKey> = HashMap::new();
        for node in plan.services[0].tasks.clone() {
            let task = &plan.graph[node];
            if !matches!(task.kind, TaskKind::Layer { .. }) {
                continue;
            }
            let action = plan.action_key(node, &|n| outs.get(&n).copied()).unwrap();
            let out = if let Some(out) = store.get(&action) {
                *out
            } else {
                ran.insert(task.id.clone());
                let out = output(&task.id);
                store.insert(action, out);
                out
            };
            outs.insert(node, out);
        }
        (ran, outs)
    }

    fn digest(id: &str, version: u64) -> TaskKey {
        let mut h = KeyHasher::new("test/output");
        h.str(id).u64(version);
        h.finish()
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_tasks_that_run_are_those_whose_inputs_or_needed_outputs_changed(
            (needs, changed, same) in (1_usize..7).prop_flat_map(|n| (
                proptest::collection::vec(proptest::collection::vec(proptest::bool::ANY, n), n),
                proptest::collection::vec(proptest::bool::ANY, n),
                proptest::collection::vec(proptest::bool::ANY, n),
            ))
        ) {
            let n = needs.len();
            let (_bp, group, digests) = dag_buildpack(&needs);
            let files = |changed: &Vec<bool>| -> Vec<(String, String)> {
                (0..n)
                    .map(|i| (format!("i{i}.txt"), if changed[i] { "v1" } else { "v0" }.to_owned()))
                    .collect()
            };
            let plan_of = |changed: &Vec<bool>| {
                let files = files(changed);
                let refs: Vec<(&str, &str)> =
                    files.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
                let (_app, tree) = app(&refs);
                let mut plan = Plan::new();
                add(&mut plan, "svc", &group, &tree, &digests).unwrap();
                plan
            };
            let mut store = HashMap::new();
            let first = plan_of(&vec![false; n]);
            let (ran, before) = simulate(&first, &mut store, &|id| digest(id, 0));
            prop_assert_eq!(ran.len(), n, "a cold build runs every layer");

            // The second build: the changed inputs; a layer that runs comes out as before
            // when `same` says so.
            let second = plan_of(&changed);
            let layer = |id: &str| id.trim_start_matches("t/dag:l").parse::<usize>().unwrap();
            let (ran, _) = simulate(&second, &mut store, &|id| {
                digest(id, u64::from(!same[layer(id)]))
            });

            // What should run: a layer whose input changed, or a needed layer whose output did.
            let mut expected = std::collections::BTreeSet::new();
            let mut out_changed = vec![false; n];
            for i in 0..n {
                let runs = changed[i] || (0..i).any(|j| needs[i][j] && out_changed[j]);
                if runs {
                    expected.insert(format!("t/dag:l{i}"));
                    out_changed[i] = !same[i];
                }
            }
            prop_assert_eq!(ran, expected);
            prop_assert_eq!(before.len(), n);
        }
    }
}
