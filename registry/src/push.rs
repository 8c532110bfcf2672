//! Pushing an image from a blob directory: every blob the registry lacks, then the
//! manifests, children before the index that names them (a registry refuses a manifest
//! whose blobs or children it does not have).
//!
//! Each blob is first asked for by `HEAD`; one the registry has is skipped. One it lacks
//! is mounted from the source repository when one is given (same registry; the token
//! asked for covers both repositories, see [`crate::scope`]), and uploaded otherwise:
//! streamed from its file in chunked `PATCH` requests of at most 4 MiB (oci-client's
//! chunk size), so a layer of a GiB is never held in memory. Blobs go up concurrently,
//! at most [`crate::Options::jobs`] at once; an interrupted push leaves the registry
//! with whole blobs only, and the next push skips them.

use std::collections::HashSet;

use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use oci_client::errors::OciDistributionError;
use reqwest::header::HeaderValue;
use tokio::io::AsyncReadExt as _;

use crate::blobdir::BlobDir;
use crate::client::{Client, Session};
use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{Descriptor, Parsed};
use crate::reference::Reference;

/// What a push did with each blob, and how many manifests it wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs mounted from the source repository.
    pub mounted: usize,
    /// Blobs the registry had already.
    pub skipped: usize,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Manifests and indexes written.
    pub manifests: usize,
}

/// What happened to one blob.
enum Outcome {
    Uploaded(u64),
    Mounted,
    Skipped,
}

/// Read size when streaming a blob from disk: oci-client sends each read as its own
/// `PATCH` (cut further if over its 4 MiB chunk), so reads of that size make the fewest
/// round trips.
const READ_SIZE: usize = 4 << 20;

/// Where a push may mount the blobs the registry lacks from: repositories on the target's
/// registry known to hold certain blobs (say, those an earlier push of the same run wrote),
/// and one asked for any other blob (a cache repository).
#[derive(Debug, Clone, Default)]
pub struct MountSources {
    /// Repositories and the blobs each is known to hold, asked first, in order.
    pub known: Vec<(Reference, HashSet<Digest>)>,
    /// The repository asked for a blob no known one holds.
    pub any: Option<Reference>,
}

impl MountSources {
    /// Sources that are `any` alone.
    #[must_use]
    pub fn any(source: Option<&Reference>) -> Self {
        Self {
            known: Vec::new(),
            any: source.cloned(),
        }
    }

    /// Where to mount `digest` from into `target`: a source on `target`'s registry, in
    /// another repository.
    fn source_of(&self, digest: &Digest, target: &Reference) -> Option<&Reference> {
        self.known
            .iter()
            .filter(|(_, blobs)| blobs.contains(digest))
            .map(|(source, _)| source)
            .chain(&self.any)
            .find(|source| mountable(source, target))
    }

    /// The sources that `blobs` would be mounted from into `target`, once each: the scopes
    /// the push's token needs (few, however many sources there are).
    fn repositories(&self, blobs: &[Descriptor], target: &Reference) -> Vec<&Reference> {
        let mut out: Vec<&Reference> = Vec::new();
        for source in blobs
            .iter()
            .filter_map(|d| self.source_of(&d.digest, target))
        {
            if !out.iter().any(|o| o.repository() == source.repository()) {
                out.push(source);
            }
        }
        out
    }
}

/// Whether a blob can be mounted from `source` into `target`: the same registry, another
/// repository.
fn mountable(source: &Reference, target: &Reference) -> bool {
    source.registry() == target.registry() && source.repository() != target.repository()
}

impl Client {
    /// Pushes the image whose root (manifest or index) is `root` from `blobs` to
    /// `target` (its tag, else digest, else `latest`), mounting blobs from `mount_from`
    /// where the registry allows.
    ///
    /// # Errors
    /// [`Error::MissingBlob`] if a blob is absent or corrupt in `blobs`; any request
    /// error.
    pub fn push(
        &self,
        blobs: &BlobDir,
        root: &Descriptor,
        target: &Reference,
        mount_from: Option<&Reference>,
    ) -> Result<PushReport, Error> {
        self.push_inner(blobs, root, target, &MountSources::any(mount_from), false)
    }

    /// Like [`push`](Self::push), for an image whose layers need not all be in `blobs`:
    /// one that is not is expected in `target`'s repository already (skipped) or in its
    /// source of `sources` (mounted; where the registry will not mount it, it is downloaded
    /// from there into `blobs`, checked against its digest, and uploaded). Its manifests
    /// and configs must be there.
    ///
    /// # Errors
    /// [`Error::MissingBlob`] for a manifest or config absent from `blobs`, or a layer
    /// absent from `blobs` that the registry neither has nor has in its source (before any
    /// manifest is written); any request error.
    pub fn push_mounting(
        &self,
        blobs: &BlobDir,
        root: &Descriptor,
        target: &Reference,
        sources: &MountSources,
    ) -> Result<PushReport, Error> {
        self.push_inner(blobs, root, target, sources, true)
    }

    fn push_inner(
        &self,
        blobs: &BlobDir,
        root: &Descriptor,
        target: &Reference,
        sources: &MountSources,
        absent_layers: bool,
    ) -> Result<PushReport, Error> {
        self.runtime.block_on(async {
            let session = self
                .session(target, &format!("manifest {}", target.target()))
                .await?;
            // The manifests to write, children first, and the blobs they name.
            let mut manifests: Vec<(Descriptor, Vec<u8>)> = Vec::new();
            let mut layers: Vec<Descriptor> = Vec::new();
            let mut configs: HashSet<Digest> = HashSet::new();
            let bytes = blobs.read_verified(&root.digest)?;
            let parsed = parse(target, root, &bytes)?;
            if parsed.is_index() {
                for child in parsed.manifests.unwrap_or_default() {
                    let child_bytes = blobs.read_verified(&child.digest)?;
                    let child_parsed = parse(target, &child, &child_bytes)?;
                    if child_parsed.is_index() {
                        return Err(Error::Manifest {
                            reference: target.to_string(),
                            digest: child.digest,
                            message: "an index inside an index is not supported".to_owned(),
                        });
                    }
                    configs.extend(child_parsed.config.iter().map(|d| d.digest.clone()));
                    layers.extend(child_parsed.config);
                    layers.extend(child_parsed.layers);
                    manifests.push((child, child_bytes));
                }
            } else {
                configs.extend(parsed.config.iter().map(|d| d.digest.clone()));
                layers.extend(parsed.config);
                layers.extend(parsed.layers);
            }
            let mut seen = HashSet::new();
            layers.retain(|d| seen.insert(d.digest.clone()));
            let repositories = sources.repositories(&layers, target);
            if !repositories.is_empty() {
                self.authorize_mount(&session, &repositories).await?;
            }
            // Every blob must be at hand before the first byte goes out: a push that
            // cannot finish should not start.
            // (Or, for a layer that may be absent, be found in the registry when its turn
            // comes: before any manifest is written either way.)
            let may_lack = |d: &Descriptor| absent_layers && !configs.contains(&d.digest);
            if let Some(d) = layers
                .iter()
                .find(|d| !blobs.contains(&d.digest, d.size) && !may_lack(d))
            {
                return Err(Error::MissingBlob {
                    dir: blobs.dir().to_owned(),
                    digest: d.digest.clone(),
                });
            }

            let mut report = self
                .push_blob_set(&session, blobs, &layers, target, sources)
                .await?;
            for (child, child_bytes) in manifests {
                let by_digest = target.with_digest(child.digest.clone());
                self.put_manifest(&session, &by_digest, &child, child_bytes)
                    .await?;
                report.manifests += 1;
            }
            self.put_manifest(&session, target, root, bytes).await?;
            report.manifests += 1;
            Ok(report)
        })
    }

    /// Pushes the blobs `descriptors` from `blobs` to `target`'s repository, each one the
    /// registry lacks (asked for by `HEAD` first): mounted from `mount_from` where the
    /// registry allows (same registry, another repository), uploaded otherwise. No
    /// manifest is written. A blob that is mounted or skipped need not be in `blobs`;
    /// one that must be uploaded and is not there is [`Error::MissingBlob`].
    ///
    /// # Errors
    /// [`Error::MissingBlob`]; any request error.
    pub fn push_blobs(
        &self,
        blobs: &BlobDir,
        descriptors: &[Descriptor],
        target: &Reference,
        mount_from: Option<&Reference>,
    ) -> Result<PushReport, Error> {
        self.runtime.block_on(async {
            let session = self.session(target, "blobs").await?;
            let sources = MountSources::any(mount_from);
            let mut seen = HashSet::new();
            let unique: Vec<Descriptor> = descriptors
                .iter()
                .filter(|d| seen.insert(d.digest.clone()))
                .cloned()
                .collect();
            let repositories = sources.repositories(&unique, target);
            if !repositories.is_empty() {
                self.authorize_mount(&session, &repositories).await?;
            }
            self.push_blob_set(&session, blobs, &unique, target, &sources)
                .await
        })
    }

    /// The blobs `layers` into the session's repository, at most [`crate::Options::jobs`]
    /// at once, each retried on its own.
    async fn push_blob_set(
        &self,
        session: &Session,
        blobs: &BlobDir,
        layers: &[Descriptor],
        target: &Reference,
        sources: &MountSources,
    ) -> Result<PushReport, Error> {
        let outcomes: Vec<Outcome> = stream::iter(layers)
            .map(|d| {
                self.options.retry.run(move || {
                    let mount_from = sources.source_of(&d.digest, target);
                    self.push_blob(session, blobs, d, mount_from)
                })
            })
            .buffer_unordered(self.options.jobs.max(1))
            .try_collect()
            .await?;
        let mut report = PushReport::default();
        for outcome in outcomes {
            match outcome {
                Outcome::Uploaded(n) => {
                    report.uploaded += 1;
                    report.bytes += n;
                }
                Outcome::Mounted => report.mounted += 1,
                Outcome::Skipped => report.skipped += 1,
            }
        }
        Ok(report)
    }

    /// Writes manifest bytes as they are under `reference`'s tag or digest.
    ///
    /// # Errors
    /// Any request error.
    pub fn push_manifest(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        bytes: Vec<u8>,
    ) -> Result<(), Error> {
        self.runtime.block_on(async {
            let session = self
                .session(reference, &format!("manifest {}", reference.target()))
                .await?;
            self.put_manifest(&session, reference, descriptor, bytes)
                .await
        })
    }

    async fn put_manifest(
        &self,
        session: &Session,
        reference: &Reference,
        descriptor: &Descriptor,
        bytes: Vec<u8>,
    ) -> Result<(), Error> {
        let what = format!("manifest {}", descriptor.digest);
        let ctx = session.ctx_for(&what);
        let content_type = HeaderValue::from_str(&descriptor.media_type).map_err(|_| {
            ctx.protocol(format!(
                "media type `{}` is not a header value",
                descriptor.media_type
            ))
        })?;
        let oci = reference.to_oci();
        let body = bytes::Bytes::from(bytes);
        self.options
            .retry
            .run(|| async {
                self.oci
                    .push_manifest_raw(&oci, body.clone(), content_type.clone())
                    .await
                    .map(drop)
                    .map_err(|e| ctx.oci(e))
            })
            .await
    }

    /// One try at getting a blob into the registry: skip, mount or upload.
    async fn push_blob(
        &self,
        session: &Session,
        blobs: &BlobDir,
        d: &Descriptor,
        mount_from: Option<&Reference>,
    ) -> Result<Outcome, Error> {
        let what = format!("blob {}", d.digest);
        let ctx = session.ctx_for(&what);
        let exists = self
            .oci
            .blob_exists(&session.oci, d.digest.as_str())
            .await
            .map_err(|e| ctx.oci(e))?;
        if exists {
            return Ok(Outcome::Skipped);
        }
        if let Some(source) = mount_from {
            match self
                .oci
                .mount_blob(&session.oci, &source.to_oci(), d.digest.as_str())
                .await
            {
                Ok(()) => return Ok(Outcome::Mounted),
                // A registry that cannot mount opens an upload session instead (202, which
                // oci-client reports as a spec violation); one whose token does not cover
                // the source answers 401. Either way the blob is uploaded instead, and
                // credentials that are bad for the target fail that upload.
                Err(OciDistributionError::SpecViolationError(_)) => {}
                Err(e) => {
                    let e = ctx.oci(e);
                    if e.is_transient() {
                        return Err(e);
                    }
                }
            }
        }
        if let Some(source) = mount_from
            && !blobs.contains(&d.digest, d.size)
        {
            // A layer left out of `blobs` for the mount, which the registry would not
            // mount: copied from the source repository through here instead, verified
            // against its digest as any download.
            let source_session = self.session(source, &what).await?;
            self.download(&source_session, d, blobs).await?;
        }
        let path = blobs.path(&d.digest);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|_| Error::MissingBlob {
                dir: blobs.dir().to_owned(),
                digest: d.digest.clone(),
            })?;
        let size = file
            .metadata()
            .await
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?
            .len();
        if size != d.size {
            return Err(Error::MissingBlob {
                dir: blobs.dir().to_owned(),
                digest: d.digest.clone(),
            });
        }
        let chunks = stream::try_unfold(file, |mut file| async move {
            // tokio returns at most 2 MiB a read: fill the chunk.
            let mut buf = vec![0; READ_SIZE];
            let mut n = 0;
            while n < READ_SIZE {
                let read = file
                    .read(&mut buf[n..])
                    .await
                    .map_err(OciDistributionError::IoError)?;
                if read == 0 {
                    break;
                }
                n += read;
            }
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            Ok(Some((bytes::Bytes::from(buf), file)))
        });
        self.oci
            .push_blob_stream(&session.oci, chunks, d.digest.as_str(), Some(size))
            .await
            .map_err(|e| ctx.oci(e))?;
        Ok(Outcome::Uploaded(size))
    }
}

fn parse(target: &Reference, d: &Descriptor, bytes: &[u8]) -> Result<Parsed, Error> {
    Parsed::parse(bytes).map_err(|e| Error::Manifest {
        reference: target.to_string(),
        digest: d.digest.clone(),
        message: e.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn reference(text: &str) -> Reference {
        Reference::parse(text).unwrap()
    }

    #[test]
    fn a_blob_is_mounted_from_a_repository_known_to_hold_it_else_from_any() {
        let held: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let other: Digest = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
        let sources = MountSources {
            known: vec![
                (
                    reference("r.test/ns/elsewhere"),
                    HashSet::from([held.clone()]),
                ),
                (
                    reference("other.test/ns/api"),
                    HashSet::from([held.clone()]),
                ),
                (reference("r.test/ns/api"), HashSet::from([held.clone()])),
            ],
            any: Some(reference("r.test/ci/cache")),
        };
        let target = reference("r.test/ns/web:1");
        let source = |d: &Digest| sources.source_of(d, &target).map(Reference::repository);
        assert_eq!(source(&held), Some("ns/elsewhere"));
        assert_eq!(source(&other), Some("ci/cache"));
        // Another registry, or the target's own repository, is never a source.
        let on_itself = reference("r.test/ns/elsewhere:2");
        assert_eq!(
            sources
                .source_of(&held, &on_itself)
                .map(Reference::repository),
            Some("ns/api")
        );
        // The token asks for the sources the blobs are mounted from, not every one known.
        let blob = |digest: &Digest| Descriptor {
            media_type: String::new(),
            digest: digest.clone(),
            size: 1,
            platform: None,
        };
        let repositories = |blobs: &[Descriptor]| -> Vec<String> {
            sources
                .repositories(blobs, &target)
                .into_iter()
                .map(|r| r.repository().to_owned())
                .collect()
        };
        assert_eq!(repositories(&[blob(&held)]), ["ns/elsewhere"]);
        assert_eq!(
            repositories(&[blob(&held), blob(&other), blob(&held)]),
            ["ns/elsewhere", "ci/cache"]
        );
    }
}
