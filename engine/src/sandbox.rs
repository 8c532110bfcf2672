//! The sandbox every buildpack process runs in.
//!
//! A buildpack writes absolute paths (`/layers/<id>/<layer>/bin` into `launch.toml`, shebangs,
//! env files) that must still be right inside the exported image. So each process runs in a
//! private mount namespace made by bubblewrap, where `/workspace`, `/layers/<id>` and
//! `/platform` are bind mounts of task-private host directories: the process sees the paths
//! the image will have, and cannot see other tasks' half-written outputs.
//!
//! A buildpack is untrusted code: it runs as the unprivileged build user in its own user
//! namespace with no capabilities (see [`args`] for the namespaces and why strata, started
//! as root, runs the build user as a host uid of its own, [`HOST_ID`]). What it must write
//! (its mounts marked writable, and what strata hands it with [`Sandbox::hand_over`])
//! belongs to that user; everything else of the host it sees is read-only and, for root's
//! private files (`/etc/shadow`), unreadable. It gets only the env strata gives it, and is
//! killed, with everything it started, when its time is up or strata exits.
//!
//! Network: a process with [`SandboxCommand::network`] shares the host's network namespace
//! (it can reach what the host reaches, loopback services and abstract unix sockets
//! included, as an unprivileged user); without it, it has only its own loopback.
//!
//! [`Sandbox::none`] runs processes on the host instead; mounts then resolve to their host
//! paths, so buildpacks see host paths and images built that way may carry them.

pub mod args;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use args::{HOST_ID, Root};
use args::{Isolation, Launch};

/// The `PATH` processes start with: fixed, so a build does not depend on the caller's shell.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The CNB build user's default uid and gid.
pub const DEFAULT_BUILD_USER: (u32, u32) = (1000, 1000);

/// How long a `bin/detect` may run unless the task timeout is shorter.
pub const DEFAULT_DETECT_TIMEOUT: Duration = Duration::from_mins(2);

/// How processes are isolated.
#[derive(Debug, Clone)]
pub enum Sandbox {
    /// bubblewrap.
    Bwrap(Bwrap),
    /// No isolation: processes run on the host with host paths.
    None,
}

/// A bubblewrap sandbox and its limits.
#[derive(Debug, Clone)]
pub struct Bwrap {
    isolation: Isolation,
    limits: Limits,
    /// The env a build image's config gives, empty on the host's root.
    image_env: Vec<(String, String)>,
}

/// How long processes may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A `bin/build` or a declared layer's script; `None` for no limit.
    pub task: Option<Duration>,
    /// A `bin/detect`.
    pub detect: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            task: None,
            detect: DEFAULT_DETECT_TIMEOUT,
        }
    }
}

impl Limits {
    /// Limits with `task` for build tasks, and for detect the default or `task` if shorter.
    pub fn with_task(task: Option<Duration>) -> Self {
        let detect = task.map_or(DEFAULT_DETECT_TIMEOUT, |t| t.min(DEFAULT_DETECT_TIMEOUT));
        Self { task, detect }
    }

    fn of(self, purpose: Purpose) -> Option<Duration> {
        match purpose {
            Purpose::Detect => Some(self.detect),
            Purpose::Build => self.task,
            Purpose::Run => None,
        }
    }
}

/// What a process is for, which decides its time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `bin/detect`.
    Detect,
    /// `bin/build` or a declared layer's script.
    Build,
    /// An image's own process (`strata run`): exec'd as it is, with no time limit and no
    /// umask of strata's.
    Run,
}

/// A directory made visible to the process.
#[derive(Debug, Clone)]
pub struct Mount {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the process sees it inside the sandbox (absolute).
    pub target: String,
    /// Whether the process may write to it. The directory itself is handed to the build
    /// user when the process starts; what is already in it must have been handed over by
    /// whoever put it there ([`Sandbox::hand_over`]).
    pub writable: bool,
    /// Whether strata made it for the sandbox (a platform dir): handed to the build user,
    /// all of it, when the process starts, so that it can be private on the host.
    pub private: bool,
}

impl Mount {
    /// A read-only mount.
    pub fn ro(host: impl Into<PathBuf>, target: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            target: target.into(),
            writable: false,
            private: false,
        }
    }

    /// A writable mount.
    pub fn rw(host: impl Into<PathBuf>, target: impl Into<String>) -> Self {
        Self {
            writable: true,
            ..Self::ro(host, target)
        }
    }

    /// A read-only mount of a small private tree strata made for the sandbox.
    pub fn private(host: impl Into<PathBuf>, target: impl Into<String>) -> Self {
        Self {
            private: true,
            ..Self::ro(host, target)
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
    /// What it is for (its time limit).
    pub purpose: Purpose,
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
    /// strata runs as root and `setpriv` is missing, so it cannot drop privileges.
    #[error(
        "`setpriv` (util-linux) is not installed: as root, strata needs it to run buildpacks as an unprivileged user"
    )]
    SetprivMissing,
    /// The process could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    /// The process ran past its time limit and was killed, with all it started.
    #[error("{program} ran longer than {}s and was killed\n--- last lines of its output ---\n{tail}", after.as_secs_f64())]
    TimedOut {
        program: String,
        after: Duration,
        tail: String,
    },
    /// The log file could not be written or read.
    #[error("cannot write log {path}: {source}", path = path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A directory could not be handed to the build user.
    #[error("cannot hand {path} to the build user: {source}", path = path.display())]
    HandOver {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Sandbox {
    /// bubblewrap, found on `PATH`, running processes as the default build user with the
    /// default limits.
    pub fn bwrap() -> Result<Self, SandboxError> {
        let bwrap = find_program("bwrap").ok_or(SandboxError::BwrapMissing)?;
        let launch = if running_as_root() {
            Launch::FromRoot {
                setpriv: find_program("setpriv").ok_or(SandboxError::SetprivMissing)?,
            }
        } else {
            Launch::Unprivileged
        };
        Ok(Sandbox::Bwrap(Bwrap {
            isolation: Isolation {
                bwrap,
                launch,
                user: DEFAULT_BUILD_USER,
                root: Root::Host,
            },
            limits: Limits::default(),
            image_env: Vec::new(),
        }))
    }

    /// No isolation.
    pub fn none() -> Self {
        Sandbox::None
    }

    /// The same sandbox with these time limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        if let Sandbox::Bwrap(bwrap) = &mut self {
            bwrap.limits = limits;
        }
        self
    }

    /// The same sandbox running processes as `uid:gid` inside.
    #[must_use]
    pub fn with_user(mut self, uid: u32, gid: u32) -> Self {
        if let Sandbox::Bwrap(bwrap) = &mut self {
            bwrap.isolation.user = (uid, gid);
        }
        self
    }

    /// The same sandbox with `/` made of `root`.
    #[must_use]
    pub fn with_root(mut self, root: Root) -> Self {
        if let Sandbox::Bwrap(bwrap) = &mut self {
            bwrap.isolation.root = root;
        }
        self
    }

    /// The same sandbox with `env`, a build image's config env, under every process's env.
    #[must_use]
    pub fn with_image_env(mut self, env: Vec<(String, String)>) -> Self {
        if let Sandbox::Bwrap(bwrap) = &mut self {
            bwrap.image_env = env;
        }
        self
    }

    /// The env of the build image `/` is made of (empty on the host's root or unsandboxed).
    pub fn image_env(&self) -> &[(String, String)] {
        match self {
            Sandbox::Bwrap(bwrap) => &bwrap.image_env,
            Sandbox::None => &[],
        }
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

    /// The host uid and gid that own what the build user writes, when that is not the
    /// caller itself (strata runs as root).
    pub fn host_owner(&self) -> Option<u32> {
        match self {
            Sandbox::Bwrap(Bwrap {
                isolation:
                    Isolation {
                        launch: Launch::FromRoot { .. },
                        ..
                    },
                ..
            }) => Some(HOST_ID),
            _ => None,
        }
    }

    /// Makes everything under `path` (which strata made: an app copy, an extracted layer)
    /// belong to the build user, so that a process can change what it is given, as the CNB
    /// build user owns the app and its layers. Links are changed, never followed; entries
    /// that already belong to it are left alone (their ctime too).
    ///
    /// # Errors
    /// [`SandboxError::HandOver`] when an entry cannot be changed.
    pub fn hand_over(&self, path: &Path) -> Result<(), SandboxError> {
        match self.host_owner() {
            Some(id) => hand_over_tree(path, id),
            None => Ok(()),
        }
    }

    /// Runs `cmd`, writing everything it prints to `log`, and returns how it ended.
    pub fn run(&self, cmd: &SandboxCommand, log: &Path) -> Result<Finished, SandboxError> {
        let log_err = |source| SandboxError::Log {
            path: log.to_owned(),
            source,
        };
        if let Some(id) = self.host_owner() {
            for mount in &cmd.mounts {
                if mount.private {
                    hand_over_tree(&mount.host, id)?;
                } else if mount.writable {
                    hand_over_one(&mount.host, id)?;
                }
            }
        }
        let out = File::create(log).map_err(log_err)?;
        let err = out.try_clone().map_err(log_err)?;
        let (mut command, limit) = match self {
            Sandbox::None => {
                let mut command = Command::new("/bin/sh");
                command
                    .args(args::with_umask(&cmd.argv))
                    .current_dir(&cmd.cwd);
                (command, None)
            }
            Sandbox::Bwrap(bwrap) => {
                let (program, argv) = args::argv(&bwrap.isolation, cmd);
                let mut command = Command::new(program);
                command.args(argv);
                (command, bwrap.limits.of(cmd.purpose))
            }
        };
        command
            .env_clear()
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let program = cmd.argv.first().cloned().unwrap_or_default();
        let mut child = command.spawn().map_err(|source| SandboxError::Spawn {
            program: program.clone(),
            source,
        })?;
        let spawn_err = |source| SandboxError::Spawn {
            program: program.clone(),
            source,
        };
        let status = match limit {
            None => child.wait().map_err(spawn_err)?,
            Some(after) => {
                let Some(status) =
                    wait_until(&mut child, Instant::now() + after).map_err(spawn_err)?
                else {
                    // Killing bwrap kills its pid namespace's init, and with it every
                    // process the buildpack started.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SandboxError::TimedOut {
                        program,
                        after,
                        tail: log_tail(log, 20).unwrap_or_default(),
                    });
                };
                status
            }
        };
        let tail = log_tail(log, 20).map_err(log_err)?;
        Ok(Finished { status, tail })
    }
}

impl Sandbox {
    /// Runs `cmd` on strata's own stdin, stdout and stderr, with no time limit, and returns
    /// how it ended: an image's process that a person started (`strata run`), not a
    /// buildpack. Only a bubblewrap sandbox can run one: an image is never run on the host.
    ///
    /// # Errors
    /// [`SandboxError::Spawn`] when bwrap cannot be started or the sandbox is `none`.
    pub fn run_attached(&self, cmd: &SandboxCommand) -> Result<ExitStatus, SandboxError> {
        let program = cmd.argv.first().cloned().unwrap_or_default();
        let Sandbox::Bwrap(bwrap) = self else {
            return Err(SandboxError::Spawn {
                program,
                source: io::Error::other("an image runs only in a bubblewrap sandbox"),
            });
        };
        let (bwrap_program, argv) = args::argv(&bwrap.isolation, cmd);
        let mut command = Command::new(bwrap_program);
        command
            .args(argv)
            .env_clear()
            .envs(cmd.env.iter().map(|(k, v)| (k, v)));
        let spawn_err = |source| SandboxError::Spawn {
            program: program.clone(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_err)?;
        child.wait().map_err(spawn_err)
    }
}

/// Waits for `child` until `deadline`; `None` if it is still running then. Short processes
/// (most detects take milliseconds) are seen to end within a fraction of their run time.
fn wait_until(
    child: &mut std::process::Child,
    deadline: Instant,
) -> io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_micros(200);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/bin".into()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn hand_over_one(path: &Path, id: u32) -> Result<(), SandboxError> {
    let err = |source| SandboxError::HandOver {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::symlink_metadata(path).map_err(err)?;
    if meta.uid() != id || meta.gid() != id {
        std::os::unix::fs::lchown(path, Some(id), Some(id)).map_err(err)?;
    }
    Ok(())
}

fn hand_over_tree(root: &Path, id: u32) -> Result<(), SandboxError> {
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| SandboxError::HandOver { path, source }
    };
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(err(&path))?;
        if meta.uid() != id || meta.gid() != id {
            std::os::unix::fs::lchown(&path, Some(id), Some(id)).map_err(err(&path))?;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(err(&path))? {
                stack.push(entry.map_err(err(&path))?.path());
            }
        }
    }
    Ok(())
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
            purpose: Purpose::Build,
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
                private: false,
            },
            Mount {
                host: layers.path().into(),
                target: "/layers/bp".into(),
                writable: true,
                private: false,
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

    /// What a hostile process tries inside; each line is `<probe> <result>`.
    const PROBES: &str = r#"
        echo "uid $(id -u):$(id -g)"
        echo "capeff $(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)"
        cat /etc/shadow >/dev/null 2>&1 && echo "shadow readable" || echo "shadow denied"
        mount -o remount,bind,rw /etc 2>/dev/null && echo "remount done" || echo "remount denied"
        echo pwned 2>/dev/null > /etc/strata-sandbox-probe && echo "etc written" || echo "etc denied"
        ls /root >/dev/null 2>&1 && echo "root visible" || echo "root hidden"
        unshare -U true 2>/dev/null && echo "userns made" || echo "userns denied"
        echo "secret ${CARGO_MANIFEST_DIR:-unset}"
        grep -l CARGO_MANIFEST_DIR /proc/[0-9]*/environ >/dev/null 2>&1 && echo "environ seen" || echo "environ clean"
        echo "pid1 $(ls -d /proc/[0-9]* | wc -l)"
        touch /workspace/made && ls -n /workspace/made | awk '{print "owner " $3 ":" $4}'
    "#;

    #[test]
    fn a_hostile_process_is_the_unprivileged_build_user_and_reaches_no_host_secret() {
        let sandbox = Sandbox::bwrap().expect("bwrap is installed");
        let ws = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cmd = SandboxCommand {
            argv: vec!["/bin/sh".into(), "-c".into(), PROBES.into()],
            env: vec![("PATH".into(), DEFAULT_PATH.into())],
            mounts: vec![Mount::rw(ws.path(), "/workspace")],
            sealed: Vec::new(),
            cwd: "/".into(),
            network: true,
            purpose: Purpose::Build,
        };
        // The caller's own environment (cargo's variables stand for cloud credentials)
        // must not reach the process.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let log = dir.path().join("log");
        let done = sandbox.run(&cmd, &log).unwrap();
        assert!(done.status.success(), "{}", done.tail);
        let out = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        let expect = [
            "uid 1000:1000",
            "capeff 0000000000000000",
            "shadow denied",
            "remount denied",
            "etc denied",
            "root hidden",
            "userns denied",
            "secret unset",
            "environ clean",
            "owner 1000:1000",
        ];
        for line in expect {
            assert!(lines.contains(&line), "`{line}` in:\n{out}");
        }
        assert!(!Path::new("/etc/strata-sandbox-probe").exists());
        // On the host, what it made belongs to the sandbox's own uid, never to root.
        let made = std::fs::symlink_metadata(ws.path().join("made")).unwrap();
        if sandbox.host_owner().is_some() {
            assert_eq!((made.uid(), made.gid()), (HOST_ID, HOST_ID));
        }
        assert_ne!(made.uid(), 0);
    }

    #[test]
    fn a_process_past_its_time_is_killed_with_everything_it_started() {
        let sandbox = Sandbox::bwrap()
            .expect("bwrap is installed")
            .with_limits(Limits {
                task: Some(Duration::from_millis(800)),
                detect: Duration::from_millis(800),
            });
        let marker = format!("strata-timeout-probe-{}", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        let cmd = SandboxCommand {
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("sh -c 'sleep 300; : {marker}' & sh -c 'sleep 300; : {marker}'"),
            ],
            env: vec![("PATH".into(), DEFAULT_PATH.into())],
            mounts: Vec::new(),
            sealed: Vec::new(),
            cwd: "/".into(),
            network: false,
            purpose: Purpose::Build,
        };
        let started = Instant::now();
        let err = sandbox.run(&cmd, &dir.path().join("log")).unwrap_err();
        assert!(matches!(err, SandboxError::TimedOut { .. }), "{err}");
        assert!(err.to_string().contains("ran longer than 0.8s"), "{err}");
        assert!(started.elapsed() < Duration::from_mins(1));
        // Nothing of it is left: no process on the host (bwrap, setpriv, the shells) has the
        // marker in its command line.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let alive = std::fs::read_dir("/proc")
                .unwrap()
                .filter_map(Result::ok)
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .any(|cmdline| String::from_utf8_lossy(&cmdline).contains(&marker));
            if !alive {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "a sleep outlived the killed sandbox"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn hand_over_changes_links_never_their_targets() {
        let sandbox = Sandbox::bwrap().expect("bwrap is installed");
        let Some(id) = sandbox.host_owner() else {
            return;
        };
        let outside = tempfile::NamedTempFile::new().unwrap();
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir(tree.path().join("sub")).unwrap();
        std::fs::write(tree.path().join("sub/file"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), tree.path().join("sub/link")).unwrap();
        sandbox.hand_over(tree.path()).unwrap();
        for rel in ["", "sub", "sub/file", "sub/link"] {
            let meta = std::fs::symlink_metadata(tree.path().join(rel)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (id, id), "{rel}");
        }
        let target = std::fs::metadata(outside.path()).unwrap();
        assert_eq!(
            target.uid(),
            0,
            "the link's target is the host's and stays root's"
        );
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
