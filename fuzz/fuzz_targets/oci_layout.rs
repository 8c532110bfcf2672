#![no_main]
//! An OCI layout's JSON, read as a run image: `index.json`, the manifest and the config; then
//! its layer decompressed and checked against the config's diffIDs, as before a build.
//!
//! The input is `index NUL manifest NUL config [NUL layer]`. Written as a layout, each blob
//! under its real digest; in the index, manifest and config `@MANIFEST_DIGEST@`, `@MANIFEST_SIZE@`,
//! `@CONFIG_DIGEST@`, `@CONFIG_SIZE@`, `@LAYER_DIGEST@` and `@LAYER_SIZE@` are replaced by
//! the values for those blobs, so the fuzzer gets past digest checks to the readers.

use std::fs;

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use strata_exporter::layout::Layout;
use strata_exporter::reference::ImageRef;
use strata_exporter::runimage::RunImage;
use strata_exporter::runproof::verify_layers;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |&b| b == 0);
    let (Some(index), Some(manifest), Some(config)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let layer = parts.next().unwrap_or_default();

    let dir = strata_fuzz::scratch().join("layout");
    let _ = fs::remove_dir_all(&dir);
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let put = |bytes: &[u8]| {
        let hex = format!("{:x}", Sha256::digest(bytes));
        fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len().to_string())
    };
    let fill = |text: &[u8], name: &str, (digest, size): &(String, String)| -> Vec<u8> {
        String::from_utf8_lossy(text)
            .replace(&format!("@{name}_DIGEST@"), digest)
            .replace(&format!("@{name}_SIZE@"), size)
            .into_bytes()
    };
    let layer = put(layer);
    let config = put(&fill(config, "LAYER", &layer));
    let manifest = put(&fill(&fill(manifest, "CONFIG", &config), "LAYER", &layer));
    fs::write(dir.join("index.json"), fill(index, "MANIFEST", &manifest)).unwrap();

    if let Ok(layout) = Layout::open(&dir) {
        let _ = layout.tags();
    }
    let reference = ImageRef::OciLayout {
        dir,
        tag: "fuzz".to_owned(),
    };
    match RunImage::load(&reference) {
        Ok(image) => {
            let _ = image.cnb_user();
            let _ = image.top_layer();
            if let Err(e) = image.target() {
                strata_fuzz::render_chain(&e);
            }
            if let Err(e) = verify_layers(&image, None) {
                strata_fuzz::render_chain(&e);
            }
        }
        Err(e) => strata_fuzz::render_chain(&e),
    }
});
