//! The platform side of the CNB contract: the platform directory, the target a build is for,
//! and the base environment buildpack processes start from.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use strata_planner::{TargetEnv, oci_arch};

use crate::sandbox::DEFAULT_PATH;

/// The platform directory buildpacks read: `env/<NAME>` holds each user env variable. It is
/// written when a process first needs it, so a build that runs nothing writes nothing.
#[derive(Debug)]
pub struct PlatformDir {
    /// The directory on the host.
    dir: PathBuf,
    /// The user env, in the order given (later wins for one name).
    pub env: Vec<(String, String)>,
    written: OnceLock<Result<(), String>>,
}

impl PlatformDir {
    /// The platform directory `dir` with `env`, not written yet.
    pub fn new(dir: &Path, env: &[(String, String)]) -> Self {
        Self {
            dir: dir.to_owned(),
            env: env.to_vec(),
            written: OnceLock::new(),
        }
    }

    /// Writes `dir/env/<NAME>` for each variable now.
    ///
    /// # Errors
    /// The directory or a file cannot be written.
    pub fn create(dir: &Path, env: &[(String, String)]) -> io::Result<Self> {
        let platform = Self::new(dir, env);
        platform.path()?;
        Ok(platform)
    }

    /// The directory, written on the first call.
    ///
    /// # Errors
    /// The directory or a file cannot be written (the same error on every call).
    pub fn path(&self) -> io::Result<&Path> {
        let written = self.written.get_or_init(|| {
            let env_dir = self.dir.join("env");
            std::fs::create_dir_all(&env_dir).map_err(|e| e.to_string())?;
            for (name, value) in &self.env {
                std::fs::write(env_dir.join(name), value).map_err(|e| e.to_string())?;
            }
            Ok(())
        });
        match written {
            Ok(()) => Ok(&self.dir),
            Err(message) => Err(io::Error::other(format!(
                "cannot write the platform directory {}: {message}",
                self.dir.display()
            ))),
        }
    }
}

/// The env every buildpack process starts from: the fixed `PATH` and `HOME`, then the
/// `CNB_TARGET_*` set, then, unless the buildpack asks for `clear-env`, the user env.
pub fn base_env(
    target: &TargetEnv,
    platform: &PlatformDir,
    clear_env: bool,
    isolated: bool,
) -> Vec<(String, String)> {
    let mut env = vec![("PATH".to_owned(), DEFAULT_PATH.to_owned())];
    let home = if isolated {
        Some("/home/cnb".to_owned())
    } else {
        std::env::var("HOME").ok()
    };
    env.extend(home.map(|h| ("HOME".to_owned(), h)));
    for name in [
        "HOSTNAME",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
    ] {
        if let Ok(value) = std::env::var(name) {
            env.push((name.to_owned(), value));
        }
    }
    env.extend(target.vars());
    if !clear_env {
        env.extend(platform.env.iter().cloned());
    }
    env
}
