//! The image's processes and its default process, merged from every buildpack's
//! `launch.toml` as the lifecycle's builder merges them.
//!
//! Buildpacks contribute in group order, each in its file order. A later definition of a type
//! replaces the earlier one. The default is the last process marked `default = true`; a later
//! definition of the default's type that is not marked default leaves the image without one
//! (the spec: "a non-default process type definition may override a default process type
//! definition, leaving the app image with no default"). No type is the default for being
//! called `web`: that was Buildpack API < 0.6, which strata does not run.
//!
//! `exec-env`: the processes that are not for the build's execution environment (see
//! [`eligible`]) are left out of the image here, after merging, as the lifecycle's launcher
//! would refuse them at launch (and an image without a launcher could not): a
//! process for `test` that redefines `web` still replaces the `production` one, and a default
//! that is left out leaves no default.

use strata_engine::build::BuildpackOutput;
use strata_engine::layers::Process;

/// The merged processes of a build.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Processes {
    /// Each process with the id of the buildpack that defined it, sorted by type.
    pub list: Vec<(Process, String)>,
    /// The default process type, if any.
    pub default: Option<String>,
}

impl Processes {
    /// The default process.
    pub fn default_process(&self) -> Option<&Process> {
        let default = self.default.as_deref()?;
        self.list
            .iter()
            .map(|(p, _)| p)
            .find(|p| p.r#type == default)
    }
}

/// Whether `process` is for the execution environment `exec_env`: it names none, names `*`,
/// or names `exec_env`.
pub fn eligible(process: &Process, exec_env: &str) -> bool {
    strata_planner::exec_env::applies(&process.exec_env, exec_env)
}

/// Merges the processes of `buildpacks` (in group order) for the execution environment
/// `exec_env`.
pub fn merge(buildpacks: &[BuildpackOutput], exec_env: &str) -> Processes {
    let mut list: Vec<(Process, String)> = Vec::new();
    let mut default: Option<String> = None;
    for bp in buildpacks {
        for process in &bp.layers.launch.processes {
            if process.default {
                default = Some(process.r#type.clone());
            } else if default.as_deref() == Some(process.r#type.as_str()) {
                default = None;
            }
            list.retain(|(p, _)| p.r#type != process.r#type);
            list.push((process.clone(), bp.buildpack.id().to_string()));
        }
    }
    list.retain(|(p, _)| eligible(p, exec_env));
    list.sort_by(|a, b| a.0.r#type.cmp(&b.0.r#type));
    let default = default.filter(|d| list.iter().any(|(p, _)| p.r#type == *d));
    Processes { list, default }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use strata_engine::layers::{BuildpackLayers, LaunchToml};
    use strata_planner::{Buildpack, BuildpackDescriptor, BuildpackPlan};

    use super::*;

    fn process(ty: &str, default: bool, exec_env: &[&str]) -> Process {
        Process {
            r#type: ty.to_owned(),
            command: vec![format!("/bin/{ty}")],
            args: Vec::new(),
            direct: true,
            default,
            working_dir: None,
            exec_env: exec_env.iter().map(|e| (*e).to_owned()).collect(),
        }
    }

    fn output(id: &str, processes: Vec<Process>) -> BuildpackOutput {
        let text = format!("api = \"0.10\"\n[buildpack]\nid = \"{id}\"\nversion = \"1\"\n");
        let dir = PathBuf::from("/bp");
        let descriptor =
            BuildpackDescriptor::parse(&dir.join("buildpack.toml"), &text, &dir).unwrap();
        BuildpackOutput {
            buildpack: Arc::new(Buildpack { dir, descriptor }),
            plan: BuildpackPlan::default(),
            layers_dir: PathBuf::from("/layers"),
            layers: BuildpackLayers {
                launch: LaunchToml {
                    processes,
                    ..LaunchToml::default()
                },
                ..BuildpackLayers::default()
            },
            log: PathBuf::from("/log"),
            app_changed: false,
            change: None,
        }
    }

    fn summary(p: &Processes) -> (Vec<String>, Option<&str>) {
        let list = p
            .list
            .iter()
            .map(|(p, bp)| format!("{}:{bp}", p.r#type))
            .collect();
        (list, p.default.as_deref())
    }

    #[test]
    fn web_is_not_the_default_unless_marked() {
        let got = merge(
            &[output("a", vec![process("web", false, &[])])],
            "production",
        );
        assert_eq!(summary(&got), (vec!["web:a".to_owned()], None));
        assert_eq!(got.default_process(), None);
    }

    #[test]
    fn the_last_default_wins_in_group_order_not_type_order() {
        let got = merge(
            &[
                output("a", vec![process("zz", true, &[])]),
                output(
                    "b",
                    vec![process("aa", true, &[]), process("web", false, &[])],
                ),
            ],
            "production",
        );
        assert_eq!(got.default.as_deref(), Some("aa"));
        let got = merge(
            &[
                output("a", vec![process("aa", true, &[])]),
                output("b", vec![process("zz", true, &[])]),
            ],
            "production",
        );
        assert_eq!(got.default.as_deref(), Some("zz"));
    }

    #[test]
    fn a_later_non_default_redefinition_unsets_the_default() {
        let got = merge(
            &[
                output(
                    "a",
                    vec![process("web", true, &[]), process("worker", false, &[])],
                ),
                output("b", vec![process("web", false, &[])]),
            ],
            "production",
        );
        assert_eq!(
            summary(&got),
            (vec!["web:b".to_owned(), "worker:a".to_owned()], None)
        );
        // Redefining another type leaves the default alone.
        let got = merge(
            &[
                output("a", vec![process("web", true, &[])]),
                output("b", vec![process("worker", false, &[])]),
            ],
            "production",
        );
        assert_eq!(got.default.as_deref(), Some("web"));
    }

    #[test]
    fn processes_for_other_exec_envs_are_left_out() {
        let bps = [output(
            "a",
            vec![
                process("web", true, &["production"]),
                process("tests", false, &["test", "development"]),
                process("any", false, &["*"]),
                process("all", false, &[]),
            ],
        )];
        let got = merge(&bps, "production");
        assert_eq!(
            summary(&got),
            (
                vec!["all:a".to_owned(), "any:a".to_owned(), "web:a".to_owned()],
                Some("web")
            )
        );
        let got = merge(&bps, "test");
        assert_eq!(
            summary(&got),
            (
                vec!["all:a".to_owned(), "any:a".to_owned(), "tests:a".to_owned()],
                None
            )
        );
    }
}
