//! Layouts written by strata, checked by the tools that consume them: skopeo reads the
//! image, umoci unpacks it, oci-image-tool validates the layout. Also the layout's write
//! guarantees: an abandoned staging changes nothing, a new tag keeps the others.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{USER, app_tree, run, snapshot, stage_image, tool};
use oci_spec::image::MediaType;
use strata_exporter::archive::{Compression, DEFAULT_MTIME, LayerBuilder, Owner};
use strata_exporter::layout::{Layout, LayoutError, Staging};

fn skopeo_inspect(layout: &Path, tag: &str) -> serde_json::Value {
    let out = run(tool("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:{tag}", layout.display())));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn skopeo_reads_the_image_and_umoci_unpacks_it_with_owner_and_mtime() {
    for compression in [Compression::Gzip, Compression::None] {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        let long_dir = app_tree(&app);
        let layout_dir = dir.path().join("layout");
        let staging = Staging::new(&layout_dir).unwrap();
        let manifest = stage_image(&staging, &app, compression);
        staging
            .commit(&[("app".to_owned(), manifest.clone())])
            .unwrap();

        let layout = Layout::open(&layout_dir).unwrap();
        let (_, parsed) = layout.resolve("app").unwrap();
        let inspected = skopeo_inspect(&layout_dir, "app");
        let layers: Vec<String> = parsed
            .layers()
            .iter()
            .map(|l| l.digest().to_string())
            .collect();
        assert_eq!(
            inspected["Layers"],
            serde_json::json!(layers),
            "{compression}"
        );
        assert_eq!(inspected["Digest"], manifest.digest().to_string());
        assert_eq!(inspected["Os"], "linux");
        assert_eq!(inspected["Created"], "1980-01-01T00:00:01Z");
        assert!(
            inspected["Env"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("CNB_USER_ID=1000"))
        );

        let bundle = dir.path().join("bundle");
        run(tool("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:app", layout_dir.display()))
            .arg(&bundle));
        let rootfs = bundle.join("rootfs");
        let runtime = rootfs.join("layers/examples_runtime/runtime");
        for path in [
            "layers",
            "layers/examples_runtime",
            "layers/examples_runtime/runtime",
            "layers/examples_runtime/runtime/bin/run",
            "layers/examples_runtime/runtime/data.txt",
            "layers/examples_runtime/runtime/run-link",
            "workspace",
            "home/cnb",
        ] {
            let meta = fs::symlink_metadata(rootfs.join(path)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (USER.uid, USER.gid), "{path}");
            assert_eq!(
                meta.mtime(),
                315_532_801,
                "{path}: mtime 1980-01-01T00:00:01Z"
            );
        }
        for path in ["etc/passwd", "tmp", "root"] {
            let meta = fs::symlink_metadata(rootfs.join(path)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (0, 0), "{path}");
        }
        assert_eq!(
            fs::metadata(rootfs.join("tmp")).unwrap().mode() & 0o7777,
            0o1777
        );
        assert_eq!(
            fs::metadata(runtime.join("bin/run")).unwrap().mode() & 0o7777,
            0o755
        );
        assert_eq!(
            fs::read_to_string(runtime.join("bin/run")).unwrap(),
            "#!/bin/sh\necho run\n"
        );
        assert_eq!(
            fs::read_link(runtime.join("run-link")).unwrap(),
            Path::new("bin/run")
        );
        assert_eq!(
            fs::read_link(runtime.join("long-link")).unwrap(),
            Path::new(&format!("{long_dir}/leaf.txt"))
        );
        assert_eq!(
            fs::read_to_string(runtime.join(&long_dir).join("leaf.txt")).unwrap(),
            "leaf\n"
        );
        let a = fs::metadata(runtime.join("linked-a")).unwrap();
        let b = fs::metadata(runtime.join("linked-b")).unwrap();
        assert_eq!(a.ino(), b.ino(), "the hardlink is unpacked as a hardlink");
        assert_eq!(a.nlink(), 2);
        let passwd = fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
        assert!(passwd.contains("cnb:x:1000:1001:"), "{passwd}");
    }
}

/// oci-image-tool 1.0.0-rc1 (Debian's) reports `--type imageLayout` as unimplemented; its
/// `--type image` autodetects the layout and validates it with the image behind each ref.
#[test]
fn oci_image_tool_validates_the_layout() {
    for compression in [Compression::Gzip, Compression::None] {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        app_tree(&app);
        let layout_dir = dir.path().join("layout");
        let staging = Staging::new(&layout_dir).unwrap();
        let manifest = stage_image(&staging, &app, compression);
        staging.commit(&[("app".to_owned(), manifest)]).unwrap();
        let out = run(tool("oci-image-tool")
            .args(["validate", "--type", "image", "--ref", "name=app"])
            .arg(&layout_dir));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("Validation succeeded"), "{stdout}");
    }
}

/// Everything under `root` but the app the test changes: the layout and anything a staging
/// might leave beside it. A directory's mtime is left out: a temp file made and removed in it
/// moves it (a second later, the test would fail on the clock), and it is not the layout's
/// content; a file's mtime stays in, so a rewritten file is still caught.
fn beside_the_app(root: &Path) -> std::collections::BTreeMap<std::path::PathBuf, String> {
    let mut tree = snapshot(root);
    tree.retain(|path, _| !path.starts_with("app"));
    for what in tree.values_mut() {
        if what.starts_with("dir ")
            && let Some(at) = what.find(" mtime ")
        {
            what.truncate(at);
        }
    }
    tree
}

#[test]
fn dropping_a_staging_leaves_the_layout_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    app_tree(&app);
    let layout_dir = dir.path().join("layout");
    let staging = Staging::new(&layout_dir).unwrap();
    let manifest = stage_image(&staging, &app, Compression::Gzip);
    staging.commit(&[("one".to_owned(), manifest)]).unwrap();
    let before = beside_the_app(dir.path());

    // Abandoned after staging a whole image.
    fs::write(app.join("changed.txt"), "new content").unwrap();
    let staging = Staging::new(&layout_dir).unwrap();
    stage_image(&staging, &app, Compression::Gzip);
    drop(staging);
    assert_eq!(beside_the_app(dir.path()), before);

    // A commit that fails its checks: a manifest whose layer was never staged.
    let staging = Staging::new(&layout_dir).unwrap();
    let mut layer = LayerBuilder::new(Owner::ROOT, DEFAULT_MTIME);
    layer.add_bytes("f", "x", 0o644).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let orphan = layer.finish(Compression::None, elsewhere.path()).unwrap();
    let config = staging
        .put_json(&serde_json::json!({"os": "linux"}), MediaType::ImageConfig)
        .unwrap();
    let manifest = oci_spec::image::ImageManifestBuilder::default()
        .schema_version(2u32)
        .config(config)
        .layers(vec![orphan.descriptor().unwrap()])
        .build()
        .unwrap();
    let manifest = staging
        .put_json(&manifest, MediaType::ImageManifest)
        .unwrap();
    let err = staging.commit(&[("two".to_owned(), manifest)]).unwrap_err();
    assert!(matches!(err, LayoutError::MissingBlob { .. }), "{err}");
    assert!(err.to_string().contains(&orphan.digest), "{err}");
    assert_eq!(beside_the_app(dir.path()), before);
}

#[test]
fn committing_a_second_tag_keeps_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    app_tree(&app);
    let layout_dir = dir.path().join("layout");

    let staging = Staging::new(&layout_dir).unwrap();
    let first = stage_image(&staging, &app, Compression::Gzip);
    staging
        .commit(&[("one".to_owned(), first.clone())])
        .unwrap();
    let blobs_after_first = fs::read_dir(layout_dir.join("blobs/sha256"))
        .unwrap()
        .count();

    fs::write(app.join("v2.txt"), "second version").unwrap();
    let staging = Staging::new(&layout_dir).unwrap();
    let second = stage_image(&staging, &app, Compression::Gzip);
    staging
        .commit(&[("two".to_owned(), second.clone())])
        .unwrap();

    let layout = Layout::open(&layout_dir).unwrap();
    let tags: Vec<_> = layout
        .tags()
        .into_iter()
        .map(|(tag, d)| (tag, d.digest().to_string()))
        .collect();
    assert_eq!(
        tags,
        [
            ("one".to_owned(), first.digest().to_string()),
            ("two".to_owned(), second.digest().to_string())
        ]
    );
    assert_eq!(
        skopeo_inspect(&layout_dir, "one")["Digest"],
        first.digest().to_string()
    );
    assert_eq!(
        skopeo_inspect(&layout_dir, "two")["Digest"],
        second.digest().to_string()
    );
    // The base layer is shared: only the new app layer, config and manifest were added.
    let blobs_after_second = fs::read_dir(layout_dir.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs_after_second, blobs_after_first + 3);

    // Re-tagging "one" replaces that entry only.
    let staging = Staging::new(&layout_dir).unwrap();
    let again = stage_image(&staging, &app, Compression::Gzip);
    assert_eq!(again, second, "same inputs, same manifest digest");
    staging.commit(&[("one".to_owned(), again)]).unwrap();
    let layout = Layout::open(&layout_dir).unwrap();
    let digests: Vec<_> = layout
        .tags()
        .into_iter()
        .map(|(tag, d)| (tag, d.digest().to_string()))
        .collect();
    assert_eq!(
        digests,
        [
            ("one".to_owned(), second.digest().to_string()),
            ("two".to_owned(), second.digest().to_string())
        ]
    );
    assert_eq!(layout.index().manifests().len(), 2);
}

#[test]
fn two_exports_of_the_same_inputs_give_identical_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let mut snapshots = Vec::new();
    for name in ["first", "second"] {
        let app = dir.path().join(name).join("app");
        app_tree(&app);
        let layout_dir = dir.path().join(name).join("layout");
        let staging = Staging::new(&layout_dir).unwrap();
        let manifest = stage_image(&staging, &app, Compression::Gzip);
        staging.commit(&[("app".to_owned(), manifest)]).unwrap();
        let files: Vec<_> = snapshot(&layout_dir)
            .into_iter()
            .map(|(path, what)| (path, what.split(" mtime").next().unwrap().to_owned()))
            .collect();
        snapshots.push(files);
    }
    assert_eq!(snapshots[0], snapshots[1]);
}
