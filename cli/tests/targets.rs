//! Targets: a build is for its run image's platform, which must be one this host builds for,
//! and only buildpacks whose `[[targets]]` include it run.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

/// The host's architecture in OCI naming, as the example run image declares it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A component buildpack in `root/<name>` with `targets` (TOML) and the given detect script;
/// its build writes one launch layer.
fn buildpack(root: &Path, name: &str, targets: &str, detect: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(
        dir.join("buildpack.toml"),
        format!(
            "api = \"0.10\"\n\n[buildpack]\nid = \"test/{name}\"\nversion = \"1.0.0\"\n\n{targets}"
        ),
    )
    .unwrap();
    let build = "mkdir -p \"$1/l\" && echo built > \"$1/l/file\" && \
                 printf '[types]\\nlaunch = true\\n' > \"$1/l.toml\"";
    for (script, body) in [("detect", detect), ("build", build)] {
        let path = dir.join("bin").join(script);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// `text` with the report's line wrapping undone: words joined by single spaces.
fn unwrapped(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().filter(|w| *w != "│").collect();
    words.join(" ")
}

/// A copy of the example run image with its platform changed to `os`/`arch`, as
/// `oci:DIR:TAG`.
fn run_image_for(root: &Path, os: &str, arch: &str) -> String {
    let dir = root.join("run-image");
    copy_tree(&run_image_dir(), &dir);
    let image = format!("{}:busybox", dir.display());
    tool(
        "umoci",
        &[
            "config",
            "--no-history",
            "--image",
            &image,
            "--os",
            os,
            "--architecture",
            arch,
            "--tag",
            "other",
        ],
    );
    format!("oci:{}:other", dir.display())
}

#[test]
fn a_run_image_for_another_platform_is_refused_before_any_buildpack_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.txt"), "hello").unwrap();
    let bp = buildpack(tmp.path(), "any", "", "exit 0");
    let windows = run_image_for(tmp.path(), "windows", "arm64");
    let out = tmp.path().join("out");
    let result = strata(
        tmp.path(),
        &[
            "build",
            app.to_str().unwrap(),
            "--buildpack",
            bp.to_str().unwrap(),
            "--run-image",
            &windows,
            "--output",
            &format!("oci:{}:app", out.display()),
        ],
    );
    assert_exit(&result, 2);
    let err = unwrapped(&stderr(&result));
    assert!(err.contains(&windows), "names the run image: {err}");
    assert!(err.contains("windows/arm64"), "names its platform: {err}");
    assert!(
        err.contains(&format!("linux/{}", host_arch())),
        "names the host's: {err}"
    );
    assert!(!out.exists(), "no image is written");
}

#[test]
fn a_buildpack_for_another_arch_is_skipped_and_named_when_nothing_else_fits() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.txt"), "hello").unwrap();
    let other_arch = if host_arch() == "amd64" {
        "arm64"
    } else {
        "amd64"
    };
    // Its detect errors: had it run, the build would report that instead.
    let foreign = buildpack(
        tmp.path(),
        "foreign",
        &format!("[[targets]]\nos = \"linux\"\narch = \"{other_arch}\"\n"),
        "exit 3",
    );
    let native = buildpack(
        tmp.path(),
        "native",
        &format!("[[targets]]\nos = \"linux\"\narch = \"{}\"\n", host_arch()),
        "exit 0",
    );
    let run_image = run_image();
    let out = tmp.path().join("out");

    let result = strata(
        tmp.path(),
        &[
            "build",
            app.to_str().unwrap(),
            "--buildpack",
            foreign.to_str().unwrap(),
            "--buildpack",
            native.to_str().unwrap(),
            "--run-image",
            &run_image,
            "--output",
            &format!("oci:{}:app", out.display()),
        ],
    );
    assert_exit(&result, 1);
    let err = unwrapped(&stderr(&result));
    assert!(
        err.contains(&format!(
            "buildpack test/foreign@1.0.0 cannot build for the run image's target linux/{} \
             busybox: it supports linux/{other_arch}",
            host_arch()
        )),
        "{err}"
    );
    assert!(!err.contains("exit status 3"), "its detect ran: {err}");

    // In a builder's order, the group that needs it fails and the next one builds.
    std::fs::write(
        tmp.path().join("builder.toml"),
        format!(
            "[[buildpacks]]\nuri = \"foreign\"\n[[buildpacks]]\nuri = \"native\"\n\n\
             [[order]]\n[[order.group]]\nid = \"test/foreign\"\n\
             [[order.group]]\nid = \"test/native\"\n\n\
             [[order]]\n[[order.group]]\nid = \"test/native\"\n\n\
             [run]\n[[run.images]]\nimage = \"{run_image}\"\n\n[build]\nimage = \"host\"\n"
        ),
    )
    .unwrap();
    let result = strata(
        tmp.path(),
        &[
            "build",
            app.to_str().unwrap(),
            "--builder",
            tmp.path().join("builder.toml").to_str().unwrap(),
            "--output",
            &format!("oci:{}:app", out.display()),
            "--json",
        ],
    );
    assert_exit(&result, 0);
    let report = String::from_utf8_lossy(&result.stdout);
    assert!(report.contains("test/native"), "{report}");
    assert!(!report.contains("test/foreign"), "{report}");
}
