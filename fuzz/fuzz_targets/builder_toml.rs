#![no_main]
//! `builder.toml` (its buildpack uris point into an empty directory, so they fail to load).

use libfuzzer_sys::fuzz_target;
use strata_planner::Builder;

fuzz_target!(|data: &[u8]| {
    let Some(text) = strata_fuzz::text(data) else {
        return;
    };
    let path = strata_fuzz::scratch().join("builder.toml");
    if let Err(e) = Builder::parse(path, text) {
        strata_fuzz::render(&e);
    }
});
