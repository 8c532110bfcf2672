//! exec.d: programs a buildpack ships to compute env at launch.
//!
//! Each program runs with the env built so far, in the app directory, stdout and stderr
//! inherited, and fd 3 the write end of a pipe; it writes TOML `NAME = "value"` lines there,
//! and each one overrides its variable for the next program and the process.
//!
//! Putting the pipe at fd 3 without `unsafe` (no code between fork and exec): the launcher
//! is single-threaded, so it moves the pipe's write end to fd 3 in its own fd table without
//! the close-on-exec flag, spawns the program (which inherits it), and closes its own copy.
//! If fd 3 is already open when the launcher starts (a runtime passing sockets), exec.d
//! cannot run and the launch fails, rather than clobber a descriptor the app may want.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::io::{FdFlags, fcntl_dupfd_cloexec, fcntl_setfd};
use strata_launcher::env::{Env, EnvModification};

use crate::error::LaunchError;
use crate::layers::{BuildpackLayers, files_in};

/// The descriptor exec.d programs write their output to.
const OUTPUT_FD: i32 = 3;
/// Where scratch descriptors go while fd 3 is being set up.
const HIGH_FD: i32 = 10;

/// The exec.d programs for `process`, in order: `exec.d/*` of every launch layer, then
/// `exec.d/<process>/*` of every launch layer, each buildpack in group order, layers by name.
pub(crate) fn programs(
    buildpacks: &[BuildpackLayers],
    process: Option<&str>,
) -> Result<Vec<PathBuf>, LaunchError> {
    let mut all = Vec::new();
    for bp in buildpacks {
        for layer in &bp.layers {
            let dir = layer.join("exec.d");
            all.extend(files_in(&dir)?);
            if let Some(process) = process {
                all.extend(files_in(&dir.join(process))?);
            }
        }
    }
    Ok(all)
}

/// Runs `program` and applies its output to `env`.
pub(crate) fn run(program: &Path, env: &mut Env, app_dir: &Path) -> Result<(), LaunchError> {
    let fail = |message: String| LaunchError::ExecD {
        path: program.to_owned(),
        message,
    };
    let io_fail = |what: &str, e: std::io::Error| fail(format!("{what}: {e}"));

    let (low_reader, low_writer) =
        std::io::pipe().map_err(|e| io_fail("cannot create a pipe", e))?;
    // Move both ends out of the low numbers, so that fd 3 is free for the child's copy.
    let setup = |e: rustix::io::Errno| io_fail("cannot set up fd 3", e.into());
    let mut reader = std::fs::File::from(fcntl_dupfd_cloexec(&low_reader, HIGH_FD).map_err(setup)?);
    let writer: OwnedFd = fcntl_dupfd_cloexec(&low_writer, HIGH_FD).map_err(setup)?;
    drop((low_reader, low_writer));
    let child_end = fcntl_dupfd_cloexec(&writer, OUTPUT_FD)
        .map_err(|e| io_fail("cannot set up fd 3", e.into()))?;
    drop(writer);
    if child_end.as_raw_fd() != OUTPUT_FD {
        return Err(fail(
            "fd 3 is already open in the launcher, so exec.d output cannot be given it".to_owned(),
        ));
    }
    fcntl_setfd(&child_end, FdFlags::empty())
        .map_err(|e| io_fail("cannot set up fd 3", e.into()))?;

    let spawned = Command::new(program)
        .env_clear()
        .envs(env.iter())
        .current_dir(app_dir)
        .spawn();
    // The child has its copy; the launcher's must go, or reading would never end.
    drop(child_end);
    let mut child = spawned.map_err(|e| io_fail("cannot run", e))?;

    let mut out = Vec::new();
    let read = reader.read_to_end(&mut out);
    let status = child.wait().map_err(|e| io_fail("cannot wait", e))?;
    if !status.success() {
        return Err(fail(format!("exited with {status}")));
    }
    read.map_err(|e| io_fail("cannot read its output", e))?;
    env.apply(&parse_output(&out).map_err(fail)?);
    Ok(())
}

/// Reads an exec.d program's output: a TOML table of string values.
pub(crate) fn parse_output(out: &[u8]) -> Result<Vec<EnvModification>, String> {
    let text = std::str::from_utf8(out).map_err(|_| "its output is not UTF-8".to_owned())?;
    let vars: BTreeMap<String, String> = toml::from_str(text).map_err(|e| {
        format!(
            "its output is not TOML of `NAME = \"value\"` lines: {}",
            e.to_string().trim_end()
        )
    })?;
    vars.into_iter()
        .map(|(name, value)| {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                Err(format!("`{name}` is not a valid environment variable name"))
            } else if value.contains('\0') {
                Err(format!("the value of `{name}` contains a NUL byte"))
            } else {
                Ok(EnvModification::set(name, value))
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn output_is_a_toml_table_of_strings() {
        let mods = parse_output(b"B = \"two words\"\nA = 'x'\n# comment\n").unwrap();
        assert_eq!(
            mods,
            [
                EnvModification::set("A", "x"),
                EnvModification::set("B", "two words")
            ]
        );
        assert_eq!(parse_output(b"").unwrap(), []);
    }

    #[test]
    fn bad_output_is_refused() {
        for bad in [
            &b"A = 1"[..],
            b"A = ",
            b"not toml",
            b"[t]\nA = \"x\"",
            b"\"A=B\" = \"x\"",
            b"A = \"\\u0000\"",
            b"\xff",
        ] {
            assert!(
                parse_output(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
