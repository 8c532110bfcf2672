//! `strata sbom download`: an image's SBOM layers (the SBOM layer and the run image's) written
//! out as `pack sbom download` writes them (`DIR/layers/sbom/launch/...`), or one merged
//! document of the whole image.
//!
//! A layout is read in place; from a registry only the manifest, the config and the SBOM
//! layers' blobs are fetched (into a temp layout); a `docker-archive:` tarball is read in
//! place. Each layer is checked entry by entry before anything is written (see
//! [`strata_exporter::sbomdownload`]).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use strata_exporter::sbomdownload::{self, MergedFormat, SbomFiles, SbomLocation};

use crate::error::CliError;
use crate::images::{Images, Location, RegistrySettings};

const DOWNLOAD_EXAMPLES: &str = "Examples:
  strata sbom download oci:out:hello
  strata sbom download docker://registry.example.com/team/app:1.2 --output-dir sboms
  strata sbom download docker-archive:app.tar --merged spdx -o sboms

Writes DIR/layers/sbom/launch/<buildpack>/<layer>/sbom.<cdx|spdx|syft>.json as pack does (DIR
defaults to the current directory); with --merged, only DIR/sbom.<cdx|spdx>.json: every
component of every layer's SBOM in one document.";

/// `strata sbom`.
#[derive(Debug, Args)]
pub(crate) struct SbomArgs {
    #[command(subcommand)]
    pub(crate) command: SbomCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SbomCommand {
    /// Write an image's SBOMs (its SBOM layer) into a directory.
    #[command(after_help = DOWNLOAD_EXAMPLES)]
    Download(DownloadArgs),
}

/// A merged document's format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum MergedArg {
    /// `CycloneDX` 1.5 JSON.
    Cyclonedx,
    /// SPDX 2.3 JSON.
    Spdx,
}

#[derive(Debug, Args)]
pub(crate) struct DownloadArgs {
    /// The image: `oci:DIR[:TAG]`, `docker://HOST/REPO[:TAG|@DIGEST]` or
    /// `docker-archive:FILE`.
    pub(crate) image: String,
    /// Where to write `layers/sbom/...` (or the merged document).
    #[arg(short, long = "output-dir", value_name = "DIR", default_value = ".")]
    pub(crate) output_dir: PathBuf,
    /// Write one document of the whole image instead of the tree.
    #[arg(long, value_name = "FORMAT")]
    pub(crate) merged: Option<MergedArg>,
    /// A registry (`HOST[:PORT]`) spoken to over plain HTTP (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub(crate) insecure_registries: Vec<String>,
    /// A PEM file of CA certificates that registries are trusted by, besides the system's.
    #[arg(long, value_name = "FILE")]
    pub(crate) registry_ca: Option<PathBuf>,
}

/// Runs `strata sbom`.
pub(crate) fn run(args: &SbomArgs) -> Result<(), CliError> {
    match &args.command {
        SbomCommand::Download(args) => download(args),
    }
}

/// The SBOM layers of the image `args` names, read and checked.
fn read(args: &DownloadArgs) -> Result<(SbomFiles, SbomLocation), CliError> {
    let shown = args.image.as_str();
    Ok(match Location::parse(shown, std::path::Path::new("."))? {
        Location::Layout(reference) => sbomdownload::read_from_layout(&reference, shown)?,
        Location::Archive { path, .. } => sbomdownload::read_from_archive(&path, shown)?,
        Location::Registry(reference) => {
            let tmp = tempfile::tempdir().map_err(|source| CliError::Io {
                what: "cannot make a temp directory".to_owned(),
                source,
            })?;
            let images = Images::new(
                tmp.path(),
                RegistrySettings {
                    insecure: args.insecure_registries.clone(),
                    ca_file: args.registry_ca.clone(),
                },
            );
            let dir = tmp.path().join("image");
            let layout = images.fetch_config(&reference, &dir)?;
            images.fetch_sbom_layer(&reference, &layout, shown)?;
            sbomdownload::read_from_layout(&layout, shown)?
        }
    })
}

fn download(args: &DownloadArgs) -> Result<(), CliError> {
    let (files, at) = read(args)?;
    let io_err = |path: &std::path::Path| {
        let what = format!("cannot write {}", path.display());
        move |source| CliError::Io { what, source }
    };
    if let Some(format) = args.merged {
        let format = match format {
            MergedArg::Cyclonedx => MergedFormat::CycloneDx,
            MergedArg::Spdx => MergedFormat::Spdx,
        };
        let bytes = sbomdownload::merged(&files, format, &args.image, &at.created);
        std::fs::create_dir_all(&args.output_dir).map_err(io_err(&args.output_dir))?;
        let path = args.output_dir.join(format!("sbom.{}.json", format.ext()));
        std::fs::write(&path, bytes).map_err(io_err(&path))?;
        println!("{}", path.display());
        return Ok(());
    }
    for path in sbomdownload::write_tree(&files, &args.output_dir)? {
        println!("{}", path.display());
    }
    Ok(())
}
