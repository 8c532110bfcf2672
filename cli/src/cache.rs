//! `strata cache stats | verify | gc`: the store in the cache directory, for people (a short
//! table) or scripts (`--json`).
//!
//! `verify` exits 1 when it finds a problem, repaired or not, so that a script notices; `gc`
//! refuses (exit 1) while a build has the store open; a bad `--max-size` is a usage error
//! (exit 2). `gc` also removes the scratch directories killed builds left in the temp
//! directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use strata_engine::store::{
    ActionProblem, GcReport, Removed, Store, StoreError, StoreStats, VerifyReport, store_dir,
};

use strata_engine::scratch;
use strata_exporter::layoutcheck::{LayoutReport, check_layout};

use crate::args::{CacheArgs, CacheCommand};
use crate::config::default_cache_dir;
use crate::error::CliError;
use crate::inspect::human_size;
use crate::prepare::SCRATCH_PREFIX;

/// Why a `strata cache` command failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub(crate) enum CacheError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the store {} has {}", root.display(), problems(*count))]
    #[diagnostic(help(
        "`strata cache verify --repair` removes them; the next build rebuilds what they held"
    ))]
    Problems { root: PathBuf, count: usize },
    #[error("the output layouts have {}", problems(*count))]
    #[diagnostic(help("building the images again replaces the bad blobs"))]
    LayoutProblems { count: usize },
}

/// The store's report and, with `--layout`, each layout's.
#[derive(Serialize)]
struct Verified<'a> {
    #[serde(flatten)]
    report: &'a VerifyReport,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    layouts: &'a [LayoutReport],
}

fn render_layouts(layouts: &[LayoutReport]) -> String {
    let mut out = String::new();
    for layout in layouts {
        for blob in &layout.corrupt_blobs {
            let _ = writeln!(
                out,
                "corrupt layout blob {}: {}",
                blob.path.display(),
                blob.error
            );
        }
        for tag in &layout.broken_tags {
            let _ = writeln!(
                out,
                "broken image {}:{}: {}",
                layout.dir.display(),
                tag.tag,
                tag.error
            );
        }
        let _ = writeln!(
            out,
            "layout {}: {} blobs, {}",
            layout.dir.display(),
            layout.blobs,
            problems(layout.problems())
        );
    }
    out
}

/// Runs a `strata cache` command and prints its report on stdout.
pub(crate) fn run(args: &CacheArgs) -> Result<(), CliError> {
    let cache_dir = match &args.cache_dir {
        Some(dir) => dir.clone(),
        None => default_cache_dir()?,
    };
    let root = store_dir(&cache_dir);
    match &args.command {
        CacheCommand::Stats => {
            let stats = match open_existing(&root)? {
                Some(store) => store.stats().map_err(CacheError::from)?,
                None => StoreStats::default(),
            };
            print(args.json, &Rooted::new(&root, &stats), || {
                render_stats(&stats)
            });
            Ok(())
        }
        CacheCommand::Verify { repair, layout } => {
            let layouts = layout
                .iter()
                .map(|arg| {
                    let dir = arg.strip_prefix("oci:").unwrap_or(arg);
                    check_layout(Path::new(dir))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let report = match open_existing(&root)? {
                Some(store) => store.verify(*repair).map_err(CacheError::from)?,
                None => VerifyReport::default(),
            };
            let verified = Verified {
                report: &report,
                layouts: &layouts,
            };
            print(args.json, &Rooted::new(&root, &verified), || {
                let mut text = render_layouts(&layouts);
                text.push_str(&render_verify(&report));
                text
            });
            let in_layouts: usize = layouts.iter().map(LayoutReport::problems).sum();
            if !report.is_clean() {
                Err(CacheError::Problems {
                    root,
                    count: report.problems() + in_layouts,
                }
                .into())
            } else if in_layouts > 0 {
                Err(CacheError::LayoutProblems { count: in_layouts }.into())
            } else {
                Ok(())
            }
        }
        CacheCommand::Gc { max_size } => {
            let max = match max_size {
                Some(text) => parse_size(text)
                    .map_err(|e| CliError::Usage(format!("--max-size {text}: {e}")))?,
                None => u64::MAX,
            };
            // Builds' scratch directories are not in the store: they go even while a build
            // keeps the store busy, those of live builds staying.
            scratch::remove_stale(&std::env::temp_dir(), SCRATCH_PREFIX);
            let report = Store::gc(&root, max).map_err(CacheError::from)?;
            print(args.json, &Rooted::new(&root, &report), || {
                render_gc(&report, max)
            });
            Ok(())
        }
    }
}

/// The store in `root`, unless there is none: reading about a store must not create one.
fn open_existing(root: &Path) -> Result<Option<Store>, CacheError> {
    if root.is_dir() {
        Ok(Some(Store::open(root)?))
    } else {
        Ok(None)
    }
}

/// A report with the store it is about, for `--json`.
#[derive(Serialize)]
struct Rooted<'a, T> {
    store: &'a Path,
    #[serde(flatten)]
    report: &'a T,
}

impl<'a, T> Rooted<'a, T> {
    fn new(store: &'a Path, report: &'a T) -> Self {
        Self { store, report }
    }
}

fn print<T: Serialize>(json: bool, report: &T, text: impl FnOnce() -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    } else {
        print!("{}", text());
    }
}

fn render_stats(stats: &StoreStats) -> String {
    let mut out = String::new();
    for (what, count, bytes) in [
        ("blobs", stats.blobs, stats.blob_bytes),
        ("actions", stats.actions, stats.action_bytes),
        ("logs", stats.logs, stats.log_bytes),
        ("leftovers", stats.leftovers, stats.leftover_bytes),
        ("rootfs", stats.rootfs, stats.rootfs_bytes),
    ] {
        let _ = writeln!(out, "{what:<10} {count:>8}  {}", human_size(bytes));
    }
    let _ = writeln!(
        out,
        "{:<10} {:>8}  {}",
        "total",
        "",
        human_size(stats.total_bytes())
    );
    out
}

fn render_verify(report: &VerifyReport) -> String {
    let mut out = String::new();
    for blob in &report.corrupt_blobs {
        let why = match (&blob.actual, &blob.error) {
            (Some(actual), _) => format!("its bytes hash to {actual}"),
            (None, Some(error)) => format!("unreadable: {error}"),
            (None, None) => "unreadable".to_owned(),
        };
        let _ = writeln!(
            out,
            "corrupt blob {} ({}): {why}",
            blob.digest,
            blob.path.display()
        );
    }
    for action in &report.broken_actions {
        let what = match &action.problem {
            ActionProblem::MissingBlob => "is missing".to_owned(),
            ActionProblem::CorruptBlob => "is corrupt".to_owned(),
            ActionProblem::SizeMismatch { recorded, actual } => {
                format!("is {actual} bytes, not the {recorded} recorded")
            }
            ActionProblem::InvalidDigest => "is not a sha256 digest".to_owned(),
        };
        let _ = writeln!(out, "action {}: blob {} {what}", action.key, action.digest);
    }
    for action in &report.unparsable_actions {
        let _ = writeln!(
            out,
            "unparsable action {}: {}",
            action.path.display(),
            action.error
        );
    }
    for path in &report.stray_files {
        let _ = writeln!(out, "stray file {} (gc removes it)", path.display());
    }
    let _ = write!(
        out,
        "checked {} blobs ({}) and {} actions: ",
        report.blobs,
        human_size(report.blob_bytes),
        report.actions
    );
    let removed = if report.repaired && !report.is_clean() {
        ", removed"
    } else {
        ""
    };
    let _ = writeln!(out, "{}{removed}", problems(report.problems()));
    out
}

/// `no problems`, `1 problem`, `2 problems`.
fn problems(count: usize) -> String {
    match count {
        0 => "no problems".to_owned(),
        1 => "1 problem".to_owned(),
        n => format!("{n} problems"),
    }
}

fn render_gc(report: &GcReport, max: u64) -> String {
    let mut out = String::new();
    let rows: [(&str, Removed); 7] = [
        ("leftover files", report.leftovers),
        ("broken actions", report.broken_actions),
        ("unreferenced blobs", report.unreferenced_blobs),
        ("evicted actions", report.evicted_actions),
        ("evicted logs", report.evicted_logs),
        ("stale restore refs", report.stale_restore_refs),
        ("evicted rootfs", report.evicted_rootfs),
    ];
    let _ = writeln!(out, "removed");
    for (what, removed) in rows {
        let _ = writeln!(
            out,
            "  {what:<20} {:>8}  {}",
            removed.count,
            human_size(removed.bytes)
        );
    }
    let limit = if max == u64::MAX {
        String::new()
    } else {
        format!(" (max {})", human_size(max))
    };
    let _ = writeln!(
        out,
        "store: {} -> {}{limit}",
        human_size(report.size_before),
        human_size(report.size_after)
    );
    out
}

/// Parses a size: bytes (`1048576`, `512B`), binary units (`500K`, `500M`, `2G`, `1T`,
/// `10KiB`, `10MiB`, `10GiB`, `1TiB`) or decimal ones (`500kB`, `500MB`, `2GB`, `1TB`), in
/// any case, with an optional fraction (`1.5G`) and space before the unit.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.trim();
    let bad_number = || format!("`{text}` is not a size (a number of bytes, or with a unit)");
    if number.is_empty() || !unit.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(bad_number());
    }
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` (use bytes, K, M, G, T, KiB…TiB or kB…TB)"
            ));
        }
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') || fraction.len() > 9 {
        return Err(bad_number());
    }
    let digits = |s: &str| -> Result<u64, String> {
        if s.is_empty() {
            Ok(0)
        } else {
            s.parse().map_err(|_| bad_number())
        }
    };
    let too_big = || format!("`{text}` is more bytes than strata can count");
    let scale = 10u64.pow(u32::try_from(fraction.len()).map_err(|_| bad_number())?);
    let whole_bytes = digits(whole)?.checked_mul(multiplier).ok_or_else(too_big)?;
    let fraction_bytes = u128::from(digits(fraction)?) * u128::from(multiplier) / u128::from(scale);
    let fraction_bytes = u64::try_from(fraction_bytes).map_err(|_| too_big())?;
    whole_bytes.checked_add(fraction_bytes).ok_or_else(too_big)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_bytes_and_units() {
        for (text, bytes) in [
            ("0", 0),
            ("1048576", 1_048_576),
            ("512B", 512),
            ("500M", 500 << 20),
            ("500m", 500 << 20),
            ("2G", 2 << 30),
            ("10GiB", 10 << 30),
            ("10 GiB", 10 << 30),
            ("3KiB", 3072),
            ("1T", 1 << 40),
            ("500MB", 500_000_000),
            ("2gb", 2_000_000_000),
            ("1kB", 1000),
            ("1.5G", 3 << 29),
            ("0.5K", 512),
            (".5K", 512),
            ("2.", 2),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bad_sizes() {
        for text in [
            "",
            "G",
            "12Q",
            "-5",
            "1.2.3G",
            "1e9",
            "10 GiBs",
            ".",
            "99999999999T",
            "1,000",
        ] {
            assert!(parse_size(text).is_err(), "{text}");
        }
    }
}
