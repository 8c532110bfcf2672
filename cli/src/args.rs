//! Command-line arguments, exactly as scripts type them. Parsing only: [`crate::config`] turns
//! them into validated settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Build reproducible OCI images from source with Cloud Native Buildpacks.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build an app into an OCI image.
    #[command(after_help = BUILD_EXAMPLES)]
    Build(BuildArgs),
    /// Show an image's layers, processes, run image and buildpacks.
    #[command(after_help = INSPECT_EXAMPLES)]
    Inspect(InspectArgs),
    /// Move app images onto a new run image without rebuilding them.
    #[command(after_help = crate::rebase::REBASE_EXAMPLES)]
    Rebase(crate::rebase::RebaseArgs),
}

const BUILD_EXAMPLES: &str = "Examples:
  strata build examples/apps/hello --builder examples/builder.toml --output oci:out:hello
  strata build . --buildpack ./my-buildpack --run-image oci:base:latest --output oci:out:app --json";

const INSPECT_EXAMPLES: &str = "Examples:
  strata inspect oci:out:hello
  strata inspect oci:out:hello --json";

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// The app's directory.
    #[arg(default_value = ".")]
    pub(crate) app_dir: PathBuf,
    /// A CNB builder.toml: its buildpacks, its order and its run image.
    #[arg(long, value_name = "FILE")]
    pub(crate) builder: Option<PathBuf>,
    /// Build with exactly these buildpacks, in this order: a directory, or `id[@version]` from
    /// the builder. Repeatable.
    #[arg(long = "buildpack", value_name = "DIR|ID")]
    pub(crate) buildpacks: Vec<String>,
    /// The run image, `oci:DIR:TAG` (default: the builder's, else a minimal built-in base).
    #[arg(long, value_name = "REF")]
    pub(crate) run_image: Option<String>,
    /// Where the image goes: `oci:DIR:TAG`.
    #[arg(long, value_name = "REF")]
    pub(crate) output: String,
    /// Build env for the buildpacks (`K=V`, or `K` to take it from this environment). Repeatable.
    #[arg(long = "env", short = 'e', value_name = "K=V")]
    pub(crate) env: Vec<String>,
    /// Layer compression.
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    pub(crate) compression: CompressionArg,
    /// Where buildpacks run: a bubblewrap sandbox, or the host (no isolation; paths differ).
    #[arg(long, value_enum, default_value_t = SandboxArg::Bwrap)]
    pub(crate) sandbox: SandboxArg,
    /// Run buildpacks without network access.
    #[arg(long)]
    pub(crate) offline: bool,
    /// Print a JSON report on stdout instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum CompressionArg {
    None,
    Gzip,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SandboxArg {
    Bwrap,
    None,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The image: `oci:DIR:TAG`.
    pub(crate) image: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}
