//! Bad input: each case gives a clear error naming the file or buildpack, the documented exit
//! code, and leaves the output layout exactly as it was.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

/// A component buildpack in `root/<name>` with the given detect and build scripts.
fn buildpack(root: &Path, name: &str, id: &str, detect: &str, build: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(
        dir.join("buildpack.toml"),
        format!("api = \"0.10\"\n\n[buildpack]\nid = \"{id}\"\nversion = \"1.0.0\"\n"),
    )
    .unwrap();
    for (script, body) in [("detect", detect), ("build", build)] {
        let path = dir.join("bin").join(script);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

struct Case {
    tmp: tempfile::TempDir,
    app: PathBuf,
    out: PathBuf,
}

impl Case {
    /// An app dir and an output layout that already holds an image, to prove it is untouched.
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("main.txt"), "hello").unwrap();
        let out = tmp.path().join("out");
        let ok = buildpack(tmp.path(), "ok", "test/ok", "exit 0", "exit 0");
        let built = strata(
            tmp.path(),
            &[
                "build",
                app.to_str().unwrap(),
                "--buildpack",
                ok.to_str().unwrap(),
                "--output",
                &format!("oci:{}:before", out.display()),
            ],
        );
        assert_exit(&built, 0);
        Self { tmp, app, out }
    }

    fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// Builds with `args` (app and output added) and checks the exit code and that the output
    /// layout did not change; returns stderr.
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let before = snapshot_tree(&self.out);
        let output = format!("oci:{}:after", self.out.display());
        let mut all = vec!["build", self.app.to_str().unwrap(), "--output", &output];
        all.extend_from_slice(args);
        let result = strata(self.root(), &all);
        assert_exit(&result, code);
        assert!(
            before == snapshot_tree(&self.out),
            "the output layout changed"
        );
        stderr(&result)
    }
}

#[test]
fn malformed_buildpack_toml_shows_the_file_and_line() {
    let case = Case::new();
    let bp = buildpack(case.root(), "bad", "test/bad", "exit 0", "exit 0");
    std::fs::write(
        bp.join("buildpack.toml"),
        "api = \"0.10\"\n\n[buildpack]\nid = \"test/bad\"\nversion = 1.0.0\n",
    )
    .unwrap();
    let err = case.fails(2, &["--buildpack", bp.to_str().unwrap()]);
    assert!(err.contains("buildpack.toml"), "{err}");
    assert!(
        err.contains("5 │") || err.contains(":5:"),
        "the offending line is shown: {err}"
    );
}

#[test]
fn an_order_naming_an_unknown_buildpack_is_an_error_at_that_line() {
    let case = Case::new();
    buildpack(case.root(), "ok2", "test/ok2", "exit 0", "exit 0");
    let builder = case.root().join("builder.toml");
    std::fs::write(
        &builder,
        "[[buildpacks]]\nuri = \"ok2\"\n\n[[order]]\n[[order.group]]\nid = \"test/missing\"\n",
    )
    .unwrap();
    let err = case.fails(2, &["--builder", builder.to_str().unwrap()]);
    assert!(err.contains("test/missing"), "{err}");
    assert!(err.contains("builder.toml"), "{err}");
}

#[test]
fn a_detect_error_names_the_buildpack_and_its_output() {
    let case = Case::new();
    let bp = buildpack(
        case.root(),
        "crash",
        "test/crash",
        "echo 'cannot parse Gemfile' >&2; exit 1",
        "exit 0",
    );
    let err = case.fails(1, &["--buildpack", bp.to_str().unwrap()]);
    assert!(err.contains("test/crash@1.0.0"), "{err}");
    assert!(err.contains("exit status 1"), "{err}");
    assert!(err.contains("cannot parse Gemfile"), "{err}");
}

#[test]
fn no_group_passing_lists_each_buildpacks_outcome() {
    let case = Case::new();
    buildpack(case.root(), "a", "test/a", "exit 100", "exit 0");
    buildpack(case.root(), "b", "test/b", "exit 100", "exit 0");
    let builder = case.root().join("builder.toml");
    std::fs::write(
        &builder,
        "[[buildpacks]]\nuri = \"a\"\n[[buildpacks]]\nuri = \"b\"\n\n\
         [[order]]\n[[order.group]]\nid = \"test/a\"\n\n[[order]]\n[[order.group]]\nid = \"test/b\"\n",
    )
    .unwrap();
    let err = case.fails(1, &["--builder", builder.to_str().unwrap()]);
    assert!(err.contains("no buildpack group passed detection"), "{err}");
    assert!(err.contains("test/a@1.0.0: fail"), "{err}");
    assert!(err.contains("test/b@1.0.0: fail"), "{err}");
}

#[test]
fn a_failing_build_shows_exit_code_and_last_lines() {
    let case = Case::new();
    let bp = buildpack(
        case.root(),
        "fails",
        "test/fails",
        "exit 0",
        "echo compiling; echo 'error: out of disk' >&2; exit 3",
    );
    let err = case.fails(1, &["--buildpack", bp.to_str().unwrap()]);
    assert!(err.contains("test/fails@1.0.0"), "{err}");
    assert!(err.contains("exited with code 3"), "{err}");
    assert!(err.contains("error: out of disk"), "{err}");
}

#[test]
fn a_layer_named_launch_is_refused() {
    let case = Case::new();
    let bp = buildpack(
        case.root(),
        "reserved",
        "test/reserved",
        "exit 0",
        "mkdir -p \"$1/launch/bin\" && echo x > \"$1/launch/bin/tool\"",
    );
    let err = case.fails(1, &["--buildpack", bp.to_str().unwrap()]);
    assert!(err.contains("test/reserved"), "{err}");
    assert!(err.contains("launch"), "{err}");
}

#[test]
fn a_missing_run_image_is_bad_input() {
    let case = Case::new();
    let bp = buildpack(case.root(), "ok3", "test/ok3", "exit 0", "exit 0");
    let missing = format!("oci:{}:nope", case.root().join("no-such-layout").display());
    let err = case.fails(
        2,
        &["--buildpack", bp.to_str().unwrap(), "--run-image", &missing],
    );
    assert!(err.contains("no-such-layout"), "{err}");
}

#[test]
fn a_new_layout_is_not_created_when_the_build_fails() {
    let case = Case::new();
    let bp = buildpack(case.root(), "fails2", "test/fails2", "exit 0", "exit 1");
    let fresh = case.root().join("fresh");
    let result = strata(
        case.root(),
        &[
            "build",
            case.app.to_str().unwrap(),
            "--buildpack",
            bp.to_str().unwrap(),
            "--output",
            &format!("oci:{}:x", fresh.display()),
        ],
    );
    assert_exit(&result, 1);
    assert!(!fresh.exists(), "a failed build must not create the layout");
    let leftovers: Vec<_> = std::fs::read_dir(case.root())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftovers
            .iter()
            .all(|n| !n.to_string_lossy().contains("strata")),
        "no staging directory is left behind: {leftovers:?}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let case = Case::new();
    let missing = strata(
        case.root(),
        &[
            "build",
            "no-such-app",
            "--buildpack",
            ".",
            "--output",
            "oci:out:x",
        ],
    );
    assert_exit(&missing, 2);
    assert!(
        stderr(&missing).contains("no-such-app"),
        "{}",
        stderr(&missing)
    );
    let err = case.fails(2, &[]);
    assert!(err.contains("--builder"), "{err}");
    let err = case.fails(2, &["--buildpack", "not/a-dir-or-known-id"]);
    assert!(err.contains("not/a-dir-or-known-id"), "{err}");
}

#[test]
fn an_output_that_cannot_be_a_layout_is_bad_input_before_anything_runs() {
    let case = Case::new();
    let bp = buildpack(case.root(), "ok4", "test/ok4", "exit 0", "exit 0");
    let file = case.root().join("a-file");
    std::fs::write(&file, "not a layout").unwrap();
    let other = case.root().join("other-files");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    for (dir, says) in [(&file, "is a file"), (&other, "no `oci-layout`")] {
        let before = snapshot_tree(case.root());
        let result = strata(
            case.root(),
            &[
                "build",
                case.app.to_str().unwrap(),
                "--buildpack",
                bp.to_str().unwrap(),
                "--output",
                &format!("oci:{}:x", dir.display()),
            ],
        );
        assert_exit(&result, 2);
        let err = stderr(&result);
        assert!(
            err.contains(says) && err.contains(&*dir.to_string_lossy()),
            "{err}"
        );
        assert_eq!(
            err.matches(says).count(),
            1,
            "the error is said once: {err}"
        );
        assert!(!err.contains("BUILDING"), "nothing was built: {err}");
        assert!(before == snapshot_tree(case.root()), "nothing changed");
    }
}

#[test]
fn a_run_image_not_made_yet_names_the_script_that_makes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let examples_copy = tmp.path().join("examples");
    copy_tree(&examples(), &examples_copy);
    let _ = std::fs::remove_dir_all(examples_copy.join("run-image/layout"));
    let result = strata(
        tmp.path(),
        &[
            "build",
            "examples/monorepo",
            "--cache-dir",
            tmp.path().join("cache").to_str().unwrap(),
        ],
    );
    assert_exit(&result, 2);
    // miette wraps long lines: read the words, not the lines.
    let words = stderr(&result)
        .replace(['│', '╰', '├', '─', '▶'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        words.contains("run-image/ make.sh`: run that first")
            || words.contains("run-image/make.sh`: run that first"),
        "{words}"
    );
    assert!(!examples_copy.join("monorepo/out").exists());
}
