#![no_main]
//! `buildpack.toml`, with its `[metadata.strata]` declared layers.

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strata_planner::BuildpackDescriptor;

fuzz_target!(|data: &[u8]| {
    let Some(text) = strata_fuzz::text(data) else {
        return;
    };
    let dir = Path::new("/nonexistent/buildpack");
    if let Err(e) = BuildpackDescriptor::parse(&dir.join("buildpack.toml"), text, dir) {
        strata_fuzz::render(e.as_ref());
    }
});
