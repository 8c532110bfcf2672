//! What strata reads in layouts it did not write: a run image layer that is not what its
//! config says, a blob that is a symlink, a FIFO where `index.json` should be. Each is
//! refused with a message naming the file, never followed, never waited on.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Writes `bytes` as a blob of `layout`; returns its digest.
fn put_blob(layout: &Path, bytes: &[u8]) -> String {
    let hex = sha256(bytes);
    std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    format!("sha256:{hex}")
}

/// A copy of the example run image at `dir` whose first layer is replaced by `edit` of its
/// bytes (a blob that matches its new descriptor); returns the new layer's digest.
fn run_image_with_layer(dir: &Path, edit: impl Fn(&[u8]) -> Vec<u8>) -> String {
    copy_tree(&run_image_dir(), dir);
    let index_path = dir.join("index.json");
    let mut index = read_json(&index_path);
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let blob = |d: &str| {
        dir.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let mut manifest = read_json(&blob(&manifest_digest));
    let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let bytes = edit(&std::fs::read(blob(&layer_digest)).unwrap());
    let new_layer = put_blob(dir, &bytes);
    manifest["layers"][0]["digest"] = new_layer.clone().into();
    manifest["layers"][0]["size"] = bytes.len().into();
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    index["manifests"][0]["digest"] = put_blob(dir, &manifest_bytes).into();
    index["manifests"][0]["size"] = manifest_bytes.len().into();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    new_layer
}

fn build(cwd: &Path, run_image: &str, out: &Path) -> Output {
    let app = examples().join("apps/hello");
    let builder = examples().join("builder.toml");
    strata(
        cwd,
        &[
            "build",
            app.to_str().unwrap(),
            "--builder",
            builder.to_str().unwrap(),
            "--run-image",
            run_image,
            "--cache-dir",
            cwd.join("cache").to_str().unwrap(),
            "--output",
            &format!("oci:{}:hello", out.display()),
        ],
    )
}

#[test]
fn a_truncated_gzip_run_image_layer_is_refused_naming_the_image_and_the_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let layer = run_image_with_layer(&base, |bytes| bytes[..bytes.len() / 2].to_vec());
    let reference = format!("oci:{}:busybox", base.display());
    let out = tmp.path().join("out");
    let result = build(tmp.path(), &reference, &out);
    assert_exit(&result, 2);
    let message = stderr(&result);
    assert!(
        message.contains(&reference) && message.contains(&layer) && message.contains("decompress"),
        "{message}"
    );
    assert!(!out.exists(), "nothing is written");
}

#[test]
fn a_run_image_layer_that_is_not_its_diff_id_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    // A valid gzip stream of another tar: it matches its descriptor, not the config.
    let layer = run_image_with_layer(&base, |_| {
        Command::new("sh")
            .args(["-c", "head -c 1024 /dev/zero | gzip -c"])
            .output()
            .unwrap()
            .stdout
    });
    let reference = format!("oci:{}:busybox", base.display());
    let result = build(tmp.path(), &reference, &tmp.path().join("out"));
    assert_exit(&result, 2);
    let message = stderr(&result);
    assert!(
        message.contains(&layer) && message.contains("diff_ids"),
        "{message}"
    );
}

#[test]
fn a_run_image_blob_that_is_a_symlink_is_refused_not_linked() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    copy_tree(&run_image_dir(), &base);
    let index = read_json(&base.join("index.json"));
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let blobs = base.join("blobs/sha256");
    let manifest = read_json(&blobs.join(manifest_digest.trim_start_matches("sha256:")));
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let path = blobs.join(layer.trim_start_matches("sha256:"));
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::rename(&path, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    let out = tmp.path().join("out");
    let result = build(tmp.path(), &format!("oci:{}:busybox", base.display()), &out);
    assert_ne!(result.status.code(), Some(0), "{}", stderr(&result));
    let message = stderr(&result);
    assert!(
        message.contains(layer.trim_start_matches("sha256:")) && message.contains("symbolic"),
        "{message}"
    );
    assert!(!out.exists(), "nothing is written");
}

/// `strata` with `args`, killed if it has not exited after a minute (a regression that waits
/// on a FIFO fails instead of hanging the suite).
fn strata_bounded(cwd: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .current_dir(cwd)
        .env_remove("SOURCE_DATE_EPOCH")
        .env("TMPDIR", scratch_tmpdir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_mins(1);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strata {args:?} hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn a_fifo_at_index_json_or_at_a_blob_is_an_error_not_a_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let out = cwd.join("out");
    build_example(cwd, &examples().join("apps/hello"), &out, "hello", &[]);
    let manifest_digest = read_json(&out.join("index.json"))["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let image = format!("oci:{}:hello", out.display());

    // A FIFO as a blob: the manifest inspect reads.
    let manifest: PathBuf = out
        .join("blobs/sha256")
        .join(manifest_digest.trim_start_matches("sha256:"));
    let saved = cwd.join("manifest");
    std::fs::rename(&manifest, &saved).unwrap();
    mkfifo(&manifest);
    let inspect = strata_bounded(cwd, &["inspect", &image]);
    assert_ne!(inspect.status.code(), Some(0));
    assert!(stderr(&inspect).contains("FIFO"), "{}", stderr(&inspect));
    std::fs::remove_file(&manifest).unwrap();
    std::fs::rename(&saved, &manifest).unwrap();

    // A FIFO as index.json: build, inspect and rebase each refuse it.
    let index = out.join("index.json");
    std::fs::remove_file(&index).unwrap();
    mkfifo(&index);
    let app = examples().join("apps/hello");
    let builder = examples().join("builder.toml");
    let run_image = run_image();
    let cache = cwd.join("cache");
    let runs: [Vec<&str>; 3] = [
        vec![
            "build",
            app.to_str().unwrap(),
            "--builder",
            builder.to_str().unwrap(),
            "--run-image",
            &run_image,
            "--cache-dir",
            cache.to_str().unwrap(),
            "--output",
            &image,
        ],
        vec!["inspect", &image],
        vec!["rebase", "--run-image", &run_image, &image],
    ];
    for args in runs {
        let result = strata_bounded(cwd, &args);
        assert_ne!(result.status.code(), Some(0), "{args:?}");
        let text = format!(
            "{}{}",
            stderr(&result),
            String::from_utf8_lossy(&result.stdout)
        );
        assert!(
            text.contains("index.json") && text.contains("FIFO"),
            "{args:?}: {text}"
        );
    }
}
