//! `strata rebase` end to end: an app built on the example run image moves onto a patched
//! copy of it; the result equals a rebuild byte for byte, and skopeo, umoci, oci-image-tool and
//! runc read and run it. Refusals and broken images are reported per image while the batch
//! goes on, and the layout's index is rewritten once, whole.
//!
//! The run image is always named `oci:base:busybox`, with `base` a symlink in the test's
//! directory: pointing it at the patched layout is how a run image tag moves to a new version.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

const RUN_IMAGE: &str = "oci:base:busybox";
const FIXED_TIME: &str = "1980-01-01T00:00:01Z";

/// The example run image (A) and a copy with `/etc/patch-level` added by one more layer (A').
fn run_images() -> &'static (PathBuf, PathBuf) {
    static DIRS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DIRS.get_or_init(|| {
        let reference = run_image();
        let (dir, _) = reference
            .strip_prefix("oci:")
            .unwrap()
            .rsplit_once(':')
            .unwrap();
        let a = PathBuf::from(dir);
        let patched = process_dir("patched-run-image");
        let _ = std::fs::remove_dir_all(&patched);
        std::fs::create_dir_all(&patched).unwrap();
        copy_tree(&a, &patched);
        let image = format!("{}:busybox", patched.display());
        let work = tempfile::tempdir().unwrap();
        let bundle = work.path().join("bundle");
        tool(
            "umoci",
            &["unpack", "--image", &image, bundle.to_str().unwrap()],
        );
        let etc = bundle.join("rootfs/etc");
        std::fs::write(etc.join("patch-level"), "patched\n").unwrap();
        for path in [etc.join("patch-level"), etc] {
            tool("touch", &["-h", "-d", FIXED_TIME, path.to_str().unwrap()]);
        }
        tool(
            "umoci",
            &[
                "repack",
                "--history.created",
                FIXED_TIME,
                "--history.created_by",
                "patch /etc/patch-level",
                "--image",
                &image,
                bundle.to_str().unwrap(),
            ],
        );
        tool(
            "umoci",
            &[
                "config",
                "--no-history",
                "--created",
                FIXED_TIME,
                "--image",
                &image,
            ],
        );
        tool("umoci", &["gc", "--layout", patched.to_str().unwrap()]);
        (a, patched)
    })
}

/// Points `<cwd>/base` at `layout`: the run image named `oci:base:busybox` is then that one.
fn point_base(cwd: &Path, layout: &Path) {
    let link = cwd.join("base");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(layout, link).unwrap();
}

/// Builds the example app on `oci:base:busybox` into `output`; returns the manifest digest.
fn build_hello(cwd: &Path, output: &str) -> String {
    build_hello_on(cwd, RUN_IMAGE, output)
}

/// Builds the example app on `run_image` into `output`; returns the manifest digest.
fn build_hello_on(cwd: &Path, run_image: &str, output: &str) -> String {
    let app = examples().join("apps/hello");
    let builder = examples().join("builder.toml");
    let out = strata(
        cwd,
        &[
            "build",
            app.to_str().unwrap(),
            "--builder",
            builder.to_str().unwrap(),
            "--run-image",
            run_image,
            "--output",
            output,
            "--json",
        ],
    );
    assert_exit(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["digest"].as_str().unwrap().to_owned()
}

/// `strata rebase --run-image oci:base:busybox ARGS... --json`, with its parsed report.
fn rebase_json(cwd: &Path, args: &[&str]) -> (Output, Value) {
    let mut all = vec!["rebase", "--run-image", RUN_IMAGE, "--json"];
    all.extend_from_slice(args);
    let out = strata(cwd, &all);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        )
    });
    (out, report)
}

/// The report row of `image`.
fn row<'a>(report: &'a Value, image: &str) -> &'a Value {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["image"] == image)
        .unwrap_or_else(|| panic!("no row for {image}: {report:#}"))
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn digest_of(layout: &Path, tag: &str) -> String {
    tags(layout)
        .into_iter()
        .find(|(t, _)| t == tag)
        .unwrap_or_else(|| panic!("no tag {tag}"))
        .1
}

fn manifest(layout: &Path, tag: &str) -> Value {
    read_json(&blob_path(layout, &digest_of(layout, tag)))
}

fn config(layout: &Path, tag: &str) -> Value {
    let manifest = manifest(layout, tag);
    read_json(&blob_path(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Writes `bytes` as a blob of `layout`; returns its descriptor's digest and size.
fn put_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let digest = sha256(bytes);
    std::fs::write(blob_path(layout, &digest), bytes).unwrap();
    (digest, bytes.len())
}

/// Every tagged manifest is complete: its blobs are there, manifest and config match their
/// digests.
fn assert_layout_complete(layout: &Path) {
    for (tag, digest) in tags(layout) {
        let bytes = std::fs::read(blob_path(layout, &digest)).unwrap();
        assert_eq!(sha256(&bytes), digest, "manifest of {tag}");
        let manifest: Value = serde_json::from_slice(&bytes).unwrap();
        let config = manifest["config"]["digest"].as_str().unwrap();
        assert_eq!(
            sha256(&std::fs::read(blob_path(layout, config)).unwrap()),
            config
        );
        for layer in manifest["layers"].as_array().unwrap() {
            let path = blob_path(layout, layer["digest"].as_str().unwrap());
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                layer["size"].as_u64().unwrap(),
                "layer of {tag}"
            );
        }
    }
}

/// oci-image-tool validates the image tagged `tag`. Its 1.0.0-rc1 (Debian's) finds every ref
/// "not unique" in an index of several entries, so it looks at a copy of the layout (blobs
/// hardlinked) whose index has that one entry.
fn oci_image_tool_validates(layout: &Path, tag: &str) {
    let copy = tempfile::tempdir().unwrap();
    let single = copy.path().join("layout");
    tool(
        "cp",
        &["-al", layout.to_str().unwrap(), single.to_str().unwrap()],
    );
    let mut index = read_json(&layout.join("index.json"));
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag);
    std::fs::remove_file(single.join("index.json")).unwrap();
    std::fs::write(
        single.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let out = tool(
        "oci-image-tool",
        &[
            "validate",
            "--type",
            "image",
            "--ref",
            &format!("name={tag}"),
            single.to_str().unwrap(),
        ],
    );
    assert!(out.contains("Validation succeeded"), "{out}");
}

/// The app layers of an image: above the run image's top layer and its SBOM layer (which
/// rebase replaces with the new run image's).
fn app_layers(layout: &Path, tag: &str) -> Vec<String> {
    let config = config(layout, tag);
    let label = |name: &str| -> Value {
        serde_json::from_str(config["config"]["Labels"][name].as_str().unwrap()).unwrap()
    };
    let top = &label("io.buildpacks.lifecycle.metadata")["runImage"]["topLayer"];
    let run_sbom = label("io.strata.sbom")
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["describes"] == "run image")
        .unwrap()["layer"]
        .clone();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let start = diff_ids.iter().position(|d| d == top).unwrap() + 1;
    assert_eq!(diff_ids[start], run_sbom, "the run image's SBOM is on it");
    manifest(layout, tag)["layers"].as_array().unwrap()[start + 1..]
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn rebase_equals_rebuild_and_the_rebased_image_runs_with_the_patch() {
    let (a, patched) = run_images();
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    point_base(cwd, a);
    let before = build_hello(cwd, "oci:out:hello");

    point_base(cwd, patched);
    let (out, report) = rebase_json(cwd, &["oci:out:hello"]);
    assert_exit(&out, 0);
    let hello = row(&report, "oci:out:hello");
    assert_eq!(hello["status"], "rebased", "{report:#}");
    assert_eq!(hello["old_digest"], before);
    let rebased = hello["new_digest"].as_str().unwrap().to_owned();
    assert_eq!(digest_of(&cwd.join("out"), "hello"), rebased);

    let rebuilt = build_hello(cwd, "oci:rebuilt:hello");
    assert_eq!(
        rebased, rebuilt,
        "rebase and rebuild give the same manifest"
    );
    assert_eq!(
        std::fs::read(blob_path(&cwd.join("out"), &rebased)).unwrap(),
        std::fs::read(blob_path(&cwd.join("rebuilt"), &rebuilt)).unwrap()
    );

    let layout = cwd.join("out");
    let skopeo: Value = serde_json::from_str(&tool(
        "skopeo",
        &["inspect", &format!("oci:{}:hello", layout.display())],
    ))
    .unwrap();
    assert_eq!(skopeo["Digest"], rebased);
    assert_eq!(
        skopeo["Labels"]["io.buildpacks.base.id"],
        "examples.busybox"
    );
    oci_image_tool_validates(&layout, "hello");

    let inspect = strata(cwd, &["inspect", "oci:out:hello", "--json"]);
    assert_exit(&inspect, 0);
    let inspect: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect["run_image"]["image"], RUN_IMAGE);
    assert_eq!(
        inspect["run_image"]["topLayer"],
        report["run_image"]["top_layer"]
    );
    assert_eq!(
        inspect["run_image"]["reference"],
        report["run_image"]["digest"]
    );
    let base_layers = inspect["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["run_image"] == true)
        .count();
    assert_eq!(base_layers, 2, "the patched run image has one layer more");

    let bundle = cwd.join("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:hello", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/etc/patch-level")).unwrap(),
        "patched\n"
    );
    // A user command through the launcher, which gives it the buildpacks' env (`greet`).
    let run = docker_run(
        &bundle,
        Some("/cnb/lifecycle/launcher"),
        &[
            "--",
            "/bin/sh",
            "-c",
            "cat /etc/patch-level && greet strata",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "patched\nWelcome from greeter 1.2: strata\n"
    );

    // Once more: already on the new base, left alone.
    let index = std::fs::read(layout.join("index.json")).unwrap();
    let again = strata(cwd, &["rebase", "--run-image", RUN_IMAGE, "oci:out:hello"]);
    assert_exit(&again, 0);
    let table = String::from_utf8_lossy(&again.stdout);
    assert!(table.contains("up to date"), "{table}");
    assert_eq!(std::fs::read(layout.join("index.json")).unwrap(), index);
}

#[test]
fn no_app_layer_byte_is_read() {
    let (a, patched) = run_images();
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    point_base(cwd, a);
    build_hello(cwd, "oci:out:hello");
    let layout = cwd.join("out");
    let app = app_layers(&layout, "hello");
    assert_eq!(
        app.len(),
        8,
        "three launch layers, SBOM, app, launcher, config and process-types layers"
    );

    // A copy whose app layer blobs are gone: its manifest and config are read and the blobs
    // found missing (by their size), so the image is reported and nothing is written.
    let bare = cwd.join("bare");
    std::fs::create_dir(&bare).unwrap();
    copy_tree(&layout, &bare);
    for digest in &app {
        std::fs::remove_file(blob_path(&bare, digest)).unwrap();
    }
    let bare_before = snapshot_tree(&bare);
    point_base(cwd, patched);
    for dry_run in [true, false] {
        let args: &[&str] = if dry_run {
            &["--dry-run", "oci:bare:hello"]
        } else {
            &["oci:bare:hello"]
        };
        let (out, report) = rebase_json(cwd, args);
        assert_exit(&out, 1);
        let error = row(&report, "oci:bare:hello")["error"].as_str().unwrap();
        assert!(
            error.contains("missing") && error.contains(&app[0]),
            "{error}"
        );
    }
    assert_eq!(snapshot_tree(&bare), bare_before);

    // The same layers replaced by as many bytes of something else: rebased all the same.
    for digest in &app {
        let path = blob_path(&layout, digest);
        let size = std::fs::metadata(&path).unwrap().len();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, vec![b'x'; usize::try_from(size).unwrap()]).unwrap();
    }
    let (out, report) = rebase_json(cwd, &["oci:out:hello"]);
    assert_exit(&out, 0);
    assert_eq!(row(&report, "oci:out:hello")["status"], "rebased");
    assert_eq!(
        app_layers(&layout, "hello"),
        app,
        "app layers reused by digest"
    );
    for digest in &app {
        assert_eq!(
            std::fs::read(blob_path(&layout, digest)).unwrap()[0],
            b'x',
            "untouched"
        );
    }
}

#[test]
fn the_proof_that_the_new_base_is_its_diff_ids_is_kept_in_the_cache() {
    let (a, patched) = run_images();
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    point_base(cwd, a);
    build_hello(cwd, "oci:out:hello");
    point_base(cwd, patched);
    let cache = cwd.join("rebase-cache");
    let proofs =
        || -> usize { std::fs::read_dir(cache.join("store/actions")).map_or(0, Iterator::count) };
    let cache_arg = format!("--cache-dir={}", cache.display());
    let (out, report) = rebase_json(cwd, &[&cache_arg, "oci:out:hello"]);
    assert_exit(&out, 0);
    assert_eq!(row(&report, "oci:out:hello")["status"], "rebased");
    let layers = manifest(patched, "busybox")["layers"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        proofs(),
        layers + 1,
        "one proof per layer of the new run image, and its packages"
    );
    let verify = strata(cwd, &["cache", "verify", &cache_arg]);
    assert_exit(&verify, 0);
}

/// A layout `out` in `cwd` with the example app built on A as `ok`, and copies of it that
/// rebase must not take: `pinned` (rebasable=false), `arm` (arm64), `plain` (no labels) and
/// `lost` (a top layer it does not have, returned). Leaves `base` pointing at A'.
fn refusal_cases(cwd: &Path) -> String {
    let (a, patched) = run_images();
    point_base(cwd, a);
    build_hello(cwd, "oci:out:ok");
    let layout = cwd.join("out");
    let image = format!("{}:ok", layout.display());
    let variant = |tag: &str, args: &[&str]| {
        let mut all = vec!["config", "--no-history", "--image", &image, "--tag", tag];
        all.extend_from_slice(args);
        tool("umoci", &all);
    };
    variant(
        "pinned",
        &["--config.label", "io.buildpacks.rebasable=false"],
    );
    variant("arm", &["--architecture", "arm64"]);
    variant("plain", &["--clear", "config.labels"]);
    let mut meta: Value = serde_json::from_str(
        config(&layout, "ok")["config"]["Labels"]["io.buildpacks.lifecycle.metadata"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let bogus = sha256(b"no such layer");
    meta["runImage"]["topLayer"] = bogus.clone().into();
    variant(
        "lost",
        &[
            "--config.label",
            &format!("io.buildpacks.lifecycle.metadata={meta}"),
        ],
    );
    point_base(cwd, patched);
    bogus
}

#[test]
fn refusals_and_broken_images_are_reported_per_image_and_the_batch_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let bogus = refusal_cases(cwd);
    let layout = cwd.join("out");
    let before = tags(&layout);

    let refs = ["ok", "pinned", "arm", "plain", "lost"].map(|t| format!("oci:out:{t}"));
    let args: Vec<&str> = refs.iter().map(String::as_str).collect();
    let (out, report) = rebase_json(cwd, &args);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("4 of 5 images could not be rebased"),
        "{}",
        stderr(&out)
    );
    assert_eq!(row(&report, "oci:out:ok")["status"], "rebased");
    let expect = [
        ("pinned", "refused", vec!["io.buildpacks.rebasable=false"]),
        ("arm", "refused", vec!["architecture", "amd64", "arm64"]),
        (
            "plain",
            "failed",
            vec!["no `io.buildpacks.lifecycle.metadata` label"],
        ),
        (
            "lost",
            "failed",
            vec!["top layer", bogus.as_str(), "not one of its layers"],
        ),
    ];
    for (tag, status, words) in &expect {
        let row = row(&report, &format!("oci:out:{tag}"));
        assert_eq!(row["status"], *status, "{row:#}");
        let error = row["error"].as_str().unwrap();
        for word in words {
            assert!(error.contains(word), "{tag}: {error}");
        }
    }
    let after = tags(&layout);
    for (tag, digest) in &before {
        let now = &after.iter().find(|(t, _)| t == tag).unwrap().1;
        assert_eq!(now == digest, tag != "ok", "{tag}");
    }
    assert_layout_complete(&layout);

    // The table says the same to a person.
    let text = strata(
        cwd,
        &[
            "rebase",
            "--run-image",
            RUN_IMAGE,
            "oci:out:pinned",
            "oci:out:plain",
        ],
    );
    assert_exit(&text, 1);
    let table = String::from_utf8_lossy(&text.stdout);
    assert!(
        table.contains("refused: the image is labelled io.buildpacks.rebasable=false"),
        "{table}"
    );
    assert!(table.contains("--force overrides"), "{table}");
    assert!(
        table.contains("oci:out:plain") && table.contains("failed:"),
        "{table}"
    );
}

#[test]
fn forced_the_cnb_refusals_give_way_and_the_platform_is_the_new_run_images() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    refusal_cases(cwd);
    let layout = cwd.join("out");
    let args = ["--force", "oci:out:pinned", "oci:out:arm"];
    let (out, report) = rebase_json(cwd, &args);
    assert_exit(&out, 0);
    for tag in ["pinned", "arm"] {
        let row = row(&report, &format!("oci:out:{tag}"));
        assert_eq!(row["status"], "rebased", "{row:#}");
        assert!(!row["forced"].as_array().unwrap().is_empty());
    }
    assert_eq!(config(&layout, "arm")["architecture"], "amd64");
    let (out, report) = rebase_json(cwd, &["--force", "oci:out:plain"]);
    assert_exit(&out, 1);
    assert_eq!(
        row(&report, "oci:out:plain")["status"],
        "failed",
        "no metadata is no base to replace, forced or not"
    );
}

/// Adds `n` tags `app-NNN` to `layout`, each a copy of `tag` with its own label (so its own
/// config and manifest) and the same layers; `edit` may change a copy's config.
fn fan_out(layout: &Path, tag: &str, n: usize, edit: impl Fn(usize, &mut Value)) {
    let manifest = manifest(layout, tag);
    let config = config(layout, tag);
    let mut index = read_json(&layout.join("index.json"));
    let entries = index["manifests"].as_array_mut().unwrap();
    for i in 0..n {
        let mut config = config.clone();
        config["config"]["Labels"]["org.example.copy"] = i.to_string().into();
        edit(i, &mut config);
        let (digest, size) = put_blob(layout, &serde_json::to_vec(&config).unwrap());
        let mut manifest = manifest.clone();
        manifest["config"]["digest"] = digest.into();
        manifest["config"]["size"] = size.into();
        let (digest, size) = put_blob(layout, &serde_json::to_vec(&manifest).unwrap());
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": size,
            "annotations": { "org.opencontainers.image.ref.name": format!("app-{i:03}") }
        }));
    }
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_batch_of_200_with_one_broken_image_rebases_199_in_one_commit() {
    let (a, patched) = run_images();
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    point_base(cwd, a);
    build_hello(cwd, "oci:out:seed");
    let layout = cwd.join("out");
    let broken = 137;
    fan_out(&layout, "seed", 199, |i, config| {
        if i == broken {
            let label = &mut config["config"]["Labels"]["io.buildpacks.lifecycle.metadata"];
            let mut meta: Value = serde_json::from_str(label.as_str().unwrap()).unwrap();
            meta["runImage"]["topLayer"] = sha256(b"gone").into();
            *label = meta.to_string().into();
        }
    });
    let mut before = tags(&layout);
    before.sort();
    assert_eq!(before.len(), 200);
    point_base(cwd, patched);
    let new_top = {
        let (out, report) = rebase_json(cwd, &["--dry-run", "--all", "oci:out"]);
        assert_exit(&out, 1);
        assert_eq!(report["summary"]["rebased"], 199, "{:#}", report["summary"]);
        let mut now = tags(&layout);
        now.sort();
        assert_eq!(now, before, "a dry run writes nothing");
        report["run_image"]["top_layer"].clone()
    };

    let (out, report) = rebase_json(cwd, &["--all", "oci:out", "--jobs", "2"]);
    assert_exit(&out, 1);
    assert_eq!(report["summary"]["rebased"], 199);
    assert_eq!(report["summary"]["failed"], 1);
    assert_eq!(report["images"].as_array().unwrap().len(), 200);
    let failed = row(&report, &format!("oci:out:app-{broken:03}"));
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("not one of its layers"),
        "{failed:#}"
    );

    let after = tags(&layout);
    assert_eq!(after.len(), 200, "index.json has every tag, once");
    for ((tag, old), (tag_after, new)) in before.iter().zip(&after) {
        assert_eq!(tag, tag_after);
        let rebased = row(&report, &format!("oci:out:{tag}"));
        if *tag == format!("app-{broken:03}") {
            assert_eq!(old, new, "the broken image keeps its manifest");
        } else {
            assert_eq!(rebased["new_digest"], new.as_str());
            let meta: Value = serde_json::from_str(
                config(&layout, tag)["config"]["Labels"]["io.buildpacks.lifecycle.metadata"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(meta["runImage"]["topLayer"], new_top);
        }
    }
    assert_layout_complete(&layout);
    let leftovers: Vec<_> = std::fs::read_dir(cwd)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("staging"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    oci_image_tool_validates(&layout, "app-000");

    // Only the broken one is left to do.
    let (out, report) = rebase_json(cwd, &["--all", "oci:out"]);
    assert_exit(&out, 1);
    assert_eq!(report["summary"]["up_to_date"], 199);
    assert_eq!(report["summary"]["failed"], 1);
}

#[test]
fn bad_input_is_exit_2_and_writes_nothing() {
    let (a, _) = run_images();
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    point_base(cwd, a);
    build_hello(cwd, "oci:out:hello");
    let before = snapshot_tree(&cwd.join("out"));
    let cases: [(&[&str], &str); 5] = [
        (
            &["rebase", "--run-image", "oci:nowhere:x", "oci:out:hello"],
            "nowhere",
        ),
        (&["rebase", "--run-image", RUN_IMAGE], "nothing to rebase"),
        (
            &["rebase", "--run-image", RUN_IMAGE, "--all", "oci:missing"],
            "missing",
        ),
        (
            &["rebase", "--run-image", RUN_IMAGE, "--all", "oci:out:hello"],
            "without a tag",
        ),
        (
            &["rebase", "--run-image", RUN_IMAGE, "out:hello"],
            "transport",
        ),
    ];
    for (args, words) in cases {
        let out = strata(cwd, args);
        assert_exit(&out, 2);
        assert!(stderr(&out).contains(words), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(snapshot_tree(&cwd.join("out")), before);

    let help = strata(cwd, &["rebase", "--help"]);
    assert_exit(&help, 0);
    assert!(String::from_utf8_lossy(&help.stdout).contains("strata rebase --run-image"));
}

#[test]
fn images_on_another_run_image_name_are_left_alone_and_the_report_says_what_they_are_on() {
    let (a, patched) = run_images();
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    point_base(cwd, a);
    let before = build_hello(cwd, "oci:out:hello");
    std::os::unix::fs::symlink(patched, cwd.join("elsewhere")).unwrap();

    let other = "oci:elsewhere:busybox";
    let out = strata(cwd, &["rebase", "--run-image", other, "--all", "oci:out"]);
    assert_exit(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "1 other image in the layout not on {other} (1 on {RUN_IMAGE})"
        )),
        "{text}"
    );
    let out = strata(
        cwd,
        &["rebase", "--run-image", other, "--all", "oci:out", "--json"],
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hello = row(&report, "oci:out:hello");
    assert_eq!(hello["status"], "not_on_base", "{report:#}");
    assert_eq!(hello["on"], RUN_IMAGE);
    assert_eq!(digest_of(&cwd.join("out"), "hello"), before, "left alone");
}

/// `strata rebase --run-image REF --all LAYOUT --json` from `cwd`, which must exit 0.
fn rebase_all(cwd: &Path, run_image: &str, layout: &str) -> Value {
    let out = strata(
        cwd,
        &[
            "rebase",
            "--run-image",
            run_image,
            "--all",
            layout,
            "--json",
        ],
    );
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_readme_monorepo_rebase_takes_every_service_from_the_root_and_from_elsewhere() {
    let (_, patched) = run_images();
    let copy = ExampleCopy::new();
    let root = copy.path("");
    let layout = copy.path("examples/run-image/layout");
    let out = strata(&root, &["build", "examples/monorepo"]);
    assert_exit(&out, 0);
    let built = tags(&copy.path("examples/monorepo/out"));
    assert_eq!(built.len(), 10);
    let original = copy.path("original-run-image");
    std::fs::create_dir_all(&original).unwrap();
    copy_tree(&layout, &original);

    // The README's command, from the repository root: the images recorded their run image
    // as `oci:../run-image/layout:busybox`, read from the directory holding their layout.
    std::fs::remove_dir_all(&layout).unwrap();
    std::fs::create_dir_all(&layout).unwrap();
    copy_tree(patched, &layout);
    let report = rebase_all(
        &root,
        "oci:examples/run-image/layout:busybox",
        "oci:examples/monorepo/out",
    );
    assert_eq!(report["summary"]["rebased"], 10, "{:#}", report["summary"]);
    let rebased = tags(&copy.path("examples/monorepo/out"));
    for ((tag, old), (_, new)) in built.iter().zip(&rebased) {
        assert_ne!(old, new, "{tag} is rebased");
        let shown = format!("oci:examples/monorepo/out:{tag}");
        assert_eq!(row(&report, &shown)["new_digest"], new.as_str());
    }
    assert_layout_complete(&copy.path("examples/monorepo/out"));

    // Back onto the original, from another directory and spelled from there: a rebase onto
    // the run image the images were built on gives the built images back, byte for byte.
    std::fs::remove_dir_all(&layout).unwrap();
    std::fs::create_dir_all(&layout).unwrap();
    copy_tree(&original, &layout);
    let cwd = copy.path("examples/run-image");
    let report = rebase_all(&cwd, "oci:layout:busybox", "oci:../monorepo/out");
    assert_eq!(report["summary"]["rebased"], 10, "{:#}", report["summary"]);
    assert_eq!(tags(&copy.path("examples/monorepo/out")), built);

    // On another run image, the last line says what they are on, named from where it runs.
    let elsewhere = format!("oci:{}:busybox", patched.display());
    for (cwd, on) in [
        (root.clone(), "oci:examples/run-image/layout:busybox"),
        (
            copy.path("examples/monorepo"),
            "oci:../run-image/layout:busybox",
        ),
    ] {
        let layout = if cwd == root {
            "oci:examples/monorepo/out"
        } else {
            "oci:out"
        };
        let out = strata(
            &cwd,
            &["rebase", "--run-image", &elsewhere, "--all", layout],
        );
        assert_exit(&out, 0);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!(
                "10 other images in the layout not on {elsewhere} (10 on {on})"
            )),
            "{text}"
        );
    }
    assert_eq!(tags(&copy.path("examples/monorepo/out")), built);
}

#[test]
fn a_relative_run_image_is_recorded_from_the_output_layout_wherever_the_build_runs() {
    let (a, _) = run_images();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let layout = repo.join("stack/run");
    std::fs::create_dir_all(&layout).unwrap();
    copy_tree(a, &layout);
    std::fs::create_dir_all(repo.join("deep/down")).unwrap();
    let build = build_hello_on;
    let from_root = build(&repo, "oci:stack/run:busybox", "oci:apps/out:hello");
    let from_below = build(
        &repo.join("deep/down"),
        "oci:../../stack/run:busybox",
        "oci:../../apps/out:hello",
    );
    assert_eq!(
        from_root, from_below,
        "the same image, wherever it was built from"
    );
    let meta: Value = serde_json::from_str(
        config(&repo.join("apps/out"), "hello")["config"]["Labels"]
            ["io.buildpacks.lifecycle.metadata"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(meta["runImage"]["image"], "oci:../stack/run:busybox");
    // `--check` rebuilds elsewhere and records the name as the output does.
    let app = examples().join("apps/hello");
    let builder = examples().join("builder.toml");
    let check = strata(
        &repo,
        &[
            "build",
            app.to_str().unwrap(),
            "--builder",
            builder.to_str().unwrap(),
            "--run-image",
            "oci:stack/run:busybox",
            "--output",
            "oci:apps/out:hello",
            "--check",
        ],
    );
    assert_exit(&check, 0);
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("identical"),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    // Rebased from anywhere by any spelling of the same layout: up to date.
    let report = rebase_all(
        &repo.join("deep"),
        "oci:../stack/run:busybox",
        "oci:../apps/out",
    );
    assert_eq!(
        report["summary"]["up_to_date"], 1,
        "{:#}",
        report["summary"]
    );
}
