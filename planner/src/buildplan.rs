//! The build plan `bin/detect` writes and the Buildpack Plan each buildpack receives.

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

/// `[[requires]] name` with `[requires.metadata]`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Require {
    /// The dependency name.
    pub name: String,
    /// Free-form metadata for the provider.
    #[serde(default)]
    pub metadata: toml::Table,
}

/// The Buildpack Plan a buildpack receives at build: the requires it provides or requires.
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
