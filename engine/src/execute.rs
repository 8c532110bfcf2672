//! Runs services' parts of a plan on the executor: a declared buildpack as its layer tasks,
//! an opaque one as its `bin/build`, as many at once as `jobs` allows.
//!
//! Declared layers read the app's source (read-only) and the layers they need, so they run
//! as soon as those are built. An opaque buildpack needs every task before it in its group:
//! it sees all their layers and changes the private copy of the app, which only opaque
//! buildpacks (one at a time, in group order) write. The result per service is what the
//! exporter takes: the app as the buildpacks left it and every buildpack's layers.

use std::collections::HashMap;
use std::sync::Arc;

use petgraph::graph::NodeIndex;
use strata_planner::{GroupMember, Plan, ServicePlan, Status, Task, TaskKind};

use crate::build::{BuildError, BuildOutput, BuildRequest, BuildpackOutput, run_buildpack};
use crate::executor::{Done, ExecEvent, ExecOptions, ExecOutcome, run_graph};
use crate::layer_task::{BuiltLayer, NeededLayer, declared_output, run_layer};
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

/// Where task outputs are kept between builds. The engine does not know how layers are
/// stored (that takes the exporter's tar writer); it asks this.
pub trait TaskCache: Sync {
    /// The stored output of `task`, if any. Its layer directories need not exist yet.
    fn probe(&self, req: &BuildRequest<'_>, task: &Task) -> Option<TaskOutput>;
    /// Makes a stored output usable by a task about to run: its layer directories exist and,
    /// for an opaque buildpack, its change to the app is applied to the workspace. Calling it
    /// again for the same task does nothing.
    fn ensure(
        &self,
        req: &BuildRequest<'_>,
        task: &Task,
        output: &TaskOutput,
    ) -> Result<(), BuildError>;
    /// Stores what `task` built (and, for an opaque buildpack, what it changed in the app);
    /// returns the output with its layers' blobs recorded.
    fn save(
        &self,
        req: &BuildRequest<'_>,
        task: &Task,
        output: TaskOutput,
        change: Option<&Change>,
    ) -> Result<TaskOutput, BuildError>;
}

/// Progress of a build, for the caller to show.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A task is starting.
    Started(&'a str),
    /// A task finished; its log.
    Finished(&'a str, &'a std::path::Path),
    /// A task failed.
    Failed(&'a str),
    /// A task did not run because a task it needs failed.
    Skipped(&'a str),
}

/// How one task went, for reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskReport {
    /// The task's id.
    pub id: String,
    /// Its key (hex).
    pub key: String,
    /// `ran` or `cached`.
    pub status: &'static str,
    /// Why it ran.
    pub reason: Option<String>,
    /// How long it took.
    pub seconds: f64,
}

/// A service's tasks, run.
#[derive(Debug)]
pub struct Executed {
    /// What the buildpacks built.
    pub output: BuildOutput,
    /// Each task that ran or was cached, in the order it finished.
    pub tasks: Vec<TaskReport>,
}

/// Runs every task of `service` but its app and image tasks, on `options.jobs` workers.
pub fn execute_service(
    req: &BuildRequest<'_>,
    plan: &Plan,
    service: &ServicePlan,
    options: ExecOptions,
    cache: Option<&dyn TaskCache>,
    progress: &(dyn Fn(Event<'_>) + Sync),
) -> Result<Executed, BuildError> {
    let run = |node: NodeIndex, done: &Done<TaskOutput>| {
        run_task(req, plan, service, cache, progress, node, done)
    };
    let probe = |node: NodeIndex, _: &Done<TaskOutput>| cache?.probe(req, &plan.graph[node]);
    let nodes: Vec<NodeIndex> = service
        .tasks
        .iter()
        .copied()
        .filter(|n| {
            matches!(
                plan.graph[*n].kind,
                TaskKind::Layer { .. } | TaskKind::Buildpack { .. }
            )
        })
        .collect();
    let mut tasks = Vec::new();
    let outcome: ExecOutcome<TaskOutput, BuildError> = run_graph(
        &plan.graph,
        &nodes,
        options,
        &probe,
        &run,
        &mut |event| match event {
            ExecEvent::Started(n) => progress(Event::Started(&plan.graph[n].id)),
            ExecEvent::Failed(n, _) => progress(Event::Failed(&plan.graph[n].id)),
            ExecEvent::Skipped(n) => progress(Event::Skipped(&plan.graph[n].id)),
            ExecEvent::Finished(n, took) => tasks.push(task_report(plan, n, "ran", took)),
            ExecEvent::Cached(n) => {
                tasks.push(task_report(plan, n, "cached", std::time::Duration::ZERO));
            }
        },
    );
    if let Some((_, error)) = outcome.failures.into_iter().next() {
        return Err(error);
    }
    if let Some(cache) = cache {
        // The exporter reads launch layers' env files and tars the app: every stored output
        // is made real, opaque buildpacks' app changes in plan order.
        for node in plan.order() {
            if let Some(output) = outcome.results.get(&node) {
                cache.ensure(req, &plan.graph[node], output)?;
            }
        }
    }
    let done = Done::from(outcome.results);
    let output = BuildOutput {
        workspace: req.workspace.to_owned(),
        buildpacks: outputs_of(req, plan, service, &service.group.group, &done),
    };
    Ok(Executed { output, tasks })
}

/// Runs one task on a worker: a declared layer or an opaque buildpack (storing what it built
/// when there is a cache).
fn run_task(
    req: &BuildRequest<'_>,
    plan: &Plan,
    service: &ServicePlan,
    cache: Option<&dyn TaskCache>,
    progress: &(dyn Fn(Event<'_>) + Sync),
    node: NodeIndex,
    done: &Done<TaskOutput>,
) -> Result<TaskOutput, BuildError> {
    let task = &plan.graph[node];
    match &task.kind {
        TaskKind::Layer { buildpack, .. } => {
            let Some(declared) = task.declared_layer() else {
                return Ok(TaskOutput::Nothing);
            };
            let needed: Vec<Arc<BuiltLayer>> = plan
                .needs(node)
                .filter_map(|n| match done.get(n) {
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
            if let Some(cache) = cache {
                for need in plan.needs(node) {
                    if let Some(output) = done.get(need) {
                        cache.ensure(req, &plan.graph[need], &output)?;
                    }
                }
            }
            let output = run_layer(req, buildpack, declared, &needs)?;
            progress(Event::Finished(&task.id, &output.log));
            let output = TaskOutput::Layer(Arc::new(output));
            match cache {
                Some(cache) => cache.save(req, task, output, None),
                None => Ok(output),
            }
        }
        TaskKind::Buildpack {
            buildpack,
            plan: bp_plan,
        } => {
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
            let Some(cache) = cache else {
                let output = run_buildpack(req, buildpack, bp_plan, &before)?;
                progress(Event::Finished(&task.id, &output.log));
                return Ok(TaskOutput::Buildpack(Arc::new(output)));
            };
            // Every task before it is done: make their outputs real, in plan order (so
            // opaque buildpacks' changes to the app replay in group order).
            for earlier in plan.order() {
                let needed = earlier != node && plan.needs(node).any(|n| n == earlier);
                if let (true, Some(output)) = (needed, done.get(earlier)) {
                    cache.ensure(req, &plan.graph[earlier], &output)?;
                }
            }
            let io = |source| BuildError::Io {
                path: req.workspace.to_owned(),
                source,
            };
            let snapshot = Snapshot::take(req.workspace).map_err(io)?;
            let output = run_buildpack(req, buildpack, bp_plan, &before)?;
            progress(Event::Finished(&task.id, &output.log));
            let change = snapshot.change_to(&Snapshot::take(req.workspace).map_err(io)?);
            cache.save(
                req,
                task,
                TaskOutput::Buildpack(Arc::new(output)),
                Some(&change),
            )
        }
        TaskKind::App | TaskKind::Image => Ok(TaskOutput::Nothing),
    }
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
        key: task.key.hex(),
        status,
        reason: match &task.status {
            Status::WillRun(reason) => Some(reason.to_string()),
            Status::Cached => None,
        },
        seconds: took.as_secs_f64(),
    }
}

/// What each of `members` built, in group order, from the finished tasks.
fn outputs_of(
    req: &BuildRequest<'_>,
    plan: &Plan,
    service: &ServicePlan,
    members: &[GroupMember],
    done: &Done<TaskOutput>,
) -> Vec<BuildpackOutput> {
    let mut by_buildpack: HashMap<String, Vec<TaskOutput>> = HashMap::new();
    for node in &service.tasks {
        if let (Some(bp), Some(output)) = (plan.graph[*node].buildpack(), done.get(*node)) {
            by_buildpack.entry(bp.reference()).or_default().push(output);
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
