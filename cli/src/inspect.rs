//! `strata inspect`: the layer table a person reads, or JSON.

use std::fmt::Write as _;

use strata_exporter::inspect::InspectReport;

use crate::args::InspectArgs;
use crate::error::CliError;
use crate::images::{Images, Location, RegistrySettings};

/// Inspects the image `args` names: a layout in place, a registry image from its manifest and
/// config alone (fetched into a temp layout, no layer).
pub(crate) fn inspect_any(args: &InspectArgs) -> Result<InspectReport, CliError> {
    match Location::parse(&args.image, std::path::Path::new("."))? {
        Location::Layout(reference) => Ok(strata_exporter::inspect::inspect(&reference)?),
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
            let layout = images.fetch_config(&reference, &tmp.path().join("image"))?;
            let mut report = strata_exporter::inspect::inspect(&layout)?;
            report.reference.clone_from(&args.image);
            Ok(report)
        }
        Location::Archive { .. } => Err(CliError::Usage(format!(
            "inspect {}: a docker-archive is an output only; inspect oci:DIR[:TAG] or docker://",
            args.image
        ))),
    }
}

/// A size as people read it: `9.6 kB`, `604 kB`, `2.1 MB`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// The table.
pub(crate) fn render(report: &InspectReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Image:     {}", report.reference);
    let _ = writeln!(out, "Digest:    {}", report.digest);
    let _ = writeln!(out, "Platform:  {}", report.platform);
    let _ = writeln!(out, "User:      {}", report.user);
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<9} Command", "Size");
    for layer in &report.layers {
        let command = if layer.run_image {
            "FROM run image".to_owned()
        } else {
            layer.created_by.clone()
        };
        let _ = writeln!(out, "{:<9} {command}", human_size(layer.size));
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Processes:");
    if report.processes.is_empty() {
        let _ = writeln!(out, "  (none)");
    } else {
        out.push_str(&process_table(report));
    }
    let _ = writeln!(out);
    let run = &report.run_image;
    let _ = writeln!(
        out,
        "Run image: {}",
        if run.image.is_empty() {
            "(unknown)"
        } else {
            &run.image
        }
    );
    let _ = writeln!(out, "  manifest:  {}", run.reference);
    let _ = writeln!(out, "  top layer: {}", run.top_layer);
    let _ = writeln!(out);
    let _ = writeln!(out, "Buildpacks:");
    for bp in &report.buildpacks {
        let _ = writeln!(out, "  {}@{}", bp.id, bp.version);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "SBOM: {}", report.sbom.as_deref().unwrap_or("(none)"));
    out.push_str(&sbom_table(report));
    out
}

/// The SBOM layer's documents: formats, what they describe, where they are.
fn sbom_table(report: &InspectReport) -> String {
    let mut out = String::new();
    let rows: Vec<(String, String, &str)> = report
        .sbom_documents
        .iter()
        .map(|d| {
            let mut formats = d.formats.join(", ");
            if d.generated {
                formats.push_str(" (strata)");
            }
            (formats, d.describes.clone(), d.path.as_str())
        })
        .collect();
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    for (formats, describes, path) in rows {
        let _ = writeln!(out, "  {formats:<width$}  {describes}  /{path}");
    }
    out
}

/// The processes as `pack inspect` lists them: type (the default marked), the shell of a
/// shell process, the command, the default args and the working directory, in aligned
/// columns.
fn process_table(report: &InspectReport) -> String {
    let header = ["TYPE", "SHELL", "COMMAND", "ARGS", "WORK DIR"].map(str::to_owned);
    let mut rows = vec![header];
    for process in &report.processes {
        let default = report.default_process.as_deref() == Some(process.kind.as_str());
        rows.push([
            if default {
                format!("{} (default)", process.kind)
            } else {
                process.kind.clone()
            },
            if process.direct { "" } else { "bash" }.to_owned(),
            shell_words(&process.command),
            shell_words(&process.args),
            process
                .working_dir
                .clone()
                .unwrap_or_else(|| "/workspace".to_owned()),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::from("  ");
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// Joins words, quoting the ones a shell would split.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_the_seed_deck() {
        assert_eq!(human_size(9_600), "9.6 kB");
        assert_eq!(human_size(604_000), "604 kB");
        assert_eq!(human_size(2_100_000), "2.1 MB");
        assert_eq!(human_size(512), "512 B");
    }

    #[test]
    fn words_are_quoted_only_when_needed() {
        let words = [
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "greet \"strata\"".to_owned(),
        ];
        assert_eq!(shell_words(&words), "/bin/sh -c 'greet \"strata\"'");
    }
}
