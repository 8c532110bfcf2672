#![no_main]
//! `strata.toml`, the workspace file (its service globs match in an empty directory).

use libfuzzer_sys::fuzz_target;
use strata_planner::Workspace;

fuzz_target!(|data: &[u8]| {
    let Some(text) = strata_fuzz::text(data) else {
        return;
    };
    let root = strata_fuzz::scratch();
    if let Err(e) = Workspace::parse(&root.join("strata.toml"), root, text) {
        strata_fuzz::render(e.as_ref());
    }
});
