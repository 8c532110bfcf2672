#![no_main]
//! An env file's name (`NAME.append`, ...), from `env/`, `env.build/`, `env.launch/`.

use libfuzzer_sys::fuzz_target;
use strata_engine::env::parse_env_file_name;

fuzz_target!(|data: &[u8]| {
    let Some(name) = strata_fuzz::text(data) else {
        return;
    };
    match parse_env_file_name(name) {
        Ok(Some(parsed)) => assert!(!parsed.name.is_empty() && !parsed.name.contains('=')),
        Ok(None) => {}
        Err(e) => strata_fuzz::render_chain(&e),
    }
});
