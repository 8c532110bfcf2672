//! Detection: CNB order resolution over a [`Detector`].

use std::sync::Arc;

use crate::{BuildPlan, Buildpack, BuildpackPlan, Order, Registry};

/// Runs one buildpack's `bin/detect` against the app. The engine implements this with its
/// sandbox; tests with a fake. Called from several threads at once.
pub trait Detector: Sync {
    /// The outcome of `buildpack`'s detect.
    fn detect(&self, buildpack: &Buildpack) -> DetectOutcome;
}

/// What one `bin/detect` did.
#[derive(Debug, Clone, PartialEq)]
pub enum DetectOutcome {
    /// Exit 0, with the build plan it wrote (empty when it wrote none).
    Pass(BuildPlan),
    /// Exit 100.
    Fail,
    /// Any other exit, a plan that does not parse, or the process could not run: `message`
    /// says which, `output` holds the last lines it printed.
    Error { message: String, output: String },
}

/// One buildpack of the resolved group, with the Buildpack Plan it will receive.
#[derive(Debug, Clone)]
pub struct GroupMember {
    /// The buildpack.
    pub buildpack: Arc<Buildpack>,
    /// Its Buildpack Plan: the entries it provides or requires.
    pub plan: BuildpackPlan,
}

/// The group that passed detection, composites expanded, in build order.
#[derive(Debug, Clone)]
pub struct DetectResult {
    /// The buildpacks that will build, in order.
    pub group: Vec<GroupMember>,
}

/// Detection found no group, or a detect errored.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DetectError {
    /// No group passed: every buildpack tried, with its outcome (`pass`, `fail`, `error: …`)
    /// or the plan problem that failed its group.
    #[error("no buildpack group passed detection\n{}", report.join("\n"))]
    #[diagnostic(code(strata::detect::no_group))]
    NoGroupPassed { report: Vec<String> },
    /// A buildpack's detect errored (not a plain fail): detection stops.
    #[error("detect of buildpack {buildpack} failed: {message}\n{output}")]
    Errored {
        buildpack: String,
        message: String,
        output: String,
    },
    /// An order names a buildpack that is not available.
    #[error(transparent)]
    Registry(#[from] crate::RegistryError),
}

/// Resolves `order` against the app: expands composites, runs the detects of each group in
/// parallel (each `id@version` at most once), and returns the first group that passes with
/// its build plans resolved.
pub fn resolve(
    order: &Order,
    registry: &Registry,
    detector: &dyn Detector,
) -> Result<DetectResult, DetectError> {
    let _ = (order, registry, detector);
    todo!()
}
