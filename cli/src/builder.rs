//! `strata builder create`: reads a `builder.toml`, its buildpacks and its build image, and
//! writes a builder image that pack, the lifecycle and `strata build --builder` can use.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use strata_exporter::archive::Compression;
use strata_exporter::builderconfig::BuilderConfig;
use strata_exporter::buildercreate::{self, BuilderRequest};
use strata_exporter::lifecycletar::Lifecycle;
use strata_exporter::reference::ImageRef;
use strata_planner::Builder;

use crate::args::CompressionArg;
use crate::error::CliError;

const CREATE_EXAMPLES: &str = "Examples:
  strata builder create --config builder.toml --output oci:out:builder
  strata builder create --config examples/builder.toml --build-image oci:stack:build --output oci:out:builder";

/// `strata builder`.
#[derive(Debug, Args)]
pub(crate) struct BuilderArgs {
    #[command(subcommand)]
    pub(crate) command: BuilderCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BuilderCommand {
    /// Write a builder image: the build image with the buildpacks, order and run images of a
    /// builder.toml, as `pack builder create` writes it.
    #[command(after_help = CREATE_EXAMPLES)]
    Create(CreateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The builder.toml: its `[[buildpacks]]` (directories), `[[order]]`, `[build] image`,
    /// `[[run.images]]`, `[[build.env]]` and optional `[lifecycle] uri` (a local tarball).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// Where the builder image goes: `oci:DIR[:TAG]` (other images in the layout are kept).
    #[arg(long, value_name = "REF")]
    pub(crate) output: String,
    /// The build image to make the builder on, instead of the builder.toml's `[build] image`:
    /// `oci:DIR:TAG`, relative to the working directory.
    #[arg(long, value_name = "REF")]
    pub(crate) build_image: Option<String>,
    /// Compression of the added layers (the build image's are reused as they are).
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    pub(crate) compression: CompressionArg,
}

/// Runs `strata builder …`.
pub(crate) fn run(args: &BuilderArgs) -> Result<(), CliError> {
    match &args.command {
        BuilderCommand::Create(args) => create(args),
    }
}

fn create(args: &CreateArgs) -> Result<(), CliError> {
    let output = ImageRef::parse(&args.output)?;
    let builder = Builder::load(&args.config)?;
    let config = BuilderConfig::load(&builder.path)?;
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    let build_ref =
        buildercreate::build_image_ref(args.build_image.as_deref(), &config, &builder.path)?;
    let build_image = buildercreate::load_build_image(&build_ref)?;
    let lifecycle = config
        .lifecycle
        .as_deref()
        .map(Lifecycle::open)
        .transpose()?;
    if lifecycle.is_none() {
        eprintln!(
            "note: the builder has no lifecycle (no `[lifecycle] uri`): pack can read it and \
             strata can build with it, but the lifecycle cannot run it"
        );
    }
    let request = BuilderRequest {
        builder: &builder,
        config: &config,
        build_image: &build_image,
        lifecycle: lifecycle.as_ref(),
        epoch: crate::rebase::source_date_epoch()?,
        compression: match args.compression {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
        },
        creator_version: env!("CARGO_PKG_VERSION"),
    };
    let created = buildercreate::create(&request, &output)?;
    for layer in &created.layers {
        if !layer.created_by.is_empty() {
            eprintln!(
                "    {} {}",
                &layer.diff_id[..19.min(layer.diff_id.len())],
                layer.created_by
            );
        }
    }
    println!("{output} {}", created.manifest.digest());
    Ok(())
}
