#![no_main]
//! A layer tar as the store gives one back (plain, gzip or zstd by its magic), unpacked as a cached layer is: nothing may land outside the target directory, and
//! no file inside may be a hard link to one outside it.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strata_exporter::archive::Compression;
use strata_exporter::unpack::unpack_tar;

fuzz_target!(|data: &[u8]| {
    let jail = strata_fuzz::scratch().join("jail");
    let _ = fs::remove_dir_all(&jail);
    let dst = jail.join("a/b/dst");
    fs::create_dir_all(&dst).unwrap();
    let compression = if data.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    };
    if let Err(e) = unpack_tar(data, compression, &dst, Path::new("")) {
        strata_fuzz::render_chain(&e);
    }
    assert_only(&jail, &["a"]);
    assert_only(&jail.join("a"), &["b"]);
    assert_only(&jail.join("a/b"), &["dst"]);
    let mut links = HashMap::new();
    count_links(&dst, &mut links);
    for (inode, (nlink, seen)) in links {
        assert_eq!(
            nlink,
            seen,
            "inode {inode} has links outside {}",
            dst.display()
        );
    }
});

/// For each regular file under `dir` (not following symlinks): its link count and how many
/// of its names are under `dir`.
fn count_links(dir: &Path, links: &mut HashMap<u64, (u64, u64)>) {
    // A directory the tar made unreadable (mode 000) is skipped when not fuzzing as root.
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            count_links(&path, links);
        } else if meta.is_file() {
            links.entry(meta.ino()).or_insert((meta.nlink(), 0)).1 += 1;
        }
    }
}

/// `dir` holds exactly `names`: an entry that escaped the unpack directory would show here.
fn assert_only(dir: &Path, names: &[&str]) {
    let mut found: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, names, "an entry escaped into {}", dir.display());
}
