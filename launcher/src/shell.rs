//! Shell processes: one Bash (or, without Bash, POSIX sh) process sources every profile
//! script, changes to the working directory and `exec`s the command, as the lifecycle does.
//!
//! A command without arguments is a script (`bash -c "$command"`). A command with arguments
//! is a list of tokens, each expanded by the shell (`$HOME` in an argument is the env's) but
//! kept one word, by the lifecycle's `"$(eval echo \"$N\")"` construction.

use std::path::{Path, PathBuf};

use crate::error::LaunchError;
use crate::layers::{BuildpackLayers, files_in};

/// Which shell runs shell processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shell {
    Bash,
    Sh,
}

impl Shell {
    /// Bash if the image has it, as the lifecycle requires; else `/bin/sh`.
    pub(crate) fn find() -> Self {
        if Path::new("/bin/bash").is_file() {
            Self::Bash
        } else {
            Self::Sh
        }
    }

    pub(crate) fn path(self) -> &'static str {
        match self {
            Self::Bash => "/bin/bash",
            Self::Sh => "/bin/sh",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Bash => "bash",
            Self::Sh => "sh",
        }
    }
}

/// The profile scripts for `process`, in order: `profile.d/*` of every launch layer, then
/// `profile.d/<process>/*`, then `<app>/.profile` if it is a file.
pub(crate) fn profiles(
    buildpacks: &[BuildpackLayers],
    process: Option<&str>,
    app_dir: &Path,
) -> Result<Vec<PathBuf>, LaunchError> {
    let mut all = Vec::new();
    for bp in buildpacks {
        for layer in &bp.layers {
            let dir = layer.join("profile.d");
            all.extend(files_in(&dir)?);
            if let Some(process) = process {
                all.extend(files_in(&dir.join(process))?);
            }
        }
    }
    let app_profile = app_dir.join(".profile");
    if app_profile.is_file() {
        all.push(app_profile);
    }
    Ok(all)
}

/// Quotes `s` as one word for any POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The shell's argv (`argv[0]` first) that sources `profiles`, changes to `working_dir` and
/// runs `command` with `args`; `caller` is the shell's `$0` while profiles run.
pub(crate) fn argv(
    shell: Shell,
    profiles: &[PathBuf],
    working_dir: &Path,
    caller: &str,
    command: &str,
    args: &[String],
) -> Vec<String> {
    let source = match shell {
        Shell::Bash => "source",
        Shell::Sh => ".",
    };
    let mut lines: Vec<String> = profiles
        .iter()
        .map(|profile| format!("{source} {}", quote(&profile.to_string_lossy())))
        .collect();
    lines.push(format!("cd {}", quote(&working_dir.to_string_lossy())));
    let name = shell.name();
    if args.is_empty() {
        lines.push(format!("exec {name} -c \"$@\""));
    } else {
        let tokens: Vec<String> = (0..=args.len())
            .map(|i| match i {
                0 => r#""$(eval echo \"$0\")""#.to_owned(),
                i => format!(r#""$(eval echo \"${{{i}}}\")""#),
            })
            .collect();
        lines.push(format!(
            "exec {name} -c {} \"$@\"",
            quote(&tokens.join(" "))
        ));
    }
    let script = lines.join("\n");
    let mut out = vec![
        name.to_owned(),
        "-c".to_owned(),
        script,
        caller.to_owned(),
        command.to_owned(),
    ];
    out.extend(args.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_source_profiles_in_order_then_exec() {
        let argv = argv(
            Shell::Bash,
            &[
                PathBuf::from("/layers/bp/l/profile.d/a.sh"),
                PathBuf::from("/workspace/.pro'file"),
            ],
            Path::new("/workspace/sub"),
            "/cnb/process/web",
            "echo $HOME",
            &[],
        );
        assert_eq!(
            argv,
            [
                "bash",
                "-c",
                "source '/layers/bp/l/profile.d/a.sh'\nsource '/workspace/.pro'\\''file'\ncd '/workspace/sub'\nexec bash -c \"$@\"",
                "/cnb/process/web",
                "echo $HOME",
            ]
        );
    }

    #[test]
    fn tokens_are_evaluated_one_word_each() {
        let argv = argv(
            Shell::Sh,
            &[],
            Path::new("/w"),
            "launcher",
            "echo",
            &["$A".to_owned(), "b c".to_owned()],
        );
        assert_eq!(
            argv[2],
            "cd '/w'\nexec sh -c '\"$(eval echo \\\"$0\\\")\" \"$(eval echo \\\"${1}\\\")\" \"$(eval echo \\\"${2}\\\")\"' \"$@\""
        );
        assert_eq!(&argv[3..], ["launcher", "echo", "$A", "b c"]);
    }
}
