//! Every way a command can fail, and the exit code each one means.

use strata_engine::appdir::AppDirError;
use strata_engine::build::BuildError;
use strata_engine::sandbox::SandboxError;
use strata_exporter::image::ExportError;
use strata_exporter::inspect::InspectError;
use strata_exporter::layout::LayoutError;
use strata_exporter::reference::RefError;
use strata_exporter::runimage::RunImageError;
use strata_planner::SourceError;
use strata_planner::{
    BuilderError, BuildpackError, DetectError, PlanError, ProjectError, RegistryError,
};

/// Exit code: success.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit code: the build (detect, build or export) or a rebase failed.
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit code: bad input or usage.
pub(crate) const EXIT_USAGE: u8 = 2;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub(crate) enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Builder(#[from] BuilderError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Buildpack(#[from] BuildpackError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Reference(#[from] RefError),
    #[error(transparent)]
    RunImage(#[from] RunImageError),
    /// A run image whose layout does not exist yet, next to the script that makes it.
    #[error("cannot load run image `{reference}`")]
    #[diagnostic(help("{hint}"))]
    RunImageNotMade {
        reference: String,
        #[source]
        source: Box<LayoutError>,
        hint: String,
    },
    #[error(transparent)]
    RunImageLayer(#[from] strata_exporter::runproof::LayerProofError),
    #[error(transparent)]
    Rootfs(#[from] strata_exporter::rootfs::RootfsError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    BuilderImage(#[from] Box<strata_exporter::builderimage::BuilderImageError>),
    #[error(transparent)]
    BuildUser(#[from] strata_exporter::builduser::BuildUserError),
    #[error(transparent)]
    AppDir(#[from] AppDirError),
    #[error(transparent)]
    Base(#[from] strata_exporter::base::BaseError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    OsRelease(#[from] strata_engine::osrelease::OsReleaseError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Sources(#[from] SourceError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Inspect(#[from] InspectError),
    #[error(transparent)]
    SbomDownload(#[from] strata_exporter::sbomdownload::SbomDownloadError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    BuilderConfig(#[from] strata_exporter::builderconfig::BuilderConfigError),
    #[error(transparent)]
    BuilderCreate(#[from] strata_exporter::buildercreate::BuilderCreateError),
    #[error(transparent)]
    Lifecycle(#[from] strata_exporter::lifecycletar::LifecycleError),
    #[error("{failed} of {total} images could not be rebased")]
    RebaseFailed { failed: usize, total: usize },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Cache(#[from] crate::cache::CacheError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Workspace(#[from] strata_planner::WorkspaceError),
    #[error(transparent)]
    Binding(#[from] strata_planner::BindingError),
    /// Something about one service of a workspace.
    #[error("service {service}")]
    Service {
        service: String,
        /// The exit code of `source`.
        code: u8,
        #[source]
        #[diagnostic_source]
        source: Box<dyn miette::Diagnostic + Send + Sync>,
    },
    #[error("{failed} of {total} services failed: {}", names.join(", "))]
    ServicesFailed {
        failed: usize,
        total: usize,
        names: Vec<String>,
    },
    /// A registry refused, could not be reached, or sent something wrong.
    #[error("{what}")]
    RegistryImage {
        what: String,
        #[source]
        source: Box<strata_registry::Error>,
    },
    /// A `docker-archive:` output could not be written.
    #[error(transparent)]
    DockerArchive(#[from] strata_exporter::dockerarchive::DockerArchiveError),
    /// A signing key that cannot be read or used.
    #[error(transparent)]
    Key(#[from] strata_exporter::signing::KeyError),
    /// An image's signature does not verify.
    #[error(transparent)]
    Signature(#[from] strata_exporter::imagesig::SignatureError),
    /// An artifact could not be attached to an image, or its listing read.
    #[error("{0}")]
    Attach(String),
    /// `build --check`: the rebuilt image differs from the output's.
    #[error("{0}")]
    CheckDiffers(String),
    /// `build --check`: the output holds no image to compare with.
    #[error("{0}")]
    CheckNothing(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// `strata run`: the image's process ended with this code (not 0); it said why itself.
    #[error("the process exited with code {code}")]
    Exited { code: u8 },
    /// `strata run` could not start the image's process.
    #[error(transparent)]
    #[diagnostic(transparent)]
    NotStarted(Box<CliError>),
}

impl CliError {
    /// `error`, said of the workspace service `service`.
    pub(crate) fn in_service(service: &str, error: CliError) -> Self {
        CliError::Service {
            service: service.to_owned(),
            code: error.exit_code(),
            source: Box::new(error),
        }
    }

    /// The documented exit code.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Service { code, .. } | CliError::Exited { code } => *code,
            CliError::NotStarted(_) => crate::run::EXIT_NOT_STARTED,
            CliError::BuilderCreate(e) if !e.is_bad_input() => EXIT_FAILED,
            CliError::SbomDownload(e) => {
                use strata_exporter::sbomdownload::SbomDownloadError;
                if matches!(
                    e,
                    SbomDownloadError::Write { .. } | SbomDownloadError::Read { .. }
                ) {
                    EXIT_FAILED
                } else {
                    EXIT_USAGE
                }
            }
            CliError::RebaseFailed { .. }
            | CliError::ServicesFailed { .. }
            | CliError::Detect(_)
            | CliError::Build(_)
            | CliError::Export(_)
            | CliError::Layout(_)
            | CliError::Base(_)
            | CliError::Sources(_)
            | CliError::Cache(_)
            | CliError::RegistryImage { .. }
            | CliError::DockerArchive(_)
            | CliError::Signature(_)
            | CliError::Attach(_)
            | CliError::CheckDiffers(_)
            | CliError::Io { .. } => EXIT_FAILED,
            CliError::Usage(_)
            | CliError::Builder(_)
            | CliError::Buildpack(_)
            | CliError::Project(_)
            | CliError::Registry(_)
            | CliError::Reference(_)
            | CliError::RunImage(_)
            | CliError::RunImageNotMade { .. }
            | CliError::RunImageLayer(_)
            | CliError::Rootfs(_)
            | CliError::BuilderImage(_)
            | CliError::BuildUser(_)
            | CliError::AppDir(_)
            | CliError::Sandbox(_)
            | CliError::OsRelease(_)
            | CliError::Inspect(_)
            | CliError::BuilderConfig(_)
            | CliError::BuilderCreate(_)
            | CliError::Lifecycle(_)
            | CliError::Workspace(_)
            | CliError::Binding(_)
            | CliError::Key(_)
            | CliError::CheckNothing(_)
            | CliError::Plan(_) => EXIT_USAGE,
        }
    }
}
