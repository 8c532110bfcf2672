//! `bin/detect` under the CNB contract, as the planner's [`Detector`].
//!
//! Each detect runs in the sandbox with the app at `/workspace` (read-only), the platform dir
//! at `/platform`, the buildpack at `/cnb/buildpacks/<id>/<version>`, and an empty build plan
//! file it may write, passed positionally and as `CNB_BUILD_PLAN_PATH`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize as _;
use strata_planner::{BuildPlan, Buildpack, DetectOutcome, Detector};

use crate::platform::{PlatformDir, TargetEnv, platform_env, process_env, sandbox_base_env};
use crate::sandbox::{Mount, Purpose, Sandbox, SandboxCommand};

/// Where the platform dir is mounted.
pub const PLATFORM_TARGET: &str = "/platform";

/// Runs `bin/detect` processes for one app.
#[derive(Debug)]
pub struct ProcessDetector<'a> {
    /// The sandbox processes run in.
    pub sandbox: &'a Sandbox,
    /// The app (host path), mounted read-only at `/workspace`.
    pub app_dir: &'a Path,
    /// The platform dir.
    pub platform: &'a PlatformDir,
    /// The target.
    pub target: &'a TargetEnv,
    /// A scratch directory for plan files and logs.
    pub scratch: PathBuf,
    /// Whether detect may reach the network.
    pub network: bool,
    /// The execution environment (`CNB_EXEC_ENV`).
    pub exec_env: &'a str,
    /// How many processes were spawned (for reports and tests).
    pub spawned: AtomicUsize,
}

/// Where a buildpack's directory is mounted: `/cnb/buildpacks/<escaped id>/<version>`.
pub fn buildpack_target(buildpack: &Buildpack) -> String {
    format!(
        "/cnb/buildpacks/{}/{}",
        buildpack.id().escaped(),
        buildpack.version()
    )
}

impl Detector for ProcessDetector<'_> {
    fn detect(&self, buildpack: &Buildpack) -> DetectOutcome {
        match self.run(buildpack) {
            Ok(outcome) => outcome,
            Err(e) => DetectOutcome::Error {
                message: e.to_string(),
                output: String::new(),
            },
        }
    }
}

impl ProcessDetector<'_> {
    fn run(&self, buildpack: &Buildpack) -> Result<DetectOutcome, Box<dyn std::error::Error>> {
        // A fresh directory per run: the process may leave links in it, and strata writes
        // the empty plan and the log there before the next detect of the buildpack runs.
        fs::create_dir_all(&self.scratch)?;
        let private = tempfile::Builder::new()
            .prefix(&format!(
                "detect-{}-{}-",
                buildpack.id().escaped(),
                buildpack.version()
            ))
            .tempdir_in(&self.scratch)?;
        let dir = private.path();
        let plan_host = dir.join("plan.toml");
        fs::write(&plan_host, "")?;
        self.sandbox.hand_over(dir)?;
        let platform = self.platform.mounts(self.sandbox, true)?;
        let mut mounts = vec![
            Mount::ro(self.app_dir, "/workspace"),
            Mount::ro(&buildpack.dir, buildpack_target(buildpack)),
            Mount::rw(dir, "/tmp/detect"),
        ];
        let [workspace, bp_dir, io] = [0, 1, 2].map(|i| self.sandbox.view(&mounts[i]));
        mounts.extend(platform.mounts);
        let plan_path = format!("{io}/plan.toml");
        // As at build, with no earlier layers: a detect sees what the platform gives.
        let user = self.platform.user_env(buildpack.descriptor.info.clear_env);
        let mut env = process_env(sandbox_base_env(self.sandbox), &[], user);
        env.apply(self.platform.operator_env());
        env.extend(platform_env(self.target, platform.bindings_root.as_deref()));
        env.extend([
            ("CNB_BUILDPACK_DIR", bp_dir.as_str()),
            ("CNB_PLATFORM_DIR", platform.dir.as_str()),
            ("CNB_BUILD_PLAN_PATH", plan_path.as_str()),
            ("CNB_EXEC_ENV", self.exec_env),
        ]);
        let platform = platform.dir;
        let cmd = SandboxCommand {
            argv: vec![format!("{bp_dir}/bin/detect"), platform, plan_path],
            env: env.into_vec(),
            mounts,
            sealed: Vec::new(),
            cwd: workspace,
            network: self.network,
            purpose: Purpose::Detect,
        };
        self.spawned.fetch_add(1, Ordering::Relaxed);
        let done = self.sandbox.run(&cmd, &dir.join("detect.log"))?;
        Ok(match done.status.code() {
            Some(0) => parse_plan(
                &crate::untrusted::read_to_string(&plan_host, crate::untrusted::METADATA_LIMIT)?,
                &done.tail,
            ),
            Some(100) => DetectOutcome::Fail,
            Some(code) => DetectOutcome::Error {
                message: format!("exit status {code}"),
                output: done.tail,
            },
            None => DetectOutcome::Error {
                message: format!("killed ({})", done.status),
                output: done.tail,
            },
        })
    }
}

/// Parses the build plan a passing detect wrote.
fn parse_plan(text: &str, output: &str) -> DetectOutcome {
    let error = |message: String| DetectOutcome::Error {
        message,
        output: output.to_owned(),
    };
    let table: toml::Table = match toml::from_str(text) {
        Ok(table) => table,
        Err(e) => return error(format!("invalid build plan: {}", e.message())),
    };
    let requires = std::iter::once(&table)
        .chain(
            table
                .get("or")
                .and_then(toml::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(toml::Value::as_table),
        )
        .filter_map(|t| t.get("requires").and_then(toml::Value::as_array))
        .flatten()
        .filter_map(toml::Value::as_table);
    for require in requires {
        if require.contains_key("version") {
            let name = require
                .get("name")
                .and_then(toml::Value::as_str)
                .unwrap_or("?");
            return error(format!(
                "invalid build plan: require `{name}` has a top-level `version`; put it in `metadata.version`"
            ));
        }
    }
    match BuildPlan::deserialize(toml::Value::Table(table)) {
        Ok(plan) => DetectOutcome::Pass(plan),
        Err(e) => error(format!("invalid build plan: {}", e.message())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse_and_reject_top_level_versions() {
        let DetectOutcome::Pass(plan) = parse_plan(
            "[[provides]]\nname = \"node\"\n[[requires]]\nname = \"node\"\n[requires.metadata]\nversion = \"20\"\n",
            "",
        ) else {
            panic!("plan should parse")
        };
        assert_eq!(plan.provides[0].name, "node");
        assert_eq!(plan.requires[0].metadata["version"].as_str(), Some("20"));
        assert!(matches!(parse_plan("", ""), DetectOutcome::Pass(p) if p == BuildPlan::default()));
        let bad = parse_plan(
            "[[or]]\n[[or.requires]]\nname = \"x\"\nversion = \"1\"\n",
            "out",
        );
        assert!(
            matches!(bad, DetectOutcome::Error { ref message, ref output } if message.contains("metadata.version") && output == "out"),
            "{bad:?}"
        );
        assert!(matches!(
            parse_plan("[[provides]\n", ""),
            DetectOutcome::Error { .. }
        ));
    }
}
