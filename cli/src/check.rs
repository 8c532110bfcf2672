//! `strata build --check`: does the image the output holds rebuild bit for bit?
//!
//! The build runs again from scratch: a fresh temporary cache directory (no task output, no
//! detect outcome, no stat cache, no pulled image is reused) and a temporary output layout,
//! with every other setting as given. Each service's rebuilt manifest digest is then compared
//! with the one its tag has in the output; where they differ, `strata_exporter::imagediff`
//! says where first: the layer (by its history, `Layer: 'x', Created by buildpack: …`) and the
//! entry in it, and what about it (content, mode, owner, mtime). The output is only read: a
//! registry output's manifests are asked for by reference, and an image that differs is
//! pulled into the temporary directory to be compared entry by entry.
//!
//! Exit codes: 0 every image is identical, 1 one differs (or the rebuild fails), 2 the output
//! holds no image yet (or bad input).

use std::path::Path;

use strata_exporter::imagediff::{Side, compare};
use strata_exporter::layout::Layout;

use crate::args::BuildArgs;
use crate::build::{self, BuildConfig};
use crate::error::CliError;
use crate::images::Location;
use crate::progress::Progress;

/// A service's image in the output.
struct Held {
    service: String,
    /// Its tag in the build's layouts.
    tag: String,
    /// The output image's reference, as shown.
    shown: String,
    /// Its manifest digest; `None` when the output has no image for it.
    digest: Option<String>,
}

/// What the output holds for each service: read from the layout, or (a registry output) each
/// manifest asked for by reference.
fn held(config: &BuildConfig) -> Result<Vec<Held>, CliError> {
    let services = config.input.services.iter().zip(&config.tags).enumerate();
    if config.is_layout_output() {
        let tagged: Vec<(String, String)> = Layout::open(&config.layout)
            .map(|l| {
                l.tags()
                    .into_iter()
                    .map(|(t, d)| (t, d.digest().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        return Ok(services
            .map(|(index, (service, tag))| Held {
                service: service.name.clone(),
                tag: tag.clone(),
                shown: config.image_ref(index),
                digest: tagged
                    .iter()
                    .find(|(t, _)| t == tag)
                    .map(|(_, d)| d.clone()),
            })
            .collect());
    }
    let client = config.input.images.client()?;
    let mut held = Vec::new();
    for (index, (service, tag)) in services {
        let shown = config.image_ref(index);
        let Location::Registry(reference) = Location::parse(&shown, Path::new("."))? else {
            return Err(CliError::Usage(
                "--check compares with the images of a layout or registry output, not an archive"
                    .to_owned(),
            ));
        };
        let digest = match client.fetch_manifest(&reference) {
            Ok(fetched) => Some(fetched.descriptor.digest.to_string()),
            Err(strata_registry::Error::NotFound { .. }) => None,
            Err(source) => {
                return Err(CliError::RegistryImage {
                    what: format!("cannot read {shown}"),
                    source: Box::new(source),
                });
            }
        };
        held.push(Held {
            service: service.name.clone(),
            tag: tag.clone(),
            shown,
            digest,
        });
    }
    Ok(held)
}

/// `strata build --check`.
pub(crate) fn run(args: &BuildArgs) -> Result<(), CliError> {
    let config = BuildConfig::from_args(args)?;
    let (present, missing): (Vec<Held>, Vec<Held>) =
        held(&config)?.into_iter().partition(|h| h.digest.is_some());
    if present.is_empty() {
        let shown = missing
            .first()
            .map_or_else(String::new, |h| h.shown.clone());
        return Err(CliError::CheckNothing(format!(
            "{shown}: the output holds no image to check yet: build it first, then run --check"
        )));
    }
    for h in &missing {
        eprintln!(
            "warning: the output has no image {} yet: service {} is not checked",
            h.shown, h.service
        );
    }

    let temp = tempfile::Builder::new()
        .prefix("strata-check-")
        .tempdir()
        .map_err(|source| CliError::Io {
            what: "cannot make a temporary directory".to_owned(),
            source,
        })?;
    let present_services: Vec<(String, String)> = present
        .iter()
        .map(|h| (h.service.clone(), h.tag.clone()))
        .collect();
    let fresh_config = BuildConfig::from_args_as(
        &fresh_args(
            args,
            &config,
            temp.path(),
            &present_services,
            missing.is_empty(),
        ),
        Some(&config),
    )?;
    let progress = Progress::new(false);
    progress.line("===> REBUILDING from scratch, to compare with the output");
    let (_, error) = build::run(&fresh_config, &progress)?;
    if let Some(error) = error {
        return Err(error);
    }
    let rebuilt = Layout::open(&fresh_config.layout)?;
    let mut differ = Vec::new();
    for h in &present {
        let old_digest = h.digest.clone().unwrap_or_default();
        let (new_descriptor, new_manifest) = rebuilt.resolve(&h.tag)?;
        if new_descriptor.digest().to_string() == old_digest {
            println!("{} {old_digest} identical", h.shown);
            continue;
        }
        let (output, tag) = output_layout(&config, h, temp.path())?;
        let (old_descriptor, old_manifest) = output.resolve(&tag)?;
        let difference = compare(
            &Side {
                layout: &output,
                descriptor: &old_descriptor,
                manifest: &old_manifest,
            },
            &Side {
                layout: &rebuilt,
                descriptor: &new_descriptor,
                manifest: &new_manifest,
            },
        )
        .map_err(|e| CliError::CheckDiffers(format!("{}: cannot compare: {e}", h.shown)))?;
        println!(
            "{} {old_digest} differs from the rebuilt {}: {difference}",
            h.shown,
            new_descriptor.digest()
        );
        differ.push(format!("{}: {difference}", h.shown));
    }
    if differ.is_empty() {
        Ok(())
    } else {
        Err(CliError::CheckDiffers(format!(
            "{} of {} images do not rebuild bit for bit:\n{}",
            differ.len(),
            present.len(),
            differ.join("\n")
        )))
    }
}

/// The output's image `held` as a layout image to compare entries with: in place in a layout
/// output, else pulled from the registry into `temp` (a store of its own, so the user's is
/// not touched).
fn output_layout(
    config: &BuildConfig,
    held: &Held,
    temp: &Path,
) -> Result<(Layout, String), CliError> {
    if config.is_layout_output() {
        return Ok((Layout::open(&config.layout)?, held.tag.clone()));
    }
    let images = config.input.images.with_store(&temp.join("pulled"));
    let pulled = images.resolve(&held.shown, Path::new("."))?;
    Ok((Layout::open(pulled.dir())?, pulled.tag().to_owned()))
}

/// The arguments of the fresh build: those given, with a cache directory and an output
/// layout in `temp`, and (in a workspace where some are `missing`) only the `present`
/// services.
fn fresh_args(
    args: &BuildArgs,
    config: &BuildConfig,
    temp: &Path,
    present: &[(String, String)],
    all_present: bool,
) -> BuildArgs {
    let layout = temp.join("out");
    let mut fresh = args.clone();
    fresh.check = false;
    fresh.no_cache = false;
    fresh.profile = None;
    fresh.sign_key = None;
    fresh.tags = Vec::new();
    fresh.input.cache_dir = Some(temp.join("cache"));
    fresh.output = Some(match &config.input.workspace {
        Some(_) => format!("oci:{}", layout.display()),
        None => format!("oci:{}:{}", layout.display(), present[0].1),
    });
    if config.input.workspace.is_some() && !all_present {
        fresh.input.services = present.iter().map(|(name, _)| name.clone()).collect();
    }
    fresh
}
