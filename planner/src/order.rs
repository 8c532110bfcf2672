//! Orders and groups: the ordered lists of buildpacks a builder, a composite buildpack or a
//! `project.toml` names.

use crate::BuildpackId;

/// A reference to a buildpack in a group: `id`, optional `version`, `optional`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GroupRef {
    /// The buildpack id.
    pub id: BuildpackId,
    /// The version; `None` means the only (or newest) one the registry has.
    #[serde(default)]
    pub version: Option<String>,
    /// Whether the group may pass without this buildpack.
    #[serde(default)]
    pub optional: bool,
}

/// One group of an order: buildpacks that run together.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Group {
    /// The buildpacks, in order.
    #[serde(default)]
    pub group: Vec<GroupRef>,
}

/// An ordered list of groups; detection picks the first group that passes.
pub type Order = Vec<Group>;
