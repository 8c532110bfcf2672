//! `strata rebase`: move app images onto a new run image without rebuilding them.
//!
//! The arguments are checked first (the run image loads, every reference parses, every
//! `--all` directory is a layout, every `--from-file` line is a reference), so bad input exits
//! 2 with nothing written. Then the layout images are grouped by layout and each layout goes
//! through [`strata_exporter::fleet::rebase_layout`] on a rayon pool of `--jobs` threads: one
//! commit per layout, one result per image. Registry images (`docker://`) go through
//! [`crate::registryrebase`] on the same pool, decided by the same rules. The table (or
//! `--json`) shows every image; the exit code is 1 when any image failed.

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use strata_engine::store::{Store, store_dir};
use strata_exporter::fleet::{ImageResult, LayoutBatch, Status, rebase_layout};
use strata_exporter::layout::Layout;
use strata_exporter::rebase::{NewBase, RebaseErrorKind, RebaseOptions, Refusal};
use strata_exporter::reference::ImageRef;
use strata_exporter::runimage::RunImage;
use strata_exporter::runproof::verify_layers;
use strata_registry::Reference;

use crate::config::{default_cache_dir, recorded_name, registry_repository};
use crate::error::CliError;
use crate::images::{Images, Location, RegistrySettings};
use crate::registryrebase::{RegistryBase, RegistryBatch, rebase_registry};

/// Examples shown by `strata rebase --help`.
pub(crate) const REBASE_EXAMPLES: &str = "Examples:
  strata rebase --run-image oci:base:run oci:out:hello
  strata rebase --run-image oci:base:run --all oci:out --jobs 4 --json
  strata rebase --run-image oci:base:run --all oci:out --dry-run
  strata rebase --run-image docker://registry.example.com/stacks/run:24 \\
      docker://registry.example.com/apps/api:1.4 --all docker://registry.example.com/apps/web
  strata rebase --run-image docker://registry.example.com/stacks/run:24 --from-file fleet.txt

The run image is named as the images record it (`runImage.image`: a registry name as
`strata build --run-image` was typed, without `docker://`; an `oci:` name matches the same
layout and tag however its path is spelled); `--all` takes the images of a layout, or every tag of a
repository, built on that name. A registry image is rebased in place: only its
manifest and config are read, the run image's layers are pushed (or mounted) once per
repository, and the tag moves to the rebased manifest. `--from-file` reads one reference a
line; blank lines and lines starting with `#` are skipped.

Exit codes: 0 every image rebased or up to date, 1 an image failed, 2 bad input.";

#[derive(Debug, Args)]
pub(crate) struct RebaseArgs {
    /// The new run image, `oci:DIR:TAG` or `docker://HOST/REPO:TAG`, named as the images
    /// record their run image.
    #[arg(long, value_name = "REF")]
    pub(crate) run_image: String,
    /// Images to rebase: `oci:DIR:TAG` or `docker://HOST/REPO:TAG`.
    #[arg(value_name = "IMAGE_REF")]
    pub(crate) images: Vec<String>,
    /// Every image in this layout, or every tag of this repository, built on the run image's
    /// name (its predecessor). Repeatable.
    #[arg(long, value_name = "oci:DIR|docker://HOST/REPO")]
    pub(crate) all: Vec<String>,
    /// A file of images to rebase, one reference a line (`#` comments and blank lines are
    /// skipped). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub(crate) from_file: Vec<PathBuf>,
    /// Rebase even when the CNB rules refuse: `io.buildpacks.rebasable=false`, another
    /// os/architecture/distribution, another run image name.
    #[arg(long)]
    pub(crate) force: bool,
    /// Report what would happen; write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Print a JSON report on stdout instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Images worked on at once (default: all cores).
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) jobs: Option<u16>,
    /// Where strata keeps its caches: the proof that the run image's layers are their diffIDs
    /// is kept there (default: `$XDG_CACHE_HOME/strata` or `~/.cache/strata`).
    #[arg(long, value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// A registry (`HOST[:PORT]`) spoken to over plain HTTP (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub(crate) insecure_registries: Vec<String>,
    /// A PEM file of CA certificates that registries are trusted by, besides the system's.
    #[arg(long, value_name = "FILE")]
    pub(crate) registry_ca: Option<PathBuf>,
}

/// A rebase, validated.
struct RebaseConfig {
    base: NewBase,
    /// The run image's registry reference, when it came from one (blobs are mounted from it).
    base_source: Option<Reference>,
    batches: Vec<LayoutBatch>,
    registry: RegistryBatch,
    images: Images,
    options: RebaseOptions,
}

impl RebaseConfig {
    fn from_args(args: &RebaseArgs) -> Result<Self, CliError> {
        let mut named = args.images.clone();
        for file in &args.from_file {
            named.extend(read_list(file)?);
        }
        if named.is_empty() && args.all.is_empty() {
            return Err(CliError::Usage(
                "nothing to rebase: give IMAGE_REF..., --all oci:DIR|docker://HOST/REPO or --from-file FILE".to_owned(),
            ));
        }
        // Every reference is checked before anything is read.
        let (picks, registry) = sort_references(&named, &args.all)?;
        let here = std::path::Path::new(".");

        // The new base's layers are decompressed and hashed once; the proof is kept in the
        // store, so a nightly rebase onto the same run image reads only manifests and
        // configs. Without a usable store, the check still runs, every time.
        let cache_dir = match &args.cache_dir {
            Some(dir) => Some(dir.clone()),
            None => default_cache_dir().ok(),
        };
        let store = cache_dir
            .as_ref()
            .and_then(|dir| Store::open(&store_dir(dir)).ok());
        let settings = RegistrySettings {
            insecure: args.insecure_registries.clone(),
            ca_file: args.registry_ca.clone(),
        };
        let base_source = match Location::parse(&args.run_image, here)? {
            Location::Registry(reference) => {
                if cache_dir.is_none() {
                    return Err(CliError::Usage(
                        "a registry run image is pulled into the store: set HOME or XDG_CACHE_HOME, or pass --cache-dir DIR".to_owned(),
                    ));
                }
                Some(reference)
            }
            _ => None,
        };
        let images = Images::new(cache_dir.as_deref().unwrap_or(here), settings);
        let run_ref = images.resolve(&args.run_image, here)?;
        let image = RunImage::load(&run_ref)?;
        verify_layers(&image, store.as_ref())?;
        let name = recorded_name(&args.run_image);
        let repository = base_source
            .as_ref()
            .and_then(|_| registry_repository(&name));
        let base = NewBase::new(image, name)
            .in_repository(repository)
            .with_store(store.as_ref().and(cache_dir.as_deref()).map(store_dir));
        if base.image.layers.is_empty() {
            return Err(CliError::Usage(format!(
                "run image {} has no layers: there is nothing to rebase onto",
                args.run_image
            )));
        }

        // One batch per layout, in the order the layouts first appear.
        let mut batches: Vec<LayoutBatch> = Vec::new();
        let mut index: HashMap<PathBuf, usize> = HashMap::new();
        for (dir, tag) in picks {
            let key = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
            let i = *index.entry(key).or_insert_with(|| {
                batches.push(LayoutBatch {
                    dir,
                    ..LayoutBatch::default()
                });
                batches.len() - 1
            });
            match tag {
                Some(tag) => batches[i].tags.push(tag),
                None => batches[i].all = true,
            }
        }
        Ok(Self {
            base,
            base_source,
            batches,
            registry,
            images,
            options: RebaseOptions {
                force: args.force,
                epoch: source_date_epoch()?,
            },
        })
    }
}

/// A layout directory and a tag in it, or `None` for every image of it (`--all`).
type LayoutPick = (PathBuf, Option<String>);

/// The images to rebase by where they are: layout directories (with a tag, or `None` for
/// `--all`) and registry images.
fn sort_references(
    named: &[String],
    all: &[String],
) -> Result<(Vec<LayoutPick>, RegistryBatch), CliError> {
    let here = std::path::Path::new(".");
    let mut picks: Vec<LayoutPick> = Vec::new();
    let mut registry = RegistryBatch::default();
    for image in named {
        match Location::parse(image, here)? {
            Location::Layout(ImageRef::OciLayout { dir, tag }) => picks.push((dir, Some(tag))),
            Location::Registry(reference) => registry.images.push(by_tag(reference)),
            Location::Archive { .. } => {
                return Err(CliError::Usage(format!(
                    "{image}: a docker-archive cannot be rebased in place; rebase oci:DIR:TAG or docker://HOST/REPO:TAG"
                )));
            }
        }
    }
    for all in all {
        if let Some(rest) = all.strip_prefix("docker://") {
            let repository = Reference::parse(rest)
                .ok()
                .filter(|r| r.tag().is_none() && r.digest().is_none())
                .ok_or_else(|| {
                    CliError::Usage(format!(
                        "--all {all}: expected docker://HOST/REPO, a repository without a tag"
                    ))
                })?;
            registry.all.push(repository);
            continue;
        }
        let dir = layout_arg(all)?;
        Layout::open(&dir).map_err(|e| CliError::Usage(format!("--all {all}: {e}")))?;
        picks.push((dir, None));
    }
    Ok((picks, registry))
}

/// A registry image named without tag or digest means `latest`, as for a pull.
fn by_tag(reference: Reference) -> Reference {
    if reference.tag().is_none() && reference.digest().is_none() {
        return reference
            .with_new_tag(strata_exporter::reference::DEFAULT_TAG)
            .unwrap_or(reference);
    }
    reference
}

/// The references of a `--from-file` list: one a line, blank lines and `#` comments skipped;
/// a line that is not a reference is a usage error naming `FILE:LINE`.
fn read_list(file: &std::path::Path) -> Result<Vec<String>, CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::Usage(format!("--from-file {}: {e}", file.display())))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{}:{}", file.display(), n + 1);
        if line.split_whitespace().count() > 1 {
            return Err(CliError::Usage(format!(
                "{}: one image reference a line, found `{line}`",
                at()
            )));
        }
        if let Err(e) = Location::parse(line, std::path::Path::new(".")) {
            return Err(CliError::Usage(format!("{}: {e}", at())));
        }
        out.push(line.to_owned());
    }
    Ok(out)
}

/// `oci:DIR` of `--all`: a layout, not an image in it.
fn layout_arg(arg: &str) -> Result<PathBuf, CliError> {
    let Some(dir) = arg.strip_prefix("oci:") else {
        return Err(CliError::Usage(format!(
            "--all {arg}: expected oci:DIR (a layout) or docker://HOST/REPO (a repository)"
        )));
    };
    if dir.is_empty() || dir.contains(':') {
        return Err(CliError::Usage(format!(
            "--all {arg}: expected oci:DIR, a layout directory without a tag"
        )));
    }
    Ok(PathBuf::from(dir))
}

/// `SOURCE_DATE_EPOCH`, or 1980-01-01T00:00:01Z: the `created` of a rebased image, as of a
/// built one.
pub(crate) fn source_date_epoch() -> Result<u64, CliError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.is_empty() => value.parse().map_err(|_| {
            CliError::Usage(format!(
                "SOURCE_DATE_EPOCH={value} is not a number of seconds"
            ))
        }),
        _ => Ok(strata_exporter::archive::DEFAULT_MTIME),
    }
}

/// What `strata rebase` reports, one row per image.
#[derive(Debug, Serialize)]
pub(crate) struct RebaseReport {
    pub(crate) run_image: RunImageReport,
    pub(crate) dry_run: bool,
    pub(crate) images: Vec<Row>,
    pub(crate) summary: Summary,
    /// What went to registries, when registry images were rebased.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pushed: Option<PushedBlobs>,
}

/// Blobs pushed to registries (the run image's layers and the rebased configs, once per
/// repository) and manifests written.
#[derive(Debug, Default, Serialize)]
pub(crate) struct PushedBlobs {
    pub(crate) uploaded: usize,
    pub(crate) mounted: usize,
    pub(crate) skipped: usize,
    pub(crate) bytes: u64,
    pub(crate) manifests: usize,
}

#[derive(Debug, Serialize)]
pub(crate) struct RunImageReport {
    pub(crate) name: String,
    pub(crate) digest: String,
    pub(crate) top_layer: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) image: String,
    /// `rebased`, `would_rebase`, `up_to_date`, `refused` (a CNB rule `--force` overrides),
    /// `failed`, `changed_meanwhile` (a build moved the tag while the rebase ran; counted as
    /// failed) or `not_on_base`.
    pub(crate) status: &'static str,
    pub(crate) old_digest: Option<String>,
    pub(crate) old_top_layer: Option<String>,
    pub(crate) new_digest: Option<String>,
    pub(crate) error: Option<String>,
    /// For `not_on_base`: the run image it was built on, as recorded (a relative `oci:` name
    /// spelled from the working directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) on: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) forced: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) kept_env: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Summary {
    pub(crate) rebased: usize,
    pub(crate) up_to_date: usize,
    pub(crate) failed: usize,
    pub(crate) not_on_base: usize,
}

/// Rebases, prints the report, and fails with exit code 1 when an image failed.
pub(crate) fn run(args: &RebaseArgs) -> Result<(), CliError> {
    let config = RebaseConfig::from_args(args)?;
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(jobs) = args.jobs {
        pool = pool.num_threads(usize::from(jobs));
    }
    let pool = pool
        .build()
        .map_err(|e| CliError::Usage(format!("cannot start worker threads: {e}")))?;
    let (rows, pushed) = pool.install(|| -> Result<_, CliError> {
        let mut rows: Vec<Row> = config
            .batches
            .iter()
            .flat_map(|batch| layout_rows(batch, &config, args.dry_run))
            .collect();
        if config.registry.is_empty() {
            return Ok((rows, None));
        }
        let work = tempfile::tempdir().map_err(|source| CliError::Io {
            what: "cannot make a temp directory".to_owned(),
            source,
        })?;
        let result = rebase_registry(
            config.images.client()?,
            &config.registry,
            &RegistryBase {
                base: &config.base,
                source: config.base_source.as_ref(),
            },
            &config.options,
            args.dry_run,
            work.path(),
        );
        rows.extend(
            result
                .images
                .into_iter()
                .map(|image| row(image, args.dry_run)),
        );
        let pushed = PushedBlobs {
            uploaded: result.blobs.uploaded,
            mounted: result.blobs.mounted,
            skipped: result.blobs.skipped,
            bytes: result.blobs.bytes,
            manifests: result.manifests,
        };
        Ok((rows, Some(pushed)))
    })?;
    let report = RebaseReport {
        run_image: RunImageReport {
            name: config.base.name.clone(),
            digest: config.base.image.manifest_digest.clone(),
            top_layer: config.base.top_layer().to_owned(),
        },
        dry_run: args.dry_run,
        summary: summarize(&rows),
        images: rows,
        pushed,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", render(&report));
        for note in kept_env_notes(&report.images) {
            eprintln!("{note}");
        }
    }
    match report.summary.failed {
        0 => Ok(()),
        failed => Err(CliError::RebaseFailed {
            failed,
            total: report.images.len() - report.summary.not_on_base,
        }),
    }
}

/// The rows of one layout; a layout that cannot be opened fails each image named in it.
fn layout_rows(batch: &LayoutBatch, config: &RebaseConfig, dry_run: bool) -> Vec<Row> {
    match rebase_layout(batch, &config.base, &config.options, dry_run) {
        Ok(result) => result
            .images
            .into_iter()
            .map(|image| row(image, dry_run))
            .collect(),
        Err(e) => batch
            .tags
            .iter()
            .map(|tag| Row {
                image: ImageRef::OciLayout {
                    dir: batch.dir.clone(),
                    tag: tag.clone(),
                }
                .to_string(),
                status: "failed",
                old_digest: None,
                old_top_layer: None,
                new_digest: None,
                error: Some(chain(&e)),
                on: None,
                forced: Vec::new(),
                kept_env: Vec::new(),
            })
            .collect(),
    }
}

fn row(image: ImageResult, dry_run: bool) -> Row {
    let mut row = Row {
        image: image.image,
        status: "failed",
        old_digest: image.old_digest,
        old_top_layer: image.old_top_layer,
        new_digest: None,
        error: None,
        on: None,
        forced: Vec::new(),
        kept_env: Vec::new(),
    };
    match image.outcome {
        Ok(Status::Rebased {
            digest,
            overridden,
            kept_env,
        }) => {
            row.status = if dry_run { "would_rebase" } else { "rebased" };
            row.new_digest = Some(digest);
            row.forced = overridden.iter().map(Refusal::to_string).collect();
            row.kept_env = kept_env;
        }
        Ok(Status::UpToDate) => {
            row.status = "up_to_date";
            row.new_digest.clone_from(&row.old_digest);
        }
        Ok(Status::NotOnBase { on }) => {
            row.status = "not_on_base";
            row.on = on;
        }
        Err(e) => {
            match e.kind {
                RebaseErrorKind::Refused(_) => row.status = "refused",
                RebaseErrorKind::ChangedMeanwhile { .. } => row.status = "changed_meanwhile",
                _ => {}
            }
            row.error = Some(chain(&e.kind));
        }
    }
    row
}

/// How many of the images left alone are on which recorded run image, most first: the name to
/// pass as `--run-image` when the one given was meant for them.
fn what_they_are_on(rows: &[Row]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for row in rows.iter().filter(|r| r.status == "not_on_base") {
        let on = row.on.as_deref().unwrap_or("no CNB metadata");
        match counts.iter_mut().find(|(name, _)| *name == on) {
            Some((_, n)) => *n += 1,
            None => counts.push((on, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    counts
        .iter()
        .map(|(name, n)| match *name {
            "no CNB metadata" => format!("{n} with no CNB metadata"),
            _ => format!("{n} on {name}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn summarize(rows: &[Row]) -> Summary {
    let mut summary = Summary::default();
    for row in rows {
        match row.status {
            "rebased" | "would_rebase" => summary.rebased += 1,
            "up_to_date" => summary.up_to_date += 1,
            "not_on_base" => summary.not_on_base += 1,
            _ => summary.failed += 1,
        }
    }
    summary
}

/// An error and its sources, joined by `: `.
fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let _ = write!(text, ": {e}");
        source = e.source();
    }
    text
}

/// `sha256:0123456789ab…` as the first 12 hex digits.
fn short(digest: Option<&str>) -> String {
    digest.map_or_else(
        || "-".to_owned(),
        |d| {
            let hex = d.split_once(':').map_or(d, |(_, hex)| hex);
            hex.chars().take(12).collect()
        },
    )
}

/// The table and the summary line.
pub(crate) fn render(report: &RebaseReport) -> String {
    let rows: Vec<[String; 4]> = report
        .images
        .iter()
        .filter(|r| r.status != "not_on_base")
        .map(|r| {
            let status = match (r.status, &r.error) {
                ("refused", Some(error)) => format!("refused: {error} (--force overrides)"),
                ("failed", Some(error)) => format!("failed: {error}"),
                ("changed_meanwhile", Some(error)) => format!("changed meanwhile: {error}"),
                ("rebased" | "would_rebase", _) if !r.forced.is_empty() => {
                    format!("{} (forced: {})", label(r.status), r.forced.join("; "))
                }
                (status, _) => label(status).to_owned(),
            };
            [
                r.image.clone(),
                short(r.old_top_layer.as_deref()),
                short(r.new_digest.as_deref()),
                status,
            ]
        })
        .collect();
    let headers = ["IMAGE", "OLD TOP LAYER", "NEW DIGEST", "STATUS"];
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 4]| {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
        );
    };
    line(headers);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3]]);
    }
    let s = &report.summary;
    let _ = write!(
        out,
        "\n{} image{}: {} {}, {} up to date, {} failed",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        s.rebased,
        if report.dry_run {
            "would be rebased"
        } else {
            "rebased"
        },
        s.up_to_date,
        s.failed
    );
    if s.not_on_base > 0 {
        let _ = write!(
            out,
            "; {} other image{} in the layout not on {} ({})",
            s.not_on_base,
            if s.not_on_base == 1 { "" } else { "s" },
            report.run_image.name,
            what_they_are_on(&report.images)
        );
    }
    if report.dry_run {
        out.push_str(" (dry run: nothing written)");
    }
    out.push('\n');
    out
}

fn label(status: &str) -> &str {
    match status {
        "would_rebase" => "would rebase",
        "up_to_date" => "up to date",
        other => other,
    }
}

/// One note per Env variable that rebased images keep although the new run image sets it
/// differently.
fn kept_env_notes(rows: &[Row]) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for row in rows {
        for name in &row.kept_env {
            *counts.entry(name).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(name, n)| {
            format!(
                "note: {n} image{} keep their own {name}, which does not contain the new run image's; a rebuild would start from the new value",
                if n == 1 { "" } else { "s" }
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_digests_and_layout_args() {
        assert_eq!(short(Some("sha256:0123456789abcdef")), "0123456789ab");
        assert_eq!(short(None), "-");
        assert_eq!(layout_arg("oci:out").ok(), Some(PathBuf::from("out")));
        assert!(layout_arg("oci:out:tag").is_err());
        assert!(layout_arg("out").is_err());
    }

    #[test]
    fn a_list_file_skips_comments_and_names_the_bad_line() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("fleet.txt");
        std::fs::write(
            &file,
            "# the fleet\n\ndocker://127.0.0.1:5000/a/b:1\n  oci:out:hello  \nnot a reference\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let Err(CliError::Usage(message)) = read_list(&file) else {
            panic!("a bad line is a usage error")
        };
        assert!(
            message.starts_with(&format!("{}:5: ", file.display())),
            "{message}"
        );
        std::fs::write(
            &file,
            "# the fleet\n\ndocker://127.0.0.1:5000/a/b:1\n  oci:out:hello  \n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            read_list(&file).ok(),
            Some(vec![
                "docker://127.0.0.1:5000/a/b:1".to_owned(),
                "oci:out:hello".to_owned()
            ])
        );
    }
}
