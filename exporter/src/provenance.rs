//! SLSA provenance of an image: an in-toto Statement v1
//! (<https://in-toto.io/Statement/v1>) whose predicate is SLSA Provenance v1
//! (<https://slsa.dev/provenance/v1>), with the image manifest as its one subject.
//!
//! The build type is [`BUILD_TYPE`]. Its parameters, as this module writes them:
//! - `externalParameters` (what the user chose): `source` (the app directory and, where it
//!   is in a git checkout, the commit), `service`, `builder`, `buildpacks` (the group detection
//!   chose: `id`, `version`), `runImage`, `buildImage` (names), `env` (the NAMES of the build
//!   env given, sorted; never a value, which may be a secret), `execEnv`;
//! - `internalParameters` (what strata fixed): `sourceDateEpoch`, `layerCompression`,
//!   `launcher`;
//! - `resolvedDependencies`: one resource descriptor each for the app's source tree
//!   (`digest.blake3`: strata's source tree digest of every file's path, mode and content;
//!   `digest.gitCommit` in a git checkout), the builder (`sha256` of its manifest, or of its
//!   `builder.toml`), every buildpack (`blake3` of its directory, as task keys have it), the run
//!   image and the build image (`sha256` of their manifests).
//!
//! `runDetails` has the builder id (`https://github.com/strata-build/strata`, with strata's
//! version) and the start and finish times. Times live here, outside the image, so the image
//! digest stays reproducible; the statement itself is not (and need not be).

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// `predicateType` of SLSA Provenance v1.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";

/// strata's build type: a Cloud Native Buildpacks build by strata, version 1 of the
/// parameters this module documents.
pub const BUILD_TYPE: &str = "https://github.com/strata-build/strata/buildtypes/cnb/v1";

/// The builder id in `runDetails`.
pub const BUILDER_ID: &str = "https://github.com/strata-build/strata";

/// A digest by algorithm (`sha256`, `blake3`, `gitCommit`), hex.
pub type DigestSet = BTreeMap<String, String>;

/// Something the build used, named and by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// What it is called (`oci:run:24`, `docker://host/builder:1`, `builder.toml`).
    pub name: String,
    /// Its digests.
    pub digest: DigestSet,
}

/// A buildpack of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildpackUsed {
    /// Its id.
    pub id: String,
    /// Its version.
    pub version: String,
    /// blake3 of its directory, hex.
    pub blake3: String,
}

/// Everything the statement says about one image's build.
#[derive(Debug, Clone)]
pub struct BuildFacts {
    /// The image as the user names it (`oci:out:app`, `docker://host/repo:tag`).
    pub image: String,
    /// Its manifest digest, `sha256:<hex>`.
    pub manifest_digest: String,
    /// The service's name.
    pub service: String,
    /// The app directory, as a path or URI.
    pub source: String,
    /// strata's digest of the app's source tree, hex.
    pub source_blake3: String,
    /// The git commit the app directory is checked out at, when it is in a git checkout.
    pub git_commit: Option<String>,
    /// The builder, when one was given.
    pub builder: Option<Dependency>,
    /// The buildpack group, in order.
    pub buildpacks: Vec<BuildpackUsed>,
    /// The run image; `None` for strata's built-in base.
    pub run_image: Option<Dependency>,
    /// The build image; `None` when buildpacks ran on the host.
    pub build_image: Option<Dependency>,
    /// The names of the build env given (values are never recorded).
    pub env_names: Vec<String>,
    /// `CNB_EXEC_ENV`.
    pub exec_env: String,
    /// `SOURCE_DATE_EPOCH` the image was made with.
    pub source_date_epoch: u64,
    /// `none`, `gzip` or `zstd`.
    pub compression: String,
    /// Whether the image has the CNB launcher.
    pub launcher: bool,
    /// When the build started and finished.
    pub started: SystemTime,
    pub finished: SystemTime,
}

#[derive(Serialize)]
struct Statement<'a> {
    #[serde(rename = "_type")]
    kind: &'static str,
    subject: Vec<Resource<'a>>,
    #[serde(rename = "predicateType")]
    predicate_type: &'static str,
    predicate: Predicate<'a>,
}

#[derive(Serialize)]
struct Resource<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<String>,
    digest: DigestSet,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'static str, String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Predicate<'a> {
    build_definition: BuildDefinition<'a>,
    run_details: RunDetails,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildDefinition<'a> {
    build_type: &'static str,
    external_parameters: serde_json::Value,
    internal_parameters: serde_json::Value,
    resolved_dependencies: Vec<Resource<'a>>,
}

#[derive(Serialize)]
struct RunDetails {
    builder: serde_json::Value,
    metadata: serde_json::Value,
}

/// `sha256:<hex>` as a digest set.
pub fn sha256_set(digest: &str) -> DigestSet {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    DigestSet::from([("sha256".to_owned(), hex.to_owned())])
}

/// RFC 3339 in UTC, to the second.
fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The statement, as JSON bytes (keys in a fixed order).
///
/// # Errors
/// Never in practice: serialising plain values.
pub fn statement(facts: &BuildFacts) -> Result<Vec<u8>, serde_json::Error> {
    let mut source_digest = DigestSet::from([("blake3".to_owned(), facts.source_blake3.clone())]);
    if let Some(commit) = &facts.git_commit {
        source_digest.insert("gitCommit".to_owned(), commit.clone());
    }
    let mut dependencies = vec![Resource {
        name: Some("source"),
        uri: Some(facts.source.clone()),
        digest: source_digest,
        annotations: None,
    }];
    if let Some(builder) = &facts.builder {
        dependencies.push(Resource {
            name: Some("builder"),
            uri: Some(builder.name.clone()),
            digest: builder.digest.clone(),
            annotations: None,
        });
    }
    for bp in &facts.buildpacks {
        dependencies.push(Resource {
            name: Some("buildpack"),
            uri: Some(format!("urn:cnb:buildpack:{}@{}", bp.id, bp.version)),
            digest: DigestSet::from([("blake3".to_owned(), bp.blake3.clone())]),
            annotations: Some(BTreeMap::from([
                ("id", bp.id.clone()),
                ("version", bp.version.clone()),
            ])),
        });
    }
    for (name, image) in [
        ("runImage", &facts.run_image),
        ("buildImage", &facts.build_image),
    ] {
        if let Some(image) = image {
            dependencies.push(Resource {
                name: Some(name),
                uri: Some(image.name.clone()),
                digest: image.digest.clone(),
                annotations: None,
            });
        }
    }
    let mut env_names = facts.env_names.clone();
    env_names.sort();
    env_names.dedup();
    let external = serde_json::json!({
        "source": {
            "uri": facts.source,
            "gitCommit": facts.git_commit,
        },
        "service": facts.service,
        "builder": facts.builder.as_ref().map(|b| &b.name),
        "buildpacks": facts.buildpacks.iter().map(|bp| serde_json::json!({
            "id": bp.id,
            "version": bp.version,
        })).collect::<Vec<_>>(),
        "runImage": facts.run_image.as_ref().map(|i| &i.name),
        "buildImage": facts.build_image.as_ref().map(|i| &i.name),
        "env": env_names,
        "execEnv": facts.exec_env,
    });
    let internal = serde_json::json!({
        "sourceDateEpoch": facts.source_date_epoch,
        "layerCompression": facts.compression,
        "launcher": facts.launcher,
    });
    let statement = Statement {
        kind: STATEMENT_TYPE,
        subject: vec![Resource {
            name: Some(&facts.image),
            uri: None,
            digest: sha256_set(&facts.manifest_digest),
            annotations: None,
        }],
        predicate_type: PREDICATE_TYPE,
        predicate: Predicate {
            build_definition: BuildDefinition {
                build_type: BUILD_TYPE,
                external_parameters: external,
                internal_parameters: internal,
                resolved_dependencies: dependencies,
            },
            run_details: RunDetails {
                builder: serde_json::json!({
                    "id": BUILDER_ID,
                    "version": { "strata": env!("CARGO_PKG_VERSION") },
                }),
                metadata: serde_json::json!({
                    "startedOn": rfc3339(facts.started),
                    "finishedOn": rfc3339(facts.finished),
                }),
            },
        },
    };
    serde_json::to_vec(&statement)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn facts() -> BuildFacts {
        BuildFacts {
            image: "oci:out:app".to_owned(),
            manifest_digest: format!("sha256:{}", "ab".repeat(32)),
            service: "app".to_owned(),
            source: "file:///src/app".to_owned(),
            source_blake3: "cd".repeat(32),
            git_commit: Some("ef".repeat(20)),
            builder: None,
            buildpacks: vec![BuildpackUsed {
                id: "examples/node".to_owned(),
                version: "1.0.0".to_owned(),
                blake3: "12".repeat(32),
            }],
            run_image: Some(Dependency {
                name: "oci:run:24".to_owned(),
                digest: sha256_set(&format!("sha256:{}", "34".repeat(32))),
            }),
            build_image: None,
            env_names: vec!["B".to_owned(), "A".to_owned(), "B".to_owned()],
            exec_env: "production".to_owned(),
            source_date_epoch: 315_532_801,
            compression: "gzip".to_owned(),
            launcher: true,
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            finished: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_042),
        }
    }

    #[test]
    fn the_statement_names_the_image_and_what_built_it_but_no_env_value() {
        let bytes = statement(&facts()).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["_type"], STATEMENT_TYPE);
        assert_eq!(value["predicateType"], PREDICATE_TYPE);
        assert_eq!(value["subject"][0]["digest"]["sha256"], "ab".repeat(32));
        let definition = &value["predicate"]["buildDefinition"];
        assert_eq!(definition["buildType"], BUILD_TYPE);
        assert_eq!(
            definition["externalParameters"]["env"],
            serde_json::json!(["A", "B"])
        );
        let deps = definition["resolvedDependencies"].as_array().unwrap();
        assert_eq!(deps[0]["digest"]["gitCommit"], "ef".repeat(20));
        assert_eq!(deps[1]["uri"], "urn:cnb:buildpack:examples/node@1.0.0");
        assert_eq!(deps[2]["name"], "runImage");
        let metadata = &value["predicate"]["runDetails"]["metadata"];
        assert_eq!(metadata["startedOn"], "2023-11-14T22:13:20Z");
        assert_eq!(metadata["finishedOn"], "2023-11-14T22:14:02Z");
    }
}
