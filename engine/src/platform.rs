//! The platform side of the CNB contract: the platform directory, the target a build is for,
//! and the base environment buildpack processes start from.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use strata_planner::{TargetEnv, oci_arch};

use crate::sandbox::DEFAULT_PATH;
use crate::scratch::{DIR_MODE, FILE_MODE};

/// The platform directory buildpacks read: `env/<NAME>` holds each user env variable. It is
/// written when a process first needs it, so a build that runs nothing writes nothing. The
/// values are often secrets: the directories are 0700 and the files 0600.
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
        let written = self
            .written
            .get_or_init(|| write_env(&self.dir, &self.env).map_err(|e| e.to_string()));
        match written {
            Ok(()) => Ok(&self.dir),
            Err(message) => Err(io::Error::other(format!(
                "cannot write the platform directory {}: {message}",
                self.dir.display()
            ))),
        }
    }
}

/// Writes `dir/env/<NAME>` (0600) for each variable, in directories made 0700.
fn write_env(dir: &Path, env: &[(String, String)]) -> io::Result<()> {
    let env_dir = dir.join("env");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(&env_dir)?;
    // A directory that already existed keeps its mode otherwise.
    for d in [dir, &env_dir] {
        fs::set_permissions(d, fs::Permissions::from_mode(DIR_MODE))?;
    }
    for (name, value) in env {
        let path = env_dir.join(name);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&path)?;
        file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
        file.write_all(value.as_bytes())?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn env_values_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let platform_dir = dir.path().join("platform");
        let env = [("API_TOKEN".to_owned(), "secret".to_owned())];
        let platform = PlatformDir::create(&platform_dir, &env).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(platform.path().unwrap()), 0o700);
        assert_eq!(mode(&platform_dir.join("env")), 0o700);
        let value = platform_dir.join("env/API_TOKEN");
        assert_eq!(mode(&value), 0o600);
        assert_eq!(fs::read_to_string(value).unwrap(), "secret");
    }
}
