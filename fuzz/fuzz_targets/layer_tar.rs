#![no_main]
//! A layer tar as the store gives one back (plain, or gzip when it starts with the gzip
//! magic), unpacked as a cached layer is: nothing may land outside the target directory.

use std::fs;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strata_exporter::unpack::unpack_tar;

fuzz_target!(|data: &[u8]| {
    let jail = strata_fuzz::scratch().join("jail");
    let _ = fs::remove_dir_all(&jail);
    let dst = jail.join("a/b/dst");
    fs::create_dir_all(&dst).unwrap();
    let gzip = data.starts_with(&[0x1f, 0x8b]);
    if let Err(e) = unpack_tar(data, gzip, &dst) {
        strata_fuzz::render_chain(&e);
    }
    assert_only(&jail, &["a"]);
    assert_only(&jail.join("a"), &["b"]);
    assert_only(&jail.join("a/b"), &["dst"]);
});

/// `dir` holds exactly `names`: an entry that escaped the unpack directory would show here.
fn assert_only(dir: &Path, names: &[&str]) {
    let mut found: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, names, "an entry escaped into {}", dir.display());
}
