#![no_main]
//! An os-release file, the build root's `/etc/os-release` (its `ID` and `VERSION_ID` name the
//! target distro when the run image does not).

use libfuzzer_sys::fuzz_target;
use strata_engine::osrelease::parse;

fuzz_target!(|data: &[u8]| {
    let Some(text) = strata_fuzz::text(data) else {
        return;
    };
    match parse(text) {
        Ok(vars) => {
            for (name, value) in vars {
                assert!(!name.is_empty() && !name.contains('='));
                assert!(!value.contains(['\n', '\0']));
            }
        }
        Err(e) => {
            assert!(e.line >= 1 && e.line <= text.split('\n').count());
            strata_fuzz::render_chain(&e);
        }
    }
});
