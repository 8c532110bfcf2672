//! What a signal handler relies on: `scratch::remove_all` removes every live scratch directory
//! and this process's temp files in registered homes, and nothing else, and nothing new can be
//! created after it. Its own test binary: it closes the process-wide registry.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

use std::io::{ErrorKind, Write};

use strata_engine::scratch::{self, ScratchDir, TempHome};

#[test]
fn remove_all_removes_this_processes_scratch_and_closes_the_registry() {
    let root = tempfile::tempdir().unwrap();
    let scratch_dir = ScratchDir::create(root.path(), "strata-scratch-").unwrap();
    std::fs::create_dir_all(scratch_dir.path().join("service-0/platform/env")).unwrap();
    std::fs::write(scratch_dir.path().join("service-0/platform/env/TOKEN"), "x").unwrap();

    let home_dir = root.path().join("store-tmp");
    std::fs::create_dir(&home_dir).unwrap();
    let home = TempHome::new(&home_dir);
    // Being written when the signal comes: open, not yet renamed into place.
    let mut writing = scratch::temp_file_in(&home_dir, "blob-").unwrap();
    writing.write_all(b"half a blob").unwrap();
    let (_file, half) = scratch::temp_file_in(&home_dir, ".layer-")
        .unwrap()
        .into_parts();
    // Not this process's: another owner's temp file, and a file that is no temp file.
    let other = home_dir.join("blob-4194305.1.abcdefgh");
    std::fs::write(&other, "x").unwrap();
    let blob = home_dir.join("finished");
    std::fs::write(&blob, "x").unwrap();

    assert!(!scratch::stopping());
    scratch::remove_all();

    assert!(scratch::stopping());
    assert!(!scratch_dir.path().exists(), "the scratch dir is gone");
    assert!(
        !writing.path().exists() && !half.exists(),
        "the temp files are gone"
    );
    assert!(other.exists() && blob.exists(), "nothing else is touched");
    let err = ScratchDir::create(root.path(), "strata-scratch-").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted);
    let err = scratch::temp_file_in(&home_dir, "blob-").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted);
    drop((scratch_dir, home));
}
