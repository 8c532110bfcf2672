#![no_main]
//! A run image's `/var/lib/dpkg/status` and a `/usr/share/doc/<package>/copyright` file, as
//! the run image SBOM reads them: every package has a name and version, and the purl made of
//! them has no raw character a URL would split at.

use libfuzzer_sys::fuzz_target;
use strata_exporter::dpkg::{dep5_licenses, parse_status, purl};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for package in parse_status(&text) {
        assert!(!package.name.is_empty() && !package.version.is_empty());
        let purl = purl("debian", &package);
        let rest = purl.strip_prefix("pkg:deb/debian/").unwrap();
        let (name, _) = rest.split_once('@').unwrap();
        assert!(!name.contains(['/', '?', '#', '@', ' ']), "{purl}");
    }
    if let Some(licenses) = dep5_licenses(&text) {
        assert!(licenses.iter().all(|l| !l.is_empty() && !l.contains('\n')));
    }
});
