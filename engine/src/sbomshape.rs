//! The basic shape of an SBOM file a buildpack writes, checked before the file is kept.
//!
//! A buildpack declares the formats it writes in `sbom-formats`; [`check`] then makes sure a
//! file named `*.sbom.<ext>.json` really is JSON of that format, so that an image never ships a
//! truncated, empty or mislabelled SBOM. Only what identifies each format is checked (a
//! `CycloneDX` `bomFormat` and `specVersion`, an SPDX `spdxVersion` and `SPDXID`, Syft's
//! `artifacts`), not the whole schema: a file that passes is kept byte for byte, so newer
//! versions of each format still pass.

use serde::Deserialize;
use serde::de::IgnoredAny;

/// Why an SBOM file is not of its format: a sentence for an error message.
pub type ShapeError = String;

/// The fields that identify each format, read without keeping the rest of the document (an
/// SBOM may be hundreds of megabytes): every other field, and every value that is not a string,
/// is skipped as it is parsed.
#[derive(Deserialize)]
struct Shape {
    #[serde(rename = "bomFormat", default)]
    bom_format: Kind,
    #[serde(rename = "specVersion", default)]
    spec_version: Kind,
    #[serde(rename = "spdxVersion", default)]
    spdx_version: Kind,
    #[serde(rename = "SPDXID", default)]
    spdx_id: Kind,
    #[serde(default)]
    artifacts: Kind,
}

/// What a JSON value is, keeping only a string's text.
#[derive(Default)]
enum Kind {
    /// Absent, or a number, boolean, null or object.
    #[default]
    Other,
    /// A string.
    String(String),
    /// An array (its elements skipped).
    Array,
}

impl Kind {
    fn string(&self) -> Option<&str> {
        match self {
            Kind::String(s) => Some(s),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Kind;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Kind, E> {
                Ok(Kind::String(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Kind::Array)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Kind::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Kind, E> {
                Ok(Kind::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Kind, E> {
                Ok(Kind::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Kind, E> {
                Ok(Kind::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Kind, E> {
                Ok(Kind::Other)
            }
            fn visit_unit<E>(self) -> Result<Kind, E> {
                Ok(Kind::Other)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Checks that `bytes` parse as JSON of the basic shape of the format with extension `ext`
/// (`cdx`, `spdx` or `syft`).
///
/// # Errors
/// What is wrong with the file: not JSON, not an object, a field missing or of the wrong type.
pub fn check(ext: &str, bytes: &[u8]) -> Result<(), ShapeError> {
    let shape: Shape = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            "it is not a JSON object".to_owned()
        } else {
            format!("it is not valid JSON: {e}")
        }
    })?;
    match ext {
        "cdx" => {
            if shape.bom_format.string() != Some("CycloneDX") {
                return Err("it is not CycloneDX: `bomFormat` is not \"CycloneDX\"".to_owned());
            }
            if shape.spec_version.string().is_none() {
                return Err("it is not CycloneDX: it has no `specVersion` string".to_owned());
            }
        }
        "spdx" => {
            if !shape
                .spdx_version
                .string()
                .is_some_and(|v| v.starts_with("SPDX-"))
            {
                return Err("it is not SPDX: `spdxVersion` is not like \"SPDX-2.3\"".to_owned());
            }
            if shape.spdx_id.string().is_none() {
                return Err("it is not SPDX: it has no `SPDXID` string".to_owned());
            }
        }
        "syft" => {
            if !matches!(shape.artifacts, Kind::Array) {
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
        let nested = br#"{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"a":[1,{"b":null}]}],"x":true}"#;
        assert!(check("cdx", nested).is_ok());
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
            ("syft", br#"{"artifacts":"x"}"#),
            ("cdx", br#"{"bomFormat":"CycloneDX","specVersion":1.5}"#),
            ("cdx", br#"{"bomFormat":["CycloneDX"],"specVersion":"1.5"}"#),
        ] {
            assert!(
                check(ext, bytes).is_err(),
                "{ext}: {}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}
