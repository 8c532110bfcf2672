//! `build.toml` `[[unmet]]`: which Buildpack Plan entries later buildpacks still receive.
//!
//! As the lifecycle does, an entry of a buildpack's Buildpack Plan that its `build.toml` does
//! not list as unmet is *met*, and every entry of that name leaves the plan of each buildpack
//! after it; an unmet one stays for a later provider of the same dependency. Detection gives
//! each buildpack the plan it would get if nobody met anything ([`GroupMember::plan`]); this
//! takes away what the buildpacks before it met, from their outputs. A buildpack's task key
//! already covers the keys of every task before it, so the plan it receives is a function of
//! its key.
//!
//! [`GroupMember::plan`]: strata_planner::GroupMember::plan

use std::collections::HashSet;

use strata_planner::BuildpackPlan;

use crate::build::BuildpackOutput;

/// The names `output`'s buildpack met: its plan's entries that its `build.toml` did not list
/// as unmet. A buildpack without a `build.toml` (a declared one) met its whole plan.
pub fn met_names(output: &BuildpackOutput) -> impl Iterator<Item = &str> {
    output
        .plan
        .entries
        .iter()
        .map(|e| e.name.as_str())
        .filter(|name| !output.layers.unmet.iter().any(|u| u == name))
}

/// `plan` without the entries that the buildpacks of `before` met.
pub fn plan_after(plan: &BuildpackPlan, before: &[BuildpackOutput]) -> BuildpackPlan {
    let met: HashSet<&str> = before.iter().flat_map(met_names).collect();
    BuildpackPlan {
        entries: plan
            .entries
            .iter()
            .filter(|e| !met.contains(e.name.as_str()))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use strata_planner::{Buildpack, BuildpackDescriptor, PlanEntry};

    use super::*;
    use crate::layers::BuildpackLayers;

    fn plan(names: &[&str]) -> BuildpackPlan {
        BuildpackPlan {
            entries: names
                .iter()
                .map(|name| PlanEntry {
                    name: (*name).to_owned(),
                    metadata: toml::Table::new(),
                })
                .collect(),
        }
    }

    fn output(received: &[&str], unmet: &[&str]) -> BuildpackOutput {
        let text = "api = \"0.10\"\n[buildpack]\nid = \"test/a\"\nversion = \"1\"\n";
        let dir = PathBuf::from("/bp");
        let descriptor =
            BuildpackDescriptor::parse(&dir.join("buildpack.toml"), text, &dir).unwrap();
        BuildpackOutput {
            buildpack: Arc::new(Buildpack { dir, descriptor }),
            plan: plan(received),
            layers_dir: PathBuf::from("/layers"),
            layers: BuildpackLayers {
                unmet: unmet.iter().map(|s| (*s).to_owned()).collect(),
                ..BuildpackLayers::default()
            },
            log: PathBuf::from("/log"),
            app_changed: false,
            change: None,
        }
    }

    fn names(plan: &BuildpackPlan) -> Vec<&str> {
        plan.entries.iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn met_entries_leave_later_plans_and_unmet_ones_stay() {
        let later = plan(&["node", "yarn", "node", "python"]);
        let before = [output(&["node", "yarn"], &["yarn"])];
        assert_eq!(names(&plan_after(&later, &before)), ["yarn", "python"]);
    }

    #[test]
    fn without_build_toml_the_whole_plan_is_met() {
        let before = [output(&["node"], &[]), output(&[], &[])];
        assert_eq!(
            names(&plan_after(&plan(&["node", "npm"]), &before)),
            ["npm"]
        );
        assert_eq!(names(&plan_after(&plan(&["node"]), &[])), ["node"]);
    }
}
