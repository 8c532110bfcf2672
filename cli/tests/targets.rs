//! Targets: a build is for its run image's platform, which must be one this host builds for,
//! and only buildpacks whose `[[targets]]` (or legacy `[[stacks]]`) include it run; buildpacks
//! see the target as `CNB_TARGET_*` (and `CNB_STACK_ID`), its distro from the run image's
//! labels or else the build root's os-release.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::fmt::Write as _;
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

/// A copy of the example run image in `root/<name>`, changed by `umoci config` `args`, as
/// `oci:DIR:other`.
fn run_image_with(root: &Path, name: &str, args: &[&str]) -> String {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    copy_tree(&run_image_dir(), &dir);
    let image = format!("{}:busybox", dir.display());
    let mut all = vec![
        "config",
        "--no-history",
        "--image",
        &image,
        "--tag",
        "other",
    ];
    all.extend_from_slice(args);
    tool("umoci", &all);
    format!("oci:{}:other", dir.display())
}

/// A copy of the example run image with its platform changed to `os`/`arch`.
fn run_image_for(root: &Path, os: &str, arch: &str) -> String {
    run_image_with(root, "run-image", &["--os", os, "--architecture", arch])
}

/// A copy of the example run image without its labels: no distro, no stack id.
fn unlabelled_run_image(root: &Path) -> String {
    run_image_with(root, "unlabelled", &["--clear=config.labels"])
}

/// `ID` and `VERSION_ID` of the host's os-release: the build root's, what strata reads when
/// the run image names no distro.
fn host_distro() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap();
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(|v| v.trim_matches(['"', '\'']).to_owned())
            .unwrap()
    };
    (value("ID"), value("VERSION_ID"))
}

/// A buildpack `test/env` whose detect passes and puts the `CNB_TARGET_*` and `CNB_STACK_ID`
/// values it sees into its build plan (`unset` when absent), and whose build copies its
/// Buildpack Plan (so, what detect saw) and its own such variables into launch layer `l`.
fn env_buildpack(root: &Path, stacks: &str) -> PathBuf {
    let vars = [
        ("os", "CNB_TARGET_OS"),
        ("arch", "CNB_TARGET_ARCH"),
        ("variant", "CNB_TARGET_ARCH_VARIANT"),
        ("distro", "CNB_TARGET_DISTRO_NAME"),
        ("version", "CNB_TARGET_DISTRO_VERSION"),
        ("stack", "CNB_STACK_ID"),
    ];
    let metadata = vars.iter().fold(String::new(), |mut s, (key, var)| {
        let _ = writeln!(s, "{key} = \"${{{var}-unset}}\"");
        s
    });
    let detect = format!(
        "cat > \"$2\" <<EOF\n[[provides]]\nname = \"target\"\n[[requires]]\nname = \"target\"\n\
         [requires.metadata]\n{metadata}EOF"
    );
    let dir = buildpack(root, "env", stacks, &detect);
    let build = "mkdir -p \"$1/l\" && cp \"$3\" \"$1/l/detect.toml\" && \
                 { env | grep -E '^CNB_(TARGET_|STACK_ID=)' | sort > \"$1/l/build.env\"; true; } && \
                 printf '[types]\\nlaunch = true\\n' > \"$1/l.toml\"";
    std::fs::write(dir.join("bin/build"), format!("#!/bin/sh\n{build}\n")).unwrap();
    dir
}

/// What `test/env` saw: (its detect's build plan metadata, its build's variables), read from
/// the image `oci:<out>:app`.
fn env_seen(root: &Path, out: &Path) -> (String, String) {
    let bundle = root.join("bundle");
    let _ = std::fs::remove_dir_all(&bundle);
    let image = format!("{}:app", out.display());
    tool(
        "umoci",
        &["unpack", "--image", &image, bundle.to_str().unwrap()],
    );
    let layer = bundle.join("rootfs/layers/test_env/l");
    let read = |name: &str| std::fs::read_to_string(layer.join(name)).unwrap();
    (read("detect.toml"), read("build.env"))
}

/// Builds `app` with `buildpack` on `run_image` (`None`: the built-in base) into
/// `oci:<root>/out:app`; returns the output layout.
fn build_with(root: &Path, app: &Path, buildpack: &Path, run_image: Option<&str>) -> PathBuf {
    let out = root.join("out");
    let output = format!("oci:{}:app", out.display());
    let mut args = vec![
        "build",
        app.to_str().unwrap(),
        "--buildpack",
        buildpack.to_str().unwrap(),
        "--output",
        &output,
    ];
    if let Some(image) = run_image {
        args.extend(["--run-image", image]);
    }
    let result = strata(root, &args);
    assert_exit(&result, 0);
    out
}

/// An app directory in `root/app` with one file.
fn app(root: &Path) -> PathBuf {
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.txt"), "hello").unwrap();
    app
}

/// Asserts that detect's plan metadata and build's env hold `key`/`var` = `value` (absent for
/// `None`).
fn assert_seen(seen: &(String, String), key: &str, var: &str, value: Option<&str>) {
    let (detect, build) = seen;
    let want = value.unwrap_or("unset");
    assert!(
        detect.contains(&format!("{key} = \"{want}\"")),
        "detect saw {key}: {detect}"
    );
    match value {
        Some(value) => assert!(
            build.lines().any(|l| l == format!("{var}={value}")),
            "build saw {var}: {build}"
        ),
        None => assert!(
            !build.lines().any(|l| l.starts_with(&format!("{var}="))),
            "build saw {var}: {build}"
        ),
    }
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
             busybox@",
            host_arch()
        )) && err.contains(&format!(": it supports linux/{other_arch}")),
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

#[test]
fn plan_and_build_name_the_buildpacks_skipped_for_their_targets() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path());
    let other_arch = if host_arch() == "amd64" {
        "arm64"
    } else {
        "amd64"
    };
    // Their detects error: had they run, detect would report that.
    buildpack(
        tmp.path(),
        "foreign",
        &format!("[[targets]]\nos = \"linux\"\narch = \"{other_arch}\"\n"),
        "exit 3",
    );
    buildpack(
        tmp.path(),
        "noble",
        "[[targets]]\nos = \"linux\"\n[[targets.distros]]\nname = \"ubuntu\"\nversion = \"24.04\"\n",
        "exit 3",
    );
    buildpack(tmp.path(), "native", "", "exit 0");
    let run_image = run_image_with(
        tmp.path(),
        "labelled",
        &[
            "--config.label=io.buildpacks.base.distro.name=testos",
            "--config.label=io.buildpacks.base.distro.version=9.1",
        ],
    );
    std::fs::write(
        tmp.path().join("builder.toml"),
        format!(
            "[[buildpacks]]\nuri = \"foreign\"\n[[buildpacks]]\nuri = \"noble\"\n\
             [[buildpacks]]\nuri = \"native\"\n\n\
             [[order]]\n[[order.group]]\nid = \"test/foreign\"\noptional = true\n\
             [[order.group]]\nid = \"test/noble\"\noptional = true\n\
             [[order.group]]\nid = \"test/native\"\n\n\
             [run]\n[[run.images]]\nimage = \"{run_image}\"\n\n[build]\nimage = \"host\"\n"
        ),
    )
    .unwrap();
    let builder = tmp.path().join("builder.toml");
    let target = format!("linux/{} testos@9.1", host_arch());
    let foreign = format!("it supports linux/{other_arch}, not the target {target}");
    let noble = format!("it supports linux/* (ubuntu@24.04), not the target {target}");

    let plan = |format: &str| {
        let result = strata(
            tmp.path(),
            &[
                "plan",
                app.to_str().unwrap(),
                "--builder",
                builder.to_str().unwrap(),
                "--format",
                format,
            ],
        );
        assert_exit(&result, 0);
        String::from_utf8_lossy(&result.stdout).into_owned()
    };
    let table = plan("table");
    assert!(
        table.contains(&format!(
            "app: skipped at detect: test/foreign@1.0.0: {foreign}\n"
        )),
        "{table}"
    );
    assert!(
        table.contains(&format!(
            "app: skipped at detect: test/noble@1.0.0: {noble}\n"
        )),
        "{table}"
    );
    let skipped = |json: &serde_json::Value| -> Vec<(String, String, String)> {
        json["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let field = |k: &str| s[k].as_str().unwrap().to_owned();
                (field("buildpack"), field("supports"), field("target"))
            })
            .collect()
    };
    let want = vec![
        (
            "test/foreign@1.0.0".to_owned(),
            format!("linux/{other_arch}"),
            target.clone(),
        ),
        (
            "test/noble@1.0.0".to_owned(),
            "linux/* (ubuntu@24.04)".to_owned(),
            target.clone(),
        ),
    ];
    let json: serde_json::Value = serde_json::from_str(&plan("json")).unwrap();
    assert_eq!(
        json["services"][0]["group"],
        serde_json::json!(["test/native@1.0.0"])
    );
    assert_eq!(skipped(&json["services"][0]), want);

    let out = tmp.path().join("out");
    let build = |extra: &[&str]| {
        let output = format!("oci:{}:app", out.display());
        let mut args = vec![
            "build",
            app.to_str().unwrap(),
            "--builder",
            builder.to_str().unwrap(),
            "--output",
            &output,
        ];
        args.extend_from_slice(extra);
        let result = strata(tmp.path(), &args);
        assert_exit(&result, 0);
        result
    };
    let report: serde_json::Value = serde_json::from_slice(&build(&["--json"]).stdout).unwrap();
    assert_eq!(skipped(&report["services"][0]), want);
    let lines = stderr(&build(&[]));
    assert!(
        lines.contains(&format!(
            "app: skipped at detect: test/foreign@1.0.0: {foreign}\n"
        )),
        "{lines}"
    );
}

#[test]
fn buildpacks_see_the_run_images_distro_and_stack_id() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path());
    let bp = env_buildpack(tmp.path(), "");
    let run_image = run_image_with(
        tmp.path(),
        "labelled",
        &[
            "--config.label=io.buildpacks.base.distro.name=testos",
            "--config.label=io.buildpacks.base.distro.version=9.1",
            "--config.label=io.buildpacks.stack.id=test.stack",
        ],
    );
    let out = build_with(tmp.path(), &app, &bp, Some(&run_image));
    let seen = env_seen(tmp.path(), &out);
    assert_seen(&seen, "os", "CNB_TARGET_OS", Some("linux"));
    assert_seen(&seen, "arch", "CNB_TARGET_ARCH", Some(host_arch()));
    assert_seen(&seen, "variant", "CNB_TARGET_ARCH_VARIANT", None);
    assert_seen(&seen, "distro", "CNB_TARGET_DISTRO_NAME", Some("testos"));
    assert_seen(&seen, "version", "CNB_TARGET_DISTRO_VERSION", Some("9.1"));
    assert_seen(&seen, "stack", "CNB_STACK_ID", Some("test.stack"));
}

#[test]
fn the_example_run_image_names_a_distro_and_its_version() {
    // libcnb.rs buildpacks fail detect without both.
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path());
    let bp = env_buildpack(tmp.path(), "");
    let out = build_with(tmp.path(), &app, &bp, Some(&run_image()));
    let (detect, build) = env_seen(tmp.path(), &out);
    assert!(detect.contains("distro = \"busybox\""), "{detect}");
    assert!(!detect.contains("version = \"unset\""), "{detect}");
    for var in [
        "CNB_TARGET_DISTRO_NAME=busybox",
        "CNB_TARGET_DISTRO_VERSION=",
    ] {
        assert!(build.contains(var), "{build}");
    }
    assert!(build.contains("CNB_STACK_ID=examples.busybox"), "{build}");
}

#[test]
fn without_distro_labels_the_build_roots_os_release_names_the_distro() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path());
    let bp = env_buildpack(tmp.path(), "");
    let (id, version) = host_distro();
    let unlabelled = unlabelled_run_image(tmp.path());
    for run_image in [Some(unlabelled.as_str()), None] {
        let out = build_with(tmp.path(), &app, &bp, run_image);
        let seen = env_seen(tmp.path(), &out);
        assert_seen(&seen, "distro", "CNB_TARGET_DISTRO_NAME", Some(&id));
        assert_seen(
            &seen,
            "version",
            "CNB_TARGET_DISTRO_VERSION",
            Some(&version),
        );
        assert_seen(&seen, "stack", "CNB_STACK_ID", None);
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn the_distro_from_os_release_is_part_of_the_detect_cache_and_task_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path());
    let bp = env_buildpack(tmp.path(), "");
    let (id, version) = host_distro();
    let unlabelled = unlabelled_run_image(tmp.path());
    // The build root's distro given as labels: the same target as the unlabelled image's.
    let same = run_image_with(
        tmp.path(),
        "same",
        &[
            "--clear=config.labels",
            &format!("--config.label=io.buildpacks.base.distro.name={id}"),
            &format!("--config.label=io.buildpacks.base.distro.version={version}"),
        ],
    );
    let other = run_image_with(
        tmp.path(),
        "other",
        &[
            "--clear=config.labels",
            "--config.label=io.buildpacks.base.distro.name=testos",
            &format!("--config.label=io.buildpacks.base.distro.version={version}"),
        ],
    );
    let cache = tmp.path().join("cache");
    // Detects run, and the key of the buildpack's build task.
    let plan_of = |run_image: &str| {
        let result = strata(
            tmp.path(),
            &[
                "plan",
                app.to_str().unwrap(),
                "--buildpack",
                bp.to_str().unwrap(),
                "--run-image",
                run_image,
                "--cache-dir",
                cache.to_str().unwrap(),
                "--format",
                "json",
            ],
        );
        assert_exit(&result, 0);
        let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
        let build_key = json["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["kind"] == "buildpack")
            .map(|t| t["key"].as_str().unwrap().to_owned())
            .unwrap();
        (json["stats"]["detect_ran"].as_u64().unwrap(), build_key)
    };
    let (ran, key) = plan_of(&unlabelled);
    assert_eq!(ran, 1);
    assert_eq!(plan_of(&same), (0, key.clone()), "the same distro: hits");
    let (ran, other_key) = plan_of(&other);
    assert_eq!(ran, 1, "another distro: a detect miss");
    assert_ne!(other_key, key, "and another task key");
}

#[test]
fn legacy_stacks_match_the_run_images_stack_id() {
    let tmp = tempfile::tempdir().unwrap();
    let app = app(tmp.path());
    let stacks = |ids: &[&str]| -> String {
        ids.iter().fold(String::new(), |mut s, id| {
            let _ = writeln!(s, "[[stacks]]\nid = \"{id}\"");
            s
        })
    };
    let plan = |bp: &Path, run_image: &str| {
        strata(
            tmp.path(),
            &[
                "plan",
                app.to_str().unwrap(),
                "--buildpack",
                bp.to_str().unwrap(),
                "--run-image",
                run_image,
            ],
        )
    };
    let example = run_image();
    // The example run image's stack id is examples.busybox.
    let matching = env_buildpack(tmp.path(), &stacks(&["other.stack", "examples.busybox"]));
    assert_exit(&plan(&matching, &example), 0);
    let any = buildpack(tmp.path(), "any", &stacks(&["*"]), "exit 0");
    assert_exit(&plan(&any, &example), 0);

    let jammy = buildpack(
        tmp.path(),
        "jammy",
        &stacks(&["io.buildpacks.stacks.jammy"]),
        "exit 0",
    );
    let result = plan(&jammy, &example);
    assert_exit(&result, 1);
    let err = unwrapped(&stderr(&result));
    assert!(
        err.contains(
            "buildpack test/jammy@1.0.0 cannot build for the run image's target stack \
             examples.busybox: it supports stacks io.buildpacks.stacks.jammy"
        ),
        "{err}"
    );
    // A run image without a stack id: the buildpack is for Linux, as the lifecycle reads it.
    assert_exit(&plan(&jammy, &unlabelled_run_image(tmp.path())), 0);
    // Targets win over stacks.
    let targets = buildpack(
        tmp.path(),
        "targets",
        &format!(
            "{}[[targets]]\nos = \"linux\"\n",
            stacks(&["io.buildpacks.stacks.jammy"])
        ),
        "exit 0",
    );
    assert_exit(&plan(&targets, &example), 0);

    // CNB_STACK_ID reaches detect and build.
    let out = build_with(tmp.path(), &app, &matching, Some(&example));
    let seen = env_seen(tmp.path(), &out);
    assert_seen(&seen, "stack", "CNB_STACK_ID", Some("examples.busybox"));
}
