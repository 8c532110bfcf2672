//! Runs one service's part of a plan: each buildpack of its group in order, a declared
//! buildpack as its layer tasks, an opaque one as its `bin/build`.
//!
//! Tasks run one after another in plan order, which puts every task after the tasks it needs.
//! The result is what the exporter takes: the app as the buildpacks left it and every
//! buildpack's layers.

use std::collections::BTreeMap;

use strata_planner::{Plan, ServicePlan, TaskKind};

use crate::build::{BuildError, BuildOutput, BuildRequest, BuildpackOutput, run_buildpack};
use crate::layer_task::{BuiltLayer, NeededLayer, declared_output, run_layer};

/// Progress of a service's build, for the caller to show.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A task is starting.
    Started(&'a str),
    /// A task finished; its log.
    Finished(&'a str, &'a std::path::Path),
}

/// Runs every task of `service` but its app and image tasks (which are the exporter's).
pub fn execute_service(
    req: &BuildRequest<'_>,
    plan: &Plan,
    service: &ServicePlan,
    progress: &dyn Fn(Event<'_>),
) -> Result<BuildOutput, BuildError> {
    let mut outputs: Vec<BuildpackOutput> = Vec::new();
    // Built declared layers, by (buildpack id, layer name).
    let mut built: BTreeMap<(String, String), BuiltLayer> = BTreeMap::new();
    for member in &service.group.group {
        let bp = &member.buildpack;
        let mut layers = Vec::new();
        let mut opaque = false;
        for node in &service.tasks {
            let task = &plan.graph[*node];
            match &task.kind {
                TaskKind::Layer { buildpack, layer } if buildpack.reference() == bp.reference() => {
                    let Some(declared) = task.declared_layer() else {
                        continue;
                    };
                    let needs: Vec<NeededLayer<'_>> = declared
                        .needs
                        .iter()
                        .filter_map(|need| {
                            let owner = need.buildpack.as_ref().unwrap_or(bp.id());
                            let owner_bp = service
                                .group
                                .group
                                .iter()
                                .find(|m| m.buildpack.id() == owner)?;
                            let layer = built.get(&(owner.to_string(), need.layer.clone()))?;
                            Some(NeededLayer {
                                buildpack: &owner_bp.buildpack,
                                layer: &layer.layer,
                            })
                        })
                        .collect();
                    progress(Event::Started(&task.id));
                    let output = run_layer(req, bp, declared, &needs)?;
                    progress(Event::Finished(&task.id, &output.log));
                    built.insert((bp.id().to_string(), layer.clone()), output.clone());
                    layers.push(output);
                }
                TaskKind::Buildpack { buildpack, plan }
                    if buildpack.reference() == bp.reference() =>
                {
                    progress(Event::Started(&task.id));
                    let output = run_buildpack(req, bp, plan, &outputs)?;
                    progress(Event::Finished(&task.id, &output.log));
                    outputs.push(output);
                    opaque = true;
                }
                _ => {}
            }
        }
        if !opaque {
            outputs.push(declared_output(req, bp, &member.plan, layers));
        }
    }
    Ok(BuildOutput {
        workspace: req.workspace.to_owned(),
        buildpacks: outputs,
    })
}
