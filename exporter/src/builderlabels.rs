//! The labels and files of a CNB builder image, in the shapes `pack builder create` writes them.
//!
//! A builder image is a build image with buildpacks added: one layer per buildpack under
//! `/cnb/buildpacks/<escaped id>/<version>/`, the detection order in `/cnb/order.toml`, the run
//! images in `/cnb/run.toml` (and the older `/cnb/stack.toml`), operator env in
//! `/cnb/build-config/env/`, and three JSON labels that describe all of it without unpacking a
//! layer. strata reads builders made by pack and writes builders pack can read, so these types
//! follow pack's JSON exactly: pack's Go encoder writes `null` for an empty list that was never
//! set, and a reader must take that as empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// The label with the builder's summary: its buildpacks, run images, lifecycle and creator.
pub const METADATA_LABEL: &str = "io.buildpacks.builder.metadata";
/// The label mapping each buildpack id and version to its layer's diffID and descriptor.
pub const LAYERS_LABEL: &str = "io.buildpacks.buildpack.layers";
/// The label holding the detection order (the JSON twin of `/cnb/order.toml`).
pub const ORDER_LABEL: &str = "io.buildpacks.buildpack.order";
/// The label a builder names its stack with (legacy, still written by pack).
pub const STACK_ID_LABEL: &str = "io.buildpacks.stack.id";

/// Where the buildpacks live in a builder image.
pub const BUILDPACKS_DIR: &str = "/cnb/buildpacks";
/// The detection order file.
pub const ORDER_PATH: &str = "/cnb/order.toml";
/// The run images file.
pub const RUN_PATH: &str = "/cnb/run.toml";
/// The legacy run image file, from when builders had one stack.
pub const STACK_PATH: &str = "/cnb/stack.toml";
/// The operator's build env: one file per variable, with the env-file suffix rules.
pub const BUILD_CONFIG_ENV_DIR: &str = "/cnb/build-config/env";

/// The directory name a buildpack id takes under [`BUILDPACKS_DIR`]: `/` becomes `_`.
pub fn escaped_id(id: &str) -> String {
    id.replace('/', "_")
}

/// The path of a buildpack's directory in a builder image (absolute, no trailing slash).
pub fn buildpack_dir(id: &str, version: &str) -> String {
    format!("{BUILDPACKS_DIR}/{}/{version}", escaped_id(id))
}

/// `io.buildpacks.builder.metadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuilderMetadata {
    /// Free text from builder.toml's `description`.
    #[serde(default)]
    pub description: String,
    /// Every buildpack the builder carries, component and composite.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub buildpacks: Vec<ModuleInfo>,
    /// Image extensions (strata refuses builders that have any).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub extensions: Vec<ModuleInfo>,
    /// The legacy single run image.
    #[serde(default)]
    pub stack: StackMetadata,
    /// The lifecycle the builder carries; strata runs none, so its version may be empty.
    #[serde(default)]
    pub lifecycle: LifecycleMetadata,
    /// The tool that made the builder.
    #[serde(default)]
    pub created_by: CreatorMetadata,
    /// The run images, the first the default (`[[run.images]]`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub images: Vec<RunImageMetadata>,
}

/// A buildpack's id and version, with the descriptive fields pack copies from its
/// `buildpack.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ModuleInfo {
    /// The buildpack id.
    pub id: String,
    /// The buildpack version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// `[buildpack] name`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `[buildpack] homepage`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub homepage: String,
}

/// The `stack` member: the run image builders had before `images`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackMetadata {
    /// The run image.
    #[serde(default)]
    pub run_image: RunImageMetadata,
}

/// A run image and its mirrors, in the label and in `/cnb/run.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunImageMetadata {
    /// The run image reference.
    #[serde(default)]
    pub image: String,
    /// Other references of the same image.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub mirrors: Vec<String>,
}

/// The lifecycle a builder was made with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleMetadata {
    /// The lifecycle's version.
    #[serde(default)]
    pub version: String,
    /// The API versions it supports.
    #[serde(default)]
    pub apis: LifecycleApis,
}

/// Buildpack and Platform API versions, each deprecated or supported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleApis {
    /// Buildpack API versions.
    #[serde(default)]
    pub buildpack: ApiSet,
    /// Platform API versions.
    #[serde(default)]
    pub platform: ApiSet,
}

/// A set of API versions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiSet {
    /// Versions still accepted but on the way out.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub deprecated: Vec<String>,
    /// Versions fully supported.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub supported: Vec<String>,
}

/// Who made the builder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatorMetadata {
    /// The tool's name.
    #[serde(default)]
    pub name: String,
    /// The tool's version.
    #[serde(default)]
    pub version: String,
}

/// `io.buildpacks.buildpack.layers`: id → version → layer. A `BTreeMap`, so the label's bytes
/// do not depend on insertion order.
pub type ModuleLayers = BTreeMap<String, BTreeMap<String, ModuleLayerInfo>>;

/// One buildpack's layer in a builder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleLayerInfo {
    /// The Buildpack API of its `buildpack.toml`.
    #[serde(default)]
    pub api: String,
    /// Its `[[stacks]]`.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub stacks: Vec<Stack>,
    /// Its `[[targets]]`.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub targets: Vec<Target>,
    /// A composite buildpack's order.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub order: Vec<OrderEntry>,
    /// The diffID of the layer holding `/cnb/buildpacks/<escaped id>/<version>/`.
    #[serde(rename = "layerDiffID")]
    pub layer_diff_id: String,
    /// `[buildpack] homepage`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub homepage: String,
    /// `[buildpack] name`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// A `[[stacks]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stack {
    /// The stack id (`*` for any).
    pub id: String,
    /// Required mixins.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub mixins: Vec<String>,
}

/// A `[[targets]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// Architecture.
    #[serde(default)]
    pub arch: String,
    /// Architecture variant.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    /// Distributions.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub distros: Vec<Distro>,
}

/// A distribution a target names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distro {
    /// Distribution name.
    #[serde(default)]
    pub name: String,
    /// Distribution version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
}

/// `io.buildpacks.buildpack.order`, and `[[order]]` of `/cnb/order.toml`.
pub type Order = Vec<OrderEntry>;

/// One group of the order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEntry {
    /// The buildpacks of the group, in order.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub group: Vec<ModuleRef>,
}

/// A buildpack in a group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRef {
    /// The buildpack id.
    pub id: String,
    /// Its version; pack leaves it out when the builder.toml did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Whether the group passes without it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
}

/// `/cnb/order.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderFile {
    /// `[[order]]`.
    #[serde(default)]
    pub order: Order,
}

/// `/cnb/run.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFile {
    /// `[[images]]`, the first the default.
    #[serde(default)]
    pub images: Vec<RunImageMetadata>,
}

/// `/cnb/stack.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackFile {
    /// `[run-image]`.
    #[serde(default, rename = "run-image")]
    pub run_image: RunImageMetadata,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(value: &bool) -> bool {
    !value
}

/// Reads a JSON list that Go may have written as `null`.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels as pack writes them: Go's `null` for lists never set, keys pack adds that strata
    /// does not read (`api`, `groups`), and versions left out of an order entry.
    #[test]
    fn reads_labels_in_packs_shape() {
        let metadata: BuilderMetadata = serde_json::from_str(
            r#"{"description":"d","buildpacks":[{"id":"a/b","version":"1"}],"extensions":null,
            "stack":{"runImage":{"image":"run","mirrors":null}},
            "lifecycle":{"version":"0.20.0","api":{"buildpack":"0.2","platform":"0.3"},
              "apis":{"buildpack":{"deprecated":null,"supported":["0.2","0.10"]},
                      "platform":{"deprecated":[],"supported":["0.13"]}}},
            "createdBy":{"name":"Pack CLI","version":"0.36.0"},
            "images":[{"image":"run","mirrors":["mirror/run"]}]}"#,
        )
        .unwrap();
        assert_eq!(metadata.buildpacks[0].id, "a/b");
        assert!(metadata.extensions.is_empty());
        assert_eq!(metadata.images[0].mirrors, ["mirror/run"]);
        assert_eq!(metadata.lifecycle.apis.buildpack.supported, ["0.2", "0.10"]);
        assert_eq!(metadata.created_by.name, "Pack CLI");

        let layers: ModuleLayers = serde_json::from_str(
            r#"{"a/b":{"1":{"api":"0.10","stacks":[{"id":"*"}],"layerDiffID":"sha256:ab",
            "homepage":"h"}},"c":{"2":{"api":"0.10","order":[{"group":[{"id":"a/b","version":"1",
            "optional":true}]}],"layerDiffID":"sha256:cd"}}}"#,
        )
        .unwrap();
        assert_eq!(layers["a/b"]["1"].layer_diff_id, "sha256:ab");
        assert_eq!(layers["a/b"]["1"].stacks[0].id, "*");
        assert!(layers["c"]["2"].order[0].group[0].optional);

        let order: Order = serde_json::from_str(
            r#"[{"group":[{"id":"a/b"},{"id":"c","version":"2","optional":false}]}]"#,
        )
        .unwrap();
        assert_eq!(order[0].group[0].version, "");
        assert!(!order[0].group[1].optional);
    }

    #[test]
    fn writes_what_it_reads() {
        let mut layers = ModuleLayers::new();
        layers.entry("z".into()).or_default().insert(
            "1".into(),
            ModuleLayerInfo {
                api: "0.10".into(),
                layer_diff_id: "sha256:00".into(),
                ..ModuleLayerInfo::default()
            },
        );
        layers.entry("a".into()).or_default().insert(
            "2".into(),
            ModuleLayerInfo {
                api: "0.11".into(),
                order: vec![OrderEntry {
                    group: vec![ModuleRef {
                        id: "z".into(),
                        version: "1".into(),
                        optional: false,
                    }],
                }],
                layer_diff_id: "sha256:11".into(),
                ..ModuleLayerInfo::default()
            },
        );
        let json = serde_json::to_string(&layers).unwrap();
        // Sorted by id, empty fields left out as pack's `omitempty` does.
        assert_eq!(
            json,
            r#"{"a":{"2":{"api":"0.11","order":[{"group":[{"id":"z","version":"1"}]}],"layerDiffID":"sha256:11"}},"z":{"1":{"api":"0.10","layerDiffID":"sha256:00"}}}"#
        );
        assert_eq!(serde_json::from_str::<ModuleLayers>(&json).unwrap(), layers);
    }

    #[test]
    fn files_round_trip_as_toml() {
        let run: RunFile = toml::from_str(
            "[[images]]\nimage = \"r\"\nmirrors = [\"m\"]\n[[images]]\nimage = \"s\"\n",
        )
        .unwrap();
        assert_eq!(run.images.len(), 2);
        assert_eq!(run.images[1].mirrors, Vec::<String>::new());
        let stack: StackFile = toml::from_str("[run-image]\nimage = \"r\"\n").unwrap();
        assert_eq!(stack.run_image.image, "r");
        let order: OrderFile = toml::from_str(
            "[[order]]\n[[order.group]]\nid = \"a/b\"\nversion = \"1\"\noptional = true\n",
        )
        .unwrap();
        assert_eq!(
            toml::from_str::<OrderFile>(&toml::to_string(&order).unwrap()).unwrap(),
            order
        );
        assert_eq!(buildpack_dir("a/b", "1"), "/cnb/buildpacks/a_b/1");
    }
}
