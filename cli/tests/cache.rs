//! `strata cache`: what `stats`, `verify` and `gc` print, and their exit codes.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::*;
use strata_engine::store::{ActionEntry, Store, store_dir};
use strata_planner::TaskKey;

fn key(n: u8) -> TaskKey {
    TaskKey::from_bytes([n; 32])
}

/// A store in `cache_dir` with two actions of one blob each, the first used longest ago.
fn stock(cache_dir: &Path) -> Vec<String> {
    let store = Store::open(&store_dir(cache_dir)).unwrap();
    let mut digests = Vec::new();
    for n in 1..=2u8 {
        let blob = store
            .put_blob_bytes(&vec![n; 1000 * usize::from(n)])
            .unwrap();
        let entry = ActionEntry {
            blobs: vec![blob.clone()],
            payload: serde_json::json!({ "layer": n }),
        };
        store.put_action(&key(n), &entry).unwrap();
        digests.push(blob.digest);
    }
    let hex = key(1).hex();
    let action = store_dir(cache_dir)
        .join("actions")
        .join(&hex[..2])
        .join(format!("{hex}.json"));
    std::fs::File::open(action)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_hours(1))
        .unwrap();
    digests
}

fn run(cache_dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["cache"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--cache-dir", cache_dir.to_str().unwrap()]);
    strata(cache_dir, &all)
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn verify_exits_0_on_a_clean_store_and_1_on_a_corrupt_one() {
    let dir = tempfile::tempdir().unwrap();
    let empty = run(dir.path(), &["verify"]);
    assert_exit(&empty, 0);
    assert!(
        !store_dir(dir.path()).exists(),
        "reading about a store does not create one"
    );

    let digests = stock(dir.path());
    assert_exit(&run(dir.path(), &["verify"]), 0);
    let blob = store_dir(dir.path())
        .join("blobs/sha256")
        .join(digests[0].strip_prefix("sha256:").unwrap());
    std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();

    let out = run(dir.path(), &["verify"]);
    assert_exit(&out, 1);
    let text = stdout(&out).replace(dir.path().to_str().unwrap(), "[CACHE]");
    insta::assert_snapshot!(text);
    assert!(stderr(&out).contains("has 2 problems"), "{}", stderr(&out));

    let json = run(dir.path(), &["verify", "--json"]);
    assert_exit(&json, 1);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["corrupt_blobs"][0]["digest"], digests[0].as_str());
    assert_eq!(report["broken_actions"][0]["key"], key(1).hex().as_str());
    assert_eq!(
        report["broken_actions"][0]["problem"]["kind"],
        "corrupt-blob"
    );

    assert_exit(&run(dir.path(), &["verify", "--repair"]), 1);
    assert!(!blob.exists());
    assert_exit(&run(dir.path(), &["verify"]), 0);
}

#[test]
fn stats_counts_what_the_store_holds() {
    let dir = tempfile::tempdir().unwrap();
    stock(dir.path());
    let out = run(dir.path(), &["stats", "--json"]);
    assert_exit(&out, 0);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["blobs"], 2);
    assert_eq!(stats["blob_bytes"], 3000);
    assert_eq!(stats["actions"], 2);
    assert_eq!(
        stats["store"],
        store_dir(dir.path()).to_str().unwrap(),
        "{stats}"
    );
    let text = stdout(&run(dir.path(), &["stats"]));
    assert!(text.contains("blobs             2  3.0 kB"), "{text}");
}

#[test]
fn the_default_cache_dir_is_the_users() {
    let dir = tempfile::tempdir().unwrap();
    let out = strata(dir.path(), &["cache", "stats", "--json"]);
    assert_exit(&out, 0);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        stats["store"].as_str().unwrap().ends_with("/strata/store"),
        "{stats}"
    );
}

#[test]
fn gc_evicts_down_to_max_size() {
    let dir = tempfile::tempdir().unwrap();
    stock(dir.path());
    // Room for the second action and its blob, not for both.
    let out = run(dir.path(), &["gc", "--max-size", "2500"]);
    assert_exit(&out, 0);
    insta::assert_snapshot!(stdout(&out));
    let store = Store::open(&store_dir(dir.path())).unwrap();
    assert!(store.get_action(&key(1)).is_none());
    assert!(store.get_action(&key(2)).is_some());
}

#[test]
fn gc_refuses_while_the_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    stock(dir.path());
    let store = Store::open(&store_dir(dir.path())).unwrap();
    let out = run(dir.path(), &["gc"]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    drop(store);
    assert_exit(&run(dir.path(), &["gc"]), 0);
}

#[test]
fn a_bad_max_size_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    for size in ["12Q", "-5", "lots", "1.5.2G"] {
        let out = run(dir.path(), &["gc", "--max-size", size]);
        assert_exit(&out, 2);
        assert!(stderr(&out).contains("--max-size"), "{}", stderr(&out));
    }
    assert_exit(&run(dir.path(), &["gc", "--max-size", "10GiB"]), 0);
    assert_exit(&run(dir.path(), &["gc", "--max-size"]), 2);
}

#[test]
fn stats_and_gc_count_and_evict_unpacked_build_images() {
    let dir = tempfile::tempdir().unwrap();
    stock(dir.path());
    let rootfs = store_dir(dir.path()).join("rootfs");
    // Two trees, the first used before either action; a killed unpack's temp dir.
    let old = rootfs.join("a".repeat(64));
    let recent = rootfs.join("b".repeat(64));
    let unpacking = rootfs.join(".unpacking-x1");
    for (tree, bytes) in [(&old, 1000), (&recent, 2000), (&unpacking, 500)] {
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        std::fs::write(tree.join("etc/file"), vec![0; bytes]).unwrap();
        // As an image's /proc: read-only.
        std::fs::create_dir(tree.join("proc")).unwrap();
        std::fs::set_permissions(tree.join("proc"), std::fs::Permissions::from_mode(0o555))
            .unwrap();
    }
    std::fs::File::open(&old)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_hours(2))
        .unwrap();

    let out = run(dir.path(), &["stats", "--json"]);
    assert_exit(&out, 0);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["rootfs"], 2, "{stats}");
    assert_eq!(stats["rootfs_bytes"], 3000, "{stats}");
    assert_eq!(stats["leftover_bytes"], 500, "{stats}");
    let text = stdout(&run(dir.path(), &["stats"]));
    assert!(text.contains("rootfs            2  3.0 kB"), "{text}");

    // Garbage only: the temp dir goes, the trees stay.
    let out = run(dir.path(), &["gc", "--json"]);
    assert_exit(&out, 0);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["leftovers"]["bytes"], 500, "{report}");
    assert!(!unpacking.exists());
    assert!(old.is_dir() && recent.is_dir());

    // Over the limit by less than the old tree: it goes first, being used longest ago.
    let size = report["size_after"].as_u64().unwrap();
    let max = (size - 500).to_string();
    let out = run(dir.path(), &["gc", "--max-size", &max, "--json"]);
    assert_exit(&out, 0);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["evicted_rootfs"]["count"], 1, "{report}");
    assert_eq!(report["evicted_rootfs"]["bytes"], 1000, "{report}");
    assert_eq!(report["evicted_actions"]["count"], 0, "{report}");
    assert!(!old.exists());
    assert!(recent.is_dir());
    let store = Store::open(&store_dir(dir.path())).unwrap();
    assert!(store.get_action(&key(1)).is_some());
}
