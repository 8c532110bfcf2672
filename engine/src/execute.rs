//! Runs services of a plan on the executor, all in one run: a declared buildpack as its layer
//! tasks, an opaque one as its `bin/build`, each service's image as its last task, as many at
//! once as `jobs` allows.
//!
//! Declared layers read the app's source (read-only) and the layers they need, so they run
//! as soon as those are built; a layer shared by several services runs once, for the first
//! of them (its *owner*), and the others read its output. An opaque buildpack needs every
//! task before it in its group: it sees all their layers and changes the service's private
//! copy of the app, which is made when the first task that needs it starts and which only
//! opaque buildpacks (one at a time, in group order) write. A service's image task runs when
//! all its tasks are done, while other services still build: it makes every output real and
//! hands the exporter the app as the buildpacks left it and every buildpack's layers.
//!
//! A task is looked up in the store, and stored, under its action key, made when the tasks it
//! needs are done from their output digests ([`crate::cutoff`]): a need that ran again and
//! came out the same leaves it a hit (early cutoff), and so on down the graph. The app task is
//! a hit when its action key is the one last exported, and the image task asks the exporter,
//! which writes no new manifest when the output already has that image.

use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::sync::{Arc, Mutex};

use petgraph::graph::NodeIndex;
use strata_planner::{
    Buildpack, BuildpackPlan, GroupMember, Plan, ServicePlan, Status, Task, TaskKey, TaskKind,
};

use crate::appdir::{app_entries, copy_app};
use crate::build::{BuildError, BuildOutput, BuildRequest, BuildpackOutput, run_buildpack};
use crate::executor::{Done, ExecEvent, ExecOptions, ExecOutcome, run_graph};
use crate::layer_task::{BuiltLayer, NeededLayer, declared_output, run_layer};
use crate::layers::Layer;
use crate::restore::restore_id;
use crate::workspace::{Change, Snapshot};

/// What a finished task left.
#[derive(Debug, Clone)]
pub enum TaskOutput {
    /// A declared layer.
    Layer(Arc<BuiltLayer>),
    /// An opaque buildpack's layers and metadata.
    Buildpack(Arc<BuildpackOutput>),
    /// Nothing (the app and image tasks are the exporter's).
    Nothing,
}

/// A finished task: its output, the action key it is stored under, and what its dependents'
/// action keys take of it (for the app and image tasks, which store nothing, their action key).
#[derive(Debug, Clone)]
pub struct Finished {
    /// What it left.
    pub output: TaskOutput,
    /// Its action key ([`strata_planner::Plan::action_key`]).
    pub action: TaskKey,
    /// Its output's digest ([`TaskOutput::digest`]).
    pub digest: TaskKey,
    /// Why it ran after all, when it was to run only if a task it needs changed: the first
    /// of those whose output did.
    pub reason: Option<String>,
    /// An image task whose image the output already has: nothing new was written.
    pub unchanged: bool,
}

/// The action key and output digest of each finished task, by node.
pub type Outputs = HashMap<NodeIndex, (TaskKey, TaskKey)>;

/// What a stored output is made real for ([`TaskCache::ensure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Use {
    /// A task about to run needs it: its launch and build layers, and its app change. A
    /// cache-only layer is its own buildpack's, for its next run only.
    Task,
    /// Its service's image is exported: its launch layers and its app change.
    Export,
}

/// Where task outputs are kept between builds. The engine does not know how layers are
/// stored (that takes the exporter's tar writer); it asks this.
pub trait TaskCache: Sync {
    /// The output stored under `key`, `task`'s action key, if any. Its layer directories need
    /// not exist yet.
    fn probe(&self, req: &BuildRequest<'_>, task: &Task, key: &TaskKey) -> Option<TaskOutput>;
    /// Makes a stored output usable for `purpose`: the directories of the layers that
    /// purpose reads exist and, for an opaque buildpack, its change to the app is applied to
    /// the workspace. Calling it again for the same task and purpose does nothing.
    fn ensure(
        &self,
        req: &BuildRequest<'_>,
        task: &Task,
        key: &TaskKey,
        output: &TaskOutput,
        purpose: Use,
    ) -> Result<(), BuildError>;
    /// Puts into the layers directory of `task` (an opaque buildpack about to run because its
    /// key changed) what its last run for the restore id `state` left, as the lifecycle's
    /// restorer does (see [`crate::restore`]); returns that run's layers, which it may reuse
    /// without their directory. No state, or a bad one, is a cold run: nothing restored.
    fn restore(
        &self,
        req: &BuildRequest<'_>,
        task: &Task,
        state: &TaskKey,
    ) -> Result<Vec<Layer>, BuildError>;
    /// Records the output stored under `key` (of `task`, an opaque buildpack) as the restore
    /// state of `state`, for its next run.
    fn keep(&self, task: &Task, key: &TaskKey, state: &TaskKey) -> Result<(), BuildError>;
    /// Stores what `task` built (and, for an opaque buildpack, what it changed in the app)
    /// under `key`, its action key; returns the output with its layers' blobs recorded.
    fn save(
        &self,
        req: &BuildRequest<'_>,
        task: &Task,
        key: &TaskKey,
        output: TaskOutput,
        change: Option<&Change>,
    ) -> Result<TaskOutput, BuildError>;
}

/// Progress of a build, for the caller to show. Tasks are named by their label: the task's
/// id, with its service's name when several services run.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A task is starting.
    Started(&'a str),
    /// A task finished; its log, if it has one.
    Finished(&'a str, Option<&'a std::path::Path>),
    /// A task failed.
    Failed(&'a str),
    /// A task did not run because a task it needs failed.
    Skipped(&'a str),
    /// A task was answered from the cache (its key had a stored output): nothing ran.
    Cached(&'a str),
    /// A task that ran is done, its output stored: after [`Event::Finished`], which comes as
    /// soon as its log is complete.
    Done(&'a str),
    /// A task that was to run if a task it needs changed was answered from the cache: that
    /// task came out unchanged. With the reason it was to run.
    CutOff(&'a str, &'a str),
}

/// How one task went, for reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskReport {
    /// The task's id.
    pub id: String,
    /// The services it is part of.
    pub services: Vec<String>,
    /// Its action key (hex): the key the store keeps its output under.
    pub key: String,
    /// `ran` or `cached`.
    pub status: &'static str,
    /// Why it ran, or why it was to run when it was cut off.
    pub reason: Option<String>,
    /// Whether it was answered by the store only once the tasks it needs came out unchanged
    /// (early cutoff).
    pub cut_off: bool,
    /// How long it took.
    pub seconds: f64,
    /// Its label in [`Event`]s (not in the JSON report: `id` and `services` say the same).
    #[serde(skip)]
    pub label: String,
}

/// One service to build: which of the plan's services, and where its tasks run.
pub struct ServiceRun<'a> {
    /// Its index in `plan.services`.
    pub service: usize,
    /// Where its tasks run; `workspace` is created (the app copied into it) when first needed.
    pub req: BuildRequest<'a>,
    /// `project.toml` include patterns for the app copy.
    pub include: &'a [String],
    /// `project.toml` exclude patterns for the app copy.
    pub exclude: &'a [String],
}

/// Exports a service (by its index in the runs) from what its buildpacks built, given every
/// finished task's action key and output digest (its image task's among them). Returns
/// whether it wrote an image: `false` when the output already has this one.
pub type ExportFn<'a> =
    dyn Fn(usize, &BuildOutput, &Outputs) -> Result<bool, BuildError> + Sync + 'a;

/// A task that failed.
#[derive(Debug)]
pub struct Failure {
    /// The task's label.
    pub task: String,
    /// The runs (indexes) it was part of.
    pub runs: Vec<usize>,
    /// Why.
    pub error: BuildError,
}

/// How a run of services went.
#[derive(Debug)]
pub struct Executed {
    /// Each task that ran or was cached, in the order it finished.
    pub tasks: Vec<TaskReport>,
    /// The node of each of `tasks`.
    pub nodes: Vec<NodeIndex>,
    /// The tasks that failed, in the order they failed.
    pub failures: Vec<Failure>,
    /// Per run: whether its image was exported.
    pub exported: Vec<bool>,
    /// The action key and output digest of each finished task.
    pub outputs: Outputs,
}

/// What every task of a run reads.
struct Context<'a> {
    plan: &'a Plan,
    runs: &'a [ServiceRun<'a>],
    /// The run each task is done for: the first of the runs that plan it.
    owner: HashMap<NodeIndex, usize>,
    /// Per run: whether its app copy is made.
    copied: Vec<Mutex<bool>>,
    cache: Option<&'a dyn TaskCache>,
    progress: &'a (dyn Fn(Event<'_>) + Sync),
    export: &'a ExportFn<'a>,
    labels: HashMap<NodeIndex, String>,
}

impl Context<'_> {
    /// `node`'s action key, from the digests of the tasks it needs (all done by now).
    fn action(&self, node: NodeIndex, done: &Done<Finished>) -> TaskKey {
        self.plan
            .action_key(node, &|n| done.get(n).map(|f| f.digest))
            .unwrap_or(self.plan.graph[node].key)
    }

    /// Why a task that was to run only if a need changed runs: the first need (by id) whose
    /// output is not the one it last built with.
    fn reason(&self, node: NodeIndex, done: &Done<Finished>) -> Option<String> {
        let task = &self.plan.graph[node];
        if !task.status.cut_off() {
            return None;
        }
        let mut needs: Vec<(&str, Option<TaskKey>)> = self
            .plan
            .needs(node)
            .map(|n| {
                (
                    self.plan.graph[n].id.as_str(),
                    done.get(n).map(|f| f.digest),
                )
            })
            .collect();
        needs.sort_unstable();
        let changed = needs
            .into_iter()
            .find(|(id, digest)| task.previous.get(*id) != digest.as_ref())?;
        Some(strata_planner::Reason::NeedsRebuilt(changed.0.to_owned()).to_string())
    }

    fn run_of(&self, node: NodeIndex) -> &ServiceRun<'_> {
        &self.runs[self.owner[&node]]
    }

    fn service_of(&self, run: &ServiceRun<'_>) -> &ServicePlan {
        &self.plan.services[run.service]
    }

    /// Makes `run`'s private copy of the app, once.
    fn copy_app(&self, index: usize) -> Result<(), BuildError> {
        let run = &self.runs[index];
        let Ok(mut copied) = self.copied[index].lock() else {
            return Err(BuildError::Io {
                path: run.req.workspace.to_owned(),
                source: std::io::Error::other("app copy lock poisoned"),
            });
        };
        if !*copied {
            // The copy may hold the app's secrets: private, like the scratch it is in.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(crate::scratch::DIR_MODE)
                .create(run.req.workspace)
                .map_err(|source| BuildError::Io {
                    path: run.req.workspace.to_owned(),
                    source,
                })?;
            // Each entry is the build user's as it is made: no second walk over the copy.
            copy_app(
                run.req.source,
                run.req.workspace,
                run.include,
                run.exclude,
                run.req.sandbox.host_owner(),
            )?;
            *copied = true;
        }
        Ok(())
    }
}

/// The label of each task: its id, with its service's name when several services run.
fn labels(
    plan: &Plan,
    runs: &[ServiceRun<'_>],
    owner: &HashMap<NodeIndex, usize>,
) -> HashMap<NodeIndex, String> {
    owner
        .iter()
        .map(|(node, run)| {
            let task = &plan.graph[*node];
            let label = if runs.len() == 1 {
                task.id.clone()
            } else if task.services.len() > 1 {
                format!("{} (shared by {} services)", task.id, task.services.len())
            } else {
                format!("{}: {}", plan.services[runs[*run].service].name, task.id)
            };
            (*node, label)
        })
        .collect()
}

/// Runs every task of `runs`' services, each service's image (through `export`) as soon as
/// its tasks are done, on `options.jobs` workers.
pub fn execute<'a>(
    plan: &'a Plan,
    runs: &'a [ServiceRun<'a>],
    options: ExecOptions,
    cache: Option<&'a dyn TaskCache>,
    progress: &'a (dyn Fn(Event<'_>) + Sync),
    export: &'a ExportFn<'a>,
) -> Executed {
    let mut owner: HashMap<NodeIndex, usize> = HashMap::new();
    let mut nodes: Vec<NodeIndex> = Vec::new();
    for (index, run) in runs.iter().enumerate() {
        for node in &plan.services[run.service].tasks {
            if let std::collections::hash_map::Entry::Vacant(e) = owner.entry(*node) {
                e.insert(index);
                nodes.push(*node);
            }
        }
    }
    let ctx = Context {
        plan,
        runs,
        labels: labels(plan, runs, &owner),
        owner,
        copied: runs.iter().map(|_| Mutex::new(false)).collect(),
        cache,
        progress,
        export,
    };
    let run = |node: NodeIndex, done: &Done<Finished>| run_task(&ctx, node, done);
    let probe = |node: NodeIndex, done: &Done<Finished>| match &plan.graph[node].kind {
        TaskKind::Layer { .. } | TaskKind::Buildpack { .. } => {
            let action = ctx.action(node, done);
            let output = cache?.probe(&ctx.run_of(node).req, &plan.graph[node], &action)?;
            Some(Finished {
                digest: output.digest(),
                output,
                action,
                reason: None,
                unchanged: false,
            })
        }
        TaskKind::App | TaskKind::Image => None,
    };
    let mut tasks = Vec::new();
    let mut finished = Vec::new();
    let outcome: ExecOutcome<Finished, BuildError> = run_graph(
        &plan.graph,
        &nodes,
        options,
        &probe,
        &run,
        &mut |event| match event {
            ExecEvent::Started(n) => progress(Event::Started(&ctx.labels[&n])),
            ExecEvent::Failed(n, _) => progress(Event::Failed(&ctx.labels[&n])),
            ExecEvent::Skipped(n) => progress(Event::Skipped(&ctx.labels[&n])),
            ExecEvent::Finished(n, took) => {
                progress(Event::Done(&ctx.labels[&n]));
                tasks.push(task_report(plan, n, "ran", took).labelled(&ctx.labels[&n]));
                finished.push(n);
            }
            ExecEvent::Cached(n) => {
                let mut report = task_report(plan, n, "cached", std::time::Duration::ZERO);
                report.cut_off = plan.graph[n].status.cut_off();
                match (&report.reason, report.cut_off) {
                    (Some(reason), true) => progress(Event::CutOff(&ctx.labels[&n], reason)),
                    _ => progress(Event::Cached(&ctx.labels[&n])),
                }
                tasks.push(report.labelled(&ctx.labels[&n]));
                finished.push(n);
            }
        },
    );
    // A task that ran though only a need was to change says which need did.
    settle(plan, &mut tasks, &finished, &outcome.results);
    let outputs: Outputs = outcome
        .results
        .iter()
        .map(|(node, f)| (*node, (f.action, f.digest)))
        .collect();
    let exported = runs
        .iter()
        .map(|run| {
            let image = plan.services[run.service].tasks.last();
            image.is_some_and(|n| outcome.results.contains_key(n))
        })
        .collect();
    let failures = outcome
        .failures
        .into_iter()
        .map(|(node, error)| Failure {
            task: ctx.labels[&node].clone(),
            runs: runs
                .iter()
                .enumerate()
                .filter(|(_, run)| plan.services[run.service].tasks.contains(&node))
                .map(|(i, _)| i)
                .collect(),
            error,
        })
        .collect();
    Executed {
        tasks,
        nodes: finished,
        failures,
        exported,
        outputs,
    }
}

/// The reports of finished tasks, once all ran: each with its action key, and what only the
/// end of the run tells. An image the output already had was cut off too (nothing new was
/// written), and so was its app layer (made only when the image is) when it is the one last
/// made; a task that ran though only a need was to change says which need did.
fn settle(
    plan: &Plan,
    tasks: &mut [TaskReport],
    finished: &[NodeIndex],
    results: &HashMap<NodeIndex, Finished>,
) {
    let unchanged = |node: &NodeIndex| results.get(node).is_some_and(|f| f.unchanged);
    for (report, node) in tasks.iter_mut().zip(finished) {
        let Some(f) = results.get(node) else {
            continue;
        };
        report.key = f.action.hex();
        let task = &plan.graph[*node];
        let app_unchanged = matches!(task.kind, TaskKind::App)
            && task.last_action == Some(f.action)
            && plan
                .graph
                .neighbors_directed(*node, petgraph::Direction::Outgoing)
                .any(|n| unchanged(&n));
        if f.unchanged || app_unchanged {
            report.status = "cached";
            report.cut_off = task.status != Status::Cached;
            if !report.cut_off {
                report.reason = None;
            }
        } else if let Some(reason) = &f.reason {
            report.reason = Some(reason.clone());
        }
    }
}

/// Runs one task on a worker: a declared layer, an opaque buildpack (storing what it built
/// when there is a cache), or an image.
fn run_task(
    ctx: &Context<'_>,
    node: NodeIndex,
    done: &Done<Finished>,
) -> Result<Finished, BuildError> {
    let action = ctx.action(node, done);
    if let TaskKind::Image = ctx.plan.graph[node].kind {
        let written = export_service(ctx, ctx.owner[&node], node, &action, done)?;
        (ctx.progress)(Event::Finished(&ctx.labels[&node], None));
        return Ok(Finished {
            output: TaskOutput::Nothing,
            action,
            digest: action,
            reason: ctx.reason(node, done),
            unchanged: !written,
        });
    }
    let output = run_kind(ctx, node, &action, done)?;
    Ok(Finished {
        digest: match output {
            TaskOutput::Nothing => action,
            ref output => output.digest(),
        },
        output,
        action,
        reason: ctx.reason(node, done),
        unchanged: false,
    })
}

/// Runs one task of its kind; `action` is its action key.
fn run_kind(
    ctx: &Context<'_>,
    node: NodeIndex,
    action: &TaskKey,
    done: &Done<Finished>,
) -> Result<TaskOutput, BuildError> {
    let plan = ctx.plan;
    let task = &plan.graph[node];
    let index = ctx.owner[&node];
    let run = &ctx.runs[index];
    let req = &run.req;
    let service = ctx.service_of(run);
    let label = ctx.labels[&node].as_str();
    match &task.kind {
        TaskKind::Layer { buildpack, .. } => {
            let Some(declared) = task.declared_layer() else {
                return Ok(TaskOutput::Nothing);
            };
            let needed: Vec<Arc<BuiltLayer>> = plan
                .needs(node)
                .filter_map(|n| match done.get(n).map(|f| f.output) {
                    Some(TaskOutput::Layer(layer)) => Some(layer),
                    _ => None,
                })
                .collect();
            let needs: Vec<NeededLayer<'_>> = needed
                .iter()
                .filter_map(|built| {
                    let owner = service
                        .group
                        .group
                        .iter()
                        .find(|m| m.buildpack.reference() == built.buildpack)?;
                    Some(NeededLayer {
                        buildpack: &owner.buildpack,
                        layer: &built.layer,
                    })
                })
                .collect();
            if let Some(cache) = ctx.cache {
                for need in plan.needs(node) {
                    if let Some(f) = done.get(need) {
                        let req = &ctx.run_of(need).req;
                        cache.ensure(req, &plan.graph[need], &f.action, &f.output, Use::Task)?;
                    }
                }
            }
            let output = run_layer(req, buildpack, declared, &needs, &task.inputs)?;
            (ctx.progress)(Event::Finished(label, Some(&output.log)));
            let output = TaskOutput::Layer(Arc::new(output));
            match ctx.cache {
                Some(cache) => cache.save(req, task, action, output, None),
                None => Ok(output),
            }
        }
        TaskKind::Buildpack {
            buildpack,
            plan: bp_plan,
        } => run_opaque(ctx, node, action, buildpack, bp_plan, done),
        TaskKind::App => {
            // Nothing to do here (the image task reads the app), but the task started and ends.
            (ctx.progress)(Event::Finished(label, None));
            Ok(TaskOutput::Nothing)
        }
        // Exported by `run_task`.
        TaskKind::Image => Ok(TaskOutput::Nothing),
    }
}

/// Runs an opaque buildpack's `bin/build` in its service's copy of the app, after the tasks
/// before it, and stores what it built and changed.
fn run_opaque(
    ctx: &Context<'_>,
    node: NodeIndex,
    action: &TaskKey,
    buildpack: &Arc<Buildpack>,
    bp_plan: &BuildpackPlan,
    done: &Done<Finished>,
) -> Result<TaskOutput, BuildError> {
    let plan = ctx.plan;
    let task = &plan.graph[node];
    let index = ctx.owner[&node];
    let req = &ctx.runs[index].req;
    let service = ctx.service_of(&ctx.runs[index]);
    let label = ctx.labels[&node].as_str();
    ctx.copy_app(index)?;
    let position = service
        .group
        .group
        .iter()
        .position(|m| m.buildpack.reference() == buildpack.reference());
    let before = outputs_of(
        req,
        plan,
        service,
        &service.group.group[..position.unwrap_or(0)],
        done,
    );
    let Some(cache) = ctx.cache else {
        let output = run_buildpack(req, buildpack, bp_plan, &before, &[])?;
        (ctx.progress)(Event::Finished(label, Some(&output.log)));
        // Without a snapshot, assume it changed the app: export from the copy.
        let output = BuildpackOutput {
            app_changed: true,
            ..output
        };
        return Ok(TaskOutput::Buildpack(Arc::new(output)));
    };
    // Every task before it is done: make their outputs real, in the service's order
    // (so opaque buildpacks' changes to the app replay in group order).
    for earlier in &service.tasks {
        let needed = *earlier != node && plan.needs(node).any(|n| n == *earlier);
        if let (true, Some(f)) = (needed, done.get(*earlier)) {
            let req = &ctx.run_of(*earlier).req;
            cache.ensure(req, &plan.graph[*earlier], &f.action, &f.output, Use::Task)?;
        }
    }
    let io = |source| BuildError::Io {
        path: req.workspace.to_owned(),
        source,
    };
    let id = buildpack.id().as_str();
    let previous = cache.restore(
        req,
        task,
        &restore_id(req.source, &service.name, req.exec_env, id),
    )?;
    let snapshot = Snapshot::take(req.workspace).map_err(io)?;
    let output = run_buildpack(req, buildpack, bp_plan, &before, &previous)?;
    (ctx.progress)(Event::Finished(label, Some(&output.log)));
    let change = snapshot.change_to(&Snapshot::take(req.workspace).map_err(io)?);
    let output = BuildpackOutput {
        app_changed: !change.is_empty(),
        ..output
    };
    let saved = cache.save(
        req,
        task,
        action,
        TaskOutput::Buildpack(Arc::new(output)),
        Some(&change),
    )?;
    // The next run of this buildpack in each service this task is part of starts from it.
    for run in ctx.runs {
        let service = ctx.service_of(run);
        if service.tasks.contains(&node) {
            cache.keep(
                task,
                action,
                &restore_id(run.req.source, &service.name, run.req.exec_env, id),
            )?;
        }
    }
    Ok(saved)
}

/// Exports run `index`'s service: every output made real, then the exporter. The app is
/// the private copy when a buildpack of this build worked on it or a stored one changed it,
/// else the app itself (no copy is made).
fn export_service(
    ctx: &Context<'_>,
    index: usize,
    image: NodeIndex,
    action: &TaskKey,
    done: &Done<Finished>,
) -> Result<bool, BuildError> {
    let run = &ctx.runs[index];
    let service = ctx.service_of(run);
    let plan = ctx.plan;
    let finished: Vec<(NodeIndex, Finished)> = service
        .tasks
        .iter()
        .filter_map(|n| done.get(*n).map(|f| (*n, f)))
        .collect();
    let changed = finished
        .iter()
        .any(|(_, f)| matches!(&f.output, TaskOutput::Buildpack(bp) if bp.app_changed));
    let copied = ctx.copied[index].lock().is_ok_and(|c| *c);
    let from_copy = copied || changed;
    if from_copy {
        ctx.copy_app(index)?;
    }
    if let Some(cache) = ctx.cache {
        // The exporter reads launch layers' env files and tars the app: every stored output
        // is made real, opaque buildpacks' app changes in group order.
        for (node, f) in &finished {
            cache.ensure(
                &ctx.run_of(*node).req,
                &plan.graph[*node],
                &f.action,
                &f.output,
                Use::Export,
            )?;
        }
        // What this image has of each opaque buildpack, a hit's output too, is what its next
        // run starts from, as the lifecycle's cache is the last build's.
        for (node, f) in &finished {
            if let TaskOutput::Buildpack(bp) = &f.output {
                let id = restore_id(
                    run.req.source,
                    &service.name,
                    run.req.exec_env,
                    bp.buildpack.id().as_str(),
                );
                cache.keep(&plan.graph[*node], &f.action, &id)?;
            }
        }
    }
    let (workspace, selection) = if from_copy {
        (run.req.workspace.to_owned(), None)
    } else {
        let entries = app_entries(run.req.source, run.include, run.exclude)?;
        (
            run.req.source.to_owned(),
            Some(entries.into_iter().collect()),
        )
    };
    let output = BuildOutput {
        workspace,
        selection,
        buildpacks: outputs_of(&run.req, plan, service, &service.group.group, done),
    };
    let mut keys: Outputs = finished
        .iter()
        .map(|(node, f)| (*node, (f.action, f.digest)))
        .collect();
    keys.insert(image, (*action, *action));
    (ctx.export)(index, &output, &keys)
}

/// The report of `node`, which ended with `status` after `took`.
pub fn task_report(
    plan: &Plan,
    node: NodeIndex,
    status: &'static str,
    took: std::time::Duration,
) -> TaskReport {
    let task = &plan.graph[node];
    TaskReport {
        id: task.id.clone(),
        services: task.services.clone(),
        // A cached task's output is under the action key it was last built with.
        key: task
            .last_action
            .filter(|_| task.status == Status::Cached)
            .unwrap_or(task.key)
            .hex(),
        status,
        reason: match &task.status {
            Status::WillRun(reason) | Status::MayRun(reason) => Some(reason.to_string()),
            Status::Cached => None,
        },
        cut_off: false,
        seconds: took.as_secs_f64(),
        label: task.id.clone(),
    }
}

impl TaskReport {
    /// The report with the label the build's events named it by.
    #[must_use]
    pub fn labelled(self, label: &str) -> Self {
        Self {
            label: label.to_owned(),
            ..self
        }
    }
}

/// What each of `members` built, in group order, from the finished tasks.
fn outputs_of(
    req: &BuildRequest<'_>,
    plan: &Plan,
    service: &ServicePlan,
    members: &[GroupMember],
    done: &Done<Finished>,
) -> Vec<BuildpackOutput> {
    let mut by_buildpack: HashMap<String, Vec<TaskOutput>> = HashMap::new();
    for node in &service.tasks {
        if let (Some(bp), Some(f)) = (plan.graph[*node].buildpack(), done.get(*node)) {
            by_buildpack
                .entry(bp.reference())
                .or_default()
                .push(f.output);
        }
    }
    members
        .iter()
        .map(|member| {
            let outputs = by_buildpack
                .remove(&member.buildpack.reference())
                .unwrap_or_default();
            if let Some(TaskOutput::Buildpack(output)) = outputs
                .iter()
                .find(|o| matches!(o, TaskOutput::Buildpack(_)))
            {
                return (**output).clone();
            }
            let layers = outputs
                .into_iter()
                .filter_map(|o| match o {
                    TaskOutput::Layer(layer) => Some((*layer).clone()),
                    _ => None,
                })
                .collect();
            declared_output(req, &member.buildpack, &member.plan, layers)
        })
        .collect()
}
