//! `--compression zstd` end to end: skopeo and `zstd -d` read the image, and runc runs it
//! (unpacked by umoci once skopeo has recompressed it); its blobs are the same on one core and on all; a run image with zstd layers is a base
//! strata builds on and rebases onto.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use common::*;

const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// `skopeo inspect [flags] image`, parsed.
fn inspect(image: &str, flags: &[&str]) -> serde_json::Value {
    let mut args = vec!["inspect"];
    args.extend_from_slice(flags);
    args.push(image);
    serde_json::from_str(&tool("skopeo", &args)).unwrap()
}

/// The layer descriptors of the manifest of `oci:<layout>:<tag>`.
fn layers(layout: &Path, tag: &str) -> Vec<serde_json::Value> {
    let manifest = inspect(&format!("oci:{}:{tag}", layout.display()), &["--raw"]);
    manifest["layers"].as_array().unwrap().clone()
}

fn digests(layers: &[serde_json::Value]) -> HashSet<String> {
    layers
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs `oci:<layout>:<tag>` with runc: what it printed. The umoci here reads no zstd
/// layers, so skopeo decompresses each one (into gzip) first, then umoci unpacks that.
fn unpack_and_run(layout: &Path, tag: &str, bundle: &Path) -> String {
    let gzipped = bundle.with_extension("gzip");
    tool(
        "skopeo",
        &[
            "copy",
            "--dest-compress-format",
            "gzip",
            &format!("oci:{}:{tag}", layout.display()),
            &format!("oci:{}:{tag}", gzipped.display()),
        ],
    );
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{tag}", gzipped.display()),
            bundle.to_str().unwrap(),
        ],
    );
    String::from_utf8_lossy(&runc(bundle, None).stdout).into_owned()
}

#[test]
fn a_zstd_image_is_read_by_skopeo_umoci_and_zstd_and_run_by_runc() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let digest = build_example(
        tmp.path(),
        &examples().join("apps/hello"),
        &out,
        "hello",
        &["--compression", "zstd"],
    );
    let image = format!("oci:{}:hello", out.display());
    assert_eq!(inspect(&image, &[]).get("Digest").unwrap(), &digest);

    // The run image's layers stay as they are; every layer strata wrote is zstd.
    let base = digests(&layers(&run_image_dir(), "busybox"));
    let all = layers(&out, "hello");
    let ours: Vec<_> = all
        .iter()
        .filter(|l| !base.contains(l["digest"].as_str().unwrap()))
        .collect();
    assert!(ours.len() >= 3, "app, buildpack, launcher layers: {all:?}");
    let config = inspect(&image, &["--config"]);
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    for layer in &ours {
        assert_eq!(layer["mediaType"], ZSTD, "{layer}");
        // zstd itself decompresses the blob to the tar the config names.
        let digest = layer["digest"].as_str().unwrap();
        let blob = out.join("blobs/sha256").join(&digest["sha256:".len()..]);
        let tar = Command::new("zstd")
            .args(["-dc", "--"])
            .arg(&blob)
            .output()
            .unwrap();
        assert!(tar.status.success(), "zstd -d {digest}: {}", stderr(&tar));
        let diff_id = builderimage::sha256(&tar.stdout);
        let index = all.iter().position(|l| l["digest"] == digest).unwrap();
        assert_eq!(diff_ids[index], diff_id.as_str(), "{digest}");
    }
    // skopeo copies it (checking every blob against its digest).
    tool(
        "skopeo",
        &[
            "copy",
            &image,
            &format!("oci:{}:copy", tmp.path().join("copy").display()),
        ],
    );

    let run = unpack_and_run(&out, "hello", &tmp.path().join("bundle"));
    assert_eq!(run, "Welcome from greeter 1.2: strata\n");
}

/// Builds `app` into `oci:<out>:big` with a store of its own, on the CPUs `cpus` names
/// (`taskset` syntax) or on all: the manifest digest.
fn build_on(root: &Path, app: &Path, out: &Path, cpus: Option<&str>) -> String {
    let builder = examples().join("builder.toml");
    let run_image = run_image();
    let args = [
        "build",
        app.to_str().unwrap(),
        "--builder",
        builder.to_str().unwrap(),
        "--run-image",
        &run_image,
        "--output",
        &format!("oci:{}:big", out.display()),
        "--compression",
        "zstd",
        "--json",
    ];
    let mut command = match cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus]).arg(env!("CARGO_BIN_EXE_strata"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_strata")),
    };
    let result = command
        .args(args)
        .current_dir(root)
        .env_remove("SOURCE_DATE_EPOCH")
        .env("XDG_CACHE_HOME", out.with_extension("cache"))
        .env("TMPDIR", scratch_tmpdir())
        .output()
        .unwrap();
    assert_exit(&result, 0);
    let report: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    report["digest"].as_str().unwrap().to_owned()
}

#[test]
fn zstd_blobs_are_the_same_on_one_core_and_on_all() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    copy_tree(&examples().join("apps/hello"), &app);
    // Some 30 MB: several of libzstd's jobs, so that more than one worker has work.
    let mut numbers = String::new();
    for i in 0..4_000_000u32 {
        writeln!(numbers, "{i:x}").unwrap();
    }
    std::fs::write(app.join("numbers.txt"), numbers).unwrap();
    date_in_the_past(&app);

    let one = build_on(tmp.path(), &app, &tmp.path().join("one"), Some("0"));
    let all = build_on(tmp.path(), &app, &tmp.path().join("all"), None);
    assert_eq!(one, all, "the same manifest on one core and on all");
    assert_eq!(
        layers(&tmp.path().join("one"), "big"),
        layers(&tmp.path().join("all"), "big")
    );
}

#[test]
fn a_run_image_with_zstd_layers_is_a_base_to_build_on_and_rebase_onto() {
    let tmp = tempfile::tempdir().unwrap();
    let zrun = tmp.path().join("zrun");
    tool(
        "skopeo",
        &[
            "copy",
            "--dest-compress-format",
            "zstd",
            &run_image(),
            &format!("oci:{}:busybox", zrun.display()),
        ],
    );
    let base = layers(&zrun, "busybox");
    assert!(base.iter().all(|l| l["mediaType"] == ZSTD), "{base:?}");
    let zrun_image = format!("oci:{}:busybox", zrun.display());

    // Built on the gzip run image, rebased onto the zstd one (the same files: forced past the
    // check that the image was built on the run image it is rebased onto).
    let out = tmp.path().join("out");
    build_example(
        tmp.path(),
        &examples().join("apps/hello"),
        &out,
        "hello",
        &["--compression", "zstd"],
    );
    let rebase = strata(
        tmp.path(),
        &[
            "rebase",
            "--force",
            "--run-image",
            &zrun_image,
            &format!("oci:{}:hello", out.display()),
        ],
    );
    assert_exit(&rebase, 0);
    let rebased = layers(&out, "hello");
    assert_eq!(&rebased[..base.len()], &base[..], "the zstd base, as it is");
    assert!(
        rebased.iter().all(|l| l["mediaType"] == ZSTD),
        "{rebased:?}"
    );
    let run = unpack_and_run(&out, "hello", &tmp.path().join("rebased"));
    assert_eq!(run, "Welcome from greeter 1.2: strata\n");

    // Built on the zstd run image.
    let direct = tmp.path().join("direct");
    let built = strata(
        tmp.path(),
        &[
            "build",
            examples().join("apps/hello").to_str().unwrap(),
            "--builder",
            examples().join("builder.toml").to_str().unwrap(),
            "--run-image",
            &zrun_image,
            "--output",
            &format!("oci:{}:hello", direct.display()),
            "--compression",
            "zstd",
        ],
    );
    assert_exit(&built, 0);
    assert_eq!(&layers(&direct, "hello")[..base.len()], &base[..]);
    let run = unpack_and_run(&direct, "hello", &tmp.path().join("direct-bundle"));
    assert_eq!(run, "Welcome from greeter 1.2: strata\n");
}
