//! Replacing the launcher with the process: `PATH` lookup in the new env, then `execve`.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_launcher::env::Env;

use crate::error::LaunchError;

/// Where `command` is: itself if it holds a `/`, else the first executable file of that name
/// in `path` (empty entries skipped, as a container has no meaningful current directory).
pub(crate) fn look_path(command: &str, path: &str) -> Result<PathBuf, LaunchError> {
    if command.contains('/') {
        return Ok(PathBuf::from(command));
    }
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(command))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| LaunchError::NotFound(command.to_owned()))
}

/// Runs `program` in place of the launcher with `argv` (`argv[0]` first), `env` and the
/// working directory `dir`. Returns only if that failed.
pub(crate) fn exec(program: &Path, argv: &[String], env: &Env, dir: &Path) -> LaunchError {
    if let Err(source) = std::env::set_current_dir(dir) {
        return LaunchError::Chdir {
            path: dir.to_owned(),
            source,
        };
    }
    let mut command = Command::new(program);
    if let Some((argv0, args)) = argv.split_first() {
        command.arg0(argv0).args(args);
    }
    // A `PWD` inherited from the container would name the directory the launcher started in.
    command.env_clear().envs(env.iter()).env("PWD", dir);
    let source = command.exec();
    LaunchError::Exec {
        path: program.to_owned(),
        source,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lookup_takes_the_first_executable_in_path() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("tool"), "not executable").unwrap();
        std::fs::write(b.join("tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}::{}", a.display(), b.display());
        assert_eq!(look_path("tool", &path).unwrap(), b.join("tool"));
        assert_eq!(
            look_path("./x/tool", &path).unwrap(),
            PathBuf::from("./x/tool")
        );
        assert!(matches!(
            look_path("nope", &path),
            Err(LaunchError::NotFound(_))
        ));
    }
}
