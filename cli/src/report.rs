//! What `strata build` reports: per service its image, digest, tasks ran and cached, time and
//! outcome, and every task once; as JSON (`--json`) or as the end-of-build table.
//!
//! The JSON fields are for scripts and stay stable (they are listed in the README). A build
//! of one app (no workspace) also carries that image's fields at the top level: `image`,
//! `digest`, `buildpacks`, `layers`.

use std::fmt::Write as _;

use serde::Serialize;
use strata_engine::execute::TaskReport;
use strata_exporter::image::ExportedLayer;
use strata_planner::{DetectResult, Skipped};

/// What a build produced.
#[derive(Debug, Serialize)]
pub(crate) struct BuildReport {
    /// The one image of an app build (absent for a workspace).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(crate) single: Option<ImageReport>,
    /// Each service, in the workspace's order.
    pub(crate) services: Vec<ServiceReport>,
    /// Each task once (a task shared by services too): `id`, `services`, `key`, `status`
    /// (`ran` or `cached`), `reason`, `seconds`.
    pub(crate) tasks: Vec<TaskReport>,
    /// How many tasks ran and how many were answered from the cache.
    pub(crate) ran: usize,
    pub(crate) cached: usize,
    /// Wall time of the whole build, in seconds.
    pub(crate) seconds: f64,
    /// What the remote cache (`--cache-from`, `--cache-to`) gave and took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) remote_cache: Option<RemoteCacheReport>,
}

/// What a build fetched from and pushed to a remote cache.
#[derive(Debug, Default, Serialize)]
pub(crate) struct RemoteCacheReport {
    /// Entries fetched into the local store (tasks that did not run here).
    pub(crate) fetched: usize,
    /// Blobs and bytes downloaded.
    pub(crate) downloaded: usize,
    pub(crate) downloaded_bytes: u64,
    /// Entries refused (each also a warning).
    pub(crate) refused: usize,
    /// What was pushed, when the build pushes.
    pub(crate) pushed: Option<crate::remotecache::Pushed>,
}

/// One service's outcome.
#[derive(Debug, Default, Serialize)]
pub(crate) struct ServiceReport {
    pub(crate) name: String,
    /// `built`, `up-to-date` (nothing ran), or `failed`.
    pub(crate) status: &'static str,
    /// Why it failed.
    pub(crate) error: Option<String>,
    /// Its image, when there is one.
    #[serde(flatten)]
    pub(crate) image: Option<ImageReport>,
    /// Its tasks that ran and that were cached (a shared task counts for every service).
    pub(crate) ran: usize,
    pub(crate) cached: usize,
    /// Seconds from the start of the build until its image was written.
    pub(crate) seconds: f64,
    /// The buildpacks of its group not run at detect because they cannot build for the
    /// target.
    pub(crate) skipped: Vec<SkippedReport>,
}

/// A buildpack skipped at detect for its targets, as `plan` and `build` report it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SkippedReport {
    /// `id@version`.
    pub(crate) buildpack: String,
    /// Its targets (or stacks).
    pub(crate) supports: String,
    /// The build's target (or the run image's stack).
    pub(crate) target: String,
}

impl SkippedReport {
    /// The buildpacks detection skipped in `group`.
    pub(crate) fn of(group: &DetectResult) -> Vec<Self> {
        group.skipped.iter().map(Self::from).collect()
    }
}

impl From<&Skipped> for SkippedReport {
    fn from(s: &Skipped) -> Self {
        Self {
            buildpack: s.buildpack.clone(),
            supports: s.mismatch.supports.clone(),
            target: s.mismatch.target.clone(),
        }
    }
}

/// An exported image.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ImageReport {
    pub(crate) image: String,
    pub(crate) digest: String,
    pub(crate) buildpacks: Vec<String>,
    pub(crate) layers: Vec<LayerReport>,
    /// What a registry or archive output sent: references written, blobs uploaded,
    /// mounted and skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pushed: Option<crate::publish::PushedReport>,
    /// The digest of the signed provenance attestation attached to it (`--sign-key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) provenance: Option<String>,
    /// The digest of the signature attached to it (`--sign-key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) signature: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct LayerReport {
    pub(crate) created_by: String,
    pub(crate) diff_id: String,
    pub(crate) digest: String,
    pub(crate) size: u64,
}

impl From<&ExportedLayer> for LayerReport {
    fn from(l: &ExportedLayer) -> Self {
        Self {
            created_by: l.created_by.clone(),
            diff_id: l.diff_id.clone(),
            digest: l.digest.clone(),
            size: l.size,
        }
    }
}

/// `sha256:` and the first 12 hex digits.
fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

/// The end-of-build table.
pub(crate) fn table(report: &BuildReport) -> String {
    let width = report
        .services
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0)
        .max("SERVICE".len());
    let mut out = format!(
        "{:<width$}  {:<19}  {:>4}  {:>6}  {:>7}  STATUS\n",
        "SERVICE", "DIGEST", "RAN", "CACHED", "TIME"
    );
    for s in &report.services {
        let digest = s.image.as_ref().map_or("-", |i| short(&i.digest));
        let status = match &s.error {
            Some(error) => format!("failed: {}", error.lines().next().unwrap_or_default()),
            None => s.status.to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<width$}  {digest:<19}  {:>4}  {:>6}  {:>6.2}s  {status}",
            s.name, s.ran, s.cached, s.seconds
        );
    }
    let failed = report.services.iter().filter(|s| s.error.is_some()).count();
    let services = report.services.len();
    let _ = writeln!(
        out,
        "{services} service{} ({} failed), {} task{} ran, {} cached, {:.2}s",
        if services == 1 { "" } else { "s" },
        failed,
        report.ran,
        if report.ran == 1 { "" } else { "s" },
        report.cached,
        report.seconds
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_totals_line_counts_in_words() {
        let report = |ran, services: usize| BuildReport {
            single: None,
            services: (0..services)
                .map(|i| ServiceReport {
                    name: format!("s{i}"),
                    status: "built",
                    ..ServiceReport::default()
                })
                .collect(),
            tasks: Vec::new(),
            ran,
            cached: 0,
            seconds: 0.5,
            remote_cache: None,
        };
        let last = |r: &BuildReport| table(r).lines().last().unwrap_or_default().to_owned();
        assert_eq!(
            last(&report(1, 1)),
            "1 service (0 failed), 1 task ran, 0 cached, 0.50s"
        );
        assert_eq!(
            last(&report(3, 2)),
            "2 services (0 failed), 3 tasks ran, 0 cached, 0.50s"
        );
    }
}
