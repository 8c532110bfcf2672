//! The public sample buildpacks of the Cloud Native Buildpacks project (`buildpacks/samples`,
//! copied unmodified under `tests/fixtures/cnb-samples`, see its NOTICE) build with strata as
//! their READMEs build them with pack, and their images run with runc.
//!
//! The samples' scripts are bash (`#!/usr/bin/env bash`): at build time they run on the host
//! build image. Two of them also need bash in the image, which the example busybox run image
//! does not have: hello-processes' `sys-info` process and bash-script's `app.sh`. Those run on a
//! copy of the run image with Debian's static bash as `/bin/bash` and `/usr/bin/env`.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use common::runimage::RunImageCopy;
use common::*;

/// The samples, as copied.
fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cnb-samples")
}

/// Where Debian's bash-static puts its binary.
const STATIC_BASH: &str = "/bin/bash-static";

/// A build of one app with a builder written for the test.
struct Sample {
    tmp: tempfile::TempDir,
}

/// One group of a builder: `(id, version)` of each buildpack in it.
type Group<'a> = &'a [(&'a str, &'a str)];

impl Sample {
    /// A temp dir with a builder that has the sample buildpacks `buildpacks` (paths under
    /// `buildpacks/` of the samples) and one order with `group`.
    fn new(buildpacks: &[&str], group: Group<'_>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut builder = String::from("description = \"the CNB samples\"\n");
        for bp in buildpacks {
            let uri = samples().join("buildpacks").join(bp);
            write!(
                builder,
                "\n[[buildpacks]]\nuri = {:?}\n",
                uri.display().to_string()
            )
            .unwrap();
        }
        if !group.is_empty() {
            builder.push_str("\n[[order]]\n");
        }
        for (id, version) in group {
            write!(
                builder,
                "[[order.group]]\nid = \"{id}\"\nversion = \"{version}\"\n"
            )
            .unwrap();
        }
        builder.push_str("\n[build]\nimage = \"host\"\n");
        std::fs::write(tmp.path().join("builder.toml"), builder).unwrap();
        Self { tmp }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// An app dir with one file.
    fn app(&self) -> PathBuf {
        let app = self.path("app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("README.txt"), "an app for the samples\n").unwrap();
        app
    }

    /// `strata build` of `app` on `run_image` into `oci:out:app`; returns what it printed.
    fn build(&self, app: &Path, run_image: &str) -> std::process::Output {
        let builder = self.path("builder.toml");
        let cache = self.path("cache");
        let out = format!("oci:{}:app", self.path("out").display());
        strata(
            self.tmp.path(),
            &[
                "build",
                app.to_str().unwrap(),
                "--builder",
                builder.to_str().unwrap(),
                "--run-image",
                run_image,
                "--cache-dir",
                cache.to_str().unwrap(),
                "--output",
                &out,
            ],
        )
    }

    /// Builds, checks that it succeeded; returns stderr, where the buildpacks' output is.
    fn built(&self, app: &Path, run_image: &str) -> String {
        let result = self.build(app, run_image);
        assert_exit(&result, 0);
        stderr(&result)
    }

    /// The image's `io.buildpacks.build.metadata`, as skopeo reads it.
    fn build_metadata(&self) -> serde_json::Value {
        let image = format!("oci:{}:app", self.path("out").display());
        let inspect: serde_json::Value =
            serde_json::from_str(&tool("skopeo", &["inspect", &image])).unwrap();
        serde_json::from_str(
            inspect["Labels"]["io.buildpacks.build.metadata"]
                .as_str()
                .unwrap(),
        )
        .unwrap()
    }

    /// The image unpacked by umoci; returns the bundle.
    fn unpack(&self) -> PathBuf {
        let bundle = self.path("bundle");
        let image = format!("{}:app", self.path("out").display());
        tool(
            "umoci",
            &["unpack", "--image", &image, bundle.to_str().unwrap()],
        );
        bundle
    }
}

/// What runc prints running `args` in `bundle` (the image's own command when `None`).
fn run(bundle: &Path, args: Option<&[&str]>) -> String {
    String::from_utf8_lossy(&runc(bundle, args).stdout).into_owned()
}

/// What `docker run IMAGE -- COMMAND…` prints: the launcher (the Entrypoint of an image
/// without a default process) runs `command` with the buildpacks' env.
fn user_command(bundle: &Path, command: &[&str]) -> String {
    let mut args = vec!["--"];
    args.extend_from_slice(command);
    String::from_utf8_lossy(&docker_run(bundle, None, &args).stdout).into_owned()
}

/// A copy of the example run image in `root` with bash: Debian's static bash as `/bin/bash`,
/// and `/usr/bin/env` (busybox's), which the samples' `#!/usr/bin/env bash` lines need.
fn run_image_with_bash(root: &Path) -> String {
    assert!(
        Path::new(STATIC_BASH).is_file(),
        "{STATIC_BASH} not found: apt-get install bash-static"
    );
    RunImageCopy::new(root, "run-image-bash")
        .layer("test: static bash and /usr/bin/env", |rootfs| {
            std::fs::copy(STATIC_BASH, rootfs.join("bin/bash")).unwrap();
            std::os::unix::fs::symlink("../../bin/busybox", rootfs.join("usr/bin/env")).unwrap();
        })
        .reference()
}

/// The lines a buildpack printed (strata indents them under the task).
fn lines(log: &str) -> Vec<&str> {
    log.lines().map(str::trim).collect()
}

#[test]
fn hello_world_builds_sees_its_plan_and_its_image_runs_a_command() {
    let sample = Sample::new(&["hello-world"], &[("samples/hello-world", "0.0.2")]);
    let log = sample.built(&sample.app(), &run_image());
    let said = lines(&log);
    for line in [
        "---> Hello World buildpack",
        "layers_dir: /layers/samples_hello-world",
        "declare -x CNB_TARGET_OS=\"linux\"",
        "name = \"some-world\"",
        "---> Done",
    ] {
        assert!(said.contains(&line), "printed {line:?}:\n{log}");
    }
    assert_eq!(sample.build_metadata()["processes"], serde_json::json!([]));
    // As its README runs it, `docker run sample-hello-world-app echo hello`, with `--` so the
    // launcher runs `echo` itself rather than through bash, which busybox lacks.
    assert_eq!(
        user_command(&sample.unpack(), &["echo", "hello"]),
        "hello\n"
    );
}

#[test]
fn hello_moon_needs_hello_world_to_provide_what_it_requires() {
    // Alone, its require has no provider: no group passes, as with the lifecycle.
    let alone = Sample::new(&["hello-moon"], &[("samples/hello-moon", "0.0.2")]);
    let result = alone.build(&alone.app(), &run_image());
    assert_exit(&result, 1);
    assert!(
        stderr(&result).contains("no buildpack group passed detection"),
        "{}",
        stderr(&result)
    );

    // With hello-world before it, as its README builds it.
    let sample = Sample::new(
        &["hello-world", "hello-moon"],
        &[
            ("samples/hello-world", "0.0.2"),
            ("samples/hello-moon", "0.0.2"),
        ],
    );
    let log = sample.built(&sample.app(), &run_image());
    let said = lines(&log);
    let world = said.iter().position(|l| *l == "---> Hello World buildpack");
    let moon = said.iter().position(|l| *l == "---> Hello Moon buildpack");
    assert!(
        matches!((world, moon), (Some(w), Some(m)) if w < m),
        "hello-world, then hello-moon:\n{log}"
    );
    assert!(
        said.contains(&"world = \"Earth-616\""),
        "hello-moon's require reaches hello-world's plan with its metadata:\n{log}"
    );
    assert_eq!(
        user_command(&sample.unpack(), &["echo", "hello"]),
        "hello\n"
    );
}

#[test]
fn hello_universe_a_composite_runs_hello_world_and_hello_moon() {
    let sample = Sample::new(
        &["hello-universe", "hello-world", "hello-moon"],
        &[("samples/hello-universe", "0.0.2")],
    );
    let log = sample.built(&sample.app(), &run_image());
    let said = lines(&log);
    let world = said.iter().position(|l| *l == "---> Hello World buildpack");
    let moon = said.iter().position(|l| *l == "---> Hello Moon buildpack");
    assert!(
        matches!((world, moon), (Some(w), Some(m)) if w < m),
        "the composite's order: hello-world, then hello-moon:\n{log}"
    );
    let metadata = sample.build_metadata();
    let ids: Vec<&str> = metadata["buildpacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["samples/hello-world", "samples/hello-moon"]);
    assert_eq!(
        user_command(&sample.unpack(), &["echo", "hello"]),
        "hello\n"
    );
}

#[test]
fn hello_processes_each_process_type_runs() {
    let sample = Sample::new(
        &["hello-processes"],
        &[("samples/hello-processes", "0.0.1")],
    );
    let run_image = run_image_with_bash(sample.tmp.path());
    let log = sample.built(&sample.app(), &run_image);
    assert!(
        lines(&log).contains(&"---> Adding sys-info process"),
        "{log}"
    );
    let metadata = sample.build_metadata();
    let processes = metadata["processes"].as_array().unwrap();
    let types: Vec<&str> = processes
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["sys-info"]);
    assert!(
        metadata.get("buildpack-default-process-type").is_none()
            || metadata["buildpack-default-process-type"].is_null(),
        "no process is the default unless declared: {metadata}"
    );

    let bundle = sample.unpack();
    for process in processes {
        // `/cnb/process/<type>`, the launcher picking the process by its name (the README
        // picks it with `CNB_PROCESS_TYPE`, which selects the same way).
        let entrypoint = format!("/cnb/process/{}", process["type"].as_str().unwrap());
        let out = String::from_utf8_lossy(&docker_run(&bundle, Some(&entrypoint), &[]).stdout)
            .into_owned();
        let said = lines(&out);
        assert_eq!(said.first(), Some(&"env vars:"), "{out}");
        assert!(
            said.contains(&"declare -x PWD=\"/workspace\""),
            "runs in the app dir: {out}"
        );
    }
}

#[test]
fn bash_script_app_builds_with_its_project_buildpack_and_runs_app_sh() {
    // The app names its buildpack in project.toml; the builder gives only the build image.
    let sample = Sample::new(&[], &[]);
    let app = sample.path("bash-script");
    std::fs::create_dir_all(&app).unwrap();
    copy_tree(&samples().join("apps/bash-script"), &app);
    let run_image = run_image_with_bash(sample.tmp.path());
    let log = sample.built(&app, &run_image);
    assert!(lines(&log).contains(&"---> Bash Script buildpack"), "{log}");

    let metadata = sample.build_metadata();
    assert_eq!(metadata["buildpack-default-process-type"], "web");
    assert_eq!(
        metadata["processes"][0]["command"],
        serde_json::json!(["./app.sh"])
    );
    let bundle = sample.unpack();
    let workspace = bundle.join("rootfs/workspace");
    assert!(workspace.join("app.sh").is_file());
    assert!(
        !workspace.join("README.md").exists() && !workspace.join("bash-script-buildpack").exists(),
        "project.toml's excludes are not in the image"
    );
    let out = run(&bundle, None);
    assert!(
        out.contains("|____/  \\__,_||_||_| \\__,_||"),
        "app.sh's banner: {out}"
    );
    let listing = lines(&out);
    let at = listing
        .iter()
        .position(|l| *l == "Here are the contents of the current working directory:")
        .unwrap_or_else(|| panic!("app.sh lists its dir: {out}"));
    assert_eq!(listing[at + 1], ".:");
    assert!(listing.iter().any(|l| l.ends_with(" app.sh")), "{out}");
}
