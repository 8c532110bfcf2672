#![no_main]
//! An image's SBOM layer, as `strata sbom download` reads and writes it: whatever the tar
//! holds, nothing is written outside the output directory's `layers/sbom/`.

use std::fs;

use libfuzzer_sys::fuzz_target;
use strata_exporter::sbomdownload::{read_layer, sniff_compression, write_tree};

fuzz_target!(|data: &[u8]| {
    let jail = strata_fuzz::scratch().join("jail");
    let _ = fs::remove_dir_all(&jail);
    let out = jail.join("out");
    fs::create_dir_all(&out).unwrap();
    match read_layer(data, sniff_compression(data), "oci:fuzz", "sha256:0") {
        Ok(files) => {
            if let Err(e) = write_tree(&files, &out) {
                strata_fuzz::render_chain(&e);
            }
        }
        Err(e) => strata_fuzz::render_chain(&e),
    }
    let top: Vec<String> = fs::read_dir(&jail)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top, ["out"], "an entry escaped the output directory");
    for entry in fs::read_dir(&out).unwrap() {
        assert_eq!(entry.unwrap().file_name(), "layers", "outside layers/");
    }
});
