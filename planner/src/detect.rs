//! Detection: CNB order resolution over a [`Detector`].
//!
//! [`resolve`] follows the CNB spec ("Phase #1: Detection") and the reference lifecycle:
//!
//! 1. **Expansion.** Each group of the order is expanded lazily, depth first, left to right. A
//!    composite buildpack is replaced by each group of its own order in turn, followed by the
//!    rest of the surrounding group, so a composite with two groups yields two candidate groups,
//!    tried in that order. An optional composite adds one more candidate: the surrounding group
//!    without it. Its members keep their own `optional` flags (a member is optional only when
//!    the composite's order says so). A buildpack whose id is already in the candidate group is
//!    skipped, so the first mention wins. Candidates are tried in order; the first that passes
//!    wins and no later detect runs.
//! 2. **Detect.** The detects of a candidate group run in parallel on rayon; each `id@version`
//!    runs at most once per [`resolve`] call, its outcome cached. A group in which a required
//!    buildpack is already known to fail is given up without running anything.
//! 3. **Pass.** Every required buildpack must pass; an optional one that fails (or errors) is
//!    left out; at least one must pass.
//! 4. **Plan trials.** Each passing buildpack contributes its top-level provides/requires or one
//!    of its `[[or]]` alternatives; trials enumerate those choices depth first, the first
//!    buildpack's choice varying slowest. A trial fails when a require has no provider at the
//!    same or an earlier position, or a provide has no require at the same or a later position.
//!    An optional buildpack that breaks a trial on its last alternative is dropped and the trial
//!    re-checked (on its earlier alternatives it counts as required, so that every alternative
//!    is tried before it is dropped, as the lifecycle does).
//! 5. **Result.** The buildpacks of the first trial that holds, in group order, each with its
//!    Buildpack Plan: for every dependency it provides, the requires of that dependency made at
//!    or after the providers (CNB gives a buildpack the entries it is expected to provide; a
//!    buildpack that only requires gets none for that dependency).
//!
//! A buildpack whose `[[targets]]` (or `[[stacks]]`) do not include the build target (see
//! [`TargetEnv::supports`]) is not run, as in the lifecycle: it counts as failed, so it fails a
//! group that requires it and is left out of one where it is optional (the lifecycle still
//! runs such an optional buildpack's detect; strata does not run what cannot build for the
//! target). The passing group lists those left out in [`DetectResult::skipped`]. When no group
//! passes for that reason, [`resolve`] returns [`DetectError::Unsupported`] naming the
//! buildpack, its targets and the target.
//!
//! A detect error of a required buildpack fails its group like a plain failure, and detection
//! goes on with the next group, as the spec says; when no group passes, [`resolve`] returns the
//! first such error as [`DetectError::Errored`] rather than the report. When a group passes,
//! the detect errors met on the way (an optional buildpack the group dropped, a buildpack of an
//! earlier group) are in [`DetectResult::errored`], so that they are shown rather than lost,
//! as the lifecycle prints them.
//!
//! A build is for one execution environment ([`crate::exec_env`]): an order entry or a
//! buildpack (Buildpack API 0.12) whose `exec-env` does not include it is skipped while the
//! group is expanded, as if it were not in the group, as the lifecycle does.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, PoisonError};

use rayon::prelude::*;

use crate::{
    BuildPlan, Buildpack, BuildpackPlan, GroupRef, Mismatch, Order, PlanEntry, Provide, Registry,
    Require, TargetEnv,
};

/// How many plan trials one candidate group may take before detection gives up on it: the
/// count is the product of every passing buildpack's alternatives, which input can make huge.
const MAX_TRIALS: usize = 1 << 16;

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
    /// Its Buildpack Plan: the requires of the dependencies it provides.
    pub plan: BuildpackPlan,
}

/// The group that passed detection, composites expanded, in build order.
#[derive(Debug, Clone, Default)]
pub struct DetectResult {
    /// The buildpacks that will build, in order.
    pub group: Vec<GroupMember>,
    /// The optional buildpacks of that group left out without running their detect, because
    /// they cannot build for the target, in group order.
    pub skipped: Vec<Skipped>,
    /// The detects that errored before the group passed, in the order they ran: buildpacks
    /// the group left out (optional ones) or of groups tried before it.
    pub errored: Vec<ErroredDetect>,
}

/// A buildpack not run at detect because it cannot build for the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// `id@version`.
    pub buildpack: String,
    /// What it supports, and the target.
    pub mismatch: Mismatch,
}

/// `x@1: it supports linux/arm64, not the target linux/amd64 debian@12`.
impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: it supports {}, not the target {}",
            self.buildpack, self.mismatch.supports, self.mismatch.target
        )
    }
}

/// A `bin/detect` that errored (an exit other than 0 and 100, or a bad build plan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErroredDetect {
    /// The buildpack, `id@version`.
    pub buildpack: String,
    /// What went wrong (`exit status 3`, `invalid build plan: …`).
    pub message: String,
    /// The last lines it printed.
    pub output: String,
}

/// Detection found no group, or a detect errored.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DetectError {
    /// No group passed. The report has one line per buildpack detected, in the order they were
    /// first tried (`examples/node@0.1.0: pass`, `… : fail`, `x@1: error: exit status 3`), and
    /// after each candidate group's buildpacks the reasons it failed, numbered from 1 in the
    /// order the (expanded) groups were tried: `group 2: examples/npm@0.1.0 failed`,
    /// `group 2: requires "node" (from examples/npm@0.1.0) has no provider`.
    #[error("no buildpack group passed detection\n{}", report.join("\n"))]
    NoGroupPassed { report: Vec<String> },
    /// No group passed and a required buildpack's detect errored (not a plain fail): the first
    /// such error, `buildpack` as `id@version`.
    #[error("detect of buildpack {buildpack} failed: {message}\n{output}")]
    Errored {
        buildpack: String,
        message: String,
        output: String,
    },
    /// No group passed because a buildpack it needs cannot build for the target: the first
    /// such buildpack (`id@version`), its `[[targets]]` and the target, both as
    /// `os/arch[/variant]` with distros (or its stacks and the run image's stack id, when
    /// those decided).
    #[error(
        "buildpack {buildpack} cannot build for the run image's target {target}: it supports \
         {targets}\n{}",
        report.join("\n")
    )]
    Unsupported {
        buildpack: String,
        targets: String,
        target: String,
        report: Vec<String>,
    },
    /// An order names a buildpack that is not available.
    #[error(transparent)]
    Registry(#[from] crate::RegistryError),
    /// Composite buildpacks contain each other; `chain` is `a@1 -> b@1 -> a@1`.
    #[error("composite buildpacks contain each other: {chain}")]
    Cycle { chain: String },
}

/// Resolves `order` against the app: expands composites, runs the detects of each group in
/// parallel (each `id@version` at most once), and returns the first group that passes with
/// its build plans resolved. Only buildpacks that support `target` run.
///
/// # Errors
///
/// [`DetectError::NoGroupPassed`] with a report when no group passes,
/// [`DetectError::Unsupported`] instead when a buildpack that does not support `target` is why,
/// [`DetectError::Errored`] instead when a required buildpack's detect errored along the way,
/// [`DetectError::Registry`] for an order entry the registry lacks, [`DetectError::Cycle`]
/// for composites that contain each other.
pub fn resolve(
    order: &Order,
    registry: &Registry,
    target: &TargetEnv,
    detector: &dyn Detector,
) -> Result<DetectResult, DetectError> {
    resolve_for_exec_env(
        order,
        registry,
        target,
        crate::exec_env::DEFAULT_EXEC_ENV,
        detector,
    )
}

/// [`resolve`] for a build for the execution environment `exec_env`: order entries and
/// buildpacks that are for other execution environments are skipped.
///
/// # Errors
/// As [`resolve`].
pub fn resolve_for_exec_env(
    order: &Order,
    registry: &Registry,
    target: &TargetEnv,
    exec_env: &str,
    detector: &dyn Detector,
) -> Result<DetectResult, DetectError> {
    let mut resolver = Resolver {
        registry,
        target,
        exec_env,
        detector,
        errored: Vec::new(),
        outcomes: Mutex::new(HashMap::new()),
        report: Vec::new(),
        reported: HashSet::new(),
        groups_tried: 0,
        first_error: None,
        first_unsupported: None,
    };
    for group in order {
        let pending: Vec<Pending> = group
            .group
            .iter()
            .map(|entry| Pending {
                entry: entry.clone(),
                parents: Vec::new(),
            })
            .collect();
        if let ControlFlow::Break(result) = resolver.expand(&pending, &mut Vec::new())? {
            return Ok(result);
        }
    }
    Err(resolver.into_error())
}

/// An order entry still to expand, with the composites it came from (outermost first).
#[derive(Clone)]
struct Pending {
    entry: GroupRef,
    parents: Vec<String>,
}

/// A component buildpack of a candidate group.
struct Candidate {
    buildpack: Arc<Buildpack>,
    optional: bool,
}

/// The state of one [`resolve`] call.
struct Resolver<'a> {
    registry: &'a Registry,
    target: &'a TargetEnv,
    /// The build's execution environment.
    exec_env: &'a str,
    detector: &'a dyn Detector,
    /// Every detect error so far, in the order reported.
    errored: Vec<ErroredDetect>,
    /// Detect outcomes by `id@version`.
    outcomes: Mutex<HashMap<String, DetectOutcome>>,
    report: Vec<String>,
    /// The buildpacks whose outcome is in the report already.
    reported: HashSet<String>,
    groups_tried: usize,
    /// The first error of a required buildpack: (`id@version`, message, output).
    first_error: Option<(String, String, String)>,
    /// The first buildpack that does not support the target and kept a group from passing.
    first_unsupported: Option<Skipped>,
}

impl Resolver<'_> {
    /// Expands `pending` after the component buildpacks `prefix`, trying each complete
    /// candidate group in turn until one passes.
    fn expand(
        &mut self,
        pending: &[Pending],
        prefix: &mut Vec<Candidate>,
    ) -> Result<ControlFlow<DetectResult>, DetectError> {
        let Some((first, rest)) = pending.split_first() else {
            return Ok(self.try_group(prefix));
        };
        if prefix.iter().any(|c| *c.buildpack.id() == first.entry.id) {
            return self.expand(rest, prefix);
        }
        if !crate::exec_env::applies(&first.entry.exec_env, self.exec_env) {
            self.note_exec_env(
                &first.entry.reference(),
                "its order entry",
                &first.entry.exec_env,
            );
            return self.expand(rest, prefix);
        }
        let buildpack = self
            .registry
            .get(&first.entry.id, first.entry.version.as_deref())?;
        let exec_env = &buildpack.descriptor.info.exec_env;
        if !crate::exec_env::applies(exec_env, self.exec_env) {
            self.note_exec_env(&buildpack.reference(), "it", exec_env);
            return self.expand(rest, prefix);
        }
        if !buildpack.is_composite() {
            prefix.push(Candidate {
                buildpack,
                optional: first.entry.optional,
            });
            let flow = self.expand(rest, prefix);
            prefix.pop();
            return flow;
        }

        let reference = buildpack.reference();
        if let Some(start) = first.parents.iter().position(|p| *p == reference) {
            let mut chain = first.parents[start..].to_vec();
            chain.push(reference);
            return Err(DetectError::Cycle {
                chain: chain.join(" -> "),
            });
        }
        let mut parents = first.parents.clone();
        parents.push(reference);
        for group in &buildpack.descriptor.order {
            let expanded: Vec<Pending> = group
                .group
                .iter()
                .map(|entry| Pending {
                    entry: entry.clone(),
                    parents: parents.clone(),
                })
                .chain(rest.iter().cloned())
                .collect();
            if let ControlFlow::Break(result) = self.expand(&expanded, prefix)? {
                return Ok(ControlFlow::Break(result));
            }
        }
        if first.entry.optional {
            return self.expand(rest, prefix);
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Detects and resolves one candidate group.
    fn try_group(&mut self, candidates: &[Candidate]) -> ControlFlow<DetectResult> {
        self.groups_tried += 1;
        let number = self.groups_tried;
        let (runnable, unsupported) = self.split_by_target(number, candidates);
        let known_to_fail = unsupported.iter().any(|(c, _)| !c.optional)
            || runnable.iter().any(|c| {
                !c.optional
                    && matches!(
                        self.outcome(c),
                        Some(DetectOutcome::Fail | DetectOutcome::Error { .. })
                    )
            });
        if !known_to_fail {
            self.run_detects(&runnable);
        }
        self.report_outcomes(&runnable);

        let mut passing = Vec::new();
        let mut failed = false;
        for candidate in runnable {
            let reference = candidate.buildpack.reference();
            match self.outcome(candidate) {
                Some(DetectOutcome::Pass(plan)) => passing.push((candidate, plan)),
                Some(DetectOutcome::Fail) if !candidate.optional => {
                    self.report
                        .push(format!("group {number}: {reference} failed"));
                    failed = true;
                }
                Some(DetectOutcome::Error { message, output }) if !candidate.optional => {
                    self.report
                        .push(format!("group {number}: {reference} errored"));
                    self.first_error.get_or_insert((reference, message, output));
                    failed = true;
                }
                // An optional buildpack that did not pass, or one not run because the group
                // was given up.
                _ => {}
            }
        }
        if failed || self.note_unsupported(&unsupported, passing.is_empty()) {
            return ControlFlow::Continue(());
        }
        if passing.is_empty() {
            self.report
                .push(format!("group {number}: no buildpack passed"));
            return ControlFlow::Continue(());
        }

        let options: Vec<Vec<Contribution<'_>>> = passing
            .iter()
            .enumerate()
            .map(|(member, (candidate, plan))| contributions(member, plan, candidate.optional))
            .collect();
        let trials = options
            .iter()
            .try_fold(1usize, |n, o| n.checked_mul(o.len()))
            .unwrap_or(usize::MAX);
        if trials > MAX_TRIALS {
            self.report.push(format!(
                "group {number}: its build plan alternatives make {trials} trials, more than the \
                 {MAX_TRIALS} strata tries"
            ));
            return ControlFlow::Continue(());
        }
        let mut first_failure = None;
        let Some(resolved) = search(&options, &mut Vec::new(), &mut first_failure) else {
            let names: Vec<String> = passing
                .iter()
                .map(|(candidate, _)| candidate.buildpack.reference())
                .collect();
            self.report_plan_failure(number, &names, first_failure.unwrap_or_default());
            return ControlFlow::Continue(());
        };

        let group = resolved
            .kept
            .iter()
            .enumerate()
            .map(|(position, contribution)| GroupMember {
                buildpack: Arc::clone(&passing[contribution.member].0.buildpack),
                plan: resolved.deps.plan_of(position),
            })
            .collect();
        let skipped = unsupported
            .into_iter()
            .map(|(_, skipped)| skipped)
            .collect();
        ControlFlow::Break(DetectResult {
            group,
            skipped,
            errored: self.errored.clone(),
        })
    }

    /// Reports why no plan trial of group `number` held: `causes` of the first trial, whose
    /// members are named by `names`.
    fn report_plan_failure(&mut self, number: usize, names: &[String], causes: Vec<Cause>) {
        for cause in causes {
            let line = match cause {
                Cause::NoProvider { name, member } => {
                    format!("requires {name:?} (from {}) has no provider", names[member])
                }
                Cause::NoRequirer { name, member } => {
                    format!("provides {name:?} (from {}) has no requirer", names[member])
                }
                Cause::NothingLeft => {
                    "no buildpack is left once the optional ones that break the plan are \
                     dropped"
                        .to_owned()
                }
            };
            self.report.push(format!("group {number}: {line}"));
        }
    }

    /// Reports, once, that `reference` is skipped because `whose` `exec-env` (`list`) does
    /// not include the build's.
    fn note_exec_env(&mut self, reference: &str, whose: &str, list: &[String]) {
        if self.reported.insert(format!("exec-env {reference}")) {
            self.report.push(format!(
                "{reference}: skipped: {whose} is for exec-env {}, not {}",
                list.join(", "),
                self.exec_env
            ));
        }
    }

    /// Splits group `number`'s candidates into those that support the target, whose detects
    /// may run, and those that do not, with why, which the report lists.
    fn split_by_target<'c>(
        &mut self,
        number: usize,
        candidates: &'c [Candidate],
    ) -> (Vec<&'c Candidate>, Vec<(&'c Candidate, Skipped)>) {
        let mut runnable = Vec::new();
        let mut unsupported = Vec::new();
        for candidate in candidates {
            match self.target.supports(&candidate.buildpack.descriptor) {
                Ok(()) => runnable.push(candidate),
                Err(mismatch) => {
                    let skipped = Skipped {
                        buildpack: candidate.buildpack.reference(),
                        mismatch,
                    };
                    self.report.push(format!(
                        "group {number}: {} does not support the target {} (it supports {})",
                        skipped.buildpack, skipped.mismatch.target, skipped.mismatch.supports,
                    ));
                    unsupported.push((candidate, skipped));
                }
            }
        }
        (runnable, unsupported)
    }

    /// Whether the `unsupported` buildpacks are why a group that no required buildpack failed
    /// fails: one of them is required, or (`none_passed`) none of the others passed. The first
    /// such buildpack is kept for the error.
    fn note_unsupported(
        &mut self,
        unsupported: &[(&Candidate, Skipped)],
        none_passed: bool,
    ) -> bool {
        let Some((_, first)) = unsupported
            .iter()
            .find(|(c, _)| !c.optional)
            .or_else(|| unsupported.first().filter(|_| none_passed))
        else {
            return false;
        };
        self.first_unsupported.get_or_insert_with(|| first.clone());
        true
    }

    /// The cached outcome of `candidate`'s detect, if it ran.
    fn outcome(&self, candidate: &Candidate) -> Option<DetectOutcome> {
        self.outcomes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&candidate.buildpack.reference())
            .cloned()
    }

    /// Runs, in parallel, the detects of the candidates that have not run yet.
    fn run_detects(&self, candidates: &[&Candidate]) {
        let todo: Vec<&Arc<Buildpack>> = candidates
            .iter()
            .filter(|c| self.outcome(c).is_none())
            .map(|c| &c.buildpack)
            .collect();
        todo.par_iter().for_each(|buildpack| {
            let outcome = checked(self.detector.detect(buildpack));
            self.outcomes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(buildpack.reference(), outcome);
        });
    }

    /// Adds a report line for each candidate whose outcome is new to the report.
    fn report_outcomes(&mut self, candidates: &[&Candidate]) {
        for candidate in candidates {
            let Some(outcome) = self.outcome(candidate) else {
                continue;
            };
            let reference = candidate.buildpack.reference();
            if !self.reported.insert(reference.clone()) {
                continue;
            }
            self.report.push(match outcome {
                DetectOutcome::Pass(_) => format!("{reference}: pass"),
                DetectOutcome::Fail => format!("{reference}: fail"),
                DetectOutcome::Error { message, output } => {
                    let line = format!("{reference}: error: {message}");
                    self.errored.push(ErroredDetect {
                        buildpack: reference,
                        message,
                        output,
                    });
                    line
                }
            });
        }
    }

    /// The error when no group passed.
    fn into_error(self) -> DetectError {
        if let Some((buildpack, message, output)) = self.first_error {
            return DetectError::Errored {
                buildpack,
                message,
                output,
            };
        }
        let mut report = self.report;
        if let Some(Skipped {
            buildpack,
            mismatch,
        }) = self.first_unsupported
        {
            return DetectError::Unsupported {
                buildpack,
                targets: mismatch.supports,
                target: mismatch.target,
                report,
            };
        }
        if self.groups_tried == 0 {
            report.push("the order has no group".to_owned());
        }
        DetectError::NoGroupPassed { report }
    }
}

/// A passing outcome whose plan is unusable becomes an error.
fn checked(outcome: DetectOutcome) -> DetectOutcome {
    match outcome {
        DetectOutcome::Pass(plan) => match plan.problem() {
            Some(message) => DetectOutcome::Error {
                message,
                output: String::new(),
            },
            None => DetectOutcome::Pass(plan),
        },
        other => other,
    }
}

/// One passing buildpack's choice of provides and requires in a trial.
struct Contribution<'a> {
    /// The index of the buildpack among the group's passing buildpacks.
    member: usize,
    provides: &'a [Provide],
    requires: &'a [Require],
    /// Whether a trial may drop this buildpack.
    optional: bool,
}

/// The choices of the passing buildpack `member`: its top-level pair, then each `[[or]]`. An
/// optional buildpack may be dropped only on its last choice.
fn contributions(member: usize, plan: &BuildPlan, optional: bool) -> Vec<Contribution<'_>> {
    let count = 1 + plan.or.len();
    std::iter::once((&plan.provides, &plan.requires))
        .chain(plan.or.iter().map(|alt| (&alt.provides, &alt.requires)))
        .enumerate()
        .map(|(i, (provides, requires))| Contribution {
            member,
            provides,
            requires,
            optional: optional && i + 1 == count,
        })
        .collect()
}

/// Why a trial failed; `member` is the index among the group's passing buildpacks.
enum Cause {
    NoProvider { name: String, member: usize },
    NoRequirer { name: String, member: usize },
    NothingLeft,
}

/// An unmet require (or provide, when `provide`) at a position of a trial.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Unmet<'a> {
    position: usize,
    provide: bool,
    name: &'a str,
}

/// A trial that holds.
struct Resolved<'a, 'b> {
    kept: Vec<&'b Contribution<'a>>,
    deps: Deps<'a>,
}

/// Tries every combination of choices, depth first; `prefix` holds the choices made so far.
/// Keeps the causes of the first trial that fails, for the report.
fn search<'a, 'b>(
    options: &'b [Vec<Contribution<'a>>],
    prefix: &mut Vec<&'b Contribution<'a>>,
    first_failure: &mut Option<Vec<Cause>>,
) -> Option<Resolved<'a, 'b>> {
    let Some((first, rest)) = options.split_first() else {
        return match run_trial(prefix) {
            Ok(resolved) => Some(resolved),
            Err(causes) => {
                first_failure.get_or_insert(causes);
                None
            }
        };
    };
    for option in first {
        prefix.push(option);
        if let Some(resolved) = search(rest, prefix, first_failure) {
            return Some(resolved);
        }
        prefix.pop();
    }
    None
}

/// Checks one trial, dropping optional buildpacks that break it until it holds or a required
/// one breaks it. Causes are reported by the trial's positions, mapped back to the group's
/// passing buildpacks.
fn run_trial<'a, 'b>(trial: &[&'b Contribution<'a>]) -> Result<Resolved<'a, 'b>, Vec<Cause>> {
    let mut kept = trial.to_vec();
    loop {
        if kept.is_empty() {
            return Err(vec![Cause::NothingLeft]);
        }
        let deps = Deps::new(&kept);
        let unmet = deps.unmet();
        if unmet.is_empty() {
            return Ok(Resolved { kept, deps });
        }
        let required: Vec<Cause> = unmet
            .iter()
            .filter(|u| !kept[u.position].optional)
            .map(|u| {
                let (name, member) = (u.name.to_owned(), kept[u.position].member);
                if u.provide {
                    Cause::NoRequirer { name, member }
                } else {
                    Cause::NoProvider { name, member }
                }
            })
            .collect();
        if !required.is_empty() {
            return Err(required);
        }
        let dropped: HashSet<usize> = unmet.iter().map(|u| u.position).collect();
        kept = kept
            .into_iter()
            .enumerate()
            .filter(|(position, _)| !dropped.contains(position))
            .map(|(_, c)| c)
            .collect();
    }
}

/// The dependencies of a trial, by name, in the order they first appear.
struct Deps<'a> {
    entries: Vec<Dep<'a>>,
}

/// One dependency of a trial.
struct Dep<'a> {
    name: &'a str,
    /// Positions that provide it before (or at) a require.
    providers: Vec<usize>,
    /// Positions that provide it after its last require: unmet provides.
    unused: Vec<usize>,
    /// Its requires that have a provider.
    requires: Vec<&'a Require>,
    /// Positions that require it before any provider: unmet requires.
    early: Vec<usize>,
}

impl<'a> Deps<'a> {
    fn new(trial: &[&Contribution<'a>]) -> Self {
        let mut entries: Vec<Dep<'a>> = Vec::new();
        let mut index: HashMap<&'a str, usize> = HashMap::new();
        let mut entry = |name: &'a str, entries: &mut Vec<Dep<'a>>| -> usize {
            *index.entry(name).or_insert_with(|| {
                entries.push(Dep {
                    name,
                    providers: Vec::new(),
                    unused: Vec::new(),
                    requires: Vec::new(),
                    early: Vec::new(),
                });
                entries.len() - 1
            })
        };
        for (position, contribution) in trial.iter().enumerate() {
            for provide in contribution.provides {
                let i = entry(&provide.name, &mut entries);
                entries[i].unused.push(position);
            }
            for require in contribution.requires {
                let i = entry(&require.name, &mut entries);
                let dep = &mut entries[i];
                let pending = std::mem::take(&mut dep.unused);
                dep.providers.extend(pending);
                if dep.providers.is_empty() {
                    dep.early.push(position);
                } else {
                    dep.requires.push(require);
                }
            }
        }
        Self { entries }
    }

    /// Every unmet require and provide, by position, requires first at a position.
    fn unmet(&self) -> Vec<Unmet<'a>> {
        let mut unmet = Vec::new();
        for dep in &self.entries {
            let name = dep.name;
            unmet.extend(dep.early.iter().map(|&position| Unmet {
                position,
                provide: false,
                name,
            }));
            unmet.extend(dep.unused.iter().map(|&position| Unmet {
                position,
                provide: true,
                name,
            }));
        }
        unmet.sort();
        unmet.dedup();
        unmet
    }

    /// The Buildpack Plan of the buildpack at `position`: the requires of what it provides.
    fn plan_of(&self, position: usize) -> BuildpackPlan {
        let entries = self
            .entries
            .iter()
            .filter(|dep| dep.providers.contains(&position))
            .flat_map(|dep| &dep.requires)
            .map(|require| PlanEntry {
                name: require.name.clone(),
                metadata: require.metadata.clone(),
            })
            .collect();
        BuildpackPlan { entries }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::{BuildpackDescriptor, BuildpackId, BuildpackInfo, Group, RegistryError};

    /// A detector answering from a table by buildpack id (`Fail` when absent), counting calls.
    struct FakeDetector {
        outcomes: HashMap<String, DetectOutcome>,
        calls: Mutex<HashMap<String, usize>>,
    }

    impl FakeDetector {
        fn new(outcomes: &[(&str, DetectOutcome)]) -> Self {
            Self {
                outcomes: outcomes
                    .iter()
                    .map(|(id, o)| ((*id).to_owned(), o.clone()))
                    .collect(),
                calls: Mutex::new(HashMap::new()),
            }
        }

        fn calls(&self, id: &str) -> usize {
            self.calls.lock().unwrap().get(id).copied().unwrap_or(0)
        }
    }

    impl Detector for FakeDetector {
        fn detect(&self, buildpack: &Buildpack) -> DetectOutcome {
            *self
                .calls
                .lock()
                .unwrap()
                .entry(buildpack.id().to_string())
                .or_default() += 1;
            self.outcomes
                .get(buildpack.id().as_str())
                .cloned()
                .unwrap_or(DetectOutcome::Fail)
        }
    }

    fn pass() -> DetectOutcome {
        DetectOutcome::Pass(BuildPlan::default())
    }

    fn plan(toml: &str) -> DetectOutcome {
        DetectOutcome::Pass(BuildPlan::parse(toml).unwrap())
    }

    fn error(message: &str) -> DetectOutcome {
        DetectOutcome::Error {
            message: message.to_owned(),
            output: "last lines".to_owned(),
        }
    }

    /// `"id"`, `"id?"` (optional) or `"id@version"`, into a group entry.
    fn entry(spec: &str) -> GroupRef {
        let (spec, optional) = match spec.strip_suffix('?') {
            Some(spec) => (spec, true),
            None => (spec, false),
        };
        let (id, version) = match spec.split_once('@') {
            Some((id, version)) => (id, Some(version.to_owned())),
            None => (spec, None),
        };
        GroupRef {
            id: BuildpackId::new(id).unwrap(),
            version,
            optional,
            exec_env: Vec::new(),
        }
    }

    fn order(groups: &[&[&str]]) -> Order {
        groups
            .iter()
            .map(|g| Group {
                group: g.iter().map(|s| entry(s)).collect(),
            })
            .collect()
    }

    fn buildpack(id: &str, version: &str, order: Order) -> Buildpack {
        Buildpack {
            dir: PathBuf::from(format!("/buildpacks/{id}/{version}")),
            descriptor: BuildpackDescriptor {
                api: "0.10".to_owned(),
                info: BuildpackInfo {
                    id: BuildpackId::new(id).unwrap(),
                    version: version.to_owned(),
                    name: None,
                    homepage: None,
                    description: None,
                    clear_env: false,
                    sbom_formats: Vec::new(),
                    exec_env: Vec::new(),
                },
                order,
                targets: Vec::new(),
                stacks: Vec::new(),
                metadata: toml::Table::new(),
                strata: None,
            },
        }
    }

    /// The target the tests build for.
    fn amd64() -> TargetEnv {
        TargetEnv {
            os: "linux".to_owned(),
            arch: "amd64".to_owned(),
            variant: None,
            distro_name: Some("ubuntu".to_owned()),
            distro_version: Some("22.04".to_owned()),
            stack_id: None,
        }
    }

    /// Component buildpack `id` at version 1 that supports only linux/`arch`.
    fn for_arch(id: &str, arch: &str) -> Buildpack {
        let mut bp = buildpack(id, "1", Vec::new());
        bp.descriptor.targets = vec![crate::Target {
            os: Some("linux".to_owned()),
            arch: Some(arch.to_owned()),
            ..crate::Target::default()
        }];
        bp
    }

    /// Component buildpacks `a`…`z`, `node`, `npm`, `web`, at version 1, plus `composites`.
    fn registry(composites: &[(&str, &[&[&str]])]) -> Registry {
        let mut registry = Registry::new();
        let components = ["a", "b", "c", "d", "x", "y", "node", "npm", "web"];
        for id in components {
            registry.insert(buildpack(id, "1", Vec::new())).unwrap();
        }
        for (id, groups) in composites {
            registry.insert(buildpack(id, "1", order(groups))).unwrap();
        }
        registry
    }

    /// The resolved group as `id` or `id[entry,entry]` when its plan has entries.
    fn summary(result: &DetectResult) -> Vec<String> {
        result
            .group
            .iter()
            .map(|m| {
                let names: Vec<&str> = m.plan.entries.iter().map(|e| e.name.as_str()).collect();
                if names.is_empty() {
                    m.buildpack.id().to_string()
                } else {
                    format!("{}[{}]", m.buildpack.id(), names.join(","))
                }
            })
            .collect()
    }

    enum Want {
        Group(&'static [&'static str]),
        Report(&'static [&'static str]),
        Errored(&'static str),
    }

    struct Case {
        name: &'static str,
        composites: &'static [(&'static str, &'static [&'static [&'static str]])],
        order: &'static [&'static [&'static str]],
        outcomes: Vec<(&'static str, DetectOutcome)>,
        want: Want,
    }

    fn check(case: &Case) {
        let registry = registry(case.composites);
        let detector = FakeDetector::new(&case.outcomes);
        let result = resolve(&order(case.order), &registry, &amd64(), &detector);
        for (id, calls) in detector.calls.lock().unwrap().iter() {
            assert_eq!(*calls, 1, "{}: {id} detected more than once", case.name);
        }
        match (&case.want, result) {
            (Want::Group(want), Ok(result)) => assert_eq!(summary(&result), *want, "{}", case.name),
            (Want::Report(want), Err(DetectError::NoGroupPassed { report })) => {
                assert_eq!(report, *want, "{}", case.name);
            }
            (
                Want::Errored(want),
                Err(DetectError::Errored {
                    buildpack, message, ..
                }),
            ) => {
                assert_eq!(buildpack, *want, "{}", case.name);
                assert!(!message.is_empty(), "{}", case.name);
            }
            (_, other) => panic!("{}: unexpected {other:?}", case.name),
        }
    }

    #[test]
    fn groups_and_optional_buildpacks() {
        let cases = vec![
            Case {
                name: "a single passing buildpack",
                composites: &[],
                order: &[&["a"]],
                outcomes: vec![("a", pass())],
                want: Want::Group(&["a"]),
            },
            Case {
                name: "failing optional buildpack is dropped",
                composites: &[],
                order: &[&["a", "b?", "c"]],
                outcomes: vec![("a", pass()), ("c", pass())],
                want: Want::Group(&["a", "c"]),
            },
            Case {
                name: "passing optional buildpack is kept",
                composites: &[],
                order: &[&["a", "b?"]],
                outcomes: vec![("a", pass()), ("b", pass())],
                want: Want::Group(&["a", "b"]),
            },
            Case {
                name: "only optional buildpacks, all failing",
                composites: &[],
                order: &[&["a?", "b?"]],
                outcomes: vec![],
                want: Want::Report(&["a@1: fail", "b@1: fail", "group 1: no buildpack passed"]),
            },
            Case {
                name: "a required failure moves on to the next group",
                composites: &[],
                order: &[&["a", "b"], &["c"]],
                outcomes: vec![("a", pass()), ("c", pass())],
                want: Want::Group(&["c"]),
            },
            Case {
                name: "the first passing group wins",
                composites: &[],
                order: &[&["a"], &["b"], &["c"]],
                outcomes: vec![("a", fail_outcome()), ("b", pass()), ("c", pass())],
                want: Want::Group(&["b"]),
            },
        ];
        for case in &cases {
            check(case);
        }
    }

    #[test]
    fn composites_expand_in_place() {
        let cases = vec![
            Case {
                name: "composites expand in place, nested, with optional members",
                composites: &[("outer", &[&["inner", "x?"]]), ("inner", &[&["a", "b?"]])],
                order: &[&["node", "outer", "c"]],
                outcomes: vec![
                    ("node", pass()),
                    ("a", pass()),
                    ("x", pass()),
                    ("c", pass()),
                ],
                want: Want::Group(&["node", "a", "x", "c"]),
            },
            Case {
                name: "a composite's groups are tried in order",
                composites: &[("meta", &[&["a", "b"], &["c", "d"], &["x"]])],
                order: &[&["meta", "y"]],
                outcomes: vec![
                    ("a", pass()),
                    ("c", pass()),
                    ("d", pass()),
                    ("x", pass()),
                    ("y", pass()),
                ],
                want: Want::Group(&["c", "d", "y"]),
            },
            Case {
                name: "an optional composite that fails is left out",
                composites: &[("meta", &[&["a", "b"]])],
                order: &[&["meta?", "c"]],
                outcomes: vec![("a", pass()), ("c", pass())],
                want: Want::Group(&["c"]),
            },
            Case {
                name: "a required composite whose groups all fail fails the group",
                composites: &[("meta", &[&["a"], &["b"]])],
                order: &[&["meta", "c"], &["d"]],
                outcomes: vec![("c", pass()), ("d", pass())],
                want: Want::Group(&["d"]),
            },
            Case {
                name: "a buildpack named twice runs once, first mention wins",
                composites: &[("meta", &[&["a", "b"]])],
                order: &[&["b?", "meta"]],
                outcomes: vec![("a", pass()), ("b", pass())],
                want: Want::Group(&["b", "a"]),
            },
        ];
        for case in &cases {
            check(case);
        }
    }

    #[test]
    fn build_plans_resolve() {
        let cases = vec![
            Case {
                name: "provider gets the requires of what it provides",
                composites: &[],
                order: &[&["node", "npm", "web"]],
                outcomes: vec![
                    ("node", plan("[[provides]]\nname = \"node\"\n")),
                    (
                        "npm",
                        plan(
                            "[[provides]]\nname = \"node_modules\"\n[[requires]]\nname = \"node\"\n\
                             [requires.metadata]\nversion = \"22\"\n[[requires]]\nname = \"node_modules\"\n",
                        ),
                    ),
                    ("web", plan("[[requires]]\nname = \"node\"\n")),
                ],
                want: Want::Group(&["node[node,node]", "npm[node_modules]", "web"]),
            },
            Case {
                name: "[[or]]: the first alternative fails, the second works",
                composites: &[],
                order: &[&["node", "npm"]],
                outcomes: vec![
                    ("node", plan("[[provides]]\nname = \"node\"\n")),
                    (
                        "npm",
                        plan(
                            "[[requires]]\nname = \"jdk\"\n[[or]]\n[[or.requires]]\nname = \"node\"\n",
                        ),
                    ),
                ],
                want: Want::Group(&["node[node]", "npm"]),
            },
            Case {
                name: "[[or]] alternatives are tried depth first",
                composites: &[],
                order: &[&["a", "b"]],
                outcomes: vec![
                    (
                        "a",
                        plan("[[provides]]\nname = \"x\"\n[[or]]\n[[or.provides]]\nname = \"y\"\n"),
                    ),
                    (
                        "b",
                        plan("[[requires]]\nname = \"y\"\n[[or]]\n[[or.requires]]\nname = \"z\"\n"),
                    ),
                ],
                want: Want::Group(&["a[y]", "b"]),
            },
        ];
        for case in &cases {
            check(case);
        }
    }

    #[test]
    fn unmet_plans_fail_or_drop() {
        let cases = vec![
            Case {
                name: "a require with no provider fails the group",
                composites: &[],
                order: &[&["a"], &["npm", "node"]],
                outcomes: vec![
                    (
                        "node",
                        plan("[[provides]]\nname = \"node\"\n[[requires]]\nname = \"node\"\n"),
                    ),
                    ("npm", plan("[[requires]]\nname = \"node\"\n")),
                ],
                want: Want::Report(&[
                    "a@1: fail",
                    "group 1: a@1 failed",
                    "npm@1: pass",
                    "node@1: pass",
                    "group 2: requires \"node\" (from npm@1) has no provider",
                ]),
            },
            Case {
                name: "a provide with no require fails the group",
                composites: &[],
                order: &[&["a", "b"]],
                outcomes: vec![
                    ("a", plan("[[provides]]\nname = \"x\"\n")),
                    (
                        "b",
                        plan("[[requires]]\nname = \"x\"\n[[provides]]\nname = \"y\"\n"),
                    ),
                ],
                want: Want::Report(&[
                    "a@1: pass",
                    "b@1: pass",
                    "group 1: provides \"y\" (from b@1) has no requirer",
                ]),
            },
            Case {
                name: "an optional buildpack whose provides break the trial is dropped",
                composites: &[],
                order: &[&["a", "b?", "c"]],
                outcomes: vec![
                    (
                        "a",
                        plan("[[provides]]\nname = \"x\"\n[[requires]]\nname = \"x\"\n"),
                    ),
                    ("b", plan("[[provides]]\nname = \"unused\"\n")),
                    ("c", plan("[[requires]]\nname = \"x\"\n")),
                ],
                want: Want::Group(&["a[x,x]", "c"]),
            },
            Case {
                name: "an optional buildpack whose requires break the trial is dropped",
                composites: &[],
                order: &[&["a?", "b"]],
                outcomes: vec![
                    ("a", plan("[[requires]]\nname = \"missing\"\n")),
                    ("b", pass()),
                ],
                want: Want::Group(&["b"]),
            },
            Case {
                name: "an optional buildpack's alternatives are tried before it is dropped",
                composites: &[],
                order: &[&["a?", "b"]],
                outcomes: vec![
                    (
                        "a",
                        plan(
                            "[[requires]]\nname = \"missing\"\n[[or]]\n[[or.provides]]\nname = \"x\"\n",
                        ),
                    ),
                    ("b", plan("[[requires]]\nname = \"x\"\n")),
                ],
                want: Want::Group(&["a[x]", "b"]),
            },
            Case {
                name: "dropping the only passing optional buildpack leaves nothing",
                composites: &[],
                order: &[&["a?", "b?"]],
                outcomes: vec![("a", plan("[[requires]]\nname = \"missing\"\n"))],
                want: Want::Report(&[
                    "a@1: pass",
                    "b@1: fail",
                    "group 1: no buildpack is left once the optional ones that break the plan are dropped",
                ]),
            },
        ];
        for case in &cases {
            check(case);
        }
    }

    #[test]
    fn errors_and_reports() {
        let cases = vec![
            Case {
                name: "a required detect error, no group passing",
                composites: &[],
                order: &[&["a", "x"], &["b"]],
                outcomes: vec![("a", pass()), ("x", error("exit status 3"))],
                want: Want::Errored("x@1"),
            },
            Case {
                name: "a detect error does not stop a later group from passing",
                composites: &[],
                order: &[&["x"], &["b"]],
                outcomes: vec![("x", error("exit status 3")), ("b", pass())],
                want: Want::Group(&["b"]),
            },
            Case {
                name: "an optional detect error is ignored",
                composites: &[],
                order: &[&["a", "x?"]],
                outcomes: vec![("a", pass()), ("x", error("exit status 3"))],
                want: Want::Group(&["a"]),
            },
            Case {
                name: "an invalid plan is a detect error",
                composites: &[],
                order: &[&["a"]],
                outcomes: vec![(
                    "a",
                    DetectOutcome::Pass(BuildPlan {
                        provides: vec![Provide {
                            name: String::new(),
                        }],
                        ..BuildPlan::default()
                    }),
                )],
                want: Want::Errored("a@1"),
            },
            Case {
                name: "the report when everything fails",
                composites: &[("meta", &[&["a", "b"], &["c"]])],
                order: &[&["meta", "node?"], &["npm", "x?"], &["web", "a"]],
                outcomes: vec![("a", pass()), ("x", error("exit status 3"))],
                want: Want::Report(&[
                    "a@1: pass",
                    "b@1: fail",
                    "node@1: fail",
                    "group 1: b@1 failed",
                    "c@1: fail",
                    "group 2: c@1 failed",
                    "npm@1: fail",
                    "x@1: error: exit status 3",
                    "group 3: npm@1 failed",
                    "web@1: fail",
                    "group 4: web@1 failed",
                ]),
            },
            Case {
                name: "an empty order",
                composites: &[],
                order: &[],
                outcomes: vec![],
                want: Want::Report(&["the order has no group"]),
            },
        ];
        for case in &cases {
            check(case);
        }
    }

    fn fail_outcome() -> DetectOutcome {
        DetectOutcome::Fail
    }

    #[test]
    fn detect_errors_of_a_passing_resolution_are_kept_in_the_result() {
        let registry = registry(&[]);
        let detector = FakeDetector::new(&[
            ("a", pass()),
            (
                "x",
                DetectOutcome::Error {
                    message: "exit status 3".into(),
                    output: "x: boom".into(),
                },
            ),
            ("y", error("exit status 4")),
            ("b", pass()),
        ]);
        let result = resolve(
            &order(&[&["y", "b"], &["a", "x?"]]),
            &registry,
            &amd64(),
            &detector,
        )
        .unwrap();
        assert_eq!(summary(&result), ["a"]);
        let errored: Vec<(&str, &str, &str)> = result
            .errored
            .iter()
            .map(|e| (e.buildpack.as_str(), e.message.as_str(), e.output.as_str()))
            .collect();
        assert_eq!(
            errored,
            [
                ("y@1", "exit status 4", "last lines"),
                ("x@1", "exit status 3", "x: boom")
            ]
        );
        let clean = resolve(&order(&[&["a"]]), &registry, &amd64(), &detector).unwrap();
        assert!(clean.errored.is_empty());
    }

    #[test]
    fn buildpacks_and_order_entries_for_other_exec_envs_are_skipped() {
        let mut registry = registry(&[]);
        let mut testing = buildpack("t", "1", Vec::new());
        testing.descriptor.info.exec_env = vec!["test".into()];
        registry.insert(testing).unwrap();
        let detector = FakeDetector::new(&[("a", pass()), ("b", pass()), ("t", pass())]);
        let mut order = order(&[&["a", "t", "b"]]);
        order[0].group[2].exec_env = vec!["production".into(), "development".into()];
        let run = |order: &Order, exec_env: &str| {
            summary(&resolve_for_exec_env(order, &registry, &amd64(), exec_env, &detector).unwrap())
        };
        assert_eq!(run(&order, "production"), ["a", "b"]);
        assert_eq!(run(&order, "test"), ["a", "t"]);
        assert_eq!(run(&order, "development"), ["a", "b"]);
        // A required buildpack that is skipped does not fail its group; `*` is for all.
        order[0].group[2].exec_env = vec!["*".into()];
        assert_eq!(run(&order, "staging"), ["a", "b"]);
        // A group left with nothing to detect fails, and the next one is tried.
        let only_test = super::tests::order(&[&["t"], &["b"]]);
        let result =
            resolve_for_exec_env(&only_test, &registry, &amd64(), "production", &detector).unwrap();
        assert_eq!(summary(&result), ["b"]);
        assert_eq!(detector.calls("t"), 1, "t ran only for the test build");
    }

    #[test]
    fn detect_errors_keep_message_and_output() {
        let registry = registry(&[]);
        let detector = FakeDetector::new(&[("x", error("exit status 3"))]);
        let err = resolve(&order(&[&["x"]]), &registry, &amd64(), &detector).unwrap_err();
        let DetectError::Errored {
            buildpack,
            message,
            output,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(
            (buildpack.as_str(), message.as_str(), output.as_str()),
            ("x@1", "exit status 3", "last lines")
        );
        assert_eq!(
            err.to_string(),
            "detect of buildpack x@1 failed: exit status 3\nlast lines"
        );
    }

    #[test]
    fn detects_only_what_is_needed_and_each_buildpack_once() {
        let registry = registry(&[("meta", &[&["a", "b"], &["a", "c"]])]);
        let detector = FakeDetector::new(&[("a", pass()), ("c", pass()), ("d", pass())]);
        let order = order(&[&["b", "x"], &["meta"], &["a", "b"], &["d"]]);
        let result = resolve(&order, &registry, &amd64(), &detector).unwrap();
        assert_eq!(summary(&result), ["a", "c"]);
        assert_eq!(detector.calls("a"), 1);
        assert_eq!(detector.calls("b"), 1);
        // Group 1 ran b and x together; later groups are never tried.
        assert_eq!(detector.calls("x"), 1);
        assert_eq!(detector.calls("d"), 0);
    }

    #[test]
    fn a_group_known_to_fail_runs_no_detect() {
        let registry = registry(&[]);
        let detector = FakeDetector::new(&[("b", pass())]);
        let order = order(&[&["a"], &["b", "a", "c"]]);
        let err = resolve(&order, &registry, &amd64(), &detector).unwrap_err();
        assert_eq!(detector.calls("b"), 0);
        assert_eq!(detector.calls("c"), 0);
        let DetectError::NoGroupPassed { report } = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            report,
            ["a@1: fail", "group 1: a@1 failed", "group 2: a@1 failed"]
        );
    }

    #[test]
    fn plan_entries_carry_require_metadata() {
        let registry = registry(&[]);
        let detector = FakeDetector::new(&[
            ("node", plan("[[provides]]\nname = \"node\"\n")),
            (
                "npm",
                plan(
                    "[[requires]]\nname = \"node\"\n[requires.metadata]\nversion = \"22.x\"\nlaunch = true\n",
                ),
            ),
        ]);
        let result = resolve(&order(&[&["node", "npm"]]), &registry, &amd64(), &detector).unwrap();
        let entries = &result.group[0].plan.entries;
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, "node");
        assert_eq!(entries[0].metadata["version"].as_str(), Some("22.x"));
        assert_eq!(entries[0].metadata["launch"].as_bool(), Some(true));
        assert!(result.group[1].plan.entries.is_empty());
        assert_eq!(result.group[1].buildpack.reference(), "npm@1");
    }

    #[test]
    fn versions_pick_the_buildpack() {
        let mut registry = registry(&[]);
        registry.insert(buildpack("a", "2", Vec::new())).unwrap();
        let detector = FakeDetector::new(&[("a", pass())]);
        let newest = resolve(&order(&[&["a"]]), &registry, &amd64(), &detector).unwrap();
        assert_eq!(newest.group[0].buildpack.version(), "2");
        let pinned = resolve(&order(&[&["a@1"]]), &registry, &amd64(), &detector).unwrap();
        assert_eq!(pinned.group[0].buildpack.version(), "1");
    }

    #[test]
    fn unknown_buildpacks_and_cycles_are_errors() {
        let registry = registry(&[("p", &[&["q"]]), ("q", &[&["a", "p"]]), ("s", &[&["s"]])]);
        let detector = FakeDetector::new(&[("a", pass())]);
        let err = resolve(&order(&[&["ghost"]]), &registry, &amd64(), &detector).unwrap_err();
        assert!(
            matches!(err, DetectError::Registry(RegistryError::Unknown { .. })),
            "{err:?}"
        );
        let err = resolve(&order(&[&["p"]]), &registry, &amd64(), &detector).unwrap_err();
        assert!(
            matches!(&err, DetectError::Cycle { chain } if chain == "p@1 -> q@1 -> p@1"),
            "{err:?}"
        );
        let err = resolve(&order(&[&["s"]]), &registry, &amd64(), &detector).unwrap_err();
        assert!(
            matches!(&err, DetectError::Cycle { chain } if chain == "s@1 -> s@1"),
            "{err:?}"
        );
    }

    #[test]
    fn too_many_trials_fail_the_group() {
        let registry = registry(&[]);
        let alternatives = "[[or]]\n".repeat(20);
        let outcomes: Vec<(&str, DetectOutcome)> = ["a", "b", "c", "d", "x"]
            .into_iter()
            .map(|id| (id, plan(&alternatives)))
            .collect();
        let detector = FakeDetector::new(&outcomes);
        let err = resolve(
            &order(&[&["a", "b", "c", "d", "x"]]),
            &registry,
            &amd64(),
            &detector,
        )
        .unwrap_err();
        let DetectError::NoGroupPassed { report } = err else {
            panic!("{err:?}")
        };
        assert!(
            report.last().unwrap().contains("more than the 65536"),
            "{report:?}"
        );
    }

    #[test]
    fn a_buildpack_for_another_arch_is_skipped() {
        let mut registry = registry(&[]);
        registry.insert(for_arch("arm", "arm64")).unwrap();
        registry.insert(for_arch("intel", "amd64")).unwrap();
        let detector = FakeDetector::new(&[("arm", pass()), ("intel", pass()), ("a", pass())]);

        // Optional: left out of the group, never run, and listed with why.
        let result = resolve(&order(&[&["arm?", "a"]]), &registry, &amd64(), &detector).unwrap();
        assert_eq!(summary(&result), ["a"]);
        assert_eq!(
            result.skipped,
            [Skipped {
                buildpack: "arm@1".to_owned(),
                mismatch: Mismatch {
                    supports: "linux/arm64".to_owned(),
                    target: "linux/amd64 ubuntu@22.04".to_owned(),
                },
            }]
        );
        assert_eq!(
            result.skipped[0].to_string(),
            "arm@1: it supports linux/arm64, not the target linux/amd64 ubuntu@22.04"
        );
        // Required: its group fails and the next one, with a buildpack for amd64, passes.
        let order = order(&[&["arm", "a"], &["intel", "a"]]);
        let result = resolve(&order, &registry, &amd64(), &detector).unwrap();
        assert_eq!(summary(&result), ["intel", "a"]);
        assert!(
            result.skipped.is_empty(),
            "only the passing group's are listed"
        );
        assert_eq!(
            detector.calls("arm"),
            0,
            "an unsupported buildpack never runs"
        );
    }

    #[test]
    fn a_group_whose_buildpacks_cannot_run_names_them_and_the_target() {
        let mut registry = registry(&[]);
        registry.insert(for_arch("arm", "arm64")).unwrap();
        let detector = FakeDetector::new(&[("arm", pass()), ("a", pass())]);
        for groups in [&[&["arm", "a"][..]][..], &[&["arm?"]]] {
            let err = resolve(&order(groups), &registry, &amd64(), &detector).unwrap_err();
            let DetectError::Unsupported {
                buildpack,
                targets,
                target,
                ..
            } = &err
            else {
                panic!("{err:?}")
            };
            assert_eq!(buildpack, "arm@1");
            assert_eq!(targets, "linux/arm64");
            assert_eq!(target, "linux/amd64 ubuntu@22.04");
            assert!(
                err.to_string().starts_with(
                    "buildpack arm@1 cannot build for the run image's target linux/amd64 \
                     ubuntu@22.04: it supports linux/arm64\n"
                ),
                "{err}"
            );
        }
        assert_eq!(detector.calls("arm"), 0);
        assert_eq!(detector.calls("a"), 0, "a group known to fail runs nothing");
    }

    #[test]
    fn distros_decide_which_buildpack_runs() {
        let mut registry = registry(&[]);
        let mut noble = for_arch("noble", "amd64");
        noble.descriptor.targets[0].distros = vec![("ubuntu".to_owned(), Some("24.04".to_owned()))];
        registry.insert(noble).unwrap();
        let detector = FakeDetector::new(&[("noble", pass()), ("a", pass())]);
        let err = resolve(&order(&[&["noble"]]), &registry, &amd64(), &detector).unwrap_err();
        assert!(
            matches!(&err, DetectError::Unsupported { targets, .. } if targets == "linux/amd64 (ubuntu@24.04)"),
            "{err:?}"
        );
    }

    #[test]
    fn stacks_decide_against_the_run_images_stack_id() {
        let mut registry = registry(&[]);
        let mut jammy = buildpack("jammy", "1", Vec::new());
        jammy.descriptor.stacks = vec!["io.buildpacks.stacks.jammy".to_owned()];
        registry.insert(jammy).unwrap();
        let detector = FakeDetector::new(&[("jammy", pass())]);
        let mut target = amd64();
        target.stack_id = Some("io.buildpacks.stacks.jammy".to_owned());
        let result = resolve(&order(&[&["jammy"]]), &registry, &target, &detector).unwrap();
        assert_eq!(summary(&result), ["jammy"]);

        target.stack_id = Some("examples.busybox".to_owned());
        let err = resolve(&order(&[&["jammy"]]), &registry, &target, &detector).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "buildpack jammy@1 cannot build for the run image's target stack \
                 examples.busybox: it supports stacks io.buildpacks.stacks.jammy\n"
            ),
            "{err}"
        );
    }
}
