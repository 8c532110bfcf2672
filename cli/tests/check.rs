//! `strata build --check`: a fresh rebuild from scratch compared with the image the output
//! holds. The example monorepo rebuilds bit for bit; a buildpack that writes the current time
//! into a file does not, and the check names its layer and the file; an output with no image
//! yet is exit 2. Signatures attached to the output's images are no images to check.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use common::registry::support;

use std::path::{Path, PathBuf};

use common::*;

fn check(cwd: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    all.push("--check");
    strata(cwd, &all)
}

#[test]
fn the_example_monorepo_rebuilds_bit_for_bit() {
    let fx = ExampleCopy::new();
    let examples = fx.path("examples");
    let cache = fx.path("cache");
    let args = ["monorepo", "--cache-dir", cache.to_str().unwrap()];
    // Signed: each image of the workspace gets its referrers tag next to the services' tags.
    let key = fx.path("signer.pem");
    let generate = ["key", "generate", "--output", key.to_str().unwrap()];
    assert_exit(&strata(&examples, &generate), 0);
    let signed = ["--sign-key", key.to_str().unwrap()];
    assert_exit(
        &strata(&examples, &[&["build"][..], &args, &signed].concat()),
        0,
    );
    let layout = examples.join("monorepo/out");
    let api = format!("oci:{}:api", layout.display());
    let public = fx.path("signer.pub");
    let verify = ["verify-signature", &api, "--key", public.to_str().unwrap()];
    assert_exit(&strata(&examples, &verify), 0);
    let index = examples.join("monorepo/out/index.json");
    let before = std::fs::read(&index).unwrap();

    let out = check(&examples, &args);
    assert_exit(&out, 0);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 10, "{stdout}");
    assert!(lines.iter().all(|l| l.ends_with(" identical")), "{stdout}");
    assert_eq!(
        std::fs::read(&index).unwrap(),
        before,
        "--check only reads the output"
    );
}

/// A declared buildpack whose layer `clock` has a stable file and the time the layer was made.
fn clock_buildpack(root: &Path) -> PathBuf {
    one_layer_buildpack(
        &root.join("clock"),
        "test/clock",
        "clock",
        &["main.txt"],
        "mkdir -p \"$1/etc\"\necho stable > \"$1/etc/a\"\ndate +%s%N > \"$1/etc/built-at\"",
    )
}

#[test]
fn a_buildpack_that_writes_the_time_fails_the_check_naming_its_layer_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.txt"), "hello\n").unwrap();
    let buildpack = clock_buildpack(tmp.path());
    let output = format!("oci:{}:app", tmp.path().join("out").display());
    let args = [
        app.to_str().unwrap(),
        "--buildpack",
        buildpack.to_str().unwrap(),
        "--output",
        output.as_str(),
    ];

    // No image yet: nothing to compare with.
    let nothing = check(tmp.path(), &args);
    assert_exit(&nothing, 2);
    assert!(
        stderr(&nothing).contains("holds no image"),
        "{}",
        stderr(&nothing)
    );

    assert_exit(&strata(tmp.path(), &[&["build"][..], &args].concat()), 0);
    let out = check(tmp.path(), &args);
    assert_exit(&out, 1);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("layer 2 (Layer: 'clock', Created by buildpack: test/clock@1) differs"),
        "{stdout}"
    );
    assert!(
        stdout.contains("first entry that differs: layers/test_clock/clock/etc/built-at: content"),
        "{stdout}"
    );
}

#[test]
fn a_pushed_image_is_checked_against_the_registry() {
    let registry = support::Registry::start();
    let host = registry.host();
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.txt"), "hello\n").unwrap();
    let buildpack = clock_buildpack(tmp.path());
    let target = format!("docker://{host}/clock:v1");
    let args = [
        app.to_str().unwrap(),
        "--buildpack",
        buildpack.to_str().unwrap(),
        "--output",
        target.as_str(),
        "--insecure-registry",
        host.as_str(),
    ];
    let nothing = check(tmp.path(), &args);
    assert_exit(&nothing, 2);
    assert_exit(&strata(tmp.path(), &[&["build"][..], &args].concat()), 0);
    let out = check(tmp.path(), &args);
    assert_exit(&out, 1);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains(&format!("{target} sha256:")), "{stdout}");
    assert!(
        stdout.contains("first entry that differs: layers/test_clock/clock/etc/built-at: content"),
        "{stdout}"
    );
}
