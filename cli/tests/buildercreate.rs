//! `strata builder create`: a builder image from the example builder.toml on the example run
//! image as build image, read back by skopeo, umoci and oci-image-tool, with pack's labels,
//! one layer per buildpack, and the same digest from two checkouts.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;
use strata_exporter::builderlabels::{
    BuilderMetadata, LAYERS_LABEL, METADATA_LABEL, ModuleLayers, ORDER_LABEL, Order,
};

const BUILDPACKS: &[&str] = &["node", "runtime", "procfile", "motd", "hello-stack"];

/// The example builder under `root/examples`: its buildpacks, its builder.toml with the example
/// run image as `[build] image`, a run image mirror on a registry, and `extra` appended.
fn example_builder(root: &Path, extra: &str) -> PathBuf {
    let examples = root.join("examples");
    for bp in BUILDPACKS {
        let dest = examples.join("buildpacks").join(bp);
        std::fs::create_dir_all(&dest).unwrap();
        copy_tree(&common::examples().join("buildpacks").join(bp), &dest);
    }
    let text = std::fs::read_to_string(common::examples().join("builder.toml")).unwrap();
    let text = text
        .replace("image = \"host\"", &format!("image = \"{}\"", run_image()))
        .replace(
            "image = \"oci:run-image/layout:busybox\"",
            "image = \"oci:run-image/layout:busybox\"\nmirrors = [\"registry.example.com/run:1\"]",
        );
    let path = examples.join("builder.toml");
    std::fs::write(&path, format!("{text}\n{extra}")).unwrap();
    path
}

/// Runs `strata builder create` into `oci:<root>/out:builder`; returns the manifest digest.
fn create(root: &Path, config: &Path) -> String {
    let out = strata(
        root,
        &[
            "builder",
            "create",
            "--config",
            config.to_str().unwrap(),
            "--output",
            "oci:out:builder",
        ],
    );
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    stdout.split_whitespace().nth(1).unwrap().to_owned()
}

fn config_json(image: &str) -> serde_json::Value {
    serde_json::from_str(&tool("skopeo", &["inspect", "--config", image])).unwrap()
}

fn label<'a>(config: &'a serde_json::Value, name: &str) -> &'a str {
    config["config"]["Labels"][name].as_str().unwrap()
}

/// Every entry of the layer with this diffID in `oci:<layout>:builder`: path, uid, gid, mtime.
fn layer_entries(layout: &Path, diff_id: &str) -> Vec<(String, u64, u64, u64)> {
    let config = config_json(&format!("oci:{}:builder", layout.display()));
    let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let index = diff_ids.iter().position(|d| *d == diff_id).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:builder", layout.display()),
        ],
    ))
    .unwrap();
    let digest = manifest["layers"][index]["digest"].as_str().unwrap();
    let blob = layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap());
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(blob).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    let mut archive = tar::Archive::new(bytes.as_slice());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().display().to_string(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
            )
        })
        .collect()
}

/// Every path under `dir`, relative to it.
fn tree(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            out.insert(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            }
        }
    }
    out
}

#[test]
fn writes_a_builder_that_skopeo_and_umoci_read_with_packs_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let config = example_builder(
        tmp.path(),
        "[[build.env]]\nname = \"BP_GREETING\"\nvalue = \"hi\"\nsuffix = \"default\"\n",
    );
    create(tmp.path(), &config);
    let layout = tmp.path().join("out");
    let image = format!("oci:{}:builder", layout.display());

    let inspect: serde_json::Value =
        serde_json::from_str(&tool("skopeo", &["inspect", &image])).unwrap();
    assert!(inspect["Labels"][METADATA_LABEL].is_string(), "{inspect}");
    let config = config_json(&image);
    assert_eq!(config["config"]["WorkingDir"], "/layers");
    // The build image's config is kept.
    assert_eq!(config["config"]["User"], "1000:1000");
    assert_eq!(label(&config, "io.buildpacks.stack.id"), "examples.busybox");

    // The labels parse as pack's, with pack's field names.
    let metadata: BuilderMetadata = serde_json::from_str(label(&config, METADATA_LABEL)).unwrap();
    let raw: serde_json::Value = serde_json::from_str(label(&config, METADATA_LABEL)).unwrap();
    for key in [
        "description",
        "buildpacks",
        "stack",
        "lifecycle",
        "createdBy",
        "images",
    ] {
        assert!(raw.get(key).is_some(), "no `{key}` in {raw}");
    }
    assert_eq!(metadata.description, "strata example builder");
    assert_eq!(metadata.created_by.name, "strata");
    assert_eq!(metadata.created_by.version, env!("CARGO_PKG_VERSION"));
    // No lifecycle: pack reads a `null` version as none (it refuses an empty one).
    assert!(raw["lifecycle"]["version"].is_null(), "{raw}");
    // The run image is recorded relative to the directory holding the output layout, the
    // registry mirror as written.
    assert_eq!(
        metadata.images[0].image,
        "oci:examples/run-image/layout:busybox"
    );
    assert_eq!(metadata.images[0].mirrors, ["registry.example.com/run:1"]);
    assert_eq!(metadata.stack.run_image, metadata.images[0]);
    let ids: Vec<&str> = metadata.buildpacks.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "examples/hello-stack",
            "examples/motd",
            "examples/node",
            "examples/procfile",
            "examples/runtime"
        ]
    );

    let order: Order = serde_json::from_str(label(&config, ORDER_LABEL)).unwrap();
    assert_eq!(order[0].group[0].id, "examples/node");
    let layers: ModuleLayers = serde_json::from_str(label(&config, LAYERS_LABEL)).unwrap();
    let raw_layers: serde_json::Value = serde_json::from_str(label(&config, LAYERS_LABEL)).unwrap();
    let node = &raw_layers["examples/node"]["0.1.0"];
    assert!(
        node["api"].is_string() && node["layerDiffID"].is_string(),
        "{node}"
    );
    assert!(
        !layers["examples/hello-stack"]["0.1.0"].order.is_empty(),
        "the composite's order is in its entry"
    );

    let valid = tool(
        "oci-image-tool",
        &[
            "validate",
            "--type",
            "image",
            "--ref",
            "name=builder",
            layout.to_str().unwrap(),
        ],
    );
    assert!(valid.contains("Validation succeeded"), "{valid}");
    assert_buildpack_layers(tmp.path(), &config, &layers);
    assert_unpacked(tmp.path(), &layout);
}

#[test]
fn two_checkouts_at_different_times_give_the_same_builder() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    let config_one = example_builder(one.path(), "");
    let config_two = example_builder(two.path(), "");
    date_in_the_past(&two.path().join("examples"));
    // Checked out with another umask: group-writable files and directories.
    let node = two.path().join("examples/buildpacks/node");
    for (path, mode) in [
        (node.join("buildpack.toml"), 0o664),
        (node.join("bin/build"), 0o775),
        (node.join("bin"), 0o775),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let first = create(one.path(), &config_one);
    let second = create(two.path(), &config_two);
    assert_eq!(first, second);
}

#[test]
fn keeps_the_other_images_of_the_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let config = example_builder(tmp.path(), "");
    let out = tmp.path().join("out");
    tool(
        "skopeo",
        &["copy", &run_image(), &format!("oci:{}:run", out.display())],
    );
    let run_before = config_json(&format!("oci:{}:run", out.display()));
    create(tmp.path(), &config);
    let tags: Vec<String> = tags(&out).into_iter().map(|(tag, _)| tag).collect();
    assert_eq!(tags, ["builder", "run"]);
    assert_eq!(
        config_json(&format!("oci:{}:run", out.display())),
        run_before
    );
}

#[test]
fn includes_a_local_lifecycle_tarball() {
    let tmp = tempfile::tempdir().unwrap();
    let tarball = tmp.path().join("lifecycle.tgz");
    {
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&tarball).unwrap(),
            flate2::Compression::fast(),
        );
        let mut tar = tar::Builder::new(gz);
        let mut add = |name: &str, bytes: &[u8], mode: u32| {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(mode);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, name, bytes).unwrap();
        };
        add(
            "lifecycle.toml",
            b"[apis.buildpack]\ndeprecated = []\nsupported = [\"0.10\", \"0.11\"]\n\
              [apis.platform]\ndeprecated = []\nsupported = [\"0.13\"]\n\
              [lifecycle]\nversion = \"0.20.5\"\n",
            0o644,
        );
        for binary in [
            "detector", "restorer", "analyzer", "builder", "exporter", "launcher", "creator",
        ] {
            add(&format!("lifecycle/{binary}"), b"#!/bin/sh\n", 0o755);
        }
        tar.into_inner().unwrap().finish().unwrap();
    }
    let config = example_builder(tmp.path(), "[lifecycle]\nuri = \"../lifecycle.tgz\"\n");
    let out = strata(
        tmp.path(),
        &[
            "builder",
            "create",
            "--config",
            config.to_str().unwrap(),
            "--output",
            "oci:out:builder",
        ],
    );
    assert_exit(&out, 0);
    assert!(!stderr(&out).contains("no lifecycle"), "{}", stderr(&out));
    let layout = tmp.path().join("out");
    let config = config_json(&format!("oci:{}:builder", layout.display()));
    let metadata: BuilderMetadata = serde_json::from_str(label(&config, METADATA_LABEL)).unwrap();
    assert_eq!(metadata.lifecycle.version, "0.20.5");
    assert_eq!(
        metadata.lifecycle.apis.buildpack.supported,
        ["0.10", "0.11"]
    );
    assert_eq!(metadata.lifecycle.api.buildpack, "0.10");
    let bundle = tmp.path().join("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:builder", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let launcher = bundle.join("rootfs/cnb/lifecycle/launcher");
    assert_eq!(
        std::fs::metadata(&launcher).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(
        std::fs::read_link(bundle.join("rootfs/lifecycle")).unwrap(),
        Path::new("/cnb/lifecycle")
    );
}

/// stderr with miette's line wrapping undone.
fn message(out: &std::process::Output) -> String {
    stderr(out)
        .split_whitespace()
        .filter(|w| *w != "│")
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn bad_builder_configs_exit_2_saying_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let config = example_builder(tmp.path(), "");
    let run = |config: &Path, extra: &[&str]| {
        let mut args = vec![
            "builder",
            "create",
            "--config",
            config.to_str().unwrap(),
            "--output",
            "oci:out:builder",
        ];
        args.extend(extra);
        strata(tmp.path(), &args)
    };

    // An order entry naming a buildpack the builder does not have.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("id = \"examples/node\"", "id = \"examples/missing\""),
    )
    .unwrap();
    let out = run(&config, &[]);
    assert_exit(&out, 2);
    assert!(
        message(&out).contains("the builder has no buildpack examples/missing"),
        "{}",
        stderr(&out)
    );

    // No build image: the example's own `host`, and none at all.
    std::fs::write(&config, &text).unwrap();
    let original = std::fs::read_to_string(common::examples().join("builder.toml")).unwrap();
    let host = tmp.path().join("examples/host.toml");
    std::fs::write(&host, &original).unwrap();
    let out = run(&host, &[]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("names no build image"),
        "{}",
        stderr(&out)
    );
    let none = tmp.path().join("examples/none.toml");
    std::fs::write(&none, original.replace("[build]\nimage = \"host\"\n", "")).unwrap();
    let out = run(&none, &[]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("names no build image"),
        "{}",
        stderr(&out)
    );
    // --build-image gives it one.
    let out = run(&none, &["--build-image", &run_image()]);
    assert_exit(&out, 0);

    // A stack id that is not the build image's.
    let stack = tmp.path().join("examples/stack.toml");
    std::fs::write(&stack, format!("{text}\n[stack]\nid = \"other.stack\"\n")).unwrap();
    let out = run(&stack, &[]);
    assert_exit(&out, 2);
    assert!(
        message(&out).contains("`[stack] id` is `other.stack` but build image"),
        "{}",
        stderr(&out)
    );

    // A buildpack for another architecture than the build image's, as pack refuses it.
    let motd = tmp.path().join("examples/buildpacks/motd/buildpack.toml");
    let motd_text = std::fs::read_to_string(&motd).unwrap();
    std::fs::write(&motd, format!("{motd_text}arch = \"s390x\"\n")).unwrap();
    let out = run(&config, &[]);
    assert_exit(&out, 2);
    assert!(
        message(&out).contains(
            "buildpack examples/motd@0.1.0 is for linux/s390x, not for the build image's linux/"
        ),
        "{}",
        stderr(&out)
    );
    std::fs::write(&motd, motd_text).unwrap();

    // A build image that is not there; the layout is left as it was.
    let before = tags(&tmp.path().join("out"));
    let out = run(&config, &["--build-image", "oci:nowhere:build"]);
    assert_exit(&out, 2);
    assert!(message(&out).contains("nowhere"), "{}", stderr(&out));
    assert_eq!(tags(&tmp.path().join("out")), before);
}

/// Each layerDiffID is a layer of the image, holding exactly that buildpack's files, owned by
/// root, at the normalized time.
fn assert_buildpack_layers(root: &Path, config: &serde_json::Value, layers: &ModuleLayers) {
    let layout = root.join("out");
    let diff_ids: BTreeSet<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let examples = root.join("examples/buildpacks");
    for bp in BUILDPACKS {
        let id = format!("examples/{bp}");
        let info = &layers[&id]["0.1.0"];
        assert!(diff_ids.contains(info.layer_diff_id.as_str()), "{id}");
        let prefix = format!("cnb/buildpacks/examples_{bp}/0.1.0");
        let entries = layer_entries(&layout, &info.layer_diff_id);
        let mut files = BTreeSet::new();
        for (path, uid, gid, mtime) in &entries {
            assert_eq!((*uid, *gid, *mtime), (0, 0, 315_532_801), "{path}");
            if let Some(rest) = path.strip_prefix(&format!("{prefix}/")) {
                files.insert(rest.to_owned());
            } else {
                assert!(
                    [
                        "cnb",
                        "cnb/buildpacks",
                        &format!("cnb/buildpacks/examples_{bp}"),
                        &prefix
                    ]
                    .contains(&path.as_str()),
                    "{path} does not belong in the layer of {id}"
                );
            }
        }
        assert_eq!(files, tree(&examples.join(bp)), "{id}");
    }
}

/// umoci unpacks it: the files the lifecycle and pack read are there.
fn assert_unpacked(root: &Path, layout: &Path) {
    let bundle = root.join("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:builder", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let rootfs = bundle.join("rootfs");
    let node_toml =
        std::fs::read_to_string(rootfs.join("cnb/buildpacks/examples_node/0.1.0/buildpack.toml"))
            .unwrap();
    assert!(node_toml.contains("examples/node"));
    let order_toml: toml::Table =
        toml::from_str(&std::fs::read_to_string(rootfs.join("cnb/order.toml")).unwrap()).unwrap();
    assert_eq!(
        order_toml["order"][1]["group"][0]["version"].as_str(),
        Some("0.1.0")
    );
    let run_toml = std::fs::read_to_string(rootfs.join("cnb/run.toml")).unwrap();
    assert!(
        run_toml.contains("registry.example.com/run:1"),
        "{run_toml}"
    );
    let stack_toml = std::fs::read_to_string(rootfs.join("cnb/stack.toml")).unwrap();
    assert!(stack_toml.contains("[run-image]"), "{stack_toml}");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("cnb/build-config/env/BP_GREETING.default")).unwrap(),
        "hi"
    );
    let layers_dir = std::fs::metadata(rootfs.join("layers")).unwrap();
    assert_eq!((layers_dir.uid(), layers_dir.gid()), (1000, 1000));
    let platform = std::fs::metadata(rootfs.join("platform/env")).unwrap();
    assert_eq!(platform.uid(), 0);
    // The build image's own files are under it.
    assert!(rootfs.join("bin/busybox").is_file());
}

/// A build image that names its user only in `User`: the builder gets `CNB_USER_ID` and
/// `CNB_GROUP_ID` (which pack and the lifecycle require) and `/layers` belongs to that user.
#[test]
fn a_build_image_without_cnb_ids_gets_them_from_its_user() {
    let tmp = tempfile::tempdir().unwrap();
    let image = common::runimage::RunImageCopy::new(tmp.path(), "build").user("1234:1235");
    let reference = image.reference();
    let dir = reference
        .strip_prefix("oci:")
        .unwrap()
        .strip_suffix(":busybox")
        .unwrap();
    tool(
        "umoci",
        &[
            "config",
            "--image",
            &format!("{dir}:busybox"),
            "--clear=config.env",
            "--config.env",
            "PATH=/bin",
        ],
    );
    let config = example_builder(tmp.path(), "");
    let out = strata(
        tmp.path(),
        &[
            "builder",
            "create",
            "--config",
            config.to_str().unwrap(),
            "--build-image",
            &reference,
            "--output",
            "oci:out:builder",
        ],
    );
    assert_exit(&out, 0);
    let layout = tmp.path().join("out");
    let config = config_json(&format!("oci:{}:builder", layout.display()));
    let env: Vec<&str> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(env, ["PATH=/bin", "CNB_USER_ID=1234", "CNB_GROUP_ID=1235"]);
    let bundle = tmp.path().join("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:builder", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let layers = std::fs::metadata(bundle.join("rootfs/layers")).unwrap();
    assert_eq!((layers.uid(), layers.gid()), (1234, 1235));
}
