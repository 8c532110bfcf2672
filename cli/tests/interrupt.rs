//! Stopped and killed builds: SIGINT and SIGTERM leave no scratch directory, staging directory,
//! store temp file or sandboxed process; what a SIGKILL leaves is removed by the next build
//! and by `cache gc`, never what a live build is using.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rustix::process::{Pid, Signal, kill_process, kill_process_group};

/// A fixture: a temp dir with its own `TMPDIR` (where builds put their scratch directories),
/// cache dir and output layout.
struct Fixture {
    tmp: tempfile::TempDir,
    /// Builds started, killed when the test ends (a failing test must not leave them).
    spawned: std::cell::RefCell<Vec<u32>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for &pid in self.spawned.borrow().iter() {
            if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
                let _ = kill_process(pid, Signal::TERM);
            }
        }
    }
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        for dir in ["tmpdir", "cache", "app"] {
            std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
        }
        std::fs::write(tmp.path().join("app/main.txt"), "hello").unwrap();
        Self {
            tmp,
            spawned: std::cell::RefCell::default(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// An opaque buildpack `name` whose `bin/build` runs `body`.
    fn buildpack(&self, name: &str, body: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(
            dir.join("buildpack.toml"),
            format!("api = \"0.10\"\n\n[buildpack]\nid = \"test/{name}\"\nversion = \"1.0.0\"\n"),
        )
        .unwrap();
        for (script, text) in [("detect", "exit 0"), ("build", body)] {
            let path = dir.join("bin").join(script);
            std::fs::write(&path, format!("#!/bin/sh\n{text}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    /// A buildpack that marks its layers dir `started` and then sleeps `marker` seconds in a
    /// child process (not exec'd: the sleep is a grandchild of the sandbox).
    fn sleeper(&self, name: &str, marker: u32) -> PathBuf {
        self.buildpack(
            name,
            &format!("echo started > \"$1/started\"\nsleep {marker}\necho done"),
        )
    }

    /// Starts `strata build` of the app with `buildpack` into `oci:<out>:<tag>`.
    fn spawn_build(&self, buildpack: &Path, out: &str, tag: &str) -> Child {
        self.spawn_build_with(buildpack, out, tag, &[])
    }

    /// [`Fixture::spawn_build`] with `extra` arguments.
    fn spawn_build_with(&self, buildpack: &Path, out: &str, tag: &str, extra: &[&str]) -> Child {
        let app = self.path("app");
        let output = format!("oci:{}:{tag}", self.path(out).display());
        let cache = self.path("cache");
        let mut args = vec![
            "build",
            app.to_str().unwrap(),
            "--buildpack",
            buildpack.to_str().unwrap(),
            "--env",
            "API_TOKEN=secret",
            "--output",
            &output,
            "--cache-dir",
            cache.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let child = self.command(&args).spawn().unwrap();
        self.spawned.borrow_mut().push(child.id());
        child
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
        command
            .args(args)
            .current_dir(self.tmp.path())
            .env("TMPDIR", self.path("tmpdir"))
            .env("XDG_CACHE_HOME", self.path("xdg"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, as a shell gives a command: Ctrl-C signals the group.
            .process_group(0);
        command
    }

    /// What builds left in `TMPDIR`.
    fn scratch_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.path("tmpdir"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        dirs
    }

    /// The store's temp files and directories.
    fn store_temps(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.path("cache/store/tmp")) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Staging directories beside the output layouts.
    fn staging_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(".staging-"))
            .collect()
    }
}

/// Waits until a file named `name` exists under `dir` (a buildpack has started), or the build
/// ended without getting there.
fn wait_for_file(dir: &Path, name: &str, child: &mut Child) -> PathBuf {
    loop {
        if let Some(found) = find(dir, name) {
            return found;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the build ended ({status}) before {name} appeared: {err}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if entry.file_name() == name {
            return Some(path);
        }
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && let Some(found) = find(&path, name)
        {
            return Some(found);
        }
    }
    None
}

fn signal(child: &Child, signal: Signal) {
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    kill_process(pid, signal).unwrap();
}

/// Signals the process group `child` leads, as Ctrl-C in a terminal does.
fn signal_group(child: &Child, signal: Signal) {
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    kill_process_group(pid, signal).unwrap();
}

/// Live processes whose command line mentions `needle` (zombies have none).
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(cmdline);
        }
    }
    found
}

/// The scratch directory of the build whose buildpack wrote `started`.
fn scratch_of(fixture: &Fixture, started: &Path) -> PathBuf {
    let rel = started.strip_prefix(fixture.path("tmpdir")).unwrap();
    fixture
        .path("tmpdir")
        .join(rel.components().next().unwrap())
}

/// How a signal is sent: to the build, or to its process group.
#[derive(Clone, Copy)]
enum To {
    Process,
    Group,
}

fn stopped_mid_task(to: To, sig: Signal, code: i32, marker: u32, extra: &[&str]) {
    let fixture = Fixture::new();
    let sleeper = fixture.sleeper("sleeper", marker);
    let mut build = fixture.spawn_build_with(&sleeper, "out", "app", extra);
    let started = wait_for_file(&fixture.path("tmpdir"), "started", &mut build);
    let scratch = scratch_of(&fixture, &started);
    // Private: the scratch dir, the app's copy, and the --env values.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let token = find(&scratch, "API_TOKEN").unwrap(); // the platform dir, in the scratch
    assert_eq!(mode(&scratch), 0o700);
    assert_eq!(mode(&token), 0o600);
    assert_eq!(mode(token.parent().unwrap()), 0o700);
    assert_eq!(mode(&find(&scratch, "workspace").unwrap()), 0o700);
    while processes_with(&format!("sleep {marker}")).is_empty() {
        assert!(build.try_wait().unwrap().is_none(), "the build ended");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    match to {
        To::Process => signal(&build, sig),
        To::Group => signal_group(&build, sig),
    }
    let out = build.wait_with_output().unwrap();
    assert_eq!(
        fixture.scratch_dirs(),
        Vec::<PathBuf>::new(),
        "no scratch dir is left"
    );
    assert_eq!(fixture.staging_dirs(), Vec::<PathBuf>::new());
    assert_eq!(
        fixture.store_temps(),
        Vec::<PathBuf>::new(),
        "no store temp file is left"
    );
    assert_eq!(
        processes_with(&format!("sleep {marker}")),
        Vec::<String>::new()
    );
    let sandboxes = processes_with(&sleeper.display().to_string());
    assert_eq!(sandboxes, Vec::<String>::new(), "no bwrap is left");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
}

#[test]
fn sigterm_mid_task_leaves_no_scratch_and_no_process() {
    stopped_mid_task(To::Process, Signal::TERM, 143, 73_011, &[]);
}

#[test]
fn sigint_mid_task_leaves_no_scratch_and_no_process() {
    stopped_mid_task(To::Process, Signal::INT, 130, 73_012, &[]);
}

#[test]
fn sigint_to_the_process_group_like_ctrl_c_leaves_no_scratch_and_no_process() {
    // bwrap gets it too and dies: the build must still end as stopped, not as failed.
    stopped_mid_task(To::Group, Signal::INT, 130, 73_016, &[]);
}

#[test]
fn sigterm_kills_the_host_processes_of_an_unsandboxed_build() {
    // No pid namespace and no --die-with-parent: only the handler kills them.
    stopped_mid_task(
        To::Process,
        Signal::TERM,
        143,
        73_015,
        &["--sandbox", "none"],
    );
}

#[test]
fn sigterm_while_waiting_for_the_layout_lock_removes_the_staging_dir() {
    let fixture = Fixture::new();
    let quick = fixture.buildpack("quick", "exit 0");
    // Another commit to a layout in this directory holds the lock: the build waits for it
    // with its image staged.
    let parent = File::open(fixture.tmp.path()).unwrap();
    parent.lock().unwrap();
    let mut build = fixture.spawn_build(&quick, "out", "app");
    loop {
        let staged = fixture
            .staging_dirs()
            .iter()
            .any(|d| find(d, "blobs").is_some());
        if staged {
            break;
        }
        assert!(
            build.try_wait().unwrap().is_none(),
            "the build ended before staging"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    signal(&build, Signal::TERM);
    let out = build.wait_with_output().unwrap();
    assert_eq!(
        fixture.staging_dirs(),
        Vec::<PathBuf>::new(),
        "no staging dir is left"
    );
    assert_eq!(fixture.scratch_dirs(), Vec::<PathBuf>::new());
    assert_eq!(fixture.store_temps(), Vec::<PathBuf>::new());
    assert!(
        !fixture.path("out/index.json").exists(),
        "nothing was committed"
    );
    assert_eq!(out.status.code(), Some(143));
}

/// The scratch dir of a build killed with SIGKILL, and a live build (still in its buildpack) with its own.
fn killed_and_live(fixture: &Fixture, marker: u32) -> (PathBuf, PathBuf, Child) {
    let sleeper = fixture.sleeper("sleeper", marker);
    let mut killed = fixture.spawn_build(&sleeper, "out-killed", "app");
    let started = wait_for_file(&fixture.path("tmpdir"), "started", &mut killed);
    let dead_scratch = scratch_of(fixture, &started);
    signal(&killed, Signal::KILL);
    killed.wait().unwrap();
    assert!(dead_scratch.exists(), "SIGKILL leaves the scratch dir");

    let mut live = fixture.spawn_build(&sleeper, "out-live", "app");
    let live_scratch = loop {
        let other = fixture
            .scratch_dirs()
            .into_iter()
            .find(|d| *d != dead_scratch);
        if let Some(dir) = other
            && find(&dir, "started").is_some()
        {
            break dir;
        }
        assert!(live.try_wait().unwrap().is_none(), "the live build ended");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (dead_scratch, live_scratch, live)
}

#[test]
fn the_next_build_removes_a_killed_builds_scratch_but_not_a_live_ones() {
    let fixture = Fixture::new();
    let (dead, live_dir, live) = killed_and_live(&fixture, 73_013);

    let quick = fixture.buildpack("quick", "exit 0");
    let out = fixture
        .spawn_build(&quick, "out-next", "app")
        .wait_with_output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dead.exists(), "the killed build's scratch dir is gone");
    assert!(live_dir.exists(), "the live build's scratch dir stays");
    assert!(find(&live_dir, "API_TOKEN").is_some());

    signal(&live, Signal::TERM);
    assert_eq!(live.wait_with_output().unwrap().status.code(), Some(143));
    assert_eq!(fixture.scratch_dirs(), Vec::<PathBuf>::new());
}

#[test]
fn cache_gc_removes_a_killed_builds_scratch_but_not_a_live_ones() {
    let fixture = Fixture::new();
    let (dead, live_dir, live) = killed_and_live(&fixture, 73_014);

    // The live build keeps the store busy: gc refuses the store, not the scratch dirs.
    let cache = fixture.path("cache");
    let gc = fixture
        .command(&["cache", "gc", "--cache-dir", cache.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(gc.status.code().is_some_and(|c| c <= 1), "{gc:?}");
    assert!(!dead.exists(), "the killed build's scratch dir is gone");
    assert!(live_dir.exists(), "the live build's scratch dir stays");

    signal(&live, Signal::TERM);
    assert_eq!(live.wait_with_output().unwrap().status.code(), Some(143));
    assert_eq!(fixture.scratch_dirs(), Vec::<PathBuf>::new());
}
