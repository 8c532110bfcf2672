#![no_main]
//! An image reference (`oci:DIR:TAG`), as `--run-image`, `--output` and config files give it.

use libfuzzer_sys::fuzz_target;
use strata_exporter::reference::ImageRef;

fuzz_target!(|data: &[u8]| {
    let Some(input) = strata_fuzz::text(data) else {
        return;
    };
    match ImageRef::parse(input) {
        // What a reference prints must parse back to itself: lockfiles and labels record it.
        Ok(reference) => assert_eq!(
            ImageRef::parse(&reference.to_string()).ok(),
            Some(reference)
        ),
        Err(e) => strata_fuzz::render_chain(&e),
    }
});
