//! SBOMs end to end: every layer of an example image has one (the buildpack's, kept, or
//! strata's `CycloneDX` and SPDX), the run image's lists its dpkg packages; all of them, and the
//! merged documents, pass the formats' own validators from `PyPI` (`cyclonedx-python-lib`,
//! `pyspdxtools`); two builds give the same bytes; `strata sbom download` writes pack's tree
//! from a layout, a docker archive and a registry (fetching only the SBOM layers' blobs); a
//! rebase onto a run image with other packages lists them and equals a rebuild; a buildpack
//! SBOM that is not of its format fails the build.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use common::registry::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::runimage::RunImageCopy;
use common::*;
use support::Registry;

const STATUS: &str = "\
Package: base-files
Essential: yes
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files

Package: zlib1g
Status: install ok installed
Architecture: amd64
Source: zlib
Version: 1:1.2.13.dfsg-1

Package: removed
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
";

const DEP5: &str = "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: Debian
License: GPL-2+
 This program is free software.
";

/// [`STATUS`] after an upgrade of zlib1g and the install of tzdata.
const UPGRADED_STATUS: &str = "\
Package: base-files
Essential: yes
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1

Package: zlib1g
Status: install ok installed
Architecture: amd64
Source: zlib
Version: 1:1.2.13.dfsg-1+deb12u1
";

/// The example run image with a dpkg database in one more layer, and a second layer that
/// deletes zlib1g's copyright file (a whiteout the SBOM must respect).
fn debianish_run_image(root: &Path) -> String {
    dpkg_run_image(root, "debianish", STATUS).reference()
}

/// The example run image at `root/name` with the dpkg status `status` (and copyright files)
/// in one more layer, and a second layer that deletes zlib1g's copyright file.
fn dpkg_run_image(root: &Path, name: &str, status: &str) -> RunImageCopy {
    RunImageCopy::new(root, name)
        .layer("dpkg", |rootfs| {
            let dpkg = rootfs.join("var/lib/dpkg");
            std::fs::create_dir_all(&dpkg).unwrap();
            std::fs::write(dpkg.join("status"), status).unwrap();
            for package in ["base-files", "zlib1g"] {
                let doc = rootfs.join("usr/share/doc").join(package);
                std::fs::create_dir_all(&doc).unwrap();
                std::fs::write(doc.join("copyright"), DEP5).unwrap();
            }
        })
        .layer("remove zlib1g's copyright", |rootfs| {
            std::fs::remove_file(rootfs.join("usr/share/doc/zlib1g/copyright")).unwrap();
        })
}

/// Builds the example app on `run_image` into `oci:<out>:hello` with its own store.
fn build(cwd: &Path, run_image: &str, out: &Path, cache: &Path, extra: &[&str]) -> String {
    let output = format!("oci:{}:hello", out.display());
    let builder = examples().join("builder.toml");
    let app = examples().join("apps/hello");
    let mut args = vec![
        "build",
        app.to_str().unwrap(),
        "--builder",
        builder.to_str().unwrap(),
        "--run-image",
        run_image,
        "--output",
        &output,
        "--cache-dir",
        cache.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let result = strata(cwd, &args);
    assert_exit(&result, 0);
    let report: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    report["digest"].as_str().unwrap().to_owned()
}

/// Every file below `dir`, relative to it, sorted.
fn files_below(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = snapshot_tree(dir)
        .into_iter()
        .filter(|(path, _)| Path::new(path).is_file())
        .map(|(path, _)| {
            Path::new(&path)
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    out.sort();
    out
}

/// Checks each `CycloneDX` file with cyclonedx-python-lib and each SPDX file with pyspdxtools.
fn validate(files: &[PathBuf]) {
    let cdx: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.to_string_lossy().ends_with(".cdx.json"))
        .collect();
    let script = repo().join("cli/tests/fixtures/sbom/validate_cdx.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(&cdx)
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 with cyclonedx-python-lib[json-validation] (see .ci/run): {e}")
        });
    assert!(
        out.status.success(),
        "CycloneDX validation failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    for spdx in files
        .iter()
        .filter(|f| f.to_string_lossy().ends_with(".spdx.json"))
    {
        let out = Command::new("pyspdxtools")
            .arg("-i")
            .arg(spdx)
            .output()
            .unwrap_or_else(|e| panic!("pyspdxtools (pip install spdx-tools, see .ci/run): {e}"));
        assert!(
            out.status.success(),
            "pyspdxtools -i {}: {}{}",
            spdx.display(),
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
    }
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn download(cwd: &Path, image: &str, dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "sbom",
        "download",
        image,
        "--output-dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = strata(cwd, &args);
    assert_exit(&out, 0);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The tree `sbom download` writes for the example app: the buildpack's own SBOM of
/// `greeter`, strata's of the other layers, the app, the launcher and the run image.
const TREE: [&str; 11] = [
    "layers/sbom/launch/buildpacksio_lifecycle/app/sbom.cdx.json",
    "layers/sbom/launch/buildpacksio_lifecycle/app/sbom.spdx.json",
    "layers/sbom/launch/buildpacksio_lifecycle/launcher/sbom.cdx.json",
    "layers/sbom/launch/buildpacksio_lifecycle/launcher/sbom.spdx.json",
    "layers/sbom/launch/buildpacksio_lifecycle/run-image/sbom.cdx.json",
    "layers/sbom/launch/buildpacksio_lifecycle/run-image/sbom.spdx.json",
    "layers/sbom/launch/examples_motd/motd/sbom.cdx.json",
    "layers/sbom/launch/examples_motd/motd/sbom.spdx.json",
    "layers/sbom/launch/examples_runtime/greeter/sbom.cdx.json",
    "layers/sbom/launch/examples_runtime/phrases/sbom.cdx.json",
    "layers/sbom/launch/examples_runtime/phrases/sbom.spdx.json",
];

#[test]
fn every_layer_has_a_valid_reproducible_sbom_and_the_run_image_lists_its_packages() {
    let tmp = tempfile::tempdir().unwrap();
    let run_image = debianish_run_image(tmp.path());
    let out = tmp.path().join("out");
    let digest = build(tmp.path(), &run_image, &out, &tmp.path().join("cache"), &[]);
    let image = format!("oci:{}:hello", out.display());

    let dir = tmp.path().join("sboms");
    download(tmp.path(), &image, &dir, &[]);
    assert_eq!(files_below(&dir), TREE);
    let merged_dir = tmp.path().join("merged");
    download(tmp.path(), &image, &merged_dir, &["--merged", "cyclonedx"]);
    download(tmp.path(), &image, &merged_dir, &["--merged", "spdx"]);
    let mut all: Vec<PathBuf> = TREE.iter().map(|f| dir.join(f)).collect();
    all.push(merged_dir.join("sbom.cdx.json"));
    all.push(merged_dir.join("sbom.spdx.json"));
    validate(&all);

    // The buildpack's own SBOM is kept as it wrote it.
    let greeter = std::fs::read_to_string(
        dir.join("layers/sbom/launch/examples_runtime/greeter/sbom.cdx.json"),
    )
    .unwrap();
    assert!(
        greeter.starts_with("{\"bomFormat\":\"CycloneDX\",\"specVersion\":\"1.4\""),
        "{greeter}"
    );
    // A generated one lists the layer's files with their SHA-256.
    let phrases = read_json(&dir.join("layers/sbom/launch/examples_runtime/phrases/sbom.cdx.json"));
    let names: Vec<&str> = phrases["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("/layers/examples_runtime/phrases/"))
            && !names.is_empty(),
        "{names:?}"
    );
    let hashes = phrases["components"][0]["hashes"].as_array().unwrap();
    assert!(hashes.iter().any(|h| h["alg"] == "SHA-256"), "{hashes:?}");

    run_image_sbom_lists_the_packages(&dir);
    merged_holds_packages_and_files(&merged_dir);
    inspect_lists_the_formats(tmp.path(), &image);

    // A second build with a fresh store: the same image, the same SBOM bytes.
    let again = tmp.path().join("again");
    let second = build(
        tmp.path(),
        &run_image,
        &again,
        &tmp.path().join("cache2"),
        &[],
    );
    assert_eq!(second, digest);
    let dir2 = tmp.path().join("sboms2");
    download(
        tmp.path(),
        &format!("oci:{}:hello", again.display()),
        &dir2,
        &[],
    );
    for file in TREE {
        assert_eq!(
            std::fs::read(dir.join(file)).unwrap(),
            std::fs::read(dir2.join(file)).unwrap(),
            "{file}"
        );
    }
}

/// The run image: its installed packages, with versions and purls; licenses from the
/// machine-readable copyright file, none where an upper layer deleted it.
fn run_image_sbom_lists_the_packages(dir: &Path) {
    let run =
        read_json(&dir.join("layers/sbom/launch/buildpacksio_lifecycle/run-image/sbom.cdx.json"));
    let packages: Vec<(String, String, String, usize)> = run["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["version"].as_str().unwrap().to_owned(),
                c["purl"].as_str().unwrap().to_owned(),
                c["licenses"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    assert_eq!(
        packages,
        [
            (
                "base-files".to_owned(),
                "12.4+deb12u5".to_owned(),
                "pkg:deb/debian/base-files@12.4+deb12u5?arch=amd64".to_owned(),
                1
            ),
            (
                "zlib1g".to_owned(),
                "1:1.2.13.dfsg-1".to_owned(),
                "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64".to_owned(),
                0
            ),
        ]
    );
    assert_eq!(
        run["components"][0]["licenses"][0]["license"]["name"],
        "GPL-2+"
    );
    let run_spdx =
        read_json(&dir.join("layers/sbom/launch/buildpacksio_lifecycle/run-image/sbom.spdx.json"));
    assert_eq!(run_spdx["packages"][1]["name"], "base-files");
    assert_eq!(run_spdx["packages"][1]["versionInfo"], "12.4+deb12u5");
}

/// The merged document holds the run image's packages and the app's files.
fn merged_holds_packages_and_files(merged_dir: &Path) {
    let merged = read_json(&merged_dir.join("sbom.cdx.json"));
    let merged_names: Vec<&str> = merged["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for name in [
        "base-files",
        "greeter",
        "/workspace/Procfile",
        "/cnb/lifecycle/launcher",
    ] {
        assert!(
            merged_names.contains(&name),
            "{name} not in {merged_names:?}"
        );
    }
}

/// `inspect` lists the formats of each directory.
fn inspect_lists_the_formats(cwd: &Path, image: &str) {
    let inspect = strata(cwd, &["inspect", image, "--json"]);
    assert_exit(&inspect, 0);
    let report: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let documents = report["sbom_documents"].as_array().unwrap();
    let greeter_entry = documents
        .iter()
        .find(|d| d["path"] == "layers/sbom/launch/examples_runtime/greeter")
        .unwrap();
    assert_eq!(greeter_entry["formats"], serde_json::json!(["cdx"]));
    assert_eq!(greeter_entry["generated"], false);
    assert_eq!(
        greeter_entry["describes"],
        "Layer: 'greeter', Created by buildpack: examples/runtime@0.1.0"
    );
    assert_eq!(documents.len(), 6, "{documents:?}");
    let human = strata(cwd, &["inspect", image]);
    assert_exit(&human, 0);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains(
            "cdx, spdx (strata)  run image  /layers/sbom/launch/buildpacksio_lifecycle/run-image"
        ),
        "{text}"
    );
}

#[test]
fn sbom_download_reads_a_docker_archive_and_only_the_sbom_blob_of_a_registry_image() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let host = registry.host();
    let target = format!("docker://{host}/app:v1");
    let pushed = strata(
        tmp.path(),
        &[
            "build",
            examples().join("apps/hello").to_str().unwrap(),
            "--builder",
            examples().join("builder.toml").to_str().unwrap(),
            "--run-image",
            &run_image(),
            "--output",
            &target,
            "--insecure-registry",
            &host,
        ],
    );
    assert_exit(&pushed, 0);
    let blob_gets = registry.count("GET", "/blobs/");
    let from_registry = tmp.path().join("registry");
    download(
        tmp.path(),
        &target,
        &from_registry,
        &["--insecure-registry", &host],
    );
    assert_eq!(
        registry.count("GET", "/blobs/") - blob_gets,
        3,
        "the config, the SBOM layer and the run image's SBOM layer only: {:?}",
        registry.requests()
    );

    let archive = tmp.path().join("app.tar");
    let saved = strata(
        tmp.path(),
        &[
            "build",
            examples().join("apps/hello").to_str().unwrap(),
            "--builder",
            examples().join("builder.toml").to_str().unwrap(),
            "--run-image",
            &run_image(),
            "--output",
            &format!("docker-archive:{}:example/app:v1", archive.display()),
        ],
    );
    assert_exit(&saved, 0);
    let from_archive = tmp.path().join("archive");
    download(
        tmp.path(),
        &format!("docker-archive:{}", archive.display()),
        &from_archive,
        &[],
    );
    assert_eq!(files_below(&from_registry), TREE);
    assert_eq!(
        snapshot_tree(&from_registry).len(),
        snapshot_tree(&from_archive).len()
    );
    for file in TREE {
        assert_eq!(
            std::fs::read(from_registry.join(file)).unwrap(),
            std::fs::read(from_archive.join(file)).unwrap(),
            "{file}"
        );
    }
    // The busybox run image has no dpkg database: an SBOM without packages.
    let run = read_json(
        &from_archive.join("layers/sbom/launch/buildpacksio_lifecycle/run-image/sbom.cdx.json"),
    );
    assert_eq!(run["components"], serde_json::json!([]));
}

#[test]
fn a_buildpack_sbom_that_is_not_of_its_format_fails_the_build_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let bp = tmp.path().join("bp");
    one_layer_buildpack(
        &bp,
        "test/liar",
        "tool",
        &[],
        "echo hi > \"$1/tool.txt\"\necho '{\"spdxVersion\":\"SPDX-2.3\",\"SPDXID\":\"SPDXRef-DOCUMENT\"}' > \"$STRATA_SBOM_DIR/sbom.cdx.json\"",
    );
    let toml = bp.join("buildpack.toml");
    let text = std::fs::read_to_string(&toml).unwrap().replace(
        "version = \"1\"\n",
        "version = \"1\"\nsbom-formats = [\"application/vnd.cyclonedx+json\"]\n",
    );
    std::fs::write(&toml, text).unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("index.txt"), "hi").unwrap();
    let out = strata(
        tmp.path(),
        &[
            "build",
            app.to_str().unwrap(),
            "--buildpack",
            bp.to_str().unwrap(),
            "--run-image",
            &run_image(),
            "--output",
            &format!("oci:{}:app", tmp.path().join("out").display()),
        ],
    );
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("test/liar")
            && err.contains("tool")
            && err.contains("sbom.cdx.json")
            && err.contains("bomFormat"),
        "{err}"
    );
}

/// Replaces the SBOM layer of the image `tag` in `layout` with the uncompressed tar `layer`
/// (manifest, config's diffIDs and label, index), as an attacker who controls an image would.
fn replace_sbom_layer(layout: &Path, tag: &str, layer: &[u8]) {
    use common::builderimage::sha256;
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let put = |bytes: &[u8]| {
        let digest = sha256(bytes);
        std::fs::write(blob(&digest), bytes).unwrap();
        digest
    };
    let mut index: serde_json::Value = read_json(&layout.join("index.json"));
    let entry = index["manifests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let mut manifest = read_json(&blob(entry["digest"].as_str().unwrap()));
    let mut config = read_json(&blob(manifest["config"]["digest"].as_str().unwrap()));
    let labels = &mut config["config"]["Labels"];
    let mut lifecycle: serde_json::Value =
        serde_json::from_str(labels["io.buildpacks.lifecycle.metadata"].as_str().unwrap()).unwrap();
    let old = lifecycle["sbom"]["sha"].as_str().unwrap().to_owned();
    let digest = put(layer);
    lifecycle["sbom"]["sha"] = serde_json::json!(digest);
    labels["io.buildpacks.lifecycle.metadata"] = serde_json::json!(lifecycle.to_string());
    let diff_ids = config["rootfs"]["diff_ids"].as_array_mut().unwrap();
    let at = diff_ids.iter().position(|d| *d == old.as_str()).unwrap();
    diff_ids[at] = serde_json::json!(digest);
    manifest["layers"][at] = serde_json::json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": digest,
        "size": layer.len(),
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    manifest["config"]["digest"] = serde_json::json!(put(&config_bytes));
    manifest["config"]["size"] = serde_json::json!(config_bytes.len());
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    entry["digest"] = serde_json::json!(put(&manifest_bytes));
    entry["size"] = serde_json::json!(manifest_bytes.len());
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_hostile_sbom_layer_is_refused_before_anything_is_written() {
    use common::builderimage::{SYMLINK, Tar};
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    build(
        tmp.path(),
        &run_image(),
        &out,
        &tmp.path().join("cache"),
        &[],
    );
    let mut tar = Tar::default();
    tar.dir("layers/")
        .dir("layers/sbom/")
        .file("layers/sbom/launch/a/sbom.cdx.json", b"{}")
        .entry("layers/sbom/launch/evil", SYMLINK, 0o777, "/etc", b"")
        .file("layers/sbom/launch/evil/passwd", b"owned");
    replace_sbom_layer(&out, "hello", &tar.finish());
    let dir = tmp.path().join("sboms");
    let image = format!("oci:{}:hello", out.display());
    let refused = strata(
        tmp.path(),
        &["sbom", "download", &image, "-o", dir.to_str().unwrap()],
    );
    assert_exit(&refused, 2);
    // The message as one line (miette wraps it).
    let err: String = stderr(&refused)
        .lines()
        .map(|l| l.trim_start_matches([' ', '×', '│']))
        .collect();
    assert!(
        err.contains("layers/sbom/launch/evil") && err.contains("is refused: it is a symlink"),
        "{err}"
    );
    assert!(!dir.exists(), "nothing is written");
}

/// The packages (name and version) of the run image SBOM that `sbom download` writes of
/// `image`.
fn run_image_packages(cwd: &Path, image: &str, dir: &Path) -> Vec<(String, String)> {
    download(cwd, image, dir, &[]);
    let run =
        read_json(&dir.join("layers/sbom/launch/buildpacksio_lifecycle/run-image/sbom.cdx.json"));
    run["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A rebase onto a run image with another dpkg status: the rebased image's run image SBOM
/// lists the new packages, the rest of its SBOMs stay, and it equals a rebuild on the new run
/// image byte for byte. The run image is named `oci:base:busybox`, `base` a symlink that
/// moves from the old run image to the new one.
#[test]
fn a_rebase_onto_other_packages_lists_them_and_equals_a_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let old = dpkg_run_image(cwd, "old-run", STATUS);
    let new = dpkg_run_image(cwd, "new-run", UPGRADED_STATUS);
    let point_base = |layout: &Path| {
        let link = cwd.join("base");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(layout, link).unwrap();
    };
    point_base(old.dir());
    let out = cwd.join("out");
    let before = build(cwd, "oci:base:busybox", &out, &cwd.join("cache"), &[]);
    let image = format!("oci:{}:hello", out.display());
    let old_packages = run_image_packages(cwd, &image, &cwd.join("before"));
    assert_eq!(
        old_packages,
        [
            ("base-files".to_owned(), "12.4+deb12u5".to_owned()),
            ("zlib1g".to_owned(), "1:1.2.13.dfsg-1".to_owned()),
        ]
    );

    point_base(new.dir());
    let rebase = strata(
        cwd,
        &[
            "rebase",
            "--run-image",
            "oci:base:busybox",
            &image,
            "--cache-dir",
            cwd.join("cache").to_str().unwrap(),
            "--json",
        ],
    );
    assert_exit(&rebase, 0);
    let report: serde_json::Value = serde_json::from_slice(&rebase.stdout).unwrap();
    let row = &report["images"][0];
    assert_eq!(row["status"], "rebased", "{report:#}");
    assert_eq!(row["old_digest"], before);
    assert_eq!(
        run_image_packages(cwd, &image, &cwd.join("after")),
        [
            ("base-files".to_owned(), "12.4+deb12u5".to_owned()),
            ("tzdata".to_owned(), "2024a-0+deb12u1".to_owned()),
            ("zlib1g".to_owned(), "1:1.2.13.dfsg-1+deb12u1".to_owned()),
        ]
    );
    // The app's SBOMs are as they were.
    let app = "layers/sbom/launch/buildpacksio_lifecycle/app/sbom.cdx.json";
    assert_eq!(
        std::fs::read(cwd.join("before").join(app)).unwrap(),
        std::fs::read(cwd.join("after").join(app)).unwrap()
    );

    let rebuilt = build(
        cwd,
        "oci:base:busybox",
        &cwd.join("rebuilt"),
        &cwd.join("cache2"),
        &[],
    );
    assert_eq!(
        row["new_digest"], rebuilt,
        "the rebased image equals a rebuild on the new run image"
    );
}

/// The same in a registry: the image is pushed, rebased in place onto a run image with other
/// packages, and its run image SBOM, downloaded from the registry, lists them; it equals a
/// rebuild pushed beside it.
#[test]
fn a_registry_rebase_onto_other_packages_lists_them_and_equals_a_rebuild() {
    let registry = Registry::start();
    let host = registry.host();
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let old = dpkg_run_image(cwd, "old-run", STATUS);
    let new = dpkg_run_image(cwd, "new-run", UPGRADED_STATUS);
    let point_base = |layout: &Path| {
        let link = cwd.join("base");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(layout, link).unwrap();
    };
    let push = |tag: &str, cache: &str| -> String {
        let out = common::registry::build(
            cwd,
            &examples().join("apps/hello"),
            "oci:base:busybox",
            &format!("docker://{host}/app:{tag}"),
            &[
                "--insecure-registry",
                &host,
                "--cache-dir",
                cwd.join(cache).to_str().unwrap(),
            ],
        );
        common::registry::json(&out)["digest"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    point_base(old.dir());
    push("v1", "cache");
    point_base(new.dir());
    let image = format!("docker://{host}/app:v1");
    let rebase = strata(
        cwd,
        &[
            "rebase",
            "--run-image",
            "oci:base:busybox",
            &image,
            "--insecure-registry",
            &host,
            "--cache-dir",
            cwd.join("cache").to_str().unwrap(),
            "--json",
        ],
    );
    assert_exit(&rebase, 0);
    let report: serde_json::Value = serde_json::from_slice(&rebase.stdout).unwrap();
    assert_eq!(report["images"][0]["status"], "rebased", "{report:#}");
    let dir = cwd.join("after");
    download(cwd, &image, &dir, &["--insecure-registry", &host]);
    let run =
        read_json(&dir.join("layers/sbom/launch/buildpacksio_lifecycle/run-image/sbom.cdx.json"));
    let names: Vec<&str> = run["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["base-files", "tzdata", "zlib1g"]);
    let rebuilt = push("rebuilt", "cache2");
    assert_eq!(
        report["images"][0]["new_digest"], rebuilt,
        "the rebased image equals a rebuild on the new run image"
    );
}
