//! The environment a process starts with: the container's, less the platform's own variables,
//! then every launch layer's contributions by the shared CNB rules.

use std::ffi::OsString;

use strata_launcher::env::{Env, Phase, buildpack_env};

use crate::error::LaunchError;
use crate::layers::{BuildpackLayers, PlainFs};

/// Variables the platform sets for the launcher alone; the app does not see them.
pub(crate) const PLATFORM_VARS: &[&str] = &[
    "CNB_LAYERS_DIR",
    "CNB_APP_DIR",
    "CNB_PROCESS_TYPE",
    "CNB_PLATFORM_API",
    "CNB_DEPRECATION_MODE",
];

/// Directories the image puts on `PATH` for the launcher's sake, taken off for the app.
pub(crate) const CNB_PATH_DIRS: &[&str] = &["/cnb/process", "/cnb/lifecycle"];

/// The container's environment as the app should start from. Variables whose name or value
/// is not UTF-8 are dropped: the CNB rules work on text.
pub(crate) fn base_env(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Env {
    let mut env: Env = vars
        .into_iter()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| !PLATFORM_VARS.contains(&k.as_str()))
        .collect();
    if let Some(path) = env.get("PATH") {
        let kept: Vec<&str> = path
            .split(':')
            .filter(|dir| !CNB_PATH_DIRS.contains(dir))
            .collect();
        let kept = kept.join(":");
        env.set("PATH", kept);
    }
    env
}

/// Applies every buildpack's launch layers, in group order, to `env` for `process`.
pub(crate) fn apply_layers(
    env: &mut Env,
    buildpacks: &[BuildpackLayers],
    process: Option<&str>,
) -> Result<(), LaunchError> {
    let phase = Phase::Launch { process };
    for bp in buildpacks {
        let names: Vec<String> = bp
            .layers
            .iter()
            .map(|l| l.to_string_lossy().into_owned())
            .collect();
        let layers: Vec<_> = bp
            .layers
            .iter()
            .zip(&names)
            .map(|(dir, name)| (dir.as_path(), name.as_str()))
            .collect();
        env.apply(&buildpack_env(&PlainFs, &layers, phase)?);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn platform_variables_and_cnb_path_dirs_are_dropped() {
        let vars = [
            ("CNB_LAYERS_DIR", "/layers"),
            ("CNB_APP_DIR", "/workspace"),
            ("CNB_PLATFORM_API", "0.12"),
            ("CNB_DEPRECATION_MODE", "quiet"),
            ("CNB_PROCESS_TYPE", "web"),
            ("CNB_OTHER", "kept"),
            ("PATH", "/cnb/process:/cnb/lifecycle:/usr/bin:/bin"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = base_env(vars);
        assert_eq!(
            env.into_vec(),
            [
                ("CNB_OTHER".to_owned(), "kept".to_owned()),
                ("PATH".to_owned(), "/usr/bin:/bin".to_owned())
            ]
        );
    }

    #[test]
    fn buildpacks_in_group_order_paths_before_env_files() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path();
        let write = |rel: &str, text: &str| {
            let p = d.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        std::fs::create_dir_all(d.join("bp1/b/bin")).unwrap();
        write("bp1/a/env/PATH.prepend", "/custom");
        write("bp1/a/env/PATH.delim", ":");
        write("bp1/a/env/LIST.append", "1");
        write("bp2/a/env/LIST.append", "2");
        write("bp2/a/env/LIST.delim", ",");
        write("bp2/a/env.launch/web/WHO", "web");
        let bps = vec![
            BuildpackLayers {
                layers: vec![d.join("bp1/a"), d.join("bp1/b")],
            },
            BuildpackLayers {
                layers: vec![d.join("bp2/a")],
            },
        ];
        let mut env: Env = [("PATH", "/usr/bin")].into_iter().collect();
        apply_layers(&mut env, &bps, Some("web")).unwrap();
        let bin = d.join("bp1/b/bin");
        assert_eq!(
            env.get("PATH"),
            Some(format!("/custom:{}:/usr/bin", bin.display()).as_str())
        );
        assert_eq!(env.get("LIST"), Some("1,2"));
        assert_eq!(env.get("WHO"), Some("web"));

        let mut env = Env::new();
        apply_layers(&mut env, &bps, Some("worker")).unwrap();
        assert_eq!(env.get("WHO"), None);
    }
}
