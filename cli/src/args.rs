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
    /// Show what a build would run and why, without running it.
    #[command(after_help = PLAN_EXAMPLES)]
    Plan(PlanArgs),
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

const PLAN_EXAMPLES: &str = "Examples:
  strata plan examples/apps/hello --builder examples/builder.toml
  strata plan examples/apps/hello --builder examples/builder.toml --format json
  strata plan examples/apps/hello --builder examples/builder.toml --format dot | dot -Tsvg > plan.svg";

const INSPECT_EXAMPLES: &str = "Examples:
  strata inspect oci:out:hello
  strata inspect oci:out:hello --json";

/// What both `plan` and `build` read: the app, its buildpacks, env and the sandbox.
#[derive(Debug, Args)]
pub(crate) struct InputArgs {
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
    /// Build env for the buildpacks (`K=V`, or `K` to take it from this environment). Repeatable.
    #[arg(long = "env", short = 'e', value_name = "K=V")]
    pub(crate) env: Vec<String>,
    /// Where strata keeps its caches (default: `$XDG_CACHE_HOME/strata` or `~/.cache/strata`).
    #[arg(long, value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Where buildpacks run: a bubblewrap sandbox, or the host (no isolation; paths differ).
    #[arg(long, value_enum, default_value_t = SandboxArg::Bwrap)]
    pub(crate) sandbox: SandboxArg,
    /// Run buildpacks without network access.
    #[arg(long)]
    pub(crate) offline: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) input: InputArgs,
    /// Where the image goes: `oci:DIR:TAG`.
    #[arg(long, value_name = "REF")]
    pub(crate) output: String,
    /// Layer compression.
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    pub(crate) compression: CompressionArg,
    /// How many tasks may run at once (default: the number of cores).
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) jobs: Option<u16>,
    /// After a task fails, still run every task that does not need it.
    #[arg(long)]
    pub(crate) keep_going: bool,
    /// Print a JSON report on stdout instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub(crate) input: InputArgs,
    /// How to print the plan: a table for people, JSON for scripts, DOT for Graphviz.
    #[arg(long, value_enum, default_value_t = PlanFormat::Table)]
    pub(crate) format: PlanFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PlanFormat {
    Table,
    Json,
    Dot,
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
