//! The bubblewrap argument lists, built from a typed description of the sandbox.
//!
//! A process runs as the CNB build user (`--uid`/`--gid`, 1000:1000 by default) in a new
//! user namespace, with no capabilities, its own pid, ipc, uts and cgroup namespaces, no
//! nested user namespaces, a new session, and killed when strata dies. Its root is a tmpfs
//! holding the host's system directories read-only plus the task's mounts; nothing else of
//! the host is there (no `/root`, no home, no `/run`, no host `/tmp`).
//!
//! The build user is never host root. Started by an unprivileged caller, bwrap maps the build
//! user onto the caller. Started as root, strata must not let the build user *be* host root
//! (it would own every root-owned file it can see, `/etc/shadow` among them, and daemons
//! would trust its socket credentials), so it runs two bwraps:
//!
//! 1. an outer one, as root, with no user namespace: it only binds each of the task's
//!    mounts at `/stage/<n>` (root can reach any host path, an unprivileged process could
//!    not reach a path under `/root`), then runs `setpriv`, which drops to the sandbox's own
//!    host uid and gid ([`HOST_ID`]) with no capabilities, no bounding set and
//!    `no_new_privs`;
//! 2. the inner one, as that unprivileged host user: it makes the user namespace in which
//!    [`HOST_ID`] is the build user, and binds `/stage/<n>` at the mounts' targets.
//!
//! The outer bwrap has its own pid namespace, so when it is killed (a timeout, or strata
//! dying, through `--die-with-parent`) its init dies and takes every process below with it,
//! even though `setpriv`'s change of user clears the parent-death signal.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use super::{Purpose, SandboxCommand};

/// The host uid and gid the build user is when strata runs as root: a number no account
/// has, so the build user owns nothing on the host but what strata hands it.
pub const HOST_ID: u32 = 2_000_000_000;

/// Host directories bound read-only into every sandbox when they exist (links stay links).
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt",
];

/// Where the outer bwrap stages the task's mounts for the inner one.
const STAGE: &str = "/stage";

/// Where the outer bwrap stages a build image's root filesystem for the inner one.
const STAGE_ROOT: &str = "/stage/root";

/// Top-level entries of a build image's root filesystem the sandbox brings its own of, or
/// mounts the task's directories at: they are not bound from the image.
const OWN_DIRS: &[&str] = &[
    "proc",
    "dev",
    "tmp",
    "home",
    "workspace",
    "layers",
    "platform",
    "cnb",
];

/// What the sandbox's `/` is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// The host's system directories ([`SYSTEM_DIRS`]), read-only: not hermetic.
    Host,
    /// A build image's root filesystem, unpacked at this host path, read-only.
    Image(PathBuf),
}

/// How bubblewrap is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// strata is not root: one bwrap maps the build user onto the caller.
    Unprivileged,
    /// strata is root: an outer bwrap stages the mounts and `setpriv` (at this path) drops
    /// to [`HOST_ID`] before the inner bwrap runs.
    FromRoot { setpriv: PathBuf },
}

/// Everything that decides a process's bwrap arguments but the process itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    /// bwrap itself.
    pub bwrap: PathBuf,
    /// How it is started.
    pub launch: Launch,
    /// The build user's uid and gid inside the sandbox.
    pub user: (u32, u32),
    /// What `/` is made of.
    pub root: Root,
}

/// The program and arguments that run `cmd` under `isolation`.
pub fn argv(isolation: &Isolation, cmd: &SandboxCommand) -> (PathBuf, Vec<OsString>) {
    match &isolation.launch {
        Launch::Unprivileged => {
            let sources: Vec<&Path> = cmd.mounts.iter().map(|m| m.host.as_path()).collect();
            let root = match &isolation.root {
                Root::Host => None,
                Root::Image(dir) => Some(dir.as_path()),
            };
            (
                isolation.bwrap.clone(),
                inner(isolation.user, root, cmd, &sources),
            )
        }
        Launch::FromRoot { setpriv } => {
            let staged: Vec<PathBuf> = (0..cmd.mounts.len())
                .map(|i| PathBuf::from(format!("{STAGE}/{i}")))
                .collect();
            let sources: Vec<&Path> = staged.iter().map(PathBuf::as_path).collect();
            let mut args = Args::default();
            args.push(["--unshare-pid", "--die-with-parent", "--tmpfs", "/"]);
            system_dirs(&mut args);
            // The inner bwrap may mount a new proc only where a full one is visible.
            args.push(["--bind", "/proc", "/proc", "--dev", "/dev", "--dir", "/tmp"]);
            args.push(["--perms", "0711", "--dir", STAGE]);
            let root = match &isolation.root {
                Root::Host => None,
                Root::Image(dir) => {
                    args.push([
                        OsStr::new("--ro-bind"),
                        dir.as_os_str(),
                        STAGE_ROOT.as_ref(),
                    ]);
                    Some(dir.as_path())
                }
            };
            for (mount, stage) in cmd.mounts.iter().zip(&staged) {
                let flag = if mount.writable {
                    "--bind"
                } else {
                    "--ro-bind"
                };
                args.push([flag.as_ref(), mount.host.as_os_str(), stage.as_os_str()]);
            }
            let id = HOST_ID.to_string();
            args.push([OsStr::new("--"), setpriv.as_os_str()]);
            args.push(["--reuid", &id, "--regid", &id, "--clear-groups"]);
            args.push(["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]);
            args.push([OsStr::new("--"), isolation.bwrap.as_os_str()]);
            let staged_root = root.map(|dir| (dir, Path::new(STAGE_ROOT)));
            args.0
                .extend(inner_with(isolation.user, staged_root, cmd, &sources));
            (isolation.bwrap.clone(), args.0)
        }
    }
}

/// The arguments of the bwrap that makes the user namespace, with each mount's source at
/// the path of the same index in `sources`, and `/` made of the image rootfs at `root` (seen
/// at the same path) or the host's system directories.
fn inner(
    user: (u32, u32),
    root: Option<&Path>,
    cmd: &SandboxCommand,
    sources: &[&Path],
) -> Vec<OsString> {
    inner_with(user, root.map(|dir| (dir, dir)), cmd, sources)
}

/// As [`inner`], with the image rootfs read on the host at the first path of `root` and
/// seen by this bwrap at the second.
fn inner_with(
    user: (u32, u32),
    root: Option<(&Path, &Path)>,
    cmd: &SandboxCommand,
    sources: &[&Path],
) -> Vec<OsString> {
    let (uid, gid) = (user.0.to_string(), user.1.to_string());
    let mut args = Args::default();
    args.push([
        "--unshare-user",
        "--uid",
        &uid,
        "--gid",
        &gid,
        "--disable-userns",
    ]);
    args.push(["--unshare-pid", "--unshare-ipc", "--unshare-uts"]);
    args.push(["--unshare-cgroup-try", "--die-with-parent", "--new-session"]);
    args.push(["--cap-drop", "ALL"]);
    if !cmd.network {
        args.push(["--unshare-net"]);
    }
    args.push(["--tmpfs", "/"]);
    match root {
        None => system_dirs(&mut args),
        Some((host, seen)) => image_dirs(&mut args, host, seen),
    }
    args.push(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
    args.push([
        "--dir",
        "/home/cnb",
        "--dir",
        "/workspace",
        "--dir",
        "/layers",
    ]);
    for dir in &cmd.sealed {
        args.push(["--tmpfs", dir]);
    }
    for (mount, source) in cmd.mounts.iter().zip(sources) {
        let flag = if mount.writable {
            "--bind"
        } else {
            "--ro-bind"
        };
        args.push([flag.as_ref(), source.as_os_str(), mount.target.as_ref()]);
    }
    for dir in &cmd.sealed {
        args.push(["--remount-ro", dir]);
    }
    args.push(["--chdir", &cmd.cwd, "--"]);
    // A buildpack's process starts under a fixed umask; an image's own process is exec'd as
    // its config says, as a container runtime would.
    let program = if cmd.purpose == Purpose::Run {
        cmd.argv.clone()
    } else {
        let mut shell = vec!["/bin/sh".to_owned()];
        shell.extend(with_umask(&cmd.argv));
        shell
    };
    for arg in program {
        args.push([arg]);
    }
    args.0
}

/// Binds the host's system directories read-only, keeping links (`/bin -> usr/bin`) links.
fn system_dirs(args: &mut Args) {
    for dir in SYSTEM_DIRS {
        let path = Path::new(dir);
        match std::fs::read_link(path) {
            Ok(target) => args.push([OsStr::new("--symlink"), target.as_os_str(), dir.as_ref()]),
            Err(_) if path.is_dir() => args.push(["--ro-bind", dir, dir]),
            Err(_) => {}
        }
    }
}

/// Binds each top-level entry of the image rootfs at `host` (seen by bwrap at `seen`)
/// read-only at `/`, but those the sandbox makes itself ([`OWN_DIRS`]); links stay links.
/// `/` itself stays the sandbox's tmpfs, so that the task's mount points can be made in it.
fn image_dirs(args: &mut Args, host: &Path, seen: &Path) {
    let Ok(entries) = std::fs::read_dir(host) else {
        return;
    };
    let mut names: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        if OWN_DIRS.iter().any(|own| name == OsStr::new(own)) {
            continue;
        }
        let target = Path::new("/").join(&name);
        match std::fs::read_link(host.join(&name)) {
            Ok(link) => args.push([
                OsStr::new("--symlink"),
                link.as_os_str(),
                target.as_os_str(),
            ]),
            Err(_) => args.push([
                OsStr::new("--ro-bind"),
                seen.join(&name).as_os_str(),
                target.as_os_str(),
            ]),
        }
    }
}

/// Arguments for `/bin/sh` that set the umask to 022 and exec `argv`: the modes of files
/// buildpacks create, and so the layers, must not depend on the umask strata was started with.
pub(super) fn with_umask(argv: &[String]) -> Vec<String> {
    let mut wrapped = vec![
        "-c".to_owned(),
        "umask 022 && exec \"$@\"".to_owned(),
        "sh".to_owned(),
    ];
    wrapped.extend(argv.iter().cloned());
    wrapped
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn push<S: AsRef<OsStr>, const N: usize>(&mut self, items: [S; N]) {
        self.0
            .extend(items.into_iter().map(|s| s.as_ref().to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::super::Mount;
    use super::*;

    fn cmd(network: bool) -> SandboxCommand {
        SandboxCommand {
            argv: vec!["/cnb/buildpacks/bp/1/bin/build".into()],
            env: Vec::new(),
            mounts: vec![
                Mount::rw("/host/ws", "/workspace"),
                Mount::ro("/root/repo/bp", "/cnb/buildpacks/bp/1"),
            ],
            sealed: Vec::new(),
            cwd: "/workspace".into(),
            network,
            purpose: super::super::Purpose::Build,
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn window(args: &[String], needle: &[&str]) -> bool {
        args.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn unprivileged_runs_one_bwrap_as_the_build_user_without_capabilities() {
        let isolation = Isolation {
            bwrap: "/usr/bin/bwrap".into(),
            launch: Launch::Unprivileged,
            user: (1000, 1001),
            root: Root::Host,
        };
        let (program, args) = argv(&isolation, &cmd(false));
        let args = strings(&args);
        assert_eq!(program, Path::new("/usr/bin/bwrap"));
        for needle in [
            &["--unshare-user", "--uid", "1000", "--gid", "1001"][..],
            &["--cap-drop", "ALL"],
            &["--disable-userns"],
            &["--unshare-net"],
            &["--bind", "/host/ws", "/workspace"],
            &["--ro-bind", "/root/repo/bp", "/cnb/buildpacks/bp/1"],
        ] {
            assert!(window(&args, needle), "{needle:?} in {args:?}");
        }
        assert!(!args.iter().any(|a| a == "setpriv" || a.contains("/stage")));
        assert!(!window(&args, &["--ro-bind", "/", "/"]), "/ is never bound");
    }

    #[test]
    fn from_root_stages_mounts_then_drops_to_the_sandbox_host_id() {
        let isolation = Isolation {
            bwrap: "/usr/bin/bwrap".into(),
            launch: Launch::FromRoot {
                setpriv: "/usr/bin/setpriv".into(),
            },
            user: (1000, 1000),
            root: Root::Host,
        };
        let (_, args) = argv(&isolation, &cmd(true));
        let args = strings(&args);
        let id = HOST_ID.to_string();
        let split = args.iter().position(|a| a == "/usr/bin/setpriv").unwrap();
        let (outer, rest) = args.split_at(split);
        assert!(window(outer, &["--bind", "/host/ws", "/stage/0"]));
        assert!(window(outer, &["--ro-bind", "/root/repo/bp", "/stage/1"]));
        assert!(
            !outer.iter().any(|a| a == "--unshare-user"),
            "outer is root"
        );
        assert!(window(
            rest,
            &["--reuid", &id, "--regid", &id, "--clear-groups"]
        ));
        assert!(window(rest, &["--bounding-set=-all", "--no-new-privs"]));
        assert!(window(rest, &["--bind", "/stage/0", "/workspace"]));
        assert!(window(
            rest,
            &["--ro-bind", "/stage/1", "/cnb/buildpacks/bp/1"]
        ));
        assert!(window(rest, &["--unshare-user", "--uid", "1000"]));
        assert!(
            !rest.iter().any(|a| a == "/host/ws"),
            "inner sees staged paths only"
        );
        assert!(!window(rest, &["--unshare-net"]), "network was asked for");
    }

    #[test]
    fn image_root_binds_the_rootfs_entries_instead_of_the_host_system_dirs() {
        let rootfs = tempfile::tempdir().unwrap();
        std::fs::create_dir(rootfs.path().join("usr")).unwrap();
        std::fs::create_dir(rootfs.path().join("etc")).unwrap();
        std::fs::create_dir(rootfs.path().join("proc")).unwrap();
        std::os::unix::fs::symlink("usr/bin", rootfs.path().join("bin")).unwrap();
        let root = rootfs.path().to_str().unwrap().to_owned();
        for launch in [
            Launch::Unprivileged,
            Launch::FromRoot {
                setpriv: "/usr/bin/setpriv".into(),
            },
        ] {
            let from_root = matches!(launch, Launch::FromRoot { .. });
            let isolation = Isolation {
                bwrap: "/usr/bin/bwrap".into(),
                launch,
                user: (1000, 1000),
                root: Root::Image(rootfs.path().to_owned()),
            };
            let (_, args) = argv(&isolation, &cmd(false));
            let args = strings(&args);
            let start = args.iter().position(|a| a == "--unshare-user").unwrap();
            let inner = &args[start..];
            let seen = if from_root {
                STAGE_ROOT.to_owned()
            } else {
                root.clone()
            };
            assert!(window(
                inner,
                &["--ro-bind", &format!("{seen}/usr"), "/usr"]
            ));
            assert!(window(
                inner,
                &["--ro-bind", &format!("{seen}/etc"), "/etc"]
            ));
            assert!(window(inner, &["--symlink", "usr/bin", "/bin"]));
            assert!(!window(inner, &["--ro-bind", "/usr", "/usr"]), "{inner:?}");
            assert!(!inner.iter().any(|a| a.ends_with("/proc") && a != "/proc"));
            assert!(window(inner, &["--cap-drop", "ALL"]));
            assert!(window(
                inner,
                &["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
            ));
            if from_root {
                assert!(window(&args[..start], &["--ro-bind", &root, STAGE_ROOT]));
            }
        }
    }

    #[test]
    fn a_buildpack_starts_under_a_fixed_umask_and_an_image_process_is_execd_as_it_is() {
        let isolation = Isolation {
            bwrap: "/usr/bin/bwrap".into(),
            launch: Launch::Unprivileged,
            user: (1000, 1000),
            root: Root::Host,
        };
        let build = strings(&argv(&isolation, &cmd(false)).1);
        let tail = &build[build.iter().position(|a| a == "--chdir").unwrap() + 2..];
        assert_eq!(tail[..3], ["--", "/bin/sh", "-c"]);
        assert!(tail[3].starts_with("umask 022"), "{tail:?}");

        let mut run = cmd(true);
        run.purpose = super::super::Purpose::Run;
        run.argv = vec!["/cnb/process/web".into(), "arg".into()];
        let args = strings(&argv(&isolation, &run).1);
        let tail = &args[args.iter().position(|a| a == "--chdir").unwrap() + 2..];
        assert_eq!(tail, ["--", "/cnb/process/web", "arg"]);
        assert!(!args.iter().any(|a| a == "--unshare-net"));
    }
}
