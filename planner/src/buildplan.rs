//! The build plan `bin/detect` writes and the Buildpack Plan each buildpack receives.
//!
//! CNB forbids a top-level `version` key in a require (it belongs in `metadata.version`); a
//! plan that has one does not parse, so the detector reports that buildpack's detect as an
//! error, as the lifecycle does.

/// What `bin/detect` wrote to its build plan path: top-level provides and requires, and
/// alternatives under `[[or]]`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BuildPlan {
    /// Top-level provides.
    #[serde(default)]
    pub provides: Vec<Provide>,
    /// Top-level requires.
    #[serde(default)]
    pub requires: Vec<Require>,
    /// Alternatives, tried after the top-level pair, left to right.
    #[serde(default)]
    pub or: Vec<BuildPlanAlternative>,
}

/// One `[[or]]` alternative.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BuildPlanAlternative {
    /// Provides of this alternative.
    #[serde(default)]
    pub provides: Vec<Provide>,
    /// Requires of this alternative.
    #[serde(default)]
    pub requires: Vec<Require>,
}

/// `[[provides]] name`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Provide {
    /// The dependency name.
    pub name: String,
}

/// `[[requires]] name` with `[requires.metadata]`. Deserializing one with a top-level
/// `version` key fails: CNB wants `metadata.version`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "RawRequire")]
pub struct Require {
    /// The dependency name.
    pub name: String,
    /// Free-form metadata for the provider.
    #[serde(default)]
    pub metadata: toml::Table,
}

/// A require as written, with the `version` key CNB forbids.
#[derive(serde::Deserialize)]
struct RawRequire {
    name: String,
    #[serde(default)]
    metadata: toml::Table,
    version: Option<toml::Value>,
}

impl TryFrom<RawRequire> for Require {
    type Error = String;

    fn try_from(raw: RawRequire) -> Result<Self, String> {
        if raw.version.is_some() {
            return Err(format!(
                "require `{}` has a top-level `version` key, which CNB does not allow: use \
                 `metadata.version`",
                raw.name
            ));
        }
        Ok(Self {
            name: raw.name,
            metadata: raw.metadata,
        })
    }
}

impl BuildPlan {
    /// Parses the TOML a `bin/detect` wrote (an empty file is an empty plan).
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Why this plan is unusable, if it is: a provide or require with an empty name.
    pub(crate) fn problem(&self) -> Option<String> {
        let alternatives = std::iter::once((&self.provides, &self.requires))
            .chain(self.or.iter().map(|alt| (&alt.provides, &alt.requires)));
        for (provides, requires) in alternatives {
            let names = provides
                .iter()
                .map(|p| &p.name)
                .chain(requires.iter().map(|r| &r.name));
            for name in names {
                if name.trim().is_empty() {
                    return Some(
                        "the build plan has a provide or require with an empty name".to_owned(),
                    );
                }
            }
        }
        None
    }
}

/// The Buildpack Plan a buildpack receives at build: as CNB says, every require (of any
/// buildpack in the group) of a dependency this buildpack provides.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BuildpackPlan {
    /// `[[entries]]`.
    pub entries: Vec<PlanEntry>,
}

/// One `[[entries]] name` with `[entries.metadata]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PlanEntry {
    /// The dependency name.
    pub name: String,
    /// The metadata the requiring buildpack attached.
    pub metadata: toml::Table,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_plan_with_alternatives() {
        let plan = BuildPlan::parse(
            r#"
[[provides]]
name = "node"
[[requires]]
name = "node"
[requires.metadata]
version = "22.x"
[[or]]
[[or.requires]]
name = "node"
"#,
        )
        .unwrap();
        assert_eq!(
            plan.provides,
            [Provide {
                name: "node".into()
            }]
        );
        assert_eq!(plan.requires[0].metadata["version"].as_str(), Some("22.x"));
        assert_eq!(plan.or.len(), 1);
        assert_eq!(plan.or[0].requires[0].name, "node");
        assert_eq!(plan.problem(), None);
        assert_eq!(BuildPlan::parse("").unwrap(), BuildPlan::default());
    }

    #[test]
    fn top_level_version_is_an_error() {
        for text in [
            "[[requires]]\nname = \"node\"\nversion = \"22\"\n",
            "[[or]]\n[[or.requires]]\nname = \"node\"\nversion = \"22\"\n",
        ] {
            let err = BuildPlan::parse(text).unwrap_err();
            assert!(err.message().contains("metadata.version"), "{err}");
        }
    }

    #[test]
    fn empty_names_are_a_problem() {
        let plan = BuildPlan::parse("[[or]]\n[[or.provides]]\nname = \"\"\n").unwrap();
        assert!(plan.problem().is_some());
    }
}
