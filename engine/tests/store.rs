//! The store: round trips, corruption found and rebuilt, `verify` and `gc`, and many writers
//! at once (threads, processes, and processes killed with SIGKILL mid-write).

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::json;
use sha2::{Digest as _, Sha256};
use strata_engine::store::{ActionEntry, ActionProblem, BlobRef, Store, StoreError, store_dir};
use strata_planner::TaskKey;

fn key(n: u8) -> TaskKey {
    TaskKey::from_bytes([n; 32])
}

fn entry(blobs: &[&BlobRef], payload: serde_json::Value) -> ActionEntry {
    ActionEntry {
        blobs: blobs.iter().map(|b| (*b).clone()).collect(),
        payload,
    }
}

/// `len` bytes that differ with `seed`.
fn content(seed: u32, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Rewrites a file in place (same inode, as a disk error or a careless edit would).
fn edit(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(path).unwrap();
    change(&mut bytes);
    fs::write(path, bytes).unwrap();
}

fn flip_byte(path: &Path) {
    edit(path, |bytes| {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
    });
}

fn truncate(path: &Path) {
    edit(path, |bytes| bytes.truncate(bytes.len() / 2));
}

fn action_path(root: &Path, key: &TaskKey) -> PathBuf {
    let hex = key.hex();
    root.join("actions")
        .join(&hex[..2])
        .join(format!("{hex}.json"))
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    match fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// A store with one action of three blobs, one from each way in.
fn stocked(root: &Path) -> (Store, ActionEntry) {
    let store = Store::open(root).unwrap();
    let a = store.put_blob_bytes(b"layer metadata").unwrap();
    let big = content(1, 3 * 1024 * 1024 + 17);
    let b = store.put_blob_reader(&big[..]).unwrap();
    let layer = content(2, 100_000);
    let file = store.tmp_dir().join("layer");
    fs::write(&file, &layer).unwrap();
    let c = store
        .adopt_blob(&file, &sha256(&layer), layer.len() as u64)
        .unwrap();
    let entry = entry(&[&a, &b, &c], json!({"layers": [{"name": "node"}]}));
    store.put_action(&key(1), &entry).unwrap();
    (store, entry)
}

#[test]
fn round_trip_within_and_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let root = store_dir(dir.path());
    let (store, entry) = stocked(&root);
    assert_eq!(store.get_action(&key(1)), Some(entry.clone()));
    assert_eq!(store.get_action(&key(2)), None);
    for blob in &entry.blobs {
        let path = store.blob_path(&blob.digest).unwrap();
        assert_eq!(sha256(&fs::read(&path).unwrap()), blob.digest);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o444, "blobs are read-only");
    }
    assert!(!store.tmp_dir().join("layer").exists(), "adopt moves");
    assert!(root.join("oci-layout").is_file());
    drop(store);

    // A new Store hashes each blob once before a hit.
    let store = Store::open(&root).unwrap();
    assert_eq!(store.get_action(&key(1)), Some(entry.clone()));
    assert!(store.removed_blobs().is_empty());
    let stats = store.stats().unwrap();
    assert_eq!((stats.blobs, stats.actions, stats.leftovers), (3, 1, 0));
    assert_eq!(
        stats.blob_bytes,
        entry.blobs.iter().map(|b| b.size).sum::<u64>()
    );
    assert!(store.verify(false).unwrap().is_clean());
}

#[test]
fn adopting_a_blob_the_store_has() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let bytes = content(3, 5000);
    let blob = store.put_blob_bytes(&bytes).unwrap();
    let file = store.tmp_dir().join("again");
    fs::write(&file, &bytes).unwrap();
    assert_eq!(
        store.adopt_blob(&file, &blob.digest, blob.size).unwrap(),
        blob
    );
    assert!(!file.exists(), "the second copy is dropped");
    // Another writer of the same layer moved the file already: the blob is there, so fine.
    assert_eq!(
        store.adopt_blob(&file, &blob.digest, blob.size).unwrap(),
        blob
    );
    // A missing file for a blob the store does not have is an error.
    let other = sha256(b"other");
    assert!(matches!(
        store.adopt_blob(&file, &other, 5),
        Err(StoreError::Io { .. })
    ));
    fs::write(&file, b"other").unwrap();
    assert!(matches!(
        store.adopt_blob(&file, &other, 6),
        Err(StoreError::SizeMismatch {
            expected: 6,
            actual: 5,
            ..
        })
    ));
    assert!(matches!(
        store.adopt_blob(&file, "sha256:../../etc/passwd", 5),
        Err(StoreError::InvalidDigest { .. })
    ));
    assert!(store.blob_path("sha256:../x").is_err());
    assert!(
        store
            .blob_path(&format!("sha512:{}", "0".repeat(64)))
            .is_err()
    );
}

#[test]
fn an_action_needs_its_blobs_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let absent = BlobRef {
        digest: sha256(b"never written"),
        size: 13,
    };
    assert!(matches!(
        store.put_action(&key(1), &entry(&[&absent], json!(null))),
        Err(StoreError::MissingBlob { .. })
    ));
    let present = store.put_blob_bytes(b"written").unwrap();
    let wrong_size = BlobRef {
        size: present.size + 1,
        ..present.clone()
    };
    assert!(matches!(
        store.put_action(&key(1), &entry(&[&wrong_size], json!(null))),
        Err(StoreError::MissingBlob { .. })
    ));
    assert!(store.check_blob(&present), "an intact blob stays");
    assert!(!action_path(dir.path(), &key(1)).exists());
}

#[test]
fn a_flipped_byte_is_a_miss_then_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (store, entry) = stocked(dir.path());
    let layer = &entry.blobs[2];
    let path = store.blob_path(&layer.digest).unwrap();
    drop(store);
    flip_byte(&path);

    let store = Store::open(dir.path()).unwrap();
    assert!(!store.check_blob(layer), "the first use hashes it");
    assert!(!path.exists(), "a corrupt blob is deleted");
    assert_eq!(store.removed_blobs(), vec![layer.digest.clone()]);
    assert_eq!(store.get_action(&key(1)), None);
    assert!(
        !action_path(dir.path(), &key(1)).exists(),
        "a miss removes the action"
    );

    // The task runs again and puts the same outputs back.
    let bytes = content(2, 100_000);
    let file = store.tmp_dir().join("rebuilt");
    fs::write(&file, &bytes).unwrap();
    store.adopt_blob(&file, &layer.digest, layer.size).unwrap();
    store.put_action(&key(1), &entry).unwrap();
    assert_eq!(store.get_action(&key(1)), Some(entry));
    assert!(store.verify(false).unwrap().is_clean());
}

#[test]
fn a_flipped_byte_in_an_unverified_blob_makes_get_action_miss() {
    let dir = tempfile::tempdir().unwrap();
    let (store, entry) = stocked(dir.path());
    let path = store.blob_path(&entry.blobs[1].digest).unwrap();
    drop(store);
    flip_byte(&path);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.get_action(&key(1)), None);
    assert!(!path.exists());
    assert_eq!(store.removed_blobs(), vec![entry.blobs[1].digest.clone()]);
    assert!(store.check_blob(&entry.blobs[0]), "other blobs stay");
}

#[test]
fn a_truncated_blob_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let (store, entry) = stocked(dir.path());
    let path = store.blob_path(&entry.blobs[1].digest).unwrap();
    // Size is checked on every use, even of a blob already verified in this process.
    truncate(&path);
    assert_eq!(store.get_action(&key(1)), None);
    assert!(!path.exists());
    assert!(!action_path(dir.path(), &key(1)).exists());
}

#[test]
fn a_deleted_blob_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let (store, entry) = stocked(dir.path());
    fs::remove_file(store.blob_path(&entry.blobs[0].digest).unwrap()).unwrap();
    assert_eq!(store.get_action(&key(1)), None);
    assert!(!action_path(dir.path(), &key(1)).exists());
    assert!(
        store.removed_blobs().is_empty(),
        "nothing corrupt was found"
    );
}

#[test]
fn an_unparsable_or_misplaced_action_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let (store, entry) = stocked(dir.path());
    let other = action_path(dir.path(), &key(2));
    fs::create_dir_all(other.parent().unwrap()).unwrap();
    fs::copy(action_path(dir.path(), &key(1)), &other).unwrap();
    assert_eq!(
        store.get_action(&key(2)),
        None,
        "key 1's entry is not key 2's"
    );
    assert!(!other.exists());
    edit(&action_path(dir.path(), &key(1)), |text| text.truncate(10));
    assert_eq!(store.get_action(&key(1)), None);
    assert!(!action_path(dir.path(), &key(1)).exists());
    // Its blobs are untouched: they are good, and another action may need them.
    assert!(entry.blobs.iter().all(|b| store.check_blob(b)));
}

#[test]
fn a_hit_marks_the_action_used() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = stocked(dir.path());
    let path = action_path(dir.path(), &key(1));
    let past = SystemTime::now() - Duration::from_hours(1);
    fs::File::open(&path).unwrap().set_modified(past).unwrap();
    store.get_action(&key(1)).unwrap();
    assert!(fs::metadata(&path).unwrap().modified().unwrap() > past);
}

#[test]
fn verify_reports_each_problem_and_repairs_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = Store::open(root).unwrap();
    let mut blobs = Vec::new();
    for n in 0..4u8 {
        let blob = store
            .put_blob_bytes(&content(u32::from(n), 10_000))
            .unwrap();
        store
            .put_action(&key(n), &entry(&[&blob], json!({ "n": n })))
            .unwrap();
        blobs.push(blob);
    }
    let path = |n: usize| store.blob_path(&blobs[n].digest).unwrap();
    flip_byte(&path(1));
    truncate(&path(2));
    fs::remove_file(path(3)).unwrap();
    let unparsable = action_path(root, &key(9));
    fs::create_dir_all(unparsable.parent().unwrap()).unwrap();
    fs::write(&unparsable, "{ not json").unwrap();
    fs::write(root.join("blobs/sha256/stray"), "?").unwrap();

    let report = store.verify(false).unwrap();
    assert_eq!((report.blobs, report.actions), (3, 4));
    let mut corrupt: Vec<_> = report.corrupt_blobs.iter().map(|c| &c.digest).collect();
    corrupt.sort();
    let mut expected = vec![&blobs[1].digest, &blobs[2].digest];
    expected.sort();
    assert_eq!(corrupt, expected);
    assert!(report.corrupt_blobs.iter().all(|c| c.actual.is_some()));
    let mut broken: Vec<_> = report
        .broken_actions
        .iter()
        .map(|b| (b.key.clone(), b.digest.clone(), b.problem.clone()))
        .collect();
    broken.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        broken,
        vec![
            (
                key(1).hex(),
                blobs[1].digest.clone(),
                ActionProblem::CorruptBlob
            ),
            (
                key(2).hex(),
                blobs[2].digest.clone(),
                ActionProblem::CorruptBlob
            ),
            (
                key(3).hex(),
                blobs[3].digest.clone(),
                ActionProblem::MissingBlob
            ),
        ]
    );
    assert_eq!(report.unparsable_actions.len(), 1);
    assert_eq!(report.unparsable_actions[0].path, unparsable);
    assert_eq!(report.stray_files, vec![root.join("blobs/sha256/stray")]);
    assert_eq!(report.problems(), 6);
    assert!(path(1).exists() && unparsable.exists(), "report only");

    let repaired = store.verify(true).unwrap();
    assert_eq!(repaired.problems(), 6);
    assert!(!path(1).exists() && !path(2).exists());
    assert!(!unparsable.exists());
    for n in 1..4 {
        assert!(!action_path(root, &key(n)).exists());
    }
    let after = store.verify(false).unwrap();
    assert!(after.is_clean(), "{after:?}");
    assert_eq!((after.blobs, after.actions), (1, 1));
    assert!(store.get_action(&key(0)).is_some());
}

#[test]
fn gc_removes_garbage_only_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (store, entry) = stocked(root);
    let unreferenced = store.put_blob_bytes(b"no action names me").unwrap();
    let gone = store.put_blob_bytes(b"deleted below").unwrap();
    store
        .put_action(&key(2), &entry_of(&[&gone, &entry.blobs[0]]))
        .unwrap();
    fs::remove_file(store.blob_path(&gone.digest).unwrap()).unwrap();
    fs::write(store.tmp_dir().join("blob-killed"), content(4, 1000)).unwrap();
    fs::create_dir_all(root.join("moved/old/blobs")).unwrap();
    fs::write(root.join("moved/old/blobs/x"), "x").unwrap();
    let log = store.log_path(&key(3));
    fs::write(&log, "a failed task's log").unwrap();
    let before = store.stats().unwrap();
    assert_eq!(before.leftovers, 2);
    assert_eq!(before.leftover_bytes, 1001);
    drop(store);

    let report = Store::gc(root, u64::MAX).unwrap();
    assert_eq!(report.leftovers.count, 2);
    assert_eq!(report.leftovers.bytes, 1001);
    assert_eq!(report.broken_actions.count, 1);
    assert_eq!(report.unreferenced_blobs.count, 1);
    assert_eq!(report.unreferenced_blobs.bytes, unreferenced.size);
    assert_eq!(report.evicted_actions.count, 0);
    assert_eq!(report.evicted_logs.count, 0);
    assert_eq!(report.size_before, before.total_bytes());
    assert!(log.exists(), "a log of a task without an action is kept");

    let store = Store::open(root).unwrap();
    assert_eq!(store.get_action(&key(1)), Some(entry));
    let stats = store.stats().unwrap();
    assert_eq!((stats.blobs, stats.actions, stats.leftovers), (3, 1, 0));
    assert_eq!(report.size_after, stats.total_bytes());
    assert!(store.verify(false).unwrap().is_clean());
}

fn entry_of(blobs: &[&BlobRef]) -> ActionEntry {
    entry(blobs, json!(null))
}

#[test]
fn gc_evicts_least_recently_used_actions_down_to_max_size() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = Store::open(root).unwrap();
    let shared = store.put_blob_bytes(&content(10, 100)).unwrap();
    let own: Vec<_> = (1..=3u8)
        .map(|n| store.put_blob_bytes(&content(u32::from(n), 1000)).unwrap())
        .collect();
    store
        .put_action(&key(1), &entry_of(&[&own[0], &shared]))
        .unwrap();
    store
        .put_action(&key(2), &entry_of(&[&own[1], &shared]))
        .unwrap();
    store.put_action(&key(3), &entry_of(&[&own[2]])).unwrap();
    fs::write(store.log_path(&key(2)), "log of 2").unwrap();
    // Written in the order 1, 2, 3 a day ago; then key 1 is used again now.
    let day_ago = SystemTime::now() - Duration::from_hours(24);
    for n in 1..=3u8 {
        let time = day_ago + Duration::from_secs(u64::from(n) * 60);
        fs::File::open(action_path(root, &key(n)))
            .unwrap()
            .set_modified(time)
            .unwrap();
    }
    assert!(store.get_action(&key(1)).is_some());
    let total = store.stats().unwrap().total_bytes();
    drop(store);

    // Just over the limit: the least recently used action (2) goes, with its log and its own
    // blob; the shared blob stays for action 1.
    let report = Store::gc(root, total - 1).unwrap();
    assert_eq!(report.size_before, total);
    assert_eq!(report.evicted_actions.count, 1);
    assert_eq!(report.evicted_logs.count, 1);
    assert!(report.size_after < total);
    let store = Store::open(root).unwrap();
    assert!(store.get_action(&key(2)).is_none());
    assert!(!store.blob_path(&own[1].digest).unwrap().exists());
    assert!(store.get_action(&key(1)).is_some());
    assert!(store.get_action(&key(3)).is_some());
    assert_eq!(store.stats().unwrap().total_bytes(), report.size_after);
    drop(store);

    // Nothing fits in 0 bytes.
    let report = Store::gc(root, 0).unwrap();
    assert_eq!(report.evicted_actions.count, 2);
    assert_eq!(report.size_after, 0);
    let store = Store::open(root).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!((stats.blobs, stats.actions, stats.logs), (0, 0, 0));
}

#[test]
fn gc_refuses_while_a_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = stocked(dir.path());
    // flock locks belong to an open file description: the second open of `lock` in this
    // process conflicts like another process's would.
    assert!(matches!(
        Store::gc(dir.path(), 0),
        Err(StoreError::Busy { .. })
    ));
    assert!(store.get_action(&key(1)).is_some());
    drop(store);
    assert_eq!(Store::gc(dir.path(), 0).unwrap().evicted_actions.count, 1);
}

#[test]
fn gc_waits_for_a_store_that_is_closing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = stocked(dir.path());
    // A store let go a moment after gc starts (as when a child process forked meanwhile
    // still shares the lock until it execs) is waited for, not reported busy.
    let closer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(store);
    });
    let report = Store::gc(dir.path(), 0).unwrap();
    assert_eq!(report.evicted_actions.count, 1);
    closer.join().unwrap();
}

#[test]
fn gc_leaves_a_directory_without_a_store_alone() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("tmp")).unwrap();
    fs::write(dir.path().join("tmp/mine"), "not a store's").unwrap();
    let report = Store::gc(dir.path(), 0).unwrap();
    assert_eq!(report.leftovers.count, 0);
    assert!(dir.path().join("tmp/mine").exists());
    assert!(!dir.path().join("lock").exists());
    let missing = dir.path().join("missing");
    Store::gc(&missing, 0).unwrap();
    assert!(!missing.exists());
}

#[test]
fn open_removes_temp_files_older_than_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let old = store.tmp_dir().join("blob-old");
    let fresh = store.tmp_dir().join("blob-fresh");
    fs::write(&old, "old").unwrap();
    fs::write(&fresh, "fresh").unwrap();
    let two_days_ago = SystemTime::now() - Duration::from_hours(48);
    fs::File::open(&old)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    drop(store);
    let _store = Store::open(dir.path()).unwrap();
    assert!(!old.exists());
    assert!(fresh.exists());
}

#[test]
fn logs_are_kept_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let path = store.log_path(&key(7));
    let hex = key(7).hex();
    assert_eq!(
        path,
        dir.path()
            .join("logs")
            .join(&hex[..2])
            .join(format!("{hex}.log"))
    );
    let first = dir.path().join("first.log");
    fs::write(&first, "first run").unwrap();
    assert_eq!(store.put_log(&key(7), &first).unwrap(), path);
    let second = dir.path().join("second.log");
    fs::write(&second, "second run").unwrap();
    store.put_log(&key(7), &second).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "second run");
    assert_eq!(store.stats().unwrap().logs, 1);
}

/// What every hammering writer puts: the same blobs and actions, through every way in.
fn hammer(store: &Store, round: u32) {
    let n = round % 8;
    let small = store
        .put_blob_bytes(&content(n, 4096 + n as usize))
        .unwrap();
    let big = content(n + 100, 300_000);
    let streamed = store.put_blob_reader(&big[..]).unwrap();
    let layer = content(n + 200, 50_000);
    let own = store.temp_dir().unwrap();
    let file = own.path().join("layer");
    fs::write(&file, &layer).unwrap();
    let adopted = store
        .adopt_blob(&file, &sha256(&layer), layer.len() as u64)
        .unwrap();
    let key = key(u8::try_from(n).unwrap());
    let entry = entry(&[&small, &streamed, &adopted], json!({ "n": n }));
    store.put_action(&key, &entry).unwrap();
    assert_eq!(store.get_action(&key), Some(entry));
}

#[test]
fn threads_writing_the_same_blobs_and_actions_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let shared = Store::open(dir.path()).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..6u32 {
            let shared = &shared;
            let root = dir.path();
            scope.spawn(move || {
                // Half share one Store, half open their own.
                let own = (thread % 2 == 1).then(|| Store::open(root).unwrap());
                let store = own.as_ref().unwrap_or(shared);
                for round in 0..24 {
                    hammer(store, round + thread);
                }
            });
        }
    });
    let report = shared.verify(false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(report.stray_files.is_empty());
    let stats = shared.stats().unwrap();
    assert_eq!((stats.blobs, stats.actions, stats.leftovers), (24, 8, 0));
}

/// Runs this test binary's `child` test in a new process on the store in `dir`.
fn child(name: &str, dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", name, "--ignored", "--test-threads=1"])
        .env("STRATA_STORE_TEST_DIR", dir)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn child_dir() -> Option<PathBuf> {
    std::env::var_os("STRATA_STORE_TEST_DIR").map(PathBuf::from)
}

/// Waits for a child to write `ready`; fails if it exits or never does.
fn wait_ready(process: &mut std::process::Child, ready: &Path) {
    for _ in 0..1200 {
        if ready.exists() {
            return;
        }
        if let Some(status) = process.try_wait().unwrap() {
            let mut err = String::new();
            process
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the child exited ({status}) before it was ready: {err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the child never got ready");
}

#[test]
#[ignore = "a child process of the tests below"]
fn hammer_child() {
    let Some(dir) = child_dir() else { return };
    let rounds: u32 = std::env::var("STRATA_STORE_TEST_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(u32::MAX);
    let ready = std::env::var_os("STRATA_STORE_TEST_READY").map(PathBuf::from);
    let store = Store::open(&dir).unwrap();
    for round in 0..rounds {
        hammer(&store, round);
        if round == 16
            && let Some(ready) = &ready
        {
            fs::write(ready, "").unwrap();
        }
    }
}

#[test]
fn processes_writing_the_same_blobs_and_actions_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let processes: Vec<_> = (0..3)
        .map(|_| {
            child(
                "hammer_child",
                dir.path(),
                &[("STRATA_STORE_TEST_ROUNDS", "40")],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    for process in processes {
        let out = process.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let store = Store::open(dir.path()).unwrap();
    let report = store.verify(false).unwrap();
    assert!(report.is_clean(), "{report:?}");
    let stats = store.stats().unwrap();
    assert_eq!((stats.blobs, stats.actions, stats.leftovers), (24, 8, 0));
}

#[test]
fn writers_killed_mid_build_leave_a_clean_store() {
    let dir = tempfile::tempdir().unwrap();
    for attempt in 0..3 {
        let ready = dir.path().join(format!("ready-{attempt}"));
        let mut process = child(
            "hammer_child",
            dir.path(),
            &[("STRATA_STORE_TEST_READY", ready.to_str().unwrap())],
        )
        .spawn()
        .unwrap();
        wait_ready(&mut process, &ready);
        process.kill().unwrap();
        process.wait().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let report = store.verify(false).unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert!(report.stray_files.is_empty(), "{report:?}");
    }
    let report = Store::gc(dir.path(), u64::MAX).unwrap();
    assert_eq!(
        report.broken_actions.count + report.unreferenced_blobs.count,
        0
    );
    let store = Store::open(dir.path()).unwrap();
    for n in 0..8u8 {
        // Every action a killed writer finished is a hit.
        if let Some(entry) = store.get_action(&key(n)) {
            assert_eq!(entry.payload, json!({ "n": n }));
        }
    }
}

/// Gives a blob's bytes slowly: quickly up to `ready_after`, then writes `ready` and stalls
/// until the process is killed.
struct Stalling {
    given: usize,
    ready_after: usize,
    ready: PathBuf,
}

impl Read for Stalling {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.given >= self.ready_after {
            fs::write(&self.ready, "").unwrap();
            loop {
                std::thread::park();
            }
        }
        let n = buf.len().min(self.ready_after - self.given);
        buf[..n].fill(0xa5);
        self.given += n;
        Ok(n)
    }
}

#[test]
#[ignore = "a child process of the test below"]
fn stalling_writer_child() {
    let Some(dir) = child_dir() else { return };
    let ready = PathBuf::from(std::env::var_os("STRATA_STORE_TEST_READY").unwrap());
    let store = Store::open(&dir).unwrap();
    store
        .put_blob_reader(Stalling {
            given: 0,
            ready_after: 8 * 1024 * 1024,
            ready,
        })
        .unwrap();
}

/// Runs the stalling writer on the store in `dir` and SIGKILLs it mid-blob.
fn kill_a_writer_mid_blob(dir: &Path) {
    let ready = dir.join("ready");
    let _ = fs::remove_file(&ready);
    let mut process = child(
        "stalling_writer_child",
        &dir.join("store"),
        &[("STRATA_STORE_TEST_READY", ready.to_str().unwrap())],
    )
    .spawn()
    .unwrap();
    wait_ready(&mut process, &ready);
    process.kill().unwrap();
    process.wait().unwrap();
    let root = dir.join("store");
    assert!(files_in(&root.join("blobs/sha256")).is_empty());
    let temps = files_in(&root.join("tmp"));
    assert_eq!(temps.len(), 1, "the killed writer's temp file");
    assert!(fs::metadata(&temps[0]).unwrap().len() >= 8 * 1024 * 1024);
}

#[test]
fn a_writer_killed_mid_blob_leaves_no_partial_blob() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    kill_a_writer_mid_blob(dir.path());
    let report = Store::gc(&root, u64::MAX).unwrap();
    assert_eq!(report.leftovers.count, 1);
    assert!(files_in(&root.join("tmp")).is_empty());

    // The next user of the store removes it too: its writer is gone.
    kill_a_writer_mid_blob(dir.path());
    let store = Store::open(&root).unwrap();
    assert!(files_in(&root.join("tmp")).is_empty());
    let stats = store.stats().unwrap();
    assert_eq!((stats.blobs, stats.leftovers), (0, 0));
    assert!(store.verify(false).unwrap().is_clean());
}

#[test]
fn adopting_a_file_from_another_filesystem_copies_and_checks_it() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let Ok(other) = tempfile::tempdir_in("/dev/shm") else {
        return;
    };
    let device = |p: &Path| fs::metadata(p).unwrap().dev();
    if device(dir.path()) == device(other.path()) {
        return;
    }
    let store = Store::open(dir.path()).unwrap();
    let bytes = content(5, 70_000);
    let file = other.path().join("layer");
    fs::write(&file, &bytes).unwrap();
    let blob = store
        .adopt_blob(&file, &sha256(&bytes), bytes.len() as u64)
        .unwrap();
    assert!(!file.exists());
    assert_eq!(
        fs::read(store.blob_path(&blob.digest).unwrap()).unwrap(),
        bytes
    );

    // A copy is hashed: a file that is not what its caller says stays out.
    fs::write(&file, &bytes).unwrap();
    let wrong = sha256(b"something else");
    assert!(matches!(
        store.adopt_blob(&file, &wrong, bytes.len() as u64),
        Err(StoreError::DigestMismatch { .. })
    ));
    assert!(!store.blob_path(&wrong).unwrap().exists());
    assert!(files_in(store.tmp_dir()).is_empty());
}
