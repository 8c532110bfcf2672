//! A buildpack layer of 1 GiB is exported with bounded memory: the tar stream is hashed,
//! compressed and written as it is produced, so the peak RSS of `strata build` (as the kernel
//! accounts it, read by GNU time) stays far below the size of the layer.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The size of the one file in the layer.
const LAYER_FILE_BYTES: u64 = 1 << 30;

/// Peak RSS allowed for the whole build, in KiB (GNU time's `%M` unit): 200 MB, a fifth of
/// the layer.
const MAX_RSS_KIB: u64 = 200 * 1000 * 1000 / 1024;

/// A declared buildpack `t/big` whose launch layer `big` holds one file of
/// [`LAYER_FILE_BYTES`] zeros.
fn buildpack(root: &Path) -> PathBuf {
    one_layer_buildpack(
        &root.join("bp"),
        "t/big",
        "big",
        &[],
        &format!("head -c {LAYER_FILE_BYTES} /dev/zero > \"$1/big\""),
    )
}

/// What the export of the big layer left in the layout.
struct Exported {
    /// Peak RSS of the `strata build` process, KiB.
    max_rss_kib: u64,
    /// The layer's descriptor in the manifest.
    layer: serde_json::Value,
    /// Its diffID in the image config.
    diff_id: String,
    /// The blob file.
    blob: PathBuf,
}

/// Builds a one-file app with [`buildpack`] under GNU time into `oci:<root>/out:big`.
fn build_big(root: &Path, compression: &str) -> Exported {
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.txt"), "x").unwrap();
    let bp = buildpack(root);
    let layout = root.join("out");
    let output = format!("oci:{}:big", layout.display());
    let rss_file = root.join("rss");
    let result = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(env!("CARGO_BIN_EXE_strata"))
        .args(["build", app.to_str().unwrap(), "--buildpack"])
        .arg(&bp)
        .args([
            "--output",
            &output,
            "--compression",
            compression,
            "--cache-dir",
        ])
        .arg(root.join("cache"))
        .current_dir(root)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap_or_else(|e| panic!("cannot run /usr/bin/time ({e}); apt-get install time"));
    assert_exit(&result, 0);
    let max_rss_kib: u64 = std::fs::read_to_string(&rss_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let image = format!("oci:{}:big", layout.display());
    let manifest: serde_json::Value =
        serde_json::from_str(&tool("skopeo", &["inspect", "--raw", &image])).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&tool("skopeo", &["inspect", "--config", "--raw", &image])).unwrap();
    let lifecycle: serde_json::Value = serde_json::from_str(
        config["config"]["Labels"]["io.buildpacks.lifecycle.metadata"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let diff_id = lifecycle["buildpacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|bp| bp["key"] == "t/big")
        .unwrap()["layers"]["big"]["sha"]
        .as_str()
        .unwrap()
        .to_owned();
    let index = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .position(|d| d.as_str() == Some(diff_id.as_str()))
        .unwrap();
    let layer = manifest["layers"][index].clone();
    let hex = layer["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let blob = layout.join("blobs/sha256").join(hex);
    Exported {
        max_rss_kib,
        layer,
        diff_id,
        blob,
    }
}

/// `sh -c script` with `blob` as `$1`; its stdout, trimmed.
fn shell(script: &str, blob: &Path) -> String {
    let out = Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(blob)
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn assert_rss_bounded(exported: &Exported) {
    assert!(
        exported.max_rss_kib < MAX_RSS_KIB,
        "peak RSS {} KiB, over {MAX_RSS_KIB} KiB for a {LAYER_FILE_BYTES}-byte layer",
        exported.max_rss_kib
    );
}

#[test]
fn a_1gib_uncompressed_layer_is_exported_with_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let exported = build_big(tmp.path(), "none");
    eprintln!("--compression none: peak RSS {} KiB", exported.max_rss_kib);
    assert_rss_bounded(&exported);

    assert_eq!(
        exported.layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    let size = exported.layer["size"].as_u64().unwrap();
    assert!(size > LAYER_FILE_BYTES, "layer size {size}");
    assert_eq!(std::fs::metadata(&exported.blob).unwrap().len(), size);
    assert_eq!(exported.layer["digest"].as_str().unwrap(), exported.diff_id);
    let sum = shell("sha256sum < \"$1\" | cut -d' ' -f1", &exported.blob);
    assert_eq!(format!("sha256:{sum}"), exported.diff_id);
    let listing = shell("tar -tvf \"$1\" | grep '/big$'", &exported.blob);
    assert!(listing.contains(&LAYER_FILE_BYTES.to_string()), "{listing}");
}

#[test]
fn a_1gib_gzip_layer_is_exported_with_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let exported = build_big(tmp.path(), "gzip");
    eprintln!("--compression gzip: peak RSS {} KiB", exported.max_rss_kib);
    assert_rss_bounded(&exported);

    assert_eq!(
        exported.layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let size = exported.layer["size"].as_u64().unwrap();
    assert_eq!(std::fs::metadata(&exported.blob).unwrap().len(), size);
    assert!(size < LAYER_FILE_BYTES / 100, "zeros compress: {size}");
    let listing = shell(
        "gzip -dc < \"$1\" | tar -tvf - | grep '/big$'",
        &exported.blob,
    );
    assert!(listing.contains(&LAYER_FILE_BYTES.to_string()), "{listing}");
    let sum = shell(
        "gzip -dc < \"$1\" | sha256sum | cut -d' ' -f1",
        &exported.blob,
    );
    assert_eq!(format!("sha256:{sum}"), exported.diff_id);
}
