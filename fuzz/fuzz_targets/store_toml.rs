#![no_main]
//! `store.toml` in a buildpack's layers directory, under old and new Buildpack APIs.

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strata_engine::layers::parse_metadata_toml;

fuzz_target!(|data: &[u8]| {
    let Some(text) = strata_fuzz::text(data) else {
        return;
    };
    let path = Path::new("/layers/fuzz/store.toml");
    for api in ["0.5", "0.8", "0.12"] {
        if let Err(e) = parse_metadata_toml(path, text, "fuzz", api) {
            strata_fuzz::render_chain(&e);
        }
    }
});
