//! `bin/build` under the CNB contract, for one buildpack of a group.
//!
//! Every buildpack gets its own `/layers/<escaped id>` (writable) and sees the layers of the
//! buildpacks before it read-only, with the build env their `build = true` layers contribute
//! (their `bin` on `PATH`, `env.build/`, …), with the user env on top (see
//! [`crate::platform::process_env`]). The app at `/workspace` is a private copy that a
//! buildpack may change; the change is part of the build's output. What each buildpack leaves
//! behind is parsed and validated before the next one starts, so a bad layer name fails the
//! build at the buildpack that wrote it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;

use strata_planner::{Buildpack, BuildpackPlan};

use crate::detect::buildpack_target;
use crate::env::{Env, EnvError, Phase, layer_env};
use crate::layers::{
    BuildpackLayers, Layer, LayerError, read_layers_dir_reusing, set_aside_untyped,
};
use crate::platform::{PlatformDir, TargetEnv, platform_env, process_env, sandbox_base_env};
use crate::sandbox::{Finished, Mount, Purpose, Sandbox, SandboxCommand, SandboxError};

/// Where buildpack layer directories are mounted.
pub const LAYERS_TARGET: &str = "/layers";
/// Where the app is mounted.
pub const WORKSPACE_TARGET: &str = "/workspace";

/// One CNB build of one app.
#[derive(Debug)]
pub struct BuildRequest<'a> {
    /// The sandbox processes run in.
    pub sandbox: &'a Sandbox,
    /// The app as the user has it, read-only to declared layers and detect (they read the
    /// app's source, which is what their keys cover).
    pub source: &'a Path,
    /// The app's private copy (host path); opaque buildpacks may change it.
    pub workspace: &'a Path,
    /// The platform dir.
    pub platform: &'a PlatformDir,
    /// The target.
    pub target: &'a TargetEnv,
    /// An empty scratch directory for layers, plans and logs.
    pub scratch: &'a Path,
    /// Whether buildpacks may reach the network.
    pub network: bool,
    /// The execution environment (`CNB_EXEC_ENV`): `production`, `test`, …
    pub exec_env: &'a str,
}

/// What a build left: the app and each buildpack's layers, in group order.
#[derive(Debug)]
pub struct BuildOutput {
    /// The app after the build (host path): the private copy buildpacks worked on, or the
    /// app itself when none changed it.
    pub workspace: PathBuf,
    /// What of `workspace` is the app (relative paths), when it is the app itself and not all
    /// of it (`project.toml` include and exclude, `.git/`); `None` for all of it.
    pub selection: Option<std::collections::HashSet<PathBuf>>,
    /// Each buildpack's results, in group order.
    pub buildpacks: Vec<BuildpackOutput>,
}

/// What one buildpack left.
#[derive(Debug, Clone)]
pub struct BuildpackOutput {
    /// The buildpack.
    pub buildpack: Arc<Buildpack>,
    /// The Buildpack Plan it received.
    pub plan: BuildpackPlan,
    /// Its layers directory (host path).
    pub layers_dir: PathBuf,
    /// Its layers, `launch.toml`, `build.toml`, `store.toml` and SBOM files.
    pub layers: BuildpackLayers,
    /// Its build log.
    pub log: PathBuf,
    /// Whether its `bin/build` changed the app.
    pub app_changed: bool,
    /// The digest of that change (the diffID of its tar and the paths it deleted), once
    /// stored: what a later buildpack and the app layer see of it.
    pub change: Option<strata_planner::TaskKey>,
}

/// Where a layer is in the image: `/layers/<escaped id>/<name>`.
pub fn layer_target(buildpack: &Buildpack, layer: &str) -> String {
    format!("{LAYERS_TARGET}/{}/{layer}", buildpack.id().escaped())
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `bin/build` exited non-zero.
    #[error("buildpack {buildpack} failed: bin/build {}\n--- last lines of its output ---\n{tail}", describe_exit(*status))]
    Failed {
        buildpack: String,
        status: ExitStatus,
        log: PathBuf,
        tail: String,
    },
    /// A declared layer's `run` script exited non-zero.
    #[error(
        "layer {layer} failed: its run script {exit}\n--- last lines of its output ---\n{tail}"
    )]
    LayerFailed {
        layer: String,
        exit: String,
        log: PathBuf,
        tail: String,
    },
    /// A declared layer's input cannot be mounted: a symlink leading outside the app.
    #[error("layer {layer}: input {message}")]
    LayerInput { layer: String, message: String },
    /// A declared layer's script wrote an SBOM strata cannot take.
    #[error("layer {layer}: {message}")]
    LayerSbom { layer: String, message: String },
    /// What the buildpack left is invalid.
    #[error(transparent)]
    Layers(#[from] LayerError),
    /// An env file could not be read.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// `build.toml` lists an unmet entry the buildpack was not given.
    #[error(
        "buildpack {buildpack}: build.toml lists unmet `{name}`, which is not in its Buildpack Plan"
    )]
    Unmet { buildpack: String, name: String },
    /// The process could not run.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The app could not be copied to its private workspace.
    #[error(transparent)]
    AppDir(#[from] crate::appdir::AppDirError),
    /// The service's image could not be exported.
    #[error("cannot export {service}: {source}")]
    Export {
        service: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Scratch files could not be written.
    #[error("cannot write {path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// `exited with code 3`, `was killed by signal 9`.
pub fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Runs `cmd` with its output in `<scratch>/logs/<name>.log`.
pub(crate) fn run_logged(
    req: &BuildRequest<'_>,
    cmd: &SandboxCommand,
    name: &str,
) -> Result<(Finished, PathBuf), BuildError> {
    let dir = req.scratch.join("logs");
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let log = dir.join(format!("{name}.log"));
    let finished = req.sandbox.run(cmd, &log)?;
    Ok((finished, log))
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The env `buildpack` runs with: the platform's base env, then the build env of the
/// `build = true` layers of the buildpacks before it (whose layers it sees read-only), then
/// the user env on top unless it asks for `clear-env` (see [`process_env`]), then what the
/// platform sets.
fn build_env(
    req: &BuildRequest<'_>,
    buildpack: &Buildpack,
    before: &[BuildpackOutput],
    mounts: &mut Vec<Mount>,
    bindings_root: Option<&str>,
) -> Result<Env, BuildError> {
    let mut earlier = Vec::new();
    // Each layer on its own: a layer shared by several services was built in the scratch of
    // one of them, so one buildpack's layers need not share a directory.
    for bp in before {
        let base = format!("{LAYERS_TARGET}/{}", bp.buildpack.id().escaped());
        for layer in &bp.layers.layers {
            // A layer without types is the buildpack's own scratch, never a later one's.
            if !layer.types.any() || !layer.dir.is_dir() {
                continue;
            }
            let mount = Mount::ro(&layer.dir, format!("{base}/{}", layer.name));
            let view = req.sandbox.view(&mount);
            mounts.push(mount);
            if layer.types.build {
                earlier.extend(layer_env(&layer.dir, &view, Phase::Build)?);
            }
        }
    }
    let user = req.platform.user_env(buildpack.descriptor.info.clear_env);
    let mut env = process_env(sandbox_base_env(req.sandbox), &earlier, user);
    env.apply(req.platform.operator_env());
    env.extend(platform_env(req.target, bindings_root));
    Ok(env)
}

/// Runs one opaque buildpack's `bin/build` after the buildpacks (or declared layers) in
/// `before`, and reads what it left. It receives `plan` without the entries `before` met
/// (see [`crate::unmet`]). `previous` are the layers its last run left that it may reuse
/// without their directory (see [`crate::restore`]); empty for a cold run.
pub fn run_buildpack(
    req: &BuildRequest<'_>,
    buildpack: &Arc<Buildpack>,
    plan: &BuildpackPlan,
    before: &[BuildpackOutput],
    previous: &[Layer],
) -> Result<BuildpackOutput, BuildError> {
    let plan = &crate::unmet::plan_after(plan, before);
    let escaped = buildpack.id().escaped();
    let layers_dir = req.scratch.join("layers").join(&escaped);
    let io_dir = req.scratch.join("io").join(&escaped);
    for dir in [&layers_dir, &io_dir] {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let plan_host = io_dir.join("plan.toml");
    let plan_text = toml::to_string(plan).map_err(|e| BuildError::Io {
        path: plan_host.clone(),
        source: io::Error::other(e),
    })?;
    fs::write(&plan_host, plan_text).map_err(io_err(&plan_host))?;
    // The buildpack may refine its plan (Buildpack API < 0.10 writes it back).
    req.sandbox.hand_over(&io_dir)?;

    let platform = req
        .platform
        .mounts(req.sandbox, true)
        .map_err(io_err(&plan_host))?;
    let mut mounts = vec![
        Mount::rw(req.workspace, WORKSPACE_TARGET),
        Mount::ro(&buildpack.dir, buildpack_target(buildpack)),
        Mount::rw(&io_dir, "/tmp/build"),
        Mount::rw(&layers_dir, format!("{LAYERS_TARGET}/{escaped}")),
    ];
    let [workspace, bp_dir, io, layers] = [0, 1, 2, 3].map(|i| req.sandbox.view(&mounts[i]));
    mounts.extend(platform.mounts);
    let plan_path = format!("{io}/plan.toml");

    let mut env = build_env(
        req,
        buildpack,
        before,
        &mut mounts,
        platform.bindings_root.as_deref(),
    )?;
    let platform = platform.dir;
    env.set("CNB_LAYERS_DIR", &layers);
    env.set("CNB_BP_PLAN_PATH", &plan_path);
    env.set("CNB_BUILDPACK_DIR", &bp_dir);
    env.set("CNB_PLATFORM_DIR", &platform);
    env.set("CNB_EXEC_ENV", req.exec_env);

    let cmd = SandboxCommand {
        argv: vec![format!("{bp_dir}/bin/build"), layers, platform, plan_path],
        env: env.into_vec(),
        mounts,
        sealed: Vec::new(),
        cwd: workspace,
        network: req.network,
        purpose: Purpose::Build,
    };
    let (finished, log) = run_logged(req, &cmd, &format!("build-{escaped}"))?;
    if !finished.status.success() {
        return Err(BuildError::Failed {
            buildpack: buildpack.reference(),
            status: finished.status,
            log,
            tail: finished.tail,
        });
    }
    let info = &buildpack.descriptor.info;
    let mut layers = read_layers_dir_reusing(
        &layers_dir,
        info.id.as_str(),
        &buildpack.descriptor.api,
        &info.sbom_formats,
        previous,
    )?;
    set_aside_untyped(&mut layers, info.id.as_str())?;
    if let Some(name) = layers
        .unmet
        .iter()
        .find(|name| !plan.entries.iter().any(|e| &e.name == *name))
    {
        return Err(BuildError::Unmet {
            buildpack: buildpack.reference(),
            name: name.clone(),
        });
    }
    Ok(BuildpackOutput {
        buildpack: Arc::clone(buildpack),
        plan: plan.clone(),
        layers_dir,
        layers,
        log,
        app_changed: false,
        change: None,
    })
}
