//! `strata run`: an image's process in one command, isolated as the build sandbox is, with the
//! image unpacked once into the store, the process's exit code passed on, and strata's own
//! failures to start it exiting 125.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use common::*;

/// The example hello app, built once per test binary: its layout reference.
fn hello() -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let out = process_dir("out");
            build_example(&repo(), &examples().join("apps/hello"), &out, "hello", &[]);
            format!("oci:{}:hello", out.display())
        })
        .clone()
}

/// `strata run` with `args`, with its own cache dir `cache`.
fn run(cache: &Path, args: &[&str]) -> Output {
    let mut all = vec!["run", "--cache-dir", cache.to_str().unwrap()];
    all.extend_from_slice(args);
    strata(&repo(), &all)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fresh_cache(name: &str) -> PathBuf {
    let dir = process_dir(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The unpacked trees in the store of `cache`.
fn rootfs_trees(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache.join("store/rootfs"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn the_default_process_runs_through_the_launcher_and_the_image_is_unpacked_once() {
    let image = hello();
    let cache = fresh_cache("run-default");
    let first = run(&cache, &[&image]);
    assert_exit(&first, 0);
    assert_eq!(stdout(&first).trim(), "Welcome from greeter 1.2: strata");
    let trees = rootfs_trees(&cache);
    assert_eq!(trees.len(), 1, "one unpacked tree: {trees:?}");

    let second = run(&cache, &[&image]);
    assert_exit(&second, 0);
    assert_eq!(stdout(&second), stdout(&first));
    assert_eq!(
        rootfs_trees(&cache),
        trees,
        "the second run unpacks nothing"
    );
}

#[test]
fn the_exit_code_is_the_processs_and_env_and_entrypoint_override_the_image() {
    let image = hello();
    let cache = fresh_cache("run-exit");
    let out = run(
        &cache,
        &[
            &image,
            "-e",
            "EXTRA=hi",
            "-e",
            "CNB_USER_ID=0",
            "--entrypoint",
            "/cnb/lifecycle/launcher",
            "--",
            "echo \"$EXTRA $CNB_USER_ID from $(pwd) on $GREETER_VERSION\"; exit 7",
        ],
    );
    assert_exit(&out, 7);
    // The launcher applied the buildpack's launch env; `-e` adds to the image's env and
    // replaces what it sets (which does not change who the process runs as).
    assert_eq!(stdout(&out).trim(), "hi 0 from /workspace on 1.2");
}

#[test]
fn the_process_is_the_unprivileged_image_user_on_a_read_only_image() {
    let image = hello();
    let cache = fresh_cache("run-isolated");
    let script = "id -u; id -g; grep CapEff /proc/self/status; \
        touch /workspace/new 2>/dev/null && echo workspace-writable; \
        touch /tmp/new && echo tmp-writable; \
        ls /root 2>/dev/null && echo host-root-visible; \
        tr '\\0' '\\n' < /proc/1/cmdline | head -n 1";
    let out = run(
        &cache,
        &[
            &image,
            "--no-network",
            "--entrypoint",
            "/bin/sh",
            "--",
            "-c",
            script,
        ],
    );
    assert_exit(&out, 0);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["1000", "1000"], "{text}");
    assert_eq!(lines[2].split_whitespace().nth(1), Some("0000000000000000"));
    assert!(!text.contains("workspace-writable"), "{text}");
    assert!(text.contains("tmp-writable"), "{text}");
    assert!(!text.contains("host-root-visible"), "{text}");
    // Its own pid namespace: pid 1 is the sandbox's, not the host's init.
    assert!(lines.last().unwrap().ends_with("bwrap"), "{text}");

    // Without network it has its own loopback alone.
    let net = run(
        &cache,
        &[
            &image,
            "--no-network",
            "--entrypoint",
            "/bin/sh",
            "--",
            "-c",
            "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
        ],
    );
    assert_exit(&net, 0);
    assert_eq!(stdout(&net).trim(), "lo");
}

#[test]
fn another_process_type_runs_and_an_unknown_one_is_named_with_those_the_image_has() {
    let image = hello();
    let cache = fresh_cache("run-process");
    // `shell` is `/bin/sh`, reading its commands from the caller's stdin.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["run", "--cache-dir", cache.to_str().unwrap(), &image])
        .args(["--process", "shell"])
        .env("TMPDIR", scratch_tmpdir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        b"echo \"from $0 with $GREETER_VERSION\"\n",
    )
    .unwrap();
    let shell = child.wait_with_output().unwrap();
    assert_exit(&shell, 0);
    assert_eq!(stdout(&shell).trim(), "from /bin/sh with 1.2");

    for bad in ["nope", "../web", ""] {
        let out = run(&cache, &[&image, "--process", bad]);
        assert_exit(&out, 125);
        let err = stderr(&out);
        assert!(err.contains("shell, web"), "{bad}: {err}");
    }
}

#[test]
fn an_image_strata_cannot_read_exits_125_and_names_it() {
    let cache = fresh_cache("run-missing");
    let out = run(&cache, &["oci:/nonexistent/layout:app"]);
    assert_exit(&out, 125);
    assert!(
        stderr(&out).contains("/nonexistent/layout"),
        "{}",
        stderr(&out)
    );
    let out = run(&cache, &["nonsense"]);
    assert_exit(&out, 125);
    let out = run(&cache, &[&hello(), "-e", "=x"]);
    assert_exit(&out, 125);
    assert!(stderr(&out).contains("NAME=VALUE"), "{}", stderr(&out));
}
