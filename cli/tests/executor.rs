//! The executor through `strata build`: `--keep-going` runs every task that does not need a
//! failed one, names the failure, and exits 1; without it the build stops.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

/// A declared buildpack with layers `bad` (fails), `after-bad` (needs it), `good` and
/// `after-good`, each echoing its name.
fn buildpack(root: &Path) -> PathBuf {
    let dir = root.join("bp");
    std::fs::create_dir_all(dir.join("layers")).unwrap();
    let mut toml = String::from(
        "api = \"0.10\"\n[buildpack]\nid = \"t/layers\"\nversion = \"1\"\n[metadata.strata.detect]\nfiles = [\"*\"]\n",
    );
    for (name, needs, body) in [
        ("bad", "", "echo bad is failing >&2; exit 4"),
        ("after-bad", "bad", "echo ran after-bad"),
        ("good", "", "echo ran good"),
        ("after-good", "good", "echo ran after-good"),
    ] {
        let script = dir.join("layers").join(format!("{name}.sh"));
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let needs = if needs.is_empty() {
            String::new()
        } else {
            format!("needs = [\"{needs}\"]\n")
        };
        let _ = write!(
            toml,
            "[[metadata.strata.layers]]\nname = \"{name}\"\n{needs}run = \"layers/{name}.sh\"\nlaunch = true\n"
        );
    }
    std::fs::write(dir.join("buildpack.toml"), toml).unwrap();
    dir
}

fn build(root: &Path, extra: &[&str]) -> std::process::Output {
    let cache = root.join("cache");
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.txt"), "x").unwrap();
    let bp = buildpack(root);
    let out = format!("oci:{}:app", root.join("out").display());
    let mut args = vec![
        "build",
        app.to_str().unwrap(),
        "--buildpack",
        bp.to_str().unwrap(),
        "--output",
        &out,
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    strata(root, &args)
}

#[test]
fn keep_going_builds_everything_not_downstream_of_a_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let result = build(tmp.path(), &["--keep-going", "--jobs", "1"]);
    assert_exit(&result, 1);
    let err = stderr(&result);
    assert!(err.contains("layer t/layers@1:bad failed"), "{err}");
    assert!(
        err.contains("exited with code 4") && err.contains("bad is failing"),
        "{err}"
    );
    assert!(
        err.contains("ran good") && err.contains("ran after-good"),
        "independent tasks ran: {err}"
    );
    assert!(!err.contains("ran after-bad"), "{err}");
    assert!(err.contains("t/layers:after-bad: skipped"), "{err}");
    assert!(
        !tmp.path().join("out").exists(),
        "a failed build writes no image"
    );
}

#[test]
fn without_keep_going_the_first_failure_stops_new_work() {
    let tmp = tempfile::tempdir().unwrap();
    let result = build(tmp.path(), &["--jobs", "1"]);
    assert_exit(&result, 1);
    let err = stderr(&result);
    assert!(err.contains("layer t/layers@1:bad failed"), "{err}");
    assert!(
        !err.contains("ran after-good"),
        "with one worker, `bad` (first among the longest paths) runs first and nothing starts after it: {err}"
    );
}
