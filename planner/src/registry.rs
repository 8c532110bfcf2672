//! The buildpacks available to a build, by id and version.
//!
//! A lookup without a version picks the only buildpack with that id, or else the newest one by
//! [`compare_versions`]: dot-separated parts compared as numbers, a part with a suffix
//! (`0-rc.1`) sorting before the same number without one, as semver does for pre-releases.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{Buildpack, BuildpackId};

/// The buildpacks available to a build, looked up by id and optional version.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    by_id: BTreeMap<BuildpackId, Vec<Arc<Buildpack>>>,
}

/// A lookup or insertion that failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RegistryError {
    /// No buildpack with that id (and version). `known` lists the `id@version`s there are:
    /// those of the id when only the version is unknown, else all of them (or `none`).
    #[error("unknown buildpack {reference}; known: {known}")]
    Unknown { reference: String, known: String },
    /// Two buildpacks share id and version; `first` and `second` are their directories.
    #[error("buildpack {reference} is given twice: {first} and {second}")]
    Duplicate {
        reference: String,
        first: String,
        second: String,
    },
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a buildpack. Adding the same directory twice is a no-op that returns the buildpack
    /// already there; two directories with the same id and version are an error.
    pub fn insert(&mut self, buildpack: Buildpack) -> Result<Arc<Buildpack>, RegistryError> {
        let versions = self.by_id.entry(buildpack.id().clone()).or_default();
        if let Some(existing) = versions.iter().find(|b| b.version() == buildpack.version()) {
            if existing.dir == buildpack.dir {
                return Ok(Arc::clone(existing));
            }
            return Err(RegistryError::Duplicate {
                reference: buildpack.reference(),
                first: existing.dir.display().to_string(),
                second: buildpack.dir.display().to_string(),
            });
        }
        let buildpack = Arc::new(buildpack);
        let at = versions.partition_point(|b| {
            compare_versions(b.version(), buildpack.version()) == Ordering::Less
        });
        versions.insert(at, Arc::clone(&buildpack));
        Ok(buildpack)
    }

    /// The buildpack `id` at `version`, or the only/newest one when `version` is `None`.
    pub fn get(
        &self,
        id: &BuildpackId,
        version: Option<&str>,
    ) -> Result<Arc<Buildpack>, RegistryError> {
        let versions = self.by_id.get(id).map_or(&[][..], Vec::as_slice);
        let found = match version {
            Some(version) => versions.iter().find(|b| b.version() == version),
            // Sorted by `compare_versions` on insertion: the newest is last.
            None => versions.last(),
        };
        if let Some(found) = found {
            return Ok(Arc::clone(found));
        }
        let known: Vec<String> = if versions.is_empty() {
            self.iter().map(|b| b.reference()).collect()
        } else {
            versions.iter().map(|b| b.reference()).collect()
        };
        Err(RegistryError::Unknown {
            reference: version.map_or_else(|| id.to_string(), |v| format!("{id}@{v}")),
            known: if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            },
        })
    }

    /// Every buildpack, by id then version (oldest first).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Buildpack>> {
        self.by_id.values().flatten()
    }

    /// How many buildpacks there are.
    pub fn len(&self) -> usize {
        self.by_id.values().map(Vec::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The `id@version` of every buildpack, comma-separated, for messages.
    pub(crate) fn known(&self) -> String {
        let known: Vec<String> = self.iter().map(|b| b.reference()).collect();
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    }
}

/// Orders two buildpack versions: dot-separated parts compared numerically (`1.10` after
/// `1.9`), a missing part counting as `0`, and a part with a suffix after its number (`0-rc.1`)
/// before the bare number. Versions equal by that rule fall back to comparing the strings, so
/// the order is total.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        let (l, r) = match (left.next(), right.next()) {
            (None, None) => return a.cmp(b),
            (l, r) => (l.unwrap_or("0"), r.unwrap_or("0")),
        };
        let ordering = compare_part(l, r);
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
}

/// Compares one dot-separated part: its leading number, then no suffix before a suffix, then
/// the suffixes.
fn compare_part(a: &str, b: &str) -> Ordering {
    let (a_number, a_suffix) = split_number(a);
    let (b_number, b_suffix) = split_number(b);
    a_number
        .len()
        .cmp(&b_number.len())
        .then_with(|| a_number.cmp(b_number))
        .then_with(|| a_suffix.is_empty().cmp(&b_suffix.is_empty()))
        .then_with(|| a_suffix.cmp(b_suffix))
}

/// Splits a version part into its leading number (without leading zeros) and the rest.
fn split_number(part: &str) -> (&str, &str) {
    let digits = part
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(part.len());
    let (number, suffix) = part.split_at(digits);
    (number.trim_start_matches('0'), suffix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::component;

    fn id(s: &str) -> BuildpackId {
        BuildpackId::new(s).unwrap()
    }

    #[test]
    fn versions_compare_numerically() {
        let cases = [
            ("1.10.0", "1.9.0", Ordering::Greater),
            ("1.0", "1.0.0", Ordering::Less),
            ("2", "10", Ordering::Less),
            ("1.0.0-rc.1", "1.0.0", Ordering::Less),
            ("1.0.0", "1.0.0-rc.1", Ordering::Greater),
            ("1.0.0-rc.2", "1.0.0-rc.10", Ordering::Less),
            ("0.01", "0.1", Ordering::Less),
            ("99999999999999999999999", "1", Ordering::Greater),
            ("1.0.0", "1.0.0", Ordering::Equal),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn get_by_version_or_newest() {
        let tmp = tempfile::tempdir().unwrap();
        let mut registry = Registry::new();
        for (dir, version) in [("a1", "1.9.0"), ("a2", "1.10.0"), ("a3", "1.2.0")] {
            registry
                .insert(Buildpack::load(&component(tmp.path(), dir, "a", version)).unwrap())
                .unwrap();
        }
        registry
            .insert(Buildpack::load(&component(tmp.path(), "b", "b", "0.1")).unwrap())
            .unwrap();
        assert_eq!(registry.len(), 4);

        assert_eq!(registry.get(&id("a"), None).unwrap().version(), "1.10.0");
        assert_eq!(
            registry.get(&id("a"), Some("1.2.0")).unwrap().version(),
            "1.2.0"
        );
        assert_eq!(registry.get(&id("b"), None).unwrap().version(), "0.1");
        let all: Vec<String> = registry.iter().map(|b| b.reference()).collect();
        assert_eq!(all, ["a@1.2.0", "a@1.9.0", "a@1.10.0", "b@0.1"]);

        let err = registry.get(&id("a"), Some("3")).unwrap_err();
        assert!(
            matches!(&err, RegistryError::Unknown { reference, known } if reference == "a@3" && known == "a@1.2.0, a@1.9.0, a@1.10.0"),
            "{err}"
        );
        let err = registry.get(&id("c"), None).unwrap_err();
        assert!(
            matches!(&err, RegistryError::Unknown { reference, known } if reference == "c" && known.ends_with("b@0.1")),
            "{err}"
        );
        let err = Registry::new().get(&id("c"), None).unwrap_err();
        assert_eq!(err.to_string(), "unknown buildpack c; known: none");
    }

    #[test]
    fn duplicates_name_both_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let mut registry = Registry::new();
        let first = component(tmp.path(), "one", "a", "1");
        registry.insert(Buildpack::load(&first).unwrap()).unwrap();
        // The same directory again is harmless.
        registry.insert(Buildpack::load(&first).unwrap()).unwrap();
        assert_eq!(registry.len(), 1);

        let second = component(tmp.path(), "two", "a", "1");
        let err = registry
            .insert(Buildpack::load(&second).unwrap())
            .unwrap_err();
        let RegistryError::Duplicate {
            reference,
            first: f,
            second: s,
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(reference, "a@1");
        assert_eq!(f, &first.canonicalize().unwrap().display().to_string());
        assert_eq!(s, &second.canonicalize().unwrap().display().to_string());
    }
}
