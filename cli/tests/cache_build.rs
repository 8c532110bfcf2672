//! `strata build` with the store: a second build of an unchanged app runs no buildpack task
//! and gives the same image; a change reruns only the tasks that read it and what follows;
//! a corrupt store entry is a miss, rebuilt, never exported.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::path::{Path, PathBuf};

use common::*;

struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        copy_tree(&examples(), &tmp.path().join("examples"));
        Self { tmp }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Builds the example app; returns (digest, tasks by id → status).
    fn build(&self, extra: &[&str]) -> (String, Vec<(String, String)>) {
        let app = self.path("examples/apps/hello");
        let builder = self.path("examples/builder.toml");
        let cache = self.path("cache");
        let out = format!("oci:{}:hello", self.path("out").display());
        let run_image = run_image();
        let mut args = vec![
            "build",
            app.to_str().unwrap(),
            "--builder",
            builder.to_str().unwrap(),
            "--run-image",
            &run_image,
            "--cache-dir",
            cache.to_str().unwrap(),
            "--output",
            &out,
            "--json",
        ];
        args.extend_from_slice(extra);
        let result = strata(self.tmp.path(), &args);
        assert_exit(&result, 0);
        let report: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
        let tasks = report["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["id"].as_str().unwrap().to_owned(),
                    t["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        (report["digest"].as_str().unwrap().to_owned(), tasks)
    }
}

fn ran(tasks: &[(String, String)]) -> Vec<&str> {
    let mut out: Vec<&str> = tasks
        .iter()
        .filter(|(_, s)| s == "ran")
        .map(|(id, _)| id.as_str())
        .collect();
    out.sort_unstable();
    out
}

fn blobs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join("store/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

#[test]
fn a_second_build_runs_no_buildpack_task_and_gives_the_same_image() {
    let fx = Fixture::new();
    let (first, tasks) = fx.build(&[]);
    assert_eq!(ran(&tasks).len(), 7, "{tasks:?}");
    let (second, tasks) = fx.build(&[]);
    assert_eq!(second, first);
    assert_eq!(
        ran(&tasks),
        ["app", "image"],
        "only the export runs again: {tasks:?}"
    );
    let (third, tasks) = fx.build(&["--no-cache"]);
    assert_eq!(third, first);
    assert_eq!(
        ran(&tasks).len(),
        7,
        "--no-cache runs everything: {tasks:?}"
    );
}

#[test]
fn a_changed_lock_file_reruns_only_what_reads_it_and_what_follows() {
    let fx = Fixture::new();
    fx.build(&[]);
    std::fs::write(fx.path("examples/apps/hello/greeter.lock"), "polite 1.1\n").unwrap();
    let (_, tasks) = fx.build(&[]);
    assert_eq!(
        ran(&tasks),
        [
            "app",
            "examples/motd (bin/build)",
            "examples/procfile (bin/build)",
            "examples/runtime:phrases",
            "image"
        ],
        "{tasks:?}"
    );
}

#[test]
fn corrupt_truncated_or_missing_blobs_are_rebuilt_never_exported() {
    let fx = Fixture::new();
    let (first, _) = fx.build(&["--compression", "none"]);
    let cache = fx.path("cache");
    let all = blobs(&cache);
    assert!(all.len() >= 3, "{all:?}");
    // Flip a byte in one, truncate another, delete a third.
    let flip = &all[0];
    let mut bytes = std::fs::read(flip).unwrap();
    bytes[0] ^= 0xff;
    std::fs::set_permissions(flip, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(flip, &bytes).unwrap();
    let cut = &all[1];
    std::fs::set_permissions(cut, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let len = std::fs::metadata(cut).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(cut)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    std::fs::remove_file(&all[2]).unwrap();

    let verify = strata(
        fx.tmp.path(),
        &["cache", "verify", "--cache-dir", cache.to_str().unwrap()],
    );
    assert_exit(&verify, 1);

    std::fs::remove_dir_all(fx.path("out")).unwrap();
    let (again, tasks) = fx.build(&["--compression", "none"]);
    assert_eq!(again, first, "the rebuilt image is the same");
    assert!(
        ran(&tasks).len() > 2,
        "the broken entries were rebuilt: {tasks:?}"
    );
    let verify = strata(
        fx.tmp.path(),
        &["cache", "verify", "--cache-dir", cache.to_str().unwrap()],
    );
    assert_exit(&verify, 0);
}
