#![no_main]
//! The build plan a `bin/detect` writes.

use libfuzzer_sys::fuzz_target;
use strata_planner::BuildPlan;

fuzz_target!(|data: &[u8]| {
    let Some(text) = strata_fuzz::text(data) else {
        return;
    };
    if let Err(e) = BuildPlan::parse(text) {
        strata_fuzz::render_chain(&e);
    }
});
