//! A buildpack written with Heroku's libcnb crate (`examples/buildpacks/libcnb-counter`, built
//! by the tests with cargo) builds unmodified: libcnb finds the target env it insists on, its
//! image has the buildpack's processes, SBOMs, cached layer and store; and a second build after
//! an app change gives the buildpack what the first one left: its `cache = true` layer with its
//! metadata and contents, and its `store.toml`. The exec.d program it ships with libcnb's
//! exec.d helper sets env its processes see when the launcher starts them.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::path::{Path, PathBuf};

use common::libcnb::{LIBCNB_COUNTER_ID, libcnb_counter};
use common::runimage::RunImageCopy;
use common::*;

/// The distro version the run image copy is labelled with: libcnb fails detect without
/// `CNB_TARGET_DISTRO_VERSION`, and the example run image names only its distro.
const DISTRO_VERSION: &str = "1.35";

/// An app with the file the buildpack looks for, the buildpack, a run image that names its
/// distro, and a cache and output of their own.
struct Fixture {
    tmp: tempfile::TempDir,
    app: PathBuf,
    buildpack: PathBuf,
    run_image: String,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("message.txt"), "hello v1\n").unwrap();
        std::fs::write(app.join("notes.txt"), "not read by the buildpack\n").unwrap();
        date_in_the_past(&app);
        let buildpack = libcnb_counter(&tmp.path().join("buildpack"));
        let run_image = RunImageCopy::new(tmp.path(), "run-image")
            .labels(&[("io.buildpacks.base.distro.version", DISTRO_VERSION)])
            .reference();
        Self {
            tmp,
            app,
            buildpack,
            run_image,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `strata build` of the app into `oci:out:app`; returns its stderr, where the buildpack's
    /// output is.
    fn build(&self) -> String {
        let cache = self.path("cache");
        let out = format!("oci:{}:app", self.path("out").display());
        let result = strata(
            self.tmp.path(),
            &[
                "build",
                self.app.to_str().unwrap(),
                "--buildpack",
                self.buildpack.to_str().unwrap(),
                "--run-image",
                &self.run_image,
                "--cache-dir",
                cache.to_str().unwrap(),
                "--output",
                &out,
            ],
        );
        assert_exit(&result, 0);
        stderr(&result)
    }

    /// The image, unpacked by umoci into a fresh bundle; returns the bundle.
    fn unpack(&self, name: &str) -> PathBuf {
        let bundle = self.path(name);
        let image = format!("{}:app", self.path("out").display());
        tool(
            "umoci",
            &["unpack", "--image", &image, bundle.to_str().unwrap()],
        );
        bundle
    }

    /// The image's labels, as skopeo reads them, each JSON label parsed.
    fn label(&self, key: &str) -> serde_json::Value {
        let image = format!("oci:{}:app", self.path("out").display());
        let inspect: serde_json::Value =
            serde_json::from_str(&tool("skopeo", &["inspect", &image])).unwrap();
        serde_json::from_str(inspect["Labels"][key].as_str().unwrap()).unwrap()
    }
}

/// What the buildpack printed at build: its lines, without their prefix (and without what its
/// `bin/detect` printed, should strata show that too).
fn said(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("libcnb-counter: "))
        .filter(|l| !l.starts_with("detect: "))
        .map(str::to_owned)
        .collect()
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn target_line() -> String {
    format!(
        "build: target os=linux arch={} arch-variant=(none) distro=busybox {DISTRO_VERSION}",
        host_arch()
    )
}

/// Each of the image's process types with what it prints started through the launcher, the
/// default (the image's Entrypoint) first.
fn run_processes(fixture: &Fixture, bundle: &Path) -> Vec<(String, String)> {
    let build = fixture.label("io.buildpacks.build.metadata");
    let default = build["buildpack-default-process-type"].as_str().unwrap();
    let mut out = vec![(
        default.to_owned(),
        String::from_utf8_lossy(&runc(bundle, None).stdout).into_owned(),
    )];
    for process in build["processes"].as_array().unwrap() {
        let kind = process["type"].as_str().unwrap();
        if kind == default {
            continue;
        }
        // As `docker run --entrypoint /cnb/process/<type> IMAGE` starts it.
        let run = docker_run(bundle, Some(&format!("/cnb/process/{kind}")), &[]);
        out.push((
            kind.to_owned(),
            String::from_utf8_lossy(&run.stdout).into_owned(),
        ));
    }
    out
}

#[test]
fn a_libcnb_buildpack_builds_an_image_with_its_processes_sboms_layer_and_store() {
    let fixture = Fixture::new();
    let log = fixture.build();
    assert_eq!(
        said(&log),
        [
            &target_line(),
            "store.toml: none",
            "layer counter: empty (new)",
            "layer counter: builds.log held 0 line(s)",
            "layer counter: now builds = 1",
            "store.toml: now builds = 1, message = \"hello v1\"",
        ],
        "what the buildpack saw:\n{log}"
    );

    // The layers, as the CNB exporter orders and names them.
    let image = format!("oci:{}:app", fixture.path("out").display());
    let config: serde_json::Value =
        serde_json::from_str(&tool("skopeo", &["inspect", "--config", &image])).unwrap();
    let history: Vec<&str> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .collect();
    let counter_layer =
        format!("Layer: 'counter', Created by buildpack: {LIBCNB_COUNTER_ID}@0.1.0");
    assert_eq!(
        history[history.len() - 6..],
        [
            counter_layer.as_str(),
            "Software Bill-of-Materials",
            "Application Layer",
            "Buildpacks Application Launcher",
            "Buildpacks Launcher Config",
            "Buildpacks Process Types",
        ],
        "{history:?}"
    );

    // The layer's types and metadata, and the store, in the lifecycle label.
    let lifecycle = fixture.label("io.buildpacks.lifecycle.metadata");
    let buildpack = &lifecycle["buildpacks"][0];
    assert_eq!(buildpack["key"], LIBCNB_COUNTER_ID);
    let layer = &buildpack["layers"]["counter"];
    assert_eq!(
        (&layer["build"], &layer["launch"], &layer["cache"]),
        (&true.into(), &true.into(), &true.into())
    );
    assert_eq!(layer["data"], serde_json::json!({"builds": 1}));
    assert_eq!(
        buildpack["store"]["metadata"],
        serde_json::json!({"builds": 1, "message": "hello v1"})
    );

    // The processes, in the build label: `web` is the default.
    let build = fixture.label("io.buildpacks.build.metadata");
    assert_eq!(build["buildpack-default-process-type"], "web");
    let mut types: Vec<&str> = build["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    types.sort_unstable();
    assert_eq!(types, ["report", "web"]);

    // The files: the layer's contents and both SBOMs, as umoci unpacks them.
    let bundle = fixture.unpack("bundle");
    let rootfs = bundle.join("rootfs");
    let layer_dir = rootfs.join("layers/examples_libcnb-counter/counter");
    assert_eq!(
        std::fs::read_to_string(layer_dir.join("builds.log")).unwrap(),
        "build 1: hello v1\n"
    );
    let sboms = rootfs.join("layers/sbom/launch/examples_libcnb-counter");
    for (file, component) in [
        ("sbom.cdx.json", "libcnb-counter"),
        ("counter/sbom.cdx.json", "counter-hello"),
    ] {
        let sbom: serde_json::Value =
            serde_json::from_slice(&std::fs::read(sboms.join(file)).unwrap()).unwrap();
        assert_eq!(sbom["bomFormat"], "CycloneDX", "{file}");
        assert_eq!(sbom["components"][0]["name"], component, "{file}");
    }

    // runc: each process prints what the buildpack made it print.
    assert_eq!(
        run_processes(&fixture, &bundle),
        [
            (
                "web".to_owned(),
                "libcnb-counter: hello v1 (layer build 1)\nlibcnb-counter: COUNTER_EXECD=1\n"
                    .to_owned()
            ),
            ("report".to_owned(), "build 1: hello v1\n".to_owned()),
        ]
    );
}

#[test]
fn a_second_build_after_an_app_change_sees_the_cached_layer_and_the_store() {
    let fixture = Fixture::new();
    fixture.build();
    std::fs::write(fixture.app.join("message.txt"), "hello v2\n").unwrap();
    let log = fixture.build();
    assert!(
        log.contains(&format!("{LIBCNB_COUNTER_ID} (bin/build)")),
        "the buildpack ran again:\n{log}"
    );
    assert_eq!(
        said(&log),
        [
            &target_line(),
            "store.toml: builds = 1, message = \"hello v1\"",
            "layer counter: restored, builds = 1",
            "layer counter: builds.log held 1 line(s)",
            "layer counter: now builds = 2",
            "store.toml: now builds = 2, message = \"hello v2\"",
        ],
        "what the buildpack saw on the second build:\n{log}"
    );

    let bundle = fixture.unpack("bundle-2");
    assert_eq!(
        std::fs::read_to_string(
            bundle.join("rootfs/layers/examples_libcnb-counter/counter/builds.log")
        )
        .unwrap(),
        "build 1: hello v1\nbuild 2: hello v2\n",
        "the restored layer's contents are kept and exported"
    );
    let lifecycle = fixture.label("io.buildpacks.lifecycle.metadata");
    assert_eq!(lifecycle["buildpacks"][0]["store"]["metadata"]["builds"], 2);
    assert_eq!(
        run_processes(&fixture, &bundle)[0].1,
        "libcnb-counter: hello v2 (layer build 2)\nlibcnb-counter: COUNTER_EXECD=2\n",
        "the exec.d program reads the layer the image has"
    );
}

#[test]
fn the_launcher_runs_the_exec_d_program_written_with_libcnb() {
    let fixture = Fixture::new();
    fixture.build();
    let bundle = fixture.unpack("bundle");
    let exec_d = bundle.join("rootfs/layers/examples_libcnb-counter/counter/exec.d");
    let programs: Vec<String> = std::fs::read_dir(&exec_d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        programs,
        ["counter-execd"],
        "libcnb copied its additional binary"
    );

    // The default process, as `docker run IMAGE` starts it: the launcher runs the exec.d
    // program first and gives the process the env it wrote to fd 3.
    let run = docker_run(&bundle, None, &[]);
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        out.lines().any(|l| l == "libcnb-counter: COUNTER_EXECD=1"),
        "the web process saw what the exec.d program set:\n{out}\n{}",
        stderr(&run)
    );
}

#[test]
fn an_app_without_the_file_fails_libcnb_detection() {
    let fixture = Fixture::new();
    std::fs::remove_file(fixture.app.join("message.txt")).unwrap();
    let cache = fixture.path("cache");
    let result = strata(
        fixture.tmp.path(),
        &[
            "plan",
            fixture.app.to_str().unwrap(),
            "--buildpack",
            fixture.buildpack.to_str().unwrap(),
            "--run-image",
            &fixture.run_image,
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    assert_exit(&result, 1);
    let err = stderr(&result);
    assert!(err.contains("no buildpack group passed detection"), "{err}");
    assert!(
        err.contains(&format!("{LIBCNB_COUNTER_ID}@0.1.0: fail")),
        "libcnb's exit code 100 is a fail, not an error: {err}"
    );
}
