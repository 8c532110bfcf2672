//! The README, followed as a newcomer follows it: its set-up, example and rebase commands,
//! taken from the README's own `sh` blocks (so the two cannot drift apart), run in order, as
//! written, in a fresh clone of the repository's committed tree; each block's output is
//! checked, and `git status` is clean afterwards (everything the commands write is ignored).
//!
//! It runs `./setup.sh`, which installs Debian packages and makes a release build, so it is
//! opt-in: `STRATA_TEST_README=1 cargo test -p strata-cli --test readme`. The block that
//! makes the Debian stack (it needs a Debian mirror and 75 s) is left to `tests/stack.rs`.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// The `sh` blocks of the README section whose heading starts with `heading`, in order.
fn blocks(readme: &str, heading: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_section = false;
    let mut block: Option<String> = None;
    for line in readme.lines() {
        if let Some(text) = &mut block {
            if line.starts_with("```") {
                out.push(std::mem::take(text));
                block = None;
            } else {
                text.push_str(line);
                text.push('\n');
            }
            continue;
        }
        if let Some(title) = line.strip_prefix("## ") {
            in_section = title.starts_with(heading);
        } else if in_section && line == "```sh" {
            block = Some(String::new());
        }
    }
    out
}

/// Runs `script` with bash in `dir` (stopping at the first failing command) and returns
/// stdout and stderr together.
fn sh(dir: &Path, cache: &Path, script: &str) -> String {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("XDG_CACHE_HOME", cache)
        .env("TMPDIR", scratch_tmpdir())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "README block failed:\n{script}\n--- output\n{text}"
    );
    text
}

#[test]
fn the_readme_works_top_to_bottom_in_a_fresh_clone() {
    if std::env::var_os("STRATA_TEST_README").is_none() {
        eprintln!("skipped: set STRATA_TEST_README=1 (runs ./setup.sh and a release build)");
        return;
    }
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let setup = blocks(&readme, "Set up");
    let example = blocks(&readme, "Build the example");
    let rebase = blocks(&readme, "Rebase onto a patched run image");
    assert_eq!(setup, ["./setup.sh\n"], "the set-up is one command");
    assert!(
        example[0].contains("strata build examples/monorepo"),
        "{example:?}"
    );
    assert!(!rebase.is_empty());

    let root = process_dir("readme");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let clone = root.join("strata");
    let cache = root.join("cache");
    tool(
        "git",
        &[
            "clone",
            "-q",
            repo().to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );

    let out = sh(&clone, &cache, &setup[0]);
    assert!(out.contains("setup: done"), "{out}");

    let mut expected = vec![
        // The main command: the monorepo's summary and its totals line.
        vec!["10 services (0 failed)", "api ", "docs "],
        // inspect, skopeo inspect, strata run of api.
        vec!["Processes:", "\"Digest\": \"sha256:", "orders API on :8080"],
        // The single app, and its run.
        vec!["oci:out:hello sha256:", "Welcome from greeter 1.2: strata"],
    ]
    .into_iter();
    for block in &example {
        if block.contains("examples/stack/make.sh") {
            continue; // tests/stack.rs: it needs a Debian mirror
        }
        let out = sh(&clone, &cache, block);
        for needle in expected.next().unwrap_or_default() {
            assert!(
                out.contains(needle),
                "`{needle}` not in the output of\n{block}\n---\n{out}"
            );
        }
    }
    for block in &rebase {
        let out = sh(&clone, &cache, block);
        if block.contains("strata rebase") {
            assert!(out.contains("1 rebased"), "{block}\n---\n{out}");
        }
    }

    let status = tool(
        "git",
        &["-C", clone.to_str().unwrap(), "status", "--porcelain"],
    );
    assert_eq!(
        status, "",
        "the README's commands leave files git does not ignore"
    );
    let _ = std::fs::remove_dir_all(&root);
}
