//! The basic shape of an SBOM file a buildpack writes, checked before the file is kept.
//!
//! A buildpack declares the formats it writes in `sbom-formats`; [`check`] then makes sure a
//! file named `*.sbom.<ext>.json` really is JSON of that format, so that an image never ships a
//! truncated, empty or mislabelled SBOM. Only what identifies each format is checked (a
//! `CycloneDX` `bomFormat` and `specVersion`, an SPDX `spdxVersion` and `SPDXID`, Syft's
//! `artifacts`), not the whole schema: a file that passes is kept byte for byte, so newer
//! versions of each format still pass.

use serde_json::Value;

/// Why an SBOM file is not of its format: a sentence for an error message.
pub type ShapeError = String;

/// Checks that `bytes` parse as JSON of the basic shape of the format with extension `ext`
/// (`cdx`, `spdx` or `syft`).
///
/// # Errors
/// What is wrong with the file: not JSON, not an object, a field missing or of the wrong type.
pub fn check(ext: &str, bytes: &[u8]) -> Result<(), ShapeError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("it is not valid JSON: {e}"))?;
    let Some(object) = value.as_object() else {
        return Err("it is not a JSON object".to_owned());
    };
    let string = |key: &str| object.get(key).and_then(Value::as_str);
    match ext {
        "cdx" => {
            if string("bomFormat") != Some("CycloneDX") {
                return Err("it is not CycloneDX: `bomFormat` is not \"CycloneDX\"".to_owned());
            }
            if string("specVersion").is_none() {
                return Err("it is not CycloneDX: it has no `specVersion` string".to_owned());
            }
        }
        "spdx" => {
            if !string("spdxVersion").is_some_and(|v| v.starts_with("SPDX-")) {
                return Err("it is not SPDX: `spdxVersion` is not like \"SPDX-2.3\"".to_owned());
            }
            if string("SPDXID").is_none() {
                return Err("it is not SPDX: it has no `SPDXID` string".to_owned());
            }
        }
        "syft" => {
            if !object.get("artifacts").is_some_and(Value::is_array) {
                return Err("it is not Syft JSON: it has no `artifacts` array".to_owned());
            }
        }
        other => return Err(format!("`{other}` is no SBOM format strata knows")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn each_format_needs_its_own_fields() {
        assert!(check("cdx", br#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#).is_ok());
        assert!(
            check(
                "spdx",
                br#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT"}"#
            )
            .is_ok()
        );
        assert!(check("syft", br#"{"artifacts":[]}"#).is_ok());
        for (ext, bytes) in [
            ("cdx", &br#"{"bomFormat":"CycloneDX""#[..]),
            (
                "cdx",
                br#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT"}"#,
            ),
            ("cdx", b"[]"),
            ("cdx", b""),
            ("spdx", br#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#),
            ("spdx", br#"{"spdxVersion":"2.3","SPDXID":"x"}"#),
            ("syft", br#"{"artifacts":{}}"#),
        ] {
            assert!(
                check(ext, bytes).is_err(),
                "{ext}: {}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}
