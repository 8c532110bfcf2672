//! `strata plan`: what a build would run and why, as a table, JSON or Graphviz DOT.
//!
//! The JSON shape is for scripts and stays stable (its fields are listed in the README):
//! `services` (name, group, skipped: the buildpacks of the group not run at detect because
//! they cannot build for the target, each with `buildpack`, `supports` and `target`;
//! `detect_errors`: buildpack, message, output), `tasks` (id, kind, services, buildpack,
//! layer, key, status, reason, needs, inputs), and `stats` (files walked, files hashed, bytes hashed, stat cache
//! hits, racy re-hashes, detect outcomes from the cache, detect processes run).

use std::fmt::Write as _;

use serde::Serialize;
use strata_planner::{Plan, Reason, Status, TaskKind};

use crate::prepare::Prepared;
use crate::report::SkippedReport;

#[derive(Serialize)]
struct PlanJson<'a> {
    /// `--shard K/N`: the services are that shard's.
    #[serde(skip_serializing_if = "Option::is_none")]
    shard: Option<String>,
    services: Vec<ServiceJson>,
    tasks: Vec<TaskJson<'a>>,
    stats: StatsJson,
}

#[derive(Serialize)]
struct ServiceJson {
    name: String,
    group: Vec<String>,
    skipped: Vec<SkippedReport>,
    /// Detects that errored though the group passed without them.
    detect_errors: Vec<DetectErrorJson>,
}

#[derive(Serialize)]
struct DetectErrorJson {
    buildpack: String,
    message: String,
    output: String,
}

#[derive(Serialize)]
struct TaskJson<'a> {
    id: &'a str,
    kind: &'static str,
    services: &'a [String],
    buildpack: Option<String>,
    layer: Option<&'a str>,
    key: String,
    /// `cached`, `will-run`, or `may-run` (runs only if a task it needs comes out changed).
    status: &'static str,
    reason: Option<&'a Reason>,
    /// Whether it is cached after all when the tasks it needs come out unchanged.
    cut_off: bool,
    needs: Vec<&'a str>,
    inputs: usize,
}

#[derive(Serialize)]
struct StatsJson {
    files: u64,
    hashed: u64,
    hashed_bytes: u64,
    stat_hits: u64,
    racy: u64,
    detect_cached: u64,
    detect_ran: u64,
}

fn kind_name(kind: &TaskKind) -> &'static str {
    match kind {
        TaskKind::Layer { .. } => "layer",
        TaskKind::Buildpack { .. } => "buildpack",
        TaskKind::App => "app",
        TaskKind::Image => "image",
    }
}

/// The plan as JSON.
pub(crate) fn json(prepared: &Prepared, shard: Option<strata_planner::Shard>) -> String {
    let plan = &prepared.plan;
    let tasks = plan
        .order()
        .into_iter()
        .map(|node| {
            let task = &plan.graph[node];
            let (status, reason) = match &task.status {
                Status::Cached => ("cached", None),
                Status::WillRun(reason) => ("will-run", Some(reason)),
                Status::MayRun(reason) => ("may-run", Some(reason)),
            };
            TaskJson {
                id: &task.id,
                kind: kind_name(&task.kind),
                services: &task.services,
                buildpack: task.buildpack().map(|bp| bp.reference()),
                layer: match &task.kind {
                    TaskKind::Layer { layer, .. } => Some(layer),
                    _ => None,
                },
                key: task.key.hex(),
                status,
                reason,
                cut_off: task.status.cut_off(),
                needs: plan
                    .needs(node)
                    .map(|n| plan.graph[n].id.as_str())
                    .collect(),
                inputs: task.inputs.len(),
            }
        })
        .collect();
    let h = &prepared.hashing;
    let out = PlanJson {
        shard: shard.map(|s| s.to_string()),
        services: plan
            .services
            .iter()
            .map(|s| ServiceJson {
                name: s.name.clone(),
                group: s
                    .group
                    .group
                    .iter()
                    .map(|m| m.buildpack.reference())
                    .collect(),
                skipped: SkippedReport::of(&s.group),
                detect_errors: s
                    .group
                    .errored
                    .iter()
                    .map(|e| DetectErrorJson {
                        buildpack: e.buildpack.clone(),
                        message: e.message.clone(),
                        output: e.output.clone(),
                    })
                    .collect(),
            })
            .collect(),
        tasks,
        stats: StatsJson {
            files: h.files,
            hashed: h.hashed,
            hashed_bytes: h.hashed_bytes,
            stat_hits: h.stat_hits,
            racy: h.racy,
            detect_cached: prepared.detect_cached,
            detect_ran: prepared.detect_ran,
        },
    };
    serde_json::to_string_pretty(&out).unwrap_or_default()
}

/// The plan as a table, one task a line, in the order they would run.
/// The services of a task: all of them when two or three, else the first two and a count.
fn services_cell(services: &[String]) -> String {
    match services {
        [first, second, _, _, ..] => format!("{first},{second} +{}", services.len() - 2),
        all => all.join(","),
    }
}

pub(crate) fn table(plan: &Plan) -> String {
    let rows: Vec<[String; 4]> = plan
        .order()
        .into_iter()
        .map(|node| {
            let task = &plan.graph[node];
            [
                services_cell(&task.services),
                task.id.clone(),
                task.key.short(),
                task.status.to_string(),
            ]
        })
        .collect();
    let header = ["SERVICE", "TASK", "KEY", "STATUS"].map(str::to_owned);
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            rows.iter()
                .chain(std::iter::once(&header))
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    let will_run = rows.iter().filter(|r| r[3].starts_with("will run")).count();
    let may_run = rows.iter().filter(|r| r[3].starts_with("may run")).count();
    let may = if may_run == 0 {
        String::new()
    } else {
        format!(", {may_run} may run")
    };
    let _ = writeln!(
        out,
        "\n{} tasks: {} cached, {will_run} to run{may}",
        rows.len(),
        rows.len() - will_run - may_run
    );
    out.push_str(&skipped_lines(plan));
    out
}

/// One line per buildpack a service's detect skipped for its targets, after a blank line;
/// nothing when none was.
fn skipped_lines(plan: &Plan) -> String {
    let mut out = String::new();
    for service in &plan.services {
        for skipped in &service.group.skipped {
            let _ = writeln!(out, "{}: skipped at detect: {skipped}", service.name);
        }
    }
    if out.is_empty() {
        out
    } else {
        format!("\n{out}")
    }
}

/// The plan as Graphviz DOT: a node per task, an edge from each task to the tasks needing it.
pub(crate) fn dot(plan: &Plan) -> String {
    let mut out = String::from(
        "digraph plan {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for node in plan.graph.node_indices() {
        let task = &plan.graph[node];
        let color = if task.status == Status::Cached {
            "gray"
        } else {
            "black"
        };
        let label = format!(
            "{}\\n{}\\n{}",
            task.services.join(","),
            task.id,
            task.status
        );
        let _ = writeln!(
            out,
            "  n{} [label=\"{}\", color={color}];",
            node.index(),
            label.replace('"', "\\\"")
        );
    }
    for edge in plan.graph.edge_indices() {
        if let Some((from, to)) = plan.graph.edge_endpoints(edge) {
            let _ = writeln!(out, "  n{} -> n{};", from.index(), to.index());
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::services_cell;

    #[test]
    fn a_task_of_many_services_names_two_and_counts_the_rest() {
        let names = |n: usize| -> Vec<String> { (0..n).map(|i| format!("s{i}")).collect() };
        assert_eq!(services_cell(&names(1)), "s0");
        assert_eq!(services_cell(&names(3)), "s0,s1,s2");
        assert_eq!(services_cell(&names(8)), "s0,s1 +6");
    }
}
