//! The sandbox every buildpack process runs in.
//!
//! A buildpack writes absolute paths (`/layers/<id>/<layer>/bin` into `launch.toml`, shebangs,
//! env files) that must still be right inside the exported image. So each process runs in a
//! private mount namespace made by bubblewrap, where `/workspace`, `/layers/<id>` and
//! `/platform` are bind mounts of task-private host directories: the process sees the paths
//! the image will have, and cannot see other tasks' half-written outputs.
//!
//! The root is bwrap's own tmpfs with the host's system directories bound read-only. `/` is
//! never bound, because bwrap would then create the mount points on the host.
//!
//! [`Sandbox::none`] runs processes on the host instead; mounts then resolve to their host
//! paths, so buildpacks see host paths and images built that way may carry them.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// The `PATH` processes start with: fixed, so a build does not depend on the caller's shell.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Host directories bound read-only into every sandbox when they exist (links stay links).
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt",
];

/// How processes are isolated.
#[derive(Debug, Clone)]
pub enum Sandbox {
    /// bubblewrap at this path.
    Bwrap(PathBuf),
    /// No isolation: processes run on the host with host paths.
    None,
}

/// A directory made visible to the process.
#[derive(Debug, Clone)]
pub struct Mount {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the process sees it inside the sandbox (absolute).
    pub target: String,
    /// Whether the process may write to it.
    pub writable: bool,
}

impl Mount {
    /// A read-only mount.
    pub fn ro(host: impl Into<PathBuf>, target: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            target: target.into(),
            writable: false,
        }
    }

    /// A writable mount.
    pub fn rw(host: impl Into<PathBuf>, target: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            target: target.into(),
            writable: true,
        }
    }
}

/// One process to run.
#[derive(Debug, Clone)]
pub struct SandboxCommand {
    /// Program and arguments, as seen inside the sandbox.
    pub argv: Vec<String>,
    /// The complete environment; nothing is inherited.
    pub env: Vec<(String, String)>,
    /// Bind mounts, applied in order (later ones may nest inside earlier ones).
    pub mounts: Vec<Mount>,
    /// Directories that start empty and read-only: only what `mounts` puts in them is there
    /// (a declared layer's `/workspace` holds its input files alone).
    pub sealed: Vec<String>,
    /// Working directory, as seen inside the sandbox.
    pub cwd: String,
    /// Whether the process may reach the network.
    pub network: bool,
}

/// How a finished process ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// The last lines it printed (stdout and stderr together).
    pub tail: String,
}

/// The sandbox could not run a process.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// bwrap is not installed.
    #[error(
        "bubblewrap (`bwrap`) is not installed; install it with `apt-get install bubblewrap`, or pass `--sandbox none` to run buildpacks on the host"
    )]
    BwrapMissing,
    /// The process could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    /// The log file could not be written or read.
    #[error("cannot write log {path}: {source}", path = path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Sandbox {
    /// bubblewrap, found on `PATH`.
    pub fn bwrap() -> Result<Self, SandboxError> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join("bwrap"))
            .find(|candidate| candidate.is_file())
            .map(Sandbox::Bwrap)
            .ok_or(SandboxError::BwrapMissing)
    }

    /// No isolation.
    pub fn none() -> Self {
        Sandbox::None
    }

    /// The path a process sees for `mount`.
    pub fn view(&self, mount: &Mount) -> String {
        match self {
            Sandbox::Bwrap(_) => mount.target.clone(),
            Sandbox::None => mount.host.to_string_lossy().into_owned(),
        }
    }

    /// Whether processes see mounts at their targets (true) or at host paths.
    pub fn isolates(&self) -> bool {
        matches!(self, Sandbox::Bwrap(_))
    }

    /// Runs `cmd`, writing everything it prints to `log`, and returns how it ended.
    pub fn run(&self, cmd: &SandboxCommand, log: &Path) -> Result<Finished, SandboxError> {
        let log_err = |source| SandboxError::Log {
            path: log.to_owned(),
            source,
        };
        let out = File::create(log).map_err(log_err)?;
        let err = out.try_clone().map_err(log_err)?;
        let mut command = self.command(cmd);
        command
            .env_clear()
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let program = cmd.argv.first().cloned().unwrap_or_default();
        let status = command
            .status()
            .map_err(|source| SandboxError::Spawn { program, source })?;
        let tail = log_tail(log, 20).map_err(log_err)?;
        Ok(Finished { status, tail })
    }

    fn command(&self, cmd: &SandboxCommand) -> Command {
        match self {
            Sandbox::None => {
                let mut command = Command::new("/bin/sh");
                command.args(with_umask(&cmd.argv)).current_dir(&cmd.cwd);
                command
            }
            Sandbox::Bwrap(bwrap) => {
                let mut command = Command::new(bwrap);
                command.args(bwrap_args(cmd));
                command
            }
        }
    }
}

fn bwrap_args(cmd: &SandboxCommand) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&dyn AsRef<std::ffi::OsStr>]| {
        args.extend(items.iter().map(|s| s.as_ref().to_owned()));
    };
    push(&[&"--tmpfs", &"/"]);
    for dir in SYSTEM_DIRS {
        let path = Path::new(dir);
        match std::fs::read_link(path) {
            Ok(target) => push(&[&"--symlink", &target, dir]),
            Err(_) if path.is_dir() => push(&[&"--ro-bind", dir, dir]),
            Err(_) => {}
        }
    }
    push(&[&"--proc", &"/proc", &"--dev", &"/dev", &"--tmpfs", &"/tmp"]);
    push(&[
        &"--dir",
        &"/home/cnb",
        &"--dir",
        &"/workspace",
        &"--dir",
        &"/layers",
    ]);
    push(&[
        &"--unshare-pid",
        &"--unshare-ipc",
        &"--unshare-uts",
        &"--die-with-parent",
    ]);
    push(&[&"--new-session"]);
    if !cmd.network {
        push(&[&"--unshare-net"]);
    }
    for dir in &cmd.sealed {
        push(&[&"--tmpfs", dir]);
    }
    for mount in &cmd.mounts {
        let flag = if mount.writable {
            "--bind"
        } else {
            "--ro-bind"
        };
        push(&[&flag, &mount.host, &mount.target]);
    }
    for dir in &cmd.sealed {
        push(&[&"--remount-ro", dir]);
    }
    push(&[&"--chdir", &cmd.cwd, &"--", &"/bin/sh"]);
    for arg in with_umask(&cmd.argv) {
        push(&[&arg]);
    }
    args
}

/// Arguments for `/bin/sh` that set the umask to 022 and exec `argv`: the modes of files
/// buildpacks create, and so the layers, must not depend on the umask strata was started with.
fn with_umask(argv: &[String]) -> Vec<String> {
    let mut wrapped = vec![
        "-c".to_owned(),
        "umask 022 && exec \"$@\"".to_owned(),
        "sh".to_owned(),
    ];
    wrapped.extend(argv.iter().cloned());
    wrapped
}

/// The last `lines` lines of a log file (at most 16 KiB are read).
pub fn log_tail(path: &Path, lines: usize) -> io::Result<String> {
    const MAX: u64 = 16 * 1024;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(MAX)))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    Ok(all[all.len().saturating_sub(lines)..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sandbox: &Sandbox, script: &str, mounts: Vec<Mount>, network: bool) -> Finished {
        let dir = tempfile::tempdir().unwrap();
        let cmd = SandboxCommand {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec![("PATH".into(), DEFAULT_PATH.into())],
            mounts,
            sealed: Vec::new(),
            cwd: "/".into(),
            network,
        };
        sandbox.run(&cmd, &dir.path().join("log")).unwrap()
    }

    #[test]
    fn bwrap_binds_task_dirs_at_their_image_paths() {
        let sandbox = Sandbox::bwrap().expect("bwrap is installed (apt-get install bubblewrap)");
        let ws = tempfile::tempdir().unwrap();
        let layers = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join("app.txt"), "hi").unwrap();
        let mounts = vec![
            Mount {
                host: ws.path().into(),
                target: "/workspace".into(),
                writable: false,
            },
            Mount {
                host: layers.path().into(),
                target: "/layers/bp".into(),
                writable: true,
            },
        ];
        let done = run(
            &sandbox,
            "cat /workspace/app.txt; echo made > /layers/bp/out; touch /workspace/x 2>/dev/null || echo ro",
            mounts,
            false,
        );
        assert!(done.status.success(), "{}", done.tail);
        assert_eq!(done.tail, "hiro");
        assert_eq!(
            std::fs::read_to_string(layers.path().join("out")).unwrap(),
            "made\n"
        );
        assert!(!ws.path().join("x").exists());
        assert!(
            !Path::new("/layers/bp").exists(),
            "mount points must not appear on the host"
        );
    }

    #[test]
    fn env_is_exactly_what_is_given_and_exit_codes_pass_through() {
        let sandbox = Sandbox::bwrap().expect("bwrap is installed");
        let done = run(
            &sandbox,
            "env | sort | tr '\\n' ' '; umask; exit 7",
            vec![],
            true,
        );
        assert_eq!(done.status.code(), Some(7));
        assert!(done.tail.starts_with("PATH="), "{}", done.tail);
        assert!(!done.tail.contains("HOME=/root"), "{}", done.tail);
        assert!(done.tail.ends_with("0022"), "umask is fixed: {}", done.tail);
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(
            &path,
            (1..=30)
                .map(|i| format!("line {i}"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .unwrap();
        let tail = log_tail(&path, 3).unwrap();
        assert_eq!(tail, "line 28\nline 29\nline 30");
    }
}
