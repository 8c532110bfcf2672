//! `strata build` end to end: the example app becomes an image that skopeo reads, umoci
//! unpacks with the right owners and times, and runc runs; twice, byte-identical.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::*;

const CNB_MTIME: i64 = 315_532_801;

fn unpack(layout: &Path, tag: &str, bundle: &Path) {
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{tag}", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
}

#[test]
fn example_image_is_read_by_skopeo_unpacked_by_umoci_and_run_by_runc() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let digest = build_example(
        tmp.path(),
        &examples().join("apps/hello"),
        &out,
        "hello",
        &[],
    );

    let inspect: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        &["inspect", &format!("oci:{}:hello", out.display())],
    ))
    .unwrap();
    assert_eq!(inspect["Digest"], digest);
    assert_eq!(inspect["Os"], "linux");
    let labels = &inspect["Labels"];
    for label in [
        "io.buildpacks.lifecycle.metadata",
        "io.buildpacks.build.metadata",
        "io.buildpacks.project.metadata",
    ] {
        assert!(labels[label].is_string(), "missing label {label}: {labels}");
    }
    assert_eq!(
        labels["org.example.procfile"], "true",
        "buildpack labels from launch.toml"
    );
    assert_eq!(
        labels["io.buildpacks.base.id"], "examples.busybox",
        "run image labels are inherited"
    );

    let bundle = tmp.path().join("bundle");
    unpack(&out, "hello", &bundle);
    let rootfs = bundle.join("rootfs");
    let greet = rootfs.join("layers/examples_runtime/greeter/bin/greet");
    let meta = std::fs::symlink_metadata(&greet).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (1000, 1000),
        "layer content is owned by the CNB user"
    );
    assert_eq!(meta.mtime(), CNB_MTIME);
    assert_eq!(meta.mode() & 0o777, 0o755);
    let app = std::fs::symlink_metadata(rootfs.join("workspace/index.txt")).unwrap();
    assert_eq!((app.uid(), app.gid(), app.mtime()), (1000, 1000, CNB_MTIME));
    assert!(
        rootfs.join("workspace/.motd-stamp").exists(),
        "a buildpack's change to the app is exported"
    );
    assert!(
        !rootfs.join("layers/examples_runtime/tools").exists(),
        "build-only layers are not exported"
    );
    let config = std::fs::symlink_metadata(rootfs.join("layers/config/metadata.toml")).unwrap();
    assert_eq!((config.uid(), config.gid()), (0, 0));
    assert!(
        rootfs
            .join("layers/sbom/launch/examples_runtime/greeter/sbom.cdx.json")
            .exists()
    );

    // The launcher and a link to it for each process, root-owned so the app cannot change
    // them.
    let launcher = std::fs::symlink_metadata(rootfs.join("cnb/lifecycle/launcher")).unwrap();
    assert!(launcher.is_file());
    assert_eq!((launcher.uid(), launcher.gid()), (0, 0));
    assert_eq!(launcher.mode() & 0o777, 0o755);
    for ty in ["web", "shell"] {
        let link = rootfs.join("cnb/process").join(ty);
        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert!(meta.file_type().is_symlink(), "{ty}");
        assert_eq!((meta.uid(), meta.gid()), (0, 0));
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("../lifecycle/launcher")
        );
    }

    // runc, as a container runtime starts the image: the launcher (`/cnb/process/web`) runs
    // the default process with the env its layers declare.
    let run = runc(&bundle, None);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "Welcome from greeter 1.2: strata\n"
    );
}

#[test]
fn builds_are_reproducible_across_paths_and_times() {
    for compression in ["gzip", "none"] {
        let tmp = tempfile::tempdir().unwrap();
        let mut digests = Vec::new();
        for (i, stamp) in ["200001010000", "202401010000"].iter().enumerate() {
            let app = tmp.path().join(format!("copy-{i}/deeper/hello"));
            std::fs::create_dir_all(&app).unwrap();
            copy_tree(&examples().join("apps/hello"), &app);
            let status = Command::new("find")
                .arg(&app)
                .args(["-exec", "touch", "-t", stamp, "{}", "+"])
                .status();
            assert!(status.unwrap().success());
            let out = tmp.path().join(format!("out-{i}"));
            digests.push(build_example(
                tmp.path(),
                &app,
                &out,
                "hello",
                &["--compression", compression],
            ));
        }
        assert_eq!(digests[0], digests[1], "compression {compression}");
        let config: serde_json::Value = serde_json::from_str(&tool(
            "skopeo",
            &[
                "inspect",
                "--config",
                &format!("oci:{}:hello", tmp.path().join("out-0").display()),
            ],
        ))
        .unwrap();
        assert!(
            config["history"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["created_by"] == "Buildpacks Application Launcher"),
            "the images have a launcher: {config}"
        );
    }
}

#[test]
fn without_a_launcher_the_image_execs_the_default_process_with_its_env_baked_in() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    build_example(
        tmp.path(),
        &examples().join("apps/hello"),
        &out,
        "hello",
        &["--no-launcher"],
    );
    let config: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("oci:{}:hello", out.display()),
        ],
    ))
    .unwrap();
    let entrypoint = &config["config"]["Entrypoint"];
    assert_eq!(entrypoint[0], "/bin/sh", "{config}");
    let env = config["config"]["Env"].as_array().unwrap();
    assert!(
        env.iter().any(|e| e
            .as_str()
            .unwrap()
            .starts_with("PATH=/layers/examples_runtime/")),
        "launch env is baked in: {env:?}"
    );
    let history: Vec<&str> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .collect();
    assert_eq!(history.last(), Some(&"Buildpacks Launcher Config"));
    assert!(!history.contains(&"Buildpacks Application Launcher"));

    let bundle = tmp.path().join("bundle");
    unpack(&out, "hello", &bundle);
    assert!(!bundle.join("rootfs/cnb").exists());
    let run = runc(&bundle, None);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "Welcome from greeter 1.2: strata\n"
    );
}
