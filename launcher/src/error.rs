//! Why a launch failed, and the exit code that says so.

use std::io;
use std::path::PathBuf;

use strata_launcher::env::EnvFileError;

/// The platform spec's exit code for an unsupported Platform API.
pub(crate) const CODE_PLATFORM_API: i32 = 11;
/// The platform spec's exit code for an unsupported Buildpack API.
pub(crate) const CODE_BUILDPACK_API: i32 = 12;
/// The lifecycle's exit code for any other error before the process starts.
pub(crate) const CODE_LAUNCH: i32 = 82;

/// Everything that stops the launcher before the process replaces it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LaunchError {
    #[error("argument `{0}` is not UTF-8")]
    NonUtf8Arg(String),
    #[error("CNB_PLATFORM_API `{0}` is not a Platform API version")]
    PlatformApi(String),
    #[error("buildpack {buildpack}: `{api}` is not a Buildpack API version")]
    BuildpackApi { buildpack: String, api: String },
    #[error("cannot read {path}", path = path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {message}", path = path.display())]
    Metadata { path: PathBuf, message: String },
    #[error("process type `{0}` was not found")]
    NoSuchProcess(String),
    #[error("when there is no default process a command is required")]
    NoCommand,
    #[error("process type `{0}` has no command")]
    EmptyCommand(String),
    #[error("process type `{process}` is provided by unknown buildpack `{buildpack}`")]
    UnknownBuildpack { process: String, buildpack: String },
    #[error(transparent)]
    EnvFile(EnvFileError),
    #[error("exec.d program {path}: {message}", path = path.display())]
    ExecD { path: PathBuf, message: String },
    #[error("`{0}` was not found in PATH")]
    NotFound(String),
    #[error("cannot change to directory {path}", path = path.display())]
    Chdir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot execute {path}", path = path.display())]
    Exec {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl LaunchError {
    /// The exit code the platform spec gives this error.
    pub(crate) fn code(&self) -> i32 {
        match self {
            Self::PlatformApi(_) => CODE_PLATFORM_API,
            Self::BuildpackApi { .. } => CODE_BUILDPACK_API,
            _ => CODE_LAUNCH,
        }
    }
}
