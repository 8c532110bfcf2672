//! Which process to start and with which arguments, from `argv`, `CNB_PROCESS_TYPE` and the
//! metadata, by the platform spec's rules.
//!
//! - `argv[0]`'s file name (`/cnb/process/web` gives `web`) names a process type: that
//!   process runs, and the user's arguments go to it.
//! - Else `CNB_PROCESS_TYPE` names one, the same way (the lifecycle dropped this; strata keeps it
//!   because `docker run -e CNB_PROCESS_TYPE=worker` on the bare launcher is still useful).
//! - Else with no arguments the default process runs (where the lifecycle would refuse).
//! - Else the arguments are the user's own command: `-- cmd args` runs `cmd` directly,
//!   `cmd args` runs through a shell.
//!
//! A buildpack's process always gets `command[1:]`; the user's arguments replace its default
//! `args` (Platform API ≥ 0.10 and, when the command has no extra entries, Buildpack API ≥ 0.9)
//! or else are appended to them.

use crate::api::{self, Api};
use crate::error::LaunchError;
use crate::metadata::{Metadata, Process};

/// What the launcher was asked to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request<'a> {
    /// `argv[0]`.
    pub(crate) argv0: &'a str,
    /// `argv[1..]`.
    pub(crate) args: &'a [String],
    /// `CNB_PROCESS_TYPE`, if set and not empty.
    pub(crate) process_type: Option<&'a str>,
    /// `CNB_PLATFORM_API`.
    pub(crate) platform: Api,
    /// `CNB_EXEC_ENV`.
    pub(crate) exec_env: &'a str,
}

/// The process to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selected {
    /// The buildpack process type, `None` for a user's command.
    pub(crate) process_type: Option<String>,
    /// The executable (or, for a shell process, the script).
    pub(crate) command: String,
    /// Its arguments.
    pub(crate) args: Vec<String>,
    /// Whether it runs without a shell.
    pub(crate) direct: bool,
    /// Where it runs, if not the app directory.
    pub(crate) working_dir: Option<String>,
}

/// Picks the process for `req`.
pub(crate) fn select(md: &Metadata, req: &Request<'_>) -> Result<Selected, LaunchError> {
    let name = req.argv0.rsplit('/').next().unwrap_or(req.argv0);
    if md.processes.iter().any(|p| p.r#type == name) {
        // Named, but maybe not for this execution environment: then it must not run.
        let process =
            find(md, req, name).ok_or_else(|| LaunchError::NoSuchProcess(name.to_owned()))?;
        return buildpack_process(md, req, process);
    }
    if let Some(ty) = req.process_type {
        let process = find(md, req, ty).ok_or_else(|| LaunchError::NoSuchProcess(ty.to_owned()))?;
        return buildpack_process(md, req, process);
    }
    match req.args {
        [] => {
            let ty = md.default_type().ok_or(LaunchError::NoCommand)?;
            let process =
                find(md, req, ty).ok_or_else(|| LaunchError::NoSuchProcess(ty.to_owned()))?;
            buildpack_process(md, req, process)
        }
        [dashes] if dashes == "--" => Err(LaunchError::NoCommand),
        [dashes, command, args @ ..] if dashes == "--" => Ok(user(command, args, true)),
        [command, args @ ..] => Ok(user(command, args, false)),
    }
}

fn user(command: &str, args: &[String], direct: bool) -> Selected {
    Selected {
        process_type: None,
        command: command.to_owned(),
        args: args.to_vec(),
        direct,
        working_dir: None,
    }
}

/// The process of type `ty` eligible for the execution environment.
fn find<'m>(md: &'m Metadata, req: &Request<'_>, ty: &str) -> Option<&'m Process> {
    md.processes.iter().find(|p| {
        p.r#type == ty
            && (req.platform < api::EXEC_ENV
                || p.exec_env.is_empty()
                || p.exec_env.iter().any(|e| e == "*" || e == req.exec_env))
    })
}

fn buildpack_process(
    md: &Metadata,
    req: &Request<'_>,
    p: &Process,
) -> Result<Selected, LaunchError> {
    let (command, always) = p
        .command
        .split_first()
        .ok_or_else(|| LaunchError::EmptyCommand(p.r#type.clone()))?;
    let bp_api = || -> Result<Option<Api>, LaunchError> {
        let Some(bp) = md.buildpack(&p.buildpack_id) else {
            return Ok(None);
        };
        Api::parse(&bp.api)
            .map(Some)
            .ok_or_else(|| LaunchError::BuildpackApi {
                buildpack: bp.id.clone(),
                api: bp.api.clone(),
            })
    };
    let user = req.args;
    let mut args = always.to_vec();
    if req.platform < api::USER_ARGS_REPLACE {
        args.extend_from_slice(&p.args);
        args.extend_from_slice(user);
    } else if !always.is_empty() || user.is_empty() {
        args.extend_from_slice(if user.is_empty() { &p.args } else { user });
    } else {
        let api = bp_api()?.ok_or_else(|| LaunchError::UnknownBuildpack {
            process: p.r#type.clone(),
            buildpack: p.buildpack_id.clone(),
        })?;
        if api < api::BUILDPACK_DIRECT {
            args.extend_from_slice(&p.args);
        }
        args.extend_from_slice(user);
    }
    let direct = p.direct || bp_api()?.is_some_and(|api| api >= api::BUILDPACK_DIRECT);
    Ok(Selected {
        process_type: Some(p.r#type.clone()),
        command: command.clone(),
        args,
        direct,
        working_dir: p.working_dir.clone(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;

    fn metadata() -> Metadata {
        Metadata::parse(
            Path::new("metadata.toml"),
            r#"
[[buildpacks]]
id = "new"
api = "0.10"
[[buildpacks]]
id = "old"
api = "0.8"
[[processes]]
type = "web"
command = ["server"]
args = ["--port", "80"]
direct = true
default = true
buildpack-id = "new"
[[processes]]
type = "worker"
command = ["ruby", "worker.rb"]
args = ["--queue", "default"]
buildpack-id = "new"
[[processes]]
type = "legacy"
command = "echo $HOME"
args = ["a"]
buildpack-id = "old"
[[processes]]
type = "test-only"
command = ["t"]
exec-env = ["test"]
buildpack-id = "new"
"#,
        )
        .unwrap()
    }

    fn pick(
        argv0: &str,
        args: &[&str],
        process_type: Option<&str>,
    ) -> Result<Selected, LaunchError> {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        select(
            &metadata(),
            &Request {
                argv0,
                args: &args,
                process_type,
                platform: api::NEWEST,
                exec_env: "production",
            },
        )
    }

    fn summary(s: &Selected) -> (Option<&str>, &str, Vec<&str>, bool) {
        (
            s.process_type.as_deref(),
            s.command.as_str(),
            s.args.iter().map(String::as_str).collect(),
            s.direct,
        )
    }

    #[test]
    fn argv0_under_cnb_process_names_the_process() {
        let s = pick("/cnb/process/worker", &[], None).unwrap();
        assert_eq!(
            summary(&s),
            (
                Some("worker"),
                "ruby",
                vec!["worker.rb", "--queue", "default"],
                true
            )
        );
        // Beats CNB_PROCESS_TYPE.
        let s = pick("/cnb/process/web", &[], Some("worker")).unwrap();
        assert_eq!(s.process_type.as_deref(), Some("web"));
    }

    #[test]
    fn cnb_process_type_then_the_default_process() {
        let s = pick("/cnb/lifecycle/launcher", &[], Some("worker")).unwrap();
        assert_eq!(s.process_type.as_deref(), Some("worker"));
        let s = pick("/cnb/lifecycle/launcher", &[], None).unwrap();
        assert_eq!(
            summary(&s),
            (Some("web"), "server", vec!["--port", "80"], true)
        );
        assert!(matches!(
            pick("/cnb/lifecycle/launcher", &[], Some("nope")),
            Err(LaunchError::NoSuchProcess(t)) if t == "nope"
        ));
    }

    #[test]
    fn user_args_replace_default_args_and_keep_command_entries() {
        let s = pick("/cnb/process/web", &["--port", "9"], None).unwrap();
        assert_eq!(
            summary(&s),
            (Some("web"), "server", vec!["--port", "9"], true)
        );
        let s = pick("/cnb/process/worker", &["--queue", "x"], None).unwrap();
        assert_eq!(s.args, ["worker.rb", "--queue", "x"]);
    }

    #[test]
    fn old_buildpacks_and_old_platforms_append_user_args() {
        let s = pick("/cnb/process/legacy", &["b"], None).unwrap();
        assert_eq!(
            summary(&s),
            (Some("legacy"), "echo $HOME", vec!["a", "b"], false)
        );

        let args = ["x".to_owned()];
        let s = select(
            &metadata(),
            &Request {
                argv0: "/cnb/process/worker",
                args: &args,
                process_type: None,
                platform: Api(0, 9),
                exec_env: "production",
            },
        )
        .unwrap();
        assert_eq!(s.args, ["worker.rb", "--queue", "default", "x"]);
    }

    #[test]
    fn user_commands_run_directly_after_dashes_else_through_a_shell() {
        let s = pick("/cnb/lifecycle/launcher", &["--", "env", "-0"], None).unwrap();
        assert_eq!(summary(&s), (None, "env", vec!["-0"], true));
        let s = pick("/cnb/lifecycle/launcher", &["echo $PATH", "x"], None).unwrap();
        assert_eq!(summary(&s), (None, "echo $PATH", vec!["x"], false));
        assert!(matches!(
            pick("/cnb/lifecycle/launcher", &["--"], None),
            Err(LaunchError::NoCommand)
        ));
    }

    #[test]
    fn processes_for_another_exec_env_are_not_found() {
        assert!(matches!(
            pick("/cnb/lifecycle/launcher", &[], Some("test-only")),
            Err(LaunchError::NoSuchProcess(_))
        ));
        let s = pick("/cnb/process/test-only", &[], None);
        assert!(matches!(s, Err(LaunchError::NoSuchProcess(_))), "{s:?}");
    }
}
