//! What an app image gives the CNB launcher: its two layers, what it reads at launch, how the
//! image's config starts it, and its SBOM.
//!
//! The lifecycle's exporter writes, after the app layers: the launcher layer
//! (`/cnb/lifecycle/launcher`, history `Buildpacks Application Launcher`), the config layer
//! (`/layers/config/metadata.toml`, what the launcher reads: every process and every
//! buildpack's API) and, when there are processes, the process-types layer (one symlink
//! `/cnb/process/<type>` to the launcher each, `Buildpacks Process Types`). All of it is
//! root-owned, so the app cannot replace its own launcher. The launcher layer depends on
//! nothing but the strata version, so its diffID is the same for every image and machine.
//!
//! The launcher picks the process by the basename of `argv[0]`, so the image's `Entrypoint`
//! is `/cnb/process/<default>` (or the bare launcher without a default) and `Cmd` is empty:
//! `docker run IMAGE args…` gives the default process new args, `docker run --entrypoint
//! /cnb/process/worker IMAGE` starts another. Buildpack launch env is applied by the launcher
//! at run time, so the config's `Env` holds only the run image's and the platform's.

use std::path::Path;

use strata_engine::env::Env;
use strata_engine::layers::Process;
use strata_engine::platform::PLATFORM_API;

use crate::archive::{ArchiveError, LayerBuilder, Owner};
use crate::baseconfig::base_env;
use crate::image::ExportRequest;
use crate::launcher;

/// Where the launcher is in an app image.
pub const LAUNCHER_PATH: &str = "/cnb/lifecycle/launcher";
/// The directory of the process-type symlinks.
pub const PROCESS_DIR: &str = "/cnb/process";
/// Where the launcher reads the processes and buildpacks from.
pub const CONFIG_PATH: &str = "/layers/config/metadata.toml";
/// History of the launcher layer.
pub const LAUNCHER_CREATED_BY: &str = "Buildpacks Application Launcher";
/// History of the config layer.
pub const CONFIG_CREATED_BY: &str = "Buildpacks Launcher Config";
/// History of the process-types layer.
pub const PROCESS_TYPES_CREATED_BY: &str = "Buildpacks Process Types";
/// The directory of the launcher's SBOMs, below the SBOM layer's root (as the lifecycle puts
/// its own).
pub const SBOM_DIR: &str = "layers/sbom/launch/buildpacksio_lifecycle/launcher";
/// `CNB_DEPRECATION_MODE` in the image: the launcher warns about nothing at run time.
const DEPRECATION_MODE: &str = "quiet";

/// The launcher layer: `/cnb/lifecycle/launcher`, mode 0755, root-owned, dated `epoch`.
///
/// # Errors
/// None in practice: the paths are fixed; the error is the tar writer's.
pub fn launcher_layer(epoch: u64) -> Result<LayerBuilder, ArchiveError> {
    let mut builder = LayerBuilder::new(Owner::ROOT, epoch);
    builder.add_bytes(
        LAUNCHER_PATH.trim_start_matches('/'),
        launcher::BINARY,
        0o755,
    )?;
    Ok(builder)
}

/// The process-types layer: `/cnb/process/<type>` → `../lifecycle/launcher` for each process,
/// root-owned, dated `epoch`; `None` without processes (the lifecycle writes none then).
///
/// # Errors
/// A process type that is not a file name (types are checked when `launch.toml` is read).
pub fn process_types_layer<'a>(
    types: impl IntoIterator<Item = &'a str>,
    epoch: u64,
) -> Result<Option<LayerBuilder>, ArchiveError> {
    let mut builder = LayerBuilder::new(Owner::ROOT, epoch);
    let mut any = false;
    for ty in types {
        if ty.is_empty() || ty.contains('/') || ty == "." || ty == ".." {
            return Err(ArchiveError::InvalidImagePath {
                path: format!("{PROCESS_DIR}/{ty}"),
                reason: "a process type must be a file name",
            });
        }
        let path = format!("{}/{ty}", PROCESS_DIR.trim_start_matches('/'));
        builder.add_symlink(&path, "../lifecycle/launcher")?;
        any = true;
    }
    Ok(any.then_some(builder))
}

/// The image's `Entrypoint` with a launcher: the default process's symlink, else the launcher
/// itself (which then runs `CNB_PROCESS_TYPE` or the user's command).
pub fn entrypoint(default: Option<&str>) -> String {
    default.map_or_else(
        || LAUNCHER_PATH.to_owned(),
        |ty| format!("{PROCESS_DIR}/{ty}"),
    )
}

/// The config `Env` of an image with a launcher: the run image's, the CNB platform variables,
/// and `PATH` with the process and launcher directories first (so `docker run IMAGE web`
/// and `launcher` resolve).
pub fn launcher_env(run: &oci_spec::image::ImageConfiguration) -> Env {
    let mut env = base_env(run);
    env.set("CNB_PLATFORM_API", PLATFORM_API);
    env.set("CNB_DEPRECATION_MODE", DEPRECATION_MODE);
    let lifecycle_dir = LAUNCHER_PATH.trim_end_matches("/launcher");
    let path = match env.get("PATH").filter(|p| !p.is_empty()) {
        Some(run_path) => format!("{PROCESS_DIR}:{lifecycle_dir}:{run_path}"),
        None => format!("{PROCESS_DIR}:{lifecycle_dir}"),
    };
    env.set("PATH", path);
    env
}

/// `launcher` in `io.buildpacks.build.metadata`: its version and where its source is (see
/// [`crate::launcher`]).
pub fn launcher_metadata() -> serde_json::Value {
    serde_json::json!({
        "version": launcher::VERSION,
        "source": {
            "git": {
                "repository": crate::launcher::SOURCE_REPOSITORY,
                "commit": crate::launcher::SOURCE_COMMIT,
            }
        }
    })
}

/// `/layers/config/metadata.toml`, in the lifecycle's format: each process (`type`,
/// `command` as an array, `args`, `direct`, `default`, `buildpack-id`, `working-dir`) and each
/// buildpack (`id`, `api`, plus `version`), and the default process type.
pub fn config_toml(
    req: &ExportRequest<'_>,
    processes: &[(Process, String)],
    default: Option<&str>,
) -> String {
    let mut table = toml::Table::new();
    let buildpacks = req
        .build
        .buildpacks
        .iter()
        .map(|bp| {
            let mut t = toml::Table::new();
            t.insert("id".into(), bp.buildpack.id().to_string().into());
            t.insert("version".into(), bp.buildpack.version().into());
            t.insert("api".into(), bp.buildpack.descriptor.api.clone().into());
            toml::Value::Table(t)
        })
        .collect();
    table.insert("buildpacks".into(), toml::Value::Array(buildpacks));
    let processes = processes
        .iter()
        .map(|(p, bp)| {
            let mut t = toml::Table::new();
            t.insert("type".into(), p.r#type.clone().into());
            t.insert("command".into(), p.command.clone().into());
            t.insert("args".into(), p.args.clone().into());
            t.insert("direct".into(), p.direct.into());
            t.insert(
                "default".into(),
                (default == Some(p.r#type.as_str())).into(),
            );
            t.insert("buildpack-id".into(), bp.clone().into());
            if let Some(dir) = &p.working_dir {
                t.insert("working-dir".into(), dir.clone().into());
            }
            if !p.exec_env.is_empty() {
                t.insert("exec-env".into(), p.exec_env.clone().into());
            }
            toml::Value::Table(t)
        })
        .collect();
    table.insert("processes".into(), toml::Value::Array(processes));
    if let Some(default) = default {
        table.insert("buildpack-default-process-type".into(), default.into());
    }
    toml::to_string(&table).unwrap_or_default()
}

/// For an image without a launcher, the env it would apply, baked in at export: the run
/// image's env, the CNB variables, then every launch layer's
/// contributions in group order and layer name order (for the default process).
pub fn baked_env(
    req: &ExportRequest<'_>,
    process: Option<&Process>,
) -> Result<Env, strata_engine::env::EnvError> {
    let mut env = base_env(&req.run_image.config);
    let phase = || strata_engine::env::Phase::Launch {
        process: process.map(|p| p.r#type.as_str()),
    };
    for bp in &req.build.buildpacks {
        let launch: Vec<_> = bp.layers.layers.iter().filter(|l| l.types.launch).collect();
        let targets: Vec<String> = launch
            .iter()
            .map(|l| strata_engine::build::layer_target(&bp.buildpack, &l.name))
            .collect();
        let layers: Vec<(&Path, &str)> = launch
            .iter()
            .zip(&targets)
            .map(|(l, t)| (l.dir.as_path(), t.as_str()))
            .collect();
        env.apply(&strata_engine::env::buildpack_env(&layers, phase())?);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_is_the_default_process_link_or_the_launcher() {
        assert_eq!(entrypoint(Some("web")), "/cnb/process/web");
        assert_eq!(entrypoint(None), "/cnb/lifecycle/launcher");
    }

    #[test]
    fn launcher_env_puts_process_and_lifecycle_dirs_first() {
        let run: oci_spec::image::ImageConfiguration = serde_json::from_value(serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": { "Env": ["PATH=/usr/bin:/bin", "LANG=C"] },
            "rootfs": { "type": "layers", "diff_ids": [] }
        }))
        .unwrap();
        let env = launcher_env(&run);
        assert_eq!(
            env.get("PATH"),
            Some("/cnb/process:/cnb/lifecycle:/usr/bin:/bin")
        );
        assert_eq!(env.get("LANG"), Some("C"));
        assert_eq!(env.get("CNB_LAYERS_DIR"), Some("/layers"));
        assert_eq!(env.get("CNB_APP_DIR"), Some("/workspace"));
        assert_eq!(env.get("CNB_PLATFORM_API"), Some(PLATFORM_API));
        assert_eq!(env.get("CNB_DEPRECATION_MODE"), Some("quiet"));
    }

    #[test]
    fn process_types_refuse_a_path() {
        assert!(process_types_layer(["../x"], 0).is_err());
        assert!(process_types_layer([], 0).unwrap().is_none());
    }
}
