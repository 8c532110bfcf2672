//! `strata build --check`: does the image the output holds rebuild bit for bit?
//!
//! The build runs again from scratch: a fresh temporary cache directory (no task output, no
//! detect outcome, no stat cache, no pulled image is reused) and a temporary output layout,
//! with every other setting as given. Each service's rebuilt manifest digest is then compared
//! with the one its tag has in the output; where they differ, `strata_exporter::imagediff`
//! says where first: the layer (by its history, `Layer: 'x', Created by buildpack: …`) and the
//! entry in it, and what about it (content, mode, owner, mtime). The output is only read.
//!
//! Exit codes: 0 every image is identical, 1 one differs (or the rebuild fails), 2 the output
//! holds no image yet (or bad input).

use std::path::Path;

use strata_exporter::imagediff::{Difference, Side, compare};
use strata_exporter::layout::Layout;

use crate::args::BuildArgs;
use crate::build::{self, BuildConfig};
use crate::error::CliError;
use crate::progress::Progress;

/// `strata build --check`.
pub(crate) fn run(args: &BuildArgs) -> Result<(), CliError> {
    let config = BuildConfig::from_args(args)?;
    if !config.is_layout_output() {
        return Err(CliError::Usage(
            "--check compares with the image in a layout output (oci:DIR[:TAG]); pull a registry image into a layout to check it"
                .to_owned(),
        ));
    }
    let shown = format!("oci:{}", config.layout.display());
    let nothing = || {
        CliError::CheckNothing(format!(
            "{shown} holds no image to check yet: build it first, then run --check"
        ))
    };
    let output = Layout::open(&config.layout).map_err(|_| nothing())?;
    let tagged: Vec<String> = output.tags().into_iter().map(|(tag, _)| tag).collect();
    let services: Vec<(String, String)> = config
        .input
        .services
        .iter()
        .zip(&config.tags)
        .map(|(s, tag)| (s.name.clone(), tag.clone()))
        .collect();
    let (present, missing): (Vec<_>, Vec<_>) = services
        .into_iter()
        .partition(|(_, tag)| tagged.contains(tag));
    if present.is_empty() {
        return Err(nothing());
    }
    for (name, tag) in &missing {
        eprintln!("warning: {shown} has no image tagged {tag} yet: service {name} is not checked");
    }

    let temp = tempfile::Builder::new()
        .prefix("strata-check-")
        .tempdir()
        .map_err(|source| CliError::Io {
            what: "cannot make a temporary directory".to_owned(),
            source,
        })?;
    let fresh_layout = temp.path().join("out");
    let fresh_config = BuildConfig::from_args(&fresh_args(
        args,
        &config,
        temp.path(),
        &present,
        missing.is_empty(),
    ))?;
    let progress = Progress::new(false);
    progress.line(&format!(
        "===> REBUILDING from scratch to compare with {shown}"
    ));
    let (_, error) = build::run(&fresh_config, &progress)?;
    if let Some(error) = error {
        return Err(error);
    }
    let rebuilt = Layout::open(&fresh_layout)?;
    let mut differ = Vec::new();
    for (name, tag) in &present {
        let (old_descriptor, old_manifest) = output.resolve(tag)?;
        let (new_descriptor, new_manifest) = rebuilt.resolve(tag)?;
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
        .map_err(|e| CliError::CheckDiffers(format!("{name}: cannot compare: {e}")))?;
        let image = image_name(&config.layout, tag);
        if difference == Difference::Same {
            println!("{image} {} identical", old_descriptor.digest());
        } else {
            println!(
                "{image} {} differs from the rebuilt {}: {difference}",
                old_descriptor.digest(),
                new_descriptor.digest()
            );
            differ.push(format!("{image}: {difference}"));
        }
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

fn image_name(layout: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", layout.display())
}
