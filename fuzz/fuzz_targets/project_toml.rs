#![no_main]
//! `project.toml`, schema 0.1 and 0.2.

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strata_planner::ProjectDescriptor;

fuzz_target!(|data: &[u8]| {
    let Some(text) = strata_fuzz::text(data) else {
        return;
    };
    if let Err(e) = ProjectDescriptor::parse(Path::new("/app/project.toml"), text) {
        strata_fuzz::render(e.as_ref());
    }
});
