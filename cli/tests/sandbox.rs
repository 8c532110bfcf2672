//! A hostile buildpack, or an app repository that ships one, against the sandbox: it runs as
//! the unprivileged build user with no capabilities, reads no host secret, writes nothing of
//! the host, sees none of the caller's environment, reaches the network only as documented,
//! and is killed when its time is up.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// What the hostile scripts try; each line is `<probe> <result>`.
const PROBES: &str = r#"
echo "uid $(id -u):$(id -g)"
echo "capeff $(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)"
cat /etc/shadow >/dev/null 2>&1 && echo "shadow readable" || echo "shadow denied"
mount -o remount,bind,rw /etc 2>/dev/null && echo "remount done" || echo "remount denied"
(echo pwned > /etc/strata-hostile-probe) 2>/dev/null && echo "etc written" || echo "etc denied"
ls /root >/dev/null 2>&1 && echo "root visible" || echo "root hidden"
echo "secret ${STRATA_TEST_CLOUD_SECRET:-unset}"
grep -l STRATA_TEST_CLOUD_SECRET /proc/[0-9]*/environ >/dev/null 2>&1 && echo "environ seen" || echo "environ clean"
"#;

/// What every probe must say.
const SAFE: &[&str] = &[
    "uid 1000:1000",
    "capeff 0000000000000000",
    "shadow denied",
    "remount denied",
    "etc denied",
    "root hidden",
    "secret unset",
    "environ clean",
];

fn script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A buildpack in `dir` with these scripts.
fn buildpack(dir: &Path, id: &str, detect: &str, build: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("buildpack.toml"),
        format!("api = \"0.10\"\n\n[buildpack]\nid = \"{id}\"\nversion = \"1.0.0\"\n"),
    )
    .unwrap();
    script(&dir.join("bin/detect"), detect);
    script(&dir.join("bin/build"), build);
    dir.to_owned()
}

/// `strata` with a caller environment holding a secret, as a CI job's cloud credentials.
fn strata_with_secret(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .current_dir(cwd)
        .env("STRATA_TEST_CLOUD_SECRET", "hunter2")
        .env("XDG_CACHE_HOME", process_dir("cache"))
        .output()
        .unwrap()
}

fn assert_safe(output: &str) {
    for line in SAFE {
        assert!(output.contains(line), "`{line}` in:\n{output}");
    }
    assert!(!output.contains("hunter2"), "{output}");
    assert!(!Path::new("/etc/strata-hostile-probe").exists());
}

#[test]
fn a_buildpack_builds_as_the_unprivileged_build_user_and_reaches_no_host_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.txt"), "hello").unwrap();
    // It prints what it could do, then fails so that strata shows the lines.
    let bp = buildpack(
        &tmp.path().join("hostile"),
        "test/hostile",
        "exit 0",
        &format!("{PROBES}\nexit 3"),
    );
    let out = strata_with_secret(
        tmp.path(),
        &[
            "build",
            app.to_str().unwrap(),
            "--buildpack",
            bp.to_str().unwrap(),
            "--output",
            &format!("oci:{}:x", tmp.path().join("out").display()),
        ],
    );
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("test/hostile@1.0.0"), "{err}");
    assert_safe(&err);
}

#[test]
fn a_buildpack_shipped_in_the_app_repository_is_sandboxed_when_planning() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("project.toml"),
        "[_]\nschema-version = \"0.2\"\n\n[[io.buildpacks.group]]\nuri = \".bp\"\n",
    )
    .unwrap();
    buildpack(
        &app.join(".bp"),
        "repo/hostile",
        &format!("{PROBES}\nexit 1"),
        "exit 0",
    );
    let out = strata_with_secret(tmp.path(), &["plan", app.to_str().unwrap()]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("repo/hostile"), "{err}");
    assert_safe(&err);
}

#[test]
fn a_build_past_its_task_timeout_is_killed_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.txt"), "hello").unwrap();
    let bp = buildpack(
        &tmp.path().join("slow"),
        "test/slow",
        "exit 0",
        "echo started; sleep 600 & sleep 600",
    );
    let started = std::time::Instant::now();
    let out = strata(
        tmp.path(),
        &[
            "build",
            app.to_str().unwrap(),
            "--buildpack",
            bp.to_str().unwrap(),
            "--task-timeout",
            "2s",
            "--output",
            &format!("oci:{}:x", tmp.path().join("out").display()),
        ],
    );
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("ran longer than 2s"), "{err}");
    assert!(err.contains("started"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_mins(5));
    assert_exit(&strata(tmp.path(), &["build", "--task-timeout", "0s"]), 2);
}

/// A loopback TCP listener on the host, as a metadata service or a local database.
fn listener() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

#[test]
fn network_is_the_hosts_by_default_and_none_with_network_none() {
    let (_listener, port) = listener();
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.txt"), "hello").unwrap();
    let probe = format!(
        "bash -c 'echo > /dev/tcp/127.0.0.1/{port}' 2>/dev/null && echo 'net reached' || echo 'net unreachable'; exit 3"
    );
    let bp = buildpack(&tmp.path().join("net"), "test/net", "exit 0", &probe);
    let build = |extra: &[&str]| {
        let output = format!("oci:{}:x", tmp.path().join("out").display());
        let mut args = vec![
            "build",
            app.to_str().unwrap(),
            "--buildpack",
            bp.to_str().unwrap(),
            "--output",
            &output,
            "--no-cache",
        ];
        args.extend_from_slice(extra);
        let out = strata(tmp.path(), &args);
        assert_exit(&out, 1);
        stderr(&out)
    };
    assert!(
        build(&[]).contains("net reached"),
        "documented: host network"
    );
    assert!(build(&["--network", "none"]).contains("net unreachable"));
    assert!(build(&["--offline"]).contains("net unreachable"));
}

#[test]
fn a_declared_layer_is_offline_unless_it_asks_for_network() {
    let (_listener, port) = listener();
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.txt"), "hello").unwrap();
    let layer = |network: bool| {
        let dir = tmp.path().join(format!("decl-{network}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("buildpack.toml"),
            format!(
                "api = \"0.10\"\n\n[buildpack]\nid = \"test/decl\"\nversion = \"1.0.0\"\n\n\
                 [metadata.strata.detect]\nfiles = [\"main.txt\"]\n\n\
                 [[metadata.strata.layers]]\nname = \"fetch\"\nrun = \"fetch.sh\"\n\
                 launch = true\nnetwork = {network}\n"
            ),
        )
        .unwrap();
        script(
            &dir.join("fetch.sh"),
            &format!(
                "bash -c 'echo > /dev/tcp/127.0.0.1/{port}' 2>/dev/null && echo 'net reached' || echo 'net unreachable'; exit 3"
            ),
        );
        let out = strata(
            tmp.path(),
            &[
                "build",
                app.to_str().unwrap(),
                "--buildpack",
                dir.to_str().unwrap(),
                "--output",
                &format!("oci:{}:x", tmp.path().join("out").display()),
            ],
        );
        assert_exit(&out, 1);
        stderr(&out)
    };
    assert!(layer(false).contains("net unreachable"));
    assert!(layer(true).contains("net reached"));
}

#[test]
fn a_build_by_an_unprivileged_caller_gives_the_same_image_as_one_by_root() {
    // Root runs the build user as a host uid of its own; another caller's build user is that
    // caller. Neither may show in the image.
    let tmp = tempfile::tempdir().unwrap();
    let mine = tmp.path().join("work");
    std::fs::create_dir_all(&mine).unwrap();
    copy_tree(&examples(), &mine);
    copy_tree(&run_image_dir(), &mine.join("run-image-layout"));
    // Everything the unprivileged caller reads and writes is its own, as on a CI runner.
    let chown = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(chown.success());
    let build = |setpriv: &[&str], who: &str| {
        let mut command = if setpriv.is_empty() {
            Command::new(env!("CARGO_BIN_EXE_strata"))
        } else {
            let mut command = Command::new("setpriv");
            command
                .args(setpriv)
                .arg("--")
                .arg(env!("CARGO_BIN_EXE_strata"));
            command
        };
        let out = command
            .args(["build", "apps/hello", "--builder", "builder.toml", "--json"])
            .arg("--run-image=oci:run-image-layout:busybox")
            .arg(format!("--output=oci:out-{who}:hello"))
            .current_dir(&mine)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", &mine)
            .env("XDG_CACHE_HOME", mine.join(format!("cache-{who}")))
            .output()
            .unwrap();
        assert_exit(&out, 0);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["digest"].as_str().unwrap().to_owned()
    };
    let by_root = build(&[], "root");
    let by_nobody = build(
        &["--reuid", "65534", "--regid", "65534", "--clear-groups"],
        "nobody",
    );
    assert_eq!(by_nobody, by_root);
}
