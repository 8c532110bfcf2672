//! The SBOM documents strata writes itself: `CycloneDX` 1.5 JSON and SPDX 2.3 JSON of one
//! [`Inventory`] (the files of a layer with their hashes, the packages of a run image).
//!
//! Both formats are written from `serde_json` values rather than through a crate: the crates
//! that model them (`cyclonedx-bom`, `spdx-rs`) are large for the two small, fixed document
//! shapes needed here, and `spdx-rs` is no longer maintained. What is written is checked with
//! the formats' own validators (the `CycloneDX` JSON schema, `pyspdxtools`) in the CLI tests.
//!
//! Documents are reproducible: the inventory is sorted and deduplicated, the only time is the
//! image's fixed `created` time (SPDX requires one), and the `CycloneDX` serial number and the
//! SPDX document namespace are a name-based (version 5) UUID of the document's own content,
//! so the same inventory gives the same bytes on every machine and path.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha1::{Digest as _, Sha1};

/// The creating tool, as both formats name it.
pub const TOOL_NAME: &str = "strata";
/// Its version.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The RFC 4122 URL namespace, which the document UUIDs are derived in.
const UUID_NAMESPACE: [u8; 16] = [
    0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
];

/// What kind of thing a document describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectKind {
    /// A layer of buildpack output, the app, the launcher.
    Application,
    /// A run image: an operating system's packages.
    OperatingSystem,
    /// A whole image.
    Container,
}

impl SubjectKind {
    fn cyclonedx(self) -> &'static str {
        match self {
            SubjectKind::Application => "application",
            SubjectKind::OperatingSystem => "operating-system",
            SubjectKind::Container => "container",
        }
    }

    fn spdx(self) -> &'static str {
        match self {
            SubjectKind::Application => "APPLICATION",
            SubjectKind::OperatingSystem => "OPERATING-SYSTEM",
            SubjectKind::Container => "CONTAINER",
        }
    }
}

/// What a document describes: its root component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// A name people read: `examples/runtime:greeter`, `app`, the run image's reference.
    pub name: String,
    /// Its version, where it has one.
    pub version: Option<String>,
    /// Its kind.
    pub kind: SubjectKind,
}

/// A regular file, with its hashes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileItem {
    /// Its path in the image, relative to the root (`layers/x/y/bin/tool`).
    pub path: String,
    /// Lowercase hex SHA-256 of its content.
    pub sha256: String,
    /// Lowercase hex SHA-1 of its content (SPDX requires one).
    pub sha1: String,
}

/// A package, as a package manager knows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Package {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: Option<String>,
    /// Its package URL (`pkg:deb/debian/base-files@12.4?arch=amd64`).
    pub purl: Option<String>,
    /// Its license names as its metadata gives them (not necessarily SPDX identifiers).
    pub licenses: Vec<String>,
    /// Its architecture.
    pub arch: Option<String>,
    /// The source package it was built from.
    pub source: Option<String>,
}

/// Everything a document lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Files, by path.
    pub files: Vec<FileItem>,
    /// Packages, by name.
    pub packages: Vec<Package>,
}

impl Inventory {
    /// Sorts both lists and drops duplicates: what every document is written from.
    pub fn normalize(&mut self) {
        self.files.sort();
        self.files.dedup();
        for package in &mut self.packages {
            package.licenses.sort();
            package.licenses.dedup();
        }
        self.packages.sort();
        self.packages.dedup();
    }

    /// Adds everything of `other`.
    pub fn extend(&mut self, other: Inventory) {
        self.files.extend(other.files);
        self.packages.extend(other.packages);
    }
}

/// A name-based UUID (RFC 4122 version 5) of `name`.
fn uuid_v5(name: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(UUID_NAMESPACE);
    hasher.update(name);
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The UUID of a document: of its format and its content without the UUID.
fn content_uuid(format: &str, document: &Value) -> String {
    let mut name = format.as_bytes().to_vec();
    name.push(0);
    name.extend(document.to_string().as_bytes());
    uuid_v5(&name)
}

/// Pretty JSON with a final newline.
fn to_bytes(document: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(document).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The `bom-ref`s of packages: the purl, else `pkg:NAME@VERSION`; made unique.
fn package_refs(packages: &[Package]) -> Vec<String> {
    let mut used = BTreeSet::new();
    packages
        .iter()
        .map(|p| {
            let base = p.purl.clone().unwrap_or_else(|| match &p.version {
                Some(v) => format!("pkg:{}@{v}", p.name),
                None => format!("pkg:{}", p.name),
            });
            let mut candidate = base.clone();
            let mut n = 1;
            while !used.insert(candidate.clone()) {
                n += 1;
                candidate = format!("{base}#{n}");
            }
            candidate
        })
        .collect()
}

/// The `CycloneDX` 1.5 JSON document of `inventory`, about `subject`, made at `created`
/// (RFC 3339).
pub fn cyclonedx(subject: &Subject, inventory: &Inventory, created: &str) -> Vec<u8> {
    let mut root = json!({
        "type": subject.kind.cyclonedx(),
        "bom-ref": "subject",
        "name": subject.name,
    });
    if let Some(version) = &subject.version {
        root["version"] = json!(version);
    }
    let refs = package_refs(&inventory.packages);
    let mut components = Vec::new();
    for (package, bom_ref) in inventory.packages.iter().zip(&refs) {
        let mut c = json!({ "type": "library", "bom-ref": bom_ref, "name": package.name });
        if let Some(version) = &package.version {
            c["version"] = json!(version);
        }
        if let Some(purl) = &package.purl {
            c["purl"] = json!(purl);
        }
        if !package.licenses.is_empty() {
            c["licenses"] = package
                .licenses
                .iter()
                .map(|l| json!({ "license": { "name": l } }))
                .collect();
        }
        let mut properties = Vec::new();
        if let Some(arch) = &package.arch {
            properties.push(json!({ "name": "strata:package:architecture", "value": arch }));
        }
        if let Some(source) = &package.source {
            properties.push(json!({ "name": "strata:package:source", "value": source }));
        }
        if !properties.is_empty() {
            c["properties"] = Value::Array(properties);
        }
        components.push(c);
    }
    for file in &inventory.files {
        components.push(json!({
            "type": "file",
            "bom-ref": format!("file:/{}", file.path),
            "name": format!("/{}", file.path),
            "hashes": [
                { "alg": "SHA-1", "content": file.sha1 },
                { "alg": "SHA-256", "content": file.sha256 },
            ],
        }));
    }
    let mut document = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": created,
            "tools": { "components": [
                { "type": "application", "name": TOOL_NAME, "version": TOOL_VERSION }
            ] },
            "component": root,
        },
        "components": components,
    });
    let uuid = content_uuid("cyclonedx", &document);
    document["serialNumber"] = json!(format!("urn:uuid:{uuid}"));
    to_bytes(&document)
}

/// `text` as the idstring of an SPDX identifier: letters, digits, `.` and `-`.
fn spdx_idstring(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else if c == '+' {
                'p'
            } else {
                '-'
            }
        })
        .collect()
}

/// The SPDX id of the package every document describes.
const SPDX_ROOT: &str = "SPDXRef-Subject";

/// The package a document describes, containing its files.
fn spdx_root(subject: &Subject, inventory: &Inventory) -> Value {
    let mut root = json!({
        "SPDXID": SPDX_ROOT,
        "name": subject.name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": subject.kind.spdx(),
    });
    if let Some(version) = &subject.version {
        root["versionInfo"] = json!(version);
    }
    if !inventory.files.is_empty() {
        // The package contains the files, so they were analyzed: SPDX then wants the
        // verification code, the SHA-1 of the files' sorted SHA-1s (SPDX 2.3 section 7.9).
        let mut sha1s: Vec<&str> = inventory.files.iter().map(|f| f.sha1.as_str()).collect();
        sha1s.sort_unstable();
        root["filesAnalyzed"] = json!(true);
        root["packageVerificationCode"] = json!({
            "packageVerificationCodeValue": hex::encode(Sha1::digest(sha1s.concat().as_bytes())),
        });
    }
    root
}

/// One package with SPDX id `id`; its license names become `LicenseRef-`s in `license_refs`.
fn spdx_package(id: &str, package: &Package, license_refs: &mut BTreeMap<String, String>) -> Value {
    let declared = if package.licenses.is_empty() {
        "NOASSERTION".to_owned()
    } else {
        package
            .licenses
            .iter()
            .map(|name| {
                let id = format!("LicenseRef-{}", spdx_idstring(name));
                license_refs
                    .entry(id.clone())
                    .or_insert_with(|| name.clone());
                id
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let mut p = json!({
        "SPDXID": id,
        "name": package.name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": declared,
        "copyrightText": "NOASSERTION",
    });
    if let Some(version) = &package.version {
        p["versionInfo"] = json!(version);
    }
    if let Some(purl) = &package.purl {
        p["externalRefs"] = json!([{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": purl,
        }]);
    }
    if let Some(source) = &package.source {
        p["sourceInfo"] = json!(format!("built from the source package {source}"));
    }
    p
}

/// The SPDX 2.3 JSON document of `inventory`, about `subject`, made at `created` (RFC 3339,
/// whole seconds). License names that are not SPDX expressions are kept as `LicenseRef-`s
/// with their text in `hasExtractedLicensingInfos`.
pub fn spdx(subject: &Subject, inventory: &Inventory, created: &str) -> Vec<u8> {
    let mut license_refs: BTreeMap<String, String> = BTreeMap::new();
    let mut packages = vec![spdx_root(subject, inventory)];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": SPDX_ROOT,
    })];
    let contains = |id: &str| {
        json!({
            "spdxElementId": SPDX_ROOT,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        })
    };
    for (i, package) in inventory.packages.iter().enumerate() {
        let id = format!("SPDXRef-Package-{}", i + 1);
        packages.push(spdx_package(&id, package, &mut license_refs));
        relationships.push(contains(&id));
    }
    let mut files = Vec::new();
    for (i, file) in inventory.files.iter().enumerate() {
        let id = format!("SPDXRef-File-{}", i + 1);
        files.push(json!({
            "SPDXID": id,
            "fileName": format!("./{}", file.path),
            "checksums": [
                { "algorithm": "SHA1", "checksumValue": file.sha1 },
                { "algorithm": "SHA256", "checksumValue": file.sha256 },
            ],
            "licenseConcluded": "NOASSERTION",
            "copyrightText": "NOASSERTION",
        }));
        relationships.push(contains(&id));
    }
    let mut document = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": subject.name,
        "creationInfo": {
            "created": created,
            "creators": [format!("Tool: {TOOL_NAME}-{TOOL_VERSION}")],
        },
        "packages": packages,
        "files": files,
        "relationships": relationships,
    });
    if !license_refs.is_empty() {
        document["hasExtractedLicensingInfos"] = license_refs
            .iter()
            .map(|(id, name)| {
                json!({
                    "licenseId": id,
                    "name": name,
                    "extractedText": format!("License: {name}"),
                })
            })
            .collect();
    }
    let uuid = content_uuid("spdx", &document);
    document["documentNamespace"] = json!(format!(
        "https://strata.invalid/spdxdocs/{}-{uuid}",
        spdx_idstring(&subject.name)
    ));
    to_bytes(&document)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> (Subject, Inventory) {
        let subject = Subject {
            name: "examples/runtime:greeter".to_owned(),
            version: Some("1.0".to_owned()),
            kind: SubjectKind::Application,
        };
        let mut inventory = Inventory {
            files: vec![
                FileItem {
                    path: "layers/b".to_owned(),
                    sha256: "22".repeat(32),
                    sha1: "2".repeat(40),
                },
                FileItem {
                    path: "layers/a".to_owned(),
                    sha256: "11".repeat(32),
                    sha1: "1".repeat(40),
                },
            ],
            packages: vec![Package {
                name: "base-files".to_owned(),
                version: Some("12.4".to_owned()),
                purl: Some("pkg:deb/debian/base-files@12.4?arch=amd64".to_owned()),
                licenses: vec!["GPL-2+".to_owned()],
                arch: Some("amd64".to_owned()),
                source: None,
            }],
        };
        inventory.normalize();
        (subject, inventory)
    }

    #[test]
    fn documents_are_a_function_of_their_content() {
        let (subject, inventory) = sample();
        let created = "1980-01-01T00:00:01Z";
        let cdx = cyclonedx(&subject, &inventory, created);
        assert_eq!(cdx, cyclonedx(&subject, &inventory, created));
        let doc: Value = serde_json::from_slice(&cdx).unwrap();
        let serial = doc["serialNumber"].as_str().unwrap();
        assert!(
            serial.starts_with("urn:uuid:") && serial.as_bytes()[23] == b'5',
            "{serial}"
        );
        assert_eq!(doc["components"][1]["name"], "/layers/a");

        let mut other = inventory.clone();
        other.files.pop();
        let changed: Value = serde_json::from_slice(&cyclonedx(&subject, &other, created)).unwrap();
        assert_ne!(changed["serialNumber"], doc["serialNumber"]);

        let spdx_doc: Value = serde_json::from_slice(&spdx(&subject, &inventory, created)).unwrap();
        assert_eq!(
            spdx_doc["packages"][1]["licenseDeclared"],
            "LicenseRef-GPL-2p"
        );
        assert_eq!(spdx_doc["files"][0]["fileName"], "./layers/a");
        assert!(
            spdx_doc["documentNamespace"]
                .as_str()
                .unwrap()
                .starts_with("https://strata.invalid/spdxdocs/examples-runtime-greeter-")
        );
    }

    #[test]
    fn the_uuid_is_rfc_4122_version_5() {
        assert_eq!(
            uuid_v5(b"http://www.example.com/"),
            "fcde3c85-2270-590f-9e7c-ee003d65e0e2"
        );
    }
}
