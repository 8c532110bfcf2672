//! The CNB labels an exported image carries, as serde types.
//!
//! Field names are the ones the CNB lifecycle writes, so CNB tools (`pack inspect`, rebasers)
//! can read strata images, and strata can read theirs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Label `io.buildpacks.lifecycle.metadata`.
pub const LIFECYCLE_LABEL: &str = "io.buildpacks.lifecycle.metadata";
/// Label `io.buildpacks.build.metadata`.
pub const BUILD_LABEL: &str = "io.buildpacks.build.metadata";
/// Label `io.buildpacks.project.metadata`.
pub const PROJECT_LABEL: &str = "io.buildpacks.project.metadata";
/// Label `io.buildpacks.exec-env`: the execution environment the app was built for.
pub const EXEC_ENV_LABEL: &str = "io.buildpacks.exec-env";

/// A layer referenced by its diffID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSha {
    /// The diffID.
    pub sha: String,
}

/// `io.buildpacks.lifecycle.metadata`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LifecycleMetadata {
    /// App slices, then the app layer.
    #[serde(default)]
    pub app: Vec<LayerSha>,
    /// The SBOM layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<LayerSha>,
    /// The config layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<LayerSha>,
    /// The launcher layer (none in an image built without the launcher).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launcher: Option<LayerSha>,
    /// The process-types layer.
    #[serde(
        default,
        rename = "process-types",
        skip_serializing_if = "Option::is_none"
    )]
    pub process_types: Option<LayerSha>,
    /// Each buildpack's layers, in group order.
    #[serde(default)]
    pub buildpacks: Vec<BuildpackLayersMetadata>,
    /// The run image the app sits on.
    #[serde(default, rename = "runImage")]
    pub run_image: RunImageMetadata,
    /// The execution environment the app was built for.
    #[serde(default, rename = "exec-env", skip_serializing_if = "Option::is_none")]
    pub exec_env: Option<String>,
}

/// One buildpack's entry in the lifecycle metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildpackLayersMetadata {
    /// The buildpack id.
    pub key: String,
    /// Its version.
    pub version: String,
    /// Its layers by name.
    #[serde(default)]
    pub layers: BTreeMap<String, LayerMetadata>,
    /// `store.toml`'s metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreMetadata>,
}

/// `store.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreMetadata {
    /// Its `[metadata]`.
    #[serde(default)]
    pub metadata: serde_json::Value,
}

/// One layer's entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerMetadata {
    /// Its diffID, when it is in the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    /// `<layer>.toml` `[metadata]`.
    #[serde(default)]
    pub data: serde_json::Value,
    /// Type flags.
    #[serde(default)]
    pub build: bool,
    /// Type flags.
    #[serde(default)]
    pub launch: bool,
    /// Type flags.
    #[serde(default)]
    pub cache: bool,
}

/// `runImage` in the lifecycle metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunImageMetadata {
    /// The diffID of the run image's top layer: rebase replaces everything up to it.
    #[serde(default, rename = "topLayer")]
    pub top_layer: String,
    /// The run image's manifest digest.
    #[serde(default)]
    pub reference: String,
    /// The run image's name, as given to the build.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Its mirrors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
}

/// `io.buildpacks.build.metadata`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildMetadata {
    /// The buildpacks of the group.
    #[serde(default)]
    pub buildpacks: Vec<BuildpackRef>,
    /// The processes.
    #[serde(default)]
    pub processes: Vec<ProcessMetadata>,
    /// The launcher: `{version, source: {git: {repository, commit}}}`; `{}` without one.
    #[serde(default)]
    pub launcher: serde_json::Value,
    /// The default process type.
    #[serde(
        default,
        rename = "buildpack-default-process-type",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_process: Option<String>,
}

/// A buildpack of the group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildpackRef {
    /// Its id.
    pub id: String,
    /// Its version.
    pub version: String,
    /// Its homepage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
}

/// A process in the build metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessMetadata {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The command.
    pub command: Vec<String>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Whether the launcher execs it directly (else through a shell: Buildpack API < 0.9).
    #[serde(default)]
    pub direct: bool,
    /// The buildpack that declared it.
    #[serde(rename = "buildpackID")]
    pub buildpack_id: String,
    /// Its working directory.
    #[serde(
        default,
        rename = "working-dir",
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    /// The execution environments it is for; empty for all.
    #[serde(default, rename = "exec-env", skip_serializing_if = "Vec::is_empty")]
    pub exec_env: Vec<String>,
}

/// A label value: compact JSON with sorted keys.
pub fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// `io.buildpacks.project.metadata` from `project.toml`, as pack writes it.
pub fn project_metadata(project: Option<&strata_planner::ProjectDescriptor>) -> serde_json::Value {
    let Some(source) = project.map(|p| &p.source).filter(|s| !s.is_empty()) else {
        return serde_json::json!({});
    };
    let mut metadata = toml_to_json(source);
    let version = metadata.as_object_mut().and_then(|m| m.remove("version"));
    serde_json::json!({
        "source": {
            "type": "project",
            "version": { "version": version.unwrap_or(serde_json::Value::Null) },
            "metadata": metadata,
        }
    })
}

/// Converts a TOML table into JSON for a label.
pub fn toml_to_json(table: &toml::Table) -> serde_json::Value {
    serde_json::to_value(table).unwrap_or(serde_json::Value::Null)
}
