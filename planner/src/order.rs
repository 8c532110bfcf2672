//! Orders and groups: the ordered lists of buildpacks a builder, a composite buildpack or a
//! `project.toml` names.
//!
//! The public types are the validated form. `builder.toml` and `buildpack.toml` are first read
//! into [`RawOrder`], which keeps the byte span of every `id` so that a later check (an unknown
//! buildpack, a cycle between composites) can point at the line that names it.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use crate::{BuildpackId, TomlError};

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
    /// `exec-env`: the execution environments this entry is for; empty means all.
    #[serde(default)]
    pub exec_env: Vec<String>,
}

impl GroupRef {
    /// `id@version`, or the bare id when no version is pinned.
    pub fn reference(&self) -> String {
        match &self.version {
            Some(version) => format!("{}@{version}", self.id),
            None => self.id.to_string(),
        }
    }
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

/// `[[order]]` as written, with spans.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct RawGroup {
    #[serde(default)]
    pub(crate) group: Vec<RawGroupRef>,
}

/// `[[order.group]]` as written, with spans. Unknown keys are ignored, as CNB asks.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct RawGroupRef {
    pub(crate) id: Spanned<String>,
    #[serde(default)]
    pub(crate) version: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) optional: bool,
    #[serde(default, rename = "exec-env")]
    pub(crate) exec_env: Vec<String>,
}

/// `[[order]]` as written.
pub(crate) type RawOrder = Vec<RawGroup>;

/// Validates the ids and versions of a raw order; errors point into `text` of `path`.
pub(crate) fn validate_order(
    raw: &RawOrder,
    path: &Path,
    text: &str,
) -> Result<Order, Box<TomlError>> {
    raw.iter()
        .map(|group| {
            let group = group
                .group
                .iter()
                .map(|entry| validate_group_ref(entry, path, text))
                .collect::<Result<_, _>>()?;
            Ok(Group { group })
        })
        .collect()
}

fn validate_group_ref(
    raw: &RawGroupRef,
    path: &Path,
    text: &str,
) -> Result<GroupRef, Box<TomlError>> {
    let id = BuildpackId::new(raw.id.get_ref()).map_err(|err| {
        Box::new(TomlError::new(
            path,
            text,
            Some(raw.id.span()),
            err.to_string(),
        ))
    })?;
    let version = match &raw.version {
        Some(version) if version.get_ref().trim().is_empty() => {
            return Err(Box::new(TomlError::new(
                path,
                text,
                Some(version.span()),
                format!("buildpack {id} has an empty `version`"),
            )));
        }
        Some(version) => Some(version.get_ref().clone()),
        None => None,
    };
    Ok(GroupRef {
        id,
        version,
        optional: raw.optional,
        exec_env: raw.exec_env.clone(),
    })
}

/// The span of `order[group].group[entry].id` in `raw`, if that entry exists.
pub(crate) fn id_span(raw: &RawOrder, group: usize, entry: usize) -> Option<Range<usize>> {
    raw.get(group)?.group.get(entry).map(|e| e.id.span())
}
